//! # tollgate-cli
//!
//! The library behind the `tollgate` command line (`src/main.rs`):
//!
//! * [`replay`] — `tollgate replay --policy POLICY LOG`: applies a policy to an access log
//!   at the log's own timestamps and reports per limit and key, revocations, monthly
//!   usage and the notices that would be sent (as text, or as a versioned
//!   [`replay::ReplayJson`]);
//! * [`loadgen`] — `tollgate bench`: the requests of a policy (its own keys for the quota,
//!   generated values with a distribution per attribute), threads, and per-decision
//!   latency percentiles from an HDR histogram of timed batches;
//! * [`log`] — turns one line of a JSON-lines or combined/common access log into a
//!   [`log::Record`]: the request time in Unix nanoseconds plus the request attributes
//!   (`token`, `tenant`, `user`, `company`, `client`, `route`, `method`, and any host
//!   attribute) picked out by a [`log::Mapping`]. No allocation per line in the common
//!   case; values borrow from the line.
//!
//! ```
//! use tollgate_cli::log::{Format, Mapping, Parser};
//!
//! let mapping = Mapping::parse(Format::Combined, "token=query:api_key").unwrap();
//! let mut parser = Parser::new(&mapping);
//! let line = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /v1/items?api_key=k%201 HTTP/1.0" 200 2326"#;
//! let record = parser.parse(line).unwrap();
//! assert_eq!(record.time_unix_nanos, 971_211_336_000_000_000);
//! assert_eq!(record.get("token"), Some("k 1"));
//! assert_eq!(record.get("route"), Some("/v1/items"));
//! assert_eq!(record.get("user"), Some("frank"));
//! ```
//! * [`usage`] — `tollgate usage --postgres URL`: usage and statements from the fleet
//!   ledger as a table, JSON or CSV.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod loadgen;
pub mod log;
pub mod replay;
pub mod usage;
