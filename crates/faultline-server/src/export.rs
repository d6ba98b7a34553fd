//! Exports: `GET /fault` with `Accept: text/csv` or `Accept: application/x-ndjson` streams the
//! whole filtered result (not a page: `limit` and `cursor` are ignored), newest first, read from
//! the store a page of [`EXPORT_PAGE`] at a time by keyset, so memory does not grow with the
//! row count. The next page is read while the previous one is sent, and not before the client
//! has taken the one before that: at most two pages are held.
//!
//! CSV is `faultline_core::csv` (RFC 4180). A page is formatted in the task that reads it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use faultline_core::csv::Page;
use faultline_core::cursor::Position;
use faultline_core::fault::Fault;
use faultline_core::filter::FaultFilter;
use faultline_core::time::now_micros;
use faultline_store::{FaultQuery, Store, StoreResult};

pub const CSV: &str = "text/csv; charset=utf-8";
pub const NDJSON: &str = "application/x-ndjson";
/// Faults read from the store at a time.
pub const EXPORT_PAGE: u32 = 2_000;

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

pub use faultline_core::csv::{FAULT_COLUMNS as CSV_COLUMNS, row as csv_row};

/// One fault a line.
fn ndjson(faults: &[Fault]) -> String {
    let mut text = Vec::with_capacity(faults.len() * 640);
    for f in faults {
        crate::fault_json::write_fault(&mut text, &f.as_ref());
        text.push(b'\n');
    }
    String::from_utf8(text).expect("JSON written from strings is UTF-8")
}

struct Walk {
    store: Arc<dyn Store>,
    customer_id: Arc<str>,
    filter: Arc<FaultFilter>,
    format: Format,
    header: bool,
    /// The read (and formatting) of the next page, started as soon as the previous page was in
    /// hand, so it runs while this page is sent; `None` after the last page.
    next: Option<tokio::task::JoinHandle<StoreResult<Page>>>,
}

impl Walk {
    /// Start reading the page after `after` (the first page for `None`).
    fn read_after(&mut self, after: Option<Position>) {
        let (store, customer_id, filter) =
            (self.store.clone(), self.customer_id.clone(), self.filter.clone());
        let format = self.format;
        self.next = Some(tokio::spawn(async move {
            let query =
                FaultQuery { filter: &filter, after: after.as_ref(), limit: EXPORT_PAGE, now: now_micros() };
            let faults = store.list_faults(&customer_id, &query).await?;
            if format == Format::Csv {
                return Ok(Page::of(&faults));
            }
            let last = faults.last().map(|f| Position { created_at: f.created_at, id: f.id.clone() });
            let rows = faults.len();
            let text = ndjson(&faults);
            Ok(Page { text, rows, last })
        }));
    }
}

impl Drop for Walk {
    /// A client that hangs up stops the read ahead too.
    fn drop(&mut self) {
        if let Some(next) = &self.next {
            next.abort();
        }
    }
}

/// The end of an export that failed midway. The status line has gone: all that is left is to
/// cut the stream short, so the client sees an incomplete body rather than a silently short
/// export.
fn cut_short(err: &dyn std::fmt::Display) -> Result<String, std::io::Error> {
    tracing::error!(error = %err, "export failed midway");
    Err(std::io::Error::other("export failed"))
}

/// Stream every fault of `customer_id` matching `filter` in `format` (CSV or NDJSON). At most
/// two pages are held at once: the one being sent and the one being read.
pub fn stream(store: Arc<dyn Store>, customer_id: String, filter: FaultFilter, format: Format) -> Response {
    let mut walk = Walk {
        store,
        customer_id: customer_id.into(),
        filter: Arc::new(filter),
        format,
        header: format == Format::Csv,
        next: None,
    };
    walk.read_after(None);
    let chunks = futures_util::stream::unfold(walk, |mut walk| async move {
        if walk.header {
            walk.header = false;
            return Some((Ok(csv_row(&CSV_COLUMNS)), walk));
        }
        let page = match walk.next.take()?.await {
            Ok(Ok(page)) => page,
            Ok(Err(err)) => return Some((cut_short(&err), walk)),
            Err(err) => return Some((cut_short(&err), walk)),
        };
        if page.rows == EXPORT_PAGE as usize {
            walk.read_after(page.last);
        }
        Some((Ok(page.text), walk))
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
    fn accept_picks_the_first_export_type_named() {
        let mut headers = HeaderMap::new();
        assert_eq!(Format::negotiate(&headers), Format::Json);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json;q=0.5, text/csv"));
        assert_eq!(Format::negotiate(&headers), Format::Csv);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/x-ndjson"));
        assert_eq!(Format::negotiate(&headers), Format::Ndjson);
    }
}
