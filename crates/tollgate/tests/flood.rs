//! A key flood must not lock out honest users (issue 15, item 1). Real traffic through
//! `Engine::decide` on simulated time: an attacker sends requests with a new random
//! token each, at a steady rate, against a per-token limit of `10/h` whose store holds
//! 10,000 keys; meanwhile honest clients keep coming: new tokens (one a second) and
//! known, active tokens (100 of them, one request each every 10 minutes, well within
//! their limit). Then the flood stops and honest traffic goes on for 6 minutes.
//!
//! Before the store displaced keys, a full store refused new keys (`unavailable`): at 40
//! attacker keys/s 15% of new honest tokens were refused, at 100/s 65%, and refusals
//! went on after the flood stopped.

use tollgate::{Engine, Policy, Reason, Request};

const T0: u64 = 1_800_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

#[derive(Debug, Default)]
struct Counts {
    new_sent: u64,
    new_refused: u64,
    known_sent: u64,
    known_refused: u64,
    after_refused: u64,
    attacker_admitted: u64,
}

/// Runs the flood at `rate` attacker keys per second for `seconds`, then 6 minutes of
/// honest traffic alone.
fn run(rate: u64, seconds: u64) -> Counts {
    let e = Engine::new(
        Policy::from_toml(
            "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"10/h\"\ncapacity = 10000\n",
        )
        .unwrap()
        .0,
    )
    .unwrap();
    let known: Vec<String> = (0..100).map(|i| format!("known-{i:04}")).collect();
    let mut c = Counts::default();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut honest = 0u64;
    for s in 0..seconds + 360 {
        let flooding = s < seconds;
        if flooding {
            for k in 0..rate {
                let t = format!("atk-{:016x}", rand());
                let now = T0 + s * SEC + k * SEC / rate;
                let d = e.decide(&Request::new().token(&t).at(now));
                if d.allowed() {
                    c.attacker_admitted += 1;
                }
            }
        }
        let now = T0 + s * SEC + SEC / 2;
        // One new honest token a second.
        honest += 1;
        let t = format!("honest-{honest:08}");
        let d = e.decide(&Request::new().token(&t).at(now));
        let refused = d.reason != Reason::Allowed;
        if flooding {
            c.new_sent += 1;
            c.new_refused += u64::from(refused);
        } else {
            c.after_refused += u64::from(refused);
        }
        // The known tokens, each every 10 minutes (staggered).
        for (i, t) in known.iter().enumerate() {
            if (s + i as u64 * 6).is_multiple_of(600) {
                let d = e.decide(&Request::new().token(t).at(now));
                c.known_sent += 1;
                c.known_refused += u64::from(d.reason != Reason::Allowed);
            }
        }
    }
    c
}

#[test]
fn a_key_flood_refuses_no_honest_token() {
    // Ten times the rate that refused 15% of new tokens before, and 1,000 keys/s; ten
    // simulated minutes of flood each (longer: TOLLGATE_FLOOD_SECONDS).
    let seconds = std::env::var("TOLLGATE_FLOOD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let runs: Vec<(u64, Counts)> = [40, 100, 400, 1_000]
        .into_iter()
        .map(|rate| (rate, run(rate, seconds)))
        .collect();
    for (rate, c) in &runs {
        println!("{rate} attacker keys/s: {c:?}");
    }
    for (rate, c) in runs {
        assert!(c.new_sent > 0 && c.known_sent > 0);
        assert!(
            c.new_refused * 100 < c.new_sent,
            "{rate}/s: {} of {} new honest tokens refused",
            c.new_refused,
            c.new_sent
        );
        assert_eq!(
            c.known_refused, 0,
            "{rate}/s: known active tokens refused: {c:?}"
        );
        assert_eq!(
            c.after_refused, 0,
            "{rate}/s: refusals after the flood: {c:?}"
        );
    }
}

#[test]
fn a_truly_full_store_answers_by_on_full() {
    for (on_full, admitted) in [("allow", true), ("deny", false)] {
        // One group of four slots; a key that made its one request is being limited.
        let e = Engine::new(
            Policy::from_toml(&format!(
                "version = 1\n[[limit]]\nname = \"l\"\nkey = [\"token\"]\nrate = \"1/h\"\ncapacity = 1\non_full = \"{on_full}\"\n"
            ))
            .unwrap()
            .0,
        )
        .unwrap();
        for i in 0..4 {
            assert!(e
                .decide(&Request::new().token(&format!("k{i}")).at(T0))
                .allowed());
        }
        let d = e.decide(&Request::new().token("new").at(T0));
        assert_eq!(d.allowed(), admitted, "{on_full}: {d:?}");
        if !admitted {
            assert_eq!(d.reason, Reason::Limited);
            assert_eq!(d.retry_after, 3600 * SEC);
        }
        // The limited keys were not displaced: each is still refused.
        for i in 0..4 {
            let d = e.decide(&Request::new().token(&format!("k{i}")).at(T0));
            assert_eq!(d.reason, Reason::Limited, "{on_full}: k{i}");
        }
    }
}
