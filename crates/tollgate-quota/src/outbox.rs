//! The notice outbox: every early warning and overage notice the ledger raises waits here,
//! with its identity and what the administrator's email needs, until the host
//! acknowledges that it acted on it.
//!
//! # Delivery
//! * A notice enters the outbox once per company, period and kind, ever: the counter's
//!   flag bit makes it once in a process, and with a journal its `notices` row (restored
//!   at start) makes it once across restarts.
//! * With a journal, it enters the outbox only after its journal entry, a row of the
//!   `outbox` table written in the same transaction as its `notices` row, is committed:
//!   every notice the host is offered is durable, and its [`id`](Notice::id) means the same
//!   notice after a restart.
//! * [`Outbox::take`] offers the notices due: never offered by this process, or offered
//!   longer than the redelivery timeout ago
//!   ([`QuotaConfig::notice_redeliver_after`](crate::QuotaConfig::notice_redeliver_after),
//!   5 minutes by default) and still not acknowledged. [`Outbox::release`] gives one
//!   back at once (the email could not be sent).
//! * [`Outbox::ack`] acknowledges one after the host acted; with a journal it returns
//!   once the acknowledgement is committed, and the notice is never offered again, in
//!   this process or after a restart. Acknowledging twice, or an unknown id, is harmless
//!   (`Ok(false)`).
//! * On restart, every notice journaled but not acknowledged is pending again (offered
//!   at the next `take`).
//!
//! So delivery is *at least once*, and *exactly once* for a host that acknowledges after
//! acting and keeps the ids it acted on: a process killed after the host sent the email
//! but before its `ack` was committed offers the notice again, with the same id, and the
//! host skips it (and acknowledges it). Without the id check, that window (between the
//! email and the commit of the ack) is the one way a notice is sent twice.
//!
//! **Without a journal** (the default) the outbox has the same interface but lives in
//! memory only: a restart forgets pending notices, and since usage restarts at zero too,
//! the notices are raised again as usage crosses the thresholds again.
//!
//! # Bound
//! Pending notices are held in memory until acknowledged: at most two per company and
//! period (warning and overage), a few hundred bytes each. A host that never
//! acknowledges keeps them all; [`Outbox::stats`] tells how many wait.
//!
//! # Example
//! ```
//! use tollgate_quota::{Company, Ledger, QuotaConfig};
//!
//! let ledger = Ledger::new(QuotaConfig::default());
//! let now: i128 = 1_794_700_800 * 1_000_000_000; // 2026-11-15
//! ledger.upsert_company(Company::new("acme").with_override(10), None, now).unwrap();
//! ledger.add_user("alice", "acme", now).unwrap();
//! ledger.add_key("key-1", "alice").unwrap();
//! for _ in 0..11 {
//!     ledger.record("key-1", 1, now).unwrap();
//! }
//! let outbox = ledger.outbox();
//! let notices = outbox.take(16, now);
//! assert_eq!(notices.len(), 2); // the warning (80%) and the overage
//! for n in &notices {
//!     // ... send the email for n (n.company, n.period, n.used, n.limit, ...) ...
//!     assert!(outbox.ack(n.id, now).unwrap());
//! }
//! assert!(outbox.take(16, now).is_empty());
//! assert!(!outbox.ack(notices[0].id, now).unwrap()); // twice: harmless
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::journal::{Entry, Journal, JournalError, NoticeKind, OutboxRecord};
use crate::ledger::QuotaEvent;

/// A notice's id: unique in its journal (or in its in-memory ledger) and never reused,
/// the same after a restart.
pub type NoticeId = u64;

/// A notice for the host to act on (an email to the company's administrator).
///
/// It names no API key and no user: only the company, the period and the counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// The id to [acknowledge](Outbox::ack) it with.
    pub id: NoticeId,
    /// Which notice: the early warning or the overage.
    pub kind: NoticeKind,
    /// The company.
    pub company: String,
    /// The period's label, e.g. "2026-11".
    pub period: String,
    /// The company's usage in the period when the threshold was crossed.
    pub used: u64,
    /// The company's limit for the period at that moment.
    pub limit: u64,
    /// For an overage: the smallest configured plan the company does not have already
    /// that would cover this usage, if any.
    pub suggested_plan: Option<String>,
    /// When the threshold was crossed (to the second). A crossing recovered at start
    /// (its usage was journaled, its notice not) carries the time of that start.
    pub crossed_at: Timestamp,
    /// How many times this process has offered it, this offer included (1 the first
    /// time; more after a redelivery timeout or a [release](Outbox::release)). A notice
    /// pending from before a restart starts at 1 again: check its id, not this count.
    pub attempt: u32,
}

