//! The connection to Redis shared by every limit and the quota of an engine: a small
//! pool of blocking connections (or cluster connections) with tight timeouts, the Lua
//! scripts, the circuit breaker and the counters of calls that reached the network.

use crate::keys::{KeyNamer, KeySecret};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{ConnectionLike, FromRedisValue, ScriptInvocation};

use crate::breaker::{Breaker, BreakerConfig, BreakerState, Permit};
use crate::script::calls::ClockArgs;
use crate::script::reply::ReplyError;
use crate::script::source::Scripts;

/// The Lua sources as they are sent to Redis (they live in `script/source.rs`).
pub use crate::script::source as scripts;

/// Whose clock decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClockSource {
    /// The Redis server's clock (`TIME` inside the scripts): the instances' clocks do
    /// not matter. The default, and the only sensible choice for a fleet.
    #[default]
    Server,
    /// The `now` the engine passes to each call (Unix nanoseconds, truncated to
    /// microseconds). For replays and deterministic tests: every instance's clock must
    /// agree. Keys then live an extra [`CALLER_CLOCK_EXTRA_TTL_MS`] past their state's
    /// expiry, as Redis expires them on its own clock.
    Caller,
}

/// Extra time to live of keys written on the caller's clock: one day.
pub const CALLER_CLOCK_EXTRA_TTL_MS: u64 = 86_400_000;

/// How to reach Redis. `Debug` shows node URLs without their password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://host:port/` URLs: one server, or the seed nodes of a cluster.
    pub nodes: Vec<String>,
    /// Whether `nodes` are a Redis Cluster.
    pub cluster: bool,
    /// The first part of every key (default `"tg"`), to share a Redis with others.
    pub prefix: String,
    /// How long to wait for a connection (default 50 ms).
    pub connect_timeout: Duration,
    /// How long to wait for a reply (default 50 ms).
    pub response_timeout: Duration,
    /// When to stop calling a Redis that fails (see [`BreakerConfig`]).
    pub breaker: BreakerConfig,
    /// Whose clock decides (default: the server's).
    pub clock: ClockSource,
    /// Idle connections kept for reuse (default 32).
    pub max_idle: usize,
    /// The fleet's secret for key names (see [`crate::keys`]): every instance sharing
    /// the Redis must have the same. `None`: read `TOLLGATE_REDIS_KEY_SECRET`; a store
    /// with neither is refused, since key names without a secret would let anyone who
    /// can read them test guesses of short tokens.
    pub key_secret: Option<KeySecret>,
}

impl RedisConfig {
    /// One Redis server at `url` (`redis://127.0.0.1:6379/`).
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            nodes: vec![url.into()],
            cluster: false,
            prefix: "tg".into(),
            connect_timeout: Duration::from_millis(50),
            response_timeout: Duration::from_millis(50),
            breaker: BreakerConfig::default(),
            clock: ClockSource::Server,
            max_idle: 32,
            key_secret: None,
        }
    }

    /// A Redis Cluster reached through `nodes`.
    pub fn cluster(nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        RedisConfig {
            nodes: nodes.into_iter().map(Into::into).collect(),
            cluster: true,
            ..RedisConfig::new("")
        }
    }

    /// The fleet's key secret (at least 16 bytes).
    pub fn key_secret(mut self, secret: impl AsRef<[u8]>) -> Result<Self, String> {
        self.key_secret = Some(KeySecret::new(secret)?);
        Ok(self)
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets both timeouts.
    pub fn timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    /// Sets the circuit breaker.
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Sets whose clock decides.
    pub fn clock(mut self, clock: ClockSource) -> Self {
        self.clock = clock;
        self
    }
}

/// Why a call to Redis did not happen or failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The circuit breaker is open: the call did not reach the network.
    CircuitOpen,
    /// Redis failed or timed out.
    Redis(redis::RedisError),
    /// A script's reply was not of the shape the script returns (what was wrong).
    Reply(String),
}

impl From<ReplyError> for StoreError {
    fn from(e: ReplyError) -> Self {
        StoreError::Reply(e.to_string())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::CircuitOpen => f.write_str("redis circuit breaker open"),
            StoreError::Redis(e) => write!(f, "redis: {e}"),
            StoreError::Reply(e) => write!(f, "redis: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Counters of the store's calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Script calls that went to the network (one per decision, undo, seed or flush;
    /// a NOSCRIPT reload inside one call is not counted again).
    pub network_calls: u64,
    /// Of those, the ones that failed (timeouts, refused connections, errors).
    pub errors: u64,
    /// Calls the open breaker kept off the network.
    pub short_circuited: u64,
    /// Connections opened.
    pub connects: u64,
}

enum Client {
    Single(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>),
}

enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }
}

