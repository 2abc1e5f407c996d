//! The threads password hashing runs on: a fixed number (`auth.hash_threads`, by default
//! half the cores), so at most that many argon2 hashes (and their work areas) exist at
//! once, and at a lower scheduling priority, so that under a login flood the CPU still
//! goes first to token verification, refreshes and everything else that answers in
//! microseconds. Hashing gets every cycle nothing else wants: logins lose little
//! throughput, verification keeps its latency.
//!
//! A thread that finishes a job and finds none queued runs the pool's idle hook (which
//! gives its work area back): memory is held while logins queue, not after.

use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// How much lower than normal the hashing threads run (Linux `nice`, 0–19).
const HASHING_NICENESS: i32 = 10;

/// A fixed pool of low-priority threads.
pub struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// The pool is gone (only at shutdown).
#[derive(Debug, thiserror::Error)]
#[error("the hashing pool has stopped")]
pub struct PoolStopped;

impl HashPool {
    /// Starts `threads` hashing threads; each runs `on_idle` after a job when no other
    /// job is queued.
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
                    let mut waiting = None;
                    loop {
                        let job = match waiting.take() {
                            Some(job) => job,
                            None => {
                                let receiver =
                                    receiver.lock().unwrap_or_else(PoisonError::into_inner);
                                match receiver.recv() {
                                    Ok(job) => job,
                                    Err(mpsc::RecvError) => return,
                                }
                            }
                        };
                        job();
                        waiting = next_waiting_job(&receiver);
                        if waiting.is_none() {
                            on_idle();
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

/// A job already queued, if this thread can tell. A thread that cannot take the lock
/// finds another one waiting on it for work: then nothing is queued either.
fn next_waiting_job(receiver: &Mutex<mpsc::Receiver<Job>>) -> Option<Job> {
    receiver.try_lock().ok()?.try_recv().ok()
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
#[allow(
    clippy::disallowed_methods,
    reason = "these tests wait and measure in real time"
)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_and_returns_its_result() {
        let pool = HashPool::start(2, || {}).unwrap();
        let results = futures_util::future::join_all((0..8).map(|n| pool.run(move || n * n))).await;
        let squares: Vec<i32> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(squares, vec![0, 1, 4, 9, 16, 25, 36, 49]);
    }

    #[tokio::test]
    async fn a_thread_goes_idle_when_nothing_is_queued() {
        static IDLE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let pool = HashPool::start(1, || {
            IDLE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
        .unwrap();
        pool.run(|| ()).await.unwrap();
        // The idle hook runs after the job's result is sent: wait for it, bounded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while IDLE.load(std::sync::atomic::Ordering::SeqCst) == 0
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(IDLE.load(std::sync::atomic::Ordering::SeqCst), 1);
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
