//! The change log (DESIGN.md "One change log"): every write that changes how a token is
//! answered (a claim version, a revocation, a `not_before`, a disabled or deleted user, a
//! deleted tenant, the key set) appends one record to the `changes` tree in the same sled
//! transaction, under a strictly increasing id. It is what the change feed serves.
//!
//! **Ids.** Appends are serialised by one lock held from the moment an id is taken until
//! its transaction commits (the single-row counter of the PostgreSQL design), so ids
//! commit in order and a reader that has seen id *n* has seen everything before it. An
//! aborted transaction takes no id. At open the next id follows the last record on disk.
//!
//! **Published.** A reader sees a record only once it is *published*: its write has
//! finished everything it does after the transaction (deny entries) and a flush has made
//! it durable. [`SledStore::wait_durable`](super::SledStore::wait_durable) notes how far the
//! finished writes reach before it waits and publishes that far after the flush, so an
//! event is never seen before the write it reports is acknowledged-safe, and a crash
//! never takes back an event a reader saw. After a reopen everything on disk is durable
//! and published.
//!
//! **Kept.** Records are evicted once older than the longest access-token life plus
//! leeway (no token they could matter to still verifies); the highest evicted id is kept,
//! so a reader asking to resume from before it learns it missed records.
//!
//! **Replayed.** A token revocation's deny entry is written after its transaction (the
//! deny list spans its own trees); at open, every retained token revocation is applied to
//! the deny list again (idempotent), so a crash in between loses nothing. (Sessions have
//! their own intents, see `revocations`.)
//!
//! **Restored.** A restore from a backup goes on from an id far past any this store's
//! lost history can have reached (a thousand ids per millisecond of the restore's wall
//! time), written as a `KeysChanged` record so that it is published like any other. A
//! reader whose id lies in the gap before it was reading a history the restore took back
//! and is sent to a snapshot, however many records follow (issue 19 §3: the log once
//! numbered on from the backup, and a verifier's id became valid again and skipped what
//! lay between).

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::disk::Stored;
use super::{codec, corrupt, DenyKind, Engine, SledStore, StoreError};
use crate::domain::{SessionId, TenantId, TokenId, UserId};
use crate::store::{Change, ChangeRecord, ChangesAfter, LoggedChange};

/// The key under which the highest evicted id is kept (in `meta`).
const EVICTED_THROUGH: &str = "changes_evicted_through";

/// The log's in-memory side, rebuilt at each open.
pub(crate) struct ChangeLog {
    tree: sled::Tree,
    meta: sled::Tree,
    state: Mutex<LogState>,
}

struct LogState {
    /// The id the next append takes.
    next: u64,
    /// Committed ids whose writes have not finished (deny entries still to write).
    unfinished: BTreeSet<u64>,
}

impl ChangeLog {
    pub(crate) fn open(db: &sled::Db, meta: sled::Tree) -> Result<ChangeLog, StoreError> {
        let tree = db.open_tree("changes")?;
        let last = match tree.last()? {
            Some((key, _)) => codec::decode_u64(&key).map_err(corrupt("changes"))?,
            None => read_u64(&meta, EVICTED_THROUGH)?,
        };
        Ok(ChangeLog {
            tree,
            meta,
            state: Mutex::new(LogState {
                next: last + 1,
                unfinished: BTreeSet::new(),
            }),
        })
    }

