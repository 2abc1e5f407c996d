//! The embedded backend: sled trees, one file per tree, and the group-commit flusher.
//! Only this module imports sled. Every value goes through [`codec`]; every write a
//! client is told about is followed by [`SledStore::wait_durable`] before the answer.
//!
//! [`SledStore`] is the handle the server holds for its whole life (behind the
//! backend-neutral [`Store`](crate::store::Store)); the open
//! database behind it (an `Engine`: the sled handles, the deny buckets, the mirror and the
//! flusher) can be replaced. sled 0.34 poisons a database after one failed write to its
//! log (disk full, I/O error, read-only remount): every later write fails even once the
//! disk has room again. So a failed write starts an *episode* ([`health`]): writes answer
//! `Unavailable`, reads go on from the poisoned engine, and [`SledStore::try_recover`] (driven
//! by `tasks::recovery`) reopens the directory once the disk takes writes again. Reopening
//! runs sled's recovery and rebuilds the mirror from what is on disk, so nothing that was
//! never made durable survives in memory either.
//!
//! Trees (DESIGN.md "Storage"): `users`, `usernames`, `tenants`, `sessions`, `keys`,
//! `meta`, `services` (credentials for introspection), `invitations` and
//! `invitation_codes` (invitations into tenants, see [`invitations`]), the deny list as
//! one tree per minute of token expiry (`deny/<second>`, see [`deny`]), plus two indexes
//! DESIGN.md leaves implicit: `user_sessions` (user id + session id, to end every session
//! of a user) and `session_expiry` (expiry + session id, so expired sessions are evicted
//! by a range scan).

pub mod backend;
pub mod backup;
pub mod changes;
pub mod deny;
pub mod eviction;
pub mod export;
mod flusher;
pub mod health;
mod integrity;
pub mod invitations;
pub mod keys;
mod mail;
mod preflight;
pub mod revocations;
pub mod services;
pub mod sessions;
pub mod tenants;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::clock::Clock;

pub(crate) use super::{codec, corrupt, disk, mirror, StoreError, Stripes, MAX_LEEWAY_SECONDS};

pub use deny::DenyEviction;
pub use eviction::{advance_eviction_horizon, evict_expired, eviction_horizon};
pub use integrity::MissingSeal;

// The contract's types, for this backend's modules (`super::UserRecord`).
use crate::store::{
    Change, DenyKind, InvitationBook, InvitationWriteError, KeyRecord, ServiceRecord,
    SessionRecord, TenantRecord, TenantWriteError, UserRecord, UserWriteError,
};

/// A failed sled transaction as the error its closure aborted with, or as a storage
/// error: one conversion for every write error type of this backend.
pub(crate) fn settle<E: From<StoreError>>(err: sled::transaction::TransactionError<E>) -> E {
    match err {
        sled::transaction::TransactionError::Abort(inner) => inner,
        sled::transaction::TransactionError::Storage(inner) => E::from(StoreError::Sled(inner)),
    }
}

impl From<sled::transaction::TransactionError<UserWriteError>> for UserWriteError {
    fn from(err: sled::transaction::TransactionError<UserWriteError>) -> Self {
        settle(err)
    }
}

impl From<sled::transaction::TransactionError<TenantWriteError>> for TenantWriteError {
    fn from(err: sled::transaction::TransactionError<TenantWriteError>) -> Self {
        settle(err)
    }
}

