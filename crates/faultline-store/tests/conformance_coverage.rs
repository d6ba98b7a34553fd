//! The rest of the store conformance suite: the store methods `conformance.rs` does not reach
//! (offline detection, the log and its head, a customer's log, leases, access tokens and their
//! links, signing keys, the shared secret, token-use recording, resolving by hand, analytics,
//! log notifications). Every test runs on SQLite and on PostgreSQL, and every time is given to
//! the store by the test: nothing waits for the clock.

use std::sync::Arc;

use faultline_core::fault::{Comment, Fault, FaultStatus, NewFault, Severity};
use faultline_core::filter::FaultFilter;
use faultline_core::heartbeat::{Heartbeat, OfflinePolicy, SweepCursor};
use faultline_core::scope::TokenScope;
use faultline_core::time::{Micros, now_micros};
use faultline_store::analytics::{GroupBy, Slots};
use faultline_store::testing::TestDb;
use faultline_store::{
    AccessToken, Backend, FaultQuery, Resolution, SigningKey, Store, TokenUse, conformance_test,
};

type Db = Arc<dyn Store>;

const SECOND: Micros = 1_000_000;
const HOUR: Micros = 3_600 * SECOND;
const RETENTION_SECONDS: i64 = 400 * 86_400;

/// A fault of `customer_id` on `resource_id` (of `site`, unless it is a site), created at `at`.
fn fault(
    customer_id: &str,
    resource_id: &str,
    site: &str,
    fault_type: &str,
    severity: Severity,
    at: Micros,
) -> Fault {
    let path = if resource_id == site { site.to_owned() } else { format!("{site}|{resource_id}") };
    let new = NewFault {
        resource_id: resource_id.to_owned(),
        fault_type: fault_type.to_owned(),
        severity,
        message: format!("{fault_type} on {resource_id}"),
        cause: String::new(),
        microservice_id: "test".to_owned(),
        resource_ancestry_path: path,
        created_at: Some(at),
    };
    Fault::create(customer_id, new, at, RETENTION_SECONDS)
}

/// `fault`, resolved `after` its creation.
fn resolved(mut fault: Fault, after: Micros) -> Fault {
    fault.status = FaultStatus::Resolved;
    fault.resolved_at = Some(fault.created_at + after);
    fault
}

/// Every fault of the customer that `filter` finds, newest first.
async fn listed(store: &Db, customer_id: &str, filter: &FaultFilter) -> Vec<Fault> {
    let query = FaultQuery { filter, after: None, limit: 1_000, now: now_micros() };
    store.list_faults(customer_id, &query).await.unwrap()
}

fn site_faults() -> FaultFilter {
    FaultFilter { types: vec!["site".to_owned()], ..FaultFilter::default() }
}

fn beats(sites: &[&str]) -> Vec<Heartbeat> {
    sites.iter().map(|s| Heartbeat { site_id: (*s).to_owned(), name: None }).collect()
}

// ---- heartbeats and offline detection ----

