//! Making the system match the state: namespaces, veths, host taps and engine ports.
//!
//! Every `*_up` is idempotent: it creates what is missing and re-attaches what exists. That one
//! property serves both a fresh `container create` and a restart after `kill -9`, where the
//! namespaces, veths and (persistent) taps outlived the daemon and only the engine's ports and
//! static MACs must be rebuilt. Every `*_down` is best-effort and tolerates what is already gone.

use std::collections::HashMap;

use anyhow::Context;
use std::collections::HashSet;
use std::path::PathBuf;

use std::net::Ipv4Addr;

use dataplane::{AfPacketPort, Port, TapPort};
use dataplane::{ContainerGuard, NetworkNat, PortRole, Publish, Subnet, Uplink};
use dataplane::{DomainId, MacAddr, PortId, VlanId};
use dataplane::{EngineHandle, NatUpdate, PolicyUpdate};

use crate::model::ipam::Ipv4Net;
use crate::model::{Container, Endpoint, Network, State, UPLINK_DOMAIN};
use crate::netns::{self, NetNs, Netlink};
use crate::render::names::Names;
use dataplane::CtStats;
use dataplane::{AddressConflict, ConnInfo, Snapshot};
use dataplane::{Capture, TraceArm, TraceRecord, TraceTarget};

pub struct System {
    engine: EngineHandle,
    /// rtnetlink in the daemon's own namespace (host taps, host ends of veths, routes).
    netlink: Netlink,
    /// Engine port of each network's host tap, by network name.
    host_ports: HashMap<String, PortId>,
    /// Engine port of each endpoint's veth, by endpoint ID.
    endpoint_ports: HashMap<String, PortId>,
    /// The uplink's engine port, interface name and MAC.
    uplink: Option<(PortId, String, MacAddr)>,
    /// Engine port of each network's parent interface (an L2 uplink), by network name.
    parent_ports: HashMap<String, PortId>,
}

impl System {
    pub fn new(engine: EngineHandle, netlink: Netlink) -> System {
        System {
            engine,
            netlink,
            host_ports: HashMap::new(),
            endpoint_ports: HashMap::new(),
            uplink: None,
            parent_ports: HashMap::new(),
        }
    }

    /// Whether `name` exists in the daemon's namespace and is not one of our taps.
    pub fn foreign_interface(&self, name: &str) -> anyhow::Result<bool> {
        Ok(match self.netlink.link(name)? {
            Some(l) => l.kind.as_deref() != Some("tun"),
            None => false,
        })
    }

    /// The network's host tap: created (or re-attached: it is persistent), given its MAC, MTU and
    /// the gateway address, and attached to the network's bridge domain.
    pub fn network_up(&mut self, n: &Network) -> anyhow::Result<()> {
        if self.host_ports.contains_key(&n.name) {
            return Ok(());
        }
        let name = &n.host_interface;
        let mut tap = TapPort::create(name)?;
        tap.set_persistent(true)?;
        let mac = n.host_mac;
        if tap.mac() != Some(mac) {
            tap.set_mac(mac)?;
        }
        self.netlink.set_mtu(name, n.mtu)?;
        self.netlink
            .add_address(name, n.gateway(), n.subnet().prefix())?;
        self.netlink.set_up(name)?;
        let domain = DomainId(n.domain);
        let id = self
            .engine
            .add_port_as(Box::new(tap), domain, PortRole::Host)
            .with_context(|| format!("attaching host port '{name}'"))?;
        self.host_ports.insert(n.name.clone(), id);
        self.engine
            .add_static_mac(domain, VlanId(0), mac, id)
            .with_context(|| format!("adding the MAC of host port '{name}'"))?;
        if let Some(parent) = &n.parent {
            quiet(parent)?;
            self.netlink.set_up(parent)?;
            let port = dataplane::VlanPort::open(parent, n.vlan)?;
            let id = self
                .engine
                .add_port_as(Box::new(port), domain, PortRole::Parent)
                .with_context(|| format!("attaching parent '{parent}'"))?;
            self.parent_ports.insert(n.name.clone(), id);
        }
        Ok(())
    }

