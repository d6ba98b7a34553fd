//! Issue 23, hardening, seen from outside the `faultline serve` process: slow and idle
//! connections are cut, connections and concurrent requests are capped, shutdown drains,
//! a database outage or a full disk answers 503 in the envelope and heals by itself, with one
//! log line per episode, and start-up mistakes end in one line and an exit code.
//!
//! The socket tests speak HTTP/1.1 by hand, because they must control every byte and its time.
//! They measure time on real connections (the server's timers are hyper's and tokio's, not an
//! injected clock), so each uses short settings and bounds with slack, and they run one at a
//! time.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_store::Backend;
use faultline_store::testing::{TestDb, skip};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

mod common;
use common::{BIN, Server, assert_log_clean, eventually};

/// The tests below time what the server does on its sockets: one at a time, so that they do
/// not take the machine's cores from each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("faultline-hardening-{name}-{}", faultline_core::ids::random_base62(8)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A client whose requests give up after 20 s: longer than any answer here should take.
fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// A client for streams, which never end by themselves.
fn stream_client() -> reqwest::Client {
    reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().unwrap()
}

/// A `faultline serve` on a database of its own, with its working directory.
struct Running {
    server: Server,
    /// The working directory: the SQLite database is `hardening.db` in it unless a URL was given.
    dir: PathBuf,
}

impl Running {
    /// On a new SQLite database in a new directory; returns the admin key.
    fn start(name: &str, flags: &[&str]) -> (Running, String) {
        let dir = temp_dir(name);
        Running::start_on(dir, "sqlite://hardening.db", flags)
    }

    fn start_on(dir: PathBuf, database_url: &str, flags: &[&str]) -> (Running, String) {
        let (server, key) = Server::start_in(&dir, database_url, flags);
        let key = key.expect("the admin key printed at first start");
        (Running { server, dir }, key)
    }

    fn base(&self) -> String {
        self.server.base.clone()
    }

    /// `127.0.0.1:port`.
    fn addr(&self) -> String {
        self.server.base.trim_start_matches("http://").to_owned()
    }

    /// SIGTERM, a clean exit, and the stderr.
    fn stop(self) -> String {
        self.server.stop()
    }

    fn terminate(&self) {
        self.server.terminate();
    }

    fn wait_for_exit(self, within: Duration) -> (Option<ExitStatus>, String) {
        self.server.wait_for_exit(within)
    }
}

