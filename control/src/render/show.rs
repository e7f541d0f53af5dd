//! Plain-text rendering of engine snapshots: the MAC table and the port counters.

use std::fmt::Write;

use dataplane::{PortState, Snapshot};

fn age(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// The MAC table and counters, as printed on SIGUSR1 and on exit.
pub fn report(s: &Snapshot) -> String {
    let mut out = String::new();
    let name = |id| {
        s.ports
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.name.as_str())
            .unwrap_or("?")
    };
    let aging = if s.aging_ms == u64::MAX {
        "never".to_string()
    } else {
        age(s.aging_ms)
    };
    let _ = writeln!(out, "MAC table: {} entries (aging {aging})", s.macs.len());
    let _ = writeln!(
        out,
        "  {:<6} {:<5} {:<17} {:<15} {:>8} TYPE",
        "DOMAIN", "VLAN", "MAC", "PORT", "AGE"
    );
    for m in &s.macs {
        let kind = if m.is_static { "static" } else { "learned" };
        let _ = writeln!(
            out,
            "  {:<6} {:<5} {:<17} {:<15} {:>8} {kind}",
            m.domain.0,
            m.vlan.0,
            m.mac.to_string(),
            name(m.port),
            if m.is_static {
                "-".to_string()
            } else {
                age(m.age_ms)
            }
        );
    }
    let _ = writeln!(out, "Ports:");
    let _ = writeln!(
        out,
        "  {:<4} {:<15} {:<9} {:<5} {:>12} {:>14} {:>12} {:>14} {:>8}",
        "ID", "NAME", "KIND", "STATE", "RX_PACKETS", "RX_BYTES", "TX_PACKETS", "TX_BYTES", "DROPS"
    );
    for p in &s.ports {
        let c = &p.counters;
        let state = match p.state {
            PortState::Up => "up",
            PortState::Gone => "gone",
        };
        let _ = writeln!(
            out,
            "  {:<4} {:<15} {:<9} {:<5} {:>12} {:>14} {:>12} {:>14} {:>8}",
            p.id.0,
            p.name,
            p.kind.to_string(),
            state,
            c.rx_packets,
            c.rx_bytes,
            c.tx_packets,
            c.tx_bytes,
            c.total_drops()
        );
        let mut extra: Vec<String> = c.drop_reasons().map(|(r, n)| format!("{r}={n}")).collect();
        if c.rx_gso > 0 {
            extra.push(format!("rx-gso={}", c.rx_gso));
        }
        if c.tx_segmented > 0 {
            extra.push(format!("tx-segmented={}", c.tx_segmented));
        }
        if c.tx_csum_finished > 0 {
            extra.push(format!("tx-csum-finished={}", c.tx_csum_finished));
        }
        if !extra.is_empty() {
            let _ = writeln!(out, "       {}", extra.join(" "));
        }
    }
    let cam = &s.cam;
    let _ = writeln!(
        out,
        "MAC learning: learned={} moved={} aged={} evicted-port-limit={} evicted-table-full={}",
        cam.learned, cam.moved, cam.aged, cam.evicted_port_limit, cam.evicted_table_full
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_report_matches_its_golden_file() {
        crate::render::golden(
            "report.txt",
            &super::report(&crate::render::fixtures::snapshot()),
        );
    }
}
