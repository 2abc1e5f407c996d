//! Backups: a consistent copy of every tree, written as one versioned file, and the restore
//! that builds a store from it in an empty directory.
//!
//! Consistency: every store write holds the shared side of the store's write gate for the
//! duration of its sled write; an export holds the exclusive side while it copies the
//! trees into a file (reads go on, writes wait). So a backup holds every write made before
//! it began, and no half of any write. Copying runs at disk speed; sending the file to a
//! slow client happens after the gate is released.
//!
//! The file (format 1), all integers big-endian:
//!
//! ```text
//! "CLAIMD-BACKUP\n" | format u32 | schema u64
//! then per tree:    b'T' | name length u32 | name
//!   per record:     b'R' | key length u32 | key | value length u32 | value
//! and at the end:   b'E' | records u64 | SHA-256 of every byte before the digest
//! ```
//!
//! Values are copied as stored: each already carries its own record format byte
//! (`codec`), and the schema number says which layout of trees the file holds, so a later
//! release restores an older backup the way it opens an older store (through its
//! migrations).

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{SledStore, StoreError, SCHEMA_VERSION};

const MAGIC: &[u8] = b"CLAIMD-BACKUP\n";
/// The framing this build writes and reads.
pub const BACKUP_FORMAT: u32 = 1;
/// The largest key or value a backup may hold: far above any record claimd writes, so a
/// damaged length cannot make a restore allocate without bound.
const MAX_FIELD: u32 = 16 << 20;

/// What a backup or a restore carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    pub trees: u64,
    pub records: u64,
    pub bytes: u64,
}

/// Why a backup file cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("not a claimd backup")]
    NotABackup,
    #[error("backup format {0} is newer than this build ({BACKUP_FORMAT})")]
    NewerFormat(u32),
    #[error("the backup holds schema {0}, newer than this build ({SCHEMA_VERSION})")]
    NewerSchema(u64),
    #[error("the backup is damaged or incomplete: {0}")]
    Damaged(String),
    #[error("{0} is not empty: restore only into an empty or new directory")]
    NotEmpty(String),
    #[error("cannot read the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts what goes through it and feeds the digest.
struct Hashing<W> {
    inner: W,
    digest: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.digest.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn field(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::other("a record is larger than 4 GiB"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

impl SledStore {
    /// Writes a consistent backup of every tree to `out`. Writes to the store wait while
    /// the trees are copied; reads go on.
    ///
    /// # Errors
    /// Storage failures while reading, and failures of `out`.
    pub fn export(&self, out: impl Write) -> Result<BackupSummary, StoreError> {
        let engine = self.engine()?;
        let _no_writes = self.exclusive();
        let mut out = Hashing {
            inner: BufWriter::new(out),
            digest: Sha256::new(),
            bytes: 0,
        };
        let io = |err: std::io::Error| StoreError::Backup(err.to_string());
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&BACKUP_FORMAT.to_be_bytes()).map_err(io)?;
        out.write_all(&SCHEMA_VERSION.to_be_bytes()).map_err(io)?;
        let mut summary = BackupSummary {
            trees: 0,
            records: 0,
            bytes: 0,
        };
        let mut names = engine.db.tree_names();
        names.sort();
        for name in names {
            if &name[..] == b"__sled__default" {
                continue;
            }
            let tree = engine.db.open_tree(&name)?;
            out.write_all(b"T").map_err(io)?;
            field(&mut out, &name).map_err(io)?;
            summary.trees += 1;
            for entry in tree.iter() {
                let (key, value) = entry?;
                out.write_all(b"R").map_err(io)?;
                field(&mut out, &key).map_err(io)?;
                field(&mut out, &value).map_err(io)?;
                summary.records += 1;
            }
        }
        out.write_all(b"E").map_err(io)?;
        out.write_all(&summary.records.to_be_bytes()).map_err(io)?;
        let digest = out.digest.clone().finalize();
        out.inner.write_all(&digest).map_err(io)?;
        out.inner.flush().map_err(io)?;
        summary.bytes = out.bytes + digest.len() as u64;
        Ok(summary)
    }
}

/// Builds a store in `path` (missing or empty) from a backup, then opens it once the way
/// the server does (seal, full scan, migrations) to prove it whole. On any failure what was
/// created is removed again.
///
/// # Errors
/// The directory is not empty, the file is not a whole backup of a format and schema this
/// build knows, or the store cannot be written.
pub fn restore(path: &Path, backup: impl Read) -> Result<BackupSummary, RestoreError> {
    if let Ok(mut entries) = std::fs::read_dir(path) {
        if entries.next().is_some() {
            return Err(RestoreError::NotEmpty(path.display().to_string()));
        }
    }
    let created = !path.exists();
    let outcome = restore_into(path, backup);
    if outcome.is_err() {
        if created {
            let _ = std::fs::remove_dir_all(path);
        } else if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir_all(entry.path())
                    .or_else(|_| std::fs::remove_file(entry.path()));
            }
        }
    }
    outcome
}

