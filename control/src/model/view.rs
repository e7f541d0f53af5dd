//! What `ls` and `inspect` show: the state translated into the API's Docker-shaped types.

use std::collections::BTreeMap;

use super::publish::PortMapping;
use super::{
    Container, Endpoint, Network, NetworkMode, State, OPT_BRIDGE_NAME, OPT_GATEWAY_MODE,
    OPT_HOST_BINDING, OPT_ICC, OPT_MASQUERADE, OPT_MTU,
};
use crate::api::{
    ContainerConfigInspect, ContainerEndpointInspect, ContainerInspect, ContainerSummary,
    EndpointSummary, EndpointView, HostConfigInspect, IpamInspect, IpamPoolInspect,
    NetworkEndpointInspect, NetworkInspect, NetworkSettingsInspect, NetworkSummary,
    PortBindingInspect,
};

pub const DRIVER: &str = "switchyard";

impl State {
    /// An attached interface as the API shows it.
    pub fn endpoint_view(&self, c: &Container, e: &Endpoint) -> EndpointView {
        let net = self.networks.get(&e.network);
        EndpointView {
            container: c.name.clone(),
            network: e.network.clone(),
            netns: match &c.mode {
                NetworkMode::External { path, .. } => path.clone(),
                _ => format!("/run/netns/{}", c.netns()),
            },
            interface: e.interface.clone(),
            host_interface: e.host_interface.clone(),
            mac: e.mac.to_string(),
            ip: e.ip,
            prefix: net.map_or(32, |n| n.subnet().prefix()),
            gateway: net.map_or(std::net::Ipv4Addr::UNSPECIFIED, |n| n.gateway()),
            mtu: net.map_or(super::DEFAULT_MTU, |n| n.mtu),
            default_route: e.default_route,
            aliases: e.aliases.clone(),
            owner: e.owner.clone(),
            published: c
                .published
                .iter()
                .filter(|p| p.network.as_deref().is_none_or(|n| n == e.network))
                .map(|p| p.mapping.to_string())
                .collect(),
        }
    }

    /// Every attached interface (`EndpointAttach`), optionally only `owner`'s.
    pub fn endpoint_views(&self, owner: Option<&str>) -> Vec<EndpointView> {
        self.containers
            .values()
            .filter(|c| matches!(c.mode, NetworkMode::External { .. }))
            .flat_map(|c| c.endpoints.iter().map(move |e| (c, e)))
            .filter(|(_, e)| owner.is_none() || e.owner.as_deref() == owner)
            .map(|(c, e)| self.endpoint_view(c, e))
            .collect()
    }

    pub fn network_summaries(&self) -> Vec<NetworkSummary> {
        self.networks
            .values()
            .map(|n| NetworkSummary {
                id: n.id.clone(),
                name: self.shown_name(&n.id, &n.name).to_string(),
                driver: n.driver().to_string(),
                scope: "local".to_string(),
                subnet: n.subnet().to_string(),
                gateway: n.gateway().to_string(),
                host_interface: n.host_interface.clone(),
                containers: self.attached(&n.name).count(),
                mode: match (n.internal, n.routed) {
                    (true, _) => "internal",
                    (false, true) => "routed",
                    (false, false) => "nat",
                }
                .to_string(),
            })
            .collect()
    }

    pub fn network_inspect(&self, n: &Network) -> NetworkInspect {
        let cfg = n.pool.config();
        let containers = self
            .attached(&n.name)
            .map(|(c, e)| {
                (
                    c.id.clone(),
                    NetworkEndpointInspect {
                        name: c.name.clone(),
                        endpoint_id: e.id.clone(),
                        mac_address: e.mac.to_string(),
                        ipv4_address: format!("{}/{}", e.ip, cfg.subnet.prefix()),
                        ipv6_address: String::new(),
                    },
                )
            })
            .collect();
        // Docker shows the options a network was created with; switchyard shows the effective
        // value of each, so a reader never has to know the defaults.
        let mut options: BTreeMap<String, String> = n.options.clone();
        options.insert(OPT_ICC.into(), n.icc.to_string());
        options.insert(OPT_MASQUERADE.into(), n.masquerade.to_string());
        options
            .entry(OPT_HOST_BINDING.into())
            .or_insert_with(|| "0.0.0.0".into());
        options.insert(OPT_BRIDGE_NAME.into(), n.host_interface.clone());
        options.insert(OPT_MTU.into(), n.mtu.to_string());
        options.insert(
            OPT_GATEWAY_MODE.into(),
            if n.routed { "routed" } else { "nat" }.into(),
        );
        if let Some(parent) = &n.parent {
            options.insert("parent".into(), parent.clone());
        }
        if let Some(vlan) = n.vlan {
            options.insert("vlan".into(), vlan.to_string());
        }
        if let Some(o) = &n.overlay {
            use super::overlay::{OPT_PEERS, OPT_VNI, OPT_VXLAN_PORT};
            options.insert(OPT_VNI.into(), o.vni.to_string());
            options.insert(OPT_VXLAN_PORT.into(), o.udp_port.to_string());
            let peers: Vec<String> = o.peers.iter().map(|p| p.to_string()).collect();
            options.insert(OPT_PEERS.into(), peers.join(","));
        }
        if n.name == super::DEFAULT_NETWORK {
            options.insert(OPT_DEFAULT_BRIDGE.into(), "true".into());
        }
        NetworkInspect {
            name: n.name.clone(),
            id: n.id.clone(),
            created: n.created.clone(),
            scope: "local".into(),
            driver: n.driver().into(),
            enable_ipv6: false,
            ipam: IpamInspect {
                driver: "default".into(),
                options: BTreeMap::new(),
                config: vec![IpamPoolInspect {
                    subnet: cfg.subnet.to_string(),
                    gateway: cfg.gateway.to_string(),
                    ip_range: cfg.ip_range.map(|r| r.to_string()),
                    auxiliary_addresses: cfg
                        .aux
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect(),
                }],
            },
            internal: n.internal,
            attachable: true,
            ingress: false,
            containers,
            config_from: Default::default(),
            config_only: false,
            options,
            labels: BTreeMap::new(),
        }
    }

