//! Outbound webhooks, the delivery: what each fault event sends and how, retries until the
//! schedule is spent and on demand, redirects left unfollowed, endpoints' filters, and one slow
//! receiver never holding up another. The receiver and helpers are in `webhooks.rs`.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, assert_error};
use crate::webhook_test;
use crate::webhooks::{Receiver, Reply, create_webhook, eventually, messages, signed_by, wait_for_message};

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

fn status_codes(message: &Value) -> Vec<Option<i64>> {
    message["attempts"].as_array().unwrap().iter().map(|a| a["status_code"].as_i64()).collect()
}

fn settled(message: &Value) -> bool {
    message["status"] != "pending"
}

/// The only message of an endpoint, once it is no longer pending.
async fn only_message_settled(app: &TestApp, webhook_id: &str) -> Value {
    let what = format!("the message of {webhook_id} to settle");
    eventually(&what, async || {
        let listed = messages(app, webhook_id, "").await;
        assert!(listed.len() <= 1, "{listed:?}");
        listed.into_iter().find(settled)
    })
    .await
}

webhook_test!(each_fault_event_is_delivered_once_as_documented, |app: TestApp| async move {
    let receiver = Receiver::start().await;
    let endpoint = create_webhook(&app, json!({"url": receiver.url("/hook")})).await;
    let secret = endpoint["secret"].as_str().unwrap();
    let fault = app.create_fault(TestApp::fault_body("dev_1", "reboot", "HIGH")).await;
    let fault_id = id_of(&fault);

    let created = receiver.wait_for("/hook", 1).await.remove(0);
    let body = created.json();
    assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), ["data", "timestamp", "type"], "{body}");
    assert!(created.body.starts_with(r#"{"type":"fault.created","timestamp":""#), "{}", created.body);
    assert_eq!(body["data"], fault, "the fault as the API shows it");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
    assert!(created.id.starts_with("msg_"), "{created:?}");
    let now = faultline_core::time::now_micros() / 1_000_000;
    let timestamp: i64 = created.timestamp.parse().expect("Unix seconds");
    assert!((timestamp - now).abs() <= 60, "{timestamp} vs {now}");
    assert_eq!(created.content_type, "application/json");
    assert!(created.user_agent.starts_with("faultline/"), "{}", created.user_agent);
    assert!(signed_by(&created, secret), "{created:?}");

    let response = app.request(Method::POST, &format!("/fault/{fault_id}/resolve")).json(&json!({})).send();
    let resolved_fault: Value = response.await.unwrap().json().await.unwrap();
    let resolved = receiver.wait_for("/hook", 2).await.remove(1);
    assert_eq!(resolved.event_type(), "fault.resolved");
    assert_eq!(resolved.json()["data"], resolved_fault);
    assert_eq!(resolved.json()["data"]["status"], "resolved");

    let comment = json!({"comment": "ISP ticket #4411 opened"});
    let response = app.request(Method::POST, &format!("/fault/{fault_id}/comment")).json(&comment).send();
    let commented_fault: Value = response.await.unwrap().json().await.unwrap();
    let commented = receiver.wait_for("/hook", 3).await.remove(2);
    assert_eq!(commented.event_type(), "fault.commented");
    let data = commented.json()["data"].clone();
    assert_eq!(data.as_object().unwrap().len(), 2, "{data}");
    assert_eq!(data["fault"], commented_fault);
    assert_eq!(data["comment"], commented_fault["comments"][0], "{data}");
    assert_eq!(data["comment"]["comment"], "ISP ticket #4411 opened");

    let response = app.request(Method::DELETE, &format!("/fault/{fault_id}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let deleted = receiver.wait_for("/hook", 4).await.remove(3);
    assert_eq!(deleted.event_type(), "fault.deleted");
    assert_eq!(deleted.json()["data"], json!({"id": fault_id}));

    let webhook_id = id_of(&endpoint);
    let listed = eventually("four delivered messages", async || {
        let listed = messages(&app, &webhook_id, "").await;
        listed.iter().all(|m| m["status"] == "delivered").then_some(listed)
    })
    .await;
    let types: Vec<&str> = listed.iter().rev().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["fault.created", "fault.resolved", "fault.commented", "fault.deleted"]);
    let sent = receiver.received("/hook");
    assert_eq!(sent.len(), 4, "exactly one request per event: {sent:?}");
    let ids: BTreeSet<&str> = sent.iter().map(|d| d.id.as_str()).collect();
    let listed_ids: BTreeSet<&str> = listed.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, listed_ids, "each message its own webhook-id");
    app.finish().await;
});

