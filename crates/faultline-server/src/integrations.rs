//! Faults in from other tools, on the same path as `POST /fault/events`:
//!
//! - `POST /integrations/alertmanager`, Prometheus Alertmanager's webhook: each alert a trigger
//!   or a resolve (one transaction per payload), deduplicated by the alert's fingerprint;
//! - `POST /integrations/pagerduty/v2/enqueue`, one event of the PagerDuty Events API v2, with
//!   PagerDuty's answers, so that a PagerDuty client pointed at faultline works unchanged.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use faultline_core::Permission;
use faultline_core::ingest::Outcome;
use faultline_core::time::now_micros;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody, ErrorCode, OwnBody};
use crate::extract::JsonBody;
use crate::state::AppState;

/// The routes behind the `Authorization` header.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(alertmanager))
}

/// The Alertmanager route.
const PATH: &str = "/integrations/alertmanager";

/// The routes that authenticate themselves (a PagerDuty event carries its key in its body).
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(pagerduty))
}

/// One alert of an Alertmanager webhook payload.
#[derive(Debug, ToSchema)]
#[allow(dead_code, non_snake_case)] // documents the body (Alertmanager's names); the handler validates the JSON
pub struct AlertmanagerAlert {
    /// `firing` opens (or deduplicates onto) the alert's fault; `resolved` closes it.
    #[schema(example = "firing", pattern = "^(firing|resolved)$")]
    status: String,
    /// `alertname` (required for a firing alert) becomes the fault's type; the resource, site and
    /// severity labels are configurable (`docs/integrations.md`).
    #[schema(value_type = Object, example = json!({"alertname": "NodeDown", "instance": "router-7:9100", "site": "site_lyon", "severity": "critical"}))]
    labels: Option<serde_json::Value>,
    /// `summary` becomes the message, `description` the cause.
    #[schema(value_type = Object)]
    annotations: Option<serde_json::Value>,
    #[schema(format = DateTime)]
    startsAt: Option<String>,
    #[schema(format = DateTime)]
    endsAt: Option<String>,
    generatorURL: Option<String>,
    /// The alert's identity: its fault is deduplicated by `alertmanager:<fingerprint>`.
    #[schema(min_length = 1, max_length = 128, example = "3f2a9c81d2e0b7a4")]
    fingerprint: String,
}

/// Alertmanager's webhook payload (version 4).
#[derive(Debug, ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct AlertmanagerPayload {
    #[schema(example = "4", pattern = "^4$")]
    version: String,
    receiver: Option<String>,
    status: Option<String>,
    groupKey: Option<String>,
    externalURL: Option<String>,
    #[schema(max_items = 1000)]
    alerts: Vec<AlertmanagerAlert>,
}

/// What a payload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertmanagerReceipt {
    /// Alerts in the payload.
    pub alerts: usize,
    /// Alerts that opened a fault.
    pub triggered: usize,
    /// Alerts that resolved a fault.
    pub resolved: usize,
    /// Alerts that changed nothing: a firing alert whose fault is open already, or a resolved
    /// one with no open fault (a group sent again).
    pub unchanged: usize,
}

/// [ext] Receive Prometheus Alertmanager's webhook.
///
/// Point an Alertmanager `webhook_configs` receiver here with `http_config.authorization`
/// carrying an API key with `faults:write`. Malformed payloads answer 400, which Alertmanager
/// does not retry; a store failure answers 503, which it does.
#[utoipa::path(post, path = "/integrations/alertmanager", tag = "Integrations", operation_id = "alertmanagerWebhook",
    security(("bearer" = [])), request_body = AlertmanagerPayload,
    responses((status = 200, body = AlertmanagerReceipt),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, description = "The database cannot be reached, or the key's rate limit is spent (with `Retry-After`): Alertmanager retries", body = ErrorBody)))]
