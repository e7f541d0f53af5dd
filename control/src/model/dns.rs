//! Names: what each container is called on each network and what its resolver settings are, as
//! Docker's embedded DNS has them, and the name table the resolver (`crate::dns`) answers from.
//!
//! A container's DNS names on a network are its name, its aliases on that network (`--alias` at
//! `container create` and `network connect`), its 12-character short ID and its `--hostname`;
//! `NAME.NETWORK` names it on that network only. An asker sees only the networks it is attached
//! to, and its own `--link` aliases (nobody else's). Docker's default `bridge` network has no
//! names: its resolver only forwards and answers PTR for its own subnet, which is what makes
//! a container there start as fast as one on a user network (no upstream to wait for).
//!
//! Containers on other hosts of an overlay network (`RemoteName`, from the endpoints their hosts
//! publish in the cluster) are named on that network like local ones: NAME, aliases, short ID and
//! hostname as their host published them, `NAME.NETWORK`, and PTR.
//!
//! `NameTable::build` is a pure function of the state and the remote names, rebuilt by the
//! daemon after every change and swapped in whole, so the resolver never answers from a stale
//! table. The table also holds
//! who may forward where: an asker's own `--dns` servers, else the daemon's upstreams; an asker
//! whose networks are all internal never forwards.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::ipam::Ipv4Net;
use super::{bad, Container, State, DEFAULT_NETWORK};
use crate::api::ApiError;

/// Docker's short ID: the first 12 hex digits of the container ID.
pub const SHORT_ID_LEN: usize = 12;
/// Answers are valid this long: short, so a client's cache never outlives a change by much.
pub const TTL_SECONDS: u32 = 5;

/// A container's resolver settings (`--dns`, `--dns-search`, `--dns-option`) and `--add-host`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSettings {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<ExtraHost>,
}

impl DnsSettings {
    pub fn is_empty(&self) -> bool {
        *self == DnsSettings::default()
    }
}

/// `--add-host NAME:IP`: one more line of the container's /etc/hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    pub name: String,
    pub ip: IpAddr,
}

/// A DNS name as a user may give it (alias, hostname, search domain): dot-separated labels of
/// letters, digits, '-' and '_', each 1-63 characters, at most 253 in all.
pub fn validate_dns_name(what: &str, name: &str) -> Result<(), ApiError> {
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !name_ok {
        return Err(bad(format!(
            "invalid {what} '{name}': use dot-separated labels of letters, digits, '-' and '_' (1-63 characters each, not starting or ending with '-', 253 in all)"
        )));
    }
    Ok(())
}

/// The resolver settings of `container create`, validated.
pub fn parse_dns_settings(
    servers: &[String],
    search: &[String],
    options: &[String],
    add_hosts: &[String],
    host_gateway: Option<Ipv4Addr>,
) -> Result<DnsSettings, ApiError> {
    let servers = servers
        .iter()
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| bad(format!("invalid --dns '{s}': expected an IP address")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for s in search {
        validate_dns_name("--dns-search domain", s.trim_end_matches('.'))?;
    }
    for o in options {
        if o.is_empty() || o.len() > 64 || o.chars().any(|c| c.is_whitespace() || c == '#') {
            return Err(bad(format!(
                "invalid --dns-option '{o}': one resolv.conf option without spaces, like ndots:2"
            )));
        }
    }
    let extra_hosts = add_hosts
        .iter()
        .map(|h| parse_extra_host(h, host_gateway))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DnsSettings {
        servers,
        search: search
            .iter()
            .map(|s| s.trim_end_matches('.').to_string())
            .collect(),
        options: options.to_vec(),
        extra_hosts,
    })
}

