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
    assert_eq!(v["schema_version"], 1);
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
    // Offenders are structured attributes, the token as a redacted reference.
    let offender = &v["limits"][0]["top_offenders"][0];
    assert_eq!(offender["denied"], 3);
    let token = offender["attributes"]["token"].as_str().unwrap();
    assert!(
        token.starts_with("key#") && !token.contains("aaaa"),
        "{v:#}"
    );
    assert_eq!(
        offender["attributes"].as_object().unwrap().len(),
        1,
        "the limit's key only"
    );
    // Tokens never appear in full.
    assert!(!out.contains("key-aaaaaaaa-1"), "{out}");
    assert!(!out.contains("key-bbbbbbbb-2"), "{out}");
    let revoked = &v["revoked"][0];
    assert_eq!(revoked["attribute"], "token");
    assert_eq!(revoked["key"].as_str(), Some(token), "the same reference");
    // Ann's third denial, on line 5, revoked her.
    assert_eq!(revoked["line"], 5, "{v:#}");
    assert_eq!(revoked["time"], "2026-11-22T10:00:00Z");
    // Ann's 2 calls count 2; Bob's POST (line 8, 10:00:01) brings usage to 3, 80% of
    // the limit of 4 (the warning); his GETs at 10:00:20.. (lines 10-15) bring it to 4,
    // then 5 at line 11 (10:00:21): over the limit, the overage.
    let notices = v["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 2, "warning and overage: {v:#}");
    assert_eq!(
        (
            &notices[0]["kind"],
            &notices[0]["line"],
            &notices[0]["time"]
        ),
        (&"warning".into(), &8.into(), &"2026-11-22T10:00:01Z".into()),
        "{v:#}"
    );
    assert_eq!(
        (
            &notices[1]["kind"],
            &notices[1]["line"],
            &notices[1]["time"]
        ),
        (
            &"overage".into(),
            &11.into(),
            &"2026-11-22T10:00:21Z".into()
        ),
        "{v:#}"
    );
    assert_eq!(
        (
            &notices[0]["used"],
            &notices[1]["used"],
            &notices[1]["company"]
        ),
        (&3.into(), &5.into(), &"acme".into())
    );
    assert_eq!(v["monthly_usage"][0]["used"], 6);
    // A stable order: the top-level fields as documented (serde_json's `Value` sorts
    // its keys, so the order is read from the text).
    let at = |name: &str| out.find(&format!("\n  \"{name}\":")).unwrap_or(usize::MAX);
    let order = [
        "schema_version",
        "lines",
        "malformed",
        "malformed_shown",
        "seconds",
        "requests",
        "limits",
        "revoked",
        "monthly_usage",
        "notices",
    ];
    assert!(
        order
            .windows(2)
            .all(|w| at(w[0]) < at(w[1]) && at(w[1]) != usize::MAX),
        "{out}"
    );

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
    assert_eq!(code, 1, "an invalid policy is a runtime failure");
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
    assert_eq!(code, 1);
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
    assert_eq!(code, 1);
    assert!(err.contains("over memory_budget"), "{err}");
}

/// `check` reports a host-shared state's size and never attaches to it (issue #19).
#[test]
fn check_reports_the_shared_state_size_without_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("gw");
    let text = format!(
        "version = 1\n[state]\nshared = {:?}\n[[limit]]\nname = \"x\"\nrate = \"10/s\"\ncapacity = 1000\n",
        prefix.display().to_string()
    );
    let policy = write(dir.path(), "shared.toml", &text);
    let (code, out, err) = tollgate(&["check", &policy]);
    assert_eq!(code, 0, "{err}");
    // The seed file (80 bytes), the limit's region (a 4,096-byte header, 313 claim
    // words: 2,504 bytes rounded up to 2,560, and 1,252 slots of 16 bytes) and the
    // revoked set's (room for 262,144 values).
    assert!(
        out.contains("shared state") && out.contains("3 files") && out.contains("(not attached)"),
        "{out}"
    );
    let (code, json, _) = tollgate(&["check", "--json", &policy]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["memory"]["shared"]["files"], 3);
    let revoked = tollgate::core::shared::region_size(262_144).unwrap() as u64;
    assert_eq!(
        v["memory"]["shared"]["bytes"],
        80 + 4096 + 2560 + 1252 * 16 + revoked
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "check created files: {left:?}");
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

/// Exit codes (issue #21): 0 success, 1 a runtime failure (invalid policy, unreadable
/// file, a failing replay), 2 a usage error (clap's, and an invalid --map or --keys).
#[test]
fn exit_codes_tell_runtime_failures_from_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", POLICY);
    let bad = write(
        dir.path(),
        "bad.toml",
        "version = 1\n[[limit]]\nname = \"x\"\n",
    );
    let log = write(dir.path(), "access.log", &line(0, "key-aaaaaaaa-1", "GET"));
    let missing = dir.path().join("missing").to_str().unwrap().to_owned();
    let a_dir = dir.path().to_str().unwrap().to_owned();
    let cases: &[(&[&str], i32)] = &[
        (&["check", &good], 0),
        (&["--help"], 0),
        (&["--version"], 0),
        (&["replay", "--policy", &good, &log], 0),
        // Runtime failures.
        (&["check", &bad], 1),
        (&["check", &missing], 1),
        (&["check", "--json", &bad], 1),
        (&["replay", "--policy", &bad, &log], 1),
        (&["replay", "--policy", &missing, &log], 1),
        (&["replay", "--policy", &good, &missing], 1),
        // A directory opens but cannot be read: the replay itself fails.
        (
            &["replay", "--policy", &good, "--format", "json", &a_dir],
            1,
        ),
        (&["bench", "--policy", &bad, "--requests", "10"], 1),
        // Usage errors.
        (&[], 2),
        (&["frobnicate"], 2),
        (&["check"], 2),
        (&["check", &good, "--frobnicate"], 2),
        (&["replay", &log], 2),
        (&["replay", "--policy", &good, "--format", "xml", &log], 2),
        (&["replay", "--policy", &good, "--map", "token", &log], 2),
        (&["bench", "--distribution", "pareto"], 2),
        (&["bench", "--duration", "forever"], 2),
        (&["bench", "--keys", "token=0"], 2),
        (
            &[
                "bench",
                "--policy",
                &good,
                "--keys",
                "route=5",
                "--requests",
                "10",
            ],
            2,
        ),
        (&["bench", "--policy", &good, "--rate", "5/s"], 2),
    ];
    for (args, want) in cases {
        let (code, out, err) = tollgate(args);
        assert_eq!(code, *want, "tollgate {args:?}:\n{out}{err}");
        if *want == 2 {
            assert!(
                err.starts_with("error:") || err.contains("Usage:"),
                "clap's own message: {args:?}: {err}"
            );
        } else if *want == 1 {
            assert!(err.contains("tollgate: "), "{args:?}: {err}");
        }
    }
}

