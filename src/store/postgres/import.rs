//! Moving a sled store into an empty PostgreSQL database (`claimd migrate --from sled --to
//! postgres`), in ONE transaction: either the database ends up holding the whole store,
//! or it holds nothing of it.
//!
//! Records are not converted: every row gets the very bytes sled keeps (see `schema`), and
//! its real columns are read from the record decoded from those bytes. What moves:
//! users, tenants (with their member counts and versions), sessions (with the
//! acknowledged generation of sled's `session_acks`), the deny entries some token may
//! still need, signing keys, service credentials, invitation books and their codes, and
//! `meta`'s longest access-token lifetime.
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
//! line and nothing written.

use std::future::Future;

use deadpool_postgres::Transaction;

use super::{database_error, to_bigint, PgStore};
use crate::domain::{TenantId, UserId};
use crate::store::sled::export::{Exported, ExportedSession};
use crate::store::{
    InvitationBook, KeyRecord, ServiceRecord, SledStore, StoreError, TenantRecord, UserRecord,
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
    pub invitation_books: u64,
    pub invitation_codes: u64,
    /// The sled log's last id, where the PostgreSQL log goes on from.
    pub changes_through: u64,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} users, {} tenants, {} sessions, {} deny entries, {} keys, {} services, \
             {} invitation books, {} invitation codes; the change log goes on after id {}",
            self.users,
            self.tenants,
            self.sessions,
            self.deny_entries,
            self.keys,
            self.services,
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
    sled: &SledStore,
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
    sled: &SledStore,
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
        sessions: copy("sessions", sled.export_sessions(), |batch| {
            write_sessions(tx, batch)
        })
        .await?,
        deny_entries: {
            let entries = sled.export_deny_entries(now).map_err(moving("deny entries"))?;
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
        invitation_books: copy("invitation books", sled.export_invitation_books(), |batch| {
            write_books(tx, batch)
        })
        .await?,
        invitation_codes: copy("invitation codes", sled.export_invitation_codes(), |batch| {
            write_codes(tx, batch)
        })
        .await?,
        changes_through: sled.export_changes_through().map_err(moving("the change log"))?,
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
                 invitation_codes, changes, change_counter, meta IN EXCLUSIVE MODE;"
        ))
        .await
        .map_err(database_error)?;
        let row = tx
            .query_one(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM tenants),
                        (SELECT count(*) FROM sessions), (SELECT count(*) FROM keys),
                        (SELECT count(*) FROM services), (SELECT count(*) FROM deny),
                        (SELECT count(*) FROM invitation_books),
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
            "change-log records",
        ];
        Ok::<_, StoreError>(
            names
                .iter()
                .enumerate()
                .filter_map(|(at, name)| {
                    let count: i64 = row.get(at);
                    (count > 0).then(|| format!("{count} {name}"))
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
    items: Result<Box<dyn Iterator<Item = Result<T, StoreError>>>, StoreError>,
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
        .map(|user| user.record.tenant.as_ref().map(|tenant| &tenant.as_bytes()[..]))
        .collect();
    let records: Vec<&[u8]> = batch.iter().map(|user| &user.bytes[..]).collect();
    insert(
        tx,
        "INSERT INTO users (id, username, tenant, record)
         SELECT * FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::bytea[])",
        &[&ids, &names, &tenants, &records],
        batch.len(),
    )
    .await
}

async fn write_tenants(
    tx: &Transaction<'_>,
    batch: Vec<Exported<TenantId, TenantRecord>>,
) -> Result<(), StoreError> {
    let ids: Vec<&[u8]> = batch.iter().map(|tenant| &tenant.key.as_bytes()[..]).collect();
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
