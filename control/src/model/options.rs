//! `network create --opt KEY=VALUE`: Docker's bridge driver options switchyard understands.

use std::collections::BTreeMap;

use super::{bad, parse_ip, validate_ifname};
use crate::api::ApiError;

pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
/// Docker 27's routed mode (`nat` or `routed`; `gateway_mode` for short).
pub const OPT_GATEWAY_MODE: &str = "com.docker.network.bridge.gateway_mode_ipv4";

/// Options `network create --opt` understands, after expanding short forms.
pub(super) struct NetworkOptions {
    pub(super) given: BTreeMap<String, String>,
    pub(super) icc: bool,
    pub(super) masquerade: bool,
    pub(super) bridge_name: Option<String>,
    pub(super) mtu: Option<u32>,
    pub(super) routed: bool,
}

pub(super) fn parse_options(raw: &[String]) -> Result<NetworkOptions, ApiError> {
    let mut o = NetworkOptions {
        given: BTreeMap::new(),
        icc: true,
        masquerade: true,
        bridge_name: None,
        mtu: None,
        routed: false,
    };
    for item in raw {
        let Some((key, value)) = item.split_once('=') else {
            return Err(bad(format!("invalid option '{item}': expected KEY=VALUE")));
        };
        let key = match key {
            "icc" => OPT_ICC,
            "mtu" => OPT_MTU,
            "gateway_mode" => OPT_GATEWAY_MODE,
            k => k,
        };
        if o.given.insert(key.to_string(), value.to_string()).is_some() {
            return Err(bad(format!("option {key} is given twice")));
        }
        match key {
            OPT_ICC => o.icc = parse_bool(key, value)?,
            OPT_MASQUERADE => o.masquerade = parse_bool(key, value)?,
            OPT_MTU => o.mtu = Some(parse_mtu(value)?),
            OPT_GATEWAY_MODE => {
                o.routed = match value {
                    "nat" => false,
                    "routed" => true,
                    _ => {
                        return Err(bad(format!(
                            "invalid value '{value}' for option {key}: expected nat or routed"
                        )))
                    }
                }
            }
            OPT_BRIDGE_NAME => {
                validate_ifname(value)?;
                o.bridge_name = Some(value.to_string());
            }
            OPT_HOST_BINDING => {
                parse_ip("host binding address", value)?;
            }
            // Checked with the driver (`overlay::State::overlay_from_options`).
            k if super::overlay::OVERLAY_OPTIONS.contains(&k) => {}
            _ => {
                return Err(bad(format!(
                    "unknown option '{key}': switchyard understands icc, mtu, gateway_mode, vni, vxlan_port, peers (overlay), {OPT_ICC}, {OPT_MASQUERADE}, {OPT_HOST_BINDING}, {OPT_BRIDGE_NAME}, {OPT_MTU}, {OPT_GATEWAY_MODE}"
                )))
            }
        }
    }
    Ok(o)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(format!(
            "invalid value '{value}' for option {key}: expected true or false"
        ))),
    }
}

pub(super) fn parse_mtu(value: &str) -> Result<u32, ApiError> {
    match value.parse::<u32>() {
        Ok(m) if (68..=65535).contains(&m) => Ok(m),
        _ => Err(bad(format!(
            "invalid MTU '{value}': expected a number from 68 to 65535"
        ))),
    }
}
