//! What the binary's integration tests share: a real `faultline serve` process.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_faultline");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether `GET /healthz` on `port` answers 200 (a plain HTTP/1.1 exchange, so that a server
/// still starting, which accepts connections but answers nothing yet, does not block).
pub fn healthz_answers(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(500)));
    if socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    socket.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

pub struct Server {
    pub child: Child,
    pub base: String,
    /// Everything the server writes to stderr, read as it comes: a full pipe would block it.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Start `faultline serve` on `database_url` with `extra` flags; returns the server and
    /// the first line of stdout, which is the admin key on a new database and nothing otherwise.
    pub fn start(database_url: &str, extra: &[&str]) -> (Server, Option<String>) {
        Server::start_in(&std::env::temp_dir(), database_url, extra)
    }

    /// [`Server::start`] with `dir` as the working directory.
    pub fn start_in(dir: &std::path::Path, database_url: &str, extra: &[&str]) -> (Server, Option<String>) {
        let port = free_port();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", database_url])
            // The default of 60 requests a minute would throttle the ingest to a trickle.
            .args(["--rate-limit", "1000000"])
            .args(extra)
            .current_dir(dir)
            // The default filter, as an operator gets it.
            .env_remove("FAULTLINE_LOG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        // The port is bound before the database is opened, so a connection is not enough:
        // the server is up once it answers.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !healthz_answers(port) {
            assert!(Instant::now() < deadline, "server did not start");
            assert!(child.try_wait().unwrap().is_none(), "server exited early");
            std::thread::sleep(Duration::from_millis(50));
        }
        let stdout = child.stdout.take().unwrap();
        // The key, if any, was printed before the server began to answer.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let first_line = rx
            .recv_timeout(Duration::from_millis(500))
            .ok()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty());
        (Server { child, base: format!("http://127.0.0.1:{port}"), stderr: Some(stderr) }, first_line)
    }

    /// SIGTERM, then wait for a clean exit; returns everything written to stderr.
    pub fn stop(mut self) -> String {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(Instant::now() < deadline, "server did not stop within its shutdown deadline");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");
        self.stderr.take().unwrap().join().unwrap()
    }

    /// SIGKILL: no drain, no flush, no pool close. Returns everything written to stderr.
    pub fn kill(mut self) -> String {
        assert!(self.child.try_wait().unwrap().is_none(), "the server died before the kill");
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.stderr.take().unwrap().join().unwrap()
    }
}

/// A server a test did not stop (it failed first) is killed, not left running: it would keep
/// its port, its files, and any lock its parent held (`flock` around `cargo test`).
impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn assert_log_clean(stderr: &str, which: &str) {
    let bad: Vec<&str> = stderr.lines().filter(|l| l.contains(" ERROR ") || l.contains("panicked")).collect();
    assert!(bad.is_empty(), "{which} logged errors: {bad:#?}");
}

impl Server {
    /// Send SIGTERM and return at once (see [`Server::wait_for_exit`]).
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM {}", self.child.id());
    }

    /// Wait at most `within` for the process to exit: its exit status (`None` if it was still
    /// running, and then killed) and everything it wrote to stderr.
    pub fn wait_for_exit(mut self, within: Duration) -> (Option<std::process::ExitStatus>, String) {
        let deadline = Instant::now() + within;
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break Some(exit);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (exit, self.stderr.take().unwrap().join().unwrap())
    }
}

/// Wait (at most `within`) until `check` holds.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
