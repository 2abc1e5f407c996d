//! Sessions (refresh-token families) on PostgreSQL: the `sessions` table, the same
//! operations as the sled store's `sessions.rs`, async.
//!
//! A row holds the session's record (the sled bytes) and, as columns, its user (the index
//! behind "every session of a user"), its generation, its expiry (the eviction index) and
//! the newest acknowledged generation (sled's `session_acks`, here a column: written
//! late, by a statement of its own that never touches the record, and gone with the row).
//!
//! **Rotation across nodes.** A change to a session reads its record, judges it, and
//! writes the new one with one compare-and-set:
//! `UPDATE sessions … WHERE id = $1 AND generation = $2 AND record = $3`. PostgreSQL locks
//! the row for the update and re-checks the condition on the newest row version, so of two
//! refreshes racing on one generation, on any nodes, exactly one matches a row; the other
//! matches none, reads again, finds the session moved on and answers `None` (the flow then
//! judges the race, as on sled). Comparing the whole record, not only the generation,
//! keeps a write that changed something else meanwhile (a revocation marking the session,
//! a renewed access token) from being overwritten: the loser reads again and judges the
//! new record.

use super::{database_error, from_bigint, to_bigint, PgStore};
use crate::domain::{SessionId, UserId};
use crate::store::disk::Stored;
use crate::store::{corrupt, StoreError};
use crate::store::{Rotation, SessionRecord};

