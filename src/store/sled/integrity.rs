//! Damage found at open, not by a request hours later.
//!
//! sled recovers its log up to the first record whose checksum fails and drops everything
//! after it without a word: one flipped byte mid-file, or a truncated file, opens as an
//! older store (acknowledged users gone, revoked tokens valid again). Two checks close that:
//!
//! - **The seal.** A counter kept twice: in sled's `meta` tree, and in a small file beside
//!   it (`claimd.seal`) written only after sled has made that value durable. The flusher
//!   bumps it about once a second while writes arrive, and on close. At open the file's
//!   value must not be ahead of sled's: if it is, sled lost writes it had acknowledged,
//!   and the store is refused. What this cannot see is a loss confined to the last
//!   second of writes before a crash, the part not yet sealed.
//! - **The scan.** Every tree is read through and every record decoded once at open, so a
//!   damaged page or record stops start-up instead of failing the first request to touch it.
//!   The deny-list buckets, which can hold millions of entries, are read by a thread right
//!   after the store opens (a million entries take seconds, and start-up must not); damage
//!   there stops the server with one line as well (`SledStore::damage`). Eviction may be
//!   dropping buckets meanwhile: the thread reads the buckets the deny list holds, never a
//!   tree by name, and eviction does not drop the one it is reading (see `deny`), so a
//!   dropped bucket is neither created again nor reported as damage.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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
/// How often the seal moves while writes arrive.
const SEAL_EVERY: Duration = Duration::from_secs(1);

/// The seal's state in a running store: the value last written to sled, and when.
pub(crate) struct Seal {
    file: PathBuf,
    meta: sled::Tree,
    value: AtomicU64,
    sealed_at: Mutex<Instant>,
}

impl Seal {
    /// Checks sled's seal against the file's and returns the running seal.
    ///
    /// # Errors
    /// The file is ahead of sled (acknowledged writes were lost), the file is damaged, or
    /// it cannot be read.
    pub(crate) fn open(dir: &Path, meta: sled::Tree, fresh: bool) -> Result<Seal, StoreError> {
        let file = dir.join(SEAL_FILE);
        let on_file = read_seal_file(&file)?;
        let in_store = match meta.get(SEAL_KEY)? {
            Some(bytes) => codec::decode_u64(&bytes).map_err(super::corrupt("meta"))?,
            None => 0,
        };
        if fresh {
            refuse_a_seal_without_its_store(dir)?;
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
            sealed_at: Mutex::new(Instant::now() - SEAL_EVERY),
        })
    }

    /// Called by the flusher before a flush that covers new writes: when a seal is due,
    /// writes the next value into sled (the flush makes it durable) and returns it.
    pub(crate) fn prepare(&self, force: bool) -> Option<u64> {
        let mut sealed_at = self
            .sealed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !force && sealed_at.elapsed() < SEAL_EVERY {
            return None;
        }
        let next = self.value.load(Ordering::Acquire) + 1;
        if self
            .meta
            .insert(SEAL_KEY, &codec::encode_u64(next)[..])
            .is_err()
        {
            return None;
        }
        *sealed_at = Instant::now();
        Some(next)
    }

    /// Called after the flush that carried `value` succeeded: records it in the file.
    pub(crate) fn commit(&self, value: u64) {
        match write_seal_file(&self.file, value) {
            Ok(()) => self.value.store(value, Ordering::Release),
            Err(err) => tracing::warn!(error = %err, "could not write {SEAL_FILE}"),
        }
    }
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

/// Writes the file next to it, syncs it, and renames it over the old one, so that a crash
/// leaves either the old value or the new one.
fn write_seal_file(path: &Path, value: u64) -> std::io::Result<()> {
    let temporary = path.with_extension("seal.tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        writeln!(file, "{SEAL_MAGIC} {value}")?;
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
/// the store opens, while eviction may be dropping buckets.
///
/// # Errors
/// The first unreadable page or undecodable value, naming its bucket.
pub(crate) fn scan_deny_buckets(deny: &DenyList, stop: &AtomicBool) -> Result<u64, StoreError> {
    let mut records = 0u64;
    deny.read_buckets(|label, tree| {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        read_tree(label, tree, &mut records, stop)
    })?;
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
            "changes" => super::changes::LoggedChange::from_disk(&value).map(drop),
            "tenants" => TenantRecord::from_disk(&value).map(drop),
            "sessions" => SessionRecord::from_disk(&value).map(drop),
            "keys" => KeyRecord::from_disk(&value).map(drop),
            "services" => ServiceRecord::from_disk(&value).map(drop),
            "invitations" => InvitationBook::from_disk(&value).map(drop),
            // Every value in a deny bucket is an `exp` or a count.
            bucket if bucket.starts_with(super::deny::TREE_PREFIX) => {
                codec::decode_u64(&value).map(drop)
            }
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
mod tests {
    use super::*;

    fn meta(dir: &Path) -> (sled::Db, sled::Tree) {
        let db = sled::Config::new().path(dir.join("db")).open().unwrap();
        let meta = db.open_tree("meta").unwrap();
        (db, meta)
    }

    #[test]
    fn a_seal_file_ahead_of_the_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, meta) = meta(dir.path());
        let seal = Seal::open(dir.path(), meta.clone(), true).unwrap();
        let value = seal.prepare(true).unwrap();
        seal.commit(value);
        assert!(Seal::open(dir.path(), meta.clone(), false).is_ok());

        // The store loses the write that carried the seal; the file still has it.
        meta.insert(SEAL_KEY, &codec::encode_u64(value - 1)[..])
            .unwrap();

        let refused = Seal::open(dir.path(), meta, false).err().unwrap();
        assert!(refused.to_string().contains("lost acknowledged writes"));
    }

    #[test]
    fn seals_are_spaced_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, meta) = meta(dir.path());
        let seal = Seal::open(dir.path(), meta, true).unwrap();
        assert_eq!(seal.prepare(false), Some(1));
        seal.commit(1);
        assert_eq!(seal.prepare(false), None, "within a second of the last one");
        assert_eq!(seal.prepare(true), Some(2));
        assert_eq!(
            seal.prepare(true),
            Some(2),
            "a seal whose flush never committed is offered again"
        );
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
            Seal::open(dir.path(), meta.clone(), true).is_err(),
            "no database beside it"
        );
        std::fs::write(dir.path().join(SEAL_FILE), "garbage").unwrap();
        assert!(Seal::open(dir.path(), meta, false).is_err());
    }
}
