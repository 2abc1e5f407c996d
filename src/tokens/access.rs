//! Minting and verifying access tokens (DESIGN.md "Verification order", steps 1 and 2).
//!
//! jsonwebtoken's defaults are not ours (60 s leeway, `nbf` and `iat` unchecked, `crit`
//! ignored, `typ` ignored), so every check is set here explicitly, and the raw header is
//! read before the library sees the token, for the members it does not look at.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Header, Validation};
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::claims::{AccessClaims, ClientClaims};
use super::keys::{jwt_algorithm, KeyRing, SigningKey};
use crate::config::{SigningAlgorithm, TokenSettings};

/// The `typ` of every access token (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Tokens longer than this are refused before any decoding.
pub const MAX_ACCESS_TOKEN_BYTES: usize = 8 * 1024;

/// The only header members claimd writes, and so the only ones it accepts (RFC 8725 §3.11:
/// refuse what is not expected). Anything else is refused: `jku`, `x5u`, `jwk` and `x5c`
/// would let a token choose its own key, `crit` and `zip` change how it is read, and
/// `cty` announces a nested token claimd never issues (RFC 7519 §5.2).
const ACCEPTED_HEADER_MEMBERS: [&str; 3] = ["alg", "typ", "kid"];

/// Why an access token is not accepted. The reasons are for logs and problem details;
/// none carries token material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("token expired")]
    Expired,
    #[error("no signing key is available")]
    NoSigningKey,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Mints and verifies access tokens for one issuer, audience and algorithm.
#[derive(Clone)]
pub struct AccessTokens {
    algorithm: SigningAlgorithm,
    validation: Validation,
    leeway: u64,
    /// The longest `tokens.access_ttl` this store was configured with, + leeway: no token
    /// claimd mints lives longer, so one that claims to (signed with a stolen or imported
    /// key) is refused whatever its `exp`.
    longest_life: u64,
}

impl AccessTokens {
    /// Builds the verifier with every check set from `settings`.
    pub fn new(settings: &TokenSettings) -> AccessTokens {
        let mut validation = Validation::new(jwt_algorithm(settings.algorithm));
        validation.leeway = settings.leeway.as_secs();
        // `exp` is checked against the clock the caller passes (`verify`'s `now`), not
        // jsonwebtoken's reading of the system clock. `nbf` is left to jsonwebtoken:
        // claimd never mints it, so only a token minted elsewhere with a key imported from
        // there can carry one.
        validation.validate_exp = false;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.reject_tokens_expiring_in_less_than = 0;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        AccessTokens {
            algorithm: settings.algorithm,
            validation,
            leeway: settings.leeway.as_secs(),
            longest_life: settings
                .access_ttl
                .as_secs()
                .saturating_add(settings.leeway.as_secs()),
        }
    }

    /// Also accepts tokens living up to `ttl_secs` (+ leeway): the longest access-token
    /// lifetime the store was ever configured with, so lowering `tokens.access_ttl` does not
    /// turn tokens minted before the change into forgeries.
    #[must_use]
    pub fn accepting_lifetime(mut self, ttl_secs: u64) -> AccessTokens {
        self.longest_life = self.longest_life.max(ttl_secs.saturating_add(self.leeway));
        self
    }

    /// Signs `claims` with `key`, with `kid` and `typ: at+jwt` in the header.
    ///
    /// # Errors
    /// The key cannot sign.
    pub fn mint(&self, key: &SigningKey, claims: &AccessClaims) -> Result<String, TokenError> {
        self.mint_any(key, claims)
    }

    /// Signs a service's `claims` (the `client_credentials` grant) like [`Self::mint`].
    ///
    /// # Errors
    /// The key cannot sign.
    pub fn mint_client(
        &self,
        key: &SigningKey,
        claims: &ClientClaims,
    ) -> Result<String, TokenError> {
        self.mint_any(key, claims)
    }

    fn mint_any(&self, key: &SigningKey, claims: &impl Serialize) -> Result<String, TokenError> {
        let mut header = Header::new(jwt_algorithm(key.alg));
        header.typ = Some(ACCESS_TOKEN_TYP.to_string());
        header.kid = Some(key.kid.clone());
        match &key.ed25519 {
            Some(ed25519) => sign_eddsa(ed25519, &header, claims),
            None => jsonwebtoken::encode(&header, claims, &key.encoding)
                .map_err(|err| TokenError::Signing(err.to_string())),
        }
    }

