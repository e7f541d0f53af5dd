//! Frames through the whole live pipeline (ingress's one parse, anti-spoof, isolation,
//! address-conflict, nat with conntrack and the rewriter, l2, icc, egress offload fixups) of an
//! engine whose tables the input builds: one to three networks of one to three containers each, a
//! host port, maybe a plain and a parent port, icc and `--internal` per network, an uplink with or
//! without a gateway, up to four published ports, a connection table of 8 to 64 entries. A network
//! may be an overlay network: one or two VXLAN ports (in-memory, reporting a tunnel) toward remote
//! hosts with one container each in `arp-proxy`'s table, so ARP for them is answered in place.
//!
//! Not only "no panic": every frame that leaves is checked against what went in.
//! - It never leaves by the port it came in, unless it is the switch's own answer (ARP, ping, a
//!   reset, a port unreachable; on an overlay network an ARP reply for a remote container, with
//!   that container's MAC and address as the cluster has them) or a translated hairpin.
//! - Untranslated, nothing from a VXLAN port leaves by another (split horizon) or by the host
//!   port, and nothing from the host port leaves by a VXLAN port (host-local).
//! - It never crosses networks untranslated: a frame leaving in another domain than it arrived
//!   in was translated by a connection-table entry, and goes where that entry says (toward the
//!   network the flow came from, or where its new destination lives).
//! - It is never translated without a connection entry that maps exactly what went in to what
//!   came out; an entry the frame created for a flow from outside (or a hairpin) has a published
//!   port behind it, and one that masquerades comes from a network that is not `--internal`.
//! - Checksums stay valid: a frame that came in with valid IPv4 and TCP/UDP/ICMP checksums
//!   leaves with valid ones, recomputed by etherparse (the independent reference).
//! - A what-if trace sends nothing.
//!
//! Input: four table bytes, then frames, each `[port][mode]...`: raw bytes (any offload metadata
//! on ports with vnet headers) or a frame built from a few choices among the configured addresses,
//! MACs and ports, so that the fuzzer reaches NAT with valid packets from the first run.
#![no_main]

use std::collections::HashSet;
use std::net::Ipv4Addr;

use dataplane::wire::vnet::VnetHeader;
use dataplane::{
    ContainerGuard, CtConfig, DomainId, Engine, EngineConfig, MacAddr, MemoryPort,
    MemoryPortHandle, NatUpdate, NetworkNat, PolicyUpdate, PortId, PortRole, Publish, Subnet,
    Tunnel, Tuple, Uplink,
};
use etherparse::{
    icmpv4::DestUnreachableHeader, IcmpEchoHeader, Icmpv4Header, Icmpv4Type, IpNumber, Ipv4Header,
    TcpHeader, UdpHeader,
};
use libfuzzer_sys::fuzz_target;

const OUTSIDE: DomainId = DomainId(0);
const UPLINK_MAC: MacAddr = MacAddr([2, 0, 192, 0, 2, 10]);
const UPLINK_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const ROUTER_MAC: MacAddr = MacAddr([2, 0, 192, 0, 2, 1]);
const WORLD: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(198, 51, 100, 7),
    Ipv4Addr::new(203, 0, 113, 5),
];
const PORT_NUMBERS: [u16; 8] = [80, 53, 8080, 8081, 5353, 40000, 40001, 33434];
const HOST_PORTS: [u16; 4] = [8080, 8081, 5353, 80];

struct Network {
    domain: DomainId,
    subnet: Subnet,
    gateway_ip: Ipv4Addr,
    gateway_mac: MacAddr,
    external: bool,
}

struct Port {
    id: PortId,
    domain: DomainId,
    vnet: bool,
    handle: MemoryPortHandle,
    /// The source MAC this port's frames normally carry.
    mac: MacAddr,
    role: Role,
}

/// What the overlay invariants need of a port's role.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Host,
    Vxlan,
    Other,
}

