//! An axum service protected by a tollgate policy file.
//!
//! ```sh
//! cargo run -p tollgate-async --example axum_service
//! cargo run -p tollgate-async --example axum_service -- path/to/policy.toml 127.0.0.1:8080
//! ```
//!
//! It prints the curl commands to try. Requests carry a token (`Authorization: Bearer`)
//! and a tenant (`X-Tenant-Id`); the client address and the route template are taken
//! from the connection and the router. `GET /health` and `GET /metrics` (the engine's
//! metrics in the Prometheus text format, for a scraper) are never limited. `SIGHUP` reloads
//! the policy file without losing any key's state; revocations are printed as they
//! happen.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Path};
use axum::http::Request;
use axum::routing::get;
use axum::{Json, Router};
use tollgate::Engine;
use tollgate_async::{Attributes, Extractor, Gate, HeaderExtractor, RateLimitLayer};

/// The default extractor, except that `/health` and `/metrics` are not decided.
struct Attrs(HeaderExtractor);

impl<B> Extractor<B> for Attrs {
    fn extract<'r>(&self, req: &'r Request<B>) -> Option<Attributes<'r>> {
        if matches!(req.uri().path(), "/health" | "/metrics") {
            return None;
        }
        self.0.extract(req)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let policy_path = args.next().map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/service.toml"),
        PathBuf::from,
    );
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:3000").parse()?;

    let (engine, warnings) = Engine::from_file(&policy_path)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let engine = Arc::new(engine);

    // Revocations and other events, as they happen (the channel never blocks decisions).
    let events = Arc::clone(&engine);
    std::thread::spawn(move || {
        for e in events.events().iter() {
            println!("event: {e:?}");
        }
    });
    reload_on_sighup(Arc::clone(&engine), policy_path.clone());

    let extractor = Attrs(
        HeaderExtractor::new()
            .route_from(|ext| ext.get::<MatchedPath>().map(|m| m.as_str()))
            .client_from(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)),
    );
    let app = Router::new()
        .route("/items", get(list).post(create))
        .route("/items/{id}", get(item))
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics).with_state(Arc::clone(&engine)))
        .layer(RateLimitLayer::new(Gate::new(Arc::clone(&engine))).extractor(extractor));

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "tollgate example service on http://{addr}, policy {}",
        policy_path.display()
    );
    println!("limits: {}", engine.limit_names().join(", "));
    println!("try:");
    println!(
        "  curl -i -H 'Authorization: Bearer tok_1' -H 'X-Tenant-Id: acme' http://{addr}/items"
    );
    println!("  curl -i -X POST -H 'Authorization: Bearer tok_1' -H 'X-Tenant-Id: acme' http://{addr}/items");
    println!("  for i in $(seq 8); do curl -s -o /dev/null -w '%{{http_code}}\\n' -H 'Authorization: Bearer tok_2' -H 'X-Tenant-Id: acme' http://{addr}/items/$i; done");
    println!("  curl -i http://{addr}/health");
    println!("  curl -s http://{addr}/metrics");
    println!("Ctrl-C stops it.");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// The engine's metrics for a Prometheus scraper (text exposition format 0.0.4).
async fn metrics(
    axum::extract::State(engine): axum::extract::State<Arc<Engine>>,
) -> ([(axum::http::header::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        engine.prometheus(),
    )
}

async fn list() -> Json<Vec<u32>> {
    Json(vec![1, 2, 3])
}

async fn item(Path(id): Path<u32>) -> Json<u32> {
    Json(id)
}

async fn create() -> (axum::http::StatusCode, &'static str) {
    (axum::http::StatusCode::CREATED, "created\n")
}

#[cfg(unix)]
fn reload_on_sighup(engine: Arc<Engine>, path: PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    tokio::spawn(async move {
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match engine.reload_file(&path) {
                Ok((report, _)) => println!("reloaded {}: {report:?}", path.display()),
                Err(e) => eprintln!("reload failed, policy unchanged: {e}"),
            }
        }
    });
}

#[cfg(not(unix))]
fn reload_on_sighup(_engine: Arc<Engine>, _path: PathBuf) {}
