//! The [`Email`] service (issue 21): asking for a mail (verification, password reset,
//! magic link, an admin's reset) and redeeming the link it carries.
//!
//! Asking queues a mail in the store and answers once the queue entry is durable; the
//! sender (`tasks::mail_sender`) delivers it after, with retries, so a mail server that is
//! down delays a mail and never fails the request. The token in a link is never stored:
//! the server's [`MailKey`] derives it from the queue entry, and a presented token is
//! checked against the entry it names before the store redeems it.
//!
//! Asking by address (forgot password, magic link) answers the same for an address no
//! account has: the same status and body, the same limiter charges, the same store round
//! trips, and no answer before [`ANSWER_FLOOR`] after the request came in, so what is left
//! of the difference (a queue write) is not visible in the timing either.
//!
//! Every request for a mail is charged to the client's address and to the account's
//! address (`auth.mail_limit`), before anything else is done.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::accounts::Accounts;
use super::caller::Freshness;
use super::core::Core;
use super::password_policy::check_new_password;
use super::rate_limit::{LimitKey, RateLimiter};
use super::sessions::Sessions;
use super::verification::Verification;
use super::{AuthError, TokenResponse, UserView};
use crate::config::MailTransportKind;
use crate::domain::{Password, UserId};
use crate::mail::{EmailAddress, LinkPurpose, MailKey, PresentedLinkToken};
use crate::secret::SecretString;
use crate::store::{LinkEffect, MailWriteError, QueuedMail, UserRecord};

/// The earliest an answer to a request by address leaves, after the request came in.
pub const ANSWER_FLOOR: Duration = Duration::from_millis(200);

/// Mail requests and link redemptions.
pub struct Email {
    core: Arc<Core>,
    sessions: Arc<Sessions>,
    verification: Arc<Verification>,
    accounts: Arc<Accounts>,
    /// `None` with `mail.transport = "none"`: every mail route answers 501.
    key: Option<Arc<MailKey>>,
    limiter: RateLimiter,
    /// Wakes the sender when a mail was queued.
    queued: Arc<Notify>,
}

impl Email {
    pub(crate) fn new(
        core: Arc<Core>,
        sessions: Arc<Sessions>,
        verification: Arc<Verification>,
        accounts: Arc<Accounts>,
        key: Option<MailKey>,
    ) -> Email {
        let auth = &core.settings.auth;
        let limiter = RateLimiter::new(
            auth.mail_limit,
            auth.rate_limit_entries,
            core.metrics.rate_limit_evictions("mail"),
        );
        let key = match core.settings.mail.transport {
            MailTransportKind::None => None,
            _ => key.map(Arc::new),
        };
        Email {
            core,
            sessions,
            verification,
            accounts,
            key,
            limiter,
            queued: Arc::new(Notify::new()),
        }
    }

    /// The key links are derived with, for the sender; `None` when mail is off.
    pub fn key(&self) -> Option<Arc<MailKey>> {
        self.key.clone()
    }

