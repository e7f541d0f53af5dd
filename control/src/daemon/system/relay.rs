//! Published ports from the host itself: one event-driven relay for every port.
//!
//! Traffic that arrives on the uplink is the data plane's (DNAT, conntrack, the client's own
//! address kept). But a connection the host makes to itself (`curl localhost:8080`, the
//! gateway address, any of the host's addresses) never leaves the kernel, so no switch sees it;
//! Docker covers that case with one `docker-proxy` process per port and protocol. switchyard
//! listens on those addresses from one thread: a `mio::Poll` over a listening socket per
//! published port (on the address it is published on, `0.0.0.0` for every host address, or
//! `127.0.0.1` only) and two sockets per relayed connection, whatever the number of ports. It
//! changes no firewall rule and needs no process or thread per port; a port range costs one
//! socket per port and nothing per idle connection.
//!
//! TCP: each accepted connection gets a non-blocking connection to the container and bytes are
//! copied both ways through two bounded buffers; a half-close is passed on (`shutdown(Write)`).
//! UDP: each client address gets its own socket connected to the container, so replies find
//! their way back; idle flows end after `UDP_IDLE`. Everything is bounded (`MAX_TCP`,
//! `MAX_UDP`, 16 KiB per direction); beyond a bound new connections are refused (counted).
//!
//! The container sees the host's address as the client (as with docker-proxy); clients from
//! outside keep their own address because they come through the data plane.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};

