//! Opening a store on a scratch copy first, so that a store claimd refuses is left exactly
//! as it was.
//!
//! sled repairs what it opens before claimd can look at it: it zeroes a log tail whose
//! checksum fails (the flipped byte and every record after it), writes a new snapshot and
//! grows its file to a whole segment. Opened in place, a damaged store claimd then refuses
//! has already lost what a careful operator would have tried to salvage. So an existing
//! store is first copied, file by file, into a scratch directory beside it and opened
//! there with every check of a normal open (sled's recovery, the schema, the seal, the
//! record scan); only a store that passes is opened in place. The deny-list buckets are
//! still read behind start-up, on the real store (see `integrity`).
//!
//! The copy costs a read and a write of the store at each start (`copy_file_range`, so a
//! copy-on-write filesystem only links the blocks). Where no copy can be made (no room
//! beside the store nor in the system's temporary directory), the store is opened in
//! place with a warning: refusing to start for want of scratch space would be worse.

use std::os::unix::io::AsRawFd as _;
use std::path::Path;
use std::time::Instant;

use super::{health, Engine, StoreError};
use crate::clock::Clock;

/// Prefix of the scratch directories; a stale one (left by a crash mid-check) is ignored
/// and can be removed by hand.
const SCRATCH_PREFIX: &str = ".claimd-check-";

/// Checks the store at `path` on a copy. A fresh directory (no sled files yet) has nothing
/// to protect and passes at once.
///
/// # Errors
/// What opening the store in place would have answered: in use by another process,
/// damaged, rolled back, or from a newer schema.
#[allow(
    clippy::disallowed_methods,
    reason = "how long the check took, for the log"
)]
pub(super) fn check_on_a_copy(
    path: &Path,
    cache_mb: u64,
    clock: &Clock,
    missing_seal: super::MissingSeal,
) -> Result<(), StoreError> {
    if super::holds_no_store(path) {
        return Ok(());
    }
    let started = Instant::now();
    // Held while copying, so no other claimd writes the files under the copy; let go
    // before the store is opened in place.
    let _lock = lock_database_file(path)?;
    let scratch = match scratch_beside(path) {
        Ok(scratch) => scratch,
        Err(err) => {
            tracing::warn!(
                error = %err,
                "no room to check the store on a copy first: opening it in place"
            );
            return Ok(());
        }
    };
    let copy = scratch.path();
    let opened = Engine::open(
        copy,
        cache_mb,
        std::sync::Arc::new(health::Health::default()),
        clock,
        missing_seal,
    );
    match opened {
        Ok(engine) => {
            engine.close();
            drop(engine);
            tracing::debug!(
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "store checked on a copy"
            );
            Ok(())
        }
        Err(err) => Err(naming_the_store(err, copy, path)),
    }
}

/// A scratch directory holding a copy of the store: beside it (same filesystem, where a
/// copy may share blocks), else in the system's temporary directory.
fn scratch_beside(path: &Path) -> std::io::Result<tempfile::TempDir> {
    let beside = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match copy_into(beside, path) {
        Ok(scratch) => Ok(scratch),
        Err(near) => copy_into(&std::env::temp_dir(), path).map_err(|far| {
            std::io::Error::new(
                far.kind(),
                format!("beside the store: {near}; in the temporary directory: {far}"),
            )
        }),
    }
}

fn copy_into(parent: &Path, store: &Path) -> std::io::Result<tempfile::TempDir> {
    let scratch = tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempdir_in(parent)?;
    copy_tree(store, scratch.path())?;
    Ok(scratch)
}

/// Copies the regular files and directories under `from` into `to`.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            std::fs::create_dir(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The lock sled itself takes on its `db` file (`flock`, exclusive), taken without
/// writing anything: another claimd on this store shows as `InUse` before any copying.
fn lock_database_file(path: &Path) -> Result<Option<std::fs::File>, StoreError> {
    let file = match std::fs::File::open(path.join("db")) {
        Ok(file) => file,
        // No `db` beside a `conf`: sled's own open says what is wrong.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(StoreError::Open(format!(
                "cannot read {}: {err}",
                path.join("db").display()
            )))
        }
    };
    // SAFETY: flock on a descriptor this function owns; it touches no memory.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked == 0 {
        Ok(Some(file))
    } else if std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
        Err(StoreError::InUse)
    } else {
        // A filesystem without locks: sled's open decides.
        Ok(Some(file))
    }
}

/// The copy's error with the copy's path replaced by the store's, so the one line an
/// operator reads names the directory they configured.
fn naming_the_store(err: StoreError, copy: &Path, store: &Path) -> StoreError {
    match err {
        StoreError::Open(reason) => StoreError::Open(
            reason.replace(&copy.display().to_string(), &store.display().to_string()),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::MissingSeal;

    /// Every file under `dir` with its bytes, sorted by path.
    fn contents(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(next) = pending.pop() {
            for entry in std::fs::read_dir(&next).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    pending.push(entry.path());
                } else {
                    let bytes = std::fs::read(entry.path()).unwrap();
                    files.push((entry.path().strip_prefix(dir).unwrap().to_owned(), bytes));
                }
            }
        }
        files.sort();
        files
    }

    #[test]
    fn a_store_refused_on_its_copy_is_left_as_it_was() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        {
            let store = super::super::open_for_test(&dir);
            store.close();
        }
        // A schema from the future: refused after sled has opened the files.
        {
            let db = sled::open(&dir).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert("schema_version", &99u64.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let before = contents(&dir);

        let refused = check_on_a_copy(&dir, 4, &Clock::system(), MissingSeal::Refuse).unwrap_err();

        assert!(refused.to_string().contains("newer"), "{refused}");
        assert!(contents(&dir) == before, "the store's files changed");
        let left: Vec<_> = std::fs::read_dir(parent.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("data")],
            "scratch removed"
        );
    }

    #[test]
    fn a_fresh_directory_passes_without_a_copy() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("new");
        assert!(check_on_a_copy(&dir, 4, &Clock::system(), MissingSeal::Refuse).is_ok());
        assert!(!dir.exists(), "nothing created");
    }
}
