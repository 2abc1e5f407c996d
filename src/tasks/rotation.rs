//! Signing-key upkeep: rotates when the newest key is older than `keys.rotate_every` and
//! drops keys no live token can need. Checks once a minute (or more often for short
//! rotation periods); stops when the shutdown signal flips.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::Auth;

/// Runs until `shutdown` turns true.
pub async fn run(auth: Arc<Auth>, shutdown: watch::Receiver<bool>) {
    let period = auth
        .settings()
        .keys
        .rotate_every
        .map_or(Duration::from_secs(60), |every| {
            (every / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
        });
    super::every(period, shutdown, || {
        let auth = Arc::clone(&auth);
        async move {
            match auth.keys.rotate_if_due().await {
                Ok(Some(added)) => {
                    tracing::info!(kid = %added.kid, signs_from = added.signs_from, "signing key rotated")
                }
                Ok(None) => {}
                Err(err) => tracing::error!(error = %err, "key rotation failed"),
            }
        }
    })
    .await;
}
