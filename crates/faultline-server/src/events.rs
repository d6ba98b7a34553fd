//! `POST /fault/events`: the monitoring ingest path, up to 1,000 trigger/resolve events a
//! request, applied in order in one transaction.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use faultline_core::Permission;
use faultline_core::ingest::{Outcome, parse_batch};
use faultline_core::time::now_micros;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::idempotency::{Begun, IdempotencyKey, render_json, replay};
use crate::state::AppState;
use faultline_store::Written;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ingest))
}

/// One monitoring event.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; the handler validates the JSON
pub struct IngestEventBody {
    /// `trigger` opens (or deduplicates onto) the fault of (resource_id, type); `resolve` closes it.
    #[schema(example = "trigger", pattern = "^(trigger|resolve)$")]
    action: String,
    #[schema(min_length = 1, max_length = 255, example = "tun_8a7bQx")]
    resource_id: String,
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[a-z0-9][a-z0-9._-]*$", example = "wantunnel")]
    fault_type: String,
    /// Required for a trigger.
    severity: Option<faultline_core::fault::Severity>,
    /// Required for a trigger.
    #[schema(max_length = 1000)]
    message: Option<String>,
    #[schema(max_length = 2000)]
    cause: Option<String>,
    #[schema(max_length = 128)]
    microservice_id: Option<String>,
    #[schema(max_length = 2048)]
    resource_ancestry_path: Option<String>,
    /// When it happened (default now): a trigger's `created_at`, a resolve's `resolved_at`.
    #[schema(format = DateTime)]
    occurred_at: Option<String>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct IngestRequest {
    #[schema(min_items = 1, max_items = 1000)]
    events: Vec<IngestEventBody>,
}

/// The result of one event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventResult {
    /// The fault the event opened, deduplicated onto or resolved; null for `no_open_fault`.
    pub fault_id: Option<String>,
    /// `created`, `deduplicated`, `resolved` or `no_open_fault`.
    #[schema(example = "created")]
    pub outcome: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResults {
    /// One result per event, in order.
    pub results: Vec<EventResult>,
}

/// [ext] Ingest monitoring events with deduplication.
#[utoipa::path(post, path = "/fault/events", tag = "Faults", operation_id = "ingestEvents",
    security(("bearer" = [])), request_body = IngestRequest,
    responses((status = 200, body = IngestResults),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn ingest(
    State(state): State<AppState>,
    auth: Auth,
    idempotency_key: IdempotencyKey,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let principal = auth.require(Permission::FaultsWrite)?;
    let keyed = match idempotency_key.begin(&*state.store, principal, &body).await? {
        Begun::Run(keyed) => keyed,
        Begun::Replay(answer) => return Ok(answer),
    };
    let retention = state.config.retention_seconds();
    let events = parse_batch(&principal.customer_id, &body, now_micros(), retention)?;
    let render = |outcomes: &[faultline_store::EventResult]| render_json(&IngestResults::from(outcomes));
    let record = keyed.as_ref().map(|k| k.record(StatusCode::OK, render));
    match state
        .store
        .apply_events(&principal.customer_id, &events, retention, principal.credential_id(), record.as_ref())
        .await?
    {
        Written::Done(outcomes) => {
            count_outcomes(&outcomes);
            Ok(Json(IngestResults::from(outcomes.as_slice())).into_response())
        }
        Written::Replayed(stored) => Ok(replay(stored)),
    }
}

/// `faultline_ingest_events_total{outcome}`: ingested events by what they did.
fn count_outcomes(outcomes: &[faultline_store::EventResult]) {
    let mut counts = [0u64; Outcome::ALL.len()];
    for (_, outcome) in outcomes {
        counts[*outcome as usize] += 1;
    }
    for outcome in Outcome::ALL {
        if counts[outcome as usize] > 0 {
            metrics::counter!("faultline_ingest_events_total", "outcome" => outcome.as_str())
                .increment(counts[outcome as usize]);
        }
    }
}

impl From<&[faultline_store::EventResult]> for IngestResults {
    fn from(outcomes: &[faultline_store::EventResult]) -> Self {
        let results = outcomes
            .iter()
            .map(|(fault_id, outcome)| EventResult { fault_id: fault_id.clone(), outcome: outcome.as_str() })
            .collect();
        IngestResults { results }
    }
}
