//! Per-port counters. Plain integers owned by the engine thread; copied out in snapshots.

use crate::stage::DropReason;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Received frames that carried a GSO super-frame (each counts once in rx_packets).
    pub rx_gso: u64,
    /// Super-frames this port could not take whole and that were segmented in software for it.
    pub tx_segmented: u64,
    /// Checksum-partial frames completed in software for this port.
    pub tx_csum_finished: u64,
    /// Drops by reason: ingress reasons count on the port a frame came from, egress reasons on the
    /// port it was to leave by.
    pub drops: [u64; DropReason::COUNT],
}

impl Default for PortCounters {
    fn default() -> Self {
        PortCounters {
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            rx_gso: 0,
            tx_segmented: 0,
            tx_csum_finished: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl PortCounters {
    /// Adds another worker's counts for the same port.
    pub fn add(&mut self, other: &PortCounters) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.rx_gso += other.rx_gso;
        self.tx_segmented += other.tx_segmented;
        self.tx_csum_finished += other.tx_csum_finished;
        for (d, o) in self.drops.iter_mut().zip(other.drops.iter()) {
            *d += o;
        }
    }

    pub fn drop(&mut self, reason: DropReason, n: u64) {
        self.drops[reason.index()] += n;
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Non-zero drop counters with their reasons.
    pub fn drop_reasons(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.drops[r.index()]))
            .filter(|(_, n)| *n > 0)
    }
}
