//! Traces as data: the recorded steps of real and what-if packets.

use super::*;
use crate::port::{MemoryPort, MemoryPortHandle};
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
