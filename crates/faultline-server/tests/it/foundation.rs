//! The foundation: probes, credentials, the error envelope on every failure path, rate
//! limits, request ids, metrics, error docs and the OpenAPI lock.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use faultline_server::AppState;
use faultline_server::error::ErrorCode;
use faultline_store::Backend;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

e2e_test!(probes_answer_without_a_credential, |app: TestApp| async move {
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.headers()["content-type"], "application/json; charset=utf-8");
    assert_eq!(health.json::<Value>().await.unwrap(), serde_json::json!({"status": "ok"}));
    let ready: Value = app.client.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["database"], app.store.backend().name());
    app.finish().await;
});

e2e_test!(credentials_resolve_to_their_customer_or_answer_401, |app: TestApp| async move {
    let me: Value = app.get("/whoami").send().await.unwrap().json().await.unwrap();
    assert_eq!(me["customer_id"], app.customer_id.as_str());
    assert_eq!(me["credential_type"], "api_key");
    assert!(me["credential_id"].as_str().unwrap().starts_with("key_"));
    assert!(me["user_id"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(me["permissions"].as_array().unwrap().len(), 6);
    assert!(!me.to_string().contains(&app.key), "the secret is never echoed");

    let url = app.url("/whoami");
    let none = app.client.get(&url).send().await.unwrap();
    assert_error(none, StatusCode::UNAUTHORIZED, "authentication_error", "api_key_missing").await;
    for bad in ["Basic dXNlcjpwYXNz", "Bearer ", "Bearer flk_notakey", "Bearer eyJhbGciOiJub25lIn0.e30."] {
        let r = app.client.get(&url).header("authorization", bad).send().await.unwrap();
        assert_error(r, StatusCode::UNAUTHORIZED, "authentication_error", "api_key_invalid").await;
    }
    // A well-formed key with one character changed: right lookup, wrong hash.
    let mut forged = app.key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    let r = app.client.get(&url).bearer_auth(&forged).send().await.unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "authentication_error", "api_key_invalid").await;

    let key_id = me["credential_id"].as_str().unwrap();
    assert!(app.store.revoke_api_key(key_id, faultline_core::time::now_micros()).await.unwrap());
    // Replicas cache a key for at most a second: the revocation (made elsewhere) is in force a
    // second later, not before.
    let cached = app.get("/whoami").send().await.unwrap();
    assert_eq!(cached.status(), StatusCode::OK, "read from the cache");
    app.clock.advance(faultline_server::state::CREDENTIAL_CACHE_TTL);
    let revoked = app.get("/whoami").send().await.unwrap();
    let body =
        assert_error(revoked, StatusCode::UNAUTHORIZED, "authentication_error", "api_key_invalid").await;
    assert!(body["message"].as_str().unwrap().contains("revoked"));
    app.finish().await;
});

e2e_test!(framework_failures_answer_the_envelope, |app: TestApp| async move {
    let missing = app.get("/no/such/route").send().await.unwrap();
    assert_error(missing, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;

    let wrong_method = app.request(Method::POST, "/healthz").send().await.unwrap();
    let allow = wrong_method.headers().get("allow").expect("Allow header").to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");
    assert_error(wrong_method, StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed")
        .await;

    // Announce 2 MiB and send none of it: the answer must come before the body is read.
    let head = format!(
        "POST /whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.key,
        2 * 1024 * 1024
    );
    let (status, body) = raw_exchange(&app.base, &head).await;
    assert_eq!(status, 413);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(body["type"], "invalid_request_error");
    app.finish().await;
});

async fn panics() -> &'static str {
    panic!("secret detail /etc/passwd SELECT 1")
}

/// Send a raw request head over TCP and read one response: `(status, body)`.
async fn raw_exchange(base: &str, head: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n =
            tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await.unwrap().unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(split) = text.find("\r\n\r\n") {
            let length = text[..split]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= split + 4 + length || n == 0 {
                let status = text[9..12].parse().unwrap();
                return (status, text[split + 4..].to_owned());
            }
        }
        assert!(n > 0, "connection closed before a full answer");
    }
}

/// Routes that misbehave on purpose, behind the production middleware stack.
fn misbehaving_routes() -> Router<AppState> {
    Router::new()
        .route("/test/panic", get(panics))
        .route(
            "/test/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/test/echo", post(|body: String| async move { body }))
}

async fn stack_app(backend: Backend, test: &str) -> Option<TestApp> {
    TestApp::spawn_with(
        backend,
        test,
        |c| c.request_timeout = Duration::from_millis(300),
        Some(misbehaving_routes()),
    )
    .await
}

async fn panics_timeouts_and_big_bodies(app: TestApp) {
    let panic = app.client.get(app.url("/test/panic")).send().await.unwrap();
    let request_id = panic.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body =
        assert_error(panic, StatusCode::INTERNAL_SERVER_ERROR, "api_error", "internal_server_error").await;
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&request_id), "500 carries the request id: {message}");
    for leak in ["secret", "/etc/passwd", "SELECT", "panicked", ".rs"] {
        assert!(!message.contains(leak), "500 leaks {leak}: {message}");
    }

    let slow = app.client.get(app.url("/test/slow")).send().await.unwrap();
    assert_eq!(slow.headers()["retry-after"], "1", "a timeout asks for a retry");
    assert_error(slow, StatusCode::SERVICE_UNAVAILABLE, "api_error", "service_unavailable").await;

    let small = app.client.post(app.url("/test/echo")).body("hello").send().await.unwrap();
    assert_eq!(small.text().await.unwrap(), "hello");
    // Chunked, so no Content-Length: the limit applies while reading. The server answers and
    // closes while the client may still be writing, so a transport error is retried.
    let mut answered = None;
    for _ in 0..5 {
        let chunks =
            futures_util::stream::iter((0..17).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024])));
        let sent =
            app.client.post(app.url("/test/echo")).body(reqwest::Body::wrap_stream(chunks)).send().await;
        if let Ok(response) = sent {
            answered = Some(response);
            break;
        }
    }
    let streamed = answered.expect("an answer to the oversized chunked body");
    assert_error(streamed, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "payload_too_large").await;
    app.finish().await;
}

