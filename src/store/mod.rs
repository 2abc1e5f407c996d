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
#[cfg(test)]
mod conformance;
mod contract;
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

use crate::clock::Clock;

pub use codec::CodecError;
pub use mirror::UserStamp;
pub use model::{
    AccountChange, AfterFailure, Change, ChangeRecord, ChangesAfter, ClaimsApplied, ClaimsChange,
    Credential, Delivery, DeliveryOutcome, DenyKind, EvictionReport, GiveUp, InvitationBook,
    InvitationRecord, InvitationState, InvitationStatus, InvitationWriteError, Issued, KeyRecord,
    LinkEffect, LinkInvalid, LinkState, LoggedChange, MailFailure, MailLink, MailLinks,
    MailWriteError, QueuedMail, Revocation, Rotation, ServiceRecord, SessionRecord, TenantChange,
    TenantFull, TenantRecord, TenantWriteError, UserRecord, UserWriteError,
};
#[cfg(feature = "postgres")]
pub use postgres::node::PgNode;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use sled::backend::SledBackend;
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
pub(crate) fn unavailable<E: From<StoreError>>(why: String) -> E {
    E::from(StoreError::Unavailable(why))
}

/// The first failure among a batch's outcomes (every one already tried), or `Ok`.
pub(crate) fn first_failure(outcomes: Vec<Result<(), StoreError>>) -> Result<(), StoreError> {
    outcomes.into_iter().find(Result::is_err).unwrap_or(Ok(()))
}

/// The largest `tokens.leeway` a configuration may set (config.rs checks it).
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// The store for the server's whole life, over whichever backend the settings chose. Its
/// operations are the contract's (`contract`): each a method here, dispatched to the backend.
pub struct Store {
    backend: Backend,
}

enum Backend {
    Sled(SledBackend),
    // Boxed: one per process, and the node holds its tasks' handles and caches inline.
    #[cfg(feature = "postgres")]
    Postgres(Box<PgNode>),
}

impl From<SledStore> for Store {
    fn from(store: SledStore) -> Store {
        Store {
            backend: Backend::Sled(SledBackend::new(store)),
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
        })
    }

    /// The embedded backend, for what only it can do (its backup file, its data
    /// directory); `None` on another backend.
    pub fn as_sled(&self) -> Option<&SledStore> {
        match &self.backend {
            Backend::Sled(sled) => Some(sled.store()),
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
            Backend::Sled(sled) => format!("storage.path {}", sled.store().path().display()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "storage.postgres_url".to_string(),
        }
    }

    /// A consistent copy of the store in claimd's backup format.
    ///
    /// # Errors
    /// Storage failures, or a backend whose backups are its own tools' business.
    pub fn export(&self, out: impl Write) -> Result<BackupSummary, StoreError> {
        match &self.backend {
            Backend::Sled(sled) => sled.store().export(out),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => Err(StoreError::Unavailable(
                "a PostgreSQL store is backed up with pg_dump, not by claimd".into(),
            )),
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
