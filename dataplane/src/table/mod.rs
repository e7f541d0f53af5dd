//! Tables owned by the engine thread: the MAC learning table (CAM) and the policy tables.

pub mod cam;
mod hash;
pub use cam::*;
pub mod policy;
pub use policy::{ContainerGuard, LinkPort, LinkRule, Policy, PortRole, Subnet};
