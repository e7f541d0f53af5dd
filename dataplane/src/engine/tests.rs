//! Pipeline tests through in-memory ports, written as data: frames in, expected decisions out.
//!
//! Each case is a list of steps; a step injects one frame on a port and states where it must come
//! out (the exact set of ports) or which drop counter it must bump. `check` runs any case.

use super::*;
use crate::port::{MemoryPort, MemoryPortHandle};
use crate::stage::DropReason;
use crate::wire::vnet::{self, VnetHeader};

const A: &str = "02:00:00:00:00:0a";
const B: &str = "02:00:00:00:00:0b";
const C: &str = "02:00:00:00:00:0c";
const X: &str = "02:00:00:00:00:99";
const BCAST: &str = "ff:ff:ff:ff:ff:ff";
const MCAST: &str = "01:00:5e:00:00:01";

/// A frame: destination, source, optional VLAN, EtherType; padded to 60 bytes.
fn frame(dst: &str, src: &str, vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(dst.parse::<MacAddr>().unwrap().as_bytes());
    f.extend_from_slice(src.parse::<MacAddr>().unwrap().as_bytes());
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.resize(60, 0);
    f
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Delivered unchanged to exactly these ports.
    To(&'static [&'static str]),
    /// Dropped, counted under this reason on the ingress port.
    Dropped(DropReason),
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Send {
        on: &'static str,
        dst: &'static str,
        src: &'static str,
        vlan: Option<u16>,
        expect: Expect,
    },
    /// Move the engine clock forward.
    Wait(u64),
    /// Pin a MAC to a port.
    Static {
        mac: &'static str,
        port: &'static str,
    },
    /// Detach a port.
    Remove(&'static str),
}

use Expect::*;

fn send(on: &'static str, dst: &'static str, src: &'static str, expect: Expect) -> Step {
    Step::Send {
        on,
        dst,
        src,
        vlan: None,
        expect,
    }
}

/// A frame a port sent, with its offload header.
type Sent = (VnetHeader, Vec<u8>);

