//! Faults in from other tools: `POST /integrations/alertmanager`, Prometheus Alertmanager's
//! webhook. Each alert becomes a trigger or a resolve on the same path as `POST /fault/events`
//! (one transaction per payload), deduplicated by the alert's fingerprint.

use axum::Json;
use axum::extract::State;
use faultline_core::Permission;
use faultline_core::ingest::Outcome;
use faultline_core::time::now_micros;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(alertmanager))
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
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
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
            Outcome::Deduplicated | Outcome::NoOpenFault => receipt.unchanged += 1,
        }
    }
    count_alerts("triggered", receipt.triggered as u64);
    count_alerts("resolved", receipt.resolved as u64);
    count_alerts("unchanged", receipt.unchanged as u64);
    Ok(Json(receipt))
}

/// `faultline_integration_alerts_total{source, outcome}`: alerts received, by what they did
/// (`triggered`, `resolved`, `unchanged`), and payloads `rejected` (400) or alerts `failed` (503).
fn count_alerts(outcome: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!("faultline_integration_alerts_total", "source" => "alertmanager", "outcome" => outcome)
            .increment(n);
    }
}
