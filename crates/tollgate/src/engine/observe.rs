//! Events and metrics: the bounded event channel and the metrics snapshot.

use crossbeam_channel::{Receiver, TrySendError};

use super::compile::{Backend, Failure};
use super::events::Event;
use super::instance::Engine;
use crate::backend::LimitBackend;
use crate::metrics::{
    BackendHealth, CompanyQuota, Gauges, LimitCounts, MetricsSnapshot, StoreCounts,
};

impl Engine {
    pub(super) fn emit(&self, e: Event) {
        match self.events_tx.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.events_dropped.add(1)
            }
        }
    }

    /// The event channel: receive notices and revocations from any thread, without
    /// blocking decisions.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events_rx
    }

    /// Takes every pending event.
    pub fn drain_events(&self) -> Vec<Event> {
        self.events_rx.try_iter().collect()
    }

    /// The counters, gauges and remote stores' health.
    pub fn metrics(&self) -> MetricsSnapshot {
        let c = self.compiled.load();
        let mut backends: Vec<BackendHealth> = Vec::new();
        let mut add_health = |h: Option<BackendHealth>| {
            if let Some(h) = h {
                if !backends.iter().any(|b| b.id == h.id) {
                    backends.push(h);
                }
            }
        };
        let limits = c
            .limits
            .iter()
            .map(|l| {
                let mut store: Option<StoreCounts> = None;
                let mut fallback_store: Option<StoreCounts> = None;
                let sum = |acc: &mut Option<StoreCounts>, n: Option<StoreCounts>| {
                    if let Some(n) = n {
                        *acc = Some(acc.map_or(n, |a| a.plus(n)));
                    }
                };
                for b in std::iter::once(&l.backend).chain(l.overrides.iter().map(|o| &o.backend)) {
                    sum(&mut store, b.get().store_counts());
                    if let Backend::Custom(custom, failure) = b {
                        add_health(custom.store_health());
                        if let Failure::Fallback(local) = failure {
                            sum(&mut fallback_store, local.store_counts());
                        }
                    }
                }
                LimitCounts {
                    limit: l.spec.name.clone(),
                    shadow: l.spec.shadow,
                    allowed: l.metrics.allowed.get(),
                    denied: l.metrics.denied.get(),
                    shadow_denied: l.metrics.shadow_denied.get(),
                    errors: l.metrics.errors.get(),
                    revoked: l.metrics.revoked.get(),
                    failure_policy: l.metrics.failure_policy.get(),
                    store,
                    fallback_store,
                }
            })
            .collect();
        let quota_store = self.quota_store.as_ref().and_then(|q| {
            add_health(q.store_health());
            q.quota_stats()
        });
        let now = i128::from(self.now());
        let companies = match (&c.quota, &self.ledger) {
            (Some(_), Some(ledger)) => ledger
                .current_statements(now)
                .into_iter()
                .map(|s| CompanyQuota {
                    company: s.company,
                    period: s.period,
                    used: s.used,
                    limit: s.limit,
                })
                .collect(),
            _ => Vec::new(),
        };
        let (offender_entries, offender_capacity) = c.revocation.as_ref().map_or((0, 0), |r| {
            r.offenders
                .store_counts()
                .map_or((0, 0), |s| (s.keys, s.capacity))
        });
        let gauges = Gauges {
            revoked_entries: self.revoked.len() as u64,
            revoked_capacity: c.revocation.as_ref().map_or(0, |r| r.max_revoked) as u64,
            offender_entries,
            offender_capacity,
            events_pending: self.events_rx.len() as u64,
            events_capacity: self.events_tx.capacity().unwrap_or(0) as u64,
            backends,
            quota_store,
            companies,
        };
        self.metrics.snapshot(limits, gauges)
    }

    /// The counters as Prometheus text.
    pub fn prometheus(&self) -> String {
        self.metrics().to_prometheus()
    }
}
