//! Parse throughput of the access-log parser on lines shaped like those of
//! `examples/gen_access_log.rs`, one parser carrying its date cache across lines.
//!
//! ```sh
//! cargo bench -p tollgate-cli --bench log_parse
//! # or on the lines of a real log (the first 100,000):
//! TOLLGATE_BENCH_JSON=access.log TOLLGATE_BENCH_CLF=access.clf cargo bench -p tollgate-cli --bench log_parse
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate_cli::log::{Format, Parser};

const JSON: &[&str] = &[
    r#"{"time":"2026-11-01T00:00:49.873Z","client":"10.3.1.20","method":"GET","path":"/v1/machines","status":200,"token":"2db4b2d7-7726-42dd-b97c-cb4d3d1a9272","tenant":"ap-1","company":"hooli","bytes":1473}"#,
    r#"{"time":"2026-11-01T00:01:05.935Z","client":"10.0.2.12","method":"GET","path":"/v1/machines","status":200,"token":"35b31db9-df22-4f10-b981-9746f43f7970","tenant":"us-1","company":"acme","bytes":1775}"#,
    r#"{"time":"2026-11-01T00:01:05.960Z","client":"10.2.2.18","method":"POST","path":"/v1/deployments","status":200,"token":"aaf442a9-d368-4151-8d1a-0212993e2b7e","tenant":"eu-1","company":"initech","bytes":1530}"#,
    r#"{"time":"2026-11-01T00:01:28.423Z","client":"10.3.0.19","method":"GET","path":"/v1/apps","status":200,"token":"fbc7b61b-f8a3-4572-a0e5-8d58635bc569","tenant":"ap-1","company":"hooli","bytes":423}"#,
    r#"{"time":"2026-11-01T00:02:51.062Z","client":"10.0.0.10","method":"GET","path":"/v1/users/{id}","status":200,"token":"d3ccdbd9-31f0-4912-bdb7-8ccd92a1504d","tenant":"eu-1","company":"acme","bytes":262}"#,
    r#"{"time":"2026-11-01T00:02:59.431Z","client":"10.3.1.20","method":"GET","path":"/v1/machines","status":200,"token":"2db4b2d7-7726-42dd-b97c-cb4d3d1a9272","tenant":"eu-2","company":"hooli","bytes":231}"#,
    r#"{"time":"2026-11-01T00:03:23.850Z","client":"10.0.2.12","method":"PUT","path":"/v1/machines","status":200,"token":"35b31db9-df22-4f10-b981-9746f43f7970","tenant":"us-2","company":"acme","bytes":1250}"#,
    r#"{"time":"2026-11-01T00:04:18.696Z","client":"10.3.1.20","method":"GET","path":"/v1/machines","status":200,"token":"2db4b2d7-7726-42dd-b97c-cb4d3d1a9272","tenant":"eu-2","company":"hooli","bytes":296}"#,
];

const CLF: &[&str] = &[
    r#"10.3.1.20 - hooli-u1 [01/Nov/2026:00:00:49 +0000] "GET /v1/machines?token=2db4b2d7-7726-42dd-b97c-cb4d3d1a9272&tenant=ap-1 HTTP/1.1" 200 1473 "-" "partner-sdk/2.4""#,
    r#"10.0.2.12 - acme-u2 [01/Nov/2026:00:01:05 +0000] "GET /v1/machines?token=35b31db9-df22-4f10-b981-9746f43f7970&tenant=us-1 HTTP/1.1" 200 1775 "-" "partner-sdk/2.4""#,
    r#"10.2.2.18 - initech-u2 [01/Nov/2026:00:01:05 +0000] "POST /v1/deployments?token=aaf442a9-d368-4151-8d1a-0212993e2b7e&tenant=eu-1 HTTP/1.1" 200 1530 "-" "partner-sdk/2.4""#,
    r#"10.3.0.19 - hooli-u0 [01/Nov/2026:00:01:28 +0000] "GET /v1/apps?token=fbc7b61b-f8a3-4572-a0e5-8d58635bc569&tenant=ap-1 HTTP/1.1" 200 423 "-" "partner-sdk/2.4""#,
    r#"10.0.0.10 - acme-u0 [01/Nov/2026:00:02:51 +0000] "GET /v1/users/{id}?token=d3ccdbd9-31f0-4912-bdb7-8ccd92a1504d&tenant=eu-1 HTTP/1.1" 200 262 "-" "partner-sdk/2.4""#,
    r#"10.3.1.20 - hooli-u1 [01/Nov/2026:00:02:59 +0000] "GET /v1/machines?token=2db4b2d7-7726-42dd-b97c-cb4d3d1a9272&tenant=eu-2 HTTP/1.1" 200 231 "-" "partner-sdk/2.4""#,
    r#"10.0.2.12 - acme-u2 [01/Nov/2026:00:03:23 +0000] "PUT /v1/machines?token=35b31db9-df22-4f10-b981-9746f43f7970&tenant=us-2 HTTP/1.1" 200 1250 "-" "partner-sdk/2.4""#,
    r#"10.3.1.20 - hooli-u1 [01/Nov/2026:00:04:18 +0000] "GET /v1/machines?token=2db4b2d7-7726-42dd-b97c-cb4d3d1a9272&tenant=eu-2 HTTP/1.1" 200 296 "-" "partner-sdk/2.4""#,
];

/// The lines of the file named by `var` (the first 100,000), else `builtin`.
fn lines(var: &str, builtin: &[&str]) -> Vec<Vec<u8>> {
    if let Some(text) = std::env::var_os(var).and_then(|path| std::fs::read(path).ok()) {
        return text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .take(100_000)
            .map(<[u8]>::to_vec)
            .collect();
    }
    builtin.iter().map(|l| l.as_bytes().to_vec()).collect()
}

fn bench_format(c: &mut Criterion, name: &str, format: Format, lines: &[Vec<u8>]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(lines.len() as u64));
    let mut parser = Parser::with_defaults(format);
    group.bench_function("parse_bytes", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for line in lines {
                if let Ok(record) = parser.parse_bytes(black_box(line)) {
                    n += record.attrs().len() + (record.time_unix_nanos as usize & 1);
                }
            }
            n
        })
    });
    group.finish();
}

fn log_parse(c: &mut Criterion) {
    let json = lines("TOLLGATE_BENCH_JSON", JSON);
    let clf = lines("TOLLGATE_BENCH_CLF", CLF);
    bench_format(c, "json", Format::JsonLines, &json);
    bench_format(c, "combined", Format::Combined, &clf);
}

criterion_group!(benches, log_parse);
criterion_main!(benches);
