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
use crate::wire::arp::{self, operation, ArpPacket, ArpRepr};
use crate::wire::checksum;
use crate::wire::ethernet::EthernetFrame;
use crate::wire::headers::{ArpSummary, Ipv4Summary, L3};
use crate::wire::icmp::{msg_type, Icmpv4Packet};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::vnet::VnetHeader;
use crate::{MacAddr, PortId};

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

    /// Carries out what `nat` decided for receive slot `i`, whose L3 header `ingress` found at
    /// `l3_offset` and parsed into `l3` (nothing here parses the frame again).
    pub(super) fn apply_nat(
        &mut self,
        action: NatAction,
        ingress: PortId,
        i: usize,
        l3_offset: usize,
        l3: L3,
        meta: RxMeta,
    ) {
        let now = self.tables.now_ms;
        match action {
            // `Nat::run` turns these into verdicts (a drop is counted by the stage wrapper).
            NatAction::Pass | NatAction::Drop(_) => unreachable!("not a Verdict::Handled"),
            NatAction::Consumed => {}
            NatAction::Answer(answer) => {
                let Some(uplink) = self.tables.nat.uplink().copied() else {
                    return;
                };
                let frame = &mut self.rx.frame_mut(i)[..meta.len];
                let done = match (answer, l3) {
                    (Answer::Arp, L3::Arp(arp)) => {
                        answer_arp(frame, l3_offset, &arp, uplink.mac, uplink.ip)
                    }
                    (Answer::IcmpEcho, L3::Ipv4(ip)) => answer_echo(frame, &ip),
                    _ => false,
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
                // The rewrite comes first: it changes nothing when it fails, so a frame that
                // cannot be translated leaves no connection behind (and is counted as what it is).
                let frame = &mut self.rx.frame_mut(i)[..meta.len];
                let rewritten = match l3 {
                    L3::Ipv4(ip) => {
                        rewrite::apply_parsed(frame, &ip, &meta.vnet, &rewrite, inner.as_ref())
                    }
                    _ => Err(rewrite::RewriteError::NotIpv4),
                };
                if rewritten.is_err() {
                    return count_drop(&mut self.ports, ingress, DropReason::NatRewrite);
                }
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
                enqueue(&mut self.tx, &mut self.touched, port, i);
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
            let frame = arp::request_frame(uplink.mac, uplink.ip, ip);
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

/// Turns the ARP request `asked` (at `l3` in `f`) for `ip` into the reply, in place.
fn answer_arp(f: &mut [u8], l3: usize, asked: &ArpSummary, mac: MacAddr, ip: Ipv4Addr) -> bool {
    let Some(Ok(mut arp)) = f.get_mut(l3..).map(ArpPacket::new_checked) else {
        return false;
    };
    ArpRepr {
        operation: operation::REPLY,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: asked.sender_mac,
        target_ip: asked.sender_ip,
    }
    .emit(&mut arp);
    let mut eth = EthernetFrame::new_unchecked(f);
    eth.set_dst_addr(asked.sender_mac);
    eth.set_src_addr(mac);
    true
}

/// Turns the ICMP echo request `ip` into the reply, in place: swapped MACs and
/// addresses (the IPv4 checksum does not change under a swap), type 0, and the ICMP checksum
/// updated for the type (RFC 1624: the message is not summed again).
fn answer_echo(f: &mut [u8], ip: &Ipv4Summary) -> bool {
    let l3 = ip.l3_offset();
    if ip.icmp.map(|(t, _)| t) != Some(msg_type::ECHO_REQUEST) || f.len() < l3 {
        return false;
    }
    let (head, l4) = f.split_at_mut(ip.l4_offset().min(f.len()));
    let Ok(mut icmp) = Icmpv4Packet::new_checked(l4) else {
        return false;
    };
    let Ok(mut packet) = Ipv4Packet::new_checked_header(&mut head[l3..]) else {
        return false;
    };
    packet.set_src_addr(ip.dst);
    packet.set_dst_addr(ip.src);
    let code = icmp.msg_code();
    let old = u16::from_be_bytes([msg_type::ECHO_REQUEST, code]);
    let new = u16::from_be_bytes([msg_type::ECHO_REPLY, code]);
    icmp.set_msg_type(msg_type::ECHO_REPLY);
    icmp.set_checksum(checksum::update_u16(icmp.checksum(), old, new));
    let mut eth = EthernetFrame::new_unchecked(f);
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    eth.set_src_addr(dst);
    eth.set_dst_addr(src);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::port::MemoryPort;
    use crate::table::{PortRole, Subnet};
    use crate::{DomainId, VlanId};

    fn l3_of(f: &[u8]) -> L3 {
        let eth = EthernetFrame::new_checked(f).unwrap();
        L3::parse(f, eth.inner_ethertype(), eth.l3_offset())
    }

    #[test]
    fn echo_answer_is_a_valid_reply() {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(7, 1);
        let mut f = Vec::new();
        b.write(&mut f, b"hello").unwrap();
        let ip = l3_of(&f).ipv4().unwrap();
        assert!(answer_echo(&mut f, &ip));
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
        // An echo reply is not answered.
        let ip = l3_of(&f).ipv4().unwrap();
        assert!(!answer_echo(&mut f, &ip));
    }

    #[test]
    fn arp_answer_swaps_roles() {
        let req = arp::request_frame(
            MacAddr([2, 0, 0, 0, 0, 9]),
            Ipv4Addr::new(192, 0, 2, 9),
            Ipv4Addr::new(192, 0, 2, 1),
        );
        let mut f = req;
        let asked = l3_of(&f).arp().unwrap();
        assert_eq!(asked.op, operation::REQUEST);
        assert!(answer_arp(
            &mut f,
            14,
            &asked,
            MacAddr([2, 0, 0, 0, 0, 1]),
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

    /// A new flow whose frame is too short for its rewrite (a UDP header cut after the ports, so
    /// the checksum cannot be updated): dropped as `nat-rewrite`, and no connection is left behind.
    /// (Before the fix it was counted as `not-local` and its conntrack entry stayed.)
    #[test]
    fn a_failed_rewrite_keeps_no_connection_and_says_why() {
        let (mut e, _) = Engine::new(EngineConfig::default()).unwrap();
        let (up, up_h) = MemoryPort::new("up", false);
        let (web, web_h) = MemoryPort::new("web", false);
        let web_mac = MacAddr([2, 0, 0, 0, 0, 2]);
        let (uplink_ip, web_ip) = (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(172, 17, 0, 2));
        let up = e
            .add_port_as(Box::new(up), DomainId(9), PortRole::Uplink)
            .unwrap();
        let web = e.add_port(Box::new(web), DomainId(0)).unwrap();
        e.tables
            .cam
            .add_static(DomainId(0), VlanId(0), web_mac, web)
            .unwrap();
        e.tables.nat.set_uplink(Some(Uplink {
            port: up,
            mac: MacAddr([2, 0, 0, 0, 0, 0x10]),
            ip: uplink_ip,
            prefix: 24,
            gateway: None,
        }));
        e.tables.nat.set_networks(&[NetworkNat {
            domain: DomainId(0),
            subnet: Subnet {
                domain: DomainId(0),
                network: Ipv4Addr::new(172, 17, 0, 0),
                prefix: 16,
            },
            gateway_ip: Ipv4Addr::new(172, 17, 0, 1),
            gateway_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            external: true,
        }]);
        e.tables.nat.set_publish(&[Publish {
            id: 7,
            protocol: crate::wire::ipv4::protocol::UDP,
            host_port: 5353,
            target: web_ip,
            target_port: 53,
            target_mac: web_mac,
            domain: DomainId(0),
        }]);
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x99], [2, 0, 0, 0, 0, 0x10])
            .ipv4([192, 0, 2, 1], uplink_ip.octets(), 64)
            .udp(40000, 5353);
        let mut f = Vec::new();
        b.write(&mut f, b"query").unwrap();

        up_h.inject(&f[..14 + 20 + 4]);
        e.step();
        let c = e.ports[up.0 as usize].as_ref().unwrap().counters;
        assert_eq!(c.dropped(DropReason::NatRewrite), 1);
        assert_eq!(c.dropped(DropReason::NotLocal), 0);
        assert!(e.tables.conntrack.is_empty(), "no connection kept");
        assert!(web_h.take_sent().is_empty());

        // The whole frame goes through, and its connection is kept.
        up_h.inject(&f);
        e.step();
        assert_eq!(e.tables.conntrack.len(), 1);
        assert_eq!(web_h.take_sent().len(), 1);
    }
}
