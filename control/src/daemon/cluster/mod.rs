//! The cluster (`switchyard daemon --cluster etcd://HOST:PORT[,...] --advertise-addr IP`): what
//! hosts agree on, kept in etcd.
//!
//! Key layout (prefix `/switchyard/v1/`), who writes it and when:
//! - `hosts/<advertise-addr>` = `{"addr": IP}`: each daemon, under a lease of its own
//!   (`HOST_TTL`, renewed every `KEEP_ALIVE`); a host whose daemon stops renewing disappears for
//!   everyone when the lease ends, and its VXLAN ports go with it.
//! - `networks/<name>` = the `network create` request of an overlay network, with its ID and VNI
//!   filled in: written by the daemon that created it, in one transaction with `vnis/<vni>`
//!   (= the name) that succeeds only if neither key exists, so two hosts can never create the
//!   same name or take the same VNI, even at once. No lease: a network outlives its creator.
//!   `network rm` on any host takes both out, with the network's address claims and endpoints,
//!   in one transaction, after checking that no other host has containers on it (refused in
//!   one line otherwise, also for a host that is down); every other host then removes it
//!   locally.
//! - `removed/<name>` = `{"id"}`: `network rm --force`, under a lease of `FORCED_TTL`: put before
//!   the network goes, so every host that reads it gone meanwhile disconnects its containers
//!   from it and removes it too.
//! - `addresses/<network>/<ip>` = `{"host", "container"}`: claimed by the daemon creating,
//!   connecting or attaching a container on an overlay network before it changes anything (a
//!   create-if-absent transaction, `Daemon::claim`), given back when the endpoint goes; no lease, so a killed daemon's
//!   containers keep their addresses.
//! - `endpoints/<network>/<ip>` = `{"container", "mac", "ip", "host", "names"}`: each daemon publishes
//!   every endpoint it holds on an overlay network, under its host lease, so they all go when
//!   the lease ends. Keyed like the address claims (an address is one endpoint per network, and
//!   one range reads a network's table). Published by reconciling: every round the cluster
//!   thread puts what the state holds and is not yet in etcd and deletes what it published and
//!   the state no longer holds, so create, connect, rm, disconnect and a restart (a new lease:
//!   everything put again) all take the same path; a change wakes the thread at once. `names`
//!   are the container's DNS names on that network (name, aliases, short ID, hostname), which
//!   every other host's resolver answers; a record without them (written before names crossed
//!   hosts) names its container alone.
//!
//! Every daemon watches `/switchyard/v1/` (a second thread holds one `POST /v3/watch` stream
//! open) and reads `hosts/`, `networks/` and `endpoints/` whenever it reports a change, when a
//! request changed the state here, and every 10 s in any case (every second while the watch is
//! down); the cluster thread then makes the local state follow: networks it lacks are created locally with the stored
//! request (same ID, VNI, subnet), networks it had from etcd that etcd no longer holds are
//! removed here too, every overlay network has one VXLAN port per other registered
//! host (plus its static `--opt peers`), and the other hosts' endpoints are programmed into the
//! engine: ARP for them answered here (`arp-proxy`), their MACs static behind their host's port.
//!
//! When etcd is unreachable: nothing local changes (the last hosts and endpoints stay, so
//! traffic between running containers goes on); `network create --driver overlay` fails with one
//! line and changes nothing; the lease is renewed again, or granted anew and the host and its
//! endpoints registered again, as soon as etcd answers.

pub mod etcd;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataplane::MacAddr;
use etcd::Etcd;
use serde::{Deserialize, Serialize};

use super::system::overlay::RemoteEndpoint;
use super::Daemon;
use crate::api::{ApiError, NetworkCreate};
use crate::model::dns::RemoteName;

const PREFIX: &str = "/switchyard/v1/";
/// Seconds a host stays registered without its daemon renewing the lease.
pub const HOST_TTL: u64 = 10;
const KEEP_ALIVE: Duration = Duration::from_secs(2);
/// How often the cluster is read while no watch is in place.
const READ_EVERY: Duration = Duration::from_secs(1);
/// How often it is read anyway while the watch reports changes (a missed event costs this much).
const RESYNC_EVERY: Duration = Duration::from_secs(10);
/// A watch silent this long is opened again (a host cut off without a word is noticed).
const WATCH_IDLE: Duration = Duration::from_secs(30);
/// Seconds a `network rm --force` stays known (`removed/<name>`): every host that reads the
/// network gone within this time disconnects its containers from it; one down for longer keeps
/// it, with its containers, and says so in its log.
const FORCED_TTL: u64 = 60;

