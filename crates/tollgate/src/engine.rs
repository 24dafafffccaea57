//! The engine: decides a request against every limit of the policy and the monthly
//! quota, all or nothing.
//!
//! # A decision
//! 1. A request whose revocation attribute (its token, by default) is revoked is refused
//!    with [`Reason::Revoked`].
//! 2. The request's method gives its class; each limit that applies to the class takes
//!    the class's cost (or the request's explicit cost) for the request's key (the values
//!    of the attributes the limit keys on; an absent attribute counts as empty), in policy
//!    order. A limit with a matching override uses the override's rate instead.
//! 3. If an enforced limit denies, everything the earlier limits took is given back, the
//!    request is refused with [`Reason::Limited`] and the denying limit's numbers, and the
//!    denial counts towards revoking the token. A shadow limit that denies is counted
//!    (`shadow_denied`) and does not refuse anything.
//! 4. The quota records the call last, so a denied request never eats quota; a call over
//!    the hard cap is refused ([`Reason::QuotaExceeded`]) and the limits give back what
//!    they took. Unknown API keys are refused ([`Reason::UnknownKey`]) or served
//!    uncounted, as the policy says; keys of disabled users are refused as revoked.
//! 5. An allowed request reports the most restrictive enforced limit (least remaining).
//!
//! # Hot reload
//! [`Engine::reload`] swaps the whole policy atomically (decisions in flight finish
//! under the old one). A limit whose definition is unchanged keeps its state untouched;
//! a changed limit of the same algorithm keeps every key's *used capacity* (in cost
//! units), so raising a limit takes effect at once (see
//! [`MemoryBackend::carry_over`]); a limit whose algorithm or window changed starts
//! fresh. Metrics follow limits by name. The quota keeps its ledger; companies in the new
//! policy are registered or updated (a raised limit applies at once).
//!
//! # Events
//! Overage and warning notices and revocations go to a bounded channel
//! ([`Engine::events`]); a decision never waits on it. When the host does not drain it,
//! events are dropped and counted (`events_dropped`).

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use tollgate_core::{Algorithm, Clock, Decision, Fingerprinter, Rate, UnixClock};
use tollgate_quota::journal::{Durability, Journal, JournalError};
use tollgate_quota::{
    CommitOutcome, KeyRef, Ledger, Outcome, QuotaConfig, QuotaError, QuotaEvent, Reservation,
};

use crate::backend::{AnyAlgorithm, BackendError, LimitBackend, LimitKey, MemoryBackend, Undo};
use crate::metrics::{EngineMetrics, LimitCounts, LimitMetrics, MetricsSnapshot};
use crate::policy::{
    AlgorithmKind, Attr, DurabilitySpec, FailurePolicy, LimitSpec, Policy, PolicyError,
    PolicyWarning, QuotaSpec, UnknownKey,
};

/// `retry_after` of a refusal that waiting cannot lift.
const NEVER: u64 = u64::MAX;

/// Most attributes a limit keys on.
pub const MAX_KEY_ATTRS: usize = 8;

/// The attributes of one request. Values are borrowed; absent attributes are `None`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request<'a> {
    /// The access token (or API key).
    pub token: Option<&'a str>,
    /// The tenant the call acts for.
    pub tenant: Option<&'a str>,
    /// The end user.
    pub user: Option<&'a str>,
    /// The company.
    pub company: Option<&'a str>,
    /// The client's address.
    pub client: Option<&'a str>,
    /// The route.
    pub route: Option<&'a str>,
    /// The HTTP method; it decides the class (absent: the default class).
    pub method: Option<&'a str>,
    /// Other attributes the host supplies, by name.
    pub attrs: &'a [(&'a str, &'a str)],
    /// An explicit cost, instead of the class's cost under each limit.
    pub cost: Option<u64>,
    /// The time of the request in Unix nanoseconds (default: the engine's clock).
    pub now: Option<u64>,
}

impl<'a> Request<'a> {
    /// A request with no attributes.
    pub fn new() -> Self {
        Request::default()
    }

    /// Sets the token.
    pub fn token(mut self, v: &'a str) -> Self {
        self.token = Some(v);
        self
    }

    /// Sets the tenant.
    pub fn tenant(mut self, v: &'a str) -> Self {
        self.tenant = Some(v);
        self
    }

    /// Sets the user.
    pub fn user(mut self, v: &'a str) -> Self {
        self.user = Some(v);
        self
    }

    /// Sets the company.
    pub fn company(mut self, v: &'a str) -> Self {
        self.company = Some(v);
        self
    }

    /// Sets the client address.
    pub fn client(mut self, v: &'a str) -> Self {
        self.client = Some(v);
        self
    }

    /// Sets the route.
    pub fn route(mut self, v: &'a str) -> Self {
        self.route = Some(v);
        self
    }

    /// Sets the method.
    pub fn method(mut self, v: &'a str) -> Self {
        self.method = Some(v);
        self
    }

    /// Sets the host-supplied attributes.
    pub fn attrs(mut self, attrs: &'a [(&'a str, &'a str)]) -> Self {
        self.attrs = attrs;
        self
    }

    /// Sets an explicit cost.
    pub fn cost(mut self, cost: u64) -> Self {
        self.cost = Some(cost);
        self
    }

    /// Sets the request's time (Unix nanoseconds).
    pub fn at(mut self, unix_nanos: u64) -> Self {
        self.now = Some(unix_nanos);
        self
    }

    /// The value of `attr`, if present.
    pub fn get(&self, attr: &Attr) -> Option<&'a str> {
        match attr {
            Attr::Token => self.token,
            Attr::Tenant => self.tenant,
            Attr::User => self.user,
            Attr::Company => self.company,
            Attr::Client => self.client,
            Attr::Route => self.route,
            Attr::Method => self.method,
            Attr::Other(name) => self.attrs.iter().find(|(n, _)| n == name).map(|&(_, v)| v),
        }
    }
}

/// Why a request was allowed or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Allowed.
    Allowed,
    /// A limit denied it.
    Limited,
    /// Its token is revoked, or its user disabled.
    Revoked,
    /// The company is over the quota's hard cap.
    QuotaExceeded,
    /// The quota does not know its API key.
    UnknownKey,
    /// Its cost exceeds a limit's capacity: it can never pass.
    CannotPass,
    /// A limit could not decide (its key store is full, or its backend is unavailable).
    Unavailable,
}

