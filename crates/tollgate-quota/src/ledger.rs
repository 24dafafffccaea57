//! The in-memory usage ledger: who called, on whose quota, in which period.
//!
//! [`Ledger::record`] attributes a call, by API key, to its user and the user's company,
//! and answers at once: within the limit, over the limit (served: the policy only
//! notifies), or refused (over the hard cap), with the company's usage, limit and the
//! time the period resets.
//!
//! # Hot path
//! API keys map to their users in a lock-free concurrent map (`papaya`) keyed by a 128-bit
//! fingerprint of the key (the key itself is never stored); each user holds its company,
//! and each company and user keeps its periods in an append-only vector (`boxcar`) with
//! the index of the current one. Recording a call is one map lookup, two index loads, one
//! compare-exchange loop on the company's counter and one `fetch_add` on the user's: no
//! lock, no allocation, no reference counting, and the journal is not touched (its writer
//! collects the counters' changes, see below). A call is attributed to the period its own
//! timestamp falls in: a thread that raced a period rollover still counts its call in the
//! period it checked. Administrative changes (a company's units, a key added) take a
//! mutex and never block `record`.

//! # Notices exactly once
//! Each period counter has a flag word. The call that takes usage over the warning
//! threshold or the limit sets the flag with `fetch_or`; only the call that flipped the bit
//! emits the [`QuotaEvent`], so each notice is raised once per company and period however
//! many threads race, and even if the limit changes during the period. The counter is in
//! its own module so that loom checks exactly this code.
//!
//! # Durability
//! [`Ledger::new`] keeps everything in memory. [`Ledger::with_journal`] journals to a
//! [`Journal`] (SQLite; bounded-loss or strict) and restores what a previous run
//! journaled when companies and users are registered again. The hot path does not touch
//! the journal: its writer thread collects, once per batch, the change of every user's
//! counters since the previous batch. A commit's idempotency key and its settled usage land
//! in the same batch. A notice is raised only after its journal entry is durable, so it is
//! raised at most once across restarts; if that write fails the notice is not raised and
//! [`Ledger::journal_errors`] counts it. In strict mode, a caller that needs its call to be
//! durable before answering calls [`Ledger::sync`] (or waits on [`Ledger::ticket`]):
//! concurrent callers share one disk sync.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use jiff::Timestamp;
use serde::Serialize;
use tollgate_core::{FingerprintBuildHasher, Fingerprinter};

use crate::counter::{Charge, Counter, Crossing};
use crate::journal::{Entry, Journal, JournalError, NoticeKind, Snapshot, Ticket};
use crate::period::{Period, PeriodError, PeriodSpec};
use crate::plan::{Company, PlanError, Plans, QuotaLimit};

/// How the ledger treats usage: plans, periods, thresholds.
#[derive(Clone, Debug)]
pub struct QuotaConfig {
    /// The plans companies get their limits from.
    pub plans: Plans,
    /// How time is cut into periods (calendar month in UTC by default); a company may
    /// override the time zone.
    pub period: PeriodSpec,
    /// Early warning at this percentage of the limit (e.g. 80), once per period.
    pub warning_percent: Option<u32>,
    /// Service stops above this percentage of the limit (e.g. 150): "excessive overuse".
    /// `None`: never refuse, only notify.
    pub hard_cap_percent: Option<u32>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            plans: Plans::standard(),
            period: PeriodSpec::monthly_utc(),
            warning_percent: Some(80),
            hard_cap_percent: Some(150),
        }
    }
}

/// A short, non-secret identifier for an API key: its first 8 characters and an
/// ellipsis. API keys never appear in full in errors, reports or events.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct KeyRef(String);

impl KeyRef {
    /// The redacted form of `key`.
    pub fn of(key: &str) -> Self {
        let prefix: String = key.chars().take(8).collect();
        KeyRef(format!("{prefix}…"))
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRef({})", self.0)
    }
}

/// A notice the host turns into an email or an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QuotaEvent {
    /// Usage crossed the early-warning threshold.
    Warning {
        /// The company.
        company: String,
        /// The period's label, e.g. "2026-11".
        period: String,
        /// Usage after the call that crossed the threshold.
        used: u64,
        /// The limit at that moment.
        limit: u64,
    },
    /// Usage went over the limit: one notice per company and period.
    Overage {
        /// The company.
        company: String,
        /// The period's label.
        period: String,
        /// Usage after the call that went over.
        used: u64,
        /// The limit at that moment.
        limit: u64,
        /// The smallest configured plan that would cover this usage, if any.
        suggested_plan: Option<String>,
    },
}

/// What [`Ledger::record`] answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QuotaDecision {
    /// The verdict.
    pub outcome: Outcome,
    /// The company's usage in the period after this call (unchanged if refused).
    pub used: u64,
    /// The company's limit for the period.
    pub limit: u64,
    /// When the period ends and usage starts again at zero.
    pub resets_at: Timestamp,
    /// A notice this call raised, if it crossed a threshold (boxed: rare, and it keeps
    /// the decision small on the hot path).
    pub event: Option<Box<QuotaEvent>>,
}

/// The verdict on one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Within the limit.
    Within,
    /// Over the limit but under the hard cap: served, and the company is notified.
    OverLimit,
    /// Over the hard cap: refused, nothing counted.
    Refused,
}

/// Why a call or an administrative change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaError {
    /// The API key is not registered (shown redacted).
    UnknownKey(KeyRef),
    /// The key's user is disabled.
    DisabledUser {
        /// The user.
        user: String,
    },
    /// The company is not registered.
    UnknownCompany(String),
    /// The user is not registered.
    UnknownUser(String),
    /// The key is already registered (shown redacted).
    DuplicateKey(KeyRef),
    /// A plan or limit problem.
    Plan(PlanError),
    /// A period problem (bad time zone, timestamp out of range).
    Period(PeriodError),
    /// The store deciding the quota (a shared counter) could not decide.
    Unavailable(String),
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaError::UnknownKey(k) => write!(f, "unknown API key {k}"),
            QuotaError::DisabledUser { user } => write!(f, "user {user:?} is disabled"),
            QuotaError::UnknownCompany(c) => write!(f, "unknown company {c:?}"),
            QuotaError::UnknownUser(u) => write!(f, "unknown user {u:?}"),
            QuotaError::DuplicateKey(k) => write!(f, "API key {k} is already registered"),
            QuotaError::Plan(e) => e.fmt(f),
            QuotaError::Period(e) => e.fmt(f),
            QuotaError::Unavailable(why) => write!(f, "quota store unavailable: {why}"),
        }
    }
}

impl std::error::Error for QuotaError {}

impl From<PlanError> for QuotaError {
    fn from(e: PlanError) -> Self {
        QuotaError::Plan(e)
    }
}

impl From<PeriodError> for QuotaError {
    fn from(e: PeriodError) -> Self {
        QuotaError::Period(e)
    }
}

/// Journaled usage of one company or user: `(period_start, used)` pairs.
type RestoredRows = Vec<(i64, u64)>;

/// Journaled notices of one company: `(period label, kind)`.
type RaisedNotices = HashSet<(String, NoticeKind)>;

/// One period's counter.
#[derive(Debug)]
struct PeriodUsage {
    period: Period,
    /// The period's bounds in Unix nanoseconds, `[start, end)`, for the hot path.
    start_ns: i128,
    end_ns: i128,
    counter: Counter,
    /// The usage the journal has been handed so far (only the journal's writer thread
    /// changes it, under the journal's lock).
    journaled: AtomicU64,
}

