//! [`TokenRules`]: step 1 and 2 of the verification (DESIGN.md "Verification order"), what
//! a token must be besides on no deny list: the header ([`crate::header`]), the key its
//! `kid` names and that key's algorithm, the signature, issuer, audience, `exp`, `nbf`
//! and `iat` within the leeway, and a life (`exp - iat`) no longer than claimd issues.
//!
//! jsonwebtoken's defaults are not claimd's (60 s leeway, `nbf` and `iat` unchecked,
//! `exp` read off the system clock), so every check is set here explicitly.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;

use crate::claims::TokenTimes;
use crate::header::read_header;
use crate::refusal::Refusal;

/// The algorithms claimd signs with; a key of any other verifies nothing.
const SIGNING_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::HS256,
];

/// Where a verifier finds the key a token's `kid` names.
pub trait KeyLookup {
    /// The key `kid` names and the one algorithm it verifies.
    fn key(&self, kid: &str) -> Option<(Algorithm, &DecodingKey)>;
}

/// Whether a token past its `exp` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Refused past `exp` + leeway: every use of a token.
    Enforced,
    /// Accepted past `exp`: a genuine token that ran out still proves which session its
    /// holder was given, enough to end that session (logout), never to use it.
    Ignored,
}

/// What a token must say besides its signature, for one issuer and audience.
#[derive(Clone)]
pub struct TokenRules {
    /// One validation per algorithm claimd signs with, built once: jsonwebtoken pins the
    /// algorithm per validation.
    validations: Vec<(Algorithm, Validation)>,
    leeway: u64,
    /// The longest `exp - iat` accepted, leeway included.
    longest_life: u64,
}

impl TokenRules {
    /// Tokens from `issuer` for `audience`, their times judged with `leeway` seconds of
    /// skew, living at most `longest_life` seconds (+ leeway).
    pub fn new(issuer: &str, audience: &str, leeway: u64, longest_life: u64) -> TokenRules {
        let validations = SIGNING_ALGORITHMS
            .iter()
            .map(|&alg| {
                let mut validation = Validation::new(alg);
                validation.leeway = leeway;
                // `exp` is judged against the caller's clock below, not jsonwebtoken's
                // reading of the system clock. `nbf` is left to jsonwebtoken: claimd never
                // mints it, so only a token minted elsewhere with an imported key carries one.
                validation.validate_exp = false;
                validation.validate_nbf = true;
                validation.validate_aud = true;
                validation.reject_tokens_expiring_in_less_than = 0;
                validation.set_issuer(&[issuer]);
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                (alg, validation)
            })
            .collect();
        TokenRules {
            validations,
            leeway,
            longest_life: longest_life.saturating_add(leeway),
        }
    }

    /// Also accepts tokens living up to `life` seconds (+ leeway): a longer life claimd
    /// was configured with before, or announced since.
    #[must_use]
    pub fn accepting_life(mut self, life: u64) -> TokenRules {
        self.longest_life = self.longest_life.max(life.saturating_add(self.leeway));
        self
    }

    /// Steps 1 and 2 on `token` at `now` (Unix seconds): the claims, read as `C`.
    ///
    /// # Errors
    /// `Expired` past `exp` + leeway (unless `expiry` is `Ignored`); `UnknownKey` when
    /// `keys` holds no key by the header's `kid`; `Invalid` with the reason for the rest.
    pub fn check<C: DeserializeOwned + TokenTimes>(
        &self,
        keys: &impl KeyLookup,
        token: &str,
        now: u64,
        expiry: Expiry,
    ) -> Result<C, Refusal> {
        let header = read_header(token)?;
        let (key_alg, key) = keys.key(&header.kid).ok_or(Refusal::UnknownKey)?;
        let validation = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == key_alg && *alg == header.alg)
            .map(|(_, validation)| validation)
            .ok_or(Refusal::Invalid("wrong algorithm"))?;
        let claims = jsonwebtoken::decode::<C>(token, key, validation)
            .map_err(|err| library_refusal(err.kind()))?
            .claims;
        if expiry == Expiry::Enforced && claims.expires().saturating_add(self.leeway) < now {
            return Err(Refusal::Expired);
        }
        if claims.issued() > now.saturating_add(self.leeway) {
            return Err(Refusal::Invalid("token issued in the future"));
        }
        // Signed with a key claimd verifies, but not by its token endpoint (an imported
        // or stolen key): no token claimd mints lives this long.
        if claims.expires().saturating_sub(claims.issued()) > self.longest_life {
            return Err(Refusal::Invalid("token lives longer than claimd issues"));
        }
        Ok(claims)
    }
}

