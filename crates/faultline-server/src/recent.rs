//! The legacy views of the Analytics section: `GET /fault/recent` (also served at `GET /recent`
//! for older clients) and `GET /fault/top_faults`, both answering faults in the documented
//! LegacyFault shape.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use faultline_core::Permission;
use faultline_core::duration::describe_elapsed;
use faultline_core::fault::{Fault, Severity};
use faultline_core::filter::{FaultFilter, bounded_integer};
use faultline_core::time::{Micros, format_micros, now_micros};
use faultline_store::{FaultQuery, TopQuery, TopResource};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody};
use crate::etag::json_with_etag;
use crate::extract::QueryPairs;
use crate::state::AppState;

/// Most faults one answer of the recent view carries (and its default).
pub const RECENT_MAX_LIMIT: u32 = 1_000;
/// Says whether the recent view had more faults than it answered.
pub const HAS_MORE_HEADER: &str = "faultline-has-more";
pub const TOP_DEFAULT_DAYS: u32 = 14;
pub const TOP_MAX_DAYS: u32 = 90;
pub const TOP_DEFAULT_LIMIT: u32 = 10;
pub const TOP_MAX_LIMIT: u32 = 100;
/// How many of its newest faults come with each resource of `top_faults`.
pub const TOP_SAMPLE: u32 = 5;
const DAY_MICROS: Micros = 86_400 * 1_000_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(recent_faults))
        .routes(routes!(recent_faults_at_root))
        .routes(routes!(top_faults))
}

/// Severity as the legacy views write it: lower case.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LegacySeverity {
    Low,
    Medium,
    High,
    Critical,
    Warning,
}

impl From<Severity> for LegacySeverity {
    fn from(severity: Severity) -> Self {
        match severity {
            Severity::Low => LegacySeverity::Low,
            Severity::Medium => LegacySeverity::Medium,
            Severity::High => LegacySeverity::High,
            Severity::Critical => LegacySeverity::Critical,
            Severity::Warning => LegacySeverity::Warning,
        }
    }
}

/// A fault as the legacy views answer it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyFault {
    #[schema(example = "flt_31pkd1t8FvW7qZv0jG2a9kH5mB1")]
    pub id: String,
    #[schema(example = "WAN1 to DC-East is down")]
    pub message: String,
    /// Null while unresolved.
    #[schema(example = "2025-10-21T15:15:30.000000Z")]
    pub resolved_at: Option<String>,
    /// First detection, RFC 3339 UTC with six fractional digits.
    #[schema(example = "2025-10-21T13:00:00.000000Z")]
    pub created_at: String,
    /// How long the fault lasted (until now while unresolved), for people: the largest non-zero
    /// unit among days, hours and minutes, then the next smaller unit unless it is zero, each
    /// rounded down; "less than a minute" under 60 s.
    #[schema(example = "2 hours, 15 minutes", max_length = 40)]
    pub duration: String,
    pub severity: LegacySeverity,
    #[serde(rename = "type")]
    #[schema(example = "wantunnel")]
    pub fault_type: String,
    #[schema(example = "No IPsec keepalive for 90 s")]
    pub cause: String,
    /// The fault's site: the first `site_…` element of its ancestry path, else null.
    #[schema(example = "site_8a7bQx")]
    pub site_id: Option<String>,
    /// [ext] The site's name, else null.
    #[schema(example = "Branch-025")]
    pub site_name: Option<String>,
    /// The faulted resource's id (`resource_id` elsewhere).
    #[schema(example = "tun_8a7bQx")]
    pub resource_identifier: String,
}

impl LegacyFault {
    /// The legacy view of `fault`, its duration measured up to `now` while unresolved.
    pub fn new(fault: Fault, now: Micros) -> LegacyFault {
        LegacyFault {
            duration: describe_elapsed(fault.resolved_at.unwrap_or(now) - fault.created_at),
            id: fault.id,
            message: fault.message,
            resolved_at: fault.resolved_at.map(format_micros),
            created_at: format_micros(fault.created_at),
            severity: fault.severity.into(),
            fault_type: fault.fault_type,
            cause: fault.cause,
            site_id: fault.site_id,
            site_name: fault.site_name,
            resource_identifier: fault.resource_id,
        }
    }
}

