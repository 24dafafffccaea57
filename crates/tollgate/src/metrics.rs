//! The engine's metrics: counters per limit and for the engine, gauges of the state
//! it holds, a decision-latency histogram and the health of remote backends, readable
//! in code ([`MetricsSnapshot`]), as Prometheus text ([`MetricsSnapshot::to_prometheus`])
//! and, with the `prometheus-client` feature, as a collector in a service's own
//! registry.
//!
//! Counters are striped over a few cache-padded cells, each thread adding to its own,
//! so that threads deciding at once do not fight over one cache line; reading sums the
//! cells.
//!
//! # The families
//!
//! Every family has `# HELP` and `# TYPE`; names follow the Prometheus naming guide
//! (`tollgate_` prefix, counters end in `_total`, durations are `_seconds`). Labels and
//! their bound:
//!
//! | family | type | labels |
//! |---|---|---|
//! | `tollgate_requests_total` | counter | `outcome`: allowed, limited, revoked, quota_exceeded, unknown_key, error |
//! | `tollgate_limit_decisions_total` | counter | `limit`, `shadow` (true/false), `outcome`: allowed, denied, error |
//! | `tollgate_limit_fallback_decisions_total` | counter | `limit` |
//! | `tollgate_limit_revocations_total` | counter | `limit` |
//! | `tollgate_limit_keys`, `tollgate_limit_key_capacity` | gauge | `limit`, `store` (memory, fallback) |
//! | `tollgate_limit_key_evictions_total`, `tollgate_limit_key_displacements_total`, `tollgate_limit_store_full_total` | counter | `limit`, `store` |
//! | `tollgate_revocations_total`, `tollgate_suspensions_total` | counter | `origin`: automatic, operator |
//! | `tollgate_restorations_total`, `tollgate_revocations_refused_total`, `tollgate_revocation_untracked_denials_total` | counter | |
//! | `tollgate_revoked_entries`, `tollgate_revoked_capacity`, `tollgate_offender_entries`, `tollgate_offender_capacity` | gauge | |
//! | `tollgate_quota_used`, `tollgate_quota_limit` | gauge | `company`, `period` |
//! | `tollgate_quota_companies`, `tollgate_quota_series_omitted` | gauge | |
//! | `tollgate_quota_store_decisions_total` | counter | `where`: remote, local, refused |
//! | `tollgate_quota_store_unsent_calls` | gauge | |
//! | `tollgate_backend_up` | gauge | `backend` |
//! | `tollgate_backend_breaker_state` | gauge | `backend`, `state`: closed, open, half_open (1 for the current one) |
//! | `tollgate_backend_calls_total`, `tollgate_backend_errors_total`, `tollgate_backend_short_circuited_total`, `tollgate_backend_connects_total` | counter | `backend` |
//! | `tollgate_backend_call_duration_seconds` | histogram | `backend` |
//! | `tollgate_decision_duration_seconds` | histogram | |
//! | `tollgate_journal_failures_total`, `tollgate_journal_dropped_entries_total`, `tollgate_journal_refused_total` | counter | (only with a journal) |
//! | `tollgate_journal_pending_entries`, `tollgate_journal_last_success_timestamp_seconds`, `tollgate_journal_healthy` | gauge | (only with a journal) |
//! | `tollgate_events_dropped_total` | counter | |
//! | `tollgate_events_pending`, `tollgate_events_capacity` | gauge | |
//! | `tollgate_reloads_total` | counter | `result`: ok, error |
//! | `tollgate_build_info` | gauge | `version` |
//!
//! `limit` takes the policy's limit names (at most 256 limits); `backend` one value per
//! remote store. `company` is bounded by [`MAX_COMPANY_SERIES`]: with more companies,
//! the ones nearest their limit (by `used / limit`) are exported and
//! `tollgate_quota_series_omitted` says how many were left out. Company ids are not
//! secrets; API keys and tokens never appear in any label.
//!
//! The decision-latency histogram is *sampled*: every
//! [`LATENCY_SAMPLE_EVERY`]-th decision of each thread is timed (two clock reads), so
//! its `_count` is about `1/16` of the decisions; `tollgate_requests_total` counts them
//! all.

#[cfg(feature = "prometheus-client")]
mod client;
mod counter;
mod exposition;
mod histogram;

#[cfg(feature = "prometheus-client")]
pub use client::EngineCollector;
use tollgate_quota::Statement;

