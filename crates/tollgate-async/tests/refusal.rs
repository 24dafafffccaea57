//! Refusal responses over real HTTP (axum on a loopback port, hyper's client): a hook
//! of the service's builds them, or RFC 9457 problem details; the standard headers stay.
//! With the `tracing` feature, each decision is a tracing event without the credential.

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use common::{call, client, serve, Answer};
use tollgate::core::ManualClock;
use tollgate::{Engine, Policy};
use tollgate_async::{Gate, ProblemJson, RateLimitLayer, Refusal};

/// 2027-01-15T08:00:00Z in Unix nanoseconds.
const T: u64 = 1_800_000_000_000_000_000;
/// A made-up credential: it must appear in no response body and no event.
const TOKEN: &str = "tok_live_9f8e7d6c5b4a39281706";

const POLICY: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "2/min"

[revocation]
denials = 2
window = "1h"
"#;

fn gate() -> Gate {
    let (policy, _) = Policy::from_toml(POLICY).unwrap();
    Gate::new(Arc::new(Engine::new(policy).unwrap())).with_clock(ManualClock::new(T))
}

async fn app(layer_of: impl FnOnce(Gate) -> Router) -> String {
    let addr = serve(layer_of(gate())).await;
    format!("http://{addr}")
}

async fn get_it(base: &str, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    call(
        &client(),
        "GET",
        &format!("{base}/items/7?api_key={token}"),
        &[("authorization", &auth)],
    )
    .await
}

fn routes() -> Router {
    Router::new().route("/items/{id}", get(|| async { "served\n" }))
}

#[tokio::test]
async fn a_hook_builds_the_refusal_and_the_standard_headers_stay() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = Arc::clone(&seen);
    let base = app(move |gate| {
        routes().layer(
            RateLimitLayer::new(gate).on_refusal(move |r: &Refusal<'_>| {
                s.lock().unwrap().push(format!(
                    "{} {} {:?} {:?} {} {}",
                    r.status.as_u16(),
                    r.reason,
                    r.limit,
                    r.retry_after,
                    r.method,
                    r.uri.path()
                ));
                // The hook sees the request's headers (its own request).
                assert!(r.request_headers.contains_key("authorization"));
                // Debug shows header names, never the credential.
                let debug = format!("{r:?}");
                assert!(!debug.contains(TOKEN), "{debug}");
                let mut res = http::Response::new(Body::from(format!(
                    "custom: {} by {}\n",
                    r.reason,
                    r.limit.unwrap_or("-")
                )));
                *res.status_mut() = r.status;
                res.headers_mut()
                    .insert("x-custom", http::HeaderValue::from_static("yes"));
                if r.reason == tollgate::Reason::Revoked {
                    // A hook may set a standard header itself: the layer keeps it.
                    res.headers_mut()
                        .insert("retry-after", http::HeaderValue::from_static("3600"));
                }
                res
            }),
        )
    })
    .await;
    for _ in 0..2 {
        assert_eq!(get_it(&base, TOKEN).await.status, 200);
    }
    let limited = get_it(&base, TOKEN).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body, "custom: limited by per-token\n");
    assert_eq!(limited.header("x-custom"), Some("yes"));
    assert_eq!(limited.header("retry-after"), Some("30"));
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some("\"per-token\";q=2;w=60")
    );
    assert_eq!(limited.header("ratelimit"), Some("\"per-token\";r=0;t=30"));
    // The second denial revokes the token: 403 through the same hook.
    assert_eq!(get_it(&base, TOKEN).await.status, 429);
    let revoked = get_it(&base, TOKEN).await;
    assert_eq!(revoked.status, 403);
    assert_eq!(revoked.body, "custom: revoked by -\n");
    assert_eq!(revoked.header("retry-after"), Some("3600"));
    assert_eq!(revoked.header("ratelimit"), None);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "429 limited Some(\"per-token\") Some(30) GET /items/7",
            "429 limited Some(\"per-token\") Some(30) GET /items/7",
            "403 revoked None None GET /items/7",
        ]
    );
}

#[tokio::test]
async fn problem_json_bodies_follow_rfc_9457() {
    let base = app(|gate| routes().layer(RateLimitLayer::new(gate).problem_json())).await;
    for _ in 0..2 {
        assert_eq!(get_it(&base, TOKEN).await.status, 200);
    }
    let limited = get_it(&base, TOKEN).await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(limited.header("retry-after"), Some("30"));
    assert_eq!(limited.header("ratelimit"), Some("\"per-token\";r=0;t=30"));
    let v: serde_json::Value = serde_json::from_str(&limited.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "type": "about:blank",
            "title": "Too Many Requests",
            "status": 429,
            "detail": "Rate limit \"per-token\" exceeded; retry after 30 s.",
            "reason": "limited",
            "limit": "per-token",
            "retry_after": 30,
        })
    );
    get_it(&base, TOKEN).await;
    let revoked = get_it(&base, TOKEN).await;
    assert_eq!(revoked.status, 403);
    let v: serde_json::Value = serde_json::from_str(&revoked.body).unwrap();
    assert_eq!(v["title"], "Forbidden");
    assert_eq!(v["status"], 403);
    assert_eq!(v["reason"], "revoked");
    assert!(v["limit"].is_null() && v["retry_after"].is_null(), "{v}");
    assert!(!revoked.body.contains(TOKEN) && !limited.body.contains(TOKEN));

    // With a type base: the type names the reason, the title too.
    let base = app(|gate| {
        routes().layer(
            RateLimitLayer::new(gate)
                .responder(ProblemJson::new().type_base("https://api.example.com/problems/")),
        )
    })
    .await;
    for _ in 0..2 {
        get_it(&base, TOKEN).await;
    }
    let limited = get_it(&base, TOKEN).await;
    let v: serde_json::Value = serde_json::from_str(&limited.body).unwrap();
    assert_eq!(v["type"], "https://api.example.com/problems/limited");
    assert_eq!(v["title"], "Rate limit exceeded");
}
