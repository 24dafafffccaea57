//! `[state] shared` (issue #19): the engines of several processes (and several engines of
//! one process) that name one shared state decide each key against one state. The test
//! binary runs itself as the child processes (`TOLLGATE_STATE_CHILD`).

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tollgate::{Engine, EngineError, Policy, Request};

fn prefix(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tollgate-state-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("gw")
}

fn policy(prefix: &Path, rate: &str, capacity: usize, overrides: &str) -> Policy {
    let text = format!(
        r#"
        version = 1
        [state]
        shared = {prefix:?}
        [[limit]]
        name = "per-token/tenant"
        rate = "{rate}"
        capacity = {capacity}
        {overrides}
        [[limit]]
        name = "per-tenant"
        key = ["tenant"]
        rate = "1000/min"
        "#,
        prefix = prefix.display().to_string()
    );
    Policy::from_toml(&text).unwrap().0
}

/// A request at the engine's clock (a reload re-expresses states at the clock's now,
/// so the requests must be near it).
fn req(token: &str) -> Request<'_> {
    Request::new().token(token).tenant("acme").method("GET")
}

fn allowed(engine: &Engine, token: &str, n: usize) -> usize {
    (0..n)
        .filter(|_| engine.decide(&req(token)).allowed())
        .count()
}

/// Runs the body of a child process when the test binary was started as one.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var("TOLLGATE_STATE_CHILD") else {
        return;
    };
    let prefix = PathBuf::from(std::env::var("TOLLGATE_STATE_PREFIX").unwrap());
    let engine = Engine::new(policy(&prefix, "10/min", 1000, "")).unwrap();
    match role.as_str() {
        "decide" => println!("ALLOWED {}", allowed(&engine, "tok", 30)),
        "flood" => {
            // New tokens as fast as it can (every one an insert) until killed.
            let id = std::process::id();
            for i in 0u64.. {
                let t = format!("flood-{id}-{i}");
                engine.decide(&req(&t));
            }
        }
        "quota" => {
            let engine = Engine::new(quota_policy(&prefix)).unwrap();
            let n = (0..30)
                .filter(|_| engine.decide(&Request::new().token(QUOTA_KEY)).allowed())
                .count();
            let kinds: Vec<String> = engine
                .pending_notices()
                .iter()
                .map(|n| format!("{:?}", n.kind))
                .collect();
            println!("ALLOWED {n}");
            println!("NOTICES {}", kinds.join(","));
        }
        r => panic!("unknown child role {r}"),
    }
    std::process::exit(0);
}

const QUOTA_KEY: &str = "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77";

/// A quota of 20 a month for acme, refused above 30 (150%), warned at 16 (80%).
fn quota_policy(prefix: &Path) -> Policy {
    let text = format!(
        r#"
        version = 1
        [state]
        shared = {prefix:?}
        [quota]
        hard_cap_percent = 150
        [[quota.companies]]
        id = "acme"
        limit_override = 20
        users = [{{ id = "ann", keys = ["{QUOTA_KEY}"] }}]
        "#,
        prefix = prefix.display().to_string()
    );
    Policy::from_toml(&text).unwrap().0
}

/// Runs four child processes in `role` and returns what each printed after `ALLOWED `
/// and `NOTICES `.
fn run_children(prefix: &Path, role: &str) -> Vec<(usize, String)> {
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
                .env("TOLLGATE_STATE_CHILD", role)
                .env("TOLLGATE_STATE_PREFIX", prefix)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            let text = String::from_utf8(out.stdout).unwrap();
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.split(name).nth(1))
                    .map(|v| v.trim().to_owned())
            };
            let allowed = field("ALLOWED ")
                .unwrap_or_else(|| panic!("no ALLOWED line in {text:?}"))
                .parse()
                .unwrap();
            (allowed, field("NOTICES ").unwrap_or_default())
        })
        .collect()
}

#[test]
fn four_processes_count_one_quota_and_raise_each_notice_once() {
    let prefix = prefix("quota");
    let runs = run_children(&prefix, "quota");
    let allowed: usize = runs.iter().map(|r| r.0).sum();
    // 4 x 30 calls on one company: counted up to the hard cap (30) once for the host.
    assert_eq!(allowed, 30, "{runs:?}");
    let notices: Vec<&str> = runs
        .iter()
        .flat_map(|r| r.1.split(',').filter(|s| !s.is_empty()))
        .collect();
    let count = |k: &str| notices.iter().filter(|n| n.eq_ignore_ascii_case(k)).count();
    assert_eq!((count("warning"), count("overage")), (1, 1), "{notices:?}");
    // The host-shared quota waits on no server: async callers decide inline.
    assert!(!Engine::new(quota_policy(&prefix))
        .unwrap()
        .decides_remotely());
    // A journal with shared state is refused until one writer per host exists.
    let mut p = quota_policy(&prefix);
    p.quota.as_mut().unwrap().journal = Some(prefix.with_file_name("usage.db"));
    let e = Engine::new(p).unwrap_err();
    assert!(e.to_string().contains("journal"), "{e}");
}

