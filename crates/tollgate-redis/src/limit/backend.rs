//! [`RedisBackend`]: one limit's state on Redis, decided by the rate scripts (blocking
//! and async paths). When Redis cannot decide it answers
//! [`BackendError::Unavailable`]; the engine applies the limit's failure policy.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use tollgate::backend::{BackendError, LimitBackend, LimitKey, Undo};
use tollgate::core::{Decision, InsufficientCapacity, Rate};
use tollgate::policy::{Attr, FailurePolicy, LimitSpec};

use redis::ScriptInvocation;

use super::cache::OverLimitCache;
use super::fallback::Fallback;
use super::options::LimitOptions;
use super::stats::Counters;
use crate::script::calls::{self, Op};
use crate::script::params::Params;
use crate::script::reply::{RateReply, ReplyError};
use crate::store::{RedisStore, StoreError};

/// One limit's state on Redis. See the [module docs](crate::limit).
pub struct RedisBackend {
    pub(crate) store: Arc<RedisStore>,
    name: String,
    rate: Rate,
    pub(crate) params: Params,
    /// Index of the `company` attribute in the limit's key: its hash tag.
    tag_part: Option<usize>,
    /// The failure policy in force (the policy file's `on_failure`, else the options').
    failure: FailurePolicy,
    /// Keys the engine's fallback limiter holds.
    fallback_capacity: usize,
    cache: Option<OverLimitCache>,
    /// Under [`FailurePolicy::Fallback`]: the local limiter the engine decides with while
    /// Redis cannot (this instance's share of the limit, from the last state Redis
    /// reported; [`LimitOptions::fallback_instances`]).
    fallback: Option<Fallback>,
    counters: Arc<Counters>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("limit", &self.name)
            .field("rate", &self.rate)
            .field("params", &self.params)
            .field("failure", &self.failure)
            .field("over_limit_cache", &self.cache.is_some())
            .finish()
    }
}

impl RedisBackend {
    /// The backend of limit `spec` at `rate` on `store`.
    pub(crate) fn new(
        store: Arc<RedisStore>,
        spec: &LimitSpec,
        rate: Rate,
        options: LimitOptions,
        counters: Arc<Counters>,
    ) -> Result<Self, String> {
        let params = Params::new(spec.algorithm, rate)?;
        let failure = options.failure_for(spec.on_failure);
        let fallback = (failure == FailurePolicy::Fallback)
            .then(|| {
                Fallback::new(
                    spec.algorithm,
                    rate,
                    options.fallback_instances,
                    options.local_keys(),
                )
            })
            .transpose()?;
        Ok(RedisBackend {
            store,
            name: spec.name.clone(),
            rate,
            params,
            tag_part: spec.key.iter().position(|a| *a == Attr::Company),
            failure,
            fallback_capacity: options.local_keys(),
            cache: options
                .over_limit_cache
                .then(|| OverLimitCache::new(options.local_keys())),
            fallback,
            counters,
        })
    }

    /// The Redis key of `key`'s state.
    pub fn key_of(&self, key: &LimitKey<'_>) -> String {
        self.store.namer().limit_key(
            &self.store.config().prefix,
            &self.name,
            key.parts,
            self.tag_part,
        )
    }

    fn check_cost(&self, cost: u64) -> Result<(), BackendError> {
        InsufficientCapacity::check(cost, self.params.capacity()).map_err(BackendError::CannotPass)
    }

    /// Whether the limit is a sliding window (else GCRA): the shape of its replies.
    pub(crate) fn is_window(&self) -> bool {
        matches!(self.params, Params::Window { .. })
    }

    /// Parses a rate script's reply for this limit's algorithm.
    fn parse(&self, r: &[i64]) -> Result<RateReply, ReplyError> {
        RateReply::parse(r, self.is_window())
    }