pub use counter::StripedCounter;
pub use exposition::{render, Family, MetricKind, Sample, SampleValue};
pub use histogram::{Histogram, HistogramSnapshot, BUCKETS};

/// At most this many companies get their own `tollgate_quota_used` / `_limit` series.
pub const MAX_COMPANY_SERIES: usize = 500;

/// One decision in this many (per thread) is timed for
/// `tollgate_decision_duration_seconds`.
pub const LATENCY_SAMPLE_EVERY: u32 = 16;

/// Counters of one limit. They survive policy reloads that keep the limit's name.
#[derive(Debug, Default)]
pub struct LimitMetrics {
    /// Requests this limit allowed, counted when the whole request was allowed (for a
    /// shadow limit: the requests it would have allowed).
    pub allowed: StripedCounter,
    /// Requests this limit denied.
    pub denied: StripedCounter,
    /// Requests a shadow limit would have denied.
    pub shadow_denied: StripedCounter,
    /// Requests this limit could not decide (cost above capacity, store full, backend
    /// unavailable).
    pub errors: StripedCounter,
    /// Revocations this limit's denials triggered.
    pub revoked: StripedCounter,
    /// Decisions the limit's failure policy made because its backend could not decide.
    pub failure_policy: StripedCounter,
}

/// The occupancy and turnover of a limit's in-memory key stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Keys held (including idle ones not yet reused).
    pub keys: u64,
    /// Keys the stores were sized for.
    pub capacity: u64,
    /// Slots reused or swept since the stores were made.
    pub evictions: u64,
    /// Live keys displaced to make room for new ones.
    pub displaced: u64,
    /// Requests answered by the limit's `on_full` because a store was truly full.
    pub full_answers: u64,
}

impl StoreCounts {
    /// The sum of two stores' counts (a limit and its overrides).
    pub fn plus(self, o: StoreCounts) -> StoreCounts {
        StoreCounts {
            keys: self.keys + o.keys,
            capacity: self.capacity + o.capacity,
            evictions: self.evictions + o.evictions,
            displaced: self.displaced + o.displaced,
            full_answers: self.full_answers + o.full_answers,
        }
    }
}

/// A snapshot of one limit's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitCounts {
    /// The limit's name.
    pub limit: String,
    /// Whether it is in shadow mode.
    pub shadow: bool,
    /// See [`LimitMetrics::allowed`].
    pub allowed: u64,
    /// See [`LimitMetrics::denied`].
    pub denied: u64,
    /// See [`LimitMetrics::shadow_denied`].
    pub shadow_denied: u64,
    /// See [`LimitMetrics::errors`].
    pub errors: u64,
    /// See [`LimitMetrics::revoked`].
    pub revoked: u64,
    /// Decisions the limit's failure policy made because its backend could not decide
    /// (a fallback limiter's, or open: see [`FailurePolicy`](crate::policy::FailurePolicy)).
    pub failure_policy: u64,
    /// The limit's in-memory stores (its own and its overrides'), when it keeps state
    /// in memory.
    pub store: Option<StoreCounts>,
    /// The failure policy's fallback limiters, for a remote limit that has them.
    pub fallback_store: Option<StoreCounts>,
}

/// A remote store's circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerStatus {
    /// Calls go to the store.
    Closed,
    /// Calls are kept off the network until the cool-down ends.
    Open,
    /// One trial call is allowed through.
    HalfOpen,
}

impl BreakerStatus {
    /// The `state` label.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerStatus::Closed => "closed",
            BreakerStatus::Open => "open",
            BreakerStatus::HalfOpen => "half_open",
        }
    }
}

/// The health of a remote store behind limits or the quota (a Redis deployment), as
/// its backend reports it ([`LimitBackend::store_health`](crate::backend::LimitBackend::store_health),
/// [`QuotaStore::store_health`](crate::QuotaStore::store_health)). Several limits sharing
/// one store report it once: the engine keeps one entry per `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendHealth {
    /// The store's identity, the `backend` label (e.g. `redis:tollgate`: kind and key
    /// prefix; never a URL or a password).
    pub id: String,
    /// The breaker's state.
    pub breaker: BreakerStatus,
    /// Calls sent to the store.
    pub calls: u64,
    /// Of those, the ones that failed.
    pub errors: u64,
    /// Calls the open breaker kept off the network.
    pub short_circuited: u64,
    /// Connections opened.
    pub connects: u64,
    /// How long calls took (sent calls, failed ones included).
    pub latency: Option<HistogramSnapshot>,
}

