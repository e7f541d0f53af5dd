//! Making the system match the state: namespaces, veths, host taps and engine ports.
//!
//! Every `*_up` is idempotent: it creates what is missing and re-attaches what exists. That one
//! property serves both a fresh `container create` and a restart after `kill -9`, where the
//! namespaces, veths and (persistent) taps outlived the daemon and only the engine's ports and
//! static MACs must be rebuilt. Every `*_down` is best-effort and tolerates what is already gone.
//!
//! `sync.rs` pushes policy, NAT and hosts files; `names.rs` names ports and resolves targets;
//! `engine.rs` passes the daemon's other engine requests through.

mod engine;
mod etc;
mod names;
pub mod overlay;
mod relay;
mod sync;

pub use engine::CaptureStop;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::Context;
use dataplane::{AfPacketPort, Port, TapPort};
use dataplane::{ContainerGuard, PortRole, Uplink};
use dataplane::{DomainId, MacAddr, PortId, VlanId};
use dataplane::{EngineHandle, NatUpdate};

use crate::model::ipam::Ipv4Net;
use crate::model::{Container, Endpoint, Network, State, UPLINK_DOMAIN};
use crate::netns::{self, NetNs, Netlink};

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
    /// Published ports from the host itself (loopback, the gateways, the host's addresses).
    relay: relay::Relay,
    /// The uplink's address: ports published on it are the data plane's only.
    uplink_ip: Option<Ipv4Addr>,
    /// Overlay networks' underlay, VXLAN sockets and ports.
    overlays: overlay::Overlays,
    /// What was last written to each container's hosts, hostname and resolv.conf.
    etc: etc::EtcFiles,
}

impl System {
    pub fn new(engine: EngineHandle, netlink: Netlink) -> anyhow::Result<System> {
        Ok(System {
            engine,
            netlink,
            host_ports: HashMap::new(),
            endpoint_ports: HashMap::new(),
            uplink: None,
            parent_ports: HashMap::new(),
            relay: relay::Relay::start().context("starting the port relay")?,
            uplink_ip: None,
            overlays: overlay::Overlays::default(),
            etc: etc::EtcFiles::default(),
        })
    }

