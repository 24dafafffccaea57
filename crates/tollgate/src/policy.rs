//! The policy: one TOML file (or the same structure built in code) describing the limits,
//! request classes, revocation and the monthly quota.
//!
//! ```toml
//! version = 1
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
//! match = { company = "acme" }
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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tollgate_core::Rate;
use tollgate_quota::period::PeriodSpec;
use tollgate_quota::{Company, Plans};

/// The policy format version this build reads.
pub const POLICY_VERSION: u32 = 1;

/// A request attribute a limit can key on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    /// The access token (or API key).
    Token,
    /// The tenant the call acts for.
    Tenant,
    /// The end user.
    User,
    /// The user's company.
    Company,
    /// The client's address.
    Client,
    /// The route (path template).
    Route,
    /// The HTTP method.
    Method,
    /// Any other attribute the host supplies, by name.
    Other(String),
}

impl Attr {
    /// The attribute named `name` (`token`, `tenant`, `user`, `company`, `client`,
    /// `route`, `method`; any other name is a host attribute).
    pub fn named(name: &str) -> Attr {
        match name {
            "token" => Attr::Token,
            "tenant" => Attr::Tenant,
            "user" => Attr::User,
            "company" => Attr::Company,
            "client" => Attr::Client,
            "route" => Attr::Route,
            "method" => Attr::Method,
            other => Attr::Other(other.to_owned()),
        }
    }

    /// The attribute's name.
    pub fn name(&self) -> &str {
        match self {
            Attr::Token => "token",
            Attr::Tenant => "tenant",
            Attr::User => "user",
            Attr::Company => "company",
            Attr::Client => "client",
            Attr::Route => "route",
            Attr::Method => "method",
            Attr::Other(name) => name,
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Attr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name.is_empty() {
            return Err(serde::de::Error::custom(
                "an attribute name cannot be empty",
            ));
        }
        Ok(Attr::named(&name))
    }
}

/// Which algorithm a limit uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmKind {
    /// GCRA: smooth, one word per key, exact `retry_after` (the default).
    #[default]
    Gcra,
    /// Sliding-window counter: a fixed quota per window, weighted with the previous one.
    SlidingWindow,
}

/// What the engine answers for a limit whose backend cannot decide (a remote store that
/// is unreachable, timed out or behind an open circuit breaker). The engine applies it
/// (adapters only report [`BackendError::Unavailable`](crate::backend::BackendError)),
/// counts it in the limit's metrics and marks the decision
/// [`degraded`](crate::EngineDecision::degraded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// An in-memory limiter the engine keeps for the limit decides (the default). Each
    /// instance then enforces the whole limit on its own, so a fleet of `n` admits up to
    /// `n` times the limit while the store is down; the fallback's state is not carried
    /// back to the store.
    #[default]
    Fallback,
    /// Allow every request (nothing is counted).
    Open,
    /// Refuse every request as unavailable.
    Closed,
}

/// Methods and the classes they belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classes {
    /// Upper-case method -> class.
    methods: BTreeMap<String, String>,
    /// The class of methods not listed.
    default: String,
}

impl Default for Classes {
    fn default() -> Self {
        let mut methods = BTreeMap::new();
        for m in ["GET", "HEAD", "OPTIONS"] {
            methods.insert(m.to_owned(), "read".to_owned());
        }
        Classes {
            methods,
            default: "write".to_owned(),
        }
    }
}

impl Classes {
    /// The class of `method` (case-insensitive).
    pub fn class_of(&self, method: &str) -> &str {
        // A handful of methods: a scan without allocating beats an upper-cased lookup.
        self.methods
            .iter()
            .find(|(m, _)| m.eq_ignore_ascii_case(method))
            .map_or(&self.default, |(_, c)| c)
    }

    /// Every class name, sorted.
    pub fn names(&self) -> BTreeSet<&str> {
        let mut all: BTreeSet<&str> = self.methods.values().map(String::as_str).collect();
        all.insert(&self.default);
        all
    }

    /// The class of methods not listed.
    pub fn default_class(&self) -> &str {
        &self.default
    }
}

