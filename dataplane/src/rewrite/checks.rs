//! Rewrites checked against full recomputation (etherparse and our own checksum over the bytes).

use super::*;
use crate::wire::bytes::read_u16;
use crate::wire::checksum::update_u16;
use crate::wire::checksum::{checksum, fold, pseudo_header_v4, sum};
use crate::wire::vnet::flags;
use proptest::prelude::*;

const A: [u8; 4] = [10, 0, 0, 2];
const B: [u8; 4] = [192, 0, 2, 1];
const U: [u8; 4] = [192, 0, 2, 10];

fn ip(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 7, 1000);
    let mut f = Vec::new();
    b.write(&mut f, payload).unwrap();
    f
}

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    let mut f = Vec::new();
    b.write(&mut f, payload).unwrap();
    f
}

/// The IPv4 header and the L4 checksum both verify (sum over the covered bytes is 0xffff).
fn assert_valid(f: &[u8]) {
    let ihl = usize::from(f[14] & 0x0f) * 4;
    assert_eq!(checksum(&f[14..14 + ihl]), 0, "IPv4 header checksum");
    let proto = f[14 + 9];
    let l4 = &f[14 + ihl..];
    match proto {
        6 | 17 => {
            if proto == 17 && l4[6..8] == [0, 0] {
                return;
            }
            let ph = pseudo_header_v4(
                f[26..30].try_into().unwrap(),
                f[30..34].try_into().unwrap(),
                proto,
                l4.len() as u32,
            );
            assert_eq!(!fold(sum(ph, l4)), 0, "L4 checksum");
        }
        1 => assert_eq!(checksum(l4), 0, "ICMP checksum"),
        _ => {}
    }
}

fn rw(src: Option<([u8; 4], u16)>, dst: Option<([u8; 4], u16)>) -> Rewrite {
    Rewrite {
        src_mac: Some(MacAddr([2, 0, 0, 0, 0, 0x11])),
        dst_mac: Some(MacAddr([2, 0, 0, 0, 0, 0x22])),
        src: src.map(|(a, p)| (ip(a), p)),
        dst: dst.map(|(a, p)| (ip(a), p)),
    }
}

#[test]
fn tcp_and_udp_with_full_checksums() {
    for mut f in [tcp(A, B, 40000, 80, b"hello"), udp(A, B, 40000, 53, b"q")] {
        assert_valid(&f);
        apply(
            &mut f,
            14,
            &VnetHeader::default(),
            &rw(Some((U, 1024)), Some((B, 8080))),
            None,
        )
        .unwrap();
        assert_valid(&f);
        assert_eq!(&f[26..30], &U);
        assert_eq!(&f[34..36], &1024u16.to_be_bytes());
        assert_eq!(&f[36..38], &8080u16.to_be_bytes());
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 0x22]);
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 0x11]);
    }
}

#[test]
fn udp_without_checksum_stays_without() {
    let mut f = udp(A, B, 1, 2, b"x");
    f[14 + 20 + 6] = 0;
    f[14 + 20 + 7] = 0;
    apply(
        &mut f,
        14,
        &VnetHeader::default(),
        &rw(Some((U, 9)), None),
        None,
    )
    .unwrap();
    assert_eq!(&f[40..42], &[0, 0]);
    assert_valid(&f);
}

/// Makes the frame checksum-partial as Linux hands it over: the L4 field holds the folded,
/// uncomplemented pseudo-header sum. Returns the vnet header that says so.
fn make_partial(f: &mut [u8], check_at: usize) -> VnetHeader {
    let l4 = 34;
    let len = (f.len() - l4) as u32;
    let ph = pseudo_header_v4(
        f[26..30].try_into().unwrap(),
        f[30..34].try_into().unwrap(),
        f[23],
        len,
    );
    f[l4 + check_at..l4 + check_at + 2].copy_from_slice(&fold(ph).to_be_bytes());
    VnetHeader {
        flags: flags::NEEDS_CSUM,
        csum_start: l4 as u16,
        csum_offset: check_at as u16,
        ..VnetHeader::default()
    }
}

