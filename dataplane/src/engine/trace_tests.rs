//! Traces as data: the recorded steps of real and what-if packets.

use super::*;
use crate::port::{MemoryPort, MemoryPortHandle};
use crate::stage::{DropReason, StageId};
use crate::table::LearnAction;
use crate::trace::{Step, TraceArm, TraceTarget};
use crate::VlanId;

fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x06]);
    f.resize(60, 0);
    f
}

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const BCAST: [u8; 6] = [0xff; 6];

fn rig() -> (Engine, Vec<(PortId, MemoryPortHandle)>) {
    let (mut e, _) = Engine::new(EngineConfig::default()).unwrap();
    let ports = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let (p, h) = MemoryPort::new(n, false);
            (e.add_port(Box::new(p), DomainId(0)).unwrap(), h)
        })
        .collect();
    (e, ports)
}

/// The steps with the variable parts (MACs, lengths) kept: a step list is the expectation.
fn steps(r: &TraceRecord) -> Vec<Step> {
    r.steps().to_vec()
}

#[test]
fn live_trace_records_every_decision_of_armed_packets_only() {
    let (mut e, p) = rig();
    e.tracer.arm(TraceArm {
        target: TraceTarget::Port(p[0].0),
        remaining: 2,
        filter: None,
    });
    p[0].1.inject(&frame(BCAST, A));
    p[1].1.inject(&frame(A, B)); // not armed: port b
    e.step();
    p[0].1.inject(&frame(B, A));
    e.step();
    p[0].1.inject(&frame(B, A)); // budget spent
    e.step();
    let recs: Vec<TraceRecord> = e.tracer.ring.iter().copied().collect();
    assert_eq!(recs.len(), 2);
    let parsed = |dst: [u8; 6]| Step::Parsed {
        src: MacAddr(A),
        dst: MacAddr(dst),
        vlan: VlanId(0),
        ethertype: 0x0806,
        len: 60,
    };
    assert_eq!(
        steps(&recs[0]),
        vec![
            parsed(BCAST),
            Step::Learned {
                mac: MacAddr(A),
                action: LearnAction::New
            },
            Step::Flooded {
                unknown: false,
                ports: 2
            },
            Step::Egress { port: p[1].0 },
            Step::Egress { port: p[2].0 },
        ]
    );
    assert_eq!(
        steps(&recs[1]),
        vec![
            parsed(B),
            Step::Learned {
                mac: MacAddr(A),
                action: LearnAction::None
            },
            Step::Hit {
                mac: MacAddr(B),
                port: p[1].0
            },
            Step::Egress { port: p[1].0 },
        ]
    );
    assert!(recs[0].seq < recs[1].seq && !recs[0].what_if);
}

#[test]
fn what_if_traces_change_nothing_and_send_nothing() {
    let (mut e, p) = rig();
    let before = e.snapshot();
    let r = e.trace_packet(p[0].0, &frame(B, A)).unwrap();
    assert!(r.what_if);
    assert_eq!(
        r.steps()[1..],
        [
            Step::Learned {
                mac: MacAddr(A),
                action: LearnAction::New
            },
            Step::Flooded {
                unknown: true,
                ports: 2
            },
            Step::Egress { port: p[1].0 },
            Step::Egress { port: p[2].0 },
        ]
    );
    let after = e.snapshot();
    assert_eq!(after.macs.len(), before.macs.len(), "nothing learned");
    assert_eq!(after.ports[0].counters.rx_packets, 0, "nothing counted");
    assert!(
        p.iter().all(|(_, h)| h.take_sent().is_empty()),
        "nothing sent"
    );
    assert!(
        e.tracer.ring.is_empty(),
        "what-if records stay out of the live ring"
    );
    assert!(matches!(
        e.trace_packet(PortId(77), &frame(B, A)),
        Err(EngineError::NoSuchPort(_))
    ));
}

#[test]
fn drops_are_traced_with_their_stage() {
    let (mut e, p) = rig();
    let r = e
        .trace_packet(p[0].0, &frame(B, [0x01, 0, 0x5e, 0, 0, 1]))
        .unwrap();
    assert_eq!(
        r.steps().last(),
        Some(&Step::Dropped {
            stage: StageId::L2Learn,
            reason: DropReason::SrcMulticast
        })
    );
    let r = e.trace_packet(p[0].0, &[0u8; 10]).unwrap();
    assert_eq!(
        r.steps(),
        &[Step::Dropped {
            stage: StageId::Ingress,
            reason: DropReason::Runt
        }]
    );
}

