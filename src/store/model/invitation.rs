//! A tenant's invitations ([`InvitationBook`], every invitation of one tenant in one
//! record) and the rules both backends apply to it: issuing one takes a seat, redeeming
//! one spends it on the new member, revoking frees it, an expired one frees it without a
//! write, and ended ones leave the book after [`ENDED_RETENTION_SECS`]. The code index
//! beside the book is each backend's own; these functions say which codes it gains and
//! loses.

use super::{StoreError, TenantRecord};
use crate::domain::{InvitationId, UserId};
/// How long a used, revoked or expired invitation stays listed before it is dropped.
pub const ENDED_RETENTION_SECS: u64 = 24 * 60 * 60;

/// Most invitations one tenant's book holds (outstanding and recently ended together).
pub const MAX_PER_TENANT: usize = 1000;

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    /// Not used or revoked yet (it may still have expired: see [`InvitationRecord::status`]).
    Outstanding,
    Used,
    Revoked,
}

/// What an admin sees of an invitation now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    Pending,
    Used,
    Revoked,
    Expired,
}

/// One invitation as the store hands it out (its on-disk shapes are in
/// `disk::invitation`).
#[derive(Clone, PartialEq)]
pub struct InvitationRecord {
    pub id: InvitationId,
    /// SHA-256 of the code; the code itself is never stored.
    pub code_digest: [u8; 32],
    pub created_at: u64,
    pub expires_at: u64,
    pub state: InvitationState,
    /// When it was used or revoked (0 while outstanding).
    pub ended_at: u64,
    /// The account it admitted.
    pub used_by: Option<UserId>,
}

impl std::fmt::Debug for InvitationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvitationRecord")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl InvitationRecord {
    /// A new outstanding invitation.
    pub fn new(code_digest: [u8; 32], created_at: u64, expires_at: u64) -> InvitationRecord {
        InvitationRecord {
            id: InvitationId::generate(),
            code_digest,
            created_at,
            expires_at,
            state: InvitationState::Outstanding,
            ended_at: 0,
            used_by: None,
        }
    }

    /// Its state at `now`.
    pub fn status(&self, now: u64) -> InvitationStatus {
        match self.state {
            InvitationState::Used => InvitationStatus::Used,
            InvitationState::Revoked => InvitationStatus::Revoked,
            InvitationState::Outstanding if now >= self.expires_at => InvitationStatus::Expired,
            InvitationState::Outstanding => InvitationStatus::Pending,
        }
    }

    /// When it stopped counting (used, revoked or expired), if it has.
    fn ended(&self, now: u64) -> Option<u64> {
        match self.status(now) {
            InvitationStatus::Pending => None,
            InvitationStatus::Expired => Some(self.expires_at),
            InvitationStatus::Used | InvitationStatus::Revoked => Some(self.ended_at),
        }
    }
}

/// Every invitation of one tenant, oldest first (its on-disk shapes are in
/// `disk::invitation`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvitationBook {
    pub invitations: Vec<InvitationRecord>,
}

impl InvitationBook {
    /// Invitations holding a seat at `now`.
    pub fn pending(&self, now: u64) -> u64 {
        let pending = self
            .invitations
            .iter()
            .filter(|invitation| invitation.status(now) == InvitationStatus::Pending)
            .count();
        u64::try_from(pending).unwrap_or(u64::MAX)
    }

    /// Drops invitations ended more than [`ENDED_RETENTION_SECS`] ago; returns the digests
    /// of their codes, for the index.
    pub(crate) fn prune(&mut self, now: u64) -> Vec<[u8; 32]> {
        let mut dropped = Vec::new();
        self.invitations.retain(|invitation| {
            let keep = invitation
                .ended(now)
                .is_none_or(|ended| now < ended.saturating_add(ENDED_RETENTION_SECS));
            if !keep {
                dropped.push(invitation.code_digest);
            }
            keep
        });
        dropped
    }
}