impl PeriodUsage {
    fn new(period: Period) -> Self {
        PeriodUsage::restored(period, Counter::new(), 0)
    }

    fn restored(period: Period, counter: Counter, journaled: u64) -> Self {
        PeriodUsage {
            start_ns: period.start().as_nanosecond(),
            end_ns: period.end().as_nanosecond(),
            period,
            counter,
            journaled: AtomicU64::new(journaled),
        }
    }

    fn contains(&self, now: i128) -> bool {
        self.start_ns <= now && now < self.end_ns
    }
}

/// Counters of one company or user: every period counted so far. Periods are never
/// removed (they stay for reports), so the hot path reads the current one by index,
/// without reference counting.
#[derive(Debug)]
struct Usage {
    /// Every period counted, in the order they were created.
    periods: boxcar::Vec<PeriodUsage>,
    /// Index in `periods` of the current (latest) period.
    current: AtomicUsize,
    /// Serializes the creation of periods.
    roll: Mutex<()>,
}

impl Usage {
    fn new(period: Period) -> Self {
        let periods = boxcar::Vec::new();
        let current = periods.push(PeriodUsage::new(period));
        Usage {
            periods,
            current: AtomicUsize::new(current),
            roll: Mutex::new(()),
        }
    }

    fn period(&self, index: usize) -> &PeriodUsage {
        // Indices come from `push`: the entry exists.
        &self.periods[index]
    }

    /// The counter of the period `now` (Unix nanoseconds) falls in and its index,
    /// rolling over (or finding an old one) if needed; `spec` is asked only then.
    #[inline]
    fn counter_at(
        &self,
        spec: impl FnOnce() -> PeriodSpec,
        now: i128,
    ) -> Result<(usize, &PeriodUsage), PeriodError> {
        let i = self.current.load(Ordering::Acquire);
        let cur = self.period(i);
        if cur.contains(now) {
            return Ok((i, cur));
        }
        self.counter_at_slow(spec(), now)
    }

    #[cold]
    fn counter_at_slow(
        &self,
        spec: PeriodSpec,
        now: i128,
    ) -> Result<(usize, &PeriodUsage), PeriodError> {
        let t = timestamp_of(now)?;
        let _roll = self.roll.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((i, u)) = self.periods.iter().find(|(_, u)| u.contains(now)) {
            // The current period (another thread rolled over first), or a finished one
            // (a late or replayed call counts there).
            return Ok((i, u));
        }
        let period = spec.try_period_at(t)?;
        let cur = self.period(self.current.load(Ordering::Acquire));
        let later = period.start() >= cur.period.end();
        let i = self.periods.push(PeriodUsage::new(period));
        if later {
            self.current.store(i, Ordering::Release);
        }
        Ok((i, self.period(i)))
    }

    /// Usage restored from journaled rows (`(period_start, used)`), current at `t`.
    fn restore(
        spec: &PeriodSpec,
        t: Timestamp,
        rows: &[(i64, u64)],
        notices: &RaisedNotices,
    ) -> Result<Self, PeriodError> {
        let current_period = spec.try_period_at(t)?;
        let periods = boxcar::Vec::new();
        let mut current = None;
        for &(start, used) in rows {
            let at =
                Timestamp::from_second(start).map_err(|_| PeriodError::TimestampOutOfRange {
                    unix_nanos: i128::from(start) * 1_000_000_000,
                })?;
            let period = spec.try_period_at(at)?;
            let label = period.label();
            let counter = Counter::restored(
                used,
                notices.contains(&(label.clone(), NoticeKind::Warning)),
                notices.contains(&(label, NoticeKind::Overage)),
            );
            let i = periods.push(PeriodUsage::restored(period, counter, used));
            if period == current_period {
                current = Some(i);
            }
        }
        let current = current.unwrap_or_else(|| periods.push(PeriodUsage::new(current_period)));
        Ok(Usage {
            periods,
            current: AtomicUsize::new(current),
            roll: Mutex::new(()),
        })
    }

    /// Every period, oldest first.
    fn periods(&self) -> Vec<&PeriodUsage> {
        let mut all: Vec<_> = self.periods.iter().map(|(_, u)| u).collect();
        all.sort_by_key(|u| u.period.start());
        all
    }
}

/// A company's settings: replaced whole by [`Ledger::upsert_company`].
#[derive(Debug)]
struct Settings {
    company: Company,
    spec: PeriodSpec,
}

/// A company as registered. Administrative changes replace its settings; its usage and
/// idempotency keys stay, so no count is lost or split by an update.
#[derive(Debug)]
struct CompanyEntry {
    id: String,
    /// Read on the hot path: `settings.limit.calls`.
    limit: AtomicU64,
    /// Read only on slow paths (a new period, a notice, reports).
    settings: ArcSwap<Settings>,
    usage: Usage,
    /// Idempotency keys of committed reservations, per period start.
    committed: Mutex<HashMap<Timestamp, HashSet<String>>>,
}

#[derive(Debug)]
struct UserEntry {
    id: String,
    company: Arc<CompanyEntry>,
    disabled: AtomicBool,
    usage: Usage,
}

/// Companies and users by id, for administrative changes, reports and the journal's
/// collector (never on the hot path).
#[derive(Debug, Default)]
struct Directory {
    companies: HashMap<String, Arc<CompanyEntry>>,
    users: HashMap<String, Arc<UserEntry>>,
}

/// API key fingerprint -> its user: read lock-free on every call.
type KeyMap = papaya::HashMap<u128, Arc<UserEntry>, FingerprintBuildHasher>;

// API keys are not kept: the ledger keeps a 128-bit fingerprint of each (tollgate-core's
// `Fingerprinter`, random per-ledger seeds). Two keys share a fingerprint with probability
// 2^-128 per pair; a secret that is never stored cannot leak from memory dumps or debug
// output either. Comparing fingerprints also spares the hot path a string comparison.

/// Where a call would be charged, for a quota decided by a counter shared with other
/// ledgers (a fleet of instances counting on Redis): see [`Ledger::target`] and
/// [`Ledger::record_shared`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaTarget {
    /// The company charged.
    pub company: String,
    /// The user charged.
    pub user: String,
    /// The period the call falls in: start (Unix seconds).
    pub period_start: i64,
    /// The period's end (Unix seconds, exclusive).
    pub period_end: i64,
    /// The period's label, e.g. "2026-11".
    pub period: String,
    /// The company's limit for the period.
    pub limit: u64,
    /// Usage above which calls are refused (`None`: never refused).
    pub hard_cap: Option<u64>,
    /// The company's usage in the period as *this* ledger counted it: the calls it
    /// recorded, including what its journal restored.
    pub local_used: u64,
}

/// What a shared counter decided for one call (see [`Ledger::record_shared`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedCharge {
    /// The call was counted: the shared usage went from `prev` to `used`.
    Counted {
        /// Shared usage before the call.
        prev: u64,
        /// Shared usage after the call.
        used: u64,
    },
    /// The call was refused (over the hard cap) and counted nothing.
    Refused {
        /// Shared usage.
        used: u64,
    },
}

/// Calls reserved before their cost is known; commit or refund it.
#[derive(Debug)]
#[must_use = "a reservation holds quota until it is committed or refunded"]
pub struct Reservation {
    user: Arc<UserEntry>,
    /// Indices of the periods charged, in the company's and the user's usage.
    company_period: usize,
    user_period: usize,
    cost: u64,
    /// The decision made when reserving.
    pub decision: QuotaDecision,
}

