//! The Redis store's health in the engine's metrics: breaker state, calls, errors,
//! short-circuited calls, latency, and the fallback limiter's decisions and keys, before
//! and after Redis is killed.

use std::sync::Arc;
use std::time::Duration;

use tollgate::{Engine, Policy, Reason, Request};
use tollgate_redis::testing::RedisServer;
use tollgate_redis::{BreakerConfig, FailurePolicy, LimitOptions, RedisFactory, RedisStore};

const LIMITS: &str = r#"
version = 1
[[limit]]
name = "per-company"
key = ["company"]
rate = "100/h"
backend = "redis"
"#;

/// The one sample of `name` whose line contains every `part`.
fn sample(text: &str, name: &str, parts: &[&str]) -> f64 {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && parts.iter().all(|p| l.contains(p)))
        .collect();
    assert_eq!(lines.len(), 1, "{name} {parts:?} in\n{text}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn breaker_calls_errors_and_latency_are_exported() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let config = tollgate_redis::testing::config(server.url())
        .prefix("metrics-test")
        .breaker(BreakerConfig {
            failures: 3,
            cooldown: Duration::from_secs(3600),
            first_cooldown: Duration::from_secs(3600),
        });
    let store = RedisStore::new(config).unwrap();
    let factory = Arc::new(RedisFactory::new(Arc::clone(&store)).options(LimitOptions {
        failure: FailurePolicy::Fallback,
        ..LimitOptions::default()
    }));
    let (policy, _) = Policy::from_toml(LIMITS).unwrap();
    let e = Engine::builder(policy)
        .backend("redis", factory as Arc<dyn tollgate::BackendFactory>)
        .build()
        .unwrap();
    let decide = || e.decide(&Request::new().company("acme")).reason;
    for _ in 0..5 {
        assert_eq!(decide(), Reason::Allowed);
    }
    let text = e.prometheus();
    let b = "backend=\"redis:metrics-test\"";
    assert_eq!(sample(&text, "tollgate_backend_up", &[b]), 1.0);
    assert_eq!(
        sample(
            &text,
            "tollgate_backend_breaker_state",
            &[b, "state=\"closed\""]
        ),
        1.0
    );
    let calls = sample(&text, "tollgate_backend_calls_total", &[b]);
    assert!(calls >= 5.0, "{calls}");
    assert_eq!(sample(&text, "tollgate_backend_errors_total", &[b]), 0.0);
    assert_eq!(
        sample(&text, "tollgate_backend_call_duration_seconds_count", &[b]),
        calls,
        "every call that reached the network is timed"
    );
    assert_eq!(
        sample(
            &text,
            "tollgate_limit_fallback_decisions_total",
            &["per-company"]
        ),
        0.0
    );

    server.kill();
    for _ in 0..5 {
        assert_eq!(decide(), Reason::Allowed, "the fallback limiter decides");
    }
    let text = e.prometheus();
    assert_eq!(sample(&text, "tollgate_backend_up", &[b]), 0.0);
    assert_eq!(
        sample(
            &text,
            "tollgate_backend_breaker_state",
            &[b, "state=\"open\""]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "tollgate_backend_breaker_state",
            &[b, "state=\"closed\""]
        ),
        0.0
    );
    assert_eq!(sample(&text, "tollgate_backend_errors_total", &[b]), 3.0);
    assert_eq!(
        sample(&text, "tollgate_backend_short_circuited_total", &[b]),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "tollgate_limit_fallback_decisions_total",
            &["per-company"]
        ),
        5.0
    );
    assert_eq!(
        sample(
            &text,
            "tollgate_limit_keys",
            &["per-company", "store=\"fallback\""]
        ),
        1.0
    );
    // One series per store, however many limits share it; no address in any label.
    assert_eq!(text.matches("tollgate_backend_up{").count(), 1);
    assert!(!text.contains("127.0.0.1"), "{text}");
}
