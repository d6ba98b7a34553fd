//! The Faults resource: `POST /fault`, `GET /fault`, `GET /fault/{faultId}`,
//! `DELETE /fault/{faultId}`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use faultline_core::Permission;
use faultline_core::cursor::Position;
use faultline_core::fault::{Fault, FaultStatus, NewFault, Severity};
use faultline_core::filter::ListRequest;
use faultline_core::time::{format_micros, now_micros};
use faultline_store::{FaultQuery, Written};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::etag::json_bytes_with_etag;
use crate::extract::{JsonBody, QueryPairs};
use crate::idempotency::{Begun, IdempotencyKey, render_json, replay};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_faults, create_fault)).routes(routes!(get_fault, delete_fault))
}

/// A comment on a fault.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentView {
    #[schema(example = "usr_31pkd1t8FvW7qZv0jG2a9kH5mB1")]
    pub user_id: String,
    #[schema(example = "ISP ticket #4411 opened")]
    pub comment: String,
    #[schema(example = "2025-10-21T13:05:00.000000Z")]
    pub created_at: String,
}

/// A fault, as every operation answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaultView {
    #[schema(example = "flt_31pkd1t8FvW7qZv0jG2a9kH5mB1")]
    pub id: String,
    #[schema(example = "tun_8a7bQx")]
    pub resource_id: String,
    #[schema(example = "cus_31pkd1t8FvW7qZv0jG2a9kH5mB1")]
    pub customer_id: String,
    #[schema(example = "wantunnel-monitor")]
    pub microservice_id: String,
    #[serde(rename = "type")]
    #[schema(example = "wantunnel")]
    pub fault_type: String,
    pub status: FaultStatus,
    pub severity: Severity,
    #[schema(example = "WAN1 to DC-East is down")]
    pub message: String,
    #[schema(example = "No IPsec keepalive for 90 s")]
    pub cause: String,
    /// First detection, RFC 3339 UTC with six fractional digits.
    #[schema(example = "2025-10-21T13:00:00.000000Z")]
    pub created_at: String,
    /// Null while unresolved.
    #[schema(example = json!(null))]
    pub resolved_at: Option<String>,
    /// Pipe-separated ancestors, then the resource.
    #[schema(example = "site_8a7bQx|dev_2j4kLm|tun_8a7bQx")]
    pub resource_ancestry_path: String,
    /// Unix seconds at which the record expires under the retention policy.
    #[schema(example = 1795000000)]
    pub ttl: i64,
    /// Oldest first.
    pub comments: Vec<CommentView>,
    /// [ext] The site this fault belongs to: the first `site_…` element of the ancestry path.
    #[schema(example = "site_8a7bQx")]
    pub site_id: Option<String>,
    /// [ext] The site's name (sent with its heartbeats or set by `PUT /sites/{site_id}`); null
    /// when the fault has no site or the site no name.
    #[schema(example = "Branch-025")]
    pub site_name: Option<String>,
}

impl From<Fault> for FaultView {
    fn from(f: Fault) -> Self {
        FaultView {
            id: f.id,
            resource_id: f.resource_id,
            customer_id: f.customer_id,
            microservice_id: f.microservice_id,
            fault_type: f.fault_type,
            status: f.status,
            severity: f.severity,
            message: f.message,
            cause: f.cause,
            created_at: format_micros(f.created_at),
            resolved_at: f.resolved_at.map(format_micros),
            resource_ancestry_path: f.resource_ancestry_path,
            ttl: f.ttl,
            comments: f
                .comments
                .into_iter()
                .map(|c| CommentView {
                    user_id: c.user_id,
                    comment: c.comment,
                    created_at: format_micros(c.created_at),
                })
                .collect(),
            site_id: f.site_id,
            site_name: f.site_name,
        }
    }
}

