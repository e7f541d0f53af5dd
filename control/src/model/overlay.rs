//! Overlay networks (`network create --driver overlay`): one network across hosts, carried in
//! VXLAN over the underlay between the daemons' `--advertise-addr` addresses.
//!
//! What the model holds per network: its VNI (one per network), the UDP port both ends use, and
//! the static remote hosts (`--opt peers=IP,...`: the hosts a network is flooded to and accepted
//! from, for a network set up by hand or toward a Linux vxlan device). The MTU defaults to 1450:
//! a 1500-byte underlay minus VXLAN's 50 bytes; the daemon refuses one its underlay cannot carry
//! (`Network::check_underlay`, at create and at start-up).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{bad, parse_ip, Network, State};
use crate::api::ApiError;

/// `--opt vni=N`: the network's VXLAN Network Identifier (default: the lowest free from 256, the
/// start of Docker's range).
pub const OPT_VNI: &str = "vni";
/// `--opt vxlan_port=P`: the UDP port (default 4789, IANA's; Linux's default is 8472).
pub const OPT_VXLAN_PORT: &str = "vxlan_port";
/// `--opt peers=IP[,IP...]`: static remote hosts (their underlay addresses).
pub const OPT_PEERS: &str = "peers";

/// The options only overlay networks take.
pub const OVERLAY_OPTIONS: [&str; 3] = [OPT_VNI, OPT_VXLAN_PORT, OPT_PEERS];

/// VXLAN's cost on an IPv4 underlay (outer IPv4, UDP, VXLAN and the inner Ethernet header).
pub const OVERHEAD: u32 = 50;
/// The default MTU of an overlay network: a 1500-byte underlay's.
pub const DEFAULT_OVERLAY_MTU: u32 = 1500 - OVERHEAD;
/// IANA's VXLAN port.
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
const FIRST_VNI: u32 = 256;
const MAX_VNI: u32 = (1 << 24) - 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    pub vni: u32,
    pub udp_port: u16,
    /// Static remote hosts, by underlay address, in the order given.
    #[serde(default)]
    pub peers: Vec<Ipv4Addr>,
}

/// What the daemon's underlay is (`--advertise-addr` and its interface's MTU). Not part of the
/// state: the daemon is started with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Underlay {
    pub ip: Ipv4Addr,
    pub mtu: u32,
}

/// The driver `network create --driver` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Bridge,
    Overlay,
}

pub(super) fn parse_driver(driver: Option<&str>) -> Result<Driver, ApiError> {
    match driver {
        None | Some("bridge") | Some("switchyard") => Ok(Driver::Bridge),
        Some("overlay") => Ok(Driver::Overlay),
        Some(other) => Err(bad(format!(
            "unknown network driver '{other}': switchyard has bridge (the default) and overlay"
        ))),
    }
}

impl State {
    /// The overlay settings of a new network from its options (`given`: every `--opt` as typed,
    /// short keys included); `None` for a bridge network, which must not have them.
    pub(super) fn overlay_from_options(
        &self,
        driver: Driver,
        given: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<Overlay>, ApiError> {
        if driver == Driver::Bridge {
            if let Some(key) = OVERLAY_OPTIONS.iter().find(|k| given.contains_key(**k)) {
                return Err(bad(format!("option {key} needs --driver overlay")));
            }
            return Ok(None);
        }
        let udp_port = match given.get(OPT_VXLAN_PORT) {
            None => DEFAULT_VXLAN_PORT,
            Some(v) => match v.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(bad(format!(
                        "invalid {OPT_VXLAN_PORT} '{v}': expected a UDP port from 1 to 65535"
                    )))
                }
            },
        };
        let used: Vec<u32> = self
            .networks
            .values()
            .filter_map(|n| n.overlay.as_ref().map(|o| o.vni))
            .collect();
        let vni = match given.get(OPT_VNI) {
            Some(v) => {
                let vni = match v.parse::<u32>() {
                    Ok(n) if (1..=MAX_VNI).contains(&n) => n,
                    _ => {
                        return Err(bad(format!(
                            "invalid {OPT_VNI} '{v}': expected a number from 1 to {MAX_VNI}"
                        )))
                    }
                };
                if let Some(n) = self
                    .networks
                    .values()
                    .find(|n| n.overlay.as_ref().is_some_and(|o| o.vni == vni))
                {
                    return Err(bad(format!(
                        "VNI {vni} is already network '{}''s; choose another {OPT_VNI}",
                        n.name
                    )));
                }
                vni
            }
            None => (FIRST_VNI..=MAX_VNI)
                .find(|v| !used.contains(v))
                .ok_or_else(|| bad("no free VNI"))?,
        };
        let mut peers = Vec::new();
        if let Some(list) = given.get(OPT_PEERS) {
            for item in list.split(',').filter(|s| !s.is_empty()) {
                let ip = parse_ip("peer address", item)?;
                if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
                    return Err(bad(format!(
                        "invalid peer address '{item}': expected a host's unicast address"
                    )));
                }
                if peers.contains(&ip) {
                    return Err(bad(format!("peer {ip} is given twice")));
                }
                peers.push(ip);
            }
        }
        Ok(Some(Overlay {
            vni,
            udp_port,
            peers,
        }))
    }
}

impl Network {
    /// The driver's name as `network ls` and `inspect` show it.
    pub fn driver(&self) -> &'static str {
        if self.overlay.is_some() {
            "overlay"
        } else {
            super::view::DRIVER
        }
    }

    /// Refuses an overlay network the daemon's underlay cannot carry: no `--advertise-addr`, a
    /// peer that is the daemon's own address, or an MTU above the underlay's minus 50. Checked at
    /// `network create` and, with the same words, at start-up.
    pub fn check_underlay(&self, underlay: Option<&Underlay>) -> Result<(), ApiError> {
        let Some(overlay) = &self.overlay else {
            return Ok(());
        };
        let Some(u) = underlay else {
            return Err(bad(format!(
                "overlay network '{}' needs the daemon started with --advertise-addr IP (its address on the underlay)",
                self.name
            )));
        };
        if overlay.peers.contains(&u.ip) {
            return Err(bad(format!(
                "peer {} of network '{}' is this host's own --advertise-addr",
                u.ip, self.name
            )));
        }
        if self.mtu + OVERHEAD > u.mtu {
            return Err(bad(format!(
                "MTU {} of overlay network '{}' does not fit the underlay's {} (VXLAN takes {OVERHEAD} bytes); use --mtu {} or less",
                self.mtu,
                self.name,
                u.mtu,
                u.mtu.saturating_sub(OVERHEAD)
            )));
        }
        Ok(())
    }
}
