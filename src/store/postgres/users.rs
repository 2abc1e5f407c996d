//! Users on PostgreSQL: the `users` table, id → record, with the normalised username
//! under a `UNIQUE` constraint (two nodes registering one name: the second insert fails
//! on the index, whichever node it runs on) and the tenant as an indexed column.
//!
//! A registration into a tenant counts the user in under the tenant's row lock (see
//! `tenants`): members plus the seats pending invitations hold stay within
//! `max_accounts`, and an invited user's invitation is used up in the same transaction,
//! so a code admits one account however many registrations race with it on however many
//! nodes. Locks are taken user first, then tenant, in every write here.
//!
//! The address's key is the `email_key` column under a `UNIQUE` constraint, written from
//! the record's own address in the statement that writes the record; a second user with
//! one address fails on the constraint (`EmailTaken`), on any node. A deleted user's mail
//! links and queued mails leave in the transaction that deletes it (see `mail`).

use tokio_postgres::error::SqlState;

use super::invitations::{read_book, tidy, write_book};
use super::mail::drop_user_mail;
use super::tenants::{lock_tenant, write_tenant};
use super::{database_error, log, PgStore};
use crate::domain::{TenantId, UserId, Username};
use crate::mail::EmailKey;
use crate::store::disk::Stored;
use crate::store::{
    corrupt, Change, ClaimsChange, InvitationBook, StoreError, UserRecord, UserWriteError,
};

/// Which unique constraint of `users` refused `err`, if one did.
fn violated(err: &tokio_postgres::Error) -> Option<&str> {
    if err.code() != Some(&SqlState::UNIQUE_VIOLATION) {
        return None;
    }
    err.as_db_error().and_then(|db| db.constraint())
}

/// A refused write of a `users` row: a second user of one name or of one address is the
/// caller's error, anything else the database's.
fn user_write_error(err: tokio_postgres::Error) -> UserWriteError {
    match violated(&err) {
        Some("users_username_key") => UserWriteError::UsernameTaken,
        Some("users_email_key_key") => UserWriteError::EmailTaken,
        _ => database_error(err).into(),
    }
}

/// The `email_key` column of `user`: its address's key, as the unique index holds it.
fn email_key(user: &UserRecord) -> Option<&str> {
    user.email_key().map(EmailKey::as_str)
}

/// Marks the pending invitation with this code, in this tenant, used by `user`, and takes
/// its code out of the index. Returns `false` (and changes nothing) when the code names no
/// pending invitation of the tenant: unknown, used, revoked or expired alike.
async fn redeem(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: TenantId,
    book: &mut InvitationBook,
    code_digest: &[u8; 32],
    user: UserId,
    now: u64,
) -> Result<bool, StoreError> {
    if !book.admits(code_digest, now) {
        return Ok(false);
    }
    // The index entry names the tenant the code belongs to; deleting it proves both.
    let removed = tx
        .execute(
            "DELETE FROM invitation_codes WHERE code_digest = $1 AND tenant = $2",
            &[&&code_digest[..], &&tenant.as_bytes()[..]],
        )
        .await
        .map_err(database_error)?;
    if removed == 0 {
        return Ok(false);
    }
    book.redeem(code_digest, user, now);
    write_book(tx, tenant, book).await?;
    Ok(true)
}

/// Counts a user into a tenant, refusing to pass `max_accounts`; with `invited`, the
/// invitation is used up first, turning its seat into the member's.
async fn count_member_in(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: TenantId,
    invited: Option<(&[u8; 32], UserId)>,
    now: u64,
) -> Result<(), UserWriteError> {
    let mut record = lock_tenant(tx, tenant)
        .await?
        .ok_or(UserWriteError::UnknownTenant)?;
    let mut book = read_book(&**tx, tenant).await?;
    if let Some((code_digest, user)) = invited {
        tidy(tx, &mut book, now).await?;
        if !redeem(tx, tenant, &mut book, code_digest, user, now).await? {
            return Err(UserWriteError::InvitationInvalid);
        }
    }
    record.admit(book.pending(now))?;
    write_tenant(tx, tenant, &record).await?;
    Ok(())
}

