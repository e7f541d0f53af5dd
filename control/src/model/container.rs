//! Containers and their endpoints: network modes, published ports, and the rules for creating,
//! attaching, connecting, disconnecting and removing them.

use std::net::Ipv4Addr;

use dataplane::MacAddr;
use serde::{Deserialize, Serialize};

use super::dns::{self, DnsSettings};
use super::links::{self, Exposed, Link};
use super::{
    bad, given_id, ipam_err, mac, parse_ip, publish, validate_ifname, validate_name, Mint, State,
};
use crate::api::{ApiError, ContainerCreate, EndpointAttach};

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
    /// `-e KEY=VALUE`, `--env-file`: the container's own variables, as given (Docker's
    /// `Config.Env`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `-p` / `-P`: ports published on the uplink address.
    #[serde(default)]
    pub published: Vec<Published>,
    /// Docker's network mode: a namespace of its own on bridge networks (the default), only
    /// `lo` (`none`), the daemon's namespace (`host`), or another container's (`container:X`).
    #[serde(default)]
    pub mode: NetworkMode,
    /// `--hostname` (default: the short ID, as Docker's; `container:X` has X's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `--dns`, `--dns-search`, `--dns-option`, `--add-host`.
    #[serde(default, skip_serializing_if = "DnsSettings::is_empty")]
    pub dns: DnsSettings,
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
    /// Endpoints whose container end is handed to someone else (dockerd, a CNI runtime): left in
    /// the daemon's namespace under the endpoint's `interface` name, for the caller to move into
    /// a namespace switchyard never sees by name, configure and delete.
    Handoff,
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
            NetworkMode::Handoff => "handoff".into(),
        }
    }
}

/// A published port with the id its tracked connections carry (so they go with it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub id: u32,
    #[serde(flatten)]
    pub mapping: publish::PortMapping,
    /// The network whose endpoint receives it; `None`: the container's first non-internal one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// What publishing needs to know about the daemon: whether it has an uplink (and its address),
/// the addresses of its host (a port may be published on one of them only), and the ephemeral
/// range host ports are chosen from.
#[derive(Clone, Debug)]
pub struct PublishContext {
    pub uplink: Option<Ipv4Addr>,
    pub host_addresses: Vec<Ipv4Addr>,
    pub ephemeral: (u16, u16),
}

impl Default for PublishContext {
    fn default() -> Self {
        PublishContext {
            uplink: None,
            host_addresses: Vec::new(),
            ephemeral: (49153, 65535),
        }
    }
}

impl PublishContext {
    /// Where a port published on `host_ip` is reachable: through the data plane on the uplink
    /// address (every address, or the uplink's own), and through the host's relay on a host
    /// address (every address, loopback, or one of the host's). The uplink address is not the
    /// host's: the kernel never sees it.
    pub fn reach(&self, host_ip: Ipv4Addr) -> Reach {
        Reach {
            uplink: host_ip.is_unspecified() || Some(host_ip) == self.uplink,
            host: Some(host_ip) != self.uplink,
        }
    }

    fn check_host_ip(&self, ip: Ipv4Addr) -> Result<(), ApiError> {
        if ip.is_unspecified()
            || ip.is_loopback()
            || Some(ip) == self.uplink
            || self.host_addresses.contains(&ip)
        {
            return Ok(());
        }
        let uplink = self
            .uplink
            .map(|u| format!(", the uplink address {u}"))
            .unwrap_or_default();
        Err(bad(format!(
            "host address {ip} is not an address of this host: publish on 0.0.0.0, 127.0.0.1{uplink} or one of the host's addresses"
        )))
    }
}

/// See `PublishContext::reach`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reach {
    pub uplink: bool,
    pub host: bool,
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
    /// More names of the container on this network (Docker's network-scoped aliases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The tag of the client that made it (`EndpointAttach`), for listing its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// It gave an attached namespace its default route.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default_route: bool,
}

