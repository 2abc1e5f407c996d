//! Invitations into a tenant on PostgreSQL: one book per tenant (`invitation_books`,
//! tenant → the sled book record, every invitation of the tenant) and the index
//! `invitation_codes` (SHA-256 of a code → tenant). As on sled, a pending invitation holds
//! a seat: members plus pending invitations never pass `max_accounts`, counted from the
//! book under the tenant's row lock (see `tenants`), which every writer of a book takes
//! first. Ended invitations leave the book after `ENDED_RETENTION_SECS`, at the book's
//! next write or in [`PgStore::evict_expired_invitations`].

use super::tenants::lock_tenant;
use super::{database_error, PgStore};
use crate::domain::{InvitationId, TenantId};
use crate::store::disk::Stored;
use crate::store::{corrupt, InvitationBook, InvitationRecord, InvitationWriteError, StoreError};

/// A tenant's book (empty when it has none). Inside a transaction that means to write it,
/// read it under the tenant's row lock.
pub(crate) async fn read_book(
    client: &impl tokio_postgres::GenericClient,
    tenant: TenantId,
) -> Result<InvitationBook, StoreError> {
    match client
        .query_opt(
            "SELECT record FROM invitation_books WHERE tenant = $1",
            &[&&tenant.as_bytes()[..]],
        )
        .await
        .map_err(database_error)?
    {
        None => Ok(InvitationBook::default()),
        Some(row) => Stored::from_disk(row.get::<_, &[u8]>(0)).map_err(corrupt("invitations")),
    }
}

/// Writes a tenant's book inside a transaction; an empty book is removed.
pub(crate) async fn write_book(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: TenantId,
    book: &InvitationBook,
) -> Result<(), StoreError> {
    if book.invitations.is_empty() {
        tx.execute(
            "DELETE FROM invitation_books WHERE tenant = $1",
            &[&&tenant.as_bytes()[..]],
        )
        .await
        .map_err(database_error)?;
        return Ok(());
    }
    let record = Stored::to_disk(book).map_err(corrupt("invitations"))?;
    tx.execute(
        "INSERT INTO invitation_books (tenant, record) VALUES ($1, $2)
         ON CONFLICT (tenant) DO UPDATE SET record = EXCLUDED.record",
        &[&&tenant.as_bytes()[..], &record],
    )
    .await
    .map_err(database_error)?;
    Ok(())
}

/// Drops invitations ended more than `ENDED_RETENTION_SECS` ago from the book and their
/// codes from the index, inside a transaction. Returns how many went.
///
/// The book's own rule ([`InvitationBook::prune`]); this drops the codes as rows.
pub(crate) async fn tidy(
    tx: &deadpool_postgres::Transaction<'_>,
    book: &mut InvitationBook,
    now: u64,
) -> Result<usize, StoreError> {
    let dropped: Vec<Vec<u8>> = book
        .prune(now)
        .iter()
        .map(|digest| digest.to_vec())
        .collect();
    if !dropped.is_empty() {
        tx.execute(
            "DELETE FROM invitation_codes WHERE code_digest = ANY($1)",
            &[&dropped],
        )
        .await
        .map_err(database_error)?;
    }
    Ok(dropped.len())
}

