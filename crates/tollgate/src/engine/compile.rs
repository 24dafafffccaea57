//! A policy compiled for deciding: each limit's key, state (backend) and failure policy, overrides, revocation and quota.

use std::sync::Arc;
use std::time::Duration;

use tollgate_core::{Algorithm, Decision, Fingerprinter, Rate};
use tollgate_quota::journal::{Durability, Journal};
use tollgate_quota::{KeyRef, Ledger, QuotaConfig};

use super::error::EngineError;
use super::extend::BackendFactory;
use super::request::Request;
use crate::backend::{AnyAlgorithm, BackendError, LimitBackend, LimitKey, MemoryBackend, Undo};
use crate::metrics::LimitMetrics;
use crate::policy::{
    AlgorithmKind, Attr, Classes, DurabilitySpec, FailurePolicy, LimitSpec, Policy, QuotaSpec,
    UnknownKey, MAX_KEY_ATTRS,
};
use crate::shared_state::{SharedBackend, SharedPlan};

/// The state behind a limit or an override.
#[derive(Clone, Debug)]
pub(super) enum Backend {
    Memory(Arc<MemoryBackend>),
    /// A `"memory"` limit under `[state] shared`: the host's worker processes share it.
    Shared(Arc<SharedBackend>),
    Custom(Arc<dyn LimitBackend>, Failure),
}

/// How the engine answers for a custom backend that cannot decide: the compiled form of
/// its [`FailurePolicy`].
#[derive(Clone, Debug)]
pub(super) enum Failure {
    /// The engine's own in-memory limiter for the limit decides.
    Fallback(Arc<MemoryBackend>),
    /// The backend's own fallback limiter decides ([`LimitBackend::own_fallback`]).
    Own,
    /// Allowed, nothing counted; the limit's capacity for the decision's numbers.
    Open { capacity: u64 },
    /// Refused as unavailable.
    Closed,
}

impl Failure {
    pub(super) fn of(
        backend: &dyn LimitBackend,
        spec: &LimitSpec,
        rate: Rate,
    ) -> Result<Self, String> {
        Ok(match backend.failure_policy() {
            FailurePolicy::Fallback if backend.own_fallback().is_some() => Failure::Own,
            FailurePolicy::Fallback => Failure::Fallback(Arc::new(
                MemoryBackend::new(spec.algorithm, rate, backend.fallback_capacity())
                    .map_err(|e| e.to_string())?,
            )),
            FailurePolicy::Open => Failure::Open {
                capacity: AnyAlgorithm::new(spec.algorithm, rate)
                    .map_err(|e| e.to_string())?
                    .capacity(),
            },
            FailurePolicy::Closed => Failure::Closed,
        })
    }
}

impl Backend {
    #[inline]
    pub(super) fn get(&self) -> &dyn LimitBackend {
        match self {
            Backend::Memory(m) => &**m,
            Backend::Shared(s) => &**s,
            Backend::Custom(c, _) => &**c,
        }
    }

    /// The failure policy's answer for a backend that returned `Unavailable`: `None`
    /// when the policy is to refuse (the error stands). `take`: acquire (else peek).
    #[cold]
    pub(super) fn on_unavailable(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
        take: bool,
    ) -> Option<Result<(Decision, Option<Undo>), BackendError>> {
        match self {
            Backend::Memory(_) | Backend::Shared(_) | Backend::Custom(_, Failure::Closed) => None,
            Backend::Custom(_, Failure::Open { capacity }) => Some(Ok((
                Decision {
                    limit: *capacity,
                    remaining: capacity.saturating_sub(cost),
                    retry_after: 0,
                    reset_after: 0,
                },
                None,
            ))),
            Backend::Custom(_, Failure::Fallback(_) | Failure::Own) => {
                let local = self.fallback()?;
                Some(if take {
                    local.acquire(key, cost, now)
                } else {
                    local.peek(key, cost, now).map(|d| (d, None))
                })
            }
        }
    }

