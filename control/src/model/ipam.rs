//! IPv4 address management that behaves like Docker's default IPAM driver, so that users moving
//! from docker0 get the addresses, gateways and errors they already know.
//!
//! Why things are the way they are:
//! - `--subnet` with host bits set is refused (Docker refuses it too) instead of being silently
//!   truncated: `172.28.5.1/16` usually means the user wanted a different subnet.
//! - The gateway defaults to the first host address (`.1`), the host owns it on the bridge.
//! - Auxiliary addresses must lie in the subnet but not necessarily in the ip-range (Docker checks
//!   them against the "master pool"); they are never handed to containers.
//! - A static `--ip` may be anywhere in the subnet, not only in the ip-range, as in Docker.
//! - Dynamic allocation is sequential and wraps around (Docker's serial allocator): a
//!   just-released address is not reused at once, so stale ARP entries and conntrack state of a
//!   stopped container do not hit its successor. A static address does not move the cursor,
//!   like Docker's bitmap, where only "any" allocations advance it.
//! - Inside an ip-range only the subnet's network and broadcast addresses are reserved; the
//!   range's own first and last addresses are ordinary hosts (Docker hands out e.g. 10.2.1.0 from
//!   `--ip-range 10.2.1.0/24 --subnet 10.2.0.0/16`).
//! - New networks get the first default pool (Docker's order) that overlaps neither another
//!   network nor a route of the host, so a VPN or LAN route is not shadowed by a bridge.
//! - Allocation state is a map of held addresses, not a bitmap, so a /8 costs nothing until used;
//!   finding a free address costs O(addresses held), not O(subnet size).
//!
//! Everything here is pure: no I/O, randomness is supplied by the caller.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::ipv4net::net;
pub use super::ipv4net::Ipv4Net;

/// Errors of address management. Every message is a single line that names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("invalid CIDR '{}': {reason}", one_line(.input))]
    InvalidCidr { input: String, reason: String },
    #[error("invalid subnet '{}': host bits set, did you mean {suggestion}?", one_line(.input))]
    HostBitsSet { input: String, suggestion: Ipv4Net },
    #[error(
        "subnet {subnet} is too small: it needs room for a gateway and at least one container \
         address (the smallest usable subnet is a /30)"
    )]
    SubnetTooSmall { subnet: Ipv4Net },
    #[error("gateway {gateway} is outside subnet {subnet}")]
    GatewayOutside { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("gateway {gateway} is the network address of subnet {subnet}")]
    GatewayIsNetwork { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("gateway {gateway} is the broadcast address of subnet {subnet}")]
    GatewayIsBroadcast { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("ip-range {range} is outside subnet {subnet}")]
    RangeOutside { range: Ipv4Net, subnet: Ipv4Net },
    #[error(
        "ip-range {range} has no address left for containers: it holds only the gateway, aux \
         addresses and the network/broadcast addresses"
    )]
    RangeEmpty { range: Ipv4Net },
    #[error("invalid aux address '{}': {reason}", one_line(.input))]
    InvalidAux { input: String, reason: String },
    #[error("aux address '{}={ip}' is outside subnet {subnet}", one_line(.name))]
    AuxOutside {
        name: String,
        ip: Ipv4Addr,
        subnet: Ipv4Net,
    },
    #[error("aux address '{}={ip}' is the network address of subnet {subnet}", one_line(.name))]
    AuxIsNetwork {
        name: String,
        ip: Ipv4Addr,
        subnet: Ipv4Net,
    },
    #[error("aux address '{}={ip}' is the broadcast address of subnet {subnet}", one_line(.name))]
    AuxIsBroadcast {
        name: String,
        ip: Ipv4Addr,
        subnet: Ipv4Net,
    },
    #[error("aux address '{}={ip}' is the gateway of this network", one_line(.name))]
    AuxIsGateway { name: String, ip: Ipv4Addr },
    #[error(
        "aux address '{}={ip}' uses the same address as aux address '{}'",
        one_line(.name),
        one_line(.other)
    )]
    AuxDuplicate {
        name: String,
        ip: Ipv4Addr,
        other: String,
    },
    #[error("subnet {subnet} overlaps {other} of network '{}'", one_line(.network))]
    Overlap {
        subnet: Ipv4Net,
        other: Ipv4Net,
        network: String,
    },
    #[error("subnet {subnet} overlaps {range}, the {what} range: containers cannot use it")]
    Reserved {
        subnet: Ipv4Net,
        range: Ipv4Net,
        what: &'static str,
    },
    #[error("address {ip} is outside subnet {subnet}")]
    AddressOutside { ip: Ipv4Addr, subnet: Ipv4Net },
    #[error("address {ip} is the network address")]
    AddressIsNetwork { ip: Ipv4Addr },
    #[error("address {ip} is the broadcast address")]
    AddressIsBroadcast { ip: Ipv4Addr },
    #[error("address {ip} is the gateway of this network")]
    AddressIsGateway { ip: Ipv4Addr },
    #[error("address {ip} is reserved as aux address '{}'", one_line(.name))]
    AddressIsAux { ip: Ipv4Addr, name: String },
    #[error("address {ip} is already in use by '{}'", one_line(.holder))]
    AddressInUse { ip: Ipv4Addr, holder: String },
    #[error("no free address left in {range}")]
    PoolExhausted { range: Ipv4Net },
    #[error("no free subnet left in the default pools (all overlap existing networks or routes)")]
    NoDefaultSubnet,
}