impl State {
    /// A new endpoint of `container` on `network` (not yet added to the container).
    pub(super) fn new_endpoint(
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
        if let (Some(ip), false) = (requested_ip, net.user_subnet) {
            // Docker's rule and words: an address the daemon chose the subnet of may move.
            return Err(bad(format!(
                "--ip {ip}: user specified IP address is supported only when connecting to networks with user configured subnets ('{network}' was created without --subnet)"
            )));
        }
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
            aliases: Vec::new(),
            owner: None,
            default_route: false,
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
        if let Some(handoff) = &req.handoff {
            if mode != NetworkMode::Bridge {
                return Err(bad(format!(
                    "a handed-off endpoint needs a network; --network {} has none of its own",
                    mode.docker_name()
                )));
            }
            self.check_handoff_name(handoff)?;
        } else if mode != NetworkMode::Bridge {
            return self.create_special(req, mode, mint);
        }
        let given = req
            .id
            .as_deref()
            .map(|id| {
                given_id(
                    "container",
                    id,
                    self.containers.values().map(|c| c.id.as_str()),
                )
            })
            .transpose()?;
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
        let exposed_ports: Vec<(u16, links::Protocol)> =
            exposed.iter().map(|x| (x.port, x.protocol)).collect();
        let mappings =
            self.allocate_published(&req.name, net, &specs, req.publish_all, &exposed_ports, ctx)?;
        let (env, hostname) = environment(req)?;
        let aliases = parse_aliases(req)?;
        let gateway = self.network(&req.network)?.gateway();
        let dns = dns::parse_dns_settings(
            &req.dns,
            &req.dns_search,
            &req.dns_options,
            &req.add_hosts,
            Some(gateway),
        )?;
        let mut endpoint = self.new_endpoint(
            &req.name,
            &[],
            &req.network,
            req.ip.as_deref(),
            req.mac.as_deref(),
            mint,
        )?;
        let mode = match &req.handoff {
            Some(name) => {
                endpoint.interface = name.clone();
                NetworkMode::Handoff
            }
            None => NetworkMode::Bridge,
        };
        endpoint.aliases = aliases;
        let container = Container {
            id: given.unwrap_or_else(|| mint.id()),
            name: req.name.clone(),
            created: mint.created(),
            endpoints: vec![endpoint],
            exposed,
            links,
            allow_spoofing: req.allow_spoofing,
            env,
            published: Vec::new(),
            mode,
            hostname,
            dns,
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
            container.published.push(self.next_published(mapping, None));
        }
        Ok(self.containers.entry(req.name.clone()).or_insert(container))
    }

    /// Host ports for `-p`/`-P` of `name` on `net`, checked against the uplink and everything
    /// already published.
    fn allocate_published(
        &self,
        name: &str,
        net: &super::Network,
        specs: &[publish::PublishSpec],
        publish_all: bool,
        exposed: &[(u16, links::Protocol)],
        ctx: &PublishContext,
    ) -> Result<Vec<publish::PortMapping>, ApiError> {
        if specs.is_empty() && !publish_all {
            return Ok(Vec::new());
        }
        if net.internal {
            return Err(bad(format!(
                "network '{}' is internal: containers on it cannot publish ports",
                net.name
            )));
        }
        for ip in specs.iter().filter_map(|s| s.host_ip) {
            ctx.check_host_ip(ip)?;
        }
        let taken: Vec<(String, publish::PortMapping)> = self
            .containers
            .values()
            .flat_map(|c| c.published.iter().map(|p| (c.name.clone(), p.mapping)))
            .collect();
        publish::allocate(
            name,
            specs,
            publish_all,
            exposed,
            &publish::Taken { mappings: &taken },
            ctx.ephemeral,
        )
    }

    /// A published port with the next mapping id.
    fn next_published(
        &mut self,
        mapping: publish::PortMapping,
        network: Option<String>,
    ) -> Published {
        let id = self.next_mapping;
        self.next_mapping = self.next_mapping.wrapping_add(1).max(1);
        Published {
            id,
            mapping,
            network,
        }
    }