pub async fn alertmanager(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<AlertmanagerReceipt>> {
    let principal = auth.require(Permission::FaultsWrite)?;
    let retention = state.config.retention_seconds();
    let parsed = faultline_core::alertmanager::parse_payload(
        &principal.customer_id,
        &body,
        &state.config.alertmanager_labels,
        now_micros(),
        retention,
    );
    let events = match parsed {
        Ok(events) => events,
        Err(err) => {
            count_alerts("rejected", 1);
            return Err(err.into());
        }
    };
    let written = state
        .store
        .apply_events(&principal.customer_id, &events, retention, principal.credential_id(), None)
        .await;
    let outcomes = match written {
        // Without an Idempotency-Key a write is never replayed.
        Ok(written) => written.done().unwrap_or_default(),
        Err(err) => {
            count_alerts("failed", events.len() as u64);
            return Err(err.into());
        }
    };
    let mut receipt = AlertmanagerReceipt { alerts: outcomes.len(), triggered: 0, resolved: 0, unchanged: 0 };
    for (_, outcome) in &outcomes {
        match outcome {
            Outcome::Created => receipt.triggered += 1,
            Outcome::Resolved => receipt.resolved += 1,
            Outcome::Deduplicated | Outcome::NoOpenFault | Outcome::Acknowledged => receipt.unchanged += 1,
        }
    }
    count_alerts("triggered", receipt.triggered as u64);
    count_alerts("resolved", receipt.resolved as u64);
    count_alerts("unchanged", receipt.unchanged as u64);
    Ok(Json(receipt))
}

/// Alertmanager retries a 5xx answer and drops a payload answered with any other error, so on
/// its route a spent rate limit answers 503 (with `Retry-After`) instead of 429: the alerts wait
/// instead of being lost.
pub async fn alertmanager_retries_rate_limits(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let ours = request.uri().path() == PATH;
    let mut response = next.run(request).await;
    if ours
        && response.status() == StatusCode::TOO_MANY_REQUESTS
        && let Some(mut err) = response.extensions_mut().remove::<crate::error::ApiError>()
    {
        err.code = ErrorCode::ServiceUnavailable;
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response.extensions_mut().insert(err);
    }
    response
}

/// `faultline_integration_alerts_total{source, outcome}`: alerts received, by what they did
/// (`triggered`, `resolved`, `unchanged`), and payloads `rejected` (400) or alerts `failed` (503).
fn count_alerts(outcome: &'static str, n: u64) {
    count("alertmanager", outcome, n);
}

fn count(source: &'static str, outcome: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!("faultline_integration_alerts_total", "source" => source, "outcome" => outcome)
            .increment(n);
    }
}

/// An event of the PagerDuty Events API v2.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; the handler validates the JSON
pub struct PagerDutyEvent {
    /// An API key with `faults:write` (or send it as `Authorization: Bearer`).
    #[schema(example = "flk_…")]
    routing_key: Option<String>,
    #[schema(example = "trigger", pattern = "^(trigger|acknowledge|resolve)$")]
    event_action: String,
    /// The alert's identity, at most 255 characters; made up (and returned) for a trigger without
    /// one; required to acknowledge or resolve.
    #[schema(max_length = 255, example = "db-7/disk")]
    dedup_key: Option<String>,
    /// Required to trigger.
    payload: Option<PagerDutyPayload>,
    #[schema(value_type = Option<Vec<Object>>)]
    images: Option<Vec<serde_json::Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    links: Option<Vec<serde_json::Value>>,
}

/// What a PagerDuty trigger reports.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct PagerDutyPayload {
    /// The fault's message (at most 1,000 characters are kept).
    #[schema(example = "Disk full on db-7")]
    summary: String,
    /// The fault's `resource_id`.
    #[schema(example = "db-7")]
    source: String,
    #[schema(pattern = "^(critical|error|warning|info)$", example = "error")]
    severity: String,
    /// The fault's `created_at` (default now).
    #[schema(format = DateTime)]
    timestamp: Option<String>,
    /// Used as the fault's type when there is no `class`.
    component: Option<String>,
    /// The site: the first element of the fault's `resource_ancestry_path`.
    group: Option<String>,
    /// The fault's type.
    class: Option<String>,
    #[schema(value_type = Option<Object>)]
    custom_details: Option<serde_json::Value>,
}

