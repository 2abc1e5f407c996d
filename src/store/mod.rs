//! The embedded store: sled trees, one file per tree, and the group-commit flusher.
//! Only this module imports sled. Every value goes through [`codec`]; every write a
//! client is told about is followed by [`Store::wait_durable`] before the answer.
//!
//! Trees (DESIGN.md "Storage"): `users`, `usernames`, `tenants`, `sessions`, `keys`,
//! `meta`, `services` (credentials for introspection), the deny list as one tree per
//! minute of token expiry (`deny/<second>`, see [`deny`]), plus two indexes DESIGN.md
//! leaves implicit: `user_sessions` (user id + session id, to end every session of a user)
//! and `session_expiry` (expiry + session id, so expired sessions are evicted by a range
//! scan).

pub mod codec;
pub mod deny;
pub mod eviction;
mod flusher;
pub mod keys;
pub mod mirror;
pub mod services;
pub mod sessions;
pub mod tenants;
pub mod users;

use std::path::Path;

pub use codec::CodecError;
pub use deny::{DenyEviction, DenyKind};
pub use eviction::{evict_expired, EvictionReport};
pub use keys::KeyRecord;
pub use mirror::UserStamp;
pub use services::ServiceRecord;
pub use sessions::SessionRecord;
pub use tenants::{TenantRecord, TenantWriteError};
pub use users::{UserRecord, UserWriteError};

/// What can go wrong below the flows.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in `{tree}`: {source}")]
    Corrupt {
        tree: &'static str,
        source: CodecError,
    },
    #[error("could not make the write durable: {0}")]
    Flush(String),
    #[error("could not open the store: {0}")]
    Open(String),
    #[error("the data directory is in use by another process (is claimd running?)")]
    InUse,
}

