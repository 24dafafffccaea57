//! A latency histogram with power-of-two buckets, striped like the counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::counter::{stripe, STRIPES};

/// Finite buckets: upper bounds 2^8 ns (256 ns) to 2^31 ns (about 2.1 s), doubling.
pub const BUCKETS: usize = 24;
/// The smallest bucket's bound is 2^`FIRST_SHIFT` nanoseconds.
const FIRST_SHIFT: u32 = 8;

#[derive(Debug)]
struct Cell {
    /// Per bucket (the last is `+Inf`), not cumulative.
    counts: [AtomicU64; BUCKETS + 1],
    sum_ns: AtomicU64,
}

impl Default for Cell {
    fn default() -> Self {
        Cell {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// A histogram of durations: 24 buckets from 256 ns to about 2.1 s, doubling, plus
/// `+Inf`. Recording is two relaxed atomic adds on the calling thread's stripe;
/// reading sums the stripes (a snapshot taken while others record may be off by the
/// samples in flight).
#[derive(Debug, Default)]
pub struct Histogram {
    cells: [CachePadded<Cell>; STRIPES],
}

/// The bucket of a duration of `ns` nanoseconds: the smallest `i` with
/// `ns <= 2^(8 + i)`, or [`BUCKETS`] (`+Inf`).
#[inline]
fn bucket_of(ns: u64) -> usize {
    if ns <= 1 << FIRST_SHIFT {
        return 0;
    }
    let bits = 64 - (ns - 1).leading_zeros();
    ((bits - FIRST_SHIFT) as usize).min(BUCKETS)
}

impl Histogram {
    /// Records one sample of `ns` nanoseconds.
    #[inline]
    pub fn record_ns(&self, ns: u64) {
        let cell = &self.cells[stripe()];
        cell.counts[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        cell.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Records one sample.
    pub fn record(&self, d: Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The samples so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = [0u64; BUCKETS + 1];
        let mut sum_ns = 0u64;
        for cell in &self.cells {
            for (total, c) in counts.iter_mut().zip(&cell.counts) {
                *total = total.wrapping_add(c.load(Ordering::Relaxed));
            }
            sum_ns = sum_ns.wrapping_add(cell.sum_ns.load(Ordering::Relaxed));
        }
        HistogramSnapshot { counts, sum_ns }
    }
}

/// What a [`Histogram`] holds at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Samples per bucket (not cumulative); the last is `+Inf`.
    pub counts: [u64; BUCKETS + 1],
    /// The sum of the samples, in nanoseconds (wrapping, like a Prometheus counter that
    /// would reset after 584 years of samples).
    pub sum_ns: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            counts: [0; BUCKETS + 1],
            sum_ns: 0,
        }
    }
}

impl HistogramSnapshot {
    /// The upper bound of finite bucket `i`, in nanoseconds.
    pub fn bound_ns(i: usize) -> u64 {
        1 << (FIRST_SHIFT as usize + i)
    }

    /// Samples in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0, |a, &c| a.wrapping_add(c))
    }

    /// An upper estimate of quantile `q` (0..=1): the bound of the bucket holding it, in
    /// nanoseconds (`u64::MAX` when it is in `+Inf`; 0 with no samples).
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return if i < BUCKETS {
                    Self::bound_ns(i)
                } else {
                    u64::MAX
                };
            }
        }
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_the_smallest_bound_not_below_the_sample() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(256), 0);
        assert_eq!(bucket_of(257), 1);
        assert_eq!(bucket_of(512), 1);
        assert_eq!(bucket_of(513), 2);
        assert_eq!(bucket_of(1 << 31), BUCKETS - 1);
        assert_eq!(bucket_of((1 << 31) + 1), BUCKETS);
        assert_eq!(bucket_of(u64::MAX), BUCKETS);
        for i in 0..BUCKETS {
            let b = HistogramSnapshot::bound_ns(i);
            assert_eq!(bucket_of(b), i);
            assert_eq!(bucket_of(b + 1), i + 1);
        }
    }

    #[test]
    fn snapshot_sums_threads_and_estimates_quantiles() {
        let h = Histogram::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..1000u64 {
                        h.record_ns(if i < 990 { 300 } else { 5_000_000 });
                    }
                });
            }
        });
        let snap = h.snapshot();
        assert_eq!(snap.count(), 4000);
        assert_eq!(snap.sum_ns, 4 * (990 * 300 + 10 * 5_000_000));
        assert_eq!(snap.quantile_ns(0.5), 512);
        assert_eq!(snap.quantile_ns(0.999), 1 << 23);
        assert_eq!(HistogramSnapshot::default().quantile_ns(0.5), 0);
    }
}
