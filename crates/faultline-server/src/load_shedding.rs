//! Load shedding: at most `max_concurrent_requests` requests are handled at once; one arriving
//! past that answers at once 503 `overloaded` with `Retry-After`, instead of queueing behind
//! the others. Above capacity a queue only grows: every request in it waits longer, until the
//! clients' timeouts fire and they retry, adding to it. Turning the excess away keeps the
//! memory bounded and the answers faster than without it, though not as fast as below
//! capacity: see `BENCHMARKS.md`, "Load shedding", for what it achieves and what it does not.
//!
//! The check runs in the connection layer ([`crate::connections`]), as soon as a request head
//! is parsed and before any middleware: a request turned away costs its parsing and one
//! pre-built answer, not a trace span, metrics, routing and an error envelope rendered for it
//! (under twice the load the service can serve, that difference is what the requests admitted
//! wait for). It is counted in `faultline_requests_shed_total`, not in the per-route request
//! metrics.
//!
//! **The limit adapts.** A request has to be read and parsed before it can be turned away, and
//! under twice the load the service can serve, parsing and turning away the excess takes CPU
//! the admitted requests need: with the cap alone every request, admitted or not, waited in
//! the runtime's queue for its turn (`BENCHMARKS.md`, "Load shedding"). So a regulator
//! measures that queue every [`REGULATE_EVERY`], as how late a timer task wakes up: when it is
//! late by more than [`LATE_TARGET`] and the limit was reached meanwhile, fewer requests are
//! admitted at once (the limit drops by a
//! quarter, down to [`MIN_LIMIT`]), which leaves the CPU to the parsing and turning away; while
//! it is on time and the limit is reached, the limit grows back by one a tick, up to
//! `max_concurrent_requests`. Below capacity the runtime is on time and the limit stays at its
//! maximum. `faultline_request_limit` is the limit now.
//!
//! A request holds its slot from its head until its handler answers (a body still being
//! uploaded counts; the streaming of the answer does not). Exempt, so that the operator can
//! see what is going on and the long-lived streams do not hold slots for hours: the probes
//! (`/healthz`, `/readyz`), `/metrics`, and the live stream (`/fault/stream`, whose
//! connections the connection cap bounds).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};

use crate::error::{ErrorBody, ErrorCode};
use crate::observability::REQUEST_ID_HEADER;

/// Requests handled at once per core, by default. On this service's requests (a few hundred
/// microseconds to a few milliseconds of CPU each) that many keep every core busy; more only
/// lengthen the queue each request waits in.
pub const REQUESTS_PER_CORE: usize = 32;

/// The default of `--max-concurrent-requests`: [`REQUESTS_PER_CORE`] for each core.
pub fn default_max_concurrent_requests() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) * REQUESTS_PER_CORE
}

/// How often the regulator measures the runtime's queue.
pub const REGULATE_EVERY: Duration = Duration::from_millis(20);
/// How late a timer task may wake before the limit drops.
pub const LATE_TARGET: Duration = Duration::from_millis(10);
/// The lowest the limit drops to.
pub const MIN_LIMIT: usize = 2;

/// The limit, the requests being handled, and the answer for a request past the limit.
pub struct Admission {
    max: usize,
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    /// Whether a request found the limit reached since the regulator last looked.
    reached: AtomicBool,
    /// The 503 `overloaded` envelope, rendered once.
    overloaded: axum::body::Bytes,
}

/// A request's slot, given back when it is dropped.
pub struct Slot(Arc<Admission>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(max_concurrent_requests: usize, public_url: &str) -> Admission {
        let code = ErrorCode::Overloaded;
        let body = ErrorBody {
            error_type: code.error_type().to_owned(),
            code: code.as_str().to_owned(),
            message: code.default_message().to_owned(),
            doc_url: format!("{public_url}/docs/errors/{}", code.as_str()),
        };
        let max = max_concurrent_requests.max(1);
        Admission {
            max,
            limit: AtomicUsize::new(max),
            in_flight: AtomicUsize::new(0),
            reached: AtomicBool::new(false),
            overloaded: serde_json::to_vec(&body).expect("error body serialises").into(),
        }
    }

    /// A slot for `request` (`None` for the exempt paths), or the answer turning it away.
    pub fn admit<B>(self: &Arc<Self>, request: &Request<B>) -> Result<Option<Slot>, Box<Response<Body>>> {
        if exempt(request.uri().path()) {
            return Ok(None);
        }
        let limit = self.limit.load(Ordering::Relaxed);
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before < limit {
            if before + 1 == limit {
                self.reached.store(true, Ordering::Relaxed);
            }
            return Ok(Some(Slot(self.clone())));
        }
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.reached.store(true, Ordering::Relaxed);
        metrics::counter!("faultline_requests_shed_total").increment(1);
        Err(Box::new(self.overloaded(request)))
    }

    /// Adjust the limit to how late the runtime runs, every [`REGULATE_EVERY`], until the task
    /// is aborted (see the module's documentation).
    pub async fn regulate(self: Arc<Self>) {
        loop {
            let asleep = tokio::time::Instant::now();
            tokio::time::sleep(REGULATE_EVERY).await;
            let late = asleep.elapsed().saturating_sub(REGULATE_EVERY);
            let reached = self.reached.swap(false, Ordering::Relaxed);
            let limit = self.limit.load(Ordering::Relaxed);
            let next = next_limit(limit, self.max, late, reached);
            if next != limit {
                self.limit.store(next, Ordering::Relaxed);
                metrics::gauge!("faultline_request_limit").set(next as f64);
            }
        }
    }

    fn overloaded<B>(&self, request: &Request<B>) -> Response<Body> {
        let mut response = Response::new(Body::from(self.overloaded.clone()));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        let retry_after = ErrorCode::Overloaded.retry_after().unwrap_or("1");
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static(retry_after));
        let request_id = request.headers().get(REQUEST_ID_HEADER).cloned().unwrap_or_else(|| {
            HeaderValue::from_str(&format!("req_{}", faultline_core::ids::random_base62(20)))
                .expect("base62 is a valid header value")
        });
        headers.insert(REQUEST_ID_HEADER, request_id);
        response
    }
}

/// The limit after a tick in which the runtime ran `late` and the limit was `reached` (or
/// not). Only a limit that was reached is lowered: a runtime late for other reasons (a busy
/// machine) with requests to spare is not overloaded by them.
fn next_limit(limit: usize, max: usize, late: Duration, reached: bool) -> usize {
    if late > LATE_TARGET && reached {
        (limit - limit / 4).max(MIN_LIMIT.min(max))
    } else if reached {
        (limit + 1).min(max)
    } else {
        limit
    }
}

/// Paths that are never shed.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/fault/stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_drops_by_a_quarter_when_late_at_the_limit_and_grows_back_by_one() {
        let late = LATE_TARGET * 2;
        assert_eq!(next_limit(64, 64, late, true), 48);
        assert_eq!(next_limit(64, 64, late, false), 64, "late, but not at the limit: not our doing");
        assert_eq!(next_limit(3, 64, late, true), 3);
        assert_eq!(next_limit(2, 64, late, true), MIN_LIMIT);
        assert_eq!(next_limit(1, 1, late, true), 1, "never below a max under the floor");
        assert_eq!(next_limit(48, 64, Duration::ZERO, true), 49);
        assert_eq!(next_limit(64, 64, Duration::ZERO, true), 64);
        assert_eq!(next_limit(48, 64, Duration::ZERO, false), 48, "not reached: no need for more");
    }
}
