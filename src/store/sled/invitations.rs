//! Invitations into a tenant: the `invitations` tree (tenant id → [`InvitationBook`], every
//! invitation of that tenant) and its index `invitation_codes` (SHA-256 of a code → tenant
//! id). Only the digest of a code is stored: codes are 256 random bits, shown once.
//!
//! An outstanding invitation (not used, not revoked, not expired) holds a seat of the
//! tenant: members plus outstanding invitations never pass `max_accounts`. Seats are
//! counted from the book inside the same sled transaction that creates an invitation or
//! moves a user into the tenant (`users.rs`): sled transactions cannot scan, so a tenant's
//! invitations live in one record that a transaction reads whole. An expired invitation
//! frees its seat the moment it expires, without any write. Redeeming marks the invitation
//! used in the transaction that creates the user, so a code admits one account however many
//! registrations race with it.
//!
//! Ended invitations (used, revoked, expired) stay listed for [`ENDED_RETENTION_SECS`],
//! then leave the book (and their code leaves the index) at the next write to the book, or
//! in [`SledStore::evict_expired_invitations`]. A book holds at most [`MAX_PER_TENANT`]
//! invitations, which bounds the record every registration into the tenant reads.

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use super::disk::Stored;
use super::{codec, corrupt, SledStore, StoreError, TenantRecord};
use crate::domain::{InvitationId, TenantId, UserId};
use crate::store::{InvitationBook, InvitationRecord, InvitationWriteError};

fn abort<E>(err: E) -> ConflictableTransactionError<E> {
    ConflictableTransactionError::Abort(err)
}

fn corrupt_in<E: From<StoreError>>(
    tree: &'static str,
) -> impl Fn(codec::CodecError) -> ConflictableTransactionError<E> {
    move |source| abort(E::from(StoreError::Corrupt { tree, source }))
}

/// Reads a tenant inside a transaction.
pub(super) fn read_tenant<E: From<StoreError>>(
    tenants: &TransactionalTree,
    tenant: &[u8; 16],
) -> Result<Option<TenantRecord>, ConflictableTransactionError<E>> {
    tenants
        .get(&tenant[..])?
        .map(|bytes| Stored::from_disk(&bytes).map_err(corrupt_in("tenants")))
        .transpose()
}

/// Reads a tenant's book inside a transaction (empty when it has none).
pub(super) fn read_book<E: From<StoreError>>(
    invitations: &TransactionalTree,
    tenant: &[u8; 16],
) -> Result<InvitationBook, ConflictableTransactionError<E>> {
    match invitations.get(&tenant[..])? {
        None => Ok(InvitationBook::default()),
        Some(bytes) => Stored::from_disk(&bytes).map_err(corrupt_in("invitations")),
    }
}

/// Prunes a tenant's book inside a transaction, removing the codes of dropped invitations
/// from the index.
pub(super) fn tidy<E: From<StoreError>>(
    codes: &TransactionalTree,
    book: &mut InvitationBook,
    now: u64,
) -> Result<(), ConflictableTransactionError<E>> {
    for digest in book.prune(now) {
        codes.remove(&digest[..])?;
    }
    Ok(())
}

/// Writes a tenant's book inside a transaction; an empty book is removed.
pub(super) fn write_book<E: From<StoreError>>(
    invitations: &TransactionalTree,
    tenant: &[u8; 16],
    book: &InvitationBook,
) -> Result<(), ConflictableTransactionError<E>> {
    if book.invitations.is_empty() {
        invitations.remove(&tenant[..])?;
    } else {
        let value = Stored::to_disk(book).map_err(corrupt_in("invitations"))?;
        invitations.insert(&tenant[..], value)?;
    }
    Ok(())
}

/// Marks the pending invitation with this code, in this tenant, used by `user`, inside a
/// transaction. Returns `false` (and changes nothing) when the code names no pending
/// invitation of the tenant: unknown, used, revoked or expired alike.
pub(super) fn redeem<E: From<StoreError>>(
    codes: &TransactionalTree,
    book: &mut InvitationBook,
    tenant: &[u8; 16],
    code_digest: &[u8; 32],
    user: UserId,
    now: u64,
) -> Result<bool, ConflictableTransactionError<E>> {
    match codes.get(&code_digest[..])? {
        Some(owner) if owner.as_ref() == &tenant[..] => {}
        _ => return Ok(false),
    }
    if !book.redeem(code_digest, user, now) {
        return Ok(false);
    }
    codes.remove(&code_digest[..])?;
    Ok(true)
}

