//! The `deny` tree: the deny list and its expiry index, side by side in one tree.
//!
//! - `j` + jti (16 bytes) → expiry (u64 big-endian): a revoked access token;
//! - `s` + sid (16 bytes) → expiry: a revoked session (all its access tokens);
//! - `e` + expiry (u64 big-endian) + kind + id → (): the eviction index.
//!
//! An entry and its index key are written and removed in one atomic batch, so eviction is
//! a range scan over `e` up to now and costs the number of expired entries, never the size
//! of the table. The expiry is the last moment a token it denies could still verify
//! (`exp` + leeway): an entry never leaves while its token could come back.

use std::sync::atomic::Ordering;

use super::{codec, Store, StoreError};

/// What a deny entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyKind {
    /// One access token, by `jti`.
    Token,
    /// A whole session, by `sid`.
    Session,
}

impl DenyKind {
    pub(crate) fn tag(self) -> u8 {
        match self {
            DenyKind::Token => b'j',
            DenyKind::Session => b's',
        }
    }
}

pub(crate) const INDEX_PREFIX: &[u8] = b"e";

pub(crate) fn entry_key(kind_tag: u8, id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + id.len());
    key.push(kind_tag);
    key.extend_from_slice(id);
    key
}

impl Store {
    /// Denies `id` until `until` (unix seconds). An existing entry keeps the later expiry.
    /// Returns whether the entry is new.
    ///
    /// # Errors
    /// Storage failures.
    pub fn deny(&self, kind: DenyKind, id: &[u8; 16], until: u64) -> Result<bool, StoreError> {
        let key = entry_key(kind.tag(), id);
        // One entry's read-then-write is serialised by its stripe; the entry and its index
        // key change together in one atomic batch.
        let _turn = self.deny_locks.lock(id);
        let previous = match self.deny.get(&key)? {
            Some(bytes) => {
                Some(
                    codec::decode_u64(&bytes).map_err(|source| StoreError::Corrupt {
                        tree: "deny",
                        source,
                    })?,
                )
            }
            None => None,
        };
        let mut batch = sled::Batch::default();
        match previous {
            Some(existing) if existing >= until => return Ok(false),
            Some(existing) => batch.remove(codec::expiry_key(INDEX_PREFIX, existing, &key)),
            None => {}
        }
        batch.insert(key.clone(), &codec::encode_u64(until)[..]);
        batch.insert(codec::expiry_key(INDEX_PREFIX, until, &key), &[][..]);
        self.deny.apply_batch(batch)?;
        let added = previous.is_none();
        if added {
            self.deny_entries.fetch_add(1, Ordering::Relaxed);
        }
        Ok(added)
    }

    /// Whether `id` is on the deny list.
    ///
    /// # Errors
    /// Storage failures.
    pub fn is_denied(&self, kind: DenyKind, id: &[u8; 16]) -> Result<bool, StoreError> {
        Ok(self.deny.contains_key(entry_key(kind.tag(), id))?)
    }

    /// Entries on the deny list now.
    pub fn deny_entries(&self) -> i64 {
        self.deny_entries.load(Ordering::Relaxed)
    }

    pub(crate) fn count_deny_entries(&self) -> Result<i64, StoreError> {
        let mut count = 0i64;
        for key in self.deny.scan_prefix(INDEX_PREFIX).keys() {
            key?;
            count += 1;
        }
        Ok(count)
    }

    pub(crate) fn note_deny_evicted(&self, removed: u64) {
        self.deny_entries.fetch_sub(
            i64::try_from(removed).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }
}