impl<'de> Deserialize<'de> for Classes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Entry {
            Methods(Vec<String>),
            Default(String),
        }
        let raw = BTreeMap::<String, Entry>::deserialize(d)?;
        let mut methods = BTreeMap::new();
        let mut default = None;
        for (class, entry) in raw {
            match (class.as_str(), entry) {
                ("default", Entry::Default(c)) => default = Some(c),
                ("default", Entry::Methods(_)) => {
                    return Err(serde::de::Error::custom(
                        "`default` names the class of unlisted methods, e.g. default = \"write\"",
                    ))
                }
                (_, Entry::Default(_)) => {
                    return Err(serde::de::Error::custom(format!(
                        "class {class:?} must list its methods, e.g. {class} = [\"GET\"]"
                    )))
                }
                (_, Entry::Methods(list)) => {
                    for m in list {
                        let m = m.to_ascii_uppercase();
                        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
                        {
                            return Err(serde::de::Error::custom(format!(
                                "{m:?} is not an HTTP method"
                            )));
                        }
                        if let Some(other) = methods.insert(m.clone(), class.clone()) {
                            return Err(serde::de::Error::custom(format!(
                                "method {m} is in two classes: {other} and {class}"
                            )));
                        }
                    }
                }
            }
        }
        Ok(Classes {
            methods,
            default: default.unwrap_or_else(|| "write".to_owned()),
        })
    }
}

/// A duration written as `"500ms"`, `"10s"`, `"10m"`, `"1h"` or `"1d"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (n, unit) = s.split_at(digits);
        let n: u64 = n
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (e.g. \"10m\")"))?;
        let unit_ms: u64 = match unit.trim() {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" | "day" => 86_400_000,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {s:?} (use ms, s, m, h or d)"
                ))
            }
        };
        let ms = n
            .checked_mul(unit_ms)
            .ok_or_else(|| format!("{s:?} is too long"))?;
        if ms == 0 {
            return Err(format!("{s:?}: a duration must be positive"));
        }
        Ok(HumanDuration(Duration::from_millis(ms)))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A per-key override: requests whose attributes equal all of `matches` get `rate`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideSpec {
    /// Attribute name -> value; every one must match.
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// The rate for matching requests.
    pub rate: Rate,
}

/// One limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitSpec {
    /// A unique name; it also names the limit in headers and metrics.
    pub name: String,
    /// The attributes the limit keys on (default: token and tenant).
    pub key: Vec<Attr>,
    /// The rate (count per period, burst).
    pub rate: Rate,
    /// The algorithm.
    pub algorithm: AlgorithmKind,
    /// Cost per class (a class not listed costs 1).
    pub cost: BTreeMap<String, u64>,
    /// The classes this limit applies to (`None`: all).
    pub classes: Option<BTreeSet<String>>,
    /// Decided and reported but not enforced.
    pub shadow: bool,
    /// Keys the in-memory state holds (least recently idle keys are reused first).
    pub capacity: usize,
    /// Where the state lives: `"memory"` (the default) or a backend the host registered.
    pub backend: String,
    /// What the engine answers when the backend cannot decide (`on_failure`; `None`:
    /// the backend's own default, see
    /// [`LimitBackend::failure_policy`](crate::backend::LimitBackend::failure_policy)).
    /// Irrelevant for `"memory"`, which always decides.
    pub on_failure: Option<FailurePolicy>,
    /// Per-key overrides.
    pub overrides: Vec<OverrideSpec>,
}

impl LimitSpec {
    /// A limit named `name` at `rate`, with every other field at its default.
    pub fn new(name: impl Into<String>, rate: Rate) -> Self {
        LimitSpec {
            name: name.into(),
            key: vec![Attr::Token, Attr::Tenant],
            rate,
            algorithm: AlgorithmKind::Gcra,
            cost: BTreeMap::new(),
            classes: None,
            shadow: false,
            capacity: DEFAULT_CAPACITY,
            backend: "memory".to_owned(),
            on_failure: None,
            overrides: Vec::new(),
        }
    }

    /// The cost of a request of `class` under this limit.
    pub fn cost_of(&self, class: &str) -> u64 {
        self.cost.get(class).copied().unwrap_or(1)
    }

    /// Whether the limit applies to requests of `class`.
    pub fn applies_to(&self, class: &str) -> bool {
        self.classes.as_ref().map_or(true, |c| c.contains(class))
    }
}

/// Keys a limit's in-memory state holds by default.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Repeat offenders: `denials` denials of one `key` within `window` revoke it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationSpec {
    /// The attribute that is revoked (default: token).
    #[serde(default = "token")]
    pub key: Attr,
    /// Denials that revoke.
    pub denials: u32,
    /// Within this window.
    pub window: HumanDuration,
}

