//! The one error type and the envelope every non-2xx answer carries:
//! `{"type", "code", "message", "doc_url"}`.
//!
//! Handlers return [`ApiError`]; its response carries the error in an extension and no body.
//! [`envelope`], the outermost middleware, writes the body with the deployment's public URL
//! in `doc_url`, and also wraps the framework's own plain-text rejections (unknown route,
//! wrong method, oversized body, timeout, panic) by status, so no error escapes unwrapped.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use faultline_core::ValidationError;
use faultline_store::StoreError;
use serde::Serialize;

use crate::state::AppState;

/// Every error code the API answers with: its status, `type`, and the text of its docs page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ParameterMissing,
    ParameterInvalid,
    BodyInvalidJson,
    CursorInvalid,
    ApiKeyMissing,
    ApiKeyInvalid,
    TokenExpired,
    TokenRevoked,
    PermissionDenied,
    ResourceNotFound,
    MethodNotAllowed,
    IdempotencyKeyReused,
    PayloadTooLarge,
    ContentTypeUnsupported,
    WebhookUrlNotAllowed,
    RateLimited,
    InternalServerError,
    ServiceUnavailable,
    DatabaseUnavailable,
    StorageFull,
    Overloaded,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 21] = [
        ErrorCode::ParameterMissing,
        ErrorCode::ParameterInvalid,
        ErrorCode::BodyInvalidJson,
        ErrorCode::CursorInvalid,
        ErrorCode::ApiKeyMissing,
        ErrorCode::ApiKeyInvalid,
        ErrorCode::TokenExpired,
        ErrorCode::TokenRevoked,
        ErrorCode::PermissionDenied,
        ErrorCode::ResourceNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::PayloadTooLarge,
        ErrorCode::ContentTypeUnsupported,
        ErrorCode::WebhookUrlNotAllowed,
        ErrorCode::RateLimited,
        ErrorCode::InternalServerError,
        ErrorCode::ServiceUnavailable,
        ErrorCode::DatabaseUnavailable,
        ErrorCode::StorageFull,
        ErrorCode::Overloaded,
    ];

    pub const fn as_str(self) -> &'static str {
        self.info().0
    }

    pub const fn status(self) -> StatusCode {
        self.info().1
    }

    pub const fn error_type(self) -> &'static str {
        self.info().2
    }

    /// What the code means and what to do about it, for `/docs/errors/{code}`.
    pub const fn explanation(self) -> &'static str {
        self.info().3
    }

    const fn info(self) -> (&'static str, StatusCode, &'static str, &'static str) {
        const INVALID: &str = "invalid_request_error";
        match self {
            ErrorCode::ParameterMissing => (
                "parameter_missing",
                StatusCode::BAD_REQUEST,
                INVALID,
                "A required parameter is absent. The message names it; add it to the body or the query and retry.",
            ),
            ErrorCode::ParameterInvalid => (
                "parameter_invalid",
                StatusCode::BAD_REQUEST,
                INVALID,
                "A parameter has the wrong type, is out of range or too long. The message names the parameter and the rule it broke; the OpenAPI document at /openapi.json lists every limit.",
            ),
            ErrorCode::BodyInvalidJson => (
                "body_invalid_json",
                StatusCode::BAD_REQUEST,
                INVALID,
                "The request body is not valid JSON (or not a JSON object where one is expected). Send UTF-8 JSON with Content-Type: application/json.",
            ),
            ErrorCode::CursorInvalid => (
                "cursor_invalid",
                StatusCode::BAD_REQUEST,
                INVALID,
                "The cursor was not produced by this service for this credential's customer and this exact filter, or was altered. Start again from the first page with the filter you want.",
            ),
            ErrorCode::ApiKeyMissing => (
                "api_key_missing",
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "No credential was sent. Send 'Authorization: Bearer <API key or access token>'.",
            ),
            ErrorCode::ApiKeyInvalid => (
                "api_key_invalid",
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "The credential is not a valid API key or access token, or the API key was revoked. Check that the whole key was copied; ask an administrator for a new key if it was revoked.",
            ),
            ErrorCode::TokenExpired => (
                "token_expired",
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "The access token's expiry time has passed. Ask its owner to mint a new one with POST /fault/token.",
            ),
            ErrorCode::TokenRevoked => (
                "token_revoked",
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "The access token was revoked by its owner. Ask for a new link.",
            ),
            ErrorCode::PermissionDenied => (
                "permission_denied",
                StatusCode::FORBIDDEN,
                "permission_error",
                "The credential is valid but lacks the permission this operation needs (the message names it). Access tokens are read-only. Use a key that carries the permission.",
            ),
            ErrorCode::ResourceNotFound => (
                "resource_not_found",
                StatusCode::NOT_FOUND,
                "not_found_error",
                "Nothing exists at this path for your credential: the id is unknown, belongs to another customer, is outside an access token's scope, or the route does not exist.",
            ),
            ErrorCode::MethodNotAllowed => (
                "method_not_allowed",
                StatusCode::METHOD_NOT_ALLOWED,
                INVALID,
                "The path exists but not with this HTTP method. The Allow header lists the methods it takes.",
            ),
            ErrorCode::IdempotencyKeyReused => (
                "idempotency_key_reused",
                StatusCode::CONFLICT,
                INVALID,
                "This Idempotency-Key was used in the last 24 hours with a different request body. Use a new key for a new request.",
            ),
            ErrorCode::PayloadTooLarge => (
                "payload_too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID,
                "The request body is larger than the service accepts (1 MiB unless the operator changed it). Split the request, e.g. send events in batches of at most 1,000.",
            ),
            ErrorCode::ContentTypeUnsupported => (
                "content_type_unsupported",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                INVALID,
                "The body must be JSON: send Content-Type: application/json.",
            ),
            ErrorCode::WebhookUrlNotAllowed => (
                "webhook_url_not_allowed",
                StatusCode::UNPROCESSABLE_ENTITY,
                INVALID,
                "The webhook's URL names a host the service may not send to: by default only public addresses are allowed, so that a webhook cannot reach the service's own network. The message says why (the address it resolves to, or a name that does not resolve). An operator can allow more with the webhook_allowed_hosts setting (loopback, private, CIDR blocks, host names).",
            ),
            ErrorCode::RateLimited => (
                "rate_limited",
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "This credential sent more requests than its limit (60 a minute unless configured otherwise). Wait the number of seconds in Retry-After; RateLimit-Remaining and RateLimit-Reset tell how much is left.",
            ),
            ErrorCode::InternalServerError => (
                "internal_server_error",
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "The service failed to answer. Nothing about the cause is disclosed; the message carries a request id that the operator can find in the service's log. Retrying with the same Idempotency-Key is safe.",
            ),
            ErrorCode::ServiceUnavailable => (
                "service_unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "The service could not answer in time. Retry after the seconds in Retry-After; retrying a POST with the same Idempotency-Key is safe.",
            ),
            ErrorCode::DatabaseUnavailable => (
                "database_unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "The service cannot reach its database (stopped, restarting, or its connections were cut). Usually nothing was done; a write whose connection was cut while it committed may have been. Retry after the seconds in Retry-After, a POST with the same Idempotency-Key (which makes the retry safe either way): the service reconnects by itself when the database is back.",
            ),
            ErrorCode::StorageFull => (
                "storage_full",
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "The disk holding the service's database is full, so nothing was written. Reads keep working. Retry after the seconds in Retry-After; writes resume by themselves once the operator frees space.",
            ),
            ErrorCode::Overloaded => (
                "overloaded",
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "The service is handling as many requests as it is configured to and turned this one away at once rather than queue it. Nothing was done. Retry after the seconds in Retry-After, ideally with some random delay added.",
            ),
        }
    }

    /// The `Retry-After` (seconds) sent with this code, for the codes that ask for a retry.
    pub const fn retry_after(self) -> Option<&'static str> {
        match self {
            ErrorCode::ServiceUnavailable | ErrorCode::Overloaded => Some("1"),
            ErrorCode::DatabaseUnavailable => Some("2"),
            ErrorCode::StorageFull => Some("30"),
            _ => None,
        }
    }

    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The code for a status the framework produced without an [`ApiError`].
    fn for_status(status: StatusCode) -> ErrorCode {
        match status {
            StatusCode::NOT_FOUND => ErrorCode::ResourceNotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::ContentTypeUnsupported,
            StatusCode::UNAUTHORIZED => ErrorCode::ApiKeyMissing,
            StatusCode::FORBIDDEN => ErrorCode::PermissionDenied,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
            StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
                ErrorCode::ServiceUnavailable
            }
            s if s.is_client_error() => ErrorCode::ParameterInvalid,
            _ => ErrorCode::InternalServerError,
        }
    }

    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::ResourceNotFound => "The requested resource does not exist.",
            ErrorCode::MethodNotAllowed => {
                "This path does not accept this HTTP method; see the Allow header."
            }
            ErrorCode::PayloadTooLarge => "The request body is too large.",
            ErrorCode::ContentTypeUnsupported => {
                "The request body must be sent with Content-Type: application/json."
            }
            ErrorCode::ApiKeyMissing => "No API key was provided; send 'Authorization: Bearer <key>'.",
            ErrorCode::ServiceUnavailable => "The service could not answer in time. Please retry.",
            ErrorCode::DatabaseUnavailable => "The database is unavailable. Please retry shortly.",
            ErrorCode::StorageFull => "The database's disk is full; nothing was written. Please retry later.",
            ErrorCode::Overloaded => "The service is overloaded. Please retry shortly.",
            ErrorCode::RateLimited => {
                "Too many requests for this credential; retry after the time in Retry-After."
            }
            _ => "An internal error occurred. Please try again or contact support if the issue persists.",
        }
    }
}

