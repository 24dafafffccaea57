//! The policy: one TOML file (or the same structure built in code) describing the limits,
//! request classes, revocation and the monthly quota.
//!
//! ```toml
//! version = 1
//! host_attributes = ["region"]    # attributes the host supplies besides the engine's
//!                                 # (token, tenant, user, company, client, route,
//!                                 # method); a key naming any other is an error
//! memory_budget = "1GiB"          # the default: a policy whose in-memory state would
//!                                 # take more is refused (`tollgate check` shows it)
//!
//! [classes]                       # method -> class; unlisted methods are `default`
//! read = ["GET", "HEAD", "OPTIONS"]
//! default = "write"
//!
//! [[limit]]
//! name = "per-token-tenant"
//! key = ["token", "tenant"]       # the default: a partner acting for many tenants is
//!                                 # limited per tenant, not as one client
//! rate = "100/s burst 200"
//! cost = { read = 1, write = 5 }  # writes are high-impact requests
//!
//! [[limit]]
//! name = "writes-per-company"
//! key = ["company"]
//! classes = ["write"]             # this limit applies to writes only
//! rate = "1000/min"
//! algorithm = "sliding_window"
//! shadow = true                   # decided and reported, not enforced
//! # on_failure = "fallback"       # a remote backend that cannot decide: "fallback"
//!                                 # (an in-memory limiter), "open" or "closed"
//!
//! [[limit.override]]              # support staff raised one customer's limit
//! match = { company = "acme" }    # the whole key: the override holds one key
//! rate = "5000/min"
//!
//! [revocation]                    # repeat offenders lose access
//! key = "token"
//! denials = 100
//! window = "10m"
//!
//! [quota]                         # monthly per-company quota (tollgate-quota)
//! key = "token"                   # the attribute that carries the API key
//! warning_percent = 80
//! hard_cap_percent = 150
//! [[quota.plans]]
//! name = "free"
//! calls_per_unit = 100000
//! default = true
//! [[quota.plans]]
//! name = "API Access"
//! calls = 1000000
//! [[quota.companies]]
//! id = "acme"
//! machines = 5
//! apps = 10
//! users = [{ id = "ann", keys = ["3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77"] }]
//! ```
//!
//! # Bounds
//! A policy value can never take the host down: a limit holds at most
//! [`MAX_CAPACITY`] keys, a policy has at most [`MAX_LIMITS`] limits and a limit at most
//! [`MAX_OVERRIDES`] overrides, and the whole in-memory state
//! ([`Policy::memory_estimate`]) must fit `memory_budget`. Each is checked when the
//! policy is read, built or reloaded, with an error naming the line and field.
//!
//! # Errors and deprecations
//! [`Policy::from_toml`] and [`Policy::from_file`] report the first error with the file,
//! line, column and the field's path (`limit[1].rate`), and never panic. A field that is
//! still read but deprecated comes back as a [`PolicyWarning`] with its location, e.g.
//! `per_second = 100` in a limit (the form of the first release), read as
//! `rate = "100/s"`.
//!
//! # Version
//! `version` is required. This build reads version [`POLICY_VERSION`]; a file written for
//! a later version is refused with an error that says so.

mod attr;
mod error;
mod parse;
mod spec;

pub use attr::{Attr, Field};
pub use error::{PolicyError, PolicyWarning, ValidationError};
pub use parse::MemoryEstimate;
pub use spec::{
    AlgorithmKind, ByteSize, Classes, CompanySpec, DurabilitySpec, FailurePolicy, HumanDuration,
    LimitSpec, OnFull, OverrideSpec, Policy, QuotaSpec, RevocationSpec, UnknownKey, UserSpec,
    DEFAULT_CAPACITY, DEFAULT_MAX_REVOKED, DEFAULT_MEMORY_BUDGET, MAX_CAPACITY, MAX_KEY_ATTRS,
    MAX_LIMITS, MAX_LIMIT_NAME, MAX_OVERRIDES, OFFENDER_CAPACITY, POLICY_VERSION,
};

#[cfg(test)]
mod tests;
