//! Who may keep an answer. Every answer leaves `Cache-Control: no-store` unless its
//! handler chose a policy of its own (the JWKS and the discovery metadata, cacheable for
//! as long as a key is published ahead; the OpenAPI document; the embedded pages'
//! `no-cache`). An auth server's answers carry tokens, claims and account data, errors
//! included: no cache may keep one by default, and a route that forgets is covered.

use actix_web::http::header::{HeaderMap, HeaderValue, CACHE_CONTROL};

/// Marks an answer `no-store` unless it says otherwise.
pub(super) fn default_to_no_store(headers: &mut HeaderMap) {
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_without_a_policy_is_not_stored() {
        let mut headers = HeaderMap::new();
        default_to_no_store(&mut headers);
        assert_eq!(
            headers.get(CACHE_CONTROL).map(HeaderValue::as_bytes),
            Some(&b"no-store"[..])
        );
    }

    #[test]
    fn a_policy_of_its_own_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        default_to_no_store(&mut headers);
        assert_eq!(
            headers.get(CACHE_CONTROL).map(HeaderValue::as_bytes),
            Some(&b"public, max-age=300"[..])
        );
    }
}
