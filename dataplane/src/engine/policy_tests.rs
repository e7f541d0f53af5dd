//! Policy through the whole pipeline, as data: anti-spoof, isolation and icc with link rules.
//!
//! Network 0 (172.17.0.0/16, icc=false): host port `h`, containers `web` (.2), `db` (.3), `cache`
//! (.4), and `router` (.9, allow-spoofing). A link web -> db exposes 5432/tcp. Network 1
//! (10.1.0.0/24): host port `h1`, container `other` (10.1.0.5). `multi` owns 10.1.0.9 on network 1
//! and is also attached to network 0.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::*;
use crate::port::{MemoryPort, MemoryPortHandle};
use crate::stage::DropReason;
use crate::table::{ContainerGuard, LinkPort, LinkRule, PortRole, Subnet};
use crate::VlanId;

const HOST_MAC: &str = "02:00:00:00:01:01";
const WEB: (&str, [u8; 4]) = ("02:00:00:00:00:02", [172, 17, 0, 2]);
const DB: (&str, [u8; 4]) = ("02:00:00:00:00:03", [172, 17, 0, 3]);
const CACHE: (&str, [u8; 4]) = ("02:00:00:00:00:04", [172, 17, 0, 4]);
const ROUTER: (&str, [u8; 4]) = ("02:00:00:00:00:09", [172, 17, 0, 9]);
const BCAST: &str = "ff:ff:ff:ff:ff:ff";

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn guard(c: (&str, [u8; 4]), allow_spoofing: bool) -> PortRole {
    PortRole::Container(ContainerGuard {
        mac: mac(c.0),
        ips: vec![Ipv4Addr::from(c.1)],
        allow_spoofing,
    })
}

enum L4 {
    Tcp(u16, u16),
    Udp(u16, u16),
    Icmp,
}

fn ipv4(dst_mac: &str, src_mac: &str, src: [u8; 4], dst: [u8; 4], l4: L4) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac).0, mac(dst_mac).0).ipv4(src, dst, 64);
    let payload = [0u8; 8];
    let mut out = Vec::new();
    match l4 {
        L4::Tcp(s, d) => b.tcp(s, d, 1, 1000).write(&mut out, &payload),
        L4::Udp(s, d) => b.udp(s, d).write(&mut out, &payload),
        L4::Icmp => b.icmpv4_echo_request(1, 1).write(&mut out, &payload),
    }
    .unwrap();
    out
}

fn arp(src_mac: &str, sender_mac: &str, sender_ip: [u8; 4], target_ip: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&mac(BCAST).0);
    f.extend_from_slice(&mac(src_mac).0);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac(sender_mac).0);
    f.extend_from_slice(&sender_ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target_ip);
    f.resize(60, 0);
    f
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    To(&'static [&'static str]),
    /// Dropped: `n` drops counted under the reason on the ingress port, delivered to `to`.
    Drops(DropReason, u64, &'static [&'static str]),
}
use Expect::*;

struct Rig {
    engine: Engine,
    ports: Vec<(&'static str, PortId, MemoryPortHandle)>,
}

impl Rig {
    fn new() -> Rig {
        let (mut engine, _) = Engine::new(EngineConfig::default()).unwrap();
        let layout: [(&str, u16, PortRole, Option<&str>); 8] = [
            ("h", 0, PortRole::Host, Some(HOST_MAC)),
            ("web", 0, guard(WEB, false), Some(WEB.0)),
            ("db", 0, guard(DB, false), Some(DB.0)),
            ("cache", 0, guard(CACHE, false), Some(CACHE.0)),
            ("router", 0, guard(ROUTER, true), Some(ROUTER.0)),
            (
                "multi",
                0,
                guard(("02:00:00:00:00:0a", [172, 17, 0, 10]), false),
                None,
            ),
            ("h1", 1, PortRole::Host, None),
            (
                "other",
                1,
                guard(("02:00:00:00:00:05", [10, 1, 0, 5]), false),
                None,
            ),
        ];
        let mut ports = Vec::new();
        for (name, domain, role, static_mac) in layout {
            let (port, handle) = MemoryPort::new(name, false);
            let id = engine
                .add_port_as(Box::new(port), DomainId(domain), role)
                .unwrap();
            if let Some(m) = static_mac {
                engine
                    .tables
                    .cam
                    .add_static(DomainId(domain), VlanId(0), mac(m), id)
                    .unwrap();
            }
            ports.push((name, id, handle));
        }
        let policy = &mut engine.tables.policy;
        policy.set_icc(DomainId(0), false);
        policy.set_links(web_db_link());
        let (web_multi, other_ip) = (Ipv4Addr::new(10, 1, 0, 9), Ipv4Addr::new(10, 1, 0, 5));
        policy.set_isolation(
            vec![
                Subnet {
                    domain: DomainId(0),
                    network: Ipv4Addr::new(172, 17, 0, 0),
                    prefix: 16,
                },
                Subnet {
                    domain: DomainId(1),
                    network: Ipv4Addr::new(10, 1, 0, 0),
                    prefix: 24,
                },
            ],
            [
                (web_multi, DomainId(0)),
                (web_multi, DomainId(1)),
                (other_ip, DomainId(1)),
            ]
            .into_iter()
            .collect(),
        );
        Rig { engine, ports }
    }

