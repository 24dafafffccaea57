//! Notices: building a [`QuotaEvent`] for a crossing, journaling it durably before it is
//! raised (so at most once, across restarts too), and handing them to the host.

use std::sync::atomic::Ordering;

use crate::counter::Crossing;
use crate::journal::{Entry, JournalError, NoticeKind};
use crate::period::Period;
use crate::plan::Company;

use super::decision::QuotaEvent;
use super::state::Ledger;

impl Ledger {
    /// Builds the notice for a crossing, journals it durably (if journaled) and queues it
    /// for [`Ledger::drain_events`]. A notice whose journal entry is delayed (the journal
    /// is failing and retries) is raised once the entry commits; one whose entry fails
    /// for good is not raised: it is counted in [`Ledger::journal_errors`] instead, so no
    /// notice is ever raised twice.
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
        let e = match kind {
            Crossing::Warning => QuotaEvent::Warning {
                company: company.id.clone(),
                period: period.label(),
                used,
                limit,
            },
            Crossing::Overage => QuotaEvent::Overage {
                company: company.id.clone(),
                period: period.label(),
                used,
                limit,
                suggested_plan: self
                    .config
                    .plans
                    .suggest_plan(company, used)
                    .map(|p| p.name.clone()),
            },
        };
        if let Some(j) = &self.journal {
            let entry = Entry::Notice {
                company: company.id.clone(),
                period: period.label(),
                kind: match kind {
                    Crossing::Warning => NoticeKind::Warning,
                    Crossing::Overage => NoticeKind::Overage,
                },
                raised_at: i64::try_from(now.div_euclid(1_000_000_000)).unwrap_or(i64::MAX),
            };
            let ticket = j.append(entry);
            match j.wait(ticket) {
                Ok(()) => {}
                // The journal is failing and keeps the entry: raise the notice once it
                // commits (the journal's commit hook releases it).
                Err(JournalError::NotAcknowledged { .. }) => {
                    let mut deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
                    if j.is_committed(ticket) {
                        drop(deferred);
                    } else {
                        deferred.push(ticket, e);
                        return None;
                    }
                }
                Err(_) => {
                    self.journal_errors.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone());
        Some(e)
    }

    /// Takes the notices raised so far (oldest first).
    pub fn drain_events(&self) -> Vec<QuotaEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
