//! Traces as data: each traced packet with one line and one explanation per stage decision, written
//! by `render::trace` in the daemon (which knows the names) and printed by the CLI.

use serde::{Deserialize, Serialize};

/// One traced packet: where it entered, what it was, and each stage's decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceView {
    pub seq: u64,
    pub time_ns: u64,
    /// A what-if trace: nothing was changed or sent.
    pub what_if: bool,
    pub ingress: String,
    pub length: u32,
    /// One line about the packet ("TCP 172.17.0.2:40000 > 172.17.0.3:80 \[S\], 74 bytes").
    pub packet: String,
    pub steps: Vec<TraceStepView>,
    /// More steps happened than a record holds.
    pub truncated: bool,
}

/// One query the embedded resolver handled (`switchyard trace dns`), oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DnsQueryView {
    pub seq: u64,
    /// When it arrived (milliseconds since the Unix epoch).
    pub unix_ms: u64,
    /// `udp` or `tcp`.
    pub protocol: String,
    /// The network whose resolver (gateway) was asked.
    pub network: String,
    pub asker: String,
    /// The asking container, when the address is one.
    pub container: Option<String>,
    pub name: String,
    pub qtype: String,
    /// `local`, `pointer`, `nodata`, `nxdomain`, `forwarded`, `servfail`, `formerr`, `notimp`,
    /// `dropped`.
    pub outcome: String,
    /// Local addresses or name, or for a forward: which upstream answered and what.
    pub answer: String,
    /// From the query's arrival to the answer sent.
    pub micros: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceStepView {
    /// The stage's stable name (`ingress`, `anti-spoof`, `l2-learn`, `icc`, `nat`, ...).
    pub stage: String,
    /// A short code: `parsed`, `learned`, `hit`, `flood`, `allow`, `deny`, `drop`, `out`, ...
    pub decision: String,
    /// The compact form.
    pub line: String,
    /// The plain-language form.
    pub explain: String,
}
