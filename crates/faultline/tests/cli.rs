//! The `faultline` binary as an operator uses it: first start, keys, config, shutdown.

use std::path::{Path, PathBuf};
use std::process::Command;

use faultline_store::Backend;
use faultline_store::testing::TestDb;

mod common;
use common::{BIN, Server};

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("faultline-cli-{name}-{}", faultline_core::ids::random_base62(8)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn faultline(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).current_dir(dir).env_remove("FAULTLINE_DATABASE_URL").output().unwrap()
}

async fn status(base: &str, path: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn first_start_creates_the_database_and_prints_an_admin_key_once() {
    let dir = temp_dir("first-start");
    let (server, key) = Server::start_in(&dir, "sqlite://faultline.db", &[]);
    assert!(dir.join("faultline.db").exists(), "the database file is created in the working directory");
    let key = key.expect("the admin key on stdout");
    assert!(key.starts_with("flk_") && !key.contains(' '), "the key alone: {key}");
    assert_eq!(status(&server.base, "/healthz", &key).await, 200);
    assert_eq!(status(&server.base, "/whoami", &key).await, 200);
    assert_eq!(status(&server.base, "/whoami", "flk_wrong").await, 401);
    let stderr = server.stop();
    assert!(stderr.contains("created customer cus_"), "{stderr}");
    assert!(!stderr.contains(&key), "the secret never reaches the log");
    assert!(stderr.contains("route=/whoami"), "requests are logged by route template: {stderr}");

    // A second start on the same database creates nothing and prints no key.
    let (server, second) = Server::start_in(&dir, "sqlite://faultline.db", &[]);
    assert_eq!(second, None);
    assert_eq!(status(&server.base, "/whoami", &key).await, 200);
    server.stop();
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_from_the_command_line() {
    let dir = temp_dir("keys");
    let (server, admin) = Server::start_in(&dir, "sqlite://keys.db", &[]);
    admin.expect("admin key");
    let url = "sqlite://keys.db";
    let customer = faultline(&dir, &["customers", "create", "--name", "Globex", "--database-url", url]);
    assert!(customer.status.success(), "{customer:?}");
    let customer_id = String::from_utf8(customer.stdout).unwrap().trim().to_owned();
    assert!(customer_id.starts_with("cus_"), "{customer_id}");

    let created = faultline(
        &dir,
        &[
            "keys",
            "create",
            "--customer",
            &customer_id,
            "--permissions",
            "faults:read,tokens:write",
            "--rate-limit",
            "5",
            "--database-url",
            url,
        ],
    );
    assert!(created.status.success(), "{created:?}");
    let stdout = String::from_utf8(created.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "the secret alone on stdout: {stdout}");
    let secret = stdout.trim().to_owned();

    let listed = faultline(&dir, &["keys", "list", "--customer", &customer_id, "--database-url", url]);
    let listing = String::from_utf8(listed.stdout).unwrap();
    assert!(listing.contains("faults:read,tokens:write") && listing.contains('5'), "{listing}");
    assert!(!listing.contains(&secret), "a listing never shows a secret");
    let key_id = listing.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    assert!(key_id.starts_with("key_"));

    let revoked = faultline(&dir, &["keys", "revoke", &key_id, "--database-url", url]);
    assert!(revoked.status.success());
    // The server has not read this key, so has none of it cached: it is refused at once. (How
    // long a key the server has read stays cached is the server's tests', on a clock they move.)
    assert_eq!(status(&server.base, "/whoami", &secret).await, 401);
    // A key created from the command line works on the running server.
    let another = faultline(
        &dir,
        &[
            "keys",
            "create",
            "--customer",
            &customer_id,
            "--permissions",
            "faults:read",
            "--database-url",
            url,
        ],
    );
    assert!(another.status.success(), "{another:?}");
    let another = String::from_utf8(another.stdout).unwrap().trim().to_owned();
    assert_eq!(status(&server.base, "/whoami", &another).await, 200);

    let unknown = faultline(&dir, &["keys", "revoke", "key_nope", "--database-url", url]);
    assert!(!unknown.status.success());
    let bad_perm = faultline(
        &dir,
        &["keys", "create", "--customer", &customer_id, "--permissions", "faults:fly", "--database-url", url],
    );
    assert!(String::from_utf8_lossy(&bad_perm.stderr).contains("faults:fly"));

    let listed = faultline(&dir, &["signing-keys", "list", "--database-url", url]);
    let before: Vec<String> =
        String::from_utf8(listed.stdout).unwrap().lines().skip(1).map(str::to_owned).collect();
    assert_eq!(before.len(), 1, "one key created at first start: {before:?}");
    let rotated = faultline(&dir, &["signing-keys", "rotate", "--database-url", url]);
    assert!(rotated.status.success(), "{rotated:?}");
    let listed = faultline(&dir, &["signing-keys", "list", "--database-url", url]);
    let after = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(after.lines().count(), 3, "the new key and the retired one, which still verifies: {after}");
    let stderr = server.stop();
    assert!(!stderr.contains(&secret));
}

#[test]
fn bad_configuration_is_refused_with_a_hint() {
    let dir = temp_dir("bad-config");
    let out = faultline(&dir, &["serve", "--listen", "localhost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:8080"));
    let out = faultline(&dir, &["migrate", "--database-url", "mysql://db/faults"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("postgres://"));
    let out = faultline(&dir, &["serve", "--frame-ancestors", "https://noc.example.com/wall"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frame_ancestors: 'https://noc.example.com/wall'"));
}

#[test]
fn config_default_is_a_complete_commented_file() {
    let dir = temp_dir("config-default");
    let out = faultline(&dir, &["config", "default"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().filter(|l| l.starts_with('#')).count() > 10, "commented");
    let file = dir.join("faultline.toml");
    std::fs::write(&file, &text).unwrap();
    let shown = faultline(&dir, &["--config", file.to_str().unwrap(), "config", "show"]);
    assert!(shown.status.success(), "{shown:?}");
}

#[tokio::test]
async fn migrate_brings_either_backend_up_to_date() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = TestDb::new(backend, "cli_migrate").await else { continue };
        let dir = temp_dir("migrate");
        let out = faultline(&dir, &["migrate", "--database-url", &db.url]);
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("migration"));
        db.cleanup().await;
    }
}

/// Every fault a key can list, following the cursor to the end.
async fn list_all(base: &str, key: &str, query: &str) -> Vec<serde_json::Value> {
    let client = reqwest::Client::new();
    let mut faults = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/fault?limit=100{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: serde_json::Value = client
            .get(&url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        faults.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["meta"]["cursor"].as_str() {
            Some(c) if page["meta"]["has_more"] == true => cursor = Some(c.to_owned()),
            _ => return faults,
        }
    }
}

#[tokio::test]
async fn demo_creates_customers_with_keys_and_a_fleet_history_the_api_serves() {
    let dir = temp_dir("demo");
    let url = "sqlite://demo.db";
    let out = faultline(
        &dir,
        &[
            "demo",
            "--faults",
            "3000",
            "--sites",
            "20",
            "--customers",
            "2",
            "--seed",
            "5",
            "--database-url",
            url,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<(&str, &str)> = stdout.lines().map(|l| l.split_once(' ').unwrap()).collect();
    assert_eq!(lines.len(), 2, "one line per customer: {stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inserted 3000 faults"), "{stderr}");

    let (server, bootstrap_key) = Server::start_in(&dir, url, &[]);
    assert_eq!(bootstrap_key, None, "the demo customers make the database not new");
    let mut total = 0;
    for (customer_id, key) in &lines {
        assert!(customer_id.starts_with("cus_") && key.starts_with("flk_"), "{customer_id} {key}");
        let faults = list_all(&server.base, key, "").await;
        assert!(!faults.is_empty());
        assert!(faults.iter().all(|f| f["customer_id"] == *customer_id));
        total += faults.len();
    }
    assert_eq!(total, 3000, "every fault belongs to one of the demo customers");
    let stderr = server.stop();
    assert!(!lines.iter().any(|(_, key)| stderr.contains(key)), "no key in the log");

    let refused = faultline(
        &dir,
        &["demo", "--faults", "10", "--sites", "1", "--customers", "2", "--database-url", url],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--sites"), "{refused:?}");
}

#[tokio::test]
async fn serve_demo_fills_a_new_database_only() {
    let dir = temp_dir("serve-demo");
    let url = "sqlite://serve-demo.db";
    let (server, key) = Server::start_in(&dir, url, &["--demo"]);
    let key = key.expect("the admin key of the new database");
    let open = list_all(&server.base, &key, "&status=unresolved").await;
    assert!(!open.is_empty(), "some demo faults are still open");
    let critical = list_all(&server.base, &key, "&severity=CRITICAL&type=site").await;
    assert!(!critical.is_empty(), "site outages are in the history");
    let stderr = server.stop();
    assert!(stderr.contains("inserted 10000 faults"), "{stderr}");
    let link = stderr
        .lines()
        .find_map(|l| l.split("share link (read-only, 7 days): ").nth(1))
        .expect("a share link on stderr")
        .to_owned();

    let (server, second) = Server::start_in(&dir, url, &["--demo"]);
    assert_eq!(second, None);
    // The link was minted for the first server's address; its code opens the page here too.
    let code = link.rsplit('/').next().unwrap();
    let page = reqwest::get(format!("{}/s/{code}", server.base)).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("<h1>demo</h1>"), "the demo link's page");
    let stderr = server.stop();
    assert!(stderr.contains("not new"), "{stderr}");
    assert!(!stderr.contains("inserted"), "{stderr}");
}
