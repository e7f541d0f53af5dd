//! In-place NAT and routing rewrite of Ethernet/IPv4 frames (Docker `-p` DNAT, masquerade, hairpin).
//!
//! Why it is written the way it is:
//!
//! * **Incremental checksums only.** The frames come from AF_PACKET / tap with offloads on, so a frame
//!   may be a 64 KiB GSO super-frame. Every checksum is adjusted by the difference of the words that
//!   changed (RFC 1624), never summed over the payload, so a rewrite costs the same for 64 bytes and for
//!   64 KiB.
//! * **Checksum-partial frames.** With `NEEDS_CSUM` (every GSO super-frame has it) the TCP/UDP checksum
//!   field does not hold a checksum but the folded, *uncomplemented* pseudo-header sum; whoever finishes
//!   the frame (a NIC, the next kernel, `offload::finish_checksum`) adds the sum of
//!   `csum_start..end` and complements. Applying RFC 1624 there would corrupt it. An address change
//!   must be added to it as a plain ones'-complement sum, and a port change must not touch it at all,
//!   because the ports lie in the range that is still to be summed. Linux does the same in
//!   `inet_proto_csum_replace4/2` for `CHECKSUM_PARTIAL` (pseudohdr true/false). The field is taken to be
//!   partial only when `csum_start`/`csum_offset` point exactly at it; otherwise it is a full checksum
//!   (`offload::segment` rejects a GSO frame whose offsets point elsewhere anyway).
//! * **GSO lengths are meaningless.** A super-frame's IPv4 total length (and UDP length) describe
//!   neither the frame nor its segments (0 with BIG TCP, stale after GRO). Headers are found from the
//!   frame itself: the Ethernet offset the caller gives, the IHL, fixed L4 offsets, and bounds checks
//!   against the frame's length. The total length is used only for ICMP (never offloaded) as an upper
//!   bound of the message its checksum covers, so that padding behind it is never taken for a quote.
//! * **ICMP errors carry the flow inside.** A "port unreachable" about a translated flow quotes the
//!   packet as it was on the far side of the NAT; the quote must be translated back or the sender's
//!   stack cannot match it to its socket. The quoted IPv4 header, the quoted ports (or echo identifier)
//!   and, when the quote holds all of it, the quoted L4 checksum are rewritten (taken as complete: it
//!   cannot be verified in a cut quote anyway), and every word changed in the quote is folded into the
//!   outer ICMP checksum, which covers the quote.
//! * **All or nothing.** All new values are computed from the untouched frame into a small list of
//!   16-bit edits, which are written only once the whole rewrite is known to be possible, so an error
//!   leaves the frame exactly as it was. No allocation, no loop over frame data, no panics on any input.
//!
//! The ICMP echo identifier plays the role of a port: it is the querier's port, i.e. the source port of
//! an echo request and the destination port of an echo reply (the same in a quote). For other
//! protocols (SCTP, GRE, ...) and for non-first IPv4 fragments only addresses are rewritten; a port
//! given in the [`Rewrite`] is ignored there.

use std::fmt;
use std::net::Ipv4Addr;

use crate::wire::ethernet;
#[cfg(test)]
use crate::wire::ethernet::{ethertype, EthernetFrame};
use crate::wire::headers::Ipv4Summary;
use crate::wire::icmp::{self, msg_type};
use crate::wire::ipv4::{self, protocol, Ipv4Packet};
use crate::wire::{bytes::read_u16, checksum::fold, tcp, udp, vnet::VnetHeader, MacAddr};

// The rewrite is planned as a list of 16-bit edits at frame offsets (see "All or nothing" above), so
// it names fields by their `wire` offsets; these are short names for them, not new definitions.
const ETH_DST_OFF: usize = ethernet::field::DST.start;
const ETH_SRC_OFF: usize = ethernet::field::SRC.start;
// IPv4, from the start of the IP header.
const IPV4_CHECKSUM_OFF: usize = ipv4::field::CHECKSUM.start;
// The TTL and the protocol share one 16-bit word.
const IPV4_TTL_OFF: usize = ipv4::field::TTL;
const IPV4_SRC_OFF: usize = ipv4::field::SRC_ADDR.start;
const IPV4_DST_OFF: usize = ipv4::field::DST_ADDR.start;
// TCP and UDP (ports in the same place), from the start of the L4 header.
const SPORT_OFF: usize = tcp::field::SRC_PORT.start;
const DPORT_OFF: usize = tcp::field::DST_PORT.start;
const TCP_CHECKSUM_OFF: usize = tcp::field::CHECKSUM.start;
const UDP_CHECKSUM_OFF: usize = udp::field::CHECKSUM.start;
// ICMP, from the start of the ICMP header.
const ICMP_HDR_LEN: usize = icmp::HEADER_LEN;
const ICMP_CHECKSUM_OFF: usize = icmp::field::CHECKSUM.start;
const ICMP_ECHO_ID_OFF: usize = icmp::field::ECHO_IDENT.start;

/// Most 16-bit words one rewrite changes: 6 (MACs) + 4 (addresses) + 1 (IP checksum) + 1 (ICMP
/// checksum) + 4 (quoted addresses) + 1 (quoted IP checksum) + 2 (quoted ports) + 1 (quoted L4
/// checksum) = 20, for an ICMP error.
const MAX_EDITS: usize = 24;

/// What to change in a frame. `None` leaves a field as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rewrite {
    pub src_mac: Option<MacAddr>,
    pub dst_mac: Option<MacAddr>,
    /// New source (address, port/ICMP id); None leaves it.
    pub src: Option<(Ipv4Addr, u16)>,
    /// New destination (address, port/ICMP id); None leaves it.
    pub dst: Option<(Ipv4Addr, u16)>,
}

impl Rewrite {
    fn touches_l3(&self) -> bool {
        self.src.is_some() || self.dst.is_some()
    }

    fn ports(&self) -> (Option<u16>, Option<u16>) {
        (self.src.map(|(_, p)| p), self.dst.map(|(_, p)| p))
    }
}

/// Why a frame could not be rewritten. On error the frame is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteError {
    /// No Ethernet/IPv4 header at `l3_offset` (other ethertype, IP version, IHL below 5, or
    /// `l3_offset` leaving no room for the Ethernet header), or an ICMP error whose quote is not IPv4.
    NotIpv4,
    /// The frame ends before a field the rewrite has to change or to account for.
    Truncated,
    /// A packet to route has a TTL of 0 (it should not have been sent at all).
    TtlExpired,
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RewriteError::NotIpv4 => "not an Ethernet/IPv4 frame",
            RewriteError::Truncated => "frame ends before a header field the rewrite needs",
            RewriteError::TtlExpired => "the packet's TTL is 0",
        })
    }
}

impl std::error::Error for RewriteError {}

/// Rewrites `frame` in place as `rw` says; for an ICMP error, `inner` rewrites the quoted packet too.
///
/// `l3_offset`: where the IPv4 header starts (14, or 18 behind a VLAN tag). `vnet` is the frame's
/// virtio_net_hdr: with `NEEDS_CSUM` pointing at the TCP/UDP (or ICMP) checksum field, that field is
/// treated as the partial pseudo-header sum. For ICMP errors, `inner` describes the rewrite of the
/// quoted packet (its src/dst as quoted), applied in addition to the outer one; its MACs are ignored,
/// and it is ignored for frames that are not ICMP errors.
///
/// Only a valid IPv4 header is needed for a MAC-only rewrite; an address or port change also needs
/// every L4 field it has to update (ports, checksum), an `inner` rewrite a quote holding them.
///
/// For frames nobody parsed yet (the tests); the packet path has the header parsed by `ingress`
/// and calls [`apply_parsed`].
#[cfg(test)]
pub fn apply(
    frame: &mut [u8],
    l3_offset: usize,
    vnet: &VnetHeader,
    rw: &Rewrite,
    inner: Option<&Rewrite>,
) -> Result<(), RewriteError> {
    let ip = parse_outer(frame, l3_offset)?;
    write(frame, ip, vnet, rw, inner)
}

/// [`apply`] for a frame whose IPv4 header `ingress` already parsed into `ip`.
pub fn apply_parsed(
    frame: &mut [u8],
    ip: &Ipv4Summary,
    vnet: &VnetHeader,
    rw: &Rewrite,
    inner: Option<&Rewrite>,
) -> Result<(), RewriteError> {
    write(frame, Ipv4::from_summary(ip), vnet, rw, inner)
}

fn write(
    frame: &mut [u8],
    ip: Ipv4,
    vnet: &VnetHeader,
    rw: &Rewrite,
    inner: Option<&Rewrite>,
) -> Result<(), RewriteError> {
    let mut edit = Edit::new(frame);
    plan(&mut edit, &ip, vnet, rw, inner)?;
    let Edit { edits, len, .. } = edit;
    commit(frame, edits.get(..len).unwrap_or(&[]));
    Ok(())
}