    /// Detaches and deletes the host tap (its address and routes go with it).
    pub fn network_down(&mut self, n: &Network) {
        if let Some(id) = self.host_ports.remove(&n.name) {
            let _ = self.engine.remove_port(id);
        }
        if let Some(id) = self.parent_ports.remove(&n.name) {
            let _ = self.engine.remove_port(id);
        }
        if let Err(e) = self.netlink.delete_link(&n.host_interface) {
            tracing::warn!(network = %n.name, "deleting host port: {e}");
        }
    }

    /// The container's namespace with every endpoint plugged in and the default route set.
    pub fn container_up(&mut self, state: &State, c: &Container) -> anyhow::Result<()> {
        if let crate::model::NetworkMode::External { path, inode } = &c.mode {
            // Someone else's namespace: plug the endpoints in, touch nothing else there.
            let ns = open_external(path)?;
            anyhow::ensure!(ns.inode() == *inode, "{path} is now another namespace");
            let inside = Netlink::in_ns(&ns)?;
            for e in &c.endpoints {
                self.endpoint_up(state.network(&e.network)?, c, e, &ns, &inside)?;
            }
            return Ok(());
        }
        if !c.owns_netns() {
            // `host` lives in the daemon's namespace, `container:X` in X's: nothing to build.
            return Ok(());
        }
        let ns = match netns::open_named(c.netns())? {
            Some(ns) => ns,
            None => netns::create_named(c.netns())?,
        };
        let inside = Netlink::in_ns(&ns)?;
        inside.set_up("lo")?;
        for e in &c.endpoints {
            let n = state.network(&e.network)?;
            self.endpoint_up(n, c, e, &ns, &inside)?;
        }
        self.default_route(state, c, &inside)
    }

    /// Points the container's default route at the gateway of its first non-internal network.
    fn default_route(&self, state: &State, c: &Container, inside: &Netlink) -> anyhow::Result<()> {
        if let Some((e, gateway)) = state.default_route_endpoint(c) {
            inside
                .replace_default_route(gateway)
                .with_context(|| format!("default route via {gateway} on {}", e.interface))?;
        }
        Ok(())
    }

    /// A veth pair (host end here, `ethN` inside), configured and attached to the engine.
    pub fn endpoint_up(
        &mut self,
        n: &Network,
        c: &Container,
        e: &Endpoint,
        ns: &NetNs,
        inside: &Netlink,
    ) -> anyhow::Result<()> {
        if self.endpoint_ports.contains_key(&e.id) {
            return Ok(());
        }
        let fresh = self.netlink.link_index(&e.host_interface)?.is_none();
        if fresh {
            self.netlink
                .create_veth(&e.host_interface, &e.interface, ns)?;
        }
        let current = inside.link(&e.interface)?.with_context(|| {
            format!(
                "interface {} is missing in the container's namespace",
                e.interface
            )
        })?;
        if current.mac != Some(e.mac) {
            inside.set_mac(&e.interface, e.mac)?;
        }
        if current.mtu != n.mtu {
            inside.set_mtu(&e.interface, n.mtu)?;
        }
        inside.add_address(&e.interface, e.ip, n.subnet().prefix())?;
        inside.set_up(&e.interface)?;
        self.netlink.set_mtu(&e.host_interface, n.mtu)?;
        quiet(&e.host_interface)?;
        self.netlink.set_up(&e.host_interface)?;
        let port = AfPacketPort::open(&e.host_interface)?;
        let domain = DomainId(n.domain);
        // The guard is in force from the port's first frame (anti-spoofing, and icc as a container).
        let role = guard(c, e);
        let id = self
            .engine
            .add_port_as(Box::new(port), domain, role)
            .with_context(|| format!("attaching '{}'", e.host_interface))?;
        self.endpoint_ports.insert(e.id.clone(), id);
        // The switch knows the container's MAC before it speaks: no flood for the first reply,
        // and no other port can claim that MAC (a static entry wins over learning).
        self.engine
            .add_static_mac(domain, VlanId(0), e.mac, id)
            .with_context(|| format!("adding the MAC of '{}'", e.host_interface))?;
        if fresh {
            // Neighbours that cached an older owner of this address learn the new MAC at once.
            if let Err(err) = netns::send_gratuitous_arp(ns, &e.interface, e.mac, e.ip) {
                tracing::warn!(interface = %e.interface, "gratuitous ARP: {err}");
            }
        }
        Ok(())
    }

