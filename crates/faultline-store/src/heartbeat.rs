//! Heartbeats and offline detection: the SQL, written once for both backends, and the two
//! transactions ([`heartbeat_fns!`]) each backend runs in its own way.
//!
//! A heartbeat locks its sites' rows (PostgreSQL `FOR UPDATE`; SQLite has one writer), upserts
//! them, and resolves the outage of each site that was offline. The detector locks the silent
//! sites it handles (`FOR UPDATE SKIP LOCKED`: a site whose heartbeat is being written right now
//! is not silent), marks them offline and opens their outages through the event ingest, whose
//! unique open key keeps one open outage per site. So a heartbeat and the detector racing on one
//! site never leave an outage open on a healthy site, or a silent site without one.

use faultline_core::heartbeat::{Heartbeat, OfflinePolicy, SweepCursor};
use faultline_core::time::Micros;

use crate::db::Conn;
use crate::error::StoreResult;
use crate::idempotency::{Claim, claim_key, fulfil_key};
use crate::ingest::{apply_unkeyed_in, cache_lookup_plans};
use crate::model::Written;
use crate::sql::{Param, Sql};
use faultline_core::ingest::IngestEvent;

/// Row-lock clause for the backend: PostgreSQL locks rows; SQLite's single writer needs none.
pub(crate) fn lock_clause(backend: crate::Backend, skip_locked: bool) -> &'static str {
    match (backend, skip_locked) {
        (crate::Backend::Sqlite, _) => "",
        (crate::Backend::Postgres, false) => " FOR UPDATE",
        (crate::Backend::Postgres, true) => " FOR UPDATE SKIP LOCKED",
    }
}

/// The batch's sites that exist, with `offline_since`, locked for the rest of the transaction.
pub(crate) fn lock_sites(customer_id: &str, beats: &[Heartbeat], lock: &str) -> Sql {
    let mut sql = Sql::default();
    let customer = sql.text(customer_id);
    let ids: Vec<String> = beats.iter().map(|b| sql.text(&b.site_id)).collect();
    sql.text = format!(
        "SELECT site_id, offline_since FROM sites WHERE customer_id = {customer} AND site_id IN ({}) \
         ORDER BY site_id{lock}",
        ids.join(", ")
    );
    sql
}

/// Create or refresh every site of the batch: alive at `at`, not offline.
pub(crate) fn upsert_sites(customer_id: &str, beats: &[Heartbeat], at: Micros) -> Sql {
    let mut sql = Sql::default();
    let (customer, at) = (sql.text(customer_id), sql.int(at));
    let rows: Vec<String> = beats
        .iter()
        .map(|b| {
            let site = sql.text(&b.site_id);
            let name = sql.bind(Param::OptText(b.name.clone()));
            format!("({customer}, {site}, {name}, {at}, {at}, NULL)")
        })
        .collect();
    sql.text = format!(
        "INSERT INTO sites (customer_id, site_id, name, first_seen, last_heartbeat, offline_since) VALUES {} \
         ON CONFLICT (customer_id, site_id) DO UPDATE SET \
         name = CASE WHEN sites.named_by_operator = 1 THEN sites.name ELSE COALESCE(excluded.name, sites.name) END, \
         last_heartbeat = CASE WHEN sites.last_heartbeat IS NULL OR excluded.last_heartbeat > sites.last_heartbeat \
         THEN excluded.last_heartbeat ELSE sites.last_heartbeat END, offline_since = NULL",
        rows.join(", ")
    );
    sql
}

