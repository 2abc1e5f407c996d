//! A user ([`UserRecord`]), the changes made to one ([`ClaimsChange`], [`AccountChange`],
//! a redeemed mail link's [`LinkEffect`]) and what each decides: which fields move, whether
//! `uv` moves, which change-log records the write appends, which tenants it moves the user
//! between and which address it moves the user's email index entry to. Both backends'
//! writes read the record, let these decide, and write what they say.

use serde_json::{Map, Value};

use super::mail::LinkInvalid;
use super::{Change, QueuedMail, StoreError};
use crate::domain::{TenantId, UserId};
use crate::mail::{EmailAddress, EmailKey};
use crate::store::mirror::UserStamp;

/// A user as the store hands it out (its on-disk shapes are in `disk::user`).
#[derive(Clone, PartialEq)]
pub struct UserRecord {
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub tenant: Option<TenantId>,
    pub roles: Vec<String>,
    pub plan: String,
    /// The `attrs` object, parsed once when the record is read.
    pub attrs: Map<String, Value>,
    /// `uv`: bumped by every change to what a token says about the user.
    pub claims_version: u64,
    /// Tokens issued before this unix second are revoked.
    pub not_before: u64,
    pub disabled: bool,
    pub created_at: u64,
    pub updated_at: u64,
    /// The address mail goes to, as the user gave it; unique by its [`EmailKey`].
    pub email: Option<EmailAddress>,
    /// Whether a link mailed to `email` was redeemed since it was set.
    pub email_verified: bool,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("tenant", &self.tenant)
            .field("roles", &self.roles)
            .field("plan", &self.plan)
            .field("claims_version", &self.claims_version)
            .field("disabled", &self.disabled)
            .field("email_verified", &self.email_verified)
            .finish_non_exhaustive()
    }
}

impl UserRecord {
    /// The change-log record of this user's verification state, as `id`.
    pub(crate) fn change(&self, id: UserId) -> Change {
        Change::User {
            user: id,
            claims_version: self.claims_version,
            not_before: self.not_before,
            disabled: self.disabled,
        }
    }

    /// The change-log record of this user's whole stamp (username and tenant too), as
    /// `id`: written at creation and on a move between tenants.
    pub(crate) fn account_change(&self, id: UserId) -> Change {
        Change::Account {
            user: id,
            username: self.username.clone(),
            tenant: self.tenant,
            claims_version: self.claims_version,
            not_before: self.not_before,
            disabled: self.disabled,
        }
    }

    /// What verification needs of this user.
    pub fn stamp(&self) -> UserStamp {
        UserStamp {
            username: self.username.as_str().into(),
            claims_version: self.claims_version,
            not_before: self.not_before,
            disabled: self.disabled,
            tenant: self.tenant,
        }
    }
}

/// A change to what a user's tokens say or to the account's standing: the fields an
/// admin (or a user, through `claims.self_service`) may change. `None` leaves a field as
/// it is.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ClaimsChange {
    pub plan: Option<String>,
    pub roles: Option<Vec<String>>,
    pub attrs: Option<Map<String, Value>>,
    pub tenant: Option<Option<TenantId>>,
    pub disabled: Option<bool>,
    /// A new address (`Some(None)` removes it): it is unverified until a link mailed to it
    /// is redeemed, unless it is the same address spelled differently.
    pub email: Option<Option<EmailAddress>>,
}

impl ClaimsChange {
    /// Applies the change; returns whether anything a token carries (or the account's
    /// standing) changed, and so whether `uv` must move.
    fn apply(&self, user: &mut UserRecord) -> bool {
        let mut changed = false;
        if let Some(plan) = &self.plan {
            changed |= user.plan != *plan;
            user.plan.clone_from(plan);
        }
        if let Some(roles) = &self.roles {
            changed |= user.roles != *roles;
            user.roles.clone_from(roles);
        }
        if let Some(attrs) = &self.attrs {
            changed |= user.attrs != *attrs;
            user.attrs.clone_from(attrs);
        }
        if let Some(tenant) = self.tenant {
            changed |= user.tenant != tenant;
            user.tenant = tenant;
        }
        if let Some(disabled) = self.disabled {
            changed |= user.disabled != disabled;
            user.disabled = disabled;
        }
        if let Some(email) = &self.email {
            if user.email != *email {
                let same_key = user.email.as_ref().map(EmailAddress::key)
                    == email.as_ref().map(EmailAddress::key);
                user.email_verified &= same_key;
                user.email.clone_from(email);
                changed = true;
            }
        }
        changed
    }
}

