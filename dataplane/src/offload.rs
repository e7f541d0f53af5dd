//! Software fallback for virtio-net offloads: finishing partial checksums and segmenting GSO
//! super-frames.
//!
//! AF_PACKET sockets with `PACKET_VNET_HDR` and tap devices with `IFF_VNET_HDR` hand us frames exactly
//! as the kernel holds them, described by a [`VnetHeader`]: the L4 checksum may be only partial
//! (`NEEDS_CSUM`: the checksum field holds the folded pseudo-header sum, the rest is left to "the
//! hardware"), and the frame may be a GSO super-frame of up to 64 KiB that "the hardware" was meant to
//! cut into `gso_size` pieces. A port that takes the vnet header passes that work on to the next
//! kernel; a port without one (a plain AF_PACKET socket on a NIC, a tap without `IFF_VNET_HDR`) would put
//! a frame with a wrong checksum, or a frame far above the MTU, on the wire, where it is dropped without
//! a trace. This module does in software what Linux does in `skb_checksum_help` and in
//! `tcp_gso_segment` / `__udp_gso_segment` (through `skb_segment` and `inet_gso_segment` /
//! `ipv6_gso_segment`), so that the switch can always send such a frame out of any port: it either
//! finishes the frame or returns an [`OffloadError`] that the caller counts; it never drops silently.
//!
//! * [`finish_checksum`] completes a checksum-partial frame in place; it needs no parsing at all, only
//!   `csum_start` / `csum_offset`, so it works for any protocol Linux offloads this way.
//! * [`segment`] cuts a GSO super-frame (Ethernet, at most one 802.1Q tag, IPv4 with options or IPv6
//!   without extension headers, TCP with options or UDP) into complete frames in a [`Segments`] area
//!   that is allocated once and reused, so the egress path allocates nothing per packet. Header offsets
//!   come from the frame itself; `hdr_len` is never trusted (kernels fill it with the skb's linear
//!   length, with the header length, or with 0), and `csum_start` / `csum_offset`, when present, must
//!   agree with what the frame says.
//! * [`segment_headers`] does what `segment` does without copying payloads: each segment's headers
//!   into a [`SegmentHeaders`] area, and where its payload lies in the super-frame, for a sender
//!   that gathers (the VXLAN port's `sendmsg`). Both share one `Plan`, so they cannot disagree.
//! * [`coalesce_tcp`] is the way back, GRO: a batch of TCP segments merged into one super-frame.
//! * [`recover_offloads`] gives a frame that came out of a tunnel the vnet header its sender's
//!   kernel had for it (checksum-partial; a TCP super-frame above the MTU, cut at the MTU),
//!   which a UDP datagram does not carry.
//! * The engine's egress (`engine::egress`) picks which of the two a frame needs: it finishes every
//!   queued checksum in place before it borrows the frames for one send batch.
//!
//! Headers are read and written through `crate::wire`'s views. A super-frame's IPv4 total length,
//! IPv6 payload length and UDP length are meaningless (Linux ignores them too), so the views are
//! built with the constructors that do not trust them (`Ipv4Packet::new_checked_header`) or, where
//! `wire` has none (IPv6, UDP), with `new_unchecked` after checking the fixed header is in the frame;
//! TCP's own check (header and options present) holds for super-frames as it is. Two things stay
//! offsets, for the virtio header's sake: `csum_start`/`csum_offset` are compared with the L4
//! offset and the wire checksum field's position, and `finish_checksum` works on those offsets
//! alone (that is what makes it protocol-independent).

use std::ops::Range;

use crate::wire::checksum::{fold, pseudo_header_v4, pseudo_header_v6, sum};
use crate::wire::ethernet::{self, ethertype, EthernetFrame};
use crate::wire::ipv4::{protocol, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::{self, flags, TcpPacket};
use crate::wire::udp::{self, UdpPacket};
use crate::wire::vnet::{flags as vnet_flags, gso, VnetHeader};

/// The longest IPv4 and TCP headers (IHL and data offset 15, options included).
const IPV4_MAX_HDR_LEN: usize = 60;
const TCP_MAX_HDR_LEN: usize = 60;

/// Largest value of the 16-bit IPv4 total length, IPv6 payload length and UDP length fields.
const MAX_IP_LEN_FIELD: usize = 0xffff;

/// Segments a [`Segments::new`] area holds: Linux's `UDP_MAX_SEGMENTS`, and enough for a 64 KiB TCP
/// super-frame at any MSS of 512 bytes or more. Use [`Segments::with_max_segments`] for more.
pub const MAX_SEGMENTS: usize = 128;

/// Longest super-frame [`segment`] is sized for: Ethernet with one VLAN tag plus the largest IPv6
/// packet without a jumbogram (the largest IPv4 packet is 20 bytes shorter).
pub const MAX_SUPER_FRAME_LEN: usize =
    ethernet::VLAN_HEADER_LEN + ipv6::HEADER_LEN + MAX_IP_LEN_FIELD;

/// Longest header block [`segment`] repeats in front of each segment: Ethernet, one VLAN tag, IPv4
/// with 40 bytes of options and TCP with 40 bytes of options.
pub const MAX_HEADERS_LEN: usize = ethernet::VLAN_HEADER_LEN + IPV4_MAX_HDR_LEN + TCP_MAX_HDR_LEN;

/// Why a frame could not be finished. Each variant is a reason to count the frame as dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// `NEEDS_CSUM` with `csum_start` / `csum_offset` outside the frame, or, for a GSO frame, not
    /// pointing at the checksum field of the TCP or UDP header the frame actually carries.
    #[error("checksum offsets outside the frame or not at the L4 checksum field")]
    BadCsumOffsets,
    /// A GSO type we do not segment: UFO (`gso::UDP`, IP fragmentation, which no current kernel
    /// produces) or a value virtio does not define.
    #[error("unsupported GSO type")]
    UnsupportedGso,
    /// A GSO frame whose headers do not parse (truncated, not Ethernet/IP/TCP-or-UDP, IPv6 extension
    /// headers, an IPv4 fragment, a protocol that does not match the GSO type), whose `gso_size` is 0,
    /// or whose segments could not carry valid IP/UDP length fields.
    #[error("malformed GSO frame")]
    MalformedGso,
    /// Segmenting would need more segments (or bytes) than the [`Segments`] area holds.
    #[error("GSO frame needs more segments than the output area holds")]
    TooManySegments,
}

/// Completes a checksum-partial frame in place, like Linux's `skb_checksum_help`: the checksum field at
/// `csum_start + csum_offset` already holds the folded pseudo-header sum (that is what Linux leaves
/// there), so the one's complement sum of `frame[csum_start..]` is taken as it is and its complement
/// stored in that field.
///
/// As Linux does, a result of 0x0000 is stored as 0xffff (equivalent in one's complement; required for
/// UDP, where 0 would mean "no checksum", and harmless for TCP and the rest). `csum_start` is relative
/// to the start of `frame` (the Ethernet header), so a caller that pushes or pops a VLAN tag must move
/// it. Without `NEEDS_CSUM` this does nothing. It does not look at the GSO fields: a GSO frame
/// goes to [`segment`].
pub fn finish_checksum(hdr: &VnetHeader, frame: &mut [u8]) -> Result<(), OffloadError> {
    if !hdr.needs_csum() {
        return Ok(());
    }
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if field + 2 > frame.len() {
        return Err(OffloadError::BadCsumOffsets);
    }
    let value = !fold(sum(0, &frame[start..]));
    let value = if value == 0 { 0xffff } else { value };
    frame[field..field + 2].copy_from_slice(&value.to_be_bytes());
    Ok(())
}

/// Preallocated output area for [`segment`]: one buffer allocated at construction and reused for
/// every super-frame, so segmenting allocates nothing per packet.
pub struct Segments {
    buf: Box<[u8]>,
    /// `(start, end)` of each segment in `buf`; its capacity is reserved up front.
    bounds: Vec<(usize, usize)>,
    max_segments: usize,
}

impl Segments {
    /// Room for any super-frame up to [`MAX_SUPER_FRAME_LEN`] cut into up to [`MAX_SEGMENTS`]
    /// segments (about 81 KiB).
    pub fn new() -> Self {
        Self::with_max_segments(MAX_SEGMENTS)
    }

    /// Room for up to `max_segments` segments (at least 1) of a super-frame up to
    /// [`MAX_SUPER_FRAME_LEN`], for ports that must cope with very small `gso_size` values.
    pub fn with_max_segments(max_segments: usize) -> Self {
        let max_segments = max_segments.max(1);
        Segments {
            buf: vec![0u8; MAX_SUPER_FRAME_LEN + max_segments * MAX_HEADERS_LEN].into_boxed_slice(),
            bounds: Vec::with_capacity(max_segments),
            max_segments,
        }
    }

    /// How many segments this area can hold.
    #[cfg(test)]
    pub fn max_segments(&self) -> usize {
        self.max_segments
    }

    /// Number of frames held.
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// The `i`-th complete frame.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn get(&self, i: usize) -> &[u8] {
        let (start, end) = self.bounds[i];
        &self.buf[start..end]
    }

    /// The frames in order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.bounds
            .iter()
            .map(move |&(start, end)| &self.buf[start..end])
    }

    /// Forgets the frames held; keeps the memory.
    pub fn clear(&mut self) {
        self.bounds.clear();
    }
}

