//! The command-line client (`faultline faults …`, `faultline sites …`) as a person runs it: a
//! real `faultline serve`, a customer and keys made with `faultline customers create` and
//! `faultline keys create`, a site named by its heartbeat, faults created through the API, and
//! the client's output checked against the API's own answers. SQLite and PostgreSQL (skipped
//! without `FAULTLINE_TEST_POSTGRES_URL`).

use std::process::{Command, Output};

use faultline_store::Backend;
use faultline_store::testing::TestDb;
use serde_json::{Value, json};

mod common;
use common::{BIN, Server};

/// A service with one customer, two keys of its own and three faults: one on a site named by
/// its heartbeat ("Lyon"), one on a site without a name, one on no site at all.
struct Fixture {
    db: TestDb,
    server: Server,
    /// May do everything.
    key: String,
    /// `faults:read` only.
    read_key: String,
    http: reqwest::Client,
    /// The fault on the named site ("Lyon"), the unnamed site's, and the one on no site.
    named: String,
    unnamed: String,
    siteless: String,
}

const LYON: &str = "site_lyon7Kq2";
const NANTES: &str = "site_nantes9Xw4";

/// `faultline ARGS` against the fixture's database (the administrative commands).
fn admin(db: &TestDb, args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).args(["--database-url", &db.url]).output().unwrap();
    assert!(out.status.success(), "faultline {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Fixture {
    async fn new(backend: Backend, test: &str) -> Option<Fixture> {
        let db = TestDb::new(backend, test).await?;
        db.store.close().await;
        let (server, _admin_key) = Server::start(&db.url, &[]);
        let customer = admin(&db, &["customers", "create", "--name", "Acme Networks"]);
        assert!(customer.starts_with("cus_"), "{customer}");
        let key =
            admin(&db, &["keys", "create", "--customer", &customer, "--permissions", "all", "--name", "noc"]);
        let read_key = admin(
            &db,
            &["keys", "create", "--customer", &customer, "--permissions", "faults:read", "--name", "viewer"],
        );
        let http = reqwest::Client::new();
        let mut fixture = Fixture {
            db,
            server,
            key,
            read_key,
            http,
            named: String::new(),
            unnamed: String::new(),
            siteless: String::new(),
        };
        fixture.post("/heartbeat", json!({"site_id": LYON, "name": "Lyon"})).await;
        fixture.post("/heartbeat", json!({"site_id": NANTES})).await;
        fixture.siteless = fixture
            .create_fault(json!({"resource_id": "dev_lab1", "type": "reboot", "severity": "LOW",
                "message": "Lab router rebooted"}))
            .await;
        fixture.unnamed = fixture
            .create_fault(json!({"resource_id": "dev_nantes_rtr1", "type": "wan-degradation",
                "severity": "WARNING", "message": "Packet loss 3.2% on the Nantes uplink",
                "resource_ancestry_path": format!("{NANTES}|dev_nantes_rtr1")}))
            .await;
        fixture.named = fixture
            .create_fault(json!({"resource_id": "tun_lyon_paris", "type": "wantunnel",
                "severity": "CRITICAL", "message": "Tunnel Lyon to Paris down: IKE peer 198.51.100.7 not \
                 responding (DPD timeout 30 s), BFD session down after 3 missed probes",
                "cause": "carrier outage",
                "resource_ancestry_path": format!("{LYON}|dev_lyon_rtr1|tun_lyon_paris")}))
            .await;
        Some(fixture)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.server.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await;
        let response = response.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(status.is_success(), "POST {path}: {status} {answer}");
        answer
    }

    async fn create_fault(&self, body: Value) -> String {
        self.post("/fault", body).await["id"].as_str().unwrap().to_owned()
    }

    /// The API's answer to `GET path`, as text.
    async fn get(&self, path: &str) -> String {
        let response =
            self.http.get(format!("{}{path}", self.server.base)).bearer_auth(&self.key).send().await;
        let response = response.unwrap();
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.text().await.unwrap()
    }

    /// `faultline ARGS` with the URL and the key in the environment, as a person sets them once.
    fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_key(&self.key, args)
    }

    fn cli_with_key(&self, key: &str, args: &[&str]) -> Output {
        let out = Command::new(BIN)
            .args(args)
            .env("FAULTLINE_URL", &self.server.base)
            .env("FAULTLINE_KEY", key)
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        for secret in [&self.key, &self.read_key] {
            assert!(
                !stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
                "a key was printed"
            );
        }
        out
    }

    /// Requests the service has answered, by method and route template (`/metrics`).
    async fn requests(&self, method: &str, route: &str) -> u64 {
        let text = self.http.get(format!("{}/metrics", self.server.base)).send().await.unwrap();
        let text = text.text().await.unwrap();
        let (method, route) = (format!("method=\"{method}\""), format!("route=\"{route}\""));
        text.lines()
            .filter(|l| {
                l.starts_with("faultline_http_requests_total{") && l.contains(&method) && l.contains(&route)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    async fn finish(self) {
        let stderr = self.server.stop();
        assert!(!stderr.contains(&self.key) && !stderr.contains(&self.read_key));
        self.db.cleanup().await;
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The table's line that contains `text`.
fn row<'a>(table: &'a str, text: &str) -> &'a str {
    table.lines().find(|l| l.contains(text)).unwrap_or_else(|| panic!("no row with {text:?} in\n{table}"))
}

async fn list_table_shows_site_names(backend: Backend, test: &str) {
    let Some(f) = Fixture::new(backend, test).await else { return };
    let table = stdout(&f.cli(&["faults", "list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three faults:\n{table}");
    assert!(lines[0].starts_with("site"), "{table}");
    for column in ["severity", "status", "type", "resource", "created_at", "duration", "message"] {
        assert!(lines[0].contains(column), "no {column} column:\n{table}");
    }
    // Newest first: the named site's fault, the unnamed site's, the one without a site.
    let lyon = row(&table, "Tunnel Lyon");
    assert!(lyon.starts_with("Lyon "), "the site's name, not its id: {lyon}");
    assert!(!lyon.contains(LYON), "{lyon}");
    assert!(lyon.contains("CRITICAL") && lyon.contains("unresolved") && lyon.contains("wantunnel"), "{lyon}");
    assert!(lyon.ends_with('…'), "the long message is cut: {lyon}");
    assert!(row(&table, "Packet loss").starts_with(&format!("{NANTES} ")), "no name: the id\n{table}");
    assert!(row(&table, "Lab router").starts_with("– "), "no site: a dash\n{table}");
    for line in &lines {
        assert!(line.chars().count() <= 120, "{} columns: {line}", line.chars().count());
    }
    // Filters reach the API.
    let critical = stdout(&f.cli(&["faults", "list", "--severity", "critical"]));
    assert_eq!(critical.lines().count(), 2, "{critical}");
    let by_site = stdout(&f.cli(&["faults", "list", "--site", NANTES, "--status", "unresolved"]));
    assert_eq!(by_site.lines().count(), 2, "{by_site}");
    assert!(by_site.contains("Packet loss"), "{by_site}");
    let by_text = stdout(&f.cli(&["faults", "list", "--q", "REBOOTED", "--type", "reboot"]));
    assert_eq!(by_text.lines().count(), 2, "{by_text}");
    // --wide: the ids, to act on.
    let wide = stdout(&f.cli(&["faults", "list", "--wide"]));
    assert!(row(&wide, "Tunnel Lyon").starts_with(&format!("{}  Lyon ", f.named)), "{wide}");
    // The one-fault view names the site too.
    let detail = stdout(&f.cli(&["faults", "get", &f.named]));
    assert!(detail.contains(&format!("site          Lyon ({LYON})\n")), "{detail}");
    f.finish().await;
}

async fn list_json_is_the_apis_answer(backend: Backend, test: &str) {
    let Some(f) = Fixture::new(backend, test).await else { return };
    // One page: the API's bytes, unchanged, and one request (no lookup of site names: the
    // faults carry them). Its speed budget is bench/console.sh's, not a timed test's.
    let (before, sites_before) = (f.requests("GET", "/fault").await, f.requests("GET", "/sites").await);
    let printed = stdout(&f.cli(&["faults", "list", "--output", "json"]));
    assert_eq!(f.requests("GET", "/fault").await - before, 1, "one request for one page");
    assert_eq!(f.requests("GET", "/sites").await, sites_before, "no site lookups");
    let api = f.get("/fault?limit=50").await;
    assert_eq!(printed.trim_end(), api.trim_end(), "the API's answer, unchanged");
    let parsed: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(parsed["meta"]["count"], 3);
    let printed =
        stdout(&f.cli(&["faults", "list", "--output", "json", "--severity", "WARNING,low", "--limit", "1"]));
    let api = f.get("/fault?severity=WARNING,LOW&limit=1").await;
    assert_eq!(
        serde_json::from_str::<Value>(&printed).unwrap(),
        serde_json::from_str::<Value>(&api).unwrap()
    );

    // More than a page: 130 more faults, read 100 at a time.
    let events: Vec<Value> = (0..130)
        .map(|i| {
            json!({"action": "trigger", "resource_id": format!("tun_bulk{i}"), "type": "wantunnel",
                   "severity": "HIGH", "message": format!("bulk {i}"),
                   "resource_ancestry_path": format!("{LYON}|tun_bulk{i}")})
        })
        .collect();
    f.post("/fault/events", json!({"events": events})).await;
    let mut all: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/fault?limit=100".to_owned(),
            Some(c) => format!("/fault?limit=100&cursor={c}"),
        };
        let page: Value = serde_json::from_str(&f.get(&path).await).unwrap();
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["meta"]["cursor"].as_str() {
            Some(c) if page["meta"]["has_more"] == true => cursor = Some(c.to_owned()),
            _ => break,
        }
    }
    assert_eq!(all.len(), 133);

    let before = f.requests("GET", "/fault").await;
    let printed = stdout(&f.cli(&["faults", "list", "--output", "json", "--limit", "500"]));
    assert_eq!(f.requests("GET", "/fault").await - before, 2, "two pages, two requests");
    let combined: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(combined["data"].as_array().unwrap(), &all, "every fault, as the API wrote it, in order");
    assert_eq!(combined["meta"]["count"], 133);
    assert_eq!(combined["meta"]["has_more"], false);

    // Stopped by --limit inside the second page: the cursor goes on after the last one printed.
    let printed = stdout(&f.cli(&["faults", "list", "--output", "json", "--limit", "120"]));
    let combined: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(combined["data"].as_array().unwrap(), &all[..120]);
    assert_eq!(combined["meta"]["count"], 120);
    assert_eq!(combined["meta"]["has_more"], true);
    let cursor = combined["meta"]["cursor"].as_str().unwrap();
    let rest: Value =
        serde_json::from_str(&f.get(&format!("/fault?limit=100&cursor={cursor}")).await).unwrap();
    assert_eq!(rest["data"].as_array().unwrap(), &all[120..]);

    // The table over two pages: a header and 120 faults, and a word on stderr that more match.
    let out = f.cli(&["faults", "list", "--limit", "120"]);
    assert_eq!(stdout(&out).lines().count(), 121);
    assert!(stderr(&out).contains("more match"), "{}", stderr(&out));
    f.finish().await;
}

async fn get_resolve_and_comment(backend: Backend, test: &str) {
    let Some(f) = Fixture::new(backend, test).await else { return };
    // get: the fields one a line, the message whole.
    let detail = stdout(&f.cli(&["faults", "get", &f.named]));
    assert!(detail.starts_with(&format!("id            {}\n", f.named)), "{detail}");
    for line in [
        "severity      CRITICAL\n",
        "status        unresolved\n",
        "type          wantunnel\n",
        "resource      tun_lyon_paris\n",
        "cause         carrier outage\n",
        "resolved_at   –\n",
        "comments (0)\n",
    ] {
        assert!(detail.contains(line), "no {line:?} in\n{detail}");
    }
    assert!(detail.contains("BFD session down after 3 missed probes\n"), "the whole message:\n{detail}");
    let json = stdout(&f.cli(&["faults", "get", &f.named, "--output", "json"]));
    assert_eq!(json.trim_end(), f.get(&format!("/fault/{}", f.named)).await);

    // comment
    let commented = stdout(&f.cli(&["faults", "comment", &f.named, "Carrier ticket 4411 opened"]));
    assert!(commented.contains("comments (1)\n"), "{commented}");
    assert!(commented.contains("    Carrier ticket 4411 opened\n"), "{commented}");

    // resolve --comment: resolved, with the comment, in one step.
    let resolved = f.cli(&[
        "faults",
        "resolve",
        &f.named,
        "--comment",
        "Carrier restored the circuit",
        "--output",
        "json",
    ]);
    let resolved: Value = serde_json::from_str(&stdout(&resolved)).unwrap();
    assert_eq!(resolved["status"], "resolved");
    let fault: Value = serde_json::from_str(&f.get(&format!("/fault/{}", f.named)).await).unwrap();
    assert_eq!(fault["status"], "resolved");
    assert!(fault["resolved_at"].is_string());
    let comments: Vec<&str> =
        fault["comments"].as_array().unwrap().iter().map(|c| c["comment"].as_str().unwrap()).collect();
    assert_eq!(comments, ["Carrier ticket 4411 opened", "Carrier restored the circuit"]);
    assert_eq!(resolved, fault, "resolve prints the resolved fault");

    // resolve without a comment, in a table; the list shows it resolved.
    let detail = stdout(&f.cli(&["faults", "resolve", &f.unnamed]));
    assert!(detail.contains("status        resolved\n"), "{detail}");
    assert!(!detail.contains("resolved_at   –"), "{detail}");
    let table = stdout(&f.cli(&["faults", "list", "--status", "resolved"]));
    assert_eq!(table.lines().count(), 3, "{table}");

    // An unknown fault: the API's message and code on stderr, exit 1.
    let out = f.cli(&["faults", "get", "flt_31pkd1t8FvW7qZv0jG2a9kH5mB1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr(&out), "error: The requested resource does not exist. (resource_not_found)\n");
    let out = f.cli(&["faults", "resolve", "flt_31pkd1t8FvW7qZv0jG2a9kH5mB1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("(resource_not_found)"), "{}", stderr(&out));
    f.finish().await;
}

async fn sites_list(backend: Backend, test: &str) {
    let Some(f) = Fixture::new(backend, test).await else { return };
    let table = stdout(&f.cli(&["sites", "list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["name", "id", "status", "last_heartbeat", "open_faults"]
    );
    assert_eq!(lines.len(), 3, "two sites:\n{table}");
    // By name, else id: "Lyon" before "site_nantes…".
    let lyon: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&lyon[..3], ["Lyon", LYON, "online"], "{table}");
    assert!(lyon[5].starts_with('(') && lyon[6] == "ago)", "a last heartbeat, and how long ago: {table}");
    assert_eq!(lyon.last(), Some(&"1"), "one open fault: {table}");
    let nantes: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&nantes[..3], [NANTES, NANTES, "online"], "no name: the id\n{table}");

    let json = stdout(&f.cli(&["sites", "list", "--output", "json"]));
    let api = f.get("/sites?limit=50").await;
    assert_eq!(json.trim_end(), api.trim_end());
    let parsed: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["data"][0]["name"], "Lyon");

    let filtered = stdout(&f.cli(&["sites", "list", "--q", "lyon", "--status", "online", "--limit", "5"]));
    assert_eq!(filtered.lines().count(), 2, "{filtered}");
    let none = stdout(&f.cli(&["sites", "list", "--status", "offline"]));
    assert_eq!(none.lines().count(), 1, "the header alone: {none}");
    f.finish().await;
}

#[tokio::test]
async fn errors_and_usage_sqlite() {
    errors_and_usage(Backend::Sqlite, "client_errors_sqlite").await;
}

#[tokio::test]
async fn errors_and_usage_postgres() {
    errors_and_usage(Backend::Postgres, "client_errors_postgres").await;
}

/// Usage errors exit 2, refusals and an unreachable service exit 1, and no key is ever printed.
async fn errors_and_usage(backend: Backend, test: &str) {
    let Some(f) = Fixture::new(backend, test).await else { return };
    // A key that may only read: the API's refusal, its code, exit 1.
    let out = f.cli_with_key(&f.read_key, &["faults", "resolve", &f.named]);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(message.starts_with("error: ") && message.contains("(permission_denied)"), "{message}");
    // A wrong key.
    let out = f.cli_with_key("flk_not-a-key", &["faults", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("(api_key_invalid)"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("flk_not-a-key"));
    // The key as a flag, the URL as a flag.
    let out = Command::new(BIN)
        .args(["faults", "list", "--url", &f.server.base, "--key", &f.key, "--limit", "1"])
        .env_remove("FAULTLINE_KEY")
        .env_remove("FAULTLINE_URL")
        .output()
        .unwrap();
    assert_eq!(stdout(&out).lines().count(), 2);

    let bare = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env_remove("FAULTLINE_KEY")
            .env("FAULTLINE_URL", &f.server.base)
            .output()
            .unwrap()
    };
    // No key: a usage error.
    let out = bare(&["faults", "list"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("--key"), "{}", stderr(&out));
    let out = bare(&["faults", "list", "--key", ""]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // Flags clap does not know, or values it refuses.
    for args in [
        &["faults", "list", "--key", "k", "--colour"][..],
        &["faults", "list", "--key", "k", "--limit", "0"],
        &["faults", "list", "--key", "k", "--output", "yaml"],
        &["faults", "get", "--key", "k"],
        &["faults", "get", "", "--key", "k"],
        &["faults", "comment", "flt_1", "--key", "k"],
        &["sites", "list", "--key", "k", "--severity", "HIGH"],
        &["faults", "frobnicate", "--key", "k"],
    ] {
        let out = bare(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let out = bare(&["faults", "list", "--key", "k", "--url", "localhost:8080"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("--url"), "{}", stderr(&out));
    // Help shows where the key comes from, never its value.
    let out =
        Command::new(BIN).args(["faults", "list", "--help"]).env("FAULTLINE_KEY", &f.key).output().unwrap();
    let help = stdout(&out);
    assert!(help.contains("FAULTLINE_KEY") && !help.contains(&f.key), "{help}");

    // Nothing listening: a clear message, exit 1.
    let port = common::free_port();
    let out = Command::new(BIN)
        .args(["faults", "list", "--url", &format!("http://127.0.0.1:{port}")])
        .env("FAULTLINE_KEY", &f.key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let message = stderr(&out);
    assert!(message.starts_with(&format!("error: cannot connect to http://127.0.0.1:{port}")), "{message}");
    assert!(!message.contains(&f.key));
    f.finish().await;
}

#[tokio::test]
async fn list_table_shows_site_names_sqlite() {
    list_table_shows_site_names(Backend::Sqlite, "client_table_sqlite").await;
}

#[tokio::test]
async fn list_table_shows_site_names_postgres() {
    list_table_shows_site_names(Backend::Postgres, "client_table_postgres").await;
}

#[tokio::test]
async fn list_json_is_the_apis_answer_sqlite() {
    list_json_is_the_apis_answer(Backend::Sqlite, "client_json_sqlite").await;
}

#[tokio::test]
async fn list_json_is_the_apis_answer_postgres() {
    list_json_is_the_apis_answer(Backend::Postgres, "client_json_postgres").await;
}

#[tokio::test]
async fn get_resolve_and_comment_sqlite() {
    get_resolve_and_comment(Backend::Sqlite, "client_get_sqlite").await;
}

#[tokio::test]
async fn get_resolve_and_comment_postgres() {
    get_resolve_and_comment(Backend::Postgres, "client_get_postgres").await;
}

#[tokio::test]
async fn sites_list_sqlite() {
    sites_list(Backend::Sqlite, "client_sites_sqlite").await;
}

#[tokio::test]
async fn sites_list_postgres() {
    sites_list(Backend::Postgres, "client_sites_postgres").await;
}
