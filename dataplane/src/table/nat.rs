//! NAT configuration the `nat` stage reads: the uplink (its port, MAC, address and next hop), each
//! network's gateway, whether it may reach the world and whether it is routed (no NAT), the
//! published ports, and the uplink's neighbours (address -> MAC, learned from ARP on the uplink).
//!
//! The control plane computes everything but the neighbours from its state and replaces it whole;
//! the engine learns neighbours itself from ARP it sees on the uplink (it owns the uplink address:
//! nothing else answers ARP for it).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::hash::FastHash;
use super::policy::Subnet;
use crate::{DomainId, MacAddr, PortId};

/// The interface switchyard owns toward the world, with its own address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uplink {
    pub port: PortId,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// Next hop for destinations outside the uplink's subnet; `None`: only on-link destinations.
    pub gateway: Option<Ipv4Addr>,
}

impl Uplink {
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        Subnet {
            domain: DomainId(0),
            network: self.ip,
            prefix: self.prefix,
        }
        .contains(ip)
    }

    /// The neighbour a packet to `dst` goes to first.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.on_link(dst) {
            Some(dst)
        } else {
            self.gateway
        }
    }
}

/// One network as NAT sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkNat {
    pub domain: DomainId,
    pub subnet: Subnet,
    pub gateway_ip: Ipv4Addr,
    /// The host port's MAC: what containers send routed traffic to.
    pub gateway_mac: MacAddr,
    /// Outbound traffic and published ports are allowed (`false` for `--internal` networks).
    pub external: bool,
    /// Routed (`gateway_mode=routed`): containers leave by the uplink with their own addresses and
    /// are reached from beyond it by them; no masquerade. Published ports still DNAT.
    pub routed: bool,
}

/// One published port: (protocol, uplink port) -> container address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publish {
    /// Stable id of the mapping, so its tracked connections can be removed with it.
    pub id: u32,
    pub protocol: u8,
    pub host_port: u16,
    pub target: Ipv4Addr,
    pub target_port: u16,
    pub target_mac: MacAddr,
    pub domain: DomainId,
}

#[derive(Clone, Debug)]
pub struct NatTable {
    uplink: Option<Uplink>,
    /// Indexed by domain.
    networks: Vec<Option<NetworkNat>>,
    publish: HashMap<(u8, u16), Publish, FastHash>,
    neighbors: HashMap<Ipv4Addr, MacAddr, FastHash>,
    /// Source ports for masquerade when a flow's own port is taken (Linux uses the same idea).
    pub masquerade_ports: (u16, u16),
    /// The ports (and ICMP identifiers) this engine worker may give a translated flow: see
    /// [`PortShare`]. Set once when the worker starts; commands never change it.
    pub share: PortShare,
}

/// Which translated ports one engine worker of several may choose: those with `port % of ==
/// index`. Workers choose a new flow's port each from their own replica of the connection table,
/// without waiting for each other, so two workers translating two flows to one destination at the
/// same moment could both find the same port free and give the two flows one reply tuple: the
/// replies of one would go to the other's container. Disjoint shares make that impossible (VPP
/// gives each worker its own port range for the same reason). One worker holds every port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortShare {
    pub index: u16,
    pub of: u16,
}

impl PortShare {
    /// A single engine: every port.
    pub const ALL: PortShare = PortShare { index: 0, of: 1 };

    /// Whether this worker may give `port` to a new flow.
    #[inline]
    pub fn holds(self, port: u16) -> bool {
        self.of <= 1 || port % self.of == self.index
    }
}

impl Default for NatTable {
    fn default() -> Self {
        NatTable {
            uplink: None,
            networks: Vec::new(),
            publish: HashMap::with_hasher(FastHash::random()),
            neighbors: HashMap::with_hasher(FastHash::random()),
            masquerade_ports: (1024, 65535),
            share: PortShare::ALL,
        }
    }
}

/// Most neighbours remembered on the uplink (a /16 of hosts talking to us is already unusual).
pub const MAX_NEIGHBORS: usize = 4096;

impl NatTable {
    pub fn uplink(&self) -> Option<&Uplink> {
        self.uplink.as_ref()
    }

    pub fn set_uplink(&mut self, uplink: Option<Uplink>) {
        if self.uplink.map(|u| u.port) != uplink.map(|u| u.port) {
            self.neighbors.clear();
        }
        self.uplink = uplink;
    }