    pub fn container_summaries(&self) -> Vec<ContainerSummary> {
        self.containers
            .values()
            .map(|c| ContainerSummary {
                id: c.id.clone(),
                name: self.shown_name(&c.id, &c.name).to_string(),
                ports: ps_ports(c),
                endpoints: c
                    .endpoints
                    .iter()
                    .map(|e| EndpointSummary {
                        network: match self.networks.get(&e.network) {
                            Some(n) => self.shown_name(&n.id, &n.name).to_string(),
                            None => e.network.clone(),
                        },
                        interface: e.interface.clone(),
                        address: match self.networks.get(&e.network) {
                            Some(n) => format!("{}/{}", e.ip, n.subnet().prefix()),
                            None => e.ip.to_string(),
                        },
                        mac: e.mac.to_string(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Docker's container inspect; `daemon_pid` names the daemon's own namespace (`host` mode).
    pub fn container_inspect(&self, c: &Container, daemon_pid: u32) -> ContainerInspect {
        let networks = c
            .endpoints
            .iter()
            .filter_map(|e| {
                let n = self.networks.get(&e.network)?;
                Some((
                    e.network.clone(),
                    ContainerEndpointInspect {
                        network_id: n.id.clone(),
                        endpoint_id: e.id.clone(),
                        gateway: n.gateway().to_string(),
                        ip_address: e.ip.to_string(),
                        ip_prefix_len: n.subnet().prefix(),
                        mac_address: e.mac.to_string(),
                        interface_name: e.interface.clone(),
                        host_interface: e.host_interface.clone(),
                        aliases: e.aliases.clone(),
                        dns_names: self.dns_names(c, &e.network),
                    },
                ))
            })
            .collect();
        ContainerInspect {
            id: c.id.clone(),
            name: format!("/{}", c.name),
            created: c.created.clone(),
            config: ContainerConfigInspect {
                exposed_ports: c
                    .exposed
                    .iter()
                    .map(|x| (x.to_string(), serde_json::Map::new()))
                    .collect(),
                hostname: self.hostname_of(c).unwrap_or_default(),
                env: std::iter::once(format!("PATH={}", super::links::DEFAULT_PATH))
                    .chain(c.env.iter().cloned())
                    .collect(),
            },
            host_config: HostConfigInspect {
                network_mode: match (&c.mode, c.endpoints.first()) {
                    // The network it was created on, as Docker names it.
                    (NetworkMode::Bridge, Some(e)) => e.network.clone(),
                    _ => c.mode.docker_name(),
                },
                port_bindings: port_bindings(c, |m| {
                    if m.host_ip.is_unspecified() {
                        String::new()
                    } else {
                        m.host_ip.to_string()
                    }
                })
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
                links: c
                    .links
                    .iter()
                    .map(|l| format!("/{}:/{}/{}", l.container, c.name, l.alias))
                    .collect(),
                allow_spoofing: c.allow_spoofing,
                dns: c.dns.servers.iter().map(|s| s.to_string()).collect(),
                dns_search: c.dns.search.clone(),
                dns_options: c.dns.options.clone(),
                extra_hosts: c
                    .dns
                    .extra_hosts
                    .iter()
                    .map(|h| format!("{}:{}", h.name, h.ip))
                    .collect(),
            },
            network_settings: NetworkSettingsInspect {
                ports: port_bindings(c, |m| m.host_ip.to_string()),
                sandbox_key: match c.mode {
                    // The daemon's own namespace.
                    super::NetworkMode::Host => format!("/proc/{daemon_pid}/ns/net"),
                    // Whoever took the veth knows where it went.
                    super::NetworkMode::Handoff => String::new(),
                    _ => format!("/run/netns/{}", c.netns()),
                },
                networks,
            },
        }
    }
}

/// Docker's `network inspect` option that marks the default bridge.
const OPT_DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";

/// Each exposed port (`80/tcp`) with its published host sides, `None` when it has none; the
/// host address as `host_ip` writes it.
fn port_bindings(
    c: &Container,
    host_ip: impl Fn(&PortMapping) -> String,
) -> BTreeMap<String, Option<Vec<PortBindingInspect>>> {
    let mut ports: BTreeMap<String, Option<Vec<PortBindingInspect>>> =
        c.exposed.iter().map(|x| (x.to_string(), None)).collect();
    for p in &c.published {
        let m = &p.mapping;
        let key = format!("{}/{}", m.container_port, m.protocol);
        ports
            .entry(key)
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(PortBindingInspect {
                host_ip: host_ip(m),
                host_port: m.host_port.to_string(),
            });
    }
    ports
}

/// `docker ps`'s PORTS entries, in Docker's form.
fn ps_ports(c: &Container) -> Vec<String> {
    port_bindings(c, |m| m.host_ip.to_string())
        .into_iter()
        .flat_map(|(port, bound)| match bound {
            None => vec![port],
            Some(list) => list
                .into_iter()
                .map(|b| format!("{}:{}->{port}", b.host_ip, b.host_port))
                .collect(),
        })
        .collect()
}
