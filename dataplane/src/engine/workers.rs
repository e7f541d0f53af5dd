//! Several engine workers, one switch.
//!
//! Each worker is a whole `Engine` on its own thread, pinned to its own CPU: its own poller, receive
//! area, egress queues and a replica of every table. An AF_PACKET port gives every worker a socket
//! of its own in one fanout group steered by flow (`Port::receiver`): the kernel hands all frames of
//! a flow to one worker, so a flow's frames leave in the order they came. (Steering by the CPU
//! that received a frame saved a cross-CPU wake-up per ping, but a TCP sender moves between CPUs,
//! its own context and the softirq of arriving ACKs, so two workers sent one flow's segments on
//! and they overtook each other: bench/RESULTS.md.) A
//! port that cannot fan out (a tap, a VLAN share) is received by one worker, the least loaded,
//! and the others send to it through a `Port::sender`. Either way a frame is received, decided
//! and sent by one thread with no hand-off and no copy; on veth, sending runs the receiving end's
//! stack in the sender's call, so that work spreads over the CPUs with the workers.
//!
//! Why replicas rather than shared tables: a lookup in an engine-owned table costs 10.7 ns against
//! 17.7-45 ns for a concurrent map (shared/notes/measurements.md), the conntrack entry of a flow is
//! written by every packet (counters, state, last seen), and a worker must never wait on another.
//! The control plane programs every worker through the one `EngineHandle` (each command goes to all
//! of them; answers are merged into one view). What the data plane itself changes travels between
//! workers as `Peer` messages on bounded channels: a learned MAC, a neighbour learned on the uplink,
//! a new connection and every conntrack update (packets, bytes, TCP state and last seen), so each
//! replica holds the same flows with the same counters and timeouts.
//!
//! Why that is enough for correctness: a worker tells its peers before it sends the frame that
//! caused the change, and every worker applies what it was told after it receives a batch and
//! before it decides anything about it. An answer to a frame exists only after the frame was sent,
//! so the worker that receives the answer (the SYN-ACK of a new NAT flow, the reply to a host whose
//! MAC was just learned) has always applied the change first. Remaining differences are transient
//! and harmless: two workers learning the same MAC at once, both end with it; two workers
//! translating new flows at once never give them one port, as each chooses translated ports (and
//! ICMP identifiers) only from its own share (`PortShare`: port % workers = its index); a replica whose
//! channel overflowed (a worker stuck for 64k messages) misses changes and counts them
//! (`Peers::overflow`, shown by `switchyard stats` as worker updates lost); a port's trace budget
//! is per worker.
//!
//! **Architecture Invariant:** a worker never waits for another: peers' messages are `try_send` on
//! bounded channels and read with `try_recv` between batches; the only shared state on the packet
//! path is the channels and the kernel's sockets. With one worker there are no peers and nothing
//! is sent: `workers = 1` is the single engine as before.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use super::{affinity, Clock, Engine, EngineConfig, EngineHandle};
use crate::stage::nat::NewFlow;
use crate::table::conntrack::{Direction, Tuple};
use crate::table::nat::PortShare;
use crate::{DomainId, MacAddr, PortId, VlanId};

/// Messages one worker may have waiting from the others before they are counted as lost.
const PEER_QUEUE: usize = 65536;
/// A worker asleep in `epoll_wait` reads its messages only when woken: woken when this many wait.
const PEER_WAKE_AT: usize = 4096;

/// A table change made by the data plane of one worker, for the others' replicas.
#[derive(Clone, Copy, Debug)]
pub(super) enum Peer {
    Learn {
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
        port: PortId,
    },
    Neighbor(Ipv4Addr, MacAddr),
    CtInsert {
        flow: NewFlow,
        len: usize,
    },
    CtUpdate {
        original: Tuple,
        dir: Direction,
        tcp_flags: Option<u8>,
        len: usize,
    },
}

struct PeerLink {
    tx: Sender<Peer>,
    waker: Arc<mio::Waker>,
}

/// A worker's side of the others: where to tell them, and what they told it.
pub(super) struct Peers {
    inbox: Option<Receiver<Peer>>,
    others: Vec<PeerLink>,
    /// Messages lost because a peer's queue was full.
    pub(super) overflow: u64,
}

impl Peers {
    /// A single engine: nobody to tell.
    pub(super) fn none() -> Peers {
        Peers {
            inbox: None,
            others: Vec::new(),
            overflow: 0,
        }
    }

