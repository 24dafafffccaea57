//! Settlements and usage arithmetic (issue 15, item 5): no record, reservation, commit or
//! refund wraps usage, a commit beyond any sane cost is refused, and every crossing of
//! the warning or the limit raises its notice once, whichever path crosses it. The last
//! test runs random sequences against a plain `u128` reference model.

use std::collections::HashSet;

use proptest::prelude::*;
use tollgate_quota::journal::{Durability, Journal};
use tollgate_quota::{
    CommitOutcome, Company, Ledger, Outcome, Plans, QuotaConfig, QuotaEvent, SharedCharge,
};

const KEY: &str = "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77";
const KEY2: &str = "77aa0000-1111-2222-3333-444455556666";
/// 2026-11-10T00:00:00Z in Unix nanoseconds: every call falls in the period 2026-11.
const T: i128 = 1_794_268_800 * 1_000_000_000;
/// The journal's and the counters' ceiling (`MAX_USAGE`), as a literal.
const CEILING: u64 = i64::MAX as u64;
/// The commit bound (`MAX_COST`), as a literal.
const BOUND: u64 = 1 << 53;

/// One company with a limit of 100 calls (warning at 80, hard cap at 150 unless
/// `hard_cap` is `None`), users alice (KEY) and bob (KEY2).
fn config(hard_cap: Option<u32>) -> QuotaConfig {
    let plans: Plans =
        toml::from_str("[[plans]]\nname = \"free\"\ncalls_per_unit = 100\ndefault = true\n")
            .unwrap();
    QuotaConfig {
        plans,
        warning_percent: Some(80),
        hard_cap_percent: hard_cap,
        ..QuotaConfig::default()
    }
}

fn register(l: &Ledger) {
    l.upsert_company(Company::new("acme").with_units(1, 0), None, T)
        .unwrap();
    l.add_user("alice", "acme", T).unwrap();
    l.add_user("bob", "acme", T).unwrap();
    l.add_key(KEY, "alice").unwrap();
    l.add_key(KEY2, "bob").unwrap();
}

fn ledger(hard_cap: Option<u32>) -> Ledger {
    let l = Ledger::new(config(hard_cap));
    register(&l);
    l
}

/// The company's usage in the period.
fn used(l: &Ledger) -> u64 {
    l.target(KEY, T).unwrap().local_used
}

/// Each user's usage in the period: (alice, bob).
fn user_used(l: &Ledger) -> (u64, u64) {
    let rows = l.user_usage();
    let of = |u: &str| {
        rows.iter()
            .filter(|r| r.user.as_deref() == Some(u))
            .map(|r| r.used)
            .sum()
    };
    (of("alice"), of("bob"))
}

/// The kinds of the notices raised since the last call, oldest first.
fn notices(l: &Ledger) -> Vec<&'static str> {
    l.drain_events()
        .iter()
        .map(|e| match e {
            QuotaEvent::Warning { .. } => "warning",
            QuotaEvent::Overage { .. } => "overage",
        })
        .collect()
}

/// Calls of cost 1 admitted until the hard cap refuses one (at most 1,000).
fn calls_until_refused(l: &Ledger) -> u64 {
    (0..1_000)
        .take_while(|_| l.record(KEY, 1, T).unwrap().outcome != Outcome::Refused)
        .count() as u64
}

/// The reproduction: at usage 90, reserve 5 (95), commit u64::MAX. It used to
/// wrap usage to 89 and let 61 more calls through the hard cap of 150.
#[test]
fn a_commit_of_u64_max_neither_wraps_usage_nor_frees_calls() {
    let l = ledger(Some(150));
    l.record(KEY, 90, T).unwrap();
    let r = l.reserve(KEY, 5, T).unwrap();
    assert_eq!(used(&l), 95);
    let out = l.commit(r, u64::MAX, "req-1");
    assert_ne!(
        out,
        CommitOutcome::Committed,
        "a cost of u64::MAX is refused"
    );
    assert_eq!(
        used(&l),
        95,
        "the reservation stays counted at what it held"
    );
    assert_eq!(user_used(&l), (95, 0));
    assert_eq!(calls_until_refused(&l), 55, "150 - 95 calls left, not 61");
}

