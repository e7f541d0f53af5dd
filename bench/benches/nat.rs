//! Forwarding through NAT with up to a million tracked connections (issue 17 item 4): the NAT
//! equivalent of `pipeline`'s `mac_table/known_unicast_spread_*`.
//!
//! One engine per size, programmed through its command API as the daemon programs it (an uplink
//! port and its address, one network whose container `web` publishes TCP 8080 -> 80, the
//! container's static MAC, its anti-spoof guard and the isolation policy); the router's MAC is
//! learned from an ARP reply on the uplink, as the engine learns it. Then `N` TCP connections are
//! opened through the pipeline, each by a real three-way handshake: half from the world to the
//! published port (DNAT), half from `web` to the world (masquerade), each to or from its own
//! remote address. The connection table is sized for `N` (`--max-conntrack`; the default 65,536
//! when that is more).
//!
//! Timed: 8,192 different batches of 32 ACK segments in turn, alternately from the uplink and
//! from `web`, each frame of a connection drawn at random among the `N` and travelling in the
//! direction that arrives on that port (from the uplink: a DNAT connection's original direction, a
//! masqueraded one's reply; from `web` the other two), each batch copied into the receive area
//! first. Per frame = batch time / 32. `_no_prefetch` and `_prefetch` are the same without and
//! with the engine's prefetch pass forced (`Engine::set_prefetch`), the plain name as the engine
//! chooses. Before timing, one batch from each port is checked frame by frame: every frame left
//! translated (addresses, ports, MACs, valid checksums), and no frame was dropped; after timing,
//! still no drops and no connection created or lost. So what is timed is translation, not drops.
//!
//! The bench uses only the engine's public API, so it measures whatever the connection table's
//! internals are (`cargo bench -p bench --bench nat`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Instant;

use dataplane::wire::arp::{operation, ArpPacket, ArpRepr};
use dataplane::wire::ethernet::{ethertype, EthernetFrame};
use dataplane::wire::ipv4::Ipv4Packet;
use dataplane::wire::tcp::{flags, TcpPacket};
use dataplane::wire::vnet::VnetHeader;
use dataplane::{ContainerGuard, CtConfig, NetworkNat, Publish, Subnet, Uplink};
use dataplane::{DomainId, MacAddr, PortId, VlanId};
use dataplane::{Engine, EngineConfig, EngineHandle, NatUpdate, PolicyUpdate, PortRole};
use dataplane::{SinkPort, BATCH};

const UP_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x10]);
const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x99]);
/// The network's gateway MAC (the host port's, in the daemon).
const GW_MAC: MacAddr = MacAddr([2, 0x42, 0, 0, 0, 1]);
const WEB_MAC: MacAddr = MacAddr([2, 0x42, 0xac, 0x11, 0, 2]);
const UPLINK_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const WEB_IP: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 2);
const HOST_PORT: u16 = 8080;
const WEB_PORT: u16 = 80;
const REMOTE_PORT: u16 = 443;
/// The uplink's bridge domain, as the daemon's (`UPLINK_DOMAIN`).
const UPLINK_DOMAIN: DomainId = DomainId(4095);
const NET: DomainId = DomainId(0);
const FRAME_LEN: usize = 60;

/// A TCP segment as it travels on a wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: u8,
}

