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

use crate::sql::{Param, Sql};

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
         ON CONFLICT (customer_id, site_id) DO UPDATE SET name = COALESCE(excluded.name, sites.name), \
         last_heartbeat = CASE WHEN excluded.last_heartbeat > sites.last_heartbeat \
         THEN excluded.last_heartbeat ELSE sites.last_heartbeat END, offline_since = NULL",
        rows.join(", ")
    );
    sql
}

/// Up to `limit` healthy sites silent since the policy's cutoff, longest silent first, after
/// `after`: a range of the `sites_due` index, which starts where the previous batch ended
/// (PostgreSQL keeps the entries of rows just marked offline until vacuum, and reading them
/// again from the start made a sweep of 100,000 silent sites quadratic).
pub(crate) fn silent_sites(
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
    sql.text = format!(
        "SELECT customer_id, site_id, name, last_heartbeat FROM sites \
         WHERE offline_since IS NULL AND last_heartbeat <= {cutoff}{after} \
         ORDER BY last_heartbeat, customer_id, site_id LIMIT {limit}{lock}"
    );
    sql
}

/// Mark the customer's `sites` offline since their first missed heartbeat.
pub(crate) fn mark_offline(customer_id: &str, sites: &[&str], policy: &OfflinePolicy) -> Sql {
    let mut sql = Sql::default();
    let (customer, interval) = (sql.text(customer_id), sql.int(policy.interval));
    let ids: Vec<String> = sites.iter().map(|s| sql.text(s)).collect();
    sql.text = format!(
        "UPDATE sites SET offline_since = last_heartbeat + {interval} \
         WHERE customer_id = {customer} AND offline_since IS NULL AND site_id IN ({})",
        ids.join(", ")
    );
    sql
}