#[test]
fn a_commit_above_the_bound_is_too_large_and_its_key_is_not_remembered() {
    let l = ledger(Some(150));
    for cost in [BOUND + 1, i64::MAX as u64, u64::MAX] {
        let r = l.reserve(KEY, 2, T).unwrap();
        assert_eq!(l.commit(r, cost, "req-1"), CommitOutcome::TooLarge);
    }
    assert_eq!(used(&l), 6, "each refused commit keeps its hold of 2");
    // The key was not remembered: a good commit with it counts.
    let r = l.reserve(KEY, 2, T).unwrap();
    assert_eq!(l.commit(r, 3, "req-1"), CommitOutcome::Committed);
    assert_eq!(used(&l), 9);
    // The bound itself is a cost: counted, without wrapping.
    let r = l.reserve(KEY, 0, T).unwrap();
    assert_eq!(l.commit(r, BOUND, "req-2"), CommitOutcome::Committed);
    assert_eq!(used(&l), 9 + BOUND);
    assert_eq!(tollgate_quota::MAX_COST, BOUND);
    assert_eq!(tollgate_quota::MAX_USAGE, CEILING);
}

#[test]
fn a_commit_that_crosses_the_warning_raises_it() {
    let l = ledger(Some(150));
    l.record(KEY, 70, T).unwrap();
    let r = l.reserve(KEY, 5, T).unwrap();
    assert_eq!(notices(&l), Vec::<&str>::new());
    assert_eq!(l.commit(r, 20, "req-1"), CommitOutcome::Committed);
    assert_eq!(used(&l), 90);
    assert_eq!(notices(&l), ["warning"]);
    l.record(KEY, 1, T).unwrap();
    assert_eq!(notices(&l), Vec::<&str>::new(), "once");
}

#[test]
fn a_commit_that_crosses_the_limit_raises_the_overage() {
    let l = ledger(Some(150));
    l.record(KEY, 90, T).unwrap();
    assert_eq!(notices(&l), ["warning"]);
    let r = l.reserve(KEY, 1, T).unwrap();
    assert_eq!(l.commit(r, 20, "req-1"), CommitOutcome::Committed);
    assert_eq!(used(&l), 110);
    assert_eq!(notices(&l), ["overage"]);
    l.record(KEY, 1, T).unwrap();
    assert_eq!(notices(&l), Vec::<&str>::new(), "once");
}

/// Past the hard cap every later call is refused, so no later call could raise a notice:
/// the commit itself must.
#[test]
fn a_commit_past_the_hard_cap_raises_both_notices() {
    let l = ledger(Some(150));
    l.record(KEY, 10, T).unwrap();
    let r = l.reserve(KEY, 1, T).unwrap();
    assert_eq!(l.commit(r, 200, "req-1"), CommitOutcome::Committed);
    assert_eq!(used(&l), 210);
    assert_eq!(notices(&l), ["warning", "overage"]);
    assert_eq!(l.record(KEY, 1, T).unwrap().outcome, Outcome::Refused);
    assert_eq!(notices(&l), Vec::<&str>::new());
}

#[test]
fn a_record_past_both_thresholds_raises_both() {
    let l = ledger(Some(150));
    let d = l.record(KEY, 120, T).unwrap();
    assert!(matches!(
        d.event.as_deref(),
        Some(QuotaEvent::Overage { .. })
    ));
    assert_eq!(notices(&l), ["warning", "overage"]);
}

#[test]
fn a_shared_commit_raises_the_notices_of_the_shared_move() {
    let l = ledger(Some(150));
    let r = l
        .reserve_shared(KEY, 5, T, SharedCharge::Counted { prev: 70, used: 75 })
        .unwrap();
    assert_eq!(notices(&l), Vec::<&str>::new());
    // The shared counter went from 75 to 90 (held 5, final 20).
    assert_eq!(
        l.commit_shared(r, 20, "req-1", true, Some(90)),
        CommitOutcome::Committed
    );
    assert_eq!(notices(&l), ["warning"]);
    assert_eq!(used(&l), 20, "this ledger's share");
}

#[test]
fn user_and_company_counters_never_wrap() {
    let l = ledger(None);
    l.record(KEY, 10, T).unwrap();
    l.record(KEY, u64::MAX, T).unwrap();
    let first = user_used(&l).0;
    l.record(KEY, u64::MAX, T).unwrap();
    let (alice, bob) = user_used(&l);
    assert!(alice >= first, "user usage went down: {first} -> {alice}");
    assert_eq!((alice, bob), (used(&l), 0));
    assert_eq!(alice, CEILING);
}

