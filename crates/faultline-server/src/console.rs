//! The operators' console (`GET /console`) and its sign-in.
//!
//! The page is a shell (`assets/console/console.html`) whose script (`console.js`) works the
//! public API with the signed-in API key's permissions and customer, nothing more: every API
//! route accepts the session cookie as it accepts `Authorization: Bearer <key>`
//! ([`crate::auth`]). Signing in — the form's API key (`POST /console/login`) or a one-time link
//! (`POST /console/links`; its page `GET /console/login/{code}` posts it) — creates a server-side session
//! whose random secret only the cookie holds (`HttpOnly`, `SameSite=Strict`, `Secure` behind
//! https; the table keeps its SHA-256). A session ends at logout, after [`SESSION_IDLE_MICROS`]
//! unused, or when its key is revoked. Requests that change anything and are authenticated by
//! the cookie must come from the console's own origin (`Origin`), and sign-in attempts are
//! rate-limited per client address. See `docs/console.md`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use faultline_core::auth::CredentialKind;
use faultline_core::secret::sha256_hex;
use faultline_core::time::{format_micros, now_micros};
use faultline_core::{Permission, Principal};
use faultline_store::{ConsoleLink, ConsoleSession};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::assets::{CONSOLE_SCRIPT, CONSOLE_STYLE};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "faultline_console";
/// A session unused this long is over.
pub const SESSION_IDLE_MICROS: i64 = 12 * 3_600 * 1_000_000;
/// How often a session's last use is written at most.
pub const SESSION_TOUCH_MICROS: i64 = 60 * 1_000_000;
/// How long a one-time sign-in link lasts.
pub const LINK_TTL_MICROS: i64 = 10 * 60 * 1_000_000;
/// Sign-in attempts (form or link) allowed per client address and minute.
pub const SIGN_IN_RATE_PER_MINUTE: u32 = 10;
/// Characters of a session secret or a link code (base62, about 256 bits).
const SECRET_LEN: usize = 43;

const SHELL: &str = include_str!("../assets/console/console.html");
const SIGN_IN: &str = include_str!("../assets/console/signin.html");

/// The pages and sign-in routes, public (they authenticate themselves).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(console_page))
        .routes(routes!(login))
        .routes(routes!(login_link, redeem_link))
        .routes(routes!(logout))
}

/// The routes behind the API's authentication.
pub fn authenticated_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_link))
}

/// The value of the named cookie in `headers`, if sent.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The session secret the request's cookie carries, if it looks like one.
pub fn session_secret(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE)
        .filter(|v| v.len() == SECRET_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Is `method` one that may change something (and so needs a same-origin `Origin`)?
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Does the request come from the console's own origin? Its `Origin` must be the public URL's
/// origin, or the origin the request was sent to: the `Host` it names, with the scheme it came
/// in on (`X-Forwarded-Proto` behind a proxy, else the public URL's). The page and the API are
/// one origin.
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return false };
    if origin == origin_of(&state.config.public_url) {
        return true;
    }
    let scheme = match headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) {
        Some(proto) => proto.trim(),
        None => state.config.public_url.split("://").next().unwrap_or("http"),
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()).filter(|h| !h.is_empty()) else {
        return false;
    };
    origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
}

fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

/// The 403 of a cookie-authenticated change from elsewhere.
pub fn cross_origin() -> ApiError {
    ApiError::new(
        ErrorCode::PermissionDenied,
        "This change was sent with the console's session cookie but not from the console's own origin \
         (Origin header); send it from the console, or with an Authorization header.",
    )
}

