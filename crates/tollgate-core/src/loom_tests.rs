//! Loom models of every lock-free path: run with
//! `RUSTFLAGS="--cfg tollgate_loom" cargo test -p tollgate-core --release --lib loom`.
//!
//! Loom explores every interleaving (bounded by `LOOM_MAX_PREEMPTIONS`) of the real
//! algorithm code, with atomics and mutexes taken from the `sync` shim.

use loom::sync::Arc;
use loom::thread;

use crate::{Algorithm, Clock, Gcra, GcraLimiter, KeyedStore, Rate, FRESH};

/// A clock standing still: loom tests pass `now` explicitly anyway.
#[derive(Debug)]
struct Frozen;

impl Clock for Frozen {
    fn now(&self) -> u64 {
        0
    }
}

fn gcra(text: &str) -> Gcra {
    Gcra::new(text.parse::<Rate>().unwrap())
}

/// Three racing checks against a burst of two: exactly two are allowed, and the final
/// state is the one two sequential checks leave.
#[test]
fn cas_update_is_linearizable() {
    loom::model(|| {
        let l = Arc::new(GcraLimiter::with_clock(gcra("1/s burst 2"), Frozen));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let l = Arc::clone(&l);
                thread::spawn(move || l.check_at(0).allowed())
            })
            .collect();
        let allowed = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|a| *a)
            .count();
        assert_eq!(allowed, 2);
        assert_eq!(l.state(), 2_000_000_000);
    });
}

/// A refund racing a check: the check is allowed exactly when the refund came first, and
/// the final state matches that order.
#[test]
fn refund_racing_check() {
    loom::model(|| {
        let l = Arc::new(GcraLimiter::with_clock(gcra("1/s burst 1"), Frozen));
        assert!(l.check_at(0).allowed());
        let full = l.state();
        let l2 = Arc::clone(&l);
        let refunder = thread::spawn(move || l2.refund_at(1, 0));
        let allowed = l.check_at(0).allowed();
        refunder.join().unwrap();
        if allowed {
            // refund, then check: the check consumed the refunded unit.
            assert_eq!(l.state(), full);
        } else {
            // check (denied), then refund: the bucket is full again.
            assert_eq!(l.state(), 0);
        }
    });
}

fn plus_one(state: u64) -> ((), Option<u64>) {
    ((), Some(state + 1))
}

/// Two threads inserting the same new key end up sharing one slot: both increments land.
#[test]
fn insert_racing_insert_of_the_same_key() {
    loom::model(|| {
        let store = Arc::new(KeyedStore::<u64>::with_capacity(4));
        let s2 = Arc::clone(&store);
        let t = thread::spawn(move || s2.update(&7, 0, |_, _| false, plus_one).unwrap());
        store.update(&7, 0, |_, _| false, plus_one).unwrap();
        t.join().unwrap();
        assert_eq!(store.get(&7), Some(2));
        assert_eq!(store.len(), 1);
    });
}

/// A check on key A races the insert of key E, which may evict A only while A is fresh.
/// Whatever the order, A's update never lands in E's slot and E's state is E's own.
#[test]
fn insert_racing_eviction() {
    loom::model(|| {
        let g = gcra("1/s burst 10");
        let fresh = move |s: u64, now: u64| g.is_fresh(s, now);
        // Capacity 1 gives one shard of one group: four slots, all probed by every key.
        let store = Arc::new(KeyedStore::<u64>::with_capacity(1));
        assert_eq!(store.slots(), 4);
        let live = 1 << 40;
        // Key 0 is fresh at now = 10; keys 1..=3 are live.
        store.update(&0, 0, fresh, |_| ((), Some(5))).unwrap();
        for k in 1..=3u64 {
            store.update(&k, 0, fresh, |_| ((), Some(live))).unwrap();
        }
        let s2 = Arc::clone(&store);
        let checker = thread::spawn(move || {
            s2.update(&0, 10, fresh, |st| g.decide(st, 10, 1))
                .map(|d| d.allowed())
        });
        let inserted = store.update(&99, 10, fresh, |st| {
            assert_eq!(st, FRESH, "a new key starts fresh");
            ((), Some(live + 1))
        });
        let checked = checker.join().unwrap();
        let a = store.get(&0);
        let e = store.get(&99);
        match (checked, inserted) {
            (Ok(true), Ok(())) => panic!("no room for both A and E: {a:?} {e:?}"),
            (Ok(true), Err(_)) => assert_eq!(a, Some(10 + 1_000_000_000)),
            (Err(_), Ok(())) => assert_eq!((a, e), (None, Some(live + 1))),
            other => panic!("unexpected outcome {other:?}"),
        }
        if let Some(e) = e {
            assert_eq!(e, live + 1, "E's slot holds only E's state");
        }
        assert_eq!(store.len(), 4);
    });
}

