//! [`RedisQuota`]: the quota store itself (its state, its stats) and the decision of
//! one call: the check-and-add script, else the quota's failure policy (local counting
//! against the last usage Redis reported).

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use tollgate::policy::FailurePolicy;
use tollgate::quota::{
    CommitOutcome, Ledger, QuotaDecision, QuotaError, QuotaEvent, QuotaTarget, Reservation,
    SharedCharge,
};
use tollgate::QuotaStore;

use super::local::{LocalMap, CHUNK_BITS};
use std::time::{SystemTime, UNIX_EPOCH};

use tollgate::quota::journal::NoticeKind;

use super::types::{Call, CounterId, Counters, NoticeClaim, QuotaOptions, QuotaStats, Reseeded};
use crate::script::calls::{self, CountArgs, CountKeys};
use crate::script::reply::{CountReply, Won};
use crate::store::{RedisStore, StoreError};

/// What a quota call records: a decision, or a reservation holding one (so a notice the
/// call claimed for the fleet can be attached to it, for the engine to deliver).
pub(super) trait Recorded {
    /// The decision.
    fn decision_mut(&mut self) -> &mut QuotaDecision;
}

impl Recorded for QuotaDecision {
    fn decision_mut(&mut self) -> &mut QuotaDecision {
        self
    }
}

impl Recorded for Reservation {
    fn decision_mut(&mut self) -> &mut QuotaDecision {
        &mut self.decision
    }
}

/// A charge as the ledger records it when the notices are the fleet's claims: the
/// outcome follows `used`, and nothing is crossed (the claimed notices are raised with
/// [`Ledger::notify_shared`]).
pub(super) fn quiet(c: SharedCharge) -> SharedCharge {
    match c {
        SharedCharge::Counted { used, .. } => SharedCharge::Counted { prev: used, used },
        r => r,
    }
}

