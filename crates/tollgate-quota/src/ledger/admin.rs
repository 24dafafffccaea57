//! Administrative changes to the directory: companies registered or updated, users added
//! or disabled, API keys added and removed (rotation); and the journaled state a
//! registration takes over after a restart.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use jiff::Timestamp;

use crate::period::PeriodSpec;
use crate::plan::{Company, QuotaLimit};

use super::directory::{CompanyEntry, Settings, UserEntry};
use super::error::{KeyRef, QuotaError};
use super::state::Ledger;
use super::usage::{timestamp_of, RaisedNotices, RestoredRows, Usage};

impl Ledger {
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
        let entry = Arc::new(entry);
        d.companies.insert(company.id.clone(), Arc::clone(&entry));
        drop(d); // raising a notice waits for the journal, whose collector locks it
        if !rows.is_empty() {
            self.recover_notices(&entry, now);
        }
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
}