/// The body of `POST /fault`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; the handler validates the JSON field by field
pub struct CreateFault {
    /// The thing that faulted.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000]*\S[^\u0000]*$",
        example = "tun_8a7bQx"
    )]
    resource_id: String,
    /// A slug category, e.g. site, wantunnel, wan-degradation, reboot.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[a-z0-9][a-z0-9._-]*$", example = "wantunnel")]
    fault_type: String,
    /// Case-insensitive on input; answered upper case.
    severity: Severity,
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\u0000]*\S[^\u0000]*$",
        example = "WAN1 to DC-East is down"
    )]
    message: String,
    /// Default "".
    #[schema(max_length = 2000, pattern = r"^[^\u0000]*$", example = "No IPsec keepalive for 90 s")]
    cause: Option<String>,
    /// Default "manual-api-entry".
    #[schema(max_length = 128, pattern = r"^[^\u0000]*$", example = "wantunnel-monitor")]
    microservice_id: Option<String>,
    /// Pipe-separated ancestors then the resource (at most 32 non-empty elements); default: the resource id.
    #[schema(
        max_length = 2048,
        pattern = r"^[^|\u0000]*\S[^|\u0000]*(\|[^|\u0000]*\S[^|\u0000]*){0,31}$",
        example = "site_8a7bQx|dev_2j4kLm|tun_8a7bQx"
    )]
    resource_ancestry_path: Option<String>,
    /// [ext] Back-fill the first detection time: RFC 3339, not in the future, not older than the retention period.
    #[schema(format = DateTime)]
    created_at: Option<String>,
}

/// Query parameters of `GET /fault`. List-valued filters take comma lists.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; the handler parses it to name bad parameters
pub struct ListParams {
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<u32>,
    /// Opaque cursor from the previous page's `meta.cursor`; valid only with the same filter
    /// and customer (400 cursor_invalid otherwise). Empty means the first page.
    cursor: Option<String>,
    /// Only faults created at or after this time (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only faults created before this time (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// Comma list of LOW, MEDIUM, HIGH, CRITICAL, WARNING.
    #[param(
        example = "HIGH,CRITICAL",
        pattern = r"^(LOW|MEDIUM|HIGH|CRITICAL|WARNING)(,(LOW|MEDIUM|HIGH|CRITICAL|WARNING)){0,49}$"
    )]
    severity: Option<String>,
    /// [ext] Comma list of unresolved, resolved.
    #[param(pattern = r"^(unresolved|resolved)(,(unresolved|resolved)){0,49}$")]
    status: Option<String>,
    /// [ext] Comma list of types (at most 50 values of at most 255 characters).
    #[param(rename = "type", pattern = r"^[^,\u0000]{0,255}(,[^,\u0000]{0,255}){0,49}$")]
    fault_type: Option<String>,
    /// [ext] Comma list of resource ids.
    #[param(pattern = r"^[^,\u0000]{0,255}(,[^,\u0000]{0,255}){0,49}$")]
    resource_id: Option<String>,
    /// [ext] Comma list; matches any element of the ancestry path or the resource id.
    #[param(pattern = r"^[^,\u0000]{0,255}(,[^,\u0000]{0,255}){0,49}$")]
    site: Option<String>,
    /// [ext] Comma list of reporting services.
    #[param(pattern = r"^[^,\u0000]{0,255}(,[^,\u0000]{0,255}){0,49}$")]
    microservice_id: Option<String>,
    /// [ext] Case-insensitive text in message or cause.
    #[param(max_length = 200, pattern = r"^[^\u0000]*$")]
    q: Option<String>,
    /// [ext] Unresolved, or created in the last 24 hours.
    recent: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListMeta {
    /// Faults in this page.
    pub count: usize,
    /// Pass as `cursor` for the next page; null on the last page.
    pub cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FaultList {
    pub data: Vec<FaultView>,
    pub meta: ListMeta,
}

/// List faults, newest first.
#[utoipa::path(get, path = "/fault", tag = "Faults", operation_id = "listFaults", security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of faults; with Accept: text/csv (columns: id, created_at, resolved_at, status, severity, type, resource_id, site_id, microservice_id, message, cause, resource_ancestry_path, ttl, comment_count, site_name) or application/x-ndjson (one Fault a line), every matching fault, streamed, limit and cursor ignored",
            content((FaultList = "application/json"), (String = "text/csv"), (String = "application/x-ndjson")),
            headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn list_faults(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let principal = auth.require(Permission::FaultsRead)?;
    let mut request = ListRequest::from_pairs(&pairs)?;
    request.filter.scope = principal.scope.clone();
    let format = crate::export::Format::negotiate(&headers);
    if format != crate::export::Format::Json {
        return Ok(crate::export::stream(
            state.store.clone(),
            principal.customer_id.clone(),
            request.filter,
            format,
        ));
    }
    let canonical = request.filter.canonical();
    let after = match &request.cursor {
        None => None,
        Some(cursor) => {
            Some(state.cursors.decode(&principal.customer_id, &canonical, cursor).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::CursorInvalid,
                    "The 'cursor' parameter is invalid: it was not issued for this filter, or was altered.",
                )
            })?)
        }
    };
    let query = FaultQuery {
        filter: &request.filter,
        after: after.as_ref(),
        limit: request.limit + 1,
        now: now_micros(),
    };
    let mut page = crate::fault_json::PageWriter::new(request.limit as usize);
    state.store.list_faults_into(&principal.customer_id, &query, &mut page).await?;
    let cursor = page.has_more().then(|| {
        let (created_at, id) = page.last().expect("a full page has a last fault");
        let position = Position { created_at, id: id.to_owned() };
        state.cursors.encode(&principal.customer_id, &canonical, &position)
    });
    json_bytes_with_etag(&headers, page.finish(cursor.as_deref()))
}

