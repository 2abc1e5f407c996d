//! Ids from a route's path, parsed at the edge so `auth/` takes typed ids. An id that does
//! not parse names no resource: 404 `not_found`, as an unknown one does. Parsed in the
//! handler, after the [`Admin`](super::extract::Admin) extractor, so a caller without the
//! role learns nothing from an id's form.

use super::error::ApiError;
use crate::domain::{InvitationId, TenantId, UserId};

/// A user's id from the path.
pub(super) fn user(text: &str) -> Result<UserId, ApiError> {
    UserId::parse(text).ok_or_else(ApiError::not_found)
}

/// A tenant's id from the path.
pub(super) fn tenant(text: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(text).ok_or_else(ApiError::not_found)
}

/// An invitation's id from the path.
pub(super) fn invitation(text: &str) -> Result<InvitationId, ApiError> {
    InvitationId::parse(text).ok_or_else(ApiError::not_found)
}
