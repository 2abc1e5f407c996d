//! Signing keys: generation, loading from their stored PEM, the JWKS, and the ring that
//! picks the key to sign with and finds the key to verify with by `kid`.
//!
//! Private keys are PKCS#8 PEM (HS256: a base64url secret). They are parsed here with the
//! RustCrypto crates, which also give the public parts for the JWKS, and handed to
//! jsonwebtoken as DER. Every buffer of ours that holds private key material (the PEM text,
//! the DER, an HS256 secret) is zeroed when dropped (`Zeroizing`, or the RustCrypto types'
//! own zeroize-on-drop); the copies inside jsonwebtoken's `EncodingKey` are its own.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::SigningAlgorithm;

/// A key that cannot be generated or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported algorithm `{0}`")]
    Unsupported(String),
    #[error("invalid {alg} private key: {reason}")]
    Invalid { alg: &'static str, reason: String },
    #[error("key generation failed: {0}")]
    Generation(String),
}

/// A signing key made usable: what signs, what verifies, and what is published.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    pub encoding: EncodingKey,
    /// The Ed25519 key ready to sign (EdDSA only): jsonwebtoken parses its PKCS#8
    /// encoding and derives the public key again on every `encode`, more than half the
    /// cost of a mint.
    pub ed25519: Option<ed25519_dalek::SigningKey>,
    pub decoding: DecodingKey,
    /// The public JWK (with `kid`, `alg`, `use`), or `None` for HS256 whose key is secret.
    pub public_jwk: Option<Value>,
    /// From this unix second the key signs.
    pub signs_from: u64,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// jsonwebtoken's name for an algorithm.
pub fn jwt_algorithm(alg: SigningAlgorithm) -> Algorithm {
    match alg {
        SigningAlgorithm::EdDSA => Algorithm::EdDSA,
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::RS256 => Algorithm::RS256,
        SigningAlgorithm::HS256 => Algorithm::HS256,
    }
}

/// Generates a new private key for `alg`, in the stored form, in a buffer zeroed when
/// dropped.
///
/// # Errors
/// The RNG or encoder failed.
pub fn generate_private_key(alg: SigningAlgorithm) -> Result<Zeroizing<String>, KeyError> {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let failed = |err: &dyn std::fmt::Display| KeyError::Generation(err.to_string());
    let pem = match alg {
        SigningAlgorithm::EdDSA => ed25519_dalek::SigningKey::generate(&mut OsRng)
            .to_pkcs8_pem(Default::default())
            .map_err(|err| failed(&err))?,
        SigningAlgorithm::ES256 => p256::SecretKey::random(&mut OsRng)
            .to_pkcs8_pem(Default::default())
            .map_err(|err| failed(&err))?,
        SigningAlgorithm::RS256 => rsa::RsaPrivateKey::new(&mut OsRng, 2048)
            .map_err(|err| failed(&err))?
            .to_pkcs8_pem(Default::default())
            .map_err(|err| failed(&err))?,
        SigningAlgorithm::HS256 => {
            let mut secret = Zeroizing::new([0u8; 64]);
            OsRng.fill_bytes(&mut *secret);
            Zeroizing::new(URL_SAFE_NO_PAD.encode(secret.as_slice()))
        }
    };
    Ok(pem)
}

/// Turns a stored private key into a usable [`SigningKey`].
///
/// # Errors
/// The text is not a valid key for `alg`.
pub fn load_signing_key(
    kid: &str,
    alg: SigningAlgorithm,
    private_key: &str,
    signs_from: u64,
) -> Result<SigningKey, KeyError> {
    use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::traits::PublicKeyParts as _;

    let invalid = |reason: &dyn std::fmt::Display| KeyError::Invalid {
        alg: alg.as_str(),
        reason: reason.to_string(),
    };
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let mut ed25519 = None;
    let (encoding, decoding, public) = match alg {
        SigningAlgorithm::EdDSA => {
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(private_key)
                .map_err(|err| invalid(&err))?;
            let der = key.to_pkcs8_der().map_err(|err| invalid(&err))?;
            let x = b64(key.verifying_key().as_bytes());
            ed25519 = Some(key);
            (
                EncodingKey::from_ed_der(der.as_bytes()),
                DecodingKey::from_ed_components(&x).map_err(|err| invalid(&err))?,
                Some(json!({"kty": "OKP", "crv": "Ed25519", "x": x})),
            )
        }
        SigningAlgorithm::ES256 => {
            let key = p256::SecretKey::from_pkcs8_pem(private_key).map_err(|err| invalid(&err))?;
            let der = key.to_pkcs8_der().map_err(|err| invalid(&err))?;
            let point = key.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(invalid(&"public key is the identity"));
            };
            let (x, y) = (b64(x), b64(y));
            (
                EncodingKey::from_ec_der(der.as_bytes()),
                DecodingKey::from_ec_components(&x, &y).map_err(|err| invalid(&err))?,
                Some(json!({"kty": "EC", "crv": "P-256", "x": x, "y": y})),
            )
        }
        SigningAlgorithm::RS256 => {
            let key =
                rsa::RsaPrivateKey::from_pkcs8_pem(private_key).map_err(|err| invalid(&err))?;
            if key.size() < 256 {
                return Err(invalid(&"RSA keys must be at least 2048 bits"));
            }
            let der = key.to_pkcs1_der().map_err(|err| invalid(&err))?;
            let (n, e) = (b64(&key.n().to_bytes_be()), b64(&key.e().to_bytes_be()));
            (
                EncodingKey::from_rsa_der(der.as_bytes()),
                DecodingKey::from_rsa_components(&n, &e).map_err(|err| invalid(&err))?,
                Some(json!({"kty": "RSA", "n": n, "e": e})),
            )
        }
        SigningAlgorithm::HS256 => {
            let secret = Zeroizing::new(
                URL_SAFE_NO_PAD
                    .decode(private_key.trim())
                    .map_err(|err| invalid(&err))?,
            );
            if secret.len() < 32 {
                return Err(invalid(&"HS256 secrets must be at least 32 bytes"));
            }
            (
                EncodingKey::from_secret(&secret),
                DecodingKey::from_secret(&secret),
                None,
            )
        }
    };
    let public_jwk = public.map(|mut jwk| {
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg.as_str());
        jwk["use"] = json!("sig");
        jwk
    });
    Ok(SigningKey {
        kid: kid.to_string(),
        alg,
        encoding,
        ed25519,
        decoding,
        public_jwk,
        signs_from,
    })
}

