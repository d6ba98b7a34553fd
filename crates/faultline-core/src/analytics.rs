//! The arithmetic behind `GET /fault/analytics` and `GET /fault/sla`: half-open time intervals,
//! business hours in a time zone, availability, repair-time percentiles, time buckets and the
//! change against the previous period. Pure: the store fetches rows, the server formats answers.
//!
//! Every instant is [`Micros`] (microseconds since the Unix epoch, UTC). Local time only appears
//! inside business hours and bucket edges, computed with the IANA zone the caller names. Instants
//! outside jiff's range (years -9999 to 9999) are clamped to it.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::time::Micros;
use crate::validation::ValidationError;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * MICROS_PER_SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

// ---------------------------------------------------------------------------------------------
// Intervals

/// A half-open span of time `[start, end)` in microseconds; one whose `end` is not after its
/// `start` is empty. An outage that is still open is passed with `end` set to the caller's `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    /// The first microsecond inside.
    pub start: Micros,
    /// The first microsecond after.
    pub end: Micros,
}

impl Interval {
    /// The interval `[start, end)`.
    pub const fn new(start: Micros, end: Micros) -> Interval {
        Interval { start, end }
    }

    /// Its length in microseconds, 0 when it is empty.
    pub fn len(self) -> i64 {
        self.end.saturating_sub(self.start).max(0)
    }

    /// Whether it covers no time at all.
    pub fn is_empty(self) -> bool {
        self.end <= self.start
    }

    /// The time that both intervals cover, or `None` when they share no time.
    pub fn intersection(self, other: Interval) -> Option<Interval> {
        let common = Interval::new(self.start.max(other.start), self.end.min(other.end));
        (!common.is_empty()).then_some(common)
    }
}

/// The union of `intervals` as a sorted list of disjoint, non-empty intervals: overlapping and
/// touching intervals become one, empty ones are dropped. Every other function here that takes
/// "a merged list" expects this shape.
pub fn merge(intervals: impl IntoIterator<Item = Interval>) -> Vec<Interval> {
    let mut sorted: Vec<Interval> = intervals.into_iter().filter(|i| !i.is_empty()).collect();
    sorted.sort_unstable();
    let mut merged: Vec<Interval> = Vec::with_capacity(sorted.len());
    for interval in sorted {
        match merged.last_mut() {
            Some(last) if interval.start <= last.end => last.end = last.end.max(interval.end),
            _ => merged.push(interval),
        }
    }
    merged
}

/// The parts of `intervals` inside `window`, in the same order; parts that fall outside vanish.
pub fn clip(intervals: &[Interval], window: Interval) -> Vec<Interval> {
    intervals.iter().filter_map(|i| i.intersection(window)).collect()
}

/// The summed length of `intervals` in microseconds. Pass a merged list: overlaps count twice.
pub fn total(intervals: &[Interval]) -> i64 {
    intervals.iter().fold(0i64, |sum, i| sum.saturating_add(i.len()))
}

/// The time covered by both `a` and `b`, two merged lists; the answer is merged too.
pub fn intersect(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    debug_assert!(is_merged(a) && is_merged(b), "intersect takes merged lists");
    let mut common = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if let Some(both) = a[i].intersection(b[j]) {
            common.push(both);
        }
        // Whichever ends first can overlap nothing further in the other list.
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    common
}

fn is_merged(intervals: &[Interval]) -> bool {
    intervals.iter().all(|i| !i.is_empty()) && intervals.windows(2).all(|w| w[0].end < w[1].start)
}

// ---------------------------------------------------------------------------------------------
// Business hours

/// Most comma-separated clauses the `hours` parameter may hold.
pub const MAX_HOURS_CLAUSES: usize = 50;
/// Longest `hours` text accepted, in bytes.
pub const MAX_HOURS_TEXT: usize = 1000;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const HOURS_EXAMPLE: &str =
    "write days and times like 'mon-fri 08:00-17:00', or several such clauses separated by commas";

/// Weekly business hours in local time, parsed from the `hours` parameter
/// (`mon-fri 08:00-17:00,sat 09:00-12:00`); its `Display` writes the same form back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessHours {
    clauses: Vec<HoursClause>,
}

/// One clause: a set of weekdays and a span of the local day on each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HoursClause {
    /// Bit 0 is Monday, bit 6 Sunday; always one run of consecutive days, maybe wrapping.
    days: u8,
    /// Minutes after local midnight, `start_minute < end_minute <= 1440`.
    start_minute: u16,
    end_minute: u16,
}

impl BusinessHours {
    /// Parse `hours` text: comma-separated clauses of days (`mon`, or a range like `mon-fri`
    /// or `fri-mon` that wraps over the weekend) and a local time range `HH:MM-HH:MM`
    /// (end up to `24:00`, after the start). Days are case-insensitive.
    pub fn parse(text: &str) -> Result<BusinessHours, ValidationError> {
        let invalid = |reason: String| ValidationError::invalid("hours", reason);
        if text.len() > MAX_HOURS_TEXT {
            return Err(invalid(format!("it is longer than {MAX_HOURS_TEXT} characters")));
        }
        if text.trim().is_empty() {
            return Err(invalid(format!("it is empty; {HOURS_EXAMPLE}")));
        }
        let mut clauses = Vec::new();
        for clause in text.split(',') {
            if clauses.len() == MAX_HOURS_CLAUSES {
                return Err(invalid(format!("it has more than {MAX_HOURS_CLAUSES} clauses")));
            }
            clauses.push(parse_clause(clause.trim()).map_err(invalid)?);
        }
        Ok(BusinessHours { clauses })
    }
}

impl fmt::Display for BusinessHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, clause) in self.clauses.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            let count = clause.days.count_ones() as usize;
            // The run's first day is the one whose predecessor is not in it (Monday for all 7).
            let first =
                (0..7).find(|&d| clause.days & (1 << ((d + 6) % 7)) == 0 && clause.days & (1 << d) != 0);
            let first = first.unwrap_or(0);
            f.write_str(DAY_NAMES[first])?;
            if count > 1 {
                write!(f, "-{}", DAY_NAMES[(first + count - 1) % 7])?;
            }
            write!(f, " {}-{}", Clock(clause.start_minute), Clock(clause.end_minute))?;
        }
        Ok(())
    }
}

/// A minute of the local day written as `HH:MM` (1440 is `24:00`).
struct Clock(u16);

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

fn parse_clause(clause: &str) -> Result<HoursClause, String> {
    if clause.is_empty() {
        return Err(format!("it has an empty clause (a stray comma?); {HOURS_EXAMPLE}"));
    }
    let mut words = clause.split_whitespace();
    let (Some(days), Some(times), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!("'{}' is not days then times; {HOURS_EXAMPLE}", shown(clause)));
    };
    let days = parse_days(days)?;
    let Some((start, end)) = times.split_once('-') else {
        return Err(format!("'{}' is not a time range like 08:00-17:00", shown(times)));
    };
    let (start_minute, end_minute) = (parse_clock(start)?, parse_clock(end)?);
    if start_minute >= end_minute {
        return Err(format!(
            "'{}' does not end after it starts; hours past midnight are two clauses, \
             like 'fri 22:00-24:00,sat 00:00-06:00'",
            shown(times)
        ));
    }
    Ok(HoursClause { days, start_minute, end_minute })
}

/// `mon`, or `mon-fri`, or a wrapping `fri-mon`: a bit set with bit 0 for Monday.
fn parse_days(text: &str) -> Result<u8, String> {
    let day = |name: &str| {
        DAY_NAMES
            .iter()
            .position(|d| d.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("'{}' is not a day; use mon, tue, wed, thu, fri, sat or sun", shown(name)))
    };
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (day(first)?, day(last)?),
        None => (day(text)?, day(text)?),
    };
    let count = (last + 7 - first) % 7 + 1;
    Ok((0..count).fold(0u8, |days, n| days | 1 << ((first + n) % 7)))
}

