//! Outbound webhooks, the API: the endpoints' lifecycle and validation, the allowed hosts,
//! permissions and tenancy, test messages, secrets and their rotation, and the signatures as
//! the Standard Webhooks specification's own library verifies them. Also the test receiver and
//! helpers that `webhook_delivery.rs` (delivery, retries, filters) shares.

use std::collections::{HashMap, VecDeque};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

/// Delivery's tests, here so that they are `webhooks::delivery::…` (a `webhooks` filter runs them).
#[path = "webhook_delivery.rs"]
mod delivery;

/// How long a test waits for what it expects, and how often it looks.
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// The four fault events, the default subscription.
pub const ALL_EVENTS: [&str; 4] = ["fault.created", "fault.resolved", "fault.commented", "fault.deleted"];

/// A server that may send to loopback, retries at once and twice 200 ms later, and gives up on
/// an attempt after 2 s.
pub async fn spawn(backend: faultline_store::Backend, test: &str) -> Option<TestApp> {
    let configure = |c: &mut faultline_server::ServerConfig| {
        c.webhook_allowed_hosts = "loopback".parse().unwrap();
        c.webhook_retry_schedule = "0s,200ms,200ms".parse().unwrap();
        c.webhook_timeout = Duration::from_secs(2);
    };
    TestApp::spawn_with(backend, test, configure, None).await
}

/// As `e2e_test!`, on a server configured by [`spawn`].
#[macro_export]
macro_rules! webhook_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let test = concat!(stringify!($name), "_sqlite");
                if let Some(app) = $crate::webhooks::spawn(faultline_store::Backend::Sqlite, test).await {
                    ($body)(app).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let test = concat!(stringify!($name), "_postgres");
                if let Some(app) = $crate::webhooks::spawn(faultline_store::Backend::Postgres, test).await {
                    ($body)(app).await;
                }
            }
        }
    };
}

