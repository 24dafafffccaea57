//! The fallback limiter of a limit under [`FailurePolicy::Fallback`](tollgate::policy::FailurePolicy::Fallback):
//! while Redis cannot decide, the engine decides the limit locally through this limiter
//! (the backend's [`own_fallback`](tollgate::backend::LimitBackend::own_fallback)), at
//! this instance's share of the limit, starting from the last state Redis reported for
//! the key, so that a stall or an outage does not hand every instance a fresh burst
//! (issue #16, item 6). The engine flags its decisions degraded and gives back through
//! it what it took for a request a later limit refused.
//!
//! # The share
//! With [`LimitOptions::fallback_instances`](crate::LimitOptions::fallback_instances) `n`
//! (default 1), the local limiter runs at `1/n` of the rate and of the burst (at least
//! 1): `n` instances together admit at most about the limit while none of them reaches
//! Redis. With the default each instance admits the whole limit, but no more than what
//! Redis had left for the key when it last answered.
//!
//! # The last state seen
//! Every answer Redis gives for a GCRA key is remembered as the time the key would be
//! full again (`reset_after`): the local limiter starts the key there, at the same
//! fraction of its (shared) burst, so a key Redis had emptied stays empty during the
//! outage instead of starting full. The share's burst refills in the same time as the
//! whole limit's (`burst/n` at `rate/n`), so the fraction carries over exactly. A sliding
//! window's reply says only what was left (not how the two windows were filled): the
//! key starts with the used fraction of the share counted in the current window, which
//! is conservative (the count leaves the estimate only as the window slides past it,
//! where Redis's previous-window part would have decayed sooner).
//!
//! # Bounds
//! At most [`LimitOptions::local_capacity`](crate::LimitOptions::local_capacity) keys in
//! 16 shards; a full shard first drops the keys that are full again, and if still full
//! does not remember the key (it then starts from the share, which still bounds it).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tollgate::backend::{AnyAlgorithm, BackendError, LimitBackend, LimitKey, Undo};
use tollgate::core::{Algorithm, Decision, InsufficientCapacity, Rate, FRESH};
use tollgate::metrics::StoreCounts;
use tollgate::policy::AlgorithmKind;

const SHARDS: usize = 16;

/// A limit's local fallback limiter (see the module docs).
pub(crate) struct Fallback {
    alg: AnyAlgorithm,
    /// The share's rate.
    rate: Rate,
    shards: Box<[Mutex<HashMap<u128, u64>>]>,
    per_shard: usize,
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback").field("alg", &self.alg).finish()
    }
}

