//! Request bodies: read up to `server.max_body_bytes` (413 past it, before reading on),
//! then parse JSON into a type that refuses unknown fields, with a 400 that names the
//! field for anything malformed.
//!
//! Before any handler runs, [`guard_body`] refuses a declared `Content-Length` over the
//! limit (413 without reading a byte of it) and puts a deadline on the rest:
//! `server.body_timeout` from the moment the headers are in. A body that has not fully
//! arrived by then gets 408 `request_timeout` and the connection is closed (the unread
//! rest of the body could not be told from a next request, and a client that stalls
//! should not keep a connection). A 408 problem rather than a silent close, so an honest
//! client on a bad link sees why.
//!
//! A JSON body must say `Content-Type: application/json` (415 otherwise): the content
//! types a browser may send cross-site without a CORS preflight (`text/plain`, forms) can
//! then never drive a login or a registration from another origin.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage as _, HttpRequest};
use futures_util::{Stream, StreamExt as _};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Refuses a declared `Content-Length` over `limit`, and bounds the time the body may take
/// to arrive to `timeout` from now. Requests that declare no body are left alone (no timer
/// on the hot `GET` paths).
///
/// # Errors
/// 413 `payload_too_large` for a declared length over the limit.
pub fn guard_body(
    req: &mut ServiceRequest,
    limit: usize,
    timeout: Duration,
) -> Result<(), ApiError> {
    let headers = req.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(ApiError::payload_too_large(limit));
    }
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if declared.unwrap_or(0) == 0 && !chunked {
        return Ok(());
    }
    let inner = req.take_payload();
    req.set_payload(Payload::Stream {
        payload: Box::pin(Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }),
    });
    Ok(())
}

/// A body stream that fails with `TimedOut` once its deadline passes.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = self.inner.poll_next_unpin(cx) {
            return Poll::Ready(item);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request body timed out",
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Reads a whole body, refusing more than `limit` bytes.
///
/// # Errors
/// 413 past the limit; 400 when the connection breaks mid-body.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| match err {
            PayloadError::Overflow => ApiError::payload_too_large(limit),
            PayloadError::Io(err) if err.kind() == std::io::ErrorKind::TimedOut => {
                ApiError::request_timeout()
            }
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
