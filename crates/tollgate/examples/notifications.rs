//! Don't overload users: `examples/notifications.toml` limits outbound notifications per
//! recipient. A day of notifications for three people is decided; the suppressed ones
//! are printed with the limit that suppressed them and when the next one may go out.
//!
//! Run: `cargo run -p tollgate --example notifications`

use tollgate::{Engine, Policy, Request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/notifications.toml"
    );
    let (policy, _) = Policy::from_file(path)?;
    let engine = Engine::new(policy)?;
    let names = engine.limit_names();
    // 2026-11-22T08:00:00Z.
    let morning: u64 = 1_795_334_400 * 1_000_000_000;
    let minute = 60 * 1_000_000_000;
    // (minutes after 08:00, recipient, channel, sender)
    let mut plan = Vec::new();
    for i in 0..8 {
        plan.push((i / 4, "ann", "PUSH", "build-bot")); // a chatty CI pipeline
    }
    for i in 0..6 {
        plan.push((30 + i * 2, "bob", "SMS", "pager")); // an incident, paged by SMS
    }
    for i in 0..30 {
        plan.push((60 + i * 10, "cy", "EMAIL", "newsletter")); // a drip campaign
    }
    let (mut sent, mut suppressed) = (0, 0);
    for (at, recipient, channel, sender) in plan {
        let attrs = [("recipient", recipient), ("sender", sender)];
        let r = Request::new()
            .method(channel)
            .attrs(&attrs)
            .at(morning + at * minute);
        let d = engine.decide(&r);
        let when = format!("08:00 +{at:>3} min");
        if d.allowed() {
            sent += 1;
            println!("{when}  {channel:<5} to {recipient:<3} from {sender:<10} sent");
        } else {
            suppressed += 1;
            let by = d.decided_by.map_or("?", |i| names[i].as_str());
            println!(
                "{when}  {channel:<5} to {recipient:<3} from {sender:<10} suppressed by {by}, next in {} s",
                d.retry_after_secs().unwrap_or(0)
            );
        }
    }
    println!("\n{sent} sent, {suppressed} suppressed");
    Ok(())
}
