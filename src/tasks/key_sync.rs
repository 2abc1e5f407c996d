//! One key ring across nodes: when another node publishes, begins or retires a signing key
//! (a `KeysChanged` record in the shared change log), this node reads its key ring again,
//! so a rotation started anywhere is published and used everywhere. On the embedded store
//! only this process changes keys, and the task ends at once.

use std::sync::Arc;

use tokio::sync::watch;

use crate::auth::Auth;

/// Runs until `shutdown` turns true or the store stops reporting key changes.
pub async fn run(
    auth: Arc<Auth>,
    mut keys: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    // A change another node made between this node loading its ring and subscribing here
    // counts as seen already (two nodes starting together on an empty database each make
    // a first key): read the ring once now. A closed channel (sled) has no other node.
    if keys.has_changed().is_ok() {
        reload(&auth).await;
    }
    loop {
        tokio::select! {
            changed = keys.changed() => {
                if changed.is_err() {
                    return;
                }
                reload(&auth).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn reload(auth: &Auth) {
    match auth.keys.reload_key_ring().await {
        Ok(()) => tracing::info!("signing keys changed on another node: key ring reloaded"),
        Err(err) => tracing::error!(error = %err, "could not reload the key ring"),
    }
}
