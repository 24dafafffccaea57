//! The engine's side of `CombinedBackend`: a combined backend that answers the first
//! `n` limits of each request (and, when it answers them all, the quota call) must give
//! the same decisions as the engine asking each limit and the quota itself. The fake
//! here answers by calling the same backends and the same quota store, so any
//! difference is the engine's handling of the answers (which limits it still asks,
//! undoing what the answers took when the quota refuses, shadow limits, errors).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use tollgate::backend::{LimitBackend, MemoryBackend};
use tollgate::core::Rate;
use tollgate::engine::{BackendFactory, CombinedBackend, CombinedDecision, LimitCall, QuotaCall};
use tollgate::policy::LimitSpec;
use tollgate::quota::{Ledger, QuotaDecision, QuotaError};
use tollgate::{Engine, Policy, QuotaStore, Request};

const POLICY: &str = r#"
version = 1
[classes]
read = ["GET"]
default = "write"

[[limit]]
name = "per-token-tenant"
rate = "5/s"
cost = { write = 2 }
backend = "shared"

[[limit]]
name = "per-company-writes"
key = ["company"]
classes = ["write"]
rate = "3/s"
algorithm = "sliding_window"
backend = "shared"

[[limit]]
name = "per-tenant-shadow"
key = ["tenant"]
rate = "2/s"
shadow = true
backend = "shared"

[[limit]]
name = "per-token"
key = ["token"]
rate = "4/s"
backend = "shared"

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
"#;

/// The quota through the store interface: the ledger itself.
#[derive(Debug)]
struct LedgerStore;

impl QuotaStore for LedgerStore {
    fn record(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
    ) -> Result<QuotaDecision, QuotaError> {
        ledger.record(key, cost, i128::from(now))
    }
}

/// Answers the first `prefix` limits (and the quota, when it answered them all) by
/// asking the backends and the store itself.
#[derive(Debug)]
struct Fake {
    prefix: usize,
    answered: Arc<AtomicU64>,
}

impl CombinedBackend for Fake {
    fn decide(
        &self,
        limits: &[LimitCall<'_>],
        quota: Option<&QuotaCall<'_>>,
        now: u64,
    ) -> Option<CombinedDecision> {
        let mut out = CombinedDecision::default();
        for c in limits.iter().take(self.prefix) {
            let r = c.backend.acquire(&c.key, c.cost, now);
            let stop = !c.shadow && r.as_ref().map_or(true, |(d, _)| !d.allowed());
            out.limits.push(r);
            self.answered.fetch_add(1, Ordering::Relaxed);
            if stop {
                return Some(out);
            }
        }
        if out.limits.len() == limits.len() {
            out.quota = quota.map(|q| q.store.record(q.ledger, q.key, q.cost, now));
        }
        Some(out)
    }
}

struct Factory {
    combined: Option<Arc<Fake>>,
}

impl BackendFactory for Factory {
    fn build(&self, limit: &LimitSpec, rate: Rate) -> Result<Arc<dyn LimitBackend>, String> {
        Ok(Arc::new(
            MemoryBackend::new(limit.algorithm, rate, 1024).map_err(|e| e.to_string())?,
        ))
    }

    fn combined(&self) -> Option<Arc<dyn CombinedBackend>> {
        self.combined.clone().map(|f| f as Arc<dyn CombinedBackend>)
    }
}

fn engine(combined: Option<Arc<Fake>>) -> Engine {
    Engine::builder(Policy::from_toml(POLICY).unwrap().0)
        .backend("shared", Arc::new(Factory { combined }))
        .quota_store(Arc::new(LedgerStore))
        .build()
        .unwrap()
}

const TOKENS: [&str; 3] = ["k0", "k1", "unknown"];
const METHODS: [&str; 2] = ["GET", "POST"];

proptest! {
    #[test]
    fn answers_for_a_prefix_of_the_limits_decide_as_the_limits_one_by_one(
        prefix in 0usize..6,
        steps in prop::collection::vec(
            (0usize..3, 0usize..2, 0usize..2, prop::option::of(0u64..7), 0u64..400),
            1..80,
        ),
    ) {
        let answered = Arc::new(AtomicU64::new(0));
        let with = engine(Some(Arc::new(Fake { prefix, answered: Arc::clone(&answered) })));
        let without = engine(None);
        let mut now = 1_800_000_000_000_000_000u64;
        // An unknown key is refused before any limit is asked.
        let known = steps.iter().any(|s| TOKENS[s.0] != "unknown");
        for (token, tenant, method, cost, dt_ms) in steps {
            now += dt_ms * 1_000_000;
            let mut r = Request::new()
                .token(TOKENS[token])
                .tenant(["t0", "t1"][tenant])
                .company("acme")
                .method(METHODS[method])
                .at(now);
            if let Some(c) = cost {
                r = r.cost(c);
            }
            prop_assert_eq!(with.decide(&r), without.decide(&r));
        }
        prop_assert_eq!(answered.load(Ordering::Relaxed) > 0, prefix > 0 && known);
        let usage = |e: &Engine| e.ledger().unwrap().company_usage();
        prop_assert_eq!(usage(&with), usage(&without));
    }
}
