//! A reload's changes to the quota's directory: the difference between the previous
//! policy's companies, users and keys and the new policy's, applied to the ledger.
//!
//! A reload applies what *the policy file changed* (added, changed, removed), and
//! nothing else: a runtime change made through [`Engine::admin`](crate::Engine::admin)
//! to something the file did not change stays as it is; when the file changes the same
//! thing, the file wins (it is applied last).

use std::collections::{BTreeMap, BTreeSet};

use tollgate_quota::{KeyRef, Ledger, QuotaError};

use super::error::EngineError;
use crate::policy::{CompanySpec, QuotaSpec, UserSpec};

/// What a reload changed in the quota's directory (companies, users, API keys), in the
/// order of the policy. Keys are listed as [`KeyRef`]s, never in full.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectoryChanges {
    /// Companies new in the policy (registered).
    pub companies_added: Vec<String>,
    /// Companies whose units, plans, override or time zone changed (updated; their
    /// usage carries on).
    pub companies_changed: Vec<String>,
    /// Companies no longer in the policy: their keys are refused at once, their usage
    /// is kept for billing statements.
    pub companies_removed: Vec<String>,
    /// Users new in the policy.
    pub users_added: Vec<String>,
    /// Users disabled or enabled by the policy.
    pub users_changed: Vec<String>,
    /// Users no longer in the policy (their keys are refused at once; their usage stays
    /// in their company's).
    pub users_removed: Vec<String>,
    /// API keys new in the policy.
    pub keys_added: Vec<KeyRef>,
    /// API keys no longer in the policy: refused at once.
    pub keys_removed: Vec<KeyRef>,
}

impl DirectoryChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == DirectoryChanges::default()
    }
}

fn by_id(q: Option<&QuotaSpec>) -> BTreeMap<&str, &CompanySpec> {
    q.map(|q| {
        q.companies
            .iter()
            .map(|c| (c.company.id.as_str(), c))
            .collect()
    })
    .unwrap_or_default()
}

fn users_of(c: Option<&CompanySpec>) -> BTreeMap<&str, &UserSpec> {
    c.map(|c| c.users.iter().map(|u| (u.id.as_str(), u)).collect())
        .unwrap_or_default()
}

fn keys_of(u: Option<&UserSpec>) -> BTreeSet<&str> {
    u.map(|u| u.keys.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Applies the difference between `old` and `new` to `ledger` at `now`: removals first
/// (so a key moved from one user to another is removed, then added), then additions
/// and changes. A user that would move to another company is refused before anything
/// changes (a user id belongs to one company).
pub(super) fn reconcile(
    ledger: &Ledger,
    old: Option<&QuotaSpec>,
    new: &QuotaSpec,
    now: u64,
) -> Result<DirectoryChanges, EngineError> {
    let now = i128::from(now);
    let (old_c, new_c) = (by_id(old), by_id(Some(new)));
    for (id, c) in &new_c {
        for u in &c.users {
            if let Some(of) = ledger.company_of_user(&u.id) {
                if of != *id {
                    return Err(EngineError::Quota(QuotaError::UserOfOtherCompany {
                        user: u.id.clone(),
                        company: of,
                    }));
                }
            }
        }
    }
    let mut out = DirectoryChanges::default();
    // Removals.
    for (id, oc) in &old_c {
        let Some(nc) = new_c.get(id) else {
            match ledger.remove_company(id) {
                Ok(()) | Err(QuotaError::UnknownCompany(_)) => {}
                Err(e) => return Err(EngineError::Quota(e)),
            }
            out.companies_removed.push((*id).to_owned());
            continue;
        };
        let (ou, nu) = (users_of(Some(oc)), users_of(Some(nc)));
        for (uid, ouser) in &ou {
            match nu.get(uid) {
                None => {
                    match ledger.remove_user(uid) {
                        Ok(()) | Err(QuotaError::UnknownUser(_)) => {}
                        Err(e) => return Err(EngineError::Quota(e)),
                    }
                    out.users_removed.push((*uid).to_owned());
                }
                Some(nuser) => {
                    let nk = keys_of(Some(nuser));
                    for k in keys_of(Some(ouser)).difference(&nk) {
                        ledger.remove_key(k);
                        out.keys_removed.push(KeyRef::of(k));
                    }
                }
            }
        }
    }
    // Additions and changes.
    for (id, nc) in &new_c {
        let oc = old_c.get(id).copied();
        let changed = oc.is_some_and(|oc| oc.company != nc.company || oc.time_zone != nc.time_zone);
        if oc.is_none() || changed {
            ledger
                .upsert_company(nc.company(), nc.time_zone.as_deref(), now)
                .map_err(EngineError::Quota)?;
            if oc.is_none() {
                out.companies_added.push((*id).to_owned());
            } else {
                out.companies_changed.push((*id).to_owned());
            }
        }
        let ou = users_of(oc);
        for u in &nc.users {
            let old_user = ou.get(u.id.as_str()).copied();
            if old_user.is_none() {
                ledger
                    .add_user(&u.id, id, now)
                    .map_err(EngineError::Quota)?;
                ledger
                    .set_user_disabled(&u.id, u.disabled)
                    .map_err(EngineError::Quota)?;
                out.users_added.push(u.id.clone());
            } else if old_user.is_some_and(|o| o.disabled != u.disabled) {
                ledger
                    .set_user_disabled(&u.id, u.disabled)
                    .map_err(EngineError::Quota)?;
                out.users_changed.push(u.id.clone());
            }
            let ok = keys_of(old_user);
            for k in &u.keys {
                if ok.contains(k.as_str()) {
                    continue;
                }
                match ledger.add_key(k, &u.id) {
                    Ok(()) | Err(QuotaError::DuplicateKey(_)) => {}
                    Err(e) => return Err(EngineError::Quota(e)),
                }
                out.keys_added.push(KeyRef::of(k));
            }
        }
    }
    Ok(out)
}