/// The principal of a console session: its API key's, while the session is neither ended nor
/// idle for too long and the key is not revoked. `None`: sign in again. `record_use` counts the
/// request as the session's use (at most one write a minute); a stream's periodic re-check of
/// its credential does not, so an open tab left alone still ends after 12 hours.
pub async fn session_principal(
    state: &AppState,
    secret: &str,
    record_use: bool,
) -> Result<Option<Principal>, ApiError> {
    let id_hash = sha256_hex(secret);
    let found = match state.console_sessions.get(&id_hash) {
        Some(cached) => cached,
        None => {
            let found = state.store.console_session(&id_hash).await?;
            state.console_sessions.insert(&id_hash, found.clone());
            found
        }
    };
    let now = now_micros();
    let Some((session, key)) = found else { return Ok(None) };
    if key.revoked_at.is_some() || session.last_seen_at + SESSION_IDLE_MICROS < now {
        return Ok(None);
    }
    // At most once a minute a session on each replica (however many requests arrive at once),
    // off the request's path.
    if record_use
        && now - session.last_seen_at >= SESSION_TOUCH_MICROS
        && state.key_usage.should_write(&format!("session:{id_hash}"))
    {
        let store = state.store.clone();
        tokio::spawn(async move {
            if let Err(err) = store.touch_console_session(&id_hash, now).await {
                faultline_store::outage::warn_unless_outage(&err, "could not record a console session's use");
            }
        });
    }
    Ok(Some(Principal {
        customer_id: key.customer_id,
        user_id: key.user_id,
        permissions: key.permissions,
        rate_limit_per_minute: key.rate_limit_per_minute.unwrap_or(state.config.default_rate_limit),
        scope: None,
        credential: CredentialKind::ApiKey { key_id: key.id },
    }))
}

/// An HTML page of the console: never cached, its own script and style only, never framed.
fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Not `no-referrer`: with it, Chromium sends `Origin: null` on the page's form posts, and
    // the sign-in and sign-out forms need the real one.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The sign-in page, with an error or a notice (plain text) when there is one.
fn sign_in_page(status: StatusCode, error: &str, notice: &str) -> Response {
    let html = SIGN_IN
        .replace("{{style}}", &CONSOLE_STYLE.path())
        .replace("{{error}}", &escape(error))
        .replace("{{notice}}", &escape(notice));
    page(status, html)
}

/// The console shell.
pub fn shell() -> String {
    SHELL.replace("{{style}}", &CONSOLE_STYLE.path()).replace("{{script}}", &CONSOLE_SCRIPT.path())
}

/// Is the site served over https (directly, or behind a proxy that says so)?
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.public_url.starts_with("https://")
        || headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https")
}

fn session_cookie(value: &str, secure: bool, max_age: Option<u32>) -> HeaderValue {
    let mut cookie = format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(max_age) = max_age {
        cookie.push_str(&format!("; Max-Age={max_age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).expect("a cookie of base62 and fixed text is a valid header")
}

/// Back to the console, with a new session's cookie or the cookie cleared.
fn to_console(cookie: HeaderValue) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, HeaderValue::from_static("/console")), (header::SET_COOKIE, cookie)],
    )
        .into_response()
}

fn client_address(request_parts: &axum::http::Extensions) -> String {
    request_parts
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// Count a sign-in attempt from this address: `Some` sign-in page with 429 when there were
/// too many.
fn sign_in_limited(state: &AppState, extensions: &axum::http::Extensions) -> Option<Response> {
    let client = client_address(extensions);
    let err = crate::auth::check_rate(state, &format!("console-sign-in:{client}"), SIGN_IN_RATE_PER_MINUTE)
        .err()?;
    let mut response = sign_in_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in attempts from this address; wait a minute and try again.",
        "",
    );
    response.headers_mut().extend(err.headers.into_iter().map(|(k, v)| (Some(k), v)));
    Some(response)
}

/// Start a session for `key_id` of `customer_id`, and send the browser to the console with it.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    customer_id: String,
    key_id: String,
) -> ApiResult<Response> {
    // A session the browser already carried ends: one browser, one session.
    if let Some(old) = session_secret(headers) {
        let id_hash = sha256_hex(old);
        state.store.end_console_session(&id_hash).await?;
        state.console_sessions.remove(&id_hash);
    }
    let secret = faultline_core::ids::random_base62(SECRET_LEN);
    let now = now_micros();
    let session = ConsoleSession {
        id_hash: sha256_hex(&secret),
        customer_id,
        key_id,
        created_at: now,
        last_seen_at: now,
    };
    state.store.create_console_session(&session, now - SESSION_IDLE_MICROS).await?;
    Ok(to_console(session_cookie(&secret, secure(state, headers), None)))
}

/// [ext] The operators' console.
///
/// With a valid session cookie, the console (its script works the API with the session); with
/// none, the sign-in page.
#[utoipa::path(get, path = "/console", tag = "Console", operation_id = "openConsole",
    responses((status = 200, description = "The console, or its sign-in page (Cache-Control: no-store, a Content-Security-Policy)", content_type = "text/html")))]