impl Default for Segments {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Segments {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Segments")
            .field("len", &self.len())
            .field("max_segments", &self.max_segments)
            .field("capacity_bytes", &self.buf.len())
            .finish()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ip {
    V4,
    V6,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum L4 {
    Tcp,
    Udp,
}

/// Where the headers of a super-frame are, as read from the frame itself.
#[derive(Clone, Copy, Debug)]
struct Layout {
    ip: Ip,
    l4: L4,
    /// Offset of the IP header.
    l3_off: usize,
    /// Offset of the TCP or UDP header.
    l4_off: usize,
    /// Offset of the L4 payload: the length of the header block repeated in every segment.
    payload_off: usize,
}

/// Finds the L3, L4 and payload offsets of a GSO frame of kind `kind` (without the ECN flag), checking
/// that every header is complete and that the protocols are those `kind` promises.
fn parse_layout(kind: u8, frame: &[u8]) -> Result<Layout, OffloadError> {
    let (want_ip, l4) = match kind {
        gso::TCPV4 => (Some(Ip::V4), L4::Tcp),
        gso::TCPV6 => (Some(Ip::V6), L4::Tcp),
        gso::UDP_L4 => (None, L4::Udp),
        _ => return Err(OffloadError::UnsupportedGso),
    };
    let (ip, l3_off, l4_off, protocol) = parse_ip(frame)?;
    if want_ip.is_some_and(|w| w != ip) {
        return Err(OffloadError::MalformedGso);
    }
    let l4_hdr_len = parse_l4(l4, protocol, &frame[l4_off..])?;
    Ok(Layout {
        ip,
        l4,
        l3_off,
        l4_off,
        payload_off: l4_off + l4_hdr_len,
    })
}

/// The IP version, the offsets of the IP and L4 headers and the L4 protocol of an Ethernet frame
/// (at most one 802.1Q tag) carrying IPv4 (not a fragment) or IPv6 (whose extension headers are
/// not followed: the protocol is the fixed header's next header). The IP length fields are not
/// trusted (a super-frame's are meaningless), so only the IP header is checked.
fn parse_ip(frame: &[u8]) -> Result<(Ip, usize, usize, u8), OffloadError> {
    let malformed = OffloadError::MalformedGso;
    let eth = EthernetFrame::new_checked(frame).map_err(|_| malformed)?;
    let l3_off = eth.l3_offset();
    let l3 = &frame[l3_off..];
    match eth.inner_ethertype() {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked_header(l3).map_err(|_| malformed)?;
            if ip.version() != 4 || ip.more_frags() || ip.frag_offset() != 0 {
                return Err(malformed);
            }
            Ok((Ip::V4, l3_off, l3_off + ip.header_len(), ip.protocol()))
        }
        ethertype::IPV6 => {
            if l3.len() < ipv6::HEADER_LEN {
                return Err(malformed);
            }
            let ip = Ipv6Packet::new_unchecked(l3);
            if ip.version() != 6 {
                return Err(malformed);
            }
            Ok((Ip::V6, l3_off, l3_off + ipv6::HEADER_LEN, ip.next_header()))
        }
        _ => Err(malformed),
    }
}

/// The length of the `l4` header (options included) at the start of `l4_hdr`, checking that the
/// IP header's `protocol` says it is one and that it is complete.
fn parse_l4(l4: L4, protocol: u8, l4_hdr: &[u8]) -> Result<usize, OffloadError> {
    let malformed = OffloadError::MalformedGso;
    match l4 {
        L4::Tcp => {
            if protocol != protocol::TCP {
                return Err(malformed);
            }
            Ok(TcpPacket::new_checked(l4_hdr)
                .map_err(|_| malformed)?
                .header_len())
        }
        L4::Udp => {
            if protocol != protocol::UDP || l4_hdr.len() < udp::HEADER_LEN {
                return Err(malformed);
            }
            Ok(udp::HEADER_LEN)
        }
    }
}

/// The checksum field of the L4 header, from its start.
fn l4_checksum_field(l4: L4) -> Range<usize> {
    match l4 {
        L4::Tcp => tcp::field::CHECKSUM,
        L4::Udp => udp::field::CHECKSUM,
    }
}

/// Cuts a GSO super-frame (Ethernet, optionally one 802.1Q tag, IPv4 or IPv6 without extension
/// headers, TCP or UDP) into complete frames of at most `gso_size` bytes of L4 payload each, with all
/// checksums complete, replacing the contents of `out`.
///
/// Follows Linux's software GSO: every segment repeats the Ethernet, IP and TCP/UDP headers (options
/// included). IPv4 gets its total length, identification `ident + i` and header checksum rewritten;
/// IPv6 its payload length. TCP segments get `seq + i * gso_size`, FIN and PSH only on the last
/// segment, CWR only on the first (Linux clears it after the first whether or not `gso_type` carries the
/// ECN flag). UDP (`UDP_L4`, i.e. USO) segments are separate datagrams with their own length. The
/// super-frame's L4 checksum field holds a partial sum and is ignored: every L4 checksum is computed
/// from scratch (a UDP result of 0 is sent as 0xffff). The super-frame's own IPv4 total length, IPv6
/// payload length and UDP length are ignored too: like Linux, the frame's length is what counts.
///
/// A super-frame whose payload fits in one segment (or is empty) yields one frame. A header without
/// GSO yields the frame itself, its checksum finished if `NEEDS_CSUM` is set. `hdr_len` is ignored.
/// On error `out` is left empty.
pub fn segment(hdr: &VnetHeader, frame: &[u8], out: &mut Segments) -> Result<(), OffloadError> {
    out.clear();
    if !hdr.is_gso() {
        if frame.len() > out.buf.len() {
            return Err(OffloadError::TooManySegments);
        }
        let copy = &mut out.buf[..frame.len()];
        copy.copy_from_slice(frame);
        finish_checksum(hdr, copy)?;
        out.bounds.push((0, frame.len()));
        return Ok(());
    }
    let plan = Plan::new(hdr, frame)?;
    let headers = plan.layout.payload_off;
    let payload = frame.len() - headers;
    if plan.count > out.max_segments || plan.count * headers + payload > out.buf.len() {
        return Err(OffloadError::TooManySegments);
    }
    let mut pos = 0;
    for i in 0..plan.count {
        let chunk = &frame[plan.payload(i)];
        let end = pos + headers + chunk.len();
        let (seg_headers, seg_payload) = out.buf[pos..end].split_at_mut(headers);
        seg_payload.copy_from_slice(chunk);
        plan.write_headers(frame, i, seg_headers, seg_payload);
        out.bounds.push((pos, end));
        pos = end;
    }
    Ok(())
}

/// A super-frame's segments without their payloads: each segment's headers, written here, and
/// where its payload lies in the super-frame, for a sender that gathers (`sendmsg` with one iovec
/// for the headers and one into the super-frame), so the payload is never copied in user space.
pub struct SegmentHeaders {
    buf: Box<[u8]>,
    headers_len: usize,
    payloads: Vec<Range<usize>>,
}

impl SegmentHeaders {
    /// Room for [`MAX_SEGMENTS`] segments' headers.
    pub fn new() -> Self {
        SegmentHeaders {
            buf: vec![0u8; MAX_SEGMENTS * MAX_HEADERS_LEN].into_boxed_slice(),
            headers_len: 0,
            payloads: Vec::with_capacity(MAX_SEGMENTS),
        }
    }

    /// Number of segments described.
    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    /// Segment `i`'s headers (Ethernet to TCP/UDP, all fields final).
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn headers(&self, i: usize) -> &[u8] {
        let _ = &self.payloads[i];
        &self.buf[i * self.headers_len..(i + 1) * self.headers_len]
    }

    /// Where segment `i`'s payload lies in the super-frame.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn payload(&self, i: usize) -> Range<usize> {
        self.payloads[i].clone()
    }
}

impl Default for SegmentHeaders {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`segment`] does, without copying payloads: fills `out` with each segment's headers and
/// payload range for the GSO super-frame `frame`; segment `i` is `out.headers(i)` followed by
/// `frame[out.payload(i)]`, byte for byte what `segment` would make. A frame without GSO, or one
/// that needs more than [`MAX_SEGMENTS`] segments, is an error (`UnsupportedGso`,
/// `TooManySegments`): use `segment`. On error `out` is left empty.
pub fn segment_headers(
    hdr: &VnetHeader,
    frame: &[u8],
    out: &mut SegmentHeaders,
) -> Result<(), OffloadError> {
    out.payloads.clear();
    if !hdr.is_gso() {
        return Err(OffloadError::UnsupportedGso);
    }
    let plan = Plan::new(hdr, frame)?;
    let headers = plan.layout.payload_off;
    if plan.count > MAX_SEGMENTS || headers > MAX_HEADERS_LEN {
        return Err(OffloadError::TooManySegments);
    }
    out.headers_len = headers;
    for i in 0..plan.count {
        let payload = plan.payload(i);
        plan.write_headers(
            frame,
            i,
            &mut out.buf[i * headers..(i + 1) * headers],
            &frame[payload.clone()],
        );
        out.payloads.push(payload);
    }
    Ok(())
}

/// How a checked GSO super-frame is cut: what [`segment`] and [`segment_headers`] share.
struct Plan {
    layout: Layout,
    frame_len: usize,
    mss: usize,
    count: usize,
    ident: u16,
    seq: u32,
    tcp_flags: u8,
}

impl Plan {
    /// Checks `frame` against `hdr` (see [`segment`]) and works out its segments.
    fn new(hdr: &VnetHeader, frame: &[u8]) -> Result<Plan, OffloadError> {
        let layout = parse_layout(hdr.gso_kind(), frame)?;
        if hdr.needs_csum() {
            let csum_field = l4_checksum_field(layout.l4).start;
            if usize::from(hdr.csum_start) != layout.l4_off
                || usize::from(hdr.csum_offset) != csum_field
            {
                return Err(OffloadError::BadCsumOffsets);
            }
        }
        let mss = usize::from(hdr.gso_size);
        if mss == 0 {
            return Err(OffloadError::MalformedGso);
        }
        let payload = frame.len() - layout.payload_off;
        let count = payload.div_ceil(mss).max(1);
        // The largest segment must still be describable by the 16-bit length fields.
        let largest_l3_len = layout.payload_off - layout.l3_off + mss.min(payload);
        let largest_l4_len = layout.payload_off - layout.l4_off + mss.min(payload);
        let l3_len_field = match layout.ip {
            Ip::V4 => largest_l3_len,
            Ip::V6 => largest_l4_len,
        };
        if l3_len_field > MAX_IP_LEN_FIELD || largest_l4_len > MAX_IP_LEN_FIELD {
            return Err(OffloadError::MalformedGso);
        }
        // The views below are built over headers `parse_layout` checked, so `new_unchecked`
        // reads within them.
        let ident = match layout.ip {
            Ip::V4 => Ipv4Packet::new_unchecked(&frame[layout.l3_off..]).ident(),
            Ip::V6 => 0,
        };
        let (seq, tcp_flags) = match layout.l4 {
            L4::Tcp => {
                let tcp = TcpPacket::new_unchecked(&frame[layout.l4_off..]);
                (tcp.seq_number(), tcp.flags())
            }
            L4::Udp => (0, 0),
        };
        Ok(Plan {
            layout,
            frame_len: frame.len(),
            mss,
            count,
            ident,
            seq,
            tcp_flags,
        })
    }

    /// Where segment `i`'s payload lies in the super-frame.
    fn payload(&self, i: usize) -> Range<usize> {
        let start = self.layout.payload_off + i * self.mss;
        start..(start + self.mss).min(self.frame_len)
    }

