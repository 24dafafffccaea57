//! With the `tracing` feature, each decision of the server layer is a tracing event
//! (target `tollgate_async::decision`) with its outcome and without the credential. Its
//! own test binary: callsite interest is process-wide, and other tests deciding on other
//! threads while no subscriber is set would race with it.
#![cfg(feature = "tracing")]

mod common;

use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use common::{call, client, serve, Answer};
use tollgate::core::ManualClock;
use tollgate::{Engine, Policy};
use tollgate_async::{Gate, RateLimitLayer};

/// 2027-01-15T08:00:00Z in Unix nanoseconds.
const T: u64 = 1_800_000_000_000_000_000;
/// A made-up credential: it must appear in no event.
const TOKEN: &str = "tok_live_9f8e7d6c5b4a39281706";

const POLICY: &str =
    "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"2/min\"\n";

async fn app() -> String {
    let (policy, _) = Policy::from_toml(POLICY).unwrap();
    let gate = Gate::new(Arc::new(Engine::new(policy).unwrap())).with_clock(ManualClock::new(T));
    let routes = Router::new().route("/items/{id}", get(|| async { "served\n" }));
    let addr = serve(routes.layer(RateLimitLayer::new(gate))).await;
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

use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Every event of the decision target, as "LEVEL field=value ...".
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "tollgate_async::decision" {
            return;
        }
        let mut line = event.metadata().level().to_string();
        event.record(&mut Line(&mut line));
        self.0.lock().unwrap().push(line);
    }
}

#[test]
fn every_decision_is_an_event_without_the_credential() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let base = app().await;
            for _ in 0..4 {
                get_it(&base, TOKEN).await;
            }
        })
    });
    let lines = capture.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for l in &lines {
        assert!(!l.contains(TOKEN), "credential in an event: {l}");
        assert!(l.contains("path=\"/items/7\""), "{l}");
        assert!(l.contains("method=\"GET\""), "{l}");
        assert!(l.contains("elapsed_ns="), "{l}");
    }
    assert!(lines[0].starts_with("TRACE"), "{}", lines[0]);
    assert!(lines[0].contains("outcome=\"allowed\""), "{}", lines[0]);
    assert!(lines[0].contains("status=200"), "{}", lines[0]);
    assert!(lines[0].contains("remaining=1"), "{}", lines[0]);
    assert!(lines[2].starts_with("DEBUG"), "{}", lines[2]);
    assert!(lines[2].contains("outcome=\"limited\""), "{}", lines[2]);
    assert!(lines[2].contains("status=429"), "{}", lines[2]);
    assert!(lines[2].contains("limit=\"per-token\""), "{}", lines[2]);
    assert!(lines[2].contains("retry_after_s=30"), "{}", lines[2]);
    assert!(lines[3].contains("outcome=\"limited\""), "{}", lines[3]);
}
