//! `switchyard stats` and `switchyard fdb` as data: counters per port and per stage, the MAC table,
//! connection counters and address conflicts. Built by `render::stats` from an engine snapshot and
//! the names the daemon knows; printed by the CLI, served as Prometheus text by the daemon.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    pub ports: Vec<PortStats>,
    /// Drops by stage, then by reason (every reason, zero or not: tools get a stable shape).
    pub stages: BTreeMap<String, BTreeMap<String, u64>>,
    pub macs: usize,
    pub mac_learned: u64,
    pub mac_moved: u64,
    pub mac_aged: u64,
    pub mac_evicted: u64,
    pub conntrack_entries: usize,
    pub conntrack_max: usize,
    pub conntrack_created: u64,
    pub conntrack_expired: u64,
    pub conntrack_evicted: u64,
    /// Engine workers (threads forwarding frames, each with a replica of the tables).
    #[serde(default)]
    pub workers: usize,
    /// Table changes one worker could not pass to another because its queue was full (that
    /// worker's replica missed them: a MAC flooded until seen again, a connection unknown there).
    #[serde(default)]
    pub worker_updates_lost: u64,
    pub uptime_ms: u64,
    /// Recent claims of local containers' addresses by other hosts (ARP on a parent port).
    pub address_conflicts: Vec<ConflictView>,
    /// The embedded DNS resolver's counters by name (every counter, zero or not).
    #[serde(default)]
    pub dns: BTreeMap<String, u64>,
    /// VXLAN datagrams from the underlay dropped before any port, by reason (truncated,
    /// bad-flags, unknown-vni, unknown-host, stash-full; every reason, zero or not), summed over
    /// the daemon's VXLAN sockets; empty without one. Encapsulation failures are egress drops
    /// of the `vxlan:HOST` ports (tx-too-big, link-down, tx-busy, tx-error).
    #[serde(default)]
    pub vxlan: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConflictView {
    pub ip: String,
    /// The other host's MAC.
    pub mac: String,
    /// The local container holding the address.
    pub owner: String,
    pub port: String,
    pub seconds_ago: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortStats {
    pub name: String,
    pub interface: String,
    pub network: String,
    pub kind: String,
    pub state: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Every drop reason with its count (zeros included).
    pub drops: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FdbEntry {
    pub network: String,
    pub mac: String,
    pub port: String,
    pub vlan: u16,
    /// Seconds since last seen (0 for static entries).
    pub age_s: f64,
    pub is_static: bool,
}
