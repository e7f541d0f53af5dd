//! The engine: one thread that owns the ports and the tables and moves frames.
//!
//! The loop waits on a mio `Poll` over every port fd and the control `Waker`, and handles a closed set
//! of events: a port is readable (receive a batch, run each frame through the stages, flush the
//! per-egress queues), the control channel has commands (apply them between batches), or the aging
//! timer fired. Ports are edge-triggered: a port that filled a whole batch stays in the ready set and
//! is served again, one batch per port per round, before the loop sleeps.
//!
//! Frames are never copied between ports: egress queues hold slot indices into the receive batch, and
//! a port's `send_batch` gets views into it. The only copies are the ones the OS makes and software
//! segmentation for ports without vnet headers.
//!
//! With several workers (`EngineConfig::workers`), each is one such engine on its own thread,
//! receiving from its share of the ports and sending to any port; see `workers` for how their
//! tables stay one switch.
//!
//! By job: `event_loop` (`run`, `step`, the aging tick), `ports` (the port registry and the flood
//! lists), `pipeline` (a frame through the stages, tracing, capture, drop counting), `apply`
//! (commands from the control plane, policy, the snapshot), `nat` (the engine's side of NAT),
//! `egress` (flushing the per-port queues).

pub mod affinity;
mod apply;
pub mod command;
pub mod counters;
mod egress;
mod event_loop;
mod nat;
mod pipeline;
mod ports;
mod workers;

use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use mio::{Poll, Token, Waker};

pub use command::{
    AddressConflict, Command, EngineError, EngineHandle, MacEntry, PolicyUpdate, PortInfo,
    PortState, Snapshot,
};
pub use counters::PortCounters;
pub use nat::{ConnInfo, NatUpdate};
pub use workers::EngineThreads;

use crate::offload::Segments;
use crate::port::{Port, PortKind, RxBatch, BATCH};
use crate::stage::Tables;
use crate::table::{CamConfig, CamTable, ConnTrack, CtConfig, NatTable, Policy};
use crate::trace::{Capture, TraceRecord, Tracer};
use crate::{DomainId, MacAddr, PortId};
pub use affinity::CpuPin;

/// Address conflicts remembered for `stats` (the oldest is forgotten first).
pub const MAX_CONFLICTS: usize = 16;
/// At most this many captures run at once.
pub const MAX_CAPTURES: usize = 16;
/// At most this many ports; port ids index fixed arrays.
pub const MAX_PORTS: usize = 1024;
const WAKER: Token = Token(usize::MAX);
/// How often aged MAC entries are swept.
const AGING_TICK: Duration = Duration::from_secs(1);
/// MAC entries, and separately connections, one round of the loop removes at most: about 0.25 ms
/// of work on a quiet machine (expiring a connection costs 232-290 ns at a million entries), 0.6
/// ms loaded, where a million due at once took one tick 0.23-0.72 s (bench/RESULTS.md). With
/// more due, the next round goes on at once, between batches, until none is left.
pub const AGING_BUDGET: usize = 1024;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub cam: CamConfig,
    /// Size and timeouts of the connection tracking table (NAT).
    pub conntrack: CtConfig,
    /// Never sleep in `epoll_wait`: trades a core for latency (see shared/notes/measurements.md).
    pub busy_poll: bool,
    /// After the last received frame, keep polling without sleeping for this long. Under load the
    /// next frame usually comes sooner than a sleep/wake-up cycle costs; when idle, the engine sleeps
    /// after this window. Zero disables it.
    pub spin: Duration,
    /// Which CPU the engine thread is pinned to (see `affinity`).
    pub cpu: CpuPin,
    /// The engine thread's nice value (0 leaves it as inherited; see `affinity`).
    pub nice: i32,
    /// Engine worker threads for `spawn`: 0 means one per CPU the process may use (see `workers`).
    /// `new` always makes one.
    pub workers: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cam: CamConfig::default(),
            conntrack: CtConfig::default(),
            busy_poll: false,
            spin: DEFAULT_SPIN,
            cpu: CpuPin::Auto,
            nice: 0,
            workers: 1,
        }
    }
}

/// The engine's clock: one start for every worker, so their timestamps (traces, captures, aging)
/// compare.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    /// Unix time of `start`, in nanoseconds.
    epoch_ns: u64,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            start: Instant::now(),
            epoch_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        }
    }
}

/// Default adaptive-polling window (see `EngineConfig::spin` and bench/RESULTS.md).
pub const DEFAULT_SPIN: Duration = Duration::from_micros(100);

/// A port as the engine keeps it.
struct PortSlot {
    /// `None` once the interface has gone; the slot keeps name and counters for display.
    io: Option<Box<dyn Port>>,
    name: String,
    kind: PortKind,
    vnet_hdr: bool,
    /// `Port::takes_gso`.
    takes_gso: bool,
    mac: Option<MacAddr>,
    /// A tunnel port's place on the underlay (traces show the encapsulation).
    tunnel: Option<crate::port::Tunnel>,
    domain: DomainId,
    counters: PortCounters,
}

/// Pending frames for one egress port: slot indices into the current receive batch.
#[derive(Clone, Copy)]
struct TxQueue {
    slots: [u8; BATCH],
    len: usize,
}

