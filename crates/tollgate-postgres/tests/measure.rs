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
