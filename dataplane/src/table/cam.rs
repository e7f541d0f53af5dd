//! The MAC learning table (CAM): on which port a (bridge domain, VLAN, MAC address) was last seen.
//!
//! **What it decides.** Given a frame's source address and ingress port, [`CamTable::learn`] decides
//! whether to record, refresh or move an entry, and — when a limit is hit — which entry to evict.
//! Given a destination, [`CamTable::lookup`] answers the egress port (or `None`: flood). Static entries
//! added by the control plane pin an address to a port: they are never aged, evicted or moved by
//! learning, and a frame claiming a pinned address from another port is reported as a
//! [`LearnOutcome::StaticConflict`] so the caller can drop it (this is how a container's MAC is
//! protected from being stolen by a neighbour spoofing it).
//!
//! **What it assumes.** The table is owned by one thread (the engine); there are no locks and lookups
//! take `&self`. Time is engine time in milliseconds supplied by the caller as `now`, and it is
//! monotonic (never decreases); a `now` earlier than an entry's `last_seen` is treated as "zero
//! elapsed". Entries stay visible to `lookup` until [`CamTable::age`] removes them, so the caller runs
//! `age` periodically (e.g. once a second); an entry can outlive `aging_ms` by that interval. Only the
//! low 12 bits of a `VlanId` are part of the key. Group (multicast/broadcast) and all-zero source
//! addresses are never learned, as in the Linux bridge.
//!
//! **Trade-offs.**
//! - *Eviction order.* Each port keeps its dynamic entries on an LRU list (least recently learned or
//!   refreshed at the head). A port at `max_per_port` evicts its own least recently used entry. A full
//!   table evicts the least recently used entry *of the port holding the most dynamic entries*, not the
//!   globally oldest one: a port flooding random source MACs ends up evicting its own entries, while
//!   quiet ports keep theirs. Ties between equally large ports are broken arbitrarily (the port that
//!   most recently reached that count). Ports are indexed by count in O(1) buckets, so every learn is
//!   O(1) even during a flood; aging is O(expired + ports).
//! - *Refresh granularity.* Seeing a known address on the same port only rewrites `last_seen` and
//!   relinks the LRU list when at least [`REFRESH_GRANULARITY_MS`] have passed since the last refresh;
//!   otherwise `learn` is a read-only hash probe. The cost is that LRU order and aging are accurate to
//!   about one second: an entry may be aged up to that much early.
//! - *Hasher.* Keys are packed into integers (`mac | vlan << 48`, plus the domain) and hashed with a
//!   murmur3 `fmix64` finaliser over the packed key xor a per-table random seed (drawn once from std's
//!   `RandomState`). That is a handful of cycles instead of SipHash's tens, which matters because
//!   `lookup` runs for every frame. MAC addresses are attacker controlled, so the seed matters: without
//!   it an attacker could precompute addresses that all land in one probe sequence. Within a domain the
//!   packing and `fmix64` are bijective, so distinct keys never share a full 64-bit hash; only
//!   home lines can collide, and where they do depends on the secret seed. This is not a keyed PRF
//!   like SipHash — an attacker able to time many lookups could in principle learn something about
//!   the seed — but the damage is bounded anyway: the table never holds more than `max_entries`
//!   entries and one port never more than `max_per_port` dynamic ones.
//! - *One line per lookup.* The keys live in a [`LineTable`] (line_table.rs): 64-byte lines of four
//!   16-byte slots, each slot the whole key (packed address and domain) with the entry's port, its
//!   static flag and its node in the slab; linear probing by line, backward-shift deletion, at
//!   most a quarter full. A lookup reads the key's home line and nothing else (0.4% of keys sit in
//!   the next line), so at a million entries it is one cache miss, and a batch's misses overlap
//!   ([`CamTable::lookup_batch`], the engine's prefetch pass; bench/RESULTS.md "One line per
//!   lookup"). The node (32 bytes: key, time stamp, LRU links, port, kind) is what learning, aging
//!   and eviction walk; a learn reads it only for an address seen again on its own port (the
//!   refresh check), so that pass prefetches it ([`CamTable::prefetch_entry`]). History: a `std`
//!   `HashMap` (144 bytes an entry, buckets not addressable ahead of the probe), then the
//!   connection table's 8-byte hash-fragment index (72 bytes, but a hit read the bucket and then
//!   the node to compare the key: two dependent misses).
//! - *Memory.* Everything is sized at construction (node slab capacity, a line per entry), so
//!   learning does not allocate: 64 + 32 = 96 bytes an entry at 2^20; both allocations ask for
//!   transparent huge pages (huge_pages.rs), the lines are allocated zeroed (untouched pages are not
//!   resident). The one exception is the per-port array, which grows the first time a port id
//!   beyond its length is seen — rare, and bounded by 65 536 ports.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use super::hash::FastHash;
use super::huge_pages::advise_huge_pages;
use super::line_table::{LineTable, Slot};
use super::lru::{list_push_back, list_unlink, Links, List, NIL};
use super::prefetch::prefetch;

use crate::ids::{DomainId, PortId, VlanId};
use crate::wire::MacAddr;

/// A known address seen on its own port again is only refreshed (timestamp rewritten, LRU relinked)
/// once this many milliseconds have passed since the last refresh. Keeps the per-frame cost of
/// `learn` for chatty hosts at one read-only hash probe.
pub const REFRESH_GRANULARITY_MS: u64 = 1000;

/// Largest accepted `CamConfig::max_entries`. Node indices are `u32`, and the table preallocates.
pub const MAX_ENTRIES_LIMIT: usize = 1 << 24;

/// Limits of one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CamConfig {
    /// Entries (dynamic and static) the table can hold.
    pub max_entries: usize,
    /// Dynamic entries one port can hold; learning beyond this evicts the port's own LRU entry.
    pub max_per_port: usize,
    /// A dynamic entry not refreshed for longer than this is removed by `CamTable::age`.
    pub aging_ms: u64,
}

impl Default for CamConfig {
    fn default() -> Self {
        CamConfig {
            max_entries: 8192,
            max_per_port: 4096,
            aging_ms: 300_000,
        }
    }
}

/// What went wrong configuring the table or adding a static entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CamError {
    #[error("invalid CAM config: {field} = {value}: {reason}")]
    InvalidConfig {
        field: &'static str,
        value: usize,
        reason: &'static str,
    },
    #[error(
        "cannot add static entry {mac} (domain {domain}, vlan {vlan}) -> port {port}: the table is full \
         ({max_entries} entries) and every entry is static, so there is nothing to evict"
    )]
    Full {
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
        port: PortId,
        max_entries: usize,
    },
    #[error(
        "cannot add static entry {mac} (domain {domain}, vlan {vlan}) -> port {requested}: it is already \
         pinned to port {existing}; remove that static entry first"
    )]
    StaticConflict {
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
        existing: PortId,
        requested: PortId,
    },
    #[error(
        "cannot add static entry {mac} (domain {domain}, vlan {vlan}) -> port {port}: group (multicast or \
         broadcast) and all-zero addresses are never forwarded by lookup"
    )]
    InvalidMac {
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
        port: PortId,
    },
}

/// Why `learn` did not record an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The source address is a group (multicast/broadcast) or all-zero address; no host owns it.
    InvalidSource,
    /// The table holds `max_entries` entries and all of them are static.
    TableFull,
}

/// Why an entry was evicted to make room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictReason {
    /// The learning port held `max_per_port` dynamic entries; its own LRU entry went.
    PortLimit,
    /// The table held `max_entries` entries; the LRU entry of the port with the most dynamic entries went.
    TableFull,
}

/// An entry removed to make room for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eviction {
    pub domain: DomainId,
    pub vlan: VlanId,
    pub mac: MacAddr,
    pub port: PortId,
    pub reason: EvictReason,
}

/// What [`CamTable::learn`] would do, computed without mutating ([`CamTable::classify_learn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnAction {
    /// Already known on this port and refreshed recently (or pinned here statically): nothing to write.
    None,
    /// Known on this port; the timestamp is old enough to be rewritten.
    Refresh,
    /// Not known; a new entry would be created (possibly evicting another).
    New,
    /// Known dynamically on another port; the entry would move here.
    Move { from: PortId },
    /// Pinned statically to another port; nothing changes and the caller should drop the frame.
    StaticConflict,
    /// The address cannot be learned.
    Reject(RejectReason),
}

/// What [`CamTable::learn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnOutcome {
    /// Nothing written (see [`LearnAction::None`]).
    Unchanged,
    /// `last_seen` rewritten and the entry made most recently used on its port.
    Refreshed,
    /// A new entry was created; `evicted` is the entry removed to make room, if any.
    Learned { evicted: Option<Eviction> },
    /// The entry moved from another port; `evicted` is the entry of the new port removed to make room.
    Moved {
        from: PortId,
        evicted: Option<Eviction>,
    },
    /// Pinned statically to `static_port`; not moved. The caller should drop the frame.
    StaticConflict { static_port: PortId },
    /// Not recorded.
    Rejected(RejectReason),
}

