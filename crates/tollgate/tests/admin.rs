//! Runtime changes take effect exactly (issue 17): reload removals and its report,
//! overrides carrying their keys' used capacity, company suspension and termination,
//! and the administration API (`Engine::admin`) against a reference model.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use tollgate::quota::{Company, CompanyStatus, KeyRef};
use tollgate::{AdminChange, AdminError, Engine, Event, Policy, Reason, Request};

const SEC: u64 = 1_000_000_000;

fn engine(toml: &str) -> Engine {
    Engine::new(Policy::from_toml(toml).unwrap().0).unwrap()
}

fn policy(toml: &str) -> Policy {
    Policy::from_toml(toml).unwrap().0
}

const DIRECTORY: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "1000/s"
[quota]
[[quota.plans]]
name = "free"
calls_per_unit = 1000
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [
  { id = "ann", keys = ["ann-old-key-0001", "ann-new-key-0002"] },
  { id = "bob", keys = ["bob-key-0003"] },
]
[[quota.companies]]
id = "globex"
machines = 1
users = [ { id = "gil", keys = ["gil-key-0004"] } ]
"#;

fn reason(e: &Engine, key: &str) -> Reason {
    e.decide(&Request::new().token(key)).reason
}

/// Item 1: a reload that drops a key, a user and a company refuses their keys at once,
/// keeps the removed company's usage for its statement, and says what it did.
#[test]
fn a_reload_removes_keys_users_and_companies_and_reports_them() {
    let e = engine(DIRECTORY);
    for k in [
        "ann-old-key-0001",
        "ann-new-key-0002",
        "bob-key-0003",
        "gil-key-0004",
    ] {
        assert_eq!(reason(&e, k), Reason::Allowed);
    }
    let without = DIRECTORY
        .replace("\"ann-old-key-0001\", ", "")
        .replace("  { id = \"bob\", keys = [\"bob-key-0003\"] },\n", "")
        .replace(
            "[[quota.companies]]\nid = \"globex\"\nmachines = 1\nusers = [ { id = \"gil\", keys = [\"gil-key-0004\"] } ]\n",
            "",
        );
    let report = e.reload(policy(&without)).unwrap();
    assert_eq!(
        reason(&e, "ann-old-key-0001"),
        Reason::UnknownKey,
        "dropped key"
    );
    assert_eq!(
        reason(&e, "bob-key-0003"),
        Reason::UnknownKey,
        "removed user"
    );
    assert_eq!(
        reason(&e, "gil-key-0004"),
        Reason::UnknownKey,
        "removed company"
    );
    assert_eq!(reason(&e, "ann-new-key-0002"), Reason::Allowed);
    let d = &report.directory;
    assert_eq!(d.keys_removed, vec![KeyRef::of("ann-old-key-0001")]);
    assert_eq!(d.users_removed, vec!["bob".to_owned()]);
    assert_eq!(d.companies_removed, vec!["globex".to_owned()]);
    assert!(d.keys_added.is_empty() && d.users_added.is_empty() && d.companies_added.is_empty());
    // The removed company's usage stays for billing.
    let globex = e
        .ledger()
        .unwrap()
        .statements()
        .into_iter()
        .find(|s| s.company == "globex")
        .expect("globex's statement is kept");
    assert_eq!(globex.used, 1);
    // Adding them back is reported as added.
    let report = e.reload(policy(DIRECTORY)).unwrap();
    assert_eq!(report.directory.companies_added, vec!["globex".to_owned()]);
    assert_eq!(report.directory.users_added.len(), 2);
    assert_eq!(report.directory.keys_added.len(), 3);
    assert_eq!(reason(&e, "gil-key-0004"), Reason::Allowed);
    assert_eq!(reason(&e, "bob-key-0003"), Reason::Allowed);
}

const PER_COMPANY: &str = r#"
version = 1
[[limit]]
name = "per-company"
key = ["company"]
rate = "3/h"
"#;

