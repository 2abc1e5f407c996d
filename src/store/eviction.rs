//! Removing what has expired: deny-list entries past their token's last valid moment and
//! sessions past their absolute expiry. Both are range scans over an expiry-ordered index
//! from the start up to `now`, so the work is proportional to what expired, never to the
//! size of the tables. Driven by `tasks::eviction`; `now` is a parameter so tests choose
//! the clock.

use sled::Batch;

use super::deny::INDEX_PREFIX;
use super::{codec, Store, StoreError};
use crate::domain::SessionId;

/// How much one eviction pass removed, and when the next entry expires.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EvictionReport {
    pub deny_removed: u64,
    pub sessions_removed: u64,
    /// The earliest expiry still on the deny list, if any.
    pub next_deny_expiry: Option<u64>,
}

/// Entries removed per sled batch: bounds the memory of one pass.
const BATCH_LIMIT: usize = 4096;

/// Removes every deny entry whose expiry is before `now` (a token is still accepted at
/// `exp + leeway` itself, so its entry stays through that second) and every session whose
/// expiry is at or before `now` (a session refuses to refresh from its expiry on).
///
/// # Errors
/// Storage failures; what was removed before the failure stays removed.
pub fn evict_expired(store: &Store, now: u64) -> Result<EvictionReport, StoreError> {
    let mut report = EvictionReport::default();
    let end = codec::expiry_key(INDEX_PREFIX, now, &[]);
    loop {
        let mut batch = Batch::default();
        let mut in_batch = 0u64;
        for index_key in store.deny.range(INDEX_PREFIX.to_vec()..end.clone()).keys() {
            let index_key = index_key?;
            if let Some((expiry, entry_key)) = codec::split_expiry_key(INDEX_PREFIX, &index_key) {
                // An entry extended since (a later expiry, a newer index key) stays.
                let current = store.deny.get(entry_key)?;
                let extended = current
                    .as_deref()
                    .and_then(|bytes| codec::decode_u64(bytes).ok())
                    .is_some_and(|until| until > expiry);
                if !extended {
                    batch.remove(entry_key);
                }
            }
            batch.remove(index_key);
            in_batch += 1;
            if in_batch as usize == BATCH_LIMIT {
                break;
            }
        }
        if in_batch == 0 {
            break;
        }
        store.deny.apply_batch(batch)?;
        store.note_deny_evicted(in_batch);
        report.deny_removed += in_batch;
    }
    report.next_deny_expiry = store
        .deny
        .scan_prefix(INDEX_PREFIX)
        .keys()
        .next()
        .transpose()?
        .and_then(|key| codec::split_expiry_key(INDEX_PREFIX, &key).map(|(expiry, _)| expiry));

    let session_end = codec::expiry_key(b"", now.saturating_add(1), &[]);
    let mut expired = Vec::new();
    for key in store.session_expiry.range(..session_end).keys() {
        let key = key?;
        if let Some(sid) =
            codec::split_expiry_key(b"", &key).and_then(|(_, id)| SessionId::from_slice(id))
        {
            expired.push((sid, key));
        }
    }
    for (sid, index_key) in expired {
        match store.session(sid)? {
            Some(session) => store.remove_session(sid, &session)?,
            None => {
                store.session_expiry.remove(index_key)?;
            }
        }
        report.sessions_removed += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DenyKind, SessionRecord};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 4).unwrap();
        (dir, store)
    }

    #[test]
    fn removes_only_what_expired() {
        let (_dir, store) = store();
        store.deny(DenyKind::Token, &[1; 16], 100).unwrap();
        store.deny(DenyKind::Session, &[2; 16], 200).unwrap();
        store.deny(DenyKind::Token, &[3; 16], 300).unwrap();
        assert_eq!(store.deny_entries(), 3);

        assert_eq!(evict_expired(&store, 200).unwrap().deny_removed, 1);
        let report = evict_expired(&store, 201).unwrap();

        assert_eq!(report.deny_removed, 1);
        assert_eq!(report.next_deny_expiry, Some(300));
        assert_eq!(store.deny_entries(), 1);
        assert!(!store.is_denied(DenyKind::Token, &[1; 16]).unwrap());
        assert!(!store.is_denied(DenyKind::Session, &[2; 16]).unwrap());
        assert!(store.is_denied(DenyKind::Token, &[3; 16]).unwrap());
    }

    #[test]
    fn an_extended_entry_leaves_at_its_later_expiry() {
        let (_dir, store) = store();
        store.deny(DenyKind::Session, &[7; 16], 100).unwrap();
        assert!(!store.deny(DenyKind::Session, &[7; 16], 500).unwrap());
        assert_eq!(store.deny_entries(), 1);

        let report = evict_expired(&store, 101).unwrap();

        assert_eq!(report.deny_removed, 0);
        assert!(store.is_denied(DenyKind::Session, &[7; 16]).unwrap());
        assert_eq!(evict_expired(&store, 500).unwrap().deny_removed, 0);
        assert_eq!(evict_expired(&store, 501).unwrap().deny_removed, 1);
        assert_eq!(store.deny_entries(), 0);
    }

    #[test]
    fn work_spans_batches() {
        let (_dir, store) = store();
        let total = BATCH_LIMIT as u64 + 10;
        for n in 0..total {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&n.to_be_bytes());
            store.deny(DenyKind::Token, &id, 10 + n % 5).unwrap();
        }
        let report = evict_expired(&store, 100).unwrap();
        assert_eq!(report.deny_removed, total);
        assert_eq!(report.next_deny_expiry, None);
        assert_eq!(store.deny.len(), 0);
    }

    #[test]
    fn expired_sessions_leave_with_their_indexes() {
        let (_dir, store) = store();
        let sid = SessionId::generate();
        let user = crate::domain::UserId::generate();
        let session = SessionRecord {
            user: *user.as_bytes(),
            session_key: [0; 32],
            generation: 1,
            created_at: 10,
            expires_at: 50,
            last_used: 10,
            rotated_at_ms: 10_000,
            revoked: false,
            current_access_token: String::new(),
            current_access_expires: 0,
        };
        store.insert_session(sid, &session).unwrap();

        assert_eq!(evict_expired(&store, 49).unwrap().sessions_removed, 0);
        assert_eq!(evict_expired(&store, 50).unwrap().sessions_removed, 1);

        assert!(store.session(sid).unwrap().is_none());
        assert!(store.user_session_ids(user).unwrap().is_empty());
        assert_eq!(store.session_expiry.len(), 0);
    }
}