/// One entry, as returned by [`CamTable::peek`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg(test)]
pub struct CamEntryInfo {
    pub port: PortId,
    /// Engine time (ms) of the last learn or refresh; 0 for static entries, which are never refreshed.
    pub last_seen: u64,
    pub is_static: bool,
}

/// One entry with its key, as yielded by [`CamTable::iter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CamEntryView {
    pub domain: DomainId,
    pub vlan: VlanId,
    pub mac: MacAddr,
    pub port: PortId,
    pub last_seen: u64,
    pub is_static: bool,
}

/// Event counters since the table was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CamStats {
    /// New entries created by learning.
    pub learned: u64,
    /// Dynamic entries moved to another port by learning.
    pub moved: u64,
    /// Entries evicted because their port hit `max_per_port`.
    pub evicted_port_limit: u64,
    /// Entries evicted because the table hit `max_entries` (including to make room for a static entry).
    pub evicted_table_full: u64,
    /// Entries removed by aging.
    pub aged: u64,
    /// Frames whose source address is pinned statically to another port.
    pub static_conflicts: u64,
    /// Source addresses not learned (invalid, or table full of static entries).
    pub rejected: u64,
}

const VLAN_MASK: u16 = 0x0fff;
/// Odd constant (2^64 / golden ratio) spreading the domain id over all 64 bits before it is folded into
/// the packed address; xor with a constant keeps the fold bijective within one domain.
const DOMAIN_SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// The packed key: `addr` = MAC in the low 48 bits, VLAN (12 bits) above it. 16 bytes with padding.
#[derive(Clone, Copy, PartialEq, Eq)]
struct CamKey {
    addr: u64,
    domain: u16,
}

impl CamKey {
    #[inline]
    fn new(domain: DomainId, vlan: VlanId, mac: MacAddr) -> CamKey {
        CamKey {
            addr: mac.to_u64() | (u64::from(vlan.0 & VLAN_MASK) << 48),
            domain: domain.0,
        }
    }

    fn domain(self) -> DomainId {
        DomainId(self.domain)
    }

    fn vlan(self) -> VlanId {
        VlanId((self.addr >> 48) as u16)
    }

    fn mac(self) -> MacAddr {
        MacAddr::from_bytes(&self.addr.to_be_bytes()[2..])
    }
}

impl Hash for CamKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // One write of one word: the hasher's whole cost is a single finaliser.
        state.write_u64(self.addr ^ u64::from(self.domain).wrapping_mul(DOMAIN_SPREAD));
    }
}

/// The table's slot for a key (line_table.rs): the packed address, then the domain, the port,
/// the node and whether the entry is static, so that a lookup reads nothing else. The address
/// carries a MAC that is never zero (zero and group addresses are not learned), so a full slot
/// is never the empty one.
#[inline(always)]
fn slot_of(key: CamKey, port: PortId, node: u32, is_static: bool) -> Slot {
    [
        key.addr,
        u64::from(key.domain)
            | u64::from(port.0) << 16
            | u64::from(node) << 32
            | u64::from(is_static) << 63,
    ]
}

#[inline(always)]
fn slot_key(slot: Slot) -> CamKey {
    CamKey {
        addr: slot[0],
        domain: slot[1] as u16,
    }
}

#[inline(always)]
fn slot_port(slot: Slot) -> PortId {
    PortId((slot[1] >> 16) as u16)
}

#[inline(always)]
fn slot_node(slot: Slot) -> u32 {
    (slot[1] >> 32) as u32 & !(1 << 31)
}

#[inline(always)]
fn slot_is_static(slot: Slot) -> bool {
    slot[1] >> 63 != 0
}

// Every node index fits below the slot's static bit.
const _: () = assert!(MAX_ENTRIES_LIMIT <= 1 << 31);

/// One entry in the slab; `prev`/`next` link it into its port's dynamic (LRU) or static list, or, when
/// free, `next` links the free list. The key's two halves are kept apart (not a `CamKey`) so the
/// node is 32 bytes, not 40. `port` and `is_static` are also in the entry's slot, for lookups;
/// the two always agree (`check_invariants`).
#[derive(Clone, Copy)]
struct Node {
    addr: u64,
    last_seen: u64,
    prev: u32,
    next: u32,
    domain: u16,
    port: PortId,
    is_static: bool,
    live: bool,
}

impl Node {
    fn key(&self) -> CamKey {
        CamKey {
            addr: self.addr,
            domain: self.domain,
        }
    }
}

impl Links for Node {
    fn prev(&self) -> u32 {
        self.prev
    }
    fn next(&self) -> u32 {
        self.next
    }
    fn set_links(&mut self, prev: u32, next: u32) {
        self.prev = prev;
        self.next = next;
    }
}

/// Per-port state: its dynamic entries in LRU order, its static entries, and its place in the
/// count bucket holding every port with the same number of dynamic entries.
#[derive(Clone, Copy)]
struct PortState {
    dynamic: List,
    statics: List,
    bucket_prev: u32,
    bucket_next: u32,
}

impl PortState {
    const EMPTY: PortState = PortState {
        dynamic: List::EMPTY,
        statics: List::EMPTY,
        bucket_prev: NIL,
        bucket_next: NIL,
    };
}

/// Port slots allocated up front; covers typical hosts so the per-port array rarely grows.
const INITIAL_PORTS: usize = 256;

/// The MAC learning table. See the module documentation.
pub struct CamTable {
    /// Every key with its port, static flag and node, one 16-byte slot each (line_table.rs).
    slots: LineTable,
    hasher: FastHash,
    nodes: Vec<Node>,
    /// Live nodes.
    len: usize,
    free_head: u32,
    ports: Vec<PortState>,
    /// `buckets[c]` heads the list of ports holding exactly `c` dynamic entries (`c >= 1`); a port
    /// holding none is in no bucket. Counts move by one at a time, so `max_bucket` is kept in O(1).
    buckets: Vec<u32>,
    /// Largest `c` with a non-empty bucket; 0 when there are no dynamic entries.
    max_bucket: u32,
    dynamic_len: usize,
    max_per_port: u32,
    config: CamConfig,
    stats: CamStats,
}

impl fmt::Debug for CamTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CamTable")
            .field("len", &self.len())
            .field("dynamic_len", &self.dynamic_len)
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Default for CamTable {
    fn default() -> Self {
        CamTable::new(CamConfig::default())
    }
}

impl CamConfig {
    /// Checks the limits `CamTable::try_new` accepts (`max_entries` in 1..=`MAX_ENTRIES_LIMIT`,
    /// `max_per_port` at least 1); the control plane calls this to reject bad settings with a message.
    pub fn validate(&self) -> Result<(), CamError> {
        if self.max_entries == 0 || self.max_entries > MAX_ENTRIES_LIMIT {
            return Err(CamError::InvalidConfig {
                field: "max_entries",
                value: self.max_entries,
                reason: "must be between 1 and 16777216",
            });
        }
        if self.max_per_port == 0 {
            return Err(CamError::InvalidConfig {
                field: "max_per_port",
                value: 0,
                reason: "must be at least 1, or no port could learn",
            });
        }
        Ok(())
    }
}

impl CamTable {
    /// A table with the given limits, fully preallocated. Out-of-range limits are clamped into the
    /// range `CamConfig::validate` accepts (the engine must come up); `CamTable::config` reports
    /// what is in effect. Use `CamTable::try_new` to refuse them instead.
    pub fn new(config: CamConfig) -> CamTable {
        let config = CamConfig {
            max_entries: config.max_entries.clamp(1, MAX_ENTRIES_LIMIT),
            max_per_port: config.max_per_port.max(1),
            aging_ms: config.aging_ms,
        };
        CamTable::build(config)
    }

    /// A table with the given limits, or the reason they are invalid.
    #[cfg(test)]
    pub fn try_new(config: CamConfig) -> Result<CamTable, CamError> {
        config.validate()?;
        Ok(CamTable::build(config))
    }

    fn build(config: CamConfig) -> CamTable {
        // A port can never hold more dynamic entries than the table, so that bounds the buckets too.
        let max_per_port = config.max_per_port.min(config.max_entries) as u32;
        let nodes = Vec::with_capacity(config.max_entries);
        advise_huge_pages(&nodes);
        CamTable {
            // Never grows, has no tombstones, a quarter full at most (line_table.rs).
            slots: LineTable::for_keys(config.max_entries),
            hasher: FastHash::random(),
            nodes,
            len: 0,
            free_head: NIL,
            ports: vec![PortState::EMPTY; INITIAL_PORTS],
            buckets: vec![NIL; max_per_port as usize + 1],
            max_bucket: 0,
            dynamic_len: 0,
            max_per_port,
            config,
            stats: CamStats::default(),
        }
    }

    #[cfg(test)]
    pub fn config(&self) -> &CamConfig {
        &self.config
    }

    pub fn aging_ms(&self) -> u64 {
        self.config.aging_ms
    }

    /// Changes the aging time; takes effect at the next [`CamTable::age_at_most`].
    pub fn set_aging_ms(&mut self, ms: u64) {
        self.config.aging_ms = ms;
    }