impl Reason {
    /// The reason's name: `allowed`, `limited`, `revoked`, `quota_exceeded`,
    /// `unknown_key`, `cannot_pass`, `unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::Limited => "limited",
            Reason::Revoked => "revoked",
            Reason::QuotaExceeded => "quota_exceeded",
            Reason::UnknownKey => "unknown_key",
            Reason::CannotPass => "cannot_pass",
            Reason::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The quota's part of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaStatus {
    /// Within, over (served) or refused.
    pub outcome: Outcome,
    /// The company's usage this period.
    pub used: u64,
    /// The company's limit.
    pub limit: u64,
    /// When the period ends (Unix seconds).
    pub resets_at_unix: i64,
}

/// The engine's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineDecision {
    /// Why.
    pub reason: Reason,
    /// The limit that decided (by index in the policy): the one that denied, or the most
    /// restrictive one for an allowed request. `None` when no limit applied or the
    /// decision was not a limit's.
    pub decided_by: Option<usize>,
    /// The deciding limit's capacity (cost units admitted at once).
    pub limit: u64,
    /// Cost units the deciding limit still admits.
    pub remaining: u64,
    /// How long to wait before retrying, in nanoseconds; zero when allowed; `u64::MAX`
    /// when waiting does not help (revoked, unknown key, cannot pass). Rust callers ask
    /// [`EngineDecision::wait`] instead of testing the value.
    pub retry_after: u64,
    /// When the deciding limit is back to full capacity, in nanoseconds.
    pub reset_after: u64,
    /// Whether a shadow limit would have denied this request.
    pub shadow_denied: bool,
    /// Whether a limit's backend could not decide and the limit's [`FailurePolicy`]
    /// answered for it (a fallback limiter, open or closed).
    pub degraded: bool,
    /// The quota's view, when the quota took part.
    pub quota: Option<QuotaStatus>,
    /// The policy generation that decided (incremented by every reload).
    pub generation: u64,
}

impl EngineDecision {
    /// Whether the request is allowed.
    pub fn allowed(&self) -> bool {
        self.reason == Reason::Allowed
    }

    /// How long to wait before the same request can be admitted (absent other
    /// traffic): `None` when it is allowed, or when waiting cannot help (revoked,
    /// unknown key, a cost that can never pass, a backend that cannot decide).
    pub fn wait(&self) -> Option<Duration> {
        if self.allowed() || self.retry_after == NEVER {
            None
        } else {
            Some(Duration::from_nanos(self.retry_after))
        }
    }

    /// `retry_after` in whole seconds, rounded up (`None` when waiting does not help or
    /// the request was allowed).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self.retry_after {
            0 | NEVER => None,
            ns => Some(ns.div_ceil(1_000_000_000)),
        }
    }

    fn refused(reason: Reason, generation: u64) -> Self {
        EngineDecision {
            reason,
            decided_by: None,
            limit: 0,
            remaining: 0,
            retry_after: NEVER,
            reset_after: 0,
            shadow_denied: false,
            degraded: false,
            quota: None,
            generation,
        }
    }
}

/// Response header values for a decision, in the form of
/// draft-ietf-httpapi-ratelimit-headers (`RateLimit-Policy`, `RateLimit`) plus
/// `Retry-After`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `RateLimit-Policy`, e.g. `"per-token";q=100;w=60`.
    pub policy: Option<String>,
    /// `RateLimit`, e.g. `"per-token";r=42;t=17`.
    pub ratelimit: Option<String>,
    /// `Retry-After` in seconds, for refused requests that may retry.
    pub retry_after: Option<String>,
}

/// Something the host should act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A quota notice (early warning or overage) to turn into an email.
    Quota(QuotaEvent),
    /// A token was revoked for repeated denials (or by [`Engine::revoke`]).
    Revoked {
        /// The revoked attribute's name (e.g. `token`).
        attribute: String,
        /// The value, redacted.
        key: KeyRef,
        /// Whether it was revoked automatically (repeated denials) or by a call.
        automatic: bool,
    },
    /// A revoked value was restored.
    Restored {
        /// The attribute's name.
        attribute: String,
        /// The value, redacted.
        key: KeyRef,
    },
}

/// Decides the policy's quota instead of the engine's own [`Ledger`]: a store shared by
/// several engines (a fleet of gateways counting one company's calls on Redis) registers
/// itself with [`EngineBuilder::quota_store`]. It is handed the engine's ledger, which
/// still resolves keys to users and companies, holds the plans and raises the notices
/// (see [`Ledger::target`] and [`Ledger::record_shared`]).
pub trait QuotaStore: Send + Sync + fmt::Debug {
    /// Records a call of `cost` by the holder of `key` at `now` (Unix nanoseconds) and
    /// decides it, like [`Ledger::record`]. A store that cannot decide returns
    /// [`QuotaError::Unavailable`] (the engine refuses the request as unavailable).
    fn record(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
    ) -> Result<tollgate_quota::QuotaDecision, QuotaError>;

    /// Reserves `cost` for a call whose final cost is known only afterwards, like
    /// [`Ledger::reserve`] (the default), which it counts at once in the store.
    fn reserve(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
    ) -> Result<Reservation, QuotaError> {
        ledger.reserve(key, cost, i128::from(now))
    }

    /// Settles a reservation at its final cost, once per idempotency key and period, like
    /// [`Ledger::commit`] (the default).
    fn commit(
        &self,
        ledger: &Ledger,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
    ) -> CommitOutcome {
        ledger.commit(r, final_cost, idempotency_key)
    }

    /// Releases a reservation, like [`Ledger::refund`] (the default).
    fn refund(&self, ledger: &Ledger, r: Reservation) {
        ledger.refund(r)
    }

    /// The store as [`Any`](std::any::Any), for a [`CombinedBackend`] that recognizes
    /// its own stores. The default is `None`.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// Settles quota reservations: the ledger, and the quota store that decided them (see
/// [`Engine::quota_settler`]).
#[derive(Clone, Debug)]
pub struct QuotaSettler {
    ledger: Arc<Ledger>,
    store: Option<Arc<dyn QuotaStore>>,
}

impl QuotaSettler {
    /// Settles `r` at its final cost, once per idempotency key and period.
    pub fn commit(&self, r: Reservation, final_cost: u64, idempotency_key: &str) -> CommitOutcome {
        match &self.store {
            Some(s) => s.commit(&self.ledger, r, final_cost, idempotency_key),
            None => self.ledger.commit(r, final_cost, idempotency_key),
        }
    }

    /// Releases `r` without counting it.
    pub fn refund(&self, r: Reservation) {
        match &self.store {
            Some(s) => s.refund(&self.ledger, r),
            None => self.ledger.refund(r),
        }
    }
}

/// Builds the state behind a limit whose `backend` is not `"memory"`.
pub trait BackendFactory: Send + Sync {
    /// The backend for `limit` at `rate` (the limit's own rate or an override's).
    fn build(&self, limit: &LimitSpec, rate: Rate) -> Result<Arc<dyn LimitBackend>, String>;