impl From<sled::transaction::TransactionError<InvitationWriteError>> for InvitationWriteError {
    fn from(err: sled::transaction::TransactionError<InvitationWriteError>) -> Self {
        settle(err)
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(err: sled::transaction::TransactionError<StoreError>) -> Self {
        settle(err)
    }
}

/// The schema this build writes; stored in `meta` on first start and checked after.
/// Version 2 moved the deny list from one tree into time buckets; version 3 added the
/// change log (an older build would write without logging, so it must refuse the store);
/// version 4 added email addresses and the mail queue (a user with an address is format 2,
/// which an older build cannot read).
pub const SCHEMA_VERSION: u64 = 4;

/// The open database and its trees. Replaced whole when the store is reopened after a
/// write failure; nothing outside this module sees it.
pub(crate) struct Engine {
    db: sled::Db,
    pub(crate) users: sled::Tree,
    pub(crate) usernames: sled::Tree,
    pub(crate) tenants: sled::Tree,
    pub(crate) sessions: sled::Tree,
    pub(crate) user_sessions: sled::Tree,
    pub(crate) session_expiry: sled::Tree,
    pub(crate) session_acks: sled::Tree,
    pub(crate) pending_denials: sled::Tree,
    /// Shared with the scan of the buckets at open (see [`integrity`]).
    pub(crate) deny: Arc<deny::DenyList>,
    pub(crate) keys: sled::Tree,
    pub(crate) services: sled::Tree,
    pub(crate) invitations: sled::Tree,
    pub(crate) invitation_codes: sled::Tree,
    /// Addresses, the mail queue and mail links (see [`mail`]).
    pub(crate) emails: sled::Tree,
    pub(crate) mail_queue: sled::Tree,
    pub(crate) mail_index: sled::Tree,
    pub(crate) mail_links: sled::Tree,
    /// The change log (see [`changes`]).
    pub(crate) changes: changes::ChangeLog,
    flusher: flusher::Flusher,
    pub(crate) mirror: mirror::Mirror,
    /// Session records held, for the `claimd_sessions` gauge (counted at open).
    pub(crate) sessions_held: std::sync::atomic::AtomicI64,
}

/// The store for the server's whole life: the open [`Engine`], its health, and what it
/// takes to open it again.
pub struct SledStore {
    path: PathBuf,
    cache_mb: u64,
    /// What a reopen after write failures does with a missing seal file: what start-up did.
    missing_seal: MissingSeal,
    /// The time migrations at open read (the deny list's horizon).
    clock: Clock,
    engine: RwLock<Option<Arc<Engine>>>,
    health: Arc<health::Health>,
    pub(crate) user_locks: Stripes,
    /// Every write holds the shared side while it writes; a backup holds the exclusive
    /// side while it copies (see [`backup`]).
    write_gate: RwLock<()>,
    /// Damage the background scan of the deny-list buckets found (see [`integrity`]).
    damage: Arc<std::sync::Mutex<Option<String>>>,
    /// That scan, stopped (and its handle on the database let go) when the store closes.
    scan: std::sync::Mutex<Option<BackgroundScan>>,
    /// The highest published change-log id (see [`changes`]); outlives a reopen.
    published: tokio::sync::watch::Sender<u64>,
}

/// The thread reading the deny-list buckets after open, and how to stop it.
struct BackgroundScan {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl BackgroundScan {
    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

impl SledStore {
    /// Opens (or creates) the store at `path` on the system clock.
    ///
    /// # Errors
    /// As [`SledStore::open_with_clock`].
    pub fn open(path: &Path, cache_mb: u64) -> Result<SledStore, StoreError> {
        SledStore::open_with_clock(path, cache_mb, Clock::system())
    }

    /// Opens (or creates) the store at `path`, reading `clock` where opening needs the
    /// time.
    ///
    /// # Errors
    /// The directory cannot be created or locked (another claimd holds it), the files are
    /// not a sled database, or they were written by a newer schema.
    pub fn open_with_clock(
        path: &Path,
        cache_mb: u64,
        clock: Clock,
    ) -> Result<SledStore, StoreError> {
        SledStore::open_with(path, cache_mb, clock, MissingSeal::Refuse)
    }