    /// Whether there are other workers (the pipeline tells them only then).
    #[inline(always)]
    pub(super) fn active(&self) -> bool {
        !self.others.is_empty()
    }

    /// Tells every other worker, without ever waiting.
    pub(super) fn tell(&mut self, message: Peer) {
        for link in &self.others {
            match link.tx.try_send(message) {
                Ok(()) => {
                    if link.tx.len() == PEER_WAKE_AT {
                        let _ = link.waker.wake();
                    }
                }
                Err(TrySendError::Full(_)) => self.overflow += 1,
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    fn next(&self) -> Option<Peer> {
        self.inbox.as_ref()?.try_recv().ok()
    }
}

impl Engine {
    /// Applies what the other workers told this one (before deciding anything about a batch).
    #[inline]
    pub(super) fn drain_peers(&mut self) {
        while let Some(message) = self.peers.next() {
            self.apply_peer(message);
        }
    }

    #[inline(never)]
    fn apply_peer(&mut self, message: Peer) {
        let now = self.now_ms();
        match message {
            Peer::Learn {
                domain,
                vlan,
                mac,
                port,
            } => {
                // A refused learn (a full table, a static entry) is refused here as there.
                let _ = self.tables.cam.learn(domain, vlan, mac, port, now);
            }
            Peer::Neighbor(ip, mac) => self.tables.nat.learn_neighbor(ip, mac),
            Peer::CtInsert { flow, len } => {
                // A clash means this replica already tracks the flow: nothing to add.
                let _ = self.tables.conntrack.insert(
                    flow.original,
                    flow.reply,
                    flow.kind,
                    flow.out_original,
                    flow.out_reply,
                    flow.mapping,
                    flow.inside,
                    flow.tcp_flags,
                    len,
                    now,
                );
            }
            Peer::CtUpdate {
                original,
                dir,
                tcp_flags,
                len,
            } => {
                if let Some((id, _)) = self.tables.conntrack.lookup(&original) {
                    self.tables.conntrack.update(id, dir, tcp_flags, len, now);
                }
            }
        }
    }
}

/// The engine's threads, to wait for after `EngineHandle::shutdown`.
pub struct EngineThreads(Vec<std::thread::JoinHandle<()>>);

impl EngineThreads {
    /// Waits for every worker; `Err` if one panicked.
    pub fn join(self) -> std::thread::Result<()> {
        let mut result = Ok(());
        for t in self.0 {
            if let Err(e) = t.join() {
                result = Err(e);
            }
        }
        result
    }
}

/// How many workers `workers` asks for on a machine where the process may use `allowed` CPUs:
/// 0 is one per CPU, but busy-polling workers leave one CPU to the endpoints (on 2 vCPUs, two
/// spinning workers took ping's RTT from 55 to 11,309 µs and TCP to 0.27x the kernel bridge:
/// bench/RESULTS.md).
pub fn count(workers: usize, allowed: &[usize], busy_poll: bool) -> usize {
    match workers {
        0 if busy_poll => allowed.len().saturating_sub(1).max(1),
        0 => allowed.len().max(1),
        n => n,
    }
}

/// Starts the workers (see `Engine::spawn`).
pub(super) fn spawn(config: EngineConfig) -> std::io::Result<(EngineHandle, EngineThreads)> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let allowed = affinity::allowed_cpus()?;
    let n = count(config.workers, &allowed, config.busy_poll);
    let cpus = affinity::placements(config.cpu, n, &allowed).map_err(invalid)?;
    let clock = Clock::now();
    let channels: Vec<(Sender<Peer>, Receiver<Peer>)> = (0..n)
        .map(|_| bounded(if n > 1 { PEER_QUEUE } else { 0 }))
        .collect();
    let mut engines = Vec::with_capacity(n);
    let mut links = Vec::with_capacity(n);
    for (i, (_, inbox)) in channels.iter().enumerate() {
        let peers = if n > 1 {
            Peers {
                inbox: Some(inbox.clone()),
                others: Vec::new(),
                overflow: 0,
            }
        } else {
            Peers::none()
        };
        let (mut engine, mut link) = Engine::worker(&config, clock, peers)?;
        engine.tables.nat.share = PortShare {
            index: i as u16,
            of: n as u16,
        };
        link.cpu = cpus[i];
        engines.push(engine);
        links.push(link);
    }
    if n > 1 {
        for (i, engine) in engines.iter_mut().enumerate() {
            engine.peers.others = (0..n)
                .filter(|&j| j != i)
                .map(|j| PeerLink {
                    tx: channels[j].0.clone(),
                    waker: links[j].waker.clone(),
                })
                .collect();
        }
    }
    let mut threads = Vec::with_capacity(n);
    let mut setups = Vec::with_capacity(n);
    for (i, engine) in engines.into_iter().enumerate() {
        let (setup_tx, setup_rx) = std::sync::mpsc::sync_channel(1);
        let (cpu, nice) = (cpus[i], config.nice);
        // The first worker keeps the single engine's name (tools find it by name).
        let name = if i == 0 {
            "switchyard-engine".to_string()
        } else {
            format!("switchyard-eng{i}")
        };
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let setup = affinity::place_current_thread(cpu, nice);
            let ok = setup.is_ok();
            let _ = setup_tx.send(setup);
            if ok {
                engine.run()
            }
        })?;
        threads.push(thread);
        setups.push(setup_rx);
    }
    let handle = EngineHandle::new(links);
    for setup in setups {
        let failed = match setup.recv() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(std::io::Error::other(
                "an engine thread died while starting",
            )),
        };
        if let Some(e) = failed {
            let _ = handle.shutdown();
            return Err(e);
        }
    }
    Ok((handle, EngineThreads(threads)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::CpuPin;
    use crate::port::{MemoryPort, MemoryPortHandle};
    use crate::trace::{TraceArm, TraceTarget};
    use crate::wire::vnet::VnetHeader;
    use std::time::{Duration, Instant};

    const MA: &str = "02:00:00:00:00:0a";
    const MB: &str = "02:00:00:00:00:0b";

    fn frame(dst: &str, src: &str) -> Vec<u8> {
        let mut f = Vec::with_capacity(60);
        f.extend_from_slice(dst.parse::<MacAddr>().unwrap().as_bytes());
        f.extend_from_slice(src.parse::<MacAddr>().unwrap().as_bytes());
        f.extend_from_slice(&[0x88, 0xb5]);
        f.resize(60, 0);
        f
    }

    /// Waits (up to 5 s) until `port` has sent `n` frames; returns them.
    fn sent(port: &MemoryPortHandle, n: usize) -> Vec<Vec<u8>> {
        let start = Instant::now();
        let mut got = Vec::new();
        while got.len() < n && start.elapsed() < Duration::from_secs(5) {
            got.extend(port.take_sent().into_iter().map(|(_, f)| f));
            std::thread::sleep(Duration::from_millis(1));
        }
        got
    }

    /// Two workers (busy polling, so in-memory ports are read): a MAC learned by one is used by
    /// the other at once, and the handle shows one switch: counters summed, one trace list.
    #[test]
    fn two_workers_forward_as_one_switch() {
        let (handle, threads) = Engine::spawn(EngineConfig {
            workers: 2,
            busy_poll: true,
            cpu: CpuPin::None,
            ..EngineConfig::default()
        })
        .unwrap();
        assert_eq!(handle.workers(), 2);
        let mut ports = Vec::new();
        for name in ["a", "b", "c"] {
            let (p, h) = MemoryPort::new(name, false);
            let id = handle.add_port(Box::new(p), DomainId(0)).unwrap();
            ports.push((id, h));
        }
        // Spread: a and c on worker 0, b on worker 1 (the least loaded first).
        let (a, b, c) = (&ports[0].1, &ports[1].1, &ports[2].1);
        handle
            .trace_arm(TraceArm {
                target: TraceTarget::Network(DomainId(0)),
                remaining: 10,
                filter: None,
            })
            .unwrap();
        // a's worker floods a broadcast to b and c through their senders, and learns MA.
        a.inject(&frame("ff:ff:ff:ff:ff:ff", MA));
        assert_eq!(sent(b, 1).len(), 1);
        assert_eq!(sent(c, 1).len(), 1);
        // b's worker has MA from its peer before it decides: unicast to a, nothing to c.
        b.inject(&frame(MA, MB));
        assert_eq!(sent(a, 1), vec![frame(MA, MB)]);
        std::thread::sleep(Duration::from_millis(20));
        assert!(c.take_sent().is_empty(), "a known MAC is not flooded");
        let snap = handle.snapshot().unwrap();
        let counters = |i: usize| snap.ports[i].counters;
        assert_eq!((counters(0).rx_packets, counters(0).tx_packets), (1, 1));
        assert_eq!((counters(1).rx_packets, counters(1).tx_packets), (1, 1));
        assert_eq!((counters(2).rx_packets, counters(2).tx_packets), (0, 1));
        let start = Instant::now();
        while handle.snapshot().unwrap().macs.len() < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "MB reaches worker 0"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let traces = handle.trace_show().unwrap();
        let seen: Vec<(PortId, u64)> = traces.iter().map(|t| (t.ingress, t.seq)).collect();
        assert_eq!(
            seen,
            vec![(ports[0].0, 1), (ports[1].0, 2)],
            "one list, in time order"
        );
        handle.shutdown().unwrap();
        threads.join().unwrap();
    }

    /// A worker whose peer does not read (stuck, or just slower than a flood of new MACs) fills
    /// the peer's queue; what does not fit is lost to that replica and counted, the sender never
    /// waits, and the count reaches the snapshot (`switchyard stats`: worker updates lost). The
    /// real queue holds 65,536 messages; this one 4, so a few frames overflow it.
    #[test]
    fn a_full_peer_queue_is_counted_not_waited_on() {
        let config = EngineConfig::default();
        let clock = Clock::now();
        let (tx, inbox) = bounded(4);
        let (mut sender, _link) = Engine::worker(&config, clock, Peers::none()).unwrap();
        let (mut stuck, stuck_link) = Engine::worker(
            &config,
            clock,
            Peers {
                inbox: Some(inbox),
                others: Vec::new(),
                overflow: 0,
            },
        )
        .unwrap();
        sender.peers.others = vec![PeerLink {
            tx,
            waker: stuck_link.waker.clone(),
        }];
        for name in ["a", "b"] {
            let (p, _h) = MemoryPort::new(name, false);
            sender.add_port(Box::new(p), DomainId(0)).unwrap();
        }
        // Ten new source MACs in one batch: ten learns to tell, room for four.
        for k in 0..10u8 {
            let src = format!("02:00:00:00:01:{k:02x}");
            sender.rx_batch_mut().fill(
                k as usize,
                VnetHeader::default(),
                &frame("ff:ff:ff:ff:ff:ff", &src),
            );
        }
        sender.process_received(PortId(0), DomainId(0), 10);
        assert_eq!(sender.peers.overflow, 6);
        let snap = sender.snapshot();
        assert_eq!((snap.workers, snap.peer_lost), (1, 6));
        // The stuck worker, once it reads, has the four that fitted.
        stuck.drain_peers();
        assert_eq!(stuck.tables.cam.len(), 4);
        assert_eq!(
            stuck.snapshot().peer_lost,
            0,
            "counted by the one that lost them"
        );
    }

    /// A worker masquerading to 192.0.2.1 from the uplink 192.0.2.10, with two containers on
    /// 172.17.0.0/16 (.2 and .3) on ports 1 and 2 of domain 0: the engine and the port handles.
    fn masquerading(
        share: PortShare,
        peers: Peers,
    ) -> (Engine, Arc<mio::Waker>, Vec<MemoryPortHandle>) {
        use crate::table::{ContainerGuard, NetworkNat, PortRole, Subnet, Uplink};
        let (mut e, link) = Engine::worker(&EngineConfig::default(), Clock::now(), peers).unwrap();
        e.tables.nat.share = share;
        let (up, up_h) = MemoryPort::new("up", false);
        let up = e
            .add_port_as(Box::new(up), DomainId(9), PortRole::Uplink)
            .unwrap();
        let mut handles = vec![up_h];
        for k in [2u8, 3] {
            let (p, h) = MemoryPort::new(&format!("c{k}"), false);
            let role = PortRole::Container(ContainerGuard {
                mac: MacAddr([2, 0, 0, 0, 0, k]),
                ips: vec![Ipv4Addr::new(172, 17, 0, k)],
                allow_spoofing: false,
            });
            let id = e.add_port_as(Box::new(p), DomainId(0), role).unwrap();
            e.tables
                .cam
                .add_static(DomainId(0), VlanId(0), MacAddr([2, 0, 0, 0, 0, k]), id)
                .unwrap();
            handles.push(h);
        }
        e.tables.nat.set_uplink(Some(Uplink {
            port: up,
            mac: MacAddr([2, 0, 0, 0, 0, 0x10]),
            ip: Ipv4Addr::new(192, 0, 2, 10),
            prefix: 24,
            gateway: None,
        }));
        e.tables.nat.set_networks(&[NetworkNat {
            domain: DomainId(0),
            subnet: Subnet {
                domain: DomainId(0),
                network: Ipv4Addr::new(172, 17, 0, 0),
                prefix: 16,
            },
            gateway_ip: Ipv4Addr::new(172, 17, 0, 1),
            gateway_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            external: true,
            routed: false,
        }]);
        e.tables
            .nat
            .learn_neighbor(Ipv4Addr::new(192, 0, 2, 1), MacAddr([2, 0, 0, 0, 0, 0x99]));
        (e, link.waker, handles)
    }

    /// A SYN from container 172.17.0.`k` port 40000 to 192.0.2.1:443, through its gateway.
    fn syn_from(k: u8) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, k], [2, 0, 0, 0, 0, 1])
            .ipv4([172, 17, 0, k], [192, 0, 2, 1], 64)
            .tcp(40000, 443, 1, 64240)
            .syn();
        let mut f = Vec::new();
        b.write(&mut f, &[]).unwrap();
        f
    }

    /// The source port of the one frame `uplink` sent (TCP over IPv4 without options).
    fn sent_sport(uplink: &MemoryPortHandle) -> u16 {
        let sent = uplink.take_sent();
        assert_eq!(sent.len(), 1, "one translated SYN out of the uplink");
        let f = &sent[0].1;
        u16::from_be_bytes([f[34], f[35]])
    }

    /// Two workers masquerade two containers' connections to one server, both from source port
    /// 40000, at the same moment (each before hearing of the other's): they must give them
    /// different ports, or the two connections would share one reply tuple and one container would
    /// get the other's replies. Each worker chooses only from its own share of the ports, so the
    /// two never collide, and each replica ends with both connections. (With every worker holding
    /// every port, both kept 40000 and the second connection was lost to the replicas' clash.)
    #[test]
    fn workers_masquerading_at_once_never_give_two_flows_one_port() {
        let (tx0, inbox0) = bounded(64);
        let (tx1, inbox1) = bounded(64);
        let peers = |inbox| Peers {
            inbox: Some(inbox),
            others: Vec::new(),
            overflow: 0,
        };
        let (mut w0, wake0, h0) = masquerading(PortShare { index: 0, of: 2 }, peers(inbox0));
        let (mut w1, wake1, h1) = masquerading(PortShare { index: 1, of: 2 }, peers(inbox1));
        w0.peers.others = vec![PeerLink {
            tx: tx1,
            waker: wake1,
        }];
        w1.peers.others = vec![PeerLink {
            tx: tx0,
            waker: wake0,
        }];
        // Both SYNs decided before either worker reads what the other told it.
        w0.rx_batch_mut()
            .fill(0, VnetHeader::default(), &syn_from(2));
        w0.process_received(PortId(1), DomainId(0), 1);
        w1.rx_batch_mut()
            .fill(0, VnetHeader::default(), &syn_from(3));
        w1.process_received(PortId(2), DomainId(0), 1);
        let (p0, p1) = (sent_sport(&h0[0]), sent_sport(&h1[0]));
        assert_ne!(p0, p1, "two connections, one reply tuple");
        assert_eq!((p0 % 2, p1 % 2), (0, 1), "each from its own share");
        // Each replica learns the other's connection: two, no clash.
        w0.drain_peers();
        w1.drain_peers();
        assert_eq!(w0.tables.conntrack.len(), 2);
        assert_eq!(w1.tables.conntrack.len(), 2);
    }

    #[test]
    fn a_worker_prefers_the_flow_port_only_in_its_share() {
        let single = PortShare::ALL;
        assert!((0..=u16::MAX).all(|p| single.holds(p)));
        let shares: Vec<PortShare> = (0..3).map(|index| PortShare { index, of: 3 }).collect();
        for port in [0u16, 1, 2, 1024, 40000, 65535] {
            let holders = shares.iter().filter(|s| s.holds(port)).count();
            assert_eq!(
                holders, 1,
                "port {port} belongs to exactly one of three workers"
            );
        }
    }

    #[test]
    fn one_worker_per_allowed_cpu_by_default() {
        assert_eq!(count(0, &[0, 1], false), 2);
        assert_eq!(count(0, &[3], false), 1);
        assert_eq!(count(3, &[0, 1], false), 3);
        // Busy polling leaves a CPU to the endpoints, unless asked.
        assert_eq!(count(0, &[0, 1], true), 1);
        assert_eq!(count(0, &[0, 1, 2, 3], true), 3);
        assert_eq!(count(0, &[5], true), 1);
        assert_eq!(count(2, &[0, 1], true), 2);
    }
}
