//! An open-addressing hash table of 64-byte lines, four 16-byte slots to a line, each slot holding
//! a whole key and what a lookup answers: a hit reads one cache line.
//!
//! **Why.** At a million entries every lookup misses the caches, and what it costs is the number
//! of lines it reads one after the other. The index before it (index.rs, since removed) kept an
//! 8-byte hash fragment and a slab slot per bucket, so a hit read the bucket, then the slab node
//! to compare the key: two dependent misses, ~21 ns of memory a lookup even with a batch's misses
//! all overlapped on this VM (16-20 in flight per core, bench/RESULTS.md "Batched lookups"). Here
//! the slot holds the key itself and the answer beside it, so a hit is one miss, and a batch of
//! them overlaps into ~11 ns each.
//!
//! **Layout.** The table is a `Vec<u64>` of whole lines, aligned to 64 bytes (a line never
//! straddles two cache lines), allocated zeroed (untouched pages are not resident) and asking for
//! huge pages. A slot is two words (`[u64; 2]`), what they mean is the caller's (cam.rs packs a
//! MAC, VLAN, domain, port and node; conntrack.rs a tuple, direction and node); all-zero is an
//! empty slot, so the caller never stores one.
//! A key's *home* is the line its hash's low bits name.
//!
//! **Linear probing by line, backward-shift deletion.** A key lives in the first line from its
//! home with a free slot; a lookup reads lines from the home until it finds the key or a line
//! that is not full. At most a quarter of the slots are full ([`LineTable::for_keys`]; half for
//! the connection table, [`LineTable::with_load`]), where 0.4% of keys live past their home line
//! (a simulation of 2^18 keys: 4.1% at half full), so nearly every hit and miss reads one line. Removing a key moves later keys of the same run back
//! into the hole whose home lies at or before it (Knuth's Algorithm R, by line): no tombstones,
//! no rehash, the table never degrades with churn. Slots move, so callers keep no positions across
//! a removal; the slab nodes the slots name never move.

use super::huge_pages::advise_huge_pages;
use super::prefetch::prefetch;

/// A slot's two words; `[0, 0]` is empty.
pub(super) type Slot = [u64; 2];

/// The empty slot.
pub(super) const EMPTY: Slot = [0, 0];
/// Slots per line.
const SLOTS: usize = 4;
/// Words per line (64 bytes).
const WORDS: usize = 2 * SLOTS;
/// Slots per key: at most a quarter full (see the module documentation).
const LOAD: usize = 4;

/// How far ahead of its lookups [`LineTable::pipelined`] asks for lines: about the misses one
/// core of the benchmark machine keeps in flight (16-20). Asking for a whole batch of 32 or 64
/// at once cost more than 16 at a time, likely because prefetches beyond what the core holds
/// wait in its load queue ahead of the lookups' own loads (bench/RESULTS.md "Lookups
/// software-pipelined").
const LOOKUP_AHEAD: usize = 16;

pub(super) struct LineTable {
    /// `lines * WORDS` words from `base`, plus the words before `base` that align it.
    words: Vec<u64>,
    /// The first word of line 0: the first 64-byte-aligned word of `words`.
    base: usize,
    /// Lines - 1 (a power of two).
    mask: usize,
}

impl LineTable {
    /// A table for up to `keys` keys: four slots per key (one line), rounded up to a power of
    /// two lines. Allocates once, zeroed.
    pub fn for_keys(keys: usize) -> LineTable {
        LineTable::with_load(keys, LOAD)
    }

    /// [`LineTable::for_keys`] with `slots_per_key` slots a key, at least 2 (2: at most half
    /// full, 4.1% of keys past their home line; the caller trades memory for probe length).
    pub fn with_load(keys: usize, slots_per_key: usize) -> LineTable {
        assert!(slots_per_key >= 2, "a line table is at most half full");
        let lines = (slots_per_key * keys.max(1))
            .div_ceil(SLOTS)
            .next_power_of_two();
        // One line more than needed, so that a 64-byte-aligned start lies within.
        let words = vec![0u64; (lines + 1) * WORDS];
        advise_huge_pages(&words);
        let base = (words.as_ptr() as usize).next_multiple_of(64) - words.as_ptr() as usize;
        LineTable {
            base: base / 8,
            words,
            mask: lines - 1,
        }
    }

