//! The `tollgate` command: `replay`, `check`, `bench`. Run `tollgate --help`.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser as ClapParser, Subcommand, ValueEnum};
use tollgate::policy::{AlgorithmKind, Policy};
use tollgate::Engine;
use tollgate_cli::loadgen::{self, Distribution, Load};
use tollgate_cli::log::{Format, Mapping, Parser};
use tollgate_cli::replay;

#[derive(ClapParser)]
#[command(
    name = "tollgate",
    version,
    about = "Rate limits and quotas: replay, check, bench"
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
        /// Which log fields feed which request attributes, e.g.
        /// "token=query:api_key,tenant=path_segment:1" (see the docs of the log module).
        #[arg(long)]
        map: Option<String>,
        /// Top offenders shown per limit.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Print the report as JSON.
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
    },
    /// Generate load against an in-process engine and measure it.
    Bench {
        /// Threads deciding at once.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Distinct keys.
        #[arg(long, default_value_t = 100_000)]
        keys: usize,
        /// The limit's algorithm.
        #[arg(long, value_enum, default_value = "gcra")]
        algorithm: Alg,
        /// Key distribution: "uniform" or "zipf" (with --zipf-exponent).
        #[arg(long, default_value = "uniform")]
        distribution: String,
        /// The Zipf exponent.
        #[arg(long, default_value_t = 1.1)]
        zipf_exponent: f64,
        /// The limit's rate.
        #[arg(long, default_value = "1000/s")]
        rate: String,
        /// Seconds to run.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("tollgate: {message}");
            ExitCode::from(2)
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

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Check { policy } => {
            let (mut p, warnings) = Policy::from_file(&policy).map_err(|e| e.to_string())?;
            for w in &warnings {
                eprintln!("{}:{w}", policy.display());
            }
            // Building the engine checks what only building can (rates, capacities,
            // companies), on a copy that opens neither the journal nor a backend: a
            // check never creates or writes the policy's files.
            let estimate = p.memory_estimate();
            let budget = p.memory_budget;
            let journal = what_if(&mut p, None);
            let engine = Engine::new(p).map_err(|e| format!("{}: {e}", policy.display()))?;
            println!(
                "{}: memory: about {} of in-memory limit state (memory_budget {})",
                policy.display(),
                tollgate::policy::ByteSize(estimate.total),
                budget
            );
            if let Some(j) = journal {
                let state = if j.exists() {
                    "exists"
                } else {
                    "not created yet"
                };
                println!(
                    "{}: journal {} ({state}, not opened)",
                    policy.display(),
                    j.display()
                );
            }
            println!(
                "{}: ok ({} limits{})",
                policy.display(),
                engine.limit_names().len(),
                if engine.ledger().is_some() {
                    ", quota"
                } else {
                    ""
                }
            );
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
            let (mut p, warnings) = Policy::from_file(&policy).map_err(|e| e.to_string())?;
            for w in &warnings {
                eprintln!("{}:{w}", policy.display());
            }
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
                Some(spec) => Mapping::parse(format, &spec).map_err(|e| format!("--map: {e}"))?,
                None => Mapping::defaults(format),
            };
            let mut parser = Parser::new(&mapping);
            let report =
                replay::replay(&engine, &mut parser, input, replay::progress_printer(total))
                    .map_err(|e| format!("{}: {e}", log.display()))?;
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprint!("\r\x1b[K");
            }
            let mut out = std::io::stdout().lock();
            let text = if json {
                let mut s =
                    serde_json::to_string_pretty(&replay::render_json(&engine, &report, top))
                        .map_err(|e| e.to_string())?;
                s.push('\n');
                s
            } else {
                replay::render_text(&engine, &report, top)
            };
            out.write_all(text.as_bytes())
                .map_err(|e| format!("stdout: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            threads,
            keys,
            algorithm,
            distribution,
            zipf_exponent,
            rate,
            seconds,
            json,
        } => {
            let distribution = match distribution.as_str() {
                "uniform" => Distribution::Uniform,
                "zipf" if zipf_exponent > 0.0 && zipf_exponent.is_finite() => {
                    Distribution::Zipf(zipf_exponent)
                }
                "zipf" => return Err("--zipf-exponent must be a positive number".into()),
                other => {
                    return Err(format!(
                        "--distribution {other:?}: use \"uniform\" or \"zipf\""
                    ))
                }
            };
            if !(seconds > 0.0 && seconds < 86_400.0) {
                return Err("--seconds must be between 0 and 86400".into());
            }
            let report = loadgen::run(&Load {
                threads,
                keys,
                algorithm: match algorithm {
                    Alg::Gcra => AlgorithmKind::Gcra,
                    Alg::SlidingWindow => AlgorithmKind::SlidingWindow,
                },
                distribution,
                duration: Duration::from_secs_f64(seconds),
                rate,
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                );
            } else {
                println!(
                    "{} threads, {} keys, {}, {}: {:.1} ns/decision, {:.2} M decisions/s, \
                     p50 {} ns, p99 {} ns ({} decisions, {} allowed)",
                    report.threads,
                    report.keys,
                    report.algorithm,
                    report.distribution,
                    report.ns_per_decision,
                    report.decisions_per_second / 1e6,
                    report.p50_ns,
                    report.p99_ns,
                    report.decisions,
                    report.allowed
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
