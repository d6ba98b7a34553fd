//! The store conformance suite: every test runs on SQLite and on PostgreSQL
//! (`FAULTLINE_TEST_POSTGRES_URL`), each in its own database or schema.

use std::sync::Arc;

use faultline_core::secret::verify_api_key;
use faultline_core::{Permission, Permissions};
use faultline_store::{NewApiKey, Store, StoreError, Written, conformance_test};

type Db = Arc<dyn Store>;

async fn customer_with_key(store: &Db, permissions: &str) -> (String, NewApiKey, String) {
    let customer = store.create_customer("Acme Networks").await.unwrap();
    let (key, secret) = NewApiKey::generate(&customer.id, "ci", permissions.parse().unwrap(), Some(120));
    (customer.id, key, secret)
}

conformance_test!(migrations_are_recorded_and_idempotent, |store: Db| async move {
    let before = store.applied_migrations().await.unwrap();
    assert!(!before.is_empty());
    assert!(before.windows(2).all(|w| w[0] < w[1]), "{before:?}");
    store.migrate().await.unwrap();
    assert_eq!(store.applied_migrations().await.unwrap(), before);
    store.ping().await.unwrap();
});

conformance_test!(customers_are_created_read_and_listed, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap();
    let b = store.create_customer("Globex").await.unwrap();
    assert!(a.id.starts_with("cus_"));
    assert_eq!(store.get_customer(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_customer("cus_missing").await.unwrap(), None);
    let listed = store.list_customers().await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [a.id.as_str(), b.id.as_str()]);
});

conformance_test!(api_keys_are_found_by_lookup_and_verified_by_hash, |store: Db| async move {
    let (customer_id, key, secret) = customer_with_key(&store, "faults:read,tokens:write").await;
    let lookup = key.lookup.clone();
    let stored = store.create_api_key(key).await.unwrap();
    assert_eq!(stored.customer_id, customer_id);
    assert_eq!(stored.rate_limit_per_minute, Some(120));
    let found = store.find_api_key(&lookup).await.unwrap().expect("key by lookup");
    assert_eq!(found.key, stored);
    assert!(verify_api_key(&secret, &found.secret_hash));
    assert!(!found.secret_hash.contains(&secret), "only the hash is stored");
    assert!(found.key.permissions.contains(Permission::TokensWrite));
    assert!(!found.key.permissions.contains(Permission::FaultsWrite));
    assert!(store.find_api_key("nosuchlookup").await.unwrap().is_none());
});

conformance_test!(a_key_needs_an_existing_customer, |store: Db| async move {
    let (key, _) = NewApiKey::generate("cus_nobody", "", Permissions::all(), None);
    assert!(matches!(store.create_api_key(key).await, Err(StoreError::NotFound(_))));
});

conformance_test!(keys_are_listed_per_customer_and_revoked_once, |store: Db| async move {
    let (customer_a, key_a, _) = customer_with_key(&store, "faults:read").await;
    let (_, key_b, _) = customer_with_key(&store, "all").await;
    let (a, b) = (store.create_api_key(key_a).await.unwrap(), store.create_api_key(key_b).await.unwrap());
    assert_eq!(store.list_api_keys(Some(&customer_a)).await.unwrap(), vec![a.clone()]);
    assert_eq!(store.list_api_keys(None).await.unwrap().len(), 2);
    assert!(store.revoke_api_key(&a.id, 1_000).await.unwrap());
    assert!(store.revoke_api_key(&a.id, 2_000).await.unwrap());
    assert!(!store.revoke_api_key("key_missing", 1_000).await.unwrap());
    let listed = store.list_api_keys(None).await.unwrap();
    assert_eq!(
        listed.iter().find(|k| k.id == a.id).unwrap().revoked_at,
        Some(1_000),
        "first revocation time kept"
    );
    assert_eq!(listed.iter().find(|k| k.id == b.id).unwrap().revoked_at, None);
});

conformance_test!(key_use_only_moves_forward, |store: Db| async move {
    let (customer_id, key, _) = customer_with_key(&store, "faults:read").await;
    let key = store.create_api_key(key).await.unwrap();
    store.touch_api_key(&key.id, 5_000).await.unwrap();
    store.touch_api_key(&key.id, 4_000).await.unwrap();
    let listed = store.list_api_keys(Some(&customer_id)).await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(5_000));
});

conformance_test!(bootstrap_happens_once_even_when_raced, |store: Db| async move {
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let customer_id = faultline_core::ids::IdKind::Customer.new_id();
            let (key, _) = NewApiKey::generate(&customer_id, &format!("admin {i}"), Permissions::all(), None);
            store.bootstrap("default", key).await.unwrap()
        })
    });
    let mut created = 0;
    for attempt in attempts {
        if let Some((customer, key)) = attempt.await.unwrap() {
            created += 1;
            assert_eq!(key.customer_id, customer.id);
            assert_eq!(key.permissions, Permissions::all());
        }
    }
    assert_eq!(created, 1);
    assert_eq!(store.list_customers().await.unwrap().len(), 1);
    assert_eq!(store.list_api_keys(None).await.unwrap().len(), 1);
});

fn sample_fault(customer_id: &str, i: i64) -> faultline_core::fault::Fault {
    let now = faultline_core::time::now_micros();
    let new = faultline_core::fault::NewFault {
        resource_id: format!("dev_{i}"),
        fault_type: "reboot".into(),
        severity: faultline_core::fault::Severity::Low,
        message: format!("fault {i}"),
        cause: String::new(),
        microservice_id: "test".into(),
        resource_ancestry_path: format!("site_1|dev_{i}"),
        created_at: Some(now - i),
    };
    faultline_core::fault::Fault::create(customer_id, new, now, 86_400)
}

