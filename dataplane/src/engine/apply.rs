//! Command handling: the engine thread's side of `EngineHandle` (`apply`), policy updates and the
//! snapshot the control plane reads counters and tables from.

use super::{
    Command, Engine, EngineError, MacEntry, PolicyUpdate, PortInfo, PortState, Snapshot,
    MAX_CAPTURES,
};
use crate::trace::TraceTarget;
use crate::PortId;

impl Engine {
    /// Applies one control command. Replies whose receiver has gone are ignored.
    pub fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::AddPort {
                port,
                domain,
                role,
                at,
                reply,
            } => {
                let r = match at {
                    None => self.add_port_as(port, domain, role),
                    Some(id) => self.add_port_at(id, port, domain, role),
                };
                let _ = reply.send(r);
            }
            Command::SetPolicy { update, reply } => {
                let _ = reply.send(self.set_policy(update));
            }
            Command::SetNat { update, reply } => {
                let _ = reply.send(self.set_nat(update));
            }
            Command::TraceArm { arm, budget, reply } => {
                let r = match arm.target {
                    TraceTarget::Port(p) if !self.port_up(p) => Err(EngineError::NoSuchPort(p)),
                    _ => {
                        self.tracer.arm_shared(arm, budget);
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
            Command::CaptureStart { capture, id, reply } => {
                let r = match capture.target {
                    TraceTarget::Port(p) if !self.port_up(p) => Err(EngineError::NoSuchPort(p)),
                    _ if self.captures.len() >= MAX_CAPTURES => {
                        Err(EngineError::TooManyCaptures(MAX_CAPTURES))
                    }
                    _ => {
                        self.captures.push((id, capture));
                        Ok(id)
                    }
                };
                let _ = reply.send(r);
            }
            Command::CaptureStop { id, reply } => {
                let i = self.captures.iter().position(|(c, _)| *c == id);
                let dropped = i.map(|i| self.captures.remove(i).1.dropped).unwrap_or(0);
                let _ = reply.send(dropped);
            }
            Command::TraceClear { reply } => {
                self.tracer.disarm_all();
                self.tracer.ring.clear();
                let _ = reply.send(());
            }
            Command::TraceShow { reply } => {
                let _ = reply.send(self.tracer.ring.iter().copied().collect());
            }
            Command::TracePacket { port, frame, reply } => {
                let _ = reply.send(self.trace_packet(port, &frame));
            }
            Command::Conflicts { reply } => {
                let _ = reply.send(self.conflicts.iter().copied().collect());
            }
            Command::Connections { reply } => {
                let _ = reply.send(self.connections());
            }
            Command::RemovePort { id, reply } => {
                let _ = reply.send(self.remove_port(id));
            }
            Command::AddStaticMac {
                domain,
                vlan,
                mac,
                port,
                reply,
            } => {
                let r = if self.port_up(port) {
                    self.tables
                        .cam
                        .add_static(domain, vlan, mac, port)
                        .map_err(EngineError::from)
                } else {
                    Err(EngineError::NoSuchPort(port))
                };
                let _ = reply.send(r);
            }
            Command::RemoveStaticMac {
                domain,
                vlan,
                mac,
                reply,
            } => {
                let _ = reply.send(self.tables.cam.remove_static(domain, vlan, mac));
            }
            Command::SetAging { ms } => self.tables.cam.set_aging_ms(ms),
            Command::Snapshot { reply } => {
                self.collect_overruns();
                let _ = reply.send(self.snapshot());
            }
            Command::SetForwarding { on, reply } => {
                self.forwarding = on;
                let _ = reply.send(Ok(()));
            }
            Command::Shutdown => self.stopping = true,
        }
    }

    /// Replaces part of the policy tables (the engine thread's side of `EngineHandle::set_policy`).
    pub fn set_policy(&mut self, update: PolicyUpdate) -> Result<(), EngineError> {
        let policy = &mut self.tables.policy;
        match update {
            PolicyUpdate::Role { port, role } => {
                if !self.port_up(port) {
                    return Err(EngineError::NoSuchPort(port));
                }
                self.tables.policy.set_role(port, role);
            }
            PolicyUpdate::Icc { domain, icc } => policy.set_icc(domain, icc),
            PolicyUpdate::Links(links) => policy.set_links(links),
            PolicyUpdate::Isolation { subnets, attached } => {
                policy.set_isolation(subnets, attached)
            }
            PolicyUpdate::RemoteEndpoints { domain, endpoints } => {
                if !policy.set_remote_endpoints(domain, &endpoints) {
                    return Err(EngineError::TooManyEndpoints {
                        given: endpoints.len(),
                        max: crate::table::policy::MAX_REMOTE_ENDPOINTS,
                    });
                }
            }
            PolicyUpdate::Many(updates) => {
                // All are applied (a port gone meanwhile does not hold back the rest).
                let mut first = Ok(());
                for u in updates {
                    let r = self.set_policy(u);
                    if first.is_ok() {
                        first = r;
                    }
                }
                return first;
            }
        }
        Ok(())
    }

    /// Arms a trace from the engine thread itself (benchmarks, tests); others use the handle.
    pub fn trace_arm_local(&mut self, arm: crate::trace::TraceArm) {
        self.tracer.arm(arm);
    }

    pub fn snapshot(&self) -> Snapshot {
        let now = self.now_ms();
        let ports = self
            .ports
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
            .map(|(i, s)| PortInfo {
                id: PortId(i as u16),
                name: s.name.clone(),
                kind: s.kind,
                domain: s.domain,
                vnet_hdr: s.vnet_hdr,
                mac: s.mac,
                state: if s.io.is_some() {
                    PortState::Up
                } else {
                    PortState::Gone
                },
                counters: s.counters,
            })
            .collect();
        let mut macs: Vec<MacEntry> = self
            .tables
            .cam
            .iter()
            .map(|e| MacEntry {
                domain: e.domain,
                vlan: e.vlan,
                mac: e.mac,
                port: e.port,
                age_ms: if e.is_static {
                    0
                } else {
                    now.saturating_sub(e.last_seen)
                },
                is_static: e.is_static,
            })
            .collect();
        macs.sort_by_key(|m| (m.domain, m.vlan, m.port, m.mac));
        Snapshot {
            ports,
            macs,
            conflicts: self.conflicts.iter().copied().collect(),
            conntrack: self.tables.conntrack.stats(),
            cam: self.tables.cam.stats(),
            aging_ms: self.tables.cam.aging_ms(),
            uptime_ms: now,
            workers: 1,
            peer_lost: self.peers.overflow,
        }
    }
}
