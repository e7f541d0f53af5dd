//! VXLAN (RFC 7348): a network's share of the underlay toward one remote host.
//!
//! One `VxlanSocket` per host and UDP port holds the underlay sockets; each overlay network has one
//! `VxlanPort` per remote host (its VNI and that host's underlay address). A port per remote host,
//! rather than one per network that looks the destination up itself, keeps every decision in the
//! pipeline: the CAM says which remote host a MAC lives behind (static entries from the control
//! plane, or learned from what that host sent), the flood list replicates broadcast and unknown
//! frames to every remote host of the network (head-end replication, as Linux does with several
//! all-zeros FDB entries), the `overlay` stage keeps a frame that came from one remote host from
//! going to another (each host floods to all others itself), and a trace names the remote host as
//! the egress port. The port itself only encapsulates and decapsulates.
//!
//! Receive: every datagram arrives on one UDP socket bound to the underlay address and port
//! (4789 by default; Linux's default is 8472, both ends must agree). The kernel cannot demultiplex by
//! VNI and sender, so each port polls its own duplicate of that socket's fd (every datagram wakes
//! every port of the socket), and whichever port reads a datagram hands it on: its own frames go
//! into the batch (the 8-byte header shifted out in place), another port's are copied into that
//! port's bounded stash (`STASH_FRAMES`), which the other port drains first when the engine serves
//! it (the same datagram woke it). A datagram whose header is malformed or that no port claims
//! (unknown VNI or sender) is dropped and counted on the socket by reason (`VxlanStats`). The ports of one
//! socket must be received by one engine worker (`EngineHandle::add_port_beside`): across
//! threads, a port could find its stash empty and the socket drained just before another thread
//! stashes for it, and nothing would wake it. The hand-off still takes no lock: a stash is a
//! bounded lock-free channel (crossbeam's array flavour, `try_send`/`try_recv` only), buffers go
//! back to their writer through a second one, and each port keeps its own copy of the routes to
//! the other ports' stashes, refreshed from the registry (its lock tried, never waited for) after a port came or went
//! (`VxlanSocket::generation`, bumped by the control plane).
//!
//! Receive, in batches: the socket has `UDP_GRO` on, so one read returns a batch of datagrams from
//! one sender and UDP source port, cut every `gso_size` bytes (the size comes in a control
//! message). That is what a switchyard peer's GSO send (below) arrives as: on a veth underlay the
//! kernel passes the whole send to the other side unsegmented, and a NIC's GRO rebuilds it. When
//! the batch is this port's and its frames are consecutive TCP segments of one connection with
//! correct checksums, they are merged back into one super-frame (`offload::coalesce_tcp`) that
//! goes through the pipeline and into the container as one frame with a GSO vnet header, as the
//! kernel's vxlan device and GRO hand one skb up. Otherwise the batch is taken one datagram at a
//! time: the first in its slot, the rest in the port's `pending` queue, which fills the following
//! slots (a full batch keeps the engine reading the port) and stops further reads until it is
//! empty, so order is kept. Malformed datagrams in a batch are counted one by one; another port's
//! go to its stash.
//!
//! Receive, from a Linux vxlan device: with its default offloads on an underlay that passes skbs
//! along unfinished (a veth), it hands our UDP socket inner frames as its stack left them: TCP and
//! UDP checksums holding only the pseudo-header sum, and a TCP super-frame whole, one datagram of
//! up to 64 KiB with no `UDP_GRO` control message. So every frame this port takes, whichever way
//! (in place, stash, `pending`), gets its vnet header from `offload::recover_offloads`:
//! `NEEDS_CSUM` where the checksum is the pseudo-header sum, a GSO header cut at the network's MTU
//! for TCP above it. A frame above the MTU that cannot be cut (not TCP, malformed, a wrong
//! checksum) is dropped and counted on the socket by reason, never forwarded above the MTU.
//!
//! Send: the port takes super-frames whole (`Port::takes_gso`; other frames arrive finished, as
//! on any port without a vnet header, since what is inside a VXLAN datagram must be complete on
//! the wire). Complete frames go through a raw `IPPROTO_RAW` socket, `BATCH` per `sendmmsg`,
//! which writes the outer IPv4 and UDP headers itself, because the UDP source port is the inner
//! flow's hash (RFC 7348 section 5, so the underlay's ECMP and the receiver's RSS spread flows as
//! they do for Linux's vxlan) and a UDP socket sends from its one bound port. `IPPROTO_RAW`
//! sockets receive nothing, so sending costs no copy of every UDP packet the host receives. The
//! UDP checksum is zero (allowed over IPv4, and what Linux sends by default); DF is set, so a
//! frame too large for the underlay is refused (`tx-too-big`) rather than fragmented. A
//! super-frame is segmented in software, since each segment needs its own complete inner headers
//! and checksum, but without copying it: `offload::segment_headers` writes each segment's headers
//! and leaves its payload where it is, and one `sendmsg` per 64 KiB gathers, for each segment, the
//! VXLAN header, its headers and its payload slice (the kernel's copy is the only one), with
//! `UDP_SEGMENT`, from a UDP socket bound to the flow's hashed source
//! port (`GsoSockets`, each sender its own, at most `GSO_SOCKETS`): one trip through
//! the IP stack and the underlay for some 45 datagrams, and on a veth underlay one skb to the
//! other side. These datagrams carry a UDP checksum (Linux refuses GSO without one; it is computed
//! by the NIC or, on veth, never). Every frame of a flow leaves from the same source port either
//! way. If the port cannot be bound (another socket has it) or the kernel refuses the send, the
//! super-frame is cut into complete frames (`offload::segment`) that leave one by one through the
//! raw socket, whose errors then say why.

use std::collections::{HashMap, VecDeque};
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::{sys, Port, PortError, PortKind, RxBatch, RxMeta, SendReport, Tunnel, TxRef, BATCH};
use crate::offload::{self, OversizeError, SegmentHeaders, Segments};
use crate::wire::ethernet::EthernetFrame;
use crate::wire::headers::L3;
use crate::wire::ipv4::{self, protocol, Ipv4Packet};
use crate::wire::udp::{self, UdpPacket};
use crate::wire::vnet::VnetHeader;
use crate::wire::vxlan::{self, VxlanPacket, VxlanRepr};

/// Outer headers written in front of each frame: IPv4, UDP, VXLAN.
pub const PREFIX_LEN: usize = ipv4::HEADER_LEN + udp::HEADER_LEN + vxlan::HEADER_LEN;

/// Frames one port's stash holds for it; more are dropped and counted (`VxlanStats::stash_full`).
pub const STASH_FRAMES: usize = 256;

/// The UDP source ports flows are spread over: Linux's default local port range.
const SOURCE_PORTS: (u16, u16) = (32768, 60999);

/// Socket buffers: as the AF_PACKET ports.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

/// Segments one GSO `sendmsg` carries at most: Linux's `UDP_MAX_SEGMENTS` before 6.x (128 since).
const GSO_MAX_SEGMENTS: usize = 64;

/// Most bytes of UDP payload one `sendmsg` may carry: an IPv4 packet's 65535 bytes less the IPv4
/// and UDP headers.
const GSO_MAX_PAYLOAD: usize = u16::MAX as usize - ipv4::HEADER_LEN - udp::HEADER_LEN;

/// UDP sockets one sender keeps bound to flows' source ports for GSO sends (`GsoSockets`).
const GSO_SOCKETS: usize = 64;
/// A GSO socket unused this long may serve another flow's source port.
const GSO_IDLE: Duration = Duration::from_secs(1);

/// A source port's GSO socket (`None`: the port could not be bound) and when a flow last used it.
struct GsoSlot {
    port: u16,
    fd: Option<OwnedFd>,
    used: Instant,
}

/// The UDP sockets one sender (a port, or its twin on another worker) sends GSO batches from,
/// one per flow's source port, at most `GSO_SOCKETS`. Each sender owns its own, so no worker ever
/// waits for another to find or open one (they were once shared behind a lock, held across the
/// system calls that open a socket). Two senders may need the same source port (two networks'
/// flows, or one flow's frames read by two workers): the sockets are bound with `SO_REUSEPORT`,
/// and since they receive nothing, sharing the port costs nothing.
struct GsoSockets {
    local: Ipv4Addr,
    slots: Vec<GsoSlot>,
}

impl GsoSockets {
    fn new(local: Ipv4Addr) -> GsoSockets {
        GsoSockets {
            local,
            slots: Vec::new(),
        }
    }

