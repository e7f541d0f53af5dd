//! Ports: where frames enter and leave the switch.
//!
//! Every port kind (AF_PACKET on an existing interface, a tap device the switch creates, an in-memory
//! queue for tests) sits behind the `Port` trait, which moves *batches*: the engine hands a port its
//! preallocated `RxBatch` to fill, and a slice of `TxRef`s (views into that same batch or into the
//! segmentation area) to send. Ports never allocate per packet and never decide anything about a
//! frame; a frame they cannot send is reported back as a count, and the engine attributes the drop.
//!
//! Offloads: a port with `vnet_hdr()` carries a `virtio_net_hdr` with each frame, so checksum-partial
//! and GSO super-frames pass through untouched (this is what keeps TCP fast with the kernel's default
//! veth offloads). A port without it only takes complete frames; the engine finishes them in software
//! (see `offload`) before handing them over.

pub mod afpacket;
pub mod claim;
pub mod memory;
mod sys;
pub mod tap;
pub mod vlan;
pub mod vxlan;

use std::io;
use std::os::fd::RawFd;

use crate::wire::vnet::VnetHeader;

pub use afpacket::AfPacketPort;
pub use memory::{MemoryPort, MemoryPortHandle, SinkPort};
pub use tap::TapPort;
pub use vlan::VlanPort;
pub use vxlan::{VxlanPort, VxlanSocket, VxlanStats};

/// Frames read from one port in one go. Larger batches amortise syscalls; smaller ones bound latency
/// and the memory pinned per port.
pub const BATCH: usize = 32;

/// Largest frame a slot holds: a 64 KiB GSO super-frame plus an Ethernet header and one VLAN tag.
pub const FRAME_CAPACITY: usize = 65536 + 18;

/// What kind of port this is, for display and for decisions that depend on the OS object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    AfPacket,
    Tap,
    Memory,
    /// A network's VXLAN path to one remote host (`vxlan::VxlanPort`).
    Vxlan,
}

impl std::fmt::Display for PortKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PortKind::AfPacket => "af_packet",
            PortKind::Tap => "tap",
            PortKind::Memory => "memory",
            PortKind::Vxlan => "vxlan",
        })
    }
}

/// A tunnel port's place on the underlay (a VXLAN port): what a trace's encapsulation and
/// decapsulation steps name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub vni: u32,
    /// This host's underlay address and the remote host's.
    pub local: std::net::Ipv4Addr,
    pub remote: std::net::Ipv4Addr,
    /// The UDP destination port (4789 by default).
    pub udp_port: u16,
}

/// Metadata of one received frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct RxMeta {
    /// Bytes of frame data in the slot (without the vnet header).
    pub len: usize,
    /// The port filtered the frame out (a VLAN port: the frame belongs to another VLAN).
    pub filtered: bool,
    /// Offload state of the frame (all zero for ports without vnet headers).
    pub vnet: VnetHeader,
    /// The frame was larger than the slot; its tail is missing.
    pub truncated: bool,
}

/// Preallocated receive area: `BATCH` slots of `FRAME_CAPACITY` bytes, filled by `Port::recv_batch`.
pub struct RxBatch {
    slots: Vec<Box<[u8]>>,
    meta: [RxMeta; BATCH],
}

impl Default for RxBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RxBatch {
    pub fn new() -> RxBatch {
        RxBatch {
            slots: (0..BATCH)
                .map(|_| vec![0u8; FRAME_CAPACITY].into_boxed_slice())
                .collect(),
            meta: [RxMeta::default(); BATCH],
        }
    }

    /// The received bytes of slot `i`.
    pub fn frame(&self, i: usize) -> &[u8] {
        &self.slots[i][..self.meta[i].len]
    }

    pub fn frame_mut(&mut self, i: usize) -> &mut [u8] {
        let len = self.meta[i].len;
        &mut self.slots[i][..len]
    }

    pub fn meta(&self, i: usize) -> &RxMeta {
        &self.meta[i]
    }

    pub fn meta_mut(&mut self, i: usize) -> &mut RxMeta {
        &mut self.meta[i]
    }

