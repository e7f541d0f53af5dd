//! The connection tracking table behind switchyard's NAT: published ports (DNAT), masquerade and
//! hairpin.
//!
//! **Why switchyard tracks connections itself.** docker0 leaves NAT state to the kernel's
//! nf_conntrack, which is shared by the whole host and knows nothing about containers. That causes
//! the well-known pains this table is shaped to avoid:
//! - *Stale UDP flows.* A UDP flow that keeps sending (DNS, syslog, statsd, VPN) keeps its conntrack
//!   entry alive forever, so after a container is replaced, or a published port remapped, packets keep
//!   following the old translation to an address that is gone, until someone runs
//!   `conntrack -D`. Here the control plane cuts them at once: [`ConnTrack::remove_inside`] when a
//!   container goes, [`ConnTrack::remove_mapping`] when a published port goes.
//! - *`nf_conntrack: table full, dropping packet`.* One host-wide table means one noisy neighbour (or a
//!   SYN/UDP flood on a published port) fills it and new connections everywhere fail. This table is
//!   switchyard's own, bounded by [`CtConfig::max_entries`], and when full it makes room instead of
//!   dropping (see eviction below).
//! - *Daemon restarts.* A restart must not reset every established TCP connection, so a TCP flow
//!   first seen mid-stream is picked up as established, as Linux does with `nf_conntrack_tcp_loose`
//!   (the default).
//!
//! **Timeouts.** The defaults are Linux's nf_conntrack defaults (`net.netfilter.nf_conntrack_*_timeout*`),
//! so a flow survives exactly as long here as operators expect from docker0: 5 days established, 2
//! minutes in SYN_SENT and TIME_WAIT, 30 s for an unanswered UDP flow but 2 minutes once it has seen
//! a reply (a "stream"), 30 s for ICMP. A TCP flow that never saw a reply lives at most 5 minutes
//! (`nf_conntrack_tcp_timeout_unacknowledged`, which Linux also applies to a mid-stream pickup
//! until the other side answers): one stray segment, say with a bad checksum the receiver drops,
//! must not hold an ESTABLISHED entry for 5 days. The TCP state machine is simplified (no sequence-number
//! windows; see [`ConnTrack::update`]) because its only job here is picking a timeout, not
//! validating segments.
//!
//! **Eviction order when full.** First the least recently seen entry that never saw a reply
//! (UDP/ICMP `UNREPLIED`, TCP `SYN_SENT`, and a TCP flow picked up mid-stream whose peer has not
//! answered yet), then the least recently seen TCP entry that was answered but is not
//! ESTABLISHED (`SYN_RECV`, and connections closing), else the least recently seen entry overall
//! (each "least recently seen" to within the refresh interval below: the lists' heads compared).
//! Entries without a reply are what a SYN or UDP flood (spoofed or not) creates and the cheapest to
//! lose: nobody is waiting on them. A server answers a SYN flood's SYNs, so its entries become
//! `SYN_RECV`; without the middle step a table that had just seen every pending SYN answered (an
//! engine worker whose replica learns the SYNs from its peer and sees the answers itself) evicted
//! an idle ESTABLISHED connection before them. Established flows and answered UDP/ICMP flows are
//! only touched when nothing else is left, oldest first.
//! This is the spirit of Linux's `early_drop` (which prefers entries that are not ASSURED) without its
//! bounded random bucket scan.
//!
//! **How it stays O(1).** Entries live in a preallocated slab; a line table (line_table.rs:
//! 64-byte lines of four 16-byte slots) holds *both* the original and the reply tuple of every
//! entry, each whole in its slot (addresses in one word; protocol, ports, direction and slab
//! index + 1 in the other: [`slot_of`]), hashed as those two words with a seeded `FastHash`. So a
//! packet of either direction reads one line to find its entry and direction (4.1% of keys sit
//! one line further, the table being at most half full), and compares the tuple there, not in
//! the slab. Each entry sits on exactly one intrusive LRU list per *class* = (protocol family,
//! state, whether a reply was seen); all entries of a class share a timeout, and an entry joins
//! its list's tail when inserted, when its class changes, and otherwise at most once per refresh
//! interval (below), so each list is ordered by that *listed* time, and an entry's last packet
//! came less than an interval after it. [`ConnTrack::expire`] therefore walks each list from its
//! head and stops at the first entry not yet due: O(expired + classes), never O(table). Eviction
//! compares the heads of the (at most [`CLASSES`]) lists. Nothing allocates after
//! [`ConnTrack::new`]: the slab never grows past its capacity, and the line table has twice as
//! many slots as a full table has keys and never rehashes.
//!
//! **Refresh.** A packet counts itself and stamps `last_seen_ms` in its entry (exact, what
//! [`ConnTrack::remaining_ms`] and `switchyard conntrack` report), but moves the entry to its
//! list's tail only if its class changed or [`REFRESH_GRANULARITY_MS`] (1 s; an eighth of the
//! class's timeout if shorter) passed since the entry was last put there: a relink reads and
//! writes both list neighbours' nodes, two more cache misses per packet at a million entries,
//! where a busy flow's packets come microseconds apart. The MAC table does the same
//! (cam.rs). What it costs: a list is ordered by listed time, not by last packet, so an entry due
//! may sit behind one listed earlier but seen later, which is not due. `expire` still removes
//! only entries idle for at least their timeout, and leaves none idle for their timeout plus
//! their refresh interval: an entry expires **at most one interval late** (1 s of Linux's 10 s to
//! 5 days; the tests hold it to that), never early. Eviction takes the least recently seen of the
//! lists' heads, which may have been seen up to an interval after another entry of its list.
//!
//! **Size.** At a million entries (bench/benches/scale.rs, bench/RESULTS.md) an entry costs its
//! slab node (136 bytes: the two tuples, two hops, counters and times, links, the refresh lag)
//! and four slots (64 bytes, two per tuple; 67 once rounded up to a power of two lines): 203
//! bytes. The 8-byte-bucket index before the line table cost as much, but a hit read the bucket
//! and then the node to compare the key (two dependent cache misses); the `HashMap<Tuple, _>`
//! before that, sized never to allocate, made it 345. Both allocations ask for huge pages.
//!
//! **Assumptions.** Owned by one thread (the engine), no locks. Time is engine time in milliseconds
//! passed as `now_ms` and treated as monotonic: a `now_ms` earlier than one already seen is raised to
//! it, so the LRU lists stay ordered whatever the caller does. Entries stay visible to `lookup` until
//! `expire` removes them, so the caller runs `expire` periodically (e.g. once a second).

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::Ipv4Addr;

use super::hash::FastHash;
use super::huge_pages::advise_huge_pages;
use super::line_table::{LineTable, Slot};
use super::lru::{list_push_back, list_unlink, Links, List, NIL};
use super::nat::PortShare;
use super::prefetch::prefetch_all;
use crate::wire::ipv4::protocol;
use crate::{MacAddr, PortId};

/// TCP flag bits as passed in `tcp_flags` (the low byte of the TCP flags field).
pub use crate::wire::tcp::flags::{ACK as TCP_ACK, FIN as TCP_FIN, RST as TCP_RST, SYN as TCP_SYN};

/// Largest accepted `CtConfig::max_entries`: a key's slot holds its slab index + 1 in
/// [`NODE_BITS`] bits beside the whole tuple (the daemon accepts up to 4,000,000), and the table
/// preallocates.
pub const MAX_ENTRIES_LIMIT: usize = (1 << NODE_BITS) - 1;

/// How often, at most, a packet moves its entry to its LRU list's tail (ms) when its class does
/// not change; an eighth of the class's timeout if that is shorter. See the module documentation
/// ("Refresh") for what it costs in accuracy: an entry expires at most that much late.
pub const REFRESH_GRANULARITY_MS: u64 = 1000;

/// Number of LRU lists (timeout classes): 8 TCP states and UDP and ICMP (2 states each), each split
/// by whether a reply was seen.
pub const CLASSES: usize = 20;

// ---------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------

/// A flow as seen on the wire in one direction. For ICMP echo, sport = dport = the echo identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

impl Tuple {
    /// The same flow seen from the other end: addresses and ports swapped.
    #[inline]
    pub fn reversed(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}

impl Hash for Tuple {
    /// Two words, two finalisers with `FastHash` (looked up per packet).
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (addrs, rest) = self.words();
        state.write_u64(addrs);
        state.write_u64(rest);
    }
}

impl Tuple {
    /// The tuple as two words: the addresses, then the protocol and ports (40 bits). What it
    /// hashes and what a key's slot holds.
    #[inline(always)]
    fn words(&self) -> (u64, u64) {
        (
            u64::from(u32::from(self.src)) << 32 | u64::from(u32::from(self.dst)),
            u64::from(self.proto) << 32 | u64::from(self.sport) << 16 | u64::from(self.dport),
        )
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            protocol::TCP => f.write_str("tcp")?,
            protocol::UDP => f.write_str("udp")?,
            protocol::ICMP => f.write_str("icmp")?,
            p => write!(f, "proto {p}")?,
        }
        write!(
            f,
            " {}:{} -> {}:{}",
            self.src, self.sport, self.dst, self.dport
        )
    }
}

/// Where packets of one direction leave after translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    pub port: PortId,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
}

/// Which way a packet travels relative to the connection's first packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Original,
    Reply,
}

impl Direction {
    /// Index into `Entry::packets` / `Entry::bytes`.
    #[inline]
    pub fn index(self) -> usize {
        match self {
            Direction::Original => 0,
            Direction::Reply => 1,
        }
    }

    #[inline]
    pub fn opposite(self) -> Direction {
        match self {
            Direction::Original => Direction::Reply,
            Direction::Reply => Direction::Original,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    /// A published port (`-p`): the destination is rewritten to a container.
    Dnat,
    /// A container talking out: the source is rewritten to the uplink address.
    Masquerade,
    /// A container reaching a published port of the host: both rewritten.
    Hairpin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtState {
    // TCP
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
    // UDP and ICMP
    Unreplied,
    Replied,
}

impl CtState {
    /// The name `conntrack -L` would print.
    pub fn name(self) -> &'static str {
        match self {
            CtState::SynSent => "SYN_SENT",
            CtState::SynRecv => "SYN_RECV",
            CtState::Established => "ESTABLISHED",
            CtState::FinWait => "FIN_WAIT",
            CtState::CloseWait => "CLOSE_WAIT",
            CtState::LastAck => "LAST_ACK",
            CtState::TimeWait => "TIME_WAIT",
            CtState::Close => "CLOSE",
            CtState::Unreplied => "UNREPLIED",
            CtState::Replied => "REPLIED",
        }
    }
}

impl fmt::Display for CtState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Idle time (ms) after which an entry in each state expires. Protocols other than TCP and ICMP use
/// the UDP timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtTimeouts {
    pub tcp_syn_sent_ms: u64,
    pub tcp_syn_recv_ms: u64,
    pub tcp_established_ms: u64,
    pub tcp_fin_wait_ms: u64,
    pub tcp_close_wait_ms: u64,
    pub tcp_last_ack_ms: u64,
    pub tcp_time_wait_ms: u64,
    pub tcp_close_ms: u64,
    /// The most any TCP entry lives without a reply (Linux's
    /// `nf_conntrack_tcp_timeout_unacknowledged`); caps ESTABLISHED picked up mid-stream.
    pub tcp_unreplied_ms: u64,
    pub udp_unreplied_ms: u64,
    /// Linux's `nf_conntrack_udp_timeout_stream`.
    pub udp_replied_ms: u64,
    pub icmp_ms: u64,
}

impl Default for CtTimeouts {
    /// Linux's nf_conntrack defaults.
    fn default() -> Self {
        const S: u64 = 1000;
        CtTimeouts {
            tcp_syn_sent_ms: 120 * S,
            tcp_syn_recv_ms: 60 * S,
            tcp_established_ms: 432_000 * S,
            tcp_fin_wait_ms: 120 * S,
            tcp_close_wait_ms: 60 * S,
            tcp_last_ack_ms: 30 * S,
            tcp_time_wait_ms: 120 * S,
            tcp_close_ms: 10 * S,
            tcp_unreplied_ms: 300 * S,
            udp_unreplied_ms: 30 * S,
            udp_replied_ms: 120 * S,
            icmp_ms: 30 * S,
        }
    }
}

impl CtTimeouts {
    /// The timeout of an entry of protocol `proto` in `state`, `replied` or not.
    pub fn timeout_ms(&self, proto: u8, state: CtState, replied: bool) -> u64 {
        let timeout = self.state_timeout_ms(proto, state);
        if proto == protocol::TCP && !replied {
            timeout.min(self.tcp_unreplied_ms)
        } else {
            timeout
        }
    }

