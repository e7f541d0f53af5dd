//! UDP datagrams (RFC 768).
//!
//! The datagram is what the `len` field says, which may be shorter than the buffer (link padding
//! after an IPv4 `total_len` that the caller did not trim); checksums and `payload()` use `len`,
//! never the buffer length. A checksum field of 0 means "not computed" over IPv4, so a computed 0
//! is sent as 0xffff; over IPv6 the checksum is mandatory and 0 never verifies.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::bytes;
use super::ipv4::protocol;
use super::{checksum, Result, WireError};

/// Length of the header.
pub const HEADER_LEN: usize = 8;

pub(crate) mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// A view over a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Requires the header and the whole `len`; a `len` below the header size is malformed.
    pub fn check_len(&self) -> Result<()> {
        let buffer_len = self.buffer.as_ref().len();
        if buffer_len < HEADER_LEN {
            return Err(WireError);
        }
        let len = self.len() as usize;
        if len < HEADER_LEN || len > buffer_len {
            return Err(WireError);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    pub fn dst_port(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The length field: header plus payload, in bytes.
    // A field getter, not a container length, so an `is_empty` would mean nothing.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    pub fn checksum(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The `len - 8` bytes after the header.
    pub fn payload(&self) -> &[u8] {
        let end = self.datagram_end();
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    /// True when the checksum is correct for a datagram carried in IPv4 between `src` and `dst`, or
    /// is 0 (not computed by the sender).
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let pseudo = checksum::pseudo_header_v4(
            src.octets(),
            dst.octets(),
            protocol::UDP,
            self.len() as u32,
        );
        checksum::fold(checksum::sum(pseudo, self.datagram())) == 0xffff
    }

    /// True when the checksum is correct for a datagram carried in IPv6 between `src` and `dst`. A
    /// 0 checksum is invalid over IPv6 (RFC 8200 section 8.1); the RFC 6935 tunnel exception is not
    /// ours.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let pseudo = checksum::pseudo_header_v6(
            src.octets(),
            dst.octets(),
            protocol::UDP,
            self.len() as u32,
        );
        checksum::fold(checksum::sum(pseudo, self.datagram())) == 0xffff
    }

    fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.datagram_end()]
    }

    // Clamped although `check_len` guarantees it: `set_len` can break that guarantee later, and a
    // view must still not panic then. The lower clamp keeps `payload()` a valid range.
    fn datagram_end(&self) -> usize {
        let buffer_len = self.buffer.as_ref().len();
        (self.len() as usize).clamp(HEADER_LEN, buffer_len.max(HEADER_LEN))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, value: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::SRC_PORT.start, value);
    }

    pub fn set_dst_port(&mut self, value: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::DST_PORT.start, value);
    }

    pub fn set_len(&mut self, value: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Computes and stores the checksum for a datagram carried in IPv4 between `src` and `dst`.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let pseudo = checksum::pseudo_header_v4(
            src.octets(),
            dst.octets(),
            protocol::UDP,
            self.len() as u32,
        );
        let sum = !checksum::fold(checksum::sum(pseudo, self.datagram()));
        self.set_checksum(nonzero(sum));
    }

    /// Computes and stores the checksum for a datagram carried in IPv6 between `src` and `dst`.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let pseudo = checksum::pseudo_header_v6(
            src.octets(),
            dst.octets(),
            protocol::UDP,
            self.len() as u32,
        );
        let sum = !checksum::fold(checksum::sum(pseudo, self.datagram()));
        self.set_checksum(nonzero(sum));
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.datagram_end();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

