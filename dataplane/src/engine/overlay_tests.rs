//! An overlay network through the whole pipeline, as data: one local container `c1`, the host
//! port `h`, and the VXLAN ports toward two remote hosts `r2` and `r3` (in-memory ports with the
//! `Overlay` role, standing in for VXLAN ports toward 192.0.2.2 and 192.0.2.3 (`tunneled`);
//! `port::vxlan` tests the encapsulation over real sockets). Remote containers'
//! MACs are static entries on their host's port, as the control plane installs them.

use super::*;
use crate::port::{MemoryPort, MemoryPortHandle};
use crate::stage::DropReason;
use crate::table::{ContainerGuard, PortRole};
use crate::wire::vnet::VnetHeader;
use crate::VlanId;

const C1: &str = "02:00:00:00:00:01";
const H: &str = "02:00:00:00:00:fe";
const REMOTE_ON_R2: &str = "02:00:00:00:02:02";
const REMOTE_ON_R3: &str = "02:00:00:00:03:03";
const UNKNOWN: &str = "02:00:00:00:09:09";
const BCAST: &str = "ff:ff:ff:ff:ff:ff";
const VNI: u32 = 4242;
const LOCAL: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 1);

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn frame(dst: &str, src: &str) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&mac(dst).0);
    f.extend_from_slice(&mac(src).0);
    f.extend_from_slice(&[0x88, 0xb5]); // local experimental EtherType
    f.resize(60, 0);
    f
}

struct Rig {
    engine: Engine,
    ports: Vec<(&'static str, PortId, MemoryPortHandle)>,
}

impl Rig {
    fn new() -> Rig {
        let (mut engine, _) = Engine::new(EngineConfig::default()).unwrap();
        let c1 = PortRole::Container(ContainerGuard {
            mac: mac(C1),
            ips: vec![std::net::Ipv4Addr::new(10, 9, 0, 2)],
            allow_spoofing: false,
        });
        let layout: [(&str, PortRole, Option<&str>); 4] = [
            ("c1", c1, Some(C1)),
            ("h", PortRole::Host, Some(H)),
            ("r2", PortRole::Overlay, Some(REMOTE_ON_R2)),
            ("r3", PortRole::Overlay, Some(REMOTE_ON_R3)),
        ];
        let mut ports = Vec::new();
        for (name, role, static_mac) in layout {
            let (mut port, handle) = MemoryPort::new(name, false);
            if let Some(host) = name.strip_prefix('r') {
                port = port.tunneled(crate::port::Tunnel {
                    vni: VNI,
                    local: LOCAL,
                    remote: format!("192.0.2.{host}").parse().unwrap(),
                    udp_port: 4789,
                });
            }
            let id = engine
                .add_port_as(Box::new(port), DomainId(1), role)
                .unwrap();
            if let Some(m) = static_mac {
                engine
                    .tables
                    .cam
                    .add_static(DomainId(1), VlanId(0), mac(m), id)
                    .unwrap();
            }
            ports.push((name, id, handle));
        }
        Rig { engine, ports }
    }

    fn drops(&self, name: &str, reason: DropReason) -> u64 {
        let id = self.ports.iter().find(|p| p.0 == name).unwrap().1;
        let snap = self.engine.snapshot();
        let port = snap.ports.iter().find(|p| p.id == id).unwrap();
        port.counters.dropped(reason)
    }

    /// Injects `frame` on `on` and returns where copies went, sorted.
    fn send(&mut self, on: &str, frame: &[u8]) -> Vec<&'static str> {
        let handle = &self.ports.iter().find(|p| p.0 == on).unwrap().2;
        handle.inject(frame);
        self.engine.step();
        let mut got: Vec<&str> = self
            .ports
            .iter()
            .filter(|(_, _, h)| !h.take_sent().is_empty())
            .map(|(n, _, _)| *n)
            .collect();
        got.sort();
        got
    }
}

#[test]
fn local_broadcast_is_replicated_to_every_remote_host() {
    let mut rig = Rig::new();
    assert_eq!(rig.send("c1", &frame(BCAST, C1)), ["h", "r2", "r3"]);
    assert_eq!(rig.send("c1", &frame(UNKNOWN, C1)), ["h", "r2", "r3"]);
    assert_eq!(rig.send("c1", &frame(H, C1)), ["h"]);
    assert_eq!(rig.drops("c1", DropReason::SplitHorizon), 0);
}