struct Rig {
    engine: Engine,
    ports: Vec<(&'static str, PortId, MemoryPortHandle)>,
}

impl Rig {
    /// Ports named by (name, domain); all in-memory without vnet headers unless `vnet` lists them.
    fn new(ports: &[(&'static str, u16)], vnet: &[&str], cam: CamConfig) -> Rig {
        let (mut engine, _handle) = Engine::new(EngineConfig {
            cam,
            ..EngineConfig::default()
        })
        .unwrap();
        let ports = ports
            .iter()
            .map(|&(name, domain)| {
                let (port, handle) = MemoryPort::new(name, vnet.contains(&name));
                let id = engine.add_port(Box::new(port), DomainId(domain)).unwrap();
                (name, id, handle)
            })
            .collect();
        Rig { engine, ports }
    }

    fn port(&self, name: &str) -> &(&'static str, PortId, MemoryPortHandle) {
        self.ports
            .iter()
            .find(|p| p.0 == name)
            .unwrap_or_else(|| panic!("no port {name}"))
    }

    fn counters(&self, name: &str) -> PortCounters {
        let id = self.port(name).1;
        self.engine
            .snapshot()
            .ports
            .into_iter()
            .find(|p| p.id == id)
            .unwrap()
            .counters
    }

    /// Frames each port sent since the last call, by port name.
    fn collect(&self) -> Vec<(&'static str, Vec<Sent>)> {
        self.ports
            .iter()
            .map(|(n, _, h)| (*n, h.take_sent()))
            .filter(|(_, f)| !f.is_empty())
            .collect()
    }
}

fn check(name: &str, ports: &[(&'static str, u16)], steps: &[Step]) {
    let mut rig = Rig::new(ports, &[], CamConfig::default());
    for (n, step) in steps.iter().enumerate() {
        let ctx = format!("case '{name}', step {n}: {step:?}");
        match *step {
            Step::Send {
                on,
                dst,
                src,
                vlan,
                expect,
            } => {
                let f = frame(dst, src, vlan, 0x0800);
                let before = rig.counters(on);
                rig.port(on).2.inject(&f);
                assert_eq!(rig.engine.step(), 1, "{ctx}");
                let out = rig.collect();
                match expect {
                    To(want) => {
                        let mut got: Vec<&str> = out.iter().map(|(n, _)| *n).collect();
                        got.sort();
                        let mut want = want.to_vec();
                        want.sort();
                        assert_eq!(got, want, "{ctx}");
                        for (_, frames) in &out {
                            assert_eq!(frames.len(), 1, "{ctx}: one copy per port");
                            assert_eq!(frames[0].1, f, "{ctx}: frame must be unchanged");
                        }
                    }
                    Dropped(reason) => {
                        assert!(
                            out.is_empty(),
                            "{ctx}: expected a drop, frame went to {:?}",
                            out.iter().map(|o| o.0).collect::<Vec<_>>()
                        );
                        let after = rig.counters(on);
                        assert_eq!(
                            after.dropped(reason),
                            before.dropped(reason) + 1,
                            "{ctx}: drop counter {reason}"
                        );
                    }
                }
            }
            Step::Wait(ms) => {
                rig.engine.advance_clock(ms);
                rig.engine.step();
            }
            Step::Static { mac, port } => {
                let id = rig.port(port).1;
                rig.engine
                    .tables
                    .cam
                    .add_static(DomainId(0), VlanId(0), mac.parse().unwrap(), id)
                    .unwrap();
            }
            Step::Remove(port) => {
                let id = rig.port(port).1;
                rig.engine.remove_port(id).unwrap();
                rig.ports.retain(|p| p.0 != port);
            }
        }
    }
}

use crate::VlanId;

const THREE: &[(&str, u16)] = &[("a", 0), ("b", 0), ("c", 0)];

#[test]
fn broadcast_floods_to_every_other_port_never_back() {
    check(
        "broadcast",
        THREE,
        &[
            send("a", BCAST, A, To(&["b", "c"])),
            send("c", BCAST, C, To(&["a", "b"])),
        ],
    );
}

#[test]
fn multicast_floods() {
    check("multicast", THREE, &[send("b", MCAST, B, To(&["a", "c"]))]);
}

#[test]
fn unknown_unicast_floods_then_learned_unicast_goes_to_one_port() {
    check(
        "learning",
        THREE,
        &[
            send("a", B, A, To(&["b", "c"])), // B unknown yet: flood
            send("b", A, B, To(&["a"])),      // A learned from the first frame
            send("a", B, A, To(&["b"])),      // B learned from the reply
            send("c", A, C, To(&["a"])),
        ],
    );
}

#[test]
fn arp_request_flooded_reply_unicast() {
    // ARP is switched by MAC like anything else: a broadcast request, a unicast reply.
    check(
        "arp",
        THREE,
        &[
            send("a", BCAST, A, To(&["b", "c"])),
            send("c", A, C, To(&["a"])),
        ],
    );
}

#[test]
fn invalid_sources_are_dropped() {
    check(
        "sources",
        THREE,
        &[
            send("a", B, MCAST, Dropped(DropReason::SrcMulticast)),
            send("a", B, BCAST, Dropped(DropReason::SrcMulticast)),
            send("a", B, "00:00:00:00:00:00", Dropped(DropReason::SrcZero)),
        ],
    );
}

#[test]
fn destination_on_ingress_port_is_dropped() {
    check(
        "same-port",
        THREE,
        &[
            send("a", BCAST, X, To(&["b", "c"])),
            send("a", X, A, Dropped(DropReason::SamePort)),
        ],
    );
}

#[test]
fn mac_moves_to_the_port_it_is_seen_on() {
    check(
        "move",
        THREE,
        &[
            send("a", BCAST, X, To(&["b", "c"])),
            send("b", X, B, To(&["a"])),
            send("c", BCAST, X, To(&["a", "b"])), // X moved from a to c
            send("b", X, B, To(&["c"])),
        ],
    );
}

#[test]
fn vlans_learn_separately() {
    check(
        "vlan",
        THREE,
        &[
            Step::Send {
                on: "a",
                dst: BCAST,
                src: X,
                vlan: Some(10),
                expect: To(&["b", "c"]),
            },
            Step::Send {
                on: "b",
                dst: X,
                src: B,
                vlan: Some(10),
                expect: To(&["a"]),
            },
            // X is unknown on VLAN 20 and untagged: flood.
            Step::Send {
                on: "b",
                dst: X,
                src: B,
                vlan: Some(20),
                expect: To(&["a", "c"]),
            },
            send("b", X, B, To(&["a", "c"])),
        ],
    );
}

#[test]
fn bridge_domains_never_exchange_frames() {
    let ports = &[("a1", 1), ("b1", 1), ("a2", 2), ("b2", 2)];
    check(
        "domains",
        ports,
        &[
            send("a1", BCAST, A, To(&["b1"])),
            send("a2", BCAST, B, To(&["b2"])),
            // A is learned in domain 1 only: from domain 2 it is unknown.
            send("b2", A, C, To(&["a2"])),
        ],
    );
}

#[test]
fn lonely_port_counts_no_egress() {
    check(
        "alone",
        &[("a", 0), ("b", 1)],
        &[send("a", BCAST, A, Dropped(DropReason::NoEgress))],
    );
}

#[test]
fn entries_age_out() {
    check(
        "aging",
        THREE,
        &[
            send("a", BCAST, A, To(&["b", "c"])),
            Step::Wait(200_000),
            send("b", A, B, To(&["a"])),
            Step::Wait(301_000), // A silent for 501 s > 300 s default
            send("b", A, B, To(&["a", "c"])),
        ],
    );
}

#[test]
fn static_entries_pin_a_mac() {
    check(
        "static",
        THREE,
        &[
            Step::Static { mac: X, port: "c" },
            send("a", X, A, To(&["c"])),
            send("b", BCAST, X, Dropped(DropReason::StaticConflict)),
            Step::Wait(1_000_000),
            send("a", X, A, To(&["c"])), // never aged
        ],
    );
}

#[test]
fn removed_port_is_forgotten() {
    check(
        "remove",
        THREE,
        &[
            send("a", BCAST, A, To(&["b", "c"])),
            Step::Remove("a"),
            send("b", A, B, To(&["c"])),
            send("c", BCAST, C, To(&["b"])),
        ],
    );
}

#[test]
fn runts_and_cut_tags_are_counted() {
    let mut rig = Rig::new(THREE, &[], CamConfig::default());
    rig.port("a").2.inject(&[0xff; 10]);
    let mut cut = vec![0xff; 12];
    cut.extend_from_slice(&[0x81, 0x00, 0x00]);
    rig.port("a").2.inject(&cut);
    assert_eq!(rig.engine.step(), 2);
    assert!(rig.collect().is_empty());
    let c = rig.counters("a");
    assert_eq!(
        (
            c.dropped(DropReason::Runt),
            c.dropped(DropReason::BadVlan),
            c.rx_packets
        ),
        (1, 1, 2)
    );
}

#[test]
fn counters_count_packets_and_bytes() {
    let mut rig = Rig::new(THREE, &[], CamConfig::default());
    let f = frame(BCAST, A, None, 0x0806);
    for _ in 0..40 {
        rig.port("a").2.inject(&f); // more than one batch
    }
    while rig.engine.step() > 0 {}
    let (a, b) = (rig.counters("a"), rig.counters("b"));
    assert_eq!((a.rx_packets, a.rx_bytes), (40, 40 * 60));
    assert_eq!((b.tx_packets, b.tx_bytes), (40, 40 * 60));
    assert_eq!(rig.port("c").2.take_sent().len(), 40);
}

#[test]
fn mac_flood_from_one_port_does_not_evict_the_others() {
    let cam = CamConfig {
        max_entries: 64,
        max_per_port: 64,
        ..CamConfig::default()
    };
    let mut rig = Rig::new(THREE, &[], cam);
    rig.port("b").2.inject(&frame(BCAST, B, None, 0x0800));
    rig.port("c").2.inject(&frame(BCAST, C, None, 0x0800));
    rig.engine.step();
    for i in 0..1000u32 {
        let b = i.to_be_bytes();
        let src = MacAddr([0x02, 0x11, b[0], b[1], b[2], b[3]]).to_string();
        let f = frame(BCAST, Box::leak(src.into_boxed_str()), None, 0x0800);
        rig.port("a").2.inject(&f);
    }
    while rig.engine.step() > 0 {}
    rig.collect();
    let snap = rig.engine.snapshot();
    assert!(snap.macs.len() <= 64);
    let b_id = rig.port("b").1;
    assert!(
        snap.macs
            .iter()
            .any(|m| m.mac == B.parse().unwrap() && m.port == b_id),
        "b's MAC survived the flood"
    );
    // And it still forwards as known unicast.
    rig.port("a")
        .2
        .inject(&frame(B, "02:11:00:00:03:e7", None, 0x0800));
    rig.engine.step();
    let out = rig.collect();
    assert_eq!(out.iter().map(|o| o.0).collect::<Vec<_>>(), vec!["b"]);
}

/// An IPv4/TCP frame from a to b, with `payload` bytes, in Linux's checksum-partial form.
fn tcp_frame(payload: usize) -> (Vec<u8>, VnetHeader) {
    let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1000, 64000)
        .ack(1)
        .psh();
    let data: Vec<u8> = (0..payload).map(|i| i as u8).collect();
    let mut f = Vec::new();
    builder.write(&mut f, &data).unwrap();
    // Replace the full checksum by the folded pseudo-header sum, as the kernel leaves it.
    let l4_len = (20 + payload) as u32;
    let pseudo = crate::wire::checksum::fold(crate::wire::checksum::pseudo_header_v4(
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        6,
        l4_len,
    ));
    f[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&pseudo.to_be_bytes());
    let hdr = VnetHeader {
        flags: vnet::flags::NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..VnetHeader::default()
    };
    (f, hdr)
}

#[test]
fn offloaded_frames_pass_whole_to_vnet_ports_and_are_finished_for_the_others() {
    let ports = &[("veth", 0), ("vnet", 0), ("plain", 0)];
    let mut rig = Rig::new(ports, &["veth", "vnet"], CamConfig::default());
    // GSO super-frame of 3000 bytes in 1000-byte segments, flooded (b unknown).
    let (f, mut hdr) = tcp_frame(3000);
    hdr.gso_type = vnet::gso::TCPV4;
    hdr.gso_size = 1000;
    hdr.hdr_len = 54;
    rig.port("veth").2.inject_with(hdr, &f);
    rig.engine.step();
    let out = rig.collect();
    let to = |n: &str| {
        out.iter()
            .find(|o| o.0 == n)
            .map(|o| o.1.clone())
            .unwrap_or_default()
    };
    let vnet_out = to("vnet");
    assert_eq!(vnet_out.len(), 1, "a vnet port takes the super-frame whole");
    assert_eq!(vnet_out[0], (hdr, f.clone()));
    let plain = to("plain");
    assert_eq!(plain.len(), 3, "segmented into three frames");
    let mut payload = Vec::new();
    for (h, seg) in &plain {
        assert_eq!(*h, VnetHeader::default());
        let p = etherparse::SlicedPacket::from_ethernet(seg).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("ipv4")
        };
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("tcp")
        };
        let want = tcp
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
            .unwrap();
        assert_eq!(tcp.checksum(), want, "segment checksum complete");
        payload.extend_from_slice(tcp.payload());
    }
    assert_eq!(payload, (0..3000).map(|i| i as u8).collect::<Vec<_>>());
    assert_eq!(rig.counters("plain").tx_segmented, 1);

    // A checksum-partial (non-GSO) frame is finished in place for the plain port.
    let (f, hdr) = tcp_frame(100);
    rig.port("veth").2.inject_with(hdr, &f);
    rig.engine.step();
    let out = rig.collect();
    let plain = &out.iter().find(|o| o.0 == "plain").unwrap().1;
    let p = etherparse::SlicedPacket::from_ethernet(&plain[0].1).unwrap();
    let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(tcp))) =
        (p.net, p.transport)
    else {
        panic!()
    };
    assert_eq!(
        tcp.checksum(),
        tcp.to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
            .unwrap()
    );
    assert_eq!(rig.counters("plain").tx_csum_finished, 1);
}