    /// As [`SledStore::open_with_clock`], saying what to do with a store whose seal file
    /// is gone (start-up passes `storage.accept_missing_seal`).
    ///
    /// # Errors
    /// As [`SledStore::open_with_clock`]; a store that has sealed before and has no seal
    /// file is refused under [`MissingSeal::Refuse`].
    pub fn open_with(
        path: &Path,
        cache_mb: u64,
        clock: Clock,
        missing_seal: MissingSeal,
    ) -> Result<SledStore, StoreError> {
        // A typo in `storage.path` must not quietly create a new store somewhere else:
        // the directory itself may be new, its parent may not.
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            if !path.exists() && !parent.is_dir() {
                return Err(StoreError::Open(format!(
                    "the parent directory {} does not exist",
                    parent.display()
                )));
            }
        }
        preflight::check_on_a_copy(path, cache_mb, &clock, missing_seal)?;
        let health = Arc::new(health::Health::default());
        let engine = Engine::open(path, cache_mb, Arc::clone(&health), &clock, missing_seal)?;
        let damage = Arc::new(std::sync::Mutex::new(None));
        let scan = scan_deny_buckets_behind(Arc::clone(&engine.deny), Arc::clone(&damage));
        let (published, _) = tokio::sync::watch::channel(engine.changes.finished_through());
        Ok(SledStore {
            path: path.to_path_buf(),
            cache_mb,
            missing_seal,
            clock,
            engine: RwLock::new(Some(Arc::new(engine))),
            health,
            user_locks: Stripes::new(64),
            write_gate: RwLock::new(()),
            damage,
            scan: std::sync::Mutex::new(scan),
            published,
        })
    }

    /// Held by each write for the duration of its sled write. Write methods do not call
    /// one another while holding it (a waiting backup would deadlock a nested read).
    pub(crate) fn writing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.write_gate
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Held by a backup while it copies: no write runs meanwhile.
    pub(crate) fn exclusive(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.write_gate
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The open engine, or `Unavailable` while it is being reopened.
    pub(crate) fn engine(&self) -> Result<Arc<Engine>, StoreError> {
        self.engine
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the store is being reopened".into()))
    }

    /// Waits until every write made before this call is on disk (group commit). A failed
    /// flush starts a write-failure episode.
    ///
    /// # Errors
    /// The flush failed, or writes are failing already: the write must not be
    /// acknowledged, and its outcome is unknown.
    pub async fn wait_durable(&self) -> Result<(), StoreError> {
        let engine = self.engine()?;
        if let Some(reason) = self.health.failing_reason() {
            return Err(StoreError::Unavailable(reason));
        }
        // Every change-log record of a write finished before this call is covered by the
        // flush it waits for.
        let finished = engine.changes.finished_through();
        engine.flusher.wait_durable().await.map_err(|err| {
            self.health.write_failed(&err);
            StoreError::Flush(err)
        })?;
        self.publish(finished);
        Ok(())
    }

    /// Damage found in the deny-list buckets by the scan that runs right after open:
    /// the server stops on it (`tasks::recovery`).
    pub fn damage(&self) -> Option<String> {
        self.damage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether writes are being made durable (no write-failure episode is going on).
    pub fn is_writable(&self) -> bool {
        self.health.failing_reason().is_none()
    }

    /// Write failures and recoveries so far, for `/metrics`.
    pub fn health(&self) -> health::HealthCounts {
        self.health.counts()
    }

    /// Notes a failed write seen outside the flusher (sled refusing an insert because its
    /// own background flush failed); [`SledStore::probe`] calls it.
    pub fn note_write_failure(&self, err: &StoreError) {
        if err.is_storage_fault() {
            self.health.write_failed(&err.to_string());
        }
    }

    /// Asks the database whether it can still write: an empty flush returns sled's error
    /// once its log has failed, even when the failing write was its own background flush.
    /// Called every second by `tasks::recovery`.
    pub async fn probe(&self) {
        if !self.is_writable() {
            return;
        }
        let flushed = match self.engine() {
            Ok(engine) => engine
                .flusher
                .wait_flushed()
                .await
                .map_err(StoreError::Flush),
            Err(err) => Err(err),
        };
        if let Err(err) = flushed {
            self.note_write_failure(&err);
        }
    }

    /// Ends a write-failure episode if the disk takes writes again: checks that a file can
    /// be written and synced in the data directory, waits for requests still holding the
    /// poisoned engine, then opens the directory again (sled's recovery runs, the mirror is
    /// rebuilt from disk). Blocking: run it off the async workers.
    ///
    /// Returns `Ok(true)` once recovered, `Ok(false)` while the disk still refuses writes.
    ///
    /// # Errors
    /// The directory could not be opened again: the process cannot recover in place and
    /// should exit for its supervisor to restart it.
    #[allow(
        clippy::disallowed_methods,
        reason = "waiting for the last users of the failed store to let go is a real pause"
    )]
    pub fn try_recover(&self) -> Result<bool, StoreError> {
        if self.is_writable() {
            return Ok(true);
        }
        if let Err(err) = health::disk_takes_writes(&self.path) {
            tracing::debug!(error = %err, "the data directory does not take writes yet");
            return Ok(false);
        }
        let Some(old) = self
            .engine
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(false);
        };
        // The old engine's scan (long finished, as a rule) lets go of its deny list.
        self.stop_scan();
        // Requests that took the engine before it was taken out finish quickly: their
        // writes fail at once, and reads do not block.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut old = old;
        loop {
            match Arc::try_unwrap(old) {
                Ok(engine) => {
                    engine.close();
                    break;
                }
                Err(still_shared) if Instant::now() < deadline => {
                    old = still_shared;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(still_shared) => {
                    *self.engine.write().unwrap_or_else(PoisonError::into_inner) =
                        Some(still_shared);
                    return Ok(false);
                }
            }
        }
        let reopened = reopen_with_retries(
            &self.path,
            self.cache_mb,
            &self.health,
            &self.clock,
            self.missing_seal,
        )?;
        // What sled recovered is on disk: its change-log records are published.
        self.publish(reopened.changes.finished_through());
        // The reopened deny list is read into memory again, as at open; until then its
        // checks read the buckets.
        *self.scan.lock().unwrap_or_else(PoisonError::into_inner) =
            scan_deny_buckets_behind(Arc::clone(&reopened.deny), Arc::clone(&self.damage));
        *self.engine.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(reopened));
        self.health.recovered();
        Ok(true)
    }

