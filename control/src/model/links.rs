//! Legacy links (`--link CHILD:ALIAS`) and exposed ports, as Docker has them: what a link allows on
//! an `icc=false` network, the environment variables and the /etc/hosts lines it gives the parent.
//!
//! A link from a parent to a child opens, per port the child exposes and per network both share,
//! parent -> child to that port and child -> parent from it (Docker's pair of iptables rules).
//! Links name containers; removing the child removes the links to it (a later container of the
//! same name is a different container, as in Docker, where links hold IDs).

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use dataplane::{LinkPort, LinkRule};
use serde::{Deserialize, Serialize};

use super::{bad, validate_name, Container, NetworkMode, State};
use crate::api::ApiError;
pub use crate::api::Protocol;

/// A port a container exposes (`--expose 5432`, `--expose 53/udp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Exposed {
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for Exposed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

/// `--link CHILD[:ALIAS]` of a parent container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub container: String,
    pub alias: String,
}

fn parse_port(s: &str, spec: &str) -> Result<u16, ApiError> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(bad(format!(
            "invalid port '{s}' in '{spec}': expected 1-65535"
        ))),
    }
}

/// `PORT[/PROTO]` or `START-END[/PROTO]` (Docker's `--expose`), expanded.
pub fn parse_expose(spec: &str) -> Result<Vec<Exposed>, ApiError> {
    let (ports, protocol) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.parse()?),
        None => (spec, Protocol::Tcp),
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (parse_port(a, spec)?, parse_port(b, spec)?),
        None => {
            let p = parse_port(ports, spec)?;
            (p, p)
        }
    };
    if start > end {
        return Err(bad(format!(
            "invalid port range '{spec}': {start} is above {end}"
        )));
    }
    Ok((start..=end)
        .map(|port| Exposed { port, protocol })
        .collect())
}

/// `CHILD[:ALIAS]`; the alias defaults to the child's name.
pub fn parse_link(spec: &str) -> Result<Link, ApiError> {
    let (container, alias) = spec.split_once(':').unwrap_or((spec, spec));
    validate_name("container", container)?;
    validate_name("link alias", alias)?;
    Ok(Link {
        container: container.to_string(),
        alias: alias.to_string(),
    })
}