/// PagerDuty's answer to an accepted event.
#[derive(Debug, Serialize, ToSchema)]
pub struct PagerDutyAccepted {
    #[schema(example = "success")]
    pub status: &'static str,
    #[schema(example = "Event processed")]
    pub message: &'static str,
    pub dedup_key: String,
}

/// PagerDuty's answer to an event it cannot take: every problem listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct PagerDutyInvalid {
    #[schema(example = "invalid event")]
    pub status: &'static str,
    #[schema(example = "Event object is invalid")]
    pub message: &'static str,
    pub errors: Vec<String>,
}

/// A 400 in PagerDuty's format.
fn invalid_event(errors: Vec<String>) -> Response {
    count("pagerduty", "rejected", 1);
    let body = PagerDutyInvalid { status: "invalid event", message: "Event object is invalid", errors };
    let mut response = (StatusCode::BAD_REQUEST, Json(body)).into_response();
    response.extensions_mut().insert(OwnBody);
    response
}

/// [ext] Receive an event of the PagerDuty Events API v2.
///
/// Point a PagerDuty Events API v2 client (or any tool that can page PagerDuty) at
/// `<faultline>/integrations/pagerduty` as its base URL, with an API key with `faults:write` as
/// the routing key. Answers as PagerDuty does: 202 with the `dedup_key`, or 400 `invalid event`
/// listing every problem (an unknown or revoked routing key included).
#[utoipa::path(post, path = "/integrations/pagerduty/v2/enqueue", tag = "Integrations", operation_id = "pagerdutyEnqueue",
    request_body = PagerDutyEvent,
    responses((status = 202, body = PagerDutyAccepted), (status = 400, body = PagerDutyInvalid),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn pagerduty(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let body: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => return invalid_event(vec![format!("the body is not valid JSON: {err}")]),
    };
    let Some(credential) = faultline_core::pagerduty::routing_key(&body)
        .map(str::to_owned)
        .or_else(|| headers.get(header::AUTHORIZATION).and_then(crate::auth::bearer_of).map(str::to_owned))
    else {
        return invalid_event(vec!["'routing_key' is missing or blank".to_owned()]);
    };
    let principal = match crate::auth::principal_for(&state, &credential).await {
        Ok(principal) => principal,
        Err(err)
            if matches!(
                err.code,
                ErrorCode::ApiKeyInvalid | ErrorCode::TokenExpired | ErrorCode::TokenRevoked
            ) =>
        {
            return invalid_event(vec![
                "'routing_key' is invalid: not an API key of this service, or revoked".to_owned(),
            ]);
        }
        Err(err) => return err.into_response(),
    };
    if !principal.can(Permission::FaultsWrite) {
        return invalid_event(vec![
            "'routing_key' is an API key without the faults:write permission".to_owned(),
        ]);
    }
    if let Err(err) =
        crate::auth::check_rate(&state, principal.credential_id(), principal.rate_limit_per_minute)
    {
        return err.into_response();
    }
    let retention = state.config.retention_seconds();
    let new_key = || faultline_core::ids::random_base62(32);
    let event = match faultline_core::pagerduty::parse_event(
        &principal.customer_id,
        &body,
        now_micros(),
        retention,
        new_key,
    ) {
        Ok(event) => event,
        Err(errors) => return invalid_event(errors),
    };
    let written = state
        .store
        .apply_events(
            &principal.customer_id,
            std::slice::from_ref(&event.event),
            retention,
            principal.credential_id(),
            None,
        )
        .await;
    match written {
        Ok(written) => {
            let outcome = written.done().and_then(|o| o.first().map(|(_, outcome)| *outcome));
            count(
                "pagerduty",
                match outcome {
                    Some(Outcome::Created) => "triggered",
                    Some(Outcome::Resolved) => "resolved",
                    Some(Outcome::Acknowledged) => "acknowledged",
                    _ => "unchanged",
                },
                1,
            );
            let accepted = PagerDutyAccepted {
                status: "success",
                message: "Event processed",
                dedup_key: event.dedup_key,
            };
            (StatusCode::ACCEPTED, Json(accepted)).into_response()
        }
        Err(err) => {
            count("pagerduty", "failed", 1);
            crate::error::ApiError::from(err).into_response()
        }
    }
}
