//! `l2-fwd`: picks the egress for a frame by its destination MAC.
//!
//! Broadcast and multicast are flooded (no IGMP/MLD snooping: every port of the bridge domain gets
//! them, as on docker0). A known unicast destination goes to its port; one learned on the ingress port
//! is dropped, since the frame is already on that segment. An unknown unicast destination is flooded;
//! the answer will teach the table where it lives. ARP needs no special case: requests are broadcast,
//! replies are unicast to a MAC the request just taught us.

use super::{DropReason, Effects, PacketView, Prefetch, Stage, StageId, Step, Tables, Verdict};

pub struct L2Fwd;

impl Stage for L2Fwd {
    const ID: StageId = StageId::L2Fwd;
    const READS_L3: bool = false;

    /// Always inlined: every switched frame runs it, and out of line (where the inliner's budget
    /// left it once the pipeline grew) it cost a call, the view through memory and reloaded
    /// constants after it (callgrind, bench/RESULTS.md).
    #[inline(always)]
    fn run(view: &PacketView<'_>, tables: &Tables, _: &mut Effects) -> Verdict {
        if view.dst.is_multicast() {
            return Verdict::Flood;
        }
        match tables.cam.lookup(view.domain, view.vlan, view.dst) {
            Some(port) if port == view.ingress => Verdict::Drop(DropReason::SamePort),
            Some(port) => Verdict::Forward(port),
            None => Verdict::Flood,
        }
    }

    /// The destination's line, for a unicast destination (the ones `run` looks up): the slot
    /// holds the port, so the entry pass has nothing to add.
    #[inline(always)]
    fn prefetch(view: &PacketView<'_>, tables: &Tables, pass: Prefetch) {
        let (cam, d, v, mac) = (&tables.cam, view.domain, view.vlan, view.dst);
        match pass {
            _ if mac.is_multicast() => {}
            Prefetch::Bucket => cam.prefetch(d, v, mac),
            Prefetch::Entry => {}
        }
    }

    /// A hit; a flood is recorded by the engine, which knows how many ports it reaches.
    fn trace(view: &PacketView<'_>, _: &Tables, verdict: Verdict, _: &Effects) -> Option<Step> {
        match verdict {
            Verdict::Forward(port) => Some(Step::Hit {
                mac: view.dst,
                port,
            }),
            _ => None,
        }
    }
}