struct Lab {
    engine: Engine,
    ports: Vec<Port>,
    uplink: usize,
    networks: Vec<Network>,
    containers: Vec<(Ipv4Addr, MacAddr, DomainId)>,
    /// Containers on other hosts of overlay networks, in `arp-proxy`'s table.
    remote: Vec<(Ipv4Addr, MacAddr, DomainId)>,
    publish: Vec<Publish>,
    /// Where each connection began: the domain of the frame that created it, by original tuple.
    origin: Vec<(Tuple, DomainId)>,
}

fn mac_of(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([2, 0x42, o[0], o[1], o[2], o[3]])
}

fn add(
    engine: &mut Engine,
    ports: &mut Vec<Port>,
    name: &str,
    vnet: bool,
    domain: DomainId,
    role: PortRole,
    mac: MacAddr,
) {
    let (mut port, handle) = MemoryPort::new(name, vnet);
    let kind = match role {
        PortRole::Host => Role::Host,
        PortRole::Overlay => Role::Vxlan,
        _ => Role::Other,
    };
    if kind == Role::Vxlan {
        // As a VXLAN port reports itself, so traces show the encapsulation.
        port = port.tunneled(Tunnel {
            vni: 256 + u32::from(domain.0),
            local: Ipv4Addr::new(192, 168, 78, 1),
            remote: Ipv4Addr::new(192, 168, 78, 2 + ports.len() as u8),
            udp_port: 4789,
        });
    }
    let id = engine
        .add_port_as(Box::new(port), domain, role)
        .expect("port");
    ports.push(Port {
        id,
        domain,
        vnet,
        handle,
        mac,
        role: kind,
    });
}

