//! The engine's command API: the only way other threads change or read the data plane.
//!
//! A command travels over a crossbeam channel and a mio `Waker` wakes the engine, which applies
//! commands between batches, never in the middle of one. Replies come back on a one-shot channel
//! carried in the command. Everything here is plain data; `control/` builds on these types alone.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam_channel::{bounded, Sender};

use super::counters::PortCounters;
use super::nat::{ConnInfo, NatUpdate};
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
}

pub enum Command {
    AddPort {
        port: Box<dyn Port>,
        domain: DomainId,
        role: PortRole,
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
}

/// The control side's handle on a running engine. Cheap to clone; every method wakes the engine.
#[derive(Clone)]
pub struct EngineHandle {
    pub(super) commands: Sender<Command>,
    pub(super) waker: Arc<mio::Waker>,
    /// The CPU the engine thread was pinned to when spawned (`None`: not pinned).
    pub(super) cpu: Option<usize>,
}

impl EngineHandle {
    /// The CPU the engine thread is pinned to, if it is.
    pub fn cpu(&self) -> Option<usize> {
        self.cpu
    }

    fn send(&self, cmd: Command) -> Result<(), EngineError> {
        self.commands.send(cmd).map_err(|_| EngineError::Stopped)?;
        // A failed wake only delays the command to the next event or timer tick.
        let _ = self.waker.wake();
        Ok(())
    }

    fn call<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, EngineError> {
        let (tx, rx) = bounded(1);
        self.send(make(tx))?;
        rx.recv().map_err(|_| EngineError::Stopped)
    }

    pub fn add_port(&self, port: Box<dyn Port>, domain: DomainId) -> Result<PortId, EngineError> {
        self.add_port_as(port, domain, PortRole::Plain)
    }

    /// Attaches a port whose policy role is in force from its first frame.
    pub fn add_port_as(
        &self,
        port: Box<dyn Port>,
        domain: DomainId,
        role: PortRole,
    ) -> Result<PortId, EngineError> {
        self.call(|reply| Command::AddPort {
            port,
            domain,
            role,
            reply,
        })?
    }

    /// Traces the next packets entering a port or network (replacing an earlier arm there).
    pub fn trace_arm(&self, arm: TraceArm) -> Result<(), EngineError> {
        self.call(|reply| Command::TraceArm { arm, reply })?
    }

    /// Starts copying frames to `capture.sink`; returns the capture's id.
    pub fn capture_start(&self, capture: Capture) -> Result<u32, EngineError> {
        self.call(|reply| Command::CaptureStart { capture, reply })?
    }

    /// Stops capture `id`; returns how many frames it had to drop (the reader fell behind).
    pub fn capture_stop(&self, id: u32) -> Result<u64, EngineError> {
        self.call(|reply| Command::CaptureStop { id, reply })
    }

    pub fn trace_clear(&self) -> Result<(), EngineError> {
        self.call(|reply| Command::TraceClear { reply })
    }

    /// The recorded traces, oldest first.
    pub fn trace_show(&self) -> Result<Vec<TraceRecord>, EngineError> {
        self.call(|reply| Command::TraceShow { reply })
    }

    /// A what-if trace of `frame` entering `port` (nothing changes, nothing is sent).
    pub fn trace_packet(&self, port: PortId, frame: Vec<u8>) -> Result<TraceRecord, EngineError> {
        self.call(|reply| Command::TracePacket { port, frame, reply })?
    }

    /// Replaces part of the NAT configuration; returns once applied.
    pub fn set_nat(&self, update: NatUpdate) -> Result<(), EngineError> {
        self.call(|reply| Command::SetNat { update, reply })?
    }

    /// The latest address conflicts seen on parent ports, oldest first.
    pub fn conflicts(&self) -> Result<Vec<AddressConflict>, EngineError> {
        self.call(|reply| Command::Conflicts { reply })
    }

    /// Every tracked connection and the table's counters.
    pub fn connections(&self) -> Result<(Vec<ConnInfo>, CtStats), EngineError> {
        self.call(|reply| Command::Connections { reply })
    }

    /// Replaces part of the policy; returns once the engine applies it (between two batches).
    pub fn set_policy(&self, update: PolicyUpdate) -> Result<(), EngineError> {
        self.call(|reply| Command::SetPolicy { update, reply })?
    }

    pub fn remove_port(&self, id: PortId) -> Result<(), EngineError> {
        self.call(|reply| Command::RemovePort { id, reply })?
    }

    pub fn add_static_mac(
        &self,
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
        port: PortId,
    ) -> Result<(), EngineError> {
        self.call(|reply| Command::AddStaticMac {
            domain,
            vlan,
            mac,
            port,
            reply,
        })?
    }

    pub fn remove_static_mac(
        &self,
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
    ) -> Result<bool, EngineError> {
        self.call(|reply| Command::RemoveStaticMac {
            domain,
            vlan,
            mac,
            reply,
        })
    }

    pub fn set_aging(&self, ms: u64) -> Result<(), EngineError> {
        self.send(Command::SetAging { ms })
    }

    pub fn snapshot(&self) -> Result<Snapshot, EngineError> {
        self.call(|reply| Command::Snapshot { reply })
    }

    pub fn shutdown(&self) -> Result<(), EngineError> {
        self.send(Command::Shutdown)
    }
}
