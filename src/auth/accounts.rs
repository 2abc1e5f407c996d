//! The [`Accounts`] service: registration (into a tenant only by an admin or with an invitation;
//! rate-limited per client address unless an admin asks), login (rate-limited, same cost
//! and the same answer for an unknown user, a wrong password and a disabled account), the
//! caller's own record, password changes, and the bootstrap admin.

use std::net::IpAddr;

use secrecy::ExposeSecret as _;

use super::caller::{Authenticated, Freshness};
use super::password_policy::check_new_password;
use super::rate_limit::LimitKey;
use super::secrets::code_digest;
use super::{AuthError, TokenResponse, UserView};
use crate::config;
use crate::domain::{Password, TenantId, UserId, Username};
use crate::mail::EmailAddress;
use crate::secret::SecretString;
use crate::store::{AccountChange, UserRecord};
use std::sync::Arc;

use super::core::Core;
use super::password::Passwords;
use super::rate_limit::RateLimiter;
use super::sessions::Sessions;
use super::verification::Verification;

/// The plan every new account starts on.
pub const DEFAULT_PLAN: &str = "free";

/// A registration request, as received. The password and the invitation code are
/// secrets: the derived `Debug` shows them redacted.
#[derive(Debug)]
pub struct Registration {
    pub username: String,
    pub password: SecretString,
    /// The tenant to join: only an admin may place an account in a tenant.
    pub tenant: Option<String>,
    /// An invitation code: joins the invitation's tenant and uses the invitation up.
    pub invitation: Option<SecretString>,
    pub roles: Vec<String>,
    /// The address to mail, as typed; required when `auth.require_email` is on (for
    /// registrations over the API).
    pub email: Option<String>,
}

/// Accounts: registration, login, the caller's own record, password and claim changes.
pub struct Accounts {
    pub(super) core: Arc<Core>,
    pub(super) sessions: Arc<Sessions>,
    pub(super) verification: Arc<Verification>,
    pub(super) passwords: Passwords,
    pub(super) limiter: RateLimiter,
    pub(super) register_limiter: RateLimiter,
}

impl Accounts {
    pub(crate) fn new(
        core: Arc<Core>,
        sessions: Arc<Sessions>,
        verification: Arc<Verification>,
    ) -> Result<Accounts, AuthError> {
        let auth = &core.settings.auth;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let passwords = Passwords::new(auth.hashing_threads(cores))
            .map_err(|err| AuthError::Internal(err.to_string()))?;
        let limiter = |budget, name| {
            RateLimiter::new(
                budget,
                auth.rate_limit_entries,
                core.metrics.rate_limit_evictions(name),
            )
        };
        Ok(Accounts {
            limiter: limiter(auth.login_attempts, "login"),
            register_limiter: limiter(auth.register_limit, "register"),
            passwords,
            core: Arc::clone(&core),
            sessions,
            verification,
        })
    }
}

impl Accounts {
    /// An open registration from `client` (no admin's Bearer): [`Accounts::register`] within
    /// `auth.register_limit` per client address. Every attempt that gets as far as the store
    /// or the password hasher counts, created or not (a taken username probed again and
    /// again costs the prober too); a malformed request or a refused password does not.
    ///
    /// # Errors
    /// `TooManyAttempts` past the budget; otherwise as [`Accounts::register`].
    pub async fn register_from(
        &self,
        request: Registration,
        client: IpAddr,
    ) -> Result<UserView, AuthError> {
        // The demo (loopback only) registers a user at every click on this machine.
        if self.core.settings.demo.enabled && client.is_loopback() {
            return self.register(request).await;
        }
        let key = [LimitKey::address(client)];
        if let Err(wait) = self.register_limiter.check(&key, self.core.clock.instant()) {
            let budget = self.core.settings.auth.register_limit;
            return Err(AuthError::TooManyAttempts {
                retry_after_secs: wait.as_secs().max(1),
                limit: Some(format!(
                    "too many registrations from this address: auth.register_limit allows {} \
                     per {}; retry later, or register as an admin",
                    budget.max,
                    humantime::format_duration(budget.window)
                )),
            });
        }
        let outcome = self.register(request).await;
        if !matches!(
            outcome,
            Err(AuthError::InvalidRequest(_) | AuthError::PasswordTooWeak(_))
        ) {
            self.register_limiter
                .record(&key, self.core.clock.instant());
        }
        outcome
    }

