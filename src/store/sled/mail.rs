//! Email addresses and the mail queue on sled (issue 21).
//!
//! - `emails` (address key → user id): the unique index of addresses, written in the
//!   transactions that create, change and delete users (`users.rs`).
//! - `mail_queue` (mail id → [`QueuedMail`]): every mail until its link expires.
//! - `mail_index`: `d` + next attempt (big-endian) + mail id for each queued mail, so the
//!   sender's pass is a range scan up to now; `x` + link expiry + mail id for every mail,
//!   so eviction is a range scan too.
//! - `mail_links` (user id → [`MailLinks`]): the user's links, the one record a redemption
//!   reads and writes.
//!
//! A mail is queued with its link in one transaction; a redemption reads the mail, the
//! user's links and the user, lets the model decide, and writes the links, the user and
//! the change log in one transaction. Nothing here holds a token or a mail body.

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use super::disk::Stored;
use super::{codec, corrupt, SledStore, StoreError, UserRecord, UserWriteError};
use crate::domain::{MailId, UserId};
use crate::mail::{EmailKey, LinkPurpose};
use crate::store::{
    DeliveryOutcome, LinkEffect, LinkInvalid, MailLinks, MailWriteError, QueuedMail,
};

type Abort<E> = ConflictableTransactionError<E>;

fn abort<E>(err: E) -> Abort<E> {
    ConflictableTransactionError::Abort(err)
}

fn corrupt_in<E: From<StoreError>>(tree: &'static str) -> impl Fn(codec::CodecError) -> Abort<E> {
    move |source| abort(E::from(StoreError::Corrupt { tree, source }))
}

impl From<sled::transaction::TransactionError<MailWriteError>> for MailWriteError {
    fn from(err: sled::transaction::TransactionError<MailWriteError>) -> Self {
        super::settle(err)
    }
}

/// The `mail_index` key of a queued mail due at `at`.
fn due_key(at: u64, id: MailId) -> Vec<u8> {
    codec::expiry_key(b"d", at, id.as_bytes())
}

/// The `mail_index` key of a mail whose link expires at `at`.
fn expiry_key(at: u64, id: MailId) -> Vec<u8> {
    codec::expiry_key(b"x", at, id.as_bytes())
}

/// Reads a queued mail inside a transaction.
fn read_mail<E: From<StoreError>>(
    queue: &TransactionalTree,
    id: MailId,
) -> Result<Option<QueuedMail>, Abort<E>> {
    queue
        .get(&id.as_bytes()[..])?
        .map(|bytes| Stored::from_disk(&bytes).map_err(corrupt_in("mail_queue")))
        .transpose()
}

/// Writes `mail` and moves its due index entry from `was_due` to where it is due now.
fn write_mail<E: From<StoreError>>(
    queue: &TransactionalTree,
    index: &TransactionalTree,
    mail: &QueuedMail,
    was_due: Option<u64>,
) -> Result<(), Abort<E>> {
    let value = Stored::to_disk(mail).map_err(corrupt_in("mail_queue"))?;
    queue.insert(&mail.id.as_bytes()[..], value)?;
    let now_due = mail.next_attempt_at();
    if was_due != now_due {
        if let Some(at) = was_due {
            index.remove(due_key(at, mail.id))?;
        }
        if let Some(at) = now_due {
            index.insert(due_key(at, mail.id), &[][..])?;
        }
    }
    Ok(())
}

/// Removes a mail and its index entries, if it is there.
fn remove_mail<E: From<StoreError>>(
    queue: &TransactionalTree,
    index: &TransactionalTree,
    id: MailId,
) -> Result<(), Abort<E>> {
    if let Some(mail) = read_mail::<E>(queue, id)? {
        queue.remove(&id.as_bytes()[..])?;
        if let Some(at) = mail.next_attempt_at() {
            index.remove(due_key(at, id))?;
        }
        index.remove(expiry_key(mail.expires_at, id))?;
    }
    Ok(())
}

