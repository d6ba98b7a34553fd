//! What the binary's integration tests share: a real `faultline serve` process.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_faultline");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Server {
    pub child: Child,
    pub base: String,
    /// Everything the server writes to stderr, read as it comes: a full pipe would block it.
    stderr: std::thread::JoinHandle<String>,
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
            .env("FAULTLINE_LOG", "info")
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
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            assert!(child.try_wait().unwrap().is_none(), "server exited early");
            std::thread::sleep(Duration::from_millis(50));
        }
        let stdout = child.stdout.take().unwrap();
        // The key, if any, was printed before the listener opened.
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
        (Server { child, base: format!("http://127.0.0.1:{port}"), stderr }, first_line)
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
        self.stderr.join().unwrap()
    }

    /// SIGKILL: no drain, no flush, no pool close. Returns everything written to stderr.
    pub fn kill(mut self) -> String {
        assert!(self.child.try_wait().unwrap().is_none(), "the server died before the kill");
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.stderr.join().unwrap()
    }
}

pub fn assert_log_clean(stderr: &str, which: &str) {
    let bad: Vec<&str> = stderr.lines().filter(|l| l.contains(" ERROR ") || l.contains("panicked")).collect();
    assert!(bad.is_empty(), "{which} logged errors: {bad:#?}");
}
