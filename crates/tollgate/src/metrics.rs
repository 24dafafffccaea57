//! Decision counters per limit and for the engine, readable in code and as Prometheus
//! text.
//!
//! Counters are striped over a few cache-padded cells, each thread adding to its own,
//! so that threads deciding at once do not fight over one cache line; reading sums the
//! cells.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

const STRIPES: usize = 8;

/// A counter striped over a few cache lines.
#[derive(Debug, Default)]
pub struct StripedCounter {
    cells: [CachePadded<AtomicU64>; STRIPES],
}

fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

impl StripedCounter {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.cells[stripe()].fetch_add(n, Ordering::Relaxed);
    }

    /// The total.
    pub fn get(&self) -> u64 {
        self.cells
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

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
    /// Tokens revoked for repeated denials.
    pub revocations: StripedCounter,
    /// Events dropped because the host did not drain them.
    pub events_dropped: StripedCounter,
    /// Denials not counted towards revocation: the offender table had no room.
    pub revocation_untracked: StripedCounter,
    /// Automatic revocations refused: the revoked set was full.
    pub revocations_refused: StripedCounter,
}

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
    /// Tokens revoked.
    pub revocations: u64,
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
}

impl EngineMetrics {
    pub(crate) fn snapshot(
        &self,
        limits: Vec<LimitCounts>,
        revoked_entries: u64,
        revoked_capacity: u64,
    ) -> MetricsSnapshot {
        MetricsSnapshot {
            limits,
            allowed: self.allowed.get(),
            limited: self.limited.get(),
            revoked: self.revoked.get(),
            quota_refused: self.quota_refused.get(),
            unknown_key: self.unknown_key.get(),
            errors: self.errors.get(),
            revocations: self.revocations.get(),
            events_dropped: self.events_dropped.get(),
            revocation_untracked: self.revocation_untracked.get(),
            revocations_refused: self.revocations_refused.get(),
            revoked_entries,
            revoked_capacity,
        }
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl MetricsSnapshot {
    /// The counters in the Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP tollgate_limit_decisions_total Requests per limit and outcome.\n\
             # TYPE tollgate_limit_decisions_total counter\n",
        );
        for l in &self.limits {
            let name = label(&l.limit);
            for (outcome, n) in [
                ("allowed", l.allowed),
                ("denied", l.denied),
                ("shadow_denied", l.shadow_denied),
                ("error", l.errors),
                ("revoked", l.revoked),
                ("failure_policy", l.failure_policy),
            ] {
                let _ = writeln!(
                    out,
                    "tollgate_limit_decisions_total{{limit=\"{name}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP tollgate_requests_total Requests decided by the engine, by outcome.\n\
             # TYPE tollgate_requests_total counter\n",
        );
        for (outcome, n) in [
            ("allowed", self.allowed),
            ("limited", self.limited),
            ("revoked", self.revoked),
            ("quota_exceeded", self.quota_refused),
            ("unknown_key", self.unknown_key),
            ("error", self.errors),
        ] {
            let _ = writeln!(out, "tollgate_requests_total{{outcome=\"{outcome}\"}} {n}");
        }
        let _ = write!(
            out,
            "# HELP tollgate_revocations_total Tokens revoked for repeated denials.\n\
             # TYPE tollgate_revocations_total counter\n\
             tollgate_revocations_total {}\n\
             # HELP tollgate_events_dropped_total Events dropped because the host did not drain them.\n\
             # TYPE tollgate_events_dropped_total counter\n\
             tollgate_events_dropped_total {}\n\
             # HELP tollgate_revocation_untracked_denials_total Denials not counted towards revocation because the offender table was full (they never revoke).\n\
             # TYPE tollgate_revocation_untracked_denials_total counter\n\
             tollgate_revocation_untracked_denials_total {}\n\
             # HELP tollgate_revocations_refused_total Automatic revocations refused because the revoked set was full.\n\
             # TYPE tollgate_revocations_refused_total counter\n\
             tollgate_revocations_refused_total {}\n\
             # HELP tollgate_revoked_entries Entries in the revoked set.\n\
             # TYPE tollgate_revoked_entries gauge\n\
             tollgate_revoked_entries {}\n\
             # HELP tollgate_revoked_capacity Most values revoked automatically at once.\n\
             # TYPE tollgate_revoked_capacity gauge\n\
             tollgate_revoked_capacity {}\n",
            self.revocations,
            self.events_dropped,
            self.revocation_untracked,
            self.revocations_refused,
            self.revoked_entries,
            self.revoked_capacity
        );
        out
    }
}

/// The quota journal's health in the Prometheus text format: failed batches, entries
/// waiting, the last commit's time, whether it is healthy, and the requests refused
/// because it failed too long (`fail_closed_after`). Appended to
/// [`Engine::prometheus`](crate::Engine::prometheus) when the quota is journaled.
pub fn journal_prometheus(h: &tollgate_quota::journal::JournalHealth, refused: u64) -> String {
    let last_success = h
        .last_success
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    format!(
        "# HELP tollgate_journal_failures_total Quota journal batches that failed to commit (each is retried).\n\
         # TYPE tollgate_journal_failures_total counter\n\
         tollgate_journal_failures_total {}\n\
         # HELP tollgate_journal_pending_entries Entries waiting to be written to the quota journal.\n\
         # TYPE tollgate_journal_pending_entries gauge\n\
         tollgate_journal_pending_entries {}\n\
         # HELP tollgate_journal_dropped_entries_total Appended entries not kept at the pending bound (a ledger writes them again).\n\
         # TYPE tollgate_journal_dropped_entries_total counter\n\
         tollgate_journal_dropped_entries_total {}\n\
         # HELP tollgate_journal_last_success_timestamp_seconds When a quota journal batch last committed (0: never).\n\
         # TYPE tollgate_journal_last_success_timestamp_seconds gauge\n\
         tollgate_journal_last_success_timestamp_seconds {last_success:.3}\n\
         # HELP tollgate_journal_healthy Whether the quota journal's last batch committed (1) or failed (0).\n\
         # TYPE tollgate_journal_healthy gauge\n\
         tollgate_journal_healthy {}\n\
         # HELP tollgate_journal_refused_total Requests refused because the quota journal failed for longer than fail_closed_after.\n\
         # TYPE tollgate_journal_refused_total counter\n\
         tollgate_journal_refused_total {refused}\n",
        h.total_failures,
        h.pending_entries,
        h.dropped_entries,
        u8::from(h.is_ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striped_counters_sum_across_threads() {
        let c = StripedCounter::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        c.add(1);
                    }
                });
            }
        });
        assert_eq!(c.get(), 40_000);
    }

    #[test]
    fn prometheus_text_escapes_labels() {
        let m = EngineMetrics::default();
        m.allowed.add(3);
        let snap = m.snapshot(
            vec![LimitCounts {
                limit: "a\"b\\c\nd".into(),
                shadow: false,
                allowed: 3,
                denied: 1,
                shadow_denied: 0,
                errors: 0,
                revoked: 0,
                failure_policy: 0,
            }],
            7,
            100,
        );
        let text = snap.to_prometheus();
        assert!(
            text.contains("# TYPE tollgate_revoked_entries gauge\ntollgate_revoked_entries 7\n")
        );
        // Every family has HELP and TYPE.
        for family in text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(['{', ' ']).next().unwrap())
        {
            assert!(text.contains(&format!("# HELP {family} ")), "{family}");
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
        assert!(text.contains(
            "tollgate_limit_decisions_total{limit=\"a\\\"b\\\\c\\nd\",outcome=\"denied\"} 1\n"
        ));
        assert!(text.contains("tollgate_requests_total{outcome=\"allowed\"} 3\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }
}
