//! The usage hook: every counted move of the quota (a call or a reservation counted, a
//! commit's or a refund's settlement) handed to a [`UsageSink`] on the thread that made
//! it, from the one charge path (`charge.rs`).
//!
//! A sink is how a fleet's billing ledger (PostgreSQL, in `tollgate-postgres`) learns
//! each instance's usage without the hot path waiting on it: the sink queues the move
//! and returns; something else writes it. [`UsageSink::record`] must never block and
//! never fail the call: a sink that cannot keep a move drops it and counts the drop.

use std::fmt;
use std::sync::Arc;

use crate::period::Period;

use super::state::Ledger;

/// One counted move of a company's and a user's usage in a period.
///
/// `calls` is the number of calls the move admitted (1 for a counted call or
/// reservation, 0 for a settlement); `units` is the signed change of the company's
/// counter (the call's cost; a commit's final cost minus what its reservation held; a
/// refund's minus what it held). Summed over every move of a company and period, `units`
/// is that company's usage in this ledger (as [`Ledger::company_usage`] reports it) and
/// `calls` the calls it admitted. A refused call moves nothing and is not handed over.
#[derive(Clone, Copy, Debug)]
pub struct UsageMove<'a> {
    /// The company's id.
    pub company: &'a str,
    /// The user's id.
    pub user: &'a str,
    /// The period charged (its [`label`](Period::label) and [`start`](Period::start)).
    pub period: &'a Period,
    /// Calls admitted by the move (1 or 0).
    pub calls: i64,
    /// The signed change of the usage, in quota units.
    pub units: i64,
}

/// Where a [`Ledger`] hands every counted move of usage, from the one charge path.
///
/// A sink is how a fleet's billing ledger (PostgreSQL, `tollgate_postgres::PgLedgerSink`)
/// learns each instance's usage without the hot path waiting on it: the sink queues the
/// move and returns; something else writes it. A sink that cannot keep a move drops it
/// and counts the drop.
pub trait UsageSink: Send + Sync {
    /// Takes one move. Called on the deciding thread: it must not block (no I/O, no
    /// waiting on a full queue) and cannot refuse the call it reports.
    fn record(&self, usage: &UsageMove<'_>);
}

/// The sink slot of a ledger: `None` costs the hot path one branch.
#[derive(Clone, Default)]
pub(super) struct SinkSlot(pub(super) Option<Arc<dyn UsageSink>>);

impl fmt::Debug for SinkSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl Ledger {
    /// Hands every counted move of usage from now on to `sink` (see [`UsageSink`]).
    /// Set it before the ledger is shared (the engine does, from
    /// `EngineBuilder::usage_sink`).
    pub fn set_usage_sink(&mut self, sink: Arc<dyn UsageSink>) {
        self.usage_sink = SinkSlot(Some(sink));
    }

    /// Whether a usage sink is set.
    pub fn has_usage_sink(&self) -> bool {
        self.usage_sink.0.is_some()
    }

    /// Reports a move to the sink, if any; a move of nothing is not reported.
    #[inline(always)]
    pub(super) fn sink_move(
        &self,
        company: &str,
        user: &str,
        period: &Period,
        calls: i64,
        units: i64,
    ) {
        if let Some(sink) = &self.usage_sink.0 {
            if calls != 0 || units != 0 {
                sink.record(&UsageMove {
                    company,
                    user,
                    period,
                    calls,
                    units,
                });
            }
        }
    }
}

/// Signed difference `used - prev` of a counter move (both at most `MAX_USAGE`).
#[inline(always)]
pub(super) fn signed_move((prev, used): (u64, u64)) -> i64 {
    (used as i128 - prev as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::ledger::{CommitOutcome, Outcome, QuotaConfig};
    use crate::plan::Company;

    const KEY: &str = "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77";
    const KEY2: &str = "77aa0000-1111-2222-3333-444455556666";

    type Sums = BTreeMap<(String, String, String), (i64, i64)>;

    #[derive(Default)]
    struct Collect(Mutex<Sums>);

    impl UsageSink for Collect {
        fn record(&self, m: &UsageMove<'_>) {
            let mut s = self.0.lock().unwrap();
            let e = s
                .entry((m.company.into(), m.user.into(), m.period.label()))
                .or_default();
            e.0 += m.calls;
            e.1 += m.units;
        }
    }

    fn ns(s: &str) -> i128 {
        s.parse::<jiff::Timestamp>().unwrap().as_nanosecond()
    }

    #[test]
    fn every_counted_move_reaches_the_sink_and_sums_to_the_ledgers_usage() {
        let config = QuotaConfig {
            hard_cap_percent: Some(150),
            ..QuotaConfig::default()
        };
        let mut l = Ledger::new(config);
        let sink = Arc::new(Collect::default());
        assert!(!l.has_usage_sink());
        l.set_usage_sink(sink.clone());
        assert!(l.has_usage_sink());
        let nov = ns("2026-11-02T00:00:00Z");
        l.upsert_company(Company::new("acme").with_override(10), None, nov)
            .unwrap();
        l.add_user("alice", "acme", nov).unwrap();
        l.add_user("bob", "acme", nov).unwrap();
        l.add_key(KEY, "alice").unwrap();
        l.add_key(KEY2, "bob").unwrap();

        // Calls: 3 by alice (cost 1, 2, 1), one by bob of cost 4.
        for cost in [1, 2, 1] {
            l.record(KEY, cost, nov).unwrap();
        }
        l.record(KEY2, 4, nov).unwrap();
        // A refused call (over the hard cap of 15) moves nothing.
        let refused = l.record(KEY2, 100, nov).unwrap();
        assert_eq!(refused.outcome, Outcome::Refused);
        // A reservation of 3 committed at 5, one of 2 refunded, one committed twice.
        let r = l.reserve(KEY, 3, nov).unwrap();
        assert_eq!(l.commit(r, 5, "job-1"), CommitOutcome::Committed);
        let r = l.reserve(KEY2, 2, nov).unwrap();
        l.refund(r);
        let r = l.reserve(KEY, 1, nov).unwrap();
        assert_eq!(l.commit(r, 1, "job-1"), CommitOutcome::Duplicate);
        // A call in December is another period.
        l.record(KEY, 1, ns("2026-12-01T00:00:00Z")).unwrap();

        let got = sink.0.lock().unwrap().clone();
        let key = |u: &str, p: &str| ("acme".to_owned(), u.to_owned(), p.to_owned());
        let want: Sums = [
            // 3 calls + 2 reservations admitted; units 1+2+1 + 5 (3 held, settled at 5)
            // + 0 (the duplicate's hold released).
            (key("alice", "2026-11"), (5, 9)),
            // 1 call + 1 refunded reservation; units 4 + 0.
            (key("bob", "2026-11"), (2, 4)),
            (key("alice", "2026-12"), (1, 1)),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
        // Summed per company and period, the units are the ledger's own usage.
        let mut by_company: BTreeMap<String, i64> = BTreeMap::new();
        for ((_, _, p), (_, units)) in &got {
            *by_company.entry(p.clone()).or_default() += units;
        }
        for row in l.company_usage() {
            assert_eq!(by_company[&row.period], row.used as i64, "{row:?}");
        }
        for row in l.user_usage() {
            let u = row.user.clone().unwrap();
            assert_eq!(got[&key(&u, &row.period)].1, row.used as i64, "{row:?}");
        }
    }
}
