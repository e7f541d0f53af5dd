//! The daemon's server: start-up (state file, engine, uplink, restore), the API socket and its
//! accept loop (one request per connection, applied one after another), capture streams on their
//! own threads, the Prometheus endpoint, and shutdown on SIGINT/SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use dataplane::{pcap, Captured};
use dataplane::{CamConfig, CtConfig};
use dataplane::{Engine, EngineConfig};

use super::mint::OsMint;
use super::system::{self, CaptureStop, System};
use super::{reaper, Daemon};
use crate::api::{self, ApiError, Outcome, Request, Response};
use crate::model::ipam::Ipv4Net;
use crate::model::{BridgeFlags, PublishContext, State, UplinkClaim};
use crate::netns::Netlink;
use crate::process::{block_signals, describe_cpu, fail, wait_signal, EngineArgs, EXIT_BAD_INPUT};
use crate::store::Store;

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
    /// evicted first, else the oldest idle one. Allocated at start, about 200 bytes each (13 MB
    /// for the default, 203 MB for a million), resident as connections use it.
    #[arg(long, value_name = "N", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(16..=4_000_000))]
    max_conntrack: u32,
    /// Serve Prometheus metrics over HTTP at this address (e.g. 127.0.0.1:9180).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,
    /// Serve Docker's network plugin protocol on this socket, so `docker network create -d NAME`
    /// (NAME: the socket's file name without .sock) puts Docker's containers on switchyard.
    /// Without PATH: /run/docker/plugins/switchyard.sock (`-d switchyard`).
    #[arg(long, value_name = "PATH", num_args = 0..=1, require_equals = true, default_missing_value = crate::docker::DEFAULT_PLUGIN_SOCKET)]
    docker_plugin: Option<PathBuf>,
    /// dockerd's flags for the default `bridge` network (applied when it is made, or remade at a
    /// start when no container is on it): the bridge's address and prefix,
    #[arg(long, value_name = "IP/PREFIX")]
    bip: Option<String>,
    /// the range containers' addresses come from,
    #[arg(long, value_name = "CIDR")]
    fixed_cidr: Option<String>,
    /// containers' default gateway instead of the bridge's address,
    #[arg(long, value_name = "IP")]
    default_gateway: Option<String>,
    /// the MTU,
    #[arg(long, value_name = "N")]
    mtu: Option<u32>,
    /// whether containers on it may talk to each other (false: only links),
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    icc: Option<bool>,
    /// and whether its containers' traffic to the world is masqueraded.
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    ip_masq: Option<bool>,
    /// dockerd's API socket, read (with --docker-plugin) for Docker's names of networks and
    /// containers, which `network ls`, `container ls` and `topology` then show.
    #[arg(long, value_name = "PATH", default_value = crate::docker::DEFAULT_DOCKER_API)]
    docker_api: PathBuf,
    /// An upstream DNS server for names the resolver does not know, instead of the servers in
    /// the daemon's /etc/resolv.conf. Repeat.
    #[arg(long = "dns", value_name = "IP")]
    dns: Vec<std::net::IpAddr>,
    /// This host's address on the underlay, which overlay networks' VXLAN traffic leaves from
    /// and arrives at (an address of an interface in the daemon's namespace).
    #[arg(long, value_name = "IP")]
    advertise_addr: Option<Ipv4Addr>,
    /// Join the cluster kept in this etcd (etcd://HOST:PORT[,HOST:PORT...]): overlay networks
    /// are created on every host, and every host's VXLAN ports follow the registered hosts.
    #[arg(long, value_name = "URL", requires = "advertise_addr")]
    cluster: Option<String>,
}

impl DaemonArgs {
    fn bridge_flags(&self) -> BridgeFlags {
        BridgeFlags {
            bip: self.bip.clone(),
            fixed_cidr: self.fixed_cidr.clone(),
            default_gateway: self.default_gateway.clone(),
            mtu: self.mtu,
            icc: self.icc,
            ip_masq: self.ip_masq,
        }
    }
}

/// A start-up failure caused by the arguments given (exit code 2, like any bad input).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadStart(String);

/// `--uplink*`, validated.
pub(super) struct UplinkArgs {
    pub(super) ifname: String,
    pub(super) ip: Ipv4Addr,
    pub(super) prefix: u8,
    pub(super) gateway: Option<Ipv4Addr>,
}

