//! Rate limits on Redis: [`RedisFactory`] builds a [`RedisBackend`] for each limit whose
//! policy says `backend = "redis"`.
//!
//! # Units and exactness
//! The scripts count in integer microseconds of Unix time (see `lua/gcra.lua`): GCRA's
//! emission interval is the rate's, rounded **up** to a whole microsecond (so Redis never
//! admits more than the in-memory limiter; for rates whose interval is a whole number of
//! microseconds, such as `"1000/s"` or `"3/s"` -> 333,334 us, the decisions are the
//! same), and a sliding window must be a whole number of microseconds. Decisions are
//! returned in nanoseconds (microseconds x 1000); a sliding window's `retry_after` is
//! rounded up to the microsecond.
//!
//! # Undo
//! An allowed acquire returns the state before and after (GCRA: the TAT in
//! microseconds; sliding window: window number and counts, packed like tollgate-core's
//! state). The undo script puts the state before back if the key still holds the state
//! after (nobody touched it since), and otherwise refunds the cost, like the in-memory
//! backend. An undo of a decision the engine's fallback limiter made never reaches this
//! backend: the engine gives it back to its fallback.
//!
//! # Reload
//! A reload that changes a limit's rate builds a new backend on the same keys. Each
//! state records the interval (GCRA) or window length (sliding window) it was written
//! under, so the scripts carry a key's used capacity over exactly like
//! [`MemoryBackend::carry_over`](tollgate::backend::MemoryBackend::carry_over): a GCRA backlog is re-expressed in the new interval
//! (raising a limit takes effect at once), and a sliding window whose length changed
//! starts fresh.
//!
//! # When Redis is slow or down
//! A backend call (`acquire`, `peek`, and the async forms such as
//! `RedisBackend::acquire_async` (feature `tokio`)) that Redis cannot answer (an error, a timeout, the
//! open circuit breaker) returns [`BackendError::Unavailable`](tollgate::backend::BackendError::Unavailable): the backend does not
//! decide for Redis. The engine applies the limit's [`FailurePolicy`] (its own fallback
//! limiter, open or closed), which the backend tells it through
//! [`LimitBackend::failure_policy`](tollgate::backend::LimitBackend::failure_policy): the policy file's `on_failure` for the limit, else
//! [`LimitOptions::failure`]. The store's circuit breaker opens after a few failures,
//! so during an outage the policy answers at once instead of after a timeout.
//!
//! # Files
//! `options` ([`LimitOptions`]), `stats` ([`LimitStats`]), `factory`
//! ([`RedisFactory`]), `backend` ([`RedisBackend`]), `cache` (the over-limit cache).

pub(crate) mod backend;
mod cache;
mod factory;
mod fallback;
mod options;
mod stats;

pub use backend::RedisBackend;
pub use factory::RedisFactory;
pub use options::LimitOptions;
pub use stats::LimitStats;
pub use tollgate::policy::FailurePolicy;