    /// The whole slot `i`, for a port to receive into, and its metadata to fill.
    pub fn slot_mut(&mut self, i: usize) -> (&mut [u8], &mut RxMeta) {
        (&mut self.slots[i], &mut self.meta[i])
    }

    /// Exchanges slots `i` and `j` with their metadata (a port that received into a later slot
    /// moves the frame forward without copying it).
    pub fn swap_slots(&mut self, i: usize, j: usize) {
        self.slots.swap(i, j);
        self.meta.swap(i, j);
    }

    /// Copies `frame` into slot `i` (tests and the in-memory port). Frames longer than a slot are
    /// truncated and flagged, as a real port would.
    pub fn fill(&mut self, i: usize, vnet: VnetHeader, frame: &[u8]) {
        let n = frame.len().min(FRAME_CAPACITY);
        self.slots[i][..n].copy_from_slice(&frame[..n]);
        self.meta[i] = RxMeta {
            filtered: false,
            len: n,
            vnet,
            truncated: n < frame.len(),
        };
    }
}

/// One frame to send: its offload header and bytes. Views only; building one costs nothing.
#[derive(Clone, Copy, Debug)]
pub struct TxRef<'a> {
    pub vnet: VnetHeader,
    pub data: &'a [u8],
}

impl TxRef<'_> {
    pub const EMPTY: TxRef<'static> = TxRef {
        vnet: VnetHeader {
            flags: 0,
            gso_type: 0,
            hdr_len: 0,
            gso_size: 0,
            csum_start: 0,
            csum_offset: 0,
        },
        data: &[],
    };
}

/// What happened to a batch handed to `Port::send_batch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Frames the OS accepted.
    pub sent: usize,
    /// Bytes of frame data (without vnet headers) in the accepted frames.
    pub sent_bytes: u64,
    /// Frames refused because the socket or queue was full.
    pub busy: usize,
    /// Frames refused as larger than the interface takes.
    pub too_big: usize,
    /// Frames refused because the link is down.
    pub link_down: usize,
    /// Frames refused for any other reason.
    pub failed: usize,
}

/// Errors of opening or running a port. Messages name the interface and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("no interface named '{0}' in this network namespace")]
    NoSuchInterface(String),
    #[error("interface name '{0}' is not valid (1 to 15 characters, no '/', ':' or whitespace)")]
    BadName(String),
    #[error("{what} on '{name}' needs root (CAP_NET_RAW and CAP_NET_ADMIN): {source}")]
    Permission {
        name: String,
        what: &'static str,
        source: io::Error,
    },
    #[error("interface '{name}' is already attached to another switchyard{holder}")]
    AlreadyAttached { name: String, holder: String },
    #[error("tap '{0}' already exists and is in use by another process")]
    TapBusy(String),
    #[error("{what} on '{name}' failed: {source}")]
    Os {
        name: String,
        what: &'static str,
        source: io::Error,
    },
    /// The interface disappeared (deleted, or moved to another namespace) while attached.
    #[error("interface '{0}' is gone")]
    Gone(String),
}

impl PortError {
    /// Classifies an errno from setting up a port: permission problems get their own message.
    pub(crate) fn os(name: &str, what: &'static str, source: io::Error) -> PortError {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => PortError::Permission {
                name: name.to_string(),
                what,
                source,
            },
            Some(libc::ENODEV) | Some(libc::ENXIO) => PortError::NoSuchInterface(name.to_string()),
            _ => PortError::Os {
                name: name.to_string(),
                what,
                source,
            },
        }
    }
}

/// A place frames enter and leave the switch.
pub trait Port: Send {
    fn name(&self) -> &str;

    fn kind(&self) -> PortKind;

    /// The port carries a `virtio_net_hdr` with each frame (checksum-partial and GSO frames allowed).
    fn vnet_hdr(&self) -> bool;

    /// The port takes GSO super-frames whole (their checksum still partial) and segments them
    /// itself, although it has no vnet header for anything else: the engine finishes checksums
    /// of other frames but leaves super-frames to it. A VXLAN port sends a super-frame's
    /// segments with one `sendmsg` (`UDP_SEGMENT`).
    fn takes_gso(&self) -> bool {
        self.vnet_hdr()
    }

    /// The fd to register with the engine's poller, or `None` for ports driven by hand (memory).
    fn raw_fd(&self) -> Option<RawFd>;

