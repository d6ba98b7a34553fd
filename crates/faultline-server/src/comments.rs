//! `POST /fault/{faultId}/comment`: add a comment, answer the whole fault.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use faultline_core::Permission;
use faultline_core::fault::{Comment, Fault, comment_text};
use faultline_core::ids::IdKind;
use faultline_core::time::now_micros;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::faults::FaultView;
use crate::idempotency::{Begun, IdempotencyKey, render_json, replay};
use crate::state::AppState;
use faultline_store::Written;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(add_comment))
}

/// The body of a comment.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; the handler validates the JSON
pub struct NewComment {
    /// 1..2000 characters after trimming; blank is refused.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000]*\S[^\u0000]*$",
        example = "ISP ticket #4411 opened"
    )]
    comment: String,
}

/// Add a comment to a fault.
#[utoipa::path(post, path = "/fault/{faultId}/comment", tag = "Comments", operation_id = "addComment",
    security(("bearer" = [])), params(("faultId" = String, Path, description = "flt_…")), request_body = NewComment,
    responses((status = 201, description = "The whole fault, the new comment last", body = FaultView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn add_comment(
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
    let text = comment_text(&body, true)?.unwrap_or_default();
    let comment = Comment {
        id: IdKind::Comment.new_id(),
        user_id: principal.user_id.clone(),
        comment: text,
        created_at: now_micros(),
    };
    let render = |fault: &Fault| render_json(&FaultView::from(fault.clone()));
    let record = keyed.as_ref().map(|k| k.record(StatusCode::CREATED, render));
    let fault = match state
        .store
        .add_comment(&principal.customer_id, &fault_id, &comment, principal.credential_id(), record.as_ref())
        .await?
    {
        Written::Done(fault) => fault.ok_or_else(ApiError::not_found)?,
        Written::Replayed(stored) => return Ok(replay(stored)),
    };
    Ok((StatusCode::CREATED, axum::Json(FaultView::from(fault))).into_response())
}