/// How a shared quota store decided calls ([`QuotaStore::quota_stats`](crate::QuotaStore::quota_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaStoreStats {
    /// Calls the shared store decided.
    pub remote: u64,
    /// Calls decided locally (the store unavailable, or batching).
    pub local: u64,
    /// Calls refused because the store was unavailable.
    pub refused: u64,
    /// Calls counted locally and not yet in the shared store.
    pub unsent: u64,
}

/// Counts of revocations by origin and kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevocationCounts {
    /// Revoked for repeated denials, until restored.
    pub automatic_revocations: u64,
    /// Suspended for repeated denials (`[revocation] suspend`).
    pub automatic_suspensions: u64,
    /// Revoked by an operator (`Engine::revoke`).
    pub operator_revocations: u64,
    /// Suspended by an operator (`Engine::suspend`).
    pub operator_suspensions: u64,
    /// Restored by an operator while revoked (`Engine::restore`).
    pub restorations: u64,
}

/// Engine-wide counters.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    /// Requests allowed.
    pub allowed: StripedCounter,
    /// Requests denied by a limit.
    pub limited: StripedCounter,
    /// Requests refused because their token is revoked or their user disabled.
    pub revoked: StripedCounter,
    /// Requests refused by the quota's hard cap.
    pub quota_refused: StripedCounter,
    /// Requests refused for an API key the quota does not know.
    pub unknown_key: StripedCounter,
    /// Requests refused because a limit could not decide them.
    pub errors: StripedCounter,
    /// Tokens revoked (until restored) for repeated denials.
    pub revocations: StripedCounter,
    /// Tokens suspended for repeated denials.
    pub auto_suspensions: StripedCounter,
    /// Values revoked by an operator.
    pub operator_revocations: StripedCounter,
    /// Values suspended by an operator.
    pub operator_suspensions: StripedCounter,
    /// Revoked values restored.
    pub restorations: StripedCounter,
    /// Events dropped because the host did not drain them.
    pub events_dropped: StripedCounter,
    /// Denials not counted towards revocation: the offender table had no room.
    pub revocation_untracked: StripedCounter,
    /// Automatic revocations refused: the revoked set was full.
    pub revocations_refused: StripedCounter,
    /// Policy reloads applied.
    pub reloads: StripedCounter,
    /// Policy reloads refused (invalid policy, unreadable file).
    pub reload_failures: StripedCounter,
    /// Sampled decision durations.
    pub decision_latency: Histogram,
}

/// The gauges and remote-store reports the engine gathers when a snapshot is taken.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Entries in the revoked set now.
    pub revoked_entries: u64,
    /// The revoked set's bound for automatic revocations.
    pub revoked_capacity: u64,
    /// Entries in the offender table (tokens with recent denials).
    pub offender_entries: u64,
    /// The offender table's size.
    pub offender_capacity: u64,
    /// Events waiting for the host.
    pub events_pending: u64,
    /// The event channel's bound.
    pub events_capacity: u64,
    /// Remote stores, one per id.
    pub backends: Vec<BackendHealth>,
    /// The shared quota store's counters, when one decides the quota.
    pub quota_store: Option<QuotaStoreStats>,
    /// Every company's statement for its current period so far (sorted by company;
    /// this instance's ledger view).
    pub companies: Vec<Statement>,
    /// The quota journal's health, when the quota is journaled.
    pub journal: Option<JournalGauges>,
}

/// The quota journal's health, for the `tollgate_journal_*` families.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JournalGauges {
    /// Batches that failed to commit (each is retried).
    pub failures: u64,
    /// Entries waiting to be written.
    pub pending: u64,
    /// Appended entries not kept at the pending bound (a ledger writes them again).
    pub dropped: u64,
    /// When a batch last committed, Unix seconds (0: never).
    pub last_success_unix_secs: f64,
    /// Whether the last batch committed.
    pub healthy: bool,
    /// Requests refused because the journal failed longer than `fail_closed_after`.
    pub refused: u64,
}

impl Eq for JournalGauges {}

