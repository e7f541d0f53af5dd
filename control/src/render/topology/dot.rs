//! The topology as Graphviz source, for tools.

use std::fmt::Write;

use super::scene::{address, clean, mac, subnet, uplink_address, Net, NetKind, Scene};
use crate::api::topology::Topology;

/// A Graphviz quoted string's content: `\` and `"` escaped, `&` as an entity (Graphviz decodes
/// HTML entities in labels), control characters replaced. `\n` between parts is added by callers.
fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// Label lines, each escaped, joined by Graphviz's centred line break.
fn dot_label(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| dot_escape(l))
        .collect::<Vec<_>>()
        .join("\\n")
}

/// Graphviz source: a cluster per network (switch node, host port node, one node per container
/// endpoint), container nodes outside joined to their endpoints, the uplink with arrows to the
/// containers it publishes (labelled with the ports), links as dashed arrows.
pub fn render_dot(t: &Topology) -> String {
    let m = Scene::new(t);
    let mut out = String::new();
    out.push_str("graph topology {\n");
    out.push_str("  graph [fontname=\"Helvetica\", fontsize=11, nodesep=0.35, ranksep=0.6];\n");
    out.push_str("  node [fontname=\"Helvetica\", fontsize=10, shape=box];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    if m.nets.is_empty() && m.uplink.is_none() {
        out.push_str("  \"empty\" [label=\"no networks, no containers\", shape=plaintext];\n");
    }
    if m.show_uplink() {
        uplink_node(&mut out, &m);
    }
    for (ni, net) in m.nets.iter().enumerate() {
        if !matches!(net.kind, NetKind::Detached) {
            cluster(&mut out, &m, ni, net);
        }
    }
    for (ci, c) in m.cons.iter().enumerate() {
        let _ = writeln!(
            out,
            "  \"c{ci}\" [label=\"{}\", shape=box3d, style=bold];",
            dot_escape(&c.name)
        );
    }
    for (ni, net) in m.nets.iter().enumerate() {
        for (k, &(ci, ei)) in net.members.iter().enumerate() {
            if ei.is_some() {
                let _ = writeln!(out, "  \"c{ci}\" -- \"n{ni}_e{k}\";");
            }
        }
    }
    if m.show_uplink() {
        for ci in 0..m.cons.len() {
            let ports = m.port_labels(ci);
            if !ports.is_empty() {
                let _ = writeln!(
                    out,
                    "  \"uplink\" -- \"c{ci}\" [label=\"{}\", dir=forward, color=\"#b5651d\", fontcolor=\"#b5651d\"];",
                    dot_label(&ports)
                );
            }
        }
    }
    links(&mut out, &m);
    out.push_str("}\n");
    out
}

fn uplink_node(out: &mut String, m: &Scene) {
    let (lines, style) = match m.uplink {
        Some(u) => {
            let mut l = vec![format!("uplink {}", u.interface), uplink_address(u)];
            if let Some(gw) = &u.gateway {
                l.push(format!("gateway {gw}"));
            }
            (l, "filled,bold")
        }
        None => (vec!["no uplink".to_string()], "filled,dashed"),
    };
    let _ = writeln!(
        out,
        "  \"uplink\" [label=\"{}\", style=\"{style}\", fillcolor=\"#fff6d6\", color=\"#b58a00\"];",
        dot_label(&lines)
    );
}

/// A network's cluster: its switch, its host port, one node per container endpoint.
fn cluster(out: &mut String, m: &Scene, ni: usize, net: &Net) {
    let _ = writeln!(out, "  subgraph \"cluster_n{ni}\" {{");
    let (label, style) = match net.kind {
        NetKind::Known(v) => {
            let mut l = vec![
                v.name.clone(),
                format!("{}  gateway {}", subnet(v), v.gateway),
            ];
            let flags: Vec<&str> = [
                (!v.icc, "icc=false"),
                (v.internal, "internal"),
                (v.routed, "routed"),
            ]
            .iter()
            .filter(|f| f.0)
            .map(|f| f.1)
            .collect();
            if !flags.is_empty() {
                l.push(flags.join(" "));
            }
            (
                l,
                if v.internal {
                    "rounded,dashed"
                } else {
                    "rounded"
                },
            )
        }
        _ => (
            vec![net.name.to_string(), "(not in this topology)".to_string()],
            "rounded,dashed",
        ),
    };
    let _ = writeln!(
        out,
        "    label=\"{}\";\n    style=\"{style}\";\n    color=\"#4a7bb7\";",
        dot_label(&label)
    );
    let _ = writeln!(
        out,
        "    \"n{ni}_switch\" [label=\"{}\", style=\"rounded,filled\", fillcolor=\"#dbe7f6\"];",
        dot_label(&["switch".to_string(), net.name.to_string()])
    );
    if let NetKind::Known(v) = net.kind {
        let _ = writeln!(
            out,
            "    \"n{ni}_host\" [label=\"{}\", shape=ellipse];",
            dot_label(&[format!("host port {}", v.host_port), v.gateway.to_string()])
        );
        let _ = writeln!(
            out,
            "    \"n{ni}_host\" -- \"n{ni}_switch\" [label=\"tap\"];"
        );
    }
    for (k, &(ci, ei)) in net.members.iter().enumerate() {
        let Some(ei) = ei else { continue };
        let c = m.cons[ci];
        let e = &c.endpoints[ei];
        let _ = writeln!(
            out,
            "    \"n{ni}_e{k}\" [label=\"{}\", shape=note, fontsize=9];",
            dot_label(&[format!("{} {}", c.name, e.interface), address(e), mac(e)])
        );
        let _ = writeln!(
            out,
            "    \"n{ni}_e{k}\" -- \"n{ni}_switch\" [label=\"{}\"];",
            dot_escape(&format!("veth {}", e.host_interface))
        );
    }
    out.push_str("  }\n");
}

/// Links as dashed arrows, to a placeholder node when the child is not in the topology.
fn links(out: &mut String, m: &Scene) {
    for (li, l) in m.links.iter().enumerate() {
        let child = match l.child_index {
            Some(i) => format!("c{i}"),
            None => {
                let _ = writeln!(
                    out,
                    "  \"missing{li}\" [label=\"{}\", style=dashed];",
                    dot_label(&[l.child.to_string(), "(not in this topology)".to_string()])
                );
                format!("missing{li}")
            }
        };
        let _ = writeln!(
            out,
            "  \"c{}\" -- \"{child}\" [label=\"{}\", style=dashed, dir=forward];",
            l.parent,
            dot_escape(&format!("link {}", l.alias))
        );
    }
}