#[allow(
    clippy::disallowed_methods,
    reason = "waiting out sled's file lock after the restored store is closed is a real pause"
)]
fn restore_into(path: &Path, backup: impl Read) -> Result<BackupSummary, RestoreError> {
    let mut input = Reading {
        inner: BufReader::new(backup),
        digest: Sha256::new(),
        bytes: 0,
    };
    let mut magic = [0u8; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(|_| RestoreError::NotABackup)?;
    if magic != MAGIC {
        return Err(RestoreError::NotABackup);
    }
    let format = u32::from_be_bytes(input.array()?);
    if format > BACKUP_FORMAT {
        return Err(RestoreError::NewerFormat(format));
    }
    let schema = u64::from_be_bytes(input.array()?);
    if schema > SCHEMA_VERSION {
        return Err(RestoreError::NewerSchema(schema));
    }

    let db = sled::Config::new()
        .path(path)
        .open()
        .map_err(StoreError::from)?;
    let mut summary = BackupSummary {
        trees: 0,
        records: 0,
        bytes: 0,
    };
    let mut tree: Option<sled::Tree> = None;
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    loop {
        let [tag] = input.array::<1>()?;
        match tag {
            b'T' => {
                if let Some(tree) = &tree {
                    tree.apply_batch(std::mem::take(&mut batch))
                        .map_err(StoreError::from)?;
                    pending = 0;
                }
                let name = input.field()?;
                tree = Some(db.open_tree(name).map_err(StoreError::from)?);
                summary.trees += 1;
            }
            b'R' => {
                let Some(current) = &tree else {
                    return Err(damaged("a record before any tree"));
                };
                let key = input.field()?;
                let value = input.field()?;
                batch.insert(key, value);
                summary.records += 1;
                pending += 1;
                if pending >= 10_000 {
                    current
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(StoreError::from)?;
                    pending = 0;
                }
            }
            b'E' => {
                if let Some(tree) = &tree {
                    tree.apply_batch(std::mem::take(&mut batch))
                        .map_err(StoreError::from)?;
                }
                break;
            }
            other => return Err(damaged(&format!("unknown section tag {other}"))),
        }
    }
    let records = u64::from_be_bytes(input.array()?);
    let expected = input.digest.clone().finalize();
    let mut digest = [0u8; 32];
    input
        .inner
        .read_exact(&mut digest)
        .map_err(|_| damaged("the digest is missing"))?;
    if records != summary.records || digest[..] != expected[..] {
        return Err(damaged("the digest does not match its contents"));
    }
    let mut trailing = [0u8; 1];
    if input.inner.read(&mut trailing)? != 0 {
        return Err(damaged("bytes after the end"));
    }
    // A restore runs before any server's clock exists (`claimd restore`): the system's.
    let now_ms = crate::clock::Clock::system().now_ms();
    super::changes::jump_past_lost_history(&db, now_ms)?;
    super::integrity::forget_the_seal(&db)?;
    db.flush().map_err(StoreError::from)?;
    drop(tree);
    drop(db);
    summary.bytes = input.bytes + 32;

    // Open it as the server would: the seal starts, every record is decoded, an older
    // schema is migrated. sled's file lock can outlive the database just dropped by a
    // moment (one of its I/O threads still holds it), so `InUse` is retried briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let store = loop {
        match SledStore::open(path, 16) {
            Err(StoreError::InUse) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            outcome => break outcome?,
        }
    };
    store.close();
    Ok(summary)
}

