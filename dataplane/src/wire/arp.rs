//! ARP (RFC 826) for IPv4 over Ethernet, the only flavour a switch sees.
//!
//! `check_len` only asks for the 28 bytes of the Ethernet/IPv4 layout; it does not look at the
//! hardware/protocol type and length fields, so a stage can still count or flood an odd ARP packet.
//! Anything that answers or learns from ARP goes through `ArpRepr::parse`, which insists on the
//! Ethernet/IPv4 combination and on a request or reply.

use std::net::Ipv4Addr;

use super::bytes;
use super::ethernet::{self, ethertype, EthernetFrame};
use super::{MacAddr, Result, WireError};

/// Length of an Ethernet/IPv4 ARP packet.
pub const HEADER_LEN: usize = 28;

/// Hardware type for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

pub mod operation {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

mod field {
    use core::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// A view over an ARP packet laid out for Ethernet/IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Longer buffers are fine: ARP in a minimum-size Ethernet frame carries 18 bytes of padding.
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

    pub fn hardware_type(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::HTYPE.start)
    }

    pub fn protocol_type(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::PTYPE.start)
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// True when the four type/length fields describe Ethernet/IPv4, the layout the address
    /// accessors assume.
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == ethertype::IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }

    pub fn operation(&self) -> u16 {
        bytes::read_u16(self.buffer.as_ref(), field::OPER.start)
    }

    pub fn sender_hw_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    pub fn sender_proto_addr(&self) -> Ipv4Addr {
        self.read_ipv4(field::SPA)
    }

    pub fn target_hw_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    pub fn target_proto_addr(&self) -> Ipv4Addr {
        self.read_ipv4(field::TPA)
    }

    fn read_ipv4(&self, range: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[range];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    pub fn set_hardware_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::HTYPE].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_protocol_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::PTYPE].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    pub fn set_operation(&mut self, value: u16) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_sender_hw_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(addr.as_bytes());
    }

    pub fn set_sender_proto_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    pub fn set_target_hw_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(addr.as_bytes());
    }

    pub fn set_target_proto_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }
}

/// The meaning of an Ethernet/IPv4 ARP request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// `operation::REQUEST` or `operation::REPLY`.
    pub operation: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Fails for other hardware/protocol combinations and for operations other than request and
    /// reply (RARP, InARP): nothing in the switch may answer or learn from those.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        if !packet.is_ethernet_ipv4() {
            return Err(WireError);
        }
        let operation = packet.operation();
        if operation != operation::REQUEST && operation != operation::REPLY {
            return Err(WireError);
        }
        Ok(ArpRepr {
            operation,
            sender_mac: packet.sender_hw_addr(),
            sender_ip: packet.sender_proto_addr(),
            target_mac: packet.target_hw_addr(),
            target_ip: packet.target_proto_addr(),
        })
    }

    /// Bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes all 28 bytes, type and length fields included, so the buffer may hold anything
    /// before.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(ethertype::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_sender_hw_addr(self.sender_mac);
        packet.set_sender_proto_addr(self.sender_ip);
        packet.set_target_hw_addr(self.target_mac);
        packet.set_target_proto_addr(self.target_ip);
    }
}

/// Length of `request_frame`'s frame: the Ethernet minimum (without FCS).
pub const REQUEST_FRAME_LEN: usize = 60;

