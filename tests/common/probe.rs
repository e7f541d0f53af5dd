//! Fast in-process probes: TCP and UDP echo servers and clients whose sockets live in a named
//! network namespace (a thread enters it with `setns`, creates the socket, and the socket stays in
//! that namespace whichever thread uses it). Used where a test needs hundreds of probes with short
//! timeouts, which `nc` in a subprocess would make slow; the real clients (ping, nc, iperf3) are
//! used in the other tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Runs `f` on a fresh thread inside `/run/netns/<ns>`.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a namespace fd we own; it only changes this thread's namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("probe thread panicked")
}

/// Echo servers that stop (and close their sockets) when dropped.
pub struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Servers {
    pub fn new() -> Servers {
        Servers {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    /// A TCP echo server on every address of `ns`, port `port`.
    pub fn tcp(&mut self, ns: &str, port: u16) {
        let listener = in_netns(ns, move || {
            let l = TcpListener::bind(("0.0.0.0", port)).expect("bind tcp");
            l.set_nonblocking(true).unwrap();
            l
        });
        let stop = Arc::clone(&self.stop);
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let stop = Arc::clone(&stop);
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                            let mut buf = [0u8; 64];
                            while !stop.load(Ordering::Relaxed) {
                                match s.read(&mut buf) {
                                    Ok(0) => break,
                                    Ok(n) => {
                                        if s.write_all(&buf[..n]).is_err() {
                                            break;
                                        }
                                    }
                                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                                    Err(_) => break,
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }

    /// A TCP server on `port` in `ns` that answers each connection with the peer's address
    /// (`ip:port\n`) and closes: what a server behind NAT sees as its client.
    pub fn tcp_whoami(&mut self, ns: &str, port: u16) {
        let listener = in_netns(ns, move || {
            let l = TcpListener::bind(("0.0.0.0", port)).expect("bind tcp");
            l.set_nonblocking(true).unwrap();
            l
        });
        let stop = Arc::clone(&self.stop);
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = writeln!(s, "{peer}");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }

    /// A UDP echo server on every address of `ns`, port `port`.
    pub fn udp(&mut self, ns: &str, port: u16) {
        let socket = in_netns(ns, move || {
            let s = UdpSocket::bind(("0.0.0.0", port)).expect("bind udp");
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            s
        });
        let stop = Arc::clone(&self.stop);
        self.threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        }));
    }
}

impl Default for Servers {
    fn default() -> Self {
        Servers::new()
    }
}

/// A TCP connection from `ns` to `addr:port` that echoed a first message, or `None`.
pub fn tcp_connect(ns: &str, addr: Ipv4Addr, port: u16, timeout: Duration) -> Option<TcpStream> {
    let stream = in_netns(ns, move || {
        TcpStream::connect_timeout(&SocketAddr::from((addr, port)), timeout).ok()
    })?;
    echo(&stream, timeout).then_some(stream)
}

/// Sends a few bytes on an open connection and waits for them to come back.
pub fn echo(mut stream: &TcpStream, timeout: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    if stream.write_all(b"ping").is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).is_ok() && &buf == b"ping"
}

/// Whether a TCP connection from `ns` to `addr:port` opens and echoes within `timeout`.
pub fn tcp_ok(ns: &str, addr: Ipv4Addr, port: u16, timeout: Duration) -> bool {
    tcp_connect(ns, addr, port, timeout).is_some()
}

/// Whether a UDP datagram from `ns` to `addr:port` is echoed within `timeout` (three tries).
pub fn udp_ok(ns: &str, addr: Ipv4Addr, port: u16, timeout: Duration) -> bool {
    in_netns(ns, move || {
        let s = UdpSocket::bind(("0.0.0.0", 0)).unwrap();
        s.set_read_timeout(Some(timeout / 3)).unwrap();
        let mut buf = [0u8; 8];
        for _ in 0..3 {
            let _ = s.send_to(b"ping", (addr, port));
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return &buf[..n] == b"ping";
            }
        }
        false
    })
}

/// Connects from `ns` to a `tcp_whoami` server and returns what it says (the address it saw).
pub fn whoami(ns: &str, addr: Ipv4Addr, port: u16, timeout: Duration) -> Option<String> {
    let mut stream = in_netns(ns, move || {
        TcpStream::connect_timeout(&SocketAddr::from((addr, port)), timeout).ok()
    })?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    Some(out.trim().to_string())
}

/// Whether a TCP connection from `ns` to `addr:port` is refused (a reset came back) within
/// `timeout`, rather than opening or timing out.
pub fn tcp_refused(ns: &str, addr: Ipv4Addr, port: u16, timeout: Duration) -> bool {
    in_netns(ns, move || {
        matches!(
            TcpStream::connect_timeout(&SocketAddr::from((addr, port)), timeout),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        )
    })
}

/// A UDP socket bound in `ns` (kept across sends, so its flow keeps one source port).
pub fn udp_socket(ns: &str) -> UdpSocket {
    in_netns(ns, || UdpSocket::bind(("0.0.0.0", 0)).unwrap())
}

/// Sends on `socket` to `addr:port` and waits for the echo (three tries within `timeout`).
pub fn udp_echo(socket: &UdpSocket, addr: Ipv4Addr, port: u16, timeout: Duration) -> bool {
    socket.set_read_timeout(Some(timeout / 3)).unwrap();
    let mut buf = [0u8; 8];
    for _ in 0..3 {
        let _ = socket.send_to(b"ping", (addr, port));
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            return &buf[..n] == b"ping";
        }
    }
    false
}

/// Whether a connected UDP socket in `ns` hears "port unreachable" back from `addr:port` (Linux
/// reports the ICMP error as ECONNREFUSED, only if its quote matches the socket's own flow).
pub fn udp_refused(ns: &str, addr: Ipv4Addr, port: u16, timeout: Duration) -> bool {
    in_netns(ns, move || {
        let s = UdpSocket::bind(("0.0.0.0", 0)).unwrap();
        s.connect((addr, port)).unwrap();
        s.set_read_timeout(Some(timeout / 3)).unwrap();
        let mut buf = [0u8; 8];
        for _ in 0..3 {
            let _ = s.send(b"ping");
            match s.recv(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return true,
                Err(_) => {}
                Ok(_) => return false,
            }
        }
        false
    })
}
