//! Waiting: `until_ready` on core limiters and on whole engine requests ([`Gate`]), under
//! tokio's paused time (virtual time: exact and instant). GCRA limiters wait on a
//! reservation: exact sleeps, one decision per waiter, arrival order (FIFO), a dropped
//! waiter cancelling its reservation. Sliding windows and the engine retry: one decision
//! per wake-up, cancellation that consumes nothing. Immediate errors, many waiters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tollgate::core::{
    Clock, GcraLimiter, InsufficientCapacity, KeyedError, KeyedGcraLimiter,
    KeyedSlidingWindowLimiter, Rate, SlidingWindow, SlidingWindowLimiter,
};
use tollgate::{Engine, Policy, Reason, Request};
use tollgate_async::{Gate, Jitter, KeyedUntilReady, TokioClock, UntilReady};

const MS: Duration = Duration::from_millis(1);

/// Tokio's time, counting how often it is read: each limiter decision reads it once.
#[derive(Clone, Debug)]
struct CountingClock {
    inner: TokioClock,
    reads: Arc<AtomicU64>,
}

impl CountingClock {
    fn new() -> Self {
        CountingClock {
            inner: TokioClock::starting_at(0),
            reads: Arc::default(),
        }
    }

    fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

impl Clock for CountingClock {
    fn now(&self) -> u64 {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.now()
    }
}

fn rate(text: &str) -> Rate {
    text.parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn sleeps_exactly_until_its_reservation_acts_with_one_decision() {
    let clock = CountingClock::new();
    let l = KeyedGcraLimiter::<str, _>::with_clock(rate("10/s burst 1").into(), 64, clock.clone());
    let start = Instant::now();
    l.until_ready("k", 1).await.unwrap();
    assert_eq!((start.elapsed(), clock.reads()), (Duration::ZERO, 1));
    let d = l.until_ready("k", 1).await.unwrap();
    assert!(d.allowed());
    assert_eq!(
        (d.remaining, d.reset_after),
        (0, 100_000_000),
        "as of when it acts"
    );
    assert_eq!(start.elapsed(), 100 * MS, "exactly the reservation's delay");
    assert_eq!(
        clock.reads(),
        2,
        "one reservation, one sleep, no second decision"
    );
    // A weighted request waits for its whole cost: 3 units at 10/s, burst 3.
    let l = GcraLimiter::with_clock(rate("10/s burst 3").into(), CountingClock::new());
    l.until_ready(3).await.unwrap();
    let start = Instant::now();
    l.until_ready(2).await.unwrap();
    assert_eq!(start.elapsed(), 200 * MS);
    assert_eq!(l.clock().reads(), 2);
}

#[tokio::test(start_paused = true)]
async fn jitter_only_lengthens_the_wait_within_its_bound() {
    let l = GcraLimiter::with_clock(rate("10/s burst 1").into(), TokioClock::starting_at(0));
    let jitter = Jitter::new(5 * MS, 50 * MS);
    let begin = Instant::now();
    let mut waits = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        l.until_ready_with_jitter(1, jitter).await.unwrap();
        waits.push(start.elapsed());
    }
    // The reservations act 100 ms apart (the first at once); each waiter returns its
    // jitter (5..=50 ms, rounded up to tokio's 1 ms) after its time to act. So a wait is
    // 100 ms less the previous jitter plus its own, and the last returns at 1.9 s plus
    // its jitter: the jitter never lets anyone act early, nor delays those behind it.
    assert!(waits[0] >= 5 * MS && waits[0] <= 51 * MS, "{waits:?}");
    for w in &waits[1..] {
        assert!(*w >= 54 * MS && *w <= 146 * MS, "{waits:?}");
    }
    let total = begin.elapsed();
    assert!(total >= 1905 * MS && total <= 1951 * MS, "{total:?}");
    let distinct: std::collections::HashSet<_> = waits[1..].iter().collect();
    assert!(distinct.len() > 1, "jitter varies: {waits:?}");
}

#[tokio::test(start_paused = true)]
async fn what_can_never_pass_is_an_error_at_once() {
    let clock = CountingClock::new();
    let l = KeyedGcraLimiter::<str, _>::with_clock(rate("1/h burst 5").into(), 64, clock.clone());
    let start = Instant::now();
    assert_eq!(
        l.until_ready("k", 6).await,
        Err(KeyedError::InsufficientCapacity(InsufficientCapacity {
            cost: 6,
            capacity: 5
        }))
    );
    let d = GcraLimiter::with_clock(rate("1/h burst 5").into(), TokioClock::starting_at(0));
    assert!(d.until_ready(6).await.is_err());
    assert_eq!(start.elapsed(), Duration::ZERO, "no wait");
    assert_eq!(
        clock.reads(),
        1,
        "one answer (the error), no sleep, no retry"
    );
    assert_eq!(l.peek_at("k", 5, 0).unwrap().remaining, 0, "nothing taken");
    assert!(l.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_gives_its_units_back() {
    let clock = TokioClock::starting_at(0);
    let l = KeyedGcraLimiter::<str, _>::with_clock(rate("1/s burst 2").into(), 64, clock);
    l.until_ready("k", 2).await.unwrap();
    // A waiter for 2 units reserves them (it would act at 2 s); it is given 1.5 s and
    // dropped, which cancels the reservation.
    let r = tokio::time::timeout(1500 * MS, l.until_ready("k", 2)).await;
    assert!(r.is_err(), "timed out");
    // A future dropped before its first poll reserved nothing.
    drop(l.until_ready("k", 1));
    // At 2 s the key is full again, exactly as if the waiters had never existed: without
    // the cancel the dropped reservation would hold the 2 units until 4 s.
    tokio::time::sleep(500 * MS).await;
    let now = l.clock().now();
    assert_eq!(now, 2_000_000_000);
    let d = l.peek_at("k", 2, now).unwrap();
    assert!(d.allowed(), "{d:?}");
    assert_eq!(d.remaining, 0);
    assert_eq!(l.peek_at("k", 1, now).unwrap().remaining, 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_ahead_of_others_keeps_their_place() {
    let l = Arc::new(GcraLimiter::with_clock(
        rate("1/s burst 1").into(),
        TokioClock::starting_at(0),
    ));
    l.until_ready(1).await.unwrap();
    let start = Instant::now();
    // a acts at 1 s, b at 2 s; a is cancelled at 0.5 s. b depends on a's unit (x/time/
    // rate's rule: only units no later reservation depends on come back), so b keeps its
    // time, and a newcomer queues behind b.
    let a = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.until_ready(1).await }
    });
    let b = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.until_ready(1).await.map(|_| start.elapsed()) }
    });
    tokio::time::sleep(500 * MS).await;
    a.abort();
    assert!(a.await.unwrap_err().is_cancelled());
    assert_eq!(b.await.unwrap().unwrap(), 2000 * MS);
    l.until_ready(1).await.unwrap();
    assert_eq!(start.elapsed(), 3000 * MS);
    // Now the last in line gives up: its unit comes back at once.
    let c = tokio::time::timeout(500 * MS, l.until_ready(1)).await;
    assert!(c.is_err());
    l.until_ready(1).await.unwrap();
    assert_eq!(start.elapsed(), 4000 * MS, "the next one takes c's place");
}

