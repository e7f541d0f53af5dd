//! Docker's names for what the plugin made. The protocol never names a network or a container
//! (only IDs), so every two seconds, when dockerd's API socket answers, this asks it for its
//! networks and containers and gives switchyard's objects Docker's names as aliases
//! (`Request::SetAliases`): `switchyard network ls`, `container ls` and `topology` then show
//! `mynet` and `web` instead of IDs. Nothing depends on it: without dockerd's API, IDs are shown.
//! Docker's legacy links (`docker run --link`) are read the same way and become switchyard links,
//! which on an `icc=false` network open the child's exposed ports to the parent, as on docker0.
//!
//! Asking dockerd from inside a plugin call can deadlock it (it holds the container's lock while
//! it calls the driver), so the names are fetched here, apart from every call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::Daemon;
use crate::api::{Request, Response};

/// How often Docker's names are looked at.
const PERIOD: Duration = Duration::from_secs(2);
/// The API version Debian's dockerd 20.10 and every later one speak.
const API: &str = "/v1.41";

/// Looks for Docker's names every `PERIOD`, forever.
pub async fn follow(docker_api: PathBuf, daemon: Arc<dyn Daemon + Send + Sync>) {
    // Containers (with their endpoints) whose links were carried over.
    let mut seen = std::collections::HashSet::new();
    loop {
        tokio::time::sleep(PERIOD).await;
        let (networks, containers) = match (
            get(&docker_api, &format!("{API}/networks")).await,
            get(&docker_api, &format!("{API}/containers/json?all=1")).await,
        ) {
            (Ok(n), Ok(c)) => (n, c),
            // dockerd is not there (yet): IDs are shown meanwhile.
            _ => continue,
        };
        let wanted = docker_names(&networks, &containers);
        // Links need each container's details: only containers (with their endpoints) not
        // looked at yet are asked for.
        let endpoints = container_endpoints(&containers);
        let mut links = Vec::new();
        let mut looked = Vec::new();
        for c in containers.as_array().into_iter().flatten() {
            let (Some(id), Some(name)) = (c["Id"].as_str(), own_name(c)) else {
                continue;
            };
            let key = format!("{id} {:?}", endpoints.get(name));
            if seen.contains(&key) {
                continue;
            }
            if let Ok(details) = get(&docker_api, &format!("{API}/containers/{id}/json")).await {
                links.extend(docker_links(&details, &endpoints));
                looked.push(key);
            }
        }
        let daemon = Arc::clone(&daemon);
        let pushed = tokio::task::spawn_blocking(move || {
            push(daemon.as_ref(), &wanted)?;
            link(daemon.as_ref(), &links)
        })
        .await;
        match pushed {
            Ok(Ok(())) => seen.extend(looked),
            Ok(Err(e)) => tracing::debug!("Docker names and links: {e:#}"),
            Err(e) => tracing::debug!("Docker names and links: {e}"),
        }
    }
}

/// Docker's name of each network by its ID and of each container by each of its endpoints' IDs.
pub fn docker_names(networks: &Value, containers: &Value) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for n in networks.as_array().into_iter().flatten() {
        if let (Some(id), Some(name)) = (n["Id"].as_str(), n["Name"].as_str()) {
            names.insert(id.to_string(), name.to_string());
        }
    }
    for c in containers.as_array().into_iter().flatten() {
        // The first name is the container's own; others are `/PARENT/ALIAS` of links.
        let Some(name) = own_name(c) else {
            continue;
        };
        let networks = c["NetworkSettings"]["Networks"].as_object();
        for settings in networks.into_iter().flat_map(|n| n.values()) {
            if let Some(endpoint) = settings["EndpointID"].as_str().filter(|e| !e.is_empty()) {
                names.insert(endpoint.to_string(), name.to_string());
            }
        }
    }
    names
}

