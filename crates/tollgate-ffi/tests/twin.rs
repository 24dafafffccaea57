//! The C ABI decides exactly as the Rust engine does. Two engines from one policy, one
//! driven through the C ABI (byte strings and lengths), the other
//! through `Engine::decide`, see the same random sequence of requests (tokens, tenants,
//! methods, explicit costs, times moving forward), revocations and reservations; every
//! decision, header value and event must agree, field by field. The C side takes each
//! request through `tollgate_engine_decide` or `tollgate_engine_decide_request` (fields,
//! and further attributes), at random. Inputs the C side must refuse (invalid UTF-8,
//! repeated names) are refused there and skipped on the Rust side.

use std::ffi::{c_char, CStr};

use proptest::prelude::*;
use tollgate::{Engine, Event, Policy, Reason, Request};
use tollgate_ffi::*;

const POLICY: &str = r#"version = 1
[classes]
read = ["GET"]
default = "write"

[[limit]]
name = "per-token-tenant"
key = ["token", "tenant"]
rate = "5/s burst 8"
cost = { read = 1, write = 3 }

[[limit]]
name = "per-tenant-window"
key = ["tenant"]
rate = "30/min"
algorithm = "sliding_window"

[[limit]]
name = "writes-shadow"
key = ["token"]
classes = ["write"]
rate = "2/s"
shadow = true

[revocation]
key = "token"
denials = 6
window = "30s"

[quota]
key = "token"
unknown_key = "refuse"
[[quota.plans]]
name = "small"
calls = 40
default = true
[[quota.companies]]
id = "acme"
users = [{ id = "a", keys = ["t0", "t1"] }, { id = "b", keys = ["t2"] }]
"#;

const T0: u64 = 1_800_000_000_000_000_000;

#[derive(Clone, Debug)]
enum Op {
    Decide {
        token: u8,
        tenant: u8,
        method: Option<&'static str>,
        cost: Option<u64>,
        advance_ms: u64,
        bad: Option<u8>,
        /// 0: tollgate_engine_decide; 1: tollgate_engine_decide_request with the method
        /// as a field; 2: the same with the method as a further attribute.
        via: u8,
    },
    Revoke(u8),
    Restore(u8),
    Reserve {
        token: u8,
        cost: u64,
        commit: Option<(u64, u8)>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..4, 0u8..4, prop::option::of(prop::sample::select(vec!["GET", "POST", "DELETE"])),
              prop::option::weighted(0.2, 0u64..12), 0u64..800, prop::option::weighted(0.05, 0u8..4), 0u8..3)
            .prop_map(|(token, tenant, method, cost, advance_ms, bad, via)| Op::Decide { token, tenant, method, cost, advance_ms, bad, via }),
        1 => (0u8..4).prop_map(Op::Revoke),
        1 => (0u8..4).prop_map(Op::Restore),
        1 => (0u8..4, 0u64..6, prop::option::of((0u64..6, 0u8..3)))
            .prop_map(|(token, cost, commit)| Op::Reserve { token, cost, commit }),
    ]
}

fn tokens(i: u8) -> &'static str {
    ["t0", "t1", "t2", "t-unknown"][i as usize]
}

fn attr(name: &str, value: &[u8]) -> tollgate_attr {
    tollgate_attr {
        name: name.as_ptr().cast(),
        name_len: name.len(),
        value: value.as_ptr().cast(),
        value_len: value.len(),
    }
}

fn c_str(value: &[u8]) -> tollgate_str {
    tollgate_str {
        ptr: value.as_ptr().cast(),
        len: value.len(),
    }
}

fn c_text(f: impl FnOnce(*mut c_char, usize, *mut usize) -> tollgate_result) -> Option<String> {
    let mut buf = vec![0 as c_char; 1024];
    let mut n = 0;
    match f(buf.as_mut_ptr(), buf.len(), &mut n) {
        tollgate_result::Ok => {
            // SAFETY: on success the buffer holds NUL-terminated text.
            Some(
                unsafe { CStr::from_ptr(buf.as_ptr()) }
                    .to_str()
                    .unwrap()
                    .to_owned(),
            )
        }
        tollgate_result::NoValue | tollgate_result::NoEvent => None,
        other => panic!("unexpected {other:?}"),
    }
}

