//! Removing what has expired: deny-list entries past their token's last valid moment
//! (whole bucket trees, see [`super::deny`]) and sessions past their absolute expiry (a
//! range scan over the expiry-ordered index up to `now`, so the work is proportional to
//! what expired, never to the size of the table), and change-log records no token they
//! could matter to still verifies against (older than the longest access-token life plus
//! leeway), and mails whose link expired (with their links). Driven by `tasks::eviction`; `now` is a parameter so tests choose the clock.

use super::{codec, SledStore, StoreError};
use crate::domain::SessionId;
use crate::store::EvictionReport;

/// `meta` key: the latest time an eviction pass worked from (see `tasks::eviction`).
const HORIZON_KEY: &str = "eviction_horizon";

/// The latest time an eviction pass worked from, if one ever ran on this store.
///
/// # Errors
/// Storage failures, or a value that does not decode.
pub fn eviction_horizon(store: &SledStore) -> Result<Option<u64>, StoreError> {
    let meta = store.engine()?.db.open_tree("meta")?;
    meta.get(HORIZON_KEY)?
        .map(|bytes| {
            codec::decode_u64(&bytes).map_err(|source| StoreError::Corrupt {
                tree: "meta",
                source,
            })
        })
        .transpose()
}

/// Moves the horizon up to `at`; it never moves back.
///
/// # Errors
/// Storage failures.
pub fn advance_eviction_horizon(store: &SledStore, at: u64) -> Result<(), StoreError> {
    let meta = store.engine()?.db.open_tree("meta")?;
    let _gate = store.writing();
    meta.fetch_and_update(HORIZON_KEY, |current| {
        let current = current.and_then(|bytes| codec::decode_u64(bytes).ok());
        Some(codec::encode_u64(current.map_or(at, |current| current.max(at))).to_vec())
    })?;
    Ok(())
}

/// Removes every deny entry whose tokens are all past `exp + leeway` (a token is still
/// accepted at `exp + leeway` itself, so its entry stays through that second) and every
/// session whose expiry is at or before `now` (a session refuses to refresh from its
/// expiry on).
///
/// # Errors
/// Storage failures; what was removed before the failure stays removed.
pub fn evict_expired(
    store: &SledStore,
    now: u64,
    leeway: u64,
) -> Result<EvictionReport, StoreError> {
    let engine = store.engine()?;
    let deny = {
        let _gate = store.writing();
        engine.deny.evict(now, leeway)?
    };
    let mut report = EvictionReport {
        deny_removed: deny.expired,
        deny_buckets_dropped: deny.buckets_dropped,
        sessions_removed: 0,
        invitations_removed: 0,
        mails_removed: 0,
        changes_removed: 0,
        next_deny_expiry: deny.next_expiry,
    };

    let session_end = codec::expiry_key(b"", now.saturating_add(1), &[]);
    let mut expired = Vec::new();
    for key in engine.session_expiry.range(..session_end).keys() {
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
                let _gate = store.writing();
                engine.session_expiry.remove(index_key)?;
            }
        }
        report.sessions_removed += 1;
    }
    report.invitations_removed = store.evict_expired_invitations(now)?;
    report.mails_removed = store.evict_expired_mail(now)?;
    // A record written at `at` concerns tokens issued before it, all past their last
    // valid moment by `at + longest life + leeway`.
    let kept_for = engine.deny.longest_access_ttl().saturating_add(leeway);
    report.changes_removed = store.evict_changes(now.saturating_sub(kept_for))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::test_store as store;
    use crate::store::{DenyKind, SessionRecord};

    #[test]
    fn the_horizon_starts_unset_and_never_moves_back() {
        let (_dir, store) = store();
        assert_eq!(eviction_horizon(&store).unwrap(), None);
        advance_eviction_horizon(&store, 1_000).unwrap();
        advance_eviction_horizon(&store, 900).unwrap();
        assert_eq!(eviction_horizon(&store).unwrap(), Some(1_000));
        advance_eviction_horizon(&store, 1_030).unwrap();
        assert_eq!(eviction_horizon(&store).unwrap(), Some(1_030));
    }

    #[test]
    fn removes_only_what_expired() {
        let (_dir, store) = store();
        store.deny(DenyKind::Token, &[1; 16], 100..=100).unwrap();
        store.deny(DenyKind::Session, &[2; 16], 150..=200).unwrap();
        store.deny(DenyKind::Token, &[3; 16], 300..=300).unwrap();
        assert_eq!(store.deny_entries(), 3);

        // `exp` 100 with a leeway of 30 verifies through 130.
        assert_eq!(evict_expired(&store, 130, 30).unwrap().deny_removed, 0);
        assert_eq!(evict_expired(&store, 131, 30).unwrap().deny_removed, 1);
        let report = evict_expired(&store, 231, 30).unwrap();

        assert_eq!(report.deny_removed, 1);
        assert_eq!(report.next_deny_expiry, Some(330));
        assert_eq!(store.deny_entries(), 1);
        assert!(store.is_denied(DenyKind::Token, &[3; 16], 300).unwrap());
    }

    #[test]
    fn many_expired_entries_go_with_their_buckets() {
        let (_dir, store) = store();
        let total = 5_000u64;
        for n in 0..total {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&n.to_be_bytes());
            store
                .deny(DenyKind::Token, &id, 1_000 + n % 200..=1_000 + n % 200)
                .unwrap();
        }
        assert_eq!(store.deny_buckets(), 4);
        let report = evict_expired(&store, 10_000, 30).unwrap();
        assert_eq!(report.deny_removed, total);
        assert_eq!(report.deny_buckets_dropped, 4);
        assert_eq!(report.next_deny_expiry, None);
        assert_eq!(store.deny_entries(), 0);
        assert_eq!(store.deny_buckets(), 0);
    }

    #[test]
    fn expired_sessions_leave_with_their_indexes() {
        let (_dir, store) = store();
        let sid = SessionId::generate();
        let user = crate::domain::UserId::generate();
        let session = SessionRecord {
            user,
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

        assert_eq!(evict_expired(&store, 49, 30).unwrap().sessions_removed, 0);
        assert_eq!(evict_expired(&store, 50, 30).unwrap().sessions_removed, 1);

        assert!(store.session(sid).unwrap().is_none());
        assert!(store.user_session_ids(user).unwrap().is_empty());
        assert_eq!(store.engine().unwrap().session_expiry.len(), 0);
    }
}
