//! The Prometheus exposition: every family parsed and checked (names, types, HELP,
//! label syntax, histogram shape, no duplicate series), the values after a scenario
//! that exercises each counter, and (with the `prometheus-client` feature) the
//! collector agreeing with the text.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tollgate::{Engine, Policy, Reason, Request};

const SEC: u64 = 1_000_000_000;
const KEY_A: &str = "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77";

const POLICY: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "3/s"
[[limit.override]]
match = { token = "vip-token-0000000000" }
rate = "50/s"
[[limit]]
name = "trial"
key = ["token"]
rate = "1/s"
shadow = true
[revocation]
denials = 3
window = "1m"
[quota]
warning_percent = 80
hard_cap_percent = 150
[[quota.plans]]
name = "free"
calls_per_unit = 1000
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [{ id = "ann", keys = ["3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77"] }]
[[quota.companies]]
id = "globex"
machines = 2
users = [{ id = "gus", keys = ["77aa0000-1111-2222-3333-444455556666"] }]
"#;

/// One parsed sample line.
#[derive(Debug)]
struct Line {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A family as the text declares it.
#[derive(Debug, Default)]
struct Declared {
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<Line>,
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `{a="x",b="y\"z"}` (after the name) into pairs and the rest of the line; checks
/// the syntax and the escapes.
fn parse_labels(s: &str) -> (Vec<(String, String)>, &str) {
    let Some(rest) = s.strip_prefix('{') else {
        return (Vec::new(), s);
    };
    let bytes = rest.as_bytes();
    let mut labels = Vec::new();
    let mut i = 0;
    loop {
        if bytes[i] == b'}' {
            return (labels, &rest[i + 1..]);
        }
        let eq = rest[i..].find('=').expect("label without =") + i;
        let name = &rest[i..eq];
        assert!(
            valid_name(name) && !name.starts_with("__"),
            "label name {name:?}"
        );
        assert_eq!(bytes[eq + 1], b'"', "label value must be quoted");
        let mut value = String::new();
        i = eq + 2;
        loop {
            match bytes[i] {
                b'\\' => {
                    value.push(match bytes[i + 1] {
                        b'\\' => '\\',
                        b'"' => '"',
                        b'n' => '\n',
                        other => panic!("bad escape \\{}", other as char),
                    });
                    i += 2;
                }
                b'"' => break,
                _ => {
                    let c = rest[i..].chars().next().unwrap();
                    value.push(c);
                    i += c.len_utf8();
                }
            }
        }
        labels.push((name.to_owned(), value));
        i += 1;
        match bytes[i] {
            b',' => i += 1,
            b'}' => {}
            other => panic!("unexpected {:?} after a label", other as char),
        }
    }
}

fn parse_value(v: &str) -> f64 {
    match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("value {v:?}")),
    }
}

/// Parses the text exposition strictly and checks the rules every family must keep.
/// Returns the families by name.
fn parse_exposition(text: &str) -> BTreeMap<String, Declared> {
    let mut families: BTreeMap<String, Declared> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut series = HashSet::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "blank line in the exposition");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP without text");
            assert!(valid_name(name), "{name}");
            let f = families.entry(name.to_owned()).or_default();
            assert!(f.help.is_none(), "second HELP for {name}");
            assert!(f.samples.is_empty(), "HELP after samples of {name}");
            f.help = Some(help.to_owned());
            current = Some(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE without type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{kind}"
            );
            let f = families.entry(name.to_owned()).or_default();
            assert!(f.kind.is_none(), "second TYPE for {name}");
            assert!(f.samples.is_empty(), "TYPE after samples of {name}");
            f.kind = Some(kind.to_owned());
            current = Some(name.to_owned());
        } else {
            assert!(!line.starts_with('#'), "unknown comment {line}");
            let name_end = line.find(['{', ' ']).expect("sample without value");
            let name = &line[..name_end];
            assert!(valid_name(name), "{name}");
            let (labels, rest) = parse_labels(&line[name_end..]);
            let value = rest.strip_prefix(' ').expect("space before the value");
            assert!(!value.contains(' '), "timestamps are not written: {line}");
            let family = current.clone().expect("sample before any TYPE");
            let f = families.get_mut(&family).unwrap();
            let kind = f.kind.clone().expect("sample before its TYPE");
            let ok_name = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{family}{s}")),
                _ => name == family,
            };
            assert!(ok_name, "sample {name} under family {family} ({kind})");
            let mut key: Vec<_> = labels.clone();
            key.sort();
            assert!(
                series.insert((name.to_owned(), key)),
                "duplicate series {line}"
            );
            f.samples.push(Line {
                name: name.to_owned(),
                labels,
                value: parse_value(value),
            });
        }
    }
    for (name, f) in &families {
        let kind = f
            .kind
            .as_deref()
            .unwrap_or_else(|| panic!("{name} has no TYPE"));
        assert!(
            f.help.as_deref().is_some_and(|h| !h.is_empty()),
            "{name} has no HELP"
        );
        assert!(name.starts_with("tollgate_"), "{name}");
        match kind {
            "counter" => {
                assert!(
                    name.ends_with("_total"),
                    "counter {name} must end in _total"
                );
                for s in &f.samples {
                    assert!(
                        s.value >= 0.0 && s.value.fract() == 0.0,
                        "{name} {}",
                        s.value
                    );
                }
            }
            "gauge" => assert!(!name.ends_with("_total"), "gauge {name} ends in _total"),
            "histogram" => {
                assert!(
                    name.ends_with("_seconds"),
                    "histogram {name} must be in seconds"
                );
                check_histograms(name, &f.samples);
            }
            other => panic!("{name}: unexpected type {other}"),
        }
    }
    families
}

