//! `tollgate usage --postgres` run as a binary against a private PostgreSQL cluster.
#[path = "../../tollgate-postgres/tests/support/mod.rs"]
mod support;

use std::process::Command;

use tollgate_postgres::{PgLedger, UsageDelta};

fn d(company: &str, user: &str, period: &str, units: i64) -> UsageDelta {
    UsageDelta {
        company: company.into(),
        user: Some(user.into()),
        period: period.into(),
        period_start: if period == "2026-11" {
            1_793_491_200
        } else {
            1_796_083_200
        },
        calls: units,
        units,
    }
}

fn usage(url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["usage", "--postgres", url])
        .args(args)
        .output()
        .expect("run tollgate usage");
    assert!(
        out.status.success(),
        "tollgate usage {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn usage_prints_totals_and_statements_as_csv_json_and_table() {
    let pg = cluster_or_skip!();
    let mut l = PgLedger::connect(&pg.url, "gw1").expect("connect");
    l.write_batch(
        "b1",
        &[
            d("acme", "u1", "2026-11", 70),
            d("acme", "u2", "2026-11", 50),
            d("acme", "u1", "2026-12", 5),
            d("globex", "g1", "2026-11", 10),
        ],
    )
    .expect("write");
    l.close_period("acme", "2026-11", 100, Some("basic"), Some("pro"))
        .expect("close");

    let csv = usage(&pg.url, &["--format", "csv"]);
    assert_eq!(
        csv,
        "company,period,calls,used,limit,overage,plan,suggested_plan\n\
         acme,2026-11,120,120,100,20,basic,pro\n\
         acme,2026-12,5,5,,,,\n\
         globex,2026-11,10,10,,,,\n"
    );
    let by_user = usage(
        &pg.url,
        &[
            "--company",
            "acme",
            "--period",
            "2026-11",
            "--by",
            "user",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        by_user,
        "company,user,period,calls,used,limit,overage,plan,suggested_plan\n\
         acme,u1,2026-11,70,70,,,,\n\
         acme,u2,2026-11,50,50,,,,\n"
    );
    let json: serde_json::Value = serde_json::from_str(&usage(
        &pg.url,
        &["--period", "2026-11", "--format", "json"],
    ))
    .expect("json");
    let rows = json.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["company"], "acme");
    assert_eq!(rows[0]["used"], 120);
    assert_eq!(rows[0]["limit"], 100);
    assert_eq!(rows[0]["overage"], 20);
    assert_eq!(rows[0]["plan"], "basic");
    assert!(rows[1]["limit"].is_null());
    let table = usage(&pg.url, &["--company", "acme"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("company  period   calls  used  limit  overage  plan"));
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["acme", "2026-11", "120", "120", "100", "20", "basic", "pro"]
    );
}

#[test]
fn usage_fails_with_status_1_when_the_server_is_unreachable() {
    let pg = cluster_or_skip!();
    let url = pg.url.clone();
    drop(pg);
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "usage",
            "--postgres",
            &format!("{url} password=s3cr3t-not-shown"),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tollgate:"), "{err}");
    assert!(!err.contains("s3cr3t"), "password not printed: {err}");
}
