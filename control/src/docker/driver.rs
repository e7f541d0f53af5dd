//! The remote network driver protocol, call by call: Docker's JSON in, `api` requests to the
//! daemon, Docker's JSON out. No I/O of its own: the daemon is reached through `Daemon`, so every
//! call is tested here against a recording fake.
//!
//! Names: a Docker network is the switchyard network named by the first 12 hex digits of its
//! `NetworkID` (Docker's short ID, as `docker network ls` prints it) with the full ID as its ID;
//! a Docker endpoint is a switchyard container of mode `handoff` named by the first 12 digits of
//! its `EndpointID`, whose veth end waits in the daemon's namespace as `syc<12 digits>` until
//! dockerd moves it into the sandbox. Both names follow from Docker's IDs, so this front end keeps
//! no state: the daemon persists everything, and dockerd (which never replays `CreateNetwork`)
//! finds it all again after either side restarts.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::{self, ContainerCreate, NetworkCreate, Request, Response};

/// What the driver needs from the daemon: one request, one answer (`api::call` in the server).
pub trait Daemon {
    fn call(&self, request: Request) -> Result<Response, api::ClientError>;
}

/// An answer to dockerd: the HTTP status and the JSON body.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub(crate) fn ok(body: Value) -> Answer {
        Answer { status: 200, body }
    }

    /// A refusal dockerd shows the user: `{"Err": "one line"}`.
    pub(crate) fn err(status: u16, message: impl std::fmt::Display) -> Answer {
        let line = message.to_string().replace('\n', " ");
        Answer {
            status,
            body: json!({ "Err": line }),
        }
    }
}

/// Options whose values are switchyard's own (`docker network create -o parent=eth1 -o vlan=10`).
const OPT_PARENT: &str = "parent";
const OPT_VLAN: &str = "vlan";
const GENERIC: &str = "com.docker.network.generic";
const INTERNAL: &str = "com.docker.network.internal";
const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
const PORTMAP: &str = "com.docker.network.portmap";
const EXPOSED: &str = "com.docker.network.endpoint.exposedports";

/// Answers one call: `path` is the URL path (`/NetworkDriver.Join`), `body` what dockerd sent.
pub fn answer(daemon: &dyn Daemon, path: &str, body: &[u8]) -> Answer {
    let call = path.trim_start_matches('/');
    let result = match call {
        "Plugin.Activate" => Ok(json!({ "Implements": ["NetworkDriver"] })),
        "NetworkDriver.GetCapabilities" => {
            Ok(json!({ "Scope": "local", "ConnectivityScope": "local" }))
        }
        "NetworkDriver.CreateNetwork" => parse(body).and_then(|r| create_network(daemon, r)),
        "NetworkDriver.DeleteNetwork" => parse(body).and_then(|r| delete_network(daemon, r)),
        "NetworkDriver.CreateEndpoint" => parse(body).and_then(|r| create_endpoint(daemon, r)),
        "NetworkDriver.DeleteEndpoint" => parse(body).and_then(|r| delete_endpoint(daemon, r)),
        "NetworkDriver.EndpointOperInfo" => parse(body).and_then(|r| oper_info(daemon, r)),
        "NetworkDriver.Join" => parse(body).and_then(|r| join(daemon, r)),
        // Nothing to undo: the veth stays until DeleteEndpoint, as Docker's bridge driver keeps it.
        "NetworkDriver.Leave" => parse::<EndpointRef>(body).map(|_| json!({})),
        // Ports are published when the endpoint is created (its portmap), so that a failure
        // (a taken host port) refuses the container before it starts, with Docker's message.
        "NetworkDriver.ProgramExternalConnectivity"
        | "NetworkDriver.RevokeExternalConnectivity" => {
            parse::<EndpointRef>(body).map(|_| json!({}))
        }
        // Swarm node discovery and global allocation: a local-scope driver has nothing to do.
        "NetworkDriver.DiscoverNew" | "NetworkDriver.DiscoverDelete" => {
            parse::<Value>(body).map(|_| json!({}))
        }
        "NetworkDriver.AllocateNetwork" => parse::<Value>(body).map(|_| json!({ "Options": {} })),
        "NetworkDriver.FreeNetwork" => parse::<Value>(body).map(|_| json!({})),
        _ => {
            return Answer::err(
                404,
                format!("switchyard's network driver has no call '{call}'"),
            )
        }
    };
    match result {
        Ok(body) => Answer::ok(body),
        Err(Refusal::Malformed(m)) => Answer::err(400, format!("{call}: {m}")),
        Err(Refusal::Refused(m)) => Answer::err(200, m),
    }
}

