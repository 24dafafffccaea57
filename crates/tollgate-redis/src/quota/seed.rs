//! Re-seeding a vanished counter: this instance's share is rebuilt from its durable
//! ledger (less what still waits to be sent), under the lock that keeps its calls out
//! meanwhile, and a counter this instance had counted in before is reported.

use std::sync::atomic::Ordering;

use tollgate::quota::Ledger;

use super::redis_quota::RedisQuota;
use super::types::{CounterId, Reseeded};
use crate::script::calls;
use crate::script::reply::SeedReply;
use crate::store::StoreError;

impl RedisQuota {
    /// Seeds this instance's share of counter `id` from `ledger`.
    pub(super) fn seed(&self, ledger: &Ledger, id: &CounterId) -> Result<(), StoreError> {
        let _exclusive = self.seeding.write().unwrap_or_else(|p| p.into_inner());
        let Some((label, period_end, seen, unsent, settle_delta)) = self.local.update(id, |l| {
            (
                l.label.clone(),
                l.period_end,
                l.seen,
                l.unsent(),
                l.settle_delta,
            )
        }) else {
            return Ok(());
        };
        let mine = ledger
            .company_usage()
            .iter()
            .find(|r| r.company == id.0 && r.period == label)
            .map_or(0, |r| r.used);
        // Calls and settlements not yet sent go in by their own (idempotent) flushes.
        let share = u64::try_from(
            (i128::from(mine) - i128::from(unsent) - i128::from(settle_delta)).max(0),
        )
        .unwrap_or(u64::MAX);
        let expire_at = period_end
            .saturating_add(i64::try_from(self.options.retention.as_secs()).unwrap_or(i64::MAX));
        let k = self.key(id);
        let inv = calls::quota_seed(&self.store.scripts, &k, &self.instance, share, expire_at);
        let SeedReply { seeded, used } =
            self.store.call(&inv, |r: &Vec<i64>| SeedReply::parse(r))?;
        if seeded {
            self.counters.seeds.fetch_add(1, Ordering::Relaxed);
            if seen || share > 0 {
                self.counters.reseeded.fetch_add(1, Ordering::Relaxed);
                self.reports
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Reseeded {
                        company: id.0.clone(),
                        period_start: id.1,
                        seeded: share,
                        used,
                    });
            }
        }
        self.local.update(id, |l| {
            l.seen = true;
            l.last_shared = used;
        });
        Ok(())
    }
}
