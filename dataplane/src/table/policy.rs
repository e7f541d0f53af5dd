//! Policy tables: who a port is, which networks keep inter-container traffic closed, which link
//! rules open it, and which subnets belong to which network.
//!
//! The control plane computes all of it from its state and replaces it through engine commands; the
//! engine never derives policy itself. Lookups on the per-packet path are a `Vec` index by port or
//! domain and, only on `icc=false` networks or on host ports, a hash lookup. A port the control
//! plane never described is `PortRole::Plain`: switched without any check, which is what
//! `switchyard bridge` and uplinks want.
//!
//! It also holds the cluster's endpoints on other hosts (overlay networks): which MAC holds
//! which address behind a remote host, per bridge domain, so `arp-proxy` answers a container's
//! ARP for a remote container on this host instead of flooding it across the underlay.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

use super::hash::FastHash;

use crate::{DomainId, MacAddr, PortId};

/// What a port is, for policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PortRole {
    /// No checks at all.
    #[default]
    Plain,
    /// A network's host port (the gateway): always allowed to talk to containers; traffic the host
    /// routes in through it is checked for isolation.
    Host,
    /// A container's endpoint.
    Container(ContainerGuard),
    /// The interface toward the world that switchyard owns with its own address: every frame on
    /// it goes to `nat` (ARP and ping for the address, published ports, replies), never to L2.
    Uplink,
    /// A network's L2 uplink (`--parent`): switched like `Plain`, and ARP from it is checked
    /// against the addresses of local containers (`address-conflict`).
    Parent,
    /// An overlay network's VXLAN port toward one remote host: switched like `Plain`, and what
    /// comes from one remote host never leaves toward another (`overlay`, split horizon).
    Overlay,
}

/// What a container's port may send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerGuard {
    pub mac: MacAddr,
    /// Its IPv4 addresses on this port (normally one).
    pub ips: Vec<Ipv4Addr>,
    /// `--allow-spoofing`: a router-like container may send from other addresses.
    pub allow_spoofing: bool,
}

/// Direction-specific port match of a link rule (Docker installs one of each per exposed port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkPort {
    /// parent -> child, to the exposed port.
    Dst(u16),
    /// child -> parent, from the exposed port.
    Src(u16),
}

/// One allowed direction between two containers on an `icc=false` network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkRule {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// IP protocol number: 6 (TCP) or 17 (UDP).
    pub protocol: u8,
    pub port: LinkPort,
}

impl Hash for LinkRule {
    /// Two words, two finalisers with `FastHash` (the rule is looked up per packet).
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (kind, port) = match self.port {
            LinkPort::Dst(p) => (0u64, p),
            LinkPort::Src(p) => (1u64, p),
        };
        state.write_u64(u64::from(u32::from(self.src)) << 32 | u64::from(u32::from(self.dst)));
        state.write_u64(u64::from(self.protocol) << 24 | kind << 16 | u64::from(port));
    }
}

/// An IPv4 subnet of one switchyard network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub domain: DomainId,
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix.min(32))
        };
        u32::from(ip) & mask == u32::from(self.network) & mask
    }
}

/// Everything the policy stages read. Replaced piecewise by engine commands.
#[derive(Clone, Debug)]
pub struct Policy {
    roles: Vec<PortRole>,
    /// Indexed by domain: `true` when inter-container traffic is closed (`icc=false`).
    closed: Vec<bool>,
    links: HashSet<LinkRule, FastHash>,
    subnets: Vec<Subnet>,
    /// (address, domain): a container owning `address` (on any network) is attached to `domain`.
    attached: HashSet<(Ipv4Addr, DomainId)>,
    /// Local containers' addresses and their MACs (from the container roles).
    owners: HashMap<Ipv4Addr, MacAddr>,
    /// Remote endpoints of overlay networks: `remote_key(domain, address)` -> MAC (`arp-proxy`;
    /// one word, so a lookup is one `FastHash` finaliser).
    remote: HashMap<u64, MacAddr, FastHash>,
    /// Indexed by domain: how many remote endpoints it has (`arp-proxy` applies where > 0).
    remote_count: Vec<u32>,
}

/// Remote endpoints one bridge domain may hold (a /16 of containers on other hosts); more is
/// refused whole (`EngineError::TooManyEndpoints`), the table keeping what it had.
pub const MAX_REMOTE_ENDPOINTS: usize = 65_536;

static PLAIN: PortRole = PortRole::Plain;