/// Why a call failed: a body dockerd should never send (400), or the daemon said no (200 with
/// `Err`, which dockerd shows as `remote: ...`).
#[derive(Debug)]
enum Refusal {
    Malformed(String),
    Refused(String),
}

fn refused(e: impl std::fmt::Display) -> Refusal {
    Refusal::Refused(e.to_string())
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Refusal> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| Refusal::Malformed(format!("malformed JSON: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkRef {
    #[serde(rename = "NetworkID")]
    network_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointRef {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateNetworkCall {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    #[serde(rename = "IPv4Data", default)]
    ipv4_data: Option<Vec<IpamData>>,
    #[serde(rename = "IPv6Data", default)]
    ipv6_data: Option<Vec<IpamData>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamData {
    #[serde(default)]
    pool: String,
    #[serde(default)]
    gateway: String,
    #[serde(default)]
    aux_addresses: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateEndpointCall {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    #[serde(default)]
    interface: Option<EndpointInterface>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct EndpointInterface {
    #[serde(default)]
    address: String,
    #[serde(rename = "AddressIPv6", default)]
    address_ipv6: String,
    #[serde(default)]
    mac_address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JoinCall {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    #[serde(default)]
    options: Option<Map<String, Value>>,
}

/// `com.docker.network.portmap`: Docker's `types.PortBinding`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PortBinding {
    proto: u8,
    port: u16,
    #[serde(rename = "HostIP", default)]
    host_ip: Option<String>,
    #[serde(default)]
    host_port: u16,
    #[serde(default)]
    host_port_end: u16,
}

/// `com.docker.network.endpoint.exposedports`: Docker's `types.TransportPort`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TransportPort {
    proto: u8,
    port: u16,
}

/// The switchyard name of a Docker object: the first 12 digits of its ID (Docker's short ID).
fn short_id(what: &str, id: &str) -> Result<String, Refusal> {
    if id.len() < 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refusal::Malformed(format!(
            "invalid {what} '{id}': expected Docker's 64 hex digits"
        )));
    }
    Ok(id[..12].to_ascii_lowercase())
}

/// The name the endpoint's veth end has in the daemon's namespace until dockerd takes it.
pub fn handoff_name(endpoint: &str) -> String {
    format!("syc{endpoint}")
}

fn create_network(daemon: &dyn Daemon, call: CreateNetworkCall) -> Result<Value, Refusal> {
    let name = short_id("NetworkID", &call.network_id)?;
    let options = call.options.unwrap_or_default();
    if options.get(ENABLE_IPV6).and_then(Value::as_bool) == Some(true)
        || call.ipv6_data.as_ref().is_some_and(|d| !d.is_empty())
    {
        return Err(refused(
            "switchyard networks are IPv4 only: create the network without --ipv6",
        ));
    }
    let pools = call.ipv4_data.unwrap_or_default();
    let [pool] = pools.as_slice() else {
        return Err(refused(format!(
            "switchyard networks have exactly one IPv4 subnet (Docker sent {})",
            pools.len()
        )));
    };
    let mut req = NetworkCreate {
        name,
        id: Some(call.network_id.to_ascii_lowercase()),
        subnet: Some(pool.pool.clone()),
        gateway: (!pool.gateway.is_empty()).then(|| strip_prefix(&pool.gateway).to_string()),
        internal: options.get(INTERNAL).and_then(Value::as_bool) == Some(true),
        ..Default::default()
    };
    for (name, ip) in pool.aux_addresses.iter().flatten() {
        req.aux_addresses
            .push(format!("{name}={}", strip_prefix(&text(ip))));
    }
    if let Some(generic) = options.get(GENERIC).and_then(Value::as_object) {
        for (key, value) in generic {
            let value = text(value);
            match key.as_str() {
                OPT_PARENT => req.parent = Some(value),
                OPT_VLAN => {
                    req.vlan = Some(value.parse().map_err(|_| {
                        refused(format!(
                            "invalid VLAN '{value}': expected a number from 1 to 4094"
                        ))
                    })?)
                }
                _ => req.options.push(format!("{key}={value}")),
            }
        }
        req.options.sort();
    }
    daemon.call(Request::NetworkCreate(req)).map_err(refused)?;
    Ok(json!({}))
}

fn delete_network(daemon: &dyn Daemon, call: NetworkRef) -> Result<Value, Refusal> {
    let name = short_id("NetworkID", &call.network_id)?;
    let names = vec![name];
    remove_if_present(
        daemon,
        Request::NetworkInspect {
            names: names.clone(),
        },
        Request::NetworkRm {
            names,
            force: false,
        },
    )
}

fn create_endpoint(daemon: &dyn Daemon, call: CreateEndpointCall) -> Result<Value, Refusal> {
    let network = short_id("NetworkID", &call.network_id)?;
    let name = short_id("EndpointID", &call.endpoint_id)?;
    let iface = call.interface.unwrap_or_default();
    if !iface.address_ipv6.is_empty() {
        return Err(refused(
            "switchyard networks are IPv4 only: the endpoint has an IPv6 address",
        ));
    }
    if iface.address.is_empty() {
        return Err(refused(
            "the endpoint has no IPv4 address: switchyard networks use Docker's IPAM driver",
        ));
    }
    let options = call.options.unwrap_or_default();
    let exposed: Vec<TransportPort> = list(&options, EXPOSED)?;
    let bindings: Vec<PortBinding> = list(&options, PORTMAP)?;
    let mut expose = Vec::new();
    for p in &exposed {
        expose.push(format!("{}/{}", p.port, protocol(p.proto)?));
    }
    let mut publish = Vec::new();
    for b in &bindings {
        if let Some(spec) = publish_spec(b)? {
            if !publish.contains(&spec) {
                publish.push(spec);
            }
        }
    }
    let req = ContainerCreate {
        name: name.clone(),
        network,
        ip: Some(strip_prefix(&iface.address).to_string()),
        mac: (!iface.mac_address.is_empty()).then_some(iface.mac_address.clone()),
        expose,
        publish,
        id: Some(call.endpoint_id.to_ascii_lowercase()),
        handoff: Some(handoff_name(&name)),
        ..Default::default()
    };
    daemon
        .call(Request::ContainerCreate(req))
        .map_err(refused)?;
    if !iface.mac_address.is_empty() {
        // Docker's rule: a field it filled in is not answered.
        return Ok(json!({}));
    }
    let endpoint = endpoint(daemon, &name)?;
    Ok(json!({ "Interface": { "MacAddress": endpoint.mac_address } }))
}

fn delete_endpoint(daemon: &dyn Daemon, call: EndpointRef) -> Result<Value, Refusal> {
    let name = short_id("EndpointID", &call.endpoint_id)?;
    short_id("NetworkID", &call.network_id)?;
    let names = vec![name];
    remove_if_present(
        daemon,
        Request::ContainerInspect {
            names: names.clone(),
        },
        Request::ContainerRm {
            names,
            force: false,
        },
    )
}

fn oper_info(daemon: &dyn Daemon, call: EndpointRef) -> Result<Value, Refusal> {
    let name = short_id("EndpointID", &call.endpoint_id)?;
    let e = endpoint(daemon, &name)?;
    Ok(json!({ "Value": {
        "switchyard.container": name,
        "switchyard.host_interface": e.host_interface,
        "switchyard.ip": e.ip_address,
        "switchyard.mac": e.mac_address,
    }}))
}

fn join(daemon: &dyn Daemon, call: JoinCall) -> Result<Value, Refusal> {
    let name = short_id("EndpointID", &call.endpoint_id)?;
    let network = short_id("NetworkID", &call.network_id)?;
    let e = endpoint(daemon, &name)?;
    let internal = match daemon
        .call(Request::NetworkInspect {
            names: vec![network],
        })
        .map_err(refused)?
    {
        Response::NetworkDetails(n) => n.first().is_some_and(|n| n.internal),
        other => return Err(unexpected(&other)),
    };
    link(daemon, &name, call.options.as_ref());
    let mut answer = json!({
        "InterfaceName": { "SrcName": e.interface_name, "DstPrefix": "eth" },
    });
    if internal {
        // No way out, as on docker0: no default route, and no docker_gwbridge either.
        answer["DisableGatewayService"] = json!(true);
    } else {
        answer["Gateway"] = json!(e.gateway);
    }
    Ok(answer)
}

/// Legacy links Docker passes in the join options (`ChildEndpoints`/`ParentEndpoints`, as its
/// bridge driver reads them): the parent may reach the child's exposed ports on `icc=false`.
fn link(daemon: &dyn Daemon, name: &str, options: Option<&Map<String, Value>>) {
    let Some(options) = options else { return };
    let generic = options.get(GENERIC).and_then(Value::as_object);
    let ids = |key: &str| -> Vec<String> {
        generic
            .and_then(|g| g.get(key))
            .or_else(|| options.get(key))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| short_id("EndpointID", v.as_str()?).ok())
            .collect()
    };
    let pairs = ids("ChildEndpoints")
        .into_iter()
        .map(|child| (name.to_string(), child))
        .chain(
            ids("ParentEndpoints")
                .into_iter()
                .map(|parent| (parent, name.to_string())),
        );
    for (parent, child) in pairs {
        // An existing link (both ends report it) is fine; anything else is logged.
        if let Err(e) = daemon.call(Request::ContainerLink {
            name: parent.clone(),
            link: child.clone(),
        }) {
            tracing::debug!(%parent, %child, "link from Docker's join options: {e}");
        }
    }
}

/// The one endpoint of the switchyard container `name`.
fn endpoint(daemon: &dyn Daemon, name: &str) -> Result<api::ContainerEndpointInspect, Refusal> {
    match daemon
        .call(Request::ContainerInspect {
            names: vec![name.to_string()],
        })
        .map_err(refused)?
    {
        Response::ContainerDetails(mut c) => c
            .pop()
            .and_then(|c| c.network_settings.networks.into_values().next())
            .ok_or_else(|| refused(format!("endpoint {name} has no network"))),
        other => Err(unexpected(&other)),
    }
}

/// Removes what `inspect` finds with `rm`. What is already gone (a state reset, a call dockerd
/// repeats after a restart) is what dockerd asked for.
fn remove_if_present(daemon: &dyn Daemon, inspect: Request, rm: Request) -> Result<Value, Refusal> {
    if daemon.call(inspect).is_ok() {
        daemon.call(rm).map_err(refused)?;
    }
    Ok(json!({}))
}

fn unexpected(r: &Response) -> Refusal {
    refused(format!(
        "unexpected answer from the switchyard daemon: {r:?}"
    ))
}

/// A JSON list under `key` of the options, if there.
fn list<T: for<'de> Deserialize<'de>>(
    options: &Map<String, Value>,
    key: &str,
) -> Result<Vec<T>, Refusal> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| Refusal::Malformed(format!("malformed {key}: {e}"))),
    }
}