    /// Writes segment `i`'s headers into `out` (`payload_off` bytes): the super-frame's, with the
    /// lengths, identification, sequence number, flags and checksums of a segment carrying
    /// `payload`.
    fn write_headers(&self, frame: &[u8], i: usize, out: &mut [u8], payload: &[u8]) {
        let layout = &self.layout;
        let (l3, l4) = (layout.l3_off, layout.l4_off);
        out.copy_from_slice(&frame[..layout.payload_off]);
        let l4_len = layout.payload_off - l4 + payload.len();
        let (l3_part, l4_part) = out.split_at_mut(l4);
        let l3_part = &mut l3_part[l3..];
        // Lengths, identification and the IPv4 header checksum; the pseudo-header.
        let protocol = match layout.ip {
            Ip::V4 => {
                let mut ip = Ipv4Packet::new_unchecked(&mut *l3_part);
                ip.set_total_len((l4 - l3 + l4_len) as u16);
                ip.set_ident(self.ident.wrapping_add(i as u16));
                ip.fill_checksum();
                ip.protocol()
            }
            Ip::V6 => {
                let mut ip = Ipv6Packet::new_unchecked(&mut *l3_part);
                ip.set_payload_len(l4_len as u16);
                ip.next_header()
            }
        };
        let pseudo = pseudo_header(layout.ip, l3_part, protocol, l4_len);
        let field = l4_checksum_field(layout.l4);
        match layout.l4 {
            L4::Tcp => {
                let mut tcp = TcpPacket::new_unchecked(&mut *l4_part);
                tcp.set_seq_number(self.seq.wrapping_add((i * self.mss) as u32));
                let mut segment_flags = self.tcp_flags;
                if i + 1 < self.count {
                    segment_flags &= !(flags::FIN | flags::PSH);
                }
                if i > 0 {
                    segment_flags &= !flags::CWR;
                }
                tcp.set_flags(segment_flags);
            }
            L4::Udp => {
                UdpPacket::new_unchecked(&mut *l4_part).set_len(l4_len as u16);
            }
        }
        // The L4 header is an even number of bytes, so its sum and the payload's add up.
        l4_part[field.clone()].fill(0);
        let value = !fold(sum(sum(pseudo, l4_part), payload));
        let value = if value == 0 && layout.l4 == L4::Udp {
            0xffff
        } else {
            value
        };
        l4_part[field].copy_from_slice(&value.to_be_bytes());
    }
}

/// Merges a `UDP_GRO` batch of TCP/IPv4 segments back into the super-frame they were cut from, in
/// place at the start of `buf`: what Linux's GRO does for the frames its vxlan device decapsulates,
/// so the receiving container's stack gets one 64 KiB frame rather than some 45.
///
/// `buf[..len]` holds datagrams every `stride` bytes (the last may be shorter), each a `skip`-byte
/// tunnel header (checked by the caller) and a complete Ethernet frame. They merge when they are
/// consecutive segments of one connection, as `segment` makes them: Ethernet, IPv4 and TCP
/// headers identical but for the IPv4 length, identification and checksum and the TCP sequence
/// number, checksum and flags (PSH and FIN only on the last, CWR only on the first); every payload
/// `gso_size` bytes but the last, which is not longer; each sequence number where the previous
/// payload ends; no fragments, no SYN, RST or URG. Every IPv4 header checksum and every TCP
/// checksum is verified first, so a segment damaged on the way is never merged into a super-frame
/// whose checksum the next kernel would compute afresh.
///
/// Returns the super-frame's length and its vnet header (`TCPV4`, `NEEDS_CSUM`, the pseudo-header
/// sum in the TCP checksum field, as Linux leaves a GRO'd frame for forwarding), or `None` with
/// `buf` untouched when the datagrams do not qualify (fewer than two included); the caller then
/// delivers them one by one.
pub fn coalesce_tcp(
    buf: &mut [u8],
    len: usize,
    stride: usize,
    skip: usize,
) -> Option<(usize, VnetHeader)> {
    if stride <= skip || len <= stride || len > buf.len() {
        return None;
    }
    let count = len.div_ceil(stride);
    let frame =
        |j: usize| -> Range<usize> { (j * stride + skip).min(len)..((j + 1) * stride).min(len) };
    let first = &buf[frame(0)];
    let layout = parse_layout(gso::TCPV4, first).ok()?;
    let (l3, l4, headers) = (layout.l3_off, layout.l4_off, layout.payload_off);
    let mss = first.len().checked_sub(headers).filter(|&m| m > 0)?;
    let ip0 = Ipv4Packet::new_unchecked(&first[l3..l4]);
    let (src, dst) = (ip0.src_addr(), ip0.dst_addr());
    let tcp0 = TcpPacket::new_unchecked(&first[l4..]);
    let first_flags = tcp0.flags();
    if first_flags & (flags::SYN | flags::RST | flags::URG | flags::PSH | flags::FIN) != 0
        || first_flags & flags::ACK == 0
    {
        return None;
    }
    let mut seq = tcp0.seq_number();
    let mut payload_len = 0usize;
    let mut last_flags = first_flags;
    for j in 0..count {
        let f = &buf[frame(j)];
        let payload = f.len().checked_sub(headers).filter(|&p| p > 0)?;
        if payload > mss || (j + 1 < count && payload != mss) {
            return None;
        }
        if !same_segment_headers(first, f, l3, l4, headers) {
            return None;
        }
        let ip = Ipv4Packet::new_unchecked(&f[l3..l4]);
        if usize::from(ip.total_len()) != f.len() - l3 || !ip.verify_checksum() {
            return None;
        }
        let tcp = TcpPacket::new_unchecked(&f[l4..]);
        if tcp.seq_number() != seq || !tcp.verify_checksum_v4(src, dst) {
            return None;
        }
        let tcp_flags = tcp.flags();
        let expected = if j == 0 {
            first_flags
        } else {
            first_flags & !flags::CWR
        };
        let ending = if j + 1 == count {
            flags::PSH | flags::FIN
        } else {
            0
        };
        if tcp_flags & !ending != expected {
            return None;
        }
        last_flags = tcp_flags;
        seq = seq.wrapping_add(payload as u32);
        payload_len += payload;
    }
    let super_len = headers + payload_len;
    if super_len - l3 > MAX_IP_LEN_FIELD {
        return None;
    }

    // Compact: the first frame's headers, then every payload; each moves towards the start.
    buf.copy_within(skip..skip + headers, 0);
    let mut pos = headers;
    for j in 0..count {
        let r = frame(j);
        let from = r.start + headers;
        buf.copy_within(from..r.end, pos);
        pos += r.end - from;
    }
    let out = &mut buf[..super_len];
    let mut ip = Ipv4Packet::new_unchecked(&mut out[l3..l4]);
    ip.set_total_len((super_len - l3) as u16);
    ip.fill_checksum();
    let mut tcp = TcpPacket::new_unchecked(&mut out[l4..]);
    tcp.set_flags(first_flags | (last_flags & (flags::PSH | flags::FIN)));
    let pseudo = pseudo_header_v4(
        src.octets(),
        dst.octets(),
        protocol::TCP,
        (super_len - l4) as u32,
    );
    tcp.set_checksum(fold(pseudo));
    Some((super_len, tcp_super_frame_header(&layout, mss, first_flags)))
}

/// The vnet header of a TCP super-frame laid out as `layout` whose checksum field holds the
/// pseudo-header sum, to be cut every `mss` bytes of payload: `TCPV4` or `TCPV6` (with the ECN
/// flag when the first segment carries CWR), `NEEDS_CSUM` at the TCP checksum field. What Linux's
/// GRO leaves on a merged skb, and so what [`coalesce_tcp`] and [`recover_offloads`] hand on.
fn tcp_super_frame_header(layout: &Layout, mss: usize, tcp_flags: u8) -> VnetHeader {
    let kind = match layout.ip {
        Ip::V4 => gso::TCPV4,
        Ip::V6 => gso::TCPV6,
    };
    let ecn = if tcp_flags & flags::CWR != 0 {
        gso::ECN
    } else {
        0
    };
    VnetHeader {
        flags: vnet_flags::NEEDS_CSUM,
        gso_type: kind | ecn,
        hdr_len: layout.payload_off as u16,
        gso_size: mss as u16,
        csum_start: layout.l4_off as u16,
        csum_offset: tcp::field::CHECKSUM.start as u16,
    }
}

/// Why a frame that came out of a tunnel longer than its network's MTU cannot go on. Each is a
/// reason to count the frame as dropped: nothing is forwarded above the MTU but a TCP
/// super-frame with a vnet header that says how to cut it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OversizeError {
    /// Not TCP over IPv4 or IPv6. A UDP super-frame cannot be cut again: where its datagrams
    /// ended went with the sender's GSO metadata.
    #[error("longer than the MTU and not TCP")]
    NotTcp,
    /// TCP, but its headers do not parse, its IP length is not the frame's, it is a fragment,
    /// it carries SYN or RST, or its headers alone fill the MTU.
    #[error("longer than the MTU with malformed TCP/IP headers")]
    Malformed,
    /// TCP whose checksum field holds neither the pseudo-header sum (left for the hardware)
    /// nor the correct checksum.
    #[error("longer than the MTU with a wrong TCP checksum")]
    BadChecksum,
}

/// The vnet header a frame that a tunnel carried (`frame`, decapsulated) goes on with: the
/// offload state the sending kernel left it in, which the tunnel's UDP datagram does not carry.
///
/// A Linux vxlan device with its default offloads, on an underlay that passes skbs along
/// unfinished (a veth), hands the receiving UDP socket the inner frame exactly as its stack
/// left it: the TCP or UDP checksum field holds only the folded pseudo-header sum
/// (`CHECKSUM_PARTIAL`), and a TCP super-frame arrives whole, one datagram up to 64 KiB with no
/// `UDP_GRO` control message (the kernel segments only `UDP_L4` super-frames for a socket).
///
/// * A frame whose IP packet fits `mtu` and whose TCP or UDP checksum field equals its
///   pseudo-header sum gets `NEEDS_CSUM` at that field, so the next kernel (or the egress,
///   for a port without vnet headers) completes it. A complete checksum that happens to equal
///   the pseudo-header sum is harmless: completing it gives the same value. Anything else
///   (complete checksums, other protocols, IP lengths that are not the frame's) goes on as it
///   is, with the default header.
/// * A frame whose IP packet is longer than `mtu` must be TCP over IPv4 or IPv6: it gets the
///   header [`coalesce_tcp`] gives a merged super-frame (`TCPV4`/`TCPV6`, `NEEDS_CSUM`), cut
///   every `mtu` less its IP and TCP headers (options included). Its checksum field must hold
///   the pseudo-header sum, or a correct checksum, which is then replaced by the pseudo-header
///   sum (every byte summed: such a frame is rare, since a sender that completes checksums also
///   segments). Anything else is an [`OversizeError`].
///
/// Headers are read through `crate::wire`'s views; malformed input is an error, never a panic.
pub fn recover_offloads(frame: &mut [u8], mtu: usize) -> Result<VnetHeader, OversizeError> {
    let unchanged = Ok(VnetHeader::default());
    let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
        // Shorter than an Ethernet header: nothing above any MTU.
        return unchanged;
    };
    let l3_len = frame.len() - eth.l3_offset();
    let oversize = l3_len > mtu;
    let is_ip = matches!(eth.inner_ethertype(), ethertype::IPV4 | ethertype::IPV6);
    let fail = |why: OversizeError| if oversize { Err(why) } else { unchanged };
    if !is_ip {
        return fail(OversizeError::NotTcp);
    }
    let Ok((ip, l3_off, l4_off, protocol)) = parse_ip(frame) else {
        return fail(OversizeError::Malformed);
    };
    let l4 = match protocol {
        protocol::TCP => L4::Tcp,
        protocol::UDP if !oversize => L4::Udp,
        _ => return fail(OversizeError::NotTcp),
    };
    let Ok(l4_hdr_len) = parse_l4(l4, protocol, &frame[l4_off..]) else {
        return fail(OversizeError::Malformed);
    };
    let layout = Layout {
        ip,
        l4,
        l3_off,
        l4_off,
        payload_off: l4_off + l4_hdr_len,
    };
    // The IP length must be the frame's: no trailing bytes would be summed or cut as payload.
    let ip_len = match ip {
        Ip::V4 => usize::from(Ipv4Packet::new_unchecked(&frame[l3_off..]).total_len()),
        Ip::V6 => {
            ipv6::HEADER_LEN
                + usize::from(Ipv6Packet::new_unchecked(&frame[l3_off..]).payload_len())
        }
    };
    if ip_len != l3_len {
        return fail(OversizeError::Malformed);
    }
    let l4_len = frame.len() - l4_off;
    let pseudo_sum = pseudo_header(ip, &frame[l3_off..l4_off], protocol, l4_len);
    let pseudo = fold(pseudo_sum);
    let stored = match l4 {
        L4::Tcp => TcpPacket::new_unchecked(&frame[l4_off..]).checksum(),
        L4::Udp => UdpPacket::new_unchecked(&frame[l4_off..]).checksum(),
    };
    let partial = stored == pseudo;
    if !oversize {
        if !partial {
            return unchanged;
        }
        return Ok(VnetHeader {
            flags: vnet_flags::NEEDS_CSUM,
            gso_type: gso::NONE,
            hdr_len: layout.payload_off as u16,
            gso_size: 0,
            csum_start: l4_off as u16,
            csum_offset: l4_checksum_field(l4).start as u16,
        });
    }
    let tcp_flags = TcpPacket::new_unchecked(&frame[l4_off..]).flags();
    if tcp_flags & (flags::SYN | flags::RST) != 0 {
        return Err(OversizeError::Malformed);
    }
    let mss = mtu
        .checked_sub(layout.payload_off - l3_off)
        .filter(|&m| m > 0 && m <= usize::from(u16::MAX))
        .ok_or(OversizeError::Malformed)?;
    if !partial {
        if fold(sum(pseudo_sum, &frame[l4_off..])) != 0xffff {
            return Err(OversizeError::BadChecksum);
        }
        TcpPacket::new_unchecked(&mut frame[l4_off..]).set_checksum(pseudo);
    }
    Ok(tcp_super_frame_header(&layout, mss, tcp_flags))
}

/// The pseudo-header sum for `l4_len` bytes of `protocol` behind the IP header `l3` (checked).
fn pseudo_header(ip: Ip, l3: &[u8], protocol: u8, l4_len: usize) -> u64 {
    match ip {
        Ip::V4 => {
            let ip = Ipv4Packet::new_unchecked(l3);
            pseudo_header_v4(
                ip.src_addr().octets(),
                ip.dst_addr().octets(),
                protocol,
                l4_len as u32,
            )
        }
        Ip::V6 => {
            let ip = Ipv6Packet::new_unchecked(l3);
            pseudo_header_v6(
                ip.src_addr().octets(),
                ip.dst_addr().octets(),
                protocol,
                l4_len as u32,
            )
        }
    }
}