/// Why a user write was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserWriteError {
    #[error("username taken")]
    UsernameTaken,
    /// Another account has this address (compared case-insensitively).
    #[error("email address taken")]
    EmailTaken,
    #[error("no such user")]
    NotFound,
    #[error("no such tenant")]
    UnknownTenant,
    #[error("tenant is full")]
    TenantFull,
    /// The invitation is unknown, used, revoked, expired or of another tenant.
    #[error("invitation not valid")]
    InvitationInvalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a [`ClaimsChange`] decided for one user, for the backend to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsApplied {
    /// The change-log records the write appends, in order; none when nothing a token
    /// carries (nor the account's standing) changed.
    pub log: Vec<Change>,
    /// The tenant the user left and the one it joined, when the change moved it: the
    /// backend counts it out of the first and into the second in the same write.
    pub moved: Option<(Option<TenantId>, Option<TenantId>)>,
    /// The email index entry the user left and the one it takes, when the address's key
    /// changed: the backend claims the second (refusing `EmailTaken` if another user holds
    /// it) and frees the first in the same write.
    pub email_moved: Option<(Option<EmailKey>, Option<EmailKey>)>,
}

impl UserRecord {
    /// Applies `change` to this user (its id `id`) at `now`: a change to anything a token
    /// carries bumps `uv` and `updated_at` and logs the user's new state; a move between
    /// tenants logs the whole stamp too (a node that did not write it must learn the new
    /// tenant).
    pub fn apply_claims(&mut self, id: UserId, change: &ClaimsChange, now: u64) -> ClaimsApplied {
        let old_tenant = self.tenant;
        let old_email = self.email_key().cloned();
        let mut log = Vec::new();
        if change.apply(self) {
            self.claims_version += 1;
            self.updated_at = now;
            log.push(self.change(id));
        }
        let moved = (self.tenant != old_tenant).then_some((old_tenant, self.tenant));
        if moved.is_some() {
            log.push(self.account_change(id));
        }
        let new_email = self.email_key().cloned();
        let email_moved = (new_email != old_email).then_some((old_email, new_email));
        ClaimsApplied {
            log,
            moved,
            email_moved,
        }
    }

    /// The key of the user's address, the one its email index entry is under.
    pub fn email_key(&self) -> Option<&EmailKey> {
        self.email.as_ref().map(EmailAddress::key)
    }

    /// Applies what redeeming `mail`'s link does to this user (its id `id`) at `now`: the
    /// link must have been mailed to the address the account still has, and the account
    /// must not be disabled. Every purpose proves the address, so it becomes verified;
    /// a reset also sets the new password and refuses every token issued before `now`.
    /// Returns the change-log records to append: the user's new state when `uv` or
    /// `not_before` moved, and a reset's credential change.
    ///
    /// # Errors
    /// [`LinkInvalid`] when the address changed since, or the account is disabled; the
    /// user is left as it was.
    pub fn redeem_link(
        &mut self,
        id: UserId,
        mail: &QueuedMail,
        effect: &LinkEffect,
        now: u64,
    ) -> Result<Vec<Change>, LinkInvalid> {
        if self.email_key() != Some(mail.to.key()) {
            return Err(LinkInvalid::address_changed());
        }
        if self.disabled {
            return Err(LinkInvalid::account_disabled());
        }
        let mut moved = false;
        if !self.email_verified {
            self.email_verified = true;
            self.claims_version += 1;
            moved = true;
        }
        let reset = matches!(effect, LinkEffect::NewPassword(_));
        if let LinkEffect::NewPassword(hash) = effect {
            AccountChange::NewPassword(hash).apply(self, now);
            moved = true;
        }
        if !moved {
            return Ok(Vec::new());
        }
        self.updated_at = now;
        let mut log = vec![self.change(id)];
        if reset {
            log.push(Change::CredentialChanged {
                user: id,
                credential: super::Credential::Password,
            });
        }
        Ok(log)
    }
}

/// What a redeemed link does beyond proving the address.
#[derive(Clone)]
pub enum LinkEffect {
    /// Verification and magic-link sign-in: the address is proved, nothing else.
    ProveAddress,
    /// A password reset: the new password's argon2id PHC string.
    NewPassword(String),
}

