//! The production backend: PostgreSQL, shared by every replica. Cross-process rules
//! (one migration at a time, one bootstrap) are enforced with transaction-scoped advisory
//! locks, so any number of replicas may start at once.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Executor;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::{StoreError, StoreResult};
use crate::model::{
    AccessToken, ApiKey, ApiKeyWithHash, Customer, EventResult, FaultEvent, Horizon, Idempotency, Lease,
    LogRead, LoggedEvent, NewApiKey, SigningKey, TokenUse, TopResource,
};
use crate::rows::{self, ACCESS_TOKEN_COLUMNS, API_KEY_COLUMNS, CUSTOMER_COLUMNS, SIGNING_KEY_COLUMNS};
use crate::sql::{self, FaultQuery, Sql, TopQuery};
use crate::{Backend, Resolution, Store};
use faultline_core::fault::Fault;

mod reads;

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_foundation.sql")),
    (2, include_str!("migrations/0002_faults.sql")),
    (3, include_str!("migrations/0003_tokens.sql")),
    (4, include_str!("migrations/0004_lifecycle.sql")),
    (5, include_str!("migrations/0005_ingest.sql")),
    (6, include_str!("migrations/0006_idempotency.sql")),
    (7, include_str!("migrations/0007_heartbeats_and_stream.sql")),
    (8, include_str!("migrations/0008_ancestors_without_cascade.sql")),
    (9, include_str!("migrations/0009_ancestors_with_severity.sql")),
    (10, include_str!("migrations/0010_comment_counts.sql")),
];

/// Advisory lock keys, one per cross-replica critical section.
const LOCK_MIGRATE: i64 = 0x6661_756c_0001;
const LOCK_BOOTSTRAP: i64 = 0x6661_756c_0002;
const LOCK_SIGNING_KEYS: i64 = 0x6661_756c_0003;

pub struct PostgresStore {
    pool: PgPool,
    /// One fault, or a page of a list, in one round trip (`reads`).
    reads: reads::Reads,
}

