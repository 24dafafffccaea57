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
//! same hour (with a `Z` offset for RFC 3339) only add up minutes and seconds.
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
use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Time};
use jiff::tz::Offset;
use jiff::Timestamp;
use memchr::{memchr, memchr2};

/// The format of an access log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// One flat JSON object per line.
    JsonLines,
    /// The NCSA combined log format; also accepts the common log format (without the
    /// quoted referer and user agent).
    Combined,
}

impl FromStr for Format {
    type Err = MappingError;

    /// `json`, `jsonl` or `json-lines`; `combined`, `common` or `clf`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" | "jsonl" | "json-lines" => Ok(Format::JsonLines),
            "combined" | "common" | "clf" => Ok(Format::Combined),
            _ => Err(MappingError::new(format!(
                "unknown log format {:?} (expected json or combined)",
                excerpt(s)
            ))),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::JsonLines => "json",
            Format::Combined => "combined",
        })
    }
}

/// Where a value comes from in a log line.
///
/// [`Source::Field`] belongs to [`Format::JsonLines`], every other variant to
/// [`Format::Combined`]; see the [module docs](self#formats) for what each one yields.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A top-level field of a JSON object.
    Field(String),
    /// The client address (first field).
    Host,
    /// The identd user (second field).
    Ident,
    /// The authenticated user (third field).
    User,
    /// The bracketed time, as written.
    Time,
    /// The request method.
    Method,
    /// The request path, without query string.
    Path,
    /// A query-string parameter, percent-decoded.
    Query(String),
    /// A 0-based segment of the path.
    PathSegment(usize),
    /// The request protocol, such as `HTTP/1.1`.
    Protocol,
    /// The response status.
    Status,
    /// The response size in bytes.
    Bytes,
    /// The quoted referer.
    Referer,
    /// The quoted user agent.
    UserAgent,
}

const COMBINED_SOURCES: &str = "host, ident, user, time, method, path, query:NAME, \
                                path_segment:N, protocol, status, bytes, referer or user_agent";

impl Source {
    /// Parses a source as written in a [mapping spec](self#mapping-spec).
    ///
    /// For JSON lines any non-empty text is a field name. For combined logs an unknown
    /// source is an error that lists the known ones.
    pub fn parse(format: Format, text: &str) -> Result<Source, MappingError> {
        if text.is_empty() {
            return Err(MappingError::new("empty source".to_owned()));
        }
        if format == Format::JsonLines {
            return Ok(Source::Field(text.to_owned()));
        }
        let source = match text {
            "host" => Source::Host,
            "ident" => Source::Ident,
            "user" => Source::User,
            "time" => Source::Time,
            "method" => Source::Method,
            "path" => Source::Path,
            "protocol" => Source::Protocol,
            "status" => Source::Status,
            "bytes" => Source::Bytes,
            "referer" => Source::Referer,
            "user_agent" => Source::UserAgent,
            _ => {
                if let Some(name) = text.strip_prefix("query:") {
                    if name.is_empty() {
                        return Err(MappingError::new(
                            "source \"query:\" needs a parameter name".to_owned(),
                        ));
                    }
                    Source::Query(name.to_owned())
                } else if let Some(n) = text.strip_prefix("path_segment:") {
                    Source::PathSegment(n.parse().map_err(|_| {
                        MappingError::new(format!(
                            "source {:?}: {:?} is not a segment number (0, 1, ...)",
                            excerpt(text),
                            excerpt(n)
                        ))
                    })?)
                } else {
                    return Err(MappingError::new(format!(
                        "unknown source {:?} for combined logs (expected {COMBINED_SOURCES})",
                        excerpt(text)
                    )));
                }
            }
        };
        Ok(source)
    }

    /// The format this source belongs to.
    pub fn format(&self) -> Format {
        match self {
            Source::Field(_) => Format::JsonLines,
            _ => Format::Combined,
        }
    }

    fn check(&self, format: Format) -> Result<(), MappingError> {
        if self.format() != format {
            return Err(MappingError::new(format!(
                "source {:?} does not apply to {} logs",
                excerpt(&self.to_string()),
                format
            )));
        }
        match self {
            Source::Field(name) | Source::Query(name) if name.is_empty() => Err(MappingError::new(
                "empty field or parameter name".to_owned(),
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Field(name) => f.write_str(name),
            Source::Host => f.write_str("host"),
            Source::Ident => f.write_str("ident"),
            Source::User => f.write_str("user"),
            Source::Time => f.write_str("time"),
            Source::Method => f.write_str("method"),
            Source::Path => f.write_str("path"),
            Source::Query(name) => write!(f, "query:{name}"),
            Source::PathSegment(n) => write!(f, "path_segment:{n}"),
            Source::Protocol => f.write_str("protocol"),
            Source::Status => f.write_str("status"),
            Source::Bytes => f.write_str("bytes"),
            Source::Referer => f.write_str("referer"),
            Source::UserAgent => f.write_str("user_agent"),
        }
    }
}

/// The unit of a JSON time given as a number (or a string holding a number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EpochUnit {
    /// Seconds since the Unix epoch (`s`), the default.
    #[default]
    Seconds,
    /// Milliseconds (`ms`).
    Millis,
    /// Microseconds (`us`).
    Micros,
    /// Nanoseconds (`ns`).
    Nanos,
}

impl EpochUnit {
    fn nanos(self) -> i128 {
        match self {
            EpochUnit::Seconds => 1_000_000_000,
            EpochUnit::Millis => 1_000_000,
            EpochUnit::Micros => 1_000,
            EpochUnit::Nanos => 1,
        }
    }
}

impl FromStr for EpochUnit {
    type Err = MappingError;

    /// `s`, `ms`, `us` or `ns`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "s" => Ok(EpochUnit::Seconds),
            "ms" => Ok(EpochUnit::Millis),
            "us" => Ok(EpochUnit::Micros),
            "ns" => Ok(EpochUnit::Nanos),
            _ => Err(MappingError::new(format!(
                "unknown time unit {:?} (expected s, ms, us or ns)",
                excerpt(s)
            ))),
        }
    }
}

impl fmt::Display for EpochUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EpochUnit::Seconds => "s",
            EpochUnit::Millis => "ms",
            EpochUnit::Micros => "us",
            EpochUnit::Nanos => "ns",
        })
    }
}

/// Which part of a log line feeds which request attribute, and where the time is.
///
/// Build one in code ([`Mapping::new`], [`Mapping::defaults`], then [`Mapping::set`]) or
/// from a [spec string](self#mapping-spec) with [`Mapping::parse`]. Attributes keep the
/// order in which they were first set; a [`Record`] lists them in that order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    format: Format,
    attrs: Vec<(String, Source)>,
    time: Source,
    epoch_unit: EpochUnit,
}

impl Mapping {
    /// A mapping with no attributes; the time comes from the field `time` (JSON) or the
    /// bracketed time (combined).
    pub fn new(format: Format) -> Mapping {
        let time = match format {
            Format::JsonLines => Source::Field("time".to_owned()),
            Format::Combined => Source::Time,
        };
        Mapping {
            format,
            attrs: Vec::new(),
            time,
            epoch_unit: EpochUnit::Seconds,
        }
    }

    /// The default mapping of a format.
    ///
    /// * JSON lines: `method`, `route` ← `path`, `client`, `token`, `tenant`, `user` and
    ///   `company` from the fields of the same name (except `route`), time from `time`
    ///   in seconds.
    /// * Combined: `client` ← `host`, `user` ← `user`, `method` ← `method`, `route` ←
    ///   `path`, `token` ← `query:token`, `tenant` ← `query:tenant`.
    pub fn defaults(format: Format) -> Mapping {
        let mut m = Mapping::new(format);
        let pairs: &[(&str, Source)] = match format {
            Format::JsonLines => &[
                ("method", Source::Field("method".to_owned())),
                ("route", Source::Field("path".to_owned())),
                ("client", Source::Field("client".to_owned())),
                ("token", Source::Field("token".to_owned())),
                ("tenant", Source::Field("tenant".to_owned())),
                ("user", Source::Field("user".to_owned())),
                ("company", Source::Field("company".to_owned())),
            ],
            Format::Combined => &[
                ("client", Source::Host),
                ("user", Source::User),
                ("method", Source::Method),
                ("route", Source::Path),
                ("token", Source::Query("token".to_owned())),
                ("tenant", Source::Query("tenant".to_owned())),
            ],
        };
        m.attrs = pairs
            .iter()
            .map(|(name, source)| ((*name).to_owned(), source.clone()))
            .collect();
        m
    }

    /// The format's defaults, changed by the items of `spec` (see the
    /// [syntax](self#mapping-spec)).
    pub fn parse(format: Format, spec: &str) -> Result<Mapping, MappingError> {
        let mut m = Mapping::defaults(format);
        m.apply(spec)?;
        Ok(m)
    }

    /// Applies the items of a [spec string](self#mapping-spec) to this mapping.
    pub fn apply(&mut self, spec: &str) -> Result<&mut Self, MappingError> {
        for item in spec.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let Some((attr, source)) = item.split_once('=') else {
                return Err(MappingError::new(format!(
                    "mapping item {:?} is not ATTRIBUTE=SOURCE",
                    excerpt(item)
                )));
            };
            let (attr, source) = (attr.trim(), source.trim());
            if attr == "time_unit" {
                if self.format != Format::JsonLines {
                    return Err(MappingError::new(
                        "time_unit only applies to JSON lines".to_owned(),
                    ));
                }
                self.epoch_unit = source.parse()?;
            } else if source.is_empty() {
                if attr == "time" {
                    return Err(MappingError::new(
                        "the time cannot be dropped: every line needs one".to_owned(),
                    ));
                }
                self.remove(attr);
            } else {
                let source = Source::parse(self.format, source)
                    .map_err(|e| MappingError::new(format!("{attr}: {}", e.message)))?;
                self.set(attr, source)?;
            }
        }
        Ok(self)
    }

    /// Takes attribute `attr` from `source`, replacing its previous source if any.
    ///
    /// `attr = "time"` sets where the time comes from: a [`Source::Field`] for JSON
    /// lines, [`Source::Time`] for combined logs. Errors: an empty name, a name with `,`
    /// or `=`, the reserved name `time_unit`, or a source of the other format.
    pub fn set(&mut self, attr: &str, source: Source) -> Result<&mut Self, MappingError> {
        if attr.is_empty() || attr.contains([',', '=']) || attr.trim() != attr {
            return Err(MappingError::new(format!(
                "attribute name {:?} is empty or has ',', '=' or surrounding spaces",
                excerpt(attr)
            )));
        }
        if attr == "time_unit" {
            return Err(MappingError::new(
                "time_unit is not an attribute (use set_epoch_unit)".to_owned(),
            ));
        }
        source.check(self.format)?;
        if attr == "time" {
            if self.format == Format::Combined && source != Source::Time {
                return Err(MappingError::new(format!(
                    "the time of a combined line comes from `time`, not {:?}",
                    excerpt(&source.to_string())
                )));
            }
            self.time = source;
        } else if let Some(slot) = self.attrs.iter_mut().find(|(name, _)| name == attr) {
            slot.1 = source;
        } else {
            self.attrs.push((attr.to_owned(), source));
        }
        Ok(self)
    }

    /// Drops attribute `attr`; nothing happens if it is not mapped.
    pub fn remove(&mut self, attr: &str) -> &mut Self {
        self.attrs.retain(|(name, _)| name != attr);
        self
    }

    /// Sets the unit of a JSON time given as a number.
    pub fn set_epoch_unit(&mut self, unit: EpochUnit) -> &mut Self {
        self.epoch_unit = unit;
        self
    }

    /// The log format this mapping reads.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The mapped attributes and their sources, in order.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &Source)> + '_ {
        self.attrs
            .iter()
            .map(|(name, source)| (name.as_str(), source))
    }

    /// Where the time comes from.
    pub fn time(&self) -> &Source {
        &self.time
    }

    /// The unit of a JSON time given as a number.
    pub fn epoch_unit(&self) -> EpochUnit {
        self.epoch_unit
    }
}

impl fmt::Display for Mapping {
    /// The mapping as a spec: first `NAME=` for each default attribute that this mapping
    /// lacks, then `NAME=SOURCE` for each attribute, then the time. [`Mapping::parse`]
    /// reads it back to the same attributes, sources and time (attributes that are not
    /// defaults come after the defaults).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, _) in &Mapping::defaults(self.format).attrs {
            if !self.attrs.iter().any(|(n, _)| n == name) {
                write!(f, "{name}=,")?;
            }
        }
        for (name, source) in &self.attrs {
            write!(f, "{name}={source},")?;
        }
        write!(f, "time={}", self.time)?;
        if self.format == Format::JsonLines && self.epoch_unit != EpochUnit::Seconds {
            write!(f, ",time_unit={}", self.epoch_unit)?;
        }
        Ok(())
    }
}

/// An invalid mapping, source, format or unit name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingError {
    /// What is wrong, for a human.
    pub message: String,
}

impl MappingError {
    fn new(message: String) -> MappingError {
        MappingError { message }
    }
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MappingError {}

/// Why a line was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LineErrorKind {
    /// The line is empty or only whitespace; callers usually skip these silently.
    Blank,
    /// The bytes given to [`Parser::parse_bytes`] are not UTF-8.
    InvalidUtf8,
    /// The line does not have the shape of the format (bad JSON, missing field,
    /// unterminated quote...).
    Syntax,
    /// The line has no time.
    MissingTime,
    /// The time is not in an accepted form, is not a calendar date, or is out of range.
    InvalidTime,
}

/// A line that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// The kind of problem.
    pub kind: LineErrorKind,
    /// A short reason for a human, such as `missing closing quote of the request`. It
    /// quotes at most a short excerpt of the line, never the whole line.
    pub message: String,
}

impl LineError {
    #[cold]
    fn new(kind: LineErrorKind, message: impl Into<String>) -> LineError {
        LineError {
            kind,
            message: message.into(),
        }
    }

    #[cold]
    fn syntax(message: impl Into<String>) -> LineError {
        LineError::new(LineErrorKind::Syntax, message)
    }

    #[cold]
    #[inline(never)]
    fn syntax_at(what: &str, at: usize) -> LineError {
        LineError::syntax(format!("{what} at byte {at}"))
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LineError {}

/// One parsed line: the time and the request attributes found in it.
///
/// Values borrow from the line or from the parser's buffer, so the parser cannot parse
/// another line until the record is dropped; dropping it hands its attribute list back
/// to the parser for reuse.
pub struct Record<'a> {
    /// When the request happened, in nanoseconds since the Unix epoch (UTC).
    pub time_unix_nanos: i128,
    attrs: Vec<(&'a str, &'a str)>,
    home: &'a mut Vec<(&'static str, &'static str)>,
}

impl<'a> Record<'a> {
    /// The attributes present in the line as `(attribute name, value)` pairs, in the
    /// mapping's order. Mapped attributes that the line lacks are not listed.
    pub fn attrs(&self) -> &[(&'a str, &'a str)] {
        &self.attrs
    }

    /// The value of attribute `name`, if the line has it.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.attrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| *value)
    }
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("time_unix_nanos", &self.time_unix_nanos)
            .field("attrs", &self.attrs)
            .finish()
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        let mut attrs = std::mem::take(&mut self.attrs);
        attrs.clear();
        // Turns the empty `Vec<(&'a str, &'a str)>` back into a `Vec` of `'static` pairs
        // for the next line (the closure never runs). Collecting a `vec::IntoIter`
        // through `map` into a `Vec` of a type with the same size and alignment reuses
        // the allocation, so this neither frees nor allocates
        // (`records_reuse_the_attribute_list` checks it).
        *self.home = attrs.into_iter().map(|_| ("", "")).collect();
    }
}

/// Where an attribute's value is, for the line being parsed, packed in a `u64`: the
/// kind in the two top bits, then a 31-bit end and a 31-bit start (lines longer than
/// 2 GiB are rejected). An enum of spans, built in one of several match arms, was
/// written to the stack piece by piece and read back whole, which stalled the CPU for
/// a fifth of the parse time; one word avoids that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Val(u64);

