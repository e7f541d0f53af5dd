//! The rules of the state, as data: each bad request is refused with its message and leaves the
//! state exactly as it was.

use super::*;
use crate::api::{ContainerCreate, ErrorKind};

/// Deterministic minting: a counter spread over the buffer, and a fixed time.
pub struct Counter(pub u64);

impl Mint for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        self.0 += 1;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> ((i % 8) * 8)) as u8 ^ i as u8;
        }
    }

    fn now(&mut self) -> std::time::Duration {
        std::time::Duration::new(1_700_000_000, 123)
    }
}

fn net(name: &str, subnet: Option<&str>) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        subnet: subnet.map(Into::into),
        ..Default::default()
    }
}

fn ctr(name: &str, network: &str, ip: Option<&str>) -> ContainerCreate {
    ContainerCreate {
        name: name.into(),
        network: network.into(),
        ip: ip.map(Into::into),
        ..Default::default()
    }
}

/// A state with `bridge`, `front` (10.1.0.0/24, range 10.1.0.128/25, aux router=10.1.0.2) and a
/// container `web` on front.
fn sample() -> (State, Counter) {
    let mut e = Counter(0);
    let mut s = State::initial(&[], &mut e).unwrap();
    s.create_network(
        &NetworkCreate {
            ip_range: Some("10.1.0.128/25".into()),
            aux_addresses: vec!["router=10.1.0.2".into()],
            ..net("front", Some("10.1.0.0/24"))
        },
        &[],
        &mut e,
    )
    .unwrap();
    s.create_container(&ctr("web", "front", None), &mut e)
        .unwrap();
    (s, e)
}

/// Applies `op` to a copy and checks it is refused as bad input with `expected` in the message and
/// that the state did not change.
fn refused(op: impl FnOnce(&mut State, &mut Counter) -> Result<(), ApiError>, expected: &str) {
    let (before, mut e) = sample();
    let mut s = before.clone();
    let err = op(&mut s, &mut e).expect_err(expected);
    assert_eq!(err.kind, ErrorKind::BadInput, "{}", err.message);
    assert!(
        err.message.contains(expected),
        "expected '{expected}' in '{}'",
        err.message
    );
    assert!(!err.message.contains('\n'), "one line: {}", err.message);
    assert_eq!(
        s, before,
        "a refused request must change nothing ({expected})"
    );
}

#[test]
fn the_default_network_is_dockers() {
    let s = State::initial(&[], &mut Counter(0)).unwrap();
    let b = s.network("bridge").unwrap();
    assert_eq!(b.subnet().to_string(), "172.17.0.0/16");
    assert_eq!(b.gateway().to_string(), "172.17.0.1");
    assert_eq!(b.host_interface, "switchyard0");
    assert!(b.icc && !b.internal && b.mtu == 1500);
}

#[test]
fn the_default_network_moves_when_172_17_is_routed() {
    let routed = ["172.17.0.0/16".parse().unwrap()];
    let s = State::initial(&routed, &mut Counter(0)).unwrap();
    assert_eq!(
        s.network("bridge").unwrap().subnet().to_string(),
        "172.18.0.0/16"
    );
}

#[test]
fn dockerd_bridge_flags_shape_the_default_network() {
    let flags = BridgeFlags {
        bip: Some("10.123.0.1/24".into()),
        fixed_cidr: Some("10.123.0.128/25".into()),
        default_gateway: Some("10.123.0.254".into()),
        mtu: Some(1400),
        icc: Some(false),
        ip_masq: Some(false),
    };
    let mut e = Counter(0);
    let mut s = State::initial_with(&[], &flags, &mut e).unwrap();
    let b = s.network("bridge").unwrap().clone();
    assert_eq!(b.subnet().to_string(), "10.123.0.0/24");
    assert_eq!(b.gateway().to_string(), "10.123.0.1");
    assert_eq!(b.host_interface, "switchyard0");
    assert!(!b.icc && !b.masquerade && b.mtu == 1400);
    let c = s
        .create_container(&ctr("c", "bridge", None), &mut e)
        .unwrap()
        .clone();
    assert_eq!(c.endpoints[0].ip.to_string(), "10.123.0.128");
    assert_eq!(
        s.default_route_endpoint(&c).unwrap().1.to_string(),
        "10.123.0.254",
        "--default-gateway"
    );
    // The same flags again (or none) change nothing; other flags with a container on the
    // network are refused; without one, the network is remade.
    assert!(s
        .reconfigure_default_bridge(&flags, &mut e)
        .unwrap()
        .is_none());
    assert!(s
        .reconfigure_default_bridge(&BridgeFlags::default(), &mut e)
        .unwrap()
        .is_none());
    let other = BridgeFlags {
        bip: Some("10.124.0.1/24".into()),
        ..Default::default()
    };
    let before = s.clone();
    let err = s.reconfigure_default_bridge(&other, &mut e).unwrap_err();
    assert!(
        err.message.contains("container 'c' is on it"),
        "{}",
        err.message
    );
    assert_eq!(s, before);
    s.remove_containers(&["c".into()]).unwrap();
    let old = s
        .reconfigure_default_bridge(&other, &mut e)
        .unwrap()
        .unwrap();
    assert_eq!(old.subnet().to_string(), "10.123.0.0/24");
    let b = s.network("bridge").unwrap();
    assert_eq!(b.subnet().to_string(), "10.124.0.0/24");
    assert!(!b.icc && b.mtu == 1400, "flags not given keep their values");
    let err = State::initial_with(
        &[],
        &BridgeFlags {
            bip: Some("10.9.0.0/24".into()),
            ..Default::default()
        },
        &mut e,
    )
    .unwrap_err();
    assert!(err.message.contains("--bip"), "{}", err.message);
}

