//! The [`Sessions`] service: sessions and their tokens. Starting one at login, refreshing it (rotation, the
//! concurrent-refresh race, reuse detection), re-minting claims for a still-valid access
//! token, and ending sessions (logout, logout everywhere).
//!
//! Refreshes of one session are serialised by a per-session lock, and every write to a
//! session record happens under that lock, so a refresh can never resurrect a session a
//! concurrent logout has just revoked.
//!
//! A refresh answered 5xx has an unknown outcome: the rotation may be on disk although its
//! answer never left. The client retries with the token it holds, the previous generation,
//! and that retry must get the same successor rather than trip reuse detection. So every
//! answer that hands out a generation records it as acknowledged once it is durable
//! (`Store::acknowledge_generation`), and the previous generation is answered again, past
//! the grace window too, exactly when the current one was never acknowledged. A previous
//! generation presented after its successor was acknowledged is a replay, as before.

use super::caller::{Authenticated, Freshness};
use super::{AuthError, TokenResponse};
use crate::domain::{SessionId, UserId};
use crate::store::Revocation;
use crate::store::{AccountChange, Rotation, SessionRecord, UserRecord};
use crate::tokens::{mint_refresh_token, PresentedRefreshToken, SessionKey};
use std::sync::Arc;

use super::acknowledgements::Acknowledgements;
use super::core::{Core, MintedAccess};
use super::refresh_verdict::{classify, Moment, Presented, RefreshPolicy, Successor, Verdict};
use super::verification::Verification;

/// How a refresh-token presentation ended; counted apart in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Rotated,
    Race,
    /// The previous token presented again after its successor's answer was lost.
    Retried,
    Reuse,
    Forged,
    Refused,
}

impl RefreshOutcome {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            RefreshOutcome::Rotated => "rotated",
            RefreshOutcome::Race => "race",
            RefreshOutcome::Retried => "retried",
            RefreshOutcome::Reuse => "reuse",
            RefreshOutcome::Forged => "forged",
            RefreshOutcome::Refused => "refused",
        }
    }
}

/// What a caller shows to end a session (logout): one of the session's access tokens
/// (valid, stale, or expired but genuine), or one of its refresh tokens (the body's or the
/// refresh cookie's).
#[derive(Clone, Copy)]
pub enum SessionProof<'a> {
    AccessToken(&'a str),
    RefreshToken(&'a str),
}

/// The session a proof showed, and the access token it was shown with.
struct SessionHolder {
    user_id: UserId,
    session_id: SessionId,
    access_token: Option<(crate::domain::TokenId, u64)>,
}

/// What every step of a refresh works on: the session as judged, under its lock.
struct Step<'a> {
    sid: SessionId,
    key: &'a SessionKey,
    session: &'a SessionRecord,
    now: u64,
}

/// How an answering step ended: as `outcome`, or refused when it failed on the way (the
/// store, the signing key).
fn counted(
    outcome: RefreshOutcome,
    answer: Result<TokenResponse, AuthError>,
) -> (RefreshOutcome, Result<TokenResponse, AuthError>) {
    match answer {
        Ok(response) => (outcome, Ok(response)),
        Err(err) => (RefreshOutcome::Refused, Err(err)),
    }
}

/// A refresh refused without touching the session.
fn refused(why: &'static str) -> (RefreshOutcome, Result<TokenResponse, AuthError>) {
    (RefreshOutcome::Refused, Err(AuthError::InvalidGrant(why)))
}

/// Sessions: refresh, logout, and ending them.
pub struct Sessions {
    pub(super) core: Arc<Core>,
    pub(super) verification: Arc<Verification>,
    acknowledgements: Acknowledgements,
}

impl Sessions {
    /// Needs a Tokio runtime: it starts the task that records acknowledgements.
    pub(crate) fn new(core: Arc<Core>, verification: Arc<Verification>) -> Sessions {
        Sessions {
            acknowledgements: Acknowledgements::start(Arc::clone(&core.store), core.clock.clone()),
            core,
            verification,
        }
    }
}