/// A snapshot of every counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Per limit, in policy order.
    pub limits: Vec<LimitCounts>,
    /// Requests allowed.
    pub allowed: u64,
    /// Requests denied by a limit.
    pub limited: u64,
    /// Requests refused as revoked.
    pub revoked: u64,
    /// Requests refused by the quota's hard cap.
    pub quota_refused: u64,
    /// Requests refused for an unknown API key.
    pub unknown_key: u64,
    /// Requests refused because a limit could not decide.
    pub errors: u64,
    /// Tokens revoked or suspended automatically (for repeated denials).
    pub revocations: u64,
    /// Revocations by origin and kind.
    pub revocation_counts: RevocationCounts,
    /// Events dropped.
    pub events_dropped: u64,
    /// Denials not counted towards revocation (the offender table was full).
    pub revocation_untracked: u64,
    /// Automatic revocations refused (the revoked set was full).
    pub revocations_refused: u64,
    /// Entries in the revoked set now.
    pub revoked_entries: u64,
    /// The revoked set's bound for automatic revocations.
    pub revoked_capacity: u64,
    /// Policy reloads applied.
    pub reloads: u64,
    /// Policy reloads refused.
    pub reload_failures: u64,
    /// Sampled decision durations (see [`LATENCY_SAMPLE_EVERY`]).
    pub decision_latency: HistogramSnapshot,
    /// The gauges and remote stores.
    pub gauges: Gauges,
}

impl EngineMetrics {
    pub(crate) fn snapshot(&self, limits: Vec<LimitCounts>, gauges: Gauges) -> MetricsSnapshot {
        let revocation_counts = RevocationCounts {
            automatic_revocations: self.revocations.get(),
            automatic_suspensions: self.auto_suspensions.get(),
            operator_revocations: self.operator_revocations.get(),
            operator_suspensions: self.operator_suspensions.get(),
            restorations: self.restorations.get(),
        };
        MetricsSnapshot {
            limits,
            allowed: self.allowed.get(),
            limited: self.limited.get(),
            revoked: self.revoked.get(),
            quota_refused: self.quota_refused.get(),
            unknown_key: self.unknown_key.get(),
            errors: self.errors.get(),
            revocations: revocation_counts.automatic_revocations
                + revocation_counts.automatic_suspensions,
            revocation_counts,
            events_dropped: self.events_dropped.get(),
            revocation_untracked: self.revocation_untracked.get(),
            revocations_refused: self.revocations_refused.get(),
            revoked_entries: gauges.revoked_entries,
            revoked_capacity: gauges.revoked_capacity,
            reloads: self.reloads.get(),
            reload_failures: self.reload_failures.get(),
            decision_latency: self.decision_latency.snapshot(),
            gauges,
        }
    }
}

/// The companies that get their own series: all of them up to [`MAX_COMPANY_SERIES`],
/// else the ones nearest their limit. Returns them and how many were left out.
fn exported_companies(all: &[Statement]) -> (Vec<&Statement>, usize) {
    let mut chosen: Vec<&Statement> = all.iter().collect();
    if chosen.len() > MAX_COMPANY_SERIES {
        // used / limit, compared without division; a limit of 0 sorts as most urgent.
        chosen.sort_by(|a, b| {
            let lhs = u128::from(b.used) * u128::from(a.limit.max(1));
            let rhs = u128::from(a.used) * u128::from(b.limit.max(1));
            lhs.cmp(&rhs).then_with(|| a.company.cmp(&b.company))
        });
        chosen.truncate(MAX_COMPANY_SERIES);
        chosen.sort_by(|a, b| a.company.cmp(&b.company));
    }
    let omitted = all.len() - chosen.len();
    (chosen, omitted)
}

