//! PgLedgerSink against a real cluster that is stopped (`pg_ctl stop -m immediate`) and
//! restarted while deltas are being sent.
mod support;

use std::time::Duration;

use tollgate_postgres::{PgLedger, PgLedgerSink, SinkConfig, UsageDelta};

fn delta(i: u64) -> UsageDelta {
    UsageDelta {
        company: format!("c{}", i % 3),
        user: if i.is_multiple_of(4) {
            None
        } else {
            Some(format!("u{}", i % 5))
        },
        period: "2026-11".into(),
        period_start: 1_793_491_200,
        calls: 1,
        units: 1 + (i % 3) as i64,
    }
}

#[test]
fn deltas_sent_across_server_kills_are_counted_exactly_once() {
    let pg = cluster_or_skip!();
    let sink = PgLedgerSink::spawn(
        &pg.url,
        "gw1",
        SinkConfig {
            batch_size: 64,
            max_queued: 1_000_000,
            max_backoff: Duration::from_millis(200),
        },
    );
    const N: u64 = 30_000;
    let mut want = std::collections::BTreeMap::<(String, Option<String>), (i64, i64)>::new();
    for i in 0..N {
        // Two kills: one while the writer is busy, one after it idled.
        if i == N / 5 || i == 3 * N / 5 {
            pg.stop();
        }
        if i == 2 * N / 5 || i == 4 * N / 5 {
            pg.restart();
        }
        let d = delta(i);
        let e = want.entry((d.company.clone(), None)).or_default();
        e.0 += d.calls;
        e.1 += d.units;
        if d.user.is_some() {
            let e = want.entry((d.company.clone(), d.user.clone())).or_default();
            e.0 += d.calls;
            e.1 += d.units;
        }
        assert!(sink.record(d), "nothing dropped below the bound");
    }
    assert!(
        sink.flush(Duration::from_secs(120)),
        "flushed: {:?}",
        sink.stats()
    );
    let stats = sink.stats();
    eprintln!("sink stats after two kills: {stats:?}");
    assert_eq!(stats.queued, 0);
    assert_eq!(stats.dropped, 0);
    assert!(stats.errors > 0, "the kills were seen: {stats:?}");
    drop(sink);
    let mut l = PgLedger::connect(&pg.url, "reader").expect("connect");
    let mut got = std::collections::BTreeMap::new();
    for t in l.totals(None, Some("2026-11"), false).expect("totals") {
        got.insert((t.company, None), (t.calls, t.units));
    }
    for t in l.totals(None, Some("2026-11"), true).expect("user totals") {
        got.insert((t.company, t.user), (t.calls, t.units));
    }
    assert_eq!(
        got, want,
        "totals equal the deltas sent: nothing lost, nothing doubled"
    );
    let calls: i64 = got
        .iter()
        .filter(|(k, _)| k.1.is_none())
        .map(|(_, v)| v.0)
        .sum();
    assert_eq!(calls, N as i64);
}

#[test]
fn the_queue_bound_drops_and_counts_while_the_server_is_down() {
    let pg = cluster_or_skip!();
    PgLedger::connect(&pg.url, "setup").expect("migrate");
    pg.stop();
    const BOUND: usize = 100;
    let sink = PgLedgerSink::spawn(
        &pg.url,
        "gw1",
        SinkConfig {
            batch_size: 16,
            max_queued: BOUND,
            max_backoff: Duration::from_millis(100),
        },
    );
    let mut accepted = 0u64;
    for i in 0..250 {
        if sink.record(delta(i)) {
            accepted += 1;
        }
        if i == 20 {
            // Let the writer take a batch into flight (bounded wait).
            for _ in 0..200 {
                if sink.stats().errors > 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    let stats = sink.stats();
    assert_eq!(
        accepted, BOUND as u64,
        "the bound holds queued + in flight: {stats:?}"
    );
    assert_eq!(stats.dropped, 250 - BOUND as u64);
    assert_eq!(stats.queued, BOUND as u64);
    assert_eq!(stats.written, 0);
    pg.restart();
    assert!(
        sink.flush(Duration::from_secs(60)),
        "flushed: {:?}",
        sink.stats()
    );
    let stats = sink.stats();
    assert_eq!((stats.queued, stats.written), (0, BOUND as u64));
    // Space again after the flush.
    assert!(sink.record(delta(0)));
    assert!(sink.flush(Duration::from_secs(60)));
    drop(sink);
    let mut l = PgLedger::connect(&pg.url, "reader").expect("connect");
    let calls: i64 = l
        .totals(None, None, false)
        .expect("totals")
        .iter()
        .map(|t| t.calls)
        .sum();
    assert_eq!(
        calls,
        BOUND as i64 + 1,
        "accepted deltas are all in the ledger"
    );
}
