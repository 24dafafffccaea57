//! What to read from a log line: the log [`Format`], the [`Source`] of each request
//! attribute, the [`EpochUnit`] of a numeric time, and the [`Mapping`] that ties them
//! together (with its spec syntax, `ATTRIBUTE=SOURCE,...`).
use std::fmt;
use std::str::FromStr;

use super::error::{excerpt, MappingError};

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
/// [`Format::Combined`]; see the [module docs](super#formats) for what each one yields.
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
    /// Parses a source as written in a [mapping spec](super#mapping-spec).
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
    pub(super) fn nanos(self) -> i128 {
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
/// from a [spec string](super#mapping-spec) with [`Mapping::parse`]. Attributes keep the
/// order in which they were first set; a [`Record`](crate::log::Record) lists them in that order.
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
    /// [syntax](super#mapping-spec)).
    pub fn parse(format: Format, spec: &str) -> Result<Mapping, MappingError> {
        let mut m = Mapping::defaults(format);
        m.apply(spec)?;
        Ok(m)
    }

    /// Applies the items of a [spec string](super#mapping-spec) to this mapping.
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
