//! The live event stream: changes arrive in order with the log's sequence numbers as ids, a
//! resumed stream misses nothing and repeats nothing, scopes and tenancy hold, and a slow
//! subscriber is told to resync instead of being buffered without bound.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::TestApp;

/// One event as received: id (empty for none), event name, data.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub event: String,
    pub data: Value,
}

enum Next {
    Event(Received),
    End,
    Timeout,
}

/// A Server-Sent Events client over a streaming response.
pub struct SseClient {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
}

impl SseClient {
    pub async fn open(app: &TestApp, credential: &str, last_event_id: Option<&str>) -> SseClient {
        let mut request = app.client.get(app.url("/fault/stream")).bearer_auth(credential);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseClient {
            body: response.bytes_stream().map(|r| r.map(|b| b.to_vec())).boxed(),
            buffer: String::new(),
        }
    }

    /// The next event within `within`; `None` when the stream ended or nothing came.
    pub async fn next(&mut self, within: Duration) -> Option<Received> {
        match self.poll(within).await {
            Next::Event(event) => Some(event),
            Next::End | Next::Timeout => None,
        }
    }

    /// Did the stream end (the server closed it) within `within`, with no event before?
    pub async fn ends(&mut self, within: Duration) -> bool {
        matches!(self.poll(within).await, Next::End)
    }

    async fn poll(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Next::Event(Received { id, event, data: serde_json::from_str(&data).unwrap() });
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Next::Timeout,
                Ok(None | Some(Err(_))) => return Next::End,
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
            }
        }
    }

    /// The next event, which must come within 10 s.
    pub async fn expect(&mut self) -> Received {
        self.next(Duration::from_secs(10)).await.expect("an event within 10 s")
    }
}

fn fault_at(site: &str, resource: &str) -> Value {
    let mut body = TestApp::fault_body(resource, "wantunnel", "HIGH");
    body["resource_ancestry_path"] = json!(format!("{site}|{resource}"));
    body
}

