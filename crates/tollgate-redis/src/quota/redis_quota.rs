//! [`RedisQuota`]: the quota store itself (its state, its stats) and the decision of
//! one call: the check-and-add script, else the quota's failure policy (local counting
//! against the last usage Redis reported).

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use tollgate::policy::FailurePolicy;
use tollgate::quota::{
    CommitOutcome, Ledger, QuotaDecision, QuotaError, QuotaTarget, Reservation, SharedCharge,
};
use tollgate::QuotaStore;

use super::local::LocalMap;
use super::types::{Call, CounterId, Counters, QuotaOptions, QuotaStats, Reseeded};
use crate::script::calls;
use crate::script::reply::CountReply;
use crate::store::RedisStore;

/// The fleet's quota on Redis: register it with
/// [`EngineBuilder::quota_store`](tollgate::EngineBuilder::quota_store). See the
/// [module docs](crate::quota).
pub struct RedisQuota {
    pub(super) store: Arc<RedisStore>,
    pub(super) instance: String,
    pub(super) options: QuotaOptions,
    pub(super) local: LocalMap,
    /// Calls hold it shared while they count (in Redis and in the ledger); a seed holds
    /// it exclusively, so the share it reads from the ledger is exact.
    pub(super) seeding: RwLock<()>,
    pub(super) reports: Mutex<Vec<Reseeded>>,
    pub(super) counters: Counters,
    nonce: u64,
    seq: AtomicU64,
}

impl fmt::Debug for RedisQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQuota")
            .field("instance", &self.instance)
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A call of `cost` counted on a counter at `used`.
fn counted(used: u64, cost: u64) -> SharedCharge {
    SharedCharge::Counted {
        prev: used,
        used: used.saturating_add(cost),
    }
}

impl RedisQuota {
    /// The quota of instance `instance` (stable across restarts, unique in the fleet)
    /// on `store`.
    pub fn new(store: Arc<RedisStore>, instance: impl Into<String>, options: QuotaOptions) -> Self {
        RedisQuota {
            store,
            instance: instance.into(),
            options,
            local: LocalMap::new(),
            seeding: RwLock::new(()),
            reports: Mutex::new(Vec::new()),
            counters: Counters::default(),
            nonce: RandomState::new().hash_one(std::process::id()),
            seq: AtomicU64::new(0),
        }
    }

    /// The counters.
    pub fn stats(&self) -> QuotaStats {
        let c = &self.counters;
        QuotaStats {
            remote: c.remote.load(Ordering::Relaxed),
            local: c.local.load(Ordering::Relaxed),
            refused_unavailable: c.refused_unavailable.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            duplicate_flushes: c.duplicate_flushes.load(Ordering::Relaxed),
            seeds: c.seeds.load(Ordering::Relaxed),
            reseeded: c.reseeded.load(Ordering::Relaxed),
            tracked: self.local.len() as u64,
        }
    }

