//! Counters and tables for people and tools: `switchyard stats`, `switchyard fdb`, and the
//! Prometheus text the daemon serves with `--metrics`.
//!
//! Everything is built from one engine `Snapshot` plus the names the daemon knows (ports by
//! container, networks by domain), so the three views always agree.

use std::collections::BTreeMap;
use std::fmt::Write;

use dataplane::CtStats;
use dataplane::DomainId;
use dataplane::{DropReason, StageId};
use dataplane::{PortState, Snapshot};

use super::names::Names;
use crate::api::stats::{ConflictView, FdbEntry, PortStats, Stats};

pub fn stats(
    s: &Snapshot,
    ct: &CtStats,
    names: &Names,
    networks: &BTreeMap<DomainId, String>,
) -> Stats {
    let mut stages: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for stage in StageId::ALL {
        stages.entry(stage.name().to_string()).or_default();
    }
    for r in DropReason::ALL {
        stages
            .entry(r.stage().name().to_string())
            .or_default()
            .insert(r.name().to_string(), 0);
    }
    let ports = s
        .ports
        .iter()
        .map(|p| {
            let mut drops = BTreeMap::new();
            for r in DropReason::ALL {
                let n = p.counters.dropped(*r);
                drops.insert(r.name().to_string(), n);
                *stages
                    .get_mut(r.stage().name())
                    .and_then(|m| m.get_mut(r.name()))
                    .expect("every reason listed") += n;
            }
            PortStats {
                name: names.port(p.id),
                interface: p.name.clone(),
                network: networks
                    .get(&p.domain)
                    .cloned()
                    .unwrap_or_else(|| "-".into()),
                kind: p.kind.to_string(),
                state: match p.state {
                    PortState::Up => "up".into(),
                    PortState::Gone => "gone".into(),
                },
                rx_packets: p.counters.rx_packets,
                rx_bytes: p.counters.rx_bytes,
                tx_packets: p.counters.tx_packets,
                tx_bytes: p.counters.tx_bytes,
                drops,
            }
        })
        .collect();
    Stats {
        ports,
        stages,
        macs: s.macs.len(),
        mac_learned: s.cam.learned,
        mac_moved: s.cam.moved,
        mac_aged: s.cam.aged,
        mac_evicted: s.cam.evicted_port_limit + s.cam.evicted_table_full,
        conntrack_entries: ct.entries,
        conntrack_max: ct.max_entries,
        conntrack_created: ct.created,
        conntrack_expired: ct.expired,
        conntrack_evicted: ct.evicted,
        workers: s.workers,
        worker_updates_lost: s.peer_lost,
        uptime_ms: s.uptime_ms,
        address_conflicts: s
            .conflicts
            .iter()
            .map(|c| ConflictView {
                ip: c.ip.to_string(),
                mac: c.mac.to_string(),
                owner: names
                    .owners
                    .get(&c.ip)
                    .cloned()
                    .unwrap_or_else(|| "?".into()),
                port: names.port(c.port),
                seconds_ago: s.uptime_ms.saturating_sub(c.at_ms) / 1000,
            })
            .collect(),
        dns: BTreeMap::new(),
        vxlan: BTreeMap::new(),
    }
}

pub fn fdb(s: &Snapshot, names: &Names, networks: &BTreeMap<DomainId, String>) -> Vec<FdbEntry> {
    s.macs
        .iter()
        .map(|m| FdbEntry {
            network: networks
                .get(&m.domain)
                .cloned()
                .unwrap_or_else(|| "-".into()),
            mac: m.mac.to_string(),
            port: names.port(m.port),
            vlan: m.vlan.0,
            age_s: m.age_ms as f64 / 1000.0,
            is_static: m.is_static,
        })
        .collect()
}

