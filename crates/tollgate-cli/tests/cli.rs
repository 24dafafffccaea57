//! The `tollgate` binary end to end, on logs whose answers are known.

use std::path::Path;
use std::process::Command;

fn tollgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .expect("run tollgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const POLICY: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "2/s"
cost = { write = 2 }
[revocation]
denials = 3
window = "1m"
[quota]
hard_cap_percent = 150
[[quota.plans]]
name = "free"
calls_per_unit = 4
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [{ id = "ann", keys = ["key-aaaaaaaa-1"] }, { id = "bob", keys = ["key-bbbbbbbb-2"] }]
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

/// One JSON line.
fn line(second: u32, token: &str, method: &str) -> String {
    format!(
        "{{\"time\":\"2026-11-22T10:00:{second:02}Z\",\"token\":\"{token}\",\"method\":\"{method}\",\"path\":\"/v1/x\"}}\n"
    )
}

#[test]
fn replay_counts_known_answers() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "policy.toml", POLICY);
    let mut log = String::new();
    // Second 0: ann sends 5 GETs: 2 allowed, 3 denied -> revoked (3 denials in 1 min).
    for _ in 0..5 {
        log.push_str(&line(0, "key-aaaaaaaa-1", "GET"));
    }
    // Second 10: ann again: revoked.
    log.push_str(&line(10, "key-aaaaaaaa-1", "GET"));
    log.push_str("this is not json\n");
    // Bob: a write costs 2 (allowed, fills his 2/s), then a GET in the same second is
    // denied; later GETs go over the monthly quota (limit 4, hard cap 6).
    log.push_str(&line(1, "key-bbbbbbbb-2", "POST"));
    log.push_str(&line(1, "key-bbbbbbbb-2", "GET"));
    for s in 20..26 {
        log.push_str(&line(s, "key-bbbbbbbb-2", "GET"));
    }
    log.push_str(&line(30, "stranger", "GET"));
    log.push_str("{\"time\": 12\n");
    let log_path = write(dir.path(), "access.log", &log);

    let (code, out, err) = tollgate(&["replay", "--policy", &policy, &log_path, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["lines"], 17);
    assert_eq!(v["malformed"], 2);
    assert_eq!(v["malformed_shown"][0]["line"], 7);
    assert_eq!(v["malformed_shown"][1]["line"], 17);
    let req = &v["requests"];
    // Allowed: ann 2, bob POST + 3 GETs (quota: 2 + 1 + 3 = 6 = hard cap) -> 6.
    assert_eq!(req["allowed"], 6, "{v:#}");
    assert_eq!(req["limited"], 4, "{v:#}");
    assert_eq!(req["revoked"], 1);
    assert_eq!(req["quota_exceeded"], 3);
    assert_eq!(req["unknown_key"], 1);
    assert_eq!(v["limits"][0]["denied"], 4);
    assert_eq!(v["limits"][0]["top_offenders"][0]["denied"], 3);
    // Tokens never appear in full.
    assert!(!out.contains("key-aaaaaaaa-1"), "{out}");
    let revoked = v["revoked"][0].as_str().unwrap();
    assert!(
        revoked.starts_with("key#") && !revoked.contains("aaaa"),
        "{v:#}"
    );
    let notices = v["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 2, "warning and overage: {v:#}");
    assert_eq!(v["monthly_usage"][0]["used"], 6);

    // The same as text.
    let (code, out, _) = tollgate(&["replay", "--policy", &policy, &log_path]);
    assert_eq!(code, 0);
    assert!(out.contains("malformed line 7:"), "{out}");
    assert!(out.contains("per-token: allowed"), "{out}");
    assert!(out.contains("overage  acme 2026-11"), "{out}");
}

#[test]
fn replay_reads_the_combined_format_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "policy.toml", POLICY);
    let mut log = String::new();
    for _ in 0..3 {
        log.push_str("10.0.0.1 - ann [22/Nov/2026:10:00:00 +0000] \"GET /v1/x?token=key-aaaaaaaa-1 HTTP/1.1\" 200 12 \"-\" \"curl\"\n");
    }
    let log_path = write(dir.path(), "access.log", &log);
    let (code, out, err) = tollgate(&["replay", "--policy", &policy, &log_path, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["requests"]["allowed"].as_u64(),
            v["requests"]["limited"].as_u64()
        ),
        (Some(2), Some(1))
    );
}

