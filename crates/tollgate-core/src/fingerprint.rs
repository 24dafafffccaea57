//! Key fingerprints: the one way tollgate turns a key (an API token, a tuple of request
//! attribute values) into the 128-bit number its tables store.
//!
//! A [`Fingerprinter`] holds two `ahash` states with independent per-process random
//! seeds; a fingerprint is two 64-bit hashes side by side, each `ahash`'s portable
//! algorithm under keys derived from one of the states, computed in one pass (both lanes
//! read each word of the key once). Clients cannot choose
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
    /// The keys of the two lanes the fingerprints are computed in, derived from two
    /// independently seeded `ahash` states (see [`Lanes`]).
    lanes: Lanes,
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
            Self::from_states(
                RandomState::with_seeds(1, 2, 3, 4),
                RandomState::with_seeds(5, 6, 7, 8),
            )
        }
        #[cfg(not(fuzzing))]
        {
            Self::from_states(RandomState::new(), RandomState::new())
        }
    }

    /// The fingerprinter of two seeded states, one per half of the fingerprint: every
    /// constructor goes through here, so equal seeds give equal fingerprints.
    fn from_states(high: RandomState, low: RandomState) -> Self {
        Fingerprinter {
            lanes: Lanes::derive(&high, &low),
        }
    }

    /// A fingerprinter with the given seeds: what the worker processes of one host use,
    /// so that they all compute the same fingerprint for a key (the seeds come from the
    /// shared state's seed file, [`crate::shared::shared_seeds`]; never from clients).
    pub fn with_seeds(seeds: [u64; 8]) -> Self {
        Self::from_states(
            RandomState::with_seeds(seeds[0], seeds[1], seeds[2], seeds[3]),
            RandomState::with_seeds(seeds[4], seeds[5], seeds[6], seeds[7]),
        )
    }

    /// The fingerprint of one key.
    #[inline]
    pub fn of(&self, key: &str) -> u128 {
        let mut l = self.lanes.start();
        l.write(key.as_bytes());
        l.finish()
    }

    /// The fingerprint of a sequence of values (length-delimited, so `["ab", "c"]` and
    /// `["a", "bc"]` differ; `["k"]` and `of("k")` differ too).
    #[inline]
    pub fn of_parts(&self, parts: &[&str]) -> u128 {
        let mut l = self.lanes.start();
        l.word(parts.len() as u64 ^ PARTS_DOMAIN);
        for p in parts {
            l.write(p.as_bytes());
        }
        l.finish()
    }
}

/// Mixed into [`Fingerprinter::of_parts`] with the number of parts, so that no sequence
/// of parts hashes like a single key.
const PARTS_DOMAIN: u64 = 0x7061_7274_735f_6670;

/// The multiplier of `ahash`'s portable hasher.
const MULTIPLE: u64 = 6_364_136_223_846_793_005;
/// The rotation of `ahash`'s portable hasher.
const ROT: u32 = 23;

/// `ahash`'s folded multiply: the two halves of the 128-bit product, xored.
#[inline(always)]
fn folded_multiply(s: u64, by: u64) -> u64 {
    let r = u128::from(s).wrapping_mul(u128::from(by));
    (r as u64) ^ ((r >> 64) as u64)
}

/// The keys of the two 64-bit lanes of a fingerprint. Each lane is `ahash`'s portable
/// (folded-multiply) hasher under its own four secret keys, derived once from one of the
/// fingerprinter's two independently seeded `ahash` states; both lanes read each input
/// word once, so a fingerprint costs one pass over the key instead of two `ahash` passes
/// (each with its own set-up and finish). The lanes' keys are independent, so the two
/// halves are too: the collision probability stays about `n² / 2¹²⁹`.
#[derive(Clone, Copy)]
struct Lanes {
    /// Per lane: `[buffer, pad, extra0, extra1]`.
    keys: [[u64; 4]; 2],
}

impl Lanes {
    fn derive(high: &RandomState, low: &RandomState) -> Self {
        let of = |s: &RandomState| {
            [
                s.hash_one(0x6275_6666_6572_u64),
                s.hash_one(0x0070_6164_u64),
                s.hash_one(0x6578_7472_6130_u64),
                s.hash_one(0x6578_7472_6131_u64),
            ]
        };
        Lanes {
            keys: [of(high), of(low)],
        }
    }