#[tokio::test]
async fn stack_handles_panics_timeouts_and_big_bodies_sqlite() {
    if let Some(app) = stack_app(Backend::Sqlite, "stack_sqlite").await {
        panics_timeouts_and_big_bodies(app).await;
    }
}

#[tokio::test]
async fn stack_handles_panics_timeouts_and_big_bodies_postgres() {
    if let Some(app) = stack_app(Backend::Postgres, "stack_postgres").await {
        panics_timeouts_and_big_bodies(app).await;
    }
}

e2e_test!(rate_limit_is_per_credential_with_headers, |app: TestApp| async move {
    let limited = app.create_key(&app.customer_id, "faults:read", Some(3)).await;
    for remaining in (0..3).rev() {
        let ok = app.client.get(app.url("/whoami")).bearer_auth(&limited).send().await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()["ratelimit-limit"], "3");
        assert_eq!(ok.headers()["ratelimit-remaining"], remaining.to_string().as_str());
        assert!(ok.headers().contains_key("ratelimit-reset"));
    }
    let refused = app.client.get(app.url("/whoami")).bearer_auth(&limited).send().await.unwrap();
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "rate_limited").await;
    // Another credential of the same customer has its own budget.
    assert_eq!(app.get("/whoami").send().await.unwrap().status(), StatusCode::OK);
    app.finish().await;
});

