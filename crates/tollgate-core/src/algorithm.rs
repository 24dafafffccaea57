//! The contract between a rate-limiting algorithm and the places its state lives.
//!
//! An algorithm is pure arithmetic over one `u64` of state: it never touches atomics.
//! [`crate::RateLimiter`] keeps that word in one `AtomicU64`, [`crate::KeyedStore`] keeps
//! it next to the key's fingerprint in one 128-bit slot, and both update it with the same
//! compare-exchange loop. Keeping the math pure lets proptest compare it with a plain
//! reference without threads, and lets loom check the loops without the math.

use std::fmt::Debug;

use crate::{Decision, Keep};

/// The state of a key never seen. Both algorithms encode "nothing recorded" as zero, so
/// an empty slot, a reset key and an evicted key all read as this.
pub const FRESH: u64 = 0;

/// A rate-limiting algorithm over one `u64` of state.
pub trait Algorithm: Copy + Debug + Send + Sync + 'static {
    /// The largest cost a single request may have; a larger one can never pass.
    fn capacity(&self) -> u64;

    /// Decides a request of `cost` (`1..=capacity()`, or 0 for a probe) at `now` from
    /// `state`. Returns the decision and, when the request is allowed and changes the
    /// state, the new state. A denied request never changes the state.
    fn decide(&self, state: u64, now: u64, cost: u64) -> (Decision, Option<u64>);

    /// The admission test alone: the new state if a request of `cost` at `now` is allowed
    /// and changes the state, else `None`. Must equal `self.decide(state, now, cost).1`;
    /// the compare-exchange loops run only this between reading and writing the state, and
    /// compute the full [`Decision`] once, after the write, from the state it was based on.
    /// That keeps the read-to-write window (and so contention) short.
    #[inline]
    fn admit(&self, state: u64, now: u64, cost: u64) -> Option<u64> {
        self.decide(state, now, cost).1
    }

    /// The state after giving back `cost` units of a request that was not served.
    /// Refunding never leaves more capacity than a fresh key has.
    fn refund(&self, state: u64, now: u64, cost: u64) -> u64;

    /// Whether `state` decides every request at `now` or later exactly as [`FRESH`]
    /// would. Such a key may be evicted without changing any decision (for a clock that
    /// does not go backwards).
    fn is_fresh(&self, state: u64, now: u64) -> bool;

    /// What forgetting `state` at `now` would give the key: how much more it would be
    /// admitted than its state allows (in the algorithm's own unit; smaller is less to
    /// lose), or `None` when the key is being limited now (nothing left: forgetting it
    /// would free an abuser). The keyed store displaces the key with the least debt
    /// when no slot is fresh. The default counts used units from a probe.
    #[inline]
    fn debt(&self, state: u64, now: u64) -> Option<u64> {
        let d = self.decide(state, now, 0).0;
        (d.remaining > 0).then(|| d.limit - d.remaining)
    }

    /// A live change of parameters: `state`, a state of `self`, re-expressed as a state
    /// of `to` at `now`, keeping what `keep` says; `None` when this algorithm cannot
    /// carry it over (the caller starts the key fresh). A GCRA carries any change
    /// ([`crate::Gcra::carry`]); a sliding window keeps its counts under [`Keep::Used`]
    /// when the window length is unchanged, and carries nothing else. The default
    /// carries nothing.
    fn carry_state(&self, state: u64, now: u64, to: &Self, keep: Keep) -> Option<u64> {
        let _ = (state, now, to, keep);
        None
    }
}