    /// The line a key of `hash` probes first.
    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    #[inline(always)]
    fn line(&self, line: usize) -> &[u64; WORDS] {
        let at = self.base + line * WORDS;
        self.words[at..at + WORDS]
            .try_into()
            .expect("a line is WORDS words")
    }

    /// Asks for the line a key of `hash` probes first to be loaded (prefetch.rs): the first pass
    /// of a batched lookup.
    #[inline(always)]
    pub fn prefetch(&self, hash: u64) {
        prefetch(&self.words[self.base + self.home(hash) * WORDS]);
    }

    /// A batch of lookups software-pipelined so that their cache misses overlap: the lines of the
    /// first [`LOOKUP_AHEAD`] of `hashes` are asked for, then each `find(i)` (the lookup of the
    /// key whose hash is `hashes[i]`) comes after asking for the line of the key that many places
    /// further on. VPP's pattern; what the lookups answer is `find`'s.
    #[inline(always)]
    pub fn pipelined<const N: usize, T>(
        &self,
        hashes: &[u64; N],
        mut find: impl FnMut(usize) -> T,
    ) -> [T; N] {
        for &hash in hashes.iter().take(LOOKUP_AHEAD) {
            self.prefetch(hash);
        }
        std::array::from_fn(|i| {
            if let Some(&hash) = hashes.get(i + LOOKUP_AHEAD) {
                self.prefetch(hash);
            }
            find(i)
        })
    }

    /// The position and contents of the slot for which `is_key` holds, among the keys of
    /// `hash`'s run, whose first word is `first`; the position is for [`LineTable::set`] and
    /// [`LineTable::remove_at`], valid until the next insert or removal. `is_key` sees only
    /// full slots whose first word is `first`, and tells the key apart by the rest.
    ///
    /// A line's four first words are compared without a branch each: which slot a key sits in
    /// varies (a third of hits are past the first), and a mispredicted branch on a line that
    /// missed the caches throws away the work the CPU did meanwhile, such as starting the next
    /// lookup's load; the compares are independent, joined by ORs into a bit per slot. The
    /// branches left (a candidate in this line? a line with room?) go the same way nearly every
    /// time. Only a line without the key is looked at again, for an empty slot.
    #[inline(always)]
    pub fn find(
        &self,
        hash: u64,
        first: u64,
        is_key: impl Fn(Slot) -> bool,
    ) -> Option<(usize, Slot)> {
        let mut line = self.home(hash);
        loop {
            let words = self.line(line);
            let mut candidates = 0u32;
            for s in 0..SLOTS {
                candidates |= u32::from(words[2 * s] == first) << s;
            }
            while candidates != 0 {
                let s = candidates.trailing_zeros() as usize;
                let slot = [words[2 * s], words[2 * s + 1]];
                if slot != EMPTY && is_key(slot) {
                    return Some((line * SLOTS + s, slot));
                }
                candidates &= candidates - 1;
            }
            let mut empty = 0u32;
            for s in 0..SLOTS {
                empty |= u32::from(words[2 * s] | words[2 * s + 1] == 0) << s;
            }
            if empty != 0 {
                return None;
            }
            line = (line + 1) & self.mask;
        }
    }

    #[inline(always)]
    pub fn get(&self, pos: usize) -> Slot {
        let at = self.base + 2 * pos;
        [self.words[at], self.words[at + 1]]
    }

    /// Rewrites the slot at `pos` (from [`LineTable::find`]) with another non-empty value of the
    /// same key.
    #[inline]
    pub fn set(&mut self, pos: usize, slot: Slot) {
        debug_assert!(slot != EMPTY);
        let at = self.base + 2 * pos;
        self.words[at] = slot[0];
        self.words[at + 1] = slot[1];
    }

    /// Adds `slot` (not empty) for a key of `hash`. The caller made sure the key is absent and
    /// that the table holds fewer keys than `for_keys` was given (so a line with room exists).
    pub fn insert(&mut self, hash: u64, slot: Slot) -> usize {
        debug_assert!(slot != EMPTY);
        let mut line = self.home(hash);
        loop {
            if let Some(s) = (0..SLOTS).find(|&s| self.get(line * SLOTS + s) == EMPTY) {
                let pos = line * SLOTS + s;
                self.set(pos, slot);
                return pos;
            }
            line = (line + 1) & self.mask;
        }
    }

