//! Importing private keys made elsewhere (`claimd keys import`): PKCS#8 PEM, PKCS#1 RSA
//! PEM, SEC1 EC PEM, or a private JWK, turned into the stored form (PKCS#8 PEM, or the
//! base64url secret for HS256).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

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
) -> Result<(String, Option<String>), KeyError> {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let text = text.trim();
    let invalid = |reason: &dyn std::fmt::Display| KeyError::Invalid {
        alg: alg.as_str(),
        reason: reason.to_string(),
    };
    let (stored, kid) = if text.starts_with('{') {
        let jwk: Value = serde_json::from_str(text).map_err(|err| invalid(&err))?;
        let member = |name: &str| -> Result<Vec<u8>, KeyError> {
            let encoded = jwk[name]
                .as_str()
                .ok_or_else(|| invalid(&format!("JWK member `{name}` is missing")))?;
            URL_SAFE_NO_PAD
                .decode(encoded.trim_end_matches('='))
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
                let d: [u8; 32] = member("d")?
                    .try_into()
                    .map_err(|_| invalid(&"`d` must be 32 bytes"))?;
                ed25519_dalek::SigningKey::from_bytes(&d)
                    .to_pkcs8_pem(Default::default())
                    .map_err(|err| invalid(&err))?
                    .to_string()
            }
            SigningAlgorithm::ES256 => {
                expect("EC", Some("P-256"))?;
                p256::SecretKey::from_slice(&member("d")?)
                    .map_err(|err| invalid(&err))?
                    .to_pkcs8_pem(Default::default())
                    .map_err(|err| invalid(&err))?
                    .to_string()
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
                .to_string()
            }
            SigningAlgorithm::HS256 => {
                expect("oct", None)?;
                URL_SAFE_NO_PAD.encode(member("k")?)
            }
        };
        (pem, jwk["kid"].as_str().map(str::to_string))
    } else if alg == SigningAlgorithm::RS256 && text.contains("BEGIN RSA PRIVATE KEY") {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(text).map_err(|err| invalid(&err))?;
        (
            key.to_pkcs8_pem(Default::default())
                .map_err(|err| invalid(&err))?
                .to_string(),
            None,
        )
    } else if alg == SigningAlgorithm::ES256 && text.contains("BEGIN EC PRIVATE KEY") {
        let key = p256::SecretKey::from_sec1_pem(text).map_err(|err| invalid(&err))?;
        (
            key.to_pkcs8_pem(Default::default())
                .map_err(|err| invalid(&err))?
                .to_string(),
            None,
        )
    } else {
        (text.to_string(), None)
    };
    load_signing_key("import", alg, &stored, 0)?;
    Ok((stored, kid))
}
