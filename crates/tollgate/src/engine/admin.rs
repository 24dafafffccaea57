//! The administration API: every runtime change an operator makes, as one handle
//! ([`Engine::admin`]).
//!
//! Each operation is applied atomically and never makes a decision wait: directory
//! changes (companies, users, keys) change the ledger's lock-free key map and atomic
//! flags under the ledger's administrative mutex, which decisions never take; override
//! changes build a new compiled policy off to the side and swap it in
//! ([`ArcSwap`](arc_swap::ArcSwap)), exactly as a reload does (keys keep their used
//! capacity). The next decision sees the change. Each applied change is reported as an
//! [`Event::Admin`] (keys as [`KeyRef`]s only).

use std::fmt;
use std::time::Duration;

use tollgate_core::Rate;
use tollgate_quota::journal::{AdminChangeRecord, AdminRecord, Entry};
use tollgate_quota::{Company, CompanyStatus, KeyRef, Ledger, QuotaError, QuotaLimit};

use super::error::EngineError;
use super::events::Event;
use super::instance::Engine;
use super::reload::ReloadReport;
use crate::policy::{Attr, OverrideSpec};

/// An administrative change, as [`Event::Admin`] reports it (serialised with its
/// operation's name in `op`, e.g. `{"op":"key_rotated","old":"key#..",..}`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdminChange {
    /// A company was registered (or registered again after removal).
    CompanyAdded {
        /// The company.
        company: String,
    },
    /// A company's units, plans or quota override changed; its usage carries on.
    CompanyChanged {
        /// The company.
        company: String,
        /// Its limit now.
        limit: u64,
    },
    /// A company was suspended, resumed, terminated or removed.
    CompanyStatus {
        /// The company.
        company: String,
        /// Its status now.
        status: CompanyStatus,
    },
    /// A user was added.
    UserAdded {
        /// The user.
        user: String,
        /// Its company.
        company: String,
    },
    /// A user was disabled or enabled.
    UserDisabled {
        /// The user.
        user: String,
        /// Whether it is disabled now.
        disabled: bool,
    },
    /// A user was removed (its keys with it).
    UserRemoved {
        /// The user.
        user: String,
    },
    /// An API key was added for a user.
    KeyAdded {
        /// The user.
        user: String,
        /// The key, redacted.
        key: KeyRef,
    },
    /// An API key was rotated: `new` serves the same user, `old` is refused from
    /// `old_until_unix_ns` (now, without a grace period).
    KeyRotated {
        /// The old key, redacted.
        old: KeyRef,
        /// The new key, redacted.
        new: KeyRef,
        /// When the old key stops working (Unix nanoseconds).
        old_until_unix_ns: u64,
    },
    /// An API key was removed.
    KeyRemoved {
        /// The key, redacted.
        key: KeyRef,
    },
    /// A limit's override was set (added or changed).
    OverrideSet {
        /// The limit.
        limit: String,
        /// What it matches (secret values as references, as in
        /// [`OverrideChange`](super::OverrideChange)).
        matches: Vec<(String, String)>,
        /// Its rate.
        rate: String,
        /// Whether its keys kept their used capacity.
        carried: bool,
    },
    /// A limit's override was removed.
    OverrideRemoved {
        /// The limit.
        limit: String,
        /// What it matched.
        matches: Vec<(String, String)>,
    },
}

