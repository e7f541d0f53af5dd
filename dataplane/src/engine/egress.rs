//! `egress`: hands each port its queued frames, adapting offloads on the way.
//!
//! A port with vnet headers gets every frame as it came, checksum-partial and GSO included: the
//! receiving kernel finishes the work, usually for free in hardware or at the socket. A port without
//! them gets complete frames only: a checksum-partial frame is finished in place (and the flag cleared,
//! so any later port of a flood gets the finished frame too), a GSO super-frame is segmented into the
//! preallocated `Segments` area, unless the port segments super-frames itself (`Port::takes_gso`: a
//! VXLAN port, which hands the kernel all segments in one `sendmsg`). Nothing is dropped silently:
//! what a port refuses is counted by reason on that port.

use super::{Engine, PortCounters};
use crate::offload;
use crate::port::{PortError, SendReport, TxRef, BATCH};
use crate::stage::DropReason;
use crate::wire::vnet::{flags, VnetHeader};
use crate::PortId;

fn account(counters: &mut PortCounters, report: SendReport) {
    counters.tx_packets += report.sent as u64;
    counters.tx_bytes += report.sent_bytes;
    counters.drop(DropReason::TxBusy, report.busy as u64);
    counters.drop(DropReason::TxTooBig, report.too_big as u64);
    counters.drop(DropReason::LinkDown, report.link_down as u64);
    counters.drop(DropReason::TxError, report.failed as u64);
}

impl Engine {
    /// Sends every queued frame of the current batch.
    pub(super) fn flush(&mut self) {
        for t in 0..self.touched.len() {
            let port = self.touched[t];
            if self.flush_port(port).is_err() {
                self.port_gone(port);
            }
        }
        self.touched.clear();
    }

    /// `Err` when the port's interface has gone.
    fn flush_port(&mut self, id: PortId) -> Result<(), PortError> {
        let queue = self.tx[id.0 as usize];
        self.tx[id.0 as usize].len = 0;
        let Some(slot) = self.ports.get_mut(id.0 as usize).and_then(|s| s.as_mut()) else {
            return Ok(());
        };
        let vnet = slot.vnet_hdr;
        let takes_gso = slot.takes_gso;
        let queued = &queue.slots[..queue.len];

        if !vnet {
            for &i in queued {
                let meta = *self.rx.meta(i as usize);
                if meta.vnet.needs_csum()
                    && !meta.vnet.is_gso()
                    && offload::finish_checksum(&meta.vnet, self.rx.frame_mut(i as usize)).is_ok()
                {
                    self.rx.meta_mut(i as usize).vnet.flags &= !flags::NEEDS_CSUM;
                    slot.counters.tx_csum_finished += 1;
                }
            }
        }

        let Some(port) = slot.io.as_mut() else {
            return Ok(());
        };
        let mut refs = [TxRef::EMPTY; BATCH];
        let mut n = 0;
        for &i in queued {
            let i = i as usize;
            let meta = self.rx.meta(i);
            let whole_gso = takes_gso && meta.vnet.is_gso();
            if vnet || whole_gso || !meta.vnet.needs_software_finish() {
                let header = if vnet || whole_gso {
                    meta.vnet
                } else {
                    VnetHeader::default()
                };
                refs[n] = TxRef {
                    vnet: header,
                    data: self.rx.frame(i),
                };
                n += 1;
                continue;
            }
            if !meta.vnet.is_gso() {
                // The in-place finish above failed: the checksum offsets point outside the frame.
                slot.counters.drop(DropReason::OffloadError, 1);
                continue;
            }
            // Keep order: send what is queued before the super-frame, then its segments.
            account(&mut slot.counters, port.send_batch(&refs[..n])?);
            n = 0;
            match offload::segment(&meta.vnet, self.rx.frame(i), &mut self.segments) {
                Ok(()) => {
                    slot.counters.tx_segmented += 1;
                    let mut s = 0;
                    while s < self.segments.len() {
                        let end = (s + BATCH).min(self.segments.len());
                        let mut seg_refs = [TxRef::EMPTY; BATCH];
                        for (k, j) in (s..end).enumerate() {
                            seg_refs[k] = TxRef {
                                vnet: VnetHeader::default(),
                                data: self.segments.get(j),
                            };
                        }
                        account(&mut slot.counters, port.send_batch(&seg_refs[..end - s])?);
                        s = end;
                    }
                }
                Err(_) => slot.counters.drop(DropReason::OffloadError, 1),
            }
        }
        if n > 0 {
            account(&mut slot.counters, port.send_batch(&refs[..n])?);
        }
        Ok(())
    }
}
