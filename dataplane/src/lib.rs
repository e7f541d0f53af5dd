//! switchyard's data plane: a poll-driven userspace switch.
//!
//! Layers, bottom up: `wire` (views over frame bytes), `port` (AF_PACKET, tap and in-memory ports behind
//! one trait), `offload` (finishing checksums and segmenting GSO frames for ports that cannot take
//! them), `table` (the MAC learning table), `stage` (pure pipeline stages returning verdicts), `engine`
//! (the loop that owns ports and tables and is programmed through `engine::Command`).
//! See ARCHITECTURE.md for the bird's-eye view.

pub mod engine;
pub mod ids;
pub mod offload;
pub mod port;
pub mod rewrite;
pub mod stage;
pub mod table;
pub mod trace;
pub mod wire;

pub use ids::{DomainId, PortId, VlanId};
pub use wire::MacAddr;
