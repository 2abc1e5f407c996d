//! One claimd node on a shared database: the [`PgStore`], the [`Replica`] verification
//! reads on every request, and the listener that keeps that replica current with the
//! change log whichever node wrote it (DESIGN.md "One change log").
//!
//! **Start.** The replica is filled from one snapshot (a repeatable-read transaction):
//! every user's stamp, every tenant's version, the live deny entries, and the log's last
//! id at that snapshot. The listener then follows the log after that id, so nothing
//! committed between the snapshot and the first read is missed or applied twice.
//!
//! **Trust.** The node answers from its replica only while the listener says `Current`;
//! otherwise every read verification makes fails with `Unavailable` (503
//! `storage_unavailable`) until the listener has reconnected and caught up. It never
//! answers from state it cannot vouch for.
//!
//! **Every node, before the answer.** A write this node commits reaches its replica
//! through the log like anyone else's. [`PgNode::wait_durable`] holds the answer until
//! this node's replica has applied everything it committed, and then until every other
//! node that may answer from memory has applied it too, so the client's next request,
//! to whichever node, never meets the state before its write. Each node has a row in
//! `nodes`: how far it has applied the log, and a *lease* (`lease_until`, database time)
//! it renews every [`RENEW_EVERY`] while its listener is current, and right after it
//! applies new records. A node answers from memory only for [`TRUST`] after it sent its
//! last successful renewal, well inside its lease; a writer waits only for nodes whose
//! lease runs. So a node that loses the database stops
//! answering before anyone stops waiting for it, and a dead node delays writes by at
//! most one lease.
//!
//! **Lost history.** A node cut off for longer than the log is kept cannot catch up from
//! the log: it reports damage, and the server stops for its supervisor to restart it
//! (a fresh start loads a fresh snapshot).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::listener::{Feed, Listener, LogState};
use super::{database_error, from_bigint, PgStore};
use crate::domain::{SessionId, TenantId, TokenId, UserId};
use crate::store::disk::Stored;
use crate::store::replica::Replica;
use crate::store::{corrupt, DenyKind, StoreError, TenantRecord, UserRecord, UserStamp};

/// How long a write's answer waits for this node's own replica to apply it before the
/// node says it cannot vouch for its memory.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// How long start-up waits for the listener to follow the log.
const FOLLOW_WAIT: Duration = Duration::from_secs(30);

/// How long a renewal lets a node answer from memory (see the module doc).
pub const LEASE: Duration = Duration::from_secs(5);
/// How long after sending a renewal that succeeded a node goes on answering from memory:
/// well inside [`LEASE`], so it stops trusting itself (a silent database, a lost log)
/// long before any writer stops waiting for it.
pub const TRUST: Duration = Duration::from_secs(2);
/// How often a current node renews its lease when nothing new was applied.
pub const RENEW_EVERY: Duration = Duration::from_millis(250);
/// The longest pause between two looks at the other nodes' progress.
const PEER_POLL_MAX: Duration = Duration::from_millis(20);

/// A node over PostgreSQL.
pub struct PgNode {
    store: PgStore,
    replica: Arc<Replica>,
    state: watch::Receiver<LogState>,
    /// The highest log id applied to the replica, for the change feed to wake on.
    published: watch::Sender<u64>,
    /// Why the replica can no longer be caught up (history lost), if it cannot.
    lost: Arc<Mutex<Option<String>>>,
    /// The longest access-token life noted in the database, cached: the feed's retention
    /// reads it on every pass.
    longest_access_ttl: AtomicU64,
    /// Session rows, for the `claimd_sessions` gauge.
    sessions_held: AtomicI64,
    listener: Mutex<Option<Listener>>,
    /// This node's row in `nodes`.
    id: [u8; 16],
    /// Time answers spent waiting for other nodes (microseconds), and how many waited.
    peer_wait: PeerWait,
    /// The highest log id every other node was seen to have applied.
    peers_applied: AtomicU64,
    /// Until when this node may answer from memory ([`TRUST`] after its last renewal).
    trusted_until: Arc<Mutex<Option<Instant>>>,
    /// The task renewing the lease.
    renewer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for PgNode {
    fn drop(&mut self) {
        if let Some(renewer) = self
            .renewer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            renewer.abort();
        }
    }
}