    /// Whether the log holds a record with this id.
    fn holds(&self, id: u64) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(codec::encode_u64(id))?)
    }

    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Takes the append lock: the ids the transaction writes are decided now and commit
    /// in order. Call inside nothing that waits on another append.
    pub(crate) fn begin(&self) -> Appending<'_> {
        Appending {
            log: self,
            state: self.state.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// The highest id up to which every write has finished (what a flush started now
    /// makes publishable).
    pub(crate) fn finished_through(&self) -> u64 {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.unfinished.first() {
            Some(first) => first - 1,
            None => state.next - 1,
        }
    }

    fn finish(&self, ids: Range<u64>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            state.unfinished.remove(&id);
        }
    }

    /// The highest evicted id (0: none yet).
    pub(crate) fn evicted_through(&self) -> Result<u64, StoreError> {
        read_u64(&self.meta, EVICTED_THROUGH)
    }

    /// Records with ids in `(after, through]`, at most `limit`.
    fn read(
        &self,
        after: u64,
        through: u64,
        limit: usize,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        if after >= through {
            return Ok(Vec::new());
        }
        let range = codec::encode_u64(after + 1)..=codec::encode_u64(through);
        self.tree
            .range(range)
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                let id = codec::decode_u64(&key).map_err(corrupt("changes"))?;
                let logged = LoggedChange::from_disk(&value).map_err(corrupt("changes"))?;
                Ok(ChangeRecord {
                    id,
                    at: logged.at,
                    change: logged.change,
                })
            })
            .collect()
    }
}

fn read_u64(tree: &sled::Tree, key: &str) -> Result<u64, StoreError> {
    match tree.get(key)? {
        Some(bytes) => codec::decode_u64(&bytes).map_err(corrupt("meta")),
        None => Ok(0),
    }
}

/// The append lock, held until the transaction that writes the records has committed.
pub(crate) struct Appending<'a> {
    log: &'a ChangeLog,
    state: MutexGuard<'a, LogState>,
}

impl<'a> Appending<'a> {
    /// Writes `changes` under the next ids, inside the transaction (which may run this
    /// again on a retry: the ids stay the same). Returns how many it wrote, for
    /// [`Appending::committed`].
    pub(crate) fn write<E>(
        &self,
        tree: &TransactionalTree,
        at: u64,
        changes: &[Change],
    ) -> Result<usize, ConflictableTransactionError<E>>
    where
        E: From<StoreError>,
    {
        for (offset, change) in (0u64..).zip(changes) {
            let logged = LoggedChange {
                at,
                change: change.clone(),
            };
            let value = logged.to_disk().map_err(|source| {
                ConflictableTransactionError::Abort(E::from(StoreError::Corrupt {
                    tree: "changes",
                    source,
                }))
            })?;
            tree.insert(&codec::encode_u64(self.state.next + offset)[..], value)?;
        }
        Ok(changes.len())
    }

    /// The transaction committed with `written` records: their ids are taken, and stay
    /// unpublished until the returned guard is dropped (once the write's last step, if
    /// any, is done).
    pub(crate) fn committed(mut self, written: usize) -> Unfinished<'a> {
        let first = self.state.next;
        let end = first + written as u64;
        self.state.next = end;
        self.state.unfinished.extend(first..end);
        Unfinished {
            log: self.log,
            ids: first..end,
        }
    }
}

/// Ids committed whose write is not finished yet; finished when dropped.
pub(crate) struct Unfinished<'a> {
    log: &'a ChangeLog,
    ids: Range<u64>,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        self.log.finish(self.ids.clone());
    }
}

