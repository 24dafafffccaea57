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
//! backend. An undo of a decision the local fallback made goes to the local limiter
//! (the top bit of [`Undo::cost`] marks it).
//!
//! # Reload
//! A reload that changes a limit's rate builds a new backend on the same keys. Each
//! state records the interval (GCRA) or window length (sliding window) it was written
//! under, so the scripts carry a key's used capacity over exactly like
//! [`MemoryBackend::carry_over`]: a GCRA backlog is re-expressed in the new interval
//! (raising a limit takes effect at once), and a sliding window whose length changed
//! starts fresh.
//!
//! # When Redis is slow or down
//! Each limit has a [`FailurePolicy`]. The store's circuit breaker opens after a few
//! failures, so during an outage the policy answers at once instead of after a timeout.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tollgate::backend::{BackendError, LimitBackend, LimitKey, MemoryBackend, Undo};
use tollgate::core::{Decision, InsufficientCapacity, Rate};
use tollgate::engine::{BackendFactory, CombinedBackend};
use tollgate::policy::{AlgorithmKind, Attr, LimitSpec};

use redis::ScriptInvocation;

use crate::combined::RedisCombined;
use crate::keys;
use crate::store::{RedisStore, StoreError};

/// What a limit does when Redis is slow or down (or its breaker is open).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// The instance's own in-memory limiter decides (the default). Each instance then
    /// enforces the whole limit on its own, so a fleet of `n` admits up to `n` times
    /// the limit during an outage; the state does not carry back to Redis.
    #[default]
    Fallback,
    /// Allow every request (nothing is counted).
    Open,
    /// Refuse every request as unavailable ([`BackendError::Unavailable`]).
    Closed,
}

/// Per-limit options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitOptions {
    /// What to do when Redis cannot decide.
    pub failure: FailurePolicy,
    /// Remember keys Redis denied until their `retry_after` passes, and deny them
    /// locally meanwhile without asking Redis (off by default). It never allows a
    /// request Redis would deny: it only denies, and only requests at least as costly as
    /// the one Redis denied, before the time Redis said to wait (measured from when the
    /// denied request was *sent*, so the cache expires no later than Redis's answer).
    /// It may deny a request Redis would allow when capacity came back early (another
    /// instance's undo, a reset or a raised limit).
    pub over_limit_cache: bool,
    /// Keys the local fallback limiter and the over-limit cache hold (default 65,536).
    pub local_capacity: usize,
}

impl Default for LimitOptions {
    fn default() -> Self {
        LimitOptions {
            failure: FailurePolicy::Fallback,
            over_limit_cache: false,
            local_capacity: 65_536,
        }
    }
}

/// Counters shared by the backends one factory built.
#[derive(Debug, Default)]
struct Counters {
    remote: AtomicU64,
    failures: AtomicU64,
    fallback: AtomicU64,
    cache_hits: AtomicU64,
    lost_undos: AtomicU64,
}

/// What the limits of one [`RedisFactory`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitStats {
    /// Decisions Redis made.
    pub remote: u64,
    /// Decisions Redis could not make (the failure policy answered).
    pub failures: u64,
    /// Of those, the ones the local fallback limiter decided.
    pub fallback: u64,
    /// Requests the over-limit cache denied without asking Redis.
    pub cache_hits: u64,
    /// Undos that could not reach Redis (the cost stays taken until the key refills).
    pub lost_undos: u64,
}

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
        let c = &self.counters;
        LimitStats {
            remote: c.remote.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            fallback: c.fallback.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            lost_undos: c.lost_undos.load(Ordering::Relaxed),
        }
    }

    /// The backend for `spec` at `rate` (what the engine calls through
    /// [`BackendFactory::build`]).
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

/// The algorithm's parameters in the scripts' units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Params {
    Gcra { t_us: u64, tau_us: u64, burst: u64 },
    Window { w_us: u64, limit: u64 },
}

/// Largest Unix time in microseconds the bounds below leave room for: year 2096.
const MAX_NOW_US: u64 = 4_000_000_000_000_000;
/// Integers in a Lua double are exact below this.
const LUA_EXACT: u64 = 1 << 53;

