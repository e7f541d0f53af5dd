//! The daemon's desired state: networks, containers and their endpoints, with every rule about
//! what a valid state is.
//!
//! Everything here is pure: no namespace, netlink or engine call. The daemon changes state by
//! applying an operation to a *copy* of `State`; only when the operation succeeded is the copy
//! persisted and swapped in, then the system is made to match it. A refused request therefore
//! changes nothing, by construction, and each rule can be unit-tested without root.

pub mod ipam;
pub mod links;
pub mod mac;
mod mint;
pub mod publish;
pub mod topology;
mod view;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use dataplane::MacAddr;

use crate::api::{ApiError, ContainerCreate, NetworkCreate};
use ipam::{AddressPool, IpamConfig, Ipv4Net};
use links::{Exposed, Link};
pub use mint::{rfc3339, Mint};

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
/// The uplink's own bridge domain in the engine (never flooded into); networks use lower ones.
pub const UPLINK_DOMAIN: u16 = 4095;
/// Interface names are at most 15 bytes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    pub networks: BTreeMap<String, Network>,
    pub containers: BTreeMap<String, Container>,
    /// The next published-port id.
    #[serde(default)]
    pub next_mapping: u32,
}

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
}

impl Network {
    pub fn subnet(&self) -> Ipv4Net {
        self.pool.config().subnet
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.pool.config().gateway
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub created: String,
    /// In attachment order: the first one that is not internal gives the default route.
    pub endpoints: Vec<Endpoint>,
    /// `--expose`, sorted, without duplicates.
    #[serde(default)]
    pub exposed: Vec<Exposed>,
    /// `--link`: containers this one may reach on their exposed ports on `icc=false` networks.
    #[serde(default)]
    pub links: Vec<Link>,
    /// `--allow-spoofing`: may send from any MAC and address (router-like containers).
    #[serde(default)]
    pub allow_spoofing: bool,
    /// `-p` / `-P`: ports published on the uplink address.
    #[serde(default)]
    pub published: Vec<Published>,
    /// Docker's network mode: a namespace of its own on bridge networks (the default), only
    /// `lo` (`none`), the daemon's namespace (`host`), or another container's (`container:X`).
    #[serde(default)]
    pub mode: NetworkMode,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    #[default]
    Bridge,
    None,
    Host,
    /// Joins the named container's namespace.
    Container(String),
    /// `switchyard attach`: a namespace someone else made (a container of another runtime, a
    /// process), plugged in as pipework does. Never created or deleted by switchyard; the
    /// attachment ends when the namespace does (`inode` tells a reused path from the original).
    External {
        path: String,
        inode: u64,
    },
}

impl NetworkMode {
    /// Docker's `HostConfig.NetworkMode` text.
    pub fn docker_name(&self) -> String {
        match self {
            NetworkMode::Bridge => "bridge".into(),
            NetworkMode::None => "none".into(),
            NetworkMode::Host => "host".into(),
            NetworkMode::Container(c) => format!("container:{c}"),
            NetworkMode::External { path, .. } => format!("attached:{path}"),
        }
    }
}

/// A published port with the id its tracked connections carry (so they go with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub id: u32,
    #[serde(flatten)]
    pub mapping: publish::PortMapping,
}

/// What publishing needs to know about the daemon: whether it has an uplink (and its address),
/// and the ephemeral range host ports are chosen from.
#[derive(Clone, Copy, Debug)]
pub struct PublishContext {
    pub uplink: Option<Ipv4Addr>,
    pub ephemeral: (u16, u16),
}

impl Default for PublishContext {
    fn default() -> Self {
        PublishContext {
            uplink: None,
            ephemeral: (49153, 65535),
        }
    }
}

