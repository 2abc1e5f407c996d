//! The store the flows talk to, named by what they need (create a user, rotate a session if
//! its generation is still N, revoke, bump a version, read the change log after an id),
//! whichever backend runs under it (DESIGN.md "Two backends"). `auth/` and `http/` hold a
//! [`Store`] and never learn which one that is.
//!
//! - [`sled`]: the embedded default, one process over one data directory;
//! - [`postgres`]: one database shared by several claimd nodes, each keeping a replica of
//!   what verification reads, current from the database's change log.
//!
//! What belongs to no backend lives here too: the errors, the record codec ([`codec`]) and
//! the versioned record shapes both backends write (`disk`).
//!
//! Reads that verification makes on every request ([`Store::user_stamp`],
//! [`Store::tenant_version`], [`Store::token_is_revoked`]) are synchronous and answered from
//! memory; everything else may wait on the backend and is `async`. A write is acknowledged
//! only after [`Store::wait_durable`]. The embedded backend's calls run on blocking
//! threads ([`blocking`]), never on the caller's: a stalled disk holds the requests that
//! need it, not the server.

pub mod blocking;
pub mod codec;
pub(crate) mod disk;
pub mod mirror;
pub mod model;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
mod replica;
pub mod sled;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::clock::Clock;
use crate::domain::{InvitationId, SessionId, TenantId, TokenId, UserId, Username};

pub use codec::CodecError;
pub use mirror::UserStamp;
pub use model::{
    AccountChange, Change, ChangeRecord, ChangesAfter, ClaimsApplied, ClaimsChange, DenyKind,
    EvictionReport, InvitationBook, InvitationRecord, InvitationState, InvitationStatus,
    InvitationWriteError, KeyRecord, LoggedChange, Revocation, Rotation, ServiceRecord,
    SessionRecord, TenantChange, TenantFull, TenantRecord, TenantWriteError, UserRecord,
    UserWriteError,
};
#[cfg(feature = "postgres")]
pub use postgres::node::PgNode;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use sled::backup::{self, BackupSummary};
pub use sled::health::HealthCounts;
pub use sled::MissingSeal;
pub use sled::{SledStore, SCHEMA_VERSION};

/// What can go wrong below the flows.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] ::sled::Error),
    /// The database server refused or failed a statement, or could not be reached (the
    /// PostgreSQL backend). Never carries the connection string.
    #[error("database error: {0}")]
    Database(String),
    #[error("corrupt record in `{tree}`: {source}")]
    Corrupt {
        tree: &'static str,
        source: CodecError,
    },
    #[error("could not make the write durable: {0}")]
    Flush(String),
    /// The backup's own file or stream failed (its disk full, the reader gone): the store
    /// itself is fine, and goes on taking writes.
    #[error("could not write the backup: {0}")]
    Backup(String),
    #[error("could not open the store: {0}")]
    Open(String),
    #[error("the data directory is in use by another process (is claimd running?)")]
    InUse,
    /// Writes are failing (or the store is being reopened after they did): the request's
    /// outcome is unknown and the client should retry.
    #[error("the store cannot write: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// A fault of the disk or of the database under it, as opposed to a damaged record:
    /// the request may succeed when retried after the fault clears.
    pub fn is_storage_fault(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(_)
                | StoreError::Database(_)
                | StoreError::Flush(_)
                | StoreError::Backup(_)
                | StoreError::Unavailable(_)
        )
    }
}

/// A call whose outcome is unknown (a lane closing, a call that panicked).
fn unavailable<E: From<StoreError>>(why: String) -> E {
    E::from(StoreError::Unavailable(why))
}

/// The first failure among a batch's outcomes (every one already tried), or `Ok`.
fn first_failure(outcomes: Vec<Result<(), StoreError>>) -> Result<(), StoreError> {
    outcomes.into_iter().find(Result::is_err).unwrap_or(Ok(()))
}

