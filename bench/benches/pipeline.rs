//! Per-packet cost of the pipeline (ingress, l2-learn, l2-fwd, flood, egress) on batches of 32
//! 60-byte frames, with discard ports so the port itself costs nothing. Criterion reports time per
//! batch; with `Throughput::Elements(32)` it also shows frames per second. Per-packet cost is the batch
//! time divided by 32 (bench/RESULTS.md records both).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::net::Ipv4Addr;

use dataplane::wire::vnet::VnetHeader;
use dataplane::{CamConfig, Engine, EngineConfig, PolicyUpdate};
use dataplane::{ContainerGuard, LinkPort, LinkRule, PortRole};
use dataplane::{DomainId, MacAddr, PortId};
use dataplane::{SinkPort, BATCH};
use dataplane::{TraceArm, TraceTarget};

mod common;
use common::{frame, mac};

/// An engine with `ports` discard ports in one domain and `table` MACs learned, spread over them.
fn engine(ports: usize, table: u32) -> Engine {
    let (mut engine, _handle) = Engine::new(EngineConfig::default()).unwrap();
    for p in 0..ports {
        engine
            .add_port(Box::new(SinkPort::new(&format!("p{p}"), true)), DomainId(0))
            .unwrap();
    }
    // Teach the table: one frame from each MAC, on port i % ports.
    for i in 0..table {
        let f = frame(MacAddr::BROADCAST, mac(i));
        engine.rx_batch_mut().fill(0, VnetHeader::default(), &f);
        engine.process_received(PortId((i as usize % ports) as u16), DomainId(0), 1);
    }
    engine
}

fn known_unicast(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BATCH as u64));
    // 1024 learned MACs; port 0 sends to MACs living on port 1 (learn refresh + lookup + forward).
    let mut e = engine(2, 1024);
    for i in 0..BATCH {
        let f = frame(mac(2 * i as u32 + 1), mac(2 * i as u32));
        e.rx_batch_mut().fill(i, VnetHeader::default(), &f);
    }
    g.bench_function("known_unicast_batch32", |b| {
        b.iter(|| e.process_received(PortId(0), DomainId(0), BATCH))
    });

    // Broadcast from port 0 to the 8 others.
    let mut e = engine(9, 64);
    for i in 0..BATCH {
        let f = frame(MacAddr::BROADCAST, mac(i as u32 * 9));
        e.rx_batch_mut().fill(i, VnetHeader::default(), &f);
    }
    g.bench_function("flood_to_8_ports_batch32", |b| {
        b.iter(|| e.process_received(PortId(0), DomainId(0), BATCH))
    });

    // Every frame from a new source MAC into a full table (learn with eviction every time).
    let mut e = engine(2, 8192);
    let mut next = 1_000_000u32;
    g.bench_function("learn_new_mac_full_table_batch32", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                let src = mac(next);
                next = next.wrapping_add(1);
                e.rx_batch_mut()
                    .fill(i, VnetHeader::default(), &frame(mac(1), src));
            }
            e.process_received(PortId(0), DomainId(0), BATCH)
        })
    });
    g.finish();
}

/// A TCP segment between two containers, hand-built (Ethernet, IPv4 without options, TCP).
fn tcp_frame(dst: MacAddr, src: MacAddr, ip_src: [u8; 4], ip_dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(dst.as_bytes());
    f.extend_from_slice(src.as_bytes());
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&ip_src);
    f.extend_from_slice(&ip_dst);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    f.resize(60, 0);
    f
}

