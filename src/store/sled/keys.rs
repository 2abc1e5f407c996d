//! The `keys` tree: key id → [`KeyRecord`], the signing-key ring. Private keys are kept as
//! PKCS#8 PEM (HS256: the secret, base64url), the same form `keys import` will accept.

use super::disk::Stored;
use sled::Transactional;

use super::{codec, corrupt, Change, Engine, SledStore, StoreError};
use crate::store::KeyRecord;

impl SledStore {
    /// Every key in the ring, oldest first (key ids are time-ordered).
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn signing_keys(&self) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        let engine = self.engine()?;
        engine
            .keys
            .iter()
            .map(|entry| {
                let (kid, value) = entry?;
                let kid = String::from_utf8(kid.to_vec()).map_err(|_| StoreError::Corrupt {
                    tree: "keys",
                    source: codec::CodecError::Decode("key id is not UTF-8".into()),
                })?;
                Ok((kid, Stored::from_disk(&value).map_err(corrupt("keys"))?))
            })
            .collect()
    }

    /// Removes a key.
    ///
    /// # Errors
    /// Storage failures.
    pub fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        self.write_key(&engine, kid, None)
    }

    /// Adds or replaces a key.
    ///
    /// # Errors
    /// Storage failures.
    pub fn put_signing_key(&self, kid: &str, key: &KeyRecord) -> Result<(), StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let value = Stored::to_disk(key).map_err(corrupt("keys"))?;
        self.write_key(&engine, kid, Some(value))
    }

    /// Puts (`Some`) or removes a key, and logs that the key set changed.
    fn write_key(
        &self,
        engine: &Engine,
        kid: &str,
        value: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let appending = engine.changes.begin();
        (&engine.keys, engine.changes.tree()).transaction(|(keys, changes)| {
            match &value {
                Some(value) => keys.insert(kid.as_bytes(), value.clone())?,
                None => keys.remove(kid.as_bytes())?,
            };
            appending.write::<StoreError>(changes, self.clock.now(), &[Change::KeysChanged])
        })?;
        let _unfinished = appending.committed(1);
        Ok(())
    }
}
