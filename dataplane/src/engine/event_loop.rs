//! The engine loop: waits for ports and commands, serves each ready port one batch per round, runs
//! the aging timer. Everything a round does is in `run` (the real loop) or `step` (one round by hand,
//! for tests and in-memory ports).

use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Token};

use super::{nat, Engine, AGING_BUDGET, AGING_TICK, MAX_PORTS, WAKER};
use crate::port::{PortError, BATCH};
use crate::stage::DropReason;
use crate::PortId;

impl Engine {
    /// The loop. Returns after a `Shutdown` command or when every handle is gone.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut last_work = Instant::now();
        while !self.stopping {
            // Held: ports wait (their readiness stays in `ready` for when forwarding resumes).
            let forwarding = self.forwarding;
            let any_ready = forwarding && self.ready[..self.ports.len()].iter().any(|r| *r);
            let spinning = !self.spin.is_zero() && last_work.elapsed() < self.spin;
            let busy = forwarding && self.busy_poll;
            let timeout = if busy || any_ready || spinning || self.aging_behind {
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
            if busy {
                for (i, slot) in self.ports.iter().enumerate() {
                    self.ready[i] = slot.as_ref().is_some_and(|s| s.io.is_some());
                }
            }
            let mut received = 0;
            for i in 0..self.ports.len() {
                if self.forwarding && self.ready[i] {
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
        if self.forwarding {
            for i in 0..self.ports.len() {
                total += self.process_port(PortId(i as u16));
            }
        }
        self.tick();
        total
    }

    fn tick(&mut self) {
        self.drain_peers();
        let now = self.now_ms();
        let due = now >= self.next_aging_ms;
        if due || self.aging_behind {
            // A bounded amount per round (see AGING_BUDGET); whatever is left goes next round.
            let macs = self.tables.cam.age_at_most(now, AGING_BUDGET);
            let flows = self.tables.conntrack.expire_at_most(now, AGING_BUDGET);
            self.aging_behind = macs == AGING_BUDGET || flows == AGING_BUDGET;
        }
        if due {
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
        // A snapshot or a connection list answers with what every worker has told this one.
        self.drain_peers();
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
        if let Some(fd) = port.moved_fd() {
            // A new socket in the port's place; the old one leaves the poller as it closes.
            if let Err(e) = self.poll.registry().register(
                &mut SourceFd(&fd),
                Token(id.0 as usize),
                Interest::READABLE,
            ) {
                tracing::warn!(port = %slot.name, "registering the port's new socket: {e}");
            }
        }
        if n > 0 {
            // What other workers learned before sending what this batch may answer (see `workers`).
            self.drain_peers();
            self.process_received(id, domain, n);
        }
        n
    }
}
