//! Tracing: what each stage decided for a packet, as plain data.
//!
//! A `TraceRecord` is a small fixed-size value: the packet's ingress port, its first bytes, and the
//! list of `Step`s the pipeline took (one per stage decision, plus each egress port). Records go
//! into a preallocated ring (`TraceRing`); nothing is formatted here: the control plane renders
//! records as compact lines, numbered explanations or JSON.
//!
//! Arming is per port or per network with a packet budget and an optional filter
//! (`TraceArm`). The engine asks `Tracer::armed_for` once per batch (the ingress port and domain
//! are fixed for a batch), so a disarmed tracer costs one branch per batch and one predictable
//! branch per step site; only an armed batch evaluates the filter per packet. The same record
//! type serves the what-if trace (`Engine::trace_packet`), which runs the real stages on a
//! synthetic frame without changing any table or sending anything.

pub mod filter;
pub mod pcap;

pub use crate::stage::step::{CtStep, Flow, Step};
use crate::{DomainId, PortId};
pub use filter::Filter;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Steps kept per record; a flood to more ports is summarised by its count.
pub const MAX_STEPS: usize = 24;
/// Frame bytes kept per record (enough for Ethernet, VLAN, IPv4 with options, TCP).
pub const HEAD_BYTES: usize = 128;
/// Records the ring holds before overwriting the oldest.
pub const RING_RECORDS: usize = 1024;

/// Everything recorded about one packet.
#[derive(Clone, Copy, Debug)]
pub struct TraceRecord {
    pub seq: u64,
    /// Engine time, nanoseconds since the engine started.
    pub time_ns: u64,
    pub ingress: PortId,
    pub domain: DomainId,
    pub len: u32,
    pub head: [u8; HEAD_BYTES],
    pub head_len: u16,
    pub steps: [Step; MAX_STEPS],
    pub nsteps: u8,
    /// More steps happened than fit.
    pub overflow: bool,
    /// A what-if trace: nothing was changed or sent.
    pub what_if: bool,
}

const NO_STEP: Step = Step::Consumed;

impl TraceRecord {
    pub const EMPTY: TraceRecord = TraceRecord {
        seq: 0,
        time_ns: 0,
        ingress: PortId(0),
        domain: DomainId(0),
        len: 0,
        head: [0; HEAD_BYTES],
        head_len: 0,
        steps: [NO_STEP; MAX_STEPS],
        nsteps: 0,
        overflow: false,
        what_if: false,
    };

    /// Starts a record for `frame` (its first bytes are kept).
    pub fn start(&mut self, ingress: PortId, domain: DomainId, frame: &[u8], time_ns: u64) {
        let n = frame.len().min(HEAD_BYTES);
        self.head[..n].copy_from_slice(&frame[..n]);
        self.head_len = n as u16;
        self.len = frame.len() as u32;
        self.ingress = ingress;
        self.domain = domain;
        self.time_ns = time_ns;
        self.nsteps = 0;
        self.overflow = false;
        self.what_if = false;
    }

    pub fn push(&mut self, step: Step) {
        if usize::from(self.nsteps) < MAX_STEPS {
            self.steps[usize::from(self.nsteps)] = step;
            self.nsteps += 1;
        } else {
            self.overflow = true;
        }
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps[..usize::from(self.nsteps)]
    }

    pub fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }
}

/// A bounded ring of records, preallocated; the oldest is overwritten when full.
pub struct TraceRing {
    records: Box<[TraceRecord]>,
    next: usize,
    len: usize,
    seq: u64,
}

impl Default for TraceRing {
    fn default() -> Self {
        TraceRing {
            records: vec![TraceRecord::EMPTY; RING_RECORDS].into_boxed_slice(),
            next: 0,
            len: 0,
            seq: 0,
        }
    }
}

