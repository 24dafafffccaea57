//! The quota's part in a combined request (see [`crate::combined`]): a call the request
//! script may carry ([`Prepared`]) and its answer from the script's reply.
//!
//! When the combined script fails, whether the quota is asked depends on the limits'
//! answers, which the engine's failure policies give; the combined backend says the
//! store failed (`CombinedDecision::failed`) and the engine's quota call that follows,
//! if every enforced limit allowed, comes as `QuotaStore::record_failed`, answered by
//! the quota's failure policy without a second attempt.

use std::sync::Arc;

use tollgate::quota::{Ledger, QuotaDecision, QuotaError, QuotaTarget};

use super::redis_quota::RedisQuota;
use super::types::CounterId;
use crate::script::calls::{self, RequestQuota};
use crate::script::reply::CountReply;
use crate::store::RedisStore;

/// A quota call the combined request script carries.
pub(crate) struct Prepared {
    id: CounterId,
    t: QuotaTarget,
    /// The counter's key.
    pub(crate) key: String,
    /// The hard cap, -1 for none.
    cap: i64,
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
}
