//! The C entry points, driven with arbitrary bytes: attribute names and values (and
//! tollgate_request fields) that are not UTF-8, NULL pointers with and without lengths, costs and times at the ends of
//! their ranges, forged decisions, buffers of every size, reservations settled in any
//! order. The oracle: no call ever returns `TOLLGATE_RESULT_PANIC` (a panic caught at the
//! boundary is a bug), every result is one of the documented codes, text written is
//! NUL-terminated with the length reported, a too-small buffer is left untouched, and
//! outputs of failed calls are untouched.
#![no_main]

use std::ffi::c_char;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tollgate_ffi::*;

/// Limits, classes, revocation and a quota with a tiny plan, so every path is reachable.
const POLICY: &str = r#"version = 1
host_attributes = ["region"]
[classes]
read = ["GET", "HEAD"]
default = "write"

[[limit]]
name = "per-token"
key = ["token", "tenant"]
rate = "5/s"
cost = { read = 1, write = 3 }

[[limit]]
name = "per-region"
key = ["region"]
rate = "20/min"
algorithm = "sliding_window"

[[limit]]
name = "shadow"
key = ["client"]
rate = "2/s"
shadow = true

[revocation]
key = "token"
denials = 3
window = "1m"

[quota]
key = "token"
unknown_key = "allow"
[[quota.plans]]
name = "tiny"
calls = 5
default = true
[[quota.companies]]
id = "acme"
users = [{ id = "alice", keys = ["k1"] }, { id = "bob", keys = ["k2"], disabled = true }]
"#;

struct Shared(*mut tollgate_engine);
// SAFETY: the engine handle is documented thread-safe; the fuzzer only shares it.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

fn engine() -> *const tollgate_engine {
    static ENGINE: OnceLock<Shared> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut e = std::ptr::null_mut();
            // SAFETY: a static string and a local out-pointer.
            let rc =
                unsafe { tollgate_engine_from_toml(POLICY.as_ptr().cast(), POLICY.len(), &mut e) };
            assert_eq!(rc, tollgate_result::Ok);
            Shared(e)
        })
        .0
}

fn check(rc: tollgate_result) -> tollgate_result {
    assert_ne!(rc, tollgate_result::Panic, "a panic reached the boundary");
    // Every code the library returns is one of the documented ones.
    assert!((rc as u32) <= tollgate_result::UnknownLimit as u32);
    rc
}

/// Bytes, or a NULL pointer with an arbitrary length.
#[derive(Arbitrary, Debug)]
enum Text {
    Bytes(Vec<u8>),
    Known(u8),
    Null(u8),
}

const NAMES: [&str; 10] = [
    "token", "tenant", "method", "region", "client", "user", "company", "route", "GET", "k1",
];

