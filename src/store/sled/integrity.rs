//! Damage found at open, not by a request hours later.
//!
//! sled recovers its log up to the first record whose checksum fails and drops everything
//! after it without a word: one flipped byte mid-file, or a truncated file, opens as an
//! older store (acknowledged users gone, revoked tokens valid again). Two checks close that:
//!
//! - **The seal.** A counter kept twice: in sled's `meta` tree, and in a small file beside
//!   it (`claimd.seal`) written only after sled has made that value durable. The flusher
//!   bumps it with every group commit that carries writes, and the file is on disk before
//!   any answer of that commit leaves, so the seal covers every acknowledged write (issue
//!   19: it used to move once a second, and damage in the last second went unseen). The
//!   file is overwritten in place, one record well under a disk sector, and synced: one
//!   `fdatasync` per commit, as PostgreSQL writes its `pg_control`. At open the file's
//!   value must not be ahead of sled's: if it is, sled lost writes it had acknowledged,
//!   and the store is refused. A store whose `meta` says
//!   it has sealed before but whose file is gone is refused too (issue 19: a deleted seal
//!   and a truncated `db` started with users missing), unless the operator says so with
//!   `storage.accept_missing_seal` ([`MissingSeal::Accept`]), which is logged.
//! - **The scan.** Every tree is read through and every record decoded once at open, so a
//!   damaged page or record stops start-up instead of failing the first request to touch it.
//!   The deny-list buckets, which can hold millions of entries, are read by a thread right
//!   after the store opens (a million entries take seconds, and start-up must not); damage
//!   there stops the server with one line as well (`SledStore::damage`). Eviction may be
//!   dropping buckets meanwhile: the thread reads the buckets the deny list holds, never a
//!   tree by name, and eviction does not drop the one it is reading (see `deny`), so a
//!   dropped bucket is neither created again nor reported as damage.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::deny::DenyList;
use super::disk::Stored;
use super::{
    codec, InvitationBook, KeyRecord, ServiceRecord, SessionRecord, StoreError, TenantRecord,
    UserRecord,
};

/// The seal file, beside sled's own files in the data directory.
pub(crate) const SEAL_FILE: &str = "claimd.seal";
const SEAL_KEY: &str = "seal";
const SEAL_MAGIC: &str = "claimd-seal 1";

/// What to do with a store that has sealed before and whose seal file is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingSeal {
    /// Refuse to open it: it cannot be told from a store that lost writes.
    #[default]
    Refuse,
    /// Open it, with a warning, and seal it again from now on.
    Accept,
}

/// The seal's state in a running store: the value last committed, and the file.
pub(crate) struct Seal {
    file: PathBuf,
    meta: sled::Tree,
    value: AtomicU64,
    /// The seal file, open for writing in place once it exists.
    open_file: Mutex<Option<File>>,
}

impl Seal {
    /// Checks sled's seal against the file's and returns the running seal.
    ///
    /// # Errors
    /// The file is ahead of sled (acknowledged writes were lost), the file is damaged, or
    /// it cannot be read.
    pub(crate) fn open(
        dir: &Path,
        meta: sled::Tree,
        fresh: bool,
        missing: MissingSeal,
    ) -> Result<Seal, StoreError> {
        let file = dir.join(SEAL_FILE);
        let on_file = read_seal_file(&file)?;
        let in_store = match meta.get(SEAL_KEY)? {
            Some(bytes) => codec::decode_u64(&bytes).map_err(super::corrupt("meta"))?,
            None => 0,
        };
        if fresh {
            refuse_a_seal_without_its_store(dir)?;
        }
        if on_file.is_none() && in_store > 0 {
            if missing == MissingSeal::Refuse {
                return Err(StoreError::Open(format!(
                    "{SEAL_FILE} is missing, but this store has been sealed before (seal {in_store}): \
                     without it lost writes cannot be detected; put it back or restore from a backup, \
                     or start once with storage.accept_missing_seal = true"
                )));
            }
            tracing::warn!(
                seal = in_store,
                "{SEAL_FILE} was missing; opened anyway (storage.accept_missing_seal): writes lost \
                 before this start cannot be detected, and the store is sealed again from now on"
            );
        }
        if let Some(on_file) = on_file {
            if on_file > in_store {
                return Err(StoreError::Open(format!(
                    "the store lost acknowledged writes (seal {in_store}, {SEAL_FILE} says {on_file}): \
                     a database file is damaged or truncated; restore from a backup"
                )));
            }
        }
        Ok(Seal {
            file,
            meta,
            value: AtomicU64::new(in_store.max(on_file.unwrap_or(0))),
            open_file: Mutex::new(None),
        })
    }

