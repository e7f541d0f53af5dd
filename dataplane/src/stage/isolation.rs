//! `isolation`: traffic the host routes from one switchyard network into another is dropped.
//!
//! Docker's DOCKER-ISOLATION chains do this in the kernel; here it is decided where such traffic
//! enters a network: through its host port (`PortRole::Host`), with an IPv4 source address inside
//! another switchyard network's subnet. Two exceptions, both about a container attached to both
//! networks, which could reach the other side directly anyway: the source address belongs to a
//! container also attached to this network, or the destination belongs to a container also
//! attached to the source's network. Traffic from the host itself or from beyond it (any address
//! outside switchyard's subnets) passes.

use super::{DropReason, Effects, PacketView, Stage, StageId, Step, Tables, Verdict};
use crate::table::PortRole;
use crate::{DomainId, PortId};

pub struct Isolation;

impl Stage for Isolation {
    const ID: StageId = StageId::Isolation;

    fn applies(tables: &Tables, port: PortId, _: DomainId) -> bool {
        matches!(tables.policy.role(port), PortRole::Host)
    }

    #[inline]
    fn run(view: &PacketView<'_>, tables: &Tables, _: &mut Effects) -> Verdict {
        decide(view, tables)
    }

    fn trace(_: &PacketView<'_>, _: &Tables, verdict: Verdict, _: &Effects) -> Option<Step> {
        (verdict == Verdict::Continue).then_some(Step::IsolationChecked)
    }
}

#[inline]
fn decide(view: &PacketView<'_>, tables: &Tables) -> Verdict {
    if tables.policy.role(view.ingress) != &PortRole::Host {
        return Verdict::Continue;
    }
    let Some(ip) = view.ipv4() else {
        return Verdict::Continue;
    };
    let policy = &tables.policy;
    match policy.foreign_network(ip.src, view.domain) {
        None => Verdict::Continue,
        Some(from) => {
            if policy.attached_to(ip.src, view.domain) || policy.attached_to(ip.dst, from) {
                Verdict::Continue
            } else {
                Verdict::Drop(DropReason::Isolation)
            }
        }
    }
}
