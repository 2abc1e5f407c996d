//! Request bodies: read up to `server.max_body_bytes` (413 past it, before reading on),
//! then parse JSON into a type that refuses unknown fields, with a 400 that names the
//! field for anything malformed.
//!
//! A JSON body must say `Content-Type: application/json` (415 otherwise): the content
//! types a browser may send cross-site without a CORS preflight (`text/plain`, forms) can
//! then never drive a login or a registration from another origin.

use actix_web::http::header;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::HttpRequest;
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Reads a whole body, refusing more than `limit` bytes.
///
/// # Errors
/// 413 past the limit; 400 when the connection breaks mid-body.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| match err {
            actix_web::error::PayloadError::Overflow => ApiError::payload_too_large(limit),
            _ => ApiError::invalid_request("could not read the request body"),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a JSON body.
///
/// # Errors
/// 400 `invalid_request` naming what is wrong (missing field, wrong type, bad syntax).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request("a JSON request body is required"));
    }
    serde_json::from_slice(body).map_err(|err| {
        let message = err.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        ApiError::invalid_request(format!("invalid JSON body: {message}"))
    })
}

/// Refuses a body whose declared type is not JSON.
///
/// # Errors
/// 415 `unsupported_media_type`.
pub fn require_json_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match declared.as_deref() {
        Some("application/json") => Ok(()),
        Some(other) if other.starts_with("application/") && other.ends_with("+json") => Ok(()),
        _ => Err(ApiError::unsupported_media_type()),
    }
}

/// Checks the content type, then reads and parses a JSON body.
///
/// # Errors
/// As [`require_json_content_type`], [`read_body`] and [`parse_json`].
pub async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    require_json_content_type(req)?;
    let body = read_body(payload, limit).await?;
    parse_json(&body)
}
