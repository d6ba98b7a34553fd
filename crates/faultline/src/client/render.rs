//! Tables and the one-fault view. Every cell is one line: control characters in the API's text
//! (newlines, and escape sequences that would reach the terminal) become spaces.

use jiff::Timestamp;
use serde::Deserialize;

/// What a table aims to fit: the message column is cut so that a row stays within it.
pub const TABLE_WIDTH: usize = 120;
/// The message keeps at least this many characters, however wide the other columns are.
const MIN_MESSAGE: usize = 20;
const GAP: &str = "  ";
/// Shown for a value that is absent.
pub const NONE: &str = "–";

/// The fields of a fault the client shows (the API's Fault object; `site_name` is the
/// site's name when it has one).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FaultRow {
    pub id: String,
    pub resource_id: String,
    pub customer_id: String,
    pub microservice_id: String,
    #[serde(rename = "type")]
    pub fault_type: String,
    pub status: String,
    pub severity: String,
    pub message: String,
    pub cause: String,
    pub created_at: String,
    pub resolved_at: Option<String>,
    pub resource_ancestry_path: String,
    pub ttl: Option<i64>,
    pub comments: Vec<CommentRow>,
    pub site_id: Option<String>,
    pub site_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CommentRow {
    pub user_id: String,
    pub comment: String,
    pub created_at: String,
}

/// A site as `GET /sites` lists it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SiteRow {
    pub site_id: String,
    pub name: Option<String>,
    pub status: String,
    pub last_heartbeat_at: Option<String>,
    pub open_faults: Option<u64>,
}

impl FaultRow {
    /// The site as people know it: its name, else its id, else [`NONE`].
    pub fn site_label(&self) -> &str {
        non_empty(self.site_name.as_deref()).or(non_empty(self.site_id.as_deref())).unwrap_or(NONE)
    }

    /// How long the fault lasted (resolved) or has lasted so far (unresolved).
    fn duration(&self, now: Timestamp) -> Option<i64> {
        let start = parse_time(&self.created_at)?;
        let end = match &self.resolved_at {
            Some(at) => parse_time(at)?,
            None => now,
        };
        Some((end.as_second() - start.as_second()).max(0))
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.trim().is_empty())
}

/// A column: its header, its widest (`None`: as wide as its widest cell), and whether it takes
/// what is left of [`TABLE_WIDTH`] (one column, the last, at most).
struct Column {
    header: &'static str,
    cap: Option<usize>,
    fill: bool,
}

const fn col(header: &'static str, cap: Option<usize>) -> Column {
    Column { header, cap, fill: false }
}

/// `faults list`'s columns; `--wide` puts the id first and leaves messages whole.
const FAULT_COLUMNS: [Column; 8] = [
    col("site", Some(16)),
    col("severity", None),
    col("status", None),
    col("type", Some(15)),
    col("resource", Some(14)),
    col("created_at", None),
    col("duration", None),
    Column { header: "message", cap: None, fill: true },
];
const ID_COLUMN: Column = col("id", None);

const SITE_COLUMNS: [Column; 5] = [
    col("name", Some(40)),
    col("id", None),
    col("status", None),
    col("last_heartbeat", None),
    col("open_faults", None),
];

/// `faults list`: one line a fault, within [`TABLE_WIDTH`]; `wide`: with each fault's id first,
/// and messages whole.
pub fn faults_table(faults: &[FaultRow], now: Timestamp, wide: bool) -> String {
    let rows: Vec<Vec<String>> = faults
        .iter()
        .map(|f| {
            let mut row = Vec::with_capacity(FAULT_COLUMNS.len() + 1);
            if wide {
                row.push(f.id.clone());
            }
            row.extend([
                f.site_label().to_owned(),
                f.severity.clone(),
                f.status.clone(),
                f.fault_type.clone(),
                f.resource_id.clone(),
                short_time(&f.created_at),
                f.duration(now).map_or_else(|| NONE.to_owned(), compact_duration),
                f.message.clone(),
            ]);
            row
        })
        .collect();
    if wide {
        let columns: Vec<&Column> = std::iter::once(&ID_COLUMN).chain(&FAULT_COLUMNS).collect();
        table(&columns, rows, None)
    } else {
        table(&FAULT_COLUMNS.iter().collect::<Vec<_>>(), rows, Some(TABLE_WIDTH))
    }
}

