//! Successful answers: a header as a string, a JSON body with its status, a claim change's
//! re-minted token (`X-Refreshed-Token`), `Cache-Control: no-store`, and no field that
//! smells of a secret.

use reqwest::header::{HeaderMap, CACHE_CONTROL, CONTENT_TYPE};
use reqwest::Response;
use serde_json::{json, Value};

pub fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Asserts `status` and a JSON body (`Content-Type: application/json`); returns the body.
pub async fn json_response(resp: Response, status: u16) -> Value {
    let actual = resp.status().as_u16();
    let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
    let text = resp.text().await.expect("response body");
    assert_eq!(actual, status, "status; body: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "json content type, got {content_type:?}; body: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is json ({e}): {text}"))
}

/// The header that carries a token minted because claims changed.
pub const REFRESHED_TOKEN: &str = "x-refreshed-token";

/// A claim-change answer (`PATCH /me`, an admin changing itself): 200, `Cache-Control:
/// no-store`, a `token` object of the token-response shape and an `X-Refreshed-Token` header
/// equal to its `access_token`. Returns the body and the new access token.
pub async fn refreshed_response(resp: Response) -> (Value, String) {
    let cache_control = header_str(resp.headers(), CACHE_CONTROL.as_str());
    let refreshed = header_str(resp.headers(), REFRESHED_TOKEN);
    let body = json_response(resp, 200).await;
    assert!(
        cache_control
            .as_deref()
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-store")),
        "a response carrying a token needs Cache-Control: no-store, got {cache_control:?}"
    );
    let token = &body["token"];
    let access_token = token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("token.access_token is a string: {body}"))
        .to_string();
    assert_eq!(token["token_type"], json!("Bearer"), "token_type: {body}");
    assert!(
        token["expires_in"].as_u64().is_some_and(|n| n > 0),
        "token.expires_in is a positive integer: {body}"
    );
    assert!(
        token.get("refresh_token").is_none_or(Value::is_null),
        "a claim change does not rotate the refresh token: {body}"
    );
    assert_eq!(
        refreshed.as_deref(),
        Some(access_token.as_str()),
        "X-Refreshed-Token equals token.access_token"
    );
    (body, access_token)
}

/// Asserts `Cache-Control` contains `no-store`.
pub fn assert_no_store(headers: &HeaderMap, what: &str) {
    let cache_control = header_str(headers, CACHE_CONTROL.as_str());
    assert!(
        cache_control
            .as_deref()
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-store")),
        "{what} needs Cache-Control: no-store, got {cache_control:?}"
    );
}

/// Walks a JSON value and fails if any key smells of a password or its hash.
pub fn assert_no_secret_fields(value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let k = key.to_ascii_lowercase();
                assert!(
                    !(k.contains("pass") || k.contains("hash") || k.contains("secret")),
                    "field {key:?} must not be exposed: {value}"
                );
                assert_no_secret_fields(inner);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_secret_fields),
        _ => {}
    }
}