/// A Redis (single server or cluster) shared by the limits and the quota of one or more
/// engines in this process. Cheap to share behind an `Arc`.
pub struct RedisStore {
    config: RedisConfig,
    namer: KeyNamer,
    client: Client,
    pool: Mutex<Vec<Conn>>,
    breaker: Breaker,
    pub(crate) scripts: Scripts,
    network_calls: AtomicU64,
    errors: AtomicU64,
    short_circuited: AtomicU64,
    connects: AtomicU64,
    /// How long calls that reached the network took.
    latency: tollgate::metrics::Histogram,
    /// The async path's multiplexed connection (cheap to clone), opened on first use.
    #[cfg(feature = "tokio")]
    async_conn: Mutex<Option<AsyncConn>>,
    /// Held by the one task that connects, so concurrent first calls share it.
    #[cfg(feature = "tokio")]
    connecting: tokio::sync::Mutex<()>,
}

/// A multiplexed connection of the async (tokio) path.
#[cfg(feature = "tokio")]
#[derive(Clone)]
enum AsyncConn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// `url` with the password of its user info (`redis://user:pass@host`) replaced.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = self.nodes.iter().map(|n| redact_url(n)).collect();
        f.debug_struct("RedisConfig")
            .field("nodes", &nodes)
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("breaker", &self.breaker)
            .field("clock", &self.clock)
            .field("max_idle", &self.max_idle)
            .field("key_secret", &self.key_secret)
            .finish()
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = self.config.nodes.iter().map(|n| redact_url(n)).collect();
        f.debug_struct("RedisStore")
            .field("nodes", &nodes)
            .field("cluster", &self.config.cluster)
            .field("breaker", &self.breaker.state())
            .field("stats", &self.stats())
            .finish()
    }
}