    /// The failure policy's fallback limiter (the engine's or the backend's own), where
    /// an undo it took goes back to.
    /// Whether the state is in this host's memory (private or shared): a peek costs no
    /// round trip.
    pub(super) fn is_local(&self) -> bool {
        matches!(self, Backend::Memory(_) | Backend::Shared(_))
    }

    pub(super) fn fallback(&self) -> Option<&dyn LimitBackend> {
        match self {
            Backend::Custom(_, Failure::Fallback(local)) => Some(&**local),
            Backend::Custom(c, Failure::Own) => c.own_fallback(),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(super) struct CompiledOverride {
    /// (position in the limit's key, value).
    pub(super) matches: Vec<(usize, String)>,
    pub(super) rate: Rate,
    pub(super) backend: Backend,
}

#[derive(Debug)]
pub(super) struct CompiledLimit {
    pub(super) spec: LimitSpec,
    pub(super) backend: Backend,
    pub(super) overrides: Vec<CompiledOverride>,
    pub(super) metrics: Arc<LimitMetrics>,
    /// `RateLimit-Policy` item for the limit's own rate.
    pub(super) policy_item: String,
    /// Per request class (by [`ClassTable`] index): whether the limit applies, and
    /// what a request of the class costs under it. The hot path reads this instead of
    /// looking class names up in the spec's maps.
    pub(super) per_class: Box<[ClassRule]>,
}

/// What a limit does with requests of one class.
#[derive(Clone, Copy, Debug)]
pub(super) struct ClassRule {
    pub(super) applies: bool,
    pub(super) cost: u64,
}

/// The policy's request classes, compiled: methods to class indices, so that a
/// decision finds its class with a few byte comparisons and each limit's rule for it
/// by index ([`CompiledLimit::per_class`]).
#[derive(Clone, Debug, Default)]
pub(super) struct ClassTable {
    /// Upper-case method and its class's index.
    methods: Vec<(String, usize)>,
    /// The methods of 1 to 8 bytes as (length, [`method_word`], class index): what
    /// an upper-case method is matched against, without a byte comparison call.
    words: Vec<(usize, u64, usize)>,
    /// The class of methods not listed.
    default: usize,
    /// Class names, by index.
    names: Vec<String>,
}

impl ClassTable {
    pub(super) fn new(classes: &Classes) -> Self {
        let names: Vec<String> = classes.names().into_iter().map(str::to_owned).collect();
        let index = |name: &str| names.iter().position(|n| n == name).unwrap_or(0);
        let methods: Vec<(String, usize)> = classes
            .methods()
            .map(|(m, class)| (m.to_owned(), index(class)))
            .collect();
        ClassTable {
            words: methods
                .iter()
                .filter_map(|(m, i)| method_word(m.as_bytes()).map(|w| (m.len(), w, *i)))
                .collect(),
            methods,
            default: index(classes.default_class()),
            names: names.clone(),
        }
    }

    /// The class index of `method` (case-insensitive; exact bytes first, since
    /// requests almost always carry the upper-case method).
    #[inline]
    pub(super) fn of(&self, method: &str) -> usize {
        if let Some(w) = method_word(method.as_bytes()) {
            let len = method.len();
            for &(l, mw, i) in &self.words {
                if l == len && mw == w {
                    return i;
                }
            }
        }
        self.of_slow(method)
    }

    /// [`of`](Self::of) by byte comparison: for a method of another case, or longer than
    /// 8 bytes (the exact-word match above already found any upper-case method of up to
    /// 8 bytes; the first match here is the same entry, since entries are upper-case).
    #[cold]
    fn of_slow(&self, method: &str) -> usize {
        for (m, i) in &self.methods {
            if m.len() == method.len()
                && (m.as_bytes() == method.as_bytes() || m.eq_ignore_ascii_case(method))
            {
                return *i;
            }
        }
        self.default
    }

    /// Each class's rule under limit `spec`, by index.
    pub(super) fn rules(&self, spec: &LimitSpec) -> Box<[ClassRule]> {
        self.names
            .iter()
            .map(|name| ClassRule {
                applies: spec.applies_to(name),
                cost: spec.cost_of(name),
            })
            .collect()
    }
}

/// A method of 1 to 8 bytes as one word that, with its length, determines every byte:
/// up to 3 bytes the first, middle and last; from 4 the first four and the last four
/// (overlapping below 8). `None` for an empty or longer method.
#[inline]
fn method_word(b: &[u8]) -> Option<u64> {
    let n = b.len();
    match n {
        1..=3 => Some(u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16),
        4..=8 => {
            let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]);
            Some(u64::from(hi) << 32 | u64::from(lo))
        }
        _ => None,
    }
}

impl CompiledLimit {
    /// The request's values of the limit's key attributes (absent ones empty), written
    /// into `buf`, and the override they match, if any.
    #[inline]
    fn key_parts<'b, 'r>(
        &self,
        req: &Request<'r>,
        buf: &'b mut [&'r str; MAX_KEY_ATTRS],
    ) -> (&'b [&'r str], Option<usize>) {
        let n = self.spec.key.len().min(MAX_KEY_ATTRS);
        for (slot, attr) in buf.iter_mut().zip(&self.spec.key) {
            *slot = req.get(attr).unwrap_or("");
        }
        let parts = &buf[..n];
        let over = self
            .overrides
            .iter()
            .position(|o| o.matches.iter().all(|(pos, v)| parts[*pos] == v));
        (parts, over)
    }

    /// The request's key for this limit (its values hashed by `hasher`, held in `buf`)
    /// and the override it matches, if any: the one way every path (decide, combined,
    /// peek, hold, undo) builds a limit key.
    #[inline]
    pub(super) fn key<'b, 'r: 'b>(
        &self,
        req: &Request<'r>,
        hasher: &Fingerprinter,
        buf: &'b mut [&'r str; MAX_KEY_ATTRS],
    ) -> (LimitKey<'b>, Option<usize>) {
        let (parts, over) = self.key_parts(req, buf);
        (
            LimitKey {
                hash: hasher.of_parts(parts),
                parts,
            },
            over,
        )
    }

    /// Whether the limit applies to requests of class `class` (a [`ClassTable`] index).
    #[inline]
    pub(super) fn applies(&self, class: usize) -> bool {
        self.per_class.get(class).is_some_and(|r| r.applies)
    }

    /// The cost of `req` (of class `class`) under this limit: its explicit cost, else
    /// the class's.
    #[inline]
    pub(super) fn cost(&self, req: &Request<'_>, class: usize) -> u64 {
        req.cost
            .unwrap_or_else(|| self.per_class.get(class).map_or(1, |r| r.cost))
    }

    #[inline]
    pub(super) fn backend_for(&self, over: Option<usize>) -> &Backend {
        over.map_or(&self.backend, |o| &self.overrides[o].backend)
    }
}

