//! Heartbeats and offline detection: a silent site goes offline once, with the documented
//! start, and its next heartbeat ends the outage. The detector is driven with a chosen clock.

use faultline_core::heartbeat::OfflinePolicy;
use faultline_core::time::{format_micros, parse_rfc3339};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

const INTERVAL: i64 = 30_000_000;
const POLICY: OfflinePolicy = OfflinePolicy { interval: INTERVAL, misses: 10 };
const RETENTION: i64 = 400 * 86_400;

async fn beat(app: &TestApp, body: Value) -> Value {
    let r = app.request(Method::POST, "/heartbeat").json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{body}");
    r.json().await.unwrap()
}

async fn detect(app: &TestApp, now: i64) -> usize {
    faultline_server::heartbeats::detect(&*app.store, &POLICY, now, RETENTION).await.unwrap()
}

async fn site_faults(app: &TestApp, query: &str) -> Vec<Value> {
    app.get_json(&format!("/fault?type=site{query}"), &app.key).await["data"].as_array().unwrap().clone()
}

e2e_test!(
    a_silent_site_goes_offline_once_and_its_next_heartbeat_ends_the_outage,
    |app: TestApp| async move {
        let receipt = beat(
            &app,
            json!({"heartbeats": [{"site_id": "site_a"}, {"site_id": "site_b"}, {"site_id": "site_a"}]}),
        )
        .await;
        assert_eq!(receipt["accepted"], 2, "a site named twice counts once");
        assert_eq!(receipt["resolved"], json!([]));
        // Two sites whose last heartbeats were 20 minutes ago (written as the handler would, with
        // that clock).
        let t0 = faultline_core::time::now_micros() - 40 * INTERVAL;
        let body =
            json!({"heartbeats": [{"site_id": "site_lyon", "name": "Lyon"}, {"site_id": "site_oslo"}]});
        let beats = faultline_core::heartbeat::parse_heartbeats(&body).unwrap();
        app.store.record_heartbeats(&app.customer_id, &beats, t0, RETENTION, "test", None).await.unwrap();

        // Nine intervals and a bit of silence: not yet offline. Ten: offline, once.
        assert_eq!(detect(&app, t0 + 9 * INTERVAL + 29_000_000).await, 0);
        assert!(site_faults(&app, "").await.is_empty());
        assert_eq!(detect(&app, t0 + 10 * INTERVAL).await, 2);
        assert_eq!(detect(&app, t0 + 20 * INTERVAL).await, 0, "an offline site is not found again");
        let open = site_faults(&app, "&status=unresolved").await;
        assert_eq!(open.len(), 2);
        let lyon = open.iter().find(|f| f["resource_id"] == "site_lyon").unwrap();
        assert_eq!(lyon["severity"], "CRITICAL");
        assert_eq!(
            lyon["created_at"],
            format_micros(t0 + INTERVAL),
            "the outage began at the first missed heartbeat"
        );
        assert_eq!(lyon["site_id"], "site_lyon");
        assert!(lyon["message"].as_str().unwrap().contains("Lyon (site_lyon)"), "{lyon}");
        assert!(lyon["cause"].as_str().unwrap().contains("10 heartbeats missed"), "{lyon}");

        // Lyon's next heartbeat resolves its outage at its arrival; Oslo stays down.
        let back = beat(&app, json!({"site_id": "site_lyon"})).await;
        assert_eq!(back["resolved"], json!([lyon["id"]]));
        let resolved = app.get_json(&format!("/fault/{}", lyon["id"].as_str().unwrap()), &app.key).await;
        assert_eq!(resolved["status"], "resolved");
        assert_eq!(resolved["resolved_at"], back["received_at"]);
        assert_eq!(site_faults(&app, "&status=unresolved").await.len(), 1);
        // A second heartbeat has nothing left to resolve.
        assert_eq!(beat(&app, json!({"site_id": "site_lyon"})).await["resolved"], json!([]));
        // Later, everyone is silent: a site that never reported is not offline, and Oslo's
        // outage is still the one open.
        let now = faultline_core::time::now_micros();
        assert_eq!(
            detect(&app, now + 10 * INTERVAL).await,
            3,
            "Lyon, site_a and site_b; Oslo is still offline"
        );

        // The timeline tells who did what.
        let timeline =
            app.get_json(&format!("/fault/{}/timeline", lyon["id"].as_str().unwrap()), &app.key).await;
        let kinds: Vec<&str> =
            timeline["data"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["created", "resolved"], "{timeline}");
        app.finish().await;
    }
);