/// Docker's variable prefix of an alias: upper case, anything else than letters and digits as `_`.
fn env_prefix(alias: &str) -> String {
    alias
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl State {
    /// Checks `links` of a (new or existing) container `parent` with endpoints on `networks`.
    pub(super) fn check_links(
        &self,
        parent: &str,
        networks: &[&str],
        links: &[Link],
    ) -> Result<(), ApiError> {
        let mut aliases = HashSet::new();
        for link in links {
            if link.container == parent {
                return Err(bad(format!("container '{parent}' cannot link to itself")));
            }
            let child = self.container(&link.container)?;
            if !aliases.insert(link.alias.as_str()) {
                return Err(bad(format!(
                    "link alias '{}' is used twice by '{parent}'",
                    link.alias
                )));
            }
            if !child
                .endpoints
                .iter()
                .any(|e| networks.contains(&e.network.as_str()))
            {
                return Err(bad(format!(
                    "cannot link '{parent}' to '{}': they share no network",
                    link.container
                )));
            }
        }
        Ok(())
    }

    /// `container link PARENT CHILD[:ALIAS]`.
    pub fn add_link(&mut self, parent: &str, spec: &str) -> Result<(), ApiError> {
        let link = parse_link(spec)?;
        let p = self.container(parent)?;
        let mut links = p.links.clone();
        links.push(link);
        let networks: Vec<&str> = p.endpoints.iter().map(|e| e.network.as_str()).collect();
        self.check_links(parent, &networks, &links)?;
        self.containers.get_mut(parent).expect("checked").links = links;
        Ok(())
    }

    /// `container unlink PARENT ALIAS`.
    pub fn remove_link(&mut self, parent: &str, alias: &str) -> Result<(), ApiError> {
        let p = self.container(parent)?;
        let Some(i) = p.links.iter().position(|l| l.alias == alias) else {
            return Err(bad(format!(
                "container '{parent}' has no link named '{alias}'"
            )));
        };
        self.containers
            .get_mut(parent)
            .expect("checked")
            .links
            .remove(i);
        Ok(())
    }

    /// The child's address the parent reaches it on: on the first of the parent's networks the
    /// child is attached to too.
    fn link_address(&self, parent: &Container, child: &Container) -> Option<Ipv4Addr> {
        parent
            .endpoints
            .iter()
            .find_map(|pe| child.endpoint(&pe.network).map(|ce| ce.ip))
    }

    /// Every link rule: per link, per shared network, per exposed port, the pair Docker installs.
    pub fn link_rules(&self) -> HashSet<LinkRule> {
        let mut rules = HashSet::new();
        for parent in self.containers.values() {
            for link in &parent.links {
                let Some(child) = self.containers.get(&link.container) else {
                    continue;
                };
                for pe in &parent.endpoints {
                    let Some(ce) = child.endpoint(&pe.network) else {
                        continue;
                    };
                    for x in &child.exposed {
                        let protocol = x.protocol.number();
                        rules.insert(LinkRule {
                            src: pe.ip,
                            dst: ce.ip,
                            protocol,
                            port: LinkPort::Dst(x.port),
                        });
                        rules.insert(LinkRule {
                            src: ce.ip,
                            dst: pe.ip,
                            protocol,
                            port: LinkPort::Src(x.port),
                        });
                    }
                }
            }
        }
        rules
    }

    /// `container env NAME`: the variables Docker gives a linked container, in a stable order.
    pub fn link_env(&self, name: &str) -> Result<Vec<(String, String)>, ApiError> {
        let parent = self.container(name)?;
        let mut env = Vec::new();
        for link in &parent.links {
            let Some(child) = self.containers.get(&link.container) else {
                continue;
            };
            let Some(ip) = self.link_address(parent, child) else {
                continue;
            };
            let prefix = env_prefix(&link.alias);
            env.push((
                format!("{prefix}_NAME"),
                format!("/{}/{}", parent.name, link.alias),
            ));
            let exposed: BTreeSet<Exposed> = child.exposed.iter().copied().collect();
            if let Some(first) = exposed.iter().next() {
                env.push((
                    format!("{prefix}_PORT"),
                    format!("{}://{ip}:{}", first.protocol, first.port),
                ));
            }
            for x in &exposed {
                let var = format!("{prefix}_PORT_{}_{}", x.port, env_prefix(x.protocol.name()));
                env.push((var.clone(), format!("{}://{ip}:{}", x.protocol, x.port)));
                env.push((format!("{var}_ADDR"), ip.to_string()));
                env.push((format!("{var}_PORT"), x.port.to_string()));
                env.push((format!("{var}_PROTO"), x.protocol.to_string()));
            }
            // The child's own variables, as Docker's `Link::ToEnv` gives them (not HOME, PATH).
            for (key, value) in child.env.iter().filter_map(|v| v.split_once('=')) {
                if key != "HOME" && key != "PATH" {
                    env.push((format!("{prefix}_ENV_{key}"), value.to_string()));
                }
            }
        }
        Ok(env)
    }

    /// The container's host name: `--hostname`, else its short ID (Docker's default); a
    /// `container:X` joiner has X's. `None` for `--network host`: the host's own.
    pub fn hostname_of(&self, c: &Container) -> Option<String> {
        match &c.mode {
            NetworkMode::Host => None,
            NetworkMode::Container(other) => match self.containers.get(other) {
                Some(o) if o.name != c.name => self.hostname_of(o),
                _ => None,
            },
            _ => Some(
                c.hostname
                    .clone()
                    .unwrap_or_else(|| c.id.chars().take(12).collect()),
            ),
        }
    }

    /// `container env NAME`, and what `container exec` runs with: the environment Docker gives a
    /// container's processes (`docker exec NAME env`): `PATH`, `HOSTNAME` (`host` gives the
    /// daemon host's `host_hostname`), the link variables, then the container's own `-e`
    /// variables, which replace same-named ones, and `HOME=/root` unless given.
    pub fn exec_env(
        &self,
        name: &str,
        host_hostname: &str,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let c = self.container(name)?;
        let mut env = vec![
            ("PATH".to_string(), DEFAULT_PATH.to_string()),
            (
                "HOSTNAME".to_string(),
                self.hostname_of(c)
                    .unwrap_or_else(|| host_hostname.to_string()),
            ),
        ];
        env.extend(self.link_env(name)?);
        for (key, value) in c.env.iter().filter_map(|v| v.split_once('=')) {
            match env.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value.to_string(),
                None => env.push((key.to_string(), value.to_string())),
            }
        }
        if !env.iter().any(|(k, _)| k == "HOME") {
            env.push(("HOME".to_string(), "/root".to_string()));
        }
        Ok(env)
    }

    /// The container's /etc/hosts as Docker writes it: localhost and the IPv6 lines, one line
    /// per link (`IP\tALIAS CHILD-HOSTNAME CHILD-NAME`, the name left out when it is the alias),
    /// then the container's own address with its host name.
    pub fn hosts_file(&self, c: &Container) -> String {
        let mut out = String::from(DEFAULT_HOSTS);
        for link in &c.links {
            let Some(child) = self.containers.get(&link.container) else {
                continue;
            };
            if let Some(ip) = self.link_address(c, child) {
                let child_host = self.hostname_of(child).unwrap_or_default();
                if link.alias == child.name {
                    out.push_str(&format!("{ip}\t{} {child_host}\n", link.alias));
                } else {
                    out.push_str(&format!(
                        "{ip}\t{} {child_host} {}\n",
                        link.alias, child.name
                    ));
                }
            }
        }
        for h in &c.dns.extra_hosts {
            out.push_str(&format!("{}\t{}\n", h.ip, h.name));
        }
        let hostname = self.hostname_of(c).unwrap_or_default();
        for e in &c.endpoints {
            out.push_str(&format!("{}\t{hostname}\n", e.ip));
        }
        out
    }
}