impl Params {
    fn new(kind: AlgorithmKind, rate: Rate) -> Result<Self, String> {
        match kind {
            AlgorithmKind::Gcra => {
                let t_us = rate.emission_interval_nanos().div_ceil(1000).max(1);
                let burst = rate.burst();
                let tau_us = t_us
                    .checked_mul(burst)
                    .filter(|tau| tau.saturating_mul(2) <= LUA_EXACT - MAX_NOW_US)
                    .ok_or_else(|| {
                        format!(
                            "rate {rate}: burst x emission interval is too long for exact \
                             arithmetic in Redis (at most about 27 years)"
                        )
                    })?;
                Ok(Params::Gcra {
                    t_us,
                    tau_us,
                    burst,
                })
            }
            AlgorithmKind::SlidingWindow => {
                // The same checks as the in-memory window (>= 1 s, <= 65,535 per window).
                tollgate::core::SlidingWindow::new(rate).map_err(|e| e.to_string())?;
                let w_ns = rate.period_nanos();
                if !w_ns.is_multiple_of(1000) {
                    return Err(format!(
                        "rate {rate}: a sliding window on Redis must be a whole number of \
                         microseconds"
                    ));
                }
                let w_us = w_ns / 1000;
                let limit = rate.count();
                if u128::from(limit) * u128::from(w_us) * 4 >= u128::from(LUA_EXACT - MAX_NOW_US) {
                    return Err(format!(
                        "rate {rate}: limit x window is too large for exact arithmetic in \
                         Redis; use gcra or a shorter window"
                    ));
                }
                Ok(Params::Window { w_us, limit })
            }
        }
    }

    pub(crate) fn capacity(&self) -> u64 {
        match *self {
            Params::Gcra { burst, .. } => burst,
            Params::Window { limit, .. } => limit,
        }
    }
}

/// Marks an [`Undo`] the local fallback limiter took.
const LOCAL_UNDO: u64 = 1 << 63;

/// One limit's state on Redis. See the [module docs](self).
pub struct RedisBackend {
    pub(crate) store: Arc<RedisStore>,
    name: String,
    rate: Rate,
    pub(crate) params: Params,
    /// Index of the `company` attribute in the limit's key: its hash tag.
    tag_part: Option<usize>,
    failure: FailurePolicy,
    local: MemoryBackend,
    cache: Option<OverLimitCache>,
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
    fn new(
        store: Arc<RedisStore>,
        spec: &LimitSpec,
        rate: Rate,
        options: LimitOptions,
        counters: Arc<Counters>,
    ) -> Result<Self, String> {
        let params = Params::new(spec.algorithm, rate)?;
        let local = MemoryBackend::new(spec.algorithm, rate, options.local_capacity.max(64))
            .map_err(|e| e.to_string())?;
        Ok(RedisBackend {
            store,
            name: spec.name.clone(),
            rate,
            params,
            tag_part: spec.key.iter().position(|a| *a == Attr::Company),
            failure: options.failure,
            local,
            cache: options
                .over_limit_cache
                .then(|| OverLimitCache::new(options.local_capacity.max(64))),
            counters,
        })
    }

    /// The Redis key of `key`'s state.
    pub fn key_of(&self, key: &LimitKey<'_>) -> String {
        keys::limit_key(
            &self.store.config().prefix,
            &self.name,
            key.parts,
            self.tag_part,
        )
    }

    fn check_cost(&self, cost: u64) -> Result<(), BackendError> {
        InsufficientCapacity::check(cost, self.params.capacity()).map_err(BackendError::CannotPass)
    }

