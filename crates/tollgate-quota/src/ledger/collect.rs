//! The journal's collector: what the ledger's counters changed since the last batch,
//! as usage entries.

use std::sync::atomic::Ordering;

use crate::journal::Entry;
use crate::period::Period;

use super::directory::Directory;
use super::usage::PeriodUsage;

/// The journal entry for `calls` (negative: given back) by `user` of `company` in `period`.
fn usage_entry(company: &str, user: &str, period: &Period, calls: i64) -> Entry {
    Entry::Usage {
        company: company.to_owned(),
        user: Some(user.to_owned()),
        period_start: period.start().as_second(),
        period: period.label(),
        calls,
    }
}

/// The journal's collector: adds, for every user and period whose usage changed since the
/// last batch, the difference as one usage entry (which adds to the user's row and the
/// company total row in the same transaction). Runs on the journal's writer thread, under
/// the journal's lock; the hot path never touches the journal.
///
/// Only user counters are read: every counted call adds to its user's counter and its
/// company's, so the company row stays the sum of its users' rows.
pub(super) fn collect_usage(directory: &Directory, batch: &mut Vec<Entry>) {
    collect_limits(directory, batch);
    for user in directory.users.values() {
        let mut push = |u: &PeriodUsage| {
            let now = u.counter.used();
            let before = u.journaled.load(Ordering::Relaxed);
            if now == before {
                return;
            }
            // A difference beyond i64 (not reachable by real counts) goes in pieces: the
            // rest is taken by the next batch.
            let delta = i64::try_from(i128::from(now) - i128::from(before))
                .unwrap_or(if now > before { i64::MAX } else { i64::MIN });
            let journaled = i128::from(before) + i128::from(delta);
            u.journaled
                .store(u64::try_from(journaled).unwrap_or(now), Ordering::Relaxed);
            batch.push(usage_entry(&user.company.id, &user.id, &u.period, delta));
        };
        for (_, u) in user.usage.periods.iter() {
            push(u);
        }
    }
}

/// Adds, for every company period whose limit in force differs from the one the journal
/// holds (a new period, a limit changed while it is current, or a restart's policy
/// giving another limit for the current period), its `period_limits` row. An ended
/// period's limit is final once the limit changed after it ended (see
/// `Usage::freeze_ended`), so its row then keeps the limit of its statement.
fn collect_limits(directory: &Directory, batch: &mut Vec<Entry>) {
    for company in directory.companies.values() {
        let current = company.limit.load(Ordering::Relaxed);
        for (_, u) in company.usage.periods.iter() {
            let limit = u.limit_in_force(current);
            if u.limit_journaled.swap(limit, Ordering::Relaxed) != limit {
                batch.push(Entry::PeriodLimit {
                    company: company.id.clone(),
                    period_start: u.period.start().as_second(),
                    period: u.period.label(),
                    limit,
                });
            }
        }
    }
}
