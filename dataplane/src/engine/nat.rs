//! The engine's side of NAT: applying the `nat` stage's decisions to frames and tables, answering
//! ARP and ping for the uplink address in place, and asking the uplink for next hops' MACs.

use std::net::Ipv4Addr;

use super::pipeline::{count_drop, enqueue};
use super::{Engine, EngineError};
use crate::port::{RxMeta, TxRef};
use crate::rewrite;
use crate::stage::nat::{Answer, CtChange, NatAction};
use crate::stage::DropReason;
use crate::table::conntrack::{CtState, Entry, NatKind, Tuple};
use crate::table::{CtStats, NetworkNat, Publish, Uplink};
use crate::wire::checksum;
use crate::wire::vnet::VnetHeader;
use crate::PortId;

/// A change to the NAT tables. Each replaces its part whole.
#[derive(Clone, Debug)]
pub enum NatUpdate {
    Uplink(Option<Uplink>),
    Networks(Vec<NetworkNat>),
    /// Every published port; connections of mappings that are gone are removed at once.
    Publish(Vec<Publish>),
    /// A container address went away (container removed or disconnected): its connections too.
    ForgetInside(Ipv4Addr),
}

/// One tracked connection, for `switchyard conntrack`.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub original: Tuple,
    pub reply: Tuple,
    pub kind: NatKind,
    pub state: CtState,
    pub remaining_ms: u64,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
}

/// Never ask for the same neighbour more often than this.
const ARP_RETRY_MS: u64 = 500;

impl Engine {
    pub fn set_nat(&mut self, update: NatUpdate) -> Result<(), EngineError> {
        match update {
            NatUpdate::Uplink(u) => {
                self.tables.nat.set_uplink(u);
                if let Some(gw) = u.and_then(|u| u.gateway) {
                    want_arp(&mut self.arp_wanted, gw);
                }
            }
            NatUpdate::Networks(n) => self.tables.nat.set_networks(&n),
            NatUpdate::Publish(p) => {
                for id in self.tables.nat.set_publish(&p) {
                    self.tables.conntrack.remove_mapping(id);
                }
            }
            NatUpdate::ForgetInside(ip) => {
                self.tables.conntrack.remove_inside(ip);
            }
        }
        Ok(())
    }

    pub fn connections(&self) -> (Vec<ConnInfo>, CtStats) {
        let now = self.now_ms();
        let list = self
            .tables
            .conntrack
            .iter()
            .map(|(id, e): (_, &Entry)| ConnInfo {
                original: e.original,
                reply: e.reply,
                kind: e.kind,
                state: e.state,
                remaining_ms: self.tables.conntrack.remaining_ms(id, now),
                packets: e.packets,
                bytes: e.bytes,
            })
            .collect();
        (list, self.tables.conntrack.stats())
    }

    /// Carries out what `nat` decided for receive slot `i`.
    pub(super) fn apply_nat(
        &mut self,
        action: NatAction,
        ingress: PortId,
        i: usize,
        l3_offset: usize,
        meta: RxMeta,
    ) {
        let now = self.tables.now_ms;
        match action {
            NatAction::Pass => unreachable!("handled by the caller"),
            NatAction::Consumed => {}
            NatAction::Drop(reason) => count_drop(&mut self.ports, ingress, reason),
            NatAction::Answer(answer) => {
                let Some(uplink) = self.tables.nat.uplink().copied() else {
                    return;
                };
                let frame = &mut self.rx.frame_mut(i)[..meta.len];
                let done = match answer {
                    Answer::Arp => answer_arp(frame, l3_offset, uplink.mac.0, uplink.ip),
                    Answer::IcmpEcho => answer_echo(frame, l3_offset),
                };
                if done {
                    // The answer is a complete frame: no offload work left for the kernel.
                    self.rx.meta_mut(i).vnet = VnetHeader::default();
                    enqueue(&mut self.tx, &mut self.touched, ingress, i);
                }
            }
            NatAction::Translate {
                rewrite,
                inner,
                port,
                change,
            } => {
                let ct = &mut self.tables.conntrack;
                match change {
                    CtChange::Insert(f) => {
                        if ct
                            .insert(
                                f.original,
                                f.reply,
                                f.kind,
                                f.out_original,
                                f.out_reply,
                                f.mapping,
                                f.inside,
                                f.tcp_flags,
                                meta.len,
                                now,
                            )
                            .is_err()
                        {
                            return count_drop(
                                &mut self.ports,
                                ingress,
                                DropReason::ConntrackClash,
                            );
                        }
                    }
                    CtChange::Update { id, dir, tcp_flags } => {
                        ct.update(id, dir, tcp_flags, meta.len, now)
                    }
                    CtChange::None => {}
                }
                let frame = &mut self.rx.frame_mut(i)[..meta.len];
                match rewrite::apply(frame, l3_offset, &meta.vnet, &rewrite, inner.as_ref()) {
                    Ok(()) => enqueue(&mut self.tx, &mut self.touched, port, i),
                    Err(_) => count_drop(&mut self.ports, ingress, DropReason::NotLocal),
                }
            }
        }
    }