#[test]
fn an_address_is_asked_for_only_on_networks_with_a_user_subnet() {
    let (mut s, mut e) = sample();
    s.create_network(&net("auto", None), &[], &mut e).unwrap();
    let before = s.clone();
    let err = s
        .create_container(&ctr("x", "auto", Some("172.18.0.9")), &mut e)
        .unwrap_err();
    assert!(
        err.message.contains("user configured subnets"),
        "{}",
        err.message
    );
    assert!(s
        .connect("auto", "web", Some("172.18.0.9"), &mut e)
        .is_err());
    assert_eq!(s, before);
    s.create_container(&ctr("x", "auto", None), &mut e).unwrap();
}

#[test]
fn networks_without_subnet_take_the_next_default_pool() {
    let (mut s, mut e) = sample();
    let routes = ["172.18.0.0/16".parse().unwrap()];
    let n = s.create_network(&net("a", None), &routes, &mut e).unwrap();
    assert_eq!(n.subnet().to_string(), "172.19.0.0/16");
    assert_eq!(n.host_interface.len(), 15, "{}", n.host_interface);
    let d = n.domain;
    let n = s.create_network(&net("b", None), &routes, &mut e).unwrap();
    assert_eq!(n.subnet().to_string(), "172.20.0.0/16");
    assert_ne!(n.domain, d, "each network is its own bridge domain");
}

#[test]
fn containers_get_sequential_addresses_from_the_range_and_release_them() {
    let (mut s, mut e) = sample();
    assert_eq!(
        s.container("web").unwrap().endpoints[0].ip.to_string(),
        "10.1.0.128"
    );
    let db = s
        .create_container(&ctr("db", "front", None), &mut e)
        .unwrap();
    assert_eq!(db.endpoints[0].ip.to_string(), "10.1.0.129");
    assert_eq!(db.endpoints[0].interface, "eth0");
    assert!(db.endpoints[0].host_interface.starts_with("veth"));
    assert_eq!(db.endpoints[0].host_interface.len(), 11);
    let mac = db.endpoints[0].mac.0;
    assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast");
    // A static address may lie outside the range, inside the subnet.
    let c = s
        .create_container(&ctr("c", "front", Some("10.1.0.50")), &mut e)
        .unwrap();
    assert_eq!(c.endpoints[0].ip.to_string(), "10.1.0.50");
    s.remove_containers(&["c".into()]).unwrap();
    assert!(s
        .network("front")
        .unwrap()
        .pool
        .holder("10.1.0.50".parse().unwrap())
        .is_none());
    s.create_container(&ctr("c", "front", Some("10.1.0.50")), &mut e)
        .unwrap();
}

#[test]
fn connect_adds_the_next_interface_and_disconnect_releases() {
    let (mut s, mut e) = sample();
    let ep = s.connect("bridge", "web", None, &mut e).unwrap();
    assert_eq!(ep.interface, "eth1");
    assert_eq!(ep.ip.to_string(), "172.17.0.2");
    let web = s.container("web").unwrap().clone();
    // Docker's rule: the default route goes to the network whose name sorts first.
    assert_eq!(
        s.default_route_endpoint(&web).unwrap().1.to_string(),
        "172.17.0.1"
    );
    s.disconnect("bridge", "web").unwrap();
    let web = s.container("web").unwrap().clone();
    assert_eq!(
        s.default_route_endpoint(&web).unwrap().1.to_string(),
        "10.1.0.1"
    );
    s.connect("bridge", "web", None, &mut e).unwrap();
    s.disconnect("front", "web").unwrap();
    let web = s.container("web").unwrap().clone();
    assert_eq!(
        s.default_route_endpoint(&web).unwrap().1.to_string(),
        "172.17.0.1"
    );
    let ep = s
        .connect("front", "web", Some("10.1.0.200"), &mut e)
        .unwrap();
    assert_eq!(ep.interface, "eth0", "the lowest free ethN");
}

#[test]
fn network_rm_force_disconnects() {
    let (mut s, _) = sample();
    let removed = s.remove_networks(&["front".into()], true).unwrap();
    assert_eq!(removed[0].disconnected.len(), 1);
    assert!(s.container("web").unwrap().endpoints.is_empty());
    assert!(s.network("front").is_err());
}

#[test]
fn inspect_shows_dockers_view() {
    let (s, _) = sample();
    let v = serde_json::to_value(s.network_inspect(s.network("front").unwrap())).unwrap();
    assert_eq!(v["IPAM"]["Config"][0]["IPRange"], "10.1.0.128/25");
    assert_eq!(
        v["IPAM"]["Config"][0]["AuxiliaryAddresses"]["router"],
        "10.1.0.2"
    );
    assert_eq!(v["Options"]["com.docker.network.bridge.enable_icc"], "true");
    let web = s.container("web").unwrap();
    assert_eq!(v["Containers"][&web.id]["IPv4Address"], "10.1.0.128/24");
    let c = serde_json::to_value(s.container_inspect(web, 1)).unwrap();
    assert_eq!(c["Name"], "/web");
    assert_eq!(c["NetworkSettings"]["Networks"]["front"]["IPPrefixLen"], 24);
}