/// User-supplied text shown inside an error message: control characters (newlines above all)
/// are escaped so the message stays on one line.
pub(super) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Docker's default address pools in Docker's order: 172.17.0.0/16, 172.18.0.0/16,
/// 172.19.0.0/16, then 172.20.0.0/14, 172.24.0.0/14, 172.28.0.0/14 each split into /16s, then
/// 192.168.0.0/16 split into /20s.
pub fn default_pool_subnets() -> impl Iterator<Item = Ipv4Net> {
    const POOLS: [(Ipv4Net, u8); 7] = [
        (net(172, 17, 16), 16),
        (net(172, 18, 16), 16),
        (net(172, 19, 16), 16),
        (net(172, 20, 14), 16),
        (net(172, 24, 14), 16),
        (net(172, 28, 14), 16),
        (net(192, 168, 16), 20),
    ];
    POOLS.into_iter().flat_map(|(pool, len)| pool.split(len))
}

/// First default-pool subnet that overlaps neither an existing network's subnet nor any route in
/// `routes` (routes of the daemon's namespace; a 0.0.0.0/0 default route is ignored).
pub fn pick_default_subnet(existing: &[Ipv4Net], routes: &[Ipv4Net]) -> Result<Ipv4Net, IpamError> {
    default_pool_subnets()
        .find(|candidate| {
            !existing.iter().any(|n| n.overlaps(candidate))
                && !routes
                    .iter()
                    .filter(|r| r.prefix() != 0)
                    .any(|r| r.overlaps(candidate))
        })
        .ok_or(IpamError::NoDefaultSubnet)
}

/// Refuses `subnet` if it overlaps the subnet of one of the `existing` (name, subnet) networks.
pub fn check_overlap(subnet: &Ipv4Net, existing: &[(String, Ipv4Net)]) -> Result<(), IpamError> {
    match existing.iter().find(|(_, other)| other.overlaps(subnet)) {
        Some((name, other)) => Err(IpamError::Overlap {
            subnet: *subnet,
            other: *other,
            network: name.clone(),
        }),
        None => Ok(()),
    }
}

/// Ranges no network may overlap: their addresses never reach a container as unicast (the host
/// keeps loopback to itself, multicast and class E are not host addresses, 0/8 means "this
/// network"). Only checked when a network is created, so a state file holding one still loads.
const RESERVED: [(Ipv4Net, &str); 4] = [
    (net(0, 0, 8), "\"this network\""),
    (net(127, 0, 8), "loopback"),
    (net(224, 0, 4), "multicast"),
    (net(240, 0, 4), "reserved class E"),
];

/// Refuses `subnet` if it overlaps a range that cannot hold container addresses.
pub fn check_reserved(subnet: &Ipv4Net) -> Result<(), IpamError> {
    match RESERVED.iter().find(|(range, _)| range.overlaps(subnet)) {
        Some((range, what)) => Err(IpamError::Reserved {
            subnet: *subnet,
            range: *range,
            what,
        }),
        None => Ok(()),
    }
}

/// Parses a CLI `--aux-address` value "NAME=IP".
pub fn parse_aux(s: &str) -> Result<(String, Ipv4Addr), IpamError> {
    let err = |reason: String| IpamError::InvalidAux {
        input: s.to_string(),
        reason,
    };
    let Some((name, ip)) = s.split_once('=') else {
        return Err(err("expected NAME=IP".to_string()));
    };
    if name.is_empty() {
        return Err(err("name is empty (expected NAME=IP)".to_string()));
    }
    let ip = ip
        .parse()
        .map_err(|_| err(format!("'{ip}' is not an IPv4 address")))?;
    Ok((name.to_string(), ip))
}

/// Validated IPAM configuration of one network. Deserializing validates it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "IpamConfigData")]
pub struct IpamConfig {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux: BTreeMap<String, Ipv4Addr>,
}

#[derive(Deserialize)]
struct IpamConfigData {
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    #[serde(default)]
    ip_range: Option<Ipv4Net>,
    #[serde(default)]
    aux: BTreeMap<String, Ipv4Addr>,
}

impl TryFrom<IpamConfigData> for IpamConfig {
    type Error = IpamError;
    fn try_from(d: IpamConfigData) -> Result<Self, Self::Error> {
        IpamConfig::new(d.subnet, Some(d.gateway), d.ip_range, d.aux)
    }
}

