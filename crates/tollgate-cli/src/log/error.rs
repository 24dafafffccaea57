//! The errors of the log reader (a bad mapping, a bad line) and the short excerpts of
//! text that their messages quote.
use std::fmt;

/// An invalid mapping, source, format or unit name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingError {
    /// What is wrong, for a human.
    pub message: String,
}

impl MappingError {
    pub(super) fn new(message: String) -> MappingError {
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
    /// The bytes given to [`Parser::parse_bytes`](crate::log::Parser::parse_bytes) are not UTF-8.
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
    pub(super) fn new(kind: LineErrorKind, message: impl Into<String>) -> LineError {
        LineError {
            kind,
            message: message.into(),
        }
    }

    #[cold]
    pub(super) fn syntax(message: impl Into<String>) -> LineError {
        LineError::new(LineErrorKind::Syntax, message)
    }

    #[cold]
    #[inline(never)]
    pub(super) fn syntax_at(what: &str, at: usize) -> LineError {
        LineError::syntax(format!("{what} at byte {at}"))
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LineError {}
/// `text` for an error message: its `Debug` form is quoted and escaped like a `str`'s,
/// cut with `…` after 40 characters of output, so that a message stays short whatever
/// the line holds.
pub(super) fn excerpt(text: &str) -> Excerpt<'_> {
    Excerpt(text)
}

pub(super) struct Excerpt<'a>(&'a str);

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
