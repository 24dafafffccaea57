//! The `tracing` events of the server layer (feature `tracing`): one per decision, target
//! `tollgate_async::decision`; the levels and fields are in the [module docs](crate::server).

use std::time::Instant;

use tollgate::{Engine, EngineDecision, Reason};
use tracing::Level;

const TARGET: &str = "tollgate_async::decision";

/// The start of a decision, if any of its events could be recorded (WARN is the least
/// verbose level used: when it is off for the target, every event is).
pub(super) fn start() -> Option<Instant> {
    tracing::enabled!(target: TARGET, Level::WARN).then(Instant::now)
}

/// The level of a decision's event: TRACE allowed, DEBUG refusals the client caused, WARN
/// those the server caused.
fn level(reason: Reason) -> Level {
    match reason {
        Reason::Allowed => Level::TRACE,
        Reason::Unavailable | Reason::JournalFailing => Level::WARN,
        _ => Level::DEBUG,
    }
}

/// Records `d`'s event (never the credential: the path without its query).
pub(super) fn decision<B>(
    engine: &Engine,
    d: &EngineDecision,
    req: &http::Request<B>,
    started: Option<Instant>,
) {
    let Some(started) = started else {
        return;
    };
    let elapsed_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    macro_rules! emit {
        ($level:expr) => {
            if tracing::enabled!(target: TARGET, $level) {
                let limit = engine.deciding_limit(d);
                let status = super::response::refusal_status(d.reason).as_u16();
                tracing::event!(
                    target: TARGET,
                    $level,
                    outcome = d.reason.as_str(),
                    status,
                    limit = limit.as_deref(),
                    retry_after_s = d.retry_after_secs(),
                    remaining = d.remaining,
                    shadow_denied = d.shadow_denied,
                    degraded = d.degraded,
                    method = req.method().as_str(),
                    path = req.uri().path(),
                    elapsed_ns,
                    "tollgate decision"
                );
            }
        };
    }
    match level(d.reason) {
        Level::TRACE => emit!(Level::TRACE),
        Level::WARN => emit!(Level::WARN),
        _ => emit!(Level::DEBUG),
    }
}
