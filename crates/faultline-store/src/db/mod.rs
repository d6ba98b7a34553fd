//! The one interface every capability talks to a database through: a [`Conn`] runs a [`Sql`]
//! statement and hands its rows to the caller one at a time, as a [`Row`] with typed getters.
//! Each backend implements it once on its own driver (`sqlite.rs` on rusqlite, `postgres.rs`
//! on sqlx), and runs a capability's [`Job`] in a transaction ([`Database`]); the capabilities
//! themselves (`crate::capabilities`) are written once, for both.
//!
//! A job is an `async` closure over `&mut dyn Conn`. On PostgreSQL its statements are awaited
//! on the network; on SQLite a statement completes when it is called, so the job's future is
//! ready at its first poll and runs to its end on the thread that owns the connection
//! ([`run_to_end`]): the writer thread, or the caller's own for a short read.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;

use crate::Backend;
use crate::error::{StoreError, StoreResult};
use crate::model::Lease;
use crate::sql::Sql;

pub(crate) mod bulk_load;
mod checkpoint;
pub(crate) mod postgres;
pub(crate) mod sqlite;
pub(crate) mod sqlite_file;

/// A job's future, borrowing its connection.
pub(crate) type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// Work for one transaction: statements on the connection it is given, and their result.
pub(crate) type Job<T> = Box<dyn for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, StoreResult<T>> + Send>;

/// What makes a job, as often as it must run (a write rolled back with others runs again).
pub(crate) type MakeJob<T> = Box<dyn Fn() -> Job<T> + Send + Sync>;

/// A job from a closure: `job(|c| Box::pin(async move { … }))`.
pub(crate) fn job<T, F>(work: F) -> Job<T>
where
    F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
{
    Box::new(work)
}

/// One row of a result, read by column position.
pub(crate) trait Row {
    fn is_null(&self, column: usize) -> StoreResult<bool>;
    fn int(&self, column: usize) -> StoreResult<Option<i64>>;
    fn real(&self, column: usize) -> StoreResult<Option<f64>>;
    fn text(&self, column: usize) -> StoreResult<Option<&str>>;
    fn blob(&self, column: usize) -> StoreResult<Option<&[u8]>>;
}

/// What [`Conn::for_each`] calls on each row.
pub(crate) type EachRow<'a> = dyn for<'r> FnMut(&'r (dyn Row + 'r)) -> StoreResult<()> + Send + 'a;

/// A connection inside a transaction (or, for a read, on its own).
#[async_trait]
pub(crate) trait Conn: Send {
    fn backend(&self) -> Backend;
    /// Run `sql`; how many rows it changed.
    async fn execute(&mut self, sql: &Sql) -> StoreResult<u64>;
    /// Run `sql`, calling `each` on each row in order; an error from `each` stops it.
    async fn for_each(&mut self, sql: &Sql, each: &mut EachRow<'_>) -> StoreResult<()>;
    /// Run statements without parameters, separated by `;` (a migration).
    async fn execute_script(&mut self, script: &str) -> StoreResult<()>;
}

impl dyn Conn + '_ {
    /// Every row of `sql` as a `T`.
    pub(crate) async fn fetch_all<T: FromRow + Send>(&mut self, sql: &Sql) -> StoreResult<Vec<T>> {
        let mut rows = Vec::new();
        self.for_each(sql, &mut |row| {
            rows.push(T::from_row(row)?);
            Ok(())
        })
        .await?;
        Ok(rows)
    }

    /// The first row of `sql`, if any.
    pub(crate) async fn fetch_optional<T: FromRow + Send>(&mut self, sql: &Sql) -> StoreResult<Option<T>> {
        let mut first = None;
        self.for_each(sql, &mut |row| {
            if first.is_none() {
                first = Some(T::from_row(row)?);
            }
            Ok(())
        })
        .await?;
        Ok(first)
    }

    /// The first row of `sql`, which must have one.
    pub(crate) async fn fetch_one<T: FromRow + Send>(&mut self, sql: &Sql) -> StoreResult<T> {
        self.fetch_optional(sql)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from: {}", sql.text)))
    }

