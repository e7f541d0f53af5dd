//! connrate -- new TCP connections per second, for bench/compare-nat.sh.
//!
//! ```text
//! connrate serve PORT
//! connrate connect ADDR:PORT SECONDS [--parallel N]
//! ```
//!
//! `serve` listens on 0.0.0.0:PORT (SO_REUSEADDR, backlog 4096) with one accepting thread per
//! core; each accepted connection is read once (the client's 1-byte request, 1 s timeout) and
//! closed. Reading the byte first makes the close a clean FIN rather than a RST for unread data.
//!
//! `connect` runs N threads (default 4), each doing, as fast as it can for SECONDS:
//! socket (SO_REUSEADDR) -> connect (1 s timeout) -> write 1 byte -> read until EOF -> close.
//! The server closes first, so the TIME_WAIT state lands on the server side and the client's
//! ephemeral ports are free again at once. It prints one line on stdout:
//! `connections=N seconds=S rate=R failures=F` (and a breakdown of failures on stderr).
//! Exit codes: 0 ok (even with failures), 1 nothing completed, 2 usage / setup error.

use std::io::{self, Read, Write};
use std::mem;
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const IO_TIMEOUT: Duration = Duration::from_secs(1);
const BACKLOG: libc::c_int = 4096;

fn usage() -> ExitCode {
    eprintln!("usage: connrate serve PORT");
    eprintln!("       connrate connect ADDR:PORT SECONDS [--parallel N]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") if args.len() == 2 => match args[1].parse::<u16>() {
            Ok(port) => serve(port),
            Err(_) => {
                eprintln!("connrate: bad port '{}'", args[1]);
                ExitCode::from(2)
            }
        },
        Some("connect") if args.len() >= 3 => {
            let addr: SocketAddrV4 = match args[1].parse() {
                Ok(a) => a,
                Err(_) => {
                    eprintln!("connrate: bad address '{}' (want IPv4:PORT)", args[1]);
                    return ExitCode::from(2);
                }
            };
            let seconds: f64 = match args[2].parse() {
                Ok(s) if s > 0.0 => s,
                _ => {
                    eprintln!("connrate: bad SECONDS '{}'", args[2]);
                    return ExitCode::from(2);
                }
            };
            let mut parallel = 4usize;
            let mut rest = args[3..].iter();
            while let Some(a) = rest.next() {
                match (a.as_str(), rest.next().map(|v| v.parse::<usize>())) {
                    ("--parallel", Some(Ok(n))) if n > 0 => parallel = n,
                    _ => return usage(),
                }
            }
            connect(addr, seconds, parallel)
        }
        _ => usage(),
    }
}

// ---------------------------------------------------------------- libc helpers

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn set_int_opt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: fd is an open socket; the option value is a c_int of the size passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&val as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr.s_addr = u32::from(*addr.ip()).to_be();
    sa
}