    /// Registration over the API from `client`, by `bearer`'s holder if a token is
    /// presented. The rules: joining a tenant needs an admin's token (`tenant`) or an
    /// invitation (`invitation`, which also admits under `auth.registration = "admin"`: an
    /// admin granted it); with `auth.registration = "admin"`, anything else needs an
    /// admin's token too; otherwise anyone may create an account outside any tenant.
    /// Registrations not made by an admin count against `auth.register_limit` per client
    /// address. Durable on return.
    ///
    /// # Errors
    /// `Forbidden` when a tenant is named without an admin's token, or a non-admin
    /// registers under `auth.registration = "admin"`; `TokenMissing` (and the verdicts) for
    /// the token; `TooManyAttempts`; `InvitationInvalid`; and the errors of
    /// [`Accounts::register`].
    pub async fn register_over_api(
        &self,
        request: Registration,
        bearer: Option<&str>,
        client: IpAddr,
    ) -> Result<UserView, AuthError> {
        if self.core.settings.auth.require_email && request.email.is_none() {
            return Err(AuthError::InvalidRequest(
                "email: required (auth.require_email)".into(),
            ));
        }
        let admin_only = request.invitation.is_none()
            && (request.tenant.is_some()
                || self.core.settings.auth.registration == config::Registration::Admin);
        let by_admin = if admin_only {
            match bearer {
                Some(token) => {
                    self.verification.require_admin(token).await?;
                    true
                }
                None if request.tenant.is_some() => {
                    return Err(AuthError::Forbidden(
                        "joining a tenant needs an admin's token or an invitation".into(),
                    ))
                }
                None => return Err(AuthError::TokenMissing),
            }
        } else {
            // Any other token neither helps nor hurts, but an admin's is not limited.
            match bearer {
                Some(token) => self.verification.require_admin(token).await.is_ok(),
                None => false,
            }
        };
        if by_admin {
            self.register(request).await
        } else {
            self.register_from(request, client).await
        }
    }

    /// Creates an account as asked, with no check of who asks: for the command line, the
    /// bootstrap admin and [`Accounts::register_over_api`]. An invitation is checked and used
    /// up in the same write that creates the account. Durable on return.
    ///
    /// # Errors
    /// `InvalidRequest` for a refused username, password or tenant; `InvitationInvalid`;
    /// `TenantFull`; `UsernameTaken`.
    pub async fn register(&self, request: Registration) -> Result<UserView, AuthError> {
        let username = Username::parse(&request.username)
            .map_err(|why| AuthError::InvalidRequest(why.to_string()))?;
        let password = Password::parse_new(request.password)
            .map_err(|why| AuthError::InvalidRequest(why.to_string()))?;
        check_new_password(&password, username.as_str())?;
        let email = request
            .email
            .as_deref()
            .map(EmailAddress::parse)
            .transpose()
            .map_err(|why| AuthError::InvalidRequest(why.to_string()))?;
        let now = self.core.clock.now();
        let invitation = request
            .invitation
            .as_ref()
            .map(|code| code_digest(code.expose_secret()));
        let tenant = match (request.tenant.as_deref(), &invitation) {
            (Some(_), Some(_)) => {
                return Err(AuthError::InvalidRequest(
                    "tenant and invitation: give one or the other".into(),
                ))
            }
            (None, None) => None,
            (None, Some(digest)) => Some(
                // Checked before the password is hashed, so a wrong code costs no hash;
                // the write below decides.
                self.core
                    .store
                    .invitation_tenant(digest, now)
                    .await?
                    .ok_or(AuthError::InvitationInvalid)?,
            ),
            (Some(text), None) => {
                let id = TenantId::parse(text)
                    .ok_or_else(|| AuthError::InvalidRequest("tenant: not a tenant id".into()))?;
                let tenant =
                    self.core.store.tenant(id).await?.ok_or_else(|| {
                        AuthError::InvalidRequest("tenant: no such tenant".into())
                    })?;
                let taken = tenant
                    .members
                    .saturating_add(self.core.store.pending_invitations(id, now).await?);
                if tenant.max_accounts.is_some_and(|max| taken >= max) {
                    return Err(AuthError::TenantFull);
                }
                Some(id)
            }
        };
        if self.core.store.user_id_by_name(&username).await?.is_some() {
            return Err(AuthError::UsernameTaken);
        }
        if let Some(email) = &email {
            if self
                .core
                .store
                .user_id_by_email(email.key())
                .await?
                .is_some()
            {
                return Err(AuthError::EmailTaken);
            }
        }
        let password_hash = self
            .passwords
            .hash(password)
            .await
            .map_err(|err| AuthError::Internal(err.to_string()))?;
        let id = UserId::generate();
        let user = UserRecord {
            username: username.as_str().to_string(),
            password_hash,
            tenant,
            roles: request.roles,
            plan: DEFAULT_PLAN.to_string(),
            attrs: serde_json::Map::new(),
            claims_version: 1,
            not_before: 0,
            disabled: false,
            created_at: now,
            updated_at: now,
            email,
            email_verified: false,
        };
        self.core
            .store
            .create_user(id, &user, invitation.as_ref(), now)
            .await?;
        self.core.store.wait_durable().await?;
        match tenant {
            Some(tenant) if invitation.is_some() => {
                tracing::info!(user = %id, %tenant, "account registered with an invitation");
            }
            _ => tracing::info!(user = %id, "account registered"),
        }
        Ok(UserView::new(id, &user))
    }

