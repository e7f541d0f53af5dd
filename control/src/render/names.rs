//! What the daemon knows to name ports and MACs, for the renderers of traces and counters.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use dataplane::{MacAddr, PortId};

/// What the daemon knows to name things: ports ("web", "web:eth1", "host:bridge", "uplink") and
/// MACs (their owners).
#[derive(Default)]
pub struct Names {
    pub ports: HashMap<PortId, String>,
    pub macs: HashMap<[u8; 6], String>,
    /// Containers by their addresses.
    pub owners: HashMap<Ipv4Addr, String>,
}

impl Names {
    pub fn port(&self, p: PortId) -> String {
        self.ports
            .get(&p)
            .cloned()
            .unwrap_or_else(|| format!("port {}", p.0))
    }

    pub fn mac(&self, m: MacAddr) -> String {
        if m.is_broadcast() {
            return "broadcast".into();
        }
        match self.macs.get(&m.0) {
            Some(owner) => format!("{m} ({owner})"),
            None => m.to_string(),
        }
    }
}
