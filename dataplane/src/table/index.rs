//! A fixed-size open-addressing index from a key's hash to a small value (a slab slot): the hash
//! side of the connection table, 8 bytes a bucket.
//!
//! **Why not `std`'s `HashMap`.** A `HashMap<Tuple, Slot>` stores the key beside the value (24-byte
//! buckets plus a control byte) although the slab already holds both tuples of every entry, and to
//! never allocate after creation it must be sized at four times its keys (hashbrown only rehashes
//! in place, clearing tombstones, while at most half full). At a million connections that is 210
//! bytes per connection for the map alone. Here a bucket is one `u64`: the high bits of the key's
//! hash above [`VALUE_BITS`], the value + 1 below (0 is an empty bucket). Keys are compared by the
//! caller, through the value (the slab entry it names), which the caller reads next anyway; a
//! hash fragment equal by chance costs one extra comparison, once in 2^15 probes at a million
//! connections. What this gives up: a miss in hashbrown reads only its 1-byte control array,
//! which at a million connections (8 MiB) can stay in a large L3; here a miss reads the 8-byte
//! buckets (64 MiB). A miss happens once per new connection; a hit on every other packet.
//!
//! **Linear probing with backward-shift deletion** (Knuth's Algorithm R): a probe walks adjacent
//! buckets (8 to a cache line) and a removal moves later buckets of the same run back into the
//! hole, so there are no tombstones, the table never degrades with churn and never rehashes. At
//! most a quarter of the buckets are full ([`Index::for_keys`]): a hit then probes 1.17 buckets on
//! average and a miss 1.39 (at a half, 1.5 and 2.5: the probe loop's exit is a data-dependent
//! branch, and each extra probe is a likelier misprediction). 64 bytes per connection (two keys).
//!
//! The hash is `FastHash` (seeded per table), so crafted keys cannot aim at one run of buckets.
//! The buckets ask for transparent huge pages (huge_pages.rs), as the slab does.

use std::hash::{BuildHasher, Hash};

use super::hash::FastHash;
use super::huge_pages::advise_huge_pages;
use super::prefetch::prefetch;

/// Low bits of a bucket holding the value + 1; the rest holds the hash's bits above them.
pub(super) const VALUE_BITS: u32 = 26;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
/// Buckets per key: at most a quarter of the buckets are full (see `for_keys`).
const LOAD: usize = 4;
/// Largest value an index holds.
pub(super) const MAX_VALUE: u32 = (1 << VALUE_BITS) - 2;

pub(super) struct Index {
    buckets: Vec<u64>,
    mask: usize,
    hasher: FastHash,
}

impl Index {
    /// An index for up to `keys` keys: four times as many buckets, rounded up to a power of two.
    /// Allocates once, zeroed (so untouched pages cost no resident memory).
    pub fn for_keys(keys: usize) -> Index {
        let buckets = (LOAD * keys.max(1)).next_power_of_two();
        debug_assert!(buckets.trailing_zeros() <= 64 - VALUE_BITS);
        let buckets_vec = vec![0; buckets];
        advise_huge_pages(&buckets_vec);
        Index {
            buckets: buckets_vec,
            mask: buckets - 1,
            hasher: FastHash::random(),
        }
    }

    #[inline]
    pub fn hash<K: Hash>(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Where a key of hash `hash` starts probing.
    #[inline]
    fn home(&self, hash: u64) -> usize {
        (hash >> VALUE_BITS) as usize & self.mask
    }

    /// The position and value of the key of `hash` for which `is_key(value)` holds.
    #[inline]
    pub fn find(&self, hash: u64, is_key: impl FnMut(u32) -> bool) -> Option<(usize, u32)> {
        self.find_from(hash, self.first_bucket(hash), is_key)
    }

    /// The bucket a key of `hash` probes first. Reading it for a whole batch of keys before
    /// examining any lets the CPU have all those loads in flight at once (a table far larger
    /// than the caches misses on each), where one lookup after another keeps only a few in flight.
    #[inline]
    pub fn first_bucket(&self, hash: u64) -> u64 {
        self.buckets[self.home(hash)]
    }

    /// Asks for the bucket a key of `hash` probes first to be loaded (see prefetch.rs): the first
    /// stage of a batched lookup, whose second reads it with [`Index::first_bucket`].
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        prefetch(&self.buckets[self.home(hash)]);
    }

    /// The value a full bucket holds, if `bucket` (from [`Index::first_bucket`]) may be the key of
    /// `hash`: what to read next for it.
    #[inline]
    pub fn candidate(hash: u64, bucket: u64) -> Option<u32> {
        (bucket != 0 && (bucket ^ hash) & !VALUE_MASK == 0)
            .then(|| (bucket & VALUE_MASK) as u32 - 1)
    }