#[test]
fn commands_through_the_handle_apply_between_batches() {
    let (engine, handle) = Engine::new(EngineConfig::default()).unwrap();
    let thread = std::thread::spawn(move || engine.run());
    let (pa, _ha) = MemoryPort::new("a", false);
    let (pb, _hb) = MemoryPort::new("b", false);
    let a = handle.add_port(Box::new(pa), DomainId(0)).unwrap();
    let b = handle.add_port(Box::new(pb), DomainId(0)).unwrap();
    assert_ne!(a, b);
    handle
        .add_static_mac(DomainId(0), VlanId(0), X.parse().unwrap(), b)
        .unwrap();
    assert!(handle
        .add_static_mac(DomainId(0), VlanId(0), A.parse().unwrap(), PortId(77))
        .is_err());
    handle.set_aging(10_000).unwrap();
    let snap = handle.snapshot().unwrap();
    assert_eq!(snap.ports.len(), 2);
    assert_eq!(snap.aging_ms, 10_000);
    assert_eq!(snap.macs.len(), 1);
    assert!(snap.macs[0].is_static);
    handle.remove_port(b).unwrap();
    assert!(handle.remove_port(b).is_err());
    assert!(
        handle.snapshot().unwrap().macs.is_empty(),
        "removing a port removes its entries"
    );
    handle.shutdown().unwrap();
    thread.join().unwrap();
}