/// A check on key A races the displacement of A (the key with the least debt) by the
/// insert of key E: A's update is never written into E's slot, E's state is E's own,
/// and a key being limited (debt `None`) is never displaced.
#[test]
fn displacement_racing_a_check_of_the_victim() {
    loom::model(|| {
        // State = debt; u64::MAX = being limited.
        let debt = |s: u64, _now: u64| (s != u64::MAX).then_some(s);
        let never_fresh = |_: u64, _: u64| false;
        let store = Arc::new(KeyedStore::<u64>::with_capacity(1));
        assert_eq!(store.slots(), 4);
        store.update(&0, 0, never_fresh, |_| ((), Some(1))).unwrap();
        for k in 1..=3u64 {
            store
                .update(&k, 0, never_fresh, |_| ((), Some(u64::MAX)))
                .unwrap();
        }
        let s2 = Arc::clone(&store);
        let checker = thread::spawn(move || {
            s2.update_displacing(&0, 0, never_fresh, debt, |st| ((), Some(st + 1)))
        });
        let inserted = store.update_displacing(&99, 0, never_fresh, debt, |_| ((), Some(500)));
        let checked = checker.join().unwrap();
        for k in 1..=3u64 {
            assert_eq!(store.get(&k), Some(u64::MAX), "a limited key stays");
        }
        let (a, e) = (store.get(&0), store.get(&99));
        match (checked, inserted) {
            // A was displaced (before or after its check) and came back by displacing E,
            // or E displaced A last: exactly one of them holds the free slot.
            (Ok(()), Ok(())) => assert!(
                matches!((a, e), (Some(_), None) | (None, Some(500))),
                "{a:?} {e:?}"
            ),
            other => panic!("unexpected outcome {other:?}"),
        }
        if let Some(e) = e {
            assert_eq!(e, 500, "E's slot holds only E's state");
        }
        assert_eq!(store.len(), 4);
    });
}

/// Three racing reservations of one unit against a burst of one: they queue in some
/// order, acting at 0, 1 s and 2 s, and the final state is what three sequential
/// reservations leave.
#[test]
fn racing_reservations_queue_up() {
    loom::model(|| {
        let l = Arc::new(GcraLimiter::with_clock(gcra("1/s burst 1"), Frozen));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let l = Arc::clone(&l);
                thread::spawn(move || l.reserve_n_at(1, 0, u64::MAX).unwrap().act_at())
            })
            .collect();
        let mut acts: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        acts.sort_unstable();
        assert_eq!(acts, [0, 1_000_000_000, 2_000_000_000]);
        assert_eq!(l.state(), 3_000_000_000);
    });
}

/// A cancel racing a reservation behind it: either the cancel came first (its unit is
/// back and the new reservation takes its place) or the reservation did (it depends on
/// the cancelled unit, which stays taken). Nothing else.
#[test]
fn cancel_racing_reserve() {
    loom::model(|| {
        let l = Arc::new(GcraLimiter::with_clock(gcra("1/s burst 1"), Frozen));
        let first = l.reserve_n_at(1, 0, u64::MAX).unwrap();
        assert_eq!(first.act_at(), 0);
        let second = l.reserve_n_at(1, 0, u64::MAX).unwrap();
        assert_eq!(second.act_at(), 1_000_000_000);
        let l2 = Arc::clone(&l);
        let canceller = thread::spawn(move || l2.cancel_at(second, 0));
        let third = l.reserve_n_at(1, 0, u64::MAX).unwrap().act_at();
        canceller.join().unwrap();
        match third {
            // cancel, then reserve
            1_000_000_000 => assert_eq!(l.state(), 2_000_000_000),
            // reserve, then cancel (nothing back)
            2_000_000_000 => assert_eq!(l.state(), 3_000_000_000),
            other => panic!("acts at {other}"),
        }
    });
}

/// A partial grant racing a reservation for a burst of 3 with 2 units taken: whichever
/// comes first takes the last unit at once; the other gets nothing (the grant) or waits
/// (the reservation).
#[test]
fn grant_racing_reserve() {
    loom::model(|| {
        let l = Arc::new(GcraLimiter::with_clock(gcra("1/s burst 3"), Frozen));
        assert_eq!(l.grant_at_most_at(2, 0).granted, 2);
        let l2 = Arc::clone(&l);
        let granter = thread::spawn(move || l2.grant_at_most_at(5, 0).granted);
        let act = l.reserve_n_at(1, 0, u64::MAX).unwrap().act_at();
        let granted = granter.join().unwrap();
        assert!(
            matches!((granted, act), (1, 1_000_000_000) | (0, 0)),
            "{granted} {act}"
        );
        assert_eq!(l.state(), 3_000_000_000 + act);
    });
}