#[test]
fn rfc3339_timestamps() {
    let t = Counter(0).created();
    assert_eq!(t.len(), 30, "{t}");
    assert!(
        t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T",
        "{t}"
    );
}

#[test]
fn bad_network_requests_change_nothing() {
    let create = |req: NetworkCreate| {
        move |s: &mut State, e: &mut Counter| s.create_network(&req, &[], e).map(|_| ())
    };
    refused(
        create(net("front", Some("10.2.0.0/24"))),
        "network 'front' already exists",
    );
    refused(
        create(net("bad name", None)),
        "invalid network name 'bad name'",
    );
    refused(create(net("host", None)), "reserved");
    refused(create(net("x", Some("10.0.0.0/33"))), "10.0.0.0/33");
    refused(create(net("x", Some("10.300.0.0/16"))), "10.300.0.0/16");
    refused(create(net("x", Some("banana"))), "banana");
    refused(create(net("x", Some("10.3.0.1/16"))), "10.3.0.0/16");
    refused(create(net("x", Some("10.1.0.0/16"))), "overlaps");
    refused(
        create(net("x", Some("127.0.0.0/8"))),
        "overlaps 127.0.0.0/8, the loopback range",
    );
    refused(create(net("x", Some("127.5.0.0/16"))), "loopback");
    refused(
        create(net("x", Some("224.1.0.0/16"))),
        "overlaps 224.0.0.0/4, the multicast range",
    );
    refused(create(net("x", Some("192.0.0.0/2"))), "multicast");
    refused(create(net("x", Some("240.0.0.0/24"))), "class E");
    refused(create(net("x", Some("0.0.0.0/0"))), "\"this network\"");
    refused(
        create(NetworkCreate {
            gateway: Some("10.9.0.1".into()),
            ..net("x", Some("10.3.0.0/24"))
        }),
        "gateway 10.9.0.1 is outside subnet 10.3.0.0/24",
    );
    refused(
        create(NetworkCreate {
            gateway: Some("ten".into()),
            ..net("x", Some("10.3.0.0/24"))
        }),
        "invalid gateway 'ten'",
    );
    refused(
        create(NetworkCreate {
            ip_range: Some("10.4.0.0/25".into()),
            ..net("x", Some("10.3.0.0/24"))
        }),
        "ip-range 10.4.0.0/25 is outside subnet 10.3.0.0/24",
    );
    refused(
        create(NetworkCreate {
            aux_addresses: vec!["r=10.9.0.1".into()],
            ..net("x", Some("10.3.0.0/24"))
        }),
        "outside subnet",
    );
    refused(
        create(NetworkCreate {
            gateway: Some("10.3.0.1".into()),
            ..net("x", None)
        }),
        "need --subnet",
    );
    refused(
        create(NetworkCreate {
            options: vec!["icc=maybe".into()],
            ..net("x", None)
        }),
        "invalid value 'maybe'",
    );
    refused(
        create(NetworkCreate {
            options: vec!["colour=blue".into()],
            ..net("x", None)
        }),
        "unknown option 'colour'",
    );
    refused(
        create(NetworkCreate {
            mtu: Some(20),
            ..net("x", None)
        }),
        "invalid MTU '20'",
    );
    refused(
        create(NetworkCreate {
            options: vec!["gateway_mode=nat-unprotected".into()],
            ..net("x", None)
        }),
        "invalid value 'nat-unprotected' for option com.docker.network.bridge.gateway_mode_ipv4: expected nat or routed",
    );
    refused(
        create(NetworkCreate {
            options: vec!["gateway_mode=routed".into()],
            internal: true,
            ..net("x", None)
        }),
        "--internal forbids it",
    );
    refused(
        create(NetworkCreate {
            options: vec![format!("{OPT_BRIDGE_NAME}=switchyard0")],
            ..net("x", None)
        }),
        "'switchyard0' is already used by network 'bridge'",
    );
    refused(
        create(NetworkCreate {
            options: vec![format!("{OPT_BRIDGE_NAME}=much-too-long-name")],
            ..net("x", None)
        }),
        "invalid interface name",
    );
}

