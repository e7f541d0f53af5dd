//! The topology view (`switchyard topology`) built from the state: networks, containers with their
//! endpoints, published ports and links, and the uplink the daemon was started with.

use super::State;
use crate::api::topology::{
    ContainerView, EndpointView, LinkView, NetView, PublishedPort, Topology, UplinkView,
};

/// The view of `state`; `uplink` is the daemon's (`--uplink`), the one thing not in the state.
pub fn topology(state: &State, uplink: Option<UplinkView>) -> Topology {
    // Names as shown (aliases given by another system), consistently in every cross-reference.
    let net = |name: &str| match state.networks.get(name) {
        Some(n) => state.shown_name(&n.id, &n.name).to_string(),
        None => name.to_string(),
    };
    let ctr = |name: &str| match state.containers.get(name) {
        Some(c) => state.shown_name(&c.id, &c.name).to_string(),
        None => name.to_string(),
    };
    let networks = state
        .networks
        .values()
        .map(|n| NetView {
            name: net(&n.name),
            subnet: n.subnet().addr(),
            prefix: n.subnet().prefix(),
            gateway: n.gateway(),
            host_port: n.host_interface.clone(),
            icc: n.icc,
            internal: n.internal,
            routed: n.routed,
            resolver: None,
        })
        .collect();
    let containers = state
        .containers
        .values()
        .map(|c| ContainerView {
            name: ctr(&c.name),
            endpoints: c
                .endpoints
                .iter()
                .map(|e| EndpointView {
                    network: net(&e.network),
                    interface: e.interface.clone(),
                    ip: e.ip,
                    prefix: state.networks.get(&e.network).map(|n| n.subnet().prefix()),
                    mac: e.mac.0,
                    host_interface: e.host_interface.clone(),
                })
                .collect(),
            published: c
                .published
                .iter()
                .map(|p| PublishedPort {
                    protocol: p.mapping.protocol,
                    host_ip: p.mapping.host_ip,
                    host_port: p.mapping.host_port,
                    container_port: p.mapping.container_port,
                })
                .collect(),
            links: c
                .links
                .iter()
                .map(|l| LinkView {
                    container: ctr(&l.container),
                    alias: l.alias.clone(),
                })
                .collect(),
        })
        .collect();
    Topology {
        networks,
        containers,
        uplink,
    }
}
