//! Hot reload: a new policy swapped in atomically, with every kept limit's state carried over.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tollgate_core::Rate;
use tollgate_quota::KeyRef;

use super::compile::{
    build_backend, policy_item, quota_config, Backend, ClassTable, Compiled, CompiledLimit,
    CompiledOverride, CompiledQuota, CompiledRevocation,
};
use super::error::EngineError;
use super::instance::Engine;
use super::reconcile::{reconcile, DirectoryChanges};
use crate::backend::{CarriedKey, MemoryBackend};
use crate::policy::{
    AlgorithmKind, Attr, OnFull, Policy, PolicyWarning, DEFAULT_MAX_REVOKED, OFFENDER_CAPACITY,
};
use crate::shared_state::SharedBackend;

/// An override a reload added, changed or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideChange {
    /// The limit it belongs to.
    pub limit: String,
    /// What it matches: attribute name and value, in name order; a `token` value (or
    /// the quota's key attribute's) is shown as its [`KeyRef`](tollgate_quota::KeyRef),
    /// never in full.
    pub matches: Vec<(String, String)>,
    /// The override's rate (for a removed one: the rate it had).
    pub rate: String,
    /// Whether its keys kept their used capacity across the change (as a changed
    /// limit's do: raising takes effect at once, lowering never hands out a fresh
    /// burst). True for an override that names its limit's whole key (one key: carried
    /// from wherever the key was counted before), and for a changed override of any
    /// kind (its own keys, rescaled). False for an override matching part of the key
    /// added or removed (its keys cannot be told apart by fingerprint: they start
    /// fresh under their new rate) and when the limit's algorithm or window changed.
    pub carried: bool,
}

/// What a reload did to the limits' overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverrideChanges {
    /// Overrides new in the policy.
    pub added: Vec<OverrideChange>,
    /// Overrides whose rate or capacity changed.
    pub changed: Vec<OverrideChange>,
    /// Overrides no longer in the policy (their keys are counted under the limit's own
    /// rate again).
    pub removed: Vec<OverrideChange>,
}

/// What a reload did, limit by limit, override by override, and to the quota's
/// directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Limits whose definition did not change: state untouched.
    pub kept: Vec<String>,
    /// Changed limits whose keys' used capacity carried over.
    pub carried: Vec<String>,
    /// New limits, and changed ones that start fresh (algorithm or window changed).
    pub fresh: Vec<String>,
    /// Limits no longer in the policy.
    pub removed: Vec<String>,
    /// Anything else worth knowing (e.g. quota settings that need a restart).
    pub notes: Vec<String>,
    /// Overrides added, changed and removed, and whether their keys' used capacity
    /// carried over.
    pub overrides: OverrideChanges,
    /// Companies, users and keys added, changed and removed.
    pub directory: DirectoryChanges,
    /// Companies whose quota limit changed because the plans or their thresholds
    /// changed ([`Ledger::reconfigure`](tollgate_quota::Ledger::reconfigure)); sorted.
    pub quota_limits_changed: Vec<String>,
}

/// A whole-key override's key as a reload found it before any store was rescaled:
/// its values in key order, its fingerprint, which of the old overrides counted it
/// (`None`: the limit's own state), and its state there.
struct MovedKey {
    parts: Vec<String>,
    hash: u128,
    was: Option<usize>,
    taken: Option<CarriedKey>,
}

/// The values of an override naming every attribute of its limit's key (`n` of them),
/// in key order; `None` for an override matching part of the key.
fn whole_key(n: usize, matches: &[(usize, String)]) -> Option<Vec<String>> {
    let mut parts = vec![None; n];
    for (pos, v) in matches {
        if let Some(slot) = parts.get_mut(*pos) {
            *slot = Some(v.clone());
        }
    }
    parts.into_iter().collect()
}

/// The override of `overrides` a key of `parts` matches (the first), as the decision
/// finds it.
fn matching(overrides: &[CompiledOverride], parts: &[String]) -> Option<usize> {
    overrides.iter().position(|o| {
        o.matches
            .iter()
            .all(|(pos, v)| parts.get(*pos).is_some_and(|p| p == v))
    })
}

