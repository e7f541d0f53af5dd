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
//! the other ports' stashes, refreshed under the registry's lock only after a port came or went
//! (`VxlanSocket::generation`, bumped by the control plane).
//!
//! Send: through a raw `IPPROTO_RAW` socket that writes the outer IPv4 and UDP headers itself,
//! because the UDP source port is the inner flow's hash (RFC 7348 section 5, so the underlay's
//! ECMP and the receiver's RSS spread flows as they do for Linux's vxlan), and a UDP socket sends
//! from its one bound port. `IPPROTO_RAW` sockets receive nothing, so sending costs no copy of
//! every UDP packet the host receives. The UDP checksum is zero (allowed over IPv4, and what
//! Linux sends by default); DF is set, so a frame too large for the underlay is refused
//! (`tx-too-big`) rather than fragmented. The port has no vnet header: the engine segments GSO
//! super-frames and finishes checksums before handing frames over, so what leaves is always a
//! complete frame no larger than the overlay MTU.

use std::collections::HashMap;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::{sys, Port, PortError, PortKind, RxBatch, RxMeta, SendReport, Tunnel, TxRef, BATCH};
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
}

impl VxlanStats {
    /// Every reason by its name in stats, in a stable order.
    pub fn by_reason(&self) -> [(&'static str, u64); 5] {
        [
            ("truncated", self.truncated),
            ("bad-flags", self.bad_flags),
            ("unknown-vni", self.unknown_vni),
            ("unknown-host", self.unknown_host),
            ("stash-full", self.stash_full),
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
    /// The registry of ports: taken by the control plane to add or remove one, and by a port
    /// only when `generation` says it changed since the port last copied it.
    routes: Mutex<HashMap<Key, StashRoute>>,
    generation: AtomicU64,
    truncated: AtomicU64,
    bad_flags: AtomicU64,
    unknown_vni: AtomicU64,
    unknown_host: AtomicU64,
    stash_full: AtomicU64,
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
        }
    }

    /// A port for `vni` toward the remote host at underlay address `remote`, named `name` in
    /// tables and traces. One port per (VNI, remote host).
    pub fn port(
        self: &Arc<Self>,
        name: &str,
        vni: u32,
        remote: Ipv4Addr,
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
            fd,
            stash: frames_rx,
            spare: spare_tx,
            routes: HashMap::new(),
            seen: u64::MAX,
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
    /// This port's duplicate of the UDP socket, registered with the poller on its own.
    fd: OwnedFd,
    /// Frames other ports read for this one, and where their buffers go back.
    stash: Receiver<Vec<u8>>,
    spare: Sender<Vec<u8>>,
    /// This port's copy of the socket's routes, as of generation `seen`.
    routes: HashMap<Key, StashRoute>,
    seen: u64,
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
            let Ok(frame) = self.stash.try_recv() else {
                break;
            };
            batch.fill(n, VnetHeader::default(), &frame);
            // A full spare queue only means the writer allocates once more.
            let _ = self.spare.try_send(frame);
            n += 1;
        }
        n
    }

    /// Hands `frame` (decapsulated) to the port for `key`, or counts why it cannot.
    fn stash(&mut self, key: Key, frame: &[u8]) {
        let socket = &self.tx.socket;
        let generation = socket.generation.load(Ordering::Acquire);
        if generation != self.seen {
            self.routes = socket
                .routes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            self.seen = generation;
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
        let socket = &self.tx.socket;
        let mut routes = socket.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.remove(&self.key);
        socket.generation.fetch_add(1, Ordering::Release);
    }
}

/// The sending half of a VXLAN port: what the port and its senders on other workers share.
struct VxlanTx {
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

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, PortError> {
        let mut n = self.take_stashed(batch);
        let mut reads = 0;
        while n < BATCH && reads < MAX_READS {
            reads += 1;
            let want = BATCH - n;
            // SAFETY: plain old data; all-zero is a valid value of each.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
            // SAFETY: as above.
            let mut addrs: [libc::sockaddr_in; BATCH] = unsafe { mem::zeroed() };
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
            }
            // SAFETY: messages 0..want point at iovecs into slots n..BATCH of `batch` and at
            // `addrs`, all live and exclusively borrowed for the call.
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
            for k in 0..got {
                let i = n + k;
                let len = msgs[k].msg_len as usize;
                let truncated = msgs[k].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                let from = Ipv4Addr::from(u32::from_be(addrs[k].sin_addr.s_addr));
                let (slot, _) = batch.slot_mut(i);
                let datagram = &mut slot[..len];
                let (vni, start) = match decapsulate(datagram) {
                    Ok(found) => found,
                    Err(why) => {
                        let socket = &self.tx.socket;
                        let counter = match why {
                            DecapError::Truncated => &socket.truncated,
                            DecapError::BadFlags => &socket.bad_flags,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                if (vni, from) != self.key {
                    self.stash((vni, from), &datagram[start..]);
                    continue;
                }
                datagram.copy_within(start.., 0);
                if keep != i {
                    batch.swap_slots(keep, i);
                }
                *batch.meta_mut(keep) = RxMeta {
                    len: len - start,
                    filtered: false,
                    vnet: VnetHeader::default(),
                    truncated,
                };
                keep += 1;
            }
            n = keep;
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
            tx: VxlanTx::new(self.tx.socket.clone(), self.key),
        }))
    }
}

impl VxlanTx {
    fn new(socket: Arc<VxlanSocket>, key: Key) -> VxlanTx {
        let dst = sockaddr(key.1, socket.port);
        VxlanTx {
            socket,
            key,
            dst,
            prefixes: Box::new([[0; PREFIX_LEN]; BATCH]),
        }
    }