/// A broadcast Ethernet frame carrying the ARP request of `sender_ip` at `sender_mac` for
/// `target_ip`, padded to the Ethernet minimum. A gratuitous ARP asks for its own address.
pub fn request_frame(
    sender_mac: MacAddr,
    sender_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
) -> [u8; REQUEST_FRAME_LEN] {
    let mut f = [0u8; REQUEST_FRAME_LEN];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(MacAddr::BROADCAST);
    eth.set_src_addr(sender_mac);
    eth.set_ethertype(ethertype::ARP);
    ArpRepr {
        operation: operation::REQUEST,
        sender_mac,
        sender_ip,
        target_mac: MacAddr::ZERO,
        target_ip,
    }
    .emit(&mut ArpPacket::new_unchecked(
        &mut f[ethernet::HEADER_LEN..],
    ));
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ARP request from 02:42:ac:11:00:02 (172.17.0.2) for 172.17.0.3, Ethernet header included.
    const ARP_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0xac, 0x11,
        0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xac, 0x11, 0x00, 0x03,
    ];

    // The reply from 02:42:ac:11:00:03.
    const ARP_REPLY: [u8; 42] = [
        0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 0xac, 0x11,
        0x00, 0x03, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0xac, 0x11, 0x00, 0x02,
    ];

    const MAC_A: MacAddr = MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
    const MAC_B: MacAddr = MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x03]);
    const IP_A: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 2);
    const IP_B: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 3);

    fn request_repr() -> ArpRepr {
        ArpRepr {
            operation: operation::REQUEST,
            sender_mac: MAC_A,
            sender_ip: IP_A,
            target_mac: MacAddr::ZERO,
            target_ip: IP_B,
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = ArpPacket::new_checked(&ARP_REQUEST[14..]).unwrap();
        assert_eq!(packet.hardware_type(), 1);
        assert_eq!(packet.protocol_type(), 0x0800);
        assert_eq!(packet.hardware_len(), 6);
        assert_eq!(packet.protocol_len(), 4);
        assert!(packet.is_ethernet_ipv4());
        assert_eq!(packet.operation(), operation::REQUEST);
        assert_eq!(packet.sender_hw_addr(), MAC_A);
        assert_eq!(packet.sender_proto_addr(), IP_A);
        assert_eq!(packet.target_hw_addr(), MacAddr::ZERO);
        assert_eq!(packet.target_proto_addr(), IP_B);
        assert_eq!(ArpRepr::parse(&packet), Ok(request_repr()));

        let packet = ArpPacket::new_checked(&ARP_REPLY[14..]).unwrap();
        assert_eq!(packet.operation(), operation::REPLY);
        assert_eq!(packet.sender_hw_addr(), MAC_B);
        assert_eq!(packet.sender_proto_addr(), IP_B);
        assert_eq!(packet.target_hw_addr(), MAC_A);
        assert_eq!(packet.target_proto_addr(), IP_A);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 28];
        let mut packet = ArpPacket::new_unchecked(&mut bytes[..]);
        packet.set_hardware_type(1);
        packet.set_protocol_type(0x0800);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(operation::REPLY);
        packet.set_sender_hw_addr(MAC_B);
        packet.set_sender_proto_addr(IP_B);
        packet.set_target_hw_addr(MAC_A);
        packet.set_target_proto_addr(IP_A);
        assert_eq!(bytes[..], ARP_REPLY[14..]);
    }

    #[test]
    fn repr_emit_matches_capture() {
        let repr = request_repr();
        let mut bytes = [0xa5u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..], ARP_REQUEST[14..]);
        assert_eq!(repr.buffer_len(), bytes.len());
    }

    #[test]
    fn padded_packet_is_accepted() {
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&ARP_REQUEST[14..]);
        let packet = ArpPacket::new_checked(&padded[..]).unwrap();
        assert_eq!(ArpRepr::parse(&packet), Ok(request_repr()));
    }

    #[test]
    fn truncated_is_rejected() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                ArpPacket::new_checked(&ARP_REQUEST[14..14 + len]),
                Err(WireError)
            );
        }
    }

    #[test]
    fn repr_rejects_other_layouts_and_operations() {
        let variants: [(usize, u8); 5] = [(1, 6), (2, 0x86), (4, 8), (5, 16), (7, 3)];
        for (at, value) in variants {
            let mut bytes = ARP_REQUEST;
            bytes[14 + at] = value;
            let packet = ArpPacket::new_checked(&bytes[14..]).unwrap();
            assert_eq!(
                ArpRepr::parse(&packet),
                Err(WireError),
                "byte {at} = {value}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(packet) = ArpPacket::new_checked(&bytes[..]) {
                let _ = (packet.hardware_type(), packet.protocol_type(), packet.hardware_len());
                let _ = (packet.protocol_len(), packet.is_ethernet_ipv4(), packet.operation());
                let _ = (packet.sender_hw_addr(), packet.sender_proto_addr());
                let _ = (packet.target_hw_addr(), packet.target_proto_addr());
                if let Ok(repr) = ArpRepr::parse(&packet) {
                    let mut out = [0u8; HEADER_LEN];
                    repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
                    prop_assert_eq!(&out[..], &bytes[..HEADER_LEN]);
                }
            }
        }

        #[test]
        fn repr_round_trips(
            reply in any::<bool>(),
            smac in any::<[u8; 6]>(), sip in any::<[u8; 4]>(),
            tmac in any::<[u8; 6]>(), tip in any::<[u8; 4]>(),
        ) {
            let repr = ArpRepr {
                operation: if reply { operation::REPLY } else { operation::REQUEST },
                sender_mac: MacAddr(smac),
                sender_ip: sip.into(),
                target_mac: MacAddr(tmac),
                target_ip: tip.into(),
            };
            let mut bytes = [0u8; HEADER_LEN];
            repr.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
            prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&bytes[..]).unwrap()), Ok(repr));
        }
    }
}