impl Sessions {
    /// A rotation from `from_generation` now, carrying a new access token.
    fn rotation(&self, from_generation: u64, access_token: &str, access_expires: u64) -> Rotation {
        let at_ms = self.core.clock.steady_ms();
        Rotation {
            from_generation,
            access_token: access_token.to_string(),
            access_expires,
            at: at_ms / 1000,
            at_ms,
        }
    }

    /// Starts a session for a user who just proved who they are. Durable on return.
    pub(crate) async fn start_session(
        &self,
        user_id: UserId,
        user: &UserRecord,
    ) -> Result<TokenResponse, AuthError> {
        let now = self.core.clock.now();
        let made_room = self.make_room_for_session(user_id, now).await?;
        let sid = SessionId::generate();
        let key = SessionKey::generate();
        let expires_at = now + self.core.settings.tokens.refresh_ttl.as_secs();
        let MintedAccess {
            token: access_token,
            exp: access_exp,
            ..
        } = self.core.mint_access(user_id, user, sid, expires_at, now)?;
        let session = SessionRecord {
            user: user_id,
            session_key: key.to_bytes(),
            generation: 1,
            created_at: now,
            expires_at,
            last_used: now,
            rotated_at_ms: self.core.clock.steady_ms(),
            revoked: false,
            current_access_token: access_token.clone(),
            current_access_expires: access_exp,
        };
        self.core.store.insert_session(sid, &session).await?;
        if made_room {
            // Sessions revoked to make room are in the change log: every node must see
            // them before the answer.
            self.core.store.wait_durable().await?;
        } else {
            self.core.store.wait_durable_unlogged().await?;
        }
        self.core.metrics.tokens_issued("refresh");
        Ok(self.token_response(sid, &key, &session, access_token, access_exp, now))
    }

    /// Keeps a user's live sessions under `auth.max_sessions_per_user`: when a new one
    /// would pass the cap, the least recently used are revoked. Says whether it revoked
    /// any. Not yet durable: the caller's wait covers it.
    async fn make_room_for_session(&self, user_id: UserId, now: u64) -> Result<bool, AuthError> {
        let cap = self.core.settings.auth.max_sessions_per_user;
        let mut live = Vec::new();
        for sid in self.core.store.user_session_ids(user_id).await? {
            if let Some(session) = self.core.store.session(sid).await? {
                if !session.revoked && now < session.expires_at {
                    live.push((session.last_used, session.created_at, sid));
                }
            }
        }
        if live.len() < cap {
            return Ok(false);
        }
        live.sort_unstable();
        let excess = live.len() + 1 - cap;
        for (_, _, sid) in live.into_iter().take(excess) {
            tracing::info!(user = %user_id, session = %sid, "session cap reached: least recently used session revoked");
            self.revoke_session(sid, now).await?;
        }
        Ok(true)
    }

    fn token_response(
        &self,
        sid: SessionId,
        key: &SessionKey,
        session: &SessionRecord,
        access_token: String,
        access_exp: u64,
        now: u64,
    ) -> TokenResponse {
        TokenResponse {
            access_token: access_token.into(),
            token_type: "Bearer",
            expires_in: access_exp.saturating_sub(now),
            refresh_token: Some(mint_refresh_token(sid, key, session.generation).into()),
            refresh_expires_in: Some(session.expires_at.saturating_sub(now)),
            session_id: sid.to_string(),
        }
    }

    /// Exchanges a refresh token for a new pair (DESIGN.md "Refresh tokens").
    ///
    /// # Errors
    /// `InvalidGrant` for anything but the current generation, the race inside the grace
    /// window or the retry of an answer that never left; an older generation with a valid
    /// MAC also revokes the whole session.
    pub async fn refresh(&self, presented: &str) -> Result<TokenResponse, AuthError> {
        let (outcome, answer) = self.judge_and_answer(presented).await;
        self.core.metrics.refresh(outcome.label());
        answer
    }

    /// The settings refreshes are judged by.
    fn refresh_policy(&self) -> RefreshPolicy {
        let tokens = &self.core.settings.tokens;
        RefreshPolicy {
            grace_ms: u64::try_from(tokens.refresh_reuse_grace.as_millis()).unwrap_or(u64::MAX),
            idle_secs: tokens.refresh_idle_ttl.map(|idle| idle.as_secs()),
        }
    }

