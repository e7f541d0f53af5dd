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

pub mod affinity;
pub mod command;
pub mod counters;
mod egress;
mod nat;

use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

pub use command::{
    AddressConflict, Command, EngineError, EngineHandle, MacEntry, PolicyUpdate, PortInfo,
    PortState, Snapshot,
};
pub use counters::PortCounters;
pub use nat::{ConnInfo, NatUpdate};

use crate::offload::Segments;
use crate::port::{Port, PortError, PortKind, RxBatch, BATCH, FRAME_CAPACITY};
use crate::stage::StageId;
use crate::stage::{
    anti_spoof, conflict, icc, ingress, isolation, l2_fwd, l2_learn, nat as nat_stage, DropReason,
    Effects, Tables, Verdict,
};
use crate::table::{
    CamConfig, CamTable, ConnTrack, CtConfig, LearnAction, NatTable, Policy, PortRole,
};
use crate::trace::{Capture, CtStep, Flow, Step, TraceRecord, TraceTarget, Tracer};
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
    mac: Option<MacAddr>,
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
    busy_poll: bool,
    spin: Duration,
    stopping: bool,
    /// Next hops to resolve on the uplink (sent after the batch), and when each was last asked.
    arp_wanted: Vec<std::net::Ipv4Addr>,
    arp_asked: std::collections::HashMap<std::net::Ipv4Addr, u64>,
    /// Trace arms and the record ring.
    tracer: Tracer,
    /// The record of the packet being traced (copied into the ring when done).
    scratch: TraceRecord,
    /// The latest address conflicts seen on parent ports (bounded).
    conflicts: std::collections::VecDeque<AddressConflict>,
    /// Running packet captures (`switchyard capture`), with their ids.
    captures: Vec<(u32, Capture)>,
    next_capture: u32,
    /// Unix time of `start`, for capture timestamps.
    epoch_ns: u64,
}