    /// Checks a username and password and starts a session.
    ///
    /// # Errors
    /// `TooManyAttempts` past the failure budget of the username or the client address;
    /// `InvalidCredentials`, the same for an unknown user and a wrong password.
    pub async fn login(
        &self,
        username: &str,
        password: SecretString,
        client: IpAddr,
    ) -> Result<TokenResponse, AuthError> {
        let canonical = Username::parse(username).ok();
        // Keyed by digest: a made-up 16 KiB username costs the limiter 16 bytes.
        let user_key = match &canonical {
            Some(name) => LimitKey::username(name.as_str()),
            None => LimitKey::username(&username.to_lowercase()),
        };
        let keys = [user_key, LimitKey::address(client)];
        if let Err(wait) = self.limiter.check(&keys, self.core.clock.instant()) {
            self.core.metrics.login("limited");
            return Err(AuthError::TooManyAttempts {
                retry_after_secs: wait.as_secs().max(1),
                limit: None,
            });
        }
        let found = match &canonical {
            Some(name) => match self.core.store.user_id_by_name(name).await? {
                Some(id) => self.core.store.user(id).await?.map(|user| (id, user)),
                None => None,
            },
            None => None,
        };
        let phc = found.as_ref().map(|(_, user)| user.password_hash.clone());
        let matched = self
            .passwords
            .verify(Password::offered(password), phc)
            .await;
        // A disabled account answers exactly like a wrong password, and counts like one: a
        // distinct answer would confirm the password to whoever guessed it.
        let (id, user) = match found {
            Some(found) if matched && !found.1.disabled => found,
            Some(_) if matched => {
                self.limiter.record(&keys, self.core.clock.instant());
                self.core.metrics.login("disabled");
                return Err(AuthError::InvalidCredentials);
            }
            _ => {
                self.limiter.record(&keys, self.core.clock.instant());
                self.core.metrics.login("failed");
                return Err(AuthError::InvalidCredentials);
            }
        };
        self.limiter.clear(user_key);
        if self.core.settings.auth.require_verified_email && !user.email_verified {
            // Told only now, after the password matched: the answer says nothing to
            // whoever does not know it.
            self.core.metrics.login("email_unverified");
            return Err(AuthError::EmailUnverified { user: id });
        }
        self.core.metrics.login("success");
        self.sessions.start_session(id, &user).await
    }

    /// The caller's own record (the caller verified with current claims: a stale token
    /// gets `TokenStale` before it gets here).
    ///
    /// # Errors
    /// `TokenRevoked` when the user is gone; storage failures.
    pub async fn me(&self, caller: &Authenticated) -> Result<UserView, AuthError> {
        let user = self
            .core
            .store
            .user(caller.user_id)
            .await?
            .ok_or(AuthError::TokenRevoked)?;
        Ok(UserView::new(caller.user_id, &user))
    }

