//! `POST /heartbeat` and the offline detector: most outages are not reported, they are
//! inferred from silence. A site is created by its first heartbeat; one that has missed
//! `heartbeat_misses` heartbeats in a row gets a `CRITICAL` `site` fault, begun at its first
//! missed heartbeat, which its next heartbeat resolves. A site that never reported is never
//! offline.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use faultline_core::Permission;
use faultline_core::heartbeat::{OfflinePolicy, parse_heartbeats};
use faultline_core::time::{format_micros, now_micros};
use faultline_store::{Store, StoreResult, Written};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::idempotency::{Begun, IdempotencyKey, render_json, replay};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(heartbeat))
}

/// One site's heartbeat.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; the handler validates the JSON
pub struct HeartbeatBody {
    /// The site that is alive; created on its first heartbeat.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^|\s](?:[^|]*[^|\s])?$",
        example = "site_8a7bQx"
    )]
    site_id: String,
    /// A display name for the site, used in its outage's message.
    #[schema(max_length = 200, example = "Lyon branch")]
    name: Option<String>,
}

/// One heartbeat, or a batch of them.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct HeartbeatRequest {
    /// A single heartbeat's site (when `heartbeats` is absent).
    #[schema(min_length = 1, max_length = 255, example = "site_8a7bQx")]
    site_id: Option<String>,
    #[schema(max_length = 200)]
    name: Option<String>,
    /// A batch of 1 to 1,000 heartbeats.
    #[schema(min_items = 1, max_items = 1000)]
    heartbeats: Option<Vec<HeartbeatBody>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatReceipt {
    /// How many distinct sites the request reported alive.
    #[schema(example = 1)]
    pub accepted: usize,
    /// When the service received them: every site's last heartbeat is now this.
    #[schema(example = "2025-10-21T13:00:00.000000Z")]
    pub received_at: String,
    /// The outages (site faults) these heartbeats ended.
    pub resolved: Vec<String>,
}

/// [ext] Report sites alive.
///
/// A single heartbeat (`site_id`, optional `name`) or a batch (`heartbeats`, 1 to 1,000).
/// A site that has missed the configured number of heartbeats in a row (10 at a 30 s interval
/// by default) is offline: the service opens a `CRITICAL` `site` fault for it, begun at the
/// first missed heartbeat; the site's next heartbeat resolves that fault at its arrival.
#[utoipa::path(post, path = "/heartbeat", tag = "Heartbeats", operation_id = "postHeartbeat",
    security(("bearer" = [])), request_body = HeartbeatRequest,
    responses((status = 200, body = HeartbeatReceipt),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    auth: Auth,
    idempotency_key: IdempotencyKey,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let principal = auth.require(Permission::HeartbeatsWrite)?;
    let keyed = match idempotency_key.begin(&*state.store, principal, &body).await? {
        Begun::Run(keyed) => keyed,
        Begun::Replay(answer) => return Ok(answer),
    };
    let beats = parse_heartbeats(&body)?;
    let at = now_micros();
    let receipt = |resolved: &[String]| HeartbeatReceipt {
        accepted: beats.len(),
        received_at: format_micros(at),
        resolved: resolved.to_vec(),
    };
    let (accepted, received_at) = (beats.len(), format_micros(at));
    let render = move |resolved: &[String]| {
        render_json(&HeartbeatReceipt {
            accepted,
            received_at: received_at.clone(),
            resolved: resolved.to_vec(),
        })
    };
    let record = keyed.as_ref().map(|k| k.record(StatusCode::OK, render));
    let retention = state.config.retention_seconds();
    match state
        .store
        .record_heartbeats(
            &principal.customer_id,
            &beats,
            at,
            retention,
            principal.credential_id(),
            record.as_ref(),
        )
        .await?
    {
        Written::Done(resolved) => {
            metrics::counter!("faultline_heartbeats_total").increment(beats.len() as u64);
            Ok(Json(receipt(&resolved)).into_response())
        }
        Written::Replayed(stored) => Ok(replay(stored)),
    }
}

/// Sites the detector handles per transaction.
pub const DETECT_BATCH: u32 = 500;

/// How often the detector looks for silent sites: every interval, within 100 ms..5 s. An
/// outage's start is exact whenever it is found; this only bounds how late it is noticed.
pub fn detector_period(interval: Duration) -> Duration {
    interval.clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// One detector sweep at `now`: every silent site without an outage gets one, in batches of
/// [`DETECT_BATCH`]. Returns how many sites went offline.
pub async fn detect(
    store: &dyn Store,
    policy: &OfflinePolicy,
    now: i64,
    retention_seconds: i64,
) -> StoreResult<usize> {
    let started = Instant::now();
    let (mut offline, mut cursor) = (0, None);
    loop {
        let (handled, last) =
            store.detect_offline(policy, now, retention_seconds, DETECT_BATCH, cursor.as_ref()).await?;
        offline += handled;
        if handled < DETECT_BATCH as usize {
            break;
        }
        cursor = last;
    }
    let took = started.elapsed();
    metrics::histogram!("faultline_detector_sweep_seconds").record(took.as_secs_f64());
    if offline > 0 {
        metrics::counter!("faultline_sites_offline_total").increment(offline as u64);
        tracing::info!(sites = offline, took_ms = took.as_millis() as u64, "detector: sites went offline");
    }
    Ok(offline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detector_sweeps_every_interval_within_100_ms_and_5_s() {
        assert_eq!(detector_period(Duration::from_secs(30)), Duration::from_secs(5));
        assert_eq!(detector_period(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(detector_period(Duration::from_millis(10)), Duration::from_millis(100));
    }
}