/// `HH:MM` or `H:MM` from `00:00` to `24:00`, as minutes after midnight.
fn parse_clock(text: &str) -> Result<u16, String> {
    let err = || format!("'{}' is not a time of day; write HH:MM from 00:00 to 24:00", shown(text));
    let (hours, minutes) = text.split_once(':').ok_or_else(err)?;
    let digits = |s: &str, lengths: std::ops::RangeInclusive<usize>| {
        lengths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(hours, 1..=2) || !digits(minutes, 2..=2) {
        return Err(err());
    }
    let (hours, minutes): (u16, u16) =
        (hours.parse().map_err(|_| err())?, minutes.parse().map_err(|_| err())?);
    match (hours, minutes) {
        (0..=23, 0..=59) | (24, 0) => Ok(hours * 60 + minutes),
        _ => Err(err()),
    }
}

/// The user's text quoted back in an error, cut short so a long input cannot bloat the answer.
fn shown(text: &str) -> String {
    const LIMIT: usize = 40;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The business time inside `window` as a merged list: every instant at which the wall clock
/// in `tz` shows a weekday and time of day within `hours`.
///
/// Across a DST change this counts real time: on a spring-forward day `01:00-04:00` in
/// Europe/Berlin is two hours and on a fall-back day four, while `08:00-17:00` stays nine. Clock
/// times that the change skips are never business time, and clock times it repeats count twice.
pub fn business_windows(hours: &BusinessHours, tz: &TimeZone, window: Interval) -> Vec<Interval> {
    let mut found = Vec::new();
    for (segment, offset) in offset_segments(tz, clamp_window(window)) {
        // Within a segment local time is UTC plus one fixed offset, so business hours can be
        // laid out on "local microseconds" and shifted back.
        let local = Interval::new(segment.start + offset, segment.end + offset);
        for day in local.start.div_euclid(DAY)..=(local.end - 1).div_euclid(DAY) {
            let weekday = (day + 3).rem_euclid(7); // 1970-01-01, day 0, was a Thursday.
            for clause in hours.clauses.iter().filter(|c| c.days & (1 << weekday) != 0) {
                let open = Interval::new(
                    day * DAY + i64::from(clause.start_minute) * MINUTE,
                    day * DAY + i64::from(clause.end_minute) * MINUTE,
                );
                if let Some(open) = open.intersection(local) {
                    found.push(Interval::new(open.start - offset, open.end - offset));
                }
            }
        }
    }
    merge(found)
}

/// `window` cut into pieces of constant UTC offset in `tz`, each with that offset in micros.
fn offset_segments(tz: &TimeZone, window: Interval) -> Vec<(Interval, i64)> {
    if window.is_empty() {
        return Vec::new();
    }
    let mut segments = Vec::new();
    let (mut start, mut offset) = (window.start, offset_at(tz, window.start));
    for transition in tz.following(instant(window.start)) {
        let at = transition.timestamp().as_microsecond();
        if at >= window.end {
            break;
        }
        let next = i64::from(transition.offset().seconds()) * MICROS_PER_SECOND;
        if next != offset {
            segments.push((Interval::new(start, at), offset));
            (start, offset) = (at, next);
        }
    }
    segments.push((Interval::new(start, window.end), offset));
    segments
}

// ---------------------------------------------------------------------------------------------
// SLA

/// Parse the `target` parameter: an availability percentage from 0 to 100, like `99.95`.
pub fn parse_sla_target(text: &str) -> Result<f64, ValidationError> {
    match text.trim().parse::<f64>() {
        Ok(target) if (0.0..=100.0).contains(&target) => Ok(target),
        _ => Err(ValidationError::invalid(
            "target",
            format!("'{}' is not a percentage from 0 to 100, like 99.95", shown(text)),
        )),
    }
}

/// One site's availability over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sla {
    /// The time measured, in microseconds: the whole window, or the business time within it.
    pub measured_micros: i64,
    /// How much of the measured time lay inside an outage, in microseconds.
    pub downtime_micros: i64,
    /// `100 × (measured − downtime) / measured`; 100 when nothing was measured.
    pub uptime_percent: f64,
    /// Outages (after merging) that share some time with the measured time.
    pub outage_count: usize,
    /// Whether the uptime fell short of the target.
    pub breached: bool,
}

impl Sla {
    /// The downtime in seconds, exact to the microsecond.
    pub fn downtime_seconds(&self) -> f64 {
        self.downtime_micros as f64 / MICROS_PER_SECOND as f64
    }

    /// The measured time in seconds, exact to the microsecond.
    pub fn measured_seconds(&self) -> f64 {
        self.measured_micros as f64 / MICROS_PER_SECOND as f64
    }
}

/// A site's availability over `window` against `target_percent`, from its outage intervals
/// (in any order, overlapping or not; open ones end at the caller's `now`). With `business`
/// (from [`business_windows`]) only business time is measured.
pub fn sla(
    outages: &[Interval],
    window: Interval,
    target_percent: f64,
    business: Option<&[Interval]>,
) -> Sla {
    let measured = match business {
        Some(business) => clip(&merge(business.iter().copied()), window),
        None => merge([window]),
    };
    let outages = merge(outages.iter().copied());
    let measured_micros = total(&measured);
    let downtime_micros = total(&intersect(&outages, &measured));
    let outage_count = outages
        .iter()
        .filter(|outage| {
            // The first measured piece that ends after the outage starts is the only candidate.
            let candidate = measured.partition_point(|m| m.end <= outage.start);
            measured.get(candidate).is_some_and(|m| m.start < outage.end)
        })
        .count();
    let uptime_percent = if measured_micros == 0 {
        100.0
    } else {
        // Multiplying first keeps `up × 100` exact (for windows up to about 2.8 years), so an
        // uptime that equals the target compares equal rather than a rounding error below it.
        (i128::from(measured_micros - downtime_micros) * 100) as f64 / measured_micros as f64
    };
    Sla {
        measured_micros,
        downtime_micros,
        uptime_percent,
        outage_count,
        breached: uptime_percent < target_percent,
    }
}

// ---------------------------------------------------------------------------------------------
// Repair times

/// Time-to-resolve statistics in seconds; each figure is `None` when there were no repairs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RepairStats {
    /// How many repairs there were.
    pub count: usize,
    /// The arithmetic mean.
    pub mean_seconds: Option<f64>,
    /// `percentile_cont(0.5)`.
    pub median_seconds: Option<f64>,
    /// `percentile_cont(0.9)`.
    pub p90_seconds: Option<f64>,
}

/// Statistics of repair durations given in microseconds (`resolved_at - created_at`), in any
/// order. Median and p90 follow PostgreSQL's `percentile_cont` (see [`percentile_cont`]), so
/// `percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds)` in SQL gives the same figure.
pub fn repair_stats(durations: &[Micros]) -> RepairStats {
    let mut values = durations.to_vec();
    let sum: i128 = values.iter().map(|&d| i128::from(d)).sum();
    let mean_seconds =
        (!values.is_empty()).then(|| sum as f64 / values.len() as f64 / MICROS_PER_SECOND as f64);
    RepairStats {
        count: values.len(),
        mean_seconds,
        median_seconds: percentile_by_selection(&mut values, 0.5),
        p90_seconds: percentile_by_selection(&mut values, 0.9),
    }
}

/// [`percentile_cont`] of `values` in seconds, found by selection instead of a sort: linear
/// in the number of values (a sort of the 700,000 repair times of a year took a quarter of an
/// analytics answer). Reorders `values`.
fn percentile_by_selection(values: &mut [Micros], fraction: f64) -> Option<f64> {
    let seconds = |micros: Micros| micros as f64 / MICROS_PER_SECOND as f64;
    let position = fraction.clamp(0.0, 1.0) * (values.len().checked_sub(1)? as f64);
    let (lower, upper) = (position.floor(), position.ceil());
    let (_, &mut low, above) = values.select_nth_unstable(lower as usize);
    let low = seconds(low);
    if upper > lower {
        let high = seconds(*above.iter().min()?);
        Some(low + (position - lower) * (high - low))
    } else {
        Some(low)
    }
}

/// The `fraction` percentile (0 to 1) of ascending `sorted` values, interpolated linearly between
/// the two closest ranks exactly as PostgreSQL's `percentile_cont`: at position
/// `p = fraction × (n − 1)`, `x[⌊p⌋] + (p − ⌊p⌋) × (x[⌈p⌉] − x[⌊p⌋])`. `None` for no values.
pub fn percentile_cont(sorted: &[f64], fraction: f64) -> Option<f64> {
    let position = fraction.clamp(0.0, 1.0) * (sorted.len().checked_sub(1)? as f64);
    let (lower, upper) = (position.floor(), position.ceil());
    let low = sorted[lower as usize];
    if upper > lower {
        let high = sorted[upper as usize];
        Some(low + (position - lower) * (high - low))
    } else {
        Some(low)
    }
}

// ---------------------------------------------------------------------------------------------
// Buckets

/// Most buckets one request may ask for; more is refused rather than computed.
pub const MAX_BUCKETS: usize = 10_000;
/// Longest `tz` value accepted.
const MAX_TZ_NAME: usize = 64;

/// The width of an analytics bucket, the `interval` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketInterval {
    /// From one whole local hour to the next, split where the UTC offset changes.
    Hour,
    /// From local midnight to local midnight: 23 or 25 hours across a DST change.
    Day,
    /// From Monday local midnight to the next.
    Week,
}

impl BucketInterval {
    /// Parse `hour`, `day` or `week`.
    pub fn parse(text: &str) -> Result<BucketInterval, ValidationError> {
        match text {
            "hour" => Ok(BucketInterval::Hour),
            "day" => Ok(BucketInterval::Day),
            "week" => Ok(BucketInterval::Week),
            _ => Err(ValidationError::invalid(
                "interval",
                format!("'{}' is not one of hour, day, week", shown(text)),
            )),
        }
    }

