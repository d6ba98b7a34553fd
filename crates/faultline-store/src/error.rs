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
    /// The database has no room to write (SQLite's disk full, PostgreSQL's `disk_full`):
    /// nothing was written, reads still work, and the same write may succeed once space is
    /// freed.
    #[error("storage full: {0}")]
    StorageFull(DatabaseError),
    /// Any other failure of the database: a bug or a broken database, for the log.
    #[error("database error: {0}")]
    Database(DatabaseError),
}

/// A failure reported by a database driver, classified when it is made. Its text is for logs;
/// the driver's error stays inside the store.
#[derive(Debug, Error)]
#[error("{source}")]
pub struct DatabaseError {
    pub(crate) failure: Failure,
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// What kind of failure a [`DatabaseError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The database could not be reached, or the store is closed.
    Unavailable,
    /// The disk (or the database's quota) is full.
    StorageFull,
    /// A unique index refused a row.
    Unique,
    /// A foreign key refused a row.
    ForeignKey,
    /// The transaction lost a deadlock or a serialisation conflict and was rolled back whole;
    /// running it again may succeed.
    Retry,
    /// Anything else.
    Other,
}

impl DatabaseError {
    /// Whether this is a pool that gave up waiting for a connection (or was closed).
    pub(crate) fn is_pool_timeout(&self) -> bool {
        matches!(
            self.source.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
        )
    }

    pub(crate) fn new(failure: Failure, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        DatabaseError { failure, source: Box::new(source) }
    }
}

impl From<DatabaseError> for StoreError {
    fn from(err: DatabaseError) -> StoreError {
        match err.failure {
            Failure::Unavailable => StoreError::Unavailable(err),
            Failure::StorageFull => StoreError::StorageFull(err),
            _ => StoreError::Database(err),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        let failure = match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => Failure::Unavailable,
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // Class 57P (operator intervention: the server shutting down, a backend
                // terminated) and 08 (connection exceptions).
                Some(code) if code.starts_with("57P") || code.starts_with("08") => Failure::Unavailable,
                // 53300: too many connections (the server is full, not broken).
                Some("53300") => Failure::Unavailable,
                // 53100: disk full.
                Some("53100") => Failure::StorageFull,
                Some("40P01" | "40001") => Failure::Retry,
                Some("23505") => Failure::Unique,
                Some("23503") => Failure::ForeignKey,
                _ => Failure::Other,
            },
            _ => Failure::Other,
        };
        StoreError::from(DatabaseError::new(failure, err))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        use rusqlite::ffi;
        let failure = match &err {
            rusqlite::Error::SqliteFailure(e, _) => match (e.code, e.extended_code) {
                (_, ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => Failure::Unique,
                (_, ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => Failure::ForeignKey,
                (ffi::ErrorCode::CannotOpen, _) => Failure::Unavailable,
                // SQLITE_FULL: the file system refused to grow the database or its log
                // (ENOSPC, or a file size limit).
                (ffi::ErrorCode::DiskFull, _) => Failure::StorageFull,
                _ => Failure::Other,
            },
            _ => Failure::Other,
        };
        StoreError::from(DatabaseError::new(failure, err))
    }
}

/// The error of a store whose connections are closed.
#[derive(Debug, Error)]
#[error("the store is closed")]
struct Closed;

impl StoreError {
    /// The store was closed, or its writer stopped: nothing more can be written through it.
    pub(crate) fn closed() -> StoreError {
        StoreError::from(DatabaseError::new(Failure::Unavailable, Closed))
    }

    /// Map a unique or foreign-key violation to a client-facing error; other errors pass through.
    pub(crate) fn on_constraint(self, what: &'static str) -> StoreError {
        match self.failure() {
            Some(Failure::Unique) => StoreError::Conflict(what.to_owned()),
            Some(Failure::ForeignKey) => StoreError::NotFound(what),
            _ => self,
        }
    }

    /// The kind of database failure this is, if it is one.
    pub(crate) fn failure(&self) -> Option<Failure> {
        match self {
            StoreError::Unavailable(e) | StoreError::StorageFull(e) | StoreError::Database(e) => {
                Some(e.failure)
            }
            StoreError::Migration { source, .. } => Some(source.failure),
            _ => None,
        }
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
        let unique = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE),
            None,
        );
        assert!(matches!(StoreError::from(unique).on_constraint("fault"), StoreError::Conflict(_)));
        assert!(matches!(StoreError::closed(), StoreError::Unavailable(_)));
        let full =
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        assert!(matches!(StoreError::from(full), StoreError::StorageFull(_)));
    }
}
