//! Tables owned by the engine thread: the MAC learning table (CAM) and the policy tables.

pub mod cam;
pub mod conntrack;
pub(crate) mod hash;
mod huge_pages;
mod line_table;
mod lru;
pub mod nat;
pub use cam::*;
pub mod policy;
mod prefetch;
pub use conntrack::{ConnTrack, CtConfig, CtStats};
pub use nat::{NatTable, NetworkNat, Publish, Uplink};
pub use policy::{ContainerGuard, LinkPort, LinkRule, Policy, PortRole, Subnet};