impl IpamConfig {
    /// Validates a network's addressing. `gateway` None means the first host address of the
    /// subnet (Docker's `.1`). `ip_range` must lie inside the subnet. Aux addresses need a
    /// non-empty name and must be inside the subnet, distinct, and not the network, broadcast or
    /// gateway address.
    pub fn new(
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        ip_range: Option<Ipv4Net>,
        aux: BTreeMap<String, Ipv4Addr>,
    ) -> Result<IpamConfig, IpamError> {
        if subnet.prefix() > 30 {
            return Err(IpamError::SubnetTooSmall { subnet });
        }
        let network = subnet.addr();
        let broadcast = subnet.broadcast();
        let gateway = gateway.unwrap_or(Ipv4Addr::from(subnet.first() + 1));
        if !subnet.contains(gateway) {
            return Err(IpamError::GatewayOutside { gateway, subnet });
        }
        if gateway == network {
            return Err(IpamError::GatewayIsNetwork { gateway, subnet });
        }
        if gateway == broadcast {
            return Err(IpamError::GatewayIsBroadcast { gateway, subnet });
        }
        if let Some(range) = ip_range {
            if !subnet.contains_net(&range) {
                return Err(IpamError::RangeOutside { range, subnet });
            }
        }
        let mut seen: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
        for (name, &ip) in &aux {
            let name = name.as_str();
            if name.is_empty() {
                return Err(IpamError::InvalidAux {
                    input: format!("={ip}"),
                    reason: "name is empty (expected NAME=IP)".to_string(),
                });
            }
            let n = name.to_string();
            if !subnet.contains(ip) {
                return Err(IpamError::AuxOutside {
                    name: n,
                    ip,
                    subnet,
                });
            }
            if ip == network {
                return Err(IpamError::AuxIsNetwork {
                    name: n,
                    ip,
                    subnet,
                });
            }
            if ip == broadcast {
                return Err(IpamError::AuxIsBroadcast {
                    name: n,
                    ip,
                    subnet,
                });
            }
            if ip == gateway {
                return Err(IpamError::AuxIsGateway { name: n, ip });
            }
            if let Some(other) = seen.insert(ip, name) {
                return Err(IpamError::AuxDuplicate {
                    name: n,
                    ip,
                    other: other.to_string(),
                });
            }
        }
        let config = IpamConfig {
            subnet,
            gateway,
            ip_range,
            aux,
        };
        let range = config.alloc_range();
        if range.size() == config.reserved_in(&range) {
            return Err(IpamError::RangeEmpty { range });
        }
        Ok(config)
    }

    /// Where dynamic addresses come from.
    fn alloc_range(&self) -> Ipv4Net {
        self.ip_range.unwrap_or(self.subnet)
    }

    /// Number of distinct reserved addresses (network, broadcast, gateway, aux) inside `range`.
    /// They are distinct from each other by construction.
    fn reserved_in(&self, range: &Ipv4Net) -> u64 {
        let fixed = [self.subnet.addr(), self.subnet.broadcast(), self.gateway];
        let n = fixed.into_iter().chain(self.aux.values().copied());
        n.filter(|ip| range.contains(*ip)).count() as u64
    }

    /// Why `ip` can never be given to a container, if it cannot.
    fn reserved_reason(&self, ip: Ipv4Addr) -> Option<IpamError> {
        if !self.subnet.contains(ip) {
            return Some(IpamError::AddressOutside {
                ip,
                subnet: self.subnet,
            });
        }
        if ip == self.subnet.addr() {
            return Some(IpamError::AddressIsNetwork { ip });
        }
        if ip == self.subnet.broadcast() {
            return Some(IpamError::AddressIsBroadcast { ip });
        }
        if ip == self.gateway {
            return Some(IpamError::AddressIsGateway { ip });
        }
        if let Some((name, _)) = self.aux.iter().find(|(_, a)| **a == ip) {
            return Some(IpamError::AddressIsAux {
                ip,
                name: name.clone(),
            });
        }
        None
    }
}

/// Allocation state of one network: which addresses are held by whom. Deserializing checks that
/// no held address is reserved or outside the subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AddressPoolData")]
pub struct AddressPool {
    config: IpamConfig,
    in_use: BTreeMap<Ipv4Addr, String>,
    /// Last dynamically allocated address: the cursor of sequential allocation.
    last: Option<Ipv4Addr>,
}

#[derive(Deserialize)]
struct AddressPoolData {
    config: IpamConfig,
    #[serde(default)]
    in_use: BTreeMap<Ipv4Addr, String>,
    #[serde(default)]
    last: Option<Ipv4Addr>,
}

impl TryFrom<AddressPoolData> for AddressPool {
    type Error = IpamError;
    fn try_from(d: AddressPoolData) -> Result<Self, Self::Error> {
        if let Some(err) = d.in_use.keys().find_map(|ip| d.config.reserved_reason(*ip)) {
            return Err(err);
        }
        Ok(AddressPool {
            config: d.config,
            in_use: d.in_use,
            last: d.last,
        })
    }
}

impl AddressPool {
    pub fn new(config: IpamConfig) -> AddressPool {
        AddressPool {
            config,
            in_use: BTreeMap::new(),
            last: None,
        }
    }

    pub fn config(&self) -> &IpamConfig {
        &self.config
    }

    /// Gives an address to `holder`.
    ///
    /// `Some(ip)`: that address, which must be in the subnet (anywhere, not only in the ip-range,
    /// as Docker allows for `--ip`), not the network, broadcast, gateway or an aux address, and
    /// not held already. The allocation cursor does not move.
    ///
    /// `None`: the next free address of the ip-range (or the subnet) after the last dynamically
    /// allocated one, wrapping around, so a just-released address is not reused at once.
    pub fn allocate(
        &mut self,
        holder: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        let ip = match requested {
            Some(ip) => {
                if let Some(err) = self.config.reserved_reason(ip) {
                    return Err(err);
                }
                if let Some(h) = self.in_use.get(&ip) {
                    return Err(IpamError::AddressInUse {
                        ip,
                        holder: h.clone(),
                    });
                }
                ip
            }
            None => {
                let ip = self.next_free()?;
                self.last = Some(ip);
                ip
            }
        };
        self.in_use.insert(ip, holder.to_string());
        Ok(ip)
    }

