//! Per-packet cost of the pipeline (ingress, l2-learn, l2-fwd, flood, egress) on batches of 32
//! 60-byte frames, with discard ports so the port itself costs nothing. Criterion reports time per
//! batch; with `Throughput::Elements(32)` it also shows frames per second. Per-packet cost is the batch
//! time divided by 32 (bench/RESULTS.md records both).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::engine::{Engine, EngineConfig};
use dataplane::port::{SinkPort, BATCH};
use dataplane::wire::vnet::VnetHeader;
use dataplane::{DomainId, MacAddr, PortId};

fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(dst.as_bytes());
    f.extend_from_slice(src.as_bytes());
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(60, 0);
    f
}

fn mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([0x02, 0x42, b[0], b[1], b[2], b[3]])
}

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

criterion_group!(benches, known_unicast);
criterion_main!(benches);