use std::collections::HashSet;

/// One label set's buckets `(le, cumulative)`, `_sum` and `_count`.
type HistogramLines = (Vec<(f64, f64)>, Option<f64>, Option<f64>);

/// Each label set's buckets ascend in `le`, are cumulative, end in `+Inf`, and `+Inf`
/// equals `_count`.
fn check_histograms(name: &str, samples: &[Line]) {
    let mut by_set: HashMap<Vec<(String, String)>, HistogramLines> = HashMap::new();
    for s in samples {
        let mut labels: Vec<_> = s
            .labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect();
        labels.sort();
        let entry = by_set.entry(labels).or_default();
        if s.name.ends_with("_bucket") {
            let le = s
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .expect("bucket without le");
            entry.0.push((parse_value(&le.1), s.value));
        } else if s.name.ends_with("_sum") {
            entry.1 = Some(s.value);
        } else {
            entry.2 = Some(s.value);
        }
    }
    for (labels, (buckets, sum, count)) in by_set {
        assert!(!buckets.is_empty(), "{name}{labels:?}: no buckets");
        assert!(
            buckets.windows(2).all(|w| w[0].0 < w[1].0),
            "{name}: le ascends"
        );
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}: cumulative"
        );
        let last = buckets.last().unwrap();
        assert_eq!(last.0, f64::INFINITY, "{name}: ends in +Inf");
        assert_eq!(Some(last.1), count, "{name}: +Inf equals _count");
        assert!(sum.is_some_and(|s| s >= 0.0), "{name}: _sum");
    }
}

fn value(families: &BTreeMap<String, Declared>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let family = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s).filter(|f| families.contains_key(*f)))
        .unwrap_or(name);
    let f = families
        .get(family)
        .unwrap_or_else(|| panic!("no family {name}"));
    let found: Vec<&Line> = f
        .samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
    found[0].value
}

/// Drives the engine through every kind of outcome the metrics count, at the engine's
/// own clock (the quota gauges report the period of the engine's now).
fn scenario() -> Engine {
    let (policy, _) = Policy::from_toml(POLICY).unwrap();
    let e = Engine::new(policy).unwrap();
    #[allow(non_snake_case)]
    let T = e.now();
    // acme's ann: 3 allowed, the 4th to 6th denied by per-token (the 6th revokes).
    let a = Request::new().token(KEY_A).at(T);
    for _ in 0..3 {
        assert!(e.decide(&a).allowed());
    }
    for _ in 0..3 {
        assert_eq!(e.decide(&a).reason, Reason::Limited);
    }
    assert!(e.is_revoked(KEY_A));
    assert_eq!(e.decide(&a).reason, Reason::Revoked);
    // An unknown key.
    assert_eq!(
        e.decide(&Request::new().token("made-up").at(T)).reason,
        Reason::UnknownKey
    );
    // Operator actions.
    assert!(e.revoke("operator-revoked-0000"));
    assert!(e.suspend("operator-suspended-00", Duration::from_secs(60)));
    assert!(e.restore(KEY_A));
    // A reload that works and one that does not.
    let (same, _) = Policy::from_toml(POLICY).unwrap();
    e.reload(same).unwrap();
    assert!(e.reload_file("/nonexistent/tollgate-policy.toml").is_err());
    // Enough decisions that some are timed.
    for i in 0..64u64 {
        e.decide(&Request::new().token(KEY_A).at(T + 10 * SEC + i * SEC));
    }
    e
}

