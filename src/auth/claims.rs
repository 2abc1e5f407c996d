//! Claim changes, on [`Accounts`]: what a user (`PATCH /me`, limited to
//! `claims.self_service`) or an admin may change about a user, validated into a
//! [`ClaimsChange`](crate::store::ClaimsChange), and refresh-on-change: the request that changes the claims is answered with a token that carries them, for the
//! same session, without rotating the refresh token (a refresh in flight from another tab
//! never collides with it).
//!
//! Any change to what a token says bumps the user's claims version (`uv`), which turns
//! every token issued before it stale.

use serde_json::{Map, Value};

use super::accounts::Accounts;
use super::caller::{Authenticated, Freshness};
use super::{AuthError, UserView};
use crate::domain::TenantId;
use crate::secret::SecretString;
use crate::store::{ClaimsChange, UserRecord};

/// The user fields `PATCH /me` can ever change (`claims.self_service` picks among them).
pub use crate::config::SELF_SERVICE_FIELDS;
/// The user fields an admin can change.
pub const ADMIN_FIELDS: [&str; 5] = ["plan", "roles", "attrs", "tenant", "disabled"];

/// Longest plan or role name.
const MAX_NAME_CHARS: usize = 64;
/// Most roles a user may hold.
const MAX_ROLES: usize = 32;
/// Largest `attrs` object, serialised: it rides in every token.
pub const MAX_ATTRS_BYTES: usize = 4096;

fn invalid(field: &str, why: &str) -> AuthError {
    AuthError::InvalidRequest(format!("{field}: {why}"))
}

/// Checks a plan or role name: 1 to 64 of `[A-Za-z0-9_.:-]`.
pub(crate) fn parse_name(field: &str, value: &Value) -> Result<String, AuthError> {
    let text = value
        .as_str()
        .ok_or_else(|| invalid(field, "expected a string"))?;
    let well_formed = !text.is_empty()
        && text.chars().count() <= MAX_NAME_CHARS
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if !well_formed {
        return Err(invalid(
            field,
            "expected 1 to 64 characters of A-Z a-z 0-9 _ . : -",
        ));
    }
    Ok(text.to_string())
}

/// Checks an `attrs` object's size.
pub(crate) fn parse_attrs_value(
    field: &str,
    value: &Value,
) -> Result<Map<String, Value>, AuthError> {
    let object = value
        .as_object()
        .ok_or_else(|| invalid(field, "expected an object"))?;
    if value.to_string().len() > MAX_ATTRS_BYTES {
        return Err(invalid(field, "larger than 4096 bytes"));
    }
    Ok(object.clone())
}

/// Validates a JSON object of changes to a user. A field outside `universe` is a bad
/// request; a field inside it but not in `allowed` is forbidden.
///
/// # Errors
/// `InvalidRequest` naming the field, or `Forbidden`.
pub fn parse_user_patch(
    body: &Map<String, Value>,
    universe: &[&str],
    allowed: &[&str],
) -> Result<ClaimsChange, AuthError> {
    if body.is_empty() {
        return Err(AuthError::InvalidRequest("nothing to change".into()));
    }
    if let Some(name) = body.keys().find(|name| !universe.contains(&name.as_str())) {
        return Err(invalid(name, "not a field that can be changed here"));
    }
    if let Some(name) = body.keys().find(|name| !allowed.contains(&name.as_str())) {
        return Err(AuthError::Forbidden(format!("{name}: not yours to change")));
    }
    let mut patch = ClaimsChange::default();
    for (name, value) in body {
        match name.as_str() {
            "plan" => patch.plan = Some(parse_name("plan", value)?),
            "roles" => {
                let items = value
                    .as_array()
                    .ok_or_else(|| invalid("roles", "expected an array of strings"))?;
                if items.len() > MAX_ROLES {
                    return Err(invalid("roles", "at most 32 roles"));
                }
                let mut roles: Vec<String> = Vec::with_capacity(items.len());
                for item in items {
                    let role = parse_name("roles", item)?;
                    if !roles.contains(&role) {
                        roles.push(role);
                    }
                }
                patch.roles = Some(roles);
            }
            "attrs" => patch.attrs = Some(parse_attrs_value("attrs", value)?),
            "tenant" => {
                patch.tenant = Some(match value {
                    Value::Null => None,
                    Value::String(text) => Some(
                        TenantId::parse(text)
                            .ok_or_else(|| invalid("tenant", "not a tenant id"))?,
                    ),
                    _ => return Err(invalid("tenant", "expected a tenant id or null")),
                })
            }
            "disabled" => {
                patch.disabled = Some(
                    value
                        .as_bool()
                        .ok_or_else(|| invalid("disabled", "expected true or false"))?,
                )
            }
            other => return Err(invalid(other, "not a field that can be changed here")),
        }
    }
    Ok(patch)
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

    /// `PATCH /me`: the caller changes the fields `claims.self_service` allows, and gets a
    /// token that carries the change.
    ///
    /// # Errors
    /// `InvalidRequest` / `Forbidden` for the body; any verdict but valid or stale.
    pub async fn patch_me(
        &self,
        token: &str,
        body: &Map<String, Value>,
    ) -> Result<(UserView, RefreshedToken), AuthError> {
        let caller = self
            .verification
            .authenticate(token, Freshness::AllowStale)
            .await?;
        let table = &self.core.settings.claims.self_service;
        let allowed: Vec<&str> = table.keys().map(String::as_str).collect();
        let patch = parse_user_patch(body, &SELF_SERVICE_FIELDS, &allowed)?;
        check_self_service_values(&patch, table)?;
        let user = self.apply_user_patch(caller.user_id, &patch).await?;
        let token = self.refreshed_token(&caller).await?;
        tracing::info!(user = %caller.user_id, uv = user.claims_version, "claims changed by the user");
        Ok((UserView::new(caller.user_id, &user), token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn fields_outside_the_universe_are_bad_requests_and_others_forbidden() {
        let err = parse_user_patch(
            &body(json!({"username": "x"})),
            &SELF_SERVICE_FIELDS,
            &["plan"],
        );
        assert!(matches!(err, Err(AuthError::InvalidRequest(_))));
        let err = parse_user_patch(
            &body(json!({"roles": ["admin"]})),
            &SELF_SERVICE_FIELDS,
            &["plan"],
        );
        assert!(matches!(err, Err(AuthError::Forbidden(_))));
        let err = parse_user_patch(&body(json!({})), &SELF_SERVICE_FIELDS, &["plan"]);
        assert!(matches!(err, Err(AuthError::InvalidRequest(_))));
    }

    #[test]
    fn values_are_checked() {
        for bad in [
            json!({"plan": 1}),
            json!({"plan": ""}),
            json!({"plan": "has space"}),
            json!({"roles": "admin"}),
            json!({"attrs": []}),
            json!({"attrs": {"big": "x".repeat(5000)}}),
            json!({"tenant": 5}),
            json!({"disabled": "yes"}),
        ] {
            assert!(
                parse_user_patch(&body(bad.clone()), &ADMIN_FIELDS, &ADMIN_FIELDS).is_err(),
                "{bad}"
            );
        }
    }
}
