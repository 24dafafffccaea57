//! Per-client limits behind proxies, over real HTTP (issue 15, item 6): a client that
//! rotates `X-Forwarded-For` is still one client, and a trusted proxy's hop is believed.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use common::{call, client, serve};
use tollgate::core::ManualClock;
use tollgate::{Engine, Policy};
use tollgate_async::{Gate, HeaderExtractor, RateLimitLayer};

const T: u64 = 1_800_000_000_000_000_000;

async fn start(trusted: &[&str]) -> String {
    let policy =
        "version = 1\n[[limit]]\nname = \"per-client\"\nkey = [\"client\"]\nrate = \"3/min\"\n";
    let engine = Arc::new(Engine::new(Policy::from_toml(policy).unwrap().0).unwrap());
    let gate = Gate::new(engine).with_clock(ManualClock::new(T));
    let extractor = HeaderExtractor::new()
        .client_from(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0))
        .trusted_proxies(trusted.iter().copied());
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RateLimitLayer::new(gate).extractor(extractor));
    format!("http://{}/", serve(app).await)
}

#[tokio::test]
async fn rotating_x_forwarded_for_does_not_make_a_new_client() {
    let url = start(&[]).await;
    let c = client();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let xff = format!("203.0.113.{i}");
        let fwd = format!("for=198.51.100.{i}");
        let a = call(
            &c,
            "GET",
            &url,
            &[("x-forwarded-for", &xff), ("forwarded", &fwd)],
        )
        .await;
        statuses.push(a.status);
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        7,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_its_hop_is_the_client() {
    // The test client connects from 127.0.0.1: trusted, as a proxy would be.
    let url = start(&["127.0.0.1"]).await;
    let c = client();
    let mut per_client = Vec::new();
    for i in 0..4 {
        // Each distinct client gets its own three; what it writes on the left does not
        // matter.
        let mut ok = 0;
        for j in 0..5 {
            let xff = format!("10.66.{j}.1, 203.0.113.{i}");
            let a = call(&c, "GET", &url, &[("x-forwarded-for", &xff)]).await;
            ok += usize::from(a.status == 200);
        }
        per_client.push(ok);
    }
    assert_eq!(per_client, [3, 3, 3, 3]);
}
