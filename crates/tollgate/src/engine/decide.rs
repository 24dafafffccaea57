//! The decision: revoked? -> each limit in policy order (all or nothing) -> the quota -> the answer.

use smallvec::SmallVec;
use tollgate_core::{Clock, Decision};
use tollgate_quota::{KeyRef, Outcome, QuotaError};

use super::compile::{Compiled, CompiledLimit};
use super::decision::{EngineDecision, QuotaStatus, Reason};
use super::events::Event;
use super::extend::{CombinedDecision, LimitCall, QuotaCall};
use super::instance::Engine;
use super::request::Request;
use crate::backend::{BackendError, Undo};
use crate::metrics::LATENCY_SAMPLE_EVERY;
use crate::policy::{UnknownKey, MAX_KEY_ATTRS};

/// Up to this many limits' undo records live on the stack during a decision.
pub(super) const INLINE_TAKEN: usize = 8;

#[derive(Clone, Copy, Debug)]
pub(super) struct Taken {
    pub(super) limit: u32,
    /// The override's index + 1 (0: the limit's own rate).
    pub(super) over: u32,
    /// Taken by the failure policy's fallback limiter, not the backend.
    pub(super) fallback: bool,
    pub(super) undo: Undo,
}

/// The undo records of one decision: on the stack for up to [`INLINE_TAKEN`] limits
/// (`SmallVec`'s inline storage is not initialised until used, so a decision does not
/// pay for clearing it).
pub(super) type TakenList = SmallVec<[Taken; INLINE_TAKEN]>;

/// Whether this thread's decision is one of the [`LATENCY_SAMPLE_EVERY`] timed for the
/// latency histogram.
#[inline(always)]
fn sampled() -> bool {
    thread_local! {
        static TICK: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    TICK.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        n % LATENCY_SAMPLE_EVERY == 0
    })
}

impl Engine {
    /// Decides `req`. See the [module docs](crate::engine).
    pub fn decide(&self, req: &Request<'_>) -> EngineDecision {
        if sampled() {
            return self.decide_timed::<true>(req);
        }
        self.decide_with::<true>(req)
    }

    /// A decision timed for the latency histogram (the clock read twice).
    #[cold]
    #[inline(never)]
    fn decide_timed<const COUNT_DENIALS: bool>(&self, req: &Request<'_>) -> EngineDecision {
        let start = self.clock.now();
        let d = self.decide_with::<COUNT_DENIALS>(req);
        let end = self.clock.now();
        self.metrics
            .decision_latency
            .record_ns(end.saturating_sub(start));
        d
    }

    /// [`decide`](Self::decide) for a caller that waits out a [`Reason::Limited`]
    /// answer and asks again (tollgate-async's `until_ready`) instead of refusing the
    /// request: such a denial does not count towards revoking the request's token (a
    /// waiter is not a repeat offender). Metrics count it as `decide` does.
    pub fn decide_waiting(&self, req: &Request<'_>) -> EngineDecision {
        if sampled() {
            return self.decide_timed::<false>(req);
        }
        self.decide_with::<false>(req)
    }

    /// Holds back every enforced limit that applies to `req` (its class, its key, its
    /// override) until `until` (Unix nanoseconds): none admits a request before then.
    /// Returns how many limits were held; limits whose backend cannot hold (see
    /// [`LimitBackend::hold_until`](crate::backend::LimitBackend::hold_until)) are skipped. Shadow limits are left alone.
    ///
    /// Client-side pacing (tollgate-async) calls this when the API it calls answers 429
    /// with `Retry-After` or a `RateLimit` header with `r=0`, so that later calls wait
    /// instead of being refused by the provider.
    pub fn hold(&self, req: &Request<'_>, until: u64) -> usize {
        let now = req.now.unwrap_or_else(|| self.clock.now());
        let c = self.compiled.load();
        let class = c.classes.of(req.method.unwrap_or(""));
        let mut held = 0;
        for l in c
            .limits
            .iter()
            .filter(|l| !l.spec.shadow && l.applies(class))
        {
            let mut buf = [""; MAX_KEY_ATTRS];
            let (key, over) = l.key(req, &self.hasher, &mut buf);
            if l.backend_for(over).get().hold_until(&key, until, now) {
                held += 1;
            }
        }
        held
    }