conformance_test!(concurrent_inserts_commit_each_and_fail_alone, |store: Db| async move {
    let customer = store.create_customer("Acme").await.unwrap();
    let faults: Vec<_> = (0..200).map(|i| sample_fault(&customer.id, i)).collect();
    let mut duplicate = sample_fault(&customer.id, 999);
    duplicate.id = faults[7].id.clone();
    let mut jobs: Vec<_> = faults
        .iter()
        .cloned()
        .map(|f| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_faults(&[f], "test", None).await })
        })
        .collect();
    let dup_store = store.clone();
    jobs.push(tokio::spawn(async move { dup_store.insert_faults(&[duplicate], "test", None).await }));
    let mut failed = 0;
    for job in jobs {
        if job.await.unwrap().is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 1, "only the duplicate fails");
    let filter = faultline_core::filter::FaultFilter::default();
    let query = faultline_store::FaultQuery {
        filter: &filter,
        after: None,
        limit: 500,
        now: faultline_core::time::now_micros(),
    };
    let listed = store.list_faults(&customer.id, &query).await.unwrap();
    assert_eq!(listed.len(), 200, "every acknowledged insert is there, once");
    let timeline = store.fault_timeline(&customer.id, &faults[7].id).await.unwrap();
    assert_eq!(timeline.len(), 1, "the failed duplicate left no event behind");
});

conformance_test!(the_sweeper_deletes_only_expired_faults_and_keeps_their_history, |store: Db| async move {
    let customer = store.create_customer("Acme").await.unwrap();
    let now_seconds = faultline_core::time::now_micros() / 1_000_000;
    let mut faults: Vec<_> = (0..25).map(|i| sample_fault(&customer.id, i)).collect();
    for (i, f) in faults.iter_mut().enumerate() {
        f.ttl = if i < 20 { now_seconds - 10 } else { now_seconds + 3_600 };
    }
    store.insert_faults(&faults, "test", None).await.unwrap();
    assert_eq!(store.sweep_expired(now_seconds, 8).await.unwrap(), 8, "one small batch at a time");
    assert_eq!(store.sweep_expired(now_seconds, 8).await.unwrap(), 8);
    assert_eq!(store.sweep_expired(now_seconds, 8).await.unwrap(), 4);
    assert_eq!(store.sweep_expired(now_seconds, 8).await.unwrap(), 0);
    for (i, f) in faults.iter().enumerate() {
        let kept = store.get_fault(&customer.id, &f.id).await.unwrap().is_some();
        assert_eq!(kept, i >= 20, "fault {i}");
    }
    let history = store.fault_timeline(&customer.id, &faults[0].id).await.unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "expired"]);
});

conformance_test!(deleting_or_expiring_a_fault_removes_its_ancestry_elements, |store: Db| async move {
    // `fault_ancestors` has no foreign key to cascade from: the delete and the sweeper remove
    // the elements themselves. An element left behind would still "exist" for a token's scope.
    let customer = store.create_customer("Acme").await.unwrap();
    let now_seconds = faultline_core::time::now_micros() / 1_000_000;
    let mut deleted = sample_fault(&customer.id, 1);
    deleted.resource_ancestry_path = "site_gone|dev_gone".into();
    let mut expired = sample_fault(&customer.id, 2);
    expired.resource_ancestry_path = "site_old|dev_old".into();
    expired.ttl = now_seconds - 10;
    let mut kept = sample_fault(&customer.id, 3);
    kept.resource_ancestry_path = "site_kept|dev_kept".into();
    store.insert_faults(&[deleted.clone(), expired.clone(), kept], "test", None).await.unwrap();
    let exists = |site: &str| {
        let scope =
            faultline_core::scope::TokenScope { site_ids: vec![site.to_owned()], ..Default::default() };
        let (store, customer_id) = (store.clone(), customer.id.clone());
        async move { store.scope_ids_exist(&customer_id, &scope).await.unwrap() }
    };
    for site in ["site_gone", "dev_gone", "dev_1", "site_old", "site_kept"] {
        assert!(exists(site).await, "{site} before");
    }
    assert!(store.delete_fault(&customer.id, &deleted.id, "test").await.unwrap());
    assert_eq!(store.sweep_expired(now_seconds, 10).await.unwrap(), 1);
    for site in ["site_gone", "dev_gone", "dev_1", "site_old", "dev_old", "dev_2"] {
        assert!(!exists(site).await, "{site} after");
    }
    assert!(exists("site_kept").await && exists("dev_3").await);
});

