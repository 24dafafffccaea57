//! Access-log lines to request records, for `tollgate replay`.
//!
//! A [`Parser`] turns one line of an access log into a [`Record`]: the time of the
//! request in Unix nanoseconds, and the request attributes that a [`Mapping`] names
//! (`token`, `tenant`, `user`, `company`, `client`, `route`, `method`, or any other name,
//! a host attribute). Values borrow from the line. The few that need decoding (JSON
//! escapes, percent-encoded query parameters, backslash escapes in quoted log fields) are
//! written to a buffer that the parser reuses, so once a parser has seen a few lines it
//! allocates nothing per line.
//!
//! ```
//! use tollgate_cli::log::{Format, Mapping, Parser};
//!
//! let mut parser = Parser::new(&Mapping::defaults(Format::JsonLines));
//! let line = r#"{"time":"2026-11-22T10:00:00.5+01:00","token":"t\u00e9","path":"/v1/x","n":{"a":1}}"#;
//! let record = parser.parse(line).unwrap();
//! assert_eq!(record.time_unix_nanos, 1_795_338_000_500_000_000);
//! assert_eq!(record.attrs(), &[("route", "/v1/x"), ("token", "té")]);
//! ```
//!
//! # Formats
//!
//! * [`Format::JsonLines`]: one JSON object per line. A mapping names top-level fields.
//!   String and number values feed attributes as written (a number keeps its JSON
//!   text); `true` and `false` give `"true"` and `"false"`; `null`, objects and arrays
//!   leave the attribute absent (nested values are skipped, not an error). If a field
//!   appears twice, the last one wins. Raw control characters inside strings are
//!   tolerated.
//! * [`Format::Combined`]: the NCSA combined log format, and the common log format,
//!   which is the same without the two last quoted fields:
//!
//!   ```text
//!   127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif?token=abc HTTP/1.0" 200 2326 "http://ref" "Mozilla/4.08"
//!   ```
//!
//!   The sources are `host`, `ident`, `user`, `time`, `method`, `path` (the request
//!   target without its query and fragment; for an absolute target such as
//!   `http://h/p?q` the path is `/p`), `query:NAME` (the first parameter `NAME` of the
//!   query string, percent-decoded, with `+` as a space), `path_segment:N` (the 0-based
//!   `N`th `/`-separated segment of the path, as written; an empty segment is absent),
//!   `protocol`, `status`, `bytes`, `referer` and `user_agent`. A field written as `-` is
//!   absent. `\"`, `\\`, `\n`, `\t`, `\r` and `\xHH` escapes in the referer and user
//!   agent are decoded (Apache and nginx escape these); the request line is split as
//!   written. A request of `-` (as logged for a malformed request) leaves `method`,
//!   `path` and `protocol` absent. Anything after the user agent (nginx adds fields
//!   there) is ignored.
//!
//! # Mapping spec
//!
//! [`Mapping::parse`] starts from the format's [defaults](Mapping::defaults) and applies
//! a comma-separated list of items:
//!
//! * `ATTRIBUTE=SOURCE` — take `ATTRIBUTE` from `SOURCE`: a top-level field name for JSON
//!   lines, one of the sources above for combined logs. Example:
//!   `token=query:api_key,tenant=path_segment:1,company=referer`.
//! * `ATTRIBUTE=` — drop `ATTRIBUTE` (for example `user=`).
//! * `time=SOURCE` — where the time comes from: a field name for JSON lines (the default
//!   is `time`); for combined logs only `time`.
//! * `time_unit=s|ms|us|ns` — JSON lines only: the unit of a time given as a number
//!   (default `s`, seconds since the Unix epoch, fractions allowed).
//!
//! Whitespace around items, names and sources is ignored; names cannot contain `,` or
//! `=`. [`Mapping`]'s `Display` writes this syntax back.
//!
//! # Times
//!
//! A JSON time is an RFC 3339 string (`2026-11-22T10:00:00.123Z`, `…+05:30`; `t` or a
//! space may replace the `T`, `+0530` is also accepted; a leap second `:60` counts as
//! `:59`, as jiff does), or a number of seconds, milliseconds, microseconds or
//! nanoseconds since the epoch, as a JSON number or a string holding one. A combined
//! time is `dd/Mon/yyyy:HH:MM:SS ±hhmm`, optionally with a fraction after the seconds.
//! Digits after the ninth fractional one are ignored. The parser remembers the last
//! calendar date and offset it resolved (through jiff), so that lines from the same day
//! only add up hours, minutes and seconds, and the last hour, so that lines from the
//! same hour (and UTC offset) only add up minutes and seconds.
//!
//! A number of epoch units is read as an exact decimal (an exponent is allowed), never
//! through floating point, and truncated to whole nanoseconds.
//!
//! # Errors
//!
//! A line that cannot be read gives a [`LineError`] with a [`LineErrorKind`] and a short
//! message that never repeats the whole line. A missing attribute is not an error, a
//! missing or malformed time is.
//!
//! # Performance
//!
//! The scanners are hand-written, and most of their cost is finding where strings and
//! fields end: a machine word at a time for the first 128 bytes of a field (`memchr`
//! past them). For JSON lines, the parser learns the order of the field names: for each
//! name it met, the name that followed it. A line shaped like the previous ones then has
//! each name checked with one or two word comparisons, in place of a search for its end
//! and a lookup; other names are looked up in a perfect hash table of the mapped ones (a
//! log whose fields come in no fixed order makes the parser stop learning for a while).
//! Times of an hour already seen only add minutes and seconds. Attribute values are
//! spans of the line, turned into `&str`s once the line is scanned; only escaped values
//! are copied. On the lines of `examples/gen_access_log.rs` (about 200 bytes, default
//! mappings), a parse with `parse_bytes` (UTF-8 validation included, about 15 ns of it)
//! takes about 125 ns for a JSON line and 180 ns for a combined line on the machine this
//! was measured on (an AMD EPYC VM), reading a large log line after line, without
//! allocating; `benches/log_parse.rs` measures it.
//!
//! # Modules
//!
//! * `mapping` — [`Format`], [`Source`], [`EpochUnit`] and [`Mapping`] (the spec syntax);
//! * `parser` — [`Parser`], which runs the scanner of its format over a line;
//! * `json` — the JSON-lines scanner (field names, their learnt order, JSON syntax);
//! * `combined` — the combined/common log scanner (fields, request line, query string);
//! * `time` — RFC 3339, combined-log and epoch times, with the day cache and same-hour
//!   fast path both formats share;
//! * `bytes` — the word-at-a-time byte search both scanners use;
//! * `record` — [`Record`], and the spans the scanners note values as;
//! * `error` — [`MappingError`], [`LineError`] and the excerpts their messages quote.
mod bytes;
mod combined;
mod error;
mod json;
mod mapping;
mod parser;
mod record;
mod time;

pub use self::error::{LineError, LineErrorKind, MappingError};
pub use self::mapping::{EpochUnit, Format, Mapping, Source};
pub use self::parser::Parser;
pub use self::record::Record;

#[cfg(test)]
mod tests;
