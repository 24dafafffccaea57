//! Client-side pacing against a real "provider": an axum service on a loopback port that
//! enforces its own limit (2 calls per second per token, with tollgate's server layer),
//! called through `PaceLayer` over hyper's client. Provider and client run on tokio's
//! paused time (both read it through `TokioClock`), so every wait is virtual and exact.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{client, read, serve, Answer};
use http_body_util::Full;
use tokio::time::Instant;
use tollgate::{Engine, Policy, Reason};
use tollgate_async::{Gate, PaceError, PaceLayer, RateLimitLayer, TokioClock};
use tower::{Layer, ServiceExt};

/// What the provider saw: when (since the test's start), and what it answered.
#[derive(Clone, Debug)]
struct Seen {
    at: Duration,
    status: u16,
    retry_after: Option<u64>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn gate(policy: &str) -> Gate {
    let (policy, _) = Policy::from_toml(policy).unwrap();
    Gate::new(Arc::new(Engine::new(policy).unwrap())).with_clock(TokioClock::unix())
}

/// The provider: 2 calls per second per token. With `ratelimit_headers` false it answers
/// like many APIs do, with `Retry-After` on its 429s and no `RateLimit` headers.
async fn provider(start: Instant, ratelimit_headers: bool) -> (String, Log) {
    let limit = gate(
        r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "2/s"
"#,
    );
    let log: Log = Arc::default();
    let seen = Arc::clone(&log);
    let record = move |req: Request, next: Next| {
        let seen = Arc::clone(&seen);
        async move {
            let mut res = next.run(req).await;
            if !ratelimit_headers {
                res.headers_mut().remove("ratelimit");
                res.headers_mut().remove("ratelimit-policy");
            }
            seen.lock().unwrap().push(Seen {
                at: start.elapsed(),
                status: res.status().as_u16(),
                retry_after: res
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().parse().unwrap()),
            });
            res
        }
    };
    let app = Router::new()
        .route(
            "/items",
            get(|| async { "items" }).post(|| async { "made" }),
        )
        .layer(RateLimitLayer::new(limit))
        .layer(middleware::from_fn(record));
    (format!("http://{}", serve(app).await), log)
}

/// The client's own policy: it believes the provider allows 100 calls per second per host
/// (ten times too many), so only adapting to the provider's answers keeps it in line.
const CLIENT_POLICY: &str = r#"
version = 1
host_attributes = ["host"]
[classes]
read = ["GET"]
default = "write"
[[limit]]
name = "provider"
key = ["host"]
rate = "100/s"
cost = { write = 200 }
"#;