fn event_json(e: &Event) -> serde_json::Value {
    match e {
        Event::Quota(q) => serde_json::to_value(q).unwrap(),
        Event::Revoked {
            attribute,
            key,
            automatic,
        } => serde_json::json!({
            "kind": "revoked", "attribute": attribute, "key": key.to_string(), "automatic": automatic,
        }),
        Event::Restored { attribute, key } => serde_json::json!({
            "kind": "restored", "attribute": attribute, "key": key.to_string(),
        }),
        _ => serde_json::json!({ "kind": "other" }),
    }
}

struct Twin {
    rust: Engine,
    c: *mut tollgate_engine,
}

impl Drop for Twin {
    fn drop(&mut self) {
        // SAFETY: the handle from new(), freed once.
        unsafe { tollgate_engine_free(self.c) };
    }
}

impl Twin {
    fn new() -> Self {
        let rust = Engine::new(Policy::from_toml(POLICY).unwrap().0).unwrap();
        let mut c = std::ptr::null_mut();
        // SAFETY: a static policy and a local out-pointer.
        let rc = unsafe { tollgate_engine_from_toml(POLICY.as_ptr().cast(), POLICY.len(), &mut c) };
        assert_eq!(rc, tollgate_result::Ok);
        Twin { rust, c }
    }

