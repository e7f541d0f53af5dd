//! Turning data into what people and tools read: topology pictures (text, Graphviz, SVG).
//!
//! Renderers read the API's view types (and the model's and the engine's plain data); nothing
//! here is read back by the daemon, and neither `api` nor `model` depends on this module.

pub mod topology;

#[cfg(test)]
pub(crate) use golden::golden;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod golden;