/// Sends `n` GETs one after another through `layer` over a real client.
async fn calls(layer: PaceLayer, base: &str, n: usize) -> Vec<Answer> {
    let svc = layer.layer(client());
    let mut out = Vec::new();
    for _ in 0..n {
        let req = http::Request::get(format!("{base}/items"))
            .header("authorization", "Bearer tok-1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        out.push(read(res).await);
    }
    out
}

fn count(log: &[Seen], status: u16) -> usize {
    log.iter().filter(|s| s.status == status).count()
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_holds_the_local_limit_until_then() {
    let start = Instant::now();
    // Without adaptation the client sends at its own (wrong) pace: 2 served, 8 refused.
    let (base, log) = provider(start, false).await;
    calls(PaceLayer::new(gate(CLIENT_POLICY)).adapt(false), &base, 10).await;
    let baseline = log.lock().unwrap().clone();
    assert_eq!((count(&baseline, 200), count(&baseline, 429)), (2, 8));

    // Adapting, against a fresh provider.
    let start = Instant::now();
    let (base, log) = provider(start, false).await;
    let answers = calls(PaceLayer::new(gate(CLIENT_POLICY)), &base, 10).await;
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 10);
    assert!(count(&log, 429) >= 1, "the provider did refuse: {log:?}");
    for pair in log.windows(2) {
        if pair[0].status == 429 {
            // Every refusal carried Retry-After, and the next call waited that long.
            let wait = Duration::from_secs(pair[0].retry_after.unwrap());
            assert!(pair[1].at - pair[0].at >= wait, "{log:?}");
            assert_eq!(pair[1].status, 200, "never refused twice in a row: {log:?}");
        }
    }
    // On virtual time the pattern is exact: 2 served, 1 refused (Retry-After: 1), a
    // 1 s hold, then the local pace (10 ms) until the next refusal.
    let at: Vec<(u128, u16)> = log.iter().map(|s| (s.at.as_millis(), s.status)).collect();
    assert_eq!(
        at,
        [
            (0, 200),
            (0, 200),
            (0, 429),
            (1000, 200),
            (1010, 200),
            (1020, 429),
            (2020, 200),
            (2030, 200),
            (2040, 429),
            (3040, 200)
        ]
    );
    // The provider's 429s reach the caller unchanged (retrying is the caller's choice).
    let refused: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(refused.len(), count(&log, 429));
    assert!(refused.iter().all(|a| a.header("retry-after") == Some("1")));
}

#[tokio::test(start_paused = true)]
async fn ratelimit_headers_make_the_client_wait_before_it_is_refused() {
    let start = Instant::now();
    let (base, log) = provider(start, true).await;
    let answers = calls(PaceLayer::new(gate(CLIENT_POLICY)), &base, 10).await;
    // Each response saying `r=0` held the local limit until its reset, so the provider
    // never had to refuse a call; 10 calls at 2 per second take at least 4 s.
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    let log = log.lock().unwrap().clone();
    assert_eq!((count(&log, 200), log.len()), (10, 10));
    assert!(start.elapsed() >= Duration::from_secs(4));
    let exhausted = answers
        .iter()
        .filter(|a| a.header("ratelimit").is_some_and(|v| v.contains(";r=0;")))
        .count();
    assert!(
        exhausted >= 4,
        "the provider did report exhaustion: {answers:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_that_can_never_pass_locally_is_refused_at_once_and_never_sent() {
    let start = Instant::now();
    let (base, log) = provider(start, true).await;
    let svc = PaceLayer::new(gate(CLIENT_POLICY)).layer(client());
    // A write costs 200 under a limit of 100: it can never pass.
    let req = http::Request::post(format!("{base}/items"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    match svc.clone().oneshot(req).await {
        Err(PaceError::Refused(r)) => assert_eq!(r.0.reason, Reason::CannotPass),
        other => panic!("{other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(log.lock().unwrap().is_empty(), "nothing was sent");
    // A dropped call that was waiting for a hold sent nothing either.
    let gate = gate(CLIENT_POLICY);
    let host = [("host", "127.0.0.1")];
    let get = tollgate::Request::new().attrs(&host).method("GET");
    assert_eq!(gate.hold(&get, gate.now() + 5_000_000_000), 1);
    let svc = PaceLayer::new(gate).layer(client());
    let req = http::Request::get(format!("{base}/items"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(4), svc.clone().oneshot(req))
            .await
            .is_err()
    );
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_hold_never_lasts_longer_than_max_hold() {
    // A provider whose first answer asks for a day's wait.
    let start = Instant::now();
    let log: Log = Arc::default();
    let seen = Arc::clone(&log);
    let app = Router::new().route(
        "/items",
        get(move || {
            let seen = Arc::clone(&seen);
            async move {
                let mut log = seen.lock().unwrap();
                let first = log.is_empty();
                log.push(Seen {
                    at: start.elapsed(),
                    status: if first { 429 } else { 200 },
                    retry_after: first.then_some(86_400),
                });
                if first {
                    (
                        http::StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "86400")],
                    )
                } else {
                    (http::StatusCode::OK, [("x-ok", "1")])
                }
            }
        }),
    );
    let base = format!("http://{}", serve(app).await);
    let layer = PaceLayer::new(gate(CLIENT_POLICY)).max_hold(Duration::from_secs(2));
    let answers = calls(layer, &base, 2).await;
    assert_eq!((answers[0].status, answers[1].status), (429, 200));
    let log = log.lock().unwrap().clone();
    let waited = log[1].at - log[0].at;
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "held for max_hold, not a day: {waited:?}"
    );
}
