//! The topology view (`switchyard topology`) built from the state: networks, containers with their
//! endpoints, published ports and links, and the uplink the daemon was started with.

use super::State;
use crate::api::topology::{
    ContainerView, EndpointView, LinkView, NetView, PublishedPort, Topology, UplinkView,
};

/// The view of `state`; `uplink` is the daemon's (`--uplink`), the one thing not in the state.
pub fn topology(state: &State, uplink: Option<UplinkView>) -> Topology {
    let networks = state
        .networks
        .values()
        .map(|n| NetView {
            name: n.name.clone(),
            subnet: n.subnet().addr(),
            prefix: n.subnet().prefix(),
            gateway: n.gateway(),
            host_port: n.host_interface.clone(),
            icc: n.icc,
            internal: n.internal,
        })
        .collect();
    let containers = state
        .containers
        .values()
        .map(|c| ContainerView {
            name: c.name.clone(),
            endpoints: c
                .endpoints
                .iter()
                .map(|e| EndpointView {
                    network: e.network.clone(),
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
                    container: l.container.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ContainerCreate, NetworkCreate};
    use crate::model::tests::Counter;
    use crate::model::PublishContext;
    use crate::render::topology::{render_dot, render_svg, render_text};

    /// bridge, private (icc=false) and island (internal); web publishes on the uplink address, a
    /// udp range and a plain port; app is on bridge and private, linked to pg as db, and publishes
    /// a udp port; pg is on private; q on island; lone has no network.
    fn state() -> State {
        let mut e = Counter(0);
        let mut s = State::initial(&[], &mut e).unwrap();
        let net = |name: &str, subnet: &str| NetworkCreate {
            name: name.into(),
            subnet: Some(subnet.into()),
            ..Default::default()
        };
        s.create_network(
            &NetworkCreate {
                options: vec!["icc=false".into()],
                ..net("private", "10.30.0.0/24")
            },
            &[],
            &mut e,
        )
        .unwrap();
        s.create_network(
            &NetworkCreate {
                internal: true,
                ..net("island", "10.40.0.0/24")
            },
            &[],
            &mut e,
        )
        .unwrap();
        let ctx = PublishContext {
            uplink: Some("192.0.2.10".parse().unwrap()),
            ..PublishContext::default()
        };
        let ctr = |name: &str, network: &str| ContainerCreate {
            name: name.into(),
            network: network.into(),
            ..Default::default()
        };
        for req in [
            ContainerCreate {
                publish: vec![
                    "192.0.2.10:8080:80".into(),
                    "7000-7002:7000-7002/udp".into(),
                    "9090:90".into(),
                ],
                ..ctr("web", "bridge")
            },
            ContainerCreate {
                expose: vec!["5432".into()],
                ..ctr("pg", "private")
            },
            ContainerCreate {
                publish: vec!["5353:53/udp".into()],
                ..ctr("app", "bridge")
            },
            ctr("q", "island"),
            ctr("lone", "none"),
        ] {
            s.create_container_with(&req, &ctx, &mut e).unwrap();
        }
        s.connect("private", "app", None, &mut e).unwrap();
        s.add_link("app", "pg:db").unwrap();
        s
    }

    fn uplink() -> UplinkView {
        UplinkView {
            interface: "ens3".into(),
            ip: "192.0.2.10".parse().unwrap(),
            prefix: 24,
            gateway: Some("192.0.2.1".parse().unwrap()),
        }
    }

    #[test]
    fn renderings_of_a_state_match_the_golden_files() {
        use crate::render::golden;
        let t = topology(&state(), Some(uplink()));
        golden("state.txt", &render_text(&t));
        golden("state.dot", &render_dot(&t));
        golden("state.svg", &render_svg(&t));
        let t = topology(&state(), None);
        golden("state-no-uplink.txt", &render_text(&t));
    }
}