impl PgStore {
    /// Stores a session (replacing one under the same id, as the sled store does; its
    /// acknowledgement is kept).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn insert_session(
        &self,
        sid: SessionId,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        let record = Stored::to_disk(session).map_err(corrupt("sessions"))?;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO sessions (id, user_id, generation, expires_at, record)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id,
                     generation = EXCLUDED.generation, expires_at = EXCLUDED.expires_at,
                     record = EXCLUDED.record",
            )
            .await
            .map_err(database_error)?;
        client
            .execute(
                &statement,
                &[
                    &&sid.as_bytes()[..],
                    &&session.user.as_bytes()[..],
                    &to_bigint(session.generation)?,
                    &to_bigint(session.expires_at)?,
                    &record,
                ],
            )
            .await
            .map_err(database_error)?;
        Ok(())
    }

    /// How many session rows there are (the `claimd_sessions` gauge).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn count_sessions(&self) -> Result<i64, StoreError> {
        Ok(self
            .client()
            .await?
            .query_one("SELECT count(*) FROM sessions", &[])
            .await
            .map_err(database_error)?
            .get(0))
    }

    /// Reads a session.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn session(&self, sid: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.read_session(sid).await?.map(|(session, _)| session))
    }

    /// A session and its bytes as stored (what a compare-and-set compares).
    async fn read_session(
        &self,
        sid: SessionId,
    ) -> Result<Option<(SessionRecord, Vec<u8>)>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT record FROM sessions WHERE id = $1")
            .await
            .map_err(database_error)?;
        let Some(row) = client
            .query_opt(&statement, &[&&sid.as_bytes()[..]])
            .await
            .map_err(database_error)?
        else {
            return Ok(None);
        };
        let bytes: Vec<u8> = row.get(0);
        let session = Stored::from_disk(&bytes).map_err(corrupt("sessions"))?;
        Ok(Some((session, bytes)))
    }

    /// Moves a live session from `rotation.from_generation` to the next generation, with
    /// the access token issued beside it. Returns the rotated record; `None` when the
    /// session is gone, revoked, or no longer at that generation (another refresh, on
    /// this node or another, rotated it first: the caller judges again).
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn rotate_session(
        &self,
        sid: SessionId,
        rotation: &Rotation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.change_session(sid, |session| session.rotate(rotation))
            .await
    }

    /// Records a new access token for a live session still at `generation` (its refresh
    /// token unchanged), and when it was `used` if the holder used the session to get it.
    /// Returns the changed record; `None` when the session is gone, revoked or has moved
    /// on.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub async fn renew_session_access(
        &self,
        sid: SessionId,
        generation: u64,
        access: (&str, u64),
        used: Option<u64>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.change_session(sid, |session| {
            session.renew_access(generation, access, used)
        })
        .await
    }

    /// Reads a session, lets `change` judge and change it, and writes it back with one
    /// compare-and-set on its generation and record; judged again if anything wrote it
    /// meanwhile. Its expiry never changes here.
    async fn change_session(
        &self,
        sid: SessionId,
        change: impl Fn(&mut SessionRecord) -> bool,
    ) -> Result<Option<SessionRecord>, StoreError> {
        loop {
            let Some((mut session, old)) = self.read_session(sid).await? else {
                return Ok(None);
            };
            let from = to_bigint(session.generation)?;
            if !change(&mut session) {
                return Ok(None);
            }
            let new = Stored::to_disk(&session).map_err(corrupt("sessions"))?;
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "UPDATE sessions SET generation = $3, record = $4
                     WHERE id = $1 AND generation = $2 AND record = $5",
                )
                .await
                .map_err(database_error)?;
            let updated = client
                .execute(
                    &statement,
                    &[
                        &&sid.as_bytes()[..],
                        &from,
                        &to_bigint(session.generation)?,
                        &new,
                        &old,
                    ],
                )
                .await
                .map_err(database_error)?;
            if updated == 1 {
                return Ok(Some(session));
            }
        }
    }

    /// Every session id of a user, live or revoked, not yet evicted.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn user_session_ids(&self, user: UserId) -> Result<Vec<SessionId>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id FROM sessions WHERE user_id = $1 ORDER BY id")
            .await
            .map_err(database_error)?;
        client
            .query(&statement, &[&&user.as_bytes()[..]])
            .await
            .map_err(database_error)?
            .iter()
            .map(|row| {
                SessionId::from_slice(row.get::<_, &[u8]>(0)).ok_or(StoreError::Corrupt {
                    tree: "sessions",
                    source: crate::store::CodecError::Decode("session id is not 16 bytes".into()),
                })
            })
            .collect()
    }

    /// Removes a session (its acknowledgement goes with it). `_session` is the record the
    /// caller read: the sled store needs it for its index keys, the row does not.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn remove_session(
        &self,
        sid: SessionId,
        _session: &SessionRecord,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM sessions WHERE id = $1")
            .await
            .map_err(database_error)?;
        client
            .execute(&statement, &[&&sid.as_bytes()[..]])
            .await
            .map_err(database_error)?;
        Ok(())
    }

    /// Records that the answer carrying `generation` of a session's refresh token was
    /// acknowledged; an older generation never replaces a newer one (acknowledgements are
    /// written late and may arrive out of order). A session gone meanwhile gets nothing.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn acknowledge_generation(
        &self,
        sid: SessionId,
        generation: u64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        // GREATEST ignores a null: the first acknowledgement is taken as it is.
        let statement = client
            .prepare_cached(
                "UPDATE sessions SET acknowledged = GREATEST(acknowledged, $2) WHERE id = $1",
            )
            .await
            .map_err(database_error)?;
        client
            .execute(&statement, &[&&sid.as_bytes()[..], &to_bigint(generation)?])
            .await
            .map_err(database_error)?;
        Ok(())
    }

    /// Removes every session whose expiry is at or before `now` (a session refuses to
    /// refresh from its expiry on; a revoked one carries the moment of its revocation),
    /// through the expiry index in batches: the cost is what expired, never the table.
    /// Returns how many went.
    ///
    /// # Errors
    /// Storage failures; what was removed before one stays removed.
    pub async fn evict_expired_sessions(&self, now: u64) -> Result<u64, StoreError> {
        const BATCH: i64 = 10_000;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "DELETE FROM sessions WHERE id IN (
                     SELECT id FROM sessions WHERE expires_at <= $1 LIMIT $2)",
            )
            .await
            .map_err(database_error)?;
        let now = to_bigint(now)?;
        let mut removed = 0;
        loop {
            let batch = client
                .execute(&statement, &[&now, &BATCH])
                .await
                .map_err(database_error)?;
            removed += batch;
            if batch < BATCH as u64 {
                return Ok(removed);
            }
        }
    }

    /// The newest generation of a session whose answer was acknowledged, if any.
    ///
    /// # Errors
    /// Storage failures and damaged values.
    pub async fn acknowledged_generation(&self, sid: SessionId) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT acknowledged FROM sessions WHERE id = $1")
            .await
            .map_err(database_error)?;
        let row = client
            .query_opt(&statement, &[&&sid.as_bytes()[..]])
            .await
            .map_err(database_error)?;
        row.and_then(|row| row.get::<_, Option<i64>>(0))
            .map(from_bigint)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::fixtures::{rotation, session};
    use crate::store::postgres::testing::TestDatabase;

    /// Two nodes (two pools) refresh one session at the same generation, many times over:
    /// each time exactly one rotation wins.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL"]
    async fn of_two_concurrent_rotations_of_one_generation_exactly_one_wins() {
        let db = TestDatabase::require().await;
        let nodes = [
            PgStore::connect(&db.url, 4).await.unwrap(),
            PgStore::connect(&db.url, 4).await.unwrap(),
        ];
        let sid = SessionId::generate();
        nodes[0]
            .insert_session(sid, &session(UserId::generate()))
            .await
            .unwrap();
        for generation in 1..=30u64 {
            let racers: Vec<_> = (0..4)
                .map(|racer| {
                    let node = nodes[racer % 2].clone();
                    tokio::spawn(async move {
                        let mut mine = rotation(generation);
                        mine.access_token = format!("racer {racer}");
                        node.rotate_session(sid, &mine).await.unwrap()
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for racer in racers {
                if let Some(won) = racer.await.unwrap() {
                    winners.push(won);
                }
            }
            assert_eq!(winners.len(), 1, "generation {generation}");
            let stored = nodes[1].session(sid).await.unwrap().unwrap();
            assert!(stored == winners[0]);
            assert_eq!(stored.generation, generation + 1);
        }
        db.drop_now().await;
    }
}
