//! JWTs read and forged without verifying them: base64url, the decoded header and claims,
//! the `kid`s of a token and of a JWKS, and a tampered signature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(segment: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap_or_else(|e| panic!("segment {segment:?} is base64url: {e}"))
}

fn jwt_segment(token: &str, index: usize) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS has three segments: {token}");
    serde_json::from_slice(&b64url_decode(parts[index])).expect("JWT segment is JSON")
}

/// The decoded JOSE header of a JWT (no verification).
pub fn jwt_header(token: &str) -> Value {
    jwt_segment(token, 0)
}

/// The decoded claims of a JWT (no verification).
pub fn jwt_claims(token: &str) -> Value {
    jwt_segment(token, 1)
}

/// The `kid` of a JWT's header.
pub fn jwt_kid(token: &str) -> String {
    jwt_header(token)["kid"]
        .as_str()
        .unwrap_or_else(|| panic!("token header has a kid: {token}"))
        .to_string()
}

/// The `kid`s of a JWKS document, in order.
pub fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("JWKS has a keys array: {jwks}"))
        .iter()
        .map(|k| {
            k["kid"]
                .as_str()
                .unwrap_or_else(|| panic!("every JWK has a kid: {jwks}"))
                .to_string()
        })
        .collect()
}

/// The token with the first character of its signature changed (every bit of that character
/// is significant): same header and claims, a signature that does not verify.
pub fn tamper_signature(token: &str) -> String {
    let sig = token.rfind('.').expect("a JWS has a signature segment") + 1;
    let mut tampered = token.to_string();
    let flipped = if &token[sig..=sig] == "A" { "B" } else { "A" };
    tampered.replace_range(sig..=sig, flipped);
    tampered
}