    /// The script call deciding `key`.
    fn decide_call(&self, key: &LimitKey<'_>, cost: u64, now: u64, op: Op) -> ScriptInvocation<'_> {
        let clock = self.store.clock_args(now);
        calls::rate_decide(
            &self.store.scripts,
            self.params,
            &self.key_of(key),
            op,
            cost,
            &clock,
        )
    }

    /// The script call giving back what `undo` took.
    fn undo_call(&self, key: &LimitKey<'_>, undo: Undo, now: u64) -> ScriptInvocation<'_> {
        let clock = self.store.clock_args(now);
        calls::rate_undo(
            &self.store.scripts,
            self.params,
            &self.key_of(key),
            undo,
            &clock,
        )
    }

    /// The decision (and undo record) Redis answered for a call of `cost`.
    pub(crate) fn answer(&self, r: &RateReply, cost: u64) -> (Decision, Option<Undo>) {
        self.counters.remote();
        (r.decision(self.params.capacity()), r.undo(cost))
    }

    /// The answer when Redis could not decide a request, counted in
    /// [`LimitStats`](crate::LimitStats): always [`BackendError::Unavailable`]; the engine
    /// applies the limit's failure policy, under [`FailurePolicy::Fallback`] through this
    /// backend's own fallback limiter (this instance's share, from the last state Redis
    /// reported: see `limit/fallback.rs`).
    pub(crate) fn on_failure<T>(&self, e: &StoreError) -> Result<T, BackendError> {
        self.counters.failure(self.failure);
        Err(BackendError::Unavailable(e.to_string()))
    }

    /// Redis answered `d` for `key` at `now`: the fallback limiter starts there.
    pub(crate) fn saw(&self, key: &LimitKey<'_>, d: &Decision, now: u64) {
        if let Some(f) = &self.fallback {
            f.saw(key.hash, d, now);
        }
    }

    /// What an acquire checks before it asks Redis: the cost, then the over-limit
    /// cache (`Some`: its denial answers).
    fn before_acquire(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
    ) -> Result<Option<Decision>, BackendError> {
        self.check_cost(cost)?;
        Ok(self.cached(key, cost))
    }

    /// An acquire's answer from Redis's reply to the request sent at `sent` (`now`).
    fn acquired(
        &self,
        key: &LimitKey<'_>,
        (cost, now): (u64, u64),
        sent: Instant,
        reply: Result<RateReply, StoreError>,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        let r = match reply {
            Ok(r) => r,
            Err(e) => return self.on_failure(&e),
        };
        let (d, undo) = self.answer(&r, cost);
        self.saw(key, &d, now);
        self.remember(key, cost, &d, sent);
        Ok((d, undo))
    }

    /// A peek's answer from Redis's reply.
    fn peeked(
        &self,
        key: &LimitKey<'_>,
        (cost, now): (u64, u64),
        reply: Result<RateReply, StoreError>,
    ) -> Result<Decision, BackendError> {
        match reply {
            Ok(r) => {
                let d = self.answer(&r, cost).0;
                self.saw(key, &d, now);
                Ok(d)
            }
            Err(e) => self.on_failure(&e),
        }
    }

    /// Counts an undo that did not reach Redis.
    fn undone(&self, reply: Result<i64, StoreError>) {
        if reply.is_err() {
            self.counters.lost_undo();
        }
    }

    /// The over-limit cache's denial of `key`, if it holds one.
    fn cached(&self, key: &LimitKey<'_>, cost: u64) -> Option<Decision> {
        let d = self.cache.as_ref()?.check(key.hash, cost)?;
        self.counters.cache_hit();
        Some(d)
    }

    /// Whether the over-limit cache holds a denial of `key` at `cost` (counts nothing).
    pub(crate) fn cache_holds(&self, key: &LimitKey<'_>, cost: u64) -> bool {
        self.cache
            .as_ref()
            .is_some_and(|c| c.check(key.hash, cost).is_some())
    }

    /// Remembers a denial Redis answered to a request sent at `sent`.
    pub(crate) fn remember(&self, key: &LimitKey<'_>, cost: u64, d: &Decision, sent: Instant) {
        if let (Some(cache), false) = (&self.cache, d.allowed()) {
            cache.insert(key.hash, cost, d, sent);
        }
    }
}

impl LimitBackend for RedisBackend {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn store_health(&self) -> Option<tollgate::metrics::BackendHealth> {
        Some(self.store.health())
    }

    fn acquire(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        if let Some(d) = self.before_acquire(key, cost)? {
            return Ok((d, None));
        }
        let sent = Instant::now();
        let call = self.decide_call(key, cost, now, Op::Acquire);
        let reply = self.store.call(&call, |r: &Vec<i64>| self.parse(r));
        self.acquired(key, (cost, now), sent, reply)
    }

    fn undo(&self, key: &LimitKey<'_>, undo: Undo, now: u64) {
        self.undone(self.store.invoke::<i64>(&self.undo_call(key, undo, now)));
    }

    fn peek(&self, key: &LimitKey<'_>, cost: u64, now: u64) -> Result<Decision, BackendError> {
        self.check_cost(cost)?;
        let call = self.decide_call(key, cost, now, Op::Peek);
        let reply = self.store.call(&call, |r: &Vec<i64>| self.parse(r));
        self.peeked(key, (cost, now), reply)
    }

    fn reset(&self, key: &LimitKey<'_>) {
        let k = self.key_of(key);
        let _ = self
            .store
            .with_conn(|c| redis::cmd("DEL").arg(&k).query::<i64>(c));
        if let Some(cache) = &self.cache {
            cache.remove(key.hash);
        }
    }

    fn rate(&self) -> Rate {
        self.rate
    }

    fn failure_policy(&self) -> FailurePolicy {
        self.failure
    }

    fn fallback_capacity(&self) -> usize {
        self.fallback_capacity
    }

    fn own_fallback(&self) -> Option<&dyn LimitBackend> {
        self.fallback.as_ref().map(|f| f as &dyn LimitBackend)
    }
}

#[cfg(feature = "tokio")]
impl RedisBackend {
    /// [`acquire`](LimitBackend::acquire) on the async (tokio) path: the same scripts,
    /// cache and breaker, over the store's multiplexed connection. Like `acquire` it
    /// answers [`BackendError::Unavailable`] when Redis cannot decide: the failure
    /// policy is the engine's.
    pub async fn acquire_async(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        if let Some(d) = self.before_acquire(key, cost)? {
            return Ok((d, None));
        }
        let sent = Instant::now();
        let call = self.decide_call(key, cost, now, Op::Acquire);
        let reply = self
            .store
            .call_async(&call, |r: &Vec<i64>| self.parse(r))
            .await;
        self.acquired(key, (cost, now), sent, reply)
    }

    /// [`undo`](LimitBackend::undo) on the async path.
    pub async fn undo_async(&self, key: &LimitKey<'_>, undo: Undo, now: u64) {
        let call = self.undo_call(key, undo, now);
        self.undone(self.store.invoke_async::<i64>(&call).await);
    }

    /// [`peek`](LimitBackend::peek) on the async path.
    pub async fn peek_async(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<Decision, BackendError> {
        self.check_cost(cost)?;
        let call = self.decide_call(key, cost, now, Op::Peek);
        let reply = self
            .store
            .call_async(&call, |r: &Vec<i64>| self.parse(r))
            .await;
        self.peeked(key, (cost, now), reply)
    }
}
