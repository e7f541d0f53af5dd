//! Turning data into what people and tools read: topology pictures (text, Graphviz, SVG), trace
//! lines and explanations, counters as tables and Prometheus text, the engine report.
//!
//! Renderers read the API's view types (and the model's and the engine's plain data); nothing
//! here is read back by the daemon, and neither `api` nor `model` depends on this module.

pub mod dns;
pub mod names;
pub mod show;
pub mod stats;
pub mod topology;
pub mod trace;

#[cfg(test)]
pub(crate) use golden::golden;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod golden;
