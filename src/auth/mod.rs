//! The flows: register (into a tenant by an admin or an invitation), log in, refresh, log
//! out, change a password, invitations, and the verdict on a presented access token. They
//! know nothing of HTTP (answers are plain types and [`AuthError`]) and reach the store
//! only through its typed methods.
//!
//! Every flow whose outcome the client is told about waits for the group-commit flush
//! before it returns, so an acknowledged write survives a crash.

mod accounts;
mod admin;
mod backup;
mod claims;
mod hash_pool;
mod introspection;
mod invitations;
pub mod keyring;
pub mod password;
pub mod rate_limit;
mod services;
mod sessions;
mod verdict;

pub use accounts::Registration;
pub use admin::{SessionView, TenantView, ADMIN_ROLE};
pub use claims::RefreshedToken;
pub use introspection::TokenHint;
pub use invitations::{
    InvitationView, NewInvitation, DEFAULT_INVITATION_TTL_SECS, MAX_INVITATION_TTL_SECS,
};
pub use services::{NewService, ServiceView};
pub use sessions::RefreshOutcome;
pub use verdict::Freshness;

use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use serde_json::{Map, Value};

pub use verdict::Authenticated;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{SessionId, UserId};
use crate::secret::SecretString;
use crate::store::{Store, StoreError, TenantWriteError, UserRecord, UserWriteError};
use crate::telemetry::{Metrics, StoreGauges};
use crate::tokens::{AccessTokens, KeyRing, VerifiedTokenCache};
use password::Passwords;
use rate_limit::RateLimiter;

/// Why a flow said no. `http::error` alone turns these into status codes.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("username taken")]
    UsernameTaken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("token missing")]
    TokenMissing,
    #[error("token invalid: {0}")]
    TokenInvalid(&'static str),
    #[error("token expired")]
    TokenExpired,
    #[error("token stale")]
    TokenStale,
    #[error("token revoked")]
    TokenRevoked,
    #[error("invalid grant: {0}")]
    InvalidGrant(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("invalid client credentials")]
    InvalidClient,
    #[error("tenant is full")]
    TenantFull,
    #[error("tenant still has members")]
    TenantNotEmpty,
    /// An invitation code that admits no one: unknown, used, revoked or expired alike.
    #[error("invitation not valid")]
    InvitationInvalid,
    #[error("the tenant holds too many invitations")]
    TooManyInvitations,
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<UserWriteError> for AuthError {
    fn from(err: UserWriteError) -> Self {
        match err {
            UserWriteError::UsernameTaken => AuthError::UsernameTaken,
            UserWriteError::NotFound => AuthError::NotFound,
            UserWriteError::UnknownTenant => {
                AuthError::InvalidRequest("tenant: no such tenant".into())
            }
            UserWriteError::TenantFull => AuthError::TenantFull,
            UserWriteError::InvitationInvalid => AuthError::InvitationInvalid,
            UserWriteError::Store(err) => AuthError::Store(err),
        }
    }
}

impl From<TenantWriteError> for AuthError {
    fn from(err: TenantWriteError) -> Self {
        match err {
            TenantWriteError::NotFound => AuthError::NotFound,
            TenantWriteError::NotEmpty => AuthError::TenantNotEmpty,
            TenantWriteError::Store(err) => AuthError::Store(err),
        }
    }
}

/// A token endpoint's answer (RFC 6749 §5.1 shape). The JSON body carries the tokens;
/// `Debug` shows them redacted.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    #[serde(serialize_with = "crate::secret::serialize")]
    pub access_token: SecretString,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::secret::serialize_option"
    )]
    pub refresh_token: Option<SecretString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<u64>,
    pub session_id: String,
}

/// A user as the API shows it: never the password hash.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserView {
    pub id: String,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub plan: String,
    pub attrs: Map<String, Value>,
    pub claims_version: u64,
    pub disabled: bool,
    pub created_at: u64,
    pub updated_at: u64,
}