    fn state_timeout_ms(&self, proto: u8, state: CtState) -> u64 {
        match (proto, state) {
            (protocol::TCP, CtState::SynSent) => self.tcp_syn_sent_ms,
            (protocol::TCP, CtState::SynRecv) => self.tcp_syn_recv_ms,
            (protocol::TCP, CtState::Established) => self.tcp_established_ms,
            (protocol::TCP, CtState::FinWait) => self.tcp_fin_wait_ms,
            (protocol::TCP, CtState::CloseWait) => self.tcp_close_wait_ms,
            (protocol::TCP, CtState::LastAck) => self.tcp_last_ack_ms,
            (protocol::TCP, CtState::TimeWait) => self.tcp_time_wait_ms,
            (protocol::TCP, CtState::Close) => self.tcp_close_ms,
            (protocol::ICMP, _) => self.icmp_ms,
            (_, CtState::Replied) => self.udp_replied_ms,
            _ => self.udp_unreplied_ms,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtConfig {
    /// Connections the table holds; clamped into 1..=`MAX_ENTRIES_LIMIT`.
    pub max_entries: usize,
    pub timeouts: CtTimeouts,
}

impl Default for CtConfig {
    fn default() -> Self {
        CtConfig {
            max_entries: 65_536,
            timeouts: CtTimeouts::default(),
        }
    }
}

/// One tracked connection. `original`: the first packet's tuple as it arrived (before NAT). `reply`:
/// the tuple reply packets carry when they arrive (before un-NAT). A packet matching `original` is
/// rewritten to `reply.reversed()`; a packet matching `reply` is rewritten to `original.reversed()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub original: Tuple,
    pub reply: Tuple,
    pub kind: NatKind,
    pub out_original: Hop,
    pub out_reply: Hop,
    /// The published-port mapping that created it.
    pub mapping: Option<u32>,
    /// The container address involved, for removal.
    pub inside: Ipv4Addr,
    pub state: CtState,
    /// TCP: the side that sent the first FIN (set on entering `FinWait`, cleared on reopening).
    pub closer: Option<Direction>,
    pub last_seen_ms: u64,
    pub created_ms: u64,
    /// Indexed by [`Direction::index`].
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
}

impl Entry {
    /// Whether any packet went in the Reply direction.
    #[inline]
    pub fn replied(&self) -> bool {
        self.packets[1] > 0
    }
}

/// A slab index. Valid until the entry is removed (expired, evicted, or removed by the control
/// plane); the engine uses it within one packet's processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryId(u32);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtStats {
    /// Entries now.
    pub entries: usize,
    /// Entries ever inserted.
    pub created: u64,
    /// Entries removed by [`ConnTrack::expire`].
    pub expired: u64,
    /// Entries removed to make room for a new one.
    pub evicted: u64,
    /// Entries removed by the control plane (`remove_mapping`, `remove_inside`, `clear`).
    pub removed: u64,
    pub max_entries: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtError {
    /// The tuple (original or reply) already belongs to a tracked connection.
    Exists(Tuple),
    /// The original and reply tuples are the same (e.g. a LAND packet: source == destination), so the
    /// two directions could not be told apart.
    Ambiguous(Tuple),
}

impl fmt::Display for CtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtError::Exists(t) => write!(f, "connection {t} is already tracked"),
            CtError::Ambiguous(t) => write!(
                f,
                "cannot track {t}: its original and reply tuples are identical, so the directions \
                 could not be told apart"
            ),
        }
    }
}

impl std::error::Error for CtError {}

// ---------------------------------------------------------------------------------------------------
// Internals: slab nodes, intrusive lists, classes
// ---------------------------------------------------------------------------------------------------

/// Bits of a slot's second word holding the slab index + 1 (never 0, so a full slot is never
/// the line table's empty one).
const NODE_BITS: u32 = 23;
/// The direction bit, above the node.
const DIR_BIT: u32 = NODE_BITS;
/// Where the tuple's second word (protocol and ports, 40 bits) starts.
const KEY_SHIFT: u32 = DIR_BIT + 1;
const NODE_MASK: u64 = (1 << NODE_BITS) - 1;

// The tuple's 40 bits, the direction and the node fill the second word exactly.
const _: () = assert!(KEY_SHIFT + 40 == 64);
// Every slab index of a full table, plus one, fits in the node bits.
const _: () = assert!(MAX_ENTRIES_LIMIT as u64 <= NODE_MASK);

/// The line table's slot for tuple `t` of entry `idx`, travelling `dir`: the whole tuple (its
/// addresses in the first word, protocol and ports at the top of the second), the direction,
/// and `idx + 1`. A lookup compares the tuple and reads the answer without reading the slab.
#[inline(always)]
fn slot_of(t: &Tuple, idx: u32, dir: Direction) -> Slot {
    let (addrs, rest) = t.words();
    [
        addrs,
        rest << KEY_SHIFT | (dir.index() as u64) << DIR_BIT | (u64::from(idx) + 1),
    ]
}

/// A slot's entry and direction.
#[inline(always)]
fn slot_entry(slot: Slot) -> (u32, Direction) {
    let idx = (slot[1] & NODE_MASK) as u32 - 1;
    let dir = if slot[1] >> DIR_BIT & 1 == 0 {
        Direction::Original
    } else {
        Direction::Reply
    };
    (idx, dir)
}

/// Slots per key in the line table: at most half full (bench/RESULTS.md, "The connection
/// table on lines").
const LOAD: usize = 2;

/// A slab cell; `prev`/`next` link it into its class's LRU list, or, when free, `next` links the free
/// list.
#[derive(Clone, Copy)]
struct Node {
    entry: Entry,
    prev: u32,
    next: u32,
    /// How long after the entry was last put at its list's tail its last packet came:
    /// `last_seen_ms` - `lag` is the time its place in the list stands for, and `lag` is less
    /// than the class's refresh interval (module documentation, "Refresh"), so 4 bytes do.
    lag: u32,
    class: u8,
    live: bool,
}

impl Node {
    /// When the entry was last put at its list's tail.
    #[cfg(test)]
    fn listed_ms(&self) -> u64 {
        self.entry.last_seen_ms - u64::from(self.lag)
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

/// Class layout: TCP states 0..8 at `2 * state`, UDP (and other protocols) at 16, ICMP at 18; plus one
/// when a reply was seen. Even classes are therefore exactly the never-replied ones.
#[inline]
fn class_of(proto: u8, state: CtState, replied: bool) -> u8 {
    let base = match proto {
        protocol::TCP => match state {
            CtState::SynSent => 0,
            CtState::SynRecv => 2,
            CtState::Established => 4,
            CtState::FinWait => 6,
            CtState::CloseWait => 8,
            CtState::LastAck => 10,
            CtState::TimeWait => 12,
            // Close, and the non-TCP states that never occur on TCP entries.
            _ => 14,
        },
        protocol::ICMP => 18,
        _ => 16,
    };
    base + u8::from(replied)
}

/// How long after its last relink a packet of each class relinks its entry again: an eighth
/// of the class's timeout, at most [`REFRESH_GRANULARITY_MS`].
fn class_refreshes(timeouts: &[u64; CLASSES]) -> [u64; CLASSES] {
    timeouts.map(|t| (t / 8).min(REFRESH_GRANULARITY_MS))
}

/// Timeout of every class, precomputed from the configuration.
fn class_timeouts(t: &CtTimeouts) -> [u64; CLASSES] {
    let tcp = [
        CtState::SynSent,
        CtState::SynRecv,
        CtState::Established,
        CtState::FinWait,
        CtState::CloseWait,
        CtState::LastAck,
        CtState::TimeWait,
        CtState::Close,
    ];
    let mut out = [0; CLASSES];
    for (class, slot) in out.iter_mut().enumerate() {
        let replied = class % 2 == 1;
        let (proto, state) = match class / 2 {
            s @ 0..=7 => (protocol::TCP, tcp[s]),
            8 => (protocol::UDP, udp_state(replied)),
            _ => (protocol::ICMP, udp_state(replied)),
        };
        *slot = t.timeout_ms(proto, state, replied);
    }
    out
}

#[inline]
fn udp_state(replied: bool) -> CtState {
    if replied {
        CtState::Replied
    } else {
        CtState::Unreplied
    }
}

/// State of a new entry from its first packet.
fn initial_state(proto: u8, tcp_flags: Option<u8>) -> CtState {
    if proto != protocol::TCP {
        return CtState::Unreplied;
    }
    let flags = tcp_flags.unwrap_or(0);
    if flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
        CtState::SynSent
    } else {
        // Loose pickup: whatever else the first packet is, the flow was already running.
        CtState::Established
    }
}

/// The TCP machine documented on [`ConnTrack::update`]. Returns the new state and closer.
fn tcp_next(
    state: CtState,
    closer: Option<Direction>,
    dir: Direction,
    flags: u8,
) -> (CtState, Option<Direction>) {
    use CtState::*;
    let syn = flags & TCP_SYN != 0;
    let ack = flags & TCP_ACK != 0;
    let fin = flags & TCP_FIN != 0;
    if flags & TCP_RST != 0 {
        return (Close, closer);
    }
    if syn {
        return match (state, dir, ack) {
            (TimeWait | Close, Direction::Original, false) => (SynSent, None),
            (SynSent, Direction::Reply, true) => (SynRecv, closer),
            _ => (state, closer),
        };
    }
    // `from_peer`: the packet comes from the side that did not send the first FIN.
    let from_peer = closer.is_some_and(|c| c != dir);
    match state {
        SynRecv | Established if fin => (FinWait, Some(dir)),
        SynRecv if dir == Direction::Original && ack => (Established, closer),
        FinWait | CloseWait if from_peer && fin => (LastAck, closer),
        FinWait if from_peer && ack => (CloseWait, closer),
        LastAck if closer == Some(dir) && ack => (TimeWait, closer),
        _ => (state, closer),
    }
}

// ---------------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------------

/// The connection tracking table. See the module documentation.
pub struct ConnTrack {
    /// Both tuples of every entry, each whole in its slot with its slab index and direction
    /// ([`slot_of`]).
    slots: LineTable,
    hasher: FastHash,
    nodes: Vec<Node>,
    free_head: u32,
    /// One LRU list per class (see [`class_of`]), least recently listed at the head.
    lists: [List; CLASSES],
    class_timeout: [u64; CLASSES],
    class_refresh: [u64; CLASSES],
    live: usize,
    /// Largest `now_ms` seen; earlier times are raised to it so the lists stay ordered.
    clock: u64,
    config: CtConfig,
    stats: CtStats,
    /// Nodes examined by `expire` since creation (lets tests check that expiry is not a table scan).
    expire_visits: u64,
}

impl fmt::Debug for ConnTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTrack")
            .field("len", &self.live)
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Default for ConnTrack {
    fn default() -> Self {
        ConnTrack::new(CtConfig::default())
    }
}

impl ConnTrack {
    /// A table for `config`, fully preallocated: a slab of `max_entries` and an index for both
    /// tuples of each. `max_entries` is clamped into 1..=`MAX_ENTRIES_LIMIT`;
    /// `ConnTrack::config` reports what is in effect.
    pub fn new(config: CtConfig) -> ConnTrack {
        let config = CtConfig {
            max_entries: config.max_entries.clamp(1, MAX_ENTRIES_LIMIT),
            timeouts: config.timeouts,
        };
        let max = config.max_entries;
        let nodes = Vec::with_capacity(max);
        advise_huge_pages(&nodes);
        let class_timeout = class_timeouts(&config.timeouts);
        ConnTrack {
            // Each entry has two keys. The lines never grow and have no tombstones (line_table.rs).
            slots: LineTable::with_load(2 * max, LOAD),
            hasher: FastHash::random(),
            nodes,
            free_head: NIL,
            lists: [List::EMPTY; CLASSES],
            class_timeout,
            class_refresh: class_refreshes(&class_timeout),
            live: 0,
            clock: 0,
            config,
            stats: CtStats::default(),
            expire_visits: 0,
        }
    }

