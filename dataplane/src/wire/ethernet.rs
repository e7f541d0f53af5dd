//! Ethernet II frames, with at most one 802.1Q tag.
//!
//! The view exposes the outer header as it is on the wire (`ethertype()` is the field at bytes
//! 12..14) and, for the common case of a single C-tag, the tag and the ethertype behind it, so a
//! stage can find the L3 header with `l3_offset()` without caring whether the frame was tagged. An
//! 802.1ad (QinQ) frame is deliberately not looked into: its outer ethertype is `QINQ`, and
//! `l3_offset()` stays 14, so stages treat it as opaque non-IP traffic.
//! `push_vlan_tag`/`pop_vlan_tag` tag and untag in place, using the headroom the caller left at the
//! end of the buffer.

use super::{MacAddr, Result, WireError};

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of one 802.1Q tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;
/// Length of an Ethernet II header carrying one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = HEADER_LEN + VLAN_TAG_LEN;

pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (S-tag).
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

pub(crate) mod field {
    use core::ops::Range;

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;
    // Only meaningful when ETHERTYPE holds the 802.1Q TPID.
    pub const VLAN_TCI: Range<usize> = 14..16;
    pub const INNER_ETHERTYPE: Range<usize> = 16..18;
}

/// The tag control information of an 802.1Q tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Priority code point (802.1p), 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 0..=4095 (0 means priority-tagged only, 4095 is reserved).
    pub vid: u16,
}

