//! `switchyard daemon`: the engine, the control thread and the API socket.
//!
//! Threads: the engine (owns the data plane), the control thread (accepts one connection at a
//! time, applies its request, answers), and the main thread (waits for SIGINT/SIGTERM). Requests
//! are applied one after another, so the state never sees two changes at once.
//!
//! A change goes: validate on a copy of the state (the model refuses bad input, nothing changed)
//! -> persist the copy atomically -> make the system match it -> answer. If making the system
//! match fails, what was built is torn down and the previous state is persisted again. Removals
//! tear down first and persist after. After `kill -9` at any point, a restart re-runs the same
//! idempotent "make the system match" for the persisted state, so traffic resumes by itself.
//!
//! Stopping the daemon (SIGTERM) leaves namespaces, veths and the persistent host taps in place, as
//! dockerd's live-restore does: a restarted daemon picks them up again.

mod system;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use dataplane::engine::{Engine, EngineConfig};
use dataplane::table::{CamConfig, CtConfig};
use dataplane::DomainId;

use crate::api::{self, ApiError, Outcome, Request, Response};
use crate::flow::FlowSpec;
use crate::model::ipam::Ipv4Net;
use crate::model::store::Store;
use crate::model::{OsEntropy, PublishContext, State};
use crate::netns::{self, Netlink};
use crate::process::{block_signals, describe_cpu, fail, wait_signal, EngineArgs, EXIT_BAD_INPUT};
use crate::show;
use crate::trace_fmt;
use dataplane::trace::{pcap, Capture, Captured};
use system::System;

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Where the state file lives.
    #[arg(long, value_name = "DIR", default_value = api::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Seconds a learned MAC stays without being seen (0: never age).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    aging: u64,
    #[command(flatten)]
    engine: EngineArgs,
    /// Turn on IPv4 forwarding in the daemon's namespace (as dockerd does), so containers reach
    /// beyond the host through its routing.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    ip_forward: bool,
    /// An interface switchyard owns toward the world (published ports, masquerade): it answers
    /// ARP and ping for --uplink-ip itself.
    #[arg(long, value_name = "IFNAME", requires = "uplink_ip")]
    uplink: Option<String>,
    /// The uplink's address and prefix, e.g. 192.0.2.10/24.
    #[arg(long, value_name = "IP/PREFIX", requires = "uplink")]
    uplink_ip: Option<String>,
    /// Next hop for destinations beyond the uplink's subnet.
    #[arg(long, value_name = "IP", requires = "uplink")]
    uplink_gateway: Option<String>,
    /// Most tracked NAT connections; when full, the oldest connection that never saw a reply is
    /// evicted first, else the oldest idle one.
    #[arg(long, value_name = "N", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(16..=4_000_000))]
    max_conntrack: u32,
    /// Serve Prometheus metrics over HTTP at this address (e.g. 127.0.0.1:9180).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,
}

/// A start-up failure caused by the arguments given (exit code 2, like any bad input).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadStart(String);

/// `--uplink*`, validated.
struct UplinkArgs {
    ifname: String,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
}

fn uplink_args(args: &DaemonArgs) -> anyhow::Result<Option<UplinkArgs>> {
    let (Some(ifname), Some(ip)) = (&args.uplink, &args.uplink_ip) else {
        return Ok(None);
    };
    let (ip, net) = Ipv4Net::parse_any(ip).map_err(|e| anyhow!("--uplink-ip: {e}"))?;
    if ip == net.addr() || ip == net.broadcast() {
        anyhow::bail!("--uplink-ip {ip} is the network or broadcast address of {net}");
    }
    let gateway = match &args.uplink_gateway {
        Some(g) => {
            let g: Ipv4Addr = g
                .parse()
                .map_err(|_| anyhow!("invalid --uplink-gateway '{g}': expected an IPv4 address"))?;
            if !net.contains(g) || g == ip {
                anyhow::bail!(
                    "--uplink-gateway {g} must be another address of the uplink's subnet {net}"
                );
            }
            Some(g)
        }
        None => None,
    };
    Ok(Some(UplinkArgs {
        ifname: ifname.clone(),
        ip,
        prefix: net.prefix(),
        gateway,
    }))
}

/// Reads `net.ipv4.ip_local_port_range` of the daemon's namespace (Docker's range for -P).
fn ephemeral_range() -> (u16, u16) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    crate::model::publish::ephemeral_range(text.as_deref())
}

