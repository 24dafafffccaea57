//! The [`Parser`]: one line in, one [`Record`] out, through the scanner of the mapping's
//! format.
use super::combined::CombinedScanner;
use super::error::{LineError, LineErrorKind};
use super::json::JsonScanner;
use super::mapping::{Format, Mapping};
use super::record::{Record, Val, Values};
use super::time::DayCache;

/// Turns access-log lines into [`Record`]s.
///
/// Holds the compiled mapping, a buffer for decoded values, the list that records
/// borrow, and a cache of the last calendar date, so one parser per thread reading one
/// log in order is the fast way to use it.
#[derive(Debug)]
pub struct Parser {
    format: Format,
    names: Vec<Box<str>>,
    /// JSON lines: the fields read and the order of names learnt.
    pub(super) json: JsonScanner,
    /// Combined: the sources read.
    combined: CombinedScanner,
    values: Values,
    pub(super) home: Vec<(&'static str, &'static str)>,
    pub(super) day: DayCache,
}

impl Parser {
    /// A parser for the mapping's format.
    pub fn new(mapping: &Mapping) -> Parser {
        let names: Vec<Box<str>> = mapping.attrs().map(|(n, _)| n.into()).collect();
        Parser {
            format: mapping.format(),
            json: JsonScanner::new(mapping),
            combined: CombinedScanner::new(mapping),
            values: Values::new(names.len()),
            home: Vec::with_capacity(names.len()),
            names,
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
        self.values.buf.clear();
        // `vals` is all absent here: `record` resets it, and so does a failed scan.
        let time = match self.format {
            Format::JsonLines => self.json.scan(line, &mut self.values, &mut self.day),
            Format::Combined => self.combined.scan(line, &mut self.values, &mut self.day),
        };
        match time {
            Ok(time) => Ok(self.record(line, time)),
            Err(e) => {
                self.values.vals.fill(Val::ABSENT);
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
            values: Values { vals, buf },
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
        Record::new(time, attrs, home)
    }
}
