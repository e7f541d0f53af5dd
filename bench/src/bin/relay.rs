//! `relay`: the floor of a userspace switch on this machine. It moves frames between two
//! interfaces through switchyard's own AF_PACKET ports (receive ring, vnet headers, GSO
//! super-frames whole, `sendmmsg`) and does nothing else: no parsing, no tables, no stages, no
//! counters. Whatever a benchmark measures through it is what the socket interface itself costs;
//! switchyard can only come close to it, never pass it (bench/RESULTS.md, "The floor").
//!
//! Its command line is the part of `switchyard bridge`'s that the benchmark scripts use, so
//! `SWITCHYARD=target/release/relay bench/compare.sh` measures it against the kernel bridge in one
//! run: `relay bridge --port A --port B [--busy-poll] [--cpu auto|none|N] [--workers N]`. Unknown
//! options are refused. One side may instead be a VXLAN port of switchyard's (`--vxlan LOCAL,REMOTE,VNI`,
//! UDP 4789: UDP GSO out, UDP GRO in and the merge of TCP segments back into a super-frame), for
//! the floor across hosts (`bench/overlay.sh`'s third phase). Like switchyard's engine it polls for `SPIN` after the last frame before it sleeps in
//! `epoll_wait` (or never sleeps with `--busy-poll`), and runs on one thread, pinned to the last
//! CPU it may use by default (where switchyard's `--workers 1` runs), or where `--cpu` says.
//!
//! `--workers N` runs N such threads, as switchyard's engine runs its workers: each further one
//! receives on its own socket of each port, members of the port's fanout group steered by flow
//! (`Port::receiver`), and sends on the socket it received from's peer member, so a flow's two
//! directions meet in one thread. Placed as the engine places its workers
//! (`affinity::placements`): the first on the last allowed CPU and the next ones on the CPUs
//! before it, or from `--cpu N` upwards, or unpinned.

use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dataplane::affinity;
use dataplane::{AfPacketPort, CpuPin, Port, RxBatch, TxRef, VxlanSocket, BATCH};

/// As switchyard's default adaptive-polling window.
const SPIN: Duration = Duration::from_micros(100);

/// The overlay MTU a VXLAN side serves (`VxlanSocket::port`): `bench/overlay.sh`'s, a 1500-byte
/// underlay's less VXLAN's 50 bytes.
const OVERLAY_MTU: usize = 1450;

/// One side of the relay.
enum Side {
    Packet(String),
    Vxlan {
        local: Ipv4Addr,
        remote: Ipv4Addr,
        vni: u32,
    },
}

struct Args {
    ports: Vec<Side>,
    busy_poll: bool,
    /// Where the threads run, as switchyard's `--cpu` (`affinity::placements`).
    cpu: CpuPin,
    workers: usize,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    if args.next().as_deref() != Some("bridge") {
        return Err(
            "usage: relay bridge --port A (--port B | --vxlan LOCAL,REMOTE,VNI) \
                    [--busy-poll] [--cpu auto|none|N] [--workers N]"
                .into(),
        );
    }
    let mut out = Args {
        ports: Vec::new(),
        busy_poll: false,
        cpu: CpuPin::Auto,
        workers: 1,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => out.ports.push(Side::Packet(
                args.next().ok_or("--port needs an interface name")?,
            )),
            "--vxlan" => {
                let v = args.next().ok_or("--vxlan needs LOCAL,REMOTE,VNI")?;
                let bad = || format!("--vxlan {v}: not LOCAL,REMOTE,VNI");
                let mut parts = v.split(',');
                let mut next = || parts.next().ok_or_else(bad);
                let (local, remote, vni) = (next()?, next()?, next()?);
                out.ports.push(Side::Vxlan {
                    local: local.parse().map_err(|_| bad())?,
                    remote: remote.parse().map_err(|_| bad())?,
                    vni: vni.parse().map_err(|_| bad())?,
                });
            }
            "--busy-poll" => out.busy_poll = true,
            "--cpu" => {
                let v = args
                    .next()
                    .ok_or("--cpu needs auto, none or a CPU number")?;
                out.cpu = v.parse()?;
            }
            "--workers" => {
                let v = args.next().ok_or("--workers needs a number")?;
                out.workers = match v.parse() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err(format!("--workers {v}: not a number of at least 1")),
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if out.ports.len() != 2 {
        return Err("relay moves frames between exactly two ports".into());
    }
    Ok(out)
}

/// Moves what `from` received to `to`, in the order received; returns how many frames came.
fn relay(from: &mut dyn Port, to: &mut dyn Port, batch: &mut RxBatch) -> usize {
    let n = match from.recv_batch(batch) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("relay: receiving on {}: {e}", from.name());
            return 0;
        }
    };
    if n == 0 {
        return 0;
    }
    let mut frames = [TxRef::EMPTY; BATCH];
    let mut k = 0;
    for i in 0..n {
        let meta = batch.meta(i);
        if meta.filtered || meta.truncated {
            continue;
        }
        frames[k] = TxRef {
            vnet: meta.vnet,
            data: batch.frame(i),
        };
        k += 1;
    }
    if let Err(e) = to.send_batch(&frames[..k]) {
        eprintln!("relay: sending on {}: {e}", to.name());
    }
    n
}