    /// Reads the token's session, lets [`classify`] judge it, and takes the one step the
    /// verdict names; how it ended (for `/metrics`) beside the answer.
    async fn judge_and_answer(
        &self,
        presented: &str,
    ) -> (RefreshOutcome, Result<TokenResponse, AuthError>) {
        let Some(token) = PresentedRefreshToken::parse(presented) else {
            return refused("malformed refresh token");
        };
        let sid = token.sid;
        let _turn = self.core.session_locks.for_session(sid).lock().await;
        let policy = self.refresh_policy();
        // Under the session's lock nothing else in this process rotates it, so a rotation
        // that finds it moved on met a logout, or (on a shared database) another node's
        // rotation: it is read and judged once more, and answered as the race's loser.
        for last_try in [false, true] {
            let (session, user) = match self.core.store.session_and_user(sid).await {
                Ok(Some(read)) => read,
                Ok(None) => return refused("unknown session"),
                Err(err) => return (RefreshOutcome::Refused, Err(err.into())),
            };
            let key = SessionKey::from_bytes(session.session_key);
            let presentation = Presented {
                generation: token.generation,
                mac_valid: token.mac_is_valid(&key),
            };
            let moment = Moment {
                now: self.core.clock.now(),
                steady_ms: self.core.clock.steady_ms(),
            };
            let judge = |successor| {
                classify(
                    presentation,
                    &session,
                    user.as_ref(),
                    moment,
                    policy,
                    successor,
                )
            };
            let mut verdict = judge(Successor::NotAsked);
            if verdict == Verdict::AskSuccessor {
                match self.acknowledged_generation(sid).await {
                    Ok(acknowledged) => verdict = judge(Successor::Acknowledged(acknowledged)),
                    Err(err) => return (RefreshOutcome::Refused, Err(err.into())),
                }
            }
            let step = Step {
                sid,
                key: &key,
                session: &session,
                now: moment.now,
            };
            return match (verdict, user.as_ref()) {
                (Verdict::Rotate, Some(user)) => {
                    match self.rotate(&step, token.generation, user).await {
                        Ok(Some(response)) => (RefreshOutcome::Rotated, Ok(response)),
                        Ok(None) if !last_try => continue,
                        Ok(None) => refused("session revoked"),
                        Err(err) => (RefreshOutcome::Refused, Err(err)),
                    }
                }
                (Verdict::Race, Some(user)) => counted(
                    RefreshOutcome::Race,
                    self.answer_successor(&step, user).await,
                ),
                (Verdict::Retry, Some(user)) => counted(
                    RefreshOutcome::Retried,
                    self.answer_successor(&step, user).await,
                ),
                (Verdict::Reuse, _) => (
                    RefreshOutcome::Reuse,
                    Err(self.reuse_detected(sid, session, moment.now).await),
                ),
                (Verdict::Forged, _) => (
                    RefreshOutcome::Forged,
                    Err(AuthError::InvalidGrant("invalid refresh token")),
                ),
                (Verdict::Refused(why), _) => refused(why),
                // `classify` answers these only for a live account, and never asks
                // twice; answered as refusals all the same.
                (Verdict::Rotate | Verdict::Race | Verdict::Retry, None) => {
                    refused("account unavailable")
                }
                (Verdict::AskSuccessor, _) => refused("invalid refresh token"),
            };
        }
        refused("session revoked")
    }

    /// `Rotate`: moves the session from `generation` to the next with a new access token;
    /// `None` when it had moved on meanwhile (see [`Sessions::judge_and_answer`]).
    async fn rotate(
        &self,
        step: &Step<'_>,
        generation: u64,
        user: &UserRecord,
    ) -> Result<Option<TokenResponse>, AuthError> {
        let minted = self.core.mint_access(
            step.session.user_id(),
            user,
            step.sid,
            step.session.expires_at,
            step.now,
        )?;
        let rotation = self.rotation(generation, &minted.token, minted.exp);
        let Some(rotated) = self.core.store.rotate_session(step.sid, &rotation).await? else {
            return Ok(None);
        };
        self.acknowledge(step.sid, rotated.generation).await?;
        self.core.metrics.tokens_issued("refresh");
        Ok(Some(self.token_response(
            step.sid,
            step.key,
            &rotated,
            minted.token,
            minted.exp,
            step.now,
        )))
    }