conformance_test!(
    the_detector_finds_silent_sites_once_and_a_heartbeat_ends_their_outage,
    |store: Db| async move {
        let a = store.create_customer("Acme").await.unwrap().id;
        let b = store.create_customer("Globex").await.unwrap().id;
        // A site is offline once it has missed 3 heartbeats of one a second.
        let policy = OfflinePolicy { interval: SECOND, misses: 3 };
        let t0 = now_micros() - HOUR;
        store
            .record_heartbeats(
                &a,
                &beats(&["site_1", "site_2", "site_3"]),
                t0,
                RETENTION_SECONDS,
                "key_a",
                None,
            )
            .await
            .unwrap();
        store
            .record_heartbeats(&b, &beats(&["site_4"]), t0 + SECOND, RETENTION_SECONDS, "key_b", None)
            .await
            .unwrap();
        store
            .record_heartbeats(&a, &beats(&["site_5"]), t0 + 4 * SECOND, RETENTION_SECONDS, "key_a", None)
            .await
            .unwrap();

        // At t0 + 5 s the cutoff is t0 + 2 s: sites 1 to 4 are silent, site 5 is not. Two passes of
        // two sites each, oldest heartbeat first, each starting where the one before stopped.
        let now = t0 + 5 * SECOND;
        let (handled, cursor) = store.detect_offline(&policy, now, RETENTION_SECONDS, 2, None).await.unwrap();
        assert_eq!(handled, 2);
        let cursor = cursor.expect("a cursor after a full pass");
        assert_eq!(
            cursor,
            SweepCursor { last_heartbeat: t0, customer_id: a.clone(), site_id: "site_2".into() }
        );
        let (handled, next) =
            store.detect_offline(&policy, now, RETENTION_SECONDS, 2, Some(&cursor)).await.unwrap();
        assert_eq!(handled, 2);
        let next = next.expect("a cursor after the second pass");
        assert_eq!(
            next,
            SweepCursor { last_heartbeat: t0 + SECOND, customer_id: b.clone(), site_id: "site_4".into() }
        );
        assert_eq!(
            store.detect_offline(&policy, now, RETENTION_SECONDS, 2, Some(&next)).await.unwrap(),
            (0, None)
        );
        // A new sweep finds nothing: a site with an outage is not handled again.
        assert_eq!(
            store.detect_offline(&policy, now + SECOND, RETENTION_SECONDS, 10, None).await.unwrap(),
            (0, None)
        );

        // Each silent site has one open outage, of its own customer, begun at its first missed
        // heartbeat; the live site has none.
        let outages = listed(&store, &a, &site_faults()).await;
        let mut sites: Vec<&str> = outages.iter().map(|f| f.resource_id.as_str()).collect();
        sites.sort_unstable();
        assert_eq!(sites, ["site_1", "site_2", "site_3"]);
        for outage in &outages {
            assert_eq!(outage.status, FaultStatus::Unresolved);
            assert_eq!(outage.severity, Severity::Critical);
            assert_eq!(outage.created_at, t0 + SECOND, "{}", outage.resource_id);
            assert_eq!(outage.site_id.as_deref(), Some(outage.resource_id.as_str()));
            assert_eq!(outage.microservice_id, faultline_core::heartbeat::DETECTOR);
        }
        let theirs = listed(&store, &b, &site_faults()).await;
        assert_eq!(theirs.iter().map(|f| f.resource_id.as_str()).collect::<Vec<_>>(), ["site_4"]);
        assert_eq!(theirs[0].created_at, t0 + 2 * SECOND);

        // site_1 heartbeats again: its outage is resolved then, and only its own. A live site's
        // heartbeat resolves nothing.
        let back = now + 2 * SECOND;
        let site_1 = outages.iter().find(|f| f.resource_id == "site_1").unwrap();
        let ended = store
            .record_heartbeats(&a, &beats(&["site_1", "site_5"]), back, RETENTION_SECONDS, "key_a", None)
            .await
            .unwrap()
            .done()
            .unwrap();
        assert_eq!(ended, vec![site_1.id.clone()]);
        let site_1 = store.get_fault(&a, &site_1.id).await.unwrap().unwrap();
        assert_eq!((site_1.status, site_1.resolved_at), (FaultStatus::Resolved, Some(back)));
        let open = listed(&store, &a, &site_faults())
            .await
            .into_iter()
            .filter(|f| f.status == FaultStatus::Unresolved);
        assert_eq!(open.count(), 2, "site_2 and site_3 are still offline");
        // A heartbeat from a site that the detector has not marked offline resolves nothing, even
        // when its customer has an open `site` fault for it entered by hand.
        let by_hand = fault(&a, "site_9", "site_9", "site", Severity::Critical, t0);
        let trigger = faultline_core::ingest::IngestEvent::Trigger(Box::new(by_hand));
        let opened = store
            .apply_events(&a, &[trigger], RETENTION_SECONDS, "key_a", None)
            .await
            .unwrap()
            .done()
            .unwrap();
        let by_hand = opened[0].0.clone().expect("the trigger opened a fault");
        let none = store
            .record_heartbeats(&a, &beats(&["site_9"]), back, RETENTION_SECONDS, "key_a", None)
            .await
            .unwrap()
            .done()
            .unwrap();
        assert!(none.is_empty());

        // Until it falls silent again, site_1 is not found; then it gets a new outage.
        assert_eq!(
            store.detect_offline(&policy, back + 2 * SECOND, RETENTION_SECONDS, 10, None).await.unwrap().0,
            0
        );
        let (handled, _) =
            store.detect_offline(&policy, back + 4 * SECOND, RETENTION_SECONDS, 10, None).await.unwrap();
        assert_eq!(handled, 3, "site_1, site_5 and site_9 have been silent for 4 s");
        let site_1_outages =
            listed(&store, &a, &FaultFilter { resource_ids: vec!["site_1".into()], ..site_faults() }).await;
        assert_eq!(site_1_outages.len(), 2);
        assert_eq!(site_1_outages[0].created_at, back + SECOND);
        assert_eq!(site_1_outages[0].status, FaultStatus::Unresolved);
        // site_9's outage is the fault already open for it (deduplicated), not a second one.
        let site_9 =
            listed(&store, &a, &FaultFilter { resource_ids: vec!["site_9".into()], ..site_faults() }).await;
        assert_eq!(site_9.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), [by_hand.as_str()]);
    }
);

