//! The policy's parts as the engine reads them: limits, overrides, classes, revocation, the quota, and the policy itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::attr::Attr;
use serde::{Deserialize, Deserializer};
use tollgate_core::Rate;
use tollgate_quota::period::PeriodSpec;
use tollgate_quota::{Company, Plans};

/// The policy format version this build reads.
pub const POLICY_VERSION: u32 = 1;

/// Most attributes a limit keys on.
pub const MAX_KEY_ATTRS: usize = 8;

/// Most bytes in a limit name (it is sent in every response's headers).
pub const MAX_LIMIT_NAME: usize = 64;

/// What an in-memory limit answers a new key when its store is truly full: every slot
/// the key may take holds a key that is being limited right now (a store that only
/// lacks fresh slots displaces the key with the least to lose instead; see
/// tollgate-core's `KeyedStore`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFull {
    /// Admit the request without tracking the key (the default). A truly full store
    /// means someone holds `capacity` keys at their limit at once; refusing new keys
    /// then would hand that flood the lockout it wants, while admitting them untracked
    /// costs at most the new keys' requests during the flood (other limits still apply).
    #[default]
    Allow,
    /// Refuse the request as limited (for a limit that must never admit untracked).
    Deny,
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

    /// The listed methods (upper case) and their classes, in method order.
    pub fn methods(&self) -> impl Iterator<Item = (&str, &str)> {
        self.methods.iter().map(|(m, c)| (m.as_str(), c.as_str()))
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
///
/// `Debug` shows a matched token only as its [`KeyRef`](tollgate_quota::KeyRef).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideSpec {
    /// Attribute name -> value; every one must match.
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// The rate for matching requests.
    pub rate: Rate,
    /// Keys the override's in-memory state holds. By default one when `match` names
    /// every attribute of the limit's key (the override is for one key), else the
    /// limit's `capacity`.
    #[serde(default)]
    pub capacity: Option<usize>,
}

impl OverrideSpec {
    /// Keys this override of `limit` holds (see [`capacity`](Self::capacity)).
    pub fn capacity_in(&self, limit: &LimitSpec) -> usize {
        self.capacity.unwrap_or_else(|| {
            let one_key = limit
                .key
                .iter()
                .all(|a| self.matches.keys().any(|m| Attr::named(m) == *a));
            if one_key {
                1
            } else {
                limit.capacity
            }
        })
    }
}

impl fmt::Debug for OverrideSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let matches: BTreeMap<&str, String> = self
            .matches
            .iter()
            .map(|(attr, value)| {
                let shown = match Attr::named(attr) {
                    Attr::Token => tollgate_quota::KeyRef::of(value).to_string(),
                    _ => value.clone(),
                };
                (attr.as_str(), shown)
            })
            .collect();
        f.debug_struct("OverrideSpec")
            .field("matches", &matches)
            .field("rate", &self.rate)
            .field("capacity", &self.capacity)
            .finish()
    }
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
    /// What a truly full in-memory store answers a new key (`on_full`).
    pub on_full: OnFull,
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
            on_full: OnFull::Allow,
        }
    }

    /// The cost of a request of `class` under this limit.
    pub fn cost_of(&self, class: &str) -> u64 {
        self.cost.get(class).copied().unwrap_or(1)
    }

    /// Whether the limit applies to requests of `class`.
    pub fn applies_to(&self, class: &str) -> bool {
        self.classes.as_ref().is_none_or(|c| c.contains(class))
    }
}

/// Keys a limit's in-memory state holds by default.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Most keys one limit's (or override's) in-memory state may hold: 100 million, about
/// 2 GB. A larger `capacity` is refused when the policy is read.
pub const MAX_CAPACITY: usize = 100_000_000;

/// Most limits in a policy.
pub const MAX_LIMITS: usize = 256;

/// Most overrides of one limit.
pub const MAX_OVERRIDES: usize = 10_000;

/// The memory a policy's in-memory state may take by default (`memory_budget`): 1 GiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 1 << 30;