/// DNAT and its reply, as data: a SYN from the world to a published port, and the container's
/// SYN-ACK back, with the steps each took.
#[test]
fn dnat_and_its_reply_are_traced_step_by_step() {
    use crate::stage::nat::Answer;
    use crate::table::conntrack::{Direction, NatKind};
    use crate::table::{ContainerGuard, NetworkNat, PortRole, Publish, Subnet, Uplink};
    use crate::trace::{CtStep, Flow};
    use std::net::Ipv4Addr;

    let (mut e, _) = Engine::new(EngineConfig::default()).unwrap();
    let (up, up_h) = MemoryPort::new("up", false);
    let (web, web_h) = MemoryPort::new("web", false);
    let up_mac = MacAddr([2, 0, 0, 0, 0, 0x10]);
    let gw_mac = MacAddr([2, 0, 0, 0, 0, 0x01]);
    let web_mac = MacAddr([2, 0, 0, 0, 0, 0x02]);
    let world_mac = MacAddr([2, 0, 0, 0, 0, 0x99]);
    let (uplink_ip, web_ip, client) = (
        Ipv4Addr::new(192, 0, 2, 10),
        Ipv4Addr::new(172, 17, 0, 2),
        Ipv4Addr::new(192, 0, 2, 1),
    );
    let up = e
        .add_port_as(Box::new(up), DomainId(9), PortRole::Uplink)
        .unwrap();
    let guard = ContainerGuard {
        mac: web_mac,
        ips: vec![web_ip],
        allow_spoofing: false,
    };
    let web = e
        .add_port_as(Box::new(web), DomainId(0), PortRole::Container(guard))
        .unwrap();
    e.tables
        .cam
        .add_static(DomainId(0), VlanId(0), web_mac, web)
        .unwrap();
    e.tables.nat.set_uplink(Some(Uplink {
        port: up,
        mac: up_mac,
        ip: uplink_ip,
        prefix: 24,
        gateway: None,
    }));
    e.tables.nat.set_networks(&[NetworkNat {
        domain: DomainId(0),
        subnet: Subnet {
            domain: DomainId(0),
            network: Ipv4Addr::new(172, 17, 0, 0),
            prefix: 16,
        },
        gateway_ip: Ipv4Addr::new(172, 17, 0, 1),
        gateway_mac: gw_mac,
        external: true,
        routed: false,
    }]);
    e.tables.nat.set_publish(&[Publish {
        id: 7,
        protocol: 6,
        host_port: 8080,
        target: web_ip,
        target_port: 80,
        target_mac: web_mac,
        domain: DomainId(0),
    }]);
    for port in [up, web] {
        e.tracer.arm(TraceArm {
            target: TraceTarget::Port(port),
            remaining: 1,
            filter: None,
        });
    }
    let tcp =
        |dst: MacAddr, src: MacAddr, s: Ipv4Addr, sp: u16, d: Ipv4Addr, dp: u16, syn_ack: bool| {
            let b =
                etherparse::PacketBuilder::ethernet2(src.0, dst.0).ipv4(s.octets(), d.octets(), 64);
            let b = if syn_ack {
                b.tcp(sp, dp, 1, 1000).syn().ack(1)
            } else {
                b.tcp(sp, dp, 1, 1000).syn()
            };
            let mut f = Vec::new();
            b.write(&mut f, &[]).unwrap();
            f
        };
    up_h.inject(&tcp(
        up_mac, world_mac, client, 45000, uplink_ip, 8080, false,
    ));
    e.step();
    let to_web = web_h.take_sent();
    assert_eq!(to_web.len(), 1, "the SYN reaches web");
    web_h.inject(&tcp(gw_mac, web_mac, web_ip, 80, client, 45000, true));
    e.step();
    assert_eq!(
        up_h.take_sent().len(),
        1,
        "the SYN-ACK leaves by the uplink"
    );

    let recs: Vec<TraceRecord> = e.tracer.ring.iter().copied().collect();
    let flow = |src, sport, dst, dport| Flow {
        src,
        sport,
        dst,
        dport,
    };
    assert_eq!(
        recs[0].steps()[1..],
        [
            Step::Translated {
                kind: Some(NatKind::Dnat),
                ct: CtStep::Created,
                from: flow(client, 45000, uplink_ip, 8080),
                to: flow(client, 45000, web_ip, 80),
            },
            Step::Egress { port: web },
        ]
    );
    assert_eq!(
        recs[1].steps()[1..],
        [
            Step::SpoofChecked,
            Step::Translated {
                kind: Some(NatKind::Dnat),
                ct: CtStep::Matched(Direction::Reply),
                from: flow(web_ip, 80, client, 45000),
                to: flow(uplink_ip, 8080, client, 45000),
            },
            Step::Egress { port: up },
        ]
    );
    // And a ping of the uplink address is answered in place.
    let r = e
        .trace_packet(up, &{
            let b = etherparse::PacketBuilder::ethernet2(world_mac.0, up_mac.0)
                .ipv4(client.octets(), uplink_ip.octets(), 64)
                .icmpv4_echo_request(1, 1);
            let mut f = Vec::new();
            b.write(&mut f, &[]).unwrap();
            f
        })
        .unwrap();
    assert_eq!(
        r.steps()[1..],
        [Step::Answered(Answer::IcmpEcho), Step::Egress { port: up }]
    );
}
