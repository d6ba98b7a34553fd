//! Event ingest (`Store::apply_events`), planned as a whole batch: one read finds the open
//! faults of every (resource, type) the batch names, the events are applied in order in
//! memory, and the changes are written with a few multi-row statements. A batch of 1,000
//! events costs tens of statements instead of thousands.
//!
//! The plan is checked as it is written: every new open fault must win its `open_key` (the
//! unique index that keeps two faults of one (resource, type) from being open at once) and
//! every resolve must find its fault still open. On SQLite nothing can interleave (writes are
//! serialised), but on PostgreSQL a concurrent batch, perhaps on another replica, may have
//! opened or resolved one of the batch's faults since the read. Then the batch's statements
//! are rolled back to a savepoint and the events are applied one by one, each claiming its key
//! with `ON CONFLICT DO NOTHING` and deduplicating onto the winner.

use std::collections::HashMap;

use faultline_core::fault::{Fault, FaultStatus, expiry};
use faultline_core::ingest::{EventKey, IngestEvent, Outcome};
use faultline_core::time::Micros;

use crate::Backend;
use crate::db::Conn;
use crate::error::StoreResult;
use crate::idempotency::{Claim, claim_key, fulfil_key};
use crate::model::{EventResult, Written};
use crate::sql::{LogEntry, Param, Sql, insert_ancestors, insert_fault_rows, insert_log, query};
use crate::store::{append_event, open_fault_of};

/// The open fault of `key`: its id and `created_at`.
async fn open_fault_by(
    c: &mut dyn Conn,
    customer_id: &str,
    key: EventKey<'_>,
) -> StoreResult<Option<OpenFault>> {
    match key {
        EventKey::Resource { resource_id, fault_type } => {
            open_fault_of(c, customer_id, resource_id, fault_type).await
        }
        EventKey::Dedup(dedup_key) => {
            let select = query("SELECT id, created_at FROM faults WHERE customer_id = $1 AND open_key = $2")
                .arg(customer_id)
                .arg(dedup_key);
            c.fetch_optional(&select).await
        }
    }
}

/// The open fault of a (resource, type): its id and `created_at`.
pub(crate) type OpenFault = (String, Micros);
/// Open faults by their open key ([`EventKey::open_key`]).
pub(crate) type OpenFaults = HashMap<String, OpenFault>;

/// How many keys one statement of [`open_faults_of`] looks up.
const KEYS_PER_STATEMENT: usize = 100;

/// Statements reading the open faults of the batch's keys, as rows of `(resource_id, type, id,
/// created_at)` for (resource, type) keys and `(dedup key, NULL, id, created_at)` for dedup keys
/// ([`collect_open`] reads both). (Resource, type) keys are joined in as a `VALUES` list so
/// that each is one probe of the index of unresolved faults by (customer, resource, type) on
/// both backends (see [`probe_each_key`]): with `resource_id IN (…)` SQLite scanned the
/// customer's unresolved faults. Dedup keys are probes of the unique index of open keys.
pub(crate) fn open_faults_of(customer_id: &str, events: &[IngestEvent], backend: Backend) -> Vec<Sql> {
    let mut resources: Vec<(&str, &str)> = Vec::new();
    let mut dedups: Vec<&str> = Vec::new();
    for event in events {
        match event.key() {
            EventKey::Resource { resource_id, fault_type } => resources.push((resource_id, fault_type)),
            EventKey::Dedup(key) => dedups.push(key),
        }
    }
    resources.sort_unstable();
    resources.dedup();
    dedups.sort_unstable();
    dedups.dedup();
    let by_resource = resources.chunks(KEYS_PER_STATEMENT).map(|chunk| {
        let mut sql = Sql::default();
        let customer = sql.text(customer_id);
        let list: Vec<String> =
            chunk.iter().map(|(r, t)| format!("({}, {})", sql.text(r), sql.text(t))).collect();
        sql.text = probe_each_key(
            backend,
            &list.join(", "),
            &format!(
                "f.customer_id = {customer} AND f.resource_id = k.column1 AND f.type = k.column2 \
                 AND f.status = 'unresolved'"
            ),
        );
        sql
    });
    let by_dedup = dedups.chunks(KEYS_PER_STATEMENT).map(|chunk| {
        let mut sql = Sql::default();
        let customer = sql.text(customer_id);
        let list = sql.list(chunk.iter().map(|k| (*k).to_owned()));
        sql.text = format!(
            "SELECT open_key, CAST(NULL AS TEXT), id, created_at FROM faults \
             WHERE customer_id = {customer} AND open_key IN ({list})"
        );
        sql
    });
    by_resource.chain(by_dedup).collect()
}

