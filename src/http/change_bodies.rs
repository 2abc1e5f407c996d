//! The bodies that change a user (`PATCH /me`, `PATCH /admin/users/{id}`) or a tenant
//! (`POST /admin/tenants`, `PATCH /admin/tenants/{id}`), read from their JSON object into
//! the types `auth/` takes: a [`UserPatch`] and a [`TenantChange`]. `auth/` never sees the
//! JSON.
//!
//! The object is read as a whole first (serde's map: the fields in name order, a repeated
//! name's last value), then each field by hand rather than into a struct with
//! `deny_unknown_fields`: serde would refuse at the first unknown field or bad value, but
//! a user patch must refuse a field the caller may not change (403) before any value
//! (400), and who may change what is known only in `auth/`, once the caller is. So a user
//! patch keeps every field it names, each with its value read or why it was refused, for
//! [`UserPatch::judge`]. A tenant body has no such ordering (its route is for admins
//! only, decided by the extractor before the body is read), so it is refused here at its
//! first unknown field or bad value. Every refusal is a 400 `invalid_request` whose detail
//! names the field (`field: why`).

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::auth::{UserField, UserPatch};
use crate::domain::TenantId;
use crate::mail::{EmailAddress, EmailAddressError};
use crate::store::TenantChange;

/// Longest plan or role name.
const MAX_NAME_CHARS: usize = 64;
/// Most roles a user may hold.
const MAX_ROLES: usize = 32;
/// Largest `attrs` object, serialised: it rides in every token.
const MAX_ATTRS_BYTES: usize = 4096;
/// Longest tenant name.
const MAX_TENANT_NAME_CHARS: usize = 128;

/// Reads a change to a user: every field the body names, in its order, with its value read
/// or why not. Nothing is refused here ([`UserPatch::judge`] decides, in its order).
pub fn user_patch(body: Map<String, Value>) -> UserPatch {
    UserPatch::new(
        body.into_iter()
            .map(|(name, value)| match name.as_str() {
                "plan" => UserField::Plan(claim_name(&value)),
                "roles" => UserField::Roles(roles(&value)),
                "attrs" => UserField::Attrs(attrs(value)),
                "tenant" => UserField::Tenant(tenant(&value)),
                "disabled" => UserField::Disabled(value.as_bool().ok_or("expected true or false")),
                "email" => UserField::Email(email(&value)),
                _ => UserField::Unknown(name),
            })
            .collect(),
    )
}

/// Reads a tenant's fields, all optional here (creating a tenant requires a name, which
/// `auth/` checks; a change of nothing is refused there too).
///
/// # Errors
/// 400 `invalid_request` naming the first field, in the body's order, that is no tenant
/// field or whose value is refused.
pub fn tenant_change(body: Map<String, Value>) -> Result<TenantChange, ApiError> {
    let refused = |field: &str, why: &str| ApiError::invalid_request(format!("{field}: {why}"));
    let mut change = TenantChange::default();
    for (name, value) in body {
        match name.as_str() {
            "name" => {
                change.name = Some(tenant_name(&value).map_err(|why| refused("name", why))?);
            }
            "plan" => change.plan = Some(claim_name(&value).map_err(|why| refused("plan", why))?),
            "max_accounts" => {
                change.max_accounts = Some(match value {
                    Value::Null => None,
                    other => Some(other.as_u64().ok_or_else(|| {
                        refused("max_accounts", "expected a whole number or null")
                    })?),
                });
            }
            "attrs" => change.attrs = Some(attrs(value).map_err(|why| refused("attrs", why))?),
            other => return Err(refused(other, "not a tenant field")),
        }
    }
    Ok(change)
}

/// A plan or role name: 1 to 64 of `[A-Za-z0-9_.:-]`.
fn claim_name(value: &Value) -> Result<String, &'static str> {
    let text = value.as_str().ok_or("expected a string")?;
    let well_formed = !text.is_empty()
        && text.chars().count() <= MAX_NAME_CHARS
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if !well_formed {
        return Err("expected 1 to 64 characters of A-Z a-z 0-9 _ . : -");
    }
    Ok(text.to_string())
}

