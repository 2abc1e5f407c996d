//! The `tenants` tree: tenant id → [`TenantRecord`]. A tenant-wide change is one write
//! here, bumping `version` (`tv`), never one per member.

use serde::{Deserialize, Serialize};

use super::{codec, corrupt, Store, StoreError};
use crate::domain::TenantId;

/// A tenant as stored. On-disk type: add fields only at the end.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantRecord {
    pub name: String,
    pub plan: String,
    pub max_accounts: Option<u64>,
    /// The `attrs` object as JSON text.
    pub attrs: String,
    /// `tv`: bumped by every change to the tenant.
    pub version: u64,
    pub created_at: u64,
    pub updated_at: u64,
}

impl Store {
    /// Reads a tenant.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn tenant(&self, id: TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.tenants
            .get(id.as_bytes())?
            .map(|bytes| codec::decode(&bytes).map_err(corrupt("tenants")))
            .transpose()
    }

    /// Writes a tenant.
    ///
    /// # Errors
    /// Storage failures.
    pub fn put_tenant(&self, id: TenantId, tenant: &TenantRecord) -> Result<(), StoreError> {
        let value = codec::encode(tenant).map_err(corrupt("tenants"))?;
        self.tenants.insert(id.as_bytes(), value)?;
        Ok(())
    }
}