impl VlanTag {
    pub fn from_tci(tci: u16) -> VlanTag {
        VlanTag {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }

    /// The TCI as it goes on the wire. Out-of-range `pcp`/`vid` bits are masked off rather than
    /// allowed to spill into the neighbouring fields; `push_vlan_tag` rejects them instead.
    pub fn to_tci(&self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }

    /// True when every field fits its bit width.
    pub fn is_valid(&self) -> bool {
        self.pcp <= 7 && self.vid <= 0x0fff
    }
}

/// A view over an Ethernet II frame (without FCS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Requires the 14-byte header, and the whole 4-byte tag when the frame says it is tagged, so
    /// that a frame cut inside its tag is malformed rather than silently untagged.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError);
        }
        if self.ethertype() == ethertype::VLAN && len < VLAN_HEADER_LEN {
            return Err(WireError);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::DST])
    }

    pub fn src_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SRC])
    }

    /// The outer ethertype (the TPID for a tagged frame).
    pub fn ethertype(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The 802.1Q tag, when the outer ethertype is `VLAN`.
    pub fn vlan_tag(&self) -> Option<VlanTag> {
        self.tci().map(VlanTag::from_tci)
    }

    /// The ethertype of the L3 payload: the one behind the tag when tagged, the outer one
    /// otherwise.
    pub fn inner_ethertype(&self) -> u16 {
        match self.tagged_field(field::INNER_ETHERTYPE) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]),
            None => self.ethertype(),
        }
    }

    /// Where the L3 header starts: 18 behind a tag, 14 otherwise.
    pub fn l3_offset(&self) -> usize {
        if self.is_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Everything after the outer ethertype (starts with the tag's TCI when tagged).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }

    /// Everything after the header and tag: what `inner_ethertype()` describes.
    pub fn l3_payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.l3_offset()..]
    }

    // A setter can turn a 14-byte untagged frame into one that claims a tag; the length test keeps
    // the tag readers in bounds even then (such a frame reads as untagged).
    fn is_tagged(&self) -> bool {
        self.ethertype() == ethertype::VLAN && self.buffer.as_ref().len() >= VLAN_HEADER_LEN
    }

    fn tagged_field(&self, range: core::ops::Range<usize>) -> Option<&[u8]> {
        if self.is_tagged() {
            Some(&self.buffer.as_ref()[range])
        } else {
            None
        }
    }

    fn tci(&self) -> Option<u16> {
        self.tagged_field(field::VLAN_TCI)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(addr.as_bytes());
    }

    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(addr.as_bytes());
    }

    pub fn set_ethertype(&mut self, value: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Rewrites the TCI of an already tagged frame (retagging on a trunk port); returns false and
    /// changes nothing when the frame has no tag. Use `push_vlan_tag` to add one.
    pub fn set_vlan_tag(&mut self, tag: VlanTag) -> bool {
        if !self.is_tagged() {
            return false;
        }
        self.buffer.as_mut()[field::VLAN_TCI].copy_from_slice(&tag.to_tci().to_be_bytes());
        true
    }

    /// Sets the ethertype of the L3 payload: behind the tag when tagged, the outer one otherwise.
    pub fn set_inner_ethertype(&mut self, value: u16) {
        let range = if self.is_tagged() {
            field::INNER_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }

    pub fn l3_payload_mut(&mut self) -> &mut [u8] {
        let start = self.l3_offset();
        &mut self.buffer.as_mut()[start..]
    }
}

/// Inserts an 802.1Q tag after the source address of the `len`-byte frame at the start of `frame`,
/// shifting the rest right by 4 bytes inside `frame`. Returns the new length.
///
/// Fails, leaving `frame` untouched, when the frame is shorter than an Ethernet header, when `len`
/// exceeds `frame`, when there are not 4 spare bytes after it, or when `tag` has out-of-range
/// fields. An already tagged frame gets a second 0x8100 tag in front of the first: stacking is the
/// caller's decision.
pub fn push_vlan_tag(frame: &mut [u8], len: usize, tag: VlanTag) -> Result<usize> {
    if len < HEADER_LEN || !tag.is_valid() {
        return Err(WireError);
    }
    let new_len = len.checked_add(VLAN_TAG_LEN).ok_or(WireError)?;
    if new_len > frame.len() {
        return Err(WireError);
    }
    frame.copy_within(
        field::ETHERTYPE.start..len,
        field::ETHERTYPE.start + VLAN_TAG_LEN,
    );
    frame[field::ETHERTYPE].copy_from_slice(&ethertype::VLAN.to_be_bytes());
    frame[field::VLAN_TCI].copy_from_slice(&tag.to_tci().to_be_bytes());
    Ok(new_len)
}

/// Removes the 802.1Q tag of the `len`-byte frame at the start of `frame`, shifting the rest left
/// by 4 bytes. Returns the new length; the 4 bytes freed at the end are left as they were.
///
/// Fails, leaving `frame` untouched, when the frame is not tagged with 0x8100, is cut inside its
/// tag, or `len` exceeds `frame`. Read the tag with `EthernetFrame::vlan_tag` first if it matters.
pub fn pop_vlan_tag(frame: &mut [u8], len: usize) -> Result<usize> {
    if len > frame.len() || len < VLAN_HEADER_LEN {
        return Err(WireError);
    }
    if frame[field::ETHERTYPE] != ethertype::VLAN.to_be_bytes() {
        return Err(WireError);
    }
    frame.copy_within(field::INNER_ETHERTYPE.start..len, field::ETHERTYPE.start);
    Ok(len - VLAN_TAG_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ARP request from 02:42:ac:11:00:02 (172.17.0.2) for 172.17.0.3, as captured on docker0.
    const ARP_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0xac, 0x11,
        0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xac, 0x11, 0x00, 0x03,
    ];

    // The same request on a trunk: VLAN 100, priority 5.
    const TAGGED_ARP_REQUEST: [u8; 46] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x81, 0x00, 0xa0,
        0x64, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x42, 0xac, 0x11,
        0x00, 0x02, 0xac, 0x11, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xac, 0x11, 0x00,
        0x03,
    ];

    // Header of an IPv6 frame: 02:00:00:00:00:01 -> 02:00:00:00:00:02.
    const IPV6_HEADER: [u8; 14] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd,
    ];

    const MAC_A: MacAddr = MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);

    #[test]
    fn test_deconstruct() {
        let frame = EthernetFrame::new_checked(&ARP_REQUEST[..]).unwrap();
        assert_eq!(frame.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(frame.src_addr(), MAC_A);
        assert_eq!(frame.ethertype(), ethertype::ARP);
        assert_eq!(frame.inner_ethertype(), ethertype::ARP);
        assert_eq!(frame.vlan_tag(), None);
        assert_eq!(frame.l3_offset(), 14);
        assert_eq!(frame.payload(), &ARP_REQUEST[14..]);
        assert_eq!(frame.l3_payload(), &ARP_REQUEST[14..]);

        let frame = EthernetFrame::new_checked(&IPV6_HEADER[..]).unwrap();
        assert_eq!(frame.ethertype(), ethertype::IPV6);
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn test_deconstruct_tagged() {
        let frame = EthernetFrame::new_checked(&TAGGED_ARP_REQUEST[..]).unwrap();
        assert_eq!(frame.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(frame.src_addr(), MAC_A);
        assert_eq!(frame.ethertype(), ethertype::VLAN);
        assert_eq!(
            frame.vlan_tag(),
            Some(VlanTag {
                pcp: 5,
                dei: false,
                vid: 100
            })
        );
        assert_eq!(frame.inner_ethertype(), ethertype::ARP);
        assert_eq!(frame.l3_offset(), 18);
        assert_eq!(frame.payload(), &TAGGED_ARP_REQUEST[14..]);
        assert_eq!(frame.l3_payload(), &ARP_REQUEST[14..]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 42];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(MacAddr::BROADCAST);
        frame.set_src_addr(MAC_A);
        frame.set_ethertype(ethertype::ARP);
        frame.payload_mut().copy_from_slice(&ARP_REQUEST[14..]);
        assert_eq!(bytes, ARP_REQUEST);
    }

    #[test]
    fn test_construct_tagged() {
        let mut bytes = [0u8; 46];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(MacAddr::BROADCAST);
        frame.set_src_addr(MAC_A);
        frame.set_ethertype(ethertype::VLAN);
        assert!(frame.set_vlan_tag(VlanTag {
            pcp: 5,
            dei: false,
            vid: 100
        }));
        frame.set_inner_ethertype(ethertype::ARP);
        frame.l3_payload_mut().copy_from_slice(&ARP_REQUEST[14..]);
        assert_eq!(bytes, TAGGED_ARP_REQUEST);
    }

    #[test]
    fn set_vlan_tag_on_untagged_frame_is_refused() {
        let mut bytes = ARP_REQUEST;
        let mut frame = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        assert!(!frame.set_vlan_tag(VlanTag {
            pcp: 0,
            dei: false,
            vid: 7
        }));
        frame.set_inner_ethertype(ethertype::IPV4);
        assert_eq!(frame.ethertype(), ethertype::IPV4);
        assert_eq!(bytes[14..], ARP_REQUEST[14..]);
    }

    #[test]
    fn tci_round_trip() {
        let tag = VlanTag {
            pcp: 7,
            dei: true,
            vid: 4094,
        };
        assert_eq!(tag.to_tci(), 0xfffe);
        assert_eq!(VlanTag::from_tci(0xfffe), tag);
        assert_eq!(
            VlanTag::from_tci(0x0001),
            VlanTag {
                pcp: 0,
                dei: false,
                vid: 1
            }
        );
        // Out-of-range fields must not leak into their neighbours.
        assert_eq!(
            VlanTag {
                pcp: 0,
                dei: false,
                vid: 0x1001
            }
            .to_tci(),
            0x0001
        );
        assert!(!VlanTag {
            pcp: 8,
            dei: false,
            vid: 1
        }
        .is_valid());
    }

    #[test]
    fn truncated_is_rejected() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&ARP_REQUEST[..len]),
                Err(WireError)
            );
        }
        // A frame that says it is tagged but is cut inside the tag.
        for len in HEADER_LEN..VLAN_HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&TAGGED_ARP_REQUEST[..len]),
                Err(WireError)
            );
        }
        assert!(EthernetFrame::new_checked(&TAGGED_ARP_REQUEST[..VLAN_HEADER_LEN]).is_ok());
        assert!(EthernetFrame::new_checked(&ARP_REQUEST[..HEADER_LEN]).is_ok());
    }

    #[test]
    fn qinq_is_opaque() {
        let mut bytes = TAGGED_ARP_REQUEST;
        bytes[12..14].copy_from_slice(&ethertype::QINQ.to_be_bytes());
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.vlan_tag(), None);
        assert_eq!(frame.inner_ethertype(), ethertype::QINQ);
        assert_eq!(frame.l3_offset(), 14);
    }

    #[test]
    fn push_and_pop_vlan_tag() {
        let mut buf = [0u8; 64];
        buf[..42].copy_from_slice(&ARP_REQUEST);
        let tag = VlanTag {
            pcp: 5,
            dei: false,
            vid: 100,
        };
        let len = push_vlan_tag(&mut buf, 42, tag).unwrap();
        assert_eq!(len, 46);
        assert_eq!(buf[..46], TAGGED_ARP_REQUEST);

        let len = pop_vlan_tag(&mut buf, len).unwrap();
        assert_eq!(len, 42);
        assert_eq!(buf[..42], ARP_REQUEST);
    }

    #[test]
    fn push_vlan_tag_needs_room() {
        let mut buf = ARP_REQUEST;
        let tag = VlanTag {
            pcp: 0,
            dei: false,
            vid: 1,
        };
        assert_eq!(push_vlan_tag(&mut buf, 42, tag), Err(WireError));
        assert_eq!(push_vlan_tag(&mut buf, 39, tag), Err(WireError));
        assert_eq!(push_vlan_tag(&mut buf, 43, tag), Err(WireError));
        assert_eq!(push_vlan_tag(&mut buf, 13, tag), Err(WireError));
        assert_eq!(buf, ARP_REQUEST, "a failed push leaves the frame alone");
        assert_eq!(push_vlan_tag(&mut buf, 38, tag), Ok(42));
        let bad = VlanTag {
            pcp: 0,
            dei: false,
            vid: 4096,
        };
        let mut buf = [0u8; 64];
        buf[..42].copy_from_slice(&ARP_REQUEST);
        assert_eq!(push_vlan_tag(&mut buf, 42, bad), Err(WireError));
    }

    #[test]
    fn pop_vlan_tag_rejects_untagged_and_truncated() {
        let mut buf = ARP_REQUEST;
        assert_eq!(pop_vlan_tag(&mut buf, 42), Err(WireError));
        assert_eq!(buf, ARP_REQUEST);
        let mut buf = TAGGED_ARP_REQUEST;
        assert_eq!(pop_vlan_tag(&mut buf, 17), Err(WireError));
        assert_eq!(pop_vlan_tag(&mut buf, 47), Err(WireError));
        assert_eq!(buf, TAGGED_ARP_REQUEST);
        // The bare 18-byte tagged header pops to a bare 14-byte header.
        assert_eq!(pop_vlan_tag(&mut buf, 18), Ok(14));
        assert_eq!(buf[12..14], ethertype::ARP.to_be_bytes());
    }

    #[test]
    fn cross_check_etherparse() {
        let mut tagged = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .single_vlan(etherparse::VlanId::try_new(100).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut tagged, b"hello")
            .unwrap();
        let frame = EthernetFrame::new_checked(&tagged[..]).unwrap();
        let parsed = etherparse::SlicedPacket::from_ethernet(&tagged).unwrap();
        let eth = match parsed.link.unwrap() {
            etherparse::LinkSlice::Ethernet2(e) => e,
            _ => unreachable!(),
        };
        let vlan = match parsed.vlan.unwrap() {
            etherparse::VlanSlice::SingleVlan(v) => v,
            _ => unreachable!(),
        };
        assert_eq!(frame.dst_addr().0, eth.destination());
        assert_eq!(frame.src_addr().0, eth.source());
        assert_eq!(frame.ethertype(), eth.ether_type().0);
        let tag = frame.vlan_tag().unwrap();
        assert_eq!(tag.vid, vlan.vlan_identifier().value());
        assert_eq!(tag.pcp, vlan.priority_code_point().value());
        assert_eq!(tag.dei, vlan.drop_eligible_indicator());
        assert_eq!(frame.inner_ethertype(), vlan.ether_type().0);
        assert_eq!(frame.l3_offset(), 18);

        // Popping our way gives what etherparse builds without the tag.
        let mut untagged = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut untagged, b"hello")
            .unwrap();
        let len = tagged.len();
        let new_len = pop_vlan_tag(&mut tagged, len).unwrap();
        assert_eq!(tagged[..new_len], untagged[..]);
    }

    fn touch_all<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) {
        let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype());
        let _ = (frame.vlan_tag(), frame.inner_ethertype(), frame.l3_offset());
        assert!(frame.l3_offset() <= frame.payload().len() + HEADER_LEN);
        let _ = (frame.payload().len(), frame.l3_payload().len());
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(frame) = EthernetFrame::new_checked(&bytes[..]) {
                touch_all(&frame);
            }
        }

        #[test]
        fn setters_keep_accessors_in_bounds(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..40),
            et in prop_oneof![Just(ethertype::VLAN), any::<u16>()],
            inner in any::<u16>(),
            tci in any::<u16>(),
        ) {
            if let Ok(mut frame) = EthernetFrame::new_checked(&mut bytes[..]) {
                frame.set_ethertype(et);
                frame.set_vlan_tag(VlanTag::from_tci(tci));
                frame.set_inner_ethertype(inner);
                touch_all(&frame);
                let _ = frame.l3_payload_mut().len();
            }
        }

        #[test]
        fn push_then_pop_is_identity(
            frame in proptest::collection::vec(any::<u8>(), 14..120),
            spare in 0usize..8,
            pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4096,
        ) {
            let len = frame.len();
            let mut buf = frame.clone();
            buf.resize(len + spare, 0);
            let tag = VlanTag { pcp, dei, vid };
            match push_vlan_tag(&mut buf, len, tag) {
                Err(_) => {
                    prop_assert!(spare < VLAN_TAG_LEN);
                    prop_assert_eq!(&buf[..len], &frame[..]);
                }
                Ok(new_len) => {
                    prop_assert_eq!(new_len, len + 4);
                    let view = EthernetFrame::new_checked(&buf[..new_len]).unwrap();
                    prop_assert_eq!(view.vlan_tag(), Some(tag));
                    prop_assert_eq!(view.l3_payload(), &frame[14..]);
                    let inner = u16::from_be_bytes([frame[12], frame[13]]);
                    prop_assert_eq!(view.inner_ethertype(), inner);
                    prop_assert_eq!(pop_vlan_tag(&mut buf, new_len), Ok(len));
                    prop_assert_eq!(&buf[..len], &frame[..]);
                }
            }
        }

        #[test]
        fn pop_never_panics(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..40),
            len in 0usize..48,
        ) {
            let before = bytes.clone();
            match pop_vlan_tag(&mut bytes, len) {
                Ok(n) => prop_assert_eq!(n + 4, len),
                Err(_) => prop_assert_eq!(bytes, before),
            }
        }
    }
}