// 0 on the wire would say "no checksum"; 0xffff is the same value in one's complement.
fn nonzero(sum: u16) -> u16 {
    if sum == 0 {
        0xffff
    } else {
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::Ipv4Packet;
    use proptest::prelude::*;

    // DNS query for example.com A from 172.17.0.2:53124 to 8.8.8.8:53; Ethernet and IPv4 included.
    const UDP_DNS_QUERY: [u8; 71] = [
        0x02, 0x42, 0x9b, 0x3c, 0x51, 0x07, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x39, 0x9a, 0x51, 0x40, 0x00, 0x40, 0x11, 0xe4, 0x3f, 0xac, 0x11, 0x00, 0x02,
        0x08, 0x08, 0x08, 0x08, 0xcf, 0x84, 0x00, 0x35, 0x00, 0x25, 0x8a, 0x2e, 0x1a, 0x2b, 0x01,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70,
        0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    const DNS_QUERY: [u8; 29] = [
        0x1a, 0x2b, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78,
        0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    const SRC: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);

    #[test]
    fn test_deconstruct() {
        let packet = UdpPacket::new_checked(&UDP_DNS_QUERY[34..]).unwrap();
        assert_eq!(packet.src_port(), 53124);
        assert_eq!(packet.dst_port(), 53);
        assert_eq!(packet.len(), 37);
        assert_eq!(packet.checksum(), 0x8a2e);
        assert_eq!(packet.payload(), &DNS_QUERY[..]);
        assert!(packet.verify_checksum_v4(SRC, DST));
        assert!(!packet.verify_checksum_v4(SRC, Ipv4Addr::new(8, 8, 4, 4)));

        let ip = Ipv4Packet::new_checked(&UDP_DNS_QUERY[14..]).unwrap();
        let packet = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(packet.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 37];
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(53124);
        packet.set_dst_port(53);
        packet.set_len(37);
        packet.payload_mut().copy_from_slice(&DNS_QUERY);
        packet.fill_checksum_v4(SRC, DST);
        assert_eq!(bytes[..], UDP_DNS_QUERY[34..]);
    }

    #[test]
    fn trailing_bytes_are_not_the_datagram() {
        let mut padded = [0u8; 50];
        padded[..37].copy_from_slice(&UDP_DNS_QUERY[34..]);
        padded[37..].fill(0xee);
        let mut packet = UdpPacket::new_checked(&mut padded[..]).unwrap();
        assert_eq!(packet.payload(), &DNS_QUERY[..]);
        assert!(packet.verify_checksum_v4(SRC, DST));
        packet.fill_checksum_v4(SRC, DST);
        assert_eq!(packet.checksum(), 0x8a2e);
    }

    #[test]
    fn zero_checksum_means_none_over_ipv4_only() {
        let mut bytes = UDP_DNS_QUERY;
        let mut packet = UdpPacket::new_checked(&mut bytes[34..]).unwrap();
        packet.set_checksum(0);
        assert!(packet.verify_checksum_v4(SRC, DST));
        assert!(!packet.verify_checksum_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        let mut bytes = UDP_DNS_QUERY;
        let mut packet = UdpPacket::new_checked(&mut bytes[34..]).unwrap();
        // Choose the DNS ID so that the datagram sums to 0xffff with the checksum field at 0.
        packet.payload_mut()[..2].copy_from_slice(&[0, 0]);
        packet.fill_checksum_v4(SRC, DST);
        let id = packet.checksum();
        packet.payload_mut()[..2].copy_from_slice(&id.to_be_bytes());
        packet.fill_checksum_v4(SRC, DST);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum_v4(SRC, DST));
        assert_eq!(etherparse_checksum_v4(&bytes[34..], SRC, DST), 0xffff);
    }

    #[test]
    fn truncated_is_rejected() {
        for len in 0..37 {
            assert_eq!(
                UdpPacket::new_checked(&UDP_DNS_QUERY[34..34 + len]),
                Err(WireError),
                "{len}"
            );
        }
        for bad_len in [0u16, 7, 38, 0xffff] {
            let mut bytes = UDP_DNS_QUERY;
            bytes[38..40].copy_from_slice(&bad_len.to_be_bytes());
            assert_eq!(
                UdpPacket::new_checked(&bytes[34..]),
                Err(WireError),
                "len {bad_len}"
            );
        }
        let mut header_only = [0u8; 8];
        header_only[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert!(UdpPacket::new_checked(&header_only[..])
            .unwrap()
            .payload()
            .is_empty());
    }

    fn etherparse_checksum_v4(datagram: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let (header, payload) = etherparse::UdpHeader::from_slice(datagram).unwrap();
        header
            .calc_checksum_ipv4_raw(
                src.octets(),
                dst.octets(),
                &payload[..header.length as usize - 8],
            )
            .unwrap()
    }

    #[test]
    fn cross_check_etherparse_capture() {
        let datagram = &UDP_DNS_QUERY[34..];
        let theirs = etherparse::UdpHeaderSlice::from_slice(datagram).unwrap();
        let ours = UdpPacket::new_checked(datagram).unwrap();
        assert_eq!(ours.src_port(), theirs.source_port());
        assert_eq!(ours.dst_port(), theirs.destination_port());
        assert_eq!(ours.len(), theirs.length());
        assert_eq!(ours.checksum(), theirs.checksum());
        assert_eq!(etherparse_checksum_v4(datagram, SRC, DST), ours.checksum());
    }

    fn touch_all<T: AsRef<[u8]>>(p: &UdpPacket<T>) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.checksum(),
            p.payload().len(),
        );
        let _ = p.verify_checksum_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST);
        let _ = p.verify_checksum_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = UdpPacket::new_checked(&bytes[..]) {
                touch_all(&p);
                prop_assert_eq!(p.payload().len() + HEADER_LEN, p.len() as usize);
            }
        }

        #[test]
        fn setters_keep_accessors_in_bounds(
            mut bytes in proptest::collection::vec(any::<u8>(), 8..80), len in any::<u16>(),
        ) {
            bytes[4..6].copy_from_slice(&8u16.to_be_bytes());
            let mut p = UdpPacket::new_checked(&mut bytes[..]).unwrap();
            p.set_len(len);
            touch_all(&p);
            let _ = p.payload_mut().len();
            p.fill_checksum_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
            p.fill_checksum_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        }

        #[test]
        fn checksum_agrees_with_etherparse(
            sport in any::<u16>(), dport in any::<u16>(),
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut bytes = Vec::new();
            etherparse::PacketBuilder::ipv4(src, dst, 64)
                .udp(sport, dport)
                .write(&mut bytes, &payload)
                .unwrap();
            let mut p = UdpPacket::new_checked(&mut bytes[20..]).unwrap();
            prop_assert_eq!((p.src_port(), p.dst_port()), (sport, dport));
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert!(p.verify_checksum_v4(src.into(), dst.into()));
            let expected = p.checksum();
            // Flip the low bit, unless that would give 0 ("no checksum"), which verifies by design.
            p.set_checksum(if expected == 1 { 3 } else { expected ^ 1 });
            prop_assert!(!p.verify_checksum_v4(src.into(), dst.into()));
            p.fill_checksum_v4(src.into(), dst.into());
            prop_assert_eq!(p.checksum(), expected);
        }

        #[test]
        fn checksum_v6_agrees_with_etherparse(
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut bytes = Vec::new();
            etherparse::PacketBuilder::ipv6(src, dst, 64)
                .udp(546, 547)
                .write(&mut bytes, &payload)
                .unwrap();
            let mut p = UdpPacket::new_checked(&mut bytes[40..]).unwrap();
            prop_assert!(p.verify_checksum_v6(src.into(), dst.into()));
            let expected = p.checksum();
            p.fill_checksum_v6(src.into(), dst.into());
            prop_assert_eq!(p.checksum(), expected);
        }
    }
}
