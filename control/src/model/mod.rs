//! The daemon's desired state: networks, containers and their endpoints, with every rule about
//! what a valid state is.
//!
//! Everything here is pure: no file, namespace, netlink or engine call, no clock and no random
//! pool (`Mint` gives IDs, MACs and creation times; the daemon mints from the kernel, tests from a
//! counter). The daemon changes state by applying an operation to a *copy* of `State`; only when
//! the operation succeeded is the copy persisted (`crate::store`) and swapped in, then the system
//! is made to match it. A refused request therefore changes nothing, by construction, and each
//! rule can be unit-tested without root.
//!
//! `mod.rs` holds `State` and the name rules; `network.rs`, `container.rs` the two kinds of
//! object and their operations; `options.rs` `--opt`; `mac.rs` MACs; `ipam.rs` addresses (`ipv4net.rs` the `Ipv4Net` type);
//! `links.rs` `--expose`/`--link`; `dns.rs` DNS names, resolver settings and the resolver's name table; `publish.rs` `-p`/`-P`; `view.rs` ls/inspect;
//! `topology.rs` the topology view.

mod container;
pub mod dns;
pub mod ipam;
mod ipv4net;
pub mod links;
pub mod mac;
mod mint;
mod network;
mod options;
pub mod overlay;
pub mod publish;
pub mod topology;
mod view;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::api::{ApiError, NetworkCreate};
pub use container::{Container, Endpoint, NetworkMode, PublishContext, Published, Reach};
use ipam::Ipv4Net;
pub use mint::{rfc3339, Mint};
pub use network::{Network, RemovedNetwork, UplinkClaim};
pub use options::{
    OPT_BRIDGE_NAME, OPT_GATEWAY_MODE, OPT_HOST_BINDING, OPT_ICC, OPT_MASQUERADE, OPT_MTU,
};

/// Version of the state file layout; a daemon refuses a file it does not understand.
pub const STATE_FORMAT: u32 = 1;
/// The network every daemon has, as docker0.
pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_SUBNET: &str = "172.17.0.0/16";
/// The default network's host port, as `docker0` is Docker's.
pub const DEFAULT_HOST_INTERFACE: &str = "switchyard0";
/// Names with another meaning in Docker (`--network host|none`), never plain networks.
const RESERVED_NETWORK_NAMES: &[&str] = &["host", "none", "default"];
pub const DEFAULT_MTU: u32 = 1500;

/// dockerd's flags for the default bridge network, as given to `switchyard daemon` (`None`:
/// not given): `--bip`, `--fixed-cidr`, `--default-gateway`, `--mtu`, `--icc`, `--ip-masq`.
#[derive(Clone, Debug, Default)]
pub struct BridgeFlags {
    pub bip: Option<String>,
    pub fixed_cidr: Option<String>,
    pub default_gateway: Option<String>,
    pub mtu: Option<u32>,
    pub icc: Option<bool>,
    pub ip_masq: Option<bool>,
}

/// The aux address Docker keeps `--default-gateway` in (libnetwork's `DefaultGatewayV4AuxKey`):
/// containers' default route goes there instead of the bridge's address.
pub const AUX_DEFAULT_GATEWAY: &str = "DefaultGatewayIPv4";

impl BridgeFlags {
    pub fn is_empty(&self) -> bool {
        self.bip.is_none()
            && self.fixed_cidr.is_none()
            && self.default_gateway.is_none()
            && self.mtu.is_none()
            && self.icc.is_none()
            && self.ip_masq.is_none()
    }

