//! Request handling: one API request, start to finish. `Daemon::handle` is the list of
//! everything the daemon does; each request has its own function.
//!
//! A change is validated on a copy of the state (the model refuses bad input, nothing changed),
//! then `commit_and_bring_up` persists the copy, makes the system match it, and on failure tears
//! down what was built and persists the previous state again. Removals tear down first and
//! persist after (`tear_down_and_commit`). After every request that may change state, whatever
//! its outcome, the engine's policy and NAT and the hosts files follow the current state.

use std::collections::BTreeMap;

use dataplane::DomainId;
use dataplane::Tuple;

use super::mint::OsMint;
use super::system::{self, System};
use super::{failed, Daemon};
use crate::api::{self, ApiError, ConntrackEntry, ConntrackList, FlowTuple, Request, Response};
use crate::model::{State, UPLINK_DOMAIN};
use crate::netns;
use crate::render::show;

impl Daemon {
    pub(super) fn handle(&mut self, request: Request) -> Result<Response, ApiError> {
        tracing::debug!(?request, "request");
        let changes = request.changes_state();
        let result = self.apply(request);
        if changes {
            // Whatever happened (done, refused, or reverted), the data plane's policy and the
            // hosts files follow the current state before the client hears back.
            self.follow_state();
        }
        result
    }

    /// The engine's policy and NAT, the relay, the hosts files and the names follow the state
    /// (after every request that may change it, and after the cluster changed it).
    pub(super) fn follow_state(&mut self) {
        if let Err(e) = self.system.sync_policy(&self.state) {
            tracing::error!("pushing policy: {e:#}");
        }
        if let Err(e) = self.system.sync_nat(&self.state) {
            tracing::error!("pushing NAT configuration: {e:#}");
        }
        for (container, e) in self.system.sync_relay(&self.state) {
            tracing::error!(container, "serving a published port: {e:#}");
        }
        self.system.sync_hosts(&self.state);
        self.sync_names();
        self.nudge_cluster();
    }

    fn apply(&mut self, request: Request) -> Result<Response, ApiError> {
        match request {
            Request::Version => Ok(Response::Version {
                daemon: env!("CARGO_PKG_VERSION").to_string(),
                protocol: api::PROTOCOL_VERSION,
            }),
            Request::Status => self.status(),
            Request::NetworkLs => Ok(Response::Networks(self.state.network_summaries())),
            Request::NetworkInspect { names } => self.network_inspect(&names),
            Request::ContainerLs => Ok(Response::Containers(self.state.container_summaries())),
            Request::ContainerInspect { names } => self.container_inspect(&names),
            Request::NetworkCreate(req) => self.network_create(req),
            Request::NetworkRm { names, force } => self.network_rm(&names, force),
            Request::ContainerCreate(req) => self.container_create(req),
            Request::ContainerRm { names, force } => self.container_rm(&names, force),
            Request::NetworkConnect {
                network,
                container,
                ip,
                aliases,
            } => self.connect(&network, &container, ip.as_deref(), &aliases),
            Request::NetworkDisconnect { network, container } => {
                self.disconnect(&network, &container)
            }
            Request::ContainerEnv { name } => Ok(Response::Env(
                self.state.exec_env(&name, &system::host_hostname())?,
            )),
            Request::ContainerPort { name, filter } => {
                self.container_port(&name, filter.as_deref())
            }
            Request::Conntrack => self.conntrack(),
            Request::TraceAdd {
                target,
                count,
                filter,
            } => self.trace_add(&target, count, filter.as_deref()),
            Request::TraceShow => self.trace_show(),
            Request::TraceClear => self.trace_clear(),
            Request::TracePacket { input, flow } => self.trace_packet(&input, &flow),
            Request::Capture { .. } => {
                Err(ApiError::failed("captures are served by the socket loop"))
            }
            Request::Stats => Ok(Response::Stats(Box::new(self.stats()?))),
            Request::Attach {
                network,
                netns,
                pid,
                ifname,
                ip,
                mac,
            } => self.attach(
                &network,
                netns.as_deref(),
                pid,
                ifname.as_deref(),
                ip.as_deref(),
                mac.as_deref(),
            ),
            Request::Detach {
                network,
                netns,
                pid,
            } => self.detach(&network, netns.as_deref(), pid),
            Request::EndpointAttach(req) => self.endpoint_attach(req),
            Request::EndpointDetach { container, ifname } => {
                self.endpoint_detach(&container, &ifname)
            }
            Request::EndpointCheck { container, ifname } => {
                Ok(self.endpoint_check(&container, &ifname))
            }
            Request::EndpointLs { owner } => Ok(Response::Endpoints(
                self.state.endpoint_views(owner.as_deref()),
            )),
            Request::Fdb { network } => self.fdb(network.as_deref()),
            Request::Topology => Ok(Response::Topology(Box::new(self.topology()))),
            Request::DnsLog => Ok(Response::DnsLog(self.resolver.log())),
            Request::ContainerLink { name, link } => self.link(&name, &link),
            Request::SetAliases { aliases } => self.set_aliases(&aliases),
            Request::ContainerUnlink { name, alias } => self.unlink(&name, &alias),
        }
    }

