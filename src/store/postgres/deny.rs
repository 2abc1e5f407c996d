//! The deny list on PostgreSQL: the `deny` table, `(kind, id) → exp`, the last `exp` of
//! the tokens an entry refuses (a token entry: its own; a session entry: the last one the
//! session could have minted). A token is refused when an entry of its `jti` or its `sid`
//! reaches its `exp`; tokens with an earlier `exp` that an entry also covers are expired
//! anyway, so `exp >= $token_exp` is the whole check, one index lookup per id.
//!
//! Entries leave once their `exp` is past the largest leeway a configuration may set
//! ([`MAX_LEEWAY_SECONDS`]), as the sled buckets are dropped: a restart with a larger
//! leeway cannot bring a revoked token back. Eviction is an indexed delete on `exp`, in
//! batches, so its cost is the number of expired entries, never the table's size.
//!
//! Revoking a token logs it in the same transaction as its entry ([`log::append`]): other
//! nodes learn of it from the log, and nothing needs replaying after a crash (sled's
//! `pending_denials` has no counterpart here).

use std::ops::RangeInclusive;

use super::{database_error, from_bigint, log, to_bigint, PgStore};
use crate::domain::{SessionId, TokenId};
use crate::store::{Change, DenyKind, StoreError, MAX_LEEWAY_SECONDS};

/// Entries removed per statement by [`PgStore::evict_deny_entries`].
const EVICTION_BATCH: i64 = 10_000;

fn kind(kind: DenyKind) -> i8 {
    // "char" is one byte; the tags are ASCII.
    kind.tag() as i8
}