    /// Changes the caller's password, revokes every other session and rotates the caller's
    /// own. Durable on return.
    ///
    /// # Errors
    /// `InvalidCredentials` for a wrong current password; `InvalidRequest` for a refused new
    /// one.
    pub async fn change_password(
        &self,
        token: &str,
        current: SecretString,
        new: SecretString,
    ) -> Result<TokenResponse, AuthError> {
        let caller = self
            .verification
            .authenticate(token, Freshness::AllowStale)
            .await?;
        let new =
            Password::parse_new(new).map_err(|why| AuthError::InvalidRequest(why.to_string()))?;
        let current_user = self
            .core
            .store
            .user(caller.user_id)
            .await?
            .ok_or(AuthError::TokenRevoked)?;
        check_new_password(&new, &current_user.username)?;
        self.check_current_password(&current_user, current).await?;
        let password_hash = self
            .passwords
            .hash(new)
            .await
            .map_err(|err| AuthError::Internal(err.to_string()))?;
        // The new hash, `not_before` and the end of every other session: one write.
        let user = self
            .sessions
            .end_user_sessions_and(
                caller.user_id,
                Some(caller.session_id),
                AccountChange::NewPassword(&password_hash),
            )
            .await?
            .ok_or(AuthError::TokenRevoked)?;
        let (response, generation) = self.sessions.rotate_session(&caller, &user).await?;
        // The other sessions' revocation is in the change log: seen by every node first.
        self.core.store.wait_durable().await?;
        // Durable, and the new pair about to leave: the previous refresh token becomes a
        // replay.
        self.sessions
            .acknowledge(caller.session_id, generation)
            .await?;
        tracing::info!(user = %caller.user_id, "password changed; other sessions revoked");
        Ok(response)
    }

    /// Checks the password a signed-in user typed again to confirm a sensitive change (a
    /// new password, a new address). Failures count against the account's login budget,
    /// so a stolen token cannot be used to guess the password.
    ///
    /// # Errors
    /// `TooManyAttempts` past the budget; `InvalidCredentials` when it does not match.
    pub(crate) async fn check_current_password(
        &self,
        user: &UserRecord,
        offered: SecretString,
    ) -> Result<(), AuthError> {
        let user_key = LimitKey::username(&user.username);
        if let Err(wait) = self.limiter.check(&[user_key], self.core.clock.instant()) {
            return Err(AuthError::TooManyAttempts {
                retry_after_secs: wait.as_secs().max(1),
                limit: None,
            });
        }
        let phc = Some(user.password_hash.clone());
        if !self.passwords.verify(Password::offered(offered), phc).await {
            self.limiter.record(&[user_key], self.core.clock.instant());
            return Err(AuthError::InvalidCredentials);
        }
        Ok(())
    }

    /// Creates the first admin from `bootstrap.*` when no account of that name exists.
    ///
    /// # Errors
    /// An invalid bootstrap username or password, or a storage failure.
    pub async fn bootstrap_admin(&self) -> Result<(), AuthError> {
        let (Some(username), Some(password)) = (
            self.core.settings.bootstrap.admin_username.clone(),
            self.core.settings.bootstrap.admin_password.clone(),
        ) else {
            return Ok(());
        };
        let canonical = Username::parse(&username)
            .map_err(|why| AuthError::InvalidRequest(format!("bootstrap.admin_username: {why}")))?;
        if self.core.store.user_id_by_name(&canonical).await?.is_some() {
            return Ok(());
        }
        match self
            .register(Registration {
                username,
                password,
                tenant: None,
                invitation: None,
                roles: vec!["admin".to_string()],
                email: None,
            })
            .await
        {
            Ok(view) => {
                tracing::info!(user = %view.id, "bootstrap admin created");
                Ok(())
            }
            Err(AuthError::UsernameTaken) => Ok(()),
            Err(AuthError::InvalidRequest(why)) => Err(AuthError::InvalidRequest(format!(
                "bootstrap.admin_password: {why}"
            ))),
            Err(err) => Err(err),
        }
    }
}