/// Create a fault.
#[utoipa::path(post, path = "/fault", tag = "Faults", operation_id = "createFault", security(("bearer" = [])),
    request_body = CreateFault,
    responses(
        (status = 201, body = FaultView, headers(("Location" = String, description = "/fault/{faultId}"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_fault(
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
    let now = now_micros();
    let retention = state.config.retention_seconds();
    let new = NewFault::from_json(&body, now, now - retention * 1_000_000)?;
    let mut fault = Fault::create(&principal.customer_id, new, now, retention);
    // The answer names the fault's site as every read of it will (one primary-key lookup).
    if let Some(site_id) = &fault.site_id {
        fault.site_name = state
            .store
            .site_names(&principal.customer_id, std::slice::from_ref(site_id))
            .await?
            .remove(site_id);
    }
    let render = |faults: &[Fault]| render_json(&FaultView::from(faults[0].clone()));
    let record = keyed.as_ref().map(|k| k.record(StatusCode::CREATED, render));
    let written = state
        .store
        .insert_faults(std::slice::from_ref(&fault), principal.credential_id(), record.as_ref())
        .await?;
    if let Written::Replayed(stored) = written {
        return Ok(replay(stored));
    }
    let location = HeaderValue::from_str(&format!("/fault/{}", fault.id)).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(FaultView::from(fault)))
        .into_response())
}

/// One fault.
#[utoipa::path(get, path = "/fault/{faultId}", tag = "Faults", operation_id = "getFault", security(("bearer" = [])),
    params(("faultId" = String, Path, description = "flt_…")),
    responses(
        (status = 200, body = FaultView, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn get_fault(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(fault_id): Path<String>,
) -> ApiResult<Response> {
    let principal = auth.require(Permission::FaultsRead)?;
    // An access token reads only its scope; outside it, a fault looks missing.
    let fault = state
        .store
        .get_fault(&principal.customer_id, &fault_id)
        .await?
        .filter(|f| principal.scope.as_ref().is_none_or(|scope| scope.matches(f)))
        .ok_or_else(ApiError::not_found)?;
    json_bytes_with_etag(&headers, crate::fault_json::fault(&fault))
}

/// Delete a fault for good.
#[utoipa::path(delete, path = "/fault/{faultId}", tag = "Faults", operation_id = "deleteFault", security(("bearer" = [])),
    params(("faultId" = String, Path, description = "flt_…")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn delete_fault(
    State(state): State<AppState>,
    auth: Auth,
    Path(fault_id): Path<String>,
) -> ApiResult<StatusCode> {
    let principal = auth.require(Permission::FaultsDelete)?;
    if state.store.delete_fault(&principal.customer_id, &fault_id, principal.credential_id()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}
