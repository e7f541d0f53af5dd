//! What a runtime hands the plugin: the `CNI_*` environment and the network configuration on
//! stdin (one plugin object of a conflist, with `runtimeConfig`, `prevResult` and, for GC,
//! `cni.dev/valid-attachments` inserted by the runtime). Parsing only: what the values mean is
//! decided in `mod.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::error::{CniError, Code};

/// The `CNI_*` variables, as given (empty ones are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    pub command: Option<String>,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Option<String>,
    pub path: Option<String>,
}

impl Env {
    /// Reads the variables through `get` (the process environment in `main`).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Env {
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        Env {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: var("CNI_ARGS"),
            path: var("CNI_PATH"),
        }
    }

    /// A variable the command needs.
    pub fn need<'a>(&self, value: &'a Option<String>, name: &str) -> Result<&'a str, CniError> {
        let command = self.command.as_deref().unwrap_or("?");
        value.as_deref().ok_or_else(|| {
            CniError::new(
                Code::InvalidEnv,
                format!("{name} is not set; {command} needs it"),
            )
        })
    }

    /// `CNI_CONTAINERID`, checked against the spec's rule (a letter or digit, then letters,
    /// digits, `_`, `.`, `-`).
    pub fn container(&self) -> Result<&str, CniError> {
        let id = self.need(&self.container_id, "CNI_CONTAINERID")?;
        let mut chars = id.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(CniError::new(
                Code::InvalidEnv,
                format!("CNI_CONTAINERID '{id}' is not a valid container ID (a letter or digit, then letters, digits, '_', '.', '-')"),
            ));
        }
        if id.len() > 64 {
            return Err(CniError::new(
                Code::InvalidEnv,
                format!("CNI_CONTAINERID '{id}' is longer than switchyard's 64 characters"),
            ));
        }
        Ok(id)
    }

    /// `CNI_IFNAME`, which must be a valid Linux interface name.
    pub fn ifname(&self) -> Result<&str, CniError> {
        let name = self.need(&self.ifname, "CNI_IFNAME")?;
        if name.len() > 15 || name == "." || name == ".." || name.contains(['/', ':', ' ']) {
            return Err(CniError::new(
                Code::InvalidEnv,
                format!(
                    "CNI_IFNAME '{name}' is not a valid interface name (1-15 characters, no '/', ':' or spaces)"
                ),
            ));
        }
        Ok(name)
    }
}

/// `CNI_ARGS` that switchyard reads: `IP=` and `MAC=` pin the address; `K8S_POD_NAME` (which
/// podman sets to the container's name) is an alias; other `K8S_*` and `IgnoreUnknown` are known
/// and ignored; anything else is refused unless `IgnoreUnknown=1`
/// (the convention of the reference plugins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub ip: Option<String>,
    pub mac: Option<String>,
    /// The pod's (podman: the container's) name, one more name of the container.
    pub pod_name: Option<String>,
}

impl Args {
    pub fn parse(text: Option<&str>) -> Result<Args, CniError> {
        let mut args = Args::default();
        let Some(text) = text else {
            return Ok(args);
        };
        let mut unknown = Vec::new();
        let mut ignore_unknown = false;
        for pair in text.split(';').filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(CniError::new(
                    Code::InvalidEnv,
                    format!("CNI_ARGS item '{pair}' is not KEY=VALUE"),
                ));
            };
            match key {
                "IP" => args.ip = Some(value.to_string()),
                "MAC" => args.mac = Some(value.to_string()),
                "K8S_POD_NAME" => args.pod_name = Some(value.to_string()),
                "IgnoreUnknown" => {
                    ignore_unknown = matches!(value.to_ascii_lowercase().as_str(), "1" | "true")
                }
                k if k.starts_with("K8S_") => {}
                k => unknown.push(k.to_string()),
            }
        }
        if !unknown.is_empty() && !ignore_unknown {
            return Err(CniError::new(
                Code::UnsupportedField,
                format!(
                    "CNI_ARGS has keys switchyard does not know: {} (it reads IP and MAC; add IgnoreUnknown=1 to pass others)",
                    unknown.join(", ")
                ),
            ));
        }
        Ok(args)
    }
}

/// The plugin's configuration object, as the runtime passes it on stdin.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: Option<String>,
    /// The network configuration's name (the conflist's).
    pub name: Option<String>,
    /// The switchyard network; default: `name`.
    pub network: Option<String>,
    /// Create the network with this subnet (and gateway, MTU) when it does not exist.
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub mtu: Option<u32>,
    /// The daemon's socket; default: `$SWITCHYARD_SOCKET`, else the daemon's default.
    pub socket: Option<PathBuf>,
    /// Give the container its default route via the gateway (default true).
    pub default_route: Option<bool>,
    /// Refused when set: switchyard's networks allocate addresses themselves.
    pub ipam: Option<Value>,
    pub dns: Option<Dns>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    pub prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// The capabilities switchyard declares: `portMappings`, `ips`, `mac`, `aliases`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default)]
    pub ips: Vec<String>,
    pub mac: Option<String>,
    pub aliases: Option<Aliases>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
}

impl PortMapping {
    /// The `-p` spec the daemon reads: `[HOSTIP:]HOSTPORT:PORT/PROTO`.
    pub fn spec(&self) -> Result<String, CniError> {
        let protocol = self
            .protocol
            .as_deref()
            .unwrap_or("tcp")
            .to_ascii_lowercase();
        if protocol != "tcp" && protocol != "udp" {
            return Err(CniError::new(
                Code::UnsupportedField,
                format!(
                    "runtimeConfig.portMappings: protocol '{protocol}' is not supported (tcp or udp)"
                ),
            ));
        }
        if self.host_port == 0 || self.container_port == 0 {
            return Err(CniError::new(
                Code::InvalidConfig,
                format!(
                    "runtimeConfig.portMappings: ports must be 1-65535 (hostPort {}, containerPort {})",
                    self.host_port, self.container_port
                ),
            ));
        }
        let host = match self.host_ip.as_deref() {
            None | Some("") => String::new(),
            Some(ip) if ip.contains(':') => {
                return Err(CniError::new(
                    Code::UnsupportedField,
                    format!(
                    "runtimeConfig.portMappings: hostIP {ip} is IPv6; switchyard publishes on IPv4"
                ),
                ))
            }
            Some(ip) => format!("{ip}:"),
        };
        Ok(format!(
            "{host}{}:{}/{protocol}",
            self.host_port, self.container_port
        ))
    }
}

/// `aliases` as a list, or (podman) as a map from network name to list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Aliases {
    List(Vec<String>),
    ByNetwork(BTreeMap<String, Vec<String>>),
}

impl Aliases {
    /// The aliases for the network configuration `name`.
    pub fn for_network(&self, name: &str) -> Vec<String> {
        match self {
            Aliases::List(l) => l.clone(),
            Aliases::ByNetwork(m) => m.get(name).cloned().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The configuration on stdin; a decoding failure names what was wrong.
pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    if stdin.iter().all(u8::is_ascii_whitespace) {
        return Err(CniError::new(
            Code::Decode,
            "no network configuration on stdin",
        ));
    }
    serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            Code::Decode,
            format!("cannot decode the network configuration on stdin: {e}"),
        )
    })
}

/// Only the version of a configuration, read even when the rest does not decode, so that an
/// error can answer in the version asked.
pub fn version_of(stdin: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct VersionOnly {
        cni_version: Option<String>,
    }
    serde_json::from_slice::<VersionOnly>(stdin)
        .ok()
        .and_then(|v| v.cni_version)
}