/// The strings that [`Val::constant`] can stand for.
const CONSTS: [&str; 3] = ["true", "false", "/"];

impl Val {
    const ABSENT: Val = Val(0);
    const TRUE: Val = Val::constant(0);
    const FALSE: Val = Val::constant(1);
    const ROOT: Val = Val::constant(2);

    const LINE: u64 = 1 << 62;
    const BUF: u64 = 2 << 62;
    const CONST: u64 = 3 << 62;
    /// The largest offset a span can hold.
    const MAX: usize = (1 << 31) - 1;

    #[inline(always)]
    fn span(kind: u64, s: usize, e: usize) -> Val {
        if s <= Val::MAX && e <= Val::MAX {
            Val(kind | s as u64 | ((e as u64) << 31))
        } else {
            Val::ABSENT
        }
    }

    /// `line[s..e]`; [`Parser::parse`] rejects lines longer than [`Val::MAX`].
    #[inline(always)]
    fn line(s: usize, e: usize) -> Val {
        Val::span(Val::LINE, s, e)
    }

    /// `buf[s..e]`. The buffer holds at most a few copies of a line, so it would pass
    /// 2 GiB only for a line near that size with several attributes decoding the same
    /// long value; such a value is dropped.
    #[inline(always)]
    fn buf(s: usize, e: usize) -> Val {
        Val::span(Val::BUF, s, e)
    }

    /// `CONSTS[i]`.
    const fn constant(i: u64) -> Val {
        Val(Val::CONST | i)
    }

    #[inline(always)]
    fn resolve<'a>(self, line: &'a str, buf: &'a str) -> Option<&'a str> {
        let s = (self.0 & Val::MAX as u64) as usize;
        let e = ((self.0 >> 31) & Val::MAX as u64) as usize;
        let kind = self.0 & Val::CONST;
        if kind == Val::LINE {
            line.get(s..e)
        } else if kind == Val::BUF {
            buf.get(s..e)
        } else if kind == Val::CONST {
            CONSTS.get(s).copied()
        } else {
            None
        }
    }
}

/// A distinct JSON field that the mapping reads.
#[derive(Clone, Debug)]
struct JsonKey {
    key: Box<str>,
    /// A key of up to 8 bytes as a little-endian word padded with zeros (else 0), so
    /// that most keys compare in one instruction.
    word: u64,
    time: bool,
    slots: Vec<usize>,
}

/// What a JSON field feeds, packed in a word so that it moves in one register: the index
/// in `Parser::json_keys` of a mapped field, the first attribute slot it feeds, whether
/// it is the time, and whether it feeds more than one attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Field(u64);

impl Field {
    const SLOT: u64 = u32::MAX as u64;
    /// The largest key index (29 bits, after the 32 of the slot).
    const KEY: u64 = (1 << 29) - 1;
    const SIMPLE: u64 = 1 << 61;
    const TIME: u64 = 1 << 62;
    const MORE: u64 = 1 << 63;
    const UNMAPPED: Field = Field(Field::SLOT);

    /// Field `key` of `json_keys`, feeding `slots`. (A mapping would need billions of
    /// attributes for `key` or a slot not to fit.)
    fn new(key: usize, slots: &[usize], time: bool) -> Field {
        let key = u64::try_from(key).unwrap_or(u64::MAX);
        let slot = slots.first().map_or(Ok(u32::MAX), |&s| u32::try_from(s));
        let (true, Ok(slot)) = (key <= Field::KEY, slot) else {
            return Field::UNMAPPED;
        };
        let simple = if !time && slots.len() == 1 {
            Field::SIMPLE
        } else {
            0
        };
        let more = if slots.len() > 1 { Field::MORE } else { 0 };
        let time = if time { Field::TIME } else { 0 };
        Field(u64::from(slot) | (key << 32) | simple | time | more)
    }

    /// Whether the field feeds exactly one attribute and is not the time.
    #[inline(always)]
    fn simple(self) -> bool {
        self.0 & Field::SIMPLE != 0
    }

    /// The slot of a [`Field::simple`] field.
    #[inline(always)]
    fn slot_index(self) -> usize {
        (self.0 & Field::SLOT) as usize
    }

    /// Whether the field is read at all.
    #[inline(always)]
    fn mapped(self) -> bool {
        self.0 != Field::SLOT
    }

    /// The first slot the field feeds, if any.
    #[inline(always)]
    fn slot(self) -> Option<usize> {
        let slot = self.0 & Field::SLOT;
        (slot != Field::SLOT).then_some(slot as usize)
    }

    #[inline(always)]
    fn key(self) -> usize {
        ((self.0 >> 32) & Field::KEY) as usize
    }

    #[inline(always)]
    fn time(self) -> bool {
        self.0 & Field::TIME != 0
    }

    #[inline(always)]
    fn more(self) -> bool {
        self.0 & Field::MORE != 0
    }
}

/// No [`Schema`] entry.
const NO_ENTRY: usize = usize::MAX;

/// The most field names a [`Schema`] learns.
const SCHEMA_MAX: usize = 64;

/// The shape of the JSON lines seen so far: for each field name met (without escapes,
/// of up to 14 bytes, and followed directly by `:`), the field that came after it last
/// time. Lines of a log mostly have the same fields in the same order, so the scan
/// checks that the expected name is there with two word comparisons instead of
/// searching for its end and looking it up.
#[derive(Clone, Debug)]
struct Schema {
    entries: Vec<SchemaEntry>,
    /// The entry of the first field, or [`NO_ENTRY`].
    first: usize,
    /// Lines and names not as expected in the current window of [`SCHEMA_WINDOW`] lines.
    lines: u32,
    misses: u32,
    /// How many more lines to scan without the schema: a log whose fields come in no
    /// fixed order makes it learn all the time, for nothing.
    resting: u32,
}

/// The lines over which a [`Schema`] counts names not as expected: more than two a line
/// on average, and it rests for [`SCHEMA_REST`] lines.
const SCHEMA_WINDOW: u32 = 16;
const SCHEMA_REST: u32 = 4096;

#[derive(Clone, Copy, Debug)]
struct SchemaEntry {
    /// The bytes `NAME":` (after the opening quote), little-endian, and a mask of them.
    text: u128,
    mask: u128,
    /// The length of `"NAME":`.
    len: usize,
    /// What the field feeds.
    field: Field,
    /// The entry of the field that followed last time, or [`NO_ENTRY`].
    next: usize,
}

impl SchemaEntry {
    /// Whether `b[i..]` starts with `"NAME":`.
    #[inline(always)]
    fn matches(&self, b: &[u8], i: usize) -> bool {
        if self.mask >> 64 == 0 {
            // `NAME":` fits in a word.
            if let Some(w) = word(b, i + 1) {
                return w & self.mask as u64 == self.text as u64;
            }
        }
        let end = i + 17;
        let w = match b.get(i + 1..end).and_then(|w| <[u8; 16]>::try_from(w).ok()) {
            Some(w) => u128::from_le_bytes(w),
            // Near the end of the line: the last 16 bytes, shifted down to `b[i + 1]`.
            None => match b.len().checked_sub(16).and_then(|s| b.get(s..)) {
                Some(last) if i + 1 < b.len() => {
                    let last: [u8; 16] = last.try_into().unwrap_or_default();
                    u128::from_le_bytes(last) >> (8 * (end - b.len()))
                }
                _ => return false,
            },
        };
        w & self.mask == self.text
    }
}

impl Schema {
    fn new() -> Schema {
        Schema {
            entries: Vec::new(),
            first: NO_ENTRY,
            lines: 0,
            misses: 0,
            resting: 0,
        }
    }

    /// Whether to use the schema for the next line.
    #[inline(always)]
    fn active(&self) -> bool {
        self.resting == 0
    }

    /// Counts a line scanned with `misses` names not as expected.
    #[inline]
    fn end_line(&mut self, misses: u32) {
        if self.resting > 0 {
            self.resting -= 1;
            return;
        }
        self.lines += 1;
        self.misses += misses;
        if self.lines == SCHEMA_WINDOW {
            if self.misses > 2 * SCHEMA_WINDOW {
                self.resting = SCHEMA_REST;
            }
            self.lines = 0;
            self.misses = 0;
        }
    }

    /// The entry of the name `b[open + 1..close]` (without escapes; `b[close]` is its
    /// closing quote and `b[close + 1]` a ':'), added if missing; [`NO_ENTRY`] if the
    /// name is too long or the schema is full.
    #[cold]
    fn learn(&mut self, b: &[u8], open: usize, close: usize, field: Field) -> usize {
        let n = close + 2 - (open + 1);
        let Some(text) = b.get(open + 1..close + 2).filter(|_| n <= 16) else {
            return NO_ENTRY;
        };
        let mut bytes = [0u8; 16];
        bytes[..n].copy_from_slice(text);
        let text = u128::from_le_bytes(bytes);
        let mask = u128::MAX >> (128 - 8 * n);
        if let Some(at) = self
            .entries
            .iter()
            .position(|e| e.text == text && e.mask == mask)
        {
            return at;
        }
        if self.entries.len() == SCHEMA_MAX {
            return NO_ENTRY;
        }
        self.entries.push(SchemaEntry {
            text,
            mask,
            len: n + 1,
            field,
            next: NO_ENTRY,
        });
        self.entries.len() - 1
    }
}

/// A perfect hash table from the mapped JSON keys of 1 to 8 bytes to their index in
/// `Parser::json_keys`, so that a key costs one multiplication and one comparison
/// rather than a walk over the mapped keys.
#[derive(Clone, Debug)]
struct KeyTable {
    mul: u64,
    shift: u32,
    /// `1 << (64 - shift)` slots; empty if no perfect hash was found (a search then
    /// walks the keys).
    slots: Box<[KeySlot]>,
}

/// A slot of a [`KeyTable`]; `len == 0` marks an empty one.
#[derive(Clone, Copy, Debug, Default)]
struct KeySlot {
    word: u64,
    len: u32,
    key: u32,
}

impl KeyTable {
    /// The slot of a key of `len` bytes (1 to 8) whose bytes are the little-endian `word`.
    #[inline(always)]
    fn hash(mul: u64, shift: u32, word: u64, len: usize) -> usize {
        ((word ^ ((len as u64) << 59)).wrapping_mul(mul) >> shift) as usize
    }

    fn new(keys: &[JsonKey]) -> KeyTable {
        let short: Vec<(usize, &JsonKey)> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| (1..=8).contains(&k.key.len()))
            .collect();
        let mut seed = 0x243F_6A88_85A3_08D3_u64;
        let min_bits = (usize::BITS - short.len().leading_zeros() + 1).max(1);
        if u32::try_from(keys.len()).is_ok() {
            for bits in min_bits..=min_bits + 4 {
                for _ in 0..64 {
                    let mul = splitmix(&mut seed) | 1;
                    let shift = 64 - bits;
                    let mut slots = vec![KeySlot::default(); 1 << bits];
                    let perfect = short.iter().all(|&(index, k)| {
                        let slot = &mut slots[KeyTable::hash(mul, shift, k.word, k.key.len())];
                        if slot.len != 0 {
                            return false;
                        }
                        *slot = KeySlot {
                            word: k.word,
                            len: k.key.len() as u32,
                            key: index as u32,
                        };
                        true
                    });
                    if perfect {
                        return KeyTable {
                            mul,
                            shift,
                            slots: slots.into(),
                        };
                    }
                }
            }
        }
        KeyTable {
            mul: 0,
            shift: 63,
            slots: Box::new([]),
        }
    }

    /// The index of the key of `len` bytes (1 to 8) whose word is `word`: `Some(None)` if
    /// it is not mapped, `None` if the table cannot tell.
    #[inline(always)]
    fn find(&self, word: u64, len: usize) -> Option<Option<usize>> {
        let slot = self
            .slots
            .get(KeyTable::hash(self.mul, self.shift, word, len))?;
        Some((slot.word == word && slot.len as usize == len).then_some(slot.key as usize))
    }
}

/// The next number of the SplitMix64 sequence.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The index of `name` in `keys`, added if missing.
fn json_key(keys: &mut Vec<JsonKey>, name: &str) -> usize {
    if let Some(i) = keys.iter().position(|k| &*k.key == name) {
        return i;
    }
    keys.push(JsonKey {
        key: name.into(),
        word: short_word(name.as_bytes(), 0, name.len()),
        time: false,
        slots: Vec::new(),
    });
    keys.len() - 1
}

/// `b[i..i + len]` as a little-endian word padded with zeros if `len <= 8`, else 0.
#[inline]
fn short_word(b: &[u8], i: usize, len: usize) -> u64 {
    if len == 0 || len > 8 {
        return 0;
    }
    let mask = u64::MAX >> (64 - 8 * len);
    if let Some(w) = word(b, i) {
        return w & mask;
    }
    let mut chunk = [0u8; 8];
    if let (Some(dst), Some(src)) = (chunk.get_mut(..len), b.get(i..i + len)) {
        dst.copy_from_slice(src);
    }
    u64::from_le_bytes(chunk)
}

/// The calendar part of the last time parsed: date text and UTC offset → the Unix second
/// of that day's local midnight.
#[derive(Clone, Debug, Default)]
struct DayCache {
    /// The date text (its first 10 or 11 bytes).
    date: [u8; 11],
    offset: i32,
    /// The date as [`date_key`] packs it (0 before the first date), so that a
    /// date compares in two instructions.
    key: u128,
    /// The Unix time of the day's local midnight in nanoseconds.
    midnight_nanos: i128,
    /// Whether every time of that day is within jiff's range (so that a time of it
    /// needs no range check).
    in_range: bool,
    /// The last hour parsed, when its day is in range: the text up to its minutes (the
    /// date, the hour and the separators, as a number with their length in the top
    /// byte), its UTC offset and its Unix time in nanoseconds. A time of the same hour
    /// only adds its minutes and seconds.
    hour_valid: bool,
    hour_key: u128,
    hour_offset: i32,
    hour_nanos: i128,
}

/// The first `n` (at most 15) bytes of `b` as a number, with `n` in the top byte; `None`
/// if `b` is shorter than 16 bytes.
#[inline(always)]
fn prefix_key(b: &[u8], n: usize) -> Option<u128> {
    let head: [u8; 16] = b.get(..16)?.try_into().ok()?;
    let mask = u128::MAX >> (128 - 8 * n.min(15));
    Some(u128::from_le_bytes(head) & mask | (n as u128) << 120)
}

/// A date of up to 15 bytes as a little-endian number, with its length in the top byte.
#[inline(always)]
fn date_key(date: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    if let Some(head) = bytes.get_mut(..date.len().min(15)) {
        head.copy_from_slice(&date[..head.len()]);
    }
    u128::from_le_bytes(bytes) | ((date.len() as u128) << 120)
}

impl DayCache {
    /// The time of `b`, whose first `prefix` bytes give a date and an hour, if they are
    /// those of the last hour remembered and it was at UTC `offset`; `m`, `s` and `nanos`
    /// are its minute, second and fraction.
    #[inline(always)]
    fn same_hour(
        &self,
        b: &[u8],
        prefix: usize,
        offset: i32,
        (m, s, nanos): (i32, i32, i32),
    ) -> Option<i128> {
        (self.hour_valid && prefix_key(b, prefix)? == self.hour_key && offset == self.hour_offset)
            .then(|| {
                self.hour_nanos
                    + i128::from(i64::from(m * 60 + s.min(59)) * 1_000_000_000 + i64::from(nanos))
            })
    }

    /// Remembers the hour of `b` (see [`DayCache::same_hour`]), hour `h` of the day last
    /// looked up with [`DayCache::midnight`].
    #[inline]
    fn remember_hour(&mut self, b: &[u8], prefix: usize, offset: i32, h: i32) {
        if let Some(key) = prefix_key(b, prefix) {
            self.hour_valid = self.in_range;
            self.hour_key = key;
            self.hour_offset = offset;
            self.hour_nanos = self.midnight_nanos + i128::from(h * 3600) * 1_000_000_000;
        }
    }

