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
    Migration { version: i64, source: sqlx::Error },
    /// The write was already done under this `Idempotency-Key`; here is its answer.
    #[error("already done under this idempotency key")]
    Replayed(crate::model::StoredResponse),
    /// The `Idempotency-Key` was used with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// The write shared a transaction with others (SQLite's ingest groups) and that transaction
    /// did not commit, so nothing of it was written; the text says why.
    #[error("not written: {0}")]
    NotWritten(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
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
        StoreError::Database(err)
    }
}
