//! Load shedding: at most `max_concurrent_requests` requests are handled at once; one arriving
//! past that answers at once 503 `overloaded` with `Retry-After`, instead of queueing behind
//! the others. Above capacity a queue only grows: every request in it waits longer, until the
//! clients' timeouts fire and they retry, adding to it. Turning the excess away keeps the
//! latency of the requests admitted what it is at capacity, and the memory bounded.
//!
//! A request holds its slot from its head until its handler answers (a body still being
//! uploaded counts; the streaming of the answer does not). Exempt, so that the operator can
//! see what is going on and the long-lived streams do not hold slots for hours: the probes
//! (`/healthz`, `/readyz`), `/metrics`, and the live stream (`/fault/stream`, whose
//! connections the connection cap bounds).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Requests handled at once per core, by default. On this service's requests (a few hundred
/// microseconds to a few milliseconds of CPU each) that many keep every core busy; more only
/// lengthen the queue each request waits in. `BENCHMARKS.md` ("Load shedding") has the
/// measurements it was chosen from.
pub const REQUESTS_PER_CORE: usize = 32;

/// The default of `--max-concurrent-requests`: [`REQUESTS_PER_CORE`] for each core.
pub fn default_max_concurrent_requests() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) * REQUESTS_PER_CORE
}

/// Paths that are never shed.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/fault/stream")
}

/// The middleware: a slot for the request, or 503 `overloaded`.
pub async fn shed_load(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(_slot) = state.request_slots.try_acquire() else {
        metrics::counter!("faultline_requests_shed_total").increment(1);
        return ApiError::new(ErrorCode::Overloaded, ErrorCode::Overloaded.default_message()).into_response();
    };
    next.run(request).await
}