    fn port(&self, name: &str) -> &(&'static str, PortId, MemoryPortHandle) {
        self.ports.iter().find(|p| p.0 == name).unwrap()
    }

    fn dropped(&self, name: &str, reason: DropReason) -> u64 {
        let id = self.port(name).1;
        let snap = self.engine.snapshot();
        snap.ports
            .iter()
            .find(|p| p.id == id)
            .unwrap()
            .counters
            .dropped(reason)
    }

    fn send(&mut self, ctx: &str, on: &str, frame: &[u8], expect: Expect) {
        let (reason, n, want) = match expect {
            To(want) => (DropReason::Icc, 0, want),
            Drops(r, n, want) => (r, n, want),
        };
        let before = self.dropped(on, reason);
        self.port(on).2.inject(frame);
        self.engine.step();
        let mut got: Vec<&str> = self
            .ports
            .iter()
            .filter(|(_, _, h)| !h.take_sent().is_empty())
            .map(|(n, _, _)| *n)
            .collect();
        got.sort();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(got, want, "{ctx}: delivered to");
        assert_eq!(
            self.dropped(on, reason) - before,
            n,
            "{ctx}: {reason} drops"
        );
    }
}

fn web_db_link() -> HashSet<LinkRule> {
    let (web, db) = (Ipv4Addr::from(WEB.1), Ipv4Addr::from(DB.1));
    [
        LinkRule {
            src: web,
            dst: db,
            protocol: 6,
            port: LinkPort::Dst(5432),
        },
        LinkRule {
            src: db,
            dst: web,
            protocol: 6,
            port: LinkPort::Src(5432),
        },
    ]
    .into_iter()
    .collect()
}

#[test]
fn icc_false_allows_only_links_arp_and_the_host() {
    let mut rig = Rig::new();
    let cases: &[(&str, &str, Vec<u8>, Expect)] = &[
        (
            "link: web -> db:5432",
            "web",
            ipv4(DB.0, WEB.0, WEB.1, DB.1, L4::Tcp(40000, 5432)),
            To(&["db"]),
        ),
        (
            "link reply: db:5432 -> web",
            "db",
            ipv4(WEB.0, DB.0, DB.1, WEB.1, L4::Tcp(5432, 40000)),
            To(&["web"]),
        ),
        (
            "not exposed: web -> db:80",
            "web",
            ipv4(DB.0, WEB.0, WEB.1, DB.1, L4::Tcp(40000, 80)),
            Drops(DropReason::Icc, 1, &[]),
        ),
        (
            "wrong protocol: udp 5432",
            "web",
            ipv4(DB.0, WEB.0, WEB.1, DB.1, L4::Udp(40000, 5432)),
            Drops(DropReason::Icc, 1, &[]),
        ),
        (
            "ping between containers",
            "web",
            ipv4(DB.0, WEB.0, WEB.1, DB.1, L4::Icmp),
            Drops(DropReason::Icc, 1, &[]),
        ),
        (
            "links are one-way: db -> web:5432",
            "db",
            ipv4(WEB.0, DB.0, DB.1, WEB.1, L4::Tcp(40000, 5432)),
            Drops(DropReason::Icc, 1, &[]),
        ),
        (
            "no link: cache -> db:5432",
            "cache",
            ipv4(DB.0, CACHE.0, CACHE.1, DB.1, L4::Tcp(40000, 5432)),
            Drops(DropReason::Icc, 1, &[]),
        ),
        (
            "to the host",
            "cache",
            ipv4(HOST_MAC, CACHE.0, CACHE.1, [172, 17, 0, 1], L4::Icmp),
            To(&["h"]),
        ),
        (
            "from the host",
            "h",
            ipv4(CACHE.0, HOST_MAC, [172, 17, 0, 1], CACHE.1, L4::Icmp),
            To(&["cache"]),
        ),
        (
            "ARP floods everywhere",
            "web",
            arp(WEB.0, WEB.0, WEB.1, DB.1),
            To(&["h", "db", "cache", "router", "multi"]),
        ),
        (
            "IPv4 broadcast reaches only the host",
            "web",
            ipv4(BCAST, WEB.0, WEB.1, [172, 17, 255, 255], L4::Udp(68, 67)),
            Drops(DropReason::Icc, 4, &["h"]),
        ),
    ];
    for (ctx, on, frame, expect) in cases {
        rig.send(ctx, on, frame, *expect);
    }
    // A removed link closes established flows at once: the very next packet is dropped.
    rig.engine.tables.policy.set_links(HashSet::new());
    rig.send(
        "link removed",
        "web",
        &ipv4(DB.0, WEB.0, WEB.1, DB.1, L4::Tcp(40000, 5432)),
        Drops(DropReason::Icc, 1, &[]),
    );
    rig.send(
        "reply after removal",
        "db",
        &ipv4(WEB.0, DB.0, DB.1, WEB.1, L4::Tcp(5432, 40000)),
        Drops(DropReason::Icc, 1, &[]),
    );
    // icc=true opens everything.
    rig.engine.tables.policy.set_icc(DomainId(0), true);
    rig.send(
        "icc=true",
        "cache",
        &ipv4(DB.0, CACHE.0, CACHE.1, DB.1, L4::Icmp),
        To(&["db"]),
    );
}

#[test]
fn containers_send_only_from_their_own_mac_and_addresses() {
    let mut rig = Rig::new();
    let x = "02:00:00:00:00:77";
    let cases: &[(&str, &str, Vec<u8>, Expect)] = &[
        (
            "own MAC and address",
            "web",
            ipv4(HOST_MAC, WEB.0, WEB.1, [172, 17, 0, 1], L4::Icmp),
            To(&["h"]),
        ),
        (
            "foreign source MAC",
            "web",
            ipv4(HOST_MAC, x, WEB.1, [172, 17, 0, 1], L4::Icmp),
            Drops(DropReason::SpoofMac, 1, &[]),
        ),
        (
            "a neighbour's MAC",
            "web",
            ipv4(HOST_MAC, DB.0, WEB.1, [172, 17, 0, 1], L4::Icmp),
            Drops(DropReason::SpoofMac, 1, &[]),
        ),
        (
            "foreign source address",
            "web",
            ipv4(HOST_MAC, WEB.0, DB.1, [172, 17, 0, 1], L4::Icmp),
            Drops(DropReason::SpoofIp, 1, &[]),
        ),
        (
            "ARP claiming db's address",
            "web",
            arp(WEB.0, WEB.0, DB.1, [172, 17, 0, 1]),
            Drops(DropReason::SpoofIp, 1, &[]),
        ),
        (
            "ARP with another sender MAC",
            "web",
            arp(WEB.0, x, WEB.1, [172, 17, 0, 1]),
            Drops(DropReason::SpoofMac, 1, &[]),
        ),
        (
            "ARP probe (sender 0.0.0.0)",
            "web",
            arp(WEB.0, WEB.0, [0, 0, 0, 0], WEB.1),
            To(&["h", "db", "cache", "router", "multi"]),
        ),
        (
            "allow-spoofing",
            "router",
            ipv4(HOST_MAC, x, [8, 8, 8, 8], [172, 17, 0, 1], L4::Icmp),
            To(&["h"]),
        ),
        (
            "the host port is not checked",
            "h",
            ipv4(WEB.0, HOST_MAC, [1, 1, 1, 1], WEB.1, L4::Icmp),
            To(&["web"]),
        ),
    ];
    for (ctx, on, frame, expect) in cases {
        rig.send(ctx, on, frame, *expect);
    }
}

/// Frames no container should send are dropped at once and counted under their reason, before
/// anything learns, tracks or translates them: malformed IPv4 even from an allow-spoofing
/// container (which NAT would otherwise translate), 802.1Q-tagged frames from ordinary ones.
#[test]
fn malformed_and_tagged_frames_from_containers_are_dropped_and_counted() {
    let mut rig = Rig::new();
    let good = ipv4(
        HOST_MAC,
        ROUTER.0,
        ROUTER.1,
        [8, 8, 8, 8],
        L4::Udp(1000, 53),
    );
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut f = good.clone();
        edit(&mut f);
        f
    };
    let total_len = |f: &mut Vec<u8>, len: u16| f[16..18].copy_from_slice(&len.to_be_bytes());
    let mut tagged = ipv4(BCAST, WEB.0, WEB.1, [172, 17, 0, 1], L4::Udp(1000, 53));
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    let cases: &[(&str, &str, Vec<u8>, Expect)] = &[
        ("well formed", "router", good.clone(), To(&["h"])),
        (
            "Ethernet padding after the packet",
            "router",
            with(&|f| f.resize(f.len() + 20, 0)),
            To(&["h"]),
        ),
        (
            "total length past the frame",
            "router",
            with(&|f| total_len(f, 0xffff)),
            Drops(DropReason::BadIpLength, 1, &[]),
        ),
        (
            "total length shorter than the header",
            "router",
            with(&|f| total_len(f, 12)),
            Drops(DropReason::BadIpLength, 1, &[]),
        ),
        (
            "header length 16",
            "router",
            with(&|f| f[14] = 0x44),
            Drops(DropReason::BadIpHeader, 1, &[]),
        ),
        (
            "header length past the frame",
            "router",
            with(&|f| f[14] = 0x4f),
            Drops(DropReason::BadIpHeader, 1, &[]),
        ),
        (
            "version 6 behind the IPv4 EtherType",
            "router",
            with(&|f| f[14] = 0x65),
            Drops(DropReason::BadIpHeader, 1, &[]),
        ),
        (
            "cut inside the header",
            "router",
            with(&|f| f.truncate(14 + 19)),
            Drops(DropReason::BadIpHeader, 1, &[]),
        ),
        (
            "tagged from an ordinary container",
            "web",
            tagged.clone(),
            Drops(DropReason::Tagged, 1, &[]),
        ),
    ];
    for (ctx, on, frame, expect) in cases {
        rig.send(ctx, on, frame, *expect);
    }
    // Nothing was learned for VLAN 5.
    let learned = rig.engine.snapshot().macs;
    assert!(learned.iter().all(|m| m.vlan == VlanId(0)), "{learned:?}");
}