    /// Called by the flusher before a flush that covers new writes: writes the next
    /// value into sled (the flush makes it durable) and returns it; `None` if sled
    /// refused the write (the flush will fail too).
    pub(crate) fn prepare(&self) -> Option<u64> {
        let next = self.value.load(Ordering::Acquire) + 1;
        self.meta
            .insert(SEAL_KEY, &codec::encode_u64(next)[..])
            .ok()
            .map(|_| next)
    }

    /// Called after the flush that carried `value` succeeded, before its answers leave:
    /// makes the file say `value`, durably.
    ///
    /// # Errors
    /// The file could not be written or synced; the commit's writes are not acknowledged.
    pub(crate) fn commit(&self, value: u64) -> Result<(), String> {
        let mut open_file = self
            .open_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let written = match open_file.as_ref() {
            Some(file) => overwrite_seal_file(file, value),
            None => write_seal_file(&self.file, value).and_then(|()| {
                *open_file = Some(std::fs::OpenOptions::new().write(true).open(&self.file)?);
                Ok(())
            }),
        };
        match written {
            Ok(()) => {
                self.value.store(value, Ordering::Release);
                Ok(())
            }
            Err(err) => {
                *open_file = None;
                Err(format!("could not write {SEAL_FILE}: {err}"))
            }
        }
    }
}

/// Removes the seal value a restore copied from the backed-up store: it counted that
/// store's commits, has no file here, and this store starts unsealed.
///
/// # Errors
/// Storage failures.
pub(crate) fn forget_the_seal(db: &sled::Db) -> Result<(), StoreError> {
    db.open_tree("meta")?.remove(SEAL_KEY)?;
    Ok(())
}

/// A seal file in a directory without sled's files: the database was removed or moved
/// away from its seal, and a new empty store must not be created in its place.
///
/// # Errors
/// The seal file is there.
pub(crate) fn refuse_a_seal_without_its_store(dir: &Path) -> Result<(), StoreError> {
    let file = dir.join(SEAL_FILE);
    if file.exists() {
        return Err(StoreError::Open(format!(
            "{} is here but the database files are not: they were removed or moved",
            file.display()
        )));
    }
    Ok(())
}

fn read_seal_file(path: &Path) -> Result<Option<u64>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(StoreError::Open(format!(
                "cannot read {}: {err}",
                path.display()
            )))
        }
    };
    text.trim()
        .strip_prefix(SEAL_MAGIC)
        .and_then(|rest| rest.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| StoreError::Open(format!("{} is damaged", path.display())))
}

/// The file's one record, always the same length (the value zero-padded): written in
/// place, it replaces the old record whole, inside one disk sector.
fn seal_record(value: u64) -> String {
    format!("{SEAL_MAGIC} {value:020}\n")
}

/// Overwrites the record in place and syncs it: one write within a sector, one
/// `fdatasync`.
fn overwrite_seal_file(file: &File, value: u64) -> std::io::Result<()> {
    file.write_all_at(seal_record(value).as_bytes(), 0)?;
    file.sync_data()
}