/// Builds the engine the table bytes describe.
fn lab(config: &[u8; 4]) -> Lab {
    let conntrack = CtConfig {
        max_entries: 8 << (config[2] % 4),
        ..CtConfig::default()
    };
    let (mut engine, _) = Engine::new(EngineConfig {
        conntrack,
        ..EngineConfig::default()
    })
    .expect("engine");
    let mut ports = Vec::new();
    let mut networks = Vec::new();
    let mut containers = Vec::new();
    let mut remote = Vec::new();
    let mut attached = HashSet::new();
    let shape = [
        config[0],
        config[0].rotate_left(3),
        config[0].rotate_left(6),
    ];
    for (k, &bits) in shape.iter().enumerate().take(1 + config[0] as usize % 3) {
        let domain = DomainId(k as u16 + 1);
        let network = Ipv4Addr::new(172, 17 + k as u8, 0, 0);
        let gateway_ip = Ipv4Addr::new(172, 17 + k as u8, 0, 1);
        let gateway_mac = mac_of(gateway_ip);
        for c in 0..1 + (bits >> 2) % 3 {
            let ip = Ipv4Addr::new(172, 17 + k as u8, 0, 2 + c);
            let role = PortRole::Container(ContainerGuard {
                mac: mac_of(ip),
                ips: vec![ip],
                allow_spoofing: c == 0 && bits & 0x10 != 0,
            });
            add(
                &mut engine,
                &mut ports,
                "ctr",
                c == 1,
                domain,
                role,
                mac_of(ip),
            );
            containers.push((ip, mac_of(ip), domain));
            attached.insert((ip, domain));
        }
        add(
            &mut engine,
            &mut ports,
            "host",
            bits & 0x20 != 0,
            domain,
            PortRole::Host,
            gateway_mac,
        );
        // Maybe a plain port and a parent port (which has vnet headers).
        for (bit, name, role) in [
            (0x40, "plain", PortRole::Plain),
            (0x80, "parent", PortRole::Parent),
        ] {
            if bits & bit != 0 {
                let mac = MacAddr([2, 0x99, 0, 0, k as u8, bit]);
                add(
                    &mut engine,
                    &mut ports,
                    name,
                    bit == 0x80,
                    domain,
                    role,
                    mac,
                );
            }
        }
        // An overlay network: VXLAN ports toward one or two remote hosts, one container behind
        // each, in arp-proxy's table.
        if config[2] & (4 << k) != 0 {
            let mut endpoints = Vec::new();
            for r in 0..1 + (config[2] >> 5) % 2 {
                let ip = Ipv4Addr::new(172, 17 + k as u8, 0, 100 + r);
                add(
                    &mut engine,
                    &mut ports,
                    "vxlan",
                    false,
                    domain,
                    PortRole::Overlay,
                    mac_of(ip),
                );
                endpoints.push((ip, mac_of(ip)));
                remote.push((ip, mac_of(ip), domain));
            }
            engine
                .set_policy(PolicyUpdate::RemoteEndpoints { domain, endpoints })
                .expect("remote endpoints");
        }
        engine
            .set_policy(PolicyUpdate::Icc {
                domain,
                icc: bits & 0x01 != 0,
            })
            .expect("icc");
        networks.push(Network {
            domain,
            subnet: Subnet {
                domain,
                network,
                prefix: 16,
            },
            gateway_ip,
            gateway_mac,
            external: bits & 0x02 == 0 || k == 0,
        });
    }
    let uplink = ports.len();
    add(
        &mut engine,
        &mut ports,
        "uplink",
        config[1] & 0x80 != 0,
        OUTSIDE,
        PortRole::Uplink,
        ROUTER_MAC,
    );
    engine
        .set_policy(PolicyUpdate::Isolation {
            subnets: networks.iter().map(|n| n.subnet).collect(),
            attached,
        })
        .expect("isolation");
    engine
        .set_nat(NatUpdate::Uplink(Some(Uplink {
            port: ports[uplink].id,
            mac: UPLINK_MAC,
            ip: UPLINK_IP,
            prefix: 24,
            gateway: (config[1] & 0x40 == 0).then_some(WORLD[0]),
        })))
        .expect("uplink");
    engine
        .set_nat(NatUpdate::Networks(
            networks
                .iter()
                .map(|n| NetworkNat {
                    domain: n.domain,
                    subnet: n.subnet,
                    gateway_ip: n.gateway_ip,
                    gateway_mac: n.gateway_mac,
                    external: n.external,
                    // Routed networks forward untranslated across the uplink: a target of
                    // their own would need other invariants; these are all NAT networks.
                    routed: false,
                })
                .collect(),
        ))
        .expect("networks");
    // Up to four published ports, each (protocol, host port) once, as the control plane keeps them.
    let mut publish: Vec<Publish> = Vec::new();
    for i in 0..config[1] as usize % 5 {
        let pick = config[3].rotate_left(i as u32 * 2) as usize + i;
        let protocol = if pick & 1 == 0 { 6 } else { 17 };
        let host_port = HOST_PORTS[(pick >> 1) % HOST_PORTS.len()];
        let (target, target_mac, domain) = containers[(pick >> 3) % containers.len()];
        if publish
            .iter()
            .any(|p| p.protocol == protocol && p.host_port == host_port)
        {
            continue;
        }
        publish.push(Publish {
            id: i as u32 + 1,
            protocol,
            host_port,
            target,
            target_port: PORT_NUMBERS[pick % 3],
            target_mac,
            domain,
        });
    }
    engine
        .set_nat(NatUpdate::Publish(publish.clone()))
        .expect("publish");
    Lab {
        engine,
        ports,
        uplink,
        networks,
        containers,
        remote,
        publish,
        origin: Vec::new(),
    }
}

/// Reads the input a byte at a time; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

