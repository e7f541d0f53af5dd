//! Turning trace records (plain data from the engine) into what people read: a compact line per
//! step, numbered plain-language explanations for a classroom, and JSON for tools.
//!
//! All formatting lives here, far from the packet path: the engine records `Step`s, the daemon
//! names ports and MACs from its state, and this module writes sentences.

use std::net::Ipv4Addr;

use dataplane::wire::arp::{self, ArpPacket};
use dataplane::wire::ethernet::{self, EthernetFrame};
use dataplane::wire::headers::{Ipv4Summary, L3};
use dataplane::wire::{icmp, ipv4, tcp};
use dataplane::Answer;
use dataplane::{CtStep, Flow, Step, TraceRecord};
use dataplane::{Direction, NatKind};
use dataplane::{LearnAction, LinkPort, LinkRule, MacAddr};

use super::names::Names;
use crate::api::trace::{TraceStepView, TraceView};

fn flow(f: &Flow) -> String {
    let side = |ip: Ipv4Addr, port: u16| {
        if port == 0 {
            ip.to_string()
        } else {
            format!("{ip}:{port}")
        }
    };
    format!("{} > {}", side(f.src, f.sport), side(f.dst, f.dport))
}

fn proto_name(p: u8) -> &'static str {
    match p {
        ipv4::protocol::TCP => "tcp",
        ipv4::protocol::UDP => "udp",
        ipv4::protocol::ICMP => "icmp",
        _ => "ip",
    }
}

/// A one-line description of the packet from its first bytes, read through the wire views.
pub fn summary(head: &[u8], len: u32) -> String {
    let Ok(eth) = EthernetFrame::new_checked(head) else {
        return format!("runt frame, {len} bytes");
    };
    let vlan = match eth.vlan_tag() {
        Some(tag) => format!("vlan {} ", tag.vid),
        None => String::new(),
    };
    let ethertype = eth.inner_ethertype();
    // Any ARP body is described, Ethernet/IPv4 or not (`L3` takes only those).
    let arp = match ethertype {
        ethernet::ethertype::ARP => ArpPacket::new_checked(eth.l3_payload()).ok(),
        _ => None,
    };
    let text = match (arp, L3::parse(head, ethertype, eth.l3_offset())) {
        (Some(a), _) if a.operation() == arp::operation::REQUEST => format!(
            "ARP who-has {} tell {}",
            a.target_proto_addr(),
            a.sender_proto_addr()
        ),
        (Some(a), _) => format!(
            "ARP reply {} is-at {}",
            a.sender_proto_addr(),
            a.sender_hw_addr()
        ),
        (None, L3::Ipv4(ip)) => ipv4_summary(&ip),
        _ if ethertype == ethernet::ethertype::IPV6 => "IPv6".to_string(),
        _ => format!("EtherType 0x{ethertype:04x}"),
    };
    format!("{vlan}{text}, {len} bytes")
}

fn ipv4_summary(ip: &Ipv4Summary) -> String {
    let (src, dst) = (ip.src, ip.dst);
    match (ip.protocol, ip.ports(), ip.tcp_flags, ip.icmp) {
        (ipv4::protocol::TCP, Some((sport, dport)), Some(fl), _) => {
            let mut flags = String::new();
            for (bit, c) in [
                (tcp::flags::SYN, 'S'),
                (tcp::flags::FIN, 'F'),
                (tcp::flags::RST, 'R'),
                (tcp::flags::PSH, 'P'),
                (tcp::flags::ACK, '.'),
            ] {
                if fl & bit != 0 {
                    flags.push(c);
                }
            }
            format!("TCP {src}:{sport} > {dst}:{dport} [{flags}]")
        }
        (ipv4::protocol::UDP, Some((sport, dport)), ..) => {
            format!("UDP {src}:{sport} > {dst}:{dport}")
        }
        (ipv4::protocol::ICMP, _, _, Some((t, _))) => match t {
            icmp::msg_type::ECHO_REQUEST => format!("ICMP echo request {src} > {dst}"),
            icmp::msg_type::ECHO_REPLY => format!("ICMP echo reply {src} > {dst}"),
            icmp::msg_type::DEST_UNREACHABLE => format!("ICMP unreachable {src} > {dst}"),
            icmp::msg_type::TIME_EXCEEDED => format!("ICMP time exceeded {src} > {dst}"),
            t => format!("ICMP type {t} {src} > {dst}"),
        },
        (p, ..) => format!("IPv4 proto {p} {src} > {dst}"),
    }
}

