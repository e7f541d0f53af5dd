//! The Docker front end: switchyard as a remote network driver ("legacy" plugin) of a real
//! dockerd. `switchyard daemon --docker-plugin[=PATH]` serves Docker's plugin protocol over
//! HTTP/1.1 on a unix socket (default `/run/docker/plugins/switchyard.sock`, so the driver is
//! `-d switchyard`; the plugin's name is the socket's file name).
//!
//! `driver.rs` turns each call into the same `api` requests the CLI sends, over the daemon's own
//! API socket; the daemon's request handling knows nothing of Docker. This file is the transport:
//! hyper on a small current-thread tokio runtime of its own thread (front ends may use tokio;
//! the engine never does). Blocking API calls run on tokio's blocking pool, so a slow request
//! never stalls the accept loop; the daemon applies them one at a time anyway.

mod driver;
mod names;

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(test)]
use crate::api::{Request as ApiRequest, Response as ApiResponse};
use anyhow::Context;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

pub use driver::{answer, handoff_name, Answer, Daemon};
pub use names::{container_endpoints, docker_links, docker_names};

/// Where dockerd looks for a plugin named `switchyard`.
pub const DEFAULT_PLUGIN_SOCKET: &str = "/run/docker/plugins/switchyard.sock";
/// The media type dockerd asks for (`Accept`); dockerd does not check the answer's.
const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";
/// Largest request body read (a CreateEndpoint with thousands of published ports stays below).
const MAX_BODY: usize = 4 << 20;

/// The daemon reached over its API socket, as the CLI reaches it.
struct ApiSocket(PathBuf);

impl Daemon for ApiSocket {
    fn call(
        &self,
        request: crate::api::Request,
    ) -> Result<crate::api::Response, crate::api::ClientError> {
        crate::api::call(&self.0, request)
    }
}

/// Where dockerd serves its API by default (asked for Docker's names only).
pub const DEFAULT_DOCKER_API: &str = "/run/docker.sock";

/// Binds `plugin_socket` (replacing a stale file, never a live plugin's) and serves it on a
/// thread of its own, sending requests to the daemon at `api_socket`; Docker's names are read
/// from dockerd's API at `docker_api` (`names.rs`).
pub fn spawn(plugin_socket: &Path, api_socket: &Path, docker_api: &Path) -> anyhow::Result<()> {
    let listener = bind(plugin_socket)?;
    let api = Arc::new(ApiSocket(api_socket.to_path_buf()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the Docker plugin's runtime")?;
    let docker_api = docker_api.to_path_buf();
    std::thread::Builder::new()
        .name("docker-plugin".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(names::follow(docker_api, api.clone()));
                serve(listener, api).await
            })
        })
        .context("spawning the Docker plugin thread")?;
    tracing::info!(socket = %plugin_socket.display(), "Docker network plugin ready");
    Ok(())
}

fn bind(path: &Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("another plugin is already serving on {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    // dockerd runs as root; nobody else may drive the switch through this socket.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    listener
        .set_nonblocking(true)
        .context("making the plugin socket non-blocking")?;
    Ok(listener)
}

async fn serve(listener: std::os::unix::net::UnixListener, api: Arc<ApiSocket>) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("Docker plugin socket: {e}");
            return;
        }
    };
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("accepting a Docker plugin connection: {e}");
                continue;
            }
        };
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| call(req, Arc::clone(&api)));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("Docker plugin connection: {e}");
            }
        });
    }
}

async fn call(
    req: Request<Incoming>,
    api: Arc<ApiSocket>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let answer = if req.method() != Method::POST {
        Answer {
            status: 405,
            body: serde_json::json!({ "Err": format!("{path}: the plugin protocol uses POST") }),
        }
    } else {
        match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(body) => {
                let body = body.to_bytes();
                let p = path.clone();
                tokio::task::spawn_blocking(move || answer(api.as_ref(), &p, &body))
                    .await
                    .unwrap_or_else(|e| Answer {
                        status: 500,
                        body: serde_json::json!({ "Err": format!("{path}: {e}") }),
                    })
            }
            Err(e) => Answer {
                status: 400,
                body: serde_json::json!({ "Err": format!("{path}: reading the request: {e}") }),
            },
        }
    };
    if answer.status == 200 && answer.body.get("Err").is_none() {
        tracing::debug!(call = %path, "Docker plugin call");
    } else {
        tracing::info!(call = %path, status = answer.status, answer = %answer.body, "Docker plugin call refused");
    }
    let body = serde_json::to_vec(&answer.body).expect("JSON values serialize");
    Ok(Response::builder()
        .status(answer.status)
        .header(hyper::header::CONTENT_TYPE, MEDIA_TYPE)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid status and header"))
}

#[cfg(test)]
mod tests;
