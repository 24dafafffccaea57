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
//! When Redis fails or the breaker is open, every limit's answer is
//! [`BackendError::Unavailable`]: the engine applies each limit's [`FailurePolicy`] in
//! order (it does not ask a limit again that has an answer), and if every enforced limit
//! allowed, its quota call is answered by the quota's failure policy at once, without a
//! second attempt (see `quota/prepared.rs`).
//!
//! [`FailurePolicy`]: crate::FailurePolicy
//! [`BackendError::Unavailable`]: tollgate::backend::BackendError::Unavailable

use std::sync::Arc;
use std::time::Instant;

use tollgate::engine::{CombinedBackend, CombinedDecision, LimitCall, QuotaCall};

use crate::keys;
use crate::limit::backend::RedisBackend;
use crate::quota::redis_quota::RedisQuota;
use crate::script::calls::{self, RequestLimit};
use crate::script::reply::{CountReply, ReplyError, RequestReply};
use crate::store::RedisStore;

/// The combined backend of one [`RedisStore`]. See the [module docs](self).
#[derive(Debug)]
pub struct RedisCombined {
    store: Arc<RedisStore>,
}

/// How many of `limits`' answers the engine uses, given whether each allowed, in order:
/// up to and including the first enforced (non-shadow) limit that denies, where the
/// engine stops (and the request script too); all of them if none does.
fn answers_used(limits: &[LimitCall<'_>], allowed: impl IntoIterator<Item = bool>) -> usize {
    limits
        .iter()
        .zip(allowed)
        .position(|(c, allowed)| !c.shadow && !allowed)
        .map_or(limits.len(), |i| i + 1)
}

/// Parses the request script's reply, which must stop where the engine would.
fn parse(
    r: &[Vec<i64>],
    limits: &[LimitCall<'_>],
    windows: &[bool],
) -> Result<RequestReply, ReplyError> {
    let reply = RequestReply::parse(r, windows)?;
    let used = answers_used(limits, reply.limits.iter().map(|l| l.allowed));
    if reply.limits.len() != used {
        return Err(ReplyError::new(
            "request.lua",
            format!(
                "{} limits decided where the engine stops after {used}",
                reply.limits.len()
            ),
        ));
    }
    Ok(reply)
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
        let keys: Vec<String> = backends
            .iter()
            .zip(limits)
            .map(|(b, c)| b.key_of(&c.key))
            .collect();
        if self.store.config().cluster {
            // The quota's keys (counter, call ids, claims) share the company's tag.
            let quota_key = quota.as_ref().map(|(_, _, p)| &p.keys.counter);
            let mut all = keys.iter().chain(quota_key);
            let tag = all.next().map(|k| keys::hash_tag(k));
            if all.any(|k| Some(keys::hash_tag(k)) != tag) {
                return None;
            }
        }
        let quota_args = quota
            .as_ref()
            .map(|(q, rq, p)| (&p.keys, rq.request_args(p, q.cost)));

        let sent_limits: Vec<RequestLimit> = backends
            .iter()
            .zip(limits)
            .map(|(b, c)| RequestLimit {
                params: b.params,
                shadow: c.shadow,
                cost: c.cost,
            })
            .collect();
        let windows: Vec<bool> = backends.iter().map(|b| b.is_window()).collect();
        let inv = calls::request(
            &self.store.scripts,
            &keys,
            &self.store.clock_args(now),
            &sent_limits,
            quota_args.as_ref().map(|(k, a)| (*k, a)),
        );

        // A seed must not read the ledger between Redis counting the call and the
        // ledger recording it (see quota.rs).
        let counting = quota.as_ref().map(|(_, rq, _)| rq.counting());
        let sent = Instant::now();
        let reply = self
            .store
            .call(&inv, |r: &Vec<Vec<i64>>| parse(r, limits, &windows));
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                drop(counting);
                if let Some((q, rq, p)) = &quota {
                    // Redis may have counted the quota call: the flush looks it up.
                    rq.lost_prepared(p, q.cost, &e);
                }
                // Every limit answers Unavailable (the engine applies its failure
                // policy: under `fallback` the backend's own fallback limiter), then (if
                // they allowed) the quota's, without a second attempt.
                return Some(CombinedDecision {
                    limits: backends
                        .iter()
                        .map(|b| b.on_failure(&e))
                        .take(limits.len())
                        .collect(),
                    quota: None,
                    // Only a quota call this script carried has had its attempt; one it
                    // did not carry (calls waiting to be flushed first) is asked as usual.
                    failed: quota.as_ref().map(|_| e.to_string()),
                });
            }
        };
        if let Some(CountReply::MissingShare) = reply.quota {
            // This instance's share of the counter is missing; nothing was written.
            return None;
        }
        let mut out = CombinedDecision::default();
        for ((b, c), r) in backends.iter().zip(limits).zip(&reply.limits) {
            let (d, undo) = b.answer(r, c.cost);
            b.saw(&c.key, &d, now);
            b.remember(&c.key, c.cost, &d, sent);
            out.limits.push(Ok((d, undo.filter(|_| reply.committed))));
        }
        if let (Some((q, rq, p)), Some(answer)) = (&quota, reply.quota) {
            if reply.limits.len() == limits.len() {
                out.quota = rq.answer_prepared(p, q.ledger, (q.key, q.cost, now), answer);
            }
        }
        drop(counting);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate::backend::{LimitKey, MemoryBackend};
    use tollgate::policy::AlgorithmKind;

    fn memory() -> MemoryBackend {
        MemoryBackend::new(AlgorithmKind::Gcra, "1/s".parse().unwrap(), 64).unwrap()
    }

    /// Limits of cost 1 on `m`, shadow where `shadow` says so.
    fn calls<'a>(m: &'a MemoryBackend, shadow: &[bool]) -> Vec<LimitCall<'a>> {
        shadow
            .iter()
            .map(|&shadow| LimitCall {
                backend: m,
                key: LimitKey {
                    hash: 0,
                    parts: &[],
                },
                cost: 1,
                shadow,
            })
            .collect()
    }

    #[test]
    fn the_engine_stops_at_the_first_enforced_denial() {
        let m = memory();
        let limits = calls(&m, &[false, true, false]);
        assert_eq!(answers_used(&limits, [true, true, true]), 3);
        assert_eq!(answers_used(&limits, [false, true, true]), 1);
        // A shadow limit's denial does not stop it.
        assert_eq!(answers_used(&limits, [true, false, true]), 3);
        assert_eq!(answers_used(&limits, [true, false, false]), 3);
        assert_eq!(answers_used(&[], [true]), 0);
        // Answers that run out before a denial: the engine would go on.
        assert_eq!(answers_used(&limits, [true]), 3);
    }

    #[test]
    fn a_reply_that_does_not_stop_where_the_engine_would_is_malformed() {
        let m = memory();
        let limits = calls(&m, &[false, false]);
        let allowed = vec![1, 0, 0, 0, 0, 1];
        let denied = vec![0, 0, 9, 0, 0, 0];
        let windows = [false, false];
        // Stopped at the first denial: fine.
        assert!(parse(&[vec![0, 1, 9, 0, 0, 0], denied.clone()], &limits, &windows).is_ok());
        assert!(parse(
            &[vec![1, 2, 9, 0, 0, 0], allowed.clone(), allowed.clone()],
            &limits,
            &windows
        )
        .is_ok());
        // Went on past an enforced denial, or stopped after an allowed limit.
        assert!(parse(
            &[vec![0, 2, 9, 0, 0, 0], denied.clone(), allowed.clone()],
            &limits,
            &windows
        )
        .is_err());
        assert!(parse(&[vec![0, 1, 9, 0, 0, 0], allowed], &limits, &windows).is_err());
    }
}