/// The in-host state behind a backend (private or host-shared), whose keys a reload
/// can move between a limit and its overrides.
#[derive(Clone, Copy)]
enum Local<'a> {
    Memory(&'a MemoryBackend),
    Shared(&'a SharedBackend),
}

impl Local<'_> {
    fn take_key(self, hash: u128) -> Option<CarriedKey> {
        match self {
            Local::Memory(m) => m.take_key(hash),
            Local::Shared(s) => s.take_key(hash),
        }
    }

    fn put_key(self, hash: u128, key: Option<CarriedKey>, now: u64) -> bool {
        match self {
            Local::Memory(m) => m.put_key(hash, key, now),
            Local::Shared(s) => s.put_key(hash, key, now),
        }
    }

    fn shares_store(self, other: Local<'_>) -> bool {
        match (self, other) {
            (Local::Memory(a), Local::Memory(b)) => a.shares_store(b),
            (Local::Shared(a), Local::Shared(b)) => a.path() == b.path(),
            _ => false,
        }
    }
}

/// The in-host state behind `b`, if it is in this host's memory.
fn memory(b: &Backend) -> Option<Local<'_>> {
    match b {
        Backend::Memory(m) => Some(Local::Memory(m)),
        Backend::Shared(s) => Some(Local::Shared(s)),
        Backend::Custom(..) => None,
    }
}

impl Engine {
    /// Replaces the policy without a restart. See the [module docs](crate::engine) for what
    /// happens to each limit's state. On error nothing changes.
    pub fn reload(&self, policy: Policy) -> Result<ReloadReport, EngineError> {
        let result = policy
            .validate()
            .map_err(EngineError::from)
            .and_then(|()| self.reload_valid(policy));
        self.count_reload(result.is_ok());
        result
    }

    fn count_reload(&self, ok: bool) {
        if ok {
            self.metrics.reloads.add(1);
        } else {
            self.metrics.reload_failures.add(1);
        }
    }

