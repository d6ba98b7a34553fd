//! Outbound webhooks, end to end through the binary: a `kill -9` while deliveries are in flight
//! loses no message (the restarted process sends what was pending, each re-send under its
//! message's `webhook-id`), on SQLite and on PostgreSQL; and two replicas on one PostgreSQL
//! database deliver each message once, the survivor taking over when the lease holder dies.
//! PostgreSQL parts are skipped without `FAULTLINE_TEST_POSTGRES_URL`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use faultline_store::Backend;
use faultline_store::testing::TestDb;
use serde_json::{Value, json};

mod common;
use common::{Server, assert_log_clean, eventually};

/// Loopback receivers, attempts retried quickly, and an attempt given up after 2 s.
const FLAGS: &[&str] = &[
    "--webhook-allowed-hosts",
    "loopback",
    "--webhook-retry-schedule",
    "0s,200ms,200ms,200ms,200ms,200ms",
    "--webhook-timeout",
    "2s",
];

/// One request the receiver got: its `webhook-id`, the body's `type` and `data.id`.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    kind: String,
    fault_id: String,
}

type Log = Arc<Mutex<Vec<Delivery>>>;

/// An HTTP server on 127.0.0.1 that records every request as it arrives, then answers 204
/// after `delay`.
struct Receiver {
    url: String,
    log: Log,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(delay: Duration) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let log = Log::default();
        let app = axum::Router::new().fallback(receive).with_state((log.clone(), delay));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, log, server }
    }

    fn received(&self) -> Vec<Delivery> {
        self.log.lock().unwrap().clone()
    }

    /// The `webhook-id`s under which each fault's `fault.created` arrived, one per request.
    fn by_fault(&self) -> HashMap<String, Vec<String>> {
        let mut by_fault: HashMap<String, Vec<String>> = HashMap::new();
        for d in self.received() {
            assert_eq!(d.kind, "fault.created", "only fault.created was asked for: {d:?}");
            by_fault.entry(d.fault_id).or_default().push(d.id);
        }
        by_fault
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State((log, delay)): State<(Log, Duration)>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    log.lock().unwrap().push(Delivery {
        id: headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        kind: text(&body["type"]),
        fault_id: text(&body["data"]["id"]),
    });
    tokio::time::sleep(delay).await;
    StatusCode::NO_CONTENT
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// `POST /webhooks` for `fault.created` to the receiver: the endpoint's id.
async fn create_endpoint(http: &reqwest::Client, base: &str, key: &str, receiver: &Receiver) -> String {
    let body = json!({"url": receiver.url, "events": ["fault.created"]});
    let response = http.post(format!("{base}/webhooks")).bearer_auth(key).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let endpoint: Value = response.json().await.unwrap();
    endpoint["id"].as_str().unwrap().to_owned()
}

/// `POST /fault`: the new fault's id.
async fn create_fault(http: &reqwest::Client, base: &str, key: &str, resource: &str) -> String {
    let body = json!({"resource_id": resource, "type": "wantunnel", "severity": "HIGH", "message": "down"});
    let response = http.post(format!("{base}/fault")).bearer_auth(key).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{resource}");
    let fault: Value = response.json().await.unwrap();
    fault["id"].as_str().unwrap().to_owned()
}

/// Every message of the endpoint, following `meta.cursor` to the end.
async fn all_messages(http: &reqwest::Client, base: &str, key: &str, webhook_id: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut url = format!("{base}/webhooks/{webhook_id}/messages?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let response = http.get(&url).bearer_auth(key).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let page: Value = response.json().await.unwrap();
        messages.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["meta"]["cursor"].as_str() {
            Some(c) if page["meta"]["has_more"] == true => cursor = Some(c.to_owned()),
            _ => return messages,
        }
    }
    panic!("more than 100 pages of messages");
}

/// Whether every fault of `faults` has had its `fault.created` arrive.
fn all_arrived(receiver: &Receiver, faults: &[String]) -> bool {
    let by_fault = receiver.by_fault();
    faults.iter().all(|f| by_fault.contains_key(f))
}

/// Does this replica deliver webhooks now (its `faultline_singleton_leader` gauge)?
async fn delivers(http: &reqwest::Client, base: &str) -> bool {
    let Ok(response) = http.get(format!("{base}/metrics")).send().await else { return false };
    let text = response.text().await.unwrap_or_default();
    text.lines().any(|l| l.starts_with("faultline_singleton_leader{job=\"webhooks\"}") && l.ends_with(" 1"))
}

/// Assert that no fault's message arrived under two `webhook-id`s, nor two faults' under one.
fn assert_one_id_per_fault(by_fault: &HashMap<String, Vec<String>>) {
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (fault, ids) in by_fault {
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), 1, "{fault} arrived under several webhook-ids: {ids:?}");
        if let Some(other) = owner.insert(ids[0].as_str(), fault.as_str()) {
            panic!("webhook-id {} carried two faults: {other} and {fault}", ids[0]);
        }
    }
}

