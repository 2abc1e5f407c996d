//! The PostgreSQL store backend (issue 13), for several claimd nodes sharing one database.
//! Only this module imports tokio-postgres and deadpool.
//!
//! # Layout
//! - this file: [`PgStore`], the pool of connections, and the one place database errors
//!   become [`StoreError::Database`] (one line, never the connection string);
//! - [`schema`]: the tables, why each looks as it does, and the migrations run at connect;
//! - [`log`]: the change log on PostgreSQL (ids from a one-row counter held until commit,
//!   `NOTIFY` at commit), read and evicted as the sled log is;
//! - [`listener`]: the task that follows the log on a dedicated connection and says
//!   whether this node is current with it;
//! - [`sessions`]: refresh-token families, rotated by one compare-and-set;
//! - [`deny`], [`keys`], [`services`]: the deny list, the signing-key ring and service
//!   credentials, with the sled store's operations;
//! - [`tenants`], [`users`]: tenants (whose row lock guards their seats) and users
//!   (the unique username and address, registration into a tenant, by invitation too,
//!   claim changes);
//! - [`invitations`]: invitation books and their codes, seats counted under the
//!   tenant's lock;
//! - [`mail`]: the mail queue and each user's mail links (queued under the user's row
//!   lock, claimed by one sender at a time on any node, redeemed with the change log);
//! - [`eviction`]: one pass removing what expired;
//! - [`revocations`]: ending sessions, their deny entries and the user change in one
//!   transaction;
//! - [`node`]: one claimd node on the database: its replica of what verification reads,
//!   kept current from the log, and the leases that make a write wait for every node;
//! - [`import`]: a sled store copied in whole (`claimd migrate`).
//!
//! Durability is the commit's: a statement answered after `COMMIT` is on disk
//! (`synchronous_commit = on`, PostgreSQL's default); no flusher of ours is involved.
//!
//! Connections are plain TCP or a Unix socket: no TLS yet (`NoTls`). Run the database on
//! the same host or a private network until TLS lands.

mod backend;
pub mod deny;
pub mod eviction;
pub mod import;
pub mod invitations;
pub mod keys;
pub mod listener;
pub mod log;
pub mod mail;
pub mod node;
pub mod revocations;
pub mod schema;
pub mod services;
pub mod sessions;
pub mod tenants;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::StoreError;
use crate::clock::Clock;

/// How long a connection attempt may take, unless the URL says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a database may leave a connection without an answer (unacknowledged data,
/// or an idle connection's probes) before the connection is given up as broken.
const SILENT_DATABASE: Duration = Duration::from_secs(5);

/// How long a request waits for a free connection of the pool: past it the store is
/// treated as unavailable rather than queueing requests without bound.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// The store on PostgreSQL: a pool of connections to one database, migrated to this
/// build's schema. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Where the pool connects, for the connections that live outside it (the listener's).
    config: tokio_postgres::Config,
    /// The highest change-log id this process has committed: a write is acknowledged
    /// only once this node's replica has applied that far (see [`PgStore::note_appended`]).
    appended: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The time written into change-log records.
    clock: Clock,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password: only where it points.
        f.debug_struct("PgStore")
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects a pool of at most `pool_size` connections to the database `url` names
    /// (`postgres://user:password@host:port/dbname`, or the key=value form), and brings
    /// its schema to this build's (see [`schema`]), waiting for another node doing the
    /// same.
    ///
    /// # Errors
    /// One line, never carrying the URL or its password: `Open` for a URL that cannot be
    /// parsed or a schema newer than this build; `Database` when the server cannot be
    /// reached or refuses (authentication, a missing database, a failed migration).
    pub async fn connect(url: &str, pool_size: usize) -> Result<PgStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|err| {
            StoreError::Open(format!(
                "storage.postgres_url is not a PostgreSQL URL ({})",
                one_line(&err.to_string())
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("claimd");
        }
        // A database that goes silent (a partition, a dead host: no reset ever comes) must
        // fail a statement within seconds, not hang a request: data unacknowledged for
        // this long ends the connection, and idle ones are probed.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(SILENT_DATABASE);
        }
        config
            .keepalives(true)
            .keepalives_idle(SILENT_DATABASE)
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // No query on checkout: a connection whose server went away (a restart) has
                // ended its connection task, and the pool replaces it on its return; one
                // broken mid-statement fails that statement only (a storage fault).
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|err| StoreError::Open(format!("cannot build the connection pool: {err}")))?;
        let store = PgStore {
            pool,
            config,
            appended: std::sync::Arc::default(),
            clock: Clock::system(),
        };
        schema::migrate(&store).await?;
        Ok(store)
    }

    /// A connection of the pool.
    ///
    /// # Errors
    /// `Database` when none could be had in time (the server is down or every connection
    /// is busy).
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|err| match err {
            deadpool_postgres::PoolError::Backend(err) => database_error(err),
            other => StoreError::Database(one_line(&format!("no connection: {other}"))),
        })
    }

    /// This store, reading `clock` where it needs the time (tests move time instead of
    /// sleeping).
    pub fn with_clock(mut self, clock: Clock) -> PgStore {
        self.clock = clock;
        self
    }

    /// Runs one database operation, giving up after [`SILENT_DATABASE`]: a database that
    /// goes silent behind something that still accepts the bytes (a proxy, a frozen VM)
    /// trips no TCP timeout. The connection the operation held may never answer again,
    /// so the pool lets go of every idle connection and makes new ones.
    ///
    /// # Errors
    /// The operation's own, or `Database` when it did not finish in time (its outcome is
    /// unknown: a write may have committed).
    pub async fn bounded<T, E: From<StoreError>>(
        &self,
        work: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        match tokio::time::timeout(SILENT_DATABASE, work).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.pool.retain(|_, _| false);
                Err(StoreError::Database(format!(
                    "the database did not answer within {SILENT_DATABASE:?}"
                ))
                .into())
            }
        }
    }

    /// Whether the database answers a statement now (for readiness).
    ///
    /// # Errors
    /// `Database` when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map_err(database_error)?;
        Ok(())
    }

    /// Closes the pool: connections are closed as they come back, and later requests
    /// fail at once. Listeners are stopped by dropping them.
    pub fn close(&self) {
        self.pool.close();
    }

    /// Notes that a transaction which appended `ids` to the change log (the range
    /// [`log::append`] returned) has committed. Every write method that appends calls it
    /// right after its commit, before it returns: the node then holds the write's answer
    /// back until its own memory has applied those records (`wait_durable`), so a
    /// request after the answer never sees the state before the write.
    pub(crate) fn note_appended(&self, ids: &std::ops::Range<u64>) {
        if let Some(last) = ids.clone().last() {
            self.appended
                .fetch_max(last, std::sync::atomic::Ordering::AcqRel);
        }
    }

    /// The highest change-log id this process has committed.
    pub(crate) fn last_appended(&self) -> u64 {
        self.appended.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Where this store connects, for a connection of its own outside the pool.
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

/// A tokio-postgres error as one line: the server's own message and SQLSTATE when it sent
/// one, else the client's error and its cause (connection refused, closed, timed out).
/// tokio-postgres never puts the password in its errors, and neither do we.
pub(crate) fn database_error(err: tokio_postgres::Error) -> StoreError {
    let text = match err.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
    };
    StoreError::Database(one_line(&text))
}

