//! The over-limit cache: keys Redis denied, remembered until the time Redis said to
//! wait, so they are denied locally meanwhile without asking Redis.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use tollgate::core::Decision;

/// Keys Redis denied, until the time Redis said to wait (see
/// [`LimitOptions::over_limit_cache`](crate::LimitOptions::over_limit_cache)). Sharded maps; a full shard first drops expired
/// entries, and if still full simply does not remember (the next request asks Redis).
pub(super) struct OverLimitCache {
    shards: Box<[Mutex<HashMap<u128, Denied>>]>,
    per_shard: usize,
}

#[derive(Clone, Copy, Debug)]
struct Denied {
    until: Instant,
    reset_until: Instant,
    /// The smallest cost denied: cheaper requests may fit, so they go to Redis.
    cost: u64,
    limit: u64,
    remaining: u64,
}

const CACHE_SHARDS: usize = 16;

impl OverLimitCache {
    pub(super) fn new(capacity: usize) -> Self {
        OverLimitCache {
            shards: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            per_shard: capacity.div_ceil(CACHE_SHARDS),
        }
    }

    fn shard(&self, hash: u128) -> std::sync::MutexGuard<'_, HashMap<u128, Denied>> {
        self.shards[(hash as usize) % CACHE_SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn check(&self, hash: u128, cost: u64) -> Option<Decision> {
        let now = Instant::now();
        let mut shard = self.shard(hash);
        let d = *shard.get(&hash)?;
        if now >= d.until {
            shard.remove(&hash);
            return None;
        }
        if cost < d.cost {
            return None;
        }
        let ns = |t: Instant| u64::try_from(t.saturating_duration_since(now).as_nanos());
        Some(Decision {
            limit: d.limit,
            remaining: d.remaining,
            retry_after: ns(d.until).unwrap_or(u64::MAX).max(1),
            reset_after: ns(d.reset_until).unwrap_or(u64::MAX),
        })
    }

    pub(super) fn insert(&self, hash: u128, cost: u64, d: &Decision, sent: Instant) {
        if d.retry_after == u64::MAX {
            return;
        }
        let until = sent + std::time::Duration::from_nanos(d.retry_after);
        let entry = Denied {
            until,
            reset_until: sent + std::time::Duration::from_nanos(d.reset_after),
            cost,
            limit: d.limit,
            remaining: d.remaining,
        };
        let mut shard = self.shard(hash);
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            let now = Instant::now();
            shard.retain(|_, e| e.until > now);
            if shard.len() >= self.per_shard {
                return;
            }
        }
        // The latest answer is the freshest: it replaces an older one.
        shard.insert(hash, entry);
    }

    pub(super) fn remove(&self, hash: u128) {
        self.shard(hash).remove(&hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(retry_after: u64) -> Decision {
        Decision {
            limit: 5,
            remaining: 0,
            retry_after,
            reset_after: retry_after.saturating_mul(2),
        }
    }

    #[test]
    fn denies_as_costly_requests_until_the_wait_passes() {
        let c = OverLimitCache::new(64);
        let sent = Instant::now();
        c.insert(1, 2, &denial(3_600_000_000_000), sent);
        assert!(c.check(1, 1).is_none(), "a cheaper request may fit");
        let d = c.check(1, 2).unwrap();
        assert!(!d.allowed() && d.limit == 5 && d.retry_after > 0);
        assert!(c.check(2, 2).is_none(), "another key");
        c.remove(1);
        assert!(c.check(1, 2).is_none());
        // A denial already past its wait, and one waiting cannot lift, are not held.
        c.insert(3, 1, &denial(1), sent - std::time::Duration::from_secs(1));
        assert!(c.check(3, 1).is_none());
        c.insert(4, 1, &denial(u64::MAX), sent);
        assert!(c.check(4, 1).is_none());
    }

    #[test]
    fn a_full_shard_does_not_remember() {
        // 16 shards of one entry each.
        let c = OverLimitCache::new(16);
        let sent = Instant::now();
        let long = denial(3_600_000_000_000);
        c.insert(0, 1, &long, sent);
        c.insert(16, 1, &long, sent);
        assert!(c.check(0, 1).is_some());
        assert!(c.check(16, 1).is_none());
    }
}