/// Query parameters of the recent view.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; the handler parses it to name bad parameters
pub struct RecentParams {
    /// Comma list; matches any element of the ancestry path or the resource id.
    #[param(example = "site_8a7bQx", pattern = r"^[^,\u0000]{0,255}(,[^,\u0000]{0,255}){0,49}$")]
    site: Option<String>,
    /// Comma list of types (at most 50 values of at most 255 characters).
    #[param(
        rename = "type",
        example = "wantunnel,site",
        pattern = r"^[^,\u0000]{0,255}(,[^,\u0000]{0,255}){0,49}$"
    )]
    fault_type: Option<String>,
    /// [ext] Most faults to answer, newest first.
    #[param(minimum = 1, maximum = 1000, default = 1000)]
    limit: Option<u32>,
}

/// The recent view: unresolved faults, and faults created in the last 24 hours, newest first.
///
/// At most `limit` faults (default and maximum 1,000); the `Faultline-Has-More` header says
/// whether there were more. Read from two index ranges (open faults, and the last day's
/// resolved ones), as `GET /fault?recent=true`.
#[utoipa::path(get, path = "/fault/recent", tag = "Analytics", operation_id = "listRecentFaults",
    security(("bearer" = [])),
    params(RecentParams),
    responses(
        (status = 200, body = Vec<LegacyFault>, description = "At most `limit` faults, newest first",
            headers(("ETag" = String), ("Faultline-Has-More" = bool, description = "true when more recent faults exist than were answered"))),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn recent_faults(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let principal = auth.require(Permission::FaultsRead)?;
    // Only `site` and `type` filter this view; every other parameter is ignored, as unknown
    // parameters are everywhere.
    let filters: Vec<(String, String)> =
        pairs.iter().filter(|(key, _)| key == "site" || key == "type").cloned().collect();
    let mut filter = FaultFilter::from_pairs(&filters)?;
    filter.recent = true;
    filter.scope = principal.scope.clone();
    let mut limit = RECENT_MAX_LIMIT;
    for (key, value) in &pairs {
        if key == "limit" {
            limit = bounded_integer("limit", value, 1..=RECENT_MAX_LIMIT)?;
        }
    }
    let now = now_micros();
    let query = FaultQuery { filter: &filter, after: None, limit: limit + 1, now };
    let mut faults = state.store.list_faults(&principal.customer_id, &query).await?;
    let has_more = faults.len() > limit as usize;
    faults.truncate(limit as usize);
    let view: Vec<LegacyFault> = faults.into_iter().map(|f| LegacyFault::new(f, now)).collect();
    let mut response = json_with_etag(&headers, &view)?;
    response.headers_mut().insert(
        HeaderName::from_static(HAS_MORE_HEADER),
        HeaderValue::from_static(if has_more { "true" } else { "false" }),
    );
    Ok(response)
}

/// The recent view at its older path: the same as `GET /fault/recent`.
#[utoipa::path(get, path = "/recent", tag = "Analytics", operation_id = "listRecentFaultsAtRoot",
    security(("bearer" = [])),
    params(RecentParams),
    responses(
        (status = 200, body = Vec<LegacyFault>, description = "At most `limit` faults, newest first",
            headers(("ETag" = String), ("Faultline-Has-More" = bool, description = "true when more recent faults exist than were answered"))),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn recent_faults_at_root(
    state: State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    pairs: QueryPairs,
) -> ApiResult<Response> {
    recent_faults(state, auth, headers, pairs).await
}

/// A resource of `top_faults`, with its newest faults.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopFaultsItem {
    /// The resource's display name: the message of its newest fault in the window (the service
    /// knows no other name for a resource).
    #[schema(example = "WAN1 to DC-East is down")]
    pub tunnel_name: String,
    /// The site of its newest fault in the window, else null.
    #[schema(example = "site_8a7bQx")]
    pub site_id: Option<String>,
    /// [ext] That site's name, else null.
    #[schema(example = "Branch-025")]
    pub site_name: Option<String>,
    /// Its faults created in the window.
    #[schema(example = 42, minimum = 1)]
    pub count: i64,
    #[schema(example = "tun_8a7bQx")]
    pub resource_id: String,
    /// Its newest faults in the window, newest first.
    #[schema(min_items = 1, max_items = 5)]
    pub faults: Vec<LegacyFault>,
}

impl TopFaultsItem {
    fn new(resource: TopResource, now: Micros) -> TopFaultsItem {
        let newest = resource.faults.first();
        TopFaultsItem {
            tunnel_name: newest.map_or_else(|| resource.resource_id.clone(), |f| f.message.clone()),
            site_id: newest.and_then(|f| f.site_id.clone()),
            site_name: newest.and_then(|f| f.site_name.clone()),
            count: resource.count,
            resource_id: resource.resource_id,
            faults: resource.faults.into_iter().map(|f| LegacyFault::new(f, now)).collect(),
        }
    }
}

/// Query parameters of `top_faults`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; the handler parses it to name bad parameters
pub struct TopFaultsParams {
    /// [ext] The window: faults created in the last this many days count.
    #[param(minimum = 1, maximum = 90, default = 14)]
    days: Option<u32>,
    /// [ext] How many resources.
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: Option<u32>,
}

/// The resources with the most faults created in the last 14 days, with their newest faults.
///
/// Most faults first, ties by resource id (byte order). An access token counts only the faults
/// of its scope. The count reads one index range of the window, never the whole history.
#[utoipa::path(get, path = "/fault/top_faults", tag = "Analytics", operation_id = "listTopFaults",
    security(("bearer" = [])),
    params(TopFaultsParams),
    responses(
        (status = 200, body = Vec<TopFaultsItem>, description = "At most `limit` resources, most faults first",
            headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn top_faults(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let principal = auth.require(Permission::FaultsRead)?;
    let (mut days, mut limit) = (TOP_DEFAULT_DAYS, TOP_DEFAULT_LIMIT);
    for (key, value) in &pairs {
        match key.as_str() {
            "days" => days = bounded_integer("days", value, 1..=TOP_MAX_DAYS)?,
            "limit" => limit = bounded_integer("limit", value, 1..=TOP_MAX_LIMIT)?,
            _ => {}
        }
    }
    let now = now_micros();
    let query = TopQuery {
        since: now - i64::from(days) * DAY_MICROS,
        scope: principal.scope.as_ref(),
        limit,
        sample: TOP_SAMPLE,
    };
    let ranked = state.store.top_resources(&principal.customer_id, &query).await?;
    let items: Vec<TopFaultsItem> = ranked.into_iter().map(|r| TopFaultsItem::new(r, now)).collect();
    json_with_etag(&headers, &items)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits the OpenAPI document states are the ones the handlers enforce.
    #[test]
    fn documented_limits_are_the_enforced_ones() {
        let doc = serde_json::to_value(crate::openapi_document()).unwrap();
        let schema = |path: &str, name: &str| -> serde_json::Value {
            let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
            params.iter().find(|p| p["name"] == name).unwrap()["schema"].clone()
        };
        for path in ["/fault/recent", "/recent"] {
            assert_eq!(schema(path, "limit")["maximum"], RECENT_MAX_LIMIT, "{path}");
            assert_eq!(schema(path, "limit")["default"], RECENT_MAX_LIMIT, "{path}");
        }
        assert_eq!(schema("/fault/top_faults", "days")["maximum"], TOP_MAX_DAYS);
        assert_eq!(schema("/fault/top_faults", "days")["default"], TOP_DEFAULT_DAYS);
        assert_eq!(schema("/fault/top_faults", "limit")["maximum"], TOP_MAX_LIMIT);
        assert_eq!(schema("/fault/top_faults", "limit")["default"], TOP_DEFAULT_LIMIT);
        let item = &doc["components"]["schemas"]["TopFaultsItem"]["properties"];
        assert_eq!(item["faults"]["maxItems"], TOP_SAMPLE);
    }
}