/// `SELECT resource_id, type, id, created_at` of the faults `f` matching `condition` for each
/// key `k` of the `VALUES` list `keys`, the keys driving the loop. SQLite is told the loop's
/// order by `CROSS JOIN`. PostgreSQL is given a `LATERAL` subquery that it cannot merge into a
/// join (`OFFSET 0`), so it runs once per key: planned as a join, it would choose by the
/// table's statistics, and with a customer's unresolved faults counted low (a new deployment,
/// or a burst of outages since the last `ANALYZE`) it read all of them into a hash table for
/// every statement, a cost that grew with the faults open (so a mass outage, whose every batch
/// opens more of them, took time growing with the square of the sites).
fn probe_each_key(backend: Backend, keys: &str, condition: &str) -> String {
    match backend {
        Backend::Sqlite => format!(
            "SELECT f.resource_id, f.type, f.id, f.created_at FROM (VALUES {keys}) AS k \
             CROSS JOIN faults f WHERE {condition}"
        ),
        Backend::Postgres => format!(
            "SELECT k.column1, k.column2, f.id, f.created_at FROM (VALUES {keys}) AS k \
             CROSS JOIN LATERAL (SELECT f.id, f.created_at FROM faults f WHERE {condition} OFFSET 0) AS f"
        ),
    }
}

/// Keep, per key, the newest of the open faults read (rows of [`open_faults_of`]).
pub(crate) fn collect_open(open: &mut OpenFaults, rows: Vec<(String, Option<String>, String, Micros)>) {
    for (first, fault_type, id, created_at) in rows {
        let key = match fault_type {
            Some(fault_type) => {
                EventKey::Resource { resource_id: &first, fault_type: &fault_type }.open_key()
            }
            None => first,
        };
        let entry = open.entry(key).or_insert_with(|| (id.clone(), created_at));
        if (created_at, &id) > (entry.1, &entry.0) {
            *entry = (id, created_at);
        }
    }
}

/// What a batch does, decided against the open faults it found.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Faults the batch opens, in their final state (some opened and resolved in the batch).
    pub new_faults: Vec<Fault>,
    /// The open key of each of `new_faults`, in the same order.
    pub new_keys: Vec<String>,
    /// Faults open before the batch that it resolves: (id, resolved_at, ttl).
    pub resolves: Vec<(String, Micros, i64)>,
    /// The event log entries, in event order: (fault id, kind, when (`None` for now), detail).
    pub log: Vec<(String, &'static str, Option<Micros>, Option<String>)>,
    pub results: Vec<EventResult>,
}

/// Apply `events` in order to `open`.
pub(crate) fn plan(events: &[IngestEvent], mut open: OpenFaults, retention_seconds: i64) -> Plan {
    let mut plan = Plan::default();
    // Index into `new_faults` of the faults this batch opened, by id.
    let mut opened: HashMap<String, usize> = HashMap::new();
    for event in events {
        let key = event.key().open_key();
        let result = match (event.fault(), event.resolved_at()) {
            (Some(fault), _) => match open.get(&key) {
                Some((id, _)) => (Some(id.clone()), Outcome::Deduplicated),
                None => {
                    open.insert(key.clone(), (fault.id.clone(), fault.created_at));
                    opened.insert(fault.id.clone(), plan.new_faults.len());
                    plan.new_faults.push(fault.clone());
                    plan.new_keys.push(key);
                    let detail = event.detail().map(|d| d.to_string());
                    plan.log.push((fault.id.clone(), "created", Some(fault.created_at), detail));
                    (Some(fault.id.clone()), Outcome::Created)
                }
            },
            (None, Some(occurred_at)) => match open.remove(&key) {
                Some((id, created_at)) => {
                    let at = occurred_at.max(created_at);
                    let ttl = expiry(at, retention_seconds);
                    match opened.get(&id) {
                        Some(&n) => {
                            let fault = &mut plan.new_faults[n];
                            fault.status = FaultStatus::Resolved;
                            fault.resolved_at = Some(at);
                            fault.ttl = ttl;
                        }
                        None => plan.resolves.push((id.clone(), at, ttl)),
                    }
                    plan.log.push((id.clone(), "resolved", None, None));
                    (Some(id), Outcome::Resolved)
                }
                None => (None, Outcome::NoOpenFault),
            },
            // An acknowledgement: noted on the open fault's timeline.
            (None, None) => match open.get(&key) {
                Some((id, _)) => {
                    let detail = event.detail().map(|d| d.to_string());
                    plan.log.push((id.clone(), "acknowledged", None, detail));
                    (Some(id.clone()), Outcome::Acknowledged)
                }
                None => (None, Outcome::NoOpenFault),
            },
        };
        plan.results.push(result);
    }
    // Rows in key order: concurrent batches on PostgreSQL then wait for each other's index
    // entries and row locks in one order, which keeps deadlocks rare (they are retried).
    let mut rows: Vec<(Fault, String)> =
        std::mem::take(&mut plan.new_faults).into_iter().zip(std::mem::take(&mut plan.new_keys)).collect();
    rows.sort_by(|a, b| {
        (&a.1, &a.0.resource_id, &a.0.fault_type).cmp(&(&b.1, &b.0.resource_id, &b.0.fault_type))
    });
    (plan.new_faults, plan.new_keys) = rows.into_iter().unzip();
    plan.resolves.sort();
    plan
}