webhook_test!(failures_are_retried_on_the_schedule_then_on_demand, |app: TestApp| async move {
    let receiver = Receiver::start().await;
    receiver.answer_next("/flaky", [Reply::Status(500, "boom 1"), Reply::Status(500, "boom 2")]);
    let flaky = id_of(&create_webhook(&app, json!({"url": receiver.url("/flaky")})).await);
    app.create_fault(TestApp::fault_body("dev_1", "reboot", "LOW")).await;
    let message = only_message_settled(&app, &flaky).await;
    assert_eq!(message["status"], "delivered", "{message}");
    assert_eq!(status_codes(&message), [Some(500), Some(500), Some(204)], "{message}");
    let attempts = message["attempts"].as_array().unwrap();
    assert!(attempts.iter().all(|a| a["duration_ms"].as_i64().is_some_and(|ms| ms >= 0)), "{message}");
    assert_eq!(
        (attempts[0]["response"].as_str(), attempts[1]["response"].as_str()),
        (Some("boom 1"), Some("boom 2"))
    );
    assert!(attempts[0]["error"].as_str().is_some_and(|e| e.contains("500")), "{message}");
    assert!(attempts[2]["error"].is_null() && attempts[2]["at"].is_string(), "{message}");
    let sent = receiver.received("/flaky");
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|d| d.id == message["id"]), "the same webhook-id on every retry: {sent:?}");

    receiver.answer_always("/down", Reply::Status(500, "still down"));
    let down = id_of(&create_webhook(&app, json!({"url": receiver.url("/down")})).await);
    app.create_fault(TestApp::fault_body("dev_2", "reboot", "LOW")).await;
    let failed = only_message_settled(&app, &down).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(status_codes(&failed), [Some(500); 3], "the schedule's three attempts: {failed}");
    assert!(failed["next_attempt_at"].is_null(), "{failed}");
    assert_eq!(receiver.received("/down").len(), 3);
    let failed_id = id_of(&failed);
    let only = |list: Vec<Value>| list.iter().map(id_of).collect::<Vec<_>>();
    assert_eq!(only(messages(&app, &down, "?status=failed").await), [failed_id.as_str()]);
    assert_eq!(only(messages(&app, &down, "?status=delivered").await), Vec::<String>::new());
    assert_eq!(only(messages(&app, &flaky, "?status=failed").await), Vec::<String>::new());
    eventually("both messages of the flaky endpoint delivered", async || {
        (messages(&app, &flaky, "?status=delivered").await.len() == 2).then_some(())
    })
    .await;
    let bad = app.get(&format!("/webhooks/{down}/messages?status=lost")).send().await.unwrap();
    assert_error(bad, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid").await;

    receiver.answer_always("/down", Reply::Status(204, ""));
    let retry = app.request(Method::POST, &format!("/webhooks/{down}/messages/{failed_id}/retry")).send();
    let retry = retry.await.unwrap();
    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], failed_id.as_str());
    let redelivered = wait_for_message(&app, &down, &failed_id, |m| m["status"] == "delivered").await;
    assert_eq!(status_codes(&redelivered), [Some(500), Some(500), Some(500), Some(204)], "{redelivered}");
    let sent = receiver.received("/down");
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[3].id, failed_id);
    assert!(messages(&app, &down, "?status=failed").await.is_empty());
    let missing = app.request(Method::POST, &format!("/webhooks/{down}/messages/msg_nope/retry")).send();
    assert_error(missing.await.unwrap(), StatusCode::NOT_FOUND, "not_found_error", "resource_not_found")
        .await;
    app.finish().await;
});

webhook_test!(redirects_are_not_followed, |app: TestApp| async move {
    let receiver = Receiver::start().await;
    receiver.answer_always("/moved", Reply::Redirect("/elsewhere"));
    let webhook_id = id_of(&create_webhook(&app, json!({"url": receiver.url("/moved")})).await);
    app.create_fault(TestApp::fault_body("dev_1", "reboot", "LOW")).await;
    let message = only_message_settled(&app, &webhook_id).await;
    assert_eq!(message["status"], "failed", "a redirect is a failure: {message}");
    assert_eq!(status_codes(&message), [Some(302); 3], "{message}");
    for attempt in message["attempts"].as_array().unwrap() {
        assert!(attempt["error"].as_str().is_some_and(|e| e.contains("redirect")), "{attempt}");
    }
    assert_eq!(receiver.received("/moved").len(), 3);
    assert!(receiver.received("/elsewhere").is_empty(), "the redirect's target was never asked");
    app.finish().await;
});