/// Reads a user and locks its row until the transaction ends.
pub(crate) async fn lock_user(
    tx: &deadpool_postgres::Transaction<'_>,
    id: UserId,
) -> Result<Option<UserRecord>, StoreError> {
    let statement = tx
        .prepare_cached("SELECT record FROM users WHERE id = $1 FOR UPDATE")
        .await
        .map_err(database_error)?;
    tx.query_opt(&statement, &[&&id.as_bytes()[..]])
        .await
        .map_err(database_error)?
        .map(|row| Stored::from_disk(row.get::<_, &[u8]>(0)).map_err(corrupt("users")))
        .transpose()
}

/// Writes a user's record and the columns that repeat its fields (tenant, address key)
/// inside a transaction; `EmailTaken` when its address is another user's.
async fn update_user(
    tx: &deadpool_postgres::Transaction<'_>,
    id: UserId,
    user: &UserRecord,
) -> Result<(), UserWriteError> {
    let record = Stored::to_disk(user).map_err(corrupt("users"))?;
    let tenant = user.tenant.map(|tenant| tenant.as_bytes().to_vec());
    let statement = tx
        .prepare_cached("UPDATE users SET tenant = $2, email_key = $3, record = $4 WHERE id = $1")
        .await
        .map_err(database_error)?;
    tx.execute(
        &statement,
        &[&&id.as_bytes()[..], &tenant, &email_key(user), &record],
    )
    .await
    .map_err(user_write_error)?;
    Ok(())
}

/// Writes a user's record (and its columns) inside a transaction, for a write that does not
/// move its address (a revocation, a redeemed link): the constraint can refuse nothing
/// then, so a refusal is the database's error.
pub(crate) async fn write_user(
    tx: &deadpool_postgres::Transaction<'_>,
    id: UserId,
    user: &UserRecord,
) -> Result<(), StoreError> {
    update_user(tx, id, user).await.map_err(|err| match err {
        UserWriteError::Store(err) => err,
        refused => StoreError::Database(format!("the users row refused the write: {refused}")),
    })
}

impl PgStore {
    /// Creates a user, claims its username and counts it into its tenant, in one
    /// transaction. With `invitation` (the digest of a code), the invitation must be
    /// pending at `now` and belong to the user's tenant; it is used up in the same
    /// transaction.
    ///
    /// # Errors
    /// `UsernameTaken`, `EmailTaken`, `UnknownTenant`, `TenantFull`, `InvitationInvalid`,
    /// storage failures.
    pub async fn create_user(
        &self,
        id: UserId,
        user: &UserRecord,
        invitation: Option<&[u8; 32]>,
        now: u64,
    ) -> Result<(), UserWriteError> {
        if invitation.is_some() && user.tenant.is_none() {
            return Err(UserWriteError::InvitationInvalid);
        }
        let record = Stored::to_disk(user).map_err(corrupt("users"))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let statement = tx
            .prepare_cached(
                "INSERT INTO users (id, username, tenant, email_key, record)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .await
            .map_err(database_error)?;
        let tenant = user.tenant.map(|tenant| tenant.as_bytes().to_vec());
        tx.execute(
            &statement,
            &[
                &&id.as_bytes()[..],
                &user.username,
                &tenant,
                &email_key(user),
                &record,
            ],
        )
        .await
        .map_err(user_write_error)?;
        if let Some(tenant) = user.tenant {
            count_member_in(&tx, tenant, invitation.map(|code| (code, id)), now).await?;
        }
        // Every node needs the new account to verify its tokens.
        let ids = log::append(&tx, now, &[user.account_change(id)]).await?;
        tx.commit().await.map_err(database_error)?;
        self.note_appended(&ids);
        Ok(())
    }

    /// Changes a user's claims or standing, bumping its claims version (`uv`) and logging
    /// it when anything changed; a change of tenant is counted out of the old tenant and
    /// into the new one in the same transaction (both rows locked in id order, so two
    /// moves in opposite directions cannot deadlock; the new one's pending invitations at
    /// `now` hold their seats). Returns the new record.
    ///
    /// A change of address moves the user's `email_key` in the same statement as its
    /// record.
    ///
    /// # Errors
    /// `NotFound`, `EmailTaken`, `UnknownTenant`, `TenantFull`, storage failures.
    pub async fn change_user_claims(
        &self,
        id: UserId,
        change: &ClaimsChange,
        now: u64,
    ) -> Result<UserRecord, UserWriteError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let mut user = lock_user(&tx, id).await?.ok_or(UserWriteError::NotFound)?;
        let applied = user.apply_claims(id, change, now);
        if let Some((old_tenant, new_tenant)) = applied.moved {
            let mut moved: Vec<TenantId> = old_tenant.into_iter().chain(new_tenant).collect();
            moved.sort_by_key(|tenant| *tenant.as_bytes());
            for tenant in moved {
                lock_tenant(&tx, tenant).await?;
            }
            if let Some(old) = old_tenant {
                let mut record = lock_tenant(&tx, old)
                    .await?
                    .ok_or(UserWriteError::UnknownTenant)?;
                record.count_out();
                write_tenant(&tx, old, &record).await?;
            }
            if let Some(new) = new_tenant {
                count_member_in(&tx, new, None, now).await?;
            }
        }
        update_user(&tx, id, &user).await?;
        let ids = log::append(&tx, now, &applied.log).await?;
        tx.commit().await.map_err(database_error)?;
        self.note_appended(&ids);
        Ok(user)
    }

