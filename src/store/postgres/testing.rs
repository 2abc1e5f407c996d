//! A database of its own for each test, made in the cluster `CLAIMD_TEST_POSTGRES_URL`
//! names (`.ci/postgres start` makes one) and dropped after. The tests that need one are
//! `#[ignore = "needs PostgreSQL"]`: `cargo test` lists them as ignored, never as passed,
//! and `.ci/run` runs them with `--include-ignored` on its own cluster, where a missing
//! variable fails them.

use std::str::FromStr;

use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

/// The variable naming the test cluster.
pub const URL_VARIABLE: &str = "CLAIMD_TEST_POSTGRES_URL";

/// A fresh database, dropped when the test ends (by [`TestDatabase::drop_now`], or on
/// drop after a failed assertion).
pub struct TestDatabase {
    /// Connects to this database.
    pub url: String,
    pub config: tokio_postgres::Config,
    /// The cluster's own database, to drop this one from.
    admin: tokio_postgres::Config,
    name: String,
    dropped: bool,
}

impl TestDatabase {
    /// A new database in the cluster `CLAIMD_TEST_POSTGRES_URL` names.
    ///
    /// # Panics
    /// No cluster named (run `eval "$(.ci/postgres start)"` first), or one that refuses.
    pub async fn require() -> TestDatabase {
        let url = std::env::var(URL_VARIABLE).unwrap_or_else(|_| {
            panic!(
                "{URL_VARIABLE} is not set: this test needs PostgreSQL; \
                 run `eval \"$(.ci/postgres start)\"` first"
            )
        });
        let admin = tokio_postgres::Config::from_str(&url).expect("a PostgreSQL URL");
        let name = format!("claimd_test_{:016x}", rand::random::<u64>());
        execute(&admin, &format!("CREATE DATABASE {name}")).await;
        let mut config = admin.clone();
        config.dbname(&name);
        TestDatabase {
            url: TestDatabase::url_of(&config),
            config,
            admin,
            name,
            dropped: false,
        }
    }

    /// `config` as a key=value connection string.
    pub fn url_of(config: &tokio_postgres::Config) -> String {
        let quote = |value: &str| format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut parts = Vec::new();
        if let Some(host) = config.get_hosts().first() {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            parts.push(format!("host={}", quote(&host)));
        }
        if let Some(port) = config.get_ports().first() {
            parts.push(format!("port={port}"));
        }
        if let Some(user) = config.get_user() {
            parts.push(format!("user={}", quote(user)));
        }
        if let Some(password) = config.get_password() {
            parts.push(format!(
                "password={}",
                quote(&String::from_utf8_lossy(password))
            ));
        }
        if let Some(dbname) = config.get_dbname() {
            parts.push(format!("dbname={}", quote(dbname)));
        }
        parts.join(" ")
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster's own database, for statements about this one.
    pub fn admin_config(&self) -> tokio_postgres::Config {
        self.admin.clone()
    }

    /// Drops the database, ending whatever is still connected to it.
    pub async fn drop_now(mut self) {
        self.dropped = true;
        drop_database(&self.admin, &self.name).await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // A failed test: drop it from a runtime of its own (this one may be gone).
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(drop_database(&admin, &name));
            }
        })
        .join();
    }
}

/// Drops the database, again if a connection still being made to it (a node under test
/// reconnecting) slipped in between `FORCE` ending the others and the drop. Cleanup only:
/// a database that still cannot be dropped is reported, not failed on.
async fn drop_database(admin: &tokio_postgres::Config, name: &str) {
    let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let mut last = String::new();
    for _ in 0..20 {
        match try_execute(admin, &statement).await {
            Ok(()) => return,
            Err(err) => last = err,
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    eprintln!("test database {name} left behind: {last}");
}

/// Runs one statement on a connection of its own; the error with the server's message.
async fn try_execute(config: &tokio_postgres::Config, statement: &str) -> Result<(), String> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    let driver = tokio::spawn(connection);
    let outcome = client.batch_execute(statement).await.map_err(|err| {
        err.as_db_error()
            .map_or_else(|| err.to_string(), |db| db.message().to_string())
    });
    drop(client);
    let _ = driver.await;
    outcome
}

/// Runs one statement on a connection of its own; a failure fails the test.
pub async fn execute(config: &tokio_postgres::Config, statement: &str) {
    if let Err(reason) = try_execute(config, statement).await {
        panic!("{statement}: {reason}");
    }
}