    /// The IPv4 addresses of the daemon's namespace (where ports may be published).
    pub fn host_addresses(&self) -> Vec<Ipv4Addr> {
        match self.netlink.all_addresses() {
            Ok(a) => a.into_iter().map(|(ip, _)| ip).collect(),
            Err(e) => {
                tracing::warn!("reading the host's addresses: {e}");
                Vec::new()
            }
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
        if let Some(o) = &n.overlay {
            self.sync_peers(n, &o.peers.clone())?;
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
        self.overlay_down(n);
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
        if c.mode == crate::model::NetworkMode::Handoff {
            for e in &c.endpoints {
                self.handoff_up(state.network(&e.network)?, c, e)?;
            }
            return Ok(());
        }
        if !c.owns_netns() {
            // `host` lives in the daemon's namespace, `container:X` in X's: nothing to build.
            return Ok(());
        }
        let ns = netns::open_or_create_named(c.netns())?;
        // No switchyard network carries IPv6: off, as Docker turns it off on networks without
        // it (no ::1, no link-local address chattering on the network), before any interface.
        disable_ipv6(&ns)?;
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
        self.attach_host_end(n, c, e)?;
        if fresh {
            // Neighbours that cached an older owner of this address learn the new MAC at once.
            if let Err(err) = netns::send_gratuitous_arp(ns, &e.interface, e.mac, e.ip) {
                tracing::warn!(interface = %e.interface, "gratuitous ARP: {err}");
            }
        }
        Ok(())
    }

    /// A handed-off endpoint: the veth's container end stays in the daemon's namespace under
    /// `e.interface` with the endpoint's MAC and MTU, unaddressed and down, for whoever takes it
    /// (dockerd moves, renames and addresses it). Once taken, only the host end is here; a
    /// restart re-attaches it.
    fn handoff_up(&mut self, n: &Network, c: &Container, e: &Endpoint) -> anyhow::Result<()> {
        if self.endpoint_ports.contains_key(&e.id) {
            return Ok(());
        }
        if self.netlink.link_index(&e.host_interface)?.is_none() {
            let here = NetNs::current()?;
            self.netlink
                .create_veth(&e.host_interface, &e.interface, &here)?;
            self.netlink.set_mac(&e.interface, e.mac)?;
            self.netlink.set_mtu(&e.interface, n.mtu)?;
        }
        self.attach_host_end(n, c, e)
    }

    /// The host end of an endpoint's veth, configured and attached to the engine with the
    /// container's guard and a static entry for its MAC.
    fn attach_host_end(&mut self, n: &Network, c: &Container, e: &Endpoint) -> anyhow::Result<()> {
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
            let n = state.network(&e.network)?;
            self.endpoint_up(n, c, e, &ns, &inside)?;
            if e.default_route {
                inside
                    .replace_default_route(n.gateway())
                    .with_context(|| format!("default route via {} in {path}", n.gateway()))?;
            }
            return Ok(());
        }
        let ns = netns::open_named(c.netns())?
            .with_context(|| format!("the namespace of container '{}' is gone", c.name))?;
        let inside = Netlink::in_ns(&ns)?;
        self.endpoint_up(state.network(&e.network)?, c, e, &ns, &inside)?;
        self.default_route(state, c, &inside)
    }

    /// Whether the namespace at `path` (an attachment's) has an interface called `ifname`.
    pub fn external_has_interface(&self, path: &str, ifname: &str) -> anyhow::Result<bool> {
        let ns = open_external(path)?;
        Ok(Netlink::in_ns(&ns)?.link(ifname)?.is_some())
    }

    /// What differs between attached endpoint `e` of `c` and the system: the namespace, the
    /// interface inside (present, up, MAC, address), the host end, and the engine port.
    pub fn check_endpoint(&self, n: &Network, c: &Container, e: &Endpoint) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.endpoint_ports.contains_key(&e.id) {
            problems.push(format!(
                "the switch has no port for {} (host end {})",
                e.interface, e.host_interface
            ));
        }
        match self.netlink.link(&e.host_interface) {
            Ok(Some(_)) => {}
            Ok(None) => problems.push(format!("host end {} is gone", e.host_interface)),
            Err(err) => problems.push(format!("reading {}: {err}", e.host_interface)),
        }
        let crate::model::NetworkMode::External { path, inode } = &c.mode else {
            return problems;
        };
        let inside = match open_external(path) {
            Ok(ns) if ns.inode() != *inode => {
                problems.push(format!("{path} is now another namespace"));
                return problems;
            }
            Ok(ns) => match Netlink::in_ns(&ns) {
                Ok(nl) => nl,
                Err(err) => {
                    problems.push(format!("entering {path}: {err}"));
                    return problems;
                }
            },
            Err(err) => {
                problems.push(format!("{err:#}"));
                return problems;
            }
        };
        match inside.link(&e.interface) {
            Ok(Some(link)) => {
                if link.mac != Some(e.mac) {
                    problems.push(format!(
                        "{} has MAC {}, not {}",
                        e.interface,
                        link.mac.map_or("none".to_string(), |m| m.to_string()),
                        e.mac
                    ));
                }
                if !link.up {
                    problems.push(format!("{} is down", e.interface));
                }
            }
            Ok(None) => problems.push(format!("{} is gone from {path}", e.interface)),
            Err(err) => problems.push(format!("reading {} in {path}: {err}", e.interface)),
        }
        match inside.addresses(&e.interface) {
            Ok(addrs) if addrs.contains(&(e.ip, n.subnet().prefix())) => {}
            Ok(_) => problems.push(format!(
                "{} lacks its address {}/{}",
                e.interface,
                e.ip,
                n.subnet().prefix()
            )),
            Err(_) => {}
        }
        problems
    }

    /// Removes every endpoint and the namespace.
    pub fn container_down(&mut self, c: &Container) {
        for e in &c.endpoints {
            self.endpoint_down(e);
        }
        if !c.owns_netns() {
            return;
        }
        if let Ok(Some(ns)) = netns::open_named(c.netns()) {
            let killed = ns.kill_processes();
            if killed > 0 {
                tracing::info!(container = %c.name, killed, "ended the container's processes");
            }
        }
        if let Err(err) = netns::delete_named(c.netns()) {
            tracing::warn!(container = %c.name, "deleting namespace: {err}");
        }
        let _ = std::fs::remove_dir_all(hosts_dir(c));
        self.etc.forget(&hosts_dir(c));
    }