/// Ask `probe` every [`POLL`] until it gives a value; panic after [`WAIT`].
pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// One request the receiver was sent.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub user_agent: String,
    pub body: String,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a delivery's body is JSON")
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }

    /// What `verify_standard_webhooks.py` checks: this delivery, under `secret`.
    pub fn case(&self, secret: &str) -> Value {
        json!({"secret": secret, "id": self.id, "timestamp": self.timestamp,
               "signature": self.signature, "body": self.body})
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, with this body.
    Status(u16, &'static str),
    /// 302 to another path of the receiver.
    Redirect(&'static str),
    /// No answer for far longer than an attempt may take.
    Hang,
}

#[derive(Default)]
struct Script {
    received: Vec<Delivery>,
    /// Per path, the next answers; then the path's default; else 204.
    queued: HashMap<String, VecDeque<Reply>>,
    defaults: HashMap<String, Reply>,
}

/// A webhook receiver on `127.0.0.1:0` that records every request and answers as told.
pub struct Receiver {
    base: String,
    script: Arc<Mutex<Script>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(Script::default()));
        let app = axum::Router::new().fallback(receive).with_state(script.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { base, script, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Answer the next requests to `path` so, in order.
    pub fn answer_next(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().queued.entry(path.to_owned()).or_default().extend(replies);
    }

    /// Answer requests to `path` so once the queued answers are spent.
    pub fn answer_always(&self, path: &str, reply: Reply) {
        self.script.lock().unwrap().defaults.insert(path.to_owned(), reply);
    }

    pub fn received(&self, path: &str) -> Vec<Delivery> {
        self.script.lock().unwrap().received.iter().filter(|d| d.path == path).cloned().collect()
    }

    /// The requests to `path` once there are at least `n`.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Delivery> {
        let what = format!("{n} requests to {path}");
        eventually(&what, async || Some(self.received(path)).filter(|got| got.len() >= n)).await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(script): State<Arc<Mutex<Script>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let path = uri.path().to_owned();
    let reply = {
        let mut script = script.lock().unwrap();
        script.received.push(Delivery {
            path: path.clone(),
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            content_type: header("content-type"),
            user_agent: header("user-agent"),
            body: String::from_utf8(body.to_vec()).expect("a delivery's body is UTF-8"),
        });
        let queued = script.queued.get_mut(&path).and_then(VecDeque::pop_front);
        queued.or_else(|| script.defaults.get(&path).cloned()).unwrap_or(Reply::Status(204, ""))
    };
    match reply {
        Reply::Status(code, body) => (StatusCode::from_u16(code).unwrap(), body).into_response(),
        Reply::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)], "").into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

/// `POST /webhooks` with customer A's key; panics unless 201. Returns the endpoint.
pub async fn create_webhook(app: &TestApp, body: Value) -> Value {
    let response = app.request(Method::POST, "/webhooks").json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{body}");
    response.json().await.unwrap()
}

/// An endpoint's messages (`query` is the query string, with its `?`), newest first.
pub async fn messages(app: &TestApp, webhook_id: &str, query: &str) -> Vec<Value> {
    let list = app.get_json(&format!("/webhooks/{webhook_id}/messages{query}"), &app.key).await;
    list["data"].as_array().unwrap().clone()
}

/// The message `message_id` of an endpoint once `done` holds for it.
pub async fn wait_for_message(
    app: &TestApp,
    webhook_id: &str,
    message_id: &str,
    done: fn(&Value) -> bool,
) -> Value {
    eventually(&format!("message {message_id} to settle"), async || {
        messages(app, webhook_id, "").await.into_iter().find(|m| m["id"] == message_id && done(m))
    })
    .await
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

/// HMAC-SHA256 written out (RFC 2104), so that the check does not share the server's code.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().to_vec()
}

/// Is one of the delivery's signatures the Standard Webhooks signature under `secret`?
pub fn signed_by(delivery: &Delivery, secret: &str) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let signed = format!("{}.{}.{}", delivery.id, delivery.timestamp, delivery.body);
    let expected = format!("v1,{}", STANDARD.encode(hmac_sha256(&key, signed.as_bytes())));
    delivery.signature.split(' ').any(|s| s == expected)
}

/// Python with the Standard Webhooks library (`pip install standardwebhooks`), if present.
pub fn standard_webhooks_library(test: &str) -> bool {
    crate::harness::python_library(test, "standardwebhooks.webhooks", "standardwebhooks")
}

/// Run `verify_standard_webhooks.py` on `cases`: whether it passed them all, and its report
/// (`{"verified": [ids], "failed": [{"id", "error"}]}`).
pub async fn verify_with_library(cases: Vec<Value>) -> (bool, Value) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/scripts/verify_standard_webhooks.py");
    let file = std::env::temp_dir()
        .join(format!("faultline-webhook-cases-{}.json", faultline_core::ids::random_base62(12)));
    std::fs::write(&file, Value::from(cases).to_string()).unwrap();
    let path = file.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(crate::harness::python()).args(["-W", "ignore", script]).arg(&path).output().unwrap()
    })
    .await
    .unwrap();
    std::fs::remove_file(&file).ok();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.success(), report)
}