impl Segment {
    /// The 60-byte frame, checksums filled.
    fn frame(&self) -> [u8; FRAME_LEN] {
        let mut f = [0u8; FRAME_LEN];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(self.dst_mac);
        eth.set_src_addr(self.src_mac);
        eth.set_ethertype(ethertype::IPV4);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..54]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len(40);
        ip.set_dont_frag(true);
        ip.set_ttl(64);
        ip.set_protocol(6);
        ip.set_src_addr(self.src);
        ip.set_dst_addr(self.dst);
        ip.fill_checksum();
        let mut tcp = TcpPacket::new_unchecked(&mut f[34..54]);
        tcp.set_src_port(self.sport);
        tcp.set_dst_port(self.dport);
        tcp.set_seq_number(1);
        tcp.set_ack_number(1);
        tcp.set_header_len(20);
        tcp.set_flags(self.flags);
        tcp.set_window_len(65535);
        tcp.fill_checksum_v4(self.src, self.dst);
        f
    }

    /// The segment a frame holds, if both checksums are right.
    fn parse(frame: &[u8]) -> Option<Segment> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        let ip = Ipv4Packet::new_checked(&frame[14..]).ok()?;
        let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
        (eth.ethertype() == ethertype::IPV4
            && ip.verify_checksum()
            && tcp.verify_checksum_v4(ip.src_addr(), ip.dst_addr()))
        .then(|| Segment {
            dst_mac: eth.dst_addr(),
            src_mac: eth.src_addr(),
            src: ip.src_addr(),
            sport: tcp.src_port(),
            dst: ip.dst_addr(),
            dport: tcp.dst_port(),
            flags: tcp.flags(),
        })
    }
}

/// Connection `i`: even ones are a client of the world to the published port (DNAT), odd ones
/// `web`'s to the world (masquerade); each has its own remote address (10.0.0.0 + i).
#[derive(Clone, Copy)]
struct Conn(u32);

impl Conn {
    fn published(self) -> bool {
        self.0.is_multiple_of(2)
    }

    fn remote(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + self.0)
    }

    /// The remote client's port (DNAT) or `web`'s own (masquerade, kept by the translation as
    /// no other flow to that remote address holds it).
    fn port(self) -> u16 {
        if self.published() {
            1024 + (self.0 % 60_000) as u16
        } else {
            32_768 + (self.0 % 28_000) as u16
        }
    }

    /// A segment arriving from the uplink (`true`) or from `web`, and what it must leave as.
    fn segment(self, from_uplink: bool, flags: u8) -> (Segment, Segment) {
        let (remote, port) = (self.remote(), self.port());
        let world = |src, sport, dst, dport| Segment {
            dst_mac: UP_MAC,
            src_mac: ROUTER_MAC,
            src,
            sport,
            dst,
            dport,
            flags,
        };
        let inside = |src, sport, dst, dport| Segment {
            dst_mac: GW_MAC,
            src_mac: WEB_MAC,
            src,
            sport,
            dst,
            dport,
            flags,
        };
        let to_web = |s: Segment| Segment {
            dst_mac: WEB_MAC,
            src_mac: GW_MAC,
            ..s
        };
        let to_world = |s: Segment| Segment {
            dst_mac: ROUTER_MAC,
            src_mac: UP_MAC,
            ..s
        };
        match (self.published(), from_uplink) {
            (true, true) => (
                world(remote, port, UPLINK_IP, HOST_PORT),
                to_web(world(remote, port, WEB_IP, WEB_PORT)),
            ),
            (true, false) => (
                inside(WEB_IP, WEB_PORT, remote, port),
                to_world(inside(UPLINK_IP, HOST_PORT, remote, port)),
            ),
            (false, false) => (
                inside(WEB_IP, port, remote, REMOTE_PORT),
                to_world(inside(UPLINK_IP, port, remote, REMOTE_PORT)),
            ),
            (false, true) => (
                world(remote, REMOTE_PORT, UPLINK_IP, port),
                to_web(world(remote, REMOTE_PORT, WEB_IP, port)),
            ),
        }
    }
}

/// An engine programmed as the daemon programs it, with its two ports.
struct Rig {
    engine: Engine,
    /// Kept so the engine's command channel stays open.
    _handle: EngineHandle,
    up: PortId,
    web: PortId,
}

