//! Moving a sled store into an empty PostgreSQL database (`claimd migrate --from sled --to
//! postgres`), in ONE transaction: either the database ends up holding the whole store,
//! or it holds nothing of it.
//!
//! Records are not converted: every row gets the very bytes sled keeps (see `schema`), and
//! its real columns are read from the record decoded from those bytes. What moves:
//! users (each address's key into `email_key`, from the record: sled's `emails` index
//! holds nothing more), tenants (with their member counts and versions), sessions (with
//! the acknowledged generation of sled's `session_acks`), the deny entries some token may
//! still need, signing keys, service credentials, the mail queue (every mail, queued, sent
//! or given up, so no queued mail is lost and every link mailed still redeems; its due
//! time and expiry from the record, as sled's `mail_index` holds them) and each user's mail
//! links book, invitation books and their codes, and `meta`'s longest access-token
//! lifetime.
//!
//! **The change log** is not copied: its records only matter to nodes and feed readers
//! following the old store, and none survives the move. The new log starts where the old
//! one ended: the counter is set to the sled log's last id, so new records continue its
//! ids, and the highest evicted id is set to it too, so a feed reader resuming with a
//! `Last-Event-ID` from before the move is told it missed records (and starts over from a
//! snapshot) rather than being answered as if nothing had happened since.
//!
//! **Only into an empty database.** The tables are locked against writes first (`LOCK
//! TABLE … IN EXCLUSIVE MODE`: a node writing meanwhile either committed before, and is
//! seen, or waits until the move is done), then a database holding any user, tenant,
//! session, key, service, deny entry, invitation or change-log record is refused with one
//! line and nothing written (a mail or a links book counts too).

use std::future::Future;

use deadpool_postgres::Transaction;

use super::{database_error, to_bigint, PgStore};
use crate::domain::{MailId, TenantId, UserId};
use crate::mail::EmailKey;
use crate::store::model::{ExportSource, Exported, ExportedSession, Items};
use crate::store::{
    InvitationBook, KeyRecord, MailLinks, QueuedMail, ServiceRecord, StoreError, TenantRecord,
    UserRecord,
};

/// Rows written per statement.
const BATCH: usize = 1_000;

/// How long the move waits for a node's transaction to let go of a table.
const LOCK_WAIT: &str = "10s";

/// What was moved, by kind. Counts only: no id, name or secret.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    pub users: u64,
    pub tenants: u64,
    pub sessions: u64,
    pub deny_entries: u64,
    pub keys: u64,
    pub services: u64,
    /// Mails of the queue, whatever their delivery.
    pub mails: u64,
    /// Users' mail links books.
    pub mail_links: u64,
    pub invitation_books: u64,
    pub invitation_codes: u64,
    /// The sled log's last id, where the PostgreSQL log goes on from.
    pub changes_through: u64,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "users {}, tenants {}, sessions {}, deny entries {}, keys {}, services {}, \
             mails {}, mail links {}, invitation books {}, invitation codes {}; \
             the change log goes on after id {}",
            self.users,
            self.tenants,
            self.sessions,
            self.deny_entries,
            self.keys,
            self.services,
            self.mails,
            self.mail_links,
            self.invitation_books,
            self.invitation_codes,
            self.changes_through
        )
    }
}

/// Why a move was refused or failed. Nothing was written in either case.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The database already holds a claimd store (what it holds, counted).
    #[error(
        "the PostgreSQL database already holds a claimd store ({0}): migrate only into an empty one"
    )]
    NotEmpty(String),
    /// Reading the sled store or writing the database failed while moving `kind`.
    #[error("moving {kind}: {source}")]
    Moving {
        kind: &'static str,
        source: StoreError,
    },
}

/// A `StoreError` while moving `kind`.
fn moving(kind: &'static str) -> impl Fn(StoreError) -> ImportError {
    move |source| ImportError::Moving { kind, source }
}

/// Copies everything `sled` holds into `pg`, which must hold no claimd data yet, in one
/// transaction. `now` (unix seconds) decides which deny entries are still needed. `sled`
/// should be opened exclusively (the server stopped), so what is read is one state.
///
/// # Errors
/// `NotEmpty` for a database that holds any claimd data; `Moving` for a damaged sled
/// record, a row the database refused, or a lost connection. Nothing is written then.
pub async fn import_sled(
    sled: &impl ExportSource,
    pg: &PgStore,
    now: u64,
) -> Result<ImportSummary, ImportError> {
    let mut client = pg.client().await.map_err(moving("the store"))?;
    let tx = client
        .transaction()
        .await
        .map_err(|err| moving("the store")(database_error(err)))?;
    lock_empty_database(&tx).await?;
    let summary = copy_all(sled, &tx, now).await?;
    tx.commit()
        .await
        .map_err(|err| moving("the store")(database_error(err)))?;
    Ok(summary)
}

