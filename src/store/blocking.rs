//! Where the embedded store's calls run, and how long its writes have been stuck.
//!
//! sled blocks the thread that calls it once the disk stops taking data (a frozen file
//! system, a dying disk, a throttled cloud volume): its write buffers fill, a write waits
//! for room, and since a sled transaction holds a lock every read shares, reads wait behind
//! it. Made on the HTTP workers, one such call stopped every request on that worker,
//! `/healthz` and token verification included, for as long as the disk hung (issue 19 §4:
//! an 8 s `fsfreeze` left them unanswered for 8 s). So every sled call a request makes runs
//! on a thread of the store's: writes in one [`Lane`], reads in another, each a few
//! threads; a call waits for its turn as a future, holding no thread. The workers stay
//! free to answer what needs no disk: liveness, readiness, and verification, which reads
//! memory only (the deny list's memory, `deny`; the user and tenant `mirror`).
//!
//! The writes' [`StallWatch`] counts what waits on the disk (writes, and waits for a flush)
//! and when the last of them finished. While something waits and nothing has finished for
//! longer than [`STALLED_AFTER`], writes are stuck: `/readyz` answers 503 until one
//! finishes again.

use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long writes may wait with none finishing before readiness says the store is stuck.
/// Longer than any wait a healthy store makes (a backup holds writes while it copies the
/// trees: under a second for a million deny entries here), short enough for a load
/// balancer to react within a few probes.
pub const STALLED_AFTER: Duration = Duration::from_secs(5);

/// What a call answered, its type erased: the queueing and the waiting are compiled once,
/// not once for every call site's answer type (the sled-only binary is held to 8 MB, and
/// forty copies of them cost a third of a megabyte).
type Answer = Box<dyn std::any::Any + Send>;

/// A call waiting for a thread of its lane.
type Job = Box<dyn FnOnce() + Send>;

/// A call's answer on its way back, as the caller's type: the one part of a call that is
/// compiled per answer type.
pub(crate) struct Answering<'a, T, E> {
    waiting: Pin<Box<dyn Future<Output = Result<Answer, &'static str>> + Send + 'a>>,
    gone: fn(String) -> E,
    answer: PhantomData<fn() -> Result<T, E>>,
}

impl<T: 'static, E: 'static> Future for Answering<'_, T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, E>> {
        let answered = std::task::ready!(self.waiting.as_mut().poll(cx));
        Poll::Ready(match answered {
            Ok(answer) => match answer.downcast::<Result<T, E>>() {
                Ok(outcome) => *outcome,
                Err(_) => Err((self.gone)(
                    "a store call answered another type".to_string(),
                )),
            },
            Err(why) => Err((self.gone)(why.to_string())),
        })
    }
}

/// A few threads of its own, started at the first call, taking calls in arrival order.
/// Threads of its own rather than tokio's blocking pool: under load a thread finishing a
/// call takes the next without sleeping, where a pool woke a parked thread for every call
/// (measured: a refresh at 32 connections ran at about 0.65 times its rate without lanes
/// on the pool; see docs/performance.md for what this costs).
pub(crate) struct Lane {
    name: &'static str,
    threads: usize,
    started: Once,
    shared: Arc<Shared>,
    pub(crate) watch: StallWatch,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting for a call: only then is one woken.
    idle: usize,
    closed: bool,
}

impl Lane {
    /// A lane whose threads are named `name`: as many as the machine has cores, at
    /// least 2 and at most 8 (sled's calls are short, and its writes mostly serialised on
    /// its log: more would not go faster).
    pub(crate) fn new(name: &'static str) -> Lane {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Lane {
            name,
            threads: cores.clamp(2, 8),
            started: Once::new(),
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                ready: Condvar::new(),
            }),
            watch: StallWatch::new(),
        }
    }

    /// Runs `call` on one of the lane's threads, counted by the watch from the moment it
    /// asks. A call that panics answers `gone`'s error, as a call whose outcome is
    /// unknown.
    pub(crate) fn run<T, E>(
        &self,
        call: impl FnOnce() -> Result<T, E> + Send + 'static,
        gone: fn(String) -> E,
    ) -> Answering<'_, T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let call = Box::new(move || Box::new(call()) as Answer);
        Answering {
            waiting: Box::pin(self.run_erased(call)),
            gone,
            answer: PhantomData,
        }
    }

    async fn run_erased(
        &self,
        call: Box<dyn FnOnce() -> Answer + Send>,
    ) -> Result<Answer, &'static str> {
        let _waiting = self.watch.begin();
        self.start();
        let (answer, answered) = tokio::sync::oneshot::channel::<Answer>();
        let job: Job = Box::new(move || {
            // The caller may have gone (its request cancelled): the call ran all the same.
            let _ = answer.send(call());
        });
        {
            let mut queue = self.lock();
            if queue.closed {
                return Err("the store is closing");
            }
            queue.jobs.push_back(job);
            if queue.idle > 0 {
                self.shared.ready.notify_one();
            }
        }
        answered.await.map_err(|_| "a store call did not finish")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn start(&self) {
        self.started.call_once(|| {
            for _ in 0..self.threads {
                let shared = Arc::clone(&self.shared);
                let spawned = std::thread::Builder::new()
                    .name(self.name.to_string())
                    .spawn(move || take_calls(&shared));
                if let Err(err) = spawned {
                    tracing::error!(error = %err, lane = self.name, "could not start a store thread");
                }
            }
        });
    }
}

