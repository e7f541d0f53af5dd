//! `nat`: published ports (DNAT), masquerade, hairpin, and the uplink's own address.
//!
//! Runs for every frame from the uplink, and for IPv4 frames that containers send to their
//! gateway's MAC (routed traffic). Connection tracking is consulted first, before any L2 decision:
//! a reply is translated back and leaves where its connection came from, whatever MAC it was sent
//! to. What it decides:
//! - uplink, ARP for the uplink address: learn the sender, answer requests (in place);
//! - uplink, IPv4 to the uplink address (and its MAC): a tracked flow is translated; an ICMP echo request is
//!   answered; a new TCP/UDP flow to a published port is DNATed to its container (the container
//!   sees the client's real address: only the destination changes); a new flow to a port nothing
//!   publishes is refused as a host refuses it (a TCP reset, an ICMP port unreachable for UDP),
//!   so clients fail at once instead of waiting for a timeout; anything else is dropped;
//! - container -> gateway MAC, to the uplink address: hairpin to a published port (source
//!   translated to the uplink address, so the reply comes back through the switch), or an answered
//!   ping;
//! - container -> gateway MAC, to an address outside every switchyard network: masquerade out of
//!   the uplink (source = uplink address, the flow's own port when free); but a TCP segment that
//!   opens nothing, from a published port's target, with no tracked connection (a server speaking
//!   first after a daemon restart, which keeps no connections) is picked up as that published
//!   port's connection, leaving from the published port (`lost_reply`);
//! - routed networks (`gateway_mode=routed`) instead route: a container's packet to the world
//!   leaves by the uplink with its own address, and a packet from beyond the uplink to a routed
//!   subnet (the outside routes that subnet to the uplink address) goes to the container holding
//!   the address, as a router does it: new MACs, TTL one less, no connection tracked, an ICMP time
//!   exceeded when the TTL runs out and host unreachable for an address no container holds;
//!   published ports and their replies are translated as on any network (connection tracking
//!   comes first);
//! - everything else passes on to L2 unchanged (traffic to the host itself, to other networks).
//!
//! Like every stage it changes nothing: connection and neighbour updates are effects, and the
//! rewrite is a description the engine applies to the frame.

use std::net::Ipv4Addr;

use super::step::{CtStep, Flow};
use super::{DropReason, Effects, PacketView, Prefetch, Stage, StageId, Step, Tables, Verdict};
use crate::rewrite::{icmp_error_quote, is_icmp_error, Rewrite};
use crate::table::conntrack::{Direction, EntryId, Hop, NatKind, Tuple};
use crate::table::{NetworkNat, PortRole, Publish, Uplink};
use crate::wire::arp::operation;
use crate::wire::ethernet::ethertype;
use crate::wire::headers::Ipv4Summary;
use crate::wire::icmp::msg_type::{ECHO_REPLY, ECHO_REQUEST};
use crate::wire::ipv4::protocol::{ICMP, TCP, UDP};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::tcp::flags as tcp_flags;
use crate::{DomainId, MacAddr, PortId, VlanId};

/// What `nat` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatAction {
    /// Not NAT's business: the L2 pipeline goes on.
    Pass,
    Drop(DropReason),
    /// Rewrite the frame and send it out of `port`.
    Translate {
        rewrite: Rewrite,
        /// For ICMP errors: the rewrite of the quoted packet.
        inner: Option<Rewrite>,
        port: PortId,
        change: CtChange,
    },
    /// Route one hop (routed networks): new Ethernet addresses, the TTL one less, addresses and
    /// ports untouched, out of `port`; no connection is tracked.
    Route {
        src_mac: MacAddr,
        dst_mac: MacAddr,
        port: PortId,
        /// The neighbour the frame goes to (the container, or the uplink's next hop).
        next_hop: Ipv4Addr,
    },
    /// Answer in place and send back out of the ingress port.
    Answer(Answer),
    /// Consumed (an ARP reply for the uplink address: only learned from).
    Consumed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Arp,
    /// `arp-proxy`: an ARP request for `ip`, a container on another host of an overlay network,
    /// answered with its `mac` from the cluster's endpoint table.
    RemoteArp {
        ip: Ipv4Addr,
        mac: MacAddr,
    },
    IcmpEcho,
    /// A TCP segment to a port nothing publishes: a reset (RFC 9293 3.10.7.1, as a closed port).
    TcpReset,
    /// A UDP datagram to a port nothing publishes: ICMP destination unreachable, port unreachable.
    PortUnreachable,
    /// A packet to route whose TTL ran out: ICMP time exceeded in transit, from the router's
    /// address `from` on the side it came from (RFC 1812 5.3.1).
    TimeExceeded {
        from: Ipv4Addr,
    },
    /// A packet from beyond the uplink to an address of a routed network no container holds: ICMP
    /// destination unreachable, host unreachable, from the uplink address `from`.
    HostUnreachable {
        from: Ipv4Addr,
    },
}