    /// `Race` and `Retry`: answers the pair already issued for the current generation,
    /// with a fresh access token if that one has run out while its answer was lost.
    async fn answer_successor(
        &self,
        step: &Step<'_>,
        user: &UserRecord,
    ) -> Result<TokenResponse, AuthError> {
        let renewed;
        let mut session = step.session;
        if session.current_access_expires <= step.now + self.core.settings.tokens.leeway.as_secs() {
            let minted = self.core.mint_access(
                session.user_id(),
                user,
                step.sid,
                session.expires_at,
                step.now,
            )?;
            renewed = self
                .core
                .store
                .renew_session_access(
                    step.sid,
                    session.generation,
                    (&minted.token, minted.exp),
                    None,
                )
                .await?
                .ok_or(AuthError::InvalidGrant("session revoked"))?;
            session = &renewed;
        }
        // The successor may not be on disk yet (its own answer may still be waiting for
        // the flush, or may have failed): hand it out only once it is.
        self.acknowledge(step.sid, session.generation).await?;
        let access_token = session.current_access_token.clone();
        let access_exp = session.current_access_expires;
        Ok(self.token_response(
            step.sid,
            step.key,
            session,
            access_token,
            access_exp,
            step.now,
        ))
    }

    /// Makes the session's own write durable (a rotation writes nothing to the change
    /// log, so on PostgreSQL it waits for no other node: issue 19 §9; a caller that also
    /// logged something waits for that first), then records `generation` as
    /// acknowledged: the answer carrying it is about to leave. This process knows it at
    /// once; the store gets it a moment later, whatever the grace window (issue 19 §5:
    /// with a zero grace it used to be written before the answer, and a crash in between
    /// made the client's retry a replay). A crash while the answer is still on its way then leaves no
    /// acknowledgement behind, and the retry with the previous token after the restart is
    /// answered rather than judged a replay.
    pub(crate) async fn acknowledge(
        &self,
        sid: SessionId,
        generation: u64,
    ) -> Result<(), crate::store::StoreError> {
        self.core.store.wait_durable_unlogged().await?;
        self.acknowledgements
            .after(ACKNOWLEDGE_AFTER, sid, generation);
        Ok(())
    }

    /// The newest acknowledged generation of `sid`: queued in this process, or recorded
    /// in the store (asked in that order, so one moving from the queue to the store is
    /// never missed).
    async fn acknowledged_generation(
        &self,
        sid: SessionId,
    ) -> Result<Option<u64>, crate::store::StoreError> {
        if let Some(generation) = self.acknowledgements.pending(sid) {
            return Ok(Some(generation));
        }
        self.core.store.acknowledged_generation(sid).await
    }

    /// `Reuse`: a token whose successor was handed out came back, so it was copied: the
    /// whole session ends, durably, and the refresh is refused.
    async fn reuse_detected(
        &self,
        sid: SessionId,
        mut session: SessionRecord,
        now: u64,
    ) -> AuthError {
        let user_id = session.user_id();
        tracing::warn!(session = %sid, user = %user_id, "refresh token reuse detected: session revoked");
        self.core.metrics.reuse_detected();
        if let Err(err) = self.revoke_session_locked(sid, &mut session, now).await {
            return err;
        }
        if let Err(err) = self.core.store.wait_durable().await {
            return AuthError::Store(err);
        }
        AuthError::InvalidGrant("refresh token reuse detected")
    }