impl Drop for Lane {
    /// The threads end once the calls queued are done; a call stuck on the disk keeps its
    /// thread until the disk answers, and nobody waits for it.
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// A lane thread: takes calls until the lane is closed and its queue empty.
fn take_calls(shared: &Shared) {
    loop {
        let job = {
            let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                if queue.closed {
                    return;
                }
                queue.idle += 1;
                queue = shared
                    .ready
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
                queue.idle -= 1;
            }
        };
        // A panicking call drops its answer (the caller hears `gone`); the thread lives on.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// What waits on the disk, and when something last finished.
pub struct StallWatch {
    waiting: AtomicUsize,
    /// Milliseconds since `origin` at the last start from idle or the last finish.
    progress_ms: AtomicU64,
    origin: Instant,
}

impl StallWatch {
    #[allow(
        clippy::disallowed_methods,
        reason = "a stalled disk is stalled in real time, whatever a test's clock says"
    )]
    pub(crate) fn new() -> StallWatch {
        StallWatch {
            waiting: AtomicUsize::new(0),
            progress_ms: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts one wait until the guard is dropped.
    pub(crate) fn begin(&self) -> Waiting<'_> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) == 0 {
            // From idle: the clock of this stretch starts now, not at the last finish.
            self.progress_ms.store(self.now_ms(), Ordering::Release);
        }
        Waiting { watch: self }
    }

    /// How long writes have waited with none finishing; `None` when nothing waits or
    /// something finished within `after`.
    pub fn stalled(&self, after: Duration) -> Option<Duration> {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        let since = self
            .now_ms()
            .saturating_sub(self.progress_ms.load(Ordering::Acquire));
        let since = Duration::from_millis(since);
        (since > after).then_some(since)
    }
}

/// One wait on the disk; finishing it is progress.
pub(crate) struct Waiting<'a> {
    watch: &'a StallWatch,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.watch
            .progress_ms
            .store(self.watch.now_ms(), Ordering::Release);
        self.watch.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "these tests wait and measure in real time"
)]
mod tests {
    use super::*;

    #[test]
    fn nothing_waiting_is_never_stalled() {
        let watch = StallWatch::new();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(watch.stalled(Duration::from_millis(10)), None);
    }

    #[test]
    fn a_wait_with_no_finish_is_stalled_after_the_bound_and_clears_when_it_ends() {
        let watch = StallWatch::new();
        let stuck = watch.begin();
        assert_eq!(watch.stalled(Duration::from_millis(20)), None);
        std::thread::sleep(Duration::from_millis(40));
        assert!(watch.stalled(Duration::from_millis(20)).is_some());
        drop(stuck);
        assert_eq!(watch.stalled(Duration::from_millis(20)), None);
    }

    #[test]
    fn finishes_beside_a_long_wait_count_as_progress() {
        let watch = StallWatch::new();
        let _long = watch.begin();
        std::thread::sleep(Duration::from_millis(40));
        drop(watch.begin());
        assert_eq!(watch.stalled(Duration::from_millis(20)), None);
    }

    #[tokio::test]
    async fn a_call_runs_off_the_caller_and_answers_its_outcome() {
        let lane = Lane::new("claimd-test-lane");
        let caller = std::thread::current().id();
        let ran_on = lane
            .run(
                move || Ok::<_, String>(std::thread::current().id()),
                |err| err,
            )
            .await
            .unwrap();
        assert_ne!(ran_on, caller);
        let failed = lane
            .run(|| Err::<(), _>("refused".to_string()), |err| err)
            .await;
        assert_eq!(failed, Err("refused".to_string()));
        let panicked = lane
            .run(|| -> Result<(), String> { panic!("a bug") }, |err| err)
            .await;
        assert_eq!(panicked, Err("a store call did not finish".to_string()));
        let after = lane.run(|| Ok::<_, String>(7), |err| err).await;
        assert_eq!(after, Ok(7), "the lane outlives a panicking call");
    }
}
