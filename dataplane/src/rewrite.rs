//! In-place NAT rewrites of Ethernet/IPv4 frames, with checksums updated incrementally.
//!
//! Why incremental (RFC 1624) and never recomputed: a translated frame may be a 64 KiB GSO
//! super-frame, and the cost of NAT must not depend on its size. Why it reads by offset: GSO
//! super-frames carry IPv4 total lengths that do not describe the frame, so only `ihl` is trusted.
//!
//! Offloads decide what the L4 checksum field holds. With `NEEDS_CSUM` (checksum-partial, and
//! every GSO frame) it holds the *uncomplemented* folded pseudo-header sum that the receiver or
//! device completes over the L4 bytes: an address change is applied as a plain ones'-complement
//! sum, and a port change must not touch it (the ports are in the bytes still to be summed); this
//! is Linux's `inet_proto_csum_replace4/2` for `CHECKSUM_PARTIAL`. Otherwise the field holds the
//! final checksum and both address and port changes update it per RFC 1624; a UDP checksum of 0
//! means "none" and stays 0.
//!
//! ICMP echo identifiers play the role of ports. ICMP errors (unreachable, time exceeded,
//! parameter problem) quote the packet they are about; `inner` rewrites that quote so the error
//! makes sense on the other side of the NAT, and the ICMP checksum (which covers the quote)
//! follows every changed word.

use std::net::Ipv4Addr;

use crate::wire::bytes::{read_u16, write_u16};
use crate::wire::checksum::{update_u16, update_u32};
use crate::wire::vnet::VnetHeader;
use crate::MacAddr;

/// What to change. `None` leaves a field as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rewrite {
    pub src_mac: Option<MacAddr>,
    pub dst_mac: Option<MacAddr>,
    /// New source address and port (ICMP echo: identifier).
    pub src: Option<(Ipv4Addr, u16)>,
    /// New destination address and port (ICMP echo: identifier).
    pub dst: Option<(Ipv4Addr, u16)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteError {
    NotIpv4,
    Truncated,
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RewriteError::NotIpv4 => "not an IPv4 packet",
            RewriteError::Truncated => "the headers to rewrite are cut short",
        })
    }
}

impl std::error::Error for RewriteError {}

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// A partial (uncomplemented) checksum field after a 32-bit word of the pseudo-header changed.
fn partial_update_u32(sum: u16, old: u32, new: u32) -> u16 {
    let mut acc = u32::from(sum)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!(old as u16))
        + (new >> 16)
        + (new & 0xffff);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn is_icmp_error(t: u8) -> bool {
    matches!(t, 3 | 11 | 12)
}

