//! The engine's side of NAT: applying the `nat` stage's decisions to frames and tables, answering
//! ARP and ping for the uplink address in place, and asking the uplink for next hops' MACs.

use std::net::Ipv4Addr;

use super::pipeline::{count_drop, enqueue};
use super::workers::Peer;
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
use crate::wire::icmp::{self, msg_type, Icmpv4Packet};
use crate::wire::ipv4::protocol::{ICMP, TCP};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::tcp::{self, TcpPacket};
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

/// At most this many ICMP errors (port unreachable) per second, as Linux's default
/// `net.ipv4.icmp_msgs_per_sec`.
const ICMP_ERRORS_PER_SECOND: u32 = 1000;

/// TTL of the packets the engine writes itself (Linux's default `ip_default_ttl`).
const OWN_TTL: u8 = 64;

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
            NatAction::Answer(Answer::RemoteArp { ip, mac }) => {
                // `arp-proxy`: no uplink involved; the asker gets the remote container's MAC.
                let (slot, m) = self.rx.slot_mut(i);
                let len = m.len;
                if let L3::Arp(arp) = l3 {
                    if answer_arp(&mut slot[..len], l3_offset, &arp, mac, ip) {
                        m.vnet = VnetHeader::default();
                        enqueue(&mut self.tx, &mut self.touched, ingress, i);
                    }
                }
            }
            NatAction::Answer(answer) => {
                let Some(uplink) = self.tables.nat.uplink().copied() else {
                    return;
                };
                let limited = match answer {
                    Answer::PortUnreachable => Some(DropReason::NoMapping),
                    Answer::TimeExceeded { .. } => Some(DropReason::TtlExceeded),
                    Answer::HostUnreachable { .. } => Some(DropReason::NoHost),
                    // (`RemoteArp` is answered above.)
                    Answer::Arp
                    | Answer::IcmpEcho
                    | Answer::TcpReset
                    | Answer::RemoteArp { .. } => None,
                };
                if let Some(reason) = limited.filter(|_| !self.icmp_error_allowed(now)) {
                    return count_drop(&mut self.ports, ingress, reason);
                }
                let (slot, m) = self.rx.slot_mut(i);
                let len = m.len;
                let answered = match (answer, l3) {
                    (Answer::Arp, L3::Arp(arp)) => {
                        answer_arp(&mut slot[..len], l3_offset, &arp, uplink.mac, uplink.ip)
                            .then_some(len)
                    }
                    (Answer::IcmpEcho, L3::Ipv4(ip)) => {
                        answer_echo(&mut slot[..len], &ip).then_some(len)
                    }
                    (Answer::TcpReset, L3::Ipv4(ip)) => answer_tcp_reset(slot, len, &ip),
                    (Answer::PortUnreachable, L3::Ipv4(ip)) => {
                        let error = (msg_type::DEST_UNREACHABLE, icmp::unreachable::PORT);
                        answer_icmp_error(slot, len, &ip, error, ip.dst)
                    }
                    (Answer::TimeExceeded { from }, L3::Ipv4(ip)) => {
                        // Code 0: TTL exceeded in transit.
                        answer_icmp_error(slot, len, &ip, (msg_type::TIME_EXCEEDED, 0), from)
                    }
                    (Answer::HostUnreachable { from }, L3::Ipv4(ip)) => {
                        let error = (msg_type::DEST_UNREACHABLE, icmp::unreachable::HOST);
                        answer_icmp_error(slot, len, &ip, error, from)
                    }
                    _ => None,
                };
                if let Some(len) = answered {
                    // The answer is a complete frame: no offload work left for the kernel.
                    m.len = len;
                    m.vnet = VnetHeader::default();
                    enqueue(&mut self.tx, &mut self.touched, ingress, i);
                }
            }
            NatAction::Route {
                src_mac,
                dst_mac,
                port,
                ..
            } => {
                let frame = &mut self.rx.frame_mut(i)[..meta.len];
                let routed = match l3 {
                    L3::Ipv4(ip) => rewrite::route_parsed(frame, &ip, src_mac, dst_mac),
                    _ => Err(rewrite::RewriteError::NotIpv4),
                };
                if routed.is_err() {
                    return count_drop(&mut self.ports, ingress, DropReason::NatRewrite);
                }
                enqueue(&mut self.tx, &mut self.touched, port, i);
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
                let peers = &mut self.peers;
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
                        if peers.active() {
                            peers.tell(Peer::CtInsert {
                                flow: f,
                                len: meta.len,
                            });
                        }
                    }
                    CtChange::Update { id, dir, tcp_flags } => {
                        ct.update(id, dir, tcp_flags, meta.len, now);
                        if peers.active() {
                            peers.tell(Peer::CtUpdate {
                                original: ct.get(id).original,
                                dir,
                                tcp_flags,
                                len: meta.len,
                            });
                        }
                    }
                    CtChange::None => {}
                }
                enqueue(&mut self.tx, &mut self.touched, port, i);
            }
        }
    }

    /// Whether one more ICMP error may go out this second (Linux's `icmp_msgs_per_sec`, so a
    /// scan of closed UDP ports cannot turn the switch into an ICMP flood).
    fn icmp_error_allowed(&mut self, now_ms: u64) -> bool {
        let second = now_ms / 1000;
        if self.icmp_errors.0 != second {
            self.icmp_errors = (second, 0);
        }
        self.icmp_errors.1 += 1;
        self.icmp_errors.1 <= ICMP_ERRORS_PER_SECOND
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

/// Swaps the Ethernet addresses of the frame in `f`: the answer goes back to the sender.
fn swap_macs(f: &mut [u8]) {
    let mut eth = EthernetFrame::new_unchecked(f);
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    eth.set_src_addr(dst);
    eth.set_dst_addr(src);
}

/// Writes a 20-byte IPv4 header (no options) at the start of `b`, from `src` to `dst`, carrying
/// `payload` bytes of `protocol`.
fn emit_ipv4_header(b: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: usize) {
    let mut ip = Ipv4Packet::new_unchecked(b);
    ip.set_version(4);
    ip.set_header_len(ipv4::HEADER_LEN);
    ip.set_dscp_ecn(0);
    ip.set_total_len((ipv4::HEADER_LEN + payload) as u16);
    ip.set_ident(0);
    ip.set_dont_frag(true);
    ip.set_more_frags(false);
    ip.set_frag_offset(0);
    ip.set_ttl(OWN_TTL);
    ip.set_protocol(protocol);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
}

/// Turns the TCP segment `ip` (in the first `len` bytes of `slot`) into the reset a closed port
/// answers with (RFC 9293 3.10.7.1): to a segment with ACK, a RST whose sequence number is that
/// acknowledgment; otherwise a RST+ACK acknowledging everything the segment occupied. Options and
/// payload are cut; returns the answer's length.
fn answer_tcp_reset(slot: &mut [u8], len: usize, ip: &Ipv4Summary) -> Option<usize> {
    let (l3, l4) = (ip.l3_offset(), ip.l4_offset());
    let tcp = TcpPacket::new_checked(slot.get(l4..len)?).ok()?;
    let incoming_flags = tcp.flags();
    if incoming_flags & tcp::flags::RST != 0 {
        return None;
    }
    // The segment's length from the IP header (a frame may carry Ethernet padding), bounded by
    // the bytes there (a GSO super-frame's length field is not to be trusted).
    let ip_end = (l3 + usize::from(ip.total_len)).clamp(l4 + tcp.header_len(), len);
    let mut occupied = (ip_end - l4 - tcp.header_len()) as u32;
    occupied += u32::from(incoming_flags & tcp::flags::SYN != 0);
    occupied += u32::from(incoming_flags & tcp::flags::FIN != 0);
    let (sport, dport) = (tcp.src_port(), tcp.dst_port());
    let (seq, ack, flags) = if incoming_flags & tcp::flags::ACK != 0 {
        (tcp.ack_number(), 0, tcp::flags::RST)
    } else {
        (
            0,
            tcp.seq_number().wrapping_add(occupied),
            tcp::flags::RST | tcp::flags::ACK,
        )
    };
    let new_len = l3 + ipv4::HEADER_LEN + tcp::HEADER_LEN;
    emit_ipv4_header(&mut slot[l3..], ip.dst, ip.src, TCP, tcp::HEADER_LEN);
    let mut rst = TcpPacket::new_unchecked(&mut slot[l3 + ipv4::HEADER_LEN..new_len]);
    rst.set_src_port(dport);
    rst.set_dst_port(sport);
    rst.set_seq_number(seq);
    rst.set_ack_number(ack);
    rst.set_header_len(tcp::HEADER_LEN);
    rst.set_flags(flags);
    rst.set_window_len(0);
    rst.set_urgent_at(0);
    rst.fill_checksum_v4(ip.dst, ip.src);
    swap_macs(&mut slot[..new_len]);
    Some(new_len)
}

/// Turns the packet `ip` (in the first `len` bytes of `slot`) into the ICMP error `(type, code)`
/// from `from` back to its sender (RFC 792; port unreachable from the address asked, time exceeded
/// and host unreachable from the router's): the packet's IP header and first 8 bytes of payload,
/// quoted after a new IP and ICMP header. The quote moves up in the slot (slots hold a whole GSO
/// frame, so there is room); returns the answer's length.
fn answer_icmp_error(
    slot: &mut [u8],
    len: usize,
    ip: &Ipv4Summary,
    (error_type, code): (u8, u8),
    from: Ipv4Addr,
) -> Option<usize> {
    let (l3, l4) = (ip.l3_offset(), ip.l4_offset());
    let quote_len = (l4 + icmp::EMBEDDED_PAYLOAD_LEN).min(len).checked_sub(l3)?;
    let icmp_at = l3 + ipv4::HEADER_LEN;
    let quote_at = icmp_at + icmp::HEADER_LEN;
    let new_len = quote_at + quote_len;
    if new_len > slot.len() {
        return None;
    }
    slot.copy_within(l3..l3 + quote_len, quote_at);
    emit_ipv4_header(
        &mut slot[l3..],
        from,
        ip.src,
        ICMP,
        icmp::HEADER_LEN + quote_len,
    );
    let mut msg = Icmpv4Packet::new_unchecked(&mut slot[icmp_at..new_len]);
    msg.set_msg_type(error_type);
    msg.set_msg_code(code);
    msg.set_rest_of_header(0);
    msg.fill_checksum();
    swap_macs(&mut slot[..new_len]);
    Some(new_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::port::{MemoryPort, MemoryPortHandle};
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

    fn slot_with(f: &[u8]) -> Vec<u8> {
        let mut slot = vec![0u8; 2048];
        slot[..f.len()].copy_from_slice(f);
        slot
    }

    /// An answer from the uplink (192.0.2.10, MAC 04:..) back to its client (192.0.2.1, 02:..)
    /// with a valid IPv4 header: the parsed frame and that header.
    fn answered(f: &[u8]) -> (etherparse::SlicedPacket<'_>, etherparse::Ipv4Header) {
        let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
            panic!()
        };
        assert_eq!((eth.source(), eth.destination()), ([4; 6], [2; 6]));
        let Some(etherparse::NetSlice::Ipv4(ipv4)) = &p.net else {
            panic!()
        };
        let h = ipv4.header().to_header();
        assert_eq!((h.source, h.destination), ([192, 0, 2, 10], [192, 0, 2, 1]));
        assert_eq!(h.calc_header_checksum(), h.header_checksum);
        (p, h)
    }

    #[test]
    fn a_syn_to_a_closed_port_gets_a_reset_acknowledging_it() {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([192, 0, 2, 1], [192, 0, 2, 10], 64)
            .tcp(40000, 9999, 1000, 64240)
            .syn();
        let mut f = Vec::new();
        b.write(&mut f, &[]).unwrap();
        f.resize(60, 0); // Ethernet padding must not count as payload
        let ip = l3_of(&f).ipv4().unwrap();
        let mut slot = slot_with(&f);
        let len = answer_tcp_reset(&mut slot, f.len(), &ip).unwrap();
        let (p, h) = answered(&slot[..len]);
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            panic!()
        };
        assert_eq!((tcp.source_port(), tcp.destination_port()), (9999, 40000));
        assert!(tcp.rst() && tcp.ack() && !tcp.syn());
        assert_eq!(
            (tcp.sequence_number(), tcp.acknowledgment_number()),
            (0, 1001)
        );
        let want = tcp
            .to_header()
            .calc_checksum_ipv4(&h, tcp.payload())
            .unwrap();
        assert_eq!(tcp.checksum(), want);
        // A reset is never answered.
        let ip = l3_of(&slot[..len]).ipv4().unwrap();
        assert!(answer_tcp_reset(&mut slot, len, &ip).is_none());
    }

    #[test]
    fn a_segment_with_ack_gets_a_reset_with_its_acknowledgment_as_sequence() {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([192, 0, 2, 1], [192, 0, 2, 10], 64)
            .tcp(40000, 9999, 1000, 64240)
            .ack(777);
        let mut f = Vec::new();
        b.write(&mut f, b"data").unwrap();
        let ip = l3_of(&f).ipv4().unwrap();
        let mut slot = slot_with(&f);
        let len = answer_tcp_reset(&mut slot, f.len(), &ip).unwrap();
        let p = etherparse::SlicedPacket::from_ethernet(&slot[..len]).unwrap();
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            panic!()
        };
        assert!(tcp.rst() && !tcp.ack());
        assert_eq!(tcp.sequence_number(), 777);
        assert!(tcp.payload().is_empty());
    }

    #[test]
    fn a_datagram_to_a_closed_port_gets_port_unreachable_quoting_it() {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([192, 0, 2, 1], [192, 0, 2, 10], 64)
            .udp(40000, 9999);
        let mut f = Vec::new();
        b.write(&mut f, b"a query of some length").unwrap();
        let ip = l3_of(&f).ipv4().unwrap();
        let mut slot = slot_with(&f);
        let error = (msg_type::DEST_UNREACHABLE, icmp::unreachable::PORT);
        let len = answer_icmp_error(&mut slot, f.len(), &ip, error, ip.dst).unwrap();
        assert_eq!(len, 14 + 20 + 8 + 20 + 8);
        let (p, _) = answered(&slot[..len]);
        let Some(etherparse::TransportSlice::Icmpv4(icmp)) = p.transport else {
            panic!()
        };
        assert!(matches!(
            icmp.icmp_type(),
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port
            )
        ));
        assert_eq!(
            icmp.checksum(),
            icmp.header().icmp_type.calc_checksum(icmp.payload())
        );
        assert_eq!(icmp.payload(), &f[14..14 + 28], "the quote");
    }

    const UPLINK_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x10]);

    /// An engine with an uplink (192.0.2.10 at `UPLINK_MAC`) and a container `web` (172.17.0.2)
    /// publishing udp/5353 as 53: the engine, the uplink and the handles of both ports.
    fn uplinked() -> (Engine, PortId, MemoryPortHandle, MemoryPortHandle) {
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
            mac: UPLINK_MAC,
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
            routed: false,
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
        (e, up, up_h, web_h)
    }

    /// A datagram from outside to the uplink address, to `port`, sent to Ethernet `dst`.
    fn datagram(dst: MacAddr, port: u16) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x99], dst.0)
            .ipv4([192, 0, 2, 1], [192, 0, 2, 10], 64)
            .udp(40000, port);
        let mut f = Vec::new();
        b.write(&mut f, b"query").unwrap();
        f
    }

    /// A new flow whose frame is too short for its rewrite (a UDP header cut after the ports, so
    /// the checksum cannot be updated): dropped as `nat-rewrite`, and no connection is left behind.
    /// (Before the fix it was counted as `not-local` and its conntrack entry stayed.)
    #[test]
    fn a_failed_rewrite_keeps_no_connection_and_says_why() {
        let (mut e, up, up_h, web_h) = uplinked();
        let f = datagram(UPLINK_MAC, 5353);

        // Cut after the UDP ports, with a total length that says so (else ingress drops it).
        let mut cut = f[..14 + 20 + 4].to_vec();
        cut[16..18].copy_from_slice(&24u16.to_be_bytes());
        up_h.inject(&cut);
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

    /// IPv4 on the uplink for another MAC is not switchyard's, even to its address: neither
    /// answered (the answer would leave from that other MAC) nor translated; counted as
    /// `not-local`. Found by the `pipeline` fuzz target (a port unreachable sent from a
    /// container's MAC out of the uplink).
    #[test]
    fn ipv4_on_the_uplink_for_another_mac_is_not_answered_or_translated() {
        let (mut e, up, up_h, web_h) = uplinked();
        let other = MacAddr([2, 0x42, 172, 17, 0, 2]);
        for port in [9, 5353] {
            up_h.inject(&datagram(other, port));
            e.step();
        }
        let c = e.ports[up.0 as usize].as_ref().unwrap().counters;
        assert_eq!(c.dropped(DropReason::NotLocal), 2);
        assert!(up_h.take_sent().is_empty(), "nothing answered");
        assert!(web_h.take_sent().is_empty(), "nothing translated");
        assert!(e.tables.conntrack.is_empty());
        // The same to the uplink's MAC: a port unreachable from the uplink's MAC, a translation.
        up_h.inject(&datagram(UPLINK_MAC, 9));
        e.step();
        let answer = up_h.take_sent();
        assert_eq!(answer.len(), 1);
        assert_eq!(&answer[0].1[6..12], &UPLINK_MAC.0, "from the uplink's MAC");
        up_h.inject(&datagram(UPLINK_MAC, 5353));
        e.step();
        assert_eq!(web_h.take_sent().len(), 1);
    }

    /// A TCP segment of `flags` from `src`:`sport` to `dst`:`dport`, `eth_src` -> `eth_dst`.
    fn segment(
        (eth_src, eth_dst): (MacAddr, MacAddr),
        (src, sport): ([u8; 4], u16),
        (dst, dport): ([u8; 4], u16),
        syn: bool,
    ) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2(eth_src.0, eth_dst.0)
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1000, 64240);
        let b = if syn { b.syn() } else { b.ack(77).psh() };
        let mut f = Vec::new();
        b.write(&mut f, b"data").unwrap();
        f
    }

    /// The addresses and ports of a sent TCP frame, `(src, sport), (dst, dport)`, after checking
    /// its TCP checksum.
    fn tcp_ends(f: &[u8]) -> (([u8; 4], u16), ([u8; 4], u16)) {
        let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            panic!("IPv4")
        };
        let Some(etherparse::TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!("TCP")
        };
        let (src, dst) = (ip.header().source(), ip.header().destination());
        assert_eq!(tcp.checksum(), tcp.calc_checksum_ipv4(src, dst).unwrap());
        ((src, tcp.source_port()), (dst, tcp.destination_port()))
    }

    /// After a restart (no connection tracked), a published server's retransmission can come
    /// before its client speaks: it leaves from the published port (8080), not masqueraded from
    /// its own (80), and the client's next segment reaches the server through the same entry.
    /// Two mappings to one server port: such a segment is dropped (which one is unknown), while
    /// a SYN from that port is still a connection of the container's own, masqueraded.
    #[test]
    fn a_published_servers_segment_without_a_connection_leaves_from_its_published_port() {
        use crate::wire::ipv4::protocol::TCP;
        let (mut e, _, up_h, web_h) = uplinked();
        let (web_mac, gw_mac) = (MacAddr([2, 0, 0, 0, 0, 2]), MacAddr([2, 0, 0, 0, 0, 1]));
        let client_mac = MacAddr([2, 0, 0, 0, 0, 0x99]);
        let web_ip = Ipv4Addr::new(172, 17, 0, 2);
        let web = e
            .tables
            .cam
            .lookup(DomainId(0), VlanId(0), web_mac)
            .unwrap();
        e.tables.policy.set_role(
            web,
            PortRole::Container(crate::table::ContainerGuard {
                mac: web_mac,
                ips: vec![web_ip],
                allow_spoofing: false,
            }),
        );
        let publish = |id, host_port| Publish {
            id,
            protocol: TCP,
            host_port,
            target: web_ip,
            target_port: 80,
            target_mac: web_mac,
            domain: DomainId(0),
        };
        e.tables.nat.set_publish(&[publish(8, 8080)]);
        e.tables
            .nat
            .learn_neighbor(Ipv4Addr::new(192, 0, 2, 1), client_mac);

        // The server's segment first: out of the uplink from 192.0.2.10:8080.
        web_h.inject(&segment(
            (web_mac, gw_mac),
            ([172, 17, 0, 2], 80),
            ([192, 0, 2, 1], 40000),
            false,
        ));
        e.step();
        let out = up_h.take_sent();
        assert_eq!(out.len(), 1, "translated, not dropped");
        assert_eq!(
            tcp_ends(&out[0].1),
            (([192, 0, 2, 10], 8080), ([192, 0, 2, 1], 40000))
        );
        assert_eq!(&out[0].1[..12], &[client_mac.0, UPLINK_MAC.0].concat()[..]);
        assert_eq!(e.tables.conntrack.len(), 1);

        // The client's answer reaches the server through that entry, as 172.17.0.2:80.
        up_h.inject(&segment(
            (client_mac, UPLINK_MAC),
            ([192, 0, 2, 1], 40000),
            ([192, 0, 2, 10], 8080),
            false,
        ));
        e.step();
        let inside = web_h.take_sent();
        assert_eq!(inside.len(), 1);
        assert_eq!(
            tcp_ends(&inside[0].1),
            (([192, 0, 2, 1], 40000), ([172, 17, 0, 2], 80))
        );
        assert_eq!(e.tables.conntrack.len(), 1, "one connection");

        // Two mappings to web:80: which one the client used is unknown, so dropped.
        e.tables
            .nat
            .set_publish(&[publish(8, 8080), publish(9, 9090)]);
        web_h.inject(&segment(
            (web_mac, gw_mac),
            ([172, 17, 0, 2], 80),
            ([192, 0, 2, 1], 40001),
            false,
        ));
        e.step();
        assert!(up_h.take_sent().is_empty());
        assert_eq!(e.tables.conntrack.len(), 1);
        // A SYN from port 80 opens a connection of the container's own: masqueraded.
        web_h.inject(&segment(
            (web_mac, gw_mac),
            ([172, 17, 0, 2], 80),
            ([192, 0, 2, 1], 40002),
            true,
        ));
        e.step();
        assert_eq!(up_h.take_sent().len(), 1);
        assert_eq!(e.tables.conntrack.len(), 2);

        // On a routed network clients reach web by its own address, untracked: its segment is
        // routed as it is (from 172.17.0.2:80), never taken for the published port's.
        e.tables.nat.set_publish(&[publish(8, 8080)]);
        let mut routed = *e.tables.nat.network(DomainId(0)).unwrap();
        routed.routed = true;
        e.tables.nat.set_networks(&[routed]);
        web_h.inject(&segment(
            (web_mac, gw_mac),
            ([172, 17, 0, 2], 80),
            ([192, 0, 2, 1], 40003),
            false,
        ));
        e.step();
        let out = up_h.take_sent();
        assert_eq!(out.len(), 1, "routed");
        assert_eq!(tcp_ends(&out[0].1).0, ([172, 17, 0, 2], 80));
        assert_eq!(e.tables.conntrack.len(), 2, "nothing tracked");
    }
}
