//! `Step`: what one stage decided about one packet, as plain data.
//!
//! A stage describes its own decision (`Stage::trace`); the engine's wrapper records it, and a drop
//! as `Step::Dropped`, into the packet's `TraceRecord` when the packet is traced. Nothing here is
//! formatted: the control plane turns steps into lines, sentences and JSON. A stage without a step
//! of its own is recorded as `Passed` (or not at all, if it says so), so a new stage needs no
//! variant here to be traced.

use std::net::Ipv4Addr;

use super::nat::Answer;
use super::{DropReason, StageId};
use crate::rewrite::Rewrite;
use crate::table::conntrack::{Direction, NatKind};
use crate::table::{LearnAction, LinkRule};
use crate::{MacAddr, PortId, VlanId};

/// What happened to a connection in the `nat` stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtStep {
    Created,
    Matched(Direction),
    /// An ICMP error translated for the flow it quotes.
    Related,
}

/// One decision of one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `ingress` parsed the frame.
    Parsed {
        src: MacAddr,
        dst: MacAddr,
        vlan: VlanId,
        ethertype: u16,
        len: u32,
    },
    /// A stage dropped the frame.
    Dropped { stage: StageId, reason: DropReason },
    /// A stage without a step of its own let the frame go on.
    Passed { stage: StageId },
    /// `anti-spoof` checked the sender's MAC and address.
    SpoofChecked,
    /// `isolation` checked a frame the host routed in.
    IsolationChecked,
    /// `l2-learn`: what happened to the source MAC.
    Learned { mac: MacAddr, action: LearnAction },
    /// `l2-fwd`: the destination MAC was found on `port`.
    Hit { mac: MacAddr, port: PortId },
    /// `l2-fwd`: flooded (broadcast/multicast, or an unknown destination).
    Flooded { unknown: bool, ports: u16 },
    /// `icc`: allowed toward `egress`, by `rule` (`None`: not between two containers, or ARP).
    IccAllowed {
        egress: PortId,
        rule: Option<LinkRule>,
    },
    /// `icc`: not allowed toward `egress` (no link opens it).
    IccDenied { egress: PortId },
    /// `nat`: the frame was translated (`from` -> `to`, each src/dst address and port).
    Translated {
        /// `None` for an ICMP error translated for the flow it quotes.
        kind: Option<NatKind>,
        ct: CtStep,
        from: Flow,
        to: Flow,
    },
    /// `nat`: routed one hop without translation (a routed network): `src` -> `dst` keep their
    /// addresses, the frame goes to `mac` (the neighbour `next_hop`) with `ttl` left.
    Routed {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        next_hop: Ipv4Addr,
        mac: MacAddr,
        ttl: u8,
    },
    /// `nat`: answered in place (ARP or ping for the uplink address).
    Answered(Answer),
    /// `nat`: learned from (an ARP reply for the uplink address).
    Consumed,
    /// The frame leaves through `port`.
    Egress { port: PortId },
    /// The port it left by (the `Egress` before) carries it in VXLAN: VNI `vni`, outer UDP from
    /// `local`:`sport` (the inner flow's hash) to the remote host `remote`:`dport`.
    Encapsulated {
        vni: u32,
        local: Ipv4Addr,
        remote: Ipv4Addr,
        sport: u16,
        dport: u16,
    },
    /// The frame came out of VXLAN: VNI `vni`, from the remote host `from` to UDP port `dport`
    /// (recorded before `Parsed`, for a frame of a VXLAN port).
    Decapsulated {
        vni: u32,
        from: Ipv4Addr,
        dport: u16,
    },
}

/// Source and destination address and port of an IPv4 packet (0 where there is no port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

impl Flow {
    /// `from` after `rw`.
    pub fn rewritten(&self, rw: &Rewrite) -> Flow {
        let (src, sport) = rw.src.unwrap_or((self.src, self.sport));
        let (dst, dport) = rw.dst.unwrap_or((self.dst, self.dport));
        Flow {
            src,
            sport,
            dst,
            dport,
        }
    }
}
