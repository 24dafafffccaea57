//! [`RedisFactory`]: builds a [`RedisBackend`] for each limit whose policy says
//! `backend = "redis"`, with its [`LimitOptions`], and offers the engine the combined
//! backend of its store.

use std::fmt;
use std::sync::Arc;

use tollgate::backend::LimitBackend;
use tollgate::core::Rate;
use tollgate::engine::{BackendFactory, CombinedBackend};
use tollgate::policy::LimitSpec;

use super::backend::RedisBackend;
use super::options::LimitOptions;
use super::stats::{Counters, LimitStats};
use crate::combined::RedisCombined;
use crate::store::RedisStore;

/// Builds [`RedisBackend`]s: register it with
/// [`EngineBuilder::backend`](tollgate::EngineBuilder::backend) under the name the
/// policy's limits use (`backend = "redis"`).
pub struct RedisFactory {
    store: Arc<RedisStore>,
    defaults: LimitOptions,
    per_limit: Vec<(String, LimitOptions)>,
    counters: Arc<Counters>,
    combine: bool,
}

impl fmt::Debug for RedisFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFactory")
            .field("defaults", &self.defaults)
            .field("per_limit", &self.per_limit)
            .finish()
    }
}

impl RedisFactory {
    /// Limits on `store` with the default options.
    pub fn new(store: Arc<RedisStore>) -> Self {
        RedisFactory {
            store,
            defaults: LimitOptions::default(),
            per_limit: Vec::new(),
            counters: Arc::default(),
            combine: true,
        }
    }

    /// The options of every limit not named in [`limit`](Self::limit).
    pub fn options(mut self, options: LimitOptions) -> Self {
        self.defaults = options;
        self
    }

    /// The options of the limit named `name`.
    pub fn limit(mut self, name: impl Into<String>, options: LimitOptions) -> Self {
        self.per_limit.push((name.into(), options));
        self
    }

    /// Whether a request's limits on this store, and its quota call, are decided by one
    /// script in one round trip (default `true`; see [`crate::combined`]). `false`: one
    /// script call per limit and one for the quota, each atomic on its own key.
    pub fn combine(mut self, on: bool) -> Self {
        self.combine = on;
        self
    }

    /// What the limits built so far did.
    pub fn stats(&self) -> LimitStats {
        self.counters.snapshot()
    }

    /// The backend for `spec` at `rate` (what the engine calls through
    /// [`BackendFactory::build`]). Its failure policy is `spec`'s `on_failure` when set,
    /// else the limit's [`LimitOptions::failure`].
    pub fn backend(&self, spec: &LimitSpec, rate: Rate) -> Result<RedisBackend, String> {
        let options = self
            .per_limit
            .iter()
            .find(|(n, _)| *n == spec.name)
            .map_or(self.defaults, |(_, o)| *o);
        RedisBackend::new(
            Arc::clone(&self.store),
            spec,
            rate,
            options,
            Arc::clone(&self.counters),
        )
    }
}

impl BackendFactory for RedisFactory {
    fn build(&self, limit: &LimitSpec, rate: Rate) -> Result<Arc<dyn LimitBackend>, String> {
        Ok(Arc::new(self.backend(limit, rate)?))
    }

    fn combined(&self) -> Option<Arc<dyn CombinedBackend>> {
        self.combine
            .then(|| Arc::new(RedisCombined::new(Arc::clone(&self.store))) as _)
    }
}
