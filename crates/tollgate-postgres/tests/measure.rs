//! Measurements, not assertions on time (ignored; run with
//! `cargo test -p tollgate-postgres --release --test measure -- --ignored --nocapture`):
//! the caller-side cost of `PgLedgerSink::record`, and the latency of one batch
//! (`PgLedger::write_batch`) to a local server.
mod support;

use std::time::{Duration, Instant};

use tollgate_postgres::{PgLedger, PgLedgerSink, SinkConfig, UsageDelta};

fn delta(i: u64) -> UsageDelta {
    UsageDelta {
        company: format!("company-{}", i % 10),
        user: Some(format!("user-{}", i % 100)),
        period: "2026-11".into(),
        period_start: 1_793_491_200,
        calls: 1,
        units: 1,
    }
}

#[test]
#[ignore = "measurement; prints ns/op"]
fn measure_record_cost_and_batch_latency() {
    let pg = cluster_or_skip!();
    // Deltas are built before timing: the engine hands over owned ids it already has.
    const N: u64 = 200_000;
    for round in 0..3 {
        let sink = PgLedgerSink::spawn(&pg.url, &format!("m{round}"), SinkConfig::default());
        let deltas: Vec<UsageDelta> = (0..N).map(delta).collect();
        let t = Instant::now();
        for d in deltas {
            sink.record(d);
        }
        let el = t.elapsed();
        println!(
            "record(): {N} deltas in {el:?} = {:.0} ns/op (caller side, writer running)",
            el.as_nanos() as f64 / N as f64
        );
        let t = Instant::now();
        assert!(sink.flush(Duration::from_secs(300)));
        println!(
            "  drained by the writer in {:?} after the last record; {:?}",
            t.elapsed(),
            sink.stats()
        );
    }
    let mut l = PgLedger::connect(&pg.url, "lat").expect("connect");
    for size in [1usize, 64, 512] {
        let mut times = Vec::new();
        for b in 0..40 {
            let batch: Vec<UsageDelta> = (0..size as u64).map(delta).collect();
            let t = Instant::now();
            assert!(l
                .write_batch(&format!("s{size}-{b}"), &batch)
                .expect("write"));
            times.push(t.elapsed());
        }
        times.sort();
        let p50 = times[times.len() / 2];
        let p90 = times[times.len() * 9 / 10];
        println!(
            "write_batch of {size}: p50 {p50:?}, p90 {p90:?}, max {:?} (40 batches, loopback, fsync=off); {:.1} us/delta at p50",
            times[times.len() - 1],
            p50.as_secs_f64() * 1e6 / size as f64
        );
    }
}

const HOOK_KEYS: [&str; 4] = [
    "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77",
    "77aa0000-1111-2222-3333-444455556666",
    "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
    "a1b2c3d4-e5f6-4718-9a0b-1c2d3e4f5a6b",
];

fn hook_engine(sink: Option<std::sync::Arc<PgLedgerSink>>) -> tollgate::Engine {
    let text = format!(
        r#"
        version = 1
        [quota]
        [[quota.companies]]
        id = "acme"
        limit_override = 1000000000
        users = [{{ id = "ann", keys = ["{}"] }}, {{ id = "bob", keys = ["{}"] }}]
        [[quota.companies]]
        id = "globex"
        limit_override = 1000000000
        users = [{{ id = "gus", keys = ["{}"] }}, {{ id = "gil", keys = ["{}"] }}]
        "#,
        HOOK_KEYS[0], HOOK_KEYS[1], HOOK_KEYS[2], HOOK_KEYS[3]
    );
    let policy = tollgate::Policy::from_toml(&text).unwrap().0;
    let mut b = tollgate::Engine::builder(policy);
    if let Some(s) = sink {
        b = b.usage_sink(s);
    }
    b.build().unwrap()
}

#[test]
#[ignore = "measurement; prints ns/decision with and without the usage sink"]
fn measure_decision_cost_with_and_without_the_sink() {
    let pg = cluster_or_skip!();
    const N: u64 = 200_000;
    // 2026-11-02T00:00:00Z: every call in one period.
    const NOV_2: u64 = 1_793_577_600 * 1_000_000_000;
    let run = |engine: &tollgate::Engine| {
        let t = Instant::now();
        let mut allowed = 0u64;
        for i in 0..N {
            let key = HOOK_KEYS[(i % 4) as usize];
            let req = tollgate::Request::new().token(key).at(NOV_2 + i);
            allowed += u64::from(engine.decide(&req).allowed());
        }
        assert_eq!(allowed, N);
        t.elapsed().as_nanos() as f64 / N as f64
    };
    for round in 0..3 {
        let plain = hook_engine(None);
        let without = run(&plain);
        let sink = std::sync::Arc::new(PgLedgerSink::spawn(
            &pg.url,
            &format!("hook{round}"),
            SinkConfig::default(),
        ));
        let hooked = hook_engine(Some(sink.clone()));
        let with = run(&hooked);
        let t = Instant::now();
        assert!(sink.flush(Duration::from_secs(300)));
        let drained = t.elapsed();
        let stats = sink.stats();
        assert_eq!((stats.written, stats.dropped), (N, 0));
        println!(
            "round {round}: decide() without sink {without:.0} ns, with PgLedgerSink {with:.0} ns \
             (+{:.0} ns/call); drained {drained:?} after the last call; {stats:?}",
            with - without
        );
    }
}
