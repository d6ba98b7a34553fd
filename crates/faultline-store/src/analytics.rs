//! SQL behind `GET /fault/analytics`: counts of the faults matching a filter by time slot and
//! group, their repair times, and how many are open. The arithmetic on the rows (local-time
//! buckets, percentiles, the previous period) is `faultline_core::analytics`.

use faultline_core::filter::{FaultFilter, RECENT_WINDOW_MICROS};
use faultline_core::time::Micros;

use crate::sql::{Sql, filter_conditions};

/// What analytics figures are broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Severity,
    Type,
    Site,
    Resource,
}

impl GroupBy {
    /// The `group_by` parameter text.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Severity => "severity",
            GroupBy::Type => "type",
            GroupBy::Site => "site",
            GroupBy::Resource => "resource",
        }
    }

    fn column(self) -> &'static str {
        match self {
            GroupBy::Severity => "f.severity",
            GroupBy::Type => "f.type",
            GroupBy::Site => "COALESCE(f.site_id, '')",
            GroupBy::Resource => "f.resource_id",
        }
    }
}

/// Counts by time slot: `slot_micros` wide, numbered from `origin` (slot 0 starts there).
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    pub origin: Micros,
    pub slot_micros: i64,
}

/// The conditions (on alias `f`) selecting the customer's faults that match all of `filter`:
/// its window, sites, `recent` (against `now`) and an access token's scope.
fn matching(sql: &mut Sql, customer_id: &str, filter: &FaultFilter, now: Micros) -> String {
    let customer = sql.text(customer_id);
    let mut conditions = vec![format!("f.customer_id = {customer}")];
    conditions.extend(filter_conditions(sql, filter, &customer));
    if !filter.sites.is_empty() {
        let list: Vec<String> = filter.sites.iter().map(|s| sql.text(s)).collect();
        conditions.push(format!(
            "f.id IN (SELECT fault_id FROM fault_ancestors WHERE customer_id = {customer} AND element IN ({}))",
            list.join(", ")
        ));
    }
    if filter.recent {
        let since = sql.int(now - RECENT_WINDOW_MICROS);
        conditions.push(format!("(f.status = 'unresolved' OR f.created_at >= {since})"));
    }
    conditions.join(" AND ")
}

/// `(group, count)` of the matching faults, largest first, at most `limit` groups.
pub(crate) fn top_groups(
    customer_id: &str,
    filter: &FaultFilter,
    group: GroupBy,
    limit: u32,
    now: Micros,
) -> Sql {
    let mut sql = Sql::default();
    let conditions = matching(&mut sql, customer_id, filter, now);
    let limit = sql.int(i64::from(limit));
    sql.text = format!(
        "SELECT {g} AS g, COUNT(*) AS n FROM faults f WHERE {conditions} GROUP BY {g} ORDER BY n DESC, g LIMIT {limit}",
        g = group.column()
    );
    sql
}

/// `(slot, group, count)` of the matching faults; the group is `''` without `group`, and with
/// `only` the groups outside it are counted together under `other`.
pub(crate) fn counts_by_slot(
    customer_id: &str,
    filter: &FaultFilter,
    slots: Slots,
    group: Option<(GroupBy, &[String], &str)>,
    now: Micros,
) -> Sql {
    let mut sql = Sql::default();
    let conditions = matching(&mut sql, customer_id, filter, now);
    let (origin, width) = (sql.int(slots.origin), sql.int(slots.slot_micros));
    let group = match group {
        None => "''".to_owned(),
        Some((group, only, other)) => {
            let list: Vec<String> = only.iter().map(|g| sql.text(g)).collect();
            let other = sql.text(other);
            if list.is_empty() {
                other
            } else {
                format!(
                    "CASE WHEN {c} IN ({}) THEN {c} ELSE {other} END",
                    list.join(", "),
                    c = group.column()
                )
            }
        }
    };
    sql.text = format!(
        "SELECT (f.created_at - {origin}) / {width} AS slot, {group} AS g, COUNT(*) FROM faults f \
         WHERE {conditions} GROUP BY 1, 2"
    );
    sql
}

/// `resolved_at - created_at` of the matching resolved faults.
pub(crate) fn repair_times(customer_id: &str, filter: &FaultFilter, now: Micros) -> Sql {
    let mut sql = Sql::default();
    let conditions = matching(&mut sql, customer_id, filter, now);
    sql.text = format!(
        "SELECT f.resolved_at - f.created_at FROM faults f WHERE {conditions} AND f.status = 'resolved' \
         AND f.resolved_at IS NOT NULL"
    );
    sql
}

/// How many matching faults are unresolved.
pub(crate) fn count_open(customer_id: &str, filter: &FaultFilter, now: Micros) -> Sql {
    let mut sql = Sql::default();
    let conditions = matching(&mut sql, customer_id, filter, now);
    sql.text = format!("SELECT COUNT(*) FROM faults f WHERE {conditions} AND f.status = 'unresolved'");
    sql
}

/// `(site, start, end)` of the `site`-type faults matching `filter` (its sites and an access
/// token's scope; not its window) that overlap `[from, to)`; `end` is null while open. The
/// site is the fault's `site_id`, or its resource when it has none.
pub(crate) fn site_outages(customer_id: &str, filter: &FaultFilter, from: Micros, to: Micros) -> Sql {
    let mut sql = Sql::default();
    let site_faults = FaultFilter { from: None, to: None, types: vec!["site".to_owned()], ..filter.clone() };
    let conditions = matching(&mut sql, customer_id, &site_faults, 0);
    let (from, to) = (sql.int(from), sql.int(to));
    sql.text = format!(
        "SELECT COALESCE(f.site_id, f.resource_id), f.created_at, f.resolved_at FROM faults f WHERE {conditions} \
         AND f.created_at < {to} AND (f.resolved_at IS NULL OR f.resolved_at > {from})"
    );
    sql
}
