//! Overlay networks on this host: the underlay (`--advertise-addr`), one VXLAN socket per UDP
//! port on it, and per overlay network one engine port per remote host (`dataplane::VxlanPort`,
//! role `Overlay`). The remote hosts of a network are its static `--opt peers`; `sync_peers`
//! makes the ports match any list, so the same code follows a list that changes.
//!
//! In a cluster, `sync_remote_endpoints` programs the engine with the network's endpoints on
//! other hosts: their addresses and MACs for `arp-proxy` (ARP answered here) and each MAC as a
//! static entry on the VXLAN port of its host (never flooded to find it).

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use anyhow::Context;
use dataplane::{DomainId, MacAddr, PolicyUpdate, PortId, PortRole, VlanId, VxlanSocket};

use super::System;
use crate::model::overlay::Underlay;
use crate::model::Network;
use crate::netns::Netlink;

/// This host's overlay plumbing (part of `System`).
#[derive(Default)]
pub(super) struct Overlays {
    pub(super) underlay: Option<Underlay>,
    sockets: HashMap<u16, Arc<VxlanSocket>>,
    /// Engine port toward each remote host, per overlay network (by name).
    pub(super) ports: HashMap<String, BTreeMap<Ipv4Addr, PortId>>,
    /// The UDP port (hence the socket) of each overlay network with ports, by name.
    udp_port_of: HashMap<String, u16>,
    /// Remote endpoints' static MAC entries installed, per overlay network (by name).
    remote_macs: HashMap<String, BTreeMap<MacAddr, PortId>>,
    /// The remote endpoints (address, MAC) last given to `arp-proxy`, per overlay network.
    remote_arp: HashMap<String, Vec<(Ipv4Addr, MacAddr)>>,
}

/// An endpoint of an overlay network on another host, as the cluster publishes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RemoteEndpoint {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    /// Its host's underlay address.
    pub host: Ipv4Addr,
}

impl Overlays {
    /// A port already reading the socket of UDP port `udp_port`, if any.
    fn reader_of(&self, udp_port: u16) -> Option<PortId> {
        self.ports
            .iter()
            .filter(|(name, _)| self.udp_port_of.get(*name) == Some(&udp_port))
            .find_map(|(_, peers)| peers.values().next().copied())
    }
}

/// The underlay `ip` names: the interface holding it in this namespace and its MTU.
pub fn find_underlay(netlink: &Netlink, ip: Ipv4Addr) -> anyhow::Result<Underlay> {
    for link in netlink.links()? {
        if netlink.addresses(&link.name)?.iter().any(|(a, _)| *a == ip) {
            return Ok(Underlay { ip, mtu: link.mtu });
        }
    }
    anyhow::bail!(
        "--advertise-addr {ip} is not an address of any interface in the daemon's namespace"
    )
}

/// What traces and stats call the port toward `peer`.
pub fn port_name(peer: Ipv4Addr) -> String {
    format!("vxlan:{peer}")
}

impl System {
    /// VXLAN datagrams dropped before any port, by reason, summed over the sockets (empty
    /// without one).
    pub fn vxlan_drops(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for socket in self.overlays.sockets.values() {
            for (reason, n) in socket.stats().by_reason() {
                *out.entry(reason.to_string()).or_insert(0) += n;
            }
        }
        out
    }

    /// The MAC of the container holding `ip` on another host of overlay network `network`, as
    /// the cluster last said.
    pub fn remote_mac(&self, network: &str, ip: Ipv4Addr) -> Option<MacAddr> {
        let endpoints = self.overlays.remote_arp.get(network)?;
        endpoints.iter().find(|(a, _)| *a == ip).map(|(_, m)| *m)
    }

    pub fn set_underlay(&mut self, underlay: Option<Underlay>) {
        self.overlays.underlay = underlay;
    }

    pub fn underlay(&self) -> Option<Underlay> {
        self.overlays.underlay
    }