impl MetricsSnapshot {
    /// Every family, in a stable order (see the [module docs](self) for the list).
    pub fn families(&self) -> Vec<Family> {
        use MetricKind::{Counter, Gauge, Histogram};
        let g = &self.gauges;
        let mut out = Vec::with_capacity(40);

        out.push(
            Family::new(
                "tollgate_requests_total",
                Counter,
                "Requests decided by the engine, by outcome.",
            )
            .with_all(
                [
                    ("allowed", self.allowed),
                    ("limited", self.limited),
                    ("revoked", self.revoked),
                    ("quota_exceeded", self.quota_refused),
                    ("unknown_key", self.unknown_key),
                    ("error", self.errors),
                ]
                .map(|(o, n)| Sample::int(n).label("outcome", o)),
            ),
        );

        let mut decisions = Family::new(
            "tollgate_limit_decisions_total",
            Counter,
            "Decisions per limit and outcome; for a shadow limit (shadow=\"true\") what it would have decided.",
        );
        let mut fallback = Family::new(
            "tollgate_limit_fallback_decisions_total",
            Counter,
            "Decisions a limit's failure policy made because its backend could not decide.",
        );
        let mut limit_revocations = Family::new(
            "tollgate_limit_revocations_total",
            Counter,
            "Tokens revoked or suspended because of a limit's denials.",
        );
        let mut keys = Family::new(
            "tollgate_limit_keys",
            Gauge,
            "Keys held in a limit's in-memory stores (idle ones not yet reused included).",
        );
        let mut key_capacity = Family::new(
            "tollgate_limit_key_capacity",
            Gauge,
            "Keys a limit's in-memory stores were sized for.",
        );
        let mut evictions = Family::new(
            "tollgate_limit_key_evictions_total",
            Counter,
            "Idle keys whose slot was reused or swept.",
        );
        let mut displaced = Family::new(
            "tollgate_limit_key_displacements_total",
            Counter,
            "Live keys displaced (least debt first) to make room for new keys.",
        );
        let mut full = Family::new(
            "tollgate_limit_store_full_total",
            Counter,
            "Requests answered by the limit's on_full setting because its store was truly full.",
        );
        for l in &self.limits {
            let shadow = if l.shadow { "true" } else { "false" };
            let denied = if l.shadow { l.shadow_denied } else { l.denied };
            for (outcome, n) in [
                ("allowed", l.allowed),
                ("denied", denied),
                ("error", l.errors),
            ] {
                decisions.samples.push(
                    Sample::int(n)
                        .label("limit", l.limit.as_str())
                        .label("shadow", shadow)
                        .label("outcome", outcome),
                );
            }
            fallback
                .samples
                .push(Sample::int(l.failure_policy).label("limit", l.limit.as_str()));
            limit_revocations
                .samples
                .push(Sample::int(l.revoked).label("limit", l.limit.as_str()));
            for (store, counts) in [("memory", l.store), ("fallback", l.fallback_store)] {
                let Some(c) = counts else { continue };
                let s = |v: u64| {
                    Sample::int(v)
                        .label("limit", l.limit.as_str())
                        .label("store", store)
                };
                keys.samples.push(s(c.keys));
                key_capacity.samples.push(s(c.capacity));
                evictions.samples.push(s(c.evictions));
                displaced.samples.push(s(c.displaced));
                full.samples.push(s(c.full_answers));
            }
        }
        out.extend([
            decisions,
            fallback,
            limit_revocations,
            keys,
            key_capacity,
            evictions,
            displaced,
            full,
        ]);

        let r = &self.revocation_counts;
        out.push(
            Family::new(
                "tollgate_revocations_total",
                Counter,
                "Values revoked until restored, by origin (automatic: repeated denials; operator: Engine::revoke).",
            )
            .with(Sample::int(r.automatic_revocations).label("origin", "automatic"))
            .with(Sample::int(r.operator_revocations).label("origin", "operator")),
        );
        out.push(
            Family::new(
                "tollgate_suspensions_total",
                Counter,
                "Values suspended for a time, by origin.",
            )
            .with(Sample::int(r.automatic_suspensions).label("origin", "automatic"))
            .with(Sample::int(r.operator_suspensions).label("origin", "operator")),
        );
        out.push(
            Family::new(
                "tollgate_restorations_total",
                Counter,
                "Revoked or suspended values restored by an operator.",
            )
            .with(Sample::int(r.restorations)),
        );
        out.push(
            Family::new(
                "tollgate_revocations_refused_total",
                Counter,
                "Automatic revocations refused because the revoked set was full.",
            )
            .with(Sample::int(self.revocations_refused)),
        );
        out.push(
            Family::new(
                "tollgate_revocation_untracked_denials_total",
                Counter,
                "Denials not counted towards revocation because the offender table was full (they never revoke).",
            )
            .with(Sample::int(self.revocation_untracked)),
        );
        for (name, help, v) in [
            (
                "tollgate_revoked_entries",
                "Entries in the revoked set.",
                self.revoked_entries,
            ),
            (
                "tollgate_revoked_capacity",
                "Most values revoked automatically at once.",
                self.revoked_capacity,
            ),
            (
                "tollgate_offender_entries",
                "Tokens with recent denials tracked for revocation.",
                g.offender_entries,
            ),
            (
                "tollgate_offender_capacity",
                "Tokens the offender table was sized for.",
                g.offender_capacity,
            ),
        ] {
            out.push(Family::new(name, Gauge, help).with(Sample::int(v)));
        }

        let (companies, omitted) = exported_companies(&g.companies);
        let company_sample = |c: &Statement, v: u64| {
            Sample::int(v)
                .label("company", c.company.as_str())
                .label("period", c.period.as_str())
        };
        out.push(
            Family::new(
                "tollgate_quota_used",
                Gauge,
                "Calls a company made in its current quota period (this instance's ledger).",
            )
            .with_all(companies.iter().map(|c| company_sample(c, c.used))),
        );
        out.push(
            Family::new(
                "tollgate_quota_limit",
                Gauge,
                "A company's quota limit in its current period.",
            )
            .with_all(companies.iter().map(|c| company_sample(c, c.limit))),
        );
        out.push(
            Family::new(
                "tollgate_quota_companies",
                Gauge,
                "Companies in the quota directory.",
            )
            .with(Sample::int(g.companies.len() as u64)),
        );
        out.push(
            Family::new(
                "tollgate_quota_series_omitted",
                Gauge,
                "Companies without their own tollgate_quota_used series (beyond the series bound, the ones farthest from their limit).",
            )
            .with(Sample::int(omitted as u64)),
        );
        let mut store_decisions = Family::new(
            "tollgate_quota_store_decisions_total",
            Counter,
            "Quota calls by where they were decided: the shared store (remote), locally while it was unavailable or batching (local), or refused as unavailable.",
        );
        let mut unsent = Family::new(
            "tollgate_quota_store_unsent_calls",
            Gauge,
            "Calls counted locally and not yet added to the shared quota store.",
        );
        if let Some(q) = &g.quota_store {
            store_decisions.samples.extend(
                [
                    ("remote", q.remote),
                    ("local", q.local),
                    ("refused", q.refused),
                ]
                .map(|(w, n)| Sample::int(n).label("where", w)),
            );
            unsent.samples.push(Sample::int(q.unsent));
        }
        out.extend([store_decisions, unsent]);

        let mut up = Family::new(
            "tollgate_backend_up",
            Gauge,
            "1 when the remote store's breaker lets calls through (closed or half open), 0 when open.",
        );
        let mut breaker = Family::new(
            "tollgate_backend_breaker_state",
            Gauge,
            "The remote store's breaker: 1 for its current state.",
        );
        let mut calls = Family::new(
            "tollgate_backend_calls_total",
            Counter,
            "Calls sent to the remote store.",
        );
        let mut errors = Family::new(
            "tollgate_backend_errors_total",
            Counter,
            "Calls to the remote store that failed (timeouts, refused connections, errors).",
        );
        let mut short = Family::new(
            "tollgate_backend_short_circuited_total",
            Counter,
            "Calls the open breaker kept off the network.",
        );
        let mut connects = Family::new(
            "tollgate_backend_connects_total",
            Counter,
            "Connections opened to the remote store.",
        );
        let mut latency = Family::new(
            "tollgate_backend_call_duration_seconds",
            Histogram,
            "How long calls to the remote store took.",
        );
        for b in &g.backends {
            let s = |v: u64| Sample::int(v).label("backend", b.id.as_str());
            up.samples
                .push(s(u64::from(b.breaker != BreakerStatus::Open)));
            for st in [
                BreakerStatus::Closed,
                BreakerStatus::Open,
                BreakerStatus::HalfOpen,
            ] {
                breaker
                    .samples
                    .push(s(u64::from(b.breaker == st)).label("state", st.as_str()));
            }
            calls.samples.push(s(b.calls));
            errors.samples.push(s(b.errors));
            short.samples.push(s(b.short_circuited));
            connects.samples.push(s(b.connects));
            if let Some(h) = &b.latency {
                latency.samples.push(
                    Sample::new(SampleValue::Histogram(h.clone())).label("backend", b.id.as_str()),
                );
            }
        }
        out.extend([up, breaker, calls, errors, short, connects, latency]);

        if let Some(j) = &g.journal {
            out.extend([
                Family::new(
                    "tollgate_journal_failures_total",
                    Counter,
                    "Quota journal batches that failed to commit (each is retried).",
                )
                .with(Sample::int(j.failures)),
                Family::new(
                    "tollgate_journal_pending_entries",
                    Gauge,
                    "Entries waiting to be written to the quota journal.",
                )
                .with(Sample::int(j.pending)),
                Family::new(
                    "tollgate_journal_dropped_entries_total",
                    Counter,
                    "Appended entries not kept at the pending bound (a ledger writes them again).",
                )
                .with(Sample::int(j.dropped)),
                Family::new(
                    "tollgate_journal_last_success_timestamp_seconds",
                    Gauge,
                    "When a quota journal batch last committed, in Unix seconds (0: never).",
                )
                .with(Sample::new(SampleValue::Float(j.last_success_unix_secs))),
                Family::new(
                    "tollgate_journal_healthy",
                    Gauge,
                    "1 when the quota journal's last batch committed, 0 when it failed.",
                )
                .with(Sample::int(u64::from(j.healthy))),
                Family::new(
                    "tollgate_journal_refused_total",
                    Counter,
                    "Requests refused because the quota journal failed for longer than fail_closed_after.",
                )
                .with(Sample::int(j.refused)),
            ]);
        }
        out.push(
            Family::new(
                "tollgate_decision_duration_seconds",
                Histogram,
                "How long Engine::decide took, sampled: one decision in 16 per thread is timed.",
            )
            .with(Sample::new(SampleValue::Histogram(
                self.decision_latency.clone(),
            ))),
        );
        out.push(
            Family::new(
                "tollgate_events_dropped_total",
                Counter,
                "Events dropped because the host did not drain them.",
            )
            .with(Sample::int(self.events_dropped)),
        );
        out.push(
            Family::new(
                "tollgate_events_pending",
                Gauge,
                "Events waiting for the host to take them.",
            )
            .with(Sample::int(g.events_pending)),
        );
        out.push(
            Family::new(
                "tollgate_events_capacity",
                Gauge,
                "Events the channel holds before it drops.",
            )
            .with(Sample::int(g.events_capacity)),
        );
        out.push(
            Family::new(
                "tollgate_reloads_total",
                Counter,
                "Policy reloads, by result (error: the policy was refused and the old one kept).",
            )
            .with(Sample::int(self.reloads).label("result", "ok"))
            .with(Sample::int(self.reload_failures).label("result", "error")),
        );
        out.push(
            Family::new(
                "tollgate_build_info",
                Gauge,
                "Always 1; the version of the tollgate engine.",
            )
            .with(Sample::int(1).label("version", env!("CARGO_PKG_VERSION"))),
        );
        out
    }

