//! Event ingest: deduplication, resolves, ordering within a batch, validation, and storms of
//! concurrent triggers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

fn trigger(resource: &str) -> Value {
    json!({"action": "trigger", "resource_id": resource, "type": "wantunnel", "severity": "HIGH",
           "message": format!("{resource} down"), "resource_ancestry_path": format!("site_1|{resource}")})
}

async fn ingest(app: &TestApp, events: Value) -> Value {
    let r = app.request(Method::POST, "/fault/events").json(&json!({"events": events})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn outcomes(results: &Value) -> Vec<&str> {
    results["results"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect()
}

e2e_test!(triggers_deduplicate_and_resolves_close, |app: TestApp| async move {
    let now = faultline_core::time::now_micros();
    let earlier = faultline_core::time::format_micros(now - 600_000_000);
    let mut first = trigger("tun_1");
    first["occurred_at"] = json!(earlier);
    let results = ingest(
        &app,
        json!([first, trigger("tun_1"), trigger("tun_2"),
        {"action": "resolve", "resource_id": "tun_1", "type": "wantunnel"},
        {"action": "resolve", "resource_id": "tun_1", "type": "wantunnel"},
        trigger("tun_1")]),
    )
    .await;
    assert_eq!(
        outcomes(&results),
        ["created", "deduplicated", "created", "resolved", "no_open_fault", "created"]
    );
    let r = results["results"].as_array().unwrap();
    assert_eq!(r[0]["fault_id"], r[1]["fault_id"]);
    assert_eq!(r[0]["fault_id"], r[3]["fault_id"]);
    assert_eq!(r[4]["fault_id"], Value::Null);
    assert_ne!(r[5]["fault_id"], r[0]["fault_id"], "after the resolve a new trigger opens a new fault");
    let closed = app.get_json(&format!("/fault/{}", r[0]["fault_id"].as_str().unwrap()), &app.key).await;
    assert_eq!(closed["status"], "resolved");
    assert_eq!(closed["created_at"], earlier.as_str(), "occurred_at is the first detection");
    assert!(closed["resolved_at"].as_str().unwrap() > earlier.as_str());
    let open = app.get_json("/fault?status=unresolved&resource_id=tun_1", &app.key).await;
    assert_eq!(open["meta"]["count"], 1);

    // A manual POST /fault still always creates.
    app.create_fault(TestApp::fault_body("tun_2", "wantunnel", "LOW")).await;
    assert_eq!(
        app.get_json("/fault?status=unresolved&resource_id=tun_2", &app.key).await["meta"]["count"],
        2
    );
    let timeline =
        app.get_json(&format!("/fault/{}/timeline", r[0]["fault_id"].as_str().unwrap()), &app.key).await;
    let kinds: Vec<&str> =
        timeline["data"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "resolved"]);
    app.finish().await;
});

e2e_test!(a_resolve_takes_the_event_time, |app: TestApp| async move {
    let now = faultline_core::time::now_micros();
    let started = faultline_core::time::format_micros(now - 3_600_000_000);
    let ended = faultline_core::time::format_micros(now - 1_800_000_000);
    let mut t = trigger("tun_9");
    t["occurred_at"] = json!(started);
    let results = ingest(
        &app,
        json!([t, {"action": "resolve", "resource_id": "tun_9", "type": "wantunnel", "occurred_at": ended}]),
    )
    .await;
    let id = results["results"][0]["fault_id"].as_str().unwrap();
    let fault = app.get_json(&format!("/fault/{id}"), &app.key).await;
    assert_eq!(fault["resolved_at"], ended.as_str());
    app.finish().await;
});

e2e_test!(bad_batches_name_the_event_and_store_nothing, |app: TestApp| async move {
    let cases = [
        (json!({}), "parameter_missing", "'events'"),
        (json!({"events": []}), "parameter_invalid", "'events'"),
        (
            json!({"events": [trigger("a"), {"action": "trigger", "resource_id": "b", "type": "t", "message": "m"}]}),
            "parameter_missing",
            "'events[1].severity'",
        ),
        (
            json!({"events": [{"action": "fix", "resource_id": "b", "type": "t"}]}),
            "parameter_invalid",
            "'events[0].action'",
        ),
    ];
    for (body, code, param) in cases {
        let r = app.request(Method::POST, "/fault/events").json(&body).send().await.unwrap();
        let err = assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", code).await;
        assert!(err["message"].as_str().unwrap().contains(param), "{err}");
    }
    let many: Vec<Value> = (0..1001).map(|i| trigger(&format!("r{i}"))).collect();
    let r = app.request(Method::POST, "/fault/events").json(&json!({"events": many})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.get_json("/fault", &app.key).await["meta"]["count"], 0, "a refused batch applies nothing");
    app.finish().await;
});

e2e_test!(concurrent_trigger_storms_open_exactly_one_fault, |app: TestApp| async move {
    let storms = (0..50).map(|_| {
        let client = app.client.clone();
        let url = app.url("/fault/events");
        let key = app.key.clone();
        tokio::spawn(async move {
            let events: Vec<Value> = (0..5).map(|_| trigger("tun_storm")).collect();
            let r = client.post(url).bearer_auth(key).json(&json!({"events": events})).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()
        })
    });
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for storm in storms {
        let results = storm.await.unwrap();
        for r in results["results"].as_array().unwrap() {
            created += usize::from(r["outcome"] == "created");
            ids.insert(r["fault_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(created, 1, "exactly one trigger opened the fault");
    assert_eq!(ids.len(), 1, "every trigger points at it");
    let open = app.get_json("/fault?status=unresolved&resource_id=tun_storm", &app.key).await;
    assert_eq!(open["meta"]["count"], 1);
    app.finish().await;
});
