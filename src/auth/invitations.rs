//! Invitations into a tenant: an admin creates one (a single-use code with an expiry, shown
//! once), lists and revokes them; registration redeems a code to join the invitation's
//! tenant (see `accounts.rs`). Membership of a tenant is granted this way or by an admin
//! directly, never taken: a tenant id is no secret (it travels in every member's token).
//!
//! Codes are 256 random bits; the store keeps only their SHA-256 digest, which is enough
//! for a value nobody can guess, and which a stolen store cannot turn back into a code.
//! Codes never reach a log line or a `Debug` output.

use secrecy::ExposeSecret as _;
use serde::Serialize;

use super::admin::Administration;
use super::secrets::{code_digest, random_secret};
use super::AuthError;
use crate::domain::{InvitationId, TenantId};
use crate::secret::SecretString;
use crate::store::{InvitationRecord, InvitationStatus, InvitationWriteError};

/// How long an invitation lives when the admin names no `expires_in`: a week.
pub const DEFAULT_INVITATION_TTL_SECS: u64 = 7 * 24 * 60 * 60;
/// The longest life an invitation may be given: 30 days.
pub const MAX_INVITATION_TTL_SECS: u64 = 30 * 24 * 60 * 60;

/// A new invitation, as shown once to the admin who created it: the JSON answer carries
/// the code, `Debug` does not.
#[derive(Debug, Clone, Serialize)]
pub struct NewInvitation {
    pub id: String,
    #[serde(serialize_with = "crate::secret::serialize")]
    pub code: SecretString,
    pub tenant: String,
    pub created_at: u64,
    pub expires_at: u64,
}

/// An invitation as listed: never its code.
#[derive(Debug, Clone, Serialize)]
pub struct InvitationView {
    pub id: String,
    pub tenant: String,
    pub created_at: u64,
    pub expires_at: u64,
    /// `pending`, `used`, `revoked` or `expired`.
    pub state: &'static str,
    /// The account it admitted, once used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
}

impl InvitationView {
    fn new(tenant: TenantId, record: &InvitationRecord, now: u64) -> InvitationView {
        InvitationView {
            id: record.id.to_string(),
            tenant: tenant.to_string(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            state: match record.status(now) {
                InvitationStatus::Pending => "pending",
                InvitationStatus::Used => "used",
                InvitationStatus::Revoked => "revoked",
                InvitationStatus::Expired => "expired",
            },
            used_by: record.used_by.map(|user| user.to_string()),
        }
    }
}

impl From<InvitationWriteError> for AuthError {
    fn from(err: InvitationWriteError) -> Self {
        match err {
            InvitationWriteError::UnknownTenant | InvitationWriteError::NotFound => {
                AuthError::NotFound
            }
            InvitationWriteError::TenantFull => AuthError::TenantFull,
            InvitationWriteError::TooMany => AuthError::TooManyInvitations,
            InvitationWriteError::Store(err) => AuthError::Store(err),
        }
    }
}

impl Administration {
    /// Creates an invitation into a tenant, living `expires_in` seconds (default
    /// [`DEFAULT_INVITATION_TTL_SECS`]). It holds a seat until used, revoked or expired.
    /// Durable on return.
    ///
    /// # Errors
    /// `NotFound` for an unknown tenant; `InvalidRequest` for a life outside 1 second to
    /// [`MAX_INVITATION_TTL_SECS`]; `TenantFull` when members and outstanding invitations
    /// fill `max_accounts`; `TooManyInvitations`.
    pub async fn create_invitation(
        &self,
        tenant: TenantId,
        expires_in: Option<u64>,
    ) -> Result<NewInvitation, AuthError> {
        let life = expires_in.unwrap_or(DEFAULT_INVITATION_TTL_SECS);
        if !(1..=MAX_INVITATION_TTL_SECS).contains(&life) {
            return Err(AuthError::InvalidRequest(format!(
                "expires_in: expected 1 to {MAX_INVITATION_TTL_SECS} seconds"
            )));
        }
        let code = random_secret(32);
        let now = self.core.clock.now();
        let record = InvitationRecord::new(
            code_digest(code.expose_secret()),
            now,
            now.saturating_add(life),
        );
        self.core
            .store
            .create_invitation(tenant, &record, now)
            .await?;
        self.core.store.wait_durable().await?;
        let id = record.id;
        tracing::info!(%tenant, invitation = %id, expires_at = record.expires_at, "invitation created");
        Ok(NewInvitation {
            id: id.to_string(),
            code,
            tenant: tenant.to_string(),
            created_at: record.created_at,
            expires_at: record.expires_at,
        })
    }

    /// A tenant's invitations, oldest first, without their codes.
    ///
    /// # Errors
    /// `NotFound` for an unknown tenant.
    pub async fn list_invitations(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<InvitationView>, AuthError> {
        let now = self.core.clock.now();
        Ok(self
            .core
            .store
            .invitations(tenant)
            .await?
            .ok_or(AuthError::NotFound)?
            .iter()
            .map(|record| InvitationView::new(tenant, record, now))
            .collect())
    }

    /// Revokes an invitation: its code admits no one, its seat is free. Revoking one that
    /// has already ended changes nothing. Durable on return.
    ///
    /// # Errors
    /// `NotFound` for an unknown tenant or invitation.
    pub async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: InvitationId,
    ) -> Result<(), AuthError> {
        self.core
            .store
            .revoke_invitation(tenant, id, self.core.clock.now())
            .await?;
        self.core.store.wait_durable().await?;
        tracing::info!(%tenant, invitation = %id, "invitation revoked");
        Ok(())
    }
}