    /// Every family in the Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        render(&self.families())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company(id: &str, used: u64, limit: u64) -> Statement {
        Statement {
            company: id.into(),
            period: "2026-12".into(),
            used,
            limit,
            overage: used.saturating_sub(limit),
        }
    }

    #[test]
    fn company_series_are_bounded_nearest_their_limit_first() {
        let mut all: Vec<Statement> = (0..MAX_COMPANY_SERIES + 10)
            .map(|i| company(&format!("c{i:04}"), i as u64, 10_000))
            .collect();
        all.push(company("zero-limit", 1, 0));
        let (chosen, omitted) = exported_companies(&all);
        assert_eq!(chosen.len(), MAX_COMPANY_SERIES);
        assert_eq!(omitted, 11);
        assert!(chosen.iter().any(|c| c.company == "zero-limit"));
        // The least used ones are left out.
        assert!(!chosen.iter().any(|c| c.company == "c0000"));
        assert!(chosen.windows(2).all(|w| w[0].company < w[1].company));
    }

    #[test]
    fn shadow_limits_report_would_be_denials_under_their_label() {
        let m = EngineMetrics::default();
        let limit = |name: &str, shadow: bool| LimitCounts {
            limit: name.into(),
            shadow,
            allowed: 3,
            denied: if shadow { 0 } else { 1 },
            shadow_denied: if shadow { 2 } else { 0 },
            errors: 0,
            revoked: 0,
            failure_policy: 0,
            store: None,
            fallback_store: None,
        };
        let text = m
            .snapshot(vec![limit("a", false), limit("b", true)], Gauges::default())
            .to_prometheus();
        assert!(text.contains(
            "tollgate_limit_decisions_total{limit=\"a\",shadow=\"false\",outcome=\"denied\"} 1\n"
        ));
        assert!(text.contains(
            "tollgate_limit_decisions_total{limit=\"b\",shadow=\"true\",outcome=\"denied\"} 2\n"
        ));
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("tollgate_limit_decisions_total") && l.contains("revoked")),
            "revocations are their own family"
        );
    }
}
