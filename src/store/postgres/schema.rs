//! The PostgreSQL schema and its migrations, embedded in the binary as an ordered list of
//! SQL steps: step *n* brings a database from schema *n − 1* to *n*. A released step never
//! changes; a change to the schema is a new step at the end.
//!
//! **Running them.** Every start runs [`migrate`] in one transaction that first takes
//! `pg_advisory_xact_lock(`[`MIGRATION_LOCK`]`)`: two nodes starting together queue on the
//! lock, the second one reads the version the first committed and finds nothing to do. The
//! version lives in `claimd_schema` (one row). A database whose schema is newer than this
//! build is refused with one line: an older binary would write rows a newer one no longer
//! reads, or miss rows it must write (the sled store refuses the same way).
//!
//! **Tables.** One per entity the sled store keeps. Each row has *real columns* for what
//! the database itself must enforce, find by, or compare and set on (ids, the normalised
//! username, the user's tenant and address key, a session's generation and expiry, a deny
//! entry's `exp`, a mail's next attempt and expiry, a links book's earliest expiry), and a `record bytea` holding the very bytes sled keeps (`disk::Stored`, format byte +
//! bincode). So both backends share one record format, its versioning rules and its golden
//! tests, and moving a store between them copies records without converting them. A column
//! that repeats a field of its record is written from the same in-memory value in the same
//! statement, never apart.
//!
//! What differs from the sled trees, and why:
//! - `usernames` is the `UNIQUE` constraint on `users.username`; tenant membership is the
//!   `users.tenant` column (indexed). A registration counts seats under the tenant row's
//!   lock (`SELECT … FOR UPDATE`), which serialises it against every other registration
//!   into that tenant on any node: `max_accounts` holds across nodes.
//! - `user_sessions` and `session_expiry` are indexes on `sessions (user_id)` and
//!   `sessions (expires_at)`; `session_acks` is the `acknowledged` column of the session
//!   (written late, never by the rotation's compare-and-set, gone with the row).
//! - A refresh rotation is one `UPDATE … WHERE id = $1 AND generation = $2`: the row lock
//!   and the re-check after it make exactly one of two racing rotations win, on any node.
//! - The deny list is one table `(kind, id) → exp` with an index on `exp`: eviction is an
//!   indexed delete of what is past `exp` + leeway. `pending_denials` has no counterpart:
//!   a revocation's deny entries commit in the same transaction as its session marks.
//! - Invitations stay one book per tenant (`invitation_books`), the unit the flows read
//!   whole when they count seats, under the same tenant row lock; `invitation_codes` maps a
//!   code's digest to its tenant. Both go with their tenant (`ON DELETE CASCADE`).
//! - `users.tenant` has no foreign key: sled never enforced one, so a store moved here
//!   must not be refused for it; the flows check the tenant under its row lock.
//! - The change log is `changes (id, at, record)` with its ids from the one-row counter
//!   `change_counter` (see `log`); `meta` holds named numbers (the highest evicted change
//!   id, the longest access-token lifetime).
//! - `emails` is the `UNIQUE` constraint on `users.email_key` (schema 3): the address's
//!   lowercased key ([`crate::mail::EmailKey`]), `NULL` for a user without one, while the
//!   record keeps the address as the user gave it. Two nodes giving one address to two
//!   users: the second write fails on the constraint, whichever node it runs on.
//! - `mail_index` is two indexes on `mail_queue`: `due` (the mail's next attempt while it
//!   is queued, `NULL` once sent or given up; a partial index over the queued ones, so the
//!   sender's pass and the queue's depth read only those) and `expires_at` (the link's
//!   end, for eviction). A sender claims with `FOR UPDATE SKIP LOCKED`: two nodes' senders
//!   never wait on each other and never take one mail together. `user_id` is indexed so a
//!   deleted user's mails go with it.
//! - `mail_links` keeps one book per user, as sled does, with `next_expiry` (the earliest
//!   link expiry in the book) so eviction finds the books it must prune by an index
//!   instead of reading them all. Every writer of a book locks the user's row first (or,
//!   for eviction, which changes no user, the book's own row), then the book, then mails;
//!   rows of `mail_queue` are locked in id order within one statement: no two writes wait
//!   on each other in a circle.
//! - `mail_queue.user_id` and `mail_links.user_id` have no foreign key, for the reason
//!   `users.tenant` has none; a mail is queued under its user's row lock, and deleting a
//!   user deletes its mails and its book in the same transaction.
//! - Ids are `bytea` of 16 bytes; `bytea` compares bytewise, so ordering by id is sled's
//!   key order (users in creation order, UUIDv7). Text keys that are listed in order (key
//!   ids, client ids) use the "C" collation, bytewise too. Numbers are `bigint`; claimd's
//!   (seconds, milliseconds, counters) stay far below 2^63.

use super::{database_error, PgStore};
use crate::store::StoreError;

/// The advisory-lock key every claimd node takes to migrate: "claimd" in ASCII, then 1.
pub const MIGRATION_LOCK: i64 = 0x636c_6169_6d64_0001;

/// How long a start waits for another node's migration before it gives up.
const LOCK_WAIT: &str = "60s";

