//! `L3`: the network and transport fields the packet path reads, parsed once per frame through the
//! views of this module (`Ipv4Packet`, `TcpPacket`, `UdpPacket`, `Icmpv4Packet`, `ArpPacket`).
//!
//! `ingress` stores the result in the `PacketView`; anti-spoofing, isolation, icc, NAT, traces and
//! the rewriter read it from there instead of looking at bytes again. It is plain `Copy` data, a few
//! dozen bytes, with no borrow.
//!
//! It is deliberately lenient where the checked views are strict, because the frames are what the
//! kernel hands over with offloads on:
//! - the IPv4 header is read with `Ipv4Packet::new_checked_header`: a GSO super-frame's total length
//!   is larger than the frame, stale or 0, yet its addresses and ports are as good as any; the L4
//!   header is found at the header length in the frame, not inside `total_len`;
//! - each port is read when its two bytes are there and TCP flags when the header is there up to
//!   them, whole TCP header or not (the policy stages and the trace filter always did so);
//! - non-first fragments have no L4 fields (`ports`, `tcp_flags`, `icmp` are `None`).

use std::net::Ipv4Addr;

use super::arp::ArpPacket;
use super::ethernet::ethertype;
use super::icmp::{self, Icmpv4Packet};
use super::ipv4::{protocol, Ipv4Packet};
use super::tcp::TcpPacket;
use super::udp::UdpPacket;
use super::MacAddr;

/// Bytes at the start of a TCP or UDP header up to the end of the source port, and of the
/// destination port (the same place in both).
const SPORT_END: usize = 2;
const DPORT_END: usize = 4;
/// Bytes of a TCP header up to and including the flags.
const TCP_FLAGS_LEN: usize = 14;

/// What a frame carries behind its Ethernet header, as far as the packet path cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum L3 {
    /// Neither IPv4 nor Ethernet/IPv4 ARP, a malformed header, or not parsed (see `ingress`).
    #[default]
    None,
    Ipv4(Ipv4Summary),
    Arp(ArpSummary),
}

/// The IPv4 header fields and the first L4 fields of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Summary {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// Where the IPv4 header starts in the frame.
    pub l3_offset: u16,
    /// Where the L4 header starts in the frame (the L3 offset plus the IPv4 header length).
    pub l4_offset: u16,
    /// The total length field as received: meaningless in a GSO super-frame, so trusted only for
    /// ICMP (never offloaded).
    pub total_len: u16,
    /// False for a non-first fragment, which has no L4 header.
    pub first_fragment: bool,
    /// TCP or UDP source port in a first (or only) fragment, when its bytes are there.
    pub sport: Option<u16>,
    /// TCP or UDP destination port in a first (or only) fragment, when its bytes are there.
    pub dport: Option<u16>,
    /// TCP flags, when the TCP header is there up to them.
    pub tcp_flags: Option<u8>,
    /// ICMP type and, for echo request/reply, the identifier (0 otherwise), in a first fragment.
    pub icmp: Option<(u8, u16)>,
}

/// An Ethernet/IPv4 ARP packet (any operation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpSummary {
    /// `arp::operation::REQUEST` or `REPLY` (or anything else the sender put there).
    pub op: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

impl L3 {
    /// Parses what follows the Ethernet header of `frame`: `ethertype` is the EtherType behind any
    /// VLAN tag and `l3_offset` where the L3 header starts. Never panics.
    #[inline]
    pub fn parse(frame: &[u8], ethertype: u16, l3_offset: usize) -> L3 {
        let Some(l3) = frame.get(l3_offset..) else {
            return L3::None;
        };
        let parsed = match ethertype {
            ethertype::IPV4 => Ipv4Summary::parse(l3, l3_offset).map(L3::Ipv4),
            ethertype::ARP => ArpSummary::parse(l3).map(L3::Arp),
            _ => None,
        };
        parsed.unwrap_or(L3::None)
    }

    pub fn ipv4(&self) -> Option<Ipv4Summary> {
        match self {
            L3::Ipv4(ip) => Some(*ip),
            _ => None,
        }
    }

