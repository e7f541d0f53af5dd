//! Forwarding tables owned by the engine thread: the MAC learning table (CAM).

pub mod cam;
pub use cam::*;
