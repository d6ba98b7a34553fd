//! `GET /fault/sla`: availability per site over a window, from its `site`-type faults. A
//! site's downtime is the union of its outages (overlaps merged, clipped to the window, an
//! outage still open counting up to now), optionally only inside business hours of a time
//! zone; it breaches when its uptime falls below the target. JSON, or CSV with
//! `Accept: text/csv`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use faultline_core::Permission;
use faultline_core::analytics::{
    BusinessHours, Interval, business_windows, parse_sla_target, parse_time_zone, sla,
};
use faultline_core::filter::FaultFilter;
use faultline_core::time::{Micros, format_micros, now_micros};
use faultline_core::validation::ValidationError;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::export::{Format, csv_row};
use crate::extract::QueryPairs;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(site_sla))
}

/// The default target, in percent.
pub const DEFAULT_TARGET: f64 = 99.9;
/// The default window: the last 30 days.
const DEFAULT_WINDOW: i64 = 30 * 24 * 3_600 * 1_000_000;
/// The longest window: about 400 days, the default retention.
const MAX_WINDOW: i64 = 400 * 24 * 3_600 * 1_000_000;

/// One site's availability.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteSla {
    #[schema(example = "site_berlin_01")]
    pub site_id: String,
    /// [ext] The site's name, else null.
    #[schema(example = "Berlin")]
    pub site_name: Option<String>,
    /// 100 × (measured − down) / measured.
    #[schema(example = 99.95)]
    pub uptime_percent: f64,
    pub downtime_seconds: f64,
    /// Merged outages that overlap the measured time.
    pub outage_count: usize,
    /// Uptime below the target.
    pub breached: bool,
    /// The time measured: the window, or the business hours within it.
    pub measured_seconds: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlaReport {
    pub from: String,
    pub to: String,
    #[schema(example = 99.9)]
    pub target: f64,
    /// The business hours measured, if any (canonical form).
    #[schema(example = "mon-fri 08:00-17:00")]
    pub hours: Option<String>,
    #[schema(example = "Europe/Berlin")]
    pub tz: String,
    /// One entry per site with an outage in the window, or per site asked for with `site`;
    /// lowest uptime first.
    pub data: Vec<SiteSla>,
}

struct Request {
    window: Interval,
    target: f64,
    hours: Option<BusinessHours>,
    tz_name: String,
    tz: jiff::tz::TimeZone,
    filter: FaultFilter,
}

fn parse(pairs: &[(String, String)], now: Micros) -> Result<Request, ValidationError> {
    let filter = FaultFilter::from_pairs(pairs)?;
    let value = |name: &str| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let target = value("target").map_or(Ok(DEFAULT_TARGET), parse_sla_target)?;
    let tz_name = value("tz").unwrap_or("UTC").to_owned();
    let tz = parse_time_zone(&tz_name)?;
    let hours = value("hours").map(BusinessHours::parse).transpose()?;
    let to = filter.to.unwrap_or(now);
    let from = filter.from.unwrap_or(to - DEFAULT_WINDOW);
    if from >= to {
        return Err(ValidationError::invalid("from", "must be before 'to'"));
    }
    if to - from > MAX_WINDOW {
        return Err(ValidationError::invalid("from", "the window may span at most 400 days"));
    }
    Ok(Request { window: Interval::new(from, to), target, hours, tz_name, tz, filter })
}

/// [ext] Availability per site from its `site`-type faults.
///
/// `from`/`to` set the window (default the last 30 days, at most 400); `target` in percent
/// (default 99.9); `hours` (e.g. `mon-fri 08:00-17:00`, clauses separated by commas) with `tz`
/// counts only downtime inside business hours, in local time. `site` limits the report to
/// those sites and lists them even without outages. An outage still open counts up to now.
#[utoipa::path(get, path = "/fault/sla", tag = "Faults", operation_id = "siteSla",
    security(("bearer" = [])),
    params(
        ("from" = Option<String>, Query, description = "Window start (RFC 3339; default 30 days before 'to')"),
        ("to" = Option<String>, Query, description = "Window end, exclusive (RFC 3339; default now)"),
        ("target" = Option<f64>, Query, minimum = 0, maximum = 100, description = "Uptime target in percent (default 99.9)"),
        ("hours" = Option<String>, Query, description = "Business hours, e.g. mon-fri 08:00-17:00"),
        ("tz" = Option<String>, Query, description = "IANA time zone of the business hours (default UTC)"),
        ("site" = Option<String>, Query, description = "Only these sites (comma list)"),
    ),
    responses((status = 200, description = "Availability per site; with Accept: text/csv, the rows as CSV (site_id, uptime_percent, downtime_seconds, outage_count, breached, measured_seconds, site_name)",
            content((SlaReport = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn site_sla(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let principal = auth.require(Permission::FaultsRead)?;
    let now = now_micros();
    let mut request = parse(&pairs, now).map_err(ApiError::from)?;
    request.filter.scope = principal.scope.clone();
    let window = request.window;
    let rows =
        state.store.site_outages(&principal.customer_id, &request.filter, window.start, window.end).await?;
    let mut outages: BTreeMap<String, Vec<Interval>> = BTreeMap::new();
    for site in &request.filter.sites {
        outages.entry(site.clone()).or_default();
    }
    for (site, start, end) in rows {
        // An open outage lasts until now (and the window ends there at the latest).
        outages.entry(site).or_default().push(Interval::new(start, end.unwrap_or(now)));
    }
    let site_ids: Vec<String> = outages.keys().cloned().collect();
    let mut names = state.store.site_names(&principal.customer_id, &site_ids).await?;
    let business = request.hours.as_ref().map(|hours| business_windows(hours, &request.tz, window));
    let mut data: Vec<SiteSla> = outages
        .into_iter()
        .map(|(site_id, intervals)| {
            let figures = sla(&intervals, window, request.target, business.as_deref());
            SiteSla {
                site_name: names.remove(&site_id),
                site_id,
                uptime_percent: figures.uptime_percent,
                downtime_seconds: figures.downtime_seconds(),
                outage_count: figures.outage_count,
                breached: figures.breached,
                measured_seconds: figures.measured_seconds(),
            }
        })
        .collect();
    data.sort_by(|a, b| {
        a.uptime_percent.total_cmp(&b.uptime_percent).then_with(|| a.site_id.cmp(&b.site_id))
    });
    let report = SlaReport {
        from: format_micros(window.start),
        to: format_micros(window.end),
        target: request.target,
        hours: request.hours.map(|h| h.to_string()),
        tz: request.tz_name,
        data,
    };
    Ok(match Format::negotiate(&headers) {
        Format::Csv => csv(&report),
        _ => axum::Json(report).into_response(),
    })
}

fn csv(report: &SlaReport) -> Response {
    let mut text = csv_row(&[
        "site_id",
        "uptime_percent",
        "downtime_seconds",
        "outage_count",
        "breached",
        "measured_seconds",
        "site_name",
    ]);
    for site in &report.data {
        text.push_str(&csv_row(&[
            &site.site_id,
            &site.uptime_percent.to_string(),
            &site.downtime_seconds.to_string(),
            &site.outage_count.to_string(),
            if site.breached { "true" } else { "false" },
            &site.measured_seconds.to_string(),
            site.site_name.as_deref().unwrap_or(""),
        ]));
    }
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::export::CSV));
    response
}