    /// The socket bound to `source_port` on the local address, opened on first use; `None`
    /// when the port cannot be bound (a socket without `SO_REUSEPORT` has it) or every slot serves
    /// a flow active in the last `GSO_IDLE`, and then the flow's super-frames leave segment by
    /// segment through the raw socket. A slot idle that long is reused, so sockets follow the
    /// flows of the moment and never thrash between two of them (as a slot per
    /// `port % GSO_SOCKETS` did, opening a socket per super-frame).
    fn get(&mut self, source_port: u16) -> Option<RawFd> {
        let now = Instant::now();
        if let Some(slot) = self.slots.iter_mut().find(|s| s.port == source_port) {
            slot.used = now;
            return slot.fd.as_ref().map(AsRawFd::as_raw_fd);
        }
        let slot = GsoSlot {
            port: source_port,
            fd: None,
            used: now,
        };
        let index = if self.slots.len() < GSO_SOCKETS {
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            let (index, idle) = self
                .slots
                .iter_mut()
                .enumerate()
                .min_by_key(|(_, s)| s.used)
                .filter(|(_, s)| now.duration_since(s.used) >= GSO_IDLE)?;
            // The old socket closes before the new one binds.
            *idle = slot;
            index
        };
        let fd = gso_socket(self.local, source_port).ok();
        let slot = &mut self.slots[index];
        slot.fd = fd;
        slot.fd.as_ref().map(AsRawFd::as_raw_fd)
    }
}

/// Frames of `UDP_GRO` batches one port keeps for later slots: a full batch of messages of
/// Linux's `UDP_MAX_SEGMENTS` (128) datagrams each. Reads stop while any wait, so this is not
/// exceeded; if it were, the frame would be counted as `stash_full`.
const PENDING_FRAMES: usize = BATCH * 128;

/// Room for the control data of one received message: a `UDP_GRO` cmsg (`CMSG_SPACE(4)`).
const CONTROL_LEN: usize = 32;

/// Which port a datagram belongs to: its VNI and the underlay address it came from.
type Key = (u32, Ipv4Addr);

/// Datagrams the socket dropped, by reason (`switchyard stats`, `VXLAN drops`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VxlanStats {
    /// Shorter than a VXLAN header and an Ethernet header.
    pub truncated: u64,
    /// Without the I flag (RFC 7348: the VNI is not valid).
    pub bad_flags: u64,
    /// A VNI no overlay network of this host has.
    pub unknown_vni: u64,
    /// A known VNI from an address that is not one of the network's remote hosts (not
    /// registered in the cluster, nor a static peer).
    pub unknown_host: u64,
    /// The owning port's stash was full.
    pub stash_full: u64,
    /// A frame longer than the network's MTU that is not TCP (`offload::OversizeError`).
    pub oversize_not_tcp: u64,
    /// A frame longer than the network's MTU whose TCP/IP headers are malformed.
    pub oversize_malformed: u64,
    /// A frame longer than the network's MTU whose TCP checksum is wrong.
    pub oversize_bad_checksum: u64,
}

impl VxlanStats {
    /// Every reason by its name in stats, in a stable order.
    pub fn by_reason(&self) -> [(&'static str, u64); 8] {
        [
            ("truncated", self.truncated),
            ("bad-flags", self.bad_flags),
            ("unknown-vni", self.unknown_vni),
            ("unknown-host", self.unknown_host),
            ("stash-full", self.stash_full),
            ("oversize-not-tcp", self.oversize_not_tcp),
            ("oversize-malformed", self.oversize_malformed),
            ("oversize-bad-checksum", self.oversize_bad_checksum),
        ]
    }
}

/// Why a datagram is not a VXLAN frame this switch can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecapError {
    /// Shorter than a VXLAN header and an Ethernet header.
    Truncated,
    /// The I flag is not set.
    BadFlags,
}

/// The way into one port's stash: frames go in through `frames`, and empty buffers come back
/// from the owner through `spare`, so a stash allocates only while it grows to its largest frames.
#[derive(Clone)]
struct StashRoute {
    frames: Sender<Vec<u8>>,
    spare: Receiver<Vec<u8>>,
}

/// The underlay sockets of one local address and UDP port, shared by every VXLAN port on them.
pub struct VxlanSocket {
    local: Ipv4Addr,
    port: u16,
    udp: OwnedFd,
    raw: OwnedFd,
    /// The registry of ports: taken by the control plane to add or remove one, and tried (never
    /// waited for) by a port only when `generation` says it changed since the port last copied it.
    routes: Mutex<HashMap<Key, StashRoute>>,
    generation: AtomicU64,
    truncated: AtomicU64,
    bad_flags: AtomicU64,
    unknown_vni: AtomicU64,
    unknown_host: AtomicU64,
    stash_full: AtomicU64,
    oversize_not_tcp: AtomicU64,
    oversize_malformed: AtomicU64,
    oversize_bad_checksum: AtomicU64,
}

fn socket(kind: libc::c_int, protocol: libc::c_int) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(sys::last_err());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = port.to_be();
    sa.sin_addr.s_addr = u32::from(ip).to_be();
    sa
}

fn bind(fd: RawFd, ip: Ipv4Addr, port: u16) -> std::io::Result<()> {
    let sa = sockaddr(ip, port);
    // SAFETY: `sa` is a valid sockaddr_in and its size is passed.
    let rc = unsafe {
        libc::bind(
            fd,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(sys::last_err())
    } else {
        Ok(())
    }
}

impl VxlanSocket {
    /// Binds UDP `port` on the underlay address `local` (which must be an address of this
    /// namespace) and opens the raw socket frames leave by.
    pub fn open(local: Ipv4Addr, port: u16) -> Result<Arc<VxlanSocket>, PortError> {
        let name = format!("{local}:{port}");
        let udp = socket(libc::SOCK_DGRAM, 0)
            .map_err(|e| PortError::os(&name, "opening the VXLAN UDP socket", e))?;
        bind(udp.as_raw_fd(), local, port)
            .map_err(|e| PortError::os(&name, "binding the VXLAN UDP socket", e))?;
        sys::set_buffer(
            udp.as_raw_fd(),
            libc::SO_RCVBUFFORCE,
            libc::SO_RCVBUF,
            SOCKET_BUFFER,
        );
        // Batches of datagrams from one sender in one read, as a GSO send from a switchyard
        // peer left them (kernels before 5.0 have no UDP_GRO: then one datagram per read).
        let _ = sys::setsockopt_int(udp.as_raw_fd(), libc::SOL_UDP, libc::UDP_GRO, 1);
        let raw = socket(libc::SOCK_RAW, libc::IPPROTO_RAW)
            .map_err(|e| PortError::os(&name, "opening the VXLAN raw socket", e))?;
        sys::set_buffer(
            raw.as_raw_fd(),
            libc::SO_SNDBUFFORCE,
            libc::SO_SNDBUF,
            SOCKET_BUFFER,
        );
        Ok(Arc::new(VxlanSocket {
            local,
            port,
            udp,
            raw,
            routes: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            bad_flags: AtomicU64::new(0),
            unknown_vni: AtomicU64::new(0),
            unknown_host: AtomicU64::new(0),
            stash_full: AtomicU64::new(0),
            oversize_not_tcp: AtomicU64::new(0),
            oversize_malformed: AtomicU64::new(0),
            oversize_bad_checksum: AtomicU64::new(0),
        }))
    }

    pub fn local(&self) -> Ipv4Addr {
        self.local
    }

    pub fn udp_port(&self) -> u16 {
        self.port
    }

    /// Datagrams dropped so far, by reason.
    pub fn stats(&self) -> VxlanStats {
        VxlanStats {
            truncated: self.truncated.load(Ordering::Relaxed),
            bad_flags: self.bad_flags.load(Ordering::Relaxed),
            unknown_vni: self.unknown_vni.load(Ordering::Relaxed),
            unknown_host: self.unknown_host.load(Ordering::Relaxed),
            stash_full: self.stash_full.load(Ordering::Relaxed),
            oversize_not_tcp: self.oversize_not_tcp.load(Ordering::Relaxed),
            oversize_malformed: self.oversize_malformed.load(Ordering::Relaxed),
            oversize_bad_checksum: self.oversize_bad_checksum.load(Ordering::Relaxed),
        }
    }

    /// A port for `vni` toward the remote host at underlay address `remote`, named `name` in
    /// tables and traces, for a network whose MTU (the longest IP packet its containers take) is
    /// `mtu`. One port per (VNI, remote host).
    pub fn port(
        self: &Arc<Self>,
        name: &str,
        vni: u32,
        remote: Ipv4Addr,
        mtu: usize,
    ) -> Result<VxlanPort, PortError> {
        if vni > vxlan::MAX_VNI {
            return Err(PortError::Os {
                name: name.to_string(),
                what: "checking the VNI",
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("VNI {vni} is larger than {}", vxlan::MAX_VNI),
                ),
            });
        }
        let fd = self
            .udp
            .try_clone()
            .map_err(|e| PortError::os(name, "duplicating the VXLAN socket", e))?;
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if routes.contains_key(&(vni, remote)) {
            return Err(PortError::AlreadyAttached {
                name: name.to_string(),
                holder: format!(" (VNI {vni} toward {remote} has a port)"),
            });
        }
        let (frames_tx, frames_rx) = bounded(STASH_FRAMES);
        let (spare_tx, spare_rx) = bounded(STASH_FRAMES);
        routes.insert(
            (vni, remote),
            StashRoute {
                frames: frames_tx,
                spare: spare_rx,
            },
        );
        self.generation.fetch_add(1, Ordering::Release);
        Ok(VxlanPort {
            name: name.to_string(),
            key: (vni, remote),
            mtu,
            fd,
            stash: frames_rx,
            spare: spare_tx,
            routes: HashMap::new(),
            seen: u64::MAX,
            pending: VecDeque::new(),
            pending_spare: Vec::new(),
            tx: VxlanTx::new(self.clone(), (vni, remote)),
        })
    }
}