    /// Flushes synchronously: for the command line, which has no runtime to share.
    ///
    /// # Errors
    /// The flush failed.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        let engine = self.engine()?;
        let finished = engine.changes.finished_through();
        engine.db.flush()?;
        self.publish(finished);
        Ok(())
    }

    /// Stops the flusher after a last flush; later writes are no longer made durable.
    /// The background scan stops too, so the database is let go once the store is dropped.
    pub fn close(&self) {
        self.stop_scan();
        if let Ok(engine) = self.engine() {
            engine.close();
        }
    }

    /// Waits (up to `limit`) for the background scan to end by itself; whether it did.
    #[cfg(test)]
    #[allow(
        clippy::disallowed_methods,
        reason = "a test waiting for sled in real time"
    )]
    pub(crate) fn finish_scan(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let finished = self
                .scan
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_none_or(|scan| scan.thread.is_finished());
            if finished {
                self.stop_scan();
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop_scan(&self) {
        let scan = self
            .scan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(scan) = scan {
            scan.stop();
        }
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.engine()
            .ok()
            .and_then(|engine| engine.db.size_on_disk().ok())
            .unwrap_or(0)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// sled's file lock and background threads go with the last handle of the old database;
/// the lock may outlive it by a moment, so "in use" is retried briefly.
#[allow(
    clippy::disallowed_methods,
    reason = "waiting out sled's file lock on a reopen is a real pause"
)]
fn reopen_with_retries(
    path: &Path,
    cache_mb: u64,
    health: &Arc<health::Health>,
    clock: &Clock,
    missing_seal: MissingSeal,
) -> Result<Engine, StoreError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Engine::open(path, cache_mb, Arc::clone(health), clock, missing_seal) {
            Err(StoreError::InUse) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            outcome => return outcome,
        }
    }
}