/// What `removed/<name>` holds: the network `network rm --force` took out of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Removal {
    id: String,
}

fn key(kind: &str, name: &str) -> String {
    format!("{PREFIX}{kind}/{name}")
}

/// `--cluster` and `--advertise-addr`, as the daemon keeps them.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub etcd: Etcd,
    pub me: Ipv4Addr,
}

/// What the daemon last read from etcd.
#[derive(Default)]
pub(super) struct ClusterView {
    /// The other registered hosts, by underlay address.
    pub(super) hosts: Vec<Ipv4Addr>,
    /// Wakes the cluster thread after a change (endpoints published at once, not within a
    /// second).
    wake: Option<SyncSender<()>>,
    /// Networks removed from the cluster that this host keeps (its containers are on them),
    /// warned about once.
    kept: Vec<String>,
    /// The other hosts' containers on overlay networks, as the resolver names them.
    pub(super) remote_names: Vec<RemoteName>,
}

/// One endpoint under `endpoints/<network>/<ip>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct EndpointRecord {
    container: String,
    mac: String,
    ip: Ipv4Addr,
    host: Ipv4Addr,
    /// DNS names on the network; absent from records of earlier versions (then the container's
    /// name alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    names: Vec<String>,
}

impl EndpointRecord {
    /// How the resolver names it; a record of an earlier version (no names) by its container.
    fn remote_name(&self, network: &str) -> RemoteName {
        RemoteName {
            network: network.to_string(),
            container: self.container.clone(),
            ip: self.ip,
            names: if self.names.is_empty() {
                vec![self.container.clone()]
            } else {
                self.names.clone()
            },
        }
    }
}

/// Starts the cluster thread: registration, keep-alive, publishing this host's endpoints, and
/// following hosts, networks and the other hosts' endpoints.
pub(super) fn spawn(daemon: Arc<Mutex<Daemon>>, config: ClusterConfig) {
    let (wake, woken) = sync_channel(1);
    daemon
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .cluster_view
        .wake = Some(wake.clone());
    let watching = Arc::new(AtomicBool::new(false));
    let (etcd, in_place) = (config.etcd.clone(), Arc::clone(&watching));
    std::thread::Builder::new()
        .name("cluster-watch".into())
        .spawn(move || watch(&etcd, &wake, &in_place))
        .expect("spawning the cluster watch thread");
    std::thread::Builder::new()
        .name("cluster".into())
        .spawn(move || follow(daemon, config, woken, watching))
        .expect("spawning the cluster thread");
}

/// Holds a watch on the whole prefix open and wakes the cluster thread for every change (and
/// once each time the watch is in place, for what changed while there was none).
fn watch(etcd: &Etcd, wake: &SyncSender<()>, in_place: &AtomicBool) {
    loop {
        let watched = etcd.watch_prefix(PREFIX, WATCH_IDLE, |event| {
            if event == etcd::WatchEvent::Created {
                in_place.store(true, Ordering::Relaxed);
            }
            let _ = wake.try_send(());
        });
        in_place.store(false, Ordering::Relaxed);
        if let Err(e) = watched {
            // The cluster thread says when etcd is unreachable; this one only tries again.
            tracing::debug!("cluster: watch: {e}");
            std::thread::sleep(READ_EVERY);
        }
    }
}