/// Relayed TCP connections at most; more are accepted and closed at once (counted).
const MAX_TCP: usize = 4096;
/// Relayed UDP flows (client addresses) at most; datagrams of new flows beyond it are dropped.
const MAX_UDP: usize = 4096;
/// Bytes buffered per direction of a TCP connection.
const BUFFER: usize = 16 * 1024;
/// A UDP flow without traffic for this long ends.
const UDP_IDLE: Duration = Duration::from_secs(60);
const WAKER: Token = Token(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One published port as the relay serves it: listen on `listen`, relay to `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub proto: Proto,
    pub listen: SocketAddrV4,
    pub target: SocketAddrV4,
}

/// What the relay has done since it started (`switchyard status`).
#[derive(Debug, Default)]
pub struct RelayCounters {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    pub bytes: AtomicU64,
    pub datagrams: AtomicU64,
}

enum Msg {
    /// The whole set of forwards; answered with the ones that could not be set up.
    Set(Vec<Forward>, Sender<Vec<(Forward, io::Error)>>),
    Stop,
}

/// The control thread's side: the relay runs on its own thread until dropped.
pub struct Relay {
    tx: Sender<Msg>,
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub counters: Arc<RelayCounters>,
}

impl Relay {
    /// Starts the relay thread (in the calling thread's network namespace: the daemon's).
    pub fn start() -> io::Result<Relay> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = unbounded();
        let counters = Arc::new(RelayCounters::default());
        let mut worker = Worker::new(poll, rx, counters.clone());
        let thread = std::thread::Builder::new()
            .name("port-relay".into())
            .spawn(move || worker.run())?;
        Ok(Relay {
            tx,
            waker,
            thread: Some(thread),
            counters,
        })
    }

    /// Replaces the set of forwards: new ones listen before this returns (so a port in use is
    /// known at once), gone ones stop listening and their connections end. Returns the forwards
    /// that could not listen, with the reason.
    pub fn set(&self, forwards: Vec<Forward>) -> Vec<(Forward, io::Error)> {
        let (reply_tx, reply_rx) = bounded(1);
        if self.tx.send(Msg::Set(forwards, reply_tx)).is_err() || self.waker.wake().is_err() {
            return Vec::new();
        }
        reply_rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The key a listener is known by: a port is published once per protocol and address.
type Key = (Proto, SocketAddrV4);

enum Entry {
    TcpListener {
        socket: TcpListener,
        target: SocketAddrV4,
    },
    UdpListener {
        socket: UdpSocket,
        target: SocketAddrV4,
        /// Client address -> the token of its flow.
        flows: HashMap<SocketAddr, Token>,
    },
    /// Either side of a relayed TCP connection (both tokens lead to the same pipe).
    Tcp(usize),
    UdpFlow {
        socket: UdpSocket,
        client: SocketAddr,
        listener: Token,
        last: Instant,
    },
}

struct Pipe {
    client: TcpStream,
    server: TcpStream,
    tokens: (Token, Token),
    listener: Token,
    connected: bool,
    up: Buffer,
    down: Buffer,
    client_eof: bool,
    server_eof: bool,
    shut_server: bool,
    shut_client: bool,
}

struct Buffer {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buffer {
    fn new() -> Buffer {
        Buffer {
            data: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Reads from `from` while there is room; `Ok(true)` at end of stream.
    fn fill(&mut self, from: &mut TcpStream) -> io::Result<bool> {
        loop {
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            }
            if self.end == self.data.len() {
                return Ok(false);
            }
            match from.read(&mut self.data[self.end..]) {
                Ok(0) => return Ok(true),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes what it holds to `to` until done or it would block; returns the bytes written.
    fn drain(&mut self, to: &mut TcpStream) -> io::Result<usize> {
        let mut written = 0;
        while self.start < self.end {
            match to.write(&self.data[self.start..self.end]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.start += n;
                    written += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }
}

struct Worker {
    poll: Poll,
    rx: Receiver<Msg>,
    counters: Arc<RelayCounters>,
    entries: HashMap<Token, Entry>,
    pipes: HashMap<usize, Pipe>,
    listeners: BTreeMap<Key, Token>,
    next_token: usize,
    next_pipe: usize,
    udp_flows: usize,
}

impl Worker {
    fn new(poll: Poll, rx: Receiver<Msg>, counters: Arc<RelayCounters>) -> Worker {
        Worker {
            poll,
            rx,
            counters,
            entries: HashMap::new(),
            pipes: HashMap::new(),
            listeners: BTreeMap::new(),
            next_token: 1,
            next_pipe: 0,
            udp_flows: 0,
        }
    }

    fn token(&mut self) -> Token {
        // Tokens are never reused while the relay runs (a usize does not run out), so a stale
        // event can never reach a newer socket.
        self.next_token += 1;
        Token(self.next_token)
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_secs(5))) {
                if e.kind() != ErrorKind::Interrupted {
                    tracing::error!("port relay: poll: {e}");
                    return;
                }
            }
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                self.ready(token);
            }
            while let Ok(msg) = self.rx.try_recv() {
                match msg {
                    Msg::Set(forwards, reply) => {
                        let _ = reply.send(self.set(forwards));
                    }
                    Msg::Stop => return,
                }
            }
            self.expire_udp();
        }
    }

    fn set(&mut self, forwards: Vec<Forward>) -> Vec<(Forward, io::Error)> {
        let wanted: BTreeMap<Key, SocketAddrV4> = forwards
            .iter()
            .map(|f| ((f.proto, f.listen), f.target))
            .collect();
        // Gone first, so a port moving from one container to another can listen again.
        let gone: Vec<Key> = self
            .listeners
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            if let Some(token) = self.listeners.remove(&key) {
                self.close_listener(token);
            }
        }
        let mut failed = Vec::new();
        for f in forwards {
            let key = (f.proto, f.listen);
            if let Some(&token) = self.listeners.get(&key) {
                // Same port, maybe another container: new connections go to the new target.
                match self.entries.get_mut(&token) {
                    Some(Entry::TcpListener { target, .. } | Entry::UdpListener { target, .. })
                        if *target != f.target =>
                    {
                        *target = f.target;
                    }
                    _ => {}
                }
                continue;
            }
            match self.listen(f) {
                Ok(token) => {
                    self.listeners.insert(key, token);
                }
                Err(e) => failed.push((f, e)),
            }
        }
        failed
    }

    fn listen(&mut self, f: Forward) -> io::Result<Token> {
        let token = self.token();
        let addr = SocketAddr::V4(f.listen);
        let entry = match f.proto {
            Proto::Tcp => {
                let mut socket = TcpListener::bind(addr)?;
                self.poll
                    .registry()
                    .register(&mut socket, token, Interest::READABLE)?;
                Entry::TcpListener {
                    socket,
                    target: f.target,
                }
            }
            Proto::Udp => {
                let mut socket = UdpSocket::bind(addr)?;
                self.poll
                    .registry()
                    .register(&mut socket, token, Interest::READABLE)?;
                Entry::UdpListener {
                    socket,
                    target: f.target,
                    flows: HashMap::new(),
                }
            }
        };
        self.entries.insert(token, entry);
        Ok(token)
    }

    /// Stops listening and ends every connection and flow that came through the listener.
    fn close_listener(&mut self, token: Token) {
        if let Some(Entry::UdpListener { flows, .. }) = self.entries.remove(&token) {
            for t in flows.values() {
                self.entries.remove(t);
                self.udp_flows -= 1;
            }
        }
        let pipes: Vec<usize> = self
            .pipes
            .iter()
            .filter(|(_, p)| p.listener == token)
            .map(|(&id, _)| id)
            .collect();
        for id in pipes {
            self.close_pipe(id);
        }
    }

    fn ready(&mut self, token: Token) {
        match self.entries.get(&token) {
            Some(Entry::TcpListener { .. }) => self.accept(token),
            Some(Entry::UdpListener { .. }) => self.relay_udp_from_clients(token),
            Some(&Entry::Tcp(id)) => self.pump(id),
            Some(Entry::UdpFlow { .. }) => self.relay_udp_from_target(token),
            None => {}
        }
    }

    fn accept(&mut self, listener: Token) {
        loop {
            let Some(Entry::TcpListener { socket, target }) = self.entries.get(&listener) else {
                return;
            };
            let target = *target;
            let client = match socket.accept() {
                Ok((client, _)) => client,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("port relay: accept: {e}");
                    return;
                }
            };
            if self.pipes.len() >= MAX_TCP {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let server = match TcpStream::connect(SocketAddr::V4(target)) {
                Ok(s) => s,
                Err(_) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            let tokens = (self.token(), self.token());
            let id = self.next_pipe;
            self.next_pipe += 1;
            let mut pipe = Pipe {
                client,
                server,
                tokens,
                listener,
                connected: false,
                up: Buffer::new(),
                down: Buffer::new(),
                client_eof: false,
                server_eof: false,
                shut_server: false,
                shut_client: false,
            };
            let both = Interest::READABLE | Interest::WRITABLE;
            let registry = self.poll.registry();
            if registry.register(&mut pipe.client, tokens.0, both).is_err()
                || registry.register(&mut pipe.server, tokens.1, both).is_err()
            {
                continue;
            }
            self.entries.insert(tokens.0, Entry::Tcp(id));
            self.entries.insert(tokens.1, Entry::Tcp(id));
            self.pipes.insert(id, pipe);
        }
    }

    /// Moves what can move both ways; ends the connection when both sides are done or one fails.
    fn pump(&mut self, id: usize) {
        let Some(pipe) = self.pipes.get_mut(&id) else {
            return;
        };
        let done = match pipe.step() {
            Ok((moved, done)) => {
                self.counters
                    .bytes
                    .fetch_add(moved as u64, Ordering::Relaxed);
                done
            }
            Err(_) => {
                if !pipe.connected {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
        };
        if done {
            self.close_pipe(id);
        }
    }

    fn close_pipe(&mut self, id: usize) {
        if let Some(mut pipe) = self.pipes.remove(&id) {
            let registry = self.poll.registry();
            let _ = registry.deregister(&mut pipe.client);
            let _ = registry.deregister(&mut pipe.server);
            self.entries.remove(&pipe.tokens.0);
            self.entries.remove(&pipe.tokens.1);
        }
    }

    fn relay_udp_from_clients(&mut self, listener: Token) {
        let mut buf = [0u8; 65536];
        loop {
            let Some(Entry::UdpListener {
                socket,
                target,
                flows,
            }) = self.entries.get(&listener)
            else {
                return;
            };
            let (n, client) = match socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let target = *target;
            let flow = match flows.get(&client) {
                Some(&t) => t,
                None => match self.new_udp_flow(listener, client, target) {
                    Some(t) => t,
                    None => {
                        self.counters.refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                },
            };
            if let Some(Entry::UdpFlow { socket, last, .. }) = self.entries.get_mut(&flow) {
                *last = Instant::now();
                if socket.send(&buf[..n]).is_ok() {
                    self.counters.datagrams.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn new_udp_flow(
        &mut self,
        listener: Token,
        client: SocketAddr,
        target: SocketAddrV4,
    ) -> Option<Token> {
        if self.udp_flows >= MAX_UDP {
            return None;
        }
        let mut socket = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0))).ok()?;
        socket.connect(SocketAddr::V4(target)).ok()?;
        let token = self.token();
        self.poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)
            .ok()?;
        self.entries.insert(
            token,
            Entry::UdpFlow {
                socket,
                client,
                listener,
                last: Instant::now(),
            },
        );
        if let Some(Entry::UdpListener { flows, .. }) = self.entries.get_mut(&listener) {
            flows.insert(client, token);
        }
        self.udp_flows += 1;
        Some(token)
    }

    fn relay_udp_from_target(&mut self, flow: Token) {
        let mut buf = [0u8; 65536];
        loop {
            let Some(Entry::UdpFlow {
                socket,
                client,
                listener,
                ..
            }) = self.entries.get(&flow)
            else {
                return;
            };
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // ECONNREFUSED: the container's port unreachable, reported once; nothing to
                // pass on (the client's own datagram went out, so it may time out as usual).
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Interrupted | ErrorKind::ConnectionRefused
                    ) =>
                {
                    continue
                }
                Err(_) => return,
            };
            let client = *client;
            if let Some(Entry::UdpListener { socket, .. }) = self.entries.get(listener) {
                if socket.send_to(&buf[..n], client).is_ok() {
                    self.counters.datagrams.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some(Entry::UdpFlow { last, .. }) = self.entries.get_mut(&flow) {
                *last = Instant::now();
            }
        }
    }

    fn expire_udp(&mut self) {
        if self.udp_flows == 0 {
            return;
        }
        let now = Instant::now();
        let idle: Vec<(Token, Token, SocketAddr)> = self
            .entries
            .iter()
            .filter_map(|(&t, e)| match e {
                Entry::UdpFlow {
                    client,
                    listener,
                    last,
                    ..
                } if now.duration_since(*last) > UDP_IDLE => Some((t, *listener, *client)),
                _ => None,
            })
            .collect();
        for (token, listener, client) in idle {
            self.entries.remove(&token);
            self.udp_flows -= 1;
            if let Some(Entry::UdpListener { flows, .. }) = self.entries.get_mut(&listener) {
                flows.remove(&client);
            }
        }
    }
}

impl Pipe {
    /// One round of copying both ways. Returns the bytes moved and whether the connection is
    /// over (both directions closed and drained).
    fn step(&mut self) -> io::Result<(usize, bool)> {
        if !self.connected {
            if let Some(e) = self.server.take_error()? {
                return Err(e);
            }
            match self.server.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok((0, false)),
                Err(e) => return Err(e),
            }
        }
        let mut moved = 0;
        loop {
            let mut progress = 0;
            if !self.client_eof {
                self.client_eof = self.up.fill(&mut self.client)?;
            }
            progress += self.up.drain(&mut self.server)?;
            if !self.server_eof {
                self.server_eof = self.down.fill(&mut self.server)?;
            }
            progress += self.down.drain(&mut self.client)?;
            moved += progress;
            if progress == 0 {
                break;
            }
        }
        if self.client_eof && self.up.is_empty() && !self.shut_server {
            let _ = self.server.shutdown(Shutdown::Write);
            self.shut_server = true;
        }
        if self.server_eof && self.down.is_empty() && !self.shut_client {
            let _ = self.client.shutdown(Shutdown::Write);
            self.shut_client = true;
        }
        Ok((moved, self.shut_server && self.shut_client))
    }
}