/// The migrations, oldest first: index *i* brings the schema to version *i + 1*.
const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Schema 3 (issue 21): users' email addresses, unique by their lowercased key, the mail
/// queue and each user's mail links. No user of an older build had an address: the new
/// column starts `NULL`, the new tables empty.
const V3: &str = r#"
ALTER TABLE users ADD COLUMN email_key text CONSTRAINT users_email_key_key UNIQUE;

CREATE TABLE mail_queue (
    id         bytea PRIMARY KEY CHECK (length(id) = 16),
    user_id    bytea NOT NULL CHECK (length(user_id) = 16),
    due        bigint,
    expires_at bigint NOT NULL,
    record     bytea NOT NULL
);
CREATE INDEX mail_queue_by_due ON mail_queue (due) WHERE due IS NOT NULL;
CREATE INDEX mail_queue_by_expiry ON mail_queue (expires_at);
CREATE INDEX mail_queue_by_user ON mail_queue (user_id);

CREATE TABLE mail_links (
    user_id     bytea PRIMARY KEY CHECK (length(user_id) = 16),
    next_expiry bigint NOT NULL,
    record      bytea NOT NULL
);
CREATE INDEX mail_links_by_expiry ON mail_links (next_expiry);
"#;

/// Schema 2: the nodes sharing the database, each with how far it has applied the change
/// log and until when it may answer from memory (`postgres::node`): a logged write is
/// acknowledged once every node whose lease runs has applied it.
const V2: &str = r#"
CREATE TABLE nodes (
    id          bytea PRIMARY KEY CHECK (length(id) = 16),
    applied     bigint NOT NULL,
    lease_until timestamptz NOT NULL
);
"#;

/// Schema 1: every entity of the sled store, and the change log.
const V1: &str = r#"
CREATE TABLE meta (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO meta (name, value) VALUES
    ('changes_evicted_through', 0),
    ('longest_access_ttl', 0);

CREATE TABLE users (
    id       bytea PRIMARY KEY CHECK (length(id) = 16),
    username text NOT NULL UNIQUE,
    tenant   bytea CHECK (length(tenant) = 16),
    record   bytea NOT NULL
);
CREATE INDEX users_by_tenant ON users (tenant) WHERE tenant IS NOT NULL;

CREATE TABLE tenants (
    id     bytea PRIMARY KEY CHECK (length(id) = 16),
    record bytea NOT NULL
);

CREATE TABLE sessions (
    id           bytea PRIMARY KEY CHECK (length(id) = 16),
    user_id      bytea NOT NULL CHECK (length(user_id) = 16),
    generation   bigint NOT NULL,
    expires_at   bigint NOT NULL,
    acknowledged bigint,
    record       bytea NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE deny (
    kind "char" NOT NULL CHECK (kind IN ('j', 's')),
    id   bytea NOT NULL CHECK (length(id) = 16),
    exp  bigint NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX deny_by_exp ON deny (exp);

CREATE TABLE keys (
    kid    text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);

CREATE TABLE services (
    client_id text COLLATE "C" PRIMARY KEY,
    record    bytea NOT NULL
);

CREATE TABLE invitation_books (
    tenant bytea PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    record bytea NOT NULL
);

CREATE TABLE invitation_codes (
    code_digest bytea PRIMARY KEY CHECK (length(code_digest) = 32),
    tenant      bytea NOT NULL REFERENCES tenants (id) ON DELETE CASCADE
);
CREATE INDEX invitation_codes_by_tenant ON invitation_codes (tenant);

CREATE TABLE change_counter (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last      bigint NOT NULL CHECK (last >= 0)
);
INSERT INTO change_counter (last) VALUES (0);

CREATE TABLE changes (
    id     bigint PRIMARY KEY,
    at     bigint NOT NULL,
    record bytea NOT NULL
);
"#;

/// Brings the database to [`SCHEMA_VERSION`] under the migration lock, in one
/// transaction: either every step commits with its version, or none does. Returns the
/// version found before.
///
/// # Errors
/// `Open` for a schema newer than this build (one line) or a lock held past [`LOCK_WAIT`];
/// `Database` for a statement the server refused.
pub(crate) async fn migrate(store: &PgStore) -> Result<i32, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(database_error)?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
        .await
        .map_err(database_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|err| match err.code() {
            Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => StoreError::Open(
                format!("another node held the migration lock for over {LOCK_WAIT}"),
            ),
            _ => database_error(err),
        })?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS claimd_schema (
             singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
             version   integer NOT NULL
         );
         INSERT INTO claimd_schema (version) VALUES (0) ON CONFLICT DO NOTHING;",
    )
    .await
    .map_err(database_error)?;
    let found: i32 = tx
        .query_one("SELECT version FROM claimd_schema", &[])
        .await
        .map_err(database_error)?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::Open(format!(
            "the database's claimd schema {found} is newer than this build ({SCHEMA_VERSION})"
        )));
    }
    for (version, step) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.batch_execute(step).await.map_err(database_error)?;
        tx.execute("UPDATE claimd_schema SET version = $1", &[&version])
            .await
            .map_err(database_error)?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    tx.commit().await.map_err(database_error)?;
    Ok(found)
}
