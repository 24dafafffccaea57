//! One round trip per request: [`RedisCombined`] decides all of a request's limits on
//! Redis, and its quota call, with one script (`lua/request.lua`), atomically and all or
//! nothing, instead of one script call per limit and one for the quota.
//!
//! [`RedisFactory`](crate::RedisFactory) offers it to the engine (on by default; see
//! [`RedisFactory::combine`](crate::RedisFactory::combine)). The engine asks it first
//! for every request; it declines, and the engine decides limit by limit as before,
//! when:
//! * fewer than two calls would be combined (one limit and no quota: the same round
//!   trip either way);
//! * a limit that applies is not on this store (an in-memory limit), or a cost exceeds
//!   a limit's capacity (the limit answers "can never pass" itself);
//! * the over-limit cache holds a denial of one of the keys (it answers without Redis);
//! * on Redis Cluster, the keys do not share one hash tag (a script may only touch one
//!   slot): limits keyed by `company` share their company's tag with its quota counter
//!   and combine; limits keyed otherwise are each in their own slot;
//! * the quota cannot go in the script (batching, calls accumulated during an outage
//!   and not yet sent, a key the ledger refuses); the limits are still combined and the
//!   quota is decided after them, as before;
//! * the script finds this instance's share of the quota counter missing: nothing was
//!   written, and the quota store re-seeds it on the limit-by-limit path.
//!
//! When Redis fails or the breaker is open, each limit's [`FailurePolicy`] and the
//! quota's answer at once, as they would one by one, without a second attempt.
//!
//! [`FailurePolicy`]: crate::FailurePolicy

use std::sync::Arc;
use std::time::Instant;

use tollgate::engine::{CombinedBackend, CombinedDecision, LimitCall, QuotaCall};

use crate::keys;
use crate::limit::{Params, RedisBackend};
use crate::quota::RedisQuota;
use crate::store::RedisStore;

/// The combined backend of one [`RedisStore`]. See the [module docs](self).
#[derive(Debug)]
pub struct RedisCombined {
    store: Arc<RedisStore>,
}

impl RedisCombined {
    /// Combines the limits and quota on `store`.
    pub fn new(store: Arc<RedisStore>) -> Self {
        RedisCombined { store }
    }

    /// `b` if it is a limit on this store.
    fn ours<'a>(&self, call: &LimitCall<'a>) -> Option<&'a RedisBackend> {
        call.backend
            .as_any()?
            .downcast_ref::<RedisBackend>()
            .filter(|b| Arc::ptr_eq(&b.store, &self.store))
    }
}

impl CombinedBackend for RedisCombined {
    fn decide(
        &self,
        limits: &[LimitCall<'_>],
        quota: Option<&QuotaCall<'_>>,
        now: u64,
    ) -> Option<CombinedDecision> {
        let backends = limits
            .iter()
            .map(|c| {
                self.ours(c)
                    .filter(|b| c.cost <= b.params.capacity() && !b.cache_holds(&c.key, c.cost))
            })
            .collect::<Option<Vec<&RedisBackend>>>()?;
        let quota = quota.and_then(|q| {
            let rq = q.store.as_any()?.downcast_ref::<RedisQuota>()?;
            if !Arc::ptr_eq(rq.store(), &self.store) {
                return None;
            }
            Some((q, rq, rq.prepare(q.ledger, q.key, now)?))
        });
        if limits.len() + usize::from(quota.is_some()) < 2 {
            return None;
        }
        let mut keys: Vec<String> = backends
            .iter()
            .zip(limits)
            .map(|(b, c)| b.key_of(&c.key))
            .collect();
        if let Some((_, _, p)) = &quota {
            keys.push(p.key.clone());
        }
        if self.store.config().cluster {
            let tag = keys::hash_tag(&keys[0]);
            if keys.iter().any(|k| keys::hash_tag(k) != tag) {
                return None;
            }
        }

        let (now_arg, extra_ttl) = self.store.clock_args(now);
        let mut inv = self.store.scripts.request.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        inv.arg(&now_arg).arg(extra_ttl).arg(limits.len());
        for (b, c) in backends.iter().zip(limits) {
            let enforced = if c.shadow { "0" } else { "1" };
            match b.params {
                Params::Gcra { t_us, tau_us, .. } => {
                    inv.arg("g").arg(enforced).arg(c.cost).arg(t_us).arg(tau_us)
                }
                Params::Window { w_us, limit } => {
                    inv.arg("w").arg(enforced).arg(c.cost).arg(w_us).arg(limit)
                }
            };
        }
        if let Some((q, rq, p)) = &quota {
            inv.arg(rq.instance()).arg(q.cost).arg(p.cap);
        }

        // A seed must not read the ledger between Redis counting the call and the
        // ledger recording it (see quota.rs).
        let counting = quota.as_ref().map(|(_, rq, _)| rq.counting());
        let sent = Instant::now();
        let reply = match self.store.invoke::<Vec<Vec<i64>>>(&inv) {
            Ok(r) => r,
            Err(e) => {
                drop(counting);
                // Each limit's failure policy, in order, as one by one; the quota's if
                // every enforced limit allowed.
                let mut out = CombinedDecision::default();
                for (b, c) in backends.iter().zip(limits) {
                    let r = b.on_failure(&c.key, c.cost, now, true, &e);
                    let stop = !c.shadow && r.as_ref().map_or(true, |(d, _)| !d.allowed());
                    out.limits.push(r);
                    if stop {
                        return Some(out);
                    }
                }
                if let Some((q, rq, p)) = &quota {
                    out.quota = Some(rq.fail_prepared(p, q.ledger, q.key, q.cost, now, &e));
                }
                return Some(out);
            }
        };
        let head = reply.first()?;
        let at = |i: usize| head.get(i).copied().unwrap_or(0);
        let (committed, decided, quota_status) = (at(0) == 1, at(1).max(0) as usize, at(2));
        if quota_status < 0 {
            // This instance's share of the counter is missing; nothing was written.
            return None;
        }
        let mut out = CombinedDecision::default();
        for ((b, c), r) in backends.iter().zip(limits).zip(&reply[1..]).take(decided) {
            let (d, undo) = b.parse(r, c.cost);
            b.remember(&c.key, c.cost, &d, sent);
            out.limits.push(Ok((d, undo.filter(|_| committed))));
        }
        if let Some((q, rq, p)) = &quota {
            if decided == limits.len() {
                let used = at(3).max(0) as u64;
                out.quota = rq.answer_prepared(p, q.ledger, q.key, q.cost, now, quota_status, used);
            }
        }
        drop(counting);
        Some(out)
    }
}