#[test]
fn the_host_port_stays_local() {
    let mut rig = Rig::new();
    assert_eq!(rig.send("h", &frame(BCAST, H)), ["c1"]);
    assert_eq!(rig.drops("h", DropReason::HostLocal), 2);
    assert_eq!(rig.send("r2", &frame(H, REMOTE_ON_R2)), Vec::<&str>::new());
    assert_eq!(rig.drops("r2", DropReason::HostLocal), 1);
    assert_eq!(rig.send("h", &frame(C1, H)), ["c1"]);
}

#[test]
fn unicast_goes_to_the_host_behind_the_mac() {
    let mut rig = Rig::new();
    assert_eq!(rig.send("c1", &frame(REMOTE_ON_R3, C1)), ["r3"]);
    assert_eq!(rig.send("c1", &frame(REMOTE_ON_R2, C1)), ["r2"]);
    assert_eq!(rig.send("r2", &frame(C1, REMOTE_ON_R2)), ["c1"]);
}

#[test]
fn what_one_remote_host_floods_never_goes_on_to_another() {
    let mut rig = Rig::new();
    assert_eq!(rig.send("r2", &frame(BCAST, REMOTE_ON_R2)), ["c1"]);
    assert_eq!(rig.drops("r2", DropReason::SplitHorizon), 1);
    assert_eq!(rig.send("r2", &frame(UNKNOWN, REMOTE_ON_R2)), ["c1"]);
    // Even a unicast to a MAC behind another remote host stays: that host is not ours to relay to.
    assert_eq!(
        rig.send("r2", &frame(REMOTE_ON_R3, REMOTE_ON_R2)),
        Vec::<&str>::new()
    );
    assert_eq!(rig.drops("r2", DropReason::SplitHorizon), 3);
}

/// `arp-proxy`: with the cluster's endpoints programmed, a container's ARP for a remote
/// container is answered on its port and nothing goes to a remote host; an address the table
/// does not hold is flooded as before.
#[test]
fn arp_for_a_remote_container_is_answered_locally() {
    use crate::wire::arp::{operation, request_frame, ArpPacket};
    use crate::wire::ethernet::HEADER_LEN;
    use std::net::Ipv4Addr;
    let mut rig = Rig::new();
    let c1_ip = Ipv4Addr::new(10, 9, 0, 2);
    let remote_ip = Ipv4Addr::new(10, 9, 0, 3);
    rig.engine
        .set_policy(PolicyUpdate::RemoteEndpoints {
            domain: DomainId(1),
            endpoints: vec![(remote_ip, mac(REMOTE_ON_R3))],
        })
        .unwrap();
    let c1 = &rig.ports[0].2;
    c1.inject(&request_frame(mac(C1), c1_ip, remote_ip));
    rig.engine.step();
    let answers = c1.take_sent();
    assert_eq!(answers.len(), 1, "answered on c1's own port");
    let (_, f) = &answers[0];
    assert_eq!(&f[..6], &mac(C1).0, "to the asker");
    assert_eq!(&f[6..12], &mac(REMOTE_ON_R3).0);
    let arp = ArpPacket::new_checked(&f[HEADER_LEN..]).unwrap();
    assert_eq!(arp.operation(), operation::REPLY);
    assert_eq!(arp.sender_hw_addr(), mac(REMOTE_ON_R3));
    assert_eq!(arp.sender_proto_addr(), remote_ip);
    assert_eq!(arp.target_proto_addr(), c1_ip);
    for (name, _, h) in &rig.ports[1..] {
        assert!(h.take_sent().is_empty(), "{name} got a copy");
    }
    // Not in the table: flooded, as without it.
    let other = Ipv4Addr::new(10, 9, 0, 77);
    assert_eq!(
        rig.send("c1", &request_frame(mac(C1), c1_ip, other)),
        ["h", "r2", "r3"]
    );
    // The table emptied (the remote host's lease ended): flooded again.
    rig.engine
        .set_policy(PolicyUpdate::RemoteEndpoints {
            domain: DomainId(1),
            endpoints: vec![],
        })
        .unwrap();
    assert_eq!(
        rig.send("c1", &request_frame(mac(C1), c1_ip, remote_ip)),
        ["h", "r2", "r3"]
    );
}

