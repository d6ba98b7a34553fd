//! Exports: `GET /fault` with `Accept: text/csv` or `Accept: application/x-ndjson` streams the
//! whole filtered result (not a page: `limit` and `cursor` are ignored), newest first, read from
//! the store a page of [`EXPORT_PAGE`] at a time by keyset, so memory does not grow with the
//! row count. The next page is read only when the client has taken the previous one.
//!
//! CSV follows RFC 4180: a header row, `\r\n` line ends, and a field quoted (with its quotes
//! doubled) when it holds a comma, a quote, a line break, or leading or trailing spaces.
//! Values are written as they are; a spreadsheet may interpret a field starting with `=`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use faultline_core::cursor::Position;
use faultline_core::fault::Fault;
use faultline_core::filter::FaultFilter;
use faultline_core::time::{format_micros, now_micros};
use faultline_store::{FaultQuery, Store};

use crate::faults::FaultView;

pub const CSV: &str = "text/csv; charset=utf-8";
pub const NDJSON: &str = "application/x-ndjson";
/// Faults read from the store at a time.
pub const EXPORT_PAGE: u32 = 1_000;

/// The columns of a CSV export, in order.
pub const CSV_COLUMNS: [&str; 14] = [
    "id",
    "created_at",
    "resolved_at",
    "status",
    "severity",
    "type",
    "resource_id",
    "site_id",
    "microservice_id",
    "message",
    "cause",
    "resource_ancestry_path",
    "ttl",
    "comment_count",
];

/// What the client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Ndjson,
}

impl Format {
    /// The first of `text/csv` or `application/x-ndjson` that `Accept` names (quality values
    /// aside); JSON otherwise.
    pub fn negotiate(headers: &HeaderMap) -> Format {
        for value in headers.get_all(header::ACCEPT) {
            let Ok(value) = value.to_str() else { continue };
            for media in value.split(',') {
                let media = media.split(';').next().unwrap_or("").trim();
                if media.eq_ignore_ascii_case("text/csv") {
                    return Format::Csv;
                }
                if media.eq_ignore_ascii_case("application/x-ndjson") {
                    return Format::Ndjson;
                }
            }
        }
        Format::Json
    }
}

/// One CSV field, quoted when it has to be.
pub fn csv_field(value: &str) -> std::borrow::Cow<'_, str> {
    let needs_quotes =
        value.contains([',', '"', '\r', '\n']) || value.starts_with(' ') || value.ends_with(' ');
    if needs_quotes {
        std::borrow::Cow::Owned(format!("\"{}\"", value.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// One CSV record with its `\r\n`.
pub fn csv_row(fields: &[&str]) -> String {
    let mut row = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    row.push_str("\r\n");
    row
}

fn fault_csv(f: &Fault) -> String {
    let created = format_micros(f.created_at);
    let resolved = f.resolved_at.map(format_micros).unwrap_or_default();
    csv_row(&[
        &f.id,
        &created,
        &resolved,
        f.status.as_str(),
        f.severity.as_str(),
        &f.fault_type,
        &f.resource_id,
        f.site_id.as_deref().unwrap_or(""),
        &f.microservice_id,
        &f.message,
        &f.cause,
        &f.resource_ancestry_path,
        &f.ttl.to_string(),
        &f.comments.len().to_string(),
    ])
}

fn fault_ndjson(f: Fault) -> String {
    let mut line = serde_json::to_string(&FaultView::from(f)).unwrap_or_default();
    line.push('\n');
    line
}

struct Walk {
    store: Arc<dyn Store>,
    customer_id: String,
    filter: FaultFilter,
    after: Option<Position>,
    format: Format,
    header: bool,
    done: bool,
}

/// Stream every fault of `customer_id` matching `filter` in `format` (CSV or NDJSON).
pub fn stream(store: Arc<dyn Store>, customer_id: String, filter: FaultFilter, format: Format) -> Response {
    let walk =
        Walk { store, customer_id, filter, after: None, format, header: format == Format::Csv, done: false };
    let chunks = futures_util::stream::unfold(walk, |mut walk| async move {
        if walk.header {
            walk.header = false;
            return Some((Ok(csv_row(&CSV_COLUMNS)), walk));
        }
        if walk.done {
            return None;
        }
        let query = FaultQuery {
            filter: &walk.filter,
            after: walk.after.as_ref(),
            limit: EXPORT_PAGE,
            now: now_micros(),
        };
        let page = match walk.store.list_faults(&walk.customer_id, &query).await {
            Ok(page) => page,
            Err(err) => {
                // The status line has gone: all that is left is to cut the stream short, so
                // the client sees an incomplete body rather than a silently short export.
                tracing::error!(error = %err, "export failed midway");
                walk.done = true;
                return Some((Err(std::io::Error::other("export failed")), walk));
            }
        };
        walk.done = page.len() < EXPORT_PAGE as usize;
        walk.after = page.last().map(|f| Position { created_at: f.created_at, id: f.id.clone() });
        let mut chunk = String::new();
        for fault in page {
            chunk.push_str(&match walk.format {
                Format::Csv => fault_csv(&fault),
                _ => fault_ndjson(fault),
            });
        }
        Some((Ok(chunk), walk))
    });
    let content_type = if format == Format::Csv { CSV } else { NDJSON };
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field(" padded"), "\" padded\"");
        assert_eq!(csv_row(&["a", "", "b,c"]), "a,,\"b,c\"\r\n");
    }

    #[test]
    fn accept_picks_the_first_export_type_named() {
        let mut headers = HeaderMap::new();
        assert_eq!(Format::negotiate(&headers), Format::Json);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json;q=0.5, text/csv"));
        assert_eq!(Format::negotiate(&headers), Format::Csv);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/x-ndjson"));
        assert_eq!(Format::negotiate(&headers), Format::Ndjson);
    }
}