/// Renders one record for the API: compact line and explanation for each step.
pub fn view(r: &TraceRecord, names: &Names) -> TraceView {
    let ingress = names.port(r.ingress);
    let steps = r.steps();
    let mut out = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        // The ports a flood actually reached are the egress steps after it.
        let later_egress: Vec<String> = steps[i + 1..]
            .iter()
            .filter_map(|s| match s {
                Step::Egress { port } => Some(names.port(*port)),
                _ => None,
            })
            .collect();
        out.push(step_view(s, &ingress, names, &later_egress));
    }
    TraceView {
        seq: r.seq,
        time_ns: r.time_ns,
        what_if: r.what_if,
        ingress,
        length: r.len,
        packet: summary(r.head(), r.len),
        steps: out,
        truncated: r.overflow,
    }
}

fn v(stage: &str, decision: &str, line: String, explain: String) -> TraceStepView {
    TraceStepView {
        stage: stage.into(),
        decision: decision.into(),
        line,
        explain,
    }
}

fn step_view(s: &Step, ingress: &str, names: &Names, later_egress: &[String]) -> TraceStepView {
    match *s {
        Step::Parsed {
            src,
            dst,
            vlan,
            ethertype,
            len,
        } => v(
            "ingress",
            "parsed",
            format!(
                "in {ingress}: {src} > {dst} type 0x{ethertype:04x}{} len {len}",
                if vlan.0 != 0 {
                    format!(" vlan {}", vlan.0)
                } else {
                    String::new()
                }
            ),
            format!(
                "A frame arrives on port {ingress}, from {} to {}.",
                names.mac(src),
                names.mac(dst)
            ),
        ),
        Step::Dropped { stage, reason } => v(
            stage.name(),
            "drop",
            format!("drop: {reason}"),
            format!(
                "The {stage} stage drops it ({reason}): {}",
                reason.explain()
            ),
        ),
        Step::Passed { stage } => v(
            stage.name(),
            "pass",
            "pass".into(),
            format!("The {stage} stage lets it pass."),
        ),
        Step::SpoofChecked => v(
            "anti-spoof",
            "pass",
            "sender's MAC and address are its own".into(),
            format!("Anti-spoofing: the frame carries {ingress}'s own MAC and address, so it may pass."),
        ),
        Step::IsolationChecked => v(
            "isolation",
            "pass",
            "not routed from another network".into(),
            "Isolation: the host routed this in, but not from another switchyard network, so it may pass.".into(),
        ),
        Step::Learned { mac, action } => learned(mac, action, ingress, names),
        Step::Hit { mac, port } => v(
            "l2-fwd",
            "hit",
            format!("{mac} -> {}", names.port(port)),
            format!(
                "The destination {} is in the table, behind port {}, so the frame goes there only.",
                names.mac(mac),
                names.port(port)
            ),
        ),
        Step::Flooded { unknown, ports } => flooded(unknown, ports, ingress, later_egress),
        Step::IccAllowed { egress, rule } => icc_allowed(&names.port(egress), rule),
        Step::IccDenied { egress } => {
            let target = names.port(egress);
            v(
                "icc",
                "deny",
                format!("deny -> {target}"),
                format!("icc=false and no link opens this traffic, so the copy for {target} is dropped."),
            )
        }
        Step::Translated { kind, ct, from, to } => translated(kind, ct, &from, &to),
        Step::Routed {
            src,
            dst,
            next_hop,
            mac,
            ttl,
        } => {
            let to = if next_hop == dst {
                format!("{}, the destination itself,", names.mac(mac))
            } else {
                format!("{}, the next hop {next_hop},", names.mac(mac))
            };
            v(
                "nat",
                "route",
                format!("route {src} > {dst} via {next_hop} ({mac}), ttl {ttl}"),
                format!(
                    "The network is routed (gateway_mode=routed): the packet keeps its addresses \
                     {src} > {dst}, no translation and no connection tracked; as a router, \
                     switchyard sends it to {to} with its TTL one less ({ttl})."
                ),
            )
        }
        Step::Answered(Answer::RemoteArp { ip, mac }) => v(
            "arp-proxy",
            "answer",
            format!("answered ({ip} is at {mac})"),
            format!(
                "It asks for {ip}, a container on another host of the overlay network; the \
                 cluster's endpoint table says {mac}, so switchyard answers it itself, back out \
                 of {ingress}, and nothing crosses the underlay."
            ),
        ),
        Step::Answered(a) => {
            let what = match a {
                // Rendered above, with its own stage.
                Answer::RemoteArp { ip, .. } => format!("an ARP request for {ip}"),
                Answer::Arp => "an ARP request for the uplink address".into(),
                Answer::IcmpEcho => "a ping of the uplink address".into(),
                Answer::TcpReset => "a TCP connection to a port nothing publishes (a reset)".into(),
                Answer::PortUnreachable => {
                    "a UDP datagram to a port nothing publishes (ICMP port unreachable)".into()
                }
                Answer::TimeExceeded { from } => format!(
                    "a packet to route whose TTL ran out (ICMP time exceeded from {from})"
                ),
                Answer::HostUnreachable { from } => format!(
                    "a packet for an address of a routed network that no container holds \
                     (ICMP host unreachable from {from})"
                ),
            };
            v(
                "nat",
                "answer",
                format!("answered ({what})"),
                format!("It is {what}; switchyard answers it itself, back out of {ingress}."),
            )
        }
        Step::Consumed => v(
            "nat",
            "consumed",
            "learned from, not forwarded".into(),
            "It is an ARP reply for the uplink address: the sender is learned, nothing is forwarded.".into(),
        ),
        Step::Egress { port } => {
            let p = names.port(port);
            v("egress", "out", format!("out {p}"), format!("It leaves through port {p}."))
        }
        Step::Encapsulated {
            vni,
            local,
            remote,
            sport,
            dport,
        } => v(
            "vxlan",
            "encap",
            format!("encap vni {vni}: udp {local}:{sport} > {remote}:{dport}"),
            format!(
                "The remote host {remote} gets it in VXLAN: VNI {vni}, in a UDP datagram from \
                 {local}:{sport} (the source port a hash of the inner flow, so the underlay \
                 spreads flows) to {remote}:{dport}, 50 bytes of outer headers."
            ),
        ),
        Step::Decapsulated { vni, from, dport } => v(
            "vxlan",
            "decap",
            format!("decap vni {vni} from {from} (udp port {dport})"),
            format!(
                "It came from the remote host {from} in VXLAN (VNI {vni}, to UDP port \
                 {dport}); the outer headers are taken off and the inner frame enters the \
                 switch on port {ingress}."
            ),
        ),
    }
}

