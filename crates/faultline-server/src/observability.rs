//! Request ids, tracing spans keyed on the route template, and Prometheus metrics.
//!
//! Spans and metrics name the route template (`/fault/{faultId}`), never the raw path: a path
//! can carry a token (`/fault/token/{id}`), and raw paths would explode metric cardinality.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::request_id::{MakeRequestId, RequestId};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
const DURATION_METRIC: &str = "faultline_http_request_duration_seconds";
const REQUESTS_METRIC: &str = "faultline_http_requests_total";

/// `req_` followed by 20 random base62 characters.
#[derive(Clone, Copy, Default)]
pub struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let id = format!("req_{}", faultline_core::ids::random_base62(20));
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The route template of a request, or `unmatched` for the fallback.
pub fn route_of<B>(request: &axum::http::Request<B>) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

/// The span every request runs in: method, route template and request id.
pub fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let request_id = request.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), route = %route_of(request), request_id)
}

/// The process-wide Prometheus recorder (a process has one metrics registry).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(DURATION_METRIC.to_owned()),
                &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            )
            .expect("bucket list is not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// Middleware: count every request and time it, by method, route template and status.
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = route_of(&request);
    let response = next.run(request).await;
    let labels = [("method", method), ("route", route), ("status", response.status().as_u16().to_string())];
    metrics::counter!(REQUESTS_METRIC, &labels).increment(1);
    metrics::histogram!(DURATION_METRIC, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "Service",
    responses((status = 200, description = "Prometheus text format: request counts and latency histograms by route and status", content_type = "text/plain")))]
pub async fn metrics_text() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        prometheus().render(),
    )
        .into_response()
}
