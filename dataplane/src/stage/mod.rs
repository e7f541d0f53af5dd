//! Pipeline stages: pure functions from a packet view and the tables to a verdict.
//!
//! A stage is a type implementing `Stage`, whose `run` is
//! `fn(&PacketView, &Tables, &mut Effects) -> Verdict`. It does no I/O, no logging and no
//! allocation; a table change it wants (a learned MAC) is written into `Effects` and applied by the
//! engine, so the same stage code serves live forwarding, what-if traces and tests. Every stage has one
//! stable name (`StageId::name`) used by counters, traces and docs, and every drop carries a
//! `DropReason` with its own counter.
//!
//! The order is two lists below: `PerFrame` (every frame, after `ingress` made its view) and
//! `PerEgress` (each copy, per egress port). The engine calls every stage through one wrapper
//! (`engine::pipeline`), which traces, counts drops and applies effects.
//!
//! Adding a stage touches this file and the stage's own: its `mod` line, its line in `stage_ids!`
//! (in pipeline order), its place in `PerFrame` or `PerEgress`, and a line in `drop_reasons!` per
//! new drop reason (which gives it its counter). Its file holds a type implementing `Stage`; a
//! stage without a `Step` of its own is traced as `Step::Passed`, so neither `Step` nor the
//! control plane's renderer need to change. Only a new kind of table change needs the engine: a
//! field in `effects::TableUpdates` and its line in `engine::pipeline::apply`.

pub mod anti_spoof;
pub mod arp_proxy;
pub mod conflict;
mod effects;
pub mod icc;
pub mod ingress;
pub mod isolation;
pub mod l2_fwd;
pub mod l2_learn;
pub mod nat;
pub mod overlay;
pub mod step;

use std::fmt;

use crate::table::{CamTable, ConnTrack, NatTable, Policy};
use crate::wire::headers::{ArpSummary, Ipv4Summary, L3};
use crate::{DomainId, MacAddr, PortId, VlanId};
pub use effects::{Effects, LearnEffect};
pub use step::Step;

/// `stages![A, B, C]`: the type of a list of stages run in that order.
macro_rules! stages {
    () => { () };
    ($first:ty $(, $rest:ty)* $(,)?) => { ($first, stages![$($rest),*]) };
}

/// The stages every frame goes through after `ingress`, in order, until one decides.
pub type PerFrame = stages![
    anti_spoof::AntiSpoof,
    isolation::Isolation,
    conflict::Conflict,
    nat::Nat,
    l2_learn::L2Learn,
    arp_proxy::ArpProxy,
    l2_fwd::L2Fwd,
];

/// The stages each copy goes through on its way to one egress port (`Effects::egress`), after
/// `l2-fwd` chose the port or the flood list gave it.
pub type PerEgress = stages![icc::Icc, overlay::Overlay];

/// One stage: a pure decision about a frame. See the module documentation.
pub trait Stage {
    const ID: StageId;
    /// Whether `run` reads `PacketView::l3` (so `ingress` parses it for batches this stage applies
    /// to). Batches no such stage applies to run a copy of the pipeline without these stages
    /// (`engine::pipeline`'s `PARSE_L3`), where `l3` is always `L3::None`.
    const READS_L3: bool = true;

    /// Whether the stage runs at all for frames from `port` in `domain`. Decided once per batch
    /// (both are fixed for a batch), so a port without policy pays nothing per frame for policy.
    #[inline]
    fn applies(tables: &Tables, port: PortId, domain: DomainId) -> bool {
        let _ = (tables, port, domain);
        true
    }

    fn run(view: &PacketView<'_>, tables: &Tables, effects: &mut Effects) -> Verdict;

    /// A hint, not a decision: asks the CPU to start loading what `run` will read of the tables
    /// for this frame (a table's bucket in the first pass, the entry it names in the second; see
    /// `Prefetch`). The engine calls it for every frame of a batch before running the pipeline
    /// over any (`engine::pipeline`), so that in tables larger than the caches the batch's misses
    /// overlap instead of costing a memory latency each in turn. Changes nothing; by default
    /// does nothing.
    #[inline(always)]
    fn prefetch(view: &PacketView<'_>, tables: &Tables, pass: Prefetch) {
        let _ = (view, tables, pass);
    }

    /// What a trace records of `verdict`, before the wrapper records a drop as `Step::Dropped`.
    /// By default a frame let through is `Step::Passed`; stages with more to say have their own
    /// `Step`. Only called for traced packets.
    fn trace(
        view: &PacketView<'_>,
        tables: &Tables,
        verdict: Verdict,
        effects: &Effects,
    ) -> Option<Step> {
        let _ = (view, tables, effects);
        (verdict == Verdict::Continue).then_some(Step::Passed { stage: Self::ID })
    }
}

/// Which of a batch's two prefetch passes (`Stage::prefetch`): a lookup reads a bucket, then the
/// entry the bucket names, so the second pass can only ask for the entry once the first pass's
/// bucket has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefetch {
    /// Ask for the index buckets the frame's lookups read first.
    Bucket,
    /// Read those buckets and ask for the entries they name.
    Entry,
}

