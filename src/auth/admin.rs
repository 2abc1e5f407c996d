//! The [`Administration`] service (role `admin`): users (list, read with live sessions,
//! change, delete, end every session) and tenants (create, read, list, change, delete);
//! its invitations, service credentials and backups are in `invitations.rs`,
//! `services.rs` and `backup.rs`. A tenant
//! change bumps its version (`tv`): one write makes every member's token stale.

use serde::Serialize;
use serde_json::{Map, Value};

use super::caller::Authenticated;
use super::claims::{RefreshedToken, UserPatch, ADMIN_FIELDS};
use super::{AuthError, UserView};
use crate::domain::{SessionId, TenantId, UserId};
use crate::store::{TenantChange, TenantRecord};
use std::sync::Arc;

use super::accounts::Accounts;
use super::core::Core;
use super::sessions::Sessions;
use super::verification::Verification;

/// The role that may use the administration API.
pub const ADMIN_ROLE: &str = "admin";
/// Largest page of users.
pub const MAX_PAGE: usize = 500;

/// A live session as an admin sees it (never its key).
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub last_used: u64,
    pub generation: u64,
}

/// A tenant as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub max_accounts: Option<u64>,
    pub attrs: Map<String, Value>,
    pub version: u64,
    pub members: u64,
    pub created_at: u64,
    pub updated_at: u64,
}

impl TenantView {
    fn new(id: TenantId, tenant: &TenantRecord) -> TenantView {
        TenantView {
            id: id.to_string(),
            name: tenant.name.clone(),
            plan: tenant.plan.clone(),
            max_accounts: tenant.max_accounts,
            attrs: tenant.attrs.clone(),
            version: tenant.version,
            members: tenant.members,
            created_at: tenant.created_at,
            updated_at: tenant.updated_at,
        }
    }
}

/// Administration: users, tenants, invitations, service credentials, backups.
pub struct Administration {
    pub(super) core: Arc<Core>,
    pub(super) sessions: Arc<Sessions>,
    pub(super) verification: Arc<Verification>,
    pub(super) accounts: Arc<Accounts>,
}

impl Administration {
    pub(crate) fn new(
        core: Arc<Core>,
        sessions: Arc<Sessions>,
        verification: Arc<Verification>,
        accounts: Arc<Accounts>,
    ) -> Administration {
        Administration {
            core,
            sessions,
            verification,
            accounts,
        }
    }

    /// Authenticates an admin (see [`Verification::require_admin`]).
    ///
    /// # Errors
    /// Any verdict but valid; `Forbidden` without the role.
    pub async fn require_admin(&self, token: &str) -> Result<Authenticated, AuthError> {
        self.verification.require_admin(token).await
    }
}