/// On PostgreSQL, the planner settings of a detector transaction, for its reads of `sites` (set
/// for the transaction, so they end with it). A sweep runs when many sites fell silent at once,
/// which the table's statistics, gathered while they were healthy (or never, on a new
/// deployment), cannot show: planned from them, a batch's [`silent_sites`] read every silent site
/// through a bitmap scan and sorted them all to keep 500, and [`mark_offline`] read all of the
/// customer's sites (or the whole table) to update 500, so each batch cost as much as the sites
/// still to handle, or as the fleet, and a sweep grew with their square. Without sorts and sequential scans to choose from, the first reads the `sites_due`
/// index in its order from the cursor and stops at the batch's last row, and the second finds
/// its rows by address. The ingest's statements in the same transaction read by index either
/// way.
pub(crate) const SWEEP_PLANNER_SETTINGS: &str =
    "SELECT set_config('enable_sort', 'off', true), set_config('enable_seqscan', 'off', true)";

/// Up to `limit` healthy sites silent since the policy's cutoff, longest silent first, after
/// `after`: a range of the `sites_due` index, which starts where the previous batch ended
/// (PostgreSQL keeps the entries of rows just marked offline until vacuum, and reading them
/// again from the start made a sweep of 100,000 silent sites quadratic). Each row ends with the
/// row's address for [`mark_offline`] (NULL on SQLite, which finds the rows by key).
pub(crate) fn silent_sites(
    backend: crate::Backend,
    policy: &OfflinePolicy,
    now: Micros,
    limit: u32,
    after: Option<&SweepCursor>,
    lock: &str,
) -> Sql {
    let mut sql = Sql::default();
    let cutoff = sql.int(policy.cutoff(now));
    let after = match after {
        None => String::new(),
        Some(c) => format!(
            " AND (last_heartbeat, customer_id, site_id) > ({}, {}, {})",
            sql.int(c.last_heartbeat),
            sql.text(&c.customer_id),
            sql.text(&c.site_id)
        ),
    };
    let limit = sql.int(i64::from(limit));
    let address = row_address(backend);
    sql.text = format!(
        "SELECT customer_id, site_id, name, last_heartbeat, {address} FROM sites \
         WHERE offline_since IS NULL AND last_heartbeat <= {cutoff}{after} \
         ORDER BY last_heartbeat, customer_id, site_id LIMIT {limit}{lock}"
    );
    sql
}

/// The address of a `sites` row, as text: PostgreSQL's `ctid` (stable while this transaction
/// holds the row's lock); none on SQLite.
fn row_address(backend: crate::Backend) -> &'static str {
    match backend {
        crate::Backend::Sqlite => "NULL",
        crate::Backend::Postgres => "ctid::text",
    }
}

/// A silent site as [`silent_sites`] reads it: customer, site, name, last heartbeat, address.
pub(crate) type SilentRow = (String, String, Option<String>, i64, Option<String>);

/// Mark the batch's silent `sites` offline since their first missed heartbeat. They are locked
/// by this transaction since [`silent_sites`] read them healthy, so nothing else changed them.
/// PostgreSQL updates them by address, in one statement: any condition on the key could be
/// planned as a scan of the customer's sites, or of the whole `sites_due` index (see
/// [`SWEEP_PLANNER_SETTINGS`]). SQLite updates each customer's by key.
pub(crate) fn mark_offline(backend: crate::Backend, policy: &OfflinePolicy, sites: &[SilentRow]) -> Vec<Sql> {
    match backend {
        crate::Backend::Postgres => {
            let addresses: Vec<&str> = sites.iter().filter_map(|s| s.4.as_deref()).collect();
            if addresses.is_empty() {
                return Vec::new();
            }
            let mut sql = Sql::default();
            let interval = sql.int(policy.interval);
            let list: Vec<String> = addresses.iter().map(|a| format!("{}::tid", sql.text(a))).collect();
            sql.text = format!(
                "UPDATE sites SET offline_since = last_heartbeat + {interval} WHERE ctid IN ({})",
                list.join(", ")
            );
            vec![sql]
        }
        crate::Backend::Sqlite => {
            let mut by_customer: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for (customer_id, site_id, ..) in sites {
                by_customer.entry(customer_id).or_default().push(site_id);
            }
            by_customer
                .into_iter()
                .map(|(customer_id, ids)| {
                    let mut sql = Sql::default();
                    let (customer, interval) = (sql.text(customer_id), sql.int(policy.interval));
                    let ids: Vec<String> = ids.iter().map(|s| sql.text(s)).collect();
                    sql.text = format!(
                        "UPDATE sites SET offline_since = last_heartbeat + {interval} \
                         WHERE customer_id = {customer} AND offline_since IS NULL AND site_id IN ({})",
                        ids.join(", ")
                    );
                    sql
                })
                .collect()
        }
    }
}