impl UplinkArgs {
    /// What networks must leave room for (`Network::check_uplink`).
    pub(super) fn claim(&self) -> UplinkClaim<'_> {
        UplinkClaim {
            ifname: &self.ifname,
            ip: self.ip,
            gateway: self.gateway,
        }
    }

    /// The uplink's subnet, which a network without `--subnet` must not take.
    pub(super) fn subnet(&self) -> Option<Ipv4Net> {
        Ipv4Net::containing(self.ip, self.prefix)
    }
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
    match crate::process::raise_open_files_limit() {
        Ok((before, after)) if before != after => {
            tracing::info!(before, after, "raised the open files limit")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("raising the open files limit: {e}"),
    }
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
    reaper::spawn(Arc::clone(&daemon));
    let cluster = daemon
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .cluster
        .clone();
    if let Some(config) = cluster {
        super::cluster::spawn(Arc::clone(&daemon), config);
    }
    let serving = Arc::clone(&daemon);
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || serve(listener, serving))
        .expect("spawning the control thread");
    if let Some(plugin) = &args.docker_plugin {
        if let Err(e) = crate::docker::spawn(plugin, &socket, &args.docker_api) {
            let _ = std::fs::remove_file(&socket);
            return fail(EXIT_BAD_INPUT, &e);
        }
    }
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
    if let Some(plugin) = &args.docker_plugin {
        let _ = std::fs::remove_file(plugin);
    }
    daemon.system.shutdown();
    tracing::info!("stopped; namespaces, veths and host ports stay for the next start");
    ExitCode::SUCCESS
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
    // First, while whoever started us may still be there: where container namespaces are named
    // (refused if no one else could see them).
    crate::netns::check_names_visible().map_err(|e| BadStart(e.to_string()))?;
    let store = Store::open(&args.state_dir)?;
    let netlink = Netlink::current().context("opening rtnetlink")?;
    if args.ip_forward {
        // Per network namespace: this is the daemon's namespace, the host's when run there.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .context("turning on IPv4 forwarding (/proc/sys/net/ipv4/ip_forward; or pass --ip-forward false)")?;
    }
    let flags = args.bridge_flags();
    let bad_flags = |e: ApiError| BadStart(format!("the default network: {}", e.message));
    let (state, replaced) = match store.load()? {
        Some(mut s) => {
            let replaced = s
                .reconfigure_default_bridge(&flags, &mut OsMint)
                .map_err(bad_flags)?;
            if replaced.is_some() {
                store.save(&s)?;
            }
            (s, replaced)
        }
        None => {
            let mut routes = system::routes(&netlink);
            routes.extend(uplink.as_ref().and_then(UplinkArgs::subnet));
            let s = State::initial_with(&routes, &flags, &mut OsMint).map_err(bad_flags)?;
            store.save(&s)?;
            (s, None)
        }
    };
    let (engine, _thread) = Engine::spawn(config).context("starting the engine")?;
    tracing::info!("engine {}", describe_cpu(&engine.cpus()));
    // No frame meets a half-restored state (a published port not yet back, say): ports attached
    // from here on wait in their rings until the whole state is programmed (`set_forwarding`).
    engine
        .set_forwarding(false)
        .context("holding the engine while the state is restored")?;
    let underlay = args
        .advertise_addr
        .map(|ip| system::overlay::find_underlay(&netlink, ip))
        .transpose()
        .map_err(|e| BadStart(e.to_string()))?;
    for n in state.networks.values() {
        // `network create` refuses these; they can only meet here when --advertise-addr changed.
        n.check_underlay(underlay.as_ref())
            .map_err(|e| BadStart(e.message))?;
    }
    let mut system = System::new(engine, netlink)?;
    system.set_underlay(underlay);
    if let Some(old) = &replaced {
        // The old default network's host port (and its address) goes; restore makes the new.
        system.network_down(old);
    }
    let publish_ctx = PublishContext {
        uplink: uplink.as_ref().map(|u| u.ip),
        host_addresses: Vec::new(),
        ephemeral: ephemeral_range(),
    };
    if let Some(u) = &uplink {
        // `network create` refuses these; they can only meet here when --uplink* changed since.
        for n in state.networks.values() {
            n.check_uplink(&u.claim()).map_err(|e| {
                BadStart(format!(
                    "{}; or remove the network (start without --uplink, then network rm {})",
                    e.message, n.name
                ))
            })?;
        }
        system
            .uplink_up(&u.ifname, u.ip, u.prefix, u.gateway)
            .with_context(|| format!("attaching uplink '{}'", u.ifname))?;
    }
    let failures = system.restore(&state);
    system
        .set_forwarding(true)
        .context("starting to forward after the restore")?;
    let resolver = crate::dns::Resolver::start().context("starting the DNS resolver")?;
    tracing::info!(
        networks = state.networks.len(),
        containers = state.containers.len(),
        failures,
        socket = %socket.display(),
        "state restored"
    );
    let mut daemon = Daemon {
        state,
        store,
        system,
        publish_ctx,
        uplink,
        resolver,
        dns_servers: args.dns.clone(),
        cluster: cluster_config(args)?,
        cluster_view: Default::default(),
    };
    daemon.sync_names();
    Ok(daemon)
}