#[test]
fn networks_leave_room_for_the_uplink() {
    let uplink = UplinkClaim {
        ifname: "eth0",
        ip: "192.0.2.10".parse().unwrap(),
        gateway: Some("192.0.2.1".parse().unwrap()),
    };
    let (mut s, mut e) = sample();
    // As the daemon does: create on a copy, check the new network, keep the copy only if fine.
    let check = |s: &mut State, e: &mut Counter, req: NetworkCreate| {
        let mut next = s.clone();
        next.create_network(&req, &[], e)?.check_uplink(&uplink)?;
        *s = next;
        Ok::<(), ApiError>(())
    };
    let err = check(&mut s, &mut e, net("a", Some("192.0.2.0/28"))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
    assert_eq!(
        err.message,
        "subnet 192.0.2.0/28 of network 'a' holds the uplink address 192.0.2.10 (--uplink-ip); choose a subnet outside it"
    );
    let err = check(&mut s, &mut e, net("b", Some("192.0.2.0/30"))).unwrap_err();
    assert!(
        err.message.contains("uplink gateway 192.0.2.1"),
        "{}",
        err.message
    );
    let parented = NetworkCreate {
        parent: Some("eth0".into()),
        ..net("c", Some("10.7.0.0/24"))
    };
    let err = check(&mut s, &mut e, parented).unwrap_err();
    assert!(
        err.message
            .contains("--parent eth0 of network 'c' is the daemon's uplink"),
        "{}",
        err.message
    );
    check(&mut s, &mut e, net("d", Some("192.0.2.16/28"))).unwrap();
}

#[test]
fn an_exhausted_pool_is_refused() {
    let mut e = Counter(0);
    let mut s = State::initial(&[], &mut e).unwrap();
    s.create_network(&net("tiny", Some("10.5.0.0/30")), &[], &mut e)
        .unwrap();
    s.create_container(&ctr("a", "tiny", None), &mut e).unwrap();
    let before = s.clone();
    let err = s
        .create_container(&ctr("b", "tiny", None), &mut e)
        .unwrap_err();
    assert!(err.message.contains("no free address"), "{}", err.message);
    assert_eq!(s, before);
}

#[test]
fn bad_container_requests_change_nothing() {
    refused(
        |s, e| {
            s.create_container(&ctr("web", "front", None), e)
                .map(|_| ())
        },
        "container 'web' already exists",
    );
    refused(
        |s, e| s.create_container(&ctr("db", "nope", None), e).map(|_| ()),
        "no such network: 'nope'",
    );
    refused(
        |s, e| {
            s.create_container(&ctr("db", "front", Some("10.1.0.128")), e)
                .map(|_| ())
        },
        "already in use by 'web'",
    );
    refused(
        |s, e| {
            s.create_container(&ctr("db", "front", Some("10.1.0.1")), e)
                .map(|_| ())
        },
        "gateway",
    );
    refused(
        |s, e| {
            s.create_container(&ctr("db", "front", Some("10.1.0.2")), e)
                .map(|_| ())
        },
        "aux address 'router'",
    );
    refused(
        |s, e| {
            s.create_container(&ctr("db", "front", Some("10.8.0.9")), e)
                .map(|_| ())
        },
        "outside subnet 10.1.0.0/24",
    );
    refused(
        |s, e| {
            s.create_container(&ctr("db", "front", Some("1.2.3")), e)
                .map(|_| ())
        },
        "invalid IP address '1.2.3'",
    );
    refused(
        |s, e| {
            s.create_container(&ctr("-db", "front", None), e)
                .map(|_| ())
        },
        "invalid container name '-db'",
    );
    refused(
        |s, e| {
            let mac = s.container("web").unwrap().endpoints[0].mac.to_string();
            s.create_container(
                &ContainerCreate {
                    mac: Some(mac),
                    ..ctr("db", "front", None)
                },
                e,
            )
            .map(|_| ())
        },
        "is already used by 'web'",
    );
    refused(
        |s, e| {
            s.create_container(
                &ContainerCreate {
                    mac: Some("01:00:5e:00:00:01".into()),
                    ..ctr("db", "front", None)
                },
                e,
            )
            .map(|_| ())
        },
        "01:00:5e:00:00:01",
    );
    refused(
        |s, _| {
            s.remove_containers(&["web".into(), "ghost".into()])
                .map(|_| ())
        },
        "no such container: 'ghost'",
    );
    refused(
        |s, _| s.remove_networks(&["front".into()], false).map(|_| ()),
        "has containers attached (web)",
    );
    refused(
        |s, _| s.remove_networks(&["bridge".into()], true).map(|_| ()),
        "cannot be removed",
    );
    refused(
        |s, _| s.remove_networks(&["ghost".into()], true).map(|_| ()),
        "no such network: 'ghost'",
    );
    refused(
        |s, e| s.connect("front", "web", None, e).map(|_| ()),
        "already connected",
    );
    refused(
        |s, e| s.connect("ghost", "web", None, e).map(|_| ()),
        "no such network",
    );
    refused(
        |s, e| s.connect("bridge", "ghost", None, e).map(|_| ()),
        "no such container",
    );
    refused(
        |s, _| s.disconnect("bridge", "web").map(|_| ()),
        "not connected",
    );
}

/// `sample()` plus `db` on front exposing 5432/tcp and 53/udp, and `app` linked to it as `database`.
fn linked() -> State {
    let (mut s, mut e) = sample();
    s.create_container(
        &ContainerCreate {
            expose: vec!["5432".into(), "53/udp".into(), "5432/tcp".into()],
            ..ctr("db", "front", None)
        },
        &mut e,
    )
    .unwrap();
    s.create_container(
        &ContainerCreate {
            links: vec!["db:database".into()],
            ..ctr("app", "front", None)
        },
        &mut e,
    )
    .unwrap();
    s
}

#[test]
fn links_give_dockers_rule_pairs_env_and_hosts() {
    use dataplane::{LinkPort, LinkRule};
    let s = linked();
    let db = s.container("db").unwrap();
    assert_eq!(db.exposed.len(), 2, "deduplicated: {:?}", db.exposed);
    let (app_ip, db_ip) = (
        s.container("app").unwrap().endpoints[0].ip,
        db.endpoints[0].ip,
    );
    let rules = s.link_rules();
    let rule = |src, dst, protocol, port| LinkRule {
        src,
        dst,
        protocol,
        port,
    };
    let want: std::collections::HashSet<LinkRule> = [
        rule(app_ip, db_ip, 6, LinkPort::Dst(5432)),
        rule(db_ip, app_ip, 6, LinkPort::Src(5432)),
        rule(app_ip, db_ip, 17, LinkPort::Dst(53)),
        rule(db_ip, app_ip, 17, LinkPort::Src(53)),
    ]
    .into_iter()
    .collect();
    assert_eq!(rules, want);

    let env = s.link_env("app").unwrap();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("DATABASE_NAME").as_deref(), Some("/app/database"));
    assert_eq!(
        get("DATABASE_PORT"),
        Some(format!("udp://{db_ip}:53")),
        "lowest port first"
    );
    assert_eq!(
        get("DATABASE_PORT_5432_TCP"),
        Some(format!("tcp://{db_ip}:5432"))
    );
    assert_eq!(get("DATABASE_PORT_5432_TCP_ADDR"), Some(db_ip.to_string()));
    assert_eq!(get("DATABASE_PORT_5432_TCP_PORT").as_deref(), Some("5432"));
    assert_eq!(get("DATABASE_PORT_5432_TCP_PROTO").as_deref(), Some("tcp"));
    assert_eq!(get("DATABASE_PORT_53_UDP_PROTO").as_deref(), Some("udp"));
    assert!(s.link_env("db").unwrap().is_empty());

    let short = |name: &str| s.container(name).unwrap().id[..12].to_string();
    let hosts = s.hosts_file(s.container("app").unwrap());
    assert!(
        hosts.ends_with(&format!("{app_ip}\t{}\n", short("app"))),
        "the own line last, with the host name: {hosts}"
    );
    assert!(
        hosts.contains(&format!("{db_ip}\tdatabase {} db\n", short("db"))),
        "{hosts}"
    );
    assert!(hosts.starts_with(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
    ));
}

