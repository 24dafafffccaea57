//! Quota notices through the engine: delivered from the outbox whatever happens to the
//! event channel, offered again after a restart until acknowledged.

use tollgate::quota::NoticeKind;
use tollgate::{Engine, Event, Policy, Request};

/// 2027-01-15T08:00:00Z in Unix nanoseconds.
const T: u64 = 1_800_000_000_000_000_000;
const MIN: u64 = 60_000_000_000;
const KEY: &str = "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77";

fn policy(journal: Option<&std::path::Path>) -> Policy {
    let journal = journal.map_or(String::new(), |p| {
        format!(
            "journal = {:?}\ndurability = \"strict\"\n",
            p.display().to_string()
        )
    });
    let (policy, warnings) = Policy::from_toml(&format!(
        r#"
version = 1
[quota]
{journal}notice_redeliver_after = "2m"
hard_cap_percent = 1000
[[quota.companies]]
id = "acme"
limit_override = 10
users = [{{ id = "ann", keys = ["{KEY}"] }}]
"#
    ))
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    policy
}

/// Reported defect: a notice was handed to the host only through the event channel;
/// with the channel full it was dropped (counted, never delivered), and nothing raised
/// it again. The outbox keeps it until the host acknowledges it.
#[test]
fn a_full_event_channel_loses_no_notice() {
    let e = Engine::builder(policy(None))
        .event_capacity(1)
        .build()
        .unwrap();
    for _ in 0..11 {
        e.decide(&Request::new().token(KEY).at(T));
    }
    // The channel held the warning; the overage found it full and was dropped.
    let events = e.drain_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(events[0], Event::Quota(_)));
    assert!(e.prometheus().contains("tollgate_events_dropped_total 1\n"));
    // Both are delivered from the outbox.
    let notices = e.take_notices_at(10, T);
    let kinds: Vec<_> = notices.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, [NoticeKind::Warning, NoticeKind::Overage]);
    assert_eq!(
        (
            notices[1].company.as_str(),
            notices[1].used,
            notices[1].limit
        ),
        ("acme", 11, 10)
    );
    // Not acknowledged: offered again after `notice_redeliver_after`.
    assert!(e.take_notices_at(10, T + MIN).is_empty());
    assert_eq!(e.take_notices_at(10, T + 2 * MIN).len(), 2);
    for n in &notices {
        assert!(e.ack_notice(n.id).unwrap());
        assert!(!e.ack_notice(n.id).unwrap(), "a second ack is harmless");
    }
    assert!(e.take_notices_at(10, T + 10 * MIN).is_empty());
    assert!(e.pending_notices().is_empty());
    assert_eq!(e.notice_stats().acknowledged, 2);
}

#[test]
fn a_restarted_engine_offers_unacknowledged_notices_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let first = {
        let e = Engine::new(policy(Some(&path))).unwrap();
        for _ in 0..11 {
            e.decide(&Request::new().token(KEY).at(T));
        }
        // Taken, never acknowledged (the process stops before the email went out).
        let taken = e.take_notices_at(10, T);
        assert_eq!(taken.len(), 2);
        taken
    };
    let e = Engine::new(policy(Some(&path))).unwrap();
    let again = e.take_notices_at(10, T);
    let ids = |v: &[tollgate::quota::Notice]| v.iter().map(|n| n.id).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&first));
    for n in &again {
        assert!(e.ack_notice(n.id).unwrap());
    }
    drop(e);
    let e = Engine::new(policy(Some(&path))).unwrap();
    assert!(e.pending_notices().is_empty());
    e.decide(&Request::new().token(KEY).at(T));
    assert!(e.take_notices_at(10, T).is_empty(), "raised once, ever");
}

#[test]
fn without_a_quota_there_are_no_notices() {
    let (p, _) = Policy::from_toml("version = 1\n").unwrap();
    let e = Engine::new(p).unwrap();
    assert!(e.take_notices(10).is_empty() && e.pending_notices().is_empty());
    assert!(!e.ack_notice(1).unwrap());
    assert!(!e.release_notice(1));
}

#[test]
fn the_redelivery_timeout_is_checked() {
    let text = "version = 1\n[quota]\nnotice_redeliver_after = \"soon\"\n";
    let err = Policy::from_toml(text).unwrap_err();
    assert!(err.to_string().contains("notice_redeliver_after"), "{err}");
}