    fn next_free(&self) -> Result<Ipv4Addr, IpamError> {
        let range = self.config.alloc_range();
        let (first, last) = (range.first(), range.last());
        let held = self
            .in_use
            .range(Ipv4Addr::from(first)..=Ipv4Addr::from(last))
            .count() as u64;
        // Held addresses are never reserved ones (allocate and deserialization refuse that), so
        // the sum counts distinct addresses.
        if held + self.config.reserved_in(&range) >= range.size() {
            return Err(IpamError::PoolExhausted { range });
        }
        let step = |c: u32| if c == last { first } else { c + 1 };
        let mut candidate = match self.last {
            Some(prev) if range.contains(prev) => step(u32::from(prev)),
            _ => first,
        };
        // A free address exists, so this loop skips at most (held + reserved) addresses: the cost
        // is bounded by the number of held addresses, not by the size of the range.
        loop {
            let ip = Ipv4Addr::from(candidate);
            if self.config.reserved_reason(ip).is_none() && !self.in_use.contains_key(&ip) {
                return Ok(ip);
            }
            candidate = step(candidate);
        }
    }

    /// Frees `ip`; false if it was not held.
    pub fn release(&mut self, ip: Ipv4Addr) -> bool {
        self.in_use.remove(&ip).is_some()
    }

    pub fn holder(&self, ip: Ipv4Addr) -> Option<&str> {
        self.in_use.get(&ip).map(String::as_str)
    }