    #[cfg(test)]
    pub fn config(&self) -> &CtConfig {
        &self.config
    }

    /// The connection `t` belongs to, and which way the packet travels. Reads one line of the
    /// table (the tuple's slot holds the answer), not the entry.
    #[inline]
    pub fn lookup(&self, t: &Tuple) -> Option<(EntryId, Direction)> {
        self.find(t, self.hash(t)).map(|(_, slot)| {
            let (idx, dir) = slot_entry(slot);
            (EntryId(idx), dir)
        })
    }

    /// Asks the CPU to start loading the line a lookup of `t` reads: the first of a batch's two
    /// prefetch passes (then [`ConnTrack::prefetch_entry`], then the lookups). A hint only;
    /// nothing changes.
    #[inline]
    pub fn prefetch(&self, t: &Tuple) {
        self.slots.prefetch(self.hash(t));
    }

    /// The second prefetch pass: looks `t` up (its line loaded by [`ConnTrack::prefetch`]
    /// meanwhile) and asks for the lines of its entry the NAT stage reads and writes next.
    #[inline]
    pub fn prefetch_entry(&self, t: &Tuple) {
        if let Some((id, _)) = self.lookup(t) {
            self.prefetch_node(id.0);
        }
    }

    /// Asks for every line of entry `idx`'s node (136 bytes: three lines): a packet reads the
    /// other tuple and its direction's hop, and `update` then writes the counters, times, state
    /// and refresh lag, wherever the compiler placed them. Asking for only the two lines read left
    /// `update` a miss of its own: at 2^20 connections a NAT frame cost 406-471 ns with the
    /// two, 311-381 with all three (bench/RESULTS.md, "A NAT frame's entry"). A hint only.
    #[inline(always)]
    fn prefetch_node(&self, idx: u32) {
        if let Some(node) = self.nodes.get(idx as usize) {
            prefetch_all(node);
        }
    }

    /// [`ConnTrack::lookup`] for a batch of keys, software-pipelined so that the batch's cache
    /// misses overlap (`LineTable::pipelined`): in a table far larger than the caches each
    /// line misses, and one at a time they cost a memory latency each. The index only: a caller
    /// that reads the entries found next asks for them with
    /// [`ConnTrack::lookup_batch_prefetching`]. Same answers as `lookup` key by key (a test checks
    /// it).
    pub fn lookup_batch<const N: usize>(
        &self,
        keys: &[Tuple; N],
    ) -> [Option<(EntryId, Direction)>; N] {
        self.lookup_pipelined(keys, |_| {})
    }

    /// [`ConnTrack::lookup_batch`], each hit also asking for the lines of its entry a packet
    /// reads next (as [`ConnTrack::prefetch_entry`]) as soon as it is found. Asking for the
    /// entries in a pass of their own after the lookups measured slower (bench/RESULTS.md, "The
    /// connection table on lines").
    pub fn lookup_batch_prefetching<const N: usize>(
        &self,
        keys: &[Tuple; N],
    ) -> [Option<(EntryId, Direction)>; N] {
        self.lookup_pipelined(keys, |(idx, _)| self.prefetch_node(idx))
    }

    #[inline(always)]
    fn lookup_pipelined<const N: usize>(
        &self,
        keys: &[Tuple; N],
        on_hit: impl Fn((u32, Direction)),
    ) -> [Option<(EntryId, Direction)>; N] {
        let hashes: [u64; N] = std::array::from_fn(|i| self.hash(&keys[i]));
        self.slots.pipelined(&hashes, |i| {
            self.find(&keys[i], hashes[i]).map(|(_, slot)| {
                let (idx, dir) = slot_entry(slot);
                on_hit((idx, dir));
                (EntryId(idx), dir)
            })
        })
    }

    /// The entry `id` names. Panics if `id` is stale (its entry was removed).
    #[inline]
    pub fn get(&self, id: EntryId) -> &Entry {
        let node = &self.nodes[id.0 as usize];
        assert!(node.live, "stale conntrack EntryId {}", id.0);
        &node.entry
    }

    /// Whether `t` belongs to a tracked connection (either direction).
    #[inline]
    pub fn is_tracked(&self, t: &Tuple) -> bool {
        self.find(t, self.hash(t)).is_some()
    }

    /// Tracks a new connection whose first packet (`len` bytes, counted) went in the Original
    /// direction. The initial state comes from that packet: TCP SYN without ACK -> `SynSent`; any
    /// other TCP packet (or `tcp_flags` = None on TCP) -> `Established` (loose mid-stream pickup, so a
    /// daemon restart does not cut established flows); other protocols -> `Unreplied`.
    ///
    /// When the table is full, first evicts one entry in the order given in the module documentation.
    /// Fails, changing nothing, if either tuple is already tracked or the two are equal.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        original: Tuple,
        reply: Tuple,
        kind: NatKind,
        out_original: Hop,
        out_reply: Hop,
        mapping: Option<u32>,
        inside: Ipv4Addr,
        tcp_flags: Option<u8>,
        len: usize,
        now_ms: u64,
    ) -> Result<EntryId, CtError> {
        if original == reply {
            return Err(CtError::Ambiguous(original));
        }
        // Both tuples' lines asked for at once: at a million entries each misses the caches, and
        // the checks wait on them (then the new slots go into the same lines, loaded).
        let hashes = [self.hash(&original), self.hash(&reply)];
        for hash in hashes {
            self.slots.prefetch(hash);
        }
        if self.find(&original, hashes[0]).is_some() {
            return Err(CtError::Exists(original));
        }
        if self.find(&reply, hashes[1]).is_some() {
            return Err(CtError::Exists(reply));
        }
        let now = self.tick(now_ms);
        if self.live >= self.config.max_entries {
            self.evict_one();
        }
        let state = initial_state(original.proto, tcp_flags);
        let entry = Entry {
            original,
            reply,
            kind,
            out_original,
            out_reply,
            mapping,
            inside,
            state,
            closer: None,
            last_seen_ms: now,
            created_ms: now,
            packets: [1, 0],
            bytes: [len as u64, 0],
        };
        let class = class_of(original.proto, state, false);
        let idx = self.alloc_node(entry, class);
        list_push_back(&mut self.nodes, &mut self.lists[class as usize], idx);
        self.slots
            .insert(hashes[0], slot_of(&original, idx, Direction::Original));
        self.slots
            .insert(hashes[1], slot_of(&reply, idx, Direction::Reply));
        self.live += 1;
        self.stats.created += 1;
        Ok(EntryId(idx))
    }

    /// A packet of `len` bytes of connection `id` travelling in `dir`: counts it, stamps
    /// `last_seen` and moves the state; puts the entry at its class's list's tail if the class
    /// changed or the refresh interval passed since it was last put there (module
    /// documentation, "Refresh").
    ///
    /// UDP, ICMP and other protocols: a Reply packet moves `Unreplied` -> `Replied`.
    ///
    /// TCP (`tcp_flags`: FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10; None counts as no flags). No
    /// sequence numbers are checked: an ACK is taken to acknowledge whatever FIN came before it, so
    /// the closing states may be entered a little early. "Closer" is the side that sent the first
    /// FIN (recorded in `Entry::closer`), "peer" the other side. Rules are tried top to bottom; the
    /// first that matches applies:
    ///
    /// | from state             | packet                                   | to state      |
    /// |------------------------|------------------------------------------|---------------|
    /// | any                    | RST, either direction                    | `Close`       |
    /// | `TimeWait`, `Close`    | SYN without ACK, Original (port reuse)   | `SynSent`, closer forgotten |
    /// | `SynSent`              | SYN+ACK, Reply                           | `SynRecv`     |
    /// | any other              | any other packet with SYN                | unchanged     |
    /// | `SynRecv`, `Established` | FIN, either direction                  | `FinWait`, closer = sender |
    /// | `SynRecv`              | ACK, Original                            | `Established` |
    /// | `FinWait`, `CloseWait` | FIN from the peer                        | `LastAck`     |
    /// | `FinWait`              | ACK (no FIN) from the peer               | `CloseWait`   |
    /// | `LastAck`              | ACK from the closer                      | `TimeWait`    |
    /// | any                    | anything else                            | unchanged     |
    ///
    /// Panics if `id` is stale.
    pub fn update(
        &mut self,
        id: EntryId,
        dir: Direction,
        tcp_flags: Option<u8>,
        len: usize,
        now_ms: u64,
    ) {
        let now = self.tick(now_ms);
        let idx = id.0;
        let node = &mut self.nodes[idx as usize];
        assert!(node.live, "stale conntrack EntryId {idx}");
        // Time since the entry was last put at its list's tail (the lag, then this packet's gap).
        let since_listed = u64::from(node.lag) + (now - node.entry.last_seen_ms);
        let e = &mut node.entry;
        let d = dir.index();
        e.packets[d] += 1;
        e.bytes[d] += len as u64;
        e.last_seen_ms = now;
        let proto = e.original.proto;
        if proto == protocol::TCP {
            (e.state, e.closer) = tcp_next(e.state, e.closer, dir, tcp_flags.unwrap_or(0));
        } else if dir == Direction::Reply {
            e.state = CtState::Replied;
        }
        let class = class_of(proto, e.state, e.replied());
        let old = node.class;
        // Relinking reads and writes the list neighbours' nodes, two more lines that miss the
        // caches at a million entries: only on a change of class, or once a refresh interval.
        let refresh = self.class_refresh[class as usize];
        if class == old && since_listed < refresh {
            // Less than the interval: `lag` < refresh (at most 1 s) fits its 32 bits.
            node.lag = since_listed as u32;
        } else {
            node.lag = 0;
            if class != old || self.lists[old as usize].tail != idx {
                list_unlink(&mut self.nodes, &mut self.lists[old as usize], idx);
                self.nodes[idx as usize].class = class;
                list_push_back(&mut self.nodes, &mut self.lists[class as usize], idx);
            }
        }
    }

    /// Remaining ms before entry `id` expires at `now_ms`: its state's timeout minus its idle time,
    /// saturating. An entry at 0 is removed by an [`ConnTrack::expire`] within its class's
    /// refresh interval (module documentation, "Refresh"), usually the next.
    pub fn remaining_ms(&self, id: EntryId, now_ms: u64) -> u64 {
        let node = &self.nodes[id.0 as usize];
        assert!(node.live, "stale conntrack EntryId {}", id.0);
        let idle = now_ms.saturating_sub(node.entry.last_seen_ms);
        self.class_timeout[node.class as usize].saturating_sub(idle)
    }