    /// Persists `next` and makes it current; returns the previous state for a rollback.
    pub(super) fn commit(&mut self, next: State) -> Result<State, ApiError> {
        self.store
            .save(&next)
            .map_err(|e| ApiError::failed(e.to_string()))?;
        Ok(std::mem::replace(&mut self.state, next))
    }

    /// A change that builds: persists `next`, then `up` makes the system match it. If that fails,
    /// `down` tears down what was built and the previous state is persisted again; the error says
    /// `what` was being done.
    fn commit_and_bring_up(
        &mut self,
        next: State,
        up: impl FnOnce(&mut System, &State) -> anyhow::Result<()>,
        down: impl FnOnce(&mut System),
        what: impl FnOnce() -> String,
    ) -> Result<(), ApiError> {
        let previous = self.commit(next)?;
        if let Err(e) = up(&mut self.system, &self.state) {
            down(&mut self.system);
            if let Err(e) = self.store.save(&previous) {
                tracing::error!("restoring the previous state file: {e}");
            }
            self.state = previous;
            return Err(failed(e.context(what())));
        }
        Ok(())
    }

    /// A change that adds `endpoint` of `c`: persisted, then plugged in (both undone on failure).
    fn commit_endpoint(
        &mut self,
        next: State,
        c: &crate::model::Container,
        endpoint: &crate::model::Endpoint,
        what: impl FnOnce() -> String,
    ) -> Result<(), ApiError> {
        self.commit_and_bring_up(
            next,
            |system, state| system.connect(state, c, endpoint),
            |system| system.endpoint_down(endpoint),
            what,
        )
    }

    /// Gives back an address `claim` took when what it was for failed; passes `result` on.
    fn release_on_error<T>(
        &self,
        network: &str,
        claimed: Option<String>,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if result.is_err() {
            if let Some(ip) = claimed.and_then(|ip| ip.parse().ok()) {
                self.release_addresses(&[(network.to_string(), ip)]);
            }
        }
        result
    }

    /// A change that removes: `down` tears down first (best effort), then `next` is persisted.
    pub(super) fn tear_down_and_commit(
        &mut self,
        next: State,
        down: impl FnOnce(&mut System),
    ) -> Result<(), ApiError> {
        down(&mut self.system);
        self.commit(next).map(drop)
    }

    fn status(&self) -> Result<Response, ApiError> {
        let snapshot = self.system.snapshot().map_err(failed)?;
        let mut report = show::report(&snapshot);
        report.push_str(&self.system.relay_summary());
        Ok(Response::Status { report })
    }

    fn network_inspect(&self, names: &[String]) -> Result<Response, ApiError> {
        let mut out = Vec::new();
        for name in names {
            out.push(self.state.network_inspect(self.state.network(name)?));
        }
        Ok(Response::NetworkDetails(out))
    }

    fn container_inspect(&self, names: &[String]) -> Result<Response, ApiError> {
        let mut out = Vec::new();
        for name in names {
            out.push(
                self.state
                    .container_inspect(self.state.container(name)?, std::process::id()),
            );
        }
        Ok(Response::ContainerDetails(out))
    }

    /// `network create`: an overlay network of a cluster is stored in etcd first (which every
    /// host follows), then created here; if that fails, it is taken out of etcd again.
    fn network_create(&mut self, req: api::NetworkCreate) -> Result<Response, ApiError> {
        let overlay = req.driver.as_deref() == Some("overlay");
        if !overlay || self.cluster.is_none() {
            return self.network_create_local(req);
        }
        let published = self.publish_network(req)?;
        let created = self.network_create_local(published.clone());
        if created.is_err() {
            self.unpublish_network(&published);
        }
        created
    }

