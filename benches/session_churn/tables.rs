//! The PostgreSQL side of the session churn: what the three tables that churn hold
//! (`deny`, `sessions`, `changes`: rows, `pg_total_relation_size` with indexes and TOAST,
//! dead row versions awaiting vacuum), and how long the lookups that claimd's eviction
//! pass deletes by take, timed as `SELECT count(*)` over the same predicate with the same
//! horizon (for the change log, claimd's own first query, then the count of the prefix it
//! finds). It only reads: every delete is claimd's own.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_postgres::{Client, NoTls};

/// The tables sampled, in the order of every array below.
pub const TABLES: [&str; 3] = ["deny", "sessions", "changes"];

/// How far past its last token's `exp` a deny row stays (`store::MAX_LEEWAY_SECONDS`).
const DENY_KEPT_PAST_EXP: u64 = 300;

/// `tokens.leeway`: the bench sets it (to this) so that the change log's horizon below
/// is the one claimd evicts by.
pub const LEEWAY_SECONDS: u64 = 30;

/// What one table held at a sample.
#[derive(Clone, Copy, Default)]
pub struct Table {
    pub rows: i64,
    pub bytes: i64,
    /// `n_dead_tup`: deleted row versions vacuum has not yet reclaimed.
    pub dead: i64,
    /// Rows past the eviction horizon now (the next pass's work).
    pub expired: i64,
    /// Time of that count over the eviction's own predicate.
    pub lookup: Duration,
}

/// A connection to the run's database.
pub struct Tables {
    client: Client,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// evict_changes, first step, as claimd runs it: the last id before the first record to
/// keep (written at or after `$1`), or else the last one; `$2` is how far it evicted.
const CHANGES_HIGHEST: &str = "SELECT COALESCE(
     (SELECT id FROM changes WHERE id > $2 AND at >= $1 ORDER BY id LIMIT 1) - 1,
     (SELECT max(id) FROM changes),
     $2)";

/// The eviction's selection for a table, as a count: `$1` is its horizon.
fn expired_query(table: &str) -> &'static str {
    match table {
        // evict_deny_entries: exp before now minus the largest leeway (deny_by_exp).
        "deny" => "SELECT count(*) FROM deny WHERE exp < $1",
        // evict_expired_sessions: expiry reached (sessions_by_expiry); a logout brings a
        // session's expiry to the moment it was revoked.
        "sessions" => "SELECT count(*) FROM sessions WHERE expires_at <= $1",
        // evict_changes, second step: the settled prefix up to `$1`, found by the first
        // step (`CHANGES_HIGHEST`), on the primary key.
        _ => "SELECT count(*) FROM changes WHERE id <= $1",
    }
}

impl Tables {
    /// Connects to the database at `url` (messages never carry the URL).
    ///
    /// # Errors
    /// The database cannot be reached.
    pub async fn connect(url: &str) -> Result<Tables, String> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|err| format!("cannot connect to the run's database: {err}"))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("session_churn: the sampling connection ended: {err}");
            }
        });
        Ok(Tables { client })
    }

    /// The horizon claimd's eviction of the change log uses at `now`: the longest
    /// access-token life any node has run with, plus the leeway; and how far it evicted.
    async fn changes_horizon(&self, now: i64) -> Result<(i64, i64), String> {
        let row = self
            .client
            .query_one(
                "SELECT (SELECT value FROM meta WHERE name = 'longest_access_ttl'),
                        (SELECT value FROM meta WHERE name = 'changes_evicted_through')",
                &[],
            )
            .await
            .map_err(|err| format!("reading meta: {err}"))?;
        let (longest, evicted): (i64, i64) = (row.get(0), row.get(1));
        Ok((now - longest - LEEWAY_SECONDS as i64, evicted))
    }

    /// The bound `expired_query(table)` takes at `now`, found as claimd's eviction finds
    /// it (for the change log, by its first query: part of the lookup's time).
    async fn bound(&self, table: &str, now: i64) -> Result<i64, String> {
        Ok(match table {
            "deny" => now - DENY_KEPT_PAST_EXP as i64,
            "sessions" => now,
            _ => {
                let (horizon, evicted) = self.changes_horizon(now).await?;
                self.client
                    .query_one(CHANGES_HIGHEST, &[&horizon, &evicted])
                    .await
                    .map_err(|err| format!("finding the change log's settled prefix: {err}"))?
                    .get(0)
            }
        })
    }

    /// Samples the three tables.
    ///
    /// # Errors
    /// A query failed.
    pub async fn sample(&self) -> Result<[Table; 3], String> {
        let mut tables = [Table::default(); 3];
        for (table, name) in tables.iter_mut().zip(TABLES) {
            let row = self
                .client
                .query_one(
                    &format!("SELECT count(*), pg_total_relation_size('{name}') FROM {name}"),
                    &[],
                )
                .await
                .map_err(|err| format!("sizing {name}: {err}"))?;
            table.rows = row.get(0);
            table.bytes = row.get(1);
            let dead = self
                .client
                .query_opt(
                    "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = $1",
                    &[&name],
                )
                .await
                .map_err(|err| format!("statistics of {name}: {err}"))?;
            table.dead = dead.map_or(0, |row| row.get(0));
            let started = Instant::now();
            let bound = self.bound(name, unix_now()).await?;
            table.expired = self
                .client
                .query_one(expired_query(name), &[&bound])
                .await
                .map_err(|err| format!("counting what expired in {name}: {err}"))?
                .get(0);
            table.lookup = started.elapsed();
        }
        Ok(tables)
    }

    /// PostgreSQL's plan for each eviction lookup now (`EXPLAIN`, not run), to show it
    /// walks an index rather than the table.
    ///
    /// # Errors
    /// A query failed.
    pub async fn plans(&self) -> Result<Vec<(&'static str, String)>, String> {
        let mut plans = Vec::new();
        let (horizon, evicted) = self.changes_horizon(unix_now()).await?;
        plans.push((
            "changes (first step)",
            self.explain(CHANGES_HIGHEST, &[&horizon, &evicted]).await?,
        ));
        for name in TABLES {
            let bound = self.bound(name, unix_now()).await?;
            plans.push((name, self.explain(expired_query(name), &[&bound]).await?));
        }
        Ok(plans)
    }

    /// `EXPLAIN` of `query` with `params`, one line per plan node.
    async fn explain(
        &self,
        query: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<String, String> {
        let rows = self
            .client
            .query(&format!("EXPLAIN {query}"), params)
            .await
            .map_err(|err| format!("explaining an eviction lookup: {err}"))?;
        let lines: Vec<String> = rows.iter().map(|row| row.get::<_, String>(0)).collect();
        Ok(lines.join("\n"))
    }
}