    /// The combined backends' answer for `req`'s limits and quota call, if one gives it.
    #[cold]
    pub(super) fn combined_decision(
        &self,
        c: &Compiled,
        req: &Request<'_>,
        class: usize,
        now: u64,
    ) -> Option<CombinedDecision> {
        let applying: Vec<&CompiledLimit> = c.limits.iter().filter(|l| l.applies(class)).collect();
        let mut bufs = vec![[""; MAX_KEY_ATTRS]; applying.len()];
        let calls: Vec<LimitCall<'_>> = applying
            .iter()
            .zip(bufs.iter_mut())
            .map(|(l, buf)| {
                let (key, over) = l.key(req, &self.hasher, buf);
                LimitCall {
                    backend: l.backend_for(over).get(),
                    key,
                    cost: l.cost(req, class),
                    shadow: l.spec.shadow,
                }
            })
            .collect();
        let quota = match (&c.quota, &self.ledger, &self.quota_store) {
            (Some(q), Some(ledger), Some(store)) => req.get(&q.attr).map(|key| QuotaCall {
                store: &**store,
                ledger,
                key,
                cost: q.cost,
            }),
            _ => None,
        };
        self.combined
            .iter()
            .find_map(|b| b.decide(&calls, quota.as_ref(), now))
    }

