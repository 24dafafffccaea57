//! The `tollgate` command: `replay`, `check`, `bench`, `usage`. Run `tollgate --help`.
//!
//! Exit codes: 0 success; 1 a runtime failure (an invalid policy, a file that cannot be
//! read, a replay that fails); 2 a usage error (clap's own: an unknown option, a bad
//! value, a missing argument; and an invalid `--map` or `--keys`).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser as ClapParser, Subcommand, ValueEnum};
use tollgate::engine::EngineError;
use tollgate::policy::{AlgorithmKind, Attr, ByteSize, LimitSpec, Policy, PolicyWarning};
use tollgate::{Engine, PolicyError};
use tollgate_cli::loadgen::{self, DistributionKind, KeySpec, Load, LoadReport, Stop};
use tollgate_cli::log::{Format, Mapping, Parser};
use tollgate_cli::replay;

#[derive(ClapParser)]
#[command(
    name = "tollgate",
    version,
    about = "Rate limits and quotas: replay, check, bench, usage",
    after_help = "Exit status: 0 success, 1 a runtime failure (an invalid policy, a file that \
                  cannot be read, a replay that fails), 2 a usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One JSON object per line.
    Json,
    /// The common or combined log format.
    Combined,
    /// Decide from the first non-empty line.
    Auto,
}

#[derive(Clone, Copy, ValueEnum)]
enum Alg {
    Gcra,
    SlidingWindow,
}

const MAP_HELP: &str = "\
Which log fields feed which request attributes: comma-separated items applied to the \
format's defaults.
  ATTRIBUTE=SOURCE   take ATTRIBUTE from SOURCE: a top-level field name for JSON lines; for \
combined logs one of host, ident, user, time, method, path, query:NAME, path_segment:N \
(0-based), protocol, status, bytes, referer, user_agent
  ATTRIBUTE=         drop ATTRIBUTE
  time=SOURCE        where the time is (JSON: a field, default `time`)
  time_unit=s|ms|us|ns   JSON only: the unit of a numeric time (default s)
Attributes: token, tenant, user, company, client, route, method, or a host attribute the \
policy declares. Defaults: JSON lines read method, path (as route), client, token, tenant, \
user, company; combined logs read host (as client), user, method, path (as route), \
query:token, query:tenant.
Example: --map 'token=query:api_key,tenant=path_segment:1,user='";

const KEYS_HELP: &str = "\
Distinct values per attribute: comma-separated items `N` (every attribute not named), \
`ATTR=N`, or `ATTR=N:uniform|zipf` (that attribute's own distribution). With --policy, the \
attribute the quota is keyed on takes the policy's own users' keys (ATTR=N: the first N of \
them); every other attribute a limit is keyed on takes N generated values (default 10000). \
Without --policy: the token count of the one synthetic limit (default 100000).
Example: --keys 1000,tenant=50,client=100000:zipf";

const BATCH_HELP: &str = "\
Decisions timed together. The clock costs about as much as a decision, so each thread \
times batches of this many decisions, subtracts the clock's own overhead (measured at \
start and reported) and records the batch's mean per-decision time once per decision in \
an HDR histogram: percentiles are of per-decision times averaged over a batch (a single \
slow decision shows diluted). 1 times each decision on its own.";

