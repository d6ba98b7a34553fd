//! The load generator of `bench/overload.sh` (load shedding, issue 23): a mix of authenticated
//! requests sent to a running `faultline serve`, with each answer's latency recorded by its
//! status, so that the fast 503 `overloaded` answers do not hide the latency of the requests
//! the server admitted (which wrk, with one latency histogram for everything, cannot show).
//!
//! ```text
//! cargo run --release -p faultline-server --example overload -- \
//!     --base http://127.0.0.1:8080 --key flk_... --rate 4000 --duration 15
//! ```
//!
//! **Open loop** (`--rate R`): request `i` is due at `start + i / R` whatever the answers to
//! the earlier ones, as real clients arrive; the scheduler sends every request whose time has
//! come (several at once when it woke late) and never waits for an answer. Latency runs from
//! the request's *scheduled* time to the end of its answer's body, so a generator or a server
//! that falls behind is charged for it (no coordinated omission); the generator's own
//! lateness is reported apart as `dispatch_lag`. At most `--max-in-flight` (2,000) requests are
//! outstanding: one due while that many are is not sent, and counted as `skipped`. The
//! schedule lasts `--duration` seconds; answers still missing `--grace` seconds (10) after it
//! ends are abandoned and counted as `timeout`, with the time waited as their latency.
//!
//! **Closed loop** (`--closed C`): C workers, each sending its next request when the previous
//! one is answered, for `--duration` seconds: the throughput the server sustains at C
//! concurrent requests. Latency runs from the send.
//!
//! **The mix** (`--mix LIST,GET,WRITE`, default `45,45,10`, in percent; with the demo key):
//! - `GET /fault?limit=50`: one of the first `--pages` (20) pages of the customer's faults,
//!   at random (each with the cursor that reaches it, collected before the clock starts);
//! - `GET /fault/{id}`: one of the faults of those pages, at random;
//! - `POST /fault/events`: a batch of `--batch` (5) events on a fleet of 500 WAN tunnels of
//!   this run's own (fresh names each run), each event a `trigger` (70%) or a `resolve` (30%)
//!   of a random tunnel, so the batches open, deduplicate onto and resolve faults.
//!
//! **Probes** (on by default; `--no-probes` turns them off): every 100 ms, from before the
//! first request until the last answer, `GET /healthz` and `GET /metrics` are sent at once, on
//! a thread and connections of their own; their count, failures (any status but 200, a
//! connection error, or no answer within 5 s), p50 and maximum latency are reported.
//!
//! The result is one JSON line on standard output: counts and p50/p90/p99/max latency (ms)
//! for each status (`200`, `503 overloaded`, `503`, `error` for a connection error, `timeout`),
//! the same for all 2xx answers (`admitted`; `admitted_from_send` counts from the moment the
//! generator sent each, leaving out its own lateness), by kind, the probes, and the CPU time the
//! generator used (`generator_cpu_s`). Progress goes to stderr.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

const USAGE: &str = "usage: overload --base URL --key KEY (--rate R | --closed C) [--duration SECS] \
[--max-in-flight N] [--grace SECS] [--mix LIST,GET,WRITE] [--batch N] [--pages N] [--threads N] \
[--seed N] [--label TEXT] [--no-probes]";

/// Events a `POST /fault/events` batch opens, deduplicates or resolves on: this many tunnels.
const WRITE_FLEET: u64 = 500;
/// How often the probes run, and how long one may take before it counts as failed.
const PROBE_PERIOD: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

