//! `l2-learn`: learns which port a source MAC lives behind.
//!
//! Decides whether the source MAC may be learned (never a group address or all zeros, which only a
//! broken or malicious sender uses: dropped, as the Linux bridge does) and what the table should do:
//! nothing (fresh entry), refresh, learn, or move it from another port. A source MAC pinned by a static
//! entry to another port is dropped rather than moved: a static entry is the operator saying where that
//! MAC lives. The update itself is an effect the engine applies; eviction when the table is full is
//! the table's business (see `table::cam`).

use super::{
    DropReason, Effects, LearnEffect, PacketView, Prefetch, Stage, StageId, Step, Tables, Verdict,
};
use crate::table::LearnAction;

pub struct L2Learn;

impl Stage for L2Learn {
    const ID: StageId = StageId::L2Learn;
    const READS_L3: bool = false;

    /// Always inlined: every switched frame runs it, and out of line (where the inliner's budget
    /// left it once the pipeline grew) it cost a call, the view through memory and reloaded
    /// constants after it (callgrind, bench/RESULTS.md).
    #[inline(always)]
    fn run(view: &PacketView<'_>, tables: &Tables, effects: &mut Effects) -> Verdict {
        if view.src.is_multicast() {
            return Verdict::Drop(DropReason::SrcMulticast);
        }
        if view.src.is_zero() {
            return Verdict::Drop(DropReason::SrcZero);
        }
        match tables.cam.classify_learn(
            view.domain,
            view.vlan,
            view.src,
            view.ingress,
            tables.now_ms,
        ) {
            // A full table of static entries leaves nothing to evict: forward without learning.
            LearnAction::None | LearnAction::Reject(_) => {}
            LearnAction::StaticConflict => return Verdict::Drop(DropReason::StaticConflict),
            action => effects.set_learn(LearnEffect {
                action,
                domain: view.domain,
                vlan: view.vlan,
                mac: view.src,
                port: view.ingress,
            }),
        }
        Verdict::Continue
    }

    /// The source's entry, which `run` reads to decide.
    #[inline(always)]
    fn prefetch(view: &PacketView<'_>, tables: &Tables, pass: Prefetch) {
        let (cam, d, v, mac) = (&tables.cam, view.domain, view.vlan, view.src);
        match pass {
            Prefetch::Bucket => cam.prefetch(d, v, mac),
            Prefetch::Entry => cam.prefetch_entry(d, v, mac),
        }
    }

    fn trace(view: &PacketView<'_>, _: &Tables, verdict: Verdict, fx: &Effects) -> Option<Step> {
        (verdict == Verdict::Continue).then(|| Step::Learned {
            mac: view.src,
            action: fx.updates().learn.map_or(LearnAction::None, |l| l.action),
        })
    }
}
