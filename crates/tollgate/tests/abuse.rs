//! Issue 15's engine-level regressions: what an attacker or a careless policy could do to
//! the engine, each checked through `Engine::decide` as a gateway calls it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use tollgate::backend::{BackendError, LimitBackend, LimitKey, MemoryBackend, Undo};
use tollgate::core::{Decision, Rate};
use tollgate::engine::BackendFactory;
use tollgate::policy::LimitSpec;
use tollgate::{Engine, Policy, Reason, Request};

// ---- unknown keys are refused before any limit is taken (item 11) ----------------------

/// A memory backend that counts the calls made to it, standing in for a remote store
/// where each call is a round trip.
#[derive(Debug)]
struct Counting {
    inner: MemoryBackend,
    calls: Arc<AtomicU64>,
}

impl LimitBackend for Counting {
    fn acquire(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.acquire(key, cost, now)
    }

    fn undo(&self, key: &LimitKey<'_>, undo: Undo, now: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.undo(key, undo, now)
    }

    fn peek(&self, key: &LimitKey<'_>, cost: u64, now: u64) -> Result<Decision, BackendError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.peek(key, cost, now)
    }

    fn reset(&self, key: &LimitKey<'_>) {
        self.inner.reset(key)
    }

    fn rate(&self) -> Rate {
        self.inner.rate()
    }
}

struct CountingFactory(Arc<AtomicU64>);

impl BackendFactory for CountingFactory {
    fn build(&self, limit: &LimitSpec, rate: Rate) -> Result<Arc<dyn LimitBackend>, String> {
        Ok(Arc::new(Counting {
            inner: MemoryBackend::new(limit.algorithm, rate, 1024).map_err(|e| e.to_string())?,
            calls: Arc::clone(&self.0),
        }))
    }
}

const QUOTA_POLICY: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "10/s"
backend = "remote"

[[limit]]
name = "per-company"
key = ["company"]
rate = "100/s"
backend = "remote"

[quota]
[[quota.plans]]
name = "free"
calls_per_unit = 1000
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [
  { id = "ann", keys = ["known-key"] },
  { id = "bob", keys = ["bob-key"], disabled = true },
]
"#;