impl std::fmt::Debug for LinkEffect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkEffect::ProveAddress => "ProveAddress",
            LinkEffect::NewPassword(_) => "NewPassword(..)",
        })
    }
}

/// What ending sessions changes about their user, in the same write.
#[derive(Debug, Clone, Copy)]
pub enum AccountChange<'a> {
    /// Nothing: the sessions end, the account stays as it is.
    Unchanged,
    /// Every token issued before now is refused from now on (`not_before`): a logout
    /// everywhere.
    RefuseEarlierTokens,
    /// A new password hash, and `not_before`: a password change.
    NewPassword(&'a str),
}

/// An [`AccountChange`] holding its own copy of the hash, to hand to another thread.
pub(crate) enum OwnedAccountChange {
    Unchanged,
    RefuseEarlierTokens,
    NewPassword(String),
}

impl OwnedAccountChange {
    /// The change it holds, borrowed again.
    pub(crate) fn as_change(&self) -> AccountChange<'_> {
        match self {
            OwnedAccountChange::Unchanged => AccountChange::Unchanged,
            OwnedAccountChange::RefuseEarlierTokens => AccountChange::RefuseEarlierTokens,
            OwnedAccountChange::NewPassword(hash) => AccountChange::NewPassword(hash),
        }
    }
}