    /// Mints a new access token for the session of a valid or stale access token: current
    /// claims, same session, never a later `exp` than the session's.
    ///
    /// # Errors
    /// Any verdict but valid or stale; a session that has ended.
    pub async fn reissue_access(&self, token: &str) -> Result<TokenResponse, AuthError> {
        let caller = self
            .verification
            .authenticate(token, Freshness::AllowStale)
            .await?;
        let (access_token, claims) = self.core.remint_for_session(&caller).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: claims.exp.saturating_sub(self.core.clock.now()),
            refresh_token: None,
            refresh_expires_in: None,
            session_id: caller.session_id.to_string(),
        })
    }

    /// Revokes the session the caller proves it holds (which denies every token of it),
    /// and the access token it was proven with.
    ///
    /// # Errors
    /// A proof that proves nothing: an access token that is not genuine or already
    /// revoked, a refresh token that is forged or of an unknown session.
    pub async fn logout(&self, proof: SessionProof<'_>) -> Result<(), AuthError> {
        let holder = self.holder(proof).await?;
        let now = self.core.clock.now();
        self.revoke_session(holder.session_id, now).await?;
        if let Some((jti, exp)) = holder.access_token {
            if exp.saturating_add(self.core.settings.tokens.leeway.as_secs()) >= now {
                self.core.store.deny_token(jti, exp).await?;
            }
        }
        self.core.store.wait_durable().await?;
        Ok(())
    }

    /// Revokes every session of the user whose session the caller proves it holds, and
    /// sets its `not_before`.
    ///
    /// # Errors
    /// As [`Self::logout`].
    pub async fn logout_all(&self, proof: SessionProof<'_>) -> Result<(), AuthError> {
        let holder = self.holder(proof).await?;
        self.end_everywhere(holder.user_id).await
    }

    /// Whose session a proof shows, and which.
    async fn holder(&self, proof: SessionProof<'_>) -> Result<SessionHolder, AuthError> {
        match proof {
            SessionProof::AccessToken(token) => {
                let caller = self.verification.session_holder(token).await?;
                Ok(SessionHolder {
                    user_id: caller.user_id,
                    session_id: caller.session_id,
                    access_token: Some((caller.token_id, caller.claims.exp)),
                })
            }
            SessionProof::RefreshToken(presented) => {
                let token = PresentedRefreshToken::parse(presented)
                    .ok_or(AuthError::InvalidGrant("malformed refresh token"))?;
                let session = self
                    .core
                    .store
                    .session(token.sid)
                    .await?
                    .ok_or(AuthError::InvalidGrant("unknown session"))?;
                // Any generation the session ever issued proves it: an old one here is a
                // holder ending its own session, not a replay to punish (the session ends
                // either way).
                if !token.mac_is_valid(&SessionKey::from_bytes(session.session_key)) {
                    self.core.metrics.refresh(RefreshOutcome::Forged.label());
                    return Err(AuthError::InvalidGrant("invalid refresh token"));
                }
                Ok(SessionHolder {
                    user_id: session.user_id(),
                    session_id: token.sid,
                    access_token: None,
                })
            }
        }
    }

    /// Ends every session of a user and sets its `not_before`, all or nothing. Durable on
    /// return.
    pub(crate) async fn end_everywhere(&self, user_id: UserId) -> Result<(), AuthError> {
        self.end_user_sessions_and(user_id, None, AccountChange::RefuseEarlierTokens)
            .await?;
        self.core.store.wait_durable().await?;
        Ok(())
    }

    /// Revokes every session of `user_id` except `keep`, all or nothing. Not yet durable:
    /// the caller waits.
    pub(crate) async fn end_user_sessions(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
    ) -> Result<(), AuthError> {
        self.end_user_sessions_and(user_id, keep, AccountChange::Unchanged)
            .await?;
        Ok(())
    }

    /// Revokes every live session of `user_id` except `keep` and applies `change` to the
    /// user, in one store write (see `store::revocations`), under every session's lock.
    /// Returns the changed user. Not yet durable: the caller waits.
    pub(crate) async fn end_user_sessions_and(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        change: AccountChange<'_>,
    ) -> Result<Option<UserRecord>, AuthError> {
        let sids: Vec<SessionId> = self
            .core
            .store
            .user_session_ids(user_id)
            .await?
            .into_iter()
            .filter(|sid| Some(*sid) != keep)
            .collect();
        let _turns = self.core.session_locks.lock_all(&sids).await;
        let now = self.core.clock.now();
        let mut revocations = Vec::with_capacity(sids.len());
        for sid in sids {
            if let Some(session) = self.core.store.session(sid).await? {
                if !session.revoked {
                    revocations.push(self.revocation(sid, session, now));
                }
            }
        }
        Ok(self
            .core
            .store
            .revoke_sessions(user_id, &mut revocations, now, change)
            .await?)
    }

    /// Marks a session revoked and denies its `sid`, under the session's lock.
    pub(crate) async fn revoke_session(&self, sid: SessionId, now: u64) -> Result<(), AuthError> {
        let _turn = self.core.session_locks.for_session(sid).lock().await;
        if let Some(mut session) = self.core.store.session(sid).await? {
            self.revoke_session_locked(sid, &mut session, now).await?;
        }
        Ok(())
    }

    /// Ends one session whose lock the caller holds: its record is marked revoked (it
    /// leaves the store at the next eviction pass: its tokens are refused by the deny
    /// entry and its refresh tokens by the mark) and its `sid` is denied, together.
    async fn revoke_session_locked(
        &self,
        sid: SessionId,
        session: &mut SessionRecord,
        now: u64,
    ) -> Result<(), AuthError> {
        if session.revoked {
            return Ok(());
        }
        let mut revocation = [self.revocation(sid, session.clone(), now)];
        self.core
            .store
            .revoke_sessions(
                session.user_id(),
                &mut revocation,
                now,
                AccountChange::Unchanged,
            )
            .await?;
        let [revocation] = revocation;
        *session = revocation.session;
        Ok(())
    }

    /// The `sid` entry covers every `exp` a token of the session could carry and still
    /// verify, whatever the configuration after a restart: from `now` minus the largest
    /// leeway allowed to the last access token the session could have minted, under the
    /// longest access-token lifetime this store has been configured with. A re-mint that
    /// did not see the mark (see `remint_for_session`) ran before the mark was written, so
    /// within the slack after `now`.
    fn revocation(&self, sid: SessionId, session: SessionRecord, now: u64) -> Revocation {
        let last_token_exp = (now + REVOCATION_SLACK_SECS + self.core.store.longest_access_ttl())
            .min(session.expires_at)
            .max(session.current_access_expires)
            .max(now);
        let earliest_live = now.saturating_sub(crate::store::MAX_LEEWAY_SECONDS);
        Revocation {
            sid,
            session,
            deny: earliest_live..=last_token_exp,
        }
    }

    /// Rotates the caller's session at once (a password change hands out a new pair), and
    /// says which generation the new pair carries. Not yet durable: the caller waits.
    pub(crate) async fn rotate_session(
        &self,
        caller: &Authenticated,
        user: &UserRecord,
    ) -> Result<(TokenResponse, u64), AuthError> {
        let sid = caller.session_id;
        let _turn = self.core.session_locks.for_session(sid).lock().await;
        let now = self.core.clock.now();
        let session = match self.core.store.session(sid).await? {
            Some(session) if !session.revoked && now < session.expires_at => session,
            _ => return Err(AuthError::TokenRevoked),
        };
        let MintedAccess {
            token: access_token,
            exp: access_exp,
            ..
        } = self
            .core
            .mint_access(caller.user_id, user, sid, session.expires_at, now)?;
        let rotation = self.rotation(session.generation, &access_token, access_exp);
        let session = self
            .core
            .store
            .rotate_session(sid, &rotation)
            .await?
            .ok_or(AuthError::TokenRevoked)?;
        self.core.metrics.tokens_issued("refresh");
        let key = SessionKey::from_bytes(session.session_key);
        let response = self.token_response(sid, &key, &session, access_token, access_exp, now);
        Ok((response, session.generation))
    }
}

