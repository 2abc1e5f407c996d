//! Step 1: the raw header, read before jsonwebtoken sees the token, for the members it
//! does not look at. jsonwebtoken ignores `typ`, `crit` and members it does not know, and
//! keeps one of two duplicate members; claimd refuses all of those.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::refusal::Refusal;

/// The `typ` of every access token (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Tokens longer than this are refused before any decoding.
pub const MAX_ACCESS_TOKEN_BYTES: usize = 8 * 1024;

/// The only header members claimd writes, and so the only ones accepted (RFC 8725 §3.11:
/// refuse what is not expected). `jku`, `x5u`, `jwk` and `x5c` would let a token choose
/// its own key, `crit` and `zip` change how it is read, and `cty` announces a nested
/// token claimd never issues (RFC 7519 §5.2).
const ACCEPTED_HEADER_MEMBERS: [&str; 3] = ["alg", "typ", "kid"];

/// What the header says, once it passed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TokenHeader {
    pub(crate) alg: Algorithm,
    pub(crate) kid: String,
}

/// Reads and judges the header of `token`, in this order: three parts, a JSON object
/// with each member once, `typ: at+jwt`, no member but `alg`, `typ` and `kid`, an `alg`
/// jsonwebtoken knows, a `kid`.
pub(crate) fn read_header(token: &str) -> Result<TokenHeader, Refusal> {
    if token.len() > MAX_ACCESS_TOKEN_BYTES {
        return Err(Refusal::Invalid("token too large"));
    }
    let mut parts = token.split('.');
    let (Some(encoded), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Invalid("malformed token"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| Refusal::Invalid("malformed header"))?;
    let UniqueMembers(header) =
        serde_json::from_slice(&bytes).map_err(|_| Refusal::Invalid("malformed header"))?;
    if header.get("typ").and_then(Value::as_str) != Some(ACCESS_TOKEN_TYP) {
        return Err(Refusal::Invalid("typ must be at+jwt"));
    }
    if header
        .keys()
        .any(|name| !ACCEPTED_HEADER_MEMBERS.contains(&name.as_str()))
    {
        return Err(Refusal::Invalid("refused header member"));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|alg| alg.parse::<Algorithm>().ok())
        .ok_or(Refusal::Invalid("wrong algorithm"))?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(Refusal::Invalid("missing kid"))?;
    Ok(TokenHeader {
        alg,
        kid: kid.to_string(),
    })
}

/// A JSON object that refuses duplicate member names (RFC 7515 §5.2 lets us), so a header
/// cannot say one thing to us and another to a library that keeps the other value.
struct UniqueMembers(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UniqueVisitor;
        impl<'de> Visitor<'de> for UniqueVisitor {
            type Value = UniqueMembers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<UniqueMembers, A::Error> {
                let mut members = Map::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    if members.contains_key(&name) {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                    members.insert(name, value);
                }
                Ok(UniqueMembers(members))
            }
        }
        deserializer.deserialize_map(UniqueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_only(header: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header))
    }

    fn refused(header: &str) -> Option<Refusal> {
        read_header(&header_only(header)).err()
    }

    #[test]
    fn a_header_claimd_writes_passes() {
        assert_eq!(
            read_header(&header_only(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k"}"#)),
            Ok(TokenHeader {
                alg: Algorithm::EdDSA,
                kid: "k".into()
            })
        );
    }

    #[test]
    fn hostile_headers_are_refused_in_order() {
        let invalid = |why| Some(Refusal::Invalid(why));
        assert_eq!(
            refused(r#"{"alg":"EdDSA","kid":"k"}"#),
            invalid("typ must be at+jwt")
        );
        assert_eq!(
            refused(r#"{"alg":"EdDSA","typ":"JWT","kid":"k"}"#),
            invalid("typ must be at+jwt")
        );
        for member in [
            r#""jku":"http://x""#,
            r#""crit":["exp"]"#,
            r#""cty":"JWT""#,
            r#""x5c":[]"#,
            r#""x-anything":1"#,
        ] {
            assert_eq!(
                refused(&format!(
                    r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"k",{member}}}"#
                )),
                invalid("refused header member"),
                "{member}"
            );
        }
        assert_eq!(
            refused(r#"{"alg":"EdDSA","typ":"at+jwt","typ":"at+jwt","kid":"k"}"#),
            invalid("malformed header")
        );
        for alg in ["none", "NONE", "", "RS1"] {
            assert_eq!(
                refused(&format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"k"}}"#)),
                invalid("wrong algorithm"),
                "{alg}"
            );
        }
        assert_eq!(
            refused(r#"{"alg":"EdDSA","typ":"at+jwt"}"#),
            invalid("missing kid")
        );
        assert_eq!(refused("[1]"), invalid("malformed header"));
        assert_eq!(read_header("a.b").err(), invalid("malformed token"));
        assert_eq!(read_header("a.b.c.d").err(), invalid("malformed token"));
        assert_eq!(
            read_header(&"a".repeat(MAX_ACCESS_TOKEN_BYTES + 1)).err(),
            invalid("token too large")
        );
    }
}