/// A new TCP/IPv4 socket with SO_REUSEADDR set. `nonblock` makes it non-blocking.
fn tcp_socket(nonblock: bool) -> io::Result<OwnedFd> {
    let flags =
        libc::SOCK_STREAM | libc::SOCK_CLOEXEC | if nonblock { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: plain syscall; the returned fd is owned by the OwnedFd from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(cvt(libc::socket(libc::AF_INET, flags, 0))?) };
    set_int_opt(raw(&fd), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    Ok(fd)
}

fn raw(fd: &OwnedFd) -> RawFd {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

// ---------------------------------------------------------------- serve

fn listen(port: u16) -> io::Result<TcpListener> {
    let fd = tcp_socket(false)?;
    let sa = sockaddr_in(SocketAddrV4::new([0, 0, 0, 0].into(), port));
    // SAFETY: sa is a valid sockaddr_in of the size passed.
    cvt(unsafe {
        libc::bind(
            raw(&fd),
            (&sa as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    // SAFETY: fd is a bound socket.
    cvt(unsafe { libc::listen(raw(&fd), BACKLOG) })?;
    Ok(TcpListener::from(fd))
}

fn serve(port: u16) -> ExitCode {
    let listener = match listen(port) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("connrate: cannot listen on port {port}: {e}");
            return ExitCode::from(2);
        }
    };
    let threads = thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    eprintln!("connrate: listening on 0.0.0.0:{port} with {threads} accept threads");
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let l = listener.try_clone().expect("dup listener");
            thread::spawn(move || accept_loop(l))
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    ExitCode::SUCCESS
}

fn accept_loop(listener: TcpListener) {
    let mut buf = [0u8; 64];
    loop {
        match listener.accept() {
            Ok((mut s, _)) => {
                // Take the client's request byte so that close() sends FIN, not RST.
                let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                let _ = s.read(&mut buf);
            }
            Err(e) => match e.raw_os_error() {
                // transient: the peer gave up, or we are out of fds for a moment
                Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO) => {}
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    eprintln!("connrate: accept: {e}");
                    return;
                }
            },
        }
    }
}

// ---------------------------------------------------------------- connect

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    connect_timeout: AtomicU64,
    connect_error: AtomicU64,
    io_error: AtomicU64,
}

impl Counters {
    fn failures(&self) -> u64 {
        self.connect_timeout.load(Ordering::Relaxed)
            + self.connect_error.load(Ordering::Relaxed)
            + self.io_error.load(Ordering::Relaxed)
    }
}

enum Fail {
    ConnectTimeout,
    Connect(io::Error),
    Io(io::Error),
}

/// Non-blocking connect bounded by CONNECT_TIMEOUT; returns a blocking stream.
fn connect_once(addr: SocketAddrV4) -> Result<TcpStream, Fail> {
    let fd = tcp_socket(true).map_err(Fail::Connect)?;
    let sa = sockaddr_in(addr);
    // SAFETY: sa is a valid sockaddr_in of the size passed.
    let r = unsafe {
        libc::connect(
            raw(&fd),
            (&sa as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(Fail::Connect(e));
        }
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Fail::ConnectTimeout);
            }
            let mut pfd = libc::pollfd {
                fd: raw(&fd),
                events: libc::POLLOUT,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd.
            match unsafe { libc::poll(&mut pfd, 1, ms) } {
                0 => return Err(Fail::ConnectTimeout),
                n if n > 0 => break,
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(Fail::Connect(e));
                    }
                }
            }
        }
        let mut err: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: err/len describe a c_int buffer.
        cvt(unsafe {
            libc::getsockopt(
                raw(&fd),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        })
        .map_err(Fail::Connect)?;
        if err != 0 {
            return Err(Fail::Connect(io::Error::from_raw_os_error(err)));
        }
    }
    let s = TcpStream::from(fd);
    s.set_nonblocking(false).map_err(Fail::Io)?;
    Ok(s)
}

fn one_connection(addr: SocketAddrV4, buf: &mut [u8]) -> Result<(), Fail> {
    let mut s = connect_once(addr)?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(Fail::Io)?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(Fail::Io)?;
    s.write_all(b"x").map_err(Fail::Io)?;
    loop {
        match s.read(buf) {
            Ok(0) => return Ok(()), // server closed: done; dropping `s` closes our side
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Fail::Io(e)),
        }
    }
}

fn connect(addr: SocketAddrV4, seconds: f64, parallel: usize) -> ExitCode {
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let first_error = Arc::new(Mutex::new(None::<String>));
    let handles: Vec<_> = (0..parallel)
        .map(|_| {
            let c = Arc::clone(&counters);
            let first_error = Arc::clone(&first_error);
            thread::spawn(move || {
                let mut buf = [0u8; 64];
                while Instant::now() < deadline {
                    let res = one_connection(addr, &mut buf);
                    let (counter, msg) = match res {
                        Ok(()) => (&c.ok, None),
                        Err(Fail::ConnectTimeout) => {
                            (&c.connect_timeout, Some("connect: timed out".to_string()))
                        }
                        Err(Fail::Connect(e)) => (&c.connect_error, Some(format!("connect: {e}"))),
                        Err(Fail::Io(e)) => (&c.io_error, Some(format!("write/read: {e}"))),
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if let Some(m) = msg {
                        let mut fe = first_error.lock().unwrap();
                        if fe.is_none() {
                            *fe = Some(m);
                        }
                        drop(fe);
                        // do not spin on an immediate error (e.g. connection refused)
                        thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = counters.ok.load(Ordering::Relaxed);
    let failures = counters.failures();
    println!(
        "connections={ok} seconds={elapsed:.3} rate={:.1} failures={failures}",
        ok as f64 / elapsed
    );
    if failures > 0 {
        eprintln!(
            "connrate: failures: connect_timeout={} connect_error={} io_error={}; first: {}",
            counters.connect_timeout.load(Ordering::Relaxed),
            counters.connect_error.load(Ordering::Relaxed),
            counters.io_error.load(Ordering::Relaxed),
            first_error.lock().unwrap().as_deref().unwrap_or("?")
        );
    }
    if ok == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