#[test]
fn removing_the_child_or_the_link_removes_its_rules() {
    let mut s = linked();
    s.remove_link("app", "database").unwrap();
    assert!(s.link_rules().is_empty());
    assert!(s.link_env("app").unwrap().is_empty());
    s.add_link("app", "db").unwrap();
    assert_eq!(s.link_rules().len(), 4);
    s.remove_containers(&["db".into()]).unwrap();
    assert!(s.container("app").unwrap().links.is_empty());
    assert!(s.link_rules().is_empty());
}

#[test]
fn bad_link_requests_change_nothing() {
    refused(
        |s, e| {
            s.create_container(
                &ContainerCreate {
                    links: vec!["ghost:g".into()],
                    ..ctr("db", "front", None)
                },
                e,
            )
            .map(|_| ())
        },
        "no such container: 'ghost'",
    );
    refused(
        |s, e| {
            s.create_container(
                &ContainerCreate {
                    links: vec!["web".into()],
                    ..ctr("db", "bridge", None)
                },
                e,
            )
            .map(|_| ())
        },
        "share no network",
    );
    refused(
        |s, e| {
            s.create_container(
                &ContainerCreate {
                    expose: vec!["99999".into()],
                    ..ctr("db", "front", None)
                },
                e,
            )
            .map(|_| ())
        },
        "invalid port '99999'",
    );
    refused(|s, _| s.add_link("web", "web:me"), "cannot link to itself");
    refused(
        |s, _| s.add_link("web", "ghost"),
        "no such container: 'ghost'",
    );
    refused(
        |s, _| s.remove_link("web", "nope"),
        "has no link named 'nope'",
    );
    refused(|s, _| s.link_env("ghost").map(|_| ()), "no such container");
}

/// Like `refused`, after `setup` succeeded on the sample state.
fn refused_after(
    setup: impl FnOnce(&mut State, &mut Counter) -> Result<(), ApiError>,
    op: impl FnOnce(&mut State, &mut Counter) -> Result<(), ApiError>,
    expected: &str,
) {
    let (mut before, mut e) = sample();
    setup(&mut before, &mut e).expect("setup");
    let mut s = before.clone();
    let err = op(&mut s, &mut e).expect_err(expected);
    assert_eq!(err.kind, ErrorKind::BadInput, "{}", err.message);
    assert!(
        err.message.contains(expected),
        "expected '{expected}' in '{}'",
        err.message
    );
    assert_eq!(
        s, before,
        "a refused request must change nothing ({expected})"
    );
}

fn special(name: &str, network: &str) -> ContainerCreate {
    ContainerCreate {
        name: name.into(),
        network: network.into(),
        ..Default::default()
    }
}

