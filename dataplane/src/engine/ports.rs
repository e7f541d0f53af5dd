//! The port registry: attaching and detaching ports, the bridge domains' member lists (the flood
//! lists), and the per-port kernel drop counts.

use mio::unix::SourceFd;
use mio::{Interest, Token};

use super::{Engine, EngineError, PortCounters, PortSlot, MAX_PORTS};
use crate::port::Port;
use crate::stage::DropReason;
use crate::table::PortRole;
use crate::{DomainId, PortId};

impl Engine {
    pub(super) fn port_up(&self, id: PortId) -> bool {
        self.ports
            .get(id.0 as usize)
            .and_then(|s| s.as_ref())
            .is_some_and(|s| s.io.is_some())
    }

    /// Attaches a port to a bridge domain and starts polling it, with no policy (`PortRole::Plain`).
    pub fn add_port(
        &mut self,
        port: Box<dyn Port>,
        domain: DomainId,
    ) -> Result<PortId, EngineError> {
        self.add_port_as(port, domain, PortRole::Plain)
    }

    /// Attaches a port with its policy role in place before its first frame is read, so a
    /// container's port is never, even briefly, unchecked.
    pub fn add_port_as(
        &mut self,
        port: Box<dyn Port>,
        domain: DomainId,
        role: PortRole,
    ) -> Result<PortId, EngineError> {
        let index = match self.ports.iter().position(|s| s.is_none()) {
            Some(i) => i,
            None if self.ports.len() < MAX_PORTS => self.ports.len(),
            None => return Err(EngineError::TooManyPorts(MAX_PORTS)),
        };
        self.add_port_at(PortId(index as u16), port, domain, role)
    }

    /// Attaches a port under a given id (free here): another worker's port, whose sender this is.
    pub(super) fn add_port_at(
        &mut self,
        id: PortId,
        port: Box<dyn Port>,
        domain: DomainId,
        role: PortRole,
    ) -> Result<PortId, EngineError> {
        let index = id.0 as usize;
        if index >= MAX_PORTS {
            return Err(EngineError::TooManyPorts(MAX_PORTS));
        }
        if self.ports.len() <= index {
            self.ports.resize_with(index + 1, || None);
        }
        if self.ports[index].is_some() {
            return Err(EngineError::IdTaken(id));
        }
        if let Some(fd) = port.raw_fd() {
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), Token(index), Interest::READABLE)
                .map_err(|source| EngineError::Register {
                    name: port.name().to_string(),
                    source,
                })?;
            // Frames may already be queued; an edge-triggered registration would not report them.
            self.ready[index] = true;
        }
        self.ports[index] = Some(PortSlot {
            name: port.name().to_string(),
            kind: port.kind(),
            vnet_hdr: port.vnet_hdr(),
            takes_gso: port.takes_gso(),
            mac: port.mac(),
            tunnel: port.tunnel(),
            domain,
            counters: PortCounters::default(),
            io: Some(port),
        });
        self.tables.policy.set_role(id, role);
        self.rebuild_domains();
        Ok(id)
    }

    /// Detaches a port: forgets its MACs, stops polling, closes it.
    pub fn remove_port(&mut self, id: PortId) -> Result<(), EngineError> {
        let slot = self
            .ports
            .get_mut(id.0 as usize)
            .and_then(|s| s.take())
            .ok_or(EngineError::NoSuchPort(id))?;
        if let Some(port) = slot.io {
            self.deregister(port.as_ref());
        }
        self.forget_port(id);
        Ok(())
    }

    /// The interface behind a port disappeared: keep its name and counters, drop everything else.
    pub(super) fn port_gone(&mut self, id: PortId) {
        let Some(slot) = self.ports.get_mut(id.0 as usize).and_then(|s| s.as_mut()) else {
            return;
        };
        if let Some(port) = slot.io.take() {
            tracing::warn!(port = %slot.name, "interface disappeared; port detached, switch keeps running");
            self.deregister(port.as_ref());
        }
        self.forget_port(id);
    }

    fn deregister(&self, port: &dyn Port) {
        if let Some(fd) = port.raw_fd() {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    fn forget_port(&mut self, id: PortId) {
        self.tables.cam.flush_port(id);
        self.tables.policy.set_role(id, PortRole::Plain);
        self.ready[id.0 as usize] = false;
        self.tx[id.0 as usize].len = 0;
        self.rebuild_domains();
    }

    fn rebuild_domains(&mut self) {
        for members in &mut self.domains {
            members.clear();
        }
        for (i, slot) in self.ports.iter().enumerate() {
            let Some(slot) = slot.as_ref().filter(|s| s.io.is_some()) else {
                continue;
            };
            let d = slot.domain.0 as usize;
            if self.domains.len() <= d {
                self.domains.resize_with(d + 1, Vec::new);
            }
            self.domains[d].push(PortId(i as u16));
        }
    }

    /// Moves the kernel's per-port drop counts into our counters (so a snapshot is complete).
    pub(super) fn collect_overruns(&mut self) {
        for slot in self.ports.iter_mut().flatten() {
            if let Some(port) = slot.io.as_mut() {
                let lost = port.take_overruns();
                slot.counters.drop(DropReason::RxOverrun, lost);
            }
        }
    }
}
