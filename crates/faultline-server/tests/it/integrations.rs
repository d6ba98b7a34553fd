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
