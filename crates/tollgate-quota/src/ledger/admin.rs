//! Administrative changes to the directory: companies registered or updated, users added
//! or disabled, API keys added and removed (rotation); and the journaled state a
//! registration takes over after a restart.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use jiff::Timestamp;

use crate::period::PeriodSpec;
use crate::plan::{Company, QuotaLimit};

use super::config::QuotaConfig;
use super::directory::{
    CompanyEntry, CompanyStatus, Directory, KeyEntry, Settings, UserEntry, TERMINATED_BIT,
};
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

    /// Replaces the plans, the early-warning and hard-cap percentages and the notice
    /// redelivery delay of the running ledger at `now` (Unix nanoseconds), and recomputes
    /// every company's limit from the new plans; returns the companies whose limit
    /// changed, sorted.
    ///
    /// Mid-period rule (as for [`Ledger::upsert_company`]): the current period takes the
    /// new limit and thresholds for the whole period, its usage carries on; ended periods
    /// keep the limit that was in force during them (their statements). A notice already
    /// raised this period is not raised again; a threshold moved below the usage already
    /// counted raises its notice at the next counted call only if that call crosses it
    /// (so a lowered warning is not sent for this period once passed).
    ///
    /// Atomic: every company's new limit is computed first; if one cannot be (a plan it
    /// subscribes to is gone: [`QuotaError::Plan`]) nothing changes. The period itself
    /// (kind, time zone, anchor day) is not changed by this call: `config.period` is
    /// ignored, and a period change needs a restart.
    pub fn reconfigure(&self, config: QuotaConfig, now: i128) -> Result<Vec<String>, QuotaError> {
        let d = self.directory();
        let mut limits = Vec::with_capacity(d.companies.len());
        for c in d.companies.values() {
            let removed = c.status.load(Ordering::Relaxed) & !TERMINATED_BIT
                == CompanyStatus::Removed.to_u8();
            match config.plans.limit_for(&c.settings.load().company) {
                Ok(l) => limits.push((Arc::clone(c), l.calls)),
                // A removed company keeps its last limit (its statements).
                Err(_) if removed => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut config = config;
        config.period = self.config.load().period.clone();
        self.percents.set(&config);
        self.outbox()
            .set_redeliver_after(config.notice_redeliver_after);
        self.config.store(Arc::new(config));
        let mut changed = Vec::new();
        for (c, calls) in limits {
            let before = c.limit.load(Ordering::Relaxed);
            if before != calls {
                c.usage.freeze_ended(before, now);
                c.limit.store(calls, Ordering::Relaxed);
                changed.push(c.id.clone());
            }
        }
        drop(d);
        changed.sort();
        Ok(changed)
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
        let config = self.config.load();
        let limit = config.plans.limit_for(&company)?;
        let spec = match time_zone {
            Some(tz) => PeriodSpec::new(config.period.kind(), tz, config.period.anchor_day())?,
            None => config.period.clone(),
        };
        let t = timestamp_of(now)?;
        let period = spec.try_period_at(t)?;
        let settings = Settings {
            company: company.clone(),
            spec: spec.clone(),
        };
        let mut d = self.directory();
        if let Some(old) = d.companies.get(&company.id) {
            // Ended periods keep the limit that was in force during them (the
            // statement of a past period uses its own limit); the current period takes
            // the new one from now, for the whole period.
            let before = old.limit.load(Ordering::Relaxed);
            if before != limit.calls {
                old.usage.freeze_ended(before, now);
            }
            old.settings.store(Arc::new(settings));
            old.limit.store(limit.calls, Ordering::Relaxed);
            // A removed company registered again is active again, unless it was
            // terminated (that is for good).
            let status = old.status.load(Ordering::Relaxed);
            if status == CompanyStatus::Removed.to_u8() {
                old.status
                    .store(CompanyStatus::Active.to_u8(), Ordering::Relaxed);
            } else if status == CompanyStatus::Removed.to_u8() | TERMINATED_BIT {
                old.status
                    .store(CompanyStatus::Terminated.to_u8(), Ordering::Relaxed);
            }
            return Ok(limit);
        }
        let (rows, notices) = self.take_restored(&company.id, None);
        let usage = if rows.is_empty() {
            Usage::new(period)
        } else {
            Usage::restore(&spec, t, &rows, &notices)?
        };
        // The limits the journal holds for its periods: a past period's statement keeps
        // its own limit across the restart.
        {
            let mut snap = self.restored.lock().unwrap_or_else(|p| p.into_inner());
            let periods: HashMap<i64, &_> = usage
                .periods
                .iter()
                .map(|(_, u)| (u.period.start().as_second(), u))
                .collect();
            // Rows of periods this company counts are taken; any other stays for a
            // rewrite of the file.
            snap.period_limits.retain(|l| {
                match (l.company == company.id, periods.get(&l.period_start)) {
                    (true, Some(u)) => {
                        u.restore_limit(l.limit, now);
                        false
                    }
                    _ => true,
                }
            });
        }
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
            status: AtomicU8::new(CompanyStatus::Active.to_u8()),
        };
        let entry = Arc::new(entry);
        d.companies.insert(company.id.clone(), Arc::clone(&entry));
        drop(d); // raising a notice waits for the journal, whose collector locks it
        if !rows.is_empty() {
            self.recover_notices(&entry, now);
        }
        Ok(limit)
    }

    /// Registers a user of `company`. A user already registered with `company` is left
    /// as it is (a removed one is registered again, its usage kept); a user id belongs
    /// to one company for the ledger's life ([`QuotaError::UserOfOtherCompany`]).
    pub fn add_user(&self, user: &str, company: &str, now: i128) -> Result<(), QuotaError> {
        let t = timestamp_of(now)?;
        let mut d = self.directory();
        let c = d
            .companies
            .get(company)
            .filter(|c| c.status.load(Ordering::Relaxed) & 0x7f != CompanyStatus::Removed.to_u8())
            .ok_or_else(|| QuotaError::UnknownCompany(company.to_owned()))?;
        if let Some(u) = d.users.get(user) {
            if u.company.id != company {
                return Err(QuotaError::UserOfOtherCompany {
                    user: user.to_owned(),
                    company: u.company.id.clone(),
                });
            }
            if u.removed.swap(false, Ordering::Relaxed) {
                u.disabled.store(false, Ordering::Relaxed);
            }
            return Ok(());
        }
        let (rows, _) = self.take_restored(company, Some(user));
        let usage = Usage::restore(&c.settings.load().spec, t, &rows, &HashSet::new())?;
        let entry = Arc::new(UserEntry {
            id: user.to_owned(),
            company: Arc::clone(c),
            disabled: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            usage,
        });
        d.users.insert(user.to_owned(), entry);
        Ok(())
    }

    /// Adds an API key for `user`. Keys are rotated by adding the new one and removing
    /// the old ([`rotate_key`](Self::rotate_key)); usage follows the user, not the key.
    pub fn add_key(&self, key: &str, user: &str) -> Result<(), QuotaError> {
        let mut d = self.directory();
        let u = live_user(&d, user)?;
        // A rotated key whose grace period ended is gone, and may be added again.
        self.sweep_graced(&mut d, jiff::Timestamp::now().as_nanosecond());
        let fp = self.fingerprints.of(key);
        let entry = KeyEntry {
            user: u,
            until: i128::MAX,
        };
        match self.keys.pin().try_insert(fp, entry) {
            Ok(_) => {
                d.user_keys
                    .entry(user.to_owned())
                    .or_default()
                    .insert(fp, KeyRef::of(key));
                Ok(())
            }
            Err(_) => Err(QuotaError::DuplicateKey(KeyRef::of(key))),
        }
    }

    /// Removes an API key: refused from this moment. Returns whether it was registered.
    pub fn remove_key(&self, key: &str) -> bool {
        let mut d = self.directory();
        let fp = self.fingerprints.of(key);
        self.forget_key(&mut d, fp)
    }

    fn forget_key(&self, d: &mut Directory, fp: u128) -> bool {
        let Some(e) = self.keys.pin().remove(&fp).cloned() else {
            return false;
        };
        if let Some(keys) = d.user_keys.get_mut(&e.user.id) {
            keys.remove(&fp);
        }
        d.graced.retain(|(g, _)| *g != fp);
        true
    }

    /// Rotates `old` to `new` at `now`: `new` is added for `old`'s user (its usage and
    /// limits are the user's, so they carry on), and `old` is refused from `now +
    /// grace` (at once with no grace). Atomic: a decision sees either both keys or the
    /// new key and the old one in its grace period.
    pub fn rotate_key(
        &self,
        old: &str,
        new: &str,
        grace: Option<std::time::Duration>,
        now: i128,
    ) -> Result<(), QuotaError> {
        let mut d = self.directory();
        self.sweep_graced(&mut d, now);
        let old_fp = self.fingerprints.of(old);
        let new_fp = self.fingerprints.of(new);
        let keys = self.keys.pin();
        let user = match keys.get(&old_fp) {
            Some(e) if e.until > now => Arc::clone(&e.user),
            _ => return Err(QuotaError::UnknownKey(KeyRef::of(old))),
        };
        if old_fp == new_fp || keys.contains_key(&new_fp) {
            return Err(QuotaError::DuplicateKey(KeyRef::of(new)));
        }
        let id = user.id.clone();
        keys.insert(
            new_fp,
            KeyEntry {
                user: Arc::clone(&user),
                until: i128::MAX,
            },
        );
        d.user_keys
            .entry(id)
            .or_default()
            .insert(new_fp, KeyRef::of(new));
        match grace.filter(|g| !g.is_zero()) {
            Some(g) => {
                let until = now.saturating_add(i128::try_from(g.as_nanos()).unwrap_or(i128::MAX));
                keys.insert(old_fp, KeyEntry { user, until });
                d.graced.push((old_fp, until));
            }
            None => {
                drop(keys);
                self.forget_key(&mut d, old_fp);
            }
        }
        Ok(())
    }

    /// Removes the rotated keys whose grace period ended by `now`.
    fn sweep_graced(&self, d: &mut Directory, now: i128) {
        let ended: Vec<u128> = d
            .graced
            .iter()
            .filter(|(_, until)| *until <= now)
            .map(|(fp, _)| *fp)
            .collect();
        for fp in ended {
            self.forget_key(d, fp);
        }
    }

    /// Disables or re-enables a user: a disabled user's keys are refused.
    pub fn set_user_disabled(&self, user: &str, disabled: bool) -> Result<(), QuotaError> {
        let d = self.directory();
        let u = live_user(&d, user)?;
        u.disabled.store(disabled, Ordering::Relaxed);
        Ok(())
    }

    /// Removes a user: its keys are refused from this moment; its usage stays in its
    /// company's statements (and journal). [`add_user`](Self::add_user) with the same
    /// company registers it again.
    pub fn remove_user(&self, user: &str) -> Result<(), QuotaError> {
        let mut d = self.directory();
        let u = live_user(&d, user)?;
        // The flag first: every key of the user is refused from this store on (one
        // atomic step), then the keys are taken out.
        u.removed.store(true, Ordering::Relaxed);
        self.remove_user_keys(&mut d, &u);
        Ok(())
    }

    fn remove_user_keys(&self, d: &mut Directory, u: &UserEntry) {
        let fps: Vec<u128> = d
            .user_keys
            .get(&u.id)
            .map(|k| k.keys().copied().collect())
            .unwrap_or_default();
        for fp in fps {
            self.forget_key(d, fp);
        }
    }

    /// Removes a company: every key of its users is refused from this moment (as
    /// unknown); its usage is kept for billing statements. Registering it again
    /// ([`upsert_company`](Self::upsert_company)) makes it active again, with its
    /// usage, unless it was terminated.
    pub fn remove_company(&self, company: &str) -> Result<(), QuotaError> {
        let mut d = self.directory();
        let c = live_company(&d, company)?;
        // The status first: every key of the company is refused from this store on
        // (one atomic step), then its users' keys are taken out.
        let was = c.status.load(Ordering::Relaxed);
        let bit = if was == CompanyStatus::Terminated.to_u8() {
            TERMINATED_BIT
        } else {
            0
        };
        c.status
            .store(CompanyStatus::Removed.to_u8() | bit, Ordering::Relaxed);
        let users: Vec<Arc<UserEntry>> = d
            .users
            .values()
            .filter(|u| u.company.id == company)
            .cloned()
            .collect();
        for u in users {
            u.removed.store(true, Ordering::Relaxed);
            self.remove_user_keys(&mut d, &u);
        }
        Ok(())
    }

    /// Sets a company's status: [`CompanyStatus::Suspended`] refuses its keys
    /// ([`QuotaError::CompanySuspended`]) until set [`CompanyStatus::Active`] again;
    /// [`CompanyStatus::Terminated`] refuses them for good
    /// ([`QuotaError::CompanyTerminated`]; no later change is accepted). Usage is kept
    /// either way. Returns the previous status. [`CompanyStatus::Removed`] is
    /// [`remove_company`](Self::remove_company).
    pub fn set_company_status(
        &self,
        company: &str,
        status: CompanyStatus,
    ) -> Result<CompanyStatus, QuotaError> {
        if status == CompanyStatus::Removed {
            let prev = self
                .company_status(company)
                .ok_or_else(|| QuotaError::UnknownCompany(company.to_owned()))?;
            self.remove_company(company)?;
            return Ok(prev);
        }
        let d = self.directory();
        let c = live_company(&d, company)?;
        let prev = CompanyStatus::from_u8(c.status.load(Ordering::Relaxed));
        if prev == CompanyStatus::Terminated {
            if status == CompanyStatus::Terminated {
                return Ok(prev);
            }
            return Err(QuotaError::CompanyTerminated {
                company: company.to_owned(),
            });
        }
        c.status.store(status.to_u8(), Ordering::Relaxed);
        Ok(prev)
    }

    /// A company's status (`None` if it was never registered).
    pub fn company_status(&self, company: &str) -> Option<CompanyStatus> {
        let d = self.directory();
        d.companies.get(company).map(|c| {
            let s = c.status.load(Ordering::Relaxed);
            if s & TERMINATED_BIT != 0 {
                CompanyStatus::Removed
            } else {
                CompanyStatus::from_u8(s)
            }
        })
    }

    /// A registered company's settings (units, subscriptions, override), `None` if
    /// unknown or removed.
    pub fn company(&self, company: &str) -> Option<Company> {
        let d = self.directory();
        live_company(&d, company)
            .ok()
            .map(|c| c.settings.load().company.clone())
    }

    /// The users of `company` registered now (not removed), sorted.
    pub fn users_of(&self, company: &str) -> Vec<String> {
        let d = self.directory();
        let mut v: Vec<String> = d
            .users
            .values()
            .filter(|u| u.company.id == company && !u.removed.load(Ordering::Relaxed))
            .map(|u| u.id.clone())
            .collect();
        v.sort();
        v
    }

    /// The time zone a company's periods use, if it is not the quota's.
    pub fn company_time_zone(&self, company: &str) -> Option<String> {
        let d = self.directory();
        let c = d.companies.get(company)?;
        let spec = &c.settings.load().spec;
        (spec.time_zone_name() != self.config.load().period.time_zone_name())
            .then(|| spec.time_zone_name().to_owned())
    }

    /// The company `user` was registered with (removed or not), if any.
    pub fn company_of_user(&self, user: &str) -> Option<String> {
        let d = self.directory();
        d.users.get(user).map(|u| u.company.id.clone())
    }

    /// References of `user`'s keys (never the keys), sorted; grace-period keys included.
    pub fn keys_of(&self, user: &str) -> Vec<KeyRef> {
        let d = self.directory();
        let mut v: Vec<KeyRef> = d
            .user_keys
            .get(user)
            .map(|k| k.values().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// A registered, not removed user.
fn live_user(d: &Directory, user: &str) -> Result<Arc<UserEntry>, QuotaError> {
    d.users
        .get(user)
        .filter(|u| !u.removed.load(Ordering::Relaxed))
        .cloned()
        .ok_or_else(|| QuotaError::UnknownUser(user.to_owned()))
}

/// A registered, not removed company.
fn live_company(d: &Directory, company: &str) -> Result<Arc<CompanyEntry>, QuotaError> {
    d.companies
        .get(company)
        .filter(|c| c.status.load(Ordering::Relaxed) & 0x7f != CompanyStatus::Removed.to_u8())
        .cloned()
        .ok_or_else(|| QuotaError::UnknownCompany(company.to_owned()))
}
