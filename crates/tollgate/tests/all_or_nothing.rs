//! All or nothing, as a model test: engine A decides a random sequence of requests;
//! engine B, with the same policy, sees only the requests A allowed, at the same times.
//! After every step, every limit's state in A must equal B's (compared through `peek` of
//! every key at several costs) and the quota's usage must be equal: a denied request,
//! whichever limit or the quota denied it, left no trace.

use proptest::prelude::*;
use tollgate::{Engine, Policy, Request};

const POLICY: &str = r#"
version = 1
[classes]
read = ["GET"]
default = "write"

[[limit]]
name = "per-token-tenant"
rate = "5/s"
cost = { write = 2 }

[[limit]]
name = "per-company-writes"
key = ["company"]
classes = ["write"]
rate = "3/s"
algorithm = "sliding_window"

[[limit]]
name = "per-tenant-shadow"
key = ["tenant"]
rate = "2/s"
shadow = true

[[limit]]
name = "per-token"
key = ["token"]
rate = "4/s"
[[limit.override]]
match = { token = "k1" }
rate = "8/s"

[quota]
hard_cap_percent = 120
[[quota.plans]]
name = "free"
calls_per_unit = 10
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [{ id = "ann", keys = ["k0", "k1"] }]
[[quota.companies]]
id = "globex"
machines = 2
users = [{ id = "gus", keys = ["k2"] }]
"#;

const TOKENS: [&str; 4] = ["k0", "k1", "k2", "unknown"];
const TENANTS: [&str; 2] = ["t0", "t1"];
const METHODS: [&str; 3] = ["GET", "POST", "DELETE"];
/// 2027-01-15T08:00:00Z.
const T0: u64 = 1_800_000_000_000_000_000;

#[derive(Clone, Debug)]
struct Step {
    token: usize,
    tenant: usize,
    method: usize,
    cost: Option<u64>,
    advance_ms: u64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0..TOKENS.len(),
        0..TENANTS.len(),
        0..METHODS.len(),
        prop_oneof![4 => Just(None), 1 => (0..7u64).prop_map(Some)],
        prop_oneof![3 => Just(0u64), 1 => 0..1500u64],
    )
        .prop_map(|(token, tenant, method, cost, advance_ms)| Step {
            token,
            tenant,
            method,
            cost,
            advance_ms,
        })
}

fn company_of(token: &str) -> &'static str {
    match token {
        "k2" => "globex",
        _ => "acme",
    }
}

fn request(token: &'static str, tenant: &'static str, method: &'static str) -> Request<'static> {
    Request::new()
        .token(token)
        .tenant(tenant)
        .company(company_of(token))
        .method(method)
}

fn engine() -> Engine {
    Engine::new(Policy::from_toml(POLICY).unwrap().0).unwrap()
}

fn usage(e: &Engine) -> Vec<(String, String, u64)> {
    e.ledger()
        .unwrap()
        .company_usage()
        .into_iter()
        .filter(|r| r.used > 0)
        .map(|r| (r.company, r.period, r.used))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn denied_requests_leave_no_trace(steps in prop::collection::vec(step(), 1..80)) {
        let a = engine();
        let b = engine();
        let mut now = T0;
        let mut allowed = 0;
        for s in &steps {
            now += s.advance_ms * 1_000_000;
            let mut r = request(TOKENS[s.token], TENANTS[s.tenant], METHODS[s.method]).at(now);
            r.cost = s.cost;
            let da = a.decide(&r);
            if da.allowed() {
                allowed += 1;
                let db = b.decide(&r);
                prop_assert!(db.allowed(), "B refused what A allowed: {:?}", db);
                prop_assert_eq!(da, db);
            }
            // Every limit of every key, at several costs, reads the same in A and B.
            for token in TOKENS {
                for tenant in TENANTS {
                    for method in METHODS {
                        for cost in [1u64, 2, 4] {
                            let probe = request(token, tenant, method).at(now).cost(cost);
                            prop_assert_eq!(
                                a.peek(&probe),
                                b.peek(&probe),
                                "after {:?}: {:?}",
                                s,
                                da
                            );
                        }
                    }
                }
            }
            prop_assert_eq!(usage(&a), usage(&b));
        }
        // The generator reaches both outcomes often enough to mean something.
        prop_assume!(allowed > 0);
    }
}

#[test]
fn the_generator_produces_every_kind_of_refusal() {
    use proptest::strategy::ValueTree;
    use std::collections::BTreeSet;
    use tollgate::Reason;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let e = engine();
    let mut reasons = BTreeSet::new();
    let mut now = T0;
    for _ in 0..3000 {
        let s = step().new_tree(&mut runner).unwrap().current();
        now += s.advance_ms * 1_000_000;
        let mut r = request(TOKENS[s.token], TENANTS[s.tenant], METHODS[s.method]).at(now);
        r.cost = s.cost;
        reasons.insert(format!("{:?}", e.decide(&r).reason));
    }
    for want in [
        Reason::Allowed,
        Reason::Limited,
        Reason::QuotaExceeded,
        Reason::UnknownKey,
        Reason::CannotPass,
    ] {
        assert!(reasons.contains(&format!("{want:?}")), "{reasons:?}");
    }
}
