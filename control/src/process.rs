//! What the two foreground processes (`switchyard bridge`, `switchyard daemon`) share: the engine
//! flags, signal handling, exit codes and the one-line error. It sits below both `cli` and
//! `daemon`, so neither borrows from the other.

use clap::Args;
use dataplane::{affinity, CpuPin, EngineConfig};
use std::process::ExitCode;

/// Exit code for bad input: the user asked for something impossible; nothing was changed.
pub const EXIT_BAD_INPUT: u8 = 2;

/// How the engine thread polls and where it runs; shared by `bridge` and `daemon`.
#[derive(Args, Debug)]
pub(crate) struct EngineArgs {
    /// Poll without sleeping: lower latency at the cost of a full core.
    #[arg(long)]
    busy_poll: bool,
    /// After traffic, keep polling this many microseconds before sleeping (0: sleep at once).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    spin_us: u64,
    /// Pin the engine threads: auto (the first worker on the last CPU this process may use, the
    /// next ones on the CPUs before it; nothing when it may use one), none, or the first worker's
    /// CPU number (the next ones on the following CPUs).
    #[arg(long, value_name = "auto|none|N", default_value_t = CpuPin::Auto)]
    cpu: CpuPin,
    /// Engine worker threads: auto (one per CPU this process may use) or a number. Each receives
    /// from its share of the ports and sends to any; 1 is a single engine thread.
    #[arg(long, value_name = "auto|N", default_value = "auto", value_parser = parse_workers)]
    workers: usize,
    /// The engine thread's nice value, -20 (most urgent) to 19. Negative values favour many small
    /// connections over bulk throughput (see bench/RESULTS.md); 0 leaves it as inherited.
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(*affinity::NICE_RANGE.start() as i64..=*affinity::NICE_RANGE.end() as i64))]
    nice: i32,
}

impl EngineArgs {
    /// The engine configuration these flags ask for, on top of `base`. A CPU this process may not
    /// run on is refused with a one-line message naming the allowed CPUs.
    pub(crate) fn apply(&self, base: EngineConfig) -> Result<EngineConfig, String> {
        affinity::resolve(self.cpu).map_err(|e| format!("--cpu {}: {e}", self.cpu))?;
        Ok(EngineConfig {
            busy_poll: self.busy_poll,
            spin: std::time::Duration::from_micros(self.spin_us),
            cpu: self.cpu,
            nice: self.nice,
            workers: self.workers,
            ..base
        })
    }
}

/// Most worker threads `--workers` accepts.
const MAX_WORKERS: usize = 64;

/// `--workers`: `auto` is 0 (one per allowed CPU, decided by the engine), else 1 to `MAX_WORKERS`.
fn parse_workers(s: &str) -> Result<usize, String> {
    if s == "auto" {
        return Ok(0);
    }
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_WORKERS).contains(n))
        .ok_or_else(|| format!("'{s}' is not a worker count: expected auto or 1 to {MAX_WORKERS}"))
}

/// "1 worker pinned to CPU 1" / "2 workers on CPUs 1,0" / "not pinned", for start-up logs.
pub(crate) fn describe_cpu(cpus: &[Option<usize>]) -> String {
    let pinned: Vec<String> = cpus.iter().flatten().map(|c| c.to_string()).collect();
    let workers = match cpus.len() {
        1 => "1 worker".to_string(),
        n => format!("{n} workers"),
    };
    if pinned.is_empty() {
        format!("{workers}, not pinned")
    } else {
        format!("{workers} pinned to CPU {}", pinned.join(","))
    }
}

/// Blocks the signals the foreground commands handle, before any thread starts, so every thread
/// inherits the mask and only `sigwait` on the main thread sees them.
pub(crate) fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use; pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Raises the soft limit on open files to the hard one and returns (before, after). The daemon
/// holds about three descriptors per container (a socket per engine worker on its veth, and the
/// port's claim), so the usual soft limit of 1,024 (systemd's default for a service, most shells')
/// stops it near 330 containers with EMFILE; the hard limit (systemd: 524,288) is what it may use,
/// and what dockerd and Go programs raise theirs to.
pub(crate) fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-pointer for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is initialised and only read by the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}

/// Client commands write to stdout, often into `| head`: a closed pipe ends them as it ends any
/// Unix tool (killed by SIGPIPE, status 141 in a shell), quietly, instead of `println!` panicking
/// on EPIPE (the Rust runtime ignores SIGPIPE). Never for the foreground servers: a client that
/// goes away must not kill them.
pub(crate) fn end_quietly_on_closed_pipe() {
    // SAFETY: restores the default disposition of one signal; no handler, no memory involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

pub(crate) fn wait_signal(set: &libc::sigset_t) -> libc::c_int {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is an initialised sigset and `sig` a valid out-pointer.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

/// Prints `switchyard: error: ...` as one line (causes joined with ": ").
pub(crate) fn fail(code: u8, err: &anyhow::Error) -> ExitCode {
    let msg = format!("{err:#}").replace('\n', " ");
    eprintln!("switchyard: error: {msg}");
    ExitCode::from(code)
}