impl TxQueue {
    const EMPTY: TxQueue = TxQueue {
        slots: [0; BATCH],
        len: 0,
    };
}

pub struct Engine {
    ports: Vec<Option<PortSlot>>,
    /// Up ports of each bridge domain, indexed by `DomainId`: the flood lists.
    domains: Vec<Vec<PortId>>,
    /// Ports with frames possibly still waiting (edge-triggered readiness not yet drained).
    ready: Vec<bool>,
    tables: Tables,
    rx: RxBatch,
    tx: Vec<TxQueue>,
    /// Egress ports with a non-empty queue in the current batch.
    touched: Vec<PortId>,
    segments: Segments,
    poll: Poll,
    commands: Receiver<Command>,
    start: Instant,
    /// Added to the clock; lets tests age entries without sleeping.
    clock_offset_ms: u64,
    next_aging_ms: u64,
    /// The last aging round used its whole budget: more may be due, so the next round ages again
    /// (and the loop does not sleep until it has).
    aging_behind: bool,
    busy_poll: bool,
    spin: Duration,
    /// Ports are read (`Command::SetForwarding`); while held, readiness is remembered in `ready`.
    forwarding: bool,
    stopping: bool,
    /// Next hops to resolve on the uplink (sent after the batch), and when each was last asked.
    arp_wanted: Vec<std::net::Ipv4Addr>,
    arp_asked: std::collections::HashMap<std::net::Ipv4Addr, u64>,
    /// ICMP errors sent in the current second (`nat::ICMP_ERRORS_PER_SECOND` at most), and which
    /// second that is.
    icmp_errors: (u64, u32),
    /// Trace arms and the record ring.
    tracer: Tracer,
    /// The record of the packet being traced (copied into the ring when done).
    scratch: TraceRecord,
    /// The latest address conflicts seen on parent ports (bounded).
    conflicts: std::collections::VecDeque<AddressConflict>,
    /// Running packet captures (`switchyard capture`), with their ids.
    captures: Vec<(u32, Capture)>,
    /// Unix time of `start`, for capture timestamps.
    epoch_ns: u64,
    /// The other workers, and the table changes they tell this one (see `workers`).
    peers: workers::Peers,
    /// Whether received batches get the prefetch pass (`pipeline::prefetch_batch`); `None`:
    /// when the tables are large.
    prefetch: Option<bool>,
}

impl Engine {
    /// Builds an engine and the handle that programs it. Call `run` (or `spawn`) to start forwarding.
    pub fn new(config: EngineConfig) -> std::io::Result<(Engine, EngineHandle)> {
        let (engine, worker) = Engine::worker(&config, Clock::now(), workers::Peers::none())?;
        Ok((engine, EngineHandle::new(vec![worker])))
    }

    /// One worker: an engine with its own poller and command channel, on the shared clock.
    fn worker(
        config: &EngineConfig,
        clock: Clock,
        peers: workers::Peers,
    ) -> std::io::Result<(Engine, command::WorkerLink)> {
        let poll = Poll::new()?;
        let waker = std::sync::Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = unbounded();
        let engine = Engine {
            ports: Vec::with_capacity(MAX_PORTS),
            domains: Vec::new(),
            ready: vec![false; MAX_PORTS],
            tables: Tables {
                cam: CamTable::new(config.cam),
                policy: Policy::default(),
                nat: NatTable::default(),
                conntrack: ConnTrack::new(config.conntrack),
                now_ms: 0,
            },
            rx: RxBatch::new(),
            tx: vec![TxQueue::EMPTY; MAX_PORTS],
            touched: Vec::with_capacity(MAX_PORTS),
            segments: Segments::new(),
            poll,
            commands: rx,
            start: clock.start,
            clock_offset_ms: 0,
            next_aging_ms: AGING_TICK.as_millis() as u64,
            aging_behind: false,
            busy_poll: config.busy_poll,
            spin: config.spin,
            forwarding: true,
            stopping: false,
            arp_wanted: Vec::with_capacity(8),
            arp_asked: std::collections::HashMap::new(),
            icmp_errors: (0, 0),
            tracer: Tracer::default(),
            scratch: TraceRecord::EMPTY,
            captures: Vec::new(),
            conflicts: std::collections::VecDeque::with_capacity(MAX_CONFLICTS),
            epoch_ns: clock.epoch_ns,
            peers,
            prefetch: None,
        };
        Ok((
            engine,
            command::WorkerLink {
                commands: tx,
                waker,
                cpu: None,
            },
        ))
    }

    /// Starts the engine: `config.workers` threads (one per CPU the process may use when 0), each
    /// pinned and prioritised as `config.cpu` and `config.nice` say (see `affinity::placements`). A
    /// CPU the process may not run on is refused here (`InvalidInput`, with a message naming the
    /// allowed CPUs); so is a nice value the OS refuses (negative ones need CAP_SYS_NICE): every
    /// thread reports its setup before this returns.
    pub fn spawn(config: EngineConfig) -> std::io::Result<(EngineHandle, EngineThreads)> {
        workers::spawn(config)
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + self.clock_offset_ms
    }

    /// Moves the engine's clock forward (tests of aging).
    pub fn advance_clock(&mut self, ms: u64) {
        self.clock_offset_ms += ms;
    }
}

#[cfg(test)]
mod overlay_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod route_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace_tests;
