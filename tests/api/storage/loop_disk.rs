//! An ext4 file system in an image file, mounted through a loop device, for the tests of
//! what claimd does when its disk misbehaves: a power cut (the journal aborted) in
//! `power_loss`, a stall (the file system frozen) in `disk_stall`. Creating one needs root
//! and mkfs.ext4; without them the test fails with what is missing (see
//! [`crate::helpers::require`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::require;

/// An ext4 file system in an image file, mounted through a loop device; unmounted when
/// dropped.
pub struct LoopDisk {
    _dir: tempfile::TempDir,
    image: PathBuf,
    pub mount_point: PathBuf,
}

impl LoopDisk {
    pub fn create() -> LoopDisk {
        let dir = tempfile::tempdir().expect("temp dir");
        let image = dir.path().join("disk.img");
        let mount_point = dir.path().join("mnt");
        std::fs::create_dir(&mount_point).expect("mount point");
        std::fs::File::create(&image)
            .and_then(|file| file.set_len(256 * 1024 * 1024))
            .expect("image file");
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F", path(&image)])
            .status()
            .is_ok_and(|status| status.success());
        require("mkfs.ext4 (Debian package e2fsprogs)", made);
        let disk = LoopDisk {
            _dir: dir,
            image,
            mount_point,
        };
        let mounted = Command::new("mount")
            .args(["-o", "loop", path(&disk.image), path(&disk.mount_point)])
            .status()
            .is_ok_and(|status| status.success());
        require("root (mount -o loop) for an ext4 on a loop device", mounted);
        disk
    }

    fn mount(&self) {
        run(
            "mount",
            &["-o", "loop", path(&self.image), path(&self.mount_point)],
        );
    }

    /// A stall: every write to the file system blocks until [`LoopDisk::thaw`] (reads go
    /// on), as on a disk that has stopped answering.
    pub fn freeze(&self) {
        run("fsfreeze", &["-f", path(&self.mount_point)]);
    }

    /// Ends a [`LoopDisk::freeze`]: the blocked writes go on.
    pub fn thaw(&self) {
        run("fsfreeze", &["-u", path(&self.mount_point)]);
    }

    /// The power cut: the journal stops, nothing more reaches the disk.
    pub fn abort_journal(&self) {
        run("mount", &["-o", "remount,abort", path(&self.mount_point)]);
    }

    /// Unmounts (what was not on the disk is dropped with the page cache) and mounts again,
    /// replaying the journal as a boot after a power cut would.
    pub fn power_on_again(&self) {
        run("umount", &[path(&self.mount_point)]);
        self.mount();
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        // A test that failed while the disk was frozen must not leave it so.
        let _ = Command::new("fsfreeze")
            .args(["-u", path(&self.mount_point)])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{program}: {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