    /// Whether line `line` has an empty slot.
    fn open(&self, line: usize) -> bool {
        (0..SLOTS).any(|s| self.get(line * SLOTS + s) == EMPTY)
    }

    /// Empties the slot at `pos` (from [`LineTable::find`]) and moves back, into the hole, keys
    /// of later lines whose probe passed through it. `hash_of` gives a stored slot's hash.
    ///
    /// A key in line `j` with home `h` relies on every line of `[h, j)` being full. So a hole in
    /// line `hole` matters only if that line was full; then a key of a later line `j` of the
    /// same run whose home is not in `(hole, j]` must move into it (it may: the lines of
    /// `[h, hole)` are full), which leaves the hole in `j`, and so on. A line that was not full
    /// ends the run: no key beyond it has its home before it.
    pub fn remove_at(&mut self, pos: usize, hash_of: impl Fn(Slot) -> u64) {
        let mut hole = pos;
        let mut hole_line = pos / SLOTS;
        let was_full = !self.open(hole_line);
        self.set_empty(hole);
        if !was_full {
            return;
        }
        let mut line = hole_line;
        loop {
            line = (line + 1) & self.mask;
            let full = !self.open(line);
            let behind = (line.wrapping_sub(hole_line)) & self.mask;
            let movable = (0..SLOTS).map(|s| line * SLOTS + s).find(|&p| {
                let slot = self.get(p);
                slot != EMPTY && (line.wrapping_sub(self.home(hash_of(slot))) & self.mask) >= behind
            });
            if let Some(from) = movable {
                let slot = self.get(from);
                self.set(hole, slot);
                self.set_empty(from);
                (hole, hole_line) = (from, line);
            }
            if !full {
                return;
            }
        }
    }

    fn set_empty(&mut self, pos: usize) {
        let at = self.base + 2 * pos;
        self.words[at] = 0;
        self.words[at + 1] = 0;
    }

