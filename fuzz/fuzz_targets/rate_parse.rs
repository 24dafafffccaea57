//! `Rate` parsing: arbitrary bytes through `FromStr` and through serde (JSON).
//!
//! Never panics; every accepted rate satisfies the `Rate` invariants and its `Display`
//! form parses back to the same rate; every rejection has a non-empty message; the serde
//! string and table forms agree with `FromStr` and `with_burst`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use tollgate_core::rate::MAX_WINDOW_NANOS;
use tollgate_core::{Rate, RateError};

#[derive(Debug, Deserialize, Serialize)]
struct Cfg {
    r: Rate,
}

fn check_rate(text: &str, r: Rate) {
    let t = r.emission_interval_nanos();
    assert!(r.count() >= 1, "{text:?} -> {r:?}: count 0");
    assert!(r.burst() >= 1, "{text:?} -> {r:?}: burst 0");
    assert!(r.period_nanos() >= 1, "{text:?} -> {r:?}: period 0");
    assert!(t >= 1, "{text:?} -> {r:?}: emission interval 0");
    assert!(
        t <= r.period_nanos(),
        "{text:?} -> {r:?}: interval > period"
    );
    // Rounded up: never more than `count` per period.
    assert!(
        u128::from(t) * u128::from(r.count()) >= u128::from(r.period_nanos()),
        "{text:?} -> {r:?}: interval rounded down"
    );
    assert!(
        u128::from(r.burst()) * u128::from(t) <= u128::from(MAX_WINDOW_NANOS),
        "{text:?} -> {r:?}: burst x interval above MAX_WINDOW_NANOS"
    );
    assert_eq!(
        Rate::from_nanos(r.count(), r.period_nanos(), r.burst()),
        Ok(r),
        "{text:?}: from_nanos disagrees"
    );

    let shown = r.to_string();
    assert_eq!(
        shown.parse::<Rate>(),
        Ok(r),
        "{text:?} -> {r:?}: Display {shown:?} does not round-trip"
    );

    let json = serde_json::to_string(&Cfg { r }).expect("a Rate always serializes");
    let back: Cfg = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{text:?} -> {r:?}: serialized {json} does not load: {e}"));
    assert_eq!(back.r, r, "{text:?}: serde round trip via {json}");
}

fn check_serde(text: &str, parsed: &Result<Rate, RateError>, burst_seed: u64) {
    let quoted = serde_json::to_string(text).expect("a str always serializes");

    // String form.
    let doc = format!("{{\"r\":{quoted}}}");
    let via_serde = serde_json::from_str::<Cfg>(&doc);
    match (parsed, &via_serde) {
        (Ok(r), Ok(c)) => assert_eq!(*r, c.r, "{text:?}: serde and FromStr differ"),
        (Err(_), Err(e)) => assert!(!e.to_string().is_empty(), "{text:?}: empty serde error"),
        _ => panic!("{text:?}: FromStr says {parsed:?}, serde says {via_serde:?}"),
    }

    // Table form without a burst: same as the string form.
    let doc = format!("{{\"r\":{{\"rate\":{quoted}}}}}");
    let via_table = serde_json::from_str::<Cfg>(&doc);
    assert_eq!(
        parsed.as_ref().ok(),
        via_table.as_ref().ok().map(|c| &c.r),
        "{text:?}: table form without burst differs"
    );

    // Table form with a burst: same as `with_burst`.
    let bursts = [0, 1, burst_seed, burst_seed >> 32, u64::MAX];
    for burst in bursts {
        let doc = format!("{{\"r\":{{\"rate\":{quoted},\"burst\":{burst}}}}}");
        let via_table = serde_json::from_str::<Cfg>(&doc);
        let expect = parsed.clone().and_then(|r| r.with_burst(burst));
        match (&expect, &via_table) {
            (Ok(r), Ok(c)) => {
                assert_eq!(*r, c.r, "{text:?} burst {burst}: table form differs");
                check_rate(text, c.r);
            }
            (Err(_), Err(e)) => assert!(!e.to_string().is_empty()),
            _ => panic!("{text:?} burst {burst}: expected {expect:?}, table gives {via_table:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The raw bytes as a whole document: must not panic, whatever they are.
    if let Ok(cfg) = serde_json::from_slice::<Cfg>(data) {
        check_rate("<json document>", cfg.r);
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = text.parse::<Rate>();
    match &parsed {
        Ok(r) => check_rate(text, *r),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty(), "{text:?}: empty error message for {e:?}");
            if let RateError::Syntax(s) = e {
                assert_eq!(s, text, "a syntax error quotes the whole input");
            }
        }
    }

    let mut seed = [0u8; 8];
    let n = data.len().min(8);
    seed[..n].copy_from_slice(&data[data.len() - n..]);
    check_serde(text, &parsed, u64::from_le_bytes(seed));
});
