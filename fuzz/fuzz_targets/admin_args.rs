//! The C administration API's argument parsing: arbitrary bytes as an override's match
//! text (`parse_override_match`) and through `tollgate_engine_admin_set_override` /
//! `_remove_override` / `_set_company_plans` on a live engine.
//!
//! Never panics (no `TOLLGATE_RESULT_PANIC`); every accepted match table is non-empty
//! and parses back from its own TOML rendering to the same table; every result is one of
//! the documented codes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_ffi::*;

const POLICY: &str =
    "version = 1\n[[limit]]\nname = \"l\"\nkey = [\"token\", \"company\"]\nrate = \"10/s\"\n\
    [quota]\nkey = \"token\"\n[[quota.plans]]\nname = \"p\"\ncalls = 5\ndefault = true\n\
    [[quota.plans]]\nname = \"x\"\ncalls = 5\n\
    [[quota.companies]]\nid = \"acme\"\nusers = [{ id = \"u\", keys = [\"k\"] }]\n";

struct Shared(*mut tollgate_engine);
// SAFETY: the engine handle is documented thread-safe; the fuzzer only shares it.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

fn engine() -> *const tollgate_engine {
    static E: OnceLock<Shared> = OnceLock::new();
    E.get_or_init(|| {
        let mut e = std::ptr::null_mut();
        // SAFETY: a static policy and a local out-pointer.
        let rc = unsafe { tollgate_engine_from_toml(POLICY.as_ptr().cast(), POLICY.len(), &mut e) };
        assert_eq!(rc, tollgate_result::Ok);
        Shared(e)
    })
    .0
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(m) = parse_override_match(s) {
            assert!(!m.is_empty());
            let again: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_string(v)))
                .collect();
            let back = parse_override_match(&again.join(", ")).expect("its own rendering parses");
            assert_eq!(back, m);
        }
    }
    let e = engine();
    let (split, rest) = data.split_at(data.len() / 2);
    let limit = b"l";
    let rate = b"5/s";
    // SAFETY: a live engine and slices of the given lengths.
    let codes = unsafe {
        [
            tollgate_engine_admin_set_override(
                e,
                limit.as_ptr().cast(),
                limit.len(),
                split.as_ptr().cast(),
                split.len(),
                rest.as_ptr().cast(),
                rest.len(),
            ),
            tollgate_engine_admin_set_override(
                e,
                limit.as_ptr().cast(),
                limit.len(),
                data.as_ptr().cast(),
                data.len(),
                rate.as_ptr().cast(),
                rate.len(),
            ),
            tollgate_engine_admin_remove_override(
                e,
                limit.as_ptr().cast(),
                limit.len(),
                data.as_ptr().cast(),
                data.len(),
            ),
            tollgate_engine_admin_set_company_plans(
                e,
                b"acme".as_ptr().cast(),
                4,
                data.as_ptr().cast(),
                data.len(),
            ),
        ]
    };
    for rc in codes {
        assert_ne!(rc, tollgate_result::Panic);
        assert!(
            (rc as u32) <= tollgate_result::UnknownLimit as u32,
            "{rc:?}"
        );
    }
});

fn toml_string(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_owned()
    } else {
        toml_string(k)
    }
}
