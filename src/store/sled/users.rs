//! The `users` tree (user id → [`UserRecord`]) and its unique index `usernames`
//! (canonical username → user id), always written together in one transaction, with the
//! member count of the user's tenant (so `max_accounts` holds under concurrent
//! registrations: sled transactions are serialisable). A user joining a tenant is counted
//! against the seats its outstanding invitations hold too, and an invited user's
//! invitation is used up in the same transaction (see `invitations.rs`). The unique index
//! of addresses, `emails`, is written in the same transactions (see `mail.rs`), and a
//! deleted user's links and queued mails leave with it. Every write updates the mirror
//! after it commits.

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use super::disk::Stored;
use super::{
    codec, corrupt, invitations, mail, Change, Engine, SledStore, StoreError, TenantRecord,
};
use crate::domain::{UserId, Username};
use crate::store::mirror::UserStamp;
use crate::store::{ClaimsChange, UserRecord, UserWriteError};

type Abort = ConflictableTransactionError<UserWriteError>;

fn abort(err: UserWriteError) -> Abort {
    ConflictableTransactionError::Abort(err)
}

/// How a user comes into a tenant.
#[derive(Clone, Copy)]
enum Entry<'a> {
    /// Placed by an admin (or by the command line).
    Placed,
    /// With the invitation whose code has this digest; it is used up in the same write.
    Invited(&'a [u8; 32], UserId),
}

fn decode_tenant(bytes: &[u8]) -> Result<TenantRecord, Abort> {
    Stored::from_disk(bytes).map_err(|source| {
        abort(
            StoreError::Corrupt {
                tree: "tenants",
                source,
            }
            .into(),
        )
    })
}

fn write_tenant(
    tenants: &TransactionalTree,
    tenant: &[u8; 16],
    record: &TenantRecord,
) -> Result<(), Abort> {
    let value = Stored::to_disk(record).map_err(|source| {
        abort(
            StoreError::Corrupt {
                tree: "tenants",
                source,
            }
            .into(),
        )
    })?;
    tenants.insert(&tenant[..], value)?;
    Ok(())
}

/// Moves one member out of a tenant inside a transaction.
fn count_member_out(tenants: &TransactionalTree, tenant: &[u8; 16]) -> Result<(), Abort> {
    let bytes = tenants
        .get(&tenant[..])?
        .ok_or_else(|| abort(UserWriteError::UnknownTenant))?;
    let mut record = decode_tenant(&bytes)?;
    record.count_out();
    write_tenant(tenants, tenant, &record)
}

/// Moves one member into a tenant inside a transaction, refusing to pass `max_accounts`:
/// members plus the seats outstanding invitations hold at `now` stay within it. An invited
/// user's invitation is used up here, turning its seat into the member's. Returns the
/// tenant's version.
fn count_member_in(
    tenants: &TransactionalTree,
    invitations: &TransactionalTree,
    codes: &TransactionalTree,
    tenant: &[u8; 16],
    entry: Entry<'_>,
    now: u64,
) -> Result<u64, Abort> {
    let mut book = invitations::read_book(invitations, tenant)?;
    if let Entry::Invited(code_digest, user) = entry {
        invitations::tidy(codes, &mut book, now)?;
        if !invitations::redeem(codes, &mut book, tenant, code_digest, user, now)? {
            return Err(abort(UserWriteError::InvitationInvalid));
        }
        invitations::write_book(invitations, tenant, &book)?;
    }
    let bytes = tenants
        .get(&tenant[..])?
        .ok_or_else(|| abort(UserWriteError::UnknownTenant))?;
    let mut record = decode_tenant(&bytes)?;
    record
        .admit(book.pending(now))
        .map_err(|full| abort(full.into()))?;
    write_tenant(tenants, tenant, &record)?;
    Ok(record.version)
}

