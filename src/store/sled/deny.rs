//! The deny list, kept in time buckets so that what expires leaves the disk by dropping
//! whole trees.
//!
//! Every entry is filed under the `exp` of the tokens it denies, one sled tree per minute
//! of `exp` (`deny/<first second of the minute>`). When the last token a bucket could deny
//! is past `exp` plus the largest leeway a configuration may set (5 minutes), the whole
//! tree is dropped: sled gives a dropped tree's space back, where removing keys one by one
//! from a long-lived tree left the data directory growing with everything ever inserted
//! (issue 5's churn run). Dropping by the largest leeway, not the configured one, means a
//! restart with a larger leeway cannot revive a revoked token, so a missing bucket simply
//! holds nothing. (The wall clock going back after a bucket was dropped is the one case
//! that revives a token; `tasks::eviction` keeps eviction from outrunning the monotonic
//! clock within a run, so a clock jump forward does not drop buckets early.)
//!
//! In each bucket tree:
//! - `j` + jti (16 bytes) → `exp` (u64 big-endian): a revoked access token;
//! - `s` + sid (16 bytes) → the last `exp` the session could have minted: a revoked
//!   session;
//! - `n` + `exp` (u64 big-endian) → how many entries this bucket *owns* with that `exp`.
//!
//! A token entry lives in the bucket of its token's `exp`. A session entry denies tokens
//! with many `exp`s (everything minted before the revocation), so it is written into every
//! bucket from the earliest `exp` still accepted to the last one the session could have
//! minted; a check is then always one lookup in the bucket of the presented token's `exp`.
//! The entry is *owned* (counted) by the bucket of its last `exp`; the copies are not
//! counted. The counts make start-up independent of the list's size (sum a few count keys
//! per bucket instead of scanning every entry) and give the `claimd_deny_entries` gauge,
//! which drops an entry as soon as its last token is past `exp + leeway`.
//!
//! The integrity scan reads every bucket once right after open, on a thread of its own
//! (`integrity`), while eviction may already be dropping buckets. It reads the trees this
//! list holds through [`DenyList::read_buckets`], never by name: opening a dropped tree by
//! name would create it again, empty and unknown to the list. And reading a tree that is
//! dropped meanwhile fails (sled: the collection does not exist), which the scan would
//! report as damage, stopping the server; so the scan holds `scanning` while it reads a
//! bucket and eviction takes it before it drops any. A bucket evicted before the scan
//! reaches it is skipped: it held only dead tokens, and nothing will read it again.
//!
//! **Verification reads memory.** Every entry is also held in memory (entry key → the last
//! `exp` it covers), filled by that scan and kept by every write and eviction pass; once
//! the scan has read every bucket, checks answer from memory alone. A check that read
//! sled waited behind any write that was waiting on the disk (sled's transactions take a
//! lock every read shares), so a stalled disk stopped verification too (issue 19 §4). In
//! memory a session's entry refuses every token of it up to its last `exp`, not only those
//! from its bucket range on, so a clock set back past the range's start revives none of
//! its older tokens either (issue 19 §6). Until the scan is done (a moment after open,
//! longer for a long list) checks read the buckets as before. The price is
//! memory: about 55 bytes per entry (measured: 5.3 MiB more for 100,000).

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use super::{codec, corrupt, Change, SledStore, StoreError, Stripes};
use crate::domain::{SessionId, TokenId};
use crate::store::DenyKind;

/// Seconds of `exp` per bucket tree: how much longer than necessary an entry may stay on
/// disk, and (with the access-token lifetime) how many copies a session entry takes.
pub const BUCKET_SECONDS: u64 = 60;

pub(crate) const TREE_PREFIX: &str = "deny/";
const COUNT_TAG: u8 = b'n';
/// `meta` key: the longest access-token lifetime ever configured (what a session entry
/// must cover). (`deny_dead_before`, written by earlier builds, is no longer read: see
/// [`DenyList::evict`].)
const LONGEST_TTL_KEY: &str = "longest_access_ttl";

/// What one eviction pass did to the deny list.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DenyEviction {
    /// Entries whose last token is now past `exp + leeway`.
    pub expired: u64,
    /// Bucket trees dropped.
    pub buckets_dropped: u64,
    /// When the next entry expires (`exp + leeway`), if any.
    pub next_expiry: Option<u64>,
}

fn bucket_start(exp: u64) -> u64 {
    exp - exp % BUCKET_SECONDS
}

fn tree_name(start: u64) -> String {
    format!("{TREE_PREFIX}{start}")
}

fn entry_key(kind: DenyKind, id: &[u8; 16]) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = kind.tag();
    key[1..].copy_from_slice(id);
    key
}

