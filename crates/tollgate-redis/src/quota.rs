//! Monthly quotas shared by a fleet: [`RedisQuota`] decides each call with a
//! check-and-add script on the company's counter for the period, and keeps every
//! instance's share in the counter so that a counter lost by Redis is rebuilt from the
//! instances' durable ledgers.
//!
//! # The counter
//! One hash per company and period (`{prefix}:{c:<company>}:q:<period start>`, see
//! [`crate::keys`]): `used` (the fleet's calls), `i:<instance>` (what each instance
//! contributed) and `f:<instance>` (the last batch it flushed). It expires
//! [`QuotaOptions::retention`] after the period ends.
//!
//! # A counter that vanished
//! Redis restarted without persistence, or a failover lost the last writes: the script
//! finds no share of this instance (`i:<instance>`) and says so instead of counting from
//! zero. The instance then seeds its share from its own ledger (the calls it recorded
//! this period, restored from its journal across its own restarts) and calls again. The
//! seed is idempotent (a share present is left alone), and happens under a lock that
//! keeps this instance's calls out meanwhile, so the seeded share is exactly the
//! ledger's. A seed for a counter this instance had used before, or with a non-zero
//! share, is reported ([`RedisQuota::reseeded`]). Every instance re-seeds its own share
//! on its next call, so until each instance that served calls this period has called
//! again, the counter misses their shares.
//!
//! The instance id must be stable across restarts and unique in the fleet (a host name):
//! a restarted instance whose share is still in Redis must not add it twice.
//!
//! # Reservations
//! [`QuotaStore::reserve`] counts the held cost like a call (the check-and-add script),
//! so the fleet sees it at once. A commit replaces the held cost by the final one, once
//! per idempotency key and period across the fleet (the counter keeps the keys as
//! `c:<key>` fields), and a refund releases the hold (`lua/quota_settle.lua`). Every
//! settlement carries an id the counter remembers (`s:<instance>:<id>`), so a
//! settlement retried, or sent again after an outage, is applied once. While Redis is
//! unreachable the ledger settles at once (its own idempotency keys decide) and the
//! settlement waits, in order, for the counter's next flush; a seed meanwhile leaves
//! out what those settlements changed in the ledger, since they will bring it.
//!
//! # When Redis is slow or down, and batching
//! Calls Redis did not count accumulate locally (per company and period) and are decided
//! against the last usage Redis reported plus what this instance has accumulated
//! ([`FailurePolicy::Fallback`]), or always served ([`FailurePolicy::Open`]), or refused
//! ([`FailurePolicy::Closed`]: nothing accumulates). They are flushed when Redis
//! answers again: by the next call for the same counter, or [`RedisQuota::flush`]. A
//! flush carries a batch id that the script remembers, so a flush retried after a lost
//! reply counts once. With [`QuotaOptions::batch`] every call is decided that way and
//! flushed at most every N ms: one Redis call per counter and interval instead of one
//! per call, at the price that instances do not see each other's last N ms of calls
//! (the fleet may pass the hard cap by what the instances served in one interval).
//!
//! # Local state
//! The instance keeps a little state per counter it used (the last usage Redis
//! reported, what waits to be sent). A counter whose period ended before a newer
//! period's first call is dropped from it once nothing of its waits to be sent (swept
//! by every [`RedisQuota::flush`], and by a new counter when the map has doubled since
//! the last sweep), so a long-running instance holds about the counters of the current
//! periods. A late call into such a period starts afresh:
//! Redis still decides it; only during an outage it is decided against this instance's
//! own count instead of the fleet's last reported usage.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tollgate::quota::{
    CommitOutcome, Ledger, QuotaDecision, QuotaError, QuotaTarget, Reservation, SharedCharge,
};
use tollgate::QuotaStore;

use crate::keys;
use crate::limit::FailurePolicy;
use crate::store::{RedisStore, StoreError};

