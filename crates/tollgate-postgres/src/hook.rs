//! [`PgLedgerSink`] as the engine's [`UsageSink`]: every counted move of the quota
//! (`EngineBuilder::usage_sink`, `Ledger::set_usage_sink`) becomes one [`UsageDelta`]
//! in the writer's queue. The deciding thread builds the delta (the ids copied, the
//! period's label) and pushes it under the queue's mutex; a full queue drops the move and
//! counts it in [`SinkStats::dropped`](crate::SinkStats::dropped), it never waits.

use tollgate_quota::{UsageMove, UsageSink};

use crate::ledger::UsageDelta;
use crate::writer::PgLedgerSink;

impl UsageDelta {
    /// The delta of one counted move of a ledger.
    pub fn of_move(m: &UsageMove<'_>) -> Self {
        UsageDelta {
            company: m.company.to_owned(),
            user: Some(m.user.to_owned()),
            period: m.period.label(),
            period_start: m.period.start().as_second(),
            calls: m.calls,
            units: m.units,
        }
    }
}

impl UsageSink for PgLedgerSink {
    fn record(&self, usage: &UsageMove<'_>) {
        // `false` (dropped at the bound) is counted by the sink's stats.
        let _ = PgLedgerSink::record(self, UsageDelta::of_move(usage));
    }
}