    #[inline(always)]
    pub(super) fn decide_with<const COUNT_DENIALS: bool>(
        &self,
        req: &Request<'_>,
    ) -> EngineDecision {
        let now = req.now.unwrap_or_else(|| self.clock.now());
        let c = self.compiled.load();
        if self.is_revoked_now(&c, req, now) {
            self.metrics.revoked.add(1);
            return EngineDecision::refused(Reason::Revoked, c.generation);
        }
        // A key the quota cannot charge is refused before any limit is taken: it costs
        // no limit state (an attacker's made-up keys fill no store) and no round trip.
        // The engine's own ledger resolves the key once, here, and records on it below.
        let key_guard;
        let mut resolved = None;
        if let (Some(q), Some(ledger)) = (&c.quota, &self.ledger) {
            let checked = match (req.get(&q.attr), &self.quota_store) {
                (Some(key), None) => {
                    key_guard = ledger.key_guard();
                    ledger
                        .resolve_key(&key_guard, key, i128::from(now))
                        .map(|r| resolved = Some(r))
                }
                (Some(key), Some(_)) => ledger.check_key_at(key, i128::from(now)),
                (None, _) => Err(QuotaError::UnknownKey(KeyRef::of(""))),
            };
            match checked {
                Err(e) => {
                    if !(matches!(e, QuotaError::UnknownKey(_))
                        && q.unknown_key == UnknownKey::Allow)
                    {
                        return EngineDecision::refused(self.quota_error_reason(&e), c.generation);
                    }
                }
                Ok(()) => {
                    if let Some(refused) = self.journal_fail_closed(&c) {
                        return refused;
                    }
                }
            }
        }
        let class = c.classes.of(req.method.unwrap_or(""));
        let mut taken = TakenList::new();
        let mut best: Option<(usize, Decision)> = None;
        let mut shadow_denied = false;
        let mut degraded = false;
        // A combined backend's answers stand in for the first limits' acquires (and
        // the quota call's); the rest are asked one by one.
        let (mut pre_limits, mut pre_quota, store_failed) =
            if self.combined.is_empty() || !c.remote_limits {
                (None, None, None)
            } else {
                match self.combined_decision(&c, req, class, now) {
                    Some(d) => (Some(d.limits.into_iter()), d.quota, d.failed),
                    None => (None, None, None),
                }
            };
        // One buffer for every limit's key values (each key overwrites the values it
        // uses), set up once per decision.
        let mut buf = [""; MAX_KEY_ATTRS];
        for (i, l) in c.limits.iter().enumerate() {
            if !l.applies(class) {
                continue;
            }
            let cost = l.cost(req, class);
            let (key, over) = l.key(req, &self.hasher, &mut buf);
            let backend = l.backend_for(over);
            let mut result = match pre_limits.as_mut().and_then(Iterator::next) {
                Some(r) => r,
                None => backend.get().acquire(&key, cost, now),
            };
            let mut fallback = false;
            if let Err(BackendError::Unavailable(_)) = result {
                if let Some(r) = backend.on_unavailable(&key, cost, now, true) {
                    l.metrics.failure_policy.add(1);
                    degraded = true;
                    fallback = backend.fallback().is_some();
                    result = r;
                }
            }
            match result {
                Ok((d, undo)) => {
                    if let Some(undo) = undo {
                        taken.push(Taken {
                            limit: i as u32,
                            over: over.map_or(0, |o| o as u32 + 1),
                            fallback,
                            undo,
                        });
                    }
                    if d.allowed() {
                        if !l.spec.shadow && best.is_none_or(|(_, b)| d.remaining < b.remaining) {
                            best = Some((i, d));
                        }
                    } else if l.spec.shadow {
                        l.metrics.shadow_denied.add(1);
                        shadow_denied = true;
                    } else {
                        l.metrics.denied.add(1);
                        self.undo_all(&c, req, &taken, now);
                        self.metrics.limited.add(1);
                        if COUNT_DENIALS && self.count_denial(&c, req, now) {
                            l.metrics.revoked.add(1);
                        }
                        let (by, d) = match self.longest_wait(&c, req, class, (i, d), now) {
                            Ok(longest) => longest,
                            Err(never) => {
                                let mut out =
                                    EngineDecision::refused(Reason::CannotPass, c.generation);
                                out.decided_by = Some(never);
                                out.shadow_denied = shadow_denied;
                                out.degraded = degraded;
                                return out;
                            }
                        };
                        return EngineDecision {
                            reason: Reason::Limited,
                            decided_by: Some(by),
                            limit: d.limit,
                            remaining: d.remaining,
                            retry_after: d.retry_after,
                            reset_after: d.reset_after,
                            shadow_denied,
                            degraded,
                            quota: None,
                            generation: c.generation,
                        };
                    }
                }
                Err(e) => {
                    l.metrics.errors.add(1);
                    if l.spec.shadow {
                        continue;
                    }
                    self.undo_all(&c, req, &taken, now);
                    let reason = match e {
                        BackendError::CannotPass(_) => Reason::CannotPass,
                        BackendError::StoreFull | BackendError::Unavailable(_) => {
                            Reason::Unavailable
                        }
                    };
                    self.metrics.errors.add(1);
                    let mut d = EngineDecision::refused(reason, c.generation);
                    d.decided_by = Some(i);
                    d.shadow_denied = shadow_denied;
                    d.degraded = degraded;
                    return d;
                }
            }
        }
        let mut quota = None;
        if let (Some(q), Some(ledger)) = (&c.quota, &self.ledger) {
            let key = req.get(&q.attr);
            let result = match (key, pre_quota.take()) {
                (_, Some(r)) => r,
                (Some(key), None) => match (&self.quota_store, &store_failed) {
                    (None, _) => match resolved {
                        Some(r) => ledger.record_resolved(r, q.cost, i128::from(now)),
                        None => ledger.record(key, q.cost, i128::from(now)),
                    },
                    (Some(store), None) => store.record(ledger, key, q.cost, now),
                    (Some(store), Some(why)) => store.record_failed(ledger, key, q.cost, now, why),
                },
                (None, None) => Err(QuotaError::UnknownKey(KeyRef::of(""))),
            };
            match result {
                Ok(d) => {
                    if d.event.is_some() {
                        for e in ledger.drain_events() {
                            self.emit(Event::Quota(e));
                        }
                    }
                    let status = QuotaStatus {
                        outcome: d.outcome,
                        used: d.used,
                        limit: d.limit,
                        resets_at_unix: d.resets_at.as_second(),
                    };
                    if d.outcome == Outcome::Refused {
                        self.undo_all(&c, req, &taken, now);
                        self.metrics.quota_refused.add(1);
                        let reset_ns =
                            i128::from(d.resets_at.as_second()) * 1_000_000_000 - i128::from(now);
                        let wait = u64::try_from(reset_ns.max(1)).unwrap_or(u64::MAX);
                        let mut out = EngineDecision::refused(Reason::QuotaExceeded, c.generation);
                        out.limit = d.limit;
                        out.retry_after = wait;
                        out.reset_after = wait;
                        out.quota = Some(status);
                        out.shadow_denied = shadow_denied;
                        out.degraded = degraded;
                        return out;
                    }
                    quota = Some(status);
                }
                Err(QuotaError::UnknownKey(_)) if q.unknown_key == UnknownKey::Allow => {}
                Err(e) => {
                    self.undo_all(&c, req, &taken, now);
                    let reason = self.quota_error_reason(&e);
                    let mut out = EngineDecision::refused(reason, c.generation);
                    out.shadow_denied = shadow_denied;
                    out.degraded = degraded;
                    return out;
                }
            }
        }
        // Shadow limits count what they would have allowed too.
        for t in taken.iter() {
            c.limits[t.limit as usize].metrics.allowed.add(1);
        }
        self.metrics.allowed.add(1);
        let (decided_by, d) = match best {
            Some((i, d)) => (Some(i), d),
            None => (
                None,
                Decision {
                    limit: 0,
                    remaining: 0,
                    retry_after: 0,
                    reset_after: 0,
                },
            ),
        };
        EngineDecision {
            reason: Reason::Allowed,
            decided_by,
            limit: d.limit,
            remaining: d.remaining,
            retry_after: 0,
            reset_after: d.reset_after,
            shadow_denied,
            degraded,
            quota,
            generation: c.generation,
        }
    }

    /// What each limit that applies to `req` would answer now, taking nothing: `(limit
    /// name, decision or error)`, in policy order.
    pub fn peek(&self, req: &Request<'_>) -> Vec<(String, Result<Decision, BackendError>)> {
        let now = req.now.unwrap_or_else(|| self.clock.now());
        let c = self.compiled.load();
        let class = c.classes.of(req.method.unwrap_or(""));
        let mut out = Vec::new();
        for l in c.limits.iter().filter(|l| l.applies(class)) {
            out.push((l.spec.name.clone(), self.peek_limit(l, req, class, now)));
        }
        out
    }

