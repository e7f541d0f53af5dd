//! `icc`: on a network created with `icc=false`, containers talk only where a link allows.
//!
//! Decided per egress port, because one flooded frame may go to the host port (always allowed) and
//! to other containers (not). Between two container ports of a closed network: ARP passes (so
//! allowed flows can resolve addresses), TCP and UDP pass when a link rule matches (parent to the
//! child's exposed port, or the child's replies from it: the stateless pair of rules Docker
//! installs), everything else (other IPv4, IPv6, other EtherTypes, non-first fragments) is dropped.
//! Rules are looked up on every packet, so a removed link closes established flows at once.

use super::{DropReason, PacketView, Tables, Verdict};
use crate::table::{LinkPort, LinkRule, PortRole};
use crate::wire::ethernet::ethertype;
use crate::PortId;

/// Whether the frame may leave through `egress`.
#[inline]
pub fn run(view: &PacketView<'_>, tables: &Tables, egress: PortId) -> Verdict {
    match decide(view, tables, egress) {
        Ok(_) => Verdict::Continue,
        Err(reason) => Verdict::Drop(reason),
    }
}

/// The decision with its reason: `Ok(Some(rule))` allowed by a link rule, `Ok(None)` not subject
/// to icc (an open network, the host port, ARP), `Err` dropped.
#[inline]
pub fn decide(
    view: &PacketView<'_>,
    tables: &Tables,
    egress: PortId,
) -> Result<Option<LinkRule>, DropReason> {
    let policy = &tables.policy;
    if !policy.icc_closed(view.domain)
        || !matches!(policy.role(view.ingress), PortRole::Container(_))
        || !matches!(policy.role(egress), PortRole::Container(_))
        || view.ethertype == ethertype::ARP
    {
        return Ok(None);
    }
    let Some(ip) = view.ipv4() else {
        return Err(DropReason::Icc);
    };
    let Some((sport, dport)) = ip.ports else {
        return Err(DropReason::Icc);
    };
    let rule = |port| LinkRule {
        src: ip.src,
        dst: ip.dst,
        protocol: ip.protocol,
        port,
    };
    [rule(LinkPort::Dst(dport)), rule(LinkPort::Src(sport))]
        .into_iter()
        .find(|r| policy.link_allows(r))
        .map(Some)
        .ok_or(DropReason::Icc)
}