impl Container {
    pub fn endpoint(&self, network: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.network == network)
    }

    /// The namespace is named after the container, so `ip netns exec NAME` works too (for
    /// `container:X`, it is X's; `host` has none of its own; an attachment's is elsewhere).
    pub fn netns(&self) -> &str {
        match &self.mode {
            NetworkMode::Container(other) => other,
            _ => &self.name,
        }
    }

    /// Whether the daemon creates (and deletes) a namespace for it.
    pub fn owns_netns(&self) -> bool {
        matches!(self.mode, NetworkMode::Bridge | NetworkMode::None)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub network: String,
    /// Inside the container: `eth0`, `eth1`, ...
    pub interface: String,
    /// The veth end in the daemon's namespace that the engine attaches to.
    pub host_interface: String,
    #[serde(with = "mac::text")]
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
}

/// A removed network and the endpoints (with their container's name) it took along.
pub struct RemovedNetwork {
    pub network: Network,
    pub disconnected: Vec<(String, Endpoint)>,
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
fn validate_ifname(name: &str) -> Result<(), ApiError> {
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

fn parse_bool(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(format!(
            "invalid value '{value}' for option {key}: expected true or false"
        ))),
    }
}

fn parse_mtu(value: &str) -> Result<u32, ApiError> {
    match value.parse::<u32>() {
        Ok(m) if (68..=65535).contains(&m) => Ok(m),
        _ => Err(bad(format!(
            "invalid MTU '{value}': expected a number from 68 to 65535"
        ))),
    }
}

fn parse_ip(what: &str, value: &str) -> Result<Ipv4Addr, ApiError> {
    value.parse().map_err(|_| {
        bad(format!(
            "invalid {what} '{value}': expected an IPv4 address"
        ))
    })
}

fn ipam_err(e: ipam::IpamError) -> ApiError {
    bad(e.to_string())
}

/// Options `network create --opt` understands, after expanding short forms.
struct NetworkOptions {
    given: BTreeMap<String, String>,
    icc: bool,
    masquerade: bool,
    bridge_name: Option<String>,
    mtu: Option<u32>,
}

fn parse_options(raw: &[String]) -> Result<NetworkOptions, ApiError> {
    let mut o = NetworkOptions {
        given: BTreeMap::new(),
        icc: true,
        masquerade: true,
        bridge_name: None,
        mtu: None,
    };
    for item in raw {
        let Some((key, value)) = item.split_once('=') else {
            return Err(bad(format!("invalid option '{item}': expected KEY=VALUE")));
        };
        let key = match key {
            "icc" => OPT_ICC,
            "mtu" => OPT_MTU,
            k => k,
        };
        if o.given.insert(key.to_string(), value.to_string()).is_some() {
            return Err(bad(format!("option {key} is given twice")));
        }
        match key {
            OPT_ICC => o.icc = parse_bool(key, value)?,
            OPT_MASQUERADE => o.masquerade = parse_bool(key, value)?,
            OPT_MTU => o.mtu = Some(parse_mtu(value)?),
            OPT_BRIDGE_NAME => {
                validate_ifname(value)?;
                o.bridge_name = Some(value.to_string());
            }
            OPT_HOST_BINDING => {
                parse_ip("host binding address", value)?;
            }
            _ => {
                return Err(bad(format!(
                    "unknown option '{key}': switchyard understands icc, mtu, {OPT_ICC}, {OPT_MASQUERADE}, {OPT_HOST_BINDING}, {OPT_BRIDGE_NAME}, {OPT_MTU}"
                )))
            }
        }
    }
    Ok(o)
}

impl Default for State {
    fn default() -> Self {
        State {
            format: STATE_FORMAT,
            networks: BTreeMap::new(),
            containers: BTreeMap::new(),
            next_mapping: 1,
        }
    }
}