    /// [`reload`](Self::reload) of a policy already validated.
    pub(super) fn reload_valid(&self, mut policy: Policy) -> Result<ReloadReport, EngineError> {
        let _serial = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        // The state stays where the engine was built with it: a policy that names no
        // `[state]` keeps it (an engine given its shared path by the C entry point
        // reloads a file that does not name one); naming another is refused.
        let current = self.shared.as_ref().map(|s| s.prefix().to_path_buf());
        match (&policy.state.shared, &current) {
            (None, _) => policy.state.shared = current,
            (Some(p), Some(c)) if p == c => {}
            (Some(p), _) => {
                return Err(EngineError::State(format!(
                    "a reload cannot move the state to [state] shared = {:?} (it is {}): \
                     restart the processes",
                    p.display(),
                    current.as_ref().map_or_else(
                        || "process-private".to_owned(),
                        |c| format!("{:?}", c.display())
                    )
                )))
            }
        }
        let old = self.compiled.load_full();
        let now = self.now();
        let mut report = ReloadReport::default();
        let classes = ClassTable::new(&policy.classes);
        let mut limits = Vec::with_capacity(policy.limits.len());
        // Override values of these attributes are secrets: reported as references.
        let secret_attr = policy.quota.as_ref().map(|q| q.key.name().to_owned());
        for spec in &policy.limits {
            let prev = old.limits.iter().find(|l| l.spec.name == spec.name);
            let metrics = prev.map_or_else(Arc::default, |p| Arc::clone(&p.metrics));
            if let Some(p) = prev.filter(|p| p.spec == *spec) {
                limits.push(CompiledLimit {
                    spec: spec.clone(),
                    backend: p.backend.clone(),
                    overrides: p
                        .overrides
                        .iter()
                        .map(|o| CompiledOverride {
                            matches: o.matches.clone(),
                            rate: o.rate,
                            backend: o.backend.clone(),
                        })
                        .collect(),
                    metrics,
                    policy_item: p.policy_item.clone(),
                    per_class: classes.rules(spec),
                });
                report.kept.push(spec.name.clone());
                continue;
            }
            let same_backend = prev.filter(|p| p.spec.backend == spec.backend);
            let key_len = spec.key.len();
            let new_matches: Vec<Vec<(usize, String)>> = spec
                .overrides
                .iter()
                .map(|o| {
                    o.matches
                        .iter()
                        .map(|(attr, v)| {
                            let pos = spec
                                .key
                                .iter()
                                .position(|a| *a == Attr::named(attr))
                                .unwrap_or(0);
                            (pos, v.clone())
                        })
                        .collect()
                })
                .collect();
            // The keys of whole-key overrides, old and new, with their state taken
            // before any store is rescaled: where each was counted, and how much it used.
            let mut moved: Vec<MovedKey> = Vec::new();
            if let Some(p) = same_backend.filter(|p| p.spec.key == spec.key) {
                let mut seen = std::collections::BTreeSet::new();
                let candidates = p
                    .overrides
                    .iter()
                    .map(|o| o.matches.as_slice())
                    .chain(new_matches.iter().map(Vec::as_slice));
                for m in candidates {
                    let Some(parts) = whole_key(key_len, m) else {
                        continue;
                    };
                    if !seen.insert(parts.clone()) {
                        continue;
                    }
                    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                    let hash = self.hasher.of_parts(&refs);
                    let was = matching(&p.overrides, &parts);
                    let taken = memory(p.backend_for(was)).and_then(|m| m.take_key(hash));
                    moved.push(MovedKey {
                        parts,
                        hash,
                        was,
                        taken,
                    });
                }
            }
            let (backend, carried) = build_backend(
                &self.factories,
                spec,
                spec.rate,
                spec.capacity,
                same_backend.map(|p| &p.backend),
                now,
                self.shared.as_ref().map(|p| (p, None)),
            )?;
            let mut overrides = Vec::new();
            for (o, matches) in spec.overrides.iter().zip(new_matches) {
                let prev_override = same_backend.and_then(|p| {
                    p.overrides
                        .iter()
                        .find(|po| po.matches == matches)
                        .map(|po| &po.backend)
                });
                // The region is named after the match (positions and values, hashed).
                let named: Vec<String> = matches
                    .iter()
                    .map(|(pos, v)| format!("{pos}={v}"))
                    .collect();
                let values: Vec<&str> = named.iter().map(String::as_str).collect();
                let (b, _) = build_backend(
                    &self.factories,
                    spec,
                    o.rate,
                    o.capacity_in(spec),
                    prev_override,
                    now,
                    self.shared.as_ref().map(|p| (p, Some(values.as_slice()))),
                )?;
                overrides.push(CompiledOverride {
                    matches,
                    rate: o.rate,
                    backend: b,
                });
            }
            // Each whole-key override's key keeps its used capacity wherever it is
            // counted now: an override added (the key moves from the limit's state, or
            // another override's, to its own), or removed (back to the limit's).
            let mut key_carried = std::collections::BTreeMap::new();
            if let Some(p) = same_backend {
                for MovedKey {
                    parts,
                    hash,
                    was,
                    taken,
                } in moved
                {
                    let is = matching(&overrides, &parts);
                    let (Some(from), Some(to)) = (
                        memory(p.backend_for(was)),
                        memory(is.map_or(&backend, |i| &overrides[i].backend)),
                    ) else {
                        continue;
                    };
                    let ok = to.shares_store(from) || to.put_key(hash, taken, now);
                    key_carried.insert(parts, ok);
                }
            }
            let carried_of =
                |matches: &[(usize, String)], changed: bool| match whole_key(key_len, matches) {
                    Some(parts) => key_carried.get(&parts).copied().unwrap_or(false),
                    None => changed && carried,
                };
            if let Some(p) = prev {
                let names = |m: &[(usize, String)]| -> Vec<(String, String)> {
                    let mut v: Vec<(String, String)> = m
                        .iter()
                        .map(|(pos, val)| {
                            let attr = spec
                                .key
                                .get(*pos)
                                .map_or_else(String::new, |a| a.name().to_owned());
                            let shown = if attr == "token" || secret_attr.as_deref() == Some(&attr)
                            {
                                KeyRef::of(val).to_string()
                            } else {
                                val.clone()
                            };
                            (attr, shown)
                        })
                        .collect();
                    v.sort();
                    v
                };
                for (o, no) in overrides.iter().zip(&spec.overrides) {
                    let change = |carried| OverrideChange {
                        limit: spec.name.clone(),
                        matches: names(&o.matches),
                        rate: no.rate.to_string(),
                        carried,
                    };
                    match p.overrides.iter().find(|po| po.matches == o.matches) {
                        None => report
                            .overrides
                            .added
                            .push(change(carried_of(&o.matches, false))),
                        Some(po) => {
                            let old_spec =
                                p.spec.overrides.iter().find(|os| os.matches == no.matches);
                            if po.rate != o.rate
                                || old_spec.map(|os| os.capacity) != Some(no.capacity)
                            {
                                report
                                    .overrides
                                    .changed
                                    .push(change(carried_of(&o.matches, true)));
                            }
                        }
                    }
                }
                for po in &p.overrides {
                    if !overrides.iter().any(|o| o.matches == po.matches) {
                        report.overrides.removed.push(OverrideChange {
                            limit: spec.name.clone(),
                            matches: names(&po.matches),
                            rate: po.rate.to_string(),
                            carried: carried_of(&po.matches, false),
                        });
                    }
                }
            }
            if prev.is_none() || !carried {
                report.fresh.push(spec.name.clone());
            } else {
                report.carried.push(spec.name.clone());
            }
            limits.push(CompiledLimit {
                policy_item: policy_item(&spec.name, spec.algorithm, spec.rate),
                per_class: classes.rules(spec),
                spec: spec.clone(),
                backend,
                overrides,
                metrics,
            });
        }
        for l in &old.limits {
            if !policy.limits.iter().any(|n| n.name == l.spec.name) {
                report.removed.push(l.spec.name.clone());
            }
        }
        let revocation = match &policy.revocation {
            None => None,
            Some(r) => {
                let rate = Rate::new(u64::from(r.denials), r.window.0)
                    .and_then(|rate| rate.with_burst(u64::from(r.denials.max(2) - 1)))
                    .map_err(|e| EngineError::Limit {
                        limit: "revocation".into(),
                        message: e.to_string(),
                    })?;
                let same = old.revocation.as_ref().filter(|o| {
                    o.attr == r.key && o.denials == r.denials && o.window == r.window.0
                });
                let err = |message: String| EngineError::Limit {
                    limit: "revocation".into(),
                    message,
                };
                let offenders = match (&self.shared, same.map(|o| &o.offenders)) {
                    // The same section: the same counts (and rate), kept as they are.
                    (_, Some(b @ Backend::Shared(_))) => b.clone(),
                    (Some(plan), _) => {
                        // The region re-expresses its counts if the rate changed.
                        let (b, _) = SharedBackend::open(
                            &plan.offenders_region(),
                            AlgorithmKind::Gcra,
                            rate,
                            OFFENDER_CAPACITY,
                            OnFull::Allow,
                            now,
                        )
                        .map_err(err)?;
                        Backend::Shared(Arc::new(b))
                    }
                    (None, Some(Backend::Memory(m))) => Backend::Memory(Arc::new(
                        m.carry_over(AlgorithmKind::Gcra, rate, now)
                            .expect("same algorithm"),
                    )),
                    (None, _) => Backend::Memory(Arc::new(
                        MemoryBackend::new(AlgorithmKind::Gcra, rate, OFFENDER_CAPACITY)
                            .map_err(|e| err(e.to_string()))?,
                    )),
                };
                Some(CompiledRevocation {
                    attr: r.key.clone(),
                    denials: r.denials,
                    window: r.window.0,
                    offenders,
                    suspend: r
                        .suspend
                        .map(|d| u64::try_from(d.0.as_nanos()).unwrap_or(u64::MAX)),
                    max_revoked: r.max_revoked.unwrap_or(DEFAULT_MAX_REVOKED),
                })
            }
        };
        let quota = match (&policy.quota, &self.ledger) {
            (Some(q), Some(ledger)) => {
                if let Some(old_q) = &old.quota {
                    // Plans and thresholds change live, before the directory's
                    // difference is applied (so a company added by this reload gets
                    // the new plans); a plan a company still subscribes to must exist.
                    if old_q.spec.plans != q.plans
                        || old_q.spec.warning_percent != q.warning_percent
                        || old_q.spec.hard_cap_percent != q.hard_cap_percent
                    {
                        report.quota_limits_changed = ledger
                            .reconfigure(quota_config(q), i128::from(now))
                            .map_err(EngineError::Quota)?;
                    }
                    if old_q.spec.period != q.period || old_q.spec.journal != q.journal {
                        report.notes.push(
                            "the quota's period or journal changed: they take effect at the \
                             next restart (plans, thresholds, companies, users and keys were \
                             updated)"
                                .into(),
                        );
                    }
                }
                report.directory = reconcile(ledger, old.quota.as_ref().map(|o| &o.spec), q, now)?;
                ledger
                    .outbox()
                    .set_redeliver_after(q.notice_redeliver_after);
                Some(CompiledQuota {
                    attr: q.key.clone(),
                    cost: q.cost,
                    unknown_key: q.unknown_key,
                    spec: q.clone(),
                })
            }
            (Some(_), None) => {
                report
                    .notes
                    .push("a quota section was added: it takes effect at the next restart".into());
                None
            }
            (None, _) => None,
        };
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let remote_limits = limits.iter().any(|l| l.spec.backend != "memory");
        self.compiled.store(Arc::new(Compiled {
            generation,
            policy,
            classes,
            limits,
            revocation,
            quota,
            remote_limits,
        }));
        Ok(report)
    }

    /// Reloads the policy file at `path`.
    pub fn reload_file(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<(ReloadReport, Vec<PolicyWarning>), EngineError> {
        let (policy, warnings) =
            Policy::from_file(path).inspect_err(|_| self.count_reload(false))?;
        Ok((self.reload(policy)?, warnings))
    }
}