    /// A backend that decides several of a request's limits (and its quota call) in one
    /// step, asked before the limits one by one (see [`CombinedBackend`]). The engine
    /// asks once, when it is built. The default is `None`.
    fn combined(&self) -> Option<Arc<dyn CombinedBackend>> {
        None
    }
}

/// One limit of a request, as the engine hands it to a [`CombinedBackend`]: what it
/// would pass to the limit's [`LimitBackend::acquire`].
#[derive(Clone, Copy, Debug)]
pub struct LimitCall<'a> {
    /// The limit's backend (a combined backend recognizes its own with
    /// [`LimitBackend::as_any`]).
    pub backend: &'a dyn LimitBackend,
    /// The request's key for the limit.
    pub key: LimitKey<'a>,
    /// The cost.
    pub cost: u64,
    /// Whether the limit is a shadow limit (its denial does not refuse the request).
    pub shadow: bool,
}

/// A request's quota call, as the engine hands it to a [`CombinedBackend`]: what it
/// would pass to [`QuotaStore::record`].
#[derive(Clone, Copy, Debug)]
pub struct QuotaCall<'a> {
    /// The engine's quota store.
    pub store: &'a dyn QuotaStore,
    /// The engine's ledger.
    pub ledger: &'a Ledger,
    /// The quota key's value.
    pub key: &'a str,
    /// The cost.
    pub cost: u64,
}

/// What a [`CombinedBackend`] decided.
#[derive(Debug, Default)]
pub struct CombinedDecision {
    /// The answers for the first `limits.len()` limits, in order, as their backends'
    /// `acquire` would have given them one after the other; the engine asks the rest one
    /// by one. An allowed answer with an [`Undo`] is given back through its backend if
    /// the request is refused later.
    pub limits: Vec<Result<(Decision, Option<Undo>), BackendError>>,
    /// The quota's answer, as [`QuotaStore::record`] would give it; `None` leaves the
    /// quota to the engine. Only with an answer for every limit, all of them allowed or
    /// shadow limits.
    pub quota: Option<Result<tollgate_quota::QuotaDecision, QuotaError>>,
}

/// Decides a request's limits, and possibly its quota call, in one step: a remote store
/// answers them in one round trip, atomically, instead of one round trip per limit
/// (tollgate-redis). Registered through [`BackendFactory::combined`].
pub trait CombinedBackend: Send + Sync + fmt::Debug {
    /// Decides `limits` (those of the request that apply, in the policy's order) and,
    /// when given, the quota call, all or nothing: nothing is taken unless every
    /// enforced limit allows the request and the quota counts it. `None` when it
    /// cannot (a limit on another backend, keys in different cluster slots, a state it
    /// must repair first): the engine then decides limit by limit.
    fn decide(
        &self,
        limits: &[LimitCall<'_>],
        quota: Option<&QuotaCall<'_>>,
        now: u64,
    ) -> Option<CombinedDecision>;
}

/// What went wrong building or reloading an engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineError {
    /// The policy file.
    Policy(PolicyError),
    /// A limit could not be built.
    Limit {
        /// The limit.
        limit: String,
        /// Why.
        message: String,
    },
    /// The quota could not be set up.
    Quota(QuotaError),
    /// The quota journal could not be opened.
    Journal(JournalError),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Policy(e) => e.fmt(f),
            EngineError::Limit { limit, message } => write!(f, "limit {limit:?}: {message}"),
            EngineError::Quota(e) => write!(f, "quota: {e}"),
            EngineError::Journal(e) => write!(f, "quota journal: {e}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<crate::policy::ValidationError> for EngineError {
    fn from(e: crate::policy::ValidationError) -> Self {
        EngineError::Policy(PolicyError {
            file: None,
            line: None,
            column: None,
            field: e.field,
            message: e.message,
        })
    }
}

impl From<PolicyError> for EngineError {
    fn from(e: PolicyError) -> Self {
        EngineError::Policy(e)
    }
}

/// What a reload did, limit by limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Limits whose definition did not change: state untouched.
    pub kept: Vec<String>,
    /// Changed limits whose keys' used capacity carried over.
    pub carried: Vec<String>,
    /// New limits, and changed ones that start fresh (algorithm or window changed).
    pub fresh: Vec<String>,
    /// Limits no longer in the policy.
    pub removed: Vec<String>,
    /// Anything else worth knowing (e.g. quota settings that need a restart).
    pub notes: Vec<String>,
}

/// The state behind a limit or an override.
#[derive(Clone, Debug)]
enum Backend {
    Memory(Arc<MemoryBackend>),
    Custom(Arc<dyn LimitBackend>, Failure),
}

/// How the engine answers for a custom backend that cannot decide: the compiled form of
/// its [`FailurePolicy`].
#[derive(Clone, Debug)]
enum Failure {
    /// The engine's own in-memory limiter for the limit decides.
    Fallback(Arc<MemoryBackend>),
    /// Allowed, nothing counted; the limit's capacity for the decision's numbers.
    Open { capacity: u64 },
    /// Refused as unavailable.
    Closed,
}

