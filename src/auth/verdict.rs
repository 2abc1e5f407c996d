//! The verdict on a presented access token, in DESIGN.md's order: header, signature and
//! registered claims (`tokens`), then the deny list (`jti`, then `sid`), then the user
//! (exists, not disabled, issued after `not_before`, `uv` current) and the tenant (`tv`
//! current). Steps 3 and 4 read the store on every call: they are never cached past a write.

use super::{now, Auth, AuthError};
use crate::domain::{SessionId, TenantId, TokenId, UserId};
use crate::store::{DenyKind, UserRecord};
use crate::tokens::{AccessClaims, TokenError};

/// A token that passed every check, with what it was checked against.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub claims: AccessClaims,
    pub user_id: UserId,
    pub session_id: SessionId,
    pub token_id: TokenId,
    pub user: UserRecord,
    /// The token's claim versions are behind the store's: its holder may re-mint.
    pub stale: bool,
}

/// What the caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Only tokens whose claims are current.
    Current,
    /// Stale tokens too (refresh and logout accept them: stale is not revoked).
    AllowStale,
}

impl Auth {
    /// Checks a presented access token.
    ///
    /// # Errors
    /// `TokenInvalid`, `TokenExpired`, `TokenRevoked`, or `TokenStale` when `freshness` is
    /// `Current` and the claims are behind.
    pub fn authenticate(
        &self,
        token: &str,
        freshness: Freshness,
    ) -> Result<Authenticated, AuthError> {
        let now = now();
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
        let malformed = AuthError::TokenInvalid("malformed claims");
        let user_id =
            UserId::parse(&claims.sub).ok_or(AuthError::TokenInvalid("malformed claims"))?;
        let session_id =
            SessionId::parse(&claims.sid).ok_or(AuthError::TokenInvalid("malformed claims"))?;
        let token_id = TokenId::parse(&claims.jti).ok_or(malformed)?;

        if self.store.is_denied(DenyKind::Token, token_id.as_bytes())?
            || self
                .store
                .is_denied(DenyKind::Session, session_id.as_bytes())?
        {
            return Err(AuthError::TokenRevoked);
        }
        let user = self.store.user(user_id)?.ok_or(AuthError::TokenRevoked)?;
        if user.disabled || claims.iat < user.not_before {
            return Err(AuthError::TokenRevoked);
        }
        if claims.uv > user.claims_version {
            return Err(AuthError::TokenInvalid("claims version from the future"));
        }
        let mut stale = claims.uv < user.claims_version;
        if let Some(tid) = &claims.tid {
            let tenant_id =
                TenantId::parse(tid).ok_or(AuthError::TokenInvalid("malformed claims"))?;
            stale |= match self.store.tenant(tenant_id)? {
                Some(tenant) => claims.tv < tenant.version,
                None => true,
            };
        }
        if stale && freshness == Freshness::Current {
            return Err(AuthError::TokenStale);
        }
        Ok(Authenticated {
            claims,
            user_id,
            session_id,
            token_id,
            user,
            stale,
        })
    }
}