/// What to record in the connection table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtChange {
    Update {
        id: EntryId,
        dir: Direction,
        tcp_flags: Option<u8>,
    },
    Insert(NewFlow),
    /// An ICMP error about a flow: translated, not counted as the flow's traffic.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewFlow {
    pub original: Tuple,
    pub reply: Tuple,
    pub kind: NatKind,
    pub out_original: Hop,
    pub out_reply: Hop,
    pub mapping: Option<u32>,
    pub inside: Ipv4Addr,
    pub tcp_flags: Option<u8>,
}

/// The flow NAT reads, from the fields `ingress` parsed.
#[derive(Clone, Copy, Debug)]
struct Packet {
    tuple: Tuple,
    tcp_flags: Option<u8>,
    icmp_type: Option<u8>,
}

/// The flow of a packet NAT can translate: TCP with its flags, UDP, ICMP (echo by identifier),
/// in a first fragment.
fn parse(view: &PacketView<'_>) -> Option<Packet> {
    let ip = view.ipv4()?;
    let (sport, dport) = match ip.protocol {
        TCP if ip.tcp_flags.is_none() => return None,
        TCP | UDP => ip.ports()?,
        ICMP => {
            let (t, id) = ip.icmp?;
            if t == ECHO_REQUEST || t == ECHO_REPLY {
                (id, id)
            } else {
                (0, 0)
            }
        }
        _ => return None,
    };
    Some(Packet {
        tuple: Tuple {
            proto: ip.protocol,
            src: ip.src,
            sport,
            dst: ip.dst,
            dport,
        },
        tcp_flags: ip.tcp_flags,
        icmp_type: ip.icmp.map(|(t, _)| t),
    })
}

impl NatAction {
    /// The port a translated or answered frame leaves by (`None`: it does not leave).
    pub fn egress(&self, ingress: PortId) -> Option<PortId> {
        match *self {
            NatAction::Translate { port, .. } | NatAction::Route { port, .. } => Some(port),
            NatAction::Answer(_) => Some(ingress),
            NatAction::Pass | NatAction::Drop(_) | NatAction::Consumed => None,
        }
    }
}

/// Leaves a translation, an answer or a consumed frame in `Effects::nat` with `Verdict::Handled`;
/// a neighbour learned on the uplink and a next hop to resolve are table updates.
pub struct Nat;

impl Stage for Nat {
    const ID: StageId = StageId::Nat;

    fn applies(tables: &Tables, port: PortId, _: DomainId) -> bool {
        match tables.policy.role(port) {
            PortRole::Uplink => true,
            PortRole::Container(_) => tables.nat.uplink().is_some(),
            _ => false,
        }
    }

    fn run(view: &PacketView<'_>, tables: &Tables, fx: &mut Effects) -> Verdict {
        match decide(view, tables, fx) {
            NatAction::Pass => Verdict::Continue,
            NatAction::Drop(reason) => Verdict::Drop(reason),
            action => {
                fx.set_nat(action);
                Verdict::Handled
            }
        }
    }

