//! The per-request overhead of tollgate-async's `RateLimitLayer`, against the same tower
//! service without it, in one run.
//!
//! In memory (no network, no runtime: the services' futures are ready at once and are
//! polled by hand), one request per iteration, built outside the timing:
//! * `bare`: a `tower::service_fn` answering 200;
//! * `layer_allowed`: the same service behind the layer, with the default
//!   `HeaderExtractor` (bearer token, tenant) plus the client address from
//!   `X-Forwarded-For`; two limits (per token and tenant, per client) far from their
//!   capacity, so every request is allowed and gets `RateLimit-Policy` / `RateLimit`;
//!   1,000 tokens over 100 client addresses;
//! * `decide_only`: for reference, the engine decision alone that `layer_allowed` makes
//!   (`Gate::decide` of the same attributes, no HTTP), so the rest of the difference is
//!   the layer's HTTP work (reading headers, formatting and adding the two headers);
//! * `layer_refused`: every request refused (one token whose limit is exhausted, the
//!   clock standing still): the layer builds the 429 with its headers and JSON body.
//!
//! Over loopback HTTP (`loopback_*`): an axum service on 127.0.0.1 with and without the
//! layer, one sequential GET at a time from hyper's client, all on one current-thread
//! tokio runtime. This shows the overhead in proportion to a real request; on a shared
//! 2-core VM its noise is larger than the difference.
//!
//! Run: `cargo bench -p tollgate-benches --bench async_layer`.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tollgate::core::ManualClock;
use tollgate::{Engine, Policy};
use tollgate_async::{Gate, HeaderExtractor, RateLimitLayer};
use tower::{Layer, Service};

const TOKENS: usize = 1_000;
const CLIENTS: usize = 100;

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// Polls a future that must be ready at once.
fn now<F: Future>(f: F, cx: &mut Context<'_>) -> F::Output {
    match pin!(f).poll(cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the bench services never wait"),
    }
}

