//! The engine value: what it holds, how it is built, and its read-only accessors.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use tollgate_core::{Clock, Fingerprinter, UnixClock};
use tollgate_quota::journal::RevocationKey;
use tollgate_quota::{Ledger, UsageSink};

use super::compile::{open_ledger, Compiled, Revoked};
use super::error::EngineError;
use super::events::Event;
use super::extend::{BackendFactory, CombinedBackend, QuotaStore};
use super::fleet::RevocationSync;
use super::shared_quota::SharedQuota;
use super::shared_revoked::SharedRevoked;
use crate::metrics::EngineMetrics;
use crate::policy::{Policy, PolicyWarning};
use crate::shared_state::{quota_capacity, revoked_capacity, SharedPlan};

/// The engine. `Send + Sync`: share it behind an `Arc` across all threads.
pub struct Engine {
    pub(super) compiled: ArcSwap<Compiled>,
    pub(super) clock: UnixClock,
    pub(super) hasher: Fingerprinter,
    /// The host-shared state (`[state] shared`), fixed for the engine's life.
    pub(super) shared: Option<SharedPlan>,
    /// Under `[state] shared`: the revoked set every process of the host sees.
    pub(super) shared_revoked: Option<SharedRevoked>,
    /// With a quota journal: the journal's revocation key, under which the revoked set
    /// (and the offender table) key values, so that the journal's `revocations` rows
    /// match them after a restart (see [`Engine::token_hash`]).
    pub(super) revocation_key: Option<RevocationKey>,
    pub(super) factories: Vec<(String, Arc<dyn BackendFactory>)>,
    /// The factories' combined backends, asked in turn before the limits one by one.
    pub(super) combined: Vec<Arc<dyn CombinedBackend>>,
    pub(super) ledger: Option<Arc<Ledger>>,
    /// Decides the quota instead of `ledger.record` when set.
    pub(super) quota_store: Option<Arc<dyn QuotaStore>>,
    /// The revoked values (by [`Engine::token_hash`]) and until when.
    pub(super) revoked: papaya::HashMap<u128, Revoked, ahash::RandomState>,
    /// When expired suspensions were last swept out of a full revoked set.
    pub(super) last_sweep: AtomicU64,
    /// A 1,024-bit filter over the revoked values (see [`quick_bit`]): a decision whose
    /// value's bit is clear skips the lookup. Bits are set by revocations and never
    /// cleared (a restored value's bit only costs later lookups).
    pub(super) revoked_filter: [AtomicU64; 16],
    /// Whether anything was ever revoked (until then a decision skips the filter).
    pub(super) revoked_any: AtomicBool,
    pub(super) events_tx: Sender<Event>,
    pub(super) events_rx: Receiver<Event>,
    pub(super) metrics: EngineMetrics,
    /// Serializes reloads.
    pub(super) reload: std::sync::Mutex<()>,
    pub(super) generation: AtomicU64,
    /// Requests refused because the journal failed for longer than `fail_closed_after`.
    pub(super) journal_refused: crate::metrics::StripedCounter,
    /// Events the journal's writer thread could not send (the channel was full).
    pub(super) journal_events_dropped: Arc<AtomicU64>,
    /// What [`Engine::replay_admin`] noted at start.
    pub(super) journal_conflicts: Vec<String>,
    /// The fleet's revocation sync, if set (see [`super::fleet`]).
    pub(super) fleet: Option<super::fleet::Fleet>,
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
    pub(super) policy: Policy,
    pub(super) factories: Vec<(String, Arc<dyn BackendFactory>)>,
    pub(super) quota_store: Option<Arc<dyn QuotaStore>>,
    pub(super) event_capacity: usize,
    pub(super) revocation_sync: Option<Arc<dyn RevocationSync>>,
    pub(super) usage_sink: Option<Arc<dyn UsageSink>>,
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
            .field("revocation_sync", &self.revocation_sync)
            .field("usage_sink", &self.usage_sink.is_some())
            .finish()
    }
}

impl EngineBuilder {
    /// Keeps the limits' state in the host-shared state at `prefix` (what the policy's
    /// `[state] shared = "..."` does; this wins over the file's): every process that
    /// builds its engine with the same prefix and policy decides each key of a
    /// `"memory"` limit against one state (see [`crate::shared_state`]).
    pub fn shared_state(mut self, prefix: impl Into<std::path::PathBuf>) -> Self {
        self.policy.state.shared = Some(prefix.into());
        self
    }

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

    /// Shares the revoked set with a fleet through `sync` (tollgate-redis's
    /// `RedisRevocations`): every revocation, suspension and restoration made by any
    /// engine of the fleet reaches this one, and this one's reach the others (see
    /// [`fleet`](super::fleet)). The revoked set is then keyed by the sync's fleet
    /// fingerprint (the journal's rows too). [`build`](Self::build) waits for the sync's
    /// first read of the fleet's set (with tollgate-redis: at most one connect and one
    /// response timeout of the store; Redis down, the engine starts from its journal,
    /// or empty, and catches up when Redis answers).
    pub fn revocation_sync(mut self, sync: Arc<dyn RevocationSync>) -> Self {
        self.revocation_sync = Some(sync);
        self
    }