#[derive(Debug)]
pub(super) struct CompiledRevocation {
    pub(super) attr: Attr,
    pub(super) denials: u32,
    pub(super) window: Duration,
    /// Denials per value (a GCRA store; host-shared under `[state] shared`).
    pub(super) offenders: Backend,
    /// How long an automatic revocation lasts (nanoseconds; `None`: until restored).
    pub(super) suspend: Option<u64>,
    /// Most values revoked automatically at once.
    pub(super) max_revoked: usize,
}

/// An entry of the revoked set.
#[derive(Clone, Debug)]
pub(super) struct Revoked {
    /// The value, redacted.
    pub(super) key: KeyRef,
    /// Unix nanoseconds from which it is served again (`u64::MAX`: until restored).
    pub(super) until: u64,
}

#[derive(Debug)]
pub(super) struct CompiledQuota {
    pub(super) attr: Attr,
    pub(super) cost: u64,
    pub(super) unknown_key: UnknownKey,
    pub(super) spec: QuotaSpec,
}

#[derive(Debug)]
pub(super) struct Compiled {
    pub(super) generation: u64,
    pub(super) policy: Policy,
    pub(super) classes: ClassTable,
    pub(super) limits: Vec<CompiledLimit>,
    pub(super) revocation: Option<CompiledRevocation>,
    pub(super) quota: Option<CompiledQuota>,
    /// Whether a limit is on a backend other than `"memory"` (only then can a combined
    /// backend answer, and a decision wait on a remote store).
    pub(super) remote_limits: bool,
}

