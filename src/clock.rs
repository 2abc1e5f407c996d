//! Time as claimd reads it. One [`Clock`] is handed to everything that asks what time it
//! is (the flows, the store's migrations, the background tasks, the rate limiters), so that
//! no rule about time is proven only by waiting for it to pass.
//!
//! A clock answers two questions: the wall-clock time in Unix seconds or milliseconds (what
//! tokens, sessions and deny-list entries are stamped with) and a monotonic instant (what
//! rate-limit windows and the eviction pace are measured in). The server runs on
//! [`Clock::system`]. A [`ManualClock`] is moved by hand: [`ManualClock::advance`] moves
//! both readings, as time passing does; [`ManualClock::set`] moves only the wall clock, as
//! an operator or NTP setting it does.
//!
//! A third reading, [`Clock::steady_ms`], is for measuring how long ago something this
//! process stamped happened: the wall clock, except that once it has read later it never
//! goes back, running on by monotonic time until the wall clock catches up. A clock that
//! was ahead and is set right cannot make a moment stamped while it was ahead look recent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the time comes from. Cheap to clone; clones read the same time.
#[derive(Clone, Debug)]
pub struct Clock {
    source: Source,
    /// The latest steady reading and the monotonic instant it was taken at.
    steady: Arc<Mutex<Option<(u64, Instant)>>>,
}

#[derive(Clone, Debug)]
enum Source {
    System,
    Manual(Arc<ManualTime>),
}

impl Clock {
    /// The operating system's clocks.
    pub fn system() -> Clock {
        Clock::from_source(Source::System)
    }

    fn from_source(source: Source) -> Clock {
        Clock {
            source,
            steady: Arc::default(),
        }
    }