    /// The default network as these flags describe it; `subnet` and `gateway` apply where
    /// `--bip` is not given.
    fn request(
        &self,
        subnet: Option<String>,
        gateway: Option<String>,
    ) -> Result<NetworkCreate, ApiError> {
        let (subnet, gateway) = match &self.bip {
            Some(bip) => {
                let (ip, net) =
                    Ipv4Net::parse_any(bip).map_err(|e| bad(format!("--bip {bip}: {e}")))?;
                if ip == net.addr() {
                    return Err(bad(format!(
                        "--bip {bip}: give the bridge's own address with the prefix (like 172.18.0.1/16), not the network's"
                    )));
                }
                (Some(net.to_string()), Some(ip.to_string()))
            }
            None => (subnet, gateway),
        };
        let mut options = vec![format!("{OPT_BRIDGE_NAME}={DEFAULT_HOST_INTERFACE}")];
        if let Some(icc) = self.icc {
            options.push(format!("{OPT_ICC}={icc}"));
        }
        if let Some(masq) = self.ip_masq {
            options.push(format!("{OPT_MASQUERADE}={masq}"));
        }
        Ok(NetworkCreate {
            name: DEFAULT_NETWORK.to_string(),
            subnet,
            gateway,
            ip_range: self.fixed_cidr.clone(),
            aux_addresses: self
                .default_gateway
                .iter()
                .map(|g| format!("{AUX_DEFAULT_GATEWAY}={g}"))
                .collect(),
            options,
            mtu: self.mtu,
            ..Default::default()
        })
    }
}
/// The uplink's own bridge domain in the engine (never flooded into); networks use lower ones.
pub const UPLINK_DOMAIN: u16 = 4095;
/// Interface names are at most 15 bytes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    pub networks: BTreeMap<String, Network>,
    pub containers: BTreeMap<String, Container>,
    /// The next published-port id.
    #[serde(default)]
    pub next_mapping: u32,
    /// What another system calls a network or container, by its ID (Docker's names for the
    /// networks and endpoints its plugin made): shown by `ls` and `topology`, never looked up.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
}

pub(crate) fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_input(message)
}

/// Docker's rule for network and container names, which also keeps them safe as file names
/// (`/run/netns/NAME`, `/etc/netns/NAME`).
pub fn validate_name(what: &str, name: &str) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !first_ok || !rest_ok {
        return Err(bad(format!(
            "invalid {what} name '{name}': use letters, digits, '_', '.' and '-', starting with a letter or digit"
        )));
    }
    if name.len() > 64 {
        return Err(bad(format!(
            "invalid {what} name '{name}': at most 64 characters"
        )));
    }
    Ok(())
}

/// A valid Linux interface name of at most 15 bytes.
pub(super) fn validate_ifname(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > IFNAME_MAX
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(bad(format!(
            "invalid interface name '{name}': 1-{IFNAME_MAX} characters, no '/', ':' or spaces"
        )));
    }
    Ok(())
}

/// An ID given by another system (Docker's): 12 to 64 lowercase hex digits, unused by `taken`.
pub(super) fn given_id<'a>(
    what: &str,
    id: &str,
    mut taken: impl Iterator<Item = &'a str>,
) -> Result<String, ApiError> {
    if !(12..=64).contains(&id.len())
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad(format!(
            "invalid {what} ID '{id}': expected 12 to 64 lowercase hex digits"
        )));
    }
    if taken.any(|t| t == id) {
        return Err(bad(format!("a {what} with ID {id} already exists")));
    }
    Ok(id.to_string())
}

pub(super) fn parse_ip(what: &str, value: &str) -> Result<Ipv4Addr, ApiError> {
    value.parse().map_err(|_| {
        bad(format!(
            "invalid {what} '{value}': expected an IPv4 address"
        ))
    })
}

pub(super) fn ipam_err(e: ipam::IpamError) -> ApiError {
    bad(e.to_string())
}

impl Default for State {
    fn default() -> Self {
        State {
            format: STATE_FORMAT,
            networks: BTreeMap::new(),
            containers: BTreeMap::new(),
            next_mapping: 1,
            aliases: BTreeMap::new(),
        }
    }
}

impl State {
    /// A first start: only the default network, on 172.17.0.0/16 unless that is already routed in
    /// the daemon's namespace (then the first free default pool, as dockerd does for docker0), or
    /// as dockerd's flags for the default bridge say (`flags`).
    pub fn initial(routes: &[Ipv4Net], mint: &mut dyn Mint) -> Result<State, ApiError> {
        State::initial_with(routes, &BridgeFlags::default(), mint)
    }

    pub fn initial_with(
        routes: &[Ipv4Net],
        flags: &BridgeFlags,
        mint: &mut dyn Mint,
    ) -> Result<State, ApiError> {
        let mut state = State::default();
        let default: Ipv4Net = DEFAULT_SUBNET.parse().expect("valid constant");
        let subnet = if routes.iter().any(|r| r.overlaps(&default)) {
            None
        } else {
            Some(DEFAULT_SUBNET.to_string())
        };
        state.create_network(&flags.request(subnet, None)?, routes, mint)?;
        Ok(state)
    }