impl Lab {
    /// An address the built frames use: containers (local and remote), gateways, the uplink,
    /// the world.
    fn address(&self, pick: u8) -> Ipv4Addr {
        let n = self.containers.len() + self.remote.len() + self.networks.len() + 1 + WORLD.len();
        let i = pick as usize % n;
        if let Some(c) = self.containers.get(i) {
            return c.0;
        }
        let i = i - self.containers.len();
        if let Some(r) = self.remote.get(i) {
            return r.0;
        }
        let i = i - self.remote.len();
        if let Some(n) = self.networks.get(i) {
            return n.gateway_ip;
        }
        match i - self.networks.len() {
            0 => UPLINK_IP,
            w => WORLD[w - 1],
        }
    }

    fn mac(&self, pick: u8, port: &Port) -> MacAddr {
        let network = self.networks.iter().find(|n| n.domain == port.domain);
        match pick % 6 {
            0..=2 => network.map_or(UPLINK_MAC, |n| n.gateway_mac),
            3 => MacAddr([0xff; 6]),
            4 => self.containers[pick as usize / 6 % self.containers.len()].1,
            _ => UPLINK_MAC,
        }
    }

    /// A valid frame from a few choices (checksums by etherparse).
    fn build(&self, port: &Port, b: &mut Bytes) -> Vec<u8> {
        let kind = b.u8();
        let src = self.address(b.u8());
        let dst = self.address(b.u8());
        let port_number = |b: &mut Bytes| match b.u8() {
            p if p < 0xc0 => PORT_NUMBERS[p as usize % PORT_NUMBERS.len()],
            _ => b.u16(),
        };
        let (sport, dport) = (port_number(b), port_number(b));
        let eth_dst = self.mac(b.u8(), port);
        let eth_src = if kind & 0x80 != 0 {
            self.mac(b.u8(), port)
        } else {
            port.mac
        };
        let payload = vec![0x5a; b.u8() as usize % 64];
        let mut frame = Vec::with_capacity(128);
        frame.extend_from_slice(&eth_dst.0);
        frame.extend_from_slice(&eth_src.0);
        if kind & 0x07 == 7 {
            // ARP request or reply.
            frame.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1 + (kind >> 3 & 1)]);
            frame.extend_from_slice(&eth_src.0);
            frame.extend_from_slice(&src.octets());
            frame.extend_from_slice(&[0; 6]);
            frame.extend_from_slice(&dst.octets());
            return frame;
        }
        frame.extend_from_slice(&[0x08, 0x00]);
        let flags = b.u8();
        let (protocol, l4) = match kind & 0x07 {
            0 | 1 => {
                let mut tcp = TcpHeader::new(sport, dport, u32::from(flags) << 8, 64240);
                tcp.syn = flags & 0x02 != 0;
                tcp.ack = flags & 0x10 != 0;
                tcp.fin = flags & 0x01 != 0;
                tcp.rst = flags & 0x04 != 0;
                tcp.psh = flags & 0x08 != 0;
                tcp.acknowledgment_number = u32::from(flags);
                let ip = ipv4(IpNumber::TCP, src, dst, tcp.header_len() + payload.len());
                tcp.checksum = tcp.calc_checksum_ipv4(&ip, &payload).expect("short");
                (IpNumber::TCP, [&tcp.to_bytes()[..], &payload].concat())
            }
            2 | 3 => {
                let ip = ipv4(IpNumber::UDP, src, dst, 8 + payload.len());
                let udp =
                    UdpHeader::with_ipv4_checksum(sport, dport, &ip, &payload).expect("short");
                (IpNumber::UDP, [&udp.to_bytes()[..], &payload].concat())
            }
            4 | 5 => {
                let echo = IcmpEchoHeader {
                    id: sport,
                    seq: dport,
                };
                let t = if kind & 1 == 0 {
                    Icmpv4Type::EchoRequest(echo)
                } else {
                    Icmpv4Type::EchoReply(echo)
                };
                let icmp = Icmpv4Header::with_checksum(t, &payload);
                (IpNumber::ICMP, [&icmp.to_bytes()[..], &payload].concat())
            }
            _ => {
                // An ICMP port unreachable quoting a TCP or UDP packet dst -> src (the one it answers).
                let quoted_protocol = if flags & 1 == 0 {
                    IpNumber::UDP
                } else {
                    IpNumber::TCP
                };
                let inner = ipv4(quoted_protocol, dst, src, 8);
                let mut quote = inner.to_bytes().to_vec();
                quote.extend_from_slice(&dport.to_be_bytes());
                quote.extend_from_slice(&sport.to_be_bytes());
                quote.extend_from_slice(&[0, 8, 0, 0]);
                let t = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
                let icmp = Icmpv4Header::with_checksum(t, &quote);
                (IpNumber::ICMP, [&icmp.to_bytes()[..], &quote].concat())
            }
        };
        frame.extend_from_slice(&ipv4(protocol, src, dst, l4.len()).to_bytes());
        frame.extend_from_slice(&l4);
        frame
    }

    /// The network whose subnet holds `ip`, else the outside.
    fn domain_of(&self, ip: Ipv4Addr) -> DomainId {
        self.networks
            .iter()
            .find(|n| n.subnet.contains(ip))
            .map_or(OUTSIDE, |n| n.domain)
    }

    fn origin(&self, original: Tuple) -> Option<DomainId> {
        self.origin
            .iter()
            .find(|(t, _)| *t == original)
            .map(|&(_, d)| d)
    }

    fn own_mac(&self, mac: MacAddr) -> bool {
        mac == UPLINK_MAC || self.networks.iter().any(|n| n.gateway_mac == mac)
    }
}