fn count_key(exp: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = COUNT_TAG;
    key[1..].copy_from_slice(&codec::encode_u64(exp));
    key
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Bucket {
    tree: sled::Tree,
    /// Serialises the read-modify-write of this bucket's count keys.
    counting: Mutex<()>,
}

/// The bucket trees, the gauge, and the locks that keep them consistent.
pub(crate) struct DenyList {
    db: sled::Db,
    /// Bucket trees by their first second. Checks and writes hold the read lock while
    /// they use a tree, so a tree is only dropped when nobody can be using it.
    buckets: RwLock<BTreeMap<u64, Bucket>>,
    /// Owned entries by `exp`, for the gauge and the next expiry.
    expiring: Mutex<BTreeMap<u64, u64>>,
    entries: AtomicI64,
    /// Held while eviction drops trees, and by a write that must create a bucket: a tree
    /// being dropped is never opened again under its name until the drop is done.
    dropping: Mutex<()>,
    /// Held by the scan at open while it reads one bucket, and by eviction (before
    /// `dropping`) while it drops trees: no tree is dropped under the scan.
    scanning: Mutex<()>,
    /// The longest access-token lifetime any configuration of this store has used.
    longest_ttl: AtomicU64,
    meta: sled::Tree,
    /// One id's read-then-write across its buckets is serialised by its stripe.
    id_locks: Stripes,
    /// Every entry by its key, with the last `exp` it covers (see the module docs).
    memory: RwLock<HashMap<[u8; 17], u64>>,
    /// Whether `memory` holds every entry on disk (the scan after open has finished).
    memory_complete: AtomicBool,
}

impl DenyList {
    /// Opens every bucket tree and reads its counts: a few keys per bucket, whatever the
    /// number of entries.
    pub(crate) fn open(db: &sled::Db) -> Result<DenyList, StoreError> {
        let mut buckets = BTreeMap::new();
        let mut expiring = BTreeMap::new();
        let mut entries = 0i64;
        for name in db.tree_names() {
            let Some(start) = std::str::from_utf8(&name)
                .ok()
                .and_then(|name| name.strip_prefix(TREE_PREFIX))
                .and_then(|start| start.parse::<u64>().ok())
            else {
                continue;
            };
            let tree = db.open_tree(&name)?;
            for pair in tree.scan_prefix([COUNT_TAG]) {
                let (key, value) = pair?;
                let exp = codec::decode_u64(&key[1..]).map_err(corrupt("deny"))?;
                let count = codec::decode_u64(&value).map_err(corrupt("deny"))?;
                *expiring.entry(exp).or_insert(0) += count;
                entries += i64::try_from(count).unwrap_or(i64::MAX);
            }
            buckets.insert(
                start,
                Bucket {
                    tree,
                    counting: Mutex::new(()),
                },
            );
        }
        let meta = db.open_tree("meta")?;
        let read_meta = |key: &str| -> Result<u64, StoreError> {
            meta.get(key)?.map_or(Ok(0), |bytes| {
                codec::decode_u64(&bytes).map_err(corrupt("meta"))
            })
        };
        let longest_ttl = read_meta(LONGEST_TTL_KEY)?;
        Ok(DenyList {
            db: db.clone(),
            buckets: RwLock::new(buckets),
            expiring: Mutex::new(expiring),
            entries: AtomicI64::new(entries),
            dropping: Mutex::new(()),
            scanning: Mutex::new(()),
            longest_ttl: AtomicU64::new(longest_ttl),
            meta,
            id_locks: Stripes::new(64),
            memory: RwLock::default(),
            memory_complete: AtomicBool::new(false),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Bucket>> {
        self.buckets.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates the bucket trees in `starts` that do not exist yet. A tree that eviction
    /// is dropping is only opened again once the drop is done.
    fn ensure_buckets(&self, starts: impl Iterator<Item = u64> + Clone) -> Result<(), StoreError> {
        if starts.clone().all(|start| self.read().contains_key(&start)) {
            return Ok(());
        }
        // Lock order: `dropping`, then `buckets` (as in `evict`).
        let _no_drop = lock(&self.dropping);
        let mut buckets = self.buckets.write().unwrap_or_else(PoisonError::into_inner);
        for start in starts {
            if let std::collections::btree_map::Entry::Vacant(slot) = buckets.entry(start) {
                slot.insert(Bucket {
                    tree: self.db.open_tree(tree_name(start))?,
                    counting: Mutex::new(()),
                });
            }
        }
        Ok(())
    }

    /// Denies every token of `kind`/`id` whose `exp` is in `exps`. Returns whether the
    /// entry is new (a session denied again only has its range extended).
    pub(crate) fn deny(
        &self,
        kind: DenyKind,
        id: &[u8; 16],
        exps: RangeInclusive<u64>,
    ) -> Result<bool, StoreError> {
        let last = (*exps.end()).max(*exps.start());
        let owner = bucket_start(last);
        let starts = (bucket_start(*exps.start())..=owner).step_by(BUCKET_SECONDS as usize);
        let key = entry_key(kind, id);
        let _turn = self.id_locks.lock(id);
        self.ensure_buckets(starts.clone())?;
        let buckets = self.read();

        // An entry's value is the last `exp` it covers; the largest one found in the range
        // is the entry's current end (copies never outlive their owner).
        let mut previous: Option<u64> = None;
        for start in starts.clone() {
            if let Some(bucket) = buckets.get(&start) {
                if let Some(bytes) = bucket.tree.get(key)? {
                    let value = codec::decode_u64(&bytes).map_err(corrupt("deny"))?;
                    previous = Some(previous.map_or(value, |p| p.max(value)));
                }
            }
        }
        let value = previous.map_or(last, |p| p.max(last));
        // Counting moves from the previous owner to the new one only when the end moves.
        let moved = previous.is_none_or(|p| p < last);
        // A bucket evicted since `ensure_buckets` only held dead tokens: nothing to deny.
        let owned = moved && buckets.contains_key(&owner);
        for start in starts {
            let Some(bucket) = buckets.get(&start) else {
                continue;
            };
            let _counting = lock(&bucket.counting);
            let mut batch = sled::Batch::default();
            batch.insert(&key[..], &codec::encode_u64(value)[..]);
            if owned && start == owner {
                adjust_count(&bucket.tree, &mut batch, last, 1)?;
            }
            if let Some(p) = previous.filter(|p| owned && *p < last && bucket_start(*p) == start) {
                adjust_count(&bucket.tree, &mut batch, p, -1)?;
            }
            bucket.tree.apply_batch(batch)?;
        }
        drop(buckets);
        self.remember(&key, value);

        if owned {
            let mut expiring = lock(&self.expiring);
            *expiring.entry(last).or_insert(0) += 1;
            // The previous end moves to the new one; if eviction already stopped counting
            // it (its tokens are dead, its bucket not yet dropped), the entry counts anew.
            let moved_count = previous.is_some_and(|p| match expiring.get_mut(&p) {
                Some(count) => {
                    *count -= 1;
                    if *count == 0 {
                        expiring.remove(&p);
                    }
                    true
                }
                None => false,
            });
            if !moved_count {
                self.entries.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(owned && previous.is_none())
    }

    /// Notes an entry read from a bucket or just written: `key` denies tokens up to
    /// `last`. Keys that are not entries (the counts) are ignored.
    pub(crate) fn remember(&self, key: &[u8], last: u64) {
        let Ok(key) = <[u8; 17]>::try_from(key) else {
            return;
        };
        if key[0] != DenyKind::Token.tag() && key[0] != DenyKind::Session.tag() {
            return;
        }
        let mut memory = self.memory.write().unwrap_or_else(PoisonError::into_inner);
        let held = memory.entry(key).or_insert(last);
        *held = (*held).max(last);
    }

    /// Says that every entry on disk is now in memory: checks answer from it alone.
    pub(crate) fn memory_is_complete(&self) {
        self.memory_complete.store(true, Ordering::Release);
    }

    /// Whether any of `ids` is denied for a token expiring at `exp`: from memory once it
    /// is complete, otherwise one bucket, one lookup per id.
    pub(crate) fn any_denied(
        &self,
        ids: &[(DenyKind, &[u8; 16])],
        exp: u64,
    ) -> Result<bool, StoreError> {
        if self.memory_complete.load(Ordering::Acquire) {
            let memory = self.memory.read().unwrap_or_else(PoisonError::into_inner);
            return Ok(ids.iter().any(|(kind, id)| {
                memory
                    .get(&entry_key(*kind, id))
                    .is_some_and(|last| exp <= *last)
            }));
        }
        let buckets = self.read();
        let start = bucket_start(exp);
        // No bucket: nothing was denied with this `exp`, or its bucket was dropped after
        // every token of it was past the largest leeway allowed.
        let Some(bucket) = buckets.get(&start) else {
            return Ok(false);
        };
        for (kind, id) in ids {
            if bucket.tree.contains_key(entry_key(*kind, id))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Records `ttl` (seconds) as used by this store and returns the longest ever used.
    pub(crate) fn note_access_ttl(&self, ttl: u64) -> Result<u64, StoreError> {
        let previous = self.longest_ttl.fetch_max(ttl, Ordering::AcqRel);
        if previous < ttl {
            self.meta.insert(LONGEST_TTL_KEY, &codec::encode_u64(ttl))?;
        }
        Ok(previous.max(ttl))
    }

    pub(crate) fn longest_access_ttl(&self) -> u64 {
        self.longest_ttl.load(Ordering::Acquire)
    }

    pub(crate) fn entries(&self) -> i64 {
        self.entries.load(Ordering::Relaxed)
    }

    /// Forgets the entries whose last token is past `exp + leeway` at `now` and drops the
    /// bucket trees that hold nothing else.
    pub(crate) fn evict(&self, now: u64, leeway: u64) -> Result<DenyEviction, StoreError> {
        let horizon = now.saturating_sub(leeway);
        let (expired, next_expiry) = {
            let mut expiring = lock(&self.expiring);
            let live = expiring.split_off(&horizon);
            let expired: u64 = std::mem::replace(&mut *expiring, live).values().sum();
            (expired, expiring.keys().next().map(|exp| exp + leeway))
        };
        self.entries.fetch_sub(
            i64::try_from(expired).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        self.memory
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, last| *last >= horizon);

        // Trees go only once every token they hold is past the *largest* leeway a
        // configuration may set, so a restart with a larger leeway cannot revive a revoked
        // token, and a missing bucket never needs to count as denied (which, persisted,
        // refused every token for a day after the clock had run a day ahead).
        let drop_before = now.saturating_sub(super::MAX_LEEWAY_SECONDS);
        // Lock order: `scanning`, `dropping`, `buckets`. Waiting on the scan (one bucket's
        // read at most) does not hold `dropping`, so writes can still create buckets.
        let _scanning = lock(&self.scanning);
        let _dropping = lock(&self.dropping);
        let dead: Vec<u64> = {
            let mut buckets = self.buckets.write().unwrap_or_else(PoisonError::into_inner);
            let dead: Vec<u64> = buckets
                .keys()
                .copied()
                .take_while(|start| start + BUCKET_SECONDS <= drop_before)
                .collect();
            for start in &dead {
                buckets.remove(start);
            }
            dead
        };
        for start in &dead {
            self.db.drop_tree(tree_name(*start))?;
        }
        Ok(DenyEviction {
            expired,
            buckets_dropped: dead.len() as u64,
            next_expiry,
        })
    }

    /// Calls `read` with the name and tree of every bucket held now, one at a time, in
    /// order, until it returns `Ok(false)` or an error. Eviction does not drop the bucket
    /// being read; a bucket evicted before its turn is skipped (see the module docs).
    ///
    /// # Errors
    /// The first error `read` returns.
    pub(crate) fn read_buckets(
        &self,
        mut read: impl FnMut(&str, &sled::Tree) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let starts: Vec<u64> = self.read().keys().copied().collect();
        for start in starts {
            let _scanning = lock(&self.scanning);
            let Some(tree) = self.read().get(&start).map(|bucket| bucket.tree.clone()) else {
                continue;
            };
            if !read(&tree_name(start), &tree)? {
                break;
            }
        }
        Ok(())
    }

    pub(crate) fn bucket_count(&self) -> usize {
        self.read().len()
    }

    /// Moves a deny list written by schema 1 (one `deny` tree holding `j`/`s` + id →
    /// `exp + leeway`, and an expiry index) into buckets. The old value includes the
    /// leeway of its day, so entries keep at least as long as they must; a session entry
    /// covers every `exp` from `earliest_live` on. Re-running it after a crash is harmless.
    pub(crate) fn migrate_single_tree(&self, earliest_live: u64) -> Result<u64, StoreError> {
        if !self.db.tree_names().iter().any(|name| &name[..] == b"deny") {
            return Ok(0);
        }
        let old = self.db.open_tree("deny")?;
        let mut moved = 0;
        for pair in old.iter() {
            let (key, value) = pair?;
            let kind = match key.first() {
                Some(b'j') => DenyKind::Token,
                Some(b's') => DenyKind::Session,
                _ => continue,
            };
            let (Ok(id), Ok(until)) = (<[u8; 16]>::try_from(&key[1..]), codec::decode_u64(&value))
            else {
                continue;
            };
            if until < earliest_live {
                continue;
            }
            // `until` was `exp + leeway` with the leeway of its day (at most the maximum),
            // so a token's `exp` lies within that much below it.
            let exps = match kind {
                DenyKind::Token => until.saturating_sub(super::MAX_LEEWAY_SECONDS)..=until,
                DenyKind::Session => earliest_live..=until,
            };
            self.deny(kind, &id, exps)?;
            moved += 1;
        }
        self.db.drop_tree("deny")?;
        Ok(moved)
    }
}

/// Adds `delta` to the count of entries owned with `exp`, in `batch`. The caller holds the
/// bucket's counting lock.
fn adjust_count(
    tree: &sled::Tree,
    batch: &mut sled::Batch,
    exp: u64,
    delta: i64,
) -> Result<(), StoreError> {
    let key = count_key(exp);
    let current = match tree.get(key)? {
        Some(bytes) => codec::decode_u64(&bytes).map_err(corrupt("deny"))?,
        None => 0,
    };
    let updated = current.saturating_add_signed(delta);
    if updated == 0 {
        batch.remove(&key[..]);
    } else {
        batch.insert(&key[..], &codec::encode_u64(updated)[..]);
    }
    Ok(())
}

impl SledStore {
    /// Denies every token of `kind`/`id` whose `exp` falls in `exps`: for one access
    /// token, its own `exp`; for a session, from the earliest `exp` still accepted to the
    /// last one the session could have minted. Returns whether the entry is new.
    ///
    /// The entry alone, with no change-log record: for filling a deny list in tests and
    /// benchmarks. The flows revoke through [`SledStore::deny_token`] and
    /// [`SledStore::revoke_sessions`], which log what they deny.
    ///
    /// # Errors
    /// Storage failures.
    pub fn deny(
        &self,
        kind: DenyKind,
        id: &[u8; 16],
        exps: RangeInclusive<u64>,
    ) -> Result<bool, StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        engine.deny.deny(kind, id, exps)
    }

    /// Denies one access token until its `exp`: a logout, an RFC 7009 revocation. The
    /// change log records it first (replayed at open if the entry is lost to a crash).
    ///
    /// # Errors
    /// Storage failures.
    pub fn deny_token(&self, jti: TokenId, exp: u64) -> Result<bool, StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        if engine
            .deny
            .any_denied(&[(DenyKind::Token, jti.as_bytes())], exp)?
        {
            return Ok(false);
        }
        let change = [Change::TokenRevoked { jti, exp }];
        let appending = engine.changes.begin();
        let written = engine
            .changes
            .tree()
            .transaction(|tree| appending.write::<StoreError>(tree, self.clock.now(), &change))?;
        let _unfinished = appending.committed(written);
        engine.deny.deny(DenyKind::Token, jti.as_bytes(), exp..=exp)
    }

    /// Whether an access token is revoked, by its own id or its session's.
    ///
    /// # Errors
    /// Storage failures.
    pub fn token_is_revoked(
        &self,
        jti: TokenId,
        sid: SessionId,
        exp: u64,
    ) -> Result<bool, StoreError> {
        self.is_revoked(jti.as_bytes(), sid.as_bytes(), exp)
    }

    /// Whether `id` is on the deny list for a token expiring at `exp`.
    ///
    /// # Errors
    /// Storage failures.
    pub fn is_denied(&self, kind: DenyKind, id: &[u8; 16], exp: u64) -> Result<bool, StoreError> {
        let engine = self.engine()?;
        engine.deny.any_denied(&[(kind, id)], exp)
    }

    /// Whether an access token (its `jti`, its session's `sid`, its `exp`) is revoked:
    /// both looked up in the one bucket of its `exp`.
    ///
    /// # Errors
    /// Storage failures.
    pub fn is_revoked(&self, jti: &[u8; 16], sid: &[u8; 16], exp: u64) -> Result<bool, StoreError> {
        let engine = self.engine()?;
        engine
            .deny
            .any_denied(&[(DenyKind::Token, jti), (DenyKind::Session, sid)], exp)
    }

    /// Records the configured access-token lifetime (seconds) and returns the longest any
    /// configuration of this store has used: tokens minted under it may still be live, so
    /// a session's deny entry must reach that far.
    ///
    /// # Errors
    /// Storage failures.
    pub fn note_access_ttl(&self, ttl: u64) -> Result<u64, StoreError> {
        let engine = self.engine()?;
        let _gate = self.writing();
        engine.deny.note_access_ttl(ttl)
    }

    /// The longest access-token lifetime recorded by [`SledStore::note_access_ttl`].
    pub fn longest_access_ttl(&self) -> u64 {
        self.engine()
            .map_or(0, |engine| engine.deny.longest_access_ttl())
    }

    /// Entries on the deny list now.
    pub fn deny_entries(&self) -> i64 {
        self.engine().map_or(0, |engine| engine.deny.entries())
    }

    /// Bucket trees the deny list occupies now.
    pub fn deny_buckets(&self) -> usize {
        self.engine().map_or(0, |engine| engine.deny.bucket_count())
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "these tests wait and measure in real time"
)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::sled::test_store as store;
    use crate::store::MAX_LEEWAY_SECONDS;

    /// Where the manual clocks below start: the first second of a minute, so bucket
    /// boundaries fall on round offsets from it, and years before the system clock, so a
    /// part reading the system clock instead of the store's shows.
    const T0: u64 = 1_500_000_000;

    /// A store opened on a manual clock reading [`T0`]. The clock is the one source of every
    /// `now` the tests hand the deny list; they move it between steps.
    ///
    /// The scan of the deny buckets that starts at open is stopped first: it opens every
    /// bucket it listed, and sled's `open_tree` creates again, empty, one that eviction
    /// dropped in between, which the checks of what is left on disk would see. And checks
    /// read the buckets, not memory (the scan of an empty store may have finished before
    /// it was stopped): these tests are about what the disk keeps, which is what a
    /// restart, perhaps with a larger leeway, reads back.
    fn store_on_clock() -> (tempfile::TempDir, SledStore, ManualClock) {
        let clock = ManualClock::starting_at(T0);
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open_with_clock(dir.path(), 4, clock.clock()).unwrap();
        store.stop_scan();
        store
            .engine()
            .unwrap()
            .deny
            .memory_complete
            .store(false, Ordering::Release);
        (dir, store, clock)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// One eviction pass at the clock's time.
    fn evict_now(store: &SledStore, clock: &ManualClock, leeway: u64) -> DenyEviction {
        store
            .engine()
            .unwrap()
            .deny
            .evict(clock.now(), leeway)
            .unwrap()
    }

    /// The bucket trees on disk, by the first second their names give.
    fn bucket_starts(store: &SledStore) -> Vec<u64> {
        let mut starts: Vec<u64> = store
            .engine()
            .unwrap()
            .db
            .tree_names()
            .iter()
            .filter_map(|name| {
                std::str::from_utf8(name)
                    .ok()?
                    .strip_prefix(TREE_PREFIX)?
                    .parse()
                    .ok()
            })
            .collect();
        starts.sort_unstable();
        starts
    }

    #[test]
    fn a_token_entry_is_found_under_its_exp_only() {
        let (_dir, store) = store();
        assert!(store
            .deny(DenyKind::Token, &[1; 16], 1_000..=1_000)
            .unwrap());
        assert!(store.is_denied(DenyKind::Token, &[1; 16], 1_000).unwrap());
        assert!(!store.is_denied(DenyKind::Token, &[2; 16], 1_000).unwrap());
        assert!(!store.is_denied(DenyKind::Session, &[1; 16], 1_000).unwrap());
        // Another `exp` is another token: not this entry.
        assert!(!store.is_denied(DenyKind::Token, &[1; 16], 5_000).unwrap());
        assert!(!store
            .deny(DenyKind::Token, &[1; 16], 1_000..=1_000)
            .unwrap());
        assert_eq!(store.deny_entries(), 1);
    }

    #[test]
    fn a_session_entry_covers_every_exp_in_its_range() {
        let (_dir, store) = store();
        assert!(store
            .deny(DenyKind::Session, &[3; 16], 970..=1_900)
            .unwrap());
        for exp in [970, 1_000, 1_450, 1_900] {
            assert!(
                store.is_revoked(&[9; 16], &[3; 16], exp).unwrap(),
                "exp {exp}"
            );
        }
        assert_eq!(store.deny_entries(), 1);
        assert_eq!(store.deny_buckets(), 16);
    }

    #[test]
    fn a_session_denied_again_is_extended_and_counted_once() {
        let (_dir, store) = store();
        assert!(store
            .deny(DenyKind::Session, &[4; 16], 1_000..=1_100)
            .unwrap());
        assert!(!store
            .deny(DenyKind::Session, &[4; 16], 1_050..=1_500)
            .unwrap());
        assert!(!store
            .deny(DenyKind::Session, &[4; 16], 1_060..=1_200)
            .unwrap());
        assert_eq!(store.deny_entries(), 1);
        assert!(store.is_denied(DenyKind::Session, &[4; 16], 1_499).unwrap());

        // Counted at its new end only: it leaves when 1_500 is past.
        let report = store.engine().unwrap().deny.evict(1_200 + 31, 30).unwrap();
        assert_eq!(report.expired, 0);
        assert_eq!(store.deny_entries(), 1);
        assert_eq!(
            store
                .engine()
                .unwrap()
                .deny
                .evict(1_500 + 31, 30)
                .unwrap()
                .expired,
            1
        );
        assert_eq!(store.deny_entries(), 0);
    }

    #[test]
    fn a_write_for_an_evicted_range_creates_its_bucket_again() {
        let (_dir, store) = store();
        store
            .deny(DenyKind::Token, &[1; 16], 1_000..=1_000)
            .unwrap();
        store.engine().unwrap().deny.evict(2_000, 30).unwrap();
        assert_eq!(store.deny_buckets(), 0);

        // The clock went back: tokens with that `exp` are live again, and a revocation of
        // one must hold.
        assert!(store
            .deny(DenyKind::Token, &[2; 16], 1_000..=1_000)
            .unwrap());
        assert!(store.is_denied(DenyKind::Token, &[2; 16], 1_000).unwrap());
        assert!(!store.is_denied(DenyKind::Token, &[3; 16], 1_000).unwrap());
        assert_eq!(store.deny_buckets(), 1);
    }

    #[test]
    fn a_session_denied_again_after_its_count_expired_counts_again() {
        let (_dir, store) = store();
        store
            .deny(DenyKind::Session, &[5; 16], 1_000..=1_100)
            .unwrap();
        assert_eq!(
            store
                .engine()
                .unwrap()
                .deny
                .evict(1_131, 30)
                .unwrap()
                .expired,
            1
        );
        assert_eq!(store.deny_entries(), 0);

        // Its bucket is still there (till 1_170) when the session is revoked again.
        store
            .deny(DenyKind::Session, &[5; 16], 1_105..=2_000)
            .unwrap();
        assert_eq!(store.deny_entries(), 1);
        assert_eq!(
            store
                .engine()
                .unwrap()
                .deny
                .evict(2_031, 30)
                .unwrap()
                .expired,
            1
        );
        assert_eq!(store.deny_entries(), 0);
    }

    #[test]
    fn a_bucket_outlives_the_largest_leeway_so_a_restart_cannot_revive_its_tokens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = crate::store::sled::open_for_test(dir.path());
            store
                .deny(DenyKind::Token, &[1; 16], 1_000..=1_000)
                .unwrap();
            // Past `exp + leeway` for a leeway of 30: gone from the gauge, kept on disk.
            let report = store.engine().unwrap().deny.evict(1_100, 30).unwrap();
            assert_eq!((report.expired, report.buckets_dropped), (1, 0));
            store.close();
        }
        // Restarted with the largest leeway: the token would verify through 1_300.
        let store = crate::store::sled::open_for_test(dir.path());
        let report = store.engine().unwrap().deny.evict(1_300, 300).unwrap();
        assert_eq!(report.buckets_dropped, 0);
        assert!(store.is_denied(DenyKind::Token, &[1; 16], 1_000).unwrap());
        // Its bucket (exps 960..=1_019) goes once 1_019 + 300 is past.
        let report = store.engine().unwrap().deny.evict(1_320, 300).unwrap();
        assert_eq!(report.buckets_dropped, 1);
        assert!(!store.is_revoked(&[2; 16], &[3; 16], 1_010).unwrap());
    }

    #[test]
    fn after_the_clock_ran_ahead_and_came_back_new_tokens_verify() {
        let (_dir, store) = store();
        let today = 1_000_000;
        store
            .deny(DenyKind::Token, &[1; 16], today + 900..=today + 900)
            .unwrap();
        // A run with the clock a day ahead evicts everything.
        store
            .engine()
            .unwrap()
            .deny
            .evict(today + 86_400, 30)
            .unwrap();

        // Back to the right time: a fresh token is not refused for its missing bucket.
        assert!(!store.is_revoked(&[2; 16], &[3; 16], today + 900).unwrap());
    }

    #[test]
    fn the_longest_access_ttl_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = crate::store::sled::open_for_test(dir.path());
            assert_eq!(store.note_access_ttl(900).unwrap(), 900);
            assert_eq!(store.note_access_ttl(60).unwrap(), 900);
            store.close();
        }
        let store = crate::store::sled::open_for_test(dir.path());
        assert_eq!(store.longest_access_ttl(), 900);
        assert_eq!(store.note_access_ttl(120).unwrap(), 900);
    }

    #[test]
    fn counts_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = crate::store::sled::open_for_test(dir.path());
            store.deny(DenyKind::Token, &[1; 16], 100..=100).unwrap();
            store.deny(DenyKind::Token, &[2; 16], 100..=100).unwrap();
            store.deny(DenyKind::Session, &[3; 16], 90..=400).unwrap();
            store.deny(DenyKind::Session, &[3; 16], 95..=500).unwrap();
            store.close();
        }
        let store = crate::store::sled::open_for_test(dir.path());
        assert_eq!(store.deny_entries(), 3);
        assert!(store.is_revoked(&[0; 16], &[3; 16], 450).unwrap());
        let report = store.engine().unwrap().deny.evict(101 + 30, 30).unwrap();
        assert_eq!(report.expired, 2);
        assert_eq!(report.next_expiry, Some(530));
    }

    #[test]
    fn a_schema_1_deny_list_moves_into_buckets() {
        let dir = tempfile::tempdir().unwrap();
        // The migration reads the store's clock; on the system clock, years later, it
        // would find every entry here long dead.
        let clock = ManualClock::starting_at(T0);
        let now = clock.now();
        {
            // Write what a schema-1 claimd left: one `deny` tree with values `exp + leeway`.
            let store = SledStore::open_with_clock(dir.path(), 4, clock.clock()).unwrap();
            let meta = store.engine().unwrap().db.open_tree("meta").unwrap();
            meta.insert("schema_version", &codec::encode_u64(1))
                .unwrap();
            let old = store.engine().unwrap().db.open_tree("deny").unwrap();
            for (key, until) in [
                // A token with `exp` now + 590, revoked under a leeway of 10.
                (entry_key(DenyKind::Token, &[1; 16]), now + 600),
                (entry_key(DenyKind::Session, &[2; 16]), now + 900),
                (entry_key(DenyKind::Token, &[3; 16]), now - 1_000),
            ] {
                old.insert(key, &codec::encode_u64(until)).unwrap();
                old.insert(codec::expiry_key(b"e", until, &key), &[])
                    .unwrap();
            }
            store.close();
        }

        let store = crate::store::sled::open_for_test_on(dir.path(), clock.clock());

        assert!(store
            .is_denied(DenyKind::Token, &[1; 16], now + 590)
            .unwrap());
        for exp in [now - 30, now, now + 450, now + 900] {
            assert!(
                store.is_revoked(&[0; 16], &[2; 16], exp).unwrap(),
                "exp {exp}"
            );
        }
        assert_eq!(
            store.deny_entries(),
            2,
            "the long-dead entry is not carried over"
        );
        assert!(!store
            .engine()
            .unwrap()
            .db
            .tree_names()
            .iter()
            .any(|name| &name[..] == b"deny"));
        let meta = store.engine().unwrap().db.open_tree("meta").unwrap();
        let version = meta.get("schema_version").unwrap().unwrap();
        assert_eq!(
            codec::decode_u64(&version).unwrap(),
            crate::store::SCHEMA_VERSION
        );
    }

    #[test]
    fn eviction_drops_whole_buckets_once_their_last_token_is_dead() {
        let (_dir, store) = store();
        store
            .deny(DenyKind::Token, &[1; 16], 1_000..=1_000)
            .unwrap();
        store
            .deny(DenyKind::Token, &[2; 16], 1_019..=1_019)
            .unwrap();
        store
            .deny(DenyKind::Token, &[3; 16], 2_000..=2_000)
            .unwrap();
        assert_eq!(store.deny_buckets(), 2);

        // The first bucket holds exps 960..=1_019. The entry for 1_000 leaves the gauge
        // at 1_031 (leeway 30); the tree goes once its last token is past the largest
        // leeway allowed, 1_019 + 300.
        let report = store.engine().unwrap().deny.evict(1_031, 30).unwrap();
        assert_eq!((report.expired, report.buckets_dropped), (1, 0));
        let report = store.engine().unwrap().deny.evict(1_050, 30).unwrap();
        assert_eq!((report.expired, report.buckets_dropped), (1, 0));
        let report = store.engine().unwrap().deny.evict(1_319, 30).unwrap();
        assert_eq!((report.expired, report.buckets_dropped), (0, 0));
        let report = store.engine().unwrap().deny.evict(1_320, 30).unwrap();
        assert_eq!((report.expired, report.buckets_dropped), (0, 1));
        assert_eq!(report.next_expiry, Some(2_030));
        assert!(!store.is_denied(DenyKind::Token, &[1; 16], 1_000).unwrap());
        assert!(store.is_denied(DenyKind::Token, &[3; 16], 2_000).unwrap());
        assert!(!store.is_denied(DenyKind::Token, &[9; 16], 2_000).unwrap());
        assert_eq!(store.deny_entries(), 1);
    }

    #[test]
    fn an_entry_is_filed_in_the_bucket_of_the_minute_of_its_exp() {
        let (_dir, store, clock) = store_on_clock();
        let now = clock.now();
        // The first and last second of this minute, the first of the next, the last of the
        // one before.
        let tokens = [(1, now), (2, now + 59), (3, now + 60), (4, now - 1)];

        for (id, exp) in tokens {
            assert!(store.deny(DenyKind::Token, &[id; 16], exp..=exp).unwrap());
        }

        assert_eq!(bucket_starts(&store), vec![now - 60, now, now + 60]);
        assert_eq!(store.deny_buckets(), 3);
        assert_eq!(store.deny_entries(), 4);
        for (id, exp) in tokens {
            assert!(store.is_denied(DenyKind::Token, &[id; 16], exp).unwrap());
        }
    }

    #[test]
    fn an_entry_counts_until_exp_plus_leeway_and_stays_denied_after() {
        let (_dir, store, clock) = store_on_clock();
        let leeway = 10;
        let exp = clock.now() + 30;
        store.deny(DenyKind::Token, &[1; 16], exp..=exp).unwrap();

        // At exp + leeway its token still verifies: the entry counts.
        clock.advance(secs(30 + leeway));
        let report = evict_now(&store, &clock, leeway);
        assert_eq!(
            (report.expired, report.next_expiry),
            (0, Some(exp + leeway))
        );
        assert_eq!(store.deny_entries(), 1);

        // One second later nothing it denies can verify: it leaves the gauge...
        clock.advance(secs(1));
        let report = evict_now(&store, &clock, leeway);
        assert_eq!((report.expired, report.next_expiry), (1, None));
        assert_eq!(store.deny_entries(), 0);
        // ...but not the disk: a restart with a larger leeway must still refuse the token.
        assert_eq!(report.buckets_dropped, 0);
        assert!(store.is_denied(DenyKind::Token, &[1; 16], exp).unwrap());
    }

    #[test]
    fn a_bucket_is_dropped_past_the_largest_leeway_whatever_the_configured_one() {
        let (_dir, store, clock) = store_on_clock();
        // The bucket of this minute, `now..=now + 59`.
        let exp = clock.now() + 5;
        let last_second = clock.now() + 59;
        store.deny(DenyKind::Token, &[1; 16], exp..=exp).unwrap();

        clock.advance(secs(last_second + MAX_LEEWAY_SECONDS - clock.now()));
        for leeway in [0, 30, MAX_LEEWAY_SECONDS] {
            let report = evict_now(&store, &clock, leeway);
            assert_eq!(report.buckets_dropped, 0, "leeway {leeway}");
        }
        assert!(store.is_denied(DenyKind::Token, &[1; 16], exp).unwrap());

        clock.advance(secs(1));
        let report = evict_now(&store, &clock, 0);
        assert_eq!(report.buckets_dropped, 1);
        assert_eq!(store.deny_buckets(), 0);
        assert!(bucket_starts(&store).is_empty());
        assert!(!store.is_denied(DenyKind::Token, &[1; 16], exp).unwrap());
    }

    #[test]
    fn each_pass_forgets_what_is_past_and_names_the_next_expiry() {
        let (_dir, store, clock) = store_on_clock();
        let leeway = 5;
        let now = clock.now();
        store
            .deny(DenyKind::Token, &[1; 16], now + 100..=now + 100)
            .unwrap();
        store
            .deny(DenyKind::Token, &[2; 16], now + 40..=now + 40)
            .unwrap();
        store
            .deny(DenyKind::Token, &[3; 16], now + 40..=now + 40)
            .unwrap();
        // A session entry is counted once, at the last `exp` it covers.
        store
            .deny(DenyKind::Session, &[4; 16], now - 300..=now + 200)
            .unwrap();

        let mut passes = Vec::new();
        for step in [0, 46, 60, 100] {
            clock.advance(secs(step));
            let report = evict_now(&store, &clock, leeway);
            passes.push((report.expired, report.next_expiry, store.deny_entries()));
        }

        assert_eq!(
            passes,
            vec![
                (0, Some(now + 45), 4),
                (2, Some(now + 105), 2),
                (1, Some(now + 205), 1),
                (1, None, 0),
            ]
        );
    }

    #[test]
    fn a_revoked_session_stays_denied_for_every_exp_still_accepted_as_time_passes() {
        let (_dir, store, clock) = store_on_clock();
        let leeway = 30;
        let revoked_at = clock.now();
        // As a revocation writes it: from the earliest `exp` any leeway accepts to the last
        // one the session could have minted.
        let last_exp = revoked_at + 900;
        store
            .deny(
                DenyKind::Session,
                &[7; 16],
                revoked_at - MAX_LEEWAY_SECONDS..=last_exp,
            )
            .unwrap();

        while clock.now() <= last_exp + MAX_LEEWAY_SECONDS + BUCKET_SECONDS {
            clock.advance(secs(60));
            let now = clock.now();
            evict_now(&store, &clock, leeway);

            for exp in (now.saturating_sub(MAX_LEEWAY_SECONDS)..=last_exp).step_by(7) {
                assert!(
                    store.is_revoked(&[0; 16], &[7; 16], exp).unwrap(),
                    "exp {exp} at {now}"
                );
            }
            assert_eq!(
                store.deny_entries(),
                i64::from(now <= last_exp + leeway),
                "gauge at {now}"
            );
            // No bucket stays whose every `exp` is past the largest leeway.
            for start in bucket_starts(&store) {
                assert!(
                    start + BUCKET_SECONDS - 1 + MAX_LEEWAY_SECONDS >= now,
                    "bucket {start} kept at {now}"
                );
            }
        }
        assert_eq!(store.deny_buckets(), 0);
    }

    /// Waits (bounded) until the scan after open has put every entry in memory.
    fn wait_for_memory(store: &SledStore) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !store
            .engine()
            .unwrap()
            .deny
            .memory_complete
            .load(Ordering::Acquire)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the scan never finished"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn once_scanned_checks_answer_from_memory_and_a_session_refuses_every_older_exp() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path(), 4).unwrap();
            store
                .deny(DenyKind::Session, &[5; 16], 1_000..=1_900)
                .unwrap();
            store
                .deny(DenyKind::Token, &[6; 16], 1_200..=1_200)
                .unwrap();
            store.close();
        }
        let store = SledStore::open(dir.path(), 4).unwrap();
        wait_for_memory(&store);

        // Read back from the buckets into memory. Before its range began the session's
        // tokens were dead; a clock set back past that finds them refused all the same.
        for exp in [500, 1_000, 1_900] {
            assert!(
                store.is_revoked(&[9; 16], &[5; 16], exp).unwrap(),
                "exp {exp}"
            );
        }
        assert!(!store.is_revoked(&[9; 16], &[5; 16], 1_901).unwrap());
        assert!(store.is_denied(DenyKind::Token, &[6; 16], 1_200).unwrap());
        assert!(!store.is_denied(DenyKind::Token, &[7; 16], 1_200).unwrap());
        // A write after the scan is in memory at once.
        store
            .deny(DenyKind::Token, &[8; 16], 1_300..=1_300)
            .unwrap();
        assert!(store.is_denied(DenyKind::Token, &[8; 16], 1_300).unwrap());

        // An entry leaves memory once no token it refuses verifies (`exp + leeway` past),
        // with the gauge; the session's last token, at 1,900, still verifies at 1,910.
        let deny = &store.engine().unwrap().deny;
        deny.evict(1_910, 10).unwrap();
        assert!(store.is_revoked(&[9; 16], &[5; 16], 1_900).unwrap());
        assert!(!store.is_denied(DenyKind::Token, &[8; 16], 1_300).unwrap());
        deny.evict(1_911, 10).unwrap();
        assert!(deny.memory.read().unwrap().is_empty());
    }

    #[test]
    fn a_store_reopened_after_write_failures_reads_its_deny_list_into_memory_again() {
        let (_dir, store) = store();
        store
            .deny(DenyKind::Session, &[3; 16], 2_000..=2_600)
            .unwrap();
        wait_for_memory(&store);

        store.note_write_failure(&StoreError::Flush("a test's failure".into()));
        assert!(!store.is_writable());
        assert!(store.try_recover().unwrap());

        wait_for_memory(&store);
        assert!(store.is_revoked(&[9; 16], &[3; 16], 1_000).unwrap());
    }
}
