//! The pipeline: a received frame through the stages, and the what-if trace, which runs the same
//! code dry.
//!
//! `process_frame` counts the frame, offers it to captures and decides whether it is traced;
//! `Run::frame` lets `ingress` make its view, runs `stage::PerFrame` until a stage decides, and
//! carries the decision out: the one port of a forward or each port of a flood, each copy through
//! `stage::PerEgress`, then out; a NAT action is applied to the frame by `Engine::apply_nat`.
//!
//! Every stage is called through `Run::call`, the one wrapper: it skips a stage that does not
//! apply to the batch, runs it, records its `Step` (and a drop) when the packet is traced, counts
//! a drop on the ingress port and applies the table changes the stage asked for. Nothing here
//! knows what a particular stage decides.
//!
//! `TRACE` is a compile-time switch: batches that cannot be traced run `process_frame::<false, _>`,
//! where every tracing branch is compiled away (criterion: the armed-capable build cost 40% more
//! per packet when the decision was a runtime flag only). `PARSE_L3` is another: a batch no stage
//! of which reads L3 (no policy, no NAT, no trace) runs `process_frame::<false, false>`, where
//! `ingress` makes an Ethernet-only view and the stages that read L3 are compiled out of `Run::call`
//! rather than skipped at run time, so the L2 path is as short as before the view carried `L3`
//! (bench/RESULTS.md: 1.2-1.5x per packet with a runtime flag, the view built through the stack).
//! Before any frame of a batch runs, `prefetch_batch` lets each stage that applies ask for the
//! table lines it will read for every frame of the batch (`Stage::prefetch`: the MAC table's
//! buckets for `l2-learn`'s source and `l2-fwd`'s destination, the connection table's for `nat`,
//! then the entries they name). With tables far larger than the caches each lookup misses;
//! asked for together, a batch's misses overlap instead of costing a memory latency each in turn
//! (bench/RESULTS.md "Batched lookups"). It only hints: the pipeline decides exactly as without.
//! With `dry` (a what-if trace) nothing is counted, learned, translated or sent: the decisions are
//! only recorded.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Instant;

use super::workers::{Peer, Peers};
use super::{nat, AddressConflict, Engine, EngineError, PortSlot, TxQueue, MAX_CONFLICTS};
use crate::port::{RxBatch, RxMeta, BATCH, FRAME_CAPACITY};
use crate::stage::nat::NatAction;
use crate::stage::{
    ingress, CallStage, DropReason, Effects, PacketView, PerEgress, PerFrame, Prefetch, Stage,
    StageId, StageSet, Stages, Tables, Verdict,
};
use crate::table::LearnAction;
use crate::trace::{Capture, Step, TraceRecord};
use crate::wire::headers::L3;
use crate::{DomainId, PortId};

impl Engine {
    /// A what-if trace: runs `frame` through the real stages as if `port` had received it, and
    /// returns every decision, without changing a table or a counter and without sending.
    pub fn trace_packet(&mut self, port: PortId, frame: &[u8]) -> Result<TraceRecord, EngineError> {
        let domain = match self.ports.get(port.0 as usize).and_then(|s| s.as_ref()) {
            Some(slot) if slot.io.is_some() => slot.domain,
            _ => return Err(EngineError::NoSuchPort(port)),
        };
        self.drain_peers();
        self.tables.now_ms = self.now_ms();
        let checks = Checks {
            trace: false,
            ..self.checks(port, domain)
        };
        // Between batches the receive area is free; slot 0 holds the synthetic frame.
        self.rx.fill(0, Default::default(), frame);
        self.process_frame::<true, true>(port, domain, 0, checks, true);
        Ok(self.scratch)
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
        // One frame has no other misses to overlap with.
        if n > 1 && self.prefetch.unwrap_or_else(|| self.tables_beyond_caches()) {
            if checks.l3() {
                self.prefetch_batch::<true>(id, domain, n, checks.stages);
            } else {
                self.prefetch_batch::<false>(id, domain, n, checks.stages);
            }
        }
        if checks.trace {
            for i in 0..n {
                self.process_frame::<true, true>(id, domain, i, checks, false);
            }
            // Complete captures go: dropping the sender tells the reader.
            self.captures.retain(|(_, c)| c.remaining > 0);
        } else if checks.l3() {
            for i in 0..n {
                self.process_frame::<false, true>(id, domain, i, checks, false);
            }
        } else {
            for i in 0..n {
                self.process_frame::<false, false>(id, domain, i, checks, false);
            }
        }
        self.flush();
    }