/// Options of a [`RedisQuota`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaOptions {
    /// What to do when Redis cannot decide (default: decide locally and accumulate).
    pub failure: FailurePolicy,
    /// Decide every call locally and flush the accumulated calls to Redis at most this
    /// often (off by default: every call is decided by Redis).
    pub batch: Option<Duration>,
    /// How long a counter lives after its period ends (default 7 days), for late calls
    /// and reports.
    pub retention: Duration,
}

impl Default for QuotaOptions {
    fn default() -> Self {
        QuotaOptions {
            failure: FailurePolicy::Fallback,
            batch: None,
            retention: Duration::from_secs(7 * 86_400),
        }
    }
}

/// A counter that was missing in Redis and was re-seeded from this instance's ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reseeded {
    /// The company.
    pub company: String,
    /// The period's start, Unix seconds.
    pub period_start: i64,
    /// This instance's share that was seeded (its ledger's count).
    pub seeded: u64,
    /// The counter's usage after the seed.
    pub used: u64,
}

/// What the quota store did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaStats {
    /// Calls Redis decided.
    pub remote: u64,
    /// Calls decided locally (Redis unavailable, or batching).
    pub local: u64,
    /// Calls refused because Redis was unavailable ([`FailurePolicy::Closed`]).
    pub refused_unavailable: u64,
    /// Batches added to Redis.
    pub flushes: u64,
    /// Flushes Redis had already applied (retries), counted once.
    pub duplicate_flushes: u64,
    /// Seeds of this instance's share (the first use of a counter included).
    pub seeds: u64,
    /// Of those, counters found missing that this instance had counted in before.
    pub reseeded: u64,
    /// Counters (company and period) this instance holds local state for now.
    pub tracked: u64,
}

/// The thread [`RedisQuota::spawn_flusher`] started; dropping it stops the thread (after
/// a last flush).
#[derive(Debug)]
pub struct Flusher {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// This instance's view of one counter.
#[derive(Debug)]
struct Local {
    /// The period's label, to find this instance's count in its ledger.
    label: String,
    period_end: i64,
    /// Whether this instance has counted in this counter (it existed with our share).
    seen: bool,
    /// The usage Redis last reported.
    last_shared: u64,
    /// Calls decided locally and not yet sent.
    pending: u64,
    /// A batch sent and not yet acknowledged: (id, calls). Retried with the same id.
    inflight: Option<(u64, u64)>,
    last_flush: Instant,
    /// Reservations settled here while Redis was unreachable, oldest first: retried
    /// with their ids until Redis acknowledges them.
    settles: Vec<Settle>,
    /// What those settlements changed in this instance's ledger (its share), not yet in
    /// Redis.
    settle_delta: i64,
}

impl Local {
    /// A counter this instance has not used yet: the period `label` ending at
    /// `period_end`, whose usage was last known as `last_shared`.
    fn new(label: String, period_end: i64, last_shared: u64) -> Self {
        Local {
            label,
            period_end,
            seen: false,
            last_shared,
            pending: 0,
            inflight: None,
            last_flush: Instant::now(),
            settles: Vec::new(),
            settle_delta: 0,
        }
    }

    fn unsent(&self) -> u64 {
        self.pending + self.inflight.map_or(0, |(_, n)| n)
    }

    /// Whether something waits to be sent (calls or settlements).
    fn waiting(&self) -> bool {
        self.unsent() > 0 || !self.settles.is_empty()
    }
}

/// A reservation's settlement for the counter (see `lua/quota_settle.lua`).
#[derive(Clone, Debug)]
struct Settle {
    /// Unique per settlement: a retried one is applied once.
    id: u64,
    /// What the reservation held.
    held: u64,
    /// The final cost and the idempotency key of a commit; `None` for a refund.
    commit: Option<(u64, String)>,
    /// What it changed in this instance's ledger.
    local_delta: i64,
}

type CounterId = (String, i64);

/// The fewest counters at which a new one sweeps out the ended ones.
const SWEEP_MIN: usize = 256;

/// One call being decided.
#[derive(Clone, Copy)]
struct Call<'a> {
    cost: u64,
    id: &'a CounterId,
    t: &'a QuotaTarget,
}

