//! What the limits of one factory did ([`LimitStats`]): decisions Redis made, failures
//! reported to the engine (whose failure policy answers them), over-limit cache hits and
//! lost undos.

use std::sync::atomic::{AtomicU64, Ordering};

use tollgate::policy::FailurePolicy;

/// Counters shared by the backends one factory built.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    remote: AtomicU64,
    failures: AtomicU64,
    fallback: AtomicU64,
    cache_hits: AtomicU64,
    lost_undos: AtomicU64,
}

/// What the limits of one [`RedisFactory`](crate::RedisFactory) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitStats {
    /// Decisions Redis made.
    pub remote: u64,
    /// Decisions Redis could not make: the backend answered
    /// [`Unavailable`](tollgate::backend::BackendError::Unavailable) and, in an engine,
    /// the limit's failure policy answered.
    pub failures: u64,
    /// Of those, the ones whose failure policy is [`FailurePolicy::Fallback`] (in an
    /// engine, its fallback limiter decided).
    pub fallback: u64,
    /// Requests the over-limit cache denied without asking Redis.
    pub cache_hits: u64,
    /// Undos that could not reach Redis (the cost stays taken until the key refills).
    pub lost_undos: u64,
}

impl Counters {
    pub(crate) fn remote(&self) {
        self.remote.fetch_add(1, Ordering::Relaxed);
    }

    /// A failure reported for a limit whose failure policy is `policy`.
    pub(crate) fn failure(&self, policy: FailurePolicy) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if policy == FailurePolicy::Fallback {
            self.fallback.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn lost_undo(&self) {
        self.lost_undos.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LimitStats {
        LimitStats {
            remote: self.remote.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            fallback: self.fallback.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            lost_undos: self.lost_undos.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_by_policy() {
        let c = Counters::default();
        c.failure(FailurePolicy::Fallback);
        c.failure(FailurePolicy::Open);
        c.failure(FailurePolicy::Closed);
        c.remote();
        let s = c.snapshot();
        assert_eq!((s.failures, s.fallback, s.remote), (3, 1, 1));
    }
}