/// A failed sled transaction as the error its closure aborted with, or as a storage
/// error: one conversion for every write error type of this module.
pub(crate) fn settle<E: From<StoreError>>(err: sled::transaction::TransactionError<E>) -> E {
    match err {
        sled::transaction::TransactionError::Abort(inner) => inner,
        sled::transaction::TransactionError::Storage(inner) => E::from(StoreError::Sled(inner)),
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(err: sled::transaction::TransactionError<StoreError>) -> Self {
        settle(err)
    }
}

/// The schema this build writes; stored in `meta` on first start and checked after.
/// Version 2 moved the deny list from one tree into time buckets.
pub const SCHEMA_VERSION: u64 = 2;

/// The largest `tokens.leeway` a configuration may set (config.rs checks it).
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// The open database and its trees.
pub struct Store {
    db: sled::Db,
    pub(crate) users: sled::Tree,
    pub(crate) usernames: sled::Tree,
    pub(crate) tenants: sled::Tree,
    pub(crate) sessions: sled::Tree,
    pub(crate) user_sessions: sled::Tree,
    pub(crate) session_expiry: sled::Tree,
    pub(crate) deny: deny::DenyList,
    pub(crate) keys: sled::Tree,
    pub(crate) services: sled::Tree,
    flusher: flusher::Flusher,
    mirror: mirror::Mirror,
    user_locks: Stripes,
}

impl Store {
    /// Opens (or creates) the store at `path`.
    ///
    /// # Errors
    /// The directory cannot be created or locked (another claimd holds it), the files are
    /// not a sled database, or they were written by a newer schema.
    pub fn open(path: &Path, cache_mb: u64) -> Result<Store, StoreError> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb.saturating_mul(1024 * 1024))
            .flush_every_ms(Some(1000));
        let fresh = !path.join("conf").exists() && !path.join("db").exists();
        let db = open_quietly(config)?;
        let meta = db.open_tree("meta")?;
        let mut migrate_from = None;
        match meta.get("schema_version")? {
            None if fresh => {
                meta.insert("schema_version", &codec::encode_u64(SCHEMA_VERSION))?;
                db.flush()?;
            }
            None => {
                return Err(StoreError::Open(
                    "the data directory holds no claimd schema: damaged, or not a claimd store"
                        .into(),
                ))
            }
            Some(bytes) => {
                let version = codec::decode_u64(&bytes).map_err(|source| StoreError::Corrupt {
                    tree: "meta",
                    source,
                })?;
                if version > SCHEMA_VERSION {
                    return Err(StoreError::Open(format!(
                        "schema version {version} is newer than this build ({SCHEMA_VERSION})"
                    )));
                }
                if version < SCHEMA_VERSION {
                    migrate_from = Some(version);
                }
            }
        }
        let flusher = flusher::Flusher::start(db.clone())
            .map_err(|err| StoreError::Open(format!("cannot start the flusher: {err}")))?;
        let store = Store {
            users: db.open_tree("users")?,
            usernames: db.open_tree("usernames")?,
            tenants: db.open_tree("tenants")?,
            sessions: db.open_tree("sessions")?,
            user_sessions: db.open_tree("user_sessions")?,
            session_expiry: db.open_tree("session_expiry")?,
            deny: deny::DenyList::open(&db)?,
            keys: db.open_tree("keys")?,
            services: db.open_tree("services")?,
            flusher,
            mirror: mirror::Mirror::default(),
            user_locks: Stripes::new(64),
            db,
        };
        match migrate_from {
            None => {}
            Some(1) => store.migrate_from_schema_1(&meta)?,
            Some(version) => {
                return Err(StoreError::Open(format!(
                    "schema version {version} was never written by claimd: damaged store"
                )))
            }
        }
        store.load_user_mirror()?;
        store.load_tenant_mirror()?;
        Ok(store)
    }

    /// Schema 1 kept the deny list in one tree. Its entries move into buckets, then the
    /// version is bumped; a crash before the bump runs the (idempotent) move again.
    fn migrate_from_schema_1(&self, meta: &sled::Tree) -> Result<(), StoreError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        // The largest leeway a configuration may set: no token older than this verifies.
        let earliest_live = now.saturating_sub(MAX_LEEWAY_SECONDS);
        let moved = self.deny.migrate_single_tree(earliest_live)?;
        meta.insert("schema_version", &codec::encode_u64(SCHEMA_VERSION))?;
        self.db.flush()?;
        tracing::info!(
            entries = moved,
            "moved the deny list into time buckets (schema 2)"
        );
        Ok(())
    }

    /// Waits until every write made before this call is on disk (group commit).
    ///
    /// # Errors
    /// The flush failed; the write must not be acknowledged.
    pub async fn wait_durable(&self) -> Result<(), StoreError> {
        self.flusher.wait_durable().await.map_err(StoreError::Flush)
    }

    /// Flushes synchronously: for the command line, which has no runtime to share.
    ///
    /// # Errors
    /// The flush failed.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Stops the flusher after a last flush; later writes are no longer made durable.
    pub fn close(&self) {
        self.flusher.stop();
        if let Err(err) = self.db.flush() {
            tracing::error!(error = %err, "final flush failed");
        }
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// sled 0.34 panics on some kinds of damage instead of returning an error. Turn such a
/// panic into an error, so a corrupt data dir stops start-up with one line rather than a
/// backtrace. (The panic hook is the binary's business: it logs panics as one line.)
fn open_quietly(config: sled::Config) -> Result<sled::Db, StoreError> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()));
    match outcome {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(err)) if err.to_string().contains("could not acquire lock") => {
            Err(StoreError::InUse)
        }
        Ok(Err(err)) => Err(StoreError::Open(one_line(&err.to_string()))),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown damage".into());
            Err(StoreError::Open(format!(
                "the data directory is damaged ({})",
                one_line(&reason)
            )))
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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

/// A store in a fresh temporary directory, for the store's unit tests.
#[cfg(test)]
pub(crate) fn test_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), 4).expect("store opens");
    (dir, store)
}

pub(crate) fn corrupt(tree: &'static str) -> impl Fn(CodecError) -> StoreError {
    move |source| StoreError::Corrupt { tree, source }
}
