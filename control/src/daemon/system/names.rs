//! Ports and MACs by the names people use: what traces and stats call them, and which port a
//! trace or capture target means.

use dataplane::{DomainId, MacAddr, PortId, TraceTarget};

use super::System;
use crate::model::{NetworkMode, State};
use crate::render::names::Names;

impl System {
    pub fn is_uplink(&self, port: PortId) -> bool {
        self.uplink.as_ref().is_some_and(|(p, _, _)| *p == port)
    }

    /// What traces call ports and MACs: containers by name (`web`, or `web:eth1` for a second
    /// interface), host ports as `host:NETWORK`, the uplink as `uplink`.
    pub fn names(&self, state: &State) -> Names {
        let mut names = Names::default();
        for c in state.containers.values() {
            // As `ls` shows it: the name another system gave (Docker's), else switchyard's.
            let shown = state.shown_name(&c.id, &c.name);
            for e in &c.endpoints {
                // A handed-off endpoint is its container's only one; its name here is not the
                // name inside.
                let name = if e.interface == "eth0" || c.mode == NetworkMode::Handoff {
                    shown.to_string()
                } else {
                    format!("{shown}:{}", e.interface)
                };
                if let Some(&p) = self.endpoint_ports.get(&e.id) {
                    names.ports.insert(p, name);
                }
                names.macs.insert(e.mac.0, shown.to_string());
                names.owners.insert(e.ip, shown.to_string());
            }
        }
        for n in state.networks.values() {
            if let Some(&p) = self.host_ports.get(&n.name) {
                names
                    .ports
                    .insert(p, format!("host:{}", state.shown_name(&n.id, &n.name)));
            }
            if let (Some(&p), Some(parent)) = (self.parent_ports.get(&n.name), &n.parent) {
                let name = match n.vlan {
                    Some(v) => format!("parent:{parent}.{v}"),
                    None => format!("parent:{parent}"),
                };
                names.ports.insert(p, name);
            }
            for (peer, p) in self.overlays.ports.get(&n.name).into_iter().flatten() {
                names.ports.insert(*p, super::overlay::port_name(*peer));
            }
            names
                .macs
                .insert(n.host_mac.0, format!("host port of {}", n.name));
        }
        if let Some((p, _, mac)) = &self.uplink {
            names.ports.insert(*p, "uplink".into());
            names.macs.insert(mac.0, "uplink".into());
        }
        names
    }

    /// A trace target: a container (`web`, `web:eth1`), a network, `host:NETWORK`, `uplink`, or
    /// an interface name of the daemon's namespace (veth, tap, uplink).
    pub fn resolve(&self, state: &State, target: &str) -> Option<(TraceTarget, Option<MacAddr>)> {
        let (cname, ifname) = target.split_once(':').unwrap_or((target, "eth0"));
        if let Some(c) = state.containers.get(cname) {
            let e = c.endpoints.iter().find(|e| e.interface == ifname)?;
            let p = self.endpoint_ports.get(&e.id)?;
            return Some((TraceTarget::Port(*p), Some(e.mac)));
        }
        if let Some(n) = state.networks.get(target) {
            return Some((TraceTarget::Network(DomainId(n.domain)), None));
        }
        if let Some(net) = target.strip_prefix("host:") {
            let n = state.networks.get(net)?;
            let p = self.host_ports.get(net)?;
            return Some((TraceTarget::Port(*p), Some(n.host_mac)));
        }
        if let Some((p, name, mac)) = &self.uplink {
            if target == "uplink" || target == name {
                return Some((TraceTarget::Port(*p), Some(*mac)));
            }
        }
        for n in state.networks.values() {
            if n.host_interface == target {
                let p = self.host_ports.get(&n.name)?;
                return Some((TraceTarget::Port(*p), Some(n.host_mac)));
            }
        }
        for c in state.containers.values() {
            for e in &c.endpoints {
                if e.host_interface == target {
                    let p = self.endpoint_ports.get(&e.id)?;
                    return Some((TraceTarget::Port(*p), Some(e.mac)));
                }
            }
        }
        None
    }
}
