//! Arbitrary bytes as frames through the whole live pipeline (ingress's one parse, anti-spoof,
//! isolation, address-conflict, nat with conntrack and the rewriter, l2, icc, egress offload
//! fixups) from every kind of port, and through a what-if trace. The data plane must never panic
//! on a frame: malformed ones are dropped and counted.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::Mutex;

use dataplane::wire::vnet::VnetHeader;
use dataplane::{
    ContainerGuard, DomainId, Engine, EngineConfig, MacAddr, NatUpdate, NetworkNat, PolicyUpdate,
    PortId, PortRole, Publish, SinkPort, Subnet, Uplink,
};
use libfuzzer_sys::fuzz_target;

const NET: DomainId = DomainId(1);
const OUTSIDE: DomainId = DomainId(0);
const CONTAINER_MAC: MacAddr = MacAddr([2, 0x42, 172, 17, 0, 2]);
const GATEWAY_MAC: MacAddr = MacAddr([2, 0x42, 172, 17, 0, 1]);
const UPLINK_MAC: MacAddr = MacAddr([2, 0, 192, 0, 2, 10]);

/// An engine with a container, a host port and a plain port on one network with icc=false, a
/// parent port, and an uplink publishing tcp/8080 and udp/5353 to the container.
fn engine() -> (Engine, Vec<PortId>) {
    let (mut e, _) = Engine::new(EngineConfig::default()).expect("engine");
    // Software offload fixups run only for ports without vnet headers: half of them have none.
    let mut add = |name: &str, vnet: bool, domain, role| {
        e.add_port_as(Box::new(SinkPort::new(name, vnet)), domain, role)
            .expect("port")
    };
    let container = PortRole::Container(ContainerGuard {
        mac: CONTAINER_MAC,
        ips: vec![Ipv4Addr::new(172, 17, 0, 2)],
        allow_spoofing: false,
    });
    let ports = vec![
        add("ctr", false, NET, container),
        add("host", true, NET, PortRole::Host),
        add("plain", false, NET, PortRole::Plain),
        add("parent", true, NET, PortRole::Parent),
        add("uplink", false, OUTSIDE, PortRole::Uplink),
    ];
    e.set_policy(PolicyUpdate::Icc {
        domain: NET,
        icc: false,
    })
    .expect("icc");
    e.set_policy(PolicyUpdate::Isolation {
        subnets: vec![Subnet {
            domain: NET,
            network: Ipv4Addr::new(172, 17, 0, 0),
            prefix: 16,
        }],
        attached: [(Ipv4Addr::new(172, 17, 0, 2), NET)].into_iter().collect(),
    })
    .expect("isolation");
    e.set_nat(NatUpdate::Uplink(Some(Uplink {
        port: ports[4],
        mac: UPLINK_MAC,
        ip: Ipv4Addr::new(192, 0, 2, 10),
        prefix: 24,
        gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
    })))
    .expect("uplink");
    e.set_nat(NatUpdate::Networks(vec![NetworkNat {
        domain: NET,
        subnet: Subnet {
            domain: NET,
            network: Ipv4Addr::new(172, 17, 0, 0),
            prefix: 16,
        },
        gateway_ip: Ipv4Addr::new(172, 17, 0, 1),
        gateway_mac: GATEWAY_MAC,
        external: true,
    }]))
    .expect("networks");
    let publish = |id, protocol, host_port, target_port| Publish {
        id,
        protocol,
        host_port,
        target: Ipv4Addr::new(172, 17, 0, 2),
        target_port,
        target_mac: CONTAINER_MAC,
        domain: NET,
    };
    e.set_nat(NatUpdate::Publish(vec![
        publish(1, 6, 8080, 80),
        publish(2, 17, 5353, 53),
    ]))
    .expect("publish");
    (e, ports)
}

static ENGINE: Mutex<Option<(Engine, Vec<PortId>)>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    // One engine for the whole run, so conntrack and the MAC table fill up as a real one does.
    let mut guard = ENGINE.lock().unwrap();
    let (e, ports) = guard.get_or_insert_with(engine);
    // The first byte picks the ingress port and the vnet header's GSO/checksum flags.
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let port = ports[pick as usize % ports.len()];
    let domain = if port == ports[4] { OUTSIDE } else { NET };
    let mut vnet = VnetHeader::default();
    if pick & 0x80 != 0 && frame.len() >= 4 {
        vnet.flags = 1; // NEEDS_CSUM
        vnet.csum_start = u16::from(frame[0]) + 14;
        vnet.csum_offset = u16::from(frame[1] & 0x1f);
        vnet.gso_type = frame[2] & 0x05; // none, TCPv4 or UDP-L4... whatever the bits say
        vnet.gso_size = u16::from(frame[3]) + 1;
        vnet.hdr_len = vnet.csum_start;
    }
    e.rx_batch_mut().fill(0, vnet, frame);
    e.process_received(port, domain, 1);
    let _ = e.trace_packet(port, frame);
});