#[test]
fn an_unknown_or_disabled_key_takes_no_limit_and_costs_no_backend_call() {
    let calls = Arc::new(AtomicU64::new(0));
    let engine = Engine::builder(Policy::from_toml(QUOTA_POLICY).unwrap().0)
        .backend("remote", Arc::new(CountingFactory(Arc::clone(&calls))))
        .build()
        .unwrap();
    let now = 1_800_000_000_000_000_000u64;
    for i in 0..100 {
        let key = format!("made-up-{i}");
        let d = engine.decide(&Request::new().token(&key).company("acme").at(now));
        assert_eq!(d.reason, Reason::UnknownKey);
        assert_eq!(d.decided_by, None);
    }
    let d = engine.decide(&Request::new().company("acme").at(now));
    assert_eq!(d.reason, Reason::UnknownKey, "no key at all");
    let d = engine.decide(&Request::new().token("bob-key").company("acme").at(now));
    assert_eq!(d.reason, Reason::Revoked, "a disabled user");
    assert_eq!(
        calls.load(Ordering::Relaxed),
        0,
        "refused keys cost no backend call (the old engine made four per request: \
         two acquires and their two undos)"
    );
    // A known key is decided by both limits, one call each.
    let d = engine.decide(&Request::new().token("known-key").company("acme").at(now));
    assert!(d.allowed());
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

// ---- Retry-After is the longest wait over every denying limit (item 9) --------------------

const MULTI: &str = r#"
version = 1
[classes]
read = ["GET"]
default = "write"

[[limit]]
name = "per-token-tenant"
rate = "5/s burst 3"
cost = { write = 2 }

[[limit]]
name = "per-company-writes"
key = ["company"]
classes = ["write"]
rate = "4/s"
algorithm = "sliding_window"

[[limit]]
name = "per-tenant-shadow"
key = ["tenant"]
rate = "1/s"
shadow = true

[[limit]]
name = "per-token"
key = ["token"]
rate = "2/s burst 2"

[[limit]]
name = "per-company-minute"
key = ["company"]
rate = "30/min"
algorithm = "sliding_window"
"#;

fn multi() -> Engine {
    Engine::new(Policy::from_toml(MULTI).unwrap().0).unwrap()
}

#[test]
fn retry_after_names_the_limit_with_the_longest_wait() {
    let e = multi();
    let now = 1_800_000_000_000_000_000u64;
    let req = |tenant: &'static str, method: &'static str, t: u64| {
        Request::new()
            .token("a")
            .tenant(tenant)
            .company("c")
            .method(method)
            .at(t)
    };
    // per-token-tenant (5/s burst 3, writes cost 2) and per-token (2/s burst 2).
    assert!(e.decide(&req("x", "POST", now)).allowed());
    assert!(e.decide(&req("y", "GET", now)).allowed());
    // A write of (a, x): per-token-tenant has 1 of the 2 it needs (ready in 0.2 s) and
    // per-token has none (ready in 0.5 s). The first limit to deny is the first one,
    // but the client must wait for the second.
    let d = e.decide(&req("x", "POST", now));
    assert_eq!(d.reason, Reason::Limited, "{d:?}");
    assert_eq!(
        d.decided_by,
        Some(3),
        "per-token needs the longest wait: {d:?}"
    );
    assert_eq!(d.retry_after, 500_000_000);
    assert_eq!(d.limit, 2, "the named limit's own numbers");
    // The headers name that limit, and `t` on a refusal is the wait, as Retry-After.
    let h = e.headers(&d);
    assert_eq!(h.ratelimit.as_deref(), Some("\"per-token\";r=0;t=1"));
    assert_eq!(h.retry_after.as_deref(), Some("1"));
    let early = e.decide(&req("x", "POST", now + 200_000_000));
    assert_eq!(
        early.decided_by,
        Some(3),
        "after the first limit's wait: {early:?}"
    );
    assert!(e.decide(&req("x", "POST", now + d.retry_after)).allowed());
}

#[test]
fn a_later_limit_that_can_never_pass_makes_the_answer_cannot_pass() {
    let e = multi();
    let now = 1_800_000_000_000_000_000u64;
    let r = Request::new()
        .token("a")
        .tenant("x")
        .company("c")
        .method("GET");
    for _ in 0..2 {
        assert!(e.decide(&r.at(now)).allowed());
    }
    // Cost 3: per-token-tenant (burst 3) has 1 left and denies; per-token (burst 2)
    // can never pass a cost of 3, whatever the client waits.
    let d = e.decide(&r.cost(3).at(now));
    assert_eq!(d.reason, Reason::CannotPass, "{d:?}");
    assert_eq!(d.decided_by, Some(3));
}

#[derive(Clone, Debug)]
struct Step {
    token: usize,
    tenant: usize,
    company: usize,
    write: bool,
    cost: Option<u64>,
    dt_ms: u64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0usize..3,
        0usize..2,
        0usize..2,
        any::<bool>(),
        prop::option::weighted(0.2, 0u64..4),
        prop::sample::select(vec![0u64, 0, 1, 7, 40, 130, 333, 900]),
    )
        .prop_map(|(token, tenant, company, write, cost, dt_ms)| Step {
            token,
            tenant,
            company,
            write,
            cost,
            dt_ms,
        })
}

