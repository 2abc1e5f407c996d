//! Revoking sessions all or nothing. A logout, a logout everywhere, a password change and
//! an admin's revoke each end one or more sessions, and a session ends in two places: its
//! record (refresh refused) and a `sid` entry on the deny list (its access tokens refused).
//! The deny list spans several bucket trees, so the two cannot share one sled transaction;
//! instead the marks, the user change that goes with them (`not_before`, a new password
//! hash) and an *intent* per session go in one transaction, the deny entries follow, and
//! each intent is removed once its entry is written. A crash in between leaves intents,
//! and opening the store writes their entries before anything is served
//! ([`Engine::replay_pending_denials`]). Either every session of the request ends in both
//! places, or none does.
//!
//! `pending_denials`: session id → first `exp` (u64 big-endian) + last `exp` (u64
//! big-endian) its deny entry must cover.

use std::ops::RangeInclusive;

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use super::disk::Stored;
use super::{
    codec, corrupt, Change, DenyKind, Engine, SledStore, StoreError, UserRecord, UserWriteError,
};

use crate::domain::{SessionId, UserId};
use crate::store::{AccountChange, Revocation};

fn intent(range: &RangeInclusive<u64>) -> [u8; 16] {
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&codec::encode_u64(*range.start()));
    value[8..].copy_from_slice(&codec::encode_u64(*range.end()));
    value
}

fn read_intent(bytes: &[u8]) -> Result<RangeInclusive<u64>, StoreError> {
    if bytes.len() != 16 {
        return Err(StoreError::Corrupt {
            tree: "pending_denials",
            source: codec::CodecError::Decode(format!("expected 16 bytes, found {}", bytes.len())),
        });
    }
    let start = codec::decode_u64(&bytes[..8]).map_err(corrupt("pending_denials"))?;
    let end = codec::decode_u64(&bytes[8..]).map_err(corrupt("pending_denials"))?;
    Ok(start..=end)
}

impl SledStore {
    /// Ends every session in `revocations` and applies `change` to `user`, all or nothing:
    /// the records are marked revoked and leave the expiry index at `now`, and the deny
    /// entries are written, with intents replayed at open if the process dies
    /// between the two. Returns the changed user record. Not yet durable: the caller waits.
    ///
    /// # Errors
    /// `NotFound` when `change` is not `Unchanged` for a missing user; storage failures.
    pub fn revoke_sessions(
        &self,
        user: UserId,
        revocations: &mut [Revocation],
        now: u64,
        change: AccountChange<'_>,
    ) -> Result<Option<UserRecord>, UserWriteError> {
        let engine = self.engine()?;
        let asked = self.clock.instant();
        let _gate = self.writing();
        let changes_user = !matches!(change, AccountChange::Unchanged);
        let _turn = changes_user.then(|| self.user_locks.lock(user.as_bytes()));
        // A token minted without seeing the mark was minted before the mark is written:
        // time spent waiting here (for a backup, say) widens every range to match.
        let waited = self
            .clock
            .instant()
            .saturating_duration_since(asked)
            .as_secs();
        if waited > 0 {
            for revocation in revocations.iter_mut() {
                let (start, end) = (*revocation.deny.start(), *revocation.deny.end());
                revocation.deny = start..=end + waited + 1;
            }
        }
        let mut writes = Vec::with_capacity(revocations.len());
        for revocation in revocations.iter_mut() {
            let old_key = codec::expiry_key(
                b"",
                revocation.session.expires_at,
                revocation.sid.as_bytes(),
            );
            revocation.session.revoked = true;
            revocation.session.expires_at = revocation.session.expires_at.min(now);
            let new_key = codec::expiry_key(
                b"",
                revocation.session.expires_at,
                revocation.sid.as_bytes(),
            );
            let value = Stored::to_disk(&revocation.session).map_err(corrupt("sessions"))?;
            writes.push((
                revocation.sid,
                value,
                old_key,
                new_key,
                intent(&revocation.deny),
            ));
        }
        let logged: Vec<Change> = revocations
            .iter()
            .map(|revocation| Change::SessionRevoked {
                sid: revocation.sid,
                exp: *revocation.deny.end(),
            })
            .collect();
        let appending = engine.changes.begin();
        let (changed, written) = (
            &engine.users,
            &engine.sessions,
            &engine.session_expiry,
            &engine.pending_denials,
            engine.changes.tree(),
        )
            .transaction(
                |(users, sessions, expiry, pending, changes): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    for (sid, value, old_key, new_key, intent) in &writes {
                        sessions.insert(&sid.as_bytes()[..], value.clone())?;
                        expiry.remove(old_key.clone())?;
                        expiry.insert(new_key.clone(), &[][..])?;
                        pending.insert(&sid.as_bytes()[..], &intent[..])?;
                    }
                    if !changes_user {
                        let written = appending.write(changes, now, &logged)?;
                        return Ok((None, written));
                    }
                    let bytes = users.get(&user.as_bytes()[..])?.ok_or(
                        ConflictableTransactionError::Abort(UserWriteError::NotFound),
                    )?;
                    let mut record: UserRecord = Stored::from_disk(&bytes).map_err(|source| {
                        ConflictableTransactionError::Abort(UserWriteError::Store(
                            StoreError::Corrupt {
                                tree: "users",
                                source,
                            },
                        ))
                    })?;
                    change.apply(&mut record, now);
                    let value = Stored::to_disk(&record).map_err(|source| {
                        ConflictableTransactionError::Abort(UserWriteError::Store(
                            StoreError::Corrupt {
                                tree: "users",
                                source,
                            },
                        ))
                    })?;
                    users.insert(&user.as_bytes()[..], value)?;
                    let mut with_user = logged.clone();
                    with_user.push(record.change(user));
                    let written = appending.write(changes, now, &with_user)?;
                    Ok((Some(record), written))
                },
            )?;
        // Published once the deny entries below are written.
        let _unfinished = appending.committed(written);
        if let Some(record) = &changed {
            engine.mirror.set_user(*user.as_bytes(), record.stamp());
        }
        for revocation in revocations.iter() {
            engine.settle_denial(revocation.sid, revocation.deny.clone())?;
        }
        Ok(changed)
    }
}