// ---- the event log ----

conformance_test!(
    the_log_is_read_in_order_from_any_position_and_its_head_is_its_last_entry,
    |store: Db| async move {
        let (head, horizon) = store.log_head().await.unwrap();
        assert_eq!(head, 0, "an empty log");
        assert_eq!(horizon.is_some(), store.backend() == Backend::Postgres, "only PostgreSQL has a horizon");
        assert!(store.read_log(0, 10).await.unwrap().entries.is_empty());

        let a = store.create_customer("Acme").await.unwrap().id;
        let b = store.create_customer("Globex").await.unwrap().id;
        let t0 = now_micros() - HOUR;
        let a1 = fault(&a, "dev_1", "site_1", "reboot", Severity::Low, t0);
        let b1 = fault(&b, "dev_1", "site_1", "reboot", Severity::High, t0);
        let mut a2 = fault(&a, "dev_2", "site_1", "reboot", Severity::Low, t0);
        a2.ttl = t0 / SECOND; // past its retention
        for f in [&a1, &b1, &a2] {
            store.insert_faults(std::slice::from_ref(f), "key_x", None).await.unwrap();
        }
        let comment =
            Comment { id: "cmt_1".into(), user_id: "usr_1".into(), comment: "seen".into(), created_at: t0 };
        store.add_comment(&a, &a1.id, &comment, "key_x", None).await.unwrap();
        assert!(store.delete_fault(&b, &b1.id, "key_y").await.unwrap());
        assert_eq!(store.sweep_expired(now_micros() / SECOND, 10).await.unwrap(), 1);

        let read = store.read_log(0, 100).await.unwrap();
        assert_eq!(read.horizon.is_some(), store.backend() == Backend::Postgres);
        let entries = read.entries;
        let summary: Vec<(&str, &str, &str)> =
            entries.iter().map(|e| (e.customer_id.as_str(), e.fault_id.as_str(), e.kind.as_str())).collect();
        assert_eq!(
            summary,
            [
                (a.as_str(), a1.id.as_str(), "created"),
                (b.as_str(), b1.id.as_str(), "created"),
                (a.as_str(), a2.id.as_str(), "created"),
                (a.as_str(), a1.id.as_str(), "commented"),
                (b.as_str(), b1.id.as_str(), "deleted"),
                (a.as_str(), a2.id.as_str(), "expired"),
            ]
        );
        assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq), "in sequence order");
        // A deleted or expired fault's entry still tells which scopes could see it.
        for (gone, resource) in entries[4..].iter().zip(["dev_1", "dev_2"]) {
            let detail: serde_json::Value = serde_json::from_str(&gone.detail).unwrap();
            assert_eq!(detail["resource_id"], resource, "{detail}");
            assert_eq!(detail["type"], "reboot");
            assert!(
                detail["severity"].is_string() && detail["resource_ancestry_path"].is_string(),
                "{detail}"
            );
        }

        let (head, _) = store.log_head().await.unwrap();
        assert_eq!(head, entries.last().unwrap().seq, "the head is the last entry");
        let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
        let page = store.read_log(seqs[1], 2).await.unwrap().entries;
        assert_eq!(page, entries[2..4], "a page after a position, cut to its limit");
        assert!(store.read_log(head, 10).await.unwrap().entries.is_empty(), "nothing after the head");
    }
);

conformance_test!(a_customer_s_log_holds_its_entries_alone_within_its_bounds, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let t0 = now_micros() - HOUR;
    // Interleaved writes of two customers.
    for i in 0..4 {
        for customer in [&a, &b] {
            let f = fault(customer, &format!("dev_{i}"), "site_1", "reboot", Severity::Low, t0 + i);
            store.insert_faults(std::slice::from_ref(&f), "key_x", None).await.unwrap();
        }
    }
    let all = store.read_log(0, 100).await.unwrap().entries;
    let (head, _) = store.log_head().await.unwrap();
    let of_a: Vec<_> = all.iter().filter(|e| e.customer_id == a).cloned().collect();
    assert_eq!(of_a.len(), 4);

    assert_eq!(store.customer_log(&a, 0, head, 100).await.unwrap(), of_a, "A's entries, in order, only A's");
    let of_b = store.customer_log(&b, 0, head, 100).await.unwrap();
    assert_eq!(of_b.len(), 4);
    assert!(of_b.iter().all(|e| e.customer_id == b));
    // after < seq <= upto, at most limit.
    let (first, third) = (of_a[0].seq, of_a[2].seq);
    assert_eq!(store.customer_log(&a, first, third, 100).await.unwrap(), of_a[1..3]);
    assert_eq!(store.customer_log(&a, first, head, 1).await.unwrap(), of_a[1..2]);
    assert_eq!(store.customer_log(&a, 0, first, 100).await.unwrap(), of_a[..1], "upto is inclusive");
    assert!(store.customer_log(&a, third, first, 100).await.unwrap().is_empty());
    assert!(store.customer_log(&a, head, head + 100, 100).await.unwrap().is_empty());
    let nobody = store.create_customer("Initech").await.unwrap().id;
    assert!(store.customer_log(&nobody, 0, head, 100).await.unwrap().is_empty());
});