#[test]
fn map_syntax_and_exit_codes_are_in_the_help() {
    let (code, out, _) = tollgate(&["replay", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("query:NAME") && out.contains("path_segment:N"),
        "{out}"
    );
    assert!(out.contains("Example: --map 'token=query:api_key"), "{out}");
    let (_, out, _) = tollgate(&["--help"]);
    assert!(out.contains("Exit status: 0 success, 1"), "{out}");
    let (_, out, _) = tollgate(&["bench", "--help"]);
    assert!(
        out.contains("- uniform:") && out.contains("- zipf:"),
        "{out}"
    );
    let (_, out, _) = tollgate(&["bench", "-h"]);
    assert!(out.contains("[possible values: uniform, zipf]"), "{out}");
}

#[test]
fn check_json_reports_errors_warnings_limits_quota_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", POLICY);
    let (code, out, err) = tollgate(&["check", "--json", &good]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["ok"], true);
    assert_eq!(v["error"], serde_json::Value::Null);
    assert_eq!(v["file"], good.as_str());
    assert_eq!(v["limits"][0]["name"], "per-token");
    assert_eq!(v["limits"][0]["key"], serde_json::json!(["token"]));
    assert_eq!(v["limits"][0]["algorithm"], "gcra");
    assert!(v["limits"][0]["memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["quota"]["companies"], 1);
    assert_eq!(v["quota"]["keys"], 2);
    assert_eq!(v["quota"]["plans"], serde_json::json!(["free"]));
    let memory = &v["memory"];
    assert_eq!(memory["budget_bytes"], 1u64 << 30);
    assert_eq!(memory["estimate_bytes"], v["limits"][0]["memory_bytes"]);
    assert!(!out.contains("key-aaaaaaaa-1"), "no keys in clear: {out}");

    let bad = write(
        dir.path(),
        "bad.toml",
        "version = 1\n[[limit]]\nname = \"x\"\nrate = \"10/fortnight\"\n",
    );
    let (code, out, _) = tollgate(&["check", "--json", &bad]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    let e = &v["error"];
    assert_eq!(
        (&e["file"], &e["line"], &e["column"], &e["field"]),
        (
            &bad.as_str().into(),
            &4.into(),
            &8.into(),
            &"limit[0].rate".into()
        ),
        "{v:#}"
    );
    assert!(
        e["message"].as_str().unwrap().contains("fortnight"),
        "{v:#}"
    );

    let old = write(
        dir.path(),
        "old.toml",
        "version = 1\n[[limit]]\nname = \"x\"\nper_second = 10\n",
    );
    let (code, out, _) = tollgate(&["check", "--json", &old]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["warnings"][0]["line"], 4, "{v:#}");
    assert_eq!(v["quota"], serde_json::Value::Null);
}

/// `tollgate bench --policy`: the performance team's own policy, requests drawn from
/// its keys, what-if (the policy's journal is not created), sane numbers.
#[test]
fn bench_runs_a_policy_and_prints_sane_json() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("billing.db");
    let text = POLICY.replace(
        "[quota]\n",
        &format!("[quota]\njournal = {:?}\n", journal.to_str().unwrap()),
    );
    let policy = write(dir.path(), "policy.toml", &text);
    let (code, out, err) = tollgate(&[
        "bench",
        "--policy",
        &policy,
        "--threads",
        "2",
        "--requests",
        "20000",
        "--distribution",
        "zipf",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!journal.exists(), "bench opened the policy's journal");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["decisions"], 20000);
    assert_eq!(v["attributes"][0]["attribute"], "token");
    assert_eq!(v["attributes"][0]["keys"], 2, "the policy's own keys");
    assert_eq!(v["attributes"][0]["values"], "policy");
    assert_eq!(v["attributes"][0]["distribution"], "zipf(1.1)");
    let o = &v["outcomes"];
    assert_eq!(o["unknown_key"], 0, "{v:#}");
    // 2 keys at 2/s, a quota of 6 and revocation after 3 denials: a few allowed.
    let allowed = o["allowed"].as_u64().unwrap();
    assert!((1..=6).contains(&allowed), "{v:#}");
    assert!(!out.contains("key-aaaaaaaa-1"), "{out}");
    let l = &v["latency_ns"];
    let n = |k: &str| l[k].as_u64().unwrap();
    assert!(n("p50") <= n("p90") && n("p90") <= n("p99") && n("p99") <= n("p99_9"));
    assert!(n("p99_9") <= n("max") && n("max") > 0, "{v:#}");
    assert!(v["decisions_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_of_the_example_policy_for_a_second() {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.toml");
    let (code, out, err) = tollgate(&[
        "bench",
        "--policy",
        policy,
        "--duration",
        "1s",
        "--keys",
        "tenant=100,client=1000:zipf",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["decisions_per_second"].as_f64().unwrap() > 0.0, "{v:#}");
    assert!(v["seconds"].as_f64().unwrap() > 0.0, "{v:#}");
    assert_eq!(v["outcomes"]["unknown_key"], 0, "{v:#}");
    let names: Vec<&str> = v["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attribute"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["token", "tenant", "client", "company"]);
    assert_eq!(v["attributes"][1]["keys"], 100);
    assert_eq!(v["attributes"][2]["distribution"], "zipf(1.1)");
    let l = &v["latency_ns"];
    let n = |k: &str| l[k].as_u64().unwrap();
    assert!(
        n("p50") <= n("p99") && n("p99") <= n("max") && n("p50") > 0,
        "{v:#}"
    );

    let (code, out, err) = tollgate(&["bench", "--policy", policy, "--requests", "1000"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("decisions 1000 (") && out.contains("p99.9"),
        "{out}"
    );
}

/// Without --policy, one synthetic limit keyed on the token, as before.
#[test]
fn bench_without_a_policy_benches_one_synthetic_limit() {
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
        "--rate",
        "10/s",
        "--seconds",
        "0.2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["threads"], 2);
    assert_eq!(v["policy"], serde_json::Value::Null);
    assert_eq!(v["attributes"][0]["keys"], 1000);
    assert_eq!(v["attributes"][0]["distribution"], "zipf(1.1)");
    let decisions = v["decisions"].as_u64().unwrap();
    let allowed = v["outcomes"]["allowed"].as_u64().unwrap();
    let limited = v["outcomes"]["limited"].as_u64().unwrap();
    assert!(allowed > 0 && allowed + limited == decisions, "{v:#}");
}

/// `tollgate usage --journal FILE` reports what a replay counted in a journal, per
/// company and per user, read-only; a missing journal is an error and is not created.
#[test]
fn usage_reports_a_journal_per_company_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "policy.toml", POLICY);
    let mut log = String::new();
    for s in 0..3 {
        log.push_str(&line(s, "key-aaaaaaaa-1", "GET"));
    }
    log.push_str(&line(4, "key-bbbbbbbb-2", "GET"));
    let log = write(dir.path(), "access.log", &log);
    let journal = dir.path().join("usage.db");
    let j = journal.to_str().unwrap();
    let (code, out, err) = tollgate(&["replay", "--policy", &policy, "--journal", j, &log]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = tollgate(&["usage", "--journal", j, "--format", "csv"]);
    assert_eq!(code, 0, "{out}{err}");
    // The limit in force for the period (1 machine x 4 calls), from `period_limits`.
    assert_eq!(
        out,
        "company,period,calls,used,limit,overage,plan,suggested_plan\nacme,2026-11,4,4,4,0,,\n"
    );
    let (code, out, err) = tollgate(&["usage", "--journal", j, "--by", "user", "--format", "csv"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "company,user,period,calls,used,limit,overage,plan,suggested_plan\n\
         acme,ann,2026-11,3,3,,,,\nacme,bob,2026-11,1,1,,,,\n"
    );
    assert!(!out.contains("key-"), "no API key in a report: {out}");
    let (code, out, _) = tollgate(&["usage", "--journal", j, "--company", "other"]);
    assert_eq!(code, 0);
    assert!(!out.contains("acme"), "{out}");

    let missing = dir.path().join("missing.db");
    let (code, _, err) = tollgate(&["usage", "--journal", missing.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no such journal"), "{err}");
    assert!(!missing.exists(), "a report created the journal");
    // Exactly one source.
    let (code, _, _) = tollgate(&["usage"]);
    assert_eq!(code, 2);
}

/// `tollgate admin --journal FILE`: an operator's changes written into the journal
/// (issue 17), applied when an engine next starts on it; tokens from standard input,
/// never printed in full.
#[test]
fn admin_changes_in_the_journal_apply_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "policy.toml", POLICY);
    let log = write(
        dir.path(),
        "access.log",
        &(line(0, "key-aaaaaaaa-1", "GET") + &line(1, "key-bbbbbbbb-2", "GET")),
    );
    let journal = dir.path().join("usage.db");
    let j = journal.to_str().unwrap();
    let (code, out, err) = tollgate(&["replay", "--policy", &policy, "--journal", j, &log]);
    assert_eq!(code, 0, "{out}{err}");
    let before = out;

    // A missing journal is refused and not created.
    let missing = dir.path().join("none.db");
    let (code, _, err) = tollgate(&["admin", "--journal", missing.to_str().unwrap(), "list"]);
    assert_eq!(code, 1, "{err}");
    assert!(!missing.exists());

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["admin", "--journal", j, "revoke", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"key-aaaaaaaa-1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.contains("revoked until restored") && !said.contains("key-aaaaaaaa-1"),
        "{said}"
    );
    let (code, out, err) = tollgate(&["admin", "--journal", j, "disable-user", "bob"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"bob\" disabled"), "{out}");
    let (code, listing, _) = tollgate(&["admin", "--journal", j, "list"]);
    assert_eq!(code, 0);
    assert!(
        listing.contains("UserDisabled") && listing.contains("revoked key#"),
        "{listing}"
    );
    assert!(!listing.contains("key-aaaaaaaa-1"), "{listing}");
    let raw = std::fs::read(&journal).unwrap();
    assert!(
        !raw.windows(14).any(|w| w == b"key-aaaaaaaa-1"),
        "the token is in the journal file"
    );

    // The same traffic again on the same journal: ann's key revoked, bob disabled.
    let (code, after, err) = tollgate(&["replay", "--policy", &policy, "--journal", j, &log]);
    assert_eq!(code, 0, "{after}{err}");
    let count = |text: &str, what: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(what))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or(0) // a count of 0 may be left out
    };
    assert_eq!(
        (count(&before, "allowed"), count(&before, "revoked")),
        (2, 0),
        "{before}"
    );
    assert_eq!(
        (count(&after, "allowed"), count(&after, "revoked")),
        (0, 2),
        "{after}"
    );
}