    fn tunnel(&self) -> Tunnel {
        Tunnel {
            vni: self.key.0,
            local: self.socket.local,
            remote: self.key.1,
            udp_port: self.socket.port,
        }
    }

    fn send(&mut self, frames: &[TxRef<'_>]) -> SendReport {
        let mut report = SendReport::default();
        let local = self.socket.local;
        let (vni, remote) = self.key;
        for chunk in frames.chunks(BATCH) {
            // SAFETY: plain old data; all-zero is a valid value.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
            let mut iovs = [[libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; 2]; BATCH];
            for (i, f) in chunk.iter().enumerate() {
                let ports = (flow_source_port(f.data), self.socket.port);
                encapsulate(
                    &mut self.prefixes[i],
                    local,
                    remote,
                    ports,
                    vni,
                    f.data.len(),
                );
                iovs[i][0] = libc::iovec {
                    iov_base: self.prefixes[i].as_mut_ptr().cast(),
                    iov_len: PREFIX_LEN,
                };
                iovs[i][1] = libc::iovec {
                    iov_base: f.data.as_ptr() as *mut libc::c_void,
                    iov_len: f.data.len(),
                };
                let m = &mut msgs[i].msg_hdr;
                m.msg_iov = iovs[i].as_mut_ptr();
                m.msg_iovlen = 2;
                m.msg_name = (&mut self.dst as *mut libc::sockaddr_in).cast();
                m.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            let mut start = 0;
            while start < chunk.len() {
                // SAFETY: messages start..chunk.len() point at iovecs into `prefixes` and into
                // frame data borrowed by `frames`, and at `dst`, all alive for the call; the
                // kernel only reads them.
                let rc = unsafe {
                    libc::sendmmsg(
                        self.socket.raw.as_raw_fd(),
                        msgs.as_mut_ptr().add(start),
                        (chunk.len() - start) as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                if rc > 0 {
                    let done = start + rc as usize;
                    report.sent += rc as usize;
                    report.sent_bytes += chunk[start..done]
                        .iter()
                        .map(|f| f.data.len() as u64)
                        .sum::<u64>();
                    start = done;
                    continue;
                }
                let err = sys::last_err();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                        report.busy += chunk.len() - start;
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
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::arp;
    use crate::wire::ethernet::ethertype;
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

    fn udp_frame(sport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(MacAddr([2, 0, 0, 0, 0, 2]));
        eth.set_src_addr(MacAddr([2, 0, 0, 0, 0, 1]));
        eth.set_ethertype(ethertype::IPV4);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..34]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len(28);
        ip.set_protocol(protocol::UDP);
        ip.set_src_addr(Ipv4Addr::new(10, 1, 0, 2));
        ip.set_dst_addr(Ipv4Addr::new(10, 1, 0, 3));
        ip.fill_checksum();
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

    /// Two hosts on loopback (127.0.0.1 and 127.0.0.2, the same UDP port): frames cross through
    /// real sockets, each lands on the port of its VNI and sender, and a datagram read by another
    /// network's port reaches its own through the stash. Needs root (a raw socket, and a fresh
    /// network namespace so nothing touches the host's).
    #[test]
    fn frames_cross_loopback_to_the_port_of_their_vni() {
        std::thread::spawn(frames_cross_loopback).join().unwrap();
    }

    fn frames_cross_loopback() {
        // SAFETY: unshare only changes this thread's network namespace.
        assert_eq!(
            unsafe { libc::unshare(libc::CLONE_NEWNET) },
            0,
            "needs root"
        );
        sys::set_up("lo").unwrap();
        let port = vxlan::UDP_PORT;
        let (a_ip, b_ip) = (Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2));
        let a = VxlanSocket::open(a_ip, port).unwrap();
        let b = VxlanSocket::open(b_ip, port).unwrap();
        let mut a_to_b_7 = a.port("a7", 7, b_ip).unwrap();
        let mut a_to_b_9 = a.port("a9", 9, b_ip).unwrap();
        let mut b_from_a_7 = b.port("b7", 7, a_ip).unwrap();
        let mut b_from_a_9 = b.port("b9", 9, a_ip).unwrap();
        assert!(b.port("again", 7, a_ip).is_err());

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
        let c = VxlanSocket::open(Ipv4Addr::new(127, 0, 0, 3), port).unwrap();
        for mut stranger in [
            a.port("a5", 5, b_ip).unwrap(),
            c.port("c7", 7, b_ip).unwrap(),
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