/// A notice's company, period and kind: what makes it once.
pub(crate) type Held = std::collections::HashSet<(String, String, NoticeKind)>;

impl Notice {
    /// Its company, period and kind.
    pub(crate) fn identity(&self) -> (String, String, NoticeKind) {
        (self.company.clone(), self.period.clone(), self.kind)
    }

    /// The journal entry that writes it (its `notices` and `outbox` rows).
    pub(crate) fn journal_entry(&self) -> Entry {
        Entry::Notice {
            id: self.id,
            company: self.company.clone(),
            period: self.period.clone(),
            kind: self.kind,
            used: self.used,
            limit: self.limit,
            suggested_plan: self.suggested_plan.clone(),
            raised_at: self.crossed_at.as_second(),
        }
    }

    /// The same notice as a [`QuotaEvent`] (the engine's event form).
    pub fn to_event(&self) -> QuotaEvent {
        match self.kind {
            NoticeKind::Warning => QuotaEvent::Warning {
                company: self.company.clone(),
                period: self.period.clone(),
                used: self.used,
                limit: self.limit,
            },
            NoticeKind::Overage => QuotaEvent::Overage {
                company: self.company.clone(),
                period: self.period.clone(),
                used: self.used,
                limit: self.limit,
                suggested_plan: self.suggested_plan.clone(),
            },
        }
    }
}

/// How many notices the outbox holds and has handled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutboxStats {
    /// Notices not acknowledged yet.
    pub pending: usize,
    /// Of those, the ones offered and not yet due again.
    pub in_flight: usize,
    /// Notices that entered the outbox in this process (restored ones excluded).
    pub raised: u64,
    /// Notices acknowledged in this process.
    pub acknowledged: u64,
}

#[derive(Debug)]
struct Slot {
    notice: Notice,
    /// When it was last offered (Unix nanoseconds), if it was.
    offered_at: Option<i128>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The next id to give out.
    next_id: NoticeId,
    /// Notices not acknowledged, by id.
    pending: BTreeMap<NoticeId, Slot>,
    /// The notices acknowledged (in this process or, restored, before), with when: what
    /// a rewrite of the journal (a re-created file) must write again so that they stay
    /// acknowledged. At most two per company and period, like the period counters.
    acked: BTreeMap<NoticeId, (Notice, i64)>,
    raised: u64,
    acknowledged: u64,
}

/// The outbox's state, owned by the ledger.
#[derive(Debug)]
pub(crate) struct OutboxState {
    inner: Mutex<Inner>,
    redeliver_after_ns: AtomicU64,
}

