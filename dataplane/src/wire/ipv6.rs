//! IPv6 fixed headers (RFC 8200).
//!
//! Only the 40-byte fixed header is interpreted. Extension headers are not walked: `next_header()`
//! is the raw field and `payload()` starts right after the fixed header, so when `next_header`
//! names an extension header the payload begins with it. A `payload_len` of 0 reads as an empty
//! payload; a jumbogram (RFC 2675, or a Linux BIG TCP GSO frame over 64 KiB) must be sized from
//! elsewhere, such as the vnet header. Bytes after `payload_len` are link padding and are not
//! exposed.

use std::net::Ipv6Addr;

use super::{Result, WireError};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

pub(crate) mod field {
    use core::ops::Range;

    // Version (4 bits), traffic class (8 bits) and flow label (20 bits) share the first word.
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// A view over an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Requires the fixed header and the `payload_len` bytes after it.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || self.total_len() > len {
            return Err(WireError);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    pub fn flow_label(&self) -> u32 {
        self.first_word() & FLOW_LABEL_MASK
    }

    pub fn payload_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Fixed header plus `payload_len`: where the packet ends in the buffer.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }

    /// The protocol number of what follows the fixed header (an extension header or the upper
    /// layer).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        self.read_addr(field::SRC_ADDR)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        self.read_addr(field::DST_ADDR)
    }

    /// The `payload_len` bytes after the fixed header, extension headers included.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.payload_end()]
    }

    // Clamped although `check_len` guarantees it: `set_payload_len` can break that guarantee later,
    // and a view must still not panic then.
    fn payload_end(&self) -> usize {
        self.total_len().min(self.buffer.as_ref().len())
    }

    fn first_word(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn read_addr(&self, range: core::ops::Range<usize>) -> Ipv6Addr {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[range]);
        Ipv6Addr::from(octets)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[0];
        *b = (*b & 0x0f) | (value << 4);
    }

    pub fn set_traffic_class(&mut self, value: u8) {
        let word = (self.first_word() & 0xf00f_ffff) | ((value as u32) << 20);
        self.set_first_word(word);
    }

    /// Sets the low 20 bits; higher bits of `value` are ignored.
    pub fn set_flow_label(&mut self, value: u32) {
        let word = (self.first_word() & !FLOW_LABEL_MASK) | (value & FLOW_LABEL_MASK);
        self.set_first_word(word);
    }

    pub fn set_payload_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = value;
    }

    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.payload_end();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    fn set_first_word(&mut self, word: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::protocol;
    use proptest::prelude::*;

    // A TCP SYN from [2001:db8::1]:51234 to [2001:db8::2]:443 with flow label 0x9e3f1 and Linux's
    // SYN options, Ethernet header included.
    const IPV6_TCP_SYN: [u8; 94] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60,
        0x09, 0xe3, 0xf1, 0x00, 0x28, 0x06, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xc8, 0x22, 0x01, 0xbb, 0x1c, 0x2d,
        0x3e, 0x4f, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfd, 0x20, 0x90, 0xc2, 0x00, 0x00, 0x02,
        0x04, 0x05, 0xa0, 0x04, 0x02, 0x08, 0x0a, 0x2f, 0x1e, 0x0b, 0x44, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x07,
    ];

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    #[test]
    fn test_deconstruct() {
        let packet = Ipv6Packet::new_checked(&IPV6_TCP_SYN[14..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0);
        assert_eq!(packet.flow_label(), 0x9e3f1);
        assert_eq!(packet.payload_len(), 40);
        assert_eq!(packet.total_len(), 80);
        assert_eq!(packet.next_header(), protocol::TCP);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.src_addr(), SRC);
        assert_eq!(packet.dst_addr(), DST);
        assert_eq!(packet.payload(), &IPV6_TCP_SYN[54..]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 80];
        let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(6);
        packet.set_traffic_class(0);
        packet.set_flow_label(0x9e3f1);
        packet.set_payload_len(40);
        packet.set_next_header(protocol::TCP);
        packet.set_hop_limit(64);
        packet.set_src_addr(SRC);
        packet.set_dst_addr(DST);
        packet.payload_mut().copy_from_slice(&IPV6_TCP_SYN[54..]);
        assert_eq!(bytes[..], IPV6_TCP_SYN[14..]);
    }

    #[test]
    fn traffic_class_and_flow_label_do_not_overlap() {
        let mut bytes = IPV6_TCP_SYN;
        let mut packet = Ipv6Packet::new_unchecked(&mut bytes[14..]);
        packet.set_traffic_class(0xb9); // DSCP 46 (EF), ECN 1
        assert_eq!((packet.version(), packet.dscp(), packet.ecn()), (6, 46, 1));
        assert_eq!(packet.flow_label(), 0x9e3f1);
        packet.set_flow_label(0xfff_ffff);
        assert_eq!(packet.traffic_class(), 0xb9);
        assert_eq!(packet.flow_label(), 0xfffff);
        packet.set_version(6);
        assert_eq!(bytes[14..18], [0x6b, 0x9f, 0xff, 0xff]);
    }

    #[test]
    fn truncated_is_rejected() {
        for len in 0..80 {
            assert_eq!(
                Ipv6Packet::new_checked(&IPV6_TCP_SYN[14..14 + len]),
                Err(WireError),
                "{len}"
            );
        }
        // payload_len larger than what is there.
        let mut bytes = IPV6_TCP_SYN;
        bytes[18..20].copy_from_slice(&41u16.to_be_bytes());
        assert_eq!(Ipv6Packet::new_checked(&bytes[14..]), Err(WireError));
    }

    #[test]
    fn padding_is_not_payload() {
        let mut padded = [0u8; 64];
        padded[..40].copy_from_slice(&IPV6_TCP_SYN[14..54]);
        padded[4..6].copy_from_slice(&8u16.to_be_bytes());
        let packet = Ipv6Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload().len(), 8);
    }

    #[test]
    fn cross_check_etherparse() {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(SRC.octets(), DST.octets(), 17)
            .udp(5353, 5353)
            .write(&mut frame, b"mdns")
            .unwrap();
        for bytes in [&frame[14..], &IPV6_TCP_SYN[14..]] {
            let ours = Ipv6Packet::new_checked(bytes).unwrap();
            let theirs = etherparse::Ipv6HeaderSlice::from_slice(bytes).unwrap();
            assert_eq!(ours.version(), theirs.version());
            assert_eq!(ours.traffic_class(), theirs.traffic_class());
            assert_eq!(ours.flow_label(), theirs.flow_label().value());
            assert_eq!(ours.payload_len(), theirs.payload_length());
            assert_eq!(ours.next_header(), theirs.next_header().0);
            assert_eq!(ours.hop_limit(), theirs.hop_limit());
            assert_eq!(ours.src_addr(), theirs.source_addr());
            assert_eq!(ours.dst_addr(), theirs.destination_addr());
        }
    }

    fn touch_all<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.dscp(),
            p.ecn(),
            p.flow_label(),
        );
        let _ = (
            p.payload_len(),
            p.total_len(),
            p.next_header(),
            p.hop_limit(),
        );
        let _ = (p.src_addr(), p.dst_addr(), p.payload().len());
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = Ipv6Packet::new_checked(&bytes[..]) {
                touch_all(&p);
                prop_assert_eq!(p.payload().len(), p.payload_len() as usize);
            }
        }

        #[test]
        fn setters_keep_accessors_in_bounds(
            mut bytes in proptest::collection::vec(any::<u8>(), 40..80),
            len in any::<u16>(), tc in any::<u8>(), flow in any::<u32>(),
        ) {
            bytes[4..6].copy_from_slice(&0u16.to_be_bytes());
            let mut p = Ipv6Packet::new_checked(&mut bytes[..]).unwrap();
            p.set_payload_len(len);
            p.set_traffic_class(tc);
            p.set_flow_label(flow);
            touch_all(&p);
            let _ = p.payload_mut().len();
            prop_assert_eq!((p.traffic_class(), p.flow_label()), (tc, flow & 0xfffff));
        }

        #[test]
        fn agrees_with_etherparse(
            tc in any::<u8>(), flow in 0u32..0x10_0000, nh in any::<u8>(), hops in any::<u8>(),
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let header = etherparse::Ipv6Header {
                traffic_class: tc,
                flow_label: etherparse::Ipv6FlowLabel::try_new(flow).unwrap(),
                payload_length: payload.len() as u16,
                next_header: etherparse::IpNumber(nh),
                hop_limit: hops,
                source: src,
                destination: dst,
            };
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend_from_slice(&payload);

            let mut ours = vec![0u8; bytes.len()];
            let mut p = Ipv6Packet::new_unchecked(&mut ours[..]);
            p.set_version(6);
            p.set_traffic_class(tc);
            p.set_flow_label(flow);
            p.set_payload_len(payload.len() as u16);
            p.set_next_header(nh);
            p.set_hop_limit(hops);
            p.set_src_addr(src.into());
            p.set_dst_addr(dst.into());
            p.payload_mut().copy_from_slice(&payload);
            prop_assert_eq!(&ours, &bytes);
            let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