/// A `-p` spec in Docker's own syntax from one of its port bindings, for the daemon's parser
/// (so the rules for ranges, addresses and conflicts are switchyard's one copy). An IPv6 host
/// address is left out: switchyard publishes on its IPv4 uplink, as `-p` does with both.
fn publish_spec(b: &PortBinding) -> Result<Option<String>, Refusal> {
    let host_ip = b.host_ip.as_deref().unwrap_or("");
    if host_ip.contains(':') {
        return Ok(None);
    }
    let host_port = match (b.host_port, b.host_port_end) {
        (0, _) => String::new(),
        (start, end) if end > start => format!("{start}-{end}"),
        (start, _) => start.to_string(),
    };
    let proto = protocol(b.proto)?;
    Ok(Some(match (host_ip, host_port.as_str()) {
        ("", "") => format!("{}/{proto}", b.port),
        ("", h) => format!("{h}:{}/{proto}", b.port),
        (ip, h) => format!("{ip}:{h}:{}/{proto}", b.port),
    }))
}

/// Docker's protocol numbers, named as `-p` names them.
fn protocol(number: u8) -> Result<&'static str, Refusal> {
    match number {
        6 => Ok("tcp"),
        17 => Ok("udp"),
        132 => Err(refused("switchyard publishes tcp and udp ports, not sctp")),
        n => Err(Refusal::Malformed(format!("unknown IP protocol {n}"))),
    }
}

/// `172.18.0.1/16` -> `172.18.0.1` (Docker sends addresses with their prefix).
fn strip_prefix(cidr: &str) -> &str {
    cidr.split_once('/').map_or(cidr, |(ip, _)| ip)
}

/// An option value as text (they are strings; daemon.json may give booleans or numbers).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