/// `NAME:IP` or `NAME=IP` (Docker accepts both); `host-gateway` is the gateway of the container's
/// network, as Docker maps it to the host's address on docker0.
fn parse_extra_host(spec: &str, host_gateway: Option<Ipv4Addr>) -> Result<ExtraHost, ApiError> {
    let Some((name, ip)) = spec.split_once('=').or_else(|| spec.split_once(':')) else {
        return Err(bad(format!(
            "invalid --add-host '{spec}': expected NAME:IP"
        )));
    };
    validate_dns_name("--add-host name", name)?;
    let ip = match ip {
        "host-gateway" => IpAddr::V4(host_gateway.ok_or_else(|| {
            bad(format!(
                "--add-host '{spec}': host-gateway needs a network with a gateway"
            ))
        })?),
        ip => ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                bad(format!(
                    "invalid --add-host '{spec}': '{ip}' is not an IP address"
                ))
            })?,
    };
    Ok(ExtraHost {
        name: name.to_string(),
        ip,
    })
}

/// What a resolv.conf says (the daemon's own, read once per change).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses resolv.conf text as glibc does the parts that matter here (`domain` counts as a
    /// one-entry search list; the last `search`/`domain` line wins; comments with `#` or `;`).
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                        conf.nameservers.push(ip);
                    }
                }
                Some("search") | Some("domain") => conf.search = words.map(String::from).collect(),
                Some("options") => conf.options.extend(words.map(String::from)),
                _ => {}
            }
        }
        conf
    }
}

impl State {
    /// The container's resolv.conf. With an endpoint: the resolver on its first network's
    /// gateway, the user's or the host's search list, and `ndots:0` unless the user set ndots
    /// (as Docker writes it for its embedded DNS). Without one (`--network none`): the host's
    /// non-loopback servers (or the user's), as Docker copies the host's file.
    pub fn resolv_conf(&self, c: &Container, host: &ResolvConf) -> String {
        let mut out = String::from("# Written by switchyard; changes are overwritten.\n");
        let resolver = c
            .endpoints
            .first()
            .and_then(|e| self.networks.get(&e.network))
            .map(|n| n.gateway());
        match resolver {
            Some(gw) => out.push_str(&format!("nameserver {gw}\n")),
            None => {
                let servers = if c.dns.servers.is_empty() {
                    &host.nameservers
                } else {
                    &c.dns.servers
                };
                for s in servers.iter().filter(|s| !s.is_loopback()).take(3) {
                    out.push_str(&format!("nameserver {s}\n"));
                }
            }
        }
        let search = if c.dns.search.is_empty() {
            &host.search
        } else {
            &c.dns.search
        };
        if !search.is_empty() {
            out.push_str(&format!("search {}\n", search.join(" ")));
        }
        let mut options: Vec<&str> = Vec::new();
        if resolver.is_some() {
            if !c.dns.options.iter().any(|o| o.starts_with("ndots:")) {
                options.push("ndots:0");
            }
        } else {
            options.extend(host.options.iter().map(String::as_str));
        }
        options.extend(c.dns.options.iter().map(String::as_str));
        if !options.is_empty() {
            out.push_str(&format!("options {}\n", options.join(" ")));
        }
        out
    }

    /// Every DNS name of `c` on one of its networks (`--link` aliases are the linker's, not here).
    pub fn dns_names(&self, c: &Container, network: &str) -> Vec<String> {
        let Some(e) = c.endpoint(network) else {
            return Vec::new();
        };
        let mut names = vec![c.name.clone()];
        names.extend(e.aliases.iter().cloned());
        names.push(c.id.chars().take(SHORT_ID_LEN).collect());
        names.extend(c.hostname.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.to_ascii_lowercase()));
        names
    }
}

/// A container on another host of an overlay network, as its host published it in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteName {
    pub network: String,
    pub container: String,
    pub ip: Ipv4Addr,
    /// Its DNS names on that network (`State::dns_names` on its host).
    pub names: Vec<String>,
}

/// The kind of record asked for, as far as local answers care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryType {
    A,
    Aaaa,
    Ptr,
    Other,
}

