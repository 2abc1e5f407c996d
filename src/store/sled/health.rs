//! Write-failure episodes. The first failed write (a flush that did not reach the disk, or
//! sled refusing a write after its own background flush failed) starts an episode: it is
//! logged once, writes answer `Unavailable` until the store is reopened, and `/readyz`
//! says not ready. Recovery ends it with one more line. Counts of both go to `/metrics`.
//!
//! Also here: the check that the data directory takes writes again, made before the store
//! is reopened so that a still-full disk costs a small file, not a reopened database.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// How many bytes the write check must be able to put on disk: two of sled's 512 KiB
/// segments, so a reopened store has room for more than its first write.
const PROBE_BYTES: usize = 1 << 20;
const PROBE_NAME: &str = ".claimd-write-probe";

struct Episode {
    reason: String,
    since: Instant,
}

/// Whether writes are failing, and the counts `/metrics` shows.
#[derive(Default)]
pub struct Health {
    failing: AtomicBool,
    episode: Mutex<Option<Episode>>,
    write_failures: AtomicU64,
    recoveries: AtomicU64,
}

/// A snapshot of [`Health`] for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCounts {
    pub writable: bool,
    /// Failed writes and flushes since start (every one, not every episode).
    pub write_failures: u64,
    /// Episodes ended by reopening the store in place.
    pub recoveries: u64,
}

impl Health {
    /// Counts a failed write; the first of an episode is logged.
    #[allow(
        clippy::disallowed_methods,
        reason = "a write-failure episode's length, for logs, in real time"
    )]
    pub(crate) fn write_failed(&self, err: &str) {
        self.write_failures.fetch_add(1, Ordering::Relaxed);
        let mut episode = self.episode.lock().unwrap_or_else(PoisonError::into_inner);
        if episode.is_none() {
            let reason = err.split_whitespace().collect::<Vec<_>>().join(" ");
            tracing::error!(
                error = %reason,
                "store writes are failing: writes answer 503 storage_unavailable until the disk takes writes again"
            );
            *episode = Some(Episode {
                reason,
                since: Instant::now(),
            });
            self.failing.store(true, Ordering::Release);
        }
    }

    /// Why writes are failing, while an episode goes on.
    pub(crate) fn failing_reason(&self) -> Option<String> {
        if !self.failing.load(Ordering::Acquire) {
            return None;
        }
        self.episode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|episode| episode.reason.clone())
    }

    /// Ends the episode: the store has been reopened and writes again.
    pub(crate) fn recovered(&self) {
        let episode = self
            .episode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.failing.store(false, Ordering::Release);
        if let Some(episode) = episode {
            self.recoveries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                after_ms = u64::try_from(episode.since.elapsed().as_millis()).unwrap_or(u64::MAX),
                "store writes resumed: the store was reopened and recovered from disk"
            );
        }
    }

    /// The counts for `/metrics`.
    pub fn counts(&self) -> HealthCounts {
        HealthCounts {
            writable: !self.failing.load(Ordering::Acquire),
            write_failures: self.write_failures.load(Ordering::Relaxed),
            recoveries: self.recoveries.load(Ordering::Relaxed),
        }
    }
}

/// Writes, syncs and removes a small file in `dir`: whether the disk takes writes again.
///
/// # Errors
/// The file could not be created, written in full, or synced.
pub(crate) fn disk_takes_writes(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(PROBE_NAME);
    let outcome = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_is_one_failure_state_until_recovered() {
        let health = Health::default();
        assert!(health.failing_reason().is_none());

        health.write_failed("No space left\non device");
        health.write_failed("another failure of the same episode");

        assert_eq!(
            health.failing_reason().as_deref(),
            Some("No space left on device")
        );
        let counts = health.counts();
        assert!(!counts.writable);
        assert_eq!(counts.write_failures, 2);
        assert_eq!(counts.recoveries, 0);

        health.recovered();
        assert!(health.failing_reason().is_none());
        assert_eq!(health.counts().recoveries, 1);
        health.recovered();
        assert_eq!(
            health.counts().recoveries,
            1,
            "no episode, nothing to count"
        );
    }

    #[test]
    fn the_write_check_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        disk_takes_writes(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(disk_takes_writes(&dir.path().join("missing")).is_err());
    }
}