    /// The local midnight of `date` at UTC `offset` in nanoseconds, and whether every
    /// time of that day is in range; `compute` gives its Unix second on a cache miss.
    #[inline(always)]
    fn midnight(
        &mut self,
        date: &[u8],
        offset: i32,
        compute: impl FnOnce() -> Result<i64, &'static str>,
    ) -> Result<(i128, bool), &'static str> {
        let key = date_key(date);
        if self.key == key && self.offset == offset {
            return Ok((self.midnight_nanos, self.in_range));
        }
        self.fill(date, key, offset, compute()?);
        Ok((self.midnight_nanos, self.in_range))
    }

    #[cold]
    fn fill(&mut self, date: &[u8], key: u128, offset: i32, midnight: i64) {
        let midnight_nanos = i128::from(midnight) * 1_000_000_000;
        let in_range = midnight_nanos >= Timestamp::MIN.as_nanosecond()
            && midnight_nanos + 86_400 * 1_000_000_000 <= Timestamp::MAX.as_nanosecond();
        if let Some(slot) = self.date.get_mut(..date.len()) {
            slot.copy_from_slice(date);
            *self = DayCache {
                date: self.date,
                offset,
                key,
                midnight_nanos,
                in_range,
                hour_valid: false,
                ..*self
            };
        } else {
            // Not cached (no date is this long); only the answer is kept.
            self.key = 0;
            self.midnight_nanos = midnight_nanos;
            self.in_range = in_range;
        }
    }
}

/// A combined-log [`Source`] as `Parser::scan_combined` reads it: a small `Copy` value
/// (a `Source` holds a `String`, which makes telling its variants apart costly).
#[derive(Clone, Copy, Debug)]
enum Clf {
    Host,
    Ident,
    User,
    Time,
    Method,
    Path,
    /// A query parameter that `query_params` finds.
    TrackedQuery,
    /// A query parameter found on its own (past the 64 that `query_params` tracks).
    Query,
    PathSegment(usize),
    Protocol,
    Status,
    Bytes,
    Referer,
    UserAgent,
    /// Not a combined-log source.
    None,
}

impl Clf {
    fn new(slot: usize, source: &Source) -> Clf {
        match source {
            Source::Host => Clf::Host,
            Source::Ident => Clf::Ident,
            Source::User => Clf::User,
            Source::Time => Clf::Time,
            Source::Method => Clf::Method,
            Source::Path => Clf::Path,
            Source::Query(_) if slot < 64 => Clf::TrackedQuery,
            Source::Query(_) => Clf::Query,
            Source::PathSegment(n) => Clf::PathSegment(*n),
            Source::Protocol => Clf::Protocol,
            Source::Status => Clf::Status,
            Source::Bytes => Clf::Bytes,
            Source::Referer => Clf::Referer,
            Source::UserAgent => Clf::UserAgent,
            Source::Field(_) => Clf::None,
        }
    }
}

/// Turns access-log lines into [`Record`]s.
///
/// Holds the compiled mapping, a buffer for decoded values, the list that records
/// borrow, and a cache of the last calendar date, so one parser per thread reading one
/// log in order is the fast way to use it.
#[derive(Debug)]
pub struct Parser {
    format: Format,
    names: Vec<Box<str>>,
    /// JSON lines: the distinct fields read.
    json_keys: Vec<JsonKey>,
    /// What each of `json_keys` feeds.
    json_fields: Vec<Field>,
    key_table: KeyTable,
    schema: Schema,
    time_field: Box<str>,
    epoch_unit: EpochUnit,
    /// Combined: the source of each attribute.
    sources: Vec<Source>,
    /// Combined: `sources`, compiled.
    clf: Vec<Clf>,
    /// Combined: the attributes (of the first 64) that read a query parameter, with its
    /// name.
    queries: Vec<(usize, Box<str>)>,
    needs_request: bool,
    vals: Vec<Val>,
    buf: String,
    scratch: Vec<u8>,
    key_buf: String,
    home: Vec<(&'static str, &'static str)>,
    day: DayCache,
}

impl Parser {
    /// A parser for the mapping's format.
    pub fn new(mapping: &Mapping) -> Parser {
        let names: Vec<Box<str>> = mapping
            .attrs
            .iter()
            .map(|(n, _)| n.as_str().into())
            .collect();
        let mut json_keys: Vec<JsonKey> = Vec::new();
        let mut time_field: Box<str> = "time".into();
        if mapping.format == Format::JsonLines {
            for (slot, (_, source)) in mapping.attrs.iter().enumerate() {
                if let Source::Field(name) = source {
                    let k = json_key(&mut json_keys, name);
                    json_keys[k].slots.push(slot);
                }
            }
            if let Source::Field(name) = &mapping.time {
                let k = json_key(&mut json_keys, name);
                json_keys[k].time = true;
                time_field = name.as_str().into();
            }
        }
        let sources: Vec<Source> = mapping.attrs.iter().map(|(_, s)| s.clone()).collect();
        let clf = sources
            .iter()
            .enumerate()
            .map(|(slot, s)| Clf::new(slot, s))
            .collect();
        let queries = sources
            .iter()
            .enumerate()
            .take(64)
            .filter_map(|(slot, s)| match s {
                Source::Query(name) => Some((slot, name.as_str().into())),
                _ => None,
            })
            .collect();
        let needs_request = sources.iter().any(|s| {
            matches!(
                s,
                Source::Method
                    | Source::Path
                    | Source::Protocol
                    | Source::Query(_)
                    | Source::PathSegment(_)
            )
        });
        let key_table = KeyTable::new(&json_keys);
        let json_fields = json_keys
            .iter()
            .enumerate()
            .map(|(k, key)| Field::new(k, &key.slots, key.time))
            .collect();
        Parser {
            format: mapping.format,
            key_table,
            json_fields,
            schema: Schema::new(),
            vals: vec![Val::ABSENT; names.len()],
            home: Vec::with_capacity(names.len()),
            names,
            json_keys,
            time_field,
            epoch_unit: mapping.epoch_unit,
            sources,
            clf,
            queries,
            needs_request,
            buf: String::new(),
            scratch: Vec::new(),
            key_buf: String::new(),
            day: DayCache::default(),
        }
    }

    /// A parser with the format's [default mapping](Mapping::defaults).
    pub fn with_defaults(format: Format) -> Parser {
        Parser::new(&Mapping::defaults(format))
    }