/// At most 32 role names, each checked in turn (the first bad one is the answer), kept
/// once each in the order given.
fn roles(value: &Value) -> Result<Vec<String>, &'static str> {
    let items = value.as_array().ok_or("expected an array of strings")?;
    if items.len() > MAX_ROLES {
        return Err("at most 32 roles");
    }
    let mut roles: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let role = claim_name(item)?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// An `attrs` object of at most 4096 bytes serialised.
fn attrs(value: Value) -> Result<Map<String, Value>, &'static str> {
    let Value::Object(object) = value else {
        return Err("expected an object");
    };
    // Serialised as a token will carry it (what `Value::to_string` writes).
    let size = serde_json::to_string(&object).map_or(usize::MAX, |text| text.len());
    if size > MAX_ATTRS_BYTES {
        return Err("larger than 4096 bytes");
    }
    Ok(object)
}

/// An email address, or `null` for none.
fn email(value: &Value) -> Result<Option<EmailAddress>, &'static str> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => EmailAddress::parse(text)
            .map(Some)
            .map_err(EmailAddressError::reason),
        _ => Err("expected an email address or null"),
    }
}

/// A tenant id, or `null` for none.
fn tenant(value: &Value) -> Result<Option<TenantId>, &'static str> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => TenantId::parse(text).map(Some).ok_or("not a tenant id"),
        _ => Err("expected a tenant id or null"),
    }
}