/// The largest `tokens.leeway` a configuration may set (config.rs checks it).
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// The store for the server's whole life, over whichever backend the settings chose.
pub struct Store {
    backend: Backend,
    /// Where the embedded backend's writes and reads run (unused on PostgreSQL, whose
    /// calls wait on the network, never on a thread).
    writes: blocking::Lane,
    reads: blocking::Lane,
}

enum Backend {
    Sled(SledStore),
    // Boxed: one per process, and the node holds its tasks' handles and caches inline.
    #[cfg(feature = "postgres")]
    Postgres(Box<PgNode>),
}

impl From<SledStore> for Store {
    fn from(store: SledStore) -> Store {
        Store {
            backend: Backend::Sled(store),
            writes: blocking::Lane::new("claimd-store-write"),
            reads: blocking::Lane::new("claimd-store-read"),
        }
    }
}

impl Store {
    /// Opens (or creates) the embedded store at `path` on the system clock.
    ///
    /// # Errors
    /// As [`SledStore::open_with_clock`].
    pub fn open(path: &Path, cache_mb: u64) -> Result<Store, StoreError> {
        SledStore::open(path, cache_mb).map(Store::from)
    }

    /// Opens (or creates) the embedded store at `path`, reading `clock` where opening
    /// needs the time.
    ///
    /// # Errors
    /// As [`SledStore::open_with_clock`].
    pub fn open_with_clock(path: &Path, cache_mb: u64, clock: Clock) -> Result<Store, StoreError> {
        SledStore::open_with_clock(path, cache_mb, clock).map(Store::from)
    }

    /// As [`Store::open_with_clock`], saying what to do with a store whose seal file is
    /// gone.
    ///
    /// # Errors
    /// As [`SledStore::open_with`].
    pub fn open_with(
        path: &Path,
        cache_mb: u64,
        clock: Clock,
        missing_seal: MissingSeal,
    ) -> Result<Store, StoreError> {
        SledStore::open_with(path, cache_mb, clock, missing_seal).map(Store::from)
    }

    /// Connects to the PostgreSQL database at `url` (migrating its schema under a lock,
    /// with other nodes starting alongside), loads this node's memory from it and starts
    /// following its change log.
    ///
    /// # Errors
    /// One line, never carrying the URL's password: the database cannot be reached or
    /// refuses, or its schema is newer than this build.
    #[cfg(feature = "postgres")]
    pub async fn open_postgres(url: &str, pool: usize, clock: Clock) -> Result<Store, StoreError> {
        let store = PgStore::connect(url, pool).await?.with_clock(clock);
        Ok(Store {
            backend: Backend::Postgres(Box::new(PgNode::open(store).await?)),
            writes: blocking::Lane::new("claimd-store-write"),
            reads: blocking::Lane::new("claimd-store-read"),
        })
    }

    /// The embedded backend, for what only it can do (its backup file, its data
    /// directory); `None` on another backend.
    pub fn as_sled(&self) -> Option<&SledStore> {
        match &self.backend {
            Backend::Sled(store) => Some(store),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => None,
        }
    }

    /// What runs under this store, for logs and `/metrics`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sled(_) => "sled",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The embedded backend's data directory; `None` on another backend.
    pub fn data_dir(&self) -> Option<&Path> {
        self.as_sled().map(SledStore::path)
    }