    /// The script call deciding `key`: `op` is "a" (acquire) or "p" (peek).
    fn decide_call(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
        op: &str,
    ) -> ScriptInvocation<'_> {
        let k = self.key_of(key);
        let (now_arg, ttl) = self.store.clock_args(now);
        let s = &self.store.scripts;
        match self.params {
            Params::Gcra { t_us, tau_us, .. } => {
                let mut inv = s.gcra.key(&k);
                inv.arg(op)
                    .arg(cost)
                    .arg(t_us)
                    .arg(tau_us)
                    .arg(&now_arg)
                    .arg(ttl);
                inv
            }
            Params::Window { w_us, limit } => {
                let mut inv = s.window.key(&k);
                inv.arg(op)
                    .arg(cost)
                    .arg(w_us)
                    .arg(limit)
                    .arg(&now_arg)
                    .arg(ttl);
                inv
            }
        }
    }

    /// The decision (and undo record) in a decide script's reply.
    pub(crate) fn parse(&self, r: &[i64], cost: u64) -> (Decision, Option<Undo>) {
        self.counters.remote.fetch_add(1, Ordering::Relaxed);
        let n = |i: usize| r.get(i).copied().unwrap_or(0).max(0) as u64;
        let us = |i: usize| n(i).saturating_mul(1000);
        let allowed = n(0) == 1;
        let d = Decision {
            limit: self.params.capacity(),
            remaining: n(1),
            retry_after: if allowed { 0 } else { us(2).max(1) },
            reset_after: us(3),
        };
        let undo = match self.params {
            Params::Gcra { .. } => (allowed && n(4) != n(5)).then(|| Undo {
                cost,
                before: n(4),
                after: n(5),
            }),
            Params::Window { .. } => {
                let pack = |w: u64, p: u64, c: u64| ((w & 0xFFFF_FFFF) << 32) | (p << 16) | c;
                let before = pack(n(4), n(5), n(6));
                let after = pack(n(7), n(8), n(9));
                (allowed && before != after).then_some(Undo {
                    cost,
                    before,
                    after,
                })
            }
        };
        (d, undo)
    }

    /// Asks Redis: `op` is "a" (acquire) or "p" (peek).
    fn remote(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
        op: &str,
    ) -> Result<(Decision, Option<Undo>), StoreError> {
        let r: Vec<i64> = self.store.invoke(&self.decide_call(key, cost, now, op))?;
        Ok(self.parse(&r, cost))
    }

    /// The script call giving back what `undo` took.
    fn undo_call(&self, key: &LimitKey<'_>, undo: Undo, now: u64) -> ScriptInvocation<'_> {
        let k = self.key_of(key);
        let (now_arg, ttl) = self.store.clock_args(now);
        let s = &self.store.scripts;
        match self.params {
            Params::Gcra { t_us, .. } => {
                let mut inv = s.gcra_undo.key(&k);
                inv.arg(undo.cost)
                    .arg(t_us)
                    .arg(undo.before)
                    .arg(undo.after)
                    .arg(&now_arg)
                    .arg(ttl);
                inv
            }
            Params::Window { w_us, .. } => {
                let unpack = |s: u64| [s >> 32, (s >> 16) & 0xFFFF, s & 0xFFFF];
                let [bw, bp, bc] = unpack(undo.before);
                let [aw, ap, ac] = unpack(undo.after);
                let mut inv = s.window_undo.key(&k);
                inv.arg(undo.cost)
                    .arg(w_us)
                    .arg(bw)
                    .arg(bp)
                    .arg(bc)
                    .arg(aw)
                    .arg(ap)
                    .arg(ac)
                    .arg(&now_arg)
                    .arg(ttl);
                inv
            }
        }
    }

    /// Whether `undo` was taken by the local fallback; if so, gives it back there.
    fn undo_local(&self, key: &LimitKey<'_>, undo: Undo, now: u64) -> bool {
        if undo.cost & LOCAL_UNDO == 0 {
            return false;
        }
        let u = Undo {
            cost: undo.cost & !LOCAL_UNDO,
            ..undo
        };
        self.local.undo(key, u, now);
        true
    }

    /// The over-limit cache's denial of `key`, if it holds one.
    fn cached(&self, key: &LimitKey<'_>, cost: u64) -> Option<Decision> {
        let d = self.cache.as_ref()?.check(key.hash, cost)?;
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
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

    /// The failure policy's answer.
    pub(crate) fn on_failure(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
        take: bool,
        e: &StoreError,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        match self.failure {
            FailurePolicy::Fallback => {
                self.counters.fallback.fetch_add(1, Ordering::Relaxed);
                if take {
                    let (d, undo) = self.local.acquire(key, cost, now)?;
                    Ok((
                        d,
                        undo.map(|u| Undo {
                            cost: u.cost | LOCAL_UNDO,
                            ..u
                        }),
                    ))
                } else {
                    Ok((self.local.peek(key, cost, now)?, None))
                }
            }
            FailurePolicy::Open => {
                let capacity = self.params.capacity();
                Ok((
                    Decision {
                        limit: capacity,
                        remaining: capacity - cost,
                        retry_after: 0,
                        reset_after: 0,
                    },
                    None,
                ))
            }
            FailurePolicy::Closed => Err(BackendError::Unavailable(e.to_string())),
        }
    }
}

impl LimitBackend for RedisBackend {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn acquire(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        self.check_cost(cost)?;
        if let Some(d) = self.cached(key, cost) {
            return Ok((d, None));
        }
        let sent = Instant::now();
        match self.remote(key, cost, now, "a") {
            Ok((d, undo)) => {
                self.remember(key, cost, &d, sent);
                Ok((d, undo))
            }
            Err(e) => self.on_failure(key, cost, now, true, &e),
        }
    }

    fn undo(&self, key: &LimitKey<'_>, undo: Undo, now: u64) {
        if self.undo_local(key, undo, now) {
            return;
        }
        if self
            .store
            .invoke::<i64>(&self.undo_call(key, undo, now))
            .is_err()
        {
            self.counters.lost_undos.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn peek(&self, key: &LimitKey<'_>, cost: u64, now: u64) -> Result<Decision, BackendError> {
        self.check_cost(cost)?;
        match self.remote(key, cost, now, "p") {
            Ok((d, _)) => Ok(d),
            Err(e) => self.on_failure(key, cost, now, false, &e).map(|(d, _)| d),
        }
    }

    fn reset(&self, key: &LimitKey<'_>) {
        let k = self.key_of(key);
        let _ = self
            .store
            .with_conn(|c| redis::cmd("DEL").arg(&k).query::<i64>(c));
        self.local.reset(key);
        if let Some(cache) = &self.cache {
            cache.remove(key.hash);
        }
    }

    fn rate(&self) -> Rate {
        self.rate
    }
}

#[cfg(feature = "tokio")]
impl RedisBackend {
    /// [`acquire`](LimitBackend::acquire) on the async (tokio) path: the same scripts,
    /// cache, breaker and failure policy, over the store's multiplexed connection.
    pub async fn acquire_async(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        self.check_cost(cost)?;
        if let Some(d) = self.cached(key, cost) {
            return Ok((d, None));
        }
        let sent = Instant::now();
        let call = self.decide_call(key, cost, now, "a");
        match self.store.invoke_async::<Vec<i64>>(&call).await {
            Ok(r) => {
                let (d, undo) = self.parse(&r, cost);
                self.remember(key, cost, &d, sent);
                Ok((d, undo))
            }
            Err(e) => self.on_failure(key, cost, now, true, &e),
        }
    }

    /// [`undo`](LimitBackend::undo) on the async path.
    pub async fn undo_async(&self, key: &LimitKey<'_>, undo: Undo, now: u64) {
        if self.undo_local(key, undo, now) {
            return;
        }
        let call = self.undo_call(key, undo, now);
        if self.store.invoke_async::<i64>(&call).await.is_err() {
            self.counters.lost_undos.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// [`peek`](LimitBackend::peek) on the async path.
    pub async fn peek_async(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<Decision, BackendError> {
        self.check_cost(cost)?;
        let call = self.decide_call(key, cost, now, "p");
        match self.store.invoke_async::<Vec<i64>>(&call).await {
            Ok(r) => Ok(self.parse(&r, cost).0),
            Err(e) => self.on_failure(key, cost, now, false, &e).map(|(d, _)| d),
        }
    }
}

/// Keys Redis denied, until the time Redis said to wait (see
/// [`LimitOptions::over_limit_cache`]). Sharded maps; a full shard first drops expired
/// entries, and if still full simply does not remember (the next request asks Redis).
struct OverLimitCache {
    shards: Box<[Mutex<HashMap<u128, Denied>>]>,
    per_shard: usize,
}

#[derive(Clone, Copy, Debug)]
struct Denied {
    until: Instant,
    reset_until: Instant,
    /// The smallest cost denied: cheaper requests may fit, so they go to Redis.
    cost: u64,
    limit: u64,
    remaining: u64,
}

const CACHE_SHARDS: usize = 16;

impl OverLimitCache {
    fn new(capacity: usize) -> Self {
        OverLimitCache {
            shards: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            per_shard: capacity.div_ceil(CACHE_SHARDS),
        }
    }

    fn shard(&self, hash: u128) -> std::sync::MutexGuard<'_, HashMap<u128, Denied>> {
        self.shards[(hash as usize) % CACHE_SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self, hash: u128, cost: u64) -> Option<Decision> {
        let now = Instant::now();
        let mut shard = self.shard(hash);
        let d = *shard.get(&hash)?;
        if now >= d.until {
            shard.remove(&hash);
            return None;
        }
        if cost < d.cost {
            return None;
        }
        let ns = |t: Instant| u64::try_from(t.saturating_duration_since(now).as_nanos());
        Some(Decision {
            limit: d.limit,
            remaining: d.remaining,
            retry_after: ns(d.until).unwrap_or(u64::MAX).max(1),
            reset_after: ns(d.reset_until).unwrap_or(u64::MAX),
        })
    }

    fn insert(&self, hash: u128, cost: u64, d: &Decision, sent: Instant) {
        if d.retry_after == u64::MAX {
            return;
        }
        let until = sent + std::time::Duration::from_nanos(d.retry_after);
        let entry = Denied {
            until,
            reset_until: sent + std::time::Duration::from_nanos(d.reset_after),
            cost,
            limit: d.limit,
            remaining: d.remaining,
        };
        let mut shard = self.shard(hash);
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            let now = Instant::now();
            shard.retain(|_, e| e.until > now);
            if shard.len() >= self.per_shard {
                return;
            }
        }
        // The latest answer is the freshest: it replaces an older one.
        shard.insert(hash, entry);
    }

    fn remove(&self, hash: u128) {
        self.shard(hash).remove(&hash);
    }
}