    /// Detaches the endpoint and deletes its veth pair (both ends go together).
    pub fn endpoint_down(&mut self, e: &Endpoint) {
        if let Some(id) = self.endpoint_ports.remove(&e.id) {
            let _ = self.engine.remove_port(id);
        }
        // Its tracked connections go with it: no stale flow reaches a later owner of the address.
        let _ = self.engine.set_nat(NatUpdate::ForgetInside(e.ip));
        if let Err(err) = self.netlink.delete_link(&e.host_interface) {
            tracing::warn!(interface = %e.host_interface, "deleting veth: {err}");
        }
    }

    /// After a disconnect: the default route moves to the next network, if any.
    pub fn refresh_default_route(&self, state: &State, c: &Container) -> anyhow::Result<()> {
        let Some(ns) = netns::open_named(c.netns())? else {
            return Ok(());
        };
        let inside = Netlink::in_ns(&ns)?;
        self.default_route(state, c, &inside)
    }

    /// Plugs one more endpoint into an existing container (or attachment).
    pub fn connect(&mut self, state: &State, c: &Container, e: &Endpoint) -> anyhow::Result<()> {
        if let crate::model::NetworkMode::External { path, .. } = &c.mode {
            let ns = open_external(path)?;
            let inside = Netlink::in_ns(&ns)?;
            anyhow::ensure!(
                inside.link(&e.interface)?.is_none(),
                "interface {} already exists in {path}; choose another with --ifname",
                e.interface
            );
            return self.endpoint_up(state.network(&e.network)?, c, e, &ns, &inside);
        }
        let ns = netns::open_named(c.netns())?
            .with_context(|| format!("the namespace of container '{}' is gone", c.name))?;
        let inside = Netlink::in_ns(&ns)?;
        self.endpoint_up(state.network(&e.network)?, c, e, &ns, &inside)?;
        self.default_route(state, c, &inside)
    }

    /// Removes every endpoint and the namespace.
    pub fn container_down(&mut self, c: &Container) {
        for e in &c.endpoints {
            self.endpoint_down(e);
        }
        if !c.owns_netns() {
            return;
        }
        if let Err(err) = netns::delete_named(c.netns()) {
            tracing::warn!(container = %c.name, "deleting namespace: {err}");
        }
        let dir = hosts_dir(c);
        let _ = std::fs::remove_file(dir.join("hosts"));
        let _ = std::fs::remove_dir(&dir);
    }

    /// Pushes the whole policy computed from `state`: icc per network, every link rule, and the
    /// subnets and attachments isolation needs. Each part replaces the engine's copy at once, so a
    /// removed link or container leaves no stale permission behind.
    pub fn sync_policy(&self, state: &State) -> anyhow::Result<()> {
        let mut updates = Vec::new();
        for c in state.containers.values() {
            for e in &c.endpoints {
                if let Some(&port) = self.endpoint_ports.get(&e.id) {
                    updates.push(PolicyUpdate::Role {
                        port,
                        role: guard(c, e),
                    });
                }
            }
        }
        for n in state.networks.values() {
            updates.push(PolicyUpdate::Icc {
                domain: DomainId(n.domain),
                icc: n.icc,
            });
        }
        updates.push(PolicyUpdate::Links(state.link_rules()));
        let subnets = state
            .networks
            .values()
            .map(|n| Subnet {
                domain: DomainId(n.domain),
                network: n.subnet().addr(),
                prefix: n.subnet().prefix(),
            })
            .collect();
        let mut attached = HashSet::new();
        for c in state.containers.values() {
            for owned in &c.endpoints {
                for on in &c.endpoints {
                    if let Some(n) = state.networks.get(&on.network) {
                        attached.insert((owned.ip, DomainId(n.domain)));
                    }
                }
            }
        }
        updates.push(PolicyUpdate::Isolation { subnets, attached });
        // One command: the engine sees the whole new policy between the same two batches.
        self.engine.set_policy(PolicyUpdate::Many(updates))?;
        Ok(())
    }