    /// The connection a packet to the uplink's MAC or a network's gateway may belong to (what
    /// `tracked` looks up; other frames pass NAT without a lookup).
    fn prefetch(view: &PacketView<'_>, tables: &Tables, pass: Prefetch) {
        let Some(uplink) = tables.nat.uplink() else {
            return;
        };
        let to = if view.ingress == uplink.port {
            uplink.mac
        } else {
            match tables.nat.network(view.domain) {
                Some(net) => net.gateway_mac,
                None => return,
            }
        };
        if view.dst != to {
            return;
        }
        if let Some(p) = parse(view) {
            match pass {
                Prefetch::Bucket => tables.conntrack.prefetch(&p.tuple),
                Prefetch::Entry => tables.conntrack.prefetch_entry(&p.tuple),
            }
        }
    }

    /// What NAT did, from the action it left and the flow `ingress` parsed (the engine adds the
    /// egress step when it sends).
    fn trace(view: &PacketView<'_>, tables: &Tables, _: Verdict, fx: &Effects) -> Option<Step> {
        match *fx.nat()? {
            NatAction::Pass | NatAction::Drop(_) => None,
            NatAction::Consumed => Some(Step::Consumed),
            NatAction::Answer(a) => Some(Step::Answered(a)),
            NatAction::Route {
                dst_mac, next_hop, ..
            } => {
                let ip = view.ipv4()?;
                Some(Step::Routed {
                    src: ip.src,
                    dst: ip.dst,
                    next_hop,
                    mac: dst_mac,
                    ttl: ttl(view, &ip).saturating_sub(1),
                })
            }
            NatAction::Translate {
                rewrite, change, ..
            } => {
                let from = view.ipv4().map_or(
                    Flow {
                        src: Ipv4Addr::UNSPECIFIED,
                        sport: 0,
                        dst: Ipv4Addr::UNSPECIFIED,
                        dport: 0,
                    },
                    |ip| {
                        let (sport, dport) = ip.ports().unwrap_or((0, 0));
                        Flow {
                            src: ip.src,
                            sport,
                            dst: ip.dst,
                            dport,
                        }
                    },
                );
                let (kind, ct) = match change {
                    CtChange::Insert(f) => (Some(f.kind), CtStep::Created),
                    CtChange::Update { id, dir, .. } => {
                        (Some(tables.conntrack.get(id).kind), CtStep::Matched(dir))
                    }
                    CtChange::None => (None, CtStep::Related),
                };
                Some(Step::Translated {
                    kind,
                    ct,
                    from,
                    to: from.rewritten(&rewrite),
                })
            }
        }
    }
}

fn decide(view: &PacketView<'_>, tables: &Tables, fx: &mut Effects) -> NatAction {
    let Some(uplink) = tables.nat.uplink() else {
        return NatAction::Pass;
    };
    if view.ingress == uplink.port {
        from_uplink(view, tables, uplink, fx)
    } else {
        from_container(view, tables, uplink, fx)
    }
}

