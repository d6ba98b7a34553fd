//! Migrations applied to a database that already holds data, on both backends: the schema a
//! release before a migration leaves, rows written there, then the migration.

use sqlx::Connection;

use crate::db::sqlite::Lite;
use crate::db::{Conn, FromRow, run_to_end};
use crate::testing::{POSTGRES_URL_VAR, skip};

/// A SQLite database in memory, with foreign keys on (as the store runs migrations).
fn lite() -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    conn
}

/// Run a script on a SQLite connection.
fn raw(conn: &mut rusqlite::Connection, sql: &str) -> crate::StoreResult<()> {
    run_to_end((&mut Lite(conn) as &mut dyn Conn).execute_script(sql))
}

/// Every row of `sql` on a SQLite connection.
fn rows<T: FromRow + Send>(conn: &mut rusqlite::Connection, sql: &str) -> Vec<T> {
    run_to_end((&mut Lite(conn) as &mut dyn Conn).fetch_all(&crate::sql::query(sql))).unwrap()
}

/// Two faults of one site, their ancestry elements, and an element whose fault is gone (which
/// the table could hold once migration 8 dropped its foreign key).
const BEFORE_9: &str = "
INSERT INTO customers (id, name, created_at) VALUES ('cus_a', 'A', 0);
INSERT INTO faults (id, customer_id, resource_id, microservice_id, type, status, severity, message,
    cause, created_at, resolved_at, resource_ancestry_path, site_id, ttl)
VALUES ('flt_1', 'cus_a', 'tun_1', 'm', 'wantunnel', 'unresolved', 'HIGH', 'down', 'bfd', 10, NULL,
        'site_1|dev_1|tun_1', 'site_1', 99),
       ('flt_2', 'cus_a', 'dev_1', 'm', 'reboot', 'resolved', 'LOW', 'reboot', 'power', 20, 30,
        'site_1|dev_1', 'site_1', 99);
INSERT INTO fault_ancestors (customer_id, element, created_at, fault_id) VALUES
    ('cus_a', 'site_1', 10, 'flt_1'), ('cus_a', 'dev_1', 10, 'flt_1'), ('cus_a', 'tun_1', 10, 'flt_1'),
    ('cus_a', 'site_1', 20, 'flt_2'), ('cus_a', 'dev_1', 20, 'flt_2'),
    ('cus_a', 'site_1', 5, 'flt_gone');
";

const AFTER_9: &str = "SELECT element, fault_id, severity FROM fault_ancestors ORDER BY customer_id, element, created_at, fault_id";

/// What builds the database: migrations 1 to 8, the rows, then migration 9.
fn steps(migrations: &'static [(i64, &'static str)]) -> Vec<&'static str> {
    assert_eq!(migrations[8].0, 9);
    migrations[..8].iter().map(|(_, sql)| *sql).chain([BEFORE_9, migrations[8].1]).collect()
}

fn expected_after_9() -> Vec<(String, String, String)> {
    [
        ("dev_1", "flt_1", "HIGH"),
        ("dev_1", "flt_2", "LOW"),
        ("site_1", "flt_1", "HIGH"),
        ("site_1", "flt_2", "LOW"),
        ("tun_1", "flt_1", "HIGH"),
    ]
    .into_iter()
    .map(|(e, f, s)| (e.to_owned(), f.to_owned(), s.to_owned()))
    .collect()
}

#[test]
fn migration_9_gives_every_ancestor_row_its_fault_s_severity_on_sqlite() {
    let mut conn = lite();
    for sql in steps(crate::migrations::migrations(crate::Backend::Sqlite)) {
        raw(&mut conn, sql).unwrap();
    }
    let rows: Vec<(String, String, String)> = rows(&mut conn, AFTER_9);
    assert_eq!(rows, expected_after_9());
    // Still keyed as the pages read it, and the column cannot be left empty.
    let missing = raw(
        &mut conn,
        "INSERT INTO fault_ancestors (customer_id, element, created_at, fault_id) VALUES ('cus_a', 'x', 1, 'flt_1')",
    );
    assert!(missing.is_err(), "severity is NOT NULL");
    let duplicate =
        raw(&mut conn, "INSERT INTO fault_ancestors VALUES ('cus_a', 'site_1', 10, 'flt_1', 'HIGH')");
    assert!(duplicate.is_err(), "the primary key survives the rebuild");
}