pub async fn console_page(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let signed_in = match session_secret(&headers) {
        Some(secret) => session_principal(&state, secret, true).await?.is_some(),
        None => false,
    };
    if signed_in {
        return Ok(page(StatusCode::OK, shell()));
    }
    let notice = if cookie(&headers, SESSION_COOKIE).is_some() {
        "Your session has ended; sign in again."
    } else {
        ""
    };
    Ok(sign_in_page(StatusCode::OK, "", notice))
}

/// The sign-in form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginForm {
    /// An API key (`flk_…`).
    api_key: String,
}

/// [ext] Sign in to the console with an API key.
///
/// A form post (`application/x-www-form-urlencoded`) from the sign-in page. On success: 303 to
/// `/console` with the session cookie. A wrong or revoked key answers the sign-in page with
/// 401; a post from another origin 403; too many attempts from one address 429.
#[utoipa::path(post, path = "/console/login", tag = "Console", operation_id = "consoleLogin",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Signed in: Set-Cookie faultline_console, Location /console"),
        (status = 401, description = "The sign-in page, with the reason", content_type = "text/html"),
        (status = 403, description = "Not from the console's origin", content_type = "text/html"),
        (status = 429, description = "Too many attempts", content_type = "text/html")))]
pub async fn login(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    if !same_origin(&state, &parts.headers) {
        return Ok(sign_in_page(StatusCode::FORBIDDEN, "Sign in from the console's own page.", ""));
    }
    if let Some(limited) = sign_in_limited(&state, &parts.extensions) {
        return Ok(limited);
    }
    let request = Request::from_parts(parts.clone(), body);
    let Ok(Form(form)) = Form::<LoginForm>::from_request(request, &state).await else {
        return Ok(sign_in_page(StatusCode::BAD_REQUEST, "Enter an API key.", ""));
    };
    let key = form.api_key.trim();
    if faultline_core::secret::api_key_lookup(key).is_none() {
        return Ok(sign_in_page(
            StatusCode::UNAUTHORIZED,
            "That is not an API key (they start with flk_).",
            "",
        ));
    }
    let principal = match crate::auth::principal_for(&state, key).await {
        Ok(principal) => principal,
        Err(err) if err.code.status() == StatusCode::UNAUTHORIZED => {
            return Ok(sign_in_page(StatusCode::UNAUTHORIZED, &err.message, ""));
        }
        Err(err) => return Err(err),
    };
    let CredentialKind::ApiKey { key_id } = principal.credential else {
        return Ok(sign_in_page(StatusCode::UNAUTHORIZED, "Sign in with an API key.", ""));
    };
    start_session(&state, &parts.headers, principal.customer_id, key_id).await
}

/// A link's code, if it is shaped like one.
fn link_code(code: &str) -> Option<&str> {
    (code.len() == SECRET_LEN && code.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(code)
}

fn link_gone() -> Response {
    sign_in_page(
        StatusCode::GONE,
        "This sign-in link was already used or has expired; ask for a new one, or sign in with an API key.",
        "",
    )
}

/// [ext] Open a one-time console sign-in link.
///
/// A page with one button, which posts the link to sign in. Opening the link uses nothing up:
/// chat and mail previews that fetch every URL cannot spend it, and a page elsewhere cannot
/// sign a browser in to someone else's account by sending it here (the post checks `Origin`).
#[utoipa::path(get, path = "/console/login/{code}", tag = "Console", operation_id = "openConsoleLoginLink",
    params(("code" = String, Path, description = "The link's code")),
    responses((status = 200, description = "The page that signs in with the link", content_type = "text/html"),
        (status = 410, description = "Not a link's code: the sign-in page", content_type = "text/html")))]
