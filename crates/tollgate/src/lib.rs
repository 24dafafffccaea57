//! # tollgate
//!
//! The engine a Rust service depends on: a [`Policy`] of limits keyed by any request
//! attributes, request classes with their costs, revocation of repeat offenders, the
//! monthly per-company quota of [`tollgate_quota`], all decided together and all or
//! nothing, with hot reload, events, metrics and the IETF `RateLimit` header values.
//!
//! ```
//! use tollgate::{Engine, Policy, Reason, Request};
//!
//! let (policy, _warnings) = Policy::from_toml(r#"
//!     version = 1
//!     [[limit]]
//!     name = "per-token-tenant"
//!     rate = "2/s"
//!     cost = { write = 2 }
//! "#)?;
//! let engine = Engine::new(policy)?;
//! let t = 1_800_000_000_000_000_000; // Unix nanoseconds
//! let get = Request::new().token("tok").tenant("acme").method("GET").at(t);
//! assert!(engine.decide(&get).allowed());
//! // A write costs 2: only 1 unit is left, so it is denied, and takes nothing.
//! let post = Request::new().token("tok").tenant("acme").method("POST").at(t);
//! let d = engine.decide(&post);
//! assert_eq!(d.reason, Reason::Limited);
//! assert_eq!(d.retry_after, 500_000_000);
//! let h = engine.headers(&d);
//! assert_eq!(h.policy.as_deref(), Some("\"per-token-tenant\";q=2;w=1"));
//! assert_eq!(h.retry_after.as_deref(), Some("1"));
//! // Another tenant of the same token is limited separately.
//! assert!(engine.decide(&post.tenant("globex")).allowed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod backend;
pub mod engine;
pub mod metrics;
pub mod policy;
pub mod shared_state;

pub use engine::{
    Admin, AdminChange, AdminError, BackendFactory, CombinedBackend, CombinedDecision, Engine,
    EngineBuilder, EngineDecision, EngineError, Event, LimitCall, QuotaCall, QuotaSettler,
    QuotaStatus, QuotaStore, RateLimitHeaders, Reason, ReloadReport, Request, RevocationSync,
};
pub use policy::{FailurePolicy, Field, Policy, PolicyError, PolicyWarning};
pub use tollgate_core as core;
pub use tollgate_quota as quota;
