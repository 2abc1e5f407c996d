//! The `users` tree (user id → [`UserRecord`]) and its unique index `usernames`
//! (canonical username → user id), always written together in one transaction.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use super::{codec, corrupt, Store, StoreError};
use crate::domain::{TenantId, UserId, Username};

/// A user as stored. On-disk type: add fields only at the end, and bump
/// [`codec::CURRENT_FORMAT`] with a decoder for the old shape when changing one.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct UserRecord {
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub tenant: Option<[u8; 16]>,
    pub roles: Vec<String>,
    pub plan: String,
    /// The `attrs` object as JSON text (bincode cannot carry `serde_json::Value`).
    pub attrs: String,
    /// `uv`: bumped by every change to what a token says about the user.
    pub claims_version: u64,
    /// Tokens issued before this unix second are revoked.
    pub not_before: u64,
    pub disabled: bool,
    pub created_at: u64,
    pub updated_at: u64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("tenant", &self.tenant.map(TenantId::from_bytes))
            .field("roles", &self.roles)
            .field("plan", &self.plan)
            .field("claims_version", &self.claims_version)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl UserRecord {
    /// The tenant as a typed id.
    pub fn tenant_id(&self) -> Option<TenantId> {
        self.tenant.map(TenantId::from_bytes)
    }
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("username taken")]
    UsernameTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Creates a user and claims its username, atomically.
    ///
    /// # Errors
    /// `UsernameTaken` when the canonical name exists; storage failures.
    pub fn create_user(&self, id: UserId, user: &UserRecord) -> Result<(), CreateUserError> {
        let value = codec::encode(user).map_err(corrupt("users"))?;
        let outcome = (&self.users, &self.usernames).transaction(
            |(users, usernames): &(TransactionalTree, TransactionalTree)| {
                if usernames.get(user.username.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(()));
                }
                usernames.insert(user.username.as_bytes(), &id.as_bytes()[..])?;
                users.insert(&id.as_bytes()[..], value.clone())?;
                Ok(())
            },
        );
        match outcome {
            Ok(()) => Ok(()),
            Err(sled::transaction::TransactionError::Abort(())) => {
                Err(CreateUserError::UsernameTaken)
            }
            Err(sled::transaction::TransactionError::Storage(err)) => {
                Err(CreateUserError::Store(err.into()))
            }
        }
    }

    /// Reads a user.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    pub fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.users
            .get(id.as_bytes())?
            .map(|bytes| codec::decode(&bytes).map_err(corrupt("users")))
            .transpose()
    }

    /// Looks a user up by canonical username.
    ///
    /// # Errors
    /// Storage failures and damaged index entries.
    pub fn user_id_by_name(&self, name: &Username) -> Result<Option<UserId>, StoreError> {
        match self.usernames.get(name.as_str().as_bytes())? {
            None => Ok(None),
            Some(bytes) => UserId::from_slice(&bytes)
                .map(Some)
                .ok_or(StoreError::Corrupt {
                    tree: "usernames",
                    source: codec::CodecError::Decode("user id is not 16 bytes".into()),
                }),
        }
    }

    /// Replaces a user's record (the username is unchanged).
    ///
    /// # Errors
    /// Storage failures.
    pub fn put_user(&self, id: UserId, user: &UserRecord) -> Result<(), StoreError> {
        let value = codec::encode(user).map_err(corrupt("users"))?;
        self.users.insert(id.as_bytes(), value)?;
        Ok(())
    }
}
