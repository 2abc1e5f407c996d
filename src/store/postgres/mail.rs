//! The mail queue and mail links on PostgreSQL (issue 21), the sled store's operations
//! under the same rules (`model::mail` decides, the transactions here read and write):
//!
//! - `mail_queue` (mail id → the queued mail's record) with `due`, its next attempt while
//!   it is queued (`NULL` once sent or given up), and `expires_at`, its link's end, as
//!   columns: the sender's pass and eviction are indexed scans.
//! - `mail_links` (user id → the user's links book) with `next_expiry`, the earliest
//!   expiry in the book, so eviction finds the books to prune by an index.
//!
//! A mail is queued with its link under its user's row lock, in one transaction; a sender
//! claims due mails with `FOR UPDATE SKIP LOCKED`, so senders on two nodes never take one
//! mail and never wait for each other; a redemption locks the user's row, reads its book,
//! lets the model decide, and writes the user, the book and the change log in one
//! transaction, as a claim change does. Locks are taken user, then book, then mails (in id
//! order, within one statement): see `schema`. Nothing here holds a token or a mail body.

use super::users::{lock_user, write_user};
use super::{database_error, log, to_bigint, PgStore};
use crate::domain::{MailId, UserId};
use crate::mail::LinkPurpose;
use crate::store::disk::Stored;
use crate::store::{
    corrupt, DeliveryOutcome, LinkEffect, LinkInvalid, MailLinks, MailWriteError, QueuedMail,
    StoreError, UserRecord,
};

/// The columns of a mail's row that repeat its record: when it is due (while queued) and
/// when its link expires.
fn mail_columns(mail: &QueuedMail) -> Result<(Option<i64>, i64, Vec<u8>), StoreError> {
    Ok((
        mail.next_attempt_at().map(to_bigint).transpose()?,
        to_bigint(mail.expires_at)?,
        Stored::to_disk(mail).map_err(corrupt("mail_queue"))?,
    ))
}

/// A mail from its stored record.
fn mail_from(row: &tokio_postgres::Row) -> Result<QueuedMail, StoreError> {
    Stored::from_disk(row.get::<_, &[u8]>(0)).map_err(corrupt("mail_queue"))
}

/// Inserts a new mail inside a transaction.
async fn insert_mail(
    tx: &deadpool_postgres::Transaction<'_>,
    mail: &QueuedMail,
) -> Result<(), StoreError> {
    let (due, expires_at, record) = mail_columns(mail)?;
    tx.execute(
        "INSERT INTO mail_queue (id, user_id, due, expires_at, record)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &&mail.id.as_bytes()[..],
            &&mail.user.as_bytes()[..],
            &due,
            &expires_at,
            &record,
        ],
    )
    .await
    .map_err(database_error)?;
    Ok(())
}

/// Writes a mail's record and its `due` column inside a transaction that holds its row.
async fn update_mail(
    tx: &deadpool_postgres::Transaction<'_>,
    mail: &QueuedMail,
) -> Result<(), StoreError> {
    let (due, _, record) = mail_columns(mail)?;
    let statement = tx
        .prepare_cached("UPDATE mail_queue SET due = $2, record = $3 WHERE id = $1")
        .await
        .map_err(database_error)?;
    tx.execute(&statement, &[&&mail.id.as_bytes()[..], &due, &record])
        .await
        .map_err(database_error)?;
    Ok(())
}

/// Locks the mails `ids` names that are still there, in id order (every writer that locks
/// several takes them in that order), and returns them.
async fn lock_mails(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[MailId],
) -> Result<Vec<QueuedMail>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&[u8]> = ids.iter().map(|id| &id.as_bytes()[..]).collect();
    tx.query(
        "SELECT record FROM mail_queue WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &[&ids],
    )
    .await
    .map_err(database_error)?
    .iter()
    .map(mail_from)
    .collect()
}

/// Removes the mails `ids` names inside a transaction (those already gone are skipped);
/// how many went.
async fn remove_mails(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[MailId],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&[u8]> = ids.iter().map(|id| &id.as_bytes()[..]).collect();
    tx.execute(
        "DELETE FROM mail_queue WHERE id IN
             (SELECT id FROM mail_queue WHERE id = ANY($1) ORDER BY id FOR UPDATE)",
        &[&ids],
    )
    .await
    .map_err(database_error)
}