impl Rig {
    fn new(max_conntrack: usize) -> Rig {
        let config = EngineConfig {
            conntrack: CtConfig {
                max_entries: max_conntrack.max(CtConfig::default().max_entries),
                ..CtConfig::default()
            },
            ..EngineConfig::default()
        };
        let (mut engine, handle) = Engine::new(config).unwrap();
        let (up, web) = program(&mut engine, &handle, |h| {
            let up = h
                .add_port_as(
                    Box::new(SinkPort::new("up", true)),
                    UPLINK_DOMAIN,
                    PortRole::Uplink,
                )
                .unwrap();
            h.set_nat(NatUpdate::Uplink(Some(Uplink {
                port: up,
                mac: UP_MAC,
                ip: UPLINK_IP,
                prefix: 24,
                gateway: Some(ROUTER_IP),
            })))
            .unwrap();
            let guard = ContainerGuard {
                mac: WEB_MAC,
                ips: vec![WEB_IP],
                allow_spoofing: false,
            };
            let web = h
                .add_port_as(
                    Box::new(SinkPort::new("web", true)),
                    NET,
                    PortRole::Container(guard),
                )
                .unwrap();
            h.add_static_mac(NET, VlanId(0), WEB_MAC, web).unwrap();
            let subnet = Subnet {
                domain: NET,
                network: Ipv4Addr::new(172, 17, 0, 0),
                prefix: 16,
            };
            h.set_policy(PolicyUpdate::Isolation {
                subnets: vec![subnet],
                attached: HashSet::from([(WEB_IP, NET)]),
            })
            .unwrap();
            h.set_nat(NatUpdate::Networks(vec![NetworkNat {
                domain: NET,
                subnet,
                gateway_ip: Ipv4Addr::new(172, 17, 0, 1),
                gateway_mac: GW_MAC,
                external: true,
                routed: false,
            }]))
            .unwrap();
            h.set_nat(NatUpdate::Publish(vec![Publish {
                id: 1,
                protocol: 6,
                host_port: HOST_PORT,
                target: WEB_IP,
                target_port: WEB_PORT,
                target_mac: WEB_MAC,
                domain: NET,
            }]))
            .unwrap();
            (up, web)
        });
        let mut rig = Rig {
            engine,
            _handle: handle,
            up,
            web,
        };
        // The router answers the engine's ARP for it (masqueraded flows leave through it).
        let mut arp = [0u8; FRAME_LEN];
        let mut eth = EthernetFrame::new_unchecked(&mut arp[..]);
        eth.set_dst_addr(UP_MAC);
        eth.set_src_addr(ROUTER_MAC);
        eth.set_ethertype(ethertype::ARP);
        ArpRepr {
            operation: operation::REPLY,
            sender_mac: ROUTER_MAC,
            sender_ip: ROUTER_IP,
            target_mac: UP_MAC,
            target_ip: UPLINK_IP,
        }
        .emit(&mut ArpPacket::new_unchecked(&mut arp[14..]));
        rig.send(true, &[arp]);
        rig
    }

    fn port(&self, from_uplink: bool) -> (PortId, DomainId) {
        if from_uplink {
            (self.up, UPLINK_DOMAIN)
        } else {
            (self.web, NET)
        }
    }

    /// Frames received on the uplink (`true`) or `web`, 32 at a time.
    fn send(&mut self, from_uplink: bool, frames: &[[u8; FRAME_LEN]]) {
        let (port, domain) = self.port(from_uplink);
        for batch in frames.chunks(BATCH) {
            for (k, f) in batch.iter().enumerate() {
                self.engine.rx_batch_mut().fill(k, VnetHeader::default(), f);
            }
            self.engine.process_received(port, domain, batch.len());
        }
    }

    /// Opens connections `0..n` with a three-way handshake each (SYNs, then SYN-ACKs, then ACKs,
    /// each from the side that sends it); returns how long the SYNs took.
    fn open(&mut self, n: u32) -> std::time::Duration {
        let mut took = std::time::Duration::ZERO;
        for (step, flags) in [flags::SYN, flags::SYN | flags::ACK, flags::ACK]
            .into_iter()
            .enumerate()
        {
            // The SYN and the ACK come from the connection's originator, the SYN-ACK from the
            // other side.
            let start = Instant::now();
            for from_uplink in [true, false] {
                let frames: Vec<[u8; FRAME_LEN]> = (0..n)
                    .map(Conn)
                    .filter(|c| c.published() == (from_uplink ^ (step == 1)))
                    .map(|c| c.segment(from_uplink, flags).0.frame())
                    .collect();
                self.send(from_uplink, &frames);
            }
            if step == 0 {
                took = start.elapsed();
            }
        }
        took
    }