e2e_test!(changes_arrive_in_order_and_a_resumed_stream_misses_nothing, |app: TestApp| async move {
    let mut stream = SseClient::open(&app, &app.key, None).await;
    let fault = app.create_fault(fault_at("site_1", "tun_1")).await;
    let id = fault["id"].as_str().unwrap();
    let created = stream.expect().await;
    assert_eq!(created.event, "fault.created");
    assert_eq!(created.data["fault_id"], id);
    assert_eq!(created.data["fault"]["id"], id);
    assert_eq!(created.data["fault"]["status"], "unresolved");
    let r = app
        .request(Method::POST, &format!("/fault/{id}/comment"))
        .json(&json!({"comment": "on it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.request(Method::POST, &format!("/fault/{id}/resolve")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let commented = stream.expect().await;
    let resolved = stream.expect().await;
    assert_eq!((commented.event.as_str(), resolved.event.as_str()), ("fault.commented", "fault.resolved"));
    assert_eq!(resolved.data["fault"]["status"], "resolved");
    let ids: Vec<i64> = [&created, &commented, &resolved].iter().map(|e| e.id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    drop(stream);

    // While nobody listens: a new fault, and the first one deleted.
    let second = app.create_fault(fault_at("site_1", "tun_2")).await;
    let r = app.request(Method::DELETE, &format!("/fault/{id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let mut resumed = SseClient::open(&app, &app.key, Some(&resolved.id)).await;
    let missed = resumed.expect().await;
    assert_eq!((missed.event.as_str(), &missed.data["fault_id"]), ("fault.created", &second["id"]));
    let deleted = resumed.expect().await;
    assert_eq!((deleted.event.as_str(), deleted.data["fault_id"].as_str()), ("fault.deleted", Some(id)));
    assert!(deleted.data.get("fault").is_none(), "{:?}", deleted.data);
    // Then live again, with nothing repeated.
    let third = app.create_fault(fault_at("site_1", "tun_3")).await;
    let live = resumed.expect().await;
    assert_eq!(live.data["fault_id"], third["id"]);
    assert!(live.id.parse::<i64>().unwrap() > deleted.id.parse::<i64>().unwrap());
    assert!(resumed.next(Duration::from_millis(300)).await.is_none(), "nothing repeated");

    // A malformed Last-Event-ID is refused.
    let r = app.get("/fault/stream").header("last-event-id", "yesterday").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.finish().await;
});

e2e_test!(a_token_sees_only_its_scope_and_a_customer_only_its_own, |app: TestApp| async move {
    // A scope names existing sites: make one, and let the stream publish it before the
    // token's stream opens (a stream starts at what has been published).
    let mut owner = SseClient::open(&app, &app.key, None).await;
    let seed = app.create_fault(fault_at("site_1", "tun_0")).await;
    assert_eq!(owner.expect().await.data["fault_id"], seed["id"]);
    let minted = crate::tokens::mint(&app, json!({"expire_after_minutes": 30, "site_ids": ["site_1"]})).await;
    let token = minted["token"].as_str().unwrap().to_owned();
    let (_, other) = app.other_customer().await;
    let mut scoped = SseClient::open(&app, &token, None).await;
    let mut stranger = SseClient::open(&app, &other, None).await;

    app.create_fault(fault_at("site_2", "tun_9")).await;
    let mine = app.create_fault(fault_at("site_1", "tun_1")).await;
    let seen = scoped.expect().await;
    assert_eq!(seen.data["fault_id"], mine["id"], "the site_2 fault is outside the token's scope");

    let r = app
        .client
        .post(app.url("/fault"))
        .bearer_auth(&other)
        .json(&fault_at("site_1", "tun_x"))
        .send()
        .await
        .unwrap();
    let theirs: Value = r.json().await.unwrap();
    assert_eq!(stranger.expect().await.data["fault_id"], theirs["id"], "another customer sees only its own");

    // Revoking the token ends its stream.
    let r = app
        .request(Method::DELETE, &format!("/fault/token/{}", minted["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(scoped.ends(Duration::from_secs(8)).await, "the revoked token's stream ends");
    let r = app.client.get(app.url("/fault/stream")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.finish().await;
});

/// A subscriber allowed to fall 4 events behind, sent 300 at once.
async fn slow_subscriber(backend: faultline_store::Backend, test: &str) {
    let Some(app) = TestApp::spawn_with(backend, test, |c| c.stream_buffer = 4, None).await else {
        return;
    };
    let mut stream = SseClient::open(&app, &app.key, None).await;
    let events: Vec<Value> = (0..300)
        .map(|i| {
            json!({"action": "trigger", "resource_id": format!("tun_{i}"), "type": "wantunnel",
            "severity": "LOW", "message": "m"})
        })
        .collect();
    let r = app.request(Method::POST, "/fault/events").json(&json!({"events": events})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut received = 0;
    let resync = loop {
        let event = stream.expect().await;
        if event.event == "resync" {
            break event;
        }
        received += 1;
        assert!(received < 300, "a subscriber 4 events behind is cut off, not buffered");
    };
    assert_eq!(resync.data["reason"], "slow_consumer");
    assert!(resync.data["last_event_id"].as_str().is_some(), "{:?}", resync.data);
    assert!(stream.ends(Duration::from_secs(2)).await, "and the stream ends");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_told_to_resync_sqlite() {
    slow_subscriber(faultline_store::Backend::Sqlite, "slow_subscriber_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_told_to_resync_postgres() {
    slow_subscriber(faultline_store::Backend::Postgres, "slow_subscriber_postgres").await;
}

/// On PostgreSQL a sequence number is taken before its transaction commits. A later event that
/// commits first must wait for the earlier one (or for its rollback), or a client resuming
/// after the later one would never see the earlier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_commits_first_waits_for_the_one_numbered_before_it_postgres() {
    use sqlx::Connection;
    let Some(app) = TestApp::spawn(faultline_store::Backend::Postgres, "stream_gap_postgres").await else {
        return;
    };
    let mut stream = SseClient::open(&app, &app.key, None).await;
    let fault = app.create_fault(fault_at("site_1", "tun_1")).await;
    assert_eq!(stream.expect().await.data["fault_id"], fault["id"], "the stream has caught up");
    let mut held = sqlx::PgConnection::connect(app.database_url()).await.unwrap();

    let (customer, fault_id) = (app.customer_id.as_str(), fault["id"].as_str().unwrap());
    // Rolled back: the later event goes once the gap is known to stay empty.
    hold_a_sequence_number(&mut held, customer, fault_id).await;
    let later = app.create_fault(fault_at("site_1", "tun_2")).await;
    assert!(
        stream.next(Duration::from_millis(1500)).await.is_none(),
        "held back behind the open transaction"
    );
    sqlx::query("ROLLBACK").execute(&mut held).await.unwrap();
    let event = stream.expect().await;
    assert_eq!((event.event.as_str(), &event.data["fault_id"]), ("fault.created", &later["id"]));

    // Committed: both go, in sequence order.
    hold_a_sequence_number(&mut held, customer, fault_id).await;
    let last = app.create_fault(fault_at("site_1", "tun_3")).await;
    assert!(
        stream.next(Duration::from_millis(1500)).await.is_none(),
        "held back behind the open transaction"
    );
    sqlx::query("COMMIT").execute(&mut held).await.unwrap();
    let first = stream.expect().await;
    let second = stream.expect().await;
    assert_eq!((first.event.as_str(), &first.data["fault_id"]), ("fault.commented", &fault["id"]));
    assert_eq!((second.event.as_str(), &second.data["fault_id"]), ("fault.created", &last["id"]));
    assert!(first.id.parse::<i64>().unwrap() < second.id.parse::<i64>().unwrap());
    held.close().await.unwrap();
    app.finish().await;
}

/// Open a transaction on `conn` that logs a comment on the fault, taking the log's next
/// sequence number, and leave it open.
async fn hold_a_sequence_number(conn: &mut sqlx::PgConnection, customer_id: &str, fault_id: &str) {
    sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
    sqlx::query(
        "INSERT INTO fault_events (customer_id, fault_id, kind, actor, at, detail) \
         VALUES ($1, $2, 'commented', 'test', 0, '{}')",
    )
    .bind(customer_id)
    .bind(fault_id)
    .execute(&mut *conn)
    .await
    .unwrap();
}

e2e_test!(a_client_that_keeps_reconnecting_while_faults_arrive_misses_nothing, |app: TestApp| async move {
    const FAULTS: usize = 120;
    let mut stream = SseClient::open(&app, &app.key, None).await;
    let (client, url, key) = (app.client.clone(), app.url("/fault"), app.key.clone());
    let producer = tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 0..FAULTS {
            let body = TestApp::fault_body(&format!("tun_{i}"), "wantunnel", "LOW");
            let created: Value =
                client.post(&url).bearer_auth(&key).json(&body).send().await.unwrap().json().await.unwrap();
            ids.push(created["id"].as_str().unwrap().to_owned());
        }
        ids
    });
    // Read a few events, hang up, resume from the last id; again and again.
    let (mut seen, mut last_id) = (Vec::new(), None::<String>);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < FAULTS && tokio::time::Instant::now() < deadline {
        for _ in 0..3 {
            let Some(event) = stream.next(Duration::from_secs(2)).await else { break };
            if event.event == "fault.created" {
                seen.push(event.data["fault_id"].as_str().unwrap().to_owned());
            }
            last_id = Some(event.id);
        }
        stream = SseClient::open(&app, &app.key, last_id.as_deref()).await;
    }
    let produced = producer.await.unwrap();
    assert_eq!(seen, produced, "every fault once, in order, across {} reconnections", FAULTS / 3);

    // An API key revoked meanwhile ends its stream too.
    let reader = app.create_key(&app.customer_id, "faults:read", None).await;
    let mut theirs = SseClient::open(&app, &reader, None).await;
    let key_id = app.store.list_api_keys(Some(&app.customer_id)).await.unwrap().last().unwrap().id.clone();
    app.store.revoke_api_key(&key_id, faultline_core::time::now_micros()).await.unwrap();
    app.clock.advance(faultline_server::state::CREDENTIAL_CACHE_TTL);
    assert!(theirs.ends(Duration::from_secs(8)).await, "the revoked key's stream ends");
    app.finish().await;
});

/// An idle stream gets comment lines (every 15 s by default; 200 ms here), which hold it open
/// through proxies and which SSE clients ignore.
async fn keep_alive(backend: faultline_store::Backend, test: &str) {
    let configure = |c: &mut faultline_server::ServerConfig| c.stream_keep_alive = Duration::from_millis(200);
    let Some(app) = TestApp::spawn_with(backend, test, configure, None).await else {
        return;
    };
    let mut response = app.get("/fault/stream").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-accel-buffering"], "no", "proxies must not buffer it");
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while text.matches("\n\n").count() < 2 {
        let chunk =
            tokio::time::timeout_at(deadline, response.chunk()).await.expect("keep-alives within 5 s");
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("the stream stays open")));
    }
    assert!(
        text.split("\n\n").filter(|b| !b.is_empty()).all(|b| b.starts_with(':')),
        "only comments: {text:?}"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_gets_keep_alive_comments_sqlite() {
    keep_alive(faultline_store::Backend::Sqlite, "keep_alive_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_gets_keep_alive_comments_postgres() {
    keep_alive(faultline_store::Backend::Postgres, "keep_alive_postgres").await;
}

e2e_test!(
    a_fault_the_retention_sweeper_deletes_is_a_deletion_in_the_scopes_that_saw_it,
    |app: TestApp| async move {
        let mut owner = SseClient::open(&app, &app.key, None).await;
        let inside = app.create_fault(fault_at("site_1", "tun_1")).await;
        assert_eq!(owner.expect().await.data["fault_id"], inside["id"]);
        let minted =
            crate::tokens::mint(&app, json!({"expire_after_minutes": 30, "site_ids": ["site_1"]})).await;
        let mut scoped = SseClient::open(&app, minted["token"].as_str().unwrap(), None).await;
        let outside = app.create_fault(fault_at("site_2", "tun_2")).await;
        assert_eq!(owner.expect().await.data["fault_id"], outside["id"]);

        // Every fault past its ttl (a clock far ahead): the sweeper logs `expired`, sent as a deletion.
        let far_ahead = faultline_core::time::now_micros() / 1_000_000 + 1_000 * 86_400;
        assert_eq!(app.store.sweep_expired(far_ahead, 500).await.unwrap(), 2);
        let mut gone: Vec<(String, Value)> = Vec::new();
        for _ in 0..2 {
            let event = owner.expect().await;
            gone.push((event.event, event.data["fault_id"].clone()));
        }
        gone.sort_by_key(|(_, id)| id.to_string());
        let mut expected = vec![
            ("fault.deleted".to_owned(), inside["id"].clone()),
            ("fault.deleted".to_owned(), outside["id"].clone()),
        ];
        expected.sort_by_key(|(_, id)| id.to_string());
        assert_eq!(gone, expected);
        let seen = scoped.expect().await;
        assert_eq!((seen.event.as_str(), &seen.data["fault_id"]), ("fault.deleted", &inside["id"]));
        assert!(
            scoped.next(Duration::from_millis(1500)).await.is_none(),
            "the site_2 fault is outside the scope"
        );
        app.finish().await;
    }
);

/// Nobody watching, writes do not make the tailer read the log: it waits for its poll (here an
/// hour, so none comes during the test). A first stream still starts after those writes.
async fn unwatched_writes_wait_for_the_poll(backend: faultline_store::Backend, test: &str) {
    let configure = |c: &mut faultline_server::ServerConfig| c.stream_poll = Duration::from_secs(3_600);
    let Some(app) = TestApp::spawn_with(backend, test, configure, None).await else {
        return;
    };
    let mut earlier = Vec::new();
    for i in 0..30 {
        earlier.push(app.create_fault(fault_at("site_1", &format!("tun_{i}"))).await);
    }
    assert_eq!(app.stream.log_reads(), 0, "30 unwatched writes read the log");
    // The first stream starts after the writes before it, though the tailer had not read them.
    let mut stream = SseClient::open(&app, &app.key, None).await;
    let fault = app.create_fault(fault_at("site_1", "tun_new")).await;
    let first = stream.expect().await;
    assert_eq!(first.data["fault_id"], fault["id"], "not one of the {} faults before it", earlier.len());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwatched_writes_wait_for_the_poll_and_a_first_stream_still_starts_after_them_sqlite() {
    unwatched_writes_wait_for_the_poll(faultline_store::Backend::Sqlite, "unwatched_writes_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwatched_writes_wait_for_the_poll_and_a_first_stream_still_starts_after_them_postgres() {
    unwatched_writes_wait_for_the_poll(faultline_store::Backend::Postgres, "unwatched_writes_postgres").await;
}

/// Faults written while nobody watches, more of them than a subscriber may fall behind by, and
/// straight through the store (no write wakes the tailer): a client connecting next is not
/// handed them (nor cut off for being behind on them); its first event is the next write.
async fn joining_after_a_burst(backend: faultline_store::Backend, test: &str) {
    let Some(app) = TestApp::spawn_with(backend, test, |c| c.stream_buffer = 4, None).await else {
        return;
    };
    let now = faultline_core::time::now_micros();
    let burst: Vec<_> = (0..20)
        .map(|i| {
            let new = faultline_core::fault::NewFault {
                resource_id: format!("tun_{i}"),
                fault_type: "wantunnel".into(),
                severity: faultline_core::fault::Severity::High,
                message: "down".into(),
                cause: String::new(),
                microservice_id: "test".into(),
                resource_ancestry_path: format!("site_1|tun_{i}"),
                created_at: None,
            };
            faultline_core::fault::Fault::create(&app.customer_id, new, now, 86_400)
        })
        .collect();
    app.store.insert_faults(&burst, "test", None).await.unwrap();
    let mut stream = SseClient::open(&app, &app.key, None).await;
    let fault = app.create_fault(fault_at("site_1", "tun_after")).await;
    let first = stream.expect().await;
    assert_eq!((first.event.as_str(), &first.data["fault_id"]), ("fault.created", &fault["id"]));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_joining_after_an_unwatched_burst_starts_after_it_sqlite() {
    joining_after_a_burst(faultline_store::Backend::Sqlite, "joining_after_a_burst_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_joining_after_an_unwatched_burst_starts_after_it_postgres() {
    joining_after_a_burst(faultline_store::Backend::Postgres, "joining_after_a_burst_postgres").await;
}

e2e_test!(at_shutdown_a_stream_ends_with_a_reconnection_delay, |app: TestApp| async move {
    let response = app.client.get(app.url("/fault/stream")).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.stream.close();
    let body = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the stream ends at shutdown")
        .unwrap();
    assert!(body.contains(": shutting down\n"), "{body}");
    assert!(body.contains("retry: 1000\n") || body.contains("retry:1000\n"), "a reconnection delay: {body}");
    app.finish().await;
});
