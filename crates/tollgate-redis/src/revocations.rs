//! [`RedisRevocations`]: the fleet's revoked set on Redis. Every revocation, suspension
//! and restoration made by any engine sharing the Redis (an operator's, or an automatic
//! revocation) reaches every other engine within [`RedisRevocations::delay_bound`]
//! (`poll + 6 × (connect_timeout + response_timeout)`, 700 ms by default);
//! a restarted or new instance starts from the fleet's set.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use tollgate::{Engine, Policy};
//! # use tollgate_redis::{RedisConfig, RedisRevocations, RedisStore, RevocationOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (policy, _) = Policy::from_toml("version = 1")?;
//! let store = RedisStore::new(RedisConfig::new("redis://127.0.0.1:6379/").key_secret("the fleet secret, 16+ bytes")?)?;
//! let engine = Engine::builder(policy)
//!     .revocation_sync(RedisRevocations::new(store, RevocationOptions::default()))
//!     .build()?;
//! engine.admin().revoke("sk_live_leaked"); // refused on every instance within the bound
//! # Ok(())
//! # }
//! ```
//!
//! # Keys
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:{rev}:set` | hash | the fleet's set: field `fp(value)`, value `"<until, Unix ns, or ->:<filter bit>:<key ref>"` |
//! | `{prefix}:{rev}:log` | stream | every change in order (`f`: the fingerprint, `v`: the value written, `x` for a restoration), trimmed to about [`RevocationOptions::log_len`] entries |
//! | `{prefix}:{rev}:epoch` | string | a random id set when Redis held no revocation state: a different one means Redis lost it |
//!
//! `fp(value)` is the keyed 128-bit SipHash of the value under the fleet's key secret
//! ([`RedisConfig::key_secret`](crate::RedisConfig::key_secret) or
//! `TOLLGATE_REDIS_KEY_SECRET`, see [`crate::keys`]), with its own domain (`revocation`
//! as a first part), so a value is never stored, in key names or values. The secret
//! lives in each instance's configuration, never in Redis. The key reference is the
//! revoking process's [`KeyRef`] (keyed by its own secret, or the fleet's with
//! [`KeyRef::set_secret`]); the filter bit is ten bits of an unkeyed mix of the value's
//! length and first and last eight bytes (as the journal stores it).
//!
//! # How changes travel
//! One thread per engine ([`RevocationSync::attach`]) loops: it writes this engine's
//! pending changes (one script: `HSET`/`HDEL` on the set and `XADD` on the log,
//! atomically, checking the epoch), then reads the log after the last entry it read
//! (one script), delivers the changes to the engine, and waits [`RevocationOptions::poll`]
//! or until the engine has a new change (so a local change is written at once). A
//! poll was chosen over pub/sub: one connection pattern (the store's pool, its
//! timeouts and breaker), no message lost during a disconnect (the log is read from
//! where it stopped), and a bounded delay without a blocking connection.
//!
//! It reads the whole set instead (and the engine's set becomes exactly it, apart from
//! its own unwritten changes) at start, when the log was trimmed past the last entry
//! read, or when it was deleted. When the epoch changed (Redis restarted without
//! persistence, a failover to an empty replica, a `FLUSHALL`), Redis lost the fleet's
//! state: each engine writes back its whole set (the union of the instances' sets
//! becomes the fleet's) and reads the others' as they write them.
//!
//! # Redis down
//! Local revocations apply locally at once, as without Redis, and wait in the engine's
//! pending set ([`Engine::revocations_unshared`](tollgate::Engine::revocations_unshared));
//! they are written when Redis answers again, and the log is read from where it
//! stopped, so this engine learns what the others did meanwhile. A change made while
//! Redis is down by an instance that restarts before Redis returns is not shared (the
//! pending set is in memory; the instance's journal, if any, keeps it locally until the
//! fleet's set replaces it at the next start with Redis up).
//!
//! [`KeyRef`]: tollgate::quota::KeyRef
//! [`KeyRef::set_secret`]: tollgate::quota::KeyRef::set_secret

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use redis::{Script, Value};
use tollgate::engine::{FleetRevocation, RevocationInbox, RevocationSync};
use tollgate::quota::KeyRef;

use crate::store::{RedisStore, StoreError};

/// The script that writes changes.
pub const WRITE: &str = include_str!("../lua/revocations_write.lua");
/// The script that reads changes or the whole set.
pub const POLL: &str = include_str!("../lua/revocations_poll.lua");

/// Options of [`RedisRevocations`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationOptions {
    /// How long the thread waits between two reads of the log (default 100 ms): the
    /// main part of [`RedisRevocations::delay_bound`]. Each read is one small script
    /// call per instance.
    pub poll: Duration,
    /// About how many changes the log keeps (default 100,000; `MAXLEN ~`): an
    /// instance that falls further behind reads the whole set instead.
    pub log_len: u64,
    /// The most log entries one read returns (default 1,000; more are read at once
    /// in further calls).
    pub batch: u64,
}

impl Default for RevocationOptions {
    fn default() -> Self {
        RevocationOptions {
            poll: Duration::from_millis(100),
            log_len: 100_000,
            batch: 1_000,
        }
    }
}

impl RevocationOptions {
    /// Sets [`poll`](Self::poll) (at least 1 ms).
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(1));
        self
    }

    /// Sets [`log_len`](Self::log_len) (at least 100).
    pub fn log_len(mut self, n: u64) -> Self {
        self.log_len = n.max(100);
        self
    }

    /// Sets [`batch`](Self::batch) (at least 10).
    pub fn batch(mut self, n: u64) -> Self {
        self.batch = n.max(10);
        self
    }
}

/// Counters of a [`RedisRevocations`]' threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevocationStats {
    /// Reads of the log that answered.
    pub polls: u64,
    /// Reads of the whole set (start, a trimmed log, Redis lost its state).
    pub full_reads: u64,
    /// Changes written to Redis.
    pub written: u64,
    /// Changes read from Redis and handed to the engine.
    pub received: u64,
    /// Times Redis was found to have lost the fleet's state (a new epoch).
    pub epochs_lost: u64,
    /// Calls that failed (Redis down, a timeout, the open breaker).
    pub errors: u64,
}

/// The fleet's revoked set on Redis, for
/// [`EngineBuilder::revocation_sync`](tollgate::EngineBuilder::revocation_sync) (see
/// the [module](self)).
pub struct RedisRevocations {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<RedisStore>,
    options: RevocationOptions,
    keys: [String; 3],
    write: Script,
    poll: Script,
    /// Set by `publish`, cleared by a thread before it writes.
    dirty: Mutex<bool>,
    wake: Condvar,
    polls: AtomicU64,
    full_reads: AtomicU64,
    written: AtomicU64,
    received: AtomicU64,
    epochs_lost: AtomicU64,
    errors: AtomicU64,
}

impl fmt::Debug for RedisRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocations")
            .field("prefix", &self.shared.store.config().prefix)
            .field("options", &self.shared.options)
            .field("stats", &self.stats())
            .finish()
    }
}

impl RedisRevocations {
    /// The fleet's revoked set on `store` (its key secret names the fingerprints).
    pub fn new(store: Arc<RedisStore>, options: RevocationOptions) -> Arc<Self> {
        let prefix = store.config().prefix.clone();
        let keys = [
            format!("{prefix}:{{rev}}:set"),
            format!("{prefix}:{{rev}}:log"),
            format!("{prefix}:{{rev}}:epoch"),
        ];
        Arc::new(RedisRevocations {
            shared: Arc::new(Shared {
                store,
                options,
                keys,
                write: Script::new(WRITE),
                poll: Script::new(POLL),
                dirty: Mutex::new(false),
                wake: Condvar::new(),
                polls: AtomicU64::new(0),
                full_reads: AtomicU64::new(0),
                written: AtomicU64::new(0),
                received: AtomicU64::new(0),
                epochs_lost: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            }),
        })
    }

    /// The names of the three keys: the set, the log, the epoch.
    pub fn keys(&self) -> &[String; 3] {
        &self.shared.keys
    }

    /// The counters.
    pub fn stats(&self) -> RevocationStats {
        let s = &self.shared;
        RevocationStats {
            polls: s.polls.load(Ordering::Relaxed),
            full_reads: s.full_reads.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            epochs_lost: s.epochs_lost.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
        }
    }

    /// How long after one engine's change returns every other engine sharing the Redis
    /// applies it (before its next decision), while Redis answers (breaker closed) and
    /// fewer than [`RevocationOptions::batch`] changes arrive per poll:
    /// `poll + 6 × (connect_timeout + response_timeout)`, 700 ms by default. The writer
    /// is woken at once but may first finish a round in progress (a write and a read)
    /// before its own write: three calls. A reader's read may have started just before
    /// the write landed (one call); it then waits `poll` and runs a round (its own
    /// write, then the read): three calls. Each call takes at most a connect (when no
    /// pooled connection is left) and a response timeout. On a cluster, the client's
    /// one retry can double a call. In practice the delay is the reader's phase in its
    /// poll plus a round trip or two (measured: about 50 ms at a 50 ms poll).
    pub fn delay_bound(&self) -> Duration {
        let c = self.shared.store.config();
        self.shared.options.poll + 6 * (c.connect_timeout + c.response_timeout)
    }
}

/// The fleet fingerprint's domain: the first part hashed before the value.
const DOMAIN: &str = "revocation";

impl RevocationSync for RedisRevocations {
    fn fingerprint(&self, value: &str) -> u128 {
        self.shared.store.namer().fingerprint128(&[DOMAIN, value])
    }

    fn attach(&self, inbox: Arc<RevocationInbox>) {
        let mut poller = Poller {
            shared: Arc::clone(&self.shared),
            inbox: Arc::downgrade(&inbox),
            epoch: None,
            last: "0-0".into(),
            full: true,
            in_flight: Vec::new(),
        };
        // The first round before the engine starts: it starts from the fleet's set
        // when Redis answers in time.
        poller.round(&inbox);
        drop(inbox);
        let _ = std::thread::Builder::new()
            .name("tollgate-revocations".into())
            .spawn(move || poller.run());
    }

    fn publish(&self) {
        *self.shared.dirty.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
    }
}

/// One engine's thread.
struct Poller {
    shared: Arc<Shared>,
    inbox: Weak<RevocationInbox>,
    /// The epoch last read; `None` before the first read.
    epoch: Option<String>,
    /// The last log id read.
    last: String,
    /// Read the whole set next time.
    full: bool,
    /// Changes written, not yet read back: (change, its log id).
    in_flight: Vec<(FleetRevocation, LogId)>,
}

/// A stream id, comparable.
type LogId = (u64, u64);

fn parse_id(s: &str) -> Option<LogId> {
    let (ms, seq) = s.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

impl Poller {
    fn run(mut self) {
        loop {
            {
                let s = &self.shared;
                let mut dirty = s.dirty.lock().unwrap_or_else(|p| p.into_inner());
                if !*dirty {
                    dirty = s
                        .wake
                        .wait_timeout(dirty, s.options.poll)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                *dirty = false;
            }
            let Some(inbox) = self.inbox.upgrade() else {
                return;
            };
            self.round(&inbox);
        }
    }

    /// One round: write what is pending, then read.
    fn round(&mut self, inbox: &RevocationInbox) {
        if let Err(e) = self.write(inbox) {
            self.failed(&e);
            return;
        }
        loop {
            match self.read(inbox) {
                Ok(true) => continue,
                Ok(false) => return,
                Err(e) => {
                    self.failed(&e);
                    return;
                }
            }
        }
    }

    fn failed(&self, _e: &StoreError) {
        self.shared.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the engine's pending changes (once an epoch was read).
    fn write(&mut self, inbox: &RevocationInbox) -> Result<(), StoreError> {
        let Some(epoch) = self.epoch.clone() else {
            return Ok(());
        };
        let pending = inbox.pending();
        // What was written and not read back yet needs no second write unless changed.
        let todo: Vec<FleetRevocation> = pending
            .into_iter()
            .filter(|c| !self.in_flight.iter().any(|(w, _)| w == c))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let s = &self.shared;
        let mut inv = s.write.prepare_invoke();
        for k in &s.keys {
            inv.key(k);
        }
        inv.arg(&epoch).arg(s.options.log_len);
        for c in &todo {
            inv.arg(format!("{:032x}", c.fingerprint())).arg(encode(c));
        }
        let reply: Value = s.store.invoke(&inv)?;
        let items = array(&reply).ok_or_else(|| StoreError::Reply("revocations write".into()))?;
        match (items.first().and_then(int), items.get(1).and_then(text)) {
            (Some(1), Some(id)) => {
                let id = parse_id(&id).unwrap_or((u64::MAX, u64::MAX));
                s.written.fetch_add(todo.len() as u64, Ordering::Relaxed);
                self.in_flight.extend(todo.into_iter().map(|c| (c, id)));
            }
            // Redis lost the fleet's state since the last read: the next read finds out.
            (Some(0), _) => {}
            _ => return Err(StoreError::Reply("revocations write".into())),
        }
        Ok(())
    }

    /// Reads the log after the last entry read (or the whole set). Returns whether a
    /// full batch came (read again at once).
    fn read(&mut self, inbox: &RevocationInbox) -> Result<bool, StoreError> {
        let s = &self.shared;
        let fresh = format!("{:016x}{:016x}", random(), random());
        let mut inv = s.poll.prepare_invoke();
        for k in &s.keys {
            inv.key(k);
        }
        inv.arg(self.epoch.as_deref().unwrap_or(""))
            .arg(&fresh)
            .arg(&self.last)
            .arg(s.options.batch)
            .arg(if self.full { "full" } else { "" });
        let reply: Value = s.store.invoke(&inv)?;
        let bad = || StoreError::Reply("revocations poll".into());
        let items = array(&reply).ok_or_else(bad)?;
        let kind = items.first().and_then(text).ok_or_else(bad)?;
        let epoch = items.get(1).and_then(text).ok_or_else(bad)?;
        let created = items.get(2).and_then(int).ok_or_else(bad)? == 1;
        s.polls.fetch_add(1, Ordering::Relaxed);
        if kind == "full" {
            let last = items.get(3).and_then(text).ok_or_else(bad)?;
            let flat = items.get(4).and_then(array).ok_or_else(bad)?;
            let mut set = Vec::new();
            for pair in flat.chunks(2) {
                if let [f, v] = pair {
                    if let Some(c) =
                        decode(&text(f).unwrap_or_default(), &text(v).unwrap_or_default())
                    {
                        set.push(c);
                    }
                }
            }
            s.full_reads.fetch_add(1, Ordering::Relaxed);
            s.received.fetch_add(set.len() as u64, Ordering::Relaxed);
            // Everything written before this read is in the set, unless Redis lost it:
            // then nothing is confirmed, and the pending changes are written again.
            let written: Vec<FleetRevocation> = self.in_flight.drain(..).map(|(c, _)| c).collect();
            let lost = created || self.epoch.as_ref().is_some_and(|e| *e != epoch);
            let confirmed = if lost { Vec::new() } else { written };
            if lost {
                // Redis holds none (or not all) of the fleet's state: every instance
                // writes back its set; the others' arrive through the log.
                if self.epoch.is_some() {
                    s.epochs_lost.fetch_add(1, Ordering::Relaxed);
                }
                inbox.deliver(set, &confirmed);
                inbox.share_local_set(unix_now_ns());
            } else {
                inbox.replace(set, &confirmed);
            }
            self.epoch = Some(epoch);
            self.last = last;
            self.full = false;
            return Ok(false);
        }
        let flat = items.get(3).and_then(array).ok_or_else(bad)?;
        let mut changes = Vec::new();
        let mut max = parse_id(&self.last).unwrap_or((0, 0));
        for entry in flat.chunks(3) {
            if let [id, f, v] = entry {
                let id = text(id).unwrap_or_default();
                if let Some(c) = decode(&text(f).unwrap_or_default(), &text(v).unwrap_or_default())
                {
                    changes.push(c);
                }
                if let Some(p) = parse_id(&id) {
                    max = max.max(p);
                }
                self.last = id;
            }
        }
        let n = flat.len() / 3;
        s.received
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        let (confirmed, still): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|(_, id)| *id <= max);
        self.in_flight = still;
        let confirmed: Vec<FleetRevocation> = confirmed.into_iter().map(|(c, _)| c).collect();
        if !changes.is_empty() || !confirmed.is_empty() {
            inbox.deliver(changes, &confirmed);
        }
        Ok(n as u64 >= s.options.batch)
    }
}

/// The value a change is written as.
fn encode(c: &FleetRevocation) -> String {
    match c {
        FleetRevocation::Revoked {
            filter_bit,
            key,
            until,
            ..
        } => match until {
            Some(u) => format!("{u}:{filter_bit}:{key}"),
            None => format!("-:{filter_bit}:{key}"),
        },
        FleetRevocation::Restored { .. } => "x".into(),
    }
}

/// A change read back (`None`: not one this crate writes).
fn decode(field: &str, value: &str) -> Option<FleetRevocation> {
    let fingerprint = u128::from_str_radix(field, 16)
        .ok()
        .filter(|_| field.len() == 32)?;
    if value == "x" {
        return Some(FleetRevocation::Restored { fingerprint });
    }
    let mut parts = value.splitn(3, ':');
    let until = match parts.next()? {
        "-" => None,
        u => Some(u.parse().ok()?),
    };
    let filter_bit = parts.next()?.parse().ok()?;
    let key = parts
        .next()
        .and_then(KeyRef::parse)
        .unwrap_or_else(|| KeyRef::of(field));
    Some(FleetRevocation::Revoked {
        fingerprint,
        filter_bit,
        key,
        until,
    })
}

fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) => Some(a),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// 64 random bits (from the standard library's randomly seeded hasher).
fn random() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_and_hold_no_value() {
        let key = KeyRef::of("sk_live_secret_token");
        let c = FleetRevocation::Revoked {
            fingerprint: 0xabcdef,
            filter_bit: 513,
            key: key.clone(),
            until: Some(1_800_000_000_000_000_000),
        };
        let v = encode(&c);
        assert!(!v.contains("sk_live"), "{v}");
        assert_eq!(decode(&format!("{:032x}", 0xabcdef), &v), Some(c));
        let r = FleetRevocation::Restored { fingerprint: 7 };
        assert_eq!(decode(&format!("{:032x}", 7), &encode(&r)), Some(r));
        let p = FleetRevocation::Revoked {
            fingerprint: 1,
            filter_bit: 0,
            key,
            until: None,
        };
        assert_eq!(decode(&format!("{:032x}", 1), &encode(&p)), Some(p));
        assert_eq!(decode("zz", "x"), None);
        assert!(parse_id("1-2") < parse_id("1-10"));
    }
}