impl PgNode {
    /// Connects, fills the replica from one snapshot and starts following the log.
    ///
    /// # Errors
    /// As [`PgStore::connect`]; `Database` or `Corrupt` while reading the snapshot.
    pub async fn open(store: PgStore) -> Result<PgNode, StoreError> {
        let replica = Arc::new(Replica::default());
        let through = load_snapshot(&store, &replica).await?;
        let longest = store.longest_access_ttl().await?;
        let sessions = store.count_sessions().await?;
        let (published, _) = watch::channel(through);
        let lost = Arc::new(Mutex::new(None));
        let listener = {
            let replica = Arc::clone(&replica);
            let published = published.clone();
            let lost = Arc::clone(&lost);
            store.listen(through, move |feed| match feed {
                Feed::Records(records) => {
                    for record in records {
                        replica.apply(record);
                    }
                    published.send_replace(replica.through());
                }
                Feed::Restart { after } => {
                    *lost.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!(
                        "this node was cut off from the change log for longer than it is kept \
                         (it resumes at {after}, past what this node applied): restart it to \
                         reload"
                    ));
                }
            })
        };
        // Serve nothing before this node follows the log. (`wait_for` answers with a read
        // guard on the listener's state: it must go at once, or the listener blocks on it
        // the next time it publishes, on this very thread.)
        let mut state = listener.state();
        let following = matches!(
            tokio::time::timeout(
                FOLLOW_WAIT,
                state.wait_for(|state| matches!(state, LogState::Current { .. })),
            )
            .await,
            Ok(Ok(_))
        );
        if !following {
            return Err(StoreError::Open(format!(
                "could not follow the database's change log within {FOLLOW_WAIT:?}"
            )));
        }
        let id = *uuid::Uuid::now_v7().as_bytes();
        let trusted_until = Arc::new(Mutex::new(None));
        renew_lease(&store, id, through, &trusted_until).await?;
        let renewer = tokio::spawn(keep_lease(
            store.clone(),
            id,
            Arc::clone(&replica),
            published.subscribe(),
            listener.state(),
            Arc::clone(&trusted_until),
        ));
        Ok(PgNode {
            store,
            replica,
            state: listener.state(),
            published,
            lost,
            longest_access_ttl: AtomicU64::new(longest),
            sessions_held: AtomicI64::new(sessions),
            listener: Mutex::new(Some(listener)),
            id,
            peers_applied: AtomicU64::new(0),
            peer_wait: PeerWait::default(),
            trusted_until,
            renewer: Mutex::new(Some(renewer)),
        })
    }

    /// The database operations.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// Whether the replica can be answered from now.
    ///
    /// # Errors
    /// `Unavailable` while the listener is behind the log (or has lost it).
    #[allow(
        clippy::disallowed_methods,
        reason = "the lease is the database's (lease_until > now() on its clock): this node's trust in it must run in real time, not on a test's clock"
    )]
    pub fn vouch(&self) -> Result<(), StoreError> {
        if self.damage().is_some() {
            return Err(StoreError::Unavailable(
                "this node lost the change log".into(),
            ));
        }
        if let LogState::Behind = *self.state.borrow() {
            return Err(StoreError::Unavailable(
                "this node is catching up with the database's change log".into(),
            ));
        }
        let trusted = *self
            .trusted_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match trusted {
            Some(until) if Instant::now() < until => Ok(()),
            _ => Err(StoreError::Unavailable(
                "this node's lease on the database has run out".into(),
            )),
        }
    }

    /// Whether this node follows the log now (the connection is up and caught up).
    pub fn is_current(&self) -> bool {
        self.vouch().is_ok()
    }

    /// Waits until the replica has applied every change this node committed so far.
    ///
    /// # Errors
    /// `Unavailable` when it has not within [`APPLY_WAIT`] (the listener lost the
    /// database): the write is committed, but this node cannot vouch for its memory.
    pub async fn wait_durable(&self) -> Result<(), StoreError> {
        let target = self.store.last_appended();
        if self.replica.through() < target {
            let mut published = self.published.subscribe();
            // The read guard `wait_for` answers with goes within this statement.
            let applied = matches!(
                tokio::time::timeout(APPLY_WAIT, published.wait_for(|&seen| seen >= target)).await,
                Ok(Ok(_))
            );
            if !applied {
                return Err(StoreError::Unavailable(
                    "the write committed, but this node has not seen it in the change log".into(),
                ));
            }
        }
        self.wait_for_peers(target).await
    }

    /// Waits until every other node whose lease runs has applied the log through
    /// `target`. A node that stops renewing drops out when its lease ends, so this ends
    /// within one [`LEASE`] whatever happens to the others.
    #[allow(
        clippy::disallowed_methods,
        reason = "peers' leases run out in real time on the database's clock; the wait for them is bounded in real time"
    )]
    async fn wait_for_peers(&self, target: u64) -> Result<(), StoreError> {
        // Most answers (a refresh, a login) wrote nothing to the log since the last wait.
        if target <= self.peers_applied.load(Ordering::Acquire) {
            return Ok(());
        }
        let _timed = self.peer_wait.timing();
        let confirmed = target;
        let target = super::to_bigint(target)?;
        let deadline = Instant::now() + LEASE + TRUST;
        let mut pause = Duration::from_millis(1);
        loop {
            let behind: i64 = self
                .store
                .bounded(async {
                    let client = self.store.client().await?;
                    let row = client
                        .query_one(
                            "SELECT count(*) FROM nodes
                             WHERE id <> $1 AND lease_until > now() AND applied < $2",
                            &[&&self.id[..], &target],
                        )
                        .await
                        .map_err(database_error)?;
                    Ok::<_, StoreError>(row.get(0))
                })
                .await?;
            if behind == 0 {
                self.peers_applied.fetch_max(confirmed, Ordering::AcqRel);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(
                    "the write committed, but another node has not applied it".into(),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(PEER_POLL_MAX);
        }
    }

    /// How long answers have waited for other nodes to apply their writes, in all, and
    /// how many answers did (for `/metrics`).
    pub fn peer_wait(&self) -> (Duration, u64) {
        (
            Duration::from_micros(self.peer_wait.micros.load(Ordering::Relaxed)),
            self.peer_wait.waits.load(Ordering::Relaxed),
        )
    }

    /// What verification needs of a user.
    ///
    /// # Errors
    /// `Unavailable` while the replica cannot be vouched for.
    pub fn user_stamp(&self, id: UserId) -> Result<Option<UserStamp>, StoreError> {
        self.vouch()?;
        Ok(self.replica.user_stamp(id.as_bytes()))
    }

    /// A tenant's version.
    ///
    /// # Errors
    /// `Unavailable` while the replica cannot be vouched for.
    pub fn tenant_version(&self, id: TenantId) -> Result<Option<u64>, StoreError> {
        self.vouch()?;
        Ok(self.replica.tenant_version(id.as_bytes()))
    }

    /// Whether the token or its session is refused at `exp`.
    ///
    /// # Errors
    /// `Unavailable` while the replica cannot be vouched for.
    pub fn token_is_revoked(
        &self,
        jti: TokenId,
        sid: SessionId,
        exp: u64,
    ) -> Result<bool, StoreError> {
        self.vouch()?;
        Ok(self.replica.is_revoked(jti.as_bytes(), sid.as_bytes(), exp))
    }

    /// Whether one entry refuses `id` at `exp`.
    ///
    /// # Errors
    /// `Unavailable` while the replica cannot be vouched for.
    pub fn is_denied(&self, kind: DenyKind, id: &[u8; 16], exp: u64) -> Result<bool, StoreError> {
        self.vouch()?;
        Ok(self.replica.is_denied(kind, id, exp))
    }

    /// Notes the access-token life in force (in the database, for every node).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn note_access_ttl(&self, ttl: u64) -> Result<u64, StoreError> {
        let longest = self.store.note_access_ttl(ttl).await?;
        self.longest_access_ttl.fetch_max(longest, Ordering::AcqRel);
        Ok(longest)
    }

    /// The longest access-token life noted when this node started or since.
    pub fn longest_access_ttl(&self) -> u64 {
        self.longest_access_ttl.load(Ordering::Acquire)
    }

    /// Removes what expired, from the database and from the replica. The deny entries
    /// reported are the ones this node stopped holding (the table's rows go later, past
    /// the largest leeway a configuration may set, and whichever node deletes them does it
    /// for all); the session count is read again, exactly.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn evict_expired(
        &self,
        now: u64,
        leeway: u64,
    ) -> Result<crate::store::EvictionReport, StoreError> {
        // Memory is pruned only once the database pass succeeded, so the entries it drops
        // are always counted in the report (`claimd_evictions_total`): pruned first, a failing
        // database call lost their count while the entries were gone. Expired entries left
        // in memory until the next pass refuse no token that could still verify.
        let mut report = self.store.evict_expired(now, leeway).await?;
        self.sessions_held
            .store(self.store.count_sessions().await?, Ordering::Relaxed);
        report.deny_removed = self.replica.evict(now, leeway);
        Ok(report)
    }

    /// Sessions held in the database: exact after start and each eviction pass, and
    /// following this node's own logins and removals in between.
    pub fn sessions_held(&self) -> i64 {
        self.sessions_held.load(Ordering::Relaxed)
    }

    /// Stores a new session (see [`PgStore::insert_session`]), counting it.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn insert_session(
        &self,
        sid: SessionId,
        session: &crate::store::SessionRecord,
    ) -> Result<(), StoreError> {
        self.store.insert_session(sid, session).await?;
        self.sessions_held.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes a session (see [`PgStore::remove_session`]), counting it out.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn remove_session(
        &self,
        sid: SessionId,
        session: &crate::store::SessionRecord,
    ) -> Result<(), StoreError> {
        self.store.remove_session(sid, session).await?;
        self.sessions_held.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }

    /// Live deny entries this node holds.
    pub fn deny_entries(&self) -> i64 {
        self.replica.deny_entries()
    }

    /// The highest log id this node has applied.
    pub fn published_through(&self) -> u64 {
        self.replica.through()
    }

    /// Wakes on each id this node applies.
    pub fn watch_published(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Wakes when any node changed the key set.
    pub fn watch_keys(&self) -> watch::Receiver<u64> {
        self.replica.watch_keys()
    }

    /// Why this node must be restarted, if it must.
    pub fn damage(&self) -> Option<String> {
        self.lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops renewing and gives up this node's lease, so no write waits for it; from now
    /// on it answers nothing from memory.
    pub async fn leave(&self) {
        if let Some(renewer) = self
            .renewer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            renewer.abort();
        }
        *self
            .trusted_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        if let Ok(client) = self.store.client().await {
            let _ = client
                .execute("DELETE FROM nodes WHERE id = $1", &[&&self.id[..]])
                .await;
        }
    }

    /// Stops following the log and renewing, and closes the pool.
    pub fn close(&self) {
        if let Some(renewer) = self
            .renewer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            renewer.abort();
        }
        self.listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.store.close();
    }
}

