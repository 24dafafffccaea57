//! The circuit breaker: after a few failures in a row, calls stop reaching the network
//! for a cool-down, so an outage costs each request a local decision instead of a
//! timeout. After the cool-down one call (the probe) is let through; its success closes
//! the breaker, its failure opens it for another cool-down.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When the breaker opens and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (at least 1; default 3).
    pub failures: u32,
    /// How long it stays open before one probe is let through (default 500 ms).
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 3,
            cooldown: Duration::from_millis(500),
        }
    }
}

/// The breaker's state, readable for metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go to Redis.
    Closed,
    /// Calls do not reach the network until the cool-down ends.
    Open,
    /// One probe is in flight; other calls stay local.
    HalfOpen,
}

/// Lock-free breaker: `opened_at` is 0 while closed, else the time (ns since `epoch`,
/// plus 1) it opened; `probing` is set by the one caller that probes.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    epoch: Instant,
    failures: AtomicU32,
    opened_at: AtomicU64,
    probing: AtomicU32,
}

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Go to the network.
    Call,
    /// Go to the network as the probe: report the outcome.
    Probe,
    /// Do not: the breaker is open.
    Refuse,
}

impl Breaker {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Breaker {
            config: BreakerConfig {
                failures: config.failures.max(1),
                ..config
            },
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probing: AtomicU32::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    pub(crate) fn permit(&self) -> Permit {
        let opened = self.opened_at.load(Ordering::Acquire);
        if opened == 0 {
            return Permit::Call;
        }
        let cooldown = u64::try_from(self.config.cooldown.as_nanos()).unwrap_or(u64::MAX);
        if self.now().saturating_sub(opened) < cooldown {
            return Permit::Refuse;
        }
        if self
            .probing
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Permit::Probe
        } else {
            Permit::Refuse
        }
    }

    pub(crate) fn success(&self, permit: Permit) {
        self.failures.store(0, Ordering::Relaxed);
        if permit == Permit::Probe || self.opened_at.load(Ordering::Relaxed) != 0 {
            self.opened_at.store(0, Ordering::Release);
            self.probing.store(0, Ordering::Release);
        }
    }

    pub(crate) fn failure(&self, permit: Permit) {
        if permit == Permit::Probe {
            self.opened_at.store(self.now(), Ordering::Release);
            self.probing.store(0, Ordering::Release);
            return;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.config.failures && self.opened_at.load(Ordering::Relaxed) == 0 {
            self.opened_at.store(self.now(), Ordering::Release);
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        if self.opened_at.load(Ordering::Acquire) == 0 {
            BreakerState::Closed
        } else if self.probing.load(Ordering::Acquire) != 0 {
            BreakerState::HalfOpen
        } else {
            BreakerState::Open
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_n_failures_and_closes_after_a_good_probe() {
        let b = Breaker::new(BreakerConfig {
            failures: 2,
            cooldown: Duration::ZERO,
        });
        assert_eq!(b.permit(), Permit::Call);
        b.failure(Permit::Call);
        assert_eq!(b.state(), BreakerState::Closed);
        b.failure(Permit::Call);
        assert_eq!(b.state(), BreakerState::Open);
        // Cool-down zero: one probe at a time.
        assert_eq!(b.permit(), Permit::Probe);
        assert_eq!(b.permit(), Permit::Refuse);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.failure(Permit::Probe);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.permit(), Permit::Probe);
        b.success(Permit::Probe);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.permit(), Permit::Call);
    }

    #[test]
    fn refuses_during_the_cooldown() {
        let b = Breaker::new(BreakerConfig {
            failures: 1,
            cooldown: Duration::from_secs(3600),
        });
        b.failure(Permit::Call);
        for _ in 0..100 {
            assert_eq!(b.permit(), Permit::Refuse);
        }
        // A success reported by a call that was already in flight closes it.
        b.success(Permit::Call);
        assert_eq!(b.permit(), Permit::Call);
    }
}