#[test]
fn a_refund_of_a_saturated_reservation_gives_back_only_what_it_took() {
    let l = ledger(None);
    l.record(KEY, 10, T).unwrap();
    let r = l.reserve(KEY, u64::MAX, T).unwrap();
    l.refund(r);
    assert_eq!(used(&l), 10);
    assert_eq!(user_used(&l), (10, 0));
}

/// Two users at the ceiling: the company row of the journal, their sum, used to
/// overflow SQLite's INTEGER (it turns into a REAL) and the journal could no longer be
/// opened.
#[test]
fn a_saturated_count_is_journaled_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    {
        let (journal, snap) = Journal::open(&path, Durability::Strict).unwrap();
        let l = Ledger::with_journal(config(None), journal, snap);
        register(&l);
        l.record(KEY, u64::MAX, T).unwrap();
        l.record(KEY2, u64::MAX, T).unwrap();
        l.sync().unwrap();
        // Later batches carry whatever the first could not.
        l.record(KEY, 1, T).unwrap();
        l.sync().unwrap();
        l.journal().unwrap().flush().unwrap();
    }
    let (journal, snap) = Journal::open(&path, Durability::Strict).expect("reopens");
    let l = Ledger::with_journal(config(None), journal, snap);
    register(&l);
    assert_eq!(user_used(&l), (CEILING, CEILING));
    assert_eq!(used(&l), CEILING);
}

// ---------------------------------------------------------------------------------------
// The reference model.

#[derive(Clone, Debug)]
enum Op {
    Record {
        bob: bool,
        cost: u64,
    },
    Reserve {
        bob: bool,
        cost: u64,
    },
    /// Commits the `which`-th outstanding reservation (modulo their number).
    Commit {
        which: usize,
        cost: u64,
        key: u8,
    },
    Refund {
        which: usize,
    },
}

/// Costs: mostly small (around the thresholds of 80, 100 and 150), some at and around
/// the commit bound, some at the ceiling and at `u64::MAX`.
fn cost() -> impl Strategy<Value = u64> {
    prop_oneof![
        10 => 0u64..30,
        3 => 0u64..200,
        2 => (BOUND - 2)..=(BOUND + 2),
        1 => Just(CEILING),
        1 => Just(u64::MAX),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), cost()).prop_map(|(bob, cost)| Op::Record { bob, cost }),
        (any::<bool>(), cost()).prop_map(|(bob, cost)| Op::Reserve { bob, cost }),
        (any::<usize>(), cost(), 0u8..4).prop_map(|(which, cost, key)| Op::Commit {
            which,
            cost,
            key
        }),
        any::<usize>().prop_map(|which| Op::Refund { which }),
    ]
}

/// The plain model: usage as an exact `u128` sum of what was counted, per company and
/// per user.
#[derive(Default)]
struct Model {
    company: u128,
    users: [u128; 2],
    /// Whether the exact sum ever passed the ledger's ceiling (from then on the model
    /// checks only that nothing wrapped).
    saturated: bool,
    warned: bool,
    over: bool,
    keys: HashSet<u8>,
}

impl Model {
    fn add(&mut self, user: usize, n: u128) {
        self.company += n;
        self.users[user] += n;
        self.crossed();
    }

    fn sub(&mut self, user: usize, n: u128) {
        self.company -= n;
        self.users[user] -= n;
    }

    fn crossed(&mut self) {
        self.warned |= self.company >= 80;
        self.over |= self.company > 100;
        self.saturated |= self.company > u128::from(CEILING);
    }

    /// Whether a call of `cost` is refused by the hard cap (exact arithmetic).
    fn refuses(&self, cap: Option<u64>, cost: u64) -> bool {
        cap.is_some_and(|cap| self.company + u128::from(cost) > u128::from(cap))
    }
}

/// A reservation and what the model holds for it.
struct Held {
    r: tollgate_quota::Reservation,
    user: usize,
    held: u128,
}

