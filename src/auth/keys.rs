//! The [`Keys`] service (the JWKS, rotation by hand or on a schedule, reloading the ring),
//! and loading the signing-key ring from the store, creating the first key on first
//! start. Keys of another algorithm than the configured one stay in the store (a later
//! switch back finds them) but are not loaded: verification pins the algorithm.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::core::Core;
use super::AuthError;
use crate::config::SigningAlgorithm;
use crate::store::{KeyRecord, Store, StoreError};
use crate::tokens::keys::{generate_private_key, load_signing_key, KeyError};
use crate::tokens::KeyRing;

/// Why the key ring could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key {kid}: {source}")]
    Key { kid: String, source: KeyError },
    #[error("a key with id {0} is already in the ring")]
    Duplicate(String),
}

/// Loads every stored key of `alg`; with none, generates one that signs at once.
///
/// # Errors
/// Storage failures, or a stored key that no longer parses.
pub async fn load_or_create_key_ring(
    store: &Arc<Store>,
    alg: SigningAlgorithm,
    now: u64,
) -> Result<KeyRing, KeyRingError> {
    let mut stored: Vec<(String, KeyRecord)> = store
        .signing_keys()
        .await?
        .into_iter()
        .filter(|(_, key)| key.alg == alg.as_str())
        .collect();
    if stored.is_empty() {
        let private_key = generate_off_the_workers(alg).await?;
        let kid = uuid::Uuid::now_v7().simple().to_string();
        let record = KeyRecord {
            alg: alg.as_str().to_string(),
            private_key: private_key.to_string(),
            created_at: now,
            signs_from: now,
            retired_at: None,
        };
        store.put_signing_key(&kid, &record).await?;
        store.wait_durable().await?;
        tracing::info!(%kid, alg = alg.as_str(), "generated a signing key");
        stored.push((kid, record));
    }
    let keys = stored
        .into_iter()
        .map(|(kid, record)| {
            // Read once into the ring; the PEM text is zeroed as it goes.
            let private_key = Zeroizing::new(record.private_key);
            load_signing_key(&kid, alg, &private_key, record.signs_from)
                .map_err(|source| KeyRingError::Key { kid, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KeyRing::new(keys))
}

/// A key added to the ring.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AddedKey {
    pub kid: String,
    pub alg: &'static str,
    /// From this unix second the key signs.
    pub signs_from: u64,
}

/// Generates a new signing key that is published at once and signs from
/// `now + publish_ahead`, so verifiers that cached the JWKS know its `kid` before they
/// meet a token signed with it.
///
/// # Errors
/// Generation or storage failures.
pub async fn add_generated_key(
    store: &Arc<Store>,
    alg: SigningAlgorithm,
    now: u64,
    publish_ahead: u64,
) -> Result<AddedKey, KeyRingError> {
    let private_key = generate_off_the_workers(alg).await?;
    add_key(store, alg, private_key, new_kid(), now, now + publish_ahead).await
}

/// Generates a private key on the blocking pool: an RSA key takes long enough to stall
/// every request on the worker that made it.
async fn generate_off_the_workers(
    alg: SigningAlgorithm,
) -> Result<Zeroizing<String>, KeyRingError> {
    let failed = |source| KeyRingError::Key {
        kid: "(new)".into(),
        source,
    };
    tokio::task::spawn_blocking(move || generate_private_key(alg))
        .await
        .map_err(|err| failed(KeyError::Generation(err.to_string())))?
        .map_err(failed)
}

fn new_kid() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

async fn add_key(
    store: &Arc<Store>,
    alg: SigningAlgorithm,
    private_key: Zeroizing<String>,
    kid: String,
    now: u64,
    signs_from: u64,
) -> Result<AddedKey, KeyRingError> {
    load_signing_key(&kid, alg, &private_key, signs_from).map_err(|source| KeyRingError::Key {
        kid: kid.clone(),
        source,
    })?;
    let record = KeyRecord {
        alg: alg.as_str().to_string(),
        private_key: private_key.to_string(),
        created_at: now,
        signs_from,
        retired_at: None,
    };
    let written = store.put_signing_key(&kid, &record).await;
    drop(Zeroizing::new(record.private_key));
    written?;
    tracing::info!(%kid, alg = alg.as_str(), signs_from, "signing key added");
    Ok(AddedKey {
        kid,
        alg: alg.as_str(),
        signs_from,
    })
}

/// Imports an existing private key (PKCS#8 PEM, or a private JWK) of the configured
/// algorithm; it signs from `now`. The key id is `kid`, else the JWK's own, else a new one.
///
/// # Errors
/// A key that does not parse, is of another algorithm, or a storage failure.
pub async fn import_key(
    store: &Arc<Store>,
    alg: SigningAlgorithm,
    text: &str,
    kid: Option<String>,
    now: u64,
) -> Result<AddedKey, KeyRingError> {
    let (private_key, jwk_kid) =
        crate::tokens::import::private_key_from_text(alg, text).map_err(|source| {
            KeyRingError::Key {
                kid: kid.clone().unwrap_or_else(|| "(import)".into()),
                source,
            }
        })?;
    let kid = kid.or(jwk_kid).unwrap_or_else(new_kid);
    if store
        .signing_keys()
        .await?
        .iter()
        .any(|(existing, _)| *existing == kid)
    {
        return Err(KeyRingError::Duplicate(kid));
    }
    add_key(store, alg, private_key, kid, now, now).await
}

/// Removes from the store the keys no live token can need any more.
///
/// # Errors
/// Storage failures.
pub async fn prune_retired_keys(
    store: &Arc<Store>,
    ring: &KeyRing,
    now: u64,
    token_lifetime: u64,
) -> Result<usize, KeyRingError> {
    let retired = ring.retired(now, token_lifetime);
    for kid in &retired {
        store.remove_signing_key(kid).await?;
    }
    Ok(retired.len())
}

impl From<KeyRingError> for AuthError {
    fn from(err: KeyRingError) -> Self {
        match err {
            KeyRingError::Store(err) => AuthError::Store(err),
            KeyRingError::Duplicate(kid) => {
                AuthError::InvalidRequest(format!("a key with id {kid} is already in the ring"))
            }
            KeyRingError::Key { .. } => AuthError::Internal(err.to_string()),
        }
    }
}

/// The signing keys: the JWKS, rotation, reloading the ring.
pub struct Keys {
    pub(super) core: Arc<Core>,
}

impl Keys {
    pub(crate) fn new(core: Arc<Core>) -> Keys {
        Keys { core }
    }
}

impl Keys {
    /// How long after its successor takes over a key may still verify a live token.
    pub fn token_lifetime(&self) -> u64 {
        self.core.settings.tokens.access_ttl.as_secs() + self.core.settings.tokens.leeway.as_secs()
    }

    /// The JWKS now: every key that can verify a live token, and the next one.
    pub fn jwks(&self) -> serde_json::Value {
        self.core
            .key_ring()
            .jwks(self.core.clock.now(), self.token_lifetime())
    }

    /// Adds a new signing key, published `keys.publish_ahead` before it signs (at once
    /// with `at_once`). Tokens signed with the old key keep verifying until they expire;
    /// refresh tokens do not depend on signing keys, so no session ends. Durable on return.
    ///
    /// # Errors
    /// Generation or storage failures.
    pub async fn rotate_signing_key(&self, at_once: bool) -> Result<AddedKey, AuthError> {
        let ahead = if at_once {
            0
        } else {
            self.core.settings.keys.publish_ahead.as_secs()
        };
        let alg = self.core.settings.tokens.algorithm;
        let now = self.core.clock.now();
        let added = add_generated_key(&self.core.store, alg, now, ahead).await?;
        self.core.store.wait_durable().await?;
        self.reload_key_ring().await?;
        Ok(added)
    }

    /// Rotates when the newest key is older than `keys.rotate_every`, and drops keys no
    /// live token needs. Returns the key added, if any.
    ///
    /// # Errors
    /// Generation or storage failures.
    pub async fn rotate_if_due(&self) -> Result<Option<AddedKey>, AuthError> {
        let now = self.core.clock.now();
        let ring = self.core.key_ring();
        let pruned =
            prune_retired_keys(&self.core.store, &ring, now, self.token_lifetime()).await?;
        if pruned > 0 {
            self.core.store.wait_durable().await?;
            self.reload_key_ring().await?;
        }
        let Some(every) = self.core.settings.keys.rotate_every else {
            return Ok(None);
        };
        let due = ring
            .newest()
            .is_none_or(|newest| newest.signs_from.saturating_add(every.as_secs()) <= now);
        if !due {
            return Ok(None);
        }
        self.rotate_signing_key(false).await.map(Some)
    }

    /// Reloads the ring from the store (after a rotation or an import).
    ///
    /// # Errors
    /// Storage failures or a stored key that no longer parses.
    pub async fn reload_key_ring(&self) -> Result<(), AuthError> {
        let ring = load_or_create_key_ring(
            &self.core.store,
            self.core.settings.tokens.algorithm,
            self.core.clock.now(),
        )
        .await?;
        self.core.replace_key_ring(ring);
        Ok(())
    }
}
