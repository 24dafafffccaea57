//! `Gcra` and `SlidingWindow` driven through the `Algorithm` trait by arbitrary rates and
//! sequences of checks, peeks and refunds at arbitrary times (including `u64` extremes and
//! a clock that goes backwards).
//!
//! Checked for every decision: no panic; `limit == capacity()`; `remaining <= limit`;
//! `decide` is deterministic; an allowed decision has `retry_after == 0` and changes the
//! state exactly when the cost is non-zero; a denied one changes nothing and has
//! `retry_after > 0`; waiting `retry_after` is enough (deciding the same request at
//! `now + retry_after` on the same state is allowed, when that time fits in `u64` and
//! `retry_after != u64::MAX`); `remaining` equals what a cost-0 probe of the resulting
//! state reports; the resulting state is fresh at `now + reset_after` and not one
//! nanosecond earlier. For every refund: a state fresh at `now` stays fresh (and a GCRA
//! refund never moves the TAT forward, nor below `min(state, now)`).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tollgate_core::{Algorithm, Decision, Gcra, Rate, SlidingWindow, FRESH};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// A count or burst: small values reach the sliding window (at most 65,535 per window).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Num {
    Small(u16),
    Any(u64),
}

impl Num {
    fn get(self) -> u64 {
        match self {
            Num::Small(n) => u64::from(n),
            Num::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Period {
    Nanos(u64),
    Millis(u32),
    Secs(u32),
}

impl Period {
    fn nanos(self) -> u64 {
        match self {
            Period::Nanos(n) => n,
            Period::Millis(n) => u64::from(n) * MS,
            Period::Secs(n) => u64::from(n) * S,
        }
    }
}

/// When the next operation happens, relative to the previous one (saturating).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum When {
    Same,
    AfterNanos(u32),
    AfterMillis(u32),
    AfterSecs(u32),
    BackNanos(u32),
    BackSecs(u32),
    At(u64),
}

impl When {
    fn apply(self, now: u64) -> u64 {
        match self {
            When::Same => now,
            When::AfterNanos(d) => now.saturating_add(u64::from(d)),
            When::AfterMillis(d) => now.saturating_add(u64::from(d) * MS),
            When::AfterSecs(d) => now.saturating_add(u64::from(d) * S),
            When::BackNanos(d) => now.saturating_sub(u64::from(d)),
            When::BackSecs(d) => now.saturating_sub(u64::from(d) * S),
            When::At(t) => t,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    /// Decide and apply the new state.
    Check,
    /// Decide and throw the new state away.
    Peek,
    /// Give back `cost` units (any `u64`).
    Refund,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Op {
    when: When,
    /// For checks and peeks, reduced into `0..=capacity()` (the limiters turn a larger
    /// cost into an error before the algorithm sees it); for refunds, used as is.
    cost: u64,
    kind: Kind,
}

#[derive(Arbitrary, Debug)]
struct Input {
    count: Num,
    period: Period,
    /// `None`: the burst equals the count.
    burst: Option<Num>,
    start: u64,
    ops: Vec<Op>,
}

fn check_decision<A: Algorithm>(
    alg: &A,
    state: u64,
    now: u64,
    cost: u64,
    d: Decision,
    next: Option<u64>,
) {
    let ctx = || format!("{alg:?} state={state} now={now} cost={cost} -> {d:?}, {next:?}");
    assert_eq!(d.limit, alg.capacity(), "limit != capacity: {}", ctx());
    assert!(d.remaining <= d.limit, "remaining > limit: {}", ctx());
    assert_eq!(
        alg.decide(state, now, cost),
        (d, next),
        "decide is not deterministic: {}",
        ctx()
    );

    if d.allowed() {
        assert_eq!(d.retry_after, 0, "allowed with retry_after: {}", ctx());
        assert_eq!(
            next.is_some(),
            cost > 0,
            "an allowed request changes the state iff its cost is non-zero: {}",
            ctx()
        );
        if let Some(n) = next {
            assert!(
                !alg.is_fresh(n, now),
                "state fresh right after a use: {}",
                ctx()
            );
        }
    } else {
        assert!(
            next.is_none(),
            "a denied request changed the state: {}",
            ctx()
        );
        assert!(d.retry_after > 0, "denied with retry_after 0: {}", ctx());
        if d.retry_after != u64::MAX {
            if let Some(later) = now.checked_add(d.retry_after) {
                let (d2, _) = alg.decide(state, later, cost);
                assert!(
                    d2.allowed(),
                    "waiting retry_after is not enough: {} ; at {later}: {d2:?}",
                    ctx()
                );
            }
        }
    }

    let after = next.unwrap_or(state);
    let probe = alg.decide(after, now, 0).0;
    assert_eq!(
        probe.remaining,
        d.remaining,
        "remaining differs from a probe of the resulting state ({probe:?}): {}",
        ctx()
    );

    if d.reset_after != u64::MAX {
        if let Some(reset) = now.checked_add(d.reset_after) {
            assert!(
                alg.is_fresh(after, reset),
                "not fresh at now + reset_after = {reset}: {}",
                ctx()
            );
            if d.reset_after > 0 {
                assert!(
                    !alg.is_fresh(after, reset - 1),
                    "already fresh before now + reset_after = {reset}: {}",
                    ctx()
                );
            }
        }
    }
}

fn drive<A: Algorithm>(alg: A, start: u64, ops: &[Op], is_gcra: bool) {
    let cap = alg.capacity();
    assert!(cap >= 1, "{alg:?}: capacity 0");
    let mut state = FRESH;
    let mut now = start;
    for op in ops {
        now = op.when.apply(now);
        match op.kind {
            Kind::Check | Kind::Peek => {
                let cost = if op.cost > cap {
                    op.cost % (cap + 1)
                } else {
                    op.cost
                };
                let (d, next) = alg.decide(state, now, cost);
                // The fast admission test the compare-exchange loops use must agree.
                assert_eq!(
                    alg.admit(state, now, cost),
                    next,
                    "{alg:?}: admit({state}, {now}, {cost}) disagrees with decide"
                );
                // Any cost, even one the limiters would reject, must not panic.
                let _ = alg.admit(state, now, op.cost);
                check_decision(&alg, state, now, cost, d, next);
                if let (Kind::Check, Some(n)) = (op.kind, next) {
                    state = n;
                }
            }
            Kind::Refund => {
                let after = alg.refund(state, now, op.cost);
                if alg.is_fresh(state, now) {
                    assert!(
                        alg.is_fresh(after, now),
                        "{alg:?}: refund({state}, {now}, {}) = {after} is no longer fresh",
                        op.cost
                    );
                }
                if is_gcra {
                    assert!(
                        after <= state && after >= state.min(now),
                        "{alg:?}: refund({state}, {now}, {}) = {after}",
                        op.cost
                    );
                }
                state = after;
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let count = input.count.get();
    let burst = input.burst.map_or(count, Num::get);
    let Ok(rate) = Rate::from_nanos(count, input.period.nanos(), burst) else {
        return;
    };

    let gcra = Gcra::new(rate);
    assert_eq!(
        u128::from(gcra.tolerance()),
        u128::from(gcra.emission_interval()) * u128::from(rate.burst())
    );
    drive(gcra, input.start, &input.ops, true);

    if let Ok(sw) = SlidingWindow::new(rate) {
        drive(sw, input.start, &input.ops, false);
    }
});
