//! `switchyard daemon`: the engine, the control thread and the API socket.
//!
//! Threads: the engine (owns the data plane), the control thread (accepts one connection at a
//! time, applies its request, answers), and the main thread (waits for SIGINT/SIGTERM). Requests
//! are applied one after another, so the state never sees two changes at once.
//!
//! A change goes: validate on a copy of the state (the model refuses bad input, nothing changed)
//! -> persist the copy atomically -> make the system match it -> answer. If making the system
//! match fails, what was built is torn down and the previous state is persisted again. Removals
//! tear down first and persist after. After `kill -9` at any point, a restart re-runs the same
//! idempotent "make the system match" for the persisted state, so traffic resumes by itself.
//!
//! Stopping the daemon (SIGTERM) leaves namespaces, veths and the persistent host taps in place, as
//! dockerd's live-restore does: a restarted daemon picks them up again.
//!
//! By job: `server.rs` (start-up, the API socket and its accept loop, capture streams, metrics,
//! shutdown), `handle.rs` (one request, start to finish, and the commit / bring-up / revert
//! sequence), `names.rs` (the resolver's table and the containers' resolv.conf after every
//! change), `trace.rs` (live traces, captures and what-if packets), `reaper.rs` (the
//! once-a-second thread), `system.rs` (making the system match the state).

pub(crate) mod cluster;
mod handle;
mod mint;
mod names;
mod reaper;
mod server;
mod system;
mod trace;

pub use server::{run, DaemonArgs};

use crate::api::ApiError;
use crate::dns::Resolver;
use crate::model::{PublishContext, State};
use crate::store::Store;
use server::UplinkArgs;
use system::System;

/// The daemon's state, the store that persists it, and the system made to match it. One request
/// or one reaper round holds it at a time (behind a mutex), so changes never interleave.
struct Daemon {
    state: State,
    store: Store,
    system: System,
    publish_ctx: PublishContext,
    uplink: Option<UplinkArgs>,
    /// The embedded DNS resolver (a front end: it gets a new name table after every change).
    resolver: Resolver,
    /// `--dns`: the resolver's upstreams instead of the daemon's resolv.conf.
    dns_servers: Vec<std::net::IpAddr>,
    /// `--cluster`: etcd and this host's address there.
    cluster: Option<cluster::ClusterConfig>,
    /// What the cluster thread last read from etcd.
    cluster_view: cluster::ClusterView,
}

/// A failure of the system (not of the request): one line, causes joined.
fn failed(e: anyhow::Error) -> ApiError {
    ApiError::failed(format!("{e:#}").replace('\n', " "))
}
