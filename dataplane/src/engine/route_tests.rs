//! Routed networks through the pipeline, as data: frames in on in-memory ports, and for each the
//! port it leaves by with the fields a router changes (MACs, TTL, the header checksum) and the
//! fields it must keep (addresses, ports), or the drop counter it bumps.
//!
//! The rig: an uplink 192.0.2.10/24 (gateway 192.0.2.1, whose MAC is known), a routed network
//! 172.17.0.0/16 (domain 0) with `web` 172.17.0.2 publishing 8080 -> 80, and a NAT network
//! 10.1.0.0/24 (domain 1) with `nat1` 10.1.0.2.

use std::net::Ipv4Addr;

use super::*;
use crate::port::{MemoryPort, MemoryPortHandle};
use crate::stage::nat::Answer;
use crate::stage::{DropReason, Step};
use crate::table::{ContainerGuard, NetworkNat, PortRole, Publish, Subnet, Uplink};
use crate::wire::ipv4::protocol;
use crate::VlanId;

const UP_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x10]);
const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x99]);
const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x01]);
const GW1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x01]);
const WEB_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x02]);
const NAT1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x02]);
const UPLINK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const GW: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 1);
const WEB: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 2);
const NAT1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
/// A container on another host, behind the router.
const FAR: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 5);

struct Rig {
    engine: Engine,
    ports: Vec<(&'static str, PortId, MemoryPortHandle)>,
}

impl Rig {
    fn new() -> Rig {
        let (mut engine, _) = Engine::new(EngineConfig::default()).unwrap();
        let mut ports = Vec::new();
        let (up, h) = MemoryPort::new("up", false);
        let up = engine
            .add_port_as(Box::new(up), DomainId(9), PortRole::Uplink)
            .unwrap();
        ports.push(("up", up, h));
        for (name, domain, mac, ip) in [("web", 0, WEB_MAC, WEB), ("nat1", 1, NAT1_MAC, NAT1)] {
            let (p, h) = MemoryPort::new(name, false);
            let guard = ContainerGuard {
                mac,
                ips: vec![ip],
                allow_spoofing: false,
            };
            let id = engine
                .add_port_as(Box::new(p), DomainId(domain), PortRole::Container(guard))
                .unwrap();
            engine
                .tables
                .cam
                .add_static(DomainId(domain), VlanId(0), mac, id)
                .unwrap();
            ports.push((name, id, h));
        }
        engine.tables.nat.set_uplink(Some(Uplink {
            port: up,
            mac: UP_MAC,
            ip: UPLINK,
            prefix: 24,
            gateway: Some(ROUTER),
        }));
        engine.tables.nat.learn_neighbor(ROUTER, ROUTER_MAC);
        let net = |domain, network, gateway_ip, gateway_mac, routed| NetworkNat {
            domain: DomainId(domain),
            subnet: Subnet {
                domain: DomainId(domain),
                network,
                prefix: if routed { 16 } else { 24 },
            },
            gateway_ip,
            gateway_mac,
            external: true,
            routed,
        };
        engine.tables.nat.set_networks(&[
            net(0, Ipv4Addr::new(172, 17, 0, 0), GW, GW_MAC, true),
            net(
                1,
                Ipv4Addr::new(10, 1, 0, 0),
                Ipv4Addr::new(10, 1, 0, 1),
                GW1_MAC,
                false,
            ),
        ]);
        engine.tables.nat.set_publish(&[Publish {
            id: 1,
            protocol: protocol::TCP,
            host_port: 8080,
            target: WEB,
            target_port: 80,
            target_mac: WEB_MAC,
            domain: DomainId(0),
        }]);
        Rig { engine, ports }
    }

    fn port(&self, name: &str) -> &(&'static str, PortId, MemoryPortHandle) {
        self.ports.iter().find(|p| p.0 == name).unwrap()
    }

    /// Injects `frame` on `on`, runs one round; returns where frames left (port name and bytes).
    fn send(&mut self, on: &str, frame: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        self.port(on).2.inject(frame);
        self.engine.step();
        let mut out = Vec::new();
        for (name, _, h) in &self.ports {
            for (_, f) in h.take_sent() {
                out.push((*name, f));
            }
        }
        out
    }

