//! What an administrative change costs decisions running at the same time: one thread
//! decides for a fixed time while another makes admin changes as fast as it can (or
//! nothing), and the decision rate and slowest decisions are compared.
//!
//! ```sh
//! cargo run --release -p tollgate --example admin_contention [seconds per phase, default 2]
//! ```
//!
//! Bounded: each phase runs for the given seconds (at most 30), on one decision
//! thread and one admin thread, all in memory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate::quota::Company;
use tollgate::{Engine, Policy, Request};

const USERS: usize = 1_000;

fn policy() -> String {
    let mut p = String::from(
        "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"1000000/s\"\n\
         [[limit]]\nname = \"per-company\"\nkey = [\"company\"]\nrate = \"1000000/s\"\n\
         [quota]\n[[quota.plans]]\nname = \"big\"\ncalls_per_unit = 1000000000000\ndefault = true\n",
    );
    for c in 0..10 {
        p.push_str(&format!(
            "[[quota.companies]]\nid = \"co-{c}\"\nmachines = 1\nusers = [\n"
        ));
        for u in (c..USERS).step_by(10) {
            p.push_str(&format!(
                "  {{ id = \"u-{u}\", keys = [\"key-{u:06}\"] }},\n"
            ));
        }
        p.push_str("]\n");
    }
    p
}

#[derive(Clone, Copy, Debug)]
enum Admin {
    None,
    /// A thread busy with work of its own (no admin change): the control for the CPU
    /// the admin thread takes from the decision thread.
    Busy,
    Directory,
    Override,
}

fn phase(e: &Arc<Engine>, admin: Admin, secs: u64) -> (f64, u64, u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let t = {
        let (e, stop, ops) = (Arc::clone(e), Arc::clone(&stop), Arc::clone(&ops));
        std::thread::spawn(move || {
            let a = e.admin();
            let mut i = 0u64;
            // Bounded by the stop flag, set after `secs`.
            while !stop.load(Ordering::Relaxed) {
                match admin {
                    Admin::None => std::thread::sleep(Duration::from_millis(1)),
                    Admin::Busy => {
                        let mut x = i;
                        for _ in 0..10_000 {
                            x = std::hint::black_box(x.wrapping_mul(6364136223846793005) ^ 1);
                        }
                        std::hint::black_box(x);
                    }
                    Admin::Directory => {
                        // A rotation there and back, a company suspended and resumed, a
                        // company's units changed, a user added and removed.
                        a.rotate_key("key-000999", "key-rotated", None).unwrap();
                        a.rotate_key("key-rotated", "key-000999", None).unwrap();
                        a.suspend_company("co-9").unwrap();
                        a.resume_company("co-9").unwrap();
                        a.set_company_units("co-8", 1 + i % 3, 0).unwrap();
                        let user = format!("extra-{i}");
                        a.add_user(&user, "co-7").unwrap();
                        a.remove_user(&user).unwrap();
                        ops.fetch_add(7, Ordering::Relaxed);
                    }
                    Admin::Override => {
                        let rate = if i.is_multiple_of(2) {
                            "2000000/s"
                        } else {
                            "1000000/s"
                        };
                        a.set_override(
                            "per-company",
                            &[("company", "co-9")],
                            rate.parse().unwrap(),
                        )
                        .unwrap();
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Drain events so the channel never fills.
                let _ = e.drain_events();
                i += 1;
            }
        })
    };
    let keys: Vec<String> = (0..USERS - 1).map(|u| format!("key-{u:06}")).collect();
    let companies: Vec<String> = (0..10).map(|c| format!("co-{c}")).collect();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    let mut slowest = 0u64;
    let mut over_10us = 0u64;
    let start = Instant::now();
    while Instant::now() < end {
        for _ in 0..1024 {
            let k = &keys[(n as usize) % keys.len()];
            let c = &companies[(n as usize) % 10];
            let t0 = Instant::now();
            let d = e.decide(&Request::new().token(k).company(c));
            let dt = t0.elapsed().as_nanos() as u64;
            std::hint::black_box(d);
            slowest = slowest.max(dt);
            over_10us += u64::from(dt > 10_000);
            n += 1;
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    (rate, ops.load(Ordering::Relaxed), slowest, over_10us)
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
        .clamp(1, 30);
    let e = Arc::new(Engine::new(Policy::from_toml(&policy()).unwrap().0).unwrap());
    e.admin().add_company(Company::new("spare"), None).unwrap();
    println!("phase       decisions/s  admin ops  slowest decision  decisions > 10 us");
    for admin in [
        Admin::None,
        Admin::Busy,
        Admin::Directory,
        Admin::Override,
        Admin::None,
    ] {
        let (rate, ops, slowest, over) = phase(&e, admin, secs);
        println!(
            "{:<10} {:>12.0} {:>10} {:>14} ns {:>18}",
            format!("{admin:?}"),
            rate,
            ops,
            slowest,
            over
        );
    }
}
