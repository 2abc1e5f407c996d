//! Steps 1 and 2 of claimd's verification, as claimd runs them (its src/tokens/access.rs):
//! the raw header (`typ: at+jwt`, only `alg`, `typ` and `kid`, each once; `alg` the key's
//! own), then signature, issuer, audience, `exp`, `nbf` and `iat` with the leeway, and a
//! life (`exp - iat`) no longer than claimd issues.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::VerifyError;
use crate::keys::{KeySet, VerifyingKey};

/// The `typ` of every claimd access token (RFC 9068).
const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Tokens longer than this are refused before any decoding (as claimd does).
pub(crate) const MAX_ACCESS_TOKEN_BYTES: usize = 8 * 1024;

/// The only header members claimd writes, and so the only ones accepted: `jku`, `x5u`,
/// `jwk`, `x5c` would let a token choose its key, `crit`, `zip` and `cty` change how it
/// is read.
const ACCEPTED_HEADER_MEMBERS: [&str; 3] = ["alg", "typ", "kid"];

/// The claims of a verified claimd access token (API.md "Access token claims").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedClaims {
    pub iss: String,
    /// The user id.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    /// The session the token belongs to.
    pub sid: String,
    /// The tenant id; absent for users without a tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    pub roles: Vec<String>,
    pub plan: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attrs: Map<String, Value>,
    /// The user's claims version when minted.
    pub uv: u64,
    /// The tenant's version when minted (0 without a tenant).
    pub tv: u64,
}

impl VerifiedClaims {
    /// Whether the token grants `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }
}

/// Why steps 1–2 refused a token.
#[derive(Debug, PartialEq)]
pub(crate) enum CheckError {
    /// The header names a key the set does not hold: the JWKS may be behind.
    UnknownKid,
    Refused(VerifyError),
}

impl From<VerifyError> for CheckError {
    fn from(err: VerifyError) -> CheckError {
        CheckError::Refused(err)
    }
}

/// What tokens must say besides their signature.
pub(crate) struct Expectations<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) audience: &'a str,
    pub(crate) leeway: u64,
    /// The longest `exp - iat` claimd issues (seconds, before leeway).
    pub(crate) longest_lifetime: u64,
}

/// Steps 1 and 2 at `now` (Unix seconds).
pub(crate) fn check_token(
    keys: &KeySet,
    token: &str,
    expect: &Expectations<'_>,
    now: u64,
) -> Result<VerifiedClaims, CheckError> {
    let invalid = |why| CheckError::Refused(VerifyError::Invalid(why));
    if token.len() > MAX_ACCESS_TOKEN_BYTES {
        return Err(invalid("token too large"));
    }
    let key = check_header(keys, token)?;
    let mut validation = Validation::new(key.alg);
    validation.leeway = expect.leeway;
    validation.validate_exp = false;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.reject_tokens_expiring_in_less_than = 0;
    validation.set_issuer(&[expect.issuer]);
    validation.set_audience(&[expect.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<VerifiedClaims>(token, &key.decoding, &validation).map_err(
        |err| match err.kind() {
            ErrorKind::ExpiredSignature => CheckError::Refused(VerifyError::Expired),
            ErrorKind::InvalidSignature => invalid("bad signature"),
            ErrorKind::InvalidIssuer => invalid("wrong issuer"),
            ErrorKind::InvalidAudience => invalid("wrong audience"),
            ErrorKind::ImmatureSignature => invalid("token not yet valid"),
            ErrorKind::InvalidAlgorithm => invalid("wrong algorithm"),
            ErrorKind::MissingRequiredClaim(_) => invalid("missing claim"),
            _ => invalid("malformed token"),
        },
    )?;
    let claims = data.claims;
    if claims.exp.saturating_add(expect.leeway) < now {
        return Err(CheckError::Refused(VerifyError::Expired));
    }
    if claims.iat > now.saturating_add(expect.leeway) {
        return Err(invalid("token issued in the future"));
    }
    // A life claimd never issues: signed with its key, but not by its token endpoint.
    if claims.exp.saturating_sub(claims.iat) > expect.longest_lifetime.saturating_add(expect.leeway)
    {
        return Err(invalid("token lifetime longer than claimd issues"));
    }
    Ok(claims)
}

/// Step 1: the raw header, before the library sees the token. Returns the key named by
/// `kid`.
fn check_header<'k>(keys: &'k KeySet, token: &str) -> Result<&'k VerifyingKey, CheckError> {
    let invalid = |why| CheckError::Refused(VerifyError::Invalid(why));
    if token.split('.').count() != 3 {
        return Err(invalid("malformed token"));
    }
    let encoded = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| invalid("malformed header"))?;
    let UniqueMembers(header) =
        serde_json::from_slice(&bytes).map_err(|_| invalid("malformed header"))?;
    if header.get("typ").and_then(Value::as_str) != Some(ACCESS_TOKEN_TYP) {
        return Err(invalid("typ must be at+jwt"));
    }
    if header
        .keys()
        .any(|name| !ACCEPTED_HEADER_MEMBERS.contains(&name.as_str()))
    {
        return Err(invalid("refused header member"));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(invalid("wrong algorithm"))?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(invalid("missing kid"))?;
    let key = keys.get(kid).ok_or(CheckError::UnknownKid)?;
    if format!("{:?}", key.alg) != alg {
        return Err(invalid("wrong algorithm"));
    }
    Ok(key)
}

/// A JSON object whose members each appear once.
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

    #[test]
    fn hostile_headers_are_refused_before_any_key_is_looked_up() {
        let keys = KeySet::default();
        let refused = |header: &str| check_header(&keys, &header_only(header)).err();
        let invalid = |why| Some(CheckError::Refused(VerifyError::Invalid(why)));
        assert_eq!(
            refused(r#"{"alg":"EdDSA","kid":"k"}"#),
            invalid("typ must be at+jwt")
        );
        assert_eq!(
            refused(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k","jku":"http://x"}"#),
            invalid("refused header member")
        );
        assert_eq!(
            refused(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k","crit":["x"]}"#),
            invalid("refused header member")
        );
        assert_eq!(
            refused(r#"{"alg":"EdDSA","typ":"at+jwt","typ":"at+jwt","kid":"k"}"#),
            invalid("malformed header")
        );
        assert_eq!(
            refused(r#"{"alg":"EdDSA","typ":"at+jwt"}"#),
            invalid("missing kid")
        );
        assert_eq!(
            refused(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k"}"#),
            Some(CheckError::UnknownKid)
        );
        assert_eq!(check_header(&keys, "a.b").err(), invalid("malformed token"));
    }
}
