//! Model test of the quota ledger against a plain `BTreeMap` reference: random sequences
//! of calls, reservations, machines added, time moving across month boundaries and
//! restarts (the ledger is journaled to SQLite, dropped and rebuilt from the journal).
//!
//! The reference knows nothing of atomics or snapshots: usage per (company, month), the
//! limit as `10 x machines` (the test's plan), the hard cap at 150 %, the warning at 80 %,
//! and one flag per notice per (company, month).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use tollgate_quota::jiff::Timestamp;
use tollgate_quota::journal::{Durability, Journal};
use tollgate_quota::{Company, Ledger, Outcome, Plans, QuotaConfig, QuotaEvent};

const COMPANIES: [&str; 2] = ["acme", "globex"];
const USERS: [(&str, usize); 3] = [("alice", 0), ("bob", 0), ("carol", 1)];

fn key_of(user: usize) -> String {
    format!("key-{user}-0000-0000-000000000000")
}

#[derive(Clone, Debug)]
enum Op {
    Record {
        user: usize,
        cost: u64,
    },
    ReserveCommit {
        user: usize,
        hold: u64,
        cost: u64,
        idem: u8,
    },
    ReserveRefund {
        user: usize,
        hold: u64,
    },
    AddMachine {
        company: usize,
    },
    Advance {
        hours: u64,
    },
    /// A restart; `flush` first, or rely on the graceful shutdown of dropping the ledger.
    Restart {
        flush: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0..6u64).prop_map(|(user, cost)| Op::Record { user, cost }),
        2 => (0..3usize, 0..6u64, 0..6u64, 0..4u8)
            .prop_map(|(user, hold, cost, idem)| Op::ReserveCommit { user, hold, cost, idem }),
        1 => (0..3usize, 0..6u64).prop_map(|(user, hold)| Op::ReserveRefund { user, hold }),
        1 => (0..2usize).prop_map(|company| Op::AddMachine { company }),
        2 => (0..400u64).prop_map(|hours| Op::Advance { hours }),
        1 => any::<bool>().prop_map(|flush| Op::Restart { flush }),
    ]
}

/// The reference: plain maps.
#[derive(Debug, Default)]
struct Model {
    machines: [u64; 2],
    used: BTreeMap<(usize, String), u64>,
    user_used: BTreeMap<(usize, String), u64>,
    flags: BTreeSet<(usize, String, &'static str)>,
    committed: BTreeSet<(usize, String, u8)>,
}

impl Model {
    fn limit(&self, c: usize) -> u64 {
        10 * self.machines[c]
    }

    /// Returns (outcome, used, event kind).
    fn charge(
        &mut self,
        user: usize,
        cost: u64,
        month: &str,
    ) -> (Outcome, u64, Option<&'static str>) {
        let c = USERS[user].1;
        let limit = self.limit(c);
        let cap = limit * 150 / 100;
        let used = self.used.entry((c, month.to_owned())).or_default();
        let prev = *used;
        if prev + cost > cap {
            return (Outcome::Refused, prev, None);
        }
        *used += cost;
        let now = *used;
        *self.user_used.entry((user, month.to_owned())).or_default() += cost;
        let mut event = None;
        if now > limit {
            // A move past both thresholds raises both, the warning first; the decision
            // carries the most severe.
            let w = limit * 80 / 100;
            if now >= w && self.flags.insert((c, month.to_owned(), "warning")) {
                event = Some("warning");
            }
            if self.flags.insert((c, month.to_owned(), "overage")) {
                event = Some("overage");
            }
        } else {
            let w = limit * 80 / 100;
            if now >= w && prev < w && self.flags.insert((c, month.to_owned(), "warning")) {
                event = Some("warning");
            }
        }
        let outcome = if now > limit {
            Outcome::OverLimit
        } else {
            Outcome::Within
        };
        (outcome, now, event)
    }

    fn settle(&mut self, user: usize, month: &str, held: u64, settle: u64) {
        let c = USERS[user].1;
        for v in [
            self.used.entry((c, month.to_owned())).or_default(),
            self.user_used.entry((user, month.to_owned())).or_default(),
        ] {
            *v = (*v + settle).saturating_sub(held);
        }
        // A commit that crosses a threshold raises its notice like any charge.
        let now = self.used[&(c, month.to_owned())];
        let limit = self.limit(c);
        if now >= limit * 80 / 100 && now > 0 {
            self.flags.insert((c, month.to_owned(), "warning"));
        }
        if now > limit {
            self.flags.insert((c, month.to_owned(), "overage"));
        }
    }
}

fn kind(e: &QuotaEvent) -> &'static str {
    match e {
        QuotaEvent::Warning { .. } => "warning",
        QuotaEvent::Overage { .. } => "overage",
    }
}