/// Every kind of record, in an order the foreign keys accept, then `meta` and the log's
/// counter.
async fn copy_all(
    sled: &impl ExportSource,
    tx: &Transaction<'_>,
    now: u64,
) -> Result<ImportSummary, ImportError> {
    let summary = ImportSummary {
        // Tenants first: invitation books and codes refer to them.
        tenants: copy("tenants", sled.export_tenants(), |batch| {
            write_tenants(tx, batch)
        })
        .await?,
        users: copy("users", sled.export_users(), |batch| write_users(tx, batch)).await?,
        mails: copy("mails", sled.export_mail_queue(), |batch| {
            write_mails(tx, batch)
        })
        .await?,
        mail_links: copy(
            "mail links",
            // sled removes a book left empty; one found anyway has nothing to move.
            sled.export_mail_links().map(|books| -> Items<_> {
                Box::new(books.filter(|book| {
                    book.as_ref()
                        .map_or(true, |book| !book.record.links.is_empty())
                }))
            }),
            |batch| write_mail_links(tx, batch),
        )
        .await?,
        sessions: copy("sessions", sled.export_sessions(), |batch| {
            write_sessions(tx, batch)
        })
        .await?,
        deny_entries: {
            let entries = sled
                .export_deny_entries(now)
                .map_err(moving("deny entries"))?;
            let rows = entries.into_iter().map(Ok);
            copy("deny entries", Ok(Box::new(rows)), |batch| {
                write_deny(tx, batch)
            })
            .await?
        },
        keys: copy("keys", sled.export_keys(), |batch| write_keys(tx, batch)).await?,
        services: copy("services", sled.export_services(), |batch| {
            write_services(tx, batch)
        })
        .await?,
        invitation_books: copy(
            "invitation books",
            sled.export_invitation_books(),
            |batch| write_books(tx, batch),
        )
        .await?,
        invitation_codes: copy(
            "invitation codes",
            sled.export_invitation_codes(),
            |batch| write_codes(tx, batch),
        )
        .await?,
        changes_through: sled
            .export_changes_through()
            .map_err(moving("the change log"))?,
    };
    write_meta(tx, sled.longest_access_ttl(), summary.changes_through)
        .await
        .map_err(moving("meta"))?;
    Ok(summary)
}

/// Takes the write locks and refuses a database that holds anything of claimd's.
async fn lock_empty_database(tx: &Transaction<'_>) -> Result<(), ImportError> {
    let held = async {
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{LOCK_WAIT}';
             LOCK TABLE users, tenants, sessions, deny, keys, services, invitation_books,
                 invitation_codes, mail_queue, mail_links, changes, change_counter, meta
                 IN EXCLUSIVE MODE;"
        ))
        .await
        .map_err(database_error)?;
        let row = tx
            .query_one(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM tenants),
                        (SELECT count(*) FROM sessions), (SELECT count(*) FROM keys),
                        (SELECT count(*) FROM services), (SELECT count(*) FROM deny),
                        (SELECT count(*) FROM invitation_books),
                        (SELECT count(*) FROM mail_queue), (SELECT count(*) FROM mail_links),
                        (SELECT last FROM change_counter)",
                &[],
            )
            .await
            .map_err(database_error)?;
        let names = [
            "users",
            "tenants",
            "sessions",
            "keys",
            "services",
            "deny entries",
            "invitation books",
            "mails",
            "mail links",
            "change log at id",
        ];
        Ok::<_, StoreError>(
            names
                .iter()
                .enumerate()
                .filter_map(|(at, name)| {
                    let count: i64 = row.get(at);
                    (count > 0).then(|| format!("{name} {count}"))
                })
                .collect::<Vec<_>>(),
        )
    }
    .await
    .map_err(moving("the store"))?;
    if held.is_empty() {
        Ok(())
    } else {
        Err(ImportError::NotEmpty(held.join(", ")))
    }
}

