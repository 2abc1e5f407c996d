//! The [`Introspection`] service: token introspection (RFC 7662) and revocation
//! (RFC 7009) for other services, which authenticate with their service credentials.
//!
//! Services' own tokens (the `client_credentials` grant) are introspected and revoked
//! too: `client_credentials.rs`.
//!
//! Introspection answers `{"active": true, ...claims}` only for a token that would be
//! accepted now, and exactly `{"active": false}` for anything else — expired, revoked,
//! forged, unknown, or stale (unless `tokens.on_stale = "reissue"`): RFC 7662 §2.2 says an
//! inactive answer tells no more. Revocation answers the same whatever the token was
//! (RFC 7009 §2.2): nothing is learned from it.

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::caller::Freshness;
use super::AuthError;
use crate::config::OnStale;
use crate::domain::TokenId;
use crate::tokens::{PresentedRefreshToken, SessionKey};
use std::sync::Arc;

use super::core::Core;
use super::sessions::Sessions;
use super::verification::Verification;

/// What the presenter says the token is (`token_type_hint`); only an ordering hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHint {
    AccessToken,
    RefreshToken,
}

impl TokenHint {
    /// Reads `token_type_hint`; an unknown hint is ignored (RFC 7009 §2.1 lets us search).
    pub fn parse(text: Option<&str>) -> Option<TokenHint> {
        match text {
            Some("access_token") => Some(TokenHint::AccessToken),
            Some("refresh_token") => Some(TokenHint::RefreshToken),
            _ => None,
        }
    }
}

fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && PresentedRefreshToken::parse(token).is_none()
}

/// Introspection and revocation for other services.
pub struct Introspection {
    pub(super) core: Arc<Core>,
    pub(super) verification: Arc<Verification>,
    pub(super) sessions: Arc<Sessions>,
}

impl Introspection {
    pub(crate) fn new(
        core: Arc<Core>,
        verification: Arc<Verification>,
        sessions: Arc<Sessions>,
    ) -> Introspection {
        Introspection {
            core,
            verification,
            sessions,
        }
    }
}

impl Introspection {
    /// RFC 7662 introspection of an access or refresh token.
    ///
    /// # Errors
    /// Only storage failures: every kind of bad token is `{"active": false}`.
    pub async fn introspect(
        &self,
        token: &str,
        _hint: Option<TokenHint>,
    ) -> Result<Value, AuthError> {
        let inactive = json!({ "active": false });
        if looks_like_jwt(token) {
            return match self
                .verification
                .authenticate(token, Freshness::AllowStale)
                .await
            {
                Ok(caller)
                    if caller.stale && self.core.settings.tokens.on_stale == OnStale::Reject =>
                {
                    Ok(inactive)
                }
                Ok(caller) => {
                    // A stale token under `reissue` is active with the claims in force now;
                    // its own identity (jti, sid, iat, exp) is reported as presented.
                    let current = if caller.stale {
                        match self.core.remint_for_session(&caller).await {
                            Ok((_, current)) => Some(current),
                            Err(AuthError::Store(err)) => return Err(AuthError::Store(err)),
                            Err(_) => return Ok(inactive),
                        }
                    } else {
                        None
                    };
                    let presented = &caller.claims;
                    let claims = current.as_ref().unwrap_or(presented);
                    let mut answer = json!({
                        "active": true,
                        "token_type": "access_token",
                        "iss": claims.iss,
                        "sub": claims.sub,
                        "username": &*caller.stamp.username,
                        "aud": claims.aud,
                        "exp": presented.exp,
                        "iat": presented.iat,
                        "jti": presented.jti,
                        "sid": presented.sid,
                        "roles": claims.roles,
                        "plan": claims.plan,
                        "uv": claims.uv,
                        "tv": claims.tv,
                    });
                    if let Some(tid) = &claims.tid {
                        answer["tid"] = json!(tid);
                    }
                    if !claims.attrs.is_empty() {
                        answer["attrs"] = json!(claims.attrs);
                    }
                    Ok(answer)
                }
                Err(AuthError::Store(err)) => Err(AuthError::Store(err)),
                // Not a user's token: perhaps a service's (`client_credentials`).
                Err(AuthError::TokenInvalid(_)) => self.introspect_client_token(token).await,
                Err(_) => Ok(inactive),
            };
        }
        let Some(presented) = PresentedRefreshToken::parse(token) else {
            return Ok(inactive);
        };
        let now = self.core.clock.now();
        let Some(session) = self.core.store.session(presented.sid).await? else {
            return Ok(inactive);
        };
        let key = SessionKey::from_bytes(session.session_key);
        let live = presented.mac_is_valid(&key)
            && presented.generation == session.generation
            && !session.revoked
            && now < session.expires_at
            && self
                .core
                .store
                .user_stamp(session.user_id())?
                .is_some_and(|stamp| !stamp.disabled);
        if !live {
            return Ok(inactive);
        }
        Ok(json!({
            "active": true,
            "token_type": "refresh_token",
            "sub": session.user_id().to_string(),
            "sid": presented.sid.to_string(),
            "iat": session.created_at,
            "exp": session.expires_at,
        }))
    }

    /// RFC 7009 revocation: an access token goes on the deny list until it expires; a
    /// refresh token (any generation with a valid MAC) ends its whole session. Anything
    /// else is ignored. Durable on return.
    ///
    /// # Errors
    /// Only storage failures.
    pub async fn revoke_token(
        &self,
        token: &str,
        _hint: Option<TokenHint>,
    ) -> Result<(), AuthError> {
        let now = self.core.clock.now();
        if looks_like_jwt(token) {
            match self.verification.verify_signature(token, now) {
                Ok(claims) => {
                    if let Some(jti) = TokenId::parse(&claims.jti) {
                        self.core.store.deny_token(jti, claims.exp).await?;
                        self.core.store.wait_durable().await?;
                    }
                }
                Err(AuthError::Store(err)) => return Err(AuthError::Store(err)),
                Err(AuthError::TokenInvalid(_)) => self.revoke_client_token(token).await?,
                Err(_) => {}
            }
            return Ok(());
        }
        if let Some(presented) = PresentedRefreshToken::parse(token) {
            if let Some(session) = self.core.store.session(presented.sid).await? {
                if presented.mac_is_valid(&SessionKey::from_bytes(session.session_key)) {
                    self.sessions.revoke_session(presented.sid, now).await?;
                    self.core.store.wait_durable().await?;
                    tracing::info!(session = %presented.sid, "session revoked through /oauth/revoke");
                }
            }
        }
        Ok(())
    }

    /// Checks a service's client id and secret (constant time on the secret).
    ///
    /// # Errors
    /// `InvalidClient` for an unknown id or a wrong secret.
    pub async fn authenticate_service(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<(), AuthError> {
        let record = self
            .core
            .store
            .service(client_id)
            .await?
            .ok_or(AuthError::InvalidClient)?;
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        if bool::from(digest.ct_eq(&record.secret_digest)) {
            Ok(())
        } else {
            Err(AuthError::InvalidClient)
        }
    }
}