    fn events_agree(&self) -> Result<(), TestCaseError> {
        loop {
            let rust = self.rust.events().try_recv().ok();
            // SAFETY: the live handle and a buffer from c_text.
            let c = c_text(|b, l, n| unsafe { tollgate_engine_next_event(self.c, b, l, n) });
            prop_assert_eq!(
                rust.as_ref().map(event_json),
                c.map(|s| serde_json::from_str::<serde_json::Value>(&s).unwrap())
            );
            if rust.is_none() {
                return Ok(());
            }
        }
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let twin = Twin::new();
    let mut now = T0;
    for op in ops {
        match op {
            Op::Decide {
                token,
                tenant,
                method,
                cost,
                advance_ms,
                bad,
                via,
            } => {
                now += advance_ms * 1_000_000;
                let token_s = tokens(token);
                // One tenant is not ASCII: the checked path of both entry points.
                let tenant_s = ["acme-1", "acme-2", "initech", "zürich-ä"][tenant as usize];
                let mut c_attrs = Vec::new();
                let mut request = tollgate_request {
                    now_unix_ns: now,
                    explicit_cost: cost.is_some(),
                    cost: cost.unwrap_or(0),
                    ..tollgate_request::default()
                };
                if via == 0 {
                    c_attrs.push(attr("token", token_s.as_bytes()));
                    c_attrs.push(attr("tenant", tenant_s.as_bytes()));
                } else {
                    request.token = c_str(token_s.as_bytes());
                    request.tenant = c_str(tenant_s.as_bytes());
                }
                if let Some(m) = method {
                    if via == 1 {
                        request.method = c_str(m.as_bytes());
                    } else {
                        c_attrs.push(attr("method", m.as_bytes()));
                    }
                }
                match bad {
                    Some(0) => c_attrs.push(attr("region", b"\xffeu")),
                    Some(1) => c_attrs.push(attr("token", b"again")),
                    Some(2) => c_attrs.push(attr("", b"x")),
                    Some(_) if via == 0 => c_attrs.push(attr("tenant", b"\xc3")),
                    Some(_) => request.tenant = c_str(b"\xc3"),
                    None => {}
                }
                let mut d = tollgate_decision::default();
                let rc = if via == 0 {
                    // SAFETY: the live handle, attributes pointing to live bytes, a local
                    // output.
                    unsafe {
                        tollgate_engine_decide(
                            twin.c,
                            c_attrs.as_ptr(),
                            c_attrs.len(),
                            cost.unwrap_or(TOLLGATE_CLASS_COST),
                            now,
                            &mut d,
                        )
                    }
                } else {
                    request.attrs = c_attrs.as_ptr();
                    request.attrs_len = c_attrs.len();
                    // SAFETY: the live handle, a request pointing to live bytes, a local
                    // output.
                    unsafe { tollgate_engine_decide_request(twin.c, &request, &mut d) }
                };
                if bad.is_some() {
                    prop_assert_ne!(rc, tollgate_result::Ok);
                    continue;
                }
                prop_assert_eq!(rc, tollgate_result::Ok);
                let mut req = Request::new().token(token_s).tenant(tenant_s).at(now);
                if let Some(m) = method {
                    req = req.method(m);
                }
                if let Some(c) = cost {
                    req = req.cost(c);
                }
                let r = twin.rust.decide(&req);
                // SAFETY: a static string from the library.
                let reason = unsafe { CStr::from_ptr(tollgate_reason_name(d.reason)) }
                    .to_str()
                    .unwrap();
                prop_assert_eq!(reason, r.reason.as_str());
                prop_assert_eq!(d.allowed, r.reason == Reason::Allowed);
                prop_assert_eq!(d.decided_by, r.decided_by.map_or(-1, |i| i as i32));
                prop_assert_eq!(d.limit, r.limit);
                prop_assert_eq!(d.remaining, r.remaining);
                let ms = |ns: u64| {
                    if ns == u64::MAX {
                        TOLLGATE_NEVER
                    } else {
                        ns.div_ceil(1_000_000)
                    }
                };
                prop_assert_eq!(d.retry_after_ms, ms(r.retry_after));
                prop_assert_eq!(d.reset_after_ms, ms(r.reset_after));
                prop_assert_eq!(d.shadow_denied, r.shadow_denied);
                prop_assert_eq!(d.generation, r.generation);
                prop_assert_eq!(d.quota.used, r.quota.map_or(0, |q| q.used));
                prop_assert_eq!(d.quota.outcome == 0, r.quota.is_none());
                let h = twin.rust.headers(&r);
                for (which, want) in [(0u32, &h.policy), (1, &h.ratelimit), (2, &h.retry_after)] {
                    // SAFETY: the live handle, the decision, a buffer from c_text.
                    let got = c_text(|b, l, n| unsafe {
                        tollgate_engine_header(twin.c, &d, which, b, l, n)
                    });
                    prop_assert_eq!(&got, want);
                }
            }
            Op::Revoke(t) | Op::Restore(t) => {
                let v = tokens(t);
                let mut changed = false;
                // SAFETY: the live handle, a static value, a local output.
                let rc = unsafe {
                    if matches!(op, Op::Revoke(_)) {
                        tollgate_engine_revoke(twin.c, v.as_ptr().cast(), v.len(), &mut changed)
                    } else {
                        tollgate_engine_restore(twin.c, v.as_ptr().cast(), v.len(), &mut changed)
                    }
                };
                prop_assert_eq!(rc, tollgate_result::Ok);
                let rust = if matches!(op, Op::Revoke(_)) {
                    twin.rust.revoke(v)
                } else {
                    twin.rust.restore(v)
                };
                prop_assert_eq!(changed, rust);
            }
            Op::Reserve {
                token,
                cost,
                commit,
            } => {
                let k = tokens(token);
                let mut r = std::ptr::null_mut();
                let mut st = tollgate_quota_status::default();
                // SAFETY: the live handle, a static key, local outputs.
                let rc = unsafe {
                    tollgate_engine_quota_reserve(
                        twin.c,
                        k.as_ptr().cast(),
                        k.len(),
                        cost,
                        now,
                        &mut r,
                        &mut st,
                    )
                };
                let rust = twin.rust.reserve_quota(k, cost, Some(now)).unwrap();
                match rust {
                    Err(_) => {
                        prop_assert_eq!(rc, tollgate_result::UnknownKey);
                        continue;
                    }
                    Ok(res) => {
                        prop_assert_eq!(rc, tollgate_result::Ok);
                        prop_assert_eq!(st.used, res.decision.used);
                        let ledger = twin.rust.ledger().unwrap();
                        match commit {
                            Some((final_cost, id)) => {
                                let id = ["r1", "r2", "r3"][id as usize];
                                let mut outcome = 9;
                                // SAFETY: the reservation just made, settled once.
                                let rc = unsafe {
                                    tollgate_reservation_commit(
                                        r,
                                        final_cost,
                                        id.as_ptr().cast(),
                                        id.len(),
                                        &mut outcome,
                                    )
                                };
                                prop_assert_eq!(rc, tollgate_result::Ok);
                                // Through the engine, as the C ABI does: a commit's
                                // notices go to the event channel.
                                let rust = twin.rust.commit_quota(res, final_cost, id).unwrap();
                                prop_assert_eq!(
                                    outcome == 1,
                                    rust == tollgate::quota::CommitOutcome::Duplicate
                                );
                            }
                            None => {
                                // SAFETY: the reservation just made, released once.
                                let rc = unsafe { tollgate_reservation_refund(r) };
                                prop_assert_eq!(rc, tollgate_result::Ok);
                                ledger.refund(res);
                            }
                        }
                    }
                }
            }
        }
        twin.events_agree()?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_c_abi_decides_as_rust_does(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