    /// [`Index::find`], the bucket at the hash's home (`first`) read already.
    #[inline]
    pub fn find_from(
        &self,
        hash: u64,
        first: u64,
        mut is_key: impl FnMut(u32) -> bool,
    ) -> Option<(usize, u32)> {
        let mut pos = self.home(hash);
        let mut bucket = first;
        loop {
            if bucket == 0 {
                return None;
            }
            if (bucket ^ hash) & !VALUE_MASK == 0 {
                let value = (bucket & VALUE_MASK) as u32 - 1;
                if is_key(value) {
                    return Some((pos, value));
                }
            }
            pos = (pos + 1) & self.mask;
            bucket = self.buckets[pos];
        }
    }

    /// Adds a key of `hash` with `value` (at most [`MAX_VALUE`]). The caller made sure the key is
    /// absent and that the index holds fewer keys than `for_keys` was given.
    #[inline]
    pub fn insert(&mut self, hash: u64, value: u32) {
        debug_assert!(value <= MAX_VALUE);
        let mut pos = self.home(hash);
        while self.buckets[pos] != 0 {
            pos = (pos + 1) & self.mask;
        }
        self.buckets[pos] = (hash & !VALUE_MASK) | (u64::from(value) + 1);
    }

    /// Removes the key at `pos` (from [`Index::find`]), moving back the keys after it in the same
    /// run whose home is not between the hole and themselves.
    pub fn remove_at(&mut self, pos: usize) {
        let mut hole = pos;
        let mut next = pos;
        loop {
            next = (next + 1) & self.mask;
            let bucket = self.buckets[next];
            if bucket == 0 {
                break;
            }
            let home = self.home(bucket);
            // The key at `next` may fill the hole unless its home lies cyclically in (hole, next].
            let stays = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !stays {
                self.buckets[hole] = bucket;
                hole = next;
            }
        }
        self.buckets[hole] = 0;
    }

    #[cfg(test)]
    pub fn clear(&mut self) {
        self.buckets.fill(0);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.iter().filter(|&&b| b != 0).count()
    }

    /// Bytes allocated.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// An index over `u32` keys whose value is the key itself (as a slab index would be).
    struct Model {
        index: Index,
        keys: HashMap<u32, ()>,
    }

    impl Model {
        fn find(&self, key: u32) -> Option<(usize, u32)> {
            self.index.find(self.index.hash(&key), |v| v == key)
        }

        fn check(&self) {
            assert_eq!(self.index.len(), self.keys.len());
            for &k in self.keys.keys() {
                assert_eq!(self.find(k).map(|(_, v)| v), Some(k), "key {k} found");
            }
        }
    }

    proptest! {
        /// Inserts and removes in any order, in a small index so runs collide and wrap around the
        /// end: every present key is found, no absent key is, and no bucket is left behind.
        #[test]
        fn matches_a_set(ops in prop::collection::vec((any::<bool>(), 0u32..32), 1..400)) {
            // 4 keys in 16 buckets: homes collide often and runs wrap past the last bucket.
            let mut m = Model { index: Index::for_keys(4), keys: HashMap::new() };
            for (add, key) in ops {
                let present = m.find(key).is_some();
                prop_assert_eq!(present, m.keys.contains_key(&key));
                if add && !present && m.keys.len() < 4 {
                    let h = m.index.hash(&key);
                    m.index.insert(h, key);
                    m.keys.insert(key, ());
                } else if !add && present {
                    let (pos, _) = m.find(key).unwrap();
                    m.index.remove_at(pos);
                    m.keys.remove(&key);
                }
                m.check();
            }
        }
    }

    #[test]
    fn sized_at_four_times_the_keys() {
        // A million connections: two million keys, 2^23 buckets.
        assert_eq!(Index::for_keys(2_000_000).bytes(), (1 << 23) * 8);
        assert_eq!(Index::for_keys(0).bytes(), 4 * 8);
    }

    #[test]
    fn a_hash_equal_by_chance_is_told_apart_by_the_caller() {
        let mut index = Index::for_keys(4);
        // Two values under one hash: `find` asks the caller which is the key.
        index.insert(0x1234 << VALUE_BITS, 7);
        index.insert(0x1234 << VALUE_BITS, 9);
        assert_eq!(
            index.find(0x1234 << VALUE_BITS, |v| v == 9).map(|f| f.1),
            Some(9)
        );
        assert_eq!(
            index.find(0x1234 << VALUE_BITS, |v| v == 7).map(|f| f.1),
            Some(7)
        );
        assert_eq!(index.find(0x1234 << VALUE_BITS, |v| v == 8), None);
        let (pos, _) = index.find(0x1234 << VALUE_BITS, |v| v == 7).unwrap();
        index.remove_at(pos);
        assert_eq!(
            index.find(0x1234 << VALUE_BITS, |v| v == 9).map(|f| f.1),
            Some(9)
        );
        assert_eq!(index.len(), 1);
    }
}