fn remote_key(domain: DomainId, ip: Ipv4Addr) -> u64 {
    u64::from(domain.0) << 32 | u64::from(u32::from(ip))
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            roles: Vec::new(),
            closed: Vec::new(),
            links: HashSet::with_hasher(FastHash::random()),
            subnets: Vec::new(),
            attached: HashSet::new(),
            owners: HashMap::new(),
            remote: HashMap::with_hasher(FastHash::random()),
            remote_count: Vec::new(),
        }
    }
}

impl Policy {
    pub fn role(&self, port: PortId) -> &PortRole {
        self.roles.get(port.0 as usize).unwrap_or(&PLAIN)
    }

    /// Sets `port`'s role. The owners index is rebuilt from every role, so a role that changes
    /// costs O(ports); the daemon pushes every port's role after each request, so an unchanged one
    /// returns at once (else creating the Nth container cost O(N^2), N^3 for N containers:
    /// bench/RESULTS.md).
    pub fn set_role(&mut self, port: PortId, role: PortRole) {
        let i = port.0 as usize;
        if self.roles.get(i) == Some(&role) {
            return;
        }
        if self.roles.len() <= i {
            self.roles.resize(i + 1, PortRole::Plain);
        }
        self.roles[i] = role;
        self.owners.clear();
        for r in &self.roles {
            if let PortRole::Container(g) = r {
                for ip in &g.ips {
                    self.owners.insert(*ip, g.mac);
                }
            }
        }
    }

    /// The MAC of the local container owning `ip`, if one does.
    pub fn owner(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.owners.get(&ip).copied()
    }

    /// Whether containers of `domain` may only talk through link rules.
    pub fn icc_closed(&self, domain: DomainId) -> bool {
        self.closed.get(domain.0 as usize).copied().unwrap_or(false)
    }

    pub fn set_icc(&mut self, domain: DomainId, icc: bool) {
        let i = domain.0 as usize;
        if self.closed.len() <= i {
            self.closed.resize(i + 1, false);
        }
        self.closed[i] = !icc;
    }

    pub fn set_links(&mut self, links: HashSet<LinkRule>) {
        self.links.clear();
        self.links.extend(links);
    }

    pub fn link_allows(&self, rule: &LinkRule) -> bool {
        self.links.contains(rule)
    }

    pub fn set_isolation(&mut self, subnets: Vec<Subnet>, attached: HashSet<(Ipv4Addr, DomainId)>) {
        self.subnets = subnets;
        self.attached = attached;
    }

    /// The switchyard network (other than `domain`) whose subnet holds `ip`, if any.
    pub fn foreign_network(&self, ip: Ipv4Addr, domain: DomainId) -> Option<DomainId> {
        self.subnets
            .iter()
            .find(|s| s.domain != domain && s.contains(ip))
            .map(|s| s.domain)
    }

    /// Replaces `domain`'s remote endpoints whole: (address, MAC) of containers on other hosts.
    /// `false` (nothing changed) when there are more than `MAX_REMOTE_ENDPOINTS`.
    pub fn set_remote_endpoints(
        &mut self,
        domain: DomainId,
        endpoints: &[(Ipv4Addr, MacAddr)],
    ) -> bool {
        if endpoints.len() > MAX_REMOTE_ENDPOINTS {
            return false;
        }
        self.remote.retain(|k, _| (k >> 32) as u16 != domain.0);
        for &(ip, mac) in endpoints {
            self.remote.insert(remote_key(domain, ip), mac);
        }
        let i = domain.0 as usize;
        if self.remote_count.len() <= i {
            self.remote_count.resize(i + 1, 0);
        }
        let count = self
            .remote
            .keys()
            .filter(|k| (*k >> 32) as u16 == domain.0)
            .count();
        self.remote_count[i] = count as u32;
        true
    }

    /// The MAC of the remote endpoint holding `ip` in `domain`, if the cluster knows one.
    #[inline]
    pub fn remote_endpoint(&self, domain: DomainId, ip: Ipv4Addr) -> Option<MacAddr> {
        self.remote.get(&remote_key(domain, ip)).copied()
    }

    /// Whether `domain` has remote endpoints (so ARP for them is answered here).
    pub fn has_remote_endpoints(&self, domain: DomainId) -> bool {
        self.remote_count
            .get(domain.0 as usize)
            .is_some_and(|&n| n > 0)
    }

