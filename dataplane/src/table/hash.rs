//! A seeded hasher for the engine's tables: murmur3's finaliser over whole words.
//!
//! Table keys (`CamKey`, `LinkRule`) implement `Hash` as one or two `write_u64` calls, so a lookup
//! costs one or two finalisers (a few cycles) instead of SipHash's tens. The seed is random per
//! table, from std's `RandomState`, so crafted keys cannot aim at one bucket.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// murmur3's 64-bit finaliser: a bijection with full avalanche, two multiplies.
#[inline]
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Seeded builder for [`FastHasher`]; the seed is per table and secret.
#[derive(Clone, Copy, Debug)]
pub struct FastHash {
    seed: u64,
}

impl FastHash {
    pub fn random() -> FastHash {
        // RandomState is seeded from the OS once per thread and perturbed on every `new`, so each table
        // gets a distinct unpredictable seed without us touching getrandom.
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x7377_6974_6368_7961); // "switchya"
        FastHash { seed: h.finish() }
    }
}

impl BuildHasher for FastHash {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher { state: self.seed }
    }
}

pub struct FastHasher {
    state: u64,
}

impl Hasher for FastHasher {
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.state = fmix64(self.state ^ x);
    }

    // Keys hash themselves with write_u64 (CamKey, LinkRule); this keeps the Hasher contract for
    // anything else.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}