impl RedisStore {
    /// A store for `config`. Connections are opened on first use, so an engine starts
    /// (and decides by its failure policy) while Redis is down.
    pub fn new(config: RedisConfig) -> Result<Arc<Self>, redis::RedisError> {
        let refuse = |why: String| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "no usable key secret",
                why,
            ))
        };
        let secret = match &config.key_secret {
            Some(s) => s.clone(),
            None => match KeySecret::from_env() {
                Some(Ok(s)) => s,
                Some(Err(e)) => return Err(refuse(e)),
                None => {
                    return Err(refuse(format!(
                        "set RedisConfig::key_secret or {} to the fleet's secret \
                         (16 bytes or more, the same on every instance)",
                        KeySecret::ENV
                    )))
                }
            },
        };
        let namer = KeyNamer::new(&secret);
        let client = if config.cluster {
            let c = redis::cluster::ClusterClientBuilder::new(config.nodes.clone())
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.response_timeout)
                .retries(1)
                .build()?;
            Client::Cluster(Box::new(c))
        } else {
            let url = config.nodes.first().map_or("", String::as_str);
            Client::Single(redis::Client::open(url)?)
        };
        Ok(Arc::new(RedisStore {
            namer,
            breaker: Breaker::new(config.breaker),
            config,
            client,
            pool: Mutex::new(Vec::new()),
            scripts: Scripts::new(),
            network_calls: AtomicU64::new(0),
            latency: tollgate::metrics::Histogram::default(),
            errors: AtomicU64::new(0),
            short_circuited: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            #[cfg(feature = "tokio")]
            async_conn: Mutex::new(None),
            #[cfg(feature = "tokio")]
            connecting: tokio::sync::Mutex::new(()),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// How this store names keys.
    pub fn namer(&self) -> &KeyNamer {
        &self.namer
    }

    /// The breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The call counters.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            network_calls: self.network_calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            short_circuited: self.short_circuited.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
        }
    }

    /// The store's health for the engine's metrics: identified as `redis:<prefix>`
    /// (never a URL or password), the breaker, the call counters and their latency.
    pub fn health(&self) -> tollgate::metrics::BackendHealth {
        use tollgate::metrics::BreakerStatus;
        let stats = self.stats();
        tollgate::metrics::BackendHealth {
            id: format!("redis:{}", self.config.prefix),
            breaker: match self.breaker_state() {
                BreakerState::Closed => BreakerStatus::Closed,
                BreakerState::Open => BreakerStatus::Open,
                BreakerState::HalfOpen => BreakerStatus::HalfOpen,
            },
            calls: stats.network_calls,
            errors: stats.errors,
            short_circuited: stats.short_circuited,
            connects: stats.connects,
            latency: Some(self.latency.snapshot()),
        }
    }

    /// Idle connections in the pool.
    pub fn idle_connections(&self) -> usize {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Drops every idle connection (the next call connects anew).
    pub fn drop_idle(&self) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn connect(&self) -> redis::RedisResult<Conn> {
        self.connects.fetch_add(1, Ordering::Relaxed);
        match &self.client {
            Client::Single(c) => {
                let conn = c.get_connection_with_timeout(self.config.connect_timeout)?;
                conn.set_read_timeout(Some(self.config.response_timeout))?;
                conn.set_write_timeout(Some(self.config.response_timeout))?;
                Ok(Conn::Single(conn))
            }
            Client::Cluster(c) => Ok(Conn::Cluster(Box::new(c.get_connection()?))),
        }
    }

    /// Runs `f` on a pooled connection, through the breaker.
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut dyn ConnectionLike) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let permit = self.permit()?;
        let started = std::time::Instant::now();
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let result = match pooled {
            Some(c) => Ok(c),
            None => self.connect(),
        }
        .and_then(|mut conn| f(conn.like()).map(|v| (v, conn)));
        self.latency.record(started.elapsed());
        match result {
            Ok((v, conn)) => {
                self.breaker.success(permit);
                let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
                if pool.len() < self.config.max_idle {
                    pool.push(conn);
                }
                Ok(v)
            }
            Err(e) => {
                // The connection is dropped: after an error its state is unknown. After a
                // connection-level error the idle ones are likely stale too (Redis
                // restarted): drop them, so one restart costs one failure, not one per
                // pooled connection (which could open the breaker with Redis up).
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    self.drop_idle();
                }
                Err(self.failed(permit, e))
            }
        }
    }

    /// What the breaker permits a call (counted: a call to the network, or one kept off
    /// it).
    fn permit(&self) -> Result<Permit, StoreError> {
        let permit = self.breaker.permit();
        if permit == Permit::Refuse {
            self.short_circuited.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::CircuitOpen);
        }
        self.network_calls.fetch_add(1, Ordering::Relaxed);
        Ok(permit)
    }

    /// Counts a call under `permit` that failed with `e`, and tells the breaker.
    fn failed(&self, permit: Permit, e: redis::RedisError) -> StoreError {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.breaker.failure(permit);
        StoreError::Redis(e)
    }

    #[cfg(feature = "tokio")]
    async fn connect_async(&self) -> redis::RedisResult<AsyncConn> {
        self.connects.fetch_add(1, Ordering::Relaxed);
        match &self.client {
            Client::Single(c) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.config.connect_timeout))
                    .set_response_timeout(Some(self.config.response_timeout));
                Ok(AsyncConn::Single(
                    c.get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
            Client::Cluster(c) => Ok(AsyncConn::Cluster(c.get_async_connection().await?)),
        }
    }

    /// [`invoke`](Self::invoke) on the async (tokio) path: one multiplexed connection
    /// shared by all tasks, the same breaker and counters.
    #[cfg(feature = "tokio")]
    pub(crate) async fn invoke_async<T: FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let permit = self.permit()?;
        let started = std::time::Instant::now();
        let cached = || {
            self.async_conn
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        };
        let conn = match cached() {
            Some(c) => Ok(c),
            None => {
                let _one = self.connecting.lock().await;
                match cached() {
                    Some(c) => Ok(c),
                    None => self.connect_async().await.inspect(|c| {
                        *self.async_conn.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(c.clone());
                    }),
                }
            }
        };
        let result = match conn {
            Ok(AsyncConn::Single(mut c)) => inv.invoke_async(&mut c).await,
            Ok(AsyncConn::Cluster(mut c)) => inv.invoke_async(&mut c).await,
            Err(e) => Err(e),
        };
        self.latency.record(started.elapsed());
        match result {
            Ok(v) => {
                self.breaker.success(permit);
                Ok(v)
            }
            Err(e) => {
                *self.async_conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Err(self.failed(permit, e))
            }
        }
    }

    /// Invokes a prepared script (EVALSHA, SCRIPT LOAD and again on NOSCRIPT).
    pub(crate) fn invoke<T: FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.with_conn(|c| inv.invoke(c))
    }

    /// Invokes a prepared script and parses its reply (of type `R`) with `parse`.
    pub(crate) fn call<R: FromRedisValue, T>(
        &self,
        inv: &ScriptInvocation<'_>,
        parse: impl FnOnce(&R) -> Result<T, ReplyError>,
    ) -> Result<T, StoreError> {
        Ok(parse(&self.invoke::<R>(inv)?)?)
    }

    /// [`call`](Self::call) on the async (tokio) path.
    #[cfg(feature = "tokio")]
    pub(crate) async fn call_async<R: FromRedisValue, T>(
        &self,
        inv: &ScriptInvocation<'_>,
        parse: impl FnOnce(&R) -> Result<T, ReplyError>,
    ) -> Result<T, StoreError> {
        Ok(parse(&self.invoke_async::<R>(inv).await?)?)
    }

    /// Whether Redis answers `PING` (through the breaker).
    pub fn ping(&self) -> bool {
        self.with_conn(|c| redis::cmd("PING").query::<String>(c))
            .is_ok()
    }

    /// The `now` argument of the scripts: `""` on the server's clock, else `now_ns` in
    /// microseconds; and the extra time to live of the keys written.
    pub(crate) fn clock_args(&self, now_ns: u64) -> ClockArgs {
        match self.config.clock {
            ClockSource::Server => (String::new(), 0),
            ClockSource::Caller => ((now_ns / 1000).to_string(), CALLER_CLOCK_EXTRA_TTL_MS),
        }
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_password_or_the_key_secret() {
        let c = RedisConfig::cluster([
            "redis://admin:s3cr3t-pw@10.0.0.1:6379/0",
            "redis://:only-pw@h:1",
        ])
        .key_secret("the fleet secret, 16+ bytes")
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("only-pw"),
            "{shown}"
        );
        assert!(!shown.contains("fleet secret"), "{shown}");
        assert!(
            shown.contains("redis://admin:***@10.0.0.1:6379/0"),
            "{shown}"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
    }
}