pub async fn login_link(Path(code): Path<String>) -> Response {
    let Some(code) = link_code(&code) else { return link_gone() };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"same-origin\"><title>Sign in · faultline console</title>\
         <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"{style}\"></head>\
         <body class=\"signin\"><main id=\"main\" class=\"signin-box\" aria-labelledby=\"link-h\">\
         <p class=\"brand\"><span class=\"mark\" aria-hidden=\"true\"></span>faultline <span class=\"sub\">console</span></p>\
         <h1 id=\"link-h\">Sign in with this link</h1>\
         <p class=\"note\">This one-time link signs this browser in to the console, once, within 10 minutes of \
         its making.</p>\
         <form method=\"post\" action=\"/console/login/{code}\" id=\"link-signin\">\
         <button type=\"submit\" id=\"continue\" class=\"primary\">Continue to the console</button></form>\
         </main></body></html>",
        style = CONSOLE_STYLE.path(),
    );
    page(StatusCode::OK, html)
}

/// [ext] Sign in to the console with a one-time link.
///
/// Posted by the link's page. The link's first use before it expires signs in (303 to
/// `/console` with the session cookie); any other answers 410 with the sign-in page; a post from
/// another origin 403.
#[utoipa::path(post, path = "/console/login/{code}", tag = "Console", operation_id = "consoleLoginLink",
    params(("code" = String, Path, description = "The link's code")),
    responses((status = 303, description = "Signed in: Set-Cookie faultline_console, Location /console"),
        (status = 403, description = "Not from the console's origin", content_type = "text/html"),
        (status = 410, description = "Used, expired or unknown link: the sign-in page", content_type = "text/html"),
        (status = 429, description = "Too many attempts", content_type = "text/html")))]
pub async fn redeem_link(
    State(state): State<AppState>,
    Path(code): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    if !same_origin(&state, request.headers()) {
        return Ok(sign_in_page(StatusCode::FORBIDDEN, "Sign in from the link's own page.", ""));
    }
    if let Some(limited) = sign_in_limited(&state, request.extensions()) {
        return Ok(limited);
    }
    let redeemed = match link_code(&code) {
        Some(code) => state.store.redeem_console_link(&sha256_hex(code), now_micros()).await?,
        None => None,
    };
    let Some((customer_id, key_id)) = redeemed else { return Ok(link_gone()) };
    start_session(&state, request.headers(), customer_id, key_id).await
}

/// [ext] Sign out of the console.
///
/// Ends the session and clears its cookie; 303 to `/console` (the sign-in page).
#[utoipa::path(post, path = "/console/logout", tag = "Console", operation_id = "consoleLogout",
    responses((status = 303, description = "Signed out: the cookie cleared, Location /console"),
        (status = 403, description = "Not from the console's origin", content_type = "text/html")))]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if !same_origin(&state, &headers) {
        return Ok(sign_in_page(StatusCode::FORBIDDEN, "Sign out from the console's own page.", ""));
    }
    if let Some(secret) = session_secret(&headers) {
        let id_hash = sha256_hex(secret);
        state.store.end_console_session(&id_hash).await?;
        state.console_sessions.remove(&id_hash);
    }
    Ok(to_console(session_cookie("", secure(&state, &headers), Some(0))))
}

/// A one-time sign-in link.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsoleLinkView {
    /// Open within 10 minutes, once.
    #[schema(example = "https://faults.example.com/console/login/3sV9x…")]
    pub url: String,
    #[schema(example = "2026-12-08T09:24:03.000000Z")]
    pub expires_at: String,
}

/// [ext] Create a one-time console sign-in link.
///
/// For the calling API key: whoever opens the link within 10 minutes is signed in to the
/// console as that key, once. Access tokens cannot create one.
#[utoipa::path(post, path = "/console/links", tag = "Console", operation_id = "createConsoleLink",
    security(("bearer" = [])),
    responses((status = 201, body = ConsoleLinkView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_link(State(state): State<AppState>, auth: Auth) -> ApiResult<Response> {
    let principal = auth.require(Permission::FaultsRead)?;
    let CredentialKind::ApiKey { key_id } = &principal.credential else {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "Console sign-in links are created with an API key, not an access token.",
        ));
    };
    let code = faultline_core::ids::random_base62(SECRET_LEN);
    let now = now_micros();
    let link = ConsoleLink {
        code_hash: sha256_hex(&code),
        customer_id: principal.customer_id.clone(),
        key_id: key_id.clone(),
        created_at: now,
        expires_at: now + LINK_TTL_MICROS,
    };
    state.store.create_console_link(&link, now).await?;
    let view = ConsoleLinkView {
        url: format!("{}/console/login/{code}", state.config.public_url),
        expires_at: format_micros(link.expires_at),
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}