    /// The port `mac` was learned on (or pinned to) in `domain`/`vlan`. `None` means unknown: flood.
    /// Reads one line of the table (the key's slot holds the port).
    #[inline]
    pub fn lookup(&self, domain: DomainId, vlan: VlanId, mac: MacAddr) -> Option<PortId> {
        let key = CamKey::new(domain, vlan, mac);
        self.find(key, self.hash(key))
            .map(|(_, slot)| slot_port(slot))
    }

    #[inline(always)]
    fn hash(&self, key: CamKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Asks the CPU to start loading the line a lookup or learn of `mac` in `domain`/`vlan`
    /// reads first: all a lookup reads, and the first of a learn's two prefetch passes (then
    /// [`CamTable::prefetch_entry`]). A hint only; nothing changes.
    #[inline]
    pub fn prefetch(&self, domain: DomainId, vlan: VlanId, mac: MacAddr) {
        self.slots
            .prefetch(self.hash(CamKey::new(domain, vlan, mac)));
    }

    /// The second prefetch pass, for a learn: reads the key's slot (loaded by
    /// [`CamTable::prefetch`] meanwhile) and asks for the node it names, whose time stamp a
    /// learn on the entry's own port compares. A lookup needs no second pass.
    #[inline]
    pub fn prefetch_entry(&self, domain: DomainId, vlan: VlanId, mac: MacAddr) {
        let key = CamKey::new(domain, vlan, mac);
        if let Some((_, slot)) = self.find(key, self.hash(key)) {
            if let Some(node) = self.nodes.get(slot_node(slot) as usize) {
                prefetch(node);
            }
        }
    }

    /// [`CamTable::lookup`] for a batch of keys, software-pipelined so that the batch's cache
    /// misses overlap (`LineTable::pipelined`). Same answers as `lookup` key by key.
    pub fn lookup_batch<const N: usize>(
        &self,
        keys: &[(DomainId, VlanId, MacAddr); N],
    ) -> [Option<PortId>; N] {
        let keys: [CamKey; N] =
            std::array::from_fn(|i| CamKey::new(keys[i].0, keys[i].1, keys[i].2));
        let hashes: [u64; N] = std::array::from_fn(|i| self.hash(keys[i]));
        self.slots.pipelined(&hashes, |i| {
            self.find(keys[i], hashes[i])
                .map(|(_, slot)| slot_port(slot))
        })
    }

    /// The position and slot of `key` (whose hash is `hash`), if present.
    #[inline(always)]
    fn find(&self, key: CamKey, hash: u64) -> Option<(usize, Slot)> {
        self.slots
            .find(hash, key.addr, |slot| slot[1] as u16 == key.domain)
    }

    /// The node of `key`, if present.
    #[inline]
    fn find_node(&self, key: CamKey) -> Option<u32> {
        self.find(key, self.hash(key))
            .map(|(_, slot)| slot_node(slot))
    }

    /// Rewrites the port and static flag in `key`'s slot (present, naming `node`) to the node's.
    fn sync_slot(&mut self, key: CamKey, node: u32) {
        let (pos, _) = self
            .find(key, self.hash(key))
            .expect("a live node is in the table");
        let n = &self.nodes[node as usize];
        self.slots.set(pos, slot_of(key, n.port, node, n.is_static));
    }

    /// The entry for `mac` in `domain`/`vlan`, with its timestamp and kind.
    #[cfg(test)]
    pub fn peek(&self, domain: DomainId, vlan: VlanId, mac: MacAddr) -> Option<CamEntryInfo> {
        let key = CamKey::new(domain, vlan, mac);
        let node = &self.nodes[self.find_node(key)? as usize];
        Some(CamEntryInfo {
            port: node.port,
            last_seen: node.last_seen,
            is_static: node.is_static,
        })
    }

    /// What [`CamTable::learn`] would do with the same arguments, without changing anything.
    #[inline]
    pub fn classify_learn(
        &self,
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
        port: PortId,
        now: u64,
    ) -> LearnAction {
        self.decide(CamKey::new(domain, vlan, mac), mac, port, now)
            .0
    }

    /// Always inlined: `classify_learn` (per packet) then keeps the action in registers and the
    /// unused slot is never built, instead of both going through the stack (a store-forwarding
    /// stall on the path every frame takes).
    #[inline(always)]
    fn decide(
        &self,
        key: CamKey,
        mac: MacAddr,
        port: PortId,
        now: u64,
    ) -> (LearnAction, Option<u32>) {
        if mac.is_multicast() || mac.is_zero() {
            return (LearnAction::Reject(RejectReason::InvalidSource), None);
        }
        match self.find(key, self.hash(key)) {
            Some((_, slot)) => {
                // The slot decides all but a learn on the entry's own port, which compares the
                // node's time stamp.
                let (idx, from) = (slot_node(slot), slot_port(slot));
                let action = if slot_is_static(slot) {
                    if from == port {
                        LearnAction::None
                    } else {
                        LearnAction::StaticConflict
                    }
                } else if from == port {
                    let last_seen = self.nodes[idx as usize].last_seen;
                    if now.saturating_sub(last_seen) >= REFRESH_GRANULARITY_MS {
                        LearnAction::Refresh
                    } else {
                        LearnAction::None
                    }
                } else {
                    LearnAction::Move { from }
                };
                (action, Some(idx))
            }
            // A port at its own limit has dynamic entries, so "room" only fails for a table full of statics.
            None if self.len >= self.config.max_entries && self.dynamic_len == 0 => {
                (LearnAction::Reject(RejectReason::TableFull), None)
            }
            None => (LearnAction::New, None),
        }
    }

    /// Records that `mac` (a frame's source) was seen on `port` at `now`. O(1).
    pub fn learn(
        &mut self,
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
        port: PortId,
        now: u64,
    ) -> LearnOutcome {
        let key = CamKey::new(domain, vlan, mac);
        let (action, found) = self.decide(key, mac, port, now);
        match action {
            LearnAction::None => LearnOutcome::Unchanged,
            LearnAction::Refresh => {
                let idx = found.expect("refresh of a present entry");
                self.nodes[idx as usize].last_seen = now;
                let list = &mut self.ports[port.0 as usize].dynamic;
                if list.tail != idx {
                    list_unlink(&mut self.nodes, list, idx);
                    list_push_back(&mut self.nodes, list, idx);
                }
                LearnOutcome::Refreshed
            }
            LearnAction::Move { from } => {
                let idx = found.expect("move of a present entry");
                self.dyn_unlink(from.0 as usize, idx);
                let p = self.port_index(port);
                // The moving entry is unlinked, so it cannot be its own victim.
                let evicted = if self.ports[p].dynamic.len >= self.max_per_port {
                    Some(self.evict_lru(p, EvictReason::PortLimit))
                } else {
                    None
                };
                let node = &mut self.nodes[idx as usize];
                node.port = port;
                node.last_seen = now;
                self.dyn_push_back(p, idx);
                // After the eviction, which may have moved the slot.
                self.sync_slot(key, idx);
                self.stats.moved += 1;
                LearnOutcome::Moved { from, evicted }
            }
            LearnAction::New => {
                let p = self.port_index(port);
                let evicted = if self.ports[p].dynamic.len >= self.max_per_port {
                    Some(self.evict_lru(p, EvictReason::PortLimit))
                } else if self.len >= self.config.max_entries {
                    // decide() guaranteed a dynamic entry exists, so max_bucket >= 1.
                    let victim = self.buckets[self.max_bucket as usize] as usize;
                    Some(self.evict_lru(victim, EvictReason::TableFull))
                } else {
                    None
                };
                let idx = self.alloc_node(key, port, now, false);
                self.dyn_push_back(p, idx);
                self.stats.learned += 1;
                LearnOutcome::Learned { evicted }
            }
            LearnAction::StaticConflict => {
                self.stats.static_conflicts += 1;
                let idx = found.expect("conflict with a present entry");
                let static_port = self.nodes[idx as usize].port;
                LearnOutcome::StaticConflict { static_port }
            }
            LearnAction::Reject(reason) => {
                self.stats.rejected += 1;
                LearnOutcome::Rejected(reason)
            }
        }
    }

    /// Every dynamic entry due removed at once (tests).
    #[cfg(test)]
    pub fn age(&mut self, now: u64) -> usize {
        self.age_at_most(now, usize::MAX)
    }

    /// Removes dynamic entries not refreshed for more than `aging_ms`, at most `budget` of them;
    /// returns how many. Walks each port's LRU list from its oldest end and stops at the first live
    /// entry, so the cost is O(removed + ports). A million MACs learned in one burst age in one
    /// burst, so the engine passes a budget: `budget` removed means more may be due, and it calls
    /// again soon. Ports are walked in id order from the first each time.
    pub fn age_at_most(&mut self, now: u64, budget: usize) -> usize {
        let mut removed = 0;
        for p in 0..self.ports.len() {
            loop {
                let head = self.ports[p].dynamic.head;
                if head == NIL
                    || removed == budget
                    || now.saturating_sub(self.nodes[head as usize].last_seen)
                        <= self.config.aging_ms
                {
                    break;
                }
                self.remove_node(head);
                removed += 1;
            }
        }
        self.stats.aged += removed as u64;
        removed
    }

    /// Pins `mac` in `domain`/`vlan` to `port`. Replaces a dynamic entry for the same key (wherever it
    /// was learned); when the table is full, evicts a dynamic entry as learning would. Idempotent.
    pub fn add_static(
        &mut self,
        domain: DomainId,
        vlan: VlanId,
        mac: MacAddr,
        port: PortId,
    ) -> Result<(), CamError> {
        if mac.is_multicast() || mac.is_zero() {
            return Err(CamError::InvalidMac {
                domain,
                vlan,
                mac,
                port,
            });
        }
        let key = CamKey::new(domain, vlan, mac);
        let p = self.port_index(port);
        if let Some(idx) = self.find_node(key) {
            let node = self.nodes[idx as usize];
            if node.is_static {
                return if node.port == port {
                    Ok(())
                } else {
                    Err(CamError::StaticConflict {
                        domain,
                        vlan,
                        mac,
                        existing: node.port,
                        requested: port,
                    })
                };
            }
            self.dyn_unlink(node.port.0 as usize, idx);
            let node = &mut self.nodes[idx as usize];
            node.port = port;
            node.is_static = true;
            node.last_seen = 0;
            list_push_back(&mut self.nodes, &mut self.ports[p].statics, idx);
            self.sync_slot(key, idx);
            return Ok(());
        }
        if self.len >= self.config.max_entries {
            if self.dynamic_len == 0 {
                return Err(CamError::Full {
                    domain,
                    vlan,
                    mac,
                    port,
                    max_entries: self.config.max_entries,
                });
            }
            let victim = self.buckets[self.max_bucket as usize] as usize;
            self.evict_lru(victim, EvictReason::TableFull);
        }
        let idx = self.alloc_node(key, port, 0, true);
        list_push_back(&mut self.nodes, &mut self.ports[p].statics, idx);
        Ok(())
    }

    /// Removes the static entry for `mac` in `domain`/`vlan`. Returns false (and leaves any dynamic
    /// entry alone) when there is no static entry for that key.
    pub fn remove_static(&mut self, domain: DomainId, vlan: VlanId, mac: MacAddr) -> bool {
        let key = CamKey::new(domain, vlan, mac);
        match self.find_node(key) {
            Some(idx) if self.nodes[idx as usize].is_static => {
                self.remove_node(idx);
                true
            }
            _ => false,
        }
    }

    /// Removes every entry, dynamic and static, pointing at `port` (the port is going away).
    /// O(entries of the port).
    pub fn flush_port(&mut self, port: PortId) -> usize {
        let Some(state) = self.ports.get(port.0 as usize) else {
            return 0;
        };
        let removed = (state.dynamic.len + state.statics.len) as usize;
        let p = port.0 as usize;
        loop {
            let head = self.ports[p].dynamic.head;
            let head = if head != NIL {
                head
            } else {
                self.ports[p].statics.head
            };
            if head == NIL {
                break;
            }
            self.remove_node(head);
        }
        removed
    }

    /// Removes every entry, dynamic and static, of `domain` (the network is going away).
    /// O(table capacity): this is a control-plane operation.
    #[cfg(test)]
    pub fn flush_domain(&mut self, domain: DomainId) -> usize {
        let mut removed = 0;
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            if node.live && node.domain == domain.0 {
                self.remove_node(i as u32);
                removed += 1;
            }
        }
        removed
    }

