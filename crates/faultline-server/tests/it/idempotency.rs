//! `Idempotency-Key` on every POST, end to end: replays, conflicts, per-credential scope,
//! concurrent retries and retries after a cut connection.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

const REPLAYED: &str = "idempotent-replayed";

/// Send `body` to `path` with the key; the status, whether it was a replay, and the body.
async fn keyed(app: &TestApp, key: &str, path: &str, body: &Value) -> (StatusCode, bool, Value) {
    let response =
        app.request(Method::POST, path).header("Idempotency-Key", key).json(body).send().await.unwrap();
    let status = response.status();
    let replayed = response.headers().get(REPLAYED).is_some_and(|v| v == "true");
    (status, replayed, response.json().await.unwrap())
}

async fn fault_count(app: &TestApp) -> usize {
    app.get_json("/fault?limit=100", &app.key).await["data"].as_array().unwrap().len()
}

e2e_test!(a_retried_create_replays_the_first_answer_and_creates_once, |app: TestApp| async move {
    let body = TestApp::fault_body("tun_1", "wantunnel", "HIGH");
    let (status, replayed, first) = keyed(&app, "create-1", "/fault", &body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    let (status, replayed, second) = keyed(&app, "create-1", "/fault", &body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(first, second, "the replay is the first answer, byte for byte");
    assert_eq!(fault_count(&app).await, 1);

    // The same JSON in another layout is the same request.
    let reordered: Value = serde_json::from_str(&format!(
        "{{ \"message\": {},  \"severity\": \"HIGH\", \"type\": \"wantunnel\", \"resource_id\": \"tun_1\" }}",
        body["message"]
    ))
    .unwrap();
    let (_, replayed, third) = keyed(&app, "create-1", "/fault", &reordered).await;
    assert!(replayed);
    assert_eq!(third["id"], first["id"]);

    // Another body under the same key: 409, and nothing created.
    let other = TestApp::fault_body("tun_2", "wantunnel", "HIGH");
    let response =
        app.request(Method::POST, "/fault").header("Idempotency-Key", "create-1").json(&other).send().await;
    assert_error(response.unwrap(), StatusCode::CONFLICT, "invalid_request_error", "idempotency_key_reused")
        .await;
    // The same key on another route is another request too.
    let id = first["id"].as_str().unwrap();
    let response = app
        .request(Method::POST, &format!("/fault/{id}/comment"))
        .header("Idempotency-Key", "create-1")
        .json(&body)
        .send()
        .await;
    assert_error(response.unwrap(), StatusCode::CONFLICT, "invalid_request_error", "idempotency_key_reused")
        .await;
    assert_eq!(fault_count(&app).await, 1);

    // Keys belong to a credential: another key of the same customer starts afresh.
    let second_key = app.create_key(&app.customer_id, "faults:read,faults:write", None).await;
    let response = app
        .client
        .post(app.url("/fault"))
        .bearer_auth(&second_key)
        .header("Idempotency-Key", "create-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers().get(REPLAYED).is_none());
    assert_eq!(fault_count(&app).await, 2);
    app.finish().await;
});

e2e_test!(failed_requests_are_not_remembered, |app: TestApp| async move {
    let bad = json!({"resource_id": "tun_1", "type": "wantunnel", "severity": "LOUD", "message": "m"});
    let response = app.request(Method::POST, "/fault").header("Idempotency-Key", "k").json(&bad).send().await;
    assert_error(response.unwrap(), StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid")
        .await;
    // The 400 changed nothing and was not stored: the corrected request runs under the same key.
    let good = TestApp::fault_body("tun_1", "wantunnel", "LOW");
    let (status, replayed, _) = keyed(&app, "k", "/fault", &good).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    // A comment on a missing fault is a 404 each time, not a stored answer.
    for _ in 0..2 {
        let response = app
            .request(Method::POST, "/fault/flt_2AbCdEfGhIjKlMnOpQrStUvWxYz/comment")
            .header("Idempotency-Key", "missing")
            .json(&json!({"comment": "hello"}))
            .send()
            .await;
        assert_error(response.unwrap(), StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    }
    app.finish().await;
});

e2e_test!(malformed_keys_answer_400_naming_the_header, |app: TestApp| async move {
    let body = TestApp::fault_body("tun_1", "wantunnel", "LOW");
    for bad in ["", &"k".repeat(256), "caf\u{e9}"] {
        let request = app.request(Method::POST, "/fault").json(&body);
        let request = match reqwest::header::HeaderValue::from_bytes(bad.as_bytes()) {
            Ok(value) => request.header("Idempotency-Key", value),
            Err(_) => continue,
        };
        let err = assert_error(
            request.send().await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "parameter_invalid",
        )
        .await;
        assert!(err["message"].as_str().unwrap().contains("'Idempotency-Key'"), "{err}");
    }
    let (status, _, _) = keyed(&app, &"k".repeat(255), "/fault", &body).await;
    assert_eq!(status, StatusCode::CREATED, "255 characters is allowed");
    assert_eq!(fault_count(&app).await, 1);
    app.finish().await;
});

e2e_test!(every_post_replays_comment_resolve_events_and_mint, |app: TestApp| async move {
    let fault = app.create_fault(TestApp::fault_body("tun_1", "wantunnel", "HIGH")).await;
    let id = fault["id"].as_str().unwrap();

    let comment = json!({"comment": "ISP ticket opened"});
    let path = format!("/fault/{id}/comment");
    let (s1, _, first) = keyed(&app, "c", &path, &comment).await;
    let (s2, replayed, second) = keyed(&app, "c", &path, &comment).await;
    assert_eq!((s1, s2, replayed), (StatusCode::CREATED, StatusCode::CREATED, true));
    assert_eq!(first, second);
    assert_eq!(second["comments"].as_array().unwrap().len(), 1, "one comment, not two");

    let path = format!("/fault/{id}/resolve");
    let resolve = json!({"comment": "fixed"});
    let (s1, _, first) = keyed(&app, "r", &path, &resolve).await;
    let (s2, replayed, second) = keyed(&app, "r", &path, &resolve).await;
    assert_eq!((s1, s2, replayed), (StatusCode::OK, StatusCode::OK, true));
    assert_eq!(first, second);
    let read = app.get_json(&format!("/fault/{id}"), &app.key).await;
    assert_eq!(read["comments"].as_array().unwrap().len(), 2, "the resolve's comment once");

    let events = json!({"events": [
        {"action": "trigger", "resource_id": "tun_9", "type": "wantunnel", "severity": "HIGH", "message": "down"},
    ]});
    let (s1, _, first) = keyed(&app, "e", "/fault/events", &events).await;
    let (s2, replayed, second) = keyed(&app, "e", "/fault/events", &events).await;
    assert_eq!((s1, s2, replayed), (StatusCode::OK, StatusCode::OK, true));
    assert_eq!(first["results"][0]["outcome"], "created");
    assert_eq!(second, first, "the replay says created, as the first answer did");

    let mint = json!({"expire_after_minutes": 30, "label": "noc"});
    let (s1, _, first) = keyed(&app, "t", "/fault/token", &mint).await;
    let (s2, replayed, second) = keyed(&app, "t", "/fault/token", &mint).await;
    assert_eq!((s1, s2, replayed), (StatusCode::OK, StatusCode::OK, true));
    assert_eq!(first, second, "the same token and short link");
    let tokens = app.get_json("/fault/token", &app.key).await;
    assert_eq!(tokens["data"].as_array().unwrap().len(), 1, "{tokens}");
    app.finish().await;
});

e2e_test!(concurrent_retries_with_one_key_create_one_fault, |app: TestApp| async move {
    let body = TestApp::fault_body("tun_1", "wantunnel", "HIGH");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let request = app.request(Method::POST, "/fault").header("Idempotency-Key", "storm").json(&body);
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
            response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every answer names the one fault: {ids:?}");
    assert_eq!(fault_count(&app).await, 1);
    app.finish().await;
});

e2e_test!(a_retry_after_a_cut_connection_never_duplicates, |app: TestApp| async move {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = TestApp::fault_body("tun_1", "wantunnel", "HIGH").to_string();
    let attempts = 12;
    for n in 0..attempts {
        let key = format!("cut-{n}");
        // Send the whole request, then hang up at once, without reading the answer: the
        // server may or may not have committed by then.
        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request = format!(
            "POST /fault HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nIdempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n{body}",
            app.key,
            body.len()
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        if n % 2 == 1 {
            tokio::time::sleep(std::time::Duration::from_millis(n)).await;
        }
        drop(socket);
        let body: Value = serde_json::from_str(&body).unwrap();
        let (status, _, answer) = keyed(&app, &key, "/fault", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    assert_eq!(fault_count(&app).await, attempts as usize, "one fault per key, whatever the cut");
    app.finish().await;
});

e2e_test!(minting_appears_in_the_shared_faults_timeline, |app: TestApp| async move {
    let fault = app.create_fault(TestApp::fault_body("tun_1", "wantunnel", "HIGH")).await;
    let id = fault["id"].as_str().unwrap();
    let response = app
        .request(Method::POST, "/fault/token")
        .json(&json!({"expire_after_minutes": 30, "fault_ids": [id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token: Value = response.json().await.unwrap();
    let timeline = app.get_json(&format!("/fault/{id}/timeline"), &app.key).await;
    let kinds: Vec<&str> =
        timeline["data"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "token_minted"]);
    assert_eq!(timeline["data"][1]["detail"]["token_id"], token["id"]);
    app.finish().await;
});
