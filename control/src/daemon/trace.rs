//! Tracing requests: live traces (`trace add/show/clear`), captures, and what-if packets (a frame
//! built from a flow spec run through the real tables; nothing is sent). Targets are resolved
//! from the state; what comes back is named from it.

use std::net::Ipv4Addr;

use dataplane::MacAddr;
use dataplane::{Capture, Captured, Filter, TraceArm, TraceTarget};

use super::server::CAPTURE_SNAPLEN;
use super::system::CaptureStop;
use super::{failed, Daemon};
use crate::api::{ApiError, Response};
use crate::flow::{FlowSpec, Proto};
use crate::render::trace;

impl Daemon {
    /// `trace add`: traces the next `count` packets entering `target`.
    pub(super) fn trace_add(
        &mut self,
        target: &str,
        count: u32,
        filter: Option<&str>,
    ) -> Result<Response, ApiError> {
        let (target, _) = self.system.resolve(&self.state, target).ok_or_else(|| {
            ApiError::bad_input(format!(
                "no port or network named '{target}': give a container (web, web:eth1), a network, host:NETWORK, uplink, or an interface"
            ))
        })?;
        if count == 0 {
            return Err(ApiError::bad_input("trace count must be at least 1"));
        }
        let filter = parse_filter(filter)?;
        self.system
            .trace_arm(TraceArm {
                target,
                remaining: count,
                filter,
            })
            .map_err(failed)?;
        Ok(Response::Done)
    }

    /// `trace show`: the records so far, named from the state.
    pub(super) fn trace_show(&self) -> Result<Response, ApiError> {
        let records = self.system.trace_show().map_err(failed)?;
        let names = self.system.names(&self.state);
        Ok(Response::Traces(
            records.iter().map(|r| trace::view(r, &names)).collect(),
        ))
    }

    pub(super) fn trace_clear(&self) -> Result<Response, ApiError> {
        self.system.trace_clear().map_err(failed)?;
        Ok(Response::Done)
    }

    /// Arms a capture on `target`; the caller streams what comes out of the returned channel.
    pub(super) fn start_capture(
        &mut self,
        target: &str,
        count: Option<u64>,
        filter: Option<&str>,
    ) -> Result<(crossbeam_channel::Receiver<Captured>, CaptureStop), ApiError> {
        let (target, _) = self.system.resolve(&self.state, target).ok_or_else(|| {
            ApiError::bad_input(format!(
                "no port or network named '{target}': give a container (web, web:eth1), a network, host:NETWORK, uplink, or an interface"
            ))
        })?;
        if count == Some(0) {
            return Err(ApiError::bad_input("capture count must be at least 1"));
        }
        let filter = parse_filter(filter)?;
        let (tx, rx) = crossbeam_channel::bounded(8192);
        let (_, stop) = self
            .system
            .capture_start(Capture {
                target,
                filter,
                remaining: count.unwrap_or(u64::MAX),
                snaplen: CAPTURE_SNAPLEN as usize,
                sink: tx,
                dropped: 0,
            })
            .map_err(failed)?;
        Ok((rx, stop))
    }

    /// A what-if trace: the flow's frame (MACs filled in from the state when left out) run
    /// through the real tables, entering at `input`.
    pub(super) fn trace_packet(&mut self, input: &str, spec: &str) -> Result<Response, ApiError> {
        let flow = FlowSpec::parse(spec)?;
        let (target, own_mac) = self.system.resolve(&self.state, input).ok_or_else(|| {
            ApiError::bad_input(format!(
                "no port named '{input}': give a container (web, web:eth1), host:NETWORK, uplink, or an interface"
            ))
        })?;
        let TraceTarget::Port(port) = target else {
            return Err(ApiError::bad_input(format!(
                "'{input}' is a network: a packet enters through one port (a container, host:NETWORK or uplink)"
            )));
        };
        let dst_ip = flow.dst.expect("checked by parse");
        // A packet entering from the uplink comes from the world, to the uplink's MAC.
        let from_world = self.system.is_uplink(port);
        let someone = MacAddr([0x02, 0, 0, 0, 0, 1]);
        let smac = match (flow.smac, from_world) {
            (Some(m), _) => m,
            (None, true) => someone,
            (None, false) => own_mac.unwrap_or(someone),
        };
        let dmac = match (flow.dmac, from_world, own_mac) {
            (Some(m), _, _) => m,
            (None, true, Some(uplink_mac)) if flow.proto != Proto::Arp => uplink_mac,
            _ => self.guess_dst_mac(input, dst_ip, flow.proto),
        };
        let frame = flow.frame(smac, dmac);
        let record = self.system.trace_packet(port, frame).map_err(failed)?;
        let names = self.system.names(&self.state);
        Ok(Response::Traces(vec![trace::view(&record, &names)]))
    }

    /// The MAC a sender would use for `dst`: the owner's if on the sender's network (on this
    /// host, or on another host of an overlay network), else the gateway's; broadcast for ARP
    /// or when nothing is known.
    fn guess_dst_mac(&self, input: &str, dst: Ipv4Addr, proto: Proto) -> MacAddr {
        if proto == Proto::Arp {
            return MacAddr::BROADCAST;
        }
        let (cname, ifname) = input.split_once(':').unwrap_or((input, "eth0"));
        let network = self
            .state
            .containers
            .get(cname)
            .and_then(|c| c.endpoints.iter().find(|e| e.interface == ifname))
            .map(|e| e.network.clone())
            .or_else(|| input.strip_prefix("host:").map(str::to_string));
        for c in self.state.containers.values() {
            for e in &c.endpoints {
                if e.ip == dst && network.as_deref().is_none_or(|n| n == e.network) {
                    return e.mac;
                }
            }
        }
        if let Some(n) = network.and_then(|n| self.state.networks.get(&n)) {
            return self.system.remote_mac(&n.name, dst).unwrap_or(n.host_mac);
        }
        MacAddr::BROADCAST
    }
}

/// A tcpdump-like filter expression; blank means none.
fn parse_filter(filter: Option<&str>) -> Result<Option<Filter>, ApiError> {
    match filter.map(str::trim) {
        Some(f) if !f.is_empty() => Filter::parse(f)
            .map(Some)
            .map_err(|e| ApiError::bad_input(e.to_string())),
        _ => Ok(None),
    }
}
