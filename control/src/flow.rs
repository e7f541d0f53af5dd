//! What-if packets: `switchyard trace packet --in PORT 'tcp,src=172.17.0.2,dst=172.17.0.3,dport=80'`
//! (the field names of `ovs-appctl ofproto/trace`, simplified) turned into real frame bytes.
//!
//! Fields: a protocol (`tcp`, `udp`, `icmp`, `arp`), `src`, `dst` (IPv4), `sport`, `dport`,
//! `smac`/`dl_src`, `dmac`/`dl_dst`, `flags` (TCP: `S`, `SA`, `A`, `F`, `R`, `P` combined;
//! default `S`), `ttl`. MACs left out are filled in by the daemon from what it knows (the sender's
//! own MAC, the destination container's MAC, or the gateway's for other subnets), so a user writes
//! addresses, as they think of traffic.

use std::net::Ipv4Addr;

use dataplane::wire::arp::{self, ArpPacket, ArpRepr};
use dataplane::wire::ethernet::{self, ethertype, EthernetFrame};
use dataplane::wire::icmp::{self, Icmpv4Packet};
use dataplane::wire::ipv4::{self, protocol, Ipv4Packet};
use dataplane::wire::tcp::{self, TcpPacket};
use dataplane::wire::udp::{self, UdpPacket};
use dataplane::MacAddr;

use crate::api::ApiError;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_input(message)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    Arp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    pub proto: Proto,
    pub src: Option<Ipv4Addr>,
    pub dst: Option<Ipv4Addr>,
    pub sport: u16,
    pub dport: u16,
    pub smac: Option<MacAddr>,
    pub dmac: Option<MacAddr>,
    pub tcp_flags: u8,
    pub ttl: u8,
}

fn parse_mac(v: &str, spec: &str) -> Result<MacAddr, ApiError> {
    v.parse()
        .map_err(|_| bad(format!("invalid MAC '{v}' in flow '{spec}'")))
}

fn parse_flags(v: &str, spec: &str) -> Result<u8, ApiError> {
    let mut flags = 0;
    for c in v.chars() {
        flags |= match c.to_ascii_uppercase() {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            'A' => 0x10,
            _ => {
                return Err(bad(format!(
                    "invalid TCP flags '{v}' in flow '{spec}': use F, S, R, P, A"
                )))
            }
        };
    }
    Ok(flags)
}