/// Reads a user's links inside a transaction (an empty book when there is none).
fn read_links<E: From<StoreError>>(
    links: &TransactionalTree,
    user: UserId,
) -> Result<MailLinks, Abort<E>> {
    links
        .get(&user.as_bytes()[..])?
        .map(|bytes| Stored::from_disk(&bytes).map_err(corrupt_in("mail_links")))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Writes a user's links, or removes the record when none are left.
fn write_links<E: From<StoreError>>(
    links: &TransactionalTree,
    user: UserId,
    book: &MailLinks,
) -> Result<(), Abort<E>> {
    if book.links.is_empty() {
        links.remove(&user.as_bytes()[..])?;
    } else {
        let value = Stored::to_disk(book).map_err(corrupt_in("mail_links"))?;
        links.insert(&user.as_bytes()[..], value)?;
    }
    Ok(())
}

/// Removes a deleted user's links and every mail they name, inside the transaction that
/// deletes the user (`users.rs`).
pub(super) fn drop_user_mail<E: From<StoreError>>(
    queue: &TransactionalTree,
    index: &TransactionalTree,
    links: &TransactionalTree,
    user: UserId,
) -> Result<(), Abort<E>> {
    let book = read_links::<E>(links, user)?;
    for link in &book.links {
        remove_mail::<E>(queue, index, link.mail)?;
    }
    links.remove(&user.as_bytes()[..])?;
    Ok(())
}

/// The user id an `emails` entry names.
fn user_id_from(bytes: &[u8]) -> Result<UserId, StoreError> {
    UserId::from_slice(bytes).ok_or(StoreError::Corrupt {
        tree: "emails",
        source: codec::CodecError::Decode("user id is not 16 bytes".into()),
    })
}

/// Claims `key` for `user` inside a user write: `EmailTaken` when another user holds it.
pub(super) fn claim_email(
    emails: &TransactionalTree,
    key: &EmailKey,
    user: UserId,
) -> Result<(), Abort<UserWriteError>> {
    if let Some(holder) = emails.get(key.as_str().as_bytes())? {
        if holder.as_ref() != &user.as_bytes()[..] {
            return Err(abort(UserWriteError::EmailTaken));
        }
    }
    emails.insert(key.as_str().as_bytes(), &user.as_bytes()[..])?;
    Ok(())
}

impl SledStore {
    /// The user an address belongs to.
    ///
    /// # Errors
    /// Storage failures and damaged index entries.
    pub fn user_id_by_email(&self, key: &EmailKey) -> Result<Option<UserId>, StoreError> {
        self.engine()?
            .emails
            .get(key.as_str().as_bytes())?
            .map(|bytes| user_id_from(&bytes))
            .transpose()
    }

    /// Queues `mail` and issues its link in its user's book, in one transaction: the link
    /// of the same purpose it supersedes stops being sent, and links past their expiry
    /// leave with their mails.
    ///
    /// # Errors
    /// `UserGone`, storage failures.
    pub fn queue_mail(&self, mail: &QueuedMail, now: u64) -> Result<(), MailWriteError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let _turn = self.user_locks.lock(mail.user.as_bytes());
        (
            &engine.users,
            &engine.mail_queue,
            &engine.mail_index,
            &engine.mail_links,
        )
            .transaction(
                |(users, queue, index, links): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    if users.get(&mail.user.as_bytes()[..])?.is_none() {
                        return Err(abort(MailWriteError::UserGone));
                    }
                    let mut book = read_links(links, mail.user)?;
                    let issued = book.issue(mail, now);
                    if let Some(superseded) = issued.superseded {
                        if let Some(mut old) = read_mail(queue, superseded)? {
                            let was_due = old.next_attempt_at();
                            if old.after_superseded(now) {
                                write_mail(queue, index, &old, was_due)?;
                            }
                        }
                    }
                    for removed in &issued.removed {
                        remove_mail(queue, index, *removed)?;
                    }
                    write_mail(queue, index, mail, None)?;
                    index.insert(expiry_key(mail.expires_at, mail.id), &[][..])?;
                    write_links(links, mail.user, &book)?;
                    Ok(())
                },
            )?;
        Ok(())
    }

    /// Claims up to `limit` mails due at `now` for `lease` seconds (see
    /// [`QueuedMail::claim`]), oldest due first; returns them as claimed.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn claim_due_mails(
        &self,
        now: u64,
        lease: u64,
        limit: usize,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let engine = self.engine()?;
        let end = due_key(now.saturating_add(1), MailId::from_bytes([0; 16]));
        let mut due = Vec::new();
        for key in engine
            .mail_index
            .range(b"d".to_vec()..end)
            .keys()
            .take(limit)
        {
            let key = key?;
            if let Some(id) = codec::split_expiry_key(b"d", &key)
                .and_then(|(_, id)| <[u8; 16]>::try_from(id).ok())
            {
                due.push(MailId::from_bytes(id));
            }
        }
        let _gate = self.writing();
        let mut claimed = Vec::new();
        for id in due {
            let mail = (&engine.mail_queue, &engine.mail_index)
                .transaction(|(queue, index): &(TransactionalTree, TransactionalTree)| {
                    let Some(mut mail) = read_mail::<StoreError>(queue, id)? else {
                        return Ok(None);
                    };
                    let was_due = mail.next_attempt_at();
                    if !mail.claim(now, lease) {
                        return Ok(None);
                    }
                    write_mail(queue, index, &mail, was_due)?;
                    Ok(Some(mail))
                })
                .map_err(super::settle::<StoreError>)?;
            claimed.extend(mail);
        }
        Ok(claimed)
    }

    /// Records a delivery attempt's outcome; the mail as it is after, `None` if it left.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn record_delivery(
        &self,
        id: MailId,
        outcome: DeliveryOutcome,
        now: u64,
    ) -> Result<Option<QueuedMail>, StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        (&engine.mail_queue, &engine.mail_index)
            .transaction(|(queue, index): &(TransactionalTree, TransactionalTree)| {
                let Some(mut mail) = read_mail::<StoreError>(queue, id)? else {
                    return Ok(None);
                };
                let was_due = mail.next_attempt_at();
                if mail.record(outcome, now) {
                    write_mail(queue, index, &mail, was_due)?;
                }
                Ok(Some(mail))
            })
            .map_err(super::settle::<StoreError>)
    }

    /// Reads a queued mail.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn queued_mail(&self, id: MailId) -> Result<Option<QueuedMail>, StoreError> {
        self.engine()?
            .mail_queue
            .get(id.as_bytes())?
            .map(|bytes| Stored::from_disk(&bytes).map_err(corrupt("mail_queue")))
            .transpose()
    }

    /// Mails waiting to be sent.
    ///
    /// # Errors
    /// Storage failures.
    pub fn mail_queue_depth(&self) -> Result<u64, StoreError> {
        let mut queued = 0u64;
        for key in self.engine()?.mail_index.scan_prefix(b"d").keys() {
            key?;
            queued += 1;
        }
        Ok(queued)
    }

    /// Redeems mail `id`'s link for `purpose` at `now` and applies `effect` to its user,
    /// in one transaction with the change log: the user's id and record after.
    ///
    /// # Errors
    /// `LinkInvalid` for every refused link (nothing changes); `UserGone`; storage.
    pub fn redeem_mail_link(
        &self,
        id: MailId,
        purpose: LinkPurpose,
        effect: &LinkEffect,
        now: u64,
    ) -> Result<(UserId, UserRecord), MailWriteError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let Some(mail) = self.queued_mail(id)? else {
            return Err(LinkInvalid::unknown().into());
        };
        let _turn = self.user_locks.lock(mail.user.as_bytes());
        let appending = engine.changes.begin();
        let (user, logged) = (
            &engine.mail_queue,
            &engine.mail_links,
            &engine.users,
            engine.changes.tree(),
        )
            .transaction(
                |(queue, links, users, changes): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    let Some(mail) = read_mail(queue, id)? else {
                        return Err(abort(LinkInvalid::unknown().into()));
                    };
                    let mut book = read_links(links, mail.user)?;
                    book.redeem(id, purpose, now)
                        .map_err(|refused| abort(refused.into()))?;
                    let bytes = users
                        .get(&mail.user.as_bytes()[..])?
                        .ok_or_else(|| abort(MailWriteError::UserGone))?;
                    let mut user: UserRecord =
                        Stored::from_disk(&bytes).map_err(corrupt_in("users"))?;
                    let log = user
                        .redeem_link(mail.user, &mail, effect, now)
                        .map_err(|refused| abort(refused.into()))?;
                    let value = Stored::to_disk(&user).map_err(corrupt_in("users"))?;
                    users.insert(&mail.user.as_bytes()[..], value)?;
                    write_links(links, mail.user, &book)?;
                    let logged = if log.is_empty() {
                        0
                    } else {
                        appending.write(changes, now, &log)?
                    };
                    Ok((user, logged))
                },
            )?;
        let _unfinished = appending.committed(logged);
        engine.mirror.set_user(*mail.user.as_bytes(), user.stamp());
        Ok((mail.user, user))
    }

    /// Removes every mail whose link expired by `now`, and prunes the links books they
    /// are in; how many mails left.
    ///
    /// # Errors
    /// Storage failures; what was removed before the failure stays removed.
    pub(crate) fn evict_expired_mail(&self, now: u64) -> Result<u64, StoreError> {
        let engine = self.engine()?;
        let end = expiry_key(now.saturating_add(1), MailId::from_bytes([0; 16]));
        let mut expired = Vec::new();
        for key in engine.mail_index.range(b"x".to_vec()..end).keys() {
            let key = key?;
            if let Some(id) = codec::split_expiry_key(b"x", &key)
                .and_then(|(_, id)| <[u8; 16]>::try_from(id).ok())
            {
                expired.push((MailId::from_bytes(id), key));
            }
        }
        let _gate = self.writing();
        let mut removed = 0;
        for (id, index_key) in expired {
            (&engine.mail_queue, &engine.mail_index, &engine.mail_links)
                .transaction(
                    |(queue, index, links): &(
                        TransactionalTree,
                        TransactionalTree,
                        TransactionalTree,
                    )| {
                        if let Some(mail) = read_mail::<StoreError>(queue, id)? {
                            let mut book = read_links::<StoreError>(links, mail.user)?;
                            book.prune(now);
                            write_links::<StoreError>(links, mail.user, &book)?;
                            remove_mail::<StoreError>(queue, index, id)?;
                        }
                        index.remove(index_key.clone())?;
                        Ok(())
                    },
                )
                .map_err(super::settle::<StoreError>)?;
            removed += 1;
        }
        Ok(removed)
    }
}
