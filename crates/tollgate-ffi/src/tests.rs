//! The entry points called from Rust as C would call them: the crate's unsafe code,
//! which miri runs too (`scripts/test`).

use std::ffi::c_char;

use crate::*;

const POLICY: &str = "version = 1\n\
    [[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"2/min\"\n\
    [revocation]\nkey = \"token\"\ndenials = 1\nwindow = \"1m\"\n\
    [quota]\nkey = \"token\"\nunknown_key = \"allow\"\n\
    [[quota.plans]]\nname = \"p\"\ncalls = 10\ndefault = true\n\
    [[quota.companies]]\nid = \"acme\"\nusers = [{ id = \"a\", keys = [\"k1\"] }]\n";
const NOW: u64 = 1_800_000_000_000_000_000;

fn attr(name: &'static str, value: &'static str) -> tollgate_attr {
    tollgate_attr {
        name: name.as_ptr().cast(),
        name_len: name.len(),
        value: value.as_ptr().cast(),
        value_len: value.len(),
    }
}

fn new_engine() -> *mut tollgate_engine {
    let mut e = std::ptr::null_mut();
    // SAFETY: a static string and a local out-pointer.
    let rc = unsafe { tollgate_engine_from_toml(POLICY.as_ptr().cast(), POLICY.len(), &mut e) };
    assert_eq!(rc, tollgate_result::Ok);
    e
}

fn text_of(f: impl FnOnce(*mut c_char, usize, *mut usize) -> tollgate_result) -> Option<String> {
    let mut buf = vec![0 as c_char; 1 << 16];
    let mut n = 0;
    match f(buf.as_mut_ptr(), buf.len(), &mut n) {
        tollgate_result::Ok => Some(buf[..n].iter().map(|&c| c as u8 as char).collect()),
        _ => None,
    }
}