#[test]
fn bad_mode_and_attach_requests_change_nothing() {
    let with_host =
        |s: &mut State, e: &mut Counter| s.create_container(&special("h", "host"), e).map(|_| ());
    refused(
        |s, e| {
            s.create_container(&special("j", "container:ghost"), e)
                .map(|_| ())
        },
        "no such container: 'ghost'",
    );
    refused_after(
        with_host,
        |s, e| {
            s.create_container(&special("j", "container:h"), e)
                .map(|_| ())
        },
        "has no namespace of its own",
    );
    refused(
        |s, e| {
            s.create_container(
                &ContainerCreate {
                    publish: vec!["80".into()],
                    ..special("h", "host")
                },
                e,
            )
            .map(|_| ())
        },
        "not possible with --network host",
    );
    refused(
        |s, e| {
            s.create_container(
                &ContainerCreate {
                    ip: Some("172.17.0.9".into()),
                    ..special("n", "none")
                },
                e,
            )
            .map(|_| ())
        },
        "--ip and --mac need a network",
    );
    refused_after(
        with_host,
        |s, e| s.connect("bridge", "h", None, e).map(|_| ()),
        "cannot be connected",
    );
    refused_after(
        |s, e| {
            s.attach(
                "netns-x",
                "/run/netns/x",
                7,
                "bridge",
                "eth1",
                None,
                None,
                e,
            )
            .map(|_| ())
        },
        |s, e| {
            s.attach(
                "netns-x",
                "/run/netns/x",
                7,
                "bridge",
                "eth2",
                None,
                None,
                e,
            )
            .map(|_| ())
        },
        "already attached to network 'bridge'",
    );
    refused(
        |s, e| {
            s.attach("web", "/run/netns/x", 7, "bridge", "eth1", None, None, e)
                .map(|_| ())
        },
        "taken by another container",
    );
    refused_after(
        |s, e| {
            s.create_container(&special("j", "container:web"), e)
                .map(|_| ())
        },
        |s, _| {
            s.remove_containers_forced(&["web".into()], false)
                .map(|_| ())
        },
        "has containers in its namespace (j)",
    );
}

fn endpoint_attach(container: &str, ifname: &str, publish: &[&str]) -> crate::api::EndpointAttach {
    crate::api::EndpointAttach {
        container: container.into(),
        network: "front".into(),
        netns: format!("/run/netns/{container}"),
        ifname: ifname.into(),
        publish: publish.iter().map(|p| p.to_string()).collect(),
        aliases: vec!["www".into()],
        owner: Some("cni:front".into()),
        default_route: true,
        ..Default::default()
    }
}

fn uplinked() -> PublishContext {
    PublishContext {
        uplink: Some("192.0.2.10".parse().unwrap()),
        ..Default::default()
    }
}

#[test]
fn attached_endpoints_keep_their_ports_aliases_and_owner_until_detached() {
    let (mut s, mut e) = sample();
    let before = s.clone();
    let ctx = uplinked();
    let (c, ep) = s
        .attach_endpoint(
            &endpoint_attach("pod1", "eth0", &["8080:80"]),
            9,
            &ctx,
            &mut e,
        )
        .unwrap();
    assert_eq!(
        (ep.interface.as_str(), ep.aliases.as_slice()),
        ("eth0", &["www".to_string()][..])
    );
    assert!(
        ep.default_route,
        "the first interface takes the default route"
    );
    assert_eq!(c.published[0].network.as_deref(), Some("front"));
    let views = s.endpoint_views(Some("cni:front"));
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].published, ["80/tcp -> 0.0.0.0:8080"]);
    assert!(s.endpoint_views(Some("someone-else")).is_empty());
    // A second interface of the same namespace on another network: no second default route.
    s.create_network(&net("back", Some("10.2.0.0/24")), &[], &mut e)
        .unwrap();
    let (_, ep2) = s
        .attach_endpoint(
            &crate::api::EndpointAttach {
                network: "back".into(),
                ..endpoint_attach("pod1", "eth1", &[])
            },
            9,
            &ctx,
            &mut e,
        )
        .unwrap();
    assert!(!ep2.default_route);
    assert_eq!(
        s.detach_endpoint("pod1", "eth1").unwrap().unwrap().ip,
        ep2.ip
    );
    assert_eq!(
        s.detach_endpoint("pod1", "eth0").unwrap().unwrap().ip,
        ep.ip
    );
    // Repeating it, or naming what never was, is not an error.
    assert_eq!(s.detach_endpoint("pod1", "eth0").unwrap(), None);
    assert_eq!(s.detach_endpoint("nobody", "eth0").unwrap(), None);
    s.networks.remove("back");
    assert_eq!(
        s.containers, before.containers,
        "the address and the port are free again"
    );
    let again = crate::api::EndpointAttach {
        ip: Some(ep.ip.to_string()),
        ..endpoint_attach("pod2", "eth0", &["8080:80"])
    };
    s.attach_endpoint(&again, 9, &ctx, &mut e).unwrap();
}

#[test]
fn bad_endpoint_attachments_are_refused() {
    let ctx = &uplinked();
    let attach = |req: crate::api::EndpointAttach| {
        move |s: &mut State, e: &mut Counter| s.attach_endpoint(&req, 9, ctx, e).map(|_| ())
    };
    refused(
        attach(endpoint_attach("-x", "eth0", &[])),
        "invalid container name",
    );
    refused(
        attach(endpoint_attach("pod", "a/b", &[])),
        "invalid interface name",
    );
    refused(
        attach(crate::api::EndpointAttach {
            aliases: vec!["no spaces".into()],
            ..endpoint_attach("pod", "eth0", &[])
        }),
        "invalid alias name",
    );
    refused(
        attach(endpoint_attach("web", "eth0", &[])),
        "taken by another container",
    );
    refused(
        attach(endpoint_attach("pod", "eth0", &["80:80/sctp"])),
        "sctp",
    );
    refused(
        |s, e| {
            s.attach_endpoint(
                &endpoint_attach("pod", "eth0", &["10.9.9.9:8080:80"]),
                9,
                &PublishContext::default(),
                e,
            )
            .map(|_| ())
        },
        "not an address of this host",
    );
    // Without an uplink, ports are published on the host's own addresses (the relay).
    let (mut s, mut e) = sample();
    s.attach_endpoint(
        &endpoint_attach("pod", "eth0", &["8080:80"]),
        9,
        &PublishContext::default(),
        &mut e,
    )
    .unwrap();
    refused(
        attach(crate::api::EndpointAttach {
            ip: Some("10.1.0.128".into()),
            ..endpoint_attach("pod", "eth0", &[])
        }),
        "10.1.0.128",
    );
    refused_after(
        attach(endpoint_attach("pod", "eth0", &["8080:80"])),
        attach(endpoint_attach("pod2", "eth0", &["8080:81"])),
        "already published by 'pod'",
    );
    refused(
        |s, _| s.detach_endpoint("web", "eth0").map(|_| ()),
        "use network disconnect",
    );
}

