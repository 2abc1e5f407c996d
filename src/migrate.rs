//! `claimd migrate --from sled --to postgres`: moves the sled store at `storage.path` into
//! the empty PostgreSQL database at `storage.postgres_url`, with every server stopped. The
//! copy itself, in one transaction, is `store::postgres::import`; this module checks the
//! direction and the settings, opens both stores and closes them again.
//!
//! Only that direction exists: anything else is refused with one line before either store
//! is touched.

use anyhow::Context as _;

use crate::clock::Clock;
use crate::config::Settings;
use crate::secret::ExposeSecret as _;
use crate::store::postgres::import::{import_sled, ImportSummary};
use crate::store::{PgStore, SledStore};

/// Connections the move needs: one transaction does all of it.
const POOL_SIZE: usize = 1;

/// Runs `claimd migrate --from FROM --to TO` with `settings`. Returns what was moved.
///
/// # Errors
/// One line each, never carrying the database URL: a direction other than sled to
/// postgres; no claimd store at `storage.path`, or one in use (a server running on it);
/// `storage.postgres_url` unset or unreachable; a database that already holds a claimd
/// store; a damaged record or a refused row (nothing is written then).
pub async fn run(settings: &Settings, from: &str, to: &str) -> anyhow::Result<ImportSummary> {
    anyhow::ensure!(
        (from, to) == ("sled", "postgres"),
        "claimd migrate moves a store --from sled --to postgres only (asked: --from {from} --to {to})"
    );
    let path = settings.storage.path.clone();
    // Only the server creates a store: a mistyped path must not move an empty new one.
    anyhow::ensure!(
        crate::data_dir::holds_store(&path),
        "storage.path {}: no claimd store there",
        path.display()
    );
    let url = settings
        .storage
        .postgres_url
        .as_ref()
        .context("storage.postgres_url is not set (CLAIMD__STORAGE__POSTGRES_URL)")?;
    let cache_mb = settings.storage.cache_mb;
    let sled = tokio::task::spawn_blocking(move || SledStore::open(&path, cache_mb))
        .await?
        .with_context(|| format!("storage.path {}", settings.storage.path.display()))?;
    let moved = async {
        let pg = PgStore::connect(url.expose_secret(), POOL_SIZE)
            .await
            .context("storage.postgres_url")?;
        let moved = import_sled(&sled, &pg, Clock::system().now()).await;
        pg.close();
        Ok::<_, anyhow::Error>(moved?)
    }
    .await;
    sled.close();
    moved
}