    /// What the sender waits on between passes.
    pub fn queued_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.queued)
    }

    fn require_mail(&self) -> Result<&MailKey, AuthError> {
        self.key.as_deref().ok_or(AuthError::MailDisabled)
    }

    /// Charges one mail request to `keys`, or refuses it past `auth.mail_limit`.
    fn charge(&self, keys: &[LimitKey]) -> Result<(), AuthError> {
        let now = self.core.clock.instant();
        if let Err(wait) = self.limiter.check(keys, now) {
            let budget = self.core.settings.auth.mail_limit;
            return Err(AuthError::TooManyAttempts {
                retry_after_secs: wait.as_secs().max(1),
                limit: Some(format!(
                    "too many mail requests: auth.mail_limit allows {} per {} for an address \
                     and for an account; retry later",
                    budget.max,
                    humantime::format_duration(budget.window)
                )),
            });
        }
        self.limiter.record(keys, now);
        Ok(())
    }

    /// Queues a mail of `purpose` to `to` for `user`; durable on return.
    async fn queue(
        &self,
        user: UserId,
        to: &EmailAddress,
        purpose: LinkPurpose,
    ) -> Result<(), AuthError> {
        let now = self.core.clock.now();
        let ttl = self.core.settings.mail.link_ttl.as_secs();
        let mail = QueuedMail::new(user, purpose, to.clone(), now, ttl);
        match self.core.store.queue_mail(&mail, now).await {
            Ok(()) => {}
            Err(MailWriteError::UserGone | MailWriteError::LinkInvalid(_)) => {
                return Err(AuthError::NotFound);
            }
            Err(MailWriteError::Store(err)) => return Err(err.into()),
        }
        self.core.store.wait_durable_unlogged().await?;
        self.queued.notify_one();
        tracing::info!(%user, mail = %mail.id, %purpose, "mail queued");
        Ok(())
    }

    /// `POST /auth/email/verification`: a `verify-email` mail to the caller's address.
    ///
    /// # Errors
    /// `MailDisabled`; the token's errors; `InvalidRequest` without an address;
    /// `TooManyAttempts`.
    pub async fn request_verification(&self, token: &str, client: IpAddr) -> Result<(), AuthError> {
        self.require_mail()?;
        let caller = self
            .verification
            .authenticate(token, Freshness::AllowStale)
            .await?;
        let user = self.user(caller.user_id).await?;
        let email = user.email.ok_or_else(|| {
            AuthError::InvalidRequest("email: the account has no address; set one first".into())
        })?;
        self.charge(&[LimitKey::address(client), LimitKey::email(email.key())])?;
        self.queue(caller.user_id, &email, LinkPurpose::VerifyEmail)
            .await
    }

    /// After a login refused for an unverified address: a `verify-email` mail to it, when
    /// mail is on, the account has an address and its budget allows; nothing otherwise
    /// (the refusal stands either way).
    pub async fn remind_to_verify(&self, user: UserId, client: IpAddr) {
        if self.require_mail().is_err() {
            return;
        }
        let outcome = async {
            let record = self.user(user).await?;
            let Some(email) = record.email else {
                return Ok(());
            };
            self.charge(&[LimitKey::address(client), LimitKey::email(email.key())])?;
            self.queue(user, &email, LinkPurpose::VerifyEmail).await
        }
        .await;
        if let Err(err) = outcome {
            tracing::debug!(%user, error = %err, "no verification reminder mailed");
        }
    }

    /// `POST /auth/password/forgot` (`reset-password`) and `POST /auth/magic-link`
    /// (`magic`): a mail of `purpose` when an enabled account has `email`, and the same
    /// answer, after the same work, when none has.
    ///
    /// # Errors
    /// `MailDisabled`; `InvalidRequest` for what is not an address; `TooManyAttempts`.
    pub async fn request_by_address(
        &self,
        email: &str,
        client: IpAddr,
        purpose: LinkPurpose,
    ) -> Result<(), AuthError> {
        let floor = tokio::time::Instant::now() + ANSWER_FLOOR;
        self.require_mail()?;
        let email =
            EmailAddress::parse(email).map_err(|why| AuthError::InvalidRequest(why.to_string()))?;
        self.charge(&[LimitKey::address(client), LimitKey::email(email.key())])?;
        let outcome = self.mail_if_known(&email, purpose).await;
        tokio::time::sleep_until(floor).await;
        outcome
    }

    /// Queues the mail when an enabled account has `email`; otherwise makes the same
    /// store round trips and queues nothing.
    async fn mail_if_known(
        &self,
        email: &EmailAddress,
        purpose: LinkPurpose,
    ) -> Result<(), AuthError> {
        let store = &self.core.store;
        // Without an account, the read a known address makes is made all the same.
        let id = store
            .user_id_by_email(email.key())
            .await?
            .unwrap_or(UserId::from_bytes([0; 16]));
        let found = store.user(id).await?.map(|user| (id, user));
        match found {
            Some((id, user)) if !user.disabled && user.email_key() == Some(email.key()) => {
                let to = user.email.as_ref().unwrap_or(email);
                match self.queue(id, to, purpose).await {
                    // Deleted meanwhile: the answer stays the one for an unknown address.
                    Err(AuthError::NotFound) => Ok(()),
                    outcome => outcome,
                }
            }
            _ => {
                store.wait_durable_unlogged().await?;
                tracing::debug!(%purpose, "mail asked for an address no enabled account has");
                Ok(())
            }
        }
    }

    /// `POST /admin/users/{id}/password-reset`: a `reset-password` mail to the user.
    ///
    /// # Errors
    /// `MailDisabled`; `NotFound`; `InvalidRequest` without an address; `TooManyAttempts`
    /// past the account's budget.
    pub async fn send_password_reset(&self, id: UserId) -> Result<(), AuthError> {
        self.require_mail()?;
        let user = self.core.store.user(id).await?.ok_or(AuthError::NotFound)?;
        let email = user.email.ok_or_else(|| {
            AuthError::InvalidRequest("email: the user has no address to mail".into())
        })?;
        self.charge(&[LimitKey::email(email.key())])?;
        self.queue(id, &email, LinkPurpose::ResetPassword).await
    }

    /// `POST /auth/email/verify`: the address is verified; `uv` moves if it was not.
    ///
    /// # Errors
    /// `MailDisabled`; `LinkInvalid`; storage.
    pub async fn verify_email(&self, token: &str) -> Result<UserView, AuthError> {
        let (id, user) = self
            .redeem(token, LinkPurpose::VerifyEmail, |_| {
                Ok(LinkEffect::ProveAddress)
            })
            .await?;
        self.core.store.wait_durable().await?;
        tracing::info!(user = %id, "email address verified");
        Ok(UserView::new(id, &user))
    }

    /// `POST /auth/magic-link/redeem`: a new session.
    ///
    /// # Errors
    /// `MailDisabled`; `LinkInvalid`; storage.
    pub async fn redeem_magic_link(&self, token: &str) -> Result<TokenResponse, AuthError> {
        let (_, owner) = self.link_owner(token, LinkPurpose::Magic).await?;
        let was_verified = owner.email_verified;
        let (id, user) = self
            .redeem(token, LinkPurpose::Magic, |_| Ok(LinkEffect::ProveAddress))
            .await?;
        if !was_verified {
            // The address's owner proves it for the first time: whoever registered it
            // before them (and may know the password) is signed out everywhere.
            self.sessions.end_user_sessions(id, None).await?;
        }
        self.core.store.wait_durable().await?;
        tracing::info!(user = %id, "signed in with a magic link");
        self.core.metrics.login("magic_link");
        self.sessions.start_session(id, &user).await
    }

    /// `POST /auth/password/reset`: the new password, every session ended, a new one
    /// started; the change log carries a credential change.
    ///
    /// # Errors
    /// `MailDisabled`; `LinkInvalid`; `InvalidRequest` / `PasswordTooWeak` for the new
    /// password (the link stays usable); storage.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: SecretString,
    ) -> Result<TokenResponse, AuthError> {
        let password = Password::parse_new(new_password)
            .map_err(|why| AuthError::InvalidRequest(why.to_string()))?;
        // The link is checked (MAC, entry) before the password is hashed: a forged token
        // costs no hash.
        let (mail_user, owner) = self.link_owner(token, LinkPurpose::ResetPassword).await?;
        check_new_password(&password, &owner.username)?;
        let hash = self
            .accounts
            .passwords
            .hash(password)
            .await
            .map_err(|err| AuthError::Internal(err.to_string()))?;
        // Every session ends before the password changes, so no failure or crash between
        // the two writes leaves a session alive under the new password (a retry finds the
        // link unused); and again after, for one a login with the old password started in
        // between.
        self.sessions.end_user_sessions(mail_user, None).await?;
        self.core.store.wait_durable().await?;
        let (id, user) = self
            .redeem(token, LinkPurpose::ResetPassword, |_| {
                Ok(LinkEffect::NewPassword(hash.clone()))
            })
            .await?;
        self.sessions.end_user_sessions(id, None).await?;
        self.core.store.wait_durable().await?;
        tracing::info!(user = %id, "password reset by mail; every session ended");
        self.sessions.start_session(id, &user).await
    }

    /// The user a presented link belongs to (id and record as it stands before the
    /// redemption), the link checked as far as it can be without redeeming it.
    async fn link_owner(
        &self,
        token: &str,
        purpose: LinkPurpose,
    ) -> Result<(UserId, UserRecord), AuthError> {
        let mail = self.checked_mail(token).await?;
        if mail.purpose != purpose {
            return Err(AuthError::LinkInvalid);
        }
        let user = self
            .core
            .store
            .user(mail.user)
            .await?
            .ok_or(AuthError::LinkInvalid)?;
        Ok((mail.user, user))
    }

    /// The queue entry a presented token names, once its MAC matches.
    async fn checked_mail(&self, token: &str) -> Result<QueuedMail, AuthError> {
        let key = self.require_mail()?;
        let presented = PresentedLinkToken::parse(token).map_err(|_| AuthError::LinkInvalid)?;
        let mail = self
            .core
            .store
            .queued_mail(presented.mail())
            .await?
            .ok_or(AuthError::LinkInvalid)?;
        key.check(&presented, &mail.grant())
            .map_err(|_| AuthError::LinkInvalid)?;
        Ok(mail)
    }

    /// Redeems a presented link for `purpose` with the effect `effect` builds.
    async fn redeem(
        &self,
        token: &str,
        purpose: LinkPurpose,
        effect: impl FnOnce(&QueuedMail) -> Result<LinkEffect, AuthError>,
    ) -> Result<(UserId, UserRecord), AuthError> {
        let mail = self.checked_mail(token).await?;
        let effect = effect(&mail)?;
        let now = self.core.clock.now();
        match self
            .core
            .store
            .redeem_mail_link(mail.id, purpose, &effect, now)
            .await
        {
            Ok(redeemed) => Ok(redeemed),
            Err(MailWriteError::LinkInvalid(why)) => {
                tracing::info!(mail = %mail.id, reason = why.log_reason(), "mail link refused");
                Err(AuthError::LinkInvalid)
            }
            Err(MailWriteError::UserGone) => Err(AuthError::LinkInvalid),
            Err(MailWriteError::Store(err)) => Err(err.into()),
        }
    }

    async fn user(&self, id: UserId) -> Result<UserRecord, AuthError> {
        self.core
            .store
            .user(id)
            .await?
            .ok_or(AuthError::TokenRevoked)
    }
}