/// A tenant's name: 1 to 128 printable characters once trimmed.
fn tenant_name(value: &Value) -> Result<String, &'static str> {
    let text = value.as_str().map(str::trim).unwrap_or_default();
    if text.is_empty()
        || text.chars().count() > MAX_TENANT_NAME_CHARS
        || text.chars().any(char::is_control)
    {
        return Err("expected 1 to 128 printable characters");
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auth::{AuthError, ADMIN_FIELDS};
    use crate::config::SELF_SERVICE_FIELDS;
    use crate::store::ClaimsChange;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn as_admin(value: Value) -> Result<ClaimsChange, AuthError> {
        user_patch(body(value)).judge(&ADMIN_FIELDS, &ADMIN_FIELDS)
    }

    fn refusal(value: Value) -> String {
        match as_admin(value.clone()) {
            Err(AuthError::InvalidRequest(detail)) => detail,
            other => panic!("{value}: {other:?}"),
        }
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
            assert!(as_admin(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_refusal_names_the_field_and_why() {
        for (bad, detail) in [
            (json!({"plan": 1}), "plan: expected a string"),
            (json!({"plan": null}), "plan: expected a string"),
            (
                json!({"plan": "p".repeat(65)}),
                "plan: expected 1 to 64 characters of A-Z a-z 0-9 _ . : -",
            ),
            (
                json!({"roles": "admin"}),
                "roles: expected an array of strings",
            ),
            (json!({"roles": [1]}), "roles: expected a string"),
            (
                json!({"roles": ["bad role", 1]}),
                "roles: expected 1 to 64 characters of A-Z a-z 0-9 _ . : -",
            ),
            (
                json!({"roles": (0..33).map(|i| format!("r{i}")).collect::<Vec<_>>()}),
                "roles: at most 32 roles",
            ),
            (json!({"attrs": "team=red"}), "attrs: expected an object"),
            (json!({"tenant": "acme"}), "tenant: not a tenant id"),
            (json!({"tenant": 5}), "tenant: expected a tenant id or null"),
            (
                json!({"disabled": "yes"}),
                "disabled: expected true or false",
            ),
            (
                json!({"username": "x"}),
                "username: not a field that can be changed here",
            ),
            (json!({}), "nothing to change"),
            // Fields in name order: `attrs` before `plan`, whatever the body's order.
            (json!({"plan": 1, "attrs": []}), "attrs: expected an object"),
        ] {
            assert_eq!(refusal(bad.clone()), detail, "{bad}");
        }
    }

    #[test]
    fn a_field_not_the_callers_is_forbidden_whatever_its_value() {
        let patch = user_patch(body(json!({"plan": 5, "roles": "admin"})));
        assert!(matches!(
            patch.judge(&SELF_SERVICE_FIELDS, &["plan"]),
            Err(AuthError::Forbidden(detail)) if detail == "roles: not yours to change"
        ));
        let patch = user_patch(body(json!({"roles": ["admin"], "tenant": null})));
        assert!(matches!(
            patch.judge(&SELF_SERVICE_FIELDS, &["plan"]),
            Err(AuthError::InvalidRequest(detail))
                if detail == "tenant: not a field that can be changed here"
        ));
    }

    #[test]
    fn attrs_may_take_4096_bytes_serialised_and_no_more() {
        // `{"k":"…"}` is the value and 8 bytes more.
        let fits = as_admin(json!({"attrs": {"k": "x".repeat(4088)}})).unwrap();
        assert_eq!(fits.attrs.unwrap()["k"].as_str().map(str::len), Some(4088));
        assert_eq!(
            refusal(json!({"attrs": {"k": "x".repeat(4089)}})),
            "attrs: larger than 4096 bytes"
        );
    }

    #[test]
    fn a_valid_user_patch_reads_into_its_change() {
        let tenant = TenantId::generate();
        let change = as_admin(json!({
            "plan": "Pro_2.0:eu-west",
            "roles": ["b", "a", "b"],
            "attrs": {"team": "red"},
            "tenant": tenant.to_string(),
            "disabled": false,
        }))
        .unwrap();
        assert_eq!(
            change,
            ClaimsChange {
                plan: Some("Pro_2.0:eu-west".into()),
                roles: Some(vec!["b".into(), "a".into()]),
                attrs: Some(body(json!({"team": "red"}))),
                tenant: Some(Some(tenant)),
                disabled: Some(false),
                email: None,
            }
        );
        assert_eq!(
            as_admin(json!({"tenant": null})).unwrap().tenant,
            Some(None)
        );
    }

    #[test]
    fn tenant_fields_are_read_or_refused_naming_the_field() {
        let refusal = |value: Value| match tenant_change(body(value.clone())) {
            Err(err) => err.to_string(),
            Ok(change) => panic!("{value}: accepted as {change:?}"),
        };
        for (bad, detail) in [
            (
                json!({"name": ""}),
                "name: expected 1 to 128 printable characters",
            ),
            (
                json!({"name": 5}),
                "name: expected 1 to 128 printable characters",
            ),
            (
                json!({"name": "a\u{7}b"}),
                "name: expected 1 to 128 printable characters",
            ),
            (
                json!({"name": "n".repeat(129)}),
                "name: expected 1 to 128 printable characters",
            ),
            (
                json!({"plan": "has space"}),
                "plan: expected 1 to 64 characters of A-Z a-z 0-9 _ . : -",
            ),
            (
                json!({"max_accounts": -1}),
                "max_accounts: expected a whole number or null",
            ),
            (
                json!({"max_accounts": "ten"}),
                "max_accounts: expected a whole number or null",
            ),
            (json!({"attrs": []}), "attrs: expected an object"),
            (json!({"foo": 1}), "foo: not a tenant field"),
            // The first in name order: `attrs` before `foo`.
            (json!({"foo": 1, "attrs": []}), "attrs: expected an object"),
        ] {
            assert_eq!(
                refusal(bad.clone()),
                format!("400 invalid_request: {detail}"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_valid_tenant_body_reads_into_its_change() {
        let change = tenant_change(body(json!({
            "name": "  Acme  ",
            "plan": "team",
            "max_accounts": null,
            "attrs": {"region": "eu"},
        })))
        .unwrap();
        assert_eq!(
            change,
            TenantChange {
                name: Some("Acme".into()),
                plan: Some("team".into()),
                max_accounts: Some(None),
                attrs: Some(body(json!({"region": "eu"}))),
            }
        );
        assert_eq!(
            tenant_change(body(json!({"max_accounts": 10})))
                .unwrap()
                .max_accounts,
            Some(Some(10))
        );
        assert_eq!(tenant_change(Map::new()).unwrap(), TenantChange::default());
    }
}
