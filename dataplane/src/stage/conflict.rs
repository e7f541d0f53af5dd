//! `address-conflict`: ARP from a network's L2 uplink claiming an address a local container holds.
//!
//! Two hosts sharing a network over a wire each run their own address management; `--ip-range`
//! per host keeps them apart, but a static `--ip` or a misconfigured host can still hand out an
//! address twice. The gratuitous ARP every attach sends makes such a conflict visible at once:
//! an ARP from the parent port whose sender address belongs to a local container with another MAC
//! is dropped (so local neighbour caches keep the right owner), counted as `ip-conflict`, and
//! reported to the control plane as an effect (`switchyard stats` lists recent conflicts).

use super::{DropReason, Effects, PacketView, Stage, StageId, Step, Tables, Verdict};
use crate::table::PortRole;
use crate::{DomainId, PortId};

pub struct Conflict;

impl Stage for Conflict {
    const ID: StageId = StageId::Conflict;

    fn applies(tables: &Tables, port: PortId, _: DomainId) -> bool {
        matches!(tables.policy.role(port), PortRole::Parent)
    }

    fn run(view: &PacketView<'_>, tables: &Tables, effects: &mut Effects) -> Verdict {
        let Some(arp) = view.arp() else {
            return Verdict::Continue;
        };
        match tables.policy.owner(arp.sender_ip) {
            Some(mac) if mac != arp.sender_mac => {
                effects.set_conflict(arp.sender_ip, arp.sender_mac);
                Verdict::Drop(DropReason::IpConflict)
            }
            _ => Verdict::Continue,
        }
    }

    /// Nothing when no one claims a local address: every frame from the wire passes here, and
    /// the trace of a parent port's frame reads as it did before this stage existed.
    fn trace(_: &PacketView<'_>, _: &Tables, _: Verdict, _: &Effects) -> Option<Step> {
        None
    }
}