/// Reads `items` in batches of [`BATCH`] and hands each to `write`; returns how many were
/// written.
async fn copy<T, W, F>(
    kind: &'static str,
    items: Result<Items<T>, StoreError>,
    mut write: W,
) -> Result<u64, ImportError>
where
    W: FnMut(Vec<T>) -> F,
    F: Future<Output = Result<(), StoreError>>,
{
    let mut written = 0;
    let mut batch = Vec::with_capacity(BATCH);
    for item in items.map_err(moving(kind))? {
        batch.push(item.map_err(moving(kind))?);
        if batch.len() == BATCH {
            written += batch.len() as u64;
            write(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                .await
                .map_err(moving(kind))?;
        }
    }
    if !batch.is_empty() {
        written += batch.len() as u64;
        write(batch).await.map_err(moving(kind))?;
    }
    Ok(written)
}

/// Runs one multi-row insert and checks every row went in.
async fn insert(
    tx: &Transaction<'_>,
    statement: &str,
    columns: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    rows: usize,
) -> Result<(), StoreError> {
    let inserted = tx
        .execute(statement, columns)
        .await
        .map_err(database_error)?;
    if inserted == rows as u64 {
        Ok(())
    } else {
        Err(StoreError::Database(format!(
            "{inserted} of {rows} rows were written"
        )))
    }
}

async fn write_users(
    tx: &Transaction<'_>,
    batch: Vec<Exported<UserId, UserRecord>>,
) -> Result<(), StoreError> {
    let ids: Vec<&[u8]> = batch.iter().map(|user| &user.key.as_bytes()[..]).collect();
    let names: Vec<&str> = batch
        .iter()
        .map(|user| user.record.username.as_str())
        .collect();
    let tenants: Vec<Option<&[u8]>> = batch
        .iter()
        .map(|user| {
            user.record
                .tenant
                .as_ref()
                .map(|tenant| &tenant.as_bytes()[..])
        })
        .collect();
    let email_keys: Vec<Option<&str>> = batch
        .iter()
        .map(|user| user.record.email_key().map(EmailKey::as_str))
        .collect();
    let records: Vec<&[u8]> = batch.iter().map(|user| &user.bytes[..]).collect();
    insert(
        tx,
        "INSERT INTO users (id, username, tenant, email_key, record)
         SELECT * FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::text[], $5::bytea[])",
        &[&ids, &names, &tenants, &email_keys, &records],
        batch.len(),
    )
    .await
}

async fn write_mails(
    tx: &Transaction<'_>,
    batch: Vec<Exported<MailId, QueuedMail>>,
) -> Result<(), StoreError> {
    let mut ids: Vec<&[u8]> = Vec::with_capacity(batch.len());
    let mut users: Vec<&[u8]> = Vec::with_capacity(batch.len());
    let mut due = Vec::with_capacity(batch.len());
    let mut expiries = Vec::with_capacity(batch.len());
    let mut records: Vec<&[u8]> = Vec::with_capacity(batch.len());
    for mail in &batch {
        ids.push(&mail.key.as_bytes()[..]);
        users.push(&mail.record.user.as_bytes()[..]);
        due.push(mail.record.next_attempt_at().map(to_bigint).transpose()?);
        expiries.push(to_bigint(mail.record.expires_at)?);
        records.push(&mail.bytes[..]);
    }
    insert(
        tx,
        "INSERT INTO mail_queue (id, user_id, due, expires_at, record)
         SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bigint[],
                              $5::bytea[])",
        &[&ids, &users, &due, &expiries, &records],
        batch.len(),
    )
    .await
}

async fn write_mail_links(
    tx: &Transaction<'_>,
    batch: Vec<Exported<UserId, MailLinks>>,
) -> Result<(), StoreError> {
    let mut users: Vec<&[u8]> = Vec::with_capacity(batch.len());
    let mut next_expiries = Vec::with_capacity(batch.len());
    let mut records: Vec<&[u8]> = Vec::with_capacity(batch.len());
    for book in &batch {
        let next_expiry = book.record.links.iter().map(|link| link.expires_at).min();
        users.push(&book.key.as_bytes()[..]);
        // The import keeps only books with a link (see `copy_all`).
        next_expiries.push(to_bigint(next_expiry.unwrap_or_default())?);
        records.push(&book.bytes[..]);
    }
    insert(
        tx,
        "INSERT INTO mail_links (user_id, next_expiry, record)
         SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[])",
        &[&users, &next_expiries, &records],
        batch.len(),
    )
    .await
}

