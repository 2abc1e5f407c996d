//! The small core every area of the flows shares: the store, the settings, the clock,
//! the metrics, the key ring with the access-token minter and verifier, and the locks that
//! serialise a session's refreshes. Minting lives here because every area hands out access
//! tokens: a login, a refresh, a claim change, a stale token re-minted on verification.

use std::sync::{Arc, PoisonError, RwLock};

use super::caller::Authenticated;
use super::AuthError;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{SessionId, TokenId, UserId};
use crate::secret::SecretString;
use crate::store::{Store, UserRecord};
use crate::telemetry::Metrics;
use crate::tokens::{AccessClaims, AccessTokens, ClientClaims, KeyRing};

/// A freshly minted access token with its claims.
pub(crate) struct MintedAccess {
    pub token: String,
    pub exp: u64,
    pub claims: AccessClaims,
}

/// Serialises refreshes of one session: 256 stripes keyed by the session id, so two tabs
/// refreshing at once take turns while unrelated sessions rarely meet.
pub(crate) struct SessionLocks(Vec<tokio::sync::Mutex<()>>);

impl SessionLocks {
    fn new() -> SessionLocks {
        SessionLocks((0..256).map(|_| tokio::sync::Mutex::new(())).collect())
    }

    fn stripe(&self, sid: SessionId) -> usize {
        let bytes = sid.as_bytes();
        (usize::from(bytes[15]) ^ usize::from(bytes[14])) % self.0.len()
    }

    pub fn for_session(&self, sid: SessionId) -> &tokio::sync::Mutex<()> {
        &self.0[self.stripe(sid)]
    }

    /// The locks of several sessions, taken in stripe order so that two callers locking
    /// overlapping sets cannot deadlock.
    pub async fn lock_all(&self, sids: &[SessionId]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = sids.iter().map(|sid| self.stripe(*sid)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            guards.push(self.0[stripe].lock().await);
        }
        guards
    }
}

/// What every area of the flows reads.
pub(crate) struct Core {
    pub store: Arc<Store>,
    pub settings: Settings,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub tokens: AccessTokens,
    ring: RwLock<Arc<KeyRing>>,
    pub session_locks: SessionLocks,
}

impl Core {
    /// The core over an open store and a loaded key ring; `longest_access_ttl` is the
    /// longest access-token lifetime the store has been configured with (seconds).
    pub fn new(
        store: Arc<Store>,
        settings: Settings,
        ring: KeyRing,
        metrics: Arc<Metrics>,
        clock: Clock,
        longest_access_ttl: u64,
    ) -> Core {
        Core {
            tokens: AccessTokens::new(&settings.tokens).accepting_lifetime(longest_access_ttl),
            ring: RwLock::new(Arc::new(ring)),
            session_locks: SessionLocks::new(),
            store,
            settings,
            clock,
            metrics,
        }
    }

    /// The key ring in force.
    pub fn key_ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.ring.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts a newly loaded key ring in force.
    pub fn replace_key_ring(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
    }

    /// Mints an access token for `user` in session `sid`, never outliving the session.
    pub(crate) fn mint_access(
        &self,
        user_id: UserId,
        user: &UserRecord,
        sid: SessionId,
        session_expires_at: u64,
        now: u64,
    ) -> Result<MintedAccess, AuthError> {
        let ring = self.key_ring();
        let key = ring
            .signing_key(now)
            .ok_or(AuthError::Unavailable("no signing key"))?;
        let tenant = user
            .tenant
            .map(|tid| {
                self.store
                    .tenant_version(tid)
                    .map(|version| (tid, version.unwrap_or(0)))
            })
            .transpose()?;
        let exp = (now + self.settings.tokens.access_ttl.as_secs()).min(session_expires_at);
        let mut claims = AccessClaims::default();
        claims.iss = self.settings.tokens.issuer.clone();
        claims.sub = user_id.to_string();
        claims.aud = self.settings.tokens.audience.clone();
        claims.exp = exp;
        claims.iat = now;
        claims.jti = TokenId::generate().to_string();
        claims.sid = sid.to_string();
        claims.tid = tenant.map(|(tid, _)| tid.to_string());
        claims.roles = user.roles.clone();
        claims.plan = user.plan.clone();
        claims.attrs = user.attrs.clone();
        claims.uv = user.claims_version;
        claims.tv = tenant.map_or(0, |(_, version)| version);
        claims.email = user.email.as_ref().map(|email| email.as_str().to_string());
        claims.email_verified = user.email.as_ref().map(|_| user.email_verified);
        let token = self
            .tokens
            .mint(key, &claims)
            .map_err(|err| AuthError::Internal(err.to_string()))?;
        self.metrics.tokens_issued("access");
        Ok(MintedAccess { token, exp, claims })
    }

    /// Mints a service's access token (the `client_credentials` grant): `sub` and
    /// `client_id` are the client id, the lifetime is `tokens.access_ttl`.
    pub(crate) fn mint_client_access(
        &self,
        client_id: &str,
        now: u64,
    ) -> Result<(String, ClientClaims), AuthError> {
        let ring = self.key_ring();
        let key = ring
            .signing_key(now)
            .ok_or(AuthError::Unavailable("no signing key"))?;
        let mut claims = ClientClaims::default();
        claims.iss = self.settings.tokens.issuer.clone();
        claims.sub = client_id.to_string();
        claims.aud = self.settings.tokens.audience.clone();
        claims.exp = now + self.settings.tokens.access_ttl.as_secs();
        claims.iat = now;
        claims.jti = TokenId::generate().to_string();
        claims.client_id = client_id.to_string();
        let token = self
            .tokens
            .mint_client(key, &claims)
            .map_err(|err| AuthError::Internal(err.to_string()))?;
        self.metrics.tokens_issued("access");
        Ok((token, claims))
    }

    /// A new access token with the current claims for the caller's session, capped at the
    /// session's end.
    ///
    /// # Errors
    /// `TokenRevoked` when the session has ended or the user is gone.
    pub(crate) async fn remint_for_session(
        &self,
        caller: &Authenticated,
    ) -> Result<(SecretString, AccessClaims), AuthError> {
        let now = self.clock.now();
        let session = match self.store.session(caller.session_id).await? {
            Some(session) if !session.revoked && now < session.expires_at => session,
            _ => return Err(AuthError::TokenRevoked),
        };
        let user = self
            .store
            .user(caller.user_id)
            .await?
            .ok_or(AuthError::TokenRevoked)?;
        let minted = self.mint_access(
            caller.user_id,
            &user,
            caller.session_id,
            session.expires_at,
            now,
        )?;
        // No session lock here (verification is synchronous), so look again: a revocation
        // marks the session before it reads the clock for its deny range, so if the mark
        // is still absent, this mint's `exp` is inside that range; if it is present, the
        // token is never handed out.
        match self.store.session(caller.session_id).await? {
            Some(session) if !session.revoked => Ok((minted.token.into(), minted.claims)),
            _ => Err(AuthError::TokenRevoked),
        }
    }
}
