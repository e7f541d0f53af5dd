//! Pipeline stages: pure functions from a packet view and the tables to a verdict.
//!
//! A stage is `fn(&PacketView, &Tables, &mut Effects) -> Verdict`. It does no I/O, no logging and no
//! allocation; a table change it wants (a learned MAC) is written into `Effects` and applied by the
//! engine, so the same stage code serves live forwarding, what-if traces and tests. Every stage has one
//! stable name (`StageId::name`) used by counters, traces and docs, and every drop carries a
//! `DropReason` with its own counter.

pub mod anti_spoof;
pub mod conflict;
pub mod icc;
pub mod ingress;
pub mod isolation;
pub mod l2_fwd;
pub mod l2_learn;
pub mod nat;

use std::fmt;

use crate::table::{CamTable, ConnTrack, LearnAction, NatTable, Policy};
use crate::wire::headers::{ArpSummary, Ipv4Summary, L3};
use crate::{DomainId, MacAddr, PortId, VlanId};

/// The stages, in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageId {
    Ingress,
    AntiSpoof,
    Isolation,
    Conflict,
    Nat,
    L2Learn,
    L2Fwd,
    Flood,
    Icc,
    Egress,
}

impl StageId {
    pub const ALL: [StageId; 10] = [
        StageId::Ingress,
        StageId::AntiSpoof,
        StageId::Isolation,
        StageId::Conflict,
        StageId::Nat,
        StageId::L2Learn,
        StageId::L2Fwd,
        StageId::Flood,
        StageId::Icc,
        StageId::Egress,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StageId::Ingress => "ingress",
            StageId::AntiSpoof => "anti-spoof",
            StageId::Isolation => "isolation",
            StageId::Conflict => "address-conflict",
            StageId::Nat => "nat",
            StageId::L2Learn => "l2-learn",
            StageId::L2Fwd => "l2-fwd",
            StageId::Flood => "flood",
            StageId::Icc => "icc",
            StageId::Egress => "egress",
        }
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $stage:ident, $why:literal;)*) => {
        /// Why a frame was dropped. Each reason has a counter (per port) and a stable name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum DropReason {
            $(#[doc = $why] $variant,)*
        }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = DropReason::ALL.len();

            /// Stable short name, used in counters, traces and docs.
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }

            /// The stage that drops for this reason.
            pub fn stage(self) -> StageId {
                match self { $(DropReason::$variant => StageId::$stage,)* }
            }

            /// One sentence a user can read.
            pub fn explain(self) -> &'static str {
                match self { $(DropReason::$variant => $why,)* }
            }

            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