conformance_test!(log_notifications_wake_a_reader_on_postgres_only, |store: Db| async move {
    let wakeups = store.log_notifications().await.unwrap();
    match store.backend() {
        Backend::Sqlite => assert!(wakeups.is_none(), "one process writes SQLite: nothing to listen to"),
        Backend::Postgres => {
            let mut wakeups = wakeups.expect("PostgreSQL LISTENs");
            assert!(wakeups.try_recv().is_err(), "no wake-up before a write");
            let a = store.create_customer("Acme").await.unwrap().id;
            let f = fault(&a, "dev_1", "site_1", "reboot", Severity::Low, now_micros());
            store.insert_faults(std::slice::from_ref(&f), "key_x", None).await.unwrap();
            let woke = tokio::time::timeout(std::time::Duration::from_secs(10), wakeups.recv()).await;
            assert_eq!(woke.ok().flatten(), Some(()), "a commit to the log wakes the listener");
        }
    }
});

// ---- singleton jobs ----

conformance_test!(a_lease_is_held_by_one_holder_until_it_is_dropped, |store: Db| async move {
    let mut held = store.lease("detector").await.unwrap().expect("a free lease is granted");
    assert!(held.still_held().await);
    let other_job = store.lease("retention").await.unwrap();
    assert!(other_job.is_some(), "each job has its own lease");
    match store.backend() {
        // One process owns an SQLite database: it holds every lease.
        Backend::Sqlite => assert!(store.lease("detector").await.unwrap().is_some()),
        Backend::Postgres => {
            assert!(store.lease("detector").await.unwrap().is_none(), "refused while held");
            assert!(held.still_held().await);
            drop(held);
            // The lock goes with the holder's session, which the server ends when it sees the
            // connection closed: wait for that, within a bound.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut again = None;
            while again.is_none() {
                assert!(std::time::Instant::now() < deadline, "the lease was not freed by its drop");
                again = store.lease("detector").await.unwrap();
                if again.is_none() {
                    tokio::task::yield_now().await;
                }
            }
            assert!(again.unwrap().still_held().await);
        }
    }
});

// ---- access tokens ----

fn signing_key(created_at: Micros) -> SigningKey {
    let mut secret = [0u8; 32];
    faultline_core::secret::random_bytes(&mut secret);
    let mut public = [0u8; 32];
    faultline_core::secret::random_bytes(&mut public);
    SigningKey {
        kid: format!("sk_{}", faultline_core::ids::random_base62(16)),
        secret_key: secret.to_vec(),
        public_key: public.to_vec(),
        created_at,
        retired_at: None,
        verify_until: None,
    }
}

fn token(customer_id: &str, kid: &str, scope: TokenScope, created_at: Micros) -> AccessToken {
    AccessToken {
        id: faultline_core::ids::IdKind::AccessToken.new_id(),
        customer_id: customer_id.to_owned(),
        kid: kid.to_owned(),
        label: format!("token of {customer_id}"),
        scope,
        created_by: "key_minter".to_owned(),
        created_at,
        expires_at: created_at + HOUR,
        revoked_at: None,
        last_used_at: None,
        use_count: 0,
    }
}

