//! The engine's command API: the only way other threads change or read the data plane.
//!
//! A command travels over a crossbeam channel and a mio `Waker` wakes the engine, which applies
//! commands between batches, never in the middle of one. Replies come back on a one-shot channel
//! carried in the command. Everything here is plain data; `control/` builds on these types alone.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{bounded, Sender};

use super::counters::PortCounters;
use super::nat::{ConnInfo, NatUpdate};
use super::{MAX_CONFLICTS, MAX_PORTS};
use crate::port::{Port, PortError, PortKind};
use crate::table::{CamError, CamStats, CtStats, LinkRule, PortRole, Subnet};
use crate::trace::{Capture, TraceArm, TraceRecord};
use crate::{DomainId, MacAddr, PortId, VlanId};

/// Errors of engine commands, naming the input that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no port with id {0}")]
    NoSuchPort(PortId),
    #[error("the engine holds at most {0} ports")]
    TooManyPorts(usize),
    #[error(transparent)]
    Cam(#[from] CamError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("registering port '{name}' with the poller failed: {source}")]
    Register {
        name: String,
        source: std::io::Error,
    },
    #[error("the engine has stopped")]
    Stopped,
    #[error("at most {0} captures run at once")]
    TooManyCaptures(usize),
    #[error("port '{0}' cannot be shared between engine workers (run with --workers 1)")]
    NotShareable(String),
    #[error("port id {0} is taken in another worker")]
    IdTaken(PortId),
    #[error("{given} remote endpoints for one network; at most {max}")]
    TooManyEndpoints { given: usize, max: usize },
}

pub enum Command {
    AddPort {
        port: Box<dyn Port>,
        domain: DomainId,
        role: PortRole,
        /// `Some(id)`: another worker owns the port under `id`; this is its sender, placed at `id`.
        at: Option<PortId>,
        reply: Sender<Result<PortId, EngineError>>,
    },
    SetPolicy {
        update: PolicyUpdate,
        reply: Sender<Result<(), EngineError>>,
    },
    SetNat {
        update: NatUpdate,
        reply: Sender<Result<(), EngineError>>,
    },
    Connections {
        reply: Sender<(Vec<ConnInfo>, CtStats)>,
    },
    /// Only the latest address conflicts (cheaper than a snapshot, for periodic checks).
    Conflicts {
        reply: Sender<Vec<AddressConflict>>,
    },
    TraceArm {
        arm: TraceArm,
        /// The arm's budget, shared by every worker (starts at `arm.remaining`).
        budget: Arc<AtomicU32>,
        reply: Sender<Result<(), EngineError>>,
    },
    /// Disarms every trace and empties the ring.
    TraceClear {
        reply: Sender<()>,
    },
    TraceShow {
        reply: Sender<Vec<TraceRecord>>,
    },
    CaptureStart {
        capture: Capture,
        /// The id the handle chose (the same in every worker).
        id: u32,
        reply: Sender<Result<u32, EngineError>>,
    },
    /// Stops capture `id`; replies with the frames it could not deliver.
    CaptureStop {
        id: u32,
        reply: Sender<u64>,
    },
    TracePacket {
        port: PortId,
        frame: Vec<u8>,
        reply: Sender<Result<TraceRecord, EngineError>>,
    },
    RemovePort {
        id: PortId,
        reply: Sender<Result<(), EngineError>>,
    },
    AddStaticMac {
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
        port: PortId,
        reply: Sender<Result<(), EngineError>>,
    },
    RemoveStaticMac {
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
        reply: Sender<bool>,
    },
    SetAging {
        ms: u64,
    },
    Snapshot {
        reply: Sender<Snapshot>,
    },
    /// Whether ports are read (`EngineHandle::set_forwarding`).
    SetForwarding {
        on: bool,
        reply: Sender<Result<(), EngineError>>,
    },
    Shutdown,
}

