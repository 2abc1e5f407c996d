//! Directories on disk: a fresh working directory with a data path in it, an empty store
//! made as a first start would make it, and a copy of a data directory.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// A fresh working directory (no `config.toml`) and a data path inside it.
pub fn workdir() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let data = dir.path().join("data");
    (dir, data)
}

/// Creates an empty claimd store at `data`, as a first server start would: command-line
/// operations (`user add`, `keys rotate`, ...) refuse to create one.
pub fn init_store(data: &Path) {
    let store = claimd::store::Store::open(data, 16).expect("create a store");
    store.close();
}

/// Copies the directory `from` to `to`, files and subdirectories, each directory with the
/// permissions of its original (a store's data directory is its owner's alone). `to` is
/// created with any missing parents.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("read the directory to copy") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
    let permissions = std::fs::metadata(from)
        .expect("directory metadata")
        .permissions();
    std::fs::set_permissions(to, permissions).expect("set the copy's permissions");
}