fn from_uplink(
    view: &PacketView<'_>,
    tables: &Tables,
    uplink: &Uplink,
    fx: &mut Effects,
) -> NatAction {
    if view.vlan != VlanId(0) {
        return NatAction::Drop(DropReason::NotLocal);
    }
    if view.ethertype == ethertype::ARP {
        let Some(arp) = view.arp() else {
            return NatAction::Drop(DropReason::NotLocal);
        };
        if uplink.on_link(arp.sender_ip) && arp.sender_ip != Ipv4Addr::UNSPECIFIED {
            fx.set_neighbor(arp.sender_ip, arp.sender_mac);
        }
        return match (arp.target_ip == uplink.ip, arp.op) {
            (true, operation::REQUEST) => NatAction::Answer(Answer::Arp),
            (true, _) => NatAction::Consumed,
            (false, _) => NatAction::Drop(DropReason::NotLocal),
        };
    }
    // IPv4 for another MAC (the NIC passed it up: promiscuous, a hub, a flooding switch) is not
    // ours, as a host's stack drops PACKET_OTHERHOST: answering it would send the answer from that
    // other host's MAC (the fuzz target `pipeline` found it).
    if view.dst != uplink.mac {
        return NatAction::Drop(DropReason::NotLocal);
    }
    let Some(ip) = view.ipv4() else {
        return NatAction::Drop(DropReason::NotLocal);
    };
    if ip.dst != uplink.ip {
        return match tables.nat.routed_to(ip.dst) {
            Some(net) => route_in(view, tables, uplink, net, &ip),
            None => NatAction::Drop(DropReason::NotLocal),
        };
    }
    let Some(p) = parse(view) else {
        return NatAction::Drop(DropReason::NotLocal);
    };
    if p.icmp_type.is_some_and(is_icmp_error) {
        return icmp_error(view, tables);
    }
    if let Some(action) = tracked(tables, &p) {
        return action;
    }
    match p.tuple.proto {
        ICMP if p.icmp_type == Some(ECHO_REQUEST) => NatAction::Answer(Answer::IcmpEcho),
        TCP | UDP => {
            let Some((publish, net, target_port)) = published(tables, &p) else {
                return refuse(&p);
            };
            // DNAT only: the container sees the client's own address and port.
            let reply = Tuple {
                proto: p.tuple.proto,
                src: publish.target,
                sport: publish.target_port,
                dst: p.tuple.src,
                dport: p.tuple.sport,
            };
            let flow = NewFlow {
                original: p.tuple,
                reply,
                kind: NatKind::Dnat,
                out_original: Hop {
                    port: target_port,
                    src_mac: net.gateway_mac,
                    dst_mac: publish.target_mac,
                },
                // Replies go back to whoever handed us the packet (client or router).
                out_reply: Hop {
                    port: uplink.port,
                    src_mac: uplink.mac,
                    dst_mac: view.src,
                },
                mapping: Some(publish.id),
                inside: publish.target,
                tcp_flags: p.tcp_flags,
            };
            insert(flow, tables)
        }
        _ => NatAction::Drop(DropReason::NoMapping),
    }
}

fn from_container(
    view: &PacketView<'_>,
    tables: &Tables,
    uplink: &Uplink,
    fx: &mut Effects,
) -> NatAction {
    let Some(net) = tables.nat.network(view.domain) else {
        return NatAction::Pass;
    };
    if view.ethertype != ethertype::IPV4 || view.dst != net.gateway_mac {
        return NatAction::Pass;
    }
    // What is neither NAT's nor the host's: masqueraded, or routed on a routed network.
    let beyond =
        |dst: Ipv4Addr| dst != uplink.ip && dst != net.gateway_ip && !tables.nat.inside(dst);
    let Some(p) = parse(view) else {
        // Not a flow NAT translates (another protocol, a later fragment): a routed network
        // routes it all the same; otherwise it is the host's business.
        return match view.ipv4() {
            Some(ip) if net.routed && beyond(ip.dst) => {
                route_out(view, tables, uplink, net, &ip, fx)
            }
            _ => NatAction::Pass,
        };
    };
    if p.icmp_type.is_some_and(is_icmp_error) {
        // A container's ICMP error about a translated flow (e.g. port unreachable to a client),
        // or, on a routed network, about a routed one.
        return match (icmp_error(view, tables), view.ipv4()) {
            (NatAction::Drop(_), Some(ip)) if net.routed && beyond(ip.dst) => {
                route_out(view, tables, uplink, net, &ip, fx)
            }
            (NatAction::Drop(_), _) => NatAction::Pass,
            (action, _) => action,
        };
    }
    if let Some(action) = tracked(tables, &p) {
        return action;
    }
    let dst = p.tuple.dst;
    if dst == uplink.ip {
        if p.icmp_type == Some(ECHO_REQUEST) {
            return NatAction::Answer(Answer::IcmpEcho);
        }
        return hairpin(view, tables, uplink, net, &p);
    }
    if tables.nat.inside(dst) || dst == net.gateway_ip {
        // The host itself or another network: the host's business (isolation applies there).
        return NatAction::Pass;
    }
    if !net.external {
        return NatAction::Drop(DropReason::Internal);
    }
    if let Some(action) = lost_reply(view, tables, uplink, net, &p, fx) {
        return action;
    }
    match view.ipv4() {
        Some(ip) if net.routed => route_out(view, tables, uplink, net, &ip, fx),
        _ => masquerade(view, tables, uplink, &p, fx),
    }
}