/// Every entry point once, from Rust, as C would call it: the unsafe code of the
/// crate, which miri runs too (`scripts/test`).
#[test]
fn the_whole_api_from_rust() {
    assert_eq!(crate::tollgate_abi_version(), TOLLGATE_ABI_VERSION);
    let e = new_engine();
    let attrs = [
        attr("token", "k1"),
        attr("method", "GET"),
        attr("region", "eu"),
    ];
    let mut d = tollgate_decision::default();
    for expect in [true, true, false] {
        // SAFETY: a live engine, three attributes, a local output.
        let rc = unsafe {
            tollgate_engine_decide(e, attrs.as_ptr(), 3, TOLLGATE_CLASS_COST, NOW, &mut d)
        };
        assert_eq!(rc, tollgate_result::Ok);
        assert_eq!(d.allowed, expect);
    }
    assert_eq!(d.retry_after_ms, 30_000);
    assert_eq!(d.quota, tollgate_quota_status::default());
    // SAFETY: the engine, the decision, buffers from text_of.
    let retry = text_of(|b, l, n| unsafe {
        tollgate_engine_header(e, &d, tollgate_header::RetryAfter as u32, b, l, n)
    });
    assert_eq!(retry.as_deref(), Some("30"));
    // SAFETY: as above.
    let limit = text_of(|b, l, n| unsafe { tollgate_engine_header(e, &d, 1, b, l, n) });
    assert_eq!(limit.as_deref(), Some("\"per-token\";r=0;t=30"));

    // One denial revoked the token: an event, then 403s.
    // SAFETY: the engine and a buffer.
    let event = text_of(|b, l, n| unsafe { tollgate_engine_next_event(e, b, l, n) }).unwrap();
    assert!(event.contains("\"kind\":\"revoked\""), "{event}");
    let mut yes = false;
    // SAFETY: the engine, a static value, a local output.
    unsafe { tollgate_engine_is_revoked(e, "k1".as_ptr().cast(), 2, &mut yes) };
    assert!(yes);
    // SAFETY: as above.
    unsafe { tollgate_engine_restore(e, "k1".as_ptr().cast(), 2, &mut yes) };
    assert!(yes);
    // SAFETY: as above.
    unsafe { tollgate_engine_revoke(e, "k9".as_ptr().cast(), 2, std::ptr::null_mut()) };

    // A reservation, committed twice under one idempotency key.
    for (i, expect) in [
        tollgate_commit_outcome::Committed,
        tollgate_commit_outcome::Duplicate,
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = std::ptr::null_mut();
        let mut st = tollgate_quota_status::default();
        // SAFETY: the engine, a static key, local outputs.
        let rc = unsafe {
            tollgate_engine_quota_reserve(e, "k1".as_ptr().cast(), 2, 2, NOW, &mut r, &mut st)
        };
        assert_eq!(rc, tollgate_result::Ok);
        assert_eq!(st.used, 4 + i as u64);
        let mut outcome = 9;
        // SAFETY: the reservation just made, settled once.
        let rc =
            unsafe { tollgate_reservation_commit(r, 1, "id".as_ptr().cast(), 2, &mut outcome) };
        assert_eq!(rc, tollgate_result::Ok);
        assert_eq!(outcome, expect as u32);
    }
    let mut r = std::ptr::null_mut();
    let mut st = tollgate_quota_status::default();
    // SAFETY: as above; refunded once.
    unsafe {
        tollgate_engine_quota_reserve(e, "k1".as_ptr().cast(), 2, 1, NOW, &mut r, &mut st);
        assert_eq!(tollgate_reservation_refund(r), tollgate_result::Ok);
    }

    let mut rep = tollgate_reload_report::default();
    // SAFETY: the engine, a static policy, a local output.
    let rc =
        unsafe { tollgate_engine_reload_toml(e, POLICY.as_ptr().cast(), POLICY.len(), &mut rep) };
    assert_eq!(rc, tollgate_result::Ok);
    assert_eq!(rep.kept, 1);
    // SAFETY: the engine and buffers.
    let metrics = text_of(|b, l, n| unsafe { tollgate_engine_metrics(e, b, l, n) }).unwrap();
    assert!(metrics.contains("per-token"));
    // SAFETY: as above.
    let notes = text_of(|b, l, n| unsafe { tollgate_engine_warnings(e, b, l, n) }).unwrap();
    assert!(notes.is_empty(), "{notes}");
    // SAFETY: freed once, after its last use.
    unsafe { tollgate_engine_free(e) };
}

#[test]
fn decide_refuses_bad_arguments_and_writes_nothing() {
    let e = new_engine();
    let sentinel = tollgate_decision {
        decided_by: 55,
        ..Default::default()
    };
    let mut d = sentinel;
    let bad = [0xffu8];
    let cases: [(&[tollgate_attr], tollgate_result); 4] = [
        (
            &[tollgate_attr {
                value: bad.as_ptr().cast(),
                value_len: 1,
                ..attr("token", "")
            }],
            tollgate_result::InvalidUtf8,
        ),
        (&[attr("", "x")], tollgate_result::InvalidArgument),
        (
            &[attr("zone", "a"), attr("zone", "b")],
            tollgate_result::InvalidArgument,
        ),
        (
            &[tollgate_attr {
                value: std::ptr::null(),
                value_len: 3,
                ..attr("token", "")
            }],
            tollgate_result::NullParameter,
        ),
    ];
    for (attrs, want) in cases {
        // SAFETY: a live engine; each attribute points to its stated bytes or is a
        // NULL the library must refuse.
        let rc = unsafe { tollgate_engine_decide(e, attrs.as_ptr(), attrs.len(), 1, NOW, &mut d) };
        assert_eq!(rc, want);
        assert_eq!(d, sentinel);
    }
    // SAFETY: freed once.
    unsafe { tollgate_engine_free(e) };
}

fn field(value: &[u8]) -> tollgate_str {
    tollgate_str {
        ptr: value.as_ptr().cast(),
        len: value.len(),
    }
}