/// The ledger's configuration of a policy's quota section.
pub(super) fn quota_config(q: &QuotaSpec) -> QuotaConfig {
    QuotaConfig {
        plans: q.plans.clone(),
        period: q.period.clone(),
        warning_percent: q.warning_percent,
        hard_cap_percent: q.hard_cap_percent,
        notice_redeliver_after: q.notice_redeliver_after,
    }
}

pub(super) fn open_ledger(q: &QuotaSpec) -> Result<Ledger, EngineError> {
    let config = quota_config(q);
    Ok(match &q.journal {
        None => Ledger::new(config),
        Some(path) => {
            let durability = match q.durability {
                DurabilitySpec::BoundedLoss => Durability::default(),
                DurabilitySpec::Strict => Durability::Strict,
            };
            let (journal, snapshot) =
                Journal::open(path, durability).map_err(EngineError::Journal)?;
            Ledger::with_journal(config, journal, snapshot)
        }
    })
}

/// The `RateLimit-Policy` item of a limit at `rate`: quota `q` = capacity, window `w` =
/// seconds to refill it (at least 1).
pub(super) fn policy_item(name: &str, kind: AlgorithmKind, rate: Rate) -> String {
    let (q, w_ns) = match kind {
        AlgorithmKind::Gcra => (
            rate.burst(),
            u128::from(rate.burst()) * u128::from(rate.emission_interval_nanos()),
        ),
        AlgorithmKind::SlidingWindow => (rate.count(), u128::from(rate.period_nanos())),
    };
    let w = u64::try_from(w_ns.div_ceil(1_000_000_000))
        .unwrap_or(u64::MAX)
        .max(1);
    format!("\"{name}\";q={q};w={w}")
}

/// The state behind limit `spec` at `rate` (the limit's own or an override's), and
/// whether it carried `previous`'s state over.
///
/// `capacity`: the keys its in-memory state holds (the limit's, or the override's).
/// `shared`: the host-shared state and, for an override, its match values (the region
/// is named after them); `None` for process-private state.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_backend(
    factories: &[(String, Arc<dyn BackendFactory>)],
    spec: &LimitSpec,
    rate: Rate,
    capacity: usize,
    previous: Option<&Backend>,
    now: u64,
    shared: Option<(&SharedPlan, Option<&[&str]>)>,
) -> Result<(Backend, bool), EngineError> {
    let err = |message: String| EngineError::Limit {
        limit: spec.name.clone(),
        message,
    };
    if let (Some((plan, values)), "memory") = (shared, spec.backend.as_str()) {
        let path = plan.region(&spec.name, values);
        let (b, carried) =
            SharedBackend::open(&path, spec.algorithm, rate, capacity, spec.on_full, now)
                .map_err(err)?;
        return Ok((Backend::Shared(Arc::new(b)), carried));
    }
    if spec.backend == "memory" {
        if let Some(Backend::Memory(old)) = previous {
            if let Some(carried) = old.carry_over(spec.algorithm, rate, now) {
                let carried = carried.with_on_full(spec.on_full);
                return Ok((Backend::Memory(Arc::new(carried)), true));
            }
        }
        let m = MemoryBackend::new(spec.algorithm, rate, capacity)
            .map_err(|e| err(e.to_string()))?
            .with_on_full(spec.on_full);
        return Ok((Backend::Memory(Arc::new(m)), false));
    }
    let factory = factories
        .iter()
        .find(|(n, _)| *n == spec.backend)
        .ok_or_else(|| {
            err(format!(
                "no backend named {:?} is registered (built in: \"memory\")",
                spec.backend
            ))
        })?;
    let b = factory.1.build(spec, rate).map_err(err)?;
    let failure = Failure::of(&*b, spec, rate).map_err(err)?;
    Ok((Backend::Custom(b, failure), false))
}