fn epoll_over(fds: &[RawFd]) -> RawFd {
    // SAFETY: plain epoll_create1; the result is checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1");
    for &fd in fds {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: `ev` is a valid epoll_event for the call; `fd` is an open socket.
        let rc = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        assert!(rc == 0, "epoll_ctl");
    }
    ep
}

fn wait(ep: RawFd, timeout_ms: i32) {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
    // SAFETY: `evs` has room for the 4 events the call may write.
    unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), evs.len() as i32, timeout_ms) };
}

/// One thread's relay loop over its own two sockets until SIGTERM.
fn run(mut a: Box<dyn Port>, mut b: Box<dyn Port>, cpu: Option<usize>, busy_poll: bool) {
    if let Some(cpu) = cpu {
        if let Err(e) = affinity::pin_current_thread(cpu) {
            eprintln!("relay: pinning to CPU {cpu}: {e}");
            std::process::exit(1);
        }
    }
    let fds: Vec<RawFd> = [&a, &b].iter().filter_map(|p| p.raw_fd()).collect();
    let ep = epoll_over(&fds);
    let mut batch = RxBatch::new();
    let mut last_work = Instant::now();
    while !TERM.load(Ordering::Relaxed) {
        let mut moved = relay(a.as_mut(), b.as_mut(), &mut batch);
        moved += relay(b.as_mut(), a.as_mut(), &mut batch);
        if moved > 0 {
            last_work = Instant::now();
        } else if !busy_poll && last_work.elapsed() >= SPIN {
            wait(ep, 100);
        }
        // A grown ring is a new socket: poll it from now on.
        for p in [a.as_mut(), b.as_mut()] {
            if let Some(fd) = p.moved_fd() {
                let mut ev = libc::epoll_event {
                    events: libc::EPOLLIN as u32,
                    u64: fd as u64,
                };
                // SAFETY: as in `epoll_over`.
                unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
            }
        }
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("relay: {e}");
            return ExitCode::from(2);
        }
    };
    let open = |side: &Side| -> Result<Box<dyn Port>, String> {
        match side {
            Side::Packet(name) => Ok(Box::new(
                AfPacketPort::open(name).map_err(|e| e.to_string())?,
            )),
            Side::Vxlan { local, remote, vni } => {
                let socket = VxlanSocket::open(*local, 4789).map_err(|e| e.to_string())?;
                let port = socket.port(&format!("vxlan:{remote}"), *vni, *remote, OVERLAY_MTU);
                Ok(Box::new(port.map_err(|e| e.to_string())?))
            }
        }
    };
    let (a, b) = match (open(&args.ports[0]), open(&args.ports[1])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("relay: {e}");
            return ExitCode::from(1);
        }
    };
    // Every further thread's own member of each port's fanout group, before any frame flows.
    let mut pairs = Vec::with_capacity(args.workers);
    for _ in 1..args.workers {
        match (a.receiver(), b.receiver()) {
            (Some(ra), Some(rb)) => pairs.push((ra, rb)),
            _ => {
                eprintln!("relay: --workers {}: a port cannot fan out", args.workers);
                return ExitCode::from(1);
            }
        }
    }
    pairs.insert(0, (a, b));
    let placed = affinity::allowed_cpus()
        .map_err(|e| format!("reading the CPU affinity: {e}"))
        .and_then(|allowed| affinity::placements(args.cpu, args.workers, &allowed));
    let cpus = match placed {
        Ok(c) => c,
        Err(e) => {
            eprintln!("relay: {e}");
            return ExitCode::from(1);
        }
    };
    // SIGTERM ends the loops, so the relay exits 0 as switchyard does.
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t) };
    eprintln!(
        "relay: {} <-> {} ({} threads on cpus {:?}, busy-poll {})",
        pairs[0].0.name(),
        pairs[0].1.name(),
        args.workers,
        cpus,
        args.busy_poll
    );
    std::thread::scope(|scope| {
        for ((a, b), cpu) in pairs.into_iter().zip(cpus) {
            scope.spawn(move || run(a, b, cpu, args.busy_poll));
        }
    });
    ExitCode::SUCCESS
}

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::Relaxed);
}