    /// The parameter text: `hour`, `day` or `week`.
    pub fn as_str(self) -> &'static str {
        match self {
            BucketInterval::Hour => "hour",
            BucketInterval::Day => "day",
            BucketInterval::Week => "week",
        }
    }
}

/// Parse the `tz` parameter: an IANA zone name such as `Europe/Berlin`, or `UTC`.
pub fn parse_time_zone(name: &str) -> Result<TimeZone, ValidationError> {
    let invalid = |reason: String| ValidationError::invalid("tz", reason);
    if name.eq_ignore_ascii_case("UTC") {
        return Ok(TimeZone::UTC);
    }
    if name.is_empty() {
        return Err(invalid("it is empty; name an IANA time zone such as Europe/Berlin, or UTC".into()));
    }
    let unknown = || {
        invalid(format!(
            "'{}' is not a known IANA time zone such as Europe/Berlin or America/New_York",
            shown(name)
        ))
    };
    // IANA names use only these characters; refusing the rest (notably '.') keeps the lookup
    // inside the zone database.
    if name.len() > MAX_TZ_NAME || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b)) {
        return Err(unknown());
    }
    match TimeZone::get(name) {
        Ok(tz) if !tz.is_unknown() => Ok(tz),
        _ if jiff::tz::db().is_definitively_empty() => Err(invalid(format!(
            "'{name}' cannot be looked up: this server has no time zone database \
             (install the tzdata package), so only UTC is available"
        ))),
        _ => Err(unknown()),
    }
}

/// The start of the bucket that holds instant `t`, in local time of `tz`.
///
/// A day bucket starts at the first instant the wall clock shows its date: local midnight, the
/// first of two when a DST change repeats it, or the moment a change jumps over it. A week is
/// the days from Monday. Each date has one bucket: where a change turned the clock back across
/// midnight (St. John's until 2011: 00:01 back to 23:01), the repeated minutes stay in the new
/// day. An hour bucket runs from a whole local hour to the next and also starts wherever the UTC
/// offset changes, so a fall-back day has two distinct `01:00` hours in New York.
pub fn bucket_start(t: Micros, interval: BucketInterval, tz: &TimeZone) -> Micros {
    let t = clamp(t);
    match interval {
        BucketInterval::Hour => {
            let whole_hour = t - (t + offset_at(tz, t)).rem_euclid(HOUR);
            match last_offset_change(tz, t, whole_hour) {
                Some(change) => change,
                None => whole_hour,
            }
        }
        BucketInterval::Day => calendar_bucket_start(tz, t, local_date(tz, t), 1),
        BucketInterval::Week => calendar_bucket_start(tz, t, monday_of(local_date(tz, t)), 7),
    }
}

/// Every bucket start from the bucket holding `window.start` up to (not including)
/// `window.end`, ascending, so buckets without faults can be reported as zero. The first and
/// last buckets may reach outside the window. Empty for an empty window; an error naming
/// `interval` when there would be more than [`MAX_BUCKETS`].
pub fn bucket_edges(
    window: Interval,
    interval: BucketInterval,
    tz: &TimeZone,
) -> Result<Vec<Micros>, ValidationError> {
    let mut edges = Vec::new();
    if window.is_empty() {
        return Ok(edges);
    }
    let window = clamp_window(window);
    let mut edge = bucket_start(window.start, interval, tz);
    // The next offset change after `edge`, looked up again only once `edge` has reached it.
    let mut next_change = Micros::MIN;
    while edge < window.end {
        if edges.len() == MAX_BUCKETS {
            return Err(ValidationError::invalid(
                "interval",
                format!(
                    "{} buckets over this range would be more than {MAX_BUCKETS}; \
                     use a longer interval or a shorter range",
                    interval.as_str()
                ),
            ));
        }
        edges.push(edge);
        let next = match interval {
            BucketInterval::Hour => {
                if next_change <= edge {
                    next_change = next_offset_change(tz, edge).unwrap_or(Micros::MAX);
                }
                let next_whole_hour = edge - (edge + offset_at(tz, edge)).rem_euclid(HOUR) + HOUR;
                Some(next_whole_hour.min(next_change))
            }
            BucketInterval::Day => days_later(local_date(tz, edge), 1).and_then(|d| first_instant(tz, d)),
            BucketInterval::Week => {
                days_later(monday_of(local_date(tz, edge)), 7).and_then(|d| first_instant(tz, d))
            }
        }
        .unwrap_or(window.end);
        // Only at the end of jiff's range could the next edge fail to move forward.
        edge = if next > edge { next } else { window.end };
    }
    Ok(edges)
}

/// The index in `edges` (from [`bucket_edges`]) of the bucket holding `t`, or `None` when `t`
/// comes before the first edge. The last bucket is taken to run on without end.
pub fn bucket_index(edges: &[Micros], t: Micros) -> Option<usize> {
    edges.partition_point(|&edge| edge <= t).checked_sub(1)
}

fn instant(t: Micros) -> Timestamp {
    Timestamp::from_microsecond(clamp(t)).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn clamp(t: Micros) -> Micros {
    t.clamp(Timestamp::MIN.as_microsecond(), Timestamp::MAX.as_microsecond())
}

fn clamp_window(window: Interval) -> Interval {
    Interval::new(clamp(window.start), clamp(window.end))
}

/// The UTC offset of `tz` at `t`, in microseconds.
fn offset_at(tz: &TimeZone, t: Micros) -> i64 {
    i64::from(tz.to_offset(instant(t)).seconds()) * MICROS_PER_SECOND
}

fn local_date(tz: &TimeZone, t: Micros) -> Date {
    tz.to_datetime(instant(t)).date()
}

fn monday_of(date: Date) -> Date {
    let back = i64::from(date.weekday().to_monday_zero_offset());
    date.checked_sub(jiff::Span::new().days(back)).unwrap_or(date)
}

/// The start of the day or week bucket holding `t`, whose wall clock shows a date in the
/// `days` long run from `first_day`: the run's first instant, unless the next run has already
/// begun and the clock was turned back across midnight into this one.
fn calendar_bucket_start(tz: &TimeZone, t: Micros, first_day: Date, days: i64) -> Micros {
    match days_later(first_day, days).and_then(|next_day| first_instant(tz, next_day)) {
        Some(next) if next <= t => next,
        _ => first_instant(tz, first_day).unwrap_or(t),
    }
}

fn days_later(date: Date, days: i64) -> Option<Date> {
    date.checked_add(jiff::Span::new().days(days)).ok()
}

/// The first instant at which the wall clock in `tz` shows `date` (or a later one): its
/// midnight, the first of two midnights, or the moment a DST change jumps over midnight.
fn first_instant(tz: &TimeZone, date: Date) -> Option<Micros> {
    let midnight = tz.to_ambiguous_timestamp(date.to_datetime(Time::midnight()));
    // Compatible: the earlier of two midnights; a skipped one read with the offset before the
    // change, which lands at or after the change itself.
    let compatible = midnight.compatible().ok()?.as_microsecond();
    match midnight.offset() {
        AmbiguousOffset::Gap { .. } => {
            // Toronto, 1919-03-30: 23:30 jumped to 00:30, so the 31st began at the jump.
            tz.preceding(instant(compatible.saturating_add(1)))
                .next()
                .map(|jump| jump.timestamp().as_microsecond())
        }
        _ => Some(compatible),
    }
}

/// The latest instant in `(after, t]` at which the UTC offset of `tz` changes.
fn last_offset_change(tz: &TimeZone, t: Micros, after: Micros) -> Option<Micros> {
    tz.preceding(instant(t.saturating_add(1)))
        .map(|transition| transition.timestamp().as_microsecond())
        .take_while(|&at| at > after)
        .find(|&at| offset_at(tz, at - 1) != offset_at(tz, at))
}

/// The first instant after `t` at which the UTC offset of `tz` changes.
fn next_offset_change(tz: &TimeZone, t: Micros) -> Option<Micros> {
    tz.following(instant(t))
        .map(|transition| transition.timestamp().as_microsecond())
        .find(|&at| offset_at(tz, at - 1) != offset_at(tz, at))
}

// ---------------------------------------------------------------------------------------------
// Previous period

/// The window of equal length that ends where `window` starts.
pub fn previous_window(window: Interval) -> Interval {
    Interval::new(window.start.saturating_sub(window.len()), window.start)
}

/// How a figure moved since the previous period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// `current − previous`.
    pub absolute: f64,
    /// The change as a percentage of `previous`; `None` when `previous` is 0.
    pub percent: Option<f64>,
}