impl AccountChange<'_> {
    /// The same change with its own copy of the hash.
    pub(crate) fn to_owned_change(self) -> OwnedAccountChange {
        match self {
            AccountChange::Unchanged => OwnedAccountChange::Unchanged,
            AccountChange::RefuseEarlierTokens => OwnedAccountChange::RefuseEarlierTokens,
            AccountChange::NewPassword(hash) => OwnedAccountChange::NewPassword(hash.to_string()),
        }
    }

    /// Applies the change at `now`.
    pub(crate) fn apply(self, user: &mut UserRecord, now: u64) {
        match self {
            AccountChange::Unchanged => return,
            AccountChange::RefuseEarlierTokens => {}
            AccountChange::NewPassword(hash) => user.password_hash = hash.to_string(),
        }
        user.not_before = now;
        user.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::fixtures;

    /// The fixtures' user at `uv` 4, a reader.
    fn user(tenant: Option<TenantId>) -> UserRecord {
        UserRecord {
            roles: vec!["reader".into()],
            claims_version: 4,
            ..fixtures::user("ada", tenant)
        }
    }

    #[test]
    fn a_change_to_what_tokens_carry_bumps_uv_and_logs_the_user() {
        let id = UserId::generate();
        let mut ada = user(None);
        let change = ClaimsChange {
            plan: Some("pro".into()),
            ..ClaimsChange::default()
        };
        let applied = ada.apply_claims(id, &change, 50);
        assert_eq!(
            (ada.plan.as_str(), ada.claims_version, ada.updated_at),
            ("pro", 5, 50)
        );
        assert_eq!(applied.log, vec![ada.change(id)]);
        assert_eq!(applied.moved, None);
    }

    #[test]
    fn a_change_to_the_same_values_moves_nothing_and_logs_nothing() {
        let id = UserId::generate();
        let mut ada = user(None);
        let change = ClaimsChange {
            plan: Some("free".into()),
            roles: Some(vec!["reader".into()]),
            disabled: Some(false),
            ..ClaimsChange::default()
        };
        let applied = ada.apply_claims(id, &change, 50);
        assert_eq!(ada, user(None));
        assert!(applied.log.is_empty());
        assert_eq!(applied.moved, None);
    }

    #[test]
    fn a_move_between_tenants_logs_the_state_then_the_whole_stamp() {
        let (id, from, to) = (
            UserId::generate(),
            TenantId::generate(),
            TenantId::generate(),
        );
        let mut ada = user(Some(from));
        let change = ClaimsChange {
            tenant: Some(Some(to)),
            ..ClaimsChange::default()
        };
        let applied = ada.apply_claims(id, &change, 50);
        assert_eq!(ada.claims_version, 5);
        assert_eq!(applied.log, vec![ada.change(id), ada.account_change(id)]);
        assert_eq!(applied.moved, Some((Some(from), Some(to))));
    }

    #[test]
    fn a_password_change_sets_not_before_and_keeps_uv() {
        let mut ada = user(None);
        AccountChange::NewPassword("$argon2id$new").apply(&mut ada, 70);
        assert_eq!(ada.password_hash, "$argon2id$new");
        assert_eq!(
            (ada.not_before, ada.updated_at, ada.claims_version),
            (70, 70, 4)
        );
        let mut untouched = user(None);
        AccountChange::Unchanged.apply(&mut untouched, 70);
        assert_eq!(untouched, user(None));
    }

    fn with_email(email: &str, verified: bool) -> UserRecord {
        UserRecord {
            email: Some(EmailAddress::parse(email).unwrap()),
            email_verified: verified,
            ..user(None)
        }
    }

    #[test]
    fn a_new_address_is_unverified_and_moves_the_index_but_a_new_spelling_is_not() {
        let id = UserId::generate();
        let change = |email: &str| ClaimsChange {
            email: Some(Some(EmailAddress::parse(email).unwrap())),
            ..ClaimsChange::default()
        };
        let mut ada = with_email("ada@example.org", true);
        let applied = ada.apply_claims(id, &change("ADA@example.org"), 50);
        assert_eq!((ada.email_verified, ada.claims_version), (true, 5));
        assert_eq!(applied.email_moved, None);
        let applied = ada.apply_claims(id, &change("ada@new.example"), 51);
        assert_eq!((ada.email_verified, ada.claims_version), (false, 6));
        let (old, new) = applied.email_moved.unwrap();
        assert_eq!(old.unwrap().as_str(), "ada@example.org");
        assert_eq!(new.unwrap().as_str(), "ada@new.example");
        let removed = ClaimsChange {
            email: Some(None),
            ..ClaimsChange::default()
        };
        let applied = ada.apply_claims(id, &removed, 52);
        assert_eq!(ada.email, None);
        assert!(matches!(applied.email_moved, Some((Some(_), None))));
    }

    #[test]
    fn a_redeemed_link_proves_the_address_it_was_mailed_to_only() {
        use crate::mail::LinkPurpose;
        let id = UserId::generate();
        let to = EmailAddress::parse("Ada@Example.org").unwrap();
        let mail = QueuedMail::new(id, LinkPurpose::Magic, to, 10, 1800);
        let mut ada = with_email("ada@example.org", false);
        let log = ada
            .redeem_link(id, &mail, &LinkEffect::ProveAddress, 20)
            .unwrap();
        assert_eq!((ada.email_verified, ada.claims_version), (true, 5));
        assert_eq!(log, vec![ada.change(id)]);
        let again = ada
            .redeem_link(id, &mail, &LinkEffect::ProveAddress, 21)
            .unwrap();
        assert!(again.is_empty(), "nothing left to change, nothing logged");

        let mut moved = with_email("ada@new.example", false);
        let refused = moved.redeem_link(id, &mail, &LinkEffect::ProveAddress, 20);
        assert_eq!(refused.unwrap_err().log_reason(), "address_changed");
        assert_eq!(moved, with_email("ada@new.example", false));

        let mut disabled = UserRecord {
            disabled: true,
            ..with_email("ada@example.org", false)
        };
        let reset = LinkEffect::NewPassword("$argon2id$new".into());
        let refused = disabled.redeem_link(id, &mail, &reset, 20);
        assert_eq!(refused.unwrap_err().log_reason(), "account_disabled");
        assert_eq!(disabled.password_hash, user(None).password_hash);
    }

    #[test]
    fn a_reset_link_sets_the_password_and_not_before() {
        use crate::mail::LinkPurpose;
        let id = UserId::generate();
        let to = EmailAddress::parse("ada@example.org").unwrap();
        let mail = QueuedMail::new(id, LinkPurpose::ResetPassword, to, 10, 1800);
        let mut ada = with_email("ada@example.org", true);
        let log = ada
            .redeem_link(
                id,
                &mail,
                &LinkEffect::NewPassword("$argon2id$new".into()),
                30,
            )
            .unwrap();
        assert_eq!(ada.password_hash, "$argon2id$new");
        assert_eq!(
            (ada.not_before, ada.updated_at, ada.claims_version),
            (30, 30, 4)
        );
        let credential = Change::CredentialChanged {
            user: id,
            credential: super::super::Credential::Password,
        };
        assert_eq!(log, vec![ada.change(id), credential]);
    }
}