impl PostgresStore {
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        Self::open_with(options).await
    }

    pub async fn open_with(options: PgConnectOptions) -> StoreResult<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        Ok(PostgresStore { pool, reads: reads::Reads::new(options) })
    }

    async fn locked_tx(&self, lock: i64) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock).execute(&mut *tx).await?;
        Ok(tx)
    }

    /// Run `statements` in one transaction, with `idem`'s key when given.
    async fn write<T: ?Sized>(
        &self,
        statements: Vec<Sql>,
        idem: Option<&Idempotency<'_, T>>,
        result: &T,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(idem) = idem {
            claim_key(&mut tx, idem).await?;
        }
        for statement in &statements {
            execute(statement).execute(&mut *tx).await.map_err(|e| StoreError::on_constraint(e, "fault"))?;
        }
        if let Some(idem) = idem {
            fulfil_key(&mut tx, idem, result).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn apply_events_once(
        &self,
        customer_id: &str,
        events: &[faultline_core::ingest::IngestEvent],
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [EventResult]>>,
    ) -> StoreResult<Vec<EventResult>> {
        let mut tx = self.pool.begin().await?;
        let results = apply_events_in(&mut tx, customer_id, events, retention_seconds, actor, idem).await?;
        tx.commit().await?;
        Ok(results)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.locked_tx(LOCK_MIGRATE).await?;
        (&mut *tx).execute(sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS faultline_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        ))
        .await?;
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM faultline_migrations").fetch_all(&mut *tx).await?;
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            crate::log_migration(*version, applied.is_empty());
            (&mut *tx)
                .execute(sqlx::raw_sql(sql))
                .await
                .map_err(|source| StoreError::Migration { version: *version, source })?;
            sqlx::query("INSERT INTO faultline_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(faultline_core::time::now_micros())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn applied_migrations(&self) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT version FROM faultline_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
    }

    async fn analyze(&self) -> StoreResult<()> {
        sqlx::raw_sql("ANALYZE").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_customer(&self, name: &str) -> StoreResult<Customer> {
        let customer = rows::new_customer(None, name);
        sqlx::query("INSERT INTO customers (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&customer.id)
            .bind(&customer.name)
            .bind(customer.created_at)
            .execute(&self.pool)
            .await?;
        Ok(customer)
    }

    async fn get_customer(&self, customer_id: &str) -> StoreResult<Option<Customer>> {
        let row = sqlx::query_as(&format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1"))
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(rows::customer))
    }

    async fn list_customers(&self) -> StoreResult<Vec<Customer>> {
        let rows =
            sqlx::query_as(&format!("SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY created_at, id"))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(rows::customer).collect())
    }

    async fn bootstrap(
        &self,
        customer_name: &str,
        key: NewApiKey,
    ) -> StoreResult<Option<(Customer, ApiKey)>> {
        let mut tx = self.locked_tx(LOCK_BOOTSTRAP).await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers").fetch_one(&mut *tx).await?;
        if existing > 0 {
            return Ok(None);
        }
        let customer = rows::new_customer(Some(&key.customer_id), customer_name);
        sqlx::query("INSERT INTO customers (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&customer.id)
            .bind(&customer.name)
            .bind(customer.created_at)
            .execute(&mut *tx)
            .await?;
        let api_key = insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(Some((customer, api_key)))
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        let mut tx = self.pool.begin().await?;
        let api_key = insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(api_key)
    }

    async fn list_api_keys(&self, customer_id: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query_as(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE ($1::TEXT IS NULL OR customer_id = $1) ORDER BY created_at, id"
        ))
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(rows::api_key).collect())
    }

    async fn revoke_api_key(&self, key_id: &str, at: i64) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(key_id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn find_api_key(&self, lookup: &str) -> StoreResult<Option<ApiKeyWithHash>> {
        let row: Option<rows::ApiKeyWithHashRow> =
            sqlx::query_as(&format!("SELECT secret_hash, {API_KEY_COLUMNS} FROM api_keys WHERE lookup = $1"))
                .bind(lookup)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(rows::api_key_with_hash))
    }

    async fn touch_api_key(&self, key_id: &str, at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)")
            .bind(key_id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_faults(
        &self,
        faults: &[Fault],
        actor: &str,
        idem: Option<&Idempotency<'_, [Fault]>>,
    ) -> StoreResult<()> {
        self.write(sql::insert_faults(faults, actor, Backend::Postgres), idem, faults).await
    }

    async fn get_fault(&self, customer_id: &str, fault_id: &str) -> StoreResult<Option<Fault>> {
        Ok(self.reads.faults(&fault_select(customer_id, fault_id)).await?.pop())
    }

    async fn delete_fault(&self, customer_id: &str, fault_id: &str, actor: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let removed: Option<rows::RemovedRow> = sqlx::query_as(rows::DELETE_FAULT)
            .bind(fault_id)
            .bind(customer_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(removed) = removed else {
            return Ok(false);
        };
        execute(&sql::delete_ancestors(&removed)).execute(&mut *tx).await?;
        append_event(&mut tx, customer_id, fault_id, "deleted", actor, &rows::removed_detail(&removed))
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn add_comment(
        &self,
        customer_id: &str,
        fault_id: &str,
        comment: &faultline_core::fault::Comment,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Option<Fault>> {
        let mut tx = self.pool.begin().await?;
        if let Some(idem) = idem {
            claim_key(&mut tx, idem).await?;
        }
        if !fault_exists(&mut tx, customer_id, fault_id).await? {
            return Ok(None);
        }
        insert_comment(&mut tx, customer_id, fault_id, comment, actor).await?;
        let fault = load_fault(&mut tx, customer_id, fault_id).await?;
        if let (Some(idem), Some(fault)) = (idem, &fault) {
            fulfil_key(&mut tx, idem, fault).await?;
        }
        tx.commit().await?;
        Ok(fault)
    }

    async fn resolve_fault(
        &self,
        customer_id: &str,
        fault_id: &str,
        resolution: Resolution<'_>,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Option<Fault>> {
        let Resolution { at, ttl, comment } = resolution;
        let mut tx = self.pool.begin().await?;
        if let Some(idem) = idem {
            claim_key(&mut tx, idem).await?;
        }
        if !fault_exists(&mut tx, customer_id, fault_id).await? {
            return Ok(None);
        }
        let resolved = sqlx::query(rows::RESOLVE_FAULT)
            .bind(fault_id)
            .bind(customer_id)
            .bind(at)
            .bind(ttl)
            .execute(&mut *tx)
            .await?;
        // Resolving a resolved fault changes nothing, not even by adding its comment again.
        if resolved.rows_affected() == 1 {
            if let Some(comment) = comment {
                insert_comment(&mut tx, customer_id, fault_id, comment, actor).await?;
            }
            append_event(&mut tx, customer_id, fault_id, "resolved", actor, "{}").await?;
        }
        let fault = load_fault(&mut tx, customer_id, fault_id).await?;
        if let (Some(idem), Some(fault)) = (idem, &fault) {
            fulfil_key(&mut tx, idem, fault).await?;
        }
        tx.commit().await?;
        Ok(fault)
    }

    async fn apply_events(
        &self,
        customer_id: &str,
        events: &[faultline_core::ingest::IngestEvent],
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [EventResult]>>,
    ) -> StoreResult<Vec<EventResult>> {
        retry_deadlocks("ingest batch", || {
            self.apply_events_once(customer_id, events, retention_seconds, actor, idem)
        })
        .await
    }

    async fn sweep_expired(&self, now_seconds: i64, limit: u32) -> StoreResult<usize> {
        let mut tx = self.pool.begin().await?;
        let gone: Vec<rows::RemovedRow> = sqlx::query_as(rows::SWEEP_EXPIRED)
            .bind(now_seconds)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        for removed in &gone {
            execute(&sql::delete_ancestors(removed)).execute(&mut *tx).await?;
            let (fault_id, customer_id) = (&removed.0, &removed.1);
            append_event(&mut tx, customer_id, fault_id, "expired", "system", &rows::removed_detail(removed))
                .await?;
        }
        tx.commit().await?;
        Ok(gone.len())
    }

    async fn fault_timeline(&self, customer_id: &str, fault_id: &str) -> StoreResult<Vec<FaultEvent>> {
        let rows: Vec<rows::EventRow> = sqlx::query_as(
            "SELECT seq, fault_id, kind, actor, at, detail FROM fault_events WHERE customer_id = $1 AND fault_id = $2 ORDER BY seq",
        )
        .bind(customer_id)
        .bind(fault_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(rows::fault_event).collect())
    }

    async fn top_groups(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        group: crate::analytics::GroupBy,
        limit: u32,
        now: i64,
    ) -> crate::StoreResult<Vec<(String, i64)>> {
        let statement = crate::analytics::top_groups(customer_id, filter, group, limit, now);
        Ok(crate::sql::bind_params!(sqlx::query_as(&statement.text), statement).fetch_all(&self.pool).await?)
    }

    async fn counts_by_slot(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        slots: crate::analytics::Slots,
        group: Option<(crate::analytics::GroupBy, &[String], &str)>,
        now: i64,
    ) -> crate::StoreResult<Vec<(i64, String, i64)>> {
        let statement = crate::analytics::counts_by_slot(customer_id, filter, slots, group, now);
        Ok(crate::sql::bind_params!(sqlx::query_as(&statement.text), statement).fetch_all(&self.pool).await?)
    }

    async fn repair_times(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> crate::StoreResult<Vec<i64>> {
        let statement = crate::analytics::repair_times(customer_id, filter, now);
        Ok(crate::sql::bind_params!(sqlx::query_scalar(&statement.text), statement)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn site_outages(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        from: i64,
        to: i64,
    ) -> crate::StoreResult<Vec<(String, i64, Option<i64>)>> {
        let statement = crate::analytics::site_outages(customer_id, filter, from, to);
        Ok(crate::sql::bind_params!(sqlx::query_as(&statement.text), statement).fetch_all(&self.pool).await?)
    }

    async fn count_open(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> crate::StoreResult<i64> {
        let statement = crate::analytics::count_open(customer_id, filter, now);
        Ok(crate::sql::bind_params!(sqlx::query_scalar(&statement.text), statement)
            .fetch_one(&self.pool)
            .await?)
    }
    async fn list_faults(&self, customer_id: &str, query: &FaultQuery<'_>) -> StoreResult<Vec<Fault>> {
        self.reads
            .faults(&sql::list_faults(customer_id, query, Backend::Postgres, reads::comments_column()))
            .await
    }

    async fn top_resources(&self, customer_id: &str, query: &TopQuery<'_>) -> StoreResult<Vec<TopResource>> {
        // REPEATABLE READ gives both statements one snapshot: counts and samples agree.
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let top = read_top_resources(&mut tx, customer_id, query).await?;
        tx.commit().await?;
        Ok(top)
    }

    async fn ensure_signing_key(&self, candidate: &SigningKey) -> StoreResult<()> {
        let mut tx = self.locked_tx(LOCK_SIGNING_KEYS).await?;
        let active: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL")
            .fetch_one(&mut *tx)
            .await?;
        if active == 0 {
            bind_signing_key(sqlx::query(rows::INSERT_SIGNING_KEY), candidate).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_signing_key(&self, new: &SigningKey, verify_until: i64) -> StoreResult<()> {
        let mut tx = self.locked_tx(LOCK_SIGNING_KEYS).await?;
        sqlx::query(rows::RETIRE_SIGNING_KEYS)
            .bind(new.created_at)
            .bind(verify_until)
            .execute(&mut *tx)
            .await?;
        bind_signing_key(sqlx::query(rows::INSERT_SIGNING_KEY), new).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn signing_keys(&self, now: i64) -> StoreResult<Vec<SigningKey>> {
        let rows = sqlx::query_as(&format!(
            "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys WHERE retired_at IS NULL OR verify_until > $1 \
             ORDER BY (retired_at IS NULL) DESC, created_at DESC"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(rows::signing_key).collect())
    }

    async fn insert_access_token(
        &self,
        token: &AccessToken,
        short_code: &str,
        idem: Option<&Idempotency<'_, AccessToken>>,
    ) -> StoreResult<()> {
        self.write(sql::insert_access_token(token, short_code)?, idem, token).await
    }

    async fn idempotency_answer(
        &self,
        credential_id: &str,
        key: &str,
        after: i64,
    ) -> StoreResult<Option<(String, crate::StoredResponse)>> {
        let row: Option<(String, i64, String)> = sqlx::query_as(crate::idempotency::ANSWER)
            .bind(credential_id)
            .bind(key)
            .bind(after)
            .fetch_optional(&self.pool)
            .await?;
        row.map(crate::idempotency::stored).transpose()
    }

    async fn sweep_idempotency_keys(&self, before: i64, limit: u32) -> StoreResult<usize> {
        let result = sqlx::query(crate::idempotency::SWEEP)
            .bind(before)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() as usize)
    }

    async fn get_access_token(&self, token_id: &str) -> StoreResult<Option<AccessToken>> {
        let row = sqlx::query_as(&format!("SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE id = $1"))
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(rows::access_token).transpose()
    }

    async fn list_access_tokens(&self, customer_id: &str, limit: u32) -> StoreResult<Vec<AccessToken>> {
        let rows: Vec<rows::AccessTokenRow> = sqlx::query_as(&format!(
            "SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE customer_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(customer_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(rows::access_token).collect()
    }

    async fn revoke_access_token(&self, customer_id: &str, token_id: &str, at: i64) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND customer_id = $2",
        )
        .bind(token_id)
        .bind(customer_id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn record_token_uses(&self, uses: &[TokenUse]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for u in uses {
            sqlx::query(rows::RECORD_TOKEN_USE)
                .bind(u.count)
                .bind(u.last_used_at)
                .bind(&u.token_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn short_link_token(&self, code: &str) -> StoreResult<Option<AccessToken>> {
        let row = sqlx::query_as(&format!(
            "SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE id = (SELECT token_id FROM short_links WHERE code = $1)"
        ))
        .bind(code)
        .fetch_optional(&self.pool)
        .await?;
        row.map(rows::access_token).transpose()
    }

    async fn scope_ids_exist(
        &self,
        customer_id: &str,
        scope: &faultline_core::scope::TokenScope,
    ) -> StoreResult<bool> {
        for statement in sql::scope_id_counts(customer_id, scope) {
            let (expected, sql) = statement;
            let found: i64 = count(&sql).fetch_one(&self.pool).await?;
            if found != expected {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn shared_secret(&self, name: &str) -> StoreResult<Vec<u8>> {
        let mut fresh = [0u8; 32];
        faultline_core::secret::random_bytes(&mut fresh);
        sqlx::query("INSERT INTO shared_secrets (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(fresh.as_slice())
            .bind(faultline_core::time::now_micros())
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT secret FROM shared_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn record_heartbeats(
        &self,
        customer_id: &str,
        beats: &[faultline_core::heartbeat::Heartbeat],
        at: i64,
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [String]>>,
    ) -> StoreResult<Vec<String>> {
        retry_deadlocks("heartbeats", || async {
            let mut tx = self.pool.begin().await?;
            let resolved =
                record_heartbeats_in(&mut tx, customer_id, beats, at, retention_seconds, actor, idem).await?;
            tx.commit().await?;
            Ok(resolved)
        })
        .await
    }

    async fn detect_offline(
        &self,
        policy: &faultline_core::heartbeat::OfflinePolicy,
        now: i64,
        retention_seconds: i64,
        limit: u32,
        after: Option<&faultline_core::heartbeat::SweepCursor>,
    ) -> StoreResult<(usize, Option<faultline_core::heartbeat::SweepCursor>)> {
        retry_deadlocks("offline detection", || async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(crate::heartbeat::SWEEP_PLANNER_SETTINGS).execute(&mut *tx).await?;
            let handled = detect_offline_in(&mut tx, policy, now, retention_seconds, limit, after).await?;
            tx.commit().await?;
            Ok(handled)
        })
        .await
    }

    async fn read_log(&self, after: i64, limit: u32) -> StoreResult<LogRead> {
        // The page and the snapshot bounds come from one statement, so from one snapshot.
        type Row = (
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<String>,
            i64,
            i64,
        );
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT e.seq, e.customer_id, e.fault_id, e.kind, e.at, e.detail, \
             pg_snapshot_xmin(s.snap)::text::bigint, pg_snapshot_xmax(s.snap)::text::bigint \
             FROM (SELECT pg_current_snapshot() AS snap) s LEFT JOIN LATERAL \
             (SELECT {} FROM fault_events WHERE seq > $1 ORDER BY seq LIMIT $2) e ON true",
            rows::LOG_COLUMNS
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let horizon = rows.first().map(|r| Horizon { xmin: r.6, xmax: r.7 });
        let entries = rows
            .into_iter()
            .filter_map(|(seq, customer_id, fault_id, kind, at, detail, _, _)| {
                Some(rows::logged_event((seq?, customer_id?, fault_id?, kind?, at?, detail?)))
            })
            .collect();
        Ok(LogRead { entries, horizon })
    }

    async fn log_head(&self) -> StoreResult<(i64, Option<Horizon>)> {
        let (head, xmin, xmax): (i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(MAX(seq), 0), pg_snapshot_xmin(pg_current_snapshot())::text::bigint, \
             pg_snapshot_xmax(pg_current_snapshot())::text::bigint FROM fault_events",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((head, Some(Horizon { xmin, xmax })))
    }

    async fn customer_log(
        &self,
        customer_id: &str,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<LoggedEvent>> {
        customer_log_from(&self.pool, customer_id, after, upto, limit).await
    }

    async fn log_notifications(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(LOG_CHANNEL).await?;
        let (wake, wakeups) = tokio::sync::mpsc::channel(1);
        tokio::spawn(forward_notifications(listener, wake));
        Ok(Some(wakeups))
    }

    async fn lease(&self, job: &str) -> StoreResult<Option<Box<dyn Lease>>> {
        // Keyed by schema too, so deployments (and tests) sharing one database do not collide.
        let mut conn = self.pool.acquire().await?;
        let held: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended(COALESCE(current_schema(), '') || '/' || $1, 0))",
        )
        .bind(job)
        .fetch_one(&mut *conn)
        .await?;
        if !held {
            return Ok(None);
        }
        // If this replica's host dies or is cut off, PostgreSQL notices within about 20 s (TCP
        // keepalives on this session), ends the session and releases the lock.
        let mut conn = conn.detach();
        sqlx::query(
            "SELECT set_config('tcp_keepalives_idle', '10', false), \
             set_config('tcp_keepalives_interval', '3', false), set_config('tcp_keepalives_count', '3', false)",
        )
        .execute(&mut conn)
        .await?;
        Ok(Some(Box::new(SessionLock { conn })))
    }
}

async fn insert_api_key(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    key: NewApiKey,
) -> StoreResult<ApiKey> {
    sqlx::query(rows::INSERT_API_KEY)
        .bind(&key.id)
        .bind(&key.customer_id)
        .bind(&key.user_id)
        .bind(&key.name)
        .bind(&key.lookup)
        .bind(&key.secret_hash)
        .bind(key.permissions.to_string())
        .bind(key.rate_limit_per_minute.map(i64::from))
        .bind(key.created_at)
        .execute(&mut **tx)
        .await
        .map_err(|e| StoreError::on_constraint(e, "customer"))?;
    Ok(rows::api_key_from_new(key))
}

/// A statement with its parameters bound.
fn execute(statement: &Sql) -> sqlx::query::Query<'_, sqlx::Postgres, PgArguments> {
    sql::bind_params!(sqlx::query(&statement.text), statement)
}

fn bind_signing_key<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, PgArguments>,
    key: &'q SigningKey,
) -> sqlx::query::Query<'q, sqlx::Postgres, PgArguments> {
    query.bind(&key.kid).bind(key.secret_key.as_slice()).bind(key.public_key.as_slice()).bind(key.created_at)
}

/// A `SELECT COUNT(…)` statement with its parameters bound.
fn count(statement: &Sql) -> sqlx::query::QueryScalar<'_, sqlx::Postgres, i64, PgArguments> {
    sql::bind_params!(sqlx::query_scalar(&statement.text), statement)
}

crate::idempotency::idempotency_fns!(sqlx::Postgres);
rows::customer_log_fn!(sqlx::Postgres);
/// Whether the multi-key lookups of the ingest and of heartbeats keep prepared statements. Not
/// on PostgreSQL: after a few runs it caches a generic plan, and one made while a new
/// deployment's `sites` or `faults` table was nearly empty (not yet analysed) scans the table
/// once it has grown (`bench/heartbeats.sh`; figures in `BENCHMARKS.md`). Planning them for
/// their values each time costs the event ingest nothing measurable. Values alone do not make
/// a plan right when the statistics are wrong: see `heartbeat::SWEEP_PLANNER_SETTINGS` and
/// `ingest::open_faults_of`.
const CACHE_PLANS_OF_LOOKUPS: bool = false;

crate::ingest::ingest_fns!(sqlx::Postgres, Backend::Postgres);
crate::sql::top_resources_fn!(sqlx::Postgres, Backend::Postgres);

/// Run a write transaction again when it lost a deadlock: concurrent batches that touch the
/// same rows can deadlock on PostgreSQL, and the victim's transaction rolled back whole.
async fn retry_deadlocks<T, F, Fut>(what: &str, mut write: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match write().await {
            Err(StoreError::Database(err)) if attempt < ATTEMPTS && is_deadlock(&err) => {
                tracing::debug!(attempt, what, "write deadlocked with another; retrying");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A statement returning rows of type `O`, with its parameters bound.
fn query_rows<O>(statement: &Sql) -> sqlx::query::QueryAs<'_, sqlx::Postgres, O, PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    sql::bind_params!(sqlx::query_as(&statement.text), statement)
}

crate::heartbeat::heartbeat_fns!(sqlx::Postgres, Backend::Postgres);

/// The channel on which commits to the event log are announced (by a trigger; migration 7).
const LOG_CHANNEL: &str = "faultline_events";

/// Forward `LISTEN` notifications on [`LOG_CHANNEL`] as wake-ups, coalesced, until the
/// receiver is dropped. A lost connection is re-established by the listener; the wake-up sent
/// then makes the reader poll for whatever it missed meanwhile.
async fn forward_notifications(
    mut listener: sqlx::postgres::PgListener,
    wake: tokio::sync::mpsc::Sender<()>,
) {
    loop {
        let received = listener.recv().await;
        if let Err(sqlx::Error::PoolClosed) = received {
            return; // the store was closed
        }
        if let Err(err) = &received {
            tracing::warn!(error = %err, "event log LISTEN connection lost; reconnecting");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) = wake.try_send(()) {
            return;
        }
    }
}

/// A singleton job's lease: a session advisory lock, held by a connection taken out of the
/// pool. Dropping it closes the connection, and PostgreSQL releases the lock with it.
struct SessionLock {
    conn: sqlx::PgConnection,
}

#[async_trait]
impl Lease for SessionLock {
    async fn still_held(&mut self) -> bool {
        let probe = sqlx::query("SELECT 1").execute(&mut self.conn);
        matches!(tokio::time::timeout(Duration::from_secs(5), probe).await, Ok(Ok(_)))
    }
}

/// Did the transaction lose a deadlock or a serialisation conflict (and roll back whole)?
fn is_deadlock(err: &sqlx::Error) -> bool {
    err.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == "40P01" || code == "40001")
}

/// Append one event to the log, inside the caller's transaction.
async fn append_event(
    conn: &mut <sqlx::Postgres as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
    kind: &str,
    actor: &str,
    detail: &str,
) -> StoreResult<()> {
    sqlx::query(rows::INSERT_EVENT)
        .bind(customer_id)
        .bind(fault_id)
        .bind(kind)
        .bind(actor)
        .bind(faultline_core::time::now_micros())
        .bind(detail)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn fault_exists(
    conn: &mut <sqlx::Postgres as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
) -> StoreResult<bool> {
    let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM faults WHERE id = $1 AND customer_id = $2")
        .bind(fault_id)
        .bind(customer_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(found > 0)
}

async fn insert_comment(
    conn: &mut <sqlx::Postgres as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
    comment: &faultline_core::fault::Comment,
    actor: &str,
) -> StoreResult<()> {
    sqlx::query(rows::INSERT_COMMENT)
        .bind(&comment.id)
        .bind(fault_id)
        .bind(customer_id)
        .bind(&comment.user_id)
        .bind(&comment.comment)
        .bind(comment.created_at)
        .execute(&mut *conn)
        .await?;
    // Read by `reads::comments_column`: a fault counted 0 is read without comments.
    sqlx::query("UPDATE faults SET comment_count = comment_count + 1 WHERE id = $1")
        .bind(fault_id)
        .execute(&mut *conn)
        .await?;
    let detail = serde_json::json!({"comment_id": comment.id}).to_string();
    append_event(conn, customer_id, fault_id, "commented", actor, &detail).await
}

/// One fault with its comments.
async fn load_fault(
    conn: &mut <sqlx::Postgres as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
) -> StoreResult<Option<Fault>> {
    let statement = fault_select(customer_id, fault_id);
    let row = sql::bind_params!(sqlx::query(&statement.text), statement).fetch_optional(&mut *conn).await?;
    row.as_ref().map(reads::fault).transpose()
}

/// The `SELECT` of one fault, with its comments.
fn fault_select(customer_id: &str, fault_id: &str) -> Sql {
    sql::fault_select(customer_id, fault_id, reads::comments_column())
}

/// The newest unresolved fault of a (resource, type): its id and `created_at`.
async fn open_fault_of(
    conn: &mut <sqlx::Postgres as sqlx::Database>::Connection,
    customer_id: &str,
    resource_id: &str,
    fault_type: &str,
) -> StoreResult<Option<(String, i64)>> {
    Ok(sqlx::query_as(rows::OPEN_FAULT_OF)
        .bind(customer_id)
        .bind(resource_id)
        .bind(fault_type)
        .fetch_optional(&mut *conn)
        .await?)
}
