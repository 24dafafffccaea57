//! The record of a parsed line ([`Record`]), and how the scanners note where each
//! attribute's value is ([`Val`], gathered in [`Values`]) until the record is built.
use std::fmt;

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
    /// The record of a line at `time`: `attrs`, whose list goes back to `home` when the
    /// record is dropped.
    #[inline]
    pub(super) fn new(
        time_unix_nanos: i128,
        attrs: Vec<(&'a str, &'a str)>,
        home: &'a mut Vec<(&'static str, &'static str)>,
    ) -> Record<'a> {
        Record {
            time_unix_nanos,
            attrs,
            home,
        }
    }

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
pub(super) struct Val(u64);

/// The strings that [`Val::constant`] can stand for.
const CONSTS: [&str; 3] = ["true", "false", "/"];

impl Val {
    pub(super) const ABSENT: Val = Val(0);
    pub(super) const TRUE: Val = Val::constant(0);
    pub(super) const FALSE: Val = Val::constant(1);
    pub(super) const ROOT: Val = Val::constant(2);

    const LINE: u64 = 1 << 62;
    const BUF: u64 = 2 << 62;
    const CONST: u64 = 3 << 62;
    /// The largest offset a span can hold.
    pub(super) const MAX: usize = (1 << 31) - 1;

    #[inline(always)]
    fn span(kind: u64, s: usize, e: usize) -> Val {
        if s <= Val::MAX && e <= Val::MAX {
            Val(kind | s as u64 | ((e as u64) << 31))
        } else {
            Val::ABSENT
        }
    }

    /// `line[s..e]`; [`Parser::parse`](super::Parser::parse) rejects lines longer than [`Val::MAX`].
    #[inline(always)]
    pub(super) fn line(s: usize, e: usize) -> Val {
        Val::span(Val::LINE, s, e)
    }

    /// `buf[s..e]`. The buffer holds at most a few copies of a line, so it would pass
    /// 2 GiB only for a line near that size with several attributes decoding the same
    /// long value; such a value is dropped.
    #[inline(always)]
    pub(super) fn buf(s: usize, e: usize) -> Val {
        Val::span(Val::BUF, s, e)
    }

    /// `CONSTS[i]`.
    const fn constant(i: u64) -> Val {
        Val(Val::CONST | i)
    }

    #[inline(always)]
    pub(super) fn resolve<'a>(self, line: &'a str, buf: &'a str) -> Option<&'a str> {
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

/// What the scan of a line found: for each attribute slot where its value is, and the
/// buffer of decoded values that those spans may point into. All absent between lines.
#[derive(Debug)]
pub(super) struct Values {
    pub(super) vals: Vec<Val>,
    pub(super) buf: String,
}

impl Values {
    /// Room for `n` attributes, all absent.
    pub(super) fn new(n: usize) -> Values {
        Values {
            vals: vec![Val::ABSENT; n],
            buf: String::new(),
        }
    }
}