impl Engine {
    /// Schema 3 added the log. A store written before it starts its log with what can
    /// still matter to a live token: every deny entry, and every user and tenant changed
    /// within the longest access-token life plus the largest leeway. A verifier starting
    /// from the log then knows what one that had followed it all along would. Run once, at
    /// the migration; running it again after a crash only repeats records, which readers
    /// apply idempotently.
    pub(crate) fn seed_change_log(&self, now: u64) -> Result<u64, StoreError> {
        let window = self
            .deny
            .longest_access_ttl()
            .saturating_add(super::MAX_LEEWAY_SECONDS);
        let since = now.saturating_sub(window);
        let mut changes = Vec::new();
        let mut denied = std::collections::BTreeMap::new();
        self.deny.read_buckets(|_, tree| {
            for entry in tree.iter() {
                let (key, value) = entry?;
                let (Some(&tag), Ok(id)) = (key.first(), <[u8; 16]>::try_from(&key[1..])) else {
                    continue;
                };
                let exp = codec::decode_u64(&value).map_err(corrupt("deny"))?;
                let slot = denied.entry((tag, id)).or_insert(exp);
                *slot = (*slot).max(exp);
            }
            Ok(true)
        })?;
        for ((tag, id), exp) in denied {
            match tag {
                b'j' => changes.push(Change::TokenRevoked {
                    jti: TokenId::from_bytes(id),
                    exp,
                }),
                b's' => changes.push(Change::SessionRevoked {
                    sid: SessionId::from_bytes(id),
                    exp,
                }),
                _ => {}
            }
        }
        for entry in self.users.iter() {
            let (key, value) = entry?;
            let user: super::UserRecord = Stored::from_disk(&value).map_err(corrupt("users"))?;
            if let (true, Some(id)) = (user.updated_at >= since, UserId::from_slice(&key)) {
                changes.push(user.change(id));
            }
        }
        for entry in self.tenants.iter() {
            let (key, value) = entry?;
            let tenant: super::TenantRecord =
                Stored::from_disk(&value).map_err(corrupt("tenants"))?;
            if let (true, Some(id)) = (tenant.updated_at >= since, TenantId::from_slice(&key)) {
                changes.push(Change::Tenant {
                    tenant: id,
                    version: tenant.version,
                });
            }
        }
        let appending = self.changes.begin();
        let written = self
            .changes
            .tree()
            .transaction(|tree| appending.write::<StoreError>(tree, now, &changes))?;
        drop(appending.committed(written));
        Ok(written as u64)
    }

    /// Applies every retained token revocation in the log to the deny list again
    /// (idempotent): a crash between its transaction and its deny entry loses nothing. Run
    /// at open, before anything is served.
    pub(crate) fn replay_logged_revocations(&self) -> Result<u64, StoreError> {
        let mut replayed = 0;
        for entry in self.changes.tree().iter() {
            let (_, value) = entry?;
            let logged = LoggedChange::from_disk(&value).map_err(corrupt("changes"))?;
            if let Change::TokenRevoked { jti, exp } = logged.change {
                if self.deny.deny(DenyKind::Token, jti.as_bytes(), exp..=exp)? {
                    replayed += 1;
                }
            }
        }
        if replayed > 0 {
            tracing::info!(
                entries = replayed,
                "deny entries written again from the change log"
            );
        }
        Ok(replayed)
    }
}

/// At a restore into `db`: appends the `KeysChanged` record the restored log goes on from,
/// under an id no history of this store can have reached (see the module's **Restored**),
/// and returns it. `now_ms` is the restore's wall time.
pub(crate) fn jump_past_lost_history(db: &sled::Db, now_ms: u64) -> Result<u64, StoreError> {
    let tree = db.open_tree("changes")?;
    let last = match tree.last()? {
        Some((key, _)) => codec::decode_u64(&key).map_err(corrupt("changes"))?,
        None => read_u64(&db.open_tree("meta")?, EVICTED_THROUGH)?,
    };
    let id = now_ms.saturating_mul(IDS_PER_MS).max(last + 1);
    let marker = LoggedChange {
        at: now_ms / 1000,
        change: Change::KeysChanged,
    };
    let value = marker.to_disk().map_err(corrupt("changes"))?;
    tree.insert(&codec::encode_u64(id)[..], value)?;
    Ok(id)
}

/// How many ids a restore leaves room for per millisecond of wall time: far more than a
/// store writes, and small enough that ids stay below 2^53 (exact in a JavaScript number)
/// until the year 2255.
const IDS_PER_MS: u64 = 1000;

impl SledStore {
    /// The highest evicted change-log id (0: none yet): a reader starting from scratch
    /// reads after it.
    ///
    /// # Errors
    /// Storage failures.
    pub fn changes_evicted_through(&self) -> Result<u64, StoreError> {
        self.engine()?.changes.evicted_through()
    }

