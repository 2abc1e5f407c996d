//! Claim changes, on [`Accounts`]: what a user (`PATCH /me`, limited to
//! `claims.self_service`) or an admin may change about a user, judged from a [`UserPatch`]
//! (the body as the HTTP edge read it) into a [`ClaimsChange`], and refresh-on-change: the
//! request that changes the claims is answered with a token that carries them, for the
//! same session, without rotating the refresh token (a refresh in flight from another tab
//! never collides with it).
//!
//! A patch is judged in one order, whoever sends it: a patch naming nothing, then a field
//! that cannot be changed on the caller's route (400), then a field the caller may not
//! change (403, before any value is looked at: the field is not the caller's whatever it
//! holds), then the first value the edge refused, in the body's order (400, `field: why`).
//! Who may change which field is known only once the caller is, so the edge reads every
//! value and refuses none of them itself.
//!
//! Any change to what a token says bumps the user's claims version (`uv`), which turns
//! every token issued before it stale.

use serde_json::{Map, Value};

use super::accounts::Accounts;
use super::caller::{Authenticated, Freshness};
use super::{AuthError, UserView};
use crate::domain::TenantId;
use crate::mail::EmailAddress;
use crate::secret::SecretString;
use crate::store::{ClaimsChange, UserRecord};

/// What `PATCH /me` may name: the self-service claims (`SELF_SERVICE_FIELDS`, among which
/// `claims.self_service` picks), and the user's own address (always
/// theirs to change, with the current password: see [`Accounts::patch_me`]).
pub const ME_FIELDS: [&str; 4] = ["plan", "roles", "attrs", "email"];
/// The user fields an admin can change.
pub const ADMIN_FIELDS: [&str; 6] = ["plan", "roles", "attrs", "tenant", "disabled", "email"];

fn invalid(field: &str, why: &str) -> AuthError {
    AuthError::InvalidRequest(format!("{field}: {why}"))
}