    /// Attaches the uplink: an AF_PACKET port whose frames all go to `nat`, with its address.
    pub fn uplink_up(
        &mut self,
        ifname: &str,
        ip: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> anyhow::Result<()> {
        let link = self
            .netlink
            .link(ifname)?
            .with_context(|| format!("no interface '{ifname}' in the daemon's namespace"))?;
        quiet(ifname)?;
        self.netlink.set_up(ifname)?;
        let port = AfPacketPort::open(ifname)?;
        let mac = port
            .mac()
            .or(link.mac)
            .with_context(|| format!("'{ifname}' has no MAC address"))?;
        let id =
            self.engine
                .add_port_as(Box::new(port), DomainId(UPLINK_DOMAIN), PortRole::Uplink)?;
        self.engine.set_nat(NatUpdate::Uplink(Some(Uplink {
            port: id,
            mac,
            ip,
            prefix,
            gateway,
        })))?;
        self.uplink = Some((id, ifname.to_string(), mac));
        tracing::info!(uplink = ifname, %ip, prefix, ?gateway, "uplink attached");
        Ok(())
    }

    /// Pushes each network's NAT view and every published port.
    pub fn sync_nat(&self, state: &State) -> anyhow::Result<()> {
        let networks = state
            .networks
            .values()
            .map(|n| NetworkNat {
                domain: DomainId(n.domain),
                subnet: Subnet {
                    domain: DomainId(n.domain),
                    network: n.subnet().addr(),
                    prefix: n.subnet().prefix(),
                },
                gateway_ip: n.gateway(),
                gateway_mac: n.host_mac,
                external: !n.internal && n.masquerade,
            })
            .collect();
        self.engine.set_nat(NatUpdate::Networks(networks))?;
        let mut publish = Vec::new();
        for c in state.containers.values() {
            // Published ports lead to the container's first network that may have them.
            let Some((e, n)) = c.endpoints.iter().find_map(|e| {
                let n = state.networks.get(&e.network)?;
                (!n.internal).then_some((e, n))
            }) else {
                continue;
            };
            for p in &c.published {
                publish.push(Publish {
                    id: p.id,
                    protocol: p.mapping.protocol.number(),
                    host_port: p.mapping.host_port,
                    target: e.ip,
                    target_port: p.mapping.container_port,
                    target_mac: e.mac,
                    domain: DomainId(n.domain),
                });
            }
        }
        self.engine.set_nat(NatUpdate::Publish(publish))?;
        Ok(())
    }

    pub fn is_uplink(&self, port: PortId) -> bool {
        self.uplink.as_ref().is_some_and(|(p, _, _)| *p == port)
    }

    /// What traces call ports and MACs: containers by name (`web`, or `web:eth1` for a second
    /// interface), host ports as `host:NETWORK`, the uplink as `uplink`.
    pub fn names(&self, state: &State) -> Names {
        let mut names = Names::default();
        for c in state.containers.values() {
            for e in &c.endpoints {
                let name = if e.interface == "eth0" {
                    c.name.clone()
                } else {
                    format!("{}:{}", c.name, e.interface)
                };
                if let Some(&p) = self.endpoint_ports.get(&e.id) {
                    names.ports.insert(p, name);
                }
                names.macs.insert(e.mac.0, c.name.clone());
                names.owners.insert(e.ip, c.name.clone());
            }
        }
        for n in state.networks.values() {
            if let Some(&p) = self.host_ports.get(&n.name) {
                names.ports.insert(p, format!("host:{}", n.name));
            }
            if let (Some(&p), Some(parent)) = (self.parent_ports.get(&n.name), &n.parent) {
                let name = match n.vlan {
                    Some(v) => format!("parent:{parent}.{v}"),
                    None => format!("parent:{parent}"),
                };
                names.ports.insert(p, name);
            }
            names
                .macs
                .insert(n.host_mac.0, format!("host port of {}", n.name));
        }
        if let Some((p, _, mac)) = &self.uplink {
            names.ports.insert(*p, "uplink".into());
            names.macs.insert(mac.0, "uplink".into());
        }
        names
    }

    /// A trace target: a container (`web`, `web:eth1`), a network, `host:NETWORK`, `uplink`, or
    /// an interface name of the daemon's namespace (veth, tap, uplink).
    pub fn resolve(&self, state: &State, target: &str) -> Option<(TraceTarget, Option<MacAddr>)> {
        let (cname, ifname) = target.split_once(':').unwrap_or((target, "eth0"));
        if let Some(c) = state.containers.get(cname) {
            let e = c.endpoints.iter().find(|e| e.interface == ifname)?;
            let p = self.endpoint_ports.get(&e.id)?;
            return Some((TraceTarget::Port(*p), Some(e.mac)));
        }
        if let Some(n) = state.networks.get(target) {
            return Some((TraceTarget::Network(DomainId(n.domain)), None));
        }
        if let Some(net) = target.strip_prefix("host:") {
            let n = state.networks.get(net)?;
            let p = self.host_ports.get(net)?;
            return Some((TraceTarget::Port(*p), Some(n.host_mac)));
        }
        if let Some((p, name, mac)) = &self.uplink {
            if target == "uplink" || target == name {
                return Some((TraceTarget::Port(*p), Some(*mac)));
            }
        }
        for n in state.networks.values() {
            if n.host_interface == target {
                let p = self.host_ports.get(&n.name)?;
                return Some((TraceTarget::Port(*p), Some(n.host_mac)));
            }
        }
        for c in state.containers.values() {
            for e in &c.endpoints {
                if e.host_interface == target {
                    let p = self.endpoint_ports.get(&e.id)?;
                    return Some((TraceTarget::Port(*p), Some(e.mac)));
                }
            }
        }
        None
    }

    /// Tracked NAT connections and the table's counters (`switchyard conntrack`).
    pub fn conntrack(&self) -> anyhow::Result<(Vec<ConnInfo>, CtStats)> {
        Ok(self.engine.connections()?)
    }

    /// The data plane's ports, MAC table and counters.
    pub fn snapshot(&self) -> anyhow::Result<Snapshot> {
        Ok(self.engine.snapshot()?)
    }

    /// Address conflicts the engine saw on parent ports.
    pub fn conflicts(&self) -> anyhow::Result<Vec<AddressConflict>> {
        Ok(self.engine.conflicts()?)
    }

    /// Traces the next packets entering a target.
    pub fn trace_arm(&self, arm: TraceArm) -> anyhow::Result<()> {
        Ok(self.engine.trace_arm(arm)?)
    }

    /// The trace records collected so far.
    pub fn trace_show(&self) -> anyhow::Result<Vec<TraceRecord>> {
        Ok(self.engine.trace_show()?)
    }

    pub fn trace_clear(&self) -> anyhow::Result<()> {
        Ok(self.engine.trace_clear()?)
    }

    /// Runs `frame` through the real tables as if it entered at `port`; nothing is sent.
    pub fn trace_packet(&self, port: PortId, frame: Vec<u8>) -> anyhow::Result<TraceRecord> {
        Ok(self.engine.trace_packet(port, frame)?)
    }

    /// Starts a capture; returns its id and the handle that stops it (the streaming thread
    /// stops it when its client goes away).
    pub fn capture_start(&self, capture: Capture) -> anyhow::Result<(u32, CaptureStop)> {
        let id = self.engine.capture_start(capture)?;
        Ok((
            id,
            CaptureStop {
                id,
                engine: self.engine.clone(),
            },
        ))
    }

    /// Stops the engine (on SIGTERM); namespaces, veths and host taps stay.
    pub fn shutdown(&self) {
        let _ = self.engine.shutdown();
    }

    /// Whether an interface of this name exists in the daemon's namespace.
    pub fn interface_exists(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self.netlink.link(name)?.is_some())
    }

