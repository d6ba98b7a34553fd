//! The store's one error type. No driver type crosses it: a database failure is a
//! [`DatabaseError`], whose driver error stays inside this crate, and is classified here (the
//! database unavailable, or anything else) so that callers match on variants, not on a driver's.

use thiserror::Error;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The named object does not exist (for this customer).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule refused the write; the text names the rule.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The URL or options cannot work; the text says what to fix.
    #[error("{0}")]
    Config(String),
    /// A stored value breaks an invariant the schema should have kept.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("migration {version} failed: {source}")]
    Migration { version: i64, source: DatabaseError },
    /// The `Idempotency-Key` was used with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// The write shared a transaction with others (SQLite's ingest groups) and that transaction
    /// did not commit, so nothing of it was written; the text says why.
    #[error("not written: {0}")]
    NotWritten(String),
    /// The database cannot be reached now (refused or lost connections, no connection free in
    /// time, the store closed): nothing was done, and the same request may succeed shortly.
    #[error("database unavailable: {0}")]
    Unavailable(DatabaseError),
    /// Any other failure of the database: a bug or a broken database, for the log.
    #[error("database error: {0}")]
    Database(DatabaseError),
}

/// A failure reported by the database driver. Its text is for logs; the driver's error stays
/// inside the store.
#[derive(Debug, Error)]
#[error(transparent)]
pub struct DatabaseError(pub(crate) sqlx::Error);

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        if is_unavailable(&err) {
            StoreError::Unavailable(DatabaseError(err))
        } else {
            StoreError::Database(DatabaseError(err))
        }
    }
}

/// Whether `err` says the database could not be reached, rather than that a statement failed.
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        // PostgreSQL's class 57P (operator intervention: the server shutting down, a backend
        // terminated) and 08 (connection exceptions).
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("57P") || code.starts_with("08"))
        }
        _ => false,
    }
}

impl StoreError {
    /// The store was closed, or its writer stopped: nothing more can be written through it.
    pub(crate) fn closed() -> StoreError {
        StoreError::Unavailable(DatabaseError(sqlx::Error::PoolClosed))
    }

    /// Map a unique or foreign-key violation to a client-facing error; other errors pass through.
    pub(crate) fn on_constraint(err: sqlx::Error, what: &'static str) -> StoreError {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return StoreError::Conflict(what.to_owned());
            }
            if db.is_foreign_key_violation() {
                return StoreError::NotFound(what);
            }
        }
        StoreError::from(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_out_of_reach_is_unavailable_and_a_failed_statement_is_not() {
        for err in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
        ] {
            assert!(matches!(StoreError::from(err), StoreError::Unavailable(_)));
        }
        assert!(matches!(StoreError::from(sqlx::Error::RowNotFound), StoreError::Database(_)));
        assert!(matches!(StoreError::closed(), StoreError::Unavailable(_)));
    }
}