impl Reservation {
    /// The reservation of `cost` that `decision` made: a refused one holds nothing.
    fn of(
        user: Arc<UserEntry>,
        company_period: usize,
        user_period: usize,
        cost: u64,
        decision: QuotaDecision,
    ) -> Self {
        let held = if decision.outcome == Outcome::Refused {
            0
        } else {
            cost
        };
        Reservation {
            user,
            company_period,
            user_period,
            cost: held,
            decision,
        }
    }

    /// What the reservation holds (0 when it was refused).
    pub fn held(&self) -> u64 {
        self.cost
    }

    /// The company charged.
    pub fn company(&self) -> &str {
        &self.user.company.id
    }

    /// The period charged: its start and end (Unix seconds) and its label.
    pub fn period(&self) -> (i64, i64, String) {
        let p = &self.user.company.usage.period(self.company_period).period;
        (p.start().as_second(), p.end().as_second(), p.label())
    }
}

/// What happened to a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitOutcome {
    /// The final cost was recorded.
    Committed,
    /// A commit with the same idempotency key was already recorded in this period: this
    /// one was released and counted nothing.
    Duplicate,
}

/// The in-memory usage ledger. See the [module docs](self).
pub struct Ledger {
    config: QuotaConfig,
    keys: KeyMap,
    fingerprints: Fingerprinter,
    /// Shared with the journal's collector.
    directory: Arc<Mutex<Directory>>,
    events: Mutex<Vec<QuotaEvent>>,
    /// Where every change is journaled, if durable.
    journal: Option<Journal>,
    /// Journaled state not yet claimed by a registered company or user.
    restored: Mutex<Snapshot>,
    /// Notices that could not be journaled, so were not raised (at most once).
    journal_errors: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.directory();
        f.debug_struct("Ledger")
            .field("companies", &d.companies.len())
            .field("users", &d.users.len())
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Usage of one company or user in one period, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The company.
    pub company: String,
    /// The user, for per-user rows.
    pub user: Option<String>,
    /// The period's label.
    pub period: String,
    /// Calls counted.
    pub used: u64,
}

/// A company's statement for one period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// The company.
    pub company: String,
    /// The period's label.
    pub period: String,
    /// Calls counted.
    pub used: u64,
    /// The limit (as configured now).
    pub limit: u64,
    /// Calls above the limit.
    pub overage: u64,
}

#[inline]
fn percent_of(limit: u64, percent: u32) -> u64 {
    // The u64 form divides by a constant (a multiplication); u128 only when it overflows.
    match limit.checked_mul(u64::from(percent)) {
        Some(x) => x / 100,
        None => u64::try_from(u128::from(limit) * u128::from(percent) / 100).unwrap_or(u64::MAX),
    }
}

fn timestamp_of(nanos: i128) -> Result<Timestamp, PeriodError> {
    Timestamp::from_nanosecond(nanos)
        .map_err(|_| PeriodError::TimestampOutOfRange { unix_nanos: nanos })
}

