//! The data directory as a place on disk, before the store opens it: its permissions and
//! whether it holds a store at all. It keeps private signing keys, password hashes and
//! session keys, so it is the owner's alone: the directory is created `0700`, and at
//! start-up group and world bits are taken off it and everything in it (an older claimd or
//! an operator may have left them). Bits are only ever taken away: a directory made
//! read-only on purpose stays read-only, and the store then refuses it as before. The
//! binary also sets a `077` umask at its very start, so files created later are `0600`.
//!
//! Reads only file names and modes; the store's contents are `store`'s business.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;

/// Owner-only mode for the data directory.
const DIR_MODE: u32 = 0o700;
/// Bits no file or directory under the data directory may have.
const GROUP_AND_OTHERS: u32 = 0o077;

/// Creates `path` as a `0700` directory if it does not exist (its parent must: a typo in
/// `storage.path` must not create a tree of directories), and takes group and world access
/// off it and everything inside it.
///
/// # Errors
/// The directory cannot be created or its permissions changed.
pub fn make_private(path: &Path) -> anyhow::Result<()> {
    let context = || format!("storage.path {}", path.display());
    if !path.exists() {
        let parent_missing = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .is_some_and(|parent| !parent.is_dir());
        if parent_missing {
            // The store says so, with its own wording, when it opens.
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .mode(DIR_MODE)
            .create(path)
            .with_context(context)?;
    }
    if !path.is_dir() {
        // Not a directory: the store refuses it when it opens.
        return Ok(());
    }
    tighten(path).with_context(context)?;
    tighten_inside(path).with_context(context)
}

/// Whether `path` holds a claimd (sled) store: its `conf` or `db` file. Command-line
/// operations open only an existing store; only the server creates one.
pub fn holds_store(path: &Path) -> bool {
    path.join("conf").exists() || path.join("db").exists()
}

/// Takes group and world bits off `path`, leaving the owner's as they are.
fn tighten(path: &Path) -> std::io::Result<()> {
    let current = std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
    if current & GROUP_AND_OTHERS != 0 {
        let private = current & !GROUP_AND_OTHERS;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(private))?;
    }
    Ok(())
}

fn tighten_inside(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            continue;
        }
        tighten(&entry.path())?;
        if kind.is_dir() {
            tighten_inside(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_dir_is_created_owner_only() {
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path().join("data");
        make_private(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
    }

    #[test]
    fn a_loose_dir_and_its_files_are_tightened() {
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(data.join("blobs")).unwrap();
        std::fs::write(data.join("db"), b"x").unwrap();
        std::fs::write(data.join("blobs").join("1"), b"x").unwrap();
        for file in [data.join("db"), data.join("blobs").join("1")] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        make_private(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("db")), 0o600);
        assert_eq!(mode(&data.join("blobs")), 0o700);
        assert_eq!(mode(&data.join("blobs").join("1")), 0o600);
    }

    #[test]
    fn owner_bits_are_never_added() {
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
        make_private(&data).unwrap();
        assert_eq!(mode(&data), 0o500, "read-only stays read-only");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn a_missing_parent_is_left_to_the_store() {
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path().join("nope").join("data");
        make_private(&data).unwrap();
        assert!(!data.exists());
    }
}