#[test]
fn four_processes_admit_the_limit_once() {
    let prefix = prefix("procs");
    let total: usize = run_children(&prefix, "decide").iter().map(|r| r.0).sum();
    // Four processes, 30 requests each, one token at 10/min: 10 in all, not 40.
    assert_eq!(total, 10);
    // A process started later sees the same state.
    let engine = Engine::new(policy(&prefix, "10/min", 1000, "")).unwrap();
    assert_eq!(allowed(&engine, "tok", 5), 0);
    assert_eq!(allowed(&engine, "other", 15), 10);
}

#[test]
fn engines_share_limits_and_overrides_and_private_ones_do_not() {
    let prefix = prefix("engines");
    let over = r#"override = [{ match = { token = "vip" }, rate = "20/min" }]"#;
    let a = Engine::new(policy(&prefix, "10/min", 1000, over)).unwrap();
    let b = Engine::new(policy(&prefix, "10/min", 1000, over)).unwrap();
    assert_eq!(allowed(&a, "tok", 6) + allowed(&b, "tok", 10), 10);
    assert_eq!(allowed(&a, "vip", 12) + allowed(&b, "vip", 12), 20);
    // The per-tenant limit is shared too: 1000/min over both engines' 40 admitted...
    let d = a.decide(&req("fresh"));
    assert!(d.allowed());
    // Private engines (no [state]) each enforce the whole limit on their own.
    let text = r#"
        version = 1
        [[limit]]
        name = "per-token/tenant"
        rate = "10/min"
    "#;
    let p = Engine::new(Policy::from_toml(text).unwrap().0).unwrap();
    let q = Engine::new(Policy::from_toml(text).unwrap().0).unwrap();
    assert_eq!(allowed(&p, "tok", 30) + allowed(&q, "tok", 30), 20);
    // No token appears in a region's file name.
    for entry in std::fs::read_dir(prefix.parent().unwrap()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(!name.contains("vip"), "{name}");
    }
}

#[test]
fn a_reload_that_raises_the_rate_carries_the_used_capacity_to_every_process() {
    let prefix = prefix("reload");
    let a = Engine::new(policy(&prefix, "10/min", 1000, "")).unwrap();
    let b = Engine::new(policy(&prefix, "10/min", 1000, "")).unwrap();
    assert_eq!(allowed(&a, "tok", 10), 10);
    // `a` reloads with 20/min: the token used 10 of 10, so 10 of 20 are left, for both.
    let report = a.reload(policy(&prefix, "20/min", 1000, "")).unwrap();
    assert!(
        report.carried.iter().any(|n| n == "per-token/tenant"),
        "{report:?}"
    );
    // A new process with the new policy (nginx's HUP) finds the state carried once.
    let c = Engine::new(policy(&prefix, "20/min", 1000, "")).unwrap();
    assert_eq!(allowed(&c, "tok", 6) + allowed(&a, "tok", 10), 10);
    // `b` still runs the old policy (a draining worker): it sees a used-up token too.
    assert_eq!(allowed(&b, "tok", 5), 0);
    // Lowering the rate never hands out a fresh burst.
    a.reload(policy(&prefix, "5/min", 1000, "")).unwrap();
    assert_eq!(allowed(&a, "tok", 5), 0);
    assert_eq!(allowed(&a, "new", 10), 5);
}

#[test]
fn a_region_of_another_capacity_or_a_changed_state_path_is_refused_clearly() {
    let prefix = prefix("mismatch");
    let a = Engine::new(policy(&prefix, "10/min", 1000, "")).unwrap();
    let e = Engine::new(policy(&prefix, "10/min", 2000, "")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("per-token/tenant") && msg.contains("region size"),
        "{msg}"
    );
    let other = prefix.with_file_name("elsewhere");
    let e = a.reload(policy(&other, "10/min", 1000, "")).unwrap_err();
    assert!(matches!(e, EngineError::State(_)), "{e}");
    // The failed reload changed nothing.
    assert_eq!(allowed(&a, "tok", 12), 10);
}

