//! The change log's records as both backends hand them out: a [`Change`] to how tokens are
//! answered, as logged ([`LoggedChange`]) and as published ([`ChangeRecord`]), and what a
//! reader resuming after an id gets ([`ChangesAfter`]).

use crate::domain::{SessionId, TenantId, TokenId, UserId};

/// One change to how tokens are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A user's verification state after the write: claims version (`uv`), `not_before`
    /// and whether the account is disabled.
    User {
        user: UserId,
        claims_version: u64,
        not_before: u64,
        disabled: bool,
    },
    /// A user was deleted: no token of theirs verifies again.
    UserDeleted { user: UserId },
    /// A tenant's version (`tv`) moved.
    Tenant { tenant: TenantId, version: u64 },
    /// A tenant was deleted.
    TenantDeleted { tenant: TenantId },
    /// A session ended: its access tokens up to `exp` (the latest one it can carry) are
    /// refused.
    SessionRevoked { sid: SessionId, exp: u64 },
    /// One access token was revoked until its `exp`.
    TokenRevoked { jti: TokenId, exp: u64 },
    /// A key was published, began signing, or was retired: fetch the JWKS again.
    KeysChanged,
    /// A user's whole verification stamp, written when the account is created and when it
    /// moves between tenants: what a node that did not make the write needs to verify the
    /// user's tokens (the feed does not serve it; a verifier needs only what moved).
    Account {
        user: UserId,
        username: String,
        tenant: Option<TenantId>,
        claims_version: u64,
        not_before: u64,
        disabled: bool,
    },
    /// A user's credential changed (CAEP `credential-change`): a password reset or change.
    /// It moves nothing verification reads (the [`Change::User`] beside it does); the feed
    /// tells subscribers, who may end what they hold for the user.
    CredentialChanged {
        user: UserId,
        credential: Credential,
    },
}

/// Which credential a [`Change::CredentialChanged`] names (CAEP's `credential_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Password,
}

impl Credential {
    /// CAEP's `credential_type` value.
    pub fn caep_type(self) -> &'static str {
        match self {
            Credential::Password => "password",
        }
    }
}

/// A change as the log holds it: with the time it was written (seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    pub at: u64,
    pub change: Change,
}

/// A published record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub id: u64,
    pub at: u64,
    pub change: Change,
}

/// What a reader gets when resuming after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangesAfter {
    /// The published records after the id asked for, oldest first (maybe none, maybe
    /// cut at the limit), and the highest published id when they were read: with every
    /// record up to it read, a reader has seen the log through `through`.
    Records {
        records: Vec<ChangeRecord>,
        through: u64,
    },
    /// Records after the id asked for were evicted: the reader must start over from a
    /// snapshot.
    Gone { evicted_through: u64 },
    /// The id asked for was never published by this log (the store was restored from an
    /// older backup, say): the reader's state is from another history and must start over.
    Ahead { through: u64 },
}
