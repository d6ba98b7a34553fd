//! `POST /integrations/alertmanager`: payloads posted directly, then a real Prometheus
//! Alertmanager (Debian's `prometheus-alertmanager`) sending its webhook to the server.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

const PATH: &str = "/integrations/alertmanager";

/// RFC 3339 time `minutes` ago.
fn ago(minutes: i64) -> String {
    faultline_core::time::format_micros(faultline_core::time::now_micros() - minutes * 60_000_000)
}

fn alert(status: &str, fingerprint: &str, labels: Value) -> Value {
    json!({
        "status": status,
        "labels": labels,
        "annotations": {"summary": format!("summary of {fingerprint}"), "description": "why"},
        "startsAt": ago(60),
        "endsAt": if status == "resolved" { ago(30) } else { "0001-01-01T00:00:00Z".to_owned() },
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": fingerprint,
    })
}

fn payload(alerts: Vec<Value>) -> Value {
    json!({"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "faultline",
           "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "alerts": alerts})
}

async fn post(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(PATH)).bearer_auth(key).json(body).send().await.unwrap()
}

async fn receipt(app: &TestApp, body: &Value) -> Value {
    let response = post(app, &app.key, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The customer's faults from Alertmanager, newest first.
async fn alert_faults(app: &TestApp, key: &str) -> Vec<Value> {
    let page = app.get_json("/fault?microservice_id=alertmanager&limit=100", key).await;
    page["data"].as_array().cloned().unwrap_or_default()
}

e2e_test!(alerts_open_deduplicate_and_resolve_faults_by_fingerprint, |app: TestApp| async move {
    let disk = json!({"alertname": "NodeDiskFull", "instance": "router-7:9100", "site": "site_lyon", "severity": "critical"});
    let other_mount =
        json!({"alertname": "NodeDiskFull", "instance": "router-7:9100", "severity": "warning"});
    let first =
        payload(vec![alert("firing", "fp1", disk.clone()), alert("firing", "fp2", other_mount.clone())]);
    assert_eq!(
        receipt(&app, &first).await,
        json!({"alerts": 2, "triggered": 2, "resolved": 0, "unchanged": 0})
    );
    // Sent again (Alertmanager re-sends a group whenever it changes): nothing changes.
    assert_eq!(
        receipt(&app, &first).await,
        json!({"alerts": 2, "triggered": 0, "resolved": 0, "unchanged": 2})
    );
    let faults = alert_faults(&app, &app.key).await;
    assert_eq!(faults.len(), 2, "one fault per fingerprint, though resource and type are the same");
    let lyon = faults.iter().find(|f| f["severity"] == "CRITICAL").unwrap();
    assert_eq!(lyon["resource_id"], "router-7:9100");
    assert_eq!(lyon["type"], "nodediskfull");
    assert_eq!(lyon["message"], "summary of fp1");
    assert_eq!(lyon["cause"], "why");
    assert_eq!(lyon["resource_ancestry_path"], "site_lyon|router-7:9100");
    assert_eq!(lyon["created_at"].as_str().unwrap()[..16], ago(60)[..16], "startsAt is the first detection");
    // Every label the alert carried is on the fault's timeline.
    let id = lyon["id"].as_str().unwrap();
    let timeline = app.get_json(&format!("/fault/{id}/timeline"), &app.key).await;
    let created = &timeline["data"][0];
    assert_eq!(created["kind"], "created", "{timeline}");
    assert_eq!(created["detail"]["labels"]["site"], "site_lyon", "{timeline}");
    assert_eq!(created["detail"]["fingerprint"], "fp1");

    // Resolved: the fault closes at the alert's end; resolved again changes nothing.
    let resolved = payload(vec![alert("resolved", "fp1", disk.clone())]);
    assert_eq!(
        receipt(&app, &resolved).await,
        json!({"alerts": 1, "triggered": 0, "resolved": 1, "unchanged": 0})
    );
    assert_eq!(receipt(&app, &resolved).await["unchanged"], 1);
    let fault = app.get_json(&format!("/fault/{id}"), &app.key).await;
    assert_eq!(fault["status"], "resolved");
    assert_eq!(fault["resolved_at"].as_str().unwrap()[..16], ago(30)[..16], "endsAt is the resolve time");
    // Firing again after the resolve: a new fault.
    assert_eq!(receipt(&app, &payload(vec![alert("firing", "fp1", disk)])).await["triggered"], 1);
    assert_eq!(alert_faults(&app, &app.key).await.len(), 3);

    // Another customer's same fingerprint is its own.
    let (_, theirs) = app.other_customer().await;
    let response = post(&app, &theirs, &first).await;
    assert_eq!(response.json::<Value>().await.unwrap()["triggered"], 2);
    assert_eq!(alert_faults(&app, &theirs).await.len(), 2);
    app.finish().await;
});

/// The label names configured for the deployment are the ones read, and alerts are counted.
async fn configured_label_names_are_read_and_alerts_counted(backend: faultline_store::Backend, test: &str) {
    let configure = |config: &mut faultline_server::ServerConfig| {
        config.alertmanager_labels = faultline_core::alertmanager::LabelNames {
            resource: vec!["device".into()],
            site: vec!["pop".into()],
            severity: vec!["prio".into()],
        };
    };
    let Some(app) = TestApp::spawn_with(backend, test, configure, None).await else {
        return;
    };
    let labels = json!({"alertname": "LinkDown", "device": "sw-9", "pop": "site_fra", "prio": "critical", "instance": "ignored:9100"});
    assert_eq!(receipt(&app, &payload(vec![alert("firing", "cfg1", labels)])).await["triggered"], 1);
    let fault = &alert_faults(&app, &app.key).await[0];
    assert_eq!(
        (fault["resource_id"].as_str(), fault["resource_ancestry_path"].as_str()),
        (Some("sw-9"), Some("site_fra|sw-9"))
    );
    assert_eq!(fault["severity"], "CRITICAL");
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains(r#"faultline_integration_alerts_total{source="alertmanager",outcome="triggered"}"#),
        "{text}"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_label_names_are_read_and_alerts_counted_sqlite() {
    configured_label_names_are_read_and_alerts_counted(
        faultline_store::Backend::Sqlite,
        "alertmanager_labels_sqlite",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_label_names_are_read_and_alerts_counted_postgres() {
    configured_label_names_are_read_and_alerts_counted(
        faultline_store::Backend::Postgres,
        "alertmanager_labels_postgres",
    )
    .await;
}

e2e_test!(a_malformed_payload_is_refused_whole, |app: TestApp| async move {
    let good = alert("firing", "ok", json!({"alertname": "x"}));
    for (bad, param, code) in [
        (
            payload(vec![good.clone(), json!({"status": "firing", "labels": {"alertname": "x"}})]),
            "alerts[1].fingerprint",
            "parameter_missing",
        ),
        (
            payload(vec![good.clone(), json!({"status": "pending", "fingerprint": "b"})]),
            "alerts[1].status",
            "parameter_invalid",
        ),
        (
            payload(vec![good.clone(), json!({"status": "firing", "fingerprint": "b", "labels": {}})]),
            "alerts[1].labels.alertname",
            "parameter_missing",
        ),
        (json!({"version": "3", "alerts": [good.clone()]}), "version", "parameter_invalid"),
        (json!({"version": "4", "alerts": "none"}), "alerts", "parameter_invalid"),
        (json!([good.clone()]), "body", "parameter_invalid"),
    ] {
        let response = post(&app, &app.key, &bad).await;
        let body = assert_error(response, StatusCode::BAD_REQUEST, "invalid_request_error", code).await;
        assert!(body["message"].as_str().unwrap().contains(&format!("'{param}'")), "{param}: {body}");
    }
    assert!(alert_faults(&app, &app.key).await.is_empty(), "nothing of a refused payload is written");
    let response = app
        .client
        .post(app.url(PATH))
        .bearer_auth(&app.key)
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request_error", "body_invalid_json").await;
    let response = app.client.post(app.url(PATH)).json(&payload(vec![good.clone()])).send().await.unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "authentication_error", "api_key_missing").await;
    let reader = app.create_key(&app.customer_id, "faults:read", None).await;
    let response = post(&app, &reader, &payload(vec![good])).await;
    assert_error(response, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
    app.finish().await;
});

/// A running `prometheus-alertmanager`, stopped when dropped.
struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile_dir::Dir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed when dropped.
mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(test: &str) -> Dir {
            let path = std::env::temp_dir().join(format!("{test}-{}", faultline_core::ids::random_base62(8)));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

impl Alertmanager {
    /// Alertmanager with one webhook receiver pointing at `app` (group_wait and group_interval
    /// 1 s), or `None` (the test skipped, loudly) when it is not installed.
    async fn start(app: &TestApp, test: &str) -> Option<Alertmanager> {
        if !std::path::Path::new(ALERTMANAGER).exists() {
            faultline_store::testing::skip(
                test,
                "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)",
            );
            return None;
        }
        let dir = tempfile_dir::Dir::new(test);
        let config = format!(
            "route:\n  receiver: faultline\n  group_by: ['...']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n- name: faultline\n  webhook_configs:\n  - url: {}{PATH}\n    send_resolved: true\n    \
             http_config:\n      authorization:\n        credentials: {}\n",
            app.base, app.key
        );
        std::fs::write(dir.0.join("alertmanager.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", dir.0.join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", dir.0.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("alertmanager starts");
        let am = Alertmanager { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
        let started = Instant::now();
        while !app
            .client
            .get(format!("{}/-/ready", am.url))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            assert!(started.elapsed() < Duration::from_secs(15), "alertmanager did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(am)
    }

    /// Post alerts to Alertmanager's API, as Prometheus does.
    async fn post(&self, app: &TestApp, alerts: Value) {
        let response =
            app.client.post(format!("{}/api/v2/alerts", self.url)).json(&alerts).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap_or_default());
    }
}

/// Wait (at most 20 s) until `check` holds of the customer's Alertmanager faults.
async fn wait_for(app: &TestApp, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let faults = alert_faults(app, &app.key).await;
        if check(&faults) {
            return faults;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "waited 20 s for {what}: {faults:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

e2e_test!(a_real_alertmanager_opens_and_resolves_faults, |app: TestApp| async move {
    let Some(am) = Alertmanager::start(&app, "real_alertmanager").await else { return };
    let now = || faultline_core::time::format_micros(faultline_core::time::now_micros());
    let down = json!({"alertname": "SiteDown", "instance": "router-1", "site": "site_paris", "severity": "critical"});
    am.post(
        &app,
        json!([{"labels": down, "annotations": {"summary": "router-1 is down"}, "startsAt": now()}]),
    )
    .await;
    let faults = wait_for(&app, "the first alert's fault", |f| f.len() == 1).await;
    assert_eq!(faults[0]["type"], "sitedown");
    assert_eq!(faults[0]["severity"], "CRITICAL");
    assert_eq!(faults[0]["message"], "router-1 is down");
    assert_eq!(faults[0]["resource_ancestry_path"], "site_paris|router-1");
    // A second alert: Alertmanager sends the whole group again, and the first changes nothing.
    let loss = json!({"alertname": "PacketLoss", "instance": "router-2", "severity": "warning"});
    am.post(
        &app,
        json!([{"labels": loss, "annotations": {"summary": "loss on router-2"}, "startsAt": now()}]),
    )
    .await;
    let faults = wait_for(&app, "the second alert's fault", |f| f.len() == 2).await;
    assert_eq!(
        faults.iter().filter(|f| f["type"] == "sitedown").count(),
        1,
        "the re-sent alert opened nothing"
    );
    // The first alert ends: Alertmanager sends it resolved.
    am.post(&app, json!([{"labels": down, "annotations": {"summary": "router-1 is down"}, "endsAt": now()}]))
        .await;
    let faults = wait_for(&app, "the resolve", |f| {
        f.iter().any(|f| f["type"] == "sitedown" && f["status"] == "resolved")
    })
    .await;
    assert_eq!(faults.len(), 2);
    assert!(faults.iter().any(|f| f["type"] == "packetloss" && f["status"] == "unresolved"));
    drop(am);
    app.finish().await;
});

const PAGERDUTY: &str = "/integrations/pagerduty/v2/enqueue";

async fn enqueue(app: &TestApp, event: &Value) -> (StatusCode, Value) {
    let response = app.client.post(app.url(PAGERDUTY)).json(event).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// The customer's faults from PagerDuty events, newest first.
async fn pagerduty_faults(app: &TestApp, key: &str) -> Vec<Value> {
    let page = app.get_json("/fault?microservice_id=pagerduty&limit=100", key).await;
    page["data"].as_array().cloned().unwrap_or_default()
}

e2e_test!(pagerduty_events_trigger_acknowledge_and_resolve, |app: TestApp| async move {
    let trigger = json!({"routing_key": app.key, "event_action": "trigger", "dedup_key": "db-7/disk",
        "payload": {"summary": "Disk full on db-7", "source": "db-7", "severity": "error", "timestamp": ago(10),
                    "group": "site_paris", "class": "disk", "custom_details": {"free": "1%"}}});
    let (status, body) = enqueue(&app, &trigger).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({"status": "success", "message": "Event processed", "dedup_key": "db-7/disk"}));
    assert_eq!(enqueue(&app, &trigger).await.0, StatusCode::ACCEPTED, "sent again");
    let faults = pagerduty_faults(&app, &app.key).await;
    assert_eq!(faults.len(), 1, "deduplicated by dedup_key");
    let fault = &faults[0];
    assert_eq!((fault["resource_id"].as_str(), fault["type"].as_str()), (Some("db-7"), Some("disk")));
    assert_eq!(
        (fault["severity"].as_str(), fault["message"].as_str()),
        (Some("HIGH"), Some("Disk full on db-7"))
    );
    assert_eq!(fault["resource_ancestry_path"], "site_paris|db-7");
    let id = fault["id"].as_str().unwrap().to_owned();
    let ack = json!({"routing_key": app.key, "event_action": "acknowledge", "dedup_key": "db-7/disk"});
    assert_eq!(enqueue(&app, &ack).await.0, StatusCode::ACCEPTED);
    let resolve = json!({"routing_key": app.key, "event_action": "resolve", "dedup_key": "db-7/disk"});
    assert_eq!(enqueue(&app, &resolve).await.0, StatusCode::ACCEPTED);
    let fault = app.get_json(&format!("/fault/{id}"), &app.key).await;
    assert_eq!(fault["status"], "resolved");
    let timeline = app.get_json(&format!("/fault/{id}/timeline"), &app.key).await;
    let kinds: Vec<&str> =
        timeline["data"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "acknowledged", "resolved"]);
    let created = &timeline["data"][0]["detail"];
    assert_eq!(created["event"]["payload"]["custom_details"]["free"], "1%", "{created}");
    assert!(created["event"].get("routing_key").is_none(), "the key is not kept: {created}");
    // Acknowledging or resolving an unknown key is accepted and changes nothing, as on PagerDuty.
    let unknown = json!({"routing_key": app.key, "event_action": "resolve", "dedup_key": "nope"});
    assert_eq!(enqueue(&app, &unknown).await.0, StatusCode::ACCEPTED);
    // Without a dedup_key, one is made up and returned; the key may come as a bearer header.
    let fresh =
        json!({"event_action": "trigger", "payload": {"summary": "s", "source": "r-1", "severity": "info"}});
    let response =
        app.client.post(app.url(PAGERDUTY)).bearer_auth(&app.key).json(&fresh).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let made_up = response.json::<Value>().await.unwrap()["dedup_key"].as_str().unwrap().to_owned();
    assert!(made_up.len() >= 16, "{made_up}");
    let again = json!({"routing_key": app.key, "event_action": "trigger", "dedup_key": made_up,
        "payload": {"summary": "s", "source": "r-1", "severity": "info"}});
    assert_eq!(enqueue(&app, &again).await.0, StatusCode::ACCEPTED);
    assert_eq!(pagerduty_faults(&app, &app.key).await.len(), 2, "the made-up key deduplicates too");
    // Another customer's same dedup_key is its own.
    let (_, theirs) = app.other_customer().await;
    let mut their_trigger = trigger.clone();
    their_trigger["routing_key"] = json!(theirs);
    assert_eq!(enqueue(&app, &their_trigger).await.0, StatusCode::ACCEPTED);
    assert_eq!(pagerduty_faults(&app, &theirs).await.len(), 1);
    app.finish().await;
});

e2e_test!(pagerduty_errors_answer_as_pagerduty_does, |app: TestApp| async move {
    let reader = app.create_key(&app.customer_id, "faults:read", None).await;
    let payload = json!({"summary": "s", "source": "r", "severity": "critical"});
    for (event, expected) in [
        (json!({"routing_key": app.key, "event_action": "trigger"}), "'payload' is missing"),
        (
            json!({"routing_key": app.key, "event_action": "trigger", "payload": {"source": "r", "severity": "critical"}}),
            "'payload.summary' is missing or blank",
        ),
        (
            json!({"routing_key": app.key, "event_action": "trigger", "payload": {"summary": "s", "source": "r", "severity": "loud"}}),
            "'payload.severity' is invalid",
        ),
        (
            json!({"routing_key": app.key, "event_action": "page", "payload": payload}),
            "'event_action' is invalid",
        ),
        (json!({"routing_key": app.key, "event_action": "resolve"}), "'dedup_key' is missing"),
        (json!({"event_action": "trigger", "payload": payload}), "'routing_key' is missing"),
        (
            json!({"routing_key": "flk_nope", "event_action": "trigger", "payload": payload}),
            "'routing_key' is invalid",
        ),
        (json!({"routing_key": reader, "event_action": "trigger", "payload": payload}), "faults:write"),
    ] {
        let (status, body) = enqueue(&app, &event).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{event}");
        assert_eq!(
            (body["status"].as_str(), body["message"].as_str()),
            (Some("invalid event"), Some("Event object is invalid")),
            "{body}"
        );
        let errors = body["errors"].as_array().unwrap();
        assert!(errors.iter().any(|e| e.as_str().unwrap().contains(expected)), "{expected}: {body}");
    }
    let response = app.client.post(app.url(PAGERDUTY)).body("{not json").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "invalid event");
    assert!(pagerduty_faults(&app, &app.key).await.is_empty(), "nothing refused was written");
    app.finish().await;
});

/// Python with the official PagerDuty client library (`pip install pagerduty`), if present.
fn pagerduty_library(test: &str) -> bool {
    crate::harness::python_library(test, "pagerduty", "pagerduty")
}

e2e_test!(the_pagerduty_client_library_works_unchanged, |app: TestApp| async move {
    if !pagerduty_library("pagerduty_client_library") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/scripts/pagerduty_client.py");
    let (base, key) = (app.base.clone(), app.key.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(crate::harness::python()).args(["-W", "ignore", script, &base, &key]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(out["trigger"], "edge-3/bgp");
    assert_eq!(out["again"], "edge-3/bgp");
    assert_eq!(out["acknowledge"], "edge-3/bgp");
    assert_eq!(out["resolve"], "edge-3/bgp");
    assert!(out["generated"].as_str().is_some_and(|k| !k.is_empty()), "{out}");
    assert_eq!(out["invalid"]["status"], 400, "{out}");
    assert_eq!(out["invalid"]["body"]["status"], "invalid event", "{out}");
    assert_eq!(out["bad_key"]["status"], 400, "{out}");
    let faults = pagerduty_faults(&app, &app.key).await;
    assert_eq!(faults.len(), 2, "edge-3 (sent twice) and edge-4: {faults:?}");
    let edge3 = faults.iter().find(|f| f["resource_id"] == "edge-3").unwrap();
    assert_eq!((edge3["status"].as_str(), edge3["type"].as_str()), (Some("resolved"), Some("bgp")));
    assert_eq!(
        (edge3["severity"].as_str(), edge3["resource_ancestry_path"].as_str()),
        (Some("CRITICAL"), Some("site_berlin|edge-3"))
    );
    let id = edge3["id"].as_str().unwrap();
    let timeline = app.get_json(&format!("/fault/{id}/timeline"), &app.key).await;
    let kinds: Vec<&str> =
        timeline["data"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "acknowledged", "resolved"]);
    assert_eq!(timeline["data"][0]["detail"]["event"]["payload"]["custom_details"]["peer"], "192.0.2.1");
    app.finish().await;
});

e2e_test!(a_store_out_of_reach_answers_503_which_alertmanager_retries, |app: TestApp| async move {
    let body = payload(vec![alert("firing", "down1", json!({"alertname": "x"}))]);
    // Authenticated once, so that the key is in the server's cache; then the database goes.
    assert_eq!(receipt(&app, &payload(vec![])).await["alerts"], 0);
    app.store.close().await;
    let response = post(&app, &app.key, &body).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let event = json!({"routing_key": app.key, "event_action": "trigger", "payload": {"summary": "s", "source": "r", "severity": "info"}});
    assert_eq!(
        enqueue(&app, &event).await.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "PagerDuty's clients retry a 503 too"
    );
    app.finish().await;
});

e2e_test!(a_spent_rate_limit_answers_503_so_that_alertmanager_retries, |app: TestApp| async move {
    let limited = app.create_key(&app.customer_id, "faults:write", Some(1)).await;
    let body = payload(vec![alert("firing", "rl1", json!({"alertname": "x"}))]);
    assert_eq!(post(&app, &limited, &body).await.status(), StatusCode::OK);
    let response = post(&app, &limited, &body).await;
    assert!(response.headers().contains_key("retry-after"), "{:?}", response.headers());
    let err =
        assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "api_error", "service_unavailable").await;
    assert!(err["message"].as_str().unwrap().contains("Rate limit"), "{err}");
    // Elsewhere a spent limit is still a 429.
    let elsewhere = app
        .client
        .post(app.url("/fault/events"))
        .bearer_auth(&limited)
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::TOO_MANY_REQUESTS);
    app.finish().await;
});