    pub fn network(&self, domain: DomainId) -> Option<&NetworkNat> {
        self.networks
            .get(domain.0 as usize)
            .and_then(|n| n.as_ref())
    }

    pub fn set_networks(&mut self, networks: &[NetworkNat]) {
        self.networks.clear();
        for n in networks {
            let i = n.domain.0 as usize;
            if self.networks.len() <= i {
                self.networks.resize(i + 1, None);
            }
            self.networks[i] = Some(*n);
        }
    }

    /// Whether `ip` lies in any switchyard network (such traffic is never masqueraded).
    pub fn inside(&self, ip: Ipv4Addr) -> bool {
        self.networks
            .iter()
            .flatten()
            .any(|n| n.subnet.contains(ip))
    }

    /// The routed network whose subnet holds `ip`, if any (traffic from beyond the uplink to it is
    /// routed to its container).
    pub fn routed_to(&self, ip: Ipv4Addr) -> Option<&NetworkNat> {
        self.networks
            .iter()
            .flatten()
            .find(|n| n.routed && n.subnet.contains(ip))
    }

    pub fn published(&self, protocol: u8, port: u16) -> Option<&Publish> {
        self.publish.get(&(protocol, port))
    }

    /// The mappings that publish `target`:`port` (`protocol`): `None` if none does, `Some(Ok)`
    /// with the one that does, `Some(Err(()))` if several do. A scan: for packets without a
    /// tracked connection only.
    pub fn published_target(
        &self,
        protocol: u8,
        target: Ipv4Addr,
        port: u16,
    ) -> Option<Result<&Publish, ()>> {
        let mut found = self
            .publish
            .values()
            .filter(|p| p.protocol == protocol && p.target == target && p.target_port == port);
        let first = found.next()?;
        Some(if found.next().is_none() {
            Ok(first)
        } else {
            Err(())
        })
    }

    /// Replaces the published ports; returns the ids of mappings that are gone (their connections
    /// must go too).
    pub fn set_publish(&mut self, publish: &[Publish]) -> Vec<u32> {
        let gone: Vec<u32> = self
            .publish
            .values()
            .filter(|old| !publish.iter().any(|p| p.id == old.id && p == *old))
            .map(|p| p.id)
            .collect();
        self.publish.clear();
        for p in publish {
            self.publish.insert((p.protocol, p.host_port), *p);
        }
        gone
    }

    pub fn neighbor(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.neighbors.get(&ip).copied()
    }

    pub fn learn_neighbor(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        if self.neighbors.len() >= MAX_NEIGHBORS && !self.neighbors.contains_key(&ip) {
            // Bounded: forget everything rather than grow; entries come back with the next ARP.
            self.neighbors.clear();
        }
        self.neighbors.insert(ip, mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(id: u32, port: u16) -> Publish {
        Publish {
            id,
            protocol: 6,
            host_port: port,
            target: Ipv4Addr::new(172, 17, 0, 2),
            target_port: 80,
            target_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            domain: DomainId(0),
        }
    }

    #[test]
    fn next_hop_is_the_destination_on_link_else_the_gateway() {
        let u = Uplink {
            port: PortId(0),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            ip: Ipv4Addr::new(192, 0, 2, 10),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
        };
        assert_eq!(
            u.next_hop(Ipv4Addr::new(192, 0, 2, 77)),
            Some(Ipv4Addr::new(192, 0, 2, 77))
        );
        assert_eq!(
            u.next_hop(Ipv4Addr::new(8, 8, 8, 8)),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(
            Uplink { gateway: None, ..u }.next_hop(Ipv4Addr::new(8, 8, 8, 8)),
            None
        );
    }

    #[test]
    fn replacing_published_ports_reports_the_ones_gone() {
        let mut t = NatTable::default();
        assert!(t
            .set_publish(&[publish(1, 8080), publish(2, 8081)])
            .is_empty());
        assert_eq!(t.published(6, 8080).unwrap().id, 1);
        let mut changed = publish(2, 8081);
        changed.target_port = 81;
        let mut gone = t.set_publish(&[changed]);
        gone.sort();
        assert_eq!(gone, vec![1, 2], "removed, and changed in place");
        assert!(t.published(6, 8080).is_none());
    }
}
