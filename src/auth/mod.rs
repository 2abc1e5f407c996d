//! The flows: register (into a tenant by an admin or an invitation), log in, refresh, log
//! out, change a password, invitations, and the verdict on a presented access token. They
//! know nothing of HTTP (answers are plain types and [`AuthError`]) and reach the store
//! only through its typed methods.
//!
//! [`Auth`] holds one service per area over a small shared core (`core.rs`: the store,
//! settings, clock, metrics, key ring and minting): [`Verification`] at the bottom,
//! [`Sessions`] on it, [`Accounts`] and [`Administration`] on both, [`Introspection`] for
//! other services and [`Keys`] for the signing keys. Each service holds only the others it
//! calls, so one area can be built, and tested, without the rest.
//!
//! Every flow whose outcome the client is told about waits for the group-commit flush
//! before it returns, so an acknowledged write survives a crash.

mod accounts;
mod acknowledgements;
mod admin;
mod backup;
mod caller;
mod claims;
mod client_credentials;
mod core;
mod demo;
#[cfg(feature = "smtp")]
mod email;
mod feed;
mod hash_pool;
mod introspection;
mod invitations;
pub mod keys;
pub mod password;
pub mod password_policy;
pub mod rate_limit;
mod refresh_verdict;
mod secrets;
mod services;
mod sessions;
mod verification;

pub use accounts::Accounts;
pub use admin::Administration;
#[cfg(feature = "smtp")]
pub use email::{Email, ANSWER_FLOOR};
pub use feed::{Feed, FeedEvent, FeedPage, Snapshot};
pub use introspection::Introspection;
pub use keys::Keys;
pub use sessions::Sessions;
pub use verification::Verification;

pub use accounts::Registration;
pub use admin::{SessionView, TenantView, ADMIN_ROLE};
pub use caller::Freshness;
pub use claims::{RefreshedToken, UserField, UserPatch, ADMIN_FIELDS};
pub use client_credentials::ClientTokenResponse;
pub use demo::{DemoKey, DEMO_ADMIN};
pub use introspection::TokenHint;
pub use invitations::{
    InvitationView, NewInvitation, DEFAULT_INVITATION_TTL_SECS, MAX_INVITATION_TTL_SECS,
};
pub use services::{NewService, ServiceView};
pub use sessions::{RefreshOutcome, SessionProof};

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

pub use caller::Authenticated;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::UserId;
use crate::secret::SecretString;
use crate::store::{Store, StoreError, TenantWriteError, UserRecord, UserWriteError};
use crate::telemetry::{Metrics, StoreGauges};
use crate::tokens::KeyRing;
use core::Core;

/// Why a flow said no. `http::error` alone turns these into status codes.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A new password among the first guesses an attacker makes (`password_policy`).
    #[error("password too weak: {0}")]
    PasswordTooWeak(String),
    #[error("username taken")]
    UsernameTaken,
    /// Another account has this address.
    #[error("email taken")]
    EmailTaken,
    /// A mail link that cannot be redeemed: unknown, used, superseded, expired, for
    /// another purpose or another address alike.
    #[error("link invalid")]
    LinkInvalid,
    /// `mail.transport = "none"`: nothing can be mailed.
    #[error("mail disabled")]
    MailDisabled,
    /// `auth.require_verified_email` and the account's address is not verified (told
    /// only after the password was checked).
    #[error("email unverified")]
    EmailUnverified { user: UserId },
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many attempts")]
    TooManyAttempts {
        retry_after_secs: u64,
        /// Which budget ran out, for the person who hit it; `None`: failed logins.
        limit: Option<String>,
    },
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
    /// Change-feed events after the id asked for were evicted.
    #[error("events gone: {reason}")]
    EventsGone { reason: String },
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
            UserWriteError::EmailTaken => AuthError::EmailTaken,
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
    /// The address mail goes to, `null` without one.
    pub email: Option<String>,
    pub email_verified: bool,
}

impl UserView {
    /// The public view of a stored user.
    pub fn new(id: UserId, user: &UserRecord) -> UserView {
        UserView {
            id: id.to_string(),
            username: user.username.clone(),
            tenant: user.tenant.map(|tenant| tenant.to_string()),
            roles: user.roles.clone(),
            plan: user.plan.clone(),
            attrs: user.attrs.clone(),
            claims_version: user.claims_version,
            disabled: user.disabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
            email: user.email.as_ref().map(|email| email.as_str().to_string()),
            email_verified: user.email_verified,
        }
    }
}