#[derive(Debug, Default)]
struct Counters {
    remote: AtomicU64,
    local: AtomicU64,
    refused_unavailable: AtomicU64,
    flushes: AtomicU64,
    duplicate_flushes: AtomicU64,
    seeds: AtomicU64,
    reseeded: AtomicU64,
}

/// The fleet's quota on Redis: register it with
/// [`EngineBuilder::quota_store`](tollgate::EngineBuilder::quota_store). See the
/// [module docs](self).
pub struct RedisQuota {
    store: Arc<RedisStore>,
    instance: String,
    options: QuotaOptions,
    local: Mutex<HashMap<CounterId, Local>>,
    /// The size of `local` at which a new counter sweeps out the ended ones (read and
    /// written under `local`'s lock).
    sweep_at: AtomicUsize,
    /// Calls hold it shared while they count (in Redis and in the ledger); a seed holds
    /// it exclusively, so the share it reads from the ledger is exact.
    seeding: RwLock<()>,
    reports: Mutex<Vec<Reseeded>>,
    counters: Counters,
    nonce: u64,
    batch_seq: AtomicU64,
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

impl RedisQuota {
    /// The quota of instance `instance` (stable across restarts, unique in the fleet)
    /// on `store`.
    pub fn new(store: Arc<RedisStore>, instance: impl Into<String>, options: QuotaOptions) -> Self {
        RedisQuota {
            store,
            instance: instance.into(),
            options,
            local: Mutex::new(HashMap::new()),
            sweep_at: AtomicUsize::new(SWEEP_MIN),
            seeding: RwLock::new(()),
            reports: Mutex::new(Vec::new()),
            counters: Counters::default(),
            nonce: RandomState::new().hash_one(std::process::id()),
            batch_seq: AtomicU64::new(0),
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
            tracked: self.lock_local().len() as u64,
        }
    }

