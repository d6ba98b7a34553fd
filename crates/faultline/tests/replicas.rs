//! Several `faultline serve` replicas on one PostgreSQL database: tokens minted on one are
//! verified and revoked on another, signing-key rotations reach all, a stream client on one
//! replica sees faults created on another, and when the replica running the offline detector
//! is killed, a survivor takes over with no outage missed or doubled. PostgreSQL only (on
//! SQLite there is one process); skipped without `FAULTLINE_TEST_POSTGRES_URL`.

use std::time::{Duration, Instant};

use faultline_store::Backend;
use faultline_store::testing::TestDb;
use serde_json::{Value, json};

mod common;
use common::{BIN, Server, assert_log_clean, eventually};

/// Heartbeats every 300 ms; 5 missed (1.5 s of silence) is an outage. The live sites send
/// twice an interval, so a slow request on a loaded machine does not pass for silence.
const INTERVAL_MS: i64 = 300;
/// Replicas behind one load balancer share its public URL: it is the tokens' issuer.
const FLAGS: &[&str] = &[
    "--heartbeat-interval",
    "300ms",
    "--heartbeat-misses",
    "5",
    "--public-url",
    "http://faults.example.test",
];

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Does this replica run the detector now (its `faultline_singleton_leader` gauge)?
async fn runs_detector(http: &reqwest::Client, base: &str) -> bool {
    let Ok(response) = http.get(format!("{base}/metrics")).send().await else { return false };
    let text = response.text().await.unwrap_or_default();
    text.lines().any(|l| l.starts_with("faultline_singleton_leader{job=\"detector\"}") && l.ends_with(" 1"))
}

/// A stream client: the `fault_id` of every `fault.created` event, as it arrives. Returns once
/// the stream has answered (and so is subscribed).
async fn watch_stream(
    http: reqwest::Client,
    base: String,
    key: String,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (connected, answered) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut response = http.get(format!("{base}/fault/stream")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let _ = connected.send(());
        let (mut pending, mut created) = (String::new(), false);
        while let Ok(Some(chunk)) = response.chunk().await {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                let line = line.trim_end();
                if line == "event: fault.created" {
                    created = true;
                } else if let (true, Some(data)) = (created, line.strip_prefix("data: ")) {
                    let data: Value = serde_json::from_str(data).unwrap();
                    if tx.send(data["fault_id"].as_str().unwrap().to_owned()).is_err() {
                        return;
                    }
                    created = false;
                }
            }
        }
    });
    answered.await.expect("the stream answered");
    rx
}

/// Keep `site` alive through the given replicas in turn until `stop` is set; returns the
/// `received_at` of its last acknowledged heartbeat.
async fn keep_alive(
    http: reqwest::Client,
    bases: Vec<String>,
    key: String,
    site: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Option<String> {
    let mut last = None;
    let mut turn = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let base = &bases[turn % bases.len()];
        turn += 1;
        if let Ok(response) = http
            .post(format!("{base}/heartbeat"))
            .bearer_auth(&key)
            .json(&json!({"site_id": site}))
            .send()
            .await
            && response.status() == 200
        {
            let receipt: Value = response.json().await.unwrap();
            last = receipt["received_at"].as_str().map(str::to_owned);
        }
        tokio::time::sleep(Duration::from_millis(INTERVAL_MS as u64 / 2)).await;
    }
    last
}