    /// A source port for a masqueraded flow of `proto` from `uplink_ip` to `dst`:`dport`: one whose
    /// reply tuple (`dst`:`dport` -> `uplink_ip`:port) is not tracked, and one of this worker's
    /// `share`. `preferred` if free and in the share (whether or not it lies in `range`: pass one
    /// inside the range to enforce it), else the first free port of the share in `range`
    /// (inclusive) scanning upwards, wrapping, from an offset derived from `preferred` so that
    /// concurrent flows spread. `None` after one full pass over the range, or if the range is empty
    /// (`lo > hi`). For ICMP echo, the port is the identifier and `dport` is ignored (the reply
    /// carries the identifier in both port fields). At most `range` size + 1 hash probes.
    #[allow(clippy::too_many_arguments)]
    pub fn pick_port(
        &self,
        proto: u8,
        uplink_ip: Ipv4Addr,
        dst: Ipv4Addr,
        dport: u16,
        preferred: u16,
        range: (u16, u16),
        share: PortShare,
    ) -> Option<u16> {
        let reply_for = |port: u16| Tuple {
            proto,
            src: dst,
            sport: if proto == protocol::ICMP { port } else { dport },
            dst: uplink_ip,
            dport: port,
        };
        if share.holds(preferred) && !self.is_tracked(&reply_for(preferred)) {
            return Some(preferred);
        }
        let (lo, hi) = range;
        if lo > hi {
            return None;
        }
        let size = u32::from(hi - lo) + 1;
        // Multiplying by an odd constant spreads neighbouring preferred ports over the range.
        let start = u32::from(preferred).wrapping_mul(0x9e37_79b1) % size;
        (0..size)
            .map(|i| lo + ((start + i) % size) as u16)
            .find(|&port| share.holds(port) && !self.is_tracked(&reply_for(port)))
    }

    /// Removes entries idle for at least their state's timeout (`remaining_ms` = 0); returns how
    /// many. Walks each class's LRU list from its least recently listed end and stops at the
    /// first entry not due: O(expired + `CLASSES`). Leaves no entry idle for its timeout plus
    /// its class's refresh interval (module documentation, "Refresh"). Unbounded: see
    /// [`ConnTrack::expire_at_most`].
    pub fn expire(&mut self, now_ms: u64) -> usize {
        self.expire_at_most(now_ms, usize::MAX)
    }

    /// [`ConnTrack::expire`], but stops after removing `budget` entries, so one call never stalls
    /// its caller for long (a million entries created together expire together: 0.23-0.43 s of
    /// removal in one call, bench/RESULTS.md). Returns how many it removed; `budget` removed means
    /// more may be due, and the caller calls again soon. The oldest go first within each class;
    /// classes are visited in a fixed order, so a budget used up in one leaves the next for later.
    pub fn expire_at_most(&mut self, now_ms: u64, budget: usize) -> usize {
        let now = self.tick(now_ms);
        let mut removed = 0;
        for class in 0..CLASSES {
            let timeout = self.class_timeout[class];
            loop {
                let head = self.lists[class].head;
                if head == NIL || removed == budget {
                    break;
                }
                self.expire_visits += 1;
                let idle = now.saturating_sub(self.nodes[head as usize].entry.last_seen_ms);
                if idle < timeout {
                    break;
                }
                self.remove_node(head);
                removed += 1;
            }
        }
        self.stats.expired += removed as u64;
        removed
    }

    /// Removes every entry created by published-port mapping `mapping`, so removing a published port
    /// cuts its flows at once. O(slab): a control-plane operation.
    pub fn remove_mapping(&mut self, mapping: u32) -> usize {
        self.remove_where(|e| e.mapping == Some(mapping))
    }

    /// Removes every entry involving the address `inside`: entries whose `inside` it is, and entries
    /// carrying it in either tuple (so a hairpin flow between two containers goes when either
    /// does). A removed container thus leaves no stale flow for its successor at the same address
    /// (docker0's stale UDP conntrack problem). O(slab): a control-plane operation.
    pub fn remove_inside(&mut self, inside: Ipv4Addr) -> usize {
        self.remove_where(|e| {
            e.inside == inside
                || e.original.src == inside
                || e.original.dst == inside
                || e.reply.src == inside
                || e.reply.dst == inside
        })
    }

    /// Removes every entry; returns how many. Keeps the allocations.
    #[cfg(test)]
    pub fn clear(&mut self) -> usize {
        let n = self.live;
        for idx in 0..self.nodes.len() {
            if self.nodes[idx].live {
                self.remove_node(idx as u32);
            }
        }
        self.stats.removed += n as u64;
        n
    }

    /// Every entry, in slab order (no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (EntryId, &Entry)> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.live)
            .map(|(i, n)| (EntryId(i as u32), &n.entry))
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.live
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn stats(&self) -> CtStats {
        CtStats {
            entries: self.live,
            max_entries: self.config.max_entries,
            ..self.stats
        }
    }

    // ---- internals ----

    /// The seeded hash of a tuple's two words ([`Tuple::words`]): what `Tuple`'s `Hash` feeds a
    /// `FastHash`, taken from the words so that a slot's hash follows from the slot alone.
    #[inline(always)]
    fn hash_words(hasher: &FastHash, (addrs, rest): (u64, u64)) -> u64 {
        let mut h = hasher.build_hasher();
        h.write_u64(addrs);
        h.write_u64(rest);
        h.finish()
    }

    #[inline(always)]
    fn hash(&self, t: &Tuple) -> u64 {
        Self::hash_words(&self.hasher, t.words())
    }

    /// Where `t` (whose hash is `hash`) sits in the line table, and its slot: one line read,
    /// the tuple compared in the slot itself.
    #[inline(always)]
    fn find(&self, t: &Tuple, hash: u64) -> Option<(usize, Slot)> {
        let (addrs, rest) = t.words();
        self.slots
            .find(hash, addrs, |slot| slot[1] >> KEY_SHIFT == rest)
    }

    /// Raises `now_ms` to the latest time seen, so appending at list tails keeps lists ordered.
    #[inline]
    fn tick(&mut self, now_ms: u64) -> u64 {
        self.clock = self.clock.max(now_ms);
        self.clock
    }

    fn alloc_node(&mut self, entry: Entry, class: u8) -> u32 {
        let node = Node {
            entry,
            lag: 0,
            prev: NIL,
            next: NIL,
            class,
            live: true,
        };
        if self.free_head != NIL {
            let idx = self.free_head;
            self.free_head = self.nodes[idx as usize].next;
            self.nodes[idx as usize] = node;
            idx
        } else {
            // Callers made room first, so live entries < max_entries = capacity: no reallocation.
            debug_assert!(self.nodes.len() < self.nodes.capacity());
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        }
    }

    /// Unlinks the node from its list, removes both its keys and frees it.
    fn remove_node(&mut self, idx: u32) {
        let node = &self.nodes[idx as usize];
        let (class, original, reply) = (node.class, node.entry.original, node.entry.reply);
        // Both tuples' lines asked for before the list neighbours are read and written: three
        // independent misses at a million entries, in flight together.
        let hashes = [self.hash(&original), self.hash(&reply)];
        for hash in hashes {
            self.slots.prefetch(hash);
        }
        list_unlink(&mut self.nodes, &mut self.lists[class as usize], idx);
        let hasher = self.hasher;
        for (t, hash) in [original, reply].iter().zip(hashes) {
            if let Some((pos, _)) = self.find(t, hash) {
                self.slots.remove_at(pos, |slot| {
                    Self::hash_words(&hasher, (slot[0], slot[1] >> KEY_SHIFT))
                });
            }
        }
        let node = &mut self.nodes[idx as usize];
        node.live = false;
        node.next = self.free_head;
        self.free_head = idx;
        self.live -= 1;
    }

    /// Evicts the least recently seen never-replied entry, else the least recently seen answered
    /// TCP entry that is not established, else the least recently seen entry (module docs).
    fn evict_one(&mut self) {
        // Each list's head is its least recently seen entry, so comparing heads is enough.
        let (mut unreplied, mut unsettled, mut any) = (NIL, NIL, NIL);
        let seen = |i: u32| self.nodes[i as usize].entry.last_seen_ms;
        let older = |i: u32, than: u32| than == NIL || seen(i) < seen(than);
        let established = class_of(protocol::TCP, CtState::Established, true) as usize;
        let tcp = class_of(protocol::TCP, CtState::SynSent, false) as usize
            ..=class_of(protocol::TCP, CtState::Close, true) as usize;
        for (class, list) in self.lists.iter().enumerate() {
            let head = list.head;
            if head == NIL {
                continue;
            }
            // Even classes are the never-replied ones (see `class_of`).
            if class % 2 == 0 {
                if older(head, unreplied) {
                    unreplied = head;
                }
            } else if tcp.contains(&class) && class != established && older(head, unsettled) {
                unsettled = head;
            }
            if older(head, any) {
                any = head;
            }
        }
        let victim = [unreplied, unsettled, any]
            .into_iter()
            .find(|&v| v != NIL)
            .unwrap_or(NIL);
        if victim != NIL {
            self.remove_node(victim);
            self.stats.evicted += 1;
        }
    }

    fn remove_where(&mut self, pred: impl Fn(&Entry) -> bool) -> usize {
        let mut removed = 0;
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            if node.live && pred(&node.entry) {
                self.remove_node(i as u32);
                removed += 1;
            }
        }
        self.stats.removed += removed as u64;
        removed
    }
}

#[cfg(test)]
impl ConnTrack {
    /// Checks every structural invariant; panics on the first violation.
    fn check_invariants(&self) {
        assert_eq!(
            self.slots.len(),
            2 * self.live,
            "the line table holds both tuples of each entry"
        );
        assert!(self.live <= self.config.max_entries);
        assert!(self.nodes.len() <= self.config.max_entries);
        let mut total = 0;
        for (class, list) in self.lists.iter().enumerate() {
            let mut n = 0;
            let mut prev = NIL;
            let mut cur = list.head;
            let mut listed = 0;
            while cur != NIL {
                let node = &self.nodes[cur as usize];
                assert!(node.live);
                assert_eq!(node.class as usize, class);
                assert_eq!(node.prev, prev);
                let e = &node.entry;
                assert_eq!(class_of(e.original.proto, e.state, e.replied()), node.class);
                assert!(node.listed_ms() >= listed, "list {class} out of order");
                listed = node.listed_ms();
                let slot = |t: &Tuple| self.lookup(t).map(|(id, dir)| (id.0, dir));
                assert_eq!(slot(&e.original), Some((cur, Direction::Original)));
                assert_eq!(slot(&e.reply), Some((cur, Direction::Reply)));
                assert!(
                    u64::from(node.lag) < self.class_refresh[class].max(1),
                    "seen a refresh interval after its last relink"
                );
                prev = cur;
                cur = node.next;
                n += 1;
            }
            assert_eq!(list.tail, prev);
            assert_eq!(list.len, n);
            total += n as usize;
        }
        assert_eq!(total, self.live);
        let mut free = 0;
        let mut cur = self.free_head;
        while cur != NIL {
            assert!(!self.nodes[cur as usize].live);
            cur = self.nodes[cur as usize].next;
            free += 1;
        }
        assert_eq!(free + self.live, self.nodes.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    // Counts allocations made by the current thread, so a test can assert that the per-packet
    // operations never allocate. Being the global allocator, it wraps every allocation of this test
    // binary; the cost is one thread-local increment.
    struct CountingAlloc;

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    fn count_one() {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    }

    fn allocations() -> u64 {
        ALLOCATIONS.with(|c| c.get())
    }

    // SAFETY: forwards to `System`, only adding a thread-local counter update.
    unsafe impl GlobalAlloc for CountingAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count_one();
            // SAFETY: the caller's contract for this call is passed on to `System` unchanged.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count_one();
            // SAFETY: the caller's contract for this call is passed on to `System` unchanged.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count_one();
            // SAFETY: the caller's contract for this call is passed on to `System` unchanged.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract for this call is passed on to `System` unchanged.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: CountingAlloc = CountingAlloc;

    const S: u64 = 1000;
    const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const C1: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 2);
    const C2: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 3);
    const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const SYN: Option<u8> = Some(TCP_SYN);
    const SYNACK: Option<u8> = Some(TCP_SYN | TCP_ACK);
    const ACK: Option<u8> = Some(TCP_ACK);
    const FINACK: Option<u8> = Some(TCP_FIN | TCP_ACK);
    const RST: Option<u8> = Some(TCP_RST);
    use Direction::{Original as O, Reply as R};