    /// The name a handed-off veth end has in the daemon's namespace: a valid interface name no
    /// host port, veth or other handed-off end uses.
    fn check_handoff_name(&self, name: &str) -> Result<(), ApiError> {
        validate_ifname(name)?;
        let holder = self.host_interface_in_use(name).or_else(|| {
            self.containers
                .values()
                .find(|c| {
                    c.mode == NetworkMode::Handoff
                        && c.endpoints.iter().any(|e| e.interface == name)
                })
                .map(|c| format!("container '{}'", c.name))
        });
        match holder {
            Some(h) => Err(bad(format!(
                "interface name '{name}' is already used by {h}"
            ))),
            None => Ok(()),
        }
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
        let (env, hostname) = environment(req)?;
        if hostname.is_some() && matches!(mode, NetworkMode::Container(_)) {
            // Docker's own words: the joiner has the other container's host name.
            return Err(bad(format!(
                "conflicting options: --hostname and --network {what} (the container has the host name of the one it joins)"
            )));
        }
        if !req.links.is_empty() || !req.aliases.is_empty() {
            return Err(bad(format!(
                "--link and --alias need a network; --network {what} has none of its own"
            )));
        }
        let dns = dns::parse_dns_settings(
            &req.dns,
            &req.dns_search,
            &req.dns_options,
            &req.add_hosts,
            None,
        )?;
        if !dns.is_empty() && mode != NetworkMode::None {
            return Err(bad(format!(
                "--dns, --dns-search, --dns-option and --add-host are not possible with --network {what}: it uses {} files",
                if mode == NetworkMode::Host { "the host's" } else { "that container's" }
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
            env,
            published: Vec::new(),
            mode,
            hostname,
            dns,
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
        let req = EndpointAttach {
            container: name.to_string(),
            network: network.to_string(),
            netns: path.to_string(),
            ifname: ifname.to_string(),
            ip: ip.map(str::to_string),
            mac: mac.map(str::to_string),
            ..Default::default()
        };
        self.attach_endpoint(&req, inode, &PublishContext::default(), mint)
    }

    /// An endpoint of attachment `req.container` on `req.network`, inside the namespace at
    /// `req.netns` (identity `inode`) as `req.ifname`, with its published ports and aliases. The
    /// attachment is created with its first endpoint; a second network adds an interface.
    pub fn attach_endpoint(
        &mut self,
        req: &EndpointAttach,
        inode: u64,
        ctx: &PublishContext,
        mint: &mut dyn Mint,
    ) -> Result<(Container, Endpoint), ApiError> {
        let (name, path, network, ifname) = (
            req.container.as_str(),
            req.netns.as_str(),
            req.network.as_str(),
            req.ifname.as_str(),
        );
        validate_name("container", name)?;
        validate_ifname(ifname)?;
        for alias in &req.aliases {
            validate_name("alias", alias)?;
        }
        let net = self.network(network)?;
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
        let specs = req
            .publish
            .iter()
            .map(|p| publish::parse_publish(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mappings = self.allocate_published(name, net, &specs, false, &[], ctx)?;
        let endpoints = existing
            .as_ref()
            .map(|c| c.endpoints.clone())
            .unwrap_or_default();
        let mut endpoint = self.new_endpoint(
            name,
            &endpoints,
            network,
            req.ip.as_deref(),
            req.mac.as_deref(),
            mint,
        )?;
        endpoint.interface = ifname.to_string();
        endpoint.aliases = req.aliases.clone();
        endpoint.owner = req.owner.clone();
        endpoint.default_route = req.default_route && endpoints.is_empty();
        let published: Vec<Published> = mappings
            .into_iter()
            .map(|m| self.next_published(m, Some(network.to_string())))
            .collect();
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
                env: Vec::new(),
                published: Vec::new(),
                mode: NetworkMode::External {
                    path: path.to_string(),
                    inode,
                },
                hostname: None,
                dns: DnsSettings::default(),
            });
        c.endpoints.push(endpoint.clone());
        c.published.extend(published);
        Ok((c.clone(), endpoint))
    }

    /// Removes attachment `container`'s interface `ifname`, its address and the ports published
    /// to it; the attachment goes with its last interface. `None`: there was nothing to remove.
    pub fn detach_endpoint(
        &mut self,
        container: &str,
        ifname: &str,
    ) -> Result<Option<Endpoint>, ApiError> {
        let Some(c) = self.containers.get(container) else {
            return Ok(None);
        };
        if !matches!(c.mode, NetworkMode::External { .. }) {
            return Err(bad(format!(
                "container '{container}' was not attached to an existing namespace; use network disconnect"
            )));
        }
        let Some(network) = c
            .endpoints
            .iter()
            .find(|e| e.interface == ifname)
            .map(|e| e.network.clone())
        else {
            return Ok(None);
        };
        let endpoint = self.disconnect(&network, container)?;
        let c = self.containers.get_mut(container).expect("checked above");
        c.published
            .retain(|p| p.network.as_deref() != Some(network.as_str()));
        if c.endpoints.is_empty() {
            self.remove_containers(&[container.to_string()])?;
        }
        Ok(Some(endpoint))
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
    /// (`container:NAME`) is refused unless `force`; then, as in Docker, the joiners stay in the
    /// namespace with only `lo`: the first of them (by name) takes it over (mode `none`, the
    /// namespace renamed after it) and the others join that one. Returns the removed containers
    /// and each namespace handed over, as (old name, new name).
    #[allow(clippy::type_complexity)]
    pub fn remove_containers_forced(
        &mut self,
        names: &[String],
        force: bool,
    ) -> Result<(Vec<Container>, Vec<(String, String)>), ApiError> {
        let mut handovers = Vec::new();
        for name in names {
            self.container(name)?;
            let mut joiners: Vec<String> = self
                .joiners(name)
                .into_iter()
                .filter(|j| !names.contains(j))
                .collect();
            if joiners.is_empty() {
                continue;
            }
            if !force {
                return Err(bad(format!(
                    "container '{name}' has containers in its namespace ({}); remove them first, or use --force (they keep only lo, as in Docker)",
                    joiners.join(", ")
                )));
            }
            joiners.sort();
            // The joiners keep the host name they had (the namespace's owner's).
            let hostname = self.hostname_of(self.container(name)?);
            handovers.push((name.clone(), joiners, hostname));
        }
        // Joiners being removed go first: their namespace is the one being removed.
        let mut all = names.to_vec();
        all.sort_by_key(|n| {
            !matches!(
                self.containers.get(n).map(|c| &c.mode),
                Some(NetworkMode::Container(_))
            )
        });
        let removed = self.remove_containers(&all)?;
        let mut renamed = Vec::new();
        for (old, joiners, hostname) in handovers {
            let heir = joiners[0].clone();
            for j in &joiners {
                if let Some(c) = self.containers.get_mut(j) {
                    c.mode = if *j == heir {
                        c.hostname = hostname.clone();
                        NetworkMode::None
                    } else {
                        NetworkMode::Container(heir.clone())
                    };
                }
            }
            renamed.push((old, heir));
        }
        Ok((removed, renamed))
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
        self.connect_with_aliases(network, container, ip, &[], mint)
    }

    /// `network connect --alias NAME...`: the aliases name the container on `network` only.
    pub fn connect_with_aliases(
        &mut self,
        network: &str,
        container: &str,
        ip: Option<&str>,
        aliases: &[String],
        mint: &mut dyn Mint,
    ) -> Result<Endpoint, ApiError> {
        for a in aliases {
            dns::validate_dns_name("alias", a)?;
        }
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
        let mut endpoint = self.new_endpoint(container, &existing, network, ip, None, mint)?;
        endpoint.aliases = aliases.to_vec();
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

    /// The endpoint that gives `container` its default route, by Docker's rule (libnetwork's
    /// endpoint order): one on a non-internal network, the network whose name sorts first. So a
    /// `network connect` may move the default route, as it does in Docker.
    pub fn default_route_endpoint<'a>(
        &self,
        container: &'a Container,
    ) -> Option<(&'a Endpoint, Ipv4Addr)> {
        // Docker's order for the gateway endpoint: not internal, then by network name.
        container
            .endpoints
            .iter()
            .filter_map(|e| {
                let n = self.networks.get(&e.network)?;
                // dockerd's --default-gateway: an aux address, not the bridge's own.
                let aux = n.pool.config().aux.get(super::AUX_DEFAULT_GATEWAY).copied();
                (!n.internal).then_some((e, aux.unwrap_or(n.gateway())))
            })
            .min_by(|(a, _), (b, _)| a.network.cmp(&b.network))
    }
}

/// `-e` and `--hostname`, checked: `KEY=VALUE` with a key Docker accepts (not empty, no
/// whitespace; the value may hold anything but NUL), and a host name of DNS labels.
fn environment(req: &ContainerCreate) -> Result<(Vec<String>, Option<String>), ApiError> {
    for var in &req.env {
        let Some((key, value)) = var.split_once('=') else {
            return Err(bad(format!(
                "invalid environment variable '{var}': expected KEY=VALUE"
            )));
        };
        if key.is_empty() {
            return Err(bad(format!(
                "invalid environment variable '{var}': the name is empty"
            )));
        }
        if key.chars().any(|c| c.is_whitespace() || c == '\0') || value.contains('\0') {
            return Err(bad(format!(
                "invalid environment variable '{key}': the name contains whitespace or NUL (or the value NUL)"
            )));
        }
    }
    if let Some(h) = &req.hostname {
        validate_hostname(h)?;
    }
    Ok((req.env.clone(), req.hostname.clone()))
}

/// A host name as `sethostname(2)` and resolvers take it: 1-63 characters per label of letters,
/// digits and `-` (not at either end), labels joined by dots, at most 64 characters in all
/// (the kernel's HOST_NAME_MAX).
fn validate_hostname(h: &str) -> Result<(), ApiError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if h.len() > 64 || !h.split('.').all(label_ok) {
        return Err(bad(format!(
            "invalid hostname '{h}': use letters, digits, '-' and '.', at most 64 characters"
        )));
    }
    Ok(())
}

/// `--alias`, validated as DNS names.
fn parse_aliases(req: &ContainerCreate) -> Result<Vec<String>, ApiError> {
    for a in &req.aliases {
        dns::validate_dns_name("alias", a)?;
    }
    Ok(req.aliases.clone())
}

/// Docker names its host-side veths `veth` + 7 hex digits.
fn veth_name(endpoint_id: &str) -> String {
    format!("veth{}", &endpoint_id[..7])
}