/// Completes a partial checksum as a device would.
fn complete(f: &mut [u8], vnet: &VnetHeader) {
    let start = vnet.csum_start as usize;
    let at = start + vnet.csum_offset as usize;
    let c = !fold(sum(0, &f[start..]));
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn partial_checksums_follow_addresses_but_not_ports_even_on_gso_frames() {
    for (mut f, check_at) in [
        (tcp(A, B, 40000, 80, &[7u8; 100]), 16),
        (udp(A, B, 40000, 53, &[9u8; 100]), 6),
        (tcp(A, B, 40000, 80, &vec![5u8; 20_000]), 16),
    ] {
        let vnet = make_partial(&mut f, check_at);
        if f.len() > 10_000 {
            // A GSO super-frame's IPv4 total length says nothing: never trusted.
            let old = read_u16(&f, 16);
            f[16..18].copy_from_slice(&[0, 0]);
            let c = update_u16(read_u16(&f, 24), old, 0);
            f[24..26].copy_from_slice(&c.to_be_bytes());
        }
        apply(
            &mut f,
            14,
            &vnet,
            &rw(Some((U, 2000)), Some(([172, 17, 0, 2], 8080))),
            None,
        )
        .unwrap();
        complete(&mut f, &vnet);
        assert_valid(&f);
        assert_eq!(&f[30..34], &[172, 17, 0, 2]);
    }
}

#[test]
fn icmp_echo_identifier_is_the_port() {
    let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(A, B, 64)
        .icmpv4_echo_request(0x1234, 1);
    let mut f = Vec::new();
    b.write(&mut f, b"ping").unwrap();
    apply(
        &mut f,
        14,
        &VnetHeader::default(),
        &rw(Some((U, 0x4321)), Some((B, 0x4321))),
        None,
    )
    .unwrap();
    assert_valid(&f);
    assert_eq!(&f[38..40], &0x4321u16.to_be_bytes());
}

#[test]
fn icmp_errors_rewrite_their_quote() {
    // The world answers a masqueraded UDP packet (U:2000 -> B:53) with port unreachable.
    let quoted = udp(U, B, 2000, 53, b"question");
    let b = etherparse::PacketBuilder::ethernet2([4; 6], [2; 6])
        .ipv4(B, U, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ));
    let mut f = Vec::new();
    b.write(&mut f, &quoted[14..]).unwrap();
    assert_valid(&f);
    assert_eq!(quote_at(&f, 14), Some((17, ip(U), 2000, ip(B), 53)));
    // Translated for the container A:40000 that sent the original.
    let outer = rw(None, Some((A, 0)));
    let inner = Rewrite {
        src: Some((ip(A), 40000)),
        ..Rewrite::default()
    };
    apply(&mut f, 14, &VnetHeader::default(), &outer, Some(&inner)).unwrap();
    assert_valid(&f);
    assert_eq!(&f[30..34], &A, "outer destination");
    let q = 14 + 20 + 8;
    assert_eq!(checksum(&f[q..q + 20]), 0, "quoted IPv4 header checksum");
    assert_eq!(&f[q + 12..q + 16], &A, "quoted source");
    assert_eq!(&f[q + 20..q + 22], &40000u16.to_be_bytes(), "quoted port");
    let qudp = &f[q + 20..];
    let ph = pseudo_header_v4(A, B, 17, qudp.len() as u32);
    assert_eq!(!fold(sum(ph, qudp)), 0, "quoted UDP checksum");
}

#[test]
fn non_first_fragments_change_addresses_only() {
    let mut f = udp(A, B, 1, 2, b"abcdefgh");
    let old = read_u16(&f, 20);
    f[20..22].copy_from_slice(&[0x00, 0x10]);
    let c = update_u16(read_u16(&f, 24), old, 0x0010);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let before_l4 = f[34..].to_vec();
    apply(
        &mut f,
        14,
        &VnetHeader::default(),
        &rw(Some((U, 9)), None),
        None,
    )
    .unwrap();
    assert_eq!(checksum(&f[14..34]), 0);
    assert_eq!(&f[26..30], &U);
    assert_eq!(f[34..], before_l4[..], "no L4 header in a later fragment");
}

#[test]
fn errors_instead_of_panics() {
    let mut short = tcp(A, B, 1, 2, b"")[..30].to_vec();
    assert_eq!(
        apply(
            &mut short,
            14,
            &VnetHeader::default(),
            &Rewrite::default(),
            None
        ),
        Err(RewriteError::Truncated)
    );
    let mut v6 = vec![0u8; 60];
    v6[14] = 0x60;
    assert_eq!(
        apply(
            &mut v6,
            14,
            &VnetHeader::default(),
            &Rewrite::default(),
            None
        ),
        Err(RewriteError::NotIpv4)
    );
}

proptest! {
    #[test]
    fn random_rewrites_keep_checksums_valid(
        sport in any::<u16>(), dport in any::<u16>(), nsport in any::<u16>(), ndport in any::<u16>(),
        src in any::<[u8; 4]>(), nsrc in any::<[u8; 4]>(), ndst in any::<[u8; 4]>(),
        payload in proptest::collection::vec(any::<u8>(), 0..200), is_udp in any::<bool>(),
    ) {
        let mut f = if is_udp { udp(src, B, sport, dport, &payload) } else { tcp(src, B, sport, dport, &payload) };
        apply(&mut f, 14, &VnetHeader::default(), &rw(Some((nsrc, nsport)), Some((ndst, ndport))), None).unwrap();
        assert_valid(&f);
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200), partial in any::<bool>()) {
        let vnet = VnetHeader { flags: if partial { flags::NEEDS_CSUM } else { 0 }, ..VnetHeader::default() };
        let inner = rw(Some((A, 1)), Some((B, 2)));
        let _ = quote_at(&bytes, 14);
        let _ = apply(&mut bytes, 14, &vnet, &rw(Some((U, 3)), Some((B, 4))), Some(&inner));
    }
}
