//! What the engine tells its host to act on: quota notices, revocations, restorations.

use tollgate_quota::{KeyRef, QuotaEvent};

/// Something the host should act on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A quota notice (early warning or overage) was raised. A signal only: like every
    /// event it is dropped when the channel is full. Send the emails from the outbox
    /// ([`Engine::take_notices`](crate::Engine::take_notices), then
    /// [`Engine::ack_notice`](crate::Engine::ack_notice)), which keeps each notice until
    /// it is acknowledged.
    Quota(QuotaEvent),
    /// A token was revoked for repeated denials (or by [`Engine::revoke`](crate::Engine::revoke)).
    Revoked {
        /// The revoked attribute's name (e.g. `token`).
        attribute: String,
        /// The value, redacted.
        key: KeyRef,
        /// Whether it was revoked automatically (repeated denials) or by a call.
        automatic: bool,
    },
    /// A value was suspended: refused as revoked until `until_unix_ns`, then served
    /// again without a call (`[revocation] suspend`, or [`Engine::suspend`](crate::Engine::suspend)).
    Suspended {
        /// The attribute's name (e.g. `token`).
        attribute: String,
        /// The value, redacted.
        key: KeyRef,
        /// When it is served again (Unix nanoseconds).
        until_unix_ns: u64,
        /// Whether it was suspended automatically (repeated denials) or by a call.
        automatic: bool,
    },
    /// A revoked value was restored.
    Restored {
        /// The attribute's name.
        attribute: String,
        /// The value, redacted.
        key: KeyRef,
    },
    /// The quota's journal started failing: its batches do not commit (a full disk, a
    /// file replaced under it, ...). Calls are still counted in memory and retried with
    /// backoff; nothing since is acknowledged. Sent once per run of failures.
    JournalFailing {
        /// The writer's error, naming the file.
        error: String,
        /// When the failures started (Unix nanoseconds).
        since_unix_ns: u64,
    },
    /// An administrative change was applied ([`Engine::admin`](crate::Engine::admin)).
    Admin(crate::engine::AdminChange),
    /// The quota's journal recovered: a batch committed after failures, and everything
    /// collected meanwhile is journaled (the notices that waited are sent after this).
    JournalRecovered {
        /// Batches that failed in this run.
        failures: u64,
    },
}