impl Ledger {
    /// An empty ledger.
    pub fn new(config: QuotaConfig) -> Self {
        Ledger {
            config,
            keys: KeyMap::with_hasher(FingerprintBuildHasher),
            fingerprints: Fingerprinter::new(),
            directory: Arc::new(Mutex::new(Directory::default())),
            events: Mutex::new(Vec::new()),
            journal: None,
            restored: Mutex::new(Snapshot::default()),
            journal_errors: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A ledger whose every change is written to `journal`, restoring the usage, notices
    /// and committed idempotency keys in `snapshot` (what [`Journal::open`] returned).
    /// Restored usage is attached to a company or user when it is registered
    /// ([`Ledger::upsert_company`], [`Ledger::add_user`]), so a restart re-registers them
    /// and carries on counting. A notice is raised only once its journal entry is durable,
    /// so it is raised at most once across restarts.
    pub fn with_journal(config: QuotaConfig, journal: Journal, snapshot: Snapshot) -> Self {
        let mut l = Ledger::new(config);
        let directory = Arc::clone(&l.directory);
        journal.set_collector(Box::new(move |batch| {
            collect_usage(&directory.lock().unwrap_or_else(|p| p.into_inner()), batch);
        }));
        l.journal = Some(journal);
        l.restored = Mutex::new(snapshot);
        l
    }

    /// The journal, if this ledger is durable (to `wait` on, `flush` or report from).
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// A ticket covering every call the calling thread recorded, reserved, committed or
    /// refunded so far; `None` without a journal. Lock-free: strict callers take one
    /// after `record` and wait on it ([`Journal::wait`]) before answering, or call
    /// [`Ledger::sync`].
    pub fn ticket(&self) -> Option<Ticket> {
        self.journal.as_ref().map(Journal::ticket)
    }

    /// Waits until every call the calling thread recorded (reserved, committed,
    /// refunded) so far is committed to the journal: on disk in
    /// [`Durability::Strict`](crate::journal::Durability::Strict) mode. Concurrent
    /// callers share one transaction (group commit). Without a journal, returns at once.
    pub fn sync(&self) -> Result<(), JournalError> {
        match &self.journal {
            Some(j) => j.wait(j.ticket()),
            None => Ok(()),
        }
    }

    /// Notices that were not raised because their journal entry failed.
    pub fn journal_errors(&self) -> u64 {
        self.journal_errors.load(Ordering::Relaxed)
    }

    /// Takes the journaled rows of `company` (and `user`, or the company total if `None`):
    /// `(period_start, used)` pairs, plus the notices raised for the company.
    fn take_restored(&self, company: &str, user: Option<&str>) -> (RestoredRows, RaisedNotices) {
        let mut snap = self.restored.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows = Vec::new();
        snap.usage.retain(|r| {
            if r.company == company && r.user.as_deref() == user {
                rows.push((r.period_start, u64::try_from(r.calls).unwrap_or(0)));
                false
            } else {
                true
            }
        });
        let notices = snap
            .notices
            .iter()
            .filter(|n| n.company == company)
            .map(|n| (n.period.clone(), n.kind))
            .collect();
        (rows, notices)
    }

    fn directory(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.directory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers or updates a company (units, subscriptions, override, time zone) at
    /// `now` (Unix nanoseconds). Its usage so far is kept: a machine added mid-month
    /// raises the limit at once. `time_zone` overrides the configured period's zone.
    pub fn upsert_company(
        &self,
        company: Company,
        time_zone: Option<&str>,
        now: i128,
    ) -> Result<QuotaLimit, QuotaError> {
        let limit = self.config.plans.limit_for(&company)?;
        let spec = match time_zone {
            Some(tz) => PeriodSpec::new(
                self.config.period.kind(),
                tz,
                self.config.period.anchor_day(),
            )?,
            None => self.config.period.clone(),
        };
        let t = timestamp_of(now)?;
        let period = spec.try_period_at(t)?;
        let settings = Settings {
            company: company.clone(),
            spec: spec.clone(),
        };
        let mut d = self.directory();
        if let Some(old) = d.companies.get(&company.id) {
            old.settings.store(Arc::new(settings));
            old.limit.store(limit.calls, Ordering::Relaxed);
            return Ok(limit);
        }
        let (rows, notices) = self.take_restored(&company.id, None);
        let usage = if rows.is_empty() {
            Usage::new(period)
        } else {
            Usage::restore(&spec, t, &rows, &notices)?
        };
        let mut committed: HashMap<Timestamp, HashSet<String>> = HashMap::new();
        let snap = self.restored.lock().unwrap_or_else(|p| p.into_inner());
        for c in snap.commits.iter().filter(|c| c.company == company.id) {
            if let Ok(at) = Timestamp::from_second(c.period_start) {
                committed
                    .entry(at)
                    .or_default()
                    .insert(c.idempotency_key.clone());
            }
        }
        drop(snap);
        let entry = CompanyEntry {
            id: company.id.clone(),
            limit: AtomicU64::new(limit.calls),
            settings: ArcSwap::from_pointee(settings),
            usage,
            committed: Mutex::new(committed),
        };
        d.companies.insert(company.id.clone(), Arc::new(entry));
        Ok(limit)
    }

    /// Registers a user of `company` (a user already registered is left as it is).
    pub fn add_user(&self, user: &str, company: &str, now: i128) -> Result<(), QuotaError> {
        let t = timestamp_of(now)?;
        let mut d = self.directory();
        let c = d
            .companies
            .get(company)
            .ok_or_else(|| QuotaError::UnknownCompany(company.to_owned()))?;
        if d.users.contains_key(user) {
            return Ok(());
        }
        let (rows, _) = self.take_restored(company, Some(user));
        let usage = Usage::restore(&c.settings.load().spec, t, &rows, &HashSet::new())?;
        let entry = Arc::new(UserEntry {
            id: user.to_owned(),
            company: Arc::clone(c),
            disabled: AtomicBool::new(false),
            usage,
        });
        d.users.insert(user.to_owned(), entry);
        Ok(())
    }

    /// Adds an API key for `user`. Keys are rotated by adding the new one and removing
    /// the old; usage follows the user, not the key.
    pub fn add_key(&self, key: &str, user: &str) -> Result<(), QuotaError> {
        let d = self.directory();
        let u = d
            .users
            .get(user)
            .ok_or_else(|| QuotaError::UnknownUser(user.to_owned()))?;
        let fp = self.fingerprints.of(key);
        match self.keys.pin().try_insert(fp, Arc::clone(u)) {
            Ok(_) => Ok(()),
            Err(_) => Err(QuotaError::DuplicateKey(KeyRef::of(key))),
        }
    }

    /// Removes an API key; returns whether it was registered.
    pub fn remove_key(&self, key: &str) -> bool {
        self.keys.pin().remove(&self.fingerprints.of(key)).is_some()
    }

    /// Disables or re-enables a user: a disabled user's keys are refused.
    pub fn set_user_disabled(&self, user: &str, disabled: bool) -> Result<(), QuotaError> {
        let d = self.directory();
        let u = d
            .users
            .get(user)
            .ok_or_else(|| QuotaError::UnknownUser(user.to_owned()))?;
        u.disabled.store(disabled, Ordering::Relaxed);
        Ok(())
    }

    /// The user holding `key`, if the key is known and the user enabled.
    fn resolve<'g>(
        &self,
        keys: &'g papaya::HashMapRef<
            '_,
            u128,
            Arc<UserEntry>,
            FingerprintBuildHasher,
            impl papaya::Guard,
        >,
        key: &str,
    ) -> Result<&'g Arc<UserEntry>, QuotaError> {
        let user = keys
            .get(&self.fingerprints.of(key))
            .ok_or_else(|| QuotaError::UnknownKey(KeyRef::of(key)))?;
        if user.disabled.load(Ordering::Relaxed) {
            return Err(QuotaError::DisabledUser {
                user: user.id.clone(),
            });
        }
        Ok(user)
    }

    /// Records a call of `cost` by the holder of `key` at `now` (Unix nanoseconds) and
    /// decides it. A refused call counts nothing.
    pub fn record(&self, key: &str, cost: u64, now: i128) -> Result<QuotaDecision, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key)?;
        self.charge(user, cost, now, |d, _, _| d)
    }

    /// Charges `cost` to `user` and its company at `now` and hands the decision and the
    /// indices of the two period counters charged to `then`.
    #[inline(always)]
    fn charge<R>(
        &self,
        user: &UserEntry,
        cost: u64,
        now: i128,
        then: impl FnOnce(QuotaDecision, usize, usize) -> R,
    ) -> Result<R, QuotaError> {
        let company = &*user.company;
        let spec = || company.settings.load().spec.clone();
        let (ci, cc) = company.usage.counter_at(spec, now)?;
        let (ui, uc) = user.usage.counter_at(spec, now)?;
        let limit = company.limit.load(Ordering::Relaxed);
        let cap = self
            .config
            .hard_cap_percent
            .map_or(u64::MAX, |p| percent_of(limit, p));
        let mut decision = QuotaDecision {
            outcome: Outcome::Refused,
            used: 0,
            limit,
            resets_at: cc.period.end(),
            event: None,
        };
        match cc.counter.charge(cost, Some(cap)) {
            Charge::Refused { used } => decision.used = used,
            Charge::Counted { prev, used } => {
                uc.counter.add(cost);
                decision.used = used;
                decision.outcome = if used > limit {
                    Outcome::OverLimit
                } else {
                    Outcome::Within
                };
                let warning = self.config.warning_percent.map(|w| percent_of(limit, w));
                if let Some(kind) = cc.counter.crossing(prev, used, limit, warning) {
                    let company = &company.settings.load().company;
                    decision.event = self
                        .notice(company, &cc.period, kind, used, limit, now)
                        .map(Box::new);
                }
            }
        }
        Ok(then(decision, ci, ui))
    }

    /// Where a call of `key` at `now` would be charged, and this ledger's own count for
    /// the company and period, without charging anything. Unknown keys and disabled users
    /// are errors, as in [`record`](Self::record).
    pub fn target(&self, key: &str, now: i128) -> Result<QuotaTarget, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key)?;
        let company = &*user.company;
        let spec = || company.settings.load().spec.clone();
        let (_, cc) = company.usage.counter_at(spec, now)?;
        let limit = company.limit.load(Ordering::Relaxed);
        Ok(QuotaTarget {
            company: company.id.clone(),
            user: user.id.clone(),
            period_start: cc.period.start().as_second(),
            period_end: cc.period.end().as_second(),
            period: cc.period.label(),
            limit,
            hard_cap: self.config.hard_cap_percent.map(|p| percent_of(limit, p)),
            local_used: cc.counter.used(),
        })
    }

    /// Records a call whose quota a shared counter decided (see [`QuotaTarget`]): a
    /// counted call adds `cost` to this ledger's user and company counters (journaled
    /// like any call, so the ledger keeps this instance's share durably) without this
    /// ledger's own hard-cap check, and the outcome and notices follow the *shared*
    /// usage. A notice is raised when the shared counter crossed a threshold and this
    /// ledger has not raised it for the company and period before (exactly once per
    /// ledger; the shared store sees a crossing once per counter). A refused call counts
    /// nothing.
    pub fn record_shared(
        &self,
        key: &str,
        cost: u64,
        now: i128,
        shared: SharedCharge,
    ) -> Result<QuotaDecision, QuotaError> {
        self.charge_shared(key, cost, now, shared, |d, _, _, _| d)
    }

    /// [`reserve`](Self::reserve) for a quota decided by a shared counter (see
    /// [`record_shared`](Self::record_shared)): a counted reservation holds `cost` in
    /// this ledger's counters until it is settled ([`commit_shared`](Self::commit_shared)
    /// or [`refund`](Self::refund)); a refused one holds nothing.
    pub fn reserve_shared(
        &self,
        key: &str,
        cost: u64,
        now: i128,
        shared: SharedCharge,
    ) -> Result<Reservation, QuotaError> {
        self.charge_shared(key, cost, now, shared, |decision, user, ci, ui| {
            Reservation::of(user, ci, ui, cost, decision)
        })
    }

    fn charge_shared<R>(
        &self,
        key: &str,
        cost: u64,
        now: i128,
        shared: SharedCharge,
        then: impl FnOnce(QuotaDecision, Arc<UserEntry>, usize, usize) -> R,
    ) -> Result<R, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key)?;
        let company = &*user.company;
        let spec = || company.settings.load().spec.clone();
        let (ci, cc) = company.usage.counter_at(spec, now)?;
        let (ui, uc) = user.usage.counter_at(spec, now)?;
        let limit = company.limit.load(Ordering::Relaxed);
        let mut decision = QuotaDecision {
            outcome: Outcome::Refused,
            used: 0,
            limit,
            resets_at: cc.period.end(),
            event: None,
        };
        match shared {
            SharedCharge::Refused { used } => decision.used = used,
            SharedCharge::Counted { prev, used } => {
                cc.counter.add(cost);
                uc.counter.add(cost);
                decision.used = used;
                decision.outcome = if used > limit {
                    Outcome::OverLimit
                } else {
                    Outcome::Within
                };
                let warning = self.config.warning_percent.map(|w| percent_of(limit, w));
                // Only the call that took the *shared* count across a threshold notifies:
                // the other ledgers sharing the counter see it already crossed.
                let crossed = (prev <= limit && used > limit)
                    || warning.is_some_and(|w| prev < w && used >= w);
                if let Some(kind) = crossed
                    .then(|| cc.counter.crossing(prev, used, limit, warning))
                    .flatten()
                {
                    let company = &company.settings.load().company;
                    decision.event = self
                        .notice(company, &cc.period, kind, used, limit, now)
                        .map(Box::new);
                }
            }
        }
        Ok(then(decision, Arc::clone(user), ci, ui))
    }

    /// Builds the notice for a crossing, journals it durably (if journaled) and queues it
    /// for [`Ledger::drain_events`]. A notice whose journal entry fails is not raised: it
    /// is counted in [`Ledger::journal_errors`] instead, so no notice is ever raised twice.
    #[cold]
    fn notice(
        &self,
        company: &Company,
        period: &Period,
        kind: Crossing,
        used: u64,
        limit: u64,
        now: i128,
    ) -> Option<QuotaEvent> {
        if let Some(j) = &self.journal {
            let entry = Entry::Notice {
                company: company.id.clone(),
                period: period.label(),
                kind: match kind {
                    Crossing::Warning => NoticeKind::Warning,
                    Crossing::Overage => NoticeKind::Overage,
                },
                raised_at: i64::try_from(now.div_euclid(1_000_000_000)).unwrap_or(i64::MAX),
            };
            if j.append_durable(entry).is_err() {
                self.journal_errors.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        let e = match kind {
            Crossing::Warning => QuotaEvent::Warning {
                company: company.id.clone(),
                period: period.label(),
                used,
                limit,
            },
            Crossing::Overage => QuotaEvent::Overage {
                company: company.id.clone(),
                period: period.label(),
                used,
                limit,
                suggested_plan: self
                    .config
                    .plans
                    .suggest_plan(company, used)
                    .map(|p| p.name.clone()),
            },
        };
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone());
        Some(e)
    }

    /// Takes the notices raised so far (oldest first).
    pub fn drain_events(&self) -> Vec<QuotaEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reserves `cost` for a call whose final cost is known only afterwards: it counts
    /// at once (so concurrent calls see it) and is settled by [`Ledger::commit`] or
    /// [`Ledger::refund`]. A refused reservation is an `Ok` whose decision says so and
    /// which holds nothing.
    pub fn reserve(&self, key: &str, cost: u64, now: i128) -> Result<Reservation, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key)?;
        self.charge(user, cost, now, |decision, company_period, user_period| {
            Reservation::of(
                Arc::clone(user),
                company_period,
                user_period,
                cost,
                decision,
            )
        })
    }

    /// Settles a reservation at its final cost. With the same `idempotency_key` in the
    /// same period, only the first commit counts; a retried commit releases its hold and
    /// reports [`CommitOutcome::Duplicate`].
    pub fn commit(&self, r: Reservation, final_cost: u64, idempotency_key: &str) -> CommitOutcome {
        self.settle_commit(r, final_cost, idempotency_key, None)
    }

    /// [`commit`](Self::commit) for a quota decided by a shared counter, which already
    /// decided whether `idempotency_key` was seen in the period (by any ledger sharing
    /// it): `first` says so. The key is remembered here too.
    pub fn commit_shared(
        &self,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
        first: bool,
    ) -> CommitOutcome {
        self.settle_commit(r, final_cost, idempotency_key, Some(first))
    }

    fn settle_commit(
        &self,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
        first: Option<bool>,
    ) -> CommitOutcome {
        let company = &*r.user.company;
        let company_period = company.usage.period(r.company_period);
        let new_here = company
            .committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(company_period.period.start())
            .or_default()
            .insert(idempotency_key.to_owned());
        let fresh = first.unwrap_or(new_here);
        let settle = if fresh { final_cost } else { 0 };
        let apply = || {
            company_period.counter.settle(r.cost, settle);
            r.user
                .usage
                .period(r.user_period)
                .counter
                .settle(r.cost, settle);
        };
        match &self.journal {
            // The idempotency key and the settled usage land in the same batch.
            Some(j) => {
                let key = new_here.then(|| Entry::Commit {
                    company: company.id.clone(),
                    period_start: company_period.period.start().as_second(),
                    idempotency_key: idempotency_key.to_owned(),
                });
                j.append_with(key, apply);
            }
            None => apply(),
        }
        if fresh {
            CommitOutcome::Committed
        } else {
            CommitOutcome::Duplicate
        }
    }

    /// Releases a reservation: the call failed and is not billed.
    pub fn refund(&self, r: Reservation) {
        let company = &*r.user.company;
        company
            .usage
            .period(r.company_period)
            .counter
            .settle(r.cost, 0);
        r.user.usage.period(r.user_period).counter.settle(r.cost, 0);
    }

    /// Usage per company and period, sorted by company then period.
    pub fn company_usage(&self) -> Vec<UsageRow> {
        let d = self.directory();
        let mut rows: Vec<UsageRow> = d
            .companies
            .values()
            .flat_map(|c| {
                c.usage.periods().into_iter().map(|p| UsageRow {
                    company: c.id.clone(),
                    user: None,
                    period: p.period.label(),
                    used: p.counter.used(),
                })
            })
            .collect();
        rows.sort_by(|a, b| (&a.company, &a.period).cmp(&(&b.company, &b.period)));
        rows
    }

    /// Usage per user and period, sorted by company, user, period.
    pub fn user_usage(&self) -> Vec<UsageRow> {
        let d = self.directory();
        let mut rows: Vec<UsageRow> = d
            .users
            .values()
            .flat_map(|u| {
                u.usage.periods().into_iter().map(|p| UsageRow {
                    company: u.company.id.clone(),
                    user: Some(u.id.clone()),
                    period: p.period.label(),
                    used: p.counter.used(),
                })
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.company, &a.user, &a.period).cmp(&(&b.company, &b.user, &b.period))
        });
        rows
    }

    /// Period-end statements: per company and period, usage, the current limit and the
    /// overage.
    pub fn statements(&self) -> Vec<Statement> {
        let limits: BTreeMap<String, u64> = self
            .directory()
            .companies
            .values()
            .map(|c| (c.id.clone(), c.limit.load(Ordering::Relaxed)))
            .collect();
        self.company_usage()
            .into_iter()
            .map(|row| {
                let limit = limits.get(&row.company).copied().unwrap_or(0);
                Statement {
                    overage: row.used.saturating_sub(limit),
                    company: row.company,
                    period: row.period,
                    used: row.used,
                    limit,
                }
            })
            .collect()
    }

    /// Usage rows as CSV: `company,user,period,used` with a header line.
    pub fn usage_csv(rows: &[UsageRow]) -> String {
        let mut out = String::from("company,user,period,used\n");
        for r in rows {
            out.push_str(&csv_field(&r.company));
            out.push(',');
            out.push_str(&csv_field(r.user.as_deref().unwrap_or("")));
            out.push(',');
            out.push_str(&csv_field(&r.period));
            out.push(',');
            out.push_str(&r.used.to_string());
            out.push('\n');
        }
        out
    }
}

