//! The resolver's sockets: per gateway address a UDP socket and a TCP listener, served by tasks
//! on the resolver's own runtime, and the forwards to upstream servers (dialled from the daemon's
//! namespace, over the protocol the asker used).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use super::answer::{self, Action, Asker, Note, MAX_QUERY};
use super::counters::Counters;
use crate::api::trace::DnsQueryView;
use crate::model::dns::NameTable;

/// The whole time a forwarded query may take, split between the upstreams: a dead upstream gets
/// the asker a SERVFAIL well before its own 5 s timeout.
pub const FORWARD_BUDGET: Duration = Duration::from_secs(3);
/// Forwards waiting at once (Docker's limit); more are answered SERVFAIL at once.
const MAX_FORWARDS: usize = 1024;
/// TCP connections served at once per gateway, and how long one may sit idle.
const MAX_TCP: usize = 128;
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Queries the log keeps (the oldest goes first).
const LOG_SIZE: usize = 256;

/// What every task of the resolver shares.
pub struct Shared {
    pub table: RwLock<Arc<NameTable>>,
    pub counters: Counters,
    forwards: Arc<Semaphore>,
    turn: AtomicUsize,
    log: Mutex<(u64, VecDeque<DnsQueryView>)>,
}

/// A query on its way: what is needed to log it once it is answered.
struct Pending {
    asker: Asker,
    note: Note,
    arrived: Instant,
    unix_ms: u64,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            table: RwLock::new(Arc::new(NameTable::default())),
            counters: Counters::default(),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            turn: AtomicUsize::new(0),
            log: Mutex::new((0, VecDeque::with_capacity(LOG_SIZE))),
        }
    }

    fn table(&self) -> Arc<NameTable> {
        Arc::clone(&self.table.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn decide(&self, asker: Asker, query: &[u8]) -> (Action, Pending) {
        let arrived = Instant::now();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let (action, note) =
            answer::handle_noted(&self.table(), asker, query, turn, &self.counters);
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let pending = Pending {
            asker,
            note,
            arrived,
            unix_ms,
        };
        (action, pending)
    }

    /// Logs an answered query; `forwarded` says what the upstreams did with a forward.
    fn record(&self, p: Pending, forwarded: Option<&Forwarded>) {
        let table = self.table();
        let (outcome, answer) = match forwarded {
            Some(Forwarded::Answered { by, rcode }) => {
                ("forwarded".to_string(), format!("{rcode} from {by}"))
            }
            Some(Forwarded::Failed) => (
                "servfail".to_string(),
                "no upstream answered in time".to_string(),
            ),
            None => (p.note.outcome.to_string(), p.note.answer),
        };
        let view = DnsQueryView {
            seq: 0,
            unix_ms: p.unix_ms,
            protocol: if p.asker.tcp { "tcp" } else { "udp" }.into(),
            network: table
                .network_at(p.asker.listen)
                .map_or_else(|| p.asker.listen.to_string(), |n| n.name.clone()),
            asker: p.asker.src.to_string(),
            container: table
                .asker_name(p.asker.listen, p.asker.src)
                .map(String::from),
            name: p.note.name,
            qtype: p.note.qtype,
            outcome,
            answer,
            micros: p.arrived.elapsed().as_micros() as u64,
        };
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let (next, ring) = &mut *log;
        if ring.len() == LOG_SIZE {
            ring.pop_front();
        }
        ring.push_back(DnsQueryView { seq: *next, ..view });
        *next += 1;
    }

    pub fn log(&self) -> Vec<DnsQueryView> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.1.iter().cloned().collect()
    }
}

/// What the upstreams did with a forwarded query.
enum Forwarded {
    Answered { by: SocketAddr, rcode: String },
    Failed,
}

/// A UDP socket and a TCP listener bound to `ip`:53, before the address may exist (FREEBIND):
/// binding never waits for the host tap.
pub fn bind(ip: Ipv4Addr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    use socket2::{Domain, Socket, Type};
    let addr = SocketAddr::new(IpAddr::V4(ip), 53);
    let udp = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    udp.set_freebind_v4(true)?;
    udp.set_nonblocking(true)?;
    udp.bind(&addr.into())?;
    let tcp = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    tcp.set_freebind_v4(true)?;
    tcp.set_reuse_address(true)?;
    tcp.set_nonblocking(true)?;
    tcp.bind(&addr.into())?;
    tcp.listen(128)?;
    Ok((udp.into(), tcp.into()))
}

