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
//! **The admission rate adapts to the CPU.** A request has to be read and parsed before it can
//! be turned away, and under twice the load the service can serve, serving as many as the cap
//! lets in and turning away the rest keeps the CPU saturated: every request, admitted or not,
//! then waits in its socket for its turn. So a regulator reads the process's CPU time every
//! [`REGULATE_EVERY`] (`/proc/self/stat`): while more than [`BUSY_HIGH`] of the cores it may
//! use are busy and requests are being turned away (or the cap is reached), the requests
//! admitted per window drop to nine tenths of what arrived; under [`BUSY_LOW`] they grow again
//! by an eighth a window, until unbounded. Below capacity the CPU has room and nothing but the
//! cap applies. `faultline_request_rate_limit` is the rate now (requests a second; -1 for
//! none). (An earlier regulator, on how late a timer task ran, did not see the wait: it is in
//! the sockets, not in the runtime's queue; `BENCHMARKS.md` has both.)
//!
//! A request holds its slot from its head until its handler answers (a body still being
//! uploaded counts; the streaming of the answer does not). Exempt, so that the operator can
//! see what is going on and the long-lived streams do not hold slots for hours: the probes
//! (`/healthz`, `/readyz`), `/metrics`, and the live stream (`/fault/stream`, whose
//! connections the connection cap bounds).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// How often the regulator measures the CPU and adjusts the admission rate.
pub const REGULATE_EVERY: Duration = Duration::from_millis(100);
/// Past this share of its cores busy (and turning requests away), fewer are admitted.
pub const BUSY_HIGH: f64 = 0.8;
/// Under this share, more are admitted again.
pub const BUSY_LOW: f64 = 0.7;
/// The lowest the admission rate drops to, in requests a window (10 a second).
pub const MIN_RATE: u64 = 1;
/// No bound on the admission rate.
const UNBOUNDED: u64 = u64::MAX;
/// An admission rate above this many a window (1,000,000 a second) is no bound.
const UNBOUNDED_ABOVE: u64 = 100_000;
/// Linux's clock ticks a second for CPU times in `/proc` (`USER_HZ`, 100 on every
/// architecture it runs this on).
const TICKS_PER_SECOND: f64 = 100.0;

/// The limit, the requests being handled, and the answer for a request past the limit.
pub struct Admission {
    max: usize,
    in_flight: AtomicUsize,
    /// Requests that may be admitted in a window of the regulator ([`UNBOUNDED`]: any).
    rate: AtomicU64,
    /// Requests that arrived in this window.
    arrived: AtomicU64,
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
            in_flight: AtomicUsize::new(0),
            rate: AtomicU64::new(UNBOUNDED),
            arrived: AtomicU64::new(0),
            reached: AtomicBool::new(false),
            overloaded: serde_json::to_vec(&body).expect("error body serialises").into(),
        }
    }

    /// A slot for `request` (`None` for the exempt paths), or the answer turning it away.
    pub fn admit<B>(self: &Arc<Self>, request: &Request<B>) -> Result<Option<Slot>, Box<Response<Body>>> {
        if exempt(request.uri().path()) {
            return Ok(None);
        }
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let this_window = self.arrived.fetch_add(1, Ordering::Relaxed);
        if before < self.max && this_window < self.rate.load(Ordering::Relaxed) {
            if before + 1 == self.max {
                self.reached.store(true, Ordering::Relaxed);
            }
            return Ok(Some(Slot(self.clone())));
        }
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.reached.store(true, Ordering::Relaxed);
        metrics::counter!("faultline_requests_shed_total").increment(1);
        Err(Box::new(self.overloaded(request)))
    }

    /// Adjust the admission rate to how busy the process keeps the CPU, every
    /// [`REGULATE_EVERY`], until the task is aborted (see the module's documentation). Does
    /// nothing where the process's CPU time cannot be read (`/proc/self/stat`: Linux).
    pub async fn regulate(self: Arc<Self>) {
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let Some(mut cpu_before) = cpu_ticks() else { return };
        let mut at_before = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(REGULATE_EVERY).await;
            let (Some(cpu), at) = (cpu_ticks(), tokio::time::Instant::now()) else { return };
            let elapsed_ticks = (at - at_before).as_secs_f64() * TICKS_PER_SECOND;
            let busy = (cpu - cpu_before) as f64 / (elapsed_ticks * cores).max(1.0);
            (cpu_before, at_before) = (cpu, at);
            let reached = self.reached.swap(false, Ordering::Relaxed);
            let arrived = self.arrived.swap(0, Ordering::Relaxed);
            let rate = self.rate.load(Ordering::Relaxed);
            let next = next_rate(rate, arrived, busy, reached);
            if next != rate {
                self.rate.store(next, Ordering::Relaxed);
                let per_second =
                    if next == UNBOUNDED { -1.0 } else { next as f64 / REGULATE_EVERY.as_secs_f64() };
                metrics::gauge!("faultline_request_rate_limit").set(per_second);
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

/// The process's CPU time so far, user and system, in clock ticks (`/proc/self/stat`).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name (in parentheses, which may hold spaces): state is field 3,
    // utime 14 and stime 15.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The admission rate (requests a window) after a window in which `arrived` requests arrived,
/// the process kept the CPU `busy` (0 to 1 of the cores it may use), and a limit was `reached`
/// (or not). Lowered to nine tenths of what arrived, or of the rate, when the CPU is past
/// [`BUSY_HIGH`] and requests are being turned away or wait for a slot (the process is the
/// cause, not a neighbour); raised by an eighth (at least one) while it is under [`BUSY_LOW`],
/// until unbounded again.
fn next_rate(rate: u64, arrived: u64, busy: f64, reached: bool) -> u64 {
    if busy >= BUSY_HIGH && reached {
        return (rate.min(arrived) * 9 / 10).max(MIN_RATE);
    }
    if busy >= BUSY_LOW || rate == UNBOUNDED {
        return rate;
    }
    let grown = rate + (rate / 8).max(1);
    if grown > UNBOUNDED_ABOVE { UNBOUNDED } else { grown }
}

/// Paths that are never shed.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/fault/stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_drops_when_the_cpu_is_busy_at_a_limit_and_grows_back_when_it_is_not() {
        assert_eq!(next_rate(UNBOUNDED, 1_000, 0.95, true), 900, "nine tenths of what arrived");
        assert_eq!(next_rate(900, 2_000, 0.95, true), 810, "nine tenths of the rate, when lower");
        assert_eq!(next_rate(UNBOUNDED, 1_000, 0.95, false), UNBOUNDED, "busy, but no limit reached");
        assert_eq!(next_rate(1, 2_000, 0.95, true), MIN_RATE);
        assert_eq!(next_rate(810, 2_000, 0.75, true), 810, "between the two marks: kept");
        assert_eq!(next_rate(800, 2_000, 0.5, true), 900);
        assert_eq!(next_rate(4, 0, 0.1, false), 5, "at least one more");
        assert_eq!(next_rate(95_000, 0, 0.1, false), UNBOUNDED, "high enough to be no bound");
    }

    #[test]
    fn the_process_cpu_time_is_read() {
        assert!(cpu_ticks().is_some(), "/proc/self/stat has utime and stime");
    }
}
