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
//!
//! The view is `api::topology::Topology`, built by `model::topology`; `scene` sorts and
//! cross-references it once for the three renderers.

mod dot;
mod scene;
mod svg;
mod text;

pub use dot::render_dot;
pub use svg::render_svg;
pub use text::render_text;

#[cfg(test)]
mod tests;
