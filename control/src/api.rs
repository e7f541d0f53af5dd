//! The daemon's protocol: every type the CLI and the daemon exchange, in one place (this file, and
//! the views of bigger answers in `api/`: `topology`, `stats`, `trace`). It is plain serde data and
//! names no other module of the crate; `render/` turns it into text.
//!
//! One request per connection: the client writes one line of JSON (`RequestFrame`) and reads one
//! line back (`ResponseFrame`). Each frame carries `version`; a daemon refuses a frame of another
//! version with an error that names both, so an old CLI never half-understands a new daemon. The
//! request carries raw strings exactly as the user typed them (CIDRs, addresses, MACs, options): the
//! daemon parses and validates everything, so one place decides what is bad input and what it says.
//! Inspect answers use Docker's field names (`docker network inspect`), so tools written for Docker
//! read them unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod stats;
pub mod topology;
pub mod trace;

pub const PROTOCOL_VERSION: u32 = 1;
pub const DEFAULT_SOCKET: &str = "/run/switchyard/switchyard.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/switchyard";
pub const SOCKET_ENV: &str = "SWITCHYARD_SOCKET";
/// Largest request or response line accepted (inspect of many containers stays far below).
pub const MAX_FRAME: usize = 16 << 20;
/// Largest request the daemon reads (requests are a few hundred bytes; a bigger one is refused).
pub const MAX_REQUEST: usize = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestFrame {
    pub version: u32,
    pub request: Request,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    Version,
    NetworkCreate(NetworkCreate),
    NetworkLs,
    NetworkInspect {
        names: Vec<String>,
    },
    NetworkRm {
        names: Vec<String>,
        force: bool,
    },
    NetworkConnect {
        network: String,
        container: String,
        ip: Option<String>,
        /// `--alias`: more DNS names of the container on this network.
        #[serde(default)]
        aliases: Vec<String>,
    },
    NetworkDisconnect {
        network: String,
        container: String,
    },
    ContainerCreate(ContainerCreate),
    ContainerRm {
        names: Vec<String>,
        /// Also remove containers that joined a removed one's namespace.
        #[serde(default)]
        force: bool,
    },
    ContainerLs,
    ContainerInspect {
        names: Vec<String>,
    },
    /// The link environment variables of a container (Docker's `ALIAS_PORT_...`).
    ContainerEnv {
        name: String,
    },
    /// Adds `--link CONTAINER[:ALIAS]` to an existing container.
    ContainerLink {
        name: String,
        link: String,
    },
    ContainerUnlink {
        name: String,
        alias: String,
    },
    /// `docker port NAME [PORT[/PROTO]]`.
    ContainerPort {
        name: String,
        filter: Option<String>,
    },
    /// Tracked NAT connections.
    Conntrack,
    /// Plug an existing namespace (by name/path or by a process in it) into a network.
    Attach {
        network: String,
        netns: Option<String>,
        pid: Option<u32>,
        ifname: Option<String>,
        ip: Option<String>,
        mac: Option<String>,
    },
    Detach {
        network: String,
        netns: Option<String>,
        pid: Option<u32>,
    },
    /// Plug a namespace someone else made (a path) into a network as `ifname`, for `container`
    /// (created on first use, an attachment like `Attach`'s), with optional pinned address and
    /// MAC, published ports and DNS aliases. Answers `Response::Endpoint`.
    EndpointAttach(EndpointAttach),
    /// Remove `container`'s attached interface `ifname`; nothing to remove is not an error, so
    /// it can be repeated (and the container goes with its last interface).
    EndpointDetach {
        container: String,
        ifname: String,
    },
    /// Verify an attached interface against the system (namespace, interface, MAC, address, data
    /// plane port). Answers `Response::EndpointCheck`.
    EndpointCheck {
        container: String,
        ifname: String,
    },
    /// Attached interfaces, optionally only those made with this `owner` tag.
    EndpointLs {
        owner: Option<String>,
    },
    /// Counters per port and per stage.
    Stats,
    /// The MAC table, optionally of one network.
    Fdb {
        network: Option<String>,
    },
    /// The picture of networks, containers, uplink and published ports (as data).
    Topology,
    /// Trace the next COUNT packets entering a container's port, a network, or an interface.
    TraceAdd {
        target: String,
        count: u32,
        filter: Option<String>,
    },
    TraceShow,
    TraceClear,
    /// Stream frames entering (and, for a port, leaving) TARGET as pcap after the answer line.
    Capture {
        target: String,
        count: Option<u64>,
        filter: Option<String>,
    },
    /// A what-if trace of a synthetic packet (nothing changes, nothing is sent).
    TracePacket {
        input: String,
        flow: String,
    },
    /// The data plane's ports, MAC table and counters, as text.
    Status,
    /// Names another system gives networks and containers, by ID (`None` clears one): shown by
    /// `ls` and `topology` (Docker's names of what its plugin created).
    SetAliases {
        aliases: BTreeMap<String, Option<String>>,
    },
    /// The embedded resolver's recent queries and what it answered.
    DnsLog,
}