#[tokio::test(start_paused = true)]
async fn many_waiters_on_one_key_are_served_in_arrival_order() {
    let clock = CountingClock::new();
    let l = Arc::new(KeyedGcraLimiter::<str, _>::with_clock(
        rate("1/s burst 1").into(),
        64,
        clock.clone(),
    ));
    let start = Instant::now();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (l, order) = (Arc::clone(&l), Arc::clone(&order));
            tokio::spawn(async move {
                l.until_ready("k", 1).await.unwrap();
                order.lock().unwrap().push(i);
                start.elapsed()
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    let expected: Vec<Duration> = (0..10).map(Duration::from_secs).collect();
    assert_eq!(done, expected, "one admission per second, in arrival order");
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
    // One reservation per waiter (a retry loop makes 10 + 9 + ... + 1 = 55 decisions).
    assert_eq!(clock.reads(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_heavy_waiter_is_not_overtaken_by_lighter_ones_behind_it() {
    // Burst 4 at 10/s, all used. A waiter for 4 units arrives first, then one for 1.
    // Served in arrival order, the heavy one acts at 400 ms and the light one 100 ms
    // later. (A retry loop serves the light one at 100 ms and the heavy one at 500 ms;
    // with a steady stream of light waiters the heavy one would starve.)
    let l = Arc::new(GcraLimiter::with_clock(
        rate("10/s burst 4").into(),
        TokioClock::starting_at(0),
    ));
    l.until_ready(4).await.unwrap();
    let start = Instant::now();
    let heavy = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.until_ready(4).await.map(|_| start.elapsed()) }
    });
    tokio::task::yield_now().await;
    let light = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.until_ready(1).await.map(|_| start.elapsed()) }
    });
    assert_eq!(heavy.await.unwrap().unwrap(), 400 * MS);
    assert_eq!(light.await.unwrap().unwrap(), 500 * MS);
}

#[tokio::test(start_paused = true)]
async fn sliding_windows_wait_by_retrying() {
    let sw = SlidingWindow::new(rate("2/s")).unwrap();
    let clock = CountingClock::new();
    let l = SlidingWindowLimiter::with_clock(sw, clock.clone());
    let start = Instant::now();
    l.until_ready(2).await.unwrap();
    let d = l.until_ready(1).await.unwrap();
    assert!(d.allowed());
    // 2 in window [0, 1 s) weigh 2 x (1 - f) at a fraction f of the next window: one
    // more fits from 1.5 s.
    assert_eq!(start.elapsed(), 1500 * MS);
    assert_eq!(clock.reads(), 3, "allowed, denied, slept, allowed");
    let k = KeyedSlidingWindowLimiter::<str, _>::with_clock(sw, 8, TokioClock::starting_at(0));
    assert!(
        k.until_ready("a", 3).await.is_err(),
        "above the limit: at once"
    );
    k.until_ready("a", 2).await.unwrap();
    // Dropped while sleeping: a retry takes nothing until it is allowed.
    assert!(tokio::time::timeout(100 * MS, k.until_ready("a", 1))
        .await
        .is_err());
    assert_eq!(k.peek_at("a", 0, k.clock().now()).unwrap().remaining, 0);
}

