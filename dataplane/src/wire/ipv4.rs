//! IPv4 headers (RFC 791).
//!
//! The view covers the header and the payload up to `total_len`; bytes after `total_len` are link
//! padding (an Ethernet frame is at least 60 bytes) and are neither rejected nor exposed. Options
//! are exposed as raw bytes: the data plane forwards them untouched. A second constructor,
//! `new_checked_header`, asks only for the whole header, for the two places where `total_len`
//! does not describe the buffer: the copy of a header that an ICMP error quotes (`total_len` counts
//! bytes the quote cut off), and a GSO super-frame (`total_len` is stale after GRO, 0 with BIG TCP,
//! and never the frame's length); there the L4 header is found at `header_len()` in the buffer, not
//! through `payload()`.

use std::net::Ipv4Addr;

use super::bytes;
use super::{checksum, Result, WireError};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// IP protocol numbers (the `protocol` field, and IPv6's `next_header`).
pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

pub(crate) mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view over an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Only the header itself must be whole (see the module doc: ICMP quotes and GSO super-frames).
    /// `payload()` then returns what the buffer holds of the payload up to `total_len`.
    pub fn new_checked_header(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_header_len()?;
        Ok(packet)
    }

    /// Requires the whole header (options included) and the whole `total_len`; a `header_len` below
    /// 20 or a `total_len` shorter than the header is malformed.
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        let total = self.total_len() as usize;
        if total < self.header_len() || total > self.buffer.as_ref().len() {
            return Err(WireError);
        }
        Ok(())
    }

    /// The header part of `check_len`: the fixed header and options are in the buffer.
    pub fn check_header_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN || header_len > len {
            return Err(WireError);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize * 4
    }

    /// The whole second byte (the old TOS byte).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.dscp_ecn() & 0x03
    }

    pub fn total_len(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    pub fn ident(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    pub fn dont_frag(&self) -> bool {
        bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FRAG_OFFSET_MASK) * 8
    }

    /// True for any fragment, first included. Only the first (offset 0) carries the L4 header, so a
    /// stage that reads ports must check `frag_offset() == 0` as well.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        self.read_addr(field::SRC_ADDR)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        self.read_addr(field::DST_ADDR)
    }

    /// Raw option bytes (between the fixed header and `header_len`).
    pub fn options(&self) -> &[u8] {
        let end = self.header_end();
        &self.buffer.as_ref()[HEADER_LEN.min(end)..end]
    }

    /// True when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buffer.as_ref()[..self.header_end()]) == 0
    }

    /// The bytes from `header_len` to `total_len`, without link padding.
    pub fn payload(&self) -> &[u8] {
        let (start, end) = self.payload_bounds();
        &self.buffer.as_ref()[start..end]
    }

    // The bounds below are clamped to the buffer although `check_len` already guarantees them: a
    // setter (set_header_len, set_total_len) can break that guarantee afterwards, and a view must
    // still not panic then.
    fn header_end(&self) -> usize {
        self.header_len().min(self.buffer.as_ref().len())
    }

    fn payload_bounds(&self) -> (usize, usize) {
        let end = (self.total_len() as usize).min(self.buffer.as_ref().len());
        (self.header_len().min(end), end)
    }

    fn read_addr(&self, range: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[range];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets IHL to `value / 4`; `value` should be a multiple of 4 in 20..=60.
    pub fn set_header_len(&mut self, value: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) as u8 & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    pub fn set_dscp(&mut self, value: u8) {
        let ecn = self.ecn();
        self.set_dscp_ecn((value << 2) | ecn);
    }

    pub fn set_ecn(&mut self, value: u8) {
        let dscp_ecn = (self.dscp_ecn() & !0x03) | (value & 0x03);
        self.set_dscp_ecn(dscp_ecn);
    }

    pub fn set_total_len(&mut self, value: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    pub fn set_ident(&mut self, value: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::IDENT.start, value);
    }

    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flag(FLAG_DF, value);
    }

    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flag(FLAG_MF, value);
    }

    /// Clears the three flag bits (reserved, DF, MF), keeping the fragment offset.
    pub fn clear_flags(&mut self) {
        let word = bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start);
        bytes::write_u16(
            self.buffer.as_mut(),
            field::FLG_OFF.start,
            word & FRAG_OFFSET_MASK,
        );
    }

    /// Sets the fragment offset from a byte count, which should be a multiple of 8.
    pub fn set_frag_offset(&mut self, value: u16) {
        let word = bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start);
        bytes::write_u16(
            self.buffer.as_mut(),
            field::FLG_OFF.start,
            (word & !FRAG_OFFSET_MASK) | (value / 8),
        );
    }

    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes and stores the header checksum; call after the last header change. For a single
    /// field change on the fast path, `checksum::update_*` avoids re-summing the header.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let end = self.header_end();
        let sum = checksum::checksum(&self.buffer.as_ref()[..end]);
        self.set_checksum(sum);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_end();
        &mut self.buffer.as_mut()[HEADER_LEN.min(end)..end]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = self.payload_bounds();
        &mut self.buffer.as_mut()[start..end]
    }

    fn set_flag(&mut self, flag: u16, value: bool) {
        let word = bytes::read_u16(self.buffer.as_ref(), field::FLG_OFF.start);
        let word = if value { word | flag } else { word & !flag };
        bytes::write_u16(self.buffer.as_mut(), field::FLG_OFF.start, word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // `ping 172.17.0.3` from 172.17.0.2: Ethernet header, then IPv4 (ident 0x6b3e, DF, TTL 64),
    // then ICMP echo request ident 0x17 seq 1 with Linux ping's 56-byte payload.
    const ICMP_ECHO_REQUEST: [u8; 98] = [
        0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x54, 0x6b, 0x3e, 0x40, 0x00, 0x40, 0x01, 0x77, 0x43, 0xac, 0x11, 0x00, 0x02,
        0xac, 0x11, 0x00, 0x03, 0x08, 0x00, 0x5b, 0x88, 0x00, 0x17, 0x00, 0x01, 0xc4, 0xa8, 0xee,
        0x65, 0x00, 0x00, 0x00, 0x00, 0x1d, 0x7e, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11,
        0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
        0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
        0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ];

    // A bare TCP ACK (40-byte IP packet) padded to the 60-byte Ethernet minimum.
    const TCP_ACK_PADDED: [u8; 60] = [
        0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x28, 0x3c, 0x2c, 0x40, 0x00, 0x40, 0x06, 0xa6, 0x7c, 0xac, 0x11, 0x00, 0x02,
        0xac, 0x11, 0x00, 0x03, 0xb2, 0x6e, 0x00, 0x50, 0x5e, 0x1d, 0x9c, 0x28, 0x9c, 0x0e, 0x5a,
        0x11, 0x50, 0x10, 0x01, 0xf6, 0xb2, 0x92, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    // 172.17.0.3 telling 172.17.0.2 that UDP port 53 is unreachable (TOS 0xc0, no DF, as Linux
    // sends it), quoting the original 57-byte DNS query.
    const ICMP_PORT_UNREACHABLE: [u8; 99] = [
        0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 0x08, 0x00, 0x45,
        0xc0, 0x00, 0x55, 0x0f, 0x21, 0x00, 0x00, 0x40, 0x01, 0x12, 0xa0, 0xac, 0x11, 0x00, 0x03,
        0xac, 0x11, 0x00, 0x02, 0x03, 0x03, 0x55, 0x5b, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00,
        0x39, 0x9a, 0x52, 0x40, 0x00, 0x40, 0x11, 0x48, 0x3a, 0xac, 0x11, 0x00, 0x02, 0xac, 0x11,
        0x00, 0x03, 0xcf, 0x84, 0x00, 0x35, 0x00, 0x25, 0xee, 0x29, 0x1a, 0x2b, 0x01, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65,
        0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    const IP_A: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 2);
    const IP_B: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 3);

    #[test]
    fn test_deconstruct() {
        let packet = Ipv4Packet::new_checked(&ICMP_ECHO_REQUEST[14..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp_ecn(), 0);
        assert_eq!(packet.total_len(), 84);
        assert_eq!(packet.ident(), 0x6b3e);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), protocol::ICMP);
        assert_eq!(packet.checksum(), 0x7743);
        assert_eq!(packet.src_addr(), IP_A);
        assert_eq!(packet.dst_addr(), IP_B);
        assert!(packet.options().is_empty());
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload(), &ICMP_ECHO_REQUEST[34..]);

        let packet = Ipv4Packet::new_checked(&ICMP_PORT_UNREACHABLE[14..]).unwrap();
        assert_eq!(packet.dscp_ecn(), 0xc0);
        assert_eq!(packet.dscp(), 48);
        assert_eq!(packet.ecn(), 0);
        assert!(!packet.dont_frag());
        assert_eq!(packet.src_addr(), IP_B);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 84];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_dscp_ecn(0);
        packet.set_total_len(84);
        packet.set_ident(0x6b3e);
        packet.clear_flags();
        packet.set_dont_frag(true);
        packet.set_more_frags(false);
        packet.set_frag_offset(0);
        packet.set_ttl(64);
        packet.set_protocol(protocol::ICMP);
        packet.set_src_addr(IP_A);
        packet.set_dst_addr(IP_B);
        packet.fill_checksum();
        packet
            .payload_mut()
            .copy_from_slice(&ICMP_ECHO_REQUEST[34..]);
        assert_eq!(bytes[..], ICMP_ECHO_REQUEST[14..]);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let packet = Ipv4Packet::new_checked(&TCP_ACK_PADDED[14..]).unwrap();
        assert_eq!(packet.total_len(), 40);
        assert_eq!(packet.payload(), &TCP_ACK_PADDED[34..54]);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn truncated_is_rejected() {
        for len in 0..84 {
            assert_eq!(
                Ipv4Packet::new_checked(&ICMP_ECHO_REQUEST[14..14 + len]),
                Err(WireError),
                "{len}"
            );
        }
    }

    #[test]
    fn bad_lengths_are_rejected() {
        let mutate = |f: &dyn Fn(&mut Ipv4Packet<&mut [u8]>)| {
            let mut bytes = ICMP_ECHO_REQUEST;
            f(&mut Ipv4Packet::new_unchecked(&mut bytes[14..]));
            Ipv4Packet::new_checked(&bytes[14..]).map(|_| ())
        };
        assert_eq!(mutate(&|p| p.set_header_len(16)), Err(WireError));
        assert_eq!(mutate(&|p| p.set_header_len(0)), Err(WireError));
        assert_eq!(mutate(&|p| p.set_total_len(19)), Err(WireError));
        assert_eq!(mutate(&|p| p.set_total_len(85)), Err(WireError));
        // IHL 15 (60 bytes) fits in the 84-byte buffer but not under a total_len of 40.
        assert_eq!(mutate(&|p| p.set_header_len(60)), Ok(()));
        assert_eq!(
            mutate(&|p| {
                p.set_header_len(60);
                p.set_total_len(40)
            }),
            Err(WireError)
        );
        // A header that is longer than a short buffer.
        let mut bytes = [0u8; 24];
        bytes.copy_from_slice(&ICMP_ECHO_REQUEST[14..38]);
        bytes[0] = 0x47;
        bytes[2..4].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&bytes[..]), Err(WireError));
        bytes[0] = 0x46;
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.options(), &ICMP_ECHO_REQUEST[34..38]);
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn quoted_header_with_cut_payload() {
        // RFC 792 quoting: header plus the first 8 bytes; total_len still says 57.
        let quoted = &ICMP_PORT_UNREACHABLE[42..42 + 28];
        assert_eq!(Ipv4Packet::new_checked(quoted), Err(WireError));
        let packet = Ipv4Packet::new_checked_header(quoted).unwrap();
        assert_eq!(packet.total_len(), 57);
        assert_eq!(packet.protocol(), protocol::UDP);
        assert_eq!(packet.src_addr(), IP_A);
        assert_eq!(packet.dst_addr(), IP_B);
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload(), &ICMP_PORT_UNREACHABLE[62..70]);
        assert_eq!(
            Ipv4Packet::new_checked_header(&quoted[..19]),
            Err(WireError)
        );
    }

    #[test]
    fn fragment_fields() {
        let mut bytes = ICMP_ECHO_REQUEST;
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[14..]);
        packet.set_dont_frag(false);
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        assert_eq!(
            super::bytes::read_u16(packet.buffer, field::FLG_OFF.start),
            0x2000 | 185
        );
        assert!(packet.more_frags() && !packet.dont_frag() && packet.is_fragment());
        assert_eq!(packet.frag_offset(), 1480);
        packet.set_more_frags(false);
        assert!(packet.is_fragment());
        assert_eq!(packet.frag_offset(), 1480);
        packet.set_ecn(3);
        packet.set_dscp(46);
        assert_eq!(packet.dscp_ecn(), 0xbb);
    }

    #[test]
    fn checksum_catches_corruption() {
        let mut bytes = ICMP_ECHO_REQUEST;
        bytes[22] = 63; // TTL
        let mut packet = Ipv4Packet::new_checked(&mut bytes[14..]).unwrap();
        assert!(!packet.verify_checksum());
        packet.fill_checksum();
        assert!(packet.verify_checksum());
    }

    fn assert_matches_etherparse(bytes: &[u8]) {
        let ours = Ipv4Packet::new_checked(bytes).unwrap();
        let theirs = etherparse::Ipv4HeaderSlice::from_slice(bytes).unwrap();
        assert_eq!(ours.version(), theirs.version());
        assert_eq!(ours.header_len(), theirs.ihl() as usize * 4);
        assert_eq!(ours.dscp(), theirs.dcp().value());
        assert_eq!(ours.ecn(), theirs.ecn().value());
        assert_eq!(ours.total_len(), theirs.total_len());
        assert_eq!(ours.ident(), theirs.identification());
        assert_eq!(ours.dont_frag(), theirs.dont_fragment());
        assert_eq!(ours.more_frags(), theirs.more_fragments());
        assert_eq!(ours.frag_offset(), theirs.fragments_offset().byte_offset());
        assert_eq!(ours.ttl(), theirs.ttl());
        assert_eq!(ours.protocol(), theirs.protocol().0);
        assert_eq!(ours.checksum(), theirs.header_checksum());
        assert_eq!(ours.src_addr(), theirs.source_addr());
        assert_eq!(ours.dst_addr(), theirs.destination_addr());
        assert_eq!(ours.options(), theirs.options());
        assert_eq!(
            ours.verify_checksum(),
            theirs.to_header().calc_header_checksum() == theirs.header_checksum()
        );
    }

    #[test]
    fn cross_check_etherparse_captures() {
        assert_matches_etherparse(&ICMP_ECHO_REQUEST[14..]);
        assert_matches_etherparse(&TCP_ACK_PADDED[14..]);
        assert_matches_etherparse(&ICMP_PORT_UNREACHABLE[14..]);
    }

    fn touch_all<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) {
        let _ = (
            p.version(),
            p.header_len(),
            p.dscp_ecn(),
            p.dscp(),
            p.ecn(),
            p.total_len(),
        );
        let _ = (
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
            p.is_fragment(),
        );
        let _ = (
            p.ttl(),
            p.protocol(),
            p.checksum(),
            p.src_addr(),
            p.dst_addr(),
        );
        let _ = (p.options().len(), p.verify_checksum(), p.payload().len());
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                touch_all(&p);
                prop_assert_eq!(p.options().len() + HEADER_LEN, p.header_len());
                prop_assert_eq!(p.payload().len() + p.header_len(), p.total_len() as usize);
            }
            if let Ok(p) = Ipv4Packet::new_checked_header(&bytes[..]) {
                touch_all(&p);
            }
        }

        #[test]
        fn setters_keep_accessors_in_bounds(
            mut bytes in proptest::collection::vec(any::<u8>(), 20..80),
            hl in any::<usize>(), total in any::<u16>(),
        ) {
            bytes[0] = 0x45;
            bytes[2..4].copy_from_slice(&20u16.to_be_bytes());
            let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
            p.set_header_len(hl);
            p.set_total_len(total);
            touch_all(&p);
            let _ = (p.payload_mut().len(), p.options_mut().len());
            p.fill_checksum();
        }

        #[test]
        fn agrees_with_etherparse(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            options in proptest::collection::vec(any::<u8>(), 0..=10usize).prop_map(|w| {
                let mut v = Vec::new();
                for b in w { v.extend_from_slice(&[b; 4]); }
                v
            }),
            ident in any::<u16>(), ttl in any::<u8>(), proto in any::<u8>(),
            dscp in 0u8..64, ecn in 0u8..4,
            df in any::<bool>(), mf in any::<bool>(), off in 0u16..8192,
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
        ) {
            let proto_number = etherparse::IpNumber(proto);
            let payload_len = payload.len() as u16;
            let mut header =
                etherparse::Ipv4Header::new(payload_len, ttl, proto_number, src, dst).unwrap();
            header.identification = ident;
            header.dscp = etherparse::Ipv4Dscp::try_new(dscp).unwrap();
            header.ecn = etherparse::Ipv4Ecn::try_new(ecn).unwrap();
            header.dont_fragment = df;
            header.more_fragments = mf;
            header.fragment_offset = etherparse::IpFragOffset::try_new(off).unwrap();
            header.options = etherparse::Ipv4Options::try_from(&options[..]).unwrap();
            header.total_len = (header.header_len() + payload.len()) as u16;
            header.header_checksum = header.calc_header_checksum();
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            assert_matches_etherparse(&bytes);
            let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(p.payload(), &payload[..]);

            // Building the same header with our setters gives etherparse's bytes, checksum
            // included.
            let mut ours = vec![0u8; bytes.len()];
            let mut q = Ipv4Packet::new_unchecked(&mut ours[..]);
            q.set_version(4);
            q.set_header_len(header.header_len());
            q.set_dscp(dscp);
            q.set_ecn(ecn);
            q.set_total_len(bytes.len() as u16);
            q.set_ident(ident);
            q.set_dont_frag(df);
            q.set_more_frags(mf);
            q.set_frag_offset(off * 8);
            q.set_ttl(ttl);
            q.set_protocol(proto);
            q.set_src_addr(src.into());
            q.set_dst_addr(dst.into());
            q.options_mut().copy_from_slice(&options);
            q.payload_mut().copy_from_slice(&payload);
            q.fill_checksum();
            prop_assert_eq!(ours, bytes);
        }
    }
}