pub fn run(args: DaemonArgs, socket: Option<&Path>) -> ExitCode {
    let socket = api::socket_path(socket);
    let signals = block_signals();
    let uplink = match uplink_args(&args) {
        Ok(u) => u,
        Err(e) => return fail(EXIT_BAD_INPUT, &e),
    };
    // Built (and the CPU checked) before anything is touched: state dir, sysctls.
    let config = match engine_config(&args) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_BAD_INPUT, &anyhow!(e)),
    };
    let daemon = match start(&args, &socket, uplink, config) {
        Ok(d) => d,
        Err(e) => {
            let code = if e.downcast_ref::<BadStart>().is_some() {
                EXIT_BAD_INPUT
            } else {
                1
            };
            return fail(code, &e);
        }
    };
    let listener = match bind(&socket) {
        Ok(l) => l,
        Err(e) => return fail(EXIT_BAD_INPUT, &e),
    };
    let metrics = match args.metrics.map(std::net::TcpListener::bind).transpose() {
        Ok(m) => m,
        Err(e) => {
            return fail(
                EXIT_BAD_INPUT,
                &anyhow!(
                    "--metrics {}: {e}",
                    args.metrics.expect("bound only when given")
                ),
            )
        }
    };
    let daemon = Arc::new(Mutex::new(daemon));
    if let Some(listener) = metrics {
        let d = Arc::clone(&daemon);
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve_metrics(listener, d))
            .expect("spawning the metrics thread");
    }
    {
        // Attachments end with their namespace: look every second.
        let d = Arc::clone(&daemon);
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                // Also reports address conflicts seen on parent ports.
                let mut reported = 0u64;
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let mut daemon = d.lock().unwrap_or_else(|p| p.into_inner());
                    daemon.reap_attachments();
                    daemon.heal_containers();
                    reported = daemon.report_conflicts(reported);
                }
            })
            .expect("spawning the reaper thread");
    }
    let serving = Arc::clone(&daemon);
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || serve(listener, serving))
        .expect("spawning the control thread");
    tracing::info!(socket = %socket.display(), state = %args.state_dir.display(), pid = std::process::id(), "switchyard daemon ready");
    loop {
        match wait_signal(&signals) {
            libc::SIGINT | libc::SIGTERM => break,
            _ => {}
        }
    }
    // Taking the lock waits for a request in flight, so no change is cut in half.
    let daemon = daemon.lock().unwrap_or_else(|p| p.into_inner());
    let _ = std::fs::remove_file(&socket);
    let _ = daemon.system.engine.shutdown();
    tracing::info!("stopped; namespaces, veths and host ports stay for the next start");
    ExitCode::SUCCESS
}

struct Daemon {
    state: State,
    store: Store,
    system: System,
    publish_ctx: PublishContext,
    uplink: Option<UplinkArgs>,
}

/// IPv4 routes of the daemon's namespace, as networks (subnets overlapping them are skipped).
fn routes(netlink: &Netlink) -> Vec<Ipv4Net> {
    match netlink.routes_v4() {
        Ok(r) => r
            .into_iter()
            .filter_map(|(ip, prefix)| {
                let mask = if prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix)
                };
                Ipv4Net::new(Ipv4Addr::from(u32::from(ip) & mask), prefix).ok()
            })
            .collect(),
        Err(e) => {
            tracing::warn!("reading routes: {e}");
            Vec::new()
        }
    }
}

/// The engine configuration the flags ask for; a CPU this process may not use is refused.
fn engine_config(args: &DaemonArgs) -> Result<EngineConfig, String> {
    let cam = CamConfig {
        aging_ms: if args.aging == 0 {
            u64::MAX
        } else {
            args.aging.saturating_mul(1000)
        },
        ..CamConfig::default()
    };
    args.engine.apply(EngineConfig {
        cam,
        conntrack: CtConfig {
            max_entries: args.max_conntrack as usize,
            ..CtConfig::default()
        },
        ..EngineConfig::default()
    })
}

