//! The topology as a picture drawn without Graphviz: networks as horizontal bands stacked
//! vertically, containers as boxes in the band of their first network (each in its own column, so
//! lines never cross a box), a line to every other network they are attached to, the uplink on top
//! with arrows to the containers it publishes, links as dashed arrows, and a legend.
//!
//! `layout` decides where everything goes; the functions here draw it, back to front.

pub(super) mod canvas;
mod layout;

use std::fmt::Write;

use crate::api::topology::Topology;
use canvas::{
    xml_escape, Svg, FLAG, FONT, FS, FS_NAME, FS_TITLE, GREY, LH, MARGIN, PAD, PALETTE, PUBLISH,
};
use layout::{Layout, UplinkBox, EMPTY_NOTE};

use super::scene::Scene;

pub fn render_svg(t: &Topology) -> String {
    let m = Scene::new(t);
    let l = layout::layout(&m, t.networks.len(), t.containers.len());
    let mut s = Svg { out: String::new() };
    frame(&mut s, &l);
    bands(&mut s, &l);
    junctions(&mut s, &l);
    if let Some(u) = &l.uplink {
        uplink(&mut s, &l, u, m.uplink.is_none());
    }
    links(&mut s, &l);
    boxes(&mut s, &l);
    legend(&mut s, l.legend_y, &legend_items());
    s.out.push_str("</svg>\n");
    s.out
}

/// The root element, title, arrow markers, background and heading.
fn frame(s: &mut Svg, l: &Layout) {
    let (width, height) = (l.width, l.height);
    let _ = writeln!(
        s.out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"{FONT}\" font-size=\"{FS}\">"
    );
    let _ = writeln!(s.out, "<title>{}</title>", xml_escape(&l.title));
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
        l.title_y,
        &l.title,
        &format!(" font-size=\"{FS_TITLE}\" font-weight=\"bold\""),
    );
}

/// One band per network with its header and flags, or a note when there are none.
fn bands(s: &mut Svg, l: &Layout) {
    if l.bands.is_empty() {
        s.rect(
            (MARGIN, l.bands_top, l.width - 2 * MARGIN, 40),
            10,
            (GREY.0, GREY.1),
            " stroke-dasharray=\"6,4\"",
        );
        s.text(
            MARGIN + PAD,
            l.bands_top + 25,
            EMPTY_NOTE,
            " fill=\"#555555\"",
        );
    }
    for b in &l.bands {
        let dash = if b.dashed {
            " stroke-dasharray=\"6,4\""
        } else {
            ""
        };
        s.rect(
            (MARGIN, b.y, l.width - 2 * MARGIN, b.h),
            10,
            (b.colors.0, b.colors.1),
            dash,
        );
        let mut ty = b.y + PAD + FS_NAME;
        for (i, line) in b.header.iter().enumerate() {
            let style = if i == 0 {
                format!(
                    " font-size=\"{FS_NAME}\" font-weight=\"bold\" fill=\"{}\"",
                    b.colors.1
                )
            } else {
                " fill=\"#333333\"".to_string()
            };
            s.text(MARGIN + PAD, ty, line, &style);
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
}

/// Lines from each box to its other networks, then their junctions.
fn junctions(s: &mut Svg, l: &Layout) {
    for &ci in &l.order {
        let card = &l.cards[ci];
        let rx = l.lane_right(ci);
        let top = l.box_top(ci);
        let bottom = top + card.h;
        let ys = card.junctions.iter().map(|j| l.bands[j.0].junction_y());
        if let Some(up) = ys.clone().filter(|&jy| jy < top).min() {
            s.path(&format!("M{rx},{top} V{up}"), "#555555", "");
        }
        if let Some(down) = ys.filter(|&jy| jy > bottom).max() {
            s.path(&format!("M{rx},{bottom} V{down}"), "#555555", "");
        }
        for (bi, label) in &card.junctions {
            let jy = l.bands[*bi].junction_y();
            s.dot(rx, jy, l.bands[*bi].colors.1);
            s.label(rx - 7, jy - 5, label, " text-anchor=\"end\"");
        }
    }
}

/// The uplink box and its arrows to the containers it publishes, labelled with the ports.
fn uplink(s: &mut Svg, l: &Layout, u: &UplinkBox, missing: bool) {
    let dash = if missing {
        " stroke-dasharray=\"6,4\""
    } else {
        ""
    };
    s.rect((u.x, u.y, u.w, u.h), 6, ("#fff6d6", "#b58a00"), dash);
    let mut ty = u.y + PAD + FS_NAME;
    for (i, line) in u.lines.iter().enumerate() {
        let style = if i == 0 {
            format!(" font-size=\"{FS_NAME}\" font-weight=\"bold\"")
        } else {
            String::new()
        };
        s.text(u.x + PAD, ty, line, &style);
        ty += LH;
    }
    let cx = u.x + u.w / 2;
    let from = u.y + u.h;
    for &ci in &l.order {
        let card = &l.cards[ci];
        if card.ports.is_empty() {
            continue;
        }
        let ux = l.lane_left(ci);
        let top = l.box_top(ci);
        s.path(
            &format!("M{cx},{from} V{} H{ux} V{top}", u.bus_y),
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

/// Links: down from the parent to a track below the bands, across, up to the child.
fn links(s: &mut Svg, l: &Layout) {
    for (i, link) in l.drawn_links.iter().enumerate() {
        let (p, c) = (link.parent, link.child_index.unwrap_or(link.parent));
        let ty = l.track_y(i);
        let (px, cx) = (l.lane_left(p), l.lane_left(c));
        s.path(
            &format!(
                "M{px},{} V{ty} H{cx} V{}",
                l.box_top(p) + l.cards[p].h,
                l.box_top(c) + l.cards[c].h
            ),
            "#666666",
            " stroke-dasharray=\"5,4\" marker-end=\"url(#sy-link)\"",
        );
        s.label(
            (px + cx) / 2,
            ty - 4,
            &format!("link {}", link.alias),
            " text-anchor=\"middle\" fill=\"#444444\"",
        );
    }
}

/// Container boxes, over the lines that end at them.
fn boxes(s: &mut Svg, l: &Layout) {
    for &ci in &l.order {
        let card = &l.cards[ci];
        let (x, y) = (l.col_x[ci], l.box_top(ci));
        s.rect((x, y, card.w, card.h), 4, ("#ffffff", "#333333"), "");
        s.text(
            x + PAD,
            y + PAD + FS_NAME,
            &card.title,
            &format!(" font-size=\"{FS_NAME}\" font-weight=\"bold\""),
        );
        let mut ty = y + PAD + FS_NAME + LH;
        for line in &card.lines {
            let fill = if line.starts_with("  ") {
                "#666666"
            } else {
                "#222222"
            };
            s.text(
                x + PAD,
                ty,
                line,
                &format!(" fill=\"{fill}\" xml:space=\"preserve\""),
            );
            ty += LH;
        }
    }
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

fn legend(s: &mut Svg, y: i64, items: &[&str]) {
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
