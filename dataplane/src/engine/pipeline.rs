//! The pipeline: runs each received frame through the stages, traces and captures it, counts its
//! drops and queues it for egress; and the what-if trace, which runs the same code dry.

use super::{nat, AddressConflict, Engine, EngineError, PortSlot, TxQueue, MAX_CONFLICTS};
use crate::port::{RxBatch, FRAME_CAPACITY};
use crate::stage::StageId;
use crate::stage::{
    anti_spoof, conflict, icc, ingress, isolation, l2_fwd, l2_learn, nat as nat_stage, DropReason,
    Effects, Tables, Verdict,
};
use crate::table::{LearnAction, PortRole};
use crate::trace::{CtStep, Flow, Step, TraceRecord};
use crate::{DomainId, PortId};

impl Engine {
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

        let view = match ingress::run(self.rx.frame(i), &meta, ingress_port, domain, checks.l3()) {
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
            let (l3_offset, l3) = (view.l3_offset, view.l3);
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
                    self.apply_nat(action, ingress_port, i, l3_offset, l3, meta);
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
            let from = view
                .ipv4()
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

impl Checks {
    /// Whether a stage of the batch reads L3/L4 fields, so `ingress` parses them.
    fn l3(&self) -> bool {
        self.anti_spoof || self.isolation || self.conflict || self.icc || self.nat || self.trace
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