/// The journal entry for `calls` (negative: given back) by `user` of `company` in `period`.
fn usage_entry(company: &str, user: &str, period: &Period, calls: i64) -> Entry {
    Entry::Usage {
        company: company.to_owned(),
        user: Some(user.to_owned()),
        period_start: period.start().as_second(),
        period: period.label(),
        calls,
    }
}

/// The journal's collector: adds, for every user and period whose usage changed since the
/// last batch, the difference as one usage entry (which adds to the user's row and the
/// company total row in the same transaction). Runs on the journal's writer thread, under
/// the journal's lock; the hot path never touches the journal.
///
/// Only user counters are read: every counted call adds to its user's counter and its
/// company's, so the company row stays the sum of its users' rows.
fn collect_usage(directory: &Directory, batch: &mut Vec<Entry>) {
    for user in directory.users.values() {
        let mut push = |u: &PeriodUsage| {
            let now = u.counter.used();
            let before = u.journaled.load(Ordering::Relaxed);
            if now == before {
                return;
            }
            // A difference beyond i64 (not reachable by real counts) goes in pieces: the
            // rest is taken by the next batch.
            let delta = i64::try_from(i128::from(now) - i128::from(before))
                .unwrap_or(if now > before { i64::MAX } else { i64::MIN });
            let journaled = i128::from(before) + i128::from(delta);
            u.journaled
                .store(u64::try_from(journaled).unwrap_or(now), Ordering::Relaxed);
            batch.push(usage_entry(&user.company.id, &user.id, &u.period, delta));
        };
        for (_, u) in user.usage.periods.iter() {
            push(u);
        }
    }
}

