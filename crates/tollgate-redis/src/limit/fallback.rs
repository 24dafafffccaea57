//! The fallback limiter of a limit under [`FailurePolicy::Fallback`](tollgate::policy::FailurePolicy::Fallback):
//! while Redis cannot decide, the backend decides locally at this instance's share of the
//! limit, starting from the last state Redis reported for the key, so that a stall or an
//! outage does not hand every instance a fresh burst (issue #16, item 6).
//!
//! # The share
//! With [`LimitOptions::fallback_instances`](crate::LimitOptions::fallback_instances) `n`,
//! the local limiter runs at `1/n` of the rate and of the burst (at least 1): `n`
//! instances together admit at most about the limit while none of them reaches Redis.
//!
//! # The last state seen
//! Every answer Redis gives for a GCRA key is remembered as the time the key would be
//! full again (`reset_after`): the local limiter starts the key there, at the same
//! fraction of its (shared) burst, so a key Redis had emptied stays empty during the
//! outage instead of starting full. The share's burst refills in the same time as the
//! whole limit's (`burst/n` at `rate/n`), so the fraction carries over exactly. A sliding
//! window's state is not carried over (its reply does not say how the two windows were
//! filled): such a key starts from the share alone.
//!
//! # Bounds
//! At most [`LimitOptions::local_capacity`](crate::LimitOptions::local_capacity) keys in
//! 16 shards; a full shard first drops the keys that are full again, and if still full
//! does not remember the key (it then starts from the share, which still bounds it).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tollgate::backend::AnyAlgorithm;
use tollgate::core::{Algorithm, Decision, Rate};
use tollgate::policy::AlgorithmKind;

const SHARDS: usize = 16;

/// A limit's local fallback limiter (see the module docs).
pub(crate) struct Fallback {
    alg: AnyAlgorithm,
    /// Whether Redis's answers seed the keys (GCRA).
    seeded: bool,
    shards: Box<[Mutex<HashMap<u128, u64>>]>,
    per_shard: usize,
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback")
            .field("alg", &self.alg)
            .field("seeded", &self.seeded)
            .finish()
    }
}

/// `rate` shared by `n` instances: `1/n` of the rate and of the burst (at least 1).
pub(crate) fn share(rate: Rate, n: u32) -> Result<Rate, String> {
    let n = u64::from(n.max(1));
    let period = rate
        .period_nanos()
        .checked_mul(n)
        .ok_or_else(|| format!("the rate's period times {n} instances overflows"))?;
    Rate::from_nanos(rate.count(), period, (rate.burst() / n).max(1)).map_err(|e| e.to_string())
}

impl Fallback {
    /// The fallback of a limit of `kind` at `rate`, shared by `instances`, holding at
    /// most `capacity` keys.
    pub(crate) fn new(
        kind: AlgorithmKind,
        rate: Rate,
        instances: u32,
        capacity: usize,
    ) -> Result<Self, String> {
        let alg = AnyAlgorithm::new(kind, share(rate, instances)?).map_err(|e| e.to_string())?;
        Ok(Fallback {
            alg,
            seeded: kind == AlgorithmKind::Gcra,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        })
    }

