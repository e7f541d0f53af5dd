//! switchyard's data plane: a poll-driven userspace switch.
//!
//! Layers, bottom up: `wire` (views over frame bytes), `port` (AF_PACKET, tap and in-memory ports behind
//! one trait), `offload` (finishing checksums and segmenting GSO frames for ports that cannot take
//! them), `table` (MAC learning, connection tracking, NAT and policy tables), `stage` (pure pipeline
//! stages returning verdicts), `engine` (the loop that owns ports and tables and is programmed through
//! `EngineHandle`). See ARCHITECTURE.md for the bird's-eye view.
//!
//! # The public surface
//!
//! Only `wire` (the vocabulary: views over frame bytes, which the control plane also uses to build
//! what-if packets) is a public module. Everything else is private, and what the control plane, the
//! benchmarks and the tests may use is re-exported below, by job. So "control reaches the data plane
//! only through the engine's command API and plain data" is enforced by the compiler: a stage, a table
//! or the engine's internals cannot be named from outside this crate.

mod engine;
mod ids;
mod offload;
mod port;
mod rewrite;
mod stage;
mod table;
mod trace;
pub mod wire;

pub use ids::{DomainId, PortId, VlanId};
pub use wire::MacAddr;

// The engine and its command API: spawn it, then program it only through `EngineHandle`.
pub use engine::affinity;
pub use engine::{
    AddressConflict, ConnInfo, CpuPin, Engine, EngineConfig, EngineError, EngineHandle,
    EngineThreads, MacEntry, NatUpdate, PolicyUpdate, PortCounters, PortInfo, PortState, Snapshot,
};

// Ports the engine can own.
/// The VXLAN port's merge of a `UDP_GRO` batch of underlay datagrams (outside input) back into
/// one TCP super-frame, for the fuzz targets.
pub use offload::coalesce_tcp;
/// What the VXLAN port makes of each decapsulated frame (outside input): the checksum-partial
/// state and the TCP super-frame a Linux sender's offloads left it as, for the fuzz targets.
pub use offload::{recover_offloads, OversizeError};
/// VXLAN's pure parts (decapsulation, the flow's source port, encapsulation), for the fuzz
/// targets and benchmarks.
pub use port::vxlan;
pub use port::{
    AfPacketPort, MemoryPort, MemoryPortHandle, Port, PortKind, SinkPort, TapPort, Tunnel,
    VlanPort, VxlanPort, VxlanSocket, VxlanStats, BATCH,
};
/// A batch of received frames and a frame to send: what `Port`'s methods take, for the `relay`
/// benchmark, which moves frames between two ports with no engine.
pub use port::{RxBatch, RxMeta, TxRef};

// Table configuration and the plain data the control plane computes and pushes (policy, NAT).
pub use table::conntrack::{Direction, NatKind, Tuple};
// The connection table itself, for the benchmark that measures it at a million entries
// (bench/benches/scale.rs). The engine's own table stays private to the engine.
pub use table::conntrack::{ConnTrack, CtTimeouts, Hop};
// The MAC table too, and how much aging one round of the engine's loop does, for the same
// benchmark (the MAC table and aging at a million entries).
pub use engine::AGING_BUDGET;
pub use table::CamTable;
pub use table::{
    CamConfig, CamStats, ContainerGuard, CtConfig, CtStats, LearnAction, LinkPort, LinkRule,
    NetworkNat, PortRole, Publish, Subnet, Uplink,
};

// Tracing and capture: arm, read records (plain data), stream pcap.
pub use trace::{
    pcap, Capture, Captured, CtStep, Filter, Flow, Step, TraceArm, TraceRecord, TraceTarget,
};

// Names of stages and drop reasons, and the answers the NAT stage can give, for counters and traces.
pub use stage::nat::Answer;
pub use stage::{DropReason, StageId};