/// A size in bytes, written as a number of bytes or with a unit: `"512MiB"`, `"2 GB"`,
/// `"64k"` (`k`/`KB` = 1000, `KiB` = 1024, likewise M, G, T).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let s = text.trim();
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (n, unit) = s.split_at(digits);
        let n: u64 = n
            .parse()
            .map_err(|_| format!("{text:?} is not a size (e.g. \"512MiB\")"))?;
        let unit = unit.trim();
        let scale: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            _ => {
                return Err(format!(
                "unknown unit {unit:?} in {text:?} (use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB)"
            ))
            }
        };
        n.checked_mul(scale)
            .map(ByteSize)
            .ok_or_else(|| format!("{text:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0 as f64;
        if self.0 >= 1 << 30 {
            write!(f, "{:.1} GiB", n / (1u64 << 30) as f64)
        } else if self.0 >= 1 << 20 {
            write!(f, "{:.1} MiB", n / (1u64 << 20) as f64)
        } else if self.0 >= 1 << 10 {
            write!(f, "{:.1} KiB", n / 1024.0)
        } else {
            write!(f, "{} B", self.0)
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(ByteSize(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

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
    /// How long an automatic revocation lasts (`suspend = "1h"`: a suspension);
    /// `None`: until restored.
    #[serde(default)]
    pub suspend: Option<HumanDuration>,
    /// Most values revoked automatically at once (`max_revoked`, default
    /// [`DEFAULT_MAX_REVOKED`]). When the set is full (after expired suspensions are
    /// reclaimed) a further automatic revocation is refused and counted; the value's
    /// limits still apply. Revocations by a call (`Engine::revoke`, `Engine::suspend`)
    /// are an operator's and always recorded.
    #[serde(default)]
    pub max_revoked: Option<usize>,
}

/// Values revoked automatically at once by default: 100,000 (about 15 MB).
pub const DEFAULT_MAX_REVOKED: usize = 100_000;

/// Denials tracked towards revocation at once (the offender table's keys).
pub const OFFENDER_CAPACITY: usize = 65_536;

pub(super) fn token() -> Attr {
    Attr::Token
}

/// A user of a company in the policy's quota section.
///
/// `Debug` shows the keys only as [`KeyRef`](tollgate_quota::KeyRef)s.
#[derive(Clone, PartialEq, Eq, Deserialize)]
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

impl fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<tollgate_quota::KeyRef> = self
            .keys
            .iter()
            .map(|k| tollgate_quota::KeyRef::of(k))
            .collect();
        f.debug_struct("UserSpec")
            .field("id", &self.id)
            .field("keys", &keys)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// A company registered with the quota when the engine starts: the quota's
/// [`Company`] (its id, units, subscriptions and override: the quota crate's one
/// definition of them), plus what the policy file adds, its time zone and its users.
///
/// In the file the company's fields and these stand side by side in one table
/// (`[[quota.companies]] id = "acme", machines = 5, users = [...]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompanySpec {
    /// The company, as the quota counts it.
    pub company: Company,
    /// The IANA time zone whose months count (default: the quota's).
    pub time_zone: Option<String>,
    /// Its users.
    pub users: Vec<UserSpec>,
}

impl CompanySpec {
    /// The quota's view of the company.
    pub fn company(&self) -> Company {
        self.company.clone()
    }
}

impl<'de> Deserialize<'de> for CompanySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // The policy's own keys are taken out; the rest is the quota's `Company`, read by
        // its own definition (which refuses unknown fields).
        let mut table = toml::Table::deserialize(d)?;
        let time_zone = table
            .remove("time_zone")
            .map(String::deserialize)
            .transpose()
            .map_err(|e| D::Error::custom(format!("time_zone: {}", e.message())))?;
        let users = table
            .remove("users")
            .map(Vec::<UserSpec>::deserialize)
            .transpose()
            .map_err(|e| D::Error::custom(format!("users: {}", e.message())))?
            .unwrap_or_default();
        let company = Company::deserialize(toml::Value::Table(table)).map_err(|e| {
            let m = e.message().trim();
            if m.starts_with("unknown field") {
                D::Error::custom(format!("{m}, `time_zone`, `users`"))
            } else {
                D::Error::custom(m)
            }
        })?;
        Ok(CompanySpec {
            company,
            time_zone,
            users,
        })
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
    /// `[quota.journal] fail_closed_after`: once the journal has been failing (its
    /// batches do not commit) for longer than this, requests the quota would charge are
    /// refused ([`Reason::JournalFailing`](crate::Reason::JournalFailing)) instead of
    /// served unbilled. `None` (the default): they are served (fail open), counted in
    /// memory and journaled once the journal recovers.
    pub journal_fail_closed_after: Option<Duration>,
    /// What to do with unknown keys.
    pub unknown_key: UnknownKey,
    /// How long a notice taken from the outbox and not acknowledged waits before it is
    /// offered again (`notice_redeliver_after = "5m"`, the default).
    pub notice_redeliver_after: Duration,
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
    /// The host attributes limits may key on (`host_attributes = ["region"]`): names
    /// the host supplies besides the engine's own [`Field`](super::Field)s. A key
    /// naming anything else is refused, so that a typo (`key = ["tokn"]`) cannot make a
    /// limit that every request shares.
    pub host_attributes: BTreeSet<String>,
    /// The most memory the policy's in-memory state may take (`memory_budget`; default
    /// [`DEFAULT_MEMORY_BUDGET`]): a policy whose [`memory_estimate`](Policy::memory_estimate)
    /// is larger is refused, at start and at reload.
    pub memory_budget: ByteSize,
    /// Where the limits' state lives (`[state]`): process-private memory by default.
    pub state: StateSpec,
}

/// `[state]`: where the in-memory limits keep their keys.
///
/// ```toml
/// [state]
/// shared = "/dev/shm/tollgate-gateway"   # every process that names it shares the state
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// The path prefix of a host-shared state: each `"memory"` limit (and override)
    /// keeps its keys in a shared mapping of the file `<shared>.limit-<limit>`
    /// (overrides: `<shared>.limit-<limit>.o<hash>`; the quota, the revoked set and the
    /// offender counts: `<shared>.quota`, `.revoked`, `.offenders`), and the seeds every
    /// process fingerprints keys with in
    /// `<shared>.seeds`, so that every worker process of a gateway decides each key
    /// against one state. `None`: each process keeps its own.
    #[serde(default)]
    pub shared: Option<std::path::PathBuf>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            version: POLICY_VERSION,
            classes: Classes::default(),
            limits: Vec::new(),
            revocation: None,
            quota: None,
            host_attributes: BTreeSet::new(),
            memory_budget: ByteSize(DEFAULT_MEMORY_BUDGET),
            state: StateSpec::default(),
        }
    }
}
