//! An engine snapshot and the names the daemon would give its ports, for the renderers' golden
//! tests: three ports (a container, a host port, a gone uplink) with traffic and drops, learned and
//! static MACs, an address conflict and connection counters.

use dataplane::{AddressConflict, MacEntry, PortInfo, PortKind, PortState, Snapshot};
use dataplane::{CtStats, DomainId, DropReason, MacAddr, PortId, VlanId};

use crate::render::names::Names;

pub(crate) fn snapshot() -> Snapshot {
    let mut s = snapshot_without_cam_counters();
    s.cam.learned = 9;
    s.cam.moved = 1;
    s.cam.aged = 4;
    s.cam.evicted_port_limit = 2;
    s.cam.evicted_table_full = 1;
    s
}

fn snapshot_without_cam_counters() -> Snapshot {
    let port = |id: u16, name: &str, kind: PortKind, domain: u16, state: PortState| PortInfo {
        id: PortId(id),
        name: name.into(),
        kind,
        domain: DomainId(domain),
        vnet_hdr: false,
        mac: None,
        state,
        counters: Default::default(),
    };
    let mut web = port(0, "vetha8e151f", PortKind::AfPacket, 1, PortState::Up);
    web.counters.rx_packets = 1200;
    web.counters.rx_bytes = 1_500_000;
    web.counters.tx_packets = 900;
    web.counters.tx_bytes = 80_000;
    web.counters.rx_gso = 7;
    web.counters.drop(DropReason::SpoofIp, 3);
    web.counters.drop(DropReason::Runt, 1);
    let mut host = port(1, "switchyard0", PortKind::Tap, 1, PortState::Up);
    host.counters.rx_packets = 40;
    host.counters.rx_bytes = 3_000;
    host.counters.tx_segmented = 2;
    host.counters.tx_csum_finished = 5;
    let mut uplink = port(2, "ens3", PortKind::AfPacket, 0, PortState::Gone);
    uplink.counters.drop(DropReason::Isolation, 12);
    let mac = |d: u16, m: [u8; 6], p: u16, age_ms: u64, is_static: bool| MacEntry {
        domain: DomainId(d),
        vlan: VlanId(0),
        mac: MacAddr(m),
        port: PortId(p),
        age_ms,
        is_static,
    };
    Snapshot {
        ports: vec![web, host, uplink],
        macs: vec![
            mac(1, [0x92, 0x65, 0x0b, 0x78, 0x16, 0x51], 0, 1_250, false),
            mac(1, [0x02, 0x42, 0xac, 0x11, 0x00, 0x01], 1, 0, true),
            mac(0, [0x52, 0x54, 0x00, 0x12, 0x34, 0x56], 2, 61_000, false),
        ],
        cam: Default::default(),
        conflicts: vec![AddressConflict {
            ip: "172.17.0.2".parse().unwrap(),
            mac: MacAddr([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]),
            port: PortId(2),
            at_ms: 3_000,
        }],
        conntrack: CtStats {
            entries: 3,
            created: 10,
            expired: 6,
            evicted: 1,
            removed: 0,
            max_entries: 65536,
        },
        aging_ms: 300_000,
        uptime_ms: 65_432,
        workers: 2,
        peer_lost: 5,
    }
}

/// Ports 0 and 1 named as the daemon names them; port 2 left to its number.
pub(crate) fn names() -> Names {
    let mut names = Names::default();
    names.ports.insert(PortId(0), "web".into());
    names.ports.insert(PortId(1), "host:bridge".into());
    names
        .macs
        .insert([0x92, 0x65, 0x0b, 0x78, 0x16, 0x51], "web".into());
    names
        .owners
        .insert("172.17.0.2".parse().unwrap(), "web".into());
    names
}