/// Item 2, the issue's case: two companies used 3 of `3/h`; overrides added by a
/// reload raise one to `4/h` (1 more, not 4) and lower the other to `1/h` (none).
#[test]
fn an_added_override_carries_its_keys_used_capacity() {
    let e = engine(PER_COMPANY);
    // The engine's own clock: a reload carries state as of the engine's now.
    let r = |c: &'static str| Request::new().company(c);
    for c in ["up", "down"] {
        for _ in 0..3 {
            assert!(e.decide(&r(c)).allowed());
        }
        assert_eq!(e.decide(&r(c)).reason, Reason::Limited);
    }
    let with = format!(
        "{PER_COMPANY}[[limit.override]]\nmatch = {{ company = \"up\" }}\nrate = \"4/h\"\n\
         [[limit.override]]\nmatch = {{ company = \"down\" }}\nrate = \"1/h\"\n"
    );
    let report = e.reload(policy(&with)).unwrap();
    let served = |c: &'static str| (0..6).filter(|_| e.decide(&r(c)).allowed()).count();
    assert_eq!(served("up"), 1, "raised to 4/h after using 3: one more");
    assert_eq!(served("down"), 0, "lowered to 1/h after using 3: none");
    assert_eq!(report.overrides.added.len(), 2);
    assert!(
        report.overrides.added.iter().all(|o| o.carried),
        "{report:?}"
    );
    // Changing and removing them carries too: "up" has used 4 of 4; back to 3/h it
    // has none left, and "down" none either.
    let report = e.reload(policy(PER_COMPANY)).unwrap();
    assert_eq!(report.overrides.removed.len(), 2);
    assert!(report.overrides.removed.iter().all(|o| o.carried));
    assert_eq!(
        served("up"),
        0,
        "an override removed never hands out a fresh burst"
    );
    assert_eq!(served("down"), 0);
}

/// Item 2 through the admin API, for a token's override (reported redacted).
#[test]
fn an_override_set_at_runtime_carries_and_is_reported_redacted() {
    let e =
        engine("version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"3/h\"\n");
    // The engine's own clock: a reload carries state as of the engine's now.
    let r = Request::new().token("secret-token-abcdef");
    for _ in 0..3 {
        assert!(e.decide(&r).allowed());
    }
    let report = e
        .admin()
        .set_override(
            "per-token",
            &[("token", "secret-token-abcdef")],
            "10/h".parse().unwrap(),
        )
        .unwrap();
    let o = &report.overrides.added[0];
    assert!(o.carried);
    assert_eq!(
        o.matches[0].1,
        KeyRef::of("secret-token-abcdef").to_string()
    );
    assert!(!format!("{report:?}").contains("secret-token-abcdef"));
    assert_eq!((0..20).filter(|_| e.decide(&r).allowed()).count(), 7);
    let report = e
        .admin()
        .set_override(
            "per-token",
            &[("token", "secret-token-abcdef")],
            "2/h".parse().unwrap(),
        )
        .unwrap();
    assert_eq!(report.overrides.changed.len(), 1);
    assert_eq!((0..20).filter(|_| e.decide(&r).allowed()).count(), 0);
    let events = e.drain_events();
    assert!(events.iter().any(|ev| matches!(
        ev,
        Event::Admin(AdminChange::OverrideSet { carried: true, .. })
    )));
    assert!(!format!("{events:?}").contains("secret-token-abcdef"));
    assert!(matches!(
        e.admin()
            .set_override("per-token", &[("route", "/x")], "1/h".parse().unwrap()),
        Err(AdminError::NotInKey { .. })
    ));
}

/// Item 7: a terminated company's keys are refused with their own reason, for good;
/// a suspended one's until resumed; usage is kept.
#[test]
fn a_terminated_company_is_refused_for_good_and_a_suspended_one_until_resumed() {
    let e = engine(DIRECTORY);
    assert_eq!(reason(&e, "gil-key-0004"), Reason::Allowed);
    let a = e.admin();
    a.suspend_company("globex").unwrap();
    assert_eq!(reason(&e, "gil-key-0004"), Reason::Revoked);
    assert_eq!(
        reason(&e, "bob-key-0003"),
        Reason::Allowed,
        "another company"
    );
    a.resume_company("globex").unwrap();
    assert_eq!(reason(&e, "gil-key-0004"), Reason::Allowed);
    a.terminate_company("globex").unwrap();
    assert_eq!(reason(&e, "gil-key-0004"), Reason::Terminated);
    assert!(matches!(
        a.resume_company("globex"),
        Err(AdminError::CompanyTerminated(_))
    ));
    // A reload re-registering it does not bring it back.
    e.reload(policy(&DIRECTORY.replace(
        "id = \"globex\"\nmachines = 1",
        "id = \"globex\"\nmachines = 2",
    )))
    .unwrap();
    assert_eq!(reason(&e, "gil-key-0004"), Reason::Terminated);
    assert_eq!(
        e.ledger().unwrap().company_status("globex"),
        Some(CompanyStatus::Terminated)
    );
    let used: u64 = e
        .ledger()
        .unwrap()
        .statements()
        .iter()
        .filter(|s| s.company == "globex")
        .map(|s| s.used)
        .sum();
    assert_eq!(used, 2, "usage kept for billing");
}

