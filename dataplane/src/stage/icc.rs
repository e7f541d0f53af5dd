//! `icc`: on a network created with `icc=false`, containers talk only where a link allows.
//!
//! Decided per egress port, because one flooded frame may go to the host port (always allowed) and
//! to other containers (not). A VXLAN port of an overlay network counts as a container port: what
//! crosses it comes from or goes to a container on another host, so icc holds across hosts (each
//! host drops what its own containers send, and what arrives from others). Between two container
//! ports of a closed network: ARP passes (so
//! allowed flows can resolve addresses), TCP and UDP pass when a link rule matches (parent to the
//! child's exposed port, or the child's replies from it: the stateless pair of rules Docker
//! installs), everything else (other IPv4, IPv6, other EtherTypes, non-first fragments) is dropped.
//! Rules are looked up on every packet, so a removed link closes established flows at once.

use super::{DropReason, Effects, PacketView, Stage, StageId, Step, Tables, Verdict};
use crate::table::{LinkPort, LinkRule, PortRole};
use crate::wire::ethernet::ethertype;
use crate::{DomainId, PortId};

/// Per egress port (`Effects::egress`); leaves the rule that allowed the copy in `Effects::link`.
pub struct Icc;

impl Stage for Icc {
    const ID: StageId = StageId::Icc;

    fn applies(tables: &Tables, _: PortId, domain: DomainId) -> bool {
        tables.policy.icc_closed(domain)
    }

    #[inline]
    fn run(view: &PacketView<'_>, tables: &Tables, effects: &mut Effects) -> Verdict {
        match decide(view, tables, effects.egress()) {
            Ok(rule) => {
                effects.set_link(rule);
                Verdict::Continue
            }
            Err(reason) => Verdict::Drop(reason),
        }
    }

    fn trace(_: &PacketView<'_>, _: &Tables, verdict: Verdict, effects: &Effects) -> Option<Step> {
        let egress = effects.egress();
        Some(match verdict {
            Verdict::Drop(_) => Step::IccDenied { egress },
            _ => Step::IccAllowed {
                egress,
                rule: effects.link(),
            },
        })
    }
}

/// The decision with its reason: `Ok(Some(rule))` allowed by a link rule, `Ok(None)` not subject
/// to icc (an open network, the host port, ARP), `Err` dropped.
#[inline]
fn decide(
    view: &PacketView<'_>,
    tables: &Tables,
    egress: PortId,
) -> Result<Option<LinkRule>, DropReason> {
    let policy = &tables.policy;
    let to_or_from_a_container = |port| {
        matches!(
            policy.role(port),
            PortRole::Container(_) | PortRole::Overlay
        )
    };
    if !policy.icc_closed(view.domain)
        || !to_or_from_a_container(view.ingress)
        || !to_or_from_a_container(egress)
        || view.ethertype == ethertype::ARP
    {
        return Ok(None);
    }
    let Some(ip) = view.ipv4() else {
        return Err(DropReason::Icc);
    };
    let Some((sport, dport)) = ip.ports() else {
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
