//! switchyard's control plane: the command line, the daemon, its API and model, and the namespace
//! plumbing. It reaches the data plane only through `dataplane::EngineHandle`.

pub mod api;
pub mod cli;
pub mod cni;
mod daemon;
pub mod dns;
pub mod docker;
pub mod flow;
#[cfg(test)]
mod layering;
pub mod model;
pub mod netns;
mod process;
pub mod render;
pub mod store;