/// Why an administrative change was refused (nothing changed).
#[derive(Debug)]
#[non_exhaustive]
pub enum AdminError {
    /// The policy has no `[quota]` section: there is no directory to change.
    NoQuota,
    /// No such company (or it was removed).
    UnknownCompany(String),
    /// The company is registered already (`add_company`; use the `set_company_*`
    /// operations to change it).
    DuplicateCompany(String),
    /// The company is terminated: that is for good.
    CompanyTerminated(String),
    /// No such user (or it was removed).
    UnknownUser(String),
    /// The user is registered already.
    DuplicateUser(String),
    /// The user belongs to another company.
    UserOfOtherCompany {
        /// The user.
        user: String,
        /// Its company.
        company: String,
    },
    /// No such API key (shown redacted).
    UnknownKey(KeyRef),
    /// The API key is registered already (shown redacted).
    DuplicateKey(KeyRef),
    /// No limit of that name.
    UnknownLimit(String),
    /// An override names an attribute its limit does not key on.
    NotInKey {
        /// The limit.
        limit: String,
        /// The attribute.
        attribute: String,
    },
    /// The limit has no override matching that.
    UnknownOverride {
        /// The limit.
        limit: String,
    },
    /// A plan, period or policy problem (the new policy would not validate, ...).
    Invalid(String),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::NoQuota => f.write_str("the policy has no [quota] section"),
            AdminError::UnknownCompany(c) => write!(f, "unknown company {c:?}"),
            AdminError::DuplicateCompany(c) => write!(f, "company {c:?} is already registered"),
            AdminError::CompanyTerminated(c) => write!(f, "company {c:?} is terminated"),
            AdminError::UnknownUser(u) => write!(f, "unknown user {u:?}"),
            AdminError::DuplicateUser(u) => write!(f, "user {u:?} is already registered"),
            AdminError::UserOfOtherCompany { user, company } => {
                write!(f, "user {user:?} belongs to company {company:?}")
            }
            AdminError::UnknownKey(k) => write!(f, "unknown API key {k}"),
            AdminError::DuplicateKey(k) => write!(f, "API key {k} is already registered"),
            AdminError::UnknownLimit(l) => write!(f, "no limit named {l:?}"),
            AdminError::NotInKey { limit, attribute } => {
                write!(f, "limit {limit:?} does not key on {attribute:?}")
            }
            AdminError::UnknownOverride { limit } => {
                write!(f, "limit {limit:?} has no such override")
            }
            AdminError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<QuotaError> for AdminError {
    fn from(e: QuotaError) -> Self {
        match e {
            QuotaError::UnknownCompany(c) => AdminError::UnknownCompany(c),
            QuotaError::UnknownUser(u) => AdminError::UnknownUser(u),
            QuotaError::UnknownKey(k) => AdminError::UnknownKey(k),
            QuotaError::DuplicateKey(k) => AdminError::DuplicateKey(k),
            QuotaError::CompanyTerminated { company } => AdminError::CompanyTerminated(company),
            QuotaError::UserOfOtherCompany { user, company } => {
                AdminError::UserOfOtherCompany { user, company }
            }
            other => AdminError::Invalid(other.to_string()),
        }
    }
}

impl From<EngineError> for AdminError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Quota(q) => q.into(),
            other => AdminError::Invalid(other.to_string()),
        }
    }
}

/// The administration handle of an engine ([`Engine::admin`], cheap to make).
///
/// Each operation is applied atomically and never makes a decision wait: directory
/// changes (companies, users, keys) change the ledger's lock-free key map and atomic
/// flags under the ledger's administrative mutex, which decisions never take; override
/// changes build a new compiled policy off to the side and swap it in, exactly as a
/// reload does (keys keep their used capacity). The next decision sees the change.
/// Each applied change is reported as an [`Event::Admin`] (keys as [`KeyRef`]s only).
///
/// An override set here is part of the policy in force: a later
/// [`reload`](Engine::reload) replaces the policy, so an override it does not have is
/// removed (and reported in [`ReloadReport::overrides`]). Directory changes made here
/// stay across reloads unless the new policy file changes the same company, user or
/// key (see [`DirectoryChanges`](super::DirectoryChanges)).
#[derive(Clone, Copy)]
pub struct Admin<'e> {
    engine: &'e Engine,
}

impl fmt::Debug for Admin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Engine {
    /// The administration API: add, rotate and remove keys, users and companies,
    /// suspend and terminate companies, set overrides, revoke tokens.
    pub fn admin(&self) -> Admin<'_> {
        Admin { engine: self }
    }
}

