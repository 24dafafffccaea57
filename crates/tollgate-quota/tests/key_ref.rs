//! API keys in errors, events and `Debug` (issue 15, item 7): a key appears only as its
//! [`KeyRef`], `key#` and 12 hex digits of a keyed hash, which holds no character of the
//! key. `KeyRef` used to show the first 8 characters, so a key of 8 characters or fewer
//! appeared whole.

use proptest::prelude::*;
use tollgate_quota::{Company, KeyRef, Ledger, Plans, QuotaConfig, QuotaError};

/// 2026-11-10T00:00:00Z in Unix nanoseconds.
const T: i128 = 1_794_268_800 * 1_000_000_000;

fn ledger(key: &str) -> Ledger {
    let plans: Plans =
        toml::from_str("[[plans]]\nname = \"free\"\ncalls_per_unit = 100\ndefault = true\n")
            .unwrap();
    let l = Ledger::new(QuotaConfig {
        plans,
        ..QuotaConfig::default()
    });
    l.upsert_company(Company::new("acme").with_units(1, 0), None, T)
        .unwrap();
    l.add_user("alice", "acme", T).unwrap();
    l.add_key(key, "alice").unwrap();
    l
}

/// Whether `s` is `key#` and 12 lowercase hex digits.
fn is_reference(s: &str) -> bool {
    s.strip_prefix("key#")
        .is_some_and(|h| h.len() == 12 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Everything a ledger shows about `key`: the reference's Display and Debug, the errors
/// of an unknown and of a duplicate key (Display and Debug), and the notices raised by
/// the key's calls (Debug and JSON), with the reference replaced by `<ref>`.
fn shown(key: &str, unknown: &str) -> Result<Vec<String>, TestCaseError> {
    let r = KeyRef::of(key).to_string();
    prop_assert!(is_reference(&r), "{:?} has the reference {:?}", key, r);
    let mut out = vec![format!("{:?}", KeyRef::of(key))];
    let l = ledger(key);
    let dup = l.add_key(key, "alice").unwrap_err();
    prop_assert_eq!(&dup, &QuotaError::DuplicateKey(KeyRef::of(key)));
    let missing = l.record(unknown, 1, T).unwrap_err();
    prop_assert_eq!(&missing, &QuotaError::UnknownKey(KeyRef::of(unknown)));
    let unknown_ref = KeyRef::of(unknown).to_string();
    for e in [&dup, &missing] {
        out.push(e.to_string());
        out.push(format!("{e:?}"));
    }
    l.record(key, 120, T).unwrap();
    for e in l.drain_events() {
        out.push(format!("{e:?}"));
        out.push(serde_json::to_string(&e).unwrap());
    }
    Ok(out
        .into_iter()
        .map(|s| s.replace(&r, "<ref>").replace(&unknown_ref, "<ref>"))
        .collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Keys of 1 to 8 characters (any characters): what is shown for one key is what is
    /// shown for any other, but for the reference, and the reference is only hex digits.
    #[test]
    fn short_keys_never_appear_in_references_errors_or_events(
        a in "\\PC{1,8}",
        b in "\\PC{1,8}",
    ) {
        prop_assume!(a != b);
        let shown_a = shown(&a, &b)?;
        let shown_b = shown(&b, &a)?;
        prop_assert_eq!(shown_a, shown_b);
        prop_assert_eq!(KeyRef::of(&a), KeyRef::of(&a), "deterministic in a process");
    }
}

/// Keys of at most 8 characters, shown nowhere (chosen so that they cannot appear in the
/// error's own words or in hex digits by chance).
#[test]
fn the_reproduced_short_keys_are_not_shown() {
    for key in ["sk_live1", "Q", "zz", "pw!9", "tok-7", "MYTOKEN8"] {
        let r = KeyRef::of(key);
        assert!(is_reference(&r.to_string()), "{key}: {r}");
        let e = ledger("registered-key-000").record(key, 1, T).unwrap_err();
        let text = format!("{e} {e:?} {r} {r:?}");
        assert!(!text.contains(key), "{key} in {text}");
    }
}
