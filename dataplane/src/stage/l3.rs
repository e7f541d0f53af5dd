//! The few L3/L4 fields policy stages read, pulled out by offset.
//!
//! Not a stage: a helper for the stages that look past Ethernet (anti-spoof, isolation, icc). It
//! reads by offset with bounds checks instead of through `wire::ipv4` because GSO super-frames
//! carry IPv4 total lengths that a checked view rightly refuses, yet their addresses and ports are
//! as good as any. Non-first fragments have no ports (`ports` is `None`).

use std::net::Ipv4Addr;

use super::PacketView;
use crate::wire::bytes::read_u16;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Summary {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// (source, destination) for TCP and UDP in a first (or only) fragment.
    pub ports: Option<(u16, u16)>,
    /// TCP flags, when the TCP header is there up to them.
    pub tcp_flags: Option<u8>,
    /// ICMP type and, for echo request/reply, the identifier (0 otherwise), in a first fragment.
    pub icmp: Option<(u8, u16)>,
}

pub const PROTO_ICMP: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpSummary {
    /// 1 request, 2 reply.
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

fn addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// `None` unless the frame is IPv4 with a complete header.
pub fn ipv4(view: &PacketView<'_>) -> Option<Ipv4Summary> {
    if view.ethertype != ETHERTYPE_IPV4 {
        return None;
    }
    let b = view.frame;
    let l3 = view.l3_offset;
    if b.len() < l3 + 20 || b[l3] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(b[l3] & 0x0f) * 4;
    if ihl < 20 || b.len() < l3 + ihl {
        return None;
    }
    let protocol = b[l3 + 9];
    let first_fragment = read_u16(b, l3 + 6) & 0x1fff == 0;
    let l4 = l3 + ihl;
    let ports =
        (first_fragment && (protocol == PROTO_TCP || protocol == PROTO_UDP) && b.len() >= l4 + 4)
            .then(|| (read_u16(b, l4), read_u16(b, l4 + 2)));
    let tcp_flags =
        (first_fragment && protocol == PROTO_TCP && b.len() >= l4 + 14).then(|| b[l4 + 13]);
    let icmp = (first_fragment && protocol == PROTO_ICMP && b.len() >= l4 + 8).then(|| {
        let t = b[l4];
        (
            t,
            if t == 0 || t == 8 {
                read_u16(b, l4 + 4)
            } else {
                0
            },
        )
    });
    Some(Ipv4Summary {
        src: addr(b, l3 + 12),
        dst: addr(b, l3 + 16),
        protocol,
        ports,
        tcp_flags,
        icmp,
    })
}

/// `None` unless the frame is an Ethernet/IPv4 ARP packet with a complete body.
pub fn arp(view: &PacketView<'_>) -> Option<ArpSummary> {
    if view.ethertype != ETHERTYPE_ARP {
        return None;
    }
    let b = view.frame;
    let l3 = view.l3_offset;
    // htype 1, ptype 0x0800, hlen 6, plen 4
    if b.len() < l3 + 28 || read_u16(b, l3) != 1 || read_u16(b, l3 + 2) != 0x0800 {
        return None;
    }
    if b[l3 + 4] != 6 || b[l3 + 5] != 4 {
        return None;
    }
    let mut sender_mac = [0u8; 6];
    sender_mac.copy_from_slice(&b[l3 + 8..l3 + 14]);
    Some(ArpSummary {
        op: read_u16(b, l3 + 6),
        sender_mac,
        sender_ip: addr(b, l3 + 14),
        target_ip: addr(b, l3 + 24),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::RxMeta;
    use crate::stage::ingress;
    use crate::{DomainId, PortId};
    use proptest::prelude::*;

    fn view_of(bytes: &[u8]) -> Option<PacketView<'_>> {
        let meta = RxMeta {
            filtered: false,
            len: bytes.len(),
            ..RxMeta::default()
        };
        ingress::run(bytes, &meta, PortId(0), DomainId(0)).ok()
    }

    #[test]
    fn reads_addresses_ports_and_fragments() {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5353, 53);
        let mut f = Vec::new();
        b.write(&mut f, &[1, 2, 3]).unwrap();
        let s = ipv4(&view_of(&f).unwrap()).unwrap();
        assert_eq!(
            (s.src, s.dst, s.protocol, s.ports),
            (
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                PROTO_UDP,
                Some((5353, 53))
            )
        );
        // A non-first fragment has no ports.
        f[14 + 6] = 0x00;
        f[14 + 7] = 0x10;
        assert_eq!(ipv4(&view_of(&f).unwrap()).unwrap().ports, None);
        // Truncated headers are not IPv4 at all.
        assert_eq!(ipv4(&view_of(&f[..14 + 19]).unwrap()), None);
        assert_eq!(arp(&view_of(&f).unwrap()), None);
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 14..120), arp_type in any::<bool>()) {
            bytes[12] = 0x08;
            bytes[13] = if arp_type { 0x06 } else { 0x00 };
            if let Some(v) = view_of(&bytes) {
                let _ = ipv4(&v);
                let _ = arp(&v);
            }
        }
    }
}