/// The keys claimd signs and verifies with. Only keys of the configured algorithm are
/// held: verification pins the algorithm, so a key of another one could never verify.
#[derive(Debug)]
pub struct KeyRing {
    keys: HashMap<String, SigningKey>,
    /// Key ids, oldest first.
    order: Vec<String>,
}

impl KeyRing {
    /// Builds a ring from loaded keys, ordered by when they start signing.
    pub fn new(mut keys: Vec<SigningKey>) -> KeyRing {
        keys.sort_by(|a, b| (a.signs_from, &a.kid).cmp(&(b.signs_from, &b.kid)));
        let order = keys.iter().map(|key| key.kid.clone()).collect();
        let keys = keys.into_iter().map(|key| (key.kid.clone(), key)).collect();
        KeyRing { keys, order }
    }

    /// The key that signs at `now`: the newest whose `signs_from` has come. When none has
    /// (the wall clock went back past the creation of every key, after a run with the clock
    /// ahead), the oldest key signs: every key is in the JWKS from its creation, and a
    /// server that cannot sign at all would log everybody out until the clock caught up.
    pub fn signing_key(&self, now: u64) -> Option<&SigningKey> {
        self.order
            .iter()
            .rev()
            .filter_map(|kid| self.keys.get(kid))
            .find(|key| key.signs_from <= now)
            .or_else(|| self.order.first().and_then(|kid| self.keys.get(kid)))
    }

    /// The key named by a token's `kid`.
    pub fn verifying_key(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.get(kid)
    }

    /// The key that signs after `kid`, if any.
    fn successor(&self, index: usize) -> Option<&SigningKey> {
        self.order.get(index + 1).and_then(|kid| self.keys.get(kid))
    }

    /// Whether the key at `index` may still verify a live token at `now`: it signs now or
    /// later, or its successor took over less than `token_lifetime` ago.
    fn still_verifies(&self, index: usize, now: u64, token_lifetime: u64) -> bool {
        self.successor(index)
            .is_none_or(|next| next.signs_from.saturating_add(token_lifetime) >= now)
    }

    /// The RFC 7517 key set at `now`: the public keys that can still verify a live token
    /// (`token_lifetime` = access-token life + leeway), and any key published ahead of
    /// signing. HS256 secrets never appear.
    pub fn jwks(&self, now: u64, token_lifetime: u64) -> Value {
        let keys: Vec<Value> = self
            .order
            .iter()
            .enumerate()
            .filter(|(index, _)| self.still_verifies(*index, now, token_lifetime))
            .filter_map(|(_, kid)| self.keys.get(kid))
            .filter_map(|key| key.public_jwk.clone())
            .collect();
        json!({ "keys": keys })
    }

    /// Key ids no token can still need at `now` (for pruning the store).
    pub fn retired(&self, now: u64, token_lifetime: u64) -> Vec<String> {
        self.order
            .iter()
            .enumerate()
            .filter(|(index, _)| !self.still_verifies(*index, now, token_lifetime))
            .map(|(_, kid)| kid.clone())
            .collect()
    }

    /// The newest key (the one that signs last).
    pub fn newest(&self) -> Option<&SigningKey> {
        self.order.last().and_then(|kid| self.keys.get(kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_a_loadable_key() {
        for alg in [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
            SigningAlgorithm::HS256,
        ] {
            let pem = generate_private_key(alg).unwrap();
            let key = load_signing_key("k1", alg, &pem, 0).unwrap();
            assert_eq!(key.public_jwk.is_some(), alg != SigningAlgorithm::HS256);
        }
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused() {
        let pem = generate_private_key(SigningAlgorithm::EdDSA).unwrap();
        assert!(load_signing_key("k1", SigningAlgorithm::ES256, &pem, 0).is_err());
        assert!(load_signing_key("k1", SigningAlgorithm::HS256, "c2hvcnQ", 0).is_err());
    }

    #[test]
    fn the_newest_key_whose_time_has_come_signs() {
        let pem = generate_private_key(SigningAlgorithm::EdDSA).unwrap();
        let old = load_signing_key("a", SigningAlgorithm::EdDSA, &pem, 0).unwrap();
        let next = load_signing_key("b", SigningAlgorithm::EdDSA, &pem, 100).unwrap();
        let ring = KeyRing::new(vec![old, next]);
        assert_eq!(ring.signing_key(99).unwrap().kid, "a");
        assert_eq!(ring.signing_key(100).unwrap().kid, "b");
        assert_eq!(ring.jwks(50, 10)["keys"].as_array().unwrap().len(), 2);
        assert_eq!(ring.jwks(110, 10)["keys"].as_array().unwrap().len(), 2);
        assert_eq!(ring.jwks(111, 10)["keys"].as_array().unwrap().len(), 1);
        assert_eq!(ring.retired(111, 10), vec!["a".to_string()]);
    }
}