    fn dropped(&self, on: &str, reason: DropReason) -> u64 {
        let id = self.port(on).1;
        self.engine.ports[id.0 as usize]
            .as_ref()
            .unwrap()
            .counters
            .dropped(reason)
    }
}

/// A frame from `src_mac` to `dst_mac`: IPv4 `src` -> `dst` with `ttl`, carrying `l4`.
fn packet(
    (src_mac, dst_mac): (MacAddr, MacAddr),
    (src, dst): (Ipv4Addr, Ipv4Addr),
    ttl: u8,
    l4: L4,
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(src_mac.0, dst_mac.0).ipv4(
        src.octets(),
        dst.octets(),
        ttl,
    );
    let mut f = Vec::new();
    match l4 {
        L4::Syn(sport, dport) => b.tcp(sport, dport, 1, 1000).syn().write(&mut f, &[]),
        L4::Udp(sport, dport) => b.udp(sport, dport).write(&mut f, b"datagram"),
        L4::Ping => b.icmpv4_echo_request(7, 1).write(&mut f, b"ping"),
        // GRE: a protocol NAT does not translate, which a router routes all the same.
        L4::Gre => b.write(&mut f, etherparse::IpNumber(47), &[0, 0, 0x08, 0]),
    }
    .unwrap();
    f
}

#[derive(Clone, Copy, Debug)]
enum L4 {
    Syn(u16, u16),
    Udp(u16, u16),
    Ping,
    Gre,
}

/// What a routed frame must look like: MACs, addresses, TTL, a valid header checksum, and the
/// transport header (ports, checksum) as it was sent.
fn assert_routed(sent: &[u8], got: &[u8], (src_mac, dst_mac): (MacAddr, MacAddr), ctx: &str) {
    let s = etherparse::SlicedPacket::from_ethernet(sent).unwrap();
    let g = etherparse::SlicedPacket::from_ethernet(got).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &g.link else {
        panic!("{ctx}: not Ethernet")
    };
    assert_eq!(
        (eth.source(), eth.destination()),
        (src_mac.0, dst_mac.0),
        "{ctx}: MACs"
    );
    let (Some(etherparse::NetSlice::Ipv4(si)), Some(etherparse::NetSlice::Ipv4(gi))) =
        (&s.net, &g.net)
    else {
        panic!("{ctx}: not IPv4")
    };
    let (sh, gh) = (si.header().to_header(), gi.header().to_header());
    assert_eq!(
        (gh.source, gh.destination),
        (sh.source, sh.destination),
        "{ctx}: a routed packet keeps its addresses"
    );
    assert_eq!(gh.time_to_live, sh.time_to_live - 1, "{ctx}: TTL one less");
    assert_eq!(
        gh.header_checksum,
        gh.calc_header_checksum(),
        "{ctx}: header checksum"
    );
    assert_eq!(
        gi.payload().payload,
        si.payload().payload,
        "{ctx}: L4 untouched"
    );
}

/// The ICMP error `got` carries: (source address, destination, type, code).
fn icmp_error(got: &[u8]) -> (Ipv4Addr, Ipv4Addr, u8, u8) {
    let g = etherparse::SlicedPacket::from_ethernet(got).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &g.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    let Some(etherparse::TransportSlice::Icmpv4(icmp)) = &g.transport else {
        panic!("not ICMP")
    };
    assert_eq!(
        icmp.checksum(),
        icmp.header().icmp_type.calc_checksum(icmp.payload())
    );
    let b = icmp.slice();
    (h.source.into(), h.destination.into(), b[0], b[1])
}

/// (case, ingress, frame, egress, the MACs it must leave with)
type RoutedCase = (
    &'static str,
    &'static str,
    Vec<u8>,
    &'static str,
    (MacAddr, MacAddr),
);

/// (case, ingress, frame, (ICMP source, type, code))
type AnsweredCase = (&'static str, &'static str, Vec<u8>, (Ipv4Addr, u8, u8));

#[test]
fn routed_networks_route_both_ways_without_translation() {
    let mut rig = Rig::new();
    let from_router = (ROUTER_MAC, UP_MAC);
    let from_web = (WEB_MAC, GW_MAC);
    let cases: &[RoutedCase] = &[
        (
            "a TCP SYN from another host's container to web's own address",
            "up",
            packet(from_router, (FAR, WEB), 63, L4::Syn(40000, 80)),
            "web",
            (GW_MAC, WEB_MAC),
        ),
        (
            "UDP to a port nothing publishes is routed too (the container answers for itself)",
            "up",
            packet(from_router, (FAR, WEB), 64, L4::Udp(5353, 9999)),
            "web",
            (GW_MAC, WEB_MAC),
        ),
        (
            "ping from beyond",
            "up",
            packet(from_router, (FAR, WEB), 64, L4::Ping),
            "web",
            (GW_MAC, WEB_MAC),
        ),
        (
            "another protocol (GRE) inbound",
            "up",
            packet(from_router, (FAR, WEB), 64, L4::Gre),
            "web",
            (GW_MAC, WEB_MAC),
        ),
        (
            "web's reply leaves by the uplink with web's own address, to the next hop",
            "web",
            packet(from_web, (WEB, FAR), 64, L4::Syn(80, 40000)),
            "up",
            (UP_MAC, ROUTER_MAC),
        ),
        (
            "web's ping to the world",
            "web",
            packet(
                from_web,
                (WEB, Ipv4Addr::new(198, 51, 100, 7)),
                64,
                L4::Ping,
            ),
            "up",
            (UP_MAC, ROUTER_MAC),
        ),
        (
            "another protocol (GRE) outbound",
            "web",
            packet(from_web, (WEB, FAR), 2, L4::Gre),
            "up",
            (UP_MAC, ROUTER_MAC),
        ),
    ];
    for (case, on, frame, egress, macs) in cases {
        let out = rig.send(on, frame);
        assert_eq!(out.len(), 1, "{case}: one frame out, got {out:?}");
        assert_eq!(out[0].0, *egress, "{case}");
        assert_routed(frame, &out[0].1, *macs, case);
    }
    assert!(
        rig.engine.tables.conntrack.is_empty(),
        "routing tracks no connection"
    );
}

#[test]
fn a_router_answers_what_it_cannot_route() {
    let mut rig = Rig::new();
    let from_router = (ROUTER_MAC, UP_MAC);
    let from_web = (WEB_MAC, GW_MAC);
    let cases: &[AnsweredCase] = &[
        (
            "inbound with TTL 1: time exceeded from the uplink address",
            "up",
            packet(from_router, (FAR, WEB), 1, L4::Syn(40000, 80)),
            (UPLINK, 11, 0),
        ),
        (
            "outbound with TTL 1: time exceeded from the network's gateway",
            "web",
            packet(from_web, (WEB, FAR), 1, L4::Udp(33434, 33434)),
            (GW, 11, 0),
        ),
        (
            "an address of the routed subnet that no container holds: host unreachable",
            "up",
            packet(
                from_router,
                (FAR, Ipv4Addr::new(172, 17, 0, 99)),
                64,
                L4::Ping,
            ),
            (UPLINK, 3, 1),
        ),
    ];
    for (case, on, frame, (from, icmp_type, code)) in cases {
        let out = rig.send(on, frame);
        assert_eq!(out.len(), 1, "{case}: one answer, got {out:?}");
        assert_eq!(out[0].0, *on, "{case}: back where it came from");
        let sender = if *on == "up" { FAR } else { WEB };
        assert_eq!(
            icmp_error(&out[0].1),
            (*from, sender, *icmp_type, *code),
            "{case}"
        );
    }
    // The routed network's gateway answers ping from beyond, as a router's interface does.
    let out = rig.send("up", &packet(from_router, (FAR, GW), 64, L4::Ping));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].0, "up");
    assert_eq!(
        &out[0].1[14 + 12..14 + 16],
        &GW.octets(),
        "the reply is from the gateway"
    );
    assert_eq!(out[0].1[14 + 20], 0, "an echo reply");
    // An ICMP error is never answered with one (RFC 1812): it is dropped and counted.
    let mut error = packet(from_router, (FAR, WEB), 1, L4::Ping);
    error[14 + 20] = 3; // destination unreachable (its checksum is nobody's business here)
    let before = rig.dropped("up", DropReason::TtlExceeded);
    assert!(rig.send("up", &error).is_empty());
    assert_eq!(rig.dropped("up", DropReason::TtlExceeded), before + 1);
}

