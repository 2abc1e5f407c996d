//! The verification keys from claimd's JWKS: `kid` → algorithm and public key. Keys
//! without an `alg` or `kid`, or that do not load (HS256 secrets never appear), are left
//! out: no token signed with them is accepted.

use std::collections::HashMap;
use std::str::FromStr;

use claimd_token::KeyLookup;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// One public key.
pub(crate) struct VerifyingKey {
    pub(crate) alg: Algorithm,
    pub(crate) decoding: DecodingKey,
}

/// The key set, by `kid`.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// Reads an RFC 7517 key set (`{"keys":[…]}`).
    pub(crate) fn from_jwks(jwks: &Value) -> KeySet {
        let mut keys = HashMap::new();
        for raw in jwks
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(kid), Some(alg)) = (
                raw.get("kid").and_then(Value::as_str),
                raw.get("alg")
                    .and_then(Value::as_str)
                    .and_then(|alg| Algorithm::from_str(alg).ok()),
            ) else {
                continue;
            };
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                tracing::warn!(kid, "a JWKS key that does not read as a JWK: skipped");
                continue;
            };
            match DecodingKey::from_jwk(&jwk) {
                Ok(decoding) => {
                    keys.insert(kid.to_string(), VerifyingKey { alg, decoding });
                }
                Err(err) => {
                    tracing::warn!(kid, error = %err, "a JWKS key that does not load: skipped")
                }
            }
        }
        KeySet { keys }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

impl KeyLookup for KeySet {
    fn key(&self, kid: &str) -> Option<(Algorithm, &DecodingKey)> {
        self.keys.get(kid).map(|key| (key.alg, &key.decoding))
    }
}
