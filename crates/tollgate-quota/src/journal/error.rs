//! What can go wrong with a journal: [`JournalError`], every variant naming the file.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong with a journal. Every variant names the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum JournalError {
    /// The file exists but is not a usable tollgate journal; it was left untouched.
    NotAJournal {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// An I/O error outside SQLite.
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
    /// An SQLite error.
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The error.
        source: rusqlite::Error,
    },
    /// The writer thread stopped without committing everything (its last batch, at
    /// close or drop, failed): what it carried is not journaled.
    WriterFailed {
        /// The file.
        path: PathBuf,
        /// The writer's error.
        reason: String,
    },
    /// The entries a wait covers are not journaled yet: the writer's batches are failing
    /// (see [`JournalHealth`](super::JournalHealth)). They are kept and retried with
    /// backoff; a later wait succeeds once a batch commits.
    NotAcknowledged {
        /// The file.
        path: PathBuf,
        /// The writer's last error.
        reason: String,
    },
    /// Some entries the wait covers were not kept (more than the pending bound were
    /// waiting, and no owner can write them again): they will never be acknowledged.
    Dropped {
        /// The file.
        path: PathBuf,
        /// How many entries were not kept so far.
        dropped: u64,
    },
    /// The writer thread is no longer running (the journal is closing).
    Closed {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::NotAJournal { path, reason } => write!(
                f,
                "refusing to open {} as a usage journal: {reason} (the file was not modified)",
                path.display()
            ),
            JournalError::Io {
                path,
                context,
                source,
            } => write!(f, "usage journal {}: {context}: {source}", path.display()),
            JournalError::Sqlite {
                path,
                context,
                source,
            } => write!(f, "usage journal {}: {context}: {source}", path.display()),
            JournalError::WriterFailed { path, reason } => write!(
                f,
                "usage journal {}: the writer stopped without journaling everything: {reason}",
                path.display()
            ),
            JournalError::NotAcknowledged { path, reason } => write!(
                f,
                "usage journal {}: not journaled yet, the writer is failing and retries: {reason}",
                path.display()
            ),
            JournalError::Dropped { path, dropped } => write!(
                f,
                "usage journal {}: {dropped} entries were not kept (too many were waiting \
                 while the writer failed); they will not be journaled",
                path.display()
            ),
            JournalError::Closed { path } => {
                write!(
                    f,
                    "usage journal {}: the writer has stopped",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Io { source, .. } => Some(source),
            JournalError::Sqlite { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub(super) fn sql_err(
    path: &Path,
    context: &'static str,
) -> impl FnOnce(rusqlite::Error) -> JournalError {
    let path = path.to_owned();
    move |source| JournalError::Sqlite {
        path,
        context,
        source,
    }
}

pub(super) fn refuse(path: &Path, reason: impl Into<String>) -> JournalError {
    JournalError::NotAJournal {
        path: path.to_owned(),
        reason: reason.into(),
    }
}
