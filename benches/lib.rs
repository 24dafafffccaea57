//! Benches live in this package; see `tollgate_criterion.rs`.