    pub fn arp(&self) -> Option<ArpSummary> {
        match self {
            L3::Arp(arp) => Some(*arp),
            _ => None,
        }
    }
}

impl Ipv4Summary {
    /// `b` starts with the IPv4 header at `l3_offset` of the frame and runs to the frame's end.
    fn parse(b: &[u8], l3_offset: usize) -> Option<Ipv4Summary> {
        let ip = Ipv4Packet::new_checked_header(b).ok()?;
        if ip.version() != 4 {
            return None;
        }
        let protocol = ip.protocol();
        let first_fragment = ip.frag_offset() == 0;
        // `new_checked_header` guarantees the header is in `b`.
        let l4 = &b[ip.header_len()..];
        let mut summary = Ipv4Summary {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            protocol,
            l3_offset: u16::try_from(l3_offset).ok()?,
            l4_offset: u16::try_from(l3_offset + ip.header_len()).ok()?,
            total_len: ip.total_len(),
            first_fragment,
            sport: None,
            dport: None,
            tcp_flags: None,
            icmp: None,
        };
        if !first_fragment {
            return Some(summary);
        }
        match protocol {
            protocol::TCP => {
                let tcp = TcpPacket::new_unchecked(l4);
                summary.sport = (l4.len() >= SPORT_END).then(|| tcp.src_port());
                summary.dport = (l4.len() >= DPORT_END).then(|| tcp.dst_port());
                if l4.len() >= TCP_FLAGS_LEN {
                    summary.tcp_flags = Some(tcp.flags());
                }
            }
            protocol::UDP => {
                let udp = UdpPacket::new_unchecked(l4);
                summary.sport = (l4.len() >= SPORT_END).then(|| udp.src_port());
                summary.dport = (l4.len() >= DPORT_END).then(|| udp.dst_port());
            }
            protocol::ICMP => {
                summary.icmp = Icmpv4Packet::new_checked(l4).ok().map(|m| {
                    let t = m.msg_type();
                    let echo = t == icmp::msg_type::ECHO_REQUEST || t == icmp::msg_type::ECHO_REPLY;
                    (t, if echo { m.echo_ident() } else { 0 })
                });
            }
            _ => {}
        }
        Some(summary)
    }

    /// (source, destination) ports, when both are there (TCP or UDP in a first fragment).
    #[inline]
    pub fn ports(&self) -> Option<(u16, u16)> {
        Some((self.sport?, self.dport?))
    }

    /// Where the IPv4 header starts in the frame.
    pub fn l3_offset(&self) -> usize {
        usize::from(self.l3_offset)
    }

    /// Where the L4 header starts in the frame.
    pub fn l4_offset(&self) -> usize {
        usize::from(self.l4_offset)
    }
}

