//! Tests of reading and validating policies.

use std::time::Duration;

use crate::policy::attr::*;
use crate::policy::error::*;
use crate::policy::spec::*;
use tollgate_core::Rate;

const EXAMPLE: &str = r#"
version = 1

[classes]
read = ["GET", "HEAD", "OPTIONS"]
bulk = ["PATCH"]
default = "write"

[[limit]]
name = "per-token-tenant"
rate = "100/s burst 200"
cost = { read = 1, write = 5, bulk = 20 }

[[limit]]
name = "writes-per-company"
key = ["company"]
classes = ["write", "bulk"]
rate = "1000/min"
algorithm = "sliding_window"
shadow = true

[[limit.override]]
match = { company = "acme" }
rate = "5000/min"

[revocation]
denials = 100
window = "10m"

[quota]
[[quota.plans]]
name = "free"
calls_per_unit = 100000
default = true
[[quota.plans]]
name = "API Access"
calls = 1000000
[[quota.companies]]
id = "acme"
machines = 5
apps = 10
users = [{ id = "ann", keys = ["3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77"] }]
"#;

#[test]
fn the_documented_example_parses() {
    let (p, warnings) = Policy::from_toml(EXAMPLE).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(p.limits.len(), 2);
    let a = &p.limits[0];
    assert_eq!(a.key, vec![Attr::Token, Attr::Tenant]);
    assert_eq!((a.rate.count(), a.rate.burst()), (100, 200));
    assert_eq!(a.cost_of("write"), 5);
    assert_eq!(a.cost_of("read"), 1);
    let b = &p.limits[1];
    assert!(b.shadow && b.applies_to("bulk") && !b.applies_to("read"));
    assert_eq!(b.overrides[0].rate.count(), 5000);
    assert_eq!(p.classes.class_of("get"), "read");
    assert_eq!(p.classes.class_of("PATCH"), "bulk");
    assert_eq!(p.classes.class_of("DELETE"), "write");
    let r = p.revocation.unwrap();
    assert_eq!((r.denials, r.window.0), (100, Duration::from_secs(600)));
    let q = p.quota.unwrap();
    let acme = q.plans.limit_for(&q.companies[0].company()).unwrap();
    assert_eq!(acme.calls, 1_500_000, "5 machines + 10 apps");
    // The module docs' example parses too.
    let doc = include_str!("../policy.rs")
        .lines()
        .skip_while(|l| !l.starts_with("//! ```toml"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| {
            l.strip_prefix("//!")
                .unwrap_or(l)
                .strip_prefix(' ')
                .unwrap_or("")
        })
        .collect::<Vec<_>>()
        .join("\n");
    Policy::from_toml(&doc).unwrap();
}

fn err(text: &str) -> PolicyError {
    Policy::from_toml(text).unwrap_err()
}

#[test]
fn errors_name_line_column_and_field() {
    let e = err("version = 1\n[[limit]]\nname = \"a\"\nrate = \"100/fortnight\"\n");
    assert_eq!((e.line, e.column), (Some(4), Some(8)), "{e}");
    assert_eq!(e.field, "limit[0].rate");
    assert!(e.message.contains("fortnight"), "{e}");

    let e = err("version = 1\n[[limit]]\nname = \"a\"\nrate = \"1/s\"\nshadw = true\n");
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("shadw"), "{e}");

    let e = err("version = 1\n[[limit]]\nname = \"a\"\n");
    assert_eq!(
        (e.field.as_str(), e.line),
        ("limit[0].rate", Some(3)),
        "{e}"
    );

    let e = err("version = 1\n[[limit]]\nname = \"a\"\nrate = \"1/s\"\n[[limit]]\nname = \"a\"\nrate = \"2/s\"\n");
    assert_eq!(
        (e.field.as_str(), e.line),
        ("limit[1].name", Some(6)),
        "{e}"
    );

    let e = err("version = 1\n[[limit]]\nname = \"a\"\nrate = \"1/s\"\ncost = { writes = 3 }\n");
    assert!(e.message.contains("unknown class \"writes\""), "{e}");

    let e = err("version = 1\n[[limit]]\nname = \"w\"\nrate = \"100000/s\"\nalgorithm = \"sliding_window\"\n");
    assert_eq!(e.field, "limit[0].rate", "{e}");

    let e = err("version = 1\n[[limit]]\nname = \"o\"\nrate = \"1/s\"\n[[limit.override]]\nmatch = { route = \"/x\" }\nrate = \"2/s\"\n");
    assert_eq!(e.field, "limit[0].override[0].match.route", "{e}");

    let e = err("[[limit]]\nname = \"a\"\nrate = \"1/s\"\n");
    assert_eq!(e.field, "version", "{e}");
    let e = err("version = 7\n");
    assert!(e.message.contains("version 7 is not supported"), "{e}");
    assert_eq!((e.line, e.column), (Some(1), Some(11)));

    let e = err("version = 1\n[revocation]\ndenials = 3\nwindow = \"10 fortnights\"\n");
    assert_eq!(e.field, "revocation.window", "{e}");

    let e =
        err("version = 1\n[quota]\n[[quota.plans]]\nname = \"x\"\ncalls = 1\ncalls_per_unit = 2\n");
    assert_eq!(e.field, "quota.plans", "{e}");

    let e = err("version = 1\n[classes]\nread = [\"GET\"]\nwrite = [\"GET\"]\n");
    assert!(e.message.contains("two classes"), "{e}");

    let e = err("not toml at all = = =");
    assert_eq!(e.line, Some(1), "{e}");
    // Found by the policy_parse fuzz target: toml gives no message for these.
    for text in ["#\0", "\r\0"] {
        let e = err(text);
        assert!(!e.message.is_empty(), "{text:?}: {e:?}");
    }
}

