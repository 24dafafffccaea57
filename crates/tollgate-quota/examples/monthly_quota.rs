//! A month of API calls for three companies, through a durable ledger.
//!
//! * `acme` is on the free plan with 2 machines and 1 app: 300,000 calls a month. It adds
//!   a machine on the 20th, which raises its limit at once.
//! * `globex` has the paid "API Access" plan: 1,000,000 calls a month, and overuses it
//!   until the hard cap (150%) refuses its calls.
//! * `initech` has a limit support staff set by hand (an override of 50,000) and rotates
//!   an API key mid-month; one of its users is disabled on the 25th.
//!
//! Calls are recorded at their own timestamps over November 2026 (Europe/Berlin for
//! `initech`), then the ledger prints the notices it raised, the period-end statements as
//! JSON and the per-user usage as CSV. The journal (SQLite) is in a temporary directory,
//! or at the path given as the first argument, so a second run with the same path carries
//! on from the first.
//!
//! Run: `cargo run -p tollgate-quota --example monthly_quota [-- usage.db]`

use std::error::Error;

use tollgate_quota::journal::{Durability, Journal};
use tollgate_quota::{Company, Ledger, NoticeKind, Outcome, QuotaConfig, QuotaError};

const DAY: i128 = 86_400 * 1_000_000_000;
/// 2026-11-01T00:00:00Z in Unix nanoseconds.
const NOV_1: i128 = 1_793_491_200 * 1_000_000_000;

fn main() -> Result<(), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let path = match std::env::args_os().nth(1) {
        Some(p) => p.into(),
        None => tmp.path().join("usage.db"),
    };
    let (journal, restored) = Journal::open(&path, Durability::default())?;
    println!(
        "journal {} ({} usage rows restored)",
        path.display(),
        restored.usage.len()
    );
    let ledger = Ledger::with_journal(QuotaConfig::default(), journal, restored);

    ledger.upsert_company(Company::new("acme").with_units(2, 1), None, NOV_1)?;
    ledger.upsert_company(
        Company::new("globex").with_subscription("API Access"),
        None,
        NOV_1,
    )?;
    ledger.upsert_company(
        Company::new("initech").with_override(50_000),
        Some("Europe/Berlin"),
        NOV_1,
    )?;
    let users = [
        ("ann", "acme", "a0000000-0000-4000-8000-000000000001"),
        ("bob", "acme", "a0000000-0000-4000-8000-000000000002"),
        ("gus", "globex", "b0000000-0000-4000-8000-000000000003"),
        ("ida", "initech", "c0000000-0000-4000-8000-000000000004"),
        ("ike", "initech", "c0000000-0000-4000-8000-000000000005"),
    ];
    for (user, company, key) in users {
        ledger.add_user(user, company, NOV_1)?;
        // A second run on the same journal finds the keys already registered.
        match ledger.add_key(key, user) {
            Ok(()) | Err(QuotaError::DuplicateKey(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Calls per day per user: enough for acme to cross its limit before the new machine,
    // and for globex to reach the hard cap.
    let per_day = [
        ("ann", 9_000),
        ("bob", 7_000),
        ("gus", 60_000),
        ("ida", 1_200),
        ("ike", 900),
    ];
    let mut refused = 0u64;
    let mut initech_key = "c0000000-0000-4000-8000-000000000004".to_owned();
    for day in 0..30 {
        let t = NOV_1 + day * DAY + DAY / 2;
        if day == 19 {
            let limit = ledger.upsert_company(Company::new("acme").with_units(3, 1), None, t)?;
            println!(
                "day 20: acme adds a machine; its limit is now {}",
                limit.calls
            );
        }
        if day == 14 {
            let rotated = "c0000000-0000-4000-8000-0000000000f4".to_owned();
            match ledger.add_key(&rotated, "ida") {
                Ok(()) | Err(QuotaError::DuplicateKey(_)) => {}
                Err(e) => return Err(e.into()),
            }
            ledger.remove_key(&initech_key);
            initech_key = rotated;
            println!("day 15: ida's key rotated; her usage stays with her");
        }
        if day == 24 {
            ledger.set_user_disabled("ike", true)?;
            println!("day 25: ike is disabled; his calls are refused");
        }
        for &(user, calls) in &per_day {
            let key = match user {
                "ida" => initech_key.as_str(),
                _ => users
                    .iter()
                    .find(|u| u.0 == user)
                    .map(|u| u.2)
                    .unwrap_or_default(),
            };
            // One record per 100 calls keeps the example quick; the cost carries the count.
            for _ in 0..calls / 100 {
                match ledger.record(key, 100, t) {
                    Ok(d) if d.outcome == Outcome::Refused => refused += 100,
                    Ok(_) => {}
                    Err(QuotaError::DisabledUser { .. }) => refused += 100,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    ledger.sync()?;

    // The notices wait in the outbox (in the journal) until acknowledged: a run killed
    // before this point offers them again at the next run, with the same ids.
    println!("\nnotices:");
    let end_of_month: i128 = 1_796_083_199 * 1_000_000_000;
    let outbox = ledger.outbox();
    for n in outbox.take(usize::MAX, end_of_month) {
        match n.kind {
            NoticeKind::Warning => println!(
                "  #{} warning  {} {}: {} of {} calls",
                n.id, n.company, n.period, n.used, n.limit
            ),
            NoticeKind::Overage => println!(
                "  #{} overage  {} {}: {} of {} calls (crossed {}); suggested plan: {}",
                n.id,
                n.company,
                n.period,
                n.used,
                n.limit,
                n.crossed_at,
                n.suggested_plan.as_deref().unwrap_or("none covers it")
            ),
        }
        // ... the email went out: acknowledge it, durably.
        outbox.ack(n.id, end_of_month)?;
    }
    let _ = ledger.drain_events(); // the same notices as signals: not needed here
    println!("refused calls (hard cap or disabled user): {refused}");
    println!(
        "\nstatements (JSON):\n{}",
        serde_json::to_string_pretty(&ledger.statements())?
    );
    println!(
        "\nusage per user (CSV):\n{}",
        Ledger::usage_csv(&ledger.user_usage())
    );
    Ok(())
}
