//! The change log on PostgreSQL (DESIGN.md "One change log"): the `changes` table,
//! written in the same transaction as the write it reports, read by every node.
//!
//! **Ids.** A `bigserial` hands out ids at insert and commits in any order: a reader could
//! read ids 1 and 3, move past 2, and miss it when its writer commits a moment later.
//! So ids come from the one-row `change_counter`, taken with `UPDATE … SET last = last + n`
//! inside the writing transaction: the row lock is held until that transaction ends, so
//! the next writer gets its ids only after this one has committed (or rolled back, which
//! rolls the counter back too: an aborted transaction takes no id). Ids therefore commit in
//! order with no gaps, and a reader that has read every id up to the counter's committed
//! value has seen the whole log up to it.
//!
//! **Cost.** The counter is the one lock every logging write queues on, held through its
//! commit's flush, so logging writes commit one at a time: measured on this machine kind
//! (debug build, `synchronous_commit = on`), about 450–520 logged commits/s with 8–32
//! concurrent writers, where commits that log nothing group-commit to 2,400–2,800/s.
//! Only the writes that change how tokens are answered log (revocations, claim and key
//! changes; not logins or refresh rotations). Append last in a transaction, after every
//! other row lock it takes: the counter is then held for the least time, and always taken
//! after the other locks (no deadlock between two logging writes).
//!
//! **Wake-up.** [`append`] also issues `NOTIFY claimd_changes, '<last id>'`, which
//! PostgreSQL delivers to listeners at commit and drops on rollback. It is only a wake-up:
//! a listener also polls (see `listener`), so a lost notification costs latency, never a
//! record.
//!
//! **Reading.** [`read_after`] reads the counter, the eviction mark and the records in one
//! statement, so one snapshot answers all three: `Records` up to the counter's committed
//! value, `Gone` below the highest evicted id, `Ahead` past the counter, as the sled log
//! answers (`store::changes::ChangesAfter`).
//!
//! **Kept.** [`PgStore::evict_changes`] removes the oldest records written before a time,
//! always a prefix of the ids, and moves the highest evicted id (in `meta`) with them in
//! one transaction.

use std::ops::Range;

use super::{database_error, from_bigint, to_bigint, PgStore};
use crate::store::disk::Stored;
use crate::store::{corrupt, StoreError};
use crate::store::{Change, ChangeRecord, ChangesAfter, LoggedChange};

/// The channel the log notifies on; the payload is the last id of the transaction.
pub const CHANNEL: &str = "claimd_changes";

/// Takes the ids, writes the records and notifies, in one statement (one round trip).
/// The notification is evaluated with the counter's new value; unreferenced non-writing
/// CTEs would not run, hence the lateral call.
const APPEND: &str = "
WITH counter AS (
    UPDATE change_counter SET last = last + $1 RETURNING last
), written AS (
    INSERT INTO changes (id, at, record)
    SELECT counter.last - $1 + t.ordinality, $2, t.record
    FROM counter, unnest($3::bytea[]) WITH ORDINALITY AS t(record, ordinality)
)
SELECT counter.last
FROM counter CROSS JOIN LATERAL (SELECT pg_notify('claimd_changes', counter.last::text)) AS n";

/// The counter, the eviction mark and up to `$2` records after `$1`, from one snapshot.
/// The first row always carries the counter and the mark; its record columns are null
/// when there is no record to read.
const READ_AFTER: &str = "
WITH state AS (
    SELECT (SELECT last FROM change_counter) AS through,
           (SELECT value FROM meta WHERE name = 'changes_evicted_through') AS evicted
)
SELECT state.through, state.evicted, c.id, c.at, c.record
FROM state LEFT JOIN LATERAL (
    SELECT id, at, record FROM changes
    WHERE $1 >= state.evicted AND id > $1 AND id <= state.through
    ORDER BY id
    LIMIT $2
) AS c ON true
ORDER BY c.id";