/// The TTL of the packet `ip` (whose whole header `ingress` checked is there).
fn ttl(view: &PacketView<'_>, ip: &Ipv4Summary) -> u8 {
    view.frame
        .get(ip.l3_offset()..)
        .and_then(|b| Ipv4Packet::new_checked_header(b).ok())
        .map_or(0, |p| p.ttl())
}

/// Whether a router may answer `ip` with an ICMP error (RFC 1812 4.3.2.7): not about an ICMP
/// error, a later fragment, or a packet from no one.
fn may_answer_error(ip: &Ipv4Summary) -> bool {
    ip.first_fragment
        && !ip.icmp.is_some_and(|(t, _)| is_icmp_error(t))
        && !ip.src.is_unspecified()
        && !ip.src.is_broadcast()
        && !ip.src.is_multicast()
}

/// What a router does with a packet whose TTL would reach 0 here: time exceeded from `from`
/// (when it may answer), else drop it.
fn ttl_exceeded(view: &PacketView<'_>, ip: &Ipv4Summary, from: Ipv4Addr) -> Option<NatAction> {
    if ttl(view, ip) > 1 {
        return None;
    }
    Some(if may_answer_error(ip) {
        NatAction::Answer(Answer::TimeExceeded { from })
    } else {
        NatAction::Drop(DropReason::TtlExceeded)
    })
}

/// From beyond the uplink to a routed network: to the container holding the address, with the
/// network's gateway as the last hop (as the kernel routes into docker0). The outside routes the
/// subnet to the uplink address, so no ARP beyond the uplink's own is involved.
fn route_in(
    view: &PacketView<'_>,
    tables: &Tables,
    uplink: &Uplink,
    net: &NetworkNat,
    ip: &Ipv4Summary,
) -> NatAction {
    if !net.external {
        return NatAction::Drop(DropReason::Internal);
    }
    if ip.dst == net.gateway_ip {
        // The router's own address on the network answers ping, as the uplink address does;
        // the rest is the host's, which the world does not reach through the uplink.
        return match ip.icmp {
            Some((ECHO_REQUEST, _)) => NatAction::Answer(Answer::IcmpEcho),
            _ => NatAction::Drop(DropReason::NotLocal),
        };
    }
    if let Some(action) = ttl_exceeded(view, ip, uplink.ip) {
        return action;
    }
    let target = tables
        .policy
        .owner(ip.dst)
        .and_then(|mac| Some((mac, container_port(tables, net, mac)?)));
    let Some((mac, port)) = target else {
        return if may_answer_error(ip) {
            NatAction::Answer(Answer::HostUnreachable { from: uplink.ip })
        } else {
            NatAction::Drop(DropReason::NoHost)
        };
    };
    NatAction::Route {
        src_mac: net.gateway_mac,
        dst_mac: mac,
        port,
        next_hop: ip.dst,
    }
}

/// From a routed network's container to the world: out of the uplink to its next hop, with the
/// container's own address.
fn route_out(
    view: &PacketView<'_>,
    tables: &Tables,
    uplink: &Uplink,
    net: &NetworkNat,
    ip: &Ipv4Summary,
    fx: &mut Effects,
) -> NatAction {
    if !net.external {
        return NatAction::Drop(DropReason::Internal);
    }
    if let Some(action) = ttl_exceeded(view, ip, net.gateway_ip) {
        return action;
    }
    match next_hop(tables, uplink, ip.dst, fx) {
        Ok((next_hop, mac)) => NatAction::Route {
            src_mac: uplink.mac,
            dst_mac: mac,
            port: uplink.port,
            next_hop,
        },
        Err(reason) => NatAction::Drop(reason),
    }
}