/// `sites list`: one line a site.
pub fn sites_table(sites: &[SiteRow], now: Timestamp) -> String {
    let rows: Vec<Vec<String>> = sites
        .iter()
        .map(|s| {
            vec![
                non_empty(s.name.as_deref()).unwrap_or(&s.site_id).to_owned(),
                s.site_id.clone(),
                s.status.clone(),
                s.last_heartbeat_at.as_deref().map_or_else(|| NONE.to_owned(), |at| time_and_age(at, now)),
                s.open_faults.map_or_else(|| NONE.to_owned(), |n| n.to_string()),
            ]
        })
        .collect();
    table(&SITE_COLUMNS.iter().collect::<Vec<_>>(), rows, None)
}

/// `faults get` (and what `resolve` and `comment` answer): one field a line, then the comments.
pub fn fault_detail(f: &FaultRow, now: Timestamp) -> String {
    let site = match (non_empty(f.site_name.as_deref()), non_empty(f.site_id.as_deref())) {
        (Some(name), Some(id)) => format!("{name} ({id})"),
        _ => f.site_label().to_owned(),
    };
    let or_none = |s: &str| if s.trim().is_empty() { NONE.to_owned() } else { s.to_owned() };
    let resolved = f.resolved_at.as_deref().map_or_else(|| NONE.to_owned(), str::to_owned);
    let duration = f.duration(now).map_or_else(|| NONE.to_owned(), compact_duration);
    let expires = f
        .ttl
        .and_then(|ttl| Timestamp::from_second(ttl).ok())
        .map_or_else(|| NONE.to_owned(), |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    let fields: [(&str, String); 15] = [
        ("id", f.id.clone()),
        ("site", site),
        ("severity", f.severity.clone()),
        ("status", f.status.clone()),
        ("type", f.fault_type.clone()),
        ("resource", f.resource_id.clone()),
        ("ancestry", or_none(&f.resource_ancestry_path)),
        ("microservice", f.microservice_id.clone()),
        ("message", f.message.clone()),
        ("cause", or_none(&f.cause)),
        ("created_at", f.created_at.clone()),
        ("resolved_at", resolved),
        ("duration", duration),
        ("customer", f.customer_id.clone()),
        ("expires", expires),
    ];
    let mut out = String::new();
    for (name, value) in fields {
        out.push_str(&format!("{name:<14}{}\n", one_line(&value)));
    }
    out.push_str(&format!("\ncomments ({})\n", f.comments.len()));
    for c in &f.comments {
        out.push_str(&format!("  {}  {}\n", one_line(&c.created_at), one_line(&c.user_id)));
        for line in c.comment.lines() {
            out.push_str(&format!("    {}\n", one_line(line)));
        }
    }
    out
}

/// Aligned columns, two spaces apart: each as wide as its widest cell or header, within its
/// cap; with a `total` width, the `fill` column gets what is left of it (at least
/// [`MIN_MESSAGE`]). Cut cells end in `…`. No line ends in spaces.
fn table(columns: &[&Column], rows: Vec<Vec<String>>, total: Option<usize>) -> String {
    let rows: Vec<Vec<String>> = rows.into_iter().map(|r| r.iter().map(|c| one_line(c)).collect()).collect();
    let natural: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| rows.iter().map(|r| width(&r[i])).fold(width(c.header), usize::max))
        .collect();
    let mut widths: Vec<usize> = columns
        .iter()
        .zip(&natural)
        .map(|(c, &n)| c.cap.map_or(n, |cap| n.min(cap.max(width(c.header)))))
        .collect();
    if let (Some(total), Some(fill)) = (total, columns.iter().position(|c| c.fill)) {
        let others: usize = widths.iter().enumerate().filter(|(i, _)| *i != fill).map(|(_, w)| w).sum();
        let room = total.saturating_sub(others + GAP.len() * (columns.len() - 1));
        widths[fill] = natural[fill].min(room.max(MIN_MESSAGE));
    }
    let mut out = String::new();
    let headers: Vec<String> = columns.iter().map(|c| c.header.to_owned()).collect();
    for row in std::iter::once(&headers).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str(GAP);
            }
            let cell = truncate(cell, widths[i]);
            let pad = widths[i] - width(&cell);
            line.push_str(&cell);
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Characters, as a terminal shows most text (wide East Asian characters count one).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// `s` in at most `max` characters, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut cut: String = s.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// Control characters (a newline, the ESC of a terminal sequence) as spaces.
/// `s` safe to print on a terminal: control characters (escape sequences, line breaks) become
/// spaces, and the bidirectional formatting characters (U+202A..U+202E, U+2066..U+2069, which
/// can make text display in another order than it reads) are dropped.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// `2025-10-21 13:00` (UTC, to the minute), or the text as it came when it is not a time.
fn short_time(s: &str) -> String {
    parse_time(s).map_or_else(|| s.to_owned(), |t| t.strftime("%Y-%m-%d %H:%M").to_string())
}