impl PgStore {
    /// Denies every token of `kind`/`id` whose `exp` is in `exps` (an entry already there
    /// is extended, never shortened). Returns whether the entry is new.
    ///
    /// The entry alone, with no change-log record: for filling a deny list in tests and
    /// benchmarks, as the sled store's `deny`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn deny(
        &self,
        kind_of: DenyKind,
        id: &[u8; 16],
        exps: RangeInclusive<u64>,
    ) -> Result<bool, StoreError> {
        let last = to_bigint((*exps.end()).max(*exps.start()))?;
        let client = self.client().await?;
        // `xmax = 0` only on a row version this statement inserted (an update leaves its
        // own transaction id there).
        let statement = client
            .prepare_cached(
                "INSERT INTO deny (kind, id, exp) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, id) DO UPDATE SET exp = GREATEST(deny.exp, EXCLUDED.exp)
                 RETURNING xmax = 0",
            )
            .await
            .map_err(database_error)?;
        let row = client
            .query_one(&statement, &[&kind(kind_of), &&id[..], &last])
            .await
            .map_err(database_error)?;
        Ok(row.get(0))
    }

    /// Denies one access token until its `exp` (a logout, an RFC 7009 revocation) and logs
    /// it, in one transaction. Returns whether it was not denied before (a second
    /// revocation of the same token writes and logs nothing).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn deny_token(&self, jti: TokenId, exp: u64) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let statement = tx
            .prepare_cached(
                "INSERT INTO deny (kind, id, exp) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, id) DO NOTHING",
            )
            .await
            .map_err(database_error)?;
        let inserted = tx
            .execute(
                &statement,
                &[
                    &kind(DenyKind::Token),
                    &&jti.as_bytes()[..],
                    &to_bigint(exp)?,
                ],
            )
            .await
            .map_err(database_error)?;
        if inserted == 0 {
            return Ok(false);
        }
        let ids = log::append(&tx, self.clock.now(), &[Change::TokenRevoked { jti, exp }]).await?;
        tx.commit().await.map_err(database_error)?;
        self.note_appended(&ids);
        Ok(true)
    }

    /// Whether `id` is on the deny list for a token expiring at `exp`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn is_denied(
        &self,
        kind_of: DenyKind,
        id: &[u8; 16],
        exp: u64,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM deny WHERE kind = $1 AND id = $2 AND exp >= $3)",
            )
            .await
            .map_err(database_error)?;
        let row = client
            .query_one(&statement, &[&kind(kind_of), &&id[..], &to_bigint(exp)?])
            .await
            .map_err(database_error)?;
        Ok(row.get(0))
    }

    /// Whether an access token (its `jti`, its session's `sid`, its `exp`) is revoked:
    /// both looked up in one statement.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn token_is_revoked(
        &self,
        jti: TokenId,
        sid: SessionId,
        exp: u64,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM deny
                     WHERE ((kind = $1 AND id = $2) OR (kind = $3 AND id = $4)) AND exp >= $5)",
            )
            .await
            .map_err(database_error)?;
        let row = client
            .query_one(
                &statement,
                &[
                    &kind(DenyKind::Token),
                    &&jti.as_bytes()[..],
                    &kind(DenyKind::Session),
                    &&sid.as_bytes()[..],
                    &to_bigint(exp)?,
                ],
            )
            .await
            .map_err(database_error)?;
        Ok(row.get(0))
    }

    /// Removes the entries whose last token is past `exp` plus the largest leeway at
    /// `now`; returns how many went.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn evict_deny_entries(&self, now: u64) -> Result<u64, StoreError> {
        let horizon = to_bigint(now.saturating_sub(MAX_LEEWAY_SECONDS))?;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "DELETE FROM deny WHERE (kind, id) IN (
                     SELECT kind, id FROM deny WHERE exp < $1 LIMIT $2)",
            )
            .await
            .map_err(database_error)?;
        let mut removed = 0;
        loop {
            let batch = client
                .execute(&statement, &[&horizon, &EVICTION_BATCH])
                .await
                .map_err(database_error)?;
            removed += batch;
            if batch < EVICTION_BATCH as u64 {
                return Ok(removed);
            }
        }
    }

    /// Records the configured access-token lifetime (seconds) and returns the longest any
    /// node's configuration has used: tokens minted under it may still be live, so a
    /// session's deny entry must reach that far.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn note_access_ttl(&self, ttl: u64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "UPDATE meta SET value = GREATEST(value, $1)
                 WHERE name = 'longest_access_ttl' RETURNING value",
                &[&to_bigint(ttl)?],
            )
            .await
            .map_err(database_error)?;
        from_bigint(row.get(0))
    }

    /// The longest access-token lifetime recorded by [`PgStore::note_access_ttl`].
    ///
    /// # Errors
    /// Storage failures.
    pub async fn longest_access_ttl(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT value FROM meta WHERE name = 'longest_access_ttl'",
                &[],
            )
            .await
            .map_err(database_error)?;
        from_bigint(row.get(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::postgres::testing::TestDatabase;
    use crate::store::ChangesAfter;

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn a_revoked_token_is_denied_and_logged_once() {
        let db = TestDatabase::require().await;
        let clock = ManualClock::starting_at(1_796_000_000);
        let store = PgStore::connect(&db.url, 2)
            .await
            .unwrap()
            .with_clock(clock.clock());
        let (jti, sid) = (TokenId::from_bytes([7; 16]), SessionId::from_bytes([8; 16]));
        assert!(!store.token_is_revoked(jti, sid, 5_000).await.unwrap());
        assert!(store.deny_token(jti, 5_000).await.unwrap());
        assert!(
            !store.deny_token(jti, 5_000).await.unwrap(),
            "already denied"
        );
        assert!(store.token_is_revoked(jti, sid, 5_000).await.unwrap());
        assert!(store
            .is_denied(DenyKind::Token, jti.as_bytes(), 5_000)
            .await
            .unwrap());
        assert!(!store
            .is_denied(DenyKind::Session, jti.as_bytes(), 5_000)
            .await
            .unwrap());
        let ChangesAfter::Records { records, .. } = store.changes_after(0, 10).await.unwrap()
        else {
            panic!("nothing evicted");
        };
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].at, 1_796_000_000);
        assert_eq!(records[0].change, Change::TokenRevoked { jti, exp: 5_000 });
        db.drop_now().await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn a_session_entry_covers_every_token_up_to_its_last_exp() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        let (jti, sid) = (TokenId::from_bytes([1; 16]), SessionId::from_bytes([2; 16]));
        assert!(store
            .deny(DenyKind::Session, sid.as_bytes(), 1_000..=2_000)
            .await
            .unwrap());
        assert!(store.token_is_revoked(jti, sid, 1_500).await.unwrap());
        assert!(store.token_is_revoked(jti, sid, 2_000).await.unwrap());
        assert!(!store.token_is_revoked(jti, sid, 2_001).await.unwrap());
        // Extended, never shortened.
        assert!(!store
            .deny(DenyKind::Session, sid.as_bytes(), 1_000..=3_000)
            .await
            .unwrap());
        assert!(!store
            .deny(DenyKind::Session, sid.as_bytes(), 1_000..=1_200)
            .await
            .unwrap());
        assert!(store.token_is_revoked(jti, sid, 3_000).await.unwrap());
        db.drop_now().await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn entries_leave_past_exp_plus_the_largest_leeway() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        for n in 0..5u8 {
            store
                .deny(
                    DenyKind::Token,
                    &[n; 16],
                    1_000 + u64::from(n)..=1_000 + u64::from(n),
                )
                .await
                .unwrap();
        }
        let at = 1_002 + MAX_LEEWAY_SECONDS;
        assert_eq!(
            store.evict_deny_entries(at).await.unwrap(),
            2,
            "exp 1000, 1001"
        );
        assert!(store
            .is_denied(DenyKind::Token, &[2; 16], 1_002)
            .await
            .unwrap());
        assert!(!store
            .is_denied(DenyKind::Token, &[1; 16], 1_001)
            .await
            .unwrap());
        assert_eq!(store.evict_deny_entries(at).await.unwrap(), 0);
        assert_eq!(store.evict_deny_entries(u64::MAX / 2).await.unwrap(), 3);
        db.drop_now().await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn the_longest_access_ttl_only_grows() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        assert_eq!(store.longest_access_ttl().await.unwrap(), 0);
        assert_eq!(store.note_access_ttl(900).await.unwrap(), 900);
        assert_eq!(store.note_access_ttl(300).await.unwrap(), 900);
        assert_eq!(store.longest_access_ttl().await.unwrap(), 900);
        db.drop_now().await;
    }
}