/// Item 5 through the admin handle, with a quota in the policy.
#[test]
fn an_operators_revocation_is_enforced_without_a_revocation_section() {
    let e = engine(DIRECTORY);
    assert!(e.admin().revoke("bob-key-0003"));
    assert!(e.is_revoked("bob-key-0003"));
    assert_eq!(reason(&e, "bob-key-0003"), Reason::Revoked);
    assert!(e.admin().restore("bob-key-0003"));
    assert_eq!(reason(&e, "bob-key-0003"), Reason::Allowed);
    assert!(e
        .admin()
        .suspend_token("bob-key-0003", Duration::from_secs(60)));
    assert_eq!(reason(&e, "bob-key-0003"), Reason::Revoked);
    let later = e.now() + 61 * SEC;
    assert!(e
        .decide(&Request::new().token("bob-key-0003").at(later))
        .allowed());
}

#[test]
fn rotation_keeps_usage_and_honours_the_grace_period() {
    let e = engine(DIRECTORY);
    let now = e.now();
    for _ in 0..5 {
        assert!(e
            .decide(&Request::new().token("bob-key-0003").at(now))
            .allowed());
    }
    e.admin()
        .rotate_key(
            "bob-key-0003",
            "bob-key-0005",
            Some(Duration::from_secs(30)),
        )
        .unwrap();
    let at = |k: &str, t: u64| e.decide(&Request::new().token(k).at(t));
    assert!(
        at("bob-key-0003", now + SEC).allowed(),
        "in its grace period"
    );
    let d = at("bob-key-0005", now + SEC);
    assert!(d.allowed());
    assert_eq!(d.quota.unwrap().used, 7, "the user's usage carried on");
    assert_eq!(
        at("bob-key-0003", now + 31 * SEC).reason,
        Reason::UnknownKey
    );
    e.admin()
        .rotate_key("bob-key-0005", "bob-key-0006", None)
        .unwrap();
    assert_eq!(
        at("bob-key-0005", now + 32 * SEC).reason,
        Reason::UnknownKey
    );
    assert!(at("bob-key-0006", now + 32 * SEC).allowed());
    assert!(matches!(
        e.admin()
            .rotate_key("bob-key-0006", "ann-new-key-0002", None),
        Err(AdminError::DuplicateKey(_))
    ));
    assert!(matches!(
        e.admin().rotate_key("nope-nope-nope", "x-y-z-w-v", None),
        Err(AdminError::UnknownKey(_))
    ));
}

// ---------------------------------------------------------------------------------
// A reference model of the directory, and admin operations driven against it.

#[derive(Default, Debug)]
struct Model {
    /// company -> status (true: active; false: suspended); terminated and removed
    /// companies in their own sets.
    companies: BTreeMap<String, bool>,
    terminated: BTreeSet<String>,
    removed_companies: BTreeSet<String>,
    /// user -> (company, disabled, removed)
    users: BTreeMap<String, (String, bool, bool)>,
    /// key -> user
    keys: BTreeMap<String, String>,
    revoked: BTreeSet<String>,
}

impl Model {
    fn expect(&self, key: &str) -> Reason {
        if self.revoked.contains(key) {
            return Reason::Revoked;
        }
        let Some(user) = self.keys.get(key) else {
            return Reason::UnknownKey;
        };
        let (company, disabled, removed) = &self.users[user];
        if *removed || self.removed_companies.contains(company) {
            return Reason::UnknownKey;
        }
        if *disabled {
            return Reason::Revoked;
        }
        if self.terminated.contains(company) {
            return Reason::Terminated;
        }
        if !self.companies[company] {
            return Reason::Revoked;
        }
        Reason::Allowed
    }
}

const EMPTY: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "1000000/s"
[quota]
[[quota.plans]]
name = "free"
calls_per_unit = 1000000000
default = true
"#;