/// jsonwebtoken's refusal, in claimd's words.
fn library_refusal(kind: &ErrorKind) -> Refusal {
    match kind {
        ErrorKind::ExpiredSignature => Refusal::Expired,
        ErrorKind::InvalidSignature => Refusal::Invalid("bad signature"),
        ErrorKind::InvalidIssuer => Refusal::Invalid("wrong issuer"),
        ErrorKind::InvalidAudience => Refusal::Invalid("wrong audience"),
        ErrorKind::ImmatureSignature => Refusal::Invalid("token not yet valid"),
        ErrorKind::InvalidAlgorithm => Refusal::Invalid("wrong algorithm"),
        ErrorKind::MissingRequiredClaim(_) => Refusal::Invalid("missing claim"),
        _ => Refusal::Invalid("malformed token"),
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::claims::{AccessClaims, ClientClaims};

    const SECRET: &[u8] = b"a test secret of thirty-two bytes";
    const ISSUER: &str = "http://127.0.0.1:8080";
    const NOW: u64 = 1_800_000_000;

    /// One HS256 key, `k1` (the rules are the same for every algorithm).
    struct OneKey(DecodingKey);

    impl KeyLookup for OneKey {
        fn key(&self, kid: &str) -> Option<(Algorithm, &DecodingKey)> {
            (kid == "k1").then_some((Algorithm::HS256, &self.0))
        }
    }

    fn keys() -> OneKey {
        OneKey(DecodingKey::from_secret(SECRET))
    }

    fn rules() -> TokenRules {
        TokenRules::new(ISSUER, "claimd", 30, 900)
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            sub: "u".into(),
            aud: "claimd".into(),
            iat: NOW,
            exp: NOW + 900,
            jti: "j".into(),
            sid: "s".into(),
            plan: "free".into(),
            uv: 1,
            ..AccessClaims::default()
        }
    }

    fn mint(claims: &impl serde::Serialize) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn check(token: &str, now: u64) -> Result<AccessClaims, Refusal> {
        rules().check(&keys(), token, now, Expiry::Enforced)
    }

    #[test]
    fn a_token_claimd_mints_passes() {
        assert_eq!(check(&mint(&claims()), NOW), Ok(claims()));
    }

    #[test]
    fn the_key_and_its_algorithm_come_from_the_key_set() {
        let token = mint(&claims());
        let rest = token.split_once('.').unwrap().1;
        let with_header = |header: &str| format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header));
        assert_eq!(
            check(
                &with_header(r#"{"alg":"HS256","typ":"at+jwt","kid":"k2"}"#),
                NOW
            ),
            Err(Refusal::UnknownKey)
        );
        assert_eq!(
            check(
                &with_header(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#),
                NOW
            ),
            Err(Refusal::Invalid("wrong algorithm"))
        );
        assert_eq!(
            check(
                &with_header(r#"{"alg":"HS512","typ":"at+jwt","kid":"k1"}"#),
                NOW
            ),
            Err(Refusal::Invalid("wrong algorithm"))
        );
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            check(&tampered, NOW),
            Err(Refusal::Invalid("bad signature"))
        );
    }

    #[test]
    fn times_are_judged_by_the_clock_passed_in_with_the_leeway() {
        let token = mint(&claims());
        assert!(check(&token, NOW + 900 + 30).is_ok());
        assert_eq!(check(&token, NOW + 900 + 31), Err(Refusal::Expired));
        assert!(rules()
            .check::<AccessClaims>(&keys(), &token, NOW + 86_400, Expiry::Ignored)
            .is_ok());
        assert!(check(&token, NOW - 30).is_ok());
        assert_eq!(
            check(&token, NOW - 31),
            Err(Refusal::Invalid("token issued in the future"))
        );
    }

    #[test]
    fn a_life_longer_than_claimd_issues_is_refused() {
        let mut at_the_cap = claims();
        at_the_cap.exp = NOW + 900 + 30;
        assert!(check(&mint(&at_the_cap), NOW).is_ok());
        let mut one_more = claims();
        one_more.exp = NOW + 900 + 31;
        let refused = Err(Refusal::Invalid("token lives longer than claimd issues"));
        assert_eq!(check(&mint(&one_more), NOW), refused);
        let longer = rules().accepting_life(3_600);
        assert!(longer
            .check::<AccessClaims>(&keys(), &mint(&one_more), NOW, Expiry::Enforced)
            .is_ok());
    }

    #[test]
    fn issuer_and_audience_are_claimd_s() {
        let mut other = claims();
        other.aud = "someone-else".into();
        assert_eq!(
            check(&mint(&other), NOW),
            Err(Refusal::Invalid("wrong audience"))
        );
        let mut other = claims();
        other.iss = "http://evil".into();
        assert_eq!(
            check(&mint(&other), NOW),
            Err(Refusal::Invalid("wrong issuer"))
        );
    }

    #[test]
    fn a_user_token_and_a_service_token_never_read_as_each_other() {
        let service = ClientClaims {
            iss: ISSUER.into(),
            sub: "svc_1".into(),
            aud: "claimd".into(),
            iat: NOW,
            exp: NOW + 60,
            jti: "j".into(),
            client_id: "svc_1".into(),
        };
        let service_token = mint(&service);
        let user_token = mint(&claims());
        let as_service =
            |token: &str| rules().check::<ClientClaims>(&keys(), token, NOW, Expiry::Enforced);
        assert_eq!(as_service(&service_token), Ok(service));
        assert!(matches!(
            check(&service_token, NOW),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(as_service(&user_token), Err(Refusal::Invalid(_))));
    }
}