    /// IPv4 routes of the daemon's namespace, as networks.
    pub fn routes(&self) -> Vec<Ipv4Net> {
        routes(&self.netlink)
    }

    /// Writes `/etc/netns/NAME/hosts` of every container (what `ip netns exec` and
    /// `container exec` show as /etc/hosts): its own name and its link aliases.
    pub fn sync_hosts(&self, state: &State) {
        for c in state.containers.values().filter(|c| c.owns_netns()) {
            let dir = hosts_dir(c);
            let write = || -> std::io::Result<()> {
                std::fs::create_dir_all(&dir)?;
                let tmp = dir.join(".hosts.switchyard");
                std::fs::write(&tmp, state.hosts_file(c))?;
                std::fs::rename(&tmp, dir.join("hosts"))
            };
            if let Err(e) = write() {
                tracing::warn!(container = %c.name, "writing {}/hosts: {e}", dir.display());
            }
        }
    }

    /// Brings everything in `state` up, logging (not failing on) what cannot be restored, so one
    /// broken container never keeps the others offline after a restart.
    pub fn restore(&mut self, state: &State) -> usize {
        let mut failures = 0;
        for n in state.networks.values() {
            if let Err(e) = self.network_up(n) {
                tracing::error!(network = %n.name, "restoring network: {e:#}");
                failures += 1;
            }
        }
        for c in state.containers.values() {
            if let Err(e) = self.container_up(state, c) {
                tracing::error!(container = %c.name, "restoring container: {e:#}");
                failures += 1;
            }
        }
        if let Err(e) = self.sync_policy(state) {
            tracing::error!("restoring policy: {e:#}");
            failures += 1;
        }
        if let Err(e) = self.sync_nat(state) {
            tracing::error!("restoring NAT configuration: {e:#}");
            failures += 1;
        }
        self.sync_hosts(state);
        failures
    }
}

