//! The server layer over real HTTP: an axum service on a loopback port behind
//! `RateLimitLayer`, called with hyper's client. The gate's clock is a `ManualClock`
//! standing still, so header values and totals are exact whatever the machine's speed.

mod common;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath};
use axum::routing::{get, post};
use axum::Router;
use common::{call, client, serve, Answer};
use tollgate::core::ManualClock;
use tollgate::{Engine, Policy};
use tollgate_async::{Attributes, Gate, HeaderExtractor, RateLimitLayer};

/// 2027-01-15T08:00:00Z in Unix nanoseconds.
const T: u64 = 1_800_000_000_000_000_000;

const POLICY: &str = r#"
version = 1
[classes]
read = ["GET", "HEAD"]
default = "write"

[[limit]]
name = "per-token-tenant"
key = ["token", "tenant"]
rate = "3/h"
cost = { write = 2 }

[[limit]]
name = "per-client-route"
key = ["client", "route"]
classes = ["write"]
rate = "1/h"

[revocation]
denials = 3
window = "1h"
"#;

struct Fixture {
    base: String,
    engine: Arc<Engine>,
    hits: Arc<AtomicU64>,
}

/// An axum app (GET and POST on `/items/{id}`, GET `/health`) behind the layer.
async fn start(policy: &str) -> Fixture {
    let (policy, _) = Policy::from_toml(policy).unwrap();
    let engine = Arc::new(Engine::new(policy).unwrap());
    let gate = Gate::new(Arc::clone(&engine)).with_clock(ManualClock::new(T));
    let extractor = HeaderExtractor::new()
        .route_from(|ext| ext.get::<MatchedPath>().map(|m| m.as_str()))
        .client_from(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0));
    let hits = Arc::new(AtomicU64::new(0));
    let h = Arc::clone(&hits);
    let handler = move || {
        let h = Arc::clone(&h);
        async move {
            h.fetch_add(1, Ordering::Relaxed);
            "served\n"
        }
    };
    let app = Router::new()
        .route("/items/{id}", get(handler.clone()).post(handler))
        .layer(RateLimitLayer::new(gate).extractor(extractor));
    let addr = serve(app).await;
    Fixture {
        base: format!("http://{addr}"),
        engine,
        hits,
    }
}

impl Fixture {
    async fn send(&self, method: &str, path: &str, token: &str, tenant: &str) -> Answer {
        let auth = format!("Bearer {token}");
        call(
            &client(),
            method,
            &format!("{}{path}", self.base),
            &[("authorization", &auth), ("x-tenant-id", tenant)],
        )
        .await
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

#[tokio::test]
async fn allowed_responses_carry_the_headers_and_the_limit_answers_429() {
    let f = start(POLICY).await;
    let policy = "\"per-token-tenant\";q=3;w=3600";
    for (r, t) in [(2, 1200), (1, 2400), (0, 3600)] {
        let a = f.send("GET", "/items/1", "tok-a", "t1").await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.body, "served\n");
        assert_eq!(a.header("ratelimit-policy"), Some(policy));
        let expected = format!("\"per-token-tenant\";r={r};t={t}");
        assert_eq!(a.header("ratelimit"), Some(expected.as_str()));
        assert_eq!(a.header("retry-after"), None);
    }
    let a = f.send("GET", "/items/1", "tok-a", "t1").await;
    assert_eq!(a.status, 429);
    assert_eq!(a.header("retry-after"), Some("1200"));
    assert_eq!(a.header("ratelimit-policy"), Some(policy));
    // On a refusal, t is the time until the request fits: Retry-After.
    assert_eq!(
        a.header("ratelimit"),
        Some("\"per-token-tenant\";r=0;t=1200")
    );
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.body, "{\"error\":\"limited\",\"retry_after\":1200}\n");
    assert_eq!(f.hits(), 3, "the refused request never reached the handler");
    // Another tenant of the same token has its own budget; a write costs 2 there, and
    // the second limit (per client and route template) takes part.
    let a = f.send("POST", "/items/1", "tok-a", "t2").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("ratelimit"),
        Some("\"per-client-route\";r=0;t=3600")
    );
    // Same client, same route template, another item: the per-client-route limit.
    let a = f.send("POST", "/items/2", "tok-b", "t3").await;
    assert_eq!(a.status, 429);
    assert_eq!(
        a.header("ratelimit-policy"),
        Some("\"per-client-route\";q=1;w=3600")
    );
    // A write costing more than the limit's capacity can never pass: 429 without
    // Retry-After.
    let (policy, _) = Policy::from_toml(&POLICY.replace("write = 2", "write = 4")).unwrap();
    f.engine.reload(policy).unwrap();
    let a = f.send("POST", "/items/3", "tok-c", "t1").await;
    assert_eq!(a.status, 429);
    assert_eq!(a.header("retry-after"), None);
    assert_eq!(a.body, "{\"error\":\"cannot_pass\",\"retry_after\":null}\n");
    assert_eq!(f.hits(), 4);
}