impl SledStore {
    /// Creates an invitation into `tenant` if a seat is free: members plus outstanding
    /// invitations stay within `max_accounts`.
    ///
    /// # Errors
    /// `UnknownTenant`, `TenantFull`, `TooMany`, storage failures.
    pub fn create_invitation(
        &self,
        tenant: TenantId,
        invitation: &InvitationRecord,
        now: u64,
    ) -> Result<(), InvitationWriteError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let key = *tenant.as_bytes();
        (
            &engine.tenants,
            &engine.invitations,
            &engine.invitation_codes,
        )
            .transaction(
                |(tenants, invitations, codes): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    let record = read_tenant(tenants, &key)?
                        .ok_or_else(|| abort(InvitationWriteError::UnknownTenant))?;
                    let mut book = read_book(invitations, &key)?;
                    tidy(codes, &mut book, now)?;
                    book.issue(&record, invitation.clone(), now)
                        .map_err(abort)?;
                    codes.insert(&invitation.code_digest[..], &key[..])?;
                    write_book(invitations, &key, &book)
                },
            )?;
        Ok(())
    }

    /// A tenant's invitations, oldest first, or `None` for an unknown tenant.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn invitations(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Vec<InvitationRecord>>, StoreError> {
        let engine = self.engine()?;
        if engine.tenants.get(tenant.as_bytes())?.is_none() {
            return Ok(None);
        }
        let book: InvitationBook = match engine.invitations.get(tenant.as_bytes())? {
            None => InvitationBook::default(),
            Some(bytes) => Stored::from_disk(&bytes).map_err(corrupt("invitations"))?,
        };
        Ok(Some(book.invitations))
    }

    /// The tenant a code would admit into at `now`, if it names a pending invitation. A
    /// cheap check before a registration pays for hashing a password; the registration's
    /// own transaction decides.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn invitation_tenant(
        &self,
        code_digest: &[u8; 32],
        now: u64,
    ) -> Result<Option<TenantId>, StoreError> {
        let engine = self.engine()?;
        let Some(tenant) = engine
            .invitation_codes
            .get(code_digest)?
            .and_then(|bytes| TenantId::from_slice(&bytes))
        else {
            return Ok(None);
        };
        let Some(bytes) = engine.invitations.get(tenant.as_bytes())? else {
            return Ok(None);
        };
        let book: InvitationBook = Stored::from_disk(&bytes).map_err(corrupt("invitations"))?;
        Ok(book.admits(code_digest, now).then_some(tenant))
    }

    /// Seats a tenant's outstanding invitations hold at `now`.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn pending_invitations(&self, tenant: TenantId, now: u64) -> Result<u64, StoreError> {
        let engine = self.engine()?;
        match engine.invitations.get(tenant.as_bytes())? {
            None => Ok(0),
            Some(bytes) => {
                let book: InvitationBook =
                    Stored::from_disk(&bytes).map_err(corrupt("invitations"))?;
                Ok(book.pending(now))
            }
        }
    }

    /// Revokes an invitation: its code admits no one and its seat is free. Revoking one
    /// that has already ended (used, revoked, expired) changes nothing.
    ///
    /// # Errors
    /// `NotFound` for an unknown tenant or invitation, storage failures.
    pub fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: InvitationId,
        now: u64,
    ) -> Result<(), InvitationWriteError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let key = *tenant.as_bytes();
        (&engine.invitations, &engine.invitation_codes).transaction(
            |(invitations, codes): &(TransactionalTree, TransactionalTree)| {
                let mut book: InvitationBook = read_book(invitations, &key)?;
                tidy(codes, &mut book, now)?;
                if let Some(code_digest) = book.revoke(id, now).map_err(abort)? {
                    codes.remove(&code_digest[..])?;
                }
                write_book(invitations, &key, &book)
            },
        )?;
        Ok(())
    }

    /// Drops invitations ended more than [`ENDED_RETENTION_SECS`] before `now` from every
    /// book, and their codes from the index. For the eviction pass: books are pruned at
    /// each write anyway, this reaches tenants nobody writes to. Returns how many left.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn evict_expired_invitations(&self, now: u64) -> Result<u64, StoreError> {
        let engine = self.engine()?;
        let mut evicted = 0u64;
        for entry in engine.invitations.iter() {
            let (key, value) = entry?;
            let mut book: InvitationBook =
                Stored::from_disk(&value).map_err(corrupt("invitations"))?;
            if book.prune(now).is_empty() {
                continue;
            }
            let Some(tenant) = TenantId::from_slice(&key) else {
                continue;
            };
            let key = *tenant.as_bytes();
            let _gate = self.writing();
            let dropped = (&engine.invitations, &engine.invitation_codes).transaction(
                |(invitations, codes): &(TransactionalTree, TransactionalTree)| {
                    let mut book: InvitationBook = read_book(invitations, &key)?;
                    let before = book.invitations.len();
                    tidy::<StoreError>(codes, &mut book, now)?;
                    write_book::<StoreError>(invitations, &key, &book)?;
                    Ok(before - book.invitations.len())
                },
            )?;
            evicted += u64::try_from(dropped).unwrap_or(u64::MAX);
        }
        Ok(evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation(expires_at: u64) -> InvitationRecord {
        InvitationRecord::new([7; 32], 100, expires_at)
    }

    #[test]
    fn debug_shows_no_digest() {
        let text = format!("{:?}", invitation(200));
        assert!(!text.contains("code_digest"), "{text}");
    }

    #[test]
    fn a_book_round_trips_through_the_codec() {
        let book = InvitationBook {
            invitations: vec![invitation(200)],
        };
        let bytes = Stored::to_disk(&book).unwrap();
        assert_eq!(InvitationBook::from_disk(&bytes).unwrap(), book);
    }
}