    /// Held addresses and their holders, in address order.
    pub fn in_use(&self) -> impl Iterator<Item = (Ipv4Addr, &str)> {
        self.in_use.iter().map(|(ip, h)| (*ip, h.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn n(s: &str) -> Ipv4Net {
        Ipv4Net::parse_strict(s).unwrap()
    }

    fn msg<T: std::fmt::Debug>(r: Result<T, IpamError>) -> String {
        r.unwrap_err().to_string()
    }

    fn aux(pairs: &[(&str, &str)]) -> BTreeMap<String, Ipv4Addr> {
        pairs.iter().map(|(k, v)| (k.to_string(), ip(v))).collect()
    }

    fn config(subnet: &str) -> IpamConfig {
        IpamConfig::new(n(subnet), None, None, BTreeMap::new()).unwrap()
    }

    // ---- Ipv4Net ----

    #[test]
    fn parse_and_display() {
        let net = n("10.0.0.0/24");
        assert_eq!(net.addr(), ip("10.0.0.0"));
        assert_eq!(net.prefix(), 24);
        assert_eq!(net.to_string(), "10.0.0.0/24");
        assert_eq!("10.0.0.0/24".parse::<Ipv4Net>().unwrap(), net);
        assert_eq!(n("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(n("1.2.3.4/32").size(), 1);
        assert_eq!(Ipv4Net::new(ip("10.1.0.0"), 16).unwrap(), n("10.1.0.0/16"));
    }

    #[test]
    fn cidr_errors() {
        assert_eq!(
            msg(Ipv4Net::parse_strict("10.0.0.0/33")),
            "invalid CIDR '10.0.0.0/33': prefix length must be 0-32"
        );
        assert_eq!(
            msg(Ipv4Net::parse_strict("abc")),
            "invalid CIDR 'abc': expected ADDRESS/PREFIX"
        );
        assert_eq!(
            msg(Ipv4Net::parse_strict("10.0.0.1")),
            "invalid CIDR '10.0.0.1': expected ADDRESS/PREFIX"
        );
        assert_eq!(
            msg(Ipv4Net::parse_strict("10.0.0.256/24")),
            "invalid CIDR '10.0.0.256/24': '10.0.0.256' is not an IPv4 address"
        );
        for bad in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/x",
            "10.0.0.0/300",
            "10.0.0.0/24/8",
        ] {
            assert_eq!(
                msg(Ipv4Net::parse_strict(bad)),
                format!("invalid CIDR '{bad}': prefix length must be 0-32")
            );
        }
        assert_eq!(
            msg(Ipv4Net::parse_strict("172.28.5.1/16")),
            "invalid subnet '172.28.5.1/16': host bits set, did you mean 172.28.0.0/16?"
        );
        assert_eq!(
            msg(Ipv4Net::new(ip("172.28.5.1"), 16)),
            "invalid subnet '172.28.5.1/16': host bits set, did you mean 172.28.0.0/16?"
        );
        assert_eq!(
            msg(Ipv4Net::new(ip("10.0.0.0"), 33)),
            "invalid CIDR '10.0.0.0/33': prefix length must be 0-32"
        );
        // Control characters are escaped: the message stays on one line.
        let m = msg(Ipv4Net::parse_strict("a\nb"));
        assert_eq!(m, "invalid CIDR 'a\\nb': expected ADDRESS/PREFIX");
        assert!(!m.contains('\n'));
    }

    #[test]
    fn parse_any_keeps_the_address() {
        assert_eq!(
            Ipv4Net::parse_any("10.0.0.5/24").unwrap(),
            (ip("10.0.0.5"), n("10.0.0.0/24"))
        );
        assert_eq!(
            msg(Ipv4Net::parse_any("10.0.0.5/40")),
            "invalid CIDR '10.0.0.5/40': prefix length must be 0-32"
        );
    }

    #[test]
    fn containment_and_overlap() {
        let a = n("10.2.0.0/16");
        assert!(a.contains(ip("10.2.255.255")));
        assert!(!a.contains(ip("10.3.0.0")));
        assert!(a.contains_net(&n("10.2.3.0/24")));
        assert!(a.contains_net(&a));
        assert!(!n("10.2.3.0/24").contains_net(&a));
        assert!(a.overlaps(&n("10.2.3.0/24")) && n("10.2.3.0/24").overlaps(&a));
        assert!(!a.overlaps(&n("10.3.0.0/16")));
        assert!(n("0.0.0.0/0").contains(ip("255.255.255.255")));
        assert_eq!(a.broadcast(), ip("10.2.255.255"));
        assert_eq!(n("0.0.0.0/0").broadcast(), ip("255.255.255.255"));
    }

    #[test]
    fn split_in_order() {
        let parts: Vec<_> = n("172.20.0.0/14").split(16).collect();
        assert_eq!(
            parts,
            vec![
                n("172.20.0.0/16"),
                n("172.21.0.0/16"),
                n("172.22.0.0/16"),
                n("172.23.0.0/16")
            ]
        );
        assert_eq!(
            n("10.0.0.0/24").split(24).collect::<Vec<_>>(),
            vec![n("10.0.0.0/24")]
        );
        assert_eq!(n("10.0.0.0/24").split(16).count(), 0);
        assert_eq!(n("10.0.0.0/24").split(33).count(), 0);
        assert_eq!(
            n("255.255.255.0/24").split(32).last(),
            Some(n("255.255.255.255/32"))
        );
        assert_eq!(
            n("0.0.0.0/0").split(1).collect::<Vec<_>>(),
            vec![n("0.0.0.0/1"), n("128.0.0.0/1")]
        );
    }

    #[test]
    fn ipv4net_serde() {
        let net = n("10.2.0.0/16");
        assert_eq!(serde_json::to_string(&net).unwrap(), "\"10.2.0.0/16\"");
        assert_eq!(
            serde_json::from_str::<Ipv4Net>("\"10.2.0.0/16\"").unwrap(),
            net
        );
        let err = serde_json::from_str::<Ipv4Net>("\"10.2.0.1/16\"").unwrap_err();
        assert!(err.to_string().contains("host bits set"), "{err}");
    }

    // ---- default pools ----

    #[test]
    fn default_pools_in_docker_order() {
        let pools: Vec<_> = default_pool_subnets().collect();
        assert_eq!(pools.len(), 3 + 4 * 3 + 16);
        assert_eq!(
            &pools[..4],
            &[
                n("172.17.0.0/16"),
                n("172.18.0.0/16"),
                n("172.19.0.0/16"),
                n("172.20.0.0/16")
            ]
        );
        assert_eq!(pools[14], n("172.31.0.0/16"));
        assert_eq!(pools[15], n("192.168.0.0/20"));
        assert_eq!(pools[16], n("192.168.16.0/20"));
        assert_eq!(pools[30], n("192.168.240.0/20"));
    }

    #[test]
    fn pick_default_subnet_skips_networks_and_routes() {
        assert_eq!(pick_default_subnet(&[], &[]).unwrap(), n("172.17.0.0/16"));
        // The default route is ignored.
        assert_eq!(
            pick_default_subnet(&[], &[n("0.0.0.0/0")]).unwrap(),
            n("172.17.0.0/16")
        );
        assert_eq!(
            pick_default_subnet(&[], &[n("172.17.0.0/16"), n("172.18.5.0/24")]).unwrap(),
            n("172.19.0.0/16")
        );
        assert_eq!(
            pick_default_subnet(&[n("172.17.0.0/16")], &[n("172.18.0.0/15")]).unwrap(),
            n("172.20.0.0/16")
        );
        // A wider route covering the network also counts.
        assert_eq!(
            pick_default_subnet(&[n("172.16.0.0/12")], &[]).unwrap(),
            n("192.168.0.0/20")
        );
        let all_172: Vec<_> = default_pool_subnets().take(15).collect();
        assert_eq!(
            pick_default_subnet(&all_172, &[n("192.168.0.0/24")]).unwrap(),
            n("192.168.16.0/20")
        );
        assert_eq!(
            msg(pick_default_subnet(
                &[n("172.16.0.0/12")],
                &[n("192.168.0.0/16")]
            )),
            "no free subnet left in the default pools (all overlap existing networks or routes)"
        );
    }

    #[test]
    fn overlap_with_existing_network() {
        let existing = vec![
            ("a".to_string(), n("10.1.0.0/16")),
            ("other".to_string(), n("10.2.3.0/24")),
        ];
        assert_eq!(
            msg(check_overlap(&n("10.2.0.0/16"), &existing)),
            "subnet 10.2.0.0/16 overlaps 10.2.3.0/24 of network 'other'"
        );
        assert!(check_overlap(&n("10.3.0.0/16"), &existing).is_ok());
    }

    // ---- IpamConfig ----

    #[test]
    fn config_defaults() {
        let c = config("10.2.0.0/16");
        assert_eq!(c.gateway, ip("10.2.0.1"));
        assert_eq!(c.ip_range, None);
        assert!(c.aux.is_empty());
        let c = IpamConfig::new(
            n("10.2.0.0/16"),
            Some(ip("10.2.255.254")),
            Some(n("10.2.1.0/24")),
            aux(&[("router", "10.2.0.9")]),
        )
        .unwrap();
        assert_eq!(c.gateway, ip("10.2.255.254"));
        assert!(IpamConfig::new(n("10.0.0.0/30"), None, None, BTreeMap::new()).is_ok());
    }

    #[test]
    fn config_errors() {
        let s = n("10.2.0.0/16");
        let none = BTreeMap::new;
        assert_eq!(
            msg(IpamConfig::new(s, Some(ip("10.1.0.1")), None, none())),
            "gateway 10.1.0.1 is outside subnet 10.2.0.0/16"
        );
        assert_eq!(
            msg(IpamConfig::new(s, Some(ip("10.2.0.0")), None, none())),
            "gateway 10.2.0.0 is the network address of subnet 10.2.0.0/16"
        );
        assert_eq!(
            msg(IpamConfig::new(s, Some(ip("10.2.255.255")), None, none())),
            "gateway 10.2.255.255 is the broadcast address of subnet 10.2.0.0/16"
        );
        assert_eq!(
            msg(IpamConfig::new(s, None, Some(n("10.3.0.0/24")), none())),
            "ip-range 10.3.0.0/24 is outside subnet 10.2.0.0/16"
        );
        assert_eq!(
            msg(IpamConfig::new(s, None, Some(n("10.0.0.0/8")), none())),
            "ip-range 10.0.0.0/8 is outside subnet 10.2.0.0/16"
        );
        assert_eq!(
            msg(IpamConfig::new(s, None, Some(n("10.2.0.0/31")), none())),
            "ip-range 10.2.0.0/31 has no address left for containers: it holds only the gateway, \
             aux addresses and the network/broadcast addresses"
        );
        assert_eq!(
            msg(IpamConfig::new(
                s,
                None,
                None,
                aux(&[("router", "10.9.0.1")])
            )),
            "aux address 'router=10.9.0.1' is outside subnet 10.2.0.0/16"
        );
        assert_eq!(
            msg(IpamConfig::new(
                s,
                None,
                None,
                aux(&[("router", "10.2.0.0")])
            )),
            "aux address 'router=10.2.0.0' is the network address of subnet 10.2.0.0/16"
        );
        assert_eq!(
            msg(IpamConfig::new(
                s,
                None,
                None,
                aux(&[("router", "10.2.255.255")])
            )),
            "aux address 'router=10.2.255.255' is the broadcast address of subnet 10.2.0.0/16"
        );
        assert_eq!(
            msg(IpamConfig::new(
                s,
                None,
                None,
                aux(&[("router", "10.2.0.1")])
            )),
            "aux address 'router=10.2.0.1' is the gateway of this network"
        );
        assert_eq!(
            msg(IpamConfig::new(
                s,
                None,
                None,
                aux(&[("a", "10.2.0.5"), ("b", "10.2.0.5")])
            )),
            "aux address 'b=10.2.0.5' uses the same address as aux address 'a'"
        );
        assert_eq!(
            msg(IpamConfig::new(s, None, None, aux(&[("", "10.2.0.5")]))),
            "invalid aux address '=10.2.0.5': name is empty (expected NAME=IP)"
        );
        for small in ["10.0.0.0/31", "10.0.0.0/32"] {
            assert_eq!(
                msg(IpamConfig::new(n(small), None, None, none())),
                format!(
                    "subnet {small} is too small: it needs room for a gateway and at least one \
                     container address (the smallest usable subnet is a /30)"
                )
            );
        }
    }

    #[test]
    fn aux_parsing() {
        assert_eq!(
            parse_aux("router=10.2.0.9").unwrap(),
            ("router".to_string(), ip("10.2.0.9"))
        );
        assert_eq!(
            msg(parse_aux("router")),
            "invalid aux address 'router': expected NAME=IP"
        );
        assert_eq!(
            msg(parse_aux("=10.2.0.9")),
            "invalid aux address '=10.2.0.9': name is empty (expected NAME=IP)"
        );
        assert_eq!(
            msg(parse_aux("router=10.2.0.x")),
            "invalid aux address 'router=10.2.0.x': '10.2.0.x' is not an IPv4 address"
        );
    }

    #[test]
    fn config_serde_validates() {
        let c = IpamConfig::new(
            n("10.2.0.0/16"),
            None,
            Some(n("10.2.1.0/24")),
            aux(&[("router", "10.2.0.9")]),
        )
        .unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"subnet":"10.2.0.0/16","gateway":"10.2.0.1","ip_range":"10.2.1.0/24","aux":{"router":"10.2.0.9"}}"#
        );
        assert_eq!(serde_json::from_str::<IpamConfig>(&json).unwrap(), c);
        let minimal = r#"{"subnet":"10.2.0.0/16","gateway":"10.2.0.1"}"#;
        assert_eq!(
            serde_json::to_string(&config("10.2.0.0/16")).unwrap(),
            minimal
        );
        assert_eq!(
            serde_json::from_str::<IpamConfig>(minimal).unwrap(),
            config("10.2.0.0/16")
        );
        let bad = r#"{"subnet":"10.2.0.0/16","gateway":"10.3.0.1"}"#;
        let err = serde_json::from_str::<IpamConfig>(bad).unwrap_err();
        assert!(
            err.to_string()
                .contains("gateway 10.3.0.1 is outside subnet 10.2.0.0/16"),
            "{err}"
        );
    }

    // ---- AddressPool ----

    #[test]
    fn sequential_allocation_without_immediate_reuse() {
        let mut pool = AddressPool::new(config("10.2.0.0/16"));
        assert_eq!(pool.allocate("a", None).unwrap(), ip("10.2.0.2"));
        assert_eq!(pool.allocate("b", None).unwrap(), ip("10.2.0.3"));
        assert!(pool.release(ip("10.2.0.2")));
        assert!(!pool.release(ip("10.2.0.2")));
        assert_eq!(pool.allocate("c", None).unwrap(), ip("10.2.0.4"));
        assert_eq!(pool.holder(ip("10.2.0.3")), Some("b"));
        assert_eq!(pool.holder(ip("10.2.0.2")), None);
        assert_eq!(
            pool.in_use().collect::<Vec<_>>(),
            vec![(ip("10.2.0.3"), "b"), (ip("10.2.0.4"), "c")]
        );
    }

    #[test]
    fn wrap_around_reuses_released_addresses() {
        // 10.0.0.0/29: .1 gateway, .2-.6 hosts, .7 broadcast.
        let mut pool = AddressPool::new(config("10.0.0.0/29"));
        let got: Vec<_> = (0..5)
            .map(|i| pool.allocate(&format!("c{i}"), None).unwrap())
            .collect();
        assert_eq!(
            got,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"].map(ip)
        );
        assert_eq!(
            msg(pool.allocate("x", None)),
            "no free address left in 10.0.0.0/29"
        );
        pool.release(ip("10.0.0.4"));
        pool.release(ip("10.0.0.3"));
        // After .6 the cursor wraps to the start: .3 comes before .4.
        assert_eq!(pool.allocate("x", None).unwrap(), ip("10.0.0.3"));
        pool.release(ip("10.0.0.6"));
        assert_eq!(pool.allocate("y", None).unwrap(), ip("10.0.0.4"));
        assert_eq!(pool.allocate("z", None).unwrap(), ip("10.0.0.6"));
    }

    #[test]
    fn slash_30_exhaustion() {
        let mut pool = AddressPool::new(config("10.2.0.0/30"));
        assert_eq!(pool.allocate("a", None).unwrap(), ip("10.2.0.2"));
        assert_eq!(
            msg(pool.allocate("b", None)),
            "no free address left in 10.2.0.0/30"
        );
        pool.release(ip("10.2.0.2"));
        assert_eq!(pool.allocate("b", None).unwrap(), ip("10.2.0.2"));
    }

    #[test]
    fn ip_range_restricts_dynamic_allocation_only() {
        let c = IpamConfig::new(
            n("10.2.0.0/16"),
            None,
            Some(n("10.2.1.0/30")),
            aux(&[("router", "10.2.1.1")]),
        )
        .unwrap();
        let mut pool = AddressPool::new(c);
        // The range's own first address is an ordinary host inside a /16 (as in Docker).
        assert_eq!(pool.allocate("a", None).unwrap(), ip("10.2.1.0"));
        assert_eq!(pool.allocate("b", None).unwrap(), ip("10.2.1.2"));
        assert_eq!(pool.allocate("c", None).unwrap(), ip("10.2.1.3"));
        assert_eq!(
            msg(pool.allocate("d", None)),
            "no free address left in 10.2.1.0/30"
        );
        // A static address may lie outside the ip-range.
        assert_eq!(
            pool.allocate("d", Some(ip("10.2.7.7"))).unwrap(),
            ip("10.2.7.7")
        );
        assert_eq!(pool.holder(ip("10.2.7.7")), Some("d"));
    }

    #[test]
    fn requested_address_errors() {
        let c =
            IpamConfig::new(n("10.2.0.0/16"), None, None, aux(&[("router", "10.2.0.9")])).unwrap();
        let mut pool = AddressPool::new(c);
        assert_eq!(
            pool.allocate("web", Some(ip("10.2.0.5"))).unwrap(),
            ip("10.2.0.5")
        );
        assert_eq!(
            msg(pool.allocate("db", Some(ip("10.2.0.5")))),
            "address 10.2.0.5 is already in use by 'web'"
        );
        assert_eq!(
            msg(pool.allocate("db", Some(ip("10.2.0.1")))),
            "address 10.2.0.1 is the gateway of this network"
        );
        assert_eq!(
            msg(pool.allocate("db", Some(ip("10.2.0.9")))),
            "address 10.2.0.9 is reserved as aux address 'router'"
        );
        assert_eq!(
            msg(pool.allocate("db", Some(ip("10.9.0.5")))),
            "address 10.9.0.5 is outside subnet 10.2.0.0/16"
        );
        assert_eq!(
            msg(pool.allocate("db", Some(ip("10.2.0.0")))),
            "address 10.2.0.0 is the network address"
        );
        assert_eq!(
            msg(pool.allocate("db", Some(ip("10.2.255.255")))),
            "address 10.2.255.255 is the broadcast address"
        );
        // A static address does not move the cursor; dynamic allocation skips held and aux ones.
        let got: Vec<_> = (0..8)
            .map(|i| pool.allocate(&format!("c{i}"), None).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "10.2.0.2",
                "10.2.0.3",
                "10.2.0.4",
                "10.2.0.6",
                "10.2.0.7",
                "10.2.0.8",
                "10.2.0.10",
                "10.2.0.11"
            ]
            .map(ip)
        );
    }

    #[test]
    fn huge_subnet_is_cheap() {
        let mut pool = AddressPool::new(config("10.0.0.0/8"));
        for _ in 0..1000 {
            pool.allocate("x", None).unwrap();
        }
        assert_eq!(pool.in_use().count(), 1000);
        assert_eq!(
            pool.allocate("y", Some(ip("10.255.255.254"))).unwrap(),
            ip("10.255.255.254")
        );
        let mut all = AddressPool::new(config("0.0.0.0/0"));
        assert_eq!(all.allocate("x", None).unwrap(), ip("0.0.0.2"));
    }

    #[test]
    fn address_pool_serde_round_trip() {
        let c = IpamConfig::new(
            n("10.2.0.0/16"),
            Some(ip("10.2.0.254")),
            Some(n("10.2.0.0/24")),
            aux(&[("router", "10.2.0.9")]),
        )
        .unwrap();
        let mut pool = AddressPool::new(c);
        pool.allocate("web", None).unwrap();
        pool.allocate("db", Some(ip("10.2.3.4"))).unwrap();
        pool.allocate("cache", None).unwrap();
        pool.release(ip("10.2.0.1"));
        let json = serde_json::to_string(&pool).unwrap();
        let back: AddressPool = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pool);
        // The cursor survives: the next allocation continues where it left off.
        let mut back = back;
        assert_eq!(
            back.allocate("x", None).unwrap(),
            pool.allocate("x", None).unwrap()
        );
        assert_eq!(back.allocate("x", None).unwrap(), ip("10.2.0.4"));

        let bad = json.replace("10.2.3.4", "10.2.0.9");
        let err = serde_json::from_str::<AddressPool>(&bad).unwrap_err();
        assert!(
            err.to_string()
                .contains("address 10.2.0.9 is reserved as aux address 'router'"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn allocation_invariants(
            prefix in 26u8..=30,
            use_range in any::<bool>(),
            gw_off in 1u32..64,
            aux_offs in proptest::collection::vec(1u32..64, 0..4),
            ops in proptest::collection::vec((0u8..4, 0u32..80), 1..200),
        ) {
            let subnet = n(&format!("10.9.8.0/{prefix}"));
            let size = subnet.size() as u32;
            let base = u32::from(subnet.addr());
            let at = |off: u32| Ipv4Addr::from(base + off % size);
            let gateway = at(gw_off % (size - 2) + 1);
            let mut aux_map = BTreeMap::new();
            for (i, off) in aux_offs.iter().enumerate() {
                let a = at(off % (size - 2) + 1);
                if a != gateway && !aux_map.values().any(|v| *v == a) {
                    aux_map.insert(format!("aux{i}"), a);
                }
            }
            let range = use_range.then(|| subnet.split(prefix + 1).nth(1).unwrap());
            let config = match IpamConfig::new(subnet, Some(gateway), range, aux_map.clone()) {
                Ok(c) => c,
                Err(IpamError::RangeEmpty { .. }) => return Ok(()),
                Err(e) => panic!("{e}"),
            };
            let alloc_range = range.unwrap_or(subnet);
            let reserved: BTreeSet<Ipv4Addr> = [subnet.addr(), subnet.broadcast(), gateway]
                .into_iter()
                .chain(aux_map.values().copied())
                .collect();
            let mut pool = AddressPool::new(config);
            let mut model: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
            for (step, (op, off)) in ops.into_iter().enumerate() {
                let holder = format!("h{step}");
                match op {
                    0 | 1 => {
                        let free = alloc_range.size() as usize
                            - reserved.iter().filter(|a| alloc_range.contains(**a)).count()
                            - model.keys().filter(|a| alloc_range.contains(**a)).count();
                        match pool.allocate(&holder, None) {
                            Ok(a) => {
                                prop_assert!(!reserved.contains(&a));
                                prop_assert!(!model.contains_key(&a));
                                prop_assert!(alloc_range.contains(a));
                                model.insert(a, holder);
                            }
                            Err(e) => {
                                prop_assert_eq!(free, 0);
                                prop_assert_eq!(e, IpamError::PoolExhausted { range: alloc_range });
                            }
                        }
                    }
                    2 => {
                        let want = Ipv4Addr::from(base.wrapping_add(off).wrapping_sub(8));
                        let ok = subnet.contains(want) && !reserved.contains(&want) && !model.contains_key(&want);
                        match pool.allocate(&holder, Some(want)) {
                            Ok(a) => {
                                prop_assert!(ok);
                                prop_assert_eq!(a, want);
                                model.insert(a, holder);
                            }
                            Err(_) => prop_assert!(!ok),
                        }
                    }
                    _ => {
                        // Release a held address (or a random one) and check it comes back.
                        let victim = model.keys().nth(off as usize % model.len().max(1)).copied().unwrap_or(at(off));
                        let held = model.remove(&victim).is_some();
                        prop_assert_eq!(pool.release(victim), held);
                        if held {
                            let mut probe = pool.clone();
                            let mut seen = false;
                            for _ in 0..alloc_range.size() {
                                match probe.allocate("probe", None) {
                                    Ok(a) if a == victim => { seen = true; break; }
                                    Ok(_) => {}
                                    Err(_) => break,
                                }
                            }
                            prop_assert!(seen || !alloc_range.contains(victim));
                            prop_assert!(pool.clone().allocate("again", Some(victim)).is_ok());
                        }
                    }
                }
                let actual: Vec<_> = pool.in_use().map(|(a, h)| (a, h.to_string())).collect();
                let expected: Vec<_> = model.iter().map(|(a, h)| (*a, h.clone())).collect();
                prop_assert_eq!(actual, expected);
            }
        }
    }
}