impl State {
    /// A first start: only the default network, on 172.17.0.0/16 unless that is already routed in
    /// the daemon's namespace (then the first free default pool, as dockerd does for docker0).
    pub fn initial(routes: &[Ipv4Net], mint: &mut dyn Mint) -> Result<State, ApiError> {
        let mut state = State::default();
        let default: Ipv4Net = DEFAULT_SUBNET.parse().expect("valid constant");
        let subnet = if routes.iter().any(|r| r.overlaps(&default)) {
            None
        } else {
            Some(DEFAULT_SUBNET.to_string())
        };
        state.create_network(
            &NetworkCreate {
                name: DEFAULT_NETWORK.to_string(),
                subnet,
                options: vec![format!("{OPT_BRIDGE_NAME}={DEFAULT_HOST_INTERFACE}")],
                ..Default::default()
            },
            routes,
            mint,
        )?;
        Ok(state)
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

    /// Containers with an endpoint on `network`, in name order.
    pub fn attached<'a>(
        &'a self,
        network: &'a str,
    ) -> impl Iterator<Item = (&'a Container, &'a Endpoint)> + 'a {
        self.containers
            .values()
            .filter_map(move |c| c.endpoint(network).map(|e| (c, e)))
    }

    fn host_interface_in_use(&self, name: &str) -> Option<String> {
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
        let mtu = match (req.mtu, opts.mtu) {
            (Some(a), Some(b)) if a != b => {
                return Err(bad(format!("--mtu {a} contradicts option {OPT_MTU}={b}")))
            }
            (Some(a), _) => parse_mtu(&a.to_string())?,
            (None, Some(b)) => b,
            (None, None) => DEFAULT_MTU,
        };
        let existing: Vec<(String, Ipv4Net)> = self
            .networks
            .values()
            .map(|n| (n.name.clone(), n.subnet()))
            .collect();
        let subnet = match &req.subnet {
            Some(s) => {
                let subnet = Ipv4Net::parse_strict(s).map_err(ipam_err)?;
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
        let id = mint.id();
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

    /// A new endpoint of `container` on `network` (not yet added to the container).
    fn new_endpoint(
        &mut self,
        container: &str,
        existing: &[Endpoint],
        network: &str,
        ip: Option<&str>,
        mac: Option<&str>,
        mint: &mut dyn Mint,
    ) -> Result<Endpoint, ApiError> {
        let requested_ip = ip.map(|s| parse_ip("IP address", s)).transpose()?;
        let mac = match mac {
            Some(m) => mac::parse_interface_mac(m).map_err(|e| bad(e.to_string()))?,
            None => mint.mac(),
        };
        let net = self.network(network)?;
        if let Some((holder, _)) = self.attached(network).find(|(_, e)| e.mac == mac) {
            return Err(bad(format!(
                "MAC {mac} is already used by '{}' on network '{network}'",
                holder.name
            )));
        }
        if mac == net.host_mac {
            return Err(bad(format!(
                "MAC {mac} is the host port's MAC on network '{network}'"
            )));
        }
        let interface = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !existing.iter().any(|e| &e.interface == n))
            .expect("an unused ethN exists");
        let id = loop {
            let id = mint.id();
            if self.host_interface_in_use(&veth_name(&id)).is_none() {
                break id;
            }
        };
        let net = self.networks.get_mut(network).expect("checked above");
        let ip = net
            .pool
            .allocate(container, requested_ip)
            .map_err(ipam_err)?;
        Ok(Endpoint {
            host_interface: veth_name(&id),
            id,
            network: network.to_string(),
            interface,
            mac,
            ip,
        })
    }

    /// `container create`: a namespace with one endpoint on `network`.
    pub fn create_container(
        &mut self,
        req: &ContainerCreate,
        mint: &mut dyn Mint,
    ) -> Result<&Container, ApiError> {
        self.create_container_with(req, &PublishContext::default(), mint)
    }

    /// `container create` with `-p`/`-P` resolved against the daemon's uplink and port range.
    pub fn create_container_with(
        &mut self,
        req: &ContainerCreate,
        ctx: &PublishContext,
        mint: &mut dyn Mint,
    ) -> Result<&Container, ApiError> {
        validate_name("container", &req.name)?;
        if self.containers.contains_key(&req.name) {
            return Err(bad(format!("container '{}' already exists", req.name)));
        }
        let mode = match req.network.as_str() {
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            n => match n.strip_prefix("container:") {
                Some(other) => {
                    let o = self.container(other)?;
                    match &o.mode {
                        NetworkMode::Container(_) | NetworkMode::Host => {
                            return Err(bad(format!(
                                "container '{other}' has no namespace of its own to join (its mode is {})",
                                o.mode.docker_name()
                            )))
                        }
                        _ => NetworkMode::Container(other.to_string()),
                    }
                }
                None => NetworkMode::Bridge,
            },
        };
        if mode != NetworkMode::Bridge {
            return self.create_special(req, mode, mint);
        }
        let mut exposed = Vec::new();
        for spec in &req.expose {
            exposed.extend(links::parse_expose(spec)?);
        }
        exposed.sort();
        exposed.dedup();
        let links = req
            .links
            .iter()
            .map(|l| links::parse_link(l))
            .collect::<Result<Vec<_>, _>>()?;
        let net = self.network(&req.network)?;
        self.check_links(&req.name, &[req.network.as_str()], &links)?;
        let specs = req
            .publish
            .iter()
            .map(|p| publish::parse_publish(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mappings = if specs.is_empty() && !req.publish_all {
            Vec::new()
        } else {
            let Some(uplink) = ctx.uplink else {
                return Err(bad(
                    "publishing ports needs an uplink: start the daemon with --uplink IFNAME --uplink-ip IP/PREFIX",
                ));
            };
            if net.internal {
                return Err(bad(format!(
                    "network '{}' is internal: containers on it cannot publish ports",
                    net.name
                )));
            }
            for s in &specs {
                if let Some(ip) = s.host_ip {
                    if ip != uplink && !ip.is_unspecified() {
                        return Err(bad(format!(
                            "host address {ip} is not the uplink address {uplink}: publish on 0.0.0.0 or {uplink}"
                        )));
                    }
                }
            }
            let taken: Vec<(String, publish::PortMapping)> = self
                .containers
                .values()
                .flat_map(|c| c.published.iter().map(|p| (c.name.clone(), p.mapping)))
                .collect();
            let exposed: Vec<(u16, links::Protocol)> =
                exposed.iter().map(|x| (x.port, x.protocol)).collect();
            publish::allocate(
                &req.name,
                &specs,
                req.publish_all,
                &exposed,
                &publish::Taken { mappings: &taken },
                ctx.ephemeral,
            )?
        };
        let endpoint = self.new_endpoint(
            &req.name,
            &[],
            &req.network,
            req.ip.as_deref(),
            req.mac.as_deref(),
            mint,
        )?;
        let container = Container {
            id: mint.id(),
            name: req.name.clone(),
            created: mint.created(),
            endpoints: vec![endpoint],
            exposed,
            links,
            allow_spoofing: req.allow_spoofing,
            published: Vec::new(),
            mode: NetworkMode::Bridge,
        };
        let mut container = container;
        // Docker exposes what it publishes (links see those ports too).
        for m in &mappings {
            let x = Exposed {
                port: m.container_port,
                protocol: m.protocol,
            };
            if !container.exposed.contains(&x) {
                container.exposed.push(x);
            }
        }
        container.exposed.sort();
        for mapping in mappings {
            container.published.push(Published {
                id: self.next_mapping,
                mapping,
            });
            self.next_mapping = self.next_mapping.wrapping_add(1).max(1);
        }
        Ok(self.containers.entry(req.name.clone()).or_insert(container))
    }

    /// A container in mode none, host or container:X: no endpoint of its own.
    fn create_special(
        &mut self,
        req: &ContainerCreate,
        mode: NetworkMode,
        mint: &mut dyn Mint,
    ) -> Result<&Container, ApiError> {
        let what = mode.docker_name();
        if !req.publish.is_empty() || req.publish_all {
            return Err(bad(match mode {
                NetworkMode::Host => "publishing ports is not possible with --network host: the container uses the host's own ports".to_string(),
                _ => format!("publishing ports is not possible with --network {what}: it has no network of its own to publish from"),
            }));
        }
        if req.ip.is_some() || req.mac.is_some() {
            return Err(bad(format!(
                "--ip and --mac need a network; --network {what} has none of its own"
            )));
        }
        if !req.links.is_empty() {
            return Err(bad(format!(
                "--link needs a network; --network {what} has none of its own"
            )));
        }
        let mut exposed = Vec::new();
        for spec in &req.expose {
            exposed.extend(links::parse_expose(spec)?);
        }
        exposed.sort();
        exposed.dedup();
        let container = Container {
            id: mint.id(),
            name: req.name.clone(),
            created: mint.created(),
            endpoints: Vec::new(),
            exposed,
            links: Vec::new(),
            allow_spoofing: false,
            published: Vec::new(),
            mode,
        };
        Ok(self.containers.entry(req.name.clone()).or_insert(container))
    }

    /// `switchyard attach`: an endpoint on `network` inside the namespace at `path` (identity
    /// `inode`). One attachment per namespace, named after it; attaching it to a second network
    /// adds an interface.
    #[allow(clippy::too_many_arguments)]
    pub fn attach(
        &mut self,
        name: &str,
        path: &str,
        inode: u64,
        network: &str,
        ifname: &str,
        ip: Option<&str>,
        mac: Option<&str>,
        mint: &mut dyn Mint,
    ) -> Result<(Container, Endpoint), ApiError> {
        validate_ifname(ifname)?;
        self.network(network)?;
        let existing = self.containers.get(name).cloned();
        if let Some(c) = &existing {
            if c.mode
                != (NetworkMode::External {
                    path: path.to_string(),
                    inode,
                })
            {
                return Err(bad(format!(
                    "the name '{name}' is taken by another container"
                )));
            }
            if c.endpoint(network).is_some() {
                return Err(bad(format!(
                    "{path} is already attached to network '{network}'"
                )));
            }
            if c.endpoints.iter().any(|e| e.interface == ifname) {
                return Err(bad(format!(
                    "{path} already has switchyard's interface {ifname}"
                )));
            }
        }
        let endpoints = existing
            .as_ref()
            .map(|c| c.endpoints.clone())
            .unwrap_or_default();
        let mut endpoint = self.new_endpoint(name, &endpoints, network, ip, mac, mint)?;
        endpoint.interface = ifname.to_string();
        let c = self
            .containers
            .entry(name.to_string())
            .or_insert_with(|| Container {
                id: mint.id(),
                name: name.to_string(),
                created: mint.created(),
                endpoints: Vec::new(),
                exposed: Vec::new(),
                links: Vec::new(),
                allow_spoofing: false,
                published: Vec::new(),
                mode: NetworkMode::External {
                    path: path.to_string(),
                    inode,
                },
            });
        c.endpoints.push(endpoint.clone());
        Ok((c.clone(), endpoint))
    }

    /// The attachment of the namespace at `path`, if any.
    pub fn attachment(&self, path: &str) -> Option<&Container> {
        self.containers
            .values()
            .find(|c| matches!(&c.mode, NetworkMode::External { path: p, .. } if p == path))
    }

    /// Containers that joined `name`'s namespace (`--network container:NAME`).
    pub fn joiners(&self, name: &str) -> Vec<String> {
        self.containers
            .values()
            .filter(|c| c.mode == NetworkMode::Container(name.to_string()))
            .map(|c| c.name.clone())
            .collect()
    }

    /// `container rm`: all names checked first; addresses released. A container others joined
    /// (`container:NAME`) is refused unless `force`, which removes the joiners with it.
    pub fn remove_containers_forced(
        &mut self,
        names: &[String],
        force: bool,
    ) -> Result<Vec<Container>, ApiError> {
        let mut all: Vec<String> = names.to_vec();
        for name in names {
            self.container(name)?;
            let joiners: Vec<String> = self
                .joiners(name)
                .into_iter()
                .filter(|j| !names.contains(j))
                .collect();
            if !joiners.is_empty() && !force {
                return Err(bad(format!(
                    "container '{name}' has containers in its namespace ({}); remove them first or use --force",
                    joiners.join(", ")
                )));
            }
            all.extend(joiners);
        }
        // Joiners go first: their namespace is the one being removed.
        all.sort_by_key(|n| {
            !matches!(
                self.containers.get(n).map(|c| &c.mode),
                Some(NetworkMode::Container(_))
            )
        });
        all.dedup();
        self.remove_containers(&all)
    }

    /// `container rm`: all names checked first; addresses released.
    pub fn remove_containers(&mut self, names: &[String]) -> Result<Vec<Container>, ApiError> {
        if names.is_empty() {
            return Err(bad("name at least one container to remove"));
        }
        for (i, name) in names.iter().enumerate() {
            self.container(name)?;
            if names[..i].contains(name) {
                return Err(bad(format!("container '{name}' is named twice")));
            }
        }
        let mut removed = Vec::new();
        for name in names {
            let c = self.containers.remove(name).expect("checked above");
            for e in &c.endpoints {
                if let Some(n) = self.networks.get_mut(&e.network) {
                    n.pool.release(e.ip);
                }
            }
            // Links hold the container, not its name: a later container of that name is another.
            for other in self.containers.values_mut() {
                other.links.retain(|l| &l.container != name);
            }
            removed.push(c);
        }
        Ok(removed)
    }

    /// `network connect`: the next `ethN` of the container.
    pub fn connect(
        &mut self,
        network: &str,
        container: &str,
        ip: Option<&str>,
        mint: &mut dyn Mint,
    ) -> Result<Endpoint, ApiError> {
        self.network(network)?;
        let c = self.container(container)?;
        if c.mode != NetworkMode::Bridge && c.mode != NetworkMode::None {
            return Err(bad(format!(
                "container '{container}' uses --network {}; it cannot be connected to networks",
                c.mode.docker_name()
            )));
        }
        let existing = c.endpoints.clone();
        if existing.iter().any(|e| e.network == network) {
            return Err(bad(format!(
                "container '{container}' is already connected to network '{network}'"
            )));
        }
        let endpoint = self.new_endpoint(container, &existing, network, ip, None, mint)?;
        self.containers
            .get_mut(container)
            .expect("checked above")
            .endpoints
            .push(endpoint.clone());
        Ok(endpoint)
    }

    /// `network disconnect`: the address goes back to the network's pool.
    pub fn disconnect(&mut self, network: &str, container: &str) -> Result<Endpoint, ApiError> {
        self.network(network)?;
        let c = self.container(container)?;
        let Some(i) = c.endpoints.iter().position(|e| e.network == network) else {
            return Err(bad(format!(
                "container '{container}' is not connected to network '{network}'"
            )));
        };
        let endpoint = self
            .containers
            .get_mut(container)
            .expect("checked above")
            .endpoints
            .remove(i);
        self.networks
            .get_mut(network)
            .expect("checked above")
            .pool
            .release(endpoint.ip);
        Ok(endpoint)
    }

    /// The endpoint that gives `container` its default route: the first on a non-internal network.
    pub fn default_route_endpoint<'a>(
        &self,
        container: &'a Container,
    ) -> Option<(&'a Endpoint, Ipv4Addr)> {
        container.endpoints.iter().find_map(|e| {
            let n = self.networks.get(&e.network)?;
            (!n.internal).then_some((e, n.gateway()))
        })
    }
}

/// Docker names its host-side veths `veth` + 7 hex digits.
fn veth_name(endpoint_id: &str) -> String {
    format!("veth{}", &endpoint_id[..7])
}

#[cfg(test)]
pub(crate) mod tests;
