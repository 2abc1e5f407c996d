//! Backups taken while the server runs: the store is copied into an unnamed file in the
//! data directory (same disk, private to this process, gone when closed), and the caller
//! streams that file at its own pace. Copying holds writes back only as long as the copy
//! takes, never as long as a slow client takes to download it.

use std::io::{Seek as _, SeekFrom};
use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::admin::Administration;
use super::caller::Authenticated;
use super::AuthError;
use crate::store::backup::BackupSummary;

/// Distinguishes the names of backups taken at once (the file is unlinked at once anyway).
static NEXT_BACKUP: AtomicU64 = AtomicU64::new(0);

impl Administration {
    /// Whether an admin may download a backup: any but the demo's password-less admin
    /// (`demo.enabled`), as a backup holds every key and password hash.
    ///
    /// # Errors
    /// `Forbidden` for the demo's admin.
    pub fn require_backup_operator(&self, caller: &Authenticated) -> Result<(), AuthError> {
        if &*caller.stamp.username == super::DEMO_ADMIN {
            return Err(AuthError::Forbidden(format!(
                "`{}` (the demo's admin) may not download a backup: it holds every key and hash",
                super::DEMO_ADMIN
            )));
        }
        Ok(())
    }

    /// A consistent backup of the whole store, in a file positioned at its start.
    ///
    /// # Errors
    /// The copy could not be written (a full disk answers like any storage fault).
    pub async fn export_backup(&self) -> Result<(std::fs::File, BackupSummary), AuthError> {
        let store = Arc::clone(&self.core.store);
        tokio::task::spawn_blocking(move || {
            let dir = store
                .data_dir()
                .ok_or(AuthError::Unavailable(
                    "backups of a database store are taken with the database's own tools",
                ))?
                .to_path_buf();
            let name = format!(
                ".backup-{}-{}",
                std::process::id(),
                NEXT_BACKUP.fetch_add(1, Ordering::Relaxed)
            );
            let path = dir.join(name);
            let storage = |err: std::io::Error| {
                AuthError::Store(crate::store::StoreError::Backup(err.to_string()))
            };
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(storage)?;
            // Unlinked at once: nothing is left behind whatever happens next.
            let _ = std::fs::remove_file(&path);
            let summary = store.export(&mut file)?;
            file.sync_all().map_err(storage)?;
            file.seek(SeekFrom::Start(0)).map_err(storage)?;
            tracing::info!(
                trees = summary.trees,
                records = summary.records,
                bytes = summary.bytes,
                "backup taken"
            );
            Ok((file, summary))
        })
        .await
        .map_err(|err| AuthError::Internal(err.to_string()))?
    }
}