/// The statements that write a plan, to run in this order: the resolves (each chunk affects as
/// many rows as it names unless one was resolved meanwhile), the inserts of new faults (each
/// affects one row unless another open fault holds its key), then ancestry elements and the
/// log.
pub(crate) struct Writes {
    pub resolves: Vec<Sql>,
    pub inserts: Vec<Sql>,
    pub rest: Vec<Sql>,
}

pub(crate) fn writes(customer_id: &str, plan: &Plan, actor: &str, now: Micros, backend: Backend) -> Writes {
    const RESOLVES_PER_STATEMENT: usize = 50;
    let resolves = plan
        .resolves
        .chunks(RESOLVES_PER_STATEMENT)
        .map(|chunk| {
            let mut sql = Sql::default();
            let customer = sql.text(customer_id);
            let rows: Vec<String> = chunk
                .iter()
                .map(|(id, at, ttl)| {
                    let (id, at, ttl) = (sql.text(id), sql.bind(Param::Int(*at)), sql.int(*ttl));
                    format!("({id}, {at}, {ttl})")
                })
                .collect();
            // VALUES names its columns column1.. on both SQLite and PostgreSQL.
            sql.text = format!(
                "UPDATE faults SET status = 'resolved', resolved_at = v.column2, ttl = v.column3, open_key = NULL \
                 FROM (VALUES {}) AS v WHERE faults.id = v.column1 AND faults.customer_id = {customer} \
                 AND faults.status = 'unresolved'",
                rows.join(", ")
            );
            sql
        })
        .collect();
    let entries: Vec<LogEntry<'_>> = plan
        .log
        .iter()
        .map(|(id, kind, at, detail)| LogEntry {
            customer_id,
            fault_id: id,
            kind,
            at: at.unwrap_or(now),
            detail: detail.as_deref(),
        })
        .collect();
    let mut rest = insert_ancestors(&plan.new_faults, backend);
    rest.extend(insert_log(actor, &entries));
    Writes { inserts: insert_fault_rows(&plan.new_faults, Some(&plan.new_keys)), resolves, rest }
}

/// Whether the multi-key lookups of the ingest and of heartbeats keep prepared statements.
///
/// On SQLite, yes: without `ANALYZE` its plans do not depend on table sizes, and preparing a
/// statement of a hundred keys again each time would cost the single writer.
///
/// Not on PostgreSQL: after a few runs it caches a generic plan, and one made while a new
/// deployment's `sites` or `faults` table was nearly empty (not yet analysed) scans the table
/// once it has grown, for every heartbeat and every batch. Planning each run for its values
/// costs little beside a lookup of many keys, and a plan made for them cannot go stale.
/// Values alone do not make a plan right when the statistics are wrong: see
/// `heartbeat::SWEEP_PLANNER_SETTINGS` and [`open_faults_of`].
pub(crate) fn cache_lookup_plans(backend: Backend) -> bool {
    backend == Backend::Sqlite
}

/// The open faults of every (resource, type) of a batch, 100 keys a statement.
async fn open_faults(c: &mut dyn Conn, customer_id: &str, events: &[IngestEvent]) -> StoreResult<OpenFaults> {
    let backend = c.backend();
    let mut open = OpenFaults::new();
    for statement in open_faults_of(customer_id, events, backend) {
        let rows = c.fetch_all(&statement.cache_plan(cache_lookup_plans(backend))).await?;
        collect_open(&mut open, rows);
    }
    Ok(open)
}