/// A change to the policy tables (`table::Policy`). The control plane computes them from its
/// state; each replaces one part whole, so there is never a half-applied set of rules.
#[derive(Clone, Debug)]
pub enum PolicyUpdate {
    Role {
        port: PortId,
        role: PortRole,
    },
    /// `icc = false` closes the network's inter-container traffic to links only.
    Icc {
        domain: DomainId,
        icc: bool,
    },
    /// Every link rule of every network.
    Links(HashSet<LinkRule>),
    /// Every switchyard subnet, and which addresses' owners are attached to which networks.
    Isolation {
        subnets: Vec<Subnet>,
        attached: HashSet<(Ipv4Addr, DomainId)>,
    },
    /// Every endpoint of an overlay network on other hosts (address, MAC), from the cluster:
    /// ARP for them is answered on this host (`arp-proxy`). Replaces the domain's list whole.
    RemoteEndpoints {
        domain: DomainId,
        endpoints: Vec<(Ipv4Addr, MacAddr)>,
    },
    /// Several at once, in order, between the same two batches (one round trip to the engine).
    Many(Vec<PolicyUpdate>),
}

/// Whether a port is attached, or its interface went away while attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    Up,
    /// The interface disappeared; the port forwards nothing and keeps its counters for display.
    Gone,
}

#[derive(Clone, Debug)]
pub struct PortInfo {
    pub id: PortId,
    pub name: String,
    pub kind: PortKind,
    pub domain: DomainId,
    pub vnet_hdr: bool,
    pub mac: Option<MacAddr>,
    pub state: PortState,
    pub counters: PortCounters,
}

#[derive(Clone, Debug)]
pub struct MacEntry {
    pub domain: DomainId,
    pub vlan: VlanId,
    pub mac: MacAddr,
    pub port: PortId,
    /// Milliseconds since the entry was last refreshed (0 for static entries).
    pub age_ms: u64,
    pub is_static: bool,
}

/// Another host claimed (by ARP on a parent port) an address a local container holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressConflict {
    pub ip: Ipv4Addr,
    /// The claimant's MAC.
    pub mac: MacAddr,
    pub port: PortId,
    /// Engine time of the claim.
    pub at_ms: u64,
}

/// A consistent copy of the engine's state, taken between batches.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub ports: Vec<PortInfo>,
    pub macs: Vec<MacEntry>,
    pub cam: CamStats,
    /// The latest address conflicts seen on parent ports, oldest first.
    pub conflicts: Vec<AddressConflict>,
    pub conntrack: CtStats,
    pub aging_ms: u64,
    pub uptime_ms: u64,
    /// Engine workers answering (summed when the handle merges their snapshots).
    pub workers: usize,
    /// Table changes (learned MACs, connections and their updates) a worker could not tell
    /// another because that one's queue was full: the other's replica missed them (see
    /// `workers`). Summed over workers.
    pub peer_lost: u64,
}

/// One worker as the handle reaches it.
pub(super) struct WorkerLink {
    pub(super) commands: Sender<Command>,
    pub(super) waker: Arc<mio::Waker>,
    /// The CPU the worker's thread was pinned to when spawned (`None`: not pinned).
    pub(super) cpu: Option<usize>,
}

/// Which worker receives from which port (the handle's own record, for placing the next one).
struct Placement {
    owner: Vec<Option<usize>>,
    owned: Vec<usize>,
}

/// The control side's handle on a running engine. Cheap to clone; every method wakes the engine.
/// With several workers it programs all of them (see `workers`) and merges what they answer, so
/// callers see one switch.
#[derive(Clone)]
pub struct EngineHandle {
    workers: Arc<[WorkerLink]>,
    /// Port changes go one at a time, so every worker holds a port under the same id.
    placement: Arc<Mutex<Placement>>,
    next_capture: Arc<AtomicU32>,
}

impl EngineHandle {
    pub(super) fn new(workers: Vec<WorkerLink>) -> EngineHandle {
        let n = workers.len();
        EngineHandle {
            workers: workers.into(),
            placement: Arc::new(Mutex::new(Placement {
                owner: vec![None; MAX_PORTS],
                owned: vec![0; n],
            })),
            next_capture: Arc::new(AtomicU32::new(1)),
        }
    }