/// Calls one stage: the engine's wrapper (tracing, drop counting, effects), or a test's.
pub trait CallStage {
    fn call<S: Stage>(&mut self, view: &PacketView<'_>, effects: &mut Effects) -> Verdict;
}

/// A list of stages run in order (`stages![A, B]` is `(A, (B, ()))`), each through `CallStage`.
pub trait Stages {
    /// The first verdict other than `Continue` (`Continue` if every stage let the frame through).
    fn run<C: CallStage>(call: &mut C, view: &PacketView<'_>, effects: &mut Effects) -> Verdict;
    /// `Stage::prefetch` of every stage of the list in `set`.
    fn prefetch(view: &PacketView<'_>, tables: &Tables, set: StageSet, pass: Prefetch);
    /// Adds the stages that apply to a batch from `port` in `domain`.
    fn applying(tables: &Tables, port: PortId, domain: DomainId, set: &mut StageSet);
    /// The list's stages, in order.
    #[cfg(test)]
    fn ids(out: &mut Vec<StageId>);
}

impl Stages for () {
    #[inline(always)]
    fn run<C: CallStage>(_: &mut C, _: &PacketView<'_>, _: &mut Effects) -> Verdict {
        Verdict::Continue
    }

    #[inline(always)]
    fn prefetch(_: &PacketView<'_>, _: &Tables, _: StageSet, _: Prefetch) {}

    fn applying(_: &Tables, _: PortId, _: DomainId, _: &mut StageSet) {}

    #[cfg(test)]
    fn ids(_: &mut Vec<StageId>) {}
}

impl<S: Stage, Rest: Stages> Stages for (S, Rest) {
    #[inline(always)]
    fn run<C: CallStage>(call: &mut C, view: &PacketView<'_>, effects: &mut Effects) -> Verdict {
        match call.call::<S>(view, effects) {
            Verdict::Continue => Rest::run(call, view, effects),
            decided => decided,
        }
    }

    #[inline(always)]
    fn prefetch(view: &PacketView<'_>, tables: &Tables, set: StageSet, pass: Prefetch) {
        if set.contains(S::ID) {
            S::prefetch(view, tables, pass);
        }
        Rest::prefetch(view, tables, set, pass)
    }

    fn applying(tables: &Tables, port: PortId, domain: DomainId, set: &mut StageSet) {
        if S::applies(tables, port, domain) {
            set.insert(S::ID, S::READS_L3);
        }
        Rest::applying(tables, port, domain, set)
    }

    #[cfg(test)]
    fn ids(out: &mut Vec<StageId>) {
        out.push(S::ID);
        Rest::ids(out)
    }
}

/// The stages that apply to one batch (see `Stage::applies`), and whether any reads L3.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageSet {
    bits: u32,
    reads_l3: bool,
}

impl StageSet {
    /// The stages of `S` that apply to a batch from `port` in `domain`.
    pub fn of<S: Stages>(tables: &Tables, port: PortId, domain: DomainId) -> StageSet {
        let mut set = StageSet::default();
        S::applying(tables, port, domain, &mut set);
        set
    }

    pub fn insert(&mut self, stage: StageId, reads_l3: bool) {
        self.bits |= 1 << stage as u32;
        self.reads_l3 |= reads_l3;
    }

    #[inline(always)]
    pub fn contains(&self, stage: StageId) -> bool {
        self.bits & (1 << stage as u32) != 0
    }

    /// Whether a stage of the set reads `PacketView::l3`.
    pub fn reads_l3(&self) -> bool {
        self.reads_l3
    }

    pub fn union(self, other: StageSet) -> StageSet {
        StageSet {
            bits: self.bits | other.bits,
            reads_l3: self.reads_l3 || other.reads_l3,
        }
    }
}

macro_rules! stage_ids {
    ($($id:ident => $name:literal, $doc:literal;)*) => {
        /// The stages, in pipeline order, each with one stable name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum StageId {
            $(#[doc = $doc] $id,)*
        }

        impl StageId {
            pub const ALL: [StageId; [$(StageId::$id,)*].len()] = [$(StageId::$id,)*];

            /// Stable short name, used in counters, traces and docs.
            pub fn name(self) -> &'static str {
                match self { $(StageId::$id => $name,)* }
            }
        }
    };
}

// The one list of stage names. `PerFrame` and `PerEgress` below say which run where.
stage_ids! {
    Ingress => "ingress", "Bytes to a `PacketView` (not a `Stage`: it makes the view the others read).";
    AntiSpoof => "anti-spoof", "`anti_spoof::AntiSpoof`.";
    Isolation => "isolation", "`isolation::Isolation`.";
    Conflict => "address-conflict", "`conflict::Conflict`.";
    Nat => "nat", "`nat::Nat`.";
    L2Learn => "l2-learn", "`l2_learn::L2Learn`.";
    ArpProxy => "arp-proxy", "`arp_proxy::ArpProxy`.";
    L2Fwd => "l2-fwd", "`l2_fwd::L2Fwd`.";
    Flood => "flood", "The engine copies a flooded frame to the other ports of its bridge domain.";
    Icc => "icc", "`icc::Icc`.";
    Overlay => "overlay", "`overlay::Overlay`.";
    Egress => "egress", "The engine sends (offload fixups, the port's send).";
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
    BadIpHeader => "bad-ip-header", Ingress, "An IPv4 packet's header is malformed: version not 4, or header length below 20 bytes or past the frame's end.";
    BadIpLength => "bad-ip-length", Ingress, "An IPv4 packet's total length is shorter than its header or longer than the frame.";
    Tagged => "tagged", AntiSpoof, "A container sent an 802.1Q-tagged frame; its network is untagged (a VLAN belongs on a parent interface: --parent IFNAME --vlan ID).";
    SpoofMac => "spoof-mac", AntiSpoof, "A container sent from a MAC (Ethernet source or ARP sender) that is not its own.";
    SpoofIp => "spoof-ip", AntiSpoof, "A container sent IPv4 or ARP from an address that is not its own.";
    Isolation => "isolation", Isolation, "The host routed the packet from another switchyard network into this one; networks are isolated.";
    IpConflict => "ip-conflict", Conflict, "Another host on the network's uplink claims (ARP) an address a local container holds; the claim is dropped and reported.";
    NotLocal => "not-local", Nat, "The frame reached the uplink but is not for switchyard's uplink address (its IP address, or for IPv4 its MAC).";
    NoMapping => "no-mapping", Nat, "Nothing is published on that protocol and port of the uplink address.";
    NoRoute => "no-route", Nat, "The destination is off the uplink's subnet and the uplink has no gateway.";
    NoHost => "no-host", Nat, "The destination lies in a routed network but no container there holds that address (an ICMP host unreachable went back, when one may).";
    TtlExceeded => "ttl-exceeded", Nat, "A packet to route had no TTL left (an ICMP time exceeded went back, when one may, at most 1000 per second).";
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
    SplitHorizon => "split-horizon", Overlay, "A frame from one remote host of an overlay network is not sent on to another: each host sends its own copies (normal for every broadcast on a network of three or more hosts).";
    HostLocal => "host-local", Overlay, "Each host of an overlay network has its own host port (its own gateway); nothing crosses between a host port and a remote host.";
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
    /// The stage took the frame out of switching: the engine carries out what the stage put in
    /// `Effects::nat` (a translation or an answer, and the port it leaves by; or nothing) instead.
    Handled,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_lists_run_in_stage_order_under_unique_names() {
        let mut order = vec![StageId::Ingress];
        PerFrame::ids(&mut order);
        order.push(StageId::Flood);
        PerEgress::ids(&mut order);
        order.push(StageId::Egress);
        assert_eq!(
            order,
            StageId::ALL,
            "StageId lists the stages in pipeline order"
        );
        let mut names: Vec<&str> = StageId::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), StageId::ALL.len());
    }

    #[test]
    fn stage_sets_know_their_members_and_whether_one_reads_l3() {
        let mut set = StageSet::default();
        assert!(!set.contains(StageId::L2Fwd) && !set.reads_l3());
        set.insert(StageId::L2Fwd, false);
        assert!(set.contains(StageId::L2Fwd) && !set.reads_l3());
        let mut other = StageSet::default();
        other.insert(StageId::Icc, true);
        let both = set.union(other);
        assert!(both.contains(StageId::Icc) && both.contains(StageId::L2Fwd) && both.reads_l3());
        assert!(!both.contains(StageId::Nat));
    }
}