    /// Checks a presented token's header, signature and registered claims, its times
    /// against `now`.
    ///
    /// # Errors
    /// `Expired` past `exp` + leeway; `Invalid` with the reason for anything else.
    pub fn verify(
        &self,
        ring: &KeyRing,
        token: &str,
        now: u64,
    ) -> Result<AccessClaims, TokenError> {
        self.verify_any(ring, token, now, true)
    }

    /// Like [`Self::verify`] but takes a token past its `exp`: a genuine token that has
    /// run out still proves which session its holder was given, which is enough to end
    /// that session (logout), never to use it.
    ///
    /// # Errors
    /// `Invalid` with the reason for anything but the expiry.
    pub fn verify_ignoring_expiry(
        &self,
        ring: &KeyRing,
        token: &str,
        now: u64,
    ) -> Result<AccessClaims, TokenError> {
        self.verify_any(ring, token, now, false)
    }

    /// Checks a service's token (the `client_credentials` grant) like [`Self::verify`]; a
    /// user's token is `Invalid` here, as a service's is there.
    ///
    /// # Errors
    /// As [`Self::verify`].
    pub fn verify_client(
        &self,
        ring: &KeyRing,
        token: &str,
        now: u64,
    ) -> Result<ClientClaims, TokenError> {
        self.verify_any(ring, token, now, true)
    }