const GATE_POLICY: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "2/s"
[revocation]
denials = 2
window = "1m"
[quota]
warning_percent = 80
hard_cap_percent = 100
[[quota.plans]]
name = "free"
calls_per_unit = 1000
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [
  { id = "ann", keys = ["key-ann"] },
  { id = "bob", keys = ["key-bob"], disabled = true },
]
"#;

fn gate() -> Gate {
    let (policy, _) = Policy::from_toml(GATE_POLICY).unwrap();
    Gate::new(Arc::new(Engine::new(policy).unwrap())).with_clock(TokioClock::unix())
}

#[tokio::test(start_paused = true)]
async fn a_whole_engine_request_waits_exactly_and_waiting_never_revokes() {
    let gate = gate();
    let ann = Request::new().token("key-ann");
    let start = Instant::now();
    for _ in 0..6 {
        gate.until_ready(&ann).await.unwrap();
    }
    // Burst of 2, then one every 500 ms.
    assert_eq!(start.elapsed(), 2000 * MS);
    let m = gate.engine().metrics();
    assert_eq!(
        (m.allowed, m.limited),
        (6, 4),
        "one denial per wait, no polling"
    );
    assert!(
        !gate.engine().is_revoked("key-ann"),
        "4 denials while waiting do not count towards revocation (2 would)"
    );
    // The quota recorded exactly the 6 allowed calls.
    let d = gate.until_ready(&ann).await.unwrap();
    assert_eq!(d.quota.unwrap().used, 7);
}

#[tokio::test(start_paused = true)]
async fn refusals_that_waiting_cannot_change_are_errors_at_once() {
    let gate = gate();
    let start = Instant::now();
    let bob = gate.until_ready(&Request::new().token("key-bob")).await;
    assert_eq!(bob.unwrap_err().0.reason, Reason::Revoked, "disabled user");
    let nobody = gate.until_ready(&Request::new().token("nobody")).await;
    assert_eq!(nobody.unwrap_err().0.reason, Reason::UnknownKey);
    let ann = Request::new().token("key-ann");
    let heavy = gate.until_ready(&ann.cost(3)).await.unwrap_err();
    assert_eq!(heavy.0.reason, Reason::CannotPass);
    assert!(heavy.to_string().contains("can never pass"), "{heavy}");
    gate.engine().revoke("key-ann");
    let revoked = gate.until_ready(&ann).await.unwrap_err();
    assert_eq!(revoked.0.reason, Reason::Revoked);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_engine_waiter_took_nothing_from_limits_or_quota() {
    let gate = gate();
    let ann = Request::new().token("key-ann");
    gate.until_ready(&ann).await.unwrap();
    gate.until_ready(&ann).await.unwrap();
    // The next call must wait 500 ms; it is dropped after 400 ms, and another before
    // its first poll.
    let r = tokio::time::timeout(400 * MS, gate.until_ready(&ann)).await;
    assert!(r.is_err());
    drop(gate.until_ready(&ann));
    tokio::time::sleep(600 * MS).await;
    // At 1 s the key is full again (a waiter that had reserved would have taken one) and
    // the quota counted only the 2 calls that were allowed.
    let peek = gate.engine().peek(&ann.at(gate.now()).cost(2));
    assert!(peek[0].1.as_ref().unwrap().allowed(), "{peek:?}");
    let d = gate.decide(&ann);
    assert_eq!((d.reason, d.remaining), (Reason::Allowed, 1));
    assert_eq!(d.quota.unwrap().used, 3);
}

#[tokio::test(start_paused = true)]
async fn engine_waiters_with_jitter_are_spread_and_all_admitted() {
    let gate = gate().with_jitter(Jitter::up_to(200 * MS));
    let start = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.until_ready(&Request::new().token("key-ann"))
                    .await
                    .map(|_| start.elapsed())
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap().unwrap());
    }
    done.sort();
    // 2 at once, then 6 more at 2/s: never faster than the limit.
    assert_eq!(done[..2], [Duration::ZERO, Duration::ZERO]);
    for (i, t) in done.iter().enumerate().skip(2) {
        assert!(*t >= (i as u32 - 1) * 500 * MS, "{done:?}");
    }
    assert_eq!(gate.engine().metrics().allowed, 8);
    assert!(!gate.engine().is_revoked("key-ann"));
}