/// `record_heartbeats_in` and `detect_offline_in` for the backend whose database type is
/// `$db` and whose [`crate::Backend`] is `$backend`; they use the backend's `execute`,
/// `query_rows`, `CACHE_PLANS_OF_LOOKUPS` and the ingest functions of
/// [`crate::ingest::ingest_fns!`].
macro_rules! heartbeat_fns {
    ($db:ty, $backend:expr) => {
        /// A whole `record_heartbeats` in the caller's transaction: `idem`'s claim, the
        /// heartbeats, `idem`'s answer.
        async fn record_heartbeats_in(
            conn: &mut <$db as sqlx::Database>::Connection,
            customer_id: &str,
            beats: &[faultline_core::heartbeat::Heartbeat],
            at: i64,
            retention_seconds: i64,
            actor: &str,
            idem: Option<&$crate::Idempotency<'_, [String]>>,
        ) -> $crate::StoreResult<$crate::Written<Vec<String>>> {
            if let Some(idem) = idem
                && let Some(answer) = claim_key(&mut *conn, idem).await?
            {
                return Ok($crate::Written::Replayed(answer));
            }
            let resolved = record_beats(&mut *conn, customer_id, beats, at, retention_seconds, actor).await?;
            if let Some(idem) = idem {
                fulfil_key(&mut *conn, idem, resolved.as_slice()).await?;
            }
            Ok($crate::Written::Done(resolved))
        }

        async fn record_beats(
            conn: &mut <$db as sqlx::Database>::Connection,
            customer_id: &str,
            beats: &[faultline_core::heartbeat::Heartbeat],
            at: i64,
            retention_seconds: i64,
            actor: &str,
        ) -> $crate::StoreResult<Vec<String>> {
            use $crate::heartbeat::{lock_clause, lock_sites, upsert_sites};
            if beats.is_empty() {
                return Ok(Vec::new());
            }
            let lock = lock_sites(customer_id, beats, lock_clause($backend, false));
            let known: Vec<(String, Option<i64>)> =
                query_rows(&lock).persistent(CACHE_PLANS_OF_LOOKUPS).fetch_all(&mut *conn).await?;
            execute(&upsert_sites(customer_id, beats, at))
                .persistent(CACHE_PLANS_OF_LOOKUPS)
                .execute(&mut *conn)
                .await?;
            let recoveries: Vec<faultline_core::ingest::IngestEvent> = known
                .iter()
                .filter(|(_, offline_since)| offline_since.is_some())
                .map(|(site, _)| faultline_core::heartbeat::recovery(site, at))
                .collect();
            if recoveries.is_empty() {
                return Ok(Vec::new());
            }
            let results =
                apply_unkeyed_in(&mut *conn, customer_id, &recoveries, retention_seconds, actor).await?;
            Ok(results
                .into_iter()
                .filter(|(_, outcome)| *outcome == faultline_core::ingest::Outcome::Resolved)
                .filter_map(|(id, _)| id)
                .collect())
        }

        /// One detector pass in the caller's transaction: how many sites it handled, and the
        /// last of them.
        async fn detect_offline_in(
            conn: &mut <$db as sqlx::Database>::Connection,
            policy: &faultline_core::heartbeat::OfflinePolicy,
            now: i64,
            retention_seconds: i64,
            limit: u32,
            after: Option<&faultline_core::heartbeat::SweepCursor>,
        ) -> $crate::StoreResult<(usize, Option<faultline_core::heartbeat::SweepCursor>)> {
            use $crate::heartbeat::{lock_clause, mark_offline, silent_sites};
            let due = silent_sites(policy, now, limit, after, lock_clause($backend, true));
            let rows: Vec<(String, String, Option<String>, i64)> =
                query_rows(&due).persistent(CACHE_PLANS_OF_LOOKUPS).fetch_all(&mut *conn).await?;
            let mut by_customer: std::collections::BTreeMap<
                &str,
                Vec<faultline_core::heartbeat::SilentSite>,
            > = std::collections::BTreeMap::new();
            for (customer_id, site_id, name, last_heartbeat) in &rows {
                by_customer.entry(customer_id).or_default().push(faultline_core::heartbeat::SilentSite {
                    customer_id: customer_id.clone(),
                    site_id: site_id.clone(),
                    name: name.clone(),
                    last_heartbeat: *last_heartbeat,
                });
            }
            for (customer_id, sites) in by_customer {
                let ids: Vec<&str> = sites.iter().map(|s| s.site_id.as_str()).collect();
                execute(&mark_offline(customer_id, &ids, policy))
                    .persistent(CACHE_PLANS_OF_LOOKUPS)
                    .execute(&mut *conn)
                    .await?;
                let outages: Vec<faultline_core::ingest::IngestEvent> =
                    sites.iter().map(|s| s.outage(policy, now, retention_seconds)).collect();
                apply_unkeyed_in(&mut *conn, customer_id, &outages, retention_seconds, "detector").await?;
            }
            let last = rows.last().map(|(customer_id, site_id, _, last_heartbeat)| {
                faultline_core::heartbeat::SweepCursor {
                    last_heartbeat: *last_heartbeat,
                    customer_id: customer_id.clone(),
                    site_id: site_id.clone(),
                }
            });
            Ok((rows.len(), last))
        }
    };
}
pub(crate) use heartbeat_fns;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detector_locks_only_on_postgres_and_skips_sites_being_written() {
        let policy = OfflinePolicy { interval: 30_000_000, misses: 10 };
        let pg = silent_sites(&policy, 1_000_000_000, 500, None, lock_clause(crate::Backend::Postgres, true));
        assert!(pg.text.ends_with("LIMIT $2 FOR UPDATE SKIP LOCKED"), "{}", pg.text);
        assert_eq!(pg.params, vec![Param::Int(700_000_000), Param::Int(500)]);
        let lite = silent_sites(&policy, 1_000_000_000, 500, None, lock_clause(crate::Backend::Sqlite, true));
        assert!(lite.text.ends_with("LIMIT $2"), "{}", lite.text);
        let cursor = SweepCursor { last_heartbeat: 5, customer_id: "cus_1".into(), site_id: "s".into() };
        let next = silent_sites(&policy, 1_000_000_000, 500, Some(&cursor), "");
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