/// Each container's endpoint ID per network, by the container's name (from dockerd's list).
pub fn container_endpoints(containers: &Value) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for c in containers.as_array().into_iter().flatten() {
        let Some(name) = own_name(c) else { continue };
        let endpoints: BTreeMap<String, String> = c["NetworkSettings"]["Networks"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(net, s)| {
                let e = s["EndpointID"].as_str().filter(|e| !e.is_empty())?;
                Some((net.clone(), e.to_string()))
            })
            .collect();
        out.insert(name.to_string(), endpoints);
    }
    out
}

/// The `--link`s of one container (its inspect JSON: `Links` per network, `CHILD:ALIAS`), each as
/// (its endpoint ID, the child's endpoint ID, alias) on that network, so that on `icc=false` the
/// parent reaches the child's exposed ports, as on docker0 (Docker tells a driver about links
/// only on its default bridge network).
pub fn docker_links(
    inspect: &Value,
    endpoints: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<(String, String, String)> {
    let mut links = Vec::new();
    let networks = inspect["NetworkSettings"]["Networks"].as_object();
    for (net, settings) in networks.into_iter().flatten() {
        let Some(parent) = settings["EndpointID"].as_str().filter(|e| !e.is_empty()) else {
            continue;
        };
        for link in settings["Links"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let (child, alias) = link.split_once(':').unwrap_or((link, link));
            let child = child.trim_start_matches('/');
            if let Some(child_endpoint) = endpoints.get(child).and_then(|e| e.get(net)) {
                links.push((
                    parent.to_string(),
                    child_endpoint.clone(),
                    alias.to_string(),
                ));
            }
        }
    }
    links
}

/// A container's own name (its links add `/PARENT/ALIAS` names).
fn own_name(c: &Value) -> Option<&str> {
    c["Names"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|n| n.matches('/').count() == 1)
        .map(|n| n.trim_start_matches('/'))
}

/// Sends the aliases of switchyard's objects that differ from Docker's names.
fn push(daemon: &dyn Daemon, wanted: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let mut shown = BTreeMap::new();
    if let Response::Networks(ns) = daemon.call(Request::NetworkLs)? {
        shown.extend(ns.into_iter().map(|n| (n.id, n.name)));
    }
    if let Response::Containers(cs) = daemon.call(Request::ContainerLs)? {
        shown.extend(cs.into_iter().map(|c| (c.id, c.name)));
    }
    let aliases: BTreeMap<String, Option<String>> = shown
        .into_iter()
        .filter_map(|(id, name)| {
            let want = wanted.get(&id)?;
            (want != &name).then(|| (id, Some(want.clone())))
        })
        .collect();
    if !aliases.is_empty() {
        daemon.call(Request::SetAliases { aliases })?;
    }
    Ok(())
}

/// Adds the links Docker has that switchyard's containers lack (removing a container removes
/// its links in switchyard too).
fn link(daemon: &dyn Daemon, links: &[(String, String, String)]) -> anyhow::Result<()> {
    for (parent, child, alias) in links {
        let (Some(parent), Some(child)) = (parent.get(..12), child.get(..12)) else {
            continue;
        };
        let Ok(Response::ContainerDetails(details)) = daemon.call(Request::ContainerInspect {
            names: vec![parent.to_string()],
        }) else {
            continue;
        };
        let has = format!("/{child}:/{parent}/{alias}");
        if details.iter().any(|d| d.host_config.links.contains(&has)) {
            continue;
        }
        daemon.call(Request::ContainerLink {
            name: parent.to_string(),
            link: format!("{child}:{alias}"),
        })?;
    }
    Ok(())
}

/// One GET of dockerd's API over its unix socket, as JSON.
async fn get(socket: &Path, path: &str) -> anyhow::Result<Value> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, "docker")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    let body = Limited::new(response.into_body(), 64 << 20)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("GET {path}: {e}"))?
        .to_bytes();
    Ok(serde_json::from_slice(&body)?)
}