/// Docker's `PATH` for containers whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The lines Docker's /etc/hosts starts with (libnetwork's `etchosts`).
const DEFAULT_HOSTS: &str = "127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
";

impl State {
    /// `/etc/hostname` as Docker writes it.
    pub fn hostname_file(&self, c: &Container) -> Option<String> {
        self.hostname_of(c).map(|h| format!("{h}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose_specs() {
        assert_eq!(
            parse_expose("5432").unwrap(),
            vec![Exposed {
                port: 5432,
                protocol: Protocol::Tcp
            }]
        );
        assert_eq!(parse_expose("53/udp").unwrap()[0].protocol, Protocol::Udp);
        assert_eq!(parse_expose("8000-8002/tcp").unwrap().len(), 3);
        for (spec, msg) in [
            ("0", "invalid port '0'"),
            ("70000", "invalid port '70000'"),
            ("80/sctp", "sctp is not supported"),
            ("80/icmp", "invalid protocol 'icmp'"),
            ("90-80", "90 is above 80"),
            ("", "invalid port ''"),
        ] {
            let e = parse_expose(spec).unwrap_err();
            assert!(e.message.contains(msg), "{spec}: {}", e.message);
        }
    }

    #[test]
    fn link_specs() {
        assert_eq!(
            parse_link("db:database").unwrap(),
            Link {
                container: "db".into(),
                alias: "database".into()
            }
        );
        assert_eq!(parse_link("db").unwrap().alias, "db");
        assert!(parse_link("db:").is_err());
        assert!(parse_link(":x").is_err());
    }

    #[test]
    fn env_prefix_is_dockers() {
        assert_eq!(env_prefix("my-db.1"), "MY_DB_1");
    }
}