#[test]
fn a_revocation_or_restore_in_one_process_holds_in_every_other() {
    let prefix = prefix("revoked");
    let a = Engine::new(policy(&prefix, "1000/min", 1000, "")).unwrap();
    let b = Engine::new(policy(&prefix, "1000/min", 1000, "")).unwrap();
    assert!(b.decide(&req("tok")).allowed());
    // An operator revokes on `a` (no [revocation] section): `b` refuses at once.
    assert!(a.revoke("tok"));
    assert_eq!(b.decide(&req("tok")).reason, tollgate::Reason::Revoked);
    assert!(b.is_revoked("tok"));
    assert!(!b.revoke("tok"), "already revoked on the host");
    assert!(b.decide(&req("other")).allowed(), "only that token");
    // A process started later sees it too.
    let c = Engine::new(policy(&prefix, "1000/min", 1000, "")).unwrap();
    assert_eq!(c.decide(&req("tok")).reason, tollgate::Reason::Revoked);
    // Restored on `b`: served by all three.
    assert!(b.restore("tok"));
    for e in [&a, &b, &c] {
        assert!(e.decide(&req("tok")).allowed());
    }
    // A suspension made on `c` holds on `a`.
    assert!(c.suspend("tok", std::time::Duration::from_secs(3600)));
    assert_eq!(a.decide(&req("tok")).reason, tollgate::Reason::Revoked);
}

#[test]
fn denials_in_every_process_count_towards_one_automatic_revocation() {
    let prefix = prefix("offenders");
    let text = format!(
        "version = 1\n[state]\nshared = {:?}\n[revocation]\ndenials = 4\nwindow = \"1m\"\n\
         [[limit]]\nname = \"tight\"\nkey = [\"token\"]\nrate = \"1/h\"\n",
        prefix.display().to_string()
    );
    let p = || Engine::new(Policy::from_toml(&text).unwrap().0).unwrap();
    let (a, b) = (p(), p());
    assert!(a.decide(&req("tok")).allowed());
    // Denials alternate between the two processes: 2 + 2 = 4 revoke the token for both.
    let reasons: Vec<_> = (0..4)
        .map(|i| [&a, &b][i % 2].decide(&req("tok")).reason)
        .collect();
    assert!(
        reasons.iter().all(|r| *r == tollgate::Reason::Limited),
        "{reasons:?}"
    );
    assert_eq!(a.decide(&req("tok")).reason, tollgate::Reason::Revoked);
    assert_eq!(b.decide(&req("tok")).reason, tollgate::Reason::Revoked);
}

/// Workers SIGKILLed at any instruction while inserting keys (nginx replaces workers at
/// any time): afterwards every new key is still limited exactly (no stuck claim, no key
/// stored twice). 20 kills here; `TOLLGATE_STATE_KILLS=N` for a longer campaign.
#[test]
fn workers_killed_while_inserting_leave_every_key_exact() {
    let kills: usize = std::env::var("TOLLGATE_STATE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let prefix = prefix("kills");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    for round in 0..kills {
        if std::time::Instant::now() > deadline {
            panic!("the campaign took too long at round {round}");
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env("TOLLGATE_STATE_CHILD", "flood")
            .env("TOLLGATE_STATE_PREFIX", &prefix)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it get going (attach, then insert), then kill it mid-stride.
        std::thread::sleep(std::time::Duration::from_millis(
            20 + (round as u64 * 7) % 30,
        ));
        child.kill().unwrap();
        child.wait().unwrap(); // reaped: its claims are a dead process's
    }
    let engine = Engine::new(policy(&prefix, "10/min", 1000, "")).unwrap();
    // The killed workers did insert: the region is full of their keys (1,252 slots).
    let store = engine.metrics().limits[0].store.unwrap();
    assert!(store.keys >= 1000, "{store:?}");
    // A tenant of its own for each (the floods used up acme's per-tenant 1000/min).
    for t in 0..200 {
        let (token, tenant) = (format!("after-{t}"), format!("tenant-{t}"));
        let r = || Request::new().token(&token).tenant(&tenant).method("GET");
        let n = (0..12).filter(|_| engine.decide(&r()).allowed()).count();
        assert_eq!(n, 10, "token {token}");
    }
}

#[test]
fn a_limit_named_like_a_state_file_keeps_its_own_region() {
    let prefix = prefix("names");
    let text = format!(
        "version = 1\n[state]\nshared = {:?}\n\
         [[limit]]\nname = \"quota\"\nrate = \"2/min\"\n\
         [[limit]]\nname = \"seeds\"\nkey = [\"tenant\"]\nrate = \"100/min\"\n\
         [quota]\n[[quota.companies]]\nid = \"acme\"\nlimit_override = 100\n\
         users = [{{ id = \"ann\", keys = [\"{QUOTA_KEY}\"] }}]\n",
        prefix.display().to_string()
    );
    let p = || Engine::new(Policy::from_toml(&text).unwrap().0).unwrap();
    let (a, b) = (p(), p());
    let r = || Request::new().token(QUOTA_KEY).tenant("acme").method("GET");
    let n = (0..3).filter(|_| a.decide(&r()).allowed()).count()
        + (0..3).filter(|_| b.decide(&r()).allowed()).count();
    assert_eq!(n, 2, "the limit named quota, shared, 2/min");
}