fn start(
    args: &DaemonArgs,
    socket: &Path,
    uplink: Option<UplinkArgs>,
    config: EngineConfig,
) -> anyhow::Result<Daemon> {
    let store = Store::open(&args.state_dir)?;
    let netlink = Netlink::current().context("opening rtnetlink")?;
    if args.ip_forward {
        // Per network namespace: this is the daemon's namespace, the host's when run there.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .context("turning on IPv4 forwarding (/proc/sys/net/ipv4/ip_forward; or pass --ip-forward false)")?;
    }
    let state = match store.load()? {
        Some(s) => s,
        None => {
            let s = State::initial(&routes(&netlink), &mut OsEntropy)
                .map_err(|e| anyhow!("creating the default network: {e}"))?;
            store.save(&s)?;
            s
        }
    };
    let (engine, _thread) = Engine::spawn(config).context("starting the engine")?;
    tracing::info!("engine {}", describe_cpu(engine.cpu()));
    let mut system = System::new(engine, netlink);
    let publish_ctx = PublishContext {
        uplink: uplink.as_ref().map(|u| u.ip),
        ephemeral: ephemeral_range(),
    };
    if let Some(u) = &uplink {
        for n in state.networks.values() {
            if n.subnet().contains(u.ip) {
                return Err(BadStart(format!(
                    "--uplink-ip {} lies in network '{}' ({}); choose an address outside switchyard's networks",
                    u.ip,
                    n.name,
                    n.subnet()
                ))
                .into());
            }
        }
        system
            .uplink_up(&u.ifname, u.ip, u.prefix, u.gateway)
            .with_context(|| format!("attaching uplink '{}'", u.ifname))?;
    }
    let failures = system.restore(&state);
    tracing::info!(
        networks = state.networks.len(),
        containers = state.containers.len(),
        failures,
        socket = %socket.display(),
        "state restored"
    );
    Ok(Daemon {
        state,
        store,
        system,
        publish_ctx,
        uplink,
    })
}

/// Binds the API socket with mode 0600, replacing a stale socket file but never a live daemon's.
fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another switchyard daemon is already serving on {}",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    // SAFETY: umask only changes this process's file creation mask; restored right after bind so
    // the socket is never reachable by others, not even between bind and chmod.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = listener.with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

