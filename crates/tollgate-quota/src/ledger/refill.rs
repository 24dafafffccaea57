//! What the journal writes again from the ledger's own state: every notice raised and
//! every committed idempotency key (after the journal dropped appended entries at its
//! pending bound), and, into a re-created journal file, every usage counter in full, so
//! that a restart from the new file is exact. Also the notices whose journal entry was
//! not acknowledged at once (the journal was failing): raised once it is. Notices are
//! rewritten from the outbox (pending and acknowledged, with their ids and facts) and the
//! deferred list; a raised flag neither holds (a notice journaled before schema 2) is
//! rewritten as a flag only.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::journal::{Entry, NoticeKind, Refill, Snapshot, Ticket};
use crate::outbox::{Held, Notice, OutboxState};

use super::collect::collect_usage;
use super::decision::QuotaEvent;
use super::directory::Directory;

/// Writes the ledger's state again, as the journal's [`Refill`] asks. Runs on the
/// journal's writer thread under the journal's lock, like the collector.
pub(super) fn refill(
    directory: &Directory,
    restored: &Mutex<Snapshot>,
    outbox: &OutboxState,
    deferred: &Mutex<Deferred>,
    what: Refill,
    batch: &mut Vec<Entry>,
) {
    // The notices the outbox and the deferred list hold, with their identity and facts
    // (no-ops for those the file has); every other raised flag as a flag only.
    let mut held = outbox.journal_entries(batch);
    deferred
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .journal_entries(batch, &mut held);
    // When a notice was raised is not kept in memory: the time of the rewrite stands in.
    let now = jiff::Timestamp::now().as_second();
    for company in directory.companies.values() {
        for (_, u) in company.usage.periods.iter() {
            let (warned, noticed) = u.counter.raised();
            let period = u.period.label();
            for (raised, kind) in [
                (warned, NoticeKind::Warning),
                (noticed, NoticeKind::Overage),
            ] {
                if raised && !held.contains(&(company.id.clone(), period.clone(), kind)) {
                    batch.push(Entry::NoticeRaised {
                        company: company.id.clone(),
                        period: period.clone(),
                        kind,
                        raised_at: now,
                    });
                }
            }
        }
        let committed = company.committed.lock().unwrap_or_else(|p| p.into_inner());
        for (start, keys) in committed.iter() {
            for key in keys {
                batch.push(Entry::Commit {
                    company: company.id.clone(),
                    period_start: start.as_second(),
                    idempotency_key: key.clone(),
                });
            }
        }
    }
    if what == Refill::Appended {
        return;
    }
    // Into an empty file: every counter in full (the collector takes it all, as nothing
    // is journaled there), and what the previous file held that no registered company
    // or user has claimed yet.
    for user in directory.users.values() {
        for (_, u) in user.usage.periods.iter() {
            u.journaled.store(0, Ordering::Relaxed);
        }
    }
    for company in directory.companies.values() {
        for (_, u) in company.usage.periods.iter() {
            u.limit_journaled
                .store(super::usage::NO_LIMIT_RECORDED, Ordering::Relaxed);
        }
    }
    collect_usage(directory, batch);
    let snap = restored.lock().unwrap_or_else(|p| p.into_inner());
    for r in snap.usage.iter().filter(|r| r.user.is_some()) {
        batch.push(Entry::Usage {
            company: r.company.clone(),
            user: r.user.clone(),
            period_start: r.period_start,
            period: r.period.clone(),
            calls: r.calls,
        });
    }
    for n in &snap.notices {
        batch.push(Entry::NoticeRaised {
            company: n.company.clone(),
            period: n.period.clone(),
            kind: n.kind,
            raised_at: n.raised_at,
        });
    }
    for l in &snap.period_limits {
        batch.push(Entry::PeriodLimit {
            company: l.company.clone(),
            period_start: l.period_start,
            period: l.period.clone(),
            limit: l.limit,
        });
    }
    for c in &snap.commits {
        batch.push(Entry::Commit {
            company: c.company.clone(),
            period_start: c.period_start,
            idempotency_key: c.idempotency_key.clone(),
        });
    }
}

/// Notices whose journal entry was not acknowledged when they were raised, waiting for
/// the batch holding it to commit before they enter the outbox.
#[derive(Debug, Default)]
pub(super) struct Deferred {
    waiting: Vec<(Ticket, Notice)>,
}

impl Deferred {
    /// Queues `notice` until `ticket` commits.
    pub(super) fn push(&mut self, ticket: Ticket, notice: Notice) {
        self.waiting.push((ticket, notice));
    }

    /// Moves every notice whose batch (at most `committed`) committed into `outbox`, and
    /// its event to `events`.
    pub(super) fn release(
        &mut self,
        committed: u64,
        outbox: &OutboxState,
        events: &Mutex<Vec<QuotaEvent>>,
    ) {
        if self.waiting.is_empty() {
            return;
        }
        let mut out = events.lock().unwrap_or_else(|p| p.into_inner());
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(t, _)| t.number() <= committed);
        self.waiting = waiting;
        for (_, notice) in due {
            out.push(notice.to_event());
            outbox.push(notice);
        }
    }

    /// The journal entries of the waiting notices (a rewrite), adding each one's
    /// company, period and kind to `held`.
    fn journal_entries(&self, batch: &mut Vec<Entry>, held: &mut Held) {
        for (_, n) in &self.waiting {
            batch.push(n.journal_entry());
            held.insert(n.identity());
        }
    }

    /// How many notices wait.
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }
}