conformance_test!(an_idempotency_key_guards_its_write_for_a_day, |store: Db| async move {
    use faultline_store::{IDEMPOTENCY_KEEP_MICROS, Idempotency, StoredResponse};
    let customer = store.create_customer("Acme").await.unwrap();
    let now = faultline_core::time::now_micros();
    let render = |faults: &[faultline_core::fault::Fault]| format!("{{\"id\":\"{}\"}}", faults[0].id);
    let key = |fingerprint: &'static str, at: i64| Idempotency {
        credential_id: "key_a",
        key: "k1",
        fingerprint,
        at,
        status: 201,
        render: std::sync::Arc::new(render),
    };
    let a = sample_fault(&customer.id, 1);
    let b = sample_fault(&customer.id, 2);
    let day_ago = now - IDEMPOTENCY_KEEP_MICROS - 1;

    // Claimed a day ago: the write and its answer commit together.
    store.insert_faults(std::slice::from_ref(&a), "test", Some(&key("f1", day_ago))).await.unwrap();
    let stored = store.idempotency_answer("key_a", "k1", day_ago).await.unwrap();
    let first = StoredResponse { status: 201, body: format!("{{\"id\":\"{}\"}}", a.id) };
    assert_eq!(stored, Some(("f1".to_owned(), first.clone())));
    // Within the day, the same request replays and writes nothing; another is refused.
    let replay = store.insert_faults(std::slice::from_ref(&b), "test", Some(&key("f1", day_ago + 1))).await;
    assert!(matches!(replay, Ok(Written::Replayed(ref r)) if *r == first), "{replay:?}");
    let reused = store.insert_faults(std::slice::from_ref(&b), "test", Some(&key("f2", day_ago + 1))).await;
    assert!(matches!(reused, Err(StoreError::IdempotencyKeyReused)), "{reused:?}");
    assert!(store.get_fault(&customer.id, &b.id).await.unwrap().is_none());
    // A day later the claim is forgotten: the key serves a new request.
    assert_eq!(store.idempotency_answer("key_a", "k1", now - IDEMPOTENCY_KEEP_MICROS).await.unwrap(), None);
    store.insert_faults(std::slice::from_ref(&b), "test", Some(&key("f2", now))).await.unwrap();
    assert!(store.get_fault(&customer.id, &b.id).await.unwrap().is_some());

    // A failed write leaves no claim behind.
    let c = sample_fault(&customer.id, 3);
    let mut clash = sample_fault(&customer.id, 4);
    clash.id = a.id.clone();
    let k2 = Idempotency { key: "k2", ..key("f3", now) };
    let failed = store.insert_faults(&[c.clone(), clash], "test", Some(&k2)).await;
    assert!(failed.is_err());
    assert_eq!(store.idempotency_answer("key_a", "k2", 0).await.unwrap(), None);

    // The sweeper forgets keys older than a day, in batches.
    for n in 0..5 {
        let f = sample_fault(&customer.id, 10 + n);
        let old = Idempotency { key: &format!("old{n}"), ..key("f", day_ago) };
        store.insert_faults(std::slice::from_ref(&f), "test", Some(&old)).await.unwrap();
    }
    assert_eq!(store.sweep_idempotency_keys(now - IDEMPOTENCY_KEEP_MICROS, 3).await.unwrap(), 3);
    assert_eq!(store.sweep_idempotency_keys(now - IDEMPOTENCY_KEEP_MICROS, 3).await.unwrap(), 2);
    assert!(store.idempotency_answer("key_a", "k1", 0).await.unwrap().is_some(), "the fresh key stays");
});

/// Runs `write` in a transaction of its own connection to the database at `url`, holding it
/// open (and its locks) until `release` fires, then commits.
async fn hold_write(
    backend: faultline_store::Backend,
    url: String,
    write: String,
    held: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
) {
    use sqlx::Connection;
    match backend {
        faultline_store::Backend::Sqlite => {
            let conn = rusqlite::Connection::open(url.trim_start_matches("sqlite://")).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            conn.execute_batch(&write).unwrap();
            held.send(()).unwrap();
            release.await.unwrap();
            conn.execute_batch("COMMIT").unwrap();
        }
        faultline_store::Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            sqlx::query(&write).execute(&mut *tx).await.unwrap();
            held.send(()).unwrap();
            release.await.unwrap();
            tx.commit().await.unwrap();
        }
    }
}