webhook_test!(filters_choose_the_events_and_faults_sent, |app: TestApp| async move {
    let receiver = Receiver::start().await;
    let endpoint = async |path: &str, mut body: Value| {
        body["url"] = json!(receiver.url(path));
        id_of(&create_webhook(&app, body).await)
    };
    let all = endpoint("/all", json!({})).await;
    let critical = endpoint("/critical", json!({"filter": {"severity": ["CRITICAL"]}})).await;
    let resolutions = endpoint("/resolutions", json!({"events": ["fault.resolved"]})).await;
    let south = endpoint("/south", json!({"filter": {"site_id": ["site_south"]}})).await;
    let mut body = TestApp::fault_body("dev_x", "power", "CRITICAL");
    body["resource_ancestry_path"] = json!("site_north|dev_x");
    let x = id_of(&app.create_fault(body).await);
    let mut body = TestApp::fault_body("dev_y", "power", "LOW");
    body["resource_ancestry_path"] = json!("site_south|dev_y");
    let y = id_of(&app.create_fault(body).await);
    for id in [&x, &y] {
        let response = app.request(Method::POST, &format!("/fault/{id}/resolve")).json(&json!({})).send();
        assert_eq!(response.await.unwrap().status(), StatusCode::OK);
    }
    // Each change is queued for every endpoint at once: once the unfiltered endpoint has all
    // four, the others have every message they will ever get.
    eventually("four messages for the unfiltered endpoint", async || {
        (messages(&app, &all, "").await.len() == 4).then_some(())
    })
    .await;
    for (webhook_id, path, expected) in [
        (&critical, "/critical", [("fault.created", &x), ("fault.resolved", &x)]),
        (&resolutions, "/resolutions", [("fault.resolved", &x), ("fault.resolved", &y)]),
        (&south, "/south", [("fault.created", &y), ("fault.resolved", &y)]),
    ] {
        assert_eq!(messages(&app, webhook_id, "").await.len(), 2, "{path}");
        let sent = receiver.wait_for(path, 2).await;
        let got: BTreeSet<(String, String)> =
            sent.iter().map(|d| (d.event_type(), id_of(&d.json()["data"]))).collect();
        let expected: BTreeSet<(String, String)> =
            expected.iter().map(|(t, id)| ((*t).to_owned(), (*id).clone())).collect();
        assert_eq!(got, expected, "{path}");
    }
    assert_eq!(receiver.wait_for("/all", 4).await.len(), 4);
    app.finish().await;
});

webhook_test!(a_hanging_receiver_does_not_hold_up_another, |app: TestApp| async move {
    const FAULTS: usize = 10;
    let receiver = Receiver::start().await;
    receiver.answer_always("/slow", Reply::Hang);
    let slow = id_of(&create_webhook(&app, json!({"url": receiver.url("/slow")})).await);
    create_webhook(&app, json!({"url": receiver.url("/fast")})).await;
    for i in 0..FAULTS {
        app.create_fault(TestApp::fault_body(&format!("dev_{i}"), "reboot", "LOW")).await;
    }
    let fast = receiver.wait_for("/fast", FAULTS).await;
    // Each attempt at the slow endpoint lasts the 2 s timeout: had the fast one waited behind
    // them, most of them would have ended (and been recorded) before its last delivery.
    let ended: usize = messages(&app, &slow, "?limit=100")
        .await
        .iter()
        .map(|m| m["attempts"].as_array().unwrap().len())
        .sum();
    assert!(ended < FAULTS - 1, "{ended} attempts at the hanging receiver ended first");
    assert_eq!(fast.len(), FAULTS);
    let types: BTreeSet<String> = fast.iter().map(|d| d.event_type()).collect();
    assert_eq!(types, BTreeSet::from(["fault.created".to_owned()]));
    assert!(!receiver.wait_for("/slow", 1).await.is_empty(), "the hanging receiver was asked too");
    let timed_out = eventually("an attempt at the hanging receiver to time out", async || {
        let listed = messages(&app, &slow, "?limit=100").await;
        listed
            .into_iter()
            .flat_map(|m| m["attempts"].as_array().unwrap().clone())
            .find(|a| !a["error"].is_null())
    })
    .await;
    assert!(timed_out["status_code"].is_null(), "{timed_out}");
    assert!(timed_out["error"].as_str().unwrap().contains("timeout"), "{timed_out}");
    assert!(messages(&app, &slow, "?status=delivered").await.is_empty());
    app.finish().await;
});
