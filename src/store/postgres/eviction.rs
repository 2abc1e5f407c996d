//! One eviction pass on PostgreSQL, as `store::eviction` does on sled: deny entries past
//! their last token's `exp` plus the largest leeway, sessions past their expiry,
//! invitations ended long enough ago, mails whose link expired (and those links, from
//! their books), and change-log records no live token could concern.
//! Each is an indexed delete whose cost is what expired. Several nodes may run it at once:
//! each delete removes what it finds, the log's eviction queues on its mark.

use super::{database_error, from_bigint, to_bigint, PgStore};
use crate::store::{EvictionReport, StoreError};

impl PgStore {
    /// The latest time an eviction pass of any node worked from, if one ever ran.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn eviction_horizon(&self) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT value FROM meta WHERE name = 'eviction_horizon'",
                &[],
            )
            .await
            .map_err(database_error)?;
        row.map(|row| from_bigint(row.get(0))).transpose()
    }

    /// Moves the shared horizon up to `at`; it never moves back, whichever node writes.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn advance_eviction_horizon(&self, at: u64) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO meta (name, value) VALUES ('eviction_horizon', $1)
                 ON CONFLICT (name) DO UPDATE SET value = GREATEST(meta.value, EXCLUDED.value)",
                &[&to_bigint(at)?],
            )
            .await
            .map_err(database_error)?;
        Ok(())
    }

    /// Removes everything expired at `now` (seconds), with `leeway` the configured
    /// clock-skew allowance. `deny_buckets_dropped` and `next_deny_expiry` stay empty:
    /// there are no buckets here, and the task runs on its interval.
    ///
    /// # Errors
    /// Storage failures; what was removed before the failure stays removed.
    pub async fn evict_expired(&self, now: u64, leeway: u64) -> Result<EvictionReport, StoreError> {
        let deny_removed = self.evict_deny_entries(now).await?;
        let sessions_removed = self.evict_expired_sessions(now).await?;
        let invitations_removed = self.evict_expired_invitations(now).await?;
        let mails_removed = self.evict_expired_mail(now).await?;
        // A record written at `at` concerns tokens issued before it, all past their last
        // valid moment by `at + longest life + leeway`.
        let kept_for = self.longest_access_ttl().await?.saturating_add(leeway);
        let changes_removed = self.evict_changes(now.saturating_sub(kept_for)).await?;
        Ok(EvictionReport {
            deny_removed,
            deny_buckets_dropped: 0,
            sessions_removed,
            invitations_removed,
            mails_removed,
            changes_removed,
            next_deny_expiry: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SessionId, UserId};
    use crate::store::postgres::log::tests::{append_committed, token};
    use crate::store::postgres::testing::TestDatabase;
    use crate::store::{DenyKind, SessionRecord, MAX_LEEWAY_SECONDS};

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn the_shared_horizon_starts_unset_and_never_moves_back() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        assert_eq!(store.eviction_horizon().await.unwrap(), None);
        store.advance_eviction_horizon(1_000).await.unwrap();
        store.advance_eviction_horizon(900).await.unwrap();
        assert_eq!(store.eviction_horizon().await.unwrap(), Some(1_000));
        store.advance_eviction_horizon(1_030).await.unwrap();
        assert_eq!(store.eviction_horizon().await.unwrap(), Some(1_030));
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn one_pass_removes_only_what_expired() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        store.note_access_ttl(900).await.unwrap();
        store
            .deny(DenyKind::Token, &[1; 16], 1_000..=1_000)
            .await
            .unwrap();
        store
            .deny(DenyKind::Token, &[2; 16], 5_000..=5_000)
            .await
            .unwrap();
        let sid = SessionId::generate();
        store
            .insert_session(
                sid,
                &SessionRecord {
                    user: UserId::generate(),
                    session_key: [0; 32],
                    generation: 1,
                    created_at: 100,
                    expires_at: 1_500,
                    last_used: 100,
                    rotated_at_ms: 100_000,
                    revoked: false,
                    current_access_token: String::new(),
                    current_access_expires: 0,
                },
            )
            .await
            .unwrap();
        append_committed(&store, 1_000, &[token(1)]).await;
        append_committed(&store, 2_000, &[token(2)]).await;

        let now = 1_000 + 900 + 30;
        let report = store.evict_expired(now, 30).await.unwrap();
        assert_eq!(report.sessions_removed, 1);
        assert_eq!(
            report.changes_removed, 0,
            "a token issued at 1000 still verifies"
        );
        assert!(now > 1_000 + MAX_LEEWAY_SECONDS);
        assert_eq!(
            report.deny_removed, 1,
            "exp 1000 is past the largest leeway"
        );
        let report = store.evict_expired(now + 1, 30).await.unwrap();
        assert_eq!(report.changes_removed, 1);
        assert!(store
            .is_denied(DenyKind::Token, &[2; 16], 5_000)
            .await
            .unwrap());
        db.drop_now().await;
    }
}