/// Keyed: a cancel racing a reservation of the same key through the store's slot CAS.
#[test]
fn keyed_cancel_racing_reserve() {
    use crate::KeyedGcraLimiter;
    loom::model(|| {
        let l = Arc::new(KeyedGcraLimiter::<u64, _>::with_clock(
            gcra("1/s burst 1"),
            4,
            Frozen,
        ));
        let _ = l.reserve_n_at(&7, 1, 0, u64::MAX).unwrap();
        let second = l.reserve_n_at(&7, 1, 0, u64::MAX).unwrap();
        let l2 = Arc::clone(&l);
        let canceller = thread::spawn(move || l2.cancel_at(&7, second, 0));
        let third = l.reserve_n_at(&7, 1, 0, u64::MAX).unwrap().act_at();
        canceller.join().unwrap();
        let state = l.store().get(&7);
        match third {
            1_000_000_000 => assert_eq!(state, Some(2_000_000_000)),
            2_000_000_000 => assert_eq!(state, Some(3_000_000_000)),
            other => panic!("acts at {other}"),
        }
    });
}

/// The shared (multi-process) store's claim and insert code (`shared_table.rs`) on loom
/// atomics in ordinary memory instead of the file mapping; loom threads stand in for
/// processes, and a thread "dies" by marking its id dead without releasing its claim.
mod shared {
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use loom::thread;

    use crate::atomic128::{Fast, Slot};
    use crate::shared_table::{Owners, Table, SLOTS_PER_GROUP};
    use crate::sync::{AtomicU64, Ordering};
    use crate::{Algorithm, Gcra, FRESH};

    const FP: u64 = 0xabc1;

    struct Region {
        claims: Vec<AtomicU64>,
        slots: Vec<Slot>,
        evicted: AtomicU64,
        displaced: AtomicU64,
        occupied: AtomicU64,
        dead: Vec<AtomicBool>,
        alg: Gcra,
    }

    struct Ids<'a> {
        me: u32,
        dead: &'a [AtomicBool],
    }

    impl Owners for Ids<'_> {
        fn me(&self) -> u32 {
            self.me
        }
        fn dead(&self, id: u32) -> bool {
            self.dead[id as usize].load(Ordering::SeqCst)
        }
        fn secs(&self) -> u64 {
            0 // the time-out never fires: only death frees a claim
        }
    }

    impl Region {
        fn new() -> Arc<Self> {
            Arc::new(Region {
                claims: vec![AtomicU64::new(0)],
                slots: (0..SLOTS_PER_GROUP).map(|_| Slot::new(0)).collect(),
                evicted: AtomicU64::new(0),
                displaced: AtomicU64::new(0),
                occupied: AtomicU64::new(0),
                dead: (0..3).map(|_| AtomicBool::new(false)).collect(),
                alg: super::gcra("1/s burst 2"),
            })
        }

        fn table(&self, me: u32) -> Table<'_, Gcra, Ids<'_>> {
            Table {
                claims: &self.claims,
                slots: &self.slots,
                evicted: &self.evicted,
                displaced: &self.displaced,
                occupied: &self.occupied,
                groups: 1,
                alg: &self.alg,
                fast: Fast::detect(),
                capacity: 1,
                owners: Ids {
                    me,
                    dead: &self.dead,
                },
            }
        }
    }

    /// Two owners inserting the same new key at once: one slot, both hits counted.
    #[test]
    fn shared_insert_racing_insert_of_the_same_key() {
        loom::model(|| {
            let r = Region::new();
            let r2 = Arc::clone(&r);
            let t = thread::spawn(move || r2.table(2).decide(0, FP, 0, 1, false).unwrap());
            let a = r.table(1).decide(0, FP, 0, 1, false).unwrap();
            let b = t.join().unwrap();
            assert!(a.allowed() && b.allowed());
            let table = r.table(0);
            assert_eq!(table.verify(), Ok(1), "no duplicate");
            let (_, v) = table.find(0, FP).unwrap();
            let one = r.alg.decide(FRESH, 0, 1).1.unwrap();
            assert_eq!(v as u64, r.alg.decide(one, 0, 1).1.unwrap());
            assert_eq!(r.claims[0].load(Ordering::SeqCst), 0, "no claim left");
        });
    }

    /// An owner dies holding the group's claim (at any point of the other's insert):
    /// the other takes the claim over and inserts; nothing stays stuck.
    #[test]
    fn shared_claim_of_a_dead_owner_is_taken_over() {
        loom::model(|| {
            let r = Region::new();
            let r2 = Arc::clone(&r);
            let dier = thread::spawn(move || {
                let _token = r2.table(1).claim(0);
                // Killed here: the claim is never released.
                r2.dead[1].store(true, Ordering::SeqCst);
            });
            let d = r.table(2).decide(0, FP, 0, 1, false).unwrap();
            dier.join().unwrap();
            assert!(d.allowed());
            let table = r.table(0);
            // The dier may have claimed after the insert released: that claim is
            // dead and is cleared by the same take-over compare-exchange.
            let word = r.claims[0].load(Ordering::SeqCst);
            assert!(word == 0 || word >> 32 == 1, "claim {word:#x}");
            assert!(table.release_dead_claims() <= 1);
            assert_eq!(table.verify(), Ok(1));
            assert_eq!(r.claims[0].load(Ordering::SeqCst), 0);
            assert!(table.find(0, FP).is_some());
        });
    }
}