/// `--cluster` with `--advertise-addr`, validated.
fn cluster_config(args: &DaemonArgs) -> anyhow::Result<Option<super::cluster::ClusterConfig>> {
    let (Some(url), Some(me)) = (&args.cluster, args.advertise_addr) else {
        return Ok(None);
    };
    let etcd = super::cluster::etcd::parse_url(url).map_err(BadStart)?;
    Ok(Some(super::cluster::ClusterConfig { etcd, me }))
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

/// Clients served at once; one more is answered "busy" and closed.
const MAX_CLIENTS: usize = 64;
/// How long a client may take to send its request, and to take its answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The API socket: each connection on its own thread, so a slow or idle client (which has
/// `CLIENT_TIMEOUT` to send its request and to take its answer) never holds up the others;
/// requests still run one at a time (the daemon's lock). At most `MAX_CLIENTS` at once, and a
/// request is at most `api::MAX_REQUEST` bytes.
fn serve(listener: UnixListener, daemon: Arc<Mutex<Daemon>>) {
    let clients = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(CLIENT_TIMEOUT));
        let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
        let busy = || {
            let e = ApiError::failed(format!(
                "the daemon is serving {MAX_CLIENTS} clients already; try again"
            ));
            let _ = (&conn).write_all(&api::response_line(Outcome::Error(e)));
        };
        if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::AcqRel);
            busy();
            continue;
        }
        let (d, count) = (Arc::clone(&daemon), Arc::clone(&clients));
        let conn2 = conn.try_clone();
        let spawned = std::thread::Builder::new()
            .name("api-client".into())
            .spawn(move || {
                serve_client(conn, &d);
                count.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            clients.fetch_sub(1, Ordering::AcqRel);
            if let Ok(conn) = conn2 {
                let e = ApiError::failed("the daemon cannot start a thread for this client");
                let _ = (&conn).write_all(&api::response_line(Outcome::Error(e)));
            }
        }
    }
}

/// One request, start to finish (a capture goes on streaming on this thread).
fn serve_client(conn: UnixStream, daemon: &Mutex<Daemon>) {
    let mut line = String::new();
    let limit = api::MAX_REQUEST as u64;
    let read = BufReader::new((&conn).take(limit)).read_line(&mut line);
    let outcome = match read {
        Ok(0) => return,
        Ok(n) if n as u64 == limit && !line.ends_with('\n') => Err(ApiError::bad_input(format!(
            "request larger than {} bytes",
            api::MAX_REQUEST
        ))),
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
                    Ok((frames, stop)) => {
                        let ok = api::response_line(Outcome::Ok(Response::CaptureStarted));
                        if (&conn).write_all(&ok).is_ok() {
                            // A capture's reader may pause (a pager); it ends when it goes.
                            let _ = conn.set_write_timeout(None);
                            stream_capture(conn, frames, stop, count.unwrap_or(u64::MAX));
                        } else {
                            let _ = stop.stop();
                        }
                        return;
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
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(ApiError::bad_input(format!(
                "no request within {} s",
                CLIENT_TIMEOUT.as_secs()
            )))
        }
        Err(e) => Err(ApiError::bad_input(format!("reading the request: {e}"))),
    };
    let outcome = match outcome {
        Ok(r) => Outcome::Ok(r),
        Err(e) => Outcome::Error(e),
    };
    let _ = (&conn).write_all(&api::response_line(outcome));
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
            Ok(st) if line.starts_with("GET ") => ("200 OK", crate::render::stats::prometheus(&st)),
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
pub(super) const CAPTURE_SNAPLEN: u32 = 65535;

/// Writes a capture as pcap to the client until `count` frames went, the capture completes, is
/// replaced, or the client goes away (then the capture is stopped). Each engine worker counts its
/// own frames toward the capture's `remaining`, so the count that ends it is kept here.
fn stream_capture(
    conn: UnixStream,
    frames: crossbeam_channel::Receiver<Captured>,
    stop: CaptureStop,
    count: u64,
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
    let mut written = 0;
    while !gone {
        if written == count {
            // Complete: the workers' copies of the capture stop with it.
            gone = true;
            break;
        }
        match frames.recv_timeout(Duration::from_millis(200)) {
            Ok(f) => {
                record.clear();
                pcap::write_record(&mut record, f.ts_ns, &f.data, f.orig_len, CAPTURE_SNAPLEN);
                written += 1;
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
        if let Ok(dropped) = stop.stop() {
            if dropped > 0 {
                tracing::warn!(dropped, "capture reader fell behind; frames were dropped");
            }
        }
    }
}