impl Text {
    fn raw(&self) -> (*const c_char, usize) {
        match self {
            Text::Bytes(b) => (b.as_ptr().cast(), b.len()),
            Text::Known(i) => {
                let s = NAMES[*i as usize % NAMES.len()];
                (s.as_ptr().cast(), s.len())
            }
            Text::Null(n) => (std::ptr::null(), *n as usize),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Decide {
        attrs: Vec<(Text, Text)>,
        cost: u64,
        now: u64,
        header: u32,
        buf: u16,
    },
    Forged {
        decision: [u64; 8],
        header: u32,
        buf: u16,
    },
    Revoke(Text),
    Restore(Text),
    IsRevoked(Text),
    Reserve {
        key: Text,
        cost: u64,
        now: u64,
        settle: Option<(u64, Text)>,
    },
    Event {
        buf: u16,
    },
    Metrics {
        buf: u16,
    },
    Build(Vec<u8>),
    BuildFile(Vec<u8>),
    LastError {
        buf: u8,
    },
    /// tollgate_engine_decide_request: the seven fields, further attributes.
    DecideRequest {
        fields: [Text; 7],
        attrs: Vec<(Text, Text)>,
        explicit_cost: bool,
        cost: u64,
        now: u64,
        header: u32,
        buf: u16,
    },
    /// tollgate_engine_from_toml_err: the message in a buffer of `buf` bytes (0: NULL).
    BuildErr {
        text: Vec<u8>,
        buf: u16,
        no_len: bool,
    },
    /// tollgate_engine_from_file_err.
    BuildFileErr {
        name: Vec<u8>,
        buf: u16,
    },
    /// tollgate_engine_reload_toml_err, on an engine of its own.
    ReloadErr {
        text: Vec<u8>,
        buf: u16,
    },
    /// tollgate_engine_reload_file_err, on an engine of its own.
    ReloadFileErr {
        name: Vec<u8>,
        buf: u16,
    },
    ResultMessage(u32),
}

fn c_attrs(attrs: &[(Text, Text)]) -> Vec<tollgate_attr> {
    attrs
        .iter()
        .map(|(n, v)| {
            let (name, name_len) = n.raw();
            let (value, value_len) = v.raw();
            tollgate_attr {
                name,
                name_len,
                value,
                value_len,
            }
        })
        .collect()
}

/// The oracle for a decision: consistent fields, and its headers' text contract.
fn check_decision(e: *const tollgate_engine, d: &tollgate_decision, header: u32, buf: u16) {
    assert!(d.reason <= tollgate_reason::Terminated as u32);
    assert_eq!(d.allowed, d.reason == 0);
    assert_eq!(d.allowed, d.retry_after_ms == 0);
    // SAFETY: the engine, the decision just made, a buffer from text_out.
    text_out(buf, |b, l, n| unsafe {
        tollgate_engine_header(e, d, header, b, l, n)
    });
}

/// Writes text into a buffer of `len` bytes and checks the text contract.
fn text_out(len: u16, call: impl FnOnce(*mut c_char, usize, *mut usize) -> tollgate_result) {
    let mut buf = vec![0x55 as c_char; len as usize];
    let mut n = usize::MAX;
    match check(call(buf.as_mut_ptr(), buf.len(), &mut n)) {
        tollgate_result::Ok => {
            assert!(n < buf.len());
            assert_eq!(buf[n], 0);
            assert!(buf[..n].iter().all(|&c| c != 0));
        }
        tollgate_result::BufferTooSmall => {
            assert!(n > buf.len());
            assert!(
                buf.iter().all(|&c| c == 0x55),
                "a too-small buffer was written"
            );
        }
        _ => assert_eq!(n, usize::MAX, "out_n written by a failed call"),
    }
}

/// The oracle of the `_err` entry points' error buffer: NUL-terminated UTF-8 within
/// the buffer, cut only to fit (at a character boundary), the whole length in
/// `*err_n`; empty on success, a message on failure.
fn err_out(
    len: u16,
    no_len: bool,
    call: impl FnOnce(*mut c_char, usize, *mut usize) -> tollgate_result,
) -> tollgate_result {
    let mut buf = vec![0x55 as c_char; len as usize];
    let ptr = if len == 0 {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr()
    };
    let mut n = usize::MAX;
    let n_ptr: *mut usize = if no_len { std::ptr::null_mut() } else { &mut n };
    // A NULL buffer is given a length anyway: it must be ignored.
    let rc = check(call(ptr, if len == 0 { 64 } else { buf.len() }, n_ptr));
    if len > 0 {
        let end = buf.iter().position(|&c| c == 0).expect("NUL-terminated");
        let bytes: Vec<u8> = buf[..end].iter().map(|&c| c as u8).collect();
        assert!(
            std::str::from_utf8(&bytes).is_ok(),
            "cut inside a character"
        );
        if !no_len {
            let room = buf.len() - 1;
            if n <= room {
                assert_eq!(end, n, "cut although it fits");
            } else {
                assert!(end <= room && room - end <= 3, "cut more than a character");
            }
        }
    }
    if !no_len {
        assert_eq!(rc == tollgate_result::Ok, n == 0, "{rc:?}: {n}");
    }
    rc
}

fn own_engine() -> *mut tollgate_engine {
    let mut e = std::ptr::null_mut();
    // SAFETY: a static string and a local out-pointer.
    let rc = unsafe { tollgate_engine_from_toml(POLICY.as_ptr().cast(), POLICY.len(), &mut e) };
    assert_eq!(rc, tollgate_result::Ok);
    e
}

fuzz_target!(|data: &[u8]| {
    let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let e = engine();
    for op in ops.iter().take(64) {
        match op {
            Op::Decide {
                attrs,
                cost,
                now,
                header,
                buf,
            } => {
                let c_attrs = c_attrs(attrs);
                let mut d = tollgate_decision {
                    decided_by: 77,
                    ..Default::default()
                };
                // SAFETY: the engine, a live attribute array (NULL entries carry their
                // own lengths, which the library must refuse), a local output.
                let rc = check(unsafe {
                    tollgate_engine_decide(e, c_attrs.as_ptr(), c_attrs.len(), *cost, *now, &mut d)
                });
                if rc != tollgate_result::Ok {
                    assert_eq!(d.decided_by, 77, "a failed decide wrote its output");
                    continue;
                }
                check_decision(e, &d, *header, *buf);
            }
            Op::DecideRequest {
                fields,
                attrs,
                explicit_cost,
                cost,
                now,
                header,
                buf,
            } => {
                let c_attrs = c_attrs(attrs);
                let f = |i: usize| {
                    let (ptr, len) = fields[i].raw();
                    tollgate_str { ptr, len }
                };
                let request = tollgate_request {
                    token: f(0),
                    tenant: f(1),
                    user: f(2),
                    company: f(3),
                    client: f(4),
                    route: f(5),
                    method: f(6),
                    attrs: if c_attrs.is_empty() {
                        std::ptr::null()
                    } else {
                        c_attrs.as_ptr()
                    },
                    attrs_len: c_attrs.len(),
                    explicit_cost: *explicit_cost,
                    cost: *cost,
                    now_unix_ns: *now,
                };
                let mut d = tollgate_decision {
                    decided_by: 77,
                    ..Default::default()
                };
                // SAFETY: the engine, a request whose fields and attributes point to live
                // bytes or are NULLs the library must refuse, a local output.
                let rc = check(unsafe { tollgate_engine_decide_request(e, &request, &mut d) });
                if rc != tollgate_result::Ok {
                    assert_eq!(d.decided_by, 77, "a failed decide wrote its output");
                    continue;
                }
                check_decision(e, &d, *header, *buf);
            }
            Op::Forged {
                decision,
                header,
                buf,
            } => {
                let d = tollgate_decision {
                    allowed: decision[0] & 1 == 1,
                    shadow_denied: decision[0] & 2 == 2,
                    reason: decision[1] as u32,
                    decided_by: decision[2] as i32,
                    limit: decision[3],
                    remaining: decision[4],
                    retry_after_ms: decision[5],
                    reset_after_ms: decision[6],
                    generation: decision[7] % 3,
                    quota: tollgate_quota_status {
                        outcome: (decision[0] >> 8) as u32,
                        used: decision[3],
                        limit: decision[4],
                        resets_at_unix: decision[5] as i64,
                    },
                };
                // SAFETY: as above, with a forged decision.
                text_out(*buf, |b, l, n| unsafe {
                    tollgate_engine_header(e, &d, *header, b, l, n)
                });
            }
            Op::Revoke(t) | Op::Restore(t) | Op::IsRevoked(t) => {
                let (p, len) = t.raw();
                let mut out = false;
                // SAFETY: the engine, the fuzzed (pointer, length), a local output.
                check(unsafe {
                    match op {
                        Op::Revoke(_) => tollgate_engine_revoke(e, p, len, &mut out),
                        Op::Restore(_) => tollgate_engine_restore(e, p, len, &mut out),
                        _ => tollgate_engine_is_revoked(e, p, len, &mut out),
                    }
                });
            }
            Op::Reserve {
                key,
                cost,
                now,
                settle,
            } => {
                let (p, len) = key.raw();
                let mut r = std::ptr::null_mut();
                let mut st = tollgate_quota_status::default();
                // SAFETY: the engine, the fuzzed key, local outputs.
                let rc = check(unsafe {
                    tollgate_engine_quota_reserve(e, p, len, *cost, *now, &mut r, &mut st)
                });
                if rc != tollgate_result::Ok {
                    assert!(r.is_null());
                    continue;
                }
                assert!(!r.is_null() && (1..=3).contains(&st.outcome));
                match settle {
                    Some((final_cost, idem)) => {
                        let (ip, ilen) = idem.raw();
                        let mut outcome = 9;
                        // SAFETY: the reservation just made, the fuzzed key.
                        let rc = check(unsafe {
                            tollgate_reservation_commit(r, *final_cost, ip, ilen, &mut outcome)
                        });
                        if rc != tollgate_result::Ok {
                            assert_eq!(outcome, 9);
                            // SAFETY: a failed commit leaves the reservation with us.
                            check(unsafe { tollgate_reservation_refund(r) });
                        }
                    }
                    // SAFETY: the reservation just made, released once.
                    None => assert_eq!(
                        check(unsafe { tollgate_reservation_refund(r) }),
                        tollgate_result::Ok
                    ),
                }
            }
            // SAFETY: the engine and a buffer from text_out.
            Op::Event { buf } => text_out(*buf, |b, l, n| unsafe {
                tollgate_engine_next_event(e, b, l, n)
            }),
            // SAFETY: as above.
            Op::Metrics { buf } => text_out(*buf, |b, l, n| unsafe {
                tollgate_engine_metrics(e, b, l, n)
            }),
            Op::Build(text) => {
                // The fuzzer must not write files: no journals.
                if text.windows(7).any(|w| w == b"journal") {
                    continue;
                }
                let mut out = std::ptr::null_mut();
                // SAFETY: fuzzed bytes and a local out-pointer.
                let rc = check(unsafe {
                    tollgate_engine_from_toml(text.as_ptr().cast(), text.len(), &mut out)
                });
                assert_eq!(rc == tollgate_result::Ok, !out.is_null());
                // SAFETY: freed once (NULL is fine).
                unsafe { tollgate_engine_free(out) };
            }
            Op::BuildFile(name) => {
                // Only paths that cannot exist: reading arbitrary files could block.
                let mut path = b"/nonexistent-tollgate-fuzz/".to_vec();
                path.extend_from_slice(name);
                let mut out = std::ptr::null_mut();
                // SAFETY: a local path and out-pointer.
                let rc = check(unsafe {
                    tollgate_engine_from_file(path.as_ptr().cast(), path.len(), &mut out)
                });
                assert_ne!(rc, tollgate_result::Ok);
                assert!(out.is_null());
            }
            // SAFETY: a buffer from text_out.
            Op::LastError { buf } => text_out(u16::from(*buf), |b, l, n| unsafe {
                tollgate_last_error(b, l, n)
            }),
            Op::BuildErr { text, buf, no_len } => {
                if text.windows(7).any(|w| w == b"journal") {
                    continue;
                }
                let mut out = std::ptr::null_mut();
                // SAFETY: fuzzed bytes, a local out-pointer, a buffer from err_out.
                let rc = err_out(*buf, *no_len, |b, l, n| unsafe {
                    tollgate_engine_from_toml_err(
                        text.as_ptr().cast(),
                        text.len(),
                        &mut out,
                        b,
                        l,
                        n,
                    )
                });
                assert_eq!(rc == tollgate_result::Ok, !out.is_null());
                // SAFETY: freed once (NULL is fine).
                unsafe { tollgate_engine_free(out) };
            }
            Op::BuildFileErr { name, buf } => {
                let mut path = b"/nonexistent-tollgate-fuzz/".to_vec();
                path.extend_from_slice(name);
                let mut out = std::ptr::null_mut();
                // SAFETY: a local path and out-pointer, a buffer from err_out.
                let rc = err_out(*buf, false, |b, l, n| unsafe {
                    tollgate_engine_from_file_err(
                        path.as_ptr().cast(),
                        path.len(),
                        &mut out,
                        b,
                        l,
                        n,
                    )
                });
                assert_ne!(rc, tollgate_result::Ok);
                assert!(out.is_null());
            }
            Op::ReloadErr { text, buf } => {
                if text.windows(7).any(|w| w == b"journal") {
                    continue;
                }
                let own = own_engine();
                let mut rep = tollgate_reload_report::default();
                // SAFETY: an engine of this op's own, fuzzed bytes, a local report.
                err_out(*buf, false, |b, l, n| unsafe {
                    tollgate_engine_reload_toml_err(
                        own,
                        text.as_ptr().cast(),
                        text.len(),
                        &mut rep,
                        b,
                        l,
                        n,
                    )
                });
                // SAFETY: freed once.
                unsafe { tollgate_engine_free(own) };
            }
            Op::ReloadFileErr { name, buf } => {
                let mut path = b"/nonexistent-tollgate-fuzz/".to_vec();
                path.extend_from_slice(name);
                let own = own_engine();
                // SAFETY: an engine of this op's own, a local path, no report.
                let rc = err_out(*buf, false, |b, l, n| unsafe {
                    tollgate_engine_reload_file_err(
                        own,
                        path.as_ptr().cast(),
                        path.len(),
                        std::ptr::null_mut(),
                        b,
                        l,
                        n,
                    )
                });
                assert_ne!(rc, tollgate_result::Ok);
                // SAFETY: freed once.
                unsafe { tollgate_engine_free(own) };
            }
            Op::ResultMessage(code) => {
                // SAFETY: the function returns a static NUL-terminated string.
                let m = unsafe { std::ffi::CStr::from_ptr(tollgate_result_message(*code)) };
                let m = m.to_str().expect("UTF-8");
                assert!(!m.is_empty());
                assert_eq!(
                    *code <= tollgate_result::UnknownLimit as u32,
                    m != "unknown result code"
                );
            }
        }
    }
});
