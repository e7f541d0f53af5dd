//! `Effects`: what stages ask of the engine, and the one input that varies per stage call.
//!
//! Stages never change a table: a MAC to learn, an address conflict to report, a neighbour learned
//! on the uplink, a next hop to resolve are `TableUpdates` the engine applies right after the stage
//! returns (skipped in a what-if trace, so the same stage code can run dry). `nat` leaves the
//! translation or answer it decided here with `Verdict::Handled`; `icc` reads the egress port it
//! decides for and leaves the link rule that allowed the copy, for traces.

use std::net::Ipv4Addr;

use super::nat::NatAction;
use crate::table::{LearnAction, LinkRule};
use crate::{DomainId, MacAddr, PortId, VlanId};

/// A MAC table update a stage asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnEffect {
    pub action: LearnAction,
    pub domain: DomainId,
    pub vlan: VlanId,
    pub mac: MacAddr,
    pub port: PortId,
}

/// Table changes asked for by one stage call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableUpdates {
    /// `l2-learn`: learn, refresh or move the source MAC.
    pub learn: Option<LearnEffect>,
    /// `address-conflict`: another host claims a local container's address.
    pub conflict: Option<(Ipv4Addr, MacAddr)>,
    /// `nat`: a neighbour learned on the uplink from ARP.
    pub neighbor: Option<(Ipv4Addr, MacAddr)>,
    /// `nat`: ask the uplink who has this next hop (its MAC is unknown).
    pub resolve: Option<Ipv4Addr>,
}

/// Written by stages, read and applied by the engine. Fields are private so that every table
/// change also marks the effects pending: the engine checks one flag per stage call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effects {
    egress: PortId,
    updates: TableUpdates,
    pending: bool,
    link: Option<LinkRule>,
    nat: Option<NatAction>,
}

impl Default for Effects {
    fn default() -> Self {
        Effects {
            egress: PortId(0),
            updates: TableUpdates::default(),
            pending: false,
            link: None,
            nat: None,
        }
    }
}

impl Effects {
    /// The egress port a `PerEgress` stage decides for (set by the engine before each copy).
    #[inline]
    pub fn egress(&self) -> PortId {
        self.egress
    }

    #[inline]
    pub fn set_egress(&mut self, port: PortId) {
        self.egress = port;
    }

    #[inline]
    pub fn set_learn(&mut self, learn: LearnEffect) {
        self.updates.learn = Some(learn);
        self.pending = true;
    }

    #[inline]
    pub fn set_conflict(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        self.updates.conflict = Some((ip, mac));
        self.pending = true;
    }

    #[inline]
    pub fn set_neighbor(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        self.updates.neighbor = Some((ip, mac));
        self.pending = true;
    }

    #[inline]
    pub fn set_resolve(&mut self, ip: Ipv4Addr) {
        self.updates.resolve = Some(ip);
        self.pending = true;
    }

    /// The table changes not yet taken by the engine.
    pub fn updates(&self) -> &TableUpdates {
        &self.updates
    }

    /// Whether a stage asked for a table change since the engine last took them.
    #[inline(always)]
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// The table changes asked for, which the engine now applies; none remain pending.
    pub fn take_updates(&mut self) -> TableUpdates {
        self.pending = false;
        std::mem::take(&mut self.updates)
    }

    /// `icc`: the link rule that let the copy through (`None`: icc did not apply to it).
    #[inline]
    pub fn set_link(&mut self, rule: Option<LinkRule>) {
        self.link = rule;
    }

    pub fn link(&self) -> Option<LinkRule> {
        self.link
    }

    /// `nat`: what the engine carries out for a `Verdict::Handled`.
    pub fn set_nat(&mut self, action: NatAction) {
        self.nat = Some(action);
    }

    pub fn nat(&self) -> Option<&NatAction> {
        self.nat.as_ref()
    }

    pub fn take_nat(&mut self) -> Option<NatAction> {
        self.nat.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_change_is_pending_until_taken() {
        let mut fx = Effects::default();
        assert!(!fx.pending());
        fx.set_link(None);
        fx.set_egress(PortId(3));
        assert!(!fx.pending(), "inputs and trace data are not table changes");
        fx.set_resolve(Ipv4Addr::new(10, 0, 0, 1));
        assert!(fx.pending());
        let u = fx.take_updates();
        assert_eq!(u.resolve, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!fx.pending());
        assert_eq!(fx.updates(), &TableUpdates::default());
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        fx.set_conflict(Ipv4Addr::new(10, 0, 0, 2), mac);
        fx.set_neighbor(Ipv4Addr::new(10, 0, 0, 3), mac);
        assert!(fx.pending());
        assert_eq!(fx.egress(), PortId(3));
    }
}
