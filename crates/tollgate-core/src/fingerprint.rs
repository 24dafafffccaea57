//! Key fingerprints: the one way tollgate turns a key (an API token, a tuple of request
//! attribute values) into the 128-bit number its tables store.
//!
//! A [`Fingerprinter`] holds two `ahash` states with independent per-process random
//! seeds; a fingerprint is the two 64-bit hashes side by side. Clients cannot choose
//! colliding keys without knowing the seeds, and two different keys share a fingerprint
//! with probability about `n² / 2¹²⁹` for `n` keys: 1.5e-25 at 10 million keys.
//!
//! Tables keyed by fingerprints need no further hashing: [`FingerprintBuildHasher`]
//! folds the (already uniformly random) bits into a `u64` instead of hashing them again.
//!
//! The engine (limit keys, revoked tokens) and the quota ledger (API keys) both use this
//! type; a change to how keys are fingerprinted is made here once.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use ahash::RandomState;

/// Computes 128-bit key fingerprints under per-instance random seeds.
#[derive(Clone)]
pub struct Fingerprinter {
    high: RandomState,
    low: RandomState,
}

impl fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The seeds are what keeps fingerprints unpredictable: never print them.
        f.write_str("Fingerprinter { .. }")
    }
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprinter {
    /// A fingerprinter with fresh random seeds (fixed seeds under `cfg(fuzzing)`, so fuzz
    /// inputs replay deterministically).
    pub fn new() -> Self {
        #[cfg(fuzzing)]
        {
            Fingerprinter {
                high: RandomState::with_seeds(1, 2, 3, 4),
                low: RandomState::with_seeds(5, 6, 7, 8),
            }
        }
        #[cfg(not(fuzzing))]
        {
            Fingerprinter {
                high: RandomState::new(),
                low: RandomState::new(),
            }
        }
    }

    /// A fingerprinter with the given seeds: what the worker processes of one host use,
    /// so that they all compute the same fingerprint for a key (the seeds come from the
    /// shared state's seed file, [`crate::shared::shared_seeds`]; never from clients).
    pub fn with_seeds(seeds: [u64; 8]) -> Self {
        Fingerprinter {
            high: RandomState::with_seeds(seeds[0], seeds[1], seeds[2], seeds[3]),
            low: RandomState::with_seeds(seeds[4], seeds[5], seeds[6], seeds[7]),
        }
    }

    /// The fingerprint of one key.
    #[inline]
    pub fn of(&self, key: &str) -> u128 {
        u128::from(self.high.hash_one(key)) << 64 | u128::from(self.low.hash_one(key))
    }

    /// The fingerprint of a sequence of values (length-delimited, so `["ab", "c"]` and
    /// `["a", "bc"]` differ; `["k"]` and `of("k")` differ too).
    #[inline]
    pub fn of_parts(&self, parts: &[&str]) -> u128 {
        u128::from(self.high.hash_one(parts)) << 64 | u128::from(self.low.hash_one(parts))
    }
}

/// A [`BuildHasher`] for maps keyed by fingerprints: it folds the fingerprint's bits
/// instead of hashing them again.
#[derive(Clone, Copy, Debug, Default)]
pub struct FingerprintBuildHasher;

impl BuildHasher for FingerprintBuildHasher {
    type Hasher = FingerprintHasher;

    #[inline]
    fn build_hasher(&self) -> FingerprintHasher {
        FingerprintHasher(0)
    }
}

/// The [`Hasher`] of [`FingerprintBuildHasher`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only fingerprints are meant to be hashed (`write_u128`); fold anything else in
        // anyway so a misuse still spreads.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).rotate_left(29);
        }
    }

    #[inline]
    fn write_u128(&mut self, fp: u128) {
        self.0 ^= fp as u64 ^ (fp >> 64) as u64;
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_delimited_and_seeds_differ() {
        let f = Fingerprinter::new();
        assert_ne!(f.of_parts(&["ab", "c"]), f.of_parts(&["a", "bc"]));
        assert_eq!(f.of_parts(&["a", "b"]), f.of_parts(&["a", "b"]));
        assert_eq!(f.of("k"), f.clone().of("k"), "a clone keeps the seeds");
        #[cfg(not(fuzzing))]
        assert_ne!(
            f.of("k"),
            Fingerprinter::new().of("k"),
            "new seeds, new fingerprints"
        );
        assert_eq!(format!("{f:?}"), "Fingerprinter { .. }");
    }

    #[test]
    fn the_map_hasher_folds_both_halves() {
        let mut h = FingerprintBuildHasher.build_hasher();
        h.write_u128(1 << 64 | 2);
        assert_eq!(h.finish(), 3);
        let mut h = FingerprintBuildHasher.build_hasher();
        h.write(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_ne!(h.finish(), 0);
    }
}