    /// Entries, dynamic and static.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Dynamic entries learned on `port`.
    #[cfg(test)]
    pub fn dynamic_len_of(&self, port: PortId) -> usize {
        self.ports
            .get(port.0 as usize)
            .map_or(0, |s| s.dynamic.len as usize)
    }

    /// Static entries pinned to `port`.
    #[cfg(test)]
    pub fn static_len_of(&self, port: PortId) -> usize {
        self.ports
            .get(port.0 as usize)
            .map_or(0, |s| s.statics.len as usize)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = CamEntryView> + '_ {
        self.nodes.iter().filter(|n| n.live).map(|n| CamEntryView {
            domain: n.key().domain(),
            vlan: n.key().vlan(),
            mac: n.key().mac(),
            port: n.port,
            last_seen: n.last_seen,
            is_static: n.is_static,
        })
    }

    pub fn stats(&self) -> CamStats {
        self.stats
    }

    // ---- internals ----

    /// Index into `ports`, growing it on the first sight of a larger port id (rare; allocates).
    fn port_index(&mut self, port: PortId) -> usize {
        let p = port.0 as usize;
        if p >= self.ports.len() {
            self.ports.resize(p + 1, PortState::EMPTY);
        }
        p
    }

    /// Takes a free node for `key` and indexes it. The caller made room (fewer than `max_entries`
    /// live) and checked that `key` is absent.
    fn alloc_node(&mut self, key: CamKey, port: PortId, last_seen: u64, is_static: bool) -> u32 {
        let node = Node {
            addr: key.addr,
            last_seen,
            prev: NIL,
            next: NIL,
            domain: key.domain,
            port,
            is_static,
            live: true,
        };
        let idx = if self.free_head != NIL {
            let idx = self.free_head;
            self.free_head = self.nodes[idx as usize].next;
            self.nodes[idx as usize] = node;
            idx
        } else {
            // Callers made room first, so live entries < max_entries = capacity: no reallocation.
            debug_assert!(self.nodes.len() < self.nodes.capacity());
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        };
        self.slots
            .insert(self.hash(key), slot_of(key, port, idx, is_static));
        self.len += 1;
        idx
    }

    /// Unlinks the node from its list, removes it from the index and frees it; returns its old
    /// contents.
    fn remove_node(&mut self, idx: u32) -> Node {
        let node = self.nodes[idx as usize];
        let p = node.port.0 as usize;
        if node.is_static {
            list_unlink(&mut self.nodes, &mut self.ports[p].statics, idx);
        } else {
            self.dyn_unlink(p, idx);
        }
        let (pos, _) = self
            .find(node.key(), self.hash(node.key()))
            .expect("a live node is in the table");
        let hasher = self.hasher;
        self.slots
            .remove_at(pos, |slot| hasher.hash_one(slot_key(slot)));
        self.len -= 1;
        let slot = &mut self.nodes[idx as usize];
        slot.live = false;
        slot.next = self.free_head;
        self.free_head = idx;
        node
    }

    fn evict_lru(&mut self, p: usize, reason: EvictReason) -> Eviction {
        let head = self.ports[p].dynamic.head;
        debug_assert_ne!(head, NIL, "evicting from a port without dynamic entries");
        let node = self.remove_node(head);
        match reason {
            EvictReason::PortLimit => self.stats.evicted_port_limit += 1,
            EvictReason::TableFull => self.stats.evicted_table_full += 1,
        }
        Eviction {
            domain: node.key().domain(),
            vlan: node.key().vlan(),
            mac: node.key().mac(),
            port: node.port,
            reason,
        }
    }

    /// Appends a dynamic node to port `p`'s LRU list (most recent end) and moves `p` up one bucket.
    fn dyn_push_back(&mut self, p: usize, idx: u32) {
        let old = self.ports[p].dynamic.len;
        if old > 0 {
            self.bucket_remove(p, old);
        }
        list_push_back(&mut self.nodes, &mut self.ports[p].dynamic, idx);
        self.bucket_insert(p, old + 1);
        self.dynamic_len += 1;
    }

    /// Unlinks a dynamic node from port `p`'s LRU list and moves `p` down one bucket.
    fn dyn_unlink(&mut self, p: usize, idx: u32) {
        let old = self.ports[p].dynamic.len;
        self.bucket_remove(p, old);
        list_unlink(&mut self.nodes, &mut self.ports[p].dynamic, idx);
        if old > 1 {
            self.bucket_insert(p, old - 1);
        }
        // If p was the last port at the maximum, the maximum is now p's new count (or 0).
        if old == self.max_bucket && self.buckets[old as usize] == NIL {
            self.max_bucket = old - 1;
        }
        self.dynamic_len -= 1;
    }

    fn bucket_insert(&mut self, p: usize, count: u32) {
        let head = self.buckets[count as usize];
        self.ports[p].bucket_prev = NIL;
        self.ports[p].bucket_next = head;
        if head != NIL {
            self.ports[head as usize].bucket_prev = p as u32;
        }
        self.buckets[count as usize] = p as u32;
        if count > self.max_bucket {
            self.max_bucket = count;
        }
    }

    fn bucket_remove(&mut self, p: usize, count: u32) {
        let (prev, next) = (self.ports[p].bucket_prev, self.ports[p].bucket_next);
        if prev == NIL {
            self.buckets[count as usize] = next;
        } else {
            self.ports[prev as usize].bucket_next = next;
        }
        if next != NIL {
            self.ports[next as usize].bucket_prev = prev;
        }
        self.ports[p].bucket_prev = NIL;
        self.ports[p].bucket_next = NIL;
    }

