//! Where everything goes: the SVG's boxes sized from their text, columns left to right, bands top
//! to bottom, then the tracks of link lines and the legend.

use super::canvas::{
    text_width, BAND_GAP, COL_GAP, FS, FS_NAME, FS_TITLE, GREY, LANE, LH, MARGIN, PAD, PALETTE,
};
use super::legend_items;
use crate::render::topology::scene::{address, mac, subnet, uplink_address, Link, NetKind, Scene};

/// What one container box shows and needs.
pub(super) struct Card {
    pub title: String,
    pub lines: Vec<String>,
    pub ports: Vec<String>,
    /// Other networks (band index) with the label at the junction: `eth1 10.20.0.128/24`.
    pub junctions: Vec<(usize, String)>,
    pub w: i64,
    pub h: i64,
}

pub(super) struct Band {
    pub y: i64,
    pub h: i64,
    pub header: Vec<String>,
    pub flags: Vec<&'static str>,
    pub colors: (&'static str, &'static str),
    pub dashed: bool,
    /// Free height above the boxes for the published-port labels.
    pub label_space: i64,
}

impl Band {
    pub fn junction_y(&self) -> i64 {
        self.y + self.h / 2
    }
}

/// The uplink box, centred above the bands.
pub(super) struct UplinkBox {
    pub lines: Vec<String>,
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    /// The height of the horizontal line the published-port arrows leave the uplink by.
    pub bus_y: i64,
}

pub(super) struct Layout<'a> {
    pub width: i64,
    pub height: i64,
    pub title: String,
    pub title_y: i64,
    /// Per container (by index in the scene): its band, box and column.
    pub home: Vec<usize>,
    pub cards: Vec<Card>,
    pub col_x: Vec<i64>,
    /// Containers left to right.
    pub order: Vec<usize>,
    pub bands: Vec<Band>,
    pub bands_top: i64,
    pub uplink: Option<UplinkBox>,
    /// Links between two different containers of the topology, each on its own track.
    pub drawn_links: Vec<&'a Link<'a>>,
    pub bands_bottom: i64,
    pub legend_y: i64,
}

impl Layout<'_> {
    pub fn box_top(&self, ci: usize) -> i64 {
        let b = &self.bands[self.home[ci]];
        b.y + 10 + b.label_space
    }

    /// Uplink arrows and link lines run `LANE` px from a column's left edge.
    pub fn lane_left(&self, ci: usize) -> i64 {
        self.col_x[ci] + LANE
    }

    /// Lines to a container's other networks run `LANE` px from its column's right edge.
    pub fn lane_right(&self, ci: usize) -> i64 {
        self.col_x[ci] + self.cards[ci].w - LANE
    }

    /// The height of the `i`th link's horizontal track, below the bands.
    pub fn track_y(&self, i: usize) -> i64 {
        self.bands_bottom + 22 + 18 * i as i64
    }
}

pub(super) const EMPTY_NOTE: &str = "no networks, no containers";

pub(super) fn layout<'a>(m: &'a Scene<'a>, networks: usize, containers: usize) -> Layout<'a> {
    let home = homes(m);
    let cards: Vec<Card> = (0..m.cons.len()).map(|ci| card(m, ci, home[ci])).collect();
    // Columns, left to right: by band, then by name.
    let mut order: Vec<usize> = (0..m.cons.len()).collect();
    order.sort_by_key(|&ci| (home[ci], ci));
    let mut bands: Vec<Band> = m
        .nets
        .iter()
        .enumerate()
        .map(|(ni, _)| band(m, ni))
        .collect();

    // Horizontal layout.
    let mut col_x = vec![0; m.cons.len()];
    let mut x = MARGIN + header_width(&bands) + COL_GAP;
    for &ci in &order {
        col_x[ci] = x;
        x += cards[ci].w + COL_GAP;
    }
    let content_right = x - COL_GAP + PAD;
    let title = title(networks, containers);
    let uplink_lines = uplink_lines(m);
    let uplink_w = uplink_lines
        .iter()
        .enumerate()
        .map(|(i, l)| text_width(l, if i == 0 { FS_NAME } else { FS }))
        .max()
        .unwrap_or(0)
        + 2 * PAD;
    let width = [
        content_right + MARGIN,
        uplink_w + 2 * MARGIN,
        legend_width() + 2 * MARGIN,
        text_width(&title, FS_TITLE) + 2 * MARGIN,
        text_width(EMPTY_NOTE, FS) + 2 * MARGIN + 2 * PAD,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);

    // Vertical layout: title, uplink, bands, link tracks, legend.
    let title_y = MARGIN + FS_TITLE;
    let (uplink, bands_top) = uplink_box(m, uplink_lines, uplink_w, width, title_y + 14);
    let bands_bottom = stack_bands(&mut bands, bands_top, &order, &home, &cards);
    let drawn_links: Vec<&Link> = m
        .links
        .iter()
        .filter(|l| l.child_index.is_some_and(|c| c != l.parent))
        .collect();
    let mut l = Layout {
        width,
        height: 0,
        title,
        title_y,
        home,
        cards,
        col_x,
        order,
        bands,
        bands_top,
        uplink,
        drawn_links,
        bands_bottom,
        legend_y: 0,
    };
    l.legend_y = match l.drawn_links.len() {
        0 => bands_bottom + 16,
        n => l.track_y(n - 1) + 16,
    };
    l.height = l.legend_y + LH + 4 + (LH + 6) * legend_items().len() as i64 + MARGIN;
    l
}

