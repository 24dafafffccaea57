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
use crate::script::calls::{CountArgs, CountKeys};
use crate::script::reply::CountReply;
use crate::store::{RedisStore, StoreError};

/// A quota call the combined request script carries.
pub(crate) struct Prepared {
    id: CounterId,
    t: QuotaTarget,
    /// The call's sequence number on the counter (its id).
    seq: u64,
    /// The call's keys: the counter, its call-id bitmap, the notice claims.
    pub(crate) keys: CountKeys,
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
        let seq = self.local.with_target(&id, &t, |l| {
            if l.waiting() {
                None
            } else {
                Some(l.take_seq())
            }
        })?;
        Some(Prepared {
            keys: self.count_keys(&id, &t, seq),
            seq,
            id,
            t,
        })
    }

    /// The request script's arguments for a prepared call of `cost`.
    pub(crate) fn request_args(&self, p: &Prepared, cost: u64) -> CountArgs<'_> {
        self.count_args(&p.t, cost, p.seq)
    }

    /// The combined script carrying prepared call `p` of `cost` failed with `e`: if it
    /// may have reached Redis, the next flush looks the call up.
    pub(crate) fn lost_prepared(&self, p: &Prepared, cost: u64, e: &StoreError) {
        self.lost(&p.id, p.seq, cost, e);
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
        self.answer((&p.id, &p.t), (ledger, cost, now), reply, &|c| {
            ledger.record_shared(key, cost, at, c)
        })
    }
}