/// A trace shows the VXLAN step: a frame to a remote container is encapsulated toward its host
/// (VNI, underlay addresses, the UDP source port the port will use), a broadcast once per remote
/// host, and a frame from a remote host starts with its decapsulation.
#[test]
fn traces_show_encapsulation_and_decapsulation() {
    use crate::port::vxlan::flow_source_port;
    use crate::trace::Step;
    let mut rig = Rig::new();
    let id = |name: &str| rig.ports.iter().find(|p| p.0 == name).unwrap().1;
    let (c1, r2, r3) = (id("c1"), id("r2"), id("r3"));
    let encap = |remote: [u8; 4], f: &[u8]| Step::Encapsulated {
        vni: VNI,
        local: LOCAL,
        remote: remote.into(),
        sport: flow_source_port(f),
        dport: 4789,
    };
    let out = frame(REMOTE_ON_R2, C1);
    let r = rig.engine.trace_packet(c1, &out).unwrap();
    let steps = r.steps();
    assert_eq!(
        &steps[steps.len() - 2..],
        &[Step::Egress { port: r2 }, encap([192, 0, 2, 2], &out)],
        "{steps:?}"
    );
    let bcast = frame(BCAST, C1);
    let r = rig.engine.trace_packet(c1, &bcast).unwrap();
    let encapsulated: Vec<Step> = r
        .steps()
        .iter()
        .copied()
        .filter(|s| matches!(s, Step::Encapsulated { .. }))
        .collect();
    assert_eq!(
        encapsulated,
        [encap([192, 0, 2, 2], &bcast), encap([192, 0, 2, 3], &bcast)]
    );
    let inbound = frame(C1, REMOTE_ON_R3);
    let r = rig.engine.trace_packet(r3, &inbound).unwrap();
    assert_eq!(
        r.steps()[0],
        Step::Decapsulated {
            vni: VNI,
            from: [192, 0, 2, 3].into(),
            dport: 4789,
        }
    );
    assert!(matches!(r.steps()[1], Step::Parsed { .. }));
    assert_eq!(r.steps().last(), Some(&Step::Egress { port: c1 }));
    // A frame from a local port to a local port has neither.
    let r = rig.engine.trace_packet(c1, &frame(H, C1)).unwrap();
    assert!(!r
        .steps()
        .iter()
        .any(|s| matches!(s, Step::Encapsulated { .. } | Step::Decapsulated { .. })));
}

/// icc=false holds across hosts: on a closed overlay network nothing but ARP goes between a
/// local container and a VXLAN port, either way; the host port is not subject to it.
#[test]
fn icc_false_holds_toward_and_from_remote_hosts() {
    let mut rig = Rig::new();
    rig.engine
        .set_policy(PolicyUpdate::Icc {
            domain: DomainId(1),
            icc: false,
        })
        .unwrap();
    assert_eq!(rig.send("c1", &frame(REMOTE_ON_R2, C1)), Vec::<&str>::new());
    assert_eq!(rig.drops("c1", DropReason::Icc), 1);
    assert_eq!(rig.send("r3", &frame(C1, REMOTE_ON_R3)), Vec::<&str>::new());
    assert_eq!(rig.drops("r3", DropReason::Icc), 1);
    // A broadcast from c1 still reaches the host port; ARP crosses.
    assert_eq!(rig.send("c1", &frame(BCAST, C1)), ["h"]);
    let arp = crate::wire::arp::request_frame(
        mac(C1),
        std::net::Ipv4Addr::new(10, 9, 0, 2),
        std::net::Ipv4Addr::new(10, 9, 0, 3),
    );
    assert_eq!(rig.send("c1", &arp), ["h", "r2", "r3"]);
}

/// A remote host's frame never leaves through this host: with an uplink, and the overlay network
/// masqueraded to the world here, a frame from a VXLAN port to the gateway's MAC, for an address
/// beyond the uplink, is neither translated nor routed (the NAT stage does not run for a remote
/// host's frames; each container leaves through its own host) and goes nowhere (`host-local`).
/// A local container's same frame is masqueraded out of the uplink, so the rig can tell.
#[test]
fn a_remote_hosts_frame_to_the_gateway_never_leaves_through_this_host() {
    use crate::table::{NetworkNat, Subnet, Uplink};
    use std::net::Ipv4Addr;
    let mut rig = Rig::new();
    let (up, up_h) = MemoryPort::new("up", false);
    let up = rig
        .engine
        .add_port_as(Box::new(up), DomainId(9), PortRole::Uplink)
        .unwrap();
    rig.ports.push(("up", up, up_h));
    rig.engine.tables.nat.set_uplink(Some(Uplink {
        port: up,
        mac: mac("02:00:00:00:00:10"),
        ip: Ipv4Addr::new(198, 51, 100, 10),
        prefix: 24,
        gateway: None,
    }));
    rig.engine.tables.nat.set_networks(&[NetworkNat {
        domain: DomainId(1),
        subnet: Subnet {
            domain: DomainId(1),
            network: Ipv4Addr::new(10, 9, 0, 0),
            prefix: 24,
        },
        gateway_ip: Ipv4Addr::new(10, 9, 0, 1),
        gateway_mac: mac(H),
        external: true,
        routed: false,
    }]);
    rig.engine
        .tables
        .nat
        .learn_neighbor(Ipv4Addr::new(198, 51, 100, 1), mac("02:00:00:00:00:99"));
    let to_world = |src: &str, src_ip: [u8; 4]| {
        let b = etherparse::PacketBuilder::ethernet2(mac(src).0, mac(H).0)
            .ipv4(src_ip, [198, 51, 100, 1], 64)
            .udp(40000, 53);
        let mut f = Vec::new();
        b.write(&mut f, b"query").unwrap();
        f
    };
    assert_eq!(
        rig.send("r2", &to_world(REMOTE_ON_R2, [10, 9, 0, 3])),
        Vec::<&str>::new()
    );
    assert_eq!(rig.drops("r2", DropReason::HostLocal), 1);
    assert!(rig.engine.tables.conntrack.is_empty(), "nothing tracked");
    assert_eq!(rig.send("c1", &to_world(C1, [10, 9, 0, 2])), ["up"]);
    assert_eq!(rig.engine.tables.conntrack.len(), 1);
}

