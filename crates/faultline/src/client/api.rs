//! The client's HTTP side: one request per call, the API's error envelope turned into a
//! [`Failure`], and lists read page by page up to a limit.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{RequestBuilder, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The API's largest page (`limit` 1..100 on every list).
pub const MAX_PAGE: u32 = 100;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than the service's own request timeout (30 s by default), which answers 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a client command failed; [`Failure::exit_code`] is what the process exits with.
#[derive(Debug)]
pub enum Failure {
    /// A `--url` or `--key` that cannot be used: exit 2, as for clap's usage errors.
    Usage(String),
    /// The API answered with its error envelope.
    Api { code: String, message: String },
    /// The service could not be reached, or did not answer in time.
    Unreachable(String),
    /// Anything else: an answer that is not the API's (a proxy's error page, say).
    Other(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Api { .. } | Failure::Unreachable(_) | Failure::Other(_) => 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Api { code, message } => write!(f, "{message} ({code})"),
            Failure::Usage(message) | Failure::Unreachable(message) | Failure::Other(message) => {
                f.write_str(message)
            }
        }
    }
}

/// The service at one base URL, with one API key.
pub struct Api {
    http: reqwest::Client,
    base: Url,
    /// `Bearer <key>`, marked sensitive: it never appears in a `Debug` print.
    authorization: HeaderValue,
}

impl Api {
    pub fn new(url: &str, key: &str) -> Result<Api, Failure> {
        let base = Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                Failure::Usage(format!("--url: '{url}' is not a URL such as {}", super::DEFAULT_URL))
            })?;
        // Not the key itself in the message: only that it cannot be sent.
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", key.trim())).map_err(|_| {
            Failure::Usage("--key: the key has characters an HTTP header cannot carry".to_owned())
        })?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // The API never redirects; a redirect is a --url to correct, not one to follow
            // with the key.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Failure::Other(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Api { http, base, authorization })
    }

    /// `segments` appended to the base URL's path, each percent-encoded as needed (so an id
    /// never changes the path's shape).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut().expect("an http(s) URL has a path").pop_if_empty().extend(segments);
        url
    }

    pub async fn get(&self, segments: &[&str]) -> Result<Vec<u8>, Failure> {
        self.send(self.http.get(self.url(segments))).await
    }

    pub async fn post<T: Serialize + ?Sized>(&self, segments: &[&str], body: &T) -> Result<Vec<u8>, Failure> {
        self.send(self.http.post(self.url(segments)).json(body)).await
    }

    /// Up to `limit` items of the list at `segments`, filtered by `query`: one request when
    /// `limit` fits a page, else pages of at most [`MAX_PAGE`] following `meta.cursor`.
    pub async fn list(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        limit: u32,
    ) -> Result<Listing, Failure> {
        let mut pages: Vec<Vec<u8>> = Vec::new();
        let mut items: Vec<Box<RawValue>> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut remaining = limit;
        loop {
            let page_limit = remaining.min(MAX_PAGE).to_string();
            let mut request = self.http.get(self.url(segments)).query(query).query(&[("limit", &page_limit)]);
            if let Some(cursor) = &cursor {
                request = request.query(&[("cursor", cursor)]);
            }
            let body = self.send(request).await?;
            let page: Page = serde_json::from_slice(&body)
                .map_err(|e| Failure::Other(format!("the service's answer is not a list: {e}")))?;
            let got = u32::try_from(page.data.len()).unwrap_or(u32::MAX);
            remaining = remaining.saturating_sub(got);
            items.extend(page.data);
            pages.push(body);
            cursor = page.meta.cursor.clone();
            if remaining == 0 || got == 0 || !page.meta.has_more || cursor.is_none() {
                let meta = Meta { count: items.len() as u64, cursor, has_more: page.meta.has_more };
                return Ok(Listing { pages, items, meta });
            }
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<Vec<u8>, Failure> {
        let request = request
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_redirection() {
            let to = response.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok());
            return Err(Failure::Other(format!(
                "{} answered {status}, a redirect to {}: set --url to the service's own address",
                self.base.as_str().trim_end_matches('/'),
                to.unwrap_or("an address it did not give")
            )));
        }
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        Err(api_error(status, &body))
    }

    fn unreachable(&self, error: &reqwest::Error) -> Failure {
        let base = self.base.as_str().trim_end_matches('/');
        let reason = root_cause(error);
        if error.is_connect() {
            Failure::Unreachable(format!(
                "cannot connect to {base}: {reason} (is faultline running there? set --url or FAULTLINE_URL)"
            ))
        } else if error.is_timeout() {
            Failure::Unreachable(format!("{base} did not answer within {} s", REQUEST_TIMEOUT.as_secs()))
        } else {
            Failure::Unreachable(format!("the request to {base} failed: {reason}"))
        }
    }
}

/// The innermost error's text ("Connection refused (os error 111)"), which says what happened;
/// the outer ones say only that a request failed.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// A non-2xx answer as a failure: the API's envelope `{"type", "code", "message", "doc_url"}`
/// (`crates/faultline-server/src/error.rs`); an `{"error": {...}}` wrapping of the same fields
/// is read too. Anything else (a proxy's page) is named by its status.
fn api_error(status: reqwest::StatusCode, body: &[u8]) -> Failure {
    #[derive(Deserialize)]
    struct Envelope {
        code: Option<String>,
        message: Option<String>,
        error: Option<Box<Envelope>>,
    }
    let envelope = serde_json::from_slice::<Envelope>(body).ok().map(|e| match e.error {
        Some(inner) if e.code.is_none() => *inner,
        _ => e,
    });
    match envelope {
        Some(Envelope { code: Some(code), message, .. }) => Failure::Api {
            message: message.unwrap_or_else(|| format!("the service answered {status}")),
            code,
        },
        _ => Failure::Other(format!("the service answered {status} without the API's error body")),
    }
}