async fn site_faults(http: &reqwest::Client, base: &str, key: &str) -> Vec<Value> {
    let (status, page) = send(http.get(format!("{base}/fault?type=site&limit=100")).bearer_auth(key)).await;
    assert_eq!(status, 200);
    page["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_tokens_streams_and_the_detector_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres, "replicas").await else { return };
    db.store.close().await;
    let http = client();
    let (a, printed) = Server::start(&db.url, FLAGS);
    let key = printed.expect("the first replica creates the admin key");
    let (b, printed) = Server::start(&db.url, FLAGS);
    assert_eq!(printed, None, "only the first replica bootstraps");
    let (c, _) = Server::start(&db.url, FLAGS);
    let mut replicas = vec![a, b, c];
    let base = |i: usize, r: &[Server]| r[i].base.clone();

    // A token minted on A reads on B; revoked on C, B refuses it within a second or so.
    let (status, minted) = send(
        http.post(format!("{}/fault/token", base(0, &replicas)))
            .bearer_auth(&key)
            .json(&json!({"expire_after_minutes": 10})),
    )
    .await;
    assert_eq!(status, 200, "{minted}");
    let jwt = minted["token"].as_str().unwrap().to_owned();
    assert_eq!(send(http.get(format!("{}/fault", base(1, &replicas))).bearer_auth(&jwt)).await.0, 200);
    let revoke =
        http.delete(format!("{}/fault/token/{}", base(2, &replicas), minted["id"].as_str().unwrap()));
    assert_eq!(revoke.bearer_auth(&key).send().await.unwrap().status(), 204);
    eventually(Duration::from_secs(3), "B refuses the token revoked on C", || async {
        send(http.get(format!("{}/fault", base(1, &replicas))).bearer_auth(&jwt)).await.0 == 401
    })
    .await;

    // A signing-key rotation from the command line reaches every replica: a token signed with
    // the new key (minted on C) verifies on A.
    let rotated = std::process::Command::new(BIN)
        .args(["signing-keys", "rotate", "--database-url", &db.url])
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let (_, fresh) = send(
        http.post(format!("{}/fault/token", base(2, &replicas)))
            .bearer_auth(&key)
            .json(&json!({"expire_after_minutes": 10})),
    )
    .await;
    let fresh_jwt = fresh["token"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(3), "A verifies a token signed with the rotated key", || async {
        send(http.get(format!("{}/fault", base(0, &replicas))).bearer_auth(&fresh_jwt)).await.0 == 200
    })
    .await;

    // A stream client on B sees faults created on A.
    let mut created_on_b = watch_stream(http.clone(), base(1, &replicas), key.clone()).await;
    for i in 0..5 {
        let body = json!({"resource_id": format!("tun_{i}"), "type": "wantunnel", "severity": "LOW", "message": "m"});
        let (status, fault) =
            send(http.post(format!("{}/fault", base(0, &replicas))).bearer_auth(&key).json(&body)).await;
        assert_eq!(status, 201);
        let seen = tokio::time::timeout(Duration::from_secs(5), created_on_b.recv()).await;
        assert_eq!(seen.ok().flatten().as_deref(), fault["id"].as_str(), "B's stream shows A's fault {i}");
    }

    // The detector: exactly one replica runs it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let leader = loop {
        let mut running = Vec::new();
        for (i, r) in replicas.iter().enumerate() {
            if runs_detector(&http, &r.base).await {
                running.push(i);
            }
        }
        assert!(running.len() <= 1, "more than one replica runs the detector: {running:?}");
        if let [one] = running[..] {
            break one;
        }
        assert!(Instant::now() < deadline, "no replica runs the detector");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Two sites stay alive throughout (through the replicas that survive); `site_before` falls
    // silent before the leader dies, `site_after` right after.
    let survivors: Vec<String> =
        replicas.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, r)| r.base.clone()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let alive: Vec<_> = ["site_alive_1", "site_alive_2"]
        .into_iter()
        .map(|site| {
            tokio::spawn(keep_alive(http.clone(), survivors.clone(), key.clone(), site, stop.clone()))
        })
        .collect();
    let stop_before = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let before = tokio::spawn(keep_alive(
        http.clone(),
        survivors.clone(),
        key.clone(),
        "site_before",
        stop_before.clone(),
    ));
    let stop_after = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let after = tokio::spawn(keep_alive(
        http.clone(),
        survivors.clone(),
        key.clone(),
        "site_after",
        stop_after.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop_before.store(true, std::sync::atomic::Ordering::SeqCst);
    let before_last = before.await.unwrap().expect("site_before's heartbeats were acknowledged");
    // Let the leader see site_before's outage, or not: either way it must be there once, below.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let killed = replicas.remove(leader);
    assert_log_clean(&killed.kill(), "the killed leader");
    stop_after.store(true, std::sync::atomic::Ordering::SeqCst);
    let after_last = after.await.unwrap().expect("site_after's heartbeats were acknowledged");

    // A survivor takes over within seconds and finds both outages, once each.
    eventually(Duration::from_secs(10), "a survivor runs the detector", || async {
        let mut any = false;
        for r in &replicas {
            any |= runs_detector(&http, &r.base).await;
        }
        any
    })
    .await;
    eventually(Duration::from_secs(10), "both silent sites are offline", || async {
        let faults = site_faults(&http, &replicas[0].base, &key).await;
        ["site_before", "site_after"].iter().all(|site| faults.iter().any(|f| f["resource_id"] == *site))
    })
    .await;
    // A few more detector sweeps: nothing is doubled.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for task in alive {
        task.await.unwrap();
    }
    let faults = site_faults(&http, &replicas[0].base, &key).await;
    let resources: Vec<&str> = faults.iter().map(|f| f["resource_id"].as_str().unwrap()).collect();
    for site in ["site_before", "site_after"] {
        assert_eq!(
            resources.iter().filter(|r| **r == site).count(),
            1,
            "one outage for {site}: {resources:?}"
        );
    }
    let open_live = faults.iter().filter(|f| {
        f["status"] == "unresolved" && f["resource_id"].as_str().unwrap().starts_with("site_alive")
    });
    assert_eq!(open_live.count(), 0, "no live site is offline: {resources:?}");
    for (site, last) in [("site_before", &before_last), ("site_after", &after_last)] {
        let outage =
            faults.iter().find(|f| f["resource_id"] == site).unwrap_or_else(|| panic!("{site} missed"));
        let last = faultline_core::time::parse_rfc3339(last).unwrap();
        assert_eq!(
            outage["created_at"].as_str().unwrap(),
            faultline_core::time::format_micros(last + INTERVAL_MS * 1_000),
            "{site}'s outage began at its first missed heartbeat"
        );
        assert_eq!(outage["status"], "unresolved");
    }

    for r in replicas {
        assert_log_clean(&r.kill(), "a surviving replica");
    }
    db.cleanup().await;
}