/// IPv4 routes of the namespace of `netlink`, as networks (subnets overlapping them are skipped).
pub fn routes(netlink: &Netlink) -> Vec<Ipv4Net> {
    match netlink.routes_v4() {
        Ok(r) => r
            .into_iter()
            .filter_map(|(ip, prefix)| {
                let mask = if prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix)
                };
                Ipv4Net::new(Ipv4Addr::from(u32::from(ip) & mask), prefix).ok()
            })
            .collect(),
        Err(e) => {
            tracing::warn!("reading routes: {e}");
            Vec::new()
        }
    }
}

/// Stops one capture: what a capture's streaming thread holds instead of the engine.
pub struct CaptureStop {
    id: u32,
    engine: EngineHandle,
}

impl CaptureStop {
    /// Stops the capture; returns how many frames it dropped because its reader fell behind.
    pub fn stop(&self) -> anyhow::Result<u64> {
        Ok(self.engine.capture_stop(self.id)?)
    }
}

/// `/etc/netns/NAME`: inside the namespace, each file there is shown in place of its namesake in
/// /etc (as `ip netns exec` does it).
fn hosts_dir(c: &Container) -> PathBuf {
    PathBuf::from("/etc/netns").join(c.netns())
}

/// What endpoint `e` of `c` may send: its own MAC, and any address of the container, since Linux
/// answers for all of a host's addresses on any of its interfaces (the weak host model: a reply
/// from the address on eth1 may leave through eth0). Anti-spoofing keeps containers from using
/// *other* containers' addresses.
fn guard(c: &Container, e: &Endpoint) -> PortRole {
    PortRole::Container(ContainerGuard {
        mac: e.mac,
        ips: c.endpoints.iter().map(|x| x.ip).collect(),
        allow_spoofing: c.allow_spoofing,
    })
}

/// Keeps the daemon namespace's IP stack off an interface the switch owns (a veth's host end, the
/// uplink). Linux answers ARP for every local address on every interface: without this, the host
/// end of a container's veth answers "who has 172.17.0.1" with its own MAC, and the container's
/// routed traffic bypasses the switch (the host port, policy and NAT). A bridge port has no IP
/// stack; these sysctls give an AF_PACKET port the same: no ARP answers (`arp_ignore=8`), no
/// forwarding of what arrives on it, no IPv6 addresses or neighbour discovery.
fn quiet(ifname: &str) -> anyhow::Result<()> {
    for (path, value) in [
        (format!("/proc/sys/net/ipv4/conf/{ifname}/arp_ignore"), "8"),
        (format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding"), "0"),
        (
            format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
            "1",
        ),
    ] {
        match std::fs::write(&path, value) {
            Ok(()) => {}
            // A kernel without IPv6 has no such file: nothing to silence.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.contains("ipv6") => {}
            Err(e) => return Err(anyhow::anyhow!("writing {path}: {e}")),
        }
    }
    Ok(())
}

/// Opens an attached namespace by the path it was given as. Named ones are looked up where
/// `/run/netns` really lives (the daemon may run in a private mount namespace that does not see
/// names made after it started).
pub fn open_external(path: &str) -> anyhow::Result<NetNs> {
    if let Some(name) = path.strip_prefix(&format!("{}/", netns::NETNS_RUN_DIR)) {
        return netns::open_named(name)?
            .with_context(|| format!("network namespace {path} is gone"));
    }
    Ok(NetNs::from_path(std::path::Path::new(path))?)
}
