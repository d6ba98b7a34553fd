//! `/sites`: the customer's sites as operators see them — the name each shows as (sent with its
//! heartbeats, or set here and then kept), whether it is online, its last heartbeat and its open
//! faults. The name is what faults carry as `site_name` (read with each fault by the store).

use axum::Json;
use axum::extract::{Path, State};
use faultline_core::Permission;
use faultline_core::cursor::Position;
use faultline_core::heartbeat::MAX_SITE_NAME;
use faultline_core::time::{format_micros, now_micros};
use faultline_core::{Principal, fault::MAX_RESOURCE_ID};
use faultline_store::{Site, SiteQuery, SiteStatus};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{JsonBody, QueryPairs};
use crate::faults::ListMeta;
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;
const MAX_QUERY_TEXT: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_sites)).routes(routes!(get_site, name_site))
}

/// A site.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteView {
    #[schema(example = "site_8a7bQx")]
    pub site_id: String,
    /// What the site shows as; null when it has none (then its id is shown).
    #[schema(example = "Branch-025")]
    pub name: Option<String>,
    /// Who named it: `heartbeat` (the name its heartbeats send), `operator` (`PUT
    /// /sites/{site_id}`; heartbeats then leave it), or null.
    #[schema(example = "heartbeat")]
    pub named_by: Option<&'static str>,
    /// `online` (sending heartbeats), `offline` (found silent), or `unknown` (never sent one).
    #[schema(example = "online")]
    pub status: &'static str,
    #[schema(example = "2026-12-08T09:14:03.000000Z")]
    pub last_heartbeat_at: Option<String>,
    /// When it went silent (its first missed heartbeat), while offline.
    #[schema(example = json!(null))]
    pub offline_since: Option<String>,
    #[schema(example = "2026-11-02T08:00:00.000000Z")]
    pub first_seen_at: String,
    /// Its unresolved faults.
    #[schema(example = 2)]
    pub open_faults: i64,
}

impl From<Site> for SiteView {
    fn from(site: Site) -> Self {
        SiteView {
            status: site.status().as_str(),
            named_by: match (&site.name, site.named_by_operator) {
                (_, true) => Some("operator"),
                (Some(_), false) => Some("heartbeat"),
                (None, false) => None,
            },
            site_id: site.site_id,
            name: site.name,
            last_heartbeat_at: site.last_heartbeat.map(format_micros),
            offline_since: site.offline_since.map(format_micros),
            first_seen_at: format_micros(site.first_seen),
            open_faults: site.open_faults,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SiteList {
    pub data: Vec<SiteView>,
    pub meta: ListMeta,
}

/// The body of `PUT /sites/{site_id}`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; the handler validates the JSON
pub struct NameSite {
    /// 1 to 200 characters (after trimming); null hands the naming back to the site's
    /// heartbeats. Required.
    #[schema(example = "Branch-025", required = true, min_length = 1, max_length = 200)]
    name: Option<String>,
}

/// Sites list every site of the customer: an API key's, never an access token's (whose scope
/// is a set of faults).
fn principal(auth: &Auth, permission: Permission) -> ApiResult<&Principal> {
    let principal = auth.require(permission)?;
    if principal.scope.is_some() {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "Sites are read with an API key; an access token reads only the faults it was minted for.",
        ));
    }
    Ok(principal)
}

/// The cursor of a page after `site`: its label and id, in the signed cursor's position (the
/// label's length where a fault's creation time would be).
fn cursor_position(site: &Site) -> Position {
    let label = site.label();
    Position { created_at: label.len() as i64, id: format!("{label}{}", site.site_id) }
}

fn after_position(position: Position) -> Option<(String, String)> {
    let split = usize::try_from(position.created_at).ok()?;
    let label = position.id.get(..split)?;
    Some((label.to_owned(), position.id[split..].to_owned()))
}

/// [ext] List the customer's sites, by name (else id).
#[utoipa::path(get, path = "/sites", tag = "Sites", operation_id = "listSites",
    security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "1 to 100; default 50"),
        ("cursor" = Option<String>, Query, description = "meta.cursor of the page before"),
        ("status" = Option<String>, Query, description = "online, offline, unknown; a comma list"),
        ("q" = Option<String>, Query, description = "case-insensitive text in the name or the id")),
    responses((status = 200, body = SiteList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn list_sites(
    State(state): State<AppState>,
    auth: Auth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<SiteList>> {
    let principal = principal(&auth, Permission::FaultsRead)?;
    let mut query = SiteQuery { limit: DEFAULT_LIMIT, ..SiteQuery::default() };
    let mut cursor = None;
    for (name, value) in &pairs {
        match name.as_str() {
            "limit" => {
                query.limit =
                    value.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                        ApiError::invalid("limit", format!("it must be a whole number from 1 to {MAX_LIMIT}"))
                    })?;
            }
            "status" => {
                for status in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let status = SiteStatus::parse(status).ok_or_else(|| {
                        ApiError::invalid("status", "each must be one of online, offline, unknown")
                    })?;
                    if !query.statuses.contains(&status) {
                        query.statuses.push(status);
                    }
                }
            }
            "q" => {
                if value.chars().count() > MAX_QUERY_TEXT {
                    return Err(ApiError::invalid(
                        "q",
                        format!("it must be at most {MAX_QUERY_TEXT} characters"),
                    ));
                }
                query.text = Some(value.clone()).filter(|v| !v.trim().is_empty());
            }
            "cursor" => cursor = Some(value.clone()),
            // Unknown parameters are ignored, as on every list.
            _ => {}
        }
    }
    query.statuses.sort_by_key(|s| s.as_str());
    // The cursor is bound to the filter it was issued for.
    let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
    let filter = format!("sites?status={}&q={}", statuses.join(","), query.text.as_deref().unwrap_or(""));
    if let Some(cursor) = cursor {
        let invalid = || {
            ApiError::new(
                ErrorCode::CursorInvalid,
                "The 'cursor' parameter is invalid: it was not issued for this list, or was altered.",
            )
        };
        let position = state.cursors.decode(&principal.customer_id, &filter, &cursor).ok_or_else(invalid)?;
        query.after = Some(after_position(position).ok_or_else(invalid)?);
    }
    let limit = query.limit as usize;
    query.limit += 1;
    let mut sites = state.store.list_sites(&principal.customer_id, &query).await?;
    let more = sites.len() > limit;
    sites.truncate(limit);
    let next = sites
        .last()
        .filter(|_| more)
        .map(|site| state.cursors.encode(&principal.customer_id, &filter, &cursor_position(site)));
    let meta = ListMeta { count: sites.len(), has_more: next.is_some(), cursor: next };
    Ok(Json(SiteList { data: sites.into_iter().map(SiteView::from).collect(), meta }))
}