struct Args {
    base: String,
    key: String,
    /// Open loop: requests a second.
    rate: f64,
    /// Closed loop: workers.
    closed: usize,
    duration: Duration,
    max_in_flight: usize,
    grace: Duration,
    /// Percent of list, get and write requests.
    mix: [u32; 3],
    batch: usize,
    pages: usize,
    threads: usize,
    seed: u64,
    label: String,
    probes: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        base: String::new(),
        key: String::new(),
        rate: 0.0,
        closed: 0,
        duration: Duration::from_secs(15),
        max_in_flight: 2000,
        grace: Duration::from_secs(10),
        mix: [45, 45, 10],
        batch: 5,
        pages: 20,
        threads: 2,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        label: String::new(),
        probes: true,
    };
    fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
        let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
        value.parse().map_err(|_| format!("{flag}: not a number: {value}"))
    }
    fn seconds(flag: &str, value: Option<String>) -> Result<Duration, String> {
        let s: f64 = number(flag, value)?;
        Duration::try_from_secs_f64(s).map_err(|_| format!("{flag}: not a duration: {s}"))
    }
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--base" => args.base = it.next().ok_or("--base needs a value")?.trim_end_matches('/').into(),
            "--key" => args.key = it.next().ok_or("--key needs a value")?,
            "--rate" => args.rate = number(&flag, it.next())?,
            "--closed" => args.closed = number(&flag, it.next())?,
            "--duration" => args.duration = seconds(&flag, it.next())?,
            "--max-in-flight" => args.max_in_flight = number(&flag, it.next())?,
            "--grace" => args.grace = seconds(&flag, it.next())?,
            "--batch" => args.batch = number(&flag, it.next())?,
            "--pages" => args.pages = number(&flag, it.next())?,
            "--threads" => args.threads = number(&flag, it.next())?,
            "--seed" => args.seed = number(&flag, it.next())?,
            "--label" => args.label = it.next().ok_or("--label needs a value")?,
            "--no-probes" => args.probes = false,
            "--mix" => {
                let text = it.next().ok_or("--mix needs a value")?;
                let parts: Vec<u32> = text
                    .split(',')
                    .map(|p| p.trim().parse().map_err(|_| format!("--mix: not a number: {p}")))
                    .collect::<Result<_, _>>()?;
                args.mix = parts.try_into().map_err(|_| "--mix takes three numbers: LIST,GET,WRITE")?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    if args.base.is_empty() || args.key.is_empty() {
        return Err(USAGE.into());
    }
    if (args.rate > 0.0) == (args.closed > 0) {
        return Err(format!("give exactly one of --rate and --closed\n{USAGE}"));
    }
    if args.mix.iter().sum::<u32>() == 0 || args.batch == 0 || args.pages == 0 || args.threads == 0 {
        return Err("--mix must not be all zero; --batch, --pages and --threads must be at least 1".into());
    }
    if args.max_in_flight == 0 {
        return Err("--max-in-flight must be at least 1".into());
    }
    Ok(args)
}

/// SplitMix64: small, fast and good enough to pick requests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    List,
    Get,
    Write,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::List, Kind::Get, Kind::Write];
    fn name(self) -> &'static str {
        match self {
            Kind::List => "list",
            Kind::Get => "get",
            Kind::Write => "write",
        }
    }
}

/// What the requests are made of, found before the clock starts.
struct Targets {
    base: String,
    key: String,
    /// The paths of the list pages (`/fault?limit=50&cursor=...`).
    pages: Vec<String>,
    /// The ids of the faults on them.
    ids: Vec<String>,
    mix: [u32; 3],
    batch: usize,
    /// Makes this run's tunnel names its own.
    prefix: String,
}

/// One request, ready to send.
struct Planned {
    kind: Kind,
    url: String,
    body: Option<String>,
}

impl Targets {
    fn plan(&self, rng: &mut Rng) -> Planned {
        let total: u32 = self.mix.iter().sum();
        let mut pick = rng.below(u64::from(total)) as u32;
        let mut kind = Kind::Write;
        for (k, weight) in Kind::ALL.into_iter().zip(self.mix) {
            if pick < weight {
                kind = k;
                break;
            }
            pick -= weight;
        }
        match kind {
            Kind::List => {
                let page = &self.pages[rng.below(self.pages.len() as u64) as usize];
                Planned { kind, url: format!("{}{page}", self.base), body: None }
            }
            Kind::Get => {
                let id = &self.ids[rng.below(self.ids.len() as u64) as usize];
                Planned { kind, url: format!("{}/fault/{id}", self.base), body: None }
            }
            Kind::Write => {
                let events: Vec<String> = (0..self.batch).map(|_| self.event(rng)).collect();
                let body = format!("{{\"events\":[{}]}}", events.join(","));
                Planned { kind, url: format!("{}/fault/events", self.base), body: Some(body) }
            }
        }
    }

