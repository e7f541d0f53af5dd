//! The CNI front end: `switchyard` as a CNI plugin for podman, containerd, CRI-O and Kubernetes.
//!
//! A runtime executes the plugin named by the configuration's `type` from its plugin
//! directories, with `CNI_COMMAND` and friends in the environment and the configuration on
//! stdin. The `switchyard` binary becomes the plugin when `CNI_COMMAND` is set and it has no
//! arguments (a symlink `switchyard` in a plugin directory), or when run as `switchyard cni`.
//! Each command turns into the daemon's general requests over its socket, as the CLI's do:
//! ADD into `NetworkLs` (and `NetworkCreate` on first use) plus `EndpointAttach`, DEL into
//! `EndpointDetach`, CHECK into `EndpointCheck`, GC into `EndpointLs` plus `EndpointDetach`,
//! STATUS into `Version` and `NetworkLs`. The daemon knows nothing of CNI; what CNI needs kept
//! (which runtime container owns which interface) is the attachment's name (`CNI_CONTAINERID`),
//! its interface name (`CNI_IFNAME`) and its owner tag (`cni:<configuration name>`), all
//! persisted by the daemon, so DEL and GC work after a daemon restart.
//!
//! Results and errors are written in the version the configuration asks for (`result.rs`);
//! errors carry the spec's codes (`error.rs`), with switchyard's 100 (CHECK found a difference)
//! and 101 (the daemon refused: address, MAC or port taken).

mod config;
mod error;
mod result;
#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use crate::api::{self, ClientError, EndpointAttach, EndpointView, ErrorKind, Request, Response};
pub use config::Env;
use config::{Args, NetConf};
pub use error::{CniError, Code};
use result::Version;

/// Largest configuration read from stdin.
const MAX_STDIN: u64 = 1 << 20;

/// Whether this process was started as a CNI plugin: `CNI_COMMAND` set and no arguments.
pub fn invoked_as_plugin() -> bool {
    std::env::var_os("CNI_COMMAND").is_some() && std::env::args_os().len() == 1
}

/// Runs one CNI command from the process's environment and stdin; prints the result or the
/// error object on stdout (and the error's line on stderr).
pub fn main() -> ExitCode {
    let env = Env::from_vars(|name| std::env::var(name).ok());
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().take(MAX_STDIN).read_to_end(&mut stdin) {
        stdin.clear();
        eprintln!("switchyard cni: reading stdin: {e}");
    }
    let (version, outcome) = run(&env, &stdin, &mut |socket, request| {
        api::call(socket, request)
    });
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok(Some(value)) => {
            let _ = writeln!(out, "{value}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard cni: {e}");
            let _ = writeln!(out, "{}", e.to_json(&version));
            ExitCode::FAILURE
        }
    }
}

/// One call to the daemon: the socket and the request (a real `api::call` in `main`).
pub type Call<'a> = dyn FnMut(&Path, Request) -> Result<Response, ClientError> + 'a;

/// One command: the version to answer in, and the result to print (`None`: nothing to print).
pub fn run(env: &Env, stdin: &[u8], call: &mut Call) -> (String, Result<Option<Value>, CniError>) {
    let asked = config::version_of(stdin);
    let version = asked
        .clone()
        .filter(|v| result::SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| result::LATEST.to_string());
    let outcome = match env.command.as_deref() {
        // VERSION answers in the version asked, or the latest when none (or an unknown) is.
        Some("VERSION") => Ok(Some(result::version_result(&version))),
        Some(command) => Plugin::new(env, stdin, call).and_then(|mut p| p.run(command)),
        None => Err(CniError::new(Code::InvalidEnv, "CNI_COMMAND is not set")),
    };
    (version, outcome)
}

/// A command with its decoded configuration.
struct Plugin<'a, 'c> {
    env: &'a Env,
    conf: NetConf,
    version: Version,
    version_text: String,
    /// The configuration's name.
    name: String,
    /// The switchyard network.
    network: String,
    socket: PathBuf,
    call: &'a mut Call<'c>,
}

