//! Password hashing: argon2id with 7 MiB, t=5, p=1 (one of OWASP's equivalent
//! configurations), run on a fixed pool of low-priority threads ([`HashPool`]), so a login
//! flood queues here instead of starving token verification of CPU, threads and memory. A
//! login for an unknown user verifies against a dummy hash made at start-up, so it costs
//! what a wrong password costs.
//!
//! OWASP lists 46 MiB/t=1, 19 MiB/t=2, 12 MiB/t=3, 9 MiB/t=4 and 7 MiB/t=5 as equal
//! defences; each costs about the same CPU per hash. claimd runs on small devices, where
//! memory is what runs out: 7 MiB per hash holds little more than a third of what the
//! 19 MiB configuration claimd used before held under a login flood (hashes made with it
//! still verify, each with the parameters in its own PHC string).
//!
//! Each hashing thread keeps one work area and reuses it while logins are queued, then
//! gives it back. Allocating it per hash left freed chunks behind in glibc's per-thread
//! arenas (a server that had answered a few hundred logins sat at 300+ MiB RSS); holding
//! it forever costs a work area per core on an idle server.

use std::cell::RefCell;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::hash_pool::HashPool;
use crate::domain::Password;

/// argon2id memory cost in KiB (OWASP: 7 MiB with five passes).
pub const MEMORY_KIB: u32 = 7 * 1024;
/// argon2id passes (OWASP: 5 at 7 MiB).
pub const ITERATIONS: u32 = 5;
/// argon2id lanes (OWASP: 1).
pub const LANES: u32 = 1;
/// Salt and hash lengths, in bytes.
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// Hashing failed: the pool is gone or argon2 refused its inputs.
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
    /// Builds the hasher; `max_concurrent` hashes run at once (each holds its work area).
    ///
    /// # Errors
    /// The pool could not start or the dummy hash could not be made.
    pub fn new(max_concurrent: usize) -> Result<Passwords, HashError> {
        let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, Some(HASH_LEN))
            .map_err(|err| HashError(err.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        // The dummy is hashed once with a work area of its own, freed at once: the pool's
        // threads allocate theirs at the first login, so an idle server stays small.
        let mut own_area = vec![Block::default(); argon.params().block_count()];
        let dummy_hash = hash_with(
            &argon,
            b"claimd dummy password, never matches",
            &mut own_area,
        )?;
        drop(own_area);
        let pool = HashPool::start(max_concurrent, release_work_area)
            .map_err(|err| HashError(err.to_string()))?;
        Ok(Passwords {
            argon,
            pool,
            dummy_hash,
        })
    }

    /// Hashes a new password to a PHC string.
    ///
    /// # Errors
    /// The pool has stopped or argon2 refused.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let argon = self.argon.clone();
        self.pool
            .run(move || {
                let blocks = argon.params().block_count();
                with_work_area(blocks, |area| hash_with(&argon, password.expose(), area))
            })
            .await
            .map_err(|err| HashError(err.to_string()))?
    }

    /// Whether `password` matches `phc`; `None` verifies against the dummy hash (and so
    /// fails) at the same cost.
    pub async fn verify(&self, password: Password, phc: Option<String>) -> bool {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.clone());
        let matched = self
            .pool
            .run(move || verify_with(password.expose(), &phc))
            .await
            .unwrap_or(false);
        known && matched
    }
}

thread_local! {
    /// This thread's argon2 work area, reused by every hash it runs.
    static WORK_AREA: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Gives this thread's work area back to the system: a server between logins holds no
/// work area.
fn release_work_area() {
    // An area this large is mapped on its own (the binary holds glibc's mmap threshold,
    // see `main`), so dropping it unmaps it.
    WORK_AREA.with(|cell| *cell.borrow_mut() = Vec::new());
}

fn with_work_area<T>(blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    WORK_AREA.with(|cell| {
        let mut area = cell.borrow_mut();
        if area.len() < blocks {
            *area = vec![Block::default(); blocks];
        }
        work(&mut area[..blocks])
    })
}

fn hash_with(argon: &Argon2<'_>, password: &[u8], area: &mut [Block]) -> Result<String, HashError> {
    let mut salt = [0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let mut hash = [0u8; HASH_LEN];
    argon
        .hash_password_into_with_memory(password, &salt, &mut hash, area)
        .map_err(|err| HashError(err.to_string()))?;
    let params = argon.params();
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(hash)
    ))
}

/// Checks a password against any argon2 PHC string (its own parameters, salt and length).
fn verify_with(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    let mut salt_buffer = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buffer) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut computed = vec![0u8; expected.len()];
    let hashed = with_work_area(argon.params().block_count(), |area| {
        argon.hash_password_into_with_memory(password, salt, &mut computed, area)
    });
    hashed.is_ok() && bool::from(computed.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, SaltString};

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let passwords = Passwords::new(2).unwrap();
        let password = || Password::parse_new("correct horse".into()).unwrap();
        let phc = passwords.hash(password()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"));
        assert!(passwords.verify(password(), Some(phc.clone())).await);
        assert!(
            !passwords
                .verify(Password::offered("wrong horse".into()), Some(phc))
                .await
        );
        assert!(!passwords.verify(password(), None).await);
    }

    #[test]
    fn our_strings_are_standard_phc_both_ways() {
        let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, Some(HASH_LEN)).unwrap();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        // Ours verifies with the reference implementation...
        let blocks = argon.params().block_count();
        let ours =
            with_work_area(blocks, |area| hash_with(&argon, b"secret password", area)).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon2::PasswordVerifier::verify_password(&argon, b"secret password", &parsed).is_ok()
        );
        // ...and the reference one verifies with ours.
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let theirs = argon
            .hash_password(b"secret password", &salt)
            .unwrap()
            .to_string();
        assert!(verify_with(b"secret password", &theirs));
        assert!(!verify_with(b"other password", &theirs));
        assert!(!verify_with(b"secret password", "not a phc string"));
    }
}
