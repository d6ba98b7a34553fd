//! Request extractors whose rejections are API errors naming what was wrong, instead of
//! axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};

/// A JSON request body as a `serde_json::Value`, for field-by-field validation.
///
/// An empty body reads as `{}` so that the handler names the first missing parameter; a
/// non-empty body must be `application/json` (415 otherwise) and valid JSON (400
/// `body_invalid_json`); a body over the limit is 413.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "The request body is too large.")
            } else {
                ApiError::new(ErrorCode::BodyInvalidJson, "The request body could not be read.")
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Object(Default::default())));
        }
        let is_json =
            content_type.as_deref().is_some_and(|ct| ct == "application/json" || ct.ends_with("+json"));
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::ContentTypeUnsupported,
                "The request body must be sent with Content-Type: application/json.",
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::new(
                ErrorCode::BodyInvalidJson,
                format!("The request body is not valid JSON (line {}, column {}).", e.line(), e.column()),
            )
        })
    }
}

/// The query string as ordered `(name, value)` pairs; repeated names are kept.
#[derive(Debug, Clone, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(QueryPairs)
            .map_err(|_| ApiError::invalid("query", "the query string is not valid URL encoding"))
    }
}