    /// Records published after `after`, at most `limit`, oldest first; or `Gone` when
    /// some of them were evicted.
    ///
    /// # Errors
    /// Storage failures, damaged records.
    pub fn changes_after(&self, after: u64, limit: usize) -> Result<ChangesAfter, StoreError> {
        let engine = self.engine()?;
        let evicted_through = engine.changes.evicted_through()?;
        if after < evicted_through {
            return Ok(ChangesAfter::Gone { evicted_through });
        }
        let through = self.published_through();
        // Ids run without gaps except where a restore jumped: an id in a gap, like one
        // past the end, was never published by this history.
        if after > through || (after > evicted_through && !engine.changes.holds(after)?) {
            return Ok(ChangesAfter::Ahead { through });
        }
        Ok(ChangesAfter::Records {
            records: engine.changes.read(after, through, limit)?,
            through,
        })
    }

    /// The highest published id: a reader has everything up to it once it has read it.
    pub fn published_through(&self) -> u64 {
        *self.published.borrow()
    }

    /// Wakes whoever waits for records past the id they have: the value is the highest
    /// published id.
    pub fn watch_published(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Publishes everything up to `through` (never moves back).
    pub(crate) fn publish(&self, through: u64) {
        self.published.send_if_modified(|published| {
            if through > *published {
                *published = through;
                true
            } else {
                false
            }
        });
    }

    /// Removes records written before `before` (seconds); returns how many. The highest
    /// removed id is kept, so readers resuming from before it are told.
    ///
    /// # Errors
    /// Storage failures.
    pub fn evict_changes(&self, before: u64) -> Result<u64, StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        let log = &engine.changes;
        let published = self.published_through();
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        let mut highest = None;
        for entry in log.tree.iter() {
            let (key, value) = entry?;
            let id = codec::decode_u64(&key).map_err(corrupt("changes"))?;
            let logged = LoggedChange::from_disk(&value).map_err(corrupt("changes"))?;
            // Ids are in time order; an unpublished record is never evicted before it is
            // served.
            if logged.at >= before || id > published {
                break;
            }
            batch.remove(key);
            highest = Some(id);
            removed += 1;
        }
        if let Some(highest) = highest {
            // The mark first: a crash between the two leaves records a reader is already
            // told are gone, never records gone without the mark.
            log.meta
                .insert(EVICTED_THROUGH, &codec::encode_u64(highest)[..])?;
            log.tree.apply_batch(batch)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::test_store;

    fn token(n: u8) -> Change {
        Change::TokenRevoked {
            jti: TokenId::from_bytes([n; 16]),
            exp: 5_000,
        }
    }

    /// Appends `changes` in one transaction of the log's own tree, finished at once.
    fn append(store: &SledStore, at: u64, changes: &[Change]) {
        let engine = store.engine().unwrap();
        let appending = engine.changes.begin();
        let written = engine
            .changes
            .tree()
            .transaction(|tree| appending.write::<StoreError>(tree, at, changes))
            .unwrap();
        drop(appending.committed(written));
    }

    #[tokio::test]
    async fn records_are_read_only_once_a_flush_published_them() {
        let (_dir, store) = test_store();
        append(&store, 100, &[token(1), token(2)]);
        assert_eq!(
            store.changes_after(0, 10).unwrap(),
            ChangesAfter::Records {
                records: vec![],
                through: 0
            }
        );
        store.wait_durable().await.unwrap();
        let ChangesAfter::Records { records, .. } = store.changes_after(0, 10).unwrap() else {
            panic!("nothing evicted yet");
        };
        assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(records[1].change, token(2));
        assert_eq!(
            store.changes_after(1, 10).unwrap(),
            ChangesAfter::Records {
                records: vec![records[1].clone()],
                through: 2
            }
        );
        assert_eq!(store.published_through(), 2);
    }

    #[tokio::test]
    async fn an_unfinished_write_holds_back_every_later_id() {
        let (_dir, store) = test_store();
        let engine = store.engine().unwrap();
        let appending = engine.changes.begin();
        let written = engine
            .changes
            .tree()
            .transaction(|tree| appending.write::<StoreError>(tree, 100, &[token(1)]))
            .unwrap();
        let unfinished = appending.committed(written);
        append(&store, 100, &[token(2)]);
        store.wait_durable().await.unwrap();
        assert_eq!(store.published_through(), 0, "id 1 is not finished");
        drop(unfinished);
        store.wait_durable().await.unwrap();
        assert_eq!(store.published_through(), 2);
    }

    #[tokio::test]
    async fn an_aborted_transaction_takes_no_id() {
        let (_dir, store) = test_store();
        let engine = store.engine().unwrap();
        let appending = engine.changes.begin();
        let aborted = engine.changes.tree().transaction(|tree| {
            appending.write::<StoreError>(tree, 100, &[token(1)])?;
            Err::<usize, _>(ConflictableTransactionError::Abort(StoreError::Flush(
                "no".into(),
            )))
        });
        assert!(aborted.is_err());
        drop(appending);
        append(&store, 100, &[token(2)]);
        store.wait_durable().await.unwrap();
        let ChangesAfter::Records { records, .. } = store.changes_after(0, 10).unwrap() else {
            panic!("nothing evicted");
        };
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].id, &records[0].change), (1, &token(2)));
    }

    #[tokio::test]
    async fn ids_go_on_after_a_reopen_and_everything_on_disk_is_published() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = crate::store::sled::open_for_test(dir.path());
            append(&store, 100, &[token(1), token(2), token(3)]);
            store.wait_durable().await.unwrap();
            store.close();
        }
        let store = crate::store::sled::open_for_test(dir.path());
        assert_eq!(store.published_through(), 3);
        append(&store, 100, &[token(4)]);
        store.wait_durable().await.unwrap();
        let ChangesAfter::Records { records, .. } = store.changes_after(3, 10).unwrap() else {
            panic!("nothing evicted");
        };
        assert_eq!(records[0].id, 4);
    }

    #[tokio::test]
    async fn evicted_records_are_gone_for_readers_from_before_them() {
        let (_dir, store) = test_store();
        append(&store, 100, &[token(1), token(2)]);
        append(&store, 200, &[token(3)]);
        store.wait_durable().await.unwrap();
        assert_eq!(store.evict_changes(150).unwrap(), 2);
        assert_eq!(
            store.changes_after(1, 10).unwrap(),
            ChangesAfter::Gone { evicted_through: 2 }
        );
        let ChangesAfter::Records { records, .. } = store.changes_after(2, 10).unwrap() else {
            panic!("a reader at the evicted mark misses nothing");
        };
        assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3]);
    }

    #[tokio::test]
    async fn an_evicted_log_still_numbers_on_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = crate::store::sled::open_for_test(dir.path());
            append(&store, 100, &[token(1), token(2)]);
            store.wait_durable().await.unwrap();
            store.evict_changes(150).unwrap();
            store.flush_now().unwrap();
            store.close();
        }
        let store = crate::store::sled::open_for_test(dir.path());
        append(&store, 200, &[token(3)]);
        store.wait_durable().await.unwrap();
        let ChangesAfter::Records { records, .. } = store.changes_after(2, 10).unwrap() else {
            panic!("nothing after the mark was evicted");
        };
        assert_eq!(records[0].id, 3, "an id is never given twice");
    }

    fn published(store: &SledStore) -> Vec<Change> {
        match store.changes_after(0, 100).unwrap() {
            ChangesAfter::Records { records, .. } => {
                records.into_iter().map(|r| r.change).collect()
            }
            other => panic!("nothing evicted: {other:?}"),
        }
    }

    #[tokio::test]
    async fn revoking_a_token_is_logged_once() {
        let (_dir, store) = test_store();
        let jti = TokenId::from_bytes([7; 16]);
        assert!(store.deny_token(jti, 5_000).unwrap());
        assert!(!store.deny_token(jti, 5_000).unwrap(), "already denied");
        store.wait_durable().await.unwrap();
        assert_eq!(
            published(&store),
            vec![Change::TokenRevoked { jti, exp: 5_000 }]
        );
    }

    #[tokio::test]
    async fn a_key_put_or_removed_is_logged() {
        let (_dir, store) = test_store();
        let key = crate::store::KeyRecord {
            alg: "EdDSA".into(),
            private_key: "not a key: the store does not read it".into(),
            created_at: 1_000,
            signs_from: 1_000,
            retired_at: None,
        };
        store.put_signing_key("k1", &key).unwrap();
        store.remove_signing_key("k1").unwrap();
        store.wait_durable().await.unwrap();
        assert_eq!(
            published(&store),
            vec![Change::KeysChanged, Change::KeysChanged]
        );
    }

    #[tokio::test]
    async fn eviction_keeps_records_for_the_longest_token_life_plus_leeway() {
        let (_dir, store) = test_store();
        store.note_access_ttl(900).unwrap();
        append(&store, 1_000, &[token(1)]);
        append(&store, 2_000, &[token(2)]);
        store.wait_durable().await.unwrap();
        let report = crate::store::sled::evict_expired(&store, 1_000 + 900 + 30, 30).unwrap();
        assert_eq!(
            report.changes_removed, 0,
            "a token issued at 1000 still verifies"
        );
        let report = crate::store::sled::evict_expired(&store, 1_000 + 900 + 31, 30).unwrap();
        assert_eq!(report.changes_removed, 1);
        let ChangesAfter::Records { records, .. } = store.changes_after(1, 100).unwrap() else {
            panic!("only record 1 was evicted");
        };
        assert_eq!(records.len(), 1);
    }

    #[tokio::test]
    async fn a_store_from_before_the_log_starts_it_with_its_live_deny_entries() {
        let dir = tempfile::tempdir().unwrap();
        let clock = crate::clock::ManualClock::starting_at(1_796_000_000);
        let now = clock.now();
        {
            // What schema 2 left: deny entries, no change log.
            let store = SledStore::open_with_clock(dir.path(), 4, clock.clock()).unwrap();
            store
                .deny(DenyKind::Session, &[4; 16], now - 60..=now + 600)
                .unwrap();
            store
                .deny(DenyKind::Token, &[5; 16], now + 300..=now + 300)
                .unwrap();
            let engine = store.engine().unwrap();
            engine.db.drop_tree("changes").unwrap();
            engine
                .db
                .open_tree("meta")
                .unwrap()
                .insert("schema_version", &codec::encode_u64(2))
                .unwrap();
            store.close();
        }
        let store = crate::store::sled::open_for_test_on(dir.path(), clock.clock());
        let mut seeded = published(&store);
        seeded.sort_by_key(|change| format!("{change:?}"));
        assert_eq!(
            seeded,
            vec![
                Change::SessionRevoked {
                    sid: SessionId::from_bytes([4; 16]),
                    exp: now + 600
                },
                Change::TokenRevoked {
                    jti: TokenId::from_bytes([5; 16]),
                    exp: now + 300
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_logged_revocation_whose_entry_was_lost_is_denied_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = crate::store::sled::open_for_test(dir.path());
            // The transaction committed; the process died before the deny entry.
            append(&store, 100, &[token(9)]);
            store.flush_now().unwrap();
            store.close();
        }
        let store = crate::store::sled::open_for_test(dir.path());
        assert!(store.is_denied(DenyKind::Token, &[9; 16], 5_000).unwrap());
    }
}
