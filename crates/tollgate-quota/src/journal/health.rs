//! How the journal's writer is doing: [`JournalHealth`], and the [`HealthChange`]s a
//! listener is told of.

use std::time::{Duration, SystemTime};

/// Whether the writer's last batch committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JournalState {
    /// The last batch committed (or none failed yet).
    Ok,
    /// The last batch failed: the writer keeps what it collected and retries with
    /// backoff (10 ms doubling to 1 s); nothing since the last success is acknowledged.
    Failing,
}

impl JournalState {
    /// `"ok"` or `"failing"`.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalState::Ok => "ok",
            JournalState::Failing => "failing",
        }
    }
}

/// A snapshot of the journal writer's health ([`Journal::health`](super::Journal::health)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalHealth {
    /// Ok or failing.
    pub state: JournalState,
    /// Batches failed in a row (0 when ok).
    pub consecutive_failures: u64,
    /// Batches failed since the journal was opened.
    pub total_failures: u64,
    /// The last failure's error (kept after recovery), naming the file. Never holds an
    /// API key: the journal stores none.
    pub last_error: Option<String>,
    /// When a batch last committed (`None`: none yet).
    pub last_success: Option<SystemTime>,
    /// When the current run of failures started (`None` when ok).
    pub failing_since: Option<SystemTime>,
    /// Entries waiting to be written: appended ones not yet committed plus the usage
    /// deltas a failed batch carries (one per user and period at most).
    pub pending_entries: u64,
    /// Appended entries not kept because [`Journal::set_max_pending`](super::Journal::set_max_pending)
    /// entries were already waiting. With a ledger, the ledger's own state still holds
    /// them and the next batch that commits rewrites all notices and committed keys, so
    /// nothing is lost; without one, waits covering them fail.
    pub dropped_entries: u64,
    /// Times the file was found deleted or moved and re-created at its path with the
    /// full current state.
    pub recreated: u64,
}

impl JournalHealth {
    /// Whether the last batch committed.
    pub fn is_ok(&self) -> bool {
        self.state == JournalState::Ok
    }

    /// How long the journal has been failing at `now` (`None` when ok).
    pub fn failing_for(&self, now: SystemTime) -> Option<Duration> {
        self.failing_since
            .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO))
    }
}

/// A change of the writer's state, told to the listener installed with
/// [`Journal::on_health_change`](super::Journal::on_health_change), on the writer thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthChange {
    /// A batch failed after the previous one committed: the journal started failing.
    Failing(JournalHealth),
    /// A batch committed after failures: everything collected meanwhile is journaled.
    Recovered(JournalHealth),
}