impl OutboxState {
    pub(crate) fn new(redeliver_after: Duration) -> Self {
        OutboxState {
            inner: Mutex::new(Inner {
                next_id: 1,
                ..Inner::default()
            }),
            redeliver_after_ns: AtomicU64::new(nanos(redeliver_after)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes over the journal's outbox rows: the pending ones are offered again, and ids
    /// continue after the largest one.
    pub(crate) fn restore(&self, rows: &[OutboxRecord]) {
        let mut inner = self.lock();
        for r in rows {
            inner.next_id = inner.next_id.max(r.id.saturating_add(1));
            let notice = Notice {
                id: r.id,
                kind: r.kind,
                company: r.company.clone(),
                period: r.period.clone(),
                used: r.used,
                limit: r.limit,
                suggested_plan: r.suggested_plan.clone(),
                crossed_at: Timestamp::from_second(r.raised_at).unwrap_or(Timestamp::MAX),
                attempt: 0,
            };
            if let Some(at) = r.acked_at {
                inner.acked.insert(r.id, (notice, at));
                continue;
            }
            inner.pending.insert(
                r.id,
                Slot {
                    notice,
                    offered_at: None,
                },
            );
        }
    }

    /// A fresh id.
    pub(crate) fn next_id(&self) -> NoticeId {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id = id.saturating_add(1);
        id
    }

    /// The journal entries of every notice held, pending and acknowledged (a rewrite
    /// after the journal lost entries or its file), appended to `batch`; returns the
    /// company, period and kind of each.
    pub(crate) fn journal_entries(&self, batch: &mut Vec<Entry>) -> Held {
        let inner = self.lock();
        let mut held = Held::new();
        for slot in inner.pending.values() {
            batch.push(slot.notice.journal_entry());
            held.insert(slot.notice.identity());
        }
        for (n, acked_at) in inner.acked.values() {
            batch.push(n.journal_entry());
            batch.push(Entry::NoticeAck {
                id: n.id,
                acked_at: *acked_at,
            });
            held.insert(n.identity());
        }
        held
    }

    /// Adds a notice (durable already, if journaled).
    pub(crate) fn push(&self, notice: Notice) {
        let mut inner = self.lock();
        inner.raised += 1;
        inner.pending.insert(
            notice.id,
            Slot {
                notice,
                offered_at: None,
            },
        );
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The ledger's outbox, as the host uses it: see the [module docs](self). Get it from
/// [`Ledger::outbox`](crate::Ledger::outbox).
#[derive(Clone, Copy, Debug)]
pub struct Outbox<'a> {
    pub(crate) state: &'a OutboxState,
    pub(crate) journal: Option<&'a Journal>,
}

impl Outbox<'_> {
    /// Every notice not acknowledged yet, offered or not, oldest first. Changes nothing:
    /// for reports and checks; deliver with [`take`](Self::take).
    pub fn pending(&self) -> Vec<Notice> {
        self.state
            .lock()
            .pending
            .values()
            .map(|s| s.notice.clone())
            .collect()
    }

    /// Offers up to `max` notices due at `now` (Unix nanoseconds), oldest first: those
    /// never offered by this process, and those offered at least the redelivery timeout
    /// before `now` and not acknowledged since. They are due again after the timeout
    /// unless [acknowledged](Self::ack) (or [released](Self::release)).
    pub fn take(&self, max: usize, now: i128) -> Vec<Notice> {
        let redeliver = i128::from(self.state.redeliver_after_ns.load(Ordering::Relaxed));
        let mut inner = self.state.lock();
        let mut out = Vec::new();
        for slot in inner.pending.values_mut() {
            if out.len() >= max {
                break;
            }
            let due = match slot.offered_at {
                None => true,
                Some(at) => now.saturating_sub(at) >= redeliver,
            };
            if due {
                slot.offered_at = Some(now);
                slot.notice.attempt = slot.notice.attempt.saturating_add(1);
                out.push(slot.notice.clone());
            }
        }
        out
    }

    /// Acknowledges notice `id` at `now` (Unix nanoseconds): the host acted on it, it is
    /// not offered again. Returns `Ok(true)` if it was pending, `Ok(false)` if it was
    /// acknowledged before or is unknown (harmless; nothing is written). With a journal,
    /// returns once the acknowledgement is committed (it waits for the journal's writer:
    /// call it off an async runtime's worker threads); if that fails, the error is
    /// returned, the notice is not offered again by this process, but a restart offers
    /// it again.
    pub fn ack(&self, id: NoticeId, now: i128) -> Result<bool, JournalError> {
        let removed = {
            let mut inner = self.state.lock();
            let acked_at = i64::try_from(now.div_euclid(1_000_000_000)).unwrap_or(i64::MAX);
            inner.pending.remove(&id).map(|slot| {
                inner.acknowledged += 1;
                inner.acked.insert(id, (slot.notice, acked_at));
                acked_at
            })
        };
        if let Some(acked_at) = removed {
            if let Some(j) = self.journal {
                j.append_durable(Entry::NoticeAck { id, acked_at })?;
            }
        }
        Ok(removed.is_some())
    }

    /// Gives a [taken](Self::take) notice back without acknowledging it (the email could
    /// not be sent): it is offered again at the next `take`. Returns whether it was
    /// pending.
    pub fn release(&self, id: NoticeId) -> bool {
        match self.state.lock().pending.get_mut(&id) {
            Some(slot) => {
                slot.offered_at = None;
                true
            }
            None => false,
        }
    }

    /// Changes the redelivery timeout (a policy reload).
    pub fn set_redeliver_after(&self, after: Duration) {
        self.state
            .redeliver_after_ns
            .store(nanos(after), Ordering::Relaxed);
    }

    /// The redelivery timeout.
    pub fn redeliver_after(&self) -> Duration {
        Duration::from_nanos(self.state.redeliver_after_ns.load(Ordering::Relaxed))
    }

    /// Counts of pending, in-flight, raised and acknowledged notices.
    pub fn stats(&self, now: i128) -> OutboxStats {
        let redeliver = i128::from(self.state.redeliver_after_ns.load(Ordering::Relaxed));
        let inner = self.state.lock();
        OutboxStats {
            pending: inner.pending.len(),
            in_flight: inner
                .pending
                .values()
                .filter(|s| {
                    s.offered_at
                        .is_some_and(|at| now.saturating_sub(at) < redeliver)
                })
                .count(),
            raised: inner.raised,
            acknowledged: inner.acknowledged,
        }
    }

    /// Whether the outbox is durable (journaled): if not, a restart forgets it.
    pub fn is_durable(&self) -> bool {
        self.journal.is_some()
    }
}