    /// A later start with dockerd's flags for the default bridge: if they ask for something other
    /// than the persisted `bridge` network, it is rebuilt as they say (returned: the network it
    /// replaces, to tear down), provided no container is on it. Flags not given keep what is
    /// there (as dockerd keeps docker0's address without `--bip`).
    pub fn reconfigure_default_bridge(
        &mut self,
        flags: &BridgeFlags,
        mint: &mut dyn Mint,
    ) -> Result<Option<Network>, ApiError> {
        if flags.is_empty() {
            return Ok(None);
        }
        let current = self.network(DEFAULT_NETWORK)?.clone();
        // What is not given stays as it is (the range and the default gateway only while the
        // subnet does).
        let config = current.pool.config();
        let same_subnet = flags.bip.is_none();
        let effective = BridgeFlags {
            bip: flags.bip.clone(),
            fixed_cidr: flags.fixed_cidr.clone().or(config
                .ip_range
                .filter(|_| same_subnet)
                .map(|r| r.to_string())),
            default_gateway: flags.default_gateway.clone().or(config
                .aux
                .get(AUX_DEFAULT_GATEWAY)
                .filter(|_| same_subnet)
                .map(|g| g.to_string())),
            mtu: flags.mtu.or(Some(current.mtu)),
            icc: flags.icc.or(Some(current.icc)),
            ip_masq: flags.ip_masq.or(Some(current.masquerade)),
        };
        let req = effective.request(
            Some(current.subnet().to_string()),
            Some(current.gateway().to_string()),
        )?;
        let mut wanted = State::default();
        let want = wanted.create_network(&req, &[], mint)?.clone();
        let keep = |n: &Network| (n.pool.config().clone(), n.icc, n.masquerade, n.mtu);
        if keep(&want) == keep(&current) {
            return Ok(None);
        }
        if let Some((c, _)) = self.attached(DEFAULT_NETWORK).next() {
            return Err(bad(format!(
                "the daemon's flags change the default network '{DEFAULT_NETWORK}', but container '{}' is on it: remove its containers first, or start without those flags",
                c.name
            )));
        }
        let old = self.networks.remove(DEFAULT_NETWORK).expect("found above");
        if let Err(e) = self.create_network(&req, &[], mint) {
            self.networks.insert(DEFAULT_NETWORK.to_string(), old);
            return Err(e);
        }
        Ok(Some(old))
    }

    pub fn network(&self, name: &str) -> Result<&Network, ApiError> {
        self.networks
            .get(name)
            .ok_or_else(|| bad(format!("no such network: '{name}'")))
    }

    pub fn container(&self, name: &str) -> Result<&Container, ApiError> {
        self.containers
            .get(name)
            .ok_or_else(|| bad(format!("no such container: '{name}'")))
    }

    /// The name to show for the object `id` named `name`: its alias, if another system gave one.
    pub fn shown_name<'a>(&'a self, id: &str, name: &'a str) -> &'a str {
        self.aliases.get(id).map_or(name, String::as_str)
    }

    /// Sets (`Some`) or clears (`None`) the aliases of networks and containers by ID; aliases of
    /// objects that are gone are dropped. All are checked before any is set.
    pub fn set_aliases(
        &mut self,
        changes: &BTreeMap<String, Option<String>>,
    ) -> Result<(), ApiError> {
        for (id, alias) in changes {
            let known = self.networks.values().any(|n| &n.id == id)
                || self.containers.values().any(|c| &c.id == id);
            if !known {
                return Err(bad(format!("no network or container with ID {id}")));
            }
            if let Some(a) = alias {
                validate_name("alias", a)?;
            }
        }
        for (id, alias) in changes {
            match alias {
                Some(a) => self.aliases.insert(id.clone(), a.clone()),
                None => self.aliases.remove(id),
            };
        }
        let ids: std::collections::BTreeSet<&str> = self
            .networks
            .values()
            .map(|n| n.id.as_str())
            .chain(self.containers.values().map(|c| c.id.as_str()))
            .collect();
        self.aliases.retain(|id, _| ids.contains(id.as_str()));
        Ok(())
    }

    /// Containers with an endpoint on `network`, in name order.
    pub fn attached<'a>(
        &'a self,
        network: &'a str,
    ) -> impl Iterator<Item = (&'a Container, &'a Endpoint)> + 'a {
        self.containers
            .values()
            .filter_map(move |c| c.endpoint(network).map(|e| (c, e)))
    }

    pub(super) fn host_interface_in_use(&self, name: &str) -> Option<String> {
        for n in self.networks.values() {
            if n.host_interface == name {
                return Some(format!("network '{}'", n.name));
            }
        }
        for c in self.containers.values() {
            if c.endpoints.iter().any(|e| e.host_interface == name) {
                return Some(format!("container '{}'", c.name));
            }
        }
        None
    }
}

#[cfg(test)]
pub(crate) mod tests;