#[derive(Subcommand)]
enum Command {
    /// What-if analysis: apply a policy to an access log at the log's own timestamps.
    Replay {
        /// The policy file (TOML).
        #[arg(long)]
        policy: PathBuf,
        /// The access log ("-" for standard input).
        log: PathBuf,
        /// The log's format.
        #[arg(long, value_enum, default_value = "auto")]
        format: LogFormat,
        #[arg(long, value_name = "SPEC", help = "Which log fields feed which request attributes (see --help)", long_help = MAP_HELP)]
        map: Option<String>,
        /// Top offenders shown per limit.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Print the report as JSON (a versioned schema: `schema_version`).
        #[arg(long)]
        json: bool,
        /// Count the quota in this journal (created if missing). Without it the replay
        /// is side-effect free: the quota is counted in memory, never in the policy's
        /// own journal, and every limit is decided in memory (no remote backend).
        #[arg(long)]
        journal: Option<PathBuf>,
    },
    /// Validate a policy file (without opening its journal or any backend).
    Check {
        /// The policy file (TOML).
        policy: PathBuf,
        /// Print the result as JSON (a versioned schema: `schema_version`), also when
        /// the policy is invalid (then `ok` is false and the exit status 1).
        #[arg(long)]
        json: bool,
    },
    /// Measure decisions per second and latency on an in-process engine: of your own
    /// policy (--policy) or of one synthetic limit.
    Bench {
        /// Bench this policy (TOML), with what-if semantics: its journal and remote
        /// backends are never opened, the quota counts in memory.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Threads deciding at once.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, value_name = "SPEC", help = "Distinct values per attribute, e.g. 1000,tenant=50:zipf (see --help)", long_help = KEYS_HELP)]
        keys: Option<KeySpec>,
        /// How values are drawn (per attribute: --keys ATTR=N:DIST).
        #[arg(long, value_enum, default_value = "uniform")]
        distribution: DistributionKind,
        /// The Zipf exponent s.
        #[arg(long, default_value_t = 1.1)]
        zipf_exponent: f64,
        /// The HTTP method of every request (it picks the class, and so the cost).
        #[arg(long, default_value = "GET")]
        method: String,
        /// How long to run, e.g. 3s, 500ms, 1m (a bare number is seconds).
        #[arg(long, alias = "seconds", value_parser = parse_duration, conflicts_with = "requests")]
        duration: Option<Duration>,
        /// Stop after this many decisions in all, instead of after --duration.
        #[arg(long)]
        requests: Option<u64>,
        #[arg(long, default_value_t = loadgen::DEFAULT_BATCH, help = "Decisions timed together (see --help)", long_help = BATCH_HELP)]
        batch: usize,
        /// Without --policy: the synthetic limit's algorithm.
        #[arg(long, value_enum, conflicts_with = "policy")]
        algorithm: Option<Alg>,
        /// Without --policy: the synthetic limit's rate.
        #[arg(long, conflicts_with = "policy")]
        rate: Option<String>,
        /// Print the result as JSON (a versioned schema: `schema_version`).
        #[arg(long)]
        json: bool,
    },
    /// Usage per company (or user) and period, with the period-end statements, from the
    /// fleet ledger on PostgreSQL, or from one instance's SQLite quota journal.
    Usage {
        /// The ledger's PostgreSQL URL (libpq URL or key=value string).
        #[arg(long, required_unless_present = "journal", conflicts_with = "journal")]
        postgres: Option<String>,
        /// A quota journal (SQLite), read-only.
        #[arg(long)]
        journal: Option<PathBuf>,
        /// Only this company.
        #[arg(long)]
        company: Option<String>,
        /// Only this period, e.g. 2026-11.
        #[arg(long)]
        period: Option<String>,
        /// `user`: one line per user instead of per company.
        #[arg(long, value_parser = ["user"])]
        by: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: UsageFmt,
    },
    /// An operator's change to a quota journal (companies, users, tokens), applied when
    /// an engine next starts on it; `list` shows what it holds. Tokens given as `-` are
    /// read from standard input; none is printed in full.
    Admin {
        /// The quota journal (SQLite); never created.
        #[arg(long)]
        journal: PathBuf,
        /// What to change.
        #[command(subcommand)]
        op: AdminCmd,
    },
}