#[derive(Clone, Debug)]
enum Op {
    AddCompany(u8),
    SuspendCompany(u8),
    ResumeCompany(u8),
    TerminateCompany(u8),
    RemoveCompany(u8),
    AddUser(u8, u8),
    DisableUser(u8),
    EnableUser(u8),
    RemoveUser(u8),
    AddKey(u8, u8),
    RotateKey(u8, u8),
    RemoveKey(u8),
    Revoke(u8),
    Restore(u8),
    Decide(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3).prop_map(Op::AddCompany),
        (0u8..3).prop_map(Op::SuspendCompany),
        (0u8..3).prop_map(Op::ResumeCompany),
        (0u8..3).prop_map(Op::TerminateCompany),
        (0u8..3).prop_map(Op::RemoveCompany),
        (0u8..5, 0u8..3).prop_map(|(u, c)| Op::AddUser(u, c)),
        (0u8..5).prop_map(Op::DisableUser),
        (0u8..5).prop_map(Op::EnableUser),
        (0u8..5).prop_map(Op::RemoveUser),
        (0u8..8, 0u8..5).prop_map(|(k, u)| Op::AddKey(k, u)),
        (0u8..8, 0u8..8).prop_map(|(a, b)| Op::RotateKey(a, b)),
        (0u8..8).prop_map(Op::RemoveKey),
        (0u8..8).prop_map(Op::Revoke),
        (0u8..8).prop_map(Op::Restore),
        (0u8..8).prop_map(Op::Decide),
        (0u8..8).prop_map(Op::Decide),
    ]
}

fn company(i: u8) -> String {
    format!("co-{i}")
}
fn user(i: u8) -> String {
    format!("user-{i}")
}
fn key(i: u8) -> String {
    format!("key-{i}-0123456789")
}

