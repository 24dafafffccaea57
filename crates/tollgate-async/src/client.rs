//! The client side: a tower [`Layer`](tower_layer::Layer) for a service that calls someone else's
//! rate-limited API. It paces the outbound calls with the engine (each call waits with
//! [`Gate::until_ready`](crate::Gate::until_ready) before it is sent) and adapts to the
//! provider's answers:
//!
//! * a `429 Too Many Requests` (or `503`) with `Retry-After` (seconds or an HTTP date)
//!   holds the call's limits back until then ([`Engine::hold`](tollgate::Engine::hold)),
//!   so the calls after it wait instead of being refused again;
//! * a `RateLimit` header whose item says nothing is left (`r=0`) holds them until its
//!   reset (`t` seconds) — on any response, so the next call waits *before* the provider
//!   has to refuse it. The older draft form `remaining=0, reset=N` is read too.
//!
//! The local policy's limits describe what the provider allows (keyed, for instance, on
//! the `host` attribute and the method); a hold applies to every enforced GCRA limit of
//! the call (a sliding-window limit cannot be held and is skipped). A hold never lasts
//! longer than [`PaceLayer::max_hold`] (an hour by default), so one absurd header cannot
//! stop the client for good. A 429 without either header holds nothing: there is no
//! length to honour.
//!
//! The provider's 429 itself is returned to the caller: whether to retry a call is the
//! caller's decision (a retry goes through the layer again and waits for the hold).
//!
//! Its parts: `pace` (the layer, its service and error) and `provider` (reading the
//! provider's `Retry-After` and `RateLimit` headers); the default [`HostExtractor`] lives
//! with the other extractors in the crate's `extract` module.

mod pace;
mod provider;

pub use crate::extract::HostExtractor;
pub use pace::{PaceError, PaceFuture, PaceLayer, PaceService};
pub use provider::provider_wait;