    /// Makes network `n`'s VXLAN ports exactly one per host in `peers`.
    pub fn sync_peers(&mut self, n: &Network, peers: &[Ipv4Addr]) -> anyhow::Result<()> {
        let Some(overlay) = &n.overlay else {
            return Ok(());
        };
        let current = self.overlays.ports.entry(n.name.clone()).or_default();
        let gone: Vec<Ipv4Addr> = current
            .keys()
            .filter(|p| !peers.contains(p))
            .copied()
            .collect();
        for peer in gone {
            if let Some(id) = current.remove(&peer) {
                let _ = self.engine.remove_port(id);
                // The engine forgot the port's static MACs with it.
                if let Some(macs) = self.overlays.remote_macs.get_mut(&n.name) {
                    macs.retain(|_, p| *p != id);
                }
            }
        }
        let missing: Vec<Ipv4Addr> = peers
            .iter()
            .filter(|p| !current.contains_key(p))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let underlay = self.overlays.underlay.with_context(|| {
            format!(
                "overlay network '{}' needs the daemon started with --advertise-addr",
                n.name
            )
        })?;
        let socket = match self.overlays.sockets.get(&overlay.udp_port) {
            Some(s) => s.clone(),
            None => {
                let s = VxlanSocket::open(underlay.ip, overlay.udp_port)?;
                self.overlays.sockets.insert(overlay.udp_port, s.clone());
                s
            }
        };
        for peer in missing {
            let port =
                Box::new(socket.port(&port_name(peer), overlay.vni, peer, n.mtu as usize)?);
            let (domain, role) = (DomainId(n.domain), PortRole::Overlay);
            // Ports of one socket hand each other datagrams: one worker receives for them all.
            let attached = match self.overlays.reader_of(overlay.udp_port) {
                Some(beside) => self.engine.add_port_beside(port, domain, role, beside),
                None => self.engine.add_port_as(port, domain, role),
            };
            let id = attached.with_context(|| format!("attaching the VXLAN port toward {peer}"))?;
            self.overlays
                .udp_port_of
                .insert(n.name.clone(), overlay.udp_port);
            self.overlays
                .ports
                .entry(n.name.clone())
                .or_default()
                .insert(peer, id);
        }
        Ok(())
    }

    /// Makes the engine hold exactly `endpoints` (network `n`'s on other hosts) for `arp-proxy`
    /// and as static MACs behind their hosts' VXLAN ports. Endpoints of a host without a port
    /// (not registered, or its lease ended) are left out. Changes nothing when nothing changed,
    /// so the cluster thread may call it every round.
    pub fn sync_remote_endpoints(
        &mut self,
        n: &Network,
        endpoints: &[RemoteEndpoint],
    ) -> anyhow::Result<()> {
        if n.overlay.is_none() {
            return Ok(());
        }
        let domain = DomainId(n.domain);
        let ports = self
            .overlays
            .ports
            .get(&n.name)
            .cloned()
            .unwrap_or_default();
        let mut want: BTreeMap<MacAddr, PortId> = BTreeMap::new();
        let mut arp: Vec<(Ipv4Addr, MacAddr)> = Vec::new();
        for e in endpoints {
            if let Some(&port) = ports.get(&e.host) {
                want.insert(e.mac, port);
                arp.push((e.ip, e.mac));
            }
        }
        arp.sort();
        let installed = self.overlays.remote_macs.entry(n.name.clone()).or_default();
        let stale: Vec<MacAddr> = installed
            .iter()
            .filter(|(mac, port)| want.get(mac) != Some(port))
            .map(|(mac, _)| *mac)
            .collect();
        for mac in stale {
            installed.remove(&mac);
            let _ = self.engine.remove_static_mac(domain, VlanId(0), mac);
        }
        let mut first_error = None;
        for (mac, port) in want {
            if installed.get(&mac) == Some(&port) {
                continue;
            }
            match self.engine.add_static_mac(domain, VlanId(0), mac, port) {
                Ok(()) => {
                    installed.insert(mac, port);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if self.overlays.remote_arp.get(&n.name) != Some(&arp) {
            self.engine.set_policy(PolicyUpdate::RemoteEndpoints {
                domain,
                endpoints: arp.clone(),
            })?;
            self.overlays.remote_arp.insert(n.name.clone(), arp);
        }
        match first_error {
            Some(e) => Err(anyhow::Error::new(e).context("a remote endpoint's MAC")),
            None => Ok(()),
        }
    }

    /// Detaches every VXLAN port of network `n`.
    pub(super) fn overlay_down(&mut self, n: &Network) {
        self.overlays.remote_macs.remove(&n.name);
        if self.overlays.remote_arp.remove(&n.name).is_some() {
            let _ = self.engine.set_policy(PolicyUpdate::RemoteEndpoints {
                domain: DomainId(n.domain),
                endpoints: Vec::new(),
            });
        }
        self.overlays.udp_port_of.remove(&n.name);
        for (_, id) in self.overlays.ports.remove(&n.name).unwrap_or_default() {
            let _ = self.engine.remove_port(id);
        }
    }
}
