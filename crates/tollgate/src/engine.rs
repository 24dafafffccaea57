//! The engine: decides a request against every limit of the policy and the monthly
//! quota, all or nothing.
//!
//! # A decision
//! 1. A request whose revocation attribute (its token, by default) is revoked is refused
//!    with [`Reason::Revoked`].
//! 2. The request's method gives its class; each limit that applies to the class takes
//!    the class's cost (or the request's explicit cost) for the request's key (the values
//!    of the attributes the limit keys on; an absent attribute counts as empty), in policy
//!    order. A limit with a matching override uses the override's rate instead.
//! 3. If an enforced limit denies, everything the earlier limits took is given back, the
//!    request is refused with [`Reason::Limited`] and the denying limit's numbers, and the
//!    denial counts towards revoking the token. A shadow limit that denies is counted
//!    (`shadow_denied`) and does not refuse anything.
//! 4. The quota records the call last, so a denied request never eats quota; a call over
//!    the hard cap is refused ([`Reason::QuotaExceeded`]) and the limits give back what
//!    they took. Unknown API keys are refused ([`Reason::UnknownKey`]) or served
//!    uncounted, as the policy says; keys of disabled users are refused as revoked.
//! 5. An allowed request reports the most restrictive enforced limit (least remaining).
//!
//! # Hot reload
//! [`Engine::reload`] swaps the whole policy atomically (decisions in flight finish
//! under the old one). A limit whose definition is unchanged keeps its state untouched;
//! a changed limit of the same algorithm keeps every key's *used capacity* (in cost
//! units), so raising a limit takes effect at once (see
//! [`MemoryBackend::carry_over`](crate::backend::MemoryBackend::carry_over)); a limit whose algorithm or window changed starts
//! fresh. An override that names its limit's whole key carries that key's used capacity
//! the same way when it is added, changed or removed (the key moves between the limit's
//! state and the override's); an override matching part of the key carries when changed
//! and starts its keys fresh when added or removed ([`ReloadReport::overrides`] says
//! which). Metrics follow limits by name. The quota keeps its ledger, and the
//! difference between the previous policy's directory and the new one's is applied:
//! companies, users and keys added, changed and removed ([`DirectoryChanges`]); a
//! removed key is refused at once, a removed company's usage is kept for statements.
//! Changed quota plans and thresholds apply at once to every company
//! ([`ReloadReport::quota_limits_changed`]); a changed period or journal path waits for
//! the next restart (a note says so).
//!
//! # Administration
//! [`Engine::admin`] makes every operator change at run time (companies, users, keys,
//! overrides, tokens): atomic, seen by the next decision, never waited on, reported as
//! [`Event::Admin`].
//!
//! # Notices
//! Early warnings and overage notices wait in the quota's outbox until the host
//! acknowledges them ([`Engine::take_notices`], then [`Engine::ack_notice`] after the
//! email went out): a full event channel or a restart loses none of them (with a
//! journal; without one a restart forgets them, as it forgets usage). See
//! [`tollgate_quota::outbox`].
//!
//! # Events
//! Notices (as [`Event::Quota`], a signal: the outbox delivers them) and revocations go
//! to a bounded channel ([`Engine::events`]); a decision never waits on it. When the
//! host does not drain it, events are dropped and counted (`events_dropped`).
//!
//! # Modules
//! The decision's path, in the order a request meets it:
//! [`request`] (what is asked) -> [`decide`](self) (revoked? each limit, the quota) over
//! the compiled policy (`compile`: keys, backends, failure policies) -> [`decision`]
//! (the answer) -> `headers`. Around it: `instance` (the engine value and its builder),
//! `reload` (with `reconcile`, the directory's difference), `admin`, `revocation`,
//! `quota` (reservations), [`fleet`] (revocations shared by a fleet), `outbox` (notices for the host), `observe` (events and
//! metrics),
//! [`extend`] (the traits a remote store implements), `error`, `events`.

mod admin;
mod compile;
mod decide;
pub mod decision;
mod error;
mod events;
pub mod extend;
pub mod fleet;
mod headers;
mod instance;
mod observe;
mod outbox;
mod quota;
mod reconcile;
mod reload;
pub mod request;
mod revocation;
mod shared_quota;
mod shared_revoked;

pub use admin::{Admin, AdminChange, AdminError};

/// The revocation filter's bit (0..1024) of a value, as the engine sets it when it
/// revokes the value: what a journal's `revocations` row written outside the engine
/// (`tollgate admin`) must carry so that the engine's filter finds the value.
pub fn revocation_filter_bit(value: &str) -> u16 {
    revocation::quick_bit(value) as u16
}
pub use decision::{EngineDecision, QuotaStatus, Reason};
pub use error::EngineError;
pub use events::Event;
pub use extend::{
    BackendFactory, CombinedBackend, CombinedDecision, LimitCall, QuotaCall, QuotaStore,
};
pub use fleet::{FleetRevocation, RevocationInbox, RevocationSync};
pub use headers::RateLimitHeaders;
pub use instance::{Engine, EngineBuilder};
pub use quota::QuotaSettler;
pub use reconcile::DirectoryChanges;
pub use reload::{OverrideChange, OverrideChanges, ReloadReport};
pub use request::Request;

/// Most attributes a limit keys on (see [`crate::policy::MAX_KEY_ATTRS`]).
pub use crate::policy::MAX_KEY_ATTRS;
