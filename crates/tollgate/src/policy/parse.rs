//! Reading a policy file: the raw TOML form with spans, deprecations, and validation.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::attr::{Attr, Field};
use super::error::{line_col, PolicyError, PolicyWarning, ValidationError};
use super::spec::*;
use serde::Deserialize;
use tollgate_core::Rate;
use tollgate_quota::period::PeriodSpec;
use tollgate_quota::Plans;

// ---- the raw (file) form --------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    version: Option<toml::Spanned<u32>>,
    #[serde(default)]
    classes: Option<Classes>,
    #[serde(default)]
    limit: Vec<RawLimit>,
    #[serde(default)]
    revocation: Option<RevocationSpec>,
    #[serde(default)]
    quota: Option<RawQuota>,
    #[serde(default)]
    host_attributes: BTreeSet<String>,
    #[serde(default)]
    memory_budget: Option<ByteSize>,
    #[serde(default)]
    state: StateSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimit {
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
    capacity: Option<toml::Spanned<usize>>,
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    on_failure: Option<FailurePolicy>,
    #[serde(default, rename = "override")]
    overrides: Vec<OverrideSpec>,
    #[serde(default)]
    on_full: OnFull,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuota {
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
    journal: Option<RawJournal>,
    #[serde(default)]
    durability: DurabilitySpec,
    #[serde(default)]
    unknown_key: UnknownKey,
    #[serde(default)]
    notice_redeliver_after: Option<HumanDuration>,
}

/// `journal = "usage.db"`, or `[quota.journal] path = "usage.db"` with
/// `fail_closed_after = "30s"`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawJournal {
    Path(PathBuf),
    Table(RawJournalTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJournalTable {
    path: PathBuf,
    #[serde(default)]
    fail_closed_after: Option<super::spec::HumanDuration>,
}

pub(super) fn one() -> u64 {
    1
}

pub(super) fn warning_default() -> Option<u32> {
    Some(80)
}

pub(super) fn hard_cap_default() -> Option<u32> {
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
                m if holds_secrets(&field) => redact_quoted(m),
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
            let capacity_span = l.capacity.as_ref().map(toml::Spanned::span);
            limits.push((
                (name_span, capacity_span),
                LimitSpec {
                    name,
                    key: l.key.unwrap_or_else(|| vec![Attr::Token, Attr::Tenant]),
                    rate,
                    algorithm: l.algorithm,
                    cost: l.cost,
                    classes: l.classes,
                    shadow: l.shadow,
                    capacity: l
                        .capacity
                        .map_or(DEFAULT_CAPACITY, toml::Spanned::into_inner),
                    backend: l.backend.unwrap_or_else(|| "memory".to_owned()),
                    on_failure: l.on_failure,
                    overrides: l.overrides,
                    on_full: l.on_full,
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
                    journal_fail_closed_after: match &q.journal {
                        Some(RawJournal::Table(t)) => t.fail_closed_after.map(|d| d.0),
                        _ => None,
                    },
                    journal: q.journal.map(|j| match j {
                        RawJournal::Path(p) => p,
                        RawJournal::Table(t) => t.path,
                    }),
                    durability: q.durability,
                    unknown_key: q.unknown_key,
                    notice_redeliver_after: q
                        .notice_redeliver_after
                        .map_or(tollgate_quota::DEFAULT_NOTICE_REDELIVER_AFTER, |d| d.0),
                })
            }
        };
        let policy = Policy {
            version: *version.get_ref(),
            classes: raw.classes.unwrap_or_default(),
            limits: limits.iter().map(|(_, l)| l.clone()).collect(),
            revocation: raw.revocation,
            quota,
            host_attributes: raw.host_attributes,
            memory_budget: raw.memory_budget.unwrap_or(ByteSize(DEFAULT_MEMORY_BUDGET)),
            state: raw.state,
        };
        if let Err(e) = policy.validate() {
            // Point at the limit the problem is in, or at its capacity.
            let span = e.limit.and_then(|i| limits.get(i).map(|l| (i, l))).map_or(
                0..0,
                |(i, ((name, capacity), _))| match capacity {
                    Some(c) if e.field == format!("limit[{i}].capacity") => c.clone(),
                    _ => name.clone(),
                },
            );
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
        if self.limits.len() > MAX_LIMITS {
            return Err(ValidationError {
                limit: Some(MAX_LIMITS),
                field: "limit".into(),
                message: format!(
                    "{} limits: a policy has at most {MAX_LIMITS}",
                    self.limits.len()
                ),
            });
        }
        for (i, l) in self.limits.iter().enumerate() {
            let err = |field: &str, message: String| ValidationError {
                limit: Some(i),
                field: format!("limit[{i}].{field}"),
                message,
            };
            if let Err(why) = check_limit_name(&l.name) {
                return Err(err("name", why));
            }
            if !names.insert(l.name.as_str()) {
                return Err(err("name", format!("two limits are named {:?}", l.name)));
            }
            if l.key.is_empty() || l.key.len() > MAX_KEY_ATTRS {
                return Err(err(
                    "key",
                    format!("a limit keys on 1 to {} attributes", MAX_KEY_ATTRS),
                ));
            }
            for attr in &l.key {
                self.check_attr(attr).map_err(|m| err("key", m))?;
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
            if l.capacity == 0 || l.capacity > MAX_CAPACITY {
                return Err(err(
                    "capacity",
                    format!("{}: a limit holds 1 to {MAX_CAPACITY} keys", l.capacity),
                ));
            }
            if l.overrides.len() > MAX_OVERRIDES {
                return Err(err(
                    "override",
                    format!(
                        "{} overrides: a limit has at most {MAX_OVERRIDES}",
                        l.overrides.len()
                    ),
                ));
            }
            for (j, o) in l.overrides.iter().enumerate() {
                if o.matches.is_empty() {
                    return Err(err(
                        &format!("override[{j}].match"),
                        "an override must match at least one attribute".into(),
                    ));
                }
                if let Some(cap) = o.capacity.filter(|&c| c == 0 || c > MAX_CAPACITY) {
                    return Err(err(
                        &format!("override[{j}].capacity"),
                        format!("{cap}: an override holds 1 to {MAX_CAPACITY} keys"),
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
        for name in &self.host_attributes {
            if name.is_empty() || Field::named(name.as_bytes()).is_some() {
                return Err(ValidationError {
                    limit: None,
                    field: "host_attributes".into(),
                    message: format!(
                        "{name:?}: a host attribute has a name of its own, not empty and not \
                         one of the engine's ({})",
                        field_names()
                    ),
                });
            }
        }
        if let Some(r) = &self.revocation {
            self.check_attr(&r.key).map_err(|message| ValidationError {
                limit: None,
                field: "revocation.key".into(),
                message,
            })?;
        }
        if let Some(q) = &self.quota {
            self.check_attr(&q.key).map_err(|message| ValidationError {
                limit: None,
                field: "quota.key".into(),
                message,
            })?;
            if q.cost == 0 || q.cost > tollgate_quota::MAX_COST {
                return Err(ValidationError {
                    limit: None,
                    field: "quota.cost".into(),
                    message: format!(
                        "{}: a request counts for 1 to {} calls",
                        q.cost,
                        tollgate_quota::MAX_COST
                    ),
                });
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
        let estimate = self.memory_estimate();
        if estimate.total > self.memory_budget.0 {
            let (i, biggest) = estimate
                .limits
                .iter()
                .copied()
                .enumerate()
                .max_by_key(|&(_, b)| b)
                .unwrap_or((0, 0));
            return Err(ValidationError {
                limit: (!self.limits.is_empty()).then_some(i),
                field: if self.limits.is_empty() {
                    "memory_budget".into()
                } else {
                    format!("limit[{i}].capacity")
                },
                message: format!(
                    "the policy's in-memory state would take about {} ({} for this limit \
                     and its overrides), over memory_budget = {:?} ({}): lower a capacity or \
                     raise memory_budget",
                    ByteSize(estimate.total),
                    ByteSize(biggest),
                    self.memory_budget.0,
                    self.memory_budget
                ),
            });
        }
        Ok(())
    }

    /// What the policy's in-memory state takes when the engine allocates it: each
    /// in-memory limit's keyed store and its overrides' (`KeyedStore::memory_for`,
    /// about 20.3 bytes per key of capacity). Limits on a remote backend count
    /// nothing here (their fallback limiters are sized by the backend).
    pub fn memory_estimate(&self) -> MemoryEstimate {
        let limits: Vec<u64> = self
            .limits
            .iter()
            .map(|l| {
                if l.backend != "memory" {
                    return 0;
                }
                l.overrides
                    .iter()
                    .map(|o| store_bytes(o.capacity_in(l)))
                    .fold(store_bytes(l.capacity), u64::saturating_add)
            })
            .collect();
        MemoryEstimate {
            total: limits.iter().copied().fold(0, u64::saturating_add),
            limits,
        }
    }

    /// `Ok` if `attr` is one of the engine's fields or a declared host attribute; else
    /// what is wrong, with the nearest known name when there is a close one.
    fn check_attr(&self, attr: &Attr) -> Result<(), String> {
        let Attr::Other(name) = attr else {
            return Ok(());
        };
        if self.host_attributes.contains(name) {
            return Ok(());
        }
        let nearest = Field::ALL
            .iter()
            .map(|f| f.name())
            .chain(self.host_attributes.iter().map(String::as_str))
            .map(|known| (strsim::damerau_levenshtein(name, known), known))
            .filter(|(d, known)| *d <= 2 && *d < known.len())
            .min();
        let hint = match nearest {
            Some((_, known)) => format!(" (did you mean {known:?}?)"),
            None => String::new(),
        };
        Err(format!(
            "unknown attribute {name:?}{hint}: the engine's are {}; an attribute the host \
             supplies must be declared, e.g. `host_attributes = [{name:?}]`",
            field_names()
        ))
    }
}

/// The engine's field names, for messages.
fn field_names() -> String {
    Field::ALL.map(Field::name).join(", ")
}

/// `Ok` if `name` can be sent as it is in a structured-field string (RFC 9651 §3.3.3:
/// printable ASCII), without the two characters that string must escape (`"` and `\`),
/// so the `RateLimit` and `RateLimit-Policy` values need no escaping.
fn check_limit_name(name: &str) -> Result<(), String> {
    let bad = name
        .chars()
        .find(|&c| !(' '..='~').contains(&c) || c == '"' || c == '\\');
    if name.is_empty() || name.len() > MAX_LIMIT_NAME || bad.is_some() {
        let what = match bad {
            Some(c) => format!(" ({c:?} is not allowed)"),
            None => String::new(),
        };
        return Err(format!(
            "{name:?}{what}: a limit name is 1 to {MAX_LIMIT_NAME} printable ASCII characters \
             (space to '~'), without quotes or backslashes: it is sent in the RateLimit \
             headers as a structured-field string"
        ));
    }
    Ok(())
}

/// Whether a field's path leads to values that may be secrets (API keys: a company's
/// users, an override's match), whose text must not be echoed in an error.
fn holds_secrets(path: &str) -> bool {
    path.starts_with("quota.companies") || path.contains("match")
}

/// `message` with every double-quoted part replaced, so that a type error about a
/// secret (`invalid type: string "sk_live_…", expected a sequence`) does not echo it.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if inside {
                out.push_str("(redacted)\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// The memory of a keyed store for `capacity` keys, as tollgate-core allocates it.
fn store_bytes(capacity: usize) -> u64 {
    tollgate_core::KeyedStore::<u128>::memory_for(capacity) as u64
}

/// The memory a policy's in-memory state takes ([`Policy::memory_estimate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Bytes in all.
    pub total: u64,
    /// Bytes per limit (with its overrides), in policy order.
    pub limits: Vec<u64>,
}
