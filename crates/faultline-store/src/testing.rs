//! Test support shared by the conformance suite and the server's end-to-end tests: a fresh,
//! isolated database per test on either backend.
//!
//! PostgreSQL tests run when `FAULTLINE_TEST_POSTGRES_URL` is set. Without it they print a
//! loud SKIPPED line, unless `FAULTLINE_TEST_REQUIRE_ALL=1`, which turns the skip into a failure.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::{Backend, PostgresStore, SqliteStore, Store};

pub const POSTGRES_URL_VAR: &str = "FAULTLINE_TEST_POSTGRES_URL";
pub const REQUIRE_ALL_VAR: &str = "FAULTLINE_TEST_REQUIRE_ALL";

/// True when every optional test dependency must be present.
pub fn require_all() -> bool {
    std::env::var(REQUIRE_ALL_VAR).is_ok_and(|v| v == "1")
}

/// Report a skipped test loudly, or fail it when skips are not allowed.
pub fn skip(test: &str, why: &str) {
    assert!(!require_all(), "{test}: {why}, and {REQUIRE_ALL_VAR}=1 forbids skipping");
    eprintln!("SKIPPED {test}: {why}");
}

/// An isolated database for one test; dropping it leaves the data for post-mortem on SQLite
/// (in the temp dir) and drops the schema on PostgreSQL when [`TestDb::cleanup`] is called.
pub struct TestDb {
    pub backend: Backend,
    /// A URL that opens this same database (for SQLite, the file; for PostgreSQL, the
    /// server, with `options` naming the schema).
    pub url: String,
    pub store: Arc<dyn Store>,
    schema: Option<(String, String)>,
    file: Option<PathBuf>,
}

impl TestDb {
    /// A fresh, migrated database on `backend`, or `None` (after reporting the skip) when the
    /// backend is not available here.
    pub async fn new(backend: Backend, test: &str) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join("faultline-tests");
                std::fs::create_dir_all(&dir).expect("temp dir");
                let file =
                    dir.join(format!("{}-{}.db", sanitize(test), faultline_core::ids::random_base62(8)));
                let url = format!("sqlite://{}", file.display());
                let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.expect("open sqlite"));
                store.migrate().await.expect("migrate sqlite");
                Some(TestDb { backend, url, store, schema: None, file: Some(file) })
            }
            Backend::Postgres => {
                let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
                    skip(test, &format!("{POSTGRES_URL_VAR} is not set"));
                    return None;
                };
                let schema =
                    format!("t_{}_{}", sanitize(test), faultline_core::ids::random_base62(8).to_lowercase());
                let schema =
                    schema.chars().rev().take(60).collect::<String>().chars().rev().collect::<String>();
                let mut conn = PgConnection::connect(&base)
                    .await
                    .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but unreachable: {e}"));
                sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\""))
                    .execute(&mut conn)
                    .await
                    .expect("create schema");
                conn.close().await.ok();
                let options = PgConnectOptions::from_str(&base)
                    .expect("postgres url")
                    .options([("search_path", &schema)]);
                let store: Arc<dyn Store> =
                    Arc::new(PostgresStore::open_with(options).await.expect("open postgres"));
                store.migrate().await.expect("migrate postgres");
                let url = with_search_path(&base, &schema);
                Some(TestDb { backend, url, store, schema: Some((base, schema)), file: None })
            }
        }
    }

    /// Drop the test's data (the PostgreSQL schema, the SQLite file).
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some((base, schema)) = self.schema
            && let Ok(mut conn) = PgConnection::connect(&base).await
        {
            sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(&mut conn).await.ok();
        }
        if let Some(file) = self.file {
            for suffix in ["", "-wal", "-shm"] {
                std::fs::remove_file(format!("{}{suffix}", file.display())).ok();
            }
        }
    }
}

/// The PostgreSQL URL with `options=-c search_path=SCHEMA` added, which sqlx honours.
fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// Define a test once and run it on both backends: `conformance_test!(name, |db| async move { … })`
/// expands to `mod name { sqlite, postgres }`.
#[macro_export]
macro_rules! conformance_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(db) = $crate::testing::TestDb::new(
                    $crate::Backend::Sqlite,
                    concat!(stringify!($name), "_sqlite"),
                )
                .await
                {
                    let store = db.store.clone();
                    ($body)(store).await;
                    db.cleanup().await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::testing::TestDb::new(
                    $crate::Backend::Postgres,
                    concat!(stringify!($name), "_postgres"),
                )
                .await
                {
                    let store = db.store.clone();
                    ($body)(store).await;
                    db.cleanup().await;
                }
            }
        }
    };
}
