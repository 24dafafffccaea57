//! Events and metrics: the bounded event channel and the metrics snapshot.

use crossbeam_channel::{Receiver, TrySendError};

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
        self.metrics
            .snapshot(limits, self.revoked.len() as u64, capacity)
    }

    /// The counters as Prometheus text.
    pub fn prometheus(&self) -> String {
        self.metrics().to_prometheus()
    }
}