/// The uplink neighbour a packet to `dst` goes to, and its MAC; an unknown MAC is asked for (the
/// sender retries, as with a router's incomplete neighbour entry).
fn next_hop(
    tables: &Tables,
    uplink: &Uplink,
    dst: Ipv4Addr,
    fx: &mut Effects,
) -> Result<(Ipv4Addr, MacAddr), DropReason> {
    let hop = uplink.next_hop(dst).ok_or(DropReason::NoRoute)?;
    match tables.nat.neighbor(hop) {
        Some(mac) => Ok((hop, mac)),
        None => {
            fx.set_resolve(hop);
            Err(DropReason::NoNeighbor)
        }
    }
}

/// A packet of a tracked connection, translated per its direction.
fn tracked(tables: &Tables, p: &Packet) -> Option<NatAction> {
    let (id, dir) = tables.conntrack.lookup(&p.tuple)?;
    let e = tables.conntrack.get(id);
    let (to, hop) = match dir {
        Direction::Original => (e.reply.reversed(), e.out_original),
        Direction::Reply => (e.original.reversed(), e.out_reply),
    };
    Some(NatAction::Translate {
        rewrite: Rewrite {
            src_mac: Some(hop.src_mac),
            dst_mac: Some(hop.dst_mac),
            src: Some((to.src, to.sport)),
            dst: Some((to.dst, to.dport)),
        },
        inner: None,
        port: hop.port,
        change: CtChange::Update {
            id,
            dir,
            tcp_flags: p.tcp_flags,
        },
    })
}

/// An ICMP error quoting a packet of a tracked flow: the outer destination and the quoted source
/// are translated like the flow's packets, so the sender inside (or outside) learns of it.
fn icmp_error(view: &PacketView<'_>, tables: &Tables) -> NatAction {
    let Some((proto, qsrc, qsport, qdst, qdport)) =
        view.ipv4().and_then(|ip| icmp_error_quote(view.frame, &ip))
    else {
        return NatAction::Drop(DropReason::NotLocal);
    };
    // The quote is a packet that left in the flow's direction, so its reverse is what arrives.
    let quoted = Tuple {
        proto,
        src: qsrc,
        sport: qsport,
        dst: qdst,
        dport: qdport,
    };
    let Some((id, dir)) = tables.conntrack.lookup(&quoted.reversed()) else {
        return NatAction::Drop(DropReason::NoMapping);
    };
    let e = tables.conntrack.get(id);
    // The quoted packet travelled opposite to `dir`; translate it back to what its sender sent.
    let (arriving, hop) = match dir {
        Direction::Original => (e.reply.reversed(), e.out_original),
        Direction::Reply => (e.original.reversed(), e.out_reply),
    };
    let inner = Rewrite {
        src_mac: None,
        dst_mac: None,
        src: Some((arriving.dst, arriving.dport)),
        dst: Some((arriving.src, arriving.sport)),
    };
    // An error from the flow's far end itself (say, port unreachable from a container) also
    // carries that end's translated address as its own source.
    let outer_src = view.ipv4().map(|ip| ip.src);
    let src = (outer_src == Some(qdst)).then_some((arriving.src, 0));
    NatAction::Translate {
        rewrite: Rewrite {
            src_mac: Some(hop.src_mac),
            dst_mac: Some(hop.dst_mac),
            src,
            dst: Some((arriving.dst, 0)),
        },
        inner: Some(inner),
        port: hop.port,
        change: CtChange::None,
    }
}