/// Writes the planned edits: the only place a rewrite changes the frame.
fn commit(frame: &mut [u8], edits: &[(usize, u16)]) {
    for &(at, value) in edits {
        // Every offset was read (bounds-checked) while planning.
        if let Some(field) = frame.get_mut(at..at + 2) {
            field.copy_from_slice(&value.to_be_bytes());
        }
    }
}

/// Routes the IPv4 frame `ip` (parsed by `ingress`) one hop, in place: new Ethernet addresses and
/// the TTL one less, with the header checksum updated for it (RFC 1624; the IPv4 header checksum is
/// never offloaded, and a GSO super-frame's segments all copy this header). Addresses, ports and
/// L4 checksums are left alone: a routed packet keeps its addresses. The caller has checked that
/// the TTL is above 1 (a router answers a TTL that runs out instead). All or nothing, as `apply`.
pub fn route_parsed(
    frame: &mut [u8],
    ip: &Ipv4Summary,
    src_mac: MacAddr,
    dst_mac: MacAddr,
) -> Result<(), RewriteError> {
    let at = ip.l3_offset();
    let mut e = Edit::new(frame);
    e.set_mac(ETH_DST_OFF, dst_mac)?;
    e.set_mac(ETH_SRC_OFF, src_mac)?;
    let ttl_at = at + IPV4_TTL_OFF;
    let word = e.u16(ttl_at)?;
    let ttl = (word >> 8) as u8;
    if ttl == 0 {
        return Err(RewriteError::TtlExpired);
    }
    let change = e.set16(ttl_at, word - 0x0100)?;
    e.set_checksum(at + IPV4_CHECKSUM_OFF, Csum::Full, Delta::ZERO, change)?;
    let Edit { edits, len, .. } = e;
    commit(frame, edits.get(..len).unwrap_or(&[]));
    Ok(())
}

/// What the NAT stage needs to know about an ICMP error's quote: protocol, src, sport, dst, dport of the
/// quoted packet (ports for TCP/UDP, echo id for quoted ICMP echo), or None when the frame is not an
/// ICMP error with a usable quote.
///
/// The echo identifier is returned as both ports. Protocols without ports (GRE, ...) give ports 0; a
/// quoted TCP/UDP/ICMP packet without its first bytes (a non-first fragment, or a quote too short to
/// hold the ports or the echo identifier) gives None, as does a quoted ICMP message other than echo.
/// `ip` is the frame's IPv4 header as `ingress` parsed it.
pub fn icmp_error_quote(
    frame: &[u8],
    ip: &Ipv4Summary,
) -> Option<(u8, Ipv4Addr, u16, Ipv4Addr, u16)> {
    let ip = Ipv4::from_summary(ip);
    if ip.protocol != protocol::ICMP || !ip.carries_l4 {
        return None;
    }
    let msg = icmp_message(frame, &ip);
    if !is_icmp_error(*msg.get(ip.l4)?) {
        return None;
    }
    let quote = Ipv4::read(msg, ip.l4 + ICMP_HDR_LEN).ok()?;
    let l4 = quote.l4;
    let (sport, dport) = match quote.protocol {
        protocol::TCP | protocol::UDP if quote.carries_l4 => {
            (field16(msg, l4 + SPORT_OFF)?, field16(msg, l4 + DPORT_OFF)?)
        }
        protocol::ICMP if quote.carries_l4 && is_echo(*msg.get(l4)?) => {
            let id = field16(msg, l4 + ICMP_ECHO_ID_OFF)?;
            (id, id)
        }
        protocol::TCP | protocol::UDP | protocol::ICMP => return None,
        _ => (0, 0),
    };
    Some((
        quote.protocol,
        Ipv4Addr::from(quote.src),
        sport,
        Ipv4Addr::from(quote.dst),
        dport,
    ))
}

/// Works out every edit of `apply` into `e` without touching the frame.
fn plan(
    e: &mut Edit<'_>,
    ip: &Ipv4,
    vnet: &VnetHeader,
    rw: &Rewrite,
    inner: Option<&Rewrite>,
) -> Result<(), RewriteError> {
    if let Some(mac) = rw.dst_mac {
        e.set_mac(ETH_DST_OFF, mac)?;
    }
    if let Some(mac) = rw.src_mac {
        e.set_mac(ETH_SRC_OFF, mac)?;
    }
    let inner = inner.filter(|i| i.touches_l3());
    if !rw.touches_l3() && inner.is_none() {
        return Ok(());
    }

    // The addresses are covered by the IPv4 header checksum directly and by the TCP/UDP checksum
    // through the pseudo-header.
    let addrs = e.set_addresses(ip, rw)?;
    e.set_checksum(ip.at + IPV4_CHECKSUM_OFF, Csum::Full, Delta::ZERO, addrs)?;
    if !ip.carries_l4 {
        return Ok(());
    }

    let (sport, dport) = rw.ports();
    let l4 = ip.l4;
    match ip.protocol {
        protocol::TCP if rw.touches_l3() => {
            let kind = Csum::of(vnet, l4, TCP_CHECKSUM_OFF, Csum::Full);
            e.set_ports(l4, TCP_CHECKSUM_OFF, kind, addrs, sport, dport, true)?;
        }
        protocol::UDP if rw.touches_l3() => {
            let kind = Csum::of(vnet, l4, UDP_CHECKSUM_OFF, Csum::Optional);
            e.set_ports(l4, UDP_CHECKSUM_OFF, kind, addrs, sport, dport, true)?;
        }
        protocol::ICMP => {
            // ICMP is never offloaded: its total length is right, and bounds what its checksum covers.
            e.view = icmp_message(e.view, ip);
            let kind = Csum::of(vnet, l4, ICMP_CHECKSUM_OFF, Csum::Full);
            let icmp_type = e.u8(l4)?;
            if is_echo(icmp_type) && rw.touches_l3() {
                e.set_echo_id(l4, icmp_type, kind, sport, dport)?;
            } else if let (true, Some(inner)) = (is_icmp_error(icmp_type), inner) {
                let quote = e.rewrite_quote(l4 + ICMP_HDR_LEN, inner)?;
                e.set_checksum(l4 + ICMP_CHECKSUM_OFF, kind, Delta::ZERO, quote)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_echo(icmp_type: u8) -> bool {
    matches!(icmp_type, msg_type::ECHO_REQUEST | msg_type::ECHO_REPLY)
}

/// The ICMP errors NAT translates (their quote is rewritten): destination unreachable, time
/// exceeded, parameter problem (not redirects, which `Icmpv4Packet::is_error` also counts).
pub fn is_icmp_error(icmp_type: u8) -> bool {
    matches!(
        icmp_type,
        msg_type::DEST_UNREACHABLE | msg_type::TIME_EXCEEDED | msg_type::PARAMETER_PROBLEM
    )
}

/// The bytes of an ICMP packet's IP datagram: the frame cut at the IPv4 total length, or the whole
/// frame if it is shorter than that.
fn icmp_message<'a>(frame: &'a [u8], ip: &Ipv4) -> &'a [u8] {
    frame.get(..ip.at + ip.total_len).unwrap_or(frame)
}

/// The big-endian u16 at `at`, if `b` holds it.
fn field16(b: &[u8], at: usize) -> Option<u16> {
    let end = at.checked_add(2)?;
    (end <= b.len()).then(|| read_u16(b, at))
}

/// Where an IPv4 header and what follows it are: from `ingress`'s parse for the frame's own header,
/// through `wire::ipv4` for a quoted one.
#[derive(Clone, Copy, Debug)]
struct Ipv4 {
    /// Offset of the IPv4 header.
    at: usize,
    /// Offset of the L4 header (`at` + IHL); the frame holds at least the whole IPv4 header.
    l4: usize,
    protocol: u8,
    /// False for a non-first fragment, which has no L4 header.
    carries_l4: bool,
    src: u32,
    dst: u32,
    /// The total length field, trusted only for ICMP.
    total_len: usize,
}

impl Ipv4 {
    fn from_summary(ip: &Ipv4Summary) -> Ipv4 {
        Ipv4 {
            at: ip.l3_offset(),
            l4: ip.l4_offset(),
            protocol: ip.protocol,
            carries_l4: ip.first_fragment,
            src: u32::from(ip.src),
            dst: u32::from(ip.dst),
            total_len: usize::from(ip.total_len),
        }
    }

    /// The IPv4 header at `at` in `b` (version 4, IHL at least 5, all IHL bytes present), read
    /// with `Ipv4Packet::new_checked_header` (a quote's, or a GSO frame's, `total_len` is not the
    /// buffer's).
    fn read(b: &[u8], at: usize) -> Result<Ipv4, RewriteError> {
        let rest = b.get(at..).filter(|r| !r.is_empty());
        let packet = Ipv4Packet::new_unchecked(rest.ok_or(RewriteError::Truncated)?);
        // Version and IHL are in the first byte: a wrong one is not IPv4, whatever follows.
        if packet.version() != 4 || packet.header_len() < ipv4::HEADER_LEN {
            return Err(RewriteError::NotIpv4);
        }
        let p = Ipv4Packet::new_checked_header(packet.into_inner())
            .map_err(|_| RewriteError::Truncated)?;
        Ok(Ipv4 {
            at,
            l4: at + p.header_len(),
            protocol: p.protocol(),
            carries_l4: p.frag_offset() == 0,
            src: u32::from(p.src_addr()),
            dst: u32::from(p.dst_addr()),
            total_len: usize::from(p.total_len()),
        })
    }
}

/// The IPv4 header at `l3` of an Ethernet frame, which must be where the Ethernet header says L3
/// starts, behind the IPv4 EtherType.
#[cfg(test)]
fn parse_outer(frame: &[u8], l3: usize) -> Result<Ipv4, RewriteError> {
    if l3 < ethernet::HEADER_LEN {
        return Err(RewriteError::NotIpv4);
    }
    let eth = EthernetFrame::new_checked(frame).map_err(|_| RewriteError::Truncated)?;
    if eth.l3_offset() != l3 || eth.inner_ethertype() != ethertype::IPV4 {
        return Err(RewriteError::NotIpv4);
    }
    Ipv4::read(frame, l3)
}

/// A ones'-complement difference: the sum of `~old + new` over the 16-bit words that changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Delta(u64);

impl Delta {
    const ZERO: Delta = Delta(0);

    fn word(old: u16, new: u16) -> Delta {
        if old == new {
            Delta::ZERO
        } else {
            Delta(u64::from(!old) + u64::from(new))
        }
    }
}

impl std::ops::Add for Delta {
    type Output = Delta;
    fn add(self, other: Delta) -> Delta {
        // At most a few dozen words of at most 0x1fffe each: no overflow.
        Delta(self.0 + other.0)
    }
}

impl std::ops::AddAssign for Delta {
    fn add_assign(&mut self, other: Delta) {
        *self = *self + other;
    }
}

/// What a checksum field holds, which decides how a change is folded into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Csum {
    /// A complete checksum (IPv4 header, TCP, ICMP): RFC 1624, HC' = ~(~HC + ~m + m').
    Full,
    /// A complete UDP checksum: 0 means "none" and stays 0, and a result of 0 is sent as 0xffff.
    Optional,
    /// `NEEDS_CSUM`: the folded, uncomplemented pseudo-header sum. Pseudo-header changes are added to
    /// it as they are; changes to the data it is still to be summed with are not.
    Partial,
}

impl Csum {
    /// `Partial` if `vnet` says that the checksum field `field_off` bytes into the L4 header at `l4` is
    /// the one still to be completed, else `complete`.
    fn of(vnet: &VnetHeader, l4: usize, field_off: usize, complete: Csum) -> Csum {
        if vnet.needs_csum()
            && usize::from(vnet.csum_start) == l4
            && usize::from(vnet.csum_offset) == field_off
        {
            Csum::Partial
        } else {
            complete
        }
    }

    /// The change `pseudo` + `data` as it affects a field of this kind (zero: leave it alone).
    fn relevant(self, pseudo: Delta, data: Delta) -> Delta {
        match self {
            Csum::Partial => pseudo,
            Csum::Full | Csum::Optional => pseudo + data,
        }
    }

    /// The new value of a field holding `old` after the covered words changed by `delta`
    /// (from [`Csum::relevant`], non-zero).
    fn update(self, old: u16, delta: Delta) -> u16 {
        match self {
            Csum::Partial => fold(u64::from(old) + delta.0),
            Csum::Optional if old == 0 => 0,
            Csum::Full => !fold(u64::from(!old) + delta.0),
            Csum::Optional => match !fold(u64::from(!old) + delta.0) {
                0 => 0xffff,
                new => new,
            },
        }
    }
}

/// The edits of one rewrite, computed from the untouched frame and written by `apply` at the end.
struct Edit<'a> {
    /// What may be read and changed: the frame, cut at the end of an ICMP message once inside one.
    view: &'a [u8],
    /// `(offset, new value)` of each changed 16-bit word; each offset appears at most once.
    edits: [(usize, u16); MAX_EDITS],
    len: usize,
}

