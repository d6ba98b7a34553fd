//! `kill -9` during event ingest: every acknowledged event survives, and a batch that was in
//! flight when the process died is applied whole or not at all. On SQLite (a file in WAL mode,
//! `synchronous=NORMAL`) and on PostgreSQL when `FAULTLINE_TEST_POSTGRES_URL` is set.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use faultline_store::Backend;
use faultline_store::testing::TestDb;
use serde_json::{Value, json};

mod common;
use common::{Server, assert_log_clean};

/// Concurrent clients, each posting one batch at a time, so several are in flight at the kill.
const CLIENTS: usize = 4;
const TRIGGERS_PER_BATCH: usize = 50;
/// Every batch after a client's first also resolves this many faults of its previous batch, so
/// a half-applied batch would also show as resolves without their triggers (or the reverse).
const RESOLVES_PER_BATCH: usize = 10;
/// A client stops after this many batches even if the kill has not come yet.
const MAX_BATCHES_PER_CLIENT: usize = 400;
/// Each round: ingest, SIGKILL mid-ingest, restart on the same database, check everything.
const ROUNDS: usize = 3;

/// One `POST /fault/events` request.
struct Batch {
    /// Resource ids of its triggers, `r-{round}-{client}-{batch}-{index}`, each sent only here.
    triggers: Vec<String>,
    /// Resource ids it resolves: the first triggers of the same client's previous batch,
    /// which no other batch resolves.
    resolves: Vec<String>,
    /// The server answered 200: the batch committed.
    acknowledged: bool,
    /// The fault ids the answer gave the triggers (empty if the body was cut off by the kill).
    fault_ids: Vec<String>,
}

fn message(resource_id: &str) -> String {
    format!("{resource_id} unreachable")
}

/// Post batches until `killing` is set or a request fails; the failed one is the last batch.
async fn ingest(
    http: reqwest::Client,
    base: String,
    key: String,
    round: usize,
    client: usize,
    killing: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut resolves: Vec<String> = Vec::new();
    for number in 0..MAX_BATCHES_PER_CLIENT {
        if killing.load(Ordering::SeqCst) {
            break;
        }
        let triggers: Vec<String> =
            (0..TRIGGERS_PER_BATCH).map(|i| format!("r-{round}-{client}-{number}-{i}")).collect();
        let events: Vec<Value> = triggers
            .iter()
            .map(|r| {
                json!({"action": "trigger", "resource_id": r, "type": "site", "severity": "CRITICAL",
                       "message": message(r)})
            })
            .chain(resolves.iter().map(|r| json!({"action": "resolve", "resource_id": r, "type": "site"})))
            .collect();
        let sent = http
            .post(format!("{base}/fault/events"))
            .bearer_auth(&key)
            .json(&json!({"events": events}))
            .send()
            .await;
        let mut batch = Batch { triggers, resolves, acknowledged: false, fault_ids: Vec::new() };
        match sent {
            Ok(answer) => {
                assert_eq!(answer.status().as_u16(), 200, "batch {}", batch.triggers[0]);
                batch.acknowledged = true;
                acknowledged.fetch_add(1, Ordering::SeqCst);
                if let Ok(body) = answer.json::<Value>().await {
                    let results = body["results"].as_array().unwrap();
                    let outcomes: Vec<&str> =
                        results.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
                    let expected: Vec<&str> = std::iter::repeat_n("created", TRIGGERS_PER_BATCH)
                        .chain(std::iter::repeat_n("resolved", batch.resolves.len()))
                        .collect();
                    assert_eq!(outcomes, expected, "batch {}", batch.triggers[0]);
                    batch.fault_ids = results[..TRIGGERS_PER_BATCH]
                        .iter()
                        .map(|r| r["fault_id"].as_str().unwrap().to_owned())
                        .collect();
                }
                resolves = batch.triggers[..RESOLVES_PER_BATCH].to_vec();
                batches.push(batch);
            }
            Err(e) => {
                assert!(
                    killing.load(Ordering::SeqCst),
                    "batch {} failed before the kill: {e}",
                    batch.triggers[0]
                );
                batches.push(batch);
                break;
            }
        }
    }
    batches
}

/// Every fault of the key's customer, following the cursor to the end.
async fn list_all(http: &reqwest::Client, base: &str, key: &str) -> Vec<Value> {
    let mut faults = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/fault?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(&url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        faults.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["meta"]["cursor"].as_str() {
            Some(c) if page["meta"]["has_more"] == true => cursor = Some(c.to_owned()),
            _ => return faults,
        }
    }
}

