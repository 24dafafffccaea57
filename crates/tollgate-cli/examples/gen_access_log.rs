//! Generates a realistic access log for `tollgate replay` and the policy it goes with
//! (`examples/policy.toml` at the repository root).
//!
//! November 2026, 12 companies of 3 users each, one API key per user. Traffic follows
//! office hours and a Zipf popularity over users; 12% of calls are writes; partners act
//! for several tenants with one token. Three behaviours give the policy work:
//! * `globex` runs a nightly sync whose bursts exceed the per-token limit (denials);
//! * one of `initech`'s keys misbehaves: short storms far over its limit, every day, so
//!   the revocation rule catches it;
//! * `acme` uses more calls than its free plan allows (an overage notice), `hooli` far
//!   more (the hard cap refuses the excess).
//!
//! A few lines in 100,000 are malformed, as in real logs. Output is deterministic.
//!
//! ```sh
//! cargo run --release -p tollgate-cli --example gen_access_log -- 1000000 > access.log
//! cargo run --release -p tollgate-cli --example gen_access_log -- 1000000 combined > access.log
//! cargo run --release -p tollgate-cli --example gen_access_log -- keys   # the keys, as TOML
//! ```

use std::io::{BufWriter, Write};

/// 2026-11-01T00:00:00Z.
const START: u64 = 1_793_491_200;
const DAYS: u64 = 30;