fn token() -> Attr {
    Attr::Token
}

/// A user of a company in the policy's quota section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// The user's id.
    pub id: String,
    /// The user's API keys.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Whether the user is disabled.
    #[serde(default)]
    pub disabled: bool,
}

/// A company registered with the quota when the engine starts.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanySpec {
    /// The company's id.
    pub id: String,
    /// Machines configured.
    #[serde(default)]
    pub machines: u64,
    /// Apps configured.
    #[serde(default)]
    pub apps: u64,
    /// Non-default plans subscribed to.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// A limit set by support staff.
    #[serde(default)]
    pub limit_override: Option<u64>,
    /// The IANA time zone whose months count (default: the quota's).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Its users.
    #[serde(default)]
    pub users: Vec<UserSpec>,
}

impl CompanySpec {
    /// The quota's view of the company.
    pub fn company(&self) -> Company {
        Company {
            id: self.id.clone(),
            machines: self.machines,
            apps: self.apps,
            subscriptions: self.subscriptions.clone(),
            limit_override: self.limit_override,
        }
    }
}

/// How a journaled quota trades durability for speed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilitySpec {
    /// At most 100 ms of counts lost on a crash (the default).
    #[default]
    BoundedLoss,
    /// Group commit; callers may wait for durability.
    Strict,
}

/// What the quota does with a key it does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownKey {
    /// Refuse the request (reason `unknown_key`; the default).
    #[default]
    Refuse,
    /// Serve it without counting it.
    Allow,
}

/// The monthly quota section.
#[derive(Clone, Debug)]
pub struct QuotaSpec {
    /// The attribute carrying the API key the ledger knows.
    pub key: Attr,
    /// Calls one request counts for.
    pub cost: u64,
    /// Early warning at this percentage of the limit.
    pub warning_percent: Option<u32>,
    /// Service stops above this percentage.
    pub hard_cap_percent: Option<u32>,
    /// The period (calendar month in UTC by default).
    pub period: PeriodSpec,
    /// The plans.
    pub plans: Plans,
    /// Companies, users and keys registered at start-up.
    pub companies: Vec<CompanySpec>,
    /// The SQLite journal, if the quota is durable.
    pub journal: Option<PathBuf>,
    /// The journal's durability.
    pub durability: DurabilitySpec,
    /// What to do with unknown keys.
    pub unknown_key: UnknownKey,
}

/// A whole policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The format version.
    pub version: u32,
    /// Method classes.
    pub classes: Classes,
    /// The limits, decided together in this order.
    pub limits: Vec<LimitSpec>,
    /// Revocation of repeat offenders, if enabled.
    pub revocation: Option<RevocationSpec>,
    /// The monthly quota, if enabled.
    pub quota: Option<QuotaSpec>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            version: POLICY_VERSION,
            classes: Classes::default(),
            limits: Vec::new(),
            revocation: None,
            quota: None,
        }
    }
}

/// A policy file error: where, in which field, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The file, if the policy came from one.
    pub file: Option<PathBuf>,
    /// 1-based line, if known.
    pub line: Option<usize>,
    /// 1-based column, if known.
    pub column: Option<usize>,
    /// The field's path, e.g. `limit[1].rate` (empty for the whole document).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}", p.display())?,
            None => f.write_str("<policy>")?,
        }
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PolicyError {}

/// A deprecated field that was still read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWarning {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field's path.
    pub field: String,
    /// What to write instead.
    pub message: String,
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: deprecated: {}",
            self.line, self.column, self.field, self.message
        )
    }
}

/// 1-based (line, column) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