fn last_error() -> String {
    // SAFETY: a buffer from text_of.
    text_of(|b, l, n| unsafe { crate::tollgate_last_error(b, l, n) }).unwrap()
}

/// The struct entry point decides as the attribute one: fields, further attributes,
/// a known name among the further attributes, an explicit cost.
#[test]
fn decide_request_decides_as_decide() {
    let e = new_engine();
    let mut d = tollgate_decision::default();
    let extra = [attr("region", "eu")];
    let request = tollgate_request {
        token: field(b"k1"),
        attrs: extra.as_ptr(),
        attrs_len: 1,
        now_unix_ns: NOW,
        ..Default::default()
    };
    // SAFETY: a live engine, a request pointing to live bytes, a local output.
    let rc = unsafe { tollgate_engine_decide_request(e, &request, &mut d) };
    assert_eq!(rc, tollgate_result::Ok);
    assert!(d.allowed);
    assert_eq!((d.limit, d.remaining), (2, 1));
    // The method as a further attribute fills the NULL field; an explicit cost of 0
    // is a cost (the zeroed struct's `explicit_cost: false` is the class's).
    let extra = [attr("method", "GET")];
    let request = tollgate_request {
        token: field("k1".as_bytes()),
        attrs: extra.as_ptr(),
        attrs_len: 1,
        explicit_cost: true,
        cost: 0,
        now_unix_ns: NOW,
        ..Default::default()
    };
    // SAFETY: as above.
    let rc = unsafe { tollgate_engine_decide_request(e, &request, &mut d) };
    assert_eq!(rc, tollgate_result::Ok);
    assert_eq!((d.allowed, d.remaining), (true, 1));
    // An empty value is a value, unlike NULL: a different key.
    let request = tollgate_request {
        token: field(b""),
        now_unix_ns: NOW,
        ..Default::default()
    };
    // SAFETY: as above.
    let rc = unsafe { tollgate_engine_decide_request(e, &request, &mut d) };
    assert_eq!(rc, tollgate_result::Ok);
    assert_eq!((d.allowed, d.remaining), (true, 1));
    // SAFETY: freed once.
    unsafe { tollgate_engine_free(e) };
}

#[test]
fn decide_request_refuses_bad_arguments_and_writes_nothing() {
    let e = new_engine();
    let sentinel = tollgate_decision {
        decided_by: 55,
        ..Default::default()
    };
    let mut d = sentinel;
    let ok = tollgate_request {
        token: field(b"k1"),
        now_unix_ns: NOW,
        ..Default::default()
    };
    let null = tollgate_str {
        ptr: std::ptr::null(),
        len: 3,
    };
    let huge = tollgate_str {
        ptr: "x".as_ptr().cast(),
        len: usize::MAX,
    };
    let twice = [attr("token", "k2")];
    let many = [attr("zone", "a"); TOLLGATE_MAX_ATTRS + 1];
    let cases = [
        (
            tollgate_request { tenant: null, ..ok },
            tollgate_result::NullParameter,
            "request.tenant is NULL with length 3",
        ),
        (
            tollgate_request { route: huge, ..ok },
            tollgate_result::InvalidArgument,
            "request.route: length",
        ),
        (
            tollgate_request {
                method: field(b"G\xffT"),
                ..ok
            },
            tollgate_result::InvalidUtf8,
            "request.method is not UTF-8 (invalid byte at offset 1)",
        ),
        (
            tollgate_request {
                attrs: twice.as_ptr(),
                attrs_len: 1,
                ..ok
            },
            tollgate_result::InvalidArgument,
            "attribute \"token\" is given more than once",
        ),
        (
            tollgate_request {
                attrs: std::ptr::null(),
                attrs_len: 1,
                ..ok
            },
            tollgate_result::NullParameter,
            "attrs is NULL",
        ),
        (
            tollgate_request {
                attrs: many.as_ptr(),
                attrs_len: many.len(),
                ..ok
            },
            tollgate_result::InvalidArgument,
            "at most 32",
        ),
    ];
    for (request, want, message) in cases {
        // SAFETY: a live engine; each field points to its stated bytes or is a NULL
        // or length the library must refuse without reading.
        let rc = unsafe { tollgate_engine_decide_request(e, &request, &mut d) };
        assert_eq!(rc, want, "{message}");
        assert!(last_error().contains(message), "{}", last_error());
        assert_eq!(d, sentinel);
    }
    // SAFETY: NULL engine, request and output are refused before any use.
    unsafe {
        let rc = tollgate_engine_decide_request(std::ptr::null(), &ok, &mut d);
        assert_eq!(rc, tollgate_result::NullParameter);
        let rc = tollgate_engine_decide_request(e, std::ptr::null(), &mut d);
        assert_eq!(rc, tollgate_result::NullParameter);
        assert_eq!(last_error(), "request is NULL");
        let rc = tollgate_engine_decide_request(e, &ok, std::ptr::null_mut());
        assert_eq!(rc, tollgate_result::NullParameter);
    }
    assert_eq!(d, sentinel);
    // A misaligned request is refused before it is read.
    let mut bytes = [0u64; 2 + std::mem::size_of::<tollgate_request>() / 8];
    let p = bytes
        .as_mut_ptr()
        .cast::<u8>()
        .wrapping_add(1)
        .cast::<tollgate_request>();
    // SAFETY: the pointer is misaligned; the library must refuse it unread.
    let rc = unsafe { tollgate_engine_decide_request(e, p, &mut d) };
    assert_eq!(rc, tollgate_result::InvalidArgument);
    assert_eq!(d, sentinel);
    // SAFETY: freed once.
    unsafe { tollgate_engine_free(e) };
}

