//! Time sources.
//!
//! Every decision in tollgate takes `now` as `u64` nanoseconds on the limiter's clock
//! (the `_at` forms); the convenience forms read a [`Clock`]. A clock's zero is arbitrary
//! (usually the moment it was created); only differences matter. A `u64` of nanoseconds
//! covers about 584 years.
//!
//! | clock | source | cost of `now()` (measured, 2-core VM) | use |
//! |---|---|---|---|
//! | [`MonotonicClock`] (the [`DefaultClock`]) | invariant TSC via `quanta`, else the OS monotonic clock | ~10 ns | production |
//! | [`StdClock`] | `std::time::Instant` | ~25 ns | comparison, platforms quanta mistrusts |
//! | [`ManualClock`] | a shared `AtomicU64` you move | ~1 ns | tests, replays, benches |
//! | [`UnixClock`] | the Unix time at creation plus [`MonotonicClock`]'s elapsed time | ~10 ns | the engine (calendar quotas need wall-clock time) |

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sync::{AtomicU64, Ordering};

/// A source of `u64` nanosecond timestamps for limiters.
///
/// Implementations must be cheap and should be monotonic. Limiters tolerate a clock that
/// goes backwards (they never admit more than the limit because of it), but a backwards
/// step can lengthen a `retry_after`.
pub trait Clock: Send + Sync {
    /// Nanoseconds since this clock's zero.
    fn now(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn now(&self) -> u64 {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    #[inline]
    fn now(&self) -> u64 {
        (**self).now()
    }
}

/// The clock limiters use unless told otherwise.
pub type DefaultClock = MonotonicClock;

/// The default production clock: reads the CPU's time-stamp counter when it is invariant
/// (constant rate, not stopped in sleep states, synchronised across cores by the kernel)
/// and scales it to nanoseconds; falls back to the operating system's monotonic clock
/// where the counter cannot be trusted. Detection and calibration are done by the
/// [`quanta`] crate once per process.
///
/// Across cores: with an invariant TSC, a reading taken after another thread's reading
/// (in the happens-before sense) is not smaller; the test `clock_is_monotonic_across_threads`
/// checks this on the machine it runs on.
#[derive(Clone, Debug)]
pub struct MonotonicClock {
    #[cfg(not(miri))]
    clock: quanta::Clock,
    #[cfg(not(miri))]
    start: u64,
    /// Under miri, which cannot run quanta's calibration (`cpuid`, `rdtsc`), the OS
    /// clock stands in, so code that builds a clock can be checked there too.
    #[cfg(miri)]
    std: StdClock,
}

impl MonotonicClock {
    /// A clock whose zero is now.
    #[cfg(not(miri))]
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let start = clock.raw();
        Self { clock, start }
    }

    /// A clock whose zero is now.
    #[cfg(miri)]
    pub fn new() -> Self {
        Self {
            std: StdClock::new(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> u64 {
        #[cfg(not(miri))]
        return self.clock.delta_as_nanos(self.start, self.clock.raw());
        #[cfg(miri)]
        return self.std.now();
    }
}

/// `std::time::Instant` as a clock: the OS monotonic clock, about 25 ns a read on the
/// machines we measured. Use it where the TSC cannot be trusted.
#[derive(Clone, Copy, Debug)]
pub struct StdClock {
    start: Instant,
}

impl StdClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Default for StdClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for StdClock {
    #[inline]
    fn now(&self) -> u64 {
        duration_to_nanos(self.start.elapsed())
    }
}

/// A clock that moves only when told: for tests, replays of logged timestamps and benches.
///
/// Clones share the same time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `nanos`.
    pub fn new(nanos: u64) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(nanos)),
        }
    }

