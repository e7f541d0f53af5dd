//! What the three renderings share: the topology sorted by name, cross-referenced and cleaned.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use dataplane::MacAddr;

use crate::api::topology::{ContainerView, EndpointView, NetView, Topology, UplinkView};

/// Replaces control characters: they could drive a terminal, and XML 1.0 cannot hold most of them.
pub(super) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// `172.17.0.2/16`, or the bare address when the prefix is unknown.
pub(super) fn address(e: &EndpointView) -> String {
    match e.prefix {
        Some(prefix) => format!("{}/{prefix}", e.ip),
        None => e.ip.to_string(),
    }
}

pub(super) fn mac(e: &EndpointView) -> String {
    MacAddr(e.mac).to_string()
}

pub(super) fn subnet(n: &NetView) -> String {
    format!("{}/{}", n.subnet, n.prefix)
}

pub(super) fn uplink_address(u: &UplinkView) -> String {
    format!("{}/{}", u.ip, u.prefix)
}

pub(super) enum NetKind<'a> {
    Known(&'a NetView),
    /// Named by an endpoint but absent from `Topology::networks`.
    Unknown,
    /// The containers without any endpoint.
    Detached,
}

pub(super) struct Net<'a> {
    pub name: &'a str,
    pub kind: NetKind<'a>,
    /// (container index, endpoint index), in container-name order; `None` for `Detached`.
    pub members: Vec<(usize, Option<usize>)>,
}

/// One published port and the host address it is drawn with.
pub(super) struct Published {
    pub container: usize,
    /// An address other than every address and the uplink's own (which the uplink shows).
    pub ip: Option<Ipv4Addr>,
    /// `8080/tcp`.
    pub host: String,
    pub target: u16,
}

impl Published {
    /// `8080/tcp -> 80`, as on the arrows and edges.
    pub fn label(&self) -> String {
        match &self.ip {
            Some(ip) => format!("{ip}:{} -> {}", self.host, self.target),
            None => format!("{} -> {}", self.host, self.target),
        }
    }
}

pub(super) struct Link<'a> {
    pub parent: usize,
    pub child: &'a str,
    pub child_index: Option<usize>,
    pub alias: &'a str,
}

pub(super) struct Scene<'a> {
    pub nets: Vec<Net<'a>>,
    pub cons: Vec<&'a ContainerView>,
    pub uplink: Option<&'a UplinkView>,
    pub published: Vec<Published>,
    pub links: Vec<Link<'a>>,
}

impl<'a> Scene<'a> {
    pub fn new(t: &'a Topology) -> Self {
        let mut cons: Vec<&ContainerView> = t.containers.iter().collect();
        cons.sort_by(|a, b| a.name.cmp(&b.name));
        let nets = nets(t, &cons);
        let uplink_ip = t.uplink.as_ref().map(|u| u.ip);
        let mut published = Vec::new();
        let mut links = Vec::new();
        for (ci, c) in cons.iter().enumerate() {
            for p in &c.published {
                published.push(Published {
                    container: ci,
                    ip: Some(p.host_ip).filter(|ip| !ip.is_unspecified() && Some(*ip) != uplink_ip),
                    host: format!("{}/{}", p.host_port, p.protocol),
                    target: p.container_port,
                });
            }
            for l in &c.links {
                links.push(Link {
                    parent: ci,
                    child: &l.container,
                    child_index: cons.iter().position(|x| x.name == l.container),
                    alias: &l.alias,
                });
            }
        }
        Scene {
            nets,
            cons,
            uplink: t.uplink.as_ref(),
            published,
            links,
        }
    }

    /// The networks of container `ci` other than `except`, sorted, once each.
    pub fn other_nets(&self, ci: usize, except: &str) -> Vec<String> {
        let names: BTreeSet<&str> = self.cons[ci]
            .endpoints
            .iter()
            .map(|e| e.network.as_str())
            .filter(|n| *n != except)
            .collect();
        names.into_iter().map(clean).collect()
    }

    pub fn links_of(&self, ci: usize) -> impl Iterator<Item = &Link<'a>> {
        self.links.iter().filter(move |l| l.parent == ci)
    }

    /// The published ports of container `ci`, labelled.
    pub fn port_labels(&self, ci: usize) -> Vec<String> {
        self.published
            .iter()
            .filter(|p| p.container == ci)
            .map(Published::label)
            .collect()
    }

    /// Whether the uplink box is drawn: there is one, or ports are published without one.
    pub fn show_uplink(&self) -> bool {
        self.uplink.is_some() || !self.published.is_empty()
    }
}

/// The known networks, those named only by endpoints, then the containers without any endpoint;
/// each with its members, in container-name order.
fn nets<'a>(t: &'a Topology, cons: &[&'a ContainerView]) -> Vec<Net<'a>> {
    let mut nets: Vec<Net> = t
        .networks
        .iter()
        .map(|n| Net {
            name: &n.name,
            kind: NetKind::Known(n),
            members: Vec::new(),
        })
        .collect();
    let unknown: BTreeSet<&str> = cons
        .iter()
        .flat_map(|c| &c.endpoints)
        .map(|e| e.network.as_str())
        .filter(|name| !t.networks.iter().any(|n| n.name == *name))
        .collect();
    nets.extend(unknown.into_iter().map(|name| Net {
        name,
        kind: NetKind::Unknown,
        members: Vec::new(),
    }));
    let key = |n: &Net<'a>| match n.kind {
        NetKind::Known(v) => (n.name, Some((v.subnet, v.prefix))),
        _ => (n.name, None),
    };
    nets.sort_by(|a, b| key(a).cmp(&key(b)));

    for (ci, c) in cons.iter().enumerate() {
        for (ei, e) in c.endpoints.iter().enumerate() {
            for n in nets.iter_mut().filter(|n| n.name == e.network) {
                n.members.push((ci, Some(ei)));
            }
        }
    }
    let detached: Vec<(usize, Option<usize>)> = (0..cons.len())
        .filter(|&ci| cons[ci].endpoints.is_empty())
        .map(|ci| (ci, None))
        .collect();
    if !detached.is_empty() {
        nets.push(Net {
            name: "",
            kind: NetKind::Detached,
            members: detached,
        });
    }
    nets
}