/// `2025-10-21 13:00:05Z (12s ago)`.
fn time_and_age(s: &str, now: Timestamp) -> String {
    match parse_time(s) {
        Some(t) => format!(
            "{} ({} ago)",
            t.strftime("%Y-%m-%d %H:%M:%SZ"),
            compact_duration((now.as_second() - t.as_second()).max(0))
        ),
        None => s.to_owned(),
    }
}

/// `45s`, `12m`, `3h 12m`, `4d 3h`: the two largest units.
pub fn compact_duration(seconds: i64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-10T12:00:00Z".parse().unwrap()
    }

    fn fault(id: &str, site_id: Option<&str>, site_name: Option<&str>, message: &str) -> FaultRow {
        FaultRow {
            id: id.to_owned(),
            resource_id: "tun_7Hq2LmX9aB3cD4eF".to_owned(),
            fault_type: "wantunnel".to_owned(),
            status: "unresolved".to_owned(),
            severity: "CRITICAL".to_owned(),
            message: message.to_owned(),
            created_at: "2026-01-10T08:48:00.000000Z".to_owned(),
            site_id: site_id.map(str::to_owned),
            site_name: site_name.map(str::to_owned),
            ..FaultRow::default()
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn the_site_column_shows_the_name_else_the_id_else_a_dash() {
        let faults = [
            fault("flt_31pkd1t8FvW7qZv0jG2a9kH5mB1", Some("site_lyon"), Some("Lyon"), "down"),
            fault("flt_31pkd1t8FvW7qZv0jG2a9kH5mB2", Some("site_nantes"), None, "down"),
            fault("flt_31pkd1t8FvW7qZv0jG2a9kH5mB3", None, None, "down"),
            fault("flt_31pkd1t8FvW7qZv0jG2a9kH5mB4", Some("site_empty"), Some(""), "down"),
        ];
        let text = faults_table(&faults, now(), false);
        let rows = lines(&text);
        let site = |row: &str| row.split_whitespace().next().unwrap().to_owned();
        assert_eq!(site(rows[1]), "Lyon");
        assert_eq!(site(rows[2]), "site_nantes");
        assert_eq!(site(rows[3]), NONE);
        assert_eq!(site(rows[4]), "site_empty", "an empty name is no name");
        assert!(!rows[1].contains("site_lyon"), "the name replaces the id: {}", rows[1]);
    }

    #[test]
    fn columns_are_aligned_and_rows_fit_the_width() {
        let long = "IPsec SA negotiation failed: NO_PROPOSAL_CHOSEN from peer 198.51.100.7 after 5 attempts \
                    on the primary and the backup circuit, escalated to the carrier";
        let faults = [
            fault("flt_31pkd1t8FvW7qZv0jG2a9kH5mB1", Some("site_a"), Some("Branch-025"), long),
            fault("flt_31pkd1t8FvW7qZv0jG2a9kH5mB2", Some("site_b"), Some("HQ"), "short"),
        ];
        let text = faults_table(&faults, now(), false);
        let rows = lines(&text);
        assert_eq!(rows.len(), 3);
        assert!(rows[0].starts_with("site "), "{}", rows[0]);
        for row in &rows {
            assert!(width(row) <= TABLE_WIDTH, "{} columns: {row}", width(row));
        }
        assert_eq!(width(rows[1]), TABLE_WIDTH, "the long message fills the width");
        assert!(rows[1].ends_with('…'), "a cut message ends in …: {}", rows[1]);
        assert!(rows[2].ends_with("short"));
        // Every column starts at the same place on every line.
        for header in ["severity", "status", "type", "resource", "created_at", "duration", "message"] {
            let at = rows[0].find(header).unwrap();
            for row in &rows[1..] {
                assert_eq!(row.chars().nth(at - 1), Some(' '), "{header} at {at}: {row}");
                assert_ne!(row.chars().nth(at), Some(' '), "{header} at {at}: {row}");
            }
        }
        assert!(rows[1].contains("2026-01-10 08:48"), "{}", rows[1]);
        assert!(rows[1].contains("3h 12m"), "an open fault's duration runs to now: {}", rows[1]);
    }

    #[test]
    fn wide_cells_are_cut_to_their_cap_and_the_message_keeps_a_minimum() {
        let mut f = fault(
            "flt_31pkd1t8FvW7qZv0jG2a9kH5mB1",
            Some("site_x"),
            Some("A site with a very long name indeed"),
            &"m".repeat(200),
        );
        f.fault_type = "wan-degradation-of-the-link".to_owned();
        f.resource_id = "tun_".to_owned() + &"x".repeat(60);
        let text = faults_table(&[f], now(), false);
        let row = lines(&text)[1];
        assert!(row.starts_with("A site with a v… "), "{row}");
        assert!(row.contains(" wan-degradatio… "), "{row}");
        assert!(row.contains(&format!(" tun_{}… ", "x".repeat(9))), "{row}");
        let message = row.split_whitespace().last().unwrap();
        assert!(width(message) >= MIN_MESSAGE, "{message}");
    }

    #[test]
    fn wide_puts_the_id_first_and_keeps_messages_whole() {
        let long = "m".repeat(300);
        let f = fault("flt_31pkd1t8FvW7qZv0jG2a9kH5mB1", Some("site_a"), Some("Lyon"), &long);
        let text = faults_table(&[f], now(), true);
        let rows = lines(&text);
        assert!(rows[0].starts_with("id  "), "{}", rows[0]);
        assert!(rows[1].starts_with("flt_31pkd1t8FvW7qZv0jG2a9kH5mB1  Lyon  "), "{}", rows[1]);
        assert!(rows[1].ends_with(&long), "{}", rows[1]);
    }

    #[test]
    fn bidirectional_overrides_are_dropped() {
        assert_eq!(one_line("evil\u{202E}txt.exe\u{2066}x\u{2069}\u{1b}[2J"), "eviltxt.exex [2J");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let f = fault("flt_1", None, Some("Ly\u{1b}[31mon"), "line one\nline two\r\u{7}");
        let text = faults_table(&[f], now(), false);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert_eq!(text.lines().count(), 2, "one line a fault: {text:?}");
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("Zürich", 6), "Zürich");
        assert_eq!(truncate("Zürich-Oerlikon", 6), "Züric…");
        assert_eq!(truncate("abc", 1), "…");
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn durations_are_compact() {
        assert_eq!(compact_duration(45), "45s");
        assert_eq!(compact_duration(12 * 60 + 5), "12m");
        assert_eq!(compact_duration(3 * 3600 + 12 * 60), "3h 12m");
        assert_eq!(compact_duration(4 * 86_400 + 3 * 3600 + 59), "4d 3h");
    }

    #[test]
    fn a_resolved_fault_shows_how_long_it_lasted() {
        let mut f = fault("flt_1", Some("site_a"), None, "down");
        f.status = "resolved".to_owned();
        f.resolved_at = Some("2026-01-10T09:03:30.000000Z".to_owned());
        assert!(faults_table(&[f], now(), false).contains("  15m  "));
    }

    #[test]
    fn the_detail_view_names_the_site_and_lists_comments() {
        let mut f = fault("flt_1", Some("site_lyon"), Some("Lyon"), "tunnel down");
        f.comments = vec![CommentRow {
            user_id: "usr_1".to_owned(),
            comment: "carrier ticket 4411\nwaiting".to_owned(),
            created_at: "2026-01-10T09:00:00.000000Z".to_owned(),
        }];
        f.ttl = Some(1_800_000_000);
        let text = fault_detail(&f, now());
        assert!(text.contains("site          Lyon (site_lyon)\n"), "{text}");
        assert!(text.contains("cause         –\n"), "{text}");
        assert!(text.contains("resolved_at   –\n"), "{text}");
        assert!(text.contains("expires       2027-01-15T08:00:00Z\n"), "{text}");
        assert!(
            text.contains(
                "comments (1)\n  2026-01-10T09:00:00.000000Z  usr_1\n    carrier ticket 4411\n    waiting\n"
            ),
            "{text}"
        );
        let unnamed = fault_detail(&fault("flt_2", Some("site_nantes"), None, "x"), now());
        assert!(unnamed.contains("site          site_nantes\n"), "{unnamed}");
    }

    #[test]
    fn sites_show_the_name_else_the_id() {
        let sites = [
            SiteRow {
                site_id: "site_lyon".to_owned(),
                name: Some("Lyon".to_owned()),
                status: "online".to_owned(),
                last_heartbeat_at: Some("2026-01-10T11:59:48.000000Z".to_owned()),
                open_faults: Some(3),
            },
            SiteRow { site_id: "site_nantes".to_owned(), status: "unknown".to_owned(), ..SiteRow::default() },
        ];
        let text = sites_table(&sites, now());
        let rows = lines(&text);
        assert_eq!(
            rows[0].split_whitespace().collect::<Vec<_>>(),
            ["name", "id", "status", "last_heartbeat", "open_faults"]
        );
        assert_eq!(
            rows[1].split_whitespace().collect::<Vec<_>>(),
            ["Lyon", "site_lyon", "online", "2026-01-10", "11:59:48Z", "(12s", "ago)", "3"]
        );
        assert_eq!(
            rows[2].split_whitespace().collect::<Vec<_>>(),
            ["site_nantes", "site_nantes", "unknown", NONE, NONE]
        );
    }
}