fn ipv4(protocol: IpNumber, src: Ipv4Addr, dst: Ipv4Addr, payload: usize) -> Ipv4Header {
    let mut ip = Ipv4Header::new(payload as u16, 64, protocol, src.octets(), dst.octets())
        .expect("short payload");
    ip.header_checksum = ip.calc_header_checksum();
    ip
}

/// What the checks need from a frame, parsed independently of the data plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    l3: L3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum L3 {
    Arp {
        op: u16,
        /// The sender's protocol address.
        sender: Ipv4Addr,
    },
    /// `tuple` as conntrack keys it (ICMP echo by identifier, other ICMP by 0); `quote`: the
    /// flow an ICMP error quotes.
    Ipv4 {
        tuple: Tuple,
        icmp_type: Option<u8>,
        tcp_flags: Option<u8>,
        quote: Option<Tuple>,
    },
    Other,
}

impl L3 {
    /// What NAT may change: addresses and ports, of the packet and of the flow an ICMP error
    /// quotes (TCP flags differ between the segments of one GSO frame).
    fn flow(&self) -> (Option<Tuple>, Option<Tuple>, Option<L3>) {
        match *self {
            L3::Ipv4 { tuple, quote, .. } => (Some(tuple), quote, None),
            other => (None, None, Some(other)),
        }
    }
}

fn seen(frame: &[u8]) -> Option<Seen> {
    let eth = frame.get(..14)?;
    let mut l3_at = 14;
    let mut ethertype = u16::from_be_bytes([eth[12], eth[13]]);
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        l3_at = 18;
    }
    let l3 = match ethertype {
        0x0806 => L3::Arp {
            op: u16::from_be_bytes([*frame.get(l3_at + 6)?, *frame.get(l3_at + 7)?]),
            sender: Ipv4Addr::new(
                *frame.get(l3_at + 14)?,
                *frame.get(l3_at + 15)?,
                *frame.get(l3_at + 16)?,
                *frame.get(l3_at + 17)?,
            ),
        },
        0x0800 => match flow_of(&frame[l3_at..]) {
            Some((tuple, icmp_type, tcp_flags, l4)) => {
                let quote = match icmp_type {
                    Some(3 | 4 | 5 | 11 | 12) => l4.get(8..).and_then(flow_of).map(|t| t.0),
                    _ => None,
                };
                L3::Ipv4 {
                    tuple,
                    icmp_type,
                    tcp_flags,
                    quote,
                }
            }
            None => L3::Other,
        },
        _ => L3::Other,
    };
    Some(Seen {
        eth_dst: eth[..6].try_into().unwrap(),
        eth_src: eth[6..12].try_into().unwrap(),
        l3,
    })
}