impl TraceRing {
    pub fn push(&mut self, mut record: TraceRecord) {
        self.seq += 1;
        record.seq = self.seq;
        self.records[self.next] = record;
        self.next = (self.next + 1) % self.records.len();
        self.len = (self.len + 1).min(self.records.len());
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &TraceRecord> {
        let cap = self.records.len();
        let start = (self.next + cap - self.len) % cap;
        (0..self.len).map(move |i| &self.records[(start + i) % cap])
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What a trace is armed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceTarget {
    Port(PortId),
    Network(DomainId),
}

/// A request to trace the next `remaining` packets entering `target` that match `filter`.
#[derive(Clone, Debug)]
pub struct TraceArm {
    pub target: TraceTarget,
    pub remaining: u32,
    pub filter: Option<Filter>,
}

/// Arms, and the ring records go to.
#[derive(Default)]
pub struct Tracer {
    arms: Vec<Armed>,
    pub ring: TraceRing,
}

/// An arm and its budget, which every engine worker holding the arm takes from (an atomic
/// decrement on traced packets only; nobody waits on it).
struct Armed {
    arm: TraceArm,
    budget: Arc<AtomicU32>,
}

impl Tracer {
    pub fn arm(&mut self, arm: TraceArm) {
        let budget = Arc::new(AtomicU32::new(arm.remaining));
        self.arm_shared(arm, budget);
    }

    /// Arms with a budget shared with other workers' tracers (`arm.remaining` is ignored).
    pub fn arm_shared(&mut self, arm: TraceArm, budget: Arc<AtomicU32>) {
        self.arms.retain(|a| a.arm.target != arm.target);
        if budget.load(Ordering::Acquire) > 0 {
            self.arms.push(Armed { arm, budget });
        }
    }

    pub fn disarm_all(&mut self) {
        self.arms.clear();
    }

    /// Whether any arm covers a batch from `port` in `domain` (checked once per batch).
    #[inline]
    pub fn armed_for(&self, port: PortId, domain: DomainId) -> bool {
        !self.arms.is_empty()
            && self.arms.iter().any(|a| match a.arm.target {
                TraceTarget::Port(p) => p == port,
                TraceTarget::Network(d) => d == domain,
            })
    }

    /// Whether this packet is to be traced; takes one from the arm's budget if so.
    pub fn take(&mut self, port: PortId, domain: DomainId, frame: &[u8]) -> bool {
        let Some(i) = self.arms.iter().position(|a| {
            (match a.arm.target {
                TraceTarget::Port(p) => p == port,
                TraceTarget::Network(d) => d == domain,
            }) && a.arm.filter.as_ref().is_none_or(|f| f.matches(frame))
        }) else {
            return false;
        };
        let took = self.arms[i]
            .budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1));
        if !matches!(took, Ok(r) if r > 1) {
            // Spent, here or by another worker.
            self.arms.remove(i);
        }
        took.is_ok()
    }
}

/// One captured frame, on its way to a pcap writer.
#[derive(Clone, Debug)]
pub struct Captured {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// A running capture: copies of matching frames go to `sink` (bounded: when the reader falls
/// behind, frames are counted as `dropped` rather than slowing the switch).
#[derive(Clone)]
pub struct Capture {
    pub target: TraceTarget,
    pub filter: Option<Filter>,
    /// Frames still to capture (`u64::MAX`: until stopped).
    pub remaining: u64,
    pub snaplen: usize,
    pub sink: crossbeam_channel::Sender<Captured>,
    pub dropped: u64,
}

impl Capture {
    /// Whether frames entering `port` (in `domain`) are captured.
    pub fn covers_ingress(&self, port: PortId, domain: DomainId) -> bool {
        match self.target {
            TraceTarget::Port(p) => p == port,
            TraceTarget::Network(d) => d == domain,
        }
    }

    /// Whether frames leaving through `port` are captured (port captures see both directions;
    /// a network capture sees each frame once, where it enters).
    pub fn covers_egress(&self, port: PortId) -> bool {
        self.target == TraceTarget::Port(port)
    }