#[tokio::test]
async fn repeat_offenders_and_revoked_tokens_get_403() {
    let f = start(POLICY).await;
    for _ in 0..3 {
        assert_eq!(f.send("GET", "/items/1", "tok-x", "t1").await.status, 200);
    }
    // Three denials within the hour revoke the token (the policy's revocation).
    for _ in 0..3 {
        assert_eq!(f.send("GET", "/items/1", "tok-x", "t1").await.status, 429);
    }
    assert!(f.engine.is_revoked("tok-x"));
    let a = f.send("GET", "/items/1", "tok-x", "t2").await;
    assert_eq!(a.status, 403, "revoked for every tenant");
    assert_eq!(a.body, "{\"error\":\"revoked\",\"retry_after\":null}\n");
    assert_eq!(a.header("retry-after"), None, "waiting does not help");
    assert_eq!(a.header("ratelimit"), None);
    // Revoked by support staff, and restored.
    assert!(f.engine.revoke("tok-y"));
    assert_eq!(f.send("GET", "/items/1", "tok-y", "t1").await.status, 403);
    assert!(f.engine.restore("tok-y"));
    assert_eq!(f.send("GET", "/items/1", "tok-y", "t1").await.status, 200);
    assert_eq!(f.hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_allowed_exactly_up_to_the_limit() {
    // 50 per hour (the clock stands still), and no revocation: 150 denials of one token.
    let policy = POLICY
        .replace("3/h", "50/h")
        .replace("denials = 3", "denials = 1000");
    let f = Arc::new(start(&policy).await);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let f = Arc::clone(&f);
            tokio::spawn(async move { f.send("GET", "/items/1", "tok-many", "t1").await })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        let a = t.await.unwrap();
        match a.status {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("{other}: {a:?}"),
        }
    }
    assert_eq!((ok, limited), (50, 150));
    assert_eq!(f.hits(), 50);
    let m = f.engine.metrics();
    assert_eq!((m.allowed, m.limited), (50, 150));
}

#[tokio::test]
async fn an_extractor_may_let_requests_through_undecided() {
    let (policy, _) = Policy::from_toml(&POLICY.replace("3/h", "1/h")).unwrap();
    let engine = Arc::new(Engine::new(policy).unwrap());
    let gate = Gate::new(Arc::clone(&engine)).with_clock(ManualClock::new(T));
    // A closure extractor: /health is never limited; everything else is keyed by the
    // X-Api-Key header.
    let extractor = |req: &http::Request<axum::body::Body>| -> Option<Attributes<'static>> {
        if req.uri().path() == "/health" {
            return None;
        }
        let key = req.headers().get("x-api-key")?.to_str().ok()?;
        Some(Attributes {
            token: Some(Cow::Owned(key.to_owned())),
            method: Some(Cow::Owned(req.method().as_str().to_owned())),
            ..Attributes::default()
        })
    };
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/items",
            post(|| async { "created" }).get(|| async { "items" }),
        )
        .layer(RateLimitLayer::new(gate).extractor(extractor));
    let base = format!("http://{}", serve(app).await);
    let c = client();
    let key = [("x-api-key", "k1")];
    assert_eq!(
        call(&c, "GET", &format!("{base}/items"), &key).await.status,
        200
    );
    assert_eq!(
        call(&c, "GET", &format!("{base}/items"), &key).await.status,
        429
    );
    for _ in 0..3 {
        let a = call(&c, "GET", &format!("{base}/health"), &key).await;
        assert_eq!((a.status, a.body.as_str()), (200, "ok"));
        assert_eq!(a.header("ratelimit"), None, "not decided, no headers");
    }
    assert_eq!(engine.metrics().allowed, 1);
}