impl ArpSummary {
    fn parse(b: &[u8]) -> Option<ArpSummary> {
        let arp = ArpPacket::new_checked(b).ok()?;
        if !arp.is_ethernet_ipv4() {
            return None;
        }
        Some(ArpSummary {
            op: arp.operation(),
            sender_mac: arp.sender_hw_addr(),
            sender_ip: arp.sender_proto_addr(),
            target_ip: arp.target_proto_addr(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn udp_frame() -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5353, 53);
        let mut f = Vec::new();
        b.write(&mut f, &[1, 2, 3]).unwrap();
        f
    }

    #[test]
    fn test_deconstruct_udp() {
        let f = udp_frame();
        let ip = L3::parse(&f, ethertype::IPV4, 14).ipv4().unwrap();
        assert_eq!(
            ip,
            Ipv4Summary {
                src: Ipv4Addr::new(10, 0, 0, 1),
                dst: Ipv4Addr::new(10, 0, 0, 2),
                protocol: protocol::UDP,
                l3_offset: 14,
                l4_offset: 34,
                total_len: 31,
                first_fragment: true,
                sport: Some(5353),
                dport: Some(53),
                tcp_flags: None,
                icmp: None,
            }
        );
        // The EtherType decides: the same bytes as ARP are not ARP.
        assert_eq!(L3::parse(&f, ethertype::ARP, 14), L3::None);
        assert_eq!(L3::parse(&f, ethertype::IPV6, 14), L3::None);
        assert_eq!(L3::parse(&f, ethertype::IPV4, 100), L3::None);
    }

    #[test]
    fn gso_lengths_are_tolerated() {
        // A TCP super-frame's header as the kernel hands it over: total_len larger than the frame
        // (or 0 with BIG TCP), addresses, ports and flags intact.
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1, 65535)
            .ack(7);
        let mut f = Vec::new();
        b.write(&mut f, &[0; 100]).unwrap();
        for total_len in [60000u16, 0] {
            f[16..18].copy_from_slice(&total_len.to_be_bytes());
            let ip = L3::parse(&f, ethertype::IPV4, 14).ipv4().unwrap();
            assert_eq!(ip.total_len, total_len);
            assert_eq!(ip.ports(), Some((40000, 80)));
            assert_eq!(ip.tcp_flags, Some(crate::wire::tcp::flags::ACK));
            assert_eq!(ip.l4_offset(), 34);
        }
    }

    #[test]
    fn fragments_cuts_and_icmp() {
        let mut f = udp_frame();
        // A non-first fragment has no ports.
        f[14 + 6] = 0x00;
        f[14 + 7] = 0x10;
        let ip = L3::parse(&f, ethertype::IPV4, 14).ipv4().unwrap();
        assert_eq!((ip.ports(), ip.first_fragment), (None, false));
        // A header cut short, or not version 4, is not IPv4 at all.
        assert_eq!(L3::parse(&f[..14 + 19], ethertype::IPV4, 14), L3::None);
        let mut v6 = udp_frame();
        v6[14] = 0x65;
        assert_eq!(L3::parse(&v6, ethertype::IPV4, 14), L3::None);
        // Each port needs its two bytes.
        let f = udp_frame();
        let ip = L3::parse(&f[..14 + 20 + 3], ethertype::IPV4, 14)
            .ipv4()
            .unwrap();
        assert_eq!((ip.sport, ip.dport, ip.ports()), (Some(5353), None, None));

        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(0x1234, 1);
        let mut f = Vec::new();
        b.write(&mut f, b"ping").unwrap();
        let ip = L3::parse(&f, ethertype::IPV4, 14).ipv4().unwrap();
        assert_eq!((ip.icmp, ip.ports()), (Some((8, 0x1234)), None));
    }

    #[test]
    fn test_deconstruct_arp() {
        // ARP request from 02:42:ac:11:00:02 (172.17.0.2) for 172.17.0.3, padded.
        let mut f = vec![0xff; 6];
        f.extend([0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x06]);
        f.extend([0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend([0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 172, 17, 0, 2]);
        f.extend([0, 0, 0, 0, 0, 0, 172, 17, 0, 3]);
        f.resize(60, 0);
        let arp = L3::parse(&f, ethertype::ARP, 14).arp().unwrap();
        assert_eq!(
            arp,
            ArpSummary {
                op: 1,
                sender_mac: MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
                sender_ip: Ipv4Addr::new(172, 17, 0, 2),
                target_ip: Ipv4Addr::new(172, 17, 0, 3),
            }
        );
        // Another hardware type is not Ethernet/IPv4 ARP; a cut body is nothing.
        let mut other = f.clone();
        other[15] = 6;
        assert_eq!(L3::parse(&other, ethertype::ARP, 14), L3::None);
        assert_eq!(L3::parse(&f[..14 + 27], ethertype::ARP, 14), L3::None);
    }

    /// The summary is copied into every `PacketView`: it stays a few words.
    #[test]
    fn stays_small() {
        assert!(
            std::mem::size_of::<L3>() <= 32,
            "{}",
            std::mem::size_of::<L3>()
        );
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..120),
            ethertype in prop_oneof![Just(ethertype::IPV4), Just(ethertype::ARP), any::<u16>()],
            l3_offset in 0usize..24,
        ) {
            let _ = L3::parse(&bytes, ethertype, l3_offset);
        }
    }
}