    /// The CPU the (first) engine thread is pinned to, if it is.
    pub fn cpu(&self) -> Option<usize> {
        self.workers[0].cpu
    }

    /// Each worker's CPU, in worker order.
    pub fn cpus(&self) -> Vec<Option<usize>> {
        self.workers.iter().map(|w| w.cpu).collect()
    }

    /// How many engine workers there are.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    fn send_to(&self, worker: usize, cmd: Command) -> Result<(), EngineError> {
        let w = &self.workers[worker];
        w.commands.send(cmd).map_err(|_| EngineError::Stopped)?;
        // A failed wake only delays the command to the next event or timer tick.
        let _ = w.waker.wake();
        Ok(())
    }

    fn call_on<T>(
        &self,
        worker: usize,
        make: impl FnOnce(Sender<T>) -> Command,
    ) -> Result<T, EngineError> {
        let (tx, rx) = bounded(1);
        self.send_to(worker, make(tx))?;
        rx.recv().map_err(|_| EngineError::Stopped)
    }

    /// Sends a command to every worker, then collects every answer (in worker order).
    fn call_all<T>(&self, make: impl Fn(Sender<T>) -> Command) -> Result<Vec<T>, EngineError> {
        let mut replies = Vec::with_capacity(self.workers.len());
        for w in 0..self.workers.len() {
            let (tx, rx) = bounded(1);
            self.send_to(w, make(tx))?;
            replies.push(rx);
        }
        replies
            .into_iter()
            .map(|rx| rx.recv().map_err(|_| EngineError::Stopped))
            .collect()
    }

    /// `call_all` for commands that may fail: the first error, else the first worker's answer.
    fn call_all_ok<T>(
        &self,
        make: impl Fn(Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<T, EngineError> {
        let mut first = None;
        for r in self.call_all(make)? {
            let r = r?;
            first.get_or_insert(r);
        }
        first.ok_or(EngineError::Stopped)
    }

    fn send_all(&self, make: impl Fn() -> Command) -> Result<(), EngineError> {
        for w in 0..self.workers.len() {
            self.send_to(w, make())?;
        }
        Ok(())
    }

    pub fn add_port(&self, port: Box<dyn Port>, domain: DomainId) -> Result<PortId, EngineError> {
        self.add_port_as(port, domain, PortRole::Plain)
    }

    /// Attaches a port whose policy role is in force from its first frame. With several workers,
    /// every worker receives from its own socket of a port that can fan out (`Port::receiver`);
    /// otherwise the least loaded one receives and every other gets a `Port::sender`. Either way
    /// each worker holds the port under the same id.
    pub fn add_port_as(
        &self,
        port: Box<dyn Port>,
        domain: DomainId,
        role: PortRole,
    ) -> Result<PortId, EngineError> {
        self.place_port(port, domain, role, None)
    }

    /// As `add_port_as`, received by the worker that receives from `beside` (when it is still
    /// attached): ports that read one shared socket (`VxlanPort`s of one underlay port) hand each
    /// other datagrams, which is only free of lost wake-ups within one thread.
    pub fn add_port_beside(
        &self,
        port: Box<dyn Port>,
        domain: DomainId,
        role: PortRole,
        beside: PortId,
    ) -> Result<PortId, EngineError> {
        self.place_port(port, domain, role, Some(beside))
    }

    fn place_port(
        &self,
        port: Box<dyn Port>,
        domain: DomainId,
        role: PortRole,
        beside: Option<PortId>,
    ) -> Result<PortId, EngineError> {
        let mut placement = self.placement.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.workers.len();
        let mut others: Vec<Box<dyn Port>> = (1..n).map_while(|_| port.receiver()).collect();
        let fanout = n > 1 && others.len() == n - 1;
        let order = if fanout {
            // Members of a group steered by flow: which worker reads which member does not matter.
            (0..n).collect::<Vec<usize>>()
        } else {
            let least_loaded = (0..n).min_by_key(|&w| placement.owned[w]).unwrap_or(0);
            let owner = beside
                .and_then(|b| placement.owner.get(b.0 as usize).copied().flatten())
                .unwrap_or(least_loaded);
            others.clear();
            for _ in 1..n {
                match port.sender() {
                    Some(s) => others.push(s),
                    None => return Err(EngineError::NotShareable(port.name().to_string())),
                }
            }
            std::iter::once(owner)
                .chain((0..n).filter(|&w| w != owner))
                .collect()
        };
        let id = self.call_on(order[0], |reply| Command::AddPort {
            port,
            domain,
            role: role.clone(),
            at: None,
            reply,
        })??;
        for (&w, other) in order[1..].iter().zip(others) {
            let placed = self.call_on(w, |reply| Command::AddPort {
                port: other,
                domain,
                role: role.clone(),
                at: Some(id),
                reply,
            });
            if let Err(e) = placed.and_then(|r| r) {
                let _ = self.call_all(|reply| Command::RemovePort { id, reply });
                return Err(e);
            }
        }
        if !fanout {
            placement.owner[id.0 as usize] = Some(order[0]);
            placement.owned[order[0]] += 1;
        }
        Ok(id)
    }

    pub fn remove_port(&self, id: PortId) -> Result<(), EngineError> {
        let mut placement = self.placement.lock().unwrap_or_else(|e| e.into_inner());
        let result = self.call_all_ok(|reply| Command::RemovePort { id, reply });
        if let Some(owner) = placement
            .owner
            .get_mut(id.0 as usize)
            .and_then(Option::take)
        {
            placement.owned[owner] -= 1;
        }
        result
    }

    /// Traces the next packets entering a port or network (replacing an earlier arm there). The
    /// budget is one, whichever worker receives the packets.
    pub fn trace_arm(&self, arm: TraceArm) -> Result<(), EngineError> {
        let budget = Arc::new(AtomicU32::new(arm.remaining));
        self.call_all_ok(|reply| Command::TraceArm {
            arm: arm.clone(),
            budget: budget.clone(),
            reply,
        })
    }

    /// Starts copying frames to `capture.sink`; returns the capture's id.
    pub fn capture_start(&self, capture: Capture) -> Result<u32, EngineError> {
        let id = self.next_capture.fetch_add(1, Ordering::Relaxed);
        let result = self.call_all_ok(|reply| Command::CaptureStart {
            capture: capture.clone(),
            id,
            reply,
        });
        if result.is_err() {
            let _ = self.capture_stop(id);
        }
        result
    }

    /// Stops capture `id`; returns how many frames it had to drop (the reader fell behind).
    pub fn capture_stop(&self, id: u32) -> Result<u64, EngineError> {
        Ok(self
            .call_all(|reply| Command::CaptureStop { id, reply })?
            .into_iter()
            .sum())
    }

    pub fn trace_clear(&self) -> Result<(), EngineError> {
        self.call_all(|reply| Command::TraceClear { reply })
            .map(|_| ())
    }

    /// The recorded traces, oldest first (every worker's, in time order).
    pub fn trace_show(&self) -> Result<Vec<TraceRecord>, EngineError> {
        let mut all = self.call_all(|reply| Command::TraceShow { reply })?;
        if all.len() == 1 {
            return Ok(all.pop().unwrap_or_default());
        }
        // Each worker numbers its own records: renumber the merged list, keeping the count of
        // records taken so far (the rings forget the oldest).
        let taken: u64 = all
            .iter()
            .map(|r| r.last().map(|t| t.seq).unwrap_or(0))
            .sum();
        let mut merged: Vec<TraceRecord> = all.into_iter().flatten().collect();
        merged.sort_by_key(|r| r.time_ns);
        let first = taken + 1 - merged.len() as u64;
        for (i, r) in merged.iter_mut().enumerate() {
            r.seq = first + i as u64;
        }
        Ok(merged)
    }

    /// A what-if trace of `frame` entering `port` (nothing changes, nothing is sent).
    pub fn trace_packet(&self, port: PortId, frame: Vec<u8>) -> Result<TraceRecord, EngineError> {
        self.call_on(0, |reply| Command::TracePacket { port, frame, reply })?
    }

    /// Replaces part of the NAT configuration; returns once applied.
    pub fn set_nat(&self, update: NatUpdate) -> Result<(), EngineError> {
        self.call_all_ok(|reply| Command::SetNat {
            update: update.clone(),
            reply,
        })
    }

    /// The latest address conflicts seen on parent ports, oldest first.
    pub fn conflicts(&self) -> Result<Vec<AddressConflict>, EngineError> {
        let all = self.call_all(|reply| Command::Conflicts { reply })?;
        Ok(merge_conflicts(all))
    }

    /// Every tracked connection and the table's counters (every worker holds the same).
    pub fn connections(&self) -> Result<(Vec<ConnInfo>, CtStats), EngineError> {
        self.call_on(0, |reply| Command::Connections { reply })
    }

    /// Replaces part of the policy; returns once the engine applies it (between two batches).
    pub fn set_policy(&self, update: PolicyUpdate) -> Result<(), EngineError> {
        self.call_all_ok(|reply| Command::SetPolicy {
            update: update.clone(),
            reply,
        })
    }

    pub fn add_static_mac(
        &self,
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
        port: PortId,
    ) -> Result<(), EngineError> {
        self.call_all_ok(|reply| Command::AddStaticMac {
            domain,
            vlan,
            mac,
            port,
            reply,
        })
    }

    pub fn remove_static_mac(
        &self,
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
    ) -> Result<bool, EngineError> {
        Ok(self
            .call_all(|reply| Command::RemoveStaticMac {
                domain,
                vlan,
                mac,
                reply,
            })?
            .into_iter()
            .fold(false, |a, b| a | b))
    }

    pub fn set_aging(&self, ms: u64) -> Result<(), EngineError> {
        self.send_all(|| Command::SetAging { ms })
    }

    /// One view of the switch: the tables of the first worker (every worker holds the same), each
    /// port's counters summed over the workers that received and sent for it.
    pub fn snapshot(&self) -> Result<Snapshot, EngineError> {
        let mut all = self
            .call_all(|reply| Command::Snapshot { reply })?
            .into_iter();
        let mut first = all.next().ok_or(EngineError::Stopped)?;
        let mut conflicts = vec![std::mem::take(&mut first.conflicts)];
        for other in all {
            for info in other.ports {
                if let Some(p) = first.ports.iter_mut().find(|p| p.id == info.id) {
                    p.counters.add(&info.counters);
                    if info.state == PortState::Gone {
                        p.state = PortState::Gone;
                    }
                }
            }
            conflicts.push(other.conflicts);
            first.workers += other.workers;
            first.peer_lost += other.peer_lost;
        }
        first.conflicts = merge_conflicts(conflicts);
        Ok(first)
    }

    /// Holds (`false`) or resumes (`true`) forwarding on every worker: a held engine applies
    /// commands but reads no port, so frames wait in the ports' rings (and what overflows them is
    /// counted as overruns). The daemon holds it while it programs a restored state, so no frame
    /// meets half of it: a published port's client answered with a reset before the port is
    /// published again, or a reply masqueraded because its mapping is not back yet, whose entry
    /// then clashes with the connection's (tests/nat.rs `tcp_survives_a_restart...` lost its
    /// connection so). An engine starts forwarding.
    pub fn set_forwarding(&self, on: bool) -> Result<(), EngineError> {
        self.call_all_ok(|reply| Command::SetForwarding { on, reply })
    }

    pub fn shutdown(&self) -> Result<(), EngineError> {
        self.send_all(|| Command::Shutdown)
    }
}

/// Every worker's conflicts, oldest first, the latest `MAX_CONFLICTS`.
fn merge_conflicts(all: Vec<Vec<AddressConflict>>) -> Vec<AddressConflict> {
    let mut merged: Vec<AddressConflict> = all.into_iter().flatten().collect();
    merged.sort_by_key(|c| c.at_ms);
    let extra = merged.len().saturating_sub(MAX_CONFLICTS);
    merged.drain(..extra);
    merged
}
