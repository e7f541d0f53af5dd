//! `ingress`: turns received bytes into a `PacketView`.
//!
//! Decides whether the frame is an Ethernet frame at all (long enough, not cut by the receive buffer,
//! a complete 802.1Q tag if tagged) and pulls out what later stages read: MACs, VLAN, EtherType, where
//! L3 starts, and, when asked, the IPv4 or ARP fields (`wire::headers::L3`): this is the one place
//! the packet path parses a frame. Only one VLAN tag is parsed; QinQ frames are switched on their
//! outer tag.
//!
//! L3 is parsed only for batches with a stage that reads it (policy, NAT, traces: the engine knows
//! per batch): a switch forwards whatever its ports give it, and a frame between two ports without
//! policy pays for the Ethernet header only. Where L3 is parsed, an IPv4 packet that cannot be one
//! is dropped here, before anything tracks or translates it: a version other than 4 or a header
//! length below 20 or past the frame (`bad-ip-header`), a total length shorter than the header or,
//! unless the frame is a GSO super-frame (whose total length is meaningless), longer than the
//! frame (`bad-ip-length`). Ethernet padding after the packet is fine. A malformed ARP packet is
//! not a drop here; the view's `l3` is then `L3::None` and each stage decides what that means.

use super::{DropReason, PacketView};
use crate::port::RxMeta;
use crate::wire::ethernet::{ethertype, EthernetFrame};
use crate::wire::headers::L3;
use crate::wire::ipv4::Ipv4Packet;
use crate::{DomainId, PortId, VlanId};

/// Turns `frame` into a view; with `parse_l3`, its IPv4/ARP fields too.
#[inline]
pub fn run<'a>(
    frame: &'a [u8],
    meta: &RxMeta,
    ingress: PortId,
    domain: DomainId,
    parse_l3: bool,
) -> Result<PacketView<'a>, DropReason> {
    if meta.filtered {
        return Err(DropReason::OtherVlan);
    }
    if meta.truncated {
        return Err(DropReason::Truncated);
    }
    if frame.len() < crate::wire::ethernet::HEADER_LEN {
        return Err(DropReason::Runt);
    }
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::BadVlan)?;
    let vlan = eth.vlan_tag().map(|t| VlanId(t.vid)).unwrap_or_default();
    let ethertype = eth.inner_ethertype();
    let l3_offset = eth.l3_offset();
    let l3 = if parse_l3 {
        if ethertype == ethertype::IPV4 {
            check_ipv4(
                frame.get(l3_offset..).unwrap_or_default(),
                meta.vnet.is_gso(),
            )?;
        }
        L3::parse(frame, ethertype, l3_offset)
    } else {
        L3::None
    };
    Ok(PacketView {
        frame,
        ingress,
        domain,
        vlan,
        dst: eth.dst_addr(),
        src: eth.src_addr(),
        ethertype,
        l3_offset,
        l3,
    })
}

