//! Networks: what one is (a subnet with its address pool, a host port, a bridge domain, options)
//! and the rules for creating and removing them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dataplane::MacAddr;
use serde::{Deserialize, Serialize};

use super::ipam::{self, AddressPool, IpamConfig, Ipv4Net};
use super::options::{parse_mtu, parse_options, OPT_MTU};
use super::overlay::{parse_driver, Driver, Overlay, DEFAULT_OVERLAY_MTU};
use super::{
    bad, given_id, ipam_err, mac, parse_ip, validate_ifname, validate_name, Endpoint, Mint, State,
    DEFAULT_MTU, DEFAULT_NETWORK, RESERVED_NETWORK_NAMES, UPLINK_DOMAIN,
};
use crate::api::{ApiError, NetworkCreate};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub created: String,
    pub pool: AddressPool,
    pub icc: bool,
    pub masquerade: bool,
    pub internal: bool,
    pub mtu: u32,
    /// The tap in the daemon's namespace that holds the gateway address.
    pub host_interface: String,
    #[serde(with = "mac::text")]
    pub host_mac: MacAddr,
    /// The engine's bridge domain for this network.
    pub domain: u16,
    /// Options exactly as given at creation, shown by inspect.
    pub options: BTreeMap<String, String>,
    /// An L2 uplink: the network's bridge domain extends onto this interface.
    #[serde(default)]
    pub parent: Option<String>,
    /// 802.1Q VLAN on the parent (`None`: untagged).
    #[serde(default)]
    pub vlan: Option<u16>,
    /// Created with `--subnet`: only then may containers ask for an address (`--ip`), as in
    /// Docker. (Networks persisted before this field was kept count as such.)
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub user_subnet: bool,
    /// `gateway_mode=routed`: containers are reached from beyond the uplink by their own
    /// addresses and leave it with them (no NAT); published ports still work.
    #[serde(default, skip_serializing_if = "is_false")]
    pub routed: bool,
    /// An overlay network (`--driver overlay`): carried in VXLAN to other hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<Overlay>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The daemon's uplink as networks must leave room for it (`--uplink`, `--uplink-ip`,
/// `--uplink-gateway`). Not part of the state: the daemon is started with it.
pub struct UplinkClaim<'a> {
    pub ifname: &'a str,
    pub ip: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
}

impl Network {
    /// Refuses a network that cannot live beside the uplink: one whose subnet holds the uplink's
    /// address or gateway (replies to the world would stay inside the network), or whose
    /// `--parent` is the uplink itself (the uplink's frames all go to NAT). The daemon checks
    /// this at `network create` and, with the same words, at start-up when `--uplink` changed.
    pub fn check_uplink(&self, uplink: &UplinkClaim) -> Result<(), ApiError> {
        let subnet = self.subnet();
        if subnet.contains(uplink.ip) {
            return Err(bad(format!(
                "subnet {subnet} of network '{}' holds the uplink address {} (--uplink-ip); choose a subnet outside it",
                self.name, uplink.ip
            )));
        }
        if let Some(g) = uplink.gateway.filter(|g| subnet.contains(*g)) {
            return Err(bad(format!(
                "subnet {subnet} of network '{}' holds the uplink gateway {g} (--uplink-gateway); choose a subnet outside it",
                self.name
            )));
        }
        if self.parent.as_deref() == Some(uplink.ifname) {
            return Err(bad(format!(
                "--parent {} of network '{}' is the daemon's uplink (--uplink); choose another interface",
                uplink.ifname, self.name
            )));
        }
        Ok(())
    }

    pub fn subnet(&self) -> Ipv4Net {
        self.pool.config().subnet
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.pool.config().gateway
    }
}

/// A removed network and the endpoints (with their container's name) it took along.
pub struct RemovedNetwork {
    pub network: Network,
    pub disconnected: Vec<(String, Endpoint)>,
}

