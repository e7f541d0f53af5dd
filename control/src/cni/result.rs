//! Spec versions and the ADD result, written in the version the configuration asks for.
//!
//! The versions differ where switchyard's results touch them: before 1.0.0 every `ips` entry
//! carries `"version":"4"` (0.3.x and 0.4.0 require it; 1.0.0 removed it), and interfaces have
//! an `mtu` from 1.1.0 on. CHECK exists from 0.4.0, GC and STATUS from 1.1.0.

use std::net::Ipv4Addr;

use serde::Serialize;
use serde_json::Value;

use super::config::Dns;
use super::error::{CniError, Code};
use crate::api::EndpointView;

/// Every version switchyard reads and writes, oldest first (VERSION lists them).
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The newest: answers to a configuration that names no version (VERSION only).
pub const LATEST: &str = "1.1.0";

/// A supported version as a comparable number: 0.3.0 -> (0, 3, 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(u32, u32, u32);

impl Version {
    pub const CHECK: Version = Version(0, 4, 0);
    pub const V1: Version = Version(1, 0, 0);
    pub const GC_STATUS: Version = Version(1, 1, 0);

    /// `text` if switchyard speaks it, else error 1 listing what it speaks.
    pub fn parse(text: &str) -> Result<Version, CniError> {
        if !SUPPORTED.contains(&text) {
            return Err(CniError::new(
                Code::IncompatibleVersion,
                format!(
                    "cniVersion {text} is not supported by switchyard (it speaks {})",
                    SUPPORTED.join(", ")
                ),
            ));
        }
        let mut parts = text.split('.').map(|p| p.parse().unwrap_or(0));
        let mut next = || parts.next().unwrap_or(0);
        Ok(Version(next(), next(), next()))
    }

    /// Error 1 unless this version has `command` (which arrived in `since`).
    pub fn require(self, since: Version, command: &str, text: &str) -> Result<(), CniError> {
        if self < since {
            return Err(CniError::new(
                Code::IncompatibleVersion,
                format!(
                    "{command} needs cniVersion {}.{}.{} or later; the configuration says {text}",
                    since.0, since.1, since.2
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Interface {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sandbox: Option<String>,
}

#[derive(Serialize)]
struct IpConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    address: String,
    gateway: Ipv4Addr,
    interface: usize,
}

#[derive(Serialize)]
struct Route {
    dst: &'static str,
    gw: Ipv4Addr,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddResult {
    cni_version: String,
    interfaces: Vec<Interface>,
    ips: Vec<IpConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    dns: Dns,
}

/// The ADD result for attached interface `e`: the host end and the container's interface (with
/// its sandbox), its address with the gateway, the default route if it was given, and the
/// network's resolver (the gateway) merged with the configuration's `dns`.
pub fn add_result(e: &EndpointView, version: Version, text: &str, dns: Option<&Dns>) -> Value {
    let mtu = (version >= Version::GC_STATUS).then_some(e.mtu);
    let mut resolver = dns.cloned().unwrap_or_default();
    let gateway = e.gateway.to_string();
    if !resolver.nameservers.contains(&gateway) {
        resolver.nameservers.insert(0, gateway);
    }
    let result = AddResult {
        cni_version: text.to_string(),
        interfaces: vec![
            Interface {
                name: e.host_interface.clone(),
                mac: None,
                mtu,
                sandbox: None,
            },
            Interface {
                name: e.interface.clone(),
                mac: Some(e.mac.clone()),
                mtu,
                sandbox: Some(e.netns.clone()),
            },
        ],
        ips: vec![IpConfig {
            version: (version < Version::V1).then_some("4"),
            address: format!("{}/{}", e.ip, e.prefix),
            gateway: e.gateway,
            interface: 1,
        }],
        routes: if e.default_route {
            vec![Route {
                dst: "0.0.0.0/0",
                gw: e.gateway,
            }]
        } else {
            Vec::new()
        },
        dns: resolver,
    };
    serde_json::to_value(result).expect("a result always serializes")
}

/// The VERSION answer.
pub fn version_result(text: &str) -> Value {
    serde_json::json!({ "cniVersion": text, "supportedVersions": SUPPORTED })
}

/// The addresses (`a.b.c.d/n`) a previous result gave, to compare in CHECK.
pub fn prev_addresses(prev: &Value) -> Vec<String> {
    prev.get("ips")
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip.get("address")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