impl PgStore {
    /// Creates an invitation into `tenant` if a seat is free: members plus pending
    /// invitations stay within `max_accounts`.
    ///
    /// # Errors
    /// `UnknownTenant`, `TenantFull`, `TooMany`, storage failures.
    pub async fn create_invitation(
        &self,
        tenant: TenantId,
        invitation: &InvitationRecord,
        now: u64,
    ) -> Result<(), InvitationWriteError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let record = lock_tenant(&tx, tenant)
            .await?
            .ok_or(InvitationWriteError::UnknownTenant)?;
        let mut book = read_book(&*tx, tenant).await?;
        tidy(&tx, &mut book, now).await?;
        book.issue(&record, invitation.clone(), now)?;
        tx.execute(
            "INSERT INTO invitation_codes (code_digest, tenant) VALUES ($1, $2)",
            &[&&invitation.code_digest[..], &&tenant.as_bytes()[..]],
        )
        .await
        .map_err(database_error)?;
        write_book(&tx, tenant, &book).await?;
        tx.commit().await.map_err(database_error)?;
        Ok(())
    }

    /// A tenant's invitations, oldest first, or `None` for an unknown tenant.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn invitations(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Vec<InvitationRecord>>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT b.record FROM tenants t
                 LEFT JOIN invitation_books b ON b.tenant = t.id WHERE t.id = $1",
                &[&&tenant.as_bytes()[..]],
            )
            .await
            .map_err(database_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let book = match row.get::<_, Option<&[u8]>>(0) {
            None => InvitationBook::default(),
            Some(bytes) => Stored::from_disk(bytes).map_err(corrupt("invitations"))?,
        };
        Ok(Some(book.invitations))
    }

    /// The tenant a code would admit into at `now`, if it names a pending invitation. A
    /// cheap check before a registration pays for hashing a password; the registration's
    /// own transaction decides.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn invitation_tenant(
        &self,
        code_digest: &[u8; 32],
        now: u64,
    ) -> Result<Option<TenantId>, StoreError> {
        let client = self.client().await?;
        let Some(row) = client
            .query_opt(
                "SELECT c.tenant, b.record FROM invitation_codes c
                 JOIN invitation_books b ON b.tenant = c.tenant WHERE c.code_digest = $1",
                &[&&code_digest[..]],
            )
            .await
            .map_err(database_error)?
        else {
            return Ok(None);
        };
        let Some(tenant) = TenantId::from_slice(row.get::<_, &[u8]>(0)) else {
            return Ok(None);
        };
        let book: InvitationBook =
            Stored::from_disk(row.get::<_, &[u8]>(1)).map_err(corrupt("invitations"))?;
        Ok(book.admits(code_digest, now).then_some(tenant))
    }

    /// Seats a tenant's pending invitations hold at `now`.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn pending_invitations(&self, tenant: TenantId, now: u64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(read_book(&**client, tenant).await?.pending(now))
    }

    /// Revokes an invitation: its code admits no one and its seat is free. Revoking one
    /// that has already ended (used, revoked, expired) changes nothing.
    ///
    /// # Errors
    /// `NotFound` for an unknown tenant or invitation, storage failures.
    pub async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: InvitationId,
        now: u64,
    ) -> Result<(), InvitationWriteError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        lock_tenant(&tx, tenant)
            .await?
            .ok_or(InvitationWriteError::NotFound)?;
        let mut book = read_book(&*tx, tenant).await?;
        tidy(&tx, &mut book, now).await?;
        if let Some(code_digest) = book.revoke(id, now)? {
            tx.execute(
                "DELETE FROM invitation_codes WHERE code_digest = $1",
                &[&&code_digest[..]],
            )
            .await
            .map_err(database_error)?;
        }
        write_book(&tx, tenant, &book).await?;
        tx.commit().await.map_err(database_error)?;
        Ok(())
    }

    /// Drops invitations ended more than `ENDED_RETENTION_SECS` before `now` from every
    /// book, and their codes from the index; returns how many left. Each book is tidied in
    /// a transaction of its own under its tenant's lock.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn evict_expired_invitations(&self, now: u64) -> Result<u64, StoreError> {
        let tenants: Vec<TenantId> = self
            .client()
            .await?
            .query("SELECT tenant FROM invitation_books", &[])
            .await
            .map_err(database_error)?
            .iter()
            .filter_map(|row| TenantId::from_slice(row.get::<_, &[u8]>(0)))
            .collect();
        let mut evicted = 0u64;
        let mut client = self.client().await?;
        for tenant in tenants {
            let tx = client.transaction().await.map_err(database_error)?;
            if lock_tenant(&tx, tenant).await?.is_none() {
                continue; // deleted meanwhile, its book with it
            }
            let mut book = read_book(&*tx, tenant).await?;
            let dropped = tidy(&tx, &mut book, now).await?;
            if dropped > 0 {
                write_book(&tx, tenant, &book).await?;
                tx.commit().await.map_err(database_error)?;
                evicted += dropped as u64;
            }
        }
        Ok(evicted)
    }
}
