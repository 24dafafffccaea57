//! Events and metrics: the bounded event channel and the metrics snapshot.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crossbeam_channel::{Receiver, TrySendError};
use tollgate_quota::journal::{HealthChange, JournalHealth};

use super::events::Event;
use super::instance::Engine;
use crate::metrics::{LimitCounts, MetricsSnapshot};

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

    /// The counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        let c = self.compiled.load();
        let limits = c
            .limits
            .iter()
            .map(|l| LimitCounts {
                limit: l.spec.name.clone(),
                shadow: l.spec.shadow,
                allowed: l.metrics.allowed.get(),
                denied: l.metrics.denied.get(),
                shadow_denied: l.metrics.shadow_denied.get(),
                errors: l.metrics.errors.get(),
                revoked: l.metrics.revoked.get(),
                failure_policy: l.metrics.failure_policy.get(),
            })
            .collect();
        let capacity = c.revocation.as_ref().map_or(0, |r| r.max_revoked) as u64;
        let mut snap = self
            .metrics
            .snapshot(limits, self.revoked.len() as u64, capacity);
        snap.events_dropped += self.journal_events_dropped.load(Ordering::Relaxed);
        snap
    }

    /// The counters as Prometheus text (with the journal's health when the quota is
    /// journaled: see [`journal_prometheus`](crate::metrics::journal_prometheus)).
    pub fn prometheus(&self) -> String {
        let mut out = self.metrics().to_prometheus();
        if let Some(h) = self.journal_health() {
            out.push_str(&crate::metrics::journal_prometheus(
                &h,
                self.journal_refused.get(),
            ));
        }
        out
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
