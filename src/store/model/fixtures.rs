//! Records for the backends' own tests: one plain user, tenant, session and rotation, so
//! each backend's tests build the same ones (the contract's conformance suite keeps its
//! own, dated like a live store's).

use serde_json::Map;

use super::{Rotation, SessionRecord, TenantRecord, UserRecord};
use crate::domain::{TenantId, UserId};

/// A user of `tenant` named `name`, at `uv` 1, created at 100.
pub(crate) fn user(name: &str, tenant: Option<TenantId>) -> UserRecord {
    UserRecord {
        username: name.into(),
        password_hash: "$argon2id$not-a-hash".into(),
        tenant,
        roles: vec![],
        plan: "free".into(),
        attrs: Map::new(),
        claims_version: 1,
        not_before: 0,
        disabled: false,
        created_at: 100,
        updated_at: 100,
        email: None,
        email_verified: false,
    }
}

/// A tenant with `max_accounts` and no members yet, at `tv` 1.
pub(crate) fn tenant(max_accounts: Option<u64>) -> TenantRecord {
    TenantRecord {
        name: "Acme".into(),
        plan: "free".into(),
        max_accounts,
        attrs: Map::new(),
        version: 1,
        members: 0,
        created_at: 0,
        updated_at: 0,
    }
}

/// A live session of `user` at generation 1, from 100 to 10,000, its access token
/// `first` (until 1,000).
pub(crate) fn session(user: UserId) -> SessionRecord {
    SessionRecord {
        user,
        session_key: [1; 32],
        generation: 1,
        created_at: 100,
        expires_at: 10_000,
        last_used: 100,
        rotated_at_ms: 100_000,
        revoked: false,
        current_access_token: "first".into(),
        current_access_expires: 1_000,
    }
}

/// A refresh's rotation from `from_generation`, at 200.
pub(crate) fn rotation(from_generation: u64) -> Rotation {
    Rotation {
        from_generation,
        access_token: format!("after {from_generation}"),
        access_expires: 2_000,
        at: 200,
        at_ms: 200_500,
    }
}
