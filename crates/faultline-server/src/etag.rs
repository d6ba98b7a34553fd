//! Conditional GET: a strong `ETag` over the exact JSON body, and `304 Not Modified` when the
//! client's `If-None-Match` names it.
//!
//! The tag is the 128-bit XXH3 hash of the body, in hex. A tag only has to change when the
//! body does; an accidental collision between two versions of one answer is a 2^-128 chance.
//! Nothing needs more than that, so the hash is a fast non-cryptographic one rather than SHA-256:
//! every tagged answer hashes its whole body. The hash is unkeyed, so every replica gives one
//! body the same tag.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

/// Serialise `body` as JSON with an `ETag`, or answer 304 if the request already has it.
pub fn json_with_etag(request_headers: &HeaderMap, body: &impl Serialize) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(ApiError::internal)?;
    json_bytes_with_etag(request_headers, bytes)
}

/// [`json_with_etag`] for a body already written as JSON.
pub fn json_bytes_with_etag(request_headers: &HeaderMap, bytes: Vec<u8>) -> Result<Response, ApiError> {
    let tag = etag_of(&bytes);
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

/// The quoted tag of `body`.
fn etag_of(body: &[u8]) -> String {
    format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(body))
}

fn matches_if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',')
            .map(str::trim)
            .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_quoted_hex_and_follow_the_body() {
        let tag = etag_of(b"{\"a\":1}");
        assert_eq!(tag.len(), 34);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert!(tag[1..33].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(tag, etag_of(b"{\"a\":1}"));
        assert_ne!(tag, etag_of(b"{\"a\":2}"));
        // Leading zeros are kept: every tag is 32 digits.
        assert!((0..2_000u32).all(|n| etag_of(n.to_string().as_bytes()).len() == 34));
    }
}