/// `rate` shared by `n` instances: for GCRA `1/n` of the rate and of the burst (at least
/// 1); for a sliding window `1/n` of the count per window of the same length (at least 1).
pub(crate) fn share(kind: AlgorithmKind, rate: Rate, n: u32) -> Result<Rate, String> {
    let n = u64::from(n.max(1));
    if kind == AlgorithmKind::SlidingWindow {
        let count = (rate.count() / n).max(1);
        return Rate::from_nanos(count, rate.period_nanos(), count).map_err(|e| e.to_string());
    }
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
        let rate = share(kind, rate, instances)?;
        let alg = AnyAlgorithm::new(kind, rate).map_err(|e| e.to_string())?;
        Ok(Fallback {
            alg,
            rate,
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

    /// Redis answered `d` for `hash` at `now` (engine nanoseconds): for GCRA the key
    /// would be full again `d.reset_after` from now; for a sliding window `d.remaining`
    /// of `d.limit` were left.
    pub(crate) fn saw(&self, hash: u128, d: &Decision, now: u64) {
        let state = match self.alg {
            AnyAlgorithm::Gcra(_) => now.saturating_add(d.reset_after),
            AnyAlgorithm::Window(_) => {
                let cap = self.alg.capacity();
                let used = d.limit.saturating_sub(d.remaining).min(d.limit);
                // The same fraction of the share, rounded up (conservative).
                let local = match d.limit {
                    0 => cap,
                    l => (u128::from(used) * u128::from(cap)).div_ceil(u128::from(l)) as u64,
                };
                match local.min(cap) {
                    0 => FRESH,
                    n => self.alg.admit(FRESH, now, n).unwrap_or(FRESH),
                }
            }
        };
        let mut shard = self.shard(hash);
        self.put(&mut shard, hash, state, now);
    }

    /// Decides a request of `cost` for `hash` at `now` locally; `take`: acquire (else
    /// peek). With `take`, what an allowed request took.
    pub(crate) fn decide(
        &self,
        hash: u128,
        cost: u64,
        now: u64,
        take: bool,
    ) -> (Decision, Option<Undo>) {
        let mut shard = self.shard(hash);
        let state = shard.get(&hash).copied().unwrap_or(FRESH);
        let (d, next) = self.alg.decide(state, now, cost);
        match (take, next) {
            (true, Some(next)) => {
                self.put(&mut shard, hash, next, now);
                let undo = Undo {
                    cost,
                    before: state,
                    after: next,
                };
                (d, Some(undo))
            }
            _ => (d, None),
        }
    }

    fn check_cost(&self, cost: u64) -> Result<(), BackendError> {
        InsufficientCapacity::check(cost, self.alg.capacity()).map_err(BackendError::CannotPass)
    }

    /// The limit's capacity at the share (the `limit` of a local decision).
    #[cfg(test)]
    fn capacity(&self) -> u64 {
        self.alg.capacity()
    }
}

impl LimitBackend for Fallback {
    fn acquire(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        self.check_cost(cost)?;
        Ok(self.decide(key.hash, cost, now, true))
    }

    fn undo(&self, key: &LimitKey<'_>, undo: Undo, now: u64) {
        let mut shard = self.shard(key.hash);
        let state = shard.get(&key.hash).copied().unwrap_or(FRESH);
        // The rule every in-process store follows (`Undo::revert`).
        if let Some(next) = undo.revert(&self.alg, state, now) {
            self.put(&mut shard, key.hash, next, now);
        }
    }

    fn peek(&self, key: &LimitKey<'_>, cost: u64, now: u64) -> Result<Decision, BackendError> {
        self.check_cost(cost)?;
        Ok(self.decide(key.hash, cost, now, false).0)
    }

    fn reset(&self, key: &LimitKey<'_>) {
        self.shard(key.hash).remove(&key.hash);
    }

    fn rate(&self) -> Rate {
        self.rate
    }

    fn store_counts(&self) -> Option<StoreCounts> {
        let keys = self
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len() as u64)
            .sum();
        Some(StoreCounts {
            keys,
            capacity: (self.per_shard * SHARDS) as u64,
            ..StoreCounts::default()
        })
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
            .filter(|_| f.decide(hash, 1, now, true).0.allowed())
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
        assert!(
            share(AlgorithmKind::Gcra, "1/s".parse().unwrap(), 0).is_ok(),
            "0 taken as 1"
        );
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
        assert!(f.decide(0, 1, now, true).0.allowed());
        // Same shard, another key: the first is still used, so this one is not held.
        assert!(f.decide(16, 1, now, true).0.allowed());
        assert!(f.decide(16, 1, now, true).0.allowed(), "not remembered");
        assert!(!f.decide(0, 1, now, true).0.allowed(), "still held");
        // A second later the first is full again and makes room.
        assert!(f.decide(16, 1, now + 1_000 * MS, true).0.allowed());
        assert!(!f.decide(16, 1, now + 1_000 * MS, true).0.allowed());
        // A peek takes nothing.
        assert!(f.decide(32, 1, now, false).0.allowed());
        assert!(f.decide(32, 1, now, false).0.allowed());
    }
    #[test]
    fn a_window_key_starts_with_the_used_fraction_of_its_share() {
        let f =
            Fallback::new(AlgorithmKind::SlidingWindow, "10/s".parse().unwrap(), 2, 64).unwrap();
        let now = 1_000 * MS + 1;
        // Redis: 6 of 10 used, so 3 of the share's 5 (rounded up).
        let d = Decision {
            limit: 10,
            remaining: 4,
            retry_after: 0,
            reset_after: 0,
        };
        f.saw(1, &d, now);
        assert_eq!(admitted(&f, 1, now, 100), 2);
        let empty = Decision { remaining: 0, ..d };
        f.saw(2, &empty, now);
        assert_eq!(admitted(&f, 2, now, 100), 0);
    }

    #[test]
    fn an_undo_puts_back_what_the_acquire_took() {
        let f = gcra("3/s", 1);
        let key = LimitKey {
            hash: 5,
            parts: &[],
        };
        let now = 1_000 * MS;
        let (d, undo) = f.acquire(&key, 2, now).unwrap();
        assert!(d.allowed());
        assert_eq!(
            f.peek(&key, 1, now).unwrap().remaining,
            0,
            "1 left, minus the peek's own"
        );
        f.undo(&key, undo.unwrap(), now);
        assert_eq!(f.peek(&key, 1, now).unwrap().remaining, 2);
        assert!(matches!(
            f.acquire(&key, 4, now),
            Err(BackendError::CannotPass(_))
        ));
        assert_eq!(f.store_counts().unwrap().keys, 0, "a full key is forgotten");
    }
}
