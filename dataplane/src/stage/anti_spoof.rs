//! `anti-spoof`: a container's port sends only from the container's own MAC and addresses.
//!
//! Docker has no such check; OVS and cloud switches do, and without it one container can poison
//! its neighbours' ARP caches or take over another's address. Applies to ports whose role is
//! `Container` without `allow_spoofing`. Checked: the Ethernet source MAC, the ARP sender MAC and
//! address, and the IPv4 source address. An ARP probe (sender 0.0.0.0, RFC 5227 duplicate address
//! detection) passes; IPv6 is checked by MAC only (switchyard assigns no IPv6 addresses, and
//! link-local addresses are derived from the MAC). Runs before learning, so a spoofed MAC is never
//! learned. An 802.1Q-tagged frame is dropped too (`tagged`): a container's network is one untagged
//! segment, and each VLAN id would otherwise be a fresh table entry for its MAC and a flood.

use std::net::Ipv4Addr;

use super::{DropReason, Effects, PacketView, Stage, StageId, Step, Tables, Verdict};
use crate::table::{ContainerGuard, PortRole};
use crate::wire::ethernet::ethertype;
use crate::{DomainId, PortId, VlanId};

pub struct AntiSpoof;

impl Stage for AntiSpoof {
    const ID: StageId = StageId::AntiSpoof;

    fn applies(tables: &Tables, port: PortId, _: DomainId) -> bool {
        matches!(tables.policy.role(port), PortRole::Container(_))
    }

    #[inline]
    fn run(view: &PacketView<'_>, tables: &Tables, _: &mut Effects) -> Verdict {
        let PortRole::Container(guard) = tables.policy.role(view.ingress) else {
            return Verdict::Continue;
        };
        if guard.allow_spoofing {
            return Verdict::Continue;
        }
        check(view, guard)
    }

    fn trace(_: &PacketView<'_>, _: &Tables, verdict: Verdict, _: &Effects) -> Option<Step> {
        (verdict == Verdict::Continue).then_some(Step::SpoofChecked)
    }
}

fn check(view: &PacketView<'_>, guard: &ContainerGuard) -> Verdict {
    if view.vlan != VlanId(0) {
        return Verdict::Drop(DropReason::Tagged);
    }
    if view.src != guard.mac {
        return Verdict::Drop(DropReason::SpoofMac);
    }
    match view.ethertype {
        ethertype::ARP => match view.arp() {
            Some(a) if a.sender_mac != guard.mac => Verdict::Drop(DropReason::SpoofMac),
            Some(a)
                if a.sender_ip != Ipv4Addr::UNSPECIFIED && !guard.ips.contains(&a.sender_ip) =>
            {
                Verdict::Drop(DropReason::SpoofIp)
            }
            Some(_) => Verdict::Continue,
            // Not Ethernet/IPv4 ARP: nothing it could poison.
            None => Verdict::Continue,
        },
        ethertype::IPV4 => match view.ipv4() {
            Some(ip) if guard.ips.contains(&ip.src) => Verdict::Continue,
            // A malformed IPv4 header claims no address, but nothing should send one either.
            _ => Verdict::Drop(DropReason::SpoofIp),
        },
        _ => Verdict::Continue,
    }
}