impl UserView {
    /// The public view of a stored user.
    pub fn new(id: UserId, user: &UserRecord) -> UserView {
        UserView {
            id: id.to_string(),
            username: user.username.clone(),
            tenant: user.tenant_id().map(|tenant| tenant.to_string()),
            roles: user.roles.clone(),
            plan: user.plan.clone(),
            attrs: user.attrs.clone(),
            claims_version: user.claims_version,
            disabled: user.disabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// Serialises refreshes of one session: 256 stripes keyed by the session id, so two tabs
/// refreshing at once take turns while unrelated sessions rarely meet.
struct SessionLocks(Vec<tokio::sync::Mutex<()>>);

impl SessionLocks {
    fn new() -> SessionLocks {
        SessionLocks((0..256).map(|_| tokio::sync::Mutex::new(())).collect())
    }

    fn stripe(&self, sid: SessionId) -> usize {
        let bytes = sid.as_bytes();
        (usize::from(bytes[15]) ^ usize::from(bytes[14])) % self.0.len()
    }

    fn for_session(&self, sid: SessionId) -> &tokio::sync::Mutex<()> {
        &self.0[self.stripe(sid)]
    }

    /// The locks of several sessions, taken in stripe order so that two callers locking
    /// overlapping sets cannot deadlock.
    async fn lock_all(&self, sids: &[SessionId]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
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

/// Everything the flows share.
pub struct Auth {
    store: Arc<Store>,
    settings: Settings,
    tokens: AccessTokens,
    verified: VerifiedTokenCache,
    ring: RwLock<Arc<KeyRing>>,
    passwords: Passwords,
    limiter: RateLimiter,
    register_limiter: RateLimiter,
    session_locks: SessionLocks,
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl Auth {
    /// Wires the flows to an open store and a loaded key ring.
    ///
    /// # Errors
    /// The password hasher could not be built.
    pub fn new(
        store: Arc<Store>,
        settings: Settings,
        ring: KeyRing,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Result<Auth, AuthError> {
        // Session deny entries must cover tokens minted under any lifetime this store has
        // been configured with.
        store.note_access_ttl(settings.tokens.access_ttl.as_secs())?;
        let hashing_slots = std::thread::available_parallelism().map_or(2, usize::from);
        let passwords =
            Passwords::new(hashing_slots).map_err(|err| AuthError::Internal(err.to_string()))?;
        Ok(Auth {
            tokens: AccessTokens::new(&settings.tokens),
            verified: VerifiedTokenCache::new(
                settings.tokens.verified_cache_entries,
                settings.tokens.leeway.as_secs(),
            ),
            limiter: RateLimiter::new(
                settings.auth.login_attempts,
                settings.auth.rate_limit_entries,
                metrics.rate_limit_evictions("login"),
            ),
            register_limiter: RateLimiter::new(
                settings.auth.register_limit,
                settings.auth.rate_limit_entries,
                metrics.rate_limit_evictions("register"),
            ),
            ring: RwLock::new(Arc::new(ring)),
            session_locks: SessionLocks::new(),
            store,
            settings,
            passwords,
            metrics,
            clock,
        })
    }

    /// The clock the flows read.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The settings the flows run with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The key ring in force.
    pub fn key_ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.ring.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether this server can take every request now (`/readyz`): the store makes
    /// writes durable and a signing key can sign.
    ///
    /// # Errors
    /// `Unavailable` naming what is missing; a store that is not taking writes is a
    /// storage fault (503 `storage_unavailable`).
    pub fn readiness(&self) -> Result<(), AuthError> {
        if !self.store.is_writable() {
            return Err(AuthError::Store(StoreError::Unavailable(
                "the store is not taking writes".into(),
            )));
        }
        if self.key_ring().signing_key(self.clock.now()).is_none() {
            return Err(AuthError::Unavailable("no signing key is loaded"));
        }
        Ok(())
    }

    /// The store's gauges for `/metrics`.
    pub fn store_gauges(&self) -> StoreGauges {
        StoreGauges {
            deny_entries: self.store.deny_entries(),
            sessions: self.store.sessions_held(),
            bytes: self.store.size_on_disk(),
            health: self.store.health(),
        }
    }
}