impl<'e> Admin<'e> {
    fn ledger(&self) -> Result<&'e Ledger, AdminError> {
        self.engine
            .ledger()
            .map(|l| &**l)
            .ok_or(AdminError::NoQuota)
    }

    fn now(&self) -> i128 {
        i128::from(self.engine.now())
    }

    fn emit(&self, change: AdminChange) {
        self.engine.emit(Event::Admin(change));
    }

    /// Writes an applied change to the quota journal (if any) and waits for its commit;
    /// a failing journal keeps it queued and answers at once (the change is in force).
    fn journal(&self, change: AdminRecord) {
        let Some(j) = self.engine.ledger().and_then(|l| l.journal()) else {
            return;
        };
        let at = i64::try_from(self.engine.now()).unwrap_or(i64::MAX);
        let ticket = j.append(Entry::Admin { at, change });
        let _ = j.wait(ticket);
    }

    /// Journals a company's whole entry after a change.
    fn journal_company(&self, l: &Ledger, id: &str) {
        if let Some(company) = l.company(id) {
            self.journal(AdminRecord::Company {
                company,
                time_zone: l.company_time_zone(id),
            });
        }
    }

    // --- companies ---

    /// Registers a new company (`time_zone`: its months' zone, default the quota's).
    /// A removed company is registered again with its usage (a terminated one stays
    /// terminated).
    pub fn add_company(
        &self,
        company: Company,
        time_zone: Option<&str>,
    ) -> Result<QuotaLimit, AdminError> {
        let l = self.ledger()?;
        if l.company(&company.id).is_some() {
            return Err(AdminError::DuplicateCompany(company.id));
        }
        let id = company.id.clone();
        let limit = l.upsert_company(company, time_zone, self.now())?;
        self.journal_company(l, &id);
        self.emit(AdminChange::CompanyAdded { company: id });
        Ok(limit)
    }

    fn change_company(
        &self,
        id: &str,
        f: impl FnOnce(&mut Company),
    ) -> Result<QuotaLimit, AdminError> {
        let l = self.ledger()?;
        let mut c = l
            .company(id)
            .ok_or_else(|| AdminError::UnknownCompany(id.to_owned()))?;
        f(&mut c);
        let tz = l.company_time_zone(id);
        let limit = l.upsert_company(c, tz.as_deref(), self.now())?;
        self.journal_company(l, id);
        self.emit(AdminChange::CompanyChanged {
            company: id.to_owned(),
            limit: limit.calls,
        });
        Ok(limit)
    }

    /// Sets a company's units (machines, apps): its limit changes at once, its usage
    /// this period carries on.
    pub fn set_company_units(
        &self,
        company: &str,
        machines: u64,
        apps: u64,
    ) -> Result<QuotaLimit, AdminError> {
        self.change_company(company, |c| {
            c.machines = machines;
            c.apps = apps;
        })
    }

    /// Sets the (non-default) plans a company subscribes to.
    pub fn set_company_plans(
        &self,
        company: &str,
        plans: Vec<String>,
    ) -> Result<QuotaLimit, AdminError> {
        self.change_company(company, |c| c.subscriptions = plans)
    }

    /// Sets (`Some`) or removes (`None`) a company's explicit quota limit (support
    /// staff's override of its plans' limit).
    pub fn set_company_limit(
        &self,
        company: &str,
        calls: Option<u64>,
    ) -> Result<QuotaLimit, AdminError> {
        self.change_company(company, |c| c.limit_override = calls)
    }

    fn company_status(&self, company: &str, status: CompanyStatus) -> Result<(), AdminError> {
        let l = self.ledger()?;
        let prev = l.set_company_status(company, status)?;
        if prev != status {
            self.journal(AdminRecord::CompanyStatus {
                company: company.to_owned(),
                status,
            });
            self.emit(AdminChange::CompanyStatus {
                company: company.to_owned(),
                status,
            });
        }
        Ok(())
    }

    /// Suspends a company: every key of its users is refused (as revoked) until
    /// [`resume_company`](Self::resume_company). Its usage is kept.
    pub fn suspend_company(&self, company: &str) -> Result<(), AdminError> {
        self.company_status(company, CompanyStatus::Suspended)
    }

    /// Resumes a suspended company.
    pub fn resume_company(&self, company: &str) -> Result<(), AdminError> {
        self.company_status(company, CompanyStatus::Active)
    }

    /// Terminates a company: every key of its users is refused with
    /// [`Reason::Terminated`](crate::Reason::Terminated), for good (no operation
    /// resumes it, and registering it again keeps it terminated). Its usage is kept for
    /// billing.
    pub fn terminate_company(&self, company: &str) -> Result<(), AdminError> {
        self.company_status(company, CompanyStatus::Terminated)
    }

    /// Removes a company: its users' keys are refused (as unknown) at once; its usage
    /// is kept for billing statements.
    pub fn remove_company(&self, company: &str) -> Result<(), AdminError> {
        self.company_status(company, CompanyStatus::Removed)
    }

    // --- users ---

    /// Adds a user to a company.
    pub fn add_user(&self, user: &str, company: &str) -> Result<(), AdminError> {
        let l = self.ledger()?;
        if let Some(of) = l.company_of_user(user) {
            if of != company {
                return Err(AdminError::UserOfOtherCompany {
                    user: user.to_owned(),
                    company: of,
                });
            }
            if l.users_of(company).iter().any(|u| u == user) {
                return Err(AdminError::DuplicateUser(user.to_owned()));
            }
        }
        l.add_user(user, company, self.now())?;
        self.journal(AdminRecord::UserAdded {
            user: user.to_owned(),
            company: company.to_owned(),
        });
        self.emit(AdminChange::UserAdded {
            user: user.to_owned(),
            company: company.to_owned(),
        });
        Ok(())
    }

    fn user_disabled(&self, user: &str, disabled: bool) -> Result<(), AdminError> {
        self.ledger()?.set_user_disabled(user, disabled)?;
        self.journal(AdminRecord::UserDisabled {
            user: user.to_owned(),
            disabled,
        });
        self.emit(AdminChange::UserDisabled {
            user: user.to_owned(),
            disabled,
        });
        Ok(())
    }

    /// Disables a user: its keys are refused (as revoked) until enabled.
    pub fn disable_user(&self, user: &str) -> Result<(), AdminError> {
        self.user_disabled(user, true)
    }

    /// Enables a disabled user.
    pub fn enable_user(&self, user: &str) -> Result<(), AdminError> {
        self.user_disabled(user, false)
    }

    /// Removes a user: its keys are refused (as unknown) at once; its usage stays in
    /// its company's statements.
    pub fn remove_user(&self, user: &str) -> Result<(), AdminError> {
        self.ledger()?.remove_user(user)?;
        self.journal(AdminRecord::UserRemoved {
            user: user.to_owned(),
        });
        self.emit(AdminChange::UserRemoved {
            user: user.to_owned(),
        });
        Ok(())
    }

    // --- keys ---

    /// Adds an API key for a user.
    pub fn add_key(&self, key: &str, user: &str) -> Result<(), AdminError> {
        self.ledger()?.add_key(key, user)?;
        self.emit(AdminChange::KeyAdded {
            user: user.to_owned(),
            key: KeyRef::of(key),
        });
        Ok(())
    }

    /// Rotates an API key: `new` serves `old`'s user (the user's usage and limits carry
    /// on: they are the user's, not the key's); `old` is refused at once, or after
    /// `grace`.
    pub fn rotate_key(
        &self,
        old: &str,
        new: &str,
        grace: Option<Duration>,
    ) -> Result<(), AdminError> {
        let now = self.now();
        self.ledger()?.rotate_key(old, new, grace, now)?;
        let until = now
            .saturating_add(grace.map_or(0, |g| i128::try_from(g.as_nanos()).unwrap_or(i128::MAX)));
        self.emit(AdminChange::KeyRotated {
            old: KeyRef::of(old),
            new: KeyRef::of(new),
            old_until_unix_ns: u64::try_from(until).unwrap_or(u64::MAX),
        });
        Ok(())
    }

    /// Removes an API key: refused at once.
    pub fn remove_key(&self, key: &str) -> Result<(), AdminError> {
        if !self.ledger()?.remove_key(key) {
            return Err(AdminError::UnknownKey(KeyRef::of(key)));
        }
        self.emit(AdminChange::KeyRemoved {
            key: KeyRef::of(key),
        });
        Ok(())
    }

    // --- overrides ---

    /// Sets the override of `limit` for requests matching `matches` (attribute name,
    /// value; every attribute must be one the limit keys on) to `rate`: added, or
    /// changed if the limit has an override matching exactly that. The keys it covers
    /// keep their used capacity (see [`OverrideChange::carried`](super::OverrideChange::carried)),
    /// so raising takes effect at once and lowering never hands out a fresh burst. The
    /// report says what happened.
    pub fn set_override(
        &self,
        limit: &str,
        matches: &[(&str, &str)],
        rate: Rate,
    ) -> Result<ReloadReport, AdminError> {
        let mut policy = self.engine.policy();
        let spec = policy
            .limits
            .iter_mut()
            .find(|l| l.name == limit)
            .ok_or_else(|| AdminError::UnknownLimit(limit.to_owned()))?;
        let m = override_matches(limit, &spec.key, matches)?;
        match spec.overrides.iter_mut().find(|o| o.matches == m) {
            Some(o) => o.rate = rate,
            None => spec.overrides.push(OverrideSpec {
                matches: m,
                rate,
                capacity: None,
            }),
        }
        let report = self.engine.reload(policy)?;
        if let Some(c) = report
            .overrides
            .added
            .iter()
            .chain(&report.overrides.changed)
            .find(|c| c.limit == limit)
        {
            self.emit(AdminChange::OverrideSet {
                limit: limit.to_owned(),
                matches: c.matches.clone(),
                rate: c.rate.clone(),
                carried: c.carried,
            });
        }
        Ok(report)
    }

    /// Removes the override of `limit` matching exactly `matches`: its keys are counted
    /// under the limit's own rate again, keeping their used capacity (for an override of
    /// one whole key).
    pub fn remove_override(
        &self,
        limit: &str,
        matches: &[(&str, &str)],
    ) -> Result<ReloadReport, AdminError> {
        let mut policy = self.engine.policy();
        let spec = policy
            .limits
            .iter_mut()
            .find(|l| l.name == limit)
            .ok_or_else(|| AdminError::UnknownLimit(limit.to_owned()))?;
        let m = override_matches(limit, &spec.key, matches)?;
        let before = spec.overrides.len();
        spec.overrides.retain(|o| o.matches != m);
        if spec.overrides.len() == before {
            return Err(AdminError::UnknownOverride {
                limit: limit.to_owned(),
            });
        }
        let report = self.engine.reload(policy)?;
        if let Some(c) = report.overrides.removed.iter().find(|c| c.limit == limit) {
            self.emit(AdminChange::OverrideRemoved {
                limit: limit.to_owned(),
                matches: c.matches.clone(),
            });
        }
        Ok(report)
    }

    // --- tokens ---

    /// Revokes a token (the revocation attribute's value): refused until restored,
    /// whether or not the policy has a `[revocation]` section. With a fleet's
    /// [`RevocationSync`](crate::RevocationSync), revocations, suspensions and
    /// restorations reach the other instances too (see [`fleet`](super::fleet)). Returns whether it was
    /// not revoked already. Raises [`Event::Revoked`].
    pub fn revoke(&self, token: &str) -> bool {
        self.engine.revoke(token)
    }

    /// Suspends a token for `duration`: refused until then. Raises
    /// [`Event::Suspended`].
    pub fn suspend_token(&self, token: &str, duration: Duration) -> bool {
        self.engine.suspend(token, duration)
    }

    /// Restores a revoked or suspended token. Raises [`Event::Restored`].
    pub fn restore(&self, token: &str) -> bool {
        self.engine.restore(token)
    }
}