fn learned(mac: MacAddr, action: LearnAction, ingress: &str, names: &Names) -> TraceStepView {
    let (decision, line, explain) = match action {
        LearnAction::New => (
            "learned",
            format!("learn {mac} on {ingress}"),
            format!(
                "The switch learns that {} is behind port {ingress}.",
                names.mac(mac)
            ),
        ),
        LearnAction::Move { from } => (
            "moved",
            format!("move {mac} from {} to {ingress}", names.port(from)),
            format!(
                "{} moved from port {} to {ingress}; the table follows.",
                names.mac(mac),
                names.port(from)
            ),
        ),
        _ => (
            "known",
            format!("{mac} already known on {ingress}"),
            format!(
                "The switch already knows {} is behind port {ingress}.",
                names.mac(mac)
            ),
        ),
    };
    v("l2-learn", decision, line, explain)
}

/// `later_egress`: the ports the flood reached (the egress steps after it).
fn flooded(unknown: bool, ports: u16, ingress: &str, later_egress: &[String]) -> TraceStepView {
    let to = if later_egress.is_empty() {
        format!("{ports} ports")
    } else {
        join_and(later_egress)
    };
    let why = if unknown {
        "The destination MAC is not in the table yet, so the frame is flooded"
    } else {
        "The destination is a broadcast or multicast address, so the frame goes"
    };
    v(
        "flood",
        if unknown { "flood-unknown" } else { "flood" },
        format!("flood to {ports} port{}", if ports == 1 { "" } else { "s" }),
        format!("{why} to {to}, but not back to {ingress}, where it came from."),
    )
}

