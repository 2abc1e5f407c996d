//! The eviction loop: every `eviction.interval` it runs
//! [`evict_expired`](crate::store::evict_expired) on the blocking pool and records what
//! left in the metrics. It stops when the shutdown signal flips.
//!
//! The time it evicts by can never be later than the true time, whatever the wall clock
//! reads: a deny entry dropped early revives its revoked token once the clock is set right
//! (issue 19: a start with the clock 25 minutes ahead did that). It is the wall clock, but
//! never past the *horizon*, the time the last pass worked from, persisted in the store,
//! plus the real (monotonic) time elapsed since this process read it. The horizon was true
//! when written and time only moves on, so neither a clock ahead at boot nor one stepped
//! ahead later can move eviction past the truth; a clock behind only slows it.
//!
//! The price: time the server was stopped is not counted, since no clock it can trust
//! saw it pass. After a stop of a day, eviction runs a day behind the wall clock for good
//! (what expired is kept that much longer: disk, never a wrong answer); on PostgreSQL a
//! node that stayed up carries the shared horizon forward for the others.

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
    let horizon = Arc::new(std::sync::Mutex::new(Horizon::default()));
    super::every(interval, shutdown, || {
        let store = Arc::clone(&store);
        let metrics = Arc::clone(&metrics);
        let horizon = Arc::clone(&horizon);
        let clock = clock.clone();
        async move {
            if let Err(err) = one_pass(&store, &metrics, &horizon, &clock, leeway).await {
                tracing::error!(error = %err, "eviction failed");
            }
        }
    })
    .await;
}

async fn one_pass(
    store: &Arc<Store>,
    metrics: &Metrics,
    horizon: &std::sync::Mutex<Horizon>,
    clock: &Clock,
    leeway: u64,
) -> Result<(), crate::store::StoreError> {
    let persisted = store.eviction_horizon().await?;
    let at = horizon
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .at(clock.now(), clock.instant(), persisted);
    let report = store.evict_expired(at, leeway).await?;
    store.advance_eviction_horizon(at).await?;
    metrics.evicted(report.deny_removed, report.sessions_removed);
    if report.deny_removed + report.sessions_removed > 0 {
        tracing::debug!(
            at,
            deny = report.deny_removed,
            deny_buckets = report.deny_buckets_dropped,
            sessions = report.sessions_removed,
            invitations = report.invitations_removed,
            changes = report.changes_removed,
            "evicted expired entries"
        );
    }
    Ok(())
}

/// The time eviction works from: the wall clock, never past the persisted horizon as
/// this process first read it plus the monotonic time elapsed since, nor past the
/// horizon as read now (another node may have carried it forward).
#[derive(Default)]
struct Horizon {
    /// The horizon read at the first pass, and when.
    anchor: Option<(u64, Instant)>,
}

impl Horizon {
    fn at(&mut self, wall: u64, now: Instant, persisted: Option<u64>) -> u64 {
        // A store no pass has run on yet (a new one) starts from the wall clock: there is
        // nothing older than it to judge it by.
        let (anchor, since) = *self.anchor.get_or_insert((persisted.unwrap_or(wall), now));
        let elapsed = now.saturating_duration_since(since).as_secs();
        let latest_true = anchor.saturating_add(elapsed).max(persisted.unwrap_or(0));
        wall.min(latest_true)
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
    fn a_clock_ahead_at_start_is_held_to_the_horizon_and_real_time() {
        let start = Instant::now();
        let mut horizon = Horizon::default();
        // The last run reached 1,000; this one starts with the clock a day ahead.
        assert_eq!(horizon.at(1_000 + 86_400, start, Some(1_000)), 1_000);
        let later = start + Duration::from_secs(600);
        assert_eq!(horizon.at(1_000 + 86_400 + 600, later, Some(1_000)), 1_600);
        // Set right again (the stop lasted 100 s): the wall clock, behind the bound, rules.
        assert_eq!(horizon.at(1_700, later, Some(1_600)), 1_600);
        let after = later + Duration::from_secs(30);
        assert_eq!(horizon.at(1_730, after, Some(1_600)), 1_630);
    }

    #[test]
    fn an_honest_clock_is_followed_exactly() {
        let start = Instant::now();
        let mut horizon = Horizon::default();
        let mut persisted = Some(5_000);
        for step in 0..5u64 {
            let at = start + Duration::from_secs(30 * step);
            let evicting_from = horizon.at(5_000 + 30 * step, at, persisted);
            assert_eq!(evicting_from, 5_000 + 30 * step);
            persisted = Some(evicting_from);
        }
    }

    #[test]
    fn a_clock_stepped_ahead_during_a_run_gains_nothing() {
        let start = Instant::now();
        let mut horizon = Horizon::default();
        assert_eq!(horizon.at(1_000, start, Some(990)), 990);
        let later = start + Duration::from_secs(10);
        assert_eq!(horizon.at(1_010 + 3_600, later, Some(990)), 1_000);
    }

    #[test]
    fn another_nodes_horizon_carries_it_forward_and_a_new_store_starts_from_the_wall() {
        let start = Instant::now();
        let mut fresh = Horizon::default();
        assert_eq!(fresh.at(7_000, start, None), 7_000);
        let mut node = Horizon::default();
        assert_eq!(node.at(9_000, start, Some(8_000)), 8_000);
        // A node that stayed up moved the shared horizon to 8,900.
        assert_eq!(
            node.at(9_005, start + Duration::from_secs(5), Some(8_900)),
            8_900
        );
    }
}