    /// The prefetch pass over frames `0..n` of the receive area (see the module documentation):
    /// every stage that applies asks for the table lines it will read for each frame, buckets
    /// first, then (once those have arrived) the entries they name. Hints only: nothing is
    /// decided, counted, traced or changed, and a frame `ingress` would drop is skipped, so the
    /// pipeline decides exactly as without it.
    fn prefetch_batch<const PARSE_L3: bool>(
        &self,
        port: PortId,
        domain: DomainId,
        n: usize,
        stages: StageSet,
    ) {
        // Each frame parsed once for both passes (a frame ingress would drop is left out).
        let mut views: [Option<PacketView<'_>>; BATCH] = [None; BATCH];
        for (i, view) in views.iter_mut().enumerate().take(n) {
            let meta = self.rx.meta(i);
            let frame = &self.rx.frame(i)[..meta.len.min(FRAME_CAPACITY)];
            *view = ingress::run(frame, meta, port, domain, PARSE_L3).ok();
        }
        for pass in [Prefetch::Bucket, Prefetch::Entry] {
            for view in views[..n.min(BATCH)].iter().flatten() {
                PerFrame::prefetch(view, &self.tables, stages, pass);
            }
        }
    }

    /// Whether the MAC and connection tables hold so many entries that a frame's lookups likely
    /// miss the caches (`PREFETCH_FROM_ENTRIES`), so the prefetch pass pays.
    fn tables_beyond_caches(&self) -> bool {
        self.tables.cam.len() + self.tables.conntrack.stats().entries >= PREFETCH_FROM_ENTRIES
    }

    /// Whether received batches get the prefetch pass: `None` (the default) when the tables are
    /// large (`PREFETCH_FROM_ENTRIES`), `Some` always or never (benchmarks compare).
    pub fn set_prefetch(&mut self, on: Option<bool>) {
        self.prefetch = on;
    }

    /// Runs frame `i` of the receive batch through the pipeline (see the module documentation).
    fn process_frame<const TRACE: bool, const PARSE_L3: bool>(
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
        let frame = &self.rx.frame(i)[..meta.len.min(FRAME_CAPACITY)];
        if TRACE && !dry {
            for (_, c) in self.captures.iter_mut() {
                if c.covers_ingress(ingress_port, domain) {
                    let ts = self.epoch_ns + self.start.elapsed().as_nanos() as u64;
                    c.offer(frame, ts);
                }
            }
        }
        let traced = TRACE
            && (dry || checks.trace)
            && (dry || self.tracer.take(ingress_port, domain, frame));
        if traced {
            let now = self.start.elapsed().as_nanos() as u64;
            self.scratch
                .start(ingress_port, domain, self.rx.frame(i), now);
            self.scratch.what_if = dry;
        }
        let (mut run, rx) =
            self.frame_run::<TRACE, PARSE_L3>(ingress_port, i, checks.stages, traced, dry);
        if let Some((action, l3_offset, l3)) = run.frame(rx.frame(i), &meta, domain) {
            self.apply_nat(action, ingress_port, i, l3_offset, l3, meta);
        }
        self.finish_trace(traced, dry)
    }

    /// The frame in slot `slot` on its way from `ingress`, and the receive area that holds it.
    #[inline(always)]
    fn frame_run<const TRACE: bool, const PARSE_L3: bool>(
        &mut self,
        ingress: PortId,
        slot: usize,
        stages: StageSet,
        traced: bool,
        dry: bool,
    ) -> (Run<'_, TRACE, PARSE_L3>, &RxBatch) {
        let run = Run {
            tables: &mut self.tables,
            ports: &mut self.ports,
            domains: &self.domains,
            tx: &mut self.tx,
            touched: &mut self.touched,
            captures: &mut self.captures,
            conflicts: &mut self.conflicts,
            arp_wanted: &mut self.arp_wanted,
            peers: &mut self.peers,
            record: &mut self.scratch,
            start: self.start,
            epoch_ns: self.epoch_ns,
            ingress,
            slot,
            stages,
            traced,
            dry,
        };
        (run, &self.rx)
    }

    /// Which stages apply to frames from `port` in `domain` (one decision per batch).
    fn checks(&self, port: PortId, domain: DomainId) -> Checks {
        Checks {
            stages: StageSet::of::<PerFrame>(&self.tables, port, domain).union(StageSet::of::<
                PerEgress,
            >(
                &self.tables,
                port,
                domain,
            )),
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

/// Table entries (MAC and connection tables together) from which received batches get the
/// prefetch pass. Below, the lines a frame's lookups touch (a bucket and an entry, two 64-byte
/// lines per entry) fit in this machine's 2 MiB L2 and stay there, and the pass would cost
/// without saving: criterion measured 60-96 ns per frame without it and 82-84 with it at 1,024
/// MACs, 423-553 and 271-303 ns at a million (bench/RESULTS.md "Batched lookups").
const PREFETCH_FROM_ENTRIES: usize = 16_384;

/// The stages that apply to a batch, and whether it may be traced (see `process_received`).
#[derive(Clone, Copy)]
struct Checks {
    stages: StageSet,
    trace: bool,
}

impl Checks {
    /// Whether a stage of the batch reads L3/L4 fields, so `ingress` parses them.
    fn l3(&self) -> bool {
        self.stages.reads_l3() || self.trace
    }
}

/// One frame's way through the pipeline: the parts of the engine it touches, borrowed apart from
/// the receive area that holds the frame (which the packet view borrows meanwhile).
struct Run<'e, const TRACE: bool, const PARSE_L3: bool> {
    tables: &'e mut Tables,
    ports: &'e mut [Option<PortSlot>],
    /// The flood lists, by `DomainId`.
    domains: &'e [Vec<PortId>],
    tx: &'e mut [TxQueue],
    touched: &'e mut Vec<PortId>,
    captures: &'e mut [(u32, Capture)],
    conflicts: &'e mut VecDeque<AddressConflict>,
    arp_wanted: &'e mut Vec<Ipv4Addr>,
    /// The other workers, told of every table change (see `workers`).
    peers: &'e mut Peers,
    /// The trace record of this frame (written only when `traced`).
    record: &'e mut TraceRecord,
    /// The engine's start and its Unix time, for capture timestamps.
    start: Instant,
    epoch_ns: u64,
    ingress: PortId,
    /// The frame's receive slot.
    slot: usize,
    stages: StageSet,
    traced: bool,
    dry: bool,
}

impl<const TRACE: bool, const PARSE_L3: bool> Run<'_, TRACE, PARSE_L3> {
    /// Decides and carries out everything but a NAT action, which it returns (with where the
    /// frame's L3 header is and what `ingress` parsed of it) for `Engine::apply_nat`.
    #[inline(always)]
    fn frame(
        &mut self,
        frame: &[u8],
        meta: &RxMeta,
        domain: DomainId,
    ) -> Option<(NatAction, usize, L3)> {
        if TRACE && self.traced {
            if let Some(t) = self.tunnel(self.ingress) {
                self.record.push(Step::Decapsulated {
                    vni: t.vni,
                    from: t.remote,
                    dport: t.udp_port,
                });
            }
        }
        let view = match ingress::run(frame, meta, self.ingress, domain, PARSE_L3) {
            Ok(view) => view,
            Err(reason) => {
                self.dropped(StageId::Ingress, reason);
                return None;
            }
        };
        self.step(Step::Parsed {
            src: view.src,
            dst: view.dst,
            vlan: view.vlan,
            ethertype: view.ethertype,
            len: meta.len as u32,
        });
        let mut effects = Effects::default();
        match PerFrame::run(self, &view, &mut effects) {
            Verdict::Forward(port) => self.deliver(&view, &mut effects, frame, port),
            Verdict::Flood => self.flood(&view, &mut effects, frame),
            // Recorded and counted by `call`.
            Verdict::Drop(_) => {}
            Verdict::Handled => {
                let action = effects.take_nat()?;
                if let Some(port) = action.egress(view.ingress) {
                    self.step(Step::Egress { port });
                }
                return (!self.dry).then_some((action, view.l3_offset, view.l3));
            }
            Verdict::Continue => unreachable!("the last stage always decides"),
        }
        None
    }

    /// One copy toward `port`: through the per-egress stages, then out.
    #[inline(always)]
    fn deliver(
        &mut self,
        view: &PacketView<'_>,
        effects: &mut Effects,
        frame: &[u8],
        port: PortId,
    ) {
        effects.set_egress(port);
        if PerEgress::run(self, view, effects) == Verdict::Continue {
            self.out(frame, port);
        }
    }

    /// A copy to every other port of the frame's bridge domain.
    #[inline(always)]
    fn flood(&mut self, view: &PacketView<'_>, effects: &mut Effects, frame: &[u8]) {
        let domains = self.domains;
        let members: &[PortId] = domains
            .get(view.domain.0 as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let others = members.iter().filter(|&&p| p != self.ingress).count();
        self.step(Step::Flooded {
            unknown: !view.dst.is_multicast(),
            ports: others as u16,
        });
        for &port in members {
            if port != self.ingress {
                self.deliver(view, effects, frame, port);
            }
        }
        if others == 0 {
            self.dropped(StageId::Flood, DropReason::NoEgress);
        }
    }

    #[inline(always)]
    fn out(&mut self, frame: &[u8], port: PortId) {
        self.step(Step::Egress { port });
        if TRACE && self.traced {
            if let Some(t) = self.tunnel(port) {
                self.record.push(Step::Encapsulated {
                    vni: t.vni,
                    local: t.local,
                    remote: t.remote,
                    sport: crate::port::vxlan::flow_source_port(frame),
                    dport: t.udp_port,
                });
            }
        }
        if self.dry {
            return;
        }
        if TRACE {
            for (_, c) in self.captures.iter_mut() {
                if c.covers_egress(port) {
                    let ts = self.epoch_ns + self.start.elapsed().as_nanos() as u64;
                    c.offer(frame, ts);
                }
            }
        }
        enqueue(self.tx, self.touched, port, self.slot);
    }

    /// `port`'s place on the underlay, if it is a tunnel port (traced frames only).
    fn tunnel(&self, port: PortId) -> Option<crate::port::Tunnel> {
        self.ports.get(port.0 as usize)?.as_ref()?.tunnel
    }

    #[inline(always)]
    fn step(&mut self, step: Step) {
        if TRACE && self.traced {
            self.record.push(step);
        }
    }

    /// A drop: traced, and counted on the ingress port.
    #[inline(always)]
    fn dropped(&mut self, stage: StageId, reason: DropReason) {
        self.step(Step::Dropped { stage, reason });
        if !self.dry {
            count_drop(self.ports, self.ingress, reason);
        }
    }
}

impl<const TRACE: bool, const PARSE_L3: bool> CallStage for Run<'_, TRACE, PARSE_L3> {
    /// The one wrapper around every stage call.
    #[inline(always)]
    fn call<S: Stage>(&mut self, view: &PacketView<'_>, effects: &mut Effects) -> Verdict {
        // Without `PARSE_L3` no stage that reads it applies to the batch (see `Checks::l3`): those
        // stages are compiled out of this copy of the pipeline, not just skipped.
        if (S::READS_L3 && !PARSE_L3) || !self.stages.contains(S::ID) {
            return Verdict::Continue;
        }
        let verdict = S::run(view, self.tables, effects);
        if TRACE && self.traced {
            if let Some(step) = S::trace(view, self.tables, verdict, effects) {
                self.record.push(step);
            }
        }
        if let Verdict::Drop(reason) = verdict {
            debug_assert_eq!(reason.stage(), S::ID, "{reason} belongs to another stage");
            self.dropped(S::ID, reason);
        }
        if effects.pending() {
            let (dry, ingress) = (self.dry, self.ingress);
            apply(
                effects,
                dry,
                self.tables,
                self.conflicts,
                self.arp_wanted,
                self.peers,
                ingress,
            );
        }
        verdict
    }
}

/// Takes the table changes a stage asked for, for a frame from `ingress`, and applies them unless
/// `dry`. Out of line: one copy, not one per stage call, and rare on the fast path (a known MAC is
/// refreshed once per second or so).
#[inline(never)]
fn apply(
    effects: &mut Effects,
    dry: bool,
    tables: &mut Tables,
    conflicts: &mut VecDeque<AddressConflict>,
    arp_wanted: &mut Vec<Ipv4Addr>,
    peers: &mut Peers,
    ingress: PortId,
) {
    let updates = effects.take_updates();
    if dry {
        return;
    }
    let now_ms = tables.now_ms;
    if let Some(learn) = updates.learn {
        debug_assert!(learn.action != LearnAction::None);
        tables
            .cam
            .learn(learn.domain, learn.vlan, learn.mac, learn.port, now_ms);
        if peers.active() {
            peers.tell(Peer::Learn {
                domain: learn.domain,
                vlan: learn.vlan,
                mac: learn.mac,
                port: learn.port,
            });
        }
    }
    if let Some((ip, mac)) = updates.conflict {
        if conflicts.len() == MAX_CONFLICTS {
            conflicts.pop_front();
        }
        conflicts.push_back(AddressConflict {
            ip,
            mac,
            port: ingress,
            at_ms: now_ms,
        });
    }
    if let Some((ip, mac)) = updates.neighbor {
        tables.nat.learn_neighbor(ip, mac);
        if peers.active() {
            peers.tell(Peer::Neighbor(ip, mac));
        }
    }
    if let Some(ip) = updates.resolve {
        nat::want_arp(arp_wanted, ip);
    }
}

/// Queues receive slot `slot` for `port` (a free function so the caller may hold a packet view
/// borrowed from the receive area meanwhile).
pub(super) fn enqueue(tx: &mut [TxQueue], touched: &mut Vec<PortId>, port: PortId, slot: usize) {
    let q = &mut tx[port.0 as usize];
    if q.len == 0 {
        touched.push(port);
    }
    q.slots[q.len] = slot as u8;
    q.len += 1;
}

pub(super) fn count_drop(ports: &mut [Option<PortSlot>], port: PortId, reason: DropReason) {
    if let Some(slot) = ports.get_mut(port.0 as usize).and_then(|s| s.as_mut()) {
        slot.counters.drop(reason, 1);
    }
}

#[cfg(test)]
mod tests {
    //! The wrapper with a stage of its own: what every stage gets from `Run::call`.

    use super::*;
    use crate::port::MemoryPort;
    use crate::stage::LearnEffect;
    use crate::table::LearnAction;
    use crate::{MacAddr, VlanId};

    /// Drops broadcasts; asks to learn the source of anything else. Says nothing of its own in a
    /// trace, so it gets the default `Passed`.
    struct Probe;

    impl Stage for Probe {
        const ID: StageId = StageId::Isolation;
        const READS_L3: bool = false;

        fn run(view: &PacketView<'_>, _: &Tables, effects: &mut Effects) -> Verdict {
            if view.dst.is_broadcast() {
                return Verdict::Drop(DropReason::Isolation);
            }
            effects.set_learn(LearnEffect {
                action: LearnAction::New,
                domain: view.domain,
                vlan: view.vlan,
                mac: view.src,
                port: view.ingress,
            });
            Verdict::Continue
        }
    }

    const SRC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);

    fn frame(dst: MacAddr) -> Vec<u8> {
        let mut f = dst.as_bytes().to_vec();
        f.extend_from_slice(SRC.as_bytes());
        f.extend_from_slice(&[0x08, 0x06]);
        f.resize(60, 0);
        f
    }

    /// Calls `Probe` on `frame` through the wrapper as the pipeline would, for port 0.
    fn call(e: &mut Engine, frame: &[u8], applies: bool, traced: bool, dry: bool) -> Verdict {
        let (p, _h) = MemoryPort::new("a", false);
        if e.ports.is_empty() {
            e.add_port(Box::new(p), DomainId(0)).unwrap();
        }
        let mut stages = StageSet::default();
        if applies {
            stages.insert(StageId::Isolation, false);
        }
        e.scratch.start(PortId(0), DomainId(0), frame, 0);
        let (mut run, _) = e.frame_run::<true, true>(PortId(0), 0, stages, traced, dry);
        let meta = RxMeta {
            len: frame.len(),
            ..RxMeta::default()
        };
        let view = ingress::run(frame, &meta, PortId(0), DomainId(0), false).unwrap();
        run.call::<Probe>(&view, &mut Effects::default())
    }

    fn drops(e: &Engine) -> u64 {
        e.ports[0]
            .as_ref()
            .unwrap()
            .counters
            .dropped(DropReason::Isolation)
    }

    fn learned(e: &Engine) -> bool {
        e.tables.cam.lookup(DomainId(0), VlanId(0), SRC).is_some()
    }

    /// Two engines given the same batches, one with the prefetch pass forced on and one without,
    /// send the same frames, count the same drops and learn the same table: the pass only hints.
    /// Malformed frames (runts, a cut VLAN tag) go through it too, without panicking.
    #[test]
    fn the_prefetch_pass_changes_no_decision() {
        let host = |i: u8| MacAddr([2, 0, 0, 0, 1, i]);
        let eth = |dst: MacAddr, src: MacAddr| {
            let mut f = dst.as_bytes().to_vec();
            f.extend_from_slice(src.as_bytes());
            f.extend_from_slice(&[0x08, 0x00]);
            f.resize(60, 0);
            f
        };
        let run = |prefetch: bool| {
            let (mut e, _) = Engine::new(Default::default()).unwrap();
            e.set_prefetch(Some(prefetch));
            let (a, ha) = MemoryPort::new("a", false);
            let (b, hb) = MemoryPort::new("b", false);
            let pa = e.add_port(Box::new(a), DomainId(0)).unwrap();
            let pb = e.add_port(Box::new(b), DomainId(0)).unwrap();
            // Port b's hosts 0..8 announce themselves.
            for i in 0..8 {
                let f = eth(MacAddr::BROADCAST, host(i));
                e.rx.fill(i as usize, Default::default(), &f);
            }
            e.process_received(pb, DomainId(0), 8);
            let cut_tag = {
                let mut f = eth(host(1), host(40)).to_vec();
                f[12..14].copy_from_slice(&[0x81, 0x00]);
                f.truncate(15);
                f
            };
            let batch: Vec<Vec<u8>> = vec![
                eth(host(1), host(32)),
                vec![0xff; 3],
                eth(host(2), host(33)),
                cut_tag,
                eth(host(99), host(34)),
                eth(MacAddr::BROADCAST, host(35)),
                eth(host(3), MacAddr::BROADCAST),
                eth(host(4), MacAddr::ZERO),
                eth(host(33), host(36)),
                Vec::new(),
                eth(host(5), host(2)),
            ];
            for (i, f) in batch.iter().enumerate() {
                e.rx.fill(i, Default::default(), f);
            }
            e.process_received(pa, DomainId(0), batch.len());
            let mut cam: Vec<_> = e
                .tables
                .cam
                .iter()
                .map(|x| (x.mac, x.port, x.is_static))
                .collect();
            cam.sort();
            let drops: Vec<u64> = DropReason::ALL
                .iter()
                .map(|&r| e.ports[0].as_ref().unwrap().counters.dropped(r))
                .collect();
            (ha.take_sent(), hb.take_sent(), cam, drops)
        };
        let (with, without) = (run(true), run(false));
        assert_eq!(with, without);
        assert!(with.1.len() >= 3, "frames reached b: {}", with.1.len());
        assert!(with.3.iter().sum::<u64>() >= 4, "drops counted");
    }

    #[test]
    fn a_drop_is_traced_and_counted_on_the_ingress_port() {
        let (mut e, _) = Engine::new(Default::default()).unwrap();
        let v = call(&mut e, &frame(MacAddr::BROADCAST), true, true, false);
        assert_eq!(v, Verdict::Drop(DropReason::Isolation));
        assert_eq!(drops(&e), 1);
        assert_eq!(
            e.scratch.steps(),
            &[Step::Dropped {
                stage: StageId::Isolation,
                reason: DropReason::Isolation
            }]
        );
    }

    #[test]
    fn a_pass_is_traced_by_default_and_its_effects_applied() {
        let (mut e, _) = Engine::new(Default::default()).unwrap();
        let v = call(
            &mut e,
            &frame(MacAddr([2, 0, 0, 0, 0, 0xb])),
            true,
            true,
            false,
        );
        assert_eq!(v, Verdict::Continue);
        assert!(learned(&e));
        assert_eq!(
            e.scratch.steps(),
            &[Step::Passed {
                stage: StageId::Isolation
            }]
        );
    }

    #[test]
    fn untraced_packets_record_nothing() {
        let (mut e, _) = Engine::new(Default::default()).unwrap();
        call(&mut e, &frame(MacAddr::BROADCAST), true, false, false);
        assert_eq!(drops(&e), 1);
        assert!(e.scratch.steps().is_empty());
    }

    #[test]
    fn a_dry_run_records_but_changes_nothing() {
        let (mut e, _) = Engine::new(Default::default()).unwrap();
        call(&mut e, &frame(MacAddr::BROADCAST), true, true, true);
        call(
            &mut e,
            &frame(MacAddr([2, 0, 0, 0, 0, 0xb])),
            true,
            true,
            true,
        );
        assert_eq!(drops(&e), 0);
        assert!(!learned(&e));
        assert_eq!(e.scratch.steps().len(), 1, "the second call's own step");
    }

    #[test]
    fn a_stage_that_does_not_apply_to_the_batch_is_not_called() {
        let (mut e, _) = Engine::new(Default::default()).unwrap();
        let v = call(&mut e, &frame(MacAddr::BROADCAST), false, true, false);
        assert_eq!(v, Verdict::Continue);
        assert_eq!(drops(&e), 0);
        assert!(e.scratch.steps().is_empty());
    }
}