const COMPANIES: [&str; 12] = [
    "acme",
    "globex",
    "initech",
    "hooli",
    "umbrella",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "aperture",
];
const TENANTS: [&str; 5] = ["eu-1", "eu-2", "us-1", "us-2", "ap-1"];
const READ_ROUTES: [&str; 4] = ["/v1/machines", "/v1/apps", "/v1/reports", "/v1/users/{id}"];
const WRITE_ROUTES: [&str; 3] = ["/v1/machines", "/v1/apps/{id}", "/v1/deployments"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The API key of user `u` of company `c`: GUID-shaped, deterministic.
fn key(c: usize, u: usize) -> String {
    let mut r = Rng(0xC0FF_EE00 + (c as u64) * 16 + u as u64);
    let (a, b, d) = (r.next(), r.next(), r.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a as u32,
        (a >> 32) as u16,
        (b & 0xfff) as u16,
        0x8000 | ((b >> 16) & 0x3fff) as u16,
        d & 0xffff_ffff_ffff
    )
}

fn client(c: usize, u: usize) -> String {
    format!("10.{}.{}.{}", c, u, 10 + c * 3 + u)
}

struct Call {
    t_ms: u64,
    c: usize,
    u: usize,
    tenant: usize,
    write: bool,
    route: usize,
}

fn rfc3339(t_ms: u64) -> String {
    let secs = t_ms / 1000;
    let ms = t_ms % 1000;
    let day = (secs - START) / 86_400;
    let rem = (secs - START) % 86_400;
    format!(
        "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        day + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms
    )
}

fn clf_time(t_ms: u64) -> String {
    let secs = t_ms / 1000;
    let day = (secs - START) / 86_400;
    let rem = (secs - START) % 86_400;
    format!(
        "{:02}/Nov/2026:{:02}:{:02}:{:02} +0000",
        day + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("keys") {
        for (c, name) in COMPANIES.iter().enumerate() {
            println!("[[quota.companies]]\nid = \"{name}\"\nmachines = 1\nusers = [");
            for u in 0..3 {
                println!("  {{ id = \"{name}-u{u}\", keys = [\"{}\"] }},", key(c, u));
            }
            println!("]");
        }
        return;
    }
    let lines: u64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let combined = args.get(1).map(String::as_str) == Some("combined");
    let keys: Vec<Vec<String>> = (0..COMPANIES.len())
        .map(|c| (0..3).map(|u| key(c, u)).collect())
        .collect();
    let mut rng = Rng(42);
    // Zipf-like popularity over the 36 users, hooli and acme heaviest.
    let mut weights: Vec<(usize, usize, f64)> = Vec::new();
    for (c, company) in COMPANIES.iter().enumerate() {
        for u in 0..3 {
            let rank = (c * 3 + u + 1) as f64;
            let boost = match *company {
                "hooli" => 40.0,
                "acme" => 12.0,
                _ => 1.0,
            };
            weights.push((c, u, boost / rank.powf(0.8)));
        }
    }
    let total: f64 = weights.iter().map(|w| w.2).sum();
    let per_day = lines / DAYS;
    let mut calls: Vec<Call> = Vec::with_capacity(per_day as usize + 4096);
    let out = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, out.lock());
    let mut written = 0u64;
    let mut n = 0u64;
    for day in 0..DAYS {
        calls.clear();
        let day_ms = (START + day * 86_400) * 1000;
        let budget = if day == DAYS - 1 {
            lines.saturating_sub(written)
        } else {
            per_day
        };
        // Storms and bursts first: about 6% of the day's lines.
        let storms = budget / 16;
        for i in 0..storms {
            let (c, u, t_ms) = if i % 3 == 0 {
                // globex's nightly sync from 02:00: batches of 400 calls at 250/s, every
                // ten minutes (its raised limit lets them through).
                let g = i / 3;
                (
                    1,
                    0,
                    day_ms + 2 * 3_600_000 + (g / 400) * 600_000 + (g % 400) * 4,
                )
            } else {
                // The misbehaving initech key: one storm at 14:00, 100 calls a second.
                let k = i - i / 3 - 1;
                (2, 2, day_ms + 14 * 3_600_000 + k * 10)
            };
            calls.push(Call {
                t_ms,
                c,
                u,
                tenant: (i % 2) as usize,
                write: i % 5 == 0,
                route: (i % 3) as usize,
            });
        }
        for _ in storms..budget {
            // Office hours: most calls between 07:00 and 19:00.
            let hour = if rng.unit() < 0.85 {
                7.0 + rng.unit() * 12.0
            } else {
                rng.unit() * 24.0
            };
            let t_ms = day_ms + (hour * 3_600_000.0) as u64;
            let mut pick = rng.unit() * total;
            let mut who = weights[0];
            for w in &weights {
                if pick < w.2 {
                    who = *w;
                    break;
                }
                pick -= w.2;
            }
            calls.push(Call {
                t_ms,
                c: who.0,
                u: who.1,
                tenant: rng.below(TENANTS.len() as u64) as usize,
                write: rng.unit() < 0.12,
                route: rng.below(4) as usize,
            });
        }
        calls.sort_by_key(|c| c.t_ms);
        for call in &calls {
            n += 1;
            if n.is_multiple_of(99_991) {
                let _ = writeln!(out, "{{\"time\": \"2026-11-\", \"truncated");
                continue;
            }
            let (method, route) = if call.write {
                (
                    if call.route % 2 == 0 { "POST" } else { "PUT" },
                    WRITE_ROUTES[call.route % WRITE_ROUTES.len()],
                )
            } else {
                ("GET", READ_ROUTES[call.route % READ_ROUTES.len()])
            };
            let status = 200;
            let token = &keys[call.c][call.u];
            if combined {
                let _ = writeln!(
                    out,
                    "{} - {}-u{} [{}] \"{method} {route}?token={token}&tenant={} HTTP/1.1\" {status} {} \"-\" \"partner-sdk/2.4\"",
                    client(call.c, call.u),
                    COMPANIES[call.c],
                    call.u,
                    clf_time(call.t_ms),
                    TENANTS[call.tenant],
                    200 + call.t_ms % 1800,
                );
            } else {
                let _ = writeln!(
                    out,
                    "{{\"time\":\"{}\",\"client\":\"{}\",\"method\":\"{method}\",\"path\":\"{route}\",\"status\":{status},\"token\":\"{token}\",\"tenant\":\"{}\",\"company\":\"{}\",\"bytes\":{}}}",
                    rfc3339(call.t_ms),
                    client(call.c, call.u),
                    TENANTS[call.tenant],
                    COMPANIES[call.c],
                    200 + call.t_ms % 1800,
                );
            }
        }
        written += calls.len() as u64;
    }
    let _ = out.flush();
}
