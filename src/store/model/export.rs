//! Records as one store hands them to another (`claimd migrate`, sled to PostgreSQL): each
//! with its id, its bytes exactly as stored (the PostgreSQL rows carry them unchanged) and
//! the record decoded from them.

use super::{SessionRecord, StoreError};
use crate::domain::SessionId;

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
