//! How an access token is presented: `Authorization: Bearer <token>` (RFC 6750 §2.1),
//! read the same by claimd and by the services that verify its tokens.

use crate::header::MAX_ACCESS_TOKEN_BYTES;
use crate::refusal::Refusal;

/// The token in an `Authorization` header's raw value: the `Bearer` scheme (any case),
/// one space, the token. Only the shape is judged here; whatever else is wrong with the
/// token, its verification says.
///
/// # Errors
/// `Invalid` for a value too long to hold a token claimd accepts, with bytes other than
/// visible ASCII, of another scheme, or with an empty or spaced token.
pub fn bearer_credential(value: &[u8]) -> Result<&str, Refusal> {
    if value.len() > MAX_ACCESS_TOKEN_BYTES + "Bearer ".len() + 9 {
        return Err(Refusal::Invalid("token too large"));
    }
    // What `http`'s `HeaderValue::to_str` accepts: tab and visible ASCII.
    if !value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(Refusal::Invalid("malformed authorization header"));
    }
    let text = std::str::from_utf8(value)
        .map_err(|_| Refusal::Invalid("malformed authorization header"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or(Refusal::Invalid("expected a Bearer token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::Invalid("expected a Bearer token"));
    }
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(Refusal::Invalid("malformed bearer token"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_in_any_case_of_the_scheme() {
        assert_eq!(bearer_credential(b"Bearer a.b.c"), Ok("a.b.c"));
        assert_eq!(bearer_credential(b"bearer a.b.c "), Ok("a.b.c"));
        assert_eq!(bearer_credential(b"BEARER  a.b.c"), Ok("a.b.c"));
    }

    #[test]
    fn other_shapes_are_refused() {
        let invalid = |why| Err(Refusal::Invalid(why));
        assert_eq!(
            bearer_credential(b"Basic dXNlcjpwdw=="),
            invalid("expected a Bearer token")
        );
        assert_eq!(
            bearer_credential(b"Bearer"),
            invalid("expected a Bearer token")
        );
        assert_eq!(
            bearer_credential(b"Bearer  "),
            invalid("malformed bearer token")
        );
        assert_eq!(
            bearer_credential(b"Bearer a b"),
            invalid("malformed bearer token")
        );
        assert_eq!(
            bearer_credential("Bearer é".as_bytes()),
            invalid("malformed authorization header")
        );
        assert_eq!(
            bearer_credential(b"Bearer a\0"),
            invalid("malformed authorization header")
        );
        let long = format!("Bearer {}", "a".repeat(MAX_ACCESS_TOKEN_BYTES + 10));
        assert_eq!(
            bearer_credential(long.as_bytes()),
            invalid("token too large")
        );
        let longest = format!("Bearer {}", "a".repeat(MAX_ACCESS_TOKEN_BYTES));
        assert!(bearer_credential(longest.as_bytes()).is_ok());
    }
}
