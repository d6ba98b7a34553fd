//! The typed test client: a running server on a fresh database, and helpers to act on it.

use std::sync::Arc;

use axum::Router;
use faultline_core::Permissions;
use faultline_server::{AppState, ServerConfig};
use faultline_store::testing::TestDb;
use faultline_store::{Backend, NewApiKey, Store};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    /// The server's live event stream.
    pub stream: Arc<faultline_server::stream::Hub>,
    /// The server's clock: still, until the test moves it on.
    pub clock: Arc<ManualClock>,
    /// The server's count of access-token uses, which a test may flush at once.
    pub token_usage: Arc<faultline_server::jwt::TokenUsage>,
    /// A key of customer A with every permission.
    pub key: String,
    pub customer_id: String,
    db: Option<TestDb>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// A server on a fresh database with a generous rate limit, or `None` when the backend is
    /// not available (the skip is reported by [`TestDb::new`]).
    pub async fn spawn(backend: Backend, test: &str) -> Option<TestApp> {
        Self::spawn_with(backend, test, |_| {}, None).await
    }

    /// As [`TestApp::spawn`], with the config adjusted and, optionally, extra routes merged
    /// under the production middleware stack.
    pub async fn spawn_with(
        backend: Backend,
        test: &str,
        configure: impl FnOnce(&mut ServerConfig),
        extra_routes: Option<Router<AppState>>,
    ) -> Option<TestApp> {
        if std::env::var_os("FAULTLINE_TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(std::env::var("FAULTLINE_TEST_LOG").unwrap_or_default())
                .with_writer(std::io::stderr)
                .try_init();
        }
        let db = TestDb::new(backend, test).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = ServerConfig::new(base.clone());
        let clock = Arc::new(ManualClock::default());
        config.clock = clock.clone();
        config.default_rate_limit = 100_000;
        // The detector only finds what a test drives it to (with a clock of its choosing).
        config.heartbeat_interval = std::time::Duration::from_secs(86_400);
        configure(&mut config);
        let state = AppState::load(db.store.clone(), config).await.unwrap();
        let (stream, token_usage) = (state.stream.clone(), state.token_usage.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let server = match extra_routes {
            None => tokio::spawn(faultline_server::serve(listener, state, shutdown)),
            Some(routes) => {
                let app = faultline_server::with_middleware(routes, state);
                tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await })
            }
        };
        let store = db.store.clone();
        let customer = store.create_customer("Customer A").await.unwrap();
        let mut app = TestApp {
            base,
            client: reqwest::Client::new(),
            store,
            stream,
            clock,
            token_usage,
            key: String::new(),
            customer_id: customer.id.clone(),
            db: Some(db),
            shutdown: Some(tx),
            server: Some(server),
        };
        app.key = app.create_key(&customer.id, "all", None).await;
        Some(app)
    }

    /// A new key for `customer_id`; returns the secret.
    pub async fn create_key(&self, customer_id: &str, permissions: &str, rate_limit: Option<u32>) -> String {
        let permissions: Permissions = permissions.parse().unwrap();
        let (key, secret) = NewApiKey::generate(customer_id, "test", permissions, rate_limit);
        self.store.create_api_key(key).await.unwrap();
        secret
    }

    /// A second customer with a key holding every permission: `(customer_id, secret)`.
    pub async fn other_customer(&self) -> (String, String) {
        let customer = self.store.create_customer("Customer B").await.unwrap();
        let key = self.create_key(&customer.id, "all", None).await;
        (customer.id, key)
    }

    /// `POST /fault` with customer A's key; panics unless 201. Returns the fault.
    pub async fn create_fault(&self, body: Value) -> Value {
        let response = self.request(Method::POST, "/fault").json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{body}");
        response.json().await.unwrap()
    }

    /// A valid fault body with the given resource, type and severity.
    pub fn fault_body(resource_id: &str, fault_type: &str, severity: &str) -> Value {
        serde_json::json!({
            "resource_id": resource_id,
            "type": fault_type,
            "severity": severity,
            "message": format!("{fault_type} fault on {resource_id}"),
        })
    }

    /// `GET path` with `key`, expecting 200; returns the JSON body.
    pub async fn get_json(&self, path: &str, key: &str) -> Value {
        let response = self.client.get(self.url(path)).bearer_auth(key).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// A URL that opens the test's database (for PostgreSQL, with its schema).
    pub fn database_url(&self) -> &str {
        &self.db.as_ref().expect("the database lives until finish").url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with customer A's all-permission key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(&self.key)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// Stop the server and drop the test's data.
    pub async fn finish(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}

/// A clock that moves only when a test moves it, so that what expires or refills with time
/// (cached credentials and keys, rate limits) does so when the test says, without waiting.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<std::time::Instant>);

impl Default for ManualClock {
    /// A clock stopped at the time it was made.
    fn default() -> Self {
        ManualClock(std::sync::Mutex::new(std::time::Instant::now()))
    }
}

impl ManualClock {
    pub fn advance(&self, by: std::time::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl faultline_server::clock::Clock for ManualClock {
    fn now(&self) -> std::time::Instant {
        *self.0.lock().unwrap()
    }
}

/// Assert the error envelope: status, `type`, `code`, and a `doc_url` that the server serves.
pub async fn assert_error(response: Response, status: StatusCode, error_type: &str, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(content_type.starts_with("application/json"), "content-type {content_type}");
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["type"], error_type, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    let doc_url = body["doc_url"].as_str().expect("doc_url");
    assert!(doc_url.ends_with(&format!("/docs/errors/{code}")), "{doc_url}");
    assert_eq!(body.as_object().unwrap().len(), 4, "exactly the four envelope fields: {body}");
    body
}

/// Define an end-to-end test once and run it on both backends:
/// `e2e_test!(name, |app: TestApp| async move { … })`.
#[macro_export]
macro_rules! e2e_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = $crate::harness::TestApp::spawn(
                    faultline_store::Backend::Sqlite,
                    concat!(stringify!($name), "_sqlite"),
                )
                .await
                {
                    ($body)(app).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::harness::TestApp::spawn(
                    faultline_store::Backend::Postgres,
                    concat!(stringify!($name), "_postgres"),
                )
                .await
                {
                    ($body)(app).await;
                }
            }
        }
    };
}

/// The Python that runs the client libraries' scripts: `FAULTLINE_TEST_PYTHON` (`.ci/run` sets a
/// venv's), else `python3`.
pub fn python() -> String {
    std::env::var("FAULTLINE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Whether that Python can import `module` (from the PyPI package `package`); the test's skip
/// is reported when it cannot.
pub fn python_library(test: &str, module: &str, package: &str) -> bool {
    let present = std::process::Command::new(python())
        .args(["-W", "ignore", "-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        faultline_store::testing::skip(
            test,
            &format!("python3 with {package} is missing (pip install {package})"),
        );
    }
    present
}