/// The policy path at its busiest: container to container on an icc=false network, every frame
/// checked by anti-spoof and allowed by a link rule (two hash lookups), against the same traffic
/// between ports without policy.
fn policy(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(BATCH as u64));
    let (web, db) = (mac(1), mac(2));
    let (web_ip, db_ip) = ([172, 17, 0, 2], [172, 17, 0, 3]);
    for closed in [false, true] {
        let (mut e, _) = Engine::new(EngineConfig::default()).unwrap();
        let role = |m: MacAddr, ip: [u8; 4]| {
            if closed {
                PortRole::Container(ContainerGuard {
                    mac: m,
                    ips: vec![Ipv4Addr::from(ip)],
                    allow_spoofing: false,
                })
            } else {
                PortRole::Plain
            }
        };
        for (m, ip) in [(web, web_ip), (db, db_ip)] {
            let id = e
                .add_port_as(Box::new(SinkPort::new("c", true)), DomainId(0), role(m, ip))
                .unwrap();
            e.rx_batch_mut()
                .fill(0, VnetHeader::default(), &frame(MacAddr::BROADCAST, m));
            e.process_received(id, DomainId(0), 1);
        }
        if closed {
            e.set_policy(PolicyUpdate::Icc {
                domain: DomainId(0),
                icc: false,
            })
            .unwrap();
            let rule = |src: [u8; 4], dst: [u8; 4], port| LinkRule {
                src: Ipv4Addr::from(src),
                dst: Ipv4Addr::from(dst),
                protocol: 6,
                port,
            };
            let links = [
                rule(web_ip, db_ip, LinkPort::Dst(5432)),
                rule(db_ip, web_ip, LinkPort::Src(5432)),
            ];
            e.set_policy(PolicyUpdate::Links(links.into_iter().collect()))
                .unwrap();
        }
        for i in 0..BATCH {
            let f = tcp_frame(db, web, web_ip, db_ip, 5432);
            e.rx_batch_mut().fill(i, VnetHeader::default(), &f);
        }
        let name = if closed {
            "icc_false_link_allowed_batch32"
        } else {
            "no_policy_same_traffic_batch32"
        };
        g.bench_function(name, |b| {
            b.iter(|| e.process_received(PortId(0), DomainId(0), BATCH))
        });
    }
    g.finish();
}

/// Tracing disarmed must cost nothing: the known-unicast batch with no trace at all, with a trace
/// armed on another port (the batch is checked once and runs the untraced code), and traced.
fn tracing(c: &mut Criterion) {
    let mut g = c.benchmark_group("trace");
    g.throughput(Throughput::Elements(BATCH as u64));
    for mode in ["off", "armed_elsewhere", "off_again", "on"] {
        let mut e = engine(3, 1024);
        for i in 0..BATCH {
            let f = frame(mac(3 * i as u32 + 1), mac(3 * i as u32));
            e.rx_batch_mut().fill(i, VnetHeader::default(), &f);
        }
        let target = match mode {
            "off" | "off_again" => None,
            "armed_elsewhere" => Some(PortId(2)),
            _ => Some(PortId(0)),
        };
        if let Some(port) = target {
            e.trace_arm_local(TraceArm {
                target: TraceTarget::Port(port),
                remaining: u32::MAX,
                filter: None,
            });
        }
        g.bench_function(format!("known_unicast_trace_{mode}_batch32"), |b| {
            b.iter(|| e.process_received(PortId(0), DomainId(0), BATCH))
        });
    }
    g.finish();
}

