//! The shared fault dashboard: the page a short link opens (`GET /s/{code}`) and the script and
//! stylesheet it loads (`GET /assets/dashboard-<hash>.{js,css}`, see [`crate::assets`]).
//!
//! The page is rendered on the server with the token's faults (a first view that needs no
//! script) and carries the access token in a `<meta>` element, never in a URL. The script
//! (`assets/dashboard/dashboard.js`) then reads the API with that token as a Bearer
//! credential: `GET /fault` (recent view, `ETag` polling), `GET /fault/analytics` (the chart),
//! `GET /fault/top_faults` (the top list), and `GET /fault/stream` when the server has it.
//! Every answer is `no-store`, `no-referrer`, under a Content-Security-Policy that allows
//! the service's own script, style and API and nothing else, and may be framed only by the
//! origins the operator lists (`--frame-ancestors`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use faultline_core::duration::describe_elapsed;
use faultline_core::fault::{Fault, FaultStatus};
use faultline_core::filter::ListRequest;
use faultline_core::time::{format_micros, now_micros};
use faultline_store::{AccessToken, FaultQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::assets::{DASHBOARD_SCRIPT as SCRIPT, DASHBOARD_STYLE as STYLE};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Length of a short-link code: 22 base62 characters, about 131 bits.
pub const SHORT_CODE_LEN: usize = 22;
/// Short-link resolutions allowed per client address and minute.
pub const SHORT_LINK_RATE_PER_MINUTE: u32 = 60;
/// Faults read for the page's first view (the script loads the whole recent view).
const FIRST_VIEW_LIMIT: u32 = 100;
/// Bytes of table rows at most in the first view, so that the page with its script and
/// stylesheet stays well under 100 KB however long the messages are.
const FIRST_VIEW_ROW_BYTES: usize = 40_000;

/// The page (documented in OpenAPI); its assets are served by [`crate::assets`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(short_link))
}

/// Where the page's script and stylesheet are served (names change with their content).
pub fn asset_paths() -> [String; 2] {
    [SCRIPT.path(), STYLE.path()]
}

/// Open a shared dashboard from a short link.
///
/// The live, read-only fault dashboard of the link's access token: HTML that carries the token
/// in a `<meta>` element (never in a URL) for its script to read the API with. Unknown,
/// expired and revoked links answer the same 410 page.
#[utoipa::path(get, path = "/s/{code}", tag = "Access Tokens", operation_id = "openShortLink",
    params(("code" = String, Path, description = "The short-link code")),
    responses((status = 200, description = "The shared dashboard page (Cache-Control: no-store, Referrer-Policy: no-referrer, a Content-Security-Policy)", content_type = "text/html"),
        (status = 410, description = "Unknown, expired or revoked link", content_type = "text/html"),
        (status = 429, body = ErrorBody)))]
pub async fn short_link(
    State(state): State<AppState>,
    Path(code): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    crate::auth::check_rate(&state, &format!("short-link:{client}"), SHORT_LINK_RATE_PER_MINUTE)?;
    let token = if code.len() == SHORT_CODE_LEN && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        state.store.short_link_token(&code).await?
    } else {
        None
    };
    let token = token.filter(|t| t.revoked_at.is_none() && t.expires_at > now_micros());
    // A token whose signing key has left (`faultline signing-keys rotate`, 30 days on) is dead too.
    let jwt = match &token {
        Some(token) => state.keys.token_jwt(token).await?,
        None => None,
    };
    let (Some(token), Some(jwt)) = (token, jwt) else {
        return Ok(page_response(&state, StatusCode::GONE, gone_page()));
    };
    state.token_usage.record(&token.id);
    let mut request = ListRequest::from_pairs(&[]).map_err(ApiError::from)?;
    request.filter.recent = true;
    request.filter.scope = Some(token.scope.clone());
    request.limit = FIRST_VIEW_LIMIT;
    let query = FaultQuery { filter: &request.filter, after: None, limit: request.limit, now: now_micros() };
    let faults: Vec<Fault> = state.store.list_faults(&token.customer_id, &query).await?;
    Ok(page_response(&state, StatusCode::OK, page(&token, &jwt, &faults)))
}

/// An HTML page that carries a token: never cached, never leaked through Referer, running
/// nothing but the service's own script, framed only where the operator allows.
fn page_response(state: &AppState, status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors {}",
        frame_ancestors_directive(&state.config.frame_ancestors)
    );
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The sources of `frame-ancestors`: the configured ones, or `'none'`.
pub fn frame_ancestors_directive(sources: &[String]) -> String {
    if sources.is_empty() { "'none'".to_owned() } else { sources.join(" ") }
}

