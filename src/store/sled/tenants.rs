//! The `tenants` tree: tenant id → [`TenantRecord`]. A tenant-wide change is one write
//! here, bumping `version` (`tv`), never one per member. `members` is kept by the user
//! writes (see `users.rs`) in the same transactions that move users. Deleting a tenant
//! deletes its invitations with it.

use serde_json::{Map, Value};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use super::disk::Stored;
use super::{corrupt, invitations, Change, Engine, SledStore, StoreError};
use crate::domain::TenantId;

/// A tenant as the store hands it out (its on-disk shapes are in `disk::tenant`).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub name: String,
    pub plan: String,
    pub max_accounts: Option<u64>,
    /// The `attrs` object, parsed once when the record is read.
    pub attrs: Map<String, Value>,
    /// `tv`: bumped by every change to the tenant.
    pub version: u64,
    /// Users in the tenant now.
    pub members: u64,
    pub created_at: u64,
    pub updated_at: u64,
}

/// A change to a tenant; `None` leaves a field as it is.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TenantChange {
    pub name: Option<String>,
    pub plan: Option<String>,
    /// `Some(None)` removes the limit.
    pub max_accounts: Option<Option<u64>>,
    pub attrs: Option<Map<String, Value>>,
}

/// Why a tenant write was refused.
#[derive(Debug, thiserror::Error)]
pub enum TenantWriteError {
    #[error("no such tenant")]
    NotFound,
    #[error("tenant still has members")]
    NotEmpty,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::transaction::TransactionError<TenantWriteError>> for TenantWriteError {
    fn from(err: sled::transaction::TransactionError<TenantWriteError>) -> Self {
        super::settle(err)
    }
}

fn abort(err: TenantWriteError) -> ConflictableTransactionError<TenantWriteError> {
    ConflictableTransactionError::Abort(err)
}

impl SledStore {
    /// Reads a tenant.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn tenant(&self, id: TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let engine = self.engine()?;
        engine
            .tenants
            .get(id.as_bytes())?
            .map(|bytes| Stored::from_disk(&bytes).map_err(corrupt("tenants")))
            .transpose()
    }

    /// A tenant's version, from the in-memory mirror.
    ///
    /// # Errors
    /// The store is being reopened.
    pub fn tenant_version(&self, id: TenantId) -> Result<Option<u64>, StoreError> {
        Ok(self.engine()?.mirror.tenant_version(id.as_bytes()))
    }