    fn event(&self, rng: &mut Rng) -> String {
        let n = rng.below(WRITE_FLEET);
        let prefix = &self.prefix;
        if rng.below(10) < 7 {
            let site = n % 50;
            let severity = ["CRITICAL", "HIGH", "MEDIUM", "LOW"][rng.below(4) as usize];
            format!(
                r#"{{"action":"trigger","resource_id":"tun_{prefix}_{n}","type":"wantunnel","severity":"{severity}","message":"WAN tunnel {n} down at site {site}","cause":"BFD session down","resource_ancestry_path":"site_{prefix}_{site}|dev_{prefix}_{site}|tun_{prefix}_{n}"}}"#
            )
        } else {
            format!(r#"{{"action":"resolve","resource_id":"tun_{prefix}_{n}","type":"wantunnel"}}"#)
        }
    }
}

/// Query-string encoding of a cursor (everything but the unreserved characters).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Walks the first `args.pages` pages of `GET /fault?limit=50`, keeping the path of each and
/// the ids on them.
async fn discover(client: &reqwest::Client, args: &Args) -> Result<Targets, String> {
    let mut pages = Vec::new();
    let mut ids = Vec::new();
    let mut path = "/fault?limit=50".to_string();
    while pages.len() < args.pages {
        let answer = client
            .get(format!("{}{path}", args.base))
            .bearer_auth(&args.key)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = answer.status();
        let text = answer.text().await.map_err(|e| format!("GET {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {path}: {status}: {text}"));
        }
        let page: Value = serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}"))?;
        let data = page["data"].as_array().ok_or_else(|| format!("GET {path}: no data"))?;
        ids.extend(data.iter().filter_map(|f| f["id"].as_str().map(String::from)));
        pages.push(path);
        match page["meta"]["cursor"].as_str() {
            Some(cursor) => path = format!("/fault?limit=50&cursor={}", encode(cursor)),
            None => break,
        }
    }
    if ids.is_empty() {
        return Err("the customer has no faults: load some first (faultline demo)".into());
    }
    Ok(Targets {
        base: args.base.clone(),
        key: args.key.clone(),
        pages,
        ids,
        mix: args.mix,
        batch: args.batch,
        prefix: format!("ovl{:x}", args.seed & 0xff_ffff),
    })
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Http { status: u16, overloaded: bool },
    Error,
    Timeout,
}

impl Outcome {
    fn name(self) -> String {
        match self {
            Outcome::Http { status, overloaded: true } => format!("{status} overloaded"),
            Outcome::Http { status, .. } => status.to_string(),
            Outcome::Error => "error".into(),
            Outcome::Timeout => "timeout".into(),
        }
    }
    fn admitted(self) -> bool {
        matches!(self, Outcome::Http { status: 200..=299, .. })
    }
}

struct Record {
    kind: Kind,
    outcome: Outcome,
    /// Whether a 503 carried `Retry-After`.
    retry_after: bool,
    latency: Duration,
    /// How late the generator sent it (open loop).
    lag: Duration,
}

/// Sends one request and reads its whole answer.
async fn send(client: &reqwest::Client, key: &str, planned: &Planned) -> (Outcome, bool) {
    let request = match &planned.body {
        Some(body) => client
            .post(&planned.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone()),
        None => client.get(&planned.url),
    };
    let answer = match request.bearer_auth(key).send().await {
        Ok(answer) => answer,
        Err(_) => return (Outcome::Error, false),
    };
    let status = answer.status().as_u16();
    let retry_after = answer.headers().contains_key(reqwest::header::RETRY_AFTER);
    match answer.bytes().await {
        Ok(body) => {
            let overloaded = status == 503 && body.windows(12).any(|w| w == b"\"overloaded\"");
            (Outcome::Http { status, overloaded }, retry_after)
        }
        Err(_) => (Outcome::Error, false),
    }
}

/// Counts and latency percentiles (ms) of a set of latencies.
fn summary(latencies: &mut [Duration]) -> Value {
    latencies.sort_unstable();
    let n = latencies.len();
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let at = |p: f64| {
        if n == 0 {
            Value::Null
        } else {
            json!(ms(latencies[((p * n as f64).ceil() as usize).clamp(1, n) - 1]))
        }
    };
    json!({"count": n, "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": at(1.0)})
}

/// What the probes saw of one path.
#[derive(Default)]
struct Probe {
    latencies: Vec<Duration>,
    failures: u64,
    first_failure: Option<String>,
}

impl Probe {
    fn record(&mut self, started: Instant, result: Result<Result<reqwest::StatusCode, reqwest::Error>, ()>) {
        self.latencies.push(started.elapsed());
        let failure = match result {
            Ok(Ok(status)) if status == reqwest::StatusCode::OK => return,
            Ok(Ok(status)) => format!("status {status}"),
            Ok(Err(e)) => format!("error: {e}"),
            Err(()) => format!("no answer in {PROBE_TIMEOUT:?}"),
        };
        self.failures += 1;
        self.first_failure.get_or_insert(failure);
    }
    fn report(mut self) -> Value {
        let mut out = summary(&mut self.latencies);
        out["failures"] = json!(self.failures);
        out["first_failure"] = json!(self.first_failure);
        out
    }
}

