//! # tollgate-core
//!
//! The lock-free heart of [tollgate](https://example.invalid/tollgate): rate-limiting
//! algorithms over one `u64` of state, the clocks that feed them, and a keyed store for
//! millions of keys.
//!
//! * [`Gcra`] — the generic cell rate algorithm: smooth rate plus burst, state = one
//!   theoretical arrival time.
//! * [`SlidingWindow`] — the sliding-window counter: `limit` per window, estimated from
//!   the current and previous fixed windows (error bounds documented in its module).
//! * [`RateLimiter`] — one limit, one cache-padded `AtomicU64`, compare-exchange updates.
//! * [`KeyedRateLimiter`] / [`KeyedStore`] — one limit per key; no lock on the path that
//!   finds an existing key; bounded memory (about 20 bytes per key); eviction that never
//!   changes a decision.
//! * [`reserve`] — reservations ([`Reservation`], x/time/rate's `ReserveN` / `Cancel`),
//!   partial grants ([`Grant`], redis_rate's `AllowAtMost`) and live rate and burst
//!   changes ([`Keep`]) of the GCRA limiters, direct and keyed.
//! * [`Clock`] — [`MonotonicClock`] (TSC, ~10 ns), [`StdClock`], [`ManualClock`],
//!   [`UnixClock`] (wall-clock nanoseconds that never go backwards).
//! * [`Fingerprinter`] — 128-bit key fingerprints under random seeds, the one way keys
//!   become table entries in the engine and the quota ledger.
//!
//! **Time is a parameter.** Every decision has an `_at` form taking `now` in `u64`
//! nanoseconds on the limiter's clock, so a caller that already holds a timestamp pays no
//! clock read and tests are deterministic.
//!
//! ```
//! use tollgate_core::{Decision, KeyedGcraLimiter, Rate};
//!
//! // 100 requests per second per (token, tenant), bursts of up to 20.
//! let rate: Rate = "100/s".parse::<Rate>().unwrap().with_burst(20).unwrap();
//! let limiter = KeyedGcraLimiter::<(&str, &str)>::new(rate.into(), 100_000);
//!
//! let key = ("tok_3f9a", "tenant-42");
//! let d: Decision = limiter.check_at(&key, 0).unwrap();
//! assert!(d.allowed());
//! assert_eq!(d.remaining, 19);
//!
//! // A write request that costs 5 units:
//! let d = limiter.check_n_at(&key, 5, 0).unwrap();
//! assert_eq!(d.remaining, 14);
//!
//! // A cost above the burst can never pass: an error, not an endless denial.
//! assert!(limiter.check_n_at(&key, 21, 0).is_err());
//! ```
#![deny(missing_docs)]
// Unsafe code is denied except in `hugepage` (the store's table allocation), whose blocks
// carry SAFETY comments and run under miri (except the `madvise` call itself).
#![deny(unsafe_code)]
#![cfg_attr(tollgate_loom, allow(dead_code, unreachable_pub))]

mod algorithm;
#[allow(unsafe_code)]
mod atomic128;
pub mod clock;
mod decision;
pub mod fingerprint;
mod gcra;
#[allow(unsafe_code)]
mod hugepage;
mod keyed;
mod limiter;
pub mod rate;
pub mod reserve;
// `shared` maps a file and uses 128-bit atomics in it; every block has a SAFETY comment.
#[cfg(all(unix, not(tollgate_loom)))]
#[allow(unsafe_code)]
pub mod shared;
#[cfg(any(all(unix, not(tollgate_loom)), all(tollgate_loom, test)))]
mod shared_table;
#[cfg(all(unix, not(tollgate_loom)))]
pub use shared::{SharedKeyed, SharedStateError, SharedStore};
pub mod store;
mod sync;
pub mod window;

pub use algorithm::{Algorithm, FRESH};
#[doc(inline)]
pub use clock::{Clock, DefaultClock, ManualClock, MonotonicClock, StdClock, UnixClock};
pub use decision::{Decision, InsufficientCapacity, KeyedError, StoreFull};
#[doc(inline)]
pub use fingerprint::{FingerprintBuildHasher, Fingerprinter};
pub use gcra::{Gcra, Keep};
pub use keyed::{KeyedGcraLimiter, KeyedRateLimiter, KeyedSlidingWindowLimiter};
pub use limiter::{GcraLimiter, RateLimiter, SlidingWindowLimiter};
#[doc(inline)]
pub use rate::{Rate, RateError};
#[doc(inline)]
pub use reserve::{Grant, Reservation, ReserveError};
#[doc(inline)]
pub use store::{KeyedStore, DISPLACE_GROUPS};
#[doc(inline)]
pub use window::{SlidingWindow, WindowError};

#[cfg(all(test, tollgate_loom))]
mod loom_tests;
#[cfg(all(test, not(tollgate_loom)))]
mod reserve_model;

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