#[test]
fn check_reports_file_line_column_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", POLICY);
    let (code, out, _) = tollgate(&["check", &good]);
    assert_eq!(code, 0);
    assert!(out.contains("ok (1 limits, quota)"), "{out}");
    let bad = write(
        dir.path(),
        "bad.toml",
        "version = 1\n[[limit]]\nname = \"x\"\nrate = \"10/fortnight\"\n",
    );
    let (code, _, err) = tollgate(&["check", &bad]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("{bad}:4:8: limit[0].rate:")), "{err}");
    let old = write(
        dir.path(),
        "old.toml",
        "version = 1\n[[limit]]\nname = \"x\"\nper_second = 10\n",
    );
    let (code, _, err) = tollgate(&["check", &old]);
    assert_eq!(code, 0);
    assert!(err.contains("deprecated"), "{err}");
}

#[test]
fn check_reports_the_memory_estimate_and_refuses_a_policy_over_budget() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", POLICY);
    let (code, out, _) = tollgate(&["check", &good]);
    assert_eq!(code, 0);
    assert!(
        out.contains("memory: about") && out.contains("memory_budget 1.0 GiB"),
        "{out}"
    );
    let huge = write(
        dir.path(),
        "huge.toml",
        "version = 1\n[[limit]]\nname = \"x\"\nrate = \"10/s\"\ncapacity = 10000000000\n",
    );
    let (code, _, err) = tollgate(&["check", &huge]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{huge}:5:12: limit[0].capacity:")),
        "{err}"
    );
    let big = write(
        dir.path(),
        "big.toml",
        "memory_budget = \"100MB\"\nversion = 1\n[[limit]]\nname = \"x\"\nrate = \"10/s\"\ncapacity = 10000000\n",
    );
    let (code, _, err) = tollgate(&["check", &big]);
    assert_eq!(code, 2);
    assert!(err.contains("over memory_budget"), "{err}");
}

#[test]
fn bench_prints_json() {
    let (code, out, err) = tollgate(&[
        "bench",
        "--threads",
        "2",
        "--keys",
        "1000",
        "--distribution",
        "zipf",
        "--algorithm",
        "sliding-window",
        "--seconds",
        "0.2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["threads"], 2);
    assert_eq!(v["distribution"], "zipf(1.1)");
    assert!(v["decisions"].as_u64().unwrap() > 0);
    let (code, _, err) = tollgate(&["bench", "--distribution", "pareto"]);
    assert_eq!(code, 2);
    assert!(err.contains("uniform"), "{err}");
}

/// A what-if run never touches the policy's billing journal (issue #15, item 12): `check`
/// does not create it, `replay` neither creates nor writes it (so the real month's usage
/// and notices are never marked), and `--journal PATH` counts in the file named.
#[test]
fn check_and_replay_never_open_the_policys_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("billing.db");
    let text = POLICY.replace(
        "[quota]\n",
        &format!("[quota]\njournal = {:?}\n", journal.to_str().unwrap()),
    );
    let policy = write(dir.path(), "policy.toml", &text);
    let log = write(dir.path(), "access.log", &line(0, "key-aaaaaaaa-1", "GET"));

    let (code, out, err) = tollgate(&["check", &policy]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!journal.exists(), "check created the policy's journal");
    assert!(out.contains("not opened"), "{out}");

    let (code, out, err) = tollgate(&["replay", "--policy", &policy, &log]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!journal.exists(), "replay created the policy's journal");

    // An existing journal is not written either.
    std::fs::write(&journal, b"").unwrap();
    let (code, out, err) = tollgate(&["replay", "--policy", &policy, &log]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::metadata(&journal).unwrap().len(),
        0,
        "replay wrote the journal"
    );

    // Asked for explicitly, a journal counts the replay.
    let chosen = dir.path().join("what-if.db");
    let (code, out, err) = tollgate(&[
        "replay",
        "--policy",
        &policy,
        "--journal",
        chosen.to_str().unwrap(),
        &log,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        chosen.exists(),
        "--journal names the journal the replay counts in"
    );
}

/// A policy whose limits live on a remote backend replays in memory instead of failing
/// (or contacting the backend).
#[test]
fn replay_decides_remote_limits_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let text = POLICY.replace("rate = \"2/s\"\n", "rate = \"2/s\"\nbackend = \"redis\"\n");
    let policy = write(dir.path(), "policy.toml", &text);
    let log = write(dir.path(), "access.log", &line(0, "key-aaaaaaaa-1", "GET"));
    let (code, out, err) = tollgate(&["replay", "--policy", &policy, &log]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("decided in memory"), "{err}");
    let (code, out, err) = tollgate(&["check", &policy]);
    assert_eq!(code, 0, "{out}{err}");
}