/// Whether segment `f` repeats `first`'s headers in every field that does not change from one
/// segment to the next: all of Ethernet; IPv4 but its length, identification and checksum; TCP but
/// its sequence number, flags and checksum. Both are at least `headers` bytes.
fn same_segment_headers(first: &[u8], f: &[u8], l3: usize, l4: usize, headers: usize) -> bool {
    use crate::wire::ipv4::field as ip;
    let same = |r: Range<usize>| first[r.clone()] == f[r];
    same(0..l3)
        && same(l3..l3 + ip::LENGTH.start)
        && same(l3 + ip::FLG_OFF.start..l3 + ip::CHECKSUM.start)
        && same(l3 + ip::CHECKSUM.end..l4)
        && same(l4..l4 + tcp::field::SEQ_NUM.start)
        && same(l4 + tcp::field::ACK_NUM.start..l4 + tcp::field::FLAGS)
        && same(l4 + tcp::field::WIN_SIZE.start..l4 + tcp::field::CHECKSUM.start)
        && same(l4 + tcp::field::URGENT.start..headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::bytes::{read_u16, read_u32};
    use crate::wire::checksum::{pseudo_header_v4, pseudo_header_v6};
    use crate::wire::ethernet::{HEADER_LEN as ETH_HDR_LEN, VLAN_TAG_LEN};
    use crate::wire::ipv4;
    use crate::wire::tcp::flags::{CWR as TCP_CWR, FIN as TCP_FIN, PSH as TCP_PSH};

    // Field offsets the tests corrupt or inspect, by their `wire` positions.
    const ETH_TYPE_OFF: usize = ethernet::field::ETHERTYPE.start;
    const IPV4_TOTAL_LEN_OFF: usize = ipv4::field::LENGTH.start;
    const IPV4_IDENT_OFF: usize = ipv4::field::IDENT.start;
    const IPV4_FLAGS_FRAG_OFF: usize = ipv4::field::FLG_OFF.start;
    const IPV6_PAYLOAD_LEN_OFF: usize = ipv6::field::LENGTH.start;
    const TCP_SEQ_OFF: usize = tcp::field::SEQ_NUM.start;
    const TCP_DATA_OFFSET_OFF: usize = tcp::field::DATA_OFF;
    const TCP_FLAGS_OFF: usize = tcp::field::FLAGS;
    use crate::wire::vnet::flags;
    use etherparse::{
        EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, NetHeaders,
        PacketHeaders, SingleVlanHeader, TcpHeader, TcpOptionElement, TransportHeader, UdpHeader,
        VlanHeader, VlanId, VlanPcp,
    };
    use proptest::prelude::*;

    const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const VLAN_ID: u16 = 42;

    #[derive(Clone, Debug)]
    enum Net {
        V4(Ipv4Header),
        V6(Ipv6Header),
    }

    #[derive(Clone, Debug)]
    enum Transport {
        Tcp(TcpHeader),
        Udp(UdpHeader),
    }

    /// A test packet as etherparse header structs: `to_bytes` is the software reference.
    #[derive(Clone, Debug)]
    struct Pkt {
        vlan: bool,
        net: Net,
        transport: Transport,
        payload: Vec<u8>,
    }

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        TcpV4,
        TcpV6,
        TcpV4Vlan,
        UdpV4,
        UdpV6,
    }
    const KINDS: [Kind; 5] = [
        Kind::TcpV4,
        Kind::TcpV6,
        Kind::TcpV4Vlan,
        Kind::UdpV4,
        Kind::UdpV6,
    ];

    fn ipv4(protocol: IpNumber) -> Ipv4Header {
        let mut ip = Ipv4Header::new(0, 64, protocol, [192, 0, 2, 1], [198, 51, 100, 7]).unwrap();
        ip.identification = 0xfffe; // wraps during segmentation
        ip.dont_fragment = true;
        ip.options = [0x94, 0x04, 0x00, 0x00].into(); // Router Alert (RFC 2113): IHL 6
        ip
    }

    fn ipv6(next_header: IpNumber) -> Ipv6Header {
        let mut source = [0u8; 16];
        source[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let mut destination = source;
        source[15] = 1;
        destination[15] = 2;
        Ipv6Header {
            traffic_class: 0x28,
            flow_label: Ipv6FlowLabel::try_new(0x12345).unwrap(),
            payload_length: 0,
            next_header,
            hop_limit: 64,
            source,
            destination,
        }
    }

    fn tcp() -> TcpHeader {
        let mut t = TcpHeader::new(40000, 443, 0xffff_f000, 501); // seq wraps during segmentation
        t.acknowledgment_number = 0x0102_0304;
        t.ack = true;
        t.psh = true;
        t.set_options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(0x1122_3344, 0x5566_7788),
        ])
        .unwrap();
        t
    }

    fn udp() -> UdpHeader {
        UdpHeader {
            source_port: 5353,
            destination_port: 4433,
            length: 0,
            checksum: 0,
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    impl Pkt {
        fn new(kind: Kind, payload: Vec<u8>) -> Pkt {
            let (vlan, net, transport) = match kind {
                Kind::TcpV4 => (false, Net::V4(ipv4(IpNumber::TCP)), Transport::Tcp(tcp())),
                Kind::TcpV6 => (false, Net::V6(ipv6(IpNumber::TCP)), Transport::Tcp(tcp())),
                Kind::TcpV4Vlan => (true, Net::V4(ipv4(IpNumber::TCP)), Transport::Tcp(tcp())),
                Kind::UdpV4 => (false, Net::V4(ipv4(IpNumber::UDP)), Transport::Udp(udp())),
                Kind::UdpV6 => (false, Net::V6(ipv6(IpNumber::UDP)), Transport::Udp(udp())),
            };
            Pkt {
                vlan,
                net,
                transport,
                payload,
            }
        }

        fn tcp_mut(&mut self) -> &mut TcpHeader {
            match &mut self.transport {
                Transport::Tcp(t) => t,
                Transport::Udp(_) => panic!("not TCP"),
            }
        }

        fn l3_off(&self) -> usize {
            ETH_HDR_LEN + if self.vlan { VLAN_TAG_LEN } else { 0 }
        }

        fn l4_off(&self) -> usize {
            self.l3_off()
                + match &self.net {
                    Net::V4(ip) => ip.header_len(),
                    Net::V6(ip) => ip.header_len(),
                }
        }

        fn headers_len(&self) -> usize {
            self.l4_off()
                + match &self.transport {
                    Transport::Tcp(t) => t.header_len(),
                    Transport::Udp(u) => u.header_len(),
                }
        }

        fn csum_offset(&self) -> u16 {
            match self.transport {
                Transport::Tcp(_) => 16,
                Transport::Udp(_) => 6,
            }
        }

        fn gso_kind(&self) -> u8 {
            match (&self.net, &self.transport) {
                (Net::V4(_), Transport::Tcp(_)) => gso::TCPV4,
                (Net::V6(_), Transport::Tcp(_)) => gso::TCPV6,
                (_, Transport::Udp(_)) => gso::UDP_L4,
            }
        }

        /// The reference serialisation: every length and checksum computed by etherparse.
        fn to_bytes(&self) -> Vec<u8> {
            let mut net = self.net.clone();
            let mut transport = self.transport.clone();
            let l4_len = self.headers_len() - self.l4_off() + self.payload.len();
            match &mut net {
                Net::V4(ip) => ip.set_payload_len(l4_len).unwrap(),
                Net::V6(ip) => ip.set_payload_length(l4_len).unwrap(),
            }
            let p = &self.payload;
            match (&net, &mut transport) {
                (Net::V4(ip), Transport::Tcp(t)) => {
                    t.checksum = t.calc_checksum_ipv4(ip, p).unwrap()
                }
                (Net::V6(ip), Transport::Tcp(t)) => {
                    t.checksum = t.calc_checksum_ipv6(ip, p).unwrap()
                }
                (Net::V4(ip), Transport::Udp(u)) => {
                    u.length = l4_len as u16;
                    u.checksum = u.calc_checksum_ipv4(ip, p).unwrap();
                }
                (Net::V6(ip), Transport::Udp(u)) => {
                    u.length = l4_len as u16;
                    u.checksum = u.calc_checksum_ipv6(ip, p).unwrap();
                }
            }
            let ip_type = match net {
                Net::V4(_) => EtherType::IPV4,
                Net::V6(_) => EtherType::IPV6,
            };
            let mut out = Vec::new();
            let ether_type = if self.vlan {
                EtherType::VLAN_TAGGED_FRAME
            } else {
                ip_type
            };
            Ethernet2Header {
                source: SRC_MAC,
                destination: DST_MAC,
                ether_type,
            }
            .write(&mut out)
            .unwrap();
            if self.vlan {
                SingleVlanHeader {
                    pcp: VlanPcp::try_new(5).unwrap(),
                    drop_eligible_indicator: false,
                    vlan_id: VlanId::try_new(VLAN_ID).unwrap(),
                    ether_type: ip_type,
                }
                .write(&mut out)
                .unwrap();
            }
            match &net {
                Net::V4(ip) => ip.write(&mut out).unwrap(), // computes the header checksum
                Net::V6(ip) => ip.write(&mut out).unwrap(),
            }
            match &transport {
                Transport::Tcp(t) => t.write(&mut out).unwrap(),
                Transport::Udp(u) => u.write(&mut out).unwrap(),
            }
            out.extend_from_slice(p);
            out
        }

        /// The frame as Linux hands it over with `NEEDS_CSUM`: the L4 checksum field holds the folded,
        /// not inverted, pseudo-header sum (`~tcp_v4_check(len, saddr, daddr, 0)`).
        fn partial(&self) -> (VnetHeader, Vec<u8>) {
            let mut frame = self.to_bytes();
            let l4 = self.l4_off();
            let l4_len = (frame.len() - l4) as u32;
            let protocol = match self.transport {
                Transport::Tcp(_) => 6,
                Transport::Udp(_) => 17,
            };
            let pseudo = match &self.net {
                Net::V4(ip) => pseudo_header_v4(ip.source, ip.destination, protocol, l4_len),
                Net::V6(ip) => pseudo_header_v6(ip.source, ip.destination, protocol, l4_len),
            };
            let field = l4 + usize::from(self.csum_offset());
            frame[field..field + 2].copy_from_slice(&fold(pseudo).to_be_bytes());
            let hdr = VnetHeader {
                flags: flags::NEEDS_CSUM,
                gso_type: gso::NONE,
                hdr_len: self.headers_len() as u16,
                gso_size: 0,
                csum_start: l4 as u16,
                csum_offset: self.csum_offset(),
            };
            (hdr, frame)
        }

        /// The packet as a checksum-partial GSO super-frame.
        fn gso(&self, gso_size: u16) -> (VnetHeader, Vec<u8>) {
            let (mut hdr, frame) = self.partial();
            hdr.gso_type = self.gso_kind();
            hdr.gso_size = gso_size;
            (hdr, frame)
        }

        /// The reference segmentation, built with etherparse from the header structs the way
        /// tcp_gso_segment / __udp_gso_segment / inet_gso_segment describe it.
        fn expected_segments(&self, gso_size: usize) -> Vec<Vec<u8>> {
            let chunks: Vec<&[u8]> = if self.payload.is_empty() {
                vec![&[]]
            } else {
                self.payload.chunks(gso_size).collect()
            };
            let n = chunks.len();
            chunks
                .iter()
                .enumerate()
                .map(|(i, chunk)| {
                    let mut seg = self.clone();
                    seg.payload = chunk.to_vec();
                    if let Net::V4(ip) = &mut seg.net {
                        ip.identification = ip.identification.wrapping_add(i as u16);
                    }
                    if let Transport::Tcp(t) = &mut seg.transport {
                        t.sequence_number = t.sequence_number.wrapping_add((i * gso_size) as u32);
                        if i + 1 < n {
                            t.fin = false;
                            t.psh = false;
                        }
                        if i > 0 {
                            t.cwr = false;
                        }
                    }
                    seg.to_bytes()
                })
                .collect()
        }
    }

    /// One's complement sum of the concatenation of `parts`, written here independently of
    /// `crate::wire::checksum`: a correct checksum makes the covered data sum to 0xffff.
    fn ones_complement_sum(parts: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = parts.concat();
        let mut acc: u32 = 0;
        for pair in bytes.chunks(2) {
            let word = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            acc += word;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    /// Checks one output frame on its own: it parses, its lengths agree with its size, its IPv4 header
    /// checksum and L4 checksum verify. Returns (IPv4 ident, TCP seq, TCP flags byte, payload).
    fn verify_frame(frame: &[u8]) -> (Option<u16>, Option<u32>, Option<u8>, Vec<u8>) {
        let parsed = PacketHeaders::from_ethernet_slice(frame).expect("segment parses");
        let l3 = match parsed.vlan {
            Some(VlanHeader::Single(v)) => {
                assert_eq!(v.vlan_id.value(), VLAN_ID);
                ETH_HDR_LEN + VLAN_TAG_LEN
            }
            None => ETH_HDR_LEN,
            Some(other) => panic!("unexpected {other:?}"),
        };
        let (l4, pseudo, ident) = match parsed.net.expect("IP header") {
            NetHeaders::Ipv4(ip, _) => {
                let l4 = l3 + ip.header_len();
                assert_eq!(
                    usize::from(ip.total_len),
                    frame.len() - l3,
                    "IPv4 total length"
                );
                assert_eq!(
                    ip.calc_header_checksum(),
                    ip.header_checksum,
                    "IPv4 header checksum (etherparse)"
                );
                assert_eq!(
                    ones_complement_sum(&[&frame[l3..l4]]),
                    0xffff,
                    "IPv4 header checksum (recomputed)"
                );
                let len = ((frame.len() - l4) as u16).to_be_bytes();
                let pseudo = [
                    &ip.source[..],
                    &ip.destination[..],
                    &[0, ip.protocol.0],
                    &len,
                ]
                .concat();
                (l4, pseudo, Some(ip.identification))
            }
            NetHeaders::Ipv6(ip, _) => {
                let l4 = l3 + Ipv6Header::LEN;
                assert_eq!(
                    usize::from(ip.payload_length),
                    frame.len() - l4,
                    "IPv6 payload length"
                );
                let len = ((frame.len() - l4) as u32).to_be_bytes();
                let pseudo = [
                    &ip.source[..],
                    &ip.destination[..],
                    &len,
                    &[0, 0, 0, ip.next_header.0],
                ]
                .concat();
                (l4, pseudo, None)
            }
        };
        assert_eq!(
            ones_complement_sum(&[&pseudo, &frame[l4..]]),
            0xffff,
            "L4 checksum (recomputed)"
        );
        let payload = parsed.payload.slice().to_vec();
        match parsed.transport.expect("L4 header") {
            TransportHeader::Tcp(t) => {
                assert_eq!(l4 + t.header_len() + payload.len(), frame.len());
                (
                    ident,
                    Some(t.sequence_number),
                    Some(frame[l4 + TCP_FLAGS_OFF]),
                    payload,
                )
            }
            TransportHeader::Udp(u) => {
                assert_eq!(usize::from(u.length), frame.len() - l4, "UDP length");
                assert_ne!(u.checksum, 0, "UDP checksum must be present");
                (ident, None, None, payload)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Checks `out` against the reference segmentation of `pkt` byte for byte, and each segment on its
    /// own: checksums, sizes, contiguous sequence numbers, payload reassembly, flags and idents.
    fn check_segments(pkt: &Pkt, gso_size: usize, out: &Segments) {
        let expected = pkt.expected_segments(gso_size);
        assert_eq!(out.len(), expected.len(), "segment count");
        assert_eq!(out.iter().count(), out.len());
        let first = verify_frame(out.get(0));
        let (ident0, seq0, flags0) = (first.0, first.1, first.2);
        let mut reassembled = Vec::new();
        for (i, seg) in out.iter().enumerate() {
            assert_eq!(
                seg,
                &expected[i][..],
                "segment {i} differs from the reference"
            );
            let (ident, seq, flags, payload) = verify_frame(seg);
            assert!(
                payload.len() <= gso_size,
                "segment {i} payload {} > gso_size {gso_size}",
                payload.len()
            );
            if i + 1 < out.len() {
                assert_eq!(payload.len(), gso_size, "all but the last segment are full");
            }
            if let (Some(ident), Some(ident0)) = (ident, ident0) {
                assert_eq!(
                    ident,
                    ident0.wrapping_add(i as u16),
                    "IPv4 ident increments"
                );
            }
            if let (Some(seq), Some(seq0), Some(flags), Some(flags0)) = (seq, seq0, flags, flags0) {
                assert_eq!(
                    seq,
                    seq0.wrapping_add(reassembled.len() as u32),
                    "contiguous sequence numbers"
                );
                let last = i + 1 == out.len();
                let orig = match &pkt.transport {
                    Transport::Tcp(t) => t.clone(),
                    Transport::Udp(_) => unreachable!(),
                };
                assert_eq!(
                    flags & TCP_FIN != 0,
                    last && orig.fin,
                    "FIN only on the last segment"
                );
                assert_eq!(
                    flags & TCP_PSH != 0,
                    last && orig.psh,
                    "PSH only on the last segment"
                );
                assert_eq!(
                    flags & TCP_CWR != 0,
                    i == 0 && orig.cwr,
                    "CWR only on the first segment"
                );
                assert_eq!(
                    flags & !(TCP_FIN | TCP_PSH | TCP_CWR),
                    flags0 & !(TCP_FIN | TCP_PSH | TCP_CWR)
                );
            }
            reassembled.extend_from_slice(&payload);
        }
        assert_eq!(
            reassembled, pkt.payload,
            "concatenated payloads equal the original"
        );
    }

    fn segment_ok(pkt: &Pkt, gso_size: u16) -> Segments {
        let (hdr, frame) = pkt.gso(gso_size);
        let mut out = Segments::new();
        segment(&hdr, &frame, &mut out).unwrap();
        check_segments(pkt, usize::from(gso_size), &out);
        out
    }

    fn segment_err(hdr: &VnetHeader, frame: &[u8]) -> OffloadError {
        let mut out = Segments::new();
        let err = segment(hdr, frame, &mut out).unwrap_err();
        assert!(out.is_empty(), "out is empty after an error");
        err
    }

    /// TCP checksums 0x0000 and 0xffff are the same number in one's complement; `finish_checksum`
    /// stores 0xffff as Linux's skb_checksum_help does, etherparse stores 0x0000 for TCP.
    fn assert_same_frame(got: &[u8], reference: &[u8], csum_field: usize) {
        if got != reference {
            let mut normalised = reference.to_vec();
            if normalised[csum_field..csum_field + 2] == [0, 0] {
                normalised[csum_field..csum_field + 2].copy_from_slice(&[0xff, 0xff]);
            }
            assert_eq!(got, &normalised[..]);
        }
    }

    // ---- finish_checksum ----

    #[test]
    fn finish_checksum_matches_reference_for_every_kind() {
        for kind in KINDS {
            for len in [0, 1, 2, 3, 17, 100, 1399, 1400, 9000] {
                let pkt = Pkt::new(kind, pattern(len, len as u8));
                let (hdr, mut frame) = pkt.partial();
                let reference = pkt.to_bytes();
                assert_ne!(
                    frame, reference,
                    "{kind:?}/{len}: the partial form differs from the final one"
                );
                finish_checksum(&hdr, &mut frame).unwrap();
                assert_eq!(frame, reference, "{kind:?}/{len}");
            }
        }
    }

    #[test]
    fn finish_checksum_stores_zero_as_ffff_like_linux() {
        for kind in KINDS {
            // Make the final checksum come out as 0: with the last payload word zero the checksum is c;
            // setting that word to c makes the data sum 0xffff.
            let mut pkt = Pkt::new(kind, pattern(64, 9));
            pkt.payload[62..].copy_from_slice(&[0, 0]);
            let (hdr, frame) = pkt.partial();
            let field = usize::from(hdr.csum_start + hdr.csum_offset);
            let c = u16::from_be_bytes([pkt.to_bytes()[field], pkt.to_bytes()[field + 1]]);
            pkt.payload[62..].copy_from_slice(&c.to_be_bytes());
            let (hdr, mut frame2) = pkt.partial();
            assert_ne!(frame, frame2);
            finish_checksum(&hdr, &mut frame2).unwrap();
            assert_eq!(frame2[field..field + 2], [0xff, 0xff], "{kind:?}");
            let reference = pkt.to_bytes();
            let reference_field = &reference[field..field + 2];
            match pkt.transport {
                Transport::Tcp(_) => {
                    assert_eq!(reference_field, [0, 0], "{kind:?}: the zero case was built")
                }
                Transport::Udp(_) => assert_eq!(
                    reference_field,
                    [0xff, 0xff],
                    "{kind:?}: the zero case was built"
                ),
            }
            // etherparse maps 0 to 0xffff for UDP only; both forms verify.
            assert_same_frame(&frame2, &pkt.to_bytes(), field);
            verify_frame(&frame2);
            // GSO segmentation of TCP keeps 0x0000 as Linux's gso_make_checksum does; UDP maps it.
            let (mut ghdr, gframe) = pkt.gso(1000);
            ghdr.flags = 0;
            let mut out = Segments::new();
            segment(&ghdr, &gframe, &mut out).unwrap();
            assert_eq!(out.get(0), &pkt.to_bytes()[..], "{kind:?}");
        }
    }

    #[test]
    fn finish_checksum_without_needs_csum_does_nothing() {
        let pkt = Pkt::new(Kind::TcpV4, pattern(100, 0));
        let (mut hdr, mut frame) = pkt.partial();
        let before = frame.clone();
        hdr.flags = 0;
        hdr.csum_start = u16::MAX; // not looked at
        finish_checksum(&hdr, &mut frame).unwrap();
        assert_eq!(frame, before);
        hdr.flags = flags::DATA_VALID;
        finish_checksum(&hdr, &mut frame).unwrap();
        assert_eq!(frame, before);
    }

    #[test]
    fn finish_checksum_rejects_offsets_outside_the_frame() {
        let pkt = Pkt::new(Kind::UdpV4, pattern(10, 0));
        let (hdr, frame) = pkt.partial();
        let len = frame.len() as u16;
        for (start, offset) in [
            (len, 0),
            (len + 1, 0),
            (len - 1, 0),
            (len - 2, 1),
            (0, len - 1),
            (0, len),
            (u16::MAX, u16::MAX),
            (10, u16::MAX),
        ] {
            let mut f = frame.clone();
            let h = VnetHeader {
                csum_start: start,
                csum_offset: offset,
                ..hdr
            };
            assert_eq!(
                finish_checksum(&h, &mut f),
                Err(OffloadError::BadCsumOffsets),
                "{start}+{offset}"
            );
            assert_eq!(f, frame, "frame untouched on error");
        }
        // The last two bytes are still a valid place for a checksum field.
        for (start, offset) in [(len - 2, 0), (0, len - 2)] {
            let mut f = frame.clone();
            finish_checksum(
                &VnetHeader {
                    csum_start: start,
                    csum_offset: offset,
                    ..hdr
                },
                &mut f,
            )
            .unwrap();
        }
        // And an empty frame has no room at all.
        assert_eq!(
            finish_checksum(
                &VnetHeader {
                    csum_start: 0,
                    csum_offset: 0,
                    ..hdr
                },
                &mut []
            ),
            Err(OffloadError::BadCsumOffsets)
        );
    }

    // ---- segment ----

    #[test]
    fn segments_tcp_v4_with_ip_and_tcp_options() {
        let out = segment_ok(&Pkt::new(Kind::TcpV4, pattern(4000, 1)), 1448);
        assert_eq!(out.len(), 3);
        assert_eq!(
            out.get(2).len(),
            Pkt::new(Kind::TcpV4, vec![]).headers_len() + 4000 - 2 * 1448
        );
    }

    #[test]
    fn segments_tcp_v6() {
        assert_eq!(
            segment_ok(&Pkt::new(Kind::TcpV6, pattern(5000, 2)), 1428).len(),
            4
        );
    }

    #[test]
    fn segments_vlan_tagged_tcp_v4() {
        assert_eq!(
            segment_ok(&Pkt::new(Kind::TcpV4Vlan, pattern(3001, 3)), 1000).len(),
            4
        );
    }

    #[test]
    fn segments_udp_v4_and_v6() {
        assert_eq!(
            segment_ok(&Pkt::new(Kind::UdpV4, pattern(3500, 4)), 1200).len(),
            3
        );
        assert_eq!(
            segment_ok(&Pkt::new(Kind::UdpV6, pattern(7, 5)), 3).len(),
            3
        );
    }

    #[test]
    fn payload_that_is_an_exact_multiple_has_no_empty_tail() {
        for kind in KINDS {
            assert_eq!(
                segment_ok(&Pkt::new(kind, pattern(2896, 6)), 1448).len(),
                2,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn gso_frame_that_fits_one_segment_goes_out_as_one_correct_frame() {
        for kind in KINDS {
            for len in [0, 1, 1447, 1448] {
                let pkt = Pkt::new(kind, pattern(len, 7));
                let out = segment_ok(&pkt, 1448);
                assert_eq!(out.len(), 1);
                assert_eq!(
                    out.get(0),
                    &pkt.to_bytes()[..],
                    "{kind:?}/{len}: unchanged but for the checksum"
                );
            }
        }
    }

    #[test]
    fn tcp_flags_fin_psh_last_cwr_first_with_or_without_ecn_gso_flag() {
        for kind in [Kind::TcpV4, Kind::TcpV6, Kind::TcpV4Vlan] {
            let mut pkt = Pkt::new(kind, pattern(5000, 8));
            let t = pkt.tcp_mut();
            (t.fin, t.psh, t.cwr, t.ece, t.urg, t.urgent_pointer) =
                (true, true, true, true, true, 3);
            for ecn in [0, gso::ECN] {
                let (mut hdr, frame) = pkt.gso(1400);
                hdr.gso_type |= ecn;
                let mut out = Segments::new();
                segment(&hdr, &frame, &mut out).unwrap();
                check_segments(&pkt, 1400, &out);
                let flags: Vec<u8> = out
                    .iter()
                    .map(|s| s[pkt.l4_off() + TCP_FLAGS_OFF])
                    .collect();
                let base = 0x10 | 0x40 | 0x20; // ACK, ECE, URG copied everywhere
                assert_eq!(
                    flags,
                    [base | TCP_CWR, base, base, base | TCP_FIN | TCP_PSH]
                );
            }
        }
    }

    #[test]
    fn ident_and_sequence_numbers_wrap() {
        let mut pkt = Pkt::new(Kind::TcpV4, pattern(4000, 9));
        pkt.tcp_mut().sequence_number = u32::MAX - 1000;
        let out = segment_ok(&pkt, 1000);
        let idents: Vec<u16> = out
            .iter()
            .map(|s| read_u16(s, ETH_HDR_LEN + IPV4_IDENT_OFF))
            .collect();
        assert_eq!(idents, [0xfffe, 0xffff, 0, 1]);
        let l4 = pkt.l4_off();
        let seqs: Vec<u32> = out.iter().map(|s| read_u32(s, l4 + TCP_SEQ_OFF)).collect();
        assert_eq!(seqs, [u32::MAX - 1000, u32::MAX - 1000 + 1000, 999, 1999]);
    }

    #[test]
    fn hdr_len_is_ignored() {
        for kind in KINDS {
            let pkt = Pkt::new(kind, pattern(3000, 10));
            let (hdr, frame) = pkt.gso(1000);
            for hdr_len in [
                0,
                1,
                14,
                hdr.hdr_len - 1,
                hdr.hdr_len + 1,
                frame.len() as u16,
                u16::MAX,
            ] {
                let mut out = Segments::new();
                segment(&VnetHeader { hdr_len, ..hdr }, &frame, &mut out).unwrap();
                check_segments(&pkt, 1000, &out);
            }
        }
    }

    #[test]
    fn super_frame_checksum_field_is_ignored() {
        for kind in KINDS {
            let pkt = Pkt::new(kind, pattern(3000, 11));
            let (mut hdr, mut frame) = pkt.gso(1000);
            let field = usize::from(hdr.csum_start + hdr.csum_offset);
            frame[field..field + 2].copy_from_slice(&[0xde, 0xad]);
            // Also garbage in the super-frame's length fields: the frame's length is what counts.
            frame[pkt.l3_off()
                + if matches!(pkt.net, Net::V4(_)) {
                    IPV4_TOTAL_LEN_OFF
                } else {
                    IPV6_PAYLOAD_LEN_OFF
                }] ^= 0x55;
            let mut out = Segments::new();
            segment(&hdr, &frame, &mut out).unwrap();
            check_segments(&pkt, 1000, &out);
            // And without NEEDS_CSUM (Linux probes the headers then) the result is the same.
            hdr.flags = 0;
            hdr.csum_start = 0;
            hdr.csum_offset = 0;
            segment(&hdr, &frame, &mut out).unwrap();
            check_segments(&pkt, 1000, &out);
        }
    }

    #[test]
    fn largest_super_frames() {
        // IPv4: total length 65535 = 24 (IP with options) + 32 (TCP with timestamps) + payload.
        segment_ok(&Pkt::new(Kind::TcpV4, pattern(65535 - 24 - 32, 12)), 1448);
        segment_ok(
            &Pkt::new(Kind::TcpV4Vlan, pattern(65535 - 24 - 32, 13)),
            536,
        ); // 123 segments
        segment_ok(&Pkt::new(Kind::TcpV6, pattern(65535 - 32, 14)), 1220);
        segment_ok(&Pkt::new(Kind::UdpV6, pattern(65535 - 8, 15)), 512); // exactly 128 segments
        segment_ok(
            &Pkt::new(Kind::UdpV4, pattern(65535 - 24 - 8, 16)),
            u16::MAX,
        ); // one segment
    }

    #[test]
    fn too_many_segments() {
        let pkt = Pkt::new(Kind::TcpV4, pattern(10_000, 17));
        let (hdr, frame) = pkt.gso(10);
        assert_eq!(segment_err(&hdr, &frame), OffloadError::TooManySegments);
        let mut big = Segments::with_max_segments(1000);
        assert_eq!(big.max_segments(), 1000);
        segment(&hdr, &frame, &mut big).unwrap();
        check_segments(&pkt, 10, &big);
        // 129 segments of a UDP payload: one more than the default area holds.
        let pkt = Pkt::new(Kind::UdpV6, pattern(129 * 100, 18));
        let (hdr, frame) = pkt.gso(100);
        assert_eq!(segment_err(&hdr, &frame), OffloadError::TooManySegments);
        let (hdr, frame) = pkt.gso(101);
        let mut out = Segments::new();
        segment(&hdr, &frame, &mut out).unwrap();
        assert_eq!(out.len(), 128);
    }

    #[test]
    fn segment_lengths_must_fit_the_16_bit_fields() {
        // A frame longer than any IP packet (e.g. from BIG TCP) cannot be cut into 64 KiB pieces.
        let pkt = Pkt::new(Kind::UdpV6, pattern(65535 - 8, 19));
        let (hdr, mut frame) = pkt.gso(u16::MAX);
        frame.extend_from_slice(&[0u8; 100]);
        assert_eq!(segment_err(&hdr, &frame), OffloadError::MalformedGso);
        // Cut smaller, its pieces are fine.
        segment(
            &VnetHeader {
                gso_size: 1000,
                ..hdr
            },
            &frame,
            &mut Segments::new(),
        )
        .unwrap();
    }

    #[test]
    fn gso_size_zero_is_malformed() {
        for kind in KINDS {
            for len in [0, 10, 3000] {
                let (hdr, frame) = Pkt::new(kind, pattern(len, 20)).gso(0);
                assert_eq!(
                    segment_err(&hdr, &frame),
                    OffloadError::MalformedGso,
                    "{kind:?}/{len}"
                );
            }
        }
    }

    #[test]
    fn ufo_and_unknown_gso_types_are_unsupported() {
        for kind in KINDS {
            let (hdr, frame) = Pkt::new(kind, pattern(3000, 21)).gso(1000);
            for gso_type in [gso::UDP, gso::UDP | gso::ECN, 2, 6, 7, 0x10, 0x7f, 0xff] {
                let h = VnetHeader { gso_type, ..hdr };
                assert_eq!(
                    segment_err(&h, &frame),
                    OffloadError::UnsupportedGso,
                    "{kind:?}/{gso_type:#x}"
                );
            }
        }
    }

    #[test]
    fn gso_type_must_match_the_frame() {
        let cases = [
            (Kind::TcpV4, gso::TCPV6),
            (Kind::TcpV4, gso::UDP_L4),
            (Kind::TcpV6, gso::TCPV4),
            (Kind::TcpV4Vlan, gso::TCPV6),
            (Kind::UdpV4, gso::TCPV4),
            (Kind::UdpV6, gso::TCPV6),
        ];
        for (kind, gso_type) in cases {
            let (mut hdr, frame) = Pkt::new(kind, pattern(3000, 22)).gso(1000);
            hdr.gso_type = gso_type;
            hdr.flags = 0; // not a checksum-offset problem: the protocol is wrong
            assert_eq!(
                segment_err(&hdr, &frame),
                OffloadError::MalformedGso,
                "{kind:?}/{gso_type}"
            );
        }
    }

    #[test]
    fn truncated_headers_are_malformed() {
        for kind in KINDS {
            let pkt = Pkt::new(kind, pattern(3000, 23));
            let (hdr, frame) = pkt.gso(1000);
            for cut in 0..pkt.headers_len() {
                assert_eq!(
                    segment_err(&hdr, &frame[..cut]),
                    OffloadError::MalformedGso,
                    "{kind:?} cut at {cut}"
                );
            }
            // Headers alone are a valid (empty) super-frame.
            let mut out = Segments::new();
            segment(&hdr, &frame[..pkt.headers_len()], &mut out).unwrap();
            assert_eq!(out.len(), 1);
            verify_frame(out.get(0));
        }
    }

    #[test]
    fn csum_offsets_must_point_at_the_l4_checksum() {
        for kind in KINDS {
            let (hdr, frame) = Pkt::new(kind, pattern(3000, 24)).gso(1000);
            for (start, offset) in [
                (hdr.csum_start - 1, hdr.csum_offset),
                (hdr.csum_start + 1, hdr.csum_offset),
                (hdr.csum_start, hdr.csum_offset + 2),
                (hdr.csum_start, 0),
                (u16::MAX, u16::MAX),
            ] {
                let h = VnetHeader {
                    csum_start: start,
                    csum_offset: offset,
                    ..hdr
                };
                assert_eq!(
                    segment_err(&h, &frame),
                    OffloadError::BadCsumOffsets,
                    "{kind:?} {start}+{offset}"
                );
            }
        }
    }

    #[test]
    fn headers_we_do_not_segment_are_malformed() {
        let pkt = Pkt::new(Kind::TcpV4, pattern(3000, 25));
        let (hdr, frame) = pkt.gso(1000);
        let l3 = pkt.l3_off();
        let l4 = pkt.l4_off();
        let flags_frag = l3 + IPV4_FLAGS_FRAG_OFF;
        let df = frame[flags_frag];
        let mutations: [(&str, usize, &[u8]); 7] = [
            ("ARP ethertype", ETH_TYPE_OFF, &[0x08, 0x06]),
            ("QinQ outer tag", ETH_TYPE_OFF, &[0x88, 0xa8]),
            ("IP version 5", l3, &[0x56]),
            ("IHL 4", l3, &[0x44]),
            ("MF set", flags_frag, &[df | 0x20]),
            ("fragment offset", flags_frag + 1, &[1]),
            ("TCP data offset 4", l4 + TCP_DATA_OFFSET_OFF, &[0x40]),
        ];
        for (what, at, bytes) in mutations {
            let mut f = frame.clone();
            f[at..at + bytes.len()].copy_from_slice(bytes);
            let h = VnetHeader { flags: 0, ..hdr };
            assert_eq!(segment_err(&h, &f), OffloadError::MalformedGso, "{what}");
        }
        // A frame whose IHL covers the whole frame has no TCP header left.
        let mut f = frame[..l3 + 60].to_vec();
        f[l3] = 0x4f;
        assert_eq!(
            segment_err(&VnetHeader { flags: 0, ..hdr }, &f),
            OffloadError::MalformedGso
        );

        // IPv6 with an extension header (hop-by-hop) in front of TCP.
        let mut pkt6 = Pkt::new(Kind::TcpV6, pattern(3000, 26));
        if let Net::V6(ip) = &mut pkt6.net {
            ip.next_header = IpNumber::IPV6_HEADER_HOP_BY_HOP;
        }
        let (hdr, frame) = pkt6.gso(1000);
        assert_eq!(
            segment_err(&VnetHeader { flags: 0, ..hdr }, &frame),
            OffloadError::MalformedGso
        );
    }

    #[test]
    fn error_leaves_out_empty_and_area_is_reused_without_reallocating() {
        let mut out = Segments::new();
        let ptr = out.buf.as_ptr();
        let bounds_capacity = out.bounds.capacity();
        for kind in KINDS {
            let pkt = Pkt::new(kind, pattern(60_000, 27));
            let (hdr, frame) = pkt.gso(536);
            segment(&hdr, &frame, &mut out).unwrap();
            check_segments(&pkt, 536, &out);
            assert!(!out.is_empty());
            assert_eq!(
                segment(&VnetHeader { gso_size: 0, ..hdr }, &frame, &mut out),
                Err(OffloadError::MalformedGso)
            );
            assert!(out.is_empty());
            assert_eq!(out.len(), 0);
        }
        assert_eq!(out.buf.as_ptr(), ptr);
        assert_eq!(out.bounds.capacity(), bounds_capacity);
        out.clear();
        assert!(out.is_empty());
        assert!(format!("{out:?}").contains("max_segments: 128"));
    }

    #[test]
    fn segment_without_gso_copies_and_finishes() {
        for kind in KINDS {
            let pkt = Pkt::new(kind, pattern(700, 28));
            let (hdr, frame) = pkt.partial();
            let mut out = Segments::new();
            segment(&hdr, &frame, &mut out).unwrap();
            assert_eq!(out.len(), 1);
            assert_same_frame(
                out.get(0),
                &pkt.to_bytes(),
                usize::from(hdr.csum_start + hdr.csum_offset),
            );
            let bad = VnetHeader {
                csum_offset: 5000,
                ..hdr
            };
            assert_eq!(segment_err(&bad, &frame), OffloadError::BadCsumOffsets);
        }
    }

    // ---- properties ----

    fn kind_strategy() -> impl Strategy<Value = Kind> {
        prop::sample::select(KINDS.to_vec())
    }

    fn vnet_strategy() -> impl Strategy<Value = VnetHeader> {
        (
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(
                |(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)| VnetHeader {
                    flags,
                    gso_type,
                    hdr_len,
                    gso_size,
                    csum_start,
                    csum_offset,
                },
            )
    }

    #[test]
    fn segment_headers_refuses_what_segment_refuses_and_frames_without_gso() {
        let mut headers = SegmentHeaders::new();
        let pkt = Pkt::new(Kind::TcpV4, pattern(3000, 5));
        let (hdr, frame) = pkt.gso(1000);
        segment_headers(&hdr, &frame, &mut headers).unwrap();
        assert_eq!(headers.len(), 3);
        let (partial, frame) = pkt.partial();
        assert_eq!(
            segment_headers(&partial, &frame, &mut headers),
            Err(OffloadError::UnsupportedGso)
        );
        assert_eq!(headers.len(), 0);
        let (hdr, frame) = pkt.gso(10);
        assert_eq!(
            segment_headers(&hdr, &frame, &mut headers),
            Err(OffloadError::TooManySegments)
        );
        let (hdr, frame) = pkt.gso(0);
        assert_eq!(
            segment_headers(&hdr, &frame, &mut headers),
            Err(OffloadError::MalformedGso)
        );
        assert_eq!(
            segment_headers(&hdr, &frame[..20], &mut headers),
            Err(OffloadError::MalformedGso)
        );
    }

    /// `segments` as a `UDP_GRO` batch would hold them: each behind a `skip`-byte tunnel header.
    fn gro_batch(segments: &Segments, skip: usize) -> (Vec<u8>, usize) {
        let stride = skip + segments.get(0).len();
        let mut buf = Vec::new();
        for s in segments.iter() {
            buf.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 42, 0][..skip]);
            buf.extend_from_slice(s);
        }
        (buf, stride)
    }

    #[test]
    fn coalescing_undoes_segmenting() {
        for kind in [Kind::TcpV4, Kind::TcpV4Vlan] {
            for (payload_len, mss) in [(5000, 1000), (5001, 1000), (65000, 1398), (2, 1)] {
                for cwr in [false, true] {
                    let mut pkt = Pkt::new(kind, pattern(payload_len, 9));
                    pkt.tcp_mut().cwr = cwr;
                    let (hdr, frame) = pkt.gso(mss as u16);
                    let mut segs = Segments::with_max_segments(payload_len.div_ceil(mss));
                    segment(&hdr, &frame, &mut segs).unwrap();
                    let (mut buf, stride) = gro_batch(&segs, 8);
                    let len = buf.len();
                    let (out_len, out_hdr) = coalesce_tcp(&mut buf, len, stride, 8).unwrap();
                    // The original, as Linux hands a checksum-partial super-frame over.
                    assert_eq!(&buf[..out_len], &frame[..], "{kind:?} {payload_len}/{mss}");
                    let ecn = if cwr { gso::ECN } else { 0 };
                    assert_eq!(
                        out_hdr,
                        VnetHeader {
                            gso_type: gso::TCPV4 | ecn,
                            hdr_len: pkt.headers_len() as u16,
                            ..hdr
                        }
                    );
                    // And what leaves the next kernel is what the sender meant.
                    let mut again = Segments::with_max_segments(segs.len());
                    segment(&out_hdr, &buf[..out_len], &mut again).unwrap();
                    assert!(again.iter().eq(segs.iter()));
                }
            }
        }
    }

    /// Each case damages one segment of a good batch; the batch must then stay as it was.
    #[test]
    fn coalescing_refuses_what_linux_gro_would_not_merge() {
        let pkt = Pkt::new(Kind::TcpV4, pattern(4000, 3));
        let (hdr, frame) = pkt.gso(1000);
        let mut segs = Segments::new();
        segment(&hdr, &frame, &mut segs).unwrap();
        let (good, stride) = gro_batch(&segs, 8);
        let l3 = 8 + ETH_HDR_LEN;
        let l4 = 8 + pkt.l4_off();
        let second = stride;
        type Damage = fn(&mut Vec<u8>, usize, usize, usize);
        let cases: [(&str, Damage); 9] = [
            ("a payload byte (TCP checksum)", |b, _, _, s| {
                b[s + s - 1] ^= 1
            }),
            ("the IPv4 header checksum", |b, l3, _, s| {
                b[s + l3 + IPV4_IDENT_OFF] ^= 1
            }),
            ("a sequence gap", |b, _, l4, s| {
                b[s + l4 + TCP_SEQ_OFF + 3] ^= 4
            }),
            ("another port", |b, _, l4, s| b[s + l4 + 1] ^= 1),
            ("another MAC", |b, _, _, s| b[s + 8 + 5] ^= 1),
            ("PSH before the last", |b, _, l4, s| {
                b[s + l4 + TCP_FLAGS_OFF] |= TCP_PSH
            }),
            ("a fragment", |b, l3, _, s| {
                b[s + l3 + IPV4_FLAGS_FRAG_OFF] |= 0x20
            }),
            ("a short total length", |b, l3, _, s| {
                b[s + l3 + IPV4_TOTAL_LEN_OFF + 1] -= 1
            }),
            ("a truncated middle segment", |b, _, _, s| {
                b.drain(s + s - 10..s + s);
            }),
        ];
        for (what, damage) in cases {
            let mut buf = good.clone();
            damage(&mut buf, l3, l4, second);
            let before = buf.clone();
            let len = buf.len();
            assert_eq!(coalesce_tcp(&mut buf, len, stride, 8), None, "{what}");
            assert_eq!(buf, before, "{what}: the batch was changed");
        }
        // Not TCP/IPv4 at all, a single datagram, a last datagram shorter than its header.
        for kind in [Kind::TcpV6, Kind::UdpV4] {
            let pkt = Pkt::new(kind, pattern(3000, 1));
            let (hdr, frame) = pkt.gso(1000);
            segment(&hdr, &frame, &mut segs).unwrap();
            let (mut buf, stride) = gro_batch(&segs, 8);
            let len = buf.len();
            assert_eq!(coalesce_tcp(&mut buf, len, stride, 8), None, "{kind:?}");
        }
        let mut buf = good.clone();
        assert_eq!(coalesce_tcp(&mut buf, stride, stride, 8), None);
        assert_eq!(coalesce_tcp(&mut buf, 3 * stride + 4, stride, 8), None);
        assert_eq!(coalesce_tcp(&mut buf, good.len() + 1, stride, 8), None);
        assert_eq!(coalesce_tcp(&mut buf, good.len(), 8, 8), None);
    }

    /// The overlay MTU `recover_offloads` is given in these tests.
    const MTU: usize = 1450;

    #[test]
    fn recovering_marks_checksum_partial_frames_within_the_mtu() {
        for kind in KINDS {
            let pkt = Pkt::new(kind, pattern(1000, 4));
            let (hdr, mut frame) = pkt.partial();
            let before = frame.clone();
            assert_eq!(recover_offloads(&mut frame, MTU), Ok(hdr), "{kind:?}");
            assert_eq!(frame, before, "{kind:?}: the frame was changed");
            finish_checksum(&hdr, &mut frame).unwrap();
            assert_eq!(frame, pkt.to_bytes(), "{kind:?}: finished as the reference");
            // A complete checksum stays as it is, with nothing to do.
            let mut complete = pkt.to_bytes();
            assert_eq!(
                recover_offloads(&mut complete, MTU),
                Ok(VnetHeader::default())
            );
            assert_eq!(complete, pkt.to_bytes());
        }
        // Exactly the MTU is not above it.
        let pkt = Pkt::new(Kind::TcpV4, vec![7; 0]);
        let fill = MTU - (pkt.headers_len() - pkt.l3_off());
        let pkt = Pkt::new(Kind::TcpV4, pattern(fill, 1));
        let (hdr, mut frame) = pkt.partial();
        assert_eq!(recover_offloads(&mut frame, MTU), Ok(hdr));
        // A UDP datagram without a checksum (zero), ARP, trailing bytes after the IP packet, a
        // fragment: passed on as they are, as before.
        let mut udp = Pkt::new(Kind::UdpV4, pattern(100, 2)).to_bytes();
        let field = Pkt::new(Kind::UdpV4, vec![]).l4_off() + 6;
        udp[field..field + 2].fill(0);
        let arp = crate::wire::arp::request_frame(
            crate::MacAddr(SRC_MAC),
            std::net::Ipv4Addr::new(10, 0, 0, 1),
            std::net::Ipv4Addr::new(10, 0, 0, 2),
        );
        let (_, mut padded) = Pkt::new(Kind::TcpV4, pattern(10, 3)).partial();
        padded.extend_from_slice(&[0; 6]);
        let (_, mut fragment) = Pkt::new(Kind::TcpV4, pattern(100, 3)).partial();
        fragment[ETH_HDR_LEN + IPV4_FLAGS_FRAG_OFF] |= 0x20;
        for (what, mut frame) in [
            ("UDP without a checksum", udp),
            ("ARP", arp.to_vec()),
            ("padded", padded),
            ("a fragment", fragment),
            ("a runt", vec![1, 2, 3]),
        ] {
            let before = frame.clone();
            assert_eq!(
                recover_offloads(&mut frame, MTU),
                Ok(VnetHeader::default()),
                "{what}"
            );
            assert_eq!(frame, before, "{what}");
        }
    }

    /// A TCP super-frame a Linux vxlan device handed over whole (checksum-partial, as its stack
    /// left it) becomes a GSO frame cut at the MTU; segmenting it gives what the sender's own
    /// GSO would have sent at that size, every segment within the MTU.
    #[test]
    fn recovering_turns_tcp_above_the_mtu_into_a_super_frame() {
        for kind in [Kind::TcpV4, Kind::TcpV6, Kind::TcpV4Vlan] {
            for cwr in [false, true] {
                let mut pkt = Pkt::new(kind, pattern(60000, 5));
                pkt.tcp_mut().cwr = cwr;
                let (_, mut frame) = pkt.partial();
                let before = frame.clone();
                let hdr = recover_offloads(&mut frame, MTU).unwrap();
                assert_eq!(frame, before);
                let mss = MTU - (pkt.headers_len() - pkt.l3_off());
                let ecn = if cwr { gso::ECN } else { 0 };
                assert_eq!(
                    hdr,
                    VnetHeader {
                        flags: flags::NEEDS_CSUM,
                        gso_type: pkt.gso_kind() | ecn,
                        hdr_len: pkt.headers_len() as u16,
                        gso_size: mss as u16,
                        csum_start: pkt.l4_off() as u16,
                        csum_offset: 16,
                    },
                    "{kind:?}"
                );
                let mut out = Segments::with_max_segments(60000usize.div_ceil(mss));
                segment(&hdr, &frame, &mut out).unwrap();
                check_segments(&pkt, mss, &out);
                for seg in out.iter() {
                    assert!(seg.len() - pkt.l3_off() <= MTU, "{kind:?}: {}", seg.len());
                }
                // With a complete checksum (a sender that finished it): verified, then left
                // as the pseudo-header sum, the same super-frame.
                let mut complete = pkt.to_bytes();
                assert_eq!(recover_offloads(&mut complete, MTU), Ok(hdr));
                assert_eq!(complete, frame, "{kind:?}");
            }
        }
        // One byte above the MTU: two segments.
        let pkt = Pkt::new(Kind::TcpV4, vec![]);
        let mss = MTU - (pkt.headers_len() - pkt.l3_off());
        let pkt = Pkt::new(Kind::TcpV4, pattern(mss + 1, 6));
        let (_, mut frame) = pkt.partial();
        let hdr = recover_offloads(&mut frame, MTU).unwrap();
        let mut out = Segments::new();
        segment(&hdr, &frame, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        check_segments(&pkt, mss, &out);
    }

    /// Above the MTU, what cannot become a super-frame is refused by reason, whole or cut short.
    #[test]
    fn recovering_refuses_what_cannot_be_cut_at_the_mtu() {
        let tcp = Pkt::new(Kind::TcpV4, pattern(5000, 8));
        let (_, good) = tcp.partial();
        let l3 = tcp.l3_off();
        let l4 = tcp.l4_off();
        let check = |what: &str, mut frame: Vec<u8>, mtu: usize, want: OversizeError| {
            assert_eq!(recover_offloads(&mut frame, mtu), Err(want), "{what}");
        };
        for kind in [Kind::UdpV4, Kind::UdpV6] {
            let (_, frame) = Pkt::new(kind, pattern(5000, 8)).partial();
            check("a UDP super-frame", frame, MTU, OversizeError::NotTcp);
        }
        let mut not_ip = good.clone();
        not_ip[ETH_TYPE_OFF..ETH_TYPE_OFF + 2].copy_from_slice(&[0x88, 0xb5]);
        check("not IP", not_ip, MTU, OversizeError::NotTcp);
        let mut icmp = good.clone();
        icmp[l3 + ipv4::field::PROTOCOL] = 1;
        check("ICMP", icmp, MTU, OversizeError::NotTcp);
        // A complete checksum over damaged data (a partial sum covers no data: the damage
        // there is for the next kernel to find).
        let mut damaged = tcp.to_bytes();
        *damaged.last_mut().unwrap() ^= 1;
        check("a wrong checksum", damaged, MTU, OversizeError::BadChecksum);
        let tcp_flags_set = |bits: u8| {
            let mut f = good.clone();
            f[l4 + TCP_FLAGS_OFF] |= bits;
            f
        };
        check(
            "SYN",
            tcp_flags_set(tcp::flags::SYN),
            MTU,
            OversizeError::Malformed,
        );
        check(
            "RST",
            tcp_flags_set(tcp::flags::RST),
            MTU,
            OversizeError::Malformed,
        );
        let mut short_len = good.clone();
        short_len[l3 + IPV4_TOTAL_LEN_OFF + 1] -= 1;
        check(
            "an IP length short of the frame",
            short_len,
            MTU,
            OversizeError::Malformed,
        );
        let mut fragment = good.clone();
        fragment[l3 + IPV4_FLAGS_FRAG_OFF] |= 0x20;
        check("a fragment", fragment, MTU, OversizeError::Malformed);
        let mut bad_offset = good.clone();
        bad_offset[l4 + TCP_DATA_OFFSET_OFF] = 0x40; // 16 bytes: shorter than a TCP header
        check(
            "a TCP data offset of 4",
            bad_offset,
            MTU,
            OversizeError::Malformed,
        );
        let headers = tcp.headers_len() - l3;
        check(
            "headers that fill the MTU",
            good.clone(),
            headers,
            OversizeError::Malformed,
        );
        let mut v6 = Pkt::new(Kind::TcpV6, pattern(5000, 8)).partial().1;
        v6[ETH_HDR_LEN + IPV6_PAYLOAD_LEN_OFF + 1] ^= 1;
        check(
            "an IPv6 length not the frame's",
            v6,
            MTU,
            OversizeError::Malformed,
        );
        // Cut anywhere above the MTU: refused, never a panic; within it, passed on as it is.
        for cut in (0..good.len()).step_by(7) {
            let mut frame = good[..cut].to_vec();
            let got = recover_offloads(&mut frame, MTU);
            if cut - l3.min(cut) > MTU {
                assert_eq!(got, Err(OversizeError::Malformed), "cut at {cut}");
            } else {
                assert_eq!(got, Ok(VnetHeader::default()), "cut at {cut}");
            }
        }
    }

    proptest! {
        #[test]
        fn coalescing_never_panics(
            mut buf in prop::collection::vec(any::<u8>(), 0..4000),
            len in 0usize..4100,
            stride in 0usize..1500,
            skip in 0usize..16,
        ) {
            let _ = coalesce_tcp(&mut buf, len, stride, skip);
        }

        /// Whatever a tunnel delivers, `recover_offloads` never panics, refuses only what is
        /// above the MTU, and a header it gives can be acted on: a checksum field inside the
        /// frame, and a super-frame that `segment` cuts into frames within the MTU.
        #[test]
        fn recovering_arbitrary_frames_is_safe(
            kind in kind_strategy(),
            len in 0usize..6000,
            mtu in 0usize..3000,
            mutations in prop::collection::vec((0usize..120, any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let pkt = Pkt::new(kind, pattern(len, 11));
            let (_, mut frame) = pkt.partial();
            for (pos, value) in mutations {
                if pos < frame.len() {
                    frame[pos] = value;
                }
            }
            frame.truncate(cut.index(frame.len() + 1));
            let l3_len = frame.len().saturating_sub(pkt.l3_off());
            match recover_offloads(&mut frame, mtu) {
                Err(_) => prop_assert!(frame.len() > mtu + ETH_HDR_LEN),
                Ok(hdr) if hdr.is_gso() => {
                    prop_assert!(hdr.needs_csum());
                    let mut out = Segments::with_max_segments(frame.len());
                    segment(&hdr, &frame, &mut out).unwrap();
                    prop_assert!(out.len() >= 2);
                    let l3 = frame.len() - l3_len;
                    for seg in out.iter() {
                        prop_assert!(seg.len() - l3 <= mtu);
                        verify_frame(seg);
                    }
                }
                Ok(hdr) => {
                    let mut finished = frame.clone();
                    prop_assert!(finish_checksum(&hdr, &mut finished).is_ok());
                }
            }
        }

        #[test]
        fn segment_matches_reference(
            kind in kind_strategy(),
            payload in prop::collection::vec(any::<u8>(), 0..9000),
            gso_size in 1usize..3000,
            tcp_flags in any::<u8>(),
            seq in any::<u32>(),
            ident in any::<u16>(),
            ecn in any::<bool>(),
            needs_csum in any::<bool>(),
        ) {
            // At least one segment per 128 bytes of payload keeps within the default area.
            let gso_size = gso_size.max(payload.len().div_ceil(MAX_SEGMENTS));
            let mut pkt = Pkt::new(kind, payload);
            if let Net::V4(ip) = &mut pkt.net {
                ip.identification = ident;
            }
            if let Transport::Tcp(t) = &mut pkt.transport {
                t.sequence_number = seq;
                let bit = |b: u8| tcp_flags & b != 0;
                (t.fin, t.syn, t.rst, t.psh) = (bit(0x01), bit(0x02), bit(0x04), bit(0x08));
                (t.ack, t.urg, t.ece, t.cwr) = (bit(0x10), bit(0x20), bit(0x40), bit(0x80));
            }
            let (mut hdr, frame) = pkt.gso(gso_size as u16);
            if ecn {
                hdr.gso_type |= gso::ECN;
            }
            if !needs_csum {
                hdr.flags = 0;
            }
            let mut out = Segments::new();
            segment(&hdr, &frame, &mut out).unwrap();
            check_segments(&pkt, gso_size, &out);
            // Without copying: the same segments, headers here and payloads in the frame.
            let mut headers = SegmentHeaders::new();
            segment_headers(&hdr, &frame, &mut headers).unwrap();
            prop_assert_eq!(headers.len(), out.len());
            for i in 0..out.len() {
                let gathered = [headers.headers(i), &frame[headers.payload(i)]].concat();
                prop_assert_eq!(&gathered[..], out.get(i), "segment {}", i);
            }
        }

        #[test]
        fn finish_checksum_matches_reference(
            kind in kind_strategy(),
            payload in prop::collection::vec(any::<u8>(), 0..3000),
        ) {
            let pkt = Pkt::new(kind, payload);
            let (hdr, mut frame) = pkt.partial();
            finish_checksum(&hdr, &mut frame).unwrap();
            let field = usize::from(hdr.csum_start + hdr.csum_offset);
            assert_same_frame(&frame, &pkt.to_bytes(), field);
            verify_frame(&frame);
        }

        #[test]
        fn arbitrary_input_never_panics(
            hdr in vnet_strategy(),
            bytes in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut out = Segments::new();
            let mut frame = bytes.clone();
            let _ = finish_checksum(&hdr, &mut frame);
            let _ = segment(&hdr, &bytes, &mut out);
            prop_assert!(out.len() <= out.max_segments());
        }

        #[test]
        fn mutated_frames_never_panic(
            kind in kind_strategy(),
            len in 0usize..4000,
            hdr in vnet_strategy(),
            keep_header in any::<bool>(),
            gso_size in 0u16..2000,
            mutations in prop::collection::vec((0usize..200, any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let pkt = Pkt::new(kind, pattern(len, 30));
            let (good, mut frame) = pkt.gso(gso_size);
            for (pos, value) in mutations {
                if pos < frame.len() {
                    frame[pos] = value;
                }
            }
            frame.truncate(cut.index(frame.len() + 1));
            let hdr = if keep_header {
                good
            } else {
                VnetHeader { gso_type: good.gso_type | (hdr.gso_type & gso::ECN), ..hdr }
            };
            let mut out = Segments::new();
            if segment(&hdr, &frame, &mut out).is_ok() {
                prop_assert!(!out.is_empty() && out.len() <= MAX_SEGMENTS);
                let max_payload = usize::from(hdr.gso_size.max(1));
                for seg in out.iter() {
                    prop_assert!(seg.len() <= frame.len().max(MAX_HEADERS_LEN) + max_payload);
                }
            }
            let _ = finish_checksum(&hdr, &mut frame.clone());
        }
    }
}