    pub(super) fn send_arp_requests(&mut self) {
        if self.arp_wanted.is_empty() {
            return;
        }
        let Some(uplink) = self.tables.nat.uplink().copied() else {
            self.arp_wanted.clear();
            return;
        };
        let now = self.now_ms();
        let wanted = std::mem::take(&mut self.arp_wanted);
        for &ip in &wanted {
            if self
                .arp_asked
                .get(&ip)
                .is_some_and(|&t| now.saturating_sub(t) < ARP_RETRY_MS)
            {
                continue;
            }
            if self.arp_asked.len() > 4096 {
                self.arp_asked.clear();
            }
            self.arp_asked.insert(ip, now);
            let frame = arp_request(uplink.mac.0, uplink.ip, ip);
            if let Some(port) = self
                .ports
                .get_mut(uplink.port.0 as usize)
                .and_then(|s| s.as_mut())
                .and_then(|s| s.io.as_mut())
            {
                let _ = port.send_batch(&[TxRef {
                    vnet: VnetHeader::default(),
                    data: &frame,
                }]);
            }
        }
        self.arp_wanted = wanted;
        self.arp_wanted.clear();
    }
}

/// Remembers to ask the uplink who has `ip` (sent after the batch, at most every 500 ms per
/// address; a free function so the caller may hold a packet view meanwhile).
pub(super) fn want_arp(wanted: &mut Vec<Ipv4Addr>, ip: Ipv4Addr) {
    if !wanted.contains(&ip) && wanted.len() < wanted.capacity() {
        wanted.push(ip);
    }
}

/// A broadcast ARP request from the uplink address, padded to the Ethernet minimum.
fn arp_request(mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    f[38..42].copy_from_slice(&target.octets());
    f
}

/// Turns an ARP request for `ip` into the reply, in place.
fn answer_arp(f: &mut [u8], l3: usize, mac: [u8; 6], ip: Ipv4Addr) -> bool {
    if f.len() < l3 + 28 {
        return false;
    }
    let mut asker_mac = [0u8; 6];
    asker_mac.copy_from_slice(&f[l3 + 8..l3 + 14]);
    let mut asker_ip = [0u8; 4];
    asker_ip.copy_from_slice(&f[l3 + 14..l3 + 18]);
    f[0..6].copy_from_slice(&asker_mac);
    f[6..12].copy_from_slice(&mac);
    f[l3 + 6..l3 + 8].copy_from_slice(&[0, 2]);
    f[l3 + 8..l3 + 14].copy_from_slice(&mac);
    f[l3 + 14..l3 + 18].copy_from_slice(&ip.octets());
    f[l3 + 18..l3 + 24].copy_from_slice(&asker_mac);
    f[l3 + 24..l3 + 28].copy_from_slice(&asker_ip);
    true
}

/// Turns an ICMP echo request into the reply, in place: swapped MACs and addresses (the IPv4
/// checksum does not change under a swap), type 0, and the ICMP checksum updated for the type.
fn answer_echo(f: &mut [u8], l3: usize) -> bool {
    if f.len() < l3 + 20 {
        return false;
    }
    let ihl = usize::from(f[l3] & 0x0f) * 4;
    let l4 = l3 + ihl;
    if ihl < 20 || f.len() < l4 + 8 || f[l4] != 8 {
        return false;
    }
    for k in 0..6 {
        f.swap(k, 6 + k);
    }
    for k in 0..4 {
        f.swap(l3 + 12 + k, l3 + 16 + k);
    }
    let old = u16::from_be_bytes([f[l4], f[l4 + 1]]);
    f[l4] = 0;
    let new = u16::from_be_bytes([f[l4], f[l4 + 1]]);
    let check = u16::from_be_bytes([f[l4 + 2], f[l4 + 3]]);
    let check = checksum::update_u16(check, old, new);
    f[l4 + 2..l4 + 4].copy_from_slice(&check.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_answer_is_a_valid_reply() {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(7, 1);
        let mut f = Vec::new();
        b.write(&mut f, b"hello").unwrap();
        assert!(answer_echo(&mut f, 14));
        let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
            panic!()
        };
        assert_eq!(
            (eth.source(), eth.destination()),
            ([4; 6], [2; 6]),
            "swapped"
        );
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!()
        };
        assert_eq!(ip.header().source(), [10, 0, 0, 2]);
        let Some(etherparse::TransportSlice::Icmpv4(icmp)) = p.transport else {
            panic!()
        };
        assert!(matches!(
            icmp.icmp_type(),
            etherparse::Icmpv4Type::EchoReply(_)
        ));
        let want = icmp.header().icmp_type.calc_checksum(icmp.payload());
        assert_eq!(icmp.checksum(), want);
    }

    #[test]
    fn arp_answer_swaps_roles() {
        let req = arp_request(
            [2, 0, 0, 0, 0, 9],
            Ipv4Addr::new(192, 0, 2, 9),
            Ipv4Addr::new(192, 0, 2, 1),
        );
        let mut f = req;
        assert!(answer_arp(
            &mut f,
            14,
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(192, 0, 2, 1)
        ));
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(&f[20..22], &[0, 2], "a reply");
        assert_eq!(
            &f[28..32],
            &[192, 0, 2, 1],
            "sender is the answered address"
        );
        assert_eq!(&f[38..42], &[192, 0, 2, 9]);
    }
}