/// [ext] One site.
#[utoipa::path(get, path = "/sites/{siteId}", tag = "Sites", operation_id = "getSite",
    security(("bearer" = [])), params(("siteId" = String, Path, description = "The site's id")),
    responses((status = 200, body = SiteView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn get_site(
    State(state): State<AppState>,
    auth: Auth,
    Path(site_id): Path<String>,
) -> ApiResult<Json<SiteView>> {
    let principal = principal(&auth, Permission::FaultsRead)?;
    let site =
        state.store.get_site(&principal.customer_id, &site_id).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(site.into()))
}

/// [ext] Name a site.
///
/// The name shows wherever the site appears (faults' `site_name`, the console, the shared
/// dashboard, exports, the command line) and is kept over the names its heartbeats send; null
/// clears it, and the site's heartbeats name it again. A site never seen before is created
/// (status `unknown` until its first heartbeat); clearing the name of one answers 404.
#[utoipa::path(put, path = "/sites/{siteId}", tag = "Sites", operation_id = "nameSite",
    security(("bearer" = [])), params(("siteId" = String, Path, description = "The site's id")),
    request_body = NameSite,
    responses((status = 200, body = SiteView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn name_site(
    State(state): State<AppState>,
    auth: Auth,
    Path(site_id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<SiteView>> {
    let principal = principal(&auth, Permission::FaultsWrite)?;
    if site_id.is_empty() || site_id.chars().count() > MAX_RESOURCE_ID || site_id.contains(['|', '\0']) {
        return Err(ApiError::invalid(
            "site_id",
            format!("it must be 1 to {MAX_RESOURCE_ID} characters, without '|'"),
        ));
    }
    let Value::Object(fields) = &body else {
        return Err(ApiError::invalid("body", "it must be a JSON object {\"name\": \"…\"}"));
    };
    if let Some(other) = fields.keys().find(|k| k.as_str() != "name") {
        return Err(ApiError::invalid(other, "it is not a field of a site"));
    }
    let name = match fields.get("name") {
        Some(Value::Null) => None,
        Some(Value::String(name)) => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > MAX_SITE_NAME || name.contains('\0') {
                return Err(ApiError::invalid(
                    "name",
                    format!("it must be 1 to {MAX_SITE_NAME} characters (null clears it)"),
                ));
            }
            Some(name)
        }
        None => return Err(ApiError::invalid("name", "it is required (null clears it)")),
        Some(_) => return Err(ApiError::invalid("name", "it must be a string or null")),
    };
    // Clearing the name of a site nobody has seen creates nothing.
    if name.is_none() && state.store.get_site(&principal.customer_id, &site_id).await?.is_none() {
        return Err(ApiError::not_found());
    }
    let site = state.store.set_site_name(&principal.customer_id, &site_id, name, now_micros()).await?;
    Ok(Json(site.into()))
}