/// A key created without a limit of its own gets the documented default, 60 a minute: a burst
/// of 60, then one a second. The server's clock stands still until the test moves it.
async fn the_default_limit_is_sixty_a_minute(backend: Backend, test: &str) {
    // The harness raises the default for every other test; this one keeps the server's own.
    let documented = |c: &mut faultline_server::ServerConfig| {
        c.default_rate_limit = faultline_server::ServerConfig::new(c.public_url.clone()).default_rate_limit
    };
    let Some(app) = TestApp::spawn_with(backend, test, documented, None).await else { return };
    let key = app.create_key(&app.customer_id, "faults:read", None).await;
    let whoami = || app.client.get(app.url("/whoami")).bearer_auth(&key).send();
    for remaining in (0..60).rev() {
        let r = whoami().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{} requests left", remaining + 1);
        assert_eq!(r.headers()["ratelimit-limit"], "60");
        assert_eq!(r.headers()["ratelimit-remaining"], remaining.to_string().as_str());
    }
    let refused = whoami().await.unwrap();
    assert_eq!(refused.headers()["retry-after"], "1", "one request a second");
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "rate_limited").await;
    // A second later one more request is admitted, and only one.
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(whoami().await.unwrap().status(), StatusCode::OK);
    assert_eq!(whoami().await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    // A minute later the whole burst is back.
    app.clock.advance(Duration::from_secs(60));
    let fresh = whoami().await.unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    assert_eq!(fresh.headers()["ratelimit-remaining"], "59");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_limit_is_sixty_a_minute_sqlite() {
    the_default_limit_is_sixty_a_minute(Backend::Sqlite, "default_limit_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_limit_is_sixty_a_minute_postgres() {
    the_default_limit_is_sixty_a_minute(Backend::Postgres, "default_limit_postgres").await;
}

e2e_test!(request_ids_are_set_or_propagated, |app: TestApp| async move {
    let fresh = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = fresh.headers()["x-request-id"].to_str().unwrap();
    assert!(id.starts_with("req_") && id.len() == 24, "{id}");
    let given = app.client.get(app.url("/healthz")).header("x-request-id", "lb-1234").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "lb-1234");
    app.finish().await;
});

e2e_test!(metrics_count_requests_by_route_template, |app: TestApp| async move {
    app.client.get(app.url("/healthz")).send().await.unwrap();
    app.client.get(app.url("/docs/errors/rate_limited")).send().await.unwrap();
    app.client.get(app.url("/nowhere/at/all")).send().await.unwrap();
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains(r#"faultline_http_requests_total{method="GET",route="/healthz",status="200"}"#),
        "{text}"
    );
    assert!(text.contains(r#"route="/docs/errors/{code}""#), "route template, not raw path");
    assert!(!text.contains("rate_limited\""), "raw paths never become labels");
    assert!(text.contains(r#"route="unmatched",status="404""#));
    assert!(text.contains("faultline_http_request_duration_seconds_bucket{"), "latency histogram");
    app.finish().await;
});

e2e_test!(every_error_code_has_a_docs_page, |app: TestApp| async move {
    for code in ErrorCode::ALL {
        let page = app.client.get(app.url(&format!("/docs/errors/{}", code.as_str()))).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{}", code.as_str());
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = page.text().await.unwrap();
        assert!(html.contains(code.as_str()) && html.contains(code.explanation()));
    }
    let index = app.client.get(app.url("/docs/errors")).send().await.unwrap().text().await.unwrap();
    assert!(ErrorCode::ALL.iter().all(|c| index.contains(c.as_str())));
    let unknown = app.client.get(app.url("/docs/errors/not_a_code")).send().await.unwrap();
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    app.finish().await;
});

e2e_test!(openapi_is_served_as_committed, |app: TestApp| async move {
    let served = app.client.get(app.url("/openapi.json")).send().await.unwrap().text().await.unwrap();
    assert_eq!(served, faultline_server::openapi::document_json());
    app.finish().await;
});

/// The committed `openapi.json` is what the code generates. To update it after changing the
/// API: `cargo run -q -- openapi > openapi.json`.
#[test]
fn committed_openapi_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = faultline_server::openapi::document_json();
    assert!(
        committed == generated,
        "openapi.json is out of date with the code; regenerate it with `cargo run -q -- openapi > openapi.json`"
    );
}

e2e_test!(the_api_reference_renders_offline_from_the_openapi_document, |app: TestApp| async move {
    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    let doc: Value = serde_json::from_str(faultline_server::openapi::document_json()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let heading = format!("<code>{} {}</code>", method.to_uppercase(), path);
            assert!(html.contains(&heading), "{heading} is documented");
        }
    }
    assert!(html.contains("maxLength 1000"), "limits are shown");
    assert!(!html.contains("<script"), "no script");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "nothing loads from elsewhere");
    app.finish().await;
});