    /// Whether the container owning `ip` is attached to `domain` too.
    pub fn attached_to(&self, ip: Ipv4Addr, domain: DomainId) -> bool {
        self.attached.contains(&(ip, domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_ports_and_domains_are_open() {
        let p = Policy::default();
        assert_eq!(p.role(PortId(900)), &PortRole::Plain);
        assert!(!p.icc_closed(DomainId(7)));
    }

    #[test]
    fn roles_and_icc_are_set_per_index() {
        let mut p = Policy::default();
        p.set_role(PortId(3), PortRole::Host);
        assert_eq!(p.role(PortId(3)), &PortRole::Host);
        assert_eq!(p.role(PortId(2)), &PortRole::Plain);
        p.set_icc(DomainId(2), false);
        assert!(p.icc_closed(DomainId(2)) && !p.icc_closed(DomainId(1)));
        p.set_icc(DomainId(2), true);
        assert!(!p.icc_closed(DomainId(2)));
    }

    #[test]
    fn owners_follow_roles_set_again_or_changed() {
        let mut p = Policy::default();
        let ip = Ipv4Addr::new(172, 17, 0, 2);
        let guard = |mac: u8| {
            PortRole::Container(ContainerGuard {
                mac: MacAddr([2, 0, 0, 0, 0, mac]),
                ips: vec![ip],
                allow_spoofing: false,
            })
        };
        p.set_role(PortId(1), guard(1));
        assert_eq!(p.owner(ip), Some(MacAddr([2, 0, 0, 0, 0, 1])));
        // The same role again (the daemon pushes every role after each request): nothing changes.
        p.set_role(PortId(1), guard(1));
        assert_eq!(p.owner(ip), Some(MacAddr([2, 0, 0, 0, 0, 1])));
        p.set_role(PortId(1), guard(9));
        assert_eq!(p.owner(ip), Some(MacAddr([2, 0, 0, 0, 0, 9])));
        p.set_role(PortId(1), PortRole::Plain);
        assert_eq!(p.owner(ip), None);
        p.set_role(PortId(40), PortRole::Plain);
        assert_eq!(p.role(PortId(40)), &PortRole::Plain);
    }

    #[test]
    fn subnets_and_foreign_networks() {
        let mut p = Policy::default();
        let a = Subnet {
            domain: DomainId(0),
            network: Ipv4Addr::new(172, 17, 0, 0),
            prefix: 16,
        };
        let b = Subnet {
            domain: DomainId(1),
            network: Ipv4Addr::new(10, 1, 0, 0),
            prefix: 24,
        };
        let ip_b = Ipv4Addr::new(10, 1, 0, 5);
        p.set_isolation(vec![a, b], [(ip_b, DomainId(0))].into_iter().collect());
        assert_eq!(p.foreign_network(ip_b, DomainId(0)), Some(DomainId(1)));
        assert_eq!(
            p.foreign_network(ip_b, DomainId(1)),
            None,
            "its own network"
        );
        assert_eq!(
            p.foreign_network(Ipv4Addr::new(8, 8, 8, 8), DomainId(0)),
            None
        );
        assert!(p.attached_to(ip_b, DomainId(0)));
        assert!(!p.attached_to(ip_b, DomainId(2)));
        assert!(Subnet { prefix: 0, ..a }.contains(Ipv4Addr::new(1, 2, 3, 4)));
    }

    #[test]
    fn remote_endpoints_are_replaced_per_domain() {
        let mut p = Policy::default();
        let ip = Ipv4Addr::new(10, 98, 0, 12);
        let mac: MacAddr = "02:42:0a:62:00:0c".parse().unwrap();
        assert!(!p.has_remote_endpoints(DomainId(3)));
        assert!(p.set_remote_endpoints(DomainId(3), &[(ip, mac)]));
        assert!(p.set_remote_endpoints(DomainId(4), &[(ip, mac)]));
        assert_eq!(p.remote_endpoint(DomainId(3), ip), Some(mac));
        assert!(p.has_remote_endpoints(DomainId(3)));
        assert!(p.set_remote_endpoints(DomainId(3), &[]));
        assert_eq!(p.remote_endpoint(DomainId(3), ip), None);
        assert!(!p.has_remote_endpoints(DomainId(3)));
        assert_eq!(
            p.remote_endpoint(DomainId(4), ip),
            Some(mac),
            "another domain's stay"
        );
        let too_many: Vec<_> = (0..=MAX_REMOTE_ENDPOINTS as u32)
            .map(|i| (Ipv4Addr::from(i), mac))
            .collect();
        assert!(!p.set_remote_endpoints(DomainId(4), &too_many));
        assert_eq!(
            p.remote_endpoint(DomainId(4), ip),
            Some(mac),
            "refused whole"
        );
    }
}