fn month_of(t: Timestamp) -> String {
    t.strftime("%Y-%m").to_string()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn ledger_matches_the_reference(ops in prop::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let config = || {
            let plans: Plans = toml::from_str(
                "[[plans]]\nname = \"free\"\ncalls_per_unit = 10\ndefault = true\n",
            ).unwrap();
            QuotaConfig { plans, ..QuotaConfig::default() }
        };
        let mut model = Model { machines: [1, 1], ..Model::default() };
        let mut now: Timestamp = "2026-10-30T00:00:00Z".parse().unwrap();
        // Opens the journal and registers everyone, as a service does at start-up.
        let start = |machines: [u64; 2], now: Timestamp| {
            let (journal, snapshot) = Journal::open(&path, Durability::Strict).unwrap();
            let ledger = Ledger::with_journal(config(), journal, snapshot);
            for (i, c) in COMPANIES.iter().enumerate() {
                ledger.upsert_company(Company::new(*c).with_units(machines[i], 0), None, now.as_nanosecond()).unwrap();
            }
            for (u, (name, c)) in USERS.iter().enumerate() {
                ledger.add_user(name, COMPANIES[*c], now.as_nanosecond()).unwrap();
                ledger.add_key(&key_of(u), name).unwrap();
            }
            ledger
        };
        let mut ledger = start(model.machines, now);
        let mut all_events = Vec::new();
        for op in ops {
            let month = month_of(now);
            let t = now.as_nanosecond();
            match op {
                Op::Record { user, cost } => {
                    let d = ledger.record(&key_of(user), cost, t).unwrap();
                    let (outcome, used, event) = model.charge(user, cost, &month);
                    prop_assert_eq!(d.outcome, outcome);
                    prop_assert_eq!(d.used, used);
                    prop_assert_eq!(d.limit, model.limit(USERS[user].1));
                    prop_assert_eq!(d.event.as_deref().map(kind), event);
                }
                Op::ReserveCommit { user, hold, cost, idem } => {
                    let r = ledger.reserve(&key_of(user), hold, t).unwrap();
                    let (outcome, used, event) = model.charge(user, hold, &month);
                    prop_assert_eq!(r.decision.outcome, outcome);
                    prop_assert_eq!(r.decision.used, used);
                    prop_assert_eq!(r.decision.event.as_deref().map(kind), event);
                    let held = if outcome == Outcome::Refused { 0 } else { hold };
                    let fresh = model.committed.insert((USERS[user].1, month.clone(), idem));
                    let out = ledger.commit(r, cost, &format!("idem-{idem}"));
                    prop_assert_eq!(out == tollgate_quota::CommitOutcome::Committed, fresh);
                    model.settle(user, &month, held, if fresh { cost } else { 0 });
                }
                Op::ReserveRefund { user, hold } => {
                    let r = ledger.reserve(&key_of(user), hold, t).unwrap();
                    let (outcome, _, _) = model.charge(user, hold, &month);
                    let held = if outcome == Outcome::Refused { 0 } else { hold };
                    ledger.refund(r);
                    model.settle(user, &month, held, 0);
                }
                Op::AddMachine { company } => {
                    model.machines[company] += 1;
                    let limit = ledger
                        .upsert_company(Company::new(COMPANIES[company]).with_units(model.machines[company], 0), None, t)
                        .unwrap();
                    prop_assert_eq!(limit.calls, model.limit(company));
                }
                Op::Advance { hours } => {
                    now = now.checked_add(tollgate_quota::jiff::SignedDuration::from_hours(hours as i64)).unwrap();
                }
                Op::Restart { flush } => {
                    if flush {
                        ledger.sync().unwrap();
                    }
                    all_events.extend(ledger.drain_events());
                    drop(ledger);
                    ledger = start(model.machines, now);
                }
            }
        }
        // Reports equal the reference, period by period (empty periods aside).
        let got: BTreeMap<(usize, String), u64> = ledger
            .company_usage()
            .into_iter()
            .filter(|r| r.used > 0)
            .map(|r| ((COMPANIES.iter().position(|c| *c == r.company).unwrap(), r.period), r.used))
            .collect();
        let want: BTreeMap<(usize, String), u64> = model.used.into_iter().filter(|(_, v)| *v > 0).collect();
        prop_assert_eq!(got, want);
        let got_users: BTreeMap<(usize, String), u64> = ledger
            .user_usage()
            .into_iter()
            .filter(|r| r.used > 0)
            .map(|r| {
                let u = USERS.iter().position(|(n, _)| Some(*n) == r.user.as_deref()).unwrap();
                ((u, r.period), r.used)
            })
            .collect();
        let want_users: BTreeMap<(usize, String), u64> = model.user_used.into_iter().filter(|(_, v)| *v > 0).collect();
        prop_assert_eq!(got_users, want_users);
        // Exactly the notices the reference raised, once each.
        all_events.extend(ledger.drain_events());
        let events = all_events;
        let distinct: BTreeSet<_> = events.iter().map(|e| match e {
            QuotaEvent::Warning { company, period, .. } | QuotaEvent::Overage { company, period, .. } => (company.clone(), period.clone(), kind(e)),
        }).collect();
        prop_assert_eq!(distinct.len(), events.len(), "a notice was raised twice");
        prop_assert_eq!(events.len(), model.flags.len());
    }
}