    /// What limit `l` would answer `req` now, taking nothing (its failure policy
    /// answers for a backend that cannot).
    fn peek_limit(
        &self,
        l: &CompiledLimit,
        req: &Request<'_>,
        class: usize,
        now: u64,
    ) -> Result<Decision, BackendError> {
        let cost = l.cost(req, class);
        let mut buf = [""; MAX_KEY_ATTRS];
        let (key, over) = l.key(req, &self.hasher, &mut buf);
        let backend = l.backend_for(over);
        let mut d = backend.get().peek(&key, cost, now);
        if let Err(BackendError::Unavailable(_)) = d {
            if let Some(r) = backend.on_unavailable(&key, cost, now, false) {
                d = r.map(|(d, _)| d);
            }
        }
        d
    }

    /// The answer to a request that enforced limit `denied.0` denied: the longest wait
    /// over it and every enforced limit after it that would deny too (asked without
    /// taking anything; the limits before it allowed and were given back, so they
    /// allow again after any wait), and the limit that needs it. A client that waits
    /// the answer's `retry_after` is admitted by every limit, absent other traffic.
    /// `Err(j)`: limit `j` can never pass the request's cost, so no wait helps. A limit
    /// that cannot answer adds nothing, and limits on a remote backend are not asked
    /// (a peek would be one more round trip per denied request).
    #[cold]
    fn longest_wait(
        &self,
        c: &Compiled,
        req: &Request<'_>,
        class: usize,
        denied: (usize, Decision),
        now: u64,
    ) -> Result<(usize, Decision), usize> {
        let mut longest = denied;
        for (j, l) in c.limits.iter().enumerate().skip(denied.0 + 1) {
            // Remote limits are not asked: a peek is a round trip, and a flood of
            // denied requests must not multiply the load on the store (their waits are
            // a known gap until the request script reports them).
            if l.spec.shadow || !l.applies(class) || !l.backend.is_local() {
                continue;
            }
            match self.peek_limit(l, req, class, now) {
                Ok(d) if !d.allowed() && d.retry_after > longest.1.retry_after => {
                    longest = (j, d);
                }
                Ok(_) | Err(BackendError::Unavailable(_) | BackendError::StoreFull) => {}
                Err(BackendError::CannotPass(_)) => return Err(j),
            }
        }
        Ok(longest)
    }

    /// The refusal of a request the quota would charge while the journal has been
    /// failing for longer than `[quota.journal] fail_closed_after` (one atomic load when
    /// the journal is healthy).
    #[inline]
    fn journal_fail_closed(&self, c: &Compiled) -> Option<EngineDecision> {
        let bound = c.policy.quota.as_ref()?.journal_fail_closed_after?;
        let failing = self.ledger.as_ref()?.journal()?.failing_for()?;
        if failing <= bound {
            return None;
        }
        self.journal_refused.add(1);
        let mut d = EngineDecision::refused(Reason::JournalFailing, c.generation);
        // Retrying soon may find the journal healed: the writer retries at least once a
        // second.
        d.retry_after = 1_000_000_000;
        Some(d)
    }

    /// Why a request whose quota call failed with `e` is refused (counted in the
    /// metrics): a disabled user is revoked, an unknown key is unknown, anything else
    /// (a journal or period error) leaves the quota unavailable.
    #[cold]
    fn quota_error_reason(&self, e: &QuotaError) -> Reason {
        match e {
            QuotaError::DisabledUser { .. } | QuotaError::CompanySuspended { .. } => {
                self.metrics.revoked.add(1);
                Reason::Revoked
            }
            QuotaError::CompanyTerminated { .. } => {
                self.metrics.revoked.add(1);
                Reason::Terminated
            }
            QuotaError::UnknownKey(_) => {
                self.metrics.unknown_key.add(1);
                Reason::UnknownKey
            }
            _ => {
                self.metrics.errors.add(1);
                Reason::Unavailable
            }
        }
    }

    /// Gives back everything `taken` holds, newest first.
    #[cold]
    pub(super) fn undo_all(&self, c: &Compiled, req: &Request<'_>, taken: &TakenList, now: u64) {
        for t in taken.iter().rev() {
            let l = &c.limits[t.limit as usize];
            let mut buf = [""; MAX_KEY_ATTRS];
            let (key, _) = l.key(req, &self.hasher, &mut buf);
            let over = t.over.checked_sub(1).map(|o| o as usize);
            let backend = l.backend_for(over);
            match backend.fallback().filter(|_| t.fallback) {
                Some(local) => local.undo(&key, t.undo, now),
                None => backend.get().undo(&key, t.undo, now),
            }
        }
    }
}
