//! The revoked set on host-shared state: with `[state] shared`, a token revoked or
//! suspended by any worker process (an operator's call, or automatic revocation of a
//! repeat offender) is refused by every worker from its next decision on, and a restore
//! in any worker frees it everywhere.
//!
//! The region `<shared>.revoked` holds one slot per revoked value, keyed by the value's
//! fingerprint under the shared seeds (never the value), whose state is the Unix
//! nanosecond from which it is served again (`u64::MAX`: until restored; 0: restored).
//! An ended suspension's slot is reused; a live revocation is never displaced, so a full
//! region refuses a new one (counted in `revocations_refused`; the call returns false).
//! The region alone decides for every process. Its header holds a change counter (a
//! decision skips the lookup while no value was ever revoked on the host) and a
//! 1,024-bit filter of [`quick_bit`] indices, as the process's own filter: a value
//! whose bit is clear is certainly not revoked.
//!
//! Each process's own set only lists the redacted [`KeyRef`](tollgate_quota::KeyRef)s
//! of what it revoked (`Engine::revoked`, filtered by the region: another process may
//! have restored one).

use std::path::Path;
use std::sync::atomic::Ordering;

use tollgate_core::shared::SharedStore;
use tollgate_core::{Algorithm, Decision};

use super::revocation::quick_bit;

/// Header word: changes ever made (0: nothing ever revoked on this host).
const P_CHANGES: usize = 0;
/// Header words 16..32: the filter.
const P_FILTER: usize = 16;

/// The slot "algorithm": a state is the time a value is served again; fresh (reusable)
/// once that time has passed; never displaced.
#[derive(Clone, Copy, Debug)]
pub(super) struct Until;

impl Algorithm for Until {
    fn capacity(&self) -> u64 {
        1
    }

    fn decide(&self, state: u64, now: u64, _cost: u64) -> (Decision, Option<u64>) {
        let revoked = state > now;
        (
            Decision {
                limit: 1,
                remaining: u64::from(!revoked),
                retry_after: if revoked { state - now } else { 0 },
                reset_after: 0,
            },
            None,
        )
    }

    fn refund(&self, state: u64, _now: u64, _cost: u64) -> u64 {
        state
    }

    fn is_fresh(&self, state: u64, now: u64) -> bool {
        state <= now
    }

    fn debt(&self, _state: u64, _now: u64) -> Option<u64> {
        None
    }
}

/// The host-shared revoked set (see the [module docs](self)).
#[derive(Debug)]
pub(super) struct SharedRevoked {
    store: SharedStore<u128, Until>,
}

impl SharedRevoked {
    pub(super) fn open(path: &Path, capacity: usize) -> Result<Self, String> {
        let store = SharedStore::open_with_layout(path, capacity, Until, "engine-revoked")
            .map_err(|e| e.to_string())?;
        Ok(SharedRevoked { store })
    }

    /// Whether anything was ever revoked on this host (one shared load).
    #[inline]
    pub(super) fn any(&self) -> bool {
        self.store.param(P_CHANGES) != 0
    }

    /// Whether `value` may be revoked: false means certainly not.
    #[inline]
    pub(super) fn maybe(&self, value: &str) -> bool {
        let bit = quick_bit(value);
        self.store.param(P_FILTER + bit / 64) & (1 << (bit % 64)) != 0
    }

    /// Whether the value of fingerprint `hash` is revoked at `now`.
    pub(super) fn revoked_at(&self, hash: u128, now: u64) -> bool {
        self.store.get(&hash).is_some_and(|until| until > now)
    }

    /// Revokes the value of fingerprint `hash` until `until` unless a live revocation
    /// is there (it stays as it is). Returns whether it was newly revoked here, or
    /// `Err` when the region is full.
    pub(super) fn revoke(&self, hash: u128, value: &str, until: u64, now: u64) -> Result<bool, ()> {
        let bit = quick_bit(value);
        // The filter bit and the change count first: a process that finds the slot
        // must not skip it on a stale filter.
        self.store
            .param_word(P_FILTER + bit / 64)
            .fetch_or(1 << (bit % 64), Ordering::AcqRel);
        self.store
            .param_word(P_CHANGES)
            .fetch_add(1, Ordering::AcqRel);
        self.store
            .update(&hash, now, false, |state| {
                if state > now {
                    (false, None)
                } else {
                    (true, Some(until))
                }
            })
            .map_err(|_| ())
    }

    /// Restores the value of fingerprint `hash`; returns whether it was revoked at `now`.
    pub(super) fn restore(&self, hash: u128, now: u64) -> bool {
        let mut was = false;
        self.store.modify(&hash, |state| {
            was = state > now;
            (state != 0).then_some(0)
        });
        self.store
            .param_word(P_CHANGES)
            .fetch_add(1, Ordering::AcqRel);
        was
    }
}