/// A whole `apply_events` in the caller's transaction: `claim`'s key, the batch (as planned,
/// or one by one when a concurrent writer got in the way), the key's answer.
pub(crate) async fn apply_events_in(
    c: &mut dyn Conn,
    customer_id: &str,
    events: &[IngestEvent],
    retention_seconds: i64,
    actor: &str,
    claim: Option<&Claim<[EventResult]>>,
) -> StoreResult<Written<Vec<EventResult>>> {
    if let Some(claim) = claim
        && let Some(answer) = claim_key(c, claim).await?
    {
        return Ok(Written::Replayed(answer));
    }
    let results = apply_unkeyed_in(c, customer_id, events, retention_seconds, actor).await?;
    if let Some(claim) = claim {
        fulfil_key(c, claim, &results).await?;
    }
    Ok(Written::Done(results))
}

/// The batch in the caller's transaction, as planned, or one by one when a concurrent writer
/// got in the way.
pub(crate) async fn apply_unkeyed_in(
    c: &mut dyn Conn,
    customer_id: &str,
    events: &[IngestEvent],
    retention_seconds: i64,
    actor: &str,
) -> StoreResult<Vec<EventResult>> {
    match apply_batch(c, customer_id, events, retention_seconds, actor).await? {
        Some(results) => Ok(results),
        None => apply_one_by_one(c, customer_id, events, retention_seconds, actor).await,
    }
}

/// The batch as planned, in the caller's transaction; `None` (and nothing written) when a
/// concurrent writer opened or resolved one of its faults since the read.
async fn apply_batch(
    c: &mut dyn Conn,
    customer_id: &str,
    events: &[IngestEvent],
    retention_seconds: i64,
    actor: &str,
) -> StoreResult<Option<Vec<EventResult>>> {
    let open = open_faults(c, customer_id, events).await?;
    let plan = plan(events, open, retention_seconds);
    let writes = writes(customer_id, &plan, actor, faultline_core::time::now_micros(), c.backend());
    // A concurrent writer can get in the way only on PostgreSQL: SQLite's one writer runs one
    // job at a time, and a job reads what the jobs before it in its transaction wrote.
    let guarded = c.backend() == Backend::Postgres;
    if guarded {
        c.execute(&query("SAVEPOINT ingest_batch")).await?;
    }
    // Resolves first: they free the keys that the batch's later triggers reopen.
    let mut resolved = 0;
    for statement in &writes.resolves {
        resolved += c.execute(statement).await?;
    }
    let mut inserted = 0;
    for statement in &writes.inserts {
        inserted += c.execute(statement).await?;
    }
    if inserted != plan.new_faults.len() as u64 || resolved != plan.resolves.len() as u64 {
        if !guarded {
            return Err(crate::StoreError::Corrupt(format!(
                "a batch's writes did not match its plan on SQLite: {inserted} of {} inserts, {resolved} of {} resolves",
                plan.new_faults.len(),
                plan.resolves.len()
            )));
        }
        c.execute(&query("ROLLBACK TO SAVEPOINT ingest_batch")).await?;
        tracing::debug!(
            events = events.len(),
            inserted,
            planned_inserts = plan.new_faults.len(),
            resolved,
            planned_resolves = plan.resolves.len(),
            "a concurrent writer changed this batch's open faults; applying it event by event"
        );
        return Ok(None);
    }
    for statement in &writes.rest {
        c.execute(statement).await?;
    }
    if guarded {
        c.execute(&query("RELEASE SAVEPOINT ingest_batch")).await?;
    }
    Ok(Some(plan.results))
}