fn follow(
    daemon: Arc<Mutex<Daemon>>,
    config: ClusterConfig,
    woken: Receiver<()>,
    watching: Arc<AtomicBool>,
) {
    let etcd = &config.etcd;
    let mut lease: Option<i64> = None;
    let mut renewed = Instant::now();
    let mut unreachable = false;
    // What this host has put under `endpoints/` (key -> value) with its current lease.
    let mut published: BTreeMap<String, String> = BTreeMap::new();
    // When the cluster was last read, and whether something asked for a read since.
    let mut read_at: Option<Instant> = None;
    let mut woke = true;
    loop {
        let round = (|| -> Result<(), etcd::EtcdError> {
            if let Some(id) = lease {
                if renewed.elapsed() >= KEEP_ALIVE {
                    if etcd.keep_alive(id)? <= 0 {
                        tracing::warn!("cluster: the host's lease ended; registering again");
                        lease = None;
                    } else {
                        renewed = Instant::now();
                    }
                }
            }
            if lease.is_none() {
                let id = etcd.grant(HOST_TTL)?;
                let value = serde_json::json!({ "addr": config.me.to_string() }).to_string();
                etcd.put(&key("hosts", &config.me.to_string()), &value, Some(id))?;
                lease = Some(id);
                renewed = Instant::now();
                // What the last lease held is gone (or goes with it): all put again.
                published.clear();
                woke = true;
                tracing::info!(host = %config.me, "cluster: registered");
            }
            let due = read_at.is_none_or(|t| t.elapsed() >= RESYNC_EVERY);
            if !woke && !due && watching.load(Ordering::Relaxed) {
                // Only the lease to renew: the watch says nothing changed.
                return Ok(());
            }
            // The networks this host has before the read: only those can be gone from etcd (one
            // a request creates meanwhile was stored there first, after this read began).
            let (local, known) = {
                let d = daemon.lock().unwrap_or_else(|p| p.into_inner());
                let known: Vec<String> = d.state.networks.keys().cloned().collect();
                (d.local_endpoints(config.me), known)
            };
            publish_endpoints(etcd, lease, &local, &mut published)?;
            let hosts: Vec<Ipv4Addr> = etcd
                .range_prefix(&key("hosts", ""))?
                .iter()
                .filter_map(|(k, _)| k.rsplit('/').next()?.parse().ok())
                .filter(|ip| *ip != config.me)
                .collect();
            let stored = etcd.range_prefix(&key("networks", ""))?;
            // Names from the keys: a value this version cannot read still names a network.
            let in_etcd: Vec<String> = stored
                .iter()
                .filter_map(|(k, _)| Some(k.rsplit('/').next()?.to_string()))
                .collect();
            let networks: Vec<NetworkCreate> = stored
                .iter()
                .filter_map(|(_, v)| serde_json::from_str(v).ok())
                .collect();
            let prefix = key("endpoints", "");
            let endpoints: Vec<(String, EndpointRecord)> = etcd
                .range_prefix(&prefix)?
                .iter()
                .filter_map(|(k, v)| {
                    let (network, _) = k.strip_prefix(&prefix)?.split_once('/')?;
                    Some((network.to_string(), serde_json::from_str(v).ok()?))
                })
                .collect();
            let removed = key("removed", "");
            let forced: Vec<(String, Removal)> = etcd
                .range_prefix(&removed)?
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.strip_prefix(&removed)?.to_string(),
                        serde_json::from_str(v).ok()?,
                    ))
                })
                .collect();
            let mut d = daemon.lock().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<(String, bool)> = known
                .into_iter()
                .filter(|n| !in_etcd.contains(n))
                .map(|n| {
                    let id = d.state.networks.get(&n).map(|net| net.id.clone());
                    let force = forced
                        .iter()
                        .any(|(name, r)| *name == n && Some(&r.id) == id.as_ref());
                    (n, force)
                })
                .collect();
            d.follow_cluster(hosts, networks, &gone, endpoints, config.me);
            read_at = Some(Instant::now());
            woke = false;
            Ok(())
        })();
        match round {
            Ok(()) if unreachable => {
                tracing::info!("cluster: etcd answers again");
                unreachable = false;
            }
            Ok(()) => {}
            Err(e) if !unreachable => {
                tracing::warn!("cluster: {e}; keeping the last known hosts");
                unreachable = true;
            }
            Err(_) => {}
        }
        // The next round at once after a change (the watch's or a request's); else in time to
        // renew the lease, or for the next read while there is no watch.
        let wait = if watching.load(Ordering::Relaxed) {
            KEEP_ALIVE
        } else {
            READ_EVERY
        };
        woke |= woken.recv_timeout(wait).is_ok();
    }
}

/// Makes `endpoints/` hold exactly `local` for this host: puts what is new or changed (under
/// `lease`), deletes what it published and the state no longer holds. `published` follows
/// what succeeded, so a failure half-way is finished in a later round.
fn publish_endpoints(
    etcd: &Etcd,
    lease: Option<i64>,
    local: &BTreeMap<String, String>,
    published: &mut BTreeMap<String, String>,
) -> Result<(), etcd::EtcdError> {
    let gone: Vec<String> = published
        .keys()
        .filter(|k| !local.contains_key(*k))
        .cloned()
        .collect();
    for k in gone {
        etcd.delete(&k)?;
        published.remove(&k);
    }
    for (k, v) in local {
        if published.get(k) != Some(v) {
            etcd.put(k, v, lease)?;
            published.insert(k.clone(), v.clone());
        }
    }
    Ok(())
}

