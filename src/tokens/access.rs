//! Minting and verifying access tokens. The verification rules and their order are
//! claimd-token's ([`TokenRules`]), which the `claimd-verify` library runs too; this
//! module holds claimd's side: its settings, its key ring as the key set, and minting.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use claimd_token::{Algorithm, DecodingKey, Expiry, KeyLookup, Refusal, TokenRules};
use jsonwebtoken::Header;
use serde::Serialize;

use super::keys::{jwt_algorithm, KeyRing, SigningKey};
use super::{AccessClaims, ClientClaims};
use crate::config::{SigningAlgorithm, TokenSettings};

use claimd_token::ACCESS_TOKEN_TYP;

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

impl From<Refusal> for TokenError {
    fn from(refusal: Refusal) -> TokenError {
        match refusal {
            Refusal::Expired => TokenError::Expired,
            Refusal::Invalid(why) => TokenError::Invalid(why),
            Refusal::UnknownKey => TokenError::Invalid("unknown kid"),
            // Steps 1–2 never revoke; whatever a newer claimd-token refuses for is refused
            // all the same.
            _ => TokenError::Invalid("token refused"),
        }
    }
}

/// The key ring as the verification's key set, pinned to the configured algorithm: the
/// ring holds no key of another (see [`KeyRing`]), and a key of another would verify
/// nothing here even if it did.
struct PinnedRing<'r> {
    ring: &'r KeyRing,
    algorithm: SigningAlgorithm,
}

impl KeyLookup for PinnedRing<'_> {
    fn key(&self, kid: &str) -> Option<(Algorithm, &DecodingKey)> {
        self.ring
            .verifying_key(kid)
            .filter(|key| key.alg == self.algorithm)
            .map(|key| (jwt_algorithm(key.alg), &key.decoding))
    }
}

/// Mints and verifies access tokens for one issuer, audience and algorithm.
#[derive(Clone)]
pub struct AccessTokens {
    rules: TokenRules,
    algorithm: SigningAlgorithm,
}

impl AccessTokens {
    /// Builds the verifier with every check set from `settings`: no token claimd mints
    /// lives longer than `tokens.access_ttl` (+ leeway), so one that claims to (signed with
    /// a stolen or imported key) is refused whatever its `exp`.
    pub fn new(settings: &TokenSettings) -> AccessTokens {
        AccessTokens {
            rules: TokenRules::new(
                &settings.issuer,
                &settings.audience,
                settings.leeway.as_secs(),
                settings.access_ttl.as_secs(),
            ),
            algorithm: settings.algorithm,
        }
    }

    /// Also accepts tokens living up to `ttl_secs` (+ leeway): the longest access-token
    /// lifetime the store was ever configured with, so lowering `tokens.access_ttl` does not
    /// turn tokens minted before the change into forgeries.
    #[must_use]
    pub fn accepting_lifetime(self, ttl_secs: u64) -> AccessTokens {
        AccessTokens {
            rules: self.rules.accepting_life(ttl_secs),
            algorithm: self.algorithm,
        }
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
        Ok(self
            .rules
            .check(&self.pinned(ring), token, now, Expiry::Enforced)?)
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
        Ok(self
            .rules
            .check(&self.pinned(ring), token, now, Expiry::Ignored)?)
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
        Ok(self
            .rules
            .check(&self.pinned(ring), token, now, Expiry::Enforced)?)
    }

    fn pinned<'r>(&self, ring: &'r KeyRing) -> PinnedRing<'r> {
        PinnedRing {
            ring,
            algorithm: self.algorithm,
        }
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
        let mut claims = AccessClaims::default();
        claims.iss = "http://127.0.0.1:8080".into();
        claims.sub = "u".into();
        claims.aud = "claimd".into();
        claims.exp = now + 60;
        claims.iat = now;
        claims.jti = "j".into();
        claims.sid = "s".into();
        claims.plan = "free".into();
        claims.uv = 1;
        claims
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
            Err(TokenError::Invalid("token lives longer than claimd issues"))
        );
        let mut one_more = claims(now());
        one_more.exp = now() + longest + 1;
        let token = tokens.mint(key, &one_more).unwrap();
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
}