/// An error answer: its code, the message for the client, and extra headers.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra headers for the answer (e.g. `Retry-After`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), headers: Vec::new() }
    }

    pub fn missing(param: &str) -> Self {
        Self::new(
            ErrorCode::ParameterMissing,
            format!("The '{param}' parameter is required for this request."),
        )
    }

    pub fn invalid(param: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::ParameterInvalid, format!("The '{param}' parameter is invalid: {reason}."))
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::ResourceNotFound, "The requested resource does not exist.")
    }

    pub fn permission_denied(permission: faultline_core::Permission) -> Self {
        Self::new(
            ErrorCode::PermissionDenied,
            format!("This credential lacks the '{permission}' permission required for this action."),
        )
    }

    /// A server-side failure: logged here with its cause, answered opaquely.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::InternalServerError, ErrorCode::InternalServerError.default_message())
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        match err {
            ValidationError::Missing(param) => ApiError::missing(param),
            ValidationError::Invalid { .. } => ApiError::new(ErrorCode::ParameterInvalid, err.to_string()),
        }
    }
}

/// An item of a list failed validation: 400 naming it, e.g. `events[3].severity`.
impl From<faultline_core::ingest::EventError> for ApiError {
    fn from(err: faultline_core::ingest::EventError) -> Self {
        let param = err.param();
        match err.error {
            ValidationError::Missing(_) => ApiError::missing(&param),
            ValidationError::Invalid { reason, .. } => ApiError::new(
                ErrorCode::ParameterInvalid,
                format!("The '{param}' parameter is invalid: {reason}."),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(_) => ApiError::not_found(),
            StoreError::IdempotencyKeyReused => ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "This Idempotency-Key was used with a different request; use a new key for a new request.",
            ),
            // Logged by the store as an outage, once (see `faultline_store::outage`).
            StoreError::Unavailable(_) => ApiError::new(
                ErrorCode::DatabaseUnavailable,
                ErrorCode::DatabaseUnavailable.default_message(),
            ),
            StoreError::StorageFull(_) => {
                ApiError::new(ErrorCode::StorageFull, ErrorCode::StorageFull.default_message())
            }
            StoreError::NotWritten(reason) => {
                // Nothing was written: the same request may simply be sent again.
                tracing::warn!(reason = %reason, "write not committed");
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "The write was not committed. Please retry shortly.",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.code.status().into_response();
        response.headers_mut().extend(self.headers.iter().cloned().map(|(k, v)| (Some(k), v)));
        response.extensions_mut().insert(self);
        response
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"type": "invalid_request_error", "code": "parameter_missing",
    "message": "The 'message' parameter is required for this request.",
    "doc_url": "http://127.0.0.1:8080/docs/errors/parameter_missing"}))]
