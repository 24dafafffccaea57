//! Notices for the host through the engine: the quota's [outbox](tollgate_quota::outbox),
//! taken and acknowledged with the engine's clock.
//!
//! A host drains it from one task or thread: take the notices due, act on each (send the
//! email), acknowledge it. A notice taken and not acknowledged is offered again after
//! `[quota] notice_redeliver_after` (5 minutes by default), and, with a journal, after a
//! restart: acknowledge after acting, and skip an id already acted on (a process killed
//! between the email and the acknowledgement offers it again), and each notice is acted
//! on exactly once.
//!
//! ```
//! # use tollgate::{Engine, Policy, Request};
//! # let (policy, _) = Policy::from_toml(r#"
//! # version = 1
//! # [quota]
//! # [[quota.companies]]
//! # id = "acme"
//! # limit_override = 2
//! # [[quota.companies.users]]
//! # id = "alice"
//! # keys = ["3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77"]
//! # "#).unwrap();
//! # let engine = Engine::new(policy).unwrap();
//! # for _ in 0..3 {
//! #     engine.decide(&Request::new().token("3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77"));
//! # }
//! // In the host's notifier loop:
//! for n in engine.take_notices(64) {
//!     println!("{:?}: {} used {} of {} in {}", n.kind, n.company, n.used, n.limit, n.period);
//!     // ... send the email; on failure: engine.release_notice(n.id) ...
//!     engine.ack_notice(n.id).expect("the acknowledgement is journaled");
//! }
//! assert!(engine.take_notices(64).is_empty());
//! ```

use tollgate_quota::journal::JournalError;
use tollgate_quota::{Notice, NoticeId, OutboxStats};

use super::instance::Engine;

impl Engine {
    /// Every quota notice not acknowledged yet, offered or not, oldest first; changes
    /// nothing (see [`take_notices`](Self::take_notices) to deliver). Empty when the
    /// policy has no quota.
    pub fn pending_notices(&self) -> Vec<Notice> {
        self.ledger
            .as_ref()
            .map(|l| l.outbox().pending())
            .unwrap_or_default()
    }

    /// Up to `max` notices due now on the engine's clock (see
    /// [`take_notices_at`](Self::take_notices_at)).
    pub fn take_notices(&self, max: usize) -> Vec<Notice> {
        self.take_notices_at(max, self.now())
    }

    /// Up to `max` notices due at `now` (Unix nanoseconds), oldest first: never offered
    /// by this process, or offered at least `notice_redeliver_after` ago and not
    /// acknowledged. Acknowledge each with [`ack_notice`](Self::ack_notice) once acted on.
    /// Empty when the policy has no quota.
    pub fn take_notices_at(&self, max: usize, now: u64) -> Vec<Notice> {
        self.ledger
            .as_ref()
            .map(|l| l.outbox().take(max, i128::from(now)))
            .unwrap_or_default()
    }

    /// Acknowledges notice `id`: the host acted on it, it is never offered again (with a
    /// journal, across restarts too: this returns once the acknowledgement is committed,
    /// so it blocks for one journal commit). `Ok(false)` for an id acknowledged before
    /// or unknown: harmless.
    pub fn ack_notice(&self, id: NoticeId) -> Result<bool, JournalError> {
        match &self.ledger {
            Some(l) => l.outbox().ack(id, i128::from(self.now())),
            None => Ok(false),
        }
    }

    /// Gives back a taken notice without acknowledging it (the email could not be sent):
    /// it is offered again at the next take. Returns whether it was pending.
    pub fn release_notice(&self, id: NoticeId) -> bool {
        self.ledger.as_ref().is_some_and(|l| l.outbox().release(id))
    }

    /// How many notices are pending, in flight, raised and acknowledged.
    pub fn notice_stats(&self) -> OutboxStats {
        self.ledger
            .as_ref()
            .map(|l| l.outbox().stats(i128::from(self.now())))
            .unwrap_or_default()
    }
}
