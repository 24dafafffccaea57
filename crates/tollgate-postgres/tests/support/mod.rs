//! A private PostgreSQL cluster for the ledger's tests: `initdb` into a temporary
//! directory owned by an unprivileged OS user, `pg_ctl start` on a free loopback port,
//! trust authentication, one database; stopped (`-m immediate`) and removed on drop.
//!
//! Without PostgreSQL binaries (and none installable) the tests skip with a message,
//! unless `CI=true`, where a missing server is a failure.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The OS user the cluster runs as when the tests run as root (postgres refuses root).
const PG_USER: &str = "tollgate_pg";

fn ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Some(dir);
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
        .collect();
    found.sort();
    found.pop()
}

fn install() {
    if !is_root() {
        return;
    }
    eprintln!("postgres test harness: installing Debian's postgresql with apt-get");
    let _ = Command::new("apt-get").arg("update").status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "postgresql"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A running private cluster.
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    /// The loopback port.
    pub port: u16,
    as_user: Option<&'static str>,
    /// `host=127.0.0.1 port=.. user=.. dbname=tollgate`
    pub url: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl PgCluster {
    /// Starts a cluster, or returns `None` (after printing why) when no PostgreSQL can be
    /// found or installed and `CI` is not `true`.
    pub fn start() -> Option<PgCluster> {
        let bin = match find_bin_dir() {
            Some(b) => Some(b),
            None => {
                install();
                find_bin_dir()
            }
        };
        let Some(bin) = bin else {
            if ci() {
                panic!("CI=true and no PostgreSQL server (initdb/pg_ctl) found or installable");
            }
            eprintln!("SKIP: no PostgreSQL server binaries (initdb/pg_ctl) found; set CI=true to fail instead");
            return None;
        };
        let as_user = if is_root() {
            let exists = Command::new("id")
                .arg(PG_USER)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !exists {
                let st = Command::new("useradd")
                    .args(["--system", "--no-create-home", PG_USER])
                    .status()
                    .expect("run useradd");
                // Another test process may have created it meanwhile.
                assert!(
                    st.success()
                        || Command::new("id")
                            .arg(PG_USER)
                            .status()
                            .is_ok_and(|s| s.success()),
                    "useradd {PG_USER} failed"
                );
            }
            Some(PG_USER)
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "tollgate-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).expect("create cluster dir");
        if let Some(u) = as_user {
            let st = Command::new("chown")
                .args(["-R", &format!("{u}:"), dir.to_str().unwrap()])
                .status()
                .expect("chown");
            assert!(st.success(), "chown of the cluster dir failed");
        }
        let port = free_port();
        let user = as_user
            .map(str::to_owned)
            .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "postgres".into()));
        let mut c = PgCluster {
            bin,
            dir,
            port,
            as_user,
            url: format!("host=127.0.0.1 port={port} user={user} dbname=tollgate"),
        };
        c.run(
            "initdb",
            &[
                "-D",
                c.data().to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                &user,
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        c.restart();
        let admin_url = format!("host=127.0.0.1 port={port} user={user} dbname=postgres");
        let mut admin =
            postgres::Client::connect(&admin_url, postgres::NoTls).expect("connect to the cluster");
        admin
            .batch_execute("CREATE DATABASE tollgate")
            .expect("create the test database");
        c.url = format!("host=127.0.0.1 port={port} user={user} dbname=tollgate");
        Some(c)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts (or starts again) the server and waits for it (`pg_ctl -w`, 60 s bound).
    pub fn restart(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.join("sock").display()
        );
        let log = self.dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
            ],
        );
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`): connections are cut.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "stop",
                "-w",
                "-m",
                "immediate",
                "-D",
                self.data().to_str().unwrap(),
            ],
        );
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.data())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a cluster or returns from the test (skip) when there is none and CI is unset.
#[macro_export]
macro_rules! cluster_or_skip {
    () => {
        match support::PgCluster::start() {
            Some(c) => c,
            None => return,
        }
    };
}
