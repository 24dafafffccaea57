//! Notices: building the [`Notice`] for a crossing, journaling it durably, then putting
//! it in the [outbox](crate::outbox) for the host (and its [`QuotaEvent`] on the ledger's
//! event list); and, at start, raising the notices whose crossing was journaled but whose
//! notice was not.

use std::sync::atomic::Ordering;

use jiff::Timestamp;

use crate::counter::{Crossing, Crossings};
use crate::journal::{Entry, JournalError, NoticeKind};
use crate::outbox::Notice;
use crate::period::Period;
use crate::plan::Company;

use super::decision::QuotaEvent;
use super::directory::CompanyEntry;
use super::state::Ledger;

impl Ledger {
    /// Builds the notice for a crossing, journals it (its `notices` and `outbox` rows in
    /// one transaction) and waits until that is committed, then puts it in the outbox and
    /// queues its event for [`Ledger::drain_events`]. A notice whose journal entry is
    /// delayed (the journal is failing and retries) enters the outbox once the entry
    /// commits; one whose entry fails for good is neither offered nor raised: it is
    /// counted in [`Ledger::journal_errors`], and a restart raises it again (its crossing
    /// is recovered, or crossed again). So no notice is offered twice.
    #[cold]
    pub(super) fn notice(
        &self,
        company: &Company,
        period: &Period,
        kind: Crossing,
        used: u64,
        limit: u64,
        now: i128,
    ) -> Option<QuotaEvent> {
        let kind = match kind {
            Crossing::Warning => NoticeKind::Warning,
            Crossing::Overage => NoticeKind::Overage,
        };
        let suggested_plan = match kind {
            NoticeKind::Warning => None,
            NoticeKind::Overage => self
                .config
                .load()
                .plans
                .suggest_plan(company, used)
                .map(|p| p.name.clone()),
        };
        let raised_at = i64::try_from(now.div_euclid(1_000_000_000)).unwrap_or(i64::MAX);
        let notice = Notice {
            id: self.outbox.next_id(),
            kind,
            company: company.id.clone(),
            period: period.label(),
            used,
            limit,
            suggested_plan,
            crossed_at: Timestamp::from_second(raised_at).unwrap_or(Timestamp::MAX),
            attempt: 0,
        };
        if let Some(j) = &self.journal {
            let entry = Entry::Notice {
                id: notice.id,
                company: notice.company.clone(),
                period: notice.period.clone(),
                kind,
                used,
                limit,
                suggested_plan: notice.suggested_plan.clone(),
                raised_at,
            };
            let ticket = j.append(entry);
            match j.wait(ticket) {
                Ok(()) => {}
                // The journal is failing and keeps the entry: the notice enters the
                // outbox once it commits (the journal's commit hook releases it).
                Err(JournalError::NotAcknowledged { .. }) => {
                    let mut deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
                    if !j.is_committed(ticket) {
                        deferred.push(ticket, notice);
                        return None;
                    }
                }
                Err(_) => {
                    self.journal_errors.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let e = notice.to_event();
        self.outbox.push(notice);
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone());
        Some(e)
    }

    /// Raises, for a company just registered with journaled usage, the notices of its
    /// current period whose threshold that usage has crossed but that were never
    /// journaled: the process died after a batch committed the crossing usage and before
    /// the notice's own batch did (or the notice's write failed). Dated `now`.
    pub(super) fn recover_notices(&self, company: &CompanyEntry, now: i128) {
        if self.journal.is_none() {
            return;
        }
        let spec = || company.settings.load().spec.clone();
        let Ok((_, cc)) = company.usage.counter_at(spec, now) else {
            return;
        };
        let limit = company.limit.load(Ordering::Relaxed);
        let thresholds = self.percents.thresholds(limit);
        let used = cc.counter.used();
        let overage = cc.counter.take(Crossings {
            warning: false,
            overage: used > limit,
        });
        // A warning whose overage was raised already is not due any more.
        let crossings = cc.counter.take(Crossings {
            warning: thresholds.warning().is_some_and(|w| used >= w)
                && (used <= limit || overage.overage),
            overage: false,
        });
        let crossings = Crossings {
            warning: crossings.warning,
            overage: overage.overage,
        };
        if crossings.is_none() {
            return;
        }
        let settings = company.settings.load();
        for kind in crossings.iter() {
            self.notice(&settings.company, &cc.period, kind, used, limit, now);
        }
    }

    /// Takes the notices raised so far (oldest first), as events: a signal that a
    /// notice was raised, for hosts that watch for them. Delivering a notice exactly
    /// once goes through the [outbox](Ledger::outbox) instead, which keeps it until the
    /// host acknowledges it.
    pub fn drain_events(&self) -> Vec<QuotaEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