/// `poll_ready`, then `call`, then the response: the tower contract, by hand.
fn call<S>(svc: &mut S, req: http::Request<Bytes>, cx: &mut Context<'_>) -> S::Response
where
    S: Service<http::Request<Bytes>>,
    S::Error: std::fmt::Debug,
{
    now(std::future::poll_fn(|cx| svc.poll_ready(cx)), cx).unwrap();
    now(svc.call(req), cx).unwrap()
}

fn engine(rate: &str) -> Arc<Engine> {
    let text = format!(
        "version = 1\n\
         [[limit]]\nname = \"per-token-tenant\"\nkey = [\"token\", \"tenant\"]\nrate = \"{rate}\"\n\
         [[limit]]\nname = \"per-client\"\nkey = [\"client\"]\nrate = \"{rate}\"\n"
    );
    Arc::new(Engine::new(Policy::from_toml(&text).expect("bench policy").0).unwrap())
}

fn request(token: &str, client: &str) -> http::Request<Bytes> {
    http::Request::get("/items")
        .header("authorization", token)
        .header("x-tenant-id", "acme")
        .header("x-forwarded-for", client)
        .body(Bytes::new())
        .unwrap()
}

async fn ok(_req: http::Request<Bytes>) -> Result<http::Response<Bytes>, Infallible> {
    Ok(http::Response::new(Bytes::from_static(b"ok")))
}

fn in_memory(c: &mut Criterion) {
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| format!("Bearer {i:08x}-5b7d-4e21-9a0b-6c8d2f1e4a77"))
        .collect();
    let clients: Vec<String> = (0..CLIENTS)
        .map(|i| format!("10.0.{}.{}", i / 8, i))
        .collect();
    let mut i = 0usize;
    let mut next = || {
        i = i.wrapping_add(1);
        request(&tokens[i % TOKENS], &clients[i % CLIENTS])
    };

    let extractor = HeaderExtractor::new().client_header("x-forwarded-for");
    let mut bare = tower::service_fn(ok);
    let allowed_engine = engine("1000000000/s burst 1000000000000");
    let mut layered = RateLimitLayer::new(Gate::new(Arc::clone(&allowed_engine)))
        .extractor(extractor.clone())
        .layer(tower::service_fn(ok));
    let mut refused = RateLimitLayer::new(
        Gate::new(engine("1/h")).with_clock(ManualClock::new(1_800_000_000_000_000_000)),
    )
    .extractor(extractor)
    .layer(tower::service_fn(ok));

    // What is timed is what it claims to be.
    let r = call(&mut layered, next(), &mut cx);
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("ratelimit"));
    assert_eq!(call(&mut bare, next(), &mut cx).status(), 200);
    let exhausted = || request(&tokens[0], &clients[0]);
    assert_eq!(call(&mut refused, exhausted(), &mut cx).status(), 200);
    assert_eq!(call(&mut refused, exhausted(), &mut cx).status(), 429);

    let mut g = c.benchmark_group("async_layer");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare", |b| {
        b.iter_batched(
            &mut next,
            |req| black_box(call(&mut bare, req, &mut cx)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("layer_allowed", |b| {
        b.iter_batched(
            &mut next,
            |req| black_box(call(&mut layered, req, &mut cx)),
            BatchSize::SmallInput,
        )
    });
    let gate = Gate::new(Arc::clone(&allowed_engine));
    let plain_tokens: Vec<&str> = tokens.iter().map(|t| &t[7..]).collect();
    let mut j = 0usize;
    g.bench_function("decide_only", |b| {
        b.iter(|| {
            j = j.wrapping_add(1);
            let r = tollgate::Request::new()
                .token(plain_tokens[j % TOKENS])
                .tenant("acme")
                .client(&clients[j % CLIENTS])
                .method("GET");
            black_box(gate.decide(black_box(&r)))
        })
    });
    g.bench_function("layer_refused", |b| {
        b.iter_batched(
            exhausted,
            |req| black_box(call(&mut refused, req, &mut cx)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    let m = allowed_engine.metrics();
    assert_eq!(m.limited, 0, "every layer_allowed request was allowed");
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = || Router::new().route("/items", get(|| async { "ok" }));
    let gate = Gate::new(engine("1000000000/s burst 1000000000000"));
    let (bare, layered) = rt.block_on(async {
        let bare = serve(app()).await;
        let layered = serve(
            app().layer(
                RateLimitLayer::new(gate)
                    .extractor(HeaderExtractor::new().client_header("x-forwarded-for")),
            ),
        )
        .await;
        (bare, layered)
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let get = |addr: SocketAddr| {
        let req = http::Request::get(format!("http://{addr}/items"))
            .header(
                "authorization",
                "Bearer 00000001-5b7d-4e21-9a0b-6c8d2f1e4a77",
            )
            .header("x-tenant-id", "acme")
            .header("x-forwarded-for", "10.0.0.1")
            .body(Empty::new())
            .unwrap();
        let client = client.clone();
        async move {
            let res = client.request(req).await.unwrap();
            let status = res.status();
            let has_headers = res.headers().contains_key("ratelimit");
            res.into_body().collect().await.unwrap();
            (status, has_headers)
        }
    };
    assert_eq!(rt.block_on(get(bare)), (http::StatusCode::OK, false));
    assert_eq!(rt.block_on(get(layered)), (http::StatusCode::OK, true));

    let mut g = c.benchmark_group("async_layer");
    g.throughput(Throughput::Elements(1));
    g.bench_function("loopback_bare", |b| {
        b.iter(|| black_box(rt.block_on(get(bare))))
    });
    g.bench_function("loopback_layer", |b| {
        b.iter(|| black_box(rt.block_on(get(layered))))
    });
    g.finish();
}

criterion_group!(benches, in_memory, loopback);
criterion_main!(benches);
