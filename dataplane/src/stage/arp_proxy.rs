//! `arp-proxy`: a container's ARP request for a container on another host of an overlay
//! network, answered on this host from the cluster's endpoint table.
//!
//! Every daemon publishes its overlay endpoints (address, MAC, host) in etcd and programs the
//! others' into `Policy` (`PolicyUpdate::RemoteEndpoints`), with a static MAC entry behind the
//! VXLAN port of the host that holds each one, as Docker's overlay driver and flannel fill the
//! kernel's neighbour and FDB tables. So ARP for a remote container never crosses the underlay:
//! the answer comes back out of the port that asked (`Answer::RemoteArp`), and the first frame
//! to that MAC goes straight to its host, never flooded. Requests of any kind (broadcast, and
//! the unicast probes a neighbour cache sends to confirm an entry) are answered; an address the
//! table does not hold (a local container, the gateway, an endpoint not yet published) goes on
//! to `l2-fwd`, which floods it as before. Runs after `anti-spoof` (a container cannot ask in
//! another's name) and `l2-learn` (the asker's MAC is learned as from any frame).

use super::nat::{Answer, NatAction};
use super::{Effects, PacketView, Stage, StageId, Step, Tables, Verdict};
use crate::table::PortRole;
use crate::wire::arp::operation;
use crate::{DomainId, PortId};

pub struct ArpProxy;

impl Stage for ArpProxy {
    const ID: StageId = StageId::ArpProxy;

    fn applies(tables: &Tables, port: PortId, domain: DomainId) -> bool {
        matches!(tables.policy.role(port), PortRole::Container(_))
            && tables.policy.has_remote_endpoints(domain)
    }

    #[inline]
    fn run(view: &PacketView<'_>, tables: &Tables, effects: &mut Effects) -> Verdict {
        let Some(arp) = view.arp() else {
            return Verdict::Continue;
        };
        if arp.op != operation::REQUEST {
            return Verdict::Continue;
        }
        match tables.policy.remote_endpoint(view.domain, arp.target_ip) {
            Some(mac) => {
                effects.set_nat(NatAction::Answer(Answer::RemoteArp {
                    ip: arp.target_ip,
                    mac,
                }));
                Verdict::Handled
            }
            None => Verdict::Continue,
        }
    }

    /// The answer when there is one; nothing for the frames that pass (most of them).
    fn trace(_: &PacketView<'_>, _: &Tables, verdict: Verdict, fx: &Effects) -> Option<Step> {
        match (verdict, fx.nat()?) {
            (Verdict::Handled, NatAction::Answer(a)) => Some(Step::Answered(*a)),
            _ => None,
        }
    }
}