    /// The format this parser reads.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Parses one line (a trailing `\n` or `\r\n` is ignored).
    pub fn parse<'a>(&'a mut self, line: &'a str) -> Result<Record<'a>, LineError> {
        let mut end = line.len();
        while end > 0 && matches!(line.as_bytes()[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        let line = &line[..end];
        if line.len() > Val::MAX {
            return Err(LineError::syntax("line is longer than 2 GiB"));
        }
        if line.bytes().all(|b| b.is_ascii_whitespace()) {
            return Err(LineError::new(LineErrorKind::Blank, "blank line"));
        }
        self.buf.clear();
        // `vals` is all absent here: `record` resets it, and so does a failed scan.
        let time = match self.format {
            Format::JsonLines => self.scan_json(line),
            Format::Combined => self.scan_combined(line),
        };
        match time {
            Ok(time) => Ok(self.record(line, time)),
            Err(e) => {
                self.vals.fill(Val::ABSENT);
                Err(e)
            }
        }
    }

    /// Parses one line given as bytes; bytes that are not UTF-8 are a
    /// [`LineErrorKind::InvalidUtf8`] error.
    pub fn parse_bytes<'a>(&'a mut self, line: &'a [u8]) -> Result<Record<'a>, LineError> {
        match std::str::from_utf8(line) {
            Ok(line) => self.parse(line),
            Err(e) => Err(LineError::new(
                LineErrorKind::InvalidUtf8,
                format!("line is not UTF-8 (byte {})", e.valid_up_to()),
            )),
        }
    }

    /// The record of a parsed line; resets `vals` to absent for the next line.
    fn record<'a>(&'a mut self, line: &'a str, time: i128) -> Record<'a> {
        let Parser {
            names,
            vals,
            buf,
            home,
            ..
        } = self;
        let buf: &'a str = buf;
        let mut attrs: Vec<(&'a str, &'a str)> = std::mem::take(home);
        // Filled by index rather than pushed, so that the loop keeps the list's length
        // and capacity in registers.
        attrs.resize(names.len(), ("", ""));
        let mut n = 0;
        for (name, val) in names.iter().zip(vals.iter_mut()) {
            let val = std::mem::replace(val, Val::ABSENT);
            if val == Val::ABSENT {
                continue;
            }
            let value = val.resolve(line, buf);
            debug_assert!(value.is_some(), "span {val:?} off a char boundary");
            if let (Some(value), Some(attr)) = (value, attrs.get_mut(n)) {
                *attr = (&**name, value);
                n += 1;
            }
        }
        attrs.truncate(n);
        Record {
            time_unix_nanos: time,
            attrs,
            home,
        }
    }

    // ---- JSON lines -------------------------------------------------------------------

    fn scan_json(&mut self, line: &str) -> Result<i128, LineError> {
        let time = self.scan_json_fields(line)?;
        self.json_time(line, time)
    }

    /// The fields of a JSON line: the values of mapped fields go to `vals`, and the time
    /// field's value is returned.
    #[inline(always)]
    fn scan_json_fields(&mut self, line: &str) -> Result<Option<JsonVal>, LineError> {
        let b = line.as_bytes();
        let mut i = 0;
        if b.first() != Some(&b'{') {
            i = skip_ws(b, 0);
            if b.get(i) != Some(&b'{') {
                return Err(LineError::syntax("line is not a JSON object"));
            }
        }
        i += 1;
        if b.get(i) != Some(&b'"') {
            i = skip_ws(b, i);
        }
        let mut time: Option<JsonVal> = None;
        // The schema entry of the previous field, and the one expected here.
        let mut prev = NO_ENTRY;
        let learn = self.schema.active();
        let mut expect = if learn { self.schema.first } else { NO_ENTRY };
        let mut misses = 0;
        let mut first = true;
        if b.get(i) == Some(&b'}') {
            i += 1;
        } else {
            if b.get(i) != Some(&b'"') {
                return Err(LineError::syntax_at("expected a field name", i));
            }
            // Here `b[i]` opens a field name.
            loop {
                let field = match self.schema.entries.get(expect) {
                    // The name that previous lines had here: `i` moves past its ':'.
                    Some(entry) if entry.matches(b, i) => {
                        i += entry.len;
                        prev = expect;
                        expect = entry.next;
                        entry.field
                    }
                    _ => {
                        misses += 1;
                        let (field, after) =
                            self.json_name(line, i, learn && first, &mut prev, &mut expect)?;
                        i = after;
                        field
                    }
                };
                first = false;
                let end = if b.get(i) == Some(&b'"') {
                    let (end, escaped) = scan_json_string(b, i + 1)
                        .ok_or_else(|| LineError::syntax_at("unterminated string", i))?;
                    if field.simple() && !escaped {
                        if let Some(slot) = self.vals.get_mut(field.slot_index()) {
                            *slot = Val::line(i + 1, end);
                        }
                    } else if field.mapped() {
                        let value = JsonVal::Str(i + 1, end, escaped);
                        self.json_field(line, field, value, &mut time)?;
                    }
                    end + 1
                } else {
                    i = skip_ws(b, i);
                    let (value, end) = scan_json_value(b, i, field.mapped())?;
                    if field.mapped() {
                        self.json_field(line, field, value, &mut time)?;
                    }
                    end
                };
                match b.get(end) {
                    Some(b',') => i = end + 1,
                    Some(b'}') => {
                        i = end + 1;
                        break;
                    }
                    _ => {
                        i = skip_ws(b, end);
                        match b.get(i) {
                            Some(b',') => i += 1,
                            Some(b'}') => {
                                i += 1;
                                break;
                            }
                            _ => return Err(LineError::syntax_at("expected ',' or '}'", i)),
                        }
                    }
                }
                if b.get(i) != Some(&b'"') {
                    i = skip_ws(b, i);
                    if b.get(i) != Some(&b'"') {
                        return Err(LineError::syntax_at("expected a field name", i));
                    }
                }
            }
        }
        if i != b.len() && skip_ws(b, i) != b.len() {
            return Err(LineError::syntax_at(
                "unexpected text after the JSON object",
                i,
            ));
        }
        self.schema.end_line(misses);
        Ok(time)
    }

    /// Takes the value of a mapped field: as the time and/or as the attributes it feeds.
    #[inline(always)]
    fn json_field(
        &mut self,
        line: &str,
        field: Field,
        value: JsonVal,
        time: &mut Option<JsonVal>,
    ) -> Result<(), LineError> {
        if field.time() {
            *time = Some(value);
        }
        if field.slot().is_some() {
            let val = self.json_val(line, value)?;
            self.set_val(field, val);
        }
        Ok(())
    }

    /// The field name at `line[i]` (a quote) when it is not the one the schema expected:
    /// what it maps to, and the index after its ':'. Unless the schema rests, learns the
    /// name, links it after the previous field's entry (`prev`, or first if `first`),
    /// then moves `prev` and `expect` on.
    #[inline(never)]
    fn json_name(
        &mut self,
        line: &str,
        i: usize,
        first: bool,
        prev: &mut usize,
        expect: &mut usize,
    ) -> Result<(Field, usize), LineError> {
        let b = line.as_bytes();
        let (key_end, key_escaped) = scan_json_string(b, i + 1)
            .ok_or_else(|| LineError::syntax_at("unterminated field name", i))?;
        let hit = self.match_key(line, i + 1, key_end, key_escaped)?;
        let field = self.field(hit);
        if self.schema.active() {
            let learnt = if key_escaped || b.get(key_end + 1) != Some(&b':') {
                NO_ENTRY
            } else {
                self.schema.learn(b, i, key_end, field)
            };
            if let Some(p) = self.schema.entries.get_mut(*prev) {
                p.next = learnt;
            } else if first {
                self.schema.first = learnt;
            }
            *prev = learnt;
            *expect = self.schema.entries.get(learnt).map_or(NO_ENTRY, |e| e.next);
        }
        let mut i = key_end + 1;
        if b.get(i) != Some(&b':') {
            i = skip_ws(b, i);
            if b.get(i) != Some(&b':') {
                return Err(LineError::syntax_at("expected ':' after a field name", i));
            }
        }
        Ok((field, i + 1))
    }

    /// What the mapped field `hit` (an index into `json_keys`) feeds.
    #[inline(always)]
    fn field(&self, hit: Option<usize>) -> Field {
        hit.and_then(|k| self.json_fields.get(k).copied())
            .unwrap_or(Field::UNMAPPED)
    }

    /// Stores the value of a mapped field in the slots of the attributes it feeds.
    #[inline(always)]
    fn set_val(&mut self, field: Field, val: Val) {
        if let Some(slot) = field.slot().and_then(|s| self.vals.get_mut(s)) {
            *slot = val;
        }
        if field.more() {
            if let Some(key) = self.json_keys.get(field.key()) {
                for &slot in &key.slots[1..] {
                    self.vals[slot] = val;
                }
            }
        }
    }

    /// The time of a JSON line from the value of its time field.
    fn json_time(&mut self, line: &str, time: Option<JsonVal>) -> Result<i128, LineError> {
        match time {
            None => Err(LineError::new(
                LineErrorKind::MissingTime,
                format!("no time field {:?}", excerpt(&self.time_field)),
            )),
            Some(JsonVal::Str(s, e, escaped)) => {
                // The common case first: an RFC 3339 time of the hour seen last.
                if let Some(t) = (!escaped)
                    .then(|| line.as_bytes().get(s..e))
                    .flatten()
                    .and_then(|b| rfc3339_same_hour(&self.day, b))
                {
                    return Ok(t);
                }
                let text = if escaped {
                    self.key_buf.clear();
                    unescape_json(&line[s..e], &mut self.key_buf)
                        .map_err(|why| LineError::syntax_at(why, s))?;
                    self.key_buf.as_str()
                } else {
                    &line[s..e]
                };
                parse_text_time(&mut self.day, text, self.epoch_unit)
            }
            Some(JsonVal::Num(s, e)) => {
                parse_epoch(&line[s..e], self.epoch_unit).ok_or_else(|| {
                    LineError::new(
                        LineErrorKind::InvalidTime,
                        format!("time {:?} is out of range", excerpt(&line[s..e])),
                    )
                })
            }
            Some(_) => Err(LineError::new(
                LineErrorKind::InvalidTime,
                format!(
                    "time field {:?} is not a string or a number",
                    excerpt(&self.time_field)
                ),
            )),
        }
    }

    /// Which mapped field (index into `json_keys`) the key `line[s..e]` is.
    #[inline]
    fn match_key(
        &mut self,
        line: &str,
        s: usize,
        e: usize,
        escaped: bool,
    ) -> Result<Option<usize>, LineError> {
        if !escaped {
            return Ok(self.find_key(line.as_bytes(), s, e));
        }
        self.key_buf.clear();
        unescape_json(&line[s..e], &mut self.key_buf)
            .map_err(|why| LineError::syntax_at(why, s))?;
        let key = self.key_buf.as_bytes();
        Ok(self.find_key(key, 0, key.len()))
    }

    /// Which mapped field (index into `json_keys`) the key `b[s..e]` (without escapes)
    /// is.
    #[inline(always)]
    fn find_key(&self, b: &[u8], s: usize, e: usize) -> Option<usize> {
        let len = e - s;
        if len <= 8 {
            let w = short_word(b, s, len);
            if let (1.., Some(hit)) = (len, self.key_table.find(w, len)) {
                return hit;
            }
            self.json_keys
                .iter()
                .position(|k| k.word == w && k.key.len() == len)
        } else {
            let key = &b[s..e];
            self.json_keys.iter().position(|k| k.key.as_bytes() == key)
        }
    }

    #[inline(always)]
    fn json_val(&mut self, line: &str, value: JsonVal) -> Result<Val, LineError> {
        Ok(match value {
            JsonVal::Str(s, e, false) | JsonVal::Num(s, e) => Val::line(s, e),
            JsonVal::Str(s, e, true) => {
                let start = self.buf.len();
                unescape_json(&line[s..e], &mut self.buf)
                    .map_err(|why| LineError::syntax_at(why, s))?;
                Val::buf(start, self.buf.len())
            }
            JsonVal::True => Val::TRUE,
            JsonVal::False => Val::FALSE,
            JsonVal::Null | JsonVal::Nested => Val::ABSENT,
        })
    }

    // ---- combined / common log format -------------------------------------------------

    #[inline(never)]
    fn scan_combined(&mut self, line: &str) -> Result<i128, LineError> {
        let b = line.as_bytes();
        let host = token(b, 0);
        if host.0 == host.1 {
            return Err(LineError::syntax("line does not start with a host"));
        }
        let ident = token(b, skip_spaces(b, host.1));
        let user = token(b, skip_spaces(b, ident.1));
        let mut i = skip_spaces(b, user.1);
        if b.get(i) != Some(&b'[') {
            return Err(LineError::syntax_at("expected '[' before the time", i));
        }
        let time_start = i + 1;
        let time_end = find1(b, time_start, b']')
            .ok_or_else(|| LineError::syntax("missing closing ']' of the time"))?;
        i = skip_spaces(b, time_end + 1);
        if b.get(i) != Some(&b'"') {
            return Err(LineError::syntax_at("expected the quoted request", i));
        }
        let request = quoted(b, i + 1)
            .ok_or_else(|| LineError::syntax("missing closing quote of the request"))?;
        let status = token(b, skip_spaces(b, request.end + 1));
        let status_text = &line[status.0..status.1];
        if status_text.len() != 3 || !status_text.bytes().all(|c| c.is_ascii_digit()) {
            return Err(LineError::syntax(format!(
                "status {:?} is not a 3-digit number",
                excerpt(status_text)
            )));
        }
        let bytes = token(b, skip_spaces(b, status.1));
        let bytes_text = &line[bytes.0..bytes.1];
        if bytes_text.is_empty()
            || (bytes_text != "-" && !bytes_text.bytes().all(|c| c.is_ascii_digit()))
        {
            return Err(LineError::syntax(format!(
                "byte count {:?} is not a number or '-'",
                excerpt(bytes_text)
            )));
        }
        i = skip_spaces(b, bytes.1);
        let mut referer = None;
        let mut agent = None;
        if b.get(i) == Some(&b'"') {
            let q = quoted(b, i + 1)
                .ok_or_else(|| LineError::syntax("missing closing quote of the referer"))?;
            i = skip_spaces(b, q.end + 1);
            referer = Some(q);
            if b.get(i) == Some(&b'"') {
                let q = quoted(b, i + 1)
                    .ok_or_else(|| LineError::syntax("missing closing quote of the user agent"))?;
                agent = Some(q);
            }
        }

        let req = if self.needs_request {
            split_request(line, request.start, request.end)?
        } else {
            Request::default()
        };

        let Parser {
            sources,
            clf,
            queries,
            vals,
            buf,
            scratch,
            ..
        } = self;
        for (slot, (source, val)) in clf.iter().zip(vals.iter_mut()).enumerate() {
            *val = match *source {
                Clf::Host => dash_absent(line, host),
                Clf::Ident => dash_absent(line, ident),
                Clf::User => dash_absent(line, user),
                Clf::Time => Val::line(time_start, time_end),
                Clf::Status => Val::line(status.0, status.1),
                Clf::Bytes => dash_absent(line, bytes),
                Clf::Method => span_val(req.method),
                Clf::Path => match req.path {
                    Some(Path::Line(s, e)) => Val::line(s, e),
                    Some(Path::Root) => Val::ROOT,
                    None => Val::ABSENT,
                },
                Clf::Protocol => span_val(req.protocol),
                Clf::PathSegment(n) => match req.path {
                    Some(Path::Line(s, e)) => path_segment(line, s, e, n),
                    _ => Val::ABSENT,
                },
                // Filled by `query_params` below.
                Clf::TrackedQuery => Val::ABSENT,
                Clf::Query => match (req.query, sources.get(slot)) {
                    (Some((s, e)), Some(Source::Query(name))) => {
                        query_param(line, s, e, name, buf, scratch)
                    }
                    _ => Val::ABSENT,
                },
                Clf::Referer => quoted_val(line, referer, buf, scratch),
                Clf::UserAgent => quoted_val(line, agent, buf, scratch),
                Clf::None => Val::ABSENT,
            };
        }
        if let (false, Some(query)) = (queries.is_empty(), req.query) {
            query_params(line, query, queries, vals, buf, scratch);
        }
        parse_clf_time(&mut self.day, &line[time_start..time_end])
    }
}

// ---- byte search --------------------------------------------------------------------------

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The eight bytes of `b` at `i`, little-endian.
#[inline(always)]
fn word(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(i..i.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// The high bit of each byte of `w` that equals the byte broadcast in `pattern`. Only the
/// lowest set bit is exact (a borrow can mark bytes above a match), which is all that
/// [`find2`] reads.
#[inline(always)]
fn eq_mask(w: u64, pattern: u64) -> u64 {
    let x = w ^ pattern;
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The index of the first `x` or `y` in `b[i..]`.
///
/// Most fields of a log line are short, where testing a word at a time beats setting up
/// a vector search: the first [`SWAR_BYTES`] bytes are searched eight at a time, the
/// rest with `memchr2`. The first 16 bytes are tested together, without a branch on
/// where the match is in them: many fields vary in length around 8 bytes, and a
/// mispredicted branch costs more than the second word.
#[inline(always)]
fn find2(b: &[u8], i: usize, x: u8, y: u8) -> Option<usize> {
    let (px, py) = (ONES * u64::from(x), ONES * u64::from(y));
    let rest = b.get(i..)?;
    let head = rest.get(..SWAR_BYTES).unwrap_or(rest);
    let mut j = 0;
    if let Some(chunk) = head.get(..16).and_then(|c| <[u8; 16]>::try_from(c).ok()) {
        let w = u128::from_le_bytes(chunk);
        let (lo, hi) = (w as u64, (w >> 64) as u64);
        let hits = u128::from(eq_mask(lo, px) | eq_mask(lo, py))
            | u128::from(eq_mask(hi, px) | eq_mask(hi, py)) << 64;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        j = 16;
    }
    while let Some(chunk) = head.get(j..j + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(chunk);
        let hit = eq_mask(w, px) | eq_mask(w, py);
        if hit != 0 {
            return Some(i + j + (hit.trailing_zeros() / 8) as usize);
        }
        j += 8;
    }
    find2_rest(rest, j, x, y).map(|n| i + n)
}

/// [`find2`] in `rest[j..]`, past the words it tested.
#[inline(never)]
fn find2_rest(rest: &[u8], j: usize, x: u8, y: u8) -> Option<usize> {
    let tail = rest.get(j..)?;
    let n = if tail.len() < 8 {
        tail.iter().position(|&c| c == x || c == y)?
    } else {
        memchr2(x, y, tail)?
    };
    Some(j + n)
}

/// How many bytes [`find2`] tests a word at a time before it calls `memchr2`.
const SWAR_BYTES: usize = 128;

/// The index of the first `x` in `b[i..]`.
#[inline]
fn find1(b: &[u8], i: usize, x: u8) -> Option<usize> {
    find2(b, i, x, x)
}

/// Whether `b` has a `%` or a `+` (needs percent-decoding).
#[inline]
fn has_percent_or_plus(b: &[u8]) -> bool {
    const PERCENTS: u64 = ONES * b'%' as u64;
    const PLUSES: u64 = ONES * b'+' as u64;
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        if let Ok(chunk) = <[u8; 8]>::try_from(chunk) {
            let w = u64::from_le_bytes(chunk);
            if eq_mask(w, PERCENTS) | eq_mask(w, PLUSES) != 0 {
                return true;
            }
        }
    }
    chunks.remainder().iter().any(|&c| c == b'%' || c == b'+')
}

/// The index of the last `x` in `b`: the last 32 bytes are searched eight at a time,
/// the rest with `memrchr`.
#[inline]
fn rfind1(b: &[u8], x: u8) -> Option<usize> {
    const LOWS: u64 = !HIGHS;
    let pattern = ONES * u64::from(x);
    let mut end = b.len();
    while end >= 8 && b.len() - end < 32 {
        let w = word(b, end - 8)?;
        // Exact, so that the highest match is right.
        let x = w ^ pattern;
        let hit = !(((x & LOWS) + LOWS) | x) & HIGHS;
        if hit != 0 {
            return Some(end - 8 + (63 - hit.leading_zeros() as usize) / 8);
        }
        end -= 8;
    }
    memchr::memrchr(x, &b[..end])
}

// ---- JSON scanning ------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum JsonVal {
    /// The contents of a string, and whether it has escapes.
    Str(usize, usize, bool),
    Num(usize, usize),
    True,
    False,
    Null,
    Nested,
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
#[inline(always)]
fn skip_ws(b: &[u8], i: usize) -> usize {
    if let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        skip_ws_from(b, i)
    } else {
        i
    }
}

#[inline(never)]
fn skip_ws_from(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// From just after an opening quote: the index of the closing quote, and whether the
/// string has a backslash.
#[inline(always)]
fn scan_json_string(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let i = find2(b, i, b'"', b'\\')?;
    if b[i] == b'"' {
        Some((i, false))
    } else {
        scan_escaped_string(b, i)
    }
}

/// [`scan_json_string`] from the first backslash, at `b[i]`.
#[inline(never)]
fn scan_escaped_string(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    loop {
        i += 2;
        i = find2(b, i, b'"', b'\\')?;
        if b[i] == b'"' {
            return Some((i, true));
        }
    }
}

/// Scans the value at `b[i..]`; returns it and the index after it. Numbers and
/// literals are checked only when `checked` (the value is used).
#[inline(always)]
fn scan_json_value(b: &[u8], i: usize, checked: bool) -> Result<(JsonVal, usize), LineError> {
    match b.get(i) {
        Some(b'"') => {
            let (end, escaped) = scan_json_string(b, i + 1)
                .ok_or_else(|| LineError::syntax_at("unterminated string", i))?;
            Ok((JsonVal::Str(i + 1, end, escaped), end + 1))
        }
        Some(b'-' | b'0'..=b'9') => {
            let end = if checked {
                json_number_end(b, i).ok_or_else(|| LineError::syntax_at("invalid number", i))?
            } else {
                let mut j = i + 1;
                j += digits_at(b, j);
                while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = b.get(j) {
                    j += 1;
                }
                j
            };
            Ok((JsonVal::Num(i, end), end))
        }
        Some(b'{' | b'[') => Ok((JsonVal::Nested, skip_nested(b, i)?)),
        Some(b't') if b[i..].starts_with(b"true") => Ok((JsonVal::True, i + 4)),
        Some(b'f') if b[i..].starts_with(b"false") => Ok((JsonVal::False, i + 5)),
        Some(b'n') if b[i..].starts_with(b"null") => Ok((JsonVal::Null, i + 4)),
        None => Err(LineError::syntax("line ends where a value should be")),
        Some(_) => Err(LineError::syntax_at("invalid value", i)),
    }
}

/// How many ASCII digits `b[i..]` starts with, counting at most eight (0 if `b` is
/// shorter than eight bytes).
#[inline(always)]
fn digits_at(b: &[u8], i: usize) -> usize {
    let w = match word(b, i) {
        Some(w) => w,
        // Near the end: the last eight bytes, shifted down to `b[i]` (zeros come in).
        None => match b.len().checked_sub(8).and_then(|s| word(b, s)) {
            Some(last) if i < b.len() => last >> (8 * (i + 8 - b.len())),
            _ => return 0,
        },
    };
    // Each byte minus '0' is below 10 for a digit. Borrows and carries only move up, from
    // the first non-digit, so that one is found exactly.
    let t = w.wrapping_sub(ONES * u64::from(b'0'));
    let non_digits = (t.wrapping_add(ONES * 0x76) | t) & HIGHS;
    (non_digits.trailing_zeros() / 8) as usize
}

/// The end of the JSON number starting at `b[i]`, following the JSON grammar.
fn json_number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], mut i: usize| -> Option<usize> {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match b.get(i) {
        Some(b'0') => i + 1,
        Some(b'1'..=b'9') => digits(b, i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        i = digits(b, i)?;
    }
    Some(i)
}

/// Skips the object or array at `b[i]`, checking that brackets match (up to 128
/// levels deep); returns the index after it.
fn skip_nested(b: &[u8], mut i: usize) -> Result<usize, LineError> {
    let start = i;
    // One bit per open level: 1 for an object, 0 for an array.
    let mut stack: u128 = 0;
    let mut depth = 0u32;
    while let Some(&c) = b.get(i) {
        match c {
            b'{' | b'[' => {
                if depth == 128 {
                    return Err(LineError::syntax_at("JSON nested too deeply", i));
                }
                stack = (stack << 1) | u128::from(c == b'{');
                depth += 1;
            }
            b'}' | b']' => {
                if (stack & 1 == 1) != (c == b'}') {
                    return Err(LineError::syntax_at("mismatched bracket", i));
                }
                stack >>= 1;
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            b'"' => {
                i = scan_json_string(b, i + 1)
                    .ok_or_else(|| LineError::syntax_at("unterminated string", i))?
                    .0;
            }
            _ => {}
        }
        i += 1;
    }
    Err(LineError::syntax_at("unclosed object or array", start))
}

/// Decodes the contents of a JSON string (without quotes) onto `out`.
fn unescape_json(raw: &str, out: &mut String) -> Result<(), &'static str> {
    let b = raw.as_bytes();
    let mut i = 0;
    while let Some(n) = memchr(b'\\', &b[i..]) {
        let j = i + n;
        out.push_str(&raw[i..j]);
        let c = match b.get(j + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let hi = hex4(b, j + 2).ok_or("invalid \\u escape")?;
                i = j + 6;
                let code = match hi {
                    0xD800..=0xDBFF => {
                        let lo = (b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u'))
                            .then(|| hex4(b, i + 2))
                            .flatten()
                            .filter(|lo| (0xDC00..=0xDFFF).contains(lo))
                            .ok_or("unpaired surrogate in a \\u escape")?;
                        i += 6;
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err("unpaired surrogate in a \\u escape"),
                    _ => hi,
                };
                out.push(char::from_u32(code).ok_or("invalid \\u escape")?);
                continue;
            }
            _ => return Err("invalid escape in a string"),
        };
        out.push(c);
        i = j + 2;
    }
    out.push_str(&raw[i..]);
    Ok(())
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i + 4)?;
    let mut v = 0;
    for &d in digits {
        v = (v << 4) | u32::from(hex(d)?);
    }
    Some(v)
}

#[inline]
fn hex(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

// ---- combined scanning --------------------------------------------------------------------

/// `(start, end)` of the space-delimited token at `b[i..]`.
#[inline]
fn token(b: &[u8], i: usize) -> (usize, usize) {
    let end = find1(b, i, b' ').unwrap_or(b.len());
    (i.min(end), end)
}

#[inline]
fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// The contents of a quoted field, from just after the opening quote.
#[derive(Clone, Copy, Debug)]
struct Quoted {
    start: usize,
    /// The index of the closing quote.
    end: usize,
    escaped: bool,
}

#[inline(always)]
fn quoted(b: &[u8], start: usize) -> Option<Quoted> {
    let end = find2(b, start, b'"', b'\\')?;
    let (end, escaped) = if b[end] == b'"' {
        (end, false)
    } else {
        scan_escaped_string(b, end)?
    };
    Some(Quoted {
        start,
        end,
        escaped,
    })
}

#[inline]
fn dash_absent(line: &str, (s, e): (usize, usize)) -> Val {
    match line.as_bytes().get(s..e) {
        Some(b"" | b"-") | None => Val::ABSENT,
        _ => Val::line(s, e),
    }
}

fn span_val(span: Option<(usize, usize)>) -> Val {
    span.map_or(Val::ABSENT, |(s, e)| Val::line(s, e))
}

/// A quoted referer or user agent: absent if missing or `-`; decoded if it has escapes
/// and decodes to UTF-8, otherwise as written.
fn quoted_val(line: &str, q: Option<Quoted>, buf: &mut String, scratch: &mut Vec<u8>) -> Val {
    let Some(q) = q else { return Val::ABSENT };
    let raw = &line[q.start..q.end];
    if raw == "-" || raw.is_empty() {
        return Val::ABSENT;
    }
    if !q.escaped {
        return Val::line(q.start, q.end);
    }
    scratch.clear();
    let b = raw.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            let decoded = match b.get(i + 1) {
                Some(&e @ (b'"' | b'\\')) => Some((e, 2)),
                Some(b'n') => Some((b'\n', 2)),
                Some(b't') => Some((b'\t', 2)),
                Some(b'r') => Some((b'\r', 2)),
                Some(b'x') => match (
                    b.get(i + 2).and_then(|&d| hex(d)),
                    b.get(i + 3).and_then(|&d| hex(d)),
                ) {
                    (Some(h), Some(l)) => Some(((h << 4) | l, 4)),
                    _ => None,
                },
                _ => None,
            };
            if let Some((byte, len)) = decoded {
                scratch.push(byte);
                i += len;
                continue;
            }
        }
        scratch.push(c);
        i += 1;
    }
    match std::str::from_utf8(scratch) {
        Ok(text) => {
            let start = buf.len();
            buf.push_str(text);
            Val::buf(start, buf.len())
        }
        Err(_) => Val::line(q.start, q.end),
    }
}

#[derive(Clone, Copy, Debug)]
enum Path {
    Line(usize, usize),
    /// An absolute target without a path, such as `http://host`.
    Root,
}

/// The parts of a request line, as spans of the log line.
#[derive(Clone, Copy, Debug, Default)]
struct Request {
    method: Option<(usize, usize)>,
    path: Option<Path>,
    /// The query and the fragment, if any (without the '?').
    query: Option<(usize, usize)>,
    protocol: Option<(usize, usize)>,
}

/// Splits `line[start..end]`, a request line `METHOD TARGET [PROTOCOL]`.
fn split_request(line: &str, start: usize, end: usize) -> Result<Request, LineError> {
    let text = &line[start..end];
    let mut req = Request::default();
    if text == "-" || text.is_empty() {
        return Ok(req);
    }
    let b = line.as_bytes();
    let method = token(b, start);
    let method = (method.0, method.1.min(end));
    if method.0 == method.1 || !b[method.0..method.1].iter().all(u8::is_ascii_alphabetic) {
        return Err(LineError::syntax(format!(
            "request {:?} does not start with a method",
            excerpt(text)
        )));
    }
    req.method = Some(method);
    let mut target_start = skip_spaces(b, method.1).min(end);
    let mut target_end = end;
    // The protocol is the last word, so that a target with spaces (logged as received)
    // stays whole.
    if let Some(sp) = rfind1(&b[target_start..end], b' ') {
        let p = target_start + sp + 1;
        req.protocol = (p < end).then_some((p, end));
        target_end = target_start + sp;
        while target_end > target_start && b[target_end - 1] == b' ' {
            target_end -= 1;
        }
    }
    if target_start == target_end {
        return Ok(req);
    }
    let target = &b[target_start..target_end];
    let q = find2(&b[..target_end], target_start, b'?', b'#').unwrap_or(target_end);
    if target.first() != Some(&b'/') {
        if let Some(n) = memchr::memmem::find(&b[target_start..q], b"://") {
            let authority = target_start + n + 3;
            match memchr(b'/', &b[authority..q]) {
                Some(n) => target_start = authority + n,
                None => target_start = q,
            }
        }
    }
    req.path = Some(if target_start == q {
        Path::Root
    } else {
        Path::Line(target_start, q)
    });
    if b.get(q) == Some(&b'?') {
        // The query ends at a '#', which `query_params` stops at.
        req.query = Some((q + 1, target_end));
    }
    Ok(req)
}

fn path_segment(line: &str, s: usize, e: usize, n: usize) -> Val {
    let b = &line.as_bytes()[..e];
    let mut start = if b.get(s) == Some(&b'/') { s + 1 } else { s };
    for _ in 0..n {
        match find1(b, start, b'/') {
            Some(slash) => start = slash + 1,
            None => return Val::ABSENT,
        }
    }
    let end = find1(b, start, b'/').unwrap_or(e);
    if start == end {
        Val::ABSENT
    } else {
        Val::line(start, end)
    }
}

/// The query parameters of `line[s..e]` (a query, then maybe `#` and a fragment) that the
/// attributes `queries` (slot in `vals`, parameter name) read: the first parameter of each
/// name, in one pass over the query.
fn query_params(
    line: &str,
    (s, e): (usize, usize),
    queries: &[(usize, Box<str>)],
    vals: &mut [Val],
    buf: &mut String,
    scratch: &mut Vec<u8>,
) {
    let b = &line.as_bytes()[..e];
    // The queries not found yet.
    let mut left: u64 = u64::MAX >> (64 - queries.len().clamp(1, 64));
    let mut pair_start = s;
    loop {
        let (pair_end, last) = match find2(b, pair_start, b'&', b'#') {
            Some(at) => (at, b[at] == b'#'),
            None => (e, true),
        };
        let (key_end, value_start) = match find1(&b[..pair_end], pair_start, b'=') {
            Some(eq) => (eq, eq + 1),
            None => (pair_end, pair_end),
        };
        let key = &b[pair_start..key_end];
        let mut hits = 0u64;
        if has_percent_or_plus(key) {
            let start = buf.len();
            percent_decode(&line[pair_start..key_end], scratch, buf);
            for (k, (_, name)) in queries.iter().enumerate().take(64) {
                if left >> k & 1 == 1 && buf[start..] == **name {
                    hits |= 1 << k;
                }
            }
            buf.truncate(start);
        } else {
            for (k, (_, name)) in queries.iter().enumerate().take(64) {
                if left >> k & 1 == 1 && short_eq(key, name.as_bytes()) {
                    hits |= 1 << k;
                }
            }
        }
        if hits != 0 {
            let val = if !has_percent_or_plus(&b[value_start..pair_end]) {
                Val::line(value_start, pair_end)
            } else {
                let start = buf.len();
                percent_decode(&line[value_start..pair_end], scratch, buf);
                Val::buf(start, buf.len())
            };
            for (k, &(slot, _)) in queries.iter().enumerate().take(64) {
                if hits >> k & 1 == 1 {
                    if let Some(v) = vals.get_mut(slot) {
                        *v = val;
                    }
                }
            }
            left &= !hits;
        }
        if last || left == 0 {
            return;
        }
        pair_start = pair_end + 1;
    }
}

/// The first query parameter named `name` in `line[s..e]` (a query, then maybe `#` and a
/// fragment), for the attributes that [`query_params`] does not track.
fn query_param(
    line: &str,
    s: usize,
    e: usize,
    name: &str,
    buf: &mut String,
    scratch: &mut Vec<u8>,
) -> Val {
    let e = find1(&line.as_bytes()[..e], s, b'#').unwrap_or(e);
    let b = &line.as_bytes()[..e];
    let mut pair_start = s;
    while pair_start <= e {
        let pair_end = find1(b, pair_start, b'&').unwrap_or(e);
        let (key_end, value_start) = match find1(&b[..pair_end], pair_start, b'=') {
            Some(eq) => (eq, eq + 1),
            None => (pair_end, pair_end),
        };
        let key = &b[pair_start..key_end];
        let matches = if has_percent_or_plus(key) {
            let start = buf.len();
            percent_decode(&line[pair_start..key_end], scratch, buf);
            let same = &buf[start..] == name;
            buf.truncate(start);
            same
        } else {
            key == name.as_bytes()
        };
        if matches {
            if !has_percent_or_plus(&b[value_start..pair_end]) {
                return Val::line(value_start, pair_end);
            }
            let start = buf.len();
            percent_decode(&line[value_start..pair_end], scratch, buf);
            return Val::buf(start, buf.len());
        }
        pair_start = pair_end + 1;
    }
    Val::ABSENT
}

/// `a == b`, without a call to `memcmp` for the short names of query parameters.
#[inline(always)]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && if a.len() <= 16 {
            a.iter().zip(b).all(|(x, y)| x == y)
        } else {
            a == b
        }
}

/// Percent-decodes `raw` (with `+` as a space) onto `out`. A `%` not followed by two hex
/// digits stays as is; bytes that do not decode to UTF-8 become U+FFFD.
fn percent_decode(raw: &str, scratch: &mut Vec<u8>, out: &mut String) {
    scratch.clear();
    let b = raw.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => scratch.push(b' '),
            b'%' => match (
                b.get(i + 1).and_then(|&d| hex(d)),
                b.get(i + 2).and_then(|&d| hex(d)),
            ) {
                (Some(h), Some(l)) => {
                    scratch.push((h << 4) | l);
                    i += 3;
                    continue;
                }
                _ => scratch.push(c),
            },
            _ => scratch.push(c),
        }
        i += 1;
    }
    match std::str::from_utf8(scratch) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(scratch)),
    }
}

