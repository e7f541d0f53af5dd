//! In-memory port: frames are queued and collected by hand. It lets the whole pipeline run in unit
//! tests and without privileges (no sockets, no namespaces). The handle shares the queues through a
//! mutex; that lock is a test convenience and never on a real port's path.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use super::{Port, PortError, PortKind, RxBatch, SendReport, TxRef, BATCH};
use crate::wire::vnet::VnetHeader;

#[derive(Default)]
struct Queues {
    inbound: VecDeque<(VnetHeader, Vec<u8>)>,
    outbound: Vec<(VnetHeader, Vec<u8>)>,
}

pub struct MemoryPort {
    name: String,
    vnet: bool,
    queues: Arc<Mutex<Queues>>,
    /// False for a sender (`Port::sender`): another worker's send-only handle.
    receives: bool,
    /// What it reports as its tunnel (`tunneled`): a stand-in for a VXLAN port in tests.
    tunnel: Option<super::Tunnel>,
}

/// The test's side of a `MemoryPort`: inject frames, collect what the switch sent.
#[derive(Clone)]
pub struct MemoryPortHandle {
    queues: Arc<Mutex<Queues>>,
}

impl MemoryPort {
    /// A port named `name`; `vnet` says whether it accepts offloaded (checksum-partial, GSO) frames.
    pub fn new(name: &str, vnet: bool) -> (MemoryPort, MemoryPortHandle) {
        let queues = Arc::new(Mutex::new(Queues::default()));
        (
            MemoryPort {
                name: name.to_string(),
                vnet,
                queues: queues.clone(),
                receives: true,
                tunnel: None,
            },
            MemoryPortHandle { queues },
        )
    }

    /// The same port reporting `tunnel` as its place on an underlay, as a VXLAN port does, and
    /// treating offloads as one: frames come in with the vnet header they were injected with
    /// (what `offload::recover_offloads` makes of them), super-frames go out whole
    /// (`takes_gso`), and everything else complete.
    pub fn tunneled(self, tunnel: super::Tunnel) -> MemoryPort {
        MemoryPort {
            tunnel: Some(tunnel),
            ..self
        }
    }
}

impl MemoryPortHandle {
    pub fn inject(&self, frame: &[u8]) {
        self.inject_with(VnetHeader::default(), frame);
    }

    pub fn inject_with(&self, vnet: VnetHeader, frame: &[u8]) {
        self.queues
            .lock()
            .unwrap()
            .inbound
            .push_back((vnet, frame.to_vec()));
    }

    /// Frames sent out of this port since the last call.
    pub fn take_sent(&self) -> Vec<(VnetHeader, Vec<u8>)> {
        std::mem::take(&mut self.queues.lock().unwrap().outbound)
    }

    pub fn pending_inbound(&self) -> usize {
        self.queues.lock().unwrap().inbound.len()
    }
}

impl Port for MemoryPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Memory
    }

    fn vnet_hdr(&self) -> bool {
        self.vnet
    }

    fn takes_gso(&self) -> bool {
        self.vnet || self.tunnel.is_some()
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, PortError> {
        if !self.receives {
            return Ok(0);
        }
        let mut q = self.queues.lock().unwrap();
        let mut n = 0;
        while n < BATCH {
            let Some((vnet, frame)) = q.inbound.pop_front() else {
                break;
            };
            // A port without vnet headers cannot deliver offload metadata; a VXLAN port
            // recovers it from the frame.
            let vnet = if self.vnet || self.tunnel.is_some() {
                vnet
            } else {
                VnetHeader::default()
            };
            batch.fill(n, vnet, &frame);
            n += 1;
        }
        Ok(n)
    }

    fn send_batch(&mut self, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
        let mut q = self.queues.lock().unwrap();
        for f in frames {
            q.outbound.push((f.vnet, f.data.to_vec()));
        }
        let sent_bytes = frames.iter().map(|f| f.data.len() as u64).sum();
        Ok(SendReport {
            sent: frames.len(),
            sent_bytes,
            ..SendReport::default()
        })
    }

    fn tunnel(&self) -> Option<super::Tunnel> {
        self.tunnel
    }

    fn sender(&self) -> Option<Box<dyn Port>> {
        Some(Box::new(MemoryPort {
            name: self.name.clone(),
            vnet: self.vnet,
            queues: self.queues.clone(),
            receives: false,
            tunnel: self.tunnel,
        }))
    }
}

/// A port that accepts and discards everything it is sent, counting frames: the cheapest possible
/// egress, so benchmarks measure the pipeline and not the port.
pub struct SinkPort {
    name: String,
    vnet: bool,
    pub sent: u64,
}

impl SinkPort {
    pub fn new(name: &str, vnet: bool) -> SinkPort {
        SinkPort {
            name: name.to_string(),
            vnet,
            sent: 0,
        }
    }
}

impl Port for SinkPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Memory
    }

    fn vnet_hdr(&self) -> bool {
        self.vnet
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    fn recv_batch(&mut self, _batch: &mut RxBatch) -> Result<usize, PortError> {
        Ok(0)
    }

    fn send_batch(&mut self, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
        self.sent += frames.len() as u64;
        let sent_bytes = frames.iter().map(|f| f.data.len() as u64).sum();
        Ok(SendReport {
            sent: frames.len(),
            sent_bytes,
            ..SendReport::default()
        })
    }
}
