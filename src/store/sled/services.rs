//! The `services` tree: client id → [`ServiceRecord`], the credentials other services use
//! for introspection and revocation. Secrets are 256 random bits, so a SHA-256 digest is
//! enough to store them: unlike a password, nothing can be guessed, and checking one stays
//! cheap on the introspection hot path.

use super::disk::Stored;
use super::{corrupt, SledStore, StoreError};
use crate::store::ServiceRecord;

impl SledStore {
    /// Stores a service credential.
    ///
    /// # Errors
    /// Storage failures.
    pub fn put_service(&self, client_id: &str, service: &ServiceRecord) -> Result<(), StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let value = Stored::to_disk(service).map_err(corrupt("services"))?;
        engine.services.insert(client_id.as_bytes(), value)?;
        Ok(())
    }

    /// Reads a service credential.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn service(&self, client_id: &str) -> Result<Option<ServiceRecord>, StoreError> {
        let engine = self.engine()?;
        engine
            .services
            .get(client_id.as_bytes())?
            .map(|bytes| Stored::from_disk(&bytes).map_err(corrupt("services")))
            .transpose()
    }

    /// Every service credential, by client id.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn list_services(&self) -> Result<Vec<(String, ServiceRecord)>, StoreError> {
        let engine = self.engine()?;
        engine
            .services
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                Ok((
                    String::from_utf8_lossy(&key).into_owned(),
                    Stored::from_disk(&value).map_err(corrupt("services"))?,
                ))
            })
            .collect()
    }

    /// Removes a service credential; returns whether it existed.
    ///
    /// # Errors
    /// Storage failures.
    pub fn delete_service(&self, client_id: &str) -> Result<bool, StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        Ok(engine.services.remove(client_id.as_bytes())?.is_some())
    }
}
