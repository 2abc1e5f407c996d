//! The eviction loop: every `eviction.interval` it runs
//! [`evict_expired`](crate::store::evict_expired) on the blocking pool and records what
//! left in the metrics. It stops when the shutdown signal flips.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::now;
use crate::store::{evict_expired, Store};
use crate::telemetry::Metrics;

/// Runs until `shutdown` turns true.
pub async fn run(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        let pass_store = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || evict_expired(&pass_store, now())).await {
            Ok(Ok(report)) => {
                metrics.evicted(report.deny_removed, report.sessions_removed);
                if report.deny_removed + report.sessions_removed > 0 {
                    tracing::debug!(
                        deny = report.deny_removed,
                        sessions = report.sessions_removed,
                        "evicted expired entries"
                    );
                }
            }
            Ok(Err(err)) => tracing::error!(error = %err, "eviction failed"),
            Err(err) => tracing::error!(error = %err, "eviction task failed"),
        }
    }
}
