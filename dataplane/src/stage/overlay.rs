//! `overlay`: split horizon between the remote hosts of an overlay network.
//!
//! An overlay network has one VXLAN port per remote host (`port::vxlan`), and every host
//! replicates its own broadcast and unknown frames to all the others (head-end replication). A
//! frame that came from one remote host must therefore never leave toward another: that host has
//! already sent its copy there, and a second copy would be a duplicate at best and, with three
//! hosts flooding each other's floods, a loop. Decided per egress port, because one flooded frame
//! goes to local ports (allowed) and to the other remote hosts (not). A dropped copy is counted
//! as `split-horizon` on the ingress port: every broadcast from a network of N hosts counts N - 2
//! here, which is the rule working, not a fault.

use super::{DropReason, Effects, PacketView, Stage, StageId, Step, Tables, Verdict};
use crate::table::PortRole;
use crate::{DomainId, PortId};

/// Per egress port (`Effects::egress`).
pub struct Overlay;

impl Stage for Overlay {
    const ID: StageId = StageId::Overlay;
    const READS_L3: bool = false;

    fn applies(tables: &Tables, port: PortId, _: DomainId) -> bool {
        matches!(tables.policy.role(port), PortRole::Overlay)
    }

    #[inline]
    fn run(view: &PacketView<'_>, tables: &Tables, effects: &mut Effects) -> Verdict {
        let from_remote = matches!(tables.policy.role(view.ingress), PortRole::Overlay);
        if from_remote && matches!(tables.policy.role(effects.egress()), PortRole::Overlay) {
            Verdict::Drop(DropReason::SplitHorizon)
        } else {
            Verdict::Continue
        }
    }

    /// Nothing for a copy let through (every copy of every frame from a remote host passes
    /// here); a dropped copy is recorded by the wrapper.
    fn trace(_: &PacketView<'_>, _: &Tables, _: Verdict, _: &Effects) -> Option<Step> {
        None
    }
}
