//! Token responses (RFC 6749 §5.1 plus `session_id`): [`Tokens`], parsed from an answer
//! that is asserted to be one, `Cache-Control: no-store` included.

use reqwest::header::CACHE_CONTROL;
use reqwest::{Response, StatusCode};
use serde_json::Value;

use super::{header_str, jwt_claims};

/// A parsed token response (RFC 6749 §5.1 shape plus `session_id`).
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    /// Absent when a refresh was made with an access token.
    pub refresh_token: Option<String>,
    pub refresh_expires_in: Option<u64>,
    pub session_id: String,
    pub body: Value,
}

impl Tokens {
    pub fn refresh(&self) -> &str {
        self.refresh_token
            .as_deref()
            .expect("token response carries a refresh_token")
    }

    pub fn claims(&self) -> Value {
        jwt_claims(&self.access_token)
    }
}

/// Asserts a 200 token response with `Cache-Control: no-store` and parses it.
pub async fn token_response(resp: Response) -> Tokens {
    let status = resp.status();
    let cache_control = header_str(resp.headers(), CACHE_CONTROL.as_str());
    let body: Value = resp.json().await.expect("token response is json");
    assert_eq!(
        status,
        StatusCode::OK,
        "expected a token response, got {body}"
    );
    assert!(
        cache_control
            .as_deref()
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-store")),
        "token response needs Cache-Control: no-store, got {cache_control:?}"
    );
    parse_tokens(body)
}

pub fn parse_tokens(body: Value) -> Tokens {
    let str_field = |name: &str| {
        body[name]
            .as_str()
            .unwrap_or_else(|| panic!("token response field {name:?} is a string: {body}"))
            .to_string()
    };
    let access_token = str_field("access_token");
    let token_type = str_field("token_type");
    let session_id = str_field("session_id");
    let expires_in = body["expires_in"]
        .as_u64()
        .unwrap_or_else(|| panic!("expires_in is an unsigned integer: {body}"));
    let refresh_token = match &body["refresh_token"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => panic!("refresh_token is a string or absent, got {other}"),
    };
    let refresh_expires_in = body["refresh_expires_in"].as_u64();
    assert_eq!(token_type, "Bearer", "token_type");
    Tokens {
        access_token,
        token_type,
        expires_in,
        refresh_token,
        refresh_expires_in,
        session_id,
        body,
    }
}
