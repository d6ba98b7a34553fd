//! `GET /fault/analytics`: fault counts over time (in local-time buckets of a time zone),
//! broken down by a field, with how many are open now and how long repairs took, and the same
//! figures for the previous period of equal length.
//!
//! The store counts faults by UTC quarter-hour slot (and group); the slots are then summed into
//! the zone's hour, day or week buckets here. Every UTC offset in use since 1979 is a whole
//! number of quarter-hours, so each slot lies inside one bucket and the sums are exact.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use faultline_core::Permission;
use faultline_core::analytics::{
    BucketInterval, Change, Interval, RepairStats, bucket_edges, bucket_index, change, parse_time_zone,
    previous_window, repair_stats,
};
use faultline_core::filter::FaultFilter;
use faultline_core::time::{Micros, format_micros, now_micros};
use faultline_core::validation::ValidationError;
use faultline_store::analytics::{GroupBy, Slots};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::QueryPairs;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(analytics))
}

/// The store's slot width: a UTC quarter-hour.
const SLOT: i64 = 15 * 60 * 1_000_000;
/// Groups reported one by one; the rest are summed under [`OTHER`].
pub const MAX_GROUPS: u32 = 20;
/// The name under which groups beyond the [`MAX_GROUPS`] largest are counted.
pub const OTHER: &str = "(other)";
/// The longest window: ten years.
const MAX_WINDOW: i64 = 3_660 * 24 * 3_600 * 1_000_000;

/// Counts of one bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    /// The bucket's first instant (local midnight or hour, in UTC).
    #[schema(example = "2026-11-01T23:00:00.000000Z")]
    pub start: String,
    pub count: i64,
    /// Counts by group (with `group_by`), largest groups only, the rest under `(other)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<BTreeMap<String, i64>>,
}

/// Repair-time statistics, in seconds; null without repairs. Median and p90 interpolate
/// linearly between ranks, like PostgreSQL's `percentile_cont`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeToResolve {
    pub count: usize,
    pub mean_seconds: Option<f64>,
    pub median_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
}

impl From<RepairStats> for TimeToResolve {
    fn from(s: RepairStats) -> Self {
        TimeToResolve {
            count: s.count,
            mean_seconds: s.mean_seconds,
            median_seconds: s.median_seconds,
            p90_seconds: s.p90_seconds,
        }
    }
}

/// The figures of one period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Period {
    #[schema(example = "2026-10-29T00:00:00.000000Z")]
    pub from: String,
    #[schema(example = "2026-11-28T00:00:00.000000Z")]
    pub to: String,
    /// Faults created in the period.
    pub count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<BTreeMap<String, i64>>,
    /// Of the faults created in the period, those resolved, by how long it took.
    pub time_to_resolve: TimeToResolve,
}

/// A change against the previous period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delta {
    pub absolute: Option<f64>,
    /// Null when the previous figure is 0 or missing.
    pub percent: Option<f64>,
}

