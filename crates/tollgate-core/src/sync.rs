//! The one place this crate imports its atomics from.
//!
//! Under `--cfg tollgate_loom` every atomic comes from [loom], so the loom tests explore
//! the interleavings of the real algorithm code. A crate-specific cfg name keeps loom mode
//! away from dependencies that check the plain `loom` cfg.
//!
//! Loom has no 128-bit atomic; [`AtomicU128`] is therefore modelled under loom by a
//! loom mutex around a `u128`, which gives the same atomicity (every operation is one
//! indivisible step) while letting loom schedule around it.

#[cfg(not(tollgate_loom))]
pub(crate) use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
#[cfg(not(tollgate_loom))]
pub(crate) use portable_atomic::AtomicU128;
#[cfg(not(tollgate_loom))]
pub(crate) use std::sync::Mutex;

#[cfg(tollgate_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
#[cfg(tollgate_loom)]
pub(crate) use loom::sync::Mutex;

/// A loom model of a 128-bit atomic: every operation takes a loom mutex, so it is one
/// atomic step in loom's schedule.
#[cfg(tollgate_loom)]
#[derive(Debug)]
pub(crate) struct AtomicU128(loom::sync::Mutex<u128>);

#[cfg(tollgate_loom)]
impl AtomicU128 {
    pub(crate) fn new(v: u128) -> Self {
        Self(loom::sync::Mutex::new(v))
    }

    pub(crate) fn load(&self, _order: Ordering) -> u128 {
        *self.0.lock().unwrap()
    }

    pub(crate) fn store(&self, v: u128, _order: Ordering) {
        *self.0.lock().unwrap() = v;
    }

    pub(crate) fn compare_exchange(
        &self,
        current: u128,
        new: u128,
        _success: Ordering,
        _failure: Ordering,
    ) -> Result<u128, u128> {
        let mut guard = self.0.lock().unwrap();
        if *guard == current {
            *guard = new;
            Ok(current)
        } else {
            Err(*guard)
        }
    }

    pub(crate) fn compare_exchange_weak(
        &self,
        current: u128,
        new: u128,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u128, u128> {
        self.compare_exchange(current, new, success, failure)
    }
}