fn request(s: &Step, now: u64) -> Request<'static> {
    let mut r = Request::new()
        .token(["k0", "k1", "k2"][s.token])
        .tenant(["t0", "t1"][s.tenant])
        .company(["acme", "globex"][s.company])
        .method(if s.write { "POST" } else { "GET" })
        .at(now);
    if let Some(c) = s.cost {
        r = r.cost(c);
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// After any denial, the same request at `t + retry_after`, on an engine that saw
    /// only the requests allowed before it, is allowed; and the limit the denial names
    /// still denies it a nanosecond earlier, so the wait is not longer than needed.
    #[test]
    fn a_client_that_waits_retry_after_is_admitted(steps in prop::collection::vec(step(), 1..60)) {
        let e = multi();
        let mut now = 1_800_000_000_000_000_000u64;
        let mut allowed: Vec<(Step, u64)> = Vec::new();
        for s in steps {
            now += s.dt_ms * 1_000_000;
            let d = e.decide(&request(&s, now));
            if d.allowed() {
                allowed.push((s, now));
                continue;
            }
            if d.reason == Reason::CannotPass {
                continue; // a cost above some limit's capacity: no wait helps
            }
            prop_assert_eq!(d.reason, Reason::Limited, "{:?}", d);
            prop_assert!(d.retry_after > 0);
            let fresh = multi();
            for (a, at) in &allowed {
                prop_assert!(fresh.decide(&request(a, *at)).allowed());
            }
            let later = now + d.retry_after;
            let back = fresh.decide(&request(&s, later));
            prop_assert!(back.allowed(), "denied {:?}, then at +retry_after: {:?}", d, back);
            let peeks = e.peek(&request(&s, later - 1));
            let named = &e.policy().limits[d.decided_by.unwrap()].name;
            let (_, before) = peeks.iter().find(|(n, _)| n == named).unwrap();
            prop_assert!(!before.as_ref().unwrap().allowed(), "{} allows before the wait", named);
        }
    }
}

// ---- a policy value can never take the host down (item 4) --------------------------------

fn one_limit(extra: &str) -> String {
    format!(
        "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"10/s\"\n{extra}"
    )
}

#[test]
fn a_huge_capacity_is_an_error_naming_the_line_not_an_abort() {
    for cap in ["10000000000", "4611686018427387904", "100000001", "0"] {
        let e = Policy::from_toml(&one_limit(&format!("capacity = {cap}\n"))).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.line),
            ("limit[0].capacity", Some(6)),
            "{e}"
        );
    }
    // Through a running engine's reload: refused, the old policy stays in force.
    let engine = Engine::new(Policy::from_toml(&one_limit("")).unwrap().0).unwrap();
    let mut p = engine.policy();
    p.limits[0].capacity = 10_000_000_000;
    assert!(engine.reload(p).is_err());
    assert_eq!(
        engine.policy().limits[0].capacity,
        tollgate::policy::DEFAULT_CAPACITY
    );
    let r = Request::new().token("t").at(1_800_000_000_000_000_000);
    assert!(engine.decide(&r).allowed());
}

#[test]
fn single_key_overrides_take_one_slot_not_a_table() {
    let mut text = one_limit("capacity = 100000\n");
    for i in 0..1_000 {
        text.push_str(&format!(
            "[[limit.override]]\nmatch = {{ token = \"customer-{i}\" }}\nrate = \"20/s\"\n"
        ));
    }
    let (p, _) = Policy::from_toml(&text).unwrap();
    let estimate = p.memory_estimate();
    // The limit's own table (100k keys, ~2 MB) plus 1,000 one-key stores; before, each
    // override had a 100k-key table of its own (1,000 x 2 MB = 2 GB).
    assert!(estimate.total < 20 << 20, "{estimate:?}");
    assert_eq!(p.limits[0].overrides[0].capacity_in(&p.limits[0]), 1);
    let engine = Engine::new(p).unwrap();
    let now = 1_800_000_000_000_000_000;
    for i in [0, 999] {
        let key = format!("customer-{i}");
        let admitted = (0..30)
            .filter(|_| engine.decide(&Request::new().token(&key).at(now)).allowed())
            .count();
        assert_eq!(admitted, 20, "the override's burst for {key}");
    }
    let admitted = (0..30)
        .filter(|_| {
            engine
                .decide(&Request::new().token("other").at(now))
                .allowed()
        })
        .count();
    assert_eq!(admitted, 10);
}