/// `matches` as an override's match table, checked against the limit's key.
fn override_matches(
    limit: &str,
    key: &[Attr],
    matches: &[(&str, &str)],
) -> Result<std::collections::BTreeMap<String, String>, AdminError> {
    if matches.is_empty() {
        return Err(AdminError::Invalid(format!(
            "an override of limit {limit:?} must match at least one attribute"
        )));
    }
    let mut m = std::collections::BTreeMap::new();
    for (attr, value) in matches {
        if !key.iter().any(|a| *a == Attr::named(attr)) {
            return Err(AdminError::NotInKey {
                limit: limit.to_owned(),
                attribute: (*attr).to_owned(),
            });
        }
        m.insert((*attr).to_owned(), (*value).to_owned());
    }
    Ok(m)
}

impl Engine {
    /// Applies the journal's administrative changes again at start, in order, on top of
    /// the directory the policy file seeded: the journal's later change wins over the
    /// file's entry. Returns a note for each change applied over a different entry of the
    /// file, and for each change that no longer applies (its company or user is gone
    /// from the file, ...); see [`Engine::journal_conflicts`].
    pub(super) fn replay_admin(&self, records: Vec<AdminChangeRecord>) -> Vec<String> {
        let Some(l) = self.ledger() else {
            return Vec::new();
        };
        let now = i128::from(self.now());
        let mut notes = Vec::new();
        let mut overridden = std::collections::HashSet::new();
        for r in records {
            let seq = r.seq;
            let result = match r.change {
                AdminRecord::Company { company, time_zone } => {
                    if let Some(seed) = l.company(&company.id) {
                        if seed != company && overridden.insert(company.id.clone()) {
                            notes.push(format!(
                                "company {:?}: the journal's admin change {seq} replaces the \
                                 policy file's entry ({seed:?} -> {company:?})",
                                company.id
                            ));
                        }
                    }
                    l.upsert_company(company, time_zone.as_deref(), now)
                        .map(|_| ())
                }
                AdminRecord::CompanyStatus { company, status } => {
                    l.set_company_status(&company, status).map(|_| ())
                }
                AdminRecord::UserAdded { user, company } => {
                    if l.company_of_user(&user).as_deref() == Some(company.as_str())
                        && l.users_of(&company).contains(&user)
                    {
                        Ok(())
                    } else {
                        l.add_user(&user, &company, now)
                    }
                }
                AdminRecord::UserDisabled { user, disabled } => {
                    l.set_user_disabled(&user, disabled)
                }
                AdminRecord::UserRemoved { user } => l.remove_user(&user),
                other => {
                    notes.push(format!("admin change {seq} not understood: {other:?}"));
                    Ok(())
                }
            };
            if let Err(e) = result {
                notes.push(format!("admin change {seq} no longer applies: {e}"));
            }
        }
        notes
    }
}