/// `switchyard stats` as text: a table of ports, then every non-zero drop by stage and reason.
pub fn render_stats(st: &Stats) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<10} {:<6} {:>12} {:>14} {:>12} {:>14} {:>8}",
        "PORT", "NETWORK", "STATE", "RX_PACKETS", "RX_BYTES", "TX_PACKETS", "TX_BYTES", "DROPS"
    );
    for p in &st.ports {
        let total: u64 = p.drops.values().sum();
        let _ = writeln!(
            out,
            "{:<20} {:<10} {:<6} {:>12} {:>14} {:>12} {:>14} {:>8}",
            p.name, p.network, p.state, p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes, total
        );
        let reasons: Vec<String> = p
            .drops
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        if !reasons.is_empty() {
            let _ = writeln!(out, "    {}", reasons.join(" "));
        }
    }
    let _ = writeln!(out, "Drops by stage:");
    for (stage, reasons) in &st.stages {
        let total: u64 = reasons.values().sum();
        let detail: Vec<String> = reasons
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        let _ = writeln!(out, "  {stage:<11} {total:>10}  {}", detail.join(" "));
    }
    let _ = writeln!(
        out,
        "MAC table: {} entries (learned {}, moved {}, aged {}, evicted {})",
        st.macs, st.mac_learned, st.mac_moved, st.mac_aged, st.mac_evicted
    );
    for c in &st.address_conflicts {
        let _ = writeln!(
            out,
            "Address conflict: {} of {} is claimed by {} on {} ({}s ago)",
            c.ip, c.owner, c.mac, c.port, c.seconds_ago
        );
    }
    let _ = writeln!(
        out,
        "Connections: {} of {} (created {}, expired {}, evicted {})",
        st.conntrack_entries,
        st.conntrack_max,
        st.conntrack_created,
        st.conntrack_expired,
        st.conntrack_evicted
    );
    let _ = writeln!(
        out,
        "Workers: {} (table updates lost between them: {})",
        st.workers, st.worker_updates_lost
    );
    if !st.dns.is_empty() {
        let counts: Vec<String> = st.dns.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "DNS: {}", counts.join(" "));
    }
    if !st.vxlan.is_empty() {
        let counts: Vec<String> = st.vxlan.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "VXLAN drops: {}", counts.join(" "));
    }
    out
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition format (version 0.0.4).
pub fn prometheus(st: &Stats) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let per_port = |f: &dyn Fn(&PortStats) -> u64| -> Vec<(String, u64)> {
        st.ports
            .iter()
            .map(|p| {
                (
                    format!(
                        "{{port=\"{}\",interface=\"{}\",network=\"{}\"}}",
                        label(&p.name),
                        label(&p.interface),
                        label(&p.network)
                    ),
                    f(p),
                )
            })
            .collect()
    };
    type Counter = fn(&PortStats) -> u64;
    let port_counters: [(&str, &str, Counter); 4] = [
        ("rx_packets", "Frames received on a port.", |p| p.rx_packets),
        ("rx_bytes", "Bytes received on a port.", |p| p.rx_bytes),
        ("tx_packets", "Frames sent out of a port.", |p| p.tx_packets),
        ("tx_bytes", "Bytes sent out of a port.", |p| p.tx_bytes),
    ];
    for (counter, help, value) in port_counters {
        family(
            &format!("switchyard_port_{counter}_total"),
            "counter",
            help,
            per_port(&value),
        );
    }
    let mut drops = Vec::new();
    for p in &st.ports {
        for (reason, &n) in &p.drops {
            let stage = DropReason::ALL
                .iter()
                .find(|r| r.name() == reason)
                .map(|r| r.stage().name())
                .unwrap_or("?");
            drops.push((
                format!(
                    "{{port=\"{}\",network=\"{}\",stage=\"{stage}\",reason=\"{reason}\"}}",
                    label(&p.name),
                    label(&p.network)
                ),
                n,
            ));
        }
    }
    family(
        "switchyard_port_drops_total",
        "counter",
        "Frames dropped, by the port they came from (or were to leave by), stage and reason.",
        drops,
    );
    family(
        "switchyard_mac_entries",
        "gauge",
        "Entries in the MAC table.",
        vec![(String::new(), st.macs as u64)],
    );
    family(
        "switchyard_mac_evicted_total",
        "counter",
        "MAC entries evicted because a limit was reached.",
        vec![(String::new(), st.mac_evicted)],
    );
    family(
        "switchyard_conntrack_entries",
        "gauge",
        "Tracked NAT connections.",
        vec![(String::new(), st.conntrack_entries as u64)],
    );
    family(
        "switchyard_conntrack_evicted_total",
        "counter",
        "Tracked connections evicted because the table was full.",
        vec![(String::new(), st.conntrack_evicted)],
    );
    family(
        "switchyard_workers",
        "gauge",
        "Engine workers forwarding frames, each with a replica of the tables.",
        vec![(String::new(), st.workers as u64)],
    );
    family(
        "switchyard_worker_updates_lost_total",
        "counter",
        "Table changes a worker could not pass to another because its queue was full.",
        vec![(String::new(), st.worker_updates_lost)],
    );
    family(
        "switchyard_uptime_seconds",
        "gauge",
        "Seconds since the engine started.",
        vec![(String::new(), st.uptime_ms / 1000)],
    );
    if !st.dns.is_empty() {
        family(
            "switchyard_dns_total",
            "counter",
            "The embedded DNS resolver's counters (see `switchyard stats --help`).",
            st.dns
                .iter()
                .map(|(k, &v)| (format!("{{counter=\"{}\"}}", label(k)), v))
                .collect(),
        );
    }
    if !st.vxlan.is_empty() {
        family(
            "switchyard_vxlan_dropped_total",
            "counter",
            "VXLAN datagrams from the underlay dropped before any port, by reason.",
            st.vxlan
                .iter()
                .map(|(k, &v)| (format!("{{reason=\"{}\"}}", label(k)), v))
                .collect(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures::{names, snapshot};
    use crate::render::golden;

    #[test]
    fn renderings_match_the_golden_files() {
        let s = snapshot();
        let networks = BTreeMap::from([
            (DomainId(0), "uplink".to_string()),
            (DomainId(1), "bridge".to_string()),
        ]);
        let st = stats(&s, &s.conntrack, &names(), &networks);
        golden("stats.txt", &render_stats(&st));
        golden("stats.prom", &prometheus(&st));
        let fdb = fdb(&s, &names(), &networks);
        golden("fdb.json", &serde_json::to_string_pretty(&fdb).unwrap());
    }

    #[test]
    fn dns_counters_show_when_the_daemon_has_a_resolver() {
        let s = snapshot();
        let mut st = stats(&s, &s.conntrack, &names(), &BTreeMap::new());
        st.dns = BTreeMap::from([("forwarded".to_string(), 3), ("malformed".to_string(), 1)]);
        assert!(render_stats(&st).ends_with("DNS: forwarded=3 malformed=1\n"));
        assert!(prometheus(&st).contains("switchyard_dns_total{counter=\"forwarded\"} 3\n"));
    }

    #[test]
    fn vxlan_drops_show_when_the_daemon_has_an_overlay() {
        let s = snapshot();
        let mut st = stats(&s, &s.conntrack, &names(), &BTreeMap::new());
        assert!(!render_stats(&st).contains("VXLAN"));
        assert!(!prometheus(&st).contains("vxlan"));
        st.vxlan = BTreeMap::from([("bad-flags".to_string(), 2), ("truncated".to_string(), 0)]);
        assert!(render_stats(&st).ends_with("VXLAN drops: bad-flags=2 truncated=0\n"));
        assert!(
            prometheus(&st).contains("switchyard_vxlan_dropped_total{reason=\"bad-flags\"} 2\n")
        );
    }
}