    /// Where the store lives, for messages: `storage.path <dir>`, or the database.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sled(store) => format!("storage.path {}", store.path().display()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "storage.postgres_url".to_string(),
        }
    }

    // ---- health and durability ----

    /// Waits until every write made before this call is durable.
    ///
    /// # Errors
    /// The write must not be acknowledged: its outcome is unknown.
    pub async fn wait_durable(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(store) => {
                let _waiting = self.writes.watch.begin();
                store.wait_durable().await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.wait_durable().await,
        }
    }

    /// How long the embedded store's writes have been waiting on the disk with none
    /// finishing, once that is longer than [`blocking::STALLED_AFTER`]: the disk has
    /// stalled. Always `None` on PostgreSQL.
    pub fn writes_stalled(&self) -> Option<std::time::Duration> {
        match &self.backend {
            Backend::Sled(_) => self.writes.watch.stalled(blocking::STALLED_AFTER),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => None,
        }
    }

    /// Runs a write of the embedded backend on the write lane's threads.
    fn write_sled<T, E>(
        self: &Arc<Self>,
        write: impl FnOnce(&SledStore) -> Result<T, E> + Send + 'static,
    ) -> blocking::Answering<'_, T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.writes.run(self.on_sled(write), unavailable)
    }

    /// Runs a read of the embedded backend on the read lane's threads.
    fn read_sled<T>(
        self: &Arc<Self>,
        read: impl FnOnce(&SledStore) -> Result<T, StoreError> + Send + 'static,
    ) -> blocking::Answering<'_, T, StoreError>
    where
        T: Send + 'static,
    {
        self.reads.run(self.on_sled(read), unavailable)
    }

    /// `call` on this store's sled backend, as a call a lane thread can make.
    fn on_sled<T, E>(
        self: &Arc<Self>,
        call: impl FnOnce(&SledStore) -> Result<T, E> + Send + 'static,
    ) -> impl FnOnce() -> Result<T, E> + Send + 'static
    where
        E: From<StoreError>,
    {
        let store = Arc::clone(self);
        move || match store.as_sled() {
            Some(sled) => call(sled),
            None => Err(unavailable("not an embedded store".into())),
        }
    }

    /// Waits until every write made before this call is durable, for a caller that
    /// wrote nothing to the change log since its last full wait (a login's new session,
    /// a rotation, an acknowledgement). On PostgreSQL its commit already was, and no other
    /// node has anything to apply, so it waits for no one: a node whose peers are slow
    /// (one crash-looping, say) still rotates at once (issue 19 §9). On sled it is
    /// [`Store::wait_durable`].
    ///
    /// # Errors
    /// As [`Store::wait_durable`].
    pub async fn wait_durable_unlogged(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => self.wait_durable().await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// How long write answers have waited, in all, for other nodes to apply them, and
    /// how many did: always nothing on sled.
    pub fn peer_wait(&self) -> (std::time::Duration, u64) {
        match &self.backend {
            Backend::Sled(_) => (std::time::Duration::ZERO, 0),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.peer_wait(),
        }
    }

    /// Whether writes are being made durable.
    pub fn is_writable(&self) -> bool {
        match &self.backend {
            Backend::Sled(store) => store.is_writable(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.is_current(),
        }
    }

    /// Write failures and recoveries so far, for `/metrics`.
    pub fn health(&self) -> HealthCounts {
        match &self.backend {
            Backend::Sled(store) => store.health(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => HealthCounts {
                writable: node.is_current(),
                write_failures: 0,
                recoveries: 0,
            },
        }
    }

    /// Notes a failed write seen outside the backend's own durability path.
    pub fn note_write_failure(&self, err: &StoreError) {
        match &self.backend {
            Backend::Sled(store) => store.note_write_failure(err),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => {}
        }
    }

    /// Asks the backend whether it can still write (called every second by
    /// `tasks::recovery`).
    pub async fn probe(&self) {
        match &self.backend {
            Backend::Sled(store) => store.probe().await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => {}
        }
    }

    /// Ends a write-failure episode if the backend takes writes again. Blocking.
    ///
    /// # Errors
    /// The store cannot recover in place: the process should exit for its supervisor.
    pub fn try_recover(&self) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(store) => store.try_recover(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => Ok(true),
        }
    }

    /// Damage found after open that the server must stop on.
    pub fn damage(&self) -> Option<String> {
        match &self.backend {
            Backend::Sled(store) => store.damage(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.damage(),
        }
    }

    /// Makes every write so far durable, synchronously (the command line).
    ///
    /// # Errors
    /// The flush failed.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(store) => store.flush_now(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Before closing at a graceful stop: on PostgreSQL, gives up this node's lease, so
    /// no write on another node waits for it to run out.
    pub async fn leave(&self) {
        #[cfg(feature = "postgres")]
        if let Backend::Postgres(node) = &self.backend {
            node.leave().await;
        }
    }

    /// Lets go of the backend after a last flush. Blocking (sled flushes).
    pub fn close(&self) {
        match &self.backend {
            Backend::Sled(store) => store.close(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.close(),
        }
    }

    /// Bytes the store occupies.
    pub fn size_on_disk(&self) -> u64 {
        match &self.backend {
            Backend::Sled(store) => store.size_on_disk(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => 0,
        }
    }

    /// A consistent copy of the store in claimd's backup format.
    ///
    /// # Errors
    /// Storage failures, or a backend whose backups are its own tools' business.
    pub fn export(&self, out: impl Write) -> Result<BackupSummary, StoreError> {
        match &self.backend {
            Backend::Sled(store) => store.export(out),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => Err(StoreError::Unavailable(
                "a PostgreSQL store is backed up with pg_dump, not by claimd".into(),
            )),
        }
    }

    /// Removes what can no longer matter: expired sessions, deny entries and invitations,
    /// and change-log records older than any live token. sled's passes scan trees, so
    /// they run on the blocking pool.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn evict_expired(
        self: &Arc<Self>,
        now: u64,
        leeway: u64,
    ) -> Result<EvictionReport, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let store = Arc::clone(self);
                tokio::task::spawn_blocking(move || {
                    store
                        .as_sled()
                        .map_or(Ok(EvictionReport::default()), |sled| {
                            sled::evict_expired(sled, now, leeway)
                        })
                })
                .await
                .map_err(|err| {
                    StoreError::Unavailable(format!("the eviction pass failed: {err}"))
                })?
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.evict_expired(now, leeway)).await,
        }
    }

    /// The latest time an eviction pass worked from on this store (every node's, on
    /// PostgreSQL), if one ever ran: `tasks::eviction` never works from a later time than
    /// this plus the real time elapsed since it read it.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn eviction_horizon(self: &Arc<Self>) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => self.read_sled(sled::eviction_horizon).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.store().eviction_horizon()).await,
        }
    }

    /// Records that an eviction pass worked from `at`; the horizon never moves back.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn advance_eviction_horizon(self: &Arc<Self>, at: u64) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.write_sled(move |store| sled::advance_eviction_horizon(store, at))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().advance_eviction_horizon(at))
                    .await
            }
        }
    }

    // ---- verification, from memory ----

    /// What verification needs of a user.
    ///
    /// # Errors
    /// The store cannot vouch for what it holds.
    pub fn user_stamp(&self, id: UserId) -> Result<Option<UserStamp>, StoreError> {
        match &self.backend {
            Backend::Sled(store) => store.user_stamp(id),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.user_stamp(id),
        }
    }

    /// A tenant's claims version.
    ///
    /// # Errors
    /// The store cannot vouch for what it holds.
    pub fn tenant_version(&self, id: TenantId) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            Backend::Sled(store) => store.tenant_version(id),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.tenant_version(id),
        }
    }

    /// Whether an access token (its `jti`) or its session (`sid`) is denied at `exp`.
    ///
    /// # Errors
    /// The store cannot vouch for what it holds.
    pub fn token_is_revoked(
        &self,
        jti: TokenId,
        sid: SessionId,
        exp: u64,
    ) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(store) => store.token_is_revoked(jti, sid, exp),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.token_is_revoked(jti, sid, exp),
        }
    }

    /// Whether one deny entry covers `exp`.
    ///
    /// # Errors
    /// The store cannot vouch for what it holds.
    pub fn is_denied(&self, kind: DenyKind, id: &[u8; 16], exp: u64) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(store) => store.is_denied(kind, id, exp),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.is_denied(kind, id, exp),
        }
    }

    /// Notes the access-token life in force; the longest one noted, which decides how long
    /// the change log is kept.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn note_access_ttl(self: &Arc<Self>, ttl: u64) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.write_sled(move |store| store.note_access_ttl(ttl))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.note_access_ttl(ttl)).await,
        }
    }

    /// The longest access-token life ever noted.
    pub fn longest_access_ttl(&self) -> u64 {
        match &self.backend {
            Backend::Sled(store) => store.longest_access_ttl(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.longest_access_ttl(),
        }
    }

    /// Live deny entries, for `/metrics`.
    pub fn deny_entries(&self) -> i64 {
        match &self.backend {
            Backend::Sled(store) => store.deny_entries(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.deny_entries(),
        }
    }

    /// Session records held, for `/metrics`.
    pub fn sessions_held(&self) -> i64 {
        match &self.backend {
            Backend::Sled(store) => store.sessions_held(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.sessions_held(),
        }
    }

    // ---- revocation ----

    /// Denies one access token until its `exp` and logs it; whether it was new.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn deny_token(self: &Arc<Self>, jti: TokenId, exp: u64) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.write_sled(move |store| store.deny_token(jti, exp))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().deny_token(jti, exp))
                    .await
            }
        }
    }

    /// Ends `revocations` of `user` and applies `change` to the user in one write.
    ///
    /// # Errors
    /// Storage failures, or the user is gone.
    pub async fn revoke_sessions(
        self: &Arc<Self>,
        user: UserId,
        revocations: &mut [Revocation],
        now: u64,
        change: AccountChange<'_>,
    ) -> Result<Option<UserRecord>, UserWriteError> {
        match &self.backend {
            Backend::Sled(_) => {
                let mut owned = revocations.to_vec();
                let change = change.to_owned_change();
                let (outcome, written) = self
                    .write_sled(move |store| {
                        let outcome =
                            store.revoke_sessions(user, &mut owned, now, change.as_change());
                        Ok::<_, UserWriteError>((outcome, owned))
                    })
                    .await?;
                // The ranges as written (widened by any wait) and the records as marked.
                revocations.clone_from_slice(&written);
                outcome
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .revoke_sessions(user, revocations, now, change)
                    .await
            }
        }
    }

    // ---- the change log ----

    /// Published change-log records after `after`, at most `limit`.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn changes_after(
        self: &Arc<Self>,
        after: u64,
        limit: usize,
    ) -> Result<ChangesAfter, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.read_sled(move |store| store.changes_after(after, limit))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().changes_after(after, limit))
                    .await
            }
        }
    }

    /// The highest change-log id evicted.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn changes_evicted_through(self: &Arc<Self>) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.read_sled(move |store| store.changes_evicted_through())
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().changes_evicted_through())
                    .await
            }
        }
    }

    /// The highest published change-log id.
    pub fn published_through(&self) -> u64 {
        match &self.backend {
            Backend::Sled(store) => store.published_through(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.published_through(),
        }
    }

    /// Wakes on each newly published change-log id.
    pub fn watch_published(&self) -> tokio::sync::watch::Receiver<u64> {
        match &self.backend {
            Backend::Sled(store) => store.watch_published(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.watch_published(),
        }
    }

    /// Wakes when another node changed the key set. The embedded store has no other
    /// node: its receiver is closed.
    pub fn watch_keys(&self) -> tokio::sync::watch::Receiver<u64> {
        match &self.backend {
            Backend::Sled(_) => tokio::sync::watch::channel(0).1,
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.watch_keys(),
        }
    }

    // ---- users ----

    /// Creates a user (spending an invitation when one is named).
    ///
    /// # Errors
    /// The username is taken, the invitation spent, `max_accounts` reached, or storage.
    pub async fn create_user(
        self: &Arc<Self>,
        id: UserId,
        user: &UserRecord,
        invitation: Option<&[u8; 32]>,
        now: u64,
    ) -> Result<(), UserWriteError> {
        match &self.backend {
            Backend::Sled(_) => {
                let (user, invitation) = (user.clone(), invitation.copied());
                self.write_sled(move |store| store.create_user(id, &user, invitation.as_ref(), now))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().create_user(id, user, invitation, now))
                    .await
            }
        }
    }

    /// Reads a user.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn user(self: &Arc<Self>, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => self.read_sled(move |store| store.user(id)).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.store().user(id)).await,
        }
    }

    /// Finds a user by name.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn user_id_by_name(
        self: &Arc<Self>,
        name: &Username,
    ) -> Result<Option<UserId>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let name = name.clone();
                self.read_sled(move |store| store.user_id_by_name(&name))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().user_id_by_name(name))
                    .await
            }
        }
    }

    /// Changes a user's claims, bumping their version, and logs it.
    ///
    /// # Errors
    /// The user is gone, or storage.
    pub async fn change_user_claims(
        self: &Arc<Self>,
        id: UserId,
        change: &ClaimsChange,
        now: u64,
    ) -> Result<UserRecord, UserWriteError> {
        match &self.backend {
            Backend::Sled(_) => {
                let change = change.clone();
                self.write_sled(move |store| store.change_user_claims(id, &change, now))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().change_user_claims(id, change, now))
                    .await
            }
        }
    }

    /// Deletes a user and logs it.
    ///
    /// # Errors
    /// The user is gone, or storage.
    pub async fn delete_user(self: &Arc<Self>, id: UserId) -> Result<UserRecord, UserWriteError> {
        match &self.backend {
            Backend::Sled(_) => self.write_sled(move |store| store.delete_user(id)).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.store().delete_user(id)).await,
        }
    }

    /// A page of users in id order, after `after`.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn list_users(
        self: &Arc<Self>,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, UserRecord)>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.read_sled(move |store| store.list_users(after, limit))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().list_users(after, limit))
                    .await
            }
        }
    }

    // ---- sessions ----

    /// Stores a new session.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn insert_session(
        self: &Arc<Self>,
        sid: SessionId,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let session = session.clone();
                self.write_sled(move |store| store.insert_session(sid, &session))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.insert_session(sid, session))
                    .await
            }
        }
    }

    /// Reads a session and the user it belongs to, in one call on sled's read lane (a
    /// refresh needs both): `None` without the session, the user `None` if it is gone.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn session_and_user(
        self: &Arc<Self>,
        sid: SessionId,
    ) -> Result<Option<(SessionRecord, Option<UserRecord>)>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.read_sled(move |store| {
                    let Some(session) = store.session(sid)? else {
                        return Ok(None);
                    };
                    let user = store.user(session.user_id())?;
                    Ok(Some((session, user)))
                })
                .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => {
                let Some(session) = self.session(sid).await? else {
                    return Ok(None);
                };
                let user = self.user(session.user_id()).await?;
                Ok(Some((session, user)))
            }
        }
    }

    /// Reads a session.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn session(
        self: &Arc<Self>,
        sid: SessionId,
    ) -> Result<Option<SessionRecord>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => self.read_sled(move |store| store.session(sid)).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.store().session(sid)).await,
        }
    }

    /// Rotates a session if it is still at `rotation.from_generation` (one compare-and-set);
    /// the session as it is after the attempt.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn rotate_session(
        self: &Arc<Self>,
        sid: SessionId,
        rotation: &Rotation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let rotation = rotation.clone();
                self.write_sled(move |store| store.rotate_session(sid, &rotation))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().rotate_session(sid, rotation))
                    .await
            }
        }
    }

    /// Replaces the access token kept for `generation` (a refresh with current claims).
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn renew_session_access(
        self: &Arc<Self>,
        sid: SessionId,
        generation: u64,
        access: (&str, u64),
        used: Option<u64>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let (token, exp) = (access.0.to_string(), access.1);
                self.write_sled(move |store| {
                    store.renew_session_access(sid, generation, (&token, exp), used)
                })
                .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .renew_session_access(sid, generation, access, used)
                    .await
            }
        }
    }

    /// Every session id of a user.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn user_session_ids(
        self: &Arc<Self>,
        user: UserId,
    ) -> Result<Vec<SessionId>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.read_sled(move |store| store.user_session_ids(user))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().user_session_ids(user))
                    .await
            }
        }
    }

    /// Removes a session and its index entries.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn remove_session(
        self: &Arc<Self>,
        sid: SessionId,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let session = session.clone();
                self.write_sled(move |store| store.remove_session(sid, &session))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.remove_session(sid, session))
                    .await
            }
        }
    }

    /// Records that the answers carrying these generations are leaving, all at once (one
    /// call on sled's write lane); every one is tried, the first failure is returned.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn acknowledge_generations(
        self: &Arc<Self>,
        acknowledged: Vec<(SessionId, u64)>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.write_sled(move |store| {
                    first_failure(
                        acknowledged
                            .into_iter()
                            .map(|(sid, generation)| store.acknowledge_generation(sid, generation))
                            .collect(),
                    )
                })
                .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                let mut written = Vec::with_capacity(acknowledged.len());
                for (sid, generation) in acknowledged {
                    let store = node.store();
                    written.push(
                        store
                            .bounded(store.acknowledge_generation(sid, generation))
                            .await,
                    );
                }
                first_failure(written)
            }
        }
    }

    /// The newest acknowledged generation of a session.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn acknowledged_generation(
        self: &Arc<Self>,
        sid: SessionId,
    ) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.read_sled(move |store| store.acknowledged_generation(sid))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().acknowledged_generation(sid))
                    .await
            }
        }
    }

    // ---- tenants ----

    /// Reads a tenant.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn tenant(
        self: &Arc<Self>,
        id: TenantId,
    ) -> Result<Option<TenantRecord>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => self.read_sled(move |store| store.tenant(id)).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.store().tenant(id)).await,
        }
    }

    /// Every tenant.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn list_tenants(
        self: &Arc<Self>,
    ) -> Result<Vec<(TenantId, TenantRecord)>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => self.read_sled(move |store| store.list_tenants()).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.store().list_tenants()).await,
        }
    }

    /// Creates a tenant.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn create_tenant(
        self: &Arc<Self>,
        id: TenantId,
        tenant: &TenantRecord,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let tenant = tenant.clone();
                self.write_sled(move |store| store.create_tenant(id, &tenant))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().create_tenant(id, tenant))
                    .await
            }
        }
    }

    /// Changes a tenant, bumping its version, and logs it.
    ///
    /// # Errors
    /// The tenant is gone, or storage.
    pub async fn change_tenant(
        self: &Arc<Self>,
        id: TenantId,
        change: &TenantChange,
        now: u64,
    ) -> Result<TenantRecord, TenantWriteError> {
        match &self.backend {
            Backend::Sled(_) => {
                let change = change.clone();
                self.write_sled(move |store| store.change_tenant(id, &change, now))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().change_tenant(id, change, now))
                    .await
            }
        }
    }

    /// Deletes a tenant and logs it.
    ///
    /// # Errors
    /// The tenant is gone or has members, or storage.
    pub async fn delete_tenant(self: &Arc<Self>, id: TenantId) -> Result<(), TenantWriteError> {
        match &self.backend {
            Backend::Sled(_) => self.write_sled(move |store| store.delete_tenant(id)).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.store().delete_tenant(id)).await,
        }
    }

    // ---- invitations ----

    /// Stores an invitation into `tenant`.
    ///
    /// # Errors
    /// The tenant is gone, or storage.
    pub async fn create_invitation(
        self: &Arc<Self>,
        tenant: TenantId,
        invitation: &InvitationRecord,
        now: u64,
    ) -> Result<(), InvitationWriteError> {
        match &self.backend {
            Backend::Sled(_) => {
                let invitation = invitation.clone();
                self.write_sled(move |store| store.create_invitation(tenant, &invitation, now))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .create_invitation(tenant, invitation, now)
                    .await
            }
        }
    }

    /// A tenant's invitations (`None`: no such tenant).
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn invitations(
        self: &Arc<Self>,
        tenant: TenantId,
    ) -> Result<Option<Vec<InvitationRecord>>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => self.read_sled(move |store| store.invitations(tenant)).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.store().invitations(tenant)).await,
        }
    }

    /// The tenant a pending invitation code admits to.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn invitation_tenant(
        self: &Arc<Self>,
        code_digest: &[u8; 32],
        now: u64,
    ) -> Result<Option<TenantId>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let code_digest = *code_digest;
                self.read_sled(move |store| store.invitation_tenant(&code_digest, now))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().invitation_tenant(code_digest, now))
                    .await
            }
        }
    }

    /// How many invitations of a tenant are still pending.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn pending_invitations(
        self: &Arc<Self>,
        tenant: TenantId,
        now: u64,
    ) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.read_sled(move |store| store.pending_invitations(tenant, now))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().pending_invitations(tenant, now))
                    .await
            }
        }
    }

    /// Voids an invitation.
    ///
    /// # Errors
    /// Unknown, already spent, or storage.
    pub async fn revoke_invitation(
        self: &Arc<Self>,
        tenant: TenantId,
        id: InvitationId,
        now: u64,
    ) -> Result<(), InvitationWriteError> {
        match &self.backend {
            Backend::Sled(_) => {
                self.write_sled(move |store| store.revoke_invitation(tenant, id, now))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().revoke_invitation(tenant, id, now))
                    .await
            }
        }
    }

    // ---- keys and services ----

    /// Every signing key, by kid.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn signing_keys(self: &Arc<Self>) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => self.read_sled(move |store| store.signing_keys()).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.store().signing_keys()).await,
        }
    }

    /// Stores a signing key (publishing, signing or retiring it) and logs the change.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn put_signing_key(
        self: &Arc<Self>,
        kid: &str,
        key: &KeyRecord,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let (kid, key) = (kid.to_string(), key.clone());
                self.write_sled(move |store| store.put_signing_key(&kid, &key))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().put_signing_key(kid, key))
                    .await
            }
        }
    }

    /// Removes a signing key and logs the change.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn remove_signing_key(self: &Arc<Self>, kid: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let kid = kid.to_string();
                self.write_sled(move |store| store.remove_signing_key(&kid))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().remove_signing_key(kid))
                    .await
            }
        }
    }

    /// Stores a service credential.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn put_service(
        self: &Arc<Self>,
        client_id: &str,
        service: &ServiceRecord,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let (client_id, service) = (client_id.to_string(), service.clone());
                self.write_sled(move |store| store.put_service(&client_id, &service))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().put_service(client_id, service))
                    .await
            }
        }
    }

    /// Reads a service credential.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn service(
        self: &Arc<Self>,
        client_id: &str,
    ) -> Result<Option<ServiceRecord>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let client_id = client_id.to_string();
                self.read_sled(move |store| store.service(&client_id)).await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.store().service(client_id)).await,
        }
    }

    /// Every service credential.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn list_services(
        self: &Arc<Self>,
    ) -> Result<Vec<(String, ServiceRecord)>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => self.read_sled(move |store| store.list_services()).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => node.store().bounded(node.store().list_services()).await,
        }
    }

    /// Deletes a service credential; whether it existed.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn delete_service(self: &Arc<Self>, client_id: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(_) => {
                let client_id = client_id.to_string();
                self.write_sled(move |store| store.delete_service(&client_id))
                    .await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(node) => {
                node.store()
                    .bounded(node.store().delete_service(client_id))
                    .await
            }
        }
    }
}

/// Striped locks: serialise writes that read before they write (one user's record, one
/// deny entry) without one lock for everything.
pub(crate) struct Stripes(Vec<std::sync::Mutex<()>>);

impl Stripes {
    pub(crate) fn new(count: usize) -> Stripes {
        Stripes(
            (0..count.max(1))
                .map(|_| std::sync::Mutex::new(()))
                .collect(),
        )
    }

    /// The lock for a key: ids are random or time-ordered in their high bytes, so the last
    /// byte spreads them.
    pub(crate) fn lock(&self, key: &[u8]) -> std::sync::MutexGuard<'_, ()> {
        let stripe = usize::from(key.last().copied().unwrap_or(0)) % self.0.len();
        self.0[stripe]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Maps a codec failure of a record read from `tree` to a store error.
pub(crate) fn corrupt(tree: &'static str) -> impl Fn(CodecError) -> StoreError {
    move |source| StoreError::Corrupt { tree, source }
}