// ---- times --------------------------------------------------------------------------------

/// Two ASCII digits at `b[i..i + 2]`.
#[inline(always)]
fn d2(b: &[u8], i: usize) -> Option<i32> {
    match b.get(i..i + 2)? {
        [h @ b'0'..=b'9', l @ b'0'..=b'9'] => Some(i32::from(h - b'0') * 10 + i32::from(l - b'0')),
        _ => None,
    }
}

/// A fraction of a second after the `.` at `b[*i - 1]`: at least one digit; digits past
/// the ninth are read and ignored.
#[inline(always)]
fn fraction(b: &[u8], i: &mut usize) -> Option<i32> {
    const SCALE: [i32; 10] = [
        1,
        10,
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
        1_000_000_000,
    ];
    let start = *i;
    let mut nanos = 0;
    let mut digits = 0;
    while let Some(&d) = b.get(*i).filter(|d| d.is_ascii_digit()) {
        if digits < 9 {
            nanos = nanos * 10 + i32::from(d - b'0');
            digits += 1;
        }
        *i += 1;
    }
    (*i > start).then(|| nanos * SCALE[9 - digits])
}

/// Unix seconds of local midnight on `year-month-day` at UTC offset `offset` seconds.
fn midnight_at(year: i32, month: i32, day: i32, offset: i32) -> Result<i64, &'static str> {
    let date = match (i16::try_from(year), i8::try_from(month), i8::try_from(day)) {
        (Ok(y), Ok(m), Ok(d)) => Date::new(y, m, d).map_err(|_| "is not a calendar date")?,
        _ => return Err("is not a calendar date"),
    };
    let offset = Offset::from_seconds(offset).map_err(|_| "has an out-of-range UTC offset")?;
    let midnight = offset
        .to_timestamp(date.to_datetime(Time::midnight()))
        .map_err(|_| "is out of range")?;
    Ok(midnight.as_second())
}

/// Adds the time of day to a midnight in nanoseconds (from [`DayCache::midnight`]) and
/// checks the result against jiff's range unless the whole day is in it.
#[inline(always)]
fn at_time_of_day(
    (midnight, in_range): (i128, bool),
    h: i32,
    m: i32,
    s: i32,
    nanos: i32,
) -> Result<i128, &'static str> {
    let t =
        midnight + i128::from(i64::from(h * 3600 + m * 60 + s) * 1_000_000_000 + i64::from(nanos));
    if !in_range && (t < Timestamp::MIN.as_nanosecond() || t > Timestamp::MAX.as_nanosecond()) {
        return Err("is out of range");
    }
    Ok(t)
}

fn time_error(text: &str, why: &str) -> LineError {
    LineError::new(
        LineErrorKind::InvalidTime,
        format!("time {:?} {why}", excerpt(text)),
    )
}

const NOT_RFC3339: &str = "is not RFC 3339";

/// A JSON time string: RFC 3339, or a number of `unit`s since the epoch.
fn parse_text_time(day: &mut DayCache, text: &str, unit: EpochUnit) -> Result<i128, LineError> {
    let b = text.as_bytes();
    if b.len() >= 10 && b[4] == b'-' {
        return rfc3339(day, b).map_err(|why| time_error(text, why));
    }
    parse_epoch(text, unit).ok_or_else(|| time_error(text, NOT_RFC3339))
}

/// `YYYY-MM-DD(T|t| )HH:MM:SS[.frac](Z|z|±HH:MM|±HHMM)`.
fn rfc3339(day: &mut DayCache, b: &[u8]) -> Result<i128, &'static str> {
    if let Some(t) = rfc3339_same_hour(day, b) {
        return Ok(t);
    }
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(NOT_RFC3339);
    }
    let (Some(h), Some(m), Some(s)) = (d2(b, 11), d2(b, 14), d2(b, 17)) else {
        return Err(NOT_RFC3339);
    };
    let mut i = 19;
    let mut nanos = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        nanos = fraction(b, &mut i).ok_or(NOT_RFC3339)?;
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = d2(b, i + 1).ok_or(NOT_RFC3339)?;
            i += 3;
            if b.get(i) == Some(&b':') {
                i += 1;
            }
            let om = d2(b, i).ok_or(NOT_RFC3339)?;
            i += 2;
            if om > 59 {
                return Err(NOT_RFC3339);
            }
            let secs = oh * 3600 + om * 60;
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return Err("has no UTC offset (RFC 3339 needs Z or ±HH:MM)"),
    };
    if i != b.len() || h > 23 || m > 59 || s > 60 {
        return Err(NOT_RFC3339);
    }
    let midnight = day.midnight(&b[..10], offset, || {
        let year = d2(b, 0).zip(d2(b, 2)).ok_or(NOT_RFC3339)?;
        let month = d2(b, 5).ok_or(NOT_RFC3339)?;
        let dom = d2(b, 8).ok_or(NOT_RFC3339)?;
        midnight_at(year.0 * 100 + year.1, month, dom, offset)
    })?;
    // jiff reads a leap second as the second before it.
    let t = at_time_of_day(midnight, h, m, s.min(59), nanos)?;
    day.remember_hour(b, 14, offset, h);
    Ok(t)
}

