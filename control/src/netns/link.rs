//! A small synchronous rtnetlink client: just what switchyard needs to wire
//! containers (veth pairs, MAC/MTU, IPv4 addresses, the default route).
//!
//! Why synchronous and hand-rolled over `netlink-packet-route` instead of the
//! async `rtnetlink` crate: the control plane is thread-based with no async
//! runtime, and each operation is one request and its answer. Why messages are
//! built with netlink-packet-route rather than by hand: the project's rule is
//! "netlink through netlink-packet-route, never shelling out to `ip`".
//!
//! Why a [`Netlink`] is tied to a namespace: a NETLINK_ROUTE socket talks to the
//! namespace it was created in for its whole life, whichever thread uses it. So
//! [`Netlink::in_ns`] creates the socket on a helper thread inside the namespace
//! and the result can be used from anywhere.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::sync::Mutex;

use dataplane::MacAddr;
use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_ACK_TLVS,
    NLM_F_CAPPED, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::{os, NetNs, NetnsError, Result};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;
/// `NLMSGERR_ATTR_MSG`: the human-readable text in an extended ack.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// How often a dump interrupted by concurrent changes is retried.
const DUMP_RETRIES: usize = 5;

/// One network interface as seen in a link dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// The rtnetlink kind ("veth", "tun", "bridge", ...); `None` for plain
    /// devices such as `lo` or physical NICs.
    pub kind: Option<String>,
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
}

/// A NETLINK_ROUTE socket bound to the namespace it was created in.
/// Requests are serialised by an internal lock, so it can be shared by threads.
pub struct Netlink {
    inner: Mutex<Inner>,
}

struct Inner {
    sock: Socket,
    seq: u32,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fd = self.inner.lock().map(|i| i.sock.as_raw_fd()).unwrap_or(-1);
        f.debug_struct("Netlink").field("fd", &fd).finish()
    }
}