    fn hop(p: u16) -> Hop {
        Hop {
            port: PortId(p),
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, p as u8]),
        }
    }

    fn tuple(proto: u8, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Tuple {
        Tuple {
            proto,
            src,
            sport,
            dst,
            dport,
        }
    }

    fn ip(i: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 | i)
    }

    /// A published-port flow: REMOTE:sport -> HOST:8080, DNATed to `inside`:80.
    fn dnat(proto: u8, sport: u16, inside: Ipv4Addr) -> (Tuple, Tuple) {
        let original = tuple(proto, REMOTE, sport, HOST, 8080);
        let reply = tuple(proto, inside, 80, REMOTE, sport);
        (original, reply)
    }

    fn table(max_entries: usize) -> ConnTrack {
        ConnTrack::new(CtConfig {
            max_entries,
            ..CtConfig::default()
        })
    }

    fn add(
        t: &mut ConnTrack,
        (original, reply): (Tuple, Tuple),
        mapping: Option<u32>,
        inside: Ipv4Addr,
        flags: Option<u8>,
        now: u64,
    ) -> EntryId {
        t.insert(
            original,
            reply,
            NatKind::Dnat,
            hop(1),
            hop(2),
            mapping,
            inside,
            flags,
            60,
            now,
        )
        .unwrap()
    }

    #[test]
    fn a_batch_lookup_answers_as_single_lookups() {
        let mut t = table(4096);
        let key = |i: u32| tuple(protocol::UDP, ip(i), 1000, HOST, 53);
        for i in 0..2000u32 {
            add(&mut t, (key(i), key(i).reversed()), None, C1, None, 0);
        }
        // Hits in both directions and misses, mixed.
        let keys: [Tuple; 32] = std::array::from_fn(|i| match i % 3 {
            0 => key(i as u32 * 61),
            1 => key(i as u32 * 59).reversed(),
            _ => key(5000 + i as u32),
        });
        let batch = t.lookup_batch(&keys);
        for (k, found) in keys.iter().zip(batch) {
            assert_eq!(found, t.lookup(k), "{k}");
        }
        assert!(batch.iter().filter(|f| f.is_some()).count() > 16);
        assert_eq!(t.lookup_batch_prefetching(&keys), batch);
        // Shorter than the pipeline's reach, and one key.
        let few: [Tuple; 5] = std::array::from_fn(|i| keys[i]);
        assert_eq!(t.lookup_batch(&few), batch[..5]);
        assert_eq!(t.lookup_batch_prefetching(&[keys[1]]), [batch[1]]);
    }

    #[test]
    fn lookup_finds_both_directions() {
        let mut t = ConnTrack::default();
        let (o, r) = dnat(protocol::TCP, 40000, C1);
        assert_eq!(t.lookup(&o), None);
        let id = add(&mut t, (o, r), Some(7), C1, SYN, 0);
        assert_eq!(t.lookup(&o), Some((id, O)));
        assert_eq!(t.lookup(&r), Some((id, R)));
        assert_eq!(t.lookup(&o.reversed()), None);
        assert!(t.is_tracked(&r));
        let e = t.get(id);
        assert_eq!(
            (e.original, e.reply, e.mapping, e.inside),
            (o, r, Some(7), C1)
        );
        assert_eq!((e.packets, e.bytes), ([1, 0], [60, 0]));
        assert_eq!(e.kind, NatKind::Dnat);
        assert_eq!((e.out_original, e.out_reply), (hop(1), hop(2)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.iter().map(|(i, _)| i).collect::<Vec<_>>(), vec![id]);
        t.check_invariants();
    }

    #[test]
    fn duplicate_tuples_are_refused() {
        let mut t = ConnTrack::default();
        let (o, r) = dnat(protocol::UDP, 5353, C1);
        add(&mut t, (o, r), None, C1, None, 0);
        let other = tuple(protocol::UDP, C2, 1, REMOTE, 2);
        let mut err = |a, b| {
            t.insert(
                a,
                b,
                NatKind::Masquerade,
                hop(1),
                hop(2),
                None,
                C2,
                None,
                10,
                5,
            )
            .unwrap_err()
        };
        assert_eq!(err(o, other), CtError::Exists(o));
        assert_eq!(err(other, r), CtError::Exists(r));
        assert_eq!(err(r, other), CtError::Exists(r));
        let land = tuple(protocol::TCP, C2, 9, C2, 9);
        assert_eq!(err(land, land), CtError::Ambiguous(land));
        assert_eq!(
            CtError::Exists(o).to_string(),
            "connection udp 198.51.100.7:5353 -> 192.0.2.10:8080 is already tracked"
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().created, 1);
    }

    #[test]
    fn tcp_handshake_data_and_close_to_time_wait() {
        let to = CtTimeouts::default();
        let mut t = ConnTrack::default();
        let id = add(&mut t, dnat(protocol::TCP, 40000, C1), None, C1, SYN, 0);
        let st = |t: &ConnTrack| t.get(id).state;
        assert_eq!(st(&t), CtState::SynSent);
        assert_eq!(t.remaining_ms(id, 0), 120 * S);
        assert_eq!(t.remaining_ms(id, 20 * S), 100 * S);
        t.update(id, O, SYN, 60, S); // retransmitted SYN
        assert_eq!(st(&t), CtState::SynSent);
        t.update(id, R, SYNACK, 60, 2 * S);
        assert_eq!(st(&t), CtState::SynRecv);
        assert_eq!(t.remaining_ms(id, 2 * S), to.tcp_syn_recv_ms);
        t.update(id, O, ACK, 52, 3 * S);
        assert_eq!(st(&t), CtState::Established);
        assert_eq!(t.remaining_ms(id, 3 * S), 432_000 * S);
        for i in 0..10 {
            t.update(id, if i % 2 == 0 { O } else { R }, ACK, 1000, 4 * S + i);
        }
        assert_eq!(st(&t), CtState::Established);
        // The container closes first.
        t.update(id, R, FINACK, 52, 10 * S);
        assert_eq!(st(&t), CtState::FinWait);
        assert_eq!(t.get(id).closer, Some(R));
        assert_eq!(t.remaining_ms(id, 10 * S), 120 * S);
        t.update(id, R, FINACK, 52, 11 * S); // retransmitted FIN from the closer
        assert_eq!(st(&t), CtState::FinWait);
        t.update(id, O, ACK, 52, 12 * S);
        assert_eq!(st(&t), CtState::CloseWait);
        assert_eq!(t.remaining_ms(id, 12 * S), 60 * S);
        t.update(id, O, FINACK, 52, 13 * S);
        assert_eq!(st(&t), CtState::LastAck);
        assert_eq!(t.remaining_ms(id, 13 * S), 30 * S);
        t.update(id, O, ACK, 52, 14 * S); // the peer's own ACK does not finish it
        assert_eq!(st(&t), CtState::LastAck);
        t.update(id, R, ACK, 52, 15 * S);
        assert_eq!(st(&t), CtState::TimeWait);
        assert_eq!(t.remaining_ms(id, 15 * S), 120 * S);
        assert_eq!(t.remaining_ms(id, 200 * S), 0);
        let e = t.get(id);
        assert_eq!(e.packets, [11, 9]);
        assert_eq!(e.bytes, [60 * 2 + 52 * 4 + 5000, 60 + 5000 + 52 * 3]);
        assert_eq!((e.created_ms, e.last_seen_ms), (0, 15 * S));
        // Port reuse: a new SYN reopens the entry.
        t.update(id, O, SYN, 60, 16 * S);
        assert_eq!((st(&t), t.get(id).closer), (CtState::SynSent, None));
        t.check_invariants();
    }

    #[test]
    fn simultaneous_close_reaches_time_wait() {
        let mut t = ConnTrack::default();
        let id = add(&mut t, dnat(protocol::TCP, 40000, C1), None, C1, ACK, 0);
        t.update(id, O, FINACK, 52, 1);
        t.update(id, R, FINACK, 52, 2);
        assert_eq!(t.get(id).state, CtState::LastAck);
        t.update(id, O, ACK, 52, 3);
        assert_eq!(t.get(id).state, CtState::TimeWait);
    }

    #[test]
    fn rst_closes_from_any_state() {
        for setup in [
            vec![],
            vec![(R, SYNACK)],
            vec![(R, SYNACK), (O, ACK), (O, FINACK)],
        ] {
            let mut t = ConnTrack::default();
            let id = add(&mut t, dnat(protocol::TCP, 40000, C1), None, C1, SYN, 0);
            for (dir, flags) in setup {
                t.update(id, dir, flags, 40, 1);
            }
            t.update(id, R, Some(TCP_RST | TCP_ACK), 40, 5 * S);
            assert_eq!(t.get(id).state, CtState::Close);
            assert_eq!(t.remaining_ms(id, 5 * S), 10 * S);
            assert_eq!(t.remaining_ms(id, 9 * S), 6 * S);
            assert_eq!(t.expire(14 * S), 0);
            assert_eq!(t.expire(15 * S), 1);
            assert!(t.is_empty());
        }
        // RST in the Original direction too.
        let mut t = ConnTrack::default();
        let id = add(&mut t, dnat(protocol::TCP, 1, C1), None, C1, ACK, 0);
        t.update(id, O, RST, 40, 1);
        assert_eq!(t.get(id).state.name(), "CLOSE");
    }

    #[test]
    fn mid_stream_pickup_is_established() {
        let mut t = ConnTrack::default();
        let id = add(&mut t, dnat(protocol::TCP, 40000, C1), None, C1, ACK, 0);
        assert_eq!(t.get(id).state, CtState::Established);
        assert_eq!(t.remaining_ms(id, 0), 300 * S, "until the peer answers");
        t.update(id, R, ACK, 40, 0);
        assert_eq!(t.remaining_ms(id, 0), 432_000 * S);
        let id = add(
            &mut t,
            dnat(protocol::TCP, 40001, C1),
            None,
            C1,
            Some(0x18),
            0,
        ); // PSH+ACK
        assert_eq!(t.get(id).state, CtState::Established);
        let id = add(&mut t, dnat(protocol::TCP, 40002, C1), None, C1, SYNACK, 0);
        assert_eq!(t.get(id).state, CtState::Established);
        let id = add(&mut t, dnat(protocol::TCP, 40003, C1), None, C1, None, 0);
        assert_eq!(t.get(id).state, CtState::Established);
    }

    #[test]
    fn udp_and_icmp_unreplied_then_replied() {
        let mut t = ConnTrack::default();
        let id = add(&mut t, dnat(protocol::UDP, 5000, C1), None, C1, None, 0);
        assert_eq!(t.get(id).state, CtState::Unreplied);
        assert_eq!(t.remaining_ms(id, 10 * S), 20 * S);
        t.update(id, O, None, 100, 10 * S);
        assert_eq!(t.get(id).state, CtState::Unreplied);
        assert_eq!(t.remaining_ms(id, 10 * S), 30 * S);
        t.update(id, R, None, 100, 20 * S);
        assert_eq!(t.get(id).state, CtState::Replied);
        assert_eq!(t.get(id).state.name(), "REPLIED");
        assert_eq!(t.remaining_ms(id, 20 * S), 120 * S);
        assert_eq!(t.expire(20 * S + 119_999), 0);
        assert_eq!(t.expire(140 * S), 1);

        let echo = tuple(protocol::ICMP, C1, 77, REMOTE, 77);
        let reply = tuple(protocol::ICMP, REMOTE, 900, HOST, 900);
        let id = add(&mut t, (echo, reply), None, C1, None, 200 * S);
        assert_eq!(t.remaining_ms(id, 200 * S), 30 * S);
        t.update(id, R, None, 84, 201 * S);
        assert_eq!(t.get(id).state, CtState::Replied);
        assert_eq!(t.remaining_ms(id, 201 * S), 30 * S);
        t.check_invariants();
    }

    #[test]
    fn expire_removes_exactly_the_idle_ones() {
        let mut t = ConnTrack::default();
        let key = |proto, sport| dnat(proto, sport, C1).0;
        add(&mut t, dnat(protocol::UDP, 1, C1), None, C1, None, 0);
        let udp_replied = add(&mut t, dnat(protocol::UDP, 2, C1), None, C1, None, 0);
        add(&mut t, dnat(protocol::TCP, 3, C1), None, C1, SYN, 0);
        let est = add(&mut t, dnat(protocol::TCP, 4, C1), None, C1, ACK, 0);
        t.update(udp_replied, R, None, 1, S);
        add(&mut t, dnat(protocol::UDP, 5, C1), None, C1, None, 10 * S);
        assert_eq!(t.expire(29_999), 0);
        assert_eq!(t.expire(30 * S), 1);
        assert!(!t.is_tracked(&key(protocol::UDP, 1)));
        assert_eq!(t.expire(39_999), 0);
        assert_eq!(t.expire(40 * S), 1);
        assert!(!t.is_tracked(&key(protocol::UDP, 5)));
        assert_eq!(t.expire(120 * S), 1);
        assert!(
            !t.is_tracked(&key(protocol::TCP, 3)),
            "SYN_SENT lasts 120 s"
        );
        assert_eq!(t.expire(121 * S), 1);
        assert!(
            !t.is_tracked(&key(protocol::UDP, 2)),
            "replied UDP: 120 s after the reply"
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(&key(protocol::TCP, 4)), Some((est, O)));
        assert_eq!(t.stats().expired, 4);
        t.check_invariants();
    }

    /// One stray TCP segment (a mid-stream pickup nobody answers, e.g. with a bad checksum) must not
    /// hold an ESTABLISHED entry for 5 days: 300 s without a reply, as Linux.
    #[test]
    fn unreplied_tcp_lives_on_the_short_timeout_until_answered() {
        let mut t = ConnTrack::default();
        let key = |sport| dnat(protocol::TCP, sport, C1).0;
        let stray = add(&mut t, dnat(protocol::TCP, 1, C1), None, C1, ACK, 0);
        let answered = add(&mut t, dnat(protocol::TCP, 2, C1), None, C1, ACK, 0);
        assert_eq!(t.get(stray).state, CtState::Established);
        t.update(answered, R, ACK, 10, S);
        assert_eq!(t.remaining_ms(stray, 0), 300 * S);
        assert_eq!(t.expire(300 * S - 1), 0);
        assert_eq!(t.expire(300 * S), 1);
        assert!(!t.is_tracked(&key(1)), "never answered: gone after 300 s");
        assert_eq!(t.lookup(&key(2)), Some((answered, O)), "answered: 5 days");
        assert_eq!(t.remaining_ms(answered, S), 5 * 24 * 3600 * S);
        t.check_invariants();
    }

    #[test]
    fn expire_at_most_stops_at_its_budget_and_the_rest_follows() {
        let mut t = table(65_536);
        let udp = |i: u32| tuple(protocol::UDP, ip(i), 1000, HOST, 53);
        let tcp = |i: u32| tuple(protocol::TCP, ip(i), 1000, HOST, 443);
        for i in 0..6000u32 {
            // Unanswered UDP (30 s) and SYN_SENT (120 s): two classes.
            add(
                &mut t,
                (udp(i), udp(i).reversed()),
                None,
                C1,
                None,
                u64::from(i),
            );
            add(
                &mut t,
                (tcp(i), tcp(i).reversed()),
                None,
                C1,
                SYN,
                u64::from(i),
            );
        }
        let now = 200 * S;
        assert_eq!(t.expire_at_most(now, 4096), 4096);
        // The oldest of each class first: what went is a prefix of each.
        let gone = |t: &ConnTrack, key: &dyn Fn(u32) -> Tuple| {
            (0..6000).take_while(|&i| !t.is_tracked(&key(i))).count()
        };
        assert_eq!(gone(&t, &udp) + gone(&t, &tcp), 4096);
        assert_eq!(t.len(), 12_000 - 4096);
        t.check_invariants();
        assert_eq!(
            t.expire_at_most(now, 4096),
            4096,
            "the budget spans classes"
        );
        assert_eq!(t.expire_at_most(now, 4096), 12_000 - 8192);
        assert!(t.is_empty());
        assert_eq!(t.stats().expired, 12_000);
        t.check_invariants();
    }

    #[test]
    fn expire_touches_only_the_oldest_of_each_class() {
        let mut t = table(65_536);
        add(&mut t, dnat(protocol::UDP, 53, C2), None, C2, None, 0);
        for i in 0..60_000u32 {
            let o = tuple(protocol::TCP, ip(i), 1000, HOST, 443);
            let r = tuple(protocol::TCP, C1, 443, ip(i), 1000);
            add(&mut t, (o, r), None, C1, ACK, u64::from(i));
        }
        let before = t.expire_visits;
        assert_eq!(t.expire(31 * S), 1);
        // The expired UDP entry, then the head of the established list (live).
        assert_eq!(t.expire_visits - before, 2);
        assert_eq!(t.len(), 60_000);
        let before = t.expire_visits;
        assert_eq!(t.expire(32 * S), 0);
        assert_eq!(t.expire_visits - before, 1);
    }

    #[test]
    fn eviction_takes_half_open_connections_before_an_established_one() {
        let mut t = table(3);
        // An idle established connection, then two SYNs a server has answered (SYN_RECV).
        let a = add(&mut t, dnat(protocol::TCP, 1, C1), None, C1, SYN, 0);
        t.update(a, R, SYNACK, 1, 1);
        t.update(a, O, ACK, 1, 2);
        for (k, at) in [(2, 10), (3, 11)] {
            let e = add(&mut t, dnat(protocol::TCP, k, C1), None, C1, SYN, at);
            t.update(e, R, SYNACK, 1, at);
        }
        // Full, nothing unreplied: the oldest half-open one goes, not the older established one.
        add(&mut t, dnat(protocol::TCP, 4, C1), None, C1, SYN, 20);
        assert!(t.is_tracked(&dnat(protocol::TCP, 1, C1).0));
        assert!(!t.is_tracked(&dnat(protocol::TCP, 2, C1).0));
        assert!(t.is_tracked(&dnat(protocol::TCP, 3, C1).0));
    }

    #[test]
    fn eviction_prefers_unreplied_then_oldest() {
        let mut t = table(4);
        let a = add(&mut t, dnat(protocol::TCP, 1, C1), None, C1, ACK, 0); // picked up, no reply yet
        let b = add(&mut t, dnat(protocol::UDP, 2, C1), None, C1, None, 1);
        let c = add(&mut t, dnat(protocol::TCP, 3, C1), None, C1, SYN, 2);
        let d = add(&mut t, dnat(protocol::UDP, 4, C1), None, C1, None, 3);
        t.update(a, R, ACK, 1, 4);
        t.update(b, R, None, 1, 5);
        // Unreplied: c (2), d (3). The oldest of them goes, although a and b are older overall.
        add(&mut t, dnat(protocol::UDP, 5, C1), None, C1, None, 6);
        assert!(!t.is_tracked(&dnat(protocol::TCP, 3, C1).0));
        assert_eq!(t.stats().evicted, 1);
        let _ = c;
        // Replying to d and the new one leaves no unreplied entry: the least recently seen goes (a).
        t.update(d, R, None, 1, 7);
        let e = t.lookup(&dnat(protocol::UDP, 5, C1).0).unwrap().0;
        t.update(e, R, None, 1, 8);
        add(&mut t, dnat(protocol::UDP, 6, C1), None, C1, None, 9);
        assert!(!t.is_tracked(&dnat(protocol::TCP, 1, C1).0));
        assert!(t.is_tracked(&dnat(protocol::UDP, 2, C1).0));
        let s = t.stats();
        assert_eq!(
            (s.entries, s.evicted, s.created, s.max_entries),
            (4, 2, 6, 4)
        );
        t.check_invariants();
    }

    #[test]
    fn remove_mapping_and_inside() {
        let mut t = ConnTrack::default();
        add(&mut t, dnat(protocol::TCP, 1, C1), Some(1), C1, ACK, 0);
        add(&mut t, dnat(protocol::UDP, 2, C1), Some(1), C1, None, 0);
        add(&mut t, dnat(protocol::TCP, 3, C2), Some(2), C2, ACK, 0);
        // C1 masquerading out, no mapping.
        let o = tuple(protocol::UDP, C1, 5000, REMOTE, 53);
        let r = tuple(protocol::UDP, REMOTE, 53, HOST, 5000);
        add(&mut t, (o, r), None, C1, None, 0);
        // Hairpin C2 -> HOST:8080 -> C1:80; recorded with inside = C1, but it involves C2 too.
        let o = tuple(protocol::TCP, C2, 6000, HOST, 8080);
        let r = tuple(protocol::TCP, C1, 80, HOST, 6000);
        add(&mut t, (o, r), Some(1), C1, SYN, 0);

        assert_eq!(t.remove_mapping(1), 3);
        assert_eq!(t.remove_mapping(1), 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove_inside(C1), 1);
        assert_eq!(t.len(), 1);
        assert!(t.is_tracked(&dnat(protocol::TCP, 3, C2).0));

        add(&mut t, (o, r), Some(1), C1, SYN, 0);
        assert_eq!(
            t.remove_inside(C2),
            2,
            "the hairpin flow goes with either container"
        );
        assert!(t.is_empty());
        assert_eq!(t.stats().removed, 6);
        add(&mut t, dnat(protocol::TCP, 1, C1), Some(1), C1, ACK, 0);
        add(&mut t, dnat(protocol::TCP, 2, C1), Some(1), C1, ACK, 0);
        assert_eq!(t.clear(), 2);
        assert!(t.is_empty());
        assert_eq!(t.lookup(&dnat(protocol::TCP, 1, C1).0), None);
        assert_eq!(t.stats().removed, 8);
        t.check_invariants();
    }

    #[test]
    fn pick_port_prefers_then_scans_then_gives_up() {
        let mut t = ConnTrack::default();
        let masq = |t: &mut ConnTrack, inner: Ipv4Addr, sport: u16, port: u16| {
            let o = tuple(protocol::TCP, inner, sport, REMOTE, 443);
            let r = tuple(protocol::TCP, REMOTE, 443, HOST, port);
            add(t, (o, r), None, inner, SYN, 0);
        };
        let pick = |t: &ConnTrack, preferred, range| {
            t.pick_port(
                protocol::TCP,
                HOST,
                REMOTE,
                443,
                preferred,
                range,
                PortShare::ALL,
            )
        };
        assert_eq!(pick(&t, 40000, (1024, 1027)), Some(40000));
        masq(&mut t, C1, 40000, 40000);
        // Another container using the same source port is moved into the range.
        let p = pick(&t, 40000, (1024, 1027)).unwrap();
        assert!((1024..=1027).contains(&p));
        // Same port to another destination port or protocol is free.
        assert_eq!(
            t.pick_port(
                protocol::TCP,
                HOST,
                REMOTE,
                80,
                40000,
                (1, 2),
                PortShare::ALL
            ),
            Some(40000)
        );
        assert_eq!(
            t.pick_port(
                protocol::UDP,
                HOST,
                REMOTE,
                443,
                40000,
                (1, 2),
                PortShare::ALL
            ),
            Some(40000)
        );
        // Fill the range: each pick returns a port not yet taken, then None.
        let mut taken = vec![];
        for i in 0..4 {
            let p = pick(&t, 40000, (1024, 1027)).unwrap();
            assert!(!taken.contains(&p));
            taken.push(p);
            masq(&mut t, C2, 41000 + i, p);
        }
        assert_eq!(pick(&t, 40000, (1024, 1027)), None);
        assert_eq!(pick(&t, 40000, (2000, 1999)), None);
        assert_eq!(pick(&t, 1025, (1024, 1027)), None);
        // Different preferred ports start at different places.
        let starts: std::collections::HashSet<_> = (0..8u16)
            .map(|i| {
                let mut t2 = ConnTrack::default();
                masq(&mut t2, C1, 30000 + i, 30000 + i);
                pick(&t2, 30000 + i, (1000, 1999)).unwrap()
            })
            .collect();
        assert!(starts.len() > 1);
        // A worker of two keeps a flow's own port only if it is in its share, and scans its share.
        let t = ConnTrack::default();
        let odd = PortShare { index: 1, of: 2 };
        let p = t
            .pick_port(protocol::TCP, HOST, REMOTE, 443, 40000, (1024, 1027), odd)
            .unwrap();
        assert!(p == 1025 || p == 1027, "{p}");
        assert_eq!(
            t.pick_port(protocol::TCP, HOST, REMOTE, 443, 40001, (1024, 1027), odd),
            Some(40001)
        );
        assert_eq!(
            t.pick_port(protocol::TCP, HOST, REMOTE, 443, 1024, (1024, 1024), odd),
            None,
            "nothing of the share in the range"
        );
        // ICMP: the identifier is both ports of the reply.
        let mut t = ConnTrack::default();
        let o = tuple(protocol::ICMP, C1, 9, REMOTE, 9);
        let r = tuple(protocol::ICMP, REMOTE, 9, HOST, 9);
        add(&mut t, (o, r), None, C1, None, 0);
        assert_eq!(
            t.pick_port(protocol::ICMP, HOST, REMOTE, 0, 9, (9, 10), PortShare::ALL),
            Some(10)
        );
    }

    #[test]
    fn time_going_backwards_keeps_order() {
        let mut t = ConnTrack::default();
        let a = add(&mut t, dnat(protocol::UDP, 1, C1), None, C1, None, 10 * S);
        let b = add(&mut t, dnat(protocol::UDP, 2, C1), None, C1, None, 5 * S);
        assert_eq!(t.get(b).last_seen_ms, 10 * S);
        t.update(a, O, None, 1, 1);
        t.check_invariants();
        assert_eq!(t.remaining_ms(a, 0), 30 * S);
        assert_eq!(t.expire(40 * S), 2);
    }

    /// What a connection costs: a 136-byte node and, at a million, 2^20 lines of 64 bytes for
    /// its two tuples (bench/RESULTS.md has the measured 203 bytes).
    #[test]
    fn a_connection_costs_a_node_and_four_slots() {
        assert_eq!(std::mem::size_of::<Node>(), 136);
        let t = table(1 << 20);
        assert_eq!(t.slots.bytes(), ((1 << 20) + 1) * 64);
    }

    /// A packet less than the refresh interval (1 s here) after its entry's last relink leaves
    /// the entry where it is in its list, so an entry behind it may expire late, by less than
    /// the interval; never early.
    #[test]
    fn a_packet_within_the_refresh_interval_leaves_the_entry_in_place() {
        let mut t = ConnTrack::default();
        let key = |sport| dnat(protocol::UDP, sport, C1).0;
        let a = add(&mut t, dnat(protocol::UDP, 1, C1), None, C1, None, 0);
        let b = add(&mut t, dnat(protocol::UDP, 2, C1), None, C1, None, 100);
        t.update(a, O, None, 10, 999);
        assert_eq!(t.get(a).last_seen_ms, 999, "the time stamp is exact");
        assert_eq!(t.remaining_ms(a, 999), 30 * S);
        assert_eq!(t.nodes[a.0 as usize].listed_ms(), 0, "not relinked");
        t.check_invariants();
        // b is due at 30.1 s but a, ahead of it in the list, is not: b waits for a.
        assert_eq!(t.remaining_ms(b, 30_100), 0);
        assert_eq!(t.expire(30_998), 0);
        assert!(t.is_tracked(&key(2)));
        assert_eq!(t.expire(30_999), 2, "a, then b, 899 ms late");
        // A packet a full interval after the last relink moves the entry to the tail.
        let c = add(&mut t, dnat(protocol::UDP, 3, C1), None, C1, None, 40 * S);
        let d = add(
            &mut t,
            dnat(protocol::UDP, 4, C1),
            None,
            C1,
            None,
            40 * S + 1,
        );
        t.update(c, O, None, 10, 41 * S);
        assert_eq!(t.nodes[c.0 as usize].listed_ms(), 41 * S);
        assert_eq!(t.lists[t.nodes[c.0 as usize].class as usize].tail, c.0);
        assert_eq!(t.expire(70 * S + 1), 1, "d on time");
        assert_eq!(t.lookup(&key(3)), Some((c, O)));
        assert!(!t.is_tracked(&key(4)));
        // A change of class relinks at once: its new list is ordered too.
        t.update(c, R, None, 10, 70 * S + 5);
        assert_eq!(t.get(c).state, CtState::Replied);
        assert_eq!(t.nodes[c.0 as usize].listed_ms(), 70 * S + 5);
        t.check_invariants();
        let _ = d;
    }

    #[test]
    fn refresh_is_an_eighth_of_a_short_timeout_and_at_most_a_second() {
        let t = ConnTrack::new(CtConfig {
            max_entries: 4,
            timeouts: CtTimeouts {
                tcp_close_ms: 4000,
                udp_unreplied_ms: 80,
                ..CtTimeouts::default()
            },
        });
        let udp = class_of(protocol::UDP, CtState::Unreplied, false) as usize;
        let close = class_of(protocol::TCP, CtState::Close, true) as usize;
        let established = class_of(protocol::TCP, CtState::Established, true) as usize;
        assert_eq!(t.class_refresh[udp], 10);
        assert_eq!(t.class_refresh[close], 500);
        assert_eq!(t.class_refresh[established], REFRESH_GRANULARITY_MS);
    }

    /// The daemon's largest `--max-conntrack` fits, and a table at the limit works (its slab
    /// and lines are reserved, not touched: a few huge pages become resident).
    #[test]
    fn a_table_at_the_limit() {
        const { assert!(4_000_000 <= MAX_ENTRIES_LIMIT) };
        let mut t = table(MAX_ENTRIES_LIMIT + 1);
        assert_eq!(t.config().max_entries, MAX_ENTRIES_LIMIT);
        let (o, r) = dnat(protocol::TCP, 40000, C1);
        let id = add(&mut t, (o, r), None, C1, SYN, 0);
        assert_eq!(t.lookup(&r), Some((id, R)));
        // The largest slab index packs and unpacks (a full table's last entry).
        let last = MAX_ENTRIES_LIMIT as u32 - 1;
        assert_eq!(slot_entry(slot_of(&o, last, R)), (last, R));
    }

    proptest! {
        /// Any tuple, any slab index of a full table, either direction: the slot is never the
        /// line table's empty one, holds the tuple whole (the lookup compares it there) and
        /// hashes from itself as the tuple does (what removal's backward shift needs).
        #[test]
        fn a_slot_never_packs_to_empty(
            proto: u8, src: u32, sport: u16, dst: u32, dport: u16,
            idx in 0..MAX_ENTRIES_LIMIT as u32, reply: bool,
        ) {
            let t = tuple(proto, Ipv4Addr::from(src), sport, Ipv4Addr::from(dst), dport);
            let dir = if reply { R } else { O };
            let slot = slot_of(&t, idx, dir);
            prop_assert_ne!(slot, [0, 0]);
            prop_assert_eq!(slot_entry(slot), (idx, dir));
            prop_assert_eq!((slot[0], slot[1] >> KEY_SHIFT), t.words());
            let hasher = FastHash::random();
            prop_assert_eq!(
                ConnTrack::hash_words(&hasher, (slot[0], slot[1] >> KEY_SHIFT)),
                hasher.hash_one(t)
            );
        }

        /// Inserts and removals of arbitrary tuples (zero addresses and ports included) in a
        /// table of 8 entries (16 keys in 8 lines of 4 slots, so runs cross lines and wrap
        /// past the last one when the table fills), against a map: each tuple found exactly
        /// when the map has it, with the map's entry and direction.
        #[test]
        fn slots_match_a_map(
            universe in prop::collection::vec(
                (0u8..3, any::<u32>(), any::<u16>(), prop_oneof![Just(0u32), any::<u32>()], any::<u16>()),
                24,
            ),
            ops in prop::collection::vec((any::<bool>(), 0usize..24), 1..300),
        ) {
            let universe: Vec<Tuple> = universe
                .into_iter()
                .map(|(p, s, sp, d, dp)| {
                    tuple(PROTOS[p as usize], Ipv4Addr::from(s), sp, Ipv4Addr::from(d), dp)
                })
                .collect();
            let mut t = table(8);
            let mut map: std::collections::HashMap<Tuple, (EntryId, Direction)> = Default::default();
            for (insert, k) in ops {
                let o = universe[k];
                let r = Tuple { sport: !o.sport, ..o.reversed() };
                match (insert, map.get(&o).copied()) {
                    (true, None) if t.len() < 8 => {
                        let got = t.insert(o, r, NatKind::Masquerade, hop(1), hop(2), None, C1, None, 1, 0);
                        if o == r {
                            prop_assert_eq!(got, Err(CtError::Ambiguous(o)));
                        } else if map.contains_key(&r) {
                            prop_assert_eq!(got, Err(CtError::Exists(r)));
                        } else {
                            let id = got.unwrap();
                            map.insert(o, (id, O));
                            map.insert(r, (id, R));
                        }
                    }
                    (false, Some((id, _))) => {
                        let e = *t.get(id);
                        t.remove_node(id.0);
                        map.remove(&e.original);
                        map.remove(&e.reply);
                    }
                    _ => {}
                }
                t.check_invariants();
                for u in &universe {
                    prop_assert_eq!(t.lookup(u), map.get(u).copied(), "{}", u);
                    let r = Tuple { sport: !u.sport, ..u.reversed() };
                    prop_assert_eq!(t.lookup(&r), map.get(&r).copied(), "{}", r);
                }
            }
        }
    }

    #[test]
    fn config_is_clamped_and_defaults_match_linux() {
        let t = table(0);
        assert_eq!(t.config().max_entries, 1);
        let c = CtConfig::default();
        assert_eq!(c.max_entries, 65_536);
        let to = c.timeouts;
        assert_eq!(to.tcp_established_ms, 5 * 24 * 3600 * S);
        assert_eq!(
            to.timeout_ms(protocol::UDP, CtState::Replied, true),
            120 * S
        );
        assert_eq!(to.timeout_ms(47, CtState::Unreplied, false), 30 * S);
        assert_eq!(
            to.timeout_ms(protocol::ICMP, CtState::Replied, true),
            30 * S
        );
        let established = |replied| to.timeout_ms(protocol::TCP, CtState::Established, replied);
        assert_eq!(established(true), 5 * 24 * 3600 * S);
        assert_eq!(established(false), 300 * S, "until the peer answers");
        assert_eq!(
            to.timeout_ms(protocol::TCP, CtState::SynSent, false),
            120 * S
        );
        let mut t = table(1);
        add(&mut t, dnat(protocol::UDP, 1, C1), None, C1, None, 0);
        add(&mut t, dnat(protocol::UDP, 2, C1), None, C1, None, 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().evicted, 1);
    }

    #[test]
    fn per_packet_operations_do_not_allocate() {
        let max = 1024;
        let mut t = table(max);
        let slab = t.nodes.capacity();
        let before = allocations();
        // Many times the table's size of churn, through eviction, expiry and updates.
        let mut now = 0;
        for i in 0..200_000u32 {
            now += 1;
            let o = tuple(protocol::UDP, ip(i), (i % 60_000) as u16, HOST, 53);
            let r = tuple(protocol::UDP, C1, 53, ip(i), (i % 60_000) as u16);
            let id = t
                .insert(o, r, NatKind::Dnat, hop(1), hop(2), None, C1, None, 60, now)
                .unwrap();
            if i % 3 == 0 {
                t.update(id, R, None, 60, now);
            }
            if let Some((id, dir)) = t.lookup(&tuple(
                protocol::UDP,
                ip(i / 2),
                (i / 2 % 60_000) as u16,
                HOST,
                53,
            )) {
                t.update(id, dir, None, 60, now);
            }
            if i % 5000 == 0 {
                t.expire(now);
            }
            let _ = t.pick_port(protocol::UDP, HOST, ip(i), 53, 1, (1, 100), PortShare::ALL);
        }
        assert_eq!(allocations() - before, 0);
        assert_eq!(t.nodes.capacity(), slab);
        assert_eq!(t.len(), max);
        t.check_invariants();
    }

    // ---- model-based property test ----

    #[derive(Clone, Debug)]
    enum Op {
        Insert {
            original: (u8, u8, u8, u8, u8),
            reply: (u8, u8, u8, u8, u8),
            flags: u8,
            mapping: u8,
        },
        Update {
            pick: usize,
            reply: bool,
            flags: u8,
        },
        Advance(u64),
        Expire,
        RemoveMapping(u8),
        RemoveInside(u8),
        Clear,
    }

    const PROTOS: [u8; 3] = [protocol::TCP, protocol::UDP, protocol::ICMP];
    const FLAG_CHOICES: [u8; 6] = [
        TCP_SYN,
        TCP_SYN | TCP_ACK,
        TCP_ACK,
        TCP_FIN | TCP_ACK,
        TCP_RST,
        0,
    ];

    fn small_tuple((p, a, sp, b, dp): (u8, u8, u8, u8, u8)) -> Tuple {
        tuple(
            PROTOS[p as usize % 3],
            Ipv4Addr::new(10, 0, 0, a % 4),
            u16::from(sp % 3),
            Ipv4Addr::new(10, 0, 0, b % 4),
            u16::from(dp % 3),
        )
    }

    fn op() -> impl Strategy<Value = Op> {
        let t = || (0u8..3, 0u8..4, 0u8..3, 0u8..4, 0u8..3);
        prop_oneof![
            6 => (t(), t(), 0u8..6, 0u8..3).prop_map(|(original, reply, flags, mapping)| Op::Insert {
                original,
                reply,
                flags,
                mapping
            }),
            6 => (any::<usize>(), any::<bool>(), 0u8..6).prop_map(|(pick, reply, flags)| Op::Update {
                pick,
                reply,
                flags
            }),
            2 => (1u64..40).prop_map(Op::Advance),
            2 => Just(Op::Expire),
            1 => (0u8..3).prop_map(Op::RemoveMapping),
            1 => (0u8..4).prop_map(Op::RemoveInside),
            1 => Just(Op::Clear),
        ]
    }

    #[derive(Clone, Debug)]
    struct ModelEntry {
        id: EntryId,
        original: Tuple,
        reply: Tuple,
        mapping: Option<u32>,
        inside: Ipv4Addr,
        last_seen: u64,
        /// When the entry was last put at its list's tail: on insertion, on a change of class,
        /// and by a packet at least the class's refresh interval after the last time.
        listed: u64,
        replied: bool,
        /// The table's state of the entry after the last operation on it.
        state: CtState,
    }

    impl ModelEntry {
        fn class(&self) -> u8 {
            class_of(self.original.proto, self.state, self.replied)
        }
    }

    fn involves(m: &ModelEntry, a: Ipv4Addr) -> bool {
        m.inside == a || [m.original.src, m.original.dst, m.reply.src, m.reply.dst].contains(&a)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn agrees_with_a_model(ops in proptest::collection::vec(op(), 1..120)) {
            let timeouts = CtTimeouts {
                tcp_syn_sent_ms: 50,
                tcp_syn_recv_ms: 40,
                tcp_established_ms: 300,
                tcp_fin_wait_ms: 60,
                tcp_close_wait_ms: 45,
                tcp_last_ack_ms: 35,
                tcp_time_wait_ms: 70,
                tcp_close_ms: 15,
                tcp_unreplied_ms: 100,
                udp_unreplied_ms: 30,
                udp_replied_ms: 90,
                icmp_ms: 25,
            };
            let mut t = ConnTrack::new(CtConfig { max_entries: 6, timeouts });
            // An eighth of each timeout: 1-37 ms, against steps of 1-40 ms, so packets both
            // relink their entries and leave them in place.
            let refresh = class_refreshes(&class_timeouts(&timeouts));
            let mut model: Vec<ModelEntry> = vec![];
            let mut now = 0u64;
            for op in ops {
                // Every operation happens at its own millisecond, so last_seen values are distinct and
                // the eviction victim is unique.
                now += 1;
                match op {
                    Op::Insert { original, reply, flags, mapping } => {
                        let (o, r) = (small_tuple(original), small_tuple(reply));
                        let r = Tuple { proto: o.proto, ..r };
                        let inside = r.src;
                        let mapping = (mapping > 0).then_some(u32::from(mapping));
                        let flags = (o.proto == protocol::TCP).then_some(FLAG_CHOICES[flags as usize]);
                        let tracked = |x: &Tuple| model.iter().any(|m| m.original == *x || m.reply == *x);
                        let expect = if o == r {
                            Err(CtError::Ambiguous(o))
                        } else if tracked(&o) {
                            Err(CtError::Exists(o))
                        } else if tracked(&r) {
                            Err(CtError::Exists(r))
                        } else {
                            Ok(())
                        };
                        let got = t.insert(
                            o, r, NatKind::Masquerade, hop(1), hop(2), mapping, inside, flags, 10, now,
                        );
                        match (got, expect) {
                            (Ok(id), Ok(())) => {
                                if model.len() == 6 {
                                    // The TCP state machine is checked elsewhere: the model keeps
                                    // the state the table reported.
                                    let unsettled = |m: &ModelEntry| {
                                        m.original.proto == protocol::TCP
                                            && m.replied
                                            && m.state != CtState::Established
                                    };
                                    // Each class's list starts with its least recently listed
                                    // entry; of those heads, the least recently seen goes.
                                    let head = |m: &ModelEntry| {
                                        model.iter().filter(|n| n.class() == m.class())
                                            .all(|n| n.listed >= m.listed)
                                    };
                                    let oldest = |f: &dyn Fn(&ModelEntry) -> bool| {
                                        model.iter().enumerate().filter(|(_, m)| head(m) && f(m))
                                            .min_by_key(|(_, m)| m.last_seen).map(|(i, _)| i)
                                    };
                                    let victim = oldest(&|m| !m.replied)
                                        .or_else(|| oldest(&unsettled))
                                        .or_else(|| oldest(&|_| true))
                                        .unwrap();
                                    model.remove(victim);
                                }
                                let (original, reply, last_seen) = (o, r, now);
                                model.push(ModelEntry {
                                    id, original, reply, mapping, inside, last_seen, listed: now,
                                    replied: false, state: t.get(id).state,
                                });
                            }
                            (Err(e), Err(x)) => prop_assert_eq!(e, x),
                            (got, expect) => {
                                prop_assert!(false, "insert: got {:?}, expected {:?}", got, expect)
                            }
                        }
                    }
                    Op::Update { pick, reply, flags } => {
                        if !model.is_empty() {
                            let i = pick % model.len();
                            let m = &mut model[i];
                            let dir = if reply { R } else { O };
                            let key = if reply { m.reply } else { m.original };
                            prop_assert_eq!(t.lookup(&key), Some((m.id, dir)));
                            let flags = (key.proto == protocol::TCP).then_some(FLAG_CHOICES[flags as usize]);
                            t.update(m.id, dir, flags, 10, now);
                            let class = m.class();
                            m.last_seen = now;
                            m.replied |= reply;
                            let e = t.get(m.id);
                            m.state = e.state;
                            if m.class() != class || now - m.listed >= refresh[class as usize] {
                                m.listed = now;
                            }
                            if key.proto != protocol::TCP {
                                prop_assert_eq!(e.state == CtState::Replied, m.replied);
                            }
                        }
                    }
                    Op::Advance(ms) => now += ms,
                    Op::Expire => {
                        // What expire promises: it removes only entries idle for their timeout,
                        // and leaves none idle for their timeout and refresh interval together.
                        let before = model.len();
                        let expired = t.expire(now);
                        let mut kept = vec![];
                        for m in model.drain(..) {
                            let timeout = timeouts.timeout_ms(m.original.proto, m.state, m.replied);
                            let idle = now - m.last_seen;
                            if t.is_tracked(&m.original) {
                                prop_assert!(
                                    idle < timeout + refresh[m.class() as usize],
                                    "{:?} kept, idle {} ms", m, idle
                                );
                                kept.push(m);
                            } else {
                                prop_assert!(idle >= timeout, "{:?} expired, idle {} ms", m, idle);
                            }
                        }
                        model = kept;
                        prop_assert_eq!(expired, before - model.len());
                    }
                    Op::RemoveMapping(k) => {
                        let before = model.len();
                        model.retain(|m| m.mapping != Some(u32::from(k)));
                        prop_assert_eq!(t.remove_mapping(u32::from(k)), before - model.len());
                    }
                    Op::RemoveInside(a) => {
                        let a = Ipv4Addr::new(10, 0, 0, a);
                        let before = model.len();
                        model.retain(|m| !involves(m, a));
                        prop_assert_eq!(t.remove_inside(a), before - model.len());
                    }
                    Op::Clear => {
                        prop_assert_eq!(t.clear(), model.len());
                        model.clear();
                    }
                }
                t.check_invariants();
                prop_assert_eq!(t.len(), model.len());
                for m in &model {
                    prop_assert_eq!(t.lookup(&m.original), Some((m.id, O)));
                    prop_assert_eq!(t.lookup(&m.reply), Some((m.id, R)));
                    let e = t.get(m.id);
                    prop_assert_eq!(e.last_seen_ms, m.last_seen);
                    prop_assert_eq!(e.replied(), m.replied);
                    prop_assert_eq!((e.mapping, e.inside), (m.mapping, m.inside));
                }
                let s = t.stats();
                prop_assert_eq!(s.created - s.expired - s.evicted - s.removed, t.len() as u64);
            }
        }
    }
}