/// A user's links book, its row locked until the transaction ends (an empty book when the
/// user has none). Callers that change a user lock the user's row first.
async fn lock_book(
    tx: &deadpool_postgres::Transaction<'_>,
    user: UserId,
) -> Result<MailLinks, StoreError> {
    let statement = tx
        .prepare_cached("SELECT record FROM mail_links WHERE user_id = $1 FOR UPDATE")
        .await
        .map_err(database_error)?;
    tx.query_opt(&statement, &[&&user.as_bytes()[..]])
        .await
        .map_err(database_error)?
        .map(|row| Stored::from_disk(row.get::<_, &[u8]>(0)).map_err(corrupt("mail_links")))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Writes a user's links book with its earliest expiry, or removes the row when the book
/// is empty (as sled removes the record).
async fn write_book(
    tx: &deadpool_postgres::Transaction<'_>,
    user: UserId,
    book: &MailLinks,
) -> Result<(), StoreError> {
    let Some(next_expiry) = book.links.iter().map(|link| link.expires_at).min() else {
        tx.execute(
            "DELETE FROM mail_links WHERE user_id = $1",
            &[&&user.as_bytes()[..]],
        )
        .await
        .map_err(database_error)?;
        return Ok(());
    };
    let record = Stored::to_disk(book).map_err(corrupt("mail_links"))?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO mail_links (user_id, next_expiry, record) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE
                 SET next_expiry = EXCLUDED.next_expiry, record = EXCLUDED.record",
        )
        .await
        .map_err(database_error)?;
    tx.execute(
        &statement,
        &[&&user.as_bytes()[..], &to_bigint(next_expiry)?, &record],
    )
    .await
    .map_err(database_error)?;
    Ok(())
}

/// Removes a deleted user's links book and every mail queued for it, inside the
/// transaction that deletes the user (`users`), which holds its row.
pub(crate) async fn drop_user_mail(
    tx: &deadpool_postgres::Transaction<'_>,
    user: UserId,
) -> Result<(), StoreError> {
    let user = &user.as_bytes()[..];
    tx.execute("DELETE FROM mail_links WHERE user_id = $1", &[&user])
        .await
        .map_err(database_error)?;
    tx.execute(
        "DELETE FROM mail_queue WHERE id IN
             (SELECT id FROM mail_queue WHERE user_id = $1 ORDER BY id FOR UPDATE)",
        &[&user],
    )
    .await
    .map_err(database_error)?;
    Ok(())
}

