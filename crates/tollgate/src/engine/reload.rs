//! Hot reload: a new policy swapped in atomically, with every kept limit's state carried over.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tollgate_core::Rate;

use super::compile::{
    build_backend, policy_item, register_companies, ClassTable, Compiled, CompiledLimit,
    CompiledOverride, CompiledQuota, CompiledRevocation,
};
use super::error::EngineError;
use super::instance::Engine;
use crate::backend::MemoryBackend;
use crate::policy::{
    AlgorithmKind, Attr, Policy, PolicyWarning, DEFAULT_MAX_REVOKED, OFFENDER_CAPACITY,
};

/// What a reload did, limit by limit.
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
    pub(super) fn reload_valid(&self, policy: Policy) -> Result<ReloadReport, EngineError> {
        let _serial = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.compiled.load_full();
        let now = self.now();
        let mut report = ReloadReport::default();
        let classes = ClassTable::new(&policy.classes);
        let mut limits = Vec::with_capacity(policy.limits.len());
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
            let (backend, carried) = build_backend(
                &self.factories,
                spec,
                spec.rate,
                spec.capacity,
                same_backend.map(|p| &p.backend),
                now,
            )?;
            let mut overrides = Vec::new();
            for o in &spec.overrides {
                let matches: Vec<(usize, String)> = o
                    .matches
                    .iter()
                    .map(|(attr, v)| {
                        let pos = spec
                            .key
                            .iter()
                            .position(|a| *a == Attr::named(attr))
                            .unwrap_or(0);
                        (pos, v.clone())
                    })
                    .collect();
                let prev_override = same_backend.and_then(|p| {
                    p.overrides
                        .iter()
                        .find(|po| po.matches == matches)
                        .map(|po| &po.backend)
                });
                let (b, _) = build_backend(
                    &self.factories,
                    spec,
                    o.rate,
                    o.capacity_in(spec),
                    prev_override,
                    now,
                )?;
                overrides.push(CompiledOverride {
                    matches,
                    rate: o.rate,
                    backend: b,
                });
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
                let offenders = match same {
                    Some(o) => o
                        .offenders
                        .carry_over(AlgorithmKind::Gcra, rate, now)
                        .expect("same algorithm"),
                    None => MemoryBackend::new(AlgorithmKind::Gcra, rate, OFFENDER_CAPACITY)
                        .map_err(|e| EngineError::Limit {
                            limit: "revocation".into(),
                            message: e.to_string(),
                        })?,
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
                    if old_q.spec.plans != q.plans
                        || old_q.spec.period.kind() != q.period.kind()
                        || old_q.spec.warning_percent != q.warning_percent
                        || old_q.spec.hard_cap_percent != q.hard_cap_percent
                        || old_q.spec.journal != q.journal
                    {
                        report.notes.push(
                            "quota plans, period, thresholds or journal changed: they take \
                             effect at the next restart; companies, users and keys were updated"
                                .into(),
                        );
                    }
                }
                register_companies(ledger, q, now)?;
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