/// The flows, by area, over one shared core. Each area is its own service with the few
/// others it calls: verification below everything, sessions on it, accounts and
/// administration on both.
pub struct Auth {
    /// Registration, login, the caller's own account, password and claim changes.
    pub accounts: Arc<Accounts>,
    /// Refresh, logout, the end of sessions.
    pub sessions: Arc<Sessions>,
    /// The verdict on a presented access token.
    pub verification: Arc<Verification>,
    /// Users, tenants, invitations, service credentials, backups.
    pub admin: Administration,
    /// RFC 7662 introspection and RFC 7009 revocation for other services.
    pub introspection: Introspection,
    /// The signing keys and the JWKS.
    pub keys: Keys,
    /// The change feed for services that verify tokens themselves.
    pub feed: Feed,
    /// Mail: verification, password reset, magic links (a build without the `smtp`
    /// feature has no mail: its mail routes answer 501).
    #[cfg(feature = "smtp")]
    pub email: Arc<Email>,
    /// The key the demo's admin panel shows, when `demo.enabled`.
    pub demo_key: Option<DemoKey>,
    core: Arc<Core>,
}

impl Auth {
    /// Wires the flows to an open store and a loaded key ring.
    ///
    /// # Errors
    /// The password hasher could not be built.
    pub async fn new(
        store: Arc<Store>,
        settings: Settings,
        ring: KeyRing,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Result<Auth, AuthError> {
        // Session deny entries must cover tokens minted under any lifetime this store has
        // been configured with.
        let longest_access_ttl = store
            .note_access_ttl(settings.tokens.access_ttl.as_secs())
            .await?;
        let core = Arc::new(Core::new(
            store,
            settings,
            ring,
            metrics,
            clock,
            longest_access_ttl,
        ));
        let verification = Arc::new(Verification::new(Arc::clone(&core)));
        let sessions = Arc::new(Sessions::new(Arc::clone(&core), Arc::clone(&verification)));
        let accounts = Arc::new(Accounts::new(
            Arc::clone(&core),
            Arc::clone(&sessions),
            Arc::clone(&verification),
        )?);
        #[cfg(feature = "smtp")]
        let mail_key = crate::mail::key_file::load(&core.settings).map_err(AuthError::Internal)?;
        #[cfg(feature = "smtp")]
        let email = Arc::new(Email::new(
            Arc::clone(&core),
            Arc::clone(&sessions),
            Arc::clone(&verification),
            Arc::clone(&accounts),
            mail_key,
        ));
        Ok(Auth {
            admin: Administration::new(
                Arc::clone(&core),
                Arc::clone(&sessions),
                Arc::clone(&verification),
                Arc::clone(&accounts),
            ),
            introspection: Introspection::new(
                Arc::clone(&core),
                Arc::clone(&verification),
                Arc::clone(&sessions),
            ),
            keys: Keys::new(Arc::clone(&core)),
            feed: Feed::new(Arc::clone(&core)),
            demo_key: core.settings.demo.enabled.then(DemoKey::generate),
            #[cfg(feature = "smtp")]
            email,
            accounts,
            sessions,
            verification,
            core,
        })
    }

    /// The clock the flows read.
    pub fn clock(&self) -> &Clock {
        &self.core.clock
    }

    /// The settings the flows run with.
    pub fn settings(&self) -> &Settings {
        &self.core.settings
    }

    /// Whether this server can take every request now (`/readyz`): the store makes
    /// writes durable, its writes are not stuck on a stalled disk, and a signing key can
    /// sign.
    ///
    /// # Errors
    /// `Unavailable` naming what is missing; a store that is not taking writes is a
    /// storage fault (503 `storage_unavailable`).
    pub fn readiness(&self) -> Result<(), AuthError> {
        let store = &self.core.store;
        if !store.is_writable() {
            return Err(AuthError::Store(StoreError::Unavailable(
                "the store is not taking writes".into(),
            )));
        }
        if let Some(stalled) = store.writes_stalled() {
            return Err(AuthError::Store(StoreError::Unavailable(format!(
                "store writes have waited on the disk for {} s with none finishing",
                stalled.as_secs()
            ))));
        }
        if self
            .core
            .key_ring()
            .signing_key(self.core.clock.now())
            .is_none()
        {
            return Err(AuthError::Unavailable("no signing key is loaded"));
        }
        Ok(())
    }

    /// The store's gauges for `/metrics`.
    pub fn store_gauges(&self) -> StoreGauges {
        let store = &self.core.store;
        StoreGauges {
            deny_entries: store.deny_entries(),
            sessions: store.sessions_held(),
            bytes: store.size_on_disk(),
            health: store.health(),
            peer_wait: store.peer_wait(),
            writes_stalled: store.writes_stalled(),
        }
    }
}