impl Daemon {
    /// Wakes the cluster thread (after a request that may have changed the state).
    pub(super) fn nudge_cluster(&self) {
        if let Some(wake) = &self.cluster_view.wake {
            let _ = wake.try_send(());
        }
    }

    /// This host's endpoints on overlay networks, as `endpoints/` holds them (key -> value).
    fn local_endpoints(&self, me: Ipv4Addr) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for c in self.state.containers.values() {
            for e in &c.endpoints {
                let overlay = self
                    .state
                    .networks
                    .get(&e.network)
                    .is_some_and(|n| n.overlay.is_some());
                if !overlay {
                    continue;
                }
                let record = EndpointRecord {
                    container: c.name.clone(),
                    mac: e.mac.to_string(),
                    ip: e.ip,
                    host: me,
                    names: self.state.dns_names(c, &e.network),
                };
                out.insert(
                    key("endpoints", &format!("{}/{}", e.network, e.ip)),
                    serde_json::to_string(&record).expect("a record serializes"),
                );
            }
        }
        out
    }

    /// Makes the local state follow what etcd holds: missing overlay networks created, every
    /// overlay network's VXLAN ports toward the other hosts, and the other hosts' endpoints in
    /// the engine.
    fn follow_cluster(
        &mut self,
        hosts: Vec<Ipv4Addr>,
        networks: Vec<NetworkCreate>,
        gone: &[(String, bool)],
        endpoints: Vec<(String, EndpointRecord)>,
        me: Ipv4Addr,
    ) {
        let mut changed = false;
        // `force`: removed with `network rm --force`, so this host's containers are
        // disconnected from it too.
        for (name, force) in gone {
            let overlay = self
                .state
                .networks
                .get(name)
                .is_some_and(|n| n.overlay.is_some());
            if !overlay {
                continue;
            }
            match self.network_rm_local(std::slice::from_ref(name), *force) {
                Ok(_) => {
                    tracing::info!(network = %name, "cluster: network removed here too");
                    self.cluster_view.kept.retain(|k| k != name);
                    changed = true;
                }
                Err(e) if !self.cluster_view.kept.contains(name) => {
                    tracing::warn!(network = %name, "cluster: removed from the cluster, kept here: {}", e.message);
                    self.cluster_view.kept.push(name.clone());
                }
                Err(_) => {}
            }
        }
        for req in networks {
            let exists = self.state.networks.contains_key(&req.name);
            if exists {
                continue;
            }
            let name = req.name.clone();
            match self.network_create_local(req) {
                Ok(_) => {
                    tracing::info!(network = %name, "cluster: network created here too");
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(network = %name, "cluster: cannot create here: {}", e.message)
                }
            }
        }
        if hosts != self.cluster_view.hosts {
            tracing::info!(?hosts, "cluster: hosts");
            self.cluster_view.hosts = hosts;
            self.sync_overlay_peers();
        }
        // Per network, the endpoints of the other hosts (the engine is only told of changes).
        let mut remote: BTreeMap<String, Vec<RemoteEndpoint>> = BTreeMap::new();
        let mut names: Vec<RemoteName> = Vec::new();
        for (network, r) in endpoints {
            if r.host == me {
                continue;
            }
            names.push(r.remote_name(&network));
            let Ok(mac) = r.mac.parse::<MacAddr>() else {
                continue;
            };
            remote.entry(network).or_default().push(RemoteEndpoint {
                ip: r.ip,
                mac,
                host: r.host,
            });
        }
        for n in self.state.networks.values() {
            if n.overlay.is_none() {
                continue;
            }
            let list = remote.remove(&n.name).unwrap_or_default();
            if let Err(e) = self.system.sync_remote_endpoints(n, &list) {
                tracing::warn!(network = %n.name, "remote endpoints: {e:#}");
            }
        }
        let renamed = names != self.cluster_view.remote_names;
        if renamed {
            self.cluster_view.remote_names = names;
        }
        if changed {
            // As after a request: policy, NAT, hosts files and names follow the state.
            self.follow_state();
        } else if renamed {
            self.sync_names();
        }
    }

    /// Every overlay network's VXLAN ports: its static peers and every other registered host.
    pub(super) fn sync_overlay_peers(&mut self) {
        for n in self.state.networks.values() {
            let Some(o) = &n.overlay else {
                continue;
            };
            let mut peers = o.peers.clone();
            for h in &self.cluster_view.hosts {
                if !peers.contains(h) {
                    peers.push(*h);
                }
            }
            if let Err(e) = self.system.sync_peers(n, &peers) {
                tracing::warn!(network = %n.name, "VXLAN ports: {e:#}");
            }
        }
    }

    /// Stores a new overlay network in etcd (ID and VNI chosen here, one transaction that fails
    /// if the name or the VNI is taken) and returns the request every host creates it with.
    pub(super) fn publish_network(
        &self,
        mut req: NetworkCreate,
    ) -> Result<NetworkCreate, ApiError> {
        let Some(cluster) = &self.cluster else {
            return Ok(req);
        };
        let etcd = &cluster.etcd;
        let down = |e: etcd::EtcdError| {
            ApiError::failed(format!(
                "{e}; overlay networks cannot be created while the cluster is unreachable (nothing changed)"
            ))
        };
        if req.id.is_none() {
            use crate::model::Mint;
            req.id = Some(super::mint::OsMint.id());
        }
        let given_vni = req
            .options
            .iter()
            .any(|o| o.split_once('=').is_some_and(|(k, _)| k == "vni"));
        for _ in 0..10 {
            let mut candidate = req.clone();
            let vni = if given_vni {
                candidate
                    .options
                    .iter()
                    .find_map(|o| o.strip_prefix("vni="))
                    .unwrap_or_default()
                    .to_string()
            } else {
                let used: Vec<u32> = etcd
                    .range_prefix(&key("vnis", ""))
                    .map_err(down)?
                    .iter()
                    .filter_map(|(k, _)| k.rsplit('/').next()?.parse().ok())
                    .collect();
                let vni = (256u32..).find(|v| !used.contains(v)).unwrap_or(256);
                candidate.options.push(format!("vni={vni}"));
                vni.to_string()
            };
            // The local check first (a bad request never reaches etcd).
            let mut probe = self.state.clone();
            let subnet = probe
                .create_network(&candidate, &[], &mut super::mint::OsMint)?
                .subnet();
            // Every host creates it with the same subnet, whatever each would pick by itself.
            candidate.subnet.get_or_insert_with(|| subnet.to_string());
            let value = serde_json::to_string(&candidate).expect("a request serializes");
            let (net_key, vni_key) = (key("networks", &req.name), key("vnis", &vni));
            let created = etcd
                .create_all(
                    &[&net_key, &vni_key],
                    &[],
                    &[(&net_key, &value), (&vni_key, &req.name)],
                    None,
                )
                .map_err(down)?;
            if created {
                return Ok(candidate);
            }
            let taken = etcd.range_prefix(&net_key).map_err(down)?;
            if taken.iter().any(|(k, _)| *k == net_key) {
                return Err(ApiError::bad_input(format!(
                    "network '{}' already exists in the cluster",
                    req.name
                )));
            }
            if given_vni {
                return Err(ApiError::bad_input(format!(
                    "VNI {vni} is already taken in the cluster; choose another vni"
                )));
            }
            // Another host took that VNI at the same moment: try the next free one.
        }
        Err(ApiError::failed(
            "could not agree on a VNI with the cluster after 10 tries",
        ))
    }

    /// `network rm` of overlay networks of the cluster, before anything changes here: refused
    /// in one line while another host has containers on one (its endpoints or address claims
    /// in etcd; a host that is down, its lease ended, counts too, so its containers are not
    /// cut off while it is away), unless `force`; else each is taken out of etcd (the network,
    /// its VNI, its address claims and endpoints, whoever holds them) in one transaction; every
    /// other host removes it when it reads that, and after `force` (`removed/<name>`, for
    /// `FORCED_TTL`) disconnects its containers from it first.
    pub(super) fn unpublish_removed(&self, names: &[String], force: bool) -> Result<(), ApiError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let etcd = &cluster.etcd;
        let down = |e: etcd::EtcdError| {
            ApiError::failed(format!(
                "{e}; overlay networks cannot be removed while the cluster is unreachable (nothing changed)"
            ))
        };
        let networks: Vec<&crate::model::Network> = names
            .iter()
            .filter_map(|n| self.cluster_overlay(n))
            .collect();
        let registered: Vec<String> = etcd
            .range_prefix(&key("hosts", ""))
            .map_err(down)?
            .iter()
            .filter_map(|(k, _)| Some(k.rsplit('/').next()?.to_string()))
            .collect();
        for n in networks.iter().filter(|_| !force) {
            let mut elsewhere: Vec<String> = Vec::new();
            for kind in ["endpoints", "addresses"] {
                for (_, v) in etcd
                    .range_prefix(&key(kind, &format!("{}/", n.name)))
                    .map_err(down)?
                {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&v) else {
                        continue;
                    };
                    let (Some(host), Some(container)) =
                        (v["host"].as_str(), v["container"].as_str())
                    else {
                        continue;
                    };
                    let held = if registered.iter().any(|h| h == host) {
                        format!("{container} on {host}")
                    } else {
                        format!("{container} on {host}, which is down")
                    };
                    if host != cluster.me.to_string() && !elsewhere.contains(&held) {
                        elsewhere.push(held);
                    }
                }
            }
            if !elsewhere.is_empty() {
                return Err(ApiError::bad_input(format!(
                    "network '{}' still has containers on other hosts ({}); remove them there first, or use --force (nothing changed)",
                    n.name,
                    elsewhere.join(", ")
                )));
            }
        }
        for n in networks {
            let vni = n
                .overlay
                .as_ref()
                .map(|o| o.vni.to_string())
                .unwrap_or_default();
            let (net_key, vni_key) = (key("networks", &n.name), key("vnis", &vni));
            let (addresses, endpoints) = (
                key("addresses", &format!("{}/", n.name)),
                key("endpoints", &format!("{}/", n.name)),
            );
            if force {
                // Written first: a host that reads the network gone also finds this.
                let lease = etcd.grant(FORCED_TTL).map_err(down)?;
                let value = serde_json::to_string(&Removal { id: n.id.clone() })
                    .expect("a removal serializes");
                etcd.put(&key("removed", &n.name), &value, Some(lease))
                    .map_err(down)?;
            }
            // `false`: another host removed it at the same moment, which is as good.
            etcd.delete_all(&net_key, &[&net_key, &vni_key], &[&addresses, &endpoints])
                .map_err(down)?;
        }
        Ok(())
    }

    /// Removes what `publish_network` stored (the local creation failed after it).
    pub(super) fn unpublish_network(&self, req: &NetworkCreate) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let _ = cluster.etcd.delete(&key("networks", &req.name));
        if let Some(vni) = req.options.iter().find_map(|o| o.strip_prefix("vni=")) {
            let _ = cluster.etcd.delete(&key("vnis", vni));
        }
    }
}

