//! ICMPv4 messages (RFC 792).
//!
//! The fixed part is 8 bytes: type, code, checksum and four bytes whose meaning depends on the type
//! (identifier and sequence number for echo, the next-hop MTU for "fragmentation needed", unused
//! for most errors). The checksum covers the whole message, so the view must be built over the IP
//! payload exactly. Error messages quote the header of the datagram that caused them plus at least
//! its first 8 payload bytes; `embedded()` finds that quote so NAT can rewrite the addresses and
//! ports inside it.

use super::bytes;
use super::ipv4::Ipv4Packet;
use super::{checksum, Result, WireError};

/// Length of the fixed part.
pub const HEADER_LEN: usize = 8;

/// Bytes of the original payload an error message must quote (RFC 792): enough for the ports.
pub const EMBEDDED_PAYLOAD_LEN: usize = 8;

pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// Codes of destination unreachable (RFC 792).
pub mod unreachable {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    pub const PORT: u8 = 3;
}

pub(crate) mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST_OF_HEADER: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
}

/// A view over an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Requires the 8-byte fixed part only: whether an error message quotes enough is
    /// `embedded()`'s business, so a short quote does not make the message itself unreadable.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Bytes 4..8, whatever the type makes of them.
    pub fn rest_of_header(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::REST_OF_HEADER];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Echo request/reply identifier (bytes 4..6).
    pub fn echo_ident(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// Echo request/reply sequence number (bytes 6..8).
    pub fn echo_seq_no(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// The MTU of the next hop in a "fragmentation needed" message (type 3, code 4; RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU.start)
    }

    /// True for the types that quote the offending datagram: destination unreachable, redirect,
    /// time exceeded and parameter problem.
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            msg_type::DEST_UNREACHABLE
                | msg_type::REDIRECT
                | msg_type::TIME_EXCEEDED
                | msg_type::PARAMETER_PROBLEM
        )
    }

    /// Everything after the fixed 8 bytes: the echo data, or an error's quote.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Same as `payload()`, under smoltcp's name.
    pub fn data(&self) -> &[u8] {
        self.payload()
    }

    /// For an error message, the quoted IPv4 header (options included) and the first 8 bytes of the
    /// original payload; anything the sender quoted beyond that is left out. `None` for other
    /// types, or when the quote is not an IPv4 header followed by 8 bytes.
    ///
    /// The quoted header's `total_len` counts bytes that were not quoted: read it with
    /// `Ipv4Packet::new_checked_header`, not `new_checked`.
    pub fn embedded(&self) -> Option<&[u8]> {
        let range = self.embedded_range()?;
        Some(&self.buffer.as_ref()[range])
    }

    /// True when the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }

    fn embedded_range(&self) -> Option<core::ops::Range<usize>> {
        if !self.is_error() {
            return None;
        }
        let quote = Ipv4Packet::new_checked_header(self.payload()).ok()?;
        if quote.version() != 4 {
            return None;
        }
        let end = HEADER_LEN + quote.header_len() + EMBEDDED_PAYLOAD_LEN;
        if end > self.buffer.as_ref().len() {
            return None;
        }
        Some(HEADER_LEN..end)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    pub fn set_rest_of_header(&mut self, value: u32) {
        self.buffer.as_mut()[field::REST_OF_HEADER].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_echo_ident(&mut self, value: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, value);
    }

    pub fn set_echo_seq_no(&mut self, value: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::ECHO_SEQNO.start, value);
    }

    pub fn set_next_hop_mtu(&mut self, value: u16) {
        bytes::write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU.start, value);
    }

    /// Computes and stores the checksum over the whole message; call after the last change, the
    /// embedded quote included.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(sum);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        self.payload_mut()
    }

    pub fn embedded_mut(&mut self) -> Option<&mut [u8]> {
        let range = self.embedded_range()?;
        Some(&mut self.buffer.as_mut()[range])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::{protocol, Ipv4Packet};
    use crate::wire::udp::UdpPacket;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    // `ping 172.17.0.3` from 172.17.0.2 (ident 0x17, seq 1, Linux's 56-byte payload: timeval then
    // 0x10..0x37); Ethernet and IPv4 headers included.
    const ICMP_ECHO_REQUEST: [u8; 98] = [
        0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x54, 0x6b, 0x3e, 0x40, 0x00, 0x40, 0x01, 0x77, 0x43, 0xac, 0x11, 0x00, 0x02,
        0xac, 0x11, 0x00, 0x03, 0x08, 0x00, 0x5b, 0x88, 0x00, 0x17, 0x00, 0x01, 0xc4, 0xa8, 0xee,
        0x65, 0x00, 0x00, 0x00, 0x00, 0x1d, 0x7e, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11,
        0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
        0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
        0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ];

    // 172.17.0.3 answering a DNS query from 172.17.0.2:53124 with "port unreachable", quoting the
    // whole 57-byte original datagram as Linux does.
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
        let packet = Icmpv4Packet::new_checked(&ICMP_ECHO_REQUEST[34..]).unwrap();
        assert_eq!(packet.msg_type(), msg_type::ECHO_REQUEST);
        assert_eq!(packet.msg_code(), 0);
        assert_eq!(packet.checksum(), 0x5b88);
        assert_eq!(packet.echo_ident(), 0x17);
        assert_eq!(packet.echo_seq_no(), 1);
        assert_eq!(packet.rest_of_header(), 0x0017_0001);
        assert_eq!(packet.payload(), &ICMP_ECHO_REQUEST[42..]);
        assert_eq!(packet.data(), packet.payload());
        assert!(packet.verify_checksum());
        assert!(!packet.is_error());
        assert_eq!(packet.embedded(), None);
    }

    #[test]
    fn test_deconstruct_error() {
        let ip = Ipv4Packet::new_checked(&ICMP_PORT_UNREACHABLE[14..]).unwrap();
        assert_eq!(ip.protocol(), protocol::ICMP);
        let packet = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(packet.msg_type(), msg_type::DEST_UNREACHABLE);
        assert_eq!(packet.msg_code(), 3);
        assert_eq!(packet.checksum(), 0x555b);
        assert!(packet.verify_checksum());
        assert!(packet.is_error());

        let embedded = packet.embedded().unwrap();
        assert_eq!(embedded, &ICMP_PORT_UNREACHABLE[42..70]);
        let quoted = Ipv4Packet::new_checked_header(embedded).unwrap();
        assert_eq!((quoted.src_addr(), quoted.dst_addr()), (IP_A, IP_B));
        assert_eq!(quoted.protocol(), protocol::UDP);
        let udp = UdpPacket::new_unchecked(quoted.payload());
        assert_eq!((udp.src_port(), udp.dst_port()), (53124, 53));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 64];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(msg_type::ECHO_REQUEST);
        packet.set_msg_code(0);
        packet.set_echo_ident(0x17);
        packet.set_echo_seq_no(1);
        packet.data_mut().copy_from_slice(&ICMP_ECHO_REQUEST[42..]);
        packet.fill_checksum();
        assert_eq!(bytes[..], ICMP_ECHO_REQUEST[34..]);
    }

    #[test]
    fn echo_reply_from_request() {
        let mut bytes = ICMP_ECHO_REQUEST;
        let mut packet = Icmpv4Packet::new_checked(&mut bytes[34..]).unwrap();
        packet.set_msg_type(msg_type::ECHO_REPLY);
        assert!(!packet.verify_checksum());
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        let expected = etherparse::Icmpv4Header::with_checksum(
            etherparse::Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader { id: 0x17, seq: 1 }),
            &ICMP_ECHO_REQUEST[42..],
        );
        assert_eq!(packet.checksum(), expected.checksum);
        // Only the type word changed: 0x0800 -> 0x0000 raises the checksum by 0x0800.
        assert_eq!(packet.checksum(), 0x5b88 + 0x0800);
    }

    #[test]
    fn rewriting_the_quote() {
        // What NAT does to an error on its way back: rewrite the quoted destination, then fix both
        // checksums.
        let mut bytes = ICMP_PORT_UNREACHABLE;
        let mut packet = Icmpv4Packet::new_checked(&mut bytes[34..]).unwrap();
        let quote = packet.embedded_mut().unwrap();
        let mut quoted = Ipv4Packet::new_checked_header(quote).unwrap();
        quoted.set_dst_addr(Ipv4Addr::new(10, 0, 0, 9));
        quoted.fill_checksum();
        assert!(quoted.verify_checksum());
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        assert_eq!(bytes[58..62], [10, 0, 0, 9]);
        assert_eq!(
            bytes[70..],
            ICMP_PORT_UNREACHABLE[70..],
            "bytes beyond the quote are left alone"
        );
    }

    #[test]
    fn short_or_bogus_quotes_have_no_embedded() {
        let message = &ICMP_PORT_UNREACHABLE[34..];
        // RFC 792 minimum: 20-byte header + 8 bytes.
        assert!(Icmpv4Packet::new_checked(&message[..36])
            .unwrap()
            .embedded()
            .is_some());
        assert_eq!(
            Icmpv4Packet::new_checked(&message[..35])
                .unwrap()
                .embedded(),
            None
        );
        assert_eq!(
            Icmpv4Packet::new_checked(&message[..8]).unwrap().embedded(),
            None
        );

        let mut bytes = ICMP_PORT_UNREACHABLE;
        bytes[42] = 0x44; // IHL 4
        assert_eq!(
            Icmpv4Packet::new_checked(&bytes[34..]).unwrap().embedded(),
            None
        );
        bytes[42] = 0x65; // version 6
        assert_eq!(
            Icmpv4Packet::new_checked(&bytes[34..]).unwrap().embedded(),
            None
        );
        bytes[42] = 0x4f; // IHL 15: 60-byte header + 8 > 57 quoted bytes
        assert_eq!(
            Icmpv4Packet::new_checked(&bytes[34..]).unwrap().embedded(),
            None
        );

        let mut bytes = ICMP_PORT_UNREACHABLE;
        for ty in [
            msg_type::TIME_EXCEEDED,
            msg_type::PARAMETER_PROBLEM,
            msg_type::REDIRECT,
        ] {
            bytes[34] = ty;
            assert!(
                Icmpv4Packet::new_checked(&bytes[34..])
                    .unwrap()
                    .embedded()
                    .is_some(),
                "type {ty}"
            );
        }
        bytes[34] = msg_type::ECHO_REPLY;
        assert_eq!(
            Icmpv4Packet::new_checked(&bytes[34..]).unwrap().embedded(),
            None
        );
    }

    #[test]
    fn next_hop_mtu() {
        let mut bytes = [0u8; 36];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(msg_type::DEST_UNREACHABLE);
        packet.set_msg_code(4);
        packet.set_next_hop_mtu(1400);
        assert_eq!(packet.rest_of_header(), 1400);
        packet.set_rest_of_header(0);
        assert_eq!(packet.next_hop_mtu(), 0);
    }

    #[test]
    fn truncated_is_rejected() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Icmpv4Packet::new_checked(&ICMP_ECHO_REQUEST[34..34 + len]),
                Err(WireError)
            );
        }
        assert!(Icmpv4Packet::new_checked(&ICMP_ECHO_REQUEST[34..42])
            .unwrap()
            .payload()
            .is_empty());
    }

    fn assert_matches_etherparse(message: &[u8]) {
        let ours = Icmpv4Packet::new_checked(message).unwrap();
        let theirs = etherparse::Icmpv4Slice::from_slice(message).unwrap();
        assert_eq!(ours.msg_type(), theirs.type_u8());
        assert_eq!(ours.msg_code(), theirs.code_u8());
        assert_eq!(ours.checksum(), theirs.checksum());
        assert_eq!(ours.rest_of_header().to_be_bytes(), theirs.bytes5to8());
        assert_eq!(ours.payload(), theirs.payload());
        let recomputed = theirs.header().icmp_type.calc_checksum(theirs.payload());
        assert_eq!(ours.verify_checksum(), recomputed == theirs.checksum());
    }

    #[test]
    fn cross_check_etherparse_captures() {
        assert_matches_etherparse(&ICMP_ECHO_REQUEST[34..]);
        assert_matches_etherparse(&ICMP_PORT_UNREACHABLE[34..]);
    }

    fn touch_all<T: AsRef<[u8]>>(p: &Icmpv4Packet<T>) {
        let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.rest_of_header());
        let _ = (
            p.echo_ident(),
            p.echo_seq_no(),
            p.next_hop_mtu(),
            p.is_error(),
        );
        let _ = (p.payload().len(), p.data().len(), p.verify_checksum());
        if let Some(quote) = p.embedded() {
            let ip = Ipv4Packet::new_checked_header(quote).unwrap();
            assert_eq!(quote.len(), ip.header_len() + EMBEDDED_PAYLOAD_LEN);
        }
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = Icmpv4Packet::new_checked(&bytes[..]) {
                touch_all(&p);
            }
        }

        #[test]
        fn any_error_quote_never_panics(
            ty in prop_oneof![Just(3u8), Just(5u8), Just(11u8), Just(12u8)],
            mut bytes in proptest::collection::vec(any::<u8>(), 8..120),
            ver_ihl in 0x40u8..0x50,
        ) {
            bytes[0] = ty;
            if bytes.len() > 8 {
                bytes[8] = ver_ihl;
            }
            let mut p = Icmpv4Packet::new_checked(&mut bytes[..]).unwrap();
            touch_all(&p);
            if let Some(quote) = p.embedded_mut() {
                quote.fill(0);
            }
            p.fill_checksum();
            prop_assert!(p.verify_checksum());
        }

        #[test]
        fn echo_agrees_with_etherparse(
            id in any::<u16>(), seq in any::<u16>(), request in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let builder = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64);
            let builder = if request {
                builder.icmpv4_echo_request(id, seq)
            } else {
                builder.icmpv4_echo_reply(id, seq)
            };
            let mut bytes = Vec::new();
            builder.write(&mut bytes, &payload).unwrap();
            let message = &mut bytes[20..];
            assert_matches_etherparse(message);
            let mut p = Icmpv4Packet::new_checked(message).unwrap();
            let expected_type = if request { msg_type::ECHO_REQUEST } else { msg_type::ECHO_REPLY };
            prop_assert_eq!(p.msg_type(), expected_type);
            prop_assert_eq!((p.echo_ident(), p.echo_seq_no()), (id, seq));
            prop_assert!(p.verify_checksum());
            let expected = p.checksum();
            p.set_checksum(expected ^ 1);
            prop_assert!(!p.verify_checksum());
            p.fill_checksum();
            prop_assert_eq!(p.checksum(), expected);
        }
    }
}
