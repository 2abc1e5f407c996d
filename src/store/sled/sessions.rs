//! The `sessions` tree (session id → [`SessionRecord`]) with its two indexes:
//! `user_sessions` (user id + session id → ()) to find every session of a user, and
//! `session_expiry` (expiry + session id → ()) so eviction is a range scan. A session and
//! its index entries are created and removed in one transaction.
//!
//! A session's expiry in the index is when it may leave the store: its absolute end while
//! it lives; once revoked (`store::revocations`), the moment of revocation. A revoked session's access tokens are
//! refused by its `sid` deny entry and its refresh tokens by the mark, and an unknown
//! session is refused the same way, so the record has no more work to do and leaves at
//! the next eviction pass.
//!
//! `session_acks` (session id → generation, big-endian) records the newest generation
//! whose refresh answer was acknowledged: written after the rotation is on disk and the
//! answer is about to leave. A rotation that never reached its client (the answer was a
//! 503, or the process died before answering) has no ack, and that is how a retry with the
//! previous token is told from a replay (see `auth::sessions`).

use sled::transaction::TransactionalTree;
use sled::Transactional;

use std::sync::atomic::Ordering;

use super::disk::Stored;
use super::{codec, corrupt, Engine, SledStore, StoreError};
use crate::domain::{SessionId, UserId};
use crate::store::{Rotation, SessionRecord};

fn user_session_key(user: UserId, sid: SessionId) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(user.as_bytes());
    key[16..].copy_from_slice(sid.as_bytes());
    key
}

impl SledStore {
    /// Stores a new session with its index entries.
    ///
    /// # Errors
    /// Storage failures.
    pub fn insert_session(
        &self,
        sid: SessionId,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let value = Stored::to_disk(session).map_err(corrupt("sessions"))?;
        let by_user = user_session_key(session.user_id(), sid);
        let by_expiry = codec::expiry_key(b"", session.expires_at, sid.as_bytes());
        (
            &engine.sessions,
            &engine.user_sessions,
            &engine.session_expiry,
        )
            .transaction(
                |(sessions, user_sessions, expiry): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    sessions.insert(&sid.as_bytes()[..], value.clone())?;
                    user_sessions.insert(&by_user[..], &[][..])?;
                    expiry.insert(by_expiry.clone(), &[][..])?;
                    Ok(())
                },
            )
            .map_err(super::settle::<StoreError>)?;
        engine.sessions_held.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Reads a session.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn session(&self, sid: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let engine = self.engine()?;
        engine
            .sessions
            .get(sid.as_bytes())?
            .map(|bytes| Stored::from_disk(&bytes).map_err(corrupt("sessions")))
            .transpose()
    }

    /// Moves a live session from `rotation.from_generation` to the next generation, with
    /// the access token issued beside it. Returns the rotated record; `None` when the
    /// session is gone, revoked, or no longer at that generation (another refresh rotated
    /// it first: the caller judges again).
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn rotate_session(
        &self,
        sid: SessionId,
        rotation: &Rotation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.change_session(sid, |session| session.rotate(rotation))
    }