    /// The descriptor to register with the poller besides the one `raw_fd` gave, once, after a
    /// `recv_batch` that started replacing the port's socket (an AF_PACKET port growing its ring:
    /// from then on frames reach only the new socket, so only it can wake the poller). The old one
    /// leaves the poller when it closes.
    fn moved_fd(&mut self) -> Option<RawFd> {
        None
    }

    /// Receives up to `BATCH` frames into `batch` slots `0..n` and returns `n`; 0 means nothing is
    /// waiting. `Err(PortError::Gone)` means the interface disappeared and the port must be removed.
    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, PortError>;

    /// Sends `frames` in order and reports what the OS took. Never blocks. `Err(PortError::Gone)` as
    /// for `recv_batch`.
    fn send_batch(&mut self, frames: &[TxRef<'_>]) -> Result<SendReport, PortError>;

    /// Frames the kernel dropped on this port's receive queue since the last call (the switch was too
    /// slow). Read once per timer tick, so such drops are counted and never silent.
    fn take_overruns(&mut self) -> u64 {
        0
    }

    /// The interface's MAC address, if it has one (shown in tables; not used for forwarding).
    fn mac(&self) -> Option<crate::MacAddr> {
        None
    }

    /// Where the port's frames are carried on the underlay, for a tunnel port (VXLAN).
    fn tunnel(&self) -> Option<Tunnel> {
        None
    }

    /// A send-only handle on the same interface for another engine worker: frames it sends leave
    /// as this port's do; it receives nothing and has no descriptor to poll. `None` when the port
    /// cannot be shared, which keeps the engine to one worker for it.
    fn sender(&self) -> Option<Box<dyn Port>> {
        None
    }

    /// Another receiving socket on the same interface for another engine worker, the kernel
    /// handing each frame to one of them (`PACKET_FANOUT`). Called once per other worker, in the
    /// order the kernel numbers the group's members (this port is member 0). `None` when the
    /// port cannot be shared that way: one worker receives and the others get `sender`s.
    fn receiver(&self) -> Option<Box<dyn Port>> {
        None
    }
}

/// Checks an interface name the way the kernel will (IFNAMSIZ - 1 bytes, no '/', ':' or spaces).
/// A port's way to send, without the rest of it: what a `SendOnly` needs.
pub(crate) trait SendFrames: Send {
    fn send(&mut self, name: &str, frames: &[TxRef<'_>]) -> Result<SendReport, PortError>;
}

/// The send side of a port for another engine worker (`Port::sender`): the same socket through a
/// duplicated descriptor, so frames leave exactly as the port's own do. It receives nothing and
/// has no descriptor to poll: the port's owner alone reads it.
pub(crate) struct SendOnly<S> {
    pub(crate) name: String,
    pub(crate) kind: PortKind,
    pub(crate) mac: Option<crate::MacAddr>,
    pub(crate) send: S,
}

impl<S: SendFrames> Port for SendOnly<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        self.kind
    }

    fn vnet_hdr(&self) -> bool {
        true
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    fn recv_batch(&mut self, _: &mut RxBatch) -> Result<usize, PortError> {
        Ok(0)
    }

    fn send_batch(&mut self, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
        self.send.send(&self.name, frames)
    }

    fn mac(&self) -> Option<crate::MacAddr> {
        self.mac
    }
}

pub fn validate_ifname(name: &str) -> Result<(), PortError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if ok {
        Ok(())
    } else {
        Err(PortError::BadName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules() {
        assert!(validate_ifname("veth0").is_ok());
        assert!(validate_ifname("a23456789012345").is_ok());
        for bad in ["", "a234567890123456", "a/b", "a:b", "a b", ".", ".."] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fill_truncates_and_flags() {
        let mut b = RxBatch::new();
        b.fill(0, VnetHeader::default(), &[1, 2, 3]);
        assert_eq!(b.frame(0), &[1, 2, 3]);
        assert!(!b.meta(0).truncated);
        let big = vec![7u8; FRAME_CAPACITY + 5];
        b.fill(1, VnetHeader::default(), &big);
        assert_eq!(b.frame(1).len(), FRAME_CAPACITY);
        assert!(b.meta(1).truncated);
    }
}