    /// `network create` on this host only.
    pub(super) fn network_create_local(
        &mut self,
        req: api::NetworkCreate,
    ) -> Result<Response, ApiError> {
        let mut routes = self.system.routes();
        routes.extend(self.uplink.as_ref().and_then(|u| u.subnet()));
        let mut next = self.state.clone();
        let network = next.create_network(&req, &routes, &mut OsMint)?.clone();
        if let Some(u) = &self.uplink {
            network.check_uplink(&u.claim())?;
        }
        network.check_underlay(self.system.underlay().as_ref())?;
        if let Some(parent) = &network.parent {
            if !self.system.interface_exists(parent).map_err(failed)? {
                return Err(ApiError::bad_input(format!(
                    "no interface '{parent}' in the daemon's namespace for --parent"
                )));
            }
        }
        if self
            .system
            .foreign_interface(&network.host_interface)
            .map_err(failed)?
        {
            return Err(ApiError::bad_input(format!(
                "interface '{}' already exists in the daemon's namespace; choose another with --opt com.docker.network.bridge.name=NAME",
                network.host_interface
            )));
        }
        self.commit_and_bring_up(
            next,
            |system, _| system.network_up(&network),
            |system| system.network_down(&network),
            || format!("setting up network '{}'", network.name),
        )?;
        if network.overlay.is_some() {
            self.sync_overlay_peers();
        }
        Ok(Response::Created { id: network.id })
    }

    /// `network rm`: checked here first (nothing changes if this host refuses), then overlay
    /// networks of a cluster are taken out of etcd (refused while another host has containers
    /// on one, unless `force`), then removed here; the other hosts follow etcd.
    fn network_rm(&mut self, names: &[String], force: bool) -> Result<Response, ApiError> {
        self.state.clone().remove_networks(names, force)?;
        self.unpublish_removed(names, force)?;
        self.network_rm_local(names, force)
    }

