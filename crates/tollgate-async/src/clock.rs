//! [`TokioClock`]: a tollgate [`Clock`] that reads tokio's time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tollgate::core::Clock;

/// A [`Clock`] on tokio's time (`tokio::time::Instant`): nanoseconds since a chosen
/// starting point.
///
/// Give it to a limiter (or a [`Gate`](crate::Gate)) whose waiting runs on tokio's
/// timer, and the decisions and the sleeps read the same time. Under tokio's paused time
/// (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`) the limiter then sees
/// virtual time, so waiting tests run instantly and deterministically. In production it
/// reads the OS monotonic clock (`std::time::Instant`, about 25 ns a read); the default
/// clocks of tollgate are cheaper where nothing waits.
///
/// ```
/// use tollgate::core::Clock;
/// use tollgate_async::TokioClock;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let clock = TokioClock::starting_at(1_000);
/// tokio::time::advance(std::time::Duration::from_millis(5)).await;
/// assert_eq!(clock.now(), 1_000 + 5_000_000);
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    base: Instant,
    base_nanos: u64,
}

impl TokioClock {
    /// A clock that reads `nanos` now and advances with tokio's time.
    pub fn starting_at(nanos: u64) -> Self {
        TokioClock {
            base: Instant::now(),
            base_nanos: nanos,
        }
    }

    /// A clock of Unix nanoseconds (the time base of [`tollgate::Engine`]): the system
    /// time now, advancing with tokio's time (so it never goes backwards).
    pub fn unix() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, nanos);
        Self::starting_at(unix)
    }
}

impl Clock for TokioClock {
    #[inline]
    fn now(&self) -> u64 {
        self.base_nanos
            .saturating_add(nanos(Instant::now().saturating_duration_since(self.base)))
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_time_exactly() {
        let c = TokioClock::starting_at(7);
        assert_eq!(c.now(), 7);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(c.now(), 7 + 1_500_000_000);
        let u = TokioClock::unix();
        assert!(u.now() > 1_600_000_000_000_000_000, "Unix nanoseconds");
    }

    #[test]
    fn nanos_saturate() {
        assert_eq!(nanos(Duration::MAX), u64::MAX);
        assert_eq!(nanos(Duration::from_secs(2)), 2_000_000_000);
    }
}