/// Creates the file: written next to it, synced, and renamed into place, so that a crash
/// leaves either no file or the whole record.
fn write_seal_file(path: &Path, value: u64) -> std::io::Result<()> {
    let temporary = path.with_extension("seal.tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(seal_record(value).as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads every tree but the deny-list buckets through and decodes every record: before
/// the store opens.
///
/// # Errors
/// The first unreadable page or undecodable record, naming its tree.
pub(crate) fn scan_records(db: &sled::Db) -> Result<u64, StoreError> {
    let never = AtomicBool::new(false);
    let mut records = 0u64;
    for name in db.tree_names() {
        if name.starts_with(super::deny::TREE_PREFIX.as_bytes()) {
            continue;
        }
        let label = String::from_utf8_lossy(&name).into_owned();
        read_tree(&label, &db.open_tree(&name)?, &mut records, &never)?;
    }
    Ok(records)
}

/// Reads the deny-list buckets through, one at a time, until `stop` is set: right after
/// the store opens, while eviction may be dropping buckets. Every entry it reads goes
/// into the list's memory, which answers checks once the scan has read everything.
///
/// # Errors
/// The first unreadable page or undecodable value, naming its bucket.
pub(crate) fn scan_deny_buckets(deny: &DenyList, stop: &AtomicBool) -> Result<u64, StoreError> {
    let mut records = 0u64;
    let mut stopped = false;
    deny.read_buckets(|label, tree| {
        for entry in tree.iter() {
            if records.is_multiple_of(4096) && stop.load(Ordering::Relaxed) {
                stopped = true;
                return Ok(false);
            }
            let (key, value) = entry.map_err(|err| damaged(label, &err.to_string()))?;
            // Every value in a bucket is an `exp` or a count.
            let exp = codec::decode_u64(&value).map_err(|err| damaged(label, &err.to_string()))?;
            deny.remember(&key, exp);
            records += 1;
        }
        Ok(true)
    })?;
    if !stopped {
        deny.memory_is_complete();
    }
    Ok(records)
}

/// Reads `tree` through, decoding each value as its tree's records are; adds to
/// `records`. Returns `Ok(false)` if `stop` was set meanwhile.
fn read_tree(
    label: &str,
    tree: &sled::Tree,
    records: &mut u64,
    stop: &AtomicBool,
) -> Result<bool, StoreError> {
    for entry in tree.iter() {
        let (_, value) = entry.map_err(|err| damaged(label, &err.to_string()))?;
        let decoded = match label {
            "users" => UserRecord::from_disk(&value).map(drop),
            "changes" => crate::store::LoggedChange::from_disk(&value).map(drop),
            "tenants" => TenantRecord::from_disk(&value).map(drop),
            "sessions" => SessionRecord::from_disk(&value).map(drop),
            "keys" => KeyRecord::from_disk(&value).map(drop),
            "services" => ServiceRecord::from_disk(&value).map(drop),
            "invitations" => InvitationBook::from_disk(&value).map(drop),
            "mail_queue" => crate::store::QueuedMail::from_disk(&value).map(drop),
            "mail_links" => crate::store::MailLinks::from_disk(&value).map(drop),
            _ => Ok(()),
        };
        decoded.map_err(|err| damaged(label, &err.to_string()))?;
        *records += 1;
        if records.is_multiple_of(4096) && stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn damaged(tree: &str, why: &str) -> StoreError {
    StoreError::Open(format!(
        "the data directory is damaged: tree `{tree}` cannot be read ({why}); restore from a backup"
    ))
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "these tests wait and measure in real time"
)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn meta(dir: &Path) -> (sled::Db, sled::Tree) {
        let db = sled::Config::new().path(dir.join("db")).open().unwrap();
        let meta = db.open_tree("meta").unwrap();
        (db, meta)
    }

    #[test]
    fn a_seal_file_ahead_of_the_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, meta) = meta(dir.path());
        let seal = Seal::open(dir.path(), meta.clone(), true, MissingSeal::Refuse).unwrap();
        let value = seal.prepare().unwrap();
        seal.commit(value).unwrap();
        assert!(Seal::open(dir.path(), meta.clone(), false, MissingSeal::Refuse).is_ok());

        // The store loses the write that carried the seal; the file still has it.
        meta.insert(SEAL_KEY, &codec::encode_u64(value - 1)[..])
            .unwrap();

        let refused = Seal::open(dir.path(), meta, false, MissingSeal::Refuse)
            .err()
            .unwrap();
        assert!(refused.to_string().contains("lost acknowledged writes"));
    }

    #[test]
    fn every_commit_moves_the_seal_and_the_file_follows_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, meta) = meta(dir.path());
        let seal = Seal::open(dir.path(), meta, true, MissingSeal::Refuse).unwrap();
        for expected in 1..=3 {
            let value = seal.prepare().unwrap();
            assert_eq!(value, expected);
            seal.commit(value).unwrap();
            let file = dir.path().join(SEAL_FILE);
            assert_eq!(read_seal_file(&file).unwrap(), Some(expected));
            assert_eq!(
                std::fs::metadata(&file).unwrap().len(),
                35,
                "one fixed record"
            );
        }
    }

    #[test]
    fn a_seal_file_of_an_earlier_build_is_read_and_then_overwritten_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(SEAL_FILE);
        std::fs::write(&file, "claimd-seal 1 7\n").unwrap();
        assert_eq!(read_seal_file(&file).unwrap(), Some(7));
        let handle = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        overwrite_seal_file(&handle, 8).unwrap();
        assert_eq!(read_seal_file(&file).unwrap(), Some(8));
    }

    #[test]
    fn damage_in_a_deny_bucket_is_found_right_after_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = crate::store::sled::open_for_test(dir.path());
            let engine = store.engine().unwrap();
            let bucket = engine.db.open_tree("deny/960").unwrap();
            bucket
                .insert(b"j0123456789abcdef", &b"not an exp"[..])
                .unwrap();
            store.close();
        }
        let store = crate::store::sled::open_for_test(dir.path());
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.damage().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(store.damage().is_some_and(|why| why.contains("deny/960")));
    }

    /// Writes a bucket of `large` entries at `large_start` and a hundred buckets of one
    /// entry from `small_from` on, reopens the store, evicts at `now` while its scan of the
    /// buckets is under way, and lets the scan end. Returns the buckets eviction dropped,
    /// the damage the scan reported, and the bucket trees left in the database.
    fn evict_during_the_scan(
        large_start: u64,
        large: u64,
        small_from: u64,
        now: u64,
    ) -> (u64, Option<String>, Vec<String>) {
        use super::super::deny::{BUCKET_SECONDS, TREE_PREFIX};
        let dir = tempfile::tempdir().unwrap();
        {
            let store = crate::store::sled::open_for_test(dir.path());
            let db = &store.engine().unwrap().db;
            let tree = db.open_tree(format!("{TREE_PREFIX}{large_start}")).unwrap();
            let mut batch = sled::Batch::default();
            for i in 0..large {
                let mut key = [b'j'; 17];
                key[1..9].copy_from_slice(&i.to_be_bytes());
                batch.insert(&key[..], &codec::encode_u64(large_start)[..]);
            }
            tree.apply_batch(batch).unwrap();
            for k in 0..100 {
                let start = small_from + k * BUCKET_SECONDS;
                db.open_tree(format!("{TREE_PREFIX}{start}"))
                    .unwrap()
                    .insert([b'j'; 17], &codec::encode_u64(start)[..])
                    .unwrap();
            }
            store.close();
        }

        let store = crate::store::sled::open_for_test(dir.path());
        // Time for the scan to get under way: reading the large bucket keeps it busy while
        // eviction runs.
        std::thread::sleep(Duration::from_millis(20));
        let evicted = store.engine().unwrap().deny.evict(now, 0).unwrap();
        assert!(
            store.finish_scan(Duration::from_secs(20)),
            "the scan did not end"
        );
        let left = store
            .engine()
            .unwrap()
            .db
            .tree_names()
            .iter()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .filter(|name| name.starts_with(TREE_PREFIX))
            .collect();
        (evicted.buckets_dropped, store.damage(), left)
    }

    #[test]
    fn a_bucket_dropped_while_the_scan_reads_it_is_not_damage() {
        // Every bucket is dropped, the large one while the scan reads it.
        let (dropped, damage, left) = evict_during_the_scan(100_020, 50_000, 100_080, 2_000_000);

        assert_eq!(dropped, 101);
        assert_eq!(damage, None);
        assert!(left.is_empty(), "bucket trees left behind: {left:?}");
    }

    #[test]
    fn buckets_dropped_before_the_scan_reaches_them_are_not_created_again() {
        // The small buckets (200_040 on) are dropped while the scan is under way; the large
        // one stays.
        let (dropped, damage, left) = evict_during_the_scan(1_000_020, 50_000, 200_040, 500_000);

        assert_eq!(dropped, 100);
        assert_eq!(damage, None);
        assert_eq!(left, vec!["deny/1000020".to_string()]);
    }

    #[test]
    fn a_damaged_or_orphaned_seal_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, meta) = meta(dir.path());
        std::fs::write(dir.path().join(SEAL_FILE), "claimd-seal 1 7\n").unwrap();
        assert!(
            Seal::open(dir.path(), meta.clone(), true, MissingSeal::Refuse).is_err(),
            "no database beside it"
        );
        std::fs::write(dir.path().join(SEAL_FILE), "garbage").unwrap();
        assert!(Seal::open(dir.path(), meta, false, MissingSeal::Refuse).is_err());
    }
}