/// A number for a `bigint` column; claimd's numbers stay far below 2^63, so one that does
/// not fit is damage, refused before it is written.
pub(crate) fn to_bigint(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Database(format!("{value} does not fit a bigint")))
}

/// A `bigint` column as claimd's number; a negative one is damage.
pub(crate) fn from_bigint(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Database(format!("negative number {value}")))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::testing::TestDatabase;
    use super::*;

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn two_nodes_connecting_together_create_the_schema_once() {
        let db = TestDatabase::require().await;
        let (first, second) =
            tokio::join!(PgStore::connect(&db.url, 2), PgStore::connect(&db.url, 2));
        let (first, _second) = (first.unwrap(), second.unwrap());
        let client = first.client().await.unwrap();
        let version: i32 = client
            .query_one("SELECT version FROM claimd_schema", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, schema::SCHEMA_VERSION);
        // The seed rows of step 1 exist once: the step ran once.
        let counters: i64 = client
            .query_one("SELECT count(*) FROM change_counter", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(counters, 1);
        let marks: i64 = client
            .query_one(
                "SELECT count(*) FROM meta WHERE name = 'changes_evicted_through'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(marks, 1);
        // A third start finds nothing to do.
        assert_eq!(
            schema::migrate(&first).await.unwrap(),
            schema::SCHEMA_VERSION
        );
        db.drop_now().await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn a_schema_newer_than_the_build_is_refused_with_one_line() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 1).await.unwrap();
        let newer = schema::SCHEMA_VERSION + 1;
        store
            .client()
            .await
            .unwrap()
            .execute("UPDATE claimd_schema SET version = $1", &[&newer])
            .await
            .unwrap();
        drop(store);
        let err = PgStore::connect(&db.url, 1).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.ends_with(&format!(
                "the database's claimd schema {newer} is newer than this build ({})",
                schema::SCHEMA_VERSION
            )),
            "{text}"
        );
        assert!(!text.contains('\n'));
        db.drop_now().await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn errors_never_carry_the_password() {
        let db = TestDatabase::require().await;
        let mut wrong = db.config.clone();
        wrong.password("not-the-password-x9");
        let url = TestDatabase::url_of(&wrong);
        let err = PgStore::connect(&url, 1).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Database(_)), "{text}");
        assert!(text.contains("password authentication failed"), "{text}");
        assert!(!text.contains("not-the-password-x9"), "{text}");

        for bad in [
            format!("{url} sslmode=sometimes"),
            "postgres://claimd:not-the-password-x9@127.0.0.1:notaport/db".to_string(),
            "postgres://claimd:not-the-password-x9@127.0.0.1:1/db".to_string(),
        ] {
            let text = PgStore::connect(&bad, 1).await.unwrap_err().to_string();
            assert!(!text.contains("not-the-password-x9"), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
        db.drop_now().await;
    }
}