/// A container reaching a published port on the uplink address: DNAT to the target and SNAT to
/// the uplink address, so the target's reply comes back through the switch (Docker needs a
/// MASQUERADE rule and its proxy for this; docker0 users know it as broken hairpin).
fn hairpin(
    view: &PacketView<'_>,
    tables: &Tables,
    uplink: &Uplink,
    from: &NetworkNat,
    p: &Packet,
) -> NatAction {
    if p.tuple.proto != TCP && p.tuple.proto != UDP {
        return NatAction::Drop(DropReason::NoMapping);
    }
    let Some((publish, net, target_port)) = published(tables, p) else {
        return refuse(p);
    };
    let Some(sport) = tables.conntrack.pick_port(
        p.tuple.proto,
        uplink.ip,
        publish.target,
        publish.target_port,
        p.tuple.sport,
        tables.nat.masquerade_ports,
        tables.nat.share,
    ) else {
        return NatAction::Drop(DropReason::NatPorts);
    };
    let flow = NewFlow {
        original: p.tuple,
        reply: Tuple {
            proto: p.tuple.proto,
            src: publish.target,
            sport: publish.target_port,
            dst: uplink.ip,
            dport: sport,
        },
        kind: NatKind::Hairpin,
        out_original: Hop {
            port: target_port,
            src_mac: net.gateway_mac,
            dst_mac: publish.target_mac,
        },
        out_reply: Hop {
            port: view.ingress,
            src_mac: from.gateway_mac,
            dst_mac: view.src,
        },
        mapping: Some(publish.id),
        inside: publish.target,
        tcp_flags: p.tcp_flags,
    };
    insert(flow, tables)
}

/// The published port a new TCP/UDP flow to the uplink address asks for, the network its
/// container is on (one that may be reached from outside) and the container's engine port.
fn published<'t>(tables: &'t Tables, p: &Packet) -> Option<(&'t Publish, &'t NetworkNat, PortId)> {
    let publish = tables.nat.published(p.tuple.proto, p.tuple.dport)?;
    let net = tables.nat.network(publish.domain).filter(|n| n.external)?;
    let port = container_port(tables, net, publish.target_mac)?;
    Some((publish, net, port))
}

/// A new flow to a port of the uplink address that nothing publishes: refused as a host with no
/// listener refuses it. A reset is never answered (RFC 9293), nor is anything but TCP and UDP.
fn refuse(p: &Packet) -> NatAction {
    match p.tuple.proto {
        TCP if p.tcp_flags.is_some_and(|f| f & tcp_flags::RST == 0) => {
            NatAction::Answer(Answer::TcpReset)
        }
        UDP => NatAction::Answer(Answer::PortUnreachable),
        _ => NatAction::Drop(DropReason::NoMapping),
    }
}

/// A container's TCP segment that opens nothing (no SYN), from the address and port a mapping
/// publishes, with no tracked connection: a reply of a published port's connection whose entry
/// is gone (connections are not kept across a daemon restart, and the server's retransmission
/// may come before its client speaks). Picked up as that connection, so it leaves from the
/// published port the client knows; masqueraded, it would come from another port, and the
/// client's reset to that would end the connection. Where several mappings publish that address
/// and port, which one the client used is unknown: dropped (`no-mapping`) until the client's
/// next segment is picked up from its side. Never on a routed network: there clients reach a
/// container by its own address too, untracked, so a reply without a connection is routed as it
/// is (a published port's connection lost with a restarted daemon ends there: the known limit).
/// `None`: not such a segment.
fn lost_reply(
    view: &PacketView<'_>,
    tables: &Tables,
    uplink: &Uplink,
    net: &NetworkNat,
    p: &Packet,
    fx: &mut Effects,
) -> Option<NatAction> {
    if net.routed || p.tuple.proto != TCP || p.tcp_flags.is_none_or(|f| f & tcp_flags::SYN != 0) {
        return None;
    }
    let publish = match tables
        .nat
        .published_target(TCP, p.tuple.src, p.tuple.sport)?
    {
        Ok(publish) if publish.domain == view.domain => publish,
        Ok(_) => return None,
        Err(()) => return Some(NatAction::Drop(DropReason::NoMapping)),
    };
    let next_mac = match next_hop(tables, uplink, p.tuple.dst, fx) {
        Ok((_, mac)) => mac,
        Err(reason) => return Some(NatAction::Drop(reason)),
    };
    // Tracked from the container's side (the packet seen first), translated as the mapping's.
    let (out_original, out_reply) = outbound_hops(view, uplink, net.gateway_mac, next_mac);
    let flow = NewFlow {
        original: p.tuple,
        reply: Tuple {
            proto: TCP,
            src: p.tuple.dst,
            sport: p.tuple.dport,
            dst: uplink.ip,
            dport: publish.host_port,
        },
        kind: NatKind::Dnat,
        out_original,
        out_reply,
        mapping: Some(publish.id),
        inside: publish.target,
        tcp_flags: p.tcp_flags,
    };
    Some(insert(flow, tables))
}