conformance_test!(
    tokens_are_stored_with_their_link_listed_newest_first_and_revoked_once,
    |store: Db| async move {
        let a = store.create_customer("Acme").await.unwrap().id;
        let b = store.create_customer("Globex").await.unwrap().id;
        let t0 = now_micros() - HOUR;
        let key = signing_key(t0);
        store.ensure_signing_key(&key).await.unwrap();
        let shared = fault(&a, "dev_1", "site_1", "reboot", Severity::Low, t0);
        store.insert_faults(std::slice::from_ref(&shared), "key_x", None).await.unwrap();

        let scoped = TokenScope { fault_ids: vec![shared.id.clone()], ..TokenScope::default() };
        let first = token(&a, &key.kid, scoped, t0 + 1);
        let second = token(&a, &key.kid, TokenScope::default(), t0 + 2);
        let theirs = token(
            &b,
            &key.kid,
            TokenScope { site_ids: vec!["site_9".into()], ..TokenScope::default() },
            t0 + 3,
        );
        for (t, code) in [(&first, "code_1"), (&second, "code_2"), (&theirs, "code_3")] {
            store.insert_access_token(t, code, None).await.unwrap();
        }
        assert!(
            store
                .insert_access_token(&token(&a, &key.kid, TokenScope::default(), t0), "code_1", None)
                .await
                .is_err(),
            "a short code opens one token"
        );

        assert_eq!(store.get_access_token(&first.id).await.unwrap().as_ref(), Some(&first), "stored whole");
        assert_eq!(store.get_access_token(&theirs.id).await.unwrap().as_ref(), Some(&theirs));
        assert_eq!(store.get_access_token("tok_missing").await.unwrap(), None);
        assert_eq!(store.list_access_tokens(&a, 10).await.unwrap(), [second.clone(), first.clone()]);
        assert_eq!(store.list_access_tokens(&a, 1).await.unwrap(), std::slice::from_ref(&second));
        assert_eq!(store.list_access_tokens(&b, 10).await.unwrap(), std::slice::from_ref(&theirs));
        assert_eq!(store.short_link_token("code_1").await.unwrap().as_ref(), Some(&first));
        assert_eq!(store.short_link_token("code_3").await.unwrap().as_ref(), Some(&theirs));
        assert_eq!(store.short_link_token("code_nope").await.unwrap(), None);

        // The mint is logged on the token and on the timeline of the fault it shares.
        let timeline = store.fault_timeline(&a, &shared.id).await.unwrap();
        assert_eq!(timeline.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["created", "token_minted"]);
        assert_eq!(timeline[1].detail["token_id"], first.id.as_str());
        assert_eq!(timeline[1].actor, "key_minter");
        let log = store.customer_log(&a, 0, store.log_head().await.unwrap().0, 100).await.unwrap();
        let minted: Vec<&str> =
            log.iter().filter(|e| e.kind == "token_minted").map(|e| e.fault_id.as_str()).collect();
        assert_eq!(minted, [first.id.as_str(), shared.id.as_str(), second.id.as_str()]);

        // Revoked by its own customer only; the first time is kept.
        assert!(
            !store.revoke_access_token(&b, &first.id, t0 + 10).await.unwrap(),
            "another customer's token"
        );
        assert!(!store.revoke_access_token(&a, "tok_missing", t0 + 10).await.unwrap());
        assert_eq!(store.get_access_token(&first.id).await.unwrap().unwrap().revoked_at, None);
        assert!(store.revoke_access_token(&a, &first.id, t0 + 10).await.unwrap());
        assert!(store.revoke_access_token(&a, &first.id, t0 + 20).await.unwrap());
        assert_eq!(store.get_access_token(&first.id).await.unwrap().unwrap().revoked_at, Some(t0 + 10));
        assert_eq!(store.short_link_token("code_1").await.unwrap().unwrap().revoked_at, Some(t0 + 10));
        assert_eq!(store.get_access_token(&second.id).await.unwrap().unwrap().revoked_at, None);
    }
);

conformance_test!(token_uses_add_up_and_keep_the_latest_use, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let t0 = now_micros() - HOUR;
    let key = signing_key(t0);
    store.ensure_signing_key(&key).await.unwrap();
    let (one, two) =
        (token(&a, &key.kid, TokenScope::default(), t0), token(&a, &key.kid, TokenScope::default(), t0));
    store.insert_access_token(&one, "code_1", None).await.unwrap();
    store.insert_access_token(&two, "code_2", None).await.unwrap();
    let uses =
        |id: &str, count: i64, at: Micros| TokenUse { token_id: id.to_owned(), count, last_used_at: at };

    store.record_token_uses(&[uses(&one.id, 2, t0 + 50), uses(&two.id, 1, t0 + 70)]).await.unwrap();
    // A later flush adds to the count; an earlier last use does not move it back. A token that
    // is gone is skipped.
    store.record_token_uses(&[uses(&one.id, 3, t0 + 40), uses("tok_gone", 9, t0)]).await.unwrap();
    store.record_token_uses(&[]).await.unwrap();
    let one = store.get_access_token(&one.id).await.unwrap().unwrap();
    assert_eq!((one.use_count, one.last_used_at), (5, Some(t0 + 50)));
    let two = store.get_access_token(&two.id).await.unwrap().unwrap();
    assert_eq!((two.use_count, two.last_used_at), (1, Some(t0 + 70)));
    store.record_token_uses(&[uses(&two.id, 1, t0 + 90)]).await.unwrap();
    let two = store.get_access_token(&two.id).await.unwrap().unwrap();
    assert_eq!((two.use_count, two.last_used_at), (2, Some(t0 + 90)));
});