    /// Every full slot, in line order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = Slot> + '_ {
        self.words[self.base..self.base + (self.mask + 1) * WORDS]
            .chunks_exact(2)
            .map(|w| [w[0], w[1]])
            .filter(|&s| s != EMPTY)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Bytes allocated.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.words.capacity() * std::mem::size_of::<u64>()
    }

    /// Lines a lookup of the key of `hash` in slot `pos` reads (1: its home line).
    #[cfg(test)]
    pub fn lines_read(&self, hash: u64, pos: usize) -> usize {
        ((pos / SLOTS).wrapping_sub(self.home(hash)) & self.mask) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Keys 1.. stored as `[key, value]`, hashed by a function the test picks (so that homes
    /// collide and runs wrap past the last line at will).
    struct Model {
        table: LineTable,
        map: HashMap<u64, u64>,
        hash: fn(u64) -> u64,
    }

    impl Model {
        fn new(keys: usize, hash: fn(u64) -> u64) -> Model {
            Model {
                table: LineTable::for_keys(keys),
                map: HashMap::new(),
                hash,
            }
        }

        fn find(&self, key: u64) -> Option<usize> {
            self.table
                .find((self.hash)(key), key, |_| true)
                .map(|(pos, _)| pos)
        }

        fn check(&self) {
            assert_eq!(self.table.len(), self.map.len());
            for (&k, &v) in &self.map {
                let pos = self.find(k).unwrap_or_else(|| panic!("key {k} lost"));
                assert_eq!(self.table.get(pos), [k, v]);
            }
            // Every stored key is reachable from its home through full lines only.
            let hash = self.hash;
            for (line, chunk) in self.table.words[self.table.base..]
                .chunks_exact(WORDS)
                .take(self.table.mask + 1)
                .enumerate()
            {
                for s in 0..SLOTS {
                    let key = chunk[2 * s];
                    if key == 0 {
                        continue;
                    }
                    let mut l = self.table.home(hash(key));
                    while l != line {
                        assert!(!self.table.open(l), "key {key}: line {l} open before it");
                        l = (l + 1) & self.table.mask;
                    }
                }
            }
        }

        /// Applies one operation, checking the answer against the map.
        fn apply(&mut self, insert: bool, key: u64, value: u64, cap: usize) {
            let found = self.find(key);
            assert_eq!(found.is_some(), self.map.contains_key(&key), "key {key}");
            match (insert, found) {
                (true, Some(pos)) => {
                    self.table.set(pos, [key, value]);
                    self.map.insert(key, value);
                }
                (true, None) if self.map.len() < cap => {
                    self.table.insert((self.hash)(key), [key, value]);
                    self.map.insert(key, value);
                }
                (false, Some(pos)) => {
                    let hash = self.hash;
                    self.table.remove_at(pos, |s| hash(s[0]));
                    self.map.remove(&key);
                }
                _ => {}
            }
            self.check();
        }
    }

    /// Homes spread by a real mixer.
    fn mixed(key: u64) -> u64 {
        super::super::hash::fmix64(key)
    }

    /// Every key's home within the first two lines: one long run, wrapping around.
    fn clustered(key: u64) -> u64 {
        key % 2 + 2
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Inserts, rewrites and removes in any order in a table of 8 lines (8 keys): found
        /// exactly when the map has them, with the map's values, each reachable from its home.
        #[test]
        fn matches_a_map(ops in prop::collection::vec((any::<bool>(), 1u64..24, any::<u64>()), 1..300)) {
            let mut m = Model::new(8, mixed);
            for (insert, key, value) in ops {
                m.apply(insert, key, value | 1, 8);
            }
        }

        /// The same with every home in two neighbouring lines of four (4 keys): runs longer
        /// than a line, past the last line and back to the first, and deletions that shift keys
        /// back across the wrap.
        #[test]
        fn matches_a_map_when_homes_collide(ops in prop::collection::vec((any::<bool>(), 1u64..12, any::<u64>()), 1..300)) {
            let mut m = Model::new(4, clustered);
            // The table has 4 lines, but the test fills it past a quarter to make long runs:
            // up to 15 keys in 16 slots (one stays empty, so every probe ends).
            for (insert, key, value) in ops {
                m.apply(insert, key, value | 1, 15);
            }
        }
    }

    #[test]
    fn sized_at_four_slots_a_key_on_aligned_lines() {
        // 2^20 keys: 2^20 lines of 64 bytes, and one more for the alignment.
        let t = LineTable::for_keys(1 << 20);
        assert_eq!(t.mask + 1, 1 << 20);
        assert_eq!(t.bytes(), ((1 << 20) + 1) * 64);
        assert_eq!((t.words.as_ptr() as usize + 8 * t.base) % 64, 0);
        assert_eq!(LineTable::for_keys(0).mask, 0);
        assert_eq!(LineTable::for_keys(3).mask + 1, 4);
        // Half full: two slots a key.
        assert_eq!(LineTable::with_load(1 << 20, 2).mask + 1, 1 << 19);
    }

    #[test]
    fn an_empty_slot_is_never_a_hit() {
        let mut t = LineTable::for_keys(4);
        assert_eq!(t.find(7, 0, |_| true), None);
        t.insert(7, [0, 1]);
        assert_eq!(t.find(7, 0, |_| true), Some((7 % 4 * SLOTS, [0, 1])));
        assert_eq!(t.find(7, 1, |_| true), None);
    }

    #[test]
    fn a_miss_stops_at_the_first_line_with_room() {
        let mut m = Model::new(4, clustered);
        // Fill line 2 (keys 2, 4, 6, 8: home 2), spilling 10 into line 3.
        for k in [2, 4, 6, 8, 10] {
            m.apply(true, k, 1, 15);
        }
        let pos = m.find(10).unwrap();
        assert_eq!(pos / SLOTS, 3);
        assert_eq!(m.table.lines_read(clustered(10), pos), 2);
        // Removing a key of line 2 brings 10 back home.
        m.apply(false, 4, 0, 15);
        assert_eq!(m.find(10).unwrap() / SLOTS, 2);
    }

    #[test]
    fn at_a_quarter_full_nearly_every_key_is_in_its_home_line() {
        let keys = 1 << 16;
        let mut t = LineTable::for_keys(keys);
        let mut far = 0;
        for k in 1..=keys as u64 {
            t.insert(mixed(k), [k, 1]);
        }
        for k in 1..=keys as u64 {
            let (pos, _) = t.find(mixed(k), k, |_| true).unwrap();
            far += usize::from(t.lines_read(mixed(k), pos) > 1);
        }
        // A simulation gives 0.4%; a bound with room for the seed's luck.
        assert!(
            far * 100 < keys,
            "{far} of {keys} keys away from their home line"
        );
    }
}
