//! Loading the signing-key ring from the store, and creating the first key on first
//! start. Keys of another algorithm than the configured one stay in the store (a later
//! switch back finds them) but are not loaded: verification pins the algorithm.

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
}

/// Loads every stored key of `alg`; with none, generates one that signs at once.
///
/// # Errors
/// Storage failures, or a stored key that no longer parses.
pub fn load_or_create_key_ring(
    store: &Store,
    alg: SigningAlgorithm,
    now: u64,
) -> Result<KeyRing, KeyRingError> {
    let mut stored: Vec<(String, KeyRecord)> = store
        .signing_keys()?
        .into_iter()
        .filter(|(_, key)| key.alg == alg.as_str())
        .collect();
    if stored.is_empty() {
        let private_key = generate_private_key(alg).map_err(|source| KeyRingError::Key {
            kid: "(new)".into(),
            source,
        })?;
        let kid = uuid::Uuid::now_v7().simple().to_string();
        let record = KeyRecord {
            alg: alg.as_str().to_string(),
            private_key,
            created_at: now,
            signs_from: now,
            retired_at: None,
        };
        store.put_signing_key(&kid, &record)?;
        store.flush_now()?;
        tracing::info!(%kid, alg = alg.as_str(), "generated a signing key");
        stored.push((kid, record));
    }
    let keys = stored
        .into_iter()
        .map(|(kid, record)| {
            load_signing_key(&kid, alg, &record.private_key, record.signs_from)
                .map_err(|source| KeyRingError::Key { kid, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KeyRing::new(keys))
}