/// A Linux VTEP's TCP super-frame, as the VXLAN port takes it (`offload::recover_offloads` at
/// the overlay MTU), reaches a container port without vnet headers cut into frames within the
/// MTU, each with a complete checksum, carrying the super-frame's bytes in order; a
/// checksum-partial frame within the MTU reaches it finished.
#[test]
fn a_linux_vteps_super_frame_reaches_a_port_without_vnet_headers_within_the_mtu() {
    const MTU: usize = 1450;
    let mut rig = Rig::new();
    let tcp = |payload: &[u8]| {
        let b = etherparse::PacketBuilder::ethernet2(mac(REMOTE_ON_R2).0, mac(C1).0)
            .ipv4([10, 9, 0, 3], [10, 9, 0, 2], 64)
            .tcp(5201, 40000, 7, 64000)
            .ack(1)
            .psh();
        let mut f = Vec::new();
        b.write(&mut f, payload).unwrap();
        f
    };
    let payload: Vec<u8> = (0..50_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut frame = tcp(&payload);
    let vnet = crate::offload::recover_offloads(&mut frame, MTU).unwrap();
    assert_eq!(
        (vnet.gso_kind(), usize::from(vnet.gso_size)),
        (crate::wire::vnet::gso::TCPV4, MTU - 40)
    );
    let c1 = &rig.ports[0].2;
    rig.ports[2].2.inject_with(vnet, &frame);
    rig.engine.step();
    let sent = c1.take_sent();
    assert_eq!(sent.len(), payload.len().div_ceil(MTU - 40));
    let mut carried = Vec::new();
    for (hdr, f) in &sent {
        assert_eq!(*hdr, VnetHeader::default());
        assert!(f.len() - 14 <= MTU, "{} bytes", f.len());
        let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) =
            (p.net, p.transport)
        else {
            panic!("not IPv4/TCP")
        };
        let want = t
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), t.payload())
            .unwrap();
        assert_eq!(t.checksum(), want, "a complete checksum");
        carried.extend_from_slice(t.payload());
    }
    assert_eq!(carried, payload);
    let counters = |rig: &Rig| {
        let snap = rig.engine.snapshot();
        let id = rig.ports[0].1;
        snap.ports.iter().find(|p| p.id == id).unwrap().counters
    };
    assert_eq!(counters(&rig).tx_segmented, 1);

    // Within the MTU, checksum-partial (the pseudo-header sum where the checksum goes).
    let complete = tcp(&payload[..1000]);
    let mut partial = complete.clone();
    let field = 14 + 20 + crate::wire::tcp::field::CHECKSUM.start;
    let pseudo = crate::wire::checksum::pseudo_header_v4([10, 9, 0, 3], [10, 9, 0, 2], 6, 1020);
    partial[field..field + 2].copy_from_slice(&crate::wire::checksum::fold(pseudo).to_be_bytes());
    let vnet = crate::offload::recover_offloads(&mut partial, MTU).unwrap();
    assert!(vnet.needs_csum() && !vnet.is_gso());
    rig.ports[2].2.inject_with(vnet, &partial);
    rig.engine.step();
    assert_eq!(c1.take_sent(), [(VnetHeader::default(), complete)]);
    assert_eq!(counters(&rig).tx_csum_finished, 1);
}