fn run(hard_cap: Option<u32>, ops: &[Op]) -> Result<(), TestCaseError> {
    let l = ledger(hard_cap);
    let cap = hard_cap.map(|p| 100 * u64::from(p) / 100);
    let mut m = Model::default();
    let mut open: Vec<Held> = Vec::new();
    let mut raised = Vec::new();
    for op in ops {
        let before = used(&l);
        let exact = !m.saturated;
        // Whether this operation can only raise usage (else it can only lower it), and
        // by how much at most (a wrap would move it by about 2^64).
        let rises;
        let most: u128;
        match *op {
            Op::Record { bob, cost } | Op::Reserve { bob, cost } => {
                rises = true;
                most = u128::from(cost);
                let key = if bob { KEY2 } else { KEY };
                let reserve = matches!(op, Op::Reserve { .. });
                let decision = if reserve {
                    let r = l.reserve(key, cost, T).unwrap();
                    let d = r.decision.clone();
                    let held = if d.outcome == Outcome::Refused {
                        0
                    } else {
                        cost
                    };
                    open.push(Held {
                        r,
                        user: usize::from(bob),
                        held: u128::from(held),
                    });
                    d
                } else {
                    l.record(key, cost, T).unwrap()
                };
                let refused = decision.outcome == Outcome::Refused;
                if !m.saturated {
                    prop_assert_eq!(refused, m.refuses(cap, cost), "{:?} at {}", op, m.company);
                }
                if !refused {
                    m.add(usize::from(bob), u128::from(cost));
                }
            }
            Op::Commit { which, cost, key } => {
                if open.is_empty() {
                    continue;
                }
                let h = open.swap_remove(which % open.len());
                let out = l.commit(h.r, cost, &format!("req-{key}"));
                most = h.held.max(u128::from(cost));
                if cost > BOUND {
                    prop_assert_eq!(out, CommitOutcome::TooLarge);
                    rises = true; // nothing moves
                } else if m.keys.insert(key) {
                    prop_assert_eq!(out, CommitOutcome::Committed);
                    rises = u128::from(cost) >= h.held;
                    m.sub(h.user, h.held);
                    m.add(h.user, u128::from(cost));
                } else {
                    prop_assert_eq!(out, CommitOutcome::Duplicate);
                    rises = false;
                    m.sub(h.user, h.held);
                }
            }
            Op::Refund { which } => {
                if open.is_empty() {
                    continue;
                }
                let h = open.swap_remove(which % open.len());
                rises = false;
                most = h.held;
                l.refund(h.r);
                m.sub(h.user, h.held);
            }
        }
        raised.extend(notices(&l));
        let after = used(&l);
        prop_assert!(after <= CEILING, "usage {} above the ceiling", after);
        prop_assert!(
            u128::from(after.abs_diff(before)) <= most,
            "{:?}: usage jumped {} -> {}",
            op,
            before,
            after
        );
        // Past the ceiling what a reservation took may be less than it asked for, so
        // only an exact model predicts the direction.
        if exact && rises {
            prop_assert!(
                after >= before,
                "{:?}: usage went down {} -> {}",
                op,
                before,
                after
            );
        } else if exact {
            prop_assert!(
                after <= before,
                "{:?}: usage went up {} -> {}",
                op,
                before,
                after
            );
        }
        let (alice, bob) = user_used(&l);
        prop_assert!(alice <= CEILING && bob <= CEILING);
        if !m.saturated {
            prop_assert_eq!(u128::from(after), m.company, "{:?}", op);
            prop_assert_eq!(
                (u128::from(alice), u128::from(bob)),
                (m.users[0], m.users[1])
            );
        }
    }
    let expected: Vec<&str> = [m.over.then_some("overage"), m.warned.then_some("warning")]
        .into_iter()
        .flatten()
        .collect();
    let mut got = raised.clone();
    got.sort_unstable();
    got.dedup();
    prop_assert_eq!(
        got.len(),
        raised.len(),
        "a notice raised twice: {:?}",
        raised
    );
    prop_assert_eq!(got, expected, "notices {:?}", raised);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random records, reservations, commits (huge costs included) and refunds against
    /// the plain `u128` model: usage never wraps (every rise rises, every fall falls,
    /// nothing passes the ceiling), matches the model exactly while the model stays
    /// under the ceiling, the hard cap refuses exactly what the model refuses, and the
    /// notices raised are the thresholds the model crossed, each once.
    #[test]
    fn settlements_match_a_u128_model(
        capped in any::<bool>(),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        run(capped.then_some(150), &ops)?;
    }
}
