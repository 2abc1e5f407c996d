//! Who a verified access token speaks for ([`Authenticated`]) and which tokens a route
//! accepts ([`Freshness`]): what verification hands every flow, kept apart from the
//! verification itself so the core that mints tokens and the verifier that checks them
//! need not know each other.

use std::sync::Arc;

use crate::domain::{SessionId, TokenId, UserId};
use crate::secret::SecretString;
use crate::store::UserStamp;
use crate::tokens::AccessClaims;

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