impl FlowSpec {
    pub fn parse(spec: &str) -> Result<FlowSpec, ApiError> {
        let mut f = FlowSpec {
            proto: Proto::Tcp,
            src: None,
            dst: None,
            sport: 40000,
            dport: 80,
            smac: None,
            dmac: None,
            tcp_flags: 0x02,
            ttl: 64,
        };
        let mut proto_seen = false;
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((k, v)) = item.split_once('=') else {
                f.proto = match item {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    "icmp" => Proto::Icmp,
                    "arp" => Proto::Arp,
                    _ => {
                        return Err(bad(format!(
                            "unknown word '{item}' in flow '{spec}': expected tcp, udp, icmp, arp or KEY=VALUE"
                        )))
                    }
                };
                proto_seen = true;
                continue;
            };
            let ip = |v: &str| {
                v.parse::<Ipv4Addr>()
                    .map_err(|_| bad(format!("invalid IPv4 address '{v}' in flow '{spec}'")))
            };
            let port = |v: &str| {
                v.parse::<u16>()
                    .map_err(|_| bad(format!("invalid port '{v}' in flow '{spec}'")))
            };
            match k {
                "src" | "nw_src" => f.src = Some(ip(v)?),
                "dst" | "nw_dst" => f.dst = Some(ip(v)?),
                "sport" | "tp_src" => f.sport = port(v)?,
                "dport" | "tp_dst" => f.dport = port(v)?,
                "smac" | "dl_src" => f.smac = Some(parse_mac(v, spec)?),
                "dmac" | "dl_dst" => f.dmac = Some(parse_mac(v, spec)?),
                "flags" => f.tcp_flags = parse_flags(v, spec)?,
                "ttl" => {
                    f.ttl = v
                        .parse()
                        .map_err(|_| bad(format!("invalid ttl '{v}' in flow '{spec}'")))?
                }
                _ => {
                    return Err(bad(format!(
                        "unknown field '{k}' in flow '{spec}': use src, dst, sport, dport, smac, dmac, flags, ttl"
                    )))
                }
            }
        }
        if !proto_seen && spec.trim().is_empty() {
            return Err(bad("empty flow: give at least a protocol and addresses, e.g. 'tcp,src=172.17.0.2,dst=172.17.0.3,dport=80'"));
        }
        if f.src.is_none() || f.dst.is_none() {
            return Err(bad(format!("flow '{spec}' needs src=IP and dst=IP")));
        }
        Ok(f)
    }

    /// The frame, with real checksums, built with the data plane's wire types; MACs must be
    /// known by now.
    pub fn frame(&self, smac: MacAddr, dmac: MacAddr) -> Vec<u8> {
        let src = self.src.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let dst = self.dst.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let l3_len = match self.proto {
            Proto::Arp => arp::HEADER_LEN,
            Proto::Tcp => ipv4::HEADER_LEN + tcp::HEADER_LEN,
            Proto::Udp => ipv4::HEADER_LEN + udp::HEADER_LEN,
            Proto::Icmp => ipv4::HEADER_LEN + icmp::HEADER_LEN,
        };
        // Padded to the Ethernet minimum (60 bytes without FCS).
        let mut f = vec![0u8; (ethernet::HEADER_LEN + l3_len).max(60)];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(dmac);
        eth.set_src_addr(smac);
        eth.set_ethertype(if self.proto == Proto::Arp {
            ethertype::ARP
        } else {
            ethertype::IPV4
        });
        let l3 = &mut eth.payload_mut()[..l3_len];
        let protocol = match self.proto {
            Proto::Arp => {
                ArpRepr {
                    operation: arp::operation::REQUEST,
                    sender_mac: smac,
                    sender_ip: src,
                    target_mac: MacAddr::ZERO,
                    target_ip: dst,
                }
                .emit(&mut ArpPacket::new_unchecked(l3));
                return f;
            }
            Proto::Tcp => protocol::TCP,
            Proto::Udp => protocol::UDP,
            Proto::Icmp => protocol::ICMP,
        };
        let mut ip = Ipv4Packet::new_unchecked(l3);
        ip.set_version(4);
        ip.set_header_len(ipv4::HEADER_LEN);
        ip.set_total_len(l3_len as u16);
        ip.set_ident(1);
        ip.set_dont_frag(true);
        ip.set_ttl(self.ttl);
        ip.set_protocol(protocol);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        let l4 = ip.payload_mut();
        match self.proto {
            Proto::Tcp => {
                let mut t = TcpPacket::new_unchecked(l4);
                t.set_src_port(self.sport);
                t.set_dst_port(self.dport);
                t.set_seq_number(1);
                t.set_header_len(tcp::HEADER_LEN);
                t.set_flags(self.tcp_flags);
                t.set_window_len(0xffff);
                t.fill_checksum_v4(src, dst);
            }
            Proto::Udp => {
                let mut u = UdpPacket::new_unchecked(l4);
                u.set_src_port(self.sport);
                u.set_dst_port(self.dport);
                u.set_len(udp::HEADER_LEN as u16);
                u.fill_checksum_v4(src, dst);
            }
            Proto::Icmp | Proto::Arp => {
                let mut i = Icmpv4Packet::new_unchecked(l4);
                i.set_msg_type(icmp::msg_type::ECHO_REQUEST);
                i.set_echo_ident(0x1234);
                i.set_echo_seq_no(1);
                i.fill_checksum();
            }
        }
        ip.fill_checksum();
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::wire::checksum::checksum;

    #[test]
    fn parses_ovs_style_flows() {
        let f = FlowSpec::parse("tcp,src=172.17.0.2,dst=172.17.0.3,dport=5432").unwrap();
        assert_eq!((f.proto, f.dport, f.tcp_flags), (Proto::Tcp, 5432, 0x02));
        let f = FlowSpec::parse("udp, nw_src=10.0.0.1, nw_dst=10.0.0.2, tp_dst=53").unwrap();
        assert_eq!((f.proto, f.dport), (Proto::Udp, 53));
        for (spec, msg) in [
            ("tcp,src=1.2.3,dst=1.2.3.4", "invalid IPv4 address '1.2.3'"),
            ("tcp,src=1.2.3.4", "needs src=IP and dst=IP"),
            ("sctp,src=1.2.3.4,dst=1.2.3.5", "unknown word 'sctp'"),
            (
                "tcp,src=1.2.3.4,dst=1.2.3.5,colour=red",
                "unknown field 'colour'",
            ),
            (
                "tcp,src=1.2.3.4,dst=1.2.3.5,flags=X",
                "invalid TCP flags 'X'",
            ),
        ] {
            let e = FlowSpec::parse(spec).unwrap_err();
            assert!(e.message.contains(msg), "{spec}: {}", e.message);
        }
    }

    #[test]
    fn frames_have_valid_checksums() {
        for spec in [
            "tcp,src=10.0.0.1,dst=10.0.0.2,dport=80,flags=SA",
            "udp,src=10.0.0.1,dst=10.0.0.2,dport=53",
            "icmp,src=10.0.0.1,dst=10.0.0.2",
        ] {
            let f = FlowSpec::parse(spec)
                .unwrap()
                .frame(MacAddr([2; 6]), MacAddr([4; 6]));
            let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
                panic!("{spec}")
            };
            assert_eq!(checksum(&f[14..34]), 0, "{spec}");
            match &p.transport {
                Some(etherparse::TransportSlice::Tcp(t)) => assert_eq!(
                    t.checksum(),
                    t.to_header()
                        .calc_checksum_ipv4(&ip.header().to_header(), t.payload())
                        .unwrap()
                ),
                Some(etherparse::TransportSlice::Udp(u)) => assert_eq!(
                    u.checksum(),
                    u.to_header()
                        .calc_checksum_ipv4(&ip.header().to_header(), u.payload())
                        .unwrap()
                ),
                Some(etherparse::TransportSlice::Icmpv4(_)) => assert_eq!(checksum(&f[34..42]), 0),
                other => panic!("{spec}: {other:?}"),
            }
        }
        let arp = FlowSpec::parse("arp,src=10.0.0.1,dst=10.0.0.2").unwrap();
        let f = arp.frame(MacAddr([2; 6]), MacAddr::BROADCAST);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[38..42], &[10, 0, 0, 2]);
    }
}