/// Why an invitation write was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvitationWriteError {
    #[error("no such tenant")]
    UnknownTenant,
    #[error("no such invitation")]
    NotFound,
    #[error("tenant is full")]
    TenantFull,
    #[error("the tenant holds too many invitations")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl InvitationBook {
    /// Adds `invitation` if the book has room and `tenant` a seat for it beside the
    /// pending ones (after [`InvitationBook::prune`]: ended invitations make no room).
    pub fn issue(
        &mut self,
        tenant: &TenantRecord,
        invitation: InvitationRecord,
        now: u64,
    ) -> Result<(), InvitationWriteError> {
        if self.invitations.len() >= MAX_PER_TENANT {
            return Err(InvitationWriteError::TooMany);
        }
        tenant.has_seat(self.pending(now))?;
        self.invitations.push(invitation);
        Ok(())
    }

    /// The pending invitation a code names at `now`, if any.
    fn pending_with(&mut self, code_digest: &[u8; 32], now: u64) -> Option<&mut InvitationRecord> {
        self.invitations.iter_mut().find(|invitation| {
            invitation.code_digest == *code_digest
                && invitation.status(now) == InvitationStatus::Pending
        })
    }

    /// Whether a code names a pending invitation of this book at `now`.
    pub fn admits(&self, code_digest: &[u8; 32], now: u64) -> bool {
        self.invitations.iter().any(|invitation| {
            invitation.code_digest == *code_digest
                && invitation.status(now) == InvitationStatus::Pending
        })
    }

    /// Spends the pending invitation with this code on `user`; `false` (and nothing
    /// changed) when the code names none: unknown, used, revoked and expired alike. The
    /// backend takes the code out of its index in the same write.
    pub fn redeem(&mut self, code_digest: &[u8; 32], user: UserId, now: u64) -> bool {
        let Some(invitation) = self.pending_with(code_digest, now) else {
            return false;
        };
        invitation.state = InvitationState::Used;
        invitation.ended_at = now;
        invitation.used_by = Some(user);
        true
    }

    /// Revokes invitation `id`: the digest of its code, for the index, when it was still
    /// pending; `None` when it had already ended (nothing changes).
    ///
    /// # Errors
    /// `NotFound`: no invitation of this book has that id.
    pub fn revoke(
        &mut self,
        id: InvitationId,
        now: u64,
    ) -> Result<Option<[u8; 32]>, InvitationWriteError> {
        let invitation = self
            .invitations
            .iter_mut()
            .find(|invitation| invitation.id == id)
            .ok_or(InvitationWriteError::NotFound)?;
        if invitation.status(now) != InvitationStatus::Pending {
            return Ok(None);
        }
        invitation.state = InvitationState::Revoked;
        invitation.ended_at = now;
        Ok(Some(invitation.code_digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::tenant::tests::tenant;

    fn book_of(codes: &[(u8, u64)]) -> InvitationBook {
        InvitationBook {
            invitations: codes
                .iter()
                .map(|&(code, expires_at)| InvitationRecord::new([code; 32], 0, expires_at))
                .collect(),
        }
    }

    #[test]
    fn pending_invitations_hold_seats_until_they_expire() {
        let book = book_of(&[(1, 100), (2, 200)]);
        assert_eq!(book.pending(50), 2);
        assert_eq!(book.pending(100), 1);
        assert_eq!(book.pending(200), 0);
    }

    #[test]
    fn issuing_takes_a_seat_beside_members_and_pending_invitations() {
        let mut book = book_of(&[(1, 100)]);
        let acme = tenant(Some(3), 1);
        assert!(book
            .issue(&acme, InvitationRecord::new([2; 32], 0, 100), 10)
            .is_ok());
        assert!(matches!(
            book.issue(&acme, InvitationRecord::new([3; 32], 0, 100), 10),
            Err(InvitationWriteError::TenantFull)
        ));
        // Once one expires, its seat is free again without a write.
        assert!(book
            .issue(&acme, InvitationRecord::new([3; 32], 0, 300), 150)
            .is_ok());
        assert_eq!(book.invitations.len(), 3);
    }

    #[test]
    fn a_full_book_takes_no_more_even_for_a_tenant_without_a_limit() {
        let mut book = InvitationBook {
            invitations: vec![InvitationRecord::new([1; 32], 0, 100); MAX_PER_TENANT],
        };
        assert!(matches!(
            book.issue(&tenant(None, 0), InvitationRecord::new([2; 32], 0, 100), 10),
            Err(InvitationWriteError::TooMany)
        ));
    }

    #[test]
    fn a_code_is_redeemed_once_and_only_while_pending() {
        let mut book = book_of(&[(1, 100), (2, 100)]);
        let user = UserId::generate();
        assert!(book.admits(&[1; 32], 10));
        assert!(book.redeem(&[1; 32], user, 10));
        assert!(!book.admits(&[1; 32], 10));
        assert!(!book.redeem(&[1; 32], UserId::generate(), 11));
        assert_eq!(book.invitations[0].used_by, Some(user));
        assert_eq!(book.invitations[0].status(20), InvitationStatus::Used);
        assert!(!book.redeem(&[2; 32], user, 100), "expired");
        assert!(!book.redeem(&[9; 32], user, 10), "unknown");
        assert_eq!(book.pending(10), 1);
    }

    #[test]
    fn revoking_frees_a_pending_invitation_and_leaves_an_ended_one() {
        let mut book = book_of(&[(1, 100), (2, 100)]);
        let (first, second) = (book.invitations[0].id, book.invitations[1].id);
        assert_eq!(book.revoke(first, 10).ok(), Some(Some([1; 32])));
        assert_eq!(book.invitations[0].status(10), InvitationStatus::Revoked);
        assert_eq!(book.revoke(first, 11).ok(), Some(None));
        assert_eq!(book.revoke(second, 100).ok(), Some(None), "expired");
        assert!(matches!(
            book.revoke(InvitationId::generate(), 10),
            Err(InvitationWriteError::NotFound)
        ));
    }

    #[test]
    fn ended_invitations_leave_the_book_after_the_retention() {
        let mut book = book_of(&[(1, 100), (2, 100_000)]);
        let first = book.invitations[0].id;
        book.revoke(first, 50).ok();
        assert!(book.prune(50 + ENDED_RETENTION_SECS - 1).is_empty());
        assert_eq!(book.prune(50 + ENDED_RETENTION_SECS), vec![[1; 32]]);
        assert_eq!(book.invitations.len(), 1);
    }
}
