//! What the journal writes and reads back: the [`Entry`] appended for each change, the
//! rows of its tables, and the [`Snapshot`] of everything committed.

use std::fmt;

use serde::Serialize;

use super::revocation::{AdminRecord, RevocationRecord};

/// The kind of a notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The early warning.
    Warning,
    /// Usage went over the limit.
    Overage,
}

impl NoticeKind {
    /// The name stored in the `kind` column: `"warning"` or `"overage"`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Warning => "warning",
            NoticeKind::Overage => "overage",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        match s {
            "warning" => Some(NoticeKind::Warning),
            "overage" => Some(NoticeKind::Overage),
            _ => None,
        }
    }
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change to journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Calls counted (or refunded, if negative) in a period. Adds `calls` to the company
    /// total row and, if `user` is given, to that user's row, in the same transaction.
    Usage {
        /// The company.
        company: String,
        /// The user, if the calls are attributed to one.
        user: Option<String>,
        /// Start of the period, unix seconds.
        period_start: i64,
        /// The period's label, e.g. "2026-11".
        period: String,
        /// The delta; negative for refunds.
        calls: i64,
    },
    /// A notice was raised: a row of the `notices` table (the flag that makes it once)
    /// and, in the same transaction, its row in the `outbox` table, pending until the
    /// host acknowledges it ([`Entry::NoticeAck`]). Journaling the same company, period
    /// and kind again is a no-op.
    Notice {
        /// The notice's id in the outbox (unique in the journal, never reused).
        id: u64,
        /// The company.
        company: String,
        /// The period's label.
        period: String,
        /// Which notice.
        kind: NoticeKind,
        /// The company's usage in the period when it was crossed.
        used: u64,
        /// The company's limit then.
        limit: u64,
        /// The plan the notice proposes, if any (overage notices).
        suggested_plan: Option<String>,
        /// When it was raised (the crossing), unix seconds.
        raised_at: i64,
    },
    /// A notice's once-flag only (its `notices` row, no `outbox` row): what a rewrite of
    /// the journal writes for a notice raised and delivered before the outbox existed
    /// (schema 1), whose outbox facts nobody holds. Journaling it for a company, period
    /// and kind already flagged is a no-op.
    NoticeRaised {
        /// The company.
        company: String,
        /// The period's label.
        period: String,
        /// Which notice.
        kind: NoticeKind,
        /// When it was raised, unix seconds.
        raised_at: i64,
    },
    /// The host acknowledged the outbox notice `id`: it is not offered again. Journaling
    /// it for an acknowledged or unknown id is a no-op.
    NoticeAck {
        /// The notice's id.
        id: u64,
        /// When it was acknowledged, unix seconds.
        acked_at: i64,
    },
    /// A reservation was committed under an idempotency key. Journaling the same key again
    /// is a no-op.
    Commit {
        /// The company.
        company: String,
        /// Start of the period, unix seconds.
        period_start: i64,
        /// The idempotency key.
        idempotency_key: String,
    },
    /// A value was revoked or suspended: its row of the `revocations` table, replacing
    /// any row of the same fingerprint.
    Revoked(RevocationRecord),
    /// A value was restored: its row of the `revocations` table is deleted (a no-op if
    /// there is none).
    Unrevoked {
        /// [`RevocationKey::fingerprint`](super::RevocationKey::fingerprint) of the value.
        fingerprint: u128,
    },
    /// The company's limit in force for a period: its row of the `period_limits` table,
    /// replacing the one before (the limit changed while the period was current). An
    /// ended period's row is the limit of its statement after a restart.
    PeriodLimit {
        /// The company.
        company: String,
        /// Start of the period, unix seconds.
        period_start: i64,
        /// The period's label.
        period: String,
        /// The limit.
        limit: u64,
    },
    /// An administrative change: a row appended to the `admin_changes` table.
    Admin {
        /// When it was made, unix nanoseconds.
        at: i64,
        /// The change.
        change: AdminRecord,
    },
}

/// A row of the `usage` table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsageRecord {
    /// The company.
    pub company: String,
    /// The user, or `None` for the company total row.
    pub user: Option<String>,
    /// Start of the period, unix seconds.
    pub period_start: i64,
    /// The period's label.
    pub period: String,
    /// Calls in the period.
    pub calls: i64,
}

/// A row of the `period_limits` table (schema 4): a company's limit in force for a
/// period (the last one recorded while the period was current, or when the limit
/// changed after it ended).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeriodLimitRecord {
    /// The company.
    pub company: String,
    /// Start of the period, unix seconds.
    pub period_start: i64,
    /// The period's label.
    pub period: String,
    /// The limit.
    pub limit: u64,
}

/// A row of the `notices` table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NoticeRecord {
    /// The company.
    pub company: String,
    /// The period's label.
    pub period: String,
    /// Which notice.
    pub kind: NoticeKind,
    /// When it was raised, unix seconds.
    pub raised_at: i64,
}

/// A row of the `outbox` table: a notice and whether the host acknowledged it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutboxRecord {
    /// The notice's id.
    pub id: u64,
    /// The company.
    pub company: String,
    /// The period's label.
    pub period: String,
    /// Which notice.
    pub kind: NoticeKind,
    /// The company's usage in the period when it was crossed.
    pub used: u64,
    /// The company's limit then.
    pub limit: u64,
    /// The plan the notice proposes, if any.
    pub suggested_plan: Option<String>,
    /// When it was crossed, unix seconds.
    pub raised_at: i64,
    /// When the host acknowledged it (unix seconds); `None` while pending.
    pub acked_at: Option<i64>,
}

/// A row of the `commits` table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommitRecord {
    /// The company.
    pub company: String,
    /// Start of the period, unix seconds.
    pub period_start: i64,
    /// The idempotency key.
    pub idempotency_key: String,
}

/// Everything committed in the journal when it was opened, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// All usage rows (company totals have `user: None`).
    pub usage: Vec<UsageRecord>,
    /// All notices raised.
    pub notices: Vec<NoticeRecord>,
    /// The outbox: every notice raised since schema version 2, acknowledged or pending,
    /// by id.
    pub outbox: Vec<OutboxRecord>,
    /// All committed idempotency keys.
    pub commits: Vec<CommitRecord>,
    /// The limit in force per company and period (schema 4; empty before).
    pub period_limits: Vec<PeriodLimitRecord>,
}

impl Snapshot {
    /// The company total for `company` in the period starting at `period_start` (0 if
    /// absent).
    pub fn company_total(&self, company: &str, period_start: i64) -> i64 {
        self.usage
            .iter()
            .filter(|r| r.company == company && r.user.is_none() && r.period_start == period_start)
            .map(|r| r.calls)
            .sum()
    }
}
