//! Which store backend this run of the black-box suite uses. By default every server is
//! the embedded sled one; with `CLAIMD_TEST_BACKEND=postgres` (and `.ci/postgres`'s
//! `CLAIMD_TEST_POSTGRES_URL`) the same tests run every server on PostgreSQL, each store
//! in a schema of its own in one `claimd_tests` database, named after the data directory
//! the test gave it, so a server restarted on the same directory finds its state again.
//! `.ci/run` runs the suite both ways.
//!
//! A few tests are about the sled files themselves (a damaged data directory, its lock, a
//! backup file): they sit in modules named `sled_files`, which the PostgreSQL pass skips
//! by name (`-- --skip ::sled_files::`), so none of them counts as passed there.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The variable that names the backend of this run.
pub const BACKEND_VARIABLE: &str = "CLAIMD_TEST_BACKEND";
/// Where `.ci/postgres` says its throwaway cluster is.
pub const URL_VARIABLE: &str = "CLAIMD_TEST_POSTGRES_URL";
/// The database the suite's schemas live in.
const DATABASE: &str = "claimd_tests";

/// Whether this run puts every server on PostgreSQL.
pub fn on_postgres() -> bool {
    match std::env::var(BACKEND_VARIABLE).as_deref() {
        Ok("postgres") => true,
        Ok("sled") | Err(_) => false,
        Ok(other) => panic!("{BACKEND_VARIABLE}={other}: expected sled or postgres"),
    }
}

/// The cluster's URL. The tests that ask for it are `#[ignore = "needs PostgreSQL"]`
/// (`.ci/run` runs them with `--include-ignored` on its own cluster), and so are never
/// counted as passed without one.
///
/// # Panics
/// No cluster named: a test that needs one cannot pass without it.
pub fn cluster_url() -> String {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{URL_VARIABLE} is not set: this test needs PostgreSQL; \
             run `eval \"$(.ci/postgres start)\"` first"
        ),
    }
}

/// `url` with its database replaced by `database` (query parameters kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let host_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[host_end..].find('/') {
        Some(slash) => &base[..host_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// Runs one statement with `psql` (Debian's, beside the cluster); its stderr on failure.
fn psql(url: &str, statement: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", statement])
        .output()
        .map_err(|err| format!("cannot run psql: {err}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A database of claimd's own for the suite's schemas, created once per run.
fn suite_database(cluster: &str) -> String {
    static CREATED: OnceLock<()> = OnceLock::new();
    CREATED.get_or_init(|| {
        if let Err(err) = psql(cluster, &format!("CREATE DATABASE {DATABASE}")) {
            assert!(err.contains("already exists"), "creating {DATABASE}: {err}");
        }
    });
    with_database(cluster, DATABASE)
}

/// Every row of the store `data` names in this run, as `pg_dump --data-only` writes them
/// (`bytea` as `\x` and lowercase hex): what a copy of the database would hold.
pub fn dump_store(data: &Path) -> Vec<u8> {
    let database = suite_database(&cluster_url());
    let out = Command::new("pg_dump")
        .args(["--data-only", "--schema", &schema_for(data), &database])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A schema of its own for a store, named after the store's data directory.
pub fn schema_for(data: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    format!("t_{:016x}", hasher.finish())
}

/// The PostgreSQL URL of the store `data` names in this run: `claimd_tests`, with
/// `search_path` set to the store's own schema (created when first asked for).
pub fn postgres_url_for(data: &Path) -> String {
    let cluster = cluster_url();
    let database = suite_database(&cluster);
    let schema = schema_for(data);
    if let Err(err) = psql(&database, &format!("CREATE SCHEMA IF NOT EXISTS {schema}")) {
        assert!(
            err.contains("already exists"),
            "creating schema {schema}: {err}"
        );
    }
    let separator = if database.contains('?') { '&' } else { '?' };
    format!("{database}{separator}options=-csearch_path%3D{schema}")
}

#[test]
fn a_url_gets_another_database_and_keeps_its_parameters() {
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:5432/postgres", "x"),
        "postgres://u:p@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
