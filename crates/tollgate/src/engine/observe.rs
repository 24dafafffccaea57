//! Events and metrics: the bounded event channel and the metrics snapshot.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crossbeam_channel::{Receiver, TrySendError};
use tollgate_quota::journal::{HealthChange, JournalHealth};

use super::compile::{Backend, Failure};
use super::events::Event;
use super::instance::Engine;
use crate::backend::LimitBackend;
use crate::metrics::{
    BackendHealth, Gauges, JournalGauges, LimitCounts, MetricsSnapshot, StoreCounts,
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
                        match failure {
                            Failure::Fallback(local) => {
                                sum(&mut fallback_store, local.store_counts());
                            }
                            Failure::Own => {
                                let own = custom.own_fallback();
                                sum(&mut fallback_store, own.and_then(|o| o.store_counts()));
                            }
                            Failure::Open { .. } | Failure::Closed => {}
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
            (Some(_), Some(ledger)) => ledger.current_statements(now),
            _ => Vec::new(),
        };
        let (offender_entries, offender_capacity) = c.revocation.as_ref().map_or((0, 0), |r| {
            r.offenders
                .get()
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
            journal: self.journal_health().map(|h| JournalGauges {
                failures: h.total_failures,
                pending: h.pending_entries,
                dropped: h.dropped_entries,
                last_success_unix_secs: h
                    .last_success
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0.0, |d| d.as_secs_f64()),
                healthy: h.is_ok(),
                refused: self.journal_refused.get(),
            }),
        };
        let mut snap = self.metrics.snapshot(limits, gauges);
        snap.events_dropped += self.journal_events_dropped.load(Ordering::Relaxed);
        snap
    }

    /// Every metric family as Prometheus text (see [`crate::metrics`] for the list).
    pub fn prometheus(&self) -> String {
        self.metrics().to_prometheus()
    }

    /// The quota journal's health (`None` when the quota is not journaled): ok or
    /// failing, failures in a row and in all, the last error, when a batch last
    /// committed, since when it fails, what waits to be written.
    pub fn journal_health(&self) -> Option<JournalHealth> {
        self.ledger.as_ref()?.journal_health()
    }

    /// Sends [`Event::JournalFailing`] and [`Event::JournalRecovered`] from the journal's
    /// writer thread, and on recovery the notices that waited for the journal.
    pub(super) fn watch_journal(&self) {
        let Some(ledger) = &self.ledger else { return };
        let Some(journal) = ledger.journal() else {
            return;
        };
        let tx = self.events_tx.clone();
        let dropped = Arc::clone(&self.journal_events_dropped);
        // Weak: the journal (inside the ledger) holds this listener.
        let weak = Arc::downgrade(ledger);
        journal.on_health_change(move |change| {
            let send = |e: Event| {
                if tx.try_send(e).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            };
            match change {
                HealthChange::Failing(h) => send(Event::JournalFailing {
                    error: h.last_error.clone().unwrap_or_default(),
                    since_unix_ns: h
                        .failing_since
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                }),
                HealthChange::Recovered(h) => {
                    send(Event::JournalRecovered {
                        failures: h.total_failures,
                    });
                    if let Some(ledger) = weak.upgrade() {
                        for e in ledger.drain_events() {
                            send(Event::Quota(e));
                        }
                    }
                }
            }
        });
    }
}