impl<'a> Edit<'a> {
    fn new(frame: &'a [u8]) -> Edit<'a> {
        Edit {
            view: frame,
            edits: [(0, 0); MAX_EDITS],
            len: 0,
        }
    }

    fn u8(&self, at: usize) -> Result<u8, RewriteError> {
        self.view.get(at).copied().ok_or(RewriteError::Truncated)
    }

    fn u16(&self, at: usize) -> Result<u16, RewriteError> {
        field16(self.view, at).ok_or(RewriteError::Truncated)
    }

    fn has_u16(&self, at: usize) -> bool {
        field16(self.view, at).is_some()
    }

    /// Sets the word at `at` to `new`; returns the change for the checksums covering it.
    fn set16(&mut self, at: usize, new: u16) -> Result<Delta, RewriteError> {
        let old = self.u16(at)?;
        if old != new {
            // Cannot fail: no rewrite changes more than MAX_EDITS words.
            let slot = self
                .edits
                .get_mut(self.len)
                .ok_or(RewriteError::Truncated)?;
            *slot = (at, new);
            self.len += 1;
        }
        Ok(Delta::word(old, new))
    }

    fn set32(&mut self, at: usize, new: u32) -> Result<Delta, RewriteError> {
        self.u16(at + 2)?;
        Ok(self.set16(at, (new >> 16) as u16)? + self.set16(at + 2, new as u16)?)
    }

    fn set_mac(&mut self, at: usize, mac: MacAddr) -> Result<(), RewriteError> {
        for (i, pair) in mac.as_bytes().chunks_exact(2).enumerate() {
            self.set16(at + 2 * i, u16::from_be_bytes([pair[0], pair[1]]))?;
        }
        Ok(())
    }

    /// Folds a change into the checksum field at `at`; returns the change of the field itself. The
    /// field must be present only if it has to change.
    fn set_checksum(
        &mut self,
        at: usize,
        kind: Csum,
        pseudo: Delta,
        data: Delta,
    ) -> Result<Delta, RewriteError> {
        let delta = kind.relevant(pseudo, data);
        if delta == Delta::ZERO {
            return Ok(Delta::ZERO);
        }
        let old = self.u16(at)?;
        self.set16(at, kind.update(old, delta))
    }

    /// Rewrites the addresses of the IPv4 header `ip` as `rw` says; returns their change.
    fn set_addresses(&mut self, ip: &Ipv4, rw: &Rewrite) -> Result<Delta, RewriteError> {
        let mut delta = Delta::ZERO;
        if let Some((addr, _)) = rw.src {
            delta += self.set32(ip.at + IPV4_SRC_OFF, u32::from(addr))?;
        }
        if let Some((addr, _)) = rw.dst {
            delta += self.set32(ip.at + IPV4_DST_OFF, u32::from(addr))?;
        }
        Ok(delta)
    }

    /// Rewrites the ports of the TCP/UDP header at `l4` and folds them and the address change `addrs`
    /// into its checksum at `l4 + csum_off`, which may be absent (from a quote) unless
    /// `csum_required`. Returns the change of all words written.
    #[allow(clippy::too_many_arguments)]
    fn set_ports(
        &mut self,
        l4: usize,
        csum_off: usize,
        kind: Csum,
        addrs: Delta,
        sport: Option<u16>,
        dport: Option<u16>,
        csum_required: bool,
    ) -> Result<Delta, RewriteError> {
        let mut ports = Delta::ZERO;
        if let Some(port) = sport {
            ports += self.set16(l4 + SPORT_OFF, port)?;
        }
        if let Some(port) = dport {
            ports += self.set16(l4 + DPORT_OFF, port)?;
        }
        let csum_at = l4 + csum_off;
        if !csum_required && !self.has_u16(csum_at) {
            return Ok(ports);
        }
        Ok(ports + self.set_checksum(csum_at, kind, addrs, ports)?)
    }

    /// Rewrites the identifier of the ICMP echo message at `l4` (the source port of a request, the
    /// destination port of a reply) and its checksum, which has no pseudo-header. Returns the change of
    /// all words written.
    fn set_echo_id(
        &mut self,
        l4: usize,
        icmp_type: u8,
        kind: Csum,
        sport: Option<u16>,
        dport: Option<u16>,
    ) -> Result<Delta, RewriteError> {
        let id = if icmp_type == msg_type::ECHO_REQUEST {
            sport
        } else {
            dport
        };
        let Some(id) = id else {
            return Ok(Delta::ZERO);
        };
        let change = self.set16(l4 + ICMP_ECHO_ID_OFF, id)?;
        Ok(change + self.set_checksum(l4 + ICMP_CHECKSUM_OFF, kind, Delta::ZERO, change)?)
    }

    /// Rewrites the packet quoted at `at` by an ICMP error as `rw` says: addresses and header checksum,
    /// ports or echo identifier, and the quoted L4 checksum if the quote holds all of it (a quote's checksums
    /// are taken as complete). Returns the change of all words written, for the outer ICMP checksum.
    fn rewrite_quote(&mut self, at: usize, rw: &Rewrite) -> Result<Delta, RewriteError> {
        let ip = Ipv4::read(self.view, at)?;
        let addrs = self.set_addresses(&ip, rw)?;
        let mut change =
            addrs + self.set_checksum(at + IPV4_CHECKSUM_OFF, Csum::Full, Delta::ZERO, addrs)?;
        if !ip.carries_l4 {
            return Ok(change);
        }
        let (sport, dport) = rw.ports();
        let l4 = ip.l4;
        change += match ip.protocol {
            protocol::TCP => {
                self.set_ports(l4, TCP_CHECKSUM_OFF, Csum::Full, addrs, sport, dport, false)?
            }
            protocol::UDP => {
                let kind = Csum::Optional;
                self.set_ports(l4, UDP_CHECKSUM_OFF, kind, addrs, sport, dport, false)?
            }
            protocol::ICMP => match self.u8(l4)? {
                t if is_echo(t) => self.set_echo_id(l4, t, Csum::Full, sport, dport)?,
                _ => Delta::ZERO,
            },
            _ => Delta::ZERO,
        };
        Ok(change)
    }
}

/// `icmp_error_quote` of a frame nobody parsed yet, parsed as `ingress` would (tests only).
#[cfg(test)]
fn quote_at(frame: &[u8], l3: usize) -> Option<(u8, Ipv4Addr, u16, Ipv4Addr, u16)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.l3_offset() != l3 {
        return None;
    }
    let ip = crate::wire::headers::L3::parse(frame, eth.inner_ethertype(), l3).ipv4()?;
    icmp_error_quote(frame, &ip)
}