/// Rewrites `frame` (IPv4 at `l3_offset`) as `rw` says, and the quote of an ICMP error as `inner`
/// says. Never panics; on error the frame may be partly rewritten and must be dropped.
pub fn apply(
    frame: &mut [u8],
    l3_offset: usize,
    vnet: &VnetHeader,
    rw: &Rewrite,
    inner: Option<&Rewrite>,
) -> Result<(), RewriteError> {
    let l3 = l3_offset;
    if frame.len() < l3 + 20 || l3 < 12 {
        return Err(RewriteError::Truncated);
    }
    if frame[l3] >> 4 != 4 {
        return Err(RewriteError::NotIpv4);
    }
    let ihl = usize::from(frame[l3] & 0x0f) * 4;
    if ihl < 20 || frame.len() < l3 + ihl {
        return Err(RewriteError::Truncated);
    }
    if let Some(m) = rw.dst_mac {
        frame[0..6].copy_from_slice(&m.0);
    }
    if let Some(m) = rw.src_mac {
        frame[6..12].copy_from_slice(&m.0);
    }
    let proto = frame[l3 + 9];
    let first_fragment = read_u16(frame, l3 + 6) & 0x1fff == 0;
    let l4 = l3 + ihl;
    let partial = vnet.needs_csum();

    // Where the L4 checksum is (if this frame has one we must keep right) and how it behaves.
    let l4_check = if !first_fragment {
        None
    } else {
        match proto {
            PROTO_TCP if frame.len() >= l4 + 18 => Some(l4 + 16),
            PROTO_UDP if frame.len() >= l4 + 8 => Some(l4 + 6),
            PROTO_TCP | PROTO_UDP => return Err(RewriteError::Truncated),
            _ => None,
        }
    };
    // A UDP checksum of 0 (full form) means the sender computed none.
    let udp_none =
        proto == PROTO_UDP && !partial && l4_check.is_some_and(|c| read_u16(frame, c) == 0);

    let mut ip_check = read_u16(frame, l3 + 10);
    for (field, new) in [(l3 + 12, rw.src), (l3 + 16, rw.dst)] {
        let Some((ip, _)) = new else { continue };
        let (old, new) = (read_u32(frame, field), u32::from(ip));
        if old == new {
            continue;
        }
        write_u32(frame, field, new);
        ip_check = update_u32(ip_check, old, new);
        if let Some(c) = l4_check {
            if !udp_none {
                let sum = read_u16(frame, c);
                let sum = if partial {
                    partial_update_u32(sum, old, new)
                } else {
                    update_u32(sum, old, new)
                };
                write_u16(frame, c, sum);
            }
        }
    }
    write_u16(frame, l3 + 10, ip_check);
    if !first_fragment {
        return Ok(());
    }

    match proto {
        PROTO_TCP | PROTO_UDP => {
            let c = l4_check.expect("checked above");
            for (field, new) in [(l4, rw.src), (l4 + 2, rw.dst)] {
                let Some((_, port)) = new else { continue };
                let old = read_u16(frame, field);
                if old == port {
                    continue;
                }
                write_u16(frame, field, port);
                // Partial: the ports are in the bytes the receiver still sums.
                if !partial && !udp_none {
                    write_u16(frame, c, update_u16(read_u16(frame, c), old, port));
                }
            }
            if proto == PROTO_UDP && !partial && !udp_none && read_u16(frame, c) == 0 {
                write_u16(frame, c, 0xffff);
            }
        }
        PROTO_ICMP => {
            if frame.len() < l4 + 8 {
                return Err(RewriteError::Truncated);
            }
            let icmp_type = frame[l4];
            if icmp_type == 0 || icmp_type == 8 {
                let id = rw.src.or(rw.dst).map(|(_, p)| p);
                if let Some(id) = id {
                    let old = read_u16(frame, l4 + 4);
                    if old != id {
                        write_u16(frame, l4 + 4, id);
                        let c = update_u16(read_u16(frame, l4 + 2), old, id);
                        write_u16(frame, l4 + 2, c);
                    }
                }
            } else if is_icmp_error(icmp_type) {
                if let Some(inner) = inner {
                    rewrite_quote(frame, l4, inner)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Rewrites the packet quoted by the ICMP error at `l4` and keeps the ICMP checksum right.
fn rewrite_quote(frame: &mut [u8], l4: usize, rw: &Rewrite) -> Result<(), RewriteError> {
    let q = l4 + 8;
    if frame.len() < q + 20 || frame[q] >> 4 != 4 {
        return Err(RewriteError::Truncated);
    }
    let qihl = usize::from(frame[q] & 0x0f) * 4;
    if qihl < 20 || frame.len() < q + qihl {
        return Err(RewriteError::Truncated);
    }
    let qproto = frame[q + 9];
    let ql4 = q + qihl;
    let mut icmp_check = read_u16(frame, l4 + 2);
    // The quoted L4 checksum, when the quote is long enough to hold it.
    let q_check = match qproto {
        PROTO_UDP if frame.len() >= ql4 + 8 => Some(ql4 + 6),
        PROTO_TCP if frame.len() >= ql4 + 18 => Some(ql4 + 16),
        _ => None,
    };
    let q_udp_none = qproto == PROTO_UDP && q_check.is_some_and(|c| read_u16(frame, c) == 0);
    let set16 = |frame: &mut [u8], at: usize, new: u16, icmp_check: &mut u16| {
        let old = read_u16(frame, at);
        if old != new {
            write_u16(frame, at, new);
            *icmp_check = update_u16(*icmp_check, old, new);
        }
    };
    let mut q_ip_check = read_u16(frame, q + 10);
    for (field, new) in [(q + 12, rw.src), (q + 16, rw.dst)] {
        let Some((ip, _)) = new else { continue };
        let (old, new) = (read_u32(frame, field), u32::from(ip));
        if old == new {
            continue;
        }
        write_u32(frame, field, new);
        icmp_check = update_u32(icmp_check, old, new);
        q_ip_check = update_u32(q_ip_check, old, new);
        if let Some(c) = q_check.filter(|_| !q_udp_none) {
            let updated = update_u32(read_u16(frame, c), old, new);
            set16(frame, c, updated, &mut icmp_check);
        }
    }
    set16(frame, q + 10, q_ip_check, &mut icmp_check);
    match qproto {
        PROTO_TCP | PROTO_UDP if frame.len() >= ql4 + 4 => {
            for (field, new) in [(ql4, rw.src), (ql4 + 2, rw.dst)] {
                let Some((_, port)) = new else { continue };
                let old = read_u16(frame, field);
                if old == port {
                    continue;
                }
                set16(frame, field, port, &mut icmp_check);
                if let Some(c) = q_check.filter(|_| !q_udp_none) {
                    let updated = update_u16(read_u16(frame, c), old, port);
                    set16(frame, c, updated, &mut icmp_check);
                }
            }
        }
        PROTO_ICMP if frame.len() >= ql4 + 8 && matches!(frame[ql4], 0 | 8) => {
            if let Some((_, id)) = rw.src.or(rw.dst) {
                let old = read_u16(frame, ql4 + 4);
                if old != id {
                    set16(frame, ql4 + 4, id, &mut icmp_check);
                    let updated = update_u16(read_u16(frame, ql4 + 2), old, id);
                    set16(frame, ql4 + 2, updated, &mut icmp_check);
                }
            }
        }
        _ => {}
    }
    write_u16(frame, l4 + 2, icmp_check);
    Ok(())
}

/// The quoted packet of an ICMP error: (protocol, src, sport, dst, dport), with ports for TCP and
/// UDP and the identifier for a quoted echo. `None` if the frame is no ICMP error with a usable
/// quote.
pub fn icmp_error_quote(frame: &[u8], l3: usize) -> Option<(u8, Ipv4Addr, u16, Ipv4Addr, u16)> {
    if frame.len() < l3 + 20 || frame[l3] >> 4 != 4 || frame[l3 + 9] != PROTO_ICMP {
        return None;
    }
    let ihl = usize::from(frame[l3] & 0x0f) * 4;
    let l4 = l3 + ihl;
    if ihl < 20 || frame.len() < l4 + 8 || !is_icmp_error(frame[l4]) {
        return None;
    }
    let q = l4 + 8;
    if frame.len() < q + 20 || frame[q] >> 4 != 4 {
        return None;
    }
    let qihl = usize::from(frame[q] & 0x0f) * 4;
    let ql4 = q + qihl;
    if qihl < 20 || frame.len() < ql4 + 8 {
        return None;
    }
    let qproto = frame[q + 9];
    let (src, dst) = (
        Ipv4Addr::from(read_u32(frame, q + 12)),
        Ipv4Addr::from(read_u32(frame, q + 16)),
    );
    let (sport, dport) = match qproto {
        PROTO_TCP | PROTO_UDP => (read_u16(frame, ql4), read_u16(frame, ql4 + 2)),
        PROTO_ICMP if matches!(frame[ql4], 0 | 8) => {
            let id = read_u16(frame, ql4 + 4);
            (id, id)
        }
        _ => return None,
    };
    Some((qproto, src, sport, dst, dport))
}

#[cfg(test)]
mod tests;