#[derive(Deserialize)]
struct Page {
    data: Vec<Box<RawValue>>,
    meta: Meta,
}

/// A list answer's `meta`: for several pages, the count of them all, and the last page's cursor
/// and `has_more` (the cursor goes on from the last item printed).
#[derive(Debug, Serialize, Deserialize)]
pub struct Meta {
    pub count: u64,
    pub cursor: Option<String>,
    pub has_more: bool,
}

/// What [`Api::list`] read: each page's body, the items of all of them as the API wrote them,
/// and the combined `meta`.
pub struct Listing {
    pages: Vec<Vec<u8>>,
    items: Vec<Box<RawValue>>,
    pub meta: Meta,
}

impl Listing {
    /// The list as JSON: one page's body as it came; several pages as one
    /// `{"data": [...], "meta": {...}}` whose items are the API's bytes, in order.
    pub fn json(&self) -> Vec<u8> {
        if let [page] = self.pages.as_slice() {
            return page.clone();
        }
        let mut out = Vec::with_capacity(self.pages.iter().map(Vec::len).sum::<usize>() + 64);
        out.extend_from_slice(b"{\"data\":[");
        for (n, item) in self.items.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item.get().as_bytes());
        }
        out.extend_from_slice(b"],\"meta\":");
        out.extend_from_slice(&serde_json::to_vec(&self.meta).expect("meta serialises"));
        out.push(b'}');
        out
    }

    /// The items as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<Vec<T>, Failure> {
        self.items.iter().map(|item| serde_json::from_str(item.get())).collect::<Result<_, _>>().map_err(
            |e| Failure::Other(format!("the service's answer has an item this client cannot read: {e}")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(pages: &[&str]) -> Listing {
        let mut items = Vec::new();
        let mut last = None;
        for page in pages {
            let page: Page = serde_json::from_str(page).unwrap();
            items.extend(page.data);
            last = Some(page.meta);
        }
        let last = last.unwrap();
        Listing {
            pages: pages.iter().map(|p| p.as_bytes().to_vec()).collect(),
            meta: Meta { count: items.len() as u64, cursor: last.cursor, has_more: last.has_more },
            items,
        }
    }

    #[test]
    fn one_page_is_printed_as_it_came() {
        let page =
            r#"{"data":[{"id":"flt_1","z":1,"a":2}],"meta":{"count":1,"cursor":null,"has_more":false}}"#;
        assert_eq!(listing(&[page]).json(), page.as_bytes());
    }

    #[test]
    fn several_pages_are_one_list_with_the_items_unchanged() {
        let first = r#"{"data":[{"id":"flt_2","z":1,"a":2},{"id":"flt_1"}],"meta":{"count":2,"cursor":"c1","has_more":true}}"#;
        let second =
            r#"{"data":[{"id":"flt_0","b":"\u00e9"}],"meta":{"count":1,"cursor":"c2","has_more":true}}"#;
        let json = String::from_utf8(listing(&[first, second]).json()).unwrap();
        assert_eq!(
            json,
            r#"{"data":[{"id":"flt_2","z":1,"a":2},{"id":"flt_1"},{"id":"flt_0","b":"\u00e9"}],"meta":{"count":3,"cursor":"c2","has_more":true}}"#
        );
    }

    #[test]
    fn the_error_envelope_gives_message_and_code() {
        let body = br#"{"type":"not_found_error","code":"resource_not_found","message":"The requested resource does not exist.","doc_url":"http://x/docs/errors/resource_not_found"}"#;
        let failure = api_error(reqwest::StatusCode::NOT_FOUND, body);
        assert_eq!(failure.to_string(), "The requested resource does not exist. (resource_not_found)");
        assert_eq!(failure.exit_code(), 1);
        let nested = br#"{"error":{"code":"permission_denied","message":"No."}}"#;
        assert_eq!(api_error(reqwest::StatusCode::FORBIDDEN, nested).to_string(), "No. (permission_denied)");
        let html = b"<html>Bad Gateway</html>";
        let failure = api_error(reqwest::StatusCode::BAD_GATEWAY, html);
        assert!(failure.to_string().contains("502"), "{failure}");
        assert_eq!(failure.exit_code(), 1);
    }

    #[test]
    fn a_bad_url_or_key_is_a_usage_error_that_never_shows_the_key() {
        let Err(failure) = Api::new("localhost:8080", "flk_x") else { panic!("no scheme is not a URL") };
        assert_eq!(failure.exit_code(), 2);
        let Err(failure) = Api::new("http://127.0.0.1:8080", "flk_sec\nret") else { panic!("a newline") };
        assert_eq!(failure.exit_code(), 2);
        assert!(!failure.to_string().contains("flk_sec"), "{failure}");
    }

    #[test]
    fn ids_are_one_path_segment_under_the_base_path() {
        let api = Api::new("https://noc.example.com/faultline/?x=1", "flk_x").unwrap();
        assert_eq!(
            api.url(&["fault", "flt_1/../x?y"]).as_str(),
            "https://noc.example.com/faultline/fault/flt_1%2F..%2Fx%3Fy"
        );
        let api = Api::new("http://127.0.0.1:8080", "flk_x").unwrap();
        assert_eq!(api.url(&["sites"]).as_str(), "http://127.0.0.1:8080/sites");
    }
}
