//! Model-based test of `KeyedGcraLimiter` (and so of `KeyedStore`): a small store
//! (capacity 1..=64, so new keys regularly find it full) against a model that is one
//! plain `GcraLimiter` per key, under checks, peeks, refunds, resets and full eviction
//! sweeps at non-decreasing times.
//!
//! Checked: whenever the keyed limiter gives a decision (or a capacity error) it equals
//! the model's; `StoreFull` comes only for a new key whose request would change its state,
//! and only when every slot holds a key that is live in the model (the model is then left
//! unchanged). After every operation: `len() <= slots()`; every stored key's state equals
//! its model state, every key not stored is fresh in the model (eviction never changed a
//! decision), and `len()` counts exactly the stored keys; after `evict_fresh_at`, exactly
//! the live keys remain.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tollgate_core::{
    Algorithm, Gcra, GcraLimiter, KeyedError, KeyedGcraLimiter, ManualClock, Rate,
};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Check { key: u8, cost: u8, dt: u16 },
    Peek { key: u8, cost: u8, dt: u16 },
    Refund { key: u8, cost: u8, dt: u16 },
    Reset { key: u8 },
    EvictFresh { dt: u16 },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Start {
    Zero,
    Small(u32),
    Any(u64),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Store capacity: `capacity % 64 + 1`.
    capacity: u8,
    /// The rate: `count` per `period` nanoseconds, burst `burst` (invalid rates are
    /// skipped). Emission intervals up to 65,535 ns match the `dt` steps of the ops.
    count: u8,
    period: u16,
    burst: u8,
    start: Start,
    ops: Vec<Op>,
}

type Model = HashMap<u8, GcraLimiter<ManualClock>>;

fn model_entry(model: &mut Model, gcra: Gcra, key: u8) -> &GcraLimiter<ManualClock> {
    model
        .entry(key)
        .or_insert_with(|| GcraLimiter::with_clock(gcra, ManualClock::new(0)))
}

fn live_in_model(model: &Model, gcra: Gcra, now: u64) -> usize {
    model
        .values()
        .filter(|l| !gcra.is_fresh(l.state(), now))
        .count()
}

fn check_store(keyed: &KeyedGcraLimiter<u8, ManualClock>, model: &Model, gcra: Gcra, now: u64) {
    let store = keyed.store();
    let len = store.len();
    assert!(len <= store.slots(), "len {len} > slots {}", store.slots());
    let mut stored = 0;
    for (key, m) in model {
        match store.get(key) {
            Some(s) => {
                stored += 1;
                assert_eq!(
                    s,
                    m.state(),
                    "key {key}: stored state differs from the model at {now}"
                );
            }
            None => assert!(
                gcra.is_fresh(m.state(), now),
                "key {key} is not stored but its model state {} is live at {now}",
                m.state()
            ),
        }
    }
    assert_eq!(len, stored, "len() does not count the stored keys");
}

fuzz_target!(|input: Input| {
    let capacity = usize::from(input.capacity % 64) + 1;
    let Ok(rate) = Rate::from_nanos(
        u64::from(input.count),
        u64::from(input.period),
        u64::from(input.burst),
    ) else {
        return;
    };
    let gcra = Gcra::new(rate);
    let keyed =
        KeyedGcraLimiter::<u8, ManualClock>::with_clock(gcra, capacity, ManualClock::new(0));
    let mut model = Model::new();
    let mut now = match input.start {
        Start::Zero => 0,
        Start::Small(t) => u64::from(t),
        Start::Any(t) => t,
    };

    for op in &input.ops {
        match *op {
            Op::Check { key, cost, dt } => {
                now = now.saturating_add(u64::from(dt));
                let cost = u64::from(cost);
                let m = model_entry(&mut model, gcra, key);
                match keyed.check_n_at(&key, cost, now) {
                    Err(KeyedError::StoreFull(e)) => {
                        assert_eq!(e.capacity, capacity);
                        // The model is not updated: the key got no decision.
                        let would = m
                            .peek_at(cost, now)
                            .expect("StoreFull for a cost above capacity");
                        assert!(
                            would.allowed() && cost > 0,
                            "StoreFull for key {key} whose request changes nothing: {would:?}"
                        );
                        assert!(
                            gcra.is_fresh(m.state(), now),
                            "StoreFull for key {key}, live in the model (state {})",
                            m.state()
                        );
                        let store = keyed.store();
                        assert!(store.len() > 0, "StoreFull on an empty store");
                        // A store this small is probed whole: full means every slot
                        // holds a key that is live at `now`.
                        assert_eq!(store.len(), store.slots(), "StoreFull with free slots");
                        let live = live_in_model(&model, gcra, now);
                        assert!(
                            live >= store.slots(),
                            "StoreFull with only {live} live keys for {} slots",
                            store.slots()
                        );
                    }
                    got => {
                        let want = m.check_n_at(cost, now).map_err(KeyedError::from);
                        assert_eq!(got, want, "check key {key} cost {cost} at {now}");
                    }
                }
            }
            Op::Peek { key, cost, dt } => {
                now = now.saturating_add(u64::from(dt));
                let cost = u64::from(cost);
                let m = model_entry(&mut model, gcra, key);
                let got = keyed.peek_at(&key, cost, now);
                let want = m.peek_at(cost, now).map_err(KeyedError::from);
                assert_eq!(got, want, "peek key {key} cost {cost} at {now}");
            }
            Op::Refund { key, cost, dt } => {
                now = now.saturating_add(u64::from(dt));
                let cost = u64::from(cost);
                let m = model_entry(&mut model, gcra, key);
                keyed.refund_at(&key, cost, now);
                m.refund_at(cost, now);
            }
            Op::Reset { key } => {
                keyed.reset(&key);
                if let Some(m) = model.get(&key) {
                    m.reset();
                }
            }
            Op::EvictFresh { dt } => {
                now = now.saturating_add(u64::from(dt));
                let before = keyed.len();
                let evicted = keyed.evict_fresh_at(now);
                let after = keyed.len();
                assert_eq!(before - evicted, after, "evict_fresh_at miscounted");
                assert_eq!(
                    after,
                    live_in_model(&model, gcra, now),
                    "after evict_fresh_at({now}) the store should hold exactly the live keys"
                );
            }
        }
        check_store(&keyed, &model, gcra, now);
    }
});
