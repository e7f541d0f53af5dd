//! The wire views over arbitrary bytes. Once a checked constructor succeeds no accessor may
//! panic (ARCHITECTURE's wire invariant), the lengths it vouched for hold, and where etherparse
//! (the independent reference) parses the same header, the fields agree. VXLAN too: the view,
//! and the decapsulation every datagram from the underlay goes through, whose verdict must agree
//! with the view (a VNI only with the I flag and room for an Ethernet header).
#![no_main]

use dataplane::wire::arp::{ArpPacket, ArpRepr};
use dataplane::wire::ethernet::EthernetFrame;
use dataplane::wire::headers::L3;
use dataplane::wire::icmp::Icmpv4Packet;
use dataplane::wire::ipv4::Ipv4Packet;
use dataplane::wire::ipv6::Ipv6Packet;
use dataplane::wire::tcp::TcpPacket;
use dataplane::wire::udp::UdpPacket;
use dataplane::wire::vxlan::{self, VxlanPacket, VxlanRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ethernet(data);
    ipv4(data);
    ipv6(data);
    tcp(data);
    udp(data);
    icmp(data);
    arp(data);
    vxlan(data);
    gro(data);
    recover(data);
});

/// `recover_offloads` over a decapsulated frame (the overlay MTU from the first two bytes): it
/// never panics, refuses only frames above the MTU, and a header it gives points inside the
/// frame; a super-frame is above the MTU and its segments (headers and `gso_size` bytes) fit it.
fn recover(b: &[u8]) {
    let [hi, lo, rest @ ..] = b else {
        return;
    };
    let mtu = usize::from(u16::from_be_bytes([*hi, *lo]));
    let mut frame = rest.to_vec();
    let len = frame.len();
    let l3 = if len >= 14 && frame[12..14] == [0x81, 0x00] {
        18
    } else {
        14
    };
    match dataplane::recover_offloads(&mut frame, mtu) {
        Err(_) => assert!(len > mtu + 14, "refused {len} bytes at MTU {mtu}"),
        Ok(vnet) => {
            assert_eq!(frame.len(), len);
            if vnet.needs_csum() {
                let (hdr, start) = (usize::from(vnet.hdr_len), usize::from(vnet.csum_start));
                assert!(start < hdr && hdr <= len);
                assert!(start + usize::from(vnet.csum_offset) + 2 <= hdr);
            }
            if vnet.is_gso() {
                assert!(len - l3 > mtu, "a super-frame of {len} bytes within MTU {mtu}");
                let headers = usize::from(vnet.hdr_len) - l3;
                assert!(vnet.gso_size > 0 && headers + usize::from(vnet.gso_size) <= mtu);
            } else {
                assert!(vnet == Default::default() || vnet.needs_csum());
            }
        }
    }
}

/// `coalesce_tcp` over a batch of datagrams as `UDP_GRO` hands them (stride and VXLAN header
/// length from the first two bytes): it never panics, and a merge it accepts is one IPv4/TCP
/// super-frame no longer than the batch whose IPv4 length, headers and checksum offsets lie in it.
fn gro(b: &[u8]) {
    let [stride, skip, rest @ ..] = b else {
        return;
    };
    let (stride, skip) = (usize::from(*stride) + 1, usize::from(*skip % 16));
    let mut buf = rest.to_vec();
    let len = buf.len();
    let Some((merged, vnet)) = dataplane::coalesce_tcp(&mut buf, len, stride, skip) else {
        return;
    };
    assert!(merged <= len, "merged {merged} of {len}");
    let (hdr, start) = (usize::from(vnet.hdr_len), usize::from(vnet.csum_start));
    assert!(hdr < merged && start < hdr);
    assert!(start + usize::from(vnet.csum_offset) + 2 <= hdr);
    assert!(vnet.gso_size > 0 && usize::from(vnet.gso_size) < stride);
    let l3 = if buf[12..14] == [0x81, 0x00] { 18 } else { 14 };
    let ip = Ipv4Packet::new_checked(&buf[l3..merged]).expect("an IPv4 header");
    assert_eq!(usize::from(ip.total_len()), merged - l3);
    assert!(ip.verify_checksum());
}

fn vxlan(b: &[u8]) {
    use dataplane::vxlan::{decapsulate, flow_source_port, DecapError};
    let decapsulated = decapsulate(b);
    let Ok(packet) = VxlanPacket::new_checked(b) else {
        assert!(decapsulated.is_err(), "decapsulated what the view refuses");
        if b.len() < vxlan::HEADER_LEN {
            assert_eq!(decapsulated, Err(DecapError::Truncated));
        }
        return;
    };
    let _ = (packet.flags(), packet.vni_valid(), packet.vni());
    assert_eq!(packet.payload().len(), b.len() - vxlan::HEADER_LEN);
    let repr = VxlanRepr::parse(&packet).expect("a checked header parses");
    assert!(repr.vni <= vxlan::MAX_VNI);
    let mut emitted = [0u8; vxlan::HEADER_LEN];
    repr.emit(&mut emitted);
    assert_eq!(
        VxlanRepr::parse(&VxlanPacket::new_unchecked(&emitted[..])),
        Ok(repr)
    );
    match decapsulated {
        Ok((vni, start)) => {
            assert_eq!((vni, start), (repr.vni, vxlan::HEADER_LEN));
            assert!(
                b.len() >= start + 14,
                "a frame shorter than Ethernet's header"
            );
            let port = flow_source_port(&b[start..]);
            assert!((32768..=60999).contains(&port), "source port {port}");
        }
        Err(why) => {
            assert_eq!(why, DecapError::Truncated);
            assert!(packet.payload().len() < 14);
        }
    }
}

