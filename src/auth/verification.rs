//! The [`Verification`] service: the verdict on a presented access token, in DESIGN.md's
//! order: header, signature and
//! registered claims (`tokens`), then the deny list (`jti`, then `sid`), then the user
//! (exists, not disabled, issued after `not_before`, `uv` current) and the tenant (`tv`
//! current). The rules and their order are claimd-token's (`TokenRules`, `judge`), which
//! `claimd-verify` runs too; this reads what they judge. Steps 3 and 4 run on every call:
//! the deny list and versions are read from the store's memory; neither is cached past a
//! write.
//!
//! With `tokens.on_stale = "reissue"`, a stale token asked to be current is answered with
//! a re-minted one (current claims, same session, never outliving it) instead of
//! `token_stale`: the caller gets it in `Authenticated::refreshed`.

use std::sync::Arc;

use super::caller::{Authenticated, Freshness};
use super::core::Core;
use super::AuthError;
use crate::config::OnStale;
use crate::domain::{SessionId, TenantId, TokenId, UserId};
use crate::tokens::VerifiedTokenCache;
use crate::tokens::{AccessClaims, TokenError};
use claimd_token::{
    judge, Currency, Knowledge, Refusal, Standing, TenantStanding, UserFacts, UserStanding,
};

/// The verdict on presented access tokens.
pub struct Verification {
    pub(super) core: Arc<Core>,
    pub(super) verified: VerifiedTokenCache,
}

impl Verification {
    pub(crate) fn new(core: Arc<Core>) -> Verification {
        let tokens = &core.settings.tokens;
        Verification {
            verified: VerifiedTokenCache::new(
                tokens.verified_cache_entries,
                tokens.leeway.as_secs(),
            ),
            core,
        }
    }
}

impl Verification {
    /// Checks a presented access token.
    ///
    /// # Errors
    /// `TokenInvalid`, `TokenExpired`, `TokenRevoked`, or `TokenStale` when `freshness` is
    /// `Current`, the claims are behind and `on_stale` is `reject`.
    pub async fn authenticate(
        &self,
        token: &str,
        freshness: Freshness,
    ) -> Result<Authenticated, AuthError> {
        let now = self.core.clock.now();
        let claims = self.verify_signature(token, now)?;
        let mut caller = self.judge(claims)?;
        if caller.stale && freshness == Freshness::Current {
            if self.core.settings.tokens.on_stale == OnStale::Reject {
                return Err(AuthError::TokenStale);
            }
            let (token, claims) = self.core.remint_for_session(&caller).await?;
            caller.claims = Arc::new(claims);
            caller.stale = false;
            caller.refreshed = Some(token);
        }
        tracing::trace!(?caller, "token accepted");
        Ok(caller)
    }

    /// The holder of a session, proven by one of its access tokens even past its `exp`:
    /// what logout needs. An access token that ran out while its session lives on must
    /// still end that session (otherwise a page whose token expired could never log out),
    /// but only a genuine one: signature, issuer, audience and lifetime are checked, and a
    /// token revoked, of a disabled user or from before `not_before` proves nothing.
    ///
    /// # Errors
    /// As [`Self::authenticate`] with stale tokens allowed, but never `TokenExpired`.
    pub async fn session_holder(&self, token: &str) -> Result<Authenticated, AuthError> {
        match self.authenticate(token, Freshness::AllowStale).await {
            Err(AuthError::TokenExpired) => {}
            verdict => return verdict,
        }
        let now = self.core.clock.now();
        let ring = self.core.key_ring();
        let claims = self
            .core
            .tokens
            .verify_ignoring_expiry(&ring, token, now)
            .map_err(token_error)?;
        self.judge(Arc::new(claims))
    }

    /// Steps 3 and 4 on claims whose signature and registered claims passed: the deny
    /// list, the user and the tenant. Says whether the claims are stale; never re-mints.
    fn judge(&self, claims: Arc<AccessClaims>) -> Result<Authenticated, AuthError> {
        let malformed = || AuthError::TokenInvalid("malformed claims");
        let user_id = UserId::parse(&claims.sub).ok_or_else(malformed)?;
        let session_id = SessionId::parse(&claims.sid).ok_or_else(malformed)?;
        let token_id = TokenId::parse(&claims.jti).ok_or_else(malformed)?;
        let tenant_id = match &claims.tid {
            Some(tid) => Some(TenantId::parse(tid).ok_or_else(malformed)?),
            None => None,
        };

        let store = &self.core.store;
        let denied = store.token_is_revoked(token_id, session_id, claims.exp)?;
        // A denied token is revoked whatever else is true: nothing more is read for it.
        let stamp = if denied {
            None
        } else {
            store.user_stamp(user_id)?
        };
        let user = match &stamp {
            _ if denied => UserStanding::Unheard,
            None => UserStanding::Gone,
            Some(stamp) => UserStanding::Known(UserFacts {
                claims_version: stamp.claims_version,
                not_before: stamp.not_before,
                disabled: stamp.disabled,
            }),
        };
        let tenant = match (&stamp, tenant_id) {
            (Some(stamp), named) if named != stamp.tenant => TenantStanding::NotTheUsers,
            (Some(_), Some(tenant_id)) => store
                .tenant_version(tenant_id)?
                .map_or(TenantStanding::Gone, TenantStanding::Known),
            _ => TenantStanding::Unheard,
        };
        let standing = Standing {
            denied,
            user,
            tenant,
        };
        let currency = judge(&claims, &standing, Knowledge::Complete).map_err(AuthError::from)?;
        // A denied token and a user the store does not hold are revoked by `judge`.
        let stamp = stamp.ok_or(AuthError::TokenRevoked)?;
        Ok(Authenticated {
            claims,
            user_id,
            session_id,
            token_id,
            stamp,
            stale: currency == Currency::Stale,
            refreshed: None,
        })
    }

    /// Authenticates an admin: a current token whose claims hold the admin role.
    ///
    /// # Errors
    /// Any verdict but valid; `Forbidden` without the role.
    pub async fn require_admin(&self, token: &str) -> Result<Authenticated, AuthError> {
        let caller = self.authenticate(token, Freshness::Current).await?;
        if !caller.has_role(super::ADMIN_ROLE) {
            return Err(AuthError::Forbidden("the admin role is required".into()));
        }
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
        let ring = self.core.key_ring();
        let claims = self
            .core
            .tokens
            .verify(&ring, token, now)
            .map_err(token_error)?;
        let claims = Arc::new(claims);
        self.verified.insert(token, Arc::clone(&claims), now);
        Ok(claims)
    }
}

/// A verdict of claimd-token's, as claimd answers it.
impl From<Refusal> for AuthError {
    fn from(refusal: Refusal) -> AuthError {
        match refusal {
            Refusal::Invalid(reason) => AuthError::TokenInvalid(reason),
            Refusal::Expired => AuthError::TokenExpired,
            Refusal::UnknownKey => AuthError::TokenInvalid("unknown kid"),
            Refusal::Revoked => AuthError::TokenRevoked,
            // Whatever a newer claimd-token refuses for: refused all the same.
            _ => AuthError::TokenInvalid("token refused"),
        }
    }
}

fn token_error(err: TokenError) -> AuthError {
    match err {
        TokenError::Expired => AuthError::TokenExpired,
        TokenError::Invalid(reason) => AuthError::TokenInvalid(reason),
        TokenError::NoSigningKey | TokenError::Signing(_) => {
            AuthError::TokenInvalid("unusable key")
        }
    }
}