webhook_test!(endpoints_are_created_listed_changed_and_deleted, |app: TestApp| async move {
    let created =
        create_webhook(&app, json!({"url": "http://127.0.0.1:9/first", "description": "ops"})).await;
    let id = id_of(&created);
    assert!(id.starts_with("whk_"), "{created}");
    let secret = created["secret"].as_str().unwrap();
    let key = STANDARD.decode(secret.strip_prefix("whsec_").expect("whsec_ prefix")).unwrap();
    assert!((24..=64).contains(&key.len()), "{secret}");
    assert_eq!(created["url"], "http://127.0.0.1:9/first");
    assert_eq!(created["events"], json!(ALL_EVENTS));
    assert_eq!(created["filter"], json!({"severity": [], "site_id": []}));
    assert_eq!((created["description"].as_str(), created["enabled"].as_bool()), (Some("ops"), Some(true)));
    assert!(created["disabled_reason"].is_null() && created["created_at"].is_string(), "{created}");
    let response =
        app.request(Method::POST, "/webhooks").json(&json!({"url": "http://127.0.0.1:9/x"})).send();
    let response = response.await.unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let second: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/webhooks/{}", id_of(&second)));
    assert!(second["description"].is_null());
    let fetched = app.get_json(&format!("/webhooks/{id}"), &app.key).await;
    assert!(fetched.get("secret").is_none(), "the secret is shown only at creation: {fetched}");
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(fetched, expected);

    let third = create_webhook(&app, json!({"url": "http://127.0.0.1:9/third"})).await;
    let page = app.get_json("/webhooks?limit=2", &app.key).await;
    let ids: Vec<String> = page["data"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, [id_of(&third), id_of(&second)], "newest first");
    assert_eq!((page["meta"]["count"].as_u64(), page["meta"]["has_more"].as_bool()), (Some(2), Some(true)));
    assert!(page["data"].as_array().unwrap().iter().all(|w| w.get("secret").is_none()), "{page}");
    let cursor = page["meta"]["cursor"].as_str().unwrap();
    let rest = app.get_json(&format!("/webhooks?limit=2&cursor={cursor}"), &app.key).await;
    assert_eq!(rest["data"].as_array().unwrap().iter().map(id_of).collect::<Vec<_>>(), [id.as_str()]);
    assert_eq!((rest["meta"]["has_more"].as_bool(), rest["meta"]["cursor"].is_null()), (Some(false), true));

    let change = json!({"url": "http://127.0.0.1:9/moved", "events": ["fault.resolved"], "enabled": false,
        "filter": {"severity": ["CRITICAL"], "site_id": ["site_1"]}, "description": "changed"});
    let response = app.request(Method::PATCH, &format!("/webhooks/{id}")).json(&change).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let patched: Value = response.json().await.unwrap();
    assert!(patched.get("secret").is_none(), "{patched}");
    for field in ["url", "events", "filter", "description", "enabled"] {
        assert_eq!(patched[field], change[field], "{field}: {patched}");
    }
    assert_eq!(app.get_json(&format!("/webhooks/{id}"), &app.key).await, patched, "stored");
    let response = app.request(Method::PATCH, &format!("/webhooks/{id}")).json(&json!({"description": null}));
    let patched: Value = response.send().await.unwrap().json().await.unwrap();
    assert!(patched["description"].is_null() && patched["url"] == change["url"], "{patched}");

    let delete = || app.request(Method::DELETE, &format!("/webhooks/{id}")).send();
    assert_eq!(delete().await.unwrap().status(), StatusCode::NO_CONTENT);
    let gone = app.get(&format!("/webhooks/{id}")).send().await.unwrap();
    assert_error(gone, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    assert_error(delete().await.unwrap(), StatusCode::NOT_FOUND, "not_found_error", "resource_not_found")
        .await;

    let url = "http://127.0.0.1:9/x";
    for (body, code, param) in [
        (json!({"description": "no url"}), "parameter_missing", "'url'"),
        (json!({"url": "ftp://127.0.0.1/x"}), "parameter_invalid", "'url'"),
        (json!({"url": url, "events": ["fault.updated"]}), "parameter_invalid", "'events'"),
        (json!({"url": url, "events": []}), "parameter_invalid", "'events'"),
        (json!({"url": url, "filter": {"severity": ["LOUD"]}}), "parameter_invalid", "'filter'"),
        (json!({"url": url, "colour": "red"}), "parameter_invalid", "'colour'"),
        (json!({"url": url, "enabled": false}), "parameter_invalid", "'enabled'"),
    ] {
        let response = app.request(Method::POST, "/webhooks").json(&body).send().await.unwrap();
        let err = assert_error(response, StatusCode::BAD_REQUEST, "invalid_request_error", code).await;
        assert!(err["message"].as_str().unwrap().contains(param), "{body}: {err}");
    }
    let second_id = id_of(&second);
    for body in [json!({"colour": "red"}), json!({"url": "ftp://127.0.0.1/x"}), json!({"enabled": "yes"})] {
        let response = app.request(Method::PATCH, &format!("/webhooks/{second_id}")).json(&body).send();
        assert_error(
            response.await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "parameter_invalid",
        )
        .await;
    }
    assert_eq!(app.get_json("/webhooks", &app.key).await["meta"]["count"], 2, "nothing refused was written");
    app.finish().await;
});

e2e_test!(loopback_targets_are_refused_by_default, |app: TestApp| async move {
    let receiver = Receiver::start().await;
    let port = receiver.url("").rsplit(':').next().unwrap().to_owned();
    for url in [receiver.url("/hook"), format!("http://localhost:{port}/hook"), "http://10.0.0.1/".into()] {
        let response =
            app.request(Method::POST, "/webhooks").json(&json!({"url": url})).send().await.unwrap();
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            "webhook_url_not_allowed",
        )
        .await;
    }
    let public = create_webhook(&app, json!({"url": "http://1.1.1.1/hook"})).await;
    let path = format!("/webhooks/{}", id_of(&public));
    let response = app.request(Method::PATCH, &path).json(&json!({"url": receiver.url("/hook")})).send();
    assert_error(
        response.await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request_error",
        "webhook_url_not_allowed",
    )
    .await;
    assert_eq!(app.get_json(&path, &app.key).await["url"], "http://1.1.1.1/hook", "unchanged");
    assert_eq!(app.get_json("/webhooks", &app.key).await["meta"]["count"], 1);
    app.finish().await;
});