/// One field a request asks to change about a user, with its value as the edge read it:
/// typed, or why it was refused (the `why` of a `field: why` detail), reported only if the
/// caller may change the field at all.
#[derive(Debug, Clone, PartialEq)]
pub enum UserField {
    Plan(Result<String, &'static str>),
    /// Without duplicates, in the order given.
    Roles(Result<Vec<String>, &'static str>),
    Attrs(Result<Map<String, Value>, &'static str>),
    /// `None` takes the user out of its tenant.
    Tenant(Result<Option<TenantId>, &'static str>),
    Disabled(Result<bool, &'static str>),
    /// `None` removes the address.
    Email(Result<Option<EmailAddress>, &'static str>),
    /// A name that is no field of a user.
    Unknown(String),
}

impl UserField {
    /// The field's name, as the request spells it.
    pub fn name(&self) -> &str {
        match self {
            UserField::Plan(_) => "plan",
            UserField::Roles(_) => "roles",
            UserField::Attrs(_) => "attrs",
            UserField::Tenant(_) => "tenant",
            UserField::Disabled(_) => "disabled",
            UserField::Email(_) => "email",
            UserField::Unknown(name) => name,
        }
    }
}

/// A change to a user as the request put it: the fields it names, in its order, not yet
/// judged ([`UserPatch::judge`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    fields: Vec<UserField>,
}

impl UserPatch {
    /// A patch of `fields`, in the order the request names them.
    pub fn new(fields: Vec<UserField>) -> UserPatch {
        UserPatch { fields }
    }

    /// Judges the patch for a caller who may name the fields of `universe` and change
    /// those of `allowed`, in the order the module describes.
    ///
    /// # Errors
    /// `InvalidRequest` for an empty patch, a field outside `universe` or a refused value
    /// (each naming the field); `Forbidden` for a field outside `allowed`.
    pub fn judge(self, universe: &[&str], allowed: &[&str]) -> Result<ClaimsChange, AuthError> {
        if self.fields.is_empty() {
            return Err(AuthError::InvalidRequest("nothing to change".into()));
        }
        if let Some(field) = self.fields.iter().find(|f| !universe.contains(&f.name())) {
            return Err(invalid(
                field.name(),
                "not a field that can be changed here",
            ));
        }
        if let Some(field) = self.fields.iter().find(|f| !allowed.contains(&f.name())) {
            return Err(AuthError::Forbidden(format!(
                "{}: not yours to change",
                field.name()
            )));
        }
        let mut change = ClaimsChange::default();
        for field in self.fields {
            match field {
                UserField::Plan(plan) => {
                    change.plan = Some(plan.map_err(|why| invalid("plan", why))?);
                }
                UserField::Roles(roles) => {
                    change.roles = Some(roles.map_err(|why| invalid("roles", why))?);
                }
                UserField::Attrs(attrs) => {
                    change.attrs = Some(attrs.map_err(|why| invalid("attrs", why))?);
                }
                UserField::Tenant(tenant) => {
                    change.tenant = Some(tenant.map_err(|why| invalid("tenant", why))?);
                }
                UserField::Disabled(disabled) => {
                    change.disabled = Some(disabled.map_err(|why| invalid("disabled", why))?);
                }
                UserField::Email(email) => {
                    change.email = Some(email.map_err(|why| invalid("email", why))?);
                }
                UserField::Unknown(name) => {
                    return Err(invalid(&name, "not a field that can be changed here"))
                }
            }
        }
        Ok(change)
    }
}

/// Checks each value a user set for itself against `claims.self_service`: the plan is
/// one of the plan's listed values, every role one of the listed roles, every attribute
/// name one of the listed names. A value outside the list is a bad request naming the
/// field (400, not 403: the field is the user's to change, the value is what is wrong),
/// and the detail lists what is allowed, which is configuration, not a secret.
///
/// # Errors
/// `InvalidRequest` naming the field and its allowed values.
pub fn check_self_service_values(
    patch: &ClaimsChange,
    table: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<(), AuthError> {
    let outside = |field: &str, value: &str| -> Result<(), AuthError> {
        let allowed = table.get(field).map(Vec::as_slice).unwrap_or_default();
        if allowed.iter().any(|v| v == value) {
            return Ok(());
        }
        Err(invalid(
            field,
            &format!("not an allowed value (allowed: {})", allowed.join(", ")),
        ))
    };
    if let Some(plan) = &patch.plan {
        outside("plan", plan)?;
    }
    for role in patch.roles.iter().flatten() {
        outside("roles", role)?;
    }
    for name in patch.attrs.iter().flat_map(Map::keys) {
        outside("attrs", name)?;
    }
    Ok(())
}

/// The answer to a claim change made with the caller's own token: the new access token
/// (in the JSON body; `Debug` shows it redacted).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefreshedToken {
    #[serde(serialize_with = "crate::secret::serialize")]
    pub access_token: SecretString,
    pub token_type: &'static str,
    pub expires_in: u64,
}

impl Accounts {
    /// Applies a validated patch, bumping `uv` when something changed. Durable on return.
    pub(crate) async fn apply_user_patch(
        &self,
        user_id: crate::domain::UserId,
        patch: &ClaimsChange,
    ) -> Result<UserRecord, AuthError> {
        let user = self
            .core
            .store
            .change_user_claims(user_id, patch, self.core.clock.now())
            .await?;
        if patch.disabled == Some(true) {
            self.sessions.end_user_sessions(user_id, None).await?;
        }
        self.core.store.wait_durable().await?;
        Ok(user)
    }

    /// A token with the caller's current claims for its own session.
    pub(crate) async fn refreshed_token(
        &self,
        caller: &Authenticated,
    ) -> Result<RefreshedToken, AuthError> {
        let (access_token, claims) = self.core.remint_for_session(caller).await?;
        Ok(RefreshedToken {
            access_token,
            token_type: "Bearer",
            expires_in: claims.exp.saturating_sub(self.core.clock.now()),
        })
    }

    /// `PATCH /me`: the caller changes the fields `claims.self_service` allows, or their own
    /// address, and gets a token that carries the change.
    ///
    /// Moving the address moves where a password reset goes, so a bearer token alone (a
    /// stolen one, say) is not enough: the request carries `current_password` too, checked
    /// and rate-limited as `POST /me/password` checks it.
    ///
    /// # Errors
    /// `InvalidRequest` / `Forbidden` for the patch, and for an address change without
    /// `current_password`; `InvalidCredentials` / `TooManyAttempts` for a wrong one;
    /// `EmailTaken`; any verdict but valid or stale.
    pub async fn patch_me(
        &self,
        token: &str,
        patch: UserPatch,
        current_password: Option<SecretString>,
    ) -> Result<(UserView, RefreshedToken), AuthError> {
        let caller = self
            .verification
            .authenticate(token, Freshness::AllowStale)
            .await?;
        let table = &self.core.settings.claims.self_service;
        let mut allowed: Vec<&str> = table.keys().map(String::as_str).collect();
        allowed.push("email");
        let patch = patch.judge(&ME_FIELDS, &allowed)?;
        check_self_service_values(&patch, table)?;
        if patch.email.is_some() {
            let current = current_password.ok_or_else(|| {
                invalid(
                    "current_password",
                    "changing the address needs the current password",
                )
            })?;
            let record = self
                .core
                .store
                .user(caller.user_id)
                .await?
                .ok_or(AuthError::TokenRevoked)?;
            self.check_current_password(&record, current).await?;
        }
        let user = self.apply_user_patch(caller.user_id, &patch).await?;
        let token = self.refreshed_token(&caller).await?;
        tracing::info!(user = %caller.user_id, uv = user.claims_version, "claims changed by the user");
        Ok((UserView::new(caller.user_id, &user), token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SELF_SERVICE_FIELDS;

    fn judge(fields: Vec<UserField>, allowed: &[&str]) -> Result<ClaimsChange, AuthError> {
        UserPatch::new(fields).judge(&SELF_SERVICE_FIELDS, allowed)
    }

    fn detail(verdict: Result<ClaimsChange, AuthError>) -> String {
        match verdict {
            Err(AuthError::InvalidRequest(detail) | AuthError::Forbidden(detail)) => detail,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn fields_outside_the_universe_are_bad_requests_and_others_forbidden() {
        let err = judge(vec![UserField::Unknown("username".into())], &["plan"]);
        assert!(matches!(err, Err(AuthError::InvalidRequest(_))));
        let err = judge(vec![UserField::Roles(Ok(vec!["admin".into()]))], &["plan"]);
        assert!(matches!(err, Err(AuthError::Forbidden(_))));
        let err = judge(vec![], &["plan"]);
        assert!(matches!(err, Err(AuthError::InvalidRequest(_))));
        // Outside `PATCH /me`'s universe, though a user field.
        let err = judge(vec![UserField::Disabled(Ok(true))], &SELF_SERVICE_FIELDS);
        assert_eq!(
            detail(err),
            "disabled: not a field that can be changed here"
        );
    }

    #[test]
    fn the_judgements_come_in_order_unknown_then_forbidden_then_values() {
        let bad_plan = || UserField::Plan(Err("expected a string"));
        let unknown = || UserField::Unknown("username".into());
        let roles = || UserField::Roles(Err("expected an array of strings"));

        assert_eq!(
            detail(judge(vec![bad_plan(), roles(), unknown()], &["plan"])),
            "username: not a field that can be changed here"
        );
        // A field the caller may not change is forbidden, whatever its value.
        assert!(matches!(
            judge(vec![bad_plan(), roles()], &["plan"]),
            Err(AuthError::Forbidden(detail)) if detail == "roles: not yours to change"
        ));
        assert_eq!(
            detail(judge(vec![bad_plan(), roles()], &SELF_SERVICE_FIELDS)),
            "plan: expected a string",
            "the first refused value in the body's order"
        );
        assert_eq!(detail(judge(vec![], &["plan"])), "nothing to change");
    }

    #[test]
    fn an_accepted_patch_is_the_change_it_names() {
        let change = UserPatch::new(vec![
            UserField::Disabled(Ok(true)),
            UserField::Plan(Ok("pro".into())),
            UserField::Tenant(Ok(None)),
        ])
        .judge(&ADMIN_FIELDS, &ADMIN_FIELDS)
        .unwrap();
        assert_eq!(change.plan.as_deref(), Some("pro"));
        assert_eq!(change.disabled, Some(true));
        assert_eq!(change.tenant, Some(None));
        assert_eq!(change.roles, None);
        assert_eq!(change.attrs, None);
    }
}
