//! A tenant ([`TenantRecord`]) and the rules of its seats and changes: a member is
//! admitted only while members plus the seats pending invitations hold stay under
//! `max_accounts` ([`TenantRecord::admit`]), a change bumps `tv` ([`TenantRecord::apply`]),
//! only an empty tenant is deleted.

use serde_json::{Map, Value};

use super::{Change, InvitationWriteError, StoreError, UserWriteError};
use crate::domain::TenantId;

/// A tenant as the store hands it out (its on-disk shapes are in `disk::tenant`).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub name: String,
    pub plan: String,
    pub max_accounts: Option<u64>,
    /// The `attrs` object, parsed once when the record is read.
    pub attrs: Map<String, Value>,
    /// `tv`: bumped by every change to the tenant.
    pub version: u64,
    /// Users in the tenant now.
    pub members: u64,
    pub created_at: u64,
    pub updated_at: u64,
}

/// A change to a tenant; `None` leaves a field as it is.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TenantChange {
    pub name: Option<String>,
    pub plan: Option<String>,
    /// `Some(None)` removes the limit.
    pub max_accounts: Option<Option<u64>>,
    pub attrs: Option<Map<String, Value>>,
}

/// Why a tenant write was refused.
#[derive(Debug, thiserror::Error)]
pub enum TenantWriteError {
    #[error("no such tenant")]
    NotFound,
    #[error("tenant still has members")]
    NotEmpty,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The tenant has no seat left: its members and the seats its pending invitations hold
/// reach `max_accounts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantFull;

impl From<TenantFull> for UserWriteError {
    fn from(_: TenantFull) -> UserWriteError {
        UserWriteError::TenantFull
    }
}

impl From<TenantFull> for InvitationWriteError {
    fn from(_: TenantFull) -> InvitationWriteError {
        InvitationWriteError::TenantFull
    }
}

impl TenantRecord {
    /// Whether one more seat may be taken while `pending` invitations hold theirs.
    pub fn has_seat(&self, pending: u64) -> Result<(), TenantFull> {
        let taken = self.members.saturating_add(pending);
        match self.max_accounts {
            Some(max) if taken >= max => Err(TenantFull),
            _ => Ok(()),
        }
    }

    /// Counts one member in, if a seat is free beside the `pending` invitations' (an
    /// invited member's own invitation is used up before, so its seat is not counted
    /// twice).
    pub fn admit(&mut self, pending: u64) -> Result<(), TenantFull> {
        self.has_seat(pending)?;
        self.members += 1;
        Ok(())
    }

    /// Counts one member out.
    pub fn count_out(&mut self) {
        self.members = self.members.saturating_sub(1);
    }

    /// Applies `change` at `now`, bumping `tv` (every member's token turns stale, whatever
    /// moved); the change-log record the write appends.
    pub fn apply(&mut self, id: TenantId, change: &TenantChange, now: u64) -> Change {
        if let Some(name) = &change.name {
            self.name.clone_from(name);
        }
        if let Some(plan) = &change.plan {
            self.plan.clone_from(plan);
        }
        if let Some(max) = change.max_accounts {
            self.max_accounts = max;
        }
        if let Some(attrs) = &change.attrs {
            self.attrs.clone_from(attrs);
        }
        self.version += 1;
        self.updated_at = now;
        self.version_change(id)
    }

    /// The change-log record of this tenant's version, as `id`.
    pub fn version_change(&self, id: TenantId) -> Change {
        Change::Tenant {
            tenant: id,
            version: self.version,
        }
    }

    /// Whether it may be deleted: only with no members left.
    pub fn may_delete(&self) -> Result<(), TenantWriteError> {
        if self.members > 0 {
            return Err(TenantWriteError::NotEmpty);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::model::fixtures;

    /// The fixtures' tenant with `members` already in it.
    pub(crate) fn tenant(max_accounts: Option<u64>, members: u64) -> TenantRecord {
        TenantRecord {
            members,
            ..fixtures::tenant(max_accounts)
        }
    }

    #[test]
    fn a_seat_is_free_while_members_and_pending_invitations_stay_under_the_limit() {
        let mut acme = tenant(Some(3), 1);
        assert_eq!(acme.admit(1), Ok(()));
        assert_eq!(acme.members, 2);
        assert_eq!(acme.admit(1), Err(TenantFull));
        assert_eq!(acme.members, 2);
        assert_eq!(acme.admit(0), Ok(()));
        assert_eq!(acme.has_seat(0), Err(TenantFull));
    }

    #[test]
    fn a_tenant_without_a_limit_always_has_a_seat() {
        let mut open = tenant(None, u64::MAX - 1);
        assert_eq!(open.admit(u64::MAX), Ok(()));
    }

    #[test]
    fn counting_out_never_goes_below_zero() {
        let mut empty = tenant(None, 0);
        empty.count_out();
        assert_eq!(empty.members, 0);
    }

    #[test]
    fn any_change_bumps_tv_and_logs_it() {
        let id = TenantId::generate();
        let mut acme = tenant(Some(3), 1);
        let logged = acme.apply(id, &TenantChange::default(), 40);
        assert_eq!((acme.version, acme.updated_at), (2, 40));
        assert_eq!(
            logged,
            Change::Tenant {
                tenant: id,
                version: 2
            }
        );
        let change = TenantChange {
            plan: Some("pro".into()),
            max_accounts: Some(None),
            ..TenantChange::default()
        };
        acme.apply(id, &change, 41);
        assert_eq!(
            (acme.plan.as_str(), acme.max_accounts, acme.version),
            ("pro", None, 3)
        );
    }

    #[test]
    fn only_an_empty_tenant_may_be_deleted() {
        assert!(tenant(None, 0).may_delete().is_ok());
        assert!(matches!(
            tenant(None, 1).may_delete(),
            Err(TenantWriteError::NotEmpty)
        ));
    }
}