#[test]
fn routed_traffic_from_another_network_is_dropped_at_the_host_port() {
    let mut rig = Rig::new();
    let gw_mac = HOST_MAC;
    let cases: &[(&str, &str, Vec<u8>, Expect)] = &[
        (
            "from network 1 into network 0",
            "h",
            ipv4(WEB.0, gw_mac, [10, 1, 0, 5], WEB.1, L4::Icmp),
            Drops(DropReason::Isolation, 1, &[]),
        ),
        (
            "from beyond the host",
            "h",
            ipv4(WEB.0, gw_mac, [192, 0, 2, 7], WEB.1, L4::Icmp),
            To(&["web"]),
        ),
        (
            "from the host itself",
            "h",
            ipv4(WEB.0, gw_mac, [172, 17, 0, 1], WEB.1, L4::Icmp),
            To(&["web"]),
        ),
        (
            "source attached to both networks",
            "h",
            ipv4(WEB.0, gw_mac, [10, 1, 0, 9], WEB.1, L4::Icmp),
            To(&["web"]),
        ),
        (
            "destination attached to the source's network",
            "h",
            ipv4(DB.0, gw_mac, [10, 1, 0, 5], [10, 1, 0, 9], L4::Icmp),
            To(&["db"]),
        ),
        (
            "container ports are not isolation points",
            "web",
            ipv4(HOST_MAC, WEB.0, WEB.1, [10, 1, 0, 5], L4::Icmp),
            To(&["h"]),
        ),
    ];
    for (ctx, on, frame, expect) in cases {
        rig.send(ctx, on, frame, *expect);
    }
}

#[test]
fn a_removed_port_loses_its_role() {
    let mut rig = Rig::new();
    let id = rig.port("web").1;
    rig.engine.remove_port(id).unwrap();
    assert_eq!(rig.engine.tables.policy.role(id), &PortRole::Plain);
}
