//! The `tenants` tree: tenant id → [`TenantRecord`]. A tenant-wide change is one write
//! here, bumping `version` (`tv`), never one per member. `members` is kept by the user
//! writes (see `users.rs`) in the same transactions that move users. Deleting a tenant
//! deletes its invitations with it.

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use super::disk::Stored;
use super::{corrupt, invitations, Change, Engine, SledStore, StoreError};
use crate::domain::TenantId;
use crate::store::{TenantChange, TenantRecord, TenantWriteError};

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
                appending.write(changes, tenant.created_at, &[tenant.version_change(id)])?;
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
                let logged = tenant.apply(id, change, now);
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
                appending.write(changes, now, &[logged])?;
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
                    tenant.may_delete().map_err(abort)?;
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