impl Engine {
    /// Builds an engine and the handle that programs it. Call `run` (or `spawn`) to start forwarding.
    pub fn new(config: EngineConfig) -> std::io::Result<(Engine, EngineHandle)> {
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
            start: Instant::now(),
            clock_offset_ms: 0,
            next_aging_ms: AGING_TICK.as_millis() as u64,
            busy_poll: config.busy_poll,
            spin: config.spin,
            stopping: false,
            arp_wanted: Vec::with_capacity(8),
            arp_asked: std::collections::HashMap::new(),
            tracer: Tracer::default(),
            scratch: TraceRecord::EMPTY,
            captures: Vec::new(),
            next_capture: 1,
            conflicts: std::collections::VecDeque::with_capacity(MAX_CONFLICTS),
            epoch_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        };
        Ok((
            engine,
            EngineHandle {
                commands: tx,
                waker,
                cpu: None,
            },
        ))
    }

    /// Starts the engine on its own thread, pinned and prioritised as `config.cpu` and
    /// `config.nice` say. A CPU the process may not run on is refused here (`InvalidInput`, with a
    /// message naming the allowed CPUs); so is a nice value the OS refuses (negative ones need
    /// CAP_SYS_NICE): the thread reports its setup before this returns.
    pub fn spawn(
        config: EngineConfig,
    ) -> std::io::Result<(EngineHandle, std::thread::JoinHandle<()>)> {
        let cpu = affinity::resolve(config.cpu)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let nice = config.nice;
        let (engine, mut handle) = Engine::new(config)?;
        handle.cpu = cpu;
        let (setup_tx, setup_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("switchyard-engine".into())
            .spawn(move || {
                let setup = affinity::place_current_thread(cpu, nice);
                let ok = setup.is_ok();
                let _ = setup_tx.send(setup);
                if ok {
                    engine.run()
                }
            })?;
        match setup_rx.recv() {
            Ok(Ok(())) => Ok((handle, thread)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other(
                "the engine thread died while starting",
            )),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + self.clock_offset_ms
    }

    /// Moves the engine's clock forward (tests of aging).
    pub fn advance_clock(&mut self, ms: u64) {
        self.clock_offset_ms += ms;
    }

    /// The loop. Returns after a `Shutdown` command or when every handle is gone.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut last_work = Instant::now();
        while !self.stopping {
            let any_ready = self.ready[..self.ports.len()].iter().any(|r| *r);
            let spinning = !self.spin.is_zero() && last_work.elapsed() < self.spin;
            let timeout = if self.busy_poll || any_ready || spinning {
                Duration::ZERO
            } else {
                Duration::from_millis(self.next_aging_ms.saturating_sub(self.now_ms()).max(1))
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!("engine poll failed: {e}");
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => self.drain_commands(),
                    Token(i) if i < MAX_PORTS => self.ready[i] = true,
                    Token(_) => {}
                }
            }
            if self.busy_poll {
                for (i, slot) in self.ports.iter().enumerate() {
                    self.ready[i] = slot.as_ref().is_some_and(|s| s.io.is_some());
                }
            }
            let mut received = 0;
            for i in 0..self.ports.len() {
                if self.ready[i] {
                    let n = self.process_port(PortId(i as u16));
                    received += n;
                    if n < BATCH {
                        self.ready[i] = false;
                    }
                }
            }
            if received > 0 {
                last_work = Instant::now();
            }
            self.tick();
            if self.busy_poll {
                // Commands arrive through the waker's event too, but a busy loop drains eagerly.
                self.drain_commands();
            }
        }
    }

    /// Serves every port once, whether or not the poller said it was ready, and applies pending
    /// commands; returns the number of frames received. For tests and in-memory ports.
    pub fn step(&mut self) -> usize {
        self.drain_commands();
        let mut total = 0;
        for i in 0..self.ports.len() {
            total += self.process_port(PortId(i as u16));
        }
        self.tick();
        total
    }

    fn tick(&mut self) {
        let now = self.now_ms();
        if now >= self.next_aging_ms {
            self.tables.cam.age(now);
            self.tables.conntrack.expire(now);
            self.collect_overruns();
            // Keep the uplink's gateway resolved, so the first packet out does not wait for ARP.
            if let Some(gw) = self.tables.nat.uplink().and_then(|u| u.gateway) {
                if self.tables.nat.neighbor(gw).is_none() {
                    nat::want_arp(&mut self.arp_wanted, gw);
                }
            }
            self.next_aging_ms = now + AGING_TICK.as_millis() as u64;
        }
        self.send_arp_requests();
    }

    fn drain_commands(&mut self) {
        loop {
            match self.commands.try_recv() {
                Ok(cmd) => self.apply(cmd),
                Err(crossbeam_channel::TryRecvError::Empty) => return,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.stopping = true;
                    return;
                }
            }
        }
    }

    /// Applies one control command. Replies whose receiver has gone are ignored.
    pub fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::AddPort {
                port,
                domain,
                role,
                reply,
            } => {
                let _ = reply.send(self.add_port_as(port, domain, role));
            }
            Command::SetPolicy { update, reply } => {
                let _ = reply.send(self.set_policy(update));
            }
            Command::SetNat { update, reply } => {
                let _ = reply.send(self.set_nat(update));
            }
            Command::TraceArm { arm, reply } => {
                let r = match arm.target {
                    TraceTarget::Port(p) if !self.port_up(p) => Err(EngineError::NoSuchPort(p)),
                    _ => {
                        self.tracer.arm(arm);
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
            Command::CaptureStart { capture, reply } => {
                let r = match capture.target {
                    TraceTarget::Port(p) if !self.port_up(p) => Err(EngineError::NoSuchPort(p)),
                    _ if self.captures.len() >= MAX_CAPTURES => {
                        Err(EngineError::TooManyCaptures(MAX_CAPTURES))
                    }
                    _ => {
                        let id = self.next_capture;
                        self.next_capture = self.next_capture.wrapping_add(1);
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
            Command::Shutdown => self.stopping = true,
        }
    }

    fn port_up(&self, id: PortId) -> bool {
        self.ports
            .get(id.0 as usize)
            .and_then(|s| s.as_ref())
            .is_some_and(|s| s.io.is_some())
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

    /// A what-if trace: runs `frame` through the real stages as if `port` had received it, and
    /// returns every decision, without changing a table or a counter and without sending.
    pub fn trace_packet(&mut self, port: PortId, frame: &[u8]) -> Result<TraceRecord, EngineError> {
        let domain = match self.ports.get(port.0 as usize).and_then(|s| s.as_ref()) {
            Some(slot) if slot.io.is_some() => slot.domain,
            _ => return Err(EngineError::NoSuchPort(port)),
        };
        self.tables.now_ms = self.now_ms();
        let checks = Checks {
            trace: false,
            ..self.checks(port, domain)
        };
        // Between batches the receive area is free; slot 0 holds the synthetic frame.
        self.rx.fill(0, Default::default(), frame);
        self.process_frame::<true>(port, domain, 0, checks, true);
        Ok(self.scratch)
    }

    /// Attaches a port to a bridge domain and starts polling it, with no policy (`PortRole::Plain`).
    pub fn add_port(
        &mut self,
        port: Box<dyn Port>,
        domain: DomainId,
    ) -> Result<PortId, EngineError> {
        self.add_port_as(port, domain, PortRole::Plain)
    }

    /// Attaches a port with its policy role in place before its first frame is read, so a
    /// container's port is never, even briefly, unchecked.
    pub fn add_port_as(
        &mut self,
        port: Box<dyn Port>,
        domain: DomainId,
        role: PortRole,
    ) -> Result<PortId, EngineError> {
        let index = match self.ports.iter().position(|s| s.is_none()) {
            Some(i) => i,
            None if self.ports.len() < MAX_PORTS => {
                self.ports.push(None);
                self.ports.len() - 1
            }
            None => return Err(EngineError::TooManyPorts(MAX_PORTS)),
        };
        let id = PortId(index as u16);
        if let Some(fd) = port.raw_fd() {
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), Token(index), Interest::READABLE)
                .map_err(|source| EngineError::Register {
                    name: port.name().to_string(),
                    source,
                })?;
            // Frames may already be queued; an edge-triggered registration would not report them.
            self.ready[index] = true;
        }
        self.ports[index] = Some(PortSlot {
            name: port.name().to_string(),
            kind: port.kind(),
            vnet_hdr: port.vnet_hdr(),
            mac: port.mac(),
            domain,
            counters: PortCounters::default(),
            io: Some(port),
        });
        self.tables.policy.set_role(id, role);
        self.rebuild_domains();
        Ok(id)
    }

    /// Detaches a port: forgets its MACs, stops polling, closes it.
    pub fn remove_port(&mut self, id: PortId) -> Result<(), EngineError> {
        let slot = self
            .ports
            .get_mut(id.0 as usize)
            .and_then(|s| s.take())
            .ok_or(EngineError::NoSuchPort(id))?;
        if let Some(port) = slot.io {
            self.deregister(port.as_ref());
        }
        self.forget_port(id);
        Ok(())
    }

    /// The interface behind a port disappeared: keep its name and counters, drop everything else.
    pub(super) fn port_gone(&mut self, id: PortId) {
        let Some(slot) = self.ports.get_mut(id.0 as usize).and_then(|s| s.as_mut()) else {
            return;
        };
        if let Some(port) = slot.io.take() {
            tracing::warn!(port = %slot.name, "interface disappeared; port detached, switch keeps running");
            self.deregister(port.as_ref());
        }
        self.forget_port(id);
    }

    fn deregister(&self, port: &dyn Port) {
        if let Some(fd) = port.raw_fd() {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    fn forget_port(&mut self, id: PortId) {
        self.tables.cam.flush_port(id);
        self.tables.policy.set_role(id, PortRole::Plain);
        self.ready[id.0 as usize] = false;
        self.tx[id.0 as usize].len = 0;
        self.rebuild_domains();
    }

    fn rebuild_domains(&mut self) {
        for members in &mut self.domains {
            members.clear();
        }
        for (i, slot) in self.ports.iter().enumerate() {
            let Some(slot) = slot.as_ref().filter(|s| s.io.is_some()) else {
                continue;
            };
            let d = slot.domain.0 as usize;
            if self.domains.len() <= d {
                self.domains.resize_with(d + 1, Vec::new);
            }
            self.domains[d].push(PortId(i as u16));
        }
    }

    /// Moves the kernel's per-port drop counts into our counters (so a snapshot is complete).
    fn collect_overruns(&mut self) {
        for slot in self.ports.iter_mut().flatten() {
            if let Some(port) = slot.io.as_mut() {
                let lost = port.take_overruns();
                slot.counters.drop(DropReason::RxOverrun, lost);
            }
        }
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
        }
    }

    /// Receives one batch from `id`, runs it through the pipeline and flushes the egress queues.
    /// Returns the number of frames received.
    fn process_port(&mut self, id: PortId) -> usize {
        let Some(slot) = self.ports.get_mut(id.0 as usize).and_then(|s| s.as_mut()) else {
            return 0;
        };
        let domain = slot.domain;
        let Some(port) = slot.io.as_mut() else {
            return 0;
        };
        let n = match port.recv_batch(&mut self.rx) {
            Ok(n) => n,
            Err(PortError::Gone(_)) => {
                self.port_gone(id);
                return 0;
            }
            Err(e) => {
                tracing::debug!("{e}");
                slot.counters.drop(DropReason::RxError, 1);
                return 0;
            }
        };
        if n > 0 {
            self.process_received(id, domain, n);
        }
        n
    }

    /// The receive area, for benchmarks and tests that place frames directly (see `process_received`).
    pub fn rx_batch_mut(&mut self) -> &mut RxBatch {
        &mut self.rx
    }

    /// Runs frames `0..n` of the receive area through the pipeline as if port `id` (in `domain`) had
    /// just received them, and sends them out. The frames stay in place, so a benchmark can repeat it.
    pub fn process_received(&mut self, id: PortId, domain: DomainId, n: usize) {
        self.tables.now_ms = self.now_ms();
        // Which policy stages apply depends only on the ingress port and its domain, both fixed for
        // the batch: decided once here, so a port without policy pays nothing per frame.
        let checks = self.checks(id, domain);
        if checks.trace {
            for i in 0..n {
                self.process_frame::<true>(id, domain, i, checks, false);
            }
            // Complete captures go: dropping the sender tells the reader.
            self.captures.retain(|(_, c)| c.remaining > 0);
        } else {
            for i in 0..n {
                self.process_frame::<false>(id, domain, i, checks, false);
            }
        }
        self.flush();
    }

    /// Runs frame `i` of the receive batch through the stages and queues it for egress.
    /// Runs frame `i` of the receive batch through the stages and queues it for egress. This is
    /// the one place stages are called, and so the one place they are traced: when `traced`, every
    /// decision is also written as a `Step` into the scratch record. With `dry` (a what-if trace)
    /// nothing is counted, learned, translated or sent: the decisions are only recorded.
    ///
    /// `TRACE` is a compile-time switch: batches that cannot be traced run `process_frame::<false>`,
    /// where every tracing branch is compiled away (criterion: the armed-capable build cost 40%
    /// more per packet when the decision was a runtime flag only).
    fn process_frame<const TRACE: bool>(
        &mut self,
        ingress_port: PortId,
        domain: DomainId,
        i: usize,
        checks: Checks,
        dry: bool,
    ) {
        let dry = TRACE && dry;
        let meta = *self.rx.meta(i);
        if !dry {
            let counters = &mut self.ports[ingress_port.0 as usize]
                .as_mut()
                .expect("ingress port exists")
                .counters;
            counters.rx_packets += 1;
            counters.rx_bytes += meta.len as u64;
            counters.rx_gso += meta.vnet.is_gso() as u64;
        }
        if TRACE && !dry {
            for (_, c) in self.captures.iter_mut() {
                if c.covers_ingress(ingress_port, domain) {
                    let ts = self.epoch_ns + self.start.elapsed().as_nanos() as u64;
                    c.offer(&self.rx.frame(i)[..meta.len.min(FRAME_CAPACITY)], ts);
                }
            }
        }
        let traced = TRACE
            && (dry || checks.trace)
            && (dry
                || self.tracer.take(
                    ingress_port,
                    domain,
                    &self.rx.frame(i)[..meta.len.min(FRAME_CAPACITY)],
                ));
        if traced {
            let now = self.start.elapsed().as_nanos() as u64;
            self.scratch
                .start(ingress_port, domain, self.rx.frame(i), now);
            self.scratch.what_if = dry;
        }
        macro_rules! step {
            ($s:expr) => {
                if traced {
                    self.scratch.push($s);
                }
            };
        }
        macro_rules! dropped {
            ($stage:expr, $reason:expr) => {{
                step!(Step::Dropped {
                    stage: $stage,
                    reason: $reason
                });
                if !dry {
                    count_drop(&mut self.ports, ingress_port, $reason);
                }
            }};
        }
        macro_rules! out {
            ($port:expr) => {{
                step!(Step::Egress { port: $port });
                if !dry {
                    if TRACE {
                        for (_, c) in self.captures.iter_mut() {
                            if c.covers_egress($port) {
                                let ts = self.epoch_ns + self.start.elapsed().as_nanos() as u64;
                                c.offer(&self.rx.frame(i)[..meta.len.min(FRAME_CAPACITY)], ts);
                            }
                        }
                    }
                    enqueue(&mut self.tx, &mut self.touched, $port, i);
                }
            }};
        }

        let view = match ingress::run(self.rx.frame(i), &meta, ingress_port, domain) {
            Ok(view) => view,
            Err(reason) => {
                dropped!(StageId::Ingress, reason);
                return self.finish_trace(traced, dry);
            }
        };
        step!(Step::Parsed {
            src: view.src,
            dst: view.dst,
            vlan: view.vlan,
            ethertype: view.ethertype,
            len: meta.len as u32,
        });
        // One egress port: icc decides on closed networks, then out.
        macro_rules! deliver {
            ($port:expr) => {{
                let port = $port;
                match checks.icc.then(|| icc::decide(&view, &self.tables, port)) {
                    Some(Err(r)) => {
                        step!(Step::IccDenied { egress: port });
                        dropped!(StageId::Icc, r)
                    }
                    Some(Ok(rule)) => {
                        step!(Step::IccAllowed { egress: port, rule });
                        out!(port)
                    }
                    None => out!(port),
                }
            }};
        }

        let mut effects = Effects::default();
        let mut verdict = Verdict::Continue;
        if checks.anti_spoof {
            verdict = anti_spoof::run(&view, &self.tables);
            if let Verdict::Drop(r) = verdict {
                dropped!(StageId::AntiSpoof, r);
                return self.finish_trace(traced, dry);
            }
            step!(Step::SpoofChecked);
        }
        if checks.isolation && verdict == Verdict::Continue {
            verdict = isolation::run(&view, &self.tables);
            if let Verdict::Drop(r) = verdict {
                dropped!(StageId::Isolation, r);
                return self.finish_trace(traced, dry);
            }
            step!(Step::IsolationChecked);
        }
        if checks.conflict && verdict == Verdict::Continue {
            verdict = conflict::run(&view, &self.tables, &mut effects);
            if let Verdict::Drop(r) = verdict {
                if let (Some((ip, mac)), false) = (effects.conflict, dry) {
                    if self.conflicts.len() == MAX_CONFLICTS {
                        self.conflicts.pop_front();
                    }
                    self.conflicts.push_back(AddressConflict {
                        ip,
                        mac,
                        port: ingress_port,
                        at_ms: self.tables.now_ms,
                    });
                }
                dropped!(StageId::Conflict, r);
                return self.finish_trace(traced, dry);
            }
        }
        if checks.nat && verdict == Verdict::Continue {
            let mut fx = nat_stage::NatEffects::default();
            let action = nat_stage::run(&view, &self.tables, &mut fx);
            let l3_offset = view.l3_offset;
            if traced {
                let st = nat_trace_steps(&view, &self.tables, &action);
                for s in st.into_iter().flatten() {
                    self.scratch.push(s);
                }
            }
            if !dry {
                if let Some((ip, mac)) = fx.neighbor {
                    self.tables.nat.learn_neighbor(ip, mac);
                }
                if let Some(ip) = fx.resolve {
                    nat::want_arp(&mut self.arp_wanted, ip);
                }
            }
            if action != nat_stage::NatAction::Pass {
                if !dry {
                    self.apply_nat(action, ingress_port, i, l3_offset, meta);
                }
                return self.finish_trace(traced, dry);
            }
        }
        if verdict == Verdict::Continue {
            verdict = l2_learn::run(&view, &self.tables, &mut effects);
            if let Verdict::Drop(r) = verdict {
                dropped!(StageId::L2Learn, r);
                return self.finish_trace(traced, dry);
            } else {
                step!(Step::Learned {
                    mac: view.src,
                    action: effects.learn.map_or(LearnAction::None, |l| l.action),
                });
            }
            if let Some(learn) = effects.learn.filter(|_| !dry) {
                debug_assert!(learn.action != LearnAction::None);
                self.tables.cam.learn(
                    learn.domain,
                    learn.vlan,
                    learn.mac,
                    learn.port,
                    self.tables.now_ms,
                );
            }
        }
        if verdict == Verdict::Continue {
            verdict = l2_fwd::run(&view, &self.tables, &mut effects);
        }
        match verdict {
            Verdict::Forward(port) => {
                step!(Step::Hit {
                    mac: view.dst,
                    port
                });
                deliver!(port);
            }
            Verdict::Flood => {
                let members: &[PortId] = self
                    .domains
                    .get(domain.0 as usize)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let others = members.iter().filter(|&&p| p != ingress_port).count();
                step!(Step::Flooded {
                    unknown: !view.dst.is_multicast(),
                    ports: others as u16,
                });
                for &port in members {
                    if port == ingress_port {
                        continue;
                    }
                    deliver!(port);
                }
                if others == 0 {
                    dropped!(StageId::Flood, DropReason::NoEgress);
                }
            }
            Verdict::Drop(reason) => dropped!(reason.stage(), reason),
            Verdict::Continue => unreachable!("the last stage always decides"),
        }
        self.finish_trace(traced, dry)
    }

    /// Which stages apply to frames from `port` in `domain` (one decision per batch).
    fn checks(&self, port: PortId, domain: DomainId) -> Checks {
        let role = self.tables.policy.role(port);
        Checks {
            anti_spoof: matches!(role, PortRole::Container(_)),
            isolation: matches!(role, PortRole::Host),
            conflict: matches!(role, PortRole::Parent),
            icc: self.tables.policy.icc_closed(domain),
            nat: nat_stage::applies(&self.tables, role),
            trace: self.tracer.armed_for(port, domain) || !self.captures.is_empty(),
        }
    }

    /// A live trace's record goes to the ring; a what-if record stays in `scratch` for the caller.
    fn finish_trace(&mut self, traced: bool, dry: bool) {
        if traced && !dry {
            self.tracer.ring.push(self.scratch);
        }
    }
}

/// The steps of a `nat` decision, for traces.
fn nat_trace_steps(
    view: &crate::stage::PacketView<'_>,
    tables: &Tables,
    action: &nat_stage::NatAction,
) -> [Option<Step>; 2] {
    use nat_stage::{CtChange, NatAction};
    match *action {
        NatAction::Pass => [None, None],
        NatAction::Drop(reason) => [
            Some(Step::Dropped {
                stage: StageId::Nat,
                reason,
            }),
            None,
        ],
        NatAction::Consumed => [Some(Step::Consumed), None],
        NatAction::Answer(a) => [
            Some(Step::Answered(a)),
            Some(Step::Egress { port: view.ingress }),
        ],
        NatAction::Translate {
            rewrite,
            port,
            change,
            ..
        } => {
            let from = crate::stage::l3::ipv4(view)
                .map(|ip| {
                    let (sport, dport) = ip.ports.unwrap_or((0, 0));
                    Flow {
                        src: ip.src,
                        sport,
                        dst: ip.dst,
                        dport,
                    }
                })
                .unwrap_or(Flow {
                    src: std::net::Ipv4Addr::UNSPECIFIED,
                    sport: 0,
                    dst: std::net::Ipv4Addr::UNSPECIFIED,
                    dport: 0,
                });
            let (kind, ct) = match change {
                CtChange::Insert(f) => (Some(f.kind), CtStep::Created),
                CtChange::Update { id, dir, .. } => {
                    (Some(tables.conntrack.get(id).kind), CtStep::Matched(dir))
                }
                CtChange::None => (None, CtStep::Related),
            };
            [
                Some(Step::Translated {
                    kind,
                    ct,
                    from,
                    to: from.rewritten(&rewrite),
                }),
                Some(Step::Egress { port }),
            ]
        }
    }
}

/// The stages that apply to a batch, and whether it may be traced (see `process_received`).
#[derive(Clone, Copy)]
struct Checks {
    anti_spoof: bool,
    isolation: bool,
    conflict: bool,
    icc: bool,
    nat: bool,
    trace: bool,
}

/// Queues receive slot `slot` for `port` (a free function so the caller may hold a packet view
/// borrowed from the receive area meanwhile).
fn enqueue(tx: &mut [TxQueue], touched: &mut Vec<PortId>, port: PortId, slot: usize) {
    let q = &mut tx[port.0 as usize];
    if q.len == 0 {
        touched.push(port);
    }
    q.slots[q.len] = slot as u8;
    q.len += 1;
}

fn count_drop(ports: &mut [Option<PortSlot>], port: PortId, reason: DropReason) {
    if let Some(slot) = ports.get_mut(port.0 as usize).and_then(|s| s.as_mut()) {
        slot.counters.drop(reason, 1);
    }
}

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace_tests;