/// [`rfc3339`] for a time in the hour that `day` remembers (its first 14 bytes,
/// `YYYY-MM-DDTHH:`, are the same), or `None`.
#[inline(always)]
fn rfc3339_same_hour(day: &DayCache, b: &[u8]) -> Option<i128> {
    if !day.hour_valid || b.get(16) != Some(&b':') {
        return None;
    }
    let (m, s) = (d2(b, 14)?, d2(b, 17)?);
    let mut i = 19;
    let mut nanos = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        nanos = fraction(b, &mut i)?;
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        _ => return None,
    };
    if i != b.len() || m > 59 || s > 60 {
        return None;
    }
    day.same_hour(b, 14, offset, (m, s, nanos))
}

const NOT_CLF: &str = "is not dd/Mon/yyyy:HH:MM:SS ±hhmm";

/// `dd/Mon/yyyy:HH:MM:SS[.frac] ±hhmm`.
fn parse_clf_time(day: &mut DayCache, text: &str) -> Result<i128, LineError> {
    clf_time(day, text.as_bytes()).map_err(|why| time_error(text, why))
}

fn clf_time(day: &mut DayCache, b: &[u8]) -> Result<i128, &'static str> {
    if let Some(t) = clf_same_hour(day, b) {
        return Ok(t);
    }
    if b.len() < 26
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
    {
        return Err(NOT_CLF);
    }
    let (Some(h), Some(m), Some(s)) = (d2(b, 12), d2(b, 15), d2(b, 18)) else {
        return Err(NOT_CLF);
    };
    let mut i = 20;
    let mut nanos = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        nanos = fraction(b, &mut i).ok_or(NOT_CLF)?;
    }
    if b.get(i) != Some(&b' ') {
        return Err(NOT_CLF);
    }
    let sign = match b.get(i + 1) {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(NOT_CLF),
    };
    let oh = d2(b, i + 2).ok_or(NOT_CLF)?;
    i += 4;
    if b.get(i) == Some(&b':') {
        i += 1;
    }
    let om = d2(b, i).ok_or(NOT_CLF)?;
    if i + 2 != b.len() || om > 59 || h > 23 || m > 59 || s > 60 {
        return Err(NOT_CLF);
    }
    let offset = sign * (oh * 3600 + om * 60);
    let midnight = day.midnight(&b[..11], offset, || {
        let dom = d2(b, 0).ok_or(NOT_CLF)?;
        let month = month_number(&b[3..6]).ok_or(NOT_CLF)?;
        let year = d2(b, 7).zip(d2(b, 9)).ok_or(NOT_CLF)?;
        midnight_at(year.0 * 100 + year.1, month, dom, offset)
    })?;
    let t = at_time_of_day(midnight, h, m, s.min(59), nanos)?;
    day.remember_hour(b, 15, offset, h);
    Ok(t)
}

/// [`clf_time`] for a time in the hour that `day` remembers (its first 15 bytes,
/// `dd/Mon/yyyy:HH:`, are the same), or `None`.
#[inline(always)]
fn clf_same_hour(day: &DayCache, b: &[u8]) -> Option<i128> {
    if !day.hour_valid || b.get(17) != Some(&b':') {
        return None;
    }
    let (m, s) = (d2(b, 15)?, d2(b, 18)?);
    let mut i = 20;
    let mut nanos = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        nanos = fraction(b, &mut i)?;
    }
    if b.get(i) != Some(&b' ') {
        return None;
    }
    let sign = match b.get(i + 1) {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return None,
    };
    let oh = d2(b, i + 2)?;
    i += 4;
    if b.get(i) == Some(&b':') {
        i += 1;
    }
    let om = d2(b, i)?;
    if i + 2 != b.len() || om > 59 || m > 59 || s > 60 {
        return None;
    }
    day.same_hour(b, 15, sign * (oh * 3600 + om * 60), (m, s, nanos))
}

fn month_number(name: &[u8]) -> Option<i32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let lower = [
        name.first()?.to_ascii_lowercase(),
        name.get(1)?.to_ascii_lowercase(),
        name.get(2)?.to_ascii_lowercase(),
    ];
    MONTHS
        .iter()
        .position(|m| **m == lower)
        .and_then(|n| i32::try_from(n + 1).ok())
}

/// A decimal number of `unit`s since the epoch (`-`, digits, optional fraction and
/// exponent) in nanoseconds, truncated toward zero; `None` if malformed or outside
/// jiff's range.
fn parse_epoch(text: &str, unit: EpochUnit) -> Option<i128> {
    // At most this many significant digits are kept; later ones are dropped (27 digits
    // of seconds are far below a nanosecond), so `digits * unit` cannot overflow.
    const KEEP: u32 = 27;
    let b = text.as_bytes();
    let mut i = 0;
    let negative = b.first() == Some(&b'-');
    if negative {
        i = 1;
    }
    let mut digits: i128 = 0;
    let mut kept = 0u32;
    let mut exp: i64 = 0;
    let mut any = false;
    while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
        any = true;
        if kept < KEEP {
            digits = digits * 10 + i128::from(d - b'0');
            kept += u32::from(digits != 0);
        } else {
            exp += 1;
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if kept < KEEP {
                digits = digits * 10 + i128::from(d - b'0');
                kept += u32::from(digits != 0);
                exp -= 1;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        let negative_exp = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut e: i64 = 0;
        while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            e = (e * 10 + i64::from(d - b'0')).min(100_000);
            i += 1;
        }
        if i == start {
            return None;
        }
        exp += if negative_exp { -e } else { e };
    }
    if i != b.len() {
        return None;
    }
    let mut nanos = digits * unit.nanos();
    if exp >= 0 {
        for _ in 0..exp {
            if nanos == 0 {
                break;
            }
            nanos = nanos.checked_mul(10)?;
        }
    } else if exp < -38 {
        nanos = 0;
    } else {
        nanos /= 10i128.pow(u32::try_from(-exp).ok()?);
    }
    if negative {
        nanos = -nanos;
    }
    let range = Timestamp::MIN.as_nanosecond()..=Timestamp::MAX.as_nanosecond();
    range.contains(&nanos).then_some(nanos)
}

/// `text` for an error message: its `Debug` form is quoted and escaped like a `str`'s,
/// cut with `…` after 40 characters of output, so that a message stays short whatever
/// the line holds.
fn excerpt(text: &str) -> Excerpt<'_> {
    Excerpt(text)
}

struct Excerpt<'a>(&'a str);