impl Administration {
    /// A page of users created after `after`, and the cursor of the next page.
    ///
    /// # Errors
    /// `InvalidRequest` for a limit outside 1 to 500.
    pub async fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<(Vec<UserView>, Option<String>), AuthError> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AuthError::InvalidRequest("limit: expected 1 to 500".into()));
        }
        let mut page = self.core.store.list_users(after, limit + 1).await?;
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more {
            page.last().map(|(id, _)| id.to_string())
        } else {
            None
        };
        Ok((
            page.iter()
                .map(|(id, user)| UserView::new(*id, user))
                .collect(),
            next,
        ))
    }

    /// One user with its live sessions.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get_user(&self, id: UserId) -> Result<(UserView, Vec<SessionView>), AuthError> {
        let user = self.core.store.user(id).await?.ok_or(AuthError::NotFound)?;
        let now = self.core.clock.now();
        let mut sessions = Vec::new();
        for sid in self.core.store.user_session_ids(id).await? {
            if let Some(session) = self.core.store.session(sid).await? {
                if !session.revoked && now < session.expires_at {
                    sessions.push(SessionView {
                        id: sid.to_string(),
                        created_at: session.created_at,
                        expires_at: session.expires_at,
                        last_used: session.last_used,
                        generation: session.generation,
                    });
                }
            }
        }
        Ok((UserView::new(id, &user), sessions))
    }

    /// Changes a user. When the admin changes itself, the answer carries its new token.
    ///
    /// # Errors
    /// `NotFound`, `InvalidRequest`, `TenantFull`.
    pub async fn patch_user(
        &self,
        caller: &Authenticated,
        id: UserId,
        patch: UserPatch,
    ) -> Result<(UserView, Option<RefreshedToken>), AuthError> {
        let patch = patch.judge(&ADMIN_FIELDS, &ADMIN_FIELDS)?;
        let user = self.accounts.apply_user_patch(id, &patch).await?;
        tracing::info!(admin = %caller.user_id, user = %id, uv = user.claims_version, "claims changed by an admin");
        let token = if id == caller.user_id && !user.disabled {
            Some(self.accounts.refreshed_token(caller).await?)
        } else {
            None
        };
        Ok((UserView::new(id, &user), token))
    }

    /// Deletes a user: its sessions are revoked (their access tokens denied) and removed.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn delete_user(&self, caller: &Authenticated, id: UserId) -> Result<(), AuthError> {
        if self.core.store.user(id).await?.is_none() {
            return Err(AuthError::NotFound);
        }
        self.sessions.end_user_sessions(id, None).await?;
        self.core.store.delete_user(id).await?;
        for sid in self.core.store.user_session_ids(id).await? {
            self.remove_session(sid).await?;
        }
        self.core.store.wait_durable().await?;
        tracing::info!(admin = %caller.user_id, user = %id, "user deleted");
        Ok(())
    }

    async fn remove_session(&self, sid: SessionId) -> Result<(), AuthError> {
        if let Some(session) = self.core.store.session(sid).await? {
            self.core.store.remove_session(sid, &session).await?;
        }
        Ok(())
    }

    /// Ends every session of a user (logout everywhere).
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn revoke_user(&self, id: UserId) -> Result<(), AuthError> {
        if self.core.store.user(id).await?.is_none() {
            return Err(AuthError::NotFound);
        }
        self.sessions.end_everywhere(id).await
    }

    /// Creates a tenant with `fields`: a name is required; without a plan it gets the one
    /// new accounts start on, without `max_accounts` no limit.
    ///
    /// # Errors
    /// `InvalidRequest` without a name.
    pub async fn create_tenant(&self, fields: TenantChange) -> Result<TenantView, AuthError> {
        let name = fields
            .name
            .ok_or_else(|| AuthError::InvalidRequest("name: required".into()))?;
        let now = self.core.clock.now();
        let tenant = TenantRecord {
            name,
            plan: fields
                .plan
                .unwrap_or_else(|| super::accounts::DEFAULT_PLAN.to_string()),
            max_accounts: fields.max_accounts.flatten(),
            attrs: fields.attrs.unwrap_or_default(),
            version: 1,
            members: 0,
            created_at: now,
            updated_at: now,
        };
        let id = TenantId::generate();
        self.core.store.create_tenant(id, &tenant).await?;
        self.core.store.wait_durable().await?;
        Ok(TenantView::new(id, &tenant))
    }

    /// One tenant.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get_tenant(&self, id: TenantId) -> Result<TenantView, AuthError> {
        let tenant = self
            .core
            .store
            .tenant(id)
            .await?
            .ok_or(AuthError::NotFound)?;
        Ok(TenantView::new(id, &tenant))
    }

    /// Every tenant.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_tenants(&self) -> Result<Vec<TenantView>, AuthError> {
        Ok(self
            .core
            .store
            .list_tenants()
            .await?
            .iter()
            .map(|(id, tenant)| TenantView::new(*id, tenant))
            .collect())
    }

    /// Changes a tenant and bumps its version: every member's token turns stale.
    ///
    /// # Errors
    /// `InvalidRequest` for a change of nothing; `NotFound`.
    pub async fn patch_tenant(
        &self,
        id: TenantId,
        fields: &TenantChange,
    ) -> Result<TenantView, AuthError> {
        if *fields == TenantChange::default() {
            return Err(AuthError::InvalidRequest("nothing to change".into()));
        }
        let tenant = self
            .core
            .store
            .change_tenant(id, fields, self.core.clock.now())
            .await?;
        self.core.store.wait_durable().await?;
        tracing::info!(tenant = %id, tv = tenant.version, "tenant changed");
        Ok(TenantView::new(id, &tenant))
    }

    /// Deletes a tenant without members.
    ///
    /// # Errors
    /// `NotFound`, `TenantNotEmpty`.
    pub async fn delete_tenant(&self, id: TenantId) -> Result<(), AuthError> {
        self.core.store.delete_tenant(id).await?;
        self.core.store.wait_durable().await?;
        Ok(())
    }
}