    /// The first column of the first row of `sql`, which must have one.
    pub(crate) async fn scalar<T: FromValue + Send>(&mut self, sql: &Sql) -> StoreResult<T> {
        Ok(self.fetch_one::<(T,)>(sql).await?.0)
    }

    /// The first column of every row of `sql`.
    pub(crate) async fn scalars<T: FromValue + Send>(&mut self, sql: &Sql) -> StoreResult<Vec<T>> {
        Ok(self.fetch_all::<(T,)>(sql).await?.into_iter().map(|(v,)| v).collect())
    }
}

/// A value of one column.
pub(crate) trait FromValue: Sized {
    fn from_value(row: &dyn Row, column: usize) -> StoreResult<Self>;
}

fn null(column: usize) -> StoreError {
    StoreError::Corrupt(format!("unexpected NULL in column {column}"))
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(row: &dyn Row, column: usize) -> StoreResult<Self> {
        if row.is_null(column)? { Ok(None) } else { T::from_value(row, column).map(Some) }
    }
}

impl FromValue for i64 {
    fn from_value(row: &dyn Row, column: usize) -> StoreResult<Self> {
        row.int(column)?.ok_or_else(|| null(column))
    }
}

impl FromValue for bool {
    fn from_value(row: &dyn Row, column: usize) -> StoreResult<Self> {
        Ok(row.int(column)?.ok_or_else(|| null(column))? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(row: &dyn Row, column: usize) -> StoreResult<Self> {
        row.real(column)?.ok_or_else(|| null(column))
    }
}

impl FromValue for String {
    fn from_value(row: &dyn Row, column: usize) -> StoreResult<Self> {
        row.text(column)?.map(str::to_owned).ok_or_else(|| null(column))
    }
}

impl FromValue for Vec<u8> {
    fn from_value(row: &dyn Row, column: usize) -> StoreResult<Self> {
        row.blob(column)?.map(<[u8]>::to_vec).ok_or_else(|| null(column))
    }
}

/// A whole row.
pub(crate) trait FromRow: Sized {
    fn from_row(row: &dyn Row) -> StoreResult<Self>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: FromValue),+> FromRow for ($($t,)+) {
            fn from_row(row: &dyn Row) -> StoreResult<Self> {
                Ok(($($t::from_value(row, $i)?,)+))
            }
        }
    };
}
tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13);

/// How a read runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// A short read (one fault, a page): each statement its own snapshot; on SQLite on the
    /// caller's thread.
    Short,
    /// A read that may scan (exports, analytics, the log): on SQLite off the async workers.
    Long,
    /// Several statements that must agree: one read-only transaction, one snapshot.
    Snapshot,
}

/// A backend: where jobs run.
#[async_trait]
pub(crate) trait Database: Send + Sync + Sized + 'static {
    const BACKEND: Backend;
    /// Run the job `make` makes in a write transaction and commit it; an error rolls the job's
    /// writes back. The backend may roll a job back and run it again (made anew).
    async fn write<T: Send + 'static>(&self, make: MakeJob<T>) -> StoreResult<T>;
    /// Run the job `make` makes as a read. A read changes nothing, so a backend may make it
    /// again and run it once more (on PostgreSQL, after a connection the server ended).
    async fn read<T: Send + 'static>(
        &self,
        how: Read,
        make: &(dyn Fn() -> Job<T> + Send + Sync),
    ) -> StoreResult<T>;
    /// A singleton job's lease (see [`crate::Leases`]).
    async fn lease(&self, job: &str) -> StoreResult<Option<Box<dyn Lease>>>;
    /// Wake-ups on commits to the event log, where the backend has them.
    async fn log_notifications(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>>;
    /// Close every connection.
    async fn close(&self);
    /// The file a bulk load writes straight into, where the backend has one (SQLite).
    fn bulk_load_file(&self) -> Option<std::path::PathBuf> {
        None
    }
}

/// The output of a future that is ready at its first poll: a job on a SQLite connection,
/// whose statements never wait. A job that waits on anything else is a bug, and panics here.
pub(crate) fn run_to_end<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a SQLite job waited on something other than its connection"),
    }
}