/// Applies `op` to the engine and the model; returns a description on a mismatch.
fn step(e: &Engine, m: &mut Model, op: &Op) -> Result<(), String> {
    let a = e.admin();
    let live_company =
        |m: &Model, c: &str| m.companies.contains_key(c) && !m.removed_companies.contains(c);
    match op {
        Op::AddCompany(c) => {
            let id = company(*c);
            let got = a.add_company(Company::new(&id).with_units(1, 0), None);
            if live_company(m, &id) {
                if !matches!(got, Err(AdminError::DuplicateCompany(_))) {
                    return Err(format!("add_company {id}: {got:?}"));
                }
            } else {
                got.map_err(|e| format!("add_company {id}: {e}"))?;
                m.companies.entry(id.clone()).or_insert(true);
                if m.removed_companies.remove(&id) && !m.terminated.contains(&id) {
                    m.companies.insert(id, true);
                }
            }
        }
        Op::SuspendCompany(c) | Op::ResumeCompany(c) | Op::TerminateCompany(c) => {
            let id = company(*c);
            let got = match op {
                Op::SuspendCompany(_) => a.suspend_company(&id),
                Op::ResumeCompany(_) => a.resume_company(&id),
                _ => a.terminate_company(&id),
            };
            if !live_company(m, &id) {
                if !matches!(got, Err(AdminError::UnknownCompany(_))) {
                    return Err(format!("{op:?} of an unknown company: {got:?}"));
                }
            } else if m.terminated.contains(&id) && !matches!(op, Op::TerminateCompany(_)) {
                if !matches!(got, Err(AdminError::CompanyTerminated(_))) {
                    return Err(format!("{op:?} of a terminated company: {got:?}"));
                }
            } else {
                got.map_err(|e| format!("{op:?}: {e}"))?;
                match op {
                    Op::SuspendCompany(_) => {
                        m.companies.insert(id, false);
                    }
                    Op::ResumeCompany(_) => {
                        m.companies.insert(id, true);
                    }
                    _ => {
                        m.terminated.insert(id);
                    }
                }
            }
        }
        Op::RemoveCompany(c) => {
            let id = company(*c);
            let got = a.remove_company(&id);
            if live_company(m, &id) {
                got.map_err(|e| format!("remove_company: {e}"))?;
                m.removed_companies.insert(id.clone());
                for (_, (uc, _, removed)) in m.users.iter_mut() {
                    if *uc == id {
                        *removed = true;
                    }
                }
                let users = &m.users;
                m.keys.retain(|_, u| users[u].0 != id);
            } else if got.is_ok() {
                return Err(format!("remove_company of unknown {id} succeeded"));
            }
        }
        Op::AddUser(u, c) => {
            let (uid, cid) = (user(*u), company(*c));
            let got = a.add_user(&uid, &cid);
            match m.users.get(&uid) {
                Some((other, _, _)) if *other != cid => {
                    if !matches!(got, Err(AdminError::UserOfOtherCompany { .. })) {
                        return Err(format!("add_user to other company: {got:?}"));
                    }
                }
                _ if !live_company(m, &cid) => {
                    if !matches!(got, Err(AdminError::UnknownCompany(_))) {
                        return Err(format!("add_user to unknown company: {got:?}"));
                    }
                }
                Some((_, _, false)) => {
                    if !matches!(got, Err(AdminError::DuplicateUser(_))) {
                        return Err(format!("add_user twice: {got:?}"));
                    }
                }
                _ => {
                    got.map_err(|e| format!("add_user: {e}"))?;
                    m.users.insert(uid, (cid, false, false));
                }
            }
        }
        Op::DisableUser(u) | Op::EnableUser(u) => {
            let uid = user(*u);
            let disabled = matches!(op, Op::DisableUser(_));
            let got = if disabled {
                a.disable_user(&uid)
            } else {
                a.enable_user(&uid)
            };
            if m.users.get(&uid).is_some_and(|(_, _, r)| !*r) {
                got.map_err(|e| format!("{op:?}: {e}"))?;
                m.users.get_mut(&uid).unwrap().1 = disabled;
            } else if !matches!(got, Err(AdminError::UnknownUser(_))) {
                return Err(format!("{op:?} of unknown user: {got:?}"));
            }
        }
        Op::RemoveUser(u) => {
            let uid = user(*u);
            let got = a.remove_user(&uid);
            if m.users.get(&uid).is_some_and(|(_, _, r)| !*r) {
                got.map_err(|e| format!("remove_user: {e}"))?;
                m.users.get_mut(&uid).unwrap().2 = true;
                m.keys.retain(|_, ku| *ku != uid);
            } else if !matches!(got, Err(AdminError::UnknownUser(_))) {
                return Err(format!("remove_user of unknown: {got:?}"));
            }
        }
        Op::AddKey(k, u) => {
            let (kid, uid) = (key(*k), user(*u));
            let got = a.add_key(&kid, &uid);
            if m.users.get(&uid).is_none_or(|(_, _, r)| *r) {
                if !matches!(got, Err(AdminError::UnknownUser(_))) {
                    return Err(format!("add_key to unknown user: {got:?}"));
                }
            } else if let std::collections::btree_map::Entry::Vacant(slot) = m.keys.entry(kid) {
                got.map_err(|e| format!("add_key: {e}"))?;
                slot.insert(uid);
            } else if !matches!(got, Err(AdminError::DuplicateKey(_))) {
                return Err(format!("add_key twice: {got:?}"));
            }
        }
        Op::RotateKey(o, n) => {
            let (old, new) = (key(*o), key(*n));
            let got = a.rotate_key(&old, &new, None);
            if !m.keys.contains_key(&old) {
                if !matches!(got, Err(AdminError::UnknownKey(_))) {
                    return Err(format!("rotate unknown: {got:?}"));
                }
            } else if m.keys.contains_key(&new) {
                if !matches!(got, Err(AdminError::DuplicateKey(_))) {
                    return Err(format!("rotate onto existing: {got:?}"));
                }
            } else {
                got.map_err(|e| format!("rotate: {e}"))?;
                let u = m.keys.remove(&old).unwrap();
                m.keys.insert(new, u);
            }
        }
        Op::RemoveKey(k) => {
            let kid = key(*k);
            let got = a.remove_key(&kid);
            if m.keys.remove(&kid).is_some() {
                got.map_err(|e| format!("remove_key: {e}"))?;
            } else if !matches!(got, Err(AdminError::UnknownKey(_))) {
                return Err(format!("remove unknown key: {got:?}"));
            }
        }
        Op::Revoke(k) => {
            let kid = key(*k);
            let fresh = a.revoke(&kid);
            if fresh != m.revoked.insert(kid) {
                return Err("revoke's answer".into());
            }
        }
        Op::Restore(k) => {
            let kid = key(*k);
            if a.restore(&kid) != m.revoked.remove(&kid) {
                return Err("restore's answer".into());
            }
        }
        Op::Decide(k) => {
            let kid = key(*k);
            let got = e.decide(&Request::new().token(&kid)).reason;
            let want = m.expect(&kid);
            if got != want {
                return Err(format!("decide {kid}: {got:?}, model says {want:?}\n{m:?}"));
            }
        }
    }
    // After every operation, every key decides as the model says.
    for k in 0..8 {
        let kid = key(k);
        let got = e.peek_reason(&kid);
        let want = m.expect(&kid);
        if got != want {
            return Err(format!(
                "after {op:?}: {kid} is {got:?}, model says {want:?}\n{m:?}"
            ));
        }
    }
    Ok(())
}

