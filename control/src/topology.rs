//! `switchyard topology [--format text|dot|svg]`: networks, host ports, containers and the uplink,
//! drawn.
//!
//! Why: `network inspect` and `container inspect` answer one object at a time, while the question
//! people bring (students above all) is "how does a packet get from here to there". A picture of the
//! topology is a picture of the packet path: a container's `eth0` is one end of a veth whose other
//! end is a port of the switch; each network is one bridge domain of that switch, and its host port
//! (a tap holding the gateway address) is the way out; the uplink is the address the world sees,
//! whose published ports lead to a container's port. Three renderings of one model:
//!
//! - `text`: an indented tree for the terminal, one block per network, uplink and published ports
//!   first, in the order a packet from outside meets them;
//! - `dot`: Graphviz source for tools (a cluster per network, a node per host port and per endpoint);
//! - `svg`: a picture drawn here, not by Graphviz, so that `switchyard topology --format svg > t.svg`
//!   works on a bare host and lays out the way a teacher would draw it on a board: networks as bands
//!   stacked vertically, containers as boxes in the band of their first network with a line down
//!   (or up) to every other network they are attached to, the uplink on top with arrows to the
//!   containers it publishes.
//!
//! All three are deterministic (everything sorted by name, no hashing) so that outputs diff well,
//! and everything user-controlled is escaped for its format: `& < > " '` in SVG, `" \ &` in dot
//! (Graphviz decodes HTML entities in labels), control characters replaced everywhere (a container
//! name cannot move the terminal's cursor or break the XML). The SVG sizes every box from its text,
//! with a per-character width estimate for a monospace font, so long names do not overflow.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// Everything `switchyard topology` shows, as plain data.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Topology {
    pub networks: Vec<NetView>,
    pub containers: Vec<ContainerView>,
    pub uplink: Option<UplinkView>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetView {
    pub name: String,
    pub subnet: String,
    pub gateway: String,
    /// The tap holding the gateway address, e.g. `switchyard0`.
    pub host_port: String,
    pub icc: bool,
    pub internal: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerView {
    pub name: String,
    /// In attachment order: the first one holds the default route.
    pub endpoints: Vec<EndpointView>,
    /// `"8080/tcp -> 80"`: host port and protocol, then container port. Also accepted: an explicit
    /// host address (`"127.0.0.1:8080/tcp -> 80"`) and `docker port`'s `"80/tcp -> 0.0.0.0:8080"`.
    pub published: Vec<String>,
    /// Links to other containers as `"CHILD:ALIAS"` (`"pg:db"`); a bare `"pg"` is its own alias.
    pub links: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndpointView {
    pub network: String,
    /// Inside the container: `eth0`.
    pub interface: String,
    /// With prefix: `172.17.0.2/16`.
    pub address: String,
    pub mac: String,
    /// The host end of the veth, a switch port.
    pub host_interface: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UplinkView {
    pub interface: String,
    /// With prefix: `192.0.2.10/24`.
    pub address: String,
    pub gateway: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The model shared by the three renderers: sorted, cross-referenced, cleaned.

/// Replaces control characters: they could drive a terminal, and XML 1.0 cannot hold most of them.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

enum NetKind<'a> {
    Known(&'a NetView),
    /// Named by an endpoint but absent from `Topology::networks`.
    Unknown,
    /// The containers without any endpoint.
    Detached,
}

struct Net<'a> {
    name: &'a str,
    kind: NetKind<'a>,
    /// (container index, endpoint index), in container-name order; `None` for `Detached`.
    members: Vec<(usize, Option<usize>)>,
}

/// One published port, parsed when possible.
struct Published {
    container: usize,
    raw: String,
    map: Option<PortMap>,
}

struct PortMap {
    /// An explicit host address; `None` for the unspecified one (the uplink address).
    ip: Option<String>,
    /// `8080/tcp`.
    host: String,
    /// `80`.
    target: String,
}

impl Published {
    /// `8080/tcp -> 80`, as the brief for arrows and edges says.
    fn label(&self) -> String {
        match &self.map {
            Some(m) => match &m.ip {
                Some(ip) => format!("{ip}:{} -> {}", m.host, m.target),
                None => format!("{} -> {}", m.host, m.target),
            },
            None => self.raw.clone(),
        }
    }
}

fn specific_ip(ip: &str) -> Option<String> {
    match ip.trim() {
        "" | "0.0.0.0" | "::" | "[::]" => None,
        ip => Some(clean(ip)),
    }
}

fn parse_published(s: &str) -> Option<PortMap> {
    let (left, right) = s.split_once("->")?;
    let (left, right) = (left.trim(), right.trim());
    if left.is_empty() || right.is_empty() {
        return None;
    }
    if let Some((ip, host_port)) = right.rsplit_once(':') {
        // `docker port`'s form: `80/tcp -> 0.0.0.0:8080`.
        let (target, proto) = left.split_once('/').unwrap_or((left, "tcp"));
        return Some(PortMap {
            ip: specific_ip(ip),
            host: clean(&format!("{host_port}/{proto}")),
            target: clean(target),
        });
    }
    let (ip, host) = match left.rsplit_once(':') {
        Some((ip, host)) => (specific_ip(ip), host),
        None => (None, left),
    };
    Some(PortMap {
        ip,
        host: clean(host),
        target: clean(right),
    })
}

struct Link<'a> {
    parent: usize,
    child: &'a str,
    child_index: Option<usize>,
    alias: &'a str,
}

struct Model<'a> {
    nets: Vec<Net<'a>>,
    cons: Vec<&'a ContainerView>,
    uplink: Option<&'a UplinkView>,
    published: Vec<Published>,
    links: Vec<Link<'a>>,
}

impl<'a> Model<'a> {
    fn new(t: &'a Topology) -> Self {
        let mut cons: Vec<&ContainerView> = t.containers.iter().collect();
        cons.sort_by(|a, b| a.name.cmp(&b.name));

        let mut nets: Vec<Net> = t
            .networks
            .iter()
            .map(|n| Net {
                name: &n.name,
                kind: NetKind::Known(n),
                members: Vec::new(),
            })
            .collect();
        let unknown: BTreeSet<&str> = cons
            .iter()
            .flat_map(|c| &c.endpoints)
            .map(|e| e.network.as_str())
            .filter(|name| !t.networks.iter().any(|n| n.name == *name))
            .collect();
        nets.extend(unknown.into_iter().map(|name| Net {
            name,
            kind: NetKind::Unknown,
            members: Vec::new(),
        }));
        let key = |n: &Net<'a>| match n.kind {
            NetKind::Known(v) => (n.name, v.subnet.as_str()),
            _ => (n.name, ""),
        };
        nets.sort_by(|a, b| key(a).cmp(&key(b)));

        for (ci, c) in cons.iter().enumerate() {
            for (ei, e) in c.endpoints.iter().enumerate() {
                for n in nets.iter_mut().filter(|n| n.name == e.network) {
                    n.members.push((ci, Some(ei)));
                }
            }
        }
        let detached: Vec<(usize, Option<usize>)> = (0..cons.len())
            .filter(|&ci| cons[ci].endpoints.is_empty())
            .map(|ci| (ci, None))
            .collect();
        if !detached.is_empty() {
            nets.push(Net {
                name: "",
                kind: NetKind::Detached,
                members: detached,
            });
        }

        let mut published = Vec::new();
        let mut links = Vec::new();
        for (ci, c) in cons.iter().enumerate() {
            for p in &c.published {
                published.push(Published {
                    container: ci,
                    raw: clean(p),
                    map: parse_published(p),
                });
            }
            for l in &c.links {
                let (child, alias) = l.split_once(':').unwrap_or((l, l));
                links.push(Link {
                    parent: ci,
                    child,
                    child_index: cons.iter().position(|x| x.name == child),
                    alias,
                });
            }
        }
        Model {
            nets,
            cons,
            uplink: t.uplink.as_ref(),
            published,
            links,
        }
    }

    /// The networks of container `ci` other than `except`, sorted, once each.
    fn other_nets(&self, ci: usize, except: &str) -> Vec<String> {
        let names: BTreeSet<&str> = self.cons[ci]
            .endpoints
            .iter()
            .map(|e| e.network.as_str())
            .filter(|n| *n != except)
            .collect();
        names.into_iter().map(clean).collect()
    }

    fn links_of(&self, ci: usize) -> impl Iterator<Item = &Link<'a>> {
        self.links.iter().filter(move |l| l.parent == ci)
    }

    /// The uplink address without its prefix length, the host side of published ports.
    fn uplink_ip(&self) -> Option<String> {
        self.uplink
            .map(|u| clean(u.address.split('/').next().unwrap_or("")))
    }
}