impl Daemon {
    /// The overlay network of the cluster a container request asks for, if it is one.
    fn cluster_overlay(&self, network: &str) -> Option<&crate::model::Network> {
        self.cluster.as_ref()?;
        self.state
            .networks
            .get(network)
            .filter(|n| n.overlay.is_some())
    }

    /// For a container on an overlay network of the cluster: claims its address in etcd and
    /// returns the request with that address (see `claim`).
    pub(super) fn claim_address(
        &self,
        mut req: crate::api::ContainerCreate,
        ctx: &crate::model::PublishContext,
    ) -> Result<crate::api::ContainerCreate, ApiError> {
        let allowed = |ip: &str| {
            let mut probe = req.clone();
            probe.ip = Some(ip.to_string());
            self.state
                .clone()
                .create_container_with(&probe, ctx, &mut super::mint::OsMint)
                .map(|_| ())
        };
        let what = "containers on overlay networks cannot be created";
        if let Some(ip) = self.claim(&req.network, &req.name, req.ip.as_deref(), &allowed, what)? {
            req.ip = Some(ip);
        }
        Ok(req)
    }

    /// An address for `container` on `network`, claimed in etcd (`addresses/<network>/<ip>`, a
    /// create-if-absent transaction that also needs the network still stored, so no address is
    /// handed out twice, even by two hosts at once): `ip` when given, else the first that
    /// `allowed` (the local rules, asked first, so a request refused here never reaches etcd)
    /// accepts and no host has claimed. `None` when `network` is not an overlay network of the
    /// cluster (nothing to claim). `what` says in the one-line error what cannot be done while
    /// etcd is unreachable.
    pub(super) fn claim(
        &self,
        network: &str,
        container: &str,
        ip: Option<&str>,
        allowed: &dyn Fn(&str) -> Result<(), ApiError>,
        what: &str,
    ) -> Result<Option<String>, ApiError> {
        let (Some(cluster), Some(network)) = (&self.cluster, self.cluster_overlay(network)) else {
            return Ok(None);
        };
        let etcd = &cluster.etcd;
        let down = |e: etcd::EtcdError| {
            ApiError::failed(format!(
                "{e}; {what} while the cluster is unreachable (nothing changed)"
            ))
        };
        let prefix = key("addresses", &format!("{}/", network.name));
        let net_key = key("networks", &network.name);
        let gone = || {
            ApiError::bad_input(format!(
                "network '{}' was removed from the cluster",
                network.name
            ))
        };
        let value =
            serde_json::json!({"host": cluster.me.to_string(), "container": container}).to_string();
        if let Some(ip) = ip {
            allowed(ip)?;
            let k = format!("{prefix}{ip}");
            if !etcd
                .create_all(&[&k], &[&net_key], &[(&k, &value)], None)
                .map_err(down)?
            {
                if etcd.range_prefix(&net_key).map_err(down)?.is_empty() {
                    return Err(gone());
                }
                return Err(ApiError::bad_input(format!(
                    "address {ip} is already taken in the cluster"
                )));
            }
            return Ok(Some(ip.to_string()));
        }
        let subnet = network.subnet();
        let first = u32::from(subnet.addr()) + 1;
        let last = u32::from(subnet.broadcast()).saturating_sub(1);
        let mut claimed: Vec<String> = Vec::new();
        let mut refreshed = false;
        for candidate in (first..=last).map(std::net::Ipv4Addr::from) {
            if !refreshed {
                claimed = etcd
                    .range_prefix(&prefix)
                    .map_err(down)?
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect();
                refreshed = true;
            }
            let k = format!("{prefix}{candidate}");
            let candidate = candidate.to_string();
            if claimed.contains(&k) || allowed(&candidate).is_err() {
                continue;
            }
            if etcd
                .create_all(&[&k], &[&net_key], &[(&k, &value)], None)
                .map_err(down)?
            {
                return Ok(Some(candidate));
            }
            if etcd.range_prefix(&net_key).map_err(down)?.is_empty() {
                return Err(gone());
            }
            // Another host claimed it at the same moment: read the claims again, go on.
            refreshed = false;
        }
        Err(ApiError::bad_input(format!(
            "no free address left in network '{}' across the cluster",
            network.name
        )))
    }

