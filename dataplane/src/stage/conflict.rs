//! `address-conflict`: ARP from a network's L2 uplink claiming an address a local container holds.
//!
//! Two hosts sharing a network over a wire each run their own address management; `--ip-range`
//! per host keeps them apart, but a static `--ip` or a misconfigured host can still hand out an
//! address twice. The gratuitous ARP every attach sends makes such a conflict visible at once:
//! an ARP from the parent port whose sender address belongs to a local container with another MAC
//! is dropped (so local neighbour caches keep the right owner), counted as `ip-conflict`, and
//! reported to the control plane as an effect (`switchyard stats` lists recent conflicts).

use super::{DropReason, Effects, PacketView, Tables, Verdict};

pub fn run(view: &PacketView<'_>, tables: &Tables, effects: &mut Effects) -> Verdict {
    let Some(arp) = view.arp() else {
        return Verdict::Continue;
    };
    match tables.policy.owner(arp.sender_ip) {
        Some(mac) if mac != arp.sender_mac => {
            effects.conflict = Some((arp.sender_ip, arp.sender_mac));
            Verdict::Drop(DropReason::IpConflict)
        }
        _ => Verdict::Continue,
    }
}
