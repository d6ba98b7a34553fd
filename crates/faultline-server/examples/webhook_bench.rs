//! The load generator and receiver of `bench/webhooks.sh` (issue 20): faults in through the
//! API of a running `faultline serve`, webhook messages out to receivers in this process, on
//! loopback, and what came out when.
//!
//! ```text
//! cargo run --release -p faultline-server --example webhook_bench -- \
//!     --base http://127.0.0.1:8080 --key flk_... --mode throughput --faults 20000
//! ```
//!
//! The receivers: `POST /fast` answers 204 at once and records when each message arrived, by
//! the id of the fault in its body; `POST /other` answers 204 at once; `POST /hang` answers only after an hour (the server's
//! webhook timeout ends it first). The server must allow loopback targets
//! (`--webhook-allowed-hosts loopback`).
//!
//! - `--mode throughput`: one endpoint (`/fast`); `--faults N` faults created by
//!   `POST /fault/events` in batches of 1,000, as fast as the server takes them; then waits for
//!   the N `fault.created` messages. Reports deliveries a second from the first to the last
//!   arrival, and from the first acknowledgement to the last arrival.
//! - `--mode latency`: one endpoint (`/fast`), and with `--second other` a second one of the
//!   same customer that answers at once (`/other`, not timed), or with `--second hang` one that
//!   times out on every message (`/hang`); `POST /fault` at `--rate R` a second (open loop)
//!   for `--duration` seconds. Reports the time from each fault's acknowledgement (its 201) to
//!   the arrival of its `fault.created` at `/fast`: p50, p90, p99, max.
//!
//! Endpoints are created at the start and deleted at the end. Bounded: at most `--timeout`
//! seconds (60) of waiting for deliveries after the load ends; faults whose message did not
//! arrive by then are counted as `missing`. The result is one JSON line on standard output.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::time::Instant;

const USAGE: &str = "usage: webhook_bench --base URL --key KEY --mode throughput|latency [--faults N] \
[--rate R] [--duration SECS] [--second other|hang] [--timeout SECS]";

#[derive(Default)]
struct Arrivals {
    /// Arrival of each fault's `fault.created` message at `/fast`, by fault id.
    by_fault: HashMap<String, Instant>,
    /// Messages received in all (a retry counts again).
    received: u64,
}

type Shared = Arc<Mutex<Arrivals>>;

async fn fast(State(arrivals): State<Shared>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut arrivals = arrivals.lock().unwrap();
    arrivals.received += 1;
    if parsed["type"] == "fault.created"
        && let Some(id) = parsed["data"]["id"].as_str()
    {
        arrivals.by_fault.entry(id.to_owned()).or_insert(now);
    }
    StatusCode::NO_CONTENT
}

async fn other() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn hang() -> StatusCode {
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    StatusCode::NO_CONTENT
}

struct Args {
    base: String,
    key: String,
    mode: String,
    faults: usize,
    rate: f64,
    duration: f64,
    second: Option<String>,
    timeout: f64,
}

fn args() -> Args {
    let mut args = Args {
        base: String::new(),
        key: String::new(),
        mode: String::new(),
        faults: 20_000,
        rate: 200.0,
        duration: 10.0,
        second: None,
        timeout: 60.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--base" => args.base = value(),
            "--key" => args.key = value(),
            "--mode" => args.mode = value(),
            "--faults" => args.faults = value().parse().expect("--faults"),
            "--rate" => args.rate = value().parse().expect("--rate"),
            "--duration" => args.duration = value().parse().expect("--duration"),
            "--timeout" => args.timeout = value().parse().expect("--timeout"),
            "--second" => {
                let path = value();
                assert!(path == "other" || path == "hang", "--second other|hang\n{USAGE}");
                args.second = Some(path);
            }
            _ => panic!("unknown argument {flag}\n{USAGE}"),
        }
    }
    assert!(!args.base.is_empty() && !args.key.is_empty(), "{USAGE}");
    args
}

struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn post(&self, path: &str, body: &Value) -> Value {
        let answer = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .expect("the server answers");
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or_default();
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    async fn delete(&self, path: &str) {
        let _ = self.client.delete(format!("{}{path}", self.base)).bearer_auth(&self.key).send().await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Wait until every id in `acks` has arrived, or `timeout` has passed since `since`.
async fn wait_for(arrivals: &Shared, acks: &HashMap<String, Instant>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let arrived = {
            let arrivals = arrivals.lock().unwrap();
            acks.keys().filter(|id| arrivals.by_fault.contains_key(*id)).count()
        };
        if arrived == acks.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let arrivals: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/fast", post(fast))
        .route("/hang", post(hang))
        .route("/other", post(other))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let api = Api { client: reqwest::Client::new(), base: args.base.clone(), key: args.key.clone() };
    let run = format!("{:x}", std::process::id() ^ (Instant::now().elapsed().subsec_nanos()));
    let mut endpoints = Vec::new();
    let fast_endpoint = api.post("/webhooks", &json!({"url": format!("{receiver}/fast")})).await;
    endpoints.push(fast_endpoint["id"].as_str().unwrap().to_owned());
    if let Some(path) = &args.second {
        let second = api.post("/webhooks", &json!({"url": format!("{receiver}/{path}")})).await;
        endpoints.push(second["id"].as_str().unwrap().to_owned());
    }

    let mut acks: HashMap<String, Instant> = HashMap::new();
    let result = match args.mode.as_str() {
        "throughput" => {
            let mut first_ack = None;
            let mut made = 0;
            while made < args.faults {
                let n = (args.faults - made).min(1_000);
                let events: Vec<Value> = (made..made + n)
                    .map(|i| {
                        json!({"action": "trigger", "resource_id": format!("bench-{run}-{i}"), "type": "wanlinkdown",
                               "severity": "HIGH", "message": "webhook bench", "microservice_id": "bench",
                               "resource_ancestry_path": format!("site-{}/bench-{run}-{i}", i % 50)})
                    })
                    .collect();
                let answer = api.post("/fault/events", &json!({"events": events})).await;
                let now = Instant::now();
                first_ack.get_or_insert(now);
                for r in answer["results"].as_array().unwrap() {
                    acks.insert(r["fault_id"].as_str().unwrap().to_owned(), now);
                }
                made += n;
            }
            let load_end = Instant::now();
            wait_for(&arrivals, &acks, Duration::from_secs_f64(args.timeout)).await;
            let arrivals = arrivals.lock().unwrap();
            let times: Vec<Instant> =
                acks.keys().filter_map(|id| arrivals.by_fault.get(id).copied()).collect();
            let (first, last) = (times.iter().min().copied(), times.iter().max().copied());
            let span = match (first, last) {
                (Some(first), Some(last)) => (last - first).as_secs_f64(),
                _ => f64::NAN,
            };
            let from_ack = last.map_or(f64::NAN, |last| (last - first_ack.unwrap()).as_secs_f64());
            json!({
                "mode": "throughput", "faults": args.faults, "delivered": times.len(),
                "missing": acks.len() - times.len(),
                "ingest_s": (load_end - first_ack.unwrap()).as_secs_f64(),
                "deliveries_per_s": times.len() as f64 / span,
                "deliveries_per_s_from_first_ack": times.len() as f64 / from_ack,
                "received": arrivals.received,
            })
        }
        "latency" => {
            let total = (args.rate * args.duration).round() as usize;
            let start = Instant::now();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
            let api = Arc::new(api);
            let mut tasks = Vec::new();
            for i in 0..total {
                let due = start + Duration::from_secs_f64(i as f64 / args.rate);
                tokio::time::sleep_until(due).await;
                let (api, tx, run) = (api.clone(), tx.clone(), run.clone());
                tasks.push(tokio::spawn(async move {
                    let body = json!({"resource_id": format!("lat-{run}-{i}"), "type": "wanlinkdown", "severity": "HIGH",
                                      "message": "webhook bench", "microservice_id": "bench",
                                      "resource_ancestry_path": format!("site-{}/lat-{run}-{i}", i % 50)});
                    let fault = api.post("/fault", &body).await;
                    let _ = tx.send((fault["id"].as_str().unwrap().to_owned(), Instant::now()));
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
            drop(tx);
            while let Some((id, at)) = rx.recv().await {
                acks.insert(id, at);
            }
            wait_for(&arrivals, &acks, Duration::from_secs_f64(args.timeout)).await;
            let result = {
                let arrivals_now = arrivals.lock().unwrap();
                let mut latencies: Vec<f64> = acks
                    .iter()
                    .filter_map(|(id, ack)| {
                        arrivals_now
                            .by_fault
                            .get(id)
                            .map(|at| at.saturating_duration_since(*ack).as_secs_f64() * 1e3)
                    })
                    .collect();
                latencies.sort_by(f64::total_cmp);
                json!({
                    "mode": "latency", "rate": args.rate, "duration_s": args.duration, "second_endpoint": args.second,
                    "faults": acks.len(), "delivered": latencies.len(), "missing": acks.len() - latencies.len(),
                    "p50_ms": percentile(&latencies, 50.0), "p90_ms": percentile(&latencies, 90.0),
                    "p99_ms": percentile(&latencies, 99.0), "max_ms": latencies.last().copied().unwrap_or(f64::NAN),
                })
            };
            let api = Arc::try_unwrap(api).ok().expect("no task holds the client");
            for id in &endpoints {
                api.delete(&format!("/webhooks/{id}")).await;
            }
            println!("{result}");
            return;
        }
        other => panic!("unknown --mode {other}\n{USAGE}"),
    };
    for id in &endpoints {
        api.delete(&format!("/webhooks/{id}")).await;
    }
    println!("{result}");
}