async fn kill_during_delivery(backend: Backend, test: &str) {
    const N: usize = 60;
    let Some(db) = TestDb::new(backend, test).await else { return };
    db.store.close().await;
    let http = client();
    // A slow receiver: at most 8 requests are in flight to it, so 60 take seconds to deliver.
    let receiver = Receiver::start(Duration::from_millis(300)).await;
    let (server, printed) = Server::start(&db.url, FLAGS);
    let key = printed.expect("the admin key printed at first start");
    let webhook_id = create_endpoint(&http, &server.base, &key, &receiver).await;

    let events: Vec<Value> = (0..N)
        .map(|i| {
            json!({"action": "trigger", "resource_id": format!("site_{i}"), "type": "site",
                   "severity": "CRITICAL", "message": "unreachable"})
        })
        .collect();
    let response =
        http.post(format!("{}/fault/events", server.base)).bearer_auth(&key).json(&json!({"events": events}));
    let response = response.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let faults: Vec<String> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["outcome"], "created", "{r}");
            r["fault_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(faults.len(), N);

    // Kill as soon as the first requests arrive: they are still being answered, the rest wait.
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.received().is_empty() {
        assert!(Instant::now() < deadline, "no delivery within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_log_clean(&server.kill(), "the killed server");
    let at_kill = receiver.by_fault().len();
    assert!(at_kill < N, "all {N} messages had arrived before the kill: it was not mid-delivery");

    let (server, printed) = Server::start(&db.url, FLAGS);
    assert_eq!(printed, None, "a restart prints no key");
    eventually(Duration::from_secs(30), "every fault.created arrives after the restart", || async {
        all_arrived(&receiver, &faults)
    })
    .await;
    let by_fault = receiver.by_fault();
    assert_eq!(by_fault.len(), N, "a message for no fault created: {by_fault:?}");
    assert_one_id_per_fault(&by_fault);
    // The attempts the kill cut short were made again, under the same webhook-id.
    let resent = by_fault.values().filter(|ids| ids.len() > 1).count();
    assert!(resent > 0, "no attempt cut short by the kill was made again");
    eventually(Duration::from_secs(10), "the message log shows every message delivered", || async {
        let messages = all_messages(&http, &server.base, &key, &webhook_id).await;
        messages.len() == N && messages.iter().all(|m| m["status"] == "delivered")
    })
    .await;
    let messages = all_messages(&http, &server.base, &key, &webhook_id).await;
    let logged: HashSet<&str> = messages.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let sent: HashSet<&str> = by_fault.values().map(|ids| ids[0].as_str()).collect();
    assert_eq!(logged, sent, "the message log's ids are the webhook-ids sent");
    eprintln!(
        "{test}: {at_kill} of {N} messages had arrived at the kill; {resent} were sent again after it, \
         {} requests in all",
        receiver.received().len()
    );
    assert_log_clean(&server.kill(), "the restarted server");
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_delivery_loses_no_message_sqlite() {
    kill_during_delivery(Backend::Sqlite, "webhooks_kill_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_delivery_loses_no_message_postgres() {
    kill_during_delivery(Backend::Postgres, "webhooks_kill_postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_message_once_postgres() {
    const N: usize = 40;
    const MORE: usize = 10;
    let Some(db) = TestDb::new(Backend::Postgres, "webhooks_replicas").await else { return };
    db.store.close().await;
    let http = client();
    let receiver = Receiver::start(Duration::from_millis(100)).await;
    let (a, printed) = Server::start(&db.url, FLAGS);
    let key = printed.expect("the first replica creates the admin key");
    let (b, printed) = Server::start(&db.url, FLAGS);
    assert_eq!(printed, None, "only the first replica bootstraps");
    let mut replicas = vec![a, b];
    let webhook_id = create_endpoint(&http, &replicas[0].base, &key, &receiver).await;

    // Through both replicas in turn, over 2 s, each message in flight for 100 ms: a replica
    // sending without the lease would find the other's messages in flight at its every look,
    // and send them too.
    let mut faults = Vec::new();
    for i in 0..N {
        faults.push(create_fault(&http, &replicas[i % 2].base, &key, &format!("tun_{i}")).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually(Duration::from_secs(20), "every fault.created arrives", || async {
        all_arrived(&receiver, &faults)
    })
    .await;
    // Time for a duplicate to show, were both replicas sending.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received();
    let ids: HashSet<&str> = received.iter().map(|d| d.id.as_str()).collect();
    assert_eq!((received.len(), ids.len()), (N, N), "requests and distinct webhook-ids");
    assert_one_id_per_fault(&receiver.by_fault());
    for replica in &replicas {
        let messages = all_messages(&http, &replica.base, &key, &webhook_id).await;
        assert_eq!(messages.len(), N, "messages listed by {}", replica.base);
        for m in &messages {
            assert_eq!(m["status"], "delivered", "{m}");
            assert_eq!(m["attempts"].as_array().unwrap().len(), 1, "one attempt: {m}");
            assert!(ids.contains(m["id"].as_str().unwrap()), "a message that never arrived: {m}");
        }
    }

    // Exactly one replica delivers; kill it, and the survivor takes over.
    let deadline = Instant::now() + Duration::from_secs(5);
    let leader = loop {
        let mut delivering = Vec::new();
        for (i, r) in replicas.iter().enumerate() {
            if delivers(&http, &r.base).await {
                delivering.push(i);
            }
        }
        assert!(delivering.len() <= 1, "both replicas hold the webhooks lease");
        if let [one] = delivering[..] {
            break one;
        }
        assert!(Instant::now() < deadline, "no replica holds the webhooks lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_log_clean(&replicas.remove(leader).kill(), "the killed lease holder");
    let survivor = replicas.remove(0);
    let mut more = Vec::new();
    for i in 0..MORE {
        more.push(create_fault(&http, &survivor.base, &key, &format!("after_{i}")).await);
    }
    eventually(
        Duration::from_secs(15),
        "the survivor delivers the faults created after the kill",
        || async { all_arrived(&receiver, &more) },
    )
    .await;
    assert!(delivers(&http, &survivor.base).await, "the survivor holds the webhooks lease");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = receiver.received();
    let ids: HashSet<&str> = received.iter().map(|d| d.id.as_str()).collect();
    assert_eq!((received.len(), ids.len()), (N + MORE, N + MORE), "nothing was in flight at the kill");
    assert_one_id_per_fault(&receiver.by_fault());
    let messages = all_messages(&http, &survivor.base, &key, &webhook_id).await;
    assert_eq!(messages.len(), N + MORE);
    assert_log_clean(&survivor.kill(), "the survivor");
    db.cleanup().await;
}
