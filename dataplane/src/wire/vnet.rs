//! `struct virtio_net_hdr` (10 bytes), the offload metadata that AF_PACKET (PACKET_VNET_HDR) and tap
//! (IFF_VNET_HDR) put in front of each frame.
//!
//! It tells whether the frame still needs its L4 checksum (`NEEDS_CSUM`: the pseudo-header sum is already
//! in the checksum field, the rest must be summed from `csum_start`) and whether it is a GSO super-frame
//! that the receiver must cut into `gso_size` segments. Fields are in native byte order (we never set
//! TUNSETVNETLE/BE; on the little-endian hosts we run on, that is little-endian, as virtio 1.0 requires).

/// Length of the header on the wire of an AF_PACKET or tap fd.
pub const VNET_HDR_LEN: usize = 10;

pub mod flags {
    /// The L4 checksum is partial: sum from `csum_start` to the end and store at
    /// `csum_start + csum_offset`.
    pub const NEEDS_CSUM: u8 = 1;
    /// The checksum was validated by the sender (receive side hint only).
    pub const DATA_VALID: u8 = 2;
}

pub mod gso {
    pub const NONE: u8 = 0;
    pub const TCPV4: u8 = 1;
    /// UFO: IP fragmentation of a UDP datagram (deprecated; never produced by current kernels).
    pub const UDP: u8 = 3;
    pub const TCPV6: u8 = 4;
    /// USO: segmentation of a UDP payload into several datagrams.
    pub const UDP_L4: u8 = 5;
    /// Flag: the TCP ECN CWR bit must be kept on the first segment only.
    pub const ECN: u8 = 0x80;
}

/// Parsed `virtio_net_hdr`. `Default` is "nothing to do": a complete frame with a valid checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHeader {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHeader {
    pub fn parse(b: &[u8; VNET_HDR_LEN]) -> VnetHeader {
        VnetHeader {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_ne_bytes([b[2], b[3]]),
            gso_size: u16::from_ne_bytes([b[4], b[5]]),
            csum_start: u16::from_ne_bytes([b[6], b[7]]),
            csum_offset: u16::from_ne_bytes([b[8], b[9]]),
        }
    }

    pub fn emit(&self, b: &mut [u8; VNET_HDR_LEN]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }

    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        self.emit(&mut b);
        b
    }

    pub fn needs_csum(&self) -> bool {
        self.flags & flags::NEEDS_CSUM != 0
    }

    /// The GSO type without the ECN flag.
    pub fn gso_kind(&self) -> u8 {
        self.gso_type & !gso::ECN
    }

    pub fn is_gso(&self) -> bool {
        self.gso_kind() != gso::NONE
    }

    /// True when a port without vnet-header support could not send this frame as it is.
    pub fn needs_software_finish(&self) -> bool {
        self.needs_csum() || self.is_gso()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = VnetHeader {
            flags: flags::NEEDS_CSUM,
            gso_type: gso::TCPV4 | gso::ECN,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        assert_eq!(VnetHeader::parse(&h.to_bytes()), h);
        assert_eq!(h.gso_kind(), gso::TCPV4);
        assert!(h.is_gso() && h.needs_csum() && h.needs_software_finish());
        assert!(!VnetHeader::default().needs_software_finish());
    }

    #[test]
    fn native_layout_matches_kernel_struct() {
        // struct virtio_net_hdr { u8 flags; u8 gso_type; __virtio16 hdr_len, gso_size, csum_start, csum_offset; }
        let h = VnetHeader {
            flags: 1,
            gso_type: 1,
            hdr_len: 0x0102,
            gso_size: 0x0304,
            csum_start: 0x0506,
            csum_offset: 0x0708,
        };
        let b = h.to_bytes();
        assert_eq!(b[0], 1);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 0x0304);
        assert_eq!(u16::from_ne_bytes([b[8], b[9]]), 0x0708);
    }
}
