//! Limits a stream of keyed requests and prints each decision.
//!
//! Each request comes from an access token acting for a tenant; the limit applies to the
//! (token, tenant) pair, so a partner acting for many tenants is not throttled as one
//! client. Writes cost more than reads. Time comes from the requests' own timestamps
//! (the `_at` forms), so the output is the same on every run.
//!
//! Run it with `cargo run --release -p tollgate-core --example keyed_stream`.

use tollgate_core::{KeyedError, KeyedGcraLimiter, Rate};

/// One request of the stream: milliseconds since start, token, tenant, HTTP method.
type Request = (u64, &'static str, &'static str, &'static str);

fn main() {
    // 5 requests per second per (token, tenant), bursts of up to 5 cost units.
    let rate: Rate = "5/s".parse().expect("valid rate");
    let limiter = KeyedGcraLimiter::<(&str, &str)>::new(rate.into(), 10_000);

    let stream = requests();
    println!("limit: {rate} per (token, tenant); GET costs 1, other methods cost 3\n");
    println!(
        "{:>7}  {:<12} {:<8} {:<6} {:<7} {:>9} {:>12} {:>12}",
        "t (ms)", "token", "tenant", "method", "verdict", "remaining", "retry_after", "reset_after"
    );
    let (mut allowed, mut denied) = (0, 0);
    for (ms, token, tenant, method) in stream {
        let cost = if method == "GET" { 1 } else { 3 };
        let now = ms * 1_000_000;
        match limiter.check_n_at(&(token, tenant), cost, now) {
            Ok(d) => {
                if d.allowed() {
                    allowed += 1;
                } else {
                    denied += 1;
                }
                println!(
                    "{:>7}  {:<12} {:<8} {:<6} {:<7} {:>9} {:>10.1}ms {:>10.1}ms",
                    ms,
                    token,
                    tenant,
                    method,
                    if d.allowed() { "allow" } else { "DENY" },
                    d.remaining,
                    d.retry_after as f64 / 1e6,
                    d.reset_after as f64 / 1e6,
                );
            }
            Err(KeyedError::InsufficientCapacity(e)) => println!("{ms:>7}  {token} {tenant}: {e}"),
            Err(KeyedError::StoreFull(e)) => println!("{ms:>7}  {token} {tenant}: {e}"),
        }
    }
    println!(
        "\n{allowed} allowed, {denied} denied; {} keys tracked",
        limiter.len()
    );
}

/// A small deterministic stream: a well-behaved client, a partner acting for two tenants,
/// and a client that bursts writes and gets throttled.
fn requests() -> Vec<Request> {
    let mut v: Vec<Request> = Vec::new();
    for i in 0..6 {
        v.push((i * 250, "tok_alice", "acme", "GET"));
    }
    for i in 0..8 {
        v.push((10 + i * 40, "tok_partner", "globex", "GET"));
        v.push((12 + i * 40, "tok_partner", "initech", "GET"));
    }
    for i in 0..5 {
        v.push((20 + i * 30, "tok_mallory", "acme", "POST"));
    }
    v.push((900, "tok_mallory", "acme", "GET"));
    v.push((1_400, "tok_mallory", "acme", "DELETE"));
    v.sort_by_key(|r| r.0);
    v
}