impl State {
    /// `network create`: validates everything, then adds the network. `routes` are the IPv4 routes
    /// of the daemon's namespace, skipped when picking a default subnet.
    pub fn create_network(
        &mut self,
        req: &NetworkCreate,
        routes: &[Ipv4Net],
        mint: &mut dyn Mint,
    ) -> Result<&Network, ApiError> {
        validate_name("network", &req.name)?;
        if RESERVED_NETWORK_NAMES.contains(&req.name.as_str()) {
            return Err(bad(format!(
                "network name '{}' is reserved (it names a Docker network mode)",
                req.name
            )));
        }
        if self.networks.contains_key(&req.name) {
            return Err(bad(format!("network '{}' already exists", req.name)));
        }
        let opts = parse_options(&req.options)?;
        if opts.routed && req.internal {
            return Err(bad(
                "gateway_mode=routed makes containers reachable beyond the uplink, and --internal forbids it: choose one",
            ));
        }
        let driver = parse_driver(req.driver.as_deref())?;
        let overlay = self.overlay_from_options(driver, &opts.given)?;
        if driver == Driver::Overlay && req.parent.is_some() {
            return Err(bad(
                "--parent extends a bridge network onto a wire; an overlay network crosses hosts over the underlay instead",
            ));
        }
        let default_mtu = match driver {
            Driver::Bridge => DEFAULT_MTU,
            Driver::Overlay => DEFAULT_OVERLAY_MTU,
        };
        let mtu = match (req.mtu, opts.mtu) {
            (Some(a), Some(b)) if a != b => {
                return Err(bad(format!("--mtu {a} contradicts option {OPT_MTU}={b}")))
            }
            (Some(a), _) => parse_mtu(&a.to_string())?,
            (None, Some(b)) => b,
            (None, None) => default_mtu,
        };
        let existing: Vec<(String, Ipv4Net)> = self
            .networks
            .values()
            .map(|n| (n.name.clone(), n.subnet()))
            .collect();
        let subnet = match &req.subnet {
            Some(s) => {
                let subnet = Ipv4Net::parse_strict(s).map_err(ipam_err)?;
                ipam::check_reserved(&subnet).map_err(ipam_err)?;
                ipam::check_overlap(&subnet, &existing).map_err(ipam_err)?;
                subnet
            }
            None => {
                if req.gateway.is_some() || req.ip_range.is_some() || !req.aux_addresses.is_empty()
                {
                    return Err(bad(
                        "--gateway, --ip-range and --aux-address need --subnet (they must lie inside it)",
                    ));
                }
                let used: Vec<Ipv4Net> = existing.iter().map(|(_, n)| *n).collect();
                ipam::pick_default_subnet(&used, routes).map_err(ipam_err)?
            }
        };
        let gateway = req
            .gateway
            .as_deref()
            .map(|g| parse_ip("gateway", g))
            .transpose()?;
        let ip_range = req
            .ip_range
            .as_deref()
            .map(|r| Ipv4Net::parse_strict(r).map_err(ipam_err))
            .transpose()?;
        let mut aux = BTreeMap::new();
        for item in &req.aux_addresses {
            let (name, ip) = ipam::parse_aux(item).map_err(ipam_err)?;
            if aux.insert(name.clone(), ip).is_some() {
                return Err(bad(format!("aux address name '{name}' is given twice")));
            }
        }
        let config = IpamConfig::new(subnet, gateway, ip_range, aux).map_err(ipam_err)?;
        let id = match &req.id {
            Some(id) => given_id("network", id, self.networks.values().map(|n| n.id.as_str()))?,
            None => mint.id(),
        };
        let host_interface = match &opts.bridge_name {
            Some(n) => n.clone(),
            None => format!("sy-{}", &id[..12]),
        };
        if let Some(holder) = self.host_interface_in_use(&host_interface) {
            return Err(bad(format!(
                "interface name '{host_interface}' is already used by {holder}"
            )));
        }
        if let Some(v) = req.vlan {
            if req.parent.is_none() {
                return Err(bad(
                    "--vlan needs --parent IFNAME (the interface that carries the VLAN)",
                ));
            }
            if !(1..=4094).contains(&v) {
                return Err(bad(format!("invalid VLAN {v}: expected 1 to 4094")));
            }
        }
        if let Some(parent) = &req.parent {
            validate_ifname(parent)?;
            if let Some(other) = self
                .networks
                .values()
                .find(|n| n.parent.as_deref() == Some(parent.as_str()) && n.vlan == req.vlan)
            {
                return Err(bad(format!(
                    "network '{}' already uses parent {parent}{}",
                    other.name,
                    req.vlan
                        .map(|v| format!(" with VLAN {v}"))
                        .unwrap_or_else(|| " untagged".into())
                )));
            }
        }
        let used_domains: Vec<u16> = self.networks.values().map(|n| n.domain).collect();
        let domain = (0..UPLINK_DOMAIN)
            .find(|d| !used_domains.contains(d))
            .ok_or_else(|| bad("too many networks"))?;
        let network = Network {
            id,
            name: req.name.clone(),
            created: mint.created(),
            pool: AddressPool::new(config),
            icc: opts.icc,
            masquerade: opts.masquerade,
            internal: req.internal,
            mtu,
            host_interface,
            host_mac: mint.mac(),
            domain,
            options: opts.given,
            parent: req.parent.clone(),
            vlan: req.vlan,
            user_subnet: req.subnet.is_some(),
            routed: opts.routed,
            overlay,
        };
        Ok(self.networks.entry(req.name.clone()).or_insert(network))
    }

    /// `network rm`: all names are checked before anything is removed. With `force`, attached
    /// containers are disconnected first; their endpoints are returned so the system can follow.
    pub fn remove_networks(
        &mut self,
        names: &[String],
        force: bool,
    ) -> Result<Vec<RemovedNetwork>, ApiError> {
        if names.is_empty() {
            return Err(bad("name at least one network to remove"));
        }
        for (i, name) in names.iter().enumerate() {
            self.network(name)?;
            if names[..i].contains(name) {
                return Err(bad(format!("network '{name}' is named twice")));
            }
            if name == DEFAULT_NETWORK {
                return Err(bad(format!(
                    "network '{DEFAULT_NETWORK}' is the default network and cannot be removed"
                )));
            }
            let attached: Vec<&str> = self.attached(name).map(|(c, _)| c.name.as_str()).collect();
            if !attached.is_empty() && !force {
                return Err(bad(format!(
                    "network '{name}' has containers attached ({}); disconnect them or use --force",
                    attached.join(", ")
                )));
            }
        }
        let mut removed = Vec::new();
        for name in names {
            let mut disconnected = Vec::new();
            for c in self.containers.values_mut() {
                if let Some(i) = c.endpoints.iter().position(|e| &e.network == name) {
                    disconnected.push((c.name.clone(), c.endpoints.remove(i)));
                }
            }
            let network = self.networks.remove(name).expect("checked above");
            removed.push(RemovedNetwork {
                network,
                disconnected,
            });
        }
        Ok(removed)
    }
}
