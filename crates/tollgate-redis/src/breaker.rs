//! The circuit breaker: after a few failures in a row, calls stop reaching the network
//! for a cool-down, so an outage costs each request a local decision instead of a
//! timeout. After the cool-down one call (the probe) is let through; its success closes
//! the breaker, its failure opens it for another cool-down, twice as long as the last
//! (from [`BreakerConfig::first_cooldown`] up to [`BreakerConfig::cooldown`]), so a
//! short stall costs a short stay on the fallback and a long outage few probes.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When the breaker opens and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (at least 1; default 3).
    pub failures: u32,
    /// The longest it stays open before one probe is let through (default 500 ms).
    pub cooldown: Duration,
    /// How long it stays open after it opens, before the first probe (default 50 ms,
    /// at most `cooldown`); each failed probe doubles it, up to `cooldown`.
    pub first_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 3,
            cooldown: Duration::from_millis(500),
            first_cooldown: Duration::from_millis(50),
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
    /// The cool-down in force, ns: `first_cooldown` when it opens, doubled by each
    /// failed probe up to `cooldown`.
    current: AtomicU64,
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
            current: AtomicU64::new(0),
        }
    }

    fn ns(d: Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The first cool-down, ns (at most the longest).
    fn first(&self) -> u64 {
        Self::ns(self.config.first_cooldown).min(Self::ns(self.config.cooldown))
    }

    /// The cool-down in force, ns.
    pub(crate) fn cooldown_ns(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    pub(crate) fn permit(&self) -> Permit {
        let opened = self.opened_at.load(Ordering::Acquire);
        if opened == 0 {
            return Permit::Call;
        }
        if self.now().saturating_sub(opened) < self.cooldown_ns() {
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
            let longest = Self::ns(self.config.cooldown);
            let next = self
                .cooldown_ns()
                .saturating_mul(2)
                .clamp(1, longest.max(1));
            self.current.store(next.min(longest), Ordering::Relaxed);
            self.opened_at.store(self.now(), Ordering::Release);
            self.probing.store(0, Ordering::Release);
            return;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.config.failures && self.opened_at.load(Ordering::Relaxed) == 0 {
            self.current.store(self.first(), Ordering::Relaxed);
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
            first_cooldown: Duration::ZERO,
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
            first_cooldown: Duration::from_secs(3600),
        });
        b.failure(Permit::Call);
        for _ in 0..100 {
            assert_eq!(b.permit(), Permit::Refuse);
        }
        // A success reported by a call that was already in flight closes it.
        b.success(Permit::Call);
        assert_eq!(b.permit(), Permit::Call);
    }

    #[test]
    fn each_failed_probe_doubles_the_cooldown_up_to_the_longest() {
        let ms = |n: u64| n * 1_000_000;
        let b = Breaker::new(BreakerConfig {
            failures: 1,
            cooldown: Duration::from_millis(500),
            first_cooldown: Duration::from_millis(50),
        });
        b.failure(Permit::Call);
        assert_eq!(b.cooldown_ns(), ms(50));
        let mut seen = Vec::new();
        for _ in 0..6 {
            b.failure(Permit::Probe);
            seen.push(b.cooldown_ns() / ms(1));
        }
        assert_eq!(seen, [100, 200, 400, 500, 500, 500]);
        // Closed, then opened again: the first cool-down again.
        b.success(Permit::Probe);
        b.failure(Permit::Call);
        assert_eq!(b.cooldown_ns(), ms(50));
        // A first cool-down longer than the longest is the longest.
        let c = Breaker::new(BreakerConfig {
            failures: 1,
            cooldown: Duration::from_millis(10),
            first_cooldown: Duration::from_secs(1),
        });
        c.failure(Permit::Call);
        assert_eq!(c.cooldown_ns(), ms(10));
    }
}