impl<'a, 'c> Plugin<'a, 'c> {
    fn new(env: &'a Env, stdin: &[u8], call: &'a mut Call<'c>) -> Result<Self, CniError> {
        let conf = config::parse(stdin)?;
        let version_text = conf.cni_version.clone().ok_or_else(|| {
            CniError::new(
                Code::InvalidConfig,
                "the network configuration has no cniVersion",
            )
        })?;
        let version = Version::parse(&version_text)?;
        let name = conf.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
            CniError::new(Code::InvalidConfig, "the network configuration has no name")
        })?;
        let network = conf.network.clone().unwrap_or_else(|| name.clone());
        if conf.ipam.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(CniError::new(
                Code::UnsupportedField,
                "'ipam' is not supported: switchyard's networks assign addresses themselves (pin one with runtimeConfig.ips or CNI_ARGS IP=)",
            ));
        }
        let socket = api::socket_path(conf.socket.as_deref());
        Ok(Plugin {
            env,
            conf,
            version,
            version_text,
            name,
            network,
            socket,
            call,
        })
    }

    fn run(&mut self, command: &str) -> Result<Option<Value>, CniError> {
        match command {
            "ADD" => self.add().map(Some),
            "DEL" => self.del().map(|()| None),
            "CHECK" => {
                self.version
                    .require(Version::CHECK, "CHECK", &self.version_text)?;
                self.check().map(|()| None)
            }
            "GC" => {
                self.version
                    .require(Version::GC_STATUS, "GC", &self.version_text)?;
                self.gc().map(|()| None)
            }
            "STATUS" => {
                self.version
                    .require(Version::GC_STATUS, "STATUS", &self.version_text)?;
                self.status().map(|()| None)
            }
            other => Err(CniError::new(
                Code::InvalidEnv,
                format!(
                    "CNI_COMMAND '{other}' is not a CNI command (ADD, DEL, CHECK, GC, STATUS, VERSION)"
                ),
            )),
        }
    }

    /// The owner tag of this configuration's attachments (what GC may remove).
    fn owner(&self) -> String {
        format!("cni:{}", self.name)
    }

    /// A request to the daemon; an unreachable daemon is "try again later".
    fn call(&mut self, request: Request) -> Result<Response, CniError> {
        (self.call)(&self.socket, request).map_err(|e| match e {
            ClientError::NotRunning { .. }
            | ClientError::Io { .. }
            | ClientError::Timeout { .. }
            | ClientError::Garbled { .. } => CniError::new(Code::TryAgainLater, e.to_string()),
            ClientError::Api(api) => match api.kind {
                ErrorKind::BadInput => CniError::new(Code::Refused, api.message),
                ErrorKind::Failed => CniError::new(Code::Io, api.message),
            },
        })
    }

    fn add(&mut self) -> Result<Value, CniError> {
        let container = self.env.container()?.to_string();
        let netns = self.env.need(&self.env.netns, "CNI_NETNS")?.to_string();
        let ifname = self.env.ifname()?.to_string();
        let args = Args::parse(self.env.args.as_deref())?;
        let rc = &self.conf.runtime_config;
        let ip = match rc.ips.as_slice() {
            [] => args.ip,
            [one] => Some(one.split('/').next().unwrap_or(one).to_string()),
            more => {
                return Err(CniError::new(
                    Code::UnsupportedField,
                    format!(
                        "runtimeConfig.ips asks for {} addresses; switchyard gives one IPv4 address per interface",
                        more.len()
                    ),
                ))
            }
        };
        if let Some(ip) = &ip {
            if ip.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(CniError::new(
                    Code::UnsupportedField,
                    format!("requested address '{ip}' is not an IPv4 address; switchyard networks are IPv4"),
                ));
            }
        }
        let mac = rc.mac.clone().or(args.mac);
        let publish = rc
            .port_mappings
            .iter()
            .map(config::PortMapping::spec)
            .collect::<Result<Vec<_>, _>>()?;
        let mut aliases = rc
            .aliases
            .as_ref()
            .map(|a| a.for_network(&self.name))
            .unwrap_or_default();
        // Podman names the container only here (its aliases are the short ID).
        if let Some(name) = args.pod_name.filter(|n| !aliases.contains(n)) {
            aliases.push(name);
        }
        self.ensure_network()?;
        let request = Request::EndpointAttach(EndpointAttach {
            container,
            network: self.network.clone(),
            netns,
            ifname,
            ip,
            mac,
            publish,
            aliases,
            owner: Some(self.owner()),
            default_route: self.conf.default_route.unwrap_or(true),
        });
        match self.call(request)? {
            Response::Endpoint(view) => Ok(result::add_result(
                &view,
                self.version,
                &self.version_text,
                self.conf.dns.as_ref(),
            )),
            other => Err(unexpected(&other)),
        }
    }

    /// The network exists, or is created from the configuration's `subnet` (on first use).
    fn ensure_network(&mut self) -> Result<(), CniError> {
        let existing = self.find_network()?;
        match (existing, self.conf.subnet.clone()) {
            (Some(n), Some(subnet)) if n.subnet != subnet => Err(CniError::new(
                Code::InvalidConfig,
                format!(
                    "switchyard network '{}' has subnet {}, but the configuration says {subnet}",
                    self.network, n.subnet
                ),
            )),
            (Some(_), _) => Ok(()),
            (None, None) => Err(CniError::new(
                Code::InvalidConfig,
                format!(
                    "switchyard has no network '{}' and the configuration gives no 'subnet' to create it with",
                    self.network
                ),
            )),
            (None, Some(subnet)) => {
                let create = Request::NetworkCreate(api::NetworkCreate {
                    name: self.network.clone(),
                    subnet: Some(subnet),
                    gateway: self.conf.gateway.clone(),
                    mtu: self.conf.mtu,
                    ..Default::default()
                });
                match self.call(create) {
                    Ok(_) => Ok(()),
                    // Another ADD may have created it meanwhile.
                    Err(e) if e.code == Code::Refused => match self.find_network()? {
                        Some(_) => Ok(()),
                        None => Err(CniError::new(
                            Code::InvalidConfig,
                            format!("creating switchyard network '{}': {}", self.network, e.msg),
                        )),
                    },
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn find_network(&mut self) -> Result<Option<api::NetworkSummary>, CniError> {
        match self.call(Request::NetworkLs)? {
            Response::Networks(list) => Ok(list.into_iter().find(|n| n.name == self.network)),
            other => Err(unexpected(&other)),
        }
    }

    fn del(&mut self) -> Result<(), CniError> {
        let container = self.env.container()?.to_string();
        let ifname = self.env.ifname()?.to_string();
        match self.call(Request::EndpointDetach { container, ifname })? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    fn check(&mut self) -> Result<(), CniError> {
        let container = self.env.container()?.to_string();
        let netns = self.env.need(&self.env.netns, "CNI_NETNS")?.to_string();
        let ifname = self.env.ifname()?.to_string();
        let request = Request::EndpointCheck {
            container: container.clone(),
            ifname: ifname.clone(),
        };
        let (endpoint, mut problems) = match self.call(request)? {
            Response::EndpointCheck { endpoint, problems } => (endpoint, problems),
            other => return Err(unexpected(&other)),
        };
        let Some(e) = endpoint else {
            return Err(CniError::new(
                Code::UnknownContainer,
                format!("switchyard has no interface {ifname} of container {container}"),
            ));
        };
        problems.extend(self.compare(&e, &netns));
        if problems.is_empty() {
            return Ok(());
        }
        Err(CniError::new(
            Code::CheckFailed,
            format!(
                "interface {ifname} of container {container}: {}",
                problems.join("; ")
            ),
        ))
    }

    /// What differs between the daemon's view of the attachment and this call.
    fn compare(&self, e: &EndpointView, netns: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if e.network != self.network {
            problems.push(format!(
                "it is on network '{}', not '{}'",
                e.network, self.network
            ));
        }
        if e.netns != netns {
            problems.push(format!("it is in {}, not {netns}", e.netns));
        }
        let address = format!("{}/{}", e.ip, e.prefix);
        if let Some(prev) = &self.conf.prev_result {
            let given = result::prev_addresses(prev);
            if !given.is_empty() && !given.contains(&address) {
                problems.push(format!(
                    "it has {address}, the previous result says {}",
                    given.join(", ")
                ));
            }
        }
        problems
    }

    fn gc(&mut self) -> Result<(), CniError> {
        let valid = self.conf.valid_attachments.clone().unwrap_or_default();
        let owner = self.owner();
        let list = match self.call(Request::EndpointLs { owner: Some(owner) })? {
            Response::Endpoints(list) => list,
            other => return Err(unexpected(&other)),
        };
        for e in list {
            let keep = valid
                .iter()
                .any(|v| v.container_id == e.container && v.ifname == e.interface);
            if !keep {
                self.call(Request::EndpointDetach {
                    container: e.container,
                    ifname: e.interface,
                })?;
            }
        }
        Ok(())
    }

    /// Ready when the daemon answers and the network exists or can be created.
    fn status(&mut self) -> Result<(), CniError> {
        let socket = self.socket.display().to_string();
        if let Err(e) = self.call(Request::Version) {
            return Err(CniError::new(
                Code::NotAvailableDegraded,
                format!("the switchyard daemon at {socket} is not reachable, so nothing on its networks is forwarded: {}", e.msg),
            ));
        }
        if self.conf.subnet.is_none() && self.find_network()?.is_none() {
            return Err(CniError::new(
                Code::NotAvailable,
                format!(
                    "switchyard has no network '{}' and the configuration gives no 'subnet' to create it with",
                    self.network
                ),
            ));
        }
        Ok(())
    }
}

fn unexpected(r: &Response) -> CniError {
    CniError::new(
        Code::Io,
        format!("the daemon gave an unexpected answer: {r:?}"),
    )
}