impl SledStore {
    /// Creates a user, claims its username and counts it into its tenant, atomically. With
    /// `invitation` (the digest of a code), the invitation must be pending at `now` and
    /// belong to the user's tenant; it is used up in the same write, so a code admits one
    /// account however many registrations race with it.
    ///
    /// # Errors
    /// `UsernameTaken`, `UnknownTenant`, `TenantFull`, `InvitationInvalid`, storage failures.
    pub fn create_user(
        &self,
        id: UserId,
        user: &UserRecord,
        invitation: Option<&[u8; 32]>,
        now: u64,
    ) -> Result<(), UserWriteError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let value = Stored::to_disk(user).map_err(corrupt("users"))?;
        let entry = match invitation {
            Some(code_digest) => Entry::Invited(code_digest, id),
            None => Entry::Placed,
        };
        if matches!(entry, Entry::Invited(..)) && user.tenant.is_none() {
            return Err(UserWriteError::InvitationInvalid);
        }
        let appending = engine.changes.begin();
        let (tenant_version, logged) = (
            &engine.users,
            &engine.usernames,
            &engine.tenants,
            &engine.invitations,
            &engine.invitation_codes,
            engine.changes.tree(),
            &engine.emails,
        )
            .transaction(
                |(users, usernames, tenants, invitations, codes, changes, emails): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    if usernames.get(user.username.as_bytes())?.is_some() {
                        return Err(abort(UserWriteError::UsernameTaken));
                    }
                    if let Some(key) = user.email_key() {
                        mail::claim_email(emails, key, id)?;
                    }
                    let version = match &user.tenant {
                        Some(tenant) => Some((
                            *tenant.as_bytes(),
                            count_member_in(
                                tenants,
                                invitations,
                                codes,
                                tenant.as_bytes(),
                                entry,
                                now,
                            )?,
                        )),
                        None => None,
                    };
                    usernames.insert(user.username.as_bytes(), &id.as_bytes()[..])?;
                    users.insert(&id.as_bytes()[..], value.clone())?;
                    let logged = appending.write(changes, now, &[user.account_change(id)])?;
                    Ok((version, logged))
                },
            )?;
        let _unfinished = appending.committed(logged);
        engine.mirror.set_user(*id.as_bytes(), user.stamp());
        if let Some((tenant, version)) = tenant_version {
            engine.mirror.set_tenant_version(tenant, version);
        }
        Ok(())
    }

    /// Reads a user.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let engine = self.engine()?;
        engine
            .users
            .get(id.as_bytes())?
            .map(|bytes| Stored::from_disk(&bytes).map_err(corrupt("users")))
            .transpose()
    }

    /// What verification needs of a user, from the in-memory mirror.
    ///
    /// # Errors
    /// The store is being reopened.
    pub fn user_stamp(&self, id: UserId) -> Result<Option<UserStamp>, StoreError> {
        Ok(self.engine()?.mirror.user(id.as_bytes()))
    }

    /// Looks a user up by canonical username.
    ///
    /// # Errors
    /// Storage failures and damaged index entries.
    pub fn user_id_by_name(&self, name: &Username) -> Result<Option<UserId>, StoreError> {
        let engine = self.engine()?;
        match engine.usernames.get(name.as_str().as_bytes())? {
            None => Ok(None),
            Some(bytes) => UserId::from_slice(&bytes)
                .map(Some)
                .ok_or(StoreError::Corrupt {
                    tree: "usernames",
                    source: codec::CodecError::Decode("user id is not 16 bytes".into()),
                }),
        }
    }

    /// Changes a user's claims or standing, bumping its claims version (`uv`) when
    /// anything changed; a change of tenant is counted out of the old tenant and into the
    /// new one in the same transaction (the new one's outstanding invitations at `now`
    /// hold their seats). Returns the new record.
    ///
    /// # Errors
    /// `NotFound`, `UnknownTenant`, `TenantFull`, storage failures.
    pub fn change_user_claims(
        &self,
        id: UserId,
        change: &ClaimsChange,
        now: u64,
    ) -> Result<UserRecord, UserWriteError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let _turn = self.user_locks.lock(id.as_bytes());
        let appending = engine.changes.begin();
        let (user, tenant_version, logged) = (
            &engine.users,
            &engine.tenants,
            &engine.invitations,
            &engine.invitation_codes,
            engine.changes.tree(),
            &engine.emails,
        )
            .transaction(
                |(users, tenants, invitations, codes, changes, emails): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    let bytes = users
                        .get(&id.as_bytes()[..])?
                        .ok_or_else(|| abort(UserWriteError::NotFound))?;
                    let mut user: UserRecord = Stored::from_disk(&bytes).map_err(|source| {
                        abort(
                            StoreError::Corrupt {
                                tree: "users",
                                source,
                            }
                            .into(),
                        )
                    })?;
                    let applied = user.apply_claims(id, change, now);
                    if let Some((old_email, new_email)) = &applied.email_moved {
                        if let Some(new) = new_email {
                            mail::claim_email(emails, new, id)?;
                        }
                        if let Some(old) = old_email {
                            emails.remove(old.as_str().as_bytes())?;
                        }
                    }
                    let mut version = None;
                    if let Some((old_tenant, new_tenant)) = applied.moved {
                        if let Some(old) = &old_tenant {
                            count_member_out(tenants, old.as_bytes())?;
                        }
                        if let Some(new) = &new_tenant {
                            let counted = count_member_in(
                                tenants,
                                invitations,
                                codes,
                                new.as_bytes(),
                                Entry::Placed,
                                now,
                            )?;
                            version = Some((*new.as_bytes(), counted));
                        }
                    }
                    let value = Stored::to_disk(&user).map_err(|source| {
                        abort(
                            StoreError::Corrupt {
                                tree: "users",
                                source,
                            }
                            .into(),
                        )
                    })?;
                    users.insert(&id.as_bytes()[..], value)?;
                    let logged = if applied.log.is_empty() {
                        0
                    } else {
                        appending.write(changes, now, &applied.log)?
                    };
                    Ok((user, version, logged))
                },
            )?;
        let _unfinished = appending.committed(logged);
        engine.mirror.set_user(*id.as_bytes(), user.stamp());
        if let Some((tenant, version)) = tenant_version {
            engine.mirror.set_tenant_version(tenant, version);
        }
        Ok(user)
    }

    /// Removes a user, frees its username and counts it out of its tenant, atomically.
    /// Returns the removed record.
    ///
    /// # Errors
    /// `NotFound`, storage failures.
    pub fn delete_user(&self, id: UserId) -> Result<UserRecord, UserWriteError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let _turn = self.user_locks.lock(id.as_bytes());
        let appending = engine.changes.begin();
        let user = (
            &engine.users,
            &engine.usernames,
            &engine.tenants,
            engine.changes.tree(),
            &engine.emails,
            &engine.mail_queue,
            &engine.mail_index,
            &engine.mail_links,
        )
            .transaction(
                |(users, usernames, tenants, changes, emails, queue, index, links): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    let bytes = users
                        .remove(&id.as_bytes()[..])?
                        .ok_or_else(|| abort(UserWriteError::NotFound))?;
                    let user: UserRecord = Stored::from_disk(&bytes).map_err(|source| {
                        abort(
                            StoreError::Corrupt {
                                tree: "users",
                                source,
                            }
                            .into(),
                        )
                    })?;
                    usernames.remove(user.username.as_bytes())?;
                    if let Some(key) = user.email_key() {
                        emails.remove(key.as_str().as_bytes())?;
                    }
                    mail::drop_user_mail::<UserWriteError>(queue, index, links, id)?;
                    if let Some(tenant) = &user.tenant {
                        match count_member_out(tenants, tenant.as_bytes()) {
                            Ok(())
                            | Err(ConflictableTransactionError::Abort(
                                UserWriteError::UnknownTenant,
                            )) => {}
                            Err(err) => return Err(err),
                        }
                    }
                    appending.write(
                        changes,
                        self.clock.now(),
                        &[Change::UserDeleted { user: id }],
                    )?;
                    Ok(user)
                },
            )?;
        let _unfinished = appending.committed(1);
        engine.mirror.remove_user(id.as_bytes());
        Ok(user)
    }

    /// Up to `limit` users created after `after` (ids are time-ordered), oldest first.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, UserRecord)>, StoreError> {
        let engine = self.engine()?;
        let range = match after {
            Some(after) => engine.users.range((
                std::ops::Bound::Excluded(after.as_bytes().to_vec()),
                std::ops::Bound::Unbounded,
            )),
            None => engine.users.iter(),
        };
        range
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                let id = UserId::from_slice(&key).ok_or(StoreError::Corrupt {
                    tree: "users",
                    source: codec::CodecError::Decode("user id is not 16 bytes".into()),
                })?;
                Ok((id, Stored::from_disk(&value).map_err(corrupt("users"))?))
            })
            .collect()
    }
}

impl Engine {
    pub(crate) fn load_user_mirror(&self) -> Result<(), StoreError> {
        for entry in self.users.iter() {
            let (key, value) = entry?;
            let user: UserRecord = Stored::from_disk(&value).map_err(corrupt("users"))?;
            if let Some(id) = UserId::from_slice(&key) {
                self.mirror.set_user(*id.as_bytes(), user.stamp());
            }
        }
        Ok(())
    }
}