fn icc_allowed(target: &str, rule: Option<LinkRule>) -> TraceStepView {
    let Some(r) = rule else {
        return v(
            "icc",
            "allow",
            format!("allow -> {target}"),
            format!("icc=false does not apply on the way to {target} (the host port, or ARP)."),
        );
    };
    let (dir, port) = match r.port {
        LinkPort::Dst(p) => ("to", p),
        LinkPort::Src(p) => ("from", p),
    };
    v(
        "icc",
        "allow",
        format!(
            "allow -> {target} (link rule: {} {dir} port {port})",
            proto_name(r.protocol)
        ),
        format!(
            "icc=false, but a link allows it: {} {dir} port {port} between {} and {}.",
            proto_name(r.protocol),
            r.src,
            r.dst
        ),
    )
}

fn translated(kind: Option<NatKind>, ct: CtStep, from: &Flow, to: &Flow) -> TraceStepView {
    let kind_name = match kind {
        Some(NatKind::Dnat) => "dnat",
        Some(NatKind::Masquerade) => "masquerade",
        Some(NatKind::Hairpin) => "hairpin",
        None => "icmp-error",
    };
    let ct_text = match ct {
        CtStep::Created => "new connection tracked",
        CtStep::Matched(Direction::Original) => "tracked connection",
        CtStep::Matched(Direction::Reply) => "reply of a tracked connection",
        CtStep::Related => "error about a tracked connection",
    };
    v(
        "nat",
        kind_name,
        format!("{kind_name}: {} => {} ({ct_text})", flow(from), flow(to)),
        format!(
            "NAT ({kind_name}): {} becomes {}; {ct_text}.",
            flow(from),
            flow(to)
        ),
    )
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::{DomainId, DropReason, PortId, StageId, VlanId};

    const WEB: [u8; 6] = [2, 0x42, 0xac, 0x11, 0, 2];
    const PG: [u8; 6] = [2, 0x42, 0xac, 0x11, 0, 3];
    const UPLINK: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];

    /// A record of `flow` entering `ingress`, with `steps`.
    fn record(ingress: u16, flow: &str, steps: &[Step]) -> TraceRecord {
        let f = crate::flow::FlowSpec::parse(flow)
            .unwrap()
            .frame(MacAddr(WEB), MacAddr(PG));
        let mut r = TraceRecord::EMPTY;
        r.start(PortId(ingress), DomainId(1), &f, 1_000);
        for s in steps {
            r.push(*s);
        }
        r
    }

    fn parsed(src: [u8; 6], dst: [u8; 6], ethertype: u16) -> Step {
        Step::Parsed {
            src: MacAddr(src),
            dst: MacAddr(dst),
            vlan: VlanId(0),
            ethertype,
            len: 74,
        }
    }

    fn flow(src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
        Flow {
            src: src.parse().unwrap(),
            sport,
            dst: dst.parse().unwrap(),
            dport,
        }
    }

    /// Every kind of step, in the paths packets take: published port in, linked containers,
    /// icc refusing, masquerade replies, ICMP errors, answers of the uplink, drops.
    #[test]
    fn every_step_matches_the_golden_file() {
        let mut names = Names::default();
        names.ports.insert(PortId(0), "web".into());
        names.ports.insert(PortId(1), "pg".into());
        names.ports.insert(PortId(2), "uplink".into());
        names.ports.insert(PortId(3), "host:bridge".into());
        names.ports.insert(PortId(4), "vxlan:192.0.2.20".into());
        names.macs.insert(WEB, "web".into());
        names.macs.insert(PG, "pg".into());
        let dnat = flow("198.51.100.7", 51000, "192.0.2.10", 8080);
        let inside = flow("198.51.100.7", 51000, "172.17.0.2", 80);
        let out = flow("172.17.0.2", 40000, "203.0.113.5", 443);
        let masq = flow("192.0.2.10", 40000, "203.0.113.5", 443);
        let link = LinkRule {
            src: "172.17.0.2".parse().unwrap(),
            dst: "172.17.0.3".parse().unwrap(),
            protocol: 6,
            port: LinkPort::Dst(5432),
        };
        let mut what_if = record(
            0,
            "tcp,src=172.17.0.2,dst=172.17.0.3,dport=5432",
            &[
                parsed(WEB, PG, 0x0800),
                Step::SpoofChecked,
                Step::IsolationChecked,
                Step::Passed {
                    stage: StageId::Conflict,
                },
                Step::Learned {
                    mac: MacAddr(WEB),
                    action: LearnAction::Refresh,
                },
                Step::Hit {
                    mac: MacAddr(PG),
                    port: PortId(1),
                },
                Step::IccAllowed {
                    egress: PortId(1),
                    rule: Some(link),
                },
                Step::Egress { port: PortId(1) },
            ],
        );
        what_if.what_if = true;
        let records = [
            record(
                2,
                "tcp,src=198.51.100.7,dst=192.0.2.10,sport=51000,dport=8080",
                &[
                    parsed(UPLINK, [0x52, 0x54, 0, 0, 0, 2], 0x0800),
                    Step::Translated {
                        kind: Some(NatKind::Dnat),
                        ct: CtStep::Created,
                        from: dnat,
                        to: inside,
                    },
                    Step::Learned {
                        mac: MacAddr(UPLINK),
                        action: LearnAction::New,
                    },
                    Step::Hit {
                        mac: MacAddr(WEB),
                        port: PortId(0),
                    },
                    Step::IccAllowed {
                        egress: PortId(0),
                        rule: None,
                    },
                    Step::Egress { port: PortId(0) },
                ],
            ),
            what_if,
            record(
                1,
                "udp,src=172.17.0.3,dst=172.17.0.2,dport=53",
                &[
                    parsed(PG, WEB, 0x0800),
                    Step::Learned {
                        mac: MacAddr(PG),
                        action: LearnAction::Move { from: PortId(3) },
                    },
                    Step::Hit {
                        mac: MacAddr(WEB),
                        port: PortId(0),
                    },
                    Step::IccDenied { egress: PortId(0) },
                    Step::Dropped {
                        stage: StageId::Icc,
                        reason: DropReason::ALL
                            .iter()
                            .copied()
                            .find(|r| r.stage() == StageId::Icc)
                            .unwrap(),
                    },
                ],
            ),
            record(
                2,
                "tcp,src=203.0.113.5,dst=192.0.2.10,sport=443,dport=40000,flags=SA",
                &[
                    parsed(UPLINK, WEB, 0x0800),
                    Step::Translated {
                        kind: Some(NatKind::Masquerade),
                        ct: CtStep::Matched(Direction::Reply),
                        from: flow("203.0.113.5", 443, "192.0.2.10", 40000),
                        to: flow("203.0.113.5", 443, "172.17.0.2", 40000),
                    },
                    Step::Learned {
                        mac: MacAddr(UPLINK),
                        action: LearnAction::None,
                    },
                    Step::Flooded {
                        unknown: false,
                        ports: 1,
                    },
                    Step::Egress { port: PortId(0) },
                ],
            ),
            record(
                0,
                "tcp,src=172.17.0.2,dst=203.0.113.5,dport=443",
                &[
                    parsed(WEB, UPLINK, 0x0800),
                    Step::Translated {
                        kind: Some(NatKind::Masquerade),
                        ct: CtStep::Matched(Direction::Original),
                        from: out,
                        to: masq,
                    },
                    Step::Translated {
                        kind: Some(NatKind::Hairpin),
                        ct: CtStep::Created,
                        from: out,
                        to: masq,
                    },
                    Step::Translated {
                        kind: None,
                        ct: CtStep::Related,
                        from: masq,
                        to: out,
                    },
                    Step::Learned {
                        mac: MacAddr(WEB),
                        action: LearnAction::StaticConflict,
                    },
                ],
            ),
            record(
                2,
                "arp,src=192.0.2.1,dst=192.0.2.10",
                &[
                    parsed(UPLINK, [0xff; 6], 0x0806),
                    Step::Answered(Answer::Arp),
                ],
            ),
            record(
                0,
                "arp,src=172.17.0.2,dst=172.17.0.9",
                &[
                    parsed(WEB, [0xff; 6], 0x0806),
                    Step::Answered(Answer::RemoteArp {
                        ip: "172.17.0.9".parse().unwrap(),
                        mac: MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x09]),
                    }),
                    Step::Egress { port: PortId(0) },
                ],
            ),
            record(
                2,
                "icmp,src=192.0.2.1,dst=192.0.2.10",
                &[
                    parsed(UPLINK, WEB, 0x0800),
                    Step::Answered(Answer::IcmpEcho),
                    Step::Consumed,
                    Step::Dropped {
                        stage: StageId::AntiSpoof,
                        reason: DropReason::SpoofIp,
                    },
                ],
            ),
            record(
                2,
                "tcp,src=172.18.0.5,dst=172.17.0.2,dport=80",
                &[
                    parsed(UPLINK, WEB, 0x0800),
                    Step::Routed {
                        src: "172.18.0.5".parse().unwrap(),
                        dst: "172.17.0.2".parse().unwrap(),
                        next_hop: "172.17.0.2".parse().unwrap(),
                        mac: MacAddr(WEB),
                        ttl: 63,
                    },
                    Step::Routed {
                        src: "172.17.0.2".parse().unwrap(),
                        dst: "172.18.0.5".parse().unwrap(),
                        next_hop: "192.0.2.1".parse().unwrap(),
                        mac: MacAddr(UPLINK),
                        ttl: 63,
                    },
                    Step::Answered(Answer::TimeExceeded {
                        from: "192.0.2.10".parse().unwrap(),
                    }),
                    Step::Answered(Answer::HostUnreachable {
                        from: "192.0.2.10".parse().unwrap(),
                    }),
                ],
            ),
            // An overlay network: to a container on another host (VXLAN out), and its answer
            // (VXLAN in).
            record(
                0,
                "tcp,src=172.17.0.2,dst=172.17.0.3,dport=5432",
                &[
                    parsed(WEB, PG, 0x0800),
                    Step::Hit {
                        mac: MacAddr(PG),
                        port: PortId(4),
                    },
                    Step::Egress { port: PortId(4) },
                    Step::Encapsulated {
                        vni: 256,
                        local: "192.0.2.10".parse().unwrap(),
                        remote: "192.0.2.20".parse().unwrap(),
                        sport: 40213,
                        dport: 4789,
                    },
                ],
            ),
            record(
                4,
                "tcp,src=172.17.0.3,dst=172.17.0.2,sport=5432,dport=40000,flags=SA",
                &[
                    Step::Decapsulated {
                        vni: 256,
                        from: "192.0.2.20".parse().unwrap(),
                        dport: 4789,
                    },
                    parsed(PG, WEB, 0x0800),
                    Step::Hit {
                        mac: MacAddr(WEB),
                        port: PortId(0),
                    },
                    Step::Egress { port: PortId(0) },
                ],
            ),
        ];
        let views: Vec<TraceView> = records.iter().map(|r| view(r, &names)).collect();
        crate::render::golden(
            "trace-steps.json",
            &serde_json::to_string_pretty(&views).unwrap(),
        );
    }

    #[test]
    fn a_flood_reads_like_the_classroom_sentence() {
        let mut names = Names::default();
        names.ports.insert(PortId(0), "web".into());
        names.ports.insert(PortId(1), "db".into());
        names.ports.insert(PortId(2), "host:bridge".into());
        let mut r = TraceRecord::EMPTY;
        let mut f = vec![2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa, 0x08, 0x06];
        f.resize(60, 0);
        r.start(PortId(0), DomainId(0), &f, 1);
        r.push(Step::Parsed {
            src: MacAddr([2, 0, 0, 0, 0, 0xa]),
            dst: MacAddr([2, 0, 0, 0, 0, 0xb]),
            vlan: VlanId(0),
            ethertype: 0x0806,
            len: 60,
        });
        r.push(Step::Flooded {
            unknown: true,
            ports: 2,
        });
        r.push(Step::Egress { port: PortId(1) });
        r.push(Step::Egress { port: PortId(2) });
        let v = view(&r, &names);
        crate::render::golden(
            "trace-flood.json",
            &serde_json::to_string_pretty(&v).unwrap(),
        );
        assert_eq!(
            v.steps[1].explain,
            "The destination MAC is not in the table yet, so the frame is flooded to db and host:bridge, but not back to web, where it came from."
        );
        assert_eq!(v.steps[3].line, "out host:bridge");
    }

    #[test]
    fn summaries_of_tagged_odd_and_short_frames() {
        let f = crate::flow::FlowSpec::parse("udp,src=10.0.0.1,dst=10.0.0.2,dport=53")
            .unwrap()
            .frame(MacAddr([2; 6]), MacAddr([4; 6]));
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x20, 0x0a]);
        tagged.extend_from_slice(&f[12..]);
        assert_eq!(
            summary(&tagged, 64),
            "vlan 10 UDP 10.0.0.1:40000 > 10.0.0.2:53, 64 bytes"
        );
        assert_eq!(summary(&f[..10], 10), "runt frame, 10 bytes");
        let mut v6 = f.clone();
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(summary(&v6, 60), "IPv6, 60 bytes");
        v6[12..14].copy_from_slice(&[0x88, 0xcc]);
        assert_eq!(summary(&v6, 60), "EtherType 0x88cc, 60 bytes");
        // An IPv4 header cut short is not described as IPv4.
        assert_eq!(summary(&f[..30], 60), "EtherType 0x0800, 60 bytes");
    }

    #[test]
    fn packet_summaries() {
        let f = crate::flow::FlowSpec::parse("tcp,src=10.0.0.1,dst=10.0.0.2,dport=80,flags=S")
            .unwrap()
            .frame(MacAddr([2; 6]), MacAddr([4; 6]));
        assert_eq!(
            summary(&f, 60),
            "TCP 10.0.0.1:40000 > 10.0.0.2:80 [S], 60 bytes"
        );
        let a = crate::flow::FlowSpec::parse("arp,src=10.0.0.1,dst=10.0.0.2")
            .unwrap()
            .frame(MacAddr([2; 6]), MacAddr::BROADCAST);
        assert_eq!(
            summary(&a, 60),
            "ARP who-has 10.0.0.2 tell 10.0.0.1, 60 bytes"
        );
    }
}
