//! The topology as an indented tree for the terminal.

use std::fmt::Write;

use super::scene::{address, clean, mac, subnet, uplink_address, NetKind, Scene};
use crate::api::topology::Topology;

/// An indented tree: the uplink and its published ports first, then one block per network with its
/// containers (interface, address, MAC, veth). A container on several networks appears under each,
/// with "(also on X)". Sorted by name.
pub fn render_text(t: &Topology) -> String {
    let m = Scene::new(t);
    let mut out = String::new();
    uplink(&mut out, &m);
    if m.nets.is_empty() {
        out.push_str("\nno networks, no containers\n");
    }
    for ni in 0..m.nets.len() {
        out.push('\n');
        network(&mut out, &m, ni);
    }
    out
}

/// The uplink line, then one line per published port.
fn uplink(out: &mut String, m: &Scene) {
    match m.uplink {
        Some(u) => {
            let _ = write!(out, "uplink {}  {}", clean(&u.interface), uplink_address(u));
            if let Some(gw) = &u.gateway {
                let _ = write!(out, "  gateway {gw}");
            }
            out.push('\n');
        }
        None if m.published.is_empty() => out.push_str("uplink: none\n"),
        None => out.push_str("uplink: none (published ports are unreachable until there is one)\n"),
    }
    let host_ip = m
        .uplink
        .map_or_else(|| "*".to_string(), |u| u.ip.to_string());
    for (i, p) in m.published.iter().enumerate() {
        let name = clean(&m.cons[p.container].name);
        let ip = p.ip.map_or_else(|| host_ip.clone(), |ip| ip.to_string());
        let _ = writeln!(
            out,
            "{}{ip}:{} -> {name}:{}",
            branch(i + 1 == m.published.len()),
            p.host,
            p.target
        );
    }
}

/// A network's header line, then its containers as aligned columns.
fn network(out: &mut String, m: &Scene, ni: usize) {
    let net = &m.nets[ni];
    match net.kind {
        NetKind::Known(v) => {
            let _ = write!(
                out,
                "network {}  {}  gateway {}  host port {}",
                clean(&v.name),
                subnet(v),
                v.gateway,
                clean(&v.host_port)
            );
            if let Some(r) = &v.resolver {
                let _ = write!(out, "  dns {}", clean(r));
            }
            if !v.icc {
                out.push_str("  [icc=false]");
            }
            if v.internal {
                out.push_str("  [internal]");
            }
            if v.routed {
                out.push_str("  [routed]");
            }
            out.push('\n');
        }
        NetKind::Unknown => {
            let _ = writeln!(out, "network {}  (not in this topology)", clean(net.name));
        }
        NetKind::Detached => out.push_str("not attached to any network\n"),
    }
    if net.members.is_empty() {
        let _ = writeln!(out, "{}(no containers)", branch(true));
        return;
    }
    aligned(out, &member_rows(m, ni));
}

/// One row per member of network `ni`: its cells (name, interface, address, MAC, veth) and notes
/// (other networks, links).
fn member_rows(m: &Scene, ni: usize) -> Vec<(Vec<String>, String)> {
    let net = &m.nets[ni];
    net.members
        .iter()
        .map(|&(ci, ei)| {
            let c = m.cons[ci];
            let mut cells = vec![clean(&c.name)];
            if let Some(ei) = ei {
                let e = &c.endpoints[ei];
                cells.push(clean(&e.interface));
                cells.push(address(e));
                cells.push(mac(e));
                cells.push(format!("veth {}", clean(&e.host_interface)));
            }
            let mut notes = String::new();
            let others = m.other_nets(ci, net.name);
            if !others.is_empty() {
                let _ = write!(notes, "  (also on {})", others.join(", "));
            }
            let links: Vec<String> = m
                .links_of(ci)
                .map(|l| format!("{} as {}", clean(l.child), clean(l.alias)))
                .collect();
            if !links.is_empty() {
                let _ = write!(notes, "  (links: {})", links.join(", "));
            }
            (cells, notes)
        })
        .collect()
}

/// The rows as a tree, cells padded to columns, notes after.
fn aligned(out: &mut String, rows: &[(Vec<String>, String)]) {
    let columns = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.0.get(i))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, (cells, notes)) in rows.iter().enumerate() {
        let mut line = String::new();
        for (j, cell) in cells.iter().enumerate() {
            if j > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[j].saturating_sub(cell.chars().count());
            line.push_str(&" ".repeat(pad));
        }
        let line = line.trim_end();
        let _ = writeln!(out, "{}{line}{notes}", branch(i + 1 == rows.len()));
    }
}

fn branch(last: bool) -> &'static str {
    if last {
        "`-- "
    } else {
        "|-- "
    }
}
