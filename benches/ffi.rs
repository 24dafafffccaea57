//! One decision through the C ABI against the same decision in Rust, same run.
//!
//! * `rust_decide`: `Engine::decide` on a `Request` with four attributes (token, tenant,
//!   company, method), two limits (per token and tenant; per company), 1,000 tokens over
//!   100 companies, explicit time;
//! * `c_abi_decide`: `tollgate_engine_decide` on an engine built from the same policy,
//!   called through an opaque `extern "C"` function pointer (as a gateway calls it: no
//!   inlining across the boundary), with the attributes as (pointer, length) pairs, so
//!   the boundary's work — the checks, the UTF-8 validation of names and values, the
//!   attribute-name dispatch, the conversion of the decision to the C struct — is in it;
//! * `rust_decide_read`: `rust_decide` plus reading every field the C struct carries, as a
//!   caller acting on the decision does (the C entry point reads them all to fill its
//!   struct, and `rust_decide` alone reads none);
//! * the same three with the monthly quota (`_quota`).
//!
//! Target: the boundary adds at most 10% or 5 ns, whichever is larger.
//!
//! Run: `cargo bench -p tollgate-benches --bench ffi`.

use std::ffi::c_char;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate::{Engine, Policy, Request};
use tollgate_benches::{bench_quota_toml, bench_token, SplitMix64};
use tollgate_ffi::{
    tollgate_attr, tollgate_decision, tollgate_engine, tollgate_engine_decide,
    tollgate_engine_decide_request, tollgate_engine_free, tollgate_engine_from_toml,
    tollgate_request, tollgate_result, tollgate_str, TOLLGATE_CLASS_COST,
};

const KEYS: usize = 1_000;
const COMPANIES: usize = 100;
const SEQ: usize = 1 << 16;
/// 2027-01-15T08:00:00Z.
const NOW: u64 = 1_800_000_000_000_000_000;

type DecideFn = unsafe extern "C" fn(
    *const tollgate_engine,
    *const tollgate_attr,
    usize,
    u64,
    u64,
    *mut tollgate_decision,
) -> tollgate_result;

type DecideRequestFn = unsafe extern "C" fn(
    *const tollgate_engine,
    *const tollgate_request,
    *mut tollgate_decision,
) -> tollgate_result;

fn policy_text(quota: bool) -> String {
    let mut text = String::from(
        "version = 1\n\
         [[limit]]\nname = \"per-token-tenant\"\nrate = \"1000000000/s burst 1000000000000\"\n\
         [[limit]]\nname = \"per-company\"\nkey = [\"company\"]\nrate = \"1000000000/s burst 1000000000000\"\n",
    );
    if quota {
        text.push_str(&bench_quota_toml(KEYS, COMPANIES));
    }
    text
}

fn c_str(value: &str) -> tollgate_str {
    tollgate_str {
        ptr: value.as_ptr().cast::<c_char>(),
        len: value.len(),
    }
}

fn attr(name: &'static str, value: &str) -> tollgate_attr {
    tollgate_attr {
        name: name.as_ptr().cast::<c_char>(),
        name_len: name.len(),
        value: value.as_ptr().cast::<c_char>(),
        value_len: value.len(),
    }
}

fn bench(c: &mut Criterion) {
    let tokens: Vec<String> = (0..KEYS).map(bench_token).collect();
    let companies: Vec<String> = (0..COMPANIES).map(|c| format!("c{c}")).collect();
    let mut rng = SplitMix64::new(7);
    let seq: Vec<usize> = (0..SEQ).map(|_| rng.below(KEYS as u64) as usize).collect();
    let company_of = |k: usize| &companies[k / (KEYS / COMPANIES)];

    let mut g = c.benchmark_group("ffi_decision");
    g.throughput(Throughput::Elements(1));
    for quota in [false, true] {
        let suffix = if quota { "_quota" } else { "" };
        let text = policy_text(quota);

        let engine =
            Engine::new(Policy::from_toml(&text).expect("bench policy").0).expect("engine");
        let request = |k: usize| {
            Request::new()
                .token(&tokens[k])
                .tenant("tenant-1")
                .company(company_of(k))
                .method("GET")
                .at(NOW)
        };
        assert!(engine.decide(&request(0)).allowed());
        g.bench_function(format!("rust_decide{suffix}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(engine.decide(black_box(&request(seq[i & (SEQ - 1)]))))
            })
        });
        // The same, reading every field the C struct carries, as a caller acting on the
        // decision does (the C entry point reads them all to fill its struct).
        g.bench_function(format!("rust_decide_read{suffix}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                let d = engine.decide(black_box(&request(seq[i & (SEQ - 1)])));
                black_box((
                    d.allowed(),
                    d.shadow_denied,
                    d.decided_by,
                    d.limit,
                    d.remaining,
                    d.retry_after,
                    d.reset_after,
                    d.generation,
                    d.quota
                        .map(|q| (q.outcome, q.used, q.limit, q.resets_at_unix)),
                ))
            })
        });

        let mut handle: *mut tollgate_engine = std::ptr::null_mut();
        // SAFETY: the policy text and its length; `handle` is a local out-pointer.
        let rc =
            unsafe { tollgate_engine_from_toml(text.as_ptr().cast(), text.len(), &mut handle) };
        assert_eq!(rc, tollgate_result::Ok);
        let decide: DecideFn = black_box(tollgate_engine_decide);
        let call = |k: usize, out: &mut tollgate_decision| {
            let attrs = [
                attr("token", &tokens[k]),
                attr("tenant", "tenant-1"),
                attr("company", company_of(k)),
                attr("method", "GET"),
            ];
            // SAFETY: a live engine, four attributes pointing into live strings, a local
            // output.
            unsafe {
                decide(
                    handle,
                    attrs.as_ptr(),
                    attrs.len(),
                    TOLLGATE_CLASS_COST,
                    NOW,
                    out,
                )
            }
        };
        let mut out = tollgate_decision::default();
        assert_eq!(call(0, &mut out), tollgate_result::Ok);
        assert!(out.allowed);
        g.bench_function(format!("c_abi_decide{suffix}"), |b| {
            let mut i = 0;
            let mut out = tollgate_decision::default();
            b.iter(|| {
                i += 1;
                let rc = call(black_box(seq[i & (SEQ - 1)]), &mut out);
                black_box((rc, &out));
            })
        });
        // The same request as a `tollgate_request`: the engine's attributes as fields.
        let decide_request: DecideRequestFn = black_box(tollgate_engine_decide_request);
        let call_request = |k: usize, out: &mut tollgate_decision| {
            let request = tollgate_request {
                token: c_str(&tokens[k]),
                tenant: c_str("tenant-1"),
                company: c_str(company_of(k)),
                method: c_str("GET"),
                now_unix_ns: NOW,
                ..tollgate_request::default()
            };
            // SAFETY: a live engine, a request whose fields point into live strings, a
            // local output.
            unsafe { decide_request(handle, &request, out) }
        };
        let mut out_request = tollgate_decision::default();
        assert_eq!(call_request(0, &mut out_request), tollgate_result::Ok);
        assert!(out_request.allowed);
        g.bench_function(format!("c_abi_decide_request{suffix}"), |b| {
            let mut i = 0;
            let mut out = tollgate_decision::default();
            b.iter(|| {
                i += 1;
                let rc = call_request(black_box(seq[i & (SEQ - 1)]), &mut out);
                black_box((rc, &out));
            })
        });
        // SAFETY: the engine from above, freed once, after its last use.
        unsafe { tollgate_engine_free(handle) };
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
