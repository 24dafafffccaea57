//! # tollgate-redis
//!
//! The distributed backend of tollgate: when one service runs as many instances, their
//! rate limits and monthly quotas live in one Redis (or Redis Cluster) and every
//! instance's engine decides against the same state.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tollgate::{Engine, Policy, Request};
//! use tollgate_redis::{QuotaOptions, RedisConfig, RedisFactory, RedisQuota, RedisStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (policy, _) = Policy::from_toml(r#"
//!     version = 1
//!     [[limit]]
//!     name = "per-company"
//!     key = ["company"]
//!     rate = "100/s"
//!     backend = "redis"
//! "#)?;
//! // Every instance of the fleet has the same secret (or TOLLGATE_REDIS_KEY_SECRET).
//! let config = RedisConfig::new("redis://127.0.0.1:6379/").key_secret("the fleet secret, 16+ bytes")?;
//! let store = RedisStore::new(config)?;
//! let engine = Engine::builder(policy)
//!     .backend("redis", Arc::new(RedisFactory::new(Arc::clone(&store))))
//!     // With a [quota] section: the fleet's calls per company and month on Redis.
//!     .quota_store(Arc::new(RedisQuota::new(store, "gateway-1", QuotaOptions::default())))
//!     .build()?;
//! let d = engine.decide(&Request::new().company("acme"));
//! println!("allowed: {}, remaining: {}", d.allowed(), d.remaining);
//! # Ok(())
//! # }
//! ```
//!
//! * Limits: GCRA and the sliding-window counter, each decided atomically by a Lua
//!   script ([`limit`]) on the **server's clock** (`TIME`), so the instances' clocks do
//!   not matter; integer arithmetic in microseconds, exact below 2^53. Scripts are
//!   called with `EVALSHA` and reloaded on `NOSCRIPT`. An all-or-nothing decision that
//!   a later limit denies gives back what Redis took with an undo script.
//! * Keys ([`keys`]) carry a per-company hash tag (limits keyed by company share their
//!   company's slot with its quota counter on Redis Cluster); ids are escaped, so no
//!   tenant can forge a tag.
//! * One round trip per request ([`combined`], on by default): all of a request's
//!   limits on Redis and its quota call are decided by one script, all or nothing.
//! * Quotas ([`quota`]): a check-and-add script per call; a counter that vanished
//!   (Redis restarted without persistence, a failover) is reported and re-seeded from
//!   the instances' durable ledgers, never restarted at zero.
//! * When Redis cannot decide (an error, a timeout, the open circuit breaker), a limit's
//!   backend answers [`BackendError::Unavailable`] and the **engine** applies the limit's
//!   [`FailurePolicy`] (its own in-memory fallback limiter, open or closed): the policy
//!   file's `on_failure`, else [`LimitOptions::failure`]. Direct [`RedisBackend`] calls
//!   (`acquire`, `peek`, `RedisBackend::acquire_async` (feature `tokio`)...) answer `Unavailable`: no
//!   backend decides for Redis. Tight connect and response timeouts, and a circuit
//!   breaker ([`breaker`]), keep an outage from adding a timeout to every request;
//!   quota calls accumulate locally and are flushed, idempotently, when Redis returns
//!   ([`QuotaOptions::failure`]).
//! * Options, off by default: a cache of keys known to be over their limit
//!   ([`LimitOptions::over_limit_cache`]), batched quota increments
//!   ([`QuotaOptions::batch`]).
//! * Revocations ([`revocations`]): with [`RedisRevocations`] set as the engine's
//!   revocation sync, every revocation, suspension and restoration made on any
//!   instance reaches every instance within [`RedisRevocations::delay_bound`] (700 ms
//!   by default), by keyed fingerprint only; a new instance starts from the fleet's set.
//! * [`testing`]: real `redis-server` processes (one server, or a 3-node cluster) for
//!   tests and benches.
//!
//! [`BackendError::Unavailable`]: tollgate::backend::BackendError::Unavailable
//!
//! Requires Rust 1.88 (the `redis` crate 1.x); the rest of tollgate stays at 1.80.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// What the engine answers for a limit whose backend cannot decide (the engine's type,
/// also used by [`QuotaOptions::failure`]).
pub use tollgate::policy::FailurePolicy;

pub mod breaker;
pub mod combined;
pub mod keys;
pub mod limit;
pub mod quota;
pub mod revocations;
mod script;
pub mod store;
pub mod testing;

pub use breaker::{BreakerConfig, BreakerState};
pub use combined::RedisCombined;
pub use limit::{LimitOptions, LimitStats, RedisBackend, RedisFactory};
pub use quota::{Flusher, NoticeClaim, QuotaOptions, QuotaStats, RedisQuota, Reseeded};
pub use revocations::{RedisRevocations, RevocationOptions, RevocationStats};
pub use store::{ClockSource, RedisConfig, RedisStore, StoreError, StoreStats};
