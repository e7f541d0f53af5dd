//! `icc`: on a network created with `icc=false`, containers talk only where a link allows.
//!
//! Decided per egress port, because one flooded frame may go to the host port (always allowed) and
//! to other containers (not). Between two container ports of a closed network: ARP passes (so
//! allowed flows can resolve addresses), TCP and UDP pass when a link rule matches (parent to the
//! child's exposed port, or the child's replies from it: the stateless pair of rules Docker
//! installs), everything else (other IPv4, IPv6, other EtherTypes, non-first fragments) is dropped.
//! Rules are looked up on every packet, so a removed link closes established flows at once.

use super::{l3, DropReason, PacketView, Tables, Verdict};
use crate::table::{LinkPort, LinkRule, PortRole};
use crate::PortId;

/// Whether the frame may leave through `egress`.
pub fn run(view: &PacketView<'_>, tables: &Tables, egress: PortId) -> Verdict {
    let policy = &tables.policy;
    if !policy.icc_closed(view.domain)
        || !matches!(policy.role(view.ingress), PortRole::Container(_))
        || !matches!(policy.role(egress), PortRole::Container(_))
        || view.ethertype == l3::ETHERTYPE_ARP
    {
        return Verdict::Continue;
    }
    let Some(ip) = l3::ipv4(view) else {
        return Verdict::Drop(DropReason::Icc);
    };
    let Some((sport, dport)) = ip.ports else {
        return Verdict::Drop(DropReason::Icc);
    };
    let rule = |port| LinkRule {
        src: ip.src,
        dst: ip.dst,
        protocol: ip.protocol,
        port,
    };
    if policy.link_allows(&rule(LinkPort::Dst(dport)))
        || policy.link_allows(&rule(LinkPort::Src(sport)))
    {
        Verdict::Continue
    } else {
        Verdict::Drop(DropReason::Icc)
    }
}