impl fmt::Debug for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        let mut width = 0;
        for c in self.0.chars() {
            let escaped = c.escape_debug();
            let n = if c == '\'' { 1 } else { escaped.len() };
            if width + n > 40 {
                f.write_char('…')?;
                break;
            }
            width += n;
            if c == '\'' {
                f.write_char(c)?;
            } else {
                write!(f, "{escaped}")?;
            }
        }
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLF: &str = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?token=abc HTTP/1.0" 200 2326 "http://ref" "Mozilla/4.08""#;

    fn json(spec: &str) -> Parser {
        Parser::new(&Mapping::parse(Format::JsonLines, spec).unwrap())
    }

    fn combined(spec: &str) -> Parser {
        Parser::new(&Mapping::parse(Format::Combined, spec).unwrap())
    }

    /// `(time, attrs)` of a line, owned.
    fn parse(p: &mut Parser, line: &str) -> (i128, Vec<(String, String)>) {
        let r = p.parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let attrs = r
            .attrs()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        (r.time_unix_nanos, attrs)
    }

    fn get(p: &mut Parser, line: &str, name: &str) -> Option<String> {
        let r = p.parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        r.get(name).map(str::to_owned)
    }

    fn err(p: &mut Parser, line: &str) -> LineError {
        match p.parse(line) {
            Ok(r) => panic!("{line:?} parsed: {r:?}"),
            Err(e) => e,
        }
    }

    fn jiff_nanos(rfc3339: &str) -> i128 {
        rfc3339.parse::<Timestamp>().unwrap().as_nanosecond()
    }

    fn jiff_clf_nanos(clf: &str) -> i128 {
        jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S %z", clf)
            .unwrap()
            .to_timestamp()
            .unwrap()
            .as_nanosecond()
    }

    // ---- JSON lines -----------------------------------------------------------------------

    #[test]
    fn json_default_mapping() {
        let mut p = Parser::with_defaults(Format::JsonLines);
        let line = r#"{"time":"2026-11-22T10:00:00Z","method":"GET","path":"/v1/x","client":"10.0.0.1","token":"t1","tenant":"acme","user":"u","company":"c","other":"x"}"#;
        let (t, attrs) = parse(&mut p, line);
        assert_eq!(t, jiff_nanos("2026-11-22T10:00:00Z"));
        let expect = [
            ("method", "GET"),
            ("route", "/v1/x"),
            ("client", "10.0.0.1"),
            ("token", "t1"),
            ("tenant", "acme"),
            ("user", "u"),
            ("company", "c"),
        ];
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(attrs, expect);
    }

    #[test]
    fn json_missing_attribute_is_absent() {
        let mut p = Parser::with_defaults(Format::JsonLines);
        let (_, attrs) = parse(&mut p, r#"{"time":0,"token":"t"}"#);
        assert_eq!(attrs, vec![("token".to_owned(), "t".to_owned())]);
        let (_, attrs) = parse(&mut p, r#"  { "time" : 0 }  "#);
        assert!(attrs.is_empty());
    }

    #[test]
    fn json_host_attributes_and_shared_fields() {
        let mut p = json("region=dc,client=user,time=ts");
        let line = r#"{"ts":1,"dc":"eu-1","user":"bob"}"#;
        let (t, attrs) = parse(&mut p, line);
        assert_eq!(t, 1_000_000_000);
        let attrs: Vec<(&str, &str)> = attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            attrs,
            [("client", "bob"), ("user", "bob"), ("region", "eu-1")]
        );
    }

    #[test]
    fn json_escapes_are_decoded() {
        let mut p = Parser::with_defaults(Format::JsonLines);
        let cases = [
            r#""a\"b\\c\/d""#,
            r#""\b\f\n\r\t""#,
            r#""caf\u00e9 \u00E9""#,
            r#""\ud83d\ude00 smile""#,
            r#""\u0000 nul""#,
            r#""plain ünïcödé 😀""#,
            r#""""#,
        ];
        for raw in cases {
            let expect: String = serde_json::from_str(raw).unwrap();
            let line = format!(r#"{{"time":0,"token":{raw}}}"#);
            assert_eq!(
                get(&mut p, &line, "token").as_deref(),
                Some(&*expect),
                "{raw}"
            );
        }
        // An escaped key still matches its field.
        let line = r#"{"\u0074oken":"x","ti\u006de":5}"#;
        let (t, attrs) = parse(&mut p, line);
        assert_eq!(t, 5_000_000_000);
        assert_eq!(attrs, vec![("token".to_owned(), "x".to_owned())]);
        // Several escaped values share the buffer.
        let line = r#"{"time":0,"token":"a\tb","tenant":"c\nd","user":"e\"f"}"#;
        let r = p.parse(line).unwrap();
        assert_eq!(r.get("token"), Some("a\tb"));
        assert_eq!(r.get("tenant"), Some("c\nd"));
        assert_eq!(r.get("user"), Some("e\"f"));
    }

    #[test]
    fn json_bad_escapes_are_errors() {
        let mut p = Parser::with_defaults(Format::JsonLines);
        for raw in [
            r#""\x41""#,
            r#""\u12""#,
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
        ] {
            let line = format!(r#"{{"time":0,"token":{raw}}}"#);
            let e = err(&mut p, &line);
            assert_eq!(e.kind, LineErrorKind::Syntax, "{raw}");
            assert!(e.message.contains("escape"), "{raw}: {}", e.message);
        }
        // Unmapped fields are skipped without decoding them.
        assert!(p.parse(r#"{"time":0,"other":"\x"}"#).is_ok());
    }

    #[test]
    fn json_numbers_literals_and_nested_values() {
        let mut p = json("n=n,f=f,t=t,z=z,o=o,a=a");
        let line = r#"{"time":0,"n":-12.5e3,"t":true,"f":false,"z":null,"o":{"a":[1,{"b":"}]\""}],"c":{}},"a":[[],[{}],"[{"]}"#;
        let (_, attrs) = parse(&mut p, line);
        let attrs: Vec<(&str, &str)> = attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(attrs, [("n", "-12.5e3"), ("f", "false"), ("t", "true")]);
        for bad in ["01", "1.", "-", "1e", ".5", "+1", "1.e3"] {
            let line = format!(r#"{{"time":0,"n":{bad}}}"#);
            assert_eq!(err(&mut p, &line).kind, LineErrorKind::Syntax, "{bad}");
        }
    }

    #[test]
    fn json_duplicate_field_last_wins() {
        let mut p = Parser::with_defaults(Format::JsonLines);
        let line = r#"{"time":1,"token":"a","token":"b","time":2}"#;
        let (t, attrs) = parse(&mut p, line);
        assert_eq!(t, 2_000_000_000);
        assert_eq!(attrs, vec![("token".to_owned(), "b".to_owned())]);
        let line = r#"{"time":1,"token":"a","token":null}"#;
        assert_eq!(parse(&mut p, line).1, vec![]);
    }

    #[test]
    fn json_syntax_errors() {
        let mut p = Parser::with_defaults(Format::JsonLines);
        let cases = [
            ("[1,2]", "line is not a JSON object"),
            ("hello", "line is not a JSON object"),
            (r#"{"time":0} x"#, "unexpected text after the JSON object"),
            (r#"{"time" 0}"#, "expected ':' after a field name"),
            (r#"{"time":0,}"#, "expected a field name"),
            (r#"{"time":0 "a":1}"#, "expected ',' or '}'"),
            (r#"{"time":0,"a":"b}"#, "unterminated string"),
            (r#"{"time":0,"a"#, "unterminated field name"),
            (r#"{"time":0,"a":[1,2}"#, "mismatched bracket"),
            (r#"{"time":0,"a":[1,2"#, "unclosed object or array"),
            (r#"{"time":0,"a":nul}"#, "invalid value"),
            (r#"{"time":"#, "line ends where a value should be"),
            (r#"{"time":0"#, "expected ',' or '}'"),
        ];
        for (line, why) in cases {
            let e = err(&mut p, line);
            assert_eq!(e.kind, LineErrorKind::Syntax, "{line}: {e}");
            assert!(e.message.starts_with(why), "{line}: {e}");
        }
        let deep = format!(r#"{{"time":0,"a":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert!(err(&mut p, &deep).message.contains("nested too deeply"));
        let ok = format!(r#"{{"time":0,"a":{}{}}}"#, "[".repeat(128), "]".repeat(128));
        assert!(p.parse(&ok).is_ok());
    }

    #[test]
    fn json_time_forms() {
        let mut p = Parser::with_defaults(Format::JsonLines);
        let rfc = [
            "2026-11-22T10:00:00Z",
            "2026-11-22t10:00:00z",
            "2026-11-22 10:00:00Z",
            "2026-11-22T10:00:00.1Z",
            "2026-11-22T10:00:00.123Z",
            "2026-11-22T10:00:00.123456789Z",
            "2026-11-22T10:00:00-07:00",
            "2026-11-22T10:00:00+05:30",
            "2026-11-22T23:59:59.999+14:00",
            "2026-11-22T00:00:00-12:00",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5-01:00",
            "2024-02-29T12:00:00Z",
            "1969-12-31T23:59:59.5Z",
            "0001-01-01T00:00:00Z",
            "9999-12-30T00:00:00Z",
        ];
        for text in rfc {
            let line = format!(r#"{{"time":"{text}"}}"#);
            assert_eq!(parse(&mut p, &line).0, jiff_nanos(text), "{text}");
        }
        // Forms jiff does not read the same way, checked by hand.
        let base = jiff_nanos("2026-11-22T10:00:00+05:30");
        let line = r#"{"time":"2026-11-22T10:00:00+0530"}"#;
        assert_eq!(parse(&mut p, line).0, base);
        let line = r#"{"time":"2026-11-22T10:00:00.1234567891234+05:30"}"#;
        assert_eq!(parse(&mut p, line).0, base + 123_456_789);
        let line = r#"{"time":"2026-11-22T10:00:00\u002B05:30"}"#;
        assert_eq!(parse(&mut p, line).0, base);
    }

    #[test]
    fn json_epoch_times() {
        let cases: [(&str, &str, i128); 14] = [
            ("s", "1700000000", 1_700_000_000_000_000_000),
            ("s", "1700000000.123456789", 1_700_000_000_123_456_789),
            ("s", "1700000000.1234567899", 1_700_000_000_123_456_789),
            ("s", "1.7e9", 1_700_000_000_000_000_000),
            ("s", "17E+8", 1_700_000_000_000_000_000),
            ("s", "-1.5", -1_500_000_000),
            ("s", "0", 0),
            ("s", "\"1700000000.5\"", 1_700_000_000_500_000_000),
            ("ms", "1700000000123", 1_700_000_000_123_000_000),
            ("ms", "1700000000123.456", 1_700_000_000_123_456_000),
            ("ms", "1.700000000123e12", 1_700_000_000_123_000_000),
            ("us", "1700000000123456", 1_700_000_000_123_456_000),
            ("ns", "1700000000123456789", 1_700_000_000_123_456_789),
            ("ns", "1.5e-3", 0),
        ];
        for (unit, text, nanos) in cases {
            let mut p = json(&format!("time_unit={unit}"));
            let line = format!(r#"{{"time":{text}}}"#);
            assert_eq!(parse(&mut p, &line).0, nanos, "{unit} {text}");
        }
        let mut p = Parser::with_defaults(Format::JsonLines);
        for text in ["1e20", "-1e20", "253402300800"] {
            let line = format!(r#"{{"time":{text}}}"#);
            let e = err(&mut p, &line);
            assert_eq!(e.kind, LineErrorKind::InvalidTime, "{text}");
            assert!(e.message.contains("out of range"), "{text}: {e}");
        }
        let max = Timestamp::MAX.as_second();
        let line = format!(r#"{{"time":{max}}}"#);
        assert_eq!(parse(&mut p, &line).0, i128::from(max) * 1_000_000_000);
    }

    #[test]
    fn json_time_errors() {
        let mut p = Parser::with_defaults(Format::JsonLines);
        let cases = [
            (
                r#"{"token":"a"}"#,
                LineErrorKind::MissingTime,
                r#"no time field "time""#,
            ),
            (
                r#"{"time":null}"#,
                LineErrorKind::InvalidTime,
                r#"time field "time" is not a string or a number"#,
            ),
            (
                r#"{"time":{"s":1}}"#,
                LineErrorKind::InvalidTime,
                r#"time field "time" is not a string or a number"#,
            ),
            (
                r#"{"time":"xx"}"#,
                LineErrorKind::InvalidTime,
                r#"time "xx" is not RFC 3339"#,
            ),
            (
                r#"{"time":"2026-02-30T10:00:00Z"}"#,
                LineErrorKind::InvalidTime,
                r#"time "2026-02-30T10:00:00Z" is not a calendar date"#,
            ),
            (
                r#"{"time":"2025-02-29T10:00:00Z"}"#,
                LineErrorKind::InvalidTime,
                "is not a calendar date",
            ),
            (
                r#"{"time":"2026-11-22T24:00:00Z"}"#,
                LineErrorKind::InvalidTime,
                "is not RFC 3339",
            ),
            (
                r#"{"time":"2026-11-22T10:60:00Z"}"#,
                LineErrorKind::InvalidTime,
                "is not RFC 3339",
            ),
            (
                r#"{"time":"2026-11-22T10:00:61Z"}"#,
                LineErrorKind::InvalidTime,
                "is not RFC 3339",
            ),
            (
                r#"{"time":"2026-11-22T10:00:00"}"#,
                LineErrorKind::InvalidTime,
                "has no UTC offset",
            ),
            (
                r#"{"time":"2026-11-22T10:00:00+05:60"}"#,
                LineErrorKind::InvalidTime,
                "is not RFC 3339",
            ),
            (
                r#"{"time":"2026-11-22T10:00:00+26:00"}"#,
                LineErrorKind::InvalidTime,
                "out-of-range UTC offset",
            ),
            (
                r#"{"time":"2026-11-22T10:00:00.Z"}"#,
                LineErrorKind::InvalidTime,
                "is not RFC 3339",
            ),
            (
                r#"{"time":"2026-11-22T10:00:00Zjunk"}"#,
                LineErrorKind::InvalidTime,
                "is not RFC 3339",
            ),
            (
                r#"{"time":"2026-1-22T10:00:00Z"}"#,
                LineErrorKind::InvalidTime,
                "is not RFC 3339",
            ),
            (
                r#"{"time":"2026-13-01T10:00:00Z"}"#,
                LineErrorKind::InvalidTime,
                "is not a calendar date",
            ),
            (
                r#"{"time":"2026-00-01T10:00:00Z"}"#,
                LineErrorKind::InvalidTime,
                "is not a calendar date",
            ),
            (
                r#"{"time":"9999-12-31T23:00:00-10:00"}"#,
                LineErrorKind::InvalidTime,
                "is out of range",
            ),
        ];
        for (line, kind, why) in cases {
            let e = err(&mut p, line);
            assert_eq!(e.kind, kind, "{line}: {e}");
            assert!(e.message.contains(why), "{line}: {e}");
        }
        // The message quotes an excerpt, never a long value in full.
        let long = format!(r#"{{"time":"{}"}}"#, "y".repeat(10_000));
        assert!(err(&mut p, &long).message.len() < 100);
    }

    // ---- combined -------------------------------------------------------------------------

    #[test]
    fn combined_default_mapping() {
        let mut p = Parser::with_defaults(Format::Combined);
        let (t, attrs) = parse(&mut p, CLF);
        assert_eq!(t, 971_211_336_000_000_000);
        assert_eq!(t, jiff_clf_nanos("10/Oct/2000:13:55:36 -0700"));
        let attrs: Vec<(&str, &str)> = attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            attrs,
            [
                ("client", "127.0.0.1"),
                ("user", "frank"),
                ("method", "GET"),
                ("route", "/apache_pb.gif"),
                ("token", "abc"),
            ]
        );
    }

    #[test]
    fn combined_every_source() {
        let spec = "client=,user=,method=,route=,token=,tenant=,h=host,i=ident,u=user,t=time,\
                    m=method,p=path,q=query:q,s0=path_segment:0,s1=path_segment:1,\
                    s5=path_segment:5,pr=protocol,st=status,b=bytes,r=referer,ua=user_agent";
        let mut p = combined(spec);
        let line = r#"::1 id frank [10/Oct/2000:13:55:36 +0530] "POST /v1/acme/items?q=x%20y HTTP/1.1" 201 15 "http://ref/" "curl/8.0""#;
        let (t, attrs) = parse(&mut p, line);
        assert_eq!(t, jiff_clf_nanos("10/Oct/2000:13:55:36 +0530"));
        let attrs: Vec<(&str, &str)> = attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            attrs,
            [
                ("h", "::1"),
                ("i", "id"),
                ("u", "frank"),
                ("t", "10/Oct/2000:13:55:36 +0530"),
                ("m", "POST"),
                ("p", "/v1/acme/items"),
                ("q", "x y"),
                ("s0", "v1"),
                ("s1", "acme"),
                ("pr", "HTTP/1.1"),
                ("st", "201"),
                ("b", "15"),
                ("r", "http://ref/"),
                ("ua", "curl/8.0"),
            ]
        );
    }

    #[test]
    fn common_format_and_dashes() {
        let mut p = combined("b=bytes,r=referer,ua=user_agent,i=ident");
        let line = r#"10.1.2.3 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 304 -"#;
        let (_, attrs) = parse(&mut p, line);
        let attrs: Vec<(&str, &str)> = attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            attrs,
            [("client", "10.1.2.3"), ("method", "GET"), ("route", "/")]
        );
        // Referer without user agent; a `-` referer; trailing nginx fields; `\r\n`.
        let line = r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 5 "-""#;
        assert_eq!(get(&mut p, line, "r"), None);
        let line = "h - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 5 \"ref\" \"ua\" \"1.2.3.4\" 0.003\r\n";
        assert_eq!(get(&mut p, line, "ua").as_deref(), Some("ua"));
        assert_eq!(get(&mut p, line, "b").as_deref(), Some("5"));
        // Runs of spaces between fields.
        let line = r#"h  -  u  [10/Oct/2000:13:55:36 -0700]  "GET /x HTTP/1.0"  200  5"#;
        assert_eq!(get(&mut p, line, "route").as_deref(), Some("/x"));
        assert_eq!(get(&mut p, line, "user").as_deref(), Some("u"));
    }

    #[test]
    fn combined_query_parameters() {
        let mut p = combined("a=query:a,b=query:b,c=query:c,d=query:d k,e=query:e,f=query:f");
        let line =
            |q: &str| format!(r#"h - - [10/Oct/2000:13:55:36 -0700] "GET /p?{q} HTTP/1.0" 200 1"#);
        let cases: [(&str, &[(&str, &str)]); 7] = [
            ("a=1&b=2", &[("a", "1"), ("b", "2")]),
            ("a=x+y%2Bz&b=%e2%82%AC", &[("a", "x y+z"), ("b", "€")]),
            ("a=%zz%4&b=100%", &[("a", "%zz%4"), ("b", "100%")]),
            ("a=%ff%fe", &[("a", "\u{fffd}\u{fffd}")]),
            (
                "a=first&a=second&c&e=",
                &[("a", "first"), ("c", ""), ("e", "")],
            ),
            ("d+k=1&%61=2", &[("a", "2"), ("d", "1")]),
            ("f=1#a=2", &[("f", "1")]),
        ];
        for (q, expect) in cases {
            let (_, attrs) = parse(&mut p, &line(q));
            let got: Vec<(&str, &str)> = attrs
                .iter()
                .filter(|(k, _)| k.len() == 1)
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(got, expect, "{q}");
        }
    }

    #[test]
    fn combined_paths_and_requests() {
        let mut p = combined("s0=path_segment:0,s1=path_segment:1,s2=path_segment:2,pr=protocol");
        let line = |req: &str| format!(r#"h - - [10/Oct/2000:13:55:36 -0700] "{req}" 400 0"#);
        let cases: [(&str, &[(&str, &str)]); 9] = [
            (
                "GET /a/b/c HTTP/1.1",
                &[
                    ("method", "GET"),
                    ("route", "/a/b/c"),
                    ("s0", "a"),
                    ("s1", "b"),
                    ("s2", "c"),
                    ("pr", "HTTP/1.1"),
                ],
            ),
            (
                "GET /a//c/ HTTP/1.1",
                &[
                    ("method", "GET"),
                    ("route", "/a//c/"),
                    ("s0", "a"),
                    ("s2", "c"),
                    ("pr", "HTTP/1.1"),
                ],
            ),
            (
                "GET / HTTP/1.1",
                &[("method", "GET"), ("route", "/"), ("pr", "HTTP/1.1")],
            ),
            ("GET /x", &[("method", "GET"), ("route", "/x"), ("s0", "x")]),
            ("GET", &[("method", "GET")]),
            ("-", &[]),
            ("", &[]),
            (
                "GET http://example.com/v/1?a=b HTTP/1.1",
                &[
                    ("method", "GET"),
                    ("route", "/v/1"),
                    ("s0", "v"),
                    ("s1", "1"),
                    ("pr", "HTTP/1.1"),
                ],
            ),
            (
                "CONNECT example.com:443 HTTP/1.1",
                &[
                    ("method", "CONNECT"),
                    ("route", "example.com:443"),
                    ("s0", "example.com:443"),
                    ("pr", "HTTP/1.1"),
                ],
            ),
        ];
        for (req, expect) in cases {
            let (_, attrs) = parse(&mut p, &line(req));
            let got: Vec<(&str, &str)> = attrs
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "client"))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(got, expect, "{req}");
        }
        assert_eq!(
            get(&mut p, &line("GET http://example.com HTTP/1.1"), "route").as_deref(),
            Some("/")
        );
        let e = err(&mut p, &line("\\x16\\x03\\x01 HTTP/1.1"));
        assert_eq!(e.kind, LineErrorKind::Syntax);
        assert!(e.message.contains("does not start with a method"), "{e}");
    }

    #[test]
    fn combined_quoted_escapes() {
        let mut p = combined("r=referer,ua=user_agent");
        let line = r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "a\"b\\c" "x\x22y \xc3\xa9 \t \q""#;
        let r = p.parse(line).unwrap();
        assert_eq!(r.get("r"), Some("a\"b\\c"));
        assert_eq!(r.get("ua"), Some("x\"y é \t \\q"));
        drop(r);
        // Escapes that decode to bytes that are not UTF-8 leave the field as written.
        let line = r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "-" "\xff\xfe""#;
        assert_eq!(get(&mut p, line, "ua").as_deref(), Some(r"\xff\xfe"));
        // An escaped quote inside the request does not end it.
        let line = r#"h - - [10/Oct/2000:13:55:36 -0700] "GET /a\"b HTTP/1.0" 200 1"#;
        assert_eq!(get(&mut p, line, "route").as_deref(), Some(r#"/a\"b"#));
    }

    #[test]
    fn combined_times() {
        let mut p = combined("");
        let times = [
            "10/Oct/2000:13:55:36 -0700",
            "10/oct/2000:13:55:36 -0700",
            "01/Jan/1970:00:00:00 +0000",
            "31/Dec/1969:23:59:59 +0000",
            "29/Feb/2024:23:59:59 +1400",
            "01/Mar/2024:00:00:00 -1200",
            "31/Dec/2016:23:59:60 +0000",
        ];
        for text in times {
            let line = format!(r#"h - - [{text}] "GET / HTTP/1.0" 200 1"#);
            let expect = jiff_clf_nanos(&text.replace(":60 ", ":59 "));
            assert_eq!(parse(&mut p, &line).0, expect, "{text}");
        }
        let line = r#"h - - [10/Oct/2000:13:55:36.25 -07:00] "GET / HTTP/1.0" 200 1"#;
        assert_eq!(
            parse(&mut p, line).0,
            jiff_clf_nanos("10/Oct/2000:13:55:36 -0700") + 250_000_000
        );
    }

    #[test]
    fn combined_errors() {
        let mut p = Parser::with_defaults(Format::Combined);
        let cases = [
            (
                r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0 200 1"#,
                LineErrorKind::Syntax,
                "missing closing quote of the request",
            ),
            (
                r#"h - - [10/Oct/2000:13:55:36 -0700 "GET / HTTP/1.0" 200 1"#,
                LineErrorKind::Syntax,
                "missing closing ']' of the time",
            ),
            (
                r#"h - - 10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#,
                LineErrorKind::Syntax,
                "expected '[' before the time",
            ),
            (
                r#"h - - [10/Oct/2000:13:55:36 -0700] GET / HTTP/1.0 200 1"#,
                LineErrorKind::Syntax,
                "expected the quoted request",
            ),
            (
                r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 2000 1"#,
                LineErrorKind::Syntax,
                "status \"2000\" is not a 3-digit number",
            ),
            (
                r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200"#,
                LineErrorKind::Syntax,
                "byte count \"\" is not a number",
            ),
            (
                r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1k"#,
                LineErrorKind::Syntax,
                "byte count \"1k\"",
            ),
            (
                r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "ref"#,
                LineErrorKind::Syntax,
                "missing closing quote of the referer",
            ),
            (
                r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "ref" "ua"#,
                LineErrorKind::Syntax,
                "missing closing quote of the user agent",
            ),
            (
                r#" - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#,
                LineErrorKind::Syntax,
                "line does not start with a host",
            ),
            (
                r#"h - - [10/Okt/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#,
                LineErrorKind::InvalidTime,
                "is not dd/Mon/yyyy:HH:MM:SS ±hhmm",
            ),
            (
                r#"h - - [31/Apr/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#,
                LineErrorKind::InvalidTime,
                "is not a calendar date",
            ),
            (
                r#"h - - [10/Oct/2000:13:55:36] "GET / HTTP/1.0" 200 1"#,
                LineErrorKind::InvalidTime,
                "is not dd/Mon/yyyy",
            ),
            (
                r#"h - - [10/Oct/2000:25:55:36 -0700] "GET / HTTP/1.0" 200 1"#,
                LineErrorKind::InvalidTime,
                "is not dd/Mon/yyyy",
            ),
            (
                r#"h - - [10/Oct/2000:13:55:36 -0760] "GET / HTTP/1.0" 200 1"#,
                LineErrorKind::InvalidTime,
                "is not dd/Mon/yyyy",
            ),
            (
                r#"h - - [10/Oct/2000:13:55:36 -0700x] "GET / HTTP/1.0" 200 1"#,
                LineErrorKind::InvalidTime,
                "is not dd/Mon/yyyy",
            ),
            (
                r#"{"time":"2026-11-22T10:00:00Z"}"#,
                LineErrorKind::Syntax,
                "expected '[' before the time",
            ),
        ];
        for (line, kind, why) in cases {
            let e = err(&mut p, line);
            assert_eq!(e.kind, kind, "{line}: {e}");
            assert!(e.message.contains(why), "{line}: {e}");
        }
    }

    // ---- both -----------------------------------------------------------------------------

    #[test]
    fn blank_lines_newlines_and_bytes() {
        for format in [Format::JsonLines, Format::Combined] {
            let mut p = Parser::with_defaults(format);
            for blank in ["", "   ", "\n", "\r\n", " \t \r\n"] {
                assert_eq!(err(&mut p, blank).kind, LineErrorKind::Blank, "{blank:?}");
            }
            let e = p.parse_bytes(b"{\"time\":\"\xff\"}").unwrap_err();
            assert_eq!(e.kind, LineErrorKind::InvalidUtf8);
            assert_eq!(e.message, "line is not UTF-8 (byte 9)");
        }
        let mut p = Parser::with_defaults(Format::JsonLines);
        let r = p
            .parse_bytes(b"{\"time\":1,\"token\":\"\xc3\xa9\"}\r\n")
            .unwrap();
        assert_eq!(
            (r.time_unix_nanos, r.get("token")),
            (1_000_000_000, Some("é"))
        );
    }

    #[test]
    fn day_cache_follows_date_and_offset_changes() {
        // One parser across changes of date and of offset must agree with jiff on the
        // whole timestamp, and with a fresh parser (empty cache) on every line.
        let rfc = [
            "2026-11-22T10:00:00Z",
            "2026-11-22T23:59:59.999999999Z",
            "2026-11-23T00:00:00Z",
            "2026-11-23T00:00:00+01:00",
            "2026-11-23T00:00:00-01:00",
            "2026-11-23T05:00:00-01:00",
            "2026-11-23T05:00:00+0100",
            "2026-12-31T23:59:59Z",
            "2027-01-01T00:00:00Z",
            "2027-01-01T00:00:00+05:30",
            "2026-11-22T10:00:00Z",
        ];
        let mut warm = Parser::with_defaults(Format::JsonLines);
        for text in rfc {
            let line = format!(r#"{{"time":"{text}"}}"#);
            let t = parse(&mut warm, &line).0;
            assert_eq!(
                t,
                parse(&mut Parser::with_defaults(Format::JsonLines), &line).0
            );
            let jiff_text = text.replace("+0100", "+01:00");
            assert_eq!(t, jiff_nanos(&jiff_text), "{text}");
            assert_eq!(&warm.day.date[..10], &text.as_bytes()[..10]);
        }
        let clf = [
            "10/Oct/2000:13:55:36 -0700",
            "10/Oct/2000:23:59:59 -0700",
            "11/Oct/2000:00:00:00 -0700",
            "11/Oct/2000:00:00:00 +0000",
            "11/Oct/2000:00:00:00 +0530",
            "31/Dec/2000:23:59:59 +0530",
            "01/Jan/2001:00:00:00 +0530",
            "10/Oct/2000:13:55:36 -0700",
        ];
        let mut warm = Parser::with_defaults(Format::Combined);
        for text in clf {
            let line = format!(r#"h - - [{text}] "GET / HTTP/1.0" 200 1"#);
            let t = parse(&mut warm, &line).0;
            assert_eq!(
                t,
                parse(&mut Parser::with_defaults(Format::Combined), &line).0
            );
            assert_eq!(t, jiff_clf_nanos(text), "{text}");
            assert_eq!(&warm.day.date[..11], &text.as_bytes()[..11]);
        }
        // A bad date does not disturb the cache.
        assert!(warm
            .parse(r#"h - - [31/Feb/2001:00:00:00 +0530] "GET / HTTP/1.0" 200 1"#)
            .is_err());
        assert_eq!(&warm.day.date[..11], b"10/Oct/2000");
    }

    #[test]
    fn warm_parsers_agree_with_fresh_ones() {
        // A parser learns the order of JSON field names and the last hour it read; one
        // parser carried across lines whose fields and times change in every way must
        // agree with a fresh parser on each line.
        let outcome = |p: &mut Parser, line: &str| match p.parse(line) {
            Ok(r) => Ok((
                r.time_unix_nanos,
                r.attrs()
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<Vec<_>>(),
            )),
            Err(e) => Err((e.kind, e.message)),
        };
        let json = [
            r#"{"time":"2026-11-22T10:00:00Z","token":"a","tenant":"b","n":1}"#,
            r#"{"time":"2026-11-22T10:59:59.5Z","token":"a","tenant":"b","n":12}"#,
            r#"{"time":"2026-11-22T11:00:00Z","tenant":"b","token":"a","n":123}"#,
            r#"{"time":"2026-11-22T11:00:00+01:00","token":"a","user":"u","tenant":"b"}"#,
            r#"{"time":"2026-11-22T11:60:00Z","token":"a","tenant":"b"}"#,
            r#"{"time":"2026-11-22T11:05:61Z","token":"a","tenant":"b"}"#,
            r#"{"time":"2026-11-22T11:05:00Z","token":"a","tenant":"b","n":1234}"#,
            r#"{"time":"2026-11-22T11:05:00Z","tok":"a","tenant":"b","n":1}"#,
            r#"{"time":"2026-11-22T11:05:00Z" , "token" :"a","tenant": "b","n":1 }"#,
            r#"{"time":"2026-11-22T11:05:00Z","\u0074oken":"e","tenant":"b\"c"}"#,
            r#"{"time":"2026-11-22T11:05:00Z","token":"a","tenant":"b","n":1"#,
            r#"{"time":"2026-11-22T11:05:00Z","token":"a","tenant"#,
            r#"{"time":"2026-11-22T11:05:00Z","token":"a","a_rather_long_name":{"x":[1]}}"#,
            r#"{"time":"2026-11-23T11:05:00Z","token":"a","a_rather_long_name":1}"#,
            r#"{"token":"a","time":"2026-11-23T11:05:00.000000001Z","n":12345678901}"#,
            r#"{"time":"2026-11-22T10:00:00Z","token":"a","tenant":"b","n":1}"#,
        ];
        let mut warm = json_mapping_parser();
        for _ in 0..2 {
            for line in json {
                let fresh = outcome(&mut json_mapping_parser(), line);
                assert_eq!(outcome(&mut warm, line), fresh, "{line}");
            }
        }
        // Fields in no fixed order: the parser stops learning for a while, and still
        // agrees.
        let names = ["token", "tenant", "user", "n", "company", "client"];
        let mut warm = json_mapping_parser();
        for k in 0..200usize {
            let mut fields: Vec<String> = names
                .iter()
                .enumerate()
                .filter(|(j, _)| (k + j) % 5 != 0)
                .map(|(j, name)| format!(r#""{name}":"v{}""#, (k * 7 + j) % 11))
                .collect();
            let turn = k % fields.len();
            fields.rotate_left(turn);
            let line = format!(
                r#"{{"time":"2026-11-22T10:{:02}:00Z",{}}}"#,
                k % 60,
                fields.join(",")
            );
            let fresh = outcome(&mut json_mapping_parser(), &line);
            assert_eq!(outcome(&mut warm, &line), fresh, "{line}");
        }
        assert!(!warm.schema.active());
        let clf = [
            "01/Nov/2026:10:00:00 +0000",
            "01/Nov/2026:10:59:59 +0000",
            "01/Nov/2026:10:59:60 +0000",
            "01/Nov/2026:10:60:00 +0000",
            "01/Nov/2026:10:05:00 -0700",
            "01/Nov/2026:10:05:00.25 -07:00",
            "01/Nov/2026:11:00:00 -0700",
            "01/nov/2026:11:00:00 -0700",
            "02/Nov/2026:11:00:00 -0700",
            "02/Nov/2026:11:00:00 +0000x",
        ];
        let mut warm = Parser::with_defaults(Format::Combined);
        for _ in 0..2 {
            for text in clf {
                let line = format!(r#"h - - [{text}] "GET /?token=a&b=c HTTP/1.0" 200 1"#);
                let fresh = outcome(&mut Parser::with_defaults(Format::Combined), &line);
                assert_eq!(outcome(&mut warm, &line), fresh, "{line}");
            }
        }
    }

    fn json_mapping_parser() -> Parser {
        json("n=n,user=user,company=company,long=a_rather_long_name")
    }

    #[test]
    fn records_reuse_the_attribute_list() {
        let mut p = Parser::with_defaults(Format::Combined);
        drop(p.parse(CLF).unwrap());
        let ptr = p.home.as_ptr();
        let cap = p.home.capacity();
        assert!(cap >= 5);
        for _ in 0..3 {
            let r = p.parse(CLF).unwrap();
            assert_eq!(r.attrs().len(), 5);
        }
        assert_eq!((p.home.as_ptr(), p.home.capacity()), (ptr, cap));
        assert!(p.home.is_empty());
    }

    #[test]
    fn error_excerpts_stay_short() {
        assert_eq!(format!("{:?}", excerpt("a\"b'c")), r#""a\"b'c""#);
        assert_eq!(
            format!("{:?}", excerpt(&"x".repeat(40))),
            format!("\"{}\"", "x".repeat(40))
        );
        assert_eq!(
            format!("{:?}", excerpt(&"x".repeat(41))),
            format!("\"{}…\"", "x".repeat(40))
        );
        let controls = format!("{:?}", excerpt(&"\u{1f}".repeat(100)));
        assert!(controls.chars().count() <= 44, "{controls}");
        let mut p = Parser::with_defaults(Format::Combined);
        let line = format!("h - - [{}] \"GET / HTTP/1.0\" 200 1", "\u{1}".repeat(1000));
        assert!(err(&mut p, &line).message.chars().count() < 100);
    }

    // ---- mapping --------------------------------------------------------------------------

    #[test]
    fn mapping_spec() {
        let m = Mapping::parse(
            Format::Combined,
            " token = query:api_key , tenant=path_segment:1,user=,region=referer, ",
        )
        .unwrap();
        let attrs: Vec<(&str, String)> = m.attrs().map(|(n, s)| (n, s.to_string())).collect();
        let attrs: Vec<(&str, &str)> = attrs.iter().map(|(n, s)| (*n, s.as_str())).collect();
        assert_eq!(
            attrs,
            [
                ("client", "host"),
                ("method", "method"),
                ("route", "path"),
                ("token", "query:api_key"),
                ("tenant", "path_segment:1"),
                ("region", "referer"),
            ]
        );
        assert_eq!(m.time(), &Source::Time);
        assert_eq!(
            m.to_string(),
            "user=,client=host,method=method,route=path,token=query:api_key,\
             tenant=path_segment:1,region=referer,time=time"
        );
        assert_eq!(Mapping::parse(Format::Combined, &m.to_string()).unwrap(), m);

        let m = Mapping::parse(Format::JsonLines, "time=ts,time_unit=ms,route=uri,x=a:b").unwrap();
        assert_eq!(m.time(), &Source::Field("ts".to_owned()));
        assert_eq!(m.epoch_unit(), EpochUnit::Millis);
        assert_eq!(
            m.to_string(),
            "method=method,route=uri,client=client,token=token,tenant=tenant,user=user,\
             company=company,x=a:b,time=ts,time_unit=ms"
        );
        assert_eq!(
            Mapping::parse(Format::JsonLines, &m.to_string()).unwrap(),
            m
        );
        assert_eq!(
            Mapping::new(Format::Combined).to_string(),
            "client=,user=,method=,route=,token=,tenant=,time=time"
        );
        assert_eq!(
            Mapping::parse(Format::JsonLines, "").unwrap(),
            Mapping::defaults(Format::JsonLines)
        );
    }

    #[test]
    fn mapping_errors() {
        let cases = [
            (
                Format::Combined,
                "token=query_token",
                "unknown source \"query_token\" for combined logs (expected host, ident",
            ),
            (Format::Combined, "token=query:", "needs a parameter name"),
            (
                Format::Combined,
                "t=path_segment:x",
                "\"x\" is not a segment number",
            ),
            (
                Format::Combined,
                "t=path_segment:-1",
                "is not a segment number",
            ),
            (
                Format::Combined,
                "time=host",
                "the time of a combined line comes from `time`",
            ),
            (
                Format::Combined,
                "time_unit=ms",
                "time_unit only applies to JSON lines",
            ),
            (Format::JsonLines, "time_unit=h", "unknown time unit \"h\""),
            (Format::JsonLines, "time=", "the time cannot be dropped"),
            (Format::JsonLines, "token", "is not ATTRIBUTE=SOURCE"),
            (Format::JsonLines, "=token", "attribute name \"\" is empty"),
        ];
        for (format, spec, why) in cases {
            let e = Mapping::parse(format, spec).unwrap_err();
            assert!(e.message.contains(why), "{spec}: {e}");
        }
        let mut m = Mapping::new(Format::JsonLines);
        assert!(m.set("token", Source::Host).is_err());
        assert!(m.set("token", Source::Field(String::new())).is_err());
        assert!(m.set("a,b", Source::Field("x".to_owned())).is_err());
        assert!(m.set("time_unit", Source::Field("x".to_owned())).is_err());
        let mut m = Mapping::new(Format::Combined);
        assert!(m.set("token", Source::Field("token".to_owned())).is_err());
        assert!(m.set("token", Source::Query(String::new())).is_err());
        assert_eq!("json".parse::<Format>(), Ok(Format::JsonLines));
        assert_eq!("common".parse::<Format>(), Ok(Format::Combined));
        assert!("xml".parse::<Format>().is_err());
    }

    #[test]
    fn mapping_in_code() {
        let mut m = Mapping::new(Format::JsonLines);
        m.set("token", Source::Field("api_key".to_owned()))
            .unwrap()
            .set("token", Source::Field("key".to_owned()))
            .unwrap()
            .set("tenant", Source::Field("org".to_owned()))
            .unwrap()
            .set("time", Source::Field("@timestamp".to_owned()))
            .unwrap()
            .set_epoch_unit(EpochUnit::Millis)
            .remove("nothing");
        let mut p = Parser::new(&m);
        let (t, attrs) = parse(
            &mut p,
            r#"{"@timestamp":1500,"key":"k","api_key":"old","org":"o"}"#,
        );
        assert_eq!(t, 1_500_000_000);
        assert_eq!(
            attrs,
            vec![
                ("token".to_owned(), "k".to_owned()),
                ("tenant".to_owned(), "o".to_owned())
            ]
        );
        m.remove("token");
        assert_eq!(m.attrs().count(), 1);
    }
}