/// A CSV field, quoted when it contains a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    const KEY: &str = "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77";
    const KEY2: &str = "77aa0000-1111-2222-3333-444455556666";

    fn ns(rfc3339: &str) -> i128 {
        rfc3339.parse::<Timestamp>().unwrap().as_nanosecond()
    }

    /// Company "acme" with `units` machines, one user "alice" with KEY.
    fn ledger(units: u64, config: QuotaConfig) -> Ledger {
        let l = Ledger::new(config);
        let now = ns("2026-11-01T00:00:00Z");
        l.upsert_company(Company::new("acme").with_units(units, 0), None, now)
            .unwrap();
        l.add_user("alice", "acme", now).unwrap();
        l.add_key(KEY, "alice").unwrap();
        l
    }

    fn small_limits() -> QuotaConfig {
        let plans: Plans = toml::from_str(
            "[[plans]]\nname = \"free\"\ncalls_per_unit = 10\ndefault = true\n\
             [[plans]]\nname = \"API Access\"\ncalls = 100\n",
        )
        .unwrap();
        QuotaConfig {
            plans,
            ..QuotaConfig::default()
        }
    }

    #[test]
    fn target_and_record_shared_follow_the_shared_count() {
        let config = QuotaConfig {
            warning_percent: Some(80),
            hard_cap_percent: Some(150),
            ..QuotaConfig::default()
        };
        let l = ledger(1, config);
        let now = ns("2026-11-10T00:00:00Z");
        let t = l.target(KEY, now).unwrap();
        assert_eq!((t.company.as_str(), t.user.as_str()), ("acme", "alice"));
        assert_eq!(t.period, "2026-11");
        assert_eq!(t.limit, 100_000);
        assert_eq!(t.hard_cap, Some(150_000));
        assert_eq!(t.local_used, 0);
        assert_eq!(
            t.period_start,
            ns("2026-11-01T00:00:00Z") as i64 / 1_000_000_000
        );
        assert_eq!(
            t.period_end,
            ns("2026-12-01T00:00:00Z") as i64 / 1_000_000_000
        );
        // Other instances took the shared count to 79,999: this call crosses 80%.
        let d = l
            .record_shared(
                KEY,
                2,
                now,
                SharedCharge::Counted {
                    prev: 79_999,
                    used: 80_001,
                },
            )
            .unwrap();
        assert_eq!((d.outcome, d.used), (Outcome::Within, 80_001));
        assert!(matches!(
            d.event.as_deref(),
            Some(QuotaEvent::Warning { used: 80_001, .. })
        ));
        // Only this ledger's share is counted locally.
        assert_eq!(l.target(KEY, now).unwrap().local_used, 2);
        let d = l
            .record_shared(
                KEY,
                1,
                now,
                SharedCharge::Counted {
                    prev: 100_000,
                    used: 100_001,
                },
            )
            .unwrap();
        assert_eq!(d.outcome, Outcome::OverLimit);
        assert!(matches!(
            d.event.as_deref(),
            Some(QuotaEvent::Overage { .. })
        ));
        // The notice is raised once per ledger.
        let d = l
            .record_shared(
                KEY,
                1,
                now,
                SharedCharge::Counted {
                    prev: 100_001,
                    used: 100_002,
                },
            )
            .unwrap();
        assert!(d.event.is_none());
        let d = l
            .record_shared(KEY, 1, now, SharedCharge::Refused { used: 150_000 })
            .unwrap();
        assert_eq!((d.outcome, d.used), (Outcome::Refused, 150_000));
        assert_eq!(
            l.target(KEY, now).unwrap().local_used,
            4,
            "a refusal counts nothing"
        );
        assert_eq!(l.drain_events().len(), 2);
        // Another ledger sharing the counter, whose first call comes after both
        // crossings, raises nothing: the crossings were not its calls'.
        let other = ledger(1, QuotaConfig::default());
        let d = other
            .record_shared(
                KEY,
                1,
                now,
                SharedCharge::Counted {
                    prev: 100_005,
                    used: 100_006,
                },
            )
            .unwrap();
        assert_eq!(d.outcome, Outcome::OverLimit);
        assert!(d.event.is_none() && other.drain_events().is_empty());
        assert!(matches!(
            l.target("nope", now),
            Err(QuotaError::UnknownKey(_))
        ));
        l.set_user_disabled("alice", true).unwrap();
        assert!(matches!(
            l.target(KEY, now),
            Err(QuotaError::DisabledUser { .. })
        ));
    }

    #[test]
    fn within_over_refused_with_one_notice_each() {
        // limit 10, warning at 8, hard cap 15.
        let l = ledger(1, small_limits());
        let t = ns("2026-11-10T12:00:00Z");
        let mut outcomes = vec![];
        let mut events = vec![];
        for _ in 0..20 {
            let d = l.record(KEY, 1, t).unwrap();
            outcomes.push(d.outcome);
            events.extend(d.event.map(|e| *e));
            assert_eq!(d.limit, 10);
            assert_eq!(d.resets_at.to_string(), "2026-12-01T00:00:00Z");
        }
        assert!(outcomes[..10].iter().all(|o| *o == Outcome::Within));
        assert!(outcomes[10..15].iter().all(|o| *o == Outcome::OverLimit));
        assert!(outcomes[15..].iter().all(|o| *o == Outcome::Refused));
        assert_eq!(
            events,
            vec![
                QuotaEvent::Warning {
                    company: "acme".into(),
                    period: "2026-11".into(),
                    used: 8,
                    limit: 10
                },
                QuotaEvent::Overage {
                    company: "acme".into(),
                    period: "2026-11".into(),
                    used: 11,
                    limit: 10,
                    suggested_plan: Some("API Access".into())
                },
            ]
        );
        assert_eq!(l.drain_events(), events);
        assert!(l.drain_events().is_empty());
        assert_eq!(l.company_usage()[0].used, 15, "refused calls count nothing");
    }

    #[test]
    fn notices_are_raised_exactly_once_under_contention() {
        for _ in 0..20 {
            let l = ledger(1, small_limits());
            let t = ns("2026-11-10T12:00:00Z");
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..10 {
                            l.record(KEY, 1, t).unwrap();
                        }
                    });
                }
            });
            let events = l.drain_events();
            let overages = events
                .iter()
                .filter(|e| matches!(e, QuotaEvent::Overage { .. }))
                .count();
            let warnings = events.len() - overages;
            assert_eq!((overages, warnings), (1, 1), "{events:?}");
            assert_eq!(l.company_usage()[0].used, 15, "the hard cap holds exactly");
        }
    }

    #[test]
    fn periods_roll_over_and_old_totals_stay() {
        let l = ledger(1, small_limits());
        l.record(KEY, 4, ns("2026-11-30T23:59:59.999999999Z"))
            .unwrap();
        let d = l.record(KEY, 3, ns("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(d.used, 3, "a new period starts at zero");
        assert_eq!(d.resets_at.to_string(), "2027-01-01T00:00:00Z");
        // A late call stamped in November still counts in November.
        l.record(KEY, 1, ns("2026-11-15T00:00:00Z")).unwrap();
        let rows = l.company_usage();
        let got: Vec<(&str, u64)> = rows.iter().map(|r| (r.period.as_str(), r.used)).collect();
        assert_eq!(got, vec![("2026-11", 5), ("2026-12", 3)]);
        let users = l.user_usage();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].user.as_deref(), Some("alice"));
    }

    #[test]
    fn company_time_zone_decides_the_month() {
        let l = Ledger::new(small_limits());
        let now = ns("2026-11-01T00:00:00Z");
        l.upsert_company(
            Company::new("tokyo").with_units(1, 0),
            Some("Asia/Tokyo"),
            now,
        )
        .unwrap();
        l.add_user("u", "tokyo", now).unwrap();
        l.add_key(KEY, "u").unwrap();
        let d = l.record(KEY, 1, ns("2026-11-30T23:30:00Z")).unwrap();
        assert_eq!(d.used, 1);
        let rows = l.company_usage();
        let used: Vec<_> = rows.iter().filter(|r| r.used > 0).collect();
        assert_eq!(used.len(), 1);
        assert_eq!(
            used[0].period, "2026-12",
            "23:30 UTC on 30 November is December in Tokyo"
        );
        assert!(Ledger::new(small_limits())
            .upsert_company(Company::new("x"), Some("Mars/Olympus"), now)
            .is_err());
    }

    #[test]
    fn a_machine_added_mid_month_raises_the_limit_at_once() {
        let l = ledger(1, small_limits());
        let t = ns("2026-11-10T00:00:00Z");
        for _ in 0..12 {
            l.record(KEY, 1, t).unwrap();
        }
        assert_eq!(l.record(KEY, 1, t).unwrap().outcome, Outcome::OverLimit);
        let limit = l
            .upsert_company(Company::new("acme").with_units(2, 0), None, t)
            .unwrap();
        assert_eq!(limit.calls, 20);
        let d = l.record(KEY, 1, t).unwrap();
        assert_eq!((d.outcome, d.used, d.limit), (Outcome::Within, 14, 20));
        // One overage notice per period, even though the limit changed.
        for _ in 0..10 {
            l.record(KEY, 1, t).unwrap();
        }
        let overages = l
            .drain_events()
            .into_iter()
            .filter(|e| matches!(e, QuotaEvent::Overage { .. }))
            .count();
        assert_eq!(overages, 1);
    }

    #[test]
    fn keys_users_and_secrets() {
        let l = ledger(1, small_limits());
        let t = ns("2026-11-10T00:00:00Z");
        let e = l.record("not-a-key-0123456789", 1, t).unwrap_err();
        assert_eq!(e.to_string(), "unknown API key not-a-ke…");
        assert!(!format!("{e:?}").contains("0123456789"));
        l.record(KEY, 2, t).unwrap();
        // Rotation: the new key counts for the same user.
        l.add_key(KEY2, "alice").unwrap();
        assert!(l.remove_key(KEY));
        assert!(matches!(
            l.record(KEY, 1, t),
            Err(QuotaError::UnknownKey(_))
        ));
        assert_eq!(l.record(KEY2, 1, t).unwrap().used, 3);
        let e = l.add_key(KEY2, "alice").unwrap_err().to_string();
        assert!(e.contains("77aa0000…") && !e.contains("4444"), "{e}");
        l.set_user_disabled("alice", true).unwrap();
        assert_eq!(
            l.record(KEY2, 1, t),
            Err(QuotaError::DisabledUser {
                user: "alice".into()
            })
        );
        l.set_user_disabled("alice", false).unwrap();
        assert!(l.record(KEY2, 1, t).is_ok());
        assert!(l.add_user("bob", "nobody", t).is_err());
        assert!(l.add_key("k", "nobody").is_err());
    }

    #[test]
    fn reserve_commit_refund_and_idempotency() {
        let l = ledger(1, small_limits());
        let t = ns("2026-11-10T00:00:00Z");
        let r = l.reserve(KEY, 5, t).unwrap();
        assert_eq!(r.decision.used, 5);
        assert_eq!(l.commit(r, 2, "req-1"), CommitOutcome::Committed);
        assert_eq!(l.company_usage()[0].used, 2);
        // A retried commit of the same request counts once.
        let r = l.reserve(KEY, 5, t).unwrap();
        assert_eq!(l.commit(r, 2, "req-1"), CommitOutcome::Duplicate);
        assert_eq!(l.company_usage()[0].used, 2);
        // A failed request is not billed.
        let r = l.reserve(KEY, 3, t).unwrap();
        l.refund(r);
        assert_eq!(l.company_usage()[0].used, 2);
        assert_eq!(l.user_usage()[0].used, 2);
        // A cost found to be higher than reserved is counted in full.
        let r = l.reserve(KEY, 1, t).unwrap();
        assert_eq!(l.commit(r, 4, "req-2"), CommitOutcome::Committed);
        assert_eq!(l.company_usage()[0].used, 6);
        // A refused reservation holds nothing.
        let r = l.reserve(KEY, 100, t).unwrap();
        assert_eq!(r.decision.outcome, Outcome::Refused);
        l.refund(r);
        assert_eq!(l.company_usage()[0].used, 6);
    }

    #[test]
    fn a_journaled_ledger_carries_on_after_a_restart() {
        use crate::journal::{Durability, Journal};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let t = ns("2026-11-10T00:00:00Z");
        let register = |l: &Ledger| {
            l.upsert_company(Company::new("acme").with_units(1, 0), None, t)
                .unwrap();
            l.add_user("alice", "acme", t).unwrap();
            l.add_key(KEY, "alice").unwrap();
        };
        {
            let (j, snap) = Journal::open(&path, Durability::Strict).unwrap();
            let l = Ledger::with_journal(small_limits(), j, snap);
            register(&l);
            for _ in 0..11 {
                l.record(KEY, 1, t).unwrap();
            }
            let r = l.reserve(KEY, 3, t).unwrap();
            assert_eq!(l.commit(r, 1, "req-1"), CommitOutcome::Committed);
            let r = l.reserve(KEY, 2, t).unwrap();
            l.refund(r);
            assert_eq!(l.drain_events().len(), 2, "warning and overage");
            l.journal().unwrap().flush().unwrap();
        }
        let (j, snap) = Journal::open(&path, Durability::Strict).unwrap();
        assert_eq!(snap.notices.len(), 2);
        let l = Ledger::with_journal(small_limits(), j, snap);
        register(&l);
        assert_eq!(l.company_usage()[0].used, 12, "usage survives the restart");
        assert_eq!(l.user_usage()[0].used, 12);
        let d = l.record(KEY, 1, t).unwrap();
        assert_eq!((d.outcome, d.used), (Outcome::OverLimit, 13));
        assert!(
            l.drain_events().is_empty(),
            "no notice is raised twice across restarts"
        );
        // The committed idempotency key survives too.
        let r = l.reserve(KEY, 1, t).unwrap();
        assert_eq!(l.commit(r, 1, "req-1"), CommitOutcome::Duplicate);
        assert_eq!(l.company_usage()[0].used, 13);
        assert_eq!(l.journal_errors(), 0);
    }

    #[test]
    fn sync_makes_this_threads_calls_durable_at_once() {
        use crate::journal::{Durability, Journal};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let t = ns("2026-11-10T00:00:00Z");
        // A loss window far longer than the test: only sync (or a ticket) commits.
        let slow = Durability::BoundedLoss {
            max_delay: std::time::Duration::from_secs(600),
        };
        let (j, snap) = Journal::open(&path, slow).unwrap();
        let l = Arc::new(Ledger::with_journal(small_limits(), j, snap));
        l.upsert_company(Company::new("acme").with_override(10_000), None, t)
            .unwrap();
        l.add_user("alice", "acme", t).unwrap();
        l.add_user("bob", "acme", t).unwrap();
        l.add_key(KEY, "alice").unwrap();
        l.add_key(KEY2, "bob").unwrap();
        let journaled = |user: &str| -> i64 {
            let rows = l.journal().unwrap().usage_report().unwrap();
            rows.iter()
                .filter(|r| r.user.as_deref() == Some(user))
                .map(|r| r.calls)
                .sum()
        };
        l.record(KEY, 3, t).unwrap();
        assert_eq!(journaled("alice"), 0, "nothing is written per call");
        l.sync().unwrap();
        assert_eq!(journaled("alice"), 3);
        // Two threads; each one's ticket covers its own calls.
        let handles: Vec<_> = [KEY, KEY2]
            .into_iter()
            .map(|key| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        l.record(key, 1, t).unwrap();
                        let ticket = l.ticket().unwrap();
                        l.journal().unwrap().wait(ticket).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(journaled("alice"), 103);
        assert_eq!(journaled("bob"), 100);
        // A reservation held, then settled: the journal follows the counters.
        let r = l.reserve(KEY, 5, t).unwrap();
        l.sync().unwrap();
        assert_eq!(journaled("alice"), 108);
        assert_eq!(l.commit(r, 2, "req-1"), CommitOutcome::Committed);
        l.sync().unwrap();
        assert_eq!(journaled("alice"), 105);
        let r = l.reserve(KEY, 4, t).unwrap();
        l.refund(r);
        l.sync().unwrap();
        assert_eq!(journaled("alice"), 105);
        // Without a journal there is nothing to wait for.
        assert!(ledger(1, small_limits()).sync().is_ok());
        assert!(ledger(1, small_limits()).ticket().is_none());
    }

    #[test]
    fn racing_rollovers_count_every_call_in_its_own_period() {
        let l = ledger(
            1,
            QuotaConfig {
                hard_cap_percent: None,
                ..small_limits()
            },
        );
        let months = [
            ns("2026-10-31T23:59:59Z"),
            ns("2026-11-01T00:00:00Z"),
            ns("2026-12-01T00:00:00Z"),
        ];
        std::thread::scope(|s| {
            for t in 0..4 {
                let l = &l;
                s.spawn(move || {
                    for i in 0..3000 {
                        // Each thread walks the months in its own order, so rollovers,
                        // late calls and new periods race.
                        l.record(KEY, 1, months[(i + t) % 3]).unwrap();
                    }
                });
            }
        });
        let got: Vec<_> = l
            .company_usage()
            .into_iter()
            .map(|r| (r.period, r.used))
            .collect();
        let want = ["2026-10", "2026-11", "2026-12"].map(|p| (p.to_owned(), 4000));
        assert_eq!(got, want);
        assert_eq!(
            l.user_usage().iter().map(|r| r.used).collect::<Vec<_>>(),
            [4000; 3]
        );
    }

    #[test]
    fn many_keys_resolve_to_their_own_users() {
        let l = ledger(
            1,
            QuotaConfig {
                hard_cap_percent: None,
                ..small_limits()
            },
        );
        let t = ns("2026-11-10T00:00:00Z");
        for u in 0..50 {
            l.add_user(&format!("u{u}"), "acme", t).unwrap();
        }
        let key = |i: usize| format!("{i:08x}-0000-4000-8000-{i:012x}");
        for i in 0..5000 {
            l.add_key(&key(i), &format!("u{}", i % 50)).unwrap();
        }
        assert!(matches!(
            l.add_key(&key(7), "u1"),
            Err(QuotaError::DuplicateKey(_))
        ));
        for i in 0..5000 {
            l.record(&key(i), 1, t).unwrap();
        }
        for r in l
            .user_usage()
            .iter()
            .filter(|r| r.user.as_deref() != Some("alice"))
        {
            assert_eq!(r.used, 100, "{r:?}");
        }
        assert!(l.remove_key(&key(3)));
        assert!(!l.remove_key(&key(3)));
        assert!(matches!(
            l.record(&key(3), 1, t),
            Err(QuotaError::UnknownKey(_))
        ));
        // The ledger keeps no key: its debug output names none.
        assert!(!format!("{l:?}").contains(&key(4)));
    }

    #[test]
    fn reports_as_json_and_csv() {
        let l = ledger(1, small_limits());
        l.record(KEY, 12, ns("2026-11-10T00:00:00Z")).unwrap();
        let st = l.statements();
        assert_eq!(
            st,
            vec![Statement {
                company: "acme".into(),
                period: "2026-11".into(),
                used: 12,
                limit: 10,
                overage: 2
            }]
        );
        let json = serde_json::to_string(&st).unwrap();
        assert_eq!(
            json,
            r#"[{"company":"acme","period":"2026-11","used":12,"limit":10,"overage":2}]"#
        );
        let csv = Ledger::usage_csv(&l.user_usage());
        assert_eq!(csv, "company,user,period,used\nacme,alice,2026-11,12\n");
        let tricky = [UsageRow {
            company: "a,\"b\"".into(),
            user: None,
            period: "2026-11".into(),
            used: 1,
        }];
        assert_eq!(
            Ledger::usage_csv(&tricky),
            "company,user,period,used\n\"a,\"\"b\"\"\",,2026-11,1\n"
        );
        assert!(!Ledger::usage_csv(&l.user_usage()).contains(KEY));
    }
}