/// Independent checks written against the spec before this module (recomputation over the bytes).
#[cfg(test)]
mod checks;

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        icmpv4::{DestUnreachableHeader, ParameterProblemHeader, TimeExceededCode},
        EtherType, Ethernet2Header, IcmpEchoHeader, Icmpv4Header, Icmpv4Type, IpFragOffset,
        IpNumber, Ipv4Header, NetHeaders, PacketHeaders, PayloadSlice, SingleVlanHeader, TcpHeader,
        TcpOptionElement, TransportHeader, UdpHeader, VlanId, VlanPcp,
    };
    use proptest::prelude::*;

    /// `wire::vnet::flags::NEEDS_CSUM`.
    const NEEDS_CSUM: u8 = 1;
    /// `wire::vnet::gso::TCPV4` and `wire::vnet::gso::UDP_L4`.
    const GSO_TCPV4: u8 = 1;
    const GSO_UDP_L4: u8 = 5;

    #[derive(Clone, Debug)]
    enum L4 {
        Tcp {
            sport: u16,
            dport: u16,
            seq: u32,
            flags: u8,
            options: bool,
        },
        Udp {
            sport: u16,
            dport: u16,
            no_checksum: bool,
        },
        Echo {
            request: bool,
            id: u16,
            seq: u16,
        },
        /// An ICMP error quoting the first `quote_len` bytes of `quote`'s IP datagram.
        Error {
            icmp_type: Icmpv4Type,
            quote: Box<Pkt>,
            quote_len: usize,
            /// The last quoted byte when the quote ends in the middle of the quoted L4 checksum,
            /// which is then left as it was (like Linux, which only updates a complete field).
            half_checksum: Option<u8>,
        },
    }

    /// A test packet as header values; `frame` is the reference serialisation, every checksum and
    /// length computed from scratch by etherparse.
    #[derive(Clone, Debug)]
    struct Pkt {
        vlan: bool,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        ip: Ipv4Header,
        l4: L4,
        payload: Vec<u8>,
    }

    impl Pkt {
        fn l3(&self) -> usize {
            if self.vlan {
                18
            } else {
                14
            }
        }

        fn l4_off(&self) -> usize {
            self.l3() + self.ip.header_len()
        }

        /// What follows the L4 header: the payload, or an ICMP error's quote.
        fn body(&self) -> Vec<u8> {
            match &self.l4 {
                L4::Error {
                    quote,
                    quote_len,
                    half_checksum,
                    ..
                } => {
                    let q = quote.ip_bytes();
                    let mut body = q[..(*quote_len).min(q.len())].to_vec();
                    if let (Some(b), Some(last)) = (half_checksum, body.last_mut()) {
                        *last = *b;
                    }
                    body
                }
                _ => self.payload.clone(),
            }
        }

        fn ip_bytes(&self) -> Vec<u8> {
            let body = self.body();
            let mut ip = self.ip.clone();
            ip.protocol = match self.l4 {
                L4::Tcp { .. } => IpNumber::TCP,
                L4::Udp { .. } => IpNumber::UDP,
                L4::Echo { .. } | L4::Error { .. } => IpNumber::ICMP,
            };
            let l4: Vec<u8> = match &self.l4 {
                &L4::Tcp {
                    sport,
                    dport,
                    seq,
                    flags,
                    options,
                } => {
                    let mut t = TcpHeader::new(sport, dport, seq, 0x7210);
                    t.acknowledgment_number = seq.rotate_left(7);
                    let bit = |b: u8| flags & b != 0;
                    (t.fin, t.syn, t.rst, t.psh) = (bit(0x01), bit(0x02), bit(0x04), bit(0x08));
                    (t.ack, t.urg, t.ece, t.cwr) = (bit(0x10), bit(0x20), bit(0x40), bit(0x80));
                    if options {
                        t.set_options(&[
                            TcpOptionElement::Noop,
                            TcpOptionElement::Noop,
                            TcpOptionElement::Timestamp(seq, !seq),
                        ])
                        .unwrap();
                    }
                    t.checksum = t.calc_checksum_ipv4(&ip, &body).unwrap();
                    t.to_bytes().to_vec()
                }
                &L4::Udp {
                    sport,
                    dport,
                    no_checksum,
                } => {
                    let mut u = UdpHeader {
                        source_port: sport,
                        destination_port: dport,
                        length: (8 + body.len()) as u16,
                        checksum: 0,
                    };
                    if !no_checksum {
                        u.checksum = u.calc_checksum_ipv4(&ip, &body).unwrap();
                    }
                    u.to_bytes().to_vec()
                }
                &L4::Echo { request, id, seq } => {
                    let echo = IcmpEchoHeader { id, seq };
                    let t = if request {
                        Icmpv4Type::EchoRequest(echo)
                    } else {
                        Icmpv4Type::EchoReply(echo)
                    };
                    Icmpv4Header::with_checksum(t, &body).to_bytes().to_vec()
                }
                L4::Error { icmp_type, .. } => {
                    Icmpv4Header::with_checksum(icmp_type.clone(), &body)
                        .to_bytes()
                        .to_vec()
                }
            };
            ip.set_payload_len(l4.len() + body.len()).unwrap();
            let mut out = Vec::new();
            ip.write(&mut out).unwrap(); // computes the header checksum
            out.extend_from_slice(&l4);
            out.extend_from_slice(&body);
            out
        }

        fn frame(&self) -> Vec<u8> {
            let mut out = Vec::new();
            Ethernet2Header {
                source: self.src_mac,
                destination: self.dst_mac,
                ether_type: if self.vlan {
                    EtherType::VLAN_TAGGED_FRAME
                } else {
                    EtherType::IPV4
                },
            }
            .write(&mut out)
            .unwrap();
            if self.vlan {
                SingleVlanHeader {
                    pcp: VlanPcp::try_new(3).unwrap(),
                    drop_eligible_indicator: false,
                    vlan_id: VlanId::try_new(100).unwrap(),
                    ether_type: EtherType::IPV4,
                }
                .write(&mut out)
                .unwrap();
            }
            out.extend_from_slice(&self.ip_bytes());
            out
        }

        /// The packet as `rw` (and `inner` for a quote) should leave it.
        fn rewritten(&self, rw: &Rewrite, inner: Option<&Rewrite>) -> Pkt {
            let mut p = self.clone();
            if let Some(m) = rw.src_mac {
                p.src_mac = m.0;
            }
            if let Some(m) = rw.dst_mac {
                p.dst_mac = m.0;
            }
            if let Some((a, _)) = rw.src {
                p.ip.source = a.octets();
            }
            if let Some((a, _)) = rw.dst {
                p.ip.destination = a.octets();
            }
            let (new_sport, new_dport) = rw.ports();
            match &mut p.l4 {
                L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport, .. } => {
                    *sport = new_sport.unwrap_or(*sport);
                    *dport = new_dport.unwrap_or(*dport);
                }
                L4::Echo { request, id, .. } => {
                    *id = if *request { new_sport } else { new_dport }.unwrap_or(*id);
                }
                L4::Error {
                    quote,
                    quote_len,
                    half_checksum,
                    ..
                } => {
                    if let Some(inner) = inner {
                        let csum_off = match quote.l4 {
                            L4::Tcp { .. } => Some(16),
                            L4::Udp { .. } => Some(6),
                            _ => None,
                        };
                        if csum_off.map(|o| quote.ip.header_len() + o + 1) == Some(*quote_len) {
                            *half_checksum = quote.ip_bytes().get(*quote_len - 1).copied();
                        }
                        **quote = quote.rewritten(inner, None);
                    }
                }
            }
            p
        }

        /// What `icmp_error_quote` should say about this packet when quoted.
        fn as_quoted(&self) -> (u8, Ipv4Addr, u16, Ipv4Addr, u16) {
            let (proto, sport, dport) = match self.l4 {
                L4::Tcp { sport, dport, .. } => (6, sport, dport),
                L4::Udp { sport, dport, .. } => (17, sport, dport),
                L4::Echo { id, .. } => (1, id, id),
                L4::Error { .. } => unreachable!("errors are not quoted"),
            };
            let (src, dst) = (self.ip.source.into(), self.ip.destination.into());
            (proto, src, sport, dst, dport)
        }
    }

    fn ip(src: [u8; 4], dst: [u8; 4]) -> Ipv4Header {
        let mut ip = Ipv4Header::new(0, 64, IpNumber::TCP, src, dst).unwrap();
        ip.identification = 0x1234;
        ip.dont_fragment = true;
        ip
    }

    fn pkt(ip: Ipv4Header, l4: L4, payload: &[u8]) -> Pkt {
        Pkt {
            vlan: false,
            src_mac: [0x02, 0x42, 0xac, 0x11, 0, 2],
            dst_mac: [0x02, 0x42, 0x5e, 0, 0, 1],
            ip,
            l4,
            payload: payload.to_vec(),
        }
    }

    fn tcp(sport: u16, dport: u16) -> L4 {
        L4::Tcp {
            sport,
            dport,
            seq: 0xdead_beef,
            flags: 0x18,
            options: true,
        }
    }

    fn udp(sport: u16, dport: u16) -> L4 {
        L4::Udp {
            sport,
            dport,
            no_checksum: false,
        }
    }

    fn addr(a: [u8; 4]) -> Ipv4Addr {
        Ipv4Addr::from(a)
    }

    /// One's complement sum of the concatenation of `parts`, written here independently of the
    /// module's checksum code.
    fn ones_sum(parts: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = parts.concat();
        let mut acc: u32 = 0;
        for pair in bytes.chunks(2) {
            acc += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    fn ipv4_header_valid(frame: &[u8], l3: usize) -> bool {
        let ihl = usize::from(frame[l3] & 0x0f) * 4;
        ones_sum(&[&frame[l3..l3 + ihl]]) == 0xffff
    }

    /// Sets a (GSO-style, meaningless) IPv4 total length and a header checksum that matches it.
    fn set_total_len(frame: &mut [u8], l3: usize, total_len: u16) {
        let ihl = usize::from(frame[l3] & 0x0f) * 4;
        frame[l3 + 2..l3 + 4].copy_from_slice(&total_len.to_be_bytes());
        frame[l3 + 10..l3 + 12].fill(0);
        let c = !ones_sum(&[&frame[l3..l3 + ihl]]);
        frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }

    /// Checks with etherparse that every checksum in `frame` is what a full recomputation gives.
    fn verify_checksums(frame: &[u8]) {
        let h = PacketHeaders::from_ethernet_slice(frame).expect("frame parses");
        let Some(NetHeaders::Ipv4(ip, _)) = &h.net else {
            panic!("not IPv4: {:?}", h.net)
        };
        assert_eq!(ip.header_checksum, ip.calc_header_checksum(), "IPv4 header");
        match (&h.transport, &h.payload) {
            (Some(TransportHeader::Tcp(t)), PayloadSlice::Tcp(p)) => {
                assert_eq!(t.checksum, t.calc_checksum_ipv4(ip, p).unwrap(), "TCP");
            }
            (Some(TransportHeader::Udp(u)), PayloadSlice::Udp(p)) => {
                if u.checksum != 0 {
                    assert_eq!(u.checksum, u.calc_checksum_ipv4(ip, p).unwrap(), "UDP");
                }
            }
            (Some(TransportHeader::Icmpv4(i)), PayloadSlice::Icmpv4(p)) => {
                assert_eq!(i.checksum, i.icmp_type.calc_checksum(p), "ICMP");
                if matches!(
                    i.icmp_type,
                    Icmpv4Type::DestinationUnreachable(_)
                        | Icmpv4Type::TimeExceeded(_)
                        | Icmpv4Type::ParameterProblem(_)
                ) {
                    let (q, _) = Ipv4Header::from_slice(p).expect("quoted IPv4 header parses");
                    assert_eq!(q.header_checksum, q.calc_header_checksum(), "quoted IPv4");
                }
            }
            other => panic!("unexpected transport {other:?}"),
        }
    }

    /// Rewrites a copy of `p`'s frame and checks it against the rebuilt expected packet.
    fn check_rewrite(p: &Pkt, rw: &Rewrite, inner: Option<&Rewrite>) -> Vec<u8> {
        let mut frame = p.frame();
        apply(&mut frame, p.l3(), &VnetHeader::default(), rw, inner).unwrap();
        assert_eq!(frame, p.rewritten(rw, inner).frame(), "{rw:?} {inner:?}");
        verify_checksums(&frame);
        frame
    }

    /// Puts what Linux leaves in a checksum-partial frame's L4 checksum field: the folded, not
    /// complemented, pseudo-header sum (`~csum_tcpudp_magic(saddr, daddr, len, proto, 0)`).
    fn make_partial(p: &Pkt, frame: &mut [u8], gso_type: u8) -> VnetHeader {
        let l4 = p.l4_off();
        let (proto, off) = match p.l4 {
            L4::Tcp { .. } => (6u8, 16u16),
            L4::Udp { .. } => (17, 6),
            _ => unreachable!(),
        };
        let len = (frame.len() - l4) as u16;
        let pseudo = ones_sum(&[
            &frame[p.l3() + 12..p.l3() + 20],
            &[0, proto],
            &len.to_be_bytes(),
        ]);
        let field = l4 + usize::from(off);
        frame[field..field + 2].copy_from_slice(&pseudo.to_be_bytes());
        VnetHeader {
            flags: NEEDS_CSUM,
            gso_type,
            hdr_len: (l4 + 20) as u16,
            gso_size: if gso_type == 0 { 0 } else { 1448 },
            csum_start: l4 as u16,
            csum_offset: off,
        }
    }

    /// What a device (or `offload::finish_checksum`) does with a partial frame: sums
    /// `csum_start..end` with the field as it is and stores the complement. UDP sends 0 as 0xffff.
    fn complete(frame: &mut [u8], vnet: &VnetHeader, udp: bool) {
        let start = usize::from(vnet.csum_start);
        let field = start + usize::from(vnet.csum_offset);
        let mut c = !ones_sum(&[&frame[start..]]);
        if udp && c == 0 {
            c = 0xffff;
        }
        frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn dnat_tcp_with_full_checksum() {
        let p = pkt(
            ip([203, 0, 113, 5], [198, 51, 100, 1]),
            tcp(51000, 8080),
            b"GET / HTTP/1.1\r\n\r\n",
        );
        let rw = Rewrite {
            dst_mac: Some(MacAddr([0x02, 0x42, 0xac, 0x11, 0, 3])),
            src_mac: Some(MacAddr([0x02, 0x42, 0x5e, 0, 0, 9])),
            dst: Some((Ipv4Addr::new(172, 17, 0, 3), 80)),
            src: None,
        };
        check_rewrite(&p, &rw, None);
    }

    #[test]
    fn nothing_to_do_changes_nothing() {
        let p = pkt(ip([10, 0, 0, 1], [10, 0, 0, 2]), tcp(1, 2), b"x");
        let mut frame = p.frame();
        let same = Rewrite {
            src_mac: Some(MacAddr(p.src_mac)),
            dst_mac: Some(MacAddr(p.dst_mac)),
            src: Some((addr(p.ip.source), 1)),
            dst: Some((addr(p.ip.destination), 2)),
        };
        for rw in [Rewrite::default(), same] {
            apply(&mut frame, 14, &VnetHeader::default(), &rw, Some(&same)).unwrap();
            assert_eq!(frame, p.frame());
        }
    }

    #[test]
    fn udp_without_checksum_keeps_zero() {
        let mut p = pkt(ip([192, 0, 2, 1], [192, 0, 2, 2]), udp(53, 3333), b"abc");
        p.l4 = L4::Udp {
            sport: 53,
            dport: 3333,
            no_checksum: true,
        };
        let rw = Rewrite {
            src: Some((Ipv4Addr::new(8, 8, 8, 8), 5353)),
            dst: Some((Ipv4Addr::new(172, 17, 0, 9), 4444)),
            ..Rewrite::default()
        };
        let frame = check_rewrite(&p, &rw, None);
        assert_eq!(&frame[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    }

    #[test]
    fn udp_checksum_that_becomes_zero_is_sent_as_ffff() {
        let p = pkt(ip([192, 0, 2, 1], [192, 0, 2, 2]), udp(53, 3333), b"hello");
        let frame = p.frame();
        let field = 14 + 20 + 6;
        let c = u16::from_be_bytes([frame[field], frame[field + 1]]);
        // Pick the destination port whose change makes the ones' complement sum 0xffff: checksum 0.
        let base = fold(u64::from(!c) + u64::from(!3333u16));
        let port = 0xffff - base;
        assert_ne!(port, 3333);
        let rw = Rewrite {
            dst: Some((addr(p.ip.destination), port)),
            ..Rewrite::default()
        };
        let frame = check_rewrite(&p, &rw, None);
        assert_eq!(&frame[field..field + 2], &[0xff, 0xff]);
    }

    #[test]
    fn echo_identifier_is_the_queriers_port() {
        let ping = pkt(
            ip([172, 17, 0, 2], [192, 0, 2, 1]),
            L4::Echo {
                request: true,
                id: 77,
                seq: 1,
            },
            b"abcdefgh",
        );
        // Masquerade of a request: the source port is the identifier.
        let snat = Rewrite {
            src: Some((Ipv4Addr::new(198, 51, 100, 1), 4000)),
            ..Rewrite::default()
        };
        let out = check_rewrite(&ping, &snat, None);
        assert_eq!(&out[14 + 20 + 4..14 + 20 + 6], &4000u16.to_be_bytes());
        // Its reply coming back: the destination port is the identifier.
        let mut pong = ping.rewritten(&snat, None);
        pong.ip = ip([192, 0, 2, 1], [198, 51, 100, 1]);
        pong.l4 = L4::Echo {
            request: false,
            id: 4000,
            seq: 1,
        };
        let back = Rewrite {
            dst: Some((Ipv4Addr::new(172, 17, 0, 2), 77)),
            ..Rewrite::default()
        };
        let out = check_rewrite(&pong, &back, None);
        assert_eq!(&out[14 + 20 + 4..14 + 20 + 6], &77u16.to_be_bytes());
    }

    #[test]
    fn partial_checksum_gets_addresses_but_not_ports() {
        for l4 in [tcp(40000, 443), udp(5353, 53)] {
            let is_udp = matches!(l4, L4::Udp { .. });
            let p = pkt(ip([172, 17, 0, 2], [192, 0, 2, 1]), l4, &[0x5a; 1000]);
            let rw = Rewrite {
                src: Some((Ipv4Addr::new(198, 51, 100, 1), 61000)),
                dst: Some((Ipv4Addr::new(192, 0, 2, 99), 8443)),
                ..Rewrite::default()
            };
            let mut frame = p.frame();
            let vnet = make_partial(&p, &mut frame, 0);
            let field = usize::from(vnet.csum_start + vnet.csum_offset);
            let before = frame.clone();
            // Ports alone: the partial sum must not move (the device sums the ports itself).
            let ports_only = Rewrite {
                src: Some((addr(p.ip.source), 1)),
                dst: Some((addr(p.ip.destination), 2)),
                ..Rewrite::default()
            };
            let mut f = before.clone();
            apply(&mut f, 14, &vnet, &ports_only, None).unwrap();
            assert_eq!(f[field..field + 2], before[field..field + 2]);

            apply(&mut frame, 14, &vnet, &rw, None).unwrap();
            complete(&mut frame, &vnet, is_udp);
            assert_eq!(frame, p.rewritten(&rw, None).frame());
            verify_checksums(&frame);
        }
    }

    #[test]
    fn gso_super_frame_with_meaningless_total_length() {
        for (l4, gso_type) in [(tcp(40000, 443), GSO_TCPV4), (udp(5353, 4433), GSO_UDP_L4)] {
            let is_udp = gso_type == GSO_UDP_L4;
            let payload: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
            let p = pkt(ip([172, 17, 0, 2], [192, 0, 2, 1]), l4, &payload);
            let rw = Rewrite {
                src_mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
                dst_mac: Some(MacAddr([2, 0, 0, 0, 0, 2])),
                src: Some((Ipv4Addr::new(198, 51, 100, 1), 61000)),
                dst: Some((Ipv4Addr::new(203, 0, 113, 7), 8443)),
            };
            for total_len in [0u16, 40, 1500, 0xffff] {
                let mut frame = p.frame();
                set_total_len(&mut frame, 14, total_len);
                let vnet = make_partial(&p, &mut frame, gso_type);
                let before = frame.clone();
                apply(&mut frame, 14, &vnet, &rw, None).unwrap();
                // The payload is never written (nor, by construction, read).
                assert_eq!(frame[p.l4_off() + 20..], before[p.l4_off() + 20..]);
                assert!(ipv4_header_valid(&frame, 14));
                complete(&mut frame, &vnet, is_udp);
                let mut expected = p.rewritten(&rw, None).frame();
                set_total_len(&mut expected, 14, total_len);
                assert_eq!(frame, expected, "total length {total_len}");
            }
        }
    }

    #[test]
    fn needs_csum_elsewhere_leaves_the_checksum_complete() {
        let p = pkt(ip([10, 1, 1, 1], [10, 2, 2, 2]), tcp(1000, 2000), b"data");
        let rw = Rewrite {
            src: Some((Ipv4Addr::new(10, 9, 9, 9), 3000)),
            ..Rewrite::default()
        };
        let vnet = VnetHeader {
            flags: NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 6, // not TCP's checksum field
            ..VnetHeader::default()
        };
        let mut frame = p.frame();
        apply(&mut frame, 14, &vnet, &rw, None).unwrap();
        assert_eq!(frame, p.rewritten(&rw, None).frame());
    }

    fn port_unreachable(quoted: &Pkt, quote_len: usize) -> Pkt {
        pkt(
            ip([203, 0, 113, 9], quoted.ip.source),
            L4::Error {
                icmp_type: Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
                quote: Box::new(quoted.clone()),
                quote_len,
                half_checksum: None,
            },
            &[],
        )
    }

    #[test]
    fn port_unreachable_from_outside_router_is_translated_back() {
        let container = Ipv4Addr::new(172, 17, 0, 2);
        let public = Ipv4Addr::new(198, 51, 100, 1);
        let dns = Ipv4Addr::new(192, 0, 2, 53);
        // What the container sent, after masquerade: public:40001 -> dns:53.
        let sent = pkt(
            ip(public.octets(), dns.octets()),
            udp(40001, 53),
            b"\x12\x34\x01\x00\x00\x01 query",
        );
        let rw = Rewrite {
            src_mac: Some(MacAddr([0x02, 0x42, 0x5e, 0, 0, 1])),
            dst_mac: Some(MacAddr([0x02, 0x42, 0xac, 0x11, 0, 2])),
            dst: Some((container, 0)),
            src: None,
        };
        let inner = Rewrite {
            src: Some((container, 5353)),
            ..Rewrite::default()
        };
        let full = sent.ip_bytes().len();
        for quote_len in [full, 20 + 8, 20 + 6, 20 + 4] {
            let err = port_unreachable(&sent, quote_len);
            let mut frame = err.frame();
            let l4 = 14 + 20;
            assert_eq!(quote_at(&frame, 14), Some((17, public, 40001, dns, 53)));
            apply(&mut frame, 14, &VnetHeader::default(), &rw, Some(&inner)).unwrap();
            assert_eq!(frame, err.rewritten(&rw, Some(&inner)).frame());
            // Outer ICMP checksum and quoted IPv4 header checksum, checked by etherparse.
            verify_checksums(&frame);
            assert_eq!(&frame[14 + 16..14 + 20], &container.octets());
            assert_eq!(quote_at(&frame, 14), Some((17, container, 5353, dns, 53)));
            let quote = &frame[l4 + 8..];
            if quote_len == full {
                // The whole datagram is quoted: its UDP checksum verifies too.
                let (qip, rest) = Ipv4Header::from_slice(quote).unwrap();
                let (qudp, data) = UdpHeader::from_slice(rest).unwrap();
                assert_eq!(qudp.checksum, qudp.calc_checksum_ipv4(&qip, data).unwrap());
            }
        }
    }

    #[test]
    fn time_exceeded_quoting_tcp_updates_the_quoted_checksum_only_when_present() {
        let sent = pkt(
            ip([198, 51, 100, 1], [192, 0, 2, 80]),
            tcp(40001, 443),
            b"x",
        );
        let inner = Rewrite {
            src: Some((Ipv4Addr::new(172, 17, 0, 2), 33333)),
            ..Rewrite::default()
        };
        let rw = Rewrite {
            dst: Some((Ipv4Addr::new(172, 17, 0, 2), 0)),
            ..Rewrite::default()
        };
        for quote_len in [28, 36, 37, 38, 20 + 32 + 1] {
            let mut err = port_unreachable(&sent, quote_len);
            if let L4::Error { icmp_type, .. } = &mut err.l4 {
                *icmp_type = Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit);
            }
            check_rewrite(&err, &rw, Some(&inner));
        }
    }

    #[test]
    fn bytes_behind_an_icmp_message_are_not_taken_for_quote() {
        // A quote of IP header + 8 bytes of TCP, with 20 bytes of trailing padding in the frame
        // where the quoted TCP checksum would be: the ICMP checksum does not cover them.
        let sent = pkt(ip([198, 51, 100, 1], [192, 0, 2, 80]), tcp(40001, 443), b"");
        let err = port_unreachable(&sent, 28);
        let inner = Rewrite {
            src: Some((Ipv4Addr::new(172, 17, 0, 2), 33333)),
            ..Rewrite::default()
        };
        let mut frame = err.frame();
        frame.extend_from_slice(&[0xa5; 20]);
        apply(
            &mut frame,
            14,
            &VnetHeader::default(),
            &Rewrite::default(),
            Some(&inner),
        )
        .unwrap();
        let mut expected = err.rewritten(&Rewrite::default(), Some(&inner)).frame();
        expected.extend_from_slice(&[0xa5; 20]);
        assert_eq!(frame, expected);
        verify_checksums(&frame);
    }

    #[test]
    fn icmp_error_quote_cases() {
        let echo = pkt(
            ip([198, 51, 100, 1], [192, 0, 2, 1]),
            L4::Echo {
                request: true,
                id: 4000,
                seq: 9,
            },
            b"ping",
        );
        let err = port_unreachable(&echo, 28);
        assert_eq!(
            quote_at(&err.frame(), 14),
            Some((
                1,
                addr(echo.ip.source),
                4000,
                addr(echo.ip.destination),
                4000
            ))
        );
        // The echo itself, a TCP frame, a cut quote: nothing to report.
        assert_eq!(quote_at(&echo.frame(), 14), None);
        let t = pkt(ip([1, 1, 1, 1], [2, 2, 2, 2]), tcp(1, 2), b"");
        assert_eq!(quote_at(&t.frame(), 14), None);
        assert_eq!(quote_at(&port_unreachable(&t, 23).frame(), 14), None);
        assert_eq!(quote_at(&port_unreachable(&t, 19).frame(), 14), None);
        assert!(quote_at(&port_unreachable(&t, 24).frame(), 14).is_some());

        // A quoted non-first UDP fragment has no ports; a quoted GRE packet has none to give.
        let u = pkt(ip([1, 1, 1, 1], [2, 2, 2, 2]), udp(1, 2), &[0; 40]);
        let mut f = port_unreachable(&u, 48).frame();
        let q = 14 + 20 + 8;
        f[q + 6..q + 8].copy_from_slice(&0x0010u16.to_be_bytes());
        assert_eq!(quote_at(&f, 14), None);
        f[q + 6..q + 8].fill(0);
        f[q + 9] = 47;
        assert_eq!(
            quote_at(&f, 14),
            Some((
                47,
                Ipv4Addr::new(1, 1, 1, 1),
                0,
                Ipv4Addr::new(2, 2, 2, 2),
                0
            ))
        );
        // Not an error about IPv4.
        f[q] = 0x65;
        assert_eq!(quote_at(&f, 14), None);
    }

    #[test]
    fn non_first_fragment_gets_addresses_only() {
        let p = pkt(ip([10, 0, 0, 1], [10, 0, 0, 2]), tcp(1111, 2222), &[7; 64]);
        let mut frame = p.frame();
        frame[14 + 6..14 + 8].copy_from_slice(&(0x2000u16 | 185).to_be_bytes()); // MF, offset 1480
        let total_len = u16::from_be_bytes([frame[16], frame[17]]);
        set_total_len(&mut frame, 14, total_len); // fixes the header checksum
        let before = frame.clone();
        let rw = Rewrite {
            src: Some((Ipv4Addr::new(192, 0, 2, 1), 9999)),
            dst: Some((Ipv4Addr::new(192, 0, 2, 2), 8888)),
            ..Rewrite::default()
        };
        apply(&mut frame, 14, &VnetHeader::default(), &rw, None).unwrap();
        assert!(ipv4_header_valid(&frame, 14));
        assert_eq!(&frame[14 + 12..14 + 20], &[192, 0, 2, 1, 192, 0, 2, 2]);
        assert_eq!(frame[..14 + 10], before[..14 + 10]);
        assert_eq!(frame[14 + 20..], before[14 + 20..], "no L4 header to touch");
    }

    #[test]
    fn first_fragment_is_rewritten_like_a_whole_packet() {
        let mut p = pkt(ip([10, 0, 0, 1], [10, 0, 0, 2]), udp(1111, 2222), &[7; 64]);
        p.ip.more_fragments = true;
        p.ip.fragment_offset = IpFragOffset::ZERO;
        let rw = Rewrite {
            src: Some((Ipv4Addr::new(192, 0, 2, 1), 9999)),
            ..Rewrite::default()
        };
        let mut frame = p.frame();
        apply(&mut frame, 14, &VnetHeader::default(), &rw, None).unwrap();
        assert_eq!(frame, p.rewritten(&rw, None).frame());
    }

    #[test]
    fn not_ipv4() {
        let p = pkt(ip([10, 0, 0, 1], [10, 0, 0, 2]), tcp(1, 2), b"");
        let rw = Rewrite {
            src: Some((Ipv4Addr::new(1, 2, 3, 4), 5)),
            ..Rewrite::default()
        };
        let good = p.frame();
        let cases: [(&str, usize, u8); 5] = [
            ("ARP ethertype", 12, 0x08),
            ("IPv6 ethertype", 12, 0x86),
            ("IP version 6", 14, 0x65),
            ("IHL 4", 14, 0x44),
            ("IHL 0", 14, 0x40),
        ];
        for (what, at, value) in cases {
            let mut f = good.clone();
            f[at] = value;
            if what == "ARP ethertype" {
                f[13] = 0x06;
            }
            if what == "IPv6 ethertype" {
                f[13] = 0xdd;
            }
            let before = f.clone();
            let r = apply(&mut f, 14, &VnetHeader::default(), &rw, None);
            assert_eq!(r, Err(RewriteError::NotIpv4), "{what}");
            assert_eq!(f, before);
            assert_eq!(quote_at(&f, 14), None);
        }
        // Behind a VLAN tag the caller says 18; 14 finds the tag's ethertype, not IPv4.
        let mut v = p.clone();
        v.vlan = true;
        let mut f = v.frame();
        let r = apply(&mut f, 14, &VnetHeader::default(), &rw, None);
        assert_eq!(r, Err(RewriteError::NotIpv4));
        apply(&mut f, 18, &VnetHeader::default(), &rw, None).unwrap();
        assert_eq!(f, v.rewritten(&rw, None).frame());
        // No room for an Ethernet header in front.
        let mut f = good.clone();
        assert_eq!(
            apply(&mut f, 0, &VnetHeader::default(), &rw, None),
            Err(RewriteError::NotIpv4)
        );
        assert_eq!(
            RewriteError::NotIpv4.to_string(),
            "not an Ethernet/IPv4 frame"
        );
    }

    #[test]
    fn truncated_frames_are_rejected_and_left_unchanged() {
        let rw = Rewrite {
            src_mac: Some(MacAddr([2, 0, 0, 0, 0, 7])),
            src: Some((Ipv4Addr::new(1, 2, 3, 4), 5)),
            dst: Some((Ipv4Addr::new(6, 7, 8, 9), 10)),
            ..Rewrite::default()
        };
        let mac_only = Rewrite {
            src_mac: rw.src_mac,
            ..Rewrite::default()
        };
        let a = [10, 0, 0, 1];
        let b = [10, 0, 0, 2];
        let echo = L4::Echo {
            request: true,
            id: 1,
            seq: 1,
        };
        let cases = [
            (pkt(ip(a, b), tcp(1, 2), b"abcd"), 14 + 20 + 18),
            (pkt(ip(a, b), udp(1, 2), b"abcd"), 14 + 20 + 8),
            (pkt(ip(a, b), echo, b"abcd"), 14 + 20 + 6),
        ];
        for (p, needed) in cases {
            let full = p.frame();
            for cut in 0..=full.len() {
                let mut f = full[..cut].to_vec();
                let r = apply(&mut f, 14, &VnetHeader::default(), &rw, None);
                if cut < needed {
                    assert_eq!(r, Err(RewriteError::Truncated), "{:?} cut {cut}", p.l4);
                    assert_eq!(f, full[..cut]);
                } else {
                    assert_eq!(r, Ok(()), "{:?} cut {cut}", p.l4);
                }
                // Routing (MACs only) needs nothing beyond the IPv4 header.
                let mut f = full[..cut].to_vec();
                let r = apply(&mut f, 14, &VnetHeader::default(), &mac_only, None);
                assert_eq!(r.is_ok(), cut >= 14 + 20, "MAC-only, cut {cut}");
            }
        }
        // An ICMP error whose quote is cut: the inner rewrite cannot be done.
        let sent = pkt(ip(a, b), udp(1, 2), b"abcd");
        let err = port_unreachable(&sent, 20 + 8);
        let full = err.frame();
        for cut in 0..full.len() {
            let mut f = full[..cut].to_vec();
            let r = apply(&mut f, 14, &VnetHeader::default(), &rw, Some(&rw));
            // The quoted ports are needed; the quoted UDP checksum only if present.
            if cut < 14 + 20 + 8 + 20 + 4 {
                assert!(r.is_err(), "cut {cut}");
                assert_eq!(f, full[..cut]);
            } else {
                assert_eq!(r, Ok(()), "cut {cut}");
            }
        }
        assert_eq!(
            RewriteError::Truncated.to_string(),
            "frame ends before a header field the rewrite needs"
        );
    }

    // ---- properties ----

    fn ipv4_strategy() -> impl Strategy<Value = Ipv4Header> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
            0usize..4,
        )
            .prop_map(|(src, dst, ttl, ident, df, options)| {
                let mut ip = Ipv4Header::new(0, ttl, IpNumber::TCP, src, dst).unwrap();
                ip.identification = ident;
                ip.dont_fragment = df;
                ip.options = match options {
                    0 => [].into(),
                    1 => [0x94, 0x04, 0, 0].into(), // Router Alert
                    2 => [1, 1, 1, 1, 1, 1, 1, 0].into(),
                    _ => [0x94, 0x04, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0].into(),
                };
                ip
            })
    }

    fn tcp_strategy() -> impl Strategy<Value = L4> {
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u8>(),
            any::<bool>(),
        )
            .prop_map(|(sport, dport, seq, flags, options)| L4::Tcp {
                sport,
                dport,
                seq,
                flags,
                options,
            })
    }

    fn udp_strategy(no_checksum: BoxedStrategy<bool>) -> impl Strategy<Value = L4> {
        (any::<u16>(), any::<u16>(), no_checksum).prop_map(|(sport, dport, no_checksum)| L4::Udp {
            sport,
            dport,
            no_checksum,
        })
    }

    fn l4_strategy() -> impl Strategy<Value = L4> {
        prop_oneof![
            tcp_strategy(),
            udp_strategy(any::<bool>().boxed()),
            // seq >= 1: an all-zero echo reply is the one message whose checksum has two
            // representations (0x0000 / 0xffff), which a byte comparison would trip over.
            (any::<bool>(), any::<u16>(), 1..=u16::MAX)
                .prop_map(|(request, id, seq)| { L4::Echo { request, id, seq } }),
        ]
    }

    fn pkt_with(l4: impl Strategy<Value = L4>, max_payload: usize) -> impl Strategy<Value = Pkt> {
        (
            any::<bool>(),
            any::<[u8; 6]>(),
            any::<[u8; 6]>(),
            ipv4_strategy(),
            l4,
            prop::collection::vec(any::<u8>(), 0..max_payload),
        )
            .prop_map(|(vlan, src_mac, dst_mac, ip, l4, payload)| Pkt {
                vlan,
                src_mac,
                dst_mac,
                ip,
                l4,
                payload,
            })
    }

    fn pkt_strategy() -> impl Strategy<Value = Pkt> {
        pkt_with(l4_strategy(), 300)
    }

    fn error_type_strategy() -> impl Strategy<Value = Icmpv4Type> {
        use DestUnreachableHeader as D;
        prop_oneof![
            Just(Icmpv4Type::DestinationUnreachable(D::Port)),
            Just(Icmpv4Type::DestinationUnreachable(D::Host)),
            any::<u16>().prop_map(|next_hop_mtu| Icmpv4Type::DestinationUnreachable(
                D::FragmentationNeeded { next_hop_mtu }
            )),
            Just(Icmpv4Type::TimeExceeded(
                TimeExceededCode::TtlExceededInTransit
            )),
            any::<u8>().prop_map(|p| Icmpv4Type::ParameterProblem(
                ParameterProblemHeader::PointerIndicatesError(p)
            )),
        ]
    }

    /// ICMP errors quoting a random packet, cut anywhere from RFC 792's IP header + 8 bytes to all.
    fn error_strategy() -> impl Strategy<Value = Pkt> {
        (
            pkt_with(l4_strategy(), 100),
            pkt_strategy(),
            error_type_strategy(),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(quoted, outer, icmp_type, cut)| {
                let min = quoted.ip.header_len() + 8;
                let quote_len = min + cut.index(quoted.ip_bytes().len() - min + 1);
                Pkt {
                    l4: L4::Error {
                        icmp_type,
                        quote: Box::new(quoted),
                        quote_len,
                        half_checksum: None,
                    },
                    ..outer
                }
            })
    }

    fn rewrite_strategy() -> impl Strategy<Value = Rewrite> {
        let end = (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| (Ipv4Addr::from(a), p));
        (
            prop::option::of(any::<[u8; 6]>().prop_map(MacAddr)),
            prop::option::of(any::<[u8; 6]>().prop_map(MacAddr)),
            prop::option::of(end.clone()),
            prop::option::of(end),
        )
            .prop_map(|(src_mac, dst_mac, src, dst)| Rewrite {
                src_mac,
                dst_mac,
                src,
                dst,
            })
    }

    fn vnet_strategy() -> impl Strategy<Value = VnetHeader> {
        (
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            prop_oneof![0u16..80, any::<u16>()],
            prop_oneof![0u16..20, any::<u16>()],
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

    proptest! {
        #[test]
        fn rewrite_equals_rebuild(p in pkt_strategy(), rw in rewrite_strategy()) {
            check_rewrite(&p, &rw, None);
        }

        #[test]
        fn icmp_error_rewrite_equals_rebuild(
            p in error_strategy(),
            rw in rewrite_strategy(),
            inner in prop::option::of(rewrite_strategy()),
        ) {
            let L4::Error { quote, .. } = &p.l4 else { unreachable!() };
            prop_assert_eq!(quote_at(&p.frame(), p.l3()), Some(quote.as_quoted()));
            let frame = check_rewrite(&p, &rw, inner.as_ref());
            let expected = quote.rewritten(&inner.unwrap_or_default(), None).as_quoted();
            prop_assert_eq!(quote_at(&frame, p.l3()), Some(expected));
        }

        #[test]
        fn partial_checksum_completes_to_the_full_one(
            p in pkt_with(prop_oneof![tcp_strategy(), udp_strategy(Just(false).boxed())], 3000),
            rw in rewrite_strategy(),
        ) {
            let is_udp = matches!(p.l4, L4::Udp { .. });
            let mut frame = p.frame();
            let vnet = make_partial(&p, &mut frame, 0);
            apply(&mut frame, p.l3(), &vnet, &rw, None).unwrap();
            complete(&mut frame, &vnet, is_udp);
            prop_assert_eq!(frame, p.rewritten(&rw, None).frame());
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            mut bytes in prop::collection::vec(any::<u8>(), 0..200),
            ipv4ish in any::<bool>(),
            l3 in prop_oneof![0usize..40, any::<usize>()],
            vnet in vnet_strategy(),
            rw in rewrite_strategy(),
            inner in prop::option::of(rewrite_strategy()),
        ) {
            if ipv4ish && bytes.len() > 24 {
                bytes[12..14].copy_from_slice(&[0x08, 0x00]);
                bytes[14] = 0x40 | (bytes[14] & 0x0f);
                bytes[23] = [1, 6, 17][usize::from(bytes[23]) % 3];
            }
            let mut frame = bytes.clone();
            if apply(&mut frame, l3, &vnet, &rw, inner.as_ref()).is_err() {
                prop_assert_eq!(&frame, &bytes);
            }
            let _ = quote_at(&bytes, l3);
        }

        #[test]
        fn mutated_frames_never_panic(
            p in prop_oneof![pkt_strategy(), error_strategy()],
            mutations in prop::collection::vec((0usize..120, any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            vnet in vnet_strategy(),
            partial in any::<bool>(),
            rw in rewrite_strategy(),
            inner in prop::option::of(rewrite_strategy()),
        ) {
            let mut bytes = p.frame();
            for (at, value) in mutations {
                if let Some(b) = bytes.get_mut(at) {
                    *b = value;
                }
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            let vnet = if partial {
                VnetHeader { flags: NEEDS_CSUM, csum_start: p.l4_off() as u16, ..vnet }
            } else {
                vnet
            };
            let mut frame = bytes.clone();
            if apply(&mut frame, p.l3(), &vnet, &rw, inner.as_ref()).is_err() {
                prop_assert_eq!(&frame, &bytes);
            }
            let _ = quote_at(&bytes, p.l3());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn gso_partial_rewrite_completes_to_the_full_one(
            p in pkt_with(prop_oneof![tcp_strategy(), udp_strategy(Just(false).boxed())], 1)
                .prop_flat_map(|p| (Just(p), prop::collection::vec(any::<u8>(), 20_000..40_000))),
            rw in rewrite_strategy(),
            total_len in any::<u16>(),
        ) {
            let (mut p, payload) = p;
            p.payload = payload;
            let gso_type = if matches!(p.l4, L4::Udp { .. }) { GSO_UDP_L4 } else { GSO_TCPV4 };
            let mut frame = p.frame();
            set_total_len(&mut frame, p.l3(), total_len);
            let vnet = make_partial(&p, &mut frame, gso_type);
            apply(&mut frame, p.l3(), &vnet, &rw, None).unwrap();
            complete(&mut frame, &vnet, gso_type == GSO_UDP_L4);
            let mut expected = p.rewritten(&rw, None).frame();
            set_total_len(&mut expected, p.l3(), total_len);
            prop_assert_eq!(frame, expected);
        }
    }
}