/// What the resolver does with one question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution<'a> {
    /// A local name: its addresses in table order (the resolver rotates them).
    Addresses(&'a [Ipv4Addr]),
    /// A local name or address without records of the asked type: an empty NOERROR answer.
    NoData,
    /// The name of a local address (`NAME.NETWORK`, as Docker answers PTR).
    Pointer(String),
    /// A name under a local network (`x.NETWORK`) or an address in a switchyard subnet that is
    /// nobody's: NXDOMAIN, without asking anyone.
    NxDomain,
    /// Not ours: ask these upstreams in order (none configured: SERVFAIL at once).
    Forward(&'a [SocketAddr]),
    /// Not ours, and the asker may not reach out (only internal networks): NXDOMAIN, as aardvark.
    NoForward,
}

/// The names of one network, as its resolver answers them.
#[derive(Clone, Debug)]
pub struct NetworkNames {
    pub name: String,
    pub gateway: Ipv4Addr,
    pub subnet: Option<Ipv4Net>,
    pub internal: bool,
    /// Docker's default bridge has no embedded names (only PTR of its subnet and forwarding).
    pub has_names: bool,
    /// Lower-case name -> addresses, in container name order.
    names: HashMap<String, Vec<Ipv4Addr>>,
    /// Address -> `NAME.NETWORK`.
    pointers: HashMap<Ipv4Addr, String>,
}

/// A container asking from an address on a network.
#[derive(Clone, Debug, Default)]
struct Asker {
    container: String,
    /// Indices into `NameTable::networks`, in the container's endpoint order.
    networks: Vec<usize>,
    /// Lower-case `--link` alias -> the child's address.
    links: HashMap<String, Vec<Ipv4Addr>>,
    /// The container's own `--dns` servers, if it has any.
    upstreams: Option<Vec<SocketAddr>>,
    /// Whether any of its networks is not internal.
    may_forward: bool,
}

/// Everything the resolver answers from; built from the state, never changed after.
#[derive(Clone, Debug, Default)]
pub struct NameTable {
    /// In network name order.
    pub networks: Vec<NetworkNames>,
    /// By (the gateway asked, the asker's address).
    askers: HashMap<(Ipv4Addr, Ipv4Addr), Asker>,
    /// The daemon's upstreams (`--dns`, else its resolv.conf), without switchyard's own
    /// resolvers (a host pointed at a gateway must not make the resolver ask itself).
    pub upstreams: Vec<SocketAddr>,
}

fn dns_port(ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, 53)
}

impl NameTable {
    /// The table for `state`, with `remote` named on their networks after the local containers
    /// (a network this host lacks names none of its remote containers).
    pub fn build(state: &State, upstreams: &[IpAddr], remote: &[RemoteName]) -> NameTable {
        let mut table = NameTable::default();
        let mut index = HashMap::new();
        for n in state.networks.values() {
            index.insert(n.name.clone(), table.networks.len());
            table.networks.push(NetworkNames {
                name: n.name.clone(),
                gateway: n.gateway(),
                subnet: Some(n.subnet()),
                internal: n.internal,
                has_names: n.name != DEFAULT_NETWORK,
                names: HashMap::new(),
                pointers: HashMap::new(),
            });
        }
        let gateways: Vec<IpAddr> = table
            .networks
            .iter()
            .map(|n| IpAddr::V4(n.gateway))
            .collect();
        let external = |ip: &&IpAddr| !gateways.contains(ip);
        let own: Vec<SocketAddr> = upstreams
            .iter()
            .filter(external)
            .map(|ip| dns_port(*ip))
            .collect();
        for c in state.containers.values() {
            for e in &c.endpoints {
                let Some(&i) = index.get(&e.network) else {
                    continue;
                };
                let net = &mut table.networks[i];
                for name in state.dns_names(c, &e.network) {
                    net.names
                        .entry(name.to_ascii_lowercase())
                        .or_default()
                        .push(e.ip);
                }
                net.pointers
                    .insert(e.ip, format!("{}.{}", c.name, e.network));
            }
            let networks: Vec<usize> = c
                .endpoints
                .iter()
                .filter_map(|e| index.get(&e.network).copied())
                .collect();
            let mut links: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
            for link in &c.links {
                let Some(child) = state.containers.get(&link.container) else {
                    continue;
                };
                let address = c
                    .endpoints
                    .iter()
                    .find_map(|pe| child.endpoint(&pe.network).map(|ce| ce.ip));
                if let Some(ip) = address {
                    links.insert(link.alias.to_ascii_lowercase(), vec![ip]);
                }
            }
            let asker = Asker {
                container: c.name.clone(),
                may_forward: networks.iter().any(|&i| !table.networks[i].internal),
                networks,
                links,
                upstreams: (!c.dns.servers.is_empty()).then(|| {
                    c.dns
                        .servers
                        .iter()
                        .filter(external)
                        .map(|ip| dns_port(*ip))
                        .collect()
                }),
            };
            for e in &c.endpoints {
                if let Some(n) = state.networks.get(&e.network) {
                    table.askers.insert((n.gateway(), e.ip), asker.clone());
                }
            }
        }
        for r in remote {
            let Some(&i) = index.get(&r.network) else {
                continue;
            };
            let net = &mut table.networks[i];
            for name in &r.names {
                let addresses = net.names.entry(name.to_ascii_lowercase()).or_default();
                if !addresses.contains(&r.ip) {
                    addresses.push(r.ip);
                }
            }
            net.pointers
                .entry(r.ip)
                .or_insert_with(|| format!("{}.{}", r.container, r.network));
        }
        table.upstreams = own;
        table
    }