impl Engine {
    fn open(
        path: &Path,
        cache_mb: u64,
        health: Arc<health::Health>,
        clock: &Clock,
        missing_seal: MissingSeal,
    ) -> Result<Engine, StoreError> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb.saturating_mul(1024 * 1024))
            .flush_every_ms(Some(1000));
        let fresh = holds_no_store(path);
        if fresh {
            // Refused before sled creates anything in the directory.
            integrity::refuse_a_seal_without_its_store(path)?;
        }
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
        let seal = integrity::Seal::open(path, meta.clone(), fresh, missing_seal)?;
        scan_quietly(&db)?;
        let flusher = flusher::Flusher::start(db.clone(), path, health, seal)
            .map_err(|err| StoreError::Open(format!("cannot start the flusher: {err}")))?;
        let engine = Engine {
            users: db.open_tree("users")?,
            usernames: db.open_tree("usernames")?,
            tenants: db.open_tree("tenants")?,
            sessions: db.open_tree("sessions")?,
            user_sessions: db.open_tree("user_sessions")?,
            session_expiry: db.open_tree("session_expiry")?,
            session_acks: db.open_tree("session_acks")?,
            pending_denials: db.open_tree("pending_denials")?,
            deny: Arc::new(deny::DenyList::open(&db)?),
            keys: db.open_tree("keys")?,
            services: db.open_tree("services")?,
            invitations: db.open_tree("invitations")?,
            invitation_codes: db.open_tree("invitation_codes")?,
            emails: db.open_tree("emails")?,
            mail_queue: db.open_tree("mail_queue")?,
            mail_index: db.open_tree("mail_index")?,
            mail_links: db.open_tree("mail_links")?,
            changes: changes::ChangeLog::open(&db, meta.clone())?,
            flusher,
            mirror: mirror::Mirror::default(),
            sessions_held: std::sync::atomic::AtomicI64::new(0),
            db,
        };
        match migrate_from {
            None => {}
            Some(version @ (1..=3)) => engine.migrate(version, &meta, clock.now())?,
            Some(version) => {
                return Err(StoreError::Open(format!(
                    "schema version {version} was never written by claimd: damaged store"
                )))
            }
        }
        engine.replay_pending_denials()?;
        engine.replay_logged_revocations()?;
        engine.load_user_mirror()?;
        engine.load_tenant_mirror()?;
        let held = engine.count_sessions()?;
        engine
            .sessions_held
            .store(held, std::sync::atomic::Ordering::Relaxed);
        Ok(engine)
    }

    /// Stops the flusher after a last flush.
    fn close(&self) {
        self.flusher.stop();
        if let Err(err) = self.db.flush() {
            tracing::debug!(error = %err, "final flush failed");
        }
    }

    /// Brings a store written by schema `from` up to this build's, step by step; the
    /// version is bumped after each step, so a crash runs the (idempotent) step again.
    fn migrate(&self, from: u64, meta: &sled::Tree, now: u64) -> Result<(), StoreError> {
        if from < 2 {
            // Schema 1 kept the deny list in one tree. The largest leeway a configuration
            // may set: no token older than this verifies.
            let earliest_live = now.saturating_sub(MAX_LEEWAY_SECONDS);
            let moved = self.deny.migrate_single_tree(earliest_live)?;
            meta.insert("schema_version", &codec::encode_u64(2))?;
            self.db.flush()?;
            tracing::info!(
                entries = moved,
                "moved the deny list into time buckets (schema 2)"
            );
        }
        if from < 3 {
            let seeded = self.seed_change_log(now)?;
            meta.insert("schema_version", &codec::encode_u64(3))?;
            self.db.flush()?;
            tracing::info!(
                records = seeded,
                "started the change log with what can still matter to a live token (schema 3)"
            );
        }
        if from < 4 {
            // No user had an address and nothing was queued: the new trees start empty.
            meta.insert("schema_version", &codec::encode_u64(4))?;
            self.db.flush()?;
            tracing::info!("made room for email addresses and the mail queue (schema 4)");
        }
        Ok(())
    }
}

/// Whether `path` holds none of sled's files yet: a store opened there is a new one.
fn holds_no_store(path: &Path) -> bool {
    !path.join("conf").exists() && !path.join("db").exists()
}