/// A policy value that would need more memory than the host has (issue 15, item 4: a
/// C gateway aborted with "memory allocation of 200000000000 bytes failed") is an error
/// code with a message naming the line, and the engine keeps its policy.
#[test]
fn a_huge_capacity_through_reload_is_an_error_not_an_abort() {
    let e = new_engine();
    for cap in ["10000000000", "4611686018427387904"] {
        let text = format!(
            "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"2/min\"\ncapacity = {cap}\n"
        );
        let mut rep = tollgate_reload_report::default();
        // SAFETY: the engine, a local string, a local output.
        let rc =
            unsafe { tollgate_engine_reload_toml(e, text.as_ptr().cast(), text.len(), &mut rep) };
        assert_eq!(rc, tollgate_result::Policy, "{cap}");
        let msg = last_error();
        assert!(msg.contains(":6:12: limit[0].capacity"), "{msg}");
        let mut out = std::ptr::null_mut();
        // SAFETY: a local string and out-pointer.
        let rc = unsafe { tollgate_engine_from_toml(text.as_ptr().cast(), text.len(), &mut out) };
        assert_eq!(rc, tollgate_result::Policy);
        assert!(out.is_null());
    }
    // SAFETY: freed once.
    unsafe { tollgate_engine_free(e) };
}

/// A call of an `_err` entry point: its result, its message (from the buffer) and the
/// length it reported.
fn with_err(
    f: impl FnOnce(*mut c_char, usize, *mut usize) -> tollgate_result,
) -> (tollgate_result, String, usize) {
    let mut buf = [0x55 as c_char; 512];
    let mut n = usize::MAX;
    let rc = f(buf.as_mut_ptr(), buf.len(), &mut n);
    let end = buf.iter().position(|&c| c == 0).expect("NUL-terminated");
    let msg: Vec<u8> = buf[..end].iter().map(|&c| c as u8).collect();
    (rc, String::from_utf8(msg).expect("UTF-8"), n)
}