/// How long after its answer leaves an answered rotation is recorded as acknowledged in
/// the store: long enough for the answer to reach the client's socket first.
const ACKNOWLEDGE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// How far past the revocation's clock reading a token minted without seeing the mark
/// could have been minted: the mark is written within the same second or the next
/// (the store adds any time it had to wait for a backup to finish).
const REVOCATION_SLACK_SECS: u64 = 2;

#[cfg(test)]
mod tests {
    //! The refresh flow on its own: a real store on a manual clock, no server, no HTTP.

    use std::time::Duration;

    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::auth::keys::load_or_create_key_ring;
    use crate::clock::ManualClock;
    use crate::config::Settings;
    use crate::store::Store;
    use crate::telemetry::Metrics;

    struct Fixture {
        _dir: tempfile::TempDir,
        sessions: Sessions,
        clock: ManualClock,
        user_id: UserId,
        user: UserRecord,
    }

    async fn fixture(grace: Duration) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 4).unwrap());
        let clock = ManualClock::starting_at(1_800_000_000);
        let mut settings = Settings::default();
        settings.tokens.issuer = "http://claimd.test".to_string();
        settings.tokens.refresh_reuse_grace = grace;
        let ring = load_or_create_key_ring(&store, settings.tokens.algorithm, clock.now())
            .await
            .unwrap();
        let metrics = Arc::new(Metrics::new());
        let ttl = settings.tokens.access_ttl.as_secs();
        let core = Arc::new(Core::new(
            Arc::clone(&store),
            settings,
            ring,
            metrics,
            clock.clock(),
            ttl,
        ));
        let verification = Arc::new(Verification::new(Arc::clone(&core)));
        let user_id = UserId::generate();
        let user = UserRecord {
            username: "alice".into(),
            password_hash: String::new(),
            tenant: None,
            roles: vec!["reader".into()],
            plan: "free".into(),
            attrs: serde_json::Map::new(),
            claims_version: 1,
            not_before: 0,
            disabled: false,
            created_at: clock.now(),
            updated_at: clock.now(),
            email: None,
            email_verified: false,
        };
        store
            .create_user(user_id, &user, None, clock.now())
            .await
            .unwrap();
        Fixture {
            _dir: dir,
            sessions: Sessions::new(core, verification),
            clock,
            user_id,
            user,
        }
    }

    fn refresh_token(response: &TokenResponse) -> String {
        response
            .refresh_token
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_string()
    }

    #[tokio::test]
    async fn a_refresh_token_used_twice_ends_its_session() {
        let fx = fixture(Duration::ZERO).await;
        let login = fx
            .sessions
            .start_session(fx.user_id, &fx.user)
            .await
            .unwrap();
        fx.clock.advance(Duration::from_secs(60));
        let rotated = fx.sessions.refresh(&refresh_token(&login)).await.unwrap();
        let access = rotated.access_token.expose_secret().to_string();
        assert!(fx
            .sessions
            .verification
            .authenticate(&access, Freshness::Current)
            .await
            .is_ok());

        fx.clock.advance(Duration::from_secs(1));
        let replay = fx.sessions.refresh(&refresh_token(&login)).await;
        assert!(matches!(replay, Err(AuthError::InvalidGrant(_))));
        let successor = fx.sessions.refresh(&refresh_token(&rotated)).await;
        assert!(matches!(successor, Err(AuthError::InvalidGrant(_))));
        assert!(matches!(
            fx.sessions
                .verification
                .authenticate(&access, Freshness::Current)
                .await,
            Err(AuthError::TokenRevoked)
        ));
    }

    #[tokio::test]
    async fn two_tabs_within_the_grace_window_get_the_same_pair() {
        let fx = fixture(Duration::from_secs(10)).await;
        let login = fx
            .sessions
            .start_session(fx.user_id, &fx.user)
            .await
            .unwrap();
        let first = fx.sessions.refresh(&refresh_token(&login)).await.unwrap();
        fx.clock.advance(Duration::from_secs(2));
        let second = fx.sessions.refresh(&refresh_token(&login)).await.unwrap();
        assert_eq!(refresh_token(&first), refresh_token(&second));
        assert_eq!(
            first.access_token.expose_secret(),
            second.access_token.expose_secret()
        );
    }

    #[tokio::test]
    async fn a_session_past_its_end_no_longer_refreshes() {
        let fx = fixture(Duration::ZERO).await;
        let login = fx
            .sessions
            .start_session(fx.user_id, &fx.user)
            .await
            .unwrap();
        let life = fx.sessions.core.settings.tokens.refresh_ttl;
        fx.clock.advance(life + Duration::from_secs(1));
        let late = fx.sessions.refresh(&refresh_token(&login)).await;
        assert!(matches!(
            late,
            Err(AuthError::InvalidGrant("session expired"))
        ));
    }
}
