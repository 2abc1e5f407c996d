//! The store's contract in types: the records both backends keep, the changes made to
//! them, the errors a write refuses with, and the pure functions that decide every write
//! (a tenant has a seat, an invitation is redeemed, a mail link is redeemed once, a claim
//! change bumps `uv` and logs, a session rotates only from generation N). A backend's transaction reads, lets these
//! decide, and writes what they say; it decides nothing of its own, so the two backends
//! cannot drift apart, and the rules are tested here without a store.
//!
//! How each record lies on disk is `disk`'s business; how it is locked and written is each
//! backend's.

mod change;
mod credential;
mod deny;
mod export;
mod factors;
#[cfg(test)]
pub(crate) mod fixtures;
mod invitation;
mod mail;
mod session;
pub(crate) mod tenant;
mod user;

pub use change::{Change, ChangeRecord, ChangesAfter, Credential, LoggedChange};
pub use credential::{KeyRecord, ServiceRecord};
pub use deny::{DenyKind, EvictionReport};
pub use export::{ExportSource, Exported, ExportedSession, Items, Records};
pub use factors::{
    FactorRefusal, PasskeyRecord, TotpFactor, UserFactors, MAX_PASSKEYS, MAX_PASSKEY_NAME_CHARS,
};
pub use invitation::{
    InvitationBook, InvitationRecord, InvitationState, InvitationStatus, InvitationWriteError,
    ENDED_RETENTION_SECS, MAX_PER_TENANT,
};
pub use mail::{
    retry_delay, AfterFailure, Delivery, DeliveryOutcome, GiveUp, Issued, LinkInvalid, LinkState,
    MailFailure, MailLink, MailLinks, MailWriteError, QueuedMail, MAX_ATTEMPTS, MAX_LINKS_PER_USER,
    RETRY_BASE_SECS, RETRY_CAP_SECS,
};
pub use session::{Revocation, Rotation, SessionRecord};
pub use tenant::{TenantChange, TenantFull, TenantRecord, TenantWriteError};
pub use user::{
    AccountChange, ClaimsApplied, ClaimsChange, LinkEffect, UserRecord, UserWriteError,
};

use super::StoreError;