pub struct ErrorBody {
    /// A broad category: invalid_request_error, authentication_error, permission_error,
    /// not_found_error, rate_limit_error or api_error.
    #[serde(rename = "type")]
    pub error_type: String,
    /// A short, stable string identifying the error.
    pub code: String,
    /// What went wrong, naming the offending parameter.
    pub message: String,
    /// A page that explains the code.
    pub doc_url: String,
}

const JSON_UTF8: &str = "application/json; charset=utf-8";

/// The outermost middleware: every error response leaves with the JSON envelope, and JSON
/// answers name their charset as the contract says.
pub async fn envelope(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(crate::observability::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = next.run(request).await;
    let status = response.status();
    if status.is_success() || status.is_redirection() || status.is_informational() {
        if response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v == "application/json") {
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
        }
        return response;
    }
    if response.extensions().get::<OwnBody>().is_some() {
        // An answer in another service's format (PagerDuty's errors).
        return response;
    }
    let api_error = response.extensions_mut().remove::<ApiError>();
    if api_error.is_none() && is_html(&response) {
        // Human pages (the expired short-link page) keep their body.
        return response;
    }
    let (code, mut message) = match api_error {
        Some(err) => (err.code, err.message),
        None => {
            let code = ErrorCode::for_status(status);
            (code, code.default_message().to_owned())
        }
    };
    if code == ErrorCode::InternalServerError
        && let Some(id) = &request_id
    {
        message = format!("{message} (request id {id})");
    }
    let body = ErrorBody {
        error_type: code.error_type().to_owned(),
        code: code.as_str().to_owned(),
        message,
        doc_url: format!("{}/docs/errors/{}", state.config.public_url, code.as_str()),
    };
    let (mut parts, _) = response.into_parts();
    // Timeouts surface as 408 from the timeout layer; the contract says 503.
    parts.status = code.status();
    if let Some(seconds) = code.retry_after() {
        parts.headers.entry(header::RETRY_AFTER).or_insert(HeaderValue::from_static(seconds));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    let json = serde_json::to_vec(&body).expect("error body serialises");
    Response::from_parts(parts, axum::body::Body::from(json))
}

/// Marks an error answer whose body is already in the format its client expects (an
/// integration speaking another service's protocol): [`envelope`] leaves it as it is.
#[derive(Debug, Clone, Copy)]
pub struct OwnBody;

fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_was_not_committed_answers_503_to_retry() {
        let err = ApiError::from(StoreError::NotWritten("disk I/O error".into()));
        assert_eq!(err.code, ErrorCode::ServiceUnavailable);
        assert_eq!(err.code.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!err.message.contains("disk"), "the reason is logged, not shown: {}", err.message);
    }

    #[test]
    fn every_503_asks_for_a_retry_after_some_seconds() {
        for code in ErrorCode::ALL {
            assert_eq!(
                code.status() == StatusCode::SERVICE_UNAVAILABLE,
                code.retry_after().is_some(),
                "{code:?}"
            );
        }
    }
}