    /// Unix seconds now.
    pub fn now(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Unix milliseconds now.
    #[allow(
        clippy::disallowed_methods,
        reason = "the clock itself: its system source reads the operating system's clocks"
    )]
    pub fn now_ms(&self) -> u64 {
        match &self.source {
            Source::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| {
                    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
                }),
            Source::Manual(time) => time.wall_ms.load(Ordering::SeqCst),
        }
    }

    /// Unix milliseconds that never go back on this clock and its clones: the wall clock,
    /// or, while it reads earlier than a previous steady reading, that reading plus the
    /// monotonic time since. What "how long ago did this process stamp it" is measured in.
    pub fn steady_ms(&self) -> u64 {
        let wall = self.now_ms();
        let now = self.instant();
        let mut latest = self.steady.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((reading, at)) = *latest {
            let elapsed =
                u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX);
            let carried = reading.saturating_add(elapsed);
            if carried > wall {
                return carried;
            }
        }
        *latest = Some((wall, now));
        wall
    }

    /// Waits until this clock's monotonic reading reaches `deadline`: real time on the
    /// system clock; on a manual clock, until it is moved that far (a test advances it
    /// instead of sleeping).
    pub async fn sleep_until(&self, deadline: Instant) {
        match &self.source {
            Source::System => tokio::time::sleep_until(deadline.into()).await,
            Source::Manual(time) => {
                let mut moved = time.moved.subscribe();
                while self.instant() < deadline {
                    // The sender lives as long as the clock does, and so as this wait.
                    if moved.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// A monotonic reading: never goes back, not moved by setting the wall clock.
    #[allow(
        clippy::disallowed_methods,
        reason = "the clock itself: its system source reads the operating system's clocks"
    )]
    pub fn instant(&self) -> Instant {
        match &self.source {
            Source::System => Instant::now(),
            Source::Manual(time) => {
                time.origin + Duration::from_millis(time.elapsed_ms.load(Ordering::SeqCst))
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

/// A clock that stands still until it is moved: for tests and simulations. Its
/// [`ManualClock::clock`] is handed to the parts under test; the handle keeps moving it.
#[derive(Clone, Debug)]
pub struct ManualClock {
    time: Arc<ManualTime>,
}

#[derive(Debug)]
struct ManualTime {
    wall_ms: AtomicU64,
    origin: Instant,
    elapsed_ms: AtomicU64,
    /// Told each time the clock is moved, so waits on it ([`Clock::sleep_until`]) look.
    moved: tokio::sync::watch::Sender<()>,
}

impl ManualClock {
    /// A clock reading `unix_secs`.
    #[allow(
        clippy::disallowed_methods,
        reason = "a manual clock's monotonic origin, which it then moves by hand"
    )]
    pub fn starting_at(unix_secs: u64) -> ManualClock {
        ManualClock {
            time: Arc::new(ManualTime {
                wall_ms: AtomicU64::new(unix_secs.saturating_mul(1000)),
                origin: Instant::now(),
                elapsed_ms: AtomicU64::new(0),
                moved: tokio::sync::watch::Sender::new(()),
            }),
        }
    }

    /// A clock reading the system's time now, standing still from here.
    pub fn starting_now() -> ManualClock {
        let manual = ManualClock::starting_at(0);
        manual
            .time
            .wall_ms
            .store(Clock::system().now_ms(), Ordering::SeqCst);
        manual
    }

    /// The clock to hand to the parts under test.
    pub fn clock(&self) -> Clock {
        Clock::from_source(Source::Manual(Arc::clone(&self.time)))
    }

    /// Lets `by` pass: both the wall clock and the monotonic one move.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.time.wall_ms.fetch_add(ms, Ordering::SeqCst);
        self.time.elapsed_ms.fetch_add(ms, Ordering::SeqCst);
        self.time.moved.send_replace(());
    }

    /// Sets the wall clock to `unix_secs` (forward or back); the monotonic one stays.
    pub fn set(&self, unix_secs: u64) {
        self.time
            .wall_ms
            .store(unix_secs.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Unix seconds on this clock.
    pub fn now(&self) -> u64 {
        self.clock().now()
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
    fn a_manual_clock_moves_only_when_told() {
        let manual = ManualClock::starting_at(1_000);
        let clock = manual.clock();
        let before = clock.instant();
        assert_eq!(clock.now(), 1_000);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), 1_000);
        assert_eq!(clock.instant(), before);

        manual.advance(Duration::from_millis(2_500));
        assert_eq!(clock.now(), 1_002);
        assert_eq!(clock.now_ms(), 1_002_500);
        assert_eq!(clock.instant() - before, Duration::from_millis(2_500));
    }

    #[tokio::test]
    async fn a_wait_on_a_manual_clock_ends_when_it_is_moved_far_enough() {
        let manual = ManualClock::starting_at(1_000);
        let clock = manual.clock();
        let deadline = clock.instant() + Duration::from_secs(1);
        let waiting = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(deadline).await }
        });
        tokio::task::yield_now().await;
        manual.advance(Duration::from_millis(600));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "600 ms of a 1 s wait");
        manual.advance(Duration::from_millis(400));
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the wait ends once the clock is moved far enough")
            .expect("the wait's task");
    }

    #[test]
    fn setting_the_wall_clock_leaves_the_monotonic_one() {
        let manual = ManualClock::starting_at(5_000);
        let clock = manual.clock();
        let before = clock.instant();
        manual.set(4_000);
        assert_eq!(clock.now(), 4_000);
        assert_eq!(clock.instant(), before);
    }

    #[test]
    fn the_steady_reading_follows_the_wall_clock_but_never_goes_back() {
        let manual = ManualClock::starting_at(10_000);
        let clock = manual.clock();
        assert_eq!(clock.steady_ms(), 10_000_000);
        // Ahead by an hour, then set right: the steady reading runs on from the hour.
        manual.set(13_600);
        assert_eq!(clock.steady_ms(), 13_600_000);
        manual.set(10_001);
        assert_eq!(clock.steady_ms(), 13_600_000);
        manual.advance(Duration::from_millis(1_500));
        assert_eq!(clock.steady_ms(), 13_601_500);
        // Once the wall clock passes it again, it is the wall clock.
        manual.set(20_000);
        assert_eq!(clock.steady_ms(), 20_000_000);
        assert_eq!(clock.clone().steady_ms(), 20_000_000, "clones share it");
    }

    #[test]
    fn the_system_clock_reads_the_present() {
        let clock = Clock::system();
        // 2020-01-01: any machine running this is past it.
        assert!(clock.now() > 1_577_836_800);
        let first = clock.instant();
        assert!(clock.instant() >= first);
    }
}
