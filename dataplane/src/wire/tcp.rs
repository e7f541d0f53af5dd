//! TCP segments (RFC 9293).
//!
//! TCP has no length field of its own: the segment is the whole buffer given to the view, so build
//! the view over the IP payload exactly (`Ipv4Packet::payload()`, which already drops link
//! padding), never over the rest of the frame. The checksum helpers rely on that, since the
//! pseudo-header carries the segment length. Options are exposed as raw bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::bytes;
use super::ipv4::protocol;
use super::{checksum, Result, WireError};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

pub(crate) mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    // Data offset in the high nibble; the low nibble is reserved bits (and the old NS/AE bit).
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// A view over a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Requires the whole header, options included; a data offset below 5 words is malformed.
    pub fn check_len(&self) -> Result<()> {
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

    pub fn src_port(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    pub fn dst_port(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    pub fn seq_number(&self) -> u32 {
        bytes::read_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    pub fn ack_number(&self) -> u32 {
        bytes::read_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset * 4), options included.
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) as usize * 4
    }

    /// The eight flag bits; test them with the `flags` constants.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn window_len(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    pub fn checksum(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn urgent_at(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// Raw option bytes (between the fixed header and `header_len`).
    pub fn options(&self) -> &[u8] {
        let end = self.header_end();
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_end()..]
    }

    /// True when the checksum is correct for a segment carried in IPv4 between `src` and `dst`.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let pseudo =
            checksum::pseudo_header_v4(src.octets(), dst.octets(), protocol::TCP, self.l4_len());
        checksum::fold(checksum::sum(pseudo, self.buffer.as_ref())) == 0xffff
    }

    /// True when the checksum is correct for a segment carried in IPv6 between `src` and `dst`.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let pseudo =
            checksum::pseudo_header_v6(src.octets(), dst.octets(), protocol::TCP, self.l4_len());
        checksum::fold(checksum::sum(pseudo, self.buffer.as_ref())) == 0xffff
    }

    // Clamped although `check_len` guarantees it: `set_header_len` can break that guarantee later,
    // and a view must still not panic then. The lower clamp keeps `options()` a valid range.
    fn header_end(&self) -> usize {
        self.header_len()
            .clamp(HEADER_LEN, self.buffer.as_ref().len().max(HEADER_LEN))
    }

    fn l4_len(&self) -> u32 {
        // Wider than any IP packet; saturating only matters for buffers that could not be sent
        // anyway.
        u32::try_from(self.buffer.as_ref().len()).unwrap_or(u32::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, value: u16) {
        self.write(field::SRC_PORT, &value.to_be_bytes());
    }

    pub fn set_dst_port(&mut self, value: u16) {
        self.write(field::DST_PORT, &value.to_be_bytes());
    }

    pub fn set_seq_number(&mut self, value: u32) {
        self.write(field::SEQ_NUM, &value.to_be_bytes());
    }

    pub fn set_ack_number(&mut self, value: u32) {
        self.write(field::ACK_NUM, &value.to_be_bytes());
    }

    /// Sets the data offset to `value / 4`, keeping the reserved bits; `value` should be a multiple
    /// of 4 in 20..=60.
    pub fn set_header_len(&mut self, value: usize) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | (((value / 4) as u8) << 4);
    }

    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    pub fn set_window_len(&mut self, value: u16) {
        self.write(field::WIN_SIZE, &value.to_be_bytes());
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.write(field::CHECKSUM, &value.to_be_bytes());
    }

    pub fn set_urgent_at(&mut self, value: u16) {
        self.write(field::URGENT, &value.to_be_bytes());
    }

    /// Computes and stores the checksum for a segment carried in IPv4 between `src` and `dst`.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let pseudo =
            checksum::pseudo_header_v4(src.octets(), dst.octets(), protocol::TCP, self.l4_len());
        let sum = !checksum::fold(checksum::sum(pseudo, self.buffer.as_ref()));
        self.set_checksum(sum);
    }

    /// Computes and stores the checksum for a segment carried in IPv6 between `src` and `dst`.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let pseudo =
            checksum::pseudo_header_v6(src.octets(), dst.octets(), protocol::TCP, self.l4_len());
        let sum = !checksum::fold(checksum::sum(pseudo, self.buffer.as_ref()));
        self.set_checksum(sum);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_end();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_end();
        &mut self.buffer.as_mut()[start..]
    }

    fn write(&mut self, range: core::ops::Range<usize>, bytes: &[u8]) {
        self.buffer.as_mut()[range].copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::Ipv4Packet;
    use crate::wire::ipv6::Ipv6Packet;
    use proptest::prelude::*;

    // SYN from 172.17.0.2:45678 to 172.17.0.3:80 with Linux's options (MSS 1460, SACK permitted,
    // timestamps, NOP, window scale 7); Ethernet and IPv4 headers included.
    const TCP_SYN: [u8; 74] = [
        0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x3c, 0x3c, 0x2a, 0x40, 0x00, 0x40, 0x06, 0xa6, 0x6a, 0xac, 0x11, 0x00, 0x02,
        0xac, 0x11, 0x00, 0x03, 0xb2, 0x6e, 0x00, 0x50, 0x5e, 0x1d, 0x9c, 0x27, 0x00, 0x00, 0x00,
        0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x9e, 0xa5, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02,
        0x08, 0x0a, 0x8a, 0x3c, 0x1f, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    // The handshake's final ACK: NOP, NOP, timestamps.
    const TCP_ACK: [u8; 66] = [
        0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x34, 0x3c, 0x2b, 0x40, 0x00, 0x40, 0x06, 0xa6, 0x71, 0xac, 0x11, 0x00, 0x02,
        0xac, 0x11, 0x00, 0x03, 0xb2, 0x6e, 0x00, 0x50, 0x5e, 0x1d, 0x9c, 0x28, 0x9c, 0x0e, 0x5a,
        0x11, 0x80, 0x10, 0x01, 0xf6, 0xa5, 0xe7, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x8a, 0x3c,
        0x1f, 0x0c, 0x1b, 0xd4, 0x0e, 0x77,
    ];

    // A bare ACK without options, padded to the 60-byte Ethernet minimum.
    const TCP_ACK_PADDED: [u8; 60] = [
        0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x28, 0x3c, 0x2c, 0x40, 0x00, 0x40, 0x06, 0xa6, 0x7c, 0xac, 0x11, 0x00, 0x02,
        0xac, 0x11, 0x00, 0x03, 0xb2, 0x6e, 0x00, 0x50, 0x5e, 0x1d, 0x9c, 0x28, 0x9c, 0x0e, 0x5a,
        0x11, 0x50, 0x10, 0x01, 0xf6, 0xb2, 0x92, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    // SYN from [2001:db8::1]:51234 to [2001:db8::2]:443.
    const IPV6_TCP_SYN: [u8; 94] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60,
        0x09, 0xe3, 0xf1, 0x00, 0x28, 0x06, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xc8, 0x22, 0x01, 0xbb, 0x1c, 0x2d,
        0x3e, 0x4f, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfd, 0x20, 0x90, 0xc2, 0x00, 0x00, 0x02,
        0x04, 0x05, 0xa0, 0x04, 0x02, 0x08, 0x0a, 0x2f, 0x1e, 0x0b, 0x44, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x07,
    ];

    const SYN_OPTIONS: [u8; 20] = [
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x8a, 0x3c, 0x1f, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    const IP_A: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 2);
    const IP_B: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 3);

    #[test]
    fn test_deconstruct() {
        let packet = TcpPacket::new_checked(&TCP_SYN[34..]).unwrap();
        assert_eq!(packet.src_port(), 45678);
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.seq_number(), 0x5e1d9c27);
        assert_eq!(packet.ack_number(), 0);
        assert_eq!(packet.header_len(), 40);
        assert_eq!(packet.flags(), flags::SYN);
        assert_eq!(packet.window_len(), 64240);
        assert_eq!(packet.checksum(), 0x9ea5);
        assert_eq!(packet.urgent_at(), 0);
        assert_eq!(packet.options(), &SYN_OPTIONS[..]);
        assert!(packet.payload().is_empty());
        assert!(packet.verify_checksum_v4(IP_A, IP_B));
        assert!(!packet.verify_checksum_v4(IP_A, Ipv4Addr::new(172, 17, 0, 4)));

        let packet = TcpPacket::new_checked(&TCP_ACK[34..]).unwrap();
        assert_eq!(packet.flags(), flags::ACK);
        assert_eq!(packet.ack_number(), 0x9c0e5a11);
        assert_eq!(packet.header_len(), 32);
        assert_eq!(packet.window_len(), 502);
        assert!(packet.verify_checksum_v4(IP_A, IP_B));
    }

    #[test]
    fn test_deconstruct_through_ip() {
        // The segment is what the IP view says it is, not what is left of the frame.
        let ip = Ipv4Packet::new_checked(&TCP_ACK_PADDED[14..]).unwrap();
        let packet = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(packet.header_len(), 20);
        assert!(packet.options().is_empty() && packet.payload().is_empty());
        assert!(packet.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
        let with_padding = TcpPacket::new_checked(&TCP_ACK_PADDED[34..]).unwrap();
        assert!(!with_padding.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));

        let ip = Ipv6Packet::new_checked(&IPV6_TCP_SYN[14..]).unwrap();
        let packet = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((packet.src_port(), packet.dst_port()), (51234, 443));
        assert_eq!(packet.flags(), flags::SYN);
        assert!(packet.verify_checksum_v6(ip.src_addr(), ip.dst_addr()));
        assert!(!packet.verify_checksum_v6(ip.dst_addr(), ip.dst_addr()));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 40];
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(45678);
        packet.set_dst_port(80);
        packet.set_seq_number(0x5e1d9c27);
        packet.set_ack_number(0);
        packet.set_header_len(40);
        packet.set_flags(flags::SYN);
        packet.set_window_len(64240);
        packet.set_urgent_at(0);
        packet.options_mut().copy_from_slice(&SYN_OPTIONS);
        // The reserved nibble next to the data offset is not ours to set; start it clean.
        packet.buffer[12] &= 0xf0;
        packet.fill_checksum_v4(IP_A, IP_B);
        assert_eq!(bytes[..], TCP_SYN[34..]);

        let mut bytes = IPV6_TCP_SYN;
        let mut packet = TcpPacket::new_checked(&mut bytes[54..]).unwrap();
        packet.set_checksum(0xdead);
        packet.fill_checksum_v6(
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
        );
        assert_eq!(bytes, IPV6_TCP_SYN);
    }

    #[test]
    fn flags_are_independent_bits() {
        let all = [
            flags::FIN,
            flags::SYN,
            flags::RST,
            flags::PSH,
            flags::ACK,
            flags::URG,
            flags::ECE,
            flags::CWR,
        ];
        assert_eq!(all.iter().fold(0u8, |acc, f| acc | f), 0xff);
        let mut bytes = TCP_SYN;
        let mut packet = TcpPacket::new_checked(&mut bytes[34..]).unwrap();
        packet.set_flags(flags::SYN | flags::ACK | flags::ECE);
        assert_eq!(packet.flags() & flags::SYN, flags::SYN);
        assert_eq!(packet.flags() & flags::FIN, 0);
        assert_eq!(
            packet.header_len(),
            40,
            "flags must not touch the data offset"
        );
    }

    #[test]
    fn truncated_is_rejected() {
        // Cut anywhere inside the header or its options.
        for len in 0..40 {
            assert_eq!(
                TcpPacket::new_checked(&TCP_SYN[34..34 + len]),
                Err(WireError),
                "{len}"
            );
        }
        for offset in 0..5u8 {
            let mut bytes = TCP_SYN;
            bytes[46] = offset << 4;
            assert_eq!(
                TcpPacket::new_checked(&bytes[34..]),
                Err(WireError),
                "data offset {offset}"
            );
        }
        let mut bytes = TCP_SYN;
        bytes[46] = 0xb0; // 44 bytes of header in a 40-byte segment
        assert_eq!(TcpPacket::new_checked(&bytes[34..]), Err(WireError));
    }

    fn etherparse_checksum_v4(segment: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let header = etherparse::TcpHeaderSlice::from_slice(segment).unwrap();
        let payload = &segment[header.slice().len()..];
        header
            .calc_checksum_ipv4_raw(src.octets(), dst.octets(), payload)
            .unwrap()
    }

    fn assert_matches_etherparse(segment: &[u8]) {
        let ours = TcpPacket::new_checked(segment).unwrap();
        let theirs = etherparse::TcpHeaderSlice::from_slice(segment).unwrap();
        assert_eq!(ours.src_port(), theirs.source_port());
        assert_eq!(ours.dst_port(), theirs.destination_port());
        assert_eq!(ours.seq_number(), theirs.sequence_number());
        assert_eq!(ours.ack_number(), theirs.acknowledgment_number());
        assert_eq!(ours.header_len(), theirs.data_offset() as usize * 4);
        assert_eq!(ours.flags() & flags::SYN != 0, theirs.syn());
        assert_eq!(ours.flags() & flags::ACK != 0, theirs.ack());
        assert_eq!(ours.flags() & flags::FIN != 0, theirs.fin());
        assert_eq!(ours.flags() & flags::RST != 0, theirs.rst());
        assert_eq!(ours.flags() & flags::PSH != 0, theirs.psh());
        assert_eq!(ours.flags() & flags::URG != 0, theirs.urg());
        assert_eq!(ours.flags() & flags::ECE != 0, theirs.ece());
        assert_eq!(ours.flags() & flags::CWR != 0, theirs.cwr());
        assert_eq!(ours.window_len(), theirs.window_size());
        assert_eq!(ours.checksum(), theirs.checksum());
        assert_eq!(ours.urgent_at(), theirs.urgent_pointer());
        assert_eq!(ours.options(), theirs.options());
    }

    #[test]
    fn cross_check_etherparse_captures() {
        for frame in [&TCP_SYN[..], &TCP_ACK[..]] {
            assert_matches_etherparse(&frame[34..]);
            assert_eq!(
                etherparse_checksum_v4(&frame[34..], IP_A, IP_B),
                TcpPacket::new_checked(&frame[34..]).unwrap().checksum()
            );
        }
    }

    fn touch_all<T: AsRef<[u8]>>(p: &TcpPacket<T>) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.seq_number(),
            p.ack_number(),
            p.header_len(),
        );
        let _ = (p.flags(), p.window_len(), p.checksum(), p.urgent_at());
        let _ = (p.options().len(), p.payload().len());
        let _ = p.verify_checksum_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST);
        let _ = p.verify_checksum_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = TcpPacket::new_checked(&bytes[..]) {
                touch_all(&p);
                prop_assert_eq!(p.header_len() + p.payload().len(), bytes.len());
            }
        }

        #[test]
        fn setters_keep_accessors_in_bounds(
            mut bytes in proptest::collection::vec(any::<u8>(), 20..80), hl in any::<usize>(),
        ) {
            bytes[12] = 0x50;
            let mut p = TcpPacket::new_checked(&mut bytes[..]).unwrap();
            p.set_header_len(hl);
            touch_all(&p);
            let _ = (p.options_mut().len(), p.payload_mut().len());
            p.fill_checksum_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
        }

        #[test]
        fn checksum_agrees_with_etherparse(
            sport in any::<u16>(), dport in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(),
            win in any::<u16>(), syn in any::<bool>(), fin in any::<bool>(), psh in any::<bool>(),
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut builder =
                etherparse::PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, seq, win).ack(ack);
            if syn { builder = builder.syn(); }
            if fin { builder = builder.fin(); }
            if psh { builder = builder.psh(); }
            let mut bytes = Vec::new();
            builder.write(&mut bytes, &payload).unwrap();
            let segment = &mut bytes[20..];
            assert_matches_etherparse(segment);
            let p = TcpPacket::new_checked(&*segment).unwrap();
            prop_assert!(p.verify_checksum_v4(src.into(), dst.into()));
            prop_assert_eq!(p.payload(), &payload[..]);
            let expected = p.checksum();
            let mut p = TcpPacket::new_checked(segment).unwrap();
            // Flipping the low bit never lands on the other one's-complement zero.
            p.set_checksum(expected ^ 1);
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
                .tcp(1, 2, 3, 4)
                .write(&mut bytes, &payload)
                .unwrap();
            let mut p = TcpPacket::new_checked(&mut bytes[40..]).unwrap();
            let expected = p.checksum();
            prop_assert!(p.verify_checksum_v6(src.into(), dst.into()));
            p.fill_checksum_v6(src.into(), dst.into());
            prop_assert_eq!(p.checksum(), expected);
        }
    }
}
