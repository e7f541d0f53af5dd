//! VXLAN headers (RFC 7348): the 8 bytes in front of an Ethernet frame carried in UDP.
//!
//! ```text
//!  0                   1                   2                   3
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```
//!
//! A receiver must accept a header whose I flag is set and ignore the reserved bits (RFC 7348
//! section 5: "reserved fields ... MUST be ignored on receipt"), as Linux does; a header without the
//! I flag carries no valid VNI and is refused. What this module builds is what Linux sends: flags
//! `0x08`, everything reserved zero.

use super::bytes;
use super::{Result, WireError};

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// IANA's VXLAN port (RFC 7348 section 5). Linux's default is 8472 (its module parameter
/// `udp_port`); both ends must agree.
pub const UDP_PORT: u16 = 4789;

/// Bytes VXLAN over IPv4 adds to a frame on the underlay: outer IPv4 (20), UDP (8), VXLAN (8) and
/// the inner Ethernet header (14) the underlay's MTU does not count. The overlay's MTU is the
/// underlay's minus this (1450 on a 1500-byte underlay, as Docker's overlay and flannel).
pub const OVERHEAD_V4: u32 = 50;

/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// The I flag: the VNI is valid.
pub const FLAG_VNI: u8 = 0x08;

pub(crate) mod field {
    use core::ops::Range;

    pub const FLAGS: usize = 0;
    /// The VNI in the top 24 bits, the last reserved byte in the low 8.
    pub const VNI: Range<usize> = 4..8;
    pub const PAYLOAD: usize = super::HEADER_LEN;
}

/// A view over a VXLAN header and the frame behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    pub const fn new_unchecked(buffer: T) -> VxlanPacket<T> {
        VxlanPacket { buffer }
    }

    /// A view over a whole header with the I flag set.
    pub fn new_checked(buffer: T) -> Result<VxlanPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        if !packet.vni_valid() {
            return Err(WireError);
        }
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError);
        }
        Ok(())
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The I flag: the VNI field means something.
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_VNI != 0
    }

    pub fn vni(&self) -> u32 {
        bytes::read_u32(self.buffer.as_ref(), field::VNI.start) >> 8
    }

    /// The encapsulated Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Stores `vni` (its low 24 bits) and zeroes the reserved byte after it.
    pub fn set_vni(&mut self, vni: u32) {
        bytes::write_u32(self.buffer.as_mut(), field::VNI.start, (vni & MAX_VNI) << 8);
    }
}

/// A VXLAN header's meaning: the VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanRepr {
    pub vni: u32,
}

impl VxlanRepr {
    pub fn parse<T: AsRef<[u8]>>(packet: &VxlanPacket<T>) -> Result<VxlanRepr> {
        packet.check_len()?;
        if !packet.vni_valid() {
            return Err(WireError);
        }
        Ok(VxlanRepr { vni: packet.vni() })
    }

    /// Writes the header as Linux does: I flag, the VNI, every reserved bit zero.
    pub fn emit(&self, out: &mut [u8; HEADER_LEN]) {
        out.fill(0);
        let mut packet = VxlanPacket::new_unchecked(&mut out[..]);
        packet.set_flags(FLAG_VNI);
        packet.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The UDP payload of a VXLAN datagram Linux sent (`ip link add vx0 type vxlan id 42`): the header
    // for VNI 42, then the start of an ARP request.
    const LINUX_VXLAN: [u8; 22] = [
        0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, // VXLAN: I flag, VNI 42
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x06,
    ];

    #[test]
    fn test_deconstruct() {
        let packet = VxlanPacket::new_checked(&LINUX_VXLAN[..]).unwrap();
        assert!(packet.vni_valid());
        assert_eq!(packet.vni(), 42);
        assert_eq!(packet.payload().len(), 14);
        assert_eq!(&packet.payload()[..6], &[0xff; 6]);
        assert_eq!(VxlanRepr::parse(&packet).unwrap(), VxlanRepr { vni: 42 });
    }

    #[test]
    fn test_construct() {
        let mut out = [0xaa; HEADER_LEN];
        VxlanRepr { vni: 42 }.emit(&mut out);
        assert_eq!(out[..], LINUX_VXLAN[..HEADER_LEN]);
        VxlanRepr { vni: MAX_VNI }.emit(&mut out);
        assert_eq!(out, [0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]);
    }

    #[test]
    fn reserved_bits_are_ignored_and_the_i_flag_is_required() {
        let mut bytes = LINUX_VXLAN;
        bytes[0] = 0xff;
        bytes[1] = 0x12;
        bytes[7] = 0x34;
        assert_eq!(VxlanPacket::new_checked(&bytes[..]).unwrap().vni(), 42);
        bytes[0] = 0xf7;
        assert_eq!(VxlanPacket::new_checked(&bytes[..]), Err(WireError));
        assert_eq!(VxlanPacket::new_checked(&bytes[..7]), Err(WireError));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = VxlanPacket::new_checked(&bytes[..]) {
                let _ = (p.vni(), p.flags(), p.payload().len());
                prop_assert!(VxlanRepr::parse(&p).is_ok());
            }
        }
    }
}
