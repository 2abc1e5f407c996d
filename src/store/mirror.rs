//! The in-memory mirror of what verification asks of users and tenants on every request:
//! a user's claims version, `not_before`, disabled flag and tenant, and each tenant's
//! version. The sled backend fills it at open and updates it from its own write methods
//! right after each write commits, in the same code path, so a read after an acknowledged
//! change never sees the old value (sled is written only through this process, which is
//! what makes that coherent). On a shared database, the [`replica`](super::replica) keeps
//! one current from the change log instead.
//!
//! Writes to one user are serialised by the store (see `users.rs`), so the mirror sees
//! them in commit order; tenant versions only grow, so the mirror keeps the larger one.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// What verification needs of a user (and the username forward-auth reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStamp {
    pub username: std::sync::Arc<str>,
    pub claims_version: u64,
    pub not_before: u64,
    pub disabled: bool,
    pub tenant: Option<crate::domain::TenantId>,
}

#[derive(Default)]
pub(crate) struct Mirror {
    users: RwLock<HashMap<[u8; 16], UserStamp>>,
    tenants: RwLock<HashMap<[u8; 16], u64>>,
}

impl Mirror {
    pub(crate) fn user(&self, id: &[u8; 16]) -> Option<UserStamp> {
        self.users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    pub(crate) fn set_user(&self, id: [u8; 16], stamp: UserStamp) {
        self.users
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, stamp);
    }

    pub(crate) fn remove_user(&self, id: &[u8; 16]) {
        self.users
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    pub(crate) fn tenant_version(&self, id: &[u8; 16]) -> Option<u64> {
        self.tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied()
    }

    pub(crate) fn set_tenant_version(&self, id: [u8; 16], version: u64) {
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        let entry = tenants.entry(id).or_insert(version);
        *entry = (*entry).max(version);
    }

    pub(crate) fn remove_tenant(&self, id: &[u8; 16]) {
        self.tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}
