//! Docker's names for what the plugin made. The protocol never names a network or a container
//! (only IDs), so every two seconds, when dockerd's API socket answers, this asks it for its
//! networks and containers and gives switchyard's objects Docker's names as aliases
//! (`Request::SetAliases`): `switchyard network ls`, `container ls` and `topology` then show
//! `mynet` and `web` instead of IDs. Nothing depends on it: without dockerd's API, IDs are shown.
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
        let daemon = Arc::clone(&daemon);
        let pushed = tokio::task::spawn_blocking(move || push(daemon.as_ref(), &wanted)).await;
        if let Ok(Err(e)) = pushed {
            tracing::debug!("Docker names: {e:#}");
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
        let Some(name) = c["Names"].as_array().and_then(|n| {
            n.iter()
                .filter_map(Value::as_str)
                .find(|n| n.matches('/').count() == 1)
        }) else {
            continue;
        };
        let name = name.trim_start_matches('/');
        let networks = c["NetworkSettings"]["Networks"].as_object();
        for settings in networks.into_iter().flat_map(|n| n.values()) {
            if let Some(endpoint) = settings["EndpointID"].as_str().filter(|e| !e.is_empty()) {
                names.insert(endpoint.to_string(), name.to_string());
            }
        }
    }
    names
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