/// The events one at a time, each trigger claiming its key with `ON CONFLICT DO NOTHING` and
/// deduplicating onto whichever fault holds it.
async fn apply_one_by_one(
    c: &mut dyn Conn,
    customer_id: &str,
    events: &[IngestEvent],
    retention_seconds: i64,
    actor: &str,
) -> StoreResult<Vec<EventResult>> {
    let backend = c.backend();
    let mut results = Vec::with_capacity(events.len());
    for event in events {
        let key = event.key();
        let open = open_fault_by(c, customer_id, key).await?;
        let result = match (event.fault(), event.resolved_at(), open) {
            (Some(_), _, Some((id, _))) => (Some(id), Outcome::Deduplicated),
            (Some(fault), _, None) => {
                let one = std::slice::from_ref(fault);
                let claimed = c.execute(&insert_fault_rows(one, Some(&[key.open_key()]))[0]).await?;
                if claimed == 1 {
                    let mut extras = insert_ancestors(one, backend);
                    let detail = event.detail().map(|d| d.to_string());
                    let created = LogEntry {
                        customer_id,
                        fault_id: &fault.id,
                        kind: "created",
                        at: fault.created_at,
                        detail: detail.as_deref(),
                    };
                    extras.extend(insert_log(actor, &[created]));
                    for statement in extras {
                        c.execute(&statement).await?;
                    }
                    (Some(fault.id.clone()), Outcome::Created)
                } else {
                    // Another batch opened it first and has committed: deduplicate.
                    let open = open_fault_by(c, customer_id, key).await?;
                    (open.map(|(id, _)| id), Outcome::Deduplicated)
                }
            }
            (None, None, Some((id, _))) => {
                let detail = event.detail().map(|d| d.to_string()).unwrap_or_else(|| "{}".to_owned());
                append_event(c, customer_id, &id, "acknowledged", actor, &detail).await?;
                (Some(id), Outcome::Acknowledged)
            }
            (None, occurred_at, Some((id, created_at))) => {
                let at = occurred_at.unwrap_or(created_at).max(created_at);
                let ttl = expiry(at, retention_seconds);
                let resolve = query(crate::rows::RESOLVE_FAULT).arg(&id).arg(customer_id).arg(at).arg(ttl);
                if c.execute(&resolve).await? == 1 {
                    append_event(c, customer_id, &id, "resolved", actor, "{}").await?;
                    (Some(id), Outcome::Resolved)
                } else {
                    // Resolved meanwhile by another writer: nothing left open here.
                    (None, Outcome::NoOpenFault)
                }
            }
            (None, _, None) => (None, Outcome::NoOpenFault),
        };
        results.push(result);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::fault::{NewFault, Severity};

    fn trigger(resource: &str, at: Micros) -> IngestEvent {
        let new = NewFault {
            resource_id: resource.to_owned(),
            fault_type: "site".to_owned(),
            severity: Severity::High,
            message: "down".to_owned(),
            cause: String::new(),
            microservice_id: String::new(),
            resource_ancestry_path: String::new(),
            created_at: Some(at),
        };
        IngestEvent::Trigger(Box::new(Fault::create("cus_1", new, at, 86_400)))
    }

    fn resolve(resource: &str, at: Micros) -> IngestEvent {
        IngestEvent::Resolve {
            resource_id: resource.to_owned(),
            fault_type: "site".to_owned(),
            occurred_at: at,
        }
    }

    #[test]
    fn a_batch_is_applied_in_order_against_what_was_open() {
        let mut open = OpenFaults::new();
        open.insert("r1\u{1f}site".into(), ("flt_old".into(), 5));
        let events = [
            trigger("r1", 10), // dedups onto flt_old
            resolve("r1", 20), // resolves flt_old
            trigger("r1", 30), // opens a new one
            trigger("r1", 40), // dedups onto it
            resolve("r1", 50), // resolves it, within the batch
            resolve("r2", 60), // nothing open
        ];
        let plan = plan(&events, open, 86_400);
        let outcomes: Vec<Outcome> = plan.results.iter().map(|r| r.1).collect();
        use Outcome::*;
        assert_eq!(outcomes, [Deduplicated, Resolved, Created, Deduplicated, Resolved, NoOpenFault]);
        assert_eq!(plan.results[0].0.as_deref(), Some("flt_old"));
        assert_eq!(plan.resolves, [("flt_old".to_owned(), 20, expiry(20, 86_400))]);
        assert_eq!(plan.new_faults.len(), 1);
        let new = &plan.new_faults[0];
        assert_eq!((new.status, new.resolved_at), (FaultStatus::Resolved, Some(50)));
        assert_eq!(plan.results[2].0.as_deref(), Some(new.id.as_str()));
        let kinds: Vec<&str> = plan.log.iter().map(|(_, k, _, _)| *k).collect();
        assert_eq!(kinds, ["resolved", "created", "resolved"]);
    }

    #[test]
    fn the_newest_open_fault_of_a_key_wins() {
        let mut open = OpenFaults::new();
        collect_open(
            &mut open,
            vec![
                ("r".into(), Some("site".into()), "flt_a".into(), 5),
                ("r".into(), Some("site".into()), "flt_b".into(), 9),
                ("r".into(), Some("site".into()), "flt_c".into(), 7),
                ("alertmanager:f1".into(), None, "flt_d".into(), 3),
            ],
        );
        assert_eq!(open["r\u{1f}site"], ("flt_b".to_owned(), 9));
        assert_eq!(open["alertmanager:f1"], ("flt_d".to_owned(), 3));
    }
}