impl Request {
    /// Whether the request may change the desired state (then the daemon pushes policy, NAT and
    /// hosts files after it, whatever its outcome). Every request is named, so a new one must
    /// decide.
    pub fn changes_state(&self) -> bool {
        match self {
            Request::NetworkCreate(_)
            | Request::NetworkRm { .. }
            | Request::NetworkConnect { .. }
            | Request::NetworkDisconnect { .. }
            | Request::ContainerCreate(_)
            | Request::ContainerRm { .. }
            | Request::ContainerLink { .. }
            | Request::ContainerUnlink { .. }
            | Request::Attach { .. }
            | Request::Detach { .. }
            | Request::EndpointAttach(_)
            | Request::EndpointDetach { .. }
            | Request::SetAliases { .. } => true,
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
            | Request::EndpointCheck { .. }
            | Request::EndpointLs { .. }
            | Request::DnsLog
            | Request::Topology => false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkCreate {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    /// `NAME=IP` as typed.
    pub aux_addresses: Vec<String>,
    /// `KEY=VALUE` as typed (`icc=false`, `com.docker.network.driver.mtu=1400`, ...).
    pub options: Vec<String>,
    pub internal: bool,
    pub mtu: Option<u32>,
    /// Extend the network onto this interface of the daemon's namespace (an L2 uplink).
    #[serde(default)]
    pub parent: Option<String>,
    /// Tag frames on the parent with this 802.1Q VLAN (1-4094).
    #[serde(default)]
    pub vlan: Option<u16>,
    /// The network's ID, when another system already named it (Docker's `NetworkID`: 12 to 64
    /// lowercase hex digits); minted otherwise.
    #[serde(default)]
    pub id: Option<String>,
    /// `--driver`: `bridge` (the default) or `overlay`, as typed.
    #[serde(default)]
    pub driver: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerCreate {
    pub name: String,
    pub network: String,
    pub ip: Option<String>,
    pub mac: Option<String>,
    /// `-e KEY=VALUE` and `--env-file` lines, as `KEY=VALUE` (the client takes a bare `KEY` from
    /// its own environment, as Docker's does).
    #[serde(default)]
    pub env: Vec<String>,
    /// `PORT[/PROTO]` or `START-END[/PROTO]` as typed.
    #[serde(default)]
    pub expose: Vec<String>,
    /// `CONTAINER[:ALIAS]` as typed.
    #[serde(default)]
    pub links: Vec<String>,
    #[serde(default)]
    pub allow_spoofing: bool,
    /// `-p` specs as typed.
    #[serde(default)]
    pub publish: Vec<String>,
    /// `-P`: publish every exposed port on an ephemeral host port.
    #[serde(default)]
    pub publish_all: bool,
    /// The container's ID, when another system already named it (Docker's `EndpointID`: 12 to
    /// 64 lowercase hex digits); minted otherwise.
    #[serde(default)]
    pub id: Option<String>,
    /// Hand the endpoint's veth to someone else: its container end is left in the daemon's
    /// namespace under this name, with its MAC and MTU but no address and down, for the caller
    /// to move into a namespace of its own (Docker's `Join` `SrcName`; a CNI runtime). The
    /// container then has no namespace of switchyard's (mode `handoff`).
    #[serde(default)]
    pub handoff: Option<String>,
    /// `--hostname`: the container's host name (default: its short ID).
    #[serde(default)]
    pub hostname: Option<String>,
    /// `--alias`: more DNS names of the container on its network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--dns`: upstream servers for this container's names that are not local.
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--dns-search`.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP`.
    #[serde(default)]
    pub add_hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndpointAttach {
    /// The attachment's name (a container ID of the runtime that made the namespace).
    pub container: String,
    pub network: String,
    /// The namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`).
    pub netns: String,
    /// The interface name inside the namespace; it must not exist yet.
    pub ifname: String,
    pub ip: Option<String>,
    pub mac: Option<String>,
    /// `-p` specs as typed, published to this interface's address.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Extra names of the container on this network (for the network's resolver).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// A tag kept with the interface, to list (`EndpointLs`) what one client made.
    #[serde(default)]
    pub owner: Option<String>,
    /// Point the namespace's default route at the network's gateway (when it has no other
    /// switchyard interface yet).
    #[serde(default)]
    pub default_route: bool,
}

/// One attached interface, as `EndpointAttach`, `EndpointCheck` and `EndpointLs` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointView {
    pub container: String,
    pub network: String,
    pub netns: String,
    pub interface: String,
    /// The veth end the switch attaches to, in the daemon's namespace.
    pub host_interface: String,
    pub mac: String,
    pub ip: std::net::Ipv4Addr,
    pub prefix: u8,
    pub gateway: std::net::Ipv4Addr,
    pub mtu: u32,
    /// Whether the namespace's default route was set to this interface's gateway.
    pub default_route: bool,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub owner: Option<String>,
    /// Published ports leading to this interface, `80/tcp -> 0.0.0.0:8080`.
    #[serde(default)]
    pub published: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub version: u32,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok(Response),
    Error(ApiError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "kebab-case")]
pub enum Response {
    Version {
        daemon: String,
        protocol: u32,
    },
    /// A network or container was created; its full ID.
    Created {
        id: String,
    },
    Done,
    Networks(Vec<NetworkSummary>),
    NetworkDetails(Vec<NetworkInspect>),
    Containers(Vec<ContainerSummary>),
    ContainerDetails(Vec<ContainerInspect>),
    /// `NAME=VALUE` pairs in order.
    Env(Vec<(String, String)>),
    /// Lines to print as they are.
    Lines(Vec<String>),
    Traces(Vec<trace::TraceView>),
    DnsLog(Vec<trace::DnsQueryView>),
    /// A capture runs: pcap bytes follow the answer line on the same connection.
    CaptureStarted,
    Stats(Box<stats::Stats>),
    Fdb(Vec<stats::FdbEntry>),
    Topology(Box<topology::Topology>),
    Conntrack(ConntrackList),
    Endpoint(Box<EndpointView>),
    Endpoints(Vec<EndpointView>),
    /// `endpoint` is `None` for an unknown container or interface; `problems` is empty when
    /// the system matches the state.
    EndpointCheck {
        endpoint: Option<Box<EndpointView>>,
        problems: Vec<String>,
    },
    Status {
        report: String,
    },
}

/// A transport protocol of an exposed or published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Protocol, ApiError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Err(ApiError::bad_input(
                "protocol sctp is not supported by switchyard (tcp or udp)",
            )),
            _ => Err(ApiError::bad_input(format!(
                "invalid protocol '{s}': expected tcp or udp"
            ))),
        }
    }
}