/// The tuple of an IPv4 packet (or of the start of one, as an ICMP error quotes it).
#[allow(clippy::type_complexity)]
fn flow_of(ip: &[u8]) -> Option<(Tuple, Option<u8>, Option<u8>, &[u8])> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let header = usize::from(ip[0] & 0x0f) * 4;
    let l4 = ip.get(header..)?;
    let proto = ip[9];
    let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
    let field = |at: usize| l4.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (mut sport, mut dport, mut icmp_type, mut tcp_flags) = (0, 0, None, None);
    if first_fragment {
        match proto {
            6 | 17 => {
                sport = field(0).unwrap_or(0);
                dport = field(2).unwrap_or(0);
                if proto == 6 {
                    tcp_flags = l4.get(13).copied();
                }
            }
            1 => {
                icmp_type = l4.first().copied();
                if matches!(icmp_type, Some(0 | 8)) {
                    sport = field(4).unwrap_or(0);
                    dport = sport;
                }
            }
            _ => {}
        }
    }
    let tuple = Tuple {
        proto,
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        sport,
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        dport,
    };
    Some((tuple, icmp_type, tcp_flags, l4))
}

/// Whether the IPv4 header and the TCP/UDP/ICMP checksum of an untagged frame are valid, by
/// etherparse; `None` when etherparse cannot tell (not IPv4, truncated, a fragment).
fn checksums_valid(frame: &[u8]) -> Option<bool> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = etherparse::Ipv4Slice::from_slice(&frame[14..]).ok()?;
    let header = ip.header().to_header();
    if ip.is_payload_fragmented() {
        return None;
    }
    if header.calc_header_checksum() != header.header_checksum {
        return Some(false);
    }
    let l4 = ip.payload().payload;
    let (src, dst) = (header.source, header.destination);
    Some(match header.protocol {
        IpNumber::TCP => {
            let tcp = etherparse::TcpHeaderSlice::from_slice(l4).ok()?;
            let payload = &l4[tcp.slice().len()..];
            tcp.to_header()
                .calc_checksum_ipv4_raw(src, dst, payload)
                .ok()?
                == tcp.checksum()
        }
        IpNumber::UDP => {
            let (udp, _) = UdpHeader::from_slice(l4).ok()?;
            let payload = l4.get(8..usize::from(udp.length))?;
            udp.checksum == 0 || udp.calc_checksum_ipv4_raw(src, dst, payload).ok()? == udp.checksum
        }
        IpNumber::ICMP => {
            let (icmp, payload) = Icmpv4Header::from_slice(l4).ok()?;
            icmp.icmp_type.calc_checksum(payload) == icmp.checksum
        }
        _ => true,
    })
}

/// Every connection entry as (original, reply).
fn entries(engine: &Engine) -> Vec<(Tuple, Tuple)> {
    let (list, _) = engine.connections();
    list.iter().map(|c| (c.original, c.reply)).collect()
}