    /// Removes a container others joined: its interfaces go, its namespace stays (with only lo)
    /// for them, named `heir` from now on.
    pub fn container_down_handing_over(&mut self, c: &Container, heir: &str) {
        for e in &c.endpoints {
            self.endpoint_down(e);
        }
        if let Err(err) = netns::rename_named(c.netns(), heir) {
            tracing::warn!(container = %c.name, heir, "handing the namespace over: {err}");
        }
        let _ = std::fs::remove_dir_all(hosts_dir(c));
        self.etc.forget(&hosts_dir(c));
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
        // Busy from the start: every published port's first burst of connections arrives here.
        let port = AfPacketPort::open_busy(ifname)?;
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
        self.uplink_ip = Some(ip);
        tracing::info!(uplink = ifname, %ip, prefix, ?gateway, "uplink attached");
        Ok(())
    }

    /// Whether an interface of this name exists in the daemon's namespace.
    pub fn interface_exists(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self.netlink.link(name)?.is_some())
    }

    /// IPv4 routes of the daemon's namespace, as networks.
    pub fn routes(&self) -> Vec<Ipv4Net> {
        routes(&self.netlink)
    }

    /// Holds or resumes forwarding (`EngineHandle::set_forwarding`).
    pub fn set_forwarding(&self, on: bool) -> anyhow::Result<()> {
        Ok(self.engine.set_forwarding(on)?)
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
        for (name, e) in self.sync_relay(state) {
            tracing::error!(container = %name, "restoring a published port: {e:#}");
            failures += 1;
        }
        failures
    }
}

/// The host name of the daemon's host (what `--network host` containers have).
pub fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// IPv4 routes of the namespace of `netlink`, as networks (subnets overlapping them are skipped).
pub fn routes(netlink: &Netlink) -> Vec<Ipv4Net> {
    match netlink.routes_v4() {
        Ok(r) => r
            .into_iter()
            .filter_map(|(ip, prefix)| Ipv4Net::containing(ip, prefix))
            .collect(),
        Err(e) => {
            tracing::warn!("reading routes: {e}");
            Vec::new()
        }
    }
}

/// `/etc/netns/NAME`: inside the namespace, each file there is shown in place of its namesake in
/// /etc (as `ip netns exec` does it).
pub(super) fn hosts_dir(c: &Container) -> PathBuf {
    PathBuf::from("/etc/netns").join(c.netns())
}

/// What endpoint `e` of `c` may send: its own MAC, and any address of the container, since Linux
/// answers for all of a host's addresses on any of its interfaces (the weak host model: a reply
/// from the address on eth1 may leave through eth0). Anti-spoofing keeps containers from using
/// *other* containers' addresses.
pub(super) fn guard(c: &Container, e: &Endpoint) -> PortRole {
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

/// Turns IPv6 off in namespace `ns`: on every interface there (`all`) and every one to come
/// (`default`). A kernel without IPv6 has nothing to turn off.
fn disable_ipv6(ns: &NetNs) -> anyhow::Result<()> {
    ns.run_in(|| -> anyhow::Result<()> {
        for which in ["all", "default"] {
            let path = format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6");
            match std::fs::write(&path, "1") {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => anyhow::bail!("writing {path} in the container: {e}"),
            }
        }
        Ok(())
    })?
}

/// Opens an attached namespace by the path it was given as. Named ones are looked up where
/// `/run/netns` really lives (the daemon may run in a private mount namespace that does not see
/// names made after it started).
pub fn open_external(path: &str) -> anyhow::Result<NetNs> {
    let named = path
        .strip_prefix("/var")
        .unwrap_or(path)
        .strip_prefix(&format!("{}/", netns::NETNS_RUN_DIR));
    if let Some(name) = named {
        return netns::open_named(name)?
            .with_context(|| format!("network namespace {path} is gone"));
    }
    Ok(NetNs::from_path(std::path::Path::new(path))?)
}
