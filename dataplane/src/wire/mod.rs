//! Zero-copy views over frame bytes, in the style of smoltcp's `wire` module.
//!
//! Each header type is a view `Xxx<T: AsRef<[u8]>>` with `new_unchecked`, `check_len` and `new_checked`;
//! once `new_checked` succeeds no accessor panics, whatever the bytes. Setters live in an `AsMut` impl so
//! NAT can rewrite in place. Parsers return the unit error `WireError`: the data plane only needs to
//! know that a frame is malformed, and counts it by the stage that found out.

pub mod arp;
pub mod bytes;
pub mod checksum;
pub mod ethernet;
pub mod headers;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod mac;
pub mod tcp;
pub mod udp;
pub mod vnet;
pub mod vxlan;

pub use mac::MacAddr;

/// Malformed or truncated header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed or truncated header")]
pub struct WireError;

pub type Result<T> = core::result::Result<T, WireError>;