fn title(networks: usize, containers: usize) -> String {
    format!(
        "switchyard topology: {} network{}, {} container{}",
        networks,
        if networks == 1 { "" } else { "s" },
        containers,
        if containers == 1 { "" } else { "s" }
    )
}

fn legend_width() -> i64 {
    legend_items()
        .iter()
        .map(|l| text_width(l, FS))
        .max()
        .unwrap_or(0)
        + 48
}

/// The uplink box at height `y`, centred, when it is drawn, and the height the bands start at.
fn uplink_box(
    m: &Scene,
    lines: Vec<String>,
    w: i64,
    width: i64,
    y: i64,
) -> (Option<UplinkBox>, i64) {
    if !m.show_uplink() {
        return (None, y);
    }
    let mut uplink = UplinkBox {
        x: (width - w) / 2,
        y,
        w,
        h: 2 * PAD + LH * lines.len() as i64,
        lines,
        bus_y: 0,
    };
    let below = y + uplink.h;
    let bands_top = if m.published.is_empty() {
        below + 16
    } else {
        uplink.bus_y = below + 14;
        uplink.bus_y + 14
    };
    (Some(uplink), bands_top)
}

/// The band of each container: the network of its first endpoint.
fn homes(m: &Scene) -> Vec<usize> {
    (0..m.cons.len())
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
        .collect()
}

/// Container `ci`'s box, whose band is `home`.
fn card(m: &Scene, ci: usize, home: usize) -> Card {
    let c = m.cons[ci];
    let mut lines = Vec::new();
    for e in &c.endpoints {
        lines.push(format!("{}: {} {}", e.network, e.interface, address(e)));
        lines.push(format!("  mac {}", mac(e)));
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
    let ports = m.port_labels(ci);
    let mut junctions = Vec::new();
    for (ni, n) in m.nets.iter().enumerate() {
        if ni == home {
            continue;
        }
        if let Some(&(_, Some(ei))) = n.members.iter().find(|&&(c, _)| c == ci) {
            let e = &c.endpoints[ei];
            junctions.push((ni, format!("{} {}", e.interface, address(e))));
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
}

/// Network `ni`'s band, before it is placed.
fn band(m: &Scene, ni: usize) -> Band {
    let n = &m.nets[ni];
    let (header, flags, colors, dashed) = match n.kind {
        NetKind::Known(v) => {
            let mut flags = Vec::new();
            if !v.icc {
                flags.push("icc=false");
            }
            if v.internal {
                flags.push("internal");
            }
            if v.routed {
                flags.push("routed");
            }
            (
                vec![
                    v.name.clone(),
                    subnet(v),
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
}

/// The width of the header column, at the left of every band.
fn header_width(bands: &[Band]) -> i64 {
    bands
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
        + 2 * PAD
}

fn uplink_lines(m: &Scene) -> Vec<String> {
    match m.uplink {
        Some(u) => {
            let mut l = vec![format!("uplink {}", u.interface), uplink_address(u)];
            if let Some(gw) = &u.gateway {
                l.push(format!("gateway {gw}"));
            }
            l
        }
        None => vec![
            "no uplink".to_string(),
            "published ports are unreachable".to_string(),
        ],
    }
}

/// Places the bands from `top` down, each as high as its header or its boxes with their port
/// labels; the bottom of the last band.
fn stack_bands(
    bands: &mut [Band],
    top: i64,
    order: &[usize],
    home: &[usize],
    cards: &[Card],
) -> i64 {
    let mut y = top;
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
    if bands.is_empty() {
        y + 40
    } else {
        y - BAND_GAP
    }
}