// ---- the raw (file) form --------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Option<toml::Spanned<u32>>,
    #[serde(default)]
    classes: Option<Classes>,
    #[serde(default)]
    limit: Vec<RawLimit>,
    #[serde(default)]
    revocation: Option<RevocationSpec>,
    #[serde(default)]
    quota: Option<RawQuota>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    name: toml::Spanned<String>,
    #[serde(default)]
    key: Option<Vec<Attr>>,
    #[serde(default)]
    rate: Option<Rate>,
    /// Deprecated since version 1: `per_second = N` is `rate = "N/s"`.
    #[serde(default)]
    per_second: Option<toml::Spanned<u64>>,
    #[serde(default)]
    algorithm: AlgorithmKind,
    #[serde(default)]
    cost: BTreeMap<String, u64>,
    #[serde(default)]
    classes: Option<BTreeSet<String>>,
    #[serde(default)]
    shadow: bool,
    #[serde(default)]
    capacity: Option<usize>,
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    on_failure: Option<FailurePolicy>,
    #[serde(default, rename = "override")]
    overrides: Vec<OverrideSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    #[serde(default = "token")]
    key: Attr,
    #[serde(default = "one")]
    cost: u64,
    #[serde(default = "warning_default")]
    warning_percent: Option<u32>,
    #[serde(default = "hard_cap_default")]
    hard_cap_percent: Option<u32>,
    #[serde(default)]
    period: Option<PeriodSpec>,
    #[serde(default)]
    plans: Option<Vec<toml::Value>>,
    #[serde(default)]
    companies: Vec<CompanySpec>,
    #[serde(default)]
    journal: Option<PathBuf>,
    #[serde(default)]
    durability: DurabilitySpec,
    #[serde(default)]
    unknown_key: UnknownKey,
}

fn one() -> u64 {
    1
}

fn warning_default() -> Option<u32> {
    Some(80)
}

fn hard_cap_default() -> Option<u32> {
    Some(150)
}

