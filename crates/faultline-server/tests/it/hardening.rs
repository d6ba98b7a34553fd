//! Answers when things around the service fail: the database out of reach answers 503
//! `database_unavailable`, and more requests than the service may handle at once answer 503
//! `overloaded`, each with `Retry-After`, while the probes keep answering.
//! (Stalling clients, a full disk and a database that goes away and comes back are tested
//! on the real binary: `crates/faultline/tests/hardening.rs`.)

use std::time::Duration;

use faultline_store::Backend;
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

e2e_test!(a_database_out_of_reach_answers_503_database_unavailable, |app: TestApp| async move {
    // Listed once first, so that the key is known; the store then goes away.
    assert_eq!(app.get("/fault").send().await.unwrap().status(), StatusCode::OK);
    app.store.close().await;
    // The credential cache still knows the key for up to a second: both paths are covered.
    for _ in 0..2 {
        let listed = app.get("/fault").send().await.unwrap();
        assert_eq!(listed.headers()["retry-after"], "2", "{:?}", listed.headers());
        assert_error(listed, StatusCode::SERVICE_UNAVAILABLE, "api_error", "database_unavailable").await;
        let created = app
            .request(Method::POST, "/fault")
            .json(&TestApp::fault_body("r1", "reboot", "LOW"))
            .send()
            .await
            .unwrap();
        assert_error(created, StatusCode::SERVICE_UNAVAILABLE, "api_error", "database_unavailable").await;
        app.clock.advance(Duration::from_secs(2));
    }
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert!(ready.headers().contains_key("retry-after"));
    assert_error(ready, StatusCode::SERVICE_UNAVAILABLE, "api_error", "database_unavailable").await;
    let live = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK, "the process is alive");
});

/// A POST whose body is still to be uploaded (1,000 bytes announced, none sent), past the
/// point where its handler waits for the body: the server has answered `100 Continue`, which
/// hyper sends only when the handler starts reading. It holds its request slot until the body
/// comes or the connection closes.
async fn upload_in_progress(app: &TestApp) -> tokio::net::TcpStream {
    let mut socket = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /fault HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n",
        app.key
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 256];
    while !answer.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer))
            .await
            .expect("100 Continue within 10 s")
            .unwrap();
        assert!(n > 0, "the connection closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buffer[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&answer));
    socket
}

async fn past_capacity_requests_are_turned_away_at_once(backend: Backend, test: &str) {
    let Some(app) = TestApp::spawn_with(backend, test, |c| c.max_concurrent_requests = 2, None).await else {
        return;
    };
    let held = [upload_in_progress(&app).await, upload_in_progress(&app).await];
    let turned_away = app.get("/fault").send().await.unwrap();
    assert_eq!(turned_away.headers()["retry-after"], "1");
    assert_error(turned_away, StatusCode::SERVICE_UNAVAILABLE, "api_error", "overloaded").await;
    let started = tokio::time::Instant::now();
    let again = app.get("/fault").send().await.unwrap();
    assert_eq!(again.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once, not queued: {:?}",
        started.elapsed()
    );
    for exempt in ["/healthz", "/readyz", "/metrics"] {
        let response = app.client.get(app.url(exempt)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{exempt} is never shed");
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("faultline_requests_shed_total"), "the shedding is counted");
    // The uploads go away: their slots are free again.
    drop(held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.get("/fault").send().await.unwrap().status() != StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "the slots were never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_capacity_requests_are_turned_away_at_once_sqlite() {
    past_capacity_requests_are_turned_away_at_once(Backend::Sqlite, "shed_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_capacity_requests_are_turned_away_at_once_postgres() {
    past_capacity_requests_are_turned_away_at_once(Backend::Postgres, "shed_postgres").await;
}