fn ethernet(b: &[u8]) {
    let Ok(eth) = EthernetFrame::new_checked(b) else {
        return;
    };
    let _ = (
        eth.dst_addr(),
        eth.src_addr(),
        eth.ethertype(),
        eth.vlan_tag(),
    );
    let offset = eth.l3_offset();
    assert!(offset <= b.len());
    assert_eq!(eth.l3_payload().len(), b.len() - offset);
    let _ = eth.payload();
    // The one parse the packet path does, from wherever the view says L3 starts.
    let _ = L3::parse(b, eth.inner_ethertype(), offset);
    if let Ok(reference) = etherparse::Ethernet2HeaderSlice::from_slice(b) {
        assert_eq!(reference.source(), eth.src_addr().0);
        assert_eq!(reference.destination(), eth.dst_addr().0);
        assert_eq!(reference.ether_type().0, eth.ethertype());
    }
}

fn ipv4(b: &[u8]) {
    let Ok(ip) = Ipv4Packet::new_checked_header(b) else {
        return;
    };
    let header_len = ip.header_len();
    assert!((20..=b.len()).contains(&header_len));
    let _ = (
        ip.version(),
        ip.dscp(),
        ip.ecn(),
        ip.ident(),
        ip.dont_frag(),
        ip.more_frags(),
    );
    let _ = (
        ip.frag_offset(),
        ip.is_fragment(),
        ip.ttl(),
        ip.checksum(),
        ip.verify_checksum(),
    );
    let _ = (ip.options(), ip.payload());
    if let Ok(whole) = Ipv4Packet::new_checked(b) {
        let total = usize::from(whole.total_len());
        assert!(total >= header_len && total <= b.len());
        assert_eq!(whole.payload().len(), total - header_len);
    }
    if let Ok(reference) = etherparse::Ipv4HeaderSlice::from_slice(b) {
        assert_eq!(reference.source_addr(), ip.src_addr());
        assert_eq!(reference.destination_addr(), ip.dst_addr());
        assert_eq!(reference.protocol().0, ip.protocol());
        assert_eq!(usize::from(reference.ihl()) * 4, header_len);
        assert_eq!(reference.total_len(), ip.total_len());
        assert_eq!(reference.ttl(), ip.ttl());
        assert_eq!(reference.fragments_offset().value(), ip.frag_offset() / 8);
    }
}

fn ipv6(b: &[u8]) {
    let Ok(ip) = Ipv6Packet::new_checked(b) else {
        return;
    };
    let _ = (
        ip.version(),
        ip.traffic_class(),
        ip.flow_label(),
        ip.hop_limit(),
    );
    let _ = (ip.payload(), ip.total_len());
    if let Ok(reference) = etherparse::Ipv6HeaderSlice::from_slice(b) {
        assert_eq!(reference.source_addr(), ip.src_addr());
        assert_eq!(reference.destination_addr(), ip.dst_addr());
        assert_eq!(reference.next_header().0, ip.next_header());
        assert_eq!(reference.payload_length(), ip.payload_len());
    }
}

fn tcp(b: &[u8]) {
    let Ok(t) = TcpPacket::new_checked(b) else {
        return;
    };
    assert!((20..=b.len()).contains(&t.header_len()));
    let _ = (
        t.flags(),
        t.window_len(),
        t.checksum(),
        t.urgent_at(),
        t.options(),
        t.payload(),
    );
    let (a, z) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
    let _ = t.verify_checksum_v4(a, z);
    if let Ok(reference) = etherparse::TcpHeaderSlice::from_slice(b) {
        assert_eq!(reference.source_port(), t.src_port());
        assert_eq!(reference.destination_port(), t.dst_port());
        assert_eq!(reference.sequence_number(), t.seq_number());
        assert_eq!(reference.acknowledgment_number(), t.ack_number());
        assert_eq!(usize::from(reference.data_offset()) * 4, t.header_len());
    }
}

fn udp(b: &[u8]) {
    let Ok(u) = UdpPacket::new_checked(b) else {
        return;
    };
    let _ = (u.len(), u.checksum(), u.payload());
    let (a, z) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
    let _ = u.verify_checksum_v4(a, z);
    if let Ok(reference) = etherparse::UdpHeaderSlice::from_slice(b) {
        assert_eq!(reference.source_port(), u.src_port());
        assert_eq!(reference.destination_port(), u.dst_port());
        assert_eq!(reference.length(), u.len());
    }
}

fn icmp(b: &[u8]) {
    let Ok(m) = Icmpv4Packet::new_checked(b) else {
        return;
    };
    let _ = (m.msg_type(), m.msg_code(), m.checksum(), m.rest_of_header());
    let _ = (
        m.echo_ident(),
        m.echo_seq_no(),
        m.next_hop_mtu(),
        m.is_error(),
    );
    let _ = (m.payload(), m.data(), m.verify_checksum());
    if let Some(quote) = m.embedded() {
        ipv4(quote);
    }
}

fn arp(b: &[u8]) {
    let Ok(a) = ArpPacket::new_checked(b) else {
        return;
    };
    let _ = (
        a.hardware_type(),
        a.protocol_type(),
        a.hardware_len(),
        a.protocol_len(),
    );
    let _ = (a.operation(), a.is_ethernet_ipv4());
    let _ = ArpRepr::parse(&a);
    if a.is_ethernet_ipv4() {
        let _ = (a.sender_hw_addr(), a.sender_proto_addr());
        let _ = (a.target_hw_addr(), a.target_proto_addr());
    }
}