    /// The addresses the resolver listens on (each network's gateway).
    pub fn listen_addresses(&self) -> Vec<Ipv4Addr> {
        self.networks.iter().map(|n| n.gateway).collect()
    }

    /// The container asking from `src` on the network of `listen`, if it is one.
    pub fn asker_name(&self, listen: Ipv4Addr, src: IpAddr) -> Option<&str> {
        let IpAddr::V4(src) = src else { return None };
        self.askers
            .get(&(listen, src))
            .map(|a| a.container.as_str())
    }

    /// The network whose gateway is `listen`.
    pub fn network_at(&self, listen: Ipv4Addr) -> Option<&NetworkNames> {
        self.networks.iter().find(|n| n.gateway == listen)
    }

    /// Answers one question that came to `listen` from `src`. `qname` may have its trailing dot
    /// and any case. An asker that is not a container sees the network it asked on; one asking
    /// from the daemon's own namespace (a gateway or loopback address: the host, item 3 of
    /// switchyard's DNS) sees every network.
    pub fn resolve(
        &self,
        listen: Ipv4Addr,
        src: IpAddr,
        qname: &str,
        qtype: QueryType,
    ) -> Resolution<'_> {
        let name = qname.trim_end_matches('.').to_ascii_lowercase();
        let Some(arrival) = self.networks.iter().position(|n| n.gateway == listen) else {
            return Resolution::NoForward;
        };
        let asker = match src {
            IpAddr::V4(v4) => self.askers.get(&(listen, v4)),
            IpAddr::V6(_) => None,
        };
        let from_host =
            src.is_loopback() || self.networks.iter().any(|n| IpAddr::V4(n.gateway) == src);
        let visible: Vec<usize> = match asker {
            Some(a) => a.networks.clone(),
            None if from_host => (0..self.networks.len()).collect(),
            None => vec![arrival],
        };
        let (may_forward, upstreams) = match asker {
            Some(a) => (
                a.may_forward,
                a.upstreams.as_deref().unwrap_or(&self.upstreams),
            ),
            None => (
                from_host || !self.networks[arrival].internal,
                &self.upstreams[..],
            ),
        };
        let not_ours = if may_forward {
            Resolution::Forward(upstreams)
        } else {
            Resolution::NoForward
        };
        if qtype == QueryType::Ptr {
            return match ptr_address(&name) {
                Some(ip) => self.pointer(&visible, ip).unwrap_or(not_ours),
                None => not_ours,
            };
        }
        let found = asker
            .and_then(|a| a.links.get(&name))
            .map(Vec::as_slice)
            .or_else(|| self.lookup(&visible, &name));
        match (found, qtype) {
            (Some(addresses), QueryType::A) => Resolution::Addresses(addresses),
            (Some(_), _) => Resolution::NoData,
            (None, _) if self.under_network(&visible, &name) => Resolution::NxDomain,
            (None, _) => not_ours,
        }
    }

    /// `name` on the first visible network that has it, or `NAME.NETWORK`.
    fn lookup(&self, visible: &[usize], name: &str) -> Option<&[Ipv4Addr]> {
        let named = visible
            .iter()
            .map(|&i| &self.networks[i])
            .filter(|n| n.has_names);
        for n in named.clone() {
            if let Some(a) = n.names.get(name) {
                return Some(a);
            }
        }
        for n in named {
            let Some(short) = name
                .strip_suffix(&n.name.to_ascii_lowercase())
                .and_then(|s| s.strip_suffix('.'))
            else {
                continue;
            };
            if let Some(a) = n.names.get(short) {
                return Some(a);
            }
        }
        None
    }

    /// Whether `name` is `x.NETWORK` of a visible network with names (then it is ours to deny).
    fn under_network(&self, visible: &[usize], name: &str) -> bool {
        visible
            .iter()
            .map(|&i| &self.networks[i])
            .any(|n| n.has_names && name.ends_with(&format!(".{}", n.name.to_ascii_lowercase())))
    }

    fn pointer(&self, visible: &[usize], ip: Ipv4Addr) -> Option<Resolution<'_>> {
        for &i in visible {
            let n = &self.networks[i];
            if let Some(p) = n.pointers.get(&ip) {
                return Some(if n.has_names {
                    Resolution::Pointer(p.clone())
                } else {
                    Resolution::NxDomain
                });
            }
        }
        let in_subnet = visible
            .iter()
            .any(|&i| self.networks[i].subnet.is_some_and(|s| s.contains(ip)));
        in_subnet.then_some(Resolution::NxDomain)
    }
}