trait PeekReason {
    fn peek_reason(&self, key: &str) -> Reason;
}

impl PeekReason for Engine {
    /// A decision (the limit is far from full: it changes nothing the model tracks).
    fn peek_reason(&self, key: &str) -> Reason {
        self.decide(&Request::new().token(key)).reason
    }
}

/// A month of an operator's work through the Rust face, checked step by step against
/// the model: companies added, suspended, terminated; users added, disabled, removed;
/// keys added and rotated; tokens revoked and restored.
#[test]
fn a_sequence_of_admin_operations_matches_the_model() {
    let e = engine(EMPTY);
    let mut m = Model::default();
    use Op::*;
    let ops = [
        AddCompany(0),
        AddCompany(1),
        AddUser(0, 0),
        AddUser(1, 0),
        AddUser(2, 1),
        AddKey(0, 0),
        AddKey(1, 1),
        AddKey(2, 2),
        Decide(0),
        Decide(1),
        Decide(2),
        RotateKey(0, 3),
        Decide(0),
        Decide(3),
        DisableUser(1),
        Decide(1),
        EnableUser(1),
        SuspendCompany(1),
        Decide(2),
        ResumeCompany(1),
        TerminateCompany(1),
        Decide(2),
        ResumeCompany(1),
        RemoveUser(0),
        Decide(3),
        AddUser(0, 0),
        AddKey(4, 0),
        Decide(4),
        Revoke(4),
        Decide(4),
        Restore(4),
        RemoveCompany(0),
        Decide(4),
        Decide(1),
        AddCompany(0),
        AddKey(5, 0),
        AddUser(0, 0),
        AddKey(5, 0),
        Decide(5),
        RemoveKey(5),
        Decide(5),
        AddUser(3, 1),
        RemoveCompany(1),
        AddCompany(1),
        Decide(2),
    ];
    for op in &ops {
        step(&e, &mut m, op).unwrap();
    }
    let admin_events = e
        .drain_events()
        .into_iter()
        .filter(|ev| matches!(ev, Event::Admin(_)))
        .count();
    assert!(admin_events >= 25, "{admin_events}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Random admin operations interleaved with decisions: every decision as the
    /// model of the directory says.
    #[test]
    fn random_admin_operations_match_the_model(ops in prop::collection::vec(op(), 1..80)) {
        let e = engine(EMPTY);
        let mut m = Model::default();
        for op in &ops {
            if let Err(why) = step(&e, &mut m, op) {
                prop_assert!(false, "{}", why);
            }
        }
    }
}

const PLANS: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "1000/s"
[quota]
warning_percent = 80
hard_cap_percent = 150
[[quota.plans]]
name = "free"
calls_per_unit = 10
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [ { id = "ann", keys = ["ann-key-0001"] } ]
"#;

/// Item 4: a reload that changes the plans and the thresholds applies them at once,
/// with the usage counted so far (it needed a restart: the limit stayed 10 and the
/// report said so in a note).
#[test]
fn plans_and_thresholds_change_without_a_restart() {
    let e = engine(PLANS);
    let call = || e.decide(&Request::new().token("ann-key-0001"));
    for _ in 0..12 {
        assert!(call().allowed());
    }
    let q = call().quota.unwrap();
    assert_eq!(
        (q.used, q.limit, q.outcome),
        (13, 10, tollgate::quota::Outcome::OverLimit)
    );
    // Twice the calls per unit, and a hard cap at 110 %: limit 20, cap 22.
    let changed = PLANS
        .replace("calls_per_unit = 10", "calls_per_unit = 20")
        .replace("hard_cap_percent = 150", "hard_cap_percent = 110");
    let report = e.reload(policy(&changed)).unwrap();
    assert_eq!(report.quota_limits_changed, vec!["acme".to_owned()]);
    assert!(
        report.notes.iter().all(|n| !n.contains("restart")),
        "{:?}",
        report.notes
    );
    let q = call().quota.unwrap();
    assert_eq!(
        (q.used, q.limit, q.outcome),
        (14, 20, tollgate::quota::Outcome::Within)
    );
    let served = (0..20).filter(|_| call().allowed()).count();
    assert_eq!(served, 8, "up to the new hard cap of 22");
    // A period change still needs a restart, and says so.
    let weekly = changed.replace("[quota]\n", "[quota]\nperiod = { kind = \"week\" }\n");
    let report = e.reload(policy(&weekly)).unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("restart")),
        "{report:?}"
    );
    assert!(report.quota_limits_changed.is_empty());
}