/// Whether a call that failed with `e` may have reached Redis (and been counted): every
/// failure except the breaker keeping it off the network.
pub(super) fn maybe_sent(e: &StoreError) -> bool {
    !matches!(e, StoreError::CircuitOpen)
}

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
    /// Random per store (per process): the batch, settlement and call ids, and the
    /// name of this process's call-id bitmaps.
    pub(super) nonce: u64,
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
            uncertain: c.uncertain.load(Ordering::Relaxed),
            taken_back: c.taken_back.load(Ordering::Relaxed),
            notices_claimed: c.notices_claimed.load(Ordering::Relaxed),
            notices_skipped: c.notices_skipped.load(Ordering::Relaxed),
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

    /// When the claim keys of counter `id`'s notices expire (Unix seconds): with the
    /// counter, [`QuotaOptions::retention`] after the period's end.
    pub(super) fn claims_expire_at(&self, period_end: i64) -> i64 {
        period_end
            .saturating_add(i64::try_from(self.options.retention.as_secs()).unwrap_or(i64::MAX))
    }

    /// The claim keys (warning, overage) of `company`'s notices for the period
    /// labelled `period`.
    pub(super) fn claim_keys(&self, company: &str, period: &str) -> (String, String) {
        let (namer, prefix) = (self.store.namer(), &self.store.config().prefix);
        (
            namer.notice_key(prefix, company, period, 'w'),
            namer.notice_key(prefix, company, period, 'o'),
        )
    }

    /// The keys of a check-and-add of call `seq` on counter `id`.
    pub(super) fn count_keys(&self, id: &CounterId, t: &QuotaTarget, seq: u64) -> CountKeys {
        let (warning, overage) = self.claim_keys(&id.0, &t.period);
        CountKeys {
            counter: self.key(id),
            ids: self.ids_key(id, seq >> CHUNK_BITS),
            warning,
            overage,
        }
    }

    /// This process's call-id bitmap `chunk` on counter `id`.
    pub(super) fn ids_key(&self, id: &CounterId, chunk: u64) -> String {
        self.store.namer().quota_ids_key(
            &self.store.config().prefix,
            &id.0,
            id.1,
            self.nonce,
            chunk,
        )
    }

    /// The id of call `seq` (a claim key's value when the call claims a notice).
    pub(super) fn call_id(&self, seq: u64) -> String {
        format!("{}:{:016x}:{seq}", self.instance, self.nonce)
    }

    /// The arguments of a check-and-add of call `seq` of `cost` under target `t`.
    pub(super) fn count_args(&self, t: &QuotaTarget, cost: u64, seq: u64) -> CountArgs<'_> {
        CountArgs {
            instance: &self.instance,
            cost,
            cap: calls::cap_arg(t.hard_cap),
            bit: seq & ((1 << CHUNK_BITS) - 1),
            ids_ttl: self.options.call_ids_ttl.as_secs().max(1),
            warning: calls::cap_arg(t.warning),
            limit: t.limit,
            id: self.call_id(seq),
            claims_expire_at: self.claims_expire_at(t.period_end),
        }
    }

    /// Call `seq` of `cost` on counter `id` failed with `e`: if it may have reached
    /// Redis, the next flush looks it up (and takes it back if Redis counted it).
    pub(super) fn lost(&self, id: &CounterId, seq: u64, cost: u64, e: &StoreError) {
        if maybe_sent(e) {
            self.counters.uncertain.fetch_add(1, Ordering::Relaxed);
            self.local.update(id, |l| l.lost_reply(seq, cost));
        }
    }

    /// Raises the notices Redis says this instance claimed for the fleet (`won`, the
    /// counter at `used`), through the ledger (journaled, then in its outbox), and
    /// counts the crossings of `prev..used` another instance had claimed. Returns the
    /// event of the most severe notice raised.
    pub(super) fn raise_claimed(
        &self,
        ledger: &Ledger,
        (company, period_end): (&str, i64),
        now: u64,
        won: Won,
        crossed: (bool, bool),
        used: u64,
    ) -> Option<Box<QuotaEvent>> {
        let skipped = u64::from(crossed.0 && !won.warning) + u64::from(crossed.1 && !won.overage);
        if skipped > 0 {
            self.counters
                .notices_skipped
                .fetch_add(skipped, Ordering::Relaxed);
        }
        if !won.any() {
            return None;
        }
        self.counters.notices_claimed.fetch_add(
            u64::from(won.warning) + u64::from(won.overage),
            Ordering::Relaxed,
        );
        // Inside the counter's period (a flush may come after it ended).
        let last = i128::from(period_end).saturating_mul(1_000_000_000) - 1;
        let at = i128::from(now).min(last);
        ledger
            .notify_shared(company, at, (won.warning, won.overage), used)
            .ok()
            .flatten()
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
    fn local_decide<R: Recorded>(
        &self,
        call: &Call<'_>,
        over_cap: bool,
        rec: &impl Fn(SharedCharge) -> Result<R, QuotaError>,
    ) -> Result<R, QuotaError> {
        let Call { cost, id, t, .. } = *call;
        self.counters.local.fetch_add(1, Ordering::Relaxed);
        let _shared = self.counting();
        self.local.with_target(id, t, |l| {
            // The fleet as this instance assumes it: every other instance has counted
            // as much as this one since Redis last answered, so each admits only its
            // share of the room left under the hard cap (see DURABILITY.md).
            let n = self.options.instances.map_or(l.shares, u64::from).max(1);
            let est = l.last_shared.saturating_add(l.unsent().saturating_mul(n));
            let charge = match t.hard_cap {
                Some(cap) if !over_cap && est.saturating_add(cost.saturating_mul(n)) > cap => {
                    SharedCharge::Refused { used: est }
                }
                _ => counted(est, cost),
            };
            if let SharedCharge::Counted { .. } = charge {
                l.pending += cost;
            }
            // No notice is raised from a local decision: the flush that sends the call
            // claims the crossing for the fleet (see `flush`).
            rec(quiet(charge))
        })
    }

    /// The quota's failure policy's answer for a call Redis could not decide (`e`).
    /// Not under [`counting`](Self::counting).
    pub(super) fn on_failure<R: Recorded>(
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

    /// The answer for Redis's `reply` to a call of `cost`, recorded by `rec` in
    /// `ledger` at `now`, with the notices the call claimed for the fleet raised and
    /// attached; `None` when this instance's share is missing. Called under
    /// [`counting`](Self::counting).
    pub(super) fn answer<R: Recorded>(
        &self,
        (id, t): (&CounterId, &QuotaTarget),
        (ledger, cost, now): (&Ledger, u64, u64),
        reply: CountReply,
        rec: &impl Fn(SharedCharge) -> Result<R, QuotaError>,
    ) -> Option<Result<R, QuotaError>> {
        match reply {
            CountReply::Counted { used, won, shares } => {
                self.counters.remote.fetch_add(1, Ordering::Relaxed);
                let prev = used - cost.min(used);
                let d = rec(SharedCharge::Counted { prev: used, used });
                self.local.with_target(id, t, |l| {
                    l.saw(used);
                    l.shares = shares.max(1);
                });
                let crossed = (
                    t.warning.is_some_and(|w| prev < w && used >= w),
                    prev <= t.limit && used > t.limit,
                );
                let event =
                    self.raise_claimed(ledger, (&id.0, t.period_end), now, won, crossed, used);
                Some(d.map(|mut d| {
                    if event.is_some() {
                        d.decision_mut().event = event;
                    }
                    d
                }))
            }
            CountReply::Refused { used, shares } => {
                self.counters.remote.fetch_add(1, Ordering::Relaxed);
                self.local.with_target(id, t, |l| l.shares = shares.max(1));
                Some(rec(SharedCharge::Refused { used }))
            }
            CountReply::MissingShare => None,
        }
    }

    /// Counts a call of `cost` by the holder of `key` at `now` on the shared counter
    /// (the check-and-add script) and records it with `rec` (a call or a reservation).
    fn decide<R: Recorded>(
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
        for _ in 0..2 {
            let shared = self.counting();
            let seq = self.local.with_target(&id, &t, |l| l.take_seq());
            let keys = self.count_keys(&id, &t, seq);
            let args = self.count_args(&t, cost, seq);
            let inv = calls::quota_count(&self.store.scripts, &keys, &args);
            let reply = match self.store.call(&inv, |r: &Vec<i64>| CountReply::parse(r)) {
                Ok(r) => r,
                Err(e) => {
                    drop(shared);
                    // Redis may have counted it: the flush looks it up.
                    self.lost(&id, seq, cost, &e);
                    return self.on_failure(&call, &e, &rec);
                }
            };
            if let Some(d) = self.answer((&id, &t), (ledger, cost, now), reply, &rec) {
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

impl RedisQuota {
    /// Claims `company`'s notice of `kind` for the period labelled `period` (as the
    /// ledger labels it, e.g. `"2027-01"`) for the whole fleet: an atomic `SET NX` of
    /// the notice's claim key (a fingerprint of the company under the fleet secret, see
    /// [`crate::keys`]). Exactly one claim per company, period and kind succeeds while
    /// Redis keeps its data; the key is the one the quota's own scripts claim with, so a
    /// notice this store raised already answers [`AlreadyClaimed`](NoticeClaim::AlreadyClaimed).
    ///
    /// The claim expires [`QuotaOptions::retention`] after the end of the counter's
    /// period when this store knows the period (it counted in it), else 400 days plus
    /// the retention from now (longer than any period). For an outbox: claim before
    /// offering a notice, offer it on `Claimed`, drop it on `AlreadyClaimed`, keep it and
    /// retry on `Unavailable`.
    pub fn claim_notice(&self, company: &str, period: &str, kind: NoticeKind) -> NoticeClaim {
        let (w, o) = self.claim_keys(company, period);
        let key = match kind {
            NoticeKind::Warning => w,
            NoticeKind::Overage => o,
        };
        let expire_at = self
            .local
            .period_end(company, period)
            .map(|end| self.claims_expire_at(end))
            .unwrap_or_else(|| {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                self.claims_expire_at(now.saturating_add(400 * 86_400))
            });
        let who = format!("{}:{:016x}:n", self.instance, self.nonce);
        let reply = self.store.with_conn(|c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(&who)
                .arg("NX")
                .arg("EXAT")
                .arg(expire_at)
                .query::<Option<String>>(c)
        });
        match reply {
            Ok(Some(_)) => {
                self.counters
                    .notices_claimed
                    .fetch_add(1, Ordering::Relaxed);
                NoticeClaim::Claimed
            }
            Ok(None) => {
                self.counters
                    .notices_skipped
                    .fetch_add(1, Ordering::Relaxed);
                NoticeClaim::AlreadyClaimed
            }
            Err(_) => NoticeClaim::Unavailable,
        }
    }
}
