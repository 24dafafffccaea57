//! Real `redis-server` processes for tests, examples and benches: one server on a free
//! loopback port in a temporary directory, or a three-node loopback Redis Cluster.
//! Killed on drop.
//!
//! The binary is `$REDIS_SERVER`, else `redis-server` on `PATH`, else
//! `/usr/bin/redis-server` (and `redis-cli` beside it). When it is missing,
//! [`RedisServer::start`] returns `None` and prints why, so a test can skip, except with
//! `CI=true`, where a missing Redis is a failure: it panics.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long to wait for a server to answer `PING`, or a cluster to say `ok`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Where `name` (`redis-server`, `redis-cli`) is, if anywhere.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let env = if name == "redis-server" {
        "REDIS_SERVER"
    } else {
        "REDIS_CLI"
    };
    if let Some(p) = std::env::var_os(env).map(PathBuf::from) {
        if p.is_file() {
            return Some(p);
        }
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = Path::new("/usr/bin").join(name);
        p.is_file().then_some(p)
    })
}

/// Whether the suite runs in CI (`CI=true`), where a missing Redis fails.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `redis-server`, or `None` with a skip message (a panic in CI).
fn server_binary() -> Option<PathBuf> {
    match find_binary("redis-server") {
        Some(p) => Some(p),
        None if in_ci() => panic!(
            "redis-server not found (CI=true: a missing Redis is a failure); install it \
             (apt-get install -y redis-server) or set REDIS_SERVER"
        ),
        None => {
            eprintln!(
                "SKIPPED: redis-server not found (install it with `apt-get install -y \
                 redis-server` or set REDIS_SERVER); with CI=true this is a failure"
            );
            None
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released: a race with other processes is
/// possible but unlikely).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// One `redis-server` on 127.0.0.1 in a temporary directory.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without persistence (`--save '' --appendonly no`). `None` when
    /// redis-server is missing (outside CI).
    pub fn start() -> Option<Self> {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server that keeps every write (`--appendonly yes --appendfsync always`)
    /// when `persistent`, or none ([`start`](Self::start)): for tests of a restart
    /// with and without the data.
    pub fn start_persistent(persistent: bool) -> Option<Self> {
        if persistent {
            Self::start_with(&[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
        } else {
            Self::start()
        }
    }

    /// Starts a server with extra `args` (e.g. `["--appendonly", "yes"]`).
    pub fn start_with(args: &[&str]) -> Option<Self> {
        let binary = server_binary()?;
        static SERVERS: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tollgate-redis-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut s = RedisServer {
            binary,
            port: free_port(),
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        s.spawn(false);
        Some(s)
    }

    /// Starts the server; on a port another process took meanwhile (the child exits,
    /// or another server answers), tries a new port unless `same_port`.
    fn spawn(&mut self, same_port: bool) {
        for _ in 0..5 {
            let mut child = Command::new(&self.binary)
                .arg("--port")
                .arg(self.port.to_string())
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--dir")
                .arg(&self.dir)
                .arg("--daemonize")
                .arg("no")
                .arg("--protected-mode")
                .arg("no")
                .args(&self.args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            if wait_until_ours(&mut child, self.port, &self.dir) {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                !same_port,
                "redis-server could not start again on port {}",
                self.port
            );
            self.port = free_port();
        }
        panic!("redis-server did not start on a free port");
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL: whatever it held in memory is lost).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory (empty unless persistence was
    /// on), and waits for `PING`.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn(true);
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A blocking connection, for test assertions.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test redis")
    }

    /// The sum of `used` over the quota counters under `prefix` (see [`crate::keys`]).
    pub fn quota_used(&self, prefix: &str) -> u64 {
        let mut c = self.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*:q:*"))
            .query(&mut c)
            .expect("KEYS");
        keys.iter()
            .map(|k| {
                redis::cmd("HGET")
                    .arg(k)
                    .arg("used")
                    .query::<Option<u64>>(&mut c)
                    .expect("HGET")
                    .unwrap_or(0)
            })
            .sum()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until the server on `port` answers `PING` and is `child` (its `dir` is ours:
/// not another test's server that took the port first). False if `child` exited.
fn wait_until_ours(child: &mut Child, port: u16, dir: &Path) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    let url = format!("redis://127.0.0.1:{port}/");
    loop {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        let answer = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("dir")
                    .query::<Vec<String>>(&mut c)
            });
        if let Ok(kv) = answer {
            let ours = dir.canonicalize().ok();
            return kv
                .get(1)
                .map(PathBuf::from)
                .and_then(|d| d.canonicalize().ok())
                == ours;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} did not answer"
        );
        sleep(Duration::from_millis(20));
    }
}

/// Three `redis-server --cluster-enabled yes` nodes on loopback, joined with
/// `redis-cli --cluster create ... --cluster-replicas 0`, killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the cluster and waits until `cluster info` says `cluster_state:ok` on
    /// every node. `None` when redis-server is missing (outside CI).
    pub fn start() -> Option<Self> {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect::<Option<_>>()?;
        // The config file lives in each node's own directory.
        let cli = find_binary("redis-cli").expect("redis-cli beside redis-server");
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new(cli)
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + START_TIMEOUT;
        for n in &nodes {
            loop {
                let mut c = n.connection();
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut c)
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster did not become ok: {info}"
                );
                sleep(Duration::from_millis(50));
            }
        }
        Some(RedisCluster { nodes })
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// The key secret of tests, examples and benches (never use it for a real fleet).
pub const TEST_KEY_SECRET: &str = "tollgate tests' key secret: not a secret";

/// A configuration for one test server at `url`, with [`TEST_KEY_SECRET`].
pub fn config(url: impl Into<String>) -> crate::RedisConfig {
    crate::RedisConfig::new(url)
        .key_secret(TEST_KEY_SECRET)
        .expect("the test secret is long enough")
}

/// A configuration for a test cluster reached through `nodes`, with [`TEST_KEY_SECRET`].
pub fn cluster_config(nodes: impl IntoIterator<Item = impl Into<String>>) -> crate::RedisConfig {
    crate::RedisConfig::cluster(nodes)
        .key_secret(TEST_KEY_SECRET)
        .expect("the test secret is long enough")
}