drop_reasons! {
    Runt => "runt", Ingress, "The frame is shorter than an Ethernet header.";
    RxOverrun => "rx-overrun", Ingress, "The port's receive queue in the kernel was full: the switch did not read fast enough.";
    RxError => "rx-error", Ingress, "The operating system reported an error while receiving on the port.";
    Truncated => "truncated", Ingress, "The frame was larger than the receive buffer and arrived cut.";
    BadVlan => "bad-vlan", Ingress, "The 802.1Q tag is incomplete.";
    OtherVlan => "other-vlan", Ingress, "The frame on a parent interface belongs to another VLAN (or is untagged on a tagged network).";
    SpoofMac => "spoof-mac", AntiSpoof, "A container sent from a MAC (Ethernet source or ARP sender) that is not its own.";
    SpoofIp => "spoof-ip", AntiSpoof, "A container sent IPv4 or ARP from an address that is not its own.";
    Isolation => "isolation", Isolation, "The host routed the packet from another switchyard network into this one; networks are isolated.";
    IpConflict => "ip-conflict", Conflict, "Another host on the network's uplink claims (ARP) an address a local container holds; the claim is dropped and reported.";
    NotLocal => "not-local", Nat, "The frame reached the uplink but is not for switchyard's uplink address.";
    NoMapping => "no-mapping", Nat, "Nothing is published on that protocol and port of the uplink address.";
    NoRoute => "no-route", Nat, "The destination is off the uplink's subnet and the uplink has no gateway.";
    NoNeighbor => "no-neighbor", Nat, "The uplink next hop's MAC is not known yet; an ARP request was sent (the sender retries).";
    Internal => "internal", Nat, "The network is internal: nothing leaves it through the uplink.";
    NatPorts => "nat-ports", Nat, "No free source port for masquerade toward that destination.";
    ConntrackClash => "conntrack-clash", Nat, "The translated connection would collide with a tracked one.";
    NatRewrite => "nat-rewrite", Nat, "The frame ends before a header field its translation must change (a port, a checksum, an ICMP error's quote); no connection is kept for it.";
    SrcMulticast => "src-multicast", L2Learn, "The source MAC is a group (multicast or broadcast) address, which no sender may use.";
    SrcZero => "src-zero", L2Learn, "The source MAC is all zeros.";
    StaticConflict => "static-conflict", L2Learn, "The source MAC is pinned by a static entry to another port.";
    SamePort => "same-port", L2Fwd, "The destination MAC was learned on the port the frame came in on, so it is already there.";
    NoEgress => "no-egress", Flood, "The frame was to be flooded but its bridge domain has no other port.";
    Icc => "icc", Icc, "Containers of a network with icc=false may only talk where a link allows it.";
    OffloadError => "offload-error", Egress, "The frame needed its checksum finished or to be segmented in software, and its headers did not allow it.";
    TxBusy => "tx-busy", Egress, "The egress port's queue was full.";
    TxTooBig => "tx-too-big", Egress, "The frame is larger than the egress interface's MTU.";
    LinkDown => "link-down", Egress, "The egress interface is down.";
    TxError => "tx-error", Egress, "The operating system refused the frame for another reason.";
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A stage's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the next stage.
    Continue,
    /// Send out of exactly this port.
    Forward(PortId),
    /// Send out of every other port of the frame's bridge domain.
    Flood,
    /// Stop here.
    Drop(DropReason),
}

/// What the pipeline knows about a frame after `ingress` parsed it. Cheap to copy; borrows the bytes.
#[derive(Clone, Copy, Debug)]
pub struct PacketView<'a> {
    pub frame: &'a [u8],
    pub ingress: PortId,
    pub domain: DomainId,
    /// 802.1Q VLAN of the frame (0 when untagged).
    pub vlan: VlanId,
    pub dst: MacAddr,
    pub src: MacAddr,
    /// The EtherType after any VLAN tag.
    pub ethertype: u16,
    /// Where the L3 header starts (14, or 18 behind one tag).
    pub l3_offset: usize,
    /// The IPv4 or ARP fields, parsed once by `ingress` (`L3::None` in a batch no stage of which
    /// reads them: see `ingress::run`).
    pub l3: L3,
}

impl PacketView<'_> {
    /// The IPv4 fields, when the frame is IPv4 with a complete header.
    #[inline]
    pub fn ipv4(&self) -> Option<Ipv4Summary> {
        self.l3.ipv4()
    }

    /// The ARP fields, when the frame is an Ethernet/IPv4 ARP packet with a complete body.
    #[inline]
    pub fn arp(&self) -> Option<ArpSummary> {
        self.l3.arp()
    }
}

/// The tables stages read. Owned by the engine; stages only get `&Tables`.
pub struct Tables {
    pub cam: CamTable,
    pub policy: Policy,
    pub nat: NatTable,
    pub conntrack: ConnTrack,
    /// Engine time of the current batch in milliseconds (read once per batch).
    pub now_ms: u64,
}

/// A MAC table update a stage asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnEffect {
    pub action: LearnAction,
    pub domain: DomainId,
    pub vlan: VlanId,
    pub mac: MacAddr,
    pub port: PortId,
}

/// Table updates requested by stages, applied by the engine after the stage returns (so a stage is a
/// pure function and a what-if trace can run the same code and discard them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub learn: Option<LearnEffect>,
    /// `address-conflict` saw another host claim a local container's address.
    pub conflict: Option<(std::net::Ipv4Addr, MacAddr)>,
}