e2e_test!(an_outage_joins_a_site_fault_already_open_for_the_site, |app: TestApp| async move {
    beat(&app, json!({"site_id": "site_a"})).await;
    let r = app
        .request(Method::POST, "/fault/events")
        .json(&json!({"events": [{"action": "trigger", "resource_id": "site_a", "type": "site",
            "severity": "HIGH", "message": "monitor says site_a is down"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let now = faultline_core::time::now_micros();
    assert_eq!(detect(&app, now + 11 * INTERVAL).await, 1);
    let open = site_faults(&app, "&status=unresolved").await;
    assert_eq!(open.len(), 1, "one open site fault per site: {open:?}");
    // The heartbeat ends it.
    let back = beat(&app, json!({"site_id": "site_a"})).await;
    assert_eq!(back["resolved"], json!([open[0]["id"]]));
    assert!(site_faults(&app, "&status=unresolved").await.is_empty());
    app.finish().await;
});

e2e_test!(heartbeats_are_validated_permissioned_and_idempotent, |app: TestApp| async move {
    for (body, param, code) in [
        (json!({}), "site_id", "parameter_missing"),
        (json!({"site_id": ""}), "site_id", "parameter_invalid"),
        (json!({"site_id": "a|b"}), "site_id", "parameter_invalid"),
        (json!({"site_id": "s", "name": 3}), "name", "parameter_invalid"),
        (json!({"heartbeats": []}), "heartbeats", "parameter_invalid"),
        (
            json!({"heartbeats": [{"site_id": "ok"}, {"site_id": 1}]}),
            "heartbeats[1].site_id",
            "parameter_invalid",
        ),
    ] {
        let r = app.request(Method::POST, "/heartbeat").json(&body).send().await.unwrap();
        let error = assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", code).await;
        assert!(error["message"].as_str().unwrap().contains(&format!("'{param}'")), "{error}");
    }
    let read_only = app.create_key(&app.customer_id, "faults:read", None).await;
    let r = app
        .client
        .post(app.url("/heartbeat"))
        .bearer_auth(&read_only)
        .json(&json!({"site_id": "s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let writer = app.create_key(&app.customer_id, "heartbeats:write", None).await;
    let send = || {
        app.client
            .post(app.url("/heartbeat"))
            .bearer_auth(&writer)
            .header("idempotency-key", "hb-1")
            .json(&json!({"site_id": "s"}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    app.finish().await;
});

e2e_test!(sites_are_per_customer, |app: TestApp| async move {
    let (_, other) = app.other_customer().await;
    let r = app
        .client
        .post(app.url("/heartbeat"))
        .bearer_auth(&other)
        .json(&json!({"site_id": "site_x"}))
        .send()
        .await
        .unwrap();
    let t0 = parse_rfc3339(r.json::<Value>().await.unwrap()["received_at"].as_str().unwrap()).unwrap();
    assert_eq!(detect(&app, t0 + 10 * INTERVAL).await, 1);
    assert!(site_faults(&app, "").await.is_empty(), "the other customer's outage is not ours");
    let theirs = app.get_json("/fault?type=site", &other).await;
    assert_eq!(theirs["meta"]["count"], 1);
    // Our heartbeat for a site of the same name does not end their outage.
    beat(&app, json!({"site_id": "site_x"})).await;
    assert_eq!(app.get_json("/fault?type=site&status=unresolved", &other).await["meta"]["count"], 1);
    app.finish().await;
});

e2e_test!(a_sweep_handles_a_mass_outage_in_batches_once_each, |app: TestApp| async move {
    // 1,200 sites silent for 20 minutes: more than two of the detector's batches of 500.
    let t0 = faultline_core::time::now_micros() - 40 * INTERVAL;
    for chunk in (0..1_200).collect::<Vec<_>>().chunks(600) {
        let sites: Vec<Value> = chunk.iter().map(|i| json!({"site_id": format!("site_{i:04}")})).collect();
        let beats = faultline_core::heartbeat::parse_heartbeats(&json!({ "heartbeats": sites })).unwrap();
        app.store.record_heartbeats(&app.customer_id, &beats, t0, RETENTION, "test", None).await.unwrap();
    }
    let now = faultline_core::time::now_micros();
    assert_eq!(detect(&app, now).await, 1_200);
    assert_eq!(detect(&app, now).await, 0);
    let export = app.get("/fault?type=site").header("accept", "application/x-ndjson").send().await.unwrap();
    let lines: Vec<Value> =
        export.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1_200, "one outage per site");
    let mut sites: Vec<&str> = lines.iter().map(|f| f["resource_id"].as_str().unwrap()).collect();
    sites.sort_unstable();
    sites.dedup();
    assert_eq!(sites.len(), 1_200, "no site twice");
    app.finish().await;
});