async fn probe_once(client: &reqwest::Client, url: &str, probe: &mut Probe) {
    let started = Instant::now();
    let fetch = async {
        let answer = client.get(url).send().await?;
        let status = answer.status();
        answer.bytes().await?;
        Ok(status)
    };
    let result = tokio::time::timeout(PROBE_TIMEOUT, fetch).await.map_err(|_| ());
    probe.record(started, result);
}

/// Polls `/healthz` and `/metrics` every 100 ms on a thread of its own until `stop`.
fn start_probes(base: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Value> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let client = reqwest::Client::builder().no_proxy().tcp_nodelay(true).build().expect("client");
            let (healthz_url, metrics_url) = (format!("{base}/healthz"), format!("{base}/metrics"));
            let (mut healthz, mut metrics) = (Probe::default(), Probe::default());
            let mut tick = tokio::time::interval(PROBE_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                tokio::join!(
                    probe_once(&client, &healthz_url, &mut healthz),
                    probe_once(&client, &metrics_url, &mut metrics)
                );
            }
            json!({"healthz": healthz.report(), "metrics": metrics.report()})
        })
    })
}

/// What the open-loop scheduler did.
#[derive(Default)]
struct Schedule {
    scheduled: u64,
    skipped: u64,
    peak_in_flight: usize,
}

async fn open_loop(
    args: &Args,
    client: reqwest::Client,
    targets: Arc<Targets>,
    tx: mpsc::UnboundedSender<Record>,
) -> Schedule {
    let total = (args.rate * args.duration.as_secs_f64()).round() as u64;
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + args.duration + args.grace;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut rng = Rng(args.seed);
    let mut schedule = Schedule { scheduled: total, ..Schedule::default() };
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / args.rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let now_in_flight = in_flight.load(Ordering::Relaxed);
        if now_in_flight >= args.max_in_flight {
            schedule.skipped += 1;
            continue;
        }
        schedule.peak_in_flight = schedule.peak_in_flight.max(now_in_flight + 1);
        in_flight.fetch_add(1, Ordering::Relaxed);
        let planned = targets.plan(&mut rng);
        let (client, targets, in_flight, tx) =
            (client.clone(), targets.clone(), in_flight.clone(), tx.clone());
        tokio::spawn(async move {
            let lag = Instant::now().saturating_duration_since(due);
            let (outcome, retry_after) =
                tokio::time::timeout_at(deadline, send(&client, &targets.key, &planned))
                    .await
                    .unwrap_or((Outcome::Timeout, false));
            let latency = Instant::now().saturating_duration_since(due);
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(Record { kind: planned.kind, outcome, retry_after, latency, lag });
        });
    }
    schedule
}

async fn closed_loop(
    args: &Args,
    client: reqwest::Client,
    targets: Arc<Targets>,
    tx: mpsc::UnboundedSender<Record>,
) -> Schedule {
    let end = Instant::now() + args.duration;
    let deadline = end + args.grace;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..args.closed as u64 {
        let (client, targets, tx) = (client.clone(), targets.clone(), tx.clone());
        let mut rng = Rng(args.seed ^ worker.wrapping_mul(0x2545_F491_4F6C_DD1D));
        workers.spawn(async move {
            let mut sent = 0u64;
            while Instant::now() < end {
                let planned = targets.plan(&mut rng);
                let started = Instant::now();
                let (outcome, retry_after) =
                    tokio::time::timeout_at(deadline, send(&client, &targets.key, &planned))
                        .await
                        .unwrap_or((Outcome::Timeout, false));
                sent += 1;
                let record = Record {
                    kind: planned.kind,
                    outcome,
                    retry_after,
                    latency: started.elapsed(),
                    lag: Duration::ZERO,
                };
                let _ = tx.send(record);
            }
            sent
        });
    }
    let mut schedule = Schedule { peak_in_flight: args.closed, ..Schedule::default() };
    while let Some(sent) = workers.join_next().await {
        schedule.scheduled += sent.unwrap_or(0);
    }
    schedule
}

