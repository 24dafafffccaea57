//! The policy parser and the engine built from what it accepts.
//!
//! Arbitrary bytes as a policy file: never panics; every error names a field or a
//! position and has a message, and its line and column lie inside the text; an accepted
//! policy validates, builds an engine (journal paths are dropped first: the fuzzer must
//! not write files) and decides a few requests whose attributes come from the input,
//! with the engine's invariants: an allowed decision has `retry_after == 0`, a limited
//! one names the limit that decided, and reloading the same policy keeps every limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::{Engine, Policy, Reason, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::from_toml(text) {
        Err(e) => {
            assert!(!e.message.is_empty(), "{e:?}");
            if let Some(line) = e.line {
                assert!(
                    line >= 1 && line <= text.lines().count().max(1) + 1,
                    "{e:?}"
                );
                assert!(e.column.unwrap_or(1) >= 1, "{e:?}");
            }
            let _ = e.to_string();
        }
        Ok((mut policy, warnings)) => {
            for w in &warnings {
                assert!(w.line >= 1 && !w.field.is_empty(), "{w:?}");
            }
            policy.validate().expect("an accepted policy validates");
            if let Some(q) = policy.quota.as_mut() {
                q.journal = None;
            }
            let Ok(engine) = Engine::new(policy.clone()) else {
                return;
            };
            let words: Vec<&str> = text.split_whitespace().take(8).collect();
            let pick = |i: usize| words.get(i).copied().unwrap_or("");
            let attrs = [("recipient", pick(6)), ("sender", pick(7))];
            for step in 0..4u64 {
                let r = Request::new()
                    .token(pick(0))
                    .tenant(pick(1))
                    .company(pick(2))
                    .client(pick(3))
                    .route(pick(4))
                    .method(pick(5))
                    .attrs(&attrs)
                    .at(1_800_000_000_000_000_000 + step * 1_000_000);
                let d = engine.decide(&r);
                assert_eq!(d.allowed(), d.reason == Reason::Allowed);
                if d.allowed() {
                    assert_eq!(d.retry_after, 0, "{d:?}");
                }
                if d.reason == Reason::Limited {
                    assert!(d.decided_by.is_some(), "{d:?}");
                }
                let _ = engine.headers(&d);
            }
            let report = engine.reload(policy).expect("the same policy reloads");
            assert!(
                report.fresh.is_empty() && report.removed.is_empty(),
                "{report:?}"
            );
            let _ = engine.prometheus();
        }
    }
});
