//! Importing private keys made elsewhere (`claimd keys import`): PKCS#8 PEM, PKCS#1 RSA
//! PEM, SEC1 EC PEM, or a private JWK, turned into the stored form (PKCS#8 PEM, or the
//! base64url secret for HS256). Every buffer of ours that holds the key on the way (the
//! decoded JWK members, the PEM) is zeroed when dropped, and so are the JWK's own members
//! once read.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use zeroize::{Zeroize as _, Zeroizing};

use super::keys::{load_signing_key, KeyError};
use crate::config::SigningAlgorithm;

/// Reads a private key brought in from elsewhere — PKCS#8 PEM, PKCS#1 RSA or SEC1 EC PEM,
/// or a private JWK — into the stored form, with the JWK's `kid` if it has one.
///
/// # Errors
/// Text that is not a private key of `alg`.
pub fn private_key_from_text(
    alg: SigningAlgorithm,
    text: &str,
) -> Result<(Zeroizing<String>, Option<String>), KeyError> {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let text = text.trim();
    let invalid = |reason: &dyn std::fmt::Display| KeyError::Invalid {
        alg: alg.as_str(),
        reason: reason.to_string(),
    };
    let (stored, kid) = if text.starts_with('{') {
        let jwk = JwkText(serde_json::from_str(text).map_err(|err| invalid(&err))?);
        let jwk = &jwk.0;
        let member = |name: &str| -> Result<Zeroizing<Vec<u8>>, KeyError> {
            let encoded = jwk[name]
                .as_str()
                .ok_or_else(|| invalid(&format!("JWK member `{name}` is missing")))?;
            URL_SAFE_NO_PAD
                .decode(encoded.trim_end_matches('='))
                .map(Zeroizing::new)
                .map_err(|err| invalid(&err))
        };
        let expect = |kty: &str, crv: Option<&str>| -> Result<(), KeyError> {
            let kty_ok = jwk["kty"].as_str() == Some(kty);
            let crv_ok = crv.is_none_or(|crv| jwk["crv"].as_str() == Some(crv));
            if kty_ok && crv_ok {
                Ok(())
            } else {
                Err(invalid(&"the JWK is not a key of this algorithm"))
            }
        };
        let pem = match alg {
            SigningAlgorithm::EdDSA => {
                expect("OKP", Some("Ed25519"))?;
                let d = member("d")?;
                let d: Zeroizing<[u8; 32]> = Zeroizing::new(
                    d.as_slice()
                        .try_into()
                        .map_err(|_| invalid(&"`d` must be 32 bytes"))?,
                );
                ed25519_dalek::SigningKey::from_bytes(&d)
                    .to_pkcs8_pem(Default::default())
                    .map_err(|err| invalid(&err))?
            }
            SigningAlgorithm::ES256 => {
                expect("EC", Some("P-256"))?;
                p256::SecretKey::from_slice(&member("d")?)
                    .map_err(|err| invalid(&err))?
                    .to_pkcs8_pem(Default::default())
                    .map_err(|err| invalid(&err))?
            }
            SigningAlgorithm::RS256 => {
                expect("RSA", None)?;
                let number =
                    |name: &str| member(name).map(|bytes| rsa::BigUint::from_bytes_be(&bytes));
                rsa::RsaPrivateKey::from_components(
                    number("n")?,
                    number("e")?,
                    number("d")?,
                    vec![number("p")?, number("q")?],
                )
                .map_err(|err| invalid(&err))?
                .to_pkcs8_pem(Default::default())
                .map_err(|err| invalid(&err))?
            }
            SigningAlgorithm::HS256 => {
                expect("oct", None)?;
                Zeroizing::new(URL_SAFE_NO_PAD.encode(member("k")?.as_slice()))
            }
        };
        (pem, jwk["kid"].as_str().map(str::to_string))
    } else if alg == SigningAlgorithm::RS256 && text.contains("BEGIN RSA PRIVATE KEY") {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(text).map_err(|err| invalid(&err))?;
        (
            key.to_pkcs8_pem(Default::default())
                .map_err(|err| invalid(&err))?,
            None,
        )
    } else if alg == SigningAlgorithm::ES256 && text.contains("BEGIN EC PRIVATE KEY") {
        let key = p256::SecretKey::from_sec1_pem(text).map_err(|err| invalid(&err))?;
        (
            key.to_pkcs8_pem(Default::default())
                .map_err(|err| invalid(&err))?,
            None,
        )
    } else {
        (Zeroizing::new(text.to_string()), None)
    };
    load_signing_key("import", alg, &stored, 0)?;
    Ok((stored, kid))
}

/// A parsed JWK whose string members (the private ones among them) are zeroed when it is
/// dropped.
struct JwkText(Value);

impl Drop for JwkText {
    fn drop(&mut self) {
        if let Value::Object(members) = &mut self.0 {
            for value in members.values_mut() {
                if let Value::String(text) = value {
                    text.zeroize();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::keys::generate_private_key;
    use serde_json::json;

    #[test]
    fn a_private_jwk_imports_to_the_same_key() {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let pem = generate_private_key(SigningAlgorithm::EdDSA).unwrap();
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap();
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "theirs",
            "d": URL_SAFE_NO_PAD.encode(key.to_bytes()),
            "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        });
        let (stored, kid) =
            private_key_from_text(SigningAlgorithm::EdDSA, &jwk.to_string()).unwrap();
        assert_eq!(kid.as_deref(), Some("theirs"));
        let imported = load_signing_key("theirs", SigningAlgorithm::EdDSA, &stored, 0).unwrap();
        let original = load_signing_key("ours", SigningAlgorithm::EdDSA, &pem, 0).unwrap();
        assert_eq!(
            imported.public_jwk.unwrap()["x"],
            original.public_jwk.unwrap()["x"]
        );
    }

    #[test]
    fn pem_of_another_algorithm_or_garbage_is_refused() {
        let pem = generate_private_key(SigningAlgorithm::EdDSA).unwrap();
        assert!(private_key_from_text(SigningAlgorithm::ES256, &pem).is_err());
        assert!(private_key_from_text(SigningAlgorithm::EdDSA, "not a key").is_err());
        assert!(
            private_key_from_text(SigningAlgorithm::EdDSA, r#"{"kty":"EC","crv":"P-256"}"#)
                .is_err()
        );
    }

    #[test]
    fn sec1_ec_pem_is_converted() {
        use p256::pkcs8::LineEnding;
        let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let sec1 = key.to_sec1_pem(LineEnding::LF).unwrap();
        let (stored, _) = private_key_from_text(SigningAlgorithm::ES256, &sec1).unwrap();
        assert!(stored.contains("BEGIN PRIVATE KEY"));
    }
}