#[test]
fn nat_networks_and_published_ports_are_unchanged_beside_a_routed_one() {
    let mut rig = Rig::new();
    let from_router = (ROUTER_MAC, UP_MAC);
    // Beyond the uplink, a NAT network's addresses are not reachable.
    let before = rig.dropped("up", DropReason::NotLocal);
    let out = rig.send(
        "up",
        &packet(from_router, (FAR, NAT1), 64, L4::Syn(40000, 80)),
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(rig.dropped("up", DropReason::NotLocal), before + 1);

    // A NAT network's container is still masqueraded.
    let out = rig.send(
        "nat1",
        &packet((NAT1_MAC, GW1_MAC), (NAT1, FAR), 64, L4::Syn(41000, 80)),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "up");
    assert_eq!(&out[0].1[14 + 12..14 + 16], &UPLINK.octets(), "masqueraded");

    // A routed container's published port is DNATed, and its reply translated back (connection
    // tracking comes before routing).
    let client = Ipv4Addr::new(192, 0, 2, 77);
    let out = rig.send(
        "up",
        &packet(from_router, (client, UPLINK), 64, L4::Syn(45000, 8080)),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "web");
    assert_eq!(&out[0].1[14 + 16..14 + 20], &WEB.octets(), "DNATed");
    let out = rig.send(
        "web",
        &packet((WEB_MAC, GW_MAC), (WEB, client), 64, L4::Syn(80, 45000)),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "up");
    assert_eq!(
        &out[0].1[14 + 12..14 + 16],
        &UPLINK.octets(),
        "the reply of a published port comes from the uplink address"
    );
}

#[test]
fn a_what_if_trace_shows_the_routing_step() {
    let rig = Rig::new();
    let mut engine = rig.engine;
    let (up, web) = (rig.ports[0].1, rig.ports[1].1);
    let r = engine
        .trace_packet(
            up,
            &packet((ROUTER_MAC, UP_MAC), (FAR, WEB), 64, L4::Syn(40000, 80)),
        )
        .unwrap();
    assert_eq!(
        r.steps()[1..],
        [
            Step::Routed {
                src: FAR,
                dst: WEB,
                next_hop: WEB,
                mac: WEB_MAC,
                ttl: 63,
            },
            Step::Egress { port: web },
        ]
    );
    let r = engine
        .trace_packet(web, &packet((WEB_MAC, GW_MAC), (WEB, FAR), 9, L4::Ping))
        .unwrap();
    assert_eq!(
        r.steps()[2..],
        [
            Step::Routed {
                src: WEB,
                dst: FAR,
                next_hop: ROUTER,
                mac: ROUTER_MAC,
                ttl: 8,
            },
            Step::Egress { port: up },
        ]
    );
    let r = engine
        .trace_packet(up, &packet((ROUTER_MAC, UP_MAC), (FAR, WEB), 1, L4::Ping))
        .unwrap();
    assert_eq!(
        r.steps()[1..],
        [
            Step::Answered(Answer::TimeExceeded { from: UPLINK }),
            Step::Egress { port: up },
        ]
    );
    assert!(engine.tables.conntrack.is_empty());
}

#[test]
fn an_unknown_next_hop_is_asked_for_and_the_packet_dropped() {
    let mut rig = Rig::new();
    // On-link destination whose MAC nobody told us.
    let neighbour = Ipv4Addr::new(192, 0, 2, 20);
    let out = rig.send(
        "web",
        &packet((WEB_MAC, GW_MAC), (WEB, neighbour), 64, L4::Ping),
    );
    assert_eq!(rig.dropped("web", DropReason::NoNeighbor), 1);
    // The ARP request goes out of the uplink after the batch.
    assert!(
        out.iter()
            .any(|(port, f)| *port == "up" && f[12..14] == [0x08, 0x06]),
        "an ARP request on the uplink: {out:?}"
    );
}