/// A connection to the test PostgreSQL server whose search path is a new, empty schema (its
/// name returned, for the test to drop); `None` (the test skipped) without a server.
async fn postgres_schema(test: &str) -> Option<(sqlx::PgConnection, String)> {
    let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
        skip(test, &format!("{POSTGRES_URL_VAR} is not set"));
        return None;
    };
    let schema = format!("t_{test}_{}", faultline_core::ids::random_base62(8).to_lowercase());
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\"; SET search_path TO \"{schema}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    Some((conn, schema))
}

#[tokio::test]
async fn migration_9_gives_every_ancestor_row_its_fault_s_severity_on_postgres() {
    let Some((mut conn, schema)) = postgres_schema("migration_9_postgres").await else { return };
    for sql in steps(crate::migrations::migrations(crate::Backend::Postgres)) {
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
    let rows: Vec<(String, String, String)> = sqlx::query_as(AFTER_9).fetch_all(&mut conn).await.unwrap();
    let missing = sqlx::raw_sql(
        "INSERT INTO fault_ancestors (customer_id, element, created_at, fault_id) VALUES ('cus_a', 'x', 1, 'flt_1')",
    )
    .execute(&mut conn)
    .await;
    sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(&mut conn).await.unwrap();
    assert_eq!(rows, expected_after_9());
    assert!(missing.is_err(), "severity is NOT NULL");
}

/// Three faults, two of them with comments, as a release before migration 10 leaves them.
const BEFORE_10: &str = "
    INSERT INTO customers (id, name, created_at) VALUES ('cus_a', 'A', 0);
    INSERT INTO faults (id, customer_id, resource_id, microservice_id, type, status, severity,
        message, cause, created_at, resolved_at, resource_ancestry_path, site_id, ttl)
    VALUES ('flt_1', 'cus_a', 'r', 'm', 'reboot', 'unresolved', 'LOW', 'm', 'c', 1, NULL, 'r', NULL, 9),
           ('flt_2', 'cus_a', 'r', 'm', 'reboot', 'unresolved', 'LOW', 'm', 'c', 2, NULL, 'r', NULL, 9),
           ('flt_3', 'cus_a', 'r', 'm', 'reboot', 'unresolved', 'LOW', 'm', 'c', 3, NULL, 'r', NULL, 9);
    INSERT INTO comments (id, fault_id, customer_id, user_id, comment, created_at) VALUES
        ('cmt_1', 'flt_1', 'cus_a', 'u', 'x', 5), ('cmt_2', 'flt_1', 'cus_a', 'u', 'y', 6),
        ('cmt_3', 'flt_3', 'cus_a', 'u', 'z', 7);
";

const AFTER_10: &str = "SELECT id, CAST(comment_count AS BIGINT) FROM faults ORDER BY id";

fn expected_after_10() -> Vec<(String, i64)> {
    [("flt_1", 2), ("flt_2", 0), ("flt_3", 1)].map(|(id, n)| (id.to_owned(), n)).to_vec()
}

#[test]
fn migration_10_counts_the_comments_faults_already_have_on_sqlite() {
    let mut conn = lite();
    let migrations = crate::migrations::migrations(crate::Backend::Sqlite);
    assert_eq!(migrations[9].0, 10);
    for (_, sql) in &migrations[..9] {
        raw(&mut conn, sql).unwrap();
    }
    raw(&mut conn, BEFORE_10).unwrap();
    raw(&mut conn, migrations[9].1).unwrap();
    let counts: Vec<(String, i64)> = rows(&mut conn, AFTER_10);
    assert_eq!(counts, expected_after_10());
}

#[tokio::test]
async fn migration_10_counts_the_comments_faults_already_have_on_postgres() {
    let Some((mut conn, schema)) = postgres_schema("migration_10_postgres").await else { return };
    let migrations = crate::migrations::migrations(crate::Backend::Postgres);
    assert_eq!(migrations[9].0, 10);
    for (_, sql) in &migrations[..9] {
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
    sqlx::raw_sql(BEFORE_10).execute(&mut conn).await.unwrap();
    sqlx::raw_sql(migrations[9].1).execute(&mut conn).await.unwrap();
    let counts: Vec<(String, i64)> = sqlx::query_as(AFTER_10).fetch_all(&mut conn).await.unwrap();
    sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(&mut conn).await.unwrap();
    assert_eq!(counts, expected_after_10());
}

/// Every index and table definition of `tables` in `conn`'s schema, by name.
fn definitions(conn: &mut rusqlite::Connection, tables: &str) -> Vec<(String, Option<String>)> {
    rows(
        conn,
        &format!(
            "SELECT name, sql FROM sqlite_schema WHERE tbl_name IN ({tables}) AND type = 'index' ORDER BY name"
        ),
    )
}

#[test]
fn migration_11_keys_faults_by_their_rowid_and_keeps_comments_on_sqlite() {
    // As the store runs migrations: foreign keys on, in one transaction.

    let mut conn = lite();
    let migrations = crate::migrations::migrations(crate::Backend::Sqlite);
    assert_eq!(migrations[10].0, 11);
    for (_, sql) in &migrations[..10] {
        raw(&mut conn, sql).unwrap();
    }
    let before_11 = "
        INSERT INTO customers (id, name, created_at) VALUES ('cus_a', 'A', 0);
        INSERT INTO faults (id, customer_id, resource_id, microservice_id, type, status, severity,
            message, cause, created_at, resolved_at, resource_ancestry_path, site_id, ttl, open_key)
        VALUES ('flt_1', 'cus_a', 'tun_1', 'm', 'wantunnel', 'unresolved', 'HIGH', 'down', 'c', 10, NULL,
                'site_1|tun_1', 'site_1', 99, 'tun_1' || char(31) || 'wantunnel'),
               ('flt_2', 'cus_a', 'dev_1', 'm', 'reboot', 'resolved', 'LOW', 'm', 'c', 20, 30, 'site_1|dev_1', 'site_1', 99, NULL),
               ('flt_3', 'cus_a', 'dev_2', 'm', 'reboot', 'unresolved', 'LOW', 'm', 'c', 30, NULL, 'site_2|dev_2', 'site_2', 99, NULL);
        DELETE FROM faults WHERE id = 'flt_2';
        INSERT INTO faults (id, customer_id, resource_id, microservice_id, type, status, severity,
            message, cause, created_at, resolved_at, resource_ancestry_path, site_id, ttl)
        VALUES ('flt_4', 'cus_a', 'dev_1', 'm', 'reboot', 'resolved', 'LOW', 'm', 'c', 40, 50, 'site_1|dev_1', 'site_1', 99);
        INSERT INTO comments (id, fault_id, customer_id, user_id, comment, created_at) VALUES
            ('cmt_1', 'flt_1', 'cus_a', 'u', 'x', 5), ('cmt_2', 'flt_1', 'cus_a', 'u', 'y', 6),
            ('cmt_3', 'flt_3', 'cus_a', 'u', 'z', 7);
        UPDATE faults SET comment_count = 2 WHERE id = 'flt_1';
        UPDATE faults SET comment_count = 1 WHERE id = 'flt_3';
        INSERT INTO fault_ancestors (customer_id, element, created_at, fault_id, severity) VALUES
            ('cus_a', 'site_1', 10, 'flt_1', 'HIGH'), ('cus_a', 'tun_1', 10, 'flt_1', 'HIGH'),
            ('cus_a', 'site_2', 30, 'flt_3', 'LOW'), ('cus_a', 'dev_2', 30, 'flt_3', 'LOW'),
            ('cus_a', 'site_1', 40, 'flt_4', 'LOW'), ('cus_a', 'dev_1', 40, 'flt_4', 'LOW'),
            ('cus_a', 'site_1', 20, 'flt_2', 'LOW');
    ";
    raw(&mut conn, before_11).unwrap();
    let rowids: Vec<(String, i64)> = rows(&mut conn, "SELECT id, rowid FROM faults ORDER BY id");
    let faults_before: Vec<(String, String, Option<String>, i64)> =
        rows(&mut conn, "SELECT id, message, open_key, comment_count FROM faults ORDER BY id");
    let comments_before: Vec<(String, String, String)> =
        rows(&mut conn, "SELECT id, fault_id, comment FROM comments ORDER BY id");
    let indexes_before = definitions(&mut conn, "'faults', 'comments'");

    conn.execute_batch("BEGIN").unwrap();
    raw(&mut conn, migrations[10].1).unwrap();
    conn.execute_batch("COMMIT").unwrap();

    // Every fault and comment kept; each fault's seq is the rowid it had.
    let seqs: Vec<(String, i64)> = rows(&mut conn, "SELECT id, seq FROM faults ORDER BY id");
    assert_eq!(seqs, rowids);
    let faults_after: Vec<(String, String, Option<String>, i64)> =
        rows(&mut conn, "SELECT id, message, open_key, comment_count FROM faults ORDER BY id");
    assert_eq!(faults_after, faults_before);
    let comments: Vec<(String, String, String)> =
        rows(&mut conn, "SELECT id, fault_id, comment FROM comments ORDER BY id");
    assert_eq!(comments, comments_before);
    // Each element carries its fault's seq; the element of the deleted fault is gone.
    let elements: Vec<(String, String, i64)> = rows(
        &mut conn,
        "SELECT a.element, a.fault_id, a.fault_seq FROM fault_ancestors a ORDER BY a.element, a.created_at",
    );
    let seq_of = |id: &str| seqs.iter().find(|(i, _)| i == id).unwrap().1;
    let expected: Vec<(String, String, i64)> = [
        ("dev_1", "flt_4"),
        ("dev_2", "flt_3"),
        ("site_1", "flt_1"),
        ("site_1", "flt_4"),
        ("site_2", "flt_3"),
        ("tun_1", "flt_1"),
    ]
    .into_iter()
    .map(|(e, f)| (e.to_owned(), f.to_owned(), seq_of(f)))
    .collect();
    assert_eq!(elements, expected);
    // The same indexes as before, and the foreign keys hold and still cascade.
    assert_eq!(definitions(&mut conn, "'faults', 'comments'"), indexes_before);
    let violations: Vec<(String, i64, String, i64)> = rows(&mut conn, "PRAGMA foreign_key_check");
    assert!(violations.is_empty(), "{violations:?}");
    let orphan = raw(
        &mut conn,
        "INSERT INTO comments (id, fault_id, customer_id, user_id, comment, created_at) VALUES ('cmt_9', 'flt_9', 'cus_a', 'u', 'x', 1)",
    );
    assert!(orphan.is_err(), "a comment needs its fault");
    raw(&mut conn, "DELETE FROM faults WHERE id = 'flt_1'").unwrap();
    let left: Vec<(String,)> = rows(&mut conn, "SELECT id FROM comments ORDER BY id");
    assert_eq!(left, [("cmt_3".to_owned(),)], "a fault's comments go with it");
    // A new fault gets a seq of its own; an element cannot be left without one.
    raw(&mut conn, "INSERT INTO faults (id, customer_id, resource_id, microservice_id, type, status, severity, message, \
         cause, created_at, resolved_at, resource_ancestry_path, site_id, ttl) \
         VALUES ('flt_5', 'cus_a', 'r', 'm', 'reboot', 'unresolved', 'LOW', 'm', 'c', 60, NULL, 'r', NULL, 99)").unwrap();
    let (seq,): (i64,) = rows(&mut conn, "SELECT seq FROM faults WHERE id = 'flt_5'").remove(0);
    assert!(seqs.iter().all(|(_, s)| *s < seq));
    let missing = raw(
        &mut conn,
        "INSERT INTO fault_ancestors (customer_id, element, created_at, fault_id, severity) VALUES ('cus_a', 'r', 60, 'flt_5', 'LOW')",
    );
    assert!(missing.is_err(), "fault_seq is NOT NULL");
}