/// The `_err` entry points write the message of their own call into the caller's
/// buffer (issue 21: a Go goroutine moves between OS threads between two cgo calls,
/// and read another call's message through tollgate_last_error()).
#[test]
fn err_entry_points_give_the_message_of_their_own_call() {
    let bad = "version = 1\n[[limit]]\nname = \"x\"\nkey = [\"token\"]\nrate = \"fast\"\n";
    let mut out = std::ptr::null_mut();
    // SAFETY: a static string, a local out-pointer, buffers from with_err.
    let (rc, msg, n) = with_err(|b, l, n| unsafe {
        tollgate_engine_from_toml_err(bad.as_ptr().cast(), bad.len(), &mut out, b, l, n)
    });
    assert_eq!(rc, tollgate_result::Policy);
    assert!(out.is_null());
    assert!(msg.contains("5:") && msg.contains("rate"), "{msg}");
    assert_eq!(n, msg.len());
    // The thread-local message is set too, for the old entry points' readers.
    assert_eq!(last_error(), msg);

    // Read on another thread, the thread-local message is not this call's; the
    // buffer's is.
    let elsewhere = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(elsewhere, "");

    // A small buffer: cut, NUL-terminated, and the whole length reported.
    let mut small = [0x55 as c_char; 8];
    let mut needed = 0;
    // SAFETY: as above, a local buffer of the stated size.
    let rc = unsafe {
        tollgate_engine_from_toml_err(
            bad.as_ptr().cast(),
            bad.len(),
            &mut out,
            small.as_mut_ptr(),
            small.len(),
            &mut needed,
        )
    };
    assert_eq!(rc, tollgate_result::Policy);
    assert_eq!(needed, msg.len());
    assert_eq!(small[7], 0);
    let cut: String = small[..7].iter().map(|&c| c as u8 as char).collect();
    assert_eq!(cut, msg[..7]);

    // NULL buffer (with a length) and NULL length: nothing written, same result.
    // SAFETY: NULL buffer and NULL err_n are allowed.
    let rc = unsafe {
        tollgate_engine_from_toml_err(
            bad.as_ptr().cast(),
            bad.len(),
            &mut out,
            std::ptr::null_mut(),
            64,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, tollgate_result::Policy);

    // Success: an empty message.
    // SAFETY: a static string, a local out-pointer, buffers from with_err.
    let (rc, msg, n) = with_err(|b, l, n| unsafe {
        tollgate_engine_from_toml_err(POLICY.as_ptr().cast(), POLICY.len(), &mut out, b, l, n)
    });
    assert_eq!((rc, msg.as_str(), n), (tollgate_result::Ok, "", 0));
    assert!(!out.is_null());
    let e = out;

    // A missing file, named in the message.
    let path = "/nonexistent/tollgate-policy.toml";
    let mut other = std::ptr::null_mut();
    // SAFETY: a static path, a local out-pointer, buffers from with_err.
    let (rc, msg, _) = with_err(|b, l, n| unsafe {
        tollgate_engine_from_file_err(path.as_ptr().cast(), path.len(), &mut other, b, l, n)
    });
    assert_eq!(rc, tollgate_result::Policy);
    assert!(other.is_null());
    assert!(msg.contains(path), "{msg}");

    // Reloads: a bad policy keeps the old one, and says why.
    let mut rep = tollgate_reload_report::default();
    // SAFETY: the live engine, a static string, a local report, buffers from with_err.
    let (rc, msg, _) = with_err(|b, l, n| unsafe {
        tollgate_engine_reload_toml_err(e, bad.as_ptr().cast(), bad.len(), &mut rep, b, l, n)
    });
    assert_eq!(rc, tollgate_result::Policy);
    assert!(msg.contains("rate"), "{msg}");
    // SAFETY: as above.
    let (rc, msg, _) = with_err(|b, l, n| unsafe {
        tollgate_engine_reload_file_err(e, path.as_ptr().cast(), path.len(), &mut rep, b, l, n)
    });
    assert_eq!(rc, tollgate_result::Policy);
    assert!(msg.contains(path), "{msg}");
    // SAFETY: as above; a NULL report is allowed.
    let (rc, msg, n) = with_err(|b, l, n| unsafe {
        tollgate_engine_reload_toml_err(
            e,
            POLICY.as_ptr().cast(),
            POLICY.len(),
            std::ptr::null_mut(),
            b,
            l,
            n,
        )
    });
    assert_eq!((rc, msg.as_str(), n), (tollgate_result::Ok, "", 0));
    // A NULL engine.
    // SAFETY: NULL is refused.
    let (rc, msg, _) = with_err(|b, l, n| unsafe {
        tollgate_engine_reload_toml_err(
            std::ptr::null(),
            POLICY.as_ptr().cast(),
            POLICY.len(),
            std::ptr::null_mut(),
            b,
            l,
            n,
        )
    });
    assert_eq!(rc, tollgate_result::NullParameter);
    assert!(msg.contains("engine"), "{msg}");
    // SAFETY: freed once.
    unsafe { tollgate_engine_free(e) };
}

/// Quota notices through the outbox: a JSON array, nothing taken when the buffer is too
/// small, acknowledged once (twice and unknown ids harmless).
#[test]
fn notices_are_taken_and_acknowledged() {
    let e = new_engine();
    let mut r = std::ptr::null_mut();
    let mut st = tollgate_quota_status::default();
    // SAFETY: the engine, a static key, local outputs.
    let rc = unsafe {
        tollgate_engine_quota_reserve(e, "k1".as_ptr().cast(), 2, 11, NOW, &mut r, &mut st)
    };
    assert_eq!(rc, tollgate_result::Ok);
    // SAFETY: the reservation just made.
    let rc = unsafe { tollgate_reservation_refund(r) };
    assert_eq!(rc, tollgate_result::Ok);
    let mut tiny = [0 as c_char; 8];
    let (mut n, mut count) = (0usize, 99usize);
    // SAFETY: the engine, a local buffer of the stated size, local outputs.
    let rc = unsafe {
        tollgate_engine_notices_take(
            e,
            16,
            NOW,
            tiny.as_mut_ptr(),
            tiny.len(),
            &mut n,
            &mut count,
        )
    };
    assert_eq!(rc, tollgate_result::BufferTooSmall);
    assert!(n > tiny.len() && count == 99);
    // SAFETY: the engine and buffers from text_of.
    let json = text_of(|b, l, out_n| unsafe {
        tollgate_engine_notices_take(e, 16, NOW, b, l, out_n, &mut count)
    })
    .unwrap();
    assert_eq!(count, 2, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["kind"], "warning");
    assert_eq!(v[1]["kind"], "overage");
    assert_eq!(v[1]["company"], "acme");
    assert_eq!(
        (v[1]["used"].as_u64(), v[1]["limit"].as_u64()),
        (Some(11), Some(10))
    );
    assert!(v[1]["crossed_at"].is_string(), "{json}");
    assert!(!json.contains("k1"), "no key in a notice: {json}");
    for n in v.as_array().unwrap() {
        let id = n["id"].as_u64().unwrap();
        for expect in [true, false] {
            let mut acked = !expect;
            // SAFETY: the engine and a local output.
            let rc = unsafe { tollgate_engine_notice_ack(e, id, &mut acked) };
            assert_eq!(rc, tollgate_result::Ok);
            assert_eq!(acked, expect);
        }
    }
    // SAFETY: the engine; NULL out_acked is allowed.
    let rc = unsafe { tollgate_engine_notice_ack(e, 12_345, std::ptr::null_mut()) };
    assert_eq!(rc, tollgate_result::Ok);
    // SAFETY: as above; NULL out_count is allowed.
    let json = text_of(|b, l, out_n| unsafe {
        tollgate_engine_notices_take(e, 16, NOW, b, l, out_n, std::ptr::null_mut())
    });
    assert_eq!(json.as_deref(), Some("[]"));
    // SAFETY: NULL engine is refused.
    let rc = unsafe { tollgate_engine_notice_ack(std::ptr::null(), 1, std::ptr::null_mut()) };
    assert_eq!(rc, tollgate_result::NullParameter);
    // SAFETY: the engine, freed once.
    unsafe { tollgate_engine_free(e) };
}

/// The journal's health as JSON: `{"journal":false}` without a journal, its state and
/// counters with one; its health changes as event JSON.
#[test]
fn journal_health_and_events_as_json() {
    let e = new_engine();
    // SAFETY: the engine and buffers from text_of.
    let json = text_of(|b, l, n| unsafe { tollgate_engine_journal_health(e, b, l, n) });
    assert_eq!(json.as_deref(), Some("{\"journal\":false}"));
    // SAFETY: the engine, freed once.
    unsafe { tollgate_engine_free(e) };

    let failing = crate::events::event_json(&tollgate::Event::JournalFailing {
        error: "usage.db: database or disk is full".into(),
        since_unix_ns: 7,
    });
    let v: serde_json::Value = serde_json::from_str(&failing).unwrap();
    assert_eq!(v["kind"], "journal_failing");
    assert_eq!(v["since_unix_ns"], 7);
    assert!(v["error"].as_str().unwrap().contains("full"));
    let recovered = crate::events::event_json(&tollgate::Event::JournalRecovered { failures: 3 });
    assert_eq!(recovered, "{\"failures\":3,\"kind\":\"journal_recovered\"}");
}

/// The health of a real journal (SQLite) through the C call.
#[test]
#[cfg_attr(miri, ignore = "SQLite is C code, which miri cannot run")]
fn journal_health_of_a_journaled_engine() {
    let dir = std::env::temp_dir().join(format!("tollgate-ffi-health-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("usage.db");
    let policy = format!(
        "{POLICY}[quota.journal]\npath = {:?}\n",
        path.display().to_string()
    );
    let mut e = std::ptr::null_mut();
    // SAFETY: a local string and a local out-pointer.
    let rc = unsafe { tollgate_engine_from_toml(policy.as_ptr().cast(), policy.len(), &mut e) };
    assert_eq!(rc, tollgate_result::Ok);
    let attrs = [attr("token", "k1")];
    let mut d = tollgate_decision::default();
    // SAFETY: a live engine, one attribute, a local output.
    let rc =
        unsafe { tollgate_engine_decide(e, attrs.as_ptr(), 1, TOLLGATE_CLASS_COST, NOW, &mut d) };
    assert_eq!(rc, tollgate_result::Ok);
    // SAFETY: the engine and buffers from text_of.
    let json = text_of(|b, l, n| unsafe { tollgate_engine_journal_health(e, b, l, n) }).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["journal"], true, "{json}");
    assert_eq!(v["state"], "ok", "{json}");
    assert_eq!(v["total_failures"], 0, "{json}");
    assert!(
        v["last_error"].is_null() && v["failing_since_unix_ns"].is_null(),
        "{json}"
    );
    assert_eq!(v["recreated"], 0, "{json}");
    let mut tiny = [0 as c_char; 4];
    let mut n = 0usize;
    // SAFETY: the engine, a local buffer of the stated size, a local output.
    let rc = unsafe { tollgate_engine_journal_health(e, tiny.as_mut_ptr(), tiny.len(), &mut n) };
    assert_eq!(rc, tollgate_result::BufferTooSmall);
    assert_eq!(n, json.len() + 1);
    // SAFETY: NULL engine is refused.
    let rc =
        unsafe { tollgate_engine_journal_health(std::ptr::null(), tiny.as_mut_ptr(), 4, &mut n) };
    assert_eq!(rc, tollgate_result::NullParameter);
    // SAFETY: the engine, freed once.
    unsafe { tollgate_engine_free(e) };
    let _ = std::fs::remove_dir_all(&dir);
}

/// The administration entry points from Rust, as C calls them: a key rotated, a
/// company terminated (its own reason code), an override set and removed, the typed
/// result codes of refused changes, and NULL / bad UTF-8 refused.
#[test]
fn the_admin_entry_points_from_rust() {
    let e = new_engine();
    let s = |x: &'static str| (x.as_ptr().cast::<c_char>(), x.len());
    let reason = |key: &'static str| {
        let attrs = [attr("token", key)];
        let mut d = tollgate_decision::default();
        // SAFETY: a live engine, one attribute, a local output.
        let rc =
            unsafe { tollgate_engine_decide(e, attrs.as_ptr(), 1, TOLLGATE_CLASS_COST, 0, &mut d) };
        assert_eq!(rc, tollgate_result::Ok);
        d.reason
    };
    // SAFETY: every call below gets a live engine (or NULL, refused) and static
    // strings of the given lengths.
    unsafe {
        let (k1, k1n) = s("k1");
        let (k9, k9n) = s("k9-new");
        assert_eq!(
            tollgate_engine_admin_rotate_key(e, k1, k1n, k9, k9n, 0),
            tollgate_result::Ok
        );
        assert_eq!(reason("k9-new"), tollgate_reason::Allowed as u32);
        // The policy serves unknown keys uncounted: the old key is no longer the user's.
        assert_eq!(
            tollgate_engine_admin_remove_key(e, k1, k1n),
            tollgate_result::UnknownKey
        );
        let (acme, acmen) = s("acme");
        assert_eq!(
            tollgate_engine_admin_company(e, acme, acmen, 2),
            tollgate_result::Ok
        );
        assert_eq!(reason("k9-new"), tollgate_reason::Terminated as u32);
        assert_eq!(
            tollgate_engine_admin_company(e, acme, acmen, 1),
            tollgate_result::CompanyTerminated
        );
        let (nope, nopen) = s("nope");
        assert_eq!(
            tollgate_engine_admin_company(e, nope, nopen, 0),
            tollgate_result::UnknownCompany
        );
        assert_eq!(
            tollgate_engine_admin_add_user(e, nope, nopen, nope, nopen),
            tollgate_result::UnknownCompany
        );
        let (u, un) = s("a");
        assert_eq!(tollgate_engine_admin_user(e, u, un, 0), tollgate_result::Ok);
        let (lim, limn) = s("per-token");
        let (m, mn) = s("{ token = \"t-1\" }");
        let (r, rn) = s("5/min");
        assert_eq!(
            tollgate_engine_admin_set_override(e, lim, limn, m, mn, r, rn),
            tollgate_result::Ok
        );
        assert_eq!(
            tollgate_engine_admin_remove_override(e, lim, limn, m, mn),
            tollgate_result::Ok
        );
        assert_eq!(
            tollgate_engine_admin_remove_override(e, lim, limn, m, mn),
            tollgate_result::UnknownLimit
        );
        assert_eq!(
            tollgate_engine_admin_add_company(e, std::ptr::null(), 1, 0, 0),
            tollgate_result::NullParameter
        );
        assert_eq!(
            tollgate_engine_admin_add_company(std::ptr::null(), acme, acmen, 0, 0),
            tollgate_result::NullParameter
        );
        let bad = [0xffu8];
        assert_eq!(
            tollgate_engine_admin_add_key(e, bad.as_ptr().cast(), 1, u, un),
            tollgate_result::InvalidUtf8
        );
        let mut changed = false;
        let (t, tn) = s("t-2");
        assert_eq!(
            tollgate_engine_admin_suspend_token(e, t, tn, 60_000, &mut changed),
            tollgate_result::Ok
        );
        assert!(changed);
        tollgate_engine_free(e);
    }
}

#[test]
fn override_match_text_is_parsed_strictly() {
    let m = parse_override_match("{ company = \"acme\", route = \"/v1\" }").unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        parse_override_match("company = \"acme\"").unwrap()["company"],
        "acme"
    );
    for bad in [
        "",
        "{}",
        "company = 3",
        "{",
        "company",
        "a = \"x\" } { b = \"y\"",
    ] {
        assert!(parse_override_match(bad).is_err(), "{bad:?}");
    }
}
