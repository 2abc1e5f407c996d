//! Password hashing: argon2id at OWASP's minimum (19 MiB, t=2, p=1), run on a fixed pool
//! of low-priority threads ([`HashPool`]), so a login flood queues here instead of
//! starving token verification of CPU, threads and memory. A login for an unknown user verifies
//! against a dummy hash made at start-up, so it costs what a wrong password costs.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::hash_pool::HashPool;
use crate::domain::Password;

/// argon2id memory cost in KiB (OWASP: 19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// argon2id iterations (OWASP: 2).
pub const ITERATIONS: u32 = 2;
/// argon2id lanes (OWASP: 1).
pub const LANES: u32 = 1;

/// Hashing failed: the blocking pool is gone or argon2 refused its inputs.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes and verifies passwords with a bounded number running at once.
pub struct Passwords {
    argon: Argon2<'static>,
    pool: HashPool,
    dummy_hash: String,
}

impl Passwords {
    /// Builds the hasher; `max_concurrent` hashes run at once (each holds 19 MiB).
    ///
    /// # Errors
    /// The dummy hash could not be made.
    pub fn new(max_concurrent: usize) -> Result<Passwords, HashError> {
        let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None)
            .map_err(|err| HashError(err.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = hash_with(&argon, b"claimd dummy password, never matches")?;
        Ok(Passwords {
            argon,
            pool: HashPool::start(max_concurrent).map_err(|err| HashError(err.to_string()))?,
            dummy_hash,
        })
    }

    /// Hashes a new password to a PHC string.
    ///
    /// # Errors
    /// The blocking pool failed or argon2 refused.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let argon = self.argon.clone();
        self.pool
            .run(move || hash_with(&argon, password.expose()))
            .await
            .map_err(|err| HashError(err.to_string()))?
    }

    /// Whether `password` matches `phc`; `None` verifies against the dummy hash (and so
    /// fails) at the same cost.
    pub async fn verify(&self, password: Password, phc: Option<String>) -> bool {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.clone());
        let argon = self.argon.clone();
        let matched = self
            .pool
            .run(move || {
                PasswordHash::new(&phc)
                    .map(|parsed| argon.verify_password(password.expose(), &parsed).is_ok())
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
        known && matched
    }
}

fn hash_with(argon: &Argon2<'_>, password: &[u8]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| HashError(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let passwords = Passwords::new(2).unwrap();
        let password = || Password::parse_new("correct horse".into()).unwrap();
        let phc = passwords.hash(password()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(passwords.verify(password(), Some(phc.clone())).await);
        assert!(
            !passwords
                .verify(Password::offered("wrong horse".into()), Some(phc))
                .await
        );
        assert!(!passwords.verify(password(), None).await);
    }
}