#[test]
fn given_ids_and_handed_off_endpoints() {
    let (mut s, mut e) = sample();
    let id = "5bbd9ce6b533930b85592b502f329610041abd00c32d3a07e95bad7a0499074d";
    let n = s
        .create_network(
            &NetworkCreate {
                id: Some(id.into()),
                ..net("5bbd9ce6b533", Some("10.77.0.0/24"))
            },
            &[],
            &mut e,
        )
        .unwrap();
    assert_eq!(n.id, id);
    assert_eq!(n.host_interface, "sy-5bbd9ce6b533");
    let c = s
        .create_container(
            &ContainerCreate {
                id: Some("c93b005b8bd6c7e4".into()),
                handoff: Some("sycc93b005b8bd6".into()),
                ..ctr("c93b005b8bd6", "5bbd9ce6b533", Some("10.77.0.2"))
            },
            &mut e,
        )
        .unwrap()
        .clone();
    assert_eq!(c.id, "c93b005b8bd6c7e4");
    assert_eq!(c.mode, NetworkMode::Handoff);
    assert!(!c.owns_netns());
    assert_eq!(c.endpoints[0].interface, "sycc93b005b8bd6");
    assert_eq!(
        c.endpoints[0].ip,
        "10.77.0.2".parse::<std::net::Ipv4Addr>().unwrap()
    );
    // A handed-off container cannot be connected elsewhere (its veth is someone else's).
    assert!(s.connect("front", "c93b005b8bd6", None, &mut e).is_err());

    let again = |id: &str| NetworkCreate {
        id: Some(id.into()),
        ..net("other", Some("10.78.0.0/24"))
    };
    let with_id = |s: &mut State, e: &mut Counter| s.create_network(&again(id), &[], e).map(drop);
    refused_after(
        with_id,
        |s, e| {
            s.create_network(
                &NetworkCreate {
                    id: Some(id.into()),
                    ..net("third", Some("10.79.0.0/24"))
                },
                &[],
                e,
            )
            .map(drop)
        },
        "already exists",
    );
    refused(
        |s, e| s.create_network(&again("XYZ"), &[], e).map(drop),
        "12 to 64 lowercase hex digits",
    );
    let handoff = |name: &str, ifname: &str| ContainerCreate {
        handoff: Some(ifname.into()),
        ..ctr(name, "front", None)
    };
    refused(
        |s, e| s.create_container(&handoff("x1", "bad/name"), e).map(drop),
        "invalid interface name",
    );
    refused(
        |s, e| {
            s.create_container(
                &handoff("x2", &s.networks["front"].host_interface.clone()),
                e,
            )
            .map(drop)
        },
        "already used by network 'front'",
    );
    let mut t = s.clone();
    t.create_container(&handoff("x3", "sycaaaa"), &mut e)
        .unwrap();
    let err = t
        .create_container(&handoff("x4", "sycaaaa"), &mut e)
        .unwrap_err();
    assert!(
        err.message.contains("already used by container 'x3'"),
        "{}",
        err.message
    );
    refused(
        |s, e| {
            s.create_container(
                &ContainerCreate {
                    handoff: Some("sycbbbb".into()),
                    ..ctr("x5", "none", None)
                },
                e,
            )
            .map(drop)
        },
        "needs a network",
    );
}

#[test]
fn aliases_are_shown_never_looked_up_and_go_with_their_object() {
    let (mut s, mut e) = sample();
    let web = s.containers["web"].id.clone();
    let front = s.networks["front"].id.clone();
    let set =
        |pairs: &[(&str, Option<&str>)]| -> std::collections::BTreeMap<String, Option<String>> {
            pairs
                .iter()
                .map(|(id, a)| (id.to_string(), a.map(String::from)))
                .collect()
        };
    s.set_aliases(&set(&[(&web, Some("frontend")), (&front, Some("mynet"))]))
        .unwrap();
    let ls = s.container_summaries();
    assert_eq!(ls.iter().find(|c| c.id == web).unwrap().name, "frontend");
    assert!(s.network_summaries().iter().any(|n| n.name == "mynet"));
    let topo = topology::topology(&s, None);
    assert!(topo
        .containers
        .iter()
        .any(|c| c.name == "frontend" && c.endpoints.iter().all(|e| e.network == "mynet")));
    assert!(s.container("frontend").is_err(), "never looked up");
    // Bad ones change nothing.
    let before = s.clone();
    assert!(s.set_aliases(&set(&[("nope", Some("x"))])).is_err());
    assert!(s.set_aliases(&set(&[(&web, Some("bad/name"))])).is_err());
    assert_eq!(s, before);
    // Cleared, and dropped with the container.
    s.set_aliases(&set(&[(&front, None)])).unwrap();
    assert!(!s.aliases.contains_key(&front));
    s.remove_containers(&["web".to_string()]).unwrap();
    s.create_container(&ctr("other", "front", None), &mut e)
        .unwrap();
    s.set_aliases(&set(&[])).unwrap();
    assert!(s.aliases.is_empty(), "{:?}", s.aliases);
}

