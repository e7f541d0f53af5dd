//! A network's share of a parent interface: an AF_PACKET port that sees only one VLAN of it.
//!
//! `switchyard network create NAME --parent eth0 --vlan 10` extends a network's bridge domain onto
//! a wire shared with other hosts. Each network on the same parent holds its own socket (its own
//! claim share), so the engine needs no idea of trunks: this port accepts frames tagged with its
//! VLAN and hands them on untagged (the tag is stripped in place), marks every other frame
//! `filtered` (counted as `other-vlan`), and tags every frame it sends. Without `--vlan` it carries
//! untagged frames only. Stripping moves the frame 4 bytes (a memmove of its length); tagging
//! copies it into a preallocated buffer: the price of sharing a wire, paid only on parent ports.

use std::os::fd::RawFd;

use super::afpacket::{vnet_after_tag, AfPacketPort};
use super::{Port, PortError, PortKind, RxBatch, SendReport, TxRef, BATCH, FRAME_CAPACITY};
use crate::wire::vnet::VnetHeader;
use crate::MacAddr;

const TAG_OFFSET: usize = 12;
const TAG_LEN: usize = 4;
const TPID: [u8; 2] = [0x81, 0x00];

pub struct VlanPort {
    /// The parent's socket (an `AfPacketPort`, or its sender in another worker).
    inner: Box<dyn Port>,
    vlan: Option<u16>,
    name: String,
    /// Tagged copies of outgoing frames.
    out: Vec<Vec<u8>>,
}

impl VlanPort {
    /// The share of `parent` for `vlan` (1-4094), or its untagged frames with `None`.
    pub fn open(parent: &str, vlan: Option<u16>) -> Result<VlanPort, PortError> {
        let share = match vlan {
            Some(v) => format!("vlan{v}"),
            None => "untagged".to_string(),
        };
        let inner = AfPacketPort::open_shared(parent, &share)?;
        let name = match vlan {
            Some(v) => format!("{parent}.{v}"),
            None => parent.to_string(),
        };
        Ok(VlanPort::over(Box::new(inner), vlan, name))
    }

    fn over(inner: Box<dyn Port>, vlan: Option<u16>, name: String) -> VlanPort {
        VlanPort {
            name,
            inner,
            vlan,
            out: (0..BATCH)
                .map(|_| vec![0u8; FRAME_CAPACITY + TAG_LEN])
                .collect(),
        }
    }
}

/// The VLAN id of a frame's outer tag, if it has one.
fn tag_of(frame: &[u8]) -> Option<u16> {
    (frame.len() >= TAG_OFFSET + TAG_LEN && frame[TAG_OFFSET..TAG_OFFSET + 2] == TPID)
        .then(|| u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff)
}

/// The vnet header once the tag in front of the headers is gone.
fn vnet_after_strip(mut vnet: VnetHeader) -> VnetHeader {
    if vnet.needs_csum() {
        vnet.csum_start = vnet.csum_start.saturating_sub(TAG_LEN as u16);
    }
    if vnet.hdr_len != 0 {
        vnet.hdr_len = vnet.hdr_len.saturating_sub(TAG_LEN as u16);
    }
    vnet
}

impl Port for VlanPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        self.inner.kind()
    }

    fn vnet_hdr(&self) -> bool {
        self.inner.vnet_hdr()
    }

    fn raw_fd(&self) -> Option<RawFd> {
        self.inner.raw_fd()
    }

    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, PortError> {
        let n = self.inner.recv_batch(batch)?;
        for i in 0..n {
            let (frame, meta) = batch.slot_mut(i);
            if meta.truncated {
                continue;
            }
            let len = meta.len;
            match (self.vlan, tag_of(&frame[..len])) {
                (Some(want), Some(got)) if want == got => {
                    frame.copy_within(TAG_OFFSET + TAG_LEN..len, TAG_OFFSET);
                    meta.len = len - TAG_LEN;
                    meta.vnet = vnet_after_strip(meta.vnet);
                }
                (None, None) => {}
                _ => meta.filtered = true,
            }
        }
        Ok(n)
    }

    fn send_batch(&mut self, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
        let Some(vlan) = self.vlan else {
            return self.inner.send_batch(frames);
        };
        let mut refs = [TxRef::EMPTY; BATCH];
        let n = frames.len().min(BATCH);
        let tag = [TPID[0], TPID[1], (vlan >> 8) as u8 & 0x0f, vlan as u8];
        for (k, f) in frames[..n].iter().enumerate() {
            let buf = &mut self.out[k];
            let len = f.data.len().min(FRAME_CAPACITY);
            if len < TAG_OFFSET {
                buf[..len].copy_from_slice(&f.data[..len]);
                continue;
            }
            buf[..TAG_OFFSET].copy_from_slice(&f.data[..TAG_OFFSET]);
            buf[TAG_OFFSET..TAG_OFFSET + TAG_LEN].copy_from_slice(&tag);
            buf[TAG_OFFSET + TAG_LEN..len + TAG_LEN].copy_from_slice(&f.data[TAG_OFFSET..len]);
        }
        for (k, f) in frames[..n].iter().enumerate() {
            let len = f.data.len().min(FRAME_CAPACITY);
            let (data_len, vnet) = if len < TAG_OFFSET {
                (len, f.vnet)
            } else {
                (len + TAG_LEN, vnet_after_tag(f.vnet))
            };
            refs[k] = TxRef {
                vnet,
                data: &self.out[k][..data_len],
            };
        }
        self.inner.send_batch(&refs[..n])
    }

    fn take_overruns(&mut self) -> u64 {
        self.inner.take_overruns()
    }

    fn moved_fd(&mut self) -> Option<RawFd> {
        self.inner.moved_fd()
    }

    fn mac(&self) -> Option<MacAddr> {
        self.inner.mac()
    }

    fn sender(&self) -> Option<Box<dyn Port>> {
        let inner = self.inner.sender()?;
        Some(Box::new(VlanPort::over(
            inner,
            self.vlan,
            self.name.clone(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_and_the_vnet_header_follows_the_strip() {
        let mut f = vec![0xff; 12];
        f.extend([0x81, 0x00, 0x00, 0x0a, 0x08, 0x00]);
        assert_eq!(tag_of(&f), Some(10));
        assert_eq!(tag_of(&f[..14]), None);
        let mut plain = vec![0xff; 12];
        plain.extend([0x08, 0x00]);
        assert_eq!(tag_of(&plain), None);
        let v = VnetHeader {
            flags: crate::wire::vnet::flags::NEEDS_CSUM,
            csum_start: 38,
            hdr_len: 70,
            ..VnetHeader::default()
        };
        let back = vnet_after_strip(v);
        assert_eq!((back.csum_start, back.hdr_len), (34, 66));
        assert_eq!(vnet_after_tag(back).csum_start, 38);
    }
}