pub async fn serve_udp(socket: UdpSocket, listen: Ipv4Addr, shared: Arc<Shared>) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, src)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        Counters::add(&shared.counters.queries_udp);
        let query = &buf[..n];
        let asker = Asker {
            listen,
            src: src.ip(),
            tcp: false,
        };
        let (action, pending) = shared.decide(asker, query);
        match action {
            Action::Reply(b) => {
                let _ = socket.send_to(&b, src).await;
                shared.record(pending, None);
            }
            Action::Drop => shared.record(pending, None),
            Action::Forward { upstreams, limit } => {
                let Ok(permit) = Arc::clone(&shared.forwards).try_acquire_owned() else {
                    Counters::add(&shared.counters.forward_overload);
                    if let Some(b) = answer::servfail(query) {
                        let _ = socket.send_to(&b, src).await;
                    }
                    shared.record(pending, Some(&Forwarded::Failed));
                    continue;
                };
                let (socket, shared, query) =
                    (Arc::clone(&socket), Arc::clone(&shared), query.to_vec());
                tokio::spawn(async move {
                    let got = forward_udp(&query, &upstreams, limit, &shared.counters).await;
                    drop(permit);
                    let (reply, how) = finish(&shared, &query, got, limit);
                    if let Some(b) = reply {
                        let _ = socket.send_to(&b, src).await;
                    }
                    shared.record(pending, Some(&how));
                });
            }
        }
    }
}

/// The asker's answer from what the upstreams said (or SERVFAIL), counted.
fn finish(
    shared: &Shared,
    query: &[u8],
    got: Option<(SocketAddr, Vec<u8>)>,
    limit: usize,
) -> (Option<Vec<u8>>, Forwarded) {
    match got {
        Some((by, b)) => {
            Counters::add(&shared.counters.forwarded);
            let rcode = answer::rcode(&b);
            (
                answer::relay(b, limit, &shared.counters),
                Forwarded::Answered { by, rcode },
            )
        }
        None => {
            Counters::add(&shared.counters.forward_failed);
            (answer::servfail(query), Forwarded::Failed)
        }
    }
}

fn per_upstream(n: usize) -> Duration {
    (FORWARD_BUDGET / n.max(1) as u32).max(Duration::from_millis(500))
}

/// Asks each upstream in turn over UDP until one answers the query's ID.
/// The buffer is one byte larger than what the asker takes: a bigger answer is not read whole
/// (nor needed): the asker gets the question back with TC set and retries over TCP.
async fn forward_udp(
    query: &[u8],
    upstreams: &[SocketAddr],
    limit: usize,
    counters: &Counters,
) -> Option<(SocketAddr, Vec<u8>)> {
    let id = answer::query_id(query);
    let each = per_upstream(upstreams.len());
    for up in upstreams {
        let local: SocketAddr = match up {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let attempt = async {
            let s = UdpSocket::bind(local).await.ok()?;
            s.connect(up).await.ok()?;
            s.send(query).await.ok()?;
            let mut buf = vec![0u8; limit + 1];
            loop {
                // A refused port (ICMP) ends this upstream's turn at once.
                let n = s.recv(&mut buf).await.ok()?;
                if answer::answers(&buf[..n], id) {
                    if n > limit {
                        Counters::add(&counters.truncated);
                        return answer::too_big(query);
                    }
                    buf.truncate(n);
                    return Some(buf);
                }
            }
        };
        if let Ok(Some(b)) = timeout(each, attempt).await {
            return Some((*up, b));
        }
    }
    None
}

/// Asks each upstream in turn over TCP (a TCP asker, often retrying a truncated answer).
async fn forward_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<(SocketAddr, Vec<u8>)> {
    let id = answer::query_id(query);
    let each = per_upstream(upstreams.len());
    for up in upstreams {
        let attempt = async {
            let mut s = TcpStream::connect(up).await.ok()?;
            s.write_all(&framed(query)).await.ok()?;
            let b = read_frame(&mut s).await?;
            answer::answers(&b, id).then_some(b)
        };
        if let Ok(Some(b)) = timeout(each, attempt).await {
            return Some((*up, b));
        }
    }
    None
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 2);
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
    out
}

async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.ok()?;
    let mut b = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut b).await.ok()?;
    Some(b)
}

pub async fn serve_tcp(listener: TcpListener, listen: Ipv4Addr, shared: Arc<Shared>) {
    let connections = Arc::new(Semaphore::new(MAX_TCP));
    loop {
        let Ok((stream, src)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            continue; // Dropping the stream closes it: too many at once.
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_connection(stream, src.ip(), listen, &shared).await;
            drop(permit);
        });
    }
}

/// Queries on one TCP connection, one after another, until it goes idle or breaks.
async fn serve_connection(mut stream: TcpStream, src: IpAddr, listen: Ipv4Addr, shared: &Shared) {
    loop {
        let Ok(Some(query)) = timeout(TCP_IDLE, read_frame(&mut stream)).await else {
            return;
        };
        Counters::add(&shared.counters.queries_tcp);
        if query.len() > MAX_QUERY {
            Counters::add(&shared.counters.oversized);
            return;
        }
        let asker = Asker {
            listen,
            src,
            tcp: true,
        };
        let (action, pending) = shared.decide(asker, &query);
        let (reply, forwarded) = match action {
            Action::Reply(b) => (Some(b), None),
            Action::Drop => (None, None),
            Action::Forward { upstreams, limit } => {
                let got = forward_tcp(&query, &upstreams).await;
                let (reply, how) = finish(shared, &query, got, limit);
                (reply, Some(how))
            }
        };
        shared.record(pending, forwarded.as_ref());
        if let Some(b) = reply {
            if stream.write_all(&framed(&b)).await.is_err() {
                return;
            }
        }
    }
}