/// The change from `previous` to `current` (counts or seconds).
pub fn change(current: f64, previous: f64) -> Change {
    let absolute = current - previous;
    let percent = (previous != 0.0).then(|| absolute / previous.abs() * 100.0);
    Change { absolute, percent }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn iv(start: Micros, end: Micros) -> Interval {
        Interval::new(start, end)
    }

    fn at(text: &str) -> Micros {
        parse_rfc3339(text).unwrap()
    }

    /// `[from, to)` given as RFC 3339 texts.
    fn span(from: &str, to: &str) -> Interval {
        iv(at(from), at(to))
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn hours(text: &str) -> BusinessHours {
        BusinessHours::parse(text).unwrap()
    }

    fn hours_error(text: &str) -> String {
        let err = BusinessHours::parse(text).unwrap_err();
        assert_eq!(err.param(), "hours");
        err.to_string()
    }

    // --- intervals

    #[test]
    fn interval_length_and_intersection() {
        assert_eq!(iv(10, 25).len(), 15);
        assert_eq!(iv(10, 10).len(), 0);
        assert_eq!(iv(10, 5).len(), 0);
        assert!(iv(10, 5).is_empty() && iv(3, 3).is_empty() && !iv(3, 4).is_empty());
        assert_eq!(iv(0, 10).intersection(iv(5, 20)), Some(iv(5, 10)));
        assert_eq!(iv(0, 10).intersection(iv(10, 20)), None, "touching shares no time");
        assert_eq!(iv(i64::MIN, i64::MAX).len(), i64::MAX, "saturates instead of overflowing");
    }

    #[test]
    fn merge_joins_overlapping_and_touching_and_drops_empty() {
        let merged = merge([iv(10, 20), iv(0, 5), iv(5, 7), iv(15, 30), iv(40, 40), iv(50, 45), iv(31, 35)]);
        assert_eq!(merged, vec![iv(0, 7), iv(10, 30), iv(31, 35)]);
        assert_eq!(merge([iv(0, 100), iv(10, 20), iv(99, 100)]), vec![iv(0, 100)]);
        assert_eq!(merge([]), vec![]);
    }

    #[test]
    fn clip_total_and_intersect() {
        let list = [iv(0, 10), iv(20, 30), iv(40, 50)];
        assert_eq!(clip(&list, iv(5, 45)), vec![iv(5, 10), iv(20, 30), iv(40, 45)]);
        assert_eq!(clip(&list, iv(10, 20)), vec![]);
        assert_eq!(total(&list), 30);
        assert_eq!(total(&[iv(0, 10), iv(5, 15)]), 20, "total sums: merge first");
        assert_eq!(total(&[]), 0);
        let other = [iv(5, 25), iv(28, 45)];
        assert_eq!(intersect(&list, &other), vec![iv(5, 10), iv(20, 25), iv(28, 30), iv(40, 45)]);
        assert_eq!(intersect(&list, &[]), vec![]);
    }

    // --- business hours: parsing

    #[test]
    fn parses_days_ranges_wrapping_lists_and_midnight_end() {
        let weekdays = hours("mon-fri 08:00-17:00");
        assert_eq!(
            weekdays.clauses,
            vec![HoursClause { days: 0b001_1111, start_minute: 480, end_minute: 1020 }]
        );
        assert_eq!(hours("sat 10:00-14:00").clauses[0].days, 1 << 5);
        assert_eq!(hours("fri-mon 09:00-12:00").clauses[0].days, 0b111_0001);
        assert_eq!(hours("sun 00:00-24:00").clauses[0].end_minute, 1440);
        let list = hours(" Mon-FRI 08:00-17:00 ,  sat   9:30-12:00 ");
        assert_eq!(list.to_string(), "mon-fri 08:00-17:00,sat 09:30-12:00");
        assert_eq!(hours("tue-mon 00:00-24:00").to_string(), "mon-sun 00:00-24:00");
        assert_eq!(hours("sun-tue 06:00-07:00").to_string(), "sun-tue 06:00-07:00");
        assert_eq!(hours("wed-wed 06:00-07:00").to_string(), "wed 06:00-07:00");
    }

    #[test]
    fn refuses_malformed_hours_saying_what_is_wrong() {
        for (text, says) in [
            ("", "it is empty"),
            ("   ", "it is empty"),
            ("mon-fri", "'mon-fri' is not days then times"),
            ("mon-fri 08:00-17:00 cet", "is not days then times"),
            ("mon-fry 08:00-17:00", "'fry' is not a day"),
            ("monday 08:00-17:00", "'monday' is not a day"),
            ("mon-fri 08:00", "'08:00' is not a time range"),
            ("mon-fri 0800-1700", "'0800' is not a time of day"),
            ("mon 8:5-9:00", "'8:5' is not a time of day"),
            ("mon 25:00-26:00", "'25:00' is not a time of day"),
            ("mon 08:60-09:00", "'08:60' is not a time of day"),
            ("mon 08:00-24:01", "'24:01' is not a time of day"),
            ("mon +8:00-9:00", "'+8:00' is not a time of day"),
            ("mon-fri 17:00-08:00", "'17:00-08:00' does not end after it starts"),
            ("mon 08:00-08:00", "does not end after it starts"),
            ("mon 24:00-24:00", "does not end after it starts"),
            ("mon-fri 08:00-17:00,", "an empty clause"),
            ("mon 08:00-09:00,,tue 08:00-09:00", "an empty clause"),
        ] {
            let message = hours_error(text);
            assert!(message.contains(says), "{text:?}: {message}");
        }
        let many = vec!["mon 08:00-09:00"; MAX_HOURS_CLAUSES + 1].join(",");
        assert!(hours_error(&many).contains("more than 50 clauses"));
        assert!(BusinessHours::parse(&vec!["mon 08:00-09:00"; MAX_HOURS_CLAUSES].join(",")).is_ok());
        assert!(hours_error(&"x".repeat(MAX_HOURS_TEXT + 1)).contains("longer than 1000"));
        let long = format!("{} 08:00-09:00", "y".repeat(300));
        let message = hours_error(&long);
        assert!(message.contains(&format!("'{}…'", "y".repeat(40))) && message.len() < 200, "{message}");
    }

    // --- business hours: windows

    #[test]
    fn business_hours_on_a_utc_week() {
        let week = span("2025-06-02T00:00:00Z", "2025-06-09T00:00:00Z"); // Monday to Monday
        let windows = business_windows(&hours("mon-fri 08:00-17:00"), &TimeZone::UTC, week);
        let expected: Vec<Interval> = (2..=6)
            .map(|d| span(&format!("2025-06-0{d}T08:00:00Z"), &format!("2025-06-0{d}T17:00:00Z")))
            .collect();
        assert_eq!(windows, expected);

        let partial = span("2025-06-02T12:00:00Z", "2025-06-03T10:00:00Z");
        assert_eq!(
            business_windows(&hours("mon-fri 08:00-17:00"), &TimeZone::UTC, partial),
            vec![
                span("2025-06-02T12:00:00Z", "2025-06-02T17:00:00Z"),
                span("2025-06-03T08:00:00Z", "2025-06-03T10:00:00Z")
            ]
        );

        let weekend = business_windows(&hours("fri-mon 09:00-12:00"), &TimeZone::UTC, week);
        let starts: Vec<Micros> = weekend.iter().map(|w| w.start).collect();
        let days = ["2025-06-02", "2025-06-06", "2025-06-07", "2025-06-08"];
        assert_eq!(starts, days.map(|d| at(&format!("{d}T09:00:00Z"))));

        let overnight = business_windows(&hours("mon 20:00-24:00,tue 00:00-02:00"), &TimeZone::UTC, week);
        assert_eq!(overnight, vec![span("2025-06-02T20:00:00Z", "2025-06-03T02:00:00Z")]);
        assert_eq!(business_windows(&hours("mon 08:00-09:00"), &TimeZone::UTC, iv(5, 5)), vec![]);
    }

    #[test]
    fn business_hours_follow_local_time_in_berlin() {
        let berlin = zone("Europe/Berlin");
        let weeks = span("2025-03-24T00:00:00Z", "2025-04-01T00:00:00Z");
        let windows = business_windows(&hours("mon-fri 08:00-17:00"), &berlin, weeks);
        assert_eq!(windows.len(), 6);
        assert_eq!(windows[0], span("2025-03-24T08:00:00+01:00", "2025-03-24T17:00:00+01:00"));
        assert_eq!(windows[5], span("2025-03-31T08:00:00+02:00", "2025-03-31T17:00:00+02:00"));
    }

    #[test]
    fn business_hours_across_berlin_dst_changes() {
        let berlin = zone("Europe/Berlin");
        // Sunday 2025-03-30: 02:00 CET jumps to 03:00 CEST; the local day lasts 23 hours.
        let spring = span("2025-03-30T00:00:00+01:00", "2025-03-31T00:00:00+02:00");
        let office = business_windows(&hours("sun 08:00-17:00"), &berlin, spring);
        assert_eq!(office, vec![span("2025-03-30T08:00:00+02:00", "2025-03-30T17:00:00+02:00")]);
        assert_eq!(total(&office), 9 * HOUR);
        let night = business_windows(&hours("sun 01:00-04:00"), &berlin, spring);
        assert_eq!(night, vec![span("2025-03-30T01:00:00+01:00", "2025-03-30T04:00:00+02:00")]);
        assert_eq!(total(&night), 2 * HOUR);
        assert_eq!(business_windows(&hours("sun 02:00-02:30"), &berlin, spring), vec![], "skipped");

        // Sunday 2025-10-26: 03:00 CEST falls back to 02:00 CET; the local day lasts 25 hours.
        let autumn = span("2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00");
        assert_eq!(total(&business_windows(&hours("sun 08:00-17:00"), &berlin, autumn)), 9 * HOUR);
        let night = business_windows(&hours("sun 01:00-04:00"), &berlin, autumn);
        assert_eq!(night, vec![span("2025-10-26T01:00:00+02:00", "2025-10-26T04:00:00+01:00")]);
        assert_eq!(total(&night), 4 * HOUR);
        // 02:30-03:00 happens twice, an hour apart.
        assert_eq!(
            business_windows(&hours("sun 02:30-03:00"), &berlin, autumn),
            vec![
                span("2025-10-26T02:30:00+02:00", "2025-10-26T03:00:00+02:00"),
                span("2025-10-26T02:30:00+01:00", "2025-10-26T03:00:00+01:00")
            ]
        );
        assert_eq!(total(&business_windows(&hours("mon-sun 00:00-24:00"), &berlin, autumn)), 25 * HOUR);
    }

    #[test]
    fn business_hours_across_new_york_dst_changes() {
        let new_york = zone("America/New_York");
        // Sunday 2025-03-09: 02:00 EST jumps to 03:00 EDT.
        let spring = span("2025-03-09T00:00:00-05:00", "2025-03-10T00:00:00-04:00");
        assert_eq!(total(&business_windows(&hours("sun 08:00-17:00"), &new_york, spring)), 9 * HOUR);
        let night = business_windows(&hours("sun 01:00-04:00"), &new_york, spring);
        assert_eq!(night, vec![span("2025-03-09T01:00:00-05:00", "2025-03-09T04:00:00-04:00")]);
        assert_eq!(total(&night), 2 * HOUR);
        assert_eq!(total(&business_windows(&hours("mon-sun 00:00-24:00"), &new_york, spring)), 23 * HOUR);

        // Sunday 2025-11-02: 02:00 EDT falls back to 01:00 EST, so 01:00-02:00 happens twice.
        let autumn = span("2025-11-02T00:00:00-04:00", "2025-11-03T00:00:00-05:00");
        assert_eq!(total(&business_windows(&hours("sun 08:00-17:00"), &new_york, autumn)), 9 * HOUR);
        assert_eq!(total(&business_windows(&hours("sun 01:00-04:00"), &new_york, autumn)), 4 * HOUR);
        assert_eq!(
            business_windows(&hours("sun 01:00-02:00"), &new_york, autumn),
            vec![span("2025-11-02T01:00:00-04:00", "2025-11-02T02:00:00-05:00")]
        );
    }

    #[test]
    fn business_hours_on_a_day_the_zone_skipped() {
        // Samoa moved across the date line: Thursday 2011-12-29 was followed by Saturday the 31st.
        let apia = zone("Pacific/Apia");
        let days = span("2011-12-29T00:00:00-10:00", "2012-01-01T00:00:00+14:00");
        assert_eq!(business_windows(&hours("fri 00:00-24:00"), &apia, days), vec![]);
        assert_eq!(
            business_windows(&hours("thu-sat 08:00-09:00"), &apia, days),
            vec![
                span("2011-12-29T08:00:00-10:00", "2011-12-29T09:00:00-10:00"),
                span("2011-12-31T08:00:00+14:00", "2011-12-31T09:00:00+14:00")
            ]
        );
    }

    // --- SLA

    #[test]
    fn sla_merges_overlaps_and_clips_to_the_window() {
        let s = MICROS_PER_SECOND;
        let outages =
            [iv(150 * s, 300 * s), iv(100 * s, 200 * s), iv(900 * s, 1100 * s), iv(2000 * s, 2100 * s)];
        let report = sla(&outages, iv(0, 1000 * s), 99.0, None);
        assert_eq!(report.measured_micros, 1000 * s);
        assert_eq!(report.downtime_micros, 300 * s);
        assert_eq!(report.downtime_seconds(), 300.0);
        assert_eq!(report.measured_seconds(), 1000.0);
        assert_eq!(report.uptime_percent, 70.0);
        assert_eq!(report.outage_count, 2, "the outage after the window is not counted");
        assert!(report.breached);

        let calm = sla(&[], iv(0, 1000 * s), 99.0, None);
        assert_eq!(
            (calm.downtime_micros, calm.uptime_percent, calm.outage_count, calm.breached),
            (0, 100.0, 0, false)
        );
        let touching = sla(&[iv(10, 20), iv(20, 30)], iv(0, 100), 50.0, None);
        assert_eq!(touching.outage_count, 1);
        let fraction = sla(&[iv(0, 1)], iv(0, 3 * s), 0.0, None);
        assert_eq!(fraction.downtime_seconds(), 0.000_001);
    }

    #[test]
    fn uptime_exactly_at_the_target_is_not_a_breach() {
        let s = MICROS_PER_SECOND;
        let window = iv(0, 1_000_000 * s);
        let at_target = sla(&[iv(0, 500 * s)], window, 99.95, None);
        assert_eq!(at_target.uptime_percent, 99.95);
        assert!(!at_target.breached);
        let below = sla(&[iv(0, 500 * s + 1)], window, 99.95, None);
        assert!(below.uptime_percent < 99.95 && below.breached);
        // 0.99 % of 30 days down against 99.01: dividing before multiplying by 100 would round
        // the uptime to just below the target.
        let month = iv(0, 30 * DAY);
        let at_target = sla(&[iv(0, 25_660_800_000)], month, 99.01, None);
        assert_eq!(at_target.uptime_percent, 99.01);
        assert!(!at_target.breached);
    }

    #[test]
    fn sla_in_business_hours_counts_only_business_time() {
        let week = span("2025-06-02T00:00:00Z", "2025-06-09T00:00:00Z");
        let business = business_windows(&hours("mon-fri 08:00-17:00"), &TimeZone::UTC, week);
        let outages = [
            span("2025-06-07T10:00:00Z", "2025-06-07T12:00:00Z"), // Saturday: not measured
            span("2025-06-02T16:00:00Z", "2025-06-03T09:00:00Z"), // overnight: 1 h + 1 h
        ];
        let report = sla(&outages, week, 95.0, Some(&business));
        assert_eq!(report.measured_micros, 45 * HOUR);
        assert_eq!(report.downtime_micros, 2 * HOUR);
        assert_eq!(report.outage_count, 1);
        assert_eq!(report.uptime_percent, 100.0 * 43.0 / 45.0);
        assert!(!report.breached);

        let nothing_measured = sla(&outages, week, 99.0, Some(&[]));
        assert_eq!(
            nothing_measured,
            Sla {
                measured_micros: 0,
                downtime_micros: 0,
                uptime_percent: 100.0,
                outage_count: 0,
                breached: false
            }
        );
    }

    #[test]
    fn parses_sla_targets() {
        assert_eq!(parse_sla_target("99.95").unwrap(), 99.95);
        assert_eq!(parse_sla_target("100").unwrap(), 100.0);
        assert_eq!(parse_sla_target("0").unwrap(), 0.0);
        for bad in ["", "100.01", "-1", "abc", "NaN", "inf", "99,9"] {
            let err = parse_sla_target(bad).unwrap_err();
            assert_eq!(err.param(), "target", "{bad}");
            assert!(err.to_string().contains("percentage from 0 to 100"), "{bad}");
        }
    }

    // --- repair times

    #[test]
    fn repair_stats_match_postgres_percentile_cont() {
        let s = MICROS_PER_SECOND;
        assert_eq!(
            repair_stats(&[]),
            RepairStats { count: 0, mean_seconds: None, median_seconds: None, p90_seconds: None }
        );
        let one = repair_stats(&[90 * s]);
        assert_eq!(
            (one.count, one.mean_seconds, one.median_seconds, one.p90_seconds),
            (1, Some(90.0), Some(90.0), Some(90.0))
        );

        // SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY x) FROM generate_series(1, 10) x  => 9.1
        let ten = repair_stats(&[7, 3, 10, 1, 2, 9, 4, 8, 6, 5].map(|x| x * s));
        assert_eq!(ten.count, 10);
        assert_eq!(ten.mean_seconds, Some(5.5));
        assert_eq!(ten.median_seconds, Some(5.5));
        assert!((ten.p90_seconds.unwrap() - 9.1).abs() < 1e-12, "{:?}", ten.p90_seconds);

        let four = repair_stats(&[4 * s, s, 3 * s, 2 * s]);
        assert_eq!(four.median_seconds, Some(2.5));
        assert!((four.p90_seconds.unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(repair_stats(&[1_500_000]).median_seconds, Some(1.5));
        assert_eq!(percentile_cont(&[1.0, 2.0], 0.0), Some(1.0));
        assert_eq!(percentile_cont(&[1.0, 2.0], 1.0), Some(2.0));
    }

    // --- buckets

    fn edges(from: &str, to: &str, interval: BucketInterval, tz: &TimeZone) -> Vec<Micros> {
        bucket_edges(span(from, to), interval, tz).unwrap()
    }

    fn lengths(edges: &[Micros]) -> Vec<i64> {
        edges.windows(2).map(|w| (w[1] - w[0]) / HOUR).collect()
    }

    #[test]
    fn day_buckets_are_23_or_25_hours_across_dst() {
        let berlin = zone("Europe/Berlin");
        let spring = edges("2025-03-29T12:00:00Z", "2025-04-01T00:00:00Z", BucketInterval::Day, &berlin);
        assert_eq!(
            spring,
            [
                at("2025-03-29T00:00:00+01:00"),
                at("2025-03-30T00:00:00+01:00"),
                at("2025-03-31T00:00:00+02:00"),
                at("2025-04-01T00:00:00+02:00"),
            ]
        );
        assert_eq!(lengths(&spring), [24, 23, 24]);
        let autumn =
            edges("2025-10-25T00:00:00+02:00", "2025-10-28T00:00:00+01:00", BucketInterval::Day, &berlin);
        assert_eq!(lengths(&autumn), [24, 25]);

        let new_york = zone("America/New_York");
        let spring =
            edges("2025-03-08T00:00:00-05:00", "2025-03-11T00:00:00-04:00", BucketInterval::Day, &new_york);
        assert_eq!(spring[1], at("2025-03-09T00:00:00-05:00"));
        assert_eq!(lengths(&spring), [24, 23]);
        let autumn =
            edges("2025-11-01T00:00:00-04:00", "2025-11-04T00:00:00-05:00", BucketInterval::Day, &new_york);
        assert_eq!(lengths(&autumn), [24, 25]);
    }

    #[test]
    fn hour_buckets_are_real_hours() {
        let new_york = zone("America/New_York");
        let autumn =
            edges("2025-11-02T00:00:00-04:00", "2025-11-03T00:00:00-05:00", BucketInterval::Hour, &new_york);
        assert_eq!(autumn.len(), 25);
        assert!(autumn.windows(2).all(|w| w[1] - w[0] == HOUR));
        let first_one = bucket_start(at("2025-11-02T01:30:00-04:00"), BucketInterval::Hour, &new_york);
        let second_one = bucket_start(at("2025-11-02T01:30:00-05:00"), BucketInterval::Hour, &new_york);
        assert_eq!(first_one, at("2025-11-02T01:00:00-04:00"));
        assert_eq!(second_one, at("2025-11-02T01:00:00-05:00"));
        let spring =
            edges("2025-03-09T00:00:00-05:00", "2025-03-10T00:00:00-04:00", BucketInterval::Hour, &new_york);
        assert_eq!(spring.len(), 23);
        assert_eq!(spring[2], at("2025-03-09T03:00:00-04:00"));

        let berlin = zone("Europe/Berlin");
        let autumn =
            edges("2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00", BucketInterval::Hour, &berlin);
        assert_eq!(autumn.len(), 25);
        assert_eq!(autumn[2], at("2025-10-26T02:00:00+02:00"));
        assert_eq!(autumn[3], at("2025-10-26T02:00:00+01:00"));

        // Lord Howe Island moves its clocks by half an hour, so one hour bucket is half an hour.
        let lord_howe = zone("Australia/Lord_Howe");
        let autumn =
            edges("2025-04-06T01:00:00+11:00", "2025-04-06T03:00:00+10:30", BucketInterval::Hour, &lord_howe);
        assert_eq!(
            autumn,
            [
                at("2025-04-06T01:00:00+11:00"),
                at("2025-04-06T01:30:00+10:30"),
                at("2025-04-06T02:00:00+10:30")
            ]
        );
        let spring =
            edges("2025-10-05T01:00:00+10:30", "2025-10-05T04:00:00+11:00", BucketInterval::Hour, &lord_howe);
        assert_eq!(
            spring,
            [
                at("2025-10-05T01:00:00+10:30"),
                at("2025-10-05T02:30:00+11:00"),
                at("2025-10-05T03:00:00+11:00")
            ]
        );
        assert_eq!(
            bucket_start(at("2025-10-05T02:45:00+11:00"), BucketInterval::Hour, &lord_howe),
            at("2025-10-05T02:30:00+11:00")
        );

        // India is five and a half hours ahead, so its hours start at half past in UTC.
        let kolkata = zone("Asia/Kolkata");
        assert_eq!(
            bucket_start(at("2025-01-01T10:45:00Z"), BucketInterval::Hour, &kolkata),
            at("2025-01-01T10:30:00Z")
        );
    }

    #[test]
    fn week_buckets_start_on_monday_local_midnight() {
        let berlin = zone("Europe/Berlin");
        let monday = at("2025-03-24T00:00:00+01:00");
        assert_eq!(bucket_start(at("2025-03-26T12:00:00Z"), BucketInterval::Week, &berlin), monday);
        assert_eq!(bucket_start(monday, BucketInterval::Week, &berlin), monday);
        assert_eq!(bucket_start(monday - 1, BucketInterval::Week, &berlin), at("2025-03-17T00:00:00+01:00"));
        assert_eq!(bucket_start(at("2025-03-30T23:59:59+02:00"), BucketInterval::Week, &berlin), monday);
        let weeks = edges("2025-03-20T00:00:00Z", "2025-04-08T00:00:00Z", BucketInterval::Week, &berlin);
        assert_eq!(
            weeks,
            [
                at("2025-03-17T00:00:00+01:00"),
                monday,
                at("2025-03-31T00:00:00+02:00"),
                at("2025-04-07T00:00:00+02:00"),
            ]
        );
        assert_eq!(lengths(&weeks), [168, 167, 168]);
        // Sunday in UTC is still Sunday; in Tokyo it is already Monday.
        let sunday_evening = at("2025-03-30T20:00:00Z");
        assert_eq!(
            bucket_start(sunday_evening, BucketInterval::Week, &TimeZone::UTC),
            at("2025-03-24T00:00:00Z")
        );
        assert_eq!(
            bucket_start(sunday_evening, BucketInterval::Week, &zone("Asia/Tokyo")),
            at("2025-03-31T00:00:00+09:00")
        );
    }

    #[test]
    fn day_buckets_where_midnight_is_skipped_or_repeated() {
        // São Paulo, 2018-11-04: midnight jumped to 01:00, so the day starts at 01:00.
        let sao_paulo = zone("America/Sao_Paulo");
        assert_eq!(
            bucket_start(at("2018-11-04T12:00:00-02:00"), BucketInterval::Day, &sao_paulo),
            at("2018-11-04T01:00:00-02:00")
        );
        // Havana, 2025-11-02: 01:00 fell back to 00:00, so the day starts at the first midnight.
        let havana = zone("America/Havana");
        assert_eq!(
            bucket_start(at("2025-11-02T00:30:00-05:00"), BucketInterval::Day, &havana),
            at("2025-11-02T00:00:00-04:00")
        );
        // Toronto, 1919-03-30: 23:30 jumped to 00:30, so the 31st began at 00:30.
        let toronto = zone("America/Toronto");
        let days =
            edges("1919-03-30T00:00:00-05:00", "1919-04-01T00:00:00-04:00", BucketInterval::Day, &toronto);
        assert_eq!(days, [at("1919-03-30T00:00:00-05:00"), at("1919-03-31T00:30:00-04:00")]);
        assert_eq!(
            bucket_start(at("1919-03-31T00:40:00-04:00"), BucketInterval::Day, &toronto),
            at("1919-03-31T00:30:00-04:00")
        );
        // St. John's, 2006-10-29: 00:01 went back to 23:01 on the 28th. The 29th has begun and
        // keeps its bucket through the repeated hour, which makes it 25 hours long.
        let st_johns = zone("America/St_Johns");
        let days =
            edges("2006-10-28T00:00:00-02:30", "2006-10-30T00:00:00-03:30", BucketInterval::Day, &st_johns);
        assert_eq!(days, [at("2006-10-28T00:00:00-02:30"), at("2006-10-29T00:00:00-02:30")]);
        assert_eq!(
            bucket_start(at("2006-10-28T23:30:00-03:30"), BucketInterval::Day, &st_johns),
            at("2006-10-29T00:00:00-02:30")
        );
        assert_eq!(
            bucket_start(at("2006-10-30T00:00:00-03:30"), BucketInterval::Day, &st_johns) - days[1],
            25 * HOUR
        );
        // Samoa skipped Friday 2011-12-30 altogether.
        let apia = zone("Pacific/Apia");
        let days =
            edges("2011-12-29T00:00:00-10:00", "2012-01-01T00:00:00+14:00", BucketInterval::Day, &apia);
        assert_eq!(days, [at("2011-12-29T00:00:00-10:00"), at("2011-12-31T00:00:00+14:00")]);
    }

    #[test]
    fn bucket_edges_are_capped_and_empty_for_an_empty_window() {
        let start = at("2025-01-01T00:00:00Z");
        let max = MAX_BUCKETS as i64;
        let most = bucket_edges(iv(start, start + max * HOUR), BucketInterval::Hour, &TimeZone::UTC).unwrap();
        assert_eq!(most.len(), MAX_BUCKETS);
        let err = bucket_edges(iv(start, start + max * HOUR + 1), BucketInterval::Hour, &TimeZone::UTC)
            .unwrap_err();
        assert_eq!(err.param(), "interval");
        assert!(err.to_string().contains("more than 10000"), "{err}");
        assert!(bucket_edges(iv(start, start), BucketInterval::Day, &TimeZone::UTC).unwrap().is_empty());
        let ten_years = iv(start, start + 3650 * DAY);
        assert_eq!(bucket_edges(ten_years, BucketInterval::Day, &zone("Europe/Berlin")).unwrap().len(), 3651);
    }

    #[test]
    fn bucket_index_finds_the_bucket_of_an_instant() {
        let edges = [0, 10, 20];
        assert_eq!(
            [-1, 0, 9, 10, 19, 20, 99].map(|t| bucket_index(&edges, t)),
            [None, Some(0), Some(0), Some(1), Some(1), Some(2), Some(2)]
        );
        assert_eq!(bucket_index(&[], 5), None);
    }

    #[test]
    fn parses_interval_and_time_zone() {
        for interval in [BucketInterval::Hour, BucketInterval::Day, BucketInterval::Week] {
            assert_eq!(BucketInterval::parse(interval.as_str()).unwrap(), interval);
        }
        for bad in ["", "month", "Hour", " day"] {
            let err = BucketInterval::parse(bad).unwrap_err();
            assert_eq!(err.param(), "interval");
            assert!(err.to_string().contains("hour, day, week"), "{err}");
        }
        assert_eq!(parse_time_zone("Europe/Berlin").unwrap().iana_name(), Some("Europe/Berlin"));
        assert_eq!(parse_time_zone("UTC").unwrap(), TimeZone::UTC);
        assert_eq!(parse_time_zone("utc").unwrap(), TimeZone::UTC);
        for bad in
            ["Europe/Berln", "../../../etc/passwd", "/usr/share/zoneinfo/UTC", "Etc/Unknown", "Mars/Olympus"]
        {
            let err = parse_time_zone(bad).unwrap_err();
            assert_eq!(err.param(), "tz");
            assert!(err.to_string().contains(&format!("'{bad}' is not a known IANA time zone")), "{err}");
        }
        assert!(parse_time_zone("").unwrap_err().to_string().contains("empty"));
        assert!(parse_time_zone(&"A".repeat(500)).unwrap_err().to_string().len() < 200);
    }

    // --- previous period

    #[test]
    fn previous_window_and_change() {
        assert_eq!(previous_window(iv(100, 250)), iv(-50, 100));
        assert_eq!(previous_window(iv(7, 7)), iv(7, 7));
        assert_eq!(change(15.0, 10.0), Change { absolute: 5.0, percent: Some(50.0) });
        assert_eq!(change(5.0, 10.0), Change { absolute: -5.0, percent: Some(-50.0) });
        assert_eq!(change(3.0, 0.0), Change { absolute: 3.0, percent: None });
        assert_eq!(change(0.0, 0.0), Change { absolute: 0.0, percent: None });
    }
}

/// Property tests against brute force: small discretised timelines for interval arithmetic,
/// minute-by-minute walks through local time for business hours and buckets.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    // A timeline of unit cells `[c, c + 1)` for c in LOW..HIGH, wide enough for every strategy.
    const LOW: i64 = -20;
    const HIGH: i64 = 300;

    fn interval() -> impl Strategy<Value = Interval> {
        // Starts and lengths small enough to overlap often; some are empty or inverted.
        (-10i64..130, -5i64..25).prop_map(|(start, length)| Interval::new(start, start + length))
    }

    fn intervals() -> impl Strategy<Value = Vec<Interval>> {
        prop::collection::vec(interval(), 0..12)
    }

    fn window() -> impl Strategy<Value = Interval> {
        (-15i64..140, 0i64..150).prop_map(|(start, length)| Interval::new(start, start + length))
    }

    fn cells(intervals: &[Interval]) -> Vec<bool> {
        (LOW..HIGH).map(|c| intervals.iter().any(|i| i.start <= c && c < i.end)).collect()
    }

    fn both(a: &[bool], b: &[bool]) -> Vec<bool> {
        a.iter().zip(b).map(|(x, y)| *x && *y).collect()
    }

    /// The maximal runs of covered cells: what a merged list must be.
    fn runs(cells: &[bool]) -> Vec<Interval> {
        let mut found: Vec<Interval> = Vec::new();
        for (c, covered) in (LOW..HIGH).zip(cells) {
            match found.last_mut() {
                Some(last) if *covered && last.end == c => last.end = c + 1,
                _ if *covered => found.push(Interval::new(c, c + 1)),
                _ => {}
            }
        }
        found
    }

    fn count(cells: &[bool]) -> i64 {
        cells.iter().filter(|c| **c).count() as i64
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn merge_is_the_union_and_total_counts_it(list in intervals()) {
            let merged = merge(list.iter().copied());
            prop_assert_eq!(&merged, &runs(&cells(&list)));
            prop_assert_eq!(total(&merged), count(&cells(&list)));
        }

        #[test]
        fn clip_keeps_what_lies_inside_the_window(list in intervals(), window in window()) {
            let inside = both(&cells(&list), &cells(&[window]));
            prop_assert_eq!(cells(&clip(&list, window)), inside.clone());
            prop_assert_eq!(clip(&merge(list.iter().copied()), window), runs(&inside));
        }

        #[test]
        fn intersect_is_the_time_both_cover(a in intervals(), b in intervals()) {
            let common = intersect(&merge(a.iter().copied()), &merge(b.iter().copied()));
            prop_assert_eq!(common, runs(&both(&cells(&a), &cells(&b))));
        }

        #[test]
        fn sla_matches_a_marked_timeline(
            outages in intervals(),
            window in window(),
            business in prop::option::of(intervals()),
            target in 0u8..=100,
        ) {
            let report = sla(&outages, window, f64::from(target), business.as_deref());
            let measured = match &business {
                Some(business) => both(&cells(&[window]), &cells(business)),
                None => cells(&[window]),
            };
            let down = both(&cells(&outages), &measured);
            let (measured_time, down_time) = (count(&measured), count(&down));
            prop_assert_eq!(report.measured_micros, measured_time);
            prop_assert_eq!(report.downtime_micros, down_time);
            let touched = runs(&cells(&outages))
                .iter()
                .filter(|run| (run.start..run.end).any(|c| measured[(c - LOW) as usize]))
                .count();
            prop_assert_eq!(report.outage_count, touched);
            let up = measured_time - down_time;
            if measured_time == 0 {
                prop_assert_eq!(report.uptime_percent, 100.0);
            } else {
                let exact = 100.0 * up as f64 / measured_time as f64;
                prop_assert!((report.uptime_percent - exact).abs() < 1e-9);
            }
            // Exact: uptime < target  <=>  100 × up < target × measured.
            prop_assert_eq!(report.breached, 100 * up < i64::from(target) * measured_time);
        }
    }

    // --- local time

    /// Zones with the usual DST, DST at midnight, clocks turned back across midnight
    /// (St. John's, Casey), half-hour and 45-minute offsets, negative DST, a skipped day, and
    /// no DST at all.
    const ZONES: [&str; 11] = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "America/Havana",
        "America/Sao_Paulo",
        "Pacific/Apia",
        "Pacific/Chatham",
        "America/St_Johns",
        "Antarctica/Casey",
        "Europe/Dublin",
        "Asia/Kolkata",
    ];

    /// The first change of UTC offset after `base`, or `base` in a zone that no longer has any.
    fn change_after(tz: &TimeZone, base: Micros) -> Micros {
        next_offset_change(tz, base).unwrap_or(base)
    }

    fn local(tz: &TimeZone, minute: i64) -> jiff::civil::DateTime {
        tz.to_datetime(Timestamp::from_microsecond(minute * MINUTE).unwrap())
    }

    /// Business time by asking, for every minute of `window`, what the wall clock showed.
    fn business_by_walking(hours: &BusinessHours, tz: &TimeZone, window: Interval) -> Vec<Interval> {
        let (first, last) = (window.start.div_euclid(MINUTE), (window.end + MINUTE - 1).div_euclid(MINUTE));
        let open = (first..last).filter(|&m| {
            let clock = local(tz, m);
            let weekday = clock.weekday().to_monday_zero_offset();
            let minute = clock.hour() as u16 * 60 + clock.minute() as u16;
            hours
                .clauses
                .iter()
                .any(|c| c.days & (1 << weekday) != 0 && c.start_minute <= minute && minute < c.end_minute)
        });
        clip(&merge(open.map(|m| Interval::new(m * MINUTE, (m + 1) * MINUTE))), window)
    }

    /// What identifies a bucket: the local (date, hour, offset), the local date, or the ISO week.
    /// Day and week keys only move forward: a bucket starts where the key first grows.
    fn bucket_key(tz: &TimeZone, t: Micros, interval: BucketInterval) -> (i64, i64, i64) {
        let clock = tz.to_datetime(Timestamp::from_microsecond(t).unwrap());
        let date = i64::from(clock.year()) * 10_000 + i64::from(clock.month()) * 100 + i64::from(clock.day());
        match interval {
            BucketInterval::Hour => (date, i64::from(clock.hour()), offset_at(tz, t)),
            BucketInterval::Day => (date, 0, 0),
            BucketInterval::Week => {
                let week = clock.date().iso_week_date();
                (i64::from(week.year()), i64::from(week.week()), 0)
            }
        }
    }

    fn minute_of_day() -> impl Strategy<Value = u16> {
        // Whole and half hours hit DST changes (01:00-03:00) far more often than uniform minutes.
        prop_oneof![0u16..=1440, (0u16..=48).prop_map(|half_hours| half_hours * 30)]
    }

    fn business_hours() -> impl Strategy<Value = BusinessHours> {
        let clause =
            (0usize..7, 0usize..7, minute_of_day(), minute_of_day()).prop_map(|(first, more, a, b)| {
                let days = (0..=more).fold(0u8, |days, n| days | 1 << ((first + n) % 7));
                let (mut start_minute, mut end_minute) = (a.min(b), a.max(b));
                if start_minute == end_minute {
                    if end_minute < 1440 { end_minute += 1 } else { start_minute -= 1 }
                }
                HoursClause { days, start_minute, end_minute }
            });
        prop::collection::vec(clause, 1..4).prop_map(|clauses| BusinessHours { clauses })
    }

    fn instant_between_1975_and_2090() -> impl Strategy<Value = Micros> {
        at_micros("1975-01-01T00:00:00Z")..at_micros("2090-01-01T00:00:00Z")
    }

    fn at_micros(text: &str) -> Micros {
        crate::time::parse_rfc3339(text).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn business_windows_match_a_minute_walk_around_dst_changes(
            hours in business_hours(),
            zone in 0..ZONES.len(),
            base in instant_between_1975_and_2090(),
            start in -2 * DAY..DAY,
            length in 0..3 * DAY,
        ) {
            let tz = TimeZone::get(ZONES[zone]).unwrap();
            let start = change_after(&tz, base) + start;
            let window = Interval::new(start, start + length);
            prop_assert_eq!(business_windows(&hours, &tz, window), business_by_walking(&hours, &tz, window));
        }

        #[test]
        fn buckets_match_a_minute_walk_around_dst_changes(
            interval in prop_oneof![Just(BucketInterval::Hour), Just(BucketInterval::Day), Just(BucketInterval::Week)],
            zone in 0..ZONES.len(),
            base in instant_between_1975_and_2090(),
            start in -2 * DAY..DAY,
            length in 1..3 * DAY,
        ) {
            let tz = TimeZone::get(ZONES[zone]).unwrap();
            let window = Interval::new(change_after(&tz, base) + start, change_after(&tz, base) + start + length);
            // Walk from far enough back to see the start of the bucket holding window.start.
            let lookback = match interval {
                BucketInterval::Hour => 2 * HOUR,
                BucketInterval::Day => 2 * DAY,
                BucketInterval::Week => 8 * DAY,
            };
            let first = (window.start - lookback).div_euclid(MINUTE);
            let last = (window.end - 1).div_euclid(MINUTE);
            let mut walked = Vec::new();
            let mut key = bucket_key(&tz, first * MINUTE, interval);
            for t in (first + 1..=last).map(|m| m * MINUTE) {
                let shown = bucket_key(&tz, t, interval);
                let next = if interval == BucketInterval::Hour { shown } else { shown.max(key) };
                if next != key {
                    walked.push(t);
                }
                key = next;
            }
            let holding_start = walked.iter().copied().rfind(|&e| e <= window.start);
            prop_assert!(holding_start.is_some(), "the walk did not reach back far enough");
            let expected: Vec<Micros> =
                holding_start.into_iter().chain(walked.iter().copied().filter(|&e| e > window.start)).collect();
            prop_assert_eq!(bucket_edges(window, interval, &tz).unwrap(), expected.clone());
            let every_ten_minutes = (window.start..window.end).step_by(10 * MINUTE as usize);
            for t in every_ten_minutes.chain([window.end - 1]) {
                let index = bucket_index(&expected, t).unwrap();
                prop_assert_eq!(bucket_start(t, interval, &tz), expected[index], "at {}", t);
            }
        }

        #[test]
        fn bucket_starts_hold_in_every_era(
            interval in prop_oneof![Just(BucketInterval::Hour), Just(BucketInterval::Day), Just(BucketInterval::Week)],
            zone in 0..ZONES.len(),
            base in at_micros("1880-01-01T00:00:00Z")..at_micros("2100-01-01T00:00:00Z"),
            offset in prop_oneof![-3 * DAY..3 * DAY, -2 * HOUR..2 * HOUR],
            fraction in 0.0..1.0f64,
        ) {
            // Also the zones' early, irregular offsets (local mean time, seconds included).
            let tz = TimeZone::get(ZONES[zone]).unwrap();
            let t = change_after(&tz, base) + offset;
            let start = bucket_start(t, interval, &tz);
            prop_assert!(start <= t);
            let key = |t| bucket_key(&tz, t, interval);
            if interval == BucketInterval::Hour {
                prop_assert_eq!(key(start), key(t));
                prop_assert_ne!(key(start - 1), key(start));
            } else {
                prop_assert!(key(start - 1) < key(start), "a new date begins at the bucket start");
                prop_assert!(key(t) <= key(start), "no later date was shown before t");
            }
            let between = start + ((t - start) as f64 * fraction) as i64;
            prop_assert_eq!(bucket_start(between, interval, &tz), start);
            prop_assert_eq!(bucket_edges(Interval::new(t, t + 1), interval, &tz).unwrap(), vec![start]);
            prop_assert_eq!(bucket_edges(Interval::new(start, t + 1), interval, &tz).unwrap(), vec![start]);
        }

        #[test]
        fn hours_text_round_trips(hours in business_hours()) {
            prop_assert_eq!(BusinessHours::parse(&hours.to_string()).unwrap(), hours);
        }

        #[test]
        fn hours_parser_refuses_or_accepts_without_panicking(text in "[a-zA-Z0-9:, +-]{0,40}") {
            if let Ok(hours) = BusinessHours::parse(&text) {
                prop_assert_eq!(BusinessHours::parse(&hours.to_string()).unwrap(), hours);
            }
        }
    }

    // --- repair times

    /// `fraction = numerator / denominator` of ascending integers, in exact rational arithmetic.
    fn percentile_exactly(sorted: &[i64], numerator: i64, denominator: i64) -> f64 {
        let scaled = numerator * (sorted.len() as i64 - 1);
        let (rank, remainder) = (scaled / denominator, scaled % denominator);
        let low = i128::from(sorted[rank as usize]);
        let high = i128::from(sorted[(rank + i64::from(remainder > 0)) as usize]);
        let value = low * i128::from(denominator) + i128::from(remainder) * (high - low);
        value as f64 / denominator as f64 / MICROS_PER_SECOND as f64
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn repair_stats_match_a_sorted_reference(
            durations in prop::collection::vec(
                prop_oneof![0i64..10_000, 0i64..1_000_000_000_000], 1..40),
        ) {
            let stats = repair_stats(&durations);
            let mut sorted = durations.clone();
            sorted.sort();
            let close = |got: Option<f64>, want: f64| {
                got.is_some_and(|got| (got - want).abs() <= 1e-9 * want.abs().max(1.0))
            };
            prop_assert_eq!(stats.count, durations.len());
            let mean = sorted.iter().map(|&d| i128::from(d)).sum::<i128>() as f64
                / sorted.len() as f64
                / MICROS_PER_SECOND as f64;
            prop_assert!(close(stats.mean_seconds, mean), "mean {:?} vs {}", stats.mean_seconds, mean);
            let median = percentile_exactly(&sorted, 1, 2);
            prop_assert!(close(stats.median_seconds, median), "median {:?} vs {}", stats.median_seconds, median);
            let p90 = percentile_exactly(&sorted, 9, 10);
            prop_assert!(close(stats.p90_seconds, p90), "p90 {:?} vs {}", stats.p90_seconds, p90);
        }
    }
}