    fn shard(&self, hash: u128) -> MutexGuard<'_, HashMap<u128, u64>> {
        self.shards[(hash as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `state` for `hash` (a fresh state is forgotten: the same as no state).
    fn put(&self, shard: &mut HashMap<u128, u64>, hash: u128, state: u64, now: u64) {
        if self.alg.is_fresh(state, now) {
            shard.remove(&hash);
            return;
        }
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            shard.retain(|_, s| !self.alg.is_fresh(*s, now));
            if shard.len() >= self.per_shard {
                return;
            }
        }
        shard.insert(hash, state);
    }

    /// Redis answered `d` for `hash` at `now` (engine nanoseconds): the key would be
    /// full again `d.reset_after` from now.
    pub(crate) fn saw(&self, hash: u128, d: &Decision, now: u64) {
        if !self.seeded {
            return;
        }
        let state = now.saturating_add(d.reset_after);
        let mut shard = self.shard(hash);
        self.put(&mut shard, hash, state, now);
    }

    /// Decides a request of `cost` for `hash` at `now` locally; `take`: acquire (else
    /// peek).
    pub(crate) fn decide(&self, hash: u128, cost: u64, now: u64, take: bool) -> Decision {
        let mut shard = self.shard(hash);
        let state = shard.get(&hash).copied().unwrap_or(0);
        let (d, next) = self.alg.decide(state, now, cost);
        if let (true, Some(next)) = (take, next) {
            self.put(&mut shard, hash, next, now);
        }
        d
    }

    /// The limit's capacity at the share (the `limit` of a local decision).
    #[cfg(test)]
    fn capacity(&self) -> u64 {
        self.alg.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn gcra(rate: &str, n: u32) -> Fallback {
        Fallback::new(AlgorithmKind::Gcra, rate.parse().unwrap(), n, 64).unwrap()
    }

    fn admitted(f: &Fallback, hash: u128, now: u64, tries: usize) -> usize {
        (0..tries)
            .filter(|_| f.decide(hash, 1, now, true).allowed())
            .count()
    }

    #[test]
    fn each_instance_gets_its_share_of_the_burst() {
        let f = gcra("100/s burst 100", 4);
        assert_eq!(f.capacity(), 25);
        assert_eq!(admitted(&f, 1, 1_000 * MS, 1_000), 25);
        // At least one call, however many instances.
        let tiny = gcra("1/s burst 2", 8);
        assert_eq!(admitted(&tiny, 1, 1_000 * MS, 10), 1);
        assert!(share("1/s".parse().unwrap(), 0).is_ok(), "0 taken as 1");
    }

    #[test]
    fn a_key_redis_had_emptied_starts_empty() {
        let f = gcra("100/s burst 100", 1);
        let now = 1_000 * MS;
        // Redis said: full again in 1 s (the whole burst used).
        let empty = Decision {
            limit: 100,
            remaining: 0,
            retry_after: 10 * MS,
            reset_after: 1_000 * MS,
        };
        f.saw(7, &empty, now);
        assert_eq!(admitted(&f, 7, now, 1_000), 0);
        // Half a second later half the burst has come back.
        assert_eq!(admitted(&f, 7, now + 500 * MS, 1_000), 50);
        // A key Redis said was half used starts half used; one it never saw, full.
        let half = Decision {
            reset_after: 500 * MS,
            ..empty
        };
        f.saw(8, &half, now);
        assert_eq!(admitted(&f, 8, now, 1_000), 50);
        assert_eq!(admitted(&f, 9, now, 1_000), 100);
    }

    #[test]
    fn the_share_keeps_the_fraction_redis_reported() {
        // Two instances: each half the burst at half the rate; a key 3/4 used in Redis
        // leaves each a quarter of its own share.
        let f = gcra("100/s burst 100", 2);
        let now = 1_000 * MS;
        let d = Decision {
            limit: 100,
            remaining: 25,
            retry_after: 0,
            reset_after: 750 * MS,
        };
        f.saw(1, &d, now);
        assert_eq!(admitted(&f, 1, now, 1_000), 12);
    }

    #[test]
    fn a_full_shard_drops_keys_that_are_full_again() {
        // 16 shards of one key each.
        let f = Fallback::new(AlgorithmKind::Gcra, "1/s".parse().unwrap(), 1, 16).unwrap();
        let now = 1_000_000 * MS;
        assert!(f.decide(0, 1, now, true).allowed());
        // Same shard, another key: the first is still used, so this one is not held.
        assert!(f.decide(16, 1, now, true).allowed());
        assert!(f.decide(16, 1, now, true).allowed(), "not remembered");
        assert!(!f.decide(0, 1, now, true).allowed(), "still held");
        // A second later the first is full again and makes room.
        assert!(f.decide(16, 1, now + 1_000 * MS, true).allowed());
        assert!(!f.decide(16, 1, now + 1_000 * MS, true).allowed());
        // A peek takes nothing.
        assert!(f.decide(32, 1, now, false).allowed());
        assert!(f.decide(32, 1, now, false).allowed());
    }
}
