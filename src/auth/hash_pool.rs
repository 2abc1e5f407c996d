//! The threads password hashing runs on: a fixed number (one per core), so at most that
//! many 19 MiB argon2 hashes run at once, and at a lower scheduling priority, so that
//! under a login flood the CPU still goes first to token verification, refreshes and
//! everything else that answers in microseconds. Hashing gets every cycle nothing else
//! wants: logins lose little throughput, verification keeps its latency.

use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// How much lower than normal the hashing threads run (Linux `nice`, 0–19).
const HASHING_NICENESS: i32 = 10;

/// After this long without work a thread runs its idle hook (which gives memory back).
const IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// A fixed pool of low-priority threads.
pub struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// The pool is gone (only at shutdown).
#[derive(Debug, thiserror::Error)]
#[error("the hashing pool has stopped")]
pub struct PoolStopped;

impl HashPool {
    /// Starts `threads` hashing threads; each runs `on_idle` once after a spell without
    /// work.
    ///
    /// # Errors
    /// A thread could not be spawned.
    pub fn start(threads: usize, on_idle: fn()) -> std::io::Result<HashPool> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = std::sync::Arc::new(Mutex::new(receiver));
        for index in 0..threads.max(1) {
            let receiver = std::sync::Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("claimd-hash-{index}"))
                .spawn(move || {
                    lower_this_threads_priority();
                    let mut busy_since_idle = false;
                    loop {
                        let job = {
                            let receiver = receiver.lock().unwrap_or_else(PoisonError::into_inner);
                            receiver.recv_timeout(IDLE_AFTER)
                        };
                        match job {
                            Ok(job) => {
                                job();
                                busy_since_idle = true;
                            }
                            Err(mpsc::RecvTimeoutError::Timeout) if busy_since_idle => {
                                on_idle();
                                busy_since_idle = false;
                            }
                            Err(mpsc::RecvTimeoutError::Timeout) => {}
                            Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                })?;
        }
        Ok(HashPool {
            jobs: Mutex::new(sender),
        })
    }

    /// Runs `work` on the pool and waits for its result.
    ///
    /// # Errors
    /// The pool has stopped.
    pub async fn run<T, F>(&self, work: F) -> Result<T, PoolStopped>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| PoolStopped)?;
        result.await.map_err(|_| PoolStopped)
    }
}

/// Lowers the calling thread's scheduling priority. On Linux each thread has its own nice
/// value, and `setpriority(PRIO_PROCESS, 0, n)` changes only the caller's.
#[cfg(target_os = "linux")]
fn lower_this_threads_priority() {
    // SAFETY: setpriority only reads its integer arguments; failing (e.g. a sandbox that
    // forbids it) leaves the thread at normal priority, which is safe.
    let outcome = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, HASHING_NICENESS) };
    if outcome != 0 {
        tracing::debug!("could not lower the hashing thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_and_returns_its_result() {
        let pool = HashPool::start(2, || {}).unwrap();
        let results = futures_util::future::join_all((0..8).map(|n| pool.run(move || n * n))).await;
        let squares: Vec<i32> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(squares, vec![0, 1, 4, 9, 16, 25, 36, 49]);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn its_threads_run_at_lower_priority() {
        let pool = HashPool::start(1, || {}).unwrap();
        // SAFETY: getpriority only reads its arguments.
        let nice = pool
            .run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })
            .await
            .unwrap();
        assert!(nice >= HASHING_NICENESS, "nice {nice}");
    }
}
