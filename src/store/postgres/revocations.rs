//! Revoking sessions on PostgreSQL, all or nothing: the session marks, their deny entries,
//! the user change that goes with them (`not_before`, a new password hash) and the
//! change-log records commit in one transaction. sled needs intents replayed at open
//! because its deny list spans other trees; here there is nothing to replay.
//!
//! Each session is read again under its row lock and marked from that read, never from
//! the caller's copy: a refresh that rotated the session on another node after the
//! caller read it is kept (its generation is not written back), and the mark is never
//! lost to that rotation either (the rotation's compare-and-set sees the record changed
//! and judges the revoked one).

use super::users::{lock_user, write_user};
use super::{database_error, log, to_bigint, PgStore};
use crate::domain::UserId;
use crate::store::disk::Stored;
use crate::store::Revocation;
use crate::store::{corrupt, AccountChange, Change, SessionRecord, UserRecord, UserWriteError};

impl PgStore {
    /// Ends every session in `revocations` and applies `change` to `user`, in one
    /// transaction: each record is marked revoked with its expiry brought to `now` (it
    /// leaves at the next eviction), its `sid` deny entry covers `deny`, and every
    /// revocation and the user change are logged. `revocations[i].session` is replaced by
    /// the record as marked. Returns the changed user record.
    ///
    /// # Errors
    /// `NotFound` when `change` is not `Unchanged` for a missing user; storage failures.
    pub async fn revoke_sessions(
        &self,
        user: UserId,
        revocations: &mut [Revocation],
        now: u64,
        change: AccountChange<'_>,
    ) -> Result<Option<UserRecord>, UserWriteError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database_error)?;
        let changed = match change {
            AccountChange::Unchanged => None,
            _ => {
                let mut record = lock_user(&tx, user)
                    .await?
                    .ok_or(UserWriteError::NotFound)?;
                change.apply(&mut record, now);
                write_user(&tx, user, &record).await?;
                Some(record)
            }
        };
        let read = tx
            .prepare_cached("SELECT record FROM sessions WHERE id = $1 FOR UPDATE")
            .await
            .map_err(database_error)?;
        let mark = tx
            .prepare_cached(
                "INSERT INTO sessions (id, user_id, generation, expires_at, record)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at,
                     generation = EXCLUDED.generation, record = EXCLUDED.record",
            )
            .await
            .map_err(database_error)?;
        let deny = tx
            .prepare_cached(
                "INSERT INTO deny (kind, id, exp) VALUES ('s', $1, $2)
                 ON CONFLICT (kind, id) DO UPDATE SET exp = GREATEST(deny.exp, EXCLUDED.exp)",
            )
            .await
            .map_err(database_error)?;
        let mut logged = Vec::with_capacity(revocations.len() + 1);
        for revocation in revocations.iter_mut() {
            let sid = &revocation.sid.as_bytes()[..];
            // The newest record, or the caller's when the row is gone (evicted meanwhile:
            // the mark is written again, as the sled store does).
            let mut session: SessionRecord =
                match tx.query_opt(&read, &[&sid]).await.map_err(database_error)? {
                    Some(row) => {
                        Stored::from_disk(row.get::<_, &[u8]>(0)).map_err(corrupt("sessions"))?
                    }
                    None => revocation.session.clone(),
                };
            session.revoked = true;
            session.expires_at = session.expires_at.min(now);
            let record = Stored::to_disk(&session).map_err(corrupt("sessions"))?;
            tx.execute(
                &mark,
                &[
                    &sid,
                    &&session.user.as_bytes()[..],
                    &to_bigint(session.generation)?,
                    &to_bigint(session.expires_at)?,
                    &record,
                ],
            )
            .await
            .map_err(database_error)?;
            let exp = *revocation.deny.end();
            tx.execute(&deny, &[&sid, &to_bigint(exp)?])
                .await
                .map_err(database_error)?;
            logged.push(Change::SessionRevoked {
                sid: revocation.sid,
                exp,
            });
            revocation.session = session;
        }
        if let Some(record) = &changed {
            logged.push(record.change(user));
        }
        let ids = log::append(&tx, now, &logged).await?;
        tx.commit().await.map_err(database_error)?;
        self.note_appended(&ids);
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SessionId, TokenId};
    use crate::store::model::fixtures::{rotation, session};
    use crate::store::postgres::testing::TestDatabase;
    use crate::store::ChangesAfter;

    fn person() -> UserRecord {
        UserRecord {
            username: "erin".into(),
            password_hash: "old".into(),
            tenant: None,
            roles: vec![],
            plan: "free".into(),
            attrs: serde_json::Map::new(),
            claims_version: 1,
            not_before: 0,
            disabled: false,
            created_at: 100,
            updated_at: 100,
            email: None,
            email_verified: false,
        }
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn a_logout_everywhere_marks_denies_and_logs_in_one_write() {
        let db = TestDatabase::require().await;
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        let user = UserId::generate();
        store.create_user(user, &person(), None, 100).await.unwrap();
        let sids = [SessionId::generate(), SessionId::generate()];
        for sid in sids {
            store.insert_session(sid, &session(user)).await.unwrap();
        }
        let mut revocations: Vec<Revocation> = sids
            .iter()
            .map(|sid| Revocation {
                sid: *sid,
                session: session(user),
                deny: 400..=1_300,
            })
            .collect();
        let changed = store
            .revoke_sessions(
                user,
                &mut revocations,
                400,
                AccountChange::NewPassword("new"),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (changed.not_before, changed.password_hash.as_str()),
            (400, "new")
        );
        assert_eq!(store.user(user).await.unwrap().unwrap(), changed);
        for sid in sids {
            let marked = store.session(sid).await.unwrap().unwrap();
            assert!(marked.revoked);
            assert_eq!(marked.expires_at, 400);
            let jti = TokenId::from_bytes([0; 16]);
            assert!(store.token_is_revoked(jti, sid, 1_300).await.unwrap());
            assert!(store
                .rotate_session(sid, &rotation(1))
                .await
                .unwrap()
                .is_none());
        }
        let ChangesAfter::Records { records, .. } = store.changes_after(0, 10).await.unwrap()
        else {
            panic!("nothing evicted");
        };
        let mut expected: Vec<Change> = sids
            .iter()
            .map(|sid| Change::SessionRevoked {
                sid: *sid,
                exp: 1_300,
            })
            .collect();
        expected.push(changed.change(user));
        // (The account's creation is in the log too, as its whole stamp.)
        assert_eq!(
            records
                .into_iter()
                .map(|r| r.change)
                .filter(|change| !matches!(change, Change::Account { .. }))
                .collect::<Vec<_>>(),
            expected
        );
        assert!(matches!(
            store
                .revoke_sessions(
                    UserId::generate(),
                    &mut [],
                    400,
                    AccountChange::RefuseEarlierTokens
                )
                .await,
            Err(UserWriteError::NotFound)
        ));
        db.drop_now().await;
    }

    /// A refresh on one node racing a logout on another: whichever commits first, the
    /// session ends revoked, and a rotation that won keeps its generation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL"]
    async fn a_rotation_racing_a_revocation_never_brings_the_session_back() {
        let db = TestDatabase::require().await;
        let nodes = [
            PgStore::connect(&db.url, 2).await.unwrap(),
            PgStore::connect(&db.url, 2).await.unwrap(),
        ];
        let user = UserId::generate();
        for round in 0..20 {
            let sid = SessionId::generate();
            nodes[0].insert_session(sid, &session(user)).await.unwrap();
            let refresher = {
                let node = nodes[round % 2].clone();
                tokio::spawn(async move { node.rotate_session(sid, &rotation(1)).await.unwrap() })
            };
            let revoker = {
                let node = nodes[(round + 1) % 2].clone();
                tokio::spawn(async move {
                    let mut revocations = [Revocation {
                        sid,
                        session: session(user),
                        deny: 200..=1_100,
                    }];
                    node.revoke_sessions(user, &mut revocations, 300, AccountChange::Unchanged)
                        .await
                        .unwrap();
                })
            };
            let rotated = refresher.await.unwrap();
            revoker.await.unwrap();
            let stored = nodes[0].session(sid).await.unwrap().unwrap();
            assert!(stored.revoked, "round {round}");
            let expected = if rotated.is_some() { 2 } else { 1 };
            assert_eq!(stored.generation, expected, "round {round}");
        }
        db.drop_now().await;
    }
}
