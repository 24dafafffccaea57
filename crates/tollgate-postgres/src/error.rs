//! Errors of the PostgreSQL ledger.

use std::fmt;

/// An error of the PostgreSQL ledger.
#[derive(Debug)]
pub enum PgError {
    /// The database's schema was written by a newer build.
    NewerSchema {
        /// The version found in `schema_migrations`.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },
    /// A PostgreSQL error (connection, query). Its message never holds the connection
    /// URL's password: the `postgres` client does not include the config in errors.
    Db(postgres::Error),
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::NewerSchema { found, supported } => write!(
                f,
                "ledger schema version {found} is newer than this build supports ({supported})"
            ),
            PgError::Db(e) => write!(f, "postgres: {e}"),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PgError::Db(e) => Some(e),
            PgError::NewerSchema { .. } => None,
        }
    }
}

impl From<postgres::Error> for PgError {
    fn from(e: postgres::Error) -> Self {
        PgError::Db(e)
    }
}