    /// Checks every internal invariant; panics with a description on the first violation.
    #[cfg(test)]
    fn check_invariants(&self) {
        let live = self.nodes.iter().filter(|n| n.live).count();
        assert_eq!(live, self.len, "live nodes vs len");
        assert_eq!(self.slots.len(), self.len, "keys in the table vs len");
        assert!(self.len <= self.config.max_entries, "len over max_entries");
        let mut dynamic = 0;
        let mut max_count = 0;
        for (p, state) in self.ports.iter().enumerate() {
            for (list, is_static) in [(&state.dynamic, false), (&state.statics, true)] {
                let (mut idx, mut prev, mut n) = (list.head, NIL, 0);
                while idx != NIL {
                    let node = &self.nodes[idx as usize];
                    assert!(node.live && node.is_static == is_static && node.port.0 as usize == p);
                    assert_eq!(node.prev, prev, "back link");
                    let (_, slot) = self
                        .find(node.key(), self.hash(node.key()))
                        .expect("a listed node is in the table");
                    assert_eq!(
                        (slot_node(slot), slot_port(slot), slot_is_static(slot)),
                        (idx, node.port, node.is_static),
                        "the slot names the node, its port and kind"
                    );
                    if !is_static && prev != NIL {
                        assert!(
                            self.nodes[prev as usize].last_seen <= node.last_seen,
                            "LRU order"
                        );
                    }
                    prev = idx;
                    idx = node.next;
                    n += 1;
                }
                assert_eq!(list.tail, prev, "tail");
                assert_eq!(list.len, n, "list len");
            }
            assert!(
                state.dynamic.len <= self.max_per_port,
                "port over max_per_port"
            );
            dynamic += state.dynamic.len as usize;
            max_count = max_count.max(state.dynamic.len);
        }
        assert_eq!(dynamic, self.dynamic_len, "dynamic_len");
        assert_eq!(max_count, self.max_bucket, "max_bucket");
        for (count, &head) in self.buckets.iter().enumerate() {
            let mut p = head;
            while p != NIL {
                assert_eq!(
                    self.ports[p as usize].dynamic.len as usize, count,
                    "bucket membership"
                );
                p = self.ports[p as usize].bucket_next;
            }
        }
        let in_buckets = self.ports.iter().filter(|s| s.dynamic.len > 0).count();
        let bucketed: usize = self
            .buckets
            .iter()
            .map(|&h| {
                let (mut p, mut n) = (h, 0);
                while p != NIL {
                    n += 1;
                    p = self.ports[p as usize].bucket_next;
                }
                n
            })
            .sum();
        assert_eq!(
            in_buckets, bucketed,
            "every port with dynamic entries is in exactly one bucket"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::hash::FastHash;
    use proptest::prelude::*;
    use std::hash::BuildHasher;

    const D0: DomainId = DomainId(0);
    const D1: DomainId = DomainId(1);
    const V0: VlanId = VlanId(0);
    const V10: VlanId = VlanId(10);

    fn mac(i: u32) -> MacAddr {
        let b = i.to_be_bytes();
        MacAddr([0x02, 0x42, b[0], b[1], b[2], b[3]])
    }

    fn table(max_entries: usize, max_per_port: usize, aging_ms: u64) -> CamTable {
        CamTable::try_new(CamConfig {
            max_entries,
            max_per_port,
            aging_ms,
        })
        .unwrap()
    }

    fn learned(evicted: Option<Eviction>) -> LearnOutcome {
        LearnOutcome::Learned { evicted }
    }

    #[test]
    fn learn_then_lookup() {
        let mut t = CamTable::default();
        assert_eq!(t.lookup(D0, V0, mac(1)), None);
        assert_eq!(
            t.classify_learn(D0, V0, mac(1), PortId(3), 10),
            LearnAction::New
        );
        assert_eq!(t.learn(D0, V0, mac(1), PortId(3), 10), learned(None));
        assert_eq!(t.lookup(D0, V0, mac(1)), Some(PortId(3)));
        assert_eq!(
            t.peek(D0, V0, mac(1)),
            Some(CamEntryInfo {
                port: PortId(3),
                last_seen: 10,
                is_static: false
            })
        );
        assert_eq!(
            (t.len(), t.dynamic_len_of(PortId(3)), t.stats().learned),
            (1, 1, 1)
        );
        let all: Vec<_> = t.iter().collect();
        assert_eq!(
            all,
            [CamEntryView {
                domain: D0,
                vlan: V0,
                mac: mac(1),
                port: PortId(3),
                last_seen: 10,
                is_static: false
            }]
        );
        t.check_invariants();
    }

    #[test]
    fn group_and_zero_sources_are_not_learned() {
        let mut t = CamTable::default();
        for m in [
            MacAddr::BROADCAST,
            MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]),
            MacAddr::ZERO,
        ] {
            assert_eq!(
                t.classify_learn(D0, V0, m, PortId(1), 0),
                LearnAction::Reject(RejectReason::InvalidSource)
            );
            assert_eq!(
                t.learn(D0, V0, m, PortId(1), 0),
                LearnOutcome::Rejected(RejectReason::InvalidSource)
            );
            assert!(matches!(
                t.add_static(D0, V0, m, PortId(1)),
                Err(CamError::InvalidMac { .. })
            ));
        }
        assert!(t.is_empty());
        assert_eq!(t.stats().rejected, 3);
        // A zero address packs to an all-zero key, the empty slot's: it still finds nothing
        // (l2-fwd looks up any unicast destination, zero included).
        t.learn(D0, V0, mac(1), PortId(1), 0);
        assert_eq!(t.lookup(D0, V0, MacAddr::ZERO), None);
        assert_eq!(t.peek(D0, V0, MacAddr::ZERO), None);
        assert!(!t.remove_static(D0, V0, MacAddr::ZERO));
    }