#[derive(clap::Subcommand)]
enum AdminCmd {
    /// Refuse every key of a company (its usage is kept) until resumed.
    SuspendCompany { company: String },
    /// Serve a suspended company again.
    ResumeCompany { company: String },
    /// Refuse every key of a company for good (its usage is kept for billing).
    TerminateCompany { company: String },
    /// Remove a company (its usage stays in the statements).
    RemoveCompany { company: String },
    /// Add a user to a company.
    AddUser {
        user: String,
        #[arg(long)]
        company: String,
    },
    /// Refuse a user's keys until enabled.
    DisableUser { user: String },
    /// Serve a disabled user again.
    EnableUser { user: String },
    /// Remove a user (its usage stays in the statements).
    RemoveUser { user: String },
    /// Revoke a token until restored, or for a while with --for (e.g. 1h).
    Revoke {
        /// The token, or `-` to read it from standard input.
        token: String,
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<Duration>,
    },
    /// Restore a revoked token.
    Restore {
        /// The token, or `-` to read it from standard input.
        token: String,
    },
    /// List the journal's administrative changes and revocations (tokens redacted).
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum UsageFmt {
    Table,
    Json,
    Csv,
}

/// A `--duration`: `3s`, `500ms`, `1.5s`, `2m`, `1h`, or a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 3s, 500ms or 2m"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use ms, s, m or h)")),
    };
    let secs = n * scale;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{s:?}: a duration is above 0 and at most 24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Why a command failed, and so its exit status.