#[test]
fn too_many_limits_or_overrides_and_a_budget_are_refused_with_the_place() {
    let mut text = String::from("version = 1\n");
    for i in 0..1_000 {
        text.push_str(&format!("[[limit]]\nname = \"l{i}\"\nrate = \"1/s\"\n"));
    }
    let e = Policy::from_toml(&text).unwrap_err();
    assert_eq!(e.field, "limit", "{e}");
    assert!(e.line.is_some(), "{e}");

    let mut text = one_limit("");
    for i in 0..10_001 {
        text.push_str(&format!(
            "[[limit.override]]\nmatch = {{ token = \"c{i}\" }}\nrate = \"2/s\"\n"
        ));
    }
    let e = Policy::from_toml(&text).unwrap_err();
    assert_eq!(e.field, "limit[0].override", "{e}");

    // 5 limits of 50M keys: about 5 GB, over the default budget of 1 GiB.
    let mut text = String::from("version = 1\n");
    for i in 0..5 {
        text.push_str(&format!(
            "[[limit]]\nname = \"l{i}\"\nrate = \"1/s\"\ncapacity = 50000000\n"
        ));
    }
    let e = Policy::from_toml(&text).unwrap_err();
    assert!(e.field.ends_with(".capacity"), "{e}");
    assert!(e.message.contains("memory_budget"), "{e}");
    let (p, _) = Policy::from_toml(&format!("memory_budget = \"8GiB\"\n{text}")).unwrap();
    let estimate = p.memory_estimate();
    assert!(
        estimate.total > 5_000_000_000 && estimate.total < 6_000_000_000,
        "{estimate:?}"
    );
    assert_eq!(estimate.limits.len(), 5);
    for cost in ["0", "9007199254740993"] {
        let e = Policy::from_toml(&format!("version = 1\n[quota]\ncost = {cost}\n")).unwrap_err();
        assert_eq!(e.field, "quota.cost", "{e}");
    }
    let e = Policy::from_toml(&format!("memory_budget = \"8 parsecs\"\n{text}")).unwrap_err();
    assert_eq!(e.field, "memory_budget", "{e}");
}

// ---- time at the edges (item 10) ---------------------------------------------------------

#[test]
fn a_fresh_token_at_the_top_of_the_clock_is_admitted_not_revoked() {
    let e = Engine::new(
        Policy::from_toml(
            "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"10/s\"\n\
             [[limit]]\nname = \"per-token-window\"\nkey = [\"token\"]\nrate = \"100/min\"\nalgorithm = \"sliding_window\"\n\
             [revocation]\ndenials = 1\nwindow = \"1m\"\n",
        )
        .unwrap()
        .0,
    )
    .unwrap();
    for (i, now) in [u64::MAX, u64::MAX - 1, u64::MAX - 50_000_000]
        .into_iter()
        .enumerate()
    {
        let token = format!("fresh-{i}");
        let d = e.decide(&Request::new().token(&token).at(now));
        assert!(d.allowed(), "at {now}: {d:?}");
        assert!(!e.is_revoked(&token));
    }
    // A clock that goes backwards: the key waits as one that spent more, never as an
    // overflow, and waiting what it was told is enough.
    let now = 1_800_000_000_000_000_000u64;
    let r = Request::new().token("back");
    for _ in 0..10 {
        assert!(e.decide(&r.at(now)).allowed());
    }
    let d = e.decide(&r.at(now - 5_000_000_000));
    assert_eq!(d.reason, Reason::Limited);
    assert!(d.retry_after < 6_000_000_000, "{d:?}");
}

#[test]
fn a_requests_debug_never_shows_its_token() {
    let attrs = [("x-secret", "hunter2-value")];
    let r = Request::new().token("k1").tenant("t").attrs(&attrs);
    let shown = format!("{r:?}");
    assert!(
        !shown.contains("\"k1\"") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(
        shown.contains("key#") && shown.contains("x-secret"),
        "{shown}"
    );
}
