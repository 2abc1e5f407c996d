//! The eviction loop: every `eviction.interval` it runs
//! [`evict_expired`](crate::store::evict_expired) on the blocking pool and records what
//! left in the metrics. It stops when the shutdown signal flips.
//!
//! The time it evicts by is the wall clock, paced by the monotonic one: within a run it
//! moves forward at most twice as fast as real time passes (plus a minute). A wall clock
//! that jumps a day ahead therefore cannot drop a day of deny-list buckets at once, which
//! would revive revoked tokens when the clock is set right again; it catches up over the
//! following day if the jump was real.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::clock::Clock;
use crate::store::Store;
use crate::telemetry::Metrics;

/// Runs until `shutdown` turns true.
pub async fn run(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    interval: Duration,
    leeway: Duration,
    clock: Clock,
    shutdown: watch::Receiver<bool>,
) {
    let leeway = leeway.as_secs();
    let pace = Arc::new(std::sync::Mutex::new(Pace::default()));
    super::every(interval, shutdown, || {
        let store = Arc::clone(&store);
        let metrics = Arc::clone(&metrics);
        let pace = Arc::clone(&pace);
        let clock = clock.clone();
        async move {
            let at = pace
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .now(clock.now(), clock.instant());
            match store.evict_expired(at, leeway).await {
                Ok(report) => {
                    metrics.evicted(report.deny_removed, report.sessions_removed);
                    if report.deny_removed + report.sessions_removed > 0 {
                        tracing::debug!(
                            deny = report.deny_removed,
                            deny_buckets = report.deny_buckets_dropped,
                            sessions = report.sessions_removed,
                            invitations = report.invitations_removed,
                            changes = report.changes_removed,
                            "evicted expired entries"
                        );
                    }
                }
                Err(err) => tracing::error!(error = %err, "eviction failed"),
            }
        }
    })
    .await;
}

/// Slack on top of twice the monotonic time elapsed since the last pass.
const PACE_SLACK_SECS: u64 = 60;

/// The time eviction works from: the wall clock, never more than twice as far ahead of
/// the previous pass as the monotonic clock has moved (plus a minute).
#[derive(Default)]
struct Pace {
    last: Option<(u64, Instant)>,
}

impl Pace {
    fn now(&mut self, wall: u64, at: Instant) -> u64 {
        let paced = match self.last {
            Some((previous, then)) => {
                let elapsed = at.saturating_duration_since(then).as_secs();
                wall.min(previous + 2 * elapsed + PACE_SLACK_SECS)
            }
            None => wall,
        };
        self.last = Some((paced, at));
        paced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_clock_jump_ahead_is_followed_at_twice_real_time() {
        let start = Instant::now();
        let mut pace = Pace::default();
        assert_eq!(pace.now(1_000, start), 1_000);
        // Ten real seconds later the wall clock reads a day ahead.
        let later = start + Duration::from_secs(10);
        assert_eq!(
            pace.now(1_010 + 86_400, later),
            1_000 + 20 + PACE_SLACK_SECS
        );
        // Back to the right time: eviction works from it at once.
        let back = later + Duration::from_secs(10);
        assert_eq!(pace.now(1_020, back), 1_020);
    }

    #[test]
    fn an_honest_clock_is_followed_exactly() {
        let start = Instant::now();
        let mut pace = Pace::default();
        for step in 0..5u64 {
            let at = start + Duration::from_secs(30 * step);
            assert_eq!(pace.now(5_000 + 30 * step, at), 5_000 + 30 * step);
        }
    }
}