impl Engine {
    /// Writes the deny entry an intent asks for, then removes the intent.
    fn settle_denial(&self, sid: SessionId, range: RangeInclusive<u64>) -> Result<(), StoreError> {
        self.deny.deny(DenyKind::Session, sid.as_bytes(), range)?;
        self.pending_denials.remove(sid.as_bytes())?;
        Ok(())
    }

    /// Writes the deny entries of revocations a crash interrupted. Run at open, before
    /// anything is served.
    pub(crate) fn replay_pending_denials(&self) -> Result<u64, StoreError> {
        let mut replayed = 0;
        for entry in self.pending_denials.iter() {
            let (key, value) = entry?;
            let sid = SessionId::from_slice(&key).ok_or(StoreError::Corrupt {
                tree: "pending_denials",
                source: codec::CodecError::Decode("session id is not 16 bytes".into()),
            })?;
            self.settle_denial(sid, read_intent(&value)?)?;
            replayed += 1;
        }
        if replayed > 0 {
            self.db.flush()?;
            tracing::warn!(
                sessions = replayed,
                "finished revocations a crash had interrupted"
            );
        }
        Ok(replayed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::test_store;
    use crate::store::SessionRecord;

    fn session(user: UserId) -> SessionRecord {
        SessionRecord {
            user,
            session_key: [0; 32],
            generation: 1,
            created_at: 1_000,
            expires_at: 100_000,
            last_used: 1_000,
            rotated_at_ms: 1_000_000,
            revoked: false,
            current_access_token: String::new(),
            current_access_expires: 1_900,
        }
    }

    #[test]
    fn an_interrupted_revocation_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let sid = SessionId::generate();
        {
            let store = crate::store::sled::open_for_test(dir.path());
            let engine = store.engine().unwrap();
            // What a crash right after the transaction leaves: the intent, no entry.
            engine
                .pending_denials
                .insert(sid.as_bytes(), &intent(&(1_000..=1_900))[..])
                .unwrap();
            store.close();
        }

        let store = crate::store::sled::open_for_test(dir.path());

        assert!(store.is_revoked(&[0; 16], sid.as_bytes(), 1_500).unwrap());
        assert_eq!(store.engine().unwrap().pending_denials.len(), 0);
    }

    #[test]
    fn sessions_and_their_entries_end_together() {
        let (_dir, store) = test_store();
        let user = UserId::generate();
        let mut revocations: Vec<Revocation> = (0..3)
            .map(|_| {
                let sid = SessionId::generate();
                let record = session(user);
                store.insert_session(sid, &record).unwrap();
                Revocation {
                    sid,
                    session: record,
                    deny: 1_000..=1_900,
                }
            })
            .collect();

        store
            .revoke_sessions(user, &mut revocations, 1_200, AccountChange::Unchanged)
            .unwrap();

        for revocation in &revocations {
            let stored = store.session(revocation.sid).unwrap().unwrap();
            assert!(stored.revoked);
            assert_eq!(stored.expires_at, 1_200, "leaves at the next eviction pass");
            assert!(store
                .is_revoked(&[0; 16], revocation.sid.as_bytes(), 1_900)
                .unwrap());
        }
        assert_eq!(store.engine().unwrap().pending_denials.len(), 0);
    }
}