#[test]
fn every_family_parses_with_its_help_type_and_a_valid_name() {
    let e = scenario();
    let text = e.prometheus();
    let families = parse_exposition(&text);
    let expected = [
        ("tollgate_requests_total", "counter"),
        ("tollgate_limit_decisions_total", "counter"),
        ("tollgate_limit_fallback_decisions_total", "counter"),
        ("tollgate_limit_revocations_total", "counter"),
        ("tollgate_limit_keys", "gauge"),
        ("tollgate_limit_key_capacity", "gauge"),
        ("tollgate_limit_key_evictions_total", "counter"),
        ("tollgate_limit_key_displacements_total", "counter"),
        ("tollgate_limit_store_full_total", "counter"),
        ("tollgate_revocations_total", "counter"),
        ("tollgate_suspensions_total", "counter"),
        ("tollgate_restorations_total", "counter"),
        ("tollgate_revocations_refused_total", "counter"),
        ("tollgate_revocation_untracked_denials_total", "counter"),
        ("tollgate_revoked_entries", "gauge"),
        ("tollgate_revoked_capacity", "gauge"),
        ("tollgate_offender_entries", "gauge"),
        ("tollgate_offender_capacity", "gauge"),
        ("tollgate_quota_used", "gauge"),
        ("tollgate_quota_limit", "gauge"),
        ("tollgate_quota_companies", "gauge"),
        ("tollgate_quota_series_omitted", "gauge"),
        ("tollgate_quota_store_decisions_total", "counter"),
        ("tollgate_quota_store_unsent_calls", "gauge"),
        ("tollgate_backend_up", "gauge"),
        ("tollgate_backend_breaker_state", "gauge"),
        ("tollgate_backend_calls_total", "counter"),
        ("tollgate_backend_errors_total", "counter"),
        ("tollgate_backend_short_circuited_total", "counter"),
        ("tollgate_backend_connects_total", "counter"),
        ("tollgate_backend_call_duration_seconds", "histogram"),
        ("tollgate_decision_duration_seconds", "histogram"),
        ("tollgate_events_dropped_total", "counter"),
        ("tollgate_events_pending", "gauge"),
        ("tollgate_events_capacity", "gauge"),
        ("tollgate_reloads_total", "counter"),
        ("tollgate_build_info", "gauge"),
    ];
    let names: BTreeSet<&str> = families.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = expected.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, want, "the documented families, no more, no fewer");
    for (name, kind) in expected {
        assert_eq!(families[name].kind.as_deref(), Some(kind), "{name}");
    }
    // No secret reaches the exposition.
    for secret in [
        KEY_A,
        "operator-revoked-0000",
        "operator-suspended-00",
        "vip-token-0000000000",
        "made-up",
    ] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }
}