/// Ten thousand MACs and as many connections due at once: each round of the loop removes at most
/// `AGING_BUDGET` of each, the loop keeps aging round after round without waiting for the next
/// tick, and in the end everything due is gone.
#[test]
fn aging_is_bounded_per_round_and_finishes() {
    use crate::table::conntrack::{Hop, NatKind, Tuple};
    const N: usize = 10_000;
    let config = EngineConfig {
        cam: CamConfig {
            max_entries: 2 * N,
            max_per_port: 2 * N,
            ..CamConfig::default()
        },
        ..EngineConfig::default()
    };
    let (mut engine, _handle) = Engine::new(config).unwrap();
    let mut ports = Vec::new();
    for name in ["a", "b"] {
        let (p, h) = MemoryPort::new(name, false);
        ports.push((engine.add_port(Box::new(p), DomainId(0)).unwrap(), h));
    }
    let a = ports[0].0;
    let mut learned = 0;
    while learned < N {
        let n = (N - learned).min(crate::port::BATCH);
        for k in 0..n {
            let i = (learned + k) as u64;
            let src = MacAddr::from_bytes(&(0x0200_0000_0000 | i).to_be_bytes()[2..]);
            let f = frame(BCAST, &src.to_string(), None, 0x88b5);
            engine.rx_batch_mut().fill(k, VnetHeader::default(), &f);
        }
        engine.process_received(a, DomainId(0), n);
        learned += n;
    }
    let hop = Hop {
        port: a,
        src_mac: MacAddr::BROADCAST,
        dst_mac: MacAddr::BROADCAST,
    };
    let now = engine.now_ms();
    for i in 0..N as u32 {
        let original = Tuple {
            proto: crate::wire::ipv4::protocol::UDP,
            src: std::net::Ipv4Addr::from(0x0a00_0000 + i),
            sport: 1000,
            dst: std::net::Ipv4Addr::new(192, 0, 2, 1),
            dport: 53,
        };
        let inside = original.src;
        engine
            .tables
            .conntrack
            .insert(
                original,
                original.reversed(),
                NatKind::Masquerade,
                hop,
                hop,
                None,
                inside,
                None,
                60,
                now,
            )
            .unwrap();
    }
    assert_eq!(engine.tables.cam.len(), N);
    assert_eq!(engine.tables.conntrack.len(), N);
    // Past both timeouts (MACs 300 s, unanswered UDP 30 s) and the aging tick.
    engine.advance_clock(301_000);
    let mut rounds = 0;
    let (mut macs, mut flows) = (N, N);
    while macs > 0 || flows > 0 {
        engine.step();
        rounds += 1;
        let (m, f) = (engine.tables.cam.len(), engine.tables.conntrack.len());
        assert!(
            macs - m <= AGING_BUDGET,
            "round {rounds}: {} MACs aged",
            macs - m
        );
        assert!(
            flows - f <= AGING_BUDGET,
            "round {rounds}: {} flows",
            flows - f
        );
        assert!(m < macs || m == 0, "round {rounds}: MAC aging goes on");
        assert!(f < flows || f == 0, "round {rounds}: expiry goes on");
        (macs, flows) = (m, f);
        assert!(
            rounds <= N / AGING_BUDGET + 1,
            "still aging after {rounds} rounds"
        );
    }
    assert_eq!(rounds, N.div_ceil(AGING_BUDGET));
    assert!(
        !engine.aging_behind,
        "nothing left: the loop may sleep again"
    );
}

/// A held engine (`EngineHandle::set_forwarding(false)`, as the daemon holds it while it restores
/// its state) applies commands but reads no port: frames wait in the port and go on once it
/// forwards again.
#[test]
fn a_held_engine_reads_no_port_until_it_forwards_again() {
    let mut rig = Rig::new(&[("a", 0), ("b", 0)], &[], CamConfig::default());
    let forward = |rig: &mut Rig, on: bool| {
        let (reply, answer) = crossbeam_channel::bounded(1);
        rig.engine.apply(Command::SetForwarding { on, reply });
        answer.recv().unwrap().unwrap();
    };
    forward(&mut rig, false);
    rig.port("a").2.inject(&frame(BCAST, A, None, 0x0800));
    assert_eq!(rig.engine.step(), 0, "held: nothing read");
    assert!(rig.collect().is_empty());
    forward(&mut rig, true);
    assert_eq!(rig.engine.step(), 1, "the frame waited");
    let sent = rig.collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "b");
}