impl Delta {
    fn of(current: Option<f64>, previous: Option<f64>) -> Delta {
        match (current, previous) {
            (Some(c), Some(p)) => {
                let Change { absolute, percent } = change(c, p);
                Delta { absolute: Some(absolute), percent }
            }
            _ => Delta { absolute: None, percent: None },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Changes {
    pub count: Delta,
    pub mean_seconds: Delta,
    pub median_seconds: Delta,
    pub p90_seconds: Delta,
}

/// The analytics of a filtered window.
#[derive(Debug, Serialize, ToSchema)]
pub struct Analytics {
    #[schema(example = "day")]
    pub interval: &'static str,
    #[schema(example = "Europe/Berlin")]
    pub tz: String,
    #[schema(example = "severity")]
    pub group_by: Option<&'static str>,
    /// Every bucket of the window, empty ones included, oldest first.
    pub buckets: Vec<Bucket>,
    /// The window's figures.
    pub totals: Period,
    /// Faults matching the filter (whatever their start) unresolved now.
    pub open_now: i64,
    /// The same figures for the period of equal length just before.
    pub previous: Period,
    /// `totals` against `previous`.
    pub change: Changes,
}

/// The request, validated.
struct Request {
    filter: FaultFilter,
    window: Interval,
    interval: BucketInterval,
    tz_name: String,
    tz: jiff::tz::TimeZone,
    group_by: Option<GroupBy>,
}

fn parse(pairs: &[(String, String)], now: Micros) -> Result<Request, ValidationError> {
    let filter = FaultFilter::from_pairs(pairs)?;
    let value = |name: &str| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let interval = value("interval").map_or(Ok(BucketInterval::Day), BucketInterval::parse)?;
    let tz_name = value("tz").unwrap_or("UTC").to_owned();
    let tz = parse_time_zone(&tz_name)?;
    let group_by = match value("group_by") {
        None => None,
        Some("severity") => Some(GroupBy::Severity),
        Some("type") => Some(GroupBy::Type),
        Some("site") => Some(GroupBy::Site),
        Some("resource") => Some(GroupBy::Resource),
        Some(_) => {
            return Err(ValidationError::invalid("group_by", "use one of severity, type, site, resource"));
        }
    };
    let to = filter.to.unwrap_or(now);
    let default_span = match interval {
        BucketInterval::Hour => 2 * 24 * 3_600 * 1_000_000,
        BucketInterval::Day => 30 * 24 * 3_600 * 1_000_000,
        BucketInterval::Week => 26 * 7 * 24 * 3_600 * 1_000_000,
    };
    let from = filter.from.unwrap_or(to - default_span);
    if from >= to {
        return Err(ValidationError::invalid("from", "must be before 'to'"));
    }
    if to - from > MAX_WINDOW {
        return Err(ValidationError::invalid("from", "the window may span at most ten years"));
    }
    Ok(Request { filter, window: Interval::new(from, to), interval, tz_name, tz, group_by })
}

/// [ext] Fault counts over time, by group, with repair times, against the previous period.
///
/// Takes every filter of `GET /fault`; `from`/`to` set the window (default: the last 2 days
/// for `interval=hour`, 30 days for `day`, 26 weeks for `week`; at most ten years and 10,000
/// buckets). Buckets start at local midnight (or hour, or Monday) in `tz`, so a day bucket
/// lasts 23 or 25 hours across a DST change. With `group_by`, the 20 largest groups are
/// listed and the rest summed under `(other)`.
#[utoipa::path(get, path = "/fault/analytics", tag = "Faults", operation_id = "faultAnalytics",
    security(("bearer" = [])),
    params(
        ("interval" = Option<String>, Query, description = "hour, day (default) or week", example = "day"),
        ("group_by" = Option<String>, Query, description = "severity, type, site or resource"),
        ("tz" = Option<String>, Query, description = "IANA time zone of the bucket edges (default UTC)", example = "Europe/Berlin"),
        ("from" = Option<String>, Query, description = "Window start (RFC 3339)"),
        ("to" = Option<String>, Query, description = "Window end, exclusive (RFC 3339; default now)"),
        ("severity" = Option<String>, Query, description = "Comma list"),
        ("status" = Option<String>, Query, description = "unresolved or resolved"),
        ("type" = Option<String>, Query), ("resource_id" = Option<String>, Query),
        ("site" = Option<String>, Query), ("microservice_id" = Option<String>, Query),
        ("q" = Option<String>, Query, description = "Text in message or cause"),
        ("recent" = Option<bool>, Query),
    ),
    responses((status = 200, body = Analytics), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn analytics(
    State(state): State<AppState>,
    auth: Auth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<Analytics>> {
    let principal = auth.require(Permission::FaultsRead)?;
    let now = now_micros();
    let mut request = parse(&pairs, now).map_err(ApiError::from)?;
    request.filter.scope = principal.scope.clone();
    let edges = bucket_edges(request.window, request.interval, &request.tz).map_err(ApiError::from)?;
    let customer = principal.customer_id.as_str();
    let store = &state.store;

    // The groups listed one by one: the largest over the window.
    let in_window = |window: Interval| FaultFilter {
        from: Some(window.start),
        to: Some(window.end),
        ..request.filter.clone()
    };
    let current = in_window(request.window);
    let listed: Option<(GroupBy, Vec<String>)> = match request.group_by {
        None => None,
        Some(group) => {
            let top = store.top_groups(customer, &current, group, MAX_GROUPS + 1, now).await?;
            let names: Vec<String> = top.into_iter().map(|(g, _)| g).take(MAX_GROUPS as usize).collect();
            Some((group, names))
        }
    };
    let group_arg = listed.as_ref().map(|(g, names)| (*g, names.as_slice(), OTHER));

    // The current window, by quarter-hour slot, summed into buckets.
    let origin = request.window.start.div_euclid(SLOT) * SLOT;
    let slots = Slots { origin, slot_micros: SLOT };
    let rows = store.counts_by_slot(customer, &current, slots, group_arg, now).await?;
    let mut buckets: Vec<Bucket> = edges
        .iter()
        .map(|&start| Bucket {
            start: format_micros(start),
            count: 0,
            groups: request.group_by.map(|_| BTreeMap::new()),
        })
        .collect();
    let mut total = 0;
    let mut total_groups: BTreeMap<String, i64> = BTreeMap::new();
    for (slot, group, count) in rows {
        // The slot's first instant inside the window places it.
        let at = (origin + slot * SLOT).max(request.window.start);
        if let Some(bucket) = bucket_index(&edges, at).and_then(|i| buckets.get_mut(i)) {
            bucket.count += count;
            if let Some(groups) = bucket.groups.as_mut() {
                *groups.entry(group.clone()).or_default() += count;
            }
        }
        total += count;
        *total_groups.entry(group).or_default() += count;
    }
    let repairs = repair_stats(&store.repair_times(customer, &current, now).await?);
    let open_now =
        store.count_open(customer, &FaultFilter { from: None, to: None, ..current.clone() }, now).await?;

    // The previous period: its totals alone.
    let before = previous_window(request.window);
    let previous_filter = in_window(before);
    let mut previous_count = 0;
    let mut previous_groups: BTreeMap<String, i64> = BTreeMap::new();
    let whole = Slots { origin: before.start, slot_micros: (before.end - before.start).max(1) };
    for (_, group, count) in store.counts_by_slot(customer, &previous_filter, whole, group_arg, now).await? {
        previous_count += count;
        *previous_groups.entry(group).or_default() += count;
    }
    let previous_repairs = repair_stats(&store.repair_times(customer, &previous_filter, now).await?);

    let grouped = |groups: BTreeMap<String, i64>| request.group_by.map(|_| groups);
    let change = Changes {
        count: Delta::of(Some(total as f64), Some(previous_count as f64)),
        mean_seconds: Delta::of(repairs.mean_seconds, previous_repairs.mean_seconds),
        median_seconds: Delta::of(repairs.median_seconds, previous_repairs.median_seconds),
        p90_seconds: Delta::of(repairs.p90_seconds, previous_repairs.p90_seconds),
    };
    Ok(Json(Analytics {
        interval: request.interval.as_str(),
        tz: request.tz_name,
        group_by: request.group_by.map(GroupBy::as_str),
        buckets,
        totals: Period {
            from: format_micros(request.window.start),
            to: format_micros(request.window.end),
            count: total,
            groups: grouped(total_groups),
            time_to_resolve: repairs.into(),
        },
        open_now,
        previous: Period {
            from: format_micros(before.start),
            to: format_micros(before.end),
            count: previous_count,
            groups: grouped(previous_groups),
            time_to_resolve: previous_repairs.into(),
        },
        change,
    }))
}
