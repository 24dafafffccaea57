//! What reading or validating a policy reports: errors with file, line, column and field, and deprecation warnings.

use std::fmt;
use std::path::PathBuf;

/// A policy file error: where, in which field, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The file, if the policy came from one.
    pub file: Option<PathBuf>,
    /// 1-based line, if known.
    pub line: Option<usize>,
    /// 1-based column, if known.
    pub column: Option<usize>,
    /// The field's path, e.g. `limit[1].rate` (empty for the whole document).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}", p.display())?,
            None => f.write_str("<policy>")?,
        }
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PolicyError {}

/// A deprecated field that was still read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWarning {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field's path.
    pub field: String,
    /// What to write instead.
    pub message: String,
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: deprecated: {}",
            self.line, self.column, self.field, self.message
        )
    }
}

/// 1-based (line, column) of byte `offset` in `text`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

/// A policy that parsed but does not hold together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// The limit it is in, if any.
    pub limit: Option<usize>,
    /// The field's path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}