/// Assert that the database holds exactly the batches that were acknowledged, plus whole
/// unacknowledged ones, and nothing else. Returns how many unacknowledged batches were applied.
async fn assert_whole_batches(http: &reqwest::Client, base: &str, key: &str, batches: &[Batch]) -> usize {
    let mut by_resource: HashMap<String, Value> = HashMap::new();
    for fault in list_all(http, base, key).await {
        let resource = fault["resource_id"].as_str().unwrap().to_owned();
        if let Some(first) = by_resource.insert(resource, fault.clone()) {
            panic!("two faults for one resource: {first} and {fault}");
        }
    }
    let mut resolved: HashSet<&str> = HashSet::new();
    let mut unacknowledged_applied = 0;
    for batch in batches {
        let present = batch.triggers.iter().filter(|r| by_resource.contains_key(*r)).count();
        let name = &batch.triggers[0];
        if batch.acknowledged {
            assert_eq!(present, TRIGGERS_PER_BATCH, "acknowledged batch {name} lost faults");
        } else {
            assert!(
                present == 0 || present == TRIGGERS_PER_BATCH,
                "batch {name}, in flight at the kill, is half applied: {present} of {TRIGGERS_PER_BATCH} faults"
            );
            unacknowledged_applied += usize::from(present > 0);
        }
        if present > 0 {
            resolved.extend(batch.resolves.iter().map(String::as_str));
        }
        for (resource, id) in batch.triggers.iter().zip(&batch.fault_ids) {
            assert_eq!(by_resource[resource]["id"], id.as_str(), "the acknowledged fault id of {resource}");
        }
    }
    let sent: HashSet<&str> = batches.iter().flat_map(|b| b.triggers.iter().map(String::as_str)).collect();
    for (resource, fault) in &by_resource {
        assert!(sent.contains(resource.as_str()), "a fault no batch sent: {fault}");
        assert_eq!(fault["type"], "site", "{fault}");
        assert_eq!(fault["severity"], "CRITICAL", "{fault}");
        assert_eq!(fault["message"], message(resource), "{fault}");
        // Resolves land exactly when their batch did: resolved faults without the batch's
        // triggers, or the triggers without the resolves, would be a half-applied batch.
        let status = if resolved.contains(resource.as_str()) { "resolved" } else { "unresolved" };
        assert_eq!(fault["status"], status, "{fault}");
    }
    unacknowledged_applied
}

/// What SQLite itself says about the file the killed process left behind.
async fn assert_sqlite_intact(url: &str) {
    // Read-only: closing it cannot checkpoint the WAL, so the restarted server recovers it.
    let path = url.trim_start_matches("sqlite://");
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut check = conn.prepare("PRAGMA integrity_check").unwrap();
    let verdict: Vec<String> = check.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(verdict, ["ok"]);
    let mut check = conn.prepare("PRAGMA foreign_key_check").unwrap();
    let broken_references = check.query_map([], |_| Ok(())).unwrap().count();
    assert_eq!(broken_references, 0, "{broken_references} rows break a foreign key");
}

async fn kill_9_during_ingest(backend: Backend, test: &str) {
    let Some(db) = TestDb::new(backend, test).await else { return };
    // The served database is the server's alone from here on.
    db.store.close().await;
    let started = Instant::now();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let (mut server, printed) = Server::start(&db.url, &[]);
    let key = printed.expect("the admin key printed at first start");
    let mut batches: Vec<Batch> = Vec::new();
    let mut in_flight_at_kill = 0;
    for round in 0..ROUNDS {
        let killing = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                tokio::spawn(ingest(
                    http.clone(),
                    server.base.clone(),
                    key.clone(),
                    round,
                    client,
                    killing.clone(),
                    acknowledged.clone(),
                ))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        while acknowledged.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "round {round}: no batch acknowledged within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let more = 300 + RandomState::new().hash_one(round) % 500;
        tokio::time::sleep(Duration::from_millis(more)).await;
        // Set before the kill: a client that saw it unset may have a batch in flight.
        killing.store(true, Ordering::SeqCst);
        let stderr = server.kill();
        assert_log_clean(&stderr, "the killed server");
        let mut round_batches = Vec::new();
        for client in clients {
            round_batches.extend(client.await.unwrap());
        }
        let unknown = round_batches.iter().filter(|b| !b.acknowledged).count();
        in_flight_at_kill += unknown;
        batches.extend(round_batches);

        if backend == Backend::Sqlite {
            assert_sqlite_intact(&db.url).await;
        }
        let (restarted, printed) = Server::start(&db.url, &[]);
        assert_eq!(printed, None, "a restart creates no customer and prints no key");
        server = restarted;
        let applied = assert_whole_batches(&http, &server.base, &key, &batches).await;
        eprintln!(
            "{test} round {round}: killed after {} acknowledged batches with {unknown} in flight; \
             {applied} unacknowledged batches applied whole so far",
            batches.iter().filter(|b| b.acknowledged).count()
        );
    }
    let stderr = server.kill();
    assert_log_clean(&stderr, "the restarted server");
    assert!(in_flight_at_kill > 0, "no batch was ever in flight at a kill: the test proved nothing");
    eprintln!("{test}: {:.1} s", started.elapsed().as_secs_f64());
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_ingest_loses_no_acknowledged_event_and_applies_no_half_batch_sqlite() {
    kill_9_during_ingest(Backend::Sqlite, "durability_kill_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_ingest_loses_no_acknowledged_event_and_applies_no_half_batch_postgres() {
    kill_9_during_ingest(Backend::Postgres, "durability_kill_postgres").await;
}
