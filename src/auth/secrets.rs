//! The secrets claimd makes and shows once (invitation codes, service client secrets),
//! and the digest a code is kept and looked up under: only the digest is ever stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::secret::SecretString;

/// `bytes` random bytes from the OS, base64url without padding: a secret from birth, its
/// raw bytes zeroed once encoded.
pub(super) fn random_secret(bytes: usize) -> SecretString {
    let mut buffer = Zeroizing::new(vec![0u8; bytes]);
    OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(&*buffer).into()
}

/// The digest a code is stored and looked up under.
pub(crate) fn code_digest(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}