/// A whole `record_heartbeats` in the caller's transaction: `claim`'s key, the heartbeats,
/// the key's answer.
pub(crate) async fn record_heartbeats_in(
    c: &mut dyn Conn,
    customer_id: &str,
    beats: &[Heartbeat],
    at: i64,
    retention_seconds: i64,
    actor: &str,
    claim: Option<&Claim<[String]>>,
) -> StoreResult<Written<Vec<String>>> {
    if let Some(claim) = claim
        && let Some(answer) = claim_key(c, claim).await?
    {
        return Ok(Written::Replayed(answer));
    }
    let resolved = record_beats(c, customer_id, beats, at, retention_seconds, actor).await?;
    if let Some(claim) = claim {
        fulfil_key(c, claim, resolved.as_slice()).await?;
    }
    Ok(Written::Done(resolved))
}

async fn record_beats(
    c: &mut dyn Conn,
    customer_id: &str,
    beats: &[Heartbeat],
    at: i64,
    retention_seconds: i64,
    actor: &str,
) -> StoreResult<Vec<String>> {
    if beats.is_empty() {
        return Ok(Vec::new());
    }
    let backend = c.backend();
    let cache = cache_lookup_plans(backend);
    let lock = lock_sites(customer_id, beats, lock_clause(backend, false)).cache_plan(cache);
    let known: Vec<(String, Option<i64>)> = c.fetch_all(&lock).await?;
    c.execute(&upsert_sites(customer_id, beats, at).cache_plan(cache)).await?;
    let recoveries: Vec<IngestEvent> = known
        .iter()
        .filter(|(_, offline_since)| offline_since.is_some())
        .map(|(site, _)| faultline_core::heartbeat::recovery(site, at))
        .collect();
    if recoveries.is_empty() {
        return Ok(Vec::new());
    }
    let results = apply_unkeyed_in(c, customer_id, &recoveries, retention_seconds, actor).await?;
    Ok(results
        .into_iter()
        .filter(|(_, outcome)| *outcome == faultline_core::ingest::Outcome::Resolved)
        .filter_map(|(id, _)| id)
        .collect())
}