/// Whether `l3` (from the IPv4 header to the frame's end) is an IPv4 packet at all.
#[inline]
fn check_ipv4(l3: &[u8], gso: bool) -> Result<(), DropReason> {
    let ip = Ipv4Packet::new_checked_header(l3).map_err(|_| DropReason::BadIpHeader)?;
    if ip.version() != 4 {
        return Err(DropReason::BadIpHeader);
    }
    if !gso {
        ip.check_len().map_err(|_| DropReason::BadIpLength)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::protocol;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn view_of(bytes: &[u8]) -> Option<PacketView<'_>> {
        run(bytes, &meta(bytes.len()), PortId(0), DomainId(0), true).ok()
    }

    fn meta(len: usize) -> RxMeta {
        RxMeta {
            filtered: false,
            len,
            ..RxMeta::default()
        }
    }

    #[test]
    fn untagged_and_tagged() {
        let mut f = vec![0xff; 6];
        f.extend([0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
        f.resize(60, 0);
        let v = run(&f, &meta(60), PortId(3), DomainId(1), true).unwrap();
        assert_eq!(
            (v.vlan, v.ethertype, v.l3_offset, v.ingress),
            (VlanId(0), 0x0806, 14, PortId(3))
        );
        assert!(v.dst.is_broadcast());

        let mut t = vec![0xff; 6];
        t.extend([0x02, 0, 0, 0, 0, 1, 0x81, 0x00, 0x20, 0x0a, 0x08, 0x00]);
        t.resize(64, 0);
        let v = run(&t, &meta(64), PortId(0), DomainId(0), false).unwrap();
        assert_eq!((v.vlan, v.ethertype, v.l3_offset), (VlanId(10), 0x0800, 18));
    }

    #[test]
    fn rejects_runts_cut_tags_and_truncated() {
        assert_eq!(
            run(&[0; 13], &meta(13), PortId(0), DomainId(0), true).unwrap_err(),
            DropReason::Runt
        );
        let mut cut = vec![0xff; 12];
        cut.extend([0x81, 0x00, 0x00]);
        assert_eq!(
            run(&cut, &meta(15), PortId(0), DomainId(0), true).unwrap_err(),
            DropReason::BadVlan
        );
        let m = RxMeta {
            filtered: false,
            len: 60,
            truncated: true,
            ..RxMeta::default()
        };
        assert_eq!(
            run(&[0; 60], &m, PortId(0), DomainId(0), true).unwrap_err(),
            DropReason::Truncated
        );
    }

    // Moved from the deleted `stage/l3.rs`, whose parsing `run` now does through `wire::headers`.
    #[test]
    fn reads_addresses_ports_and_fragments() {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5353, 53);
        let mut f = Vec::new();
        b.write(&mut f, &[1, 2, 3]).unwrap();
        let s = view_of(&f).unwrap().ipv4().unwrap();
        assert_eq!(
            (s.src, s.dst, s.protocol, s.ports()),
            (
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                protocol::UDP,
                Some((5353, 53))
            )
        );
        // A non-first fragment has no ports.
        f[14 + 6] = 0x00;
        f[14 + 7] = 0x10;
        assert_eq!(view_of(&f).unwrap().ipv4().unwrap().ports(), None);
        // Truncated headers are not IPv4 at all: dropped.
        assert_eq!(
            run(&f[..14 + 19], &meta(33), PortId(0), DomainId(0), true).unwrap_err(),
            DropReason::BadIpHeader
        );
        assert_eq!(view_of(&f).unwrap().arp(), None);
        // Without `parse_l3` the view carries no L3 fields.
        let v = run(&f, &meta(f.len()), PortId(0), DomainId(0), false).unwrap();
        assert_eq!(v.l3, L3::None);
    }

    /// A GSO super-frame's total length is meaningless (the kernel leaves it stale or 0), so only
    /// its header is checked; any other frame's total length must fit the frame.
    #[test]
    fn total_length_is_checked_except_on_gso_frames() {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5353, 53);
        let mut f = Vec::new();
        b.write(&mut f, &[1, 2, 3]).unwrap();
        f[16..18].copy_from_slice(&0u16.to_be_bytes());
        let plain = meta(f.len());
        assert_eq!(
            run(&f, &plain, PortId(0), DomainId(0), true).unwrap_err(),
            DropReason::BadIpLength
        );
        let gso = RxMeta {
            vnet: crate::wire::vnet::VnetHeader {
                gso_type: crate::wire::vnet::gso::UDP_L4,
                gso_size: 1000,
                ..Default::default()
            },
            ..plain
        };
        assert!(run(&f, &gso, PortId(0), DomainId(0), true).is_ok());
        // Without L3 parsing (ports without policy) nothing behind Ethernet is looked at.
        assert!(run(&f, &plain, PortId(0), DomainId(0), false).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 14..120), arp_type in any::<bool>()) {
            bytes[12] = 0x08;
            bytes[13] = if arp_type { 0x06 } else { 0x00 };
            if let Some(v) = view_of(&bytes) {
                let _ = v.ipv4();
                let _ = v.arp();
            }
        }
    }
}