webhook_test!(only_webhooks_write_of_the_same_customer_reaches_an_endpoint, |app: TestApp| async move {
    let receiver = Receiver::start().await;
    let endpoint = create_webhook(&app, json!({"url": receiver.url("/hook"), "description": "mine"})).await;
    let id = id_of(&endpoint);
    let test = app.request(Method::POST, &format!("/webhooks/{id}/test")).send().await.unwrap();
    let message_id = id_of(&test.json::<Value>().await.unwrap());
    let routes = |id: &str, message_id: &str| {
        vec![
            (Method::POST, "/webhooks".to_owned(), Some(json!({"url": receiver.url("/other")}))),
            (Method::GET, "/webhooks".to_owned(), None),
            (Method::GET, format!("/webhooks/{id}"), None),
            (Method::PATCH, format!("/webhooks/{id}"), Some(json!({"description": "theirs"}))),
            (Method::POST, format!("/webhooks/{id}/rotate-secret"), None),
            (Method::POST, format!("/webhooks/{id}/test"), None),
            (Method::GET, format!("/webhooks/{id}/messages"), None),
            (Method::POST, format!("/webhooks/{id}/messages/{message_id}/retry"), None),
            (Method::DELETE, format!("/webhooks/{id}"), None),
        ]
    };
    let send = |method: Method, path: &str, body: Option<Value>, credential: &str| {
        let mut request = app.client.request(method, app.url(path)).bearer_auth(credential);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let without =
        app.create_key(&app.customer_id, "faults:read,faults:write,faults:delete,tokens:write", None).await;
    let minted = app.request(Method::POST, "/fault/token").json(&json!({"expire_after_minutes": 5})).send();
    let minted: Value = minted.await.unwrap().json().await.unwrap();
    let token = minted["token"].as_str().unwrap();
    for credential in [without.as_str(), token] {
        for (method, path, body) in routes(&id, &message_id) {
            let response = send(method.clone(), &path, body, credential).await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
            assert_error(response, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
        }
    }

    let (_, theirs) = app.other_customer().await;
    let listed = app.get_json("/webhooks", &theirs).await;
    assert_eq!(listed["data"], json!([]), "another customer's endpoint is not listed: {listed}");
    for (method, path, body) in routes(&id, &message_id).into_iter().skip(2) {
        let response = send(method.clone(), &path, body, &theirs).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_error(response, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    }
    let mine = app.get_json(&format!("/webhooks/{id}"), &app.key).await;
    assert_eq!(
        (mine["description"].as_str(), mine["enabled"].as_bool()),
        (Some("mine"), Some(true)),
        "{mine}"
    );
    let sent = receiver.wait_for("/hook", 1).await;
    assert!(signed_by(&sent[0], endpoint["secret"].as_str().unwrap()), "the secret was not rotated");
    assert_eq!(messages(&app, &id, "").await.len(), 1, "only the owner's test message was queued");
    app.finish().await;
});

webhook_test!(a_test_message_goes_through_the_delivery_path, |app: TestApp| async move {
    let receiver = Receiver::start().await;
    let endpoint =
        create_webhook(&app, json!({"url": receiver.url("/hook"), "events": ["fault.deleted"]})).await;
    let id = id_of(&endpoint);
    let response = app.request(Method::POST, &format!("/webhooks/{id}/test")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let queued: Value = response.json().await.unwrap();
    let message_id = id_of(&queued);
    assert!(message_id.starts_with("msg_"), "{queued}");
    let sent = receiver.wait_for("/hook", 1).await;
    assert_eq!((sent[0].id.as_str(), sent[0].event_type().as_str()), (message_id.as_str(), "webhook.test"));
    assert!(signed_by(&sent[0], endpoint["secret"].as_str().unwrap()));
    let message = wait_for_message(&app, &id, &message_id, |m| m["status"] == "delivered").await;
    assert_eq!(message["type"], "webhook.test");
    assert_eq!(message["attempts"].as_array().unwrap().len(), 1, "{message}");
    // The metrics of docs/webhooks.md (process-wide: other tests add to them too).
    let metrics = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    for name in [
        "faultline_webhook_attempts_total{result=\"delivered\"}",
        "faultline_webhook_messages_total{outcome=\"delivered\"}",
        "faultline_webhook_attempt_seconds_count",
        "faultline_webhook_delivery_latency_seconds_count",
        "faultline_webhook_queue_depth",
        "faultline_webhook_oldest_pending_seconds",
        "faultline_singleton_leader{job=\"webhooks\"} 1",
    ] {
        assert!(metrics.lines().any(|line| line.starts_with(name)), "{name} missing from /metrics");
    }
    app.finish().await;
});

webhook_test!(signatures_verify_with_the_standard_webhooks_library, |app: TestApp| async move {
    if !standard_webhooks_library("signatures_verify_with_the_standard_webhooks_library") {
        return;
    }
    let receiver = Receiver::start().await;
    let endpoint = create_webhook(&app, json!({"url": receiver.url("/hook")})).await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    let fault = app.create_fault(TestApp::fault_body("dev_1", "reboot", "HIGH")).await;
    let fault_id = fault["id"].as_str().unwrap();
    let comment = json!({"comment": "ünïcödé \"quoted\" \\ and a\nnewline"});
    let response = app.request(Method::POST, &format!("/fault/{fault_id}/comment")).json(&comment).send();
    assert_eq!(response.await.unwrap().status(), StatusCode::CREATED);
    app.request(Method::POST, &format!("/webhooks/{}/test", id_of(&endpoint))).send().await.unwrap();
    let sent = receiver.wait_for("/hook", 3).await;
    for delivery in &sent {
        assert!(signed_by(delivery, &secret), "{delivery:?}");
        assert!(!delivery.signature.contains(' '), "one secret, one signature: {}", delivery.signature);
    }
    let (passed, report) = verify_with_library(sent.iter().map(|d| d.case(&secret)).collect()).await;
    assert!(passed, "{report}");
    assert_eq!(report["verified"].as_array().unwrap().len(), 3, "{report}");

    // The same check fails what is not genuine, so its success above means something.
    let other = faultline_core::webhooks::WebhookSecret::generate().encode();
    let mut forged = Vec::new();
    for delivery in &sent {
        let mut tampered = delivery.clone();
        tampered.body = delivery.body.replacen("\"data\"", " \"data\"", 1);
        forged.push(tampered.case(&secret));
        let mut replayed = delivery.clone();
        replayed.id = format!("{}x", delivery.id);
        forged.push(replayed.case(&secret));
        forged.push(delivery.case(&other));
    }
    let (passed, report) = verify_with_library(forged).await;
    assert!(!passed, "{report}");
    assert_eq!(report["verified"], json!([]), "{report}");
    assert_eq!(report["failed"].as_array().unwrap().len(), 9, "{report}");
    app.finish().await;
});

webhook_test!(after_a_rotation_both_secrets_sign, |app: TestApp| async move {
    let library = standard_webhooks_library("after_a_rotation_both_secrets_sign");
    let receiver = Receiver::start().await;
    let endpoint = create_webhook(&app, json!({"url": receiver.url("/hook")})).await;
    let id = id_of(&endpoint);
    let old = endpoint["secret"].as_str().unwrap().to_owned();
    app.create_fault(TestApp::fault_body("dev_1", "reboot", "LOW")).await;
    let before = receiver.wait_for("/hook", 1).await.remove(0);
    assert!(signed_by(&before, &old) && !before.signature.contains(' '), "{before:?}");

    let response = app.request(Method::POST, &format!("/webhooks/{id}/rotate-secret")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let rotated: Value = response.json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old, "{rotated}");
    assert!(app.get_json(&format!("/webhooks/{id}"), &app.key).await.get("secret").is_none());

    app.create_fault(TestApp::fault_body("dev_2", "reboot", "LOW")).await;
    let after = receiver.wait_for("/hook", 2).await.remove(1);
    let signatures: Vec<&str> = after.signature.split(' ').collect();
    assert_eq!(signatures.len(), 2, "{}", after.signature);
    assert!(signatures.iter().all(|s| s.starts_with("v1,")), "{}", after.signature);
    assert!(signed_by(&after, &old) && signed_by(&after, &new), "{after:?}");
    if library {
        for secret in [&old, &new] {
            let (passed, report) = verify_with_library(vec![after.case(secret)]).await;
            assert!(passed, "{report}");
        }
        let (passed, report) = verify_with_library(vec![before.case(&new)]).await;
        assert!(!passed, "the old delivery was never signed by the new secret: {report}");
    }
    app.finish().await;
});

webhook_test!(creation_and_rotation_replay_under_an_idempotency_key, |app: TestApp| async move {
    let body = json!({"url": "http://127.0.0.1:9/hook", "description": "replayed"});
    let create =
        || app.request(Method::POST, "/webhooks").header("Idempotency-Key", "create-1").json(&body).send();
    let first = create().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = create().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the replay is the first answer, secret included");
    let list = app.get_json("/webhooks", &app.key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");

    let id = id_of(&first);
    let rotate = || {
        app.request(Method::POST, &format!("/webhooks/{id}/rotate-secret"))
            .header("Idempotency-Key", "rotate-1")
            .send()
    };
    let rotated: Value = rotate().await.unwrap().json().await.unwrap();
    let replayed = rotate().await.unwrap();
    assert_eq!(replayed.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(replayed.json::<Value>().await.unwrap(), rotated);
    let stored = app.store.get_webhook(&app.customer_id, &id).await.unwrap().unwrap();
    assert_eq!(stored.secret, rotated["secret"].as_str().unwrap(), "rotated once, not twice");
    assert_eq!(stored.previous_secret.as_deref(), first["secret"].as_str());
});