/// sled 0.34 panics on some kinds of damage instead of returning an error. Turn such a
/// panic into an error, so a corrupt data dir stops start-up with one line rather than a
/// backtrace. (The panic hook is the binary's business: it logs panics as one line.)
fn open_quietly(config: sled::Config) -> Result<sled::Db, StoreError> {
    match without_panics(move || config.open().map_err(StoreError::from))? {
        Err(StoreError::Sled(err)) if err.to_string().contains("could not acquire lock") => {
            Err(StoreError::InUse)
        }
        Err(StoreError::Sled(err)) => Err(StoreError::Open(one_line(&err.to_string()))),
        other => other,
    }
}

/// Runs `work`, turning a panic of sled's on damaged data into an `Open` error.
fn without_panics<T>(
    work: impl FnOnce() -> Result<T, StoreError>,
) -> Result<Result<T, StoreError>, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown damage".into());
        StoreError::Open(format!(
            "the data directory is damaged ({})",
            one_line(&reason)
        ))
    })
}

/// Reads the deny-list buckets on a thread of their own, right after open; what it finds
/// wrong is left in `damage`.
#[allow(
    clippy::disallowed_methods,
    reason = "how long the scan took, for the log"
)]
fn scan_deny_buckets_behind(
    deny: Arc<deny::DenyList>,
    damage: Arc<std::sync::Mutex<Option<String>>>,
) -> Option<BackgroundScan> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let spawned = std::thread::Builder::new()
        .name("claimd-scan".into())
        .spawn(move || {
            let started = Instant::now();
            let scanned = without_panics(|| integrity::scan_deny_buckets(&deny, &stopping));
            match scanned {
                Ok(Ok(records)) => tracing::debug!(
                    records,
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "deny-list buckets scanned"
                ),
                Ok(Err(err)) | Err(err) => {
                    *damage.lock().unwrap_or_else(PoisonError::into_inner) = Some(err.to_string());
                }
            }
        });
    match spawned {
        Ok(thread) => Some(BackgroundScan { stop, thread }),
        Err(err) => {
            tracing::warn!(error = %err, "could not start the deny-list scan");
            None
        }
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.stop_scan();
    }
}

/// The open-time scan ([`integrity::scan`]), with sled's panics on damage turned into
/// errors.
#[allow(
    clippy::disallowed_methods,
    reason = "how long the scan took, for the log"
)]
fn scan_quietly(db: &sled::Db) -> Result<(), StoreError> {
    let started = Instant::now();
    let scanned = without_panics(|| integrity::scan_records(db))??;
    tracing::debug!(
        records = scanned,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "store scanned at open"
    );
    Ok(())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A store in a fresh temporary directory, for the store's unit tests.
#[cfg(test)]
pub(crate) fn test_store() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(dir.path(), 4).expect("store opens");
    (dir, store)
}

/// Opens the store at `path` for a unit test that may just have dropped another handle on
/// it: sled's file lock can outlive the dropped database by a moment (one of its I/O
/// threads still holds it), so `InUse` is retried for a few seconds, as the store's own
/// reopening after a write failure does.
#[cfg(test)]
pub(crate) fn open_for_test(path: &Path) -> SledStore {
    open_for_test_on(path, Clock::system())
}

/// [`open_for_test`] on `clock`.
#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a test waiting for sled in real time"
)]
pub(crate) fn open_for_test_on(path: &Path, clock: Clock) -> SledStore {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match SledStore::open_with_clock(path, 4, clock.clone()) {
            Err(StoreError::InUse) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            outcome => return outcome.expect("store opens"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    /// The background scan and the flusher hold the database too; once they stop, sled's
    /// lock goes within moments (one of sled's own I/O threads may hold it a little
    /// longer under load, hence the retrying open).
    fn a_dropped_store_lets_go_of_its_directory_within_moments() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            let store = crate::store::sled::open_for_test(dir.path());
            store
                .deny(DenyKind::Token, &[1; 16], 4_000..=4_000)
                .unwrap();
            drop(store);
        }
        let store = crate::store::sled::open_for_test(dir.path());
        store.close();
        drop(store);
        crate::store::sled::open_for_test(dir.path());
    }
}