#[test]
fn error_display_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        "version = 1\n[[limit]]\nname = \"a\"\nrate = \"x\"\n",
    )
    .unwrap();
    let e = Policy::from_file(&path).unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{}:4:8: limit[0].rate: ", path.display())),
        "{shown}"
    );
    let missing = Policy::from_file(dir.path().join("nope.toml")).unwrap_err();
    assert!(
        missing.to_string().contains("cannot read the policy"),
        "{missing}"
    );
}

#[test]
fn deprecated_per_second_is_read_and_reported() {
    let (p, w) =
        Policy::from_toml("version = 1\n[[limit]]\nname = \"old\"\nper_second = 50\n").unwrap();
    assert_eq!(p.limits[0].rate, Rate::per_second(50).unwrap());
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].line, w[0].column, w[0].field.as_str()),
        (4, 14, "limit[0].per_second")
    );
    assert!(w[0].to_string().contains("deprecated"), "{}", w[0]);
    let e = err("version = 1\n[[limit]]\nname = \"both\"\nrate = \"1/s\"\nper_second = 5\n");
    assert!(e.message.contains("not both"), "{e}");
}

#[test]
fn durations() {
    let d = |s: &str| s.parse::<HumanDuration>().map(|d| d.0);
    assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(d("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(d("2 h"), Ok(Duration::from_secs(7200)));
    assert_eq!(d("1d"), Ok(Duration::from_secs(86_400)));
    assert!(d("0s").is_err());
    assert!(d("ten minutes").is_err());
    assert!(d("99999999999999999999d").is_err());
    assert!(d("1000000000000000000d").is_err(), "overflow");
}

/// A company's fields are the quota's `Company` plus the policy's time zone and users;
/// an unknown field is refused with its name and the company's line.
#[test]
fn company_spec_is_the_quota_company_plus_time_zone_and_users() {
    let base = "version = 1\n[[limit]]\nname = \"a\"\nrate = \"5/s\"\n[quota]\n\
                [[quota.companies]]\nid = \"acme\"\nmachines = 2\ntime_zone = \"Europe/Berlin\"\n\
                users = [{ id = \"ann\", keys = [\"k\"] }]\n";
    let (p, _) = Policy::from_toml(base).unwrap();
    let c = &p.quota.unwrap().companies[0];
    assert_eq!(c.company.id, "acme");
    assert_eq!(c.company.machines, 2);
    assert_eq!(c.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(c.users[0].id, "ann");
    let e = Policy::from_toml(&format!("{base}machnes = 5\n")).unwrap_err();
    assert_eq!(e.line, Some(6), "{e}");
    assert!(e.message.contains("unknown field `machnes`"), "{e}");
    assert!(e.message.contains("`time_zone`, `users`"), "{e}");
}

#[test]
fn a_typo_in_a_key_is_an_error_not_a_global_limit() {
    let e = err("version = 1\n[[limit]]\nname = \"a\"\nkey = [\"tokn\"]\nrate = \"1/s\"\n");
    assert_eq!((e.field.as_str(), e.line), ("limit[0].key", Some(3)), "{e}");
    assert!(e.message.contains("did you mean \"token\""), "{e}");
    assert!(e.message.contains("host_attributes"), "{e}");
    let e = err("version = 1\n[[limit]]\nname = \"a\"\nkey = [\"token\", \"regoin\"]\nrate = \"1/s\"\nhost_attributes = [\"region\"]\n");
    // (host_attributes after the table belongs to the limit: refused as unknown.)
    assert!(e.message.contains("host_attributes"), "{e}");
    let e = err("host_attributes = [\"region\"]\nversion = 1\n[[limit]]\nname = \"a\"\nkey = [\"regoin\"]\nrate = \"1/s\"\n");
    assert!(e.message.contains("did you mean \"region\""), "{e}");
    let e = err("version = 1\n[revocation]\nkey = \"tokne\"\ndenials = 3\nwindow = \"1m\"\n");
    assert_eq!(e.field, "revocation.key", "{e}");
    let e = err("version = 1\n[quota]\nkey = \"apikey\"\n");
    assert_eq!(e.field, "quota.key", "{e}");
    assert!(!e.message.contains("did you mean"), "nothing is close: {e}");
    let e = err("version = 1\nhost_attributes = [\"token\"]\n");
    assert_eq!(e.field, "host_attributes", "{e}");

    // Declared, the same names are host attributes.
    let (p, _) = Policy::from_toml(
        "version = 1\nhost_attributes = [\"region\", \"apikey\"]\n[[limit]]\nname = \"a\"\nkey = [\"region\"]\nrate = \"1/s\"\n[quota]\nkey = \"apikey\"\n",
    )
    .unwrap();
    assert_eq!(p.limits[0].key, vec![Attr::Other("region".into())]);
    assert!(p.host_attributes.contains("apikey"));
    // Built in code, the same rule holds.
    let mut p = Policy::default();
    let mut l = LimitSpec::new("a", Rate::per_second(1).unwrap());
    l.key = vec![Attr::named("tokn")];
    p.limits.push(l);
    assert_eq!(p.validate().unwrap_err().field, "limit[0].key");
    p.host_attributes.insert("tokn".into());
    p.validate().unwrap();
}

#[test]
fn limit_names_are_header_safe() {
    for bad in ["café", "a\"b", "a\\b", "tab\there", "", "\u{7f}"] {
        let text = format!(
            "version = 1\n[[limit]]\nname = {}\nrate = \"1/s\"\n",
            toml::Value::String(bad.to_owned())
        );
        let e = err(&text);
        assert_eq!(
            (e.field.as_str(), e.line),
            ("limit[0].name", Some(3)),
            "{bad:?}: {e}"
        );
    }
    let long = "n".repeat(MAX_LIMIT_NAME + 1);
    let e = err(&format!(
        "version = 1\n[[limit]]\nname = \"{long}\"\nrate = \"1/s\"\n"
    ));
    assert_eq!(e.field, "limit[0].name");
    for good in [
        "per-token",
        "a b",
        "x~!#$%&'()*+,-./:;<=>?@[]^_`{|}",
        &"n".repeat(MAX_LIMIT_NAME),
    ] {
        let text = format!(
            "version = 1\n[[limit]]\nname = {}\nrate = \"1/s\"\n",
            toml::Value::String(good.to_owned())
        );
        Policy::from_toml(&text).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
}

#[test]
fn errors_and_debug_never_show_an_api_key() {
    let secret = "sk_live_51HxQ2eZvKYlo2C9";
    for text in [
        // A key where a list of keys belongs.
        format!("version = 1\n[quota]\n[[quota.companies]]\nid = \"acme\"\nusers = [{{ id = \"ann\", keys = \"{secret}\" }}]\n"),
        // A key where a user table belongs.
        format!("version = 1\n[quota]\n[[quota.companies]]\nid = \"acme\"\nusers = [\"{secret}\"]\n"),
        // A key as a number's place.
        format!("version = 1\n[quota]\n[[quota.companies]]\nid = \"acme\"\nusers = [{{ id = \"ann\", keys = [\"ok\"], disabled = \"{secret}\" }}]\n"),
        // A token override matched with a value of the wrong type.
        format!("version = 1\n[[limit]]\nname = \"a\"\nrate = \"1/s\"\n[[limit.override]]\nmatch = {{ token = [\"{secret}\"] }}\nrate = \"2/s\"\n"),
    ] {
        let e = err(&text);
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains("sk_live"), "{shown}");
        }
    }
    let short = "k1";
    let (p, _) = Policy::from_toml(&format!(
        "version = 1\n[[limit]]\nname = \"a\"\nkey = [\"token\"]\nrate = \"1/s\"\n[[limit.override]]\nmatch = {{ token = \"{secret}\" }}\nrate = \"2/s\"\n[quota]\n[[quota.companies]]\nid = \"acme\"\nusers = [{{ id = \"ann\", keys = [\"{secret}\", \"{short}\"] }}]\n"
    ))
    .unwrap();
    let debug = format!("{p:?}");
    assert!(!debug.contains("sk_live"), "{debug}");
    assert!(debug.contains("acme") && debug.contains("ann"), "{debug}");
    assert!(!debug.contains("\"k1\""), "{debug}");
}