    /// Reads a user.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT record FROM users WHERE id = $1")
            .await
            .map_err(database_error)?;
        client
            .query_opt(&statement, &[&&id.as_bytes()[..]])
            .await
            .map_err(database_error)?
            .map(|row| Stored::from_disk(row.get::<_, &[u8]>(0)).map_err(corrupt("users")))
            .transpose()
    }

    /// Looks a user up by canonical username.
    ///
    /// # Errors
    /// Storage failures and damaged ids.
    pub async fn user_id_by_name(&self, name: &Username) -> Result<Option<UserId>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id FROM users WHERE username = $1")
            .await
            .map_err(database_error)?;
        let Some(row) = client
            .query_opt(&statement, &[&name.as_str()])
            .await
            .map_err(database_error)?
        else {
            return Ok(None);
        };
        UserId::from_slice(row.get::<_, &[u8]>(0))
            .map(Some)
            .ok_or(StoreError::Corrupt {
                tree: "users",
                source: crate::store::CodecError::Decode("user id is not 16 bytes".into()),
            })
    }

    /// Removes a user, frees its username and address, counts it out of its tenant,
    /// removes its mail links and queued mails and logs it, in one transaction. Returns the
    /// removed record.
    ///
    /// # Errors
    /// `NotFound`, storage failures.
    pub async fn delete_user(&self, id: UserId) -> Result<UserRecord, UserWriteError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let row = tx
            .query_opt(
                "DELETE FROM users WHERE id = $1 RETURNING record",
                &[&&id.as_bytes()[..]],
            )
            .await
            .map_err(database_error)?
            .ok_or(UserWriteError::NotFound)?;
        let user: UserRecord =
            Stored::from_disk(row.get::<_, &[u8]>(0)).map_err(corrupt("users"))?;
        drop_user_mail(&tx, id).await?;
        if let Some(tenant) = user.tenant {
            // A tenant already gone has nobody to count out.
            if let Some(mut record) = lock_tenant(&tx, tenant).await? {
                record.count_out();
                write_tenant(&tx, tenant, &record).await?;
            }
        }
        let ids = log::append(&tx, self.clock.now(), &[Change::UserDeleted { user: id }]).await?;
        tx.commit().await.map_err(database_error)?;
        self.note_appended(&ids);
        Ok(user)
    }

    /// The user whose address has the key `key`.
    ///
    /// # Errors
    /// Storage failures and damaged ids.
    pub async fn user_id_by_email(&self, key: &EmailKey) -> Result<Option<UserId>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id FROM users WHERE email_key = $1")
            .await
            .map_err(database_error)?;
        client
            .query_opt(&statement, &[&key.as_str()])
            .await
            .map_err(database_error)?
            .map(|row| {
                UserId::from_slice(row.get::<_, &[u8]>(0)).ok_or(StoreError::Corrupt {
                    tree: "users",
                    source: crate::store::CodecError::Decode("user id is not 16 bytes".into()),
                })
            })
            .transpose()
    }

    /// Up to `limit` users created after `after` (ids are time-ordered), oldest first.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, UserRecord)>, StoreError> {
        let client = self.client().await?;
        let after = after.map_or_else(Vec::new, |id| id.as_bytes().to_vec());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, record FROM users WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &limit],
            )
            .await
            .map_err(database_error)?;
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = UserId::from_slice(row.get::<_, &[u8]>(0)).ok_or(StoreError::Corrupt {
                tree: "users",
                source: crate::store::CodecError::Decode("user id is not 16 bytes".into()),
            })?;
            users.push((
                id,
                Stored::from_disk(row.get::<_, &[u8]>(1)).map_err(corrupt("users"))?,
            ));
        }
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::fixtures::{self, user};
    use crate::store::postgres::testing::TestDatabase;

    /// Two nodes, twenty registrations at once into a tenant of five seats: five get in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL"]
    async fn max_accounts_holds_under_registrations_on_two_nodes() {
        let db = TestDatabase::require().await;
        let nodes = [
            PgStore::connect(&db.url, 6).await.unwrap(),
            PgStore::connect(&db.url, 6).await.unwrap(),
        ];
        let tenant = TenantId::generate();
        nodes[0]
            .create_tenant(tenant, &fixtures::tenant(Some(5)))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|n| {
                let node = nodes[n % 2].clone();
                tokio::spawn(async move {
                    node.create_user(
                        UserId::generate(),
                        &user(&format!("user{n}"), Some(tenant)),
                        None,
                        100,
                    )
                    .await
                })
            })
            .collect();
        let (mut admitted, mut full) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => admitted += 1,
                Err(UserWriteError::TenantFull) => full += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!((admitted, full), (5, 15));
        assert_eq!(nodes[1].tenant(tenant).await.unwrap().unwrap().members, 5);
        let members: i64 = nodes[1]
            .client()
            .await
            .unwrap()
            .query_one(
                "SELECT count(*) FROM users WHERE tenant = $1",
                &[&&tenant.as_bytes()[..]],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(members, 5);
        db.drop_now().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL"]
    async fn one_username_registered_on_two_nodes_at_once_goes_to_one_user() {
        let db = TestDatabase::require().await;
        let nodes = [
            PgStore::connect(&db.url, 4).await.unwrap(),
            PgStore::connect(&db.url, 4).await.unwrap(),
        ];
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let node = nodes[n % 2].clone();
                tokio::spawn(async move {
                    let id = UserId::generate();
                    node.create_user(id, &user("alice", None), None, 100)
                        .await
                        .map(|()| id)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(id) => winners.push(id),
                Err(UserWriteError::UsernameTaken) => {}
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(winners.len(), 1);
        let alice = Username::parse("alice").unwrap();
        assert_eq!(
            nodes[0].user_id_by_name(&alice).await.unwrap(),
            Some(winners[0])
        );
        db.drop_now().await;
    }

    /// One address given to eight users at once, on two nodes, in every spelling: one
    /// user gets it, the others are told it is taken, and the column follows the record.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL"]
    async fn one_address_registered_on_two_nodes_at_once_goes_to_one_user() {
        use crate::mail::EmailAddress;
        let db = TestDatabase::require().await;
        let nodes = [
            PgStore::connect(&db.url, 4).await.unwrap(),
            PgStore::connect(&db.url, 4).await.unwrap(),
        ];
        let spellings = ["ada@example.org", "Ada@Example.org", "ADA@EXAMPLE.ORG"];
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let node = nodes[n % 2].clone();
                let email = EmailAddress::parse(spellings[n % 3]).unwrap();
                tokio::spawn(async move {
                    let id = UserId::generate();
                    let record = UserRecord {
                        email: Some(email),
                        ..user(&format!("user{n}"), None)
                    };
                    node.create_user(id, &record, None, 100).await.map(|()| id)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(id) => winners.push(id),
                Err(UserWriteError::EmailTaken) => {}
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(winners.len(), 1);
        let key = EmailAddress::parse("ada@example.org")
            .unwrap()
            .key()
            .clone();
        assert_eq!(
            nodes[0].user_id_by_email(&key).await.unwrap(),
            Some(winners[0])
        );

        // Taking the address away frees the key for another user.
        let removed = ClaimsChange {
            email: Some(None),
            ..ClaimsChange::default()
        };
        nodes[1]
            .change_user_claims(winners[0], &removed, 101)
            .await
            .unwrap();
        assert_eq!(nodes[0].user_id_by_email(&key).await.unwrap(), None);
        let columns: Vec<Option<String>> = nodes[0]
            .client()
            .await
            .unwrap()
            .query("SELECT email_key FROM users", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(columns, vec![None]);
        db.drop_now().await;
    }
}
