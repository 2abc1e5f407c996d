//! The `client_credentials` grant (RFC 6749 §4.4): a service trades its client id and
//! secret for a short-lived access token of its own ([`ClientClaims`]: `sub` and
//! `client_id` are the client id; no session, so no refresh token, RFC 6749 §4.4.3).
//!
//! Such a token is active for introspection while it is unexpired, not on the deny list
//! and its service still exists: deleting a service ends its grants and its tokens, as
//! deleting a user ends theirs. Revocation puts its `jti` on the deny list until `exp`.

use serde::Serialize;
use serde_json::{json, Value};

use super::introspection::Introspection;
use super::AuthError;
use crate::domain::TokenId;
use crate::secret::SecretString;
use crate::store::DenyKind;
use crate::tokens::ClientClaims;

/// The grant's answer (RFC 6749 §5.1, without a refresh token).
#[derive(Debug, Clone, Serialize)]
pub struct ClientTokenResponse {
    #[serde(serialize_with = "crate::secret::serialize")]
    pub access_token: SecretString,
    pub token_type: &'static str,
    pub expires_in: u64,
}

impl Introspection {
    /// Authenticates a service and mints its access token.
    ///
    /// # Errors
    /// `InvalidClient` for an unknown client id or a wrong secret.
    pub async fn grant_client_credentials(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<ClientTokenResponse, AuthError> {
        self.authenticate_service(client_id, secret).await?;
        let now = self.core.clock.now();
        let (token, claims) = self.core.mint_client_access(client_id, now)?;
        tracing::debug!(%client_id, "client_credentials token issued");
        Ok(ClientTokenResponse {
            access_token: token.into(),
            token_type: "Bearer",
            expires_in: claims.exp.saturating_sub(now),
        })
    }

    /// A service's token that verifies now, with its `jti`; `None` for anything else.
    pub(super) fn verify_client_token(
        &self,
        token: &str,
        now: u64,
    ) -> Option<(ClientClaims, TokenId)> {
        let claims = self
            .core
            .tokens
            .verify_client(&self.core.key_ring(), token, now)
            .ok()?;
        let jti = TokenId::parse(&claims.jti)?;
        (claims.sub == claims.client_id).then_some((claims, jti))
    }

    /// Introspection of a service's token: active while unexpired, not denied and its
    /// service exists.
    ///
    /// # Errors
    /// Storage failures.
    pub(super) async fn introspect_client_token(&self, token: &str) -> Result<Value, AuthError> {
        let inactive = json!({ "active": false });
        let Some((claims, jti)) = self.verify_client_token(token, self.core.clock.now()) else {
            return Ok(inactive);
        };
        if self
            .core
            .store
            .is_denied(DenyKind::Token, jti.as_bytes(), claims.exp)?
            || self.core.store.service(&claims.client_id).await?.is_none()
        {
            return Ok(inactive);
        }
        Ok(json!({
            "active": true,
            "token_type": "access_token",
            "iss": claims.iss,
            "sub": claims.sub,
            "client_id": claims.client_id,
            "aud": claims.aud,
            "exp": claims.exp,
            "iat": claims.iat,
            "jti": claims.jti,
        }))
    }

    /// Revocation of a service's token: its `jti` denied until `exp`. Anything that is not
    /// one is ignored. Durable on return.
    ///
    /// # Errors
    /// Storage failures.
    pub(super) async fn revoke_client_token(&self, token: &str) -> Result<(), AuthError> {
        if let Some((claims, jti)) = self.verify_client_token(token, self.core.clock.now()) {
            self.core.store.deny_token(jti, claims.exp).await?;
            self.core.store.wait_durable().await?;
            tracing::info!(client_id = %claims.client_id, "service token revoked through /oauth/revoke");
        }
        Ok(())
    }
}