    /// Takes the reports of counters found missing and re-seeded.
    pub fn reseeded(&self) -> Vec<Reseeded> {
        std::mem::take(&mut *self.reports.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Calls counted locally and not yet in Redis, over all counters.
    pub fn unsent(&self) -> u64 {
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Local::unsent)
            .sum()
    }

    /// Sends every counter's accumulated calls (and reservations settled while Redis was
    /// unreachable) to Redis, and drops the counters of ended periods that have nothing
    /// left to send. Returns the calls still unsent (0 when everything got through).
    pub fn flush(&self, ledger: &Ledger) -> u64 {
        let ids: Vec<CounterId> = self
            .local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, l)| l.waiting())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let _ = self.flush_counter(ledger, &id);
        }
        let mut map = self.lock_local();
        // Counters of periods that ended before the newest one began.
        if let Some(newest) = map.keys().map(|id| id.1).max() {
            self.sweep(&mut map, newest);
        }
        map.values().map(Local::unsent).sum()
    }

    /// Starts a thread that calls [`flush`](Self::flush) every `every` (for batching,
    /// and so calls counted during an outage reach Redis even for companies that make
    /// no further call). Dropping the returned handle flushes once more and stops it.
    pub fn spawn_flusher(self: &Arc<Self>, ledger: Arc<Ledger>, every: Duration) -> Flusher {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let quota = Arc::clone(self);
        let thread = std::thread::Builder::new()
            .name("tollgate-redis-flush".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    quota.flush(&ledger);
                }
                quota.flush(&ledger);
            })
            .expect("spawn the quota flusher thread");
        Flusher {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn key(&self, id: &CounterId) -> String {
        keys::quota_key(&self.store.config().prefix, &id.0, id.1)
    }

    fn lock_local(&self) -> std::sync::MutexGuard<'_, HashMap<CounterId, Local>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on counter `id`'s local state, made from the ledger's target `t` if this
    /// instance has none.
    fn with_local<R>(&self, id: &CounterId, t: &QuotaTarget, f: impl FnOnce(&mut Local) -> R) -> R {
        self.with_entry(
            id,
            || Local::new(t.period.clone(), t.period_end, t.local_used),
            f,
        )
    }

    /// Runs `f` on counter `id`'s local state, made by `make` if this instance has none
    /// (a new counter first sweeps out the ended ones once the map has doubled).
    fn with_entry<R>(
        &self,
        id: &CounterId,
        make: impl FnOnce() -> Local,
        f: impl FnOnce(&mut Local) -> R,
    ) -> R {
        let mut map = self.lock_local();
        if let Some(l) = map.get_mut(id) {
            return f(l);
        }
        if map.len() >= self.sweep_at.load(Ordering::Relaxed) {
            self.sweep(&mut map, id.1);
        }
        f(map.entry(id.clone()).or_insert_with(make))
    }

    /// Drops the counters of periods that ended by `start` (Unix seconds) with nothing
    /// waiting to be sent; the next sweep comes when the map has doubled.
    fn sweep(&self, map: &mut HashMap<CounterId, Local>, start: i64) {
        map.retain(|_, l| l.waiting() || l.period_end > start);
        self.sweep_at
            .store((map.len() * 2).max(SWEEP_MIN), Ordering::Relaxed);
    }

    /// Seeds this instance's share of counter `id` from `ledger`.
    fn seed(&self, ledger: &Ledger, id: &CounterId) -> Result<(), StoreError> {
        let _exclusive = self.seeding.write().unwrap_or_else(|p| p.into_inner());
        let (label, period_end, seen, unsent, settle_delta) = {
            let map = self.lock_local();
            let Some(l) = map.get(id) else {
                return Ok(());
            };
            (
                l.label.clone(),
                l.period_end,
                l.seen,
                l.unsent(),
                l.settle_delta,
            )
        };
        let mine = ledger
            .company_usage()
            .iter()
            .find(|r| r.company == id.0 && r.period == label)
            .map_or(0, |r| r.used);
        // Calls and settlements not yet sent go in by their own (idempotent) flushes.
        let share = u64::try_from(
            (i128::from(mine) - i128::from(unsent) - i128::from(settle_delta)).max(0),
        )
        .unwrap_or(u64::MAX);
        let expire_at = period_end
            .saturating_add(i64::try_from(self.options.retention.as_secs()).unwrap_or(i64::MAX));
        let k = self.key(id);
        let r: Vec<i64> = self.store.invoke(
            self.store
                .scripts
                .quota_seed
                .key(&k)
                .arg(&self.instance)
                .arg(share)
                .arg(expire_at),
        )?;
        let seeded = r.first() == Some(&1);
        let used = r.get(1).copied().unwrap_or(0).max(0) as u64;
        if seeded {
            self.counters.seeds.fetch_add(1, Ordering::Relaxed);
            if seen || share > 0 {
                self.counters.reseeded.fetch_add(1, Ordering::Relaxed);
                self.reports
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Reseeded {
                        company: id.0.clone(),
                        period_start: id.1,
                        seeded: share,
                        used,
                    });
            }
        }
        if let Some(l) = self.lock_local().get_mut(id) {
            l.seen = true;
            l.last_shared = used;
        }
        Ok(())
    }

    /// Sends counter `id`'s unsent calls: the batch in flight (retried with its id),
    /// then what accumulated since, as a new batch.
    fn flush_counter(&self, ledger: &Ledger, id: &CounterId) -> Result<(), StoreError> {
        for _ in 0..2 {
            self.flush_batch(ledger, id)?;
        }
        self.flush_settles(ledger, id)
    }

    /// Sends one batch of counter `id` (the one in flight, or a new one).
    fn flush_batch(&self, ledger: &Ledger, id: &CounterId) -> Result<(), StoreError> {
        let batch = {
            let mut map = self.lock_local();
            let Some(l) = map.get_mut(id) else {
                return Ok(());
            };
            l.last_flush = Instant::now();
            if l.inflight.is_none() && l.pending > 0 {
                let seq = self.batch_seq.fetch_add(1, Ordering::Relaxed);
                l.inflight = Some((self.nonce.rotate_left(17) ^ seq, l.pending));
                l.pending = 0;
            }
            l.inflight
        };
        let Some((batch, calls)) = batch else {
            return Ok(());
        };
        let k = self.key(id);
        for _ in 0..2 {
            let r: Vec<i64> = self.store.invoke(
                self.store
                    .scripts
                    .quota_flush
                    .key(&k)
                    .arg(&self.instance)
                    .arg(batch)
                    .arg(calls),
            )?;
            match r.first().copied() {
                Some(status @ (1 | 2)) => {
                    let c = if status == 1 {
                        &self.counters.flushes
                    } else {
                        &self.counters.duplicate_flushes
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                    let used = r.get(1).copied().unwrap_or(0).max(0) as u64;
                    if let Some(l) = self.lock_local().get_mut(id) {
                        if l.inflight.map(|(b, _)| b) == Some(batch) {
                            l.inflight = None;
                        }
                        l.seen = true;
                        l.last_shared = l.last_shared.max(used);
                    }
                    return Ok(());
                }
                _ => self.seed(ledger, id)?,
            }
        }
        Ok(())
    }

    /// Decides a call locally and accumulates it; `rec` records it in the ledger.
    fn local_decide<R>(
        &self,
        call: &Call<'_>,
        over_cap: bool,
        rec: &impl Fn(SharedCharge) -> Result<R, QuotaError>,
    ) -> Result<R, QuotaError> {
        let Call { cost, id, t, .. } = *call;
        self.counters.local.fetch_add(1, Ordering::Relaxed);
        let _shared = self.seeding.read().unwrap_or_else(|p| p.into_inner());
        self.with_local(id, t, |l| {
            let est = l.last_shared + l.unsent();
            if !over_cap && t.hard_cap.is_some_and(|cap| est + cost > cap) {
                return rec(SharedCharge::Refused { used: est });
            }
            l.pending += cost;
            rec(SharedCharge::Counted {
                prev: est,
                used: est + cost,
            })
        })
    }

    fn on_failure<R>(
        &self,
        call: &Call<'_>,
        e: &StoreError,
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
}

/// A quota call the combined request script carries (see [`crate::combined`]).
pub(crate) struct Prepared {
    id: CounterId,
    t: QuotaTarget,
    /// The counter's key.
    pub(crate) key: String,
    /// The hard cap, -1 for none.
    pub(crate) cap: i64,
}

impl RedisQuota {
    /// The instance id.
    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    /// The store.
    pub(crate) fn store(&self) -> &Arc<RedisStore> {
        &self.store
    }

    /// A call of `key` at `now` the combined script may decide, or `None` when it must
    /// go through [`QuotaStore::record`]: batching, calls or settlements accumulated and
    /// not yet sent (they go first), or a key the ledger refuses (it says why).
    pub(crate) fn prepare(&self, ledger: &Ledger, key: &str, now: u64) -> Option<Prepared> {
        if self.options.batch.is_some() {
            return None;
        }
        let t = ledger.target(key, i128::from(now)).ok()?;
        let id: CounterId = (t.company.clone(), t.period_start);
        if self.with_local(&id, &t, |l| l.waiting()) {
            return None;
        }
        Some(Prepared {
            key: self.key(&id),
            cap: t
                .hard_cap
                .map_or(-1, |c| i64::try_from(c).unwrap_or(i64::MAX)),
            id,
            t,
        })
    }

    /// Held shared while a call is counted in Redis and in the ledger (see `seed`).
    pub(crate) fn counting(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.seeding.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer for Redis's `status` (1 counted, 0 refused over the hard cap) and the
    /// counter's `used` for a call of `cost`, recorded by `rec`; `None` for any other
    /// status. Called under [`counting`](Self::counting).
    fn answer<R>(
        &self,
        (id, t): (&CounterId, &QuotaTarget),
        cost: u64,
        status: i64,
        used: u64,
        rec: &impl Fn(SharedCharge) -> Result<R, QuotaError>,
    ) -> Option<Result<R, QuotaError>> {
        match status {
            1 => {
                self.counters.remote.fetch_add(1, Ordering::Relaxed);
                let d = rec(SharedCharge::Counted {
                    prev: used - cost.min(used),
                    used,
                });
                self.with_local(id, t, |l| {
                    l.seen = true;
                    l.last_shared = l.last_shared.max(used);
                });
                Some(d)
            }
            0 => {
                self.counters.remote.fetch_add(1, Ordering::Relaxed);
                Some(rec(SharedCharge::Refused { used }))
            }
            _ => None,
        }
    }

    /// [`answer`](Self::answer) for a prepared call.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn answer_prepared(
        &self,
        p: &Prepared,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
        status: i64,
        used: u64,
    ) -> Option<Result<QuotaDecision, QuotaError>> {
        let now = i128::from(now);
        self.answer((&p.id, &p.t), cost, status, used, &|c| {
            ledger.record_shared(key, cost, now, c)
        })
    }

    /// The failure policy's answer for a prepared call Redis could not decide. Not
    /// under [`counting`](Self::counting).
    pub(crate) fn fail_prepared(
        &self,
        p: &Prepared,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
        e: &StoreError,
    ) -> Result<QuotaDecision, QuotaError> {
        let call = Call {
            cost,
            id: &p.id,
            t: &p.t,
        };
        let now = i128::from(now);
        self.on_failure(&call, e, &|c| ledger.record_shared(key, cost, now, c))
    }

    /// Counts a call of `cost` by the holder of `key` at `now` on the shared counter
    /// (the check-and-add script) and records it with `rec` (a call or a reservation).
    fn decide<R>(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
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
        let (waiting, unsent, due) = self.with_local(&id, &t, |l| {
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
        let cap = t
            .hard_cap
            .map_or(-1, |c| i64::try_from(c).unwrap_or(i64::MAX));
        for _ in 0..2 {
            let shared = self.counting();
            let r: Result<Vec<i64>, _> = self.store.invoke(
                self.store
                    .scripts
                    .quota
                    .key(&k)
                    .arg(&self.instance)
                    .arg(cost)
                    .arg(cap),
            );
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    drop(shared);
                    return self.on_failure(&call, &e, &rec);
                }
            };
            let used = r.get(1).copied().unwrap_or(0).max(0) as u64;
            let status = r.first().copied().unwrap_or(-1);
            if let Some(d) = self.answer((&id, &t), cost, status, used, &rec) {
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

    /// Sends one settlement (see `lua/quota_settle.lua`). `Ok(Some(first))`: applied
    /// (now or by an earlier attempt; `first`: a commit whose idempotency key was new);
    /// `Ok(None)`: this instance's share is missing (seed and send again).
    fn send_settle(&self, id: &CounterId, s: &Settle) -> Result<Option<(bool, u64)>, StoreError> {
        let k = self.key(id);
        let mut inv = self.store.scripts.quota_settle.key(&k);
        inv.arg(&self.instance).arg(s.id).arg(s.held);
        match &s.commit {
            Some((final_cost, key)) => inv.arg((*final_cost).min(i64::MAX as u64)).arg(key),
            None => inv.arg("").arg(""),
        };
        let r: Vec<i64> = self.store.invoke(&inv)?;
        let used = r.get(1).copied().unwrap_or(0).max(0) as u64;
        Ok(match r.first().copied() {
            Some(1) => Some((true, used)),
            Some(2 | 3) => Some((false, used)),
            _ => None,
        })
    }

    /// Sends counter `id`'s settlements made while Redis was unreachable, oldest first.
    fn flush_settles(&self, ledger: &Ledger, id: &CounterId) -> Result<(), StoreError> {
        loop {
            let Some(s) = self
                .lock_local()
                .get(id)
                .and_then(|l| l.settles.first().cloned())
            else {
                return Ok(());
            };
            // Held while Redis applies it and the local record follows, so a seed never
            // sees one without the other.
            let mut shared = self.counting();
            let mut sent = self.send_settle(id, &s)?;
            if sent.is_none() {
                drop(shared);
                self.seed(ledger, id)?;
                shared = self.counting();
                sent = self.send_settle(id, &s)?;
            }
            let Some((_, used)) = sent else {
                return Ok(());
            };
            let _shared = shared;
            if let Some(l) = self.lock_local().get_mut(id) {
                if l.settles.first().map(|f| f.id) == Some(s.id) {
                    l.settles.remove(0);
                    l.settle_delta -= s.local_delta;
                }
                l.last_shared = used;
            }
        }
    }

    /// Settles `r`: `commit` is the final cost and idempotency key, `None` to refund.
    fn settle(
        &self,
        ledger: &Ledger,
        r: Reservation,
        commit: Option<(u64, &str)>,
    ) -> CommitOutcome {
        let (start, end, label) = r.period();
        let id: CounterId = (r.company().to_owned(), start);
        let waiting = self.with_entry(&id, || Local::new(label, end, 0), |l| l.waiting());
        let seq = self.batch_seq.fetch_add(1, Ordering::Relaxed);
        let mut s = Settle {
            id: self.nonce.rotate_left(29) ^ seq,
            held: r.held(),
            commit: commit.map(|(c, k)| (c, k.to_owned())),
            local_delta: 0,
        };
        let apply = |r: Reservation, first: Option<bool>| match (commit, first) {
            (Some((cost, key)), Some(first)) => ledger.commit_shared(r, cost, key, first),
            (Some((cost, key)), None) => ledger.commit(r, cost, key),
            (None, _) => {
                ledger.refund(r);
                CommitOutcome::Committed
            }
        };
        if !(waiting && self.flush_counter(ledger, &id).is_err()) {
            for _ in 0..2 {
                let shared = self.counting();
                match self.send_settle(&id, &s) {
                    Ok(Some((first, used))) => {
                        let outcome = apply(r, Some(first));
                        drop(shared);
                        if let Some(l) = self.lock_local().get_mut(&id) {
                            l.seen = true;
                            l.last_shared = used;
                        }
                        return outcome;
                    }
                    Ok(None) => {
                        drop(shared);
                        if self.seed(ledger, &id).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        // Redis unreachable (or the counter vanished twice): settle in the ledger now
        // (its own idempotency keys decide) and send the settlement when Redis answers.
        let _shared = self.counting();
        let held = i64::try_from(s.held).unwrap_or(i64::MAX);
        let outcome = apply(r, None);
        s.local_delta = match (&s.commit, outcome) {
            (Some((cost, _)), CommitOutcome::Committed) => i64::try_from(*cost)
                .unwrap_or(i64::MAX)
                .saturating_sub(held),
            _ => -held,
        };
        if let Some(l) = self.lock_local().get_mut(&id) {
            l.settle_delta += s.local_delta;
            l.settles.push(s);
        }
        outcome
    }
}

impl QuotaStore for RedisQuota {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn record(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
    ) -> Result<QuotaDecision, QuotaError> {
        let at = i128::from(now);
        self.decide(ledger, key, cost, now, |l, c| {
            l.record_shared(key, cost, at, c)
        })
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
        self.decide(ledger, key, cost, now, |l, c| {
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