    fn verify_any<C: DeserializeOwned + Times>(
        &self,
        ring: &KeyRing,
        token: &str,
        now: u64,
        check_expiry: bool,
    ) -> Result<C, TokenError> {
        if token.len() > MAX_ACCESS_TOKEN_BYTES {
            return Err(TokenError::Invalid("token too large"));
        }
        let key = self.check_header(ring, token)?;
        let data =
            jsonwebtoken::decode::<C>(token, &key.decoding, &self.validation).map_err(|err| {
                match err.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::InvalidSignature => TokenError::Invalid("bad signature"),
                    ErrorKind::InvalidIssuer => TokenError::Invalid("wrong issuer"),
                    ErrorKind::InvalidAudience => TokenError::Invalid("wrong audience"),
                    ErrorKind::ImmatureSignature => TokenError::Invalid("token not yet valid"),
                    ErrorKind::InvalidAlgorithm => TokenError::Invalid("wrong algorithm"),
                    ErrorKind::MissingRequiredClaim(_) => TokenError::Invalid("missing claim"),
                    _ => TokenError::Invalid("malformed token"),
                }
            })?;
        if check_expiry && data.claims.exp().saturating_add(self.leeway) < now {
            return Err(TokenError::Expired);
        }
        if data.claims.iat() > now.saturating_add(self.leeway) {
            return Err(TokenError::Invalid("token issued in the future"));
        }
        if data.claims.exp().saturating_sub(data.claims.iat()) > self.longest_life {
            return Err(TokenError::Invalid(
                "token lives longer than tokens.access_ttl",
            ));
        }
        Ok(data.claims)
    }

    /// Step 1: the raw header. Returns the key named by `kid`.
    fn check_header<'r>(
        &self,
        ring: &'r KeyRing,
        token: &str,
    ) -> Result<&'r SigningKey, TokenError> {
        let encoded = token.split('.').next().unwrap_or_default();
        if token.split('.').count() != 3 {
            return Err(TokenError::Invalid("malformed token"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| TokenError::Invalid("malformed header"))?;
        let UniqueMembers(header) =
            serde_json::from_slice(&bytes).map_err(|_| TokenError::Invalid("malformed header"))?;
        if header.get("typ").and_then(Value::as_str) != Some(ACCESS_TOKEN_TYP) {
            return Err(TokenError::Invalid("typ must be at+jwt"));
        }
        if header.get("alg").and_then(Value::as_str) != Some(self.algorithm.as_str()) {
            return Err(TokenError::Invalid("wrong algorithm"));
        }
        if header
            .keys()
            .any(|name| !ACCEPTED_HEADER_MEMBERS.contains(&name.as_str()))
        {
            return Err(TokenError::Invalid("refused header member"));
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(TokenError::Invalid("missing kid"))?;
        ring.verifying_key(kid)
            .filter(|key| key.alg == self.algorithm)
            .ok_or(TokenError::Invalid("unknown kid"))
    }
}

/// The times every claim set carries, checked against the caller's clock.
trait Times {
    fn exp(&self) -> u64;
    fn iat(&self) -> u64;
}

impl Times for AccessClaims {
    fn exp(&self) -> u64 {
        self.exp
    }
    fn iat(&self) -> u64 {
        self.iat
    }
}

impl Times for ClientClaims {
    fn exp(&self) -> u64 {
        self.exp
    }
    fn iat(&self) -> u64 {
        self.iat
    }
}

/// A JSON object that refuses duplicate member names (RFC 7515 §5.2 lets us), so a header
/// cannot say one thing to us and another to a library that keeps the first value.
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

/// What `jsonwebtoken::encode` produces for EdDSA (Ed25519 signatures are deterministic,
/// so the bytes are the same; a test holds it to that), with a key parsed once instead of
/// on every call.
fn sign_eddsa(
    key: &ed25519_dalek::SigningKey,
    header: &Header,
    claims: &impl Serialize,
) -> Result<String, TokenError> {
    use ed25519_dalek::Signer as _;

    let signing = |err: serde_json::Error| TokenError::Signing(err.to_string());
    let header = serde_json::to_vec(header).map_err(signing)?;
    let claims = serde_json::to_vec(claims).map_err(signing)?;
    let mut token = String::with_capacity((header.len() + claims.len() + 64) * 4 / 3 + 4);
    URL_SAFE_NO_PAD.encode_string(header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::keys::{generate_private_key, load_signing_key};

    fn setup(alg: SigningAlgorithm) -> (AccessTokens, KeyRing) {
        let settings = TokenSettings {
            algorithm: alg,
            issuer: "http://127.0.0.1:8080".to_string(),
            ..TokenSettings::default()
        };
        let pem = generate_private_key(alg).unwrap();
        let key = load_signing_key("k1", alg, &pem, 0).unwrap();
        (AccessTokens::new(&settings), KeyRing::new(vec![key]))
    }

    fn claims(now: u64) -> AccessClaims {
        AccessClaims {
            iss: "http://127.0.0.1:8080".into(),
            sub: "u".into(),
            aud: "claimd".into(),
            exp: now + 60,
            iat: now,
            jti: "j".into(),
            sid: "s".into(),
            tid: None,
            roles: vec![],
            plan: "free".into(),
            attrs: Map::new(),
            uv: 1,
            tv: 0,
        }
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn eddsa_minting_matches_jsonwebtoken_byte_for_byte() {
        let (tokens, ring) = setup(SigningAlgorithm::EdDSA);
        let key = ring.signing_key(now()).unwrap();
        let claims = claims(now());

        let minted = tokens.mint(key, &claims).unwrap();

        let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYP.to_string());
        header.kid = Some(key.kid.clone());
        let reference = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
        assert_eq!(minted, reference);
        assert_eq!(tokens.verify(&ring, &minted, now()).unwrap().jti, "j");
    }

    fn with_header(token: &str, header: &str) -> String {
        let rest = token.split_once('.').unwrap().1;
        format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header))
    }

    #[test]
    fn round_trips_for_every_algorithm() {
        for alg in [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
            SigningAlgorithm::HS256,
        ] {
            let (tokens, ring) = setup(alg);
            let token = tokens
                .mint(ring.signing_key(now()).unwrap(), &claims(now()))
                .unwrap();
            assert_eq!(
                tokens.verify(&ring, &token, now()).unwrap(),
                claims_like(&token)
            );
        }
    }

    fn claims_like(token: &str) -> AccessClaims {
        jsonwebtoken::dangerous::insecure_decode::<AccessClaims>(token)
            .map(|data| data.claims)
            .unwrap()
    }

    #[test]
    fn hostile_headers_are_refused() {
        let (tokens, ring) = setup(SigningAlgorithm::EdDSA);
        let token = tokens
            .mint(ring.signing_key(now()).unwrap(), &claims(now()))
            .unwrap();
        for header in [
            r#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#,
            r#"{"alg":"NONE","typ":"at+jwt","kid":"k1"}"#,
            r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#,
            r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#,
            r#"{"alg":"EdDSA","kid":"k1"}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"nope"}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1","jku":"http://x"}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1","crit":["exp"]}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1","cty":"JWT"}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1","x-anything":1}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1","alg":"EdDSA"}"#,
        ] {
            let hostile = with_header(&token, header);
            assert!(
                matches!(
                    tokens.verify(&ring, &hostile, now()),
                    Err(TokenError::Invalid(_))
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn a_token_living_longer_than_access_ttl_and_leeway_is_refused() {
        let (tokens, ring) = setup(SigningAlgorithm::EdDSA);
        let key = ring.signing_key(now()).unwrap();
        let longest = TokenSettings::default().access_ttl.as_secs()
            + TokenSettings::default().leeway.as_secs();
        let mut at_the_cap = claims(now());
        at_the_cap.exp = now() + longest;
        let token = tokens.mint(key, &at_the_cap).unwrap();
        assert!(tokens.verify(&ring, &token, now()).is_ok());

        let mut a_year = claims(now());
        a_year.exp = now() + 365 * 86_400;
        let token = tokens.mint(key, &a_year).unwrap();
        assert_eq!(
            tokens.verify(&ring, &token, now()),
            Err(TokenError::Invalid(
                "token lives longer than tokens.access_ttl"
            ))
        );
        let mut one_more = claims(now());
        one_more.exp = now() + longest + 1;
        let token = tokens.mint(key, &one_more).unwrap();
        assert!(tokens.verify(&ring, &token, now()).is_err());
    }

    #[test]
    fn time_claims_are_checked_with_the_leeway() {
        let (tokens, ring) = setup(SigningAlgorithm::EdDSA);
        let key = ring.signing_key(now()).unwrap();
        let mut expired = claims(now() - 1000);
        expired.exp = now() - 31;
        let token = tokens.mint(key, &expired).unwrap();
        assert_eq!(
            tokens.verify(&ring, &token, now()),
            Err(TokenError::Expired)
        );

        let mut future = claims(now());
        future.iat = now() + 120;
        future.exp = now() + 600;
        let token = tokens.mint(key, &future).unwrap();
        assert!(tokens.verify(&ring, &token, now()).is_err());
    }

    #[test]
    fn expiry_is_judged_by_the_clock_passed_in_not_the_system_one() {
        let (tokens, ring) = setup(SigningAlgorithm::EdDSA);
        let key = ring.signing_key(now()).unwrap();
        // Minted a day ago with a 15-minute life: long expired by the system clock.
        let mut old = claims(now() - 86_400);
        old.exp = now() - 86_400 + 900;
        let token = tokens.mint(key, &old).unwrap();
        let then = now() - 86_400 + 60;
        assert_eq!(tokens.verify(&ring, &token, then).unwrap().jti, "j");
        assert_eq!(
            tokens.verify(&ring, &token, old.exp + 31),
            Err(TokenError::Expired)
        );
        assert!(tokens.verify(&ring, &token, old.exp + 30).is_ok());
    }

    #[test]
    fn a_user_token_and_a_service_token_never_read_as_each_other() {
        let (tokens, ring) = setup(SigningAlgorithm::EdDSA);
        let key = ring.signing_key(now()).unwrap();
        let service = ClientClaims {
            iss: "http://127.0.0.1:8080".into(),
            sub: "svc_1".into(),
            aud: "claimd".into(),
            exp: now() + 60,
            iat: now(),
            jti: "j".into(),
            client_id: "svc_1".into(),
        };
        let service_token = tokens.mint_client(key, &service).unwrap();
        let user_token = tokens.mint(key, &claims(now())).unwrap();

        assert_eq!(
            tokens.verify_client(&ring, &service_token, now()).unwrap(),
            service
        );
        assert!(matches!(
            tokens.verify(&ring, &service_token, now()),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            tokens.verify_client(&ring, &user_token, now()),
            Err(TokenError::Invalid(_))
        ));
        let mut expired = service;
        expired.exp = now() - 31;
        let expired = tokens.mint_client(key, &expired).unwrap();
        assert_eq!(
            tokens.verify_client(&ring, &expired, now()),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn wrong_audience_or_issuer_is_refused() {
        let (tokens, ring) = setup(SigningAlgorithm::EdDSA);
        let key = ring.signing_key(now()).unwrap();
        let mut other = claims(now());
        other.aud = "someone-else".into();
        let token = tokens.mint(key, &other).unwrap();
        assert!(tokens.verify(&ring, &token, now()).is_err());
        let mut other = claims(now());
        other.iss = "http://evil".into();
        let token = tokens.mint(key, &other).unwrap();
        assert!(tokens.verify(&ring, &token, now()).is_err());
    }
}
