//! An overlay network through the whole pipeline, as data: one local container `c1`, the host
//! port `h`, and the VXLAN ports toward two remote hosts `r2` and `r3` (in-memory ports with the
//! `Overlay` role; `port::vxlan` tests the encapsulation over real sockets). Remote containers'
//! MACs are static entries on their host's port, as the control plane installs them.

use super::*;
use crate::port::{MemoryPort, MemoryPortHandle};
use crate::stage::DropReason;
use crate::table::{ContainerGuard, PortRole};
use crate::VlanId;

const C1: &str = "02:00:00:00:00:01";
const H: &str = "02:00:00:00:00:fe";
const REMOTE_ON_R2: &str = "02:00:00:00:02:02";
const REMOTE_ON_R3: &str = "02:00:00:00:03:03";
const UNKNOWN: &str = "02:00:00:00:09:09";
const BCAST: &str = "ff:ff:ff:ff:ff:ff";

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
            let (port, handle) = MemoryPort::new(name, false);
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
