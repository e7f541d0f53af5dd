//! switchyard's control plane: the command line, and (as it grows) the daemon, its API and model.
//! It reaches the data plane only through `dataplane::engine::EngineHandle`.

pub mod cli;
pub mod show;