/// The hops of a flow a container's packet starts toward the world: out of the uplink to
/// `next_mac`, and back to the container on the port it came from, from its gateway's MAC.
fn outbound_hops(
    view: &PacketView<'_>,
    uplink: &Uplink,
    gateway_mac: MacAddr,
    next_mac: MacAddr,
) -> (Hop, Hop) {
    let out = Hop {
        port: uplink.port,
        src_mac: uplink.mac,
        dst_mac: next_mac,
    };
    let back = Hop {
        port: view.ingress,
        src_mac: gateway_mac,
        dst_mac: view.src,
    };
    (out, back)
}

/// A container's connection to the world: out of the uplink with the uplink's address.
fn masquerade(
    view: &PacketView<'_>,
    tables: &Tables,
    uplink: &Uplink,
    p: &Packet,
    fx: &mut Effects,
) -> NatAction {
    let next_mac = match next_hop(tables, uplink, p.tuple.dst, fx) {
        Ok((_, mac)) => mac,
        Err(reason) => return NatAction::Drop(reason),
    };
    let sport = match p.tuple.proto {
        ICMP => {
            if p.icmp_type != Some(ECHO_REQUEST) {
                return NatAction::Drop(DropReason::NoMapping);
            }
            free_icmp_id(tables, uplink.ip, p.tuple.dst, p.tuple.sport)
        }
        _ => tables.conntrack.pick_port(
            p.tuple.proto,
            uplink.ip,
            p.tuple.dst,
            p.tuple.dport,
            p.tuple.sport,
            tables.nat.masquerade_ports,
            tables.nat.share,
        ),
    };
    let Some(sport) = sport else {
        return NatAction::Drop(DropReason::NatPorts);
    };
    let dport = if p.tuple.proto == ICMP {
        sport
    } else {
        p.tuple.dport
    };
    let Some(from) = tables.nat.network(view.domain) else {
        return NatAction::Pass;
    };
    let (out_original, out_reply) = outbound_hops(view, uplink, from.gateway_mac, next_mac);
    let flow = NewFlow {
        original: p.tuple,
        reply: Tuple {
            proto: p.tuple.proto,
            src: p.tuple.dst,
            sport: dport,
            dst: uplink.ip,
            dport: sport,
        },
        kind: NatKind::Masquerade,
        out_original,
        out_reply,
        mapping: None,
        inside: p.tuple.src,
        tcp_flags: p.tcp_flags,
    };
    insert(flow, tables)
}

/// An echo identifier for a masqueraded ping: its own if free and in this worker's share, else
/// the next such one.
fn free_icmp_id(tables: &Tables, uplink_ip: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Option<u16> {
    (0..=u16::MAX).map(|i| id.wrapping_add(i)).find(|&c| {
        tables.nat.share.holds(c)
            && !tables.conntrack.is_tracked(&Tuple {
                proto: ICMP,
                src: dst,
                sport: c,
                dst: uplink_ip,
                dport: c,
            })
    })
}

/// The port a container's MAC sits on in its network (a static entry put there at attach).
fn container_port(tables: &Tables, net: &NetworkNat, mac: MacAddr) -> Option<PortId> {
    tables.cam.lookup(net.domain, VlanId(0), mac)
}

/// A new flow: translated like its first packet will be.
fn insert(flow: NewFlow, tables: &Tables) -> NatAction {
    if tables.conntrack.is_tracked(&flow.reply) {
        return NatAction::Drop(DropReason::ConntrackClash);
    }
    let to = flow.reply.reversed();
    NatAction::Translate {
        rewrite: Rewrite {
            src_mac: Some(flow.out_original.src_mac),
            dst_mac: Some(flow.out_original.dst_mac),
            src: Some((to.src, to.sport)),
            dst: Some((to.dst, to.dport)),
        },
        inner: None,
        port: flow.out_original.port,
        change: CtChange::Insert(flow),
    }
}