/// Read from `reader` (keeping what it sends in `pending`) until the peer closes the
/// connection or `deadline` passes; returns when it was closed, or `None` if it is still open.
async fn closed_by<R: AsyncRead + Unpin>(
    reader: &mut R,
    pending: &mut Vec<u8>,
    deadline: Instant,
) -> Option<Instant> {
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout_at(deadline.into(), reader.read(&mut chunk)).await;
        match read {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(Instant::now()),
            Ok(Ok(n)) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One HTTP answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// An HTTP/1.1 connection written byte by byte.
struct Raw {
    reader: OwnedReadHalf,
    /// `None` while a task trickles bytes through it.
    writer: Option<OwnedWriteHalf>,
    /// Bytes read and not yet consumed.
    pending: Vec<u8>,
}

impl Raw {
    async fn connect(addr: &str) -> Raw {
        let (reader, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        Raw { reader, writer: Some(writer), pending: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.as_mut().expect("the writer").write_all(bytes).await
    }

    async fn read_more(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        match self.reader.read(&mut chunk).await {
            Ok(0) => Err("the server closed the connection".to_owned()),
            Ok(n) => {
                self.pending.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("the connection failed: {e}")),
        }
    }

    /// Read exactly `n` more bytes.
    async fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.pending.len() < n {
            self.read_more().await?;
        }
        Ok(self.pending.drain(..n).collect())
    }

    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.pending[..end]).into_owned();
                self.pending.drain(..end + 2);
                return Ok(line);
            }
            self.read_more().await?;
        }
    }

    /// The next answer, an interim `100 Continue` included.
    async fn try_answer(&mut self) -> Result<Answer, String> {
        let status_line = self.line().await?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header {line:?}"))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let mut answer = Answer { status, headers, body: Vec::new() };
        if (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(answer);
        }
        if let Some(length) = answer.header("content-length") {
            let length: usize = length.parse().map_err(|_| format!("bad Content-Length {length}"))?;
            answer.body = self.take(length).await?;
        } else if answer.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            loop {
                let size = self.line().await?;
                let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
                    .map_err(|_| format!("bad chunk size {size:?}"))?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    break;
                }
                let chunk = self.take(size + 2).await?;
                answer.body.extend_from_slice(&chunk[..size]);
            }
        } else {
            while self.read_more().await.is_ok() {}
            answer.body = std::mem::take(&mut self.pending);
        }
        Ok(answer)
    }

    /// The next answer, within `within`, or the test fails.
    async fn answer(&mut self, within: Duration, what: &str) -> Answer {
        match tokio::time::timeout(within, self.try_answer()).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => panic!("{what}: no answer: {e}"),
            Err(_) => panic!("{what}: no answer within {within:?}"),
        }
    }

    /// Whether the server closed the connection by `deadline` (and when).
    async fn closed_by(&mut self, deadline: Instant) -> Option<Instant> {
        closed_by(&mut self.reader, &mut self.pending, deadline).await
    }

    /// Send `bytes` on a task, `chunk` bytes every `every`, while the test watches the
    /// connection; the task ends early if the connection fails.
    fn trickle(&mut self, bytes: Vec<u8>, chunk: usize, every: Duration) -> tokio::task::JoinHandle<()> {
        let mut writer = self.writer.take().expect("the writer");
        tokio::spawn(async move {
            for piece in bytes.chunks(chunk) {
                if writer.write_all(piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
            // Keep the connection open (the write half alive) until the test is done with it.
            std::future::pending::<()>().await;
        })
    }
}

/// The body of a `POST /fault` for `resource`, its `cause` padded to `padding` characters.
fn fault_body(resource: &str, padding: usize) -> Vec<u8> {
    json!({"resource_id": resource, "type": "site", "severity": "LOW",
           "message": format!("{resource} unreachable"), "cause": "x".repeat(padding)})
    .to_string()
    .into_bytes()
}

/// The head of a `POST /fault` with a `Content-Length` of `length`, and `extra` header lines
/// (each ending in CRLF).
fn post_fault_head(addr: &str, key: &str, length: usize, extra: &str) -> Vec<u8> {
    format!(
        "POST /fault HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A `POST /fault` whose handler is running and waiting for the rest of its body: it holds a
/// request slot (and its connection) until [`Upload::finish`].
struct Upload {
    conn: Raw,
    body: Vec<u8>,
    sent: usize,
}

impl Upload {
    /// Send the head with `Expect: 100-continue` and wait (at most `within`) for the server's
    /// `100 Continue`, which hyper sends when the handler first reads the body; then send half
    /// of the body. `close` asks the server to close the connection after its answer.
    async fn begin(addr: &str, key: &str, resource: &str, close: bool, within: Duration) -> Upload {
        let body = fault_body(resource, 400);
        let extra =
            if close { "Expect: 100-continue\r\nConnection: close\r\n" } else { "Expect: 100-continue\r\n" };
        let mut conn = Raw::connect(addr).await;
        conn.send(&post_fault_head(addr, key, body.len(), extra)).await.unwrap();
        let interim = conn.answer(within, &format!("the upload of {resource}")).await;
        assert_eq!(interim.status, 100, "the upload of {resource} is being read: {interim:?}");
        let sent = body.len() / 2;
        conn.send(&body[..sent]).await.unwrap();
        Upload { conn, body, sent }
    }

    /// Send the rest of the body and read the answer.
    async fn finish(mut self, what: &str) -> (Answer, Raw) {
        self.conn.send(&self.body[self.sent..]).await.unwrap();
        let answer = self.conn.answer(Duration::from_secs(10), what).await;
        (answer, self.conn)
    }
}

/// `Ok` when an answer is a 503 in the error envelope with `code` and a `Retry-After` in
/// seconds; otherwise what is wrong with it.
fn unavailable_as(status: u16, retry_after: Option<&str>, body: &Value, code: &str) -> Result<(), String> {
    let mut keys: Vec<&str> =
        body.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    if status != 503 {
        return Err(format!("{status} instead of 503 {code}: {body}"));
    }
    if body["code"] != code {
        return Err(format!("503 {} instead of 503 {code}: {body}", body["code"]));
    }
    if keys != ["code", "doc_url", "message", "type"] || body["type"] != "api_error" {
        return Err(format!("not the error envelope: {body}"));
    }
    if !body["doc_url"].as_str().is_some_and(|u| u.ends_with(&format!("/docs/errors/{code}"))) {
        return Err(format!("doc_url does not name {code}: {body}"));
    }
    match retry_after {
        Some(seconds) if seconds.parse::<u64>().is_ok() => Ok(()),
        other => Err(format!("503 {code} without a Retry-After in seconds ({other:?}): {body}")),
    }
}

/// Status, `Retry-After` and JSON body of a reqwest answer.
async fn read_answer(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

async fn assert_unavailable_as(response: reqwest::Response, code: &str, what: &str) {
    let (status, retry_after, body) = read_answer(response).await;
    if let Err(wrong) = unavailable_as(status, retry_after.as_deref(), &body, code) {
        panic!("{what}: {wrong}");
    }
}

/// Wait (at most 2 s) until `/metrics` shows `series` (name and labels, as written there) at
/// `value`.
async fn assert_metric(http: &reqwest::Client, base: &str, series: &str, value: f64) {
    let mut seen = None;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        seen =
            text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse::<f64>().ok());
        if seen == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/metrics: {series} is {seen:?}, not {value}");
}

async fn get_status(http: &reqwest::Client, url: &str, key: &str) -> u16 {
    http.get(url).bearer_auth(key).send().await.unwrap().status().as_u16()
}

// ---------------------------------------------------------------------------------------------
// Slow and idle connections

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_trickled_a_byte_at_a_time_is_cut_at_the_header_timeout() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, _key) = Running::start("slowloris", &["--header-timeout", "1s", "--idle-timeout", "30s"]);
    let http = client();
    let mut slow = Raw::connect(&server.addr()).await;
    // A head that would take a minute to complete at this pace.
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Slow: {}", server.addr(), "a".repeat(200));
    let first_byte = Instant::now();
    let trickle = slow.trickle(head.into_bytes(), 1, Duration::from_millis(300));

    // Meanwhile everyone else is served.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get_status(&http, &format!("{}/healthz", server.base()), "").await, 200);

    let closed = slow.closed_by(first_byte + Duration::from_secs(5)).await;
    trickle.abort();
    let after = closed.expect("a head trickled for 5 s is still open (header timeout 1 s)") - first_byte;
    assert!(
        after >= Duration::from_millis(900) && after <= Duration::from_millis(2_500),
        "closed {after:?} after the head's first byte; the header timeout is 1 s"
    );
    assert_eq!(get_status(&http, &format!("{}/healthz", server.base()), "").await, 200);
    let cut = r#"faultline_connections_cut_total{reason="header_timeout"}"#;
    assert_metric(&http, &server.base(), cut, 1.0).await;
    assert_log_clean(&server.stop(), "the server that cut a slow head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout_not_the_header_timeout() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, _key) = Running::start("idle", &["--header-timeout", "1s", "--idle-timeout", "3s"]);
    let mut conn = Raw::connect(&server.addr()).await;
    conn.send(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr()).as_bytes()).await.unwrap();
    let answer = conn.answer(Duration::from_secs(5), "GET /healthz").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let answered = Instant::now();

    // The header timeout runs from a request's first byte: an idle connection outlives it.
    let early = conn.closed_by(answered + Duration::from_millis(1_500)).await;
    assert_eq!(
        early.map(|at| at - answered),
        None,
        "an idle keep-alive connection was closed before the idle timeout (3 s), at the header timeout (1 s)?"
    );
    let closed = conn.closed_by(answered + Duration::from_millis(4_500)).await;
    let after =
        closed.expect("an idle keep-alive connection is still open 4.5 s after its last answer") - answered;
    assert!(
        after >= Duration::from_millis(2_750),
        "closed {after:?} after its last answer; idle timeout 3 s"
    );
    let cut = r#"faultline_connections_cut_total{reason="idle_timeout"}"#;
    assert_metric(&client(), &server.base(), cut, 1.0).await;
    assert_log_clean(&server.stop(), "the server that closed an idle connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_a_byte_is_closed_at_the_header_timeout() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, _key) = Running::start("silent", &["--header-timeout", "1s", "--idle-timeout", "30s"]);
    let mut conn = Raw::connect(&server.addr()).await;
    let opened = Instant::now();
    let closed = conn.closed_by(opened + Duration::from_millis(4_500)).await;
    let after = closed.map(|at| at - opened);
    assert!(
        after.is_some_and(|after| after >= Duration::from_millis(900) && after <= Duration::from_millis(2_500)),
        "a connection that never sent a byte, header timeout 1 s, idle timeout 30 s: closed after {after:?}"
    );
    assert!(conn.pending.is_empty() || conn.pending.starts_with(b"HTTP/1.1 "), "{:?}", conn.pending);
    let http = client();
    let cut = r#"faultline_connections_cut_total{reason="header_timeout"}"#;
    assert_metric(&http, &server.base(), cut, 1.0).await;
    assert_log_clean(&server.stop(), "the server that closed a silent connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_the_floor_rate_is_cut_and_one_above_it_is_served() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, key) = Running::start(
        "slow-body",
        &["--header-timeout", "1s", "--body-min-rate", "100", "--idle-timeout", "30s"],
    );
    let addr = server.addr();

    // 2 bytes a second against a floor of 100: cut once header timeout + received / 100 has
    // passed since the head, about 1.02 s after it.
    let body = fault_body("dev_trickled", 200);
    let mut slow = Raw::connect(&addr).await;
    slow.send(&post_fault_head(&addr, &key, body.len(), "")).await.unwrap();
    let head_sent = Instant::now();
    let trickle = slow.trickle(body, 1, Duration::from_millis(500));
    let closed = slow.closed_by(head_sent + Duration::from_secs(6)).await;
    trickle.abort();
    let after =
        closed.expect("a body sent at 2 B/s (floor 100 B/s) still open 6 s after its head") - head_sent;
    assert!(
        after >= Duration::from_millis(900) && after <= Duration::from_millis(2_600),
        "cut {after:?} after the head; expected about 1.02 s (1 s + 2 B / 100 B/s)"
    );

    // 400 bytes a second, well above the floor, for 2.5 s, well past the header timeout: served.
    let body = fault_body("dev_steady", 900);
    assert!(body.len() >= 1_000, "{}", body.len());
    let mut steady = Raw::connect(&addr).await;
    steady.send(&post_fault_head(&addr, &key, body.len(), "")).await.unwrap();
    let head_sent = Instant::now();
    let trickle = steady.trickle(body, 40, Duration::from_millis(100));
    let answer = steady.answer(Duration::from_secs(10), "the steady upload").await;
    trickle.abort();
    let took = head_sent.elapsed();
    assert_eq!(answer.status, 201, "a body above the floor rate is served: {answer:?} {}", answer.json());
    assert_eq!(answer.json()["resource_id"], "dev_steady");
    assert!(took >= Duration::from_millis(1_500), "the upload took {took:?}: not past the header timeout");
    let cut = r#"faultline_connections_cut_total{reason="body_too_slow"}"#;
    assert_metric(&client(), &server.base(), cut, 1.0).await;
    assert_log_clean(&server.stop(), "the server that cut a slow body");
}

// ---------------------------------------------------------------------------------------------
// Caps

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_idle_keep_alive_connections_make_room() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, _key) = Running::start("idle-at-cap", &["--max-connections", "2", "--idle-timeout", "30s"]);
    let addr = server.addr();
    // Two keep-alive connections, each idle after one answered request: every slot is taken.
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut conn = Raw::connect(&addr).await;
        conn.send(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
        assert_eq!(conn.answer(Duration::from_secs(3), "a keep-alive request").await.status, 200);
        idle.push(conn);
    }
    // A new client is served at once, not after the 30 s idle timeout: an idle one made room.
    let mut third = Raw::connect(&addr).await;
    third
        .send(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answer = third.answer(Duration::from_secs(3), "a new connection at the cap").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let mut closed = 0;
    for conn in &mut idle {
        if conn.closed_by(Instant::now() + Duration::from_millis(500)).await.is_some() {
            closed += 1;
        }
    }
    assert!(closed >= 1, "no idle connection was closed to make room");
    drop(idle);
    let text = client().get(format!("{}/metrics", server.base())).send().await.unwrap().text().await.unwrap();
    let cut = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"faultline_connections_cut_total{reason="idle_at_capacity"} "#))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(cut.is_some_and(|n| n >= 1.0), "idle_at_capacity is counted: {cut:?}");
    assert_log_clean(&server.stop(), "the server at its connection cap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_until_one_closes() {
    let _one = ONE_AT_A_TIME.lock().await;
    // Slow uploads are kept alive (30 s + 1 s a byte); idle connections (such as a start-up
    // probe's) go after 2 s.
    let (server, key) = Running::start(
        "max-connections",
        &[
            "--max-connections",
            "2",
            "--header-timeout",
            "30s",
            "--body-min-rate",
            "1",
            "--idle-timeout",
            "2s",
        ],
    );
    let addr = server.addr();
    let within = Duration::from_secs(5);
    let first = Upload::begin(&addr, &key, "dev_first", true, within).await;
    let second = Upload::begin(&addr, &key, "dev_second", false, within).await;

    // The third connection is not accepted: its request waits in the kernel's backlog.
    let mut third = Raw::connect(&addr).await;
    third
        .send(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let waited = third.closed_by(Instant::now() + Duration::from_millis(1_500)).await;
    assert!(
        waited.is_none() && third.pending.is_empty(),
        "a third connection over --max-connections 2 was served or closed: {:?}",
        String::from_utf8_lossy(&third.pending)
    );

    // The first upload completes, and its connection closes: the third is served.
    let (answer, mut first_conn) = first.finish("the first upload").await;
    assert_eq!(answer.status, 201, "the first upload, in flight, is served: {answer:?}");
    assert!(
        first_conn.closed_by(Instant::now() + Duration::from_secs(2)).await.is_some(),
        "Connection: close"
    );
    let answer = third.answer(Duration::from_secs(3), "the third connection, once one closed").await;
    assert_eq!(answer.status, 200, "{answer:?}");

    let (answer, _) = second.finish("the second upload").await;
    assert_eq!(answer.status, 201, "the second upload, in flight all along, is served: {answer:?}");
    assert_log_clean(&server.stop(), "the server at its connection cap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_concurrency_cap_answer_503_overloaded_at_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, key) = Running::start(
        "load-shedding",
        &["--max-concurrent-requests", "2", "--header-timeout", "30s", "--body-min-rate", "1"],
    );
    let (addr, base, http) = (server.addr(), server.base(), client());
    let within = Duration::from_secs(5);
    let first = Upload::begin(&addr, &key, "dev_first", false, within).await;
    let second = Upload::begin(&addr, &key, "dev_second", false, within).await;

    // Both slots are taken: a third request is refused at once.
    let started = Instant::now();
    let response = http.get(format!("{base}/fault")).bearer_auth(&key).send().await.unwrap();
    let took = started.elapsed();
    assert_unavailable_as(response, "overloaded", "GET /fault with both slots taken").await;
    assert!(took < Duration::from_secs(1), "the overloaded answer took {took:?}");
    let response = http
        .post(format!("{base}/fault"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(fault_body("dev_third", 10))
        .send()
        .await
        .unwrap();
    assert_unavailable_as(response, "overloaded", "POST /fault with both slots taken").await;

    // Probes, metrics and streams are exempt.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get_status(&http, &format!("{base}{path}"), "").await, 200, "{path} while overloaded");
    }
    let stream = stream_client().get(format!("{base}/fault/stream")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(stream.status(), 200, "GET /fault/stream while overloaded");
    drop(stream);

    let (answer, _) = first.finish("the first upload").await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let (answer, _) = second.finish("the second upload").await;
    assert_eq!(answer.status, 201, "{answer:?}");
    eventually(Duration::from_secs(2), "GET /fault answers 200 once the slots are free", || async {
        get_status(&http, &format!("{base}/fault"), &key).await == 200
    })
    .await;
    let listed: Value =
        http.get(format!("{base}/fault")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let resources: Vec<&str> =
        listed["data"].as_array().unwrap().iter().map(|f| f["resource_id"].as_str().unwrap()).collect();
    assert!(!resources.contains(&"dev_third"), "a shed write wrote nothing: {resources:?}");
    assert_metric(&http, &base, "faultline_requests_shed_total", 2.0).await;
    assert_log_clean(&server.stop(), "the overloaded server");
}

// ---------------------------------------------------------------------------------------------
// Shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_ends_streams_refuses_new_connections_and_exits_0() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, key) = Running::start(
        "shutdown",
        &["--shutdown-grace", "10s", "--header-timeout", "30s", "--body-min-rate", "1"],
    );
    let (addr, base) = (server.addr(), server.base());
    let db_file = server.dir.join("hardening.db");
    let upload = Upload::begin(&addr, &key, "dev_in_flight", false, Duration::from_secs(5)).await;

    let mut stream =
        stream_client().get(format!("{base}/fault/stream")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let how = loop {
            match stream.chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => break "ended".to_owned(),
                Err(e) => break format!("cut: {e}"),
            }
        };
        let _ = ended_tx.send((Instant::now(), how));
    });

    server.terminate();
    let terminated = Instant::now();
    // The stream ends while the upload still holds the process up: the shutdown ended it.
    let (at, how) = tokio::time::timeout(Duration::from_secs(3), ended)
        .await
        .expect("the stream client is still connected 3 s after SIGTERM")
        .unwrap();
    eprintln!("the stream {how} {:?} after SIGTERM", at - terminated);

    let refused_by = terminated + Duration::from_secs(2);
    loop {
        match TcpStream::connect(&addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            Err(e) => panic!("connecting after SIGTERM: {e}"),
            Ok(accepted) => {
                drop(accepted);
                assert!(Instant::now() < refused_by, "new connections are still accepted 2 s after SIGTERM");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    let (answer, _) = upload.finish("the upload in flight at SIGTERM").await;
    assert_eq!(answer.status, 201, "the request in flight at SIGTERM is answered: {answer:?}");
    let id = answer.json()["id"].as_str().expect("the fault's id").to_owned();
    let (exit, stderr) = server.wait_for_exit(Duration::from_secs(11).saturating_sub(terminated.elapsed()));
    let exit = exit.unwrap_or_else(|| panic!("no exit within the 10 s grace: {stderr}"));
    assert!(exit.success(), "exit status {exit:?}: {stderr}");
    assert_log_clean(&stderr, "the server shut down");

    // The answered write is in the database.
    let found: u32 = rusqlite::Connection::open(&db_file)
        .unwrap()
        .query_row("SELECT count(*) FROM faults WHERE id = ?1", [&id], |row| row.get(0))
        .unwrap();
    assert_eq!(found, 1, "the fault acknowledged during shutdown, {id}, is in the database");
}

// ---------------------------------------------------------------------------------------------
// Database outages and a full disk

/// One `POST /fault` and what came of it.
#[derive(Debug)]
struct Outcome {
    resource: String,
    sent: Instant,
    answered: Instant,
    /// `None` when no answer came (the error says why).
    status: Option<u16>,
    retry_after: Option<String>,
    body: Value,
    error: Option<String>,
}

impl Outcome {
    /// The fault's id, when the write was acknowledged.
    fn id(&self) -> Option<&str> {
        if self.status == Some(201) { self.body["id"].as_str() } else { None }
    }

    fn took(&self) -> Duration {
        self.answered - self.sent
    }

    /// `Ok` for a 503 `code` in the envelope with a `Retry-After`.
    fn unavailable_as(&self, code: &str) -> Result<(), String> {
        match self.status {
            None => Err(format!("no answer for {}: {:?}", self.resource, self.error)),
            Some(status) => unavailable_as(status, self.retry_after.as_deref(), &self.body, code),
        }
    }

    /// `Ok` for any 503 in the envelope with a `Retry-After`.
    fn unavailable(&self) -> Result<(), String> {
        let code = self.body["code"].as_str().unwrap_or("(none)").to_owned();
        self.unavailable_as(&code)
    }
}

async fn post_fault(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    resource: &str,
    padding: usize,
) -> Outcome {
    let sent = Instant::now();
    let result = http
        .post(format!("{base}/fault"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(fault_body(resource, padding))
        .send()
        .await;
    let (status, retry_after, body, error) = match result {
        Ok(response) => {
            let (status, retry_after, body) = read_answer(response).await;
            (Some(status), retry_after, body, None)
        }
        Err(e) => (None, None, Value::Null, Some(e.to_string())),
    };
    Outcome {
        resource: resource.to_owned(),
        sent,
        answered: Instant::now(),
        status,
        retry_after,
        body,
        error,
    }
}

/// [`keep_writing`] on a task, once its first five faults are acknowledged: the flag that
/// stops it, and the task.
async fn start_writing(
    http: &reqwest::Client,
    base: &str,
    key: &str,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Vec<Outcome>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(keep_writing(
        http.clone(),
        base.to_owned(),
        key.to_owned(),
        "dev_writer",
        stop.clone(),
        acknowledged.clone(),
    ));
    eventually(Duration::from_secs(10), "the writer's first faults are acknowledged", || async {
        acknowledged.load(Ordering::SeqCst) >= 5
    })
    .await;
    (stop, writer)
}

/// Post faults `{prefix}-{n}`, one after another, until `stop` is set; counts the
/// acknowledged ones in `acknowledged`.
async fn keep_writing(
    http: reqwest::Client,
    base: String,
    key: String,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let outcome = post_fault(&http, &base, &key, &format!("{prefix}-{}", outcomes.len()), 100).await;
        let pause = if outcome.id().is_some() {
            acknowledged.fetch_add(1, Ordering::SeqCst);
            10
        } else {
            100
        };
        outcomes.push(outcome);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    outcomes
}

/// Every acknowledged fault reads back.
async fn assert_all_readable(http: &reqwest::Client, base: &str, key: &str, ids: &[String]) {
    assert!(!ids.is_empty());
    for id in ids {
        let status = get_status(http, &format!("{base}/fault/{id}"), key).await;
        assert_eq!(status, 200, "the acknowledged fault {id} is readable");
    }
}

/// The WARN and ERROR lines of a log.
fn warnings(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect()
}

/// An outage is logged once when it begins (and at most once a minute while it lasts) and once
/// when it ends, whatever the number of requests it failed.
fn assert_outage_logged_once(stderr: &str, what: &str) {
    let warned = warnings(stderr);
    assert!(
        warned.iter().any(|l| l.contains(what)),
        "no warning about \"{what}\" when it began: {warned:#?}"
    );
    assert!(warned.len() <= 3, "one warning for the episode, not one per request: {warned:#?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let began = stderr.lines().position(|l| l.contains(" WARN ") && l.contains(what)).unwrap();
    assert!(
        stderr.lines().skip(began).any(|l| l.contains(" INFO ") && l.contains(what)),
        "no info line about \"{what}\" when it ended"
    );
}

/// A TCP proxy in front of PostgreSQL that the test can stop (listener closed and every
/// proxied connection cut, as when the database goes down) and start again on the same port.
struct PgProxy {
    /// The test database's URL, pointing at the proxy.
    url: String,
    port: u16,
    upstream: std::net::SocketAddr,
    state: Arc<Mutex<ProxyState>>,
}

#[derive(Default)]
struct ProxyState {
    accepting: Option<tokio::task::JoinHandle<()>>,
    connections: Vec<tokio::task::JoinHandle<()>>,
    /// The local ports of the proxy's connections to PostgreSQL: their `client_port` in
    /// `pg_stat_activity`.
    upstream_ports: Vec<u16>,
}

impl PgProxy {
    /// A proxy to the database of `database_url`, accepting.
    async fn start(database_url: &str) -> PgProxy {
        let mut url = reqwest::Url::parse(database_url).unwrap();
        let host = url.host_str().unwrap().to_owned();
        let upstream = tokio::net::lookup_host((host.as_str(), url.port().unwrap_or(5432)))
            .await
            .unwrap()
            .next()
            .unwrap();
        let port = common::free_port();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(port)).unwrap();
        let proxy = PgProxy { url: url.to_string(), port, upstream, state: Arc::default() };
        proxy.resume();
        proxy
    }

    /// Accept connections again, on the same port.
    fn resume(&self) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], self.port).into()).unwrap();
        let listener = socket.listen(128).unwrap();
        let (state, upstream) = (self.state.clone(), self.upstream);
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                let recorded = state.clone();
                let connection = tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    if let Ok(local) = server.local_addr() {
                        recorded.lock().unwrap().upstream_ports.push(local.port());
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                state.lock().unwrap().connections.push(connection);
            }
        });
        self.state.lock().unwrap().accepting = Some(accepting);
    }

    /// The database "goes down": the port refuses connections and every open one is cut.
    async fn stop(&self) {
        let (accepting, connections) = {
            let mut state = self.state.lock().unwrap();
            (state.accepting.take(), std::mem::take(&mut state.connections))
        };
        for task in accepting.into_iter().chain(connections) {
            task.abort();
            let _ = task.await;
        }
    }

    fn upstream_ports(&self) -> Vec<u16> {
        self.state.lock().unwrap().upstream_ports.clone()
    }
}

/// A request timeout of 5 s: no answer may take longer (with slack for a loaded machine).
const REQUEST_TIMEOUT_BOUND: Duration = Duration::from_millis(6_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_answers_503_database_unavailable_and_writes_resume_when_it_is_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(db) = TestDb::new(Backend::Postgres, "hardening_outage").await else { return };
    db.store.close().await;
    let proxy = PgProxy::start(&db.url).await;
    let (server, key) = Running::start_on(temp_dir("pg-outage"), &proxy.url, &["--request-timeout", "5s"]);
    let (base, http) = (server.base(), client());
    let before = post_fault(&http, &base, &key, "dev_before", 10).await;
    let before_id = before.id().unwrap_or_else(|| panic!("{before:?}")).to_owned();

    let (stop, writer) = start_writing(&http, &base, &key).await;

    // A live stream held open across the outage.
    let mut live =
        stream_client().get(format!("{base}/fault/stream")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(live.status(), 200);

    proxy.stop().await;
    let stopped = Instant::now();
    // Writes, reads and the readiness probe answer 503 within the request timeout.
    let during = post_fault(&http, &base, &key, "dev_during", 10).await;
    if let Err(wrong) = during.unavailable_as("database_unavailable") {
        panic!("POST /fault with the database down: {wrong}");
    }
    assert!(during.took() <= REQUEST_TIMEOUT_BOUND, "POST /fault answered after {:?}", during.took());
    let started = Instant::now();
    let read = http.get(format!("{base}/fault/{before_id}")).bearer_auth(&key).send().await.unwrap();
    assert_unavailable_as(read, "database_unavailable", "GET /fault/{id} with the database down").await;
    assert!(
        started.elapsed() <= REQUEST_TIMEOUT_BOUND,
        "GET /fault/{{id}} answered after {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_unavailable_as(ready, "database_unavailable", "/readyz with the database down").await;
    assert!(started.elapsed() <= REQUEST_TIMEOUT_BOUND, "/readyz answered after {:?}", started.elapsed());
    tokio::time::sleep_until((stopped + Duration::from_secs(2)).into()).await;

    proxy.resume();
    let restarted = Instant::now();
    let mut probes = Vec::new();
    let healed = loop {
        let probe = post_fault(&http, &base, &key, &format!("dev_after-{}", probes.len()), 10).await;
        let answered = probe.answered;
        let done = probe.id().is_some();
        assert!(
            done || Instant::now() < restarted + Duration::from_secs(5),
            "writes still fail 5 s after the database came back: {probe:?}"
        );
        probes.push(probe);
        if done {
            break answered;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A probe sent just before the 5 s mark may be answered a little after it.
    assert!(healed - restarted <= Duration::from_secs(6), "writes resumed {:?} after", healed - restarted);
    // The stream resumes by itself (its tailer and LISTEN reconnect): what is written after the
    // outage reaches the client that stayed connected through it.
    let healed_id = probes.last().and_then(|p| p.id()).expect("the healing write").to_owned();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(&healed_id) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, live.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the stream open across the outage did not deliver {healed_id}: {other:?}"),
        }
    }
    drop(live);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = writer.await.unwrap();

    let mut ids = vec![before_id];
    let mut failed_during_outage = 0;
    for outcome in outcomes.iter().chain(&probes) {
        assert!(outcome.took() <= REQUEST_TIMEOUT_BOUND, "answered after {:?}: {outcome:?}", outcome.took());
        if let Some(id) = outcome.id() {
            ids.push(id.to_owned());
            continue;
        }
        // Sent once the database was down and answered before it was back: it was unreachable
        // all along. Others straddle the cut or the return (a commit cut off, for example).
        let inside = outcome.sent >= stopped + Duration::from_millis(500) && outcome.answered < restarted;
        let verdict =
            if inside { outcome.unavailable_as("database_unavailable") } else { outcome.unavailable() };
        if let Err(wrong) = verdict {
            panic!("the writer, around the outage: {wrong}");
        }
        failed_during_outage += usize::from(inside);
        assert!(outcome.sent < healed, "a write failed after writes had resumed: {outcome:?}");
    }
    assert!(failed_during_outage > 0, "the writer sent nothing during the outage: the test proved nothing");
    assert_all_readable(&http, &base, &key, &ids).await;
    // The outage ends at the first success after two quiet seconds.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(get_status(&http, &format!("{base}/readyz"), "").await, 200);

    let stderr = server.stop();
    assert_outage_logged_once(&stderr, "database unavailable");
    proxy.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sessions_terminated_under_the_server_are_replaced_at_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(db) = TestDb::new(Backend::Postgres, "hardening_terminate").await else { return };
    db.store.close().await;
    // The proxy stays up: it only tells the server's sessions from everyone else's.
    let proxy = PgProxy::start(&db.url).await;
    let (server, key) = Running::start_on(temp_dir("pg-terminate"), &proxy.url, &["--request-timeout", "5s"]);
    let (base, http) = (server.base(), client());
    let (stop, writer) = start_writing(&http, &base, &key).await;

    let ports: Vec<i32> = proxy.upstream_ports().into_iter().map(i32::from).collect();
    let admin_url = std::env::var(faultline_store::testing::POSTGRES_URL_VAR).unwrap();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await.unwrap();
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity \
         WHERE client_port = ANY($1) AND pid <> pg_backend_pid()) t WHERE done",
    )
    .bind(&ports)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(terminated > 0, "no session of the server found among {ports:?}");

    // At once: the next write and reads are answered as if nothing had happened.
    let after = post_fault(&http, &base, &key, "dev_after", 10).await;
    let id = after.id().unwrap_or_else(|| panic!("the first write after the sessions ended: {after:?}"));
    assert_eq!(get_status(&http, &format!("{base}/fault/{id}"), &key).await, 200);
    assert_eq!(get_status(&http, &format!("{base}/fault"), &key).await, 200);
    let mut ids = vec![id.to_owned()];

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for outcome in writer.await.unwrap() {
        assert!(outcome.took() <= REQUEST_TIMEOUT_BOUND, "answered after {:?}: {outcome:?}", outcome.took());
        match outcome.id() {
            Some(id) => ids.push(id.to_owned()),
            // A write whose session ended under it may fail, in the envelope, nothing written.
            None => {
                if let Err(wrong) = outcome.unavailable() {
                    panic!("the writer, as its sessions ended: {wrong}");
                }
            }
        }
    }
    assert_all_readable(&http, &base, &key, &ids).await;
    let stderr = server.stop();
    assert_log_clean(&stderr, "the server whose sessions were terminated");
    use sqlx::Connection;
    admin.close().await.ok();
    proxy.stop().await;
    db.cleanup().await;
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = temp_dir("tmpfs");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            std::fs::remove_dir(&dir).ok();
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        std::fs::remove_dir(&self.dir).ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_503_storage_full_keeps_reads_and_heals_when_space_returns() {
    const TEST: &str = "a_full_disk_refuses_writes_with_503_storage_full";
    let _one = ONE_AT_A_TIME.lock().await;
    let disk = match Tmpfs::mount("8m") {
        Ok(disk) => disk,
        Err(why) => return skip(TEST, &why),
    };
    // Most of the disk is taken before the server starts: the database fills the rest soon.
    let filler = disk.dir.join("filler");
    std::fs::write(&filler, vec![0x5a; 6 * 1024 * 1024]).unwrap();
    let db_file = disk.dir.join("faultline.db");
    let (server, key) =
        Running::start_on(temp_dir("disk-full"), &format!("sqlite://{}", db_file.display()), &[]);
    let (base, http) = (server.base(), client());

    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for n in 0..5_000 {
        let outcome = post_fault(&http, &base, &key, &format!("dev_fill-{n}"), 1_900).await;
        if let Some(id) = outcome.id() {
            acknowledged.push((id.to_owned(), outcome.resource.clone()));
            continue;
        }
        if let Err(wrong) = outcome.unavailable_as("storage_full") {
            panic!("write {n} on a filling disk: {wrong}");
        }
        refused.push(outcome.resource);
        break;
    }
    assert!(!refused.is_empty(), "5000 writes of 2 KB fit on a disk with 2 MB free");
    assert!(!acknowledged.is_empty(), "no write fitted at all");

    // Reads keep answering; writes keep being refused while the disk is full.
    assert_eq!(get_status(&http, &format!("{base}/fault"), &key).await, 200, "GET /fault on a full disk");
    for (id, _) in [acknowledged.first().unwrap(), acknowledged.last().unwrap()] {
        assert_eq!(
            get_status(&http, &format!("{base}/fault/{id}"), &key).await,
            200,
            "GET /fault/{id}, disk full"
        );
    }
    // For longer than the detector's period (5 s), whose writes change nothing and so commit
    // even on a full disk: the outage must not end and begin again around them.
    for n in 0..14 {
        let outcome = post_fault(&http, &base, &key, &format!("dev_still_full-{n}"), 1_900).await;
        if let Err(wrong) = outcome.unavailable_as("storage_full") {
            panic!("a write on the full disk: {wrong}");
        }
        refused.push(outcome.resource);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(get_status(&http, &format!("{base}/healthz"), "").await, 200);

    // Space comes back: writes resume without a restart.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut n = 0;
    loop {
        let outcome = post_fault(&http, &base, &key, &format!("dev_freed-{n}"), 1_900).await;
        n += 1;
        if let Some(id) = outcome.id() {
            acknowledged.push((id.to_owned(), outcome.resource.clone()));
            break;
        }
        if let Err(wrong) = outcome.unavailable_as("storage_full") {
            panic!("a write once space was freed: {wrong}");
        }
        refused.push(outcome.resource);
        assert!(freed.elapsed() < Duration::from_secs(5), "writes still refused 5 s after space was freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for m in 0..5 {
        let outcome = post_fault(&http, &base, &key, &format!("dev_after-{m}"), 1_900).await;
        let id = outcome.id().unwrap_or_else(|| panic!("a write after the disk healed: {outcome:?}"));
        acknowledged.push((id.to_owned(), outcome.resource.clone()));
    }
    // The outage ends at the first write after two quiet seconds.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let outcome = post_fault(&http, &base, &key, "dev_quiet", 1_900).await;
    let id = outcome.id().unwrap_or_else(|| panic!("a write after a quiet spell: {outcome:?}"));
    acknowledged.push((id.to_owned(), outcome.resource.clone()));
    let stderr = server.stop();

    // The file is sound; every acknowledged write is in it, and no refused one.
    let conn =
        rusqlite::Connection::open_with_flags(&db_file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let verdict: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(verdict, ["ok"]);
    let stored: std::collections::HashMap<String, String> = conn
        .prepare("SELECT id, resource_id FROM faults")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (id, resource) in &acknowledged {
        assert_eq!(stored.get(id), Some(resource), "the acknowledged fault {id} is in the database");
    }
    let written: std::collections::HashSet<&str> = stored.values().map(String::as_str).collect();
    for resource in &refused {
        assert!(!written.contains(resource.as_str()), "the write of {resource} answered 503 but was stored");
    }
    eprintln!("disk full after {} writes; {} refused", acknowledged.len() - 6, refused.len());
    assert_outage_logged_once(&stderr, "storage full");
    drop(conn);
    drop(disk);
}

// ---------------------------------------------------------------------------------------------
// Start-up mistakes

struct Exit {
    code: Option<i32>,
    stderr: String,
}

/// Run `faultline args` in `dir` with only `env` of the `FAULTLINE_*` variables; it must exit
/// within 20 s.
fn run_faultline(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Exit {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("FAULTLINE_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("faultline {args:?} did not exit within 20 s: {}", reader.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Exit { code: status.code(), stderr: reader.join().unwrap() }
}

/// `faultline` exited with `code` and one line on stderr naming one of `names` (if any).
fn assert_one_line(exit: &Exit, code: i32, names: &[&str], what: &str) {
    let lines: Vec<&str> = exit.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(exit.code, Some(code), "{what}: exit code; stderr: {lines:#?}");
    assert!(
        !exit.stderr.contains("panicked") && !exit.stderr.to_lowercase().contains("backtrace"),
        "{what}: a panic: {}",
        exit.stderr
    );
    assert_eq!(lines.len(), 1, "{what}: one line on stderr, not {lines:#?}");
    assert!(
        names.is_empty() || names.iter().any(|n| lines[0].contains(n)),
        "{what}: the line names {names:?}: {}",
        lines[0]
    );
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn start_up_mistakes_end_in_one_line_and_an_exit_code() {
    // The port is taken: nothing is created.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let dir = temp_dir("port-taken");
    let exit =
        run_faultline(&dir, &["serve", "--listen", &listen, "--database-url", "sqlite://faultline.db"], &[]);
    assert_one_line(&exit, 1, &["--listen"], "serve on a port in use");
    assert!(entries(&dir).is_empty(), "serve on a port in use created {:?}", entries(&dir));
    drop(taken);

    // A database URL that is not one.
    let dir = temp_dir("bad-url");
    for url in ["mysql://db/faults", "postgres://postgres@127.0.0.1:notaport/test", "faultline.db"] {
        let exit = run_faultline(&dir, &["serve", "--listen", "127.0.0.1:0", "--database-url", url], &[]);
        assert_one_line(&exit, 2, &["--database-url"], &format!("serve --database-url {url}"));
    }
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));

    // A data directory that cannot be made (root may write anywhere, but not under a file).
    let file = dir.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let under_a_file = format!("sqlite://{}/sub/faultline.db", file.display());
    for url in [under_a_file.as_str(), "sqlite:///proc/faultline-nowhere/faultline.db"] {
        let exit = run_faultline(&dir, &["serve", "--listen", "127.0.0.1:0", "--database-url", url], &[]);
        assert_one_line(&exit, 1, &["--database-url"], &format!("serve --database-url {url}"));
    }

    // A setting that does not parse, as a flag or in the environment.
    let serve = ["serve", "--listen", "127.0.0.1:0", "--database-url", "sqlite://faultline.db"];
    for (flag, setting) in [
        ("--header-timeout", "header_timeout"),
        ("--idle-timeout", "idle_timeout"),
        ("--shutdown-grace", "shutdown_grace"),
    ] {
        let exit = run_faultline(&dir, &[&serve[..], &[flag, "banana"]].concat(), &[]);
        assert_one_line(&exit, 2, &[flag, setting], &format!("serve {flag} banana"));
    }
    let exit = run_faultline(&dir, &serve, &[("FAULTLINE_HEADER_TIMEOUT", "banana")]);
    assert_one_line(
        &exit,
        2,
        &["FAULTLINE_HEADER_TIMEOUT", "--header-timeout", "header_timeout"],
        "env banana",
    );
    // Numbers are parsed by the argument parser, whose message adds a hint line.
    for flag in ["--max-connections", "--max-concurrent-requests", "--body-min-rate"] {
        let exit = run_faultline(&dir, &[&serve[..], &[flag, "lots"]].concat(), &[]);
        assert_eq!(exit.code, Some(2), "serve {flag} lots: {}", exit.stderr);
        let first = exit.stderr.lines().next().unwrap_or_default();
        assert!(first.contains(flag), "serve {flag} lots: the first line names it: {}", exit.stderr);
        assert!(!exit.stderr.contains("panicked"), "{}", exit.stderr);
    }
    assert!(!dir.join("faultline.db").exists(), "a refused configuration created the database");
}

#[test]
fn sigterm_during_start_up_ends_in_a_clean_stop() {
    use std::io::BufRead;
    let dir = temp_dir("sigterm-start-up");
    // A new database with --demo: the history loads after the key is printed and before the
    // server serves, long enough in a debug build to send SIGTERM into.
    let mut child = Command::new(BIN)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--database-url", "sqlite://faultline.db"])
        .current_dir(&dir)
        .env_remove("FAULTLINE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("created customer") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the server ended before creating its database");
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let rest = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit 60 s after SIGTERM during start-up");
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = rest.join().unwrap();
    assert_eq!(exit.code(), Some(0), "SIGTERM during start-up: {exit:?}\n{text}");
    assert!(text.contains("faultline stopped"), "{text}");
}