/// What a received UDP payload is: the VNI and where the inner frame starts, or why it is not
/// one to take.
pub fn decapsulate(datagram: &[u8]) -> Result<(u32, usize), DecapError> {
    let packet = VxlanPacket::new_unchecked(datagram);
    packet.check_len().map_err(|_| DecapError::Truncated)?;
    let vni = VxlanRepr::parse(&packet)
        .map_err(|_| DecapError::BadFlags)?
        .vni;
    if packet.payload().len() < crate::wire::ethernet::HEADER_LEN {
        return Err(DecapError::Truncated);
    }
    Ok((vni, vxlan::HEADER_LEN))
}

/// The UDP source port for `frame`: a hash of its flow (IPv4 addresses, protocol and ports; MACs
/// and EtherType for anything else) mapped into `SOURCE_PORTS`, so one flow keeps one port.
pub fn flow_source_port(frame: &[u8]) -> u16 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut mix = |x: u64| h = crate::table::hash::fmix64(h ^ x);
    if let Ok(eth) = EthernetFrame::new_checked(frame) {
        match L3::parse(frame, eth.inner_ethertype(), eth.l3_offset()) {
            L3::Ipv4(ip) => {
                mix((u64::from(u32::from(ip.src)) << 32) | u64::from(u32::from(ip.dst)));
                mix((u64::from(ip.protocol) << 32)
                    | (u64::from(ip.sport.unwrap_or(0)) << 16)
                    | u64::from(ip.dport.unwrap_or(0)));
            }
            _ => {
                let (s, d) = (eth.src_addr().0, eth.dst_addr().0);
                let mut word = [0u8; 8];
                word[..6].copy_from_slice(&s);
                mix(u64::from_le_bytes(word));
                word[..6].copy_from_slice(&d);
                word[6..].copy_from_slice(&eth.inner_ethertype().to_be_bytes());
                mix(u64::from_le_bytes(word));
            }
        }
    }
    let span = u64::from(SOURCE_PORTS.1 - SOURCE_PORTS.0) + 1;
    SOURCE_PORTS.0 + (h % span) as u16
}

/// Writes the outer IPv4, UDP and VXLAN headers for `frame_len` bytes of frame from `local` to
/// `remote`'s `dst_port`, as Linux's vxlan does (DF, TTL 64, UDP checksum zero). The IPv4
/// checksum is left zero: the kernel fills it in for raw sockets, and identification too.
pub fn encapsulate(
    prefix: &mut [u8; PREFIX_LEN],
    local: Ipv4Addr,
    remote: Ipv4Addr,
    ports: (u16, u16),
    vni: u32,
    frame_len: usize,
) {
    prefix.fill(0);
    let total = (PREFIX_LEN + frame_len).min(usize::from(u16::MAX)) as u16;
    let (ip_part, rest) = prefix.split_at_mut(ipv4::HEADER_LEN);
    let mut ip = Ipv4Packet::new_unchecked(ip_part);
    ip.set_version(4);
    ip.set_header_len(ipv4::HEADER_LEN);
    ip.set_total_len(total);
    ip.set_dont_frag(true);
    ip.set_ttl(64);
    ip.set_protocol(protocol::UDP);
    ip.set_src_addr(local);
    ip.set_dst_addr(remote);
    let (udp_part, vxlan_part) = rest.split_at_mut(udp::HEADER_LEN);
    let mut udp = UdpPacket::new_unchecked(udp_part);
    udp.set_src_port(ports.0);
    udp.set_dst_port(ports.1);
    udp.set_len(total - ipv4::HEADER_LEN as u16);
    let mut header = [0u8; vxlan::HEADER_LEN];
    VxlanRepr { vni }.emit(&mut header);
    vxlan_part.copy_from_slice(&header);
}

/// One overlay network's path to one remote host. See the module documentation.
pub struct VxlanPort {
    name: String,
    key: Key,
    /// The network's MTU: a longer frame goes on only as a TCP super-frame
    /// (`offload::recover_offloads`).
    mtu: usize,
    /// This port's duplicate of the UDP socket, registered with the poller on its own.
    fd: OwnedFd,
    /// Frames other ports read for this one, and where their buffers go back.
    stash: Receiver<Vec<u8>>,
    spare: Sender<Vec<u8>>,
    /// This port's copy of the socket's routes, as of generation `seen`.
    routes: HashMap<Key, StashRoute>,
    seen: u64,
    /// This port's frames of a `UDP_GRO` batch that did not fit the slot it came in, in order,
    /// and their buffers once taken (so the queue allocates only while it grows).
    pending: VecDeque<Vec<u8>>,
    pending_spare: Vec<Vec<u8>>,
    tx: VxlanTx,
}

impl VxlanPort {
    pub fn vni(&self) -> u32 {
        self.key.0
    }

    pub fn remote(&self) -> Ipv4Addr {
        self.key.1
    }

    /// Copies this port's stashed frames into `batch` from slot 0; returns how many.
    fn take_stashed(&mut self, batch: &mut RxBatch) -> usize {
        let mut n = 0;
        while n < BATCH {
            let Ok(mut frame) = self.stash.try_recv() else {
                break;
            };
            if let Some(vnet) = self.recover_offloads(&mut frame) {
                batch.fill(n, vnet, &frame);
                n += 1;
            }
            // A full spare queue only means the writer allocates once more.
            let _ = self.spare.try_send(frame);
        }
        n
    }

