//! The one place this crate imports the atomics of its lock-free counter from: loom's
//! under `--cfg tollgate_loom`, so the loom tests explore the real code.

#[cfg(not(tollgate_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

#[cfg(tollgate_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicU8, Ordering};
