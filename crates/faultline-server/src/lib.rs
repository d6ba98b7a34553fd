//! faultline's HTTP server: one module per feature, each owning its router; merged here with
//! the middleware every request passes through.
#![forbid(unsafe_code)]

pub mod analytics;
pub mod assets;
pub mod auth;
pub mod clock;
pub mod comments;
pub mod connections;
pub mod console;
pub mod dashboard;
pub mod docs;
pub mod error;
pub mod etag;
pub mod events;
pub mod export;
pub mod extract;
pub mod fault_json;
pub mod faults;
pub mod health;
pub mod heartbeats;
pub mod idempotency;
pub mod integrations;
pub mod jobs;
pub mod jwt;
pub mod lifecycle;
pub mod load_shedding;
pub mod observability;
pub mod openapi;
pub mod rate_limit;
pub mod recent;
pub mod sites;
pub mod sla;
pub mod state;
pub mod stream;
pub mod tokens;
pub mod ttl_cache;
pub mod webhook_delivery;
pub mod webhooks;
pub mod whoami;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa_axum::router::OpenApiRouter;

pub use state::{AppState, ServerConfig};

use crate::error::ApiError;
use crate::observability::REQUEST_ID_HEADER;

/// Every route with its OpenAPI description, split by whether it needs a credential:
/// `(public, authenticated)`. Feature modules are merged here and nowhere else.
fn routes() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let public = OpenApiRouter::new()
        .merge(health::router())
        .merge(docs::router())
        .merge(openapi::router())
        .merge(tokens::public_router())
        .merge(integrations::public_router())
        .merge(dashboard::router())
        .merge(assets::router())
        .merge(console::router());
    let authenticated = OpenApiRouter::new()
        .merge(whoami::router())
        .merge(faults::router())
        .merge(comments::router())
        .merge(events::router())
        .merge(integrations::router())
        .merge(lifecycle::router())
        .merge(recent::router())
        .merge(analytics::router())
        .merge(sla::router())
        .merge(stream::router())
        .merge(heartbeats::router())
        .merge(tokens::router())
        .merge(sites::router())
        .merge(console::authenticated_router())
        .merge(webhooks::router());
    (public, authenticated)
}

/// The OpenAPI document of the whole API, generated from the handlers.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (public, authenticated) = routes();
    let mut doc =
        OpenApiRouter::with_openapi(openapi::base()).merge(public).merge(authenticated).into_openapi();
    openapi::document_idempotency(&mut doc);
    doc
}

/// The complete application: routes, authentication and the middleware stack.
pub fn app(state: AppState) -> Router {
    let (public, authenticated) = routes();
    let (authenticated, _) = authenticated
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .split_for_parts();
    let authenticated =
        authenticated.layer(axum::middleware::from_fn(integrations::alertmanager_retries_rate_limits));
    let (public, _) = public.split_for_parts();
    with_middleware(Router::new().merge(public).merge(authenticated), state)
}

/// Put `routes` behind the middleware stack every request passes through (outermost last):
/// request id, trace span, metrics, error envelope, panic catcher, timeout, body limit.
/// (Load shedding runs before all of it, in the connection layer.)
/// Public so that tests can check the stack's behaviour on routes they define.
pub fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    let config = state.config.clone();
    routes
        .fallback(|| async { ApiError::not_found() })
        .layer(axum::middleware::from_fn_with_state(state.clone(), writes_run_to_completion))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(RequestBodyLimitLayer::new(config.body_limit))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, config.request_timeout))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(state.clone(), error::envelope))
        .layer(axum::middleware::from_fn(observability::record_metrics))
        // The access log line carries every status. No second line at ERROR for a 5xx: a
        // 500's cause is logged where it happened, and a 503 is an outage (logged once by the
        // store) or shed load, which would otherwise write a line per request.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(observability::request_span)
                .on_response(
                    DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Micros),
                )
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, observability::MakeId))
        .with_state(state)
}

/// Run every request that may write (any method but GET, HEAD and OPTIONS) in its own task, so
/// that a client hanging up, or the request timeout, never cancels a write halfway through a
/// transaction: the write finishes (or fails) on its own and only its answer is lost. A write
/// abandoned halfway would leave a PostgreSQL transaction to be rolled back when its connection
/// is next used, and a retry with the same `Idempotency-Key` must find the first attempt either
/// done or never started. Afterwards the
/// live stream is nudged to read what the write logged.
async fn writes_run_to_completion(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let written = tokio::spawn(next.run(request)).await;
    state.stream.nudge();
    state.webhooks.nudge();
    match written {
        Ok(response) => response,
        // Re-raised here, for the panic layer to answer 500 as for any other handler.
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => ApiError::internal(format!("write task ended: {err}")).into_response(),
    }
}

fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    ApiError::internal(format!("handler panicked: {detail}")).into_response()
}

/// Faults past their `ttl` are deleted this often, in batches of [`SWEEP_BATCH`].
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
pub const SWEEP_BATCH: u32 = 500;

/// One retention sweep: expired faults, then `Idempotency-Key`s older than a day, each in
/// small batches with a pause between them, so writers never wait long behind it.
async fn sweep_expired_faults(store: &std::sync::Arc<dyn faultline_store::Store>) {
    let faults = sweep_in_batches("expired faults", || {
        store.sweep_expired(faultline_core::time::now_micros() / 1_000_000, SWEEP_BATCH)
    })
    .await;
    let keys = sweep_in_batches("idempotency keys", || {
        let before = faultline_core::time::now_micros() - faultline_store::IDEMPOTENCY_KEEP_MICROS;
        store.sweep_idempotency_keys(before, SWEEP_BATCH)
    })
    .await;
    if faults + keys > 0 {
        tracing::info!(faults, idempotency_keys = keys, "retention sweep deleted expired records");
    }
}

/// Run `batch` until it deletes fewer than [`SWEEP_BATCH`] records; how many went in all.
async fn sweep_in_batches<F, Fut>(what: &str, batch: F) -> usize
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = faultline_store::StoreResult<usize>>,
{
    let mut swept = 0;
    loop {
        match batch().await {
            Ok(n) => {
                swept += n;
                if n < SWEEP_BATCH as usize {
                    return swept;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => {
                faultline_store::outage::warn_unless_outage(
                    &err,
                    &format!("retention sweep of {what} failed; retrying at the next tick"),
                );
                return swept;
            }
        }
    }
}

/// Serve `state` on `listener` until `shutdown` completes, then give in-flight requests
/// `config.shutdown_grace` to finish before dropping them.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    observability::prometheus();
    let grace = state.config.shutdown_grace;
    let upkeep = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            observability::prometheus().run_upkeep();
        }
    });
    let (usage, store) = (state.token_usage.clone(), state.store.clone());
    let usage_flusher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            usage.flush(&*store).await;
        }
    });
    let stream_tailer = state.stream.start(state.store.clone());
    metrics::gauge!("faultline_request_rate_limit").set(-1.0);
    let regulator = tokio::spawn(state.admission.clone().regulate());
    let retention_sweeper = {
        let (store, hub) = (state.store.clone(), state.stream.clone());
        tokio::spawn(jobs::run_singleton(state.store.clone(), "retention", SWEEP_EVERY, move || {
            let (store, hub) = (store.clone(), hub.clone());
            async move {
                sweep_expired_faults(&store).await;
                hub.nudge();
            }
        }))
    };
    let detector = {
        let (store, hub) = (state.store.clone(), state.stream.clone());
        let (policy, retention) = (state.config.offline_policy(), state.config.retention_seconds());
        let period = heartbeats::detector_period(state.config.heartbeat_interval);
        tokio::spawn(jobs::run_singleton(state.store.clone(), "detector", period, move || {
            let (store, hub) = (store.clone(), hub.clone());
            async move {
                let now = faultline_core::time::now_micros();
                match heartbeats::detect(&*store, &policy, now, retention).await {
                    Ok(0) => {}
                    Ok(_) => hub.nudge(),
                    Err(err) => faultline_store::outage::warn_unless_outage(
                        &err,
                        "offline detection failed; retrying at the next sweep",
                    ),
                }
            }
        }))
    };
    let webhook_worker =
        tokio::spawn(state.webhooks.clone().run(state.store.clone(), state.config.webhook_delivery()));
    let hub = state.stream.clone();
    let (final_usage, final_store) = (state.token_usage.clone(), state.store.clone());
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let (limits, admission) = (state.config.connection_limits(), state.admission.clone());
    let server = connections::serve(listener, app(state), limits, admission, async move {
        shutdown.await;
        tracing::info!(grace_seconds = grace.as_secs_f64(), "shutting down: draining in-flight requests");
        hub.close();
        let _ = stopping_tx.send(());
    });
    let deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!("shutdown deadline reached; closing the remaining connections");
            Ok(())
        }
    };
    upkeep.abort();
    usage_flusher.abort();
    retention_sweeper.abort();
    detector.abort();
    webhook_worker.abort();
    stream_tailer.abort();
    regulator.abort();
    final_usage.flush(&*final_store).await;
    result
}
