//! `overlay`: what may cross between this host and the remote hosts of an overlay network.
//!
//! An overlay network has one VXLAN port per remote host (`port::vxlan`), and every host
//! replicates its own broadcast and unknown frames to all the others (head-end replication). Two
//! rules, decided per egress port because one flooded frame goes to local ports and to remote
//! hosts alike:
//! - split horizon: a frame that came from one remote host never leaves toward another. That
//!   host has already sent its copy there, and a second copy would be a duplicate at best and,
//!   with three hosts flooding each other's floods, a loop (`split-horizon`; every broadcast on a
//!   network of N hosts counts N - 2 here, which is the rule working, not a fault);
//! - the host port is local: every host holds the network's gateway address on its own host port
//!   (so each container leaves through its own host), so nothing crosses between a host port and
//!   a remote host; otherwise a container's ARP for its gateway would be answered by every host
//!   (`host-local`).

use super::{DropReason, Effects, PacketView, Stage, StageId, Step, Tables, Verdict};
use crate::table::PortRole;
use crate::{DomainId, PortId};

/// Per egress port (`Effects::egress`).
pub struct Overlay;

impl Stage for Overlay {
    const ID: StageId = StageId::Overlay;
    const READS_L3: bool = false;

    fn applies(tables: &Tables, port: PortId, _: DomainId) -> bool {
        matches!(tables.policy.role(port), PortRole::Overlay | PortRole::Host)
    }

    #[inline]
    fn run(view: &PacketView<'_>, tables: &Tables, effects: &mut Effects) -> Verdict {
        let roles = (
            tables.policy.role(view.ingress),
            tables.policy.role(effects.egress()),
        );
        match roles {
            (PortRole::Overlay, PortRole::Overlay) => Verdict::Drop(DropReason::SplitHorizon),
            (PortRole::Overlay, PortRole::Host) | (PortRole::Host, PortRole::Overlay) => {
                Verdict::Drop(DropReason::HostLocal)
            }
            _ => Verdict::Continue,
        }
    }

    /// Nothing for a copy let through (every copy of every frame from a remote host or a host
    /// port passes here); a dropped copy is recorded by the wrapper.
    fn trace(_: &PacketView<'_>, _: &Tables, _: Verdict, _: &Effects) -> Option<Step> {
        None
    }
}
