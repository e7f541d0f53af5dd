//! `ingress`: turns received bytes into a `PacketView`.
//!
//! Decides whether the frame is an Ethernet frame at all (long enough, not cut by the receive buffer,
//! a complete 802.1Q tag if tagged) and pulls out what later stages read: MACs, VLAN, EtherType, where
//! L3 starts. It does not look at L3: a switch forwards whatever its ports give it, and L3 parsing
//! belongs to the stages that need it (policy, NAT). Only one VLAN tag is parsed; QinQ frames are
//! switched on their outer tag.

use super::{DropReason, PacketView};
use crate::port::RxMeta;
use crate::wire::ethernet::EthernetFrame;
use crate::{DomainId, PortId, VlanId};

#[inline]
pub fn run<'a>(
    frame: &'a [u8],
    meta: &RxMeta,
    ingress: PortId,
    domain: DomainId,
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
    Ok(PacketView {
        frame,
        ingress,
        domain,
        vlan,
        dst: eth.dst_addr(),
        src: eth.src_addr(),
        ethertype: eth.inner_ethertype(),
        l3_offset: eth.l3_offset(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let v = run(&f, &meta(60), PortId(3), DomainId(1)).unwrap();
        assert_eq!(
            (v.vlan, v.ethertype, v.l3_offset, v.ingress),
            (VlanId(0), 0x0806, 14, PortId(3))
        );
        assert!(v.dst.is_broadcast());

        let mut t = vec![0xff; 6];
        t.extend([0x02, 0, 0, 0, 0, 1, 0x81, 0x00, 0x20, 0x0a, 0x08, 0x00]);
        t.resize(64, 0);
        let v = run(&t, &meta(64), PortId(0), DomainId(0)).unwrap();
        assert_eq!((v.vlan, v.ethertype, v.l3_offset), (VlanId(10), 0x0800, 18));
    }

    #[test]
    fn rejects_runts_cut_tags_and_truncated() {
        assert_eq!(
            run(&[0; 13], &meta(13), PortId(0), DomainId(0)).unwrap_err(),
            DropReason::Runt
        );
        let mut cut = vec![0xff; 12];
        cut.extend([0x81, 0x00, 0x00]);
        assert_eq!(
            run(&cut, &meta(15), PortId(0), DomainId(0)).unwrap_err(),
            DropReason::BadVlan
        );
        let m = RxMeta {
            filtered: false,
            len: 60,
            truncated: true,
            ..RxMeta::default()
        };
        assert_eq!(
            run(&[0; 60], &m, PortId(0), DomainId(0)).unwrap_err(),
            DropReason::Truncated
        );
    }
}
