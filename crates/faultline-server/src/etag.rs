//! Conditional GET: a strong `ETag` over the exact JSON body, and `304 Not Modified` when the
//! client's `If-None-Match` names it.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Serialise `body` as JSON with an `ETag`, or answer 304 if the request already has it.
pub fn json_with_etag(request_headers: &HeaderMap, body: &impl Serialize) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(ApiError::internal)?;
    let digest = Sha256::digest(&bytes);
    let tag = format!("\"{}\"", hex::encode(&digest[..16]));
    let etag = HeaderValue::from_str(&tag).map_err(ApiError::internal)?;
    if matches_if_none_match(request_headers, &tag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (header::ETAG, etag),
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8")),
        ],
        bytes,
    )
        .into_response())
}

fn matches_if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',')
            .map(str::trim)
            .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
    })
}