    /// Gives back addresses `claim` took (a failed creation or connection, a removed or
    /// disconnected container).
    pub(super) fn release_addresses(&self, addresses: &[(String, std::net::Ipv4Addr)]) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        for (network, ip) in addresses {
            if self.cluster_overlay(network).is_none() {
                continue;
            }
            let k = key("addresses", &format!("{network}/{ip}"));
            if let Err(e) = cluster.etcd.delete(&k) {
                tracing::warn!("cluster: address {ip} of {network} stays claimed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_records_of_earlier_versions_name_their_container() {
        let old =
            r#"{"container":"web","mac":"02:00:00:00:00:01","ip":"10.0.0.2","host":"192.0.2.1"}"#;
        let r: EndpointRecord = serde_json::from_str(old).unwrap();
        assert_eq!(r.remote_name("ov").names, ["web"]);
        let new = EndpointRecord {
            names: vec!["web".into(), "www".into()],
            ..r.clone()
        };
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains(r#""names":["web","www"]"#), "{text}");
        // Earlier versions read it (they ignore what they do not know).
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["container"], "web");
        assert_eq!(
            serde_json::from_str::<EndpointRecord>(&text)
                .unwrap()
                .remote_name("ov"),
            RemoteName {
                network: "ov".into(),
                container: "web".into(),
                ip: "10.0.0.2".parse().unwrap(),
                names: vec!["web".into(), "www".into()],
            }
        );
        // Nothing of an earlier version's own: its record is the same without names.
        assert_eq!(serde_json::to_string(&r).unwrap(), old);
    }
}