/// One detector pass in the caller's transaction: how many sites it handled, and the last of
/// them.
pub(crate) async fn detect_offline_in(
    c: &mut dyn Conn,
    policy: &OfflinePolicy,
    now: i64,
    retention_seconds: i64,
    limit: u32,
    after: Option<&SweepCursor>,
) -> StoreResult<(usize, Option<SweepCursor>)> {
    let backend = c.backend();
    let cache = cache_lookup_plans(backend);
    if backend == crate::Backend::Postgres {
        c.execute(&Sql::new(SWEEP_PLANNER_SETTINGS, Vec::new())).await?;
    }
    let due = silent_sites(backend, policy, now, limit, after, lock_clause(backend, true)).cache_plan(cache);
    let rows: Vec<SilentRow> = c.fetch_all(&due).await?;
    for statement in mark_offline(backend, policy, &rows) {
        c.execute(&statement.cache_plan(cache)).await?;
    }
    let mut by_customer: std::collections::BTreeMap<&str, Vec<faultline_core::heartbeat::SilentSite>> =
        std::collections::BTreeMap::new();
    for (customer_id, site_id, name, last_heartbeat, _) in &rows {
        by_customer.entry(customer_id).or_default().push(faultline_core::heartbeat::SilentSite {
            customer_id: customer_id.clone(),
            site_id: site_id.clone(),
            name: name.clone(),
            last_heartbeat: *last_heartbeat,
        });
    }
    for (customer_id, sites) in by_customer {
        let outages: Vec<IngestEvent> =
            sites.iter().map(|s| s.outage(policy, now, retention_seconds)).collect();
        apply_unkeyed_in(c, customer_id, &outages, retention_seconds, "detector").await?;
    }
    let last = rows.last().map(|(customer_id, site_id, _, last_heartbeat, _)| SweepCursor {
        last_heartbeat: *last_heartbeat,
        customer_id: customer_id.clone(),
        site_id: site_id.clone(),
    });
    Ok((rows.len(), last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detector_locks_only_on_postgres_and_skips_sites_being_written() {
        let policy = OfflinePolicy { interval: 30_000_000, misses: 10 };
        let (pg_backend, lite_backend) = (crate::Backend::Postgres, crate::Backend::Sqlite);
        let pg = silent_sites(pg_backend, &policy, 1_000_000_000, 500, None, lock_clause(pg_backend, true));
        assert!(pg.text.ends_with("LIMIT $2 FOR UPDATE SKIP LOCKED"), "{}", pg.text);
        assert_eq!(pg.params, vec![Param::Int(700_000_000), Param::Int(500)]);
        let lite =
            silent_sites(lite_backend, &policy, 1_000_000_000, 500, None, lock_clause(lite_backend, true));
        assert!(lite.text.ends_with("LIMIT $2"), "{}", lite.text);
        let cursor = SweepCursor { last_heartbeat: 5, customer_id: "cus_1".into(), site_id: "s".into() };
        let next = silent_sites(lite_backend, &policy, 1_000_000_000, 500, Some(&cursor), "");
        assert!(
            next.text.contains("AND (last_heartbeat, customer_id, site_id) > ($2, $3, $4)"),
            "{}",
            next.text
        );
        assert!(
            next.text.ends_with("ORDER BY last_heartbeat, customer_id, site_id LIMIT $5"),
            "{}",
            next.text
        );
    }

    #[test]
    fn postgres_marks_a_batch_offline_by_address_and_sqlite_by_key() {
        let policy = OfflinePolicy { interval: 30_000_000, misses: 10 };
        let row = |customer: &str, site: &str, address: Option<&str>| -> SilentRow {
            (customer.into(), site.into(), None, 5, address.map(Into::into))
        };
        let pg = mark_offline(
            crate::Backend::Postgres,
            &policy,
            &[row("cus_1", "a", Some("(0,1)")), row("cus_2", "b", Some("(3,7)"))],
        );
        assert_eq!(pg.len(), 1, "one statement for every customer's sites");
        assert_eq!(
            pg[0].text,
            "UPDATE sites SET offline_since = last_heartbeat + $1 WHERE ctid IN ($2::tid, $3::tid)"
        );
        assert_eq!(pg[0].params[1..], [Param::Text("(0,1)".into()), Param::Text("(3,7)".into())]);
        let lite = mark_offline(
            crate::Backend::Sqlite,
            &policy,
            &[row("cus_1", "a", None), row("cus_2", "b", None), row("cus_1", "c", None)],
        );
        assert_eq!(lite.len(), 2, "one statement per customer");
        assert!(lite[0].text.ends_with("site_id IN ($3, $4)"), "{}", lite[0].text);
        assert!(mark_offline(crate::Backend::Postgres, &policy, &[]).is_empty());
    }

    /// The plans PostgreSQL makes for a batch in the middle of a mass outage, on tables it has
    /// no statistics for (a new deployment, or autovacuum not run yet): every statement of the
    /// batch reads only what the batch needs, through an index, however many sites are silent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sweep_batch_reads_through_indexes_on_postgres() {
        use sqlx::Connection;
        let postgres = crate::Backend::Postgres;
        let Some(db) = crate::testing::TestDb::new(postgres, "sweep_batch_plans").await else { return };
        let customer = db.store.create_customer("Acme").await.unwrap().id;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query(
            "INSERT INTO sites (customer_id, site_id, name, first_seen, last_heartbeat) \
             SELECT $1, 'site_' || lpad(i::text, 5, '0'), NULL, 0, 1000 + i FROM generate_series(1, 5000) i",
        )
        .bind(&customer)
        .execute(&mut conn)
        .await
        .unwrap();
        let policy = OfflinePolicy { interval: 1_000_000, misses: 3 };
        let now = 1_000_000_000;
        let (handled, cursor) = db.store.detect_offline(&policy, now, 86_400, 500, None).await.unwrap();
        assert_eq!(handled, 500, "the sweep's first batch");

        // The second batch's statements, in a detector transaction.
        let mut tx = conn.begin().await.unwrap();
        sqlx::query(SWEEP_PLANNER_SETTINGS).execute(&mut *tx).await.unwrap();
        async fn explain(conn: &mut sqlx::PgConnection, statement: &Sql) -> String {
            let text = format!("EXPLAIN (COSTS OFF) {}", statement.text);
            let explain = Sql::new(text, statement.params.clone()).cache_plan(false);
            let c: &mut dyn crate::db::Conn = &mut crate::db::postgres::Pg(conn);
            let lines: Vec<String> = c.scalars(&explain).await.unwrap();
            lines.join("\n")
        }
        let due = silent_sites(postgres, &policy, now, 500, cursor.as_ref(), lock_clause(postgres, true));
        let plan = explain(&mut tx, &due).await;
        assert!(plan.contains("Index Scan using sites_due on sites"), "{plan}");
        for whole_range in ["Sort", "Bitmap", "Seq Scan"] {
            assert!(!plan.contains(whole_range), "{plan}");
        }
        let rows: Vec<SilentRow> = {
            let c: &mut dyn crate::db::Conn = &mut crate::db::postgres::Pg(&mut tx);
            c.fetch_all(&due.cache_plan(false)).await.unwrap()
        };
        assert_eq!(rows.len(), 500);
        let marks = mark_offline(postgres, &policy, &rows);
        let plan = explain(&mut tx, &marks[0]).await;
        assert!(
            plan.contains("Tid Scan on sites") && !plan.contains("Index") && !plan.contains("Seq Scan"),
            "{plan}"
        );

        // The outages' open-fault read: one index probe per site, among the first batch's outages.
        let outages: Vec<faultline_core::ingest::IngestEvent> = rows
            .iter()
            .take(100)
            .map(|(customer_id, site_id, name, last_heartbeat, _)| {
                let site = faultline_core::heartbeat::SilentSite {
                    customer_id: customer_id.clone(),
                    site_id: site_id.clone(),
                    name: name.clone(),
                    last_heartbeat: *last_heartbeat,
                };
                site.outage(&policy, now, 86_400)
            })
            .collect();
        let open = crate::ingest::open_faults_of(&customer, &outages, postgres);
        let plan = explain(&mut tx, &open[0]).await;
        assert!(plan.contains("Nested Loop"), "{plan}");
        assert!(
            plan.contains("Index Scan using faults_unresolved_by_resource on faults f")
                && plan.contains("(resource_id = \"*VALUES*\".column1) AND (type = \"*VALUES*\".column2)"),
            "{plan}"
        );
        assert!(!plan.contains("Hash") && !plan.contains("Seq Scan"), "{plan}");
        tx.rollback().await.unwrap();
        conn.close().await.ok();
        db.cleanup().await;
    }

    #[test]
    fn a_batch_upsert_binds_the_customer_and_time_once() {
        let beats = vec![
            Heartbeat { site_id: "a".into(), name: None },
            Heartbeat { site_id: "b".into(), name: Some("B".into()) },
        ];
        let sql = upsert_sites("cus_1", &beats, 7);
        assert_eq!(sql.params.len(), 2 + 2 * beats.len());
        assert!(sql.text.contains("($1, $3, $4, $2, $2, NULL), ($1, $5, $6, $2, $2, NULL)"), "{}", sql.text);
    }
}
