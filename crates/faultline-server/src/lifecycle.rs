//! A fault's life after creation: `POST /fault/{faultId}/resolve` and
//! `GET /fault/{faultId}/timeline`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use faultline_core::Permission;
use faultline_core::fault::Fault;
use faultline_core::fault::{Comment, comment_text, expiry};
use faultline_core::ids::IdKind;
use faultline_core::time::{format_micros, now_micros};
use faultline_store::{Resolution, Written};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::faults::FaultView;
use crate::idempotency::{Begun, IdempotencyKey, render_json, replay};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(resolve_fault)).routes(routes!(timeline))
}

/// The optional body of a resolve.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; the handler validates the JSON
pub struct ResolveRequest {
    /// Added in the same transaction as the resolve.
    #[schema(min_length = 1, max_length = 2000, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    comment: Option<String>,
}

/// [ext] Resolve a fault by hand. Idempotent: resolving a resolved fault changes nothing.
#[utoipa::path(post, path = "/fault/{faultId}/resolve", tag = "Faults", operation_id = "resolveFault",
    security(("bearer" = [])), params(("faultId" = String, Path, description = "flt_…")),
    request_body(content = Option<ResolveRequest>, description = "Optional"),
    responses((status = 200, body = FaultView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn resolve_fault(
    State(state): State<AppState>,
    auth: Auth,
    idempotency_key: IdempotencyKey,
    Path(fault_id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let principal = auth.require(Permission::FaultsWrite)?;
    let keyed = match idempotency_key.begin(&*state.store, principal, &body).await? {
        Begun::Run(keyed) => keyed,
        Begun::Replay(answer) => return Ok(answer),
    };
    let now = now_micros();
    let comment = comment_text(&body, false)?.map(|text| Comment {
        id: IdKind::Comment.new_id(),
        user_id: principal.user_id.clone(),
        comment: text,
        created_at: now,
    });
    let ttl = expiry(now, state.config.retention_seconds());
    let render = |fault: &Fault| render_json(&FaultView::from(fault.clone()));
    let record = keyed.as_ref().map(|k| k.record(StatusCode::OK, render));
    let resolved = state
        .store
        .resolve_fault(
            &principal.customer_id,
            &fault_id,
            Resolution { at: now, ttl, comment: comment.as_ref() },
            principal.credential_id(),
            record.as_ref(),
        )
        .await?;
    match resolved {
        Written::Done(fault) => {
            Ok(Json(FaultView::from(fault.ok_or_else(ApiError::not_found)?)).into_response())
        }
        Written::Replayed(stored) => Ok(replay(stored)),
    }
}

/// One change in a fault's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// The event's place in the deployment-wide sequence.
    pub seq: i64,
    /// `created`, `commented`, `resolved`, `deleted`, `expired` or `token_minted`.
    #[schema(example = "resolved")]
    pub kind: String,
    /// The credential that acted: an API key id (`key_…`) or `system`.
    #[schema(example = "key_31pkd1t8FvW7qZv0jG2a9kH5mB1")]
    pub actor: String,
    pub at: String,
    /// Details of the change (e.g. the comment id).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub data: Vec<TimelineEntry>,
}

/// [ext] Every change to a fault, oldest first; kept after the fault is deleted.
#[utoipa::path(get, path = "/fault/{faultId}/timeline", tag = "Faults", operation_id = "getFaultTimeline",
    security(("bearer" = [])), params(("faultId" = String, Path, description = "flt_…")),
    responses((status = 200, body = Timeline), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn timeline(
    State(state): State<AppState>,
    auth: Auth,
    Path(fault_id): Path<String>,
) -> ApiResult<Json<Timeline>> {
    let principal = auth.require(Permission::FaultsRead)?;
    if let Some(scope) = &principal.scope {
        // An access token sees the history of the faults in its scope that still exist.
        let fault = state.store.get_fault(&principal.customer_id, &fault_id).await?;
        if !fault.is_some_and(|f| scope.matches(&f)) {
            return Err(ApiError::not_found());
        }
    }
    let events = state.store.fault_timeline(&principal.customer_id, &fault_id).await?;
    if events.is_empty() {
        return Err(ApiError::not_found());
    }
    let data = events
        .into_iter()
        .map(|e| TimelineEntry {
            seq: e.seq,
            kind: e.kind,
            actor: e.actor,
            at: format_micros(e.at),
            detail: e.detail,
        })
        .collect();
    Ok(Json(Timeline { data }))
}