    /// Hands every counted move of the quota's usage (a call, a commit, a refund) to
    /// `sink`, on the deciding thread, off the decision's path: the sink queues it and
    /// returns (see [`UsageSink`]; `tollgate_postgres::PgLedgerSink` writes a fleet's
    /// billing ledger). Without a `[quota]` section in the policy it is never called.
    pub fn usage_sink(mut self, sink: Arc<dyn UsageSink>) -> Self {
        self.usage_sink = Some(sink);
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
        let shared = match &self.policy.state.shared {
            None => None,
            Some(prefix) => Some(SharedPlan::open(prefix).map_err(EngineError::State)?),
        };
        let shared_revoked = match &shared {
            None => None,
            Some(plan) => Some(
                SharedRevoked::open(&plan.revoked_region(), revoked_capacity(&self.policy))
                    .map_err(EngineError::State)?,
            ),
        };
        let mut quota_store = self.quota_store;
        if let (Some(plan), Some(q), None) = (&shared, &self.policy.quota, &quota_store) {
            if q.journal.is_some() {
                return Err(EngineError::State(
                    "[state] shared with a [quota] journal: several processes would write \
                     one journal, and one journal writer per host is not built yet; \
                     drop the journal or the shared state"
                        .into(),
                ));
            }
            let store = SharedQuota::open(
                &plan.quota_region(),
                quota_capacity(q.companies.len()),
                plan.hasher().clone(),
            )
            .map_err(EngineError::State)?;
            quota_store = Some(Arc::new(store));
        }
        let ledger = match &self.policy.quota {
            None => None,
            Some(q) => {
                let mut ledger = open_ledger(q)?;
                if let Some(sink) = self.usage_sink {
                    ledger.set_usage_sink(sink);
                }
                Some(Arc::new(ledger))
            }
        };
        let revocations = match ledger.as_ref().and_then(|l| l.journal()) {
            None => None,
            Some(j) => Some(j.revocations().map_err(EngineError::Journal)?),
        };
        let admin_changes = match ledger.as_ref().and_then(|l| l.journal()) {
            None => Vec::new(),
            Some(j) => j.admin_changes().map_err(EngineError::Journal)?,
        };
        let (revocation_key, restored) = match revocations {
            None => (None, Vec::new()),
            Some((key, rows)) => (Some(key), rows),
        };
        let mut engine = Engine {
            compiled: ArcSwap::from_pointee(Compiled {
                generation: 0,
                policy: Policy::default(),
                classes: Default::default(),
                limits: Vec::new(),
                revocation: None,
                quota: None,
                remote_limits: false,
            }),
            clock,
            hasher: shared
                .as_ref()
                .map_or_else(Fingerprinter::new, |s| s.hasher().clone()),
            shared,
            shared_revoked,
            revocation_key,
            combined: self
                .factories
                .iter()
                .filter_map(|(_, f)| f.combined())
                .collect(),
            factories: self.factories,
            ledger,
            quota_store,
            revoked: papaya::HashMap::with_hasher(ahash::RandomState::new()),
            revoked_filter: Default::default(),
            last_sweep: AtomicU64::new(0),
            revoked_any: AtomicBool::new(false),
            events_tx,
            events_rx,
            metrics: EngineMetrics::default(),
            reload: std::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            journal_refused: Default::default(),
            journal_events_dropped: Arc::new(AtomicU64::new(0)),
            journal_conflicts: Vec::new(),
            fleet: self.revocation_sync.map(super::fleet::Fleet::new),
        };
        engine.watch_journal();
        engine.restore_revocations(restored);
        engine.attach_fleet();
        engine.reload_valid(self.policy)?;
        engine.journal_conflicts = engine.replay_admin(admin_changes);
        Ok(engine)
    }
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
            revocation_sync: None,
            usage_sink: None,
        }
    }

    /// An engine for the policy file at `path`, and the deprecated fields it read.
    pub fn from_file(path: impl AsRef<Path>) -> Result<(Engine, Vec<PolicyWarning>), EngineError> {
        let (policy, warnings) = Policy::from_file(path)?;
        Ok((Engine::new(policy)?, warnings))
    }

    /// What applying the quota journal's administrative changes at start noted: each
    /// change that replaced a different entry of the policy file (the journal's later
    /// change wins over the file's seed) and each that no longer applied (its company or
    /// user is gone from the file, ...). Empty without a journal.
    pub fn journal_conflicts(&self) -> &[String] {
        &self.journal_conflicts
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

    /// Whether a decision may wait on a store outside the process: a limit on a backend
    /// other than `"memory"`, or the quota on a [`QuotaStore`] (as far as the engine can
    /// tell: a registered backend may be in memory too). Async callers run such
    /// decisions where blocking is allowed (tollgate-async does).
    pub fn decides_remotely(&self) -> bool {
        let c = self.compiled.load();
        c.remote_limits
            || (c.quota.is_some() && self.quota_store.as_ref().is_some_and(|q| q.is_remote()))
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
}