/// Apply `events` while another connection's transaction runs `write`, committing it 300 ms
/// after the batch started: on PostgreSQL the batch reads before the commit and writes after
/// it (the race its fallback handles); on SQLite the batch waits for the writer.
async fn ingest_racing(
    db: &faultline_store::testing::TestDb,
    customer_id: &str,
    write: String,
    events: Vec<faultline_core::ingest::IngestEvent>,
) -> Vec<faultline_store::EventResult> {
    let (held_tx, held) = tokio::sync::oneshot::channel();
    let (release, release_rx) = tokio::sync::oneshot::channel();
    let holder = hold_write(db.backend, db.url.clone(), write, held_tx, release_rx);
    let store = db.store.clone();
    let customer = customer_id.to_owned();
    let racer = async move {
        held.await.unwrap();
        let batch =
            tokio::spawn(async move { store.apply_events(&customer, &events, 86_400, "test", None).await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        release.send(()).unwrap();
        batch.await.unwrap().unwrap().done().expect("no key: done now")
    };
    let ((), results) = tokio::join!(holder, racer);
    results
}

async fn batches_racing_other_writers_stay_consistent(backend: faultline_store::Backend) {
    use faultline_core::ingest::{IngestEvent, Outcome};
    let name = format!("batches_racing_other_writers_{}", backend.name());
    let Some(db) = faultline_store::testing::TestDb::new(backend, &name).await else { return };
    let customer = db.store.create_customer("Acme").await.unwrap();
    let trigger = |n: i64| {
        let mut f = sample_fault(&customer.id, n);
        f.resource_id = "tun_race".to_owned();
        f.fault_type = "wantunnel".to_owned();
        IngestEvent::Trigger(Box::new(f))
    };
    // Another writer opens the fault of (tun_race, wantunnel) while the batch runs: the batch's
    // trigger deduplicates onto it instead of opening a second one.
    let now = faultline_core::time::now_micros();
    let open = format!(
        "INSERT INTO faults (id, customer_id, resource_id, microservice_id, type, status, severity, message, \
         cause, created_at, resolved_at, resource_ancestry_path, site_id, ttl, open_key) VALUES \
         ('flt_racer', '{}', 'tun_race', '', 'wantunnel', 'unresolved', 'HIGH', 'down', '', {now}, NULL, '', NULL, \
         {}, 'tun_race' || char(31) || 'wantunnel')",
        customer.id,
        now / 1_000_000 + 86_400
    )
    .replace("char(31)", if backend == faultline_store::Backend::Sqlite { "char(31)" } else { "chr(31)" });
    let results = ingest_racing(&db, &customer.id, open, vec![trigger(1), trigger(2)]).await;
    assert_eq!(
        results,
        [
            (Some("flt_racer".to_owned()), Outcome::Deduplicated),
            (Some("flt_racer".to_owned()), Outcome::Deduplicated)
        ]
    );
    // Another writer resolves it while a batch resolves it too: it is resolved once.
    let resolve = || IngestEvent::Resolve {
        resource_id: "tun_race".to_owned(),
        fault_type: "wantunnel".to_owned(),
        occurred_at: now + 1,
    };
    let close = format!(
        "UPDATE faults SET status = 'resolved', resolved_at = {now}, open_key = NULL WHERE id = 'flt_racer'"
    );
    let results = ingest_racing(&db, &customer.id, close, vec![resolve(), trigger(3)]).await;
    assert_eq!(results[0], (None, Outcome::NoOpenFault), "resolved by the other writer first");
    assert_eq!(results[1].1, Outcome::Created, "then a trigger opens a new fault");
    let history = db.store.fault_timeline(&customer.id, "flt_racer").await.unwrap();
    assert!(history.iter().all(|e| e.kind != "resolved"), "the batch did not resolve it again");
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_racing_other_writers_stay_consistent_sqlite() {
    batches_racing_other_writers_stay_consistent(faultline_store::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_racing_other_writers_stay_consistent_postgres() {
    batches_racing_other_writers_stay_consistent(faultline_store::Backend::Postgres).await;
}

fn render_results(results: &[faultline_store::EventResult]) -> String {
    format!("{} results", results.len())
}

/// Batches that queue behind a writer (on SQLite they then share one write transaction) are
/// each applied once, and one that fails (its `Idempotency-Key` reused with another body) fails
/// alone: the others of its group are written, none of its own events are.
async fn queued_batches_are_applied_once_and_fail_alone(backend: faultline_store::Backend) {
    use faultline_core::ingest::{IngestEvent, Outcome};
    use faultline_store::{Idempotency, StoreError};
    let name = format!("queued_batches_{}", backend.name());
    let Some(db) = faultline_store::testing::TestDb::new(backend, &name).await else { return };
    let customer = db.store.create_customer("Acme").await.unwrap();
    let (held_tx, held) = tokio::sync::oneshot::channel();
    let (release, release_rx) = tokio::sync::oneshot::channel();
    let hold = format!("UPDATE customers SET name = name WHERE id = '{}'", customer.id);
    let holder = tokio::spawn(hold_write(backend, db.url.clone(), hold, held_tx, release_rx));
    held.await.unwrap();
    let batches: Vec<_> = (0..6)
        .map(|b| {
            let store = db.store.clone();
            let customer_id = customer.id.clone();
            let events: Vec<IngestEvent> = (0..3)
                .map(|i| {
                    let mut f = sample_fault(&customer_id, b * 10 + i);
                    f.resource_id = format!("tun_{b}_{i}");
                    IngestEvent::Trigger(Box::new(f))
                })
                .collect();
            tokio::spawn(async move {
                // Batches 1 and 2 use one key with different bodies: the later fails.
                let fingerprint = format!("body {b}");
                let idem = Idempotency {
                    credential_id: "key_a",
                    key: "shared",
                    fingerprint: &fingerprint,
                    at: faultline_core::time::now_micros(),
                    status: 200,
                    render: std::sync::Arc::new(render_results),
                };
                let idem = matches!(b, 1 | 2).then_some(&idem);
                (b, store.apply_events(&customer_id, &events, 86_400, "test", idem).await)
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    release.send(()).unwrap();
    holder.await.unwrap();
    let mut written = Vec::new();
    let mut refused = Vec::new();
    for batch in batches {
        match batch.await.unwrap() {
            (b, Ok(Written::Done(results))) => {
                assert!(results.iter().all(|r| r.1 == Outcome::Created), "batch {b}: {results:?}");
                written.push(b);
            }
            (b, Ok(Written::Replayed(answer))) => panic!("batch {b} replayed {answer:?}"),
            (b, Err(StoreError::IdempotencyKeyReused)) => refused.push(b),
            (b, Err(err)) => panic!("batch {b}: {err}"),
        }
    }
    assert_eq!(refused.len(), 1, "one of batches 1 and 2 is refused: {refused:?}");
    assert!(matches!(refused[0], 1 | 2));
    let filter = faultline_core::filter::FaultFilter::default();
    let query = faultline_store::FaultQuery {
        filter: &filter,
        after: None,
        limit: 100,
        now: faultline_core::time::now_micros(),
    };
    let mut resources: Vec<String> = db
        .store
        .list_faults(&customer.id, &query)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.resource_id)
        .collect();
    resources.sort();
    let mut expected: Vec<String> =
        written.iter().flat_map(|b| (0..3).map(move |i| format!("tun_{b}_{i}"))).collect();
    expected.sort();
    assert_eq!(resources, expected, "every written batch once, nothing of the refused one");
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_batches_are_applied_once_and_fail_alone_sqlite() {
    queued_batches_are_applied_once_and_fail_alone(faultline_store::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_batches_are_applied_once_and_fail_alone_postgres() {
    queued_batches_are_applied_once_and_fail_alone(faultline_store::Backend::Postgres).await;
}

const HOUR: i64 = 3_600_000_000;

/// A fault of `resource_id` (in `site`) created `hours` ago.
fn fault_of(customer_id: &str, resource_id: &str, site: &str, hours: i64) -> faultline_core::fault::Fault {
    let now = faultline_core::time::now_micros();
    let new = faultline_core::fault::NewFault {
        resource_id: resource_id.to_owned(),
        fault_type: if resource_id.starts_with("tun") { "wantunnel" } else { "reboot" }.to_owned(),
        severity: faultline_core::fault::Severity::High,
        message: format!("{resource_id} {hours} hours ago"),
        cause: String::new(),
        microservice_id: "test".into(),
        resource_ancestry_path: format!("{site}|{resource_id}"),
        created_at: Some(now - hours * HOUR),
    };
    faultline_core::fault::Fault::create(customer_id, new, now, 400 * 86_400)
}

conformance_test!(top_resources_rank_a_window_of_faults_within_the_scope, |store: Db| async move {
    use faultline_store::TopQuery;
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let mut faults = Vec::new();
    for hours in [1, 2, 3, 4, 5] {
        faults.push(fault_of(&a, "dev_1", "site_1", hours));
    }
    // Three-way tie at 3, broken in byte order: upper case sorts before lower case.
    for resource in ["tun_b", "tun_a", "tun_B"] {
        for hours in [10, 20, 30] {
            faults.push(fault_of(&a, resource, "site_2", hours));
        }
    }
    faults.push(fault_of(&a, "tun_b", "site_2", 20 * 24)); // outside a 14-day window
    faults.push(fault_of(&a, "dev_2", "site_1", 6));
    // Another customer's faults on the same resource ids count for nobody else.
    for hours in 1..=10 {
        faults.push(fault_of(&b, "tun_a", "site_2", hours));
    }
    store.insert_faults(&faults, "test", None).await.unwrap();

    let now = faultline_core::time::now_micros();
    let fortnight = now - 14 * 24 * HOUR;
    let query = |scope, limit, sample| TopQuery { since: fortnight, scope, limit, sample };
    let ranked = |top: &[faultline_store::TopResource]| -> Vec<(String, i64)> {
        top.iter().map(|r| (r.resource_id.clone(), r.count)).collect()
    };
    let owned = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
        pairs.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect()
    };

    let top = store.top_resources(&a, &query(None, 10, 2)).await.unwrap();
    assert_eq!(ranked(&top), owned(&[("dev_1", 5), ("tun_B", 3), ("tun_a", 3), ("tun_b", 3), ("dev_2", 1)]));
    for resource in &top {
        let ages: Vec<&str> = resource.faults.iter().map(|f| f.message.as_str()).collect();
        let expected: Vec<String> = match resource.resource_id.as_str() {
            "dev_1" => vec!["dev_1 1 hours ago".into(), "dev_1 2 hours ago".into()],
            "dev_2" => vec!["dev_2 6 hours ago".into()],
            tunnel => vec![format!("{tunnel} 10 hours ago"), format!("{tunnel} 20 hours ago")],
        };
        assert_eq!(ages, expected, "the newest faults of {}, newest first", resource.resource_id);
        assert!(resource.faults.iter().all(|f| f.customer_id == a && f.resource_id == resource.resource_id));
    }

    let first_two = store.top_resources(&a, &query(None, 2, 5)).await.unwrap();
    assert_eq!(ranked(&first_two), owned(&[("dev_1", 5), ("tun_B", 3)]));
    assert_eq!(first_two[0].faults.len(), 5);
    let month = TopQuery { since: now - 30 * 24 * HOUR, ..query(None, 1, 0) };
    let top_month = store.top_resources(&a, &month).await.unwrap();
    assert_eq!(ranked(&top_month), owned(&[("dev_1", 5)]));
    assert!(top_month[0].faults.is_empty(), "sample 0 reads no faults");
    let month_tunnels = TopQuery { since: now - 30 * 24 * HOUR, ..query(None, 2, 0) };
    let scoped = faultline_core::scope::TokenScope { site_ids: vec!["site_2".into()], ..Default::default() };
    let tunnels = TopQuery { scope: Some(&scoped), ..month_tunnels };
    assert_eq!(
        ranked(&store.top_resources(&a, &tunnels).await.unwrap()),
        owned(&[("tun_b", 4), ("tun_B", 3)])
    );

    // Every kind of scope restriction narrows what counts and what is sampled.
    let scopes = [
        faultline_core::scope::TokenScope { site_ids: vec!["site_1".into()], ..Default::default() },
        faultline_core::scope::TokenScope { resource_ids: vec!["tun_a".into()], ..Default::default() },
        faultline_core::scope::TokenScope { types: vec!["wantunnel".into()], ..Default::default() },
        faultline_core::scope::TokenScope {
            fault_ids: vec![faults[0].id.clone(), faults[1].id.clone(), faults[5].id.clone()],
            ..Default::default()
        },
        faultline_core::scope::TokenScope {
            severity: vec![faultline_core::fault::Severity::Low],
            ..Default::default()
        },
    ];
    let expected = [
        owned(&[("dev_1", 5), ("dev_2", 1)]),
        owned(&[("tun_a", 3)]),
        owned(&[("tun_B", 3), ("tun_a", 3), ("tun_b", 3)]),
        owned(&[("dev_1", 2), ("tun_b", 1)]),
        owned(&[]),
    ];
    for (scope, expected) in scopes.iter().zip(expected) {
        let top = store.top_resources(&a, &query(Some(scope), 10, 10)).await.unwrap();
        assert_eq!(ranked(&top), expected, "{scope:?}");
        for resource in &top {
            assert_eq!(resource.faults.len() as i64, resource.count, "{scope:?}");
            assert!(resource.faults.iter().all(|f| scope.matches(f)), "{scope:?}");
        }
    }

    let other = store.top_resources(&b, &query(None, 10, 1)).await.unwrap();
    assert_eq!(ranked(&other), owned(&[("tun_a", 10)]));
    let empty = store.create_customer("Initech").await.unwrap().id;
    assert!(store.top_resources(&empty, &query(None, 10, 5)).await.unwrap().is_empty());
});

conformance_test!(the_recent_view_is_unresolved_or_from_the_last_day, |store: Db| async move {
    use faultline_core::fault::FaultStatus;
    let a = store.create_customer("Acme").await.unwrap().id;
    let resolved = |mut f: faultline_core::fault::Fault| {
        f.status = FaultStatus::Resolved;
        f.resolved_at = Some(f.created_at + HOUR / 2);
        f
    };
    let old_open = fault_of(&a, "tun_1", "site_1", 24 * 30);
    let old_closed = resolved(fault_of(&a, "tun_2", "site_1", 25));
    let new_closed = resolved(fault_of(&a, "dev_3", "site_2", 23));
    let new_open = fault_of(&a, "tun_4", "site_2", 1);
    let faults = [old_open.clone(), old_closed, new_closed.clone(), new_open.clone()];
    store.insert_faults(&faults, "test", None).await.unwrap();
    let b = store.create_customer("Globex").await.unwrap().id;
    store.insert_faults(&[fault_of(&b, "tun_4", "site_2", 1)], "test", None).await.unwrap();

    let recent = |sites: &[&str], types: &[&str], limit: u32| {
        let filter = faultline_core::filter::FaultFilter {
            recent: true,
            sites: sites.iter().map(|s| (*s).to_owned()).collect(),
            types: types.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let store = store.clone();
        let a = a.clone();
        async move {
            let query = faultline_store::FaultQuery {
                filter: &filter,
                after: None,
                limit,
                now: faultline_core::time::now_micros(),
            };
            let listed = store.list_faults(&a, &query).await.unwrap();
            listed.into_iter().map(|f| f.id).collect::<Vec<_>>()
        }
    };
    let ids =
        |faults: &[&faultline_core::fault::Fault]| faults.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    assert_eq!(recent(&[], &[], 1_000).await, ids(&[&new_open, &new_closed, &old_open]));
    assert_eq!(recent(&[], &[], 2).await, ids(&[&new_open, &new_closed]), "the union is cut to the limit");
    assert_eq!(recent(&["site_1"], &[], 1_000).await, ids(&[&old_open]));
    assert_eq!(recent(&["site_1", "site_2"], &["reboot"], 1_000).await, ids(&[&new_closed]));
    assert_eq!(recent(&["site_2"], &["wantunnel"], 1_000).await, ids(&[&new_open]));
});

/// A sink that keeps what it is given.
#[derive(Default)]
struct Given(Vec<faultline_core::fault::Fault>);

impl faultline_core::fault::FaultSink for Given {
    fn fault(&mut self, fault: &faultline_core::fault::FaultRef<'_>) {
        self.0.push(fault.to_fault());
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

conformance_test!(a_page_given_to_a_sink_is_the_page_listed, |store: Db| async move {
    use faultline_core::fault::{Comment, Severity};
    use faultline_core::filter::FaultFilter;
    let customer = store.create_customer("Acme").await.unwrap();
    let other = store.create_customer("Other").await.unwrap();
    let severities = [Severity::Low, Severity::High, Severity::Critical];
    let faults: Vec<_> = (0..40)
        .map(|i| {
            let mut f = sample_fault(&customer.id, i);
            f.severity = severities[i as usize % 3];
            f.resource_ancestry_path = format!("site_{}|dev_{i}", i % 2);
            f
        })
        .collect();
    store.insert_faults(&faults, "test", None).await.unwrap();
    store.insert_faults(&[sample_fault(&other.id, 0)], "test", None).await.unwrap();
    let now = faultline_core::time::now_micros();
    // Comments on a few faults, one with two given newest first.
    for (fault, id, at) in
        [(0, "cmt_b", now - 5), (0, "cmt_a", now - 9), (3, "cmt_c", now - 7), (39, "cmt_d", now)]
    {
        let comment = Comment {
            id: id.to_owned(),
            user_id: "usr_1".to_owned(),
            comment: format!("{id} \"said\""),
            created_at: at,
        };
        store.add_comment(&customer.id, &faults[fault].id, &comment, "test", None).await.unwrap();
    }
    let site_high = FaultFilter {
        sites: vec!["site_1".to_owned()],
        severities: vec![Severity::High, Severity::Critical],
        ..FaultFilter::default()
    };
    let recent = FaultFilter { recent: true, ..FaultFilter::default() };
    let all = FaultFilter::default();
    let first = store
        .list_faults(&customer.id, &faultline_store::FaultQuery { filter: &all, after: None, limit: 11, now })
        .await
        .unwrap();
    let after = faultline_core::cursor::Position { created_at: first[9].created_at, id: first[9].id.clone() };
    for (filter, after, limit) in [
        (&all, None, 11),
        (&all, Some(&after), 11),
        (&all, None, 101),
        (&site_high, None, 5),
        (&site_high, Some(&after), 51),
        (&recent, None, 51),
    ] {
        let query = faultline_store::FaultQuery { filter, after, limit, now };
        let listed = store.list_faults(&customer.id, &query).await.unwrap();
        let mut given = Given::default();
        store.list_faults_into(&customer.id, &query, &mut given).await.unwrap();
        assert!(!listed.is_empty());
        assert_eq!(given.0, listed, "{filter:?} after {after:?} limit {limit}");
    }
    // A list page and an export's page (read another way on SQLite) carry the same comments.
    for limit in [101, 2_000] {
        let query = faultline_store::FaultQuery { filter: &all, after: None, limit, now };
        let with_comments = store.list_faults(&customer.id, &query).await.unwrap();
        let ids =
            |f: &faultline_core::fault::Fault| f.comments.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        let commented: Vec<_> = with_comments.iter().filter(|f| !f.comments.is_empty()).map(ids).collect();
        // (sample_fault gives each later fault a later time.)
        let expected = [vec!["cmt_d"], vec!["cmt_c"], vec!["cmt_a", "cmt_b"]];
        assert_eq!(commented, expected, "each fault's oldest first, limit {limit}");
        assert_eq!(with_comments[0].comments[0].comment, "cmt_d \"said\"");
    }
});

conformance_test!(analysing_after_a_load_keeps_every_answer, |store: Db| async move {
    let customer = store.create_customer("Acme").await.unwrap();
    let faults: Vec<_> = (0..20).map(|i| sample_fault(&customer.id, i)).collect();
    store.insert_faults(&faults, "test", None).await.unwrap();
    store.analyze().await.unwrap();
    let filter = faultline_core::filter::FaultFilter {
        sites: vec!["site_1".to_owned()],
        severities: vec![faultline_core::fault::Severity::Low],
        ..Default::default()
    };
    let now = faultline_core::time::now_micros();
    let query = faultline_store::FaultQuery { filter: &filter, after: None, limit: 50, now };
    assert_eq!(store.list_faults(&customer.id, &query).await.unwrap().len(), 20);
});

conformance_test!(a_site_s_pages_read_its_faults_whichever_way_they_were_written, |store: Db| async move {
    use faultline_core::fault::Severity;
    use faultline_core::filter::FaultFilter;
    use faultline_core::ingest::IngestEvent;
    let customer = store.create_customer("Acme").await.unwrap().id;
    let other = store.create_customer("Other").await.unwrap().id;
    let severities = [Severity::High, Severity::Low, Severity::Critical];
    let start = faultline_core::time::now_micros() - HOUR;
    // Fault i is created i ms after the first.
    let fault = |customer: &str, i: i64, site: &str| {
        let mut f = sample_fault(customer, i);
        f.created_at = start + i * 1_000;
        f.severity = severities[i as usize % 3];
        f.resource_ancestry_path = format!("{site}|dev_{i}|tun_{i}");
        f.resource_id = format!("tun_{i}");
        f
    };
    // One fault alone; eight written concurrently (one group commit on SQLite); a batch of
    // three events (the planned ingest path); faults of another site and of another customer.
    store.insert_faults(&[fault(&customer, 0, "site_x")], "test", None).await.unwrap();
    let concurrent = (1..9).map(|i| {
        let (store, f) = (store.clone(), fault(&customer, i, "site_x"));
        tokio::spawn(async move { store.insert_faults(&[f], "test", None).await })
    });
    for write in concurrent {
        write.await.unwrap().unwrap();
    }
    let events: Vec<_> =
        (9..12).map(|i| IngestEvent::Trigger(Box::new(fault(&customer, i, "site_x")))).collect();
    store.apply_events(&customer, &events, 86_400, "test", None).await.unwrap();
    store
        .insert_faults(&[fault(&customer, 12, "site_y"), fault(&other, 13, "site_x")], "test", None)
        .await
        .unwrap();
    let deleted = fault(&customer, 14, "site_x");
    store.insert_faults(std::slice::from_ref(&deleted), "test", None).await.unwrap();
    assert!(store.delete_fault(&customer, &deleted.id, "test").await.unwrap());

    let now = faultline_core::time::now_micros();
    for (site, wanted) in [
        ("site_x", vec![]),
        ("site_x", vec![Severity::High, Severity::Critical]),
        ("dev_10", vec![]),
        ("tun_10", vec![Severity::Low]),
    ] {
        let filter =
            FaultFilter { sites: vec![site.to_owned()], severities: wanted, ..FaultFilter::default() };
        // Every page of two, by the position of the last fault of the page before.
        let mut walked = Vec::new();
        loop {
            let after = walked.last().map(|f: &faultline_core::fault::Fault| {
                faultline_core::cursor::Position { created_at: f.created_at, id: f.id.clone() }
            });
            let query = faultline_store::FaultQuery { filter: &filter, after: after.as_ref(), limit: 2, now };
            let page = store.list_faults(&customer, &query).await.unwrap();
            let mut given = Given::default();
            store.list_faults_into(&customer, &query, &mut given).await.unwrap();
            assert_eq!(given.0, page);
            if page.is_empty() {
                break;
            }
            walked.extend(page);
        }
        // Newest first: i descending.
        let mut expected = Vec::new();
        for i in (0..12usize).rev() {
            let in_site = site == "site_x" || site.ends_with(&format!("_{i}"));
            let severity = severities[i % 3];
            if in_site && (filter.severities.is_empty() || filter.severities.contains(&severity)) {
                expected.push(format!("tun_{i}"));
            }
        }
        let resources: Vec<&str> = walked.iter().map(|f| f.resource_id.as_str()).collect();
        assert_eq!(resources, expected, "{site} {:?}", filter.severities);
        // Each fault whole, as read by its id: a page reads the row its ancestry element names.
        for f in &walked {
            assert_eq!(store.get_fault(&customer, &f.id).await.unwrap().as_ref(), Some(f));
        }
    }
});

/// SQLite reuses the integer key (`seq`) of a deleted newest fault. An ancestry element left
/// behind (whatever deletes a fault deletes its elements; this one is planted by deleting the
/// row alone) must not make a site's page show the fault that takes the key next, another
/// customer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_fault_key_never_joins_a_stale_element_sqlite() {
    let Some(db) =
        faultline_store::testing::TestDb::new(faultline_store::Backend::Sqlite, "reused_fault_key").await
    else {
        return;
    };
    let a = db.store.create_customer("Acme").await.unwrap().id;
    let b = db.store.create_customer("Globex").await.unwrap().id;
    let gone = fault_of(&a, "tun_1", "site_1", 1);
    db.store.insert_faults(std::slice::from_ref(&gone), "test", None).await.unwrap();
    let conn = rusqlite::Connection::open(db.url.trim_start_matches("sqlite://")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let seq_of = |id: String| -> i64 {
        conn.query_row("SELECT seq FROM faults WHERE id = ?", [id], |row| row.get(0)).unwrap()
    };
    let seq = seq_of(gone.id.clone());
    conn.execute("DELETE FROM faults WHERE id = ?", [&gone.id]).unwrap();
    let theirs = fault_of(&b, "tun_9", "site_9", 1);
    db.store.insert_faults(std::slice::from_ref(&theirs), "test", None).await.unwrap();
    assert_eq!(seq_of(theirs.id.clone()), seq, "the key is reused");
    let filter =
        faultline_core::filter::FaultFilter { sites: vec!["site_1".to_owned()], ..Default::default() };
    let now = faultline_core::time::now_micros();
    let query = faultline_store::FaultQuery { filter: &filter, after: None, limit: 51, now };
    assert_eq!(db.store.list_faults(&a, &query).await.unwrap(), vec![]);
    let mut given = Given::default();
    db.store.list_faults_into(&a, &query, &mut given).await.unwrap();
    assert_eq!(given.0, vec![]);
    db.cleanup().await;
}

conformance_test!(a_failing_write_fails_alone_among_concurrent_ones, |store: Db| async move {
    // Writes that arrive together share a transaction on SQLite; one that fails must neither
    // take the others down with it nor be written.
    for round in 0..5 {
        let mut writes = tokio::task::JoinSet::new();
        for n in 0..16 {
            let store = store.clone();
            writes.spawn(async move {
                if n == 7 {
                    let (key, _) = NewApiKey::generate("cus_nobody", "", Permissions::all(), None);
                    Err(store.create_api_key(key).await.map(|_| ()))
                } else {
                    Ok(store.create_customer(&format!("Customer {round}-{n}")).await.map(|c| c.id))
                }
            });
        }
        let (mut created, mut refused) = (Vec::new(), 0);
        while let Some(done) = writes.join_next().await {
            match done.unwrap() {
                Ok(customer) => created.push(customer.expect("the good writes succeed")),
                Err(key) => {
                    assert!(matches!(key, Err(StoreError::NotFound(_))), "{key:?}");
                    refused += 1;
                }
            }
        }
        assert_eq!((created.len(), refused), (15, 1));
        for id in created {
            assert!(store.get_customer(&id).await.unwrap().is_some(), "round {round}: {id} was written");
        }
    }
    assert!(store.list_api_keys(None).await.unwrap().is_empty(), "the refused key was not written");
});

conformance_test!(keyed_events_deduplicate_by_their_key_not_their_resource, |store: Db| async move {
    use faultline_core::ingest::{IngestEvent, Outcome};
    let customer = store.create_customer("Acme").await.unwrap().id;
    let other = store.create_customer("Globex").await.unwrap().id;
    let now = faultline_core::time::now_micros();
    // Two alerts on one resource and type, told apart by their keys.
    let trigger = |customer: &str, key: &str, i: i64| IngestEvent::TriggerKeyed {
        dedup_key: key.to_owned(),
        fault: Box::new(sample_fault(customer, i)),
        detail: Some(serde_json::json!({"labels": {"alertname": "disk", "mount": key}})),
    };
    let resolve = |key: &str| IngestEvent::ResolveKeyed { dedup_key: key.to_owned(), occurred_at: now };
    let outcomes = |written: faultline_store::Written<Vec<faultline_store::EventResult>>| -> Vec<(Option<String>, Outcome)> {
        written.done().unwrap()
    };
    let first = outcomes(
        store
            .apply_events(
                &customer,
                &[trigger(&customer, "am:a", 1), trigger(&customer, "am:b", 1)],
                86_400,
                "test",
                None,
            )
            .await
            .unwrap(),
    );
    assert_eq!(first.iter().map(|r| r.1).collect::<Vec<_>>(), [Outcome::Created, Outcome::Created]);
    let (a, b) = (first[0].0.clone().unwrap(), first[1].0.clone().unwrap());
    assert_ne!(a, b, "one fault per key, though the resource and type are the same");
    // Sent again: nothing changes; the other customer's same key is its own.
    let again = outcomes(
        store.apply_events(&customer, &[trigger(&customer, "am:a", 2)], 86_400, "test", None).await.unwrap(),
    );
    assert_eq!(again, [(Some(a.clone()), Outcome::Deduplicated)]);
    let theirs = outcomes(
        store.apply_events(&other, &[trigger(&other, "am:a", 3)], 86_400, "test", None).await.unwrap(),
    );
    assert_eq!(theirs[0].1, Outcome::Created);
    // What the source sent is on the timeline, with the fault's creation.
    let timeline = store.fault_timeline(&customer, &a).await.unwrap();
    assert_eq!(timeline[0].kind, "created");
    assert_eq!(timeline[0].detail["labels"]["mount"], "am:a");
    // Resolved by key; a trigger after the resolve opens a new fault; an unknown key is a no-op.
    let resolved = outcomes(
        store
            .apply_events(
                &customer,
                &[resolve("am:a"), trigger(&customer, "am:a", 4), resolve("am:zzz")],
                86_400,
                "test",
                None,
            )
            .await
            .unwrap(),
    );
    assert_eq!(resolved[0], (Some(a.clone()), Outcome::Resolved));
    assert_eq!(resolved[1].1, Outcome::Created);
    assert_ne!(resolved[1].0.as_deref(), Some(a.as_str()));
    assert_eq!(resolved[2], (None, Outcome::NoOpenFault));
    let fault_a = store.get_fault(&customer, &a).await.unwrap().unwrap();
    assert_eq!(fault_a.status, faultline_core::fault::FaultStatus::Resolved);
    assert_eq!(
        store.get_fault(&customer, &b).await.unwrap().unwrap().status,
        faultline_core::fault::FaultStatus::Unresolved
    );
});