impl Policy {
    /// Reads the policy file at `path`; errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<(Policy, Vec<PolicyWarning>), PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: Some(path.to_owned()),
            line: None,
            column: None,
            field: String::new(),
            message: format!("cannot read the policy: {e}"),
        })?;
        Policy::from_toml(&text).map_err(|mut e| {
            e.file = Some(path.to_owned());
            e
        })
    }

    /// Parses a policy from TOML text. Returns the policy and the deprecated fields it
    /// read.
    pub fn from_toml(text: &str) -> Result<(Policy, Vec<PolicyWarning>), PolicyError> {
        let de = toml::Deserializer::new(text);
        let raw: RawPolicy = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let (line, column) = match inner.span() {
                Some(span) => {
                    let (l, c) = line_col(text, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            let message = match inner.message().trim() {
                // Some syntax errors come without a message (e.g. a NUL byte).
                "" => "not valid TOML here (a control character, or a broken line)".to_owned(),
                m => m.to_owned(),
            };
            PolicyError {
                file: None,
                line,
                column,
                field: if field == "." { String::new() } else { field },
                message,
            }
        })?;
        let at = |span: Range<usize>, field: String, message: String| {
            let (line, column) = line_col(text, span.start);
            PolicyError {
                file: None,
                line: Some(line),
                column: Some(column),
                field,
                message,
            }
        };
        let Some(version) = raw.version else {
            return Err(PolicyError {
                file: None,
                line: Some(1),
                column: Some(1),
                field: "version".into(),
                message: format!(
                    "missing: the policy must say which format it is written in \
                     (`version = {POLICY_VERSION}`)"
                ),
            });
        };
        if *version.get_ref() != POLICY_VERSION {
            return Err(at(
                version.span(),
                "version".into(),
                format!(
                    "version {} is not supported; this build reads version {POLICY_VERSION}",
                    version.get_ref()
                ),
            ));
        }
        let mut warnings = Vec::new();
        let mut limits = Vec::new();
        for (i, l) in raw.limit.into_iter().enumerate() {
            let field = |f: &str| format!("limit[{i}].{f}");
            let name_span = l.name.span();
            let rate = match (l.rate, l.per_second) {
                (Some(rate), None) => rate,
                (None, Some(ps)) => {
                    let (line, column) = line_col(text, ps.span().start);
                    warnings.push(PolicyWarning {
                        line,
                        column,
                        field: field("per_second"),
                        message: format!(
                            "write `rate = \"{}/s\"`; `per_second` will be removed in version 2",
                            ps.get_ref()
                        ),
                    });
                    Rate::per_second(*ps.get_ref())
                        .map_err(|e| at(ps.span(), field("per_second"), e.to_string()))?
                }
                (Some(_), Some(ps)) => {
                    return Err(at(
                        ps.span(),
                        field("per_second"),
                        "set `rate` or the deprecated `per_second`, not both".into(),
                    ))
                }
                (None, None) => {
                    return Err(at(
                        name_span,
                        field("rate"),
                        "missing: every limit needs a rate, e.g. rate = \"100/s\"".into(),
                    ))
                }
            };
            let name = l.name.into_inner();
            limits.push((
                name_span,
                LimitSpec {
                    name,
                    key: l.key.unwrap_or_else(|| vec![Attr::Token, Attr::Tenant]),
                    rate,
                    algorithm: l.algorithm,
                    cost: l.cost,
                    classes: l.classes,
                    shadow: l.shadow,
                    capacity: l.capacity.unwrap_or(DEFAULT_CAPACITY),
                    backend: l.backend.unwrap_or_else(|| "memory".to_owned()),
                    on_failure: l.on_failure,
                    overrides: l.overrides,
                },
            ));
        }
        let quota = match raw.quota {
            None => None,
            Some(q) => {
                let plans = match q.plans {
                    None => Plans::standard(),
                    Some(list) => {
                        let mut table = toml::Table::new();
                        table.insert("plans".into(), toml::Value::Array(list));
                        Plans::deserialize(toml::Value::Table(table)).map_err(|e| PolicyError {
                            file: None,
                            line: None,
                            column: None,
                            field: "quota.plans".into(),
                            message: e.message().trim().to_owned(),
                        })?
                    }
                };
                Some(QuotaSpec {
                    key: q.key,
                    cost: q.cost,
                    warning_percent: q.warning_percent,
                    hard_cap_percent: q.hard_cap_percent,
                    period: q.period.unwrap_or_else(PeriodSpec::monthly_utc),
                    plans,
                    companies: q.companies,
                    journal: q.journal,
                    durability: q.durability,
                    unknown_key: q.unknown_key,
                })
            }
        };
        let policy = Policy {
            version: *version.get_ref(),
            classes: raw.classes.unwrap_or_default(),
            limits: limits.iter().map(|(_, l)| l.clone()).collect(),
            revocation: raw.revocation,
            quota,
        };
        if let Err(e) = policy.validate() {
            // Point at the limit the problem is in, when it is in one.
            let span = e
                .limit
                .and_then(|i| limits.get(i))
                .map_or(0..0, |(span, _)| span.clone());
            let mut err = at(span, e.field, e.message);
            if e.limit.is_none() {
                err.line = None;
                err.column = None;
            }
            return Err(err);
        }
        Ok((policy, warnings))
    }

    /// Checks what the file format cannot: unique limit names, known classes, override
    /// attributes among the limit's key, algorithm constraints, the quota's companies.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let classes = self.classes.names();
        let mut names = BTreeSet::new();
        for (i, l) in self.limits.iter().enumerate() {
            let err = |field: &str, message: String| ValidationError {
                limit: Some(i),
                field: format!("limit[{i}].{field}"),
                message,
            };
            if l.name.is_empty()
                || l.name.contains(['"', '\\'])
                || l.name.chars().any(char::is_control)
            {
                return Err(err(
                    "name",
                    format!("{:?}: a limit name is non-empty, without quotes, backslashes or control characters", l.name),
                ));
            }
            if !names.insert(l.name.as_str()) {
                return Err(err("name", format!("two limits are named {:?}", l.name)));
            }
            if l.key.is_empty() || l.key.len() > crate::engine::MAX_KEY_ATTRS {
                return Err(err(
                    "key",
                    format!(
                        "a limit keys on 1 to {} attributes",
                        crate::engine::MAX_KEY_ATTRS
                    ),
                ));
            }
            for class in l.cost.keys().chain(l.classes.iter().flatten()) {
                if !classes.contains(class.as_str()) {
                    return Err(err(
                        "cost",
                        format!(
                            "unknown class {class:?} (classes: {})",
                            classes.iter().copied().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
            if l.capacity == 0 {
                return Err(err("capacity", "must hold at least one key".into()));
            }
            for (j, o) in l.overrides.iter().enumerate() {
                if o.matches.is_empty() {
                    return Err(err(
                        &format!("override[{j}].match"),
                        "an override must match at least one attribute".into(),
                    ));
                }
                for attr in o.matches.keys() {
                    if !l.key.contains(&Attr::named(attr)) {
                        return Err(err(
                            &format!("override[{j}].match.{attr}"),
                            format!(
                                "the limit keys on [{}], so an override can only match those",
                                l.key.iter().map(Attr::name).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
            }
            if l.algorithm == AlgorithmKind::SlidingWindow {
                for rate in std::iter::once(&l.rate).chain(l.overrides.iter().map(|o| &o.rate)) {
                    if let Err(e) = tollgate_core::SlidingWindow::new(*rate) {
                        return Err(err("rate", e.to_string()));
                    }
                }
            }
        }
        if let Some(r) = &self.revocation {
            if r.denials == 0 {
                return Err(ValidationError {
                    limit: None,
                    field: "revocation.denials".into(),
                    message: "must be at least 1".into(),
                });
            }
        }
        if let Some(q) = &self.quota {
            let mut keys = BTreeSet::new();
            for (i, c) in q.companies.iter().enumerate() {
                let field = |f: &str| format!("quota.companies[{i}].{f}");
                q.plans
                    .validate_company(&c.company())
                    .map_err(|e| ValidationError {
                        limit: None,
                        field: field("subscriptions"),
                        message: e.to_string(),
                    })?;
                if let Some(tz) = &c.time_zone {
                    PeriodSpec::new(q.period.kind(), tz, q.period.anchor_day()).map_err(|e| {
                        ValidationError {
                            limit: None,
                            field: field("time_zone"),
                            message: e.to_string(),
                        }
                    })?;
                }
                for u in &c.users {
                    for k in &u.keys {
                        if !keys.insert(k.as_str()) {
                            return Err(ValidationError {
                                limit: None,
                                field: field("users"),
                                message: format!(
                                    "API key {} is listed twice",
                                    tollgate_quota::KeyRef::of(k)
                                ),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A policy that parsed but does not hold together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// The limit it is in, if any.
    pub limit: Option<usize>,
    /// The field's path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
version = 1

[classes]
read = ["GET", "HEAD", "OPTIONS"]
bulk = ["PATCH"]
default = "write"

[[limit]]
name = "per-token-tenant"
rate = "100/s burst 200"
cost = { read = 1, write = 5, bulk = 20 }

[[limit]]
name = "writes-per-company"
key = ["company"]
classes = ["write", "bulk"]
rate = "1000/min"
algorithm = "sliding_window"
shadow = true

[[limit.override]]
match = { company = "acme" }
rate = "5000/min"

[revocation]
denials = 100
window = "10m"

[quota]
[[quota.plans]]
name = "free"
calls_per_unit = 100000
default = true
[[quota.plans]]
name = "API Access"
calls = 1000000
[[quota.companies]]
id = "acme"
machines = 5
apps = 10
users = [{ id = "ann", keys = ["3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77"] }]
"#;

    #[test]
    fn the_documented_example_parses() {
        let (p, warnings) = Policy::from_toml(EXAMPLE).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(p.limits.len(), 2);
        let a = &p.limits[0];
        assert_eq!(a.key, vec![Attr::Token, Attr::Tenant]);
        assert_eq!((a.rate.count(), a.rate.burst()), (100, 200));
        assert_eq!(a.cost_of("write"), 5);
        assert_eq!(a.cost_of("read"), 1);
        let b = &p.limits[1];
        assert!(b.shadow && b.applies_to("bulk") && !b.applies_to("read"));
        assert_eq!(b.overrides[0].rate.count(), 5000);
        assert_eq!(p.classes.class_of("get"), "read");
        assert_eq!(p.classes.class_of("PATCH"), "bulk");
        assert_eq!(p.classes.class_of("DELETE"), "write");
        let r = p.revocation.unwrap();
        assert_eq!((r.denials, r.window.0), (100, Duration::from_secs(600)));
        let q = p.quota.unwrap();
        let acme = q.plans.limit_for(&q.companies[0].company()).unwrap();
        assert_eq!(acme.calls, 1_500_000, "5 machines + 10 apps");
        // The module docs' example parses too.
        let doc = include_str!("policy.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| {
                l.strip_prefix("//!")
                    .unwrap_or(l)
                    .strip_prefix(' ')
                    .unwrap_or("")
            })
            .collect::<Vec<_>>()
            .join("\n");
        Policy::from_toml(&doc).unwrap();
    }

    fn err(text: &str) -> PolicyError {
        Policy::from_toml(text).unwrap_err()
    }

    #[test]
    fn errors_name_line_column_and_field() {
        let e = err("version = 1\n[[limit]]\nname = \"a\"\nrate = \"100/fortnight\"\n");
        assert_eq!((e.line, e.column), (Some(4), Some(8)), "{e}");
        assert_eq!(e.field, "limit[0].rate");
        assert!(e.message.contains("fortnight"), "{e}");

        let e = err("version = 1\n[[limit]]\nname = \"a\"\nrate = \"1/s\"\nshadw = true\n");
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("shadw"), "{e}");

        let e = err("version = 1\n[[limit]]\nname = \"a\"\n");
        assert_eq!(
            (e.field.as_str(), e.line),
            ("limit[0].rate", Some(3)),
            "{e}"
        );

        let e = err("version = 1\n[[limit]]\nname = \"a\"\nrate = \"1/s\"\n[[limit]]\nname = \"a\"\nrate = \"2/s\"\n");
        assert_eq!(
            (e.field.as_str(), e.line),
            ("limit[1].name", Some(6)),
            "{e}"
        );

        let e =
            err("version = 1\n[[limit]]\nname = \"a\"\nrate = \"1/s\"\ncost = { writes = 3 }\n");
        assert!(e.message.contains("unknown class \"writes\""), "{e}");

        let e = err("version = 1\n[[limit]]\nname = \"w\"\nrate = \"100000/s\"\nalgorithm = \"sliding_window\"\n");
        assert_eq!(e.field, "limit[0].rate", "{e}");

        let e = err("version = 1\n[[limit]]\nname = \"o\"\nrate = \"1/s\"\n[[limit.override]]\nmatch = { route = \"/x\" }\nrate = \"2/s\"\n");
        assert_eq!(e.field, "limit[0].override[0].match.route", "{e}");

        let e = err("[[limit]]\nname = \"a\"\nrate = \"1/s\"\n");
        assert_eq!(e.field, "version", "{e}");
        let e = err("version = 7\n");
        assert!(e.message.contains("version 7 is not supported"), "{e}");
        assert_eq!((e.line, e.column), (Some(1), Some(11)));

        let e = err("version = 1\n[revocation]\ndenials = 3\nwindow = \"10 fortnights\"\n");
        assert_eq!(e.field, "revocation.window", "{e}");

        let e = err(
            "version = 1\n[quota]\n[[quota.plans]]\nname = \"x\"\ncalls = 1\ncalls_per_unit = 2\n",
        );
        assert_eq!(e.field, "quota.plans", "{e}");

        let e = err("version = 1\n[classes]\nread = [\"GET\"]\nwrite = [\"GET\"]\n");
        assert!(e.message.contains("two classes"), "{e}");

        let e = err("not toml at all = = =");
        assert_eq!(e.line, Some(1), "{e}");
        // Found by the policy_parse fuzz target: toml gives no message for these.
        for text in ["#\0", "\r\0"] {
            let e = err(text);
            assert!(!e.message.is_empty(), "{text:?}: {e:?}");
        }
    }

    #[test]
    fn error_display_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(
            &path,
            "version = 1\n[[limit]]\nname = \"a\"\nrate = \"x\"\n",
        )
        .unwrap();
        let e = Policy::from_file(&path).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{}:4:8: limit[0].rate: ", path.display())),
            "{shown}"
        );
        let missing = Policy::from_file(dir.path().join("nope.toml")).unwrap_err();
        assert!(
            missing.to_string().contains("cannot read the policy"),
            "{missing}"
        );
    }

    #[test]
    fn deprecated_per_second_is_read_and_reported() {
        let (p, w) =
            Policy::from_toml("version = 1\n[[limit]]\nname = \"old\"\nper_second = 50\n").unwrap();
        assert_eq!(p.limits[0].rate, Rate::per_second(50).unwrap());
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].line, w[0].column, w[0].field.as_str()),
            (4, 14, "limit[0].per_second")
        );
        assert!(w[0].to_string().contains("deprecated"), "{}", w[0]);
        let e = err("version = 1\n[[limit]]\nname = \"both\"\nrate = \"1/s\"\nper_second = 5\n");
        assert!(e.message.contains("not both"), "{e}");
    }

    #[test]
    fn durations() {
        let d = |s: &str| s.parse::<HumanDuration>().map(|d| d.0);
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(d("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(d("2 h"), Ok(Duration::from_secs(7200)));
        assert_eq!(d("1d"), Ok(Duration::from_secs(86_400)));
        assert!(d("0s").is_err());
        assert!(d("ten minutes").is_err());
        assert!(d("99999999999999999999d").is_err());
        assert!(d("1000000000000000000d").is_err(), "overflow");
    }
}
