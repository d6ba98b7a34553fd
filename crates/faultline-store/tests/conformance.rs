//! The store conformance suite: every test runs on SQLite and on PostgreSQL
//! (`FAULTLINE_TEST_POSTGRES_URL`), each in its own database or schema.

use std::sync::Arc;

use faultline_core::secret::verify_api_key;
use faultline_core::{Permission, Permissions};
use faultline_store::{NewApiKey, Store, StoreError, conformance_test};

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
        render: &render,
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
    assert!(matches!(replay, Err(StoreError::Replayed(ref r)) if *r == first), "{replay:?}");
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