    /// Every tenant, oldest first.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn list_tenants(&self) -> Result<Vec<(TenantId, TenantRecord)>, StoreError> {
        let engine = self.engine()?;
        engine
            .tenants
            .iter()
            .filter_map(|entry| match entry {
                Ok((key, value)) => TenantId::from_slice(&key)
                    .map(|id| Ok((id, Stored::from_disk(&value).map_err(corrupt("tenants"))?))),
                Err(err) => Some(Err(err.into())),
            })
            .collect()
    }

    /// Creates a tenant.
    ///
    /// # Errors
    /// Storage failures.
    pub fn create_tenant(&self, id: TenantId, tenant: &TenantRecord) -> Result<(), StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let value = Stored::to_disk(tenant).map_err(corrupt("tenants"))?;
        let appending = engine.changes.begin();
        (&engine.tenants, engine.changes.tree())
            .transaction(|(tenants, changes)| {
                tenants.insert(&id.as_bytes()[..], value.clone())?;
                appending.write(
                    changes,
                    tenant.created_at,
                    &[Change::Tenant {
                        tenant: id,
                        version: tenant.version,
                    }],
                )?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(super::settle::<StoreError>)?;
        let _unfinished = appending.committed(1);
        engine
            .mirror
            .set_tenant_version(*id.as_bytes(), tenant.version);
        Ok(())
    }

    /// Changes a tenant and bumps its version (`tv`), so every member's token turns
    /// stale, atomically (member counts written concurrently by registrations are not
    /// lost). Returns the new record.
    ///
    /// # Errors
    /// `NotFound`, storage failures.
    pub fn change_tenant(
        &self,
        id: TenantId,
        change: &TenantChange,
        now: u64,
    ) -> Result<TenantRecord, TenantWriteError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let appending = engine.changes.begin();
        let tenant =
            (&engine.tenants, engine.changes.tree()).transaction(|(tenants, changes)| {
                let bytes = tenants
                    .get(&id.as_bytes()[..])?
                    .ok_or_else(|| abort(TenantWriteError::NotFound))?;
                let mut tenant: TenantRecord = Stored::from_disk(&bytes).map_err(|source| {
                    abort(
                        StoreError::Corrupt {
                            tree: "tenants",
                            source,
                        }
                        .into(),
                    )
                })?;
                if let Some(name) = &change.name {
                    tenant.name.clone_from(name);
                }
                if let Some(plan) = &change.plan {
                    tenant.plan.clone_from(plan);
                }
                if let Some(max) = change.max_accounts {
                    tenant.max_accounts = max;
                }
                if let Some(attrs) = &change.attrs {
                    tenant.attrs.clone_from(attrs);
                }
                tenant.version += 1;
                tenant.updated_at = now;
                let value = Stored::to_disk(&tenant).map_err(|source| {
                    abort(
                        StoreError::Corrupt {
                            tree: "tenants",
                            source,
                        }
                        .into(),
                    )
                })?;
                tenants.insert(&id.as_bytes()[..], value)?;
                let version = tenant.version;
                appending.write(
                    changes,
                    now,
                    &[Change::Tenant {
                        tenant: id,
                        version,
                    }],
                )?;
                Ok(tenant)
            })?;
        let _unfinished = appending.committed(1);
        engine
            .mirror
            .set_tenant_version(*id.as_bytes(), tenant.version);
        Ok(tenant)
    }

    /// Removes a tenant that has no members, with its invitations (their codes admit no
    /// one after).
    ///
    /// # Errors
    /// `NotFound`, `NotEmpty`, storage failures.
    pub fn delete_tenant(&self, id: TenantId) -> Result<(), TenantWriteError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let appending = engine.changes.begin();
        (
            &engine.tenants,
            &engine.invitations,
            &engine.invitation_codes,
            engine.changes.tree(),
        )
            .transaction(
                |(tenants, invitations, codes, changes): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    let bytes = tenants
                        .get(&id.as_bytes()[..])?
                        .ok_or_else(|| abort(TenantWriteError::NotFound))?;
                    let tenant: TenantRecord = Stored::from_disk(&bytes).map_err(|source| {
                        abort(
                            StoreError::Corrupt {
                                tree: "tenants",
                                source,
                            }
                            .into(),
                        )
                    })?;
                    if tenant.members > 0 {
                        return Err(abort(TenantWriteError::NotEmpty));
                    }
                    let book = invitations::read_book(invitations, id.as_bytes())?;
                    for invitation in &book.invitations {
                        codes.remove(&invitation.code_digest[..])?;
                    }
                    invitations.remove(&id.as_bytes()[..])?;
                    tenants.remove(&id.as_bytes()[..])?;
                    let change = [Change::TenantDeleted { tenant: id }];
                    appending.write(changes, self.clock.now(), &change)?;
                    Ok(())
                },
            )?;
        let _unfinished = appending.committed(1);
        engine.mirror.remove_tenant(id.as_bytes());
        Ok(())
    }
}

impl Engine {
    pub(crate) fn load_tenant_mirror(&self) -> Result<(), StoreError> {
        for entry in self.tenants.iter() {
            let (key, value) = entry?;
            let tenant: TenantRecord = Stored::from_disk(&value).map_err(corrupt("tenants"))?;
            if let Some(id) = TenantId::from_slice(&key) {
                self.mirror
                    .set_tenant_version(*id.as_bytes(), tenant.version);
            }
        }
        Ok(())
    }
}
