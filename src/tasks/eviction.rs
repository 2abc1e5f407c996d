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
    leeway: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let leeway = leeway.as_secs();
    super::every(interval, shutdown, || {
        let store = Arc::clone(&store);
        let metrics = Arc::clone(&metrics);
        async move {
            match tokio::task::spawn_blocking(move || evict_expired(&store, now(), leeway)).await {
                Ok(Ok(report)) => {
                    metrics.evicted(report.deny_removed, report.sessions_removed);
                    if report.deny_removed + report.sessions_removed > 0 {
                        tracing::debug!(
                            deny = report.deny_removed,
                            deny_buckets = report.deny_buckets_dropped,
                            sessions = report.sessions_removed,
                            "evicted expired entries"
                        );
                    }
                }
                Ok(Err(err)) => tracing::error!(error = %err, "eviction failed"),
                Err(err) => tracing::error!(error = %err, "eviction task failed"),
            }
        }
    })
    .await;
}