conformance_test!(a_scope_names_only_ids_of_its_customer, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let t0 = now_micros() - HOUR;
    let ours = fault(&a, "tun_1", "site_1", "wantunnel", Severity::High, t0);
    let theirs = fault(&b, "tun_2", "site_2", "wantunnel", Severity::High, t0);
    store.insert_faults(&[ours.clone(), theirs.clone()], "key_x", None).await.unwrap();
    let exists = |scope: TokenScope| {
        let (store, a) = (store.clone(), a.clone());
        async move { store.scope_ids_exist(&a, &scope).await.unwrap() }
    };
    let ids = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(exists(TokenScope::default()).await, "an unrestricted scope names nothing");
    assert!(exists(TokenScope { fault_ids: ids(&[&ours.id]), ..TokenScope::default() }).await);
    assert!(!exists(TokenScope { fault_ids: ids(&[&ours.id, &theirs.id]), ..TokenScope::default() }).await);
    assert!(exists(TokenScope { resource_ids: ids(&["tun_1"]), ..TokenScope::default() }).await);
    assert!(!exists(TokenScope { resource_ids: ids(&["tun_2"]), ..TokenScope::default() }).await);
    // A site is any ancestry element of the customer's faults.
    assert!(exists(TokenScope { site_ids: ids(&["site_1", "tun_1"]), ..TokenScope::default() }).await);
    assert!(!exists(TokenScope { site_ids: ids(&["site_1", "site_2"]), ..TokenScope::default() }).await);
    // Severities and types name no ids: they need nothing to exist.
    let types =
        TokenScope { types: ids(&["nosuchtype"]), severity: vec![Severity::Low], ..TokenScope::default() };
    assert!(exists(types).await);
    let mixed =
        TokenScope { fault_ids: ids(&[&ours.id]), site_ids: ids(&["site_2"]), ..TokenScope::default() };
    assert!(!exists(mixed).await, "every list must hold");
});

// ---- signing keys ----

conformance_test!(signing_keys_are_made_once_rotated_and_listed_active_first, |store: Db| async move {
    let t0 = now_micros() - HOUR;
    assert!(store.signing_keys(t0).await.unwrap().is_empty());
    // Replicas starting together each offer a key: one of them becomes the signing key.
    let offered: Vec<SigningKey> = (0..4).map(|_| signing_key(t0)).collect();
    let offers: Vec<_> = offered
        .iter()
        .cloned()
        .map(|k| {
            let store = store.clone();
            tokio::spawn(async move { store.ensure_signing_key(&k).await })
        })
        .collect();
    for offer in offers {
        offer.await.unwrap().unwrap();
    }
    let keys = store.signing_keys(t0).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let first = keys[0].clone();
    assert!(offered.contains(&first), "stored whole: {first:?}");
    store.ensure_signing_key(&signing_key(t0 + 1)).await.unwrap();
    assert_eq!(
        store.signing_keys(t0 + 1).await.unwrap(),
        std::slice::from_ref(&first),
        "an active key exists already"
    );

    // Rotation retires the active key, which verifies until its window ends.
    let second = signing_key(t0 + 10);
    store.rotate_signing_key(&second, t0 + 100).await.unwrap();
    let first_retired =
        SigningKey { retired_at: Some(t0 + 10), verify_until: Some(t0 + 100), ..first.clone() };
    assert_eq!(store.signing_keys(t0 + 20).await.unwrap(), [second.clone(), first_retired.clone()]);
    let third = signing_key(t0 + 30);
    store.rotate_signing_key(&third, t0 + 200).await.unwrap();
    let second_retired =
        SigningKey { retired_at: Some(t0 + 30), verify_until: Some(t0 + 200), ..second.clone() };
    assert_eq!(
        store.signing_keys(t0 + 40).await.unwrap(),
        [third.clone(), second_retired.clone(), first_retired],
        "the active key, then the retired ones newest first; a retired key keeps its window"
    );
    assert_eq!(store.signing_keys(t0 + 100).await.unwrap(), [third.clone(), second_retired.clone()]);
    assert_eq!(
        store.signing_keys(t0 + 200).await.unwrap(),
        std::slice::from_ref(&third),
        "every window has ended"
    );
    store.ensure_signing_key(&signing_key(t0 + 300)).await.unwrap();
    assert_eq!(store.signing_keys(t0 + 300).await.unwrap(), [third]);
});