impl Lab {
    /// Runs one frame in from port `from` and checks what leaves.
    fn frame(&mut self, from: usize, vnet: VnetHeader, frame: &[u8]) {
        let before = entries(&self.engine);
        let (id, domain) = (self.ports[from].id, self.ports[from].domain);
        self.engine.rx_batch_mut().fill(0, vnet, frame);
        self.engine.process_received(id, domain, 1);
        let after = entries(&self.engine);
        let input = seen(frame);
        let valid_in = vnet == VnetHeader::default() && checksums_valid(frame) == Some(true);
        // Remember where each new connection began.
        for &(original, _) in after.iter().filter(|e| !before.contains(e)) {
            self.origin.retain(|(t, _)| *t != original);
            self.origin.push((original, domain));
        }
        for p in 0..self.ports.len() {
            for (out_vnet, out) in self.ports[p].handle.take_sent() {
                let egress = (p, self.ports[p].domain);
                let offloaded = out_vnet != VnetHeader::default();
                if valid_in && !offloaded {
                    assert_ne!(
                        checksums_valid(&out),
                        Some(false),
                        "a frame with valid checksums left port {p} with a bad one:\n in  {frame:02x?}\n out {out:02x?}"
                    );
                }
                let (Some(input), Some(output)) = (input, seen(&out)) else {
                    // Unparsable frames can only be switched as they are.
                    assert!(
                        p != from && egress.1 == domain,
                        "a frame left by port {p} from {from}"
                    );
                    continue;
                };
                if p == from && self.answer(&input, &output, egress.1) {
                    continue;
                }
                if p == self.uplink
                    && output.eth_src == UPLINK_MAC.0
                    && matches!(output.l3, L3::Arp { op: 1, .. })
                {
                    continue; // the uplink asking for a next hop
                }
                let translated = input.l3.flow() != output.l3.flow()
                    || matches!(input.l3, L3::Ipv4 { .. }) && (p == from || egress.1 != domain);
                if !translated {
                    assert!(p != from, "a frame left by the port it came in ({p})");
                    assert_eq!(egress.1, domain, "an untranslated frame crossed networks");
                    let roles = (self.ports[from].role, self.ports[p].role);
                    assert!(
                        !matches!(
                            roles,
                            (Role::Vxlan, Role::Vxlan | Role::Host) | (Role::Host, Role::Vxlan)
                        ),
                        "an overlay frame went from port {from} to {p} (split horizon, host-local)"
                    );
                    continue;
                }
                self.check_translation(&input, &output, &before, &after, egress.1, domain);
            }
        }
    }

    /// The switch's own answer to the frame, sent back where it came from.
    fn answer(&self, input: &Seen, output: &Seen, egress: DomainId) -> bool {
        if output.eth_dst != input.eth_src {
            return false;
        }
        // arp-proxy: a remote container of the network, by the MAC and address in the table.
        if let (L3::Arp { op: 1, .. }, L3::Arp { op: 2, sender }) = (input.l3, output.l3) {
            let remote = self.remote.iter().find(|r| r.1 .0 == output.eth_src);
            if let Some(&(ip, _, domain)) = remote {
                assert_eq!((sender, domain), (ip, egress), "arp-proxy answered wrong");
                return true;
            }
        }
        if !self.own_mac(MacAddr(output.eth_src)) {
            return false;
        }
        match (input.l3, output.l3) {
            (L3::Arp { op: 1, .. }, L3::Arp { op: 2, .. }) => true,
            (
                L3::Ipv4 { tuple: i, .. },
                L3::Ipv4 {
                    tuple: o,
                    icmp_type,
                    tcp_flags,
                    ..
                },
            ) => {
                o.src == i.dst
                    && o.dst == i.src
                    && (matches!(icmp_type, Some(0 | 3))
                        || tcp_flags.is_some_and(|f| f & 0x04 != 0))
            }
            _ => false,
        }
    }