impl PgStore {
    /// Queues `mail` and issues its link in its user's book, in one transaction under the
    /// user's row lock ([`MailLinks::issue`] deciding): the mail whose link it supersedes
    /// stops being sent, and links that left the book leave with their mails. Logs
    /// nothing: durable at commit.
    ///
    /// # Errors
    /// `UserGone`, storage failures.
    pub async fn queue_mail(&self, mail: &QueuedMail, now: u64) -> Result<(), MailWriteError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        // The user's row serialises every write of its book, on every node.
        tx.query_opt(
            "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
            &[&&mail.user.as_bytes()[..]],
        )
        .await
        .map_err(database_error)?
        .ok_or(MailWriteError::UserGone)?;
        let mut book = lock_book(&tx, mail.user).await?;
        let issued = book.issue(mail, now);
        let touched: Vec<MailId> = issued
            .superseded
            .iter()
            .chain(&issued.removed)
            .copied()
            .collect();
        for mut old in lock_mails(&tx, &touched).await? {
            if issued.superseded == Some(old.id) && old.after_superseded(now) {
                update_mail(&tx, &old).await?;
            }
        }
        remove_mails(&tx, &issued.removed).await?;
        insert_mail(&tx, mail).await?;
        write_book(&tx, mail.user, &book).await?;
        tx.commit().await.map_err(database_error)?;
        Ok(())
    }

    /// Claims up to `limit` mails due at `now` for `lease` seconds ([`QueuedMail::claim`]
    /// deciding), oldest due first; returns them as claimed. Rows another transaction
    /// holds (another sender's claim, a delivery being recorded) are skipped, not waited
    /// for: a later pass sees them as that transaction left them.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn claim_due_mails(
        &self,
        now: u64,
        lease: u64,
        limit: usize,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let rows = tx
            .query(
                "SELECT record FROM mail_queue WHERE due <= $1
                 ORDER BY due, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[&to_bigint(now)?, &limit],
            )
            .await
            .map_err(database_error)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut mail = mail_from(row)?;
            if mail.claim(now, lease) {
                update_mail(&tx, &mail).await?;
                claimed.push(mail);
            }
        }
        tx.commit().await.map_err(database_error)?;
        Ok(claimed)
    }

    /// Records a delivery attempt's outcome ([`QueuedMail::record`] deciding); the mail as
    /// it is after, `None` if it left the queue.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn record_delivery(
        &self,
        id: MailId,
        outcome: DeliveryOutcome,
        now: u64,
    ) -> Result<Option<QueuedMail>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let Some(mut mail) = lock_mails(&tx, &[id]).await?.pop() else {
            return Ok(None);
        };
        if mail.record(outcome, now) {
            update_mail(&tx, &mail).await?;
        }
        tx.commit().await.map_err(database_error)?;
        Ok(Some(mail))
    }

    /// Reads a mail of the queue, sent or not, until it is evicted.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn queued_mail(&self, id: MailId) -> Result<Option<QueuedMail>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT record FROM mail_queue WHERE id = $1")
            .await
            .map_err(database_error)?;
        client
            .query_opt(&statement, &[&&id.as_bytes()[..]])
            .await
            .map_err(database_error)?
            .as_ref()
            .map(mail_from)
            .transpose()
    }

    /// Mails waiting to be sent (queued, claimed or not).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn mail_queue_depth(&self) -> Result<u64, StoreError> {
        let queued: i64 = self
            .client()
            .await?
            .query_one("SELECT count(*) FROM mail_queue WHERE due IS NOT NULL", &[])
            .await
            .map_err(database_error)?
            .get(0);
        super::from_bigint(queued)
    }

    /// Redeems mail `id`'s link for `purpose` at `now` and applies `effect` to its user
    /// ([`MailLinks::redeem`] and [`UserRecord::redeem_link`] deciding), writing the user,
    /// its book and the change-log records in one transaction under the user's row lock,
    /// as a claim change does: the answer waits for the replicas through
    /// `wait_durable`. Returns the user's id and record after; a refusal changes nothing.
    ///
    /// # Errors
    /// `LinkInvalid` for every refused link, `UserGone`, storage failures.
    pub async fn redeem_mail_link(
        &self,
        id: MailId,
        purpose: LinkPurpose,
        effect: &LinkEffect,
        now: u64,
    ) -> Result<(UserId, UserRecord), MailWriteError> {
        let Some(mail) = self.queued_mail(id).await? else {
            return Err(LinkInvalid::unknown().into());
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let mut user = lock_user(&tx, mail.user)
            .await?
            .ok_or(MailWriteError::UserGone)?;
        // The book, read under its lock, decides: a link evicted since the mail was read
        // is no longer in it.
        let mut book = lock_book(&tx, mail.user).await?;
        book.redeem(id, purpose, now)?;
        let changes = user.redeem_link(mail.user, &mail, effect, now)?;
        write_user(&tx, mail.user, &user).await?;
        write_book(&tx, mail.user, &book).await?;
        let ids = log::append(&tx, now, &changes).await?;
        tx.commit().await.map_err(database_error)?;
        self.note_appended(&ids);
        Ok((mail.user, user))
    }

    /// Removes every mail whose link expired by `now` (one statement), then prunes the
    /// books holding an expired link ([`MailLinks::prune`] deciding), each in a
    /// transaction of its own under its row lock; how many mails left.
    ///
    /// # Errors
    /// Storage failures and damaged records; what was removed before stays removed.
    pub(crate) async fn evict_expired_mail(&self, now: u64) -> Result<u64, StoreError> {
        let at = to_bigint(now)?;
        let mut client = self.client().await?;
        let mut removed = client
            .execute(
                "DELETE FROM mail_queue WHERE id IN
                     (SELECT id FROM mail_queue WHERE expires_at <= $1 ORDER BY id FOR UPDATE)",
                &[&at],
            )
            .await
            .map_err(database_error)?;
        let users: Vec<UserId> = client
            .query(
                "SELECT user_id FROM mail_links WHERE next_expiry <= $1",
                &[&at],
            )
            .await
            .map_err(database_error)?
            .iter()
            .filter_map(|row| UserId::from_slice(row.get::<_, &[u8]>(0)))
            .collect();
        for user in users {
            let tx = client.transaction().await.map_err(database_error)?;
            let mut book = lock_book(&tx, user).await?;
            let dropped = book.prune(now);
            if dropped.is_empty() {
                continue; // pruned meanwhile by a write of the book
            }
            // Their mails went above, unless one was queued since with a link already dead.
            removed += remove_mails(&tx, &dropped).await?;
            write_book(&tx, user, &book).await?;
            tx.commit().await.map_err(database_error)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::mail::EmailAddress;
    use crate::store::model::fixtures;
    use crate::store::postgres::testing::TestDatabase;
    use crate::store::{Delivery, GiveUp, LinkState};

    const NOW: u64 = 1_800_000_000;

    /// A user with an address, created on `store`.
    async fn ada(store: &PgStore) -> UserId {
        let id = UserId::generate();
        let record = UserRecord {
            email: Some(EmailAddress::parse("ada@example.org").unwrap()),
            ..fixtures::user("ada", None)
        };
        store.create_user(id, &record, None, NOW).await.unwrap();
        id
    }

    fn mail(user: UserId, purpose: LinkPurpose, at: u64) -> QueuedMail {
        let to = EmailAddress::parse("ada@example.org").unwrap();
        QueuedMail::new(user, purpose, to, at, 1_800)
    }

    /// The user's book as stored, with its `next_expiry` column.
    async fn book(store: &PgStore, user: UserId) -> Option<(i64, MailLinks)> {
        let row = store
            .client()
            .await
            .unwrap()
            .query_opt(
                "SELECT next_expiry, record FROM mail_links WHERE user_id = $1",
                &[&&user.as_bytes()[..]],
            )
            .await
            .unwrap()?;
        Some((
            row.get(0),
            Stored::from_disk(row.get::<_, &[u8]>(1)).unwrap(),
        ))
    }

    /// Senders on two nodes, claiming in small batches at once, never take one mail twice,
    /// and between them take every due mail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL"]
    async fn two_nodes_claiming_at_once_never_take_one_mail_twice() {
        let db = TestDatabase::require().await;
        let nodes = [
            PgStore::connect(&db.url, 4).await.unwrap(),
            PgStore::connect(&db.url, 4).await.unwrap(),
        ];
        let mut queued = BTreeSet::new();
        for n in 0..24 {
            let user = UserId::generate();
            let record = UserRecord {
                email: Some(EmailAddress::parse(&format!("u{n}@example.org")).unwrap()),
                ..fixtures::user(&format!("u{n}"), None)
            };
            nodes[0]
                .create_user(user, &record, None, NOW)
                .await
                .unwrap();
            let to = EmailAddress::parse(&format!("u{n}@example.org")).unwrap();
            let queued_mail = QueuedMail::new(user, LinkPurpose::Magic, to, NOW, 1_800);
            nodes[0].queue_mail(&queued_mail, NOW).await.unwrap();
            queued.insert(queued_mail.id);
        }
        let senders: Vec<_> = (0..6)
            .map(|n| {
                let node = nodes[n % 2].clone();
                tokio::spawn(async move {
                    let mut taken = Vec::new();
                    loop {
                        let batch = node.claim_due_mails(NOW + 1, 60, 3).await.unwrap();
                        if batch.is_empty() {
                            return taken;
                        }
                        taken.extend(batch.into_iter().map(|mail| mail.id));
                    }
                })
            })
            .collect();
        let mut taken = Vec::new();
        for sender in senders {
            taken.extend(sender.await.unwrap());
        }
        let distinct: BTreeSet<MailId> = taken.iter().copied().collect();
        assert_eq!(distinct.len(), taken.len(), "a mail was claimed twice");
        assert_eq!(distinct, queued);
        assert_eq!(
            nodes[1].mail_queue_depth().await.unwrap(),
            24,
            "claimed, not sent"
        );
        db.drop_now().await;
    }

    /// Links of one purpose issued from two nodes at once: the user's book ends with one
    /// live link, every other mail is stopped, and the queue counts one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL"]
    async fn links_issued_at_once_on_two_nodes_leave_one_live() {
        let db = TestDatabase::require().await;
        let nodes = [
            PgStore::connect(&db.url, 4).await.unwrap(),
            PgStore::connect(&db.url, 4).await.unwrap(),
        ];
        let user = ada(&nodes[0]).await;
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let node = nodes[n % 2].clone();
                tokio::spawn(async move {
                    let queued = mail(user, LinkPurpose::ResetPassword, NOW);
                    node.queue_mail(&queued, NOW).await.map(|()| queued.id)
                })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap().unwrap());
        }
        let (_, links) = book(&nodes[0], user).await.unwrap();
        let live: Vec<MailId> = links
            .links
            .iter()
            .filter(|link| link.state == LinkState::Live)
            .map(|link| link.mail)
            .collect();
        assert_eq!(live.len(), 1, "{links:?}");
        assert_eq!(links.links.len(), 8);
        assert_eq!(nodes[1].mail_queue_depth().await.unwrap(), 1);
        for id in ids {
            let stored = nodes[1].queued_mail(id).await.unwrap().unwrap();
            if id == live[0] {
                assert_eq!(stored.next_attempt_at(), Some(NOW));
            } else {
                assert!(matches!(
                    stored.delivery,
                    Delivery::GaveUp {
                        reason: GiveUp::Superseded,
                        ..
                    }
                ));
            }
        }
        db.drop_now().await;
    }

    /// One link presented on two nodes at once is redeemed once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL"]
    async fn one_link_presented_on_two_nodes_at_once_is_redeemed_once() {
        let db = TestDatabase::require().await;
        let nodes = [
            PgStore::connect(&db.url, 4).await.unwrap(),
            PgStore::connect(&db.url, 4).await.unwrap(),
        ];
        let user = ada(&nodes[0]).await;
        let queued = mail(user, LinkPurpose::VerifyEmail, NOW);
        nodes[0].queue_mail(&queued, NOW).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let node = nodes[n % 2].clone();
                tokio::spawn(async move {
                    node.redeem_mail_link(
                        queued.id,
                        LinkPurpose::VerifyEmail,
                        &LinkEffect::ProveAddress,
                        NOW + 1,
                    )
                    .await
                })
            })
            .collect();
        let (mut redeemed, mut refused) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => redeemed += 1,
                Err(MailWriteError::LinkInvalid(_)) => refused += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!((redeemed, refused), (1, 7));
        let after = nodes[1].user(user).await.unwrap().unwrap();
        assert_eq!((after.email_verified, after.claims_version), (true, 2));
        db.drop_now().await;
    }

    /// Eviction prunes the expired links from a book and moves its `next_expiry` on, and
    /// removes a book left empty; a deleted user's book and mails leave with it.
    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn eviction_prunes_books_and_deletion_takes_them() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        let user = ada(&store).await;
        let early = mail(user, LinkPurpose::Magic, NOW);
        let late = mail(user, LinkPurpose::VerifyEmail, NOW + 100);
        store.queue_mail(&early, NOW).await.unwrap();
        store.queue_mail(&late, NOW + 100).await.unwrap();
        let (next_expiry, _) = book(&store, user).await.unwrap();
        assert_eq!(next_expiry, i64::try_from(early.expires_at).unwrap());

        assert_eq!(
            store
                .evict_expired_mail(early.expires_at - 1)
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.evict_expired_mail(early.expires_at).await.unwrap(), 1);
        let (next_expiry, links) = book(&store, user).await.unwrap();
        assert_eq!(next_expiry, i64::try_from(late.expires_at).unwrap());
        assert_eq!(
            links.links.iter().map(|link| link.mail).collect::<Vec<_>>(),
            vec![late.id]
        );
        assert_eq!(store.evict_expired_mail(late.expires_at).await.unwrap(), 1);
        assert!(book(&store, user).await.is_none(), "an empty book leaves");

        let again = mail(user, LinkPurpose::Magic, NOW + 5_000);
        store.queue_mail(&again, NOW + 5_000).await.unwrap();
        store.delete_user(user).await.unwrap();
        assert!(book(&store, user).await.is_none());
        assert_eq!(store.queued_mail(again.id).await.unwrap(), None);
        db.drop_now().await;
    }
}