async fn write_tenants(
    tx: &Transaction<'_>,
    batch: Vec<Exported<TenantId, TenantRecord>>,
) -> Result<(), StoreError> {
    let ids: Vec<&[u8]> = batch
        .iter()
        .map(|tenant| &tenant.key.as_bytes()[..])
        .collect();
    let records: Vec<&[u8]> = batch.iter().map(|tenant| &tenant.bytes[..]).collect();
    insert(
        tx,
        "INSERT INTO tenants (id, record) SELECT * FROM unnest($1::bytea[], $2::bytea[])",
        &[&ids, &records],
        batch.len(),
    )
    .await
}

async fn write_sessions(
    tx: &Transaction<'_>,
    batch: Vec<ExportedSession>,
) -> Result<(), StoreError> {
    let mut ids: Vec<&[u8]> = Vec::with_capacity(batch.len());
    let mut users: Vec<&[u8]> = Vec::with_capacity(batch.len());
    let mut generations = Vec::with_capacity(batch.len());
    let mut expiries = Vec::with_capacity(batch.len());
    let mut acknowledged = Vec::with_capacity(batch.len());
    let mut records: Vec<&[u8]> = Vec::with_capacity(batch.len());
    for exported in &batch {
        let session = &exported.session;
        ids.push(&session.key.as_bytes()[..]);
        users.push(&session.record.user.as_bytes()[..]);
        generations.push(to_bigint(session.record.generation)?);
        expiries.push(to_bigint(session.record.expires_at)?);
        acknowledged.push(exported.acknowledged.map(to_bigint).transpose()?);
        records.push(&session.bytes[..]);
    }
    insert(
        tx,
        "INSERT INTO sessions (id, user_id, generation, expires_at, acknowledged, record)
         SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bigint[],
                              $5::bigint[], $6::bytea[])",
        &[
            &ids,
            &users,
            &generations,
            &expiries,
            &acknowledged,
            &records,
        ],
        batch.len(),
    )
    .await
}

