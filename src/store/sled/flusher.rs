//! Group commit. One thread owns `sled::Db::flush`: a request that must not be acknowledged
//! before its write is on disk registers here and waits; the thread flushes once for every
//! request waiting at that moment and wakes them all. STYLE.md has the measurements behind
//! this shape: a flush per request caps durable writes near 6k/s, `flush_async` from many
//! threads hung, and one flusher lets concurrent writers share each flush.
//!
//! sled's flush alone survives a killed process, not a power cut: on Linux it writes with
//! `pwrite` and `sync_file_range`, which neither commits the file's metadata (its new
//! length, the blocks it grew into) nor empties the disk's cache. So every flush is followed
//! by an `fdatasync` of sled's log file, shared by the whole batch like the flush (issue 19:
//! an ext4 journal aborted right after a burst of writes lost 1,240 of 21,894 acknowledged
//! ones without it). The directory is synced once at start, so the files themselves are.
//! sled's blob files (records over 128 KiB, which claimd never writes) are not covered.
//!
//! Invariant: a waiter is woken only by a flush that *started* after it registered, so its
//! write (made before registering) is covered.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::health::Health;
use super::integrity::Seal;

type Waiter = oneshot::Sender<Result<(), String>>;

struct Shared {
    waiting: Mutex<Vec<Waiter>>,
    wake: Condvar,
    stopping: AtomicBool,
    /// A write has been acknowledged since the seal last moved.
    unsealed_writes: AtomicBool,
}

/// The handle requests use to wait for durability.
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Flusher {
    /// Starts the flusher thread for `db`, whose files are in `dir`.
    /// A failed flush is reported to `health`, which starts a write-failure episode; the
    /// `seal` moves with the flushes that cover new writes (see `integrity`).
    ///
    /// # Errors
    /// The log file cannot be opened or the directory synced, or the thread cannot start.
    pub fn start(
        db: sled::Db,
        dir: &Path,
        health: Arc<Health>,
        seal: Seal,
    ) -> std::io::Result<Flusher> {
        let log = File::open(dir.join(SLED_LOG_FILE))?;
        File::open(dir)?.sync_all()?;
        let shared = Arc::new(Shared {
            waiting: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            unsealed_writes: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("claimd-flusher".into())
            .spawn(move || run(&thread_shared, &db, &log, &health, &seal))?;
        Ok(Flusher {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Waits until everything written before this call is on disk.
    ///
    /// # Errors
    /// The flush failed (disk full, I/O error) or the flusher has stopped.
    pub async fn wait_durable(&self) -> Result<(), String> {
        self.shared.unsealed_writes.store(true, Ordering::Release);
        self.wait_flushed().await
    }

    /// Waits for a flush that started after this call, without counting as a write: the
    /// store's one-second health probe.
    ///
    /// # Errors
    /// The flush failed or the flusher has stopped.
    pub async fn wait_flushed(&self) -> Result<(), String> {
        let (sender, receiver) = oneshot::channel();
        {
            let mut waiting = self
                .shared
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if self.shared.stopping.load(Ordering::Acquire) {
                return Err("store is shutting down".into());
            }
            waiting.push(sender);
        }
        self.shared.wake.notify_one();
        receiver
            .await
            .unwrap_or_else(|_| Err("flusher stopped".into()))
    }

    /// Flushes what is waiting, then stops the thread.
    pub fn stop(&self) {
        {
            // Set under the lock the thread checks it under: set between its check and its
            // wait, the flag and the notification were lost and the join below never ended.
            let _waiting = self
                .shared
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.shared.stopping.store(true, Ordering::Release);
        }
        self.shared.wake.notify_one();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The file sled 0.34 keeps its log (every record) in.
const SLED_LOG_FILE: &str = "db";

/// sled's flush, then the metadata and the disk's cache: on disk for good, or an error.
fn make_durable(db: &sled::Db, log: &File) -> Result<(), String> {
    db.flush().map_err(|err| err.to_string())?;
    log.sync_data()
        .map_err(|err| format!("fdatasync of the store's log: {err}"))
}

fn run(shared: &Shared, db: &sled::Db, log: &File, health: &Health, seal: &Seal) {
    loop {
        let batch = {
            let mut waiting = shared
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while waiting.is_empty() && !shared.stopping.load(Ordering::Acquire) {
                waiting = shared
                    .wake
                    .wait(waiting)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::take(&mut *waiting)
        };
        let stopping = shared.stopping.load(Ordering::Acquire);
        let sealing = if shared.unsealed_writes.swap(false, Ordering::AcqRel) {
            let sealing = seal.prepare();
            if sealing.is_none() {
                shared.unsealed_writes.store(true, Ordering::Release);
            }
            sealing
        } else {
            None
        };
        // The seal file says this commit's value before any of its answers leave.
        let outcome = make_durable(db, log).and_then(|()| match sealing {
            Some(value) => seal.commit(value),
            None => Ok(()),
        });
        if let Err(err) = &outcome {
            if sealing.is_some() {
                shared.unsealed_writes.store(true, Ordering::Release);
            }
            health.write_failed(err);
        }
        for waiter in batch {
            let _ = waiter.send(outcome.clone());
        }
        if stopping {
            return;
        }
    }
}