fn damaged(why: &str) -> RestoreError {
    RestoreError::Damaged(why.to_string())
}

/// Reads the backup and feeds the digest with everything read.
struct Reading<R> {
    inner: R,
    digest: Sha256,
    bytes: u64,
}

impl<R: Read> Reading<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_exact(buf)?;
        self.digest.update(&*buf);
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RestoreError> {
        let mut bytes = [0u8; N];
        self.read_exact(&mut bytes)
            .map_err(|_| damaged("the file ends early"))?;
        Ok(bytes)
    }

    fn field(&mut self) -> Result<Vec<u8>, RestoreError> {
        let len = u32::from_be_bytes(self.array()?);
        if len > MAX_FIELD {
            return Err(damaged("a field longer than any record"));
        }
        let mut bytes = vec![0u8; len as usize];
        self.read_exact(&mut bytes)
            .map_err(|_| damaged("the file ends early"))?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::test_store;
    use crate::store::DenyKind;

    fn backup_of(store: &SledStore) -> Vec<u8> {
        let mut bytes = Vec::new();
        store.export(&mut bytes).unwrap();
        bytes
    }

    /// A backup whose own file runs out of room says so, and does not blame the store,
    /// which goes on taking writes (issue 19).
    #[test]
    fn a_backup_whose_output_fails_names_the_backup_not_the_store() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (_dir, store) = test_store();
        store
            .deny(DenyKind::Token, &[7; 16], 4_000..=4_000)
            .unwrap();

        let failed = store.export(Full).unwrap_err();

        assert!(matches!(failed, StoreError::Backup(_)), "{failed:?}");
        assert!(failed
            .to_string()
            .starts_with("could not write the backup: No space left"));
        assert!(store.is_writable());
        store
            .deny(DenyKind::Token, &[8; 16], 4_000..=4_000)
            .unwrap();
    }

    #[test]
    fn a_backup_restores_every_tree() {
        let (_dir, store) = test_store();
        store
            .deny(DenyKind::Token, &[7; 16], 4_000..=4_000)
            .unwrap();
        let bytes = backup_of(&store);

        let target = tempfile::tempdir().unwrap();
        let path = target.path().join("restored");
        let summary = restore(&path, &bytes[..]).unwrap();

        assert_eq!(summary.bytes, bytes.len() as u64);
        let restored = crate::store::sled::open_for_test(&path);
        assert!(restored
            .is_denied(DenyKind::Token, &[7; 16], 4_000)
            .unwrap());
        assert_eq!(restored.deny_entries(), 1);
    }

    #[test]
    fn damage_anywhere_is_refused_and_leaves_nothing_behind() {
        let (_dir, store) = test_store();
        store
            .deny(DenyKind::Token, &[7; 16], 4_000..=4_000)
            .unwrap();
        let bytes = backup_of(&store);
        let target = tempfile::tempdir().unwrap();
        for at in [MAGIC.len() + 20, bytes.len() / 2, bytes.len() - 3] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            let path = target.path().join(format!("restored-{at}"));
            assert!(restore(&path, &damaged[..]).is_err(), "flip at {at}");
            assert!(!path.exists(), "nothing left after a refused restore");
        }
        let path = target.path().join("short");
        assert!(matches!(
            restore(&path, &bytes[..bytes.len() - 10]),
            Err(RestoreError::Damaged(_))
        ));
        assert!(matches!(
            restore(&path, &b"hello"[..]),
            Err(RestoreError::NotABackup)
        ));
    }

    #[test]
    fn a_non_empty_directory_is_refused() {
        let (dir, store) = test_store();
        let bytes = backup_of(&store);
        assert!(matches!(
            restore(dir.path(), &bytes[..]),
            Err(RestoreError::NotEmpty(_))
        ));
    }

    #[test]
    fn a_newer_format_or_schema_is_refused() {
        let (_dir, store) = test_store();
        let mut bytes = backup_of(&store);
        let target = tempfile::tempdir().unwrap();
        bytes[MAGIC.len() + 3] = 9;
        assert!(matches!(
            restore(&target.path().join("a"), &bytes[..]),
            Err(RestoreError::NewerFormat(9))
        ));
    }
}
