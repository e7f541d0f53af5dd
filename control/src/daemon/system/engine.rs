//! What the daemon asks of the engine beyond ports and policy (status, traces, captures,
//! conntrack, conflicts, shutdown): through `System`, so nothing else holds the `EngineHandle`.

use dataplane::{
    AddressConflict, Capture, ConnInfo, CtStats, EngineHandle, PortId, Snapshot, TraceArm,
    TraceRecord,
};

use super::System;

impl System {
    /// Tracked NAT connections and the table's counters (`switchyard conntrack`).
    pub fn conntrack(&self) -> anyhow::Result<(Vec<ConnInfo>, CtStats)> {
        Ok(self.engine.connections()?)
    }

    /// The data plane's ports, MAC table and counters.
    pub fn snapshot(&self) -> anyhow::Result<Snapshot> {
        Ok(self.engine.snapshot()?)
    }

    /// Address conflicts the engine saw on parent ports.
    pub fn conflicts(&self) -> anyhow::Result<Vec<AddressConflict>> {
        Ok(self.engine.conflicts()?)
    }

    /// Traces the next packets entering a target.
    pub fn trace_arm(&self, arm: TraceArm) -> anyhow::Result<()> {
        Ok(self.engine.trace_arm(arm)?)
    }

    /// The trace records collected so far.
    pub fn trace_show(&self) -> anyhow::Result<Vec<TraceRecord>> {
        Ok(self.engine.trace_show()?)
    }

    pub fn trace_clear(&self) -> anyhow::Result<()> {
        Ok(self.engine.trace_clear()?)
    }

    /// Runs `frame` through the real tables as if it entered at `port`; nothing is sent.
    pub fn trace_packet(&self, port: PortId, frame: Vec<u8>) -> anyhow::Result<TraceRecord> {
        Ok(self.engine.trace_packet(port, frame)?)
    }

    /// Starts a capture; returns its id and the handle that stops it (the streaming thread
    /// stops it when its client goes away).
    pub fn capture_start(&self, capture: Capture) -> anyhow::Result<(u32, CaptureStop)> {
        let id = self.engine.capture_start(capture)?;
        Ok((
            id,
            CaptureStop {
                id,
                engine: self.engine.clone(),
            },
        ))
    }

    /// Stops the engine (on SIGTERM); namespaces, veths and host taps stay.
    pub fn shutdown(&self) {
        let _ = self.engine.shutdown();
    }
}

/// Stops one capture: what a capture's streaming thread holds instead of the engine.
pub struct CaptureStop {
    id: u32,
    engine: EngineHandle,
}

impl CaptureStop {
    /// Stops the capture; returns how many frames it dropped because its reader fell behind.
    pub fn stop(&self) -> anyhow::Result<u64> {
        Ok(self.engine.capture_stop(self.id)?)
    }
}
