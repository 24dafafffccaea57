//! Reservations' settlements on the shared counter: a commit replaces the held cost by
//! the final one (once per idempotency key and period across the fleet), a refund
//! releases the hold; while Redis is unreachable the ledger settles at once and the
//! settlement waits, in order, for the counter's next flush.

use tollgate::quota::{CommitOutcome, Ledger, Reservation, MAX_COST};

use super::local::{Local, Settle};
use super::redis_quota::RedisQuota;
use super::types::CounterId;
use crate::script::calls;
use crate::script::reply::SettleReply;
use crate::store::StoreError;

impl RedisQuota {
    /// Sends one settlement (see `lua/quota_settle.lua`).
    fn send_settle(&self, id: &CounterId, s: &Settle) -> Result<SettleReply, StoreError> {
        let k = self.key(id);
        let commit = s.commit.as_ref().map(|(c, key)| (*c, key.as_str()));
        let inv = calls::quota_settle(
            &self.store.scripts,
            &k,
            &self.instance,
            s.id,
            s.held,
            commit,
        );
        self.store.call(&inv, |r: &Vec<i64>| SettleReply::parse(r))
    }

    /// Sends counter `id`'s settlements made while Redis was unreachable, oldest first.
    pub(super) fn flush_settles(&self, ledger: &Ledger, id: &CounterId) -> Result<(), StoreError> {
        loop {
            let Some(s) = self
                .local
                .update(id, |l| l.settles.first().cloned())
                .flatten()
            else {
                return Ok(());
            };
            // Held while Redis applies it and the local record follows, so a seed never
            // sees one without the other.
            let mut shared = self.counting();
            let mut sent = self.send_settle(id, &s)?;
            if sent == SettleReply::MissingShare {
                drop(shared);
                self.seed(ledger, id)?;
                shared = self.counting();
                sent = self.send_settle(id, &s)?;
            }
            let SettleReply::Applied { used, .. } = sent else {
                return Ok(());
            };
            let _shared = shared;
            self.local.update(id, |l| {
                if l.settles.first().map(|f| f.id) == Some(s.id) {
                    l.settles.remove(0);
                    l.settle_delta -= s.local_delta;
                }
                l.last_shared = used;
            });
        }
    }

    /// Settles `r`: `commit` is the final cost and idempotency key, `None` to refund.
    /// A final cost above [`MAX_COST`] is refused before anything is sent (the ledger
    /// answers [`CommitOutcome::TooLarge`]; the hold stays counted on Redis as in the
    /// ledger), so no such count reaches the shared counter.
    pub(super) fn settle(
        &self,
        ledger: &Ledger,
        r: Reservation,
        commit: Option<(u64, &str)>,
    ) -> CommitOutcome {
        if let Some((cost, key)) = commit.filter(|&(cost, _)| cost > MAX_COST) {
            return ledger.commit(r, cost, key);
        }
        let (start, end, label) = r.period();
        let id: CounterId = (r.company().to_owned(), start);
        let waiting = self
            .local
            .with_entry(&id, || Local::new(label, end, 0), |l| l.waiting());
        let mut s = Settle {
            id: self.next_id(29),
            held: r.held(),
            commit: commit.map(|(c, k)| (c, k.to_owned())),
            local_delta: 0,
        };
        let apply = |r: Reservation, shared: Option<(bool, u64)>| match (commit, shared) {
            (Some((cost, key)), Some((first, used))) => {
                ledger.commit_shared(r, cost, key, first, Some(used))
            }
            (Some((cost, key)), None) => ledger.commit(r, cost, key),
            (None, _) => {
                ledger.refund(r);
                CommitOutcome::Committed
            }
        };
        if !(waiting && self.flush_counter(ledger, &id).is_err()) {
            for _ in 0..2 {
                let shared = self.counting();
                match self.send_settle(&id, &s) {
                    Ok(SettleReply::Applied { first, used }) => {
                        let outcome = apply(r, Some((first, used)));
                        drop(shared);
                        self.local.update(&id, |l| {
                            l.seen = true;
                            l.last_shared = used;
                        });
                        return outcome;
                    }
                    Ok(SettleReply::MissingShare) => {
                        drop(shared);
                        if self.seed(ledger, &id).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        // Redis unreachable (or the counter vanished twice): settle in the ledger now
        // (its own idempotency keys decide) and send the settlement when Redis answers.
        let _shared = self.counting();
        let held = i64::try_from(s.held).unwrap_or(i64::MAX);
        let outcome = apply(r, None);
        s.local_delta = match (&s.commit, outcome) {
            (Some((cost, _)), CommitOutcome::Committed) => i64::try_from(*cost)
                .unwrap_or(i64::MAX)
                .saturating_sub(held),
            _ => -held,
        };
        self.local.update(&id, |l| {
            l.settle_delta += s.local_delta;
            l.settles.push(s);
        });
        outcome
    }
}