// ---------------------------------------------------------------------------------------------
// Text

/// An indented tree: the uplink and its published ports first, then one block per network with its
/// containers (interface, address, MAC, veth). A container on several networks appears under each,
/// with "(also on X)". Sorted by name.
pub fn render_text(t: &Topology) -> String {
    let m = Model::new(t);
    let mut out = String::new();
    match m.uplink {
        Some(u) => {
            let _ = write!(out, "uplink {}  {}", clean(&u.interface), clean(&u.address));
            if let Some(gw) = &u.gateway {
                let _ = write!(out, "  gateway {}", clean(gw));
            }
            out.push('\n');
        }
        None if m.published.is_empty() => out.push_str("uplink: none\n"),
        None => out.push_str("uplink: none (published ports are unreachable until there is one)\n"),
    }
    let host_ip = m.uplink_ip().unwrap_or_else(|| "*".to_string());
    for (i, p) in m.published.iter().enumerate() {
        let name = clean(&m.cons[p.container].name);
        let line = match &p.map {
            Some(pm) => format!(
                "{}:{} -> {name}:{}",
                pm.ip.as_deref().unwrap_or(&host_ip),
                pm.host,
                pm.target
            ),
            None => format!("{name}: {}", p.raw),
        };
        let _ = writeln!(out, "{}{line}", branch(i + 1 == m.published.len()));
    }

    if m.nets.is_empty() {
        out.push_str("\nno networks, no containers\n");
    }
    for net in &m.nets {
        out.push('\n');
        match net.kind {
            NetKind::Known(v) => {
                let _ = write!(
                    out,
                    "network {}  {}  gateway {}  host port {}",
                    clean(&v.name),
                    clean(&v.subnet),
                    clean(&v.gateway),
                    clean(&v.host_port)
                );
                if !v.icc {
                    out.push_str("  [icc=false]");
                }
                if v.internal {
                    out.push_str("  [internal]");
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
            continue;
        }
        let rows: Vec<(Vec<String>, String)> = net
            .members
            .iter()
            .map(|&(ci, ei)| {
                let c = m.cons[ci];
                let mut cells = vec![clean(&c.name)];
                if let Some(ei) = ei {
                    let e = &c.endpoints[ei];
                    cells.push(clean(&e.interface));
                    cells.push(clean(&e.address));
                    cells.push(clean(&e.mac));
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
            .collect();
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
    out
}

fn branch(last: bool) -> &'static str {
    if last {
        "`-- "
    } else {
        "|-- "
    }
}

// ---------------------------------------------------------------------------------------------
// Dot

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
    let m = Model::new(t);
    let mut out = String::new();
    out.push_str("graph topology {\n");
    out.push_str("  graph [fontname=\"Helvetica\", fontsize=11, nodesep=0.35, ranksep=0.6];\n");
    out.push_str("  node [fontname=\"Helvetica\", fontsize=10, shape=box];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    if m.nets.is_empty() && m.uplink.is_none() {
        out.push_str("  \"empty\" [label=\"no networks, no containers\", shape=plaintext];\n");
    }

    let show_uplink = m.uplink.is_some() || !m.published.is_empty();
    if show_uplink {
        let (lines, style) = match m.uplink {
            Some(u) => {
                let mut l = vec![format!("uplink {}", u.interface), u.address.clone()];
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

    for (ni, net) in m.nets.iter().enumerate() {
        if let NetKind::Detached = net.kind {
            continue;
        }
        let _ = writeln!(out, "  subgraph \"cluster_n{ni}\" {{");
        let (label, style) = match net.kind {
            NetKind::Known(v) => {
                let mut l = vec![
                    v.name.clone(),
                    format!("{}  gateway {}", v.subnet, v.gateway),
                ];
                let flags: Vec<&str> = [(!v.icc, "icc=false"), (v.internal, "internal")]
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
                dot_label(&[format!("host port {}", v.host_port), v.gateway.clone()])
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
                dot_label(&[
                    format!("{} {}", c.name, e.interface),
                    e.address.clone(),
                    e.mac.clone()
                ])
            );
            let _ = writeln!(
                out,
                "    \"n{ni}_e{k}\" -- \"n{ni}_switch\" [label=\"{}\"];",
                dot_escape(&format!("veth {}", e.host_interface))
            );
        }
        out.push_str("  }\n");
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
    if show_uplink {
        for ci in 0..m.cons.len() {
            let ports: Vec<String> = m
                .published
                .iter()
                .filter(|p| p.container == ci)
                .map(Published::label)
                .collect();
            if !ports.is_empty() {
                let _ = writeln!(
                    out,
                    "  \"uplink\" -- \"c{ci}\" [label=\"{}\", dir=forward, color=\"#b5651d\", fontcolor=\"#b5651d\"];",
                    dot_label(&ports)
                );
            }
        }
    }
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
    out.push_str("}\n");
    out
}

// ---------------------------------------------------------------------------------------------
// SVG

/// Text for XML content and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Roughly the characters that take two cells (CJK, Hangul, fullwidth forms, emoji).
fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1FAFF
        | 0x20000..=0x3FFFD)
}

/// Estimated width in pixels of `s` in the monospace font at `size` px: 0.6 em per cell.
fn text_width(s: &str, size: i64) -> i64 {
    let cells: i64 = s.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum();
    (cells * size * 6 + 9) / 10
}

const MARGIN: i64 = 16;
const FS: i64 = 12;
const FS_NAME: i64 = 13;
const FS_TITLE: i64 = 16;
const LH: i64 = 15;
const PAD: i64 = 8;
const COL_GAP: i64 = 20;
const BAND_GAP: i64 = 14;
/// A container column: uplink arrows and link lines run `LANE` px from its left edge, lines to its
/// other networks `LANE` px from its right edge.
const LANE: i64 = 14;
const FONT: &str = "'DejaVu Sans Mono', Menlo, Consolas, 'Liberation Mono', monospace";
/// (fill, stroke) per band, cycled.
const PALETTE: [(&str, &str); 5] = [
    ("#e8f1fb", "#4a7bb7"),
    ("#eaf6ea", "#4f9a55"),
    ("#fdf1e3", "#c9822b"),
    ("#f3ecf9", "#8a62b5"),
    ("#fbe9ee", "#b5526f"),
];
const GREY: (&str, &str) = ("#f2f2f2", "#888888");
const PUBLISH: &str = "#b5651d";
const FLAG: &str = "#c0392b";

struct Svg {
    out: String,
}

impl Svg {
    /// `(x, y, width, height)`, corner radius, `(fill, stroke)`, raw extra attributes.
    fn rect(
        &mut self,
        (x, y, w, h): (i64, i64, i64, i64),
        rx: i64,
        colors: (&str, &str),
        extra: &str,
    ) {
        let (fill, stroke) = colors;
        let _ = writeln!(
            self.out,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"{rx}\" fill=\"{fill}\" stroke=\"{stroke}\"{extra}/>"
        );
    }

    /// `extra` is raw attributes (starting with a space); `s` is escaped here.
    fn text(&mut self, x: i64, y: i64, s: &str, extra: &str) {
        let _ = writeln!(
            self.out,
            "<text x=\"{x}\" y=\"{y}\"{extra}>{}</text>",
            xml_escape(s)
        );
    }

    /// Text over lines: a white halo keeps it legible.
    fn label(&mut self, x: i64, y: i64, s: &str, extra: &str) {
        let extra = format!(
            " stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\" stroke-linejoin=\"round\"{extra}"
        );
        self.text(x, y, s, &extra);
    }

    fn path(&mut self, d: &str, stroke: &str, extra: &str) {
        let _ = writeln!(
            self.out,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"1.5\"{extra}/>"
        );
    }

    fn dot(&mut self, x: i64, y: i64, fill: &str) {
        let _ = writeln!(
            self.out,
            "<circle cx=\"{x}\" cy=\"{y}\" r=\"4\" fill=\"{fill}\" stroke=\"#ffffff\"/>"
        );
    }
}

/// What one container box shows and needs.
struct Card {
    title: String,
    lines: Vec<String>,
    ports: Vec<String>,
    /// Other networks (band index) with the label at the junction: `eth1 10.20.0.128/24`.
    junctions: Vec<(usize, String)>,
    w: i64,
    h: i64,
}

struct Band {
    y: i64,
    h: i64,
    header: Vec<String>,
    flags: Vec<&'static str>,
    colors: (&'static str, &'static str),
    dashed: bool,
    /// Free height above the boxes for the published-port labels.
    label_space: i64,
}

impl Band {
    fn junction_y(&self) -> i64 {
        self.y + self.h / 2
    }
}

/// A picture drawn without Graphviz: networks as horizontal bands stacked vertically, containers as
/// boxes in the band of their first network (each in its own column, so lines never cross a box),
/// a line to every other network they are attached to, the uplink on top with arrows to the
/// containers it publishes, links as dashed arrows, and a legend.
pub fn render_svg(t: &Topology) -> String {
    let m = Model::new(t);

    // The band of each container: the network of its first endpoint.
    let home: Vec<usize> = (0..m.cons.len())
        .map(|ci| {
            m.nets
                .iter()
                .position(|n| {
                    n.members
                        .iter()
                        .any(|&(c, e)| c == ci && e.unwrap_or(0) == 0)
                })
                .unwrap_or(0)
        })
        .collect();

    let cards: Vec<Card> = (0..m.cons.len())
        .map(|ci| {
            let c = m.cons[ci];
            let mut lines = Vec::new();
            for e in &c.endpoints {
                lines.push(format!("{}: {} {}", e.network, e.interface, e.address));
                if !e.mac.is_empty() {
                    lines.push(format!("  mac {}", e.mac));
                }
                if !e.host_interface.is_empty() {
                    lines.push(format!("  veth {}", e.host_interface));
                }
            }
            if c.endpoints.is_empty() {
                lines.push("no interface".to_string());
            }
            for l in m.links_of(ci) {
                lines.push(format!("link {} -> {}", l.alias, l.child));
            }
            let ports: Vec<String> = m
                .published
                .iter()
                .filter(|p| p.container == ci)
                .map(Published::label)
                .collect();
            let mut junctions = Vec::new();
            for (ni, n) in m.nets.iter().enumerate() {
                if ni == home[ci] {
                    continue;
                }
                if let Some(&(_, Some(ei))) = n.members.iter().find(|&&(c, _)| c == ci) {
                    let e = &c.endpoints[ei];
                    junctions.push((ni, format!("{} {}", e.interface, e.address)));
                }
            }
            let content = lines
                .iter()
                .map(|l| text_width(l, FS))
                .chain([text_width(&c.name, FS_NAME)])
                .max()
                .unwrap_or(0)
                + 2 * PAD;
            let for_ports = ports.iter().map(|p| text_width(p, FS)).max().unwrap_or(0) + 3 * LANE;
            let for_junctions = junctions
                .iter()
                .map(|j| text_width(&j.1, FS))
                .max()
                .unwrap_or(0)
                + 3 * LANE;
            Card {
                title: c.name.clone(),
                h: 2 * PAD + LH * (1 + lines.len() as i64) + 2,
                w: content.max(for_ports).max(for_junctions).max(120),
                lines,
                ports,
                junctions,
            }
        })
        .collect();

    // Columns, left to right: by band, then by name.
    let mut order: Vec<usize> = (0..m.cons.len()).collect();
    order.sort_by_key(|&ci| (home[ci], ci));

    let mut bands: Vec<Band> = m
        .nets
        .iter()
        .enumerate()
        .map(|(ni, n)| {
            let (header, flags, colors, dashed) = match n.kind {
                NetKind::Known(v) => {
                    let mut flags = Vec::new();
                    if !v.icc {
                        flags.push("icc=false");
                    }
                    if v.internal {
                        flags.push("internal");
                    }
                    (
                        vec![
                            v.name.clone(),
                            v.subnet.clone(),
                            format!("gateway {}", v.gateway),
                            format!("host port {}", v.host_port),
                        ],
                        flags,
                        PALETTE[ni % PALETTE.len()],
                        v.internal,
                    )
                }
                NetKind::Unknown => (
                    vec![n.name.to_string(), "not in this topology".to_string()],
                    Vec::new(),
                    GREY,
                    true,
                ),
                NetKind::Detached => (
                    vec![
                        "no network".to_string(),
                        "containers without".to_string(),
                        "interfaces".to_string(),
                    ],
                    Vec::new(),
                    GREY,
                    true,
                ),
            };
            Band {
                y: 0,
                h: 0,
                header,
                flags,
                colors,
                dashed,
                label_space: 0,
            }
        })
        .collect();

    let header_w = bands
        .iter()
        .map(|b| {
            b.header
                .iter()
                .enumerate()
                .map(|(i, l)| text_width(l, if i == 0 { FS_NAME } else { FS }))
                .chain([text_width(&b.flags.join("  "), FS)])
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
        .max(140)
        + 2 * PAD;

    // Horizontal layout.
    let mut col_x = vec![0; m.cons.len()];
    let mut x = MARGIN + header_w + COL_GAP;
    for &ci in &order {
        col_x[ci] = x;
        x += cards[ci].w + COL_GAP;
    }
    let content_right = x - COL_GAP + PAD;

    let title = format!(
        "switchyard topology: {} network{}, {} container{}",
        t.networks.len(),
        if t.networks.len() == 1 { "" } else { "s" },
        t.containers.len(),
        if t.containers.len() == 1 { "" } else { "s" }
    );
    let show_uplink = m.uplink.is_some() || !m.published.is_empty();
    let uplink_lines: Vec<String> = match m.uplink {
        Some(u) => {
            let mut l = vec![format!("uplink {}", u.interface), u.address.clone()];
            if let Some(gw) = &u.gateway {
                l.push(format!("gateway {gw}"));
            }
            l
        }
        None => vec![
            "no uplink".to_string(),
            "published ports are unreachable".to_string(),
        ],
    };
    let uplink_w = uplink_lines
        .iter()
        .enumerate()
        .map(|(i, l)| text_width(l, if i == 0 { FS_NAME } else { FS }))
        .max()
        .unwrap_or(0)
        + 2 * PAD;
    let legend = legend_items();
    let legend_w = legend.iter().map(|l| text_width(l, FS)).max().unwrap_or(0) + 48;
    let empty_note = "no networks, no containers";

    let width = [
        content_right + MARGIN,
        uplink_w + 2 * MARGIN,
        legend_w + 2 * MARGIN,
        text_width(&title, FS_TITLE) + 2 * MARGIN,
        text_width(empty_note, FS) + 2 * MARGIN + 2 * PAD,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);

    // Vertical layout.
    let mut y = MARGIN;
    let title_y = y + FS_TITLE;
    y = title_y + 14;
    let uplink_box = (width - uplink_w) / 2;
    let uplink_y = y;
    let uplink_h = 2 * PAD + LH * uplink_lines.len() as i64;
    let mut bus_y = 0;
    if show_uplink {
        y += uplink_h;
        if m.published.is_empty() {
            y += 16;
        } else {
            bus_y = y + 14;
            y = bus_y + 14;
        }
    }
    let bands_top = y;
    for (bi, band) in bands.iter_mut().enumerate() {
        let mine = || order.iter().filter(|&&ci| home[ci] == bi);
        let ports = mine()
            .map(|&ci| cards[ci].ports.len() as i64)
            .max()
            .unwrap_or(0);
        band.label_space = if ports > 0 { ports * LH + 6 } else { 0 };
        let boxes = mine().map(|&ci| cards[ci].h).max().unwrap_or(0);
        let header_h =
            2 * PAD + LH * (band.header.len() as i64 + i64::from(!band.flags.is_empty()));
        band.y = y;
        band.h = header_h.max(20 + band.label_space + boxes).max(44);
        y += band.h + BAND_GAP;
    }
    let mut bands_bottom = if bands.is_empty() { y } else { y - BAND_GAP };
    if bands.is_empty() {
        bands_bottom += 40;
    }
    let drawn_links: Vec<&Link> = m
        .links
        .iter()
        .filter(|l| l.child_index.is_some_and(|c| c != l.parent))
        .collect();
    let track_y = |i: usize| bands_bottom + 22 + 18 * i as i64;
    y = if drawn_links.is_empty() {
        bands_bottom + 16
    } else {
        track_y(drawn_links.len() - 1) + 16
    };
    let legend_y = y;
    let height = legend_y + LH + 4 + (LH + 6) * legend.len() as i64 + MARGIN;

    let box_top = |ci: usize| {
        let b = &bands[home[ci]];
        b.y + 10 + b.label_space
    };
    let lane_left = |ci: usize| col_x[ci] + LANE;
    let lane_right = |ci: usize| col_x[ci] + cards[ci].w - LANE;

    // Drawing, back to front.
    let mut s = Svg { out: String::new() };
    let _ = writeln!(
        s.out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"{FONT}\" font-size=\"{FS}\">"
    );
    let _ = writeln!(s.out, "<title>{}</title>", xml_escape(&title));
    let _ = writeln!(s.out, "<defs>");
    for (id, color) in [("sy-publish", PUBLISH), ("sy-link", "#666666")] {
        let _ = writeln!(
            s.out,
            "<marker id=\"{id}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"9\" markerHeight=\"9\" markerUnits=\"userSpaceOnUse\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{color}\"/></marker>"
        );
    }
    let _ = writeln!(s.out, "</defs>");
    s.rect((0, 0, width, height), 0, ("#ffffff", "none"), "");
    s.text(
        MARGIN,
        title_y,
        &title,
        &format!(" font-size=\"{FS_TITLE}\" font-weight=\"bold\""),
    );

    if bands.is_empty() {
        s.rect(
            (MARGIN, bands_top, width - 2 * MARGIN, 40),
            10,
            (GREY.0, GREY.1),
            " stroke-dasharray=\"6,4\"",
        );
        s.text(
            MARGIN + PAD,
            bands_top + 25,
            empty_note,
            " fill=\"#555555\"",
        );
    }
    for b in &bands {
        let dash = if b.dashed {
            " stroke-dasharray=\"6,4\""
        } else {
            ""
        };
        s.rect(
            (MARGIN, b.y, width - 2 * MARGIN, b.h),
            10,
            (b.colors.0, b.colors.1),
            dash,
        );
        let mut ty = b.y + PAD + FS_NAME;
        for (i, l) in b.header.iter().enumerate() {
            let style = if i == 0 {
                format!(
                    " font-size=\"{FS_NAME}\" font-weight=\"bold\" fill=\"{}\"",
                    b.colors.1
                )
            } else {
                " fill=\"#333333\"".to_string()
            };
            s.text(MARGIN + PAD, ty, l, &style);
            ty += LH;
        }
        if !b.flags.is_empty() {
            s.text(
                MARGIN + PAD,
                ty,
                &b.flags.join("  "),
                &format!(" fill=\"{FLAG}\" font-weight=\"bold\""),
            );
        }
    }

    // Lines to the other networks, then their junctions.
    for &ci in &order {
        let card = &cards[ci];
        let rx = lane_right(ci);
        let top = box_top(ci);
        let bottom = top + card.h;
        let ys = card.junctions.iter().map(|j| bands[j.0].junction_y());
        if let Some(up) = ys.clone().filter(|&jy| jy < top).min() {
            s.path(&format!("M{rx},{top} V{up}"), "#555555", "");
        }
        if let Some(down) = ys.filter(|&jy| jy > bottom).max() {
            s.path(&format!("M{rx},{bottom} V{down}"), "#555555", "");
        }
        for (bi, label) in &card.junctions {
            let jy = bands[*bi].junction_y();
            s.dot(rx, jy, bands[*bi].colors.1);
            s.label(rx - 7, jy - 5, label, " text-anchor=\"end\"");
        }
    }

    // The uplink and its arrows.
    if show_uplink {
        let dash = if m.uplink.is_none() {
            " stroke-dasharray=\"6,4\""
        } else {
            ""
        };
        s.rect(
            (uplink_box, uplink_y, uplink_w, uplink_h),
            6,
            ("#fff6d6", "#b58a00"),
            dash,
        );
        let mut ty = uplink_y + PAD + FS_NAME;
        for (i, l) in uplink_lines.iter().enumerate() {
            let style = if i == 0 {
                format!(" font-size=\"{FS_NAME}\" font-weight=\"bold\"")
            } else {
                String::new()
            };
            s.text(uplink_box + PAD, ty, l, &style);
            ty += LH;
        }
        let cx = uplink_box + uplink_w / 2;
        let from = uplink_y + uplink_h;
        for &ci in &order {
            let card = &cards[ci];
            if card.ports.is_empty() {
                continue;
            }
            let ux = lane_left(ci);
            let top = box_top(ci);
            s.path(
                &format!("M{cx},{from} V{bus_y} H{ux} V{top}"),
                PUBLISH,
                " marker-end=\"url(#sy-publish)\"",
            );
            let n = card.ports.len() as i64;
            for (k, p) in card.ports.iter().enumerate() {
                let ly = top - 6 - (n - 1 - k as i64) * LH;
                s.label(ux + 6, ly, p, &format!(" fill=\"{PUBLISH}\""));
            }
        }
    }

    // Links: down from the parent to a track below the bands, across, up to the child.
    for (i, l) in drawn_links.iter().enumerate() {
        let (p, c) = (l.parent, l.child_index.unwrap_or(l.parent));
        let ty = track_y(i);
        let (px, cx) = (lane_left(p), lane_left(c));
        s.path(
            &format!(
                "M{px},{} V{ty} H{cx} V{}",
                box_top(p) + cards[p].h,
                box_top(c) + cards[c].h
            ),
            "#666666",
            " stroke-dasharray=\"5,4\" marker-end=\"url(#sy-link)\"",
        );
        s.label(
            (px + cx) / 2,
            ty - 4,
            &format!("link {}", l.alias),
            " text-anchor=\"middle\" fill=\"#444444\"",
        );
    }

    // Container boxes, over the lines that end at them.
    for &ci in &order {
        let card = &cards[ci];
        let (x, y) = (col_x[ci], box_top(ci));
        s.rect((x, y, card.w, card.h), 4, ("#ffffff", "#333333"), "");
        s.text(
            x + PAD,
            y + PAD + FS_NAME,
            &card.title,
            &format!(" font-size=\"{FS_NAME}\" font-weight=\"bold\""),
        );
        let mut ty = y + PAD + FS_NAME + LH;
        for l in &card.lines {
            let fill = if l.starts_with("  ") {
                "#666666"
            } else {
                "#222222"
            };
            s.text(
                x + PAD,
                ty,
                l,
                &format!(" fill=\"{fill}\" xml:space=\"preserve\""),
            );
            ty += LH;
        }
    }

    draw_legend(&mut s, legend_y, &legend);
    s.out.push_str("</svg>\n");
    s.out
}

fn legend_items() -> [&'static str; 6] {
    [
        "network: one bridge domain; its host port (a tap) holds the gateway",
        "container: interfaces, addresses, MACs, veths (wires to switch ports)",
        "the same container's interface on another network",
        "published port: uplink HOSTPORT/PROTO -> container PORT",
        "link ALIAS: the parent may reach the ports its child exposes",
        "flags: icc=false, containers talk over links only; internal, no way out",
    ]
}

fn draw_legend(s: &mut Svg, y: i64, items: &[&str]) {
    let x = MARGIN;
    s.text(x, y + FS, "legend", " font-weight=\"bold\"");
    let mut y = y + LH + 4;
    for (i, item) in items.iter().enumerate() {
        let mid = y + LH / 2;
        match i {
            0 => s.rect((x, y + 2, 32, LH - 4), 4, (PALETTE[0].0, PALETTE[0].1), ""),
            1 => s.rect((x + 4, y + 1, 24, LH - 2), 2, ("#ffffff", "#333333"), ""),
            2 => {
                s.path(&format!("M{},{mid} H{}", x, x + 28), "#555555", "");
                s.dot(x + 28, mid, PALETTE[1].1);
            }
            3 => s.path(
                &format!("M{},{mid} H{}", x, x + 32),
                PUBLISH,
                " marker-end=\"url(#sy-publish)\"",
            ),
            4 => s.path(
                &format!("M{},{mid} H{}", x, x + 32),
                "#666666",
                " stroke-dasharray=\"5,4\" marker-end=\"url(#sy-link)\"",
            ),
            _ => s.text(
                x,
                y + FS,
                "flag",
                &format!(" fill=\"{FLAG}\" font-weight=\"bold\""),
            ),
        }
        s.text(x + 44, y + FS - 1, item, " fill=\"#333333\"");
        y += LH + 6;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    fn ep(network: &str, interface: &str, address: &str, mac: &str, veth: &str) -> EndpointView {
        EndpointView {
            network: network.into(),
            interface: interface.into(),
            address: address.into(),
            mac: mac.into(),
            host_interface: veth.into(),
        }
    }

    /// bridge + private (icc=false); web on bridge, pg on private, app on both (linked to pg as
    /// db); an uplink publishing one port of web and one of app. Deliberately not in name order.
    fn fixture() -> Topology {
        let json = r#"{
          "networks": [
            {"name": "private", "subnet": "10.30.0.0/24", "gateway": "10.30.0.1",
             "host_port": "sy-private", "icc": false, "internal": false},
            {"name": "bridge", "subnet": "172.17.0.0/16", "gateway": "172.17.0.1",
             "host_port": "switchyard0", "icc": true, "internal": false}
          ],
          "containers": [
            {"name": "web", "published": ["8080/tcp -> 80"], "links": [],
             "endpoints": [{"network": "bridge", "interface": "eth0", "address": "172.17.0.2/16",
                            "mac": "02:42:ac:11:00:02", "host_interface": "sy-web-0"}]},
            {"name": "pg", "published": [], "links": [],
             "endpoints": [{"network": "private", "interface": "eth0", "address": "10.30.0.2/24",
                            "mac": "02:42:0a:1e:00:02", "host_interface": "sy-pg-0"}]},
            {"name": "app", "published": ["5353/udp -> 53"], "links": ["pg:db"],
             "endpoints": [{"network": "bridge", "interface": "eth0", "address": "172.17.0.3/16",
                            "mac": "02:42:ac:11:00:03", "host_interface": "sy-app-0"},
                           {"network": "private", "interface": "eth1", "address": "10.30.0.3/24",
                            "mac": "02:42:0a:1e:00:03", "host_interface": "sy-app-1"}]}
          ],
          "uplink": {"interface": "ens3", "address": "192.0.2.10/24", "gateway": "192.0.2.1"}
        }"#;
        serde_json::from_str(json).unwrap()
    }

    const HOSTILE: &str = "x\"<&>'\\y\u{1b}[31m";

    fn hostile() -> Topology {
        let mut t = fixture();
        t.networks[1].name = format!("net{HOSTILE}");
        t.networks[1].host_port = format!("tap{HOSTILE}");
        for c in &mut t.containers {
            for e in &mut c.endpoints {
                if e.network == "bridge" {
                    e.network = format!("net{HOSTILE}");
                }
            }
        }
        t.containers[0].name = format!("web{HOSTILE}");
        t.containers[0]
            .published
            .push(format!("1/tcp -> 2{HOSTILE}"));
        t.containers[2].links.push(format!("pg:al{HOSTILE}"));
        t
    }

    fn sometimes_missing(t: &Topology) -> Topology {
        let mut t = t.clone();
        t.containers.push(ContainerView {
            name: "loner".into(),
            endpoints: vec![],
            published: vec!["127.0.0.1:9000/tcp -> 9000".into()],
            links: vec!["ghost".into()],
        });
        t.containers.push(ContainerView {
            name: "stray".into(),
            endpoints: vec![ep(
                "nowhere",
                "eth0",
                "10.99.0.2/24",
                "02:00:00:00:00:01",
                "sy-stray-0",
            )],
            published: vec!["53/udp -> 0.0.0.0:5300".into()],
            links: vec![],
        });
        t.networks.push(NetView {
            name: "island".into(),
            subnet: "10.40.0.0/24".into(),
            gateway: "10.40.0.1".into(),
            host_port: "sy-island".into(),
            icc: true,
            internal: true,
        });
        t
    }

    // ---- golden files ----

    /// The topologies whose renderings are kept, byte for byte, in `src/render/testdata/`.
    fn goldens() -> Vec<(&'static str, Topology)> {
        let mut no_uplink = fixture();
        no_uplink.uplink = None;
        let mut odd = sometimes_missing(&fixture());
        odd.containers[0].name =
            "a-container-with-a-rather-long-name-that-would-overflow-a-fixed-box".into();
        odd.containers[0]
            .published
            .push("65535/udp -> 65535".into());
        // A published range, as Docker expands it: one mapping per port.
        for port in 7000..=7002 {
            odd.containers[2]
                .published
                .push(format!("{port}/tcp -> {}", port - 6000));
        }
        odd.networks[0].name = "a-network-whose-name-is-longer-than-the-header-column-was".into();
        odd.networks[0].host_port = "漢字のホストポート".into();
        let mut hostile = hostile();
        hostile.containers[0].published.pop();
        let mut uplink = fixture().uplink;
        if let Some(u) = &mut uplink {
            u.gateway = None;
        }
        vec![
            ("basic", fixture()),
            ("odd", odd),
            ("no-uplink", no_uplink),
            ("hostile", hostile),
            ("empty", Topology::default()),
            (
                "uplink-only",
                Topology {
                    uplink,
                    ..Topology::default()
                },
            ),
        ]
    }

    /// Compares `actual` with `src/render/testdata/NAME`; `SWITCHYARD_BLESS=1` writes it instead.
    pub(crate) fn golden(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/render/testdata")
            .join(name);
        if std::env::var_os("SWITCHYARD_BLESS").is_some() {
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (SWITCHYARD_BLESS=1 writes it)", path.display()));
        if expected != actual {
            let line = expected
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(expected.lines().count().min(actual.lines().count()));
            panic!(
                "{name} differs from {} at line {}:\n  expected {:?}\n  actual   {:?}",
                path.display(),
                line + 1,
                expected.lines().nth(line),
                actual.lines().nth(line)
            );
        }
    }

    #[test]
    fn renderings_match_the_golden_files() {
        for (name, t) in goldens() {
            golden(&format!("topology-{name}.txt"), &render_text(&t));
            golden(&format!("topology-{name}.dot"), &render_dot(&t));
            golden(&format!("topology-{name}.svg"), &render_svg(&t));
        }
    }

    // ---- text ----

    #[test]
    fn text_of_the_fixture() {
        let expected = "\
uplink ens3  192.0.2.10/24  gateway 192.0.2.1
|-- 192.0.2.10:5353/udp -> app:53
`-- 192.0.2.10:8080/tcp -> web:80

network bridge  172.17.0.0/16  gateway 172.17.0.1  host port switchyard0
|-- app  eth0  172.17.0.3/16  02:42:ac:11:00:03  veth sy-app-0  (also on private)  (links: pg as db)
`-- web  eth0  172.17.0.2/16  02:42:ac:11:00:02  veth sy-web-0

network private  10.30.0.0/24  gateway 10.30.0.1  host port sy-private  [icc=false]
|-- app  eth1  10.30.0.3/24  02:42:0a:1e:00:03  veth sy-app-1  (also on bridge)  (links: pg as db)
`-- pg   eth0  10.30.0.2/24  02:42:0a:1e:00:02  veth sy-pg-0
";
        assert_eq!(render_text(&fixture()), expected);
    }

    #[test]
    fn text_of_odd_cases() {
        let text = render_text(&sometimes_missing(&fixture()));
        assert!(text.contains("network island  10.40.0.0/24  gateway 10.40.0.1  host port sy-island  [internal]\n`-- (no containers)\n"), "{text}");
        assert!(
            text.contains("network nowhere  (not in this topology)\n`-- stray  eth0"),
            "{text}"
        );
        assert!(
            text.contains("not attached to any network\n`-- loner  (links: ghost as ghost)\n"),
            "{text}"
        );
        // An explicit host address wins; docker's `80/tcp -> 0.0.0.0:8080` form is understood.
        assert!(
            text.contains("|-- 127.0.0.1:9000/tcp -> loner:9000\n"),
            "{text}"
        );
        assert!(
            text.contains("|-- 192.0.2.10:5300/udp -> stray:53\n"),
            "{text}"
        );

        let mut t = fixture();
        t.uplink = None;
        let text = render_text(&t);
        assert!(text.starts_with("uplink: none (published ports are unreachable until there is one)\n|-- *:5353/udp -> app:53\n"), "{text}");
    }

    #[test]
    fn text_cannot_drive_the_terminal() {
        let text = render_text(&hostile());
        assert!(!text.contains('\u{1b}'));
        assert!(
            text.contains("`-- webx\"<&>'\\y\u{fffd}[31m  eth0"),
            "{text}"
        );
    }

    // ---- order and determinism ----

    #[test]
    fn output_depends_on_content_not_order() {
        let t = sometimes_missing(&fixture());
        let mut r = t.clone();
        r.networks.reverse();
        r.containers.reverse();
        assert_eq!(render_text(&t), render_text(&r));
        assert_eq!(render_dot(&t), render_dot(&r));
        assert_eq!(render_svg(&t), render_svg(&r));
        assert_eq!(render_svg(&t), render_svg(&t));
        assert_eq!(render_dot(&t), render_dot(&t));
    }

    #[test]
    fn topology_round_trips_through_json() {
        let t = fixture();
        let back: Topology = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(render_text(&t), render_text(&back));
    }

    // ---- empty ----

    #[test]
    fn empty_topology() {
        let t = Topology::default();
        assert_eq!(
            render_text(&t),
            "uplink: none\n\nno networks, no containers\n"
        );
        let dot = render_dot(&t);
        check_dot(&dot).unwrap();
        assert!(dot.contains("no networks, no containers"));
        run_dot(&dot);
        let svg = render_svg(&t);
        check_xml(&svg).unwrap();
        run_xmllint(&svg);
        check_no_overflow(&svg);
        assert!(svg.contains("no networks, no containers"));
    }

    // ---- dot ----

    #[test]
    fn dot_of_the_fixture() {
        let dot = render_dot(&fixture());
        check_dot(&dot).unwrap();
        run_dot(&dot);
        for s in [
            "subgraph \"cluster_n0\"",
            "label=\"bridge\\n172.17.0.0/16  gateway 172.17.0.1\"",
            "label=\"private\\n10.30.0.0/24  gateway 10.30.0.1\\nicc=false\"",
            "\"n0_host\" [label=\"host port switchyard0\\n172.17.0.1\", shape=ellipse]",
            "\"n1_e0\" [label=\"app eth1\\n10.30.0.3/24\\n02:42:0a:1e:00:03\"",
            "\"n1_e0\" -- \"n1_switch\" [label=\"veth sy-app-1\"]",
            "\"c0\" [label=\"app\"",
            "\"c0\" -- \"n0_e0\";",
            "\"c0\" -- \"n1_e0\";",
            "\"uplink\" [label=\"uplink ens3\\n192.0.2.10/24\\ngateway 192.0.2.1\"",
            "\"uplink\" -- \"c0\" [label=\"5353/udp -> 53\", dir=forward",
            "\"uplink\" -- \"c2\" [label=\"8080/tcp -> 80\", dir=forward",
            "\"c0\" -- \"c1\" [label=\"link db\", style=dashed, dir=forward]",
        ] {
            assert!(dot.contains(s), "missing {s} in\n{dot}");
        }
        let odd = render_dot(&sometimes_missing(&fixture()));
        check_dot(&odd).unwrap();
        run_dot(&odd);
        assert!(
            odd.contains("[label=\"ghost\\n(not in this topology)\", style=dashed]"),
            "{odd}"
        );
    }

    #[test]
    fn dot_escapes_names() {
        let dot = render_dot(&hostile());
        check_dot(&dot).unwrap();
        assert!(
            dot.contains("\"webx\\\"<&amp;>'\\\\y\u{fffd}[31m\""),
            "{dot}"
        );
        assert!(!dot.contains('\u{1b}'));
        if let Some(svg) = run_dot(&dot) {
            // Graphviz shows the names as they are (entities decoded once, backslash literal).
            check_xml(&svg).unwrap();
            assert!(
                svg.contains("webx&quot;&lt;&amp;&gt;&#39;\\y")
                    || svg.contains("webx&quot;&lt;&amp;&gt;'\\y"),
                "{svg}"
            );
        }
    }

    // ---- svg ----

    #[test]
    fn svg_of_the_fixture() {
        let t = fixture();
        let svg = render_svg(&t);
        check_xml(&svg).unwrap();
        run_xmllint(&svg);
        check_no_overflow(&svg);
        for s in [
            "bridge",
            "private",
            "172.17.0.0/16",
            "gateway 10.30.0.1",
            "host port switchyard0",
            "host port sy-private",
            "icc=false",
            "web",
            "app",
            "pg",
            "bridge: eth0 172.17.0.3/16",
            "private: eth1 10.30.0.3/24",
            "mac 02:42:0a:1e:00:03",
            "veth sy-pg-0",
            "uplink ens3",
            "192.0.2.10/24",
            "gateway 192.0.2.1",
            ">8080/tcp -&gt; 80<",
            ">5353/udp -&gt; 53<",
            ">eth1 10.30.0.3/24<",
            ">link db<",
            "legend",
        ] {
            assert!(svg.contains(s), "missing {s}");
        }
        // Three containers, one box each; two published arrows, one link.
        assert_eq!(
            svg.matches("stroke=\"#333333\"/>").count(),
            3 + 1 /* legend */
        );
        assert_eq!(
            svg.matches("marker-end=\"url(#sy-publish)\"").count(),
            2 + 1
        );
        assert_eq!(svg.matches("marker-end=\"url(#sy-link)\"").count(), 1 + 1);
        // `TOPOLOGY_SVG=/tmp/t.svg cargo test svg_of_the_fixture` to look at it.
        if let Some(path) = std::env::var_os("TOPOLOGY_SVG") {
            std::fs::write(path, &svg).unwrap();
        }
    }

    #[test]
    fn svg_escapes_names() {
        let svg = render_svg(&hostile());
        check_xml(&svg).unwrap();
        run_xmllint(&svg);
        check_no_overflow(&svg);
        let escaped = "x&quot;&lt;&amp;&gt;&apos;\\y\u{fffd}[31m";
        for s in ["web", "net", "host port tap", "link al", "1/tcp -&gt; 2"] {
            assert!(
                svg.contains(&format!("{s}{escaped}")),
                "missing {s}{escaped}"
            );
        }
        assert!(!svg.contains(HOSTILE) && !svg.contains('\u{1b}'));
    }

    #[test]
    fn svg_of_odd_cases_and_long_names() {
        let mut t = sometimes_missing(&fixture());
        t.containers[0].name =
            "a-container-with-a-rather-long-name-that-would-overflow-a-fixed-box".into();
        t.containers[0].published.push("65535/udp -> 65535".into());
        t.networks[0].name = "a-network-whose-name-is-longer-than-the-header-column-was".into();
        t.networks[0].host_port = "漢字のホストポート".into();
        let svg = render_svg(&t);
        check_xml(&svg).unwrap();
        run_xmllint(&svg);
        check_no_overflow(&svg);
        for s in [
            "loner",
            "stray",
            "nowhere",
            "not in this topology",
            "no network",
            "island",
            "internal",
        ] {
            assert!(svg.contains(s), "missing {s}");
        }
        let svg = render_svg(&Topology {
            uplink: fixture().uplink,
            ..Topology::default()
        });
        check_xml(&svg).unwrap();
        check_no_overflow(&svg);
        assert!(svg.contains("uplink ens3"));
    }

    #[test]
    fn width_estimate() {
        assert_eq!(text_width("", 12), 0);
        assert_eq!(text_width("abcde", 10), 30);
        assert_eq!(text_width("漢字", 10), 24);
    }

    // ---- checkers ----

    /// Runs `dot -Tsvg` (Graphviz); its SVG output.
    fn run_dot(dot: &str) -> Option<String> {
        let out = pipe("dot", &["-Tsvg"], dot)?;
        assert!(
            out.status.success(),
            "dot rejected:\n{}\n{dot}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "dot warned: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8(out.stdout).unwrap())
    }

    fn run_xmllint(svg: &str) {
        if let Some(out) = pipe("xmllint", &["--noout", "-"], svg) {
            assert!(
                out.status.success(),
                "xmllint: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn pipe(program: &str, args: &[&str], input: &str) -> Option<std::process::Output> {
        let mut child = match Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            // tools/test.sh installs graphviz and libxml2-utils: a missing checker is a failure,
            // never a silently skipped check.
            Err(e) => {
                panic!("{program}: {e} (install graphviz and libxml2-utils, as tools/test.sh does)")
            }
        };
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        Some(child.wait_with_output().unwrap())
    }

    /// A small well-formedness check: one root, balanced tags, quoted attributes without `<`,
    /// only the predefined or numeric entities, no raw `<` or `&` in text, no control characters.
    fn check_xml(s: &str) -> Result<(), String> {
        fn entity(rest: &str) -> Result<usize, String> {
            let end = rest.find(';').ok_or("unterminated entity")?;
            let name = &rest[1..end];
            let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                || name
                    .strip_prefix("#x")
                    .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
                || name
                    .strip_prefix('#')
                    .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
            if ok {
                Ok(end + 1)
            } else {
                Err(format!("bad entity &{name};"))
            }
        }
        fn is_name(c: char) -> bool {
            c.is_alphanumeric() || matches!(c, ':' | '_' | '-' | '.')
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
        {
            return Err(format!("control character {c:?}"));
        }
        let mut stack: Vec<&str> = Vec::new();
        let mut roots = 0;
        let mut i = 0;
        while i < s.len() {
            let rest = &s[i..];
            if let Some(r) = rest.strip_prefix("<?") {
                i += 2 + r.find("?>").ok_or("unterminated <?")? + 2;
            } else if let Some(r) = rest.strip_prefix("<!--") {
                i += 4 + r.find("-->").ok_or("unterminated comment")? + 3;
            } else if rest.starts_with("<!DOCTYPE") {
                i += rest.find('>').ok_or("unterminated doctype")? + 1;
            } else if let Some(r) = rest.strip_prefix("</") {
                let end = r.find('>').ok_or("unterminated end tag")?;
                let name = r[..end].trim_end();
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
                i += 2 + end + 1;
            } else if let Some(r) = rest.strip_prefix('<') {
                let name_len = r.find(|c: char| !is_name(c)).unwrap_or(r.len());
                if name_len == 0 {
                    return Err(format!("bad tag at {i}"));
                }
                let name = &r[..name_len];
                let mut j = name_len;
                let mut seen = Vec::new();
                loop {
                    let t = &r[j..];
                    let ws = t.len() - t.trim_start().len();
                    let t = t.trim_start();
                    j += ws;
                    if t.starts_with("/>") {
                        j += 2;
                        if stack.is_empty() {
                            roots += 1;
                        }
                        break;
                    }
                    if t.starts_with('>') {
                        j += 1;
                        if stack.is_empty() {
                            roots += 1;
                        }
                        stack.push(name);
                        break;
                    }
                    if ws == 0 {
                        return Err(format!("attribute without space in <{name}>"));
                    }
                    let an = t.find(|c: char| !is_name(c)).unwrap_or(t.len());
                    if an == 0 {
                        return Err(format!(
                            "bad attribute in <{name}>: {}",
                            &t[..t.len().min(20)]
                        ));
                    }
                    if seen.contains(&&t[..an]) {
                        return Err(format!("duplicate attribute {}", &t[..an]));
                    }
                    seen.push(&t[..an]);
                    let t2 = t[an..].trim_start();
                    let t2 = t2
                        .strip_prefix('=')
                        .ok_or("attribute without =")?
                        .trim_start();
                    let q = t2.chars().next().ok_or("eof in tag")?;
                    if q != '"' && q != '\'' {
                        return Err("unquoted attribute".into());
                    }
                    let vend = t2[1..].find(q).ok_or("unterminated attribute")?;
                    let value = &t2[1..1 + vend];
                    if value.contains('<') {
                        return Err("< in attribute".into());
                    }
                    let mut k = 0;
                    while let Some(a) = value[k..].find('&') {
                        k += a + entity(&value[k + a..])?;
                    }
                    j += t.len() - t2.len() + 1 + vend + 1;
                }
                i += 1 + j;
            } else if rest.starts_with('&') {
                i += entity(rest)?;
            } else {
                if stack.is_empty() && !rest.starts_with(char::is_whitespace) {
                    return Err(format!("text outside the root at {i}"));
                }
                i += rest.chars().next().unwrap().len_utf8();
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed {stack:?}"));
        }
        if roots != 1 {
            return Err(format!("{roots} root elements"));
        }
        Ok(())
    }

    #[test]
    fn the_xml_checker_catches_mistakes() {
        check_xml("<a x=\"1\"><b/>t &amp; u</a>\n").unwrap();
        for bad in [
            "<a><b></a>",
            "<a>x & y</a>",
            "<a>x < y</a>",
            "<a x=\"<\"/>",
            "<a/><b/>",
            "<a",
            "<a x=1/>",
            "<a>\u{1b}</a>",
        ] {
            assert!(check_xml(bad).is_err(), "{bad}");
        }
    }

    /// Graphviz tokens: quoted strings (with `\` escapes), identifiers, `--`, punctuation.
    fn dot_tokens(s: &str) -> Result<Vec<String>, String> {
        let mut tokens = Vec::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                c if c.is_whitespace() => {}
                '"' => {
                    let mut t = String::from('"');
                    loop {
                        match chars.next().ok_or("unterminated string")? {
                            '\\' => {
                                t.push('\\');
                                t.push(chars.next().ok_or("unterminated escape")?);
                            }
                            '"' => break,
                            '\n' => return Err("newline in string".into()),
                            c => t.push(c),
                        }
                    }
                    t.push('"');
                    tokens.push(t);
                }
                '-' if chars.peek() == Some(&'-') => {
                    chars.next();
                    tokens.push("--".into());
                }
                '-' if chars.peek() == Some(&'>') => return Err("-> in an undirected graph".into()),
                '{' | '}' | '[' | ']' | ';' | ',' | '=' => tokens.push(c.to_string()),
                c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                    let mut t = c.to_string();
                    while let Some(&n) = chars.peek() {
                        if n.is_ascii_alphanumeric() || n == '_' || n == '.' {
                            t.push(n);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    tokens.push(t);
                }
                c => return Err(format!("unexpected {c:?}")),
            }
        }
        Ok(tokens)
    }

    /// The structure Graphviz needs: `graph ID {`, balanced braces and brackets, `key=value` lists,
    /// statements ended by `;`, and every edge between declared nodes.
    fn check_dot(s: &str) -> Result<(), String> {
        let t = dot_tokens(s)?;
        if t.len() < 4
            || t[0] != "graph"
            || t[2] != "{"
            || t.last().map(String::as_str) != Some("}")
        {
            return Err("not `graph ID { ... }`".into());
        }
        let mut depth = 0;
        let mut nodes = BTreeSet::new();
        let mut edges = Vec::new();
        let mut i = 2;
        while i < t.len() {
            match t[i].as_str() {
                "{" => depth += 1,
                "}" => {
                    depth -= 1;
                    if depth < 0 {
                        return Err("unbalanced }".into());
                    }
                }
                "[" => {
                    let mut j = i + 1;
                    while t.get(j).map(String::as_str) != Some("]") {
                        let (k, eq, v) = (t.get(j), t.get(j + 1), t.get(j + 2));
                        if eq.map(String::as_str) != Some("=")
                            || k.is_none()
                            || v.is_none_or(|v| "[]{};,=".contains(v.as_str()))
                        {
                            return Err(format!(
                                "bad attribute list at {:?}",
                                &t[i..(j + 3).min(t.len())]
                            ));
                        }
                        j += 3;
                        if t.get(j).map(String::as_str) == Some(",") {
                            j += 1;
                        }
                    }
                    i = j;
                }
                "--" => {
                    edges.push((t[i - 1].clone(), t.get(i + 1).cloned().unwrap_or_default()));
                }
                tok if tok.starts_with('"')
                    && t.get(i + 1).map(String::as_str) == Some("[")
                    && t[i - 1] != "--" =>
                {
                    nodes.insert(tok.to_string());
                }
                _ => {}
            }
            i += 1;
        }
        if depth != 0 {
            return Err("unbalanced {".into());
        }
        for (a, b) in edges {
            for n in [&a, &b] {
                if !nodes.contains(n) {
                    return Err(format!("edge {a} -- {b}: {n} not declared"));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn the_dot_checker_catches_mistakes() {
        check_dot(
            "graph g {\n \"a\" [label=\"x\\\"y\"];\n \"b\" [label=\"\"];\n \"a\" -- \"b\";\n}\n",
        )
        .unwrap();
        for bad in [
            "graph g { \"a\" [label=\"x\"y\"]; }",
            "graph g { \"a\" [label=\"x\"]; ",
            "graph g { \"a\" [label=]; }",
            "graph g { \"a\" [label=\"x\"]; \"a\" -- \"c\"; }",
            "graph g { \"a\" [label=\"x\"]; \"a\" -> \"a\"; }",
        ] {
            assert!(check_dot(bad).is_err(), "{bad}");
        }
    }

    /// Every `<text>` of our own SVG fits, by the width estimate, inside the smallest rectangle
    /// holding its anchor point (its container box, band, or the whole picture).
    fn check_no_overflow(svg: &str) {
        fn attr(line: &str, name: &str) -> Option<i64> {
            let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
            line[start..].split('"').next()?.parse().ok()
        }
        fn unescape(s: &str) -> String {
            s.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        }
        let rects: Vec<(i64, i64, i64, i64)> = svg
            .lines()
            .filter(|l| l.starts_with("<rect"))
            .map(|l| {
                (
                    attr(l, "x").unwrap(),
                    attr(l, "y").unwrap(),
                    attr(l, "width").unwrap(),
                    attr(l, "height").unwrap(),
                )
            })
            .collect();
        for line in svg.lines().filter(|l| l.starts_with("<text")) {
            let (x, y) = (attr(line, "x").unwrap(), attr(line, "y").unwrap());
            let size = attr(line, "font-size").unwrap_or(FS);
            let content =
                unescape(&line[line.find('>').unwrap() + 1..line.rfind("</text>").unwrap()]);
            let w = text_width(&content, size);
            let (left, right) = if line.contains("text-anchor=\"end\"") {
                (x - w, x)
            } else if line.contains("text-anchor=\"middle\"") {
                (x - w / 2, x + w / 2)
            } else {
                (x, x + w)
            };
            let inside = rects
                .iter()
                .filter(|r| r.0 <= x && x <= r.0 + r.2 && r.1 <= y && y <= r.1 + r.3)
                .min_by_key(|r| r.2 * r.3)
                .unwrap_or_else(|| panic!("{line} outside the picture"));
            assert!(
                inside.0 <= left && right <= inside.0 + inside.2,
                "{content:?} ({left}..{right}) overflows {inside:?}"
            );
        }
    }
}