// ---- the shared secret ----

/// The shared secret is made on first use and then the same for every caller: on another call,
/// and from another store opened on the same database (another replica).
async fn the_shared_secret_is_the_same_for_every_store_on_a_database(backend: Backend) {
    let name = format!("shared_secret_{}", backend.name());
    let Some(db) = TestDb::new(backend, &name).await else { return };
    let secret = db.store.shared_secret("cursor").await.unwrap();
    assert_eq!(secret.len(), 32);
    assert_ne!(secret, vec![0u8; 32]);
    assert_eq!(db.store.shared_secret("cursor").await.unwrap(), secret, "made once");
    let other = db.store.shared_secret("webhooks").await.unwrap();
    assert_eq!(other.len(), 32);
    assert_ne!(other, secret, "each name has its own");

    let replica = faultline_store::open(&db.url).await.unwrap();
    assert_eq!(replica.shared_secret("cursor").await.unwrap(), secret, "another replica reads the same");
    // Two replicas asking first at the same time still agree.
    let (mine, theirs) = tokio::join!(db.store.shared_secret("raced"), replica.shared_secret("raced"));
    assert_eq!(mine.unwrap(), theirs.unwrap());
    replica.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_secret_is_the_same_for_every_store_on_a_database_sqlite() {
    the_shared_secret_is_the_same_for_every_store_on_a_database(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_secret_is_the_same_for_every_store_on_a_database_postgres() {
    the_shared_secret_is_the_same_for_every_store_on_a_database(Backend::Postgres).await;
}

// ---- resolving by hand ----

conformance_test!(a_fault_is_resolved_by_hand_once_with_its_comment, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let t0 = now_micros() - HOUR;
    let open = fault(&a, "tun_1", "site_1", "wantunnel", Severity::High, t0);
    store.insert_faults(std::slice::from_ref(&open), "key_x", None).await.unwrap();
    let comment =
        Comment { id: "cmt_1".into(), user_id: "usr_1".into(), comment: "fixed".into(), created_at: t0 + 5 };
    let resolution = Resolution { at: t0 + 5, ttl: t0 / SECOND + 99, comment: Some(&comment) };

    assert_eq!(
        store.resolve_fault(&b, &open.id, resolution, "key_y", None).await.unwrap().done().unwrap(),
        None,
        "not theirs"
    );
    assert_eq!(
        store.resolve_fault(&a, "flt_missing", resolution, "key_x", None).await.unwrap().done().unwrap(),
        None
    );
    let done = store
        .resolve_fault(&a, &open.id, resolution, "key_x", None)
        .await
        .unwrap()
        .done()
        .unwrap()
        .expect("resolved");
    let expected = Fault {
        status: FaultStatus::Resolved,
        resolved_at: Some(t0 + 5),
        ttl: t0 / SECOND + 99,
        comments: vec![comment.clone()],
        ..open.clone()
    };
    assert_eq!(done, expected);
    assert_eq!(store.get_fault(&a, &open.id).await.unwrap().as_ref(), Some(&expected));

    // Again, later, with another comment: nothing changes.
    let late = Comment { id: "cmt_2".into(), comment: "again".into(), ..comment.clone() };
    let again = Resolution { at: t0 + 9, ttl: t0 / SECOND + 500, comment: Some(&late) };
    assert_eq!(
        store.resolve_fault(&a, &open.id, again, "key_x", None).await.unwrap().done().unwrap().as_ref(),
        Some(&expected)
    );
    let kinds: Vec<String> =
        store.fault_timeline(&a, &open.id).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["created", "commented", "resolved"]);
    assert_eq!(store.count_open(&a, &FaultFilter::default(), now_micros()).await.unwrap(), 0);
});

// ---- analytics ----

/// Customer A's faults for the analytics tests, from `t0`: two sites, three types, three
/// resolved (repairs of 2 h, 1 h and 3 h) and three open; and one fault of customer B.
fn analytics_history(a: &str, b: &str, t0: Micros) -> Vec<Fault> {
    vec![
        fault(a, "dev_1", "site_1", "reboot", Severity::Low, t0),
        resolved(fault(a, "tun_1", "site_1", "wantunnel", Severity::High, t0 + HOUR), 2 * HOUR),
        resolved(fault(a, "site_2", "site_2", "site", Severity::Critical, t0 + 2 * HOUR), 3 * HOUR),
        resolved(fault(a, "tun_2", "site_2", "wantunnel", Severity::High, t0 + 25 * HOUR), HOUR),
        fault(a, "tun_3", "site_1", "wantunnel", Severity::Low, t0 + 26 * HOUR),
        fault(a, "site_1", "site_1", "site", Severity::Critical, t0 + 30 * HOUR),
        fault(b, "tun_1", "site_1", "wantunnel", Severity::High, t0 + HOUR),
    ]
}

conformance_test!(analytics_count_group_and_time_the_customer_s_matching_faults, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let t0 = (now_micros() - 10 * 24 * HOUR).div_euclid(HOUR) * HOUR;
    store.insert_faults(&analytics_history(&a, &b, t0), "key_x", None).await.unwrap();
    let now = t0 + 31 * HOUR;
    let all = FaultFilter::default();
    let owned = |pairs: &[(&str, i64)]| pairs.iter().map(|(g, n)| ((*g).to_owned(), *n)).collect::<Vec<_>>();

    assert_eq!(
        store.top_groups(&a, &all, GroupBy::Type, 10, now).await.unwrap(),
        owned(&[("wantunnel", 3), ("site", 2), ("reboot", 1)])
    );
    assert_eq!(store.top_groups(&a, &all, GroupBy::Site, 1, now).await.unwrap(), owned(&[("site_1", 4)]));
    let high = FaultFilter { severities: vec![Severity::High], ..FaultFilter::default() };
    assert_eq!(store.top_groups(&a, &high, GroupBy::Resource, 10, now).await.unwrap().len(), 2);
    // `recent`: open, or created in the 24 hours before `now`.
    let recent = FaultFilter { recent: true, ..FaultFilter::default() };
    let mut by_type = store.top_groups(&a, &recent, GroupBy::Type, 10, now).await.unwrap();
    by_type.sort();
    assert_eq!(by_type, owned(&[("reboot", 1), ("site", 1), ("wantunnel", 2)]));

    let days = Slots { origin: t0, slot_micros: 24 * HOUR };
    let mut per_day = store.counts_by_slot(&a, &all, days, None, now).await.unwrap();
    per_day.sort();
    assert_eq!(per_day, [(0, String::new(), 3), (1, String::new(), 3)]);
    let tunnels = ["wantunnel".to_owned()];
    let mut per_day_and_type =
        store.counts_by_slot(&a, &all, days, Some((GroupBy::Type, &tunnels, "other")), now).await.unwrap();
    per_day_and_type.sort();
    assert_eq!(
        per_day_and_type,
        [
            (0, "other".to_owned(), 2),
            (0, "wantunnel".to_owned(), 1),
            (1, "other".to_owned(), 1),
            (1, "wantunnel".to_owned(), 2)
        ]
    );
    let window =
        FaultFilter { from: Some(t0 + 24 * HOUR), to: Some(t0 + 26 * HOUR), ..FaultFilter::default() };
    assert_eq!(store.counts_by_slot(&a, &window, days, None, now).await.unwrap(), [(1, String::new(), 1)]);

    let mut repairs = store.repair_times(&a, &all, now).await.unwrap();
    repairs.sort_unstable();
    assert_eq!(repairs, [HOUR, 2 * HOUR, 3 * HOUR]);
    let site_1 = FaultFilter { sites: vec!["site_1".into()], ..FaultFilter::default() };
    assert_eq!(store.repair_times(&a, &site_1, now).await.unwrap(), [2 * HOUR]);

    assert_eq!(store.count_open(&a, &all, now).await.unwrap(), 3);
    assert_eq!(store.count_open(&a, &site_faults(), now).await.unwrap(), 1);
    assert_eq!(store.count_open(&b, &all, now).await.unwrap(), 1);

    let mut outages = store.site_outages(&a, &all, t0, t0 + 48 * HOUR).await.unwrap();
    outages.sort();
    assert_eq!(
        outages,
        [
            ("site_1".to_owned(), t0 + 30 * HOUR, None),
            ("site_2".to_owned(), t0 + 2 * HOUR, Some(t0 + 5 * HOUR))
        ]
    );
    let later = store.site_outages(&a, &all, t0 + 5 * HOUR, t0 + 48 * HOUR).await.unwrap();
    assert_eq!(later, [("site_1".to_owned(), t0 + 30 * HOUR, None)], "an outage over by then is left out");
    let earlier = store.site_outages(&a, &all, t0, t0 + 30 * HOUR).await.unwrap();
    assert_eq!(earlier, [("site_2".to_owned(), t0 + 2 * HOUR, Some(t0 + 5 * HOUR))], "[from, to)");
    assert!(store.site_outages(&b, &all, t0, t0 + 48 * HOUR).await.unwrap().is_empty());
});
