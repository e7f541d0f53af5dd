//! Pushing what the whole state implies, after every change: the engine's policy (roles, icc,
//! links, isolation) and NAT (networks, published ports), and each container's hosts file.

use std::collections::HashSet;
use std::net::SocketAddrV4;

use dataplane::{DomainId, NatUpdate, NetworkNat, PolicyUpdate, Publish, Subnet};

use super::relay::{Forward, Proto};
use super::{guard, hosts_dir, System};
use crate::model::dns::ResolvConf;
use crate::model::links::Protocol;
use crate::model::{Container, Endpoint, Network, PublishContext, Published, Reach, State};

/// Published ports lead to the endpoint on their network, else to the container's first network
/// that may have them (not internal).
fn publish_target<'s>(
    state: &'s State,
    c: &'s Container,
    p: &Published,
) -> Option<(&'s Endpoint, &'s Network)> {
    let e = match &p.network {
        Some(net) => c.endpoint(net)?,
        None => c
            .endpoints
            .iter()
            .find(|e| state.networks.get(&e.network).is_some_and(|n| !n.internal))?,
    };
    Some((e, state.networks.get(&e.network)?))
}

impl System {
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
                // A routed network never masquerades, so Docker's masquerade switch does not
                // decide whether it may leave.
                external: !n.internal && (n.masquerade || n.routed),
                routed: n.routed,
            })
            .collect();
        self.engine.set_nat(NatUpdate::Networks(networks))?;
        let mut publish = Vec::new();
        for c in state.containers.values() {
            // Ports published on a host address only (127.0.0.1, say) are the relay's.
            for p in c.published.iter().filter(|p| self.reach(p).uplink) {
                let Some((e, n)) = publish_target(state, c, p) else {
                    continue;
                };
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

    /// Writes `/etc/netns/NAME/resolv.conf` of every container with a namespace of its own: the
    /// resolver of its first network (`host` is the host's file; `container:X` sees X's).
    pub fn sync_resolv_conf(&mut self, state: &State, host: &ResolvConf) {
        for c in state.containers.values().filter(|c| c.owns_netns()) {
            let dir = hosts_dir(c);
            if let Err(e) = self
                .etc
                .write(&dir, "resolv.conf", state.resolv_conf(c, host))
            {
                tracing::warn!(container = %c.name, "writing {}/resolv.conf: {e}", dir.display());
            }
        }
    }

    /// Makes the relay serve every port published on a host address (all of them, loopback, or
    /// one): from the host's own namespace and through the gateways, these never reach the data
    /// plane. Returns the ports that could not be served (say, the host port is in use by another
    /// program), with their container's name.
    pub fn sync_relay(&self, state: &State) -> Vec<(String, anyhow::Error)> {
        let mut forwards = Vec::new();
        let mut owners = Vec::new();
        for c in state.containers.values() {
            for p in c.published.iter().filter(|p| self.reach(p).host) {
                let Some((e, _)) = publish_target(state, c, p) else {
                    continue;
                };
                let m = &p.mapping;
                forwards.push(Forward {
                    proto: match m.protocol {
                        Protocol::Tcp => Proto::Tcp,
                        Protocol::Udp => Proto::Udp,
                    },
                    listen: SocketAddrV4::new(m.host_ip, m.host_port),
                    target: SocketAddrV4::new(e.ip, m.container_port),
                });
                owners.push(c.name.clone());
            }
        }
        let failed = self.relay.set(forwards.clone());
        failed
            .into_iter()
            .map(|(f, e)| {
                let owner = forwards
                    .iter()
                    .position(|x| *x == f)
                    .map(|i| owners[i].clone())
                    .unwrap_or_default();
                let proto = match f.proto {
                    Proto::Tcp => "tcp",
                    Proto::Udp => "udp",
                };
                (
                    owner,
                    anyhow::anyhow!("cannot listen on {}/{proto} on the host: {e}", f.listen),
                )
            })
            .collect()
    }

    /// One line for `switchyard status`: what the relay did since the daemon started.
    pub fn relay_summary(&self) -> String {
        let c = &self.relay.counters;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        format!(
            "port relay (host-local clients of published ports): {} connections, {} failed, {} refused (full), {} bytes, {} datagrams\n",
            n(&c.accepted),
            n(&c.failed),
            n(&c.refused),
            n(&c.bytes),
            n(&c.datagrams)
        )
    }

    fn reach(&self, p: &Published) -> Reach {
        PublishContext {
            uplink: self.uplink_ip,
            ..PublishContext::default()
        }
        .reach(p.mapping.host_ip)
    }

    /// Writes `/etc/netns/NAME/hosts` and `hostname` of every container (what `ip netns exec`
    /// and `container exec` show in /etc), as Docker writes them.
    pub fn sync_hosts(&mut self, state: &State) {
        for c in state.containers.values().filter(|c| c.owns_netns()) {
            let dir = hosts_dir(c);
            let mut write = || -> std::io::Result<()> {
                self.etc.write(&dir, "hosts", state.hosts_file(c))?;
                if let Some(h) = state.hostname_file(c) {
                    self.etc.write(&dir, "hostname", h)?;
                }
                Ok(())
            };
            if let Err(e) = write() {
                tracing::warn!(container = %c.name, "writing {}/hosts: {e}", dir.display());
            }
        }
    }
}