    /// Hands `frame` (decapsulated) to the port for `key`, or counts why it cannot.
    fn stash(&mut self, key: Key, frame: &[u8]) {
        let socket = &self.tx.raw.socket;
        let generation = socket.generation.load(Ordering::Acquire);
        if generation != self.seen {
            // Never wait for the control plane: while it holds the registry (adding or removing
            // a port), keep the copy of before and look again with the next datagram.
            match socket.routes.try_lock() {
                Ok(routes) => {
                    self.routes = routes.clone();
                    self.seen = generation;
                }
                Err(TryLockError::Poisoned(routes)) => {
                    self.routes = routes.into_inner().clone();
                    self.seen = generation;
                }
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let Some(route) = self.routes.get(&key) else {
            let vni_known = self.routes.keys().any(|(vni, _)| *vni == key.0);
            let counter = if vni_known {
                &socket.unknown_host
            } else {
                &socket.unknown_vni
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut buf = route.spare.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        if route.frames.try_send(buf).is_err() {
            socket.stash_full.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for VxlanPort {
    fn drop(&mut self) {
        let socket = &self.tx.raw.socket;
        let mut routes = socket.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.remove(&self.key);
        socket.generation.fetch_add(1, Ordering::Release);
    }
}

/// The sending half of a VXLAN port: what the port and its senders on other workers share.
struct VxlanTx {
    raw: RawTx,
    /// A super-frame's segments' headers, sent with payloads gathered from the super-frame.
    headers: SegmentHeaders,
    /// Where a super-frame is cut into complete frames when it leaves through the raw socket.
    segments: Segments,
    /// This sender's sockets for GSO sends.
    gso: GsoSockets,
}

/// Complete frames out through the raw socket, each behind outer headers written here.
struct RawTx {
    socket: Arc<VxlanSocket>,
    key: Key,
    dst: libc::sockaddr_in,
    prefixes: Box<[[u8; PREFIX_LEN]; BATCH]>,
}

/// A VXLAN port's send-only twin for another engine worker (`Port::sender`): the same raw
/// socket, so frames leave exactly as the port's own do; it receives nothing.
pub struct VxlanSender {
    name: String,
    tx: VxlanTx,
}

impl Port for VxlanSender {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Vxlan
    }

    fn vnet_hdr(&self) -> bool {
        false
    }

    fn takes_gso(&self) -> bool {
        true
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    fn recv_batch(&mut self, _: &mut RxBatch) -> Result<usize, PortError> {
        Ok(0)
    }

    fn send_batch(&mut self, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
        Ok(self.tx.send(frames))
    }

    fn tunnel(&self) -> Option<Tunnel> {
        Some(self.tx.tunnel())
    }
}

/// Reads of the socket per `recv_batch` at most, so a port whose network is quiet while others are
/// busy does not read for them forever.
const MAX_READS: usize = 8;

impl Port for VxlanPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Vxlan
    }

    fn vnet_hdr(&self) -> bool {
        false
    }

    fn takes_gso(&self) -> bool {
        true
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, PortError> {
        let mut n = self.take_stashed(batch);
        n = self.take_pending(batch, n);
        let mut reads = 0;
        // While frames wait in `pending`, newer ones would overtake them: read only once it is empty.
        while n < BATCH && reads < MAX_READS && self.pending.is_empty() {
            reads += 1;
            let want = BATCH - n;
            // SAFETY: plain old data; all-zero is a valid value of each.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
            // SAFETY: as above.
            let mut addrs: [libc::sockaddr_in; BATCH] = unsafe { mem::zeroed() };
            let mut controls = [[0u8; CONTROL_LEN]; BATCH];
            let mut iovs = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; BATCH];
            for k in 0..want {
                let (slot, _) = batch.slot_mut(n + k);
                iovs[k] = libc::iovec {
                    iov_base: slot.as_mut_ptr().cast(),
                    iov_len: slot.len(),
                };
                let m = &mut msgs[k].msg_hdr;
                m.msg_iov = &mut iovs[k];
                m.msg_iovlen = 1;
                m.msg_name = (&mut addrs[k] as *mut libc::sockaddr_in).cast();
                m.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                m.msg_control = controls[k].as_mut_ptr().cast();
                m.msg_controllen = CONTROL_LEN;
            }
            // SAFETY: messages 0..want point at iovecs into slots n..BATCH of `batch`, at `addrs`
            // and at `controls`, all live and exclusively borrowed for the call.
            let rc = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    want as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc < 0 {
                let err = sys::last_err();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => break,
                    _ => {
                        return if n > 0 {
                            Ok(n)
                        } else {
                            Err(PortError::Os {
                                name: self.name.clone(),
                                what: "receiving VXLAN datagrams",
                                source: err,
                            })
                        }
                    }
                }
            }
            let got = rc as usize;
            let mut keep = n;
            for (k, msg) in msgs[..got].iter().enumerate() {
                let len = msg.msg_len as usize;
                let control = &controls[k][..msg.msg_hdr.msg_controllen.min(CONTROL_LEN)];
                let received = Received {
                    slot: n + k,
                    len,
                    from: Ipv4Addr::from(u32::from_be(addrs[k].sin_addr.s_addr)),
                    truncated: msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                };
                keep = match gro_size(control).filter(|&s| s < len) {
                    Some(stride) => self.receive_batch(batch, received, stride, keep),
                    None => self.receive_datagram(batch, received, keep),
                };
            }
            n = self.take_pending(batch, keep);
            if got < want {
                break;
            }
        }
        Ok(n)
    }

    fn send_batch(&mut self, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
        Ok(self.tx.send(frames))
    }

    fn tunnel(&self) -> Option<Tunnel> {
        Some(self.tx.tunnel())
    }

    fn sender(&self) -> Option<Box<dyn Port>> {
        Some(Box::new(VxlanSender {
            name: self.name.clone(),
            tx: VxlanTx::new(self.tx.raw.socket.clone(), self.key),
        }))
    }
}

/// One message `recvmmsg` returned: in which slot of the batch, how long, from which host.
#[derive(Clone, Copy)]
struct Received {
    slot: usize,
    len: usize,
    from: Ipv4Addr,
    truncated: bool,
}

impl VxlanPort {
    /// A datagram alone in its slot: its frame moves to the front of the slot and the slot to
    /// position `keep` of the batch, or it goes to another port's stash, or is counted as
    /// malformed. Returns the next free position.
    fn receive_datagram(&mut self, batch: &mut RxBatch, r: Received, keep: usize) -> usize {
        let (slot, _) = batch.slot_mut(r.slot);
        let datagram = &mut slot[..r.len];
        let (vni, start) = match decapsulate(datagram) {
            Ok(found) => found,
            Err(why) => {
                self.count_malformed(why);
                return keep;
            }
        };
        if (vni, r.from) != self.key {
            self.stash((vni, r.from), &datagram[start..]);
            return keep;
        }
        if !self.pending.is_empty() {
            self.push_pending(&datagram[start..]);
            return keep;
        }
        let Some(vnet) = self.recover_offloads(&mut datagram[start..]) else {
            return keep;
        };
        datagram.copy_within(start.., 0);
        if keep != r.slot {
            batch.swap_slots(keep, r.slot);
        }
        *batch.meta_mut(keep) = RxMeta {
            len: r.len - start,
            filtered: false,
            vnet,
            truncated: r.truncated,
        };
        keep + 1
    }

    /// A `UDP_GRO` batch in one slot: datagrams of `stride` bytes from one sender (and UDP source
    /// port), the last possibly shorter. This port's TCP segments of one connection merge back
    /// into one super-frame (`offload::coalesce_tcp`); anything else is taken one datagram at a
    /// time, in order: the first stays in the slot, the others wait in `pending` (or go to other
    /// ports' stashes). Returns the next free position.
    fn receive_batch(
        &mut self,
        batch: &mut RxBatch,
        r: Received,
        stride: usize,
        keep: usize,
    ) -> usize {
        let (slot, _) = batch.slot_mut(r.slot);
        let own = batch_vni(&slot[..r.len], stride).is_some_and(|vni| (vni, r.from) == self.key);
        if own && self.pending.is_empty() {
            if let Some((len, vnet)) = offload::coalesce_tcp(slot, r.len, stride, vxlan::HEADER_LEN)
            {
                if keep != r.slot {
                    batch.swap_slots(keep, r.slot);
                }
                *batch.meta_mut(keep) = RxMeta {
                    len,
                    filtered: false,
                    vnet,
                    truncated: false,
                };
                return keep + 1;
            }
        }
        let first = if self.pending.is_empty() { 1 } else { 0 };
        for start in (first * stride..r.len).step_by(stride) {
            let (slot, _) = batch.slot_mut(r.slot);
            let datagram = &slot[start..(start + stride).min(r.len)];
            match decapsulate(datagram) {
                Ok((vni, at)) if (vni, r.from) == self.key => self.push_pending(&datagram[at..]),
                Ok((vni, at)) => self.stash((vni, r.from), &datagram[at..]),
                Err(why) => self.count_malformed(why),
            }
        }
        if first == 0 {
            return keep;
        }
        // The first datagram, in place; the others, already in `pending`, come after it.
        let pending = mem::take(&mut self.pending);
        let keep = self.receive_datagram(
            batch,
            Received {
                len: stride,
                truncated: false,
                ..r
            },
            keep,
        );
        self.pending = pending;
        keep
    }

    /// The vnet header this port's decapsulated `frame` goes into the pipeline with: the
    /// offloads a Linux sender left it with (`offload::recover_offloads`: checksum-partial, or a
    /// whole TCP super-frame above the MTU). `None` when it is longer than the network's MTU and
    /// cannot go on as a super-frame; it is then counted on the socket by reason.
    fn recover_offloads(&self, frame: &mut [u8]) -> Option<VnetHeader> {
        let why = match offload::recover_offloads(frame, self.mtu) {
            Ok(vnet) => return Some(vnet),
            Err(why) => why,
        };
        let socket = &self.tx.raw.socket;
        let counter = match why {
            OversizeError::NotTcp => &socket.oversize_not_tcp,
            OversizeError::Malformed => &socket.oversize_malformed,
            OversizeError::BadChecksum => &socket.oversize_bad_checksum,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Counts a datagram whose VXLAN header (or the Ethernet header behind it) is malformed.
    fn count_malformed(&self, why: DecapError) {
        let socket = &self.tx.raw.socket;
        let counter = match why {
            DecapError::Truncated => &socket.truncated,
            DecapError::BadFlags => &socket.bad_flags,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps a copy of `frame` (decapsulated, for this port) for a later slot of the batch.
    fn push_pending(&mut self, frame: &[u8]) {
        if self.pending.len() >= PENDING_FRAMES {
            self.tx
                .raw
                .socket
                .stash_full
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut buf = self.pending_spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        self.pending.push_back(buf);
    }

    /// Moves pending frames into slots `n..`; returns the next free position. Frames still
    /// pending after it mean the batch is full, so the engine comes back for them at once.
    fn take_pending(&mut self, batch: &mut RxBatch, mut n: usize) -> usize {
        while n < BATCH {
            let Some(mut frame) = self.pending.pop_front() else {
                break;
            };
            if let Some(vnet) = self.recover_offloads(&mut frame) {
                batch.fill(n, vnet, &frame);
                n += 1;
            }
            self.pending_spare.push(frame);
        }
        n
    }
}

/// The VNI of every datagram of a `UDP_GRO` batch, or `None` when one is malformed or they differ.
fn batch_vni(data: &[u8], stride: usize) -> Option<u32> {
    let mut vni = None;
    for datagram in data.chunks(stride) {
        let (v, _) = decapsulate(datagram).ok()?;
        if vni.is_some_and(|first| first != v) {
            return None;
        }
        vni = Some(v);
    }
    vni
}

/// The segment size a `UDP_GRO` control message gives, if `control` (what `recvmsg` returned as
/// control data) holds one: the datagram was a batch of datagrams of that size.
fn gro_size(control: &[u8]) -> Option<usize> {
    let header = mem::size_of::<libc::cmsghdr>();
    let field = |at: usize, offset: usize, n: usize| control.get(at + offset..at + offset + n);
    let mut at = 0;
    while at + header <= control.len() {
        let len = usize::from_ne_bytes(
            field(at, mem::offset_of!(libc::cmsghdr, cmsg_len), 8)?
                .try_into()
                .ok()?,
        );
        let level = i32::from_ne_bytes(
            field(at, mem::offset_of!(libc::cmsghdr, cmsg_level), 4)?
                .try_into()
                .ok()?,
        );
        let kind = i32::from_ne_bytes(
            field(at, mem::offset_of!(libc::cmsghdr, cmsg_type), 4)?
                .try_into()
                .ok()?,
        );
        if len < header || at + len > control.len() {
            return None;
        }
        if level == libc::SOL_UDP && kind == libc::UDP_GRO {
            let size = i32::from_ne_bytes(field(at, header, 4)?.try_into().ok()?);
            return usize::try_from(size).ok().filter(|&s| s > 0);
        }
        at += len.next_multiple_of(mem::align_of::<libc::cmsghdr>());
    }
    None
}

impl VxlanTx {
    fn new(socket: Arc<VxlanSocket>, key: Key) -> VxlanTx {
        let dst = sockaddr(key.1, socket.port);
        let gso = GsoSockets::new(socket.local);
        VxlanTx {
            raw: RawTx {
                socket,
                key,
                dst,
                prefixes: Box::new([[0; PREFIX_LEN]; BATCH]),
            },
            headers: SegmentHeaders::new(),
            segments: Segments::new(),
            gso,
        }
    }

    fn tunnel(&self) -> Tunnel {
        Tunnel {
            vni: self.raw.key.0,
            local: self.raw.socket.local,
            remote: self.raw.key.1,
            udp_port: self.raw.socket.port,
        }
    }

    /// Sends `frames` in order: runs of complete frames through the raw socket in one
    /// `sendmmsg`, each super-frame (or checksum-partial frame) on its own after it is segmented.
    /// A super-frame counts as one frame sent, once all its segments left.
    fn send(&mut self, frames: &[TxRef<'_>]) -> SendReport {
        let mut report = SendReport::default();
        let mut run = 0;
        for (i, f) in frames.iter().enumerate() {
            if !f.vnet.needs_software_finish() {
                continue;
            }
            let plain = &frames[run..i];
            self.raw.send(plain.len(), |k| plain[k].data, &mut report);
            self.send_super_frame(f, &mut report);
            run = i + 1;
        }
        let plain = &frames[run..];
        self.raw.send(plain.len(), |k| plain[k].data, &mut report);
        report
    }

    /// Segments `f` in software (the inner checksums must be complete on the wire) and sends the
    /// segments with one `sendmsg` per `GSO_MAX_PAYLOAD` bytes from a UDP socket bound to the
    /// flow's source port; through the raw socket, one datagram each, when there is no such
    /// socket or the kernel refuses (then the raw socket's errors say why).
    fn send_super_frame(&mut self, f: &TxRef<'_>, report: &mut SendReport) {
        let gathered = f.vnet.is_gso()
            && offload::segment_headers(&f.vnet, f.data, &mut self.headers).is_ok()
            && self.headers.len() > 1;
        if gathered {
            let source_port = flow_source_port(f.data);
            if let Some(fd) = self.gso.get(source_port) {
                let mut header = [0u8; vxlan::HEADER_LEN];
                VxlanRepr {
                    vni: self.raw.key.0,
                }
                .emit(&mut header);
                match send_gso(fd, &self.raw.dst, &header, f.data, &self.headers) {
                    Ok(()) => {
                        report.sent += 1;
                        report.sent_bytes += f.data.len() as u64;
                        return;
                    }
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOBUFS)) => {
                        report.busy += 1;
                        return;
                    }
                    Err(_) => {}
                }
            }
        }
        if offload::segment(&f.vnet, f.data, &mut self.segments).is_err() {
            report.failed += 1;
            return;
        }
        let n = self.segments.len();
        let mut each = SendReport::default();
        let segments = &self.segments;
        self.raw.send(n, |k| segments.get(k), &mut each);
        if each.sent == n {
            report.sent += 1;
            report.sent_bytes += f.data.len() as u64;
        } else if each.busy > 0 {
            report.busy += 1;
        } else if each.too_big > 0 {
            report.too_big += 1;
        } else if each.link_down > 0 {
            report.link_down += 1;
        } else {
            report.failed += 1;
        }
    }
}

/// Sends a super-frame's segments (`headers`: each segment's headers and where its payload lies
/// in `frame`; all of one length but the last) as VXLAN datagrams to `dst` with `UDP_SEGMENT`:
/// one `sendmsg` gathers up to `GSO_MAX_SEGMENTS` payloads of `header`, the segment's headers and
/// its payload straight from the super-frame (the kernel's copy is the only one), and the kernel
/// cuts them into datagrams (or, on a veth underlay, passes them to the other side whole, where
/// `UDP_GRO` takes them whole).
fn send_gso(
    fd: RawFd,
    dst: &libc::sockaddr_in,
    header: &[u8; vxlan::HEADER_LEN],
    frame: &[u8],
    headers: &SegmentHeaders,
) -> std::io::Result<()> {
    let n = headers.len();
    let gso_size = vxlan::HEADER_LEN + headers.headers(0).len() + headers.payload(0).len();
    let per_send = (GSO_MAX_PAYLOAD / gso_size).clamp(1, GSO_MAX_SEGMENTS);
    let mut first = 0;
    while first < n {
        let count = per_send.min(n - first);
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 3 * GSO_MAX_SEGMENTS];
        for k in 0..count {
            let parts: [&[u8]; 3] = [
                header,
                headers.headers(first + k),
                &frame[headers.payload(first + k)],
            ];
            for (j, part) in parts.iter().enumerate() {
                iovs[3 * k + j] = libc::iovec {
                    iov_base: part.as_ptr() as *mut libc::c_void,
                    iov_len: part.len(),
                };
            }
        }
        let mut control = SegmentCmsg {
            header: libc::cmsghdr {
                cmsg_len: 0,
                cmsg_level: libc::SOL_UDP,
                cmsg_type: libc::UDP_SEGMENT,
            },
            gso_size: gso_size as u16,
            _pad: [0; 6],
        };
        control.header.cmsg_len = (mem::size_of::<libc::cmsghdr>() + 2) as _;
        // SAFETY: plain old data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = dst as *const libc::sockaddr_in as *mut libc::c_void;
        msg.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_iov = iovs.as_mut_ptr();
        msg.msg_iovlen = 3 * count;
        msg.msg_control = (&mut control as *mut SegmentCmsg).cast();
        msg.msg_controllen = mem::size_of::<SegmentCmsg>();
        loop {
            // SAFETY: `msg` points at `dst`, at `count` triples of iovecs over `header`, the
            // segments' headers and the super-frame (all borrowed for the call) and at
            // `control`, a complete cmsg; the kernel only reads them.
            let rc = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) };
            if rc >= 0 {
                break;
            }
            let err = sys::last_err();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err);
            }
        }
        first += count;
    }
    Ok(())
}

/// The control message of a GSO send: `cmsghdr` and the `u16` segment size, padded as
/// `CMSG_SPACE(2)` is.
#[repr(C)]
struct SegmentCmsg {
    header: libc::cmsghdr,
    gso_size: u16,
    _pad: [u8; 6],
}

/// Opens a UDP socket on `local`:`port` to send GSO batches from. DF as the raw socket sets it;
/// a filter that accepts nothing, so datagrams that happen to arrive for the port are not queued;
/// `SO_REUSEPORT`, so each sender may have its own socket on a port (`GsoSockets`).
fn gso_socket(local: Ipv4Addr, port: u16) -> std::io::Result<OwnedFd> {
    let fd = socket(libc::SOCK_DGRAM, 0)?;
    sys::setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    sys::setsockopt_int(
        fd.as_raw_fd(),
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DO,
    )?;
    let mut drop_all = [libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K: accept 0 bytes
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let program = libc::sock_fprog {
        len: 1,
        filter: drop_all.as_mut_ptr(),
    };
    // `program` points at `drop_all`, which lives until the call has copied it.
    sys::setsockopt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &program,
    )?;
    sys::set_buffer(
        fd.as_raw_fd(),
        libc::SO_SNDBUFFORCE,
        libc::SO_SNDBUF,
        SOCKET_BUFFER,
    );
    bind(fd.as_raw_fd(), local, port)?;
    Ok(fd)
}

impl RawTx {
    /// Sends `count` complete frames (`frame(k)` for k in 0..count) as VXLAN datagrams through
    /// the raw socket, `BATCH` per `sendmmsg`, adding what happened to `report`.
    fn send<'a>(
        &mut self,
        count: usize,
        frame: impl Fn(usize) -> &'a [u8],
        report: &mut SendReport,
    ) {
        let local = self.socket.local;
        let (vni, remote) = self.key;
        let mut base = 0;
        while base < count {
            let chunk = (count - base).min(BATCH);
            // SAFETY: plain old data; all-zero is a valid value.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
            let mut iovs = [[libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; 2]; BATCH];
            for i in 0..chunk {
                let data = frame(base + i);
                let ports = (flow_source_port(data), self.socket.port);
                encapsulate(&mut self.prefixes[i], local, remote, ports, vni, data.len());
                iovs[i][0] = libc::iovec {
                    iov_base: self.prefixes[i].as_mut_ptr().cast(),
                    iov_len: PREFIX_LEN,
                };
                iovs[i][1] = libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                };
                let m = &mut msgs[i].msg_hdr;
                m.msg_iov = iovs[i].as_mut_ptr();
                m.msg_iovlen = 2;
                m.msg_name = (&mut self.dst as *mut libc::sockaddr_in).cast();
                m.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            let mut start = 0;
            while start < chunk {
                // SAFETY: messages start..chunk point at iovecs into `prefixes` and into frame
                // data borrowed for the call, and at `dst`, all alive for the call; the kernel
                // only reads them.
                let rc = unsafe {
                    libc::sendmmsg(
                        self.socket.raw.as_raw_fd(),
                        msgs.as_mut_ptr().add(start),
                        (chunk - start) as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                if rc > 0 {
                    let done = start + rc as usize;
                    report.sent += rc as usize;
                    report.sent_bytes += (start..done)
                        .map(|i| frame(base + i).len() as u64)
                        .sum::<u64>();
                    start = done;
                    continue;
                }
                let err = sys::last_err();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                        report.busy += chunk - start;
                        break;
                    }
                    Some(libc::EMSGSIZE) => report.too_big += 1,
                    Some(libc::ENETDOWN) | Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => {
                        report.link_down += 1
                    }
                    _ => report.failed += 1,
                }
                start += 1;
            }
            base += chunk;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::arp;
    use crate::wire::checksum::{fold, pseudo_header_v4};
    use crate::wire::ethernet::ethertype;
    use crate::wire::tcp::{flags as tcp_flags, TcpPacket};
    use crate::wire::vnet::{flags as vnet_flags, gso};
    use crate::MacAddr;

    #[test]
    fn encapsulation_matches_what_linux_sends() {
        let mut prefix = [0xaa; PREFIX_LEN];
        let (local, remote) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        encapsulate(&mut prefix, local, remote, (40000, 4789), 42, 98);
        let ip = Ipv4Packet::new_checked_header(&prefix[..]).unwrap();
        assert_eq!(ip.version(), 4);
        assert_eq!(ip.header_len(), 20);
        assert_eq!(ip.total_len() as usize, PREFIX_LEN + 98);
        assert!(ip.dont_frag());
        assert_eq!((ip.ttl(), ip.protocol()), (64, protocol::UDP));
        assert_eq!((ip.src_addr(), ip.dst_addr()), (local, remote));
        let udp = UdpPacket::new_unchecked(&prefix[20..28]);
        assert_eq!((udp.src_port(), udp.dst_port()), (40000, 4789));
        assert_eq!(udp.len() as usize, 16 + 98);
        assert_eq!(udp.checksum(), 0);
        assert_eq!(prefix[28..], [0x08, 0, 0, 0, 0, 0, 42, 0]);
    }

    #[test]
    fn decapsulation_refuses_what_is_not_vxlan() {
        let mut d = vec![0x08, 0, 0, 0, 0, 0, 7, 0];
        d.resize(8 + 14, 0xab);
        assert_eq!(decapsulate(&d), Ok((7, 8)));
        // Reserved bits are ignored; the I flag is needed.
        d[0] = 0xf7;
        assert_eq!(decapsulate(&d), Err(DecapError::BadFlags));
        d[0] = 0x08;
        assert_eq!(decapsulate(&d[..8 + 13]), Err(DecapError::Truncated));
        assert_eq!(decapsulate(&[0x08, 0, 0]), Err(DecapError::Truncated));
    }

    /// The overlay networks' MTU in these tests: a 1500-byte underlay's less VXLAN's 50 bytes.
    const MTU: usize = 1450;

    const INNER_SRC: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
    const INNER_DST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 3);

    /// An Ethernet/IPv4 frame from `INNER_SRC` to `INNER_DST` with `l4_len` bytes for the L4
    /// header and payload, all zero.
    fn ipv4_frame(protocol_number: u8, l4_len: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + l4_len];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(MacAddr([2, 0, 0, 0, 0, 2]));
        eth.set_src_addr(MacAddr([2, 0, 0, 0, 0, 1]));
        eth.set_ethertype(ethertype::IPV4);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..34]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len((20 + l4_len) as u16);
        ip.set_ident(7);
        ip.set_dont_frag(true);
        ip.set_ttl(64);
        ip.set_protocol(protocol_number);
        ip.set_src_addr(INNER_SRC);
        ip.set_dst_addr(INNER_DST);
        ip.fill_checksum();
        f
    }

    fn udp_frame(sport: u16) -> Vec<u8> {
        let mut f = ipv4_frame(protocol::UDP, 8);
        let mut udp = UdpPacket::new_unchecked(&mut f[34..]);
        udp.set_src_port(sport);
        udp.set_dst_port(53);
        udp.set_len(8);
        f
    }

    #[test]
    fn one_flow_keeps_one_source_port_and_flows_spread() {
        let a = flow_source_port(&udp_frame(1000));
        assert_eq!(a, flow_source_port(&udp_frame(1000)));
        let ports: std::collections::HashSet<u16> = (1000..1064)
            .map(|p| flow_source_port(&udp_frame(p)))
            .collect();
        assert!(ports.len() > 48, "{} distinct ports", ports.len());
        assert!(ports
            .iter()
            .all(|p| (SOURCE_PORTS.0..=SOURCE_PORTS.1).contains(p)));
        // Not IPv4, and not even Ethernet: still a port in range, never a panic.
        let arp = arp::request_frame(
            MacAddr([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::new(10, 1, 0, 2),
            Ipv4Addr::new(10, 1, 0, 3),
        );
        assert!((SOURCE_PORTS.0..=SOURCE_PORTS.1).contains(&flow_source_port(&arp)));
        assert!((SOURCE_PORTS.0..=SOURCE_PORTS.1).contains(&flow_source_port(&[1, 2])));
    }

    #[test]
    fn gro_size_is_read_from_its_control_message_only() {
        let header = mem::size_of::<libc::cmsghdr>();
        let cmsg = |level: i32, kind: i32, value: i32| {
            let mut b = vec![0u8; CONTROL_LEN];
            b[mem::offset_of!(libc::cmsghdr, cmsg_len)..][..8]
                .copy_from_slice(&(header + 4).to_ne_bytes());
            b[mem::offset_of!(libc::cmsghdr, cmsg_level)..][..4]
                .copy_from_slice(&level.to_ne_bytes());
            b[mem::offset_of!(libc::cmsghdr, cmsg_type)..][..4]
                .copy_from_slice(&kind.to_ne_bytes());
            b[header..header + 4].copy_from_slice(&value.to_ne_bytes());
            b
        };
        let good = cmsg(libc::SOL_UDP, libc::UDP_GRO, 1460);
        assert_eq!(gro_size(&good), Some(1460));
        assert_eq!(gro_size(&good[..header + 4]), Some(1460));
        assert_eq!(gro_size(&good[..header + 2]), None, "cut short");
        assert_eq!(gro_size(&[]), None);
        assert_eq!(gro_size(&cmsg(libc::SOL_IP, libc::UDP_GRO, 1460)), None);
        assert_eq!(gro_size(&cmsg(libc::SOL_UDP, libc::UDP_GRO, 0)), None);
        assert_eq!(gro_size(&cmsg(libc::SOL_UDP, libc::UDP_GRO, -5)), None);
        let mut bad_len = good.clone();
        bad_len[..8].copy_from_slice(&4096usize.to_ne_bytes());
        assert_eq!(gro_size(&bad_len), None);
        bad_len[..8].copy_from_slice(&3usize.to_ne_bytes());
        assert_eq!(gro_size(&bad_len), None);
    }

    #[test]
    fn a_batch_has_one_vni_or_none() {
        // A VXLAN header and an Ethernet header's worth of frame: the shortest datagram taken.
        let d = |vni: u8| {
            let mut d = vec![0x08, 0, 0, 0, 0, 0, vni, 0];
            d.resize(8 + 14, 0xaa);
            d
        };
        let batch = [d(7), d(7), d(7)].concat();
        assert_eq!(batch_vni(&batch, 22), Some(7));
        assert_eq!(batch_vni(&batch[..65], 22), None, "last one too short");
        assert_eq!(batch_vni(&[d(7), d(9)].concat(), 22), None);
        let mut flagless = batch.clone();
        flagless[22] = 0;
        assert_eq!(batch_vni(&flagless, 22), None);
    }

    /// An Ethernet/IPv4 frame with an L4 header of `l4_len` bytes and `payload_len` bytes of
    /// payload, as a checksum-partial GSO super-frame of `gso_type` cut every `gso_size` bytes.
    fn super_frame(
        protocol_number: u8,
        gso_type: u8,
        payload_len: usize,
        gso_size: u16,
    ) -> (VnetHeader, Vec<u8>) {
        let l4_len = if protocol_number == protocol::TCP {
            20
        } else {
            8
        };
        let mut f = ipv4_frame(protocol_number, l4_len + payload_len);
        let csum_offset = if protocol_number == protocol::TCP {
            let mut tcp = TcpPacket::new_unchecked(&mut f[34..]);
            tcp.set_src_port(40000);
            tcp.set_dst_port(5201);
            tcp.set_seq_number(1000);
            tcp.set_ack_number(1);
            tcp.set_header_len(20);
            tcp.set_flags(tcp_flags::ACK | tcp_flags::PSH);
            tcp.set_window_len(500);
            16
        } else {
            let mut udp = UdpPacket::new_unchecked(&mut f[34..]);
            udp.set_src_port(5353);
            udp.set_dst_port(4433);
            6
        };
        for (i, b) in f[34 + l4_len..].iter_mut().enumerate() {
            *b = (i * 7 + i / 251) as u8;
        }
        let pseudo = pseudo_header_v4(
            INNER_SRC.octets(),
            INNER_DST.octets(),
            protocol_number,
            (l4_len + payload_len) as u32,
        );
        f[34 + csum_offset..34 + csum_offset + 2].copy_from_slice(&fold(pseudo).to_be_bytes());
        let hdr = VnetHeader {
            flags: vnet_flags::NEEDS_CSUM,
            gso_type,
            hdr_len: (34 + l4_len) as u16,
            gso_size,
            csum_start: 34,
            csum_offset: csum_offset as u16,
        };
        (hdr, f)
    }

    fn receive_all(port: &mut VxlanPort) -> Vec<(VnetHeader, Vec<u8>)> {
        let mut batch = RxBatch::new();
        let mut frames = Vec::new();
        loop {
            let n = port.recv_batch(&mut batch).unwrap();
            frames.extend((0..n).map(|i| (batch.meta(i).vnet, batch.frame(i).to_vec())));
            if n < BATCH {
                return frames;
            }
        }
    }

    /// A super-frame leaves in one `sendmsg` (UDP GSO), crosses as one batch and is merged back
    /// into the super-frame it was (UDP GRO): the receiver gets exactly the frame that was sent;
    /// one too long for one `sendmsg` arrives as two super-frames that carry the same bytes. A
    /// batch that cannot merge (UDP segments) arrives as its datagrams, in order, across reads;
    /// in a batch with a malformed datagram and another network's, each is taken on its own.
    /// Needs root (a fresh network namespace).
    #[test]
    fn super_frames_cross_loopback_whole() {
        std::thread::spawn(super_frames_cross_loopback)
            .join()
            .unwrap();
    }

    fn super_frames_cross_loopback() {
        let (a, b) = hosts_on_loopback();
        let (a_ip, b_ip, port) = (a.local(), b.local(), a.udp_port());
        let mut a7 = a.port("a7", 7, b_ip, MTU).unwrap();
        let mut b7 = b.port("b7", 7, a_ip, MTU).unwrap();
        let mut b9 = b.port("b9", 9, a_ip, MTU).unwrap();
        assert!(a7.takes_gso() && !a7.vnet_hdr());
        let send = |port: &mut VxlanPort, hdr: VnetHeader, data: &[u8]| {
            let r = port.send_batch(&[TxRef { vnet: hdr, data }]).unwrap();
            assert_eq!((r.sent, r.sent_bytes), (1, data.len() as u64), "{r:?}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };

        // 60000 bytes at MSS 1398: 43 segments, one sendmsg, one batch, one frame.
        let (hdr, frame) = super_frame(protocol::TCP, gso::TCPV4, 60000, 1398);
        send(&mut a7, hdr, &frame);
        let got = receive_all(&mut b7);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, frame);
        assert_eq!(got[0].0, hdr);

        // 40000 bytes at MSS 536: 75 segments, two sendmsgs (64 + 11), two super-frames.
        let (hdr, frame) = super_frame(protocol::TCP, gso::TCPV4, 40000, 536);
        send(&mut a7, hdr, &frame);
        let got = receive_all(&mut b7);
        assert_eq!(got.len(), 2);
        let mut payload = Vec::new();
        let mut seq = 1000u32;
        for (vnet, f) in &got {
            assert_eq!(vnet.gso_size, 536);
            let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert!(ip.verify_checksum());
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert_eq!(tcp.seq_number(), seq);
            seq += tcp.payload().len() as u32;
            payload.extend_from_slice(tcp.payload());
        }
        assert_eq!(payload, frame[54..]);
        assert_eq!(got[0].1.len(), 54 + 64 * 536);

        // 40 UDP datagrams of 100 bytes: no merging; 32 in the first read, 8 in the next.
        let (hdr, frame) = super_frame(protocol::UDP, gso::UDP_L4, 4000, 100);
        let mut expected = Segments::new();
        offload::segment(&hdr, &frame, &mut expected).unwrap();
        send(&mut a7, hdr, &frame);
        let mut batch = RxBatch::new();
        assert_eq!(b7.recv_batch(&mut batch).unwrap(), BATCH);
        let mut got: Vec<Vec<u8>> = (0..BATCH).map(|i| batch.frame(i).to_vec()).collect();
        got.extend(receive_all(&mut b7).into_iter().map(|(_, f)| f));
        assert_eq!(got.len(), 40);
        assert!(got.iter().map(|f| &f[..]).eq(expected.iter()));
        assert_eq!(b.stats(), VxlanStats::default());

        // A batch sent by hand: VNI 7, no I flag, VNI 9, VNI 7 (each 8 + 60 bytes).
        let raw = std::net::UdpSocket::bind((a_ip, 0)).unwrap();
        sys::setsockopt_int(raw.as_raw_fd(), libc::SOL_UDP, libc::UDP_SEGMENT, 68).unwrap();
        let inner = |n: u8| {
            let mut f = udp_frame(u16::from(n));
            f.resize(60, n);
            f
        };
        let mut datagrams = Vec::new();
        for (flags, vni, n) in [(0x08, 7, 1), (0x00, 7, 2), (0x08, 9, 3), (0x08, 7, 4)] {
            datagrams.extend_from_slice(&[flags, 0, 0, 0, 0, 0, vni, 0]);
            datagrams.extend_from_slice(&inner(n));
        }
        raw.send_to(&datagrams, (b_ip, port)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let got = receive_all(&mut b7);
        assert_eq!(got.len(), 2);
        assert_eq!((&got[0].1, &got[1].1), (&inner(1), &inner(4)));
        let got = receive_all(&mut b9);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, inner(3));
        assert_eq!(
            b.stats(),
            VxlanStats {
                bad_flags: 1,
                ..VxlanStats::default()
            }
        );
    }

    /// What a Linux vxlan device with its default offloads sends over a veth underlay, sent by
    /// hand: inner frames checksum-partial, a TCP super-frame whole in one datagram. Each is
    /// taken with the vnet header that lets the next kernel finish it (`NEEDS_CSUM`; GSO cut at
    /// the network's MTU), through the stash too; what is above the MTU and cannot be cut is
    /// counted by reason and not delivered. Needs root (a fresh network namespace).
    #[test]
    fn a_linux_senders_offloads_are_recovered_on_receive() {
        std::thread::spawn(linux_offloads_on_loopback)
            .join()
            .unwrap();
    }

    fn linux_offloads_on_loopback() {
        let (a, b) = hosts_on_loopback();
        let (a_ip, b_ip, port) = (a.local(), b.local(), a.udp_port());
        let mut b7 = b.port("b7", 7, a_ip, MTU).unwrap();
        let mut b9 = b.port("b9", 9, a_ip, MTU).unwrap();
        let sender = std::net::UdpSocket::bind((a_ip, 0)).unwrap();
        let send = |vni: u8, frame: &[u8]| {
            let mut d = vec![0x08, 0, 0, 0, 0, 0, vni, 0];
            d.extend_from_slice(frame);
            sender.send_to(&d, (b_ip, port)).unwrap();
        };
        let (small_hdr, small) = super_frame(protocol::TCP, gso::NONE, 100, 0);
        let (_, whole) = super_frame(protocol::TCP, gso::NONE, 30000, 0);
        let (_, udp) = super_frame(protocol::UDP, gso::NONE, 5000, 0);
        let mut bad_checksum = whole.clone();
        TcpPacket::new_unchecked(&mut bad_checksum[34..]).set_checksum(0x1234);
        let mut short_len = whole.clone();
        let ip_len = Ipv4Packet::new_unchecked(&short_len[14..]).total_len();
        Ipv4Packet::new_unchecked(&mut short_len[14..]).set_total_len(ip_len - 1);
        send(7, &small);
        send(7, &whole);
        send(9, &whole);
        send(7, &udp);
        send(7, &bad_checksum);
        send(7, &short_len);
        std::thread::sleep(std::time::Duration::from_millis(50));

        let super_hdr = VnetHeader {
            flags: vnet_flags::NEEDS_CSUM,
            gso_type: gso::TCPV4,
            hdr_len: 54,
            gso_size: (MTU - 40) as u16,
            csum_start: 34,
            csum_offset: 16,
        };
        let got = receive_all(&mut b7);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (small_hdr, small));
        assert_eq!(got[1], (super_hdr, whole.clone()));
        let got = receive_all(&mut b9);
        assert_eq!(got, [(super_hdr, whole)], "through the stash");
        assert_eq!(
            b.stats(),
            VxlanStats {
                oversize_not_tcp: 1,
                oversize_malformed: 1,
                oversize_bad_checksum: 1,
                ..VxlanStats::default()
            }
        );
    }

    /// Two hosts on loopback (127.0.0.1 and 127.0.0.2, the same UDP port): frames cross through
    /// real sockets, each lands on the port of its VNI and sender, and a datagram read by another
    /// network's port reaches its own through the stash. Needs root (a raw socket, and a fresh
    /// network namespace so nothing touches the host's).
    #[test]
    fn gso_sockets_follow_active_flows_without_thrashing() {
        // In a namespace of its own, so that no other socket holds the ports it binds.
        std::thread::spawn(gso_slots_in_this_namespace)
            .join()
            .unwrap();
    }

    fn gso_slots_in_this_namespace() {
        // SAFETY: unshare only changes this thread's network namespace.
        assert_eq!(
            unsafe { libc::unshare(libc::CLONE_NEWNET) },
            0,
            "needs root"
        );
        sys::set_up("lo").unwrap();
        let local = Ipv4Addr::new(127, 0, 0, 9);
        let mut s = GsoSockets::new(local);
        // Ports that collide modulo GSO_SOCKETS keep one socket each, asked again and again.
        let (p, q) = (45_000u16, 45_000 + GSO_SOCKETS as u16);
        let fp = s.get(p).expect("bound");
        let fq = s.get(q).expect("bound");
        for _ in 0..3 {
            assert_eq!(s.get(p), Some(fp));
            assert_eq!(s.get(q), Some(fq));
        }
        // All slots taken by flows active now: a new flow goes without (the raw socket).
        for k in 2..GSO_SOCKETS as u16 {
            assert!(s.get(46_000 + k).is_some());
        }
        assert!(s.get(47_000).is_none());
        assert!(s.slots.iter().all(|slot| slot.port != 47_000));
        // A slot idle for GSO_IDLE serves the next new flow; the others stay.
        s.slots[0].used -= GSO_IDLE;
        assert!(s.get(47_000).is_some());
        let ports: Vec<u16> = s.slots.iter().map(|slot| slot.port).collect();
        assert_eq!(ports.len(), GSO_SOCKETS);
        assert!(!ports.contains(&p) && ports.contains(&q) && ports.contains(&47_000));

        // Another sender (a twin on another worker, or another network's port) has its own
        // sockets, on the same source ports: nothing shared, and both can send.
        let mut twin = GsoSockets::new(local);
        let tq = twin
            .get(q)
            .expect("a second socket on a port the first sender holds");
        assert_ne!(tq, fq);
        assert_eq!(s.get(q), Some(fq));
        // A port another program holds (bound without SO_REUSEPORT) is left to it.
        let holder = socket(libc::SOCK_DGRAM, 0).unwrap();
        bind(holder.as_raw_fd(), local, 48_000).unwrap();
        assert!(twin.get(48_000).is_none());
    }

    #[test]
    fn frames_cross_loopback_to_the_port_of_their_vni() {
        std::thread::spawn(frames_cross_loopback).join().unwrap();
    }

    /// Moves the calling thread into a fresh network namespace (root needed) and opens the
    /// sockets of two hosts on its loopback: 127.0.0.1 and 127.0.0.2, port 4789 both.
    fn hosts_on_loopback() -> (Arc<VxlanSocket>, Arc<VxlanSocket>) {
        // SAFETY: unshare only changes this thread's network namespace.
        assert_eq!(
            unsafe { libc::unshare(libc::CLONE_NEWNET) },
            0,
            "needs root"
        );
        sys::set_up("lo").unwrap();
        let port = vxlan::UDP_PORT;
        let a = VxlanSocket::open(Ipv4Addr::new(127, 0, 0, 1), port).unwrap();
        let b = VxlanSocket::open(Ipv4Addr::new(127, 0, 0, 2), port).unwrap();
        (a, b)
    }

    fn frames_cross_loopback() {
        let (a, b) = hosts_on_loopback();
        let (a_ip, b_ip) = (a.local(), b.local());
        let mut a_to_b_7 = a.port("a7", 7, b_ip, MTU).unwrap();
        let mut a_to_b_9 = a.port("a9", 9, b_ip, MTU).unwrap();
        let mut b_from_a_7 = b.port("b7", 7, a_ip, MTU).unwrap();
        let mut b_from_a_9 = b.port("b9", 9, a_ip, MTU).unwrap();
        assert!(b.port("again", 7, a_ip, MTU).is_err());

        let f7 = udp_frame(7);
        let f9 = udp_frame(9);
        let r = a_to_b_7
            .send_batch(&[TxRef {
                vnet: VnetHeader::default(),
                data: &f7,
            }])
            .unwrap();
        assert_eq!(r.sent, 1);
        a_to_b_9
            .send_batch(&[TxRef {
                vnet: VnetHeader::default(),
                data: &f9,
            }])
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));

        // The VNI 9 port reads both datagrams: its own into the batch, VNI 7's into the stash.
        let mut batch = RxBatch::new();
        assert_eq!(b_from_a_9.recv_batch(&mut batch).unwrap(), 1);
        assert_eq!(batch.frame(0), &f9[..]);
        assert_eq!(b_from_a_7.recv_batch(&mut batch).unwrap(), 1);
        assert_eq!(batch.frame(0), &f7[..]);
        assert_eq!(b.stats(), VxlanStats::default());

        // Another worker's send-only twin sends as the port does.
        let mut twin = a_to_b_7.sender().unwrap();
        assert_eq!((twin.raw_fd(), twin.vnet_hdr()), (None, false));
        twin.send_batch(&[TxRef {
            vnet: VnetHeader::default(),
            data: &f9,
        }])
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(b_from_a_7.recv_batch(&mut batch).unwrap(), 1);
        assert_eq!(batch.frame(0), &f9[..]);

        // Neither a VNI nobody on b has, nor a known VNI from an address that is not the port's
        // remote host, is delivered; each is counted.
        let c = VxlanSocket::open(Ipv4Addr::new(127, 0, 0, 3), a.udp_port()).unwrap();
        for mut stranger in [
            a.port("a5", 5, b_ip, MTU).unwrap(),
            c.port("c7", 7, b_ip, MTU).unwrap(),
        ] {
            let frame = TxRef {
                vnet: VnetHeader::default(),
                data: &f7,
            };
            stranger.send_batch(&[frame]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(b_from_a_7.recv_batch(&mut batch).unwrap(), 0);
        }
        assert_eq!(
            b.stats(),
            VxlanStats {
                unknown_vni: 1,
                unknown_host: 1,
                ..VxlanStats::default()
            }
        );
    }
}