    /// Connections tracked, frames dropped (every reason, both ports) and frames sent by each port.
    fn tally(&self) -> (usize, u64, [u64; 2]) {
        let s = self.engine.snapshot();
        let port = |id: PortId| s.ports.iter().find(|p| p.id == id).unwrap();
        let drops = s.ports.iter().map(|p| p.counters.total_drops()).sum();
        let sent = [
            port(self.up).counters.tx_packets,
            port(self.web).counters.tx_packets,
        ];
        (s.conntrack.entries, drops, sent)
    }
}

/// Runs `f` (calls on the engine's handle, which wait for the engine's answer) on a thread of its
/// own while this one steps the engine, which applies each command between its rounds.
fn program<T: Send>(
    engine: &mut Engine,
    handle: &EngineHandle,
    f: impl FnOnce(&EngineHandle) -> T + Send,
) -> T {
    std::thread::scope(|s| {
        let job = s.spawn(|| f(handle));
        while !job.is_finished() {
            engine.step();
            std::thread::yield_now();
        }
        job.join().unwrap()
    })
}

fn tracked_connections(c: &mut Criterion) {
    const SPREAD: usize = 8192;
    let mut g = c.benchmark_group("nat");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in [1024u32, 16_384, 131_072, 1 << 20] {
        let mut rig = Rig::new(n as usize);
        let took = rig.open(n);
        let (entries, drops, sent) = rig.tally();
        assert_eq!(
            (entries, drops),
            (n as usize, 0),
            "every handshake went through"
        );
        println!(
            "nat: {n} connections opened through the pipeline; their SYNs took {:.2} s ({:.2} M \
             new connections/s)",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64() / 1e6
        );
        // Batch b comes from the uplink when b is even, from `web` when odd.
        let mut x = 0x9e37_79b9u32;
        let mut expected = Vec::with_capacity(SPREAD * BATCH);
        let frames: Vec<[u8; FRAME_LEN]> = (0..SPREAD * BATCH)
            .map(|i| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let from_uplink = (i / BATCH).is_multiple_of(2);
                let (arrives, leaves) = Conn((x >> 1) % n).segment(from_uplink, flags::ACK);
                expected.push(leaves);
                arrives.frame()
            })
            .collect();
        // The check: one batch from each port leaves whole and translated (the engine rewrites
        // in place, so the receive area holds what was sent).
        for b in 0..2 {
            let batch = &frames[b * BATCH..(b + 1) * BATCH];
            rig.send(b == 0, batch);
            for (k, want) in expected[b * BATCH..(b + 1) * BATCH].iter().enumerate() {
                let got = Segment::parse(rig.engine.rx_batch_mut().frame(k));
                assert_eq!(got, Some(*want), "frame {k} of batch {b} translated");
            }
        }
        let (_, drops, after) = rig.tally();
        assert_eq!(drops, 0);
        assert_eq!([after[0] - sent[0], after[1] - sent[1]], [32, 32]);
        let mut at = 0usize;
        for prefetch in [Some(false), Some(true), None] {
            rig.engine.set_prefetch(prefetch);
            let name = match prefetch {
                Some(false) => "_no_prefetch",
                Some(true) => "_prefetch",
                None => "",
            };
            g.bench_function(format!("tracked_spread_{n}_conns_batch32{name}"), |b| {
                b.iter(|| {
                    let (port, domain) = rig.port(at.is_multiple_of(2));
                    for (k, f) in frames[at * BATCH..(at + 1) * BATCH].iter().enumerate() {
                        rig.engine.rx_batch_mut().fill(k, VnetHeader::default(), f);
                    }
                    at = (at + 1) % SPREAD;
                    rig.engine.process_received(port, domain, BATCH)
                })
            });
        }
        let (entries, drops, _) = rig.tally();
        assert_eq!(
            (entries, drops),
            (n as usize, 0),
            "timed frames were all translated"
        );
    }
    g.finish();
}

criterion_group!(benches, tracked_connections);
criterion_main!(benches);
