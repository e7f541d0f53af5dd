//! The SVG canvas: sizes, colours, escaping, the width estimate of text, and the few shapes the
//! picture is drawn with.

use std::fmt::Write;

use crate::render::topology::scene::clean;

/// Text for XML content and attribute values.
pub(crate) fn xml_escape(s: &str) -> String {
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
pub(crate) fn text_width(s: &str, size: i64) -> i64 {
    let cells: i64 = s.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum();
    (cells * size * 6 + 9) / 10
}

pub(crate) const MARGIN: i64 = 16;
pub(crate) const FS: i64 = 12;
pub(crate) const FS_NAME: i64 = 13;
pub(crate) const FS_TITLE: i64 = 16;
pub(crate) const LH: i64 = 15;
pub(crate) const PAD: i64 = 8;
pub(crate) const COL_GAP: i64 = 20;
pub(crate) const BAND_GAP: i64 = 14;
/// A container column: uplink arrows and link lines run `LANE` px from its left edge, lines to its
/// other networks `LANE` px from its right edge.
pub(crate) const LANE: i64 = 14;
pub(crate) const FONT: &str = "'DejaVu Sans Mono', Menlo, Consolas, 'Liberation Mono', monospace";
/// (fill, stroke) per band, cycled.
pub(crate) const PALETTE: [(&str, &str); 5] = [
    ("#e8f1fb", "#4a7bb7"),
    ("#eaf6ea", "#4f9a55"),
    ("#fdf1e3", "#c9822b"),
    ("#f3ecf9", "#8a62b5"),
    ("#fbe9ee", "#b5526f"),
];
pub(crate) const GREY: (&str, &str) = ("#f2f2f2", "#888888");
pub(crate) const PUBLISH: &str = "#b5651d";
pub(crate) const FLAG: &str = "#c0392b";

pub(crate) struct Svg {
    pub out: String,
}

impl Svg {
    /// `(x, y, width, height)`, corner radius, `(fill, stroke)`, raw extra attributes.
    pub fn rect(
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
    pub fn text(&mut self, x: i64, y: i64, s: &str, extra: &str) {
        let _ = writeln!(
            self.out,
            "<text x=\"{x}\" y=\"{y}\"{extra}>{}</text>",
            xml_escape(s)
        );
    }

    /// Text over lines: a white halo keeps it legible.
    pub fn label(&mut self, x: i64, y: i64, s: &str, extra: &str) {
        let extra = format!(
            " stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\" stroke-linejoin=\"round\"{extra}"
        );
        self.text(x, y, s, &extra);
    }

    pub fn path(&mut self, d: &str, stroke: &str, extra: &str) {
        let _ = writeln!(
            self.out,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"1.5\"{extra}/>"
        );
    }

    pub fn dot(&mut self, x: i64, y: i64, fill: &str) {
        let _ = writeln!(
            self.out,
            "<circle cx=\"{x}\" cy=\"{y}\" r=\"4\" fill=\"{fill}\" stroke=\"#ffffff\"/>"
        );
    }
}