/// `d.c.b.a.in-addr.arpa` -> a.b.c.d.
fn ptr_address(name: &str) -> Option<Ipv4Addr> {
    let digits = name.strip_suffix(".in-addr.arpa")?;
    let mut octets = [0u8; 4];
    let mut parts = digits.split('.');
    for slot in octets.iter_mut().rev() {
        *slot = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ContainerCreate, NetworkCreate};
    use crate::model::tests::Counter;

    fn net(s: &mut State, name: &str, subnet: &str, internal: bool, e: &mut Counter) {
        s.create_network(
            &NetworkCreate {
                name: name.into(),
                subnet: Some(subnet.into()),
                internal,
                ..Default::default()
            },
            &[],
            e,
        )
        .unwrap();
    }

    fn ctr(s: &mut State, req: ContainerCreate, e: &mut Counter) -> Ipv4Addr {
        s.create_container(&req, e).unwrap().endpoints[0].ip
    }

    fn req(name: &str, network: &str) -> ContainerCreate {
        ContainerCreate {
            name: name.into(),
            network: network.into(),
            ..Default::default()
        }
    }

    const GW_FRONT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
    const GW_BACK: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);

    /// front: web (alias www), app (alias api, hostname apphost); back: db (alias api); app on
    /// both; secret on internal `vault`; old on the default bridge.
    fn sample() -> (State, Counter) {
        let mut e = Counter(0);
        let mut s = State::initial(&[], &mut e).unwrap();
        net(&mut s, "front", "10.1.0.0/24", false, &mut e);
        net(&mut s, "back", "10.2.0.0/24", false, &mut e);
        net(&mut s, "vault", "10.3.0.0/24", true, &mut e);
        ctr(
            &mut s,
            ContainerCreate {
                aliases: vec!["WWW".into()],
                ..req("web", "front")
            },
            &mut e,
        );
        ctr(
            &mut s,
            ContainerCreate {
                aliases: vec!["api".into()],
                hostname: Some("apphost".into()),
                ..req("app", "front")
            },
            &mut e,
        );
        ctr(
            &mut s,
            ContainerCreate {
                aliases: vec!["api".into()],
                ..req("db", "back")
            },
            &mut e,
        );
        s.connect_with_aliases("back", "app", None, &["backend".into()], &mut e)
            .unwrap();
        ctr(&mut s, req("secret", "vault"), &mut e);
        ctr(&mut s, req("old", "bridge"), &mut e);
        (s, e)
    }

    fn ip(s: &State, c: &str, n: &str) -> Ipv4Addr {
        s.containers[c].endpoint(n).unwrap().ip
    }

    fn upstream() -> Vec<IpAddr> {
        vec!["192.0.2.53".parse().unwrap()]
    }

    #[test]
    fn names_aliases_short_id_hostname_and_name_dot_network() {
        let (s, _) = sample();
        let t = NameTable::build(&s, &upstream(), &[]);
        let web = IpAddr::V4(ip(&s, "web", "front"));
        let app = ip(&s, "app", "front");
        let short: String = s.containers["app"].id[..12].to_string();
        for name in [
            "app",
            "APP.",
            "apphost",
            short.as_str(),
            "app.front",
            "App.Front.",
        ] {
            assert_eq!(
                t.resolve(GW_FRONT, web, name, QueryType::A),
                Resolution::Addresses(&[app]),
                "{name}"
            );
        }
        assert_eq!(
            t.resolve(GW_FRONT, web, "www", QueryType::A),
            Resolution::Addresses(&[web_ip(&s)])
        );
        assert_eq!(
            t.resolve(GW_FRONT, web, "app", QueryType::Aaaa),
            Resolution::NoData
        );
        assert_eq!(
            t.resolve(GW_FRONT, web, "nobody.front", QueryType::A),
            Resolution::NxDomain
        );
        assert_eq!(
            t.resolve(GW_FRONT, web, "example.com", QueryType::A),
            Resolution::Forward(&["192.0.2.53:53".parse().unwrap()])
        );
    }

    fn web_ip(s: &State) -> Ipv4Addr {
        ip(s, "web", "front")
    }

    #[test]
    fn only_shared_networks_are_visible() {
        let (s, _) = sample();
        let t = NameTable::build(&s, &upstream(), &[]);
        let web = IpAddr::V4(web_ip(&s));
        // db is on back only: web (front) cannot see it, not even as db.back.
        assert!(matches!(
            t.resolve(GW_FRONT, web, "db", QueryType::A),
            Resolution::Forward(_)
        ));
        assert!(matches!(
            t.resolve(GW_FRONT, web, "db.back", QueryType::A),
            Resolution::Forward(_)
        ));
        // app is on both: it sees db, asking on either gateway.
        let app_back = IpAddr::V4(ip(&s, "app", "back"));
        let app_front = IpAddr::V4(ip(&s, "app", "front"));
        let db = ip(&s, "db", "back");
        assert_eq!(
            t.resolve(GW_BACK, app_back, "db", QueryType::A),
            Resolution::Addresses(&[db])
        );
        assert_eq!(
            t.resolve(GW_FRONT, app_front, "db.back", QueryType::A),
            Resolution::Addresses(&[db])
        );
        // The alias api: app on front (app's first network), db on back.
        assert_eq!(
            t.resolve(GW_FRONT, web, "api", QueryType::A),
            Resolution::Addresses(&[ip(&s, "app", "front")])
        );
        let db_asks = IpAddr::V4(db);
        // Aliases are per network: app's api is on front only.
        assert_eq!(
            t.resolve(GW_BACK, db_asks, "api", QueryType::A),
            Resolution::Addresses(&[db])
        );
        // backend is app's alias on back only.
        assert!(matches!(
            t.resolve(GW_FRONT, web, "backend", QueryType::A),
            Resolution::Forward(_)
        ));
        assert_eq!(
            t.resolve(GW_BACK, db_asks, "backend", QueryType::A),
            Resolution::Addresses(&[ip(&s, "app", "back")])
        );
    }

    #[test]
    fn links_resolve_for_the_linker_only() {
        let (mut s, mut e) = sample();
        s.add_link("web", "app:cache").unwrap();
        let t = NameTable::build(&s, &upstream(), &[]);
        let app = ip(&s, "app", "front");
        assert_eq!(
            t.resolve(GW_FRONT, IpAddr::V4(web_ip(&s)), "CACHE", QueryType::A),
            Resolution::Addresses(&[app])
        );
        let other = ctr(&mut s, req("other", "front"), &mut e);
        let t = NameTable::build(&s, &upstream(), &[]);
        assert!(matches!(
            t.resolve(GW_FRONT, IpAddr::V4(other), "cache", QueryType::A),
            Resolution::Forward(_)
        ));
    }

    #[test]
    fn pointers_answer_name_dot_network() {
        let (s, _) = sample();
        let t = NameTable::build(&s, &upstream(), &[]);
        let web = IpAddr::V4(web_ip(&s));
        let app = ip(&s, "app", "front").octets();
        let q = format!("{}.{}.{}.{}.in-addr.arpa.", app[3], app[2], app[1], app[0]);
        assert_eq!(
            t.resolve(GW_FRONT, web, &q, QueryType::Ptr),
            Resolution::Pointer("app.front".into())
        );
        assert_eq!(
            t.resolve(GW_FRONT, web, "200.0.1.10.in-addr.arpa", QueryType::Ptr),
            Resolution::NxDomain
        );
        assert!(matches!(
            t.resolve(GW_FRONT, web, "8.8.8.8.in-addr.arpa", QueryType::Ptr),
            Resolution::Forward(_)
        ));
        // The default bridge has no names, but its own subnet is answered at once.
        let old = ip(&s, "old", "bridge");
        let o = old.octets();
        let q = format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
        let gw = s.networks["bridge"].gateway();
        assert_eq!(
            t.resolve(gw, IpAddr::V4(old), &q, QueryType::Ptr),
            Resolution::NxDomain
        );
        assert!(matches!(
            t.resolve(gw, IpAddr::V4(old), "old", QueryType::A),
            Resolution::Forward(_)
        ));
        assert_eq!(ptr_address("1.2.3.in-addr.arpa"), None);
        assert_eq!(ptr_address("1.2.3.4.5.in-addr.arpa"), None);
        assert_eq!(ptr_address("300.2.3.4.in-addr.arpa"), None);
    }

    #[test]
    fn remote_containers_are_named_on_their_network_only() {
        let (s, _) = sample();
        let far = Ipv4Addr::new(10, 1, 0, 77);
        let remote = [
            RemoteName {
                network: "front".into(),
                container: "far".into(),
                ip: far,
                names: vec!["far".into(), "Cache".into(), "www".into()],
            },
            // A network this host lacks names nobody.
            RemoteName {
                network: "elsewhere".into(),
                container: "ghost".into(),
                ip: Ipv4Addr::new(10, 9, 0, 2),
                names: vec!["ghost".into()],
            },
        ];
        let t = NameTable::build(&s, &upstream(), &remote);
        let web = IpAddr::V4(web_ip(&s));
        for name in ["far", "FAR.front.", "cache"] {
            assert_eq!(
                t.resolve(GW_FRONT, web, name, QueryType::A),
                Resolution::Addresses(&[far]),
                "{name}"
            );
        }
        // An alias both hosts use: the local container first, then the remote one.
        assert_eq!(
            t.resolve(GW_FRONT, web, "www", QueryType::A),
            Resolution::Addresses(&[web_ip(&s), far])
        );
        assert_eq!(
            t.resolve(GW_FRONT, web, "77.0.1.10.in-addr.arpa", QueryType::Ptr),
            Resolution::Pointer("far.front".into())
        );
        // Not visible from a network it is not on.
        let db = IpAddr::V4(ip(&s, "db", "back"));
        assert!(matches!(
            t.resolve(GW_BACK, db, "far", QueryType::A),
            Resolution::Forward(_)
        ));
        assert!(matches!(
            t.resolve(GW_FRONT, web, "ghost", QueryType::A),
            Resolution::Forward(_)
        ));
    }

    #[test]
    fn internal_networks_never_forward_and_the_host_sees_everything() {
        let (s, _) = sample();
        let t = NameTable::build(&s, &upstream(), &[]);
        let secret = IpAddr::V4(ip(&s, "secret", "vault"));
        let gw_vault = Ipv4Addr::new(10, 3, 0, 1);
        assert_eq!(
            t.resolve(gw_vault, secret, "example.com", QueryType::A),
            Resolution::NoForward
        );
        assert_eq!(
            t.resolve(gw_vault, secret, "secret", QueryType::A),
            Resolution::Addresses(&[ip(&s, "secret", "vault")])
        );
        let host = IpAddr::V4(GW_FRONT);
        assert_eq!(
            t.resolve(GW_FRONT, host, "db.back", QueryType::A),
            Resolution::Addresses(&[ip(&s, "db", "back")])
        );
    }

    #[test]
    fn own_servers_replace_the_daemons_and_gateways_are_never_upstreams() {
        let (mut s, mut e) = sample();
        let me = ctr(
            &mut s,
            ContainerCreate {
                dns: vec!["198.51.100.7".into()],
                ..req("me", "front")
            },
            &mut e,
        );
        let t = NameTable::build(&s, &["10.1.0.1".parse().unwrap(), upstream()[0]], &[]);
        assert_eq!(t.upstreams, vec!["192.0.2.53:53".parse().unwrap()]);
        assert_eq!(
            t.resolve(GW_FRONT, IpAddr::V4(me), "example.com", QueryType::A),
            Resolution::Forward(&["198.51.100.7:53".parse().unwrap()])
        );
    }

    #[test]
    fn resolv_conf_like_dockers_embedded_dns() {
        let (mut s, mut e) = sample();
        let host = ResolvConf::parse(
            "# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.1 ; x\nsearch a.example b.example\noptions edns0 trust-ad\n",
        );
        assert_eq!(host.nameservers.len(), 2);
        assert_eq!(host.search, ["a.example", "b.example"]);
        let web = &s.containers["web"];
        assert_eq!(
            s.resolv_conf(web, &host),
            "# Written by switchyard; changes are overwritten.\nnameserver 10.1.0.1\nsearch a.example b.example\noptions ndots:0\n"
        );
        ctr(
            &mut s,
            ContainerCreate {
                dns_search: vec!["corp.example.".into()],
                dns_options: vec!["ndots:2".into(), "rotate".into()],
                ..req("custom", "back")
            },
            &mut e,
        );
        let conf = s.resolv_conf(&s.containers["custom"], &host);
        assert!(
            conf.contains("nameserver 10.2.0.1\nsearch corp.example\noptions ndots:2 rotate\n"),
            "{conf}"
        );
        s.create_container(&req("alone", "none"), &mut e).unwrap();
        let conf = s.resolv_conf(&s.containers["alone"], &host);
        assert!(
            conf.contains(
                "nameserver 192.0.2.1\nsearch a.example b.example\noptions edns0 trust-ad\n"
            ) && !conf.contains("127.0.0.53"),
            "{conf}"
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_value() {
        for (servers, search, options, hosts, msg) in [
            (vec!["x"], vec![], vec![], vec![], "invalid --dns 'x'"),
            (
                vec![],
                vec!["a..b"],
                vec![],
                vec![],
                "invalid --dns-search domain 'a..b'",
            ),
            (
                vec![],
                vec![],
                vec!["nd ots"],
                vec![],
                "invalid --dns-option 'nd ots'",
            ),
            (
                vec![],
                vec![],
                vec![],
                vec!["nohost"],
                "invalid --add-host 'nohost'",
            ),
            (
                vec![],
                vec![],
                vec![],
                vec!["h:1.2.3"],
                "'1.2.3' is not an IP address",
            ),
            (
                vec![],
                vec![],
                vec![],
                vec!["b@d:1.2.3.4"],
                "invalid --add-host name 'b@d'",
            ),
        ] {
            let s = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
            let e = parse_dns_settings(&s(servers), &s(search), &s(options), &s(hosts), None)
                .unwrap_err();
            assert!(e.message.contains(msg), "{msg}: {}", e.message);
        }
        let ok = parse_dns_settings(
            &[],
            &[],
            &[],
            &["gw:host-gateway".into(), "v6=[::1]".into()],
            Some(Ipv4Addr::new(10, 0, 0, 1)),
        )
        .unwrap();
        assert_eq!(ok.extra_hosts[0].ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(ok.extra_hosts[1].ip, "::1".parse::<IpAddr>().unwrap());
        assert!(validate_dns_name("alias", &"a".repeat(64)).is_err());
        assert!(validate_dns_name("alias", "my-db_1.svc").is_ok());
        assert!(validate_dns_name("hostname", "-x").is_err());
    }
}
