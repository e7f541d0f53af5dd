//! switchyard's control plane: the command line, the daemon, its API and model, and the namespace
//! plumbing. It reaches the data plane only through `dataplane::EngineHandle`.

pub mod api;
pub mod cli;
pub mod cni;
mod daemon;
pub mod dns;
/// The etcd JSON gateway's answers as the cluster reads them (`answer`, `watch_line`, `kvs`,
/// base64): untrusted input, fuzzed (`fuzz/fuzz_targets/etcd.rs`).
pub use daemon::cluster::etcd;
pub mod docker;
pub mod flow;
#[cfg(test)]
mod layering;
pub mod model;
pub mod netns;
mod process;
pub mod render;
pub mod store;