    /// Takes the reports of counters found missing and re-seeded.
    pub fn reseeded(&self) -> Vec<Reseeded> {
        std::mem::take(&mut *self.reports.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Calls counted locally and not yet in Redis, over all counters.
    pub fn unsent(&self) -> u64 {
        self.local.unsent()
    }

    /// The Redis key of counter `id`.
    pub(super) fn key(&self, id: &CounterId) -> String {
        self.store
            .namer()
            .quota_key(&self.store.config().prefix, &id.0, id.1)
    }

    /// A new id for a batch or a settlement (`rotate` tells the kinds apart).
    pub(super) fn next_id(&self, rotate: u32) -> u64 {
        self.nonce.rotate_left(rotate) ^ self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Held shared while a call is counted in Redis and in the ledger (see `seed`).
    pub(crate) fn counting(&self) -> RwLockReadGuard<'_, ()> {
        self.seeding.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides a call locally and accumulates it; `rec` records it in the ledger.
    /// `over_cap`: the hard cap does not apply ([`FailurePolicy::Open`]).
    fn local_decide<R>(
        &self,
        call: &Call<'_>,
        over_cap: bool,
        rec: &impl Fn(SharedCharge) -> Result<R, QuotaError>,
    ) -> Result<R, QuotaError> {
        let Call { cost, id, t, .. } = *call;
        self.counters.local.fetch_add(1, Ordering::Relaxed);
        let _shared = self.counting();
        self.local.with_target(id, t, |l| {
            let est = l.last_shared + l.unsent();
            let charge = if over_cap {
                counted(est, cost)
            } else {
                t.admit(est, cost)
            };
            if let SharedCharge::Counted { .. } = charge {
                l.pending += cost;
            }
            rec(charge)
        })
    }

    /// The quota's failure policy's answer for a call Redis could not decide (`e`).
    /// Not under [`counting`](Self::counting).
    pub(super) fn on_failure<R>(
        &self,
        call: &Call<'_>,
        e: &dyn std::fmt::Display,
        rec: &impl Fn(SharedCharge) -> Result<R, QuotaError>,
    ) -> Result<R, QuotaError> {
        match self.options.failure {
            FailurePolicy::Fallback => self.local_decide(call, false, rec),
            FailurePolicy::Open => self.local_decide(call, true, rec),
            FailurePolicy::Closed => {
                self.counters
                    .refused_unavailable
                    .fetch_add(1, Ordering::Relaxed);
                Err(QuotaError::Unavailable(e.to_string()))
            }
        }
    }

    /// The answer for Redis's `reply` to a call of `cost`, recorded by `rec`; `None`
    /// when this instance's share is missing. Called under
    /// [`counting`](Self::counting).
    pub(super) fn answer<R>(
        &self,
        (id, t): (&CounterId, &QuotaTarget),
        cost: u64,
        reply: CountReply,
        rec: &impl Fn(SharedCharge) -> Result<R, QuotaError>,
    ) -> Option<Result<R, QuotaError>> {
        match reply {
            CountReply::Counted { used } => {
                self.counters.remote.fetch_add(1, Ordering::Relaxed);
                let d = rec(SharedCharge::Counted {
                    prev: used - cost.min(used),
                    used,
                });
                self.local.with_target(id, t, |l| l.saw(used));
                Some(d)
            }
            CountReply::Refused { used } => {
                self.counters.remote.fetch_add(1, Ordering::Relaxed);
                Some(rec(SharedCharge::Refused { used }))
            }
            CountReply::MissingShare => None,
        }
    }

    /// Counts a call of `cost` by the holder of `key` at `now` on the shared counter
    /// (the check-and-add script) and records it with `rec` (a call or a reservation).
    fn decide<R>(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
        failed: Option<&str>,
        rec: impl Fn(&Ledger, SharedCharge) -> Result<R, QuotaError>,
    ) -> Result<R, QuotaError> {
        let rec = |c| rec(ledger, c);
        let t = ledger.target(key, i128::from(now))?;
        let id: CounterId = (t.company.clone(), t.period_start);
        let call = Call {
            cost,
            id: &id,
            t: &t,
        };
        // The combined request's one attempt failed for this very call.
        if let Some(why) = failed {
            return self.on_failure(&call, &why, &rec);
        }
        let (waiting, unsent, due) = self.local.with_target(&id, &t, |l| {
            let due = self
                .options
                .batch
                .is_some_and(|every| l.last_flush.elapsed() >= every);
            (l.waiting(), l.unsent(), due)
        });
        if self.options.batch.is_some() {
            if due && unsent > 0 {
                let _ = self.flush_counter(ledger, &id);
            }
            return self.local_decide(&call, false, &rec);
        }
        // Calls accumulated while Redis was away go first, so the decision sees them.
        if waiting {
            if let Err(e) = self.flush_counter(ledger, &id) {
                return self.on_failure(&call, &e, &rec);
            }
        }
        let k = self.key(&id);
        let cap = calls::cap_arg(t.hard_cap);
        for _ in 0..2 {
            let shared = self.counting();
            let inv = calls::quota_count(&self.store.scripts, &k, &self.instance, cost, cap);
            let reply = match self.store.call(&inv, |r: &Vec<i64>| CountReply::parse(r)) {
                Ok(r) => r,
                Err(e) => {
                    drop(shared);
                    return self.on_failure(&call, &e, &rec);
                }
            };
            if let Some(d) = self.answer((&id, &t), cost, reply, &rec) {
                return d;
            }
            drop(shared);
            if let Err(e) = self.seed(ledger, &id) {
                return self.on_failure(&call, &e, &rec);
            }
        }
        Err(QuotaError::Unavailable(
            "the quota counter vanished again while it was re-seeded".into(),
        ))
    }
}

impl RedisQuota {
    /// A call recorded on the shared counter; `failed`: the request's one attempt at
    /// Redis already failed (why), so the failure policy answers.
    fn record_call(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
        failed: Option<&str>,
    ) -> Result<QuotaDecision, QuotaError> {
        let at = i128::from(now);
        self.decide(ledger, key, cost, now, failed, |l, c| {
            l.record_shared(key, cost, at, c)
        })
    }
}

impl QuotaStore for RedisQuota {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn store_health(&self) -> Option<tollgate::metrics::BackendHealth> {
        Some(self.store.health())
    }

    fn quota_stats(&self) -> Option<tollgate::metrics::QuotaStoreStats> {
        let s = self.stats();
        Some(tollgate::metrics::QuotaStoreStats {
            remote: s.remote,
            local: s.local,
            refused: s.refused_unavailable,
            unsent: self.unsent(),
        })
    }

    fn record(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
    ) -> Result<QuotaDecision, QuotaError> {
        self.record_call(ledger, key, cost, now, None)
    }

    /// The combined request script failed for this request: the quota's failure policy
    /// answers at once, without a second attempt.
    fn record_failed(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
        why: &str,
    ) -> Result<QuotaDecision, QuotaError> {
        self.record_call(ledger, key, cost, now, Some(why))
    }

    /// Reserves on the shared counter like a call (the check-and-add script), so the
    /// fleet sees the reservation at once.
    fn reserve(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
    ) -> Result<Reservation, QuotaError> {
        let at = i128::from(now);
        self.decide(ledger, key, cost, now, None, |l, c| {
            l.reserve_shared(key, cost, at, c)
        })
    }

    /// Settles on the shared counter: the final cost replaces what was held, once per
    /// idempotency key and period across the fleet (Redis keeps the keys). While Redis
    /// is unreachable the ledger settles alone (its own keys decide) and the settlement
    /// is sent, once, when Redis answers.
    fn commit(
        &self,
        ledger: &Ledger,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
    ) -> CommitOutcome {
        self.settle(ledger, r, Some((final_cost, idempotency_key)))
    }

    fn refund(&self, ledger: &Ledger, r: Reservation) {
        self.settle(ledger, r, None);
    }
}
