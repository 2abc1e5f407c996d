//! The verdict on a presented access token, in DESIGN.md's order: header, signature and
//! registered claims (`tokens`), then the deny list (`jti`, then `sid`), then the user
//! (exists, not disabled, issued after `not_before`, `uv` current) and the tenant (`tv`
//! current). Steps 3 and 4 run on every call: the deny list is read from sled, versions
//! from the store's write-through mirror; neither is cached past a write.
//!
//! With `tokens.on_stale = "reissue"`, a stale token asked to be current is answered with
//! a re-minted one (current claims, same session, never outliving it) instead of
//! `token_stale`: the caller gets it in `Authenticated::refreshed`.

use std::sync::Arc;

use super::{Auth, AuthError};
use crate::config::OnStale;
use crate::domain::{SessionId, TenantId, TokenId, UserId};
use crate::secret::SecretString;
use crate::store::UserStamp;
use crate::tokens::{AccessClaims, TokenError};

/// A token that passed every check, with what it was checked against.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The claims in force: the token's own, or the re-minted token's.
    pub claims: Arc<AccessClaims>,
    pub user_id: UserId,
    pub session_id: SessionId,
    pub token_id: TokenId,
    pub stamp: UserStamp,
    /// The token's claim versions are behind the store's: its holder may re-mint.
    pub stale: bool,
    /// A token re-minted because the presented one was stale (`on_stale = "reissue"`).
    pub refreshed: Option<SecretString>,
}

impl Authenticated {
    /// Whether the claims in force grant `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.claims.roles.iter().any(|held| held == role)
    }
}

/// What the caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Only tokens whose claims are current (or, with `on_stale = "reissue"`, a stale one
    /// answered with a re-minted token).
    Current,
    /// Stale tokens too (refresh, logout and claim changes accept them: stale is not
    /// revoked).
    AllowStale,
}

impl Auth {
    /// Checks a presented access token.
    ///
    /// # Errors
    /// `TokenInvalid`, `TokenExpired`, `TokenRevoked`, or `TokenStale` when `freshness` is
    /// `Current`, the claims are behind and `on_stale` is `reject`.
    pub fn authenticate(
        &self,
        token: &str,
        freshness: Freshness,
    ) -> Result<Authenticated, AuthError> {
        let now = self.clock.now();
        let claims = self.verify_signature(token, now)?;
        let malformed = || AuthError::TokenInvalid("malformed claims");
        let user_id = UserId::parse(&claims.sub).ok_or_else(malformed)?;
        let session_id = SessionId::parse(&claims.sid).ok_or_else(malformed)?;
        let token_id = TokenId::parse(&claims.jti).ok_or_else(malformed)?;
        let tenant_id = match &claims.tid {
            Some(tid) => Some(TenantId::parse(tid).ok_or_else(malformed)?),
            None => None,
        };

        if self
            .store
            .is_revoked(token_id.as_bytes(), session_id.as_bytes(), claims.exp)?
        {
            return Err(AuthError::TokenRevoked);
        }
        let stamp = self
            .store
            .user_stamp(user_id)?
            .ok_or(AuthError::TokenRevoked)?;
        if stamp.disabled || claims.iat < stamp.not_before {
            return Err(AuthError::TokenRevoked);
        }
        if claims.uv > stamp.claims_version {
            return Err(AuthError::TokenInvalid("claims version from the future"));
        }
        let mut stale = claims.uv < stamp.claims_version;
        if let Some(tenant_id) = tenant_id {
            stale |= match self.store.tenant_version(tenant_id)? {
                Some(version) => claims.tv < version,
                None => true,
            };
        }
        let mut caller = Authenticated {
            claims,
            user_id,
            session_id,
            token_id,
            stamp,
            stale,
            refreshed: None,
        };
        if stale && freshness == Freshness::Current {
            if self.settings.tokens.on_stale == OnStale::Reject {
                return Err(AuthError::TokenStale);
            }
            let (token, claims) = self.remint_for_session(&caller)?;
            caller.claims = Arc::new(claims);
            caller.stale = false;
            caller.refreshed = Some(token);
        }
        tracing::trace!(?caller, "token accepted");
        Ok(caller)
    }

    /// Steps 1 and 2, through the verified-token cache.
    pub(crate) fn verify_signature(
        &self,
        token: &str,
        now: u64,
    ) -> Result<Arc<AccessClaims>, AuthError> {
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        let ring = self.key_ring();
        let claims = self
            .tokens
            .verify(&ring, token, now)
            .map_err(|err| match err {
                TokenError::Expired => AuthError::TokenExpired,
                TokenError::Invalid(reason) => AuthError::TokenInvalid(reason),
                TokenError::NoSigningKey | TokenError::Signing(_) => {
                    AuthError::TokenInvalid("unusable key")
                }
            })?;
        let claims = Arc::new(claims);
        self.verified.insert(token, Arc::clone(&claims), now);
        Ok(claims)
    }

    /// A new access token with the current claims for the caller's session, capped at the
    /// session's end.
    ///
    /// # Errors
    /// `TokenRevoked` when the session has ended or the user is gone.
    pub(crate) fn remint_for_session(
        &self,
        caller: &Authenticated,
    ) -> Result<(SecretString, AccessClaims), AuthError> {
        let now = self.clock.now();
        let session = match self.store.session(caller.session_id)? {
            Some(session) if !session.revoked && now < session.expires_at => session,
            _ => return Err(AuthError::TokenRevoked),
        };
        let user = self
            .store
            .user(caller.user_id)?
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
        match self.store.session(caller.session_id)? {
            Some(session) if !session.revoked => Ok((minted.token.into(), minted.claims)),
            _ => Err(AuthError::TokenRevoked),
        }
    }
}