impl Failure {
    fn of(backend: &dyn LimitBackend, spec: &LimitSpec, rate: Rate) -> Result<Self, String> {
        Ok(match backend.failure_policy() {
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
    fn get(&self) -> &dyn LimitBackend {
        match self {
            Backend::Memory(m) => &**m,
            Backend::Custom(c, _) => &**c,
        }
    }

    /// The failure policy's answer for a backend that returned `Unavailable`: `None`
    /// when the policy is to refuse (the error stands). `take`: acquire (else peek).
    #[cold]
    fn on_unavailable(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
        take: bool,
    ) -> Option<Result<(Decision, Option<Undo>), BackendError>> {
        match self {
            Backend::Memory(_) | Backend::Custom(_, Failure::Closed) => None,
            Backend::Custom(_, Failure::Open { capacity }) => Some(Ok((
                Decision {
                    limit: *capacity,
                    remaining: capacity.saturating_sub(cost),
                    retry_after: 0,
                    reset_after: 0,
                },
                None,
            ))),
            Backend::Custom(_, Failure::Fallback(local)) => Some(if take {
                local.acquire(key, cost, now)
            } else {
                local.peek(key, cost, now).map(|d| (d, None))
            }),
        }
    }

    /// Where an undo taken by the failure policy goes back to.
    fn fallback(&self) -> Option<&MemoryBackend> {
        match self {
            Backend::Custom(_, Failure::Fallback(local)) => Some(local),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct CompiledOverride {
    /// (position in the limit's key, value).
    matches: Vec<(usize, String)>,
    rate: Rate,
    backend: Backend,
}

#[derive(Debug)]
struct CompiledLimit {
    spec: LimitSpec,
    backend: Backend,
    overrides: Vec<CompiledOverride>,
    metrics: Arc<LimitMetrics>,
    /// `RateLimit-Policy` item for the limit's own rate.
    policy_item: String,
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

    #[inline]
    fn backend_for(&self, over: Option<usize>) -> &Backend {
        over.map_or(&self.backend, |o| &self.overrides[o].backend)
    }
}

#[derive(Debug)]
struct CompiledRevocation {
    attr: Attr,
    denials: u32,
    window: Duration,
    offenders: MemoryBackend,
}

#[derive(Debug)]
struct CompiledQuota {
    attr: Attr,
    cost: u64,
    unknown_key: UnknownKey,
    spec: QuotaSpec,
}

#[derive(Debug)]
struct Compiled {
    generation: u64,
    policy: Policy,
    limits: Vec<CompiledLimit>,
    revocation: Option<CompiledRevocation>,
    quota: Option<CompiledQuota>,
    /// Whether a limit is on a backend other than `"memory"` (only then can a combined
    /// backend answer, and a decision wait on a remote store).
    remote_limits: bool,
}

/// Up to this many limits' undo records live on the stack during a decision.
const INLINE_TAKEN: usize = 8;

#[derive(Clone, Copy, Debug)]
struct Taken {
    limit: u32,
    /// The override's index + 1 (0: the limit's own rate).
    over: u32,
    /// Taken by the failure policy's fallback limiter, not the backend.
    fallback: bool,
    undo: Undo,
}

const NO_TAKEN: Taken = Taken {
    limit: 0,
    over: 0,
    fallback: false,
    undo: Undo {
        cost: 0,
        before: 0,
        after: 0,
    },
};

/// The undo records of one decision: on the stack for up to [`INLINE_TAKEN`] limits.
struct TakenList {
    inline: [Taken; INLINE_TAKEN],
    len: usize,
    spill: Vec<Taken>,
}

impl TakenList {
    #[inline]
    fn new() -> Self {
        TakenList {
            inline: [NO_TAKEN; INLINE_TAKEN],
            len: 0,
            spill: Vec::new(),
        }
    }

    #[inline]
    fn push(&mut self, t: Taken) {
        if self.len < INLINE_TAKEN {
            self.inline[self.len] = t;
            self.len += 1;
        } else {
            self.spill.push(t);
        }
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = &Taken> {
        self.inline[..self.len].iter().chain(self.spill.iter())
    }
}

/// The engine. `Send + Sync`: share it behind an `Arc` across all threads.
pub struct Engine {
    compiled: ArcSwap<Compiled>,
    clock: UnixClock,
    hasher: Fingerprinter,
    factories: Vec<(String, Arc<dyn BackendFactory>)>,
    /// The factories' combined backends, asked in turn before the limits one by one.
    combined: Vec<Arc<dyn CombinedBackend>>,
    ledger: Option<Arc<Ledger>>,
    /// Decides the quota instead of `ledger.record` when set.
    quota_store: Option<Arc<dyn QuotaStore>>,
    revoked: papaya::HashMap<u128, KeyRef, ahash::RandomState>,
    /// A 1,024-bit filter over the revoked values (see [`quick_bit`]): a decision whose
    /// value's bit is clear skips the lookup. Bits are set by revocations and never
    /// cleared (a restored value's bit only costs later lookups).
    revoked_filter: [AtomicU64; 16],
    events_tx: Sender<Event>,
    events_rx: Receiver<Event>,
    metrics: EngineMetrics,
    /// Serializes reloads.
    reload: std::sync::Mutex<()>,
    generation: AtomicU64,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.compiled.load();
        f.debug_struct("Engine")
            .field("generation", &c.generation)
            .field(
                "limits",
                &c.limits.iter().map(|l| &l.spec.name).collect::<Vec<_>>(),
            )
            .field("quota", &self.ledger.is_some())
            .field("revoked", &self.revoked.len())
            .finish()
    }
}

/// Builds an [`Engine`]: the policy, extra backends, the event channel's size.
pub struct EngineBuilder {
    policy: Policy,
    factories: Vec<(String, Arc<dyn BackendFactory>)>,
    quota_store: Option<Arc<dyn QuotaStore>>,
    event_capacity: usize,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("limits", &self.policy.limits.len())
            .field(
                "backends",
                &self.factories.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("quota_store", &self.quota_store)
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl EngineBuilder {
    /// Registers the backend that limits with `backend = name` use.
    pub fn backend(mut self, name: impl Into<String>, factory: Arc<dyn BackendFactory>) -> Self {
        self.factories.push((name.into(), factory));
        self
    }

    /// Decides the policy's quota with `store` instead of the engine's own ledger (see
    /// [`QuotaStore`]). Without a `[quota]` section in the policy it is never asked.
    pub fn quota_store(mut self, store: Arc<dyn QuotaStore>) -> Self {
        self.quota_store = Some(store);
        self
    }

    /// How many undrained events the channel holds before dropping (default 4096).
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n.max(1);
        self
    }

    /// Builds the engine: validates the policy, creates each limit's state, opens the
    /// quota journal and registers the policy's companies.
    pub fn build(self) -> Result<Engine, EngineError> {
        self.policy.validate()?;
        let (events_tx, events_rx) = crossbeam_channel::bounded(self.event_capacity);
        let clock = UnixClock::new();
        let ledger = match &self.policy.quota {
            None => None,
            Some(q) => Some(Arc::new(open_ledger(q)?)),
        };
        let engine = Engine {
            compiled: ArcSwap::from_pointee(Compiled {
                generation: 0,
                policy: Policy::default(),
                limits: Vec::new(),
                revocation: None,
                quota: None,
                remote_limits: false,
            }),
            clock,
            hasher: Fingerprinter::new(),
            combined: self
                .factories
                .iter()
                .filter_map(|(_, f)| f.combined())
                .collect(),
            factories: self.factories,
            ledger,
            quota_store: self.quota_store,
            revoked: papaya::HashMap::with_hasher(ahash::RandomState::new()),
            revoked_filter: Default::default(),
            events_tx,
            events_rx,
            metrics: EngineMetrics::default(),
            reload: std::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        };
        engine.reload_valid(self.policy)?;
        Ok(engine)
    }
}

fn open_ledger(q: &QuotaSpec) -> Result<Ledger, EngineError> {
    let config = QuotaConfig {
        plans: q.plans.clone(),
        period: q.period.clone(),
        warning_percent: q.warning_percent,
        hard_cap_percent: q.hard_cap_percent,
    };
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
fn policy_item(name: &str, kind: AlgorithmKind, rate: Rate) -> String {
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

impl Engine {
    /// An engine for `policy` with the in-memory backend only.
    pub fn new(policy: Policy) -> Result<Engine, EngineError> {
        Engine::builder(policy).build()
    }

    /// A builder for `policy`.
    pub fn builder(policy: Policy) -> EngineBuilder {
        EngineBuilder {
            policy,
            factories: Vec::new(),
            quota_store: None,
            event_capacity: 4096,
        }
    }

    /// An engine for the policy file at `path`, and the deprecated fields it read.
    pub fn from_file(path: impl AsRef<Path>) -> Result<(Engine, Vec<PolicyWarning>), EngineError> {
        let (policy, warnings) = Policy::from_file(path)?;
        Ok((Engine::new(policy)?, warnings))
    }

    /// The engine's clock: Unix nanoseconds, never going backwards.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The quota's ledger, if the policy has a quota (reports, reservations, runtime
    /// changes to companies, users and keys).
    pub fn ledger(&self) -> Option<&Arc<Ledger>> {
        self.ledger.as_ref()
    }

    /// Reserves `cost` of `key`'s quota for a call whose final cost is known only
    /// afterwards, at `now` (Unix nanoseconds; `None`: the engine's clock), through the
    /// quota store if the engine has one (the fleet sees the reservation). It counts at
    /// once; settle it with [`commit_quota`](Self::commit_quota) or
    /// [`refund_quota`](Self::refund_quota) (or a [`QuotaSettler`], which may outlive
    /// the engine). A notice it raises goes to the [event channel](Self::events) like
    /// those of [`decide`](Self::decide). `None` when the policy has no quota.
    pub fn reserve_quota(
        &self,
        key: &str,
        cost: u64,
        now: Option<u64>,
    ) -> Option<Result<Reservation, QuotaError>> {
        let ledger = self.ledger.as_ref()?;
        let now = now.unwrap_or_else(|| self.now());
        let result = match &self.quota_store {
            Some(store) => store.reserve(ledger, key, cost, now),
            None => ledger.reserve(key, cost, i128::from(now)),
        };
        if matches!(&result, Ok(r) if r.decision.event.is_some()) {
            for e in ledger.drain_events() {
                self.emit(Event::Quota(e));
            }
        }
        Some(result)
    }

    /// Settles a reservation of [`reserve_quota`](Self::reserve_quota) at its final
    /// cost, once per idempotency key and period (through the quota store, if any).
    /// `None` when the policy has no quota.
    pub fn commit_quota(
        &self,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
    ) -> Option<CommitOutcome> {
        Some(self.quota_settler()?.commit(r, final_cost, idempotency_key))
    }

    /// Releases a reservation of [`reserve_quota`](Self::reserve_quota) without
    /// counting it. Does nothing when the policy has no quota.
    pub fn refund_quota(&self, r: Reservation) {
        if let Some(s) = self.quota_settler() {
            s.refund(r);
        }
    }

    /// What settles this engine's reservations, kept alive apart from the engine (a
    /// C caller's reservation may outlive its engine). `None` when the policy has no
    /// quota.
    pub fn quota_settler(&self) -> Option<QuotaSettler> {
        Some(QuotaSettler {
            ledger: Arc::clone(self.ledger.as_ref()?),
            store: self.quota_store.clone(),
        })
    }

    /// Whether a decision may wait on a store outside the process: a limit on a backend
    /// other than `"memory"`, or the quota on a [`QuotaStore`] (as far as the engine can
    /// tell: a registered backend may be in memory too). Async callers run such
    /// decisions where blocking is allowed (tollgate-async does).
    pub fn decides_remotely(&self) -> bool {
        let c = self.compiled.load();
        c.remote_limits || (c.quota.is_some() && self.quota_store.is_some())
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.compiled.load().policy.clone()
    }

    /// The names of the limits in force, in policy order.
    pub fn limit_names(&self) -> Vec<String> {
        self.compiled
            .load()
            .limits
            .iter()
            .map(|l| l.spec.name.clone())
            .collect()
    }

    fn build_backend(
        &self,
        spec: &LimitSpec,
        rate: Rate,
        previous: Option<&Backend>,
        now: u64,
    ) -> Result<(Backend, bool), EngineError> {
        let err = |message: String| EngineError::Limit {
            limit: spec.name.clone(),
            message,
        };
        if spec.backend == "memory" {
            if let Some(Backend::Memory(old)) = previous {
                if let Some(carried) = old.carry_over(spec.algorithm, rate, now) {
                    return Ok((Backend::Memory(Arc::new(carried)), true));
                }
            }
            let m = MemoryBackend::new(spec.algorithm, rate, spec.capacity)
                .map_err(|e| err(e.to_string()))?;
            return Ok((Backend::Memory(Arc::new(m)), false));
        }
        let factory = self
            .factories
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

    /// Replaces the policy without a restart. See the [module docs](self) for what
    /// happens to each limit's state. On error nothing changes.
    pub fn reload(&self, policy: Policy) -> Result<ReloadReport, EngineError> {
        policy.validate()?;
        self.reload_valid(policy)
    }

    /// [`reload`](Self::reload) of a policy already validated.
    fn reload_valid(&self, policy: Policy) -> Result<ReloadReport, EngineError> {
        let _serial = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.compiled.load_full();
        let now = self.now();
        let mut report = ReloadReport::default();
        let mut limits = Vec::with_capacity(policy.limits.len());
        for spec in &policy.limits {
            let prev = old.limits.iter().find(|l| l.spec.name == spec.name);
            let metrics = prev.map_or_else(Arc::default, |p| Arc::clone(&p.metrics));
            if let Some(p) = prev.filter(|p| p.spec == *spec) {
                limits.push(CompiledLimit {
                    spec: spec.clone(),
                    backend: p.backend.clone(),
                    overrides: p
                        .overrides
                        .iter()
                        .map(|o| CompiledOverride {
                            matches: o.matches.clone(),
                            rate: o.rate,
                            backend: o.backend.clone(),
                        })
                        .collect(),
                    metrics,
                    policy_item: p.policy_item.clone(),
                });
                report.kept.push(spec.name.clone());
                continue;
            }
            let same_backend = prev.filter(|p| p.spec.backend == spec.backend);
            let (backend, carried) =
                self.build_backend(spec, spec.rate, same_backend.map(|p| &p.backend), now)?;
            let mut overrides = Vec::new();
            for o in &spec.overrides {
                let matches: Vec<(usize, String)> = o
                    .matches
                    .iter()
                    .map(|(attr, v)| {
                        let pos = spec
                            .key
                            .iter()
                            .position(|a| *a == Attr::named(attr))
                            .unwrap_or(0);
                        (pos, v.clone())
                    })
                    .collect();
                let prev_override = same_backend.and_then(|p| {
                    p.overrides
                        .iter()
                        .find(|po| po.matches == matches)
                        .map(|po| &po.backend)
                });
                let (b, _) = self.build_backend(spec, o.rate, prev_override, now)?;
                overrides.push(CompiledOverride {
                    matches,
                    rate: o.rate,
                    backend: b,
                });
            }
            if prev.is_none() || !carried {
                report.fresh.push(spec.name.clone());
            } else {
                report.carried.push(spec.name.clone());
            }
            limits.push(CompiledLimit {
                policy_item: policy_item(&spec.name, spec.algorithm, spec.rate),
                spec: spec.clone(),
                backend,
                overrides,
                metrics,
            });
        }
        for l in &old.limits {
            if !policy.limits.iter().any(|n| n.name == l.spec.name) {
                report.removed.push(l.spec.name.clone());
            }
        }
        let revocation = match &policy.revocation {
            None => None,
            Some(r) => {
                let rate = Rate::new(u64::from(r.denials), r.window.0)
                    .and_then(|rate| rate.with_burst(u64::from(r.denials.max(2) - 1)))
                    .map_err(|e| EngineError::Limit {
                        limit: "revocation".into(),
                        message: e.to_string(),
                    })?;
                let same = old.revocation.as_ref().filter(|o| {
                    o.attr == r.key && o.denials == r.denials && o.window == r.window.0
                });
                let offenders = match same {
                    Some(o) => o
                        .offenders
                        .carry_over(AlgorithmKind::Gcra, rate, now)
                        .expect("same algorithm"),
                    None => MemoryBackend::new(AlgorithmKind::Gcra, rate, 65_536).map_err(|e| {
                        EngineError::Limit {
                            limit: "revocation".into(),
                            message: e.to_string(),
                        }
                    })?,
                };
                Some(CompiledRevocation {
                    attr: r.key.clone(),
                    denials: r.denials,
                    window: r.window.0,
                    offenders,
                })
            }
        };
        let quota = match (&policy.quota, &self.ledger) {
            (Some(q), Some(ledger)) => {
                if let Some(old_q) = &old.quota {
                    if old_q.spec.plans != q.plans
                        || old_q.spec.period.kind() != q.period.kind()
                        || old_q.spec.warning_percent != q.warning_percent
                        || old_q.spec.hard_cap_percent != q.hard_cap_percent
                        || old_q.spec.journal != q.journal
                    {
                        report.notes.push(
                            "quota plans, period, thresholds or journal changed: they take \
                             effect at the next restart; companies, users and keys were updated"
                                .into(),
                        );
                    }
                }
                register_companies(ledger, q, now)?;
                Some(CompiledQuota {
                    attr: q.key.clone(),
                    cost: q.cost,
                    unknown_key: q.unknown_key,
                    spec: q.clone(),
                })
            }
            (Some(_), None) => {
                report
                    .notes
                    .push("a quota section was added: it takes effect at the next restart".into());
                None
            }
            (None, _) => None,
        };
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let remote_limits = limits.iter().any(|l| l.spec.backend != "memory");
        self.compiled.store(Arc::new(Compiled {
            generation,
            policy,
            limits,
            revocation,
            quota,
            remote_limits,
        }));
        Ok(report)
    }

    /// Reloads the policy file at `path`.
    pub fn reload_file(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<(ReloadReport, Vec<PolicyWarning>), EngineError> {
        let (policy, warnings) = Policy::from_file(path)?;
        Ok((self.reload(policy)?, warnings))
    }

    /// Decides `req`. See the [module docs](self).
    pub fn decide(&self, req: &Request<'_>) -> EngineDecision {
        self.decide_with::<true>(req)
    }

    /// [`decide`](Self::decide) for a caller that waits out a [`Reason::Limited`]
    /// answer and asks again (tollgate-async's `until_ready`) instead of refusing the
    /// request: such a denial does not count towards revoking the request's token (a
    /// waiter is not a repeat offender). Metrics count it as `decide` does.
    pub fn decide_waiting(&self, req: &Request<'_>) -> EngineDecision {
        self.decide_with::<false>(req)
    }

    /// Holds back every enforced limit that applies to `req` (its class, its key, its
    /// override) until `until` (Unix nanoseconds): none admits a request before then.
    /// Returns how many limits were held; limits whose backend cannot hold (see
    /// [`LimitBackend::hold_until`]) are skipped. Shadow limits are left alone.
    ///
    /// Client-side pacing (tollgate-async) calls this when the API it calls answers 429
    /// with `Retry-After` or a `RateLimit` header with `r=0`, so that later calls wait
    /// instead of being refused by the provider.
    pub fn hold(&self, req: &Request<'_>, until: u64) -> usize {
        let now = req.now.unwrap_or_else(|| self.clock.now());
        let c = self.compiled.load();
        let class = c.policy.classes.class_of(req.method.unwrap_or(""));
        let mut held = 0;
        for l in c
            .limits
            .iter()
            .filter(|l| !l.spec.shadow && l.spec.applies_to(class))
        {
            let mut buf = [""; MAX_KEY_ATTRS];
            let (parts, over) = l.key_parts(req, &mut buf);
            let key = LimitKey {
                hash: self.hasher.of_parts(parts),
                parts,
            };
            if l.backend_for(over).get().hold_until(&key, until, now) {
                held += 1;
            }
        }
        held
    }

    /// The combined backends' answer for `req`'s limits and quota call, if one gives it.
    #[cold]
    fn combined_decision(
        &self,
        c: &Compiled,
        req: &Request<'_>,
        class: &str,
        now: u64,
    ) -> Option<CombinedDecision> {
        let applying: Vec<&CompiledLimit> = c
            .limits
            .iter()
            .filter(|l| l.spec.applies_to(class))
            .collect();
        let mut bufs = vec![[""; MAX_KEY_ATTRS]; applying.len()];
        let calls: Vec<LimitCall<'_>> = applying
            .iter()
            .zip(bufs.iter_mut())
            .map(|(l, buf)| {
                let (parts, over) = l.key_parts(req, buf);
                LimitCall {
                    backend: l.backend_for(over).get(),
                    key: LimitKey {
                        hash: self.hasher.of_parts(parts),
                        parts,
                    },
                    cost: req.cost.unwrap_or_else(|| l.spec.cost_of(class)),
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
    fn decide_with<const COUNT_DENIALS: bool>(&self, req: &Request<'_>) -> EngineDecision {
        let now = req.now.unwrap_or_else(|| self.clock.now());
        let c = self.compiled.load();
        if let Some(rev) = &c.revocation {
            if let Some(v) = req.get(&rev.attr).filter(|v| self.maybe_revoked(v)) {
                if self.revoked.pin().contains_key(&self.hasher.of_parts(&[v])) {
                    self.metrics.revoked.add(1);
                    return EngineDecision::refused(Reason::Revoked, c.generation);
                }
            }
        }
        let class = c.policy.classes.class_of(req.method.unwrap_or(""));
        let mut taken = TakenList::new();
        let mut best: Option<(usize, Decision)> = None;
        let mut shadow_denied = false;
        let mut degraded = false;
        // A combined backend's answers stand in for the first limits' acquires (and
        // the quota call's); the rest are asked one by one.
        let (mut pre_limits, mut pre_quota) = if self.combined.is_empty() || !c.remote_limits {
            (None, None)
        } else {
            match self.combined_decision(&c, req, class, now) {
                Some(d) => (Some(d.limits.into_iter()), d.quota),
                None => (None, None),
            }
        };
        for (i, l) in c.limits.iter().enumerate() {
            if !l.spec.applies_to(class) {
                continue;
            }
            let cost = req.cost.unwrap_or_else(|| l.spec.cost_of(class));
            let mut buf = [""; MAX_KEY_ATTRS];
            let (parts, over) = l.key_parts(req, &mut buf);
            let backend = l.backend_for(over);
            let key = LimitKey {
                hash: self.hasher.of_parts(parts),
                parts,
            };
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
                        if !l.spec.shadow && best.map_or(true, |(_, b)| d.remaining < b.remaining) {
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
                        return EngineDecision {
                            reason: Reason::Limited,
                            decided_by: Some(i),
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
                (Some(key), None) => match &self.quota_store {
                    None => ledger.record(key, q.cost, i128::from(now)),
                    Some(store) => store.record(ledger, key, q.cost, now),
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
                    let reason = match e {
                        QuotaError::DisabledUser { .. } => {
                            self.metrics.revoked.add(1);
                            Reason::Revoked
                        }
                        QuotaError::UnknownKey(_) => {
                            self.metrics.unknown_key.add(1);
                            Reason::UnknownKey
                        }
                        _ => {
                            self.metrics.errors.add(1);
                            Reason::Unavailable
                        }
                    };
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
        let class = c.policy.classes.class_of(req.method.unwrap_or(""));
        let mut out = Vec::new();
        for l in c.limits.iter().filter(|l| l.spec.applies_to(class)) {
            let cost = req.cost.unwrap_or_else(|| l.spec.cost_of(class));
            let mut buf = [""; MAX_KEY_ATTRS];
            let (parts, over) = l.key_parts(req, &mut buf);
            let backend = l.backend_for(over);
            let key = LimitKey {
                hash: self.hasher.of_parts(parts),
                parts,
            };
            let mut d = backend.get().peek(&key, cost, now);
            if let Err(BackendError::Unavailable(_)) = d {
                if let Some(r) = backend.on_unavailable(&key, cost, now, false) {
                    d = r.map(|(d, _)| d);
                }
            }
            out.push((l.spec.name.clone(), d));
        }
        out
    }

    /// Gives back everything `taken` holds, newest first.
    #[cold]
    fn undo_all(&self, c: &Compiled, req: &Request<'_>, taken: &TakenList, now: u64) {
        for t in taken.iter().rev() {
            let l = &c.limits[t.limit as usize];
            let mut buf = [""; MAX_KEY_ATTRS];
            let (parts, _) = l.key_parts(req, &mut buf);
            let key = LimitKey {
                hash: self.hasher.of_parts(parts),
                parts,
            };
            let over = t.over.checked_sub(1).map(|o| o as usize);
            let backend = l.backend_for(over);
            match backend.fallback().filter(|_| t.fallback) {
                Some(local) => local.undo(&key, t.undo, now),
                None => backend.get().undo(&key, t.undo, now),
            }
        }
    }

    /// Counts a denial towards revoking the request's revocation attribute; returns
    /// whether this denial revoked it.
    #[cold]
    fn count_denial(&self, c: &Compiled, req: &Request<'_>, now: u64) -> bool {
        let Some(rev) = &c.revocation else {
            return false;
        };
        let Some(v) = req.get(&rev.attr) else {
            return false;
        };
        let parts = [v];
        let key = LimitKey {
            hash: self.hasher.of_parts(&parts),
            parts: &parts,
        };
        // With a budget of `denials - 1` free denials per window, the limiter refuses
        // the `denials`-th denial in a window: that one revokes.
        let over = rev.denials <= 1
            || match rev.offenders.acquire(&key, 1, now) {
                Ok((d, _)) => !d.allowed(),
                Err(_) => true,
            };
        over && self.revoke_inner(&rev.attr, v, true)
    }

    fn revoke_inner(&self, attr: &Attr, value: &str, automatic: bool) -> bool {
        let fresh = self
            .revoked
            .pin()
            .try_insert(self.hasher.of_parts(&[value]), KeyRef::of(value))
            .is_ok();
        if fresh {
            let bit = quick_bit(value);
            self.revoked_filter[bit / 64].fetch_or(1 << (bit % 64), Ordering::Release);
            if automatic {
                self.metrics.revocations.add(1);
            }
            self.emit(Event::Revoked {
                attribute: attr.name().to_owned(),
                key: KeyRef::of(value),
                automatic,
            });
        }
        fresh
    }

    /// Whether `value` may be revoked: false means certainly not.
    #[inline]
    fn maybe_revoked(&self, value: &str) -> bool {
        let bit = quick_bit(value);
        self.revoked_filter[bit / 64].load(Ordering::Acquire) & (1 << (bit % 64)) != 0
    }

    /// The revocation attribute (token by default, or as the policy says).
    fn revocation_attr(&self) -> Attr {
        self.compiled
            .load()
            .revocation
            .as_ref()
            .map_or(Attr::Token, |r| r.attr.clone())
    }

    /// Revokes `value` of the revocation attribute (a token, by default): its requests
    /// are refused with [`Reason::Revoked`] until [`restore`](Self::restore)d. Returns
    /// whether it was not revoked already. Raises [`Event::Revoked`].
    ///
    /// Revocation is checked only when the policy has a `[revocation]` section.
    pub fn revoke(&self, value: &str) -> bool {
        self.revoke_inner(&self.revocation_attr(), value, false)
    }

    /// Restores a revoked value and forgets its denials. Returns whether it was revoked.
    pub fn restore(&self, value: &str) -> bool {
        let hash = self.hasher.of_parts(&[value]);
        let was = self.revoked.pin().remove(&hash).is_some();
        let c = self.compiled.load();
        if let Some(rev) = &c.revocation {
            let parts = [value];
            rev.offenders.reset(&LimitKey {
                hash,
                parts: &parts,
            });
        }
        if was {
            self.emit(Event::Restored {
                attribute: self.revocation_attr().name().to_owned(),
                key: KeyRef::of(value),
            });
        }
        was
    }

    /// Whether `value` is revoked.
    pub fn is_revoked(&self, value: &str) -> bool {
        self.revoked
            .pin()
            .contains_key(&self.hasher.of_parts(&[value]))
    }

    /// The revoked values, redacted.
    pub fn revoked(&self) -> Vec<KeyRef> {
        let mut all: Vec<KeyRef> = self.revoked.pin().values().cloned().collect();
        all.sort();
        all
    }

    fn emit(&self, e: Event) {
        match self.events_tx.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.events_dropped.add(1)
            }
        }
    }

    /// The event channel: receive notices and revocations from any thread, without
    /// blocking decisions.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events_rx
    }

    /// Takes every pending event.
    pub fn drain_events(&self) -> Vec<Event> {
        self.events_rx.try_iter().collect()
    }

    /// The counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        let c = self.compiled.load();
        let limits = c
            .limits
            .iter()
            .map(|l| LimitCounts {
                limit: l.spec.name.clone(),
                shadow: l.spec.shadow,
                allowed: l.metrics.allowed.get(),
                denied: l.metrics.denied.get(),
                shadow_denied: l.metrics.shadow_denied.get(),
                errors: l.metrics.errors.get(),
                revoked: l.metrics.revoked.get(),
                failure_policy: l.metrics.failure_policy.get(),
            })
            .collect();
        self.metrics.snapshot(limits)
    }

    /// The counters as Prometheus text.
    pub fn prometheus(&self) -> String {
        self.metrics().to_prometheus()
    }

    /// The response header values for `d`. The deciding limit names the policy; a
    /// refusal by the quota names `"quota"`. Refused requests that may retry get
    /// `Retry-After` (seconds, rounded up).
    pub fn headers(&self, d: &EngineDecision) -> RateLimitHeaders {
        let c = self.compiled.load();
        // Built by hand rather than with `format!`: this runs for every response of an
        // HTTP layer, and the formatting machinery cost as much as the decision.
        let mut h = RateLimitHeaders {
            retry_after: d.retry_after_secs().map(|s| {
                let mut v = String::with_capacity(20);
                push_u64(&mut v, s);
                v
            }),
            ..RateLimitHeaders::default()
        };
        let secs = |ns: u64| ns.div_ceil(1_000_000_000);
        if let Some(l) = d
            .decided_by
            .filter(|_| d.generation == c.generation)
            .and_then(|i| c.limits.get(i))
        {
            h.policy = Some(l.policy_item.clone());
            // "<name>";r=<remaining>;t=<seconds>
            let mut v = String::with_capacity(l.spec.name.len() + 48);
            v.push('"');
            v.push_str(&l.spec.name);
            v.push_str("\";r=");
            push_u64(&mut v, d.remaining);
            v.push_str(";t=");
            push_u64(&mut v, secs(d.reset_after));
            h.ratelimit = Some(v);
        } else if let (Some(q), Reason::QuotaExceeded) = (&d.quota, d.reason) {
            let mut policy = String::with_capacity(32);
            policy.push_str("\"quota\";q=");
            push_u64(&mut policy, q.limit);
            let mut ratelimit = String::with_capacity(32);
            ratelimit.push_str("\"quota\";r=0;t=");
            push_u64(&mut ratelimit, secs(d.reset_after));
            h.policy = Some(policy);
            h.ratelimit = Some(ratelimit);
        }
        h
    }
}

/// Appends `n` in decimal.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[i..]).expect("ASCII digits"));
}

/// A cheap, unkeyed bit index (0..1024) of a value, for the revocation filter: its length
/// and its first and last eight bytes, multiplied together. A value crafted to share a
/// revoked value's bit only costs itself a full lookup.
#[inline]
fn quick_bit(value: &str) -> usize {
    let b = value.as_bytes();
    let word = |s: &[u8]| {
        let mut w = [0u8; 8];
        w[..s.len()].copy_from_slice(s);
        u64::from_le_bytes(w)
    };
    let head = word(&b[..b.len().min(8)]);
    let tail = word(&b[b.len().saturating_sub(8)..]);
    let x = (head ^ tail.rotate_left(29) ^ b.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 54) as usize
}

fn register_companies(ledger: &Ledger, q: &QuotaSpec, now: u64) -> Result<(), EngineError> {
    let now = i128::from(now);
    for c in &q.companies {
        ledger
            .upsert_company(c.company(), c.time_zone.as_deref(), now)
            .map_err(EngineError::Quota)?;
        for u in &c.users {
            ledger
                .add_user(&u.id, &c.id, now)
                .map_err(EngineError::Quota)?;
            ledger
                .set_user_disabled(&u.id, u.disabled)
                .map_err(EngineError::Quota)?;
            for k in &u.keys {
                match ledger.add_key(k, &u.id) {
                    Ok(()) | Err(QuotaError::DuplicateKey(_)) => {}
                    Err(e) => return Err(EngineError::Quota(e)),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn push_u64_writes_decimal() {
        for n in [0, 1, 9, 10, 99, 100, 1_000_000_007, u64::MAX - 1, u64::MAX] {
            let mut s = String::from("x");
            push_u64(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }

    proptest! {
        /// The header values are exactly what `format!` would write, for any remaining
        /// count and reset time, limited or refused by the quota.
        #[test]
        fn headers_match_the_formatted_reference(
            remaining in any::<u64>(),
            reset_after in any::<u64>(),
            retry_after in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
            quota_limit in any::<u64>(),
        ) {
            let e = Engine::new(
                Policy::from_toml(
                    "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"5/s\"\n",
                )
                .unwrap()
                .0,
            )
            .unwrap();
            let secs = |ns: u64| ns.div_ceil(1_000_000_000);
            let mut d = e.decide(&Request::new().token("t").at(1));
            d.remaining = remaining;
            d.reset_after = reset_after;
            d.retry_after = retry_after;
            let h = e.headers(&d);
            prop_assert_eq!(h.retry_after, d.retry_after_secs().map(|s| format!("{s}")));
            prop_assert_eq!(
                h.ratelimit,
                Some(format!("\"per-token\";r={remaining};t={}", secs(reset_after)))
            );
            d.decided_by = None;
            d.reason = Reason::QuotaExceeded;
            d.quota = Some(QuotaStatus {
                outcome: Outcome::Refused,
                used: quota_limit,
                limit: quota_limit,
                resets_at_unix: 0,
            });
            let h = e.headers(&d);
            prop_assert_eq!(h.policy, Some(format!("\"quota\";q={quota_limit}")));
            prop_assert_eq!(h.ratelimit, Some(format!("\"quota\";r=0;t={}", secs(reset_after))));
        }
    }
}