/// Parse the `frame_ancestors` setting: origins separated by spaces or commas, each
/// `'self'`, `https:` / `http:`, or `scheme://host[:port]` where the host may start with `*.`
/// and the port may be `*`. Empty (or `'none'`) forbids framing.
pub fn parse_frame_ancestors(text: &str) -> Result<Vec<String>, String> {
    let sources: Vec<&str> = text.split([' ', ',', '\t']).filter(|s| !s.is_empty()).collect();
    if sources == ["'none'"] {
        return Ok(Vec::new());
    }
    sources
        .into_iter()
        .map(|source| {
            if is_frame_source(source) {
                Ok(source.to_owned())
            } else {
                Err(format!(
                    "frame_ancestors: '{source}' is not an origin such as https://noc.example.com, \
                     https://*.example.com:8443 or 'self' ('none' alone forbids framing)"
                ))
            }
        })
        .collect()
}

fn is_frame_source(source: &str) -> bool {
    if matches!(source, "'self'" | "https:" | "http:") {
        return true;
    }
    let Some((scheme, rest)) = source.split_once("://") else { return false };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    let port_ok = port
        .is_none_or(|p| p == "*" || (!p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())));
    matches!(scheme, "http" | "https")
        && port_ok
        && !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn layout(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"{style}\">{head}</head>\
         <body>{body}</body></html>",
        style = STYLE.path(),
    )
}

/// One row of a fault table, as of `now`; the script renders the same markup (`faultRow`
/// there) and makes the duration tick.
fn fault_row(f: &Fault, now: i64) -> String {
    let severity = f.severity.as_str();
    let ended =
        f.resolved_at.map_or_else(String::new, |at| format!(" data-resolved=\"{}\"", format_micros(at)));
    format!(
        "<tr data-id=\"{id}\" data-severity=\"{severity}\">\
         <td data-label=\"Severity\"><span class=\"sev sev-{lower}\">{severity}</span></td>\
         <td data-label=\"Type\">{t}</td>\
         <td data-label=\"Site, resource\" class=\"ids\"><span class=\"site\"{site_title}>{site}</span> <span class=\"res\">{res}</span></td>\
         <td data-label=\"Message, cause\" class=\"what\"><strong class=\"msg\">{msg}</strong> <span class=\"cause\">{cause}</span></td>\
         <td data-label=\"Started\"><time datetime=\"{start}\">{start}</time></td>\
         <td data-label=\"Duration\" class=\"dur\" data-start=\"{start}\"{ended}>{duration}</td></tr>",
        duration = describe_elapsed(f.resolved_at.unwrap_or(now) - f.created_at),
        id = escape(&f.id),
        lower = severity.to_ascii_lowercase(),
        t = escape(&f.fault_type),
        // The site's name when it has one (its id in the tooltip), else its id.
        site = escape(f.site_name.as_deref().or(f.site_id.as_deref()).unwrap_or("–")),
        site_title = match (&f.site_name, &f.site_id) {
            (Some(_), Some(id)) => format!(" title=\"{}\"", escape(id)),
            _ => String::new(),
        },
        res = escape(&f.resource_id),
        msg = escape(&f.message),
        cause = escape(if f.cause.is_empty() { "–" } else { &f.cause }),
        start = format_micros(f.created_at),
    )
}

fn fault_table(id: &str, heading: &str, rows: &[String]) -> String {
    let count = rows.len();
    let rows = rows.concat();
    format!(
        "<section class=\"list\" id=\"{id}\" aria-labelledby=\"{id}-h\"><h2 id=\"{id}-h\">{heading} \
         <span class=\"count\">({count})</span></h2>\
         <table aria-labelledby=\"{id}-h\"><thead><tr><th scope=\"col\">Severity</th><th scope=\"col\">Type</th>\
         <th scope=\"col\">Site, resource</th><th scope=\"col\">Message, cause</th>\
         <th scope=\"col\">Started</th><th scope=\"col\">Duration</th></tr></thead><tbody>{rows}</tbody></table>\
         <p class=\"empty\"{hidden}>None.</p></section>",
        hidden = if count == 0 { "" } else { " hidden" },
    )
}

