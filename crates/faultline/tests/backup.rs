//! `faultline backup` and `faultline restore` as an operator uses them, on the real binary: a
//! backup taken while writes arrive holds every write acknowledged before it began, a restore
//! never replaces a database a server runs on, and neither touches a file it was not asked to.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{BIN, Server, assert_log_clean};

/// Concurrent clients posting faults while the backup runs.
const WRITERS: usize = 4;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("faultline-backup-{name}-{}", faultline_core::ids::random_base62(8)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// `faultline ARGS --database-url URL` in `dir`, to its end.
fn faultline(dir: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--database-url", url])
        .current_dir(dir)
        .env_remove("FAULTLINE_DATABASE_URL")
        .output()
        .unwrap()
}

/// Its standard error, which must be exactly one line.
fn one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr:?}");
    assert!(stderr.starts_with("faultline: "), "{stderr:?}");
    stderr
}

fn integrity_check(path: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap()
}

async fn create_fault(http: &reqwest::Client, base: &str, key: &str, resource: &str) -> String {
    let answer = http
        .post(format!("{base}/fault"))
        .bearer_auth(key)
        .json(&json!({"resource_id": resource, "type": "site", "severity": "CRITICAL",
                      "message": format!("{resource} unreachable")}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201, "POST /fault {resource}");
    answer.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn fault_status(http: &reqwest::Client, base: &str, key: &str, id: &str) -> u16 {
    http.get(format!("{base}/fault/{id}")).bearer_auth(key).send().await.unwrap().status().as_u16()
}

/// A write the server acknowledged (201): when its request was sent and when its answer came.
struct Acknowledged {
    id: String,
    sent: Instant,
    answered: Instant,
}

/// Post faults one after another until `stop`, recording each acknowledged one.
async fn write_until(
    http: reqwest::Client,
    base: String,
    key: String,
    writer: usize,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
) {
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let sent = Instant::now();
        let id = create_fault(&http, &base, &key, &format!("r-{writer}-{n}")).await;
        acknowledged.lock().unwrap().push(Acknowledged { id, sent, answered: Instant::now() });
    }
}

/// Wait (at most 20 s) until `enough` holds of the acknowledged writes.
async fn wait_for(
    acknowledged: &Mutex<Vec<Acknowledged>>,
    what: &str,
    enough: impl Fn(&[Acknowledged]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !enough(&acknowledged.lock().unwrap()) {
        assert!(Instant::now() < deadline, "the writers did not get {what} acknowledged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_concurrent_writes_restores_every_write_acknowledged_before_it_began() {
    let dir = temp_dir("under-writes");
    let live = sqlite_url(&dir.join("live.db"));
    let (server, key) = Server::start_in(&dir, &live, &[]);
    let key = key.expect("the admin key of a new database");
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (http, base, key) = (http.clone(), server.base.clone(), key.clone());
            tokio::spawn(write_until(http, base, key, writer, stop.clone(), acknowledged.clone()))
        })
        .collect();
    wait_for(&acknowledged, "100 faults", |acks| acks.len() >= 100).await;

    let began = Instant::now();
    let backup_dir = dir.clone();
    let out =
        tokio::task::spawn_blocking(move || faultline(&backup_dir, &live, &["backup", "--to", "backup.db"]))
            .await
            .unwrap();
    let ended = Instant::now();
    wait_for(&acknowledged, "20 faults after the backup", |acks| {
        acks.iter().filter(|a| a.sent > ended).count() >= 20
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    assert_log_clean(&server.stop(), "the server");

    assert!(out.status.success(), "{out:?}");
    let said = one_line(&out);
    assert!(said.contains("backup.db") && said.contains(" bytes"), "names the file and its size: {said}");
    let backup = dir.join("backup.db");
    assert_eq!(integrity_check(&backup), "ok");
    assert!(!dir.join("backup.db-wal").exists(), "the backup is one self-contained file");
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    let during = acknowledged.iter().filter(|a| a.answered > began && a.answered < ended).count();
    assert!(during > 0, "the service went on acknowledging writes while the backup ran");
    let before: Vec<&Acknowledged> = acknowledged.iter().filter(|a| a.answered < began).collect();
    let after: Vec<&Acknowledged> = acknowledged.iter().filter(|a| a.sent > ended).collect();

    let restored_path = dir.join("restored.db");
    let restored = sqlite_url(&restored_path);
    let out = faultline(&dir, &restored, &["restore", "--from", "backup.db"]);
    assert!(out.status.success(), "{out:?}");
    assert!(one_line(&out).contains("restored"), "{out:?}");
    let (server, printed) = Server::start_in(&dir, &restored, &[]);
    assert_eq!(printed, None, "the restored database is not new: it has its admin key");
    for write in &before {
        let status = fault_status(&http, &server.base, &key, &write.id).await;
        assert_eq!(status, 200, "{} was acknowledged before the backup began", write.id);
    }
    for write in &after {
        let status = fault_status(&http, &server.base, &key, &write.id).await;
        assert_eq!(status, 404, "{} was sent after the backup ended", write.id);
    }
    assert_log_clean(&server.stop(), "the server on the restored database");
    assert_eq!(integrity_check(&restored_path), "ok");
}

/// What the restore tests start from: a server on `live.db` in a directory of its own, with one
/// fault written (`kept`) before a backup of it was taken to `backup.db`.
struct BackedUp {
    dir: PathBuf,
    live_path: PathBuf,
    live: String,
    server: Server,
    key: String,
    http: reqwest::Client,
    kept: String,
}

async fn serve_and_back_up(name: &str) -> BackedUp {
    let dir = temp_dir(name);
    let live_path = dir.join("live.db");
    let live = sqlite_url(&live_path);
    let (server, key) = Server::start_in(&dir, &live, &[]);
    let key = key.expect("the admin key of a new database");
    let http = reqwest::Client::new();
    let kept = create_fault(&http, &server.base, &key, "r-kept").await;
    let out = faultline(&dir, &live, &["backup", "--to", "backup.db"]);
    assert!(out.status.success(), "{out:?}");
    BackedUp { dir, live_path, live, server, key, http, kept }
}

#[tokio::test]
async fn restore_is_refused_while_a_server_runs_on_the_database() {
    let BackedUp { dir, live_path, live, server, key, http, kept } = serve_and_back_up("refused").await;
    let second = create_fault(&http, &server.base, &key, "r-after").await;
    let files_before = file_names(&dir);

    let out = faultline(&dir, &live, &["restore", "--from", "backup.db"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = one_line(&out);
    assert!(
        said.contains("in use") && said.contains("faultline serve") && said.contains("live.db.lock"),
        "names the reason: {said}"
    );
    assert_eq!(file_names(&dir), files_before, "nothing was written beside the database");
    // The same lock keeps a second server off the database.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &live])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("live.db is in use"), "{out:?}");
    assert_eq!(fault_status(&http, &server.base, &key, &second).await, 200);
    assert_log_clean(&server.stop(), "the server");

    // Any other command on the database (here its shared lock, taken as such a command takes
    // it) keeps a restore off; a restore under way (the exclusive lock) keeps commands off.
    let lock = std::fs::OpenOptions::new().read(true).write(true).open(dir.join("live.db.lock")).unwrap();
    lock.try_lock_shared().unwrap();
    let out = faultline(&dir, &live, &["restore", "--from", "backup.db"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(one_line(&out).contains("in use"), "{out:?}");
    lock.unlock().unwrap();
    lock.try_lock().unwrap();
    let out = faultline(&dir, &live, &["migrate"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("being replaced by a `faultline restore`"),
        "{out:?}"
    );
    drop(lock);

    // The database still holds what was written after the backup.
    let (server, _) = Server::start_in(&dir, &live, &[]);
    assert_eq!(fault_status(&http, &server.base, &key, &kept).await, 200);
    assert_eq!(fault_status(&http, &server.base, &key, &second).await, 200);
    server.stop();
    assert_eq!(integrity_check(&live_path), "ok");
}

#[tokio::test]
async fn restore_over_a_killed_database_discards_its_write_ahead_log() {
    let BackedUp { dir, live_path, live, server, key, http, kept } = serve_and_back_up("killed").await;
    let mut discarded = Vec::new();
    for n in 0..20 {
        discarded.push(create_fault(&http, &server.base, &key, &format!("r-discarded-{n}")).await);
    }
    server.kill();
    let log = dir.join("live.db-wal");
    assert!(std::fs::metadata(&log).is_ok_and(|m| m.len() > 0), "the killed server left its log behind");

    let out = faultline(&dir, &live, &["restore", "--from", "backup.db"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!log.exists(), "the old database's log is gone: applied to the backup it would corrupt it");
    assert_eq!(integrity_check(&live_path), "ok");
    let (server, _) = Server::start_in(&dir, &live, &[]);
    assert_eq!(fault_status(&http, &server.base, &key, &kept).await, 200);
    for id in &discarded {
        assert_eq!(fault_status(&http, &server.base, &key, id).await, 404, "{id} came after the backup");
    }
    assert_log_clean(&server.stop(), "the server on the restored database");
    assert_eq!(integrity_check(&live_path), "ok");
}

#[test]
fn backup_refuses_to_overwrite_a_file_unless_forced() {
    let dir = temp_dir("overwrite");
    let live = sqlite_url(&dir.join("live.db"));
    assert!(faultline(&dir, &live, &["migrate"]).status.success());
    let existing = dir.join("existing.db");
    std::fs::write(&existing, "an operator's file").unwrap();

    let out = faultline(&dir, &live, &["backup", "--to", "existing.db"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = one_line(&out);
    assert!(said.contains("existing.db exists") && said.contains("--force"), "{said}");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "an operator's file");

    let out = faultline(&dir, &live, &["backup", "--to", "live.db", "--force"]);
    assert_eq!(out.status.code(), Some(2), "the database itself is never a backup's target: {out:?}");
    assert_eq!(integrity_check(&dir.join("live.db")), "ok");

    let out = faultline(&dir, &live, &["backup", "--to", "existing.db", "--force"]);
    assert!(out.status.success(), "{out:?}");
    assert!(one_line(&out).contains("existing.db"));
    assert_eq!(integrity_check(&existing), "ok");
    assert_eq!(temporary_files(&dir), Vec::<String>::new(), "no temporary file is left");
}

#[test]
fn restore_refuses_a_file_that_is_not_a_faultline_backup() {
    let dir = temp_dir("not-a-backup");
    let live_path = dir.join("live.db");
    let live = sqlite_url(&live_path);
    assert!(faultline(&dir, &live, &["migrate"]).status.success());
    let database = std::fs::read(&live_path).unwrap();
    std::fs::write(
        dir.join("notes.txt"),
        "not a database at all, but long enough to be read as one ".repeat(100),
    )
    .unwrap();
    rusqlite::Connection::open(dir.join("other.db")).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();

    for (file, reason) in [("notes.txt", "not a SQLite database"), ("other.db", "not a faultline database")] {
        let out = faultline(&dir, &live, &["restore", "--from", file]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let said = one_line(&out);
        assert!(said.contains(file) && said.contains(reason), "{said}");
        assert_eq!(std::fs::read(&live_path).unwrap(), database, "the database is untouched");
    }
    let out = faultline(&dir, &live, &["restore", "--from", "missing.db"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(one_line(&out).contains("missing.db does not exist"));
    assert_eq!(temporary_files(&dir), Vec::<String>::new(), "no temporary file is left");
}

#[test]
fn on_postgresql_backup_and_restore_point_to_pg_dump() {
    let dir = temp_dir("postgres");
    let url = "postgres://faultline@127.0.0.1:9/faultline";
    for args in [["backup", "--to", "faults.dump"], ["restore", "--from", "faults.dump"]] {
        let out = faultline(&dir, url, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(one_line(&out).contains("pg_dump"), "{args:?}: {out:?}");
    }
    assert!(file_names(&dir).is_empty(), "nothing was written");
}

/// The files in `dir` named as the commands name their temporary files (`.NAME.…`).
fn temporary_files(dir: &Path) -> Vec<String> {
    file_names(dir).into_iter().filter(|name| name.starts_with('.')).collect()
}

/// The names of the files in `dir`, sorted.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