fn report(
    args: &Args,
    targets: &Targets,
    schedule: &Schedule,
    records: Vec<Record>,
    elapsed: Duration,
) -> Value {
    let mut by_status: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let mut admitted = Vec::new();
    let mut admitted_from_send = Vec::new();
    let mut lags = Vec::with_capacity(records.len());
    let mut kinds: BTreeMap<Kind, (BTreeMap<String, u64>, Vec<Duration>)> = BTreeMap::new();
    let (mut shed, mut with_retry_after, mut unavailable) = (0u64, 0u64, 0u64);
    for r in &records {
        by_status.entry(r.outcome.name()).or_default().push(r.latency);
        lags.push(r.lag);
        let kind = kinds.entry(r.kind).or_default();
        *kind.0.entry(r.outcome.name()).or_default() += 1;
        if r.outcome.admitted() {
            admitted.push(r.latency);
            admitted_from_send.push(r.latency.saturating_sub(r.lag));
            kind.1.push(r.latency);
        }
        if let Outcome::Http { status: 503, overloaded } = r.outcome {
            if overloaded {
                shed += 1;
            } else {
                unavailable += 1;
            }
            with_retry_after += u64::from(r.retry_after);
        }
    }
    let sent = records.len() as u64;
    let share = |n: u64, of: u64| if of == 0 { 0.0 } else { (n as f64 / of as f64 * 1e4).round() / 1e4 };
    let statuses: BTreeMap<String, Value> =
        by_status.into_iter().map(|(k, mut v)| (k, summary(&mut v))).collect();
    let kinds: BTreeMap<&str, Value> = kinds
        .into_iter()
        .map(|(k, (counts, mut latencies))| {
            (k.name(), json!({"statuses": counts, "admitted": summary(&mut latencies)}))
        })
        .collect();
    let mut lag = summary(&mut lags);
    lag.as_object_mut().map(|o| o.remove("count"));
    let seconds = elapsed.as_secs_f64();
    json!({
        "label": args.label,
        "mode": if args.closed > 0 { "closed" } else { "open" },
        "rate": args.rate,
        "concurrency": args.closed,
        "duration_s": args.duration.as_secs_f64(),
        "elapsed_s": (seconds * 1e3).round() / 1e3,
        "mix": {"list": args.mix[0], "get": args.mix[1], "write": args.mix[2], "batch": args.batch,
                "pages": targets.pages.len(), "ids": targets.ids.len()},
        "max_in_flight": args.max_in_flight,
        "peak_in_flight": schedule.peak_in_flight,
        "scheduled": schedule.scheduled,
        "sent": sent,
        "skipped": schedule.skipped,
        "skipped_share": share(schedule.skipped, schedule.scheduled),
        "answered_per_s": (sent as f64 / seconds).round(),
        "admitted_per_s": (admitted.len() as f64 / seconds).round(),
        "admitted": summary(&mut admitted),
        "admitted_from_send": summary(&mut admitted_from_send),
        "shed": shed,
        "shed_share": share(shed, sent),
        "503_with_retry_after": with_retry_after,
        "unavailable_503": unavailable,
        "statuses": statuses,
        "kinds": kinds,
        "dispatch_lag": lag,
    })
}

/// CPU time (user + system, seconds) this process has used so far, from `/proc/self/stat`
/// (Linux; its clock ticks are 1/100 s); `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (in parentheses, which may hold spaces): utime and
    // stime are the 14th and 15th of the line, so the 12th and 13th after it.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / 100.0)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(message) = runtime.block_on(run(args)) {
        eprintln!("overload: {message}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let targets = Arc::new(discover(&client, &args).await?);
    eprintln!(
        "overload: {} {} for {:?}: {} pages, {} faults to read, mix {:?} (list, get, write of {})",
        if args.closed > 0 { "closed loop, concurrency" } else { "open loop, requests/s" },
        if args.closed > 0 { args.closed as f64 } else { args.rate },
        args.duration,
        targets.pages.len(),
        targets.ids.len(),
        args.mix,
        args.batch
    );
    let stop = Arc::new(AtomicBool::new(false));
    let probes = args.probes.then(|| start_probes(args.base.clone(), stop.clone()));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let collector = tokio::spawn(async move {
        let mut records = Vec::new();
        while let Some(record) = rx.recv().await {
            records.push(record);
        }
        records
    });
    let schedule = if args.closed > 0 {
        closed_loop(&args, client, targets.clone(), tx).await
    } else {
        open_loop(&args, client, targets.clone(), tx).await
    };
    // Every sender is gone once the last request has been answered (or abandoned).
    let records = collector.await.map_err(|e| e.to_string())?;
    let elapsed = if args.closed > 0 { started.elapsed() } else { args.duration };
    stop.store(true, Ordering::Relaxed);
    let mut out = report(&args, &targets, &schedule, records, elapsed);
    if let (Some(before), Some(after)) = (cpu_before, cpu_seconds()) {
        out["generator_cpu_s"] = json!(((after - before) * 100.0).round() / 100.0);
    }
    if let Some(probes) = probes {
        let probed = probes.join().map_err(|_| "the probe thread panicked")?;
        out["healthz"] = probed["healthz"].clone();
        out["metrics"] = probed["metrics"].clone();
    }
    println!("{out}");
    Ok(())
}