    #[test]
    fn domains_and_vlans_are_separate() {
        let mut t = CamTable::default();
        t.learn(D0, V0, mac(1), PortId(1), 0);
        t.learn(D1, V0, mac(1), PortId(2), 0);
        t.learn(D0, V10, mac(1), PortId(3), 0);
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(D0, V0, mac(1)), Some(PortId(1)));
        assert_eq!(t.lookup(D1, V0, mac(1)), Some(PortId(2)));
        assert_eq!(t.lookup(D0, V10, mac(1)), Some(PortId(3)));
        assert_eq!(t.lookup(D1, V10, mac(1)), None);
        // Only 12 VLAN bits are key material.
        assert_eq!(t.lookup(D0, VlanId(0x1000 | 10), mac(1)), Some(PortId(3)));
        // Seeing it on another port in one domain is not a move in the others.
        assert!(matches!(
            t.learn(D1, V0, mac(1), PortId(4), 5000),
            LearnOutcome::Moved {
                from: PortId(2),
                ..
            }
        ));
        assert_eq!(t.lookup(D0, V0, mac(1)), Some(PortId(1)));
        assert_eq!(t.flush_domain(D1), 1);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(D1, V0, mac(1)), None);
        let mut keys: Vec<_> = t.iter().map(|e| (e.domain, e.vlan, e.mac)).collect();
        keys.sort();
        assert_eq!(keys, [(D0, V0, mac(1)), (D0, V10, mac(1))]);
        t.check_invariants();
    }

    #[test]
    fn refresh_only_after_granularity() {
        let mut t = table(16, 16, 10_000);
        t.learn(D0, V0, mac(1), PortId(1), 1000);
        t.learn(D0, V0, mac(2), PortId(1), 1000);
        assert_eq!(
            t.classify_learn(D0, V0, mac(1), PortId(1), 1999),
            LearnAction::None
        );
        assert_eq!(
            t.learn(D0, V0, mac(1), PortId(1), 1999),
            LearnOutcome::Unchanged
        );
        assert_eq!(t.peek(D0, V0, mac(1)).unwrap().last_seen, 1000);
        assert_eq!(
            t.classify_learn(D0, V0, mac(1), PortId(1), 2000),
            LearnAction::Refresh
        );
        assert_eq!(
            t.learn(D0, V0, mac(1), PortId(1), 2000),
            LearnOutcome::Refreshed
        );
        assert_eq!(t.peek(D0, V0, mac(1)).unwrap().last_seen, 2000);
        // A clock that steps back is "no time elapsed", not a refresh.
        assert_eq!(
            t.learn(D0, V0, mac(1), PortId(1), 5),
            LearnOutcome::Unchanged
        );
        // The refresh made mac(1) most recent: aging at a time between the two stamps removes only mac(2).
        assert_eq!(t.age(11_500), 1);
        assert_eq!(t.lookup(D0, V0, mac(2)), None);
        assert_eq!(t.lookup(D0, V0, mac(1)), Some(PortId(1)));
        t.check_invariants();
    }

    #[test]
    fn move_between_ports_updates_counts() {
        let mut t = CamTable::default();
        t.learn(D0, V0, mac(1), PortId(1), 0);
        t.learn(D0, V0, mac(2), PortId(1), 0);
        assert_eq!(
            t.classify_learn(D0, V0, mac(1), PortId(2), 10),
            LearnAction::Move { from: PortId(1) }
        );
        assert_eq!(
            t.learn(D0, V0, mac(1), PortId(2), 10),
            LearnOutcome::Moved {
                from: PortId(1),
                evicted: None
            }
        );
        assert_eq!(t.lookup(D0, V0, mac(1)), Some(PortId(2)));
        assert_eq!(t.peek(D0, V0, mac(1)).unwrap().last_seen, 10);
        assert_eq!(
            (
                t.dynamic_len_of(PortId(1)),
                t.dynamic_len_of(PortId(2)),
                t.len()
            ),
            (1, 1, 2)
        );
        assert_eq!(t.stats().moved, 1);
        t.check_invariants();
    }

    #[test]
    fn move_into_full_port_evicts_its_lru() {
        let mut t = table(16, 2, 10_000);
        t.learn(D0, V0, mac(1), PortId(1), 0);
        t.learn(D0, V0, mac(2), PortId(2), 1);
        t.learn(D0, V0, mac(3), PortId(2), 2);
        let out = t.learn(D0, V0, mac(1), PortId(2), 3);
        let evicted = Eviction {
            domain: D0,
            vlan: V0,
            mac: mac(2),
            port: PortId(2),
            reason: EvictReason::PortLimit,
        };
        assert_eq!(
            out,
            LearnOutcome::Moved {
                from: PortId(1),
                evicted: Some(evicted)
            }
        );
        assert_eq!(
            (t.dynamic_len_of(PortId(1)), t.dynamic_len_of(PortId(2))),
            (0, 2)
        );
        t.check_invariants();
    }

    #[test]
    fn aging_stops_at_its_budget_and_the_rest_follows() {
        let mut t = table(4096, 4096, 1000);
        for i in 0..3000u32 {
            t.learn(D0, V0, mac(i), PortId((i % 3) as u16), u64::from(i));
        }
        let now = 10_000;
        let mut rounds = Vec::new();
        loop {
            let n = t.age_at_most(now, 1024);
            assert!(n <= 1024, "never more than the budget");
            rounds.push(n);
            if n < 1024 {
                break;
            }
        }
        assert_eq!(
            rounds,
            vec![1024, 1024, 952],
            "everything due goes, a budget at a time"
        );
        assert!(t.is_empty());
        assert_eq!(t.stats().aged, 3000);
        t.check_invariants();
    }

    #[test]
    fn aging_removes_only_expired_dynamic_entries() {
        let mut t = table(64, 64, 1000);
        t.add_static(D0, V0, mac(100), PortId(1)).unwrap();
        for i in 0..10 {
            t.learn(D0, V0, mac(i), PortId((i % 3) as u16), u64::from(i) * 100);
        }
        // now - last_seen > 1000 for stamps 0..=400 at now = 1450.
        assert_eq!(t.age(1450), 5);
        for i in 0..10 {
            assert_eq!(t.lookup(D0, V0, mac(i)).is_some(), i >= 5, "mac {i}");
        }
        // Exactly aging_ms old is still alive.
        assert_eq!(t.age(1500), 0);
        assert_eq!(t.age(1501), 1);
        assert_eq!(t.age(u64::MAX), 4);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(D0, V0, mac(100)), Some(PortId(1)));
        assert_eq!(t.stats().aged, 10);
        t.set_aging_ms(0);
        assert_eq!(t.age(u64::MAX), 0, "static entries never age");
        t.check_invariants();
    }

    #[test]
    fn per_port_limit_evicts_that_ports_lru() {
        let mut t = table(100, 3, 100_000);
        t.learn(D0, V0, mac(50), PortId(2), 0);
        for i in 0..3 {
            t.learn(D0, V0, mac(i), PortId(1), 1000 * u64::from(i));
        }
        // mac(0) refreshed: mac(1) becomes port 1's LRU.
        assert_eq!(
            t.learn(D0, V0, mac(0), PortId(1), 5000),
            LearnOutcome::Refreshed
        );
        let out = t.learn(D0, V0, mac(3), PortId(1), 6000);
        let evicted = Eviction {
            domain: D0,
            vlan: V0,
            mac: mac(1),
            port: PortId(1),
            reason: EvictReason::PortLimit,
        };
        assert_eq!(out, learned(Some(evicted)));
        assert_eq!(t.dynamic_len_of(PortId(1)), 3);
        assert_eq!(t.lookup(D0, V0, mac(50)), Some(PortId(2)));
        assert_eq!(t.stats().evicted_port_limit, 1);
        // Statics do not count toward the per-port dynamic limit.
        t.add_static(D0, V0, mac(60), PortId(1)).unwrap();
        assert_eq!(
            (t.dynamic_len_of(PortId(1)), t.static_len_of(PortId(1))),
            (3, 1)
        );
        assert_eq!(
            t.learn(D0, V0, mac(4), PortId(1), 7000),
            learned(Some(Eviction {
                mac: mac(2),
                ..evicted
            }))
        );
        assert_eq!(t.lookup(D0, V0, mac(60)), Some(PortId(1)));
        t.check_invariants();
    }

    #[test]
    fn mac_flood_from_one_port_evicts_only_its_own_entries() {
        let mut t = table(64, 64, 300_000);
        // Ten quiet hosts on ports 1..=5, plus a static on port 6.
        for i in 0..10 {
            t.learn(D0, V0, mac(i), PortId(1 + (i % 5) as u16), 0);
        }
        t.add_static(D0, V0, mac(999), PortId(6)).unwrap();
        // Port 9 floods random sources, far more than the table holds, while old entries stay oldest.
        let mut evicted_from_others = 0;
        for i in 0..10_000u32 {
            let out = t.learn(D0, V0, mac(0x10_0000 + i), PortId(9), 10 + u64::from(i));
            if let LearnOutcome::Learned { evicted: Some(e) } = out {
                if e.port != PortId(9) {
                    evicted_from_others += 1;
                }
            }
        }
        assert_eq!(evicted_from_others, 0);
        assert_eq!(t.len(), 64);
        for i in 0..10 {
            assert_eq!(
                t.lookup(D0, V0, mac(i)),
                Some(PortId(1 + (i % 5) as u16)),
                "quiet host {i}"
            );
        }
        assert_eq!(t.lookup(D0, V0, mac(999)), Some(PortId(6)));
        assert_eq!(t.dynamic_len_of(PortId(9)), 64 - 11);
        // The flooder keeps its most recent sources.
        assert_eq!(t.lookup(D0, V0, mac(0x10_0000 + 9_999)), Some(PortId(9)));
        assert_eq!(t.stats().evicted_table_full, 10_000 - 53);
        t.check_invariants();
    }

    #[test]
    fn full_table_evicts_lru_of_the_largest_port() {
        let mut t = table(6, 6, 300_000);
        // Port 1: 3 entries (oldest overall is mac(0)); port 2: 2 entries; port 3: 1 entry.
        let layout = [(0, 1), (1, 2), (2, 3), (3, 1), (4, 2), (5, 1)];
        for (i, (m, p)) in layout.into_iter().enumerate() {
            t.learn(D0, V0, mac(m), PortId(p), i as u64);
        }
        // Port 2 learns: the victim is port 1's LRU (mac 0), not port 2's own.
        let out = t.learn(D0, V0, mac(10), PortId(2), 100);
        let e = Eviction {
            domain: D0,
            vlan: V0,
            mac: mac(0),
            port: PortId(1),
            reason: EvictReason::TableFull,
        };
        assert_eq!(out, learned(Some(e)));
        // Now port 2 holds 3, port 1 holds 2: port 2's LRU (mac 1) goes next.
        let out = t.learn(D0, V0, mac(11), PortId(3), 101);
        assert_eq!(
            out,
            learned(Some(Eviction {
                mac: mac(1),
                port: PortId(2),
                ..e
            }))
        );
        t.check_invariants();
    }

    #[test]
    fn static_entries() {
        let mut t = table(2, 2, 1000);
        t.learn(D0, V0, mac(1), PortId(1), 0);
        // Replaces the dynamic entry, wherever it was learned.
        t.add_static(D0, V0, mac(1), PortId(2)).unwrap();
        assert_eq!(
            t.peek(D0, V0, mac(1)),
            Some(CamEntryInfo {
                port: PortId(2),
                last_seen: 0,
                is_static: true
            })
        );
        assert_eq!((t.dynamic_len_of(PortId(1)), t.len()), (0, 1));
        // Idempotent on the same port; a conflicting pin is an error naming both ports.
        t.add_static(D0, V0, mac(1), PortId(2)).unwrap();
        let err = t.add_static(D0, V0, mac(1), PortId(3)).unwrap_err();
        assert_eq!(
            err,
            CamError::StaticConflict {
                domain: D0,
                vlan: V0,
                mac: mac(1),
                existing: PortId(2),
                requested: PortId(3)
            }
        );
        assert!(
            err.to_string().contains("02:42:00:00:00:01") && err.to_string().contains("port 2")
        );
        // Learning the pinned address elsewhere is a conflict, and nothing moves.
        assert_eq!(
            t.classify_learn(D0, V0, mac(1), PortId(5), 0),
            LearnAction::StaticConflict
        );
        assert_eq!(
            t.learn(D0, V0, mac(1), PortId(5), 0),
            LearnOutcome::StaticConflict {
                static_port: PortId(2)
            }
        );
        assert_eq!(
            t.learn(D0, V0, mac(1), PortId(2), 5000),
            LearnOutcome::Unchanged
        );
        assert_eq!(t.lookup(D0, V0, mac(1)), Some(PortId(2)));
        assert_eq!(t.stats().static_conflicts, 1);
        // A static displaces a dynamic entry when the table is full ...
        t.learn(D0, V0, mac(2), PortId(1), 0);
        t.add_static(D0, V0, mac(3), PortId(1)).unwrap();
        assert_eq!(t.lookup(D0, V0, mac(2)), None);
        assert_eq!(t.stats().evicted_table_full, 1);
        // ... but a table full of statics refuses both static and learned additions.
        let err = t.add_static(D0, V0, mac(4), PortId(1)).unwrap_err();
        assert!(
            matches!(err, CamError::Full { max_entries: 2, .. }),
            "{err}"
        );
        assert_eq!(
            t.classify_learn(D0, V0, mac(4), PortId(1), 0),
            LearnAction::Reject(RejectReason::TableFull)
        );
        assert_eq!(
            t.learn(D0, V0, mac(4), PortId(1), 0),
            LearnOutcome::Rejected(RejectReason::TableFull)
        );
        // Never evicted by aging.
        assert_eq!(t.age(1_000_000), 0);
        // remove_static leaves dynamic entries alone.
        assert!(t.remove_static(D0, V0, mac(3)));
        assert!(!t.remove_static(D0, V0, mac(3)));
        t.learn(D0, V0, mac(4), PortId(1), 0);
        assert!(!t.remove_static(D0, V0, mac(4)));
        assert_eq!(t.lookup(D0, V0, mac(4)), Some(PortId(1)));
        t.check_invariants();
    }

    #[test]
    fn flush_port_removes_dynamic_and_static() {
        let mut t = CamTable::default();
        for i in 0..5 {
            t.learn(D0, V0, mac(i), PortId(7), 0);
        }
        t.learn(D1, V0, mac(1), PortId(8), 0);
        t.add_static(D0, V10, mac(9), PortId(7)).unwrap();
        assert_eq!(t.flush_port(PortId(7)), 6);
        assert_eq!(t.flush_port(PortId(7)), 0);
        assert_eq!(t.flush_port(PortId(60_000)), 0, "never seen");
        assert_eq!(
            (
                t.len(),
                t.dynamic_len_of(PortId(7)),
                t.static_len_of(PortId(7))
            ),
            (1, 0, 0)
        );
        assert_eq!(t.lookup(D1, V0, mac(1)), Some(PortId(8)));
        // Freed slots are reused.
        for i in 0..6 {
            t.learn(D0, V0, mac(i), PortId(u16::MAX), 1);
        }
        assert_eq!(t.lookup(D0, V0, mac(5)), Some(PortId(u16::MAX)));
        t.check_invariants();
    }

    #[test]
    fn invalid_config_is_rejected() {
        let bad = [
            CamConfig {
                max_entries: 0,
                ..CamConfig::default()
            },
            CamConfig {
                max_entries: MAX_ENTRIES_LIMIT + 1,
                ..CamConfig::default()
            },
            CamConfig {
                max_per_port: 0,
                ..CamConfig::default()
            },
        ];
        for cfg in bad {
            let err = CamTable::try_new(cfg).unwrap_err();
            assert!(matches!(err, CamError::InvalidConfig { .. }));
            assert!(
                err.to_string().starts_with("invalid CAM config: max_"),
                "{err}"
            );
        }
        // `new` clamps instead, so the engine always comes up.
        let t = CamTable::new(CamConfig {
            max_entries: 0,
            max_per_port: 0,
            aging_ms: 7,
        });
        assert_eq!(
            *t.config(),
            CamConfig {
                max_entries: 1,
                max_per_port: 1,
                aging_ms: 7
            }
        );
        assert_eq!(t.aging_ms(), 7);
        // max_per_port above max_entries is allowed and simply never binds.
        let mut t = table(2, 100, 1000);
        t.learn(D0, V0, mac(1), PortId(1), 0);
        t.learn(D0, V0, mac(2), PortId(1), 0);
        assert!(matches!(
            t.learn(D0, V0, mac(3), PortId(1), 0),
            LearnOutcome::Learned { evicted: Some(_) }
        ));
        t.check_invariants();
    }

    #[test]
    fn a_batch_lookup_answers_as_single_lookups() {
        let mut t = table(4096, 4096, 10_000);
        for i in 0..2000 {
            t.learn(D0, V0, mac(i), PortId((i % 7) as u16), 0);
        }
        t.add_static(D1, V10, mac(3), PortId(9)).unwrap();
        // Hits, misses (unknown MAC, other domain or VLAN) and a static entry, mixed.
        let keys: [(DomainId, VlanId, MacAddr); 32] = std::array::from_fn(|i| match i % 4 {
            0 => (D0, V0, mac(i as u32 * 61)),
            1 => (D0, V0, mac(5000 + i as u32)),
            2 => (D1, V0, mac(i as u32)),
            _ => (D1, V10, mac(3)),
        });
        for &(d, v, m) in &keys {
            t.prefetch(d, v, m);
            t.prefetch_entry(d, v, m);
        }
        let batch = t.lookup_batch(&keys);
        for (&(d, v, m), found) in keys.iter().zip(batch) {
            assert_eq!(found, t.lookup(d, v, m), "{d} {v} {m}");
        }
        assert_eq!(batch.iter().filter(|f| f.is_some()).count(), 16);
        t.check_invariants();
    }

    #[test]
    fn under_100_bytes_an_entry() {
        // Four 16-byte slots (one line) and a 32-byte node; was 72 with 8-byte buckets and a
        // 40-byte node, 144 with a HashMap at twice the entries.
        let t = table(1 << 20, 1 << 20, 1000);
        let bytes = t.slots.bytes() + t.nodes.capacity() * std::mem::size_of::<Node>();
        assert_eq!(std::mem::size_of::<Node>(), 32);
        assert_eq!(bytes / (1 << 20), 96);
    }

    #[test]
    fn hasher_is_seeded_per_table() {
        let a = FastHash::random();
        let b = FastHash::random();
        let key = CamKey::new(D0, V0, mac(1));
        assert_ne!(a.hash_one(key), b.hash_one(key));
        // Within a domain distinct keys never share a full hash (packing and fmix64 are bijective).
        let hashes: std::collections::HashSet<u64> = (0..10_000)
            .map(|i| a.hash_one(CamKey::new(D1, VlanId((i % 7) as u16), mac(i))))
            .collect();
        assert_eq!(hashes.len(), 10_000);
    }

    // ---- model-based property test ----

    #[derive(Clone, Debug)]
    enum Op {
        Learn {
            d: u16,
            v: u16,
            m: u8,
            p: u16,
            dt: u64,
        },
        Age {
            dt: u64,
        },
        FlushPort(u16),
        FlushDomain(u16),
        AddStatic {
            d: u16,
            v: u16,
            m: u8,
            p: u16,
        },
        RemoveStatic {
            d: u16,
            v: u16,
            m: u8,
        },
    }

    /// Small address pool so keys collide; 12 and 13 are group / zero addresses.
    fn pool_mac(m: u8) -> MacAddr {
        match m {
            12 => MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
            13 => MacAddr::ZERO,
            _ => MacAddr([0x02, 0, 0, 0, 0, m]),
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        let (d, v, m, p) = (0u16..2, 0u16..2, 0u8..14, 0u16..4);
        prop_oneof![
            8 => (d.clone(), v.clone(), m.clone(), p.clone(), dt())
                .prop_map(|(d, v, m, p, dt)| Op::Learn { d, v, m, p, dt }),
            1 => (0u64..3000).prop_map(|dt| Op::Age { dt }),
            1 => p.clone().prop_map(Op::FlushPort),
            1 => d.clone().prop_map(Op::FlushDomain),
            1 => (d.clone(), v.clone(), m.clone(), p).prop_map(|(d, v, m, p)| Op::AddStatic { d, v, m, p }),
            1 => (d, v, m).prop_map(|(d, v, m)| Op::RemoveStatic { d, v, m }),
        ]
    }

    /// Time steps, biased toward the refresh-granularity boundary.
    fn dt() -> impl Strategy<Value = u64> {
        prop_oneof![4 => 0u64..1500, 1 => Just(0u64), 1 => Just(999u64), 1 => Just(1000u64)]
    }

    #[derive(Clone, Debug)]
    struct MEntry {
        key: (u16, u16, MacAddr),
        port: u16,
        last_seen: u64,
        is_static: bool,
        /// Order of last link into the port's LRU list: the LRU entry has the smallest.
        seq: u64,
    }

    /// The obvious Vec-based table: linear scans everywhere.
    struct Model {
        entries: Vec<MEntry>,
        cfg: CamConfig,
        seq: u64,
    }

    impl Model {
        fn find(&self, key: (u16, u16, MacAddr)) -> Option<usize> {
            self.entries.iter().position(|e| e.key == key)
        }
        fn dyn_count(&self, port: u16) -> usize {
            self.entries
                .iter()
                .filter(|e| !e.is_static && e.port == port)
                .count()
        }
        fn lru_of(&self, port: u16) -> usize {
            (0..self.entries.len())
                .filter(|&i| !self.entries[i].is_static && self.entries[i].port == port)
                .min_by_key(|&i| self.entries[i].seq)
                .expect("port has dynamic entries")
        }
        fn next_seq(&mut self) -> u64 {
            self.seq += 1;
            self.seq
        }
        /// Checks that `e` is a legal eviction for `reason` when `port` is learning, and applies it.
        fn apply_eviction(&mut self, e: Eviction, learning_port: u16) -> Result<(), TestCaseError> {
            let victim_port = match e.reason {
                EvictReason::PortLimit => {
                    prop_assert_eq!(e.port.0, learning_port);
                    learning_port
                }
                EvictReason::TableFull => {
                    let max = self
                        .entries
                        .iter()
                        .map(|x| self.dyn_count(x.port))
                        .max()
                        .unwrap_or(0);
                    prop_assert_eq!(self.dyn_count(e.port.0), max, "victim port holds the most");
                    e.port.0
                }
            };
            let i = self.lru_of(victim_port);
            prop_assert_eq!(
                self.entries[i].key,
                (e.domain.0, e.vlan.0, e.mac),
                "victim is the port's LRU"
            );
            self.entries.remove(i);
            Ok(())
        }
    }

    fn run(cfg: CamConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let mut t = CamTable::try_new(cfg).unwrap();
        let mut model = Model {
            entries: Vec::new(),
            cfg,
            seq: 0,
        };
        let limit = cfg.max_per_port.min(cfg.max_entries);
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Learn { d, v, m, p, dt } => {
                    now += dt;
                    let (mac, key) = (pool_mac(m), (d, v, pool_mac(m)));
                    let action = t.classify_learn(DomainId(d), VlanId(v), mac, PortId(p), now);
                    let out = t.learn(DomainId(d), VlanId(v), mac, PortId(p), now);
                    let expect_action = if !mac.is_unicast() || mac.is_zero() {
                        prop_assert_eq!(out, LearnOutcome::Rejected(RejectReason::InvalidSource));
                        LearnAction::Reject(RejectReason::InvalidSource)
                    } else if let Some(i) = model.find(key) {
                        let e = model.entries[i].clone();
                        if e.is_static {
                            if e.port == p {
                                prop_assert_eq!(out, LearnOutcome::Unchanged);
                                LearnAction::None
                            } else {
                                prop_assert_eq!(
                                    out,
                                    LearnOutcome::StaticConflict {
                                        static_port: PortId(e.port)
                                    }
                                );
                                LearnAction::StaticConflict
                            }
                        } else if e.port == p {
                            if now - e.last_seen >= REFRESH_GRANULARITY_MS {
                                prop_assert_eq!(out, LearnOutcome::Refreshed);
                                let seq = model.next_seq();
                                model.entries[i].last_seen = now;
                                model.entries[i].seq = seq;
                                LearnAction::Refresh
                            } else {
                                prop_assert_eq!(out, LearnOutcome::Unchanged);
                                LearnAction::None
                            }
                        } else {
                            let LearnOutcome::Moved { from, evicted } = out else {
                                return Err(TestCaseError::fail(format!(
                                    "expected a move, got {out:?}"
                                )));
                            };
                            prop_assert_eq!(from, PortId(e.port));
                            prop_assert_eq!(evicted.is_some(), model.dyn_count(p) >= limit);
                            if let Some(ev) = evicted {
                                prop_assert_eq!(ev.reason, EvictReason::PortLimit);
                                model.apply_eviction(ev, p)?;
                            }
                            let i = model.find(key).unwrap();
                            let seq = model.next_seq();
                            model.entries[i] = MEntry {
                                key,
                                port: p,
                                last_seen: now,
                                is_static: false,
                                seq,
                            };
                            LearnAction::Move {
                                from: PortId(e.port),
                            }
                        }
                    } else if model.entries.len() >= cfg.max_entries
                        && model.entries.iter().all(|e| e.is_static)
                    {
                        prop_assert_eq!(out, LearnOutcome::Rejected(RejectReason::TableFull));
                        LearnAction::Reject(RejectReason::TableFull)
                    } else {
                        let LearnOutcome::Learned { evicted } = out else {
                            return Err(TestCaseError::fail(format!(
                                "expected a new entry, got {out:?}"
                            )));
                        };
                        let at_port_limit = model.dyn_count(p) >= limit;
                        let full = model.entries.len() >= cfg.max_entries;
                        prop_assert_eq!(evicted.is_some(), at_port_limit || full);
                        if let Some(ev) = evicted {
                            let reason = if at_port_limit {
                                EvictReason::PortLimit
                            } else {
                                EvictReason::TableFull
                            };
                            prop_assert_eq!(ev.reason, reason);
                            model.apply_eviction(ev, p)?;
                        }
                        let seq = model.next_seq();
                        model.entries.push(MEntry {
                            key,
                            port: p,
                            last_seen: now,
                            is_static: false,
                            seq,
                        });
                        LearnAction::New
                    };
                    prop_assert_eq!(action, expect_action);
                }
                Op::Age { dt } => {
                    now += dt;
                    let before = model.entries.len();
                    model
                        .entries
                        .retain(|e| e.is_static || now - e.last_seen <= model.cfg.aging_ms);
                    prop_assert_eq!(t.age(now), before - model.entries.len());
                }
                Op::FlushPort(p) => {
                    let before = model.entries.len();
                    model.entries.retain(|e| e.port != p);
                    prop_assert_eq!(t.flush_port(PortId(p)), before - model.entries.len());
                }
                Op::FlushDomain(d) => {
                    let before = model.entries.len();
                    model.entries.retain(|e| e.key.0 != d);
                    prop_assert_eq!(t.flush_domain(DomainId(d)), before - model.entries.len());
                }
                Op::AddStatic { d, v, m, p } => {
                    let (mac, key) = (pool_mac(m), (d, v, pool_mac(m)));
                    let res = t.add_static(DomainId(d), VlanId(v), mac, PortId(p));
                    if !mac.is_unicast() || mac.is_zero() {
                        prop_assert!(matches!(res, Err(CamError::InvalidMac { .. })), "{:?}", res);
                    } else if let Some(i) = model.find(key) {
                        let e = &mut model.entries[i];
                        if e.is_static && e.port != p {
                            prop_assert!(
                                matches!(res, Err(CamError::StaticConflict { .. })),
                                "{:?}",
                                res
                            );
                        } else {
                            prop_assert!(res.is_ok());
                            (e.port, e.is_static, e.last_seen) = (p, true, 0);
                        }
                    } else if model.entries.len() >= cfg.max_entries
                        && model.entries.iter().all(|e| e.is_static)
                    {
                        prop_assert!(matches!(res, Err(CamError::Full { .. })), "{:?}", res);
                    } else {
                        prop_assert!(res.is_ok());
                        if model.entries.len() >= cfg.max_entries {
                            // add_static does not report its victim: find the entry the table dropped.
                            let gone: Vec<_> = model
                                .entries
                                .iter()
                                .filter(|e| {
                                    t.peek(DomainId(e.key.0), VlanId(e.key.1), e.key.2)
                                        .is_none()
                                })
                                .collect();
                            prop_assert_eq!(gone.len(), 1);
                            let g = gone[0].clone();
                            let ev = Eviction {
                                domain: DomainId(g.key.0),
                                vlan: VlanId(g.key.1),
                                mac: g.key.2,
                                port: PortId(g.port),
                                reason: EvictReason::TableFull,
                            };
                            model.apply_eviction(ev, p)?;
                        }
                        let seq = model.next_seq();
                        model.entries.push(MEntry {
                            key,
                            port: p,
                            last_seen: 0,
                            is_static: true,
                            seq,
                        });
                    }
                }
                Op::RemoveStatic { d, v, m } => {
                    let key = (d, v, pool_mac(m));
                    let expect = match model.find(key) {
                        Some(i) if model.entries[i].is_static => {
                            model.entries.remove(i);
                            true
                        }
                        _ => false,
                    };
                    prop_assert_eq!(t.remove_static(DomainId(d), VlanId(v), pool_mac(m)), expect);
                }
            }
            // The table agrees with the model entry for entry, and respects its limits.
            t.check_invariants();
            prop_assert_eq!(t.len(), model.entries.len());
            prop_assert!(t.len() <= cfg.max_entries);
            for e in &model.entries {
                let (d, v, mac) = (DomainId(e.key.0), VlanId(e.key.1), e.key.2);
                prop_assert_eq!(t.lookup(d, v, mac), Some(PortId(e.port)));
                let info = CamEntryInfo {
                    port: PortId(e.port),
                    last_seen: e.last_seen,
                    is_static: e.is_static,
                };
                prop_assert_eq!(t.peek(d, v, mac), Some(info));
            }
            for p in 0..4 {
                prop_assert_eq!(t.dynamic_len_of(PortId(p)), model.dyn_count(p));
                prop_assert!(t.dynamic_len_of(PortId(p)) <= cfg.max_per_port);
            }
            prop_assert_eq!(t.iter().count(), model.entries.len());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn behaves_like_the_model(
            max_entries in 1usize..12,
            max_per_port in 1usize..8,
            aging_ms in 500u64..5000,
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            run(CamConfig { max_entries, max_per_port, aging_ms }, ops)?;
        }
    }
}