/// The time answers spend in [`PgNode::wait_for_peers`] past its fast path.
#[derive(Default)]
struct PeerWait {
    micros: AtomicU64,
    waits: AtomicU64,
}

impl PeerWait {
    /// Counts one wait, timed until the guard is dropped (however the wait ends).
    #[allow(
        clippy::disallowed_methods,
        reason = "how long answers waited for peers, in real time, for /metrics"
    )]
    fn timing(&self) -> PeerWaitTimer<'_> {
        PeerWaitTimer {
            wait: self,
            started: Instant::now(),
        }
    }
}

struct PeerWaitTimer<'a> {
    wait: &'a PeerWait,
    started: Instant,
}

impl Drop for PeerWaitTimer<'_> {
    fn drop(&mut self) {
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.wait.micros.fetch_add(micros, Ordering::Relaxed);
        self.wait.waits.fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes this node's row: how far it applied, and a lease of [`LEASE`] from now
/// (database time). On success this node trusts itself for [`TRUST`] from the moment
/// *before* the statement was sent. Not flushed at
/// commit: a lease lost in a crash only ends sooner.
#[allow(
    clippy::disallowed_methods,
    reason = "the lease's trust window is measured in real time (see vouch)"
)]
async fn renew_lease(
    store: &PgStore,
    id: [u8; 16],
    applied: u64,
    trusted_until: &Mutex<Option<Instant>>,
) -> Result<(), StoreError> {
    let sent = Instant::now();
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(database_error)?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await
        .map_err(database_error)?;
    let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO nodes (id, applied, lease_until)
         VALUES ($1, $2, now() + $3 * interval '1 millisecond')
         ON CONFLICT (id) DO UPDATE
         SET applied = GREATEST(nodes.applied, EXCLUDED.applied),
             lease_until = EXCLUDED.lease_until",
        &[&&id[..], &super::to_bigint(applied)?, &(lease_ms as f64)],
    )
    .await
    .map_err(database_error)?;
    tx.commit().await.map_err(database_error)?;
    *trusted_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(sent + TRUST);
    Ok(())
}