    /// `network rm` on this host only.
    pub(super) fn network_rm_local(
        &mut self,
        names: &[String],
        force: bool,
    ) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        let removed = next.remove_networks(names, force)?;
        self.tear_down_and_commit(next, |system| {
            for r in &removed {
                for (_, endpoint) in &r.disconnected {
                    system.endpoint_down(endpoint);
                }
                system.network_down(&r.network);
            }
        })?;
        Ok(Response::Done)
    }

    fn container_create(&mut self, req: api::ContainerCreate) -> Result<Response, ApiError> {
        let next = self.state.clone();
        let ctx = crate::model::PublishContext {
            host_addresses: self.system.host_addresses(),
            ..self.publish_ctx.clone()
        };
        let req = self.claim_address(req, &ctx)?;
        let created = self.container_create_claimed(next, &req, &ctx);
        if created.is_err() {
            if let Some(ip) = req.ip.as_deref().and_then(|ip| ip.parse().ok()) {
                self.release_addresses(&[(req.network.clone(), ip)]);
            }
        }
        created
    }

    /// `container create` once the address is settled (claimed in the cluster, when it must be).
    fn container_create_claimed(
        &mut self,
        mut next: crate::model::State,
        req: &api::ContainerCreate,
        ctx: &crate::model::PublishContext,
    ) -> Result<Response, ApiError> {
        let container = next.create_container_with(req, ctx, &mut OsMint)?.clone();
        if container.owns_netns() && netns::exists_named(container.netns()) {
            return Err(ApiError::bad_input(format!(
                "network namespace '{0}' already exists ({1}/{0}); choose another container name",
                container.netns(),
                netns::NETNS_RUN_DIR
            )));
        }
        if container.mode == crate::model::NetworkMode::Handoff {
            for e in &container.endpoints {
                if self.system.interface_exists(&e.interface).map_err(failed)? {
                    return Err(ApiError::bad_input(format!(
                        "interface '{}' already exists in the daemon's namespace; choose another name to hand off",
                        e.interface
                    )));
                }
            }
        }
        self.commit_and_bring_up(
            next,
            |system, state| {
                system.container_up(state, &container)?;
                // A host port another program holds makes the container unusable as asked:
                // refused, as Docker refuses it.
                match system
                    .sync_relay(state)
                    .into_iter()
                    .find(|(owner, _)| *owner == container.name)
                {
                    Some((_, e)) => Err(e),
                    None => Ok(()),
                }
            },
            |system| system.container_down(&container),
            || format!("setting up container '{}'", container.name),
        )?;
        Ok(Response::Created { id: container.id })
    }

    fn container_rm(&mut self, names: &[String], force: bool) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        let (removed, handovers) = next.remove_containers_forced(names, force)?;
        self.tear_down_and_commit(next, |system| {
            for c in &removed {
                match handovers.iter().find(|(old, _)| *old == c.name) {
                    // Joiners stay in the namespace (with only lo), under the heir's name.
                    Some((_, heir)) => system.container_down_handing_over(c, heir),
                    None => system.container_down(c),
                }
            }
        })?;
        let released: Vec<(String, std::net::Ipv4Addr)> = removed
            .iter()
            .flat_map(|c| c.endpoints.iter().map(|e| (e.network.clone(), e.ip)))
            .collect();
        self.release_addresses(&released);
        Ok(Response::Done)
    }

    fn connect(
        &mut self,
        network: &str,
        container: &str,
        ip: Option<&str>,
        aliases: &[String],
    ) -> Result<Response, ApiError> {
        // On an overlay network of a cluster the address is claimed in etcd first.
        let allowed = |ip: &str| {
            self.state
                .clone()
                .connect_with_aliases(network, container, Some(ip), aliases, &mut OsMint)
                .map(drop)
        };
        let what = "containers cannot be connected to overlay networks";
        let claimed = self.claim(network, container, ip, &allowed, what)?;
        let ip = claimed.as_deref().or(ip);
        let mut next = self.state.clone();
        let connected = next
            .connect_with_aliases(network, container, ip, aliases, &mut OsMint)
            .and_then(|endpoint| Ok((endpoint, next.container(container)?.clone())))
            .and_then(|(endpoint, c)| {
                self.commit_endpoint(next, &c, &endpoint, || {
                    format!("connecting '{container}' to '{network}'")
                })
            });
        self.release_on_error(network, claimed, connected)?;
        Ok(Response::Done)
    }

    fn disconnect(&mut self, network: &str, container: &str) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        let endpoint = next.disconnect(network, container)?;
        self.tear_down_and_commit(next, |system| system.endpoint_down(&endpoint))?;
        self.release_addresses(&[(network.to_string(), endpoint.ip)]);
        let c = self.state.container(container)?.clone();
        if let Err(e) = self.system.refresh_default_route(&self.state, &c) {
            tracing::warn!(container, "moving the default route: {e:#}");
        }
        Ok(Response::Done)
    }

    /// `switchyard attach`: plugs someone else's namespace into `network`.
    fn attach(
        &mut self,
        network: &str,
        netns: Option<&str>,
        pid: Option<u32>,
        ifname: Option<&str>,
        ip: Option<&str>,
        mac: Option<&str>,
    ) -> Result<Response, ApiError> {
        let (name, path, ns) = foreign_namespace(netns, pid)?;
        let ifname = ifname.unwrap_or("eth1");
        let plug = |state: &mut State, ip: Option<&str>| {
            let inode = ns.inode();
            state.attach(&name, &path, inode, network, ifname, ip, mac, &mut OsMint)
        };
        // On an overlay network of a cluster the address is claimed in etcd first.
        let allowed = |ip: &str| plug(&mut self.state.clone(), Some(ip)).map(drop);
        let what = "namespaces cannot be attached to overlay networks";
        let claimed = self.claim(network, &name, ip, &allowed, what)?;
        let ip = claimed.as_deref().or(ip);
        let mut next = self.state.clone();
        let attached = plug(&mut next, ip).and_then(|(c, endpoint)| {
            self.commit_endpoint(next, &c, &endpoint, || {
                format!("attaching {path} to '{network}'")
            })?;
            Ok(c)
        });
        let c = self.release_on_error(network, claimed, attached)?;
        Ok(Response::Created { id: c.id })
    }

    /// `switchyard detach`: the attachment goes when its last network does.
    fn detach(
        &mut self,
        network: &str,
        netns: Option<&str>,
        pid: Option<u32>,
    ) -> Result<Response, ApiError> {
        let (_, path, _) = foreign_namespace(netns, pid)?;
        let name = self
            .state
            .attachment(&path)
            .map(|c| c.name.clone())
            .ok_or_else(|| ApiError::bad_input(format!("{path} is not attached to any network")))?;
        let mut next = self.state.clone();
        let endpoint = next.disconnect(network, &name)?;
        if next.container(&name)?.endpoints.is_empty() {
            next.remove_containers(std::slice::from_ref(&name))?;
        }
        self.tear_down_and_commit(next, |system| system.endpoint_down(&endpoint))?;
        self.release_addresses(&[(network.to_string(), endpoint.ip)]);
        Ok(Response::Done)
    }

    /// Plugs a namespace someone else made into a network as the interface it names.
    fn endpoint_attach(&mut self, req: api::EndpointAttach) -> Result<Response, ApiError> {
        let ns = system::open_external(&req.netns).map_err(|e| {
            ApiError::bad_input(format!(
                "cannot open network namespace {}: {e:#}",
                req.netns
            ))
        })?;
        if self
            .system
            .external_has_interface(&req.netns, &req.ifname)
            .map_err(failed)?
        {
            return Err(ApiError::bad_input(format!(
                "interface {} already exists in {}",
                req.ifname, req.netns
            )));
        }
        // On an overlay network of a cluster the address is claimed in etcd first.
        let allowed = |ip: &str| {
            let mut probe = req.clone();
            probe.ip = Some(ip.to_string());
            self.state
                .clone()
                .attach_endpoint(&probe, ns.inode(), &self.publish_ctx, &mut OsMint)
                .map(drop)
        };
        let what = "containers cannot be attached to overlay networks";
        let claimed = self.claim(
            &req.network,
            &req.container,
            req.ip.as_deref(),
            &allowed,
            what,
        )?;
        let mut req = req;
        if let Some(ip) = &claimed {
            req.ip = Some(ip.clone());
        }
        let mut next = self.state.clone();
        let attached = next
            .attach_endpoint(&req, ns.inode(), &self.publish_ctx, &mut OsMint)
            .and_then(|(c, endpoint)| {
                self.commit_endpoint(next, &c, &endpoint, || {
                    format!("attaching {} to '{}'", req.netns, req.network)
                })?;
                Ok((c, endpoint))
            });
        let (c, endpoint) = self.release_on_error(&req.network, claimed, attached)?;
        let c = self.state.container(&c.name)?;
        Ok(Response::Endpoint(Box::new(
            self.state.endpoint_view(c, &endpoint),
        )))
    }

    /// Removes an attached interface; nothing to remove is done too.
    fn endpoint_detach(&mut self, container: &str, ifname: &str) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        let Some(endpoint) = next.detach_endpoint(container, ifname)? else {
            return Ok(Response::Done);
        };
        self.tear_down_and_commit(next, |system| system.endpoint_down(&endpoint))?;
        self.release_addresses(&[(endpoint.network.clone(), endpoint.ip)]);
        Ok(Response::Done)
    }

    fn endpoint_check(&self, container: &str, ifname: &str) -> Response {
        let found = self.state.containers.get(container).and_then(|c| {
            let e = c.endpoints.iter().find(|e| e.interface == ifname)?;
            Some((c, e, self.state.networks.get(&e.network)?))
        });
        match found {
            Some((c, e, n)) => Response::EndpointCheck {
                endpoint: Some(Box::new(self.state.endpoint_view(c, e))),
                problems: self.system.check_endpoint(n, c, e),
            },
            None => Response::EndpointCheck {
                endpoint: None,
                problems: Vec::new(),
            },
        }
    }

    /// `container link`: policy only; the engine follows after the request.
    fn link(&mut self, name: &str, link: &str) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        next.add_link(name, link)?;
        self.commit(next)?;
        Ok(Response::Done)
    }

    /// Names only: nothing in the system changes.
    fn set_aliases(
        &mut self,
        aliases: &BTreeMap<String, Option<String>>,
    ) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        next.set_aliases(aliases)?;
        if next != self.state {
            self.commit(next)?;
        }
        Ok(Response::Done)
    }

    fn unlink(&mut self, name: &str, alias: &str) -> Result<Response, ApiError> {
        let mut next = self.state.clone();
        next.remove_link(name, alias)?;
        self.commit(next)?;
        Ok(Response::Done)
    }

    fn container_port(&self, name: &str, filter: Option<&str>) -> Result<Response, ApiError> {
        let c = self.state.container(name)?;
        let mappings: Vec<_> = c.published.iter().map(|p| p.mapping).collect();
        Ok(Response::Lines(crate::model::publish::port_lines(
            name, &mappings, filter,
        )?))
    }

    /// `switchyard conntrack`: the engine's connections as the API shows them.
    fn conntrack(&self) -> Result<Response, ApiError> {
        let (list, stats) = self.system.conntrack().map_err(failed)?;
        let tuple = |t: &Tuple| FlowTuple {
            src: t.src.to_string(),
            sport: t.sport,
            dst: t.dst.to_string(),
            dport: t.dport,
        };
        let entries = list
            .iter()
            .map(|c| ConntrackEntry {
                protocol: match c.original.proto {
                    6 => "tcp".into(),
                    17 => "udp".into(),
                    1 => "icmp".into(),
                    p => p.to_string(),
                },
                kind: format!("{:?}", c.kind).to_lowercase(),
                state: c.state.name().to_string(),
                timeout_s: c.remaining_ms / 1000,
                original: tuple(&c.original),
                reply: tuple(&c.reply),
                packets: c.packets,
                bytes: c.bytes,
            })
            .collect();
        Ok(Response::Conntrack(ConntrackList {
            entries,
            count: stats.entries,
            max: stats.max_entries,
            created: stats.created,
            expired: stats.expired,
            evicted: stats.evicted,
            removed: stats.removed,
        }))
    }

    fn fdb(&self, network: Option<&str>) -> Result<Response, ApiError> {
        if let Some(n) = network {
            self.state.network(n)?;
        }
        let snapshot = self.system.snapshot().map_err(failed)?;
        let names = self.system.names(&self.state);
        let mut entries = crate::render::stats::fdb(&snapshot, &names, &self.network_names());
        if let Some(n) = network {
            entries.retain(|e| e.network == n);
        }
        Ok(Response::Fdb(entries))
    }

    fn network_names(&self) -> BTreeMap<DomainId, String> {
        let mut m: BTreeMap<DomainId, String> = self
            .state
            .networks
            .values()
            .map(|n| (DomainId(n.domain), n.name.clone()))
            .collect();
        m.insert(DomainId(UPLINK_DOMAIN), "uplink".into());
        m
    }

    pub(super) fn stats(&self) -> Result<crate::api::stats::Stats, ApiError> {
        let snapshot = self.system.snapshot().map_err(failed)?;
        let names = self.system.names(&self.state);
        let mut stats = crate::render::stats::stats(
            &snapshot,
            &snapshot.conntrack,
            &names,
            &self.network_names(),
        );
        stats.dns = self.resolver.counters();
        stats.vxlan = self.system.vxlan_drops();
        Ok(stats)
    }

    fn topology(&self) -> crate::api::topology::Topology {
        let uplink = self
            .uplink
            .as_ref()
            .map(|u| crate::api::topology::UplinkView {
                interface: u.ifname.clone(),
                ip: u.ip,
                prefix: u.prefix,
                gateway: u.gateway,
            });
        let mut t = crate::model::topology::topology(&self.state, uplink);
        let listening = self.resolver.listening();
        for n in &mut t.networks {
            if listening.contains(&n.gateway) {
                n.resolver = Some(format!("{}:53", n.gateway));
            }
        }
        t
    }
}