#[test]
fn routed_networks_are_made_by_either_spelling_and_persisted() {
    let mut e = Counter(0);
    let mut s = State::initial(&[], &mut e).unwrap();
    for (name, opt) in [
        ("r1", "gateway_mode=routed"),
        ("r2", "com.docker.network.bridge.gateway_mode_ipv4=routed"),
        ("n1", "gateway_mode=nat"),
    ] {
        s.create_network(
            &NetworkCreate {
                options: vec![opt.into()],
                ..net(name, None)
            },
            &[],
            &mut e,
        )
        .unwrap();
    }
    assert!(s.network("r1").unwrap().routed && s.network("r2").unwrap().routed);
    assert!(!s.network("n1").unwrap().routed && !s.network("bridge").unwrap().routed);
    let inspect = s.network_inspect(s.network("r1").unwrap());
    assert_eq!(inspect.options[OPT_GATEWAY_MODE], "routed");
    let ls = s.network_summaries();
    let mode = |n: &str| ls.iter().find(|x| x.name == n).unwrap().mode.clone();
    assert_eq!((mode("r2"), mode("n1")), ("routed".into(), "nat".into()));
    let json = serde_json::to_string(&s).unwrap();
    let back: State = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s, "the mode survives the state file");
}

fn overlay(name: &str, opts: &[&str]) -> NetworkCreate {
    NetworkCreate {
        driver: Some("overlay".into()),
        options: opts.iter().map(|o| o.to_string()).collect(),
        ..net(name, None)
    }
}

#[test]
fn overlay_networks_get_a_vni_port_peers_and_the_overlay_mtu() {
    let (mut s, mut e) = sample();
    let a = s
        .create_network(&overlay("a", &["peers=10.0.0.2,10.0.0.3"]), &[], &mut e)
        .unwrap()
        .clone();
    let o = a.overlay.as_ref().unwrap();
    assert_eq!((o.vni, o.udp_port, a.mtu), (256, 4789, 1450));
    assert_eq!(o.peers.len(), 2);
    assert_eq!(a.driver(), "overlay");
    let b = s
        .create_network(&overlay("b", &["vxlan_port=8472", "mtu=1400"]), &[], &mut e)
        .unwrap();
    let o = b.overlay.as_ref().unwrap();
    assert_eq!((o.vni, o.udp_port, b.mtu), (257, 8472, 1400));
    let underlay = overlay::Underlay {
        ip: "10.0.0.1".parse().unwrap(),
        mtu: 1500,
    };
    assert!(a.check_underlay(Some(&underlay)).is_ok());
    assert!(a
        .check_underlay(None)
        .unwrap_err()
        .message
        .contains("--advertise-addr"));
    let small = overlay::Underlay {
        mtu: 1400,
        ..underlay
    };
    assert!(a
        .check_underlay(Some(&small))
        .unwrap_err()
        .message
        .contains("use --mtu 1350 or less"));
    let own = overlay::Underlay {
        ip: "10.0.0.2".parse().unwrap(),
        ..underlay
    };
    assert!(a.check_underlay(Some(&own)).is_err());
}

#[test]
fn bad_overlay_requests_change_nothing() {
    let create = |req: NetworkCreate| {
        move |s: &mut State, e: &mut Counter| s.create_network(&req, &[], e).map(|_| ())
    };
    refused(create(overlay("x", &["vni=0"])), "invalid vni '0'");
    refused(create(overlay("x", &["vni=16777216"])), "invalid vni");
    refused(
        create(overlay("x", &["vxlan_port=0"])),
        "invalid vxlan_port",
    );
    refused(create(overlay("x", &["peers=10.0.0.2,banana"])), "banana");
    refused(
        create(overlay("x", &["peers=10.0.0.2,10.0.0.2"])),
        "given twice",
    );
    refused(create(overlay("x", &["peers=224.0.0.1"])), "unicast");
    refused(
        create(NetworkCreate {
            options: vec!["vni=5".into()],
            ..net("x", None)
        }),
        "needs --driver overlay",
    );
    refused(
        create(NetworkCreate {
            driver: Some("macvlan".into()),
            ..net("x", None)
        }),
        "unknown network driver 'macvlan'",
    );
    refused(
        create(NetworkCreate {
            parent: Some("eth1".into()),
            ..overlay("x", &[])
        }),
        "--parent",
    );
    let taken = |s: &mut State, e: &mut Counter| {
        s.create_network(&overlay("y", &["vni=77"]), &[], e)?;
        s.create_network(&overlay("x", &["vni=77"]), &[], e)
            .map(|_| ())
    };
    let (mut s, mut e) = sample();
    let err = taken(&mut s, &mut e).unwrap_err();
    assert!(
        err.message.contains("VNI 77 is already network 'y''s"),
        "{}",
        err.message
    );
}
