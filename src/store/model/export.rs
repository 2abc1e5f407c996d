//! Records as one store hands them to another (`claimd migrate`, sled to PostgreSQL): each
//! with its id, its bytes exactly as stored (the PostgreSQL rows carry them unchanged) and
//! the record decoded from them.

use std::collections::BTreeMap;

use super::{
    InvitationBook, KeyRecord, MailLinks, QueuedMail, ServiceRecord, SessionRecord, StoreError,
    TenantRecord, UserRecord,
};
use crate::domain::{MailId, SessionId, TenantId, UserId};

/// One record of a tree: its id, its bytes as stored, and the record they hold.
pub struct Exported<K, R> {
    pub key: K,
    /// The value exactly as sled keeps it (format byte + bincode).
    pub bytes: Vec<u8>,
    pub record: R,
}

/// A session with the newest generation whose answer was acknowledged (`session_acks`).
pub struct ExportedSession {
    pub session: Exported<SessionId, SessionRecord>,
    pub acknowledged: Option<u64>,
}

/// What a tree yields, in key order, one item at a time.
pub type Items<T> = Box<dyn Iterator<Item = Result<T, StoreError>>>;

/// The records of one tree, in key order.
pub type Records<K, R> = Items<Exported<K, R>>;

/// A store read out whole, one kind of record at a time in key order: what `claimd
/// migrate` copies from (the embedded store, opened exclusively, so what is read is one
/// state) into a backend that imports it.
pub trait ExportSource {
    /// Every user, in id order.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    fn export_users(&self) -> Result<Records<UserId, UserRecord>, StoreError>;
    /// Every tenant, in id order.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    fn export_tenants(&self) -> Result<Records<TenantId, TenantRecord>, StoreError>;
    /// Every session, with its newest acknowledged generation.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    fn export_sessions(&self) -> Result<Items<ExportedSession>, StoreError>;
    /// Every signing key, by kid.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    fn export_keys(&self) -> Result<Records<String, KeyRecord>, StoreError>;
    /// Every service credential, by client id.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    fn export_services(&self) -> Result<Records<String, ServiceRecord>, StoreError>;
    /// Every tenant's invitation book.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    fn export_invitation_books(&self) -> Result<Records<TenantId, InvitationBook>, StoreError>;
    /// Every invitation code's digest and the tenant it admits to.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    fn export_invitation_codes(&self) -> Result<Items<([u8; 32], TenantId)>, StoreError>;
    /// Every mail of the queue (queued, sent or given up, until its link expires), in id
    /// order.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    fn export_mail_queue(&self) -> Result<Records<MailId, QueuedMail>, StoreError>;
    /// Every user's mail links book, in user id order.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    fn export_mail_links(&self) -> Result<Records<UserId, MailLinks>, StoreError>;
    /// Every deny entry a token may still need at `now`, one per (kind tag, id), with the
    /// last `exp` it refuses.
    ///
    /// # Errors
    /// Storage failures, damaged entries.
    fn export_deny_entries(&self, now: u64) -> Result<BTreeMap<(u8, [u8; 16]), u64>, StoreError>;
    /// Where a change log that continues this store's starts.
    ///
    /// # Errors
    /// Storage failures.
    fn export_changes_through(&self) -> Result<u64, StoreError>;
    /// The longest access-token life ever noted.
    fn longest_access_ttl(&self) -> u64;
}