async fn write_deny(
    tx: &Transaction<'_>,
    batch: Vec<((u8, [u8; 16]), u64)>,
) -> Result<(), StoreError> {
    // "char" is one byte; the tags are ASCII.
    let kinds: Vec<i8> = batch.iter().map(|((tag, _), _)| *tag as i8).collect();
    let ids: Vec<&[u8]> = batch.iter().map(|((_, id), _)| &id[..]).collect();
    let exps = batch
        .iter()
        .map(|(_, exp)| to_bigint(*exp))
        .collect::<Result<Vec<_>, _>>()?;
    insert(
        tx,
        "INSERT INTO deny (kind, id, exp)
         SELECT * FROM unnest($1::\"char\"[], $2::bytea[], $3::bigint[])",
        &[&kinds, &ids, &exps],
        batch.len(),
    )
    .await
}

async fn write_keys(
    tx: &Transaction<'_>,
    batch: Vec<Exported<String, KeyRecord>>,
) -> Result<(), StoreError> {
    let kids: Vec<&str> = batch.iter().map(|key| key.key.as_str()).collect();
    let records: Vec<&[u8]> = batch.iter().map(|key| &key.bytes[..]).collect();
    insert(
        tx,
        "INSERT INTO keys (kid, record) SELECT * FROM unnest($1::text[], $2::bytea[])",
        &[&kids, &records],
        batch.len(),
    )
    .await
}

async fn write_services(
    tx: &Transaction<'_>,
    batch: Vec<Exported<String, ServiceRecord>>,
) -> Result<(), StoreError> {
    let ids: Vec<&str> = batch.iter().map(|service| service.key.as_str()).collect();
    let records: Vec<&[u8]> = batch.iter().map(|service| &service.bytes[..]).collect();
    insert(
        tx,
        "INSERT INTO services (client_id, record) SELECT * FROM unnest($1::text[], $2::bytea[])",
        &[&ids, &records],
        batch.len(),
    )
    .await
}

async fn write_books(
    tx: &Transaction<'_>,
    batch: Vec<Exported<TenantId, InvitationBook>>,
) -> Result<(), StoreError> {
    let tenants: Vec<&[u8]> = batch.iter().map(|book| &book.key.as_bytes()[..]).collect();
    let records: Vec<&[u8]> = batch.iter().map(|book| &book.bytes[..]).collect();
    insert(
        tx,
        "INSERT INTO invitation_books (tenant, record)
         SELECT * FROM unnest($1::bytea[], $2::bytea[])",
        &[&tenants, &records],
        batch.len(),
    )
    .await
}

async fn write_codes(
    tx: &Transaction<'_>,
    batch: Vec<([u8; 32], TenantId)>,
) -> Result<(), StoreError> {
    let digests: Vec<&[u8]> = batch.iter().map(|(digest, _)| &digest[..]).collect();
    let tenants: Vec<&[u8]> = batch
        .iter()
        .map(|(_, tenant)| &tenant.as_bytes()[..])
        .collect();
    insert(
        tx,
        "INSERT INTO invitation_codes (code_digest, tenant)
         SELECT * FROM unnest($1::bytea[], $2::bytea[])",
        &[&digests, &tenants],
        batch.len(),
    )
    .await
}

/// The longest access-token lifetime, and the log's counter and eviction mark at the sled
/// log's last id (see the module doc).
async fn write_meta(
    tx: &Transaction<'_>,
    longest_access_ttl: u64,
    changes_through: u64,
) -> Result<(), StoreError> {
    let through = to_bigint(changes_through)?;
    tx.execute(
        "UPDATE meta SET value = $1 WHERE name = 'longest_access_ttl'",
        &[&to_bigint(longest_access_ttl)?],
    )
    .await
    .map_err(database_error)?;
    tx.execute(
        "UPDATE meta SET value = $1 WHERE name = 'changes_evicted_through'",
        &[&through],
    )
    .await
    .map_err(database_error)?;
    tx.execute("UPDATE change_counter SET last = $1", &[&through])
        .await
        .map_err(database_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{InvitationId, SessionId};
    use crate::mail::{EmailAddress, LinkPurpose};
    use crate::store::model::fixtures;
    use crate::store::postgres::testing::TestDatabase;
    use crate::store::SledStore;
    use crate::store::{ChangesAfter, DenyKind, InvitationRecord, InvitationState, SessionRecord};
    use crate::store::{LinkEffect, MailWriteError};

    const NOW: u64 = 2_000_000_000;

    fn user(name: &str, tenant: Option<TenantId>) -> UserRecord {
        UserRecord {
            username: name.into(),
            password_hash: "$argon2id$not-a-hash".into(),
            tenant,
            roles: vec!["reader".into()],
            plan: "gold".into(),
            attrs: serde_json::Map::new(),
            claims_version: 3,
            not_before: 0,
            disabled: false,
            created_at: NOW,
            updated_at: NOW,
            email: None,
            email_verified: false,
        }
    }

    fn session(user: UserId, generation: u64) -> SessionRecord {
        SessionRecord {
            user,
            session_key: [7; 32],
            generation,
            created_at: NOW,
            expires_at: NOW + 86_400,
            last_used: NOW,
            rotated_at_ms: NOW * 1000,
            revoked: false,
            current_access_token: "not.a.token".into(),
            current_access_expires: NOW + 900,
        }
    }

    /// The mails `filled_sled` queued for alice: a link superseded by the next, that one
    /// (due), and one claimed by a sender (leased until `NOW + 60`).
    struct Mails {
        superseded: MailId,
        verify: MailId,
        claimed: MailId,
    }

    /// Rows of each table, the log's counter and eviction mark, then the mail tables.
    async fn table_state(pg: &PgStore) -> Vec<i64> {
        let client = pg.client().await.unwrap();
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM tenants),
                        (SELECT count(*) FROM sessions), (SELECT count(*) FROM deny),
                        (SELECT count(*) FROM keys), (SELECT count(*) FROM services),
                        (SELECT count(*) FROM invitation_books),
                        (SELECT count(*) FROM invitation_codes),
                        (SELECT last FROM change_counter),
                        (SELECT value FROM meta WHERE name = 'changes_evicted_through'),
                        (SELECT count(*) FROM mail_queue), (SELECT count(*) FROM mail_links)",
                &[],
            )
            .await
            .unwrap();
        (0..12).map(|at| row.get(at)).collect()
    }

    /// A sled store with one of everything; its ids.
    fn filled_sled() -> (
        tempfile::TempDir,
        SledStore,
        UserId,
        TenantId,
        SessionId,
        Mails,
    ) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let sled = SledStore::open(dir.path(), 4).expect("sled opens");
        let tenant = TenantId::generate();
        sled.create_tenant(tenant, &fixtures::tenant(Some(10)))
            .unwrap();
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let to = EmailAddress::parse("Alice@Example.org").unwrap();
        let alice_record = UserRecord {
            email: Some(to.clone()),
            ..user("alice", Some(tenant))
        };
        sled.create_user(alice, &alice_record, None, NOW).unwrap();
        sled.create_user(bob, &user("bob", None), None, NOW)
            .unwrap();
        let sid = SessionId::generate();
        sled.insert_session(sid, &session(alice, 4)).unwrap();
        sled.acknowledge_generation(sid, 4).unwrap();
        sled.insert_session(SessionId::generate(), &session(bob, 1))
            .unwrap();
        sled.deny(DenyKind::Token, &[5; 16], NOW + 600..=NOW + 600)
            .unwrap();
        sled.deny(DenyKind::Session, &[6; 16], NOW..=NOW + 900)
            .unwrap();
        sled.put_signing_key(
            "k1",
            &KeyRecord {
                alg: "EdDSA".into(),
                private_key: "not a key".into(),
                created_at: NOW,
                signs_from: NOW,
                retired_at: None,
            },
        )
        .unwrap();
        sled.put_service(
            "svc",
            &ServiceRecord {
                name: "billing".into(),
                secret_digest: [8; 32],
                created_at: NOW,
            },
        )
        .unwrap();
        sled.create_invitation(
            tenant,
            &InvitationRecord {
                id: InvitationId::generate(),
                code_digest: [9; 32],
                created_at: NOW,
                expires_at: NOW + 3_600,
                state: InvitationState::Outstanding,
                ended_at: 0,
                used_by: None,
            },
            NOW,
        )
        .unwrap();
        let superseded = QueuedMail::new(alice, LinkPurpose::VerifyEmail, to.clone(), NOW, 1_800);
        let verify = QueuedMail::new(alice, LinkPurpose::VerifyEmail, to.clone(), NOW + 1, 1_800);
        let claimed = QueuedMail::new(alice, LinkPurpose::Magic, to, NOW - 10, 1_800);
        sled.queue_mail(&claimed, NOW - 10).unwrap();
        assert_eq!(sled.claim_due_mails(NOW, 60, 10).unwrap().len(), 1);
        sled.queue_mail(&superseded, NOW).unwrap();
        sled.queue_mail(&verify, NOW + 1).unwrap();
        sled.note_access_ttl(900).unwrap();
        let mails = Mails {
            superseded: superseded.id,
            verify: verify.id,
            claimed: claimed.id,
        };
        (dir, sled, alice, tenant, sid, mails)
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn everything_moves_and_reads_back_the_same() {
        let db = TestDatabase::require().await;
        let (_dir, sled, alice, tenant, sid, mails) = filled_sled();
        let through = sled.export_changes_through().unwrap();
        assert!(through > 0, "the sled writes above logged changes");
        let pg = PgStore::connect(&db.url, 2).await.unwrap();

        let summary = import_sled(&sled, &pg, NOW).await.unwrap();

        assert_eq!(
            summary,
            ImportSummary {
                users: 2,
                tenants: 1,
                sessions: 2,
                deny_entries: 2,
                keys: 1,
                services: 1,
                mails: 3,
                mail_links: 1,
                invitation_books: 1,
                invitation_codes: 1,
                changes_through: through,
            }
        );
        assert_eq!(pg.user(alice).await.unwrap(), sled.user(alice).unwrap());
        let key = EmailAddress::parse("alice@example.org")
            .unwrap()
            .key()
            .clone();
        assert_eq!(pg.user_id_by_email(&key).await.unwrap(), Some(alice));
        let alice_id = pg
            .user_id_by_name(&crate::domain::Username::parse("alice").unwrap())
            .await
            .unwrap();
        assert_eq!(alice_id, Some(alice));
        let moved_tenant = pg.tenant(tenant).await.unwrap().unwrap();
        assert_eq!(moved_tenant, sled.tenant(tenant).unwrap().unwrap());
        assert_eq!(moved_tenant.members, 1);
        assert_eq!(pg.session(sid).await.unwrap(), sled.session(sid).unwrap());
        assert_eq!(pg.acknowledged_generation(sid).await.unwrap(), Some(4));
        assert_eq!(pg.user_session_ids(alice).await.unwrap(), vec![sid]);
        assert!(pg
            .is_denied(DenyKind::Token, &[5; 16], NOW + 600)
            .await
            .unwrap());
        assert!(pg
            .is_denied(DenyKind::Session, &[6; 16], NOW + 900)
            .await
            .unwrap());
        assert!(!pg
            .is_denied(DenyKind::Session, &[6; 16], NOW + 901)
            .await
            .unwrap());
        assert_eq!(
            pg.signing_keys().await.unwrap(),
            sled.signing_keys().unwrap()
        );
        assert_eq!(
            pg.service("svc").await.unwrap(),
            sled.service("svc").unwrap()
        );
        assert_eq!(
            pg.invitation_tenant(&[9; 32], NOW).await.unwrap(),
            Some(tenant)
        );
        assert_eq!(pg.pending_invitations(tenant, NOW).await.unwrap(), 1);
        assert_eq!(pg.longest_access_ttl().await.unwrap(), 900);
        // The log goes on from the sled log's last id; a reader from before it starts over.
        assert_eq!(pg.changes_through().await.unwrap(), through);
        assert!(matches!(
            pg.changes_after(through, 10).await.unwrap(),
            ChangesAfter::Records { records, through: at } if records.is_empty() && at == through
        ));
        assert_eq!(
            pg.changes_after(through - 1, 10).await.unwrap(),
            ChangesAfter::Gone {
                evicted_through: through
            }
        );

        // Every mail moves as it was: the queue's count, the superseded one stopped, the
        // claimed one leased, the due one due; the links book with them.
        for id in [mails.superseded, mails.verify, mails.claimed] {
            assert_eq!(
                pg.queued_mail(id).await.unwrap(),
                sled.queued_mail(id).unwrap()
            );
        }
        assert_eq!(pg.mail_queue_depth().await.unwrap(), 2);
        assert_eq!(sled.mail_queue_depth().unwrap(), 2);
        let due: Vec<MailId> = pg
            .claim_due_mails(NOW + 1, 60, 10)
            .await
            .unwrap()
            .iter()
            .map(|mail| mail.id)
            .collect();
        assert_eq!(due, vec![mails.verify]);
        let prove = LinkEffect::ProveAddress;
        let refused = pg
            .redeem_mail_link(mails.superseded, LinkPurpose::VerifyEmail, &prove, NOW + 2)
            .await;
        assert!(
            matches!(refused, Err(MailWriteError::LinkInvalid(_))),
            "{refused:?}"
        );
        let (id, verified) = pg
            .redeem_mail_link(mails.verify, LinkPurpose::VerifyEmail, &prove, NOW + 2)
            .await
            .unwrap();
        assert_eq!((id, verified.email_verified), (alice, true));
        db.drop_now().await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn a_database_holding_a_store_is_refused_and_left_as_it_was() {
        let db = TestDatabase::require().await;
        let (_dir, sled, ..) = filled_sled();
        let pg = PgStore::connect(&db.url, 2).await.unwrap();
        import_sled(&sled, &pg, NOW).await.unwrap();
        let before = table_state(&pg).await;

        let err = import_sled(&sled, &pg, NOW).await.unwrap_err();

        let text = err.to_string();
        assert!(matches!(err, ImportError::NotEmpty(_)), "{text}");
        assert!(text.contains("already holds a claimd store"), "{text}");
        assert!(text.contains("(users 2, tenants 1, sessions 2,"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(table_state(&pg).await, before);
        db.drop_now().await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn a_failure_part_way_leaves_nothing_written() {
        let db = TestDatabase::require().await;
        let (_dir, sled, ..) = filled_sled();
        // A code whose tenant does not exist: the last table written refuses it, after
        // users, tenants, sessions, keys and the rest went in.
        sled.engine()
            .unwrap()
            .invitation_codes
            .insert([1; 32], &[0xEE; 16][..])
            .unwrap();
        let pg = PgStore::connect(&db.url, 2).await.unwrap();
        let empty = table_state(&pg).await;

        let err = import_sled(&sled, &pg, NOW).await.unwrap_err();

        let text = err.to_string();
        assert!(text.starts_with("moving invitation codes: "), "{text}");
        assert_eq!(table_state(&pg).await, empty);
        assert_eq!(empty[..9], [0; 9]);
        assert_eq!(empty[10..], [0; 2]);
        db.drop_now().await;
    }
}