    /// Copies `frame` if it matches; returns false once the capture is complete.
    pub fn offer(&mut self, frame: &[u8], ts_ns: u64) -> bool {
        if self.remaining == 0 {
            return false;
        }
        if self.filter.as_ref().is_some_and(|f| !f.matches(frame)) {
            return true;
        }
        let data = frame[..frame.len().min(self.snaplen)].to_vec();
        match self.sink.try_send(Captured {
            ts_ns,
            orig_len: frame.len() as u32,
            data,
        }) {
            Ok(()) => self.remaining -= 1,
            Err(crossbeam_channel::TrySendError::Full(_)) => self.dropped += 1,
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => self.remaining = 0,
        }
        self.remaining > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_copy_matching_frames_until_done_or_disconnected() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let mut c = Capture {
            target: TraceTarget::Port(PortId(3)),
            filter: Some("arp".parse().unwrap()),
            remaining: 2,
            snaplen: 20,
            sink: tx,
            dropped: 0,
        };
        assert!(c.covers_ingress(PortId(3), DomainId(0)) && c.covers_egress(PortId(3)));
        assert!(!c.covers_egress(PortId(4)));
        let mut arp = vec![0xff; 12];
        arp.extend([0x08, 0x06]);
        arp.resize(60, 0);
        let mut ip = arp.clone();
        ip[13] = 0;
        assert!(c.offer(&ip, 1), "not matched, still running");
        assert!(c.offer(&arp, 2));
        assert!(!c.offer(&arp, 3), "the second frame completes it");
        let got: Vec<Captured> = rx.try_iter().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].data.len(), got[0].orig_len, got[0].ts_ns),
            (20, 60, 2)
        );
    }

    #[test]
    fn ring_keeps_the_newest_in_order() {
        let mut ring = TraceRing::default();
        for i in 0..(RING_RECORDS + 5) {
            let mut r = TraceRecord::EMPTY;
            r.len = i as u32;
            ring.push(r);
        }
        assert_eq!(ring.len(), RING_RECORDS);
        let lens: Vec<u32> = ring.iter().map(|r| r.len).collect();
        assert_eq!(lens[0], 5);
        assert_eq!(*lens.last().unwrap(), (RING_RECORDS + 4) as u32);
        assert_eq!(ring.iter().last().unwrap().seq, (RING_RECORDS + 5) as u64);
    }

    #[test]
    fn workers_share_one_budget() {
        let budget = Arc::new(AtomicU32::new(3));
        let arm = TraceArm {
            target: TraceTarget::Network(DomainId(0)),
            remaining: 3,
            filter: None,
        };
        let (mut a, mut b) = (Tracer::default(), Tracer::default());
        a.arm_shared(arm.clone(), budget.clone());
        b.arm_shared(arm, budget);
        let frame = [0u8; 60];
        let taken = (0..4)
            .flat_map(|_| {
                [
                    a.take(PortId(1), DomainId(0), &frame),
                    b.take(PortId(2), DomainId(0), &frame),
                ]
            })
            .filter(|t| *t)
            .count();
        assert_eq!(taken, 3);
        assert!(!a.armed_for(PortId(1), DomainId(0)) && !b.armed_for(PortId(2), DomainId(0)));
    }

    #[test]
    fn arms_spend_their_budget_and_filter() {
        let mut t = Tracer::default();
        assert!(!t.armed_for(PortId(1), DomainId(0)));
        t.arm(TraceArm {
            target: TraceTarget::Port(PortId(1)),
            remaining: 2,
            filter: Some("arp".parse().unwrap()),
        });
        assert!(t.armed_for(PortId(1), DomainId(9)));
        assert!(!t.armed_for(PortId(2), DomainId(0)));
        let mut arp = vec![0xff; 12];
        arp.extend([0x08, 0x06]);
        arp.resize(60, 0);
        let mut ip = arp.clone();
        ip[13] = 0x00;
        assert!(!t.take(PortId(1), DomainId(0), &ip), "filtered out");
        assert!(t.take(PortId(1), DomainId(0), &arp));
        assert!(t.take(PortId(1), DomainId(0), &arp));
        assert!(!t.armed_for(PortId(1), DomainId(0)), "budget spent");
    }

    #[test]
    fn records_cap_their_steps() {
        let mut r = TraceRecord::EMPTY;
        r.start(PortId(0), DomainId(0), &[1, 2, 3], 7);
        for _ in 0..(MAX_STEPS + 3) {
            r.push(Step::SpoofChecked);
        }
        assert_eq!(r.steps().len(), MAX_STEPS);
        assert!(r.overflow);
        assert_eq!(r.head(), &[1, 2, 3]);
    }
}