/// Renews the lease every [`RENEW_EVERY`], and at once when the replica applied more (a
/// writer on another node may be waiting for exactly that), but only while the listener
/// is current: a node that lost the log lets its lease run out.
async fn keep_lease(
    store: PgStore,
    id: [u8; 16],
    replica: Arc<Replica>,
    mut published: watch::Receiver<u64>,
    state: watch::Receiver<LogState>,
    trusted_until: Arc<Mutex<Option<Instant>>>,
) {
    loop {
        tokio::select! {
            changed = published.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(RENEW_EVERY) => {}
        }
        if !matches!(*state.borrow(), LogState::Current { .. }) {
            continue;
        }
        let renewal = store.bounded(renew_lease(&store, id, replica.through(), &trusted_until));
        if let Err(err) = renewal.await {
            tracing::debug!(error = %err, "could not renew this node's lease");
        }
    }
}

/// Fills `replica` from one snapshot of the tables; the log's last id at that snapshot.
async fn load_snapshot(store: &PgStore, replica: &Replica) -> Result<u64, StoreError> {
    let mut client = store.client().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(database_error)?;
    let through: i64 = tx
        .query_one("SELECT last FROM change_counter", &[])
        .await
        .map_err(database_error)?
        .get(0);
    for row in tx
        .query("SELECT id, record FROM users", &[])
        .await
        .map_err(database_error)?
    {
        let id = id16(row.get::<_, &[u8]>(0), "users")?;
        let user: UserRecord =
            Stored::from_disk(row.get::<_, &[u8]>(1)).map_err(corrupt("users"))?;
        replica.load_user(id, user.stamp());
    }
    for row in tx
        .query("SELECT id, record FROM tenants", &[])
        .await
        .map_err(database_error)?
    {
        let id = id16(row.get::<_, &[u8]>(0), "tenants")?;
        let tenant: TenantRecord =
            Stored::from_disk(row.get::<_, &[u8]>(1)).map_err(corrupt("tenants"))?;
        replica.load_tenant(id, tenant.version);
    }
    for row in tx
        .query("SELECT kind, id, exp FROM deny", &[])
        .await
        .map_err(database_error)?
    {
        let kind = match u8::try_from(row.get::<_, i8>(0)).ok() {
            Some(tag) if tag == DenyKind::Token.tag() => DenyKind::Token,
            Some(tag) if tag == DenyKind::Session.tag() => DenyKind::Session,
            _ => {
                return Err(StoreError::Database(
                    "a deny entry of an unknown kind".into(),
                ))
            }
        };
        let id = id16(row.get::<_, &[u8]>(1), "deny")?;
        replica.deny(kind, id, from_bigint(row.get(2))?);
    }
    tx.commit().await.map_err(database_error)?;
    let through = from_bigint(through)?;
    replica.loaded_through(through);
    Ok(through)
}

fn id16(bytes: &[u8], table: &'static str) -> Result<[u8; 16], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Database(format!("an id of {} bytes in `{table}`", bytes.len())))
}