fn serve(listener: UnixListener, daemon: Arc<Mutex<Daemon>>) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let mut line = String::new();
        let read = BufReader::new((&conn).take(api::MAX_FRAME as u64)).read_line(&mut line);
        let outcome = match read {
            Ok(0) => continue,
            Ok(_) => match api::parse_request(&line) {
                Ok(Request::Capture {
                    target,
                    count,
                    filter,
                }) => {
                    let started = daemon
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .start_capture(&target, count, filter.as_deref());
                    match started {
                        Ok((id, frames, engine)) => {
                            let ok = api::response_line(Outcome::Ok(Response::CaptureStarted));
                            if (&conn).write_all(&ok).is_ok() {
                                std::thread::spawn(move || {
                                    stream_capture(conn, id, frames, engine)
                                });
                            } else {
                                let _ = engine.capture_stop(id);
                            }
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
                Ok(request) => {
                    let mut d = daemon.lock().unwrap_or_else(|p| p.into_inner());
                    d.handle(request)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(ApiError::bad_input(format!("reading the request: {e}"))),
        };
        let outcome = match outcome {
            Ok(r) => Outcome::Ok(r),
            Err(e) => Outcome::Error(e),
        };
        let _ = (&conn).write_all(&api::response_line(outcome));
    }
}

/// The namespace `--netns NAME|PATH` or `--pid PID` names: the attachment's name, the path it is
/// remembered by, and the open namespace.
fn foreign_namespace(
    netns: Option<&str>,
    pid: Option<u32>,
) -> Result<(String, String, crate::netns::NetNs), ApiError> {
    let (name, path) = match (netns, pid) {
        (Some(n), None) if n.contains('/') => {
            let file = std::path::Path::new(n)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            (format!("netns-{file}"), n.to_string())
        }
        (Some(n), None) => {
            crate::netns::validate_name(n).map_err(|e| ApiError::bad_input(e.to_string()))?;
            (
                format!("netns-{n}"),
                format!("{}/{n}", netns::NETNS_RUN_DIR),
            )
        }
        (None, Some(p)) => (format!("pid-{p}"), format!("/proc/{p}/ns/net")),
        _ => {
            return Err(ApiError::bad_input(
                "give exactly one of --netns NAME|PATH and --pid PID",
            ))
        }
    };
    let ns = system::open_external(&path).map_err(|e| {
        ApiError::bad_input(match (netns, pid) {
            (_, Some(p)) => format!("no process {p} with a network namespace ({e:#})"),
            (Some(n), _) if !n.contains('/') => format!("no network namespace named '{n}'"),
            _ => format!("{e:#}"),
        })
    })?;
    Ok((name, path, ns))
}

/// A minimal HTTP/1.0 server for Prometheus: every GET gets the text exposition format.
fn serve_metrics(listener: std::net::TcpListener, daemon: Arc<Mutex<Daemon>>) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        let _ = BufReader::new(&conn).read_line(&mut line);
        let stats = daemon.lock().unwrap_or_else(|p| p.into_inner()).stats();
        let (status, body) = match stats {
            Ok(st) if line.starts_with("GET ") => ("200 OK", crate::stats::prometheus(&st)),
            Ok(_) => ("405 Method Not Allowed", "GET only\n".to_string()),
            Err(e) => ("500 Internal Server Error", format!("{}\n", e.message)),
        };
        let _ = write!(
            conn,
            "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }
}

/// Most bytes of a frame a capture keeps (64 KiB GSO frames whole).
const CAPTURE_SNAPLEN: u32 = 65535;

/// Writes a capture as pcap to the client until the capture completes, is replaced, or the client
/// goes away (then the capture is stopped).
fn stream_capture(
    conn: UnixStream,
    id: u32,
    frames: crossbeam_channel::Receiver<Captured>,
    engine: dataplane::engine::EngineHandle,
) {
    let mut out = std::io::BufWriter::new(&conn);
    let mut record = Vec::with_capacity(2048);
    // The client never sends after its request: readable means it closed (EOF) or broke.
    let client_gone = |conn: &UnixStream| {
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(conn),
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd for a descriptor we hold, without waiting.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents != 0
    };
    let mut gone = out.write_all(&pcap::file_header(CAPTURE_SNAPLEN)).is_err();
    while !gone {
        match frames.recv_timeout(Duration::from_millis(200)) {
            Ok(f) => {
                record.clear();
                pcap::write_record(&mut record, f.ts_ns, &f.data, f.orig_len, CAPTURE_SNAPLEN);
                gone = out.write_all(&record).is_err();
                // Flush when nothing else is waiting, so `-w -` readers see frames promptly.
                if !gone && frames.is_empty() {
                    gone = out.flush().is_err();
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                gone = out.flush().is_err() || client_gone(&conn);
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = out.flush();
    if gone {
        if let Ok(dropped) = engine.capture_stop(id) {
            if dropped > 0 {
                tracing::warn!(dropped, "capture reader fell behind; frames were dropped");
            }
        }
    }
}

fn failed(e: anyhow::Error) -> ApiError {
    ApiError::failed(format!("{e:#}").replace('\n', " "))
}

impl Daemon {
    fn handle(&mut self, request: Request) -> Result<Response, ApiError> {
        tracing::debug!(?request, "request");
        let changes = !matches!(
            request,
            Request::Version
                | Request::Status
                | Request::NetworkLs
                | Request::NetworkInspect { .. }
                | Request::ContainerLs
                | Request::ContainerInspect { .. }
                | Request::ContainerEnv { .. }
                | Request::ContainerPort { .. }
                | Request::Conntrack
                | Request::TraceAdd { .. }
                | Request::TraceShow
                | Request::TraceClear
                | Request::TracePacket { .. }
                | Request::Capture { .. }
                | Request::Stats
                | Request::Fdb { .. }
                | Request::Topology
        );
        let result = self.apply(request);
        if changes {
            // Whatever happened (done, refused, or reverted), the data plane's policy and the
            // hosts files follow the current state before the client hears back.
            if let Err(e) = self.system.sync_policy(&self.state) {
                tracing::error!("pushing policy: {e:#}");
            }
            if let Err(e) = self.system.sync_nat(&self.state) {
                tracing::error!("pushing NAT configuration: {e:#}");
            }
            self.system.sync_hosts(&self.state);
        }
        result
    }

    fn apply(&mut self, request: Request) -> Result<Response, ApiError> {
        match request {
            Request::Version => Ok(Response::Version {
                daemon: env!("CARGO_PKG_VERSION").to_string(),
                protocol: api::PROTOCOL_VERSION,
            }),
            Request::Status => {
                let snapshot = self
                    .system
                    .engine
                    .snapshot()
                    .map_err(|e| failed(e.into()))?;
                Ok(Response::Status {
                    report: show::report(&snapshot),
                })
            }
            Request::NetworkLs => Ok(Response::Networks(self.state.network_summaries())),
            Request::NetworkInspect { names } => {
                let mut out = Vec::new();
                for name in &names {
                    out.push(self.state.network_inspect(self.state.network(name)?));
                }
                Ok(Response::NetworkDetails(out))
            }
            Request::ContainerLs => Ok(Response::Containers(self.state.container_summaries())),
            Request::ContainerInspect { names } => {
                let mut out = Vec::new();
                for name in &names {
                    out.push(self.state.container_inspect(self.state.container(name)?));
                }
                Ok(Response::ContainerDetails(out))
            }
            Request::NetworkCreate(req) => self.network_create(req),
            Request::NetworkRm { names, force } => self.network_rm(&names, force),
            Request::ContainerCreate(req) => self.container_create(req),
            Request::ContainerRm { names, force } => self.container_rm(&names, force),
            Request::NetworkConnect {
                network,
                container,
                ip,
            } => self.connect(&network, &container, ip.as_deref()),
            Request::NetworkDisconnect { network, container } => {
                self.disconnect(&network, &container)
            }
            Request::ContainerEnv { name } => Ok(Response::Env(self.state.link_env(&name)?)),
            Request::ContainerPort { name, filter } => {
                let c = self.state.container(&name)?;
                let mappings: Vec<_> = c.published.iter().map(|p| p.mapping).collect();
                Ok(Response::Lines(crate::model::publish::port_lines(
                    &name,
                    &mappings,
                    filter.as_deref(),
                )?))
            }
            Request::Conntrack => self.system.conntrack().map_err(failed),
            Request::TraceAdd {
                target,
                count,
                filter,
            } => {
                let (target, _) = self.system.resolve(&self.state, &target).ok_or_else(|| {
                    ApiError::bad_input(format!(
                        "no port or network named '{target}': give a container (web, web:eth1), a network, host:NETWORK, uplink, or an interface"
                    ))
                })?;
                if count == 0 {
                    return Err(ApiError::bad_input("trace count must be at least 1"));
                }
                let filter = match filter.as_deref().map(str::trim) {
                    Some(f) if !f.is_empty() => Some(
                        dataplane::trace::Filter::parse(f)
                            .map_err(|e| ApiError::bad_input(e.to_string()))?,
                    ),
                    _ => None,
                };
                self.system
                    .engine
                    .trace_arm(dataplane::trace::TraceArm {
                        target,
                        remaining: count,
                        filter,
                    })
                    .map_err(|e| failed(e.into()))?;
                Ok(Response::Done)
            }
            Request::TraceShow => {
                let records = self
                    .system
                    .engine
                    .trace_show()
                    .map_err(|e| failed(e.into()))?;
                let names = self.system.names(&self.state);
                Ok(Response::Traces(
                    records.iter().map(|r| trace_fmt::view(r, &names)).collect(),
                ))
            }
            Request::TraceClear => {
                self.system
                    .engine
                    .trace_clear()
                    .map_err(|e| failed(e.into()))?;
                Ok(Response::Done)
            }
            Request::TracePacket { input, flow } => self.trace_packet(&input, &flow),
            Request::Capture { .. } => {
                Err(ApiError::failed("captures are served by the socket loop"))
            }
            Request::Stats => Ok(Response::Stats(Box::new(self.stats()?))),
            Request::Attach {
                network,
                netns,
                pid,
                ifname,
                ip,
                mac,
            } => {
                let (name, path, ns) = foreign_namespace(netns.as_deref(), pid)?;
                let mut next = self.state.clone();
                let (c, endpoint) = next.attach(
                    &name,
                    &path,
                    ns.inode(),
                    &network,
                    ifname.as_deref().unwrap_or("eth1"),
                    ip.as_deref(),
                    mac.as_deref(),
                    &mut OsEntropy,
                )?;
                let previous = self.commit(next)?;
                if let Err(e) = self.system.connect(&self.state, &c, &endpoint) {
                    self.system.endpoint_down(&endpoint);
                    self.revert(previous);
                    return Err(failed(
                        e.context(format!("attaching {path} to '{network}'")),
                    ));
                }
                Ok(Response::Created { id: c.id })
            }
            Request::Detach {
                network,
                netns,
                pid,
            } => {
                let (_, path, _) = foreign_namespace(netns.as_deref(), pid)?;
                let name = self
                    .state
                    .attachment(&path)
                    .map(|c| c.name.clone())
                    .ok_or_else(|| {
                        ApiError::bad_input(format!("{path} is not attached to any network"))
                    })?;
                let mut next = self.state.clone();
                let endpoint = next.disconnect(&network, &name)?;
                if next.container(&name)?.endpoints.is_empty() {
                    next.remove_containers(std::slice::from_ref(&name))?;
                }
                self.system.endpoint_down(&endpoint);
                self.commit(next)?;
                Ok(Response::Done)
            }
            Request::Fdb { network } => {
                if let Some(n) = &network {
                    self.state.network(n)?;
                }
                let snapshot = self
                    .system
                    .engine
                    .snapshot()
                    .map_err(|e| failed(e.into()))?;
                let names = self.system.names(&self.state);
                let mut entries = crate::stats::fdb(&snapshot, &names, &self.network_names());
                if let Some(n) = &network {
                    entries.retain(|e| &e.network == n);
                }
                Ok(Response::Fdb(entries))
            }
            Request::Topology => Ok(Response::Topology(Box::new(self.topology()))),
            Request::ContainerLink { name, link } => {
                let mut next = self.state.clone();
                next.add_link(&name, &link)?;
                self.commit(next)?;
                Ok(Response::Done)
            }
            Request::ContainerUnlink { name, alias } => {
                let mut next = self.state.clone();
                next.remove_link(&name, &alias)?;
                self.commit(next)?;
                Ok(Response::Done)
            }
        }
    }

    fn network_names(&self) -> std::collections::BTreeMap<DomainId, String> {
        let mut m: std::collections::BTreeMap<DomainId, String> = self
            .state
            .networks
            .values()
            .map(|n| (DomainId(n.domain), n.name.clone()))
            .collect();
        m.insert(DomainId(crate::model::UPLINK_DOMAIN), "uplink".into());
        m
    }

    fn stats(&self) -> Result<crate::stats::Stats, ApiError> {
        let snapshot = self
            .system
            .engine
            .snapshot()
            .map_err(|e| failed(e.into()))?;
        let names = self.system.names(&self.state);
        Ok(crate::stats::stats(
            &snapshot,
            &snapshot.conntrack,
            &names,
            &self.network_names(),
        ))
    }

    fn topology(&self) -> crate::topology::Topology {
        use crate::topology::{ContainerView, EndpointView, NetView, Topology, UplinkView};
        let networks = self
            .state
            .networks
            .values()
            .map(|n| NetView {
                name: n.name.clone(),
                subnet: n.subnet().to_string(),
                gateway: n.gateway().to_string(),
                host_port: n.host_interface.clone(),
                icc: n.icc,
                internal: n.internal,
            })
            .collect();
        let containers = self
            .state
            .containers
            .values()
            .map(|c| ContainerView {
                name: c.name.clone(),
                endpoints: c
                    .endpoints
                    .iter()
                    .map(|e| EndpointView {
                        network: e.network.clone(),
                        interface: e.interface.clone(),
                        address: match self.state.networks.get(&e.network) {
                            Some(n) => format!("{}/{}", e.ip, n.subnet().prefix()),
                            None => e.ip.to_string(),
                        },
                        mac: e.mac.to_string(),
                        host_interface: e.host_interface.clone(),
                    })
                    .collect(),
                published: c
                    .published
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{} -> {}",
                            p.mapping.host_port, p.mapping.protocol, p.mapping.container_port
                        )
                    })
                    .collect(),
                links: c
                    .links
                    .iter()
                    .map(|l| format!("{}:{}", l.container, l.alias))
                    .collect(),
            })
            .collect();
        let uplink = self.uplink.as_ref().map(|u| UplinkView {
            interface: u.ifname.clone(),
            address: format!("{}/{}", u.ip, u.prefix),
            gateway: u.gateway.map(|g| g.to_string()),
        });
        Topology {
            networks,
            containers,
            uplink,
        }
    }

    /// Attachments whose namespace is gone (its process exited, its name was deleted): their
    /// endpoints are removed and their addresses released, as if detached.
    fn reap_attachments(&mut self) {
        let gone: Vec<String> = self
            .state
            .containers
            .values()
            .filter(|c| match &c.mode {
                crate::model::NetworkMode::External { path, inode } => system::open_external(path)
                    .map(|ns| ns.inode() != *inode)
                    .unwrap_or(true),
                _ => false,
            })
            .map(|c| c.name.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        let mut next = self.state.clone();
        if let Ok(removed) = next.remove_containers(&gone) {
            for c in &removed {
                self.system.container_down(c);
            }
            if self.commit(next).is_ok() {
                tracing::info!(attachments = ?gone, "namespaces gone: attachments removed, addresses released");
                let _ = self.system.sync_policy(&self.state);
                let _ = self.system.sync_nat(&self.state);
            }
        }
    }

    /// Containers whose namespace someone deleted (`ip netns del`) are rebuilt with the same
    /// addresses and MACs: the state is the truth, also between restarts.
    fn heal_containers(&mut self) {
        // One look at /run/netns for all containers (not one per container).
        let Ok(present) = netns::list_named() else {
            return;
        };
        let lost: Vec<crate::model::Container> = self
            .state
            .containers
            .values()
            .filter(|c| c.owns_netns() && !present.contains(c.netns()))
            .cloned()
            .collect();
        for c in lost {
            tracing::warn!(container = %c.name, "its namespace was deleted behind the daemon's back; rebuilding it");
            for e in &c.endpoints {
                self.system.endpoint_down(e);
            }
            if let Err(e) = self.system.container_up(&self.state, &c) {
                tracing::error!(container = %c.name, "rebuilding: {e:#}");
            }
        }
    }

    /// Logs address conflicts newer than engine time `since`; returns the newest time seen.
    fn report_conflicts(&self, since: u64) -> u64 {
        let Ok(conflicts) = self.system.engine.conflicts() else {
            return since;
        };
        let fresh: Vec<_> = conflicts.iter().filter(|c| c.at_ms > since).collect();
        if fresh.is_empty() {
            return since;
        }
        let names = self.system.names(&self.state);
        let mut newest = since;
        for c in fresh {
            let owner = names
                .owners
                .get(&c.ip)
                .cloned()
                .unwrap_or_else(|| "?".into());
            tracing::warn!(
                ip = %c.ip, owner, claimant = %c.mac, port = names.port(c.port),
                "address conflict: another host claims a local container's address (see switchyard stats)"
            );
            newest = newest.max(c.at_ms);
        }
        newest
    }

    /// Arms a capture on `target`; the caller streams what comes out of the returned channel.
    fn start_capture(
        &mut self,
        target: &str,
        count: Option<u64>,
        filter: Option<&str>,
    ) -> Result<
        (
            u32,
            crossbeam_channel::Receiver<Captured>,
            dataplane::engine::EngineHandle,
        ),
        ApiError,
    > {
        let (target, _) = self.system.resolve(&self.state, target).ok_or_else(|| {
            ApiError::bad_input(format!(
                "no port or network named '{target}': give a container (web, web:eth1), a network, host:NETWORK, uplink, or an interface"
            ))
        })?;
        if count == Some(0) {
            return Err(ApiError::bad_input("capture count must be at least 1"));
        }
        let filter = match filter.map(str::trim) {
            Some(f) if !f.is_empty() => Some(
                dataplane::trace::Filter::parse(f)
                    .map_err(|e| ApiError::bad_input(e.to_string()))?,
            ),
            _ => None,
        };
        let (tx, rx) = crossbeam_channel::bounded(8192);
        let id = self
            .system
            .engine
            .capture_start(Capture {
                target,
                filter,
                remaining: count.unwrap_or(u64::MAX),
                snaplen: CAPTURE_SNAPLEN as usize,
                sink: tx,
                dropped: 0,
            })
            .map_err(|e| failed(e.into()))?;
        Ok((id, rx, self.system.engine.clone()))
    }

    /// A what-if trace: the flow's frame (MACs filled in from the state when left out) run
    /// through the real tables, entering at `input`.
    fn trace_packet(&mut self, input: &str, spec: &str) -> Result<Response, ApiError> {
        let flow = FlowSpec::parse(spec)?;
        let (target, own_mac) = self.system.resolve(&self.state, input).ok_or_else(|| {
            ApiError::bad_input(format!(
                "no port named '{input}': give a container (web, web:eth1), host:NETWORK, uplink, or an interface"
            ))
        })?;
        let dataplane::trace::TraceTarget::Port(port) = target else {
            return Err(ApiError::bad_input(format!(
                "'{input}' is a network: a packet enters through one port (a container, host:NETWORK or uplink)"
            )));
        };
        let dst_ip = flow.dst.expect("checked by parse");
        // A packet entering from the uplink comes from the world, to the uplink's MAC.
        let from_world = self.system.is_uplink(port);
        let someone = dataplane::MacAddr([0x02, 0, 0, 0, 0, 1]);
        let smac = match (flow.smac, from_world) {
            (Some(m), _) => m,
            (None, true) => someone,
            (None, false) => own_mac.unwrap_or(someone),
        };
        let dmac = match (flow.dmac, from_world, own_mac) {
            (Some(m), _, _) => m,
            (None, true, Some(uplink_mac)) if flow.proto != crate::flow::Proto::Arp => uplink_mac,
            _ => self.guess_dst_mac(input, dst_ip, flow.proto),
        };
        let frame = flow.frame(smac, dmac);
        let record = self
            .system
            .engine
            .trace_packet(port, frame)
            .map_err(|e| failed(e.into()))?;
        let names = self.system.names(&self.state);
        Ok(Response::Traces(vec![trace_fmt::view(&record, &names)]))
    }

    /// The MAC a sender would use for `dst`: the owner's if on the sender's network, else the
    /// gateway's; broadcast for ARP or when nothing is known.
    fn guess_dst_mac(
        &self,
        input: &str,
        dst: Ipv4Addr,
        proto: crate::flow::Proto,
    ) -> dataplane::MacAddr {
        if proto == crate::flow::Proto::Arp {
            return dataplane::MacAddr::BROADCAST;
        }
        let (cname, ifname) = input.split_once(':').unwrap_or((input, "eth0"));
        let network = self
            .state
            .containers
            .get(cname)
            .and_then(|c| c.endpoints.iter().find(|e| e.interface == ifname))
            .map(|e| e.network.clone())
            .or_else(|| input.strip_prefix("host:").map(str::to_string));
        for c in self.state.containers.values() {
            for e in &c.endpoints {
                if e.ip == dst && network.as_deref().is_none_or(|n| n == e.network) {
                    return dataplane::MacAddr(e.mac.0);
                }
            }
        }
        if let Some(n) = network.and_then(|n| self.state.networks.get(&n)) {
            return dataplane::MacAddr(n.host_mac.0);
        }
        dataplane::MacAddr::BROADCAST
    }

    /// Persists `next` and makes it current; returns the previous state for a rollback.
    fn commit(&mut self, next: State) -> Result<State, ApiError> {
        self.store
            .save(&next)
            .map_err(|e| ApiError::failed(e.to_string()))?;
        Ok(std::mem::replace(&mut self.state, next))
    }

    /// Puts `previous` back after the system could not be made to match a committed change.
    fn revert(&mut self, previous: State) {
        if let Err(e) = self.store.save(&previous) {
            tracing::error!("restoring the previous state file: {e}");
        }
        self.state = previous;
    }

    fn network_create(&mut self, req: api::NetworkCreate) -> Result<Response, ApiError> {
        let routes = routes(&self.system.netlink);
        let mut next = self.state.clone();
        let network = next.create_network(&req, &routes, &mut OsEntropy)?.clone();
        if let Some(parent) = &network.parent {
            if self
                .system
                .netlink
                .link(parent)
                .map_err(|e| failed(e.into()))?
                .is_none()
            {
                return Err(ApiError::bad_input(format!(
                    "no interface '{parent}' in the daemon's namespace for --parent"
                )));
            }
        }
        if self
            .system
            .foreign_interface(&network.host_interface)
            .map_err(failed)?
        {
            return Err(ApiError::bad_input(format!(
                "interface '{}' already exists in the daemon's namespace; choose another with --opt com.docker.network.bridge.name=NAME",
                network.host_interface
            )));
        }
        let previous = self.commit(next)?;
        if let Err(e) = self.system.network_up(&network) {
            self.system.network_down(&network);
            self.revert(previous);
            return Err(failed(
                e.context(format!("setting up network '{}'", network.name)),
            ));
        }
        Ok(Response::Created { id: network.id })
    }

    fn network_rm(&mut self, names: &[String], force: bool) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        let removed = next.remove_networks(names, force)?;
        for r in &removed {
            for (_, endpoint) in &r.disconnected {
                self.system.endpoint_down(endpoint);
            }
            self.system.network_down(&r.network);
        }
        self.commit(next)?;
        Ok(Response::Done)
    }

    fn container_create(&mut self, req: api::ContainerCreate) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        let container = next
            .create_container_with(&req, &self.publish_ctx, &mut OsEntropy)?
            .clone();
        if container.owns_netns() && netns::exists_named(container.netns()) {
            return Err(ApiError::bad_input(format!(
                "network namespace '{0}' already exists ({1}/{0}); choose another container name",
                container.netns(),
                netns::NETNS_RUN_DIR
            )));
        }
        let previous = self.commit(next)?;
        if let Err(e) = self.system.container_up(&self.state, &container) {
            self.system.container_down(&container);
            self.revert(previous);
            return Err(failed(
                e.context(format!("setting up container '{}'", container.name)),
            ));
        }
        Ok(Response::Created { id: container.id })
    }

    fn container_rm(&mut self, names: &[String], force: bool) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        for c in next.remove_containers_forced(names, force)? {
            self.system.container_down(&c);
        }
        self.commit(next)?;
        Ok(Response::Done)
    }

    fn connect(
        &mut self,
        network: &str,
        container: &str,
        ip: Option<&str>,
    ) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        let endpoint = next.connect(network, container, ip, &mut OsEntropy)?;
        let previous = self.commit(next)?;
        let c = self.state.container(container)?.clone();
        if let Err(e) = self.system.connect(&self.state, &c, &endpoint) {
            self.system.endpoint_down(&endpoint);
            self.revert(previous);
            return Err(failed(
                e.context(format!("connecting '{container}' to '{network}'")),
            ));
        }
        Ok(Response::Done)
    }

    fn disconnect(&mut self, network: &str, container: &str) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        let endpoint = next.disconnect(network, container)?;
        self.system.endpoint_down(&endpoint);
        self.commit(next)?;
        let c = self.state.container(container)?.clone();
        if let Err(e) = self.system.refresh_default_route(&self.state, &c) {
            tracing::warn!(container, "moving the default route: {e:#}");
        }
        Ok(Response::Done)
    }
}