    fn check_translation(
        &self,
        frame_in: &Seen,
        frame_out: &Seen,
        before: &[(Tuple, Tuple)],
        after: &[(Tuple, Tuple)],
        egress: DomainId,
        ingress: DomainId,
    ) {
        let (
            L3::Ipv4 {
                tuple: i,
                quote: iq,
                ..
            },
            L3::Ipv4 {
                tuple: o,
                quote: oq,
                ..
            },
        ) = (frame_in.l3, frame_out.l3)
        else {
            panic!("a non-IPv4 frame was changed or crossed networks:\n in  {frame_in:?}\n out {frame_out:?}");
        };
        let known = || before.iter().chain(after);
        if let (Some(iq), Some(oq)) = (iq, oq) {
            // An ICMP error: translated as the flow it quotes.
            let entry = known().find(|(original, reply)| {
                (iq == reply.reversed() && oq == *original)
                    || (iq == original.reversed() && oq == *reply)
            });
            let Some(&(original, reply)) = entry else {
                panic!("an ICMP error was translated with no connection behind it:\n in  {frame_in:?}\n out {frame_out:?}");
            };
            let toward = if iq == reply.reversed() {
                self.origin(original)
            } else {
                Some(self.domain_of(o.dst))
            };
            assert!(
                toward.is_none_or(|d| d == egress),
                "an ICMP error crossed networks"
            );
            return;
        }
        let entry = known().find(|(original, reply)| {
            (i == *original && o == reply.reversed()) || (i == *reply && o == original.reversed())
        });
        let Some(&(original, reply)) = entry else {
            panic!("a frame was translated with no connection that maps it:\n in  {frame_in:x?}\n out {frame_out:x?}\n table {:?}", known().collect::<Vec<_>>());
        };
        if i == original {
            assert_eq!(
                egress,
                self.domain_of(o.dst),
                "a translated frame went to the wrong network: {i:?} -> {o:?}"
            );
            let new = !before.contains(&(original, reply));
            if new && o.dst != i.dst {
                // Toward a published port (from outside, or a hairpin).
                assert!(
                    self.publish.iter().any(|p| p.protocol == i.proto
                        && i.dst == UPLINK_IP
                        && p.host_port == i.dport
                        && p.target == o.dst
                        && p.target_port == o.dport),
                    "a new flow was sent to {o:?} without a published port: {i:?}"
                );
            } else if new {
                // Masquerade: only from a network that is not --internal.
                let network = self.networks.iter().find(|n| n.domain == ingress);
                assert!(
                    network.is_some_and(|n| n.external),
                    "a flow from domain {ingress:?} was masqueraded: {i:?} -> {o:?}"
                );
            }
        } else if let Some(&from) = self.origin(original).as_ref() {
            assert_eq!(
                egress, from,
                "a reply went to another network than its flow came from: {i:?} -> {o:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let config = [b.u8(), b.u8(), b.u8(), b.u8()];
    let mut lab = lab(&config);
    while !b.0.is_empty() {
        let pick = b.u8();
        let from = pick as usize % lab.ports.len();
        let mode = b.u8();
        if mode == 0xff {
            // Let time pass: connections and learned MACs age.
            lab.engine.advance_clock(u64::from(b.u16()) * 1000);
            continue;
        }
        let port = &lab.ports[from];
        let (vnet, frame) = if mode & 0x80 == 0 {
            (VnetHeader::default(), lab.build(port, &mut b))
        } else {
            let len = usize::from(b.u16() % 2048);
            let frame = b.take(len).to_vec();
            let mut vnet = VnetHeader::default();
            if port.vnet && mode & 0x40 != 0 && frame.len() >= 4 {
                vnet.flags = 1; // NEEDS_CSUM
                vnet.csum_start = u16::from(frame[0]) + 14;
                vnet.csum_offset = u16::from(frame[1] & 0x1f);
                vnet.gso_type = frame[2] & 0x05; // none, TCPv4 or UDP-L4... whatever the bits say
                vnet.gso_size = u16::from(frame[3]) + 1;
                vnet.hdr_len = vnet.csum_start;
            }
            (vnet, frame)
        };
        lab.frame(from, vnet, &frame);
        if mode & 0x20 != 0 {
            let id = lab.ports[from].id;
            let _ = lab.engine.trace_packet(id, &frame);
            for p in &lab.ports {
                assert!(
                    p.handle.take_sent().is_empty(),
                    "a what-if trace sent a frame"
                );
            }
        }
    }
});
