//! Error answers: the RFC 9457 problem of API.md (`application/problem+json`, or
//! `application/json` on the OAuth endpoints) with the status and `code` a test expects,
//! token errors with their Bearer challenge, and `invalid_client` with its Basic one.

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::Response;
use serde_json::{json, Value};

use super::header_str;

/// The OAuth endpoints, whose errors are `application/json` (RFC 6749 §5.2: OAuth client
/// libraries check the media type); every other error is `application/problem+json`.
pub const OAUTH_ENDPOINTS: [&str; 3] =
    ["/auth/refresh-token", "/oauth/introspect", "/oauth/revoke"];

/// Asserts an RFC 9457 problem with `status` and `code`; returns the headers and body.
pub async fn assert_problem(resp: Response, status: u16, code: &str) -> (HeaderMap, Value) {
    let (headers, body) = problem_parts(resp, status).await;
    assert_eq!(body["code"], json!(code), "problem code; body: {body}");
    (headers, body)
}

/// Asserts a problem with `status` whose `code` is one of `codes`.
pub async fn assert_problem_any(resp: Response, status: u16, codes: &[&str]) -> (HeaderMap, Value) {
    let (headers, body) = problem_parts(resp, status).await;
    let code = body["code"].as_str().unwrap_or_default();
    assert!(
        codes.contains(&code),
        "problem code {code:?} not in {codes:?}; body: {body}"
    );
    (headers, body)
}

async fn problem_parts(resp: Response, status: u16) -> (HeaderMap, Value) {
    let actual = resp.status().as_u16();
    let headers = resp.headers().clone();
    let media = if OAUTH_ENDPOINTS.contains(&resp.url().path()) {
        "application/json"
    } else {
        "application/problem+json"
    };
    let text = resp.text().await.expect("response body");
    assert_eq!(actual, status, "status; body: {text}");
    let content_type = header_str(&headers, CONTENT_TYPE.as_str()).unwrap_or_default();
    assert!(
        content_type.starts_with(media),
        "problem content type {media}, got {content_type:?}; body: {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("problem body is json ({e}): {text}"));
    for field in ["type", "title", "code", "detail"] {
        assert!(
            body[field].is_string(),
            "problem field {field:?} is a string: {body}"
        );
    }
    assert_eq!(
        body["status"],
        json!(status),
        "problem status field: {body}"
    );
    (headers, body)
}

/// Asserts a 401 token problem with `code` and an RFC 6750 `WWW-Authenticate` header.
pub async fn assert_token_error(resp: Response, code: &str) -> Value {
    assert_token_error_any(resp, &[code]).await
}

/// Like [`assert_token_error`], accepting any of `codes`.
pub async fn assert_token_error_any(resp: Response, codes: &[&str]) -> Value {
    let (headers, body) = assert_problem_any(resp, 401, codes).await;
    let challenge = header_str(&headers, "www-authenticate")
        .unwrap_or_else(|| panic!("401 without WWW-Authenticate; body: {body}"));
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate is a Bearer challenge, got {challenge:?}"
    );
    if body["code"] != json!("token_missing") {
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "WWW-Authenticate names error=\"invalid_token\", got {challenge:?}"
        );
    }
    body
}

/// Asserts a `401 invalid_client` problem with `WWW-Authenticate: Basic realm="claimd"`.
pub async fn assert_invalid_client(resp: Response) {
    let (headers, body) = assert_problem(resp, 401, "invalid_client").await;
    let challenge = header_str(&headers, "www-authenticate")
        .unwrap_or_else(|| panic!("invalid_client without WWW-Authenticate; body: {body}"));
    assert_eq!(
        challenge, r#"Basic realm="claimd""#,
        "invalid_client challenge"
    );
}