#[test]
fn the_values_follow_the_decisions() {
    let e = scenario();
    let f = parse_exposition(&e.prometheus());
    let v = |name: &str, labels: &[(&str, &str)]| value(&f, name, labels);
    // 3 + 64 allowed; 3 limited; 1 revoked; 1 unknown.
    assert_eq!(
        v("tollgate_requests_total", &[("outcome", "allowed")]),
        67.0
    );
    assert_eq!(v("tollgate_requests_total", &[("outcome", "limited")]), 3.0);
    assert_eq!(v("tollgate_requests_total", &[("outcome", "revoked")]), 1.0);
    assert_eq!(
        v("tollgate_requests_total", &[("outcome", "unknown_key")]),
        1.0
    );
    let d = |limit: &str, shadow: &str, outcome: &str| {
        v(
            "tollgate_limit_decisions_total",
            &[("limit", limit), ("shadow", shadow), ("outcome", outcome)],
        )
    };
    assert_eq!(d("per-token", "false", "denied"), 3.0);
    assert_eq!(d("per-token", "false", "allowed"), 67.0);
    // The shadow limit (1/s) would have denied the 2nd and 3rd of the first burst.
    assert_eq!(d("trial", "true", "denied"), 2.0);
    assert_eq!(
        v(
            "tollgate_limit_revocations_total",
            &[("limit", "per-token")]
        ),
        1.0
    );
    assert_eq!(
        v("tollgate_revocations_total", &[("origin", "automatic")]),
        1.0
    );
    assert_eq!(
        v("tollgate_revocations_total", &[("origin", "operator")]),
        1.0
    );
    assert_eq!(
        v("tollgate_suspensions_total", &[("origin", "operator")]),
        1.0
    );
    assert_eq!(
        v("tollgate_suspensions_total", &[("origin", "automatic")]),
        0.0
    );
    assert_eq!(v("tollgate_restorations_total", &[]), 1.0);
    // Revoked set: the operator's two (KEY_A was restored).
    assert_eq!(v("tollgate_revoked_entries", &[]), 2.0);
    // Restoring reset KEY_A's offender slot (an idle slot, reused by the next token).
    assert_eq!(v("tollgate_offender_entries", &[]), 1.0);
    assert!(v("tollgate_offender_capacity", &[]) > 0.0);
    // One key in per-token's store (the vip override's store is empty), capacity both.
    assert_eq!(
        v(
            "tollgate_limit_keys",
            &[("limit", "per-token"), ("store", "memory")]
        ),
        1.0
    );
    assert!(
        v(
            "tollgate_limit_key_capacity",
            &[("limit", "per-token"), ("store", "memory")]
        ) > 0.0
    );
    // Quota gauges: acme used 67 of 1000 this period; globex nothing of 2000.
    assert_eq!(v("tollgate_quota_used", &[("company", "acme")]), 67.0);
    assert_eq!(v("tollgate_quota_limit", &[("company", "acme")]), 1000.0);
    assert_eq!(v("tollgate_quota_used", &[("company", "globex")]), 0.0);
    assert_eq!(v("tollgate_quota_limit", &[("company", "globex")]), 2000.0);
    assert_eq!(v("tollgate_quota_companies", &[]), 2.0);
    assert_eq!(v("tollgate_quota_series_omitted", &[]), 0.0);
    assert_eq!(v("tollgate_reloads_total", &[("result", "ok")]), 1.0);
    assert_eq!(v("tollgate_reloads_total", &[("result", "error")]), 1.0);
    // Of the 72 decisions, every 16th per thread was timed: 4 on this thread.
    let timed = v("tollgate_decision_duration_seconds_count", &[]);
    assert_eq!(timed, 4.0);
    assert!(v("tollgate_decision_duration_seconds_sum", &[]) > 0.0);
    // No remote store: the backend families are described, without series.
    assert!(f["tollgate_backend_up"].samples.is_empty());
}

#[cfg(feature = "prometheus-client")]
#[test]
fn the_prometheus_client_collector_agrees_with_the_text() {
    use std::sync::Arc;

    use prometheus_client::registry::Registry;
    use tollgate::metrics::EngineCollector;

    let e = Arc::new(scenario());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(EngineCollector::new(Arc::clone(&e))));
    let mut theirs = String::new();
    prometheus_client::encoding::text::encode(&mut theirs, &registry).unwrap();
    let ours = e.prometheus();
    // Same series with the same values (their text has `# EOF` and may order
    // histogram lines differently; the timed decisions are the same since no decision
    // ran between the two snapshots).
    let series = |text: &str| -> BTreeMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l.rsplit_once(' ').unwrap();
                let name_end = k.find('{').unwrap_or(k.len());
                let (mut labels, _) = parse_labels(&k[name_end..]);
                // Bucket bounds compare as numbers (`2.56e-7` is `0.000000256`).
                for (name, v) in &mut labels {
                    if name == "le" {
                        *v = parse_value(v).to_string();
                    }
                }
                labels.sort();
                (format!("{}{labels:?}", &k[..name_end]), parse_value(v))
            })
            .collect()
    };
    assert_eq!(series(&theirs), series(&ours));
    for line in theirs.lines().filter(|l| l.starts_with("# TYPE ")) {
        let (name, kind) = line["# TYPE ".len()..].split_once(' ').unwrap();
        let ours_name = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_owned()
        };
        assert!(
            ours.contains(&format!("# TYPE {ours_name} {kind}\n")),
            "{line}"
        );
    }
}
