//! The quota's part in a combined request (see [`crate::combined`]): a call the request
//! script may carry ([`Prepared`]), its answer from the script's reply, and what a
//! failed attempt leaves for the quota call the engine makes next.
//!
//! When the combined script fails, whether the quota is asked depends on the limits'
//! answers, which the engine's failure policies now give. So the failed attempt is
//! remembered for this thread ([`RedisQuota::failed_attempt`]), and the engine's quota
//! call that follows, if every enforced limit allowed, answers by the quota's failure
//! policy at once ([`RedisQuota::take_failed`]) instead of trying Redis a second time.

use std::cell::RefCell;
use std::sync::Arc;

use tollgate::quota::{Ledger, QuotaDecision, QuotaError, QuotaTarget};

use super::redis_quota::RedisQuota;
use super::types::CounterId;
use crate::script::calls::{self, RequestQuota};
use crate::script::reply::CountReply;
use crate::store::{RedisStore, StoreError};

/// A quota call the combined request script carries.
pub(crate) struct Prepared {
    id: CounterId,
    t: QuotaTarget,
    /// The counter's key.
    pub(crate) key: String,
    /// The hard cap, -1 for none.
    cap: i64,
}

/// A combined attempt that failed, for the quota call of the same request.
struct FailedAttempt {
    /// [`RedisQuota::uid`].
    quota: u64,
    key: String,
    cost: u64,
    now: u64,
    error: StoreError,
}

thread_local! {
    /// The failed attempt of the request this thread is deciding.
    static FAILED: RefCell<Option<FailedAttempt>> = const { RefCell::new(None) };
}

impl RedisQuota {
    /// The store.
    pub(crate) fn store(&self) -> &Arc<RedisStore> {
        &self.store
    }

    /// A call of `key` at `now` the combined script may decide, or `None` when it must
    /// go through [`QuotaStore::record`](tollgate::QuotaStore::record): batching, calls
    /// or settlements accumulated and not yet sent (they go first), or a key the ledger
    /// refuses (it says why).
    pub(crate) fn prepare(&self, ledger: &Ledger, key: &str, now: u64) -> Option<Prepared> {
        if self.options.batch.is_some() {
            return None;
        }
        let t = ledger.target(key, i128::from(now)).ok()?;
        let id: CounterId = (t.company.clone(), t.period_start);
        if self.local.with_target(&id, &t, |l| l.waiting()) {
            return None;
        }
        Some(Prepared {
            key: self.key(&id),
            cap: calls::cap_arg(t.hard_cap),
            id,
            t,
        })
    }

    /// The request script's arguments for a prepared call of `cost`.
    pub(crate) fn request_args(&self, p: &Prepared, cost: u64) -> RequestQuota<'_> {
        RequestQuota {
            instance: &self.instance,
            cost,
            cap: p.cap,
        }
    }

    /// [`answer`](RedisQuota::answer) for a prepared call of `cost` by the holder of
    /// `key`; `None` when this instance's share is missing. Called under
    /// [`counting`](RedisQuota::counting).
    pub(crate) fn answer_prepared(
        &self,
        p: &Prepared,
        ledger: &Ledger,
        (key, cost, now): (&str, u64, u64),
        reply: CountReply,
    ) -> Option<Result<QuotaDecision, QuotaError>> {
        let at = i128::from(now);
        self.answer((&p.id, &p.t), cost, reply, &|c| {
            ledger.record_shared(key, cost, at, c)
        })
    }

    /// Remembers, for this thread, that the combined attempt to decide the call of
    /// `cost` by the holder of `key` at `now` failed with `error`.
    pub(crate) fn failed_attempt(&self, key: &str, cost: u64, now: u64, error: StoreError) {
        FAILED.with(|f| {
            *f.borrow_mut() = Some(FailedAttempt {
                quota: self.uid,
                key: key.to_owned(),
                cost,
                now,
                error,
            });
        });
    }

    /// Forgets this thread's failed attempt (a new request).
    pub(crate) fn forget_failed() {
        FAILED.with(|f| f.borrow_mut().take());
    }

    /// The error of this thread's failed attempt, if it was for this very call (it is
    /// forgotten either way: it only serves the call that follows it).
    pub(super) fn take_failed(&self, key: &str, cost: u64, now: u64) -> Option<StoreError> {
        let f = FAILED.with(|f| f.borrow_mut().take())?;
        (f.quota == self.uid && f.key == key && f.cost == cost && f.now == now).then_some(f.error)
    }
}