    /// Records a new access token for a live session still at `generation` (its refresh
    /// token unchanged), and when it was `used` if the holder used the session to get it.
    /// Returns the changed record; `None` when the session is gone, revoked or has moved
    /// on.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn renew_session_access(
        &self,
        sid: SessionId,
        generation: u64,
        access: (&str, u64),
        used: Option<u64>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.change_session(sid, |session| {
            session.renew_access(generation, access, used)
        })
    }

    /// Reads a session, lets `change` judge and change it, and writes it back only if
    /// nothing wrote it meanwhile (compare and swap; judged again if something did). Its
    /// expiry, and so its indexes, never change here.
    fn change_session(
        &self,
        sid: SessionId,
        change: impl Fn(&mut SessionRecord) -> bool,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        loop {
            let Some(old) = engine.sessions.get(sid.as_bytes())? else {
                return Ok(None);
            };
            let mut session: SessionRecord =
                Stored::from_disk(&old).map_err(corrupt("sessions"))?;
            if !change(&mut session) {
                return Ok(None);
            }
            let new = Stored::to_disk(&session).map_err(corrupt("sessions"))?;
            if engine
                .sessions
                .compare_and_swap(sid.as_bytes(), Some(&old), Some(new))?
                .is_ok()
            {
                return Ok(Some(session));
            }
        }
    }

    /// Every session id of a user, live or revoked, not yet evicted.
    ///
    /// # Errors
    /// Storage failures.
    pub fn user_session_ids(&self, user: UserId) -> Result<Vec<SessionId>, StoreError> {
        let engine = self.engine()?;
        engine
            .user_sessions
            .scan_prefix(user.as_bytes())
            .keys()
            .map(|key| {
                let key = key?;
                SessionId::from_slice(&key[16..]).ok_or(StoreError::Corrupt {
                    tree: "user_sessions",
                    source: codec::CodecError::Decode("key is not 32 bytes".into()),
                })
            })
            .collect()
    }

    /// Removes a session and its index entries.
    ///
    /// # Errors
    /// Storage failures.
    pub fn remove_session(
        &self,
        sid: SessionId,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let by_user = user_session_key(session.user_id(), sid);
        let by_expiry = codec::expiry_key(b"", session.expires_at, sid.as_bytes());
        let removed = (
            &engine.sessions,
            &engine.user_sessions,
            &engine.session_expiry,
            &engine.session_acks,
        )
            .transaction(
                |(sessions, user_sessions, expiry, acks): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    let removed = sessions.remove(&sid.as_bytes()[..])?.is_some();
                    user_sessions.remove(&by_user[..])?;
                    expiry.remove(by_expiry.clone())?;
                    acks.remove(&sid.as_bytes()[..])?;
                    Ok(removed)
                },
            )
            .map_err(super::settle::<StoreError>)?;
        if removed {
            engine.sessions_held.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Records that the answer carrying `generation` of a session's refresh token was
    /// acknowledged; an older generation never replaces a newer one (acknowledgements are
    /// written late and may arrive out of order). Not waited for: if it is lost in a
    /// crash, a replay of the previous token is answered as a retry once, the safe side of
    /// the choice.
    ///
    /// # Errors
    /// Storage failures.
    pub fn acknowledge_generation(
        &self,
        sid: SessionId,
        generation: u64,
    ) -> Result<(), StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        if !engine.sessions.contains_key(sid.as_bytes())? {
            return Ok(()); // evicted meanwhile: nothing to leave behind
        }
        engine
            .session_acks
            .fetch_and_update(sid.as_bytes(), |current| {
                let newest = current
                    .and_then(|bytes| codec::decode_u64(bytes).ok())
                    .map_or(generation, |known| known.max(generation));
                Some(codec::encode_u64(newest).to_vec())
            })?;
        Ok(())
    }

    /// The newest generation of a session whose answer was acknowledged, if any.
    ///
    /// # Errors
    /// Storage failures and damaged values.
    pub fn acknowledged_generation(&self, sid: SessionId) -> Result<Option<u64>, StoreError> {
        let engine = self.engine()?;
        engine
            .session_acks
            .get(sid.as_bytes())?
            .map(|bytes| codec::decode_u64(&bytes).map_err(corrupt("session_acks")))
            .transpose()
    }

    /// Session records held now (live, and revoked ones some token of which may still
    /// verify), for the `claimd_sessions` gauge.
    pub fn sessions_held(&self) -> i64 {
        self.engine()
            .map_or(0, |engine| engine.sessions_held.load(Ordering::Relaxed))
    }
}

impl Engine {
    /// Counts the session records at open, from the expiry index (keys only).
    pub(crate) fn count_sessions(&self) -> Result<i64, StoreError> {
        let mut held = 0i64;
        for key in self.session_expiry.iter().keys() {
            key?;
            held += 1;
        }
        Ok(held)
    }
}
