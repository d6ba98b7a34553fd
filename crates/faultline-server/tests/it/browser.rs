//! A headless Chromium driven through chromedriver's W3C WebDriver API, with the HTTP client
//! the tests already use. Chromium cannot resolve any host name (`--host-resolver-rules`), so
//! nothing but loopback is reachable; browser and performance logs are kept for inspection.
//! When chromium or chromedriver is missing the test is skipped loudly (a failure under
//! `FAULTLINE_TEST_REQUIRE_ALL=1`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The longest any wait for the page lasts.
pub const WAIT: Duration = Duration::from_secs(10);
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser at a time: the machines have two cores, and timings are bounded.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Browser {
    driver: Child,
    url: String,
    session: String,
    client: reqwest::Client,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// An element found on the page.
pub struct Element(Value);

impl Browser {
    /// A new headless browser `width` × `height` px, or `None` (skipped) without chromium.
    pub async fn start(test: &str, width: u32, height: u32) -> Option<Browser> {
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
            faultline_store::testing::skip(
                test,
                "chromium or chromedriver is not installed (apt-get install chromium chromium-driver)",
            );
            return None;
        }
        let turn = ONE_AT_A_TIME.lock().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(CHROMEDRIVER);
        command.arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null());
        // Its own process group, so that dropping the browser ends chromium with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().expect("chromedriver starts");
        let mut browser = Browser {
            driver,
            url: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            client: reqwest::Client::new(),
            _turn: turn,
        };
        let started = Instant::now();
        loop {
            let ready = browser.client.get(format!("{}/status", browser.url)).send().await;
            if let Ok(r) = ready
                && r.json::<Value>().await.is_ok_and(|s| s["value"]["ready"] == true)
            {
                break;
            }
            assert!(started.elapsed() < WAIT, "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"),
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions", "--lang=en-US",
                "--disable-breakpad", "--disable-crash-reporter",
            ]},
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let created =
            browser.client.post(format!("{}/session", browser.url)).json(&capabilities).send().await;
        let created: Value = created.unwrap().json().await.unwrap();
        browser.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Some(browser)
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.url, self.session);
        let mut request = self.client.request(method, url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!("WebDriver {path}: {error}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, body).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    /// Load the page again, as the reload button does.
    pub async fn refresh(&self) {
        self.post("/refresh", json!({})).await;
    }

    /// The address of the page shown.
    pub async fn current_url(&self) -> String {
        let url = self.command(reqwest::Method::GET, "/url", Value::Null).await;
        url.as_str().unwrap_or_default().to_owned()
    }

    /// Run `script` (a function body; `arguments` holds `args`) in the page; its return value.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args})).await
    }

    /// Run `script` until it returns something truthy (that value) or [`WAIT`] passes (panic,
    /// saying `what` did not happen, with the last value).
    pub async fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let started = Instant::now();
        loop {
            let value = self.run(script, args.clone()).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(started.elapsed() < WAIT, "timed out after {WAIT:?} waiting for {what} (last: {value})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Show pages in a viewport of exactly `width` × `height` CSS pixels, as a phone
    /// (`mobile`: `<meta name=viewport>` applies, touch) or a desktop would: DevTools' device
    /// emulation, which goes below the smallest window Chromium makes (500 px wide) and leaves
    /// out the window's frame.
    pub async fn emulate(&self, width: u32, height: u32, mobile: bool) {
        let params = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile});
        self.post(
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": params}),
        )
        .await;
    }

    pub async fn find(&self, css: &str) -> Element {
        Element(self.post("/element", json!({"using": "css selector", "value": css})).await[ELEMENT].clone())
    }

    /// Click `element` as a user would (scrolled into view; refused if something covers it).
    pub async fn click(&self, element: &Element) {
        let id = element.0.as_str().unwrap();
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Empty a text field (`input`, `textarea`).
    pub async fn clear(&self, element: &Element) {
        let id = element.0.as_str().unwrap();
        self.post(&format!("/element/{id}/clear"), json!({})).await;
    }

    /// Type `text` into `element` as a user would, key by key.
    pub async fn type_into(&self, element: &Element, text: &str) {
        let id = element.0.as_str().unwrap();
        self.post(&format!("/element/{id}/value"), json!({"text": text})).await;
    }

    /// Continue in `frame` (an `<iframe>` element), or in the top page with `None`.
    pub async fn switch_to_frame(&self, frame: Option<&Element>) {
        let id = frame.map_or(Value::Null, |e| json!({ELEMENT: e.0}));
        self.post("/frame", json!({ "id": id })).await;
    }

    /// The log entries of `kind` (`browser` or `performance`) since the last call.
    pub async fn log(&self, kind: &str) -> Vec<Value> {
        self.post("/se/log", json!({ "type": kind })).await.as_array().cloned().unwrap_or_default()
    }

    /// Console messages at level SEVERE (errors, uncaught exceptions, failed loads).
    pub async fn console_errors(&self) -> Vec<Value> {
        self.log("browser").await.into_iter().filter(|e| e["level"] == "SEVERE").collect()
    }

    /// Every URL the page asked the network for, from the DevTools performance log.
    pub async fn requested_urls(&self) -> Vec<String> {
        self.log("performance")
            .await
            .iter()
            .filter_map(|entry| serde_json::from_str::<Value>(entry["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
            .filter_map(|m| m["message"]["params"]["request"]["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// The cookies of the page's origin, HttpOnly ones included, as WebDriver describes them
    /// (`name`, `value`, `httpOnly`, `sameSite`, ...).
    pub async fn cookies(&self) -> Vec<Value> {
        let cookies = self.command(reqwest::Method::GET, "/cookie", Value::Null).await;
        cookies.as_array().cloned().unwrap_or_default()
    }

    /// Set a cookie for the page's origin (`{"name", "value", ...}`).
    pub async fn add_cookie(&self, cookie: Value) {
        self.post("/cookie", json!({ "cookie": cookie })).await;
    }

    /// A PNG of what the window shows.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let png = self.command(reqwest::Method::GET, "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD.decode(png.as_str().expect("a base64 PNG")).unwrap()
    }

    /// End the session (chromium exits), then chromedriver.
    pub async fn quit(self) {
        let _ = self.client.delete(format!("{}/session/{}", self.url, self.session)).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The process group started for chromedriver: chromedriver and the chromium it ran.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}