    /// Moves the clock forward by `by` (saturating at `u64::MAX` nanoseconds).
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        let mut cur = self.nanos.load(Ordering::Relaxed);
        loop {
            let next = cur.saturating_add(by);
            match self
                .nanos
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Sets the clock to `nanos`, which may be earlier than its current time: tests use
    /// this to make time go backwards.
    pub fn set(&self, nanos: u64) {
        self.nanos.store(nanos, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

/// Wall-clock Unix nanoseconds that never go backwards: the Unix time when the clock was
/// created plus a [`MonotonicClock`]'s elapsed time since. A step of the system clock
/// after creation is not followed (an NTP correction cannot move decisions backwards);
/// drift against the system clock is the TSC's, typically well under a second a day.
#[derive(Clone, Debug)]
pub struct UnixClock {
    base_unix: u64,
    base_mono: u64,
    mono: MonotonicClock,
}

impl Default for UnixClock {
    fn default() -> Self {
        Self::new()
    }
}

impl UnixClock {
    /// A clock reading the system's Unix time now (0 if the system clock is before 1970).
    pub fn new() -> Self {
        let mono = MonotonicClock::new();
        let base_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, duration_to_nanos);
        UnixClock {
            base_unix,
            base_mono: mono.now(),
            mono,
        }
    }
}

impl Clock for UnixClock {
    #[inline]
    fn now(&self) -> u64 {
        self.base_unix
            .saturating_add(self.mono.now().saturating_sub(self.base_mono))
    }
}

/// A `Duration` as `u64` nanoseconds, saturating at `u64::MAX` (about 584 years).
#[inline]
pub fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(5);
        assert_eq!(c.now(), 5);
        c.advance(Duration::from_nanos(10));
        assert_eq!(c.now(), 15);
        let shared = c.clone();
        shared.set(3);
        assert_eq!(c.now(), 3, "clones share time, and time can go backwards");
        c.set(u64::MAX - 1);
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now(), u64::MAX, "advance saturates");
    }

    #[test]
    fn duration_conversion_saturates() {
        assert_eq!(duration_to_nanos(Duration::from_nanos(7)), 7);
        assert_eq!(duration_to_nanos(Duration::MAX), u64::MAX);
    }

    #[test]
    fn unix_clock_reads_unix_time() {
        let c = UnixClock::new();
        let sys = duration_to_nanos(SystemTime::now().duration_since(UNIX_EPOCH).unwrap());
        let diff = c.now().abs_diff(sys);
        assert!(diff < 1_000_000_000, "{} ns from the system clock", diff);
    }

    #[test]
    fn clocks_move_forward() {
        for clock in [
            &MonotonicClock::new() as &dyn Clock,
            &StdClock::new(),
            &UnixClock::new(),
        ] {
            let a = clock.now();
            std::thread::sleep(Duration::from_millis(2));
            let b = clock.now();
            assert!(b > a, "{b} should be after {a}");
            assert!(b - a >= 1_000_000, "2 ms sleep measured as {} ns", b - a);
        }
    }

    /// A reading handed to another thread is never later than that thread's own next
    /// reading: the clock is monotonic across cores.
    #[test]
    fn clock_is_monotonic_across_threads() {
        let clock = Arc::new(MonotonicClock::new());
        let (tx_a, rx_a) = std::sync::mpsc::sync_channel::<u64>(0);
        let (tx_b, rx_b) = std::sync::mpsc::sync_channel::<u64>(0);
        let c2 = Arc::clone(&clock);
        let h = std::thread::spawn(move || {
            for _ in 0..20_000 {
                let seen = rx_a.recv().unwrap();
                let mine = c2.now();
                assert!(mine >= seen, "thread B read {mine} after A's {seen}");
                tx_b.send(c2.now()).unwrap();
            }
        });
        for _ in 0..20_000 {
            tx_a.send(clock.now()).unwrap();
            let seen = rx_b.recv().unwrap();
            let mine = clock.now();
            assert!(mine >= seen, "thread A read {mine} after B's {seen}");
        }
        h.join().unwrap();
    }
}