    #[inline(always)]
    fn start(&self) -> LaneState<'_> {
        LaneState {
            buffer: [self.keys[0][0], self.keys[1][0]],
            keys: self,
        }
    }
}

/// Two lanes hashing one key.
struct LaneState<'a> {
    buffer: [u64; 2],
    keys: &'a Lanes,
}

impl LaneState<'_> {
    /// `ahash`'s `update` of one word, in both lanes.
    #[inline(always)]
    fn word(&mut self, w: u64) {
        for b in &mut self.buffer {
            *b = folded_multiply(w ^ *b, MULTIPLE);
        }
    }

    /// `ahash`'s `large_update` of 16 bytes (`a`, `b`), in both lanes.
    #[inline(always)]
    fn block(&mut self, a: u64, b: u64) {
        for (buf, k) in self.buffer.iter_mut().zip(&self.keys.keys) {
            let combined = folded_multiply(a ^ k[2], b ^ k[3]);
            *buf = (buf.wrapping_add(k[1]) ^ combined).rotate_left(ROT);
        }
    }

    /// `ahash`'s `write` of `data` (its length mixed in first), in both lanes.
    #[inline(always)]
    fn write(&mut self, data: &[u8]) {
        let len = data.len();
        for b in &mut self.buffer {
            *b = b.wrapping_add(len as u64).wrapping_mul(MULTIPLE);
        }
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&data[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let u32_at = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&data[i..i + 4]);
            u64::from(u32::from_le_bytes(w))
        };
        if len > 16 {
            self.block(u64_at(len - 16), u64_at(len - 8));
            let mut i = 0;
            while len - i > 16 {
                self.block(u64_at(i), u64_at(i + 8));
                i += 16;
            }
        } else if len > 8 {
            self.block(u64_at(0), u64_at(len - 8));
        } else if len >= 4 {
            self.block(u32_at(0), u32_at(len - 4));
        } else if len >= 2 {
            self.block(
                u64::from(u16::from_le_bytes([data[0], data[1]])),
                u64::from(data[len - 1]),
            );
        } else if len == 1 {
            self.block(u64::from(data[0]), u64::from(data[0]));
        } else {
            self.block(0, 0);
        }
    }

    /// `ahash`'s `finish` of each lane: the high lane in the high half.
    #[inline(always)]
    fn finish(&self) -> u128 {
        let lane = |i: usize| {
            let b = self.buffer[i];
            folded_multiply(b, self.keys.keys[i][1]).rotate_left((b & 63) as u32)
        };
        u128::from(lane(0)) << 64 | u128::from(lane(1))
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
    fn fingerprints_spread_over_both_halves_and_every_length() {
        let f = Fingerprinter::new();
        let mut seen = std::collections::HashSet::new();
        let mut high = std::collections::HashSet::new();
        let mut low = std::collections::HashSet::new();
        let mut ones = [0u32; 128];
        let keys: Vec<String> = (0..20_000)
            .map(|i| "k".repeat(i % 41) + &i.to_string())
            .chain((0..40).map(|n| "x".repeat(n)))
            .collect();
        for k in &keys {
            for fp in [f.of(k), f.of_parts(&[k]), f.of_parts(&[k, "t"])] {
                assert!(seen.insert(fp), "{k:?}");
                high.insert((fp >> 64) as u64);
                low.insert(fp as u64);
                for (bit, n) in ones.iter_mut().enumerate() {
                    *n += (fp >> bit & 1) as u32;
                }
            }
        }
        let n = seen.len();
        assert_eq!(
            (high.len(), low.len()),
            (n, n),
            "each half alone is distinct"
        );
        for (bit, ones) in ones.iter().enumerate() {
            let share = f64::from(*ones) / n as f64;
            assert!((0.47..0.53).contains(&share), "bit {bit}: {share}");
        }
        // Every length class, each byte position matters.
        for len in 0..40 {
            let a = vec![b'a'; len];
            for i in 0..len {
                let mut b = a.clone();
                b[i] = b'b';
                let (a, b) = (
                    std::str::from_utf8(&a).unwrap(),
                    std::str::from_utf8(&b).unwrap(),
                );
                assert_ne!(f.of(a), f.of(b), "len {len} byte {i}");
            }
        }
        assert_ne!(f.of_parts(&[]), f.of_parts(&[""]));
        assert_ne!(f.of_parts(&["", ""]), f.of_parts(&[""]));
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