/// The daemon's resident memory in KiB (Linux), for bytes per table entry.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A MAC table of a million entries (issue 17): what learning them costs (printed: rate and
/// resident bytes per entry), and forwarding with them learned, against the same traffic over
/// 1024 entries. `known_unicast_same_32_*` sends one batch of 32 frames (32 random destinations)
/// again and again, so after the first run its lookups hit the caches; `known_unicast_spread_*`
/// sends 8,192 different batches in turn, every frame from a source and to a destination drawn at
/// random among the table's (262,144 of each, so the entries it touches, about 33 MB of lines, do
/// not stay in the 32 MiB L3), each batch copied into the receive area before it is processed
/// (about 100 ns of the figure, the same at both sizes): a big switch's lookups; `_no_prefetch`
/// and `_prefetch` are the same without and with the engine's prefetch pass forced
/// (`Engine::set_prefetch`), the plain name as the engine chooses (by table size).
fn million_macs(c: &mut Criterion) {
    const N: u32 = 1 << 20;
    let mut g = c.benchmark_group("mac_table");
    g.throughput(Throughput::Elements(BATCH as u64));
    for entries in [1024, 16_384, 131_072, N] {
        let config = EngineConfig {
            cam: CamConfig {
                max_entries: N as usize + BATCH,
                max_per_port: N as usize,
                ..CamConfig::default()
            },
            ..EngineConfig::default()
        };
        let before = rss_kib();
        let (mut e, _handle) = Engine::new(config).unwrap();
        for p in 0..2 {
            e.add_port(Box::new(SinkPort::new(&format!("p{p}"), true)), DomainId(0))
                .unwrap();
        }
        // Learn through the pipeline: MAC i on port i % 2, 32 frames of one port per batch.
        let start = std::time::Instant::now();
        for first in (0..entries).step_by(2 * BATCH) {
            for port in 0..2u32 {
                let (mut n, mut i) = (0, first + port);
                while n < BATCH && i < entries {
                    let f = frame(MacAddr::BROADCAST, mac(i));
                    e.rx_batch_mut().fill(n, VnetHeader::default(), &f);
                    n += 1;
                    i += 2;
                }
                e.process_received(PortId(port as u16), DomainId(0), n);
            }
        }
        let took = start.elapsed();
        // The engine (and its table, sized for N) was made after `before`: at N entries the
        // difference over N is the table's memory per entry, all overheads included.
        let per_entry = rss_kib().saturating_sub(before) * 1024 / entries as u64;
        println!(
            "mac_table: {entries} entries learned through the pipeline in {:.2} s ({:.2} M/s); \
             engine resident memory {per_entry} bytes per entry",
            took.as_secs_f64(),
            entries as f64 / took.as_secs_f64() / 1e6
        );
        // Port 0 sends to random MACs living on port 1 (odd), from random MACs of its own (even).
        let mut x = 0x9e37_79b9u32;
        let mut random = |parity: u32| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 1) % (entries / 2)) * 2 + parity
        };
        const SPREAD: usize = 8192;
        let frames: Vec<Vec<u8>> = (0..SPREAD * BATCH)
            .map(|_| frame(mac(random(1)), mac(random(0))))
            .collect();
        for (k, f) in frames[..BATCH].iter().enumerate() {
            e.rx_batch_mut().fill(k, VnetHeader::default(), f);
        }
        g.bench_function(
            format!("known_unicast_same_32_{entries}_macs_batch32"),
            |b| b.iter(|| e.process_received(PortId(0), DomainId(0), BATCH)),
        );
        let mut at = 0;
        for prefetch in [Some(false), Some(true), None] {
            e.set_prefetch(prefetch);
            let name = match prefetch {
                Some(false) => "_no_prefetch",
                Some(true) => "_prefetch",
                None => "",
            };
            g.bench_function(
                format!("known_unicast_spread_{entries}_macs_batch32{name}"),
                |b| {
                    b.iter(|| {
                        for (k, f) in frames[at * BATCH..(at + 1) * BATCH].iter().enumerate() {
                            e.rx_batch_mut().fill(k, VnetHeader::default(), f);
                        }
                        at = (at + 1) % SPREAD;
                        e.process_received(PortId(0), DomainId(0), BATCH)
                    })
                },
            );
        }
    }
    g.finish();
}

/// The Internet checksum over one MSS and over a 64 KiB super-frame: the VXLAN port sums every
/// byte of a super-frame on each side (the sender's inner TCP checksums, the receiver's check
/// before it merges), so this is a per-byte cost of the overlay.
fn checksum(c: &mut Criterion) {
    use dataplane::wire::checksum::{fold, sum};
    let mut g = c.benchmark_group("checksum");
    let data: Vec<u8> = (0..65536u32).map(|i| (i * 7 + 3) as u8).collect();
    for len in [1448usize, 65536] {
        g.throughput(Throughput::Bytes(len as u64));
        // One byte in, so the words are not aligned, as a TCP payload behind 14+20+32 bytes is not.
        let bytes = &data[1..len];
        g.bench_function(format!("sum_{len}_bytes"), |b| {
            b.iter(|| fold(sum(0, std::hint::black_box(bytes))))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    known_unicast,
    policy,
    tracing,
    million_macs,
    checksum
);
criterion_main!(benches);