#[tokio::test]
async fn the_example_service_policy_means_what_its_comments_say() {
    let path = format!("{}/examples/service.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let f = start(&text).await;
    assert_eq!(
        f.engine.limit_names(),
        ["per-token-tenant", "per-client-route"]
    );
    // 5 per minute per token and tenant; a write costs 2.
    let a = f.send("POST", "/items/1", "tok", "acme").await;
    assert_eq!(a.header("ratelimit"), Some("\"per-token-tenant\";r=3;t=24"));
    for _ in 0..3 {
        assert_eq!(f.send("GET", "/items/1", "tok", "acme").await.status, 200);
    }
    assert_eq!(f.send("GET", "/items/1", "tok", "acme").await.status, 429);
    assert_eq!(f.send("GET", "/items/1", "tok", "globex").await.status, 200);
    // 30 per minute per client and route template, whatever the token.
    let mut statuses = Vec::new();
    for i in 0..30 {
        let token = format!("t{i}");
        statuses.push(
            f.send("GET", &format!("/items/{i}"), &token, "acme")
                .await
                .status,
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
    // 10 denials within a minute revoke the token.
    for _ in 0..9 {
        f.send("GET", "/items/1", "tok", "acme").await;
    }
    assert!(f.engine.is_revoked("tok"));
}

#[tokio::test]
async fn works_with_a_plain_hyper_server() {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::Layer;

    let (policy, _) = Policy::from_toml(POLICY).unwrap();
    let engine = Arc::new(Engine::new(policy).unwrap());
    let gate = Gate::new(Arc::clone(&engine)).with_clock(ManualClock::new(T));
    let svc = RateLimitLayer::new(gate).layer(tower::service_fn(
        |_req: http::Request<hyper::body::Incoming>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("hi"))))
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let c = client();
    let url = format!("http://{addr}/anything");
    let auth = [("authorization", "Bearer tok-h"), ("x-tenant-id", "t1")];
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(call(&c, "GET", &url, &auth).await);
    }
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_eq!(answers[0].body, "hi");
    assert_eq!(
        answers[2].header("ratelimit"),
        Some("\"per-token-tenant\";r=0;t=3600")
    );
    assert_eq!(answers[3].header("retry-after"), Some("1200"));
}

#[tokio::test]
async fn the_monthly_quota_answers_429_until_the_month_ends_and_unknown_keys_403() {
    let policy = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "100/s"
[quota]
hard_cap_percent = 100
unknown_key = "refuse"
[[quota.plans]]
name = "tiny"
calls = 2
default = true
[[quota.companies]]
id = "acme"
users = [{ id = "ann", keys = ["key-ann"] }]
"#;
    let f = start(policy).await;
    for _ in 0..2 {
        assert_eq!(f.send("GET", "/items/1", "key-ann", "t1").await.status, 200);
    }
    let a = f.send("GET", "/items/1", "key-ann", "t1").await;
    assert_eq!(a.status, 429);
    // T is 2027-01-15T08:00:00Z: the quota resets on 2027-02-01T00:00:00Z.
    let to_february = (1_801_440_000_000_000_000 - T) / 1_000_000_000;
    let retry = to_february.to_string();
    assert_eq!(a.header("retry-after"), Some(retry.as_str()));
    assert_eq!(a.header("ratelimit-policy"), Some("\"quota\";q=2"));
    let ratelimit = format!("\"quota\";r=0;t={to_february}");
    assert_eq!(a.header("ratelimit"), Some(ratelimit.as_str()));
    assert_eq!(
        a.body,
        format!("{{\"error\":\"quota_exceeded\",\"retry_after\":{to_february}}}\n")
    );
    let a = f.send("GET", "/items/1", "key-nobody", "t1").await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body, "{\"error\":\"unknown_key\",\"retry_after\":null}\n");
    assert_eq!(f.hits(), 2);
}