/// Why a request failed. `BadInput` means nothing was changed and the user can fix the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    BadInput,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    /// One line: what is wrong, with which value.
    pub message: String,
}

impl ApiError {
    pub fn bad_input(message: impl Into<String>) -> ApiError {
        ApiError {
            kind: ErrorKind::BadInput,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> ApiError {
        ApiError {
            kind: ErrorKind::Failed,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkSummary {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub scope: String,
    pub subnet: String,
    pub gateway: String,
    pub host_interface: String,
    pub containers: usize,
    /// How containers reach beyond the uplink: `nat`, `routed` or `internal` (not at all).
    #[serde(default)]
    pub mode: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    /// `docker ps`'s PORTS entries: `0.0.0.0:8080->80/tcp`, or `5432/tcp` when only exposed.
    #[serde(default)]
    pub ports: Vec<String>,
    /// (network, interface, IPv4 address with prefix, MAC) per attachment.
    pub endpoints: Vec<EndpointSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointSummary {
    pub network: String,
    pub interface: String,
    pub address: String,
    pub mac: String,
}

/// `docker network inspect`, field for field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    pub name: String,
    #[serde(rename = "Id")]
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: IpamInspect,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    /// Keyed by container ID.
    pub containers: BTreeMap<String, NetworkEndpointInspect>,
    /// Docker's config-network fields (switchyard has no config-only networks).
    #[serde(default)]
    pub config_from: ConfigFromInspect,
    #[serde(default)]
    pub config_only: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// `{"Network": ""}`, as Docker writes it for a network made from no config network.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigFromInspect {
    pub network: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamInspect {
    pub driver: String,
    pub options: BTreeMap<String, String>,
    pub config: Vec<IpamPoolInspect>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamPoolInspect {
    pub subnet: String,
    pub gateway: String,
    #[serde(rename = "IPRange", default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkEndpointInspect {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `docker container inspect`, the parts that a network namespace has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    #[serde(rename = "Id")]
    pub id: String,
    /// With Docker's leading slash: `/web`.
    pub name: String,
    pub created: String,
    pub config: ContainerConfigInspect,
    pub host_config: HostConfigInspect,
    pub network_settings: NetworkSettingsInspect,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfigInspect {
    /// `{"5432/tcp": {}}`, as Docker writes it.
    pub exposed_ports: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// The container's host name (its short ID unless `--hostname`; `container:X` has X's).
    #[serde(default)]
    pub hostname: String,
    /// `PATH` and the `-e` variables, as Docker's `Config.Env`.
    #[serde(default)]
    pub env: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfigInspect {
    /// The network it was created on (`bridge`, `mynet`), `none`, `host` or `container:NAME`.
    pub network_mode: String,
    /// `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`: what `-p` published.
    #[serde(default)]
    pub port_bindings: BTreeMap<String, Vec<PortBindingInspect>>,
    /// Docker's form: `/CHILD:/PARENT/ALIAS`.
    pub links: Vec<String>,
    /// switchyard's addition: anti-spoofing is off for this container.
    pub allow_spoofing: bool,
    /// `--dns`, `--dns-search`, `--dns-option`, `--add-host` (`NAME:IP`), as Docker names them.
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
    #[serde(default)]
    pub extra_hosts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettingsInspect {
    /// The namespace file: `/run/netns/NAME`.
    pub sandbox_key: String,
    /// Every exposed port, with where it is published (`null` when it is not), as Docker's.
    #[serde(default)]
    pub ports: BTreeMap<String, Option<Vec<PortBindingInspect>>>,
    pub networks: BTreeMap<String, ContainerEndpointInspect>,
}

/// One host side of a published port: `{"HostIp": "0.0.0.0", "HostPort": "8080"}` (strings,
/// as Docker's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBindingInspect {
    pub host_ip: String,
    pub host_port: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerEndpointInspect {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    pub mac_address: String,
    /// switchyard's addition: the interface inside the container (`eth0`).
    pub interface_name: String,
    /// switchyard's addition: the veth end the switch attaches to.
    pub host_interface: String,
    /// `--alias` names on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Every name the network's resolver answers for this container (Docker 25's `DNSNames`).
    #[serde(rename = "DNSNames", default)]
    pub dns_names: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConntrackList {
    pub entries: Vec<ConntrackEntry>,
    pub count: usize,
    pub max: usize,
    pub created: u64,
    pub expired: u64,
    pub evicted: u64,
    pub removed: u64,
}

/// One tracked connection: the tuple as it arrived and the tuple its replies carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConntrackEntry {
    pub protocol: String,
    pub kind: String,
    pub state: String,
    pub timeout_s: u64,
    pub original: FlowTuple,
    pub reply: FlowTuple,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowTuple {
    pub src: String,
    pub sport: u16,
    pub dst: String,
    pub dport: u16,
}

/// Where the CLI finds the daemon: `--socket`, else `$SWITCHYARD_SOCKET`, else the default.
pub fn socket_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(SOCKET_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Errors of the client side of the protocol.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the switchyard daemon at {path} ({source}); start it with `sudo switchyard daemon`, or point --socket / {SOCKET_ENV} at a running one")]
    NotRunning {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to the daemon at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the switchyard daemon at {path} did not answer within {secs} s (stopped, or busy); set {TIMEOUT_ENV}=SECONDS to wait longer")]
    Timeout { path: String, secs: u64 },
    #[error("the daemon at {path} sent an unreadable answer: {detail}")]
    Garbled { path: String, detail: String },
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Seconds a client waits for the daemon's answer (default `DEFAULT_TIMEOUT_SECS`).
pub const TIMEOUT_ENV: &str = "SWITCHYARD_TIMEOUT";
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// How long a client waits for an answer: `$SWITCHYARD_TIMEOUT` seconds when it is a positive
/// number, else `DEFAULT_TIMEOUT_SECS`, so a stopped daemon never hangs a client.
fn answer_timeout() -> std::time::Duration {
    let secs = std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    std::time::Duration::from_secs(secs)
}

/// Sends one request and waits for its answer.
pub fn call(socket: &Path, request: Request) -> Result<Response, ClientError> {
    call_stream(socket, request).map(|(r, _)| r)
}

/// Like `call`, and hands back the connection for what follows the answer (a capture stream).
pub fn call_stream(
    socket: &Path,
    request: Request,
) -> Result<(Response, BufReader<UnixStream>), ClientError> {
    let path = socket.display().to_string();
    let mut stream = UnixStream::connect(socket).map_err(|source| ClientError::NotRunning {
        path: path.clone(),
        source,
    })?;
    let io = |source| ClientError::Io {
        path: path.clone(),
        source,
    };
    let mut line = serde_json::to_vec(&RequestFrame {
        version: PROTOCOL_VERSION,
        request,
    })
    .expect("requests always serialize");
    line.push(b'\n');
    let timeout = answer_timeout();
    let timed_out = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ClientError::Timeout {
            path: path.clone(),
            secs: timeout.as_secs(),
        },
        _ => io(e),
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    // A daemon that refuses the connection (too many clients) answers before reading: its
    // answer, not the broken pipe, is what the client reports.
    let wrote = stream.write_all(&line);
    let mut answer = String::new();
    let mut reader = BufReader::new(stream);
    let read = (&mut reader).take(MAX_FRAME as u64).read_line(&mut answer);
    match (wrote, read) {
        (_, Ok(n)) if n > 0 => {}
        (Err(e), _) => return Err(timed_out(e)),
        (Ok(()), Err(e)) => return Err(timed_out(e)),
        (Ok(()), Ok(_)) => {}
    }
    // What follows an answer (a capture's frames) comes when it comes.
    reader.get_ref().set_read_timeout(None).map_err(io)?;
    let frame: ResponseFrame = serde_json::from_str(&answer).map_err(|e| ClientError::Garbled {
        path: path.clone(),
        detail: if answer.is_empty() {
            "the connection closed without an answer".to_string()
        } else {
            e.to_string()
        },
    })?;
    match frame.outcome {
        Outcome::Ok(response) => Ok((response, reader)),
        Outcome::Error(e) => Err(ClientError::Api(e)),
    }
}

/// Parses one request line on the daemon side; a frame of another version is refused by name.
pub fn parse_request(line: &str) -> Result<Request, ApiError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    // serde's messages quote the offending text (an unknown variant, say), unescaped.
    let malformed = |e: serde_json::Error| {
        let mut message = String::from("malformed request: ");
        for c in e.to_string().chars() {
            if c.is_control() {
                message.extend(c.escape_default());
            } else {
                message.push(c);
            }
        }
        ApiError::bad_input(message)
    };
    let version = serde_json::from_str::<VersionOnly>(line)
        .map_err(malformed)?
        .version;
    if version != PROTOCOL_VERSION {
        return Err(ApiError::bad_input(format!(
            "protocol version {version} is not supported by this daemon (it speaks version {PROTOCOL_VERSION}); use a matching switchyard CLI"
        )));
    }
    serde_json::from_str::<RequestFrame>(line)
        .map(|f| f.request)
        .map_err(malformed)
}

/// Serializes the daemon's answer as one line.
pub fn response_line(outcome: Outcome) -> Vec<u8> {
    let mut line = serde_json::to_vec(&ResponseFrame {
        version: PROTOCOL_VERSION,
        outcome,
    })
    .expect("responses always serialize");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    /// Found by `fuzz/` (target `api`): a JSON-escaped newline in an unknown command came back
    /// unescaped in the error, which the CLI then printed as two lines.
    #[test]
    fn a_refused_request_is_one_line_whatever_it_quotes() {
        let crash = r#"{"version":1,"request":{"command":"coU\ntainer-create","name":"web"}}"#;
        let e = super::parse_request(crash).unwrap_err();
        assert!(!e.message.contains('\n'), "{}", e.message);
        assert!(
            e.message.contains(r"unknown variant `coU\ntainer-create`"),
            "{}",
            e.message
        );
    }

    use super::*;

    #[test]
    fn only_requests_that_change_the_state_say_so() {
        let change = Request::NetworkRm {
            names: vec!["front".into()],
            force: false,
        };
        assert!(change.changes_state());
        assert!(Request::ContainerLink {
            name: "web".into(),
            link: "db".into()
        }
        .changes_state());
        for read in [
            Request::Version,
            Request::Status,
            Request::ContainerLs,
            Request::TraceClear,
            Request::Topology,
        ] {
            assert!(!read.changes_state(), "{read:?}");
        }
    }

    #[test]
    fn request_round_trips_and_other_versions_are_refused() {
        let req = Request::NetworkCreate(NetworkCreate {
            name: "front".into(),
            subnet: Some("10.9.0.0/24".into()),
            ..Default::default()
        });
        let line = serde_json::to_string(&RequestFrame {
            version: PROTOCOL_VERSION,
            request: req,
        })
        .unwrap();
        assert!(line.contains(r#""command":"network-create""#), "{line}");
        match parse_request(&line).unwrap() {
            Request::NetworkCreate(c) => assert_eq!(c.subnet.as_deref(), Some("10.9.0.0/24")),
            other => panic!("{other:?}"),
        }
        let old = line.replace(r#""version":1"#, r#""version":0"#);
        let err = parse_request(&old).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadInput);
        assert!(
            err.message.contains("protocol version 0"),
            "{}",
            err.message
        );
        assert!(parse_request("{nonsense").is_err());
        assert!(parse_request(r#"{"version":1,"request":{"command":"fly"}}"#).is_err());
    }

    #[test]
    fn network_inspect_uses_dockers_field_names() {
        let n = NetworkInspect {
            name: "bridge".into(),
            id: "ab".into(),
            created: "2026-11-23T10:00:00.000000000Z".into(),
            scope: "local".into(),
            driver: "switchyard".into(),
            enable_ipv6: false,
            ipam: IpamInspect {
                driver: "default".into(),
                options: BTreeMap::new(),
                config: vec![IpamPoolInspect {
                    subnet: "172.17.0.0/16".into(),
                    gateway: "172.17.0.1".into(),
                    ip_range: None,
                    auxiliary_addresses: BTreeMap::new(),
                }],
            },
            internal: false,
            attachable: true,
            ingress: false,
            containers: BTreeMap::new(),
            config_from: Default::default(),
            config_only: false,
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
        };
        let v = serde_json::to_value(&n).unwrap();
        for key in [
            "Name",
            "Id",
            "Created",
            "Scope",
            "Driver",
            "EnableIPv6",
            "IPAM",
            "Internal",
            "Attachable",
            "Ingress",
            "ConfigFrom",
            "ConfigOnly",
            "Containers",
            "Options",
            "Labels",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["ConfigFrom"], serde_json::json!({"Network": ""}));
        assert_eq!(v["ConfigOnly"], false);
        assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16");
        assert!(v["IPAM"]["Config"][0].get("IPRange").is_none());
    }

    #[test]
    fn a_missing_daemon_says_how_to_start_one() {
        let err = call(Path::new("/nonexistent/switchyard.sock"), Request::Version).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/switchyard.sock") && msg.contains("switchyard daemon"),
            "{msg}"
        );
    }
}