/// Appends `changes` to the log inside `tx`, the caller's transaction, as written at `at`
/// (seconds). Returns the ids they took. They are seen by readers, and their notification
/// sent, when `tx` commits; if it rolls back, so do the ids. The counter's row stays
/// locked until then: append as the transaction's last write and commit at once (see the
/// module doc). An empty `changes` writes nothing, takes no lock and returns an empty
/// range.
///
/// # Errors
/// `Database` for a statement the server refused (the caller's transaction is then
/// aborted); `Corrupt` for a change the record shape cannot carry (a bug).
pub async fn append(
    tx: &deadpool_postgres::Transaction<'_>,
    at: u64,
    changes: &[Change],
) -> Result<Range<u64>, StoreError> {
    if changes.is_empty() {
        return Ok(0..0);
    }
    let records = changes
        .iter()
        .map(|change| {
            LoggedChange {
                at,
                change: change.clone(),
            }
            .to_disk()
            .map_err(corrupt("changes"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = to_bigint(changes.len() as u64)?;
    let statement = tx.prepare_cached(APPEND).await.map_err(database_error)?;
    let last: i64 = tx
        .query_one(&statement, &[&count, &to_bigint(at)?, &records])
        .await
        .map_err(database_error)?
        .get(0);
    let last = from_bigint(last)?;
    Ok(last + 1 - changes.len() as u64..last + 1)
}

/// Records after `after`, at most `limit`, oldest first, with the log's state, from one
/// snapshot on `client` (a pooled connection or the listener's own).
///
/// # Errors
/// `Database` for a failed statement, `Corrupt` for a record that cannot be decoded.
pub async fn read_after(
    client: &tokio_postgres::Client,
    after: u64,
    limit: usize,
) -> Result<ChangesAfter, StoreError> {
    let limit = to_bigint(
        u64::try_from(limit)
            .unwrap_or(u64::MAX)
            .min(i64::MAX as u64),
    )?;
    let statement = client.prepare(READ_AFTER).await.map_err(database_error)?;
    read_with(client, &statement, after, limit).await
}

async fn read_with(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    after: u64,
    limit: i64,
) -> Result<ChangesAfter, StoreError> {
    let rows = client
        .query(statement, &[&to_bigint(after)?, &limit])
        .await
        .map_err(database_error)?;
    let Some(first) = rows.first() else {
        return Err(StoreError::Database(
            "the change log's state row is missing".into(),
        ));
    };
    let through = from_bigint(first.get(0))?;
    let evicted_through = from_bigint(first.get::<_, Option<i64>>(1).unwrap_or(0))?;
    if after < evicted_through {
        return Ok(ChangesAfter::Gone { evicted_through });
    }
    if after > through {
        return Ok(ChangesAfter::Ahead { through });
    }
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(id) = row.get::<_, Option<i64>>(2) else {
            continue;
        };
        let bytes: Vec<u8> = row.get(4);
        let logged = LoggedChange::from_disk(&bytes).map_err(corrupt("changes"))?;
        records.push(ChangeRecord {
            id: from_bigint(id)?,
            at: logged.at,
            change: logged.change,
        });
    }
    Ok(ChangesAfter::Records { records, through })
}

/// A prepared [`read_after`], for a reader that asks again and again on one connection
/// (the listener).
pub(crate) struct Reader {
    statement: tokio_postgres::Statement,
}

impl Reader {
    pub(crate) async fn prepare(client: &tokio_postgres::Client) -> Result<Reader, StoreError> {
        Ok(Reader {
            statement: client.prepare(READ_AFTER).await.map_err(database_error)?,
        })
    }

    pub(crate) async fn read(
        &self,
        client: &tokio_postgres::Client,
        after: u64,
        limit: i64,
    ) -> Result<ChangesAfter, StoreError> {
        read_with(client, &self.statement, after, limit).await
    }
}

impl PgStore {
    /// Records committed after `after`, at most `limit`, oldest first; `Gone` when some
    /// of them were evicted, `Ahead` when the log never reached `after`.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub async fn changes_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<ChangesAfter, StoreError> {
        let client = self.client().await?;
        let limit = to_bigint(
            u64::try_from(limit)
                .unwrap_or(u64::MAX)
                .min(i64::MAX as u64),
        )?;
        let statement = client
            .prepare_cached(READ_AFTER)
            .await
            .map_err(database_error)?;
        read_with(&client, &statement, after, limit).await
    }

    /// The highest evicted id (0: none yet): a reader starting from scratch reads after it.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn changes_evicted_through(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT value FROM meta WHERE name = 'changes_evicted_through'",
                &[],
            )
            .await
            .map_err(database_error)?;
        from_bigint(row.get(0))
    }

    /// The highest committed id: every record up to it can be read.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn changes_through(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT last FROM change_counter", &[])
            .await
            .map_err(database_error)?;
        from_bigint(row.get(0))
    }

    /// Removes the records written before `before` (seconds), oldest first, stopping at
    /// the first one that is not (ids are in time order on one node; across nodes a clock
    /// behind keeps a few records longer, never evicts one out of order). Returns how many
    /// went. The highest removed id is kept in the same transaction, so a reader resuming
    /// from before it is told `Gone`. Evictions on several nodes queue on the mark's row.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn evict_changes(&self, before: u64) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let evicted: i64 = tx
            .query_one(
                "SELECT value FROM meta WHERE name = 'changes_evicted_through' FOR UPDATE",
                &[],
            )
            .await
            .map_err(database_error)?
            .get(0);
        // One snapshot: the first record to keep, or else the last committed one. Every
        // id up to a committed one is committed (see the module doc), so the prefix below
        // it is settled.
        let highest: i64 = tx
            .query_one(
                "SELECT COALESCE(
                     (SELECT id FROM changes WHERE id > $2 AND at >= $1 ORDER BY id LIMIT 1) - 1,
                     (SELECT max(id) FROM changes),
                     $2)",
                &[&to_bigint(before)?, &evicted],
            )
            .await
            .map_err(database_error)?
            .get(0);
        if highest <= evicted {
            return Ok(0);
        }
        let removed = tx
            .execute("DELETE FROM changes WHERE id <= $1", &[&highest])
            .await
            .map_err(database_error)?;
        tx.execute(
            "UPDATE meta SET value = $1 WHERE name = 'changes_evicted_through'",
            &[&highest],
        )
        .await
        .map_err(database_error)?;
        tx.commit().await.map_err(database_error)?;
        Ok(removed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::TokenId;
    use crate::store::postgres::testing::TestDatabase;

    pub(crate) fn token(n: u64) -> Change {
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&n.to_be_bytes());
        Change::TokenRevoked {
            jti: TokenId::from_bytes(id),
            exp: 5_000 + n,
        }
    }

    /// Appends in a transaction of its own and commits.
    pub(crate) async fn append_committed(
        store: &PgStore,
        at: u64,
        changes: &[Change],
    ) -> Range<u64> {
        let mut client = store.client().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let ids = append(&tx, at, changes).await.unwrap();
        tx.commit().await.unwrap();
        ids
    }

    fn records(answer: ChangesAfter) -> Vec<ChangeRecord> {
        match answer {
            ChangesAfter::Records { records, .. } => records,
            other => panic!("expected records, got {other:?}"),
        }
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn appended_records_read_back_in_id_order() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        assert_eq!(
            append_committed(&store, 100, &[token(1), token(2)]).await,
            1..3
        );
        assert_eq!(append_committed(&store, 101, &[token(3)]).await, 3..4);
        let read = records(store.changes_after(0, 10).await.unwrap());
        assert_eq!(read.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!((read[2].at, &read[2].change), (101, &token(3)));
        assert_eq!(
            store.changes_after(1, 1).await.unwrap(),
            ChangesAfter::Records {
                records: vec![read[1].clone()],
                through: 3
            }
        );
        assert_eq!(
            store.changes_after(3, 10).await.unwrap(),
            ChangesAfter::Records {
                records: vec![],
                through: 3
            }
        );
        assert_eq!(
            store.changes_after(4, 10).await.unwrap(),
            ChangesAfter::Ahead { through: 3 }
        );
        assert_eq!(store.changes_through().await.unwrap(), 3);
        db.drop_now().await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn an_aborted_transaction_takes_no_id() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        {
            let mut client = store.client().await.unwrap();
            let tx = client.transaction().await.unwrap();
            assert_eq!(append(&tx, 100, &[token(1)]).await.unwrap(), 1..2);
            tx.rollback().await.unwrap();
        }
        {
            // Dropped without commit: rolled back too.
            let mut client = store.client().await.unwrap();
            let tx = client.transaction().await.unwrap();
            append(&tx, 100, &[token(2), token(3)]).await.unwrap();
        }
        assert_eq!(append_committed(&store, 100, &[token(4)]).await, 1..2);
        let read = records(store.changes_after(0, 10).await.unwrap());
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].id, &read[0].change), (1, &token(4)));
        db.drop_now().await;
    }

    /// Many writers on two pools (two nodes) at once: every id from 1 to the last is there
    /// exactly once, and each id was committed after every smaller one (a reader polling
    /// throughout never saw a gap that was filled later).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL"]
    async fn concurrent_appends_on_two_nodes_commit_gap_free_in_id_order() {
        let db = TestDatabase::require().await;
        let nodes = [
            PgStore::connect(&db.url, 6).await.unwrap(),
            PgStore::connect(&db.url, 6).await.unwrap(),
        ];
        let writers = 12u64;
        let per_writer = 25u64;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // A reader that remembers the highest id it saw and checks that nothing below it
        // appears later.
        let reader = {
            let store = nodes[0].clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut seen = 0u64;
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let ChangesAfter::Records { records, through } =
                        store.changes_after(seen, 1000).await.unwrap()
                    else {
                        panic!("nothing is evicted");
                    };
                    for record in &records {
                        assert_eq!(record.id, seen + 1, "a gap after {seen}");
                        seen = record.id;
                    }
                    assert!(seen <= through);
                    reads += 1;
                }
                (seen, reads)
            })
        };
        let mut tasks = Vec::new();
        for writer in 0..writers {
            let store = nodes[(writer % 2) as usize].clone();
            tasks.push(tokio::spawn(async move {
                let mut taken = Vec::new();
                for n in 0..per_writer {
                    let mut client = store.client().await.unwrap();
                    let tx = client.transaction().await.unwrap();
                    // Some transactions write two records, some roll back.
                    let changes = if n % 3 == 0 {
                        vec![token(writer * 1000 + n), token(writer * 1000 + n + 500)]
                    } else {
                        vec![token(writer * 1000 + n)]
                    };
                    let ids = append(&tx, 100, &changes).await.unwrap();
                    if n % 5 == 4 {
                        tx.rollback().await.unwrap();
                    } else {
                        tx.commit().await.unwrap();
                        taken.extend(ids);
                    }
                }
                taken
            }));
        }
        let mut taken = Vec::new();
        for task in tasks {
            taken.extend(task.await.unwrap());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (_, reads) = reader.await.unwrap();
        taken.sort_unstable();
        let expected: Vec<u64> = (1..=taken.len() as u64).collect();
        assert_eq!(taken, expected, "committed ids are 1..=n, each once");
        let read = records(nodes[1].changes_after(0, 10_000).await.unwrap());
        assert_eq!(read.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
        assert!(reads > 1, "the reader read while writers wrote");
        db.drop_now().await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn evicted_records_are_gone_for_readers_from_before_them() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        append_committed(&store, 100, &[token(1), token(2)]).await;
        append_committed(&store, 200, &[token(3)]).await;
        append_committed(&store, 150, &[token(4)]).await;
        assert_eq!(store.evict_changes(150).await.unwrap(), 2);
        assert_eq!(store.evict_changes(150).await.unwrap(), 0, "nothing more");
        assert_eq!(store.changes_evicted_through().await.unwrap(), 2);
        assert_eq!(
            store.changes_after(1, 10).await.unwrap(),
            ChangesAfter::Gone { evicted_through: 2 }
        );
        assert_eq!(
            store.changes_after(0, 10).await.unwrap(),
            ChangesAfter::Gone { evicted_through: 2 }
        );
        let read = records(store.changes_after(2, 10).await.unwrap());
        assert_eq!(read.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 4]);
        // Record 4 is older than 160 but comes after 3, which is not: the prefix stops.
        assert_eq!(store.evict_changes(160).await.unwrap(), 0);
        assert_eq!(store.evict_changes(201).await.unwrap(), 2);
        assert_eq!(
            store.changes_after(2, 10).await.unwrap(),
            ChangesAfter::Gone { evicted_through: 4 }
        );
        // The log numbers on after everything went.
        assert_eq!(append_committed(&store, 300, &[token(5)]).await, 5..6);
        let read = records(store.changes_after(4, 10).await.unwrap());
        assert_eq!(read[0].id, 5);
        db.drop_now().await;
    }
}