/// The namespace `--netns NAME|PATH` or `--pid PID` names: the attachment's name, the path it is
/// remembered by, and the open namespace.
fn foreign_namespace(
    netns: Option<&str>,
    pid: Option<u32>,
) -> Result<(String, String, crate::netns::NetNs), ApiError> {
    let (name, path) = match (netns, pid) {
        (Some(n), None) if n.contains('/') => {
            let file = std::path::Path::new(n)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            (format!("netns-{file}"), n.to_string())
        }
        (Some(n), None) => {
            crate::netns::validate_name(n).map_err(|e| ApiError::bad_input(e.to_string()))?;
            (
                format!("netns-{n}"),
                format!("{}/{n}", netns::NETNS_RUN_DIR),
            )
        }
        (None, Some(p)) => (format!("pid-{p}"), format!("/proc/{p}/ns/net")),
        _ => {
            return Err(ApiError::bad_input(
                "give exactly one of --netns NAME|PATH and --pid PID",
            ))
        }
    };
    let ns = system::open_external(&path).map_err(|e| {
        ApiError::bad_input(match (netns, pid) {
            (_, Some(p)) => format!("no process {p} with a network namespace ({e:#})"),
            (Some(n), _) if !n.contains('/') => format!("no network namespace named '{n}'"),
            _ => format!("{e:#}"),
        })
    })?;
    Ok((name, path, ns))
}