/// The shared dashboard for `token` (whose JWT is `jwt`), first rendered with `faults`.
pub fn page(token: &AccessToken, jwt: &str, faults: &[Fault]) -> String {
    // Open faults first, then resolved ones, as long as the byte budget lasts.
    let now = now_micros();
    let (mut open, mut resolved, mut budget, mut left_out) =
        (Vec::new(), Vec::new(), FIRST_VIEW_ROW_BYTES, 0);
    let open_first = faults.iter().filter(|f| f.status == FaultStatus::Unresolved);
    for fault in open_first.chain(faults.iter().filter(|f| f.status == FaultStatus::Resolved)) {
        let row = fault_row(fault, now);
        if row.len() > budget {
            left_out += 1;
            continue;
        }
        budget -= row.len();
        if fault.status == FaultStatus::Unresolved { open.push(row) } else { resolved.push(row) }
    }
    let left_out = match left_out {
        0 => String::new(),
        n => format!("<p class=\"note\" id=\"left-out\">{n} more faults load with the live view.</p>"),
    };
    let title = if token.label.is_empty() { "Shared fault view".to_owned() } else { escape(&token.label) };
    let expires = format_micros(token.expires_at);
    // The script follows `GET /fault/stream` (and polls, beside it, for revocation).
    let head = format!(
        "<meta name=\"faultline-token\" content=\"{jwt}\"><meta name=\"faultline-expires-at\" content=\"{expires}\">\
         <meta name=\"faultline-stream\" content=\"/fault/stream\"><script src=\"{script}\" defer></script>",
        jwt = escape(jwt),
        script = SCRIPT.path(),
    );
    let severities: String = ["CRITICAL", "HIGH", "MEDIUM", "WARNING", "LOW"]
        .iter()
        .map(|s| format!("<option value=\"{s}\">{s}</option>"))
        .collect();
    let body = format!(
        "<a class=\"skip\" href=\"#open\">Skip to the faults</a>\
         <header><div><h1>{title}</h1><p class=\"sub\">Read-only fault view · \
         <span id=\"expiry\">link expires at <time datetime=\"{expires}\">{expires}</time></span></p></div>\
         <p id=\"live\" class=\"live\">Live updates need JavaScript; this is the view when the page was opened.</p></header>\
         <main id=\"main\">\
         <section class=\"summary\" aria-label=\"Open faults by severity\"><ul id=\"counts\"></ul></section>\
         <form id=\"filters\" role=\"search\" aria-label=\"Filter faults\">\
         <label>Severity <select name=\"severity\"><option value=\"\">All severities</option>{severities}</select></label>\
         <label>Type <select name=\"type\"><option value=\"\">All types</option></select></label>\
         <label>Site <select name=\"site\"><option value=\"\">All sites</option></select></label>\
         <label class=\"grow\">Search <input type=\"search\" name=\"q\" maxlength=\"200\" placeholder=\"message, cause, resource\"></label>\
         <label class=\"check\"><input type=\"checkbox\" name=\"resolved\" checked> Show resolved</label></form>\
         <div class=\"columns\"><div class=\"faults\">{left_out}{open}{resolved}</div>\
         <div class=\"side\"><section class=\"panel\" aria-labelledby=\"chart-h\"><div class=\"panel-head\">\
         <h2 id=\"chart-h\">Faults over time</h2><label>Range <select id=\"range\">\
         <option value=\"hour\" selected>48 hours, hourly</option><option value=\"day\">30 days, daily</option>\
         <option value=\"week\">26 weeks, weekly</option></select></label></div><div id=\"chart\"></div></section>\
         <section class=\"panel\" aria-labelledby=\"top-h\"><h2 id=\"top-h\">Top faulty resources \
         <small>last 14 days</small></h2><ol id=\"top\"></ol></section></div></div></main>\
         <main id=\"gone\" class=\"gone\" hidden aria-labelledby=\"gone-h\"><h1 id=\"gone-h\" tabindex=\"-1\">\
         This link is no longer available</h1><p>The shared fault view was revoked or has expired. \
         Ask the person who shared it for a new link.</p></main>\
         <div id=\"announce\" class=\"vh\" role=\"status\" aria-live=\"polite\"></div>\
         <footer><p>faultline · times in <span id=\"zone\">UTC</span></p></footer>",
        open = fault_table("open", "Open faults", &open),
        resolved = fault_table("resolved", "Resolved in the last 24 hours", &resolved),
    );
    layout(&format!("{title} · faultline"), &head, &body)
}

/// The one page for every link that does not open: unknown, expired or revoked alike.
pub fn gone_page() -> String {
    layout(
        "Link no longer available · faultline",
        "",
        "<main class=\"gone\"><h1>This link is no longer available</h1><p>The shared fault view has expired or was \
         revoked. Ask the person who shared it for a new link.</p></main>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_accept_origins_and_refuse_the_rest() {
        assert_eq!(parse_frame_ancestors("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_frame_ancestors("'none'").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_frame_ancestors(
                "https://noc.example.com, 'self'  https://*.example.com:8443 http://127.0.0.1:*"
            )
            .unwrap(),
            ["https://noc.example.com", "'self'", "https://*.example.com:8443", "http://127.0.0.1:*"]
        );
        for bad in [
            "*",
            "noc.example.com",
            "https://a.com/path",
            "https://a.com;script-src",
            "'unsafe-inline'",
            "ftp://a.com",
            "https://",
            "https://a.com:99999x",
            "'none' https://a.com",
        ] {
            let err = parse_frame_ancestors(bad).unwrap_err();
            assert!(err.starts_with("frame_ancestors:"), "{bad}: {err}");
        }
        assert_eq!(frame_ancestors_directive(&[]), "'none'");
    }
}