fn check_ifname(op: &dyn Fn() -> String, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "interface name is empty".to_owned()
    } else if name.len() > MAX_IFNAME_LEN {
        format!("interface name '{name}' is longer than {MAX_IFNAME_LEN} bytes")
    } else if name.contains(['/', ':']) || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        format!("interface name '{name}' contains '/', ':' or whitespace")
    } else {
        return Ok(());
    };
    Err(NetnsError::InvalidArgument { op: op(), reason })
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn current() -> Result<Netlink> {
        let mut sock =
            Socket::new(NETLINK_ROUTE).map_err(|err| os("opening a NETLINK_ROUTE socket", err))?;
        sock.bind_auto()
            .map_err(|err| os("binding a NETLINK_ROUTE socket", err))?;
        // Best effort: error texts from the kernel (4.12+) and short error echoes.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        Ok(Netlink {
            inner: Mutex::new(Inner { sock, seq: 0 }),
        })
    }

    /// A socket inside `ns`, usable from any thread afterwards.
    pub fn in_ns(ns: &NetNs) -> Result<Netlink> {
        ns.run_in(Netlink::current)?
    }

    /// The ifindex of `name`, `None` if there is no such interface.
    pub fn link_index(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.link(name)?.map(|l| l.index))
    }

    /// All interfaces of the namespace.
    pub fn links(&self) -> Result<Vec<LinkInfo>> {
        let op = || "listing interfaces".to_owned();
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            &op,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_info(l)),
                _ => None,
            })
            .collect())
    }

    /// The interface called `name`, `None` if there is none.
    pub fn link(&self, name: &str) -> Result<Option<LinkInfo>> {
        let op = || format!("looking up interface '{name}'");
        if check_ifname(&op, name).is_err() {
            return Ok(None); // no interface can have that name
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0, &op) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_info(l)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn index_of(&self, name: &str, op: &dyn Fn() -> String) -> Result<u32> {
        check_ifname(op, name)?;
        self.link_index(name)?
            .ok_or_else(|| NetnsError::NoSuchLink {
                op: op(),
                name: name.to_owned(),
            })
    }

    /// Creates veth pair `name` (here) <-> `peer` (created directly inside
    /// `peer_ns`, so no other namespace ever sees it and no rename can race).
    pub fn create_veth(&self, name: &str, peer: &str, peer_ns: &NetNs) -> Result<()> {
        let op = || format!("creating veth '{name}' with peer '{peer}' in {peer_ns}");
        check_ifname(&op, name)?;
        check_ifname(&op, peer)?;
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes = vec![
            LinkAttribute::IfName(peer.to_owned()),
            LinkAttribute::NetNsFd(peer_ns.fd().as_raw_fd()),
        ];
        let mut msg = LinkMessage::default();
        msg.attributes = vec![
            LinkAttribute::IfName(name.to_owned()),
            LinkAttribute::LinkInfo(vec![
                NlLinkInfo::Kind(InfoKind::Veth),
                NlLinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
            ]),
        ];
        // `peer_ns` is borrowed for the whole call, so the fd number sent stays valid.
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &op,
        )
        .map(drop)
    }

    /// Deletes interface `name` (for a veth, its peer goes too). Ok if absent.
    pub fn delete_link(&self, name: &str) -> Result<()> {
        let op = || format!("deleting interface '{name}'");
        let Some(index) = self.link_index(name)? else {
            return Ok(());
        };
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(msg), 0, &op) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            other => other.map(drop),
        }
    }

    fn set_link(
        &self,
        name: &str,
        op: &dyn Fn() -> String,
        fill: impl FnOnce(&mut LinkMessage),
    ) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = self.index_of(name, op)?;
        fill(&mut msg);
        self.request(RouteNetlinkMessage::SetLink(msg), 0, op)
            .map(drop)
    }

    /// `ip link set NAME up`.
    pub fn set_up(&self, name: &str) -> Result<()> {
        self.set_link(name, &|| format!("setting interface '{name}' up"), |m| {
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
        })
    }

    /// `ip link set NAME address MAC`.
    pub fn set_mac(&self, name: &str, mac: MacAddr) -> Result<()> {
        let op = || format!("setting MAC address of '{name}' to {mac}");
        self.set_link(name, &op, |m| {
            m.attributes.push(LinkAttribute::Address(mac.0.to_vec()))
        })
    }

    /// `ip link set NAME mtu MTU`.
    pub fn set_mtu(&self, name: &str, mtu: u32) -> Result<()> {
        self.set_link(name, &|| format!("setting MTU of '{name}' to {mtu}"), |m| {
            m.attributes.push(LinkAttribute::Mtu(mtu))
        })
    }

    /// `ip addr add IP/PREFIX brd + dev NAME`; Ok if that exact address is already there.
    pub fn add_address(&self, name: &str, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let op = || format!("adding address {ip}/{prefix} to '{name}'");
        if prefix > 32 {
            return Err(NetnsError::InvalidArgument {
                op: op(),
                reason: format!("prefix length {prefix} > 32"),
            });
        }
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.scope = AddressScope::Universe;
        msg.header.index = self.index_of(name, &op)?;
        msg.attributes = vec![
            AddressAttribute::Local(IpAddr::V4(ip)),
            AddressAttribute::Address(IpAddr::V4(ip)),
        ];
        if prefix < 31 {
            let host_mask = u32::MAX >> prefix;
            msg.attributes
                .push(AddressAttribute::Broadcast(Ipv4Addr::from(
                    u32::from(ip) | host_mask,
                )));
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &op,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other.map(drop),
        }
    }

    /// The IPv4 addresses (address, prefix length) on interface `name`.
    pub fn addresses(&self, name: &str) -> Result<Vec<(Ipv4Addr, u8)>> {
        let op = || format!("listing addresses of '{name}'");
        let index = self.index_of(name, &op)?;
        self.dump_addresses(Some(index), &op)
    }

    /// Every IPv4 address of the namespace (address, prefix length), on any interface.
    pub fn all_addresses(&self) -> Result<Vec<(Ipv4Addr, u8)>> {
        self.dump_addresses(None, &|| "listing addresses".to_string())
    }

    fn dump_addresses(
        &self,
        index: Option<u32>,
        op: &dyn Fn() -> String,
    ) -> Result<Vec<(Ipv4Addr, u8)>> {
        let mut req = AddressMessage::default();
        req.header.family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetAddress(req), NLM_F_DUMP, op)?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if index.is_some_and(|i| a.header.index != i) || a.header.family != AddressFamily::Inet
            {
                continue;
            }
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
            // point-to-point links, and equal to IFA_LOCAL otherwise.
            let mut local = None;
            let mut address = None;
            for attr in a.attributes {
                match attr {
                    AddressAttribute::Local(IpAddr::V4(ip)) => local = Some(ip),
                    AddressAttribute::Address(IpAddr::V4(ip)) => address = Some(ip),
                    _ => {}
                }
            }
            if let Some(ip) = local.or(address) {
                out.push((ip, a.header.prefix_len));
            }
        }
        Ok(out)
    }

    /// `ip route replace default via GATEWAY` (main table).
    pub fn replace_default_route(&self, gateway: Ipv4Addr) -> Result<()> {
        let op = || format!("replacing the default route with one via {gateway}");
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = 0;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes = vec![RouteAttribute::Gateway(RouteAddress::Inet(gateway))];
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
            &op,
        )
        .map(drop)
    }

    /// Destinations (network, prefix length) of the IPv4 routes in the main
    /// table, without the default route.
    pub fn routes_v4(&self) -> Result<Vec<(Ipv4Addr, u8)>> {
        let op = || "listing IPv4 routes".to_owned();
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetRoute(req), NLM_F_DUMP, &op)?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            let prefix = r.header.destination_prefix_length;
            if r.header.address_family != AddressFamily::Inet || prefix == 0 {
                continue;
            }
            // RTA_TABLE carries the full 32-bit id; the header's u8 is a legacy copy.
            let mut table = u32::from(r.header.table);
            let mut dst = None;
            for attr in r.attributes {
                match attr {
                    RouteAttribute::Table(t) => table = t,
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(ip),
                    _ => {}
                }
            }
            if table == u32::from(RouteHeader::RT_TABLE_MAIN) {
                if let Some(ip) = dst {
                    out.push((ip, prefix));
                }
            }
        }
        Ok(out)
    }

    /// Sends one request and collects the replies, retrying dumps the kernel
    /// marks as interrupted (the table changed while it was being dumped).
    fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &dyn Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut attempt = 0;
        loop {
            let (replies, interrupted) =
                self.request_once(msg.clone(), flags | NLM_F_REQUEST | NLM_F_ACK, dump, op)?;
            attempt += 1;
            if !interrupted || attempt >= DUMP_RETRIES {
                return Ok(replies);
            }
        }
    }

    fn request_once(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        dump: bool,
        op: &dyn Fn() -> String,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool)> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.seq = inner.seq.wrapping_add(1);
        let seq = inner.seq;

        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        let kernel = SocketAddr::new(0, 0);
        inner
            .sock
            .send_to(&buf, &kernel, 0)
            .map_err(|err| os(format!("{}: sending netlink request", op()), err))?;

        let decode = |detail: String| NetnsError::Decode { op: op(), detail };
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let (data, _) = inner
                .sock
                .recv_from_full()
                .map_err(|err| os(format!("{}: receiving netlink reply", op()), err))?;
            let mut offset = 0;
            while offset < data.len() {
                let chunk = &data[offset..];
                let nl = NetlinkBuffer::new_checked(chunk).map_err(|e| decode(e.to_string()))?;
                let len = nl.length() as usize;
                let (msg_seq, msg_flags) = (nl.sequence_number(), nl.flags());
                offset += (len + 3) & !3;
                if msg_seq != seq {
                    continue; // left over from an earlier request
                }
                if msg_flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&chunk[..len])
                    .map_err(|e| decode(e.to_string()))?;
                match parsed.payload {
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    NetlinkPayload::Error(e) => match e.code {
                        // An ACK: the end of a non-dump request.
                        None if !dump => return Ok((replies, interrupted)),
                        None => {}
                        Some(code) => {
                            return Err(NetnsError::Netlink {
                                op: op(),
                                err: io::Error::from_raw_os_error(-code.get()),
                                detail: ext_ack_text(msg_flags, &e.header),
                            })
                        }
                    },
                    NetlinkPayload::Done(d) if d.code < 0 => {
                        return Err(NetnsError::Netlink {
                            op: op(),
                            err: io::Error::from_raw_os_error(-d.code),
                            detail: None,
                        })
                    }
                    NetlinkPayload::Done(_) => return Ok((replies, interrupted)),
                    _ => {}
                }
            }
        }
    }
}

/// The kernel's error text from an extended ack, if any. `after_code` is what
/// follows the error code: the echoed request (only its header if NLM_F_CAPPED),
/// then, with NLM_F_ACK_TLVS, netlink attributes.
fn ext_ack_text(flags: u16, after_code: &[u8]) -> Option<String> {
    const HDR: usize = 16;
    if flags & NLM_F_ACK_TLVS == 0 || after_code.len() < HDR {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        HDR
    } else {
        u32::from_ne_bytes(after_code[..4].try_into().ok()?) as usize
    };
    let mut tlvs = after_code.get((echoed + 3) & !3..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = String::from_utf8_lossy(&tlvs[4..len]);
            return Some(text.trim_end_matches('\0').to_owned());
        }
        tlvs = tlvs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

fn link_info(msg: LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        up: msg.header.flags.contains(LinkFlags::Up),
    };
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name = name,
            LinkAttribute::Mtu(mtu) => info.mtu = mtu,
            LinkAttribute::Address(mac) => info.mac = mac.as_slice().try_into().ok().map(MacAddr),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlLinkInfo::Kind(kind) = i {
                        info.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    info
}
