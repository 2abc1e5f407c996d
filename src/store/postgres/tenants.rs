//! Tenants on PostgreSQL: the `tenants` table, id → record. The tenant's row is the lock
//! behind every seat count: whatever changes its members or its invitations (a
//! registration into it, a user moved in or out, an invitation written) first takes
//! `SELECT … FOR UPDATE` on it, so `max_accounts` holds however many nodes register at
//! once. A change to the tenant bumps its version (`tv`) and logs it in the same
//! transaction; deleting it logs that too, and its invitation book and codes go with it
//! (`ON DELETE CASCADE`).

use super::{database_error, log, PgStore};
use crate::domain::TenantId;
use crate::store::disk::Stored;
use crate::store::{corrupt, Change, StoreError, TenantChange, TenantRecord, TenantWriteError};

/// Reads a tenant and locks its row until the transaction ends.
pub(crate) async fn lock_tenant(
    tx: &deadpool_postgres::Transaction<'_>,
    id: TenantId,
) -> Result<Option<TenantRecord>, StoreError> {
    let statement = tx
        .prepare_cached("SELECT record FROM tenants WHERE id = $1 FOR UPDATE")
        .await
        .map_err(database_error)?;
    tx.query_opt(&statement, &[&&id.as_bytes()[..]])
        .await
        .map_err(database_error)?
        .map(|row| Stored::from_disk(row.get::<_, &[u8]>(0)).map_err(corrupt("tenants")))
        .transpose()
}

/// Writes a tenant's record inside a transaction.
pub(crate) async fn write_tenant(
    tx: &deadpool_postgres::Transaction<'_>,
    id: TenantId,
    tenant: &TenantRecord,
) -> Result<(), StoreError> {
    let record = Stored::to_disk(tenant).map_err(corrupt("tenants"))?;
    let statement = tx
        .prepare_cached("UPDATE tenants SET record = $2 WHERE id = $1")
        .await
        .map_err(database_error)?;
    tx.execute(&statement, &[&&id.as_bytes()[..], &record])
        .await
        .map_err(database_error)?;
    Ok(())
}

impl PgStore {
    /// Reads a tenant.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn tenant(&self, id: TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT record FROM tenants WHERE id = $1")
            .await
            .map_err(database_error)?;
        client
            .query_opt(&statement, &[&&id.as_bytes()[..]])
            .await
            .map_err(database_error)?
            .map(|row| Stored::from_disk(row.get::<_, &[u8]>(0)).map_err(corrupt("tenants")))
            .transpose()
    }

    /// Every tenant, oldest first (ids are time-ordered).
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn list_tenants(&self) -> Result<Vec<(TenantId, TenantRecord)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id, record FROM tenants ORDER BY id", &[])
            .await
            .map_err(database_error)?;
        let mut tenants = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(id) = TenantId::from_slice(row.get::<_, &[u8]>(0)) else {
                continue;
            };
            tenants.push((
                id,
                Stored::from_disk(row.get::<_, &[u8]>(1)).map_err(corrupt("tenants"))?,
            ));
        }
        Ok(tenants)
    }

    /// Creates a tenant (replacing one under the same id, as the sled store does).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn create_tenant(
        &self,
        id: TenantId,
        tenant: &TenantRecord,
    ) -> Result<(), StoreError> {
        let record = Stored::to_disk(tenant).map_err(corrupt("tenants"))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        tx.execute(
            "INSERT INTO tenants (id, record) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
            &[&&id.as_bytes()[..], &record],
        )
        .await
        .map_err(database_error)?;
        // Every node needs the new tenant's version to mint and check its members' `tv`.
        let logged = [tenant.version_change(id)];
        let ids = log::append(&tx, self.clock.now(), &logged).await?;
        tx.commit().await.map_err(database_error)?;
        self.note_appended(&ids);
        Ok(())
    }

    /// Changes a tenant and bumps its version (`tv`), so every member's token turns
    /// stale, and logs the new version, in one transaction under the tenant's row lock
    /// (member counts written meanwhile by registrations on any node are not lost).
    /// Returns the new record.
    ///
    /// # Errors
    /// `NotFound`, storage failures.
    pub async fn change_tenant(
        &self,
        id: TenantId,
        change: &TenantChange,
        now: u64,
    ) -> Result<TenantRecord, TenantWriteError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let mut tenant = lock_tenant(&tx, id)
            .await?
            .ok_or(TenantWriteError::NotFound)?;
        let logged = tenant.apply(id, change, now);
        write_tenant(&tx, id, &tenant).await?;
        let ids = log::append(&tx, now, &[logged]).await?;
        tx.commit().await.map_err(database_error)?;
        self.note_appended(&ids);
        Ok(tenant)
    }

    /// Removes a tenant that has no members, with its invitations (their codes admit no
    /// one after), and logs it.
    ///
    /// # Errors
    /// `NotFound`, `NotEmpty`, storage failures.
    pub async fn delete_tenant(&self, id: TenantId) -> Result<(), TenantWriteError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let tenant = lock_tenant(&tx, id)
            .await?
            .ok_or(TenantWriteError::NotFound)?;
        tenant.may_delete()?;
        tx.execute("DELETE FROM tenants WHERE id = $1", &[&&id.as_bytes()[..]])
            .await
            .map_err(database_error)?;
        let logged = [Change::TenantDeleted { tenant: id }];
        let ids = log::append(&tx, self.clock.now(), &logged).await?;
        tx.commit().await.map_err(database_error)?;
        self.note_appended(&ids);
        Ok(())
    }
}