enum Failure {
    /// The command line is wrong (2, printed by clap with the subcommand's usage).
    Usage {
        /// The subcommand.
        command: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The work failed (1).
    Runtime(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Runtime(message)
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(Failure::Runtime(message)) => {
            eprintln!("tollgate: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage { command, message }) => {
            let mut cli = Cli::command();
            // Exits with status 2, as clap does for its own usage errors.
            match cli.find_subcommand_mut(command) {
                Some(sub) => sub
                    .clone()
                    .bin_name(format!("tollgate {command}"))
                    .error(ErrorKind::ValueValidation, message)
                    .exit(),
                None => cli.error(ErrorKind::ValueValidation, message).exit(),
            }
        }
    }
}

/// Makes `p` side-effect free for a what-if run: its quota journal is replaced by
/// `journal` (`None`: counted in memory) and every limit decides in memory. Returns the
/// policy's own journal path, if it named one.
fn what_if(p: &mut Policy, journal: Option<PathBuf>) -> Option<PathBuf> {
    for l in &mut p.limits {
        if l.backend != "memory" {
            eprintln!(
                "tollgate: limit {:?}: decided in memory for this run (its backend {:?} is not contacted)",
                l.name, l.backend
            );
            l.backend = "memory".to_owned();
        }
    }
    let q = p.quota.as_mut()?;
    std::mem::replace(&mut q.journal, journal)
}

/// The policy at `path` with its warnings, printed on stderr.
fn read_policy(path: &Path) -> Result<Policy, Failure> {
    let (p, warnings) = Policy::from_file(path).map_err(|e| e.to_string())?;
    for w in &warnings {
        eprintln!("{}:{w}", path.display());
    }
    Ok(p)
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Check { policy, json } => check(&policy, json),
        Command::Admin { journal, op } => {
            use tollgate::quota::CompanyStatus as S;
            use tollgate_cli::admin::{self, token_arg, AdminOp};
            let op = match op {
                AdminCmd::SuspendCompany { company } => {
                    AdminOp::CompanyStatus(company, S::Suspended)
                }
                AdminCmd::ResumeCompany { company } => AdminOp::CompanyStatus(company, S::Active),
                AdminCmd::TerminateCompany { company } => {
                    AdminOp::CompanyStatus(company, S::Terminated)
                }
                AdminCmd::RemoveCompany { company } => AdminOp::CompanyStatus(company, S::Removed),
                AdminCmd::AddUser { user, company } => AdminOp::AddUser { user, company },
                AdminCmd::DisableUser { user } => AdminOp::UserDisabled(user, true),
                AdminCmd::EnableUser { user } => AdminOp::UserDisabled(user, false),
                AdminCmd::RemoveUser { user } => AdminOp::RemoveUser(user),
                AdminCmd::Revoke { token, duration } => {
                    AdminOp::Revoke(token_arg(&token)?, duration)
                }
                AdminCmd::Restore { token } => AdminOp::Restore(token_arg(&token)?),
                AdminCmd::List => AdminOp::List,
            };
            print(&admin::run(&journal, op)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Usage {
            postgres,
            journal,
            company,
            period,
            by,
            format,
        } => {
            use tollgate_cli::usage::{self, UsageFormat};
            let by_user = by.is_some();
            let (company, period) = (company.as_deref(), period.as_deref());
            let lines = match (&postgres, &journal) {
                (Some(url), _) => usage::from_postgres(url, company, period, by_user)?,
                (None, Some(path)) => usage::from_journal(path, company, period, by_user)?,
                (None, None) => unreachable!("clap requires --postgres or --journal"),
            };
            let format = match format {
                UsageFmt::Table => UsageFormat::Table,
                UsageFmt::Json => UsageFormat::Json,
                UsageFmt::Csv => UsageFormat::Csv,
            };
            print!("{}", usage::render(&lines, by_user, format));
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            policy,
            log,
            format,
            map,
            top,
            json,
            journal,
        } => {
            let mut p = read_policy(&policy)?;
            // What-if: the policy's own journal (a production billing table) and remote
            // backends are never touched; `--journal` names one explicitly.
            let _ = what_if(&mut p, journal);
            let engine = Engine::new(p).map_err(|e| format!("{}: {e}", policy.display()))?;
            let stdin = log.as_os_str() == "-";
            let (input, total): (Box<dyn std::io::Read>, Option<u64>) = if stdin {
                (Box::new(std::io::stdin().lock()), None)
            } else {
                let f = File::open(&log).map_err(|e| format!("{}: {e}", log.display()))?;
                let len = f.metadata().ok().map(|m| m.len());
                (Box::new(f), len)
            };
            let mut input = BufReader::with_capacity(1 << 20, input);
            let format = match format {
                LogFormat::Json => Format::JsonLines,
                LogFormat::Combined => Format::Combined,
                LogFormat::Auto => {
                    let head = std::io::BufRead::fill_buf(&mut input)
                        .map_err(|e| format!("{}: {e}", log.display()))?;
                    let first = head.iter().find(|b| !b.is_ascii_whitespace());
                    if first == Some(&b'{') {
                        Format::JsonLines
                    } else {
                        Format::Combined
                    }
                }
            };
            let mapping = match map {
                Some(spec) => Mapping::parse(format, &spec).map_err(|e| Failure::Usage {
                    command: "replay",
                    message: format!("invalid value {spec:?} for '--map <SPEC>': {e}"),
                })?,
                None => Mapping::defaults(format),
            };
            let mut parser = Parser::new(&mapping);
            let report =
                replay::replay(&engine, &mut parser, input, replay::progress_printer(total))
                    .map_err(|e| format!("{}: {e}", log.display()))?;
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprint!("\r\x1b[K");
            }
            let text = if json {
                to_json(&replay::render_json(&engine, &report, top))?
            } else {
                replay::render_text(&engine, &report, top)
            };
            print(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            policy,
            threads,
            keys,
            distribution,
            zipf_exponent,
            method,
            duration,
            requests,
            batch,
            algorithm,
            rate,
            json,
        } => {
            let usage = |message: String| Failure::Usage {
                command: "bench",
                message,
            };
            let keys = keys.unwrap_or_default();
            let p = match &policy {
                Some(path) => {
                    let mut p = read_policy(path)?;
                    // What-if, as `replay`: no journal, no remote backend.
                    let _ = what_if(&mut p, None);
                    p
                }
                None => {
                    if let Some((name, _, _)) = keys.attrs.iter().find(|a| a.0 != "token") {
                        return Err(usage(format!(
                            "--keys {name}=...: without --policy the one limit is keyed on token"
                        )));
                    }
                    let rate = rate.unwrap_or_else(|| "1000/s".to_owned());
                    let mut limit = LimitSpec::new(
                        "bench",
                        rate.parse()
                            .map_err(|e| usage(format!("--rate {rate:?}: {e}")))?,
                    );
                    limit.key = vec![Attr::Token];
                    limit.algorithm = match algorithm.unwrap_or(Alg::Gcra) {
                        Alg::Gcra => AlgorithmKind::Gcra,
                        Alg::SlidingWindow => AlgorithmKind::SlidingWindow,
                    };
                    let tokens = keys.attrs.first().map(|a| a.1).or(keys.default);
                    limit.capacity = tokens.unwrap_or(100_000);
                    Policy {
                        limits: vec![limit],
                        ..Policy::default()
                    }
                }
            };
            let mut keys = keys;
            if policy.is_none() && keys.attrs.is_empty() {
                keys.default = Some(keys.default.unwrap_or(100_000));
            }
            let attributes =
                loadgen::plan(&p, &keys, distribution, zipf_exponent).map_err(usage)?;
            let what = policy.as_ref().map_or_else(
                || "the synthetic limit".to_owned(),
                |p| p.display().to_string(),
            );
            let engine = Engine::new(p).map_err(|e| format!("{what}: {e}"))?;
            let stop = match (requests, duration) {
                (Some(0), _) => return Err(usage("--requests: at least 1".into())),
                (Some(n), _) => Stop::Requests(n),
                (None, d) => Stop::After(d.unwrap_or(Duration::from_secs(3))),
            };
            let mut report = loadgen::run(
                &engine,
                &Load {
                    threads,
                    attributes,
                    method: Some(method),
                    stop,
                    batch,
                },
            )
            .map_err(usage)?;
            report.policy = policy.map(|p| p.display().to_string());
            print(&if json {
                to_json(&report)?
            } else {
                bench_text(&report)
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn to_json(v: &impl serde::Serialize) -> Result<String, Failure> {
    let mut s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    s.push('\n');
    Ok(s)
}

fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Runtime(format!("stdout: {e}")))
}

fn bench_text(r: &LoadReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "bench {}: {} thread{}, method {}, {:.2} s",
        r.policy.as_deref().unwrap_or("(synthetic limit)"),
        r.threads,
        if r.threads == 1 { "" } else { "s" },
        r.method.as_deref().unwrap_or("-"),
        r.seconds
    );
    for a in &r.attributes {
        let _ = writeln!(
            s,
            "  {:<12} {:>9} keys ({}), {}",
            a.attribute,
            a.keys,
            if a.values == "policy" {
                "the policy's own"
            } else {
                "generated"
            },
            a.distribution
        );
    }
    let _ = writeln!(
        s,
        "decisions {} ({:.3} M/s)",
        r.decisions,
        r.decisions_per_second / 1e6
    );
    let o = r.outcomes;
    let _ = write!(s, "  allowed {}, limited {}", o.allowed, o.limited);
    for (name, n) in [
        ("revoked", o.revoked),
        ("quota_exceeded", o.quota_exceeded),
        ("unknown_key", o.unknown_key),
        ("cannot_pass", o.cannot_pass),
        ("unavailable", o.unavailable),
    ] {
        if n > 0 {
            let _ = write!(s, ", {name} {n}");
        }
    }
    let l = r.latency_ns;
    let _ = writeln!(
        s,
        "\nlatency per decision, ns (means of batches of {}, clock overhead {} ns subtracted):\n  \
         p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {:.1}, min {})",
        r.batch, r.clock_overhead_ns, l.p50, l.p90, l.p99, l.p99_9, l.max, l.mean, l.min
    );
    s
}

/// The version of the `check --json` schema: it changes when a field is removed or
/// changes meaning; fields may be added within a version.
const CHECK_SCHEMA_VERSION: u32 = 1;

/// `tollgate check --json`. Fields serialize in this order.
#[derive(serde::Serialize)]
struct CheckJson {
    schema_version: u32,
    /// The policy file, as given.
    file: String,
    /// Whether the policy is valid.
    ok: bool,
    /// Why not.
    error: Option<CheckError>,
    /// Deprecated fields still read.
    warnings: Vec<CheckWarning>,
    /// The limits, in policy order (empty when the policy is invalid).
    limits: Vec<CheckLimit>,
    /// The quota, if the policy has one.
    quota: Option<CheckQuota>,
    /// The in-memory state's estimate and budget.
    memory: Option<CheckMemory>,
}

#[derive(serde::Serialize)]
struct CheckError {
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    /// The field's path, e.g. `limit[0].rate` (empty: the whole document).
    field: String,
    message: String,
}

#[derive(serde::Serialize)]
struct CheckWarning {
    line: usize,
    column: usize,
    field: String,
    message: String,
}

impl From<&PolicyWarning> for CheckWarning {
    fn from(w: &PolicyWarning) -> Self {
        CheckWarning {
            line: w.line,
            column: w.column,
            field: w.field.clone(),
            message: w.message.clone(),
        }
    }
}

#[derive(serde::Serialize)]
struct CheckLimit {
    name: String,
    key: Vec<String>,
    rate: String,
    algorithm: &'static str,
    /// Classes it applies to (`null`: all).
    classes: Option<Vec<String>>,
    shadow: bool,
    backend: String,
    capacity: usize,
    overrides: usize,
    /// Estimated bytes of its in-memory state (with its overrides').
    memory_bytes: u64,
}

#[derive(serde::Serialize)]
struct CheckQuota {
    key: String,
    companies: usize,
    users: usize,
    keys: usize,
    plans: Vec<String>,
    warning_percent: Option<u32>,
    hard_cap_percent: Option<u32>,
    /// The policy's journal (never opened by `check`).
    journal: Option<String>,
    journal_exists: Option<bool>,
}

#[derive(serde::Serialize)]
struct CheckMemory {
    estimate_bytes: u64,
    budget_bytes: u64,
    /// The host-shared state (`[state] shared`), if the policy names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    shared: Option<CheckShared>,
}

#[derive(serde::Serialize)]
struct CheckShared {
    prefix: String,
    files: usize,
    bytes: u64,
}

fn check_error(path: &Path, e: &PolicyError) -> CheckError {
    CheckError {
        file: e.file.as_deref().unwrap_or(path).display().to_string(),
        line: e.line,
        column: e.column,
        field: e.field.clone(),
        message: e.message.clone(),
    }
}

fn engine_error(path: &Path, p: &Policy, e: &EngineError) -> CheckError {
    let plain = |field: String, message: String| CheckError {
        file: path.display().to_string(),
        line: None,
        column: None,
        field,
        message,
    };
    match e {
        EngineError::Policy(e) => check_error(path, e),
        EngineError::Limit { limit, message } => {
            let field = match p.limits.iter().position(|l| l.name == *limit) {
                Some(i) => format!("limit[{i}]"),
                None => format!("limit {limit:?}"),
            };
            plain(field, message.clone())
        }
        EngineError::Quota(e) => plain("quota".into(), e.to_string()),
        EngineError::Journal(e) => plain("quota.journal".into(), e.to_string()),
        other => plain(String::new(), other.to_string()),
    }
}

fn check(path: &Path, json: bool) -> Result<ExitCode, Failure> {
    let file = path.display().to_string();
    let mut out = CheckJson {
        schema_version: CHECK_SCHEMA_VERSION,
        file: file.clone(),
        ok: false,
        error: None,
        warnings: Vec::new(),
        limits: Vec::new(),
        quota: None,
        memory: None,
    };
    let fail = |out: CheckJson, text: String| -> Result<ExitCode, Failure> {
        if json {
            print(&to_json(&out)?)?;
            eprintln!("tollgate: {text}");
            Ok(ExitCode::from(1))
        } else {
            Err(Failure::Runtime(text))
        }
    };
    let (mut p, warnings) = match Policy::from_file(path) {
        Ok(pw) => pw,
        Err(e) => {
            out.error = Some(check_error(path, &e));
            return fail(out, e.to_string());
        }
    };
    for w in &warnings {
        eprintln!("{file}:{w}");
    }
    out.warnings = warnings.iter().map(CheckWarning::from).collect();
    let estimate = p.memory_estimate();
    let shared = tollgate::shared_state::shared_size(&p);
    out.memory = Some(CheckMemory {
        estimate_bytes: estimate.total,
        budget_bytes: p.memory_budget.0,
        shared: shared.as_ref().map(|s| CheckShared {
            prefix: s.prefix.display().to_string(),
            files: s.files,
            bytes: s.bytes,
        }),
    });
    out.limits = p
        .limits
        .iter()
        .zip(estimate.limits.iter().copied().chain(std::iter::repeat(0)))
        .map(|(l, memory_bytes)| CheckLimit {
            name: l.name.clone(),
            key: l.key.iter().map(ToString::to_string).collect(),
            rate: l.rate.to_string(),
            algorithm: match l.algorithm {
                AlgorithmKind::Gcra => "gcra",
                AlgorithmKind::SlidingWindow => "sliding_window",
            },
            classes: l.classes.as_ref().map(|c| c.iter().cloned().collect()),
            shadow: l.shadow,
            backend: l.backend.clone(),
            capacity: l.capacity,
            overrides: l.overrides.len(),
            memory_bytes,
        })
        .collect();
    out.quota = p.quota.as_ref().map(|q| CheckQuota {
        key: q.key.to_string(),
        companies: q.companies.len(),
        users: q.companies.iter().map(|c| c.users.len()).sum(),
        keys: q
            .companies
            .iter()
            .flat_map(|c| &c.users)
            .map(|u| u.keys.len())
            .sum(),
        plans: q.plans.iter().map(|pl| pl.name.clone()).collect(),
        warning_percent: q.warning_percent,
        hard_cap_percent: q.hard_cap_percent,
        journal: q.journal.as_ref().map(|j| j.display().to_string()),
        journal_exists: q.journal.as_ref().map(|j| j.exists()),
    });
    // Building the engine checks what only building can (rates, capacities,
    // companies), on a copy that opens neither the journal nor a backend: a check
    // never creates or writes the policy's files.
    let budget = p.memory_budget;
    let journal = what_if(&mut p, None);
    // Nor attaches to (or creates) the host-shared state; what building with it
    // would refuse is refused here too.
    if shared.is_some() && journal.is_some() {
        let e = tollgate::EngineError::State(
            "[state] shared with a [quota] journal: several processes would write one \
             journal, and one journal writer per host is not built yet; drop the journal \
             or the shared state"
                .into(),
        );
        out.error = Some(engine_error(path, &p, &e));
        return fail(out, format!("{file}: {e}"));
    }
    p.state.shared = None;
    let checked = p.clone();
    let engine = match Engine::new(p) {
        Ok(e) => e,
        Err(e) => {
            out.error = Some(engine_error(path, &checked, &e));
            return fail(out, format!("{file}: {e}"));
        }
    };
    out.ok = true;
    if json {
        print(&to_json(&out)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{file}: memory: about {} of in-memory limit state (memory_budget {budget})",
        ByteSize(estimate.total),
    );
    if let Some(s) = &shared {
        println!(
            "{file}: shared state {}.*: {} files, about {} of shared memory (not attached)",
            s.prefix.display(),
            s.files,
            ByteSize(s.bytes),
        );
    }
    if let Some(j) = journal {
        let state = if j.exists() {
            "exists"
        } else {
            "not created yet"
        };
        println!("{file}: journal {} ({state}, not opened)", j.display());
    }
    println!(
        "{file}: ok ({} limits{})",
        engine.limit_names().len(),
        if engine.ledger().is_some() {
            ", quota"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
