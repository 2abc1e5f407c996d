//! Storage recovery. Every second the loop asks the store whether it still makes writes
//! durable (an empty flush surfaces a failure of sled's own background flush, which would
//! otherwise be met first by a request); during a write-failure episode it tries to reopen
//! the store once the disk takes writes again (`Store::try_recover`). When the store cannot
//! be reopened in place, the reason is handed to the application, which stops and exits
//! non-zero so that a supervisor restarts it. Damage the background scan of the deny-list
//! buckets finds stops the server the same way.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::store::Store;

/// How often the disk is looked at: the bound on how long writes stay refused after the
/// disk takes them again (plus the reopen itself).
const PERIOD: Duration = Duration::from_secs(1);

/// Runs until `shutdown` turns true, or until the store cannot be recovered (then the
/// reason goes to `fatal`).
pub async fn run(
    store: Arc<Store>,
    fatal: mpsc::UnboundedSender<String>,
    shutdown: watch::Receiver<bool>,
) {
    super::every(PERIOD, shutdown, || {
        let store = Arc::clone(&store);
        let fatal = fatal.clone();
        async move {
            if let Some(damage) = store.damage() {
                let _ = fatal.send(format!("{}: {damage}", store.location()));
                return;
            }
            if store.is_writable() {
                store.probe().await;
                return;
            }
            let recovering = Arc::clone(&store);
            match tokio::task::spawn_blocking(move || recovering.try_recover()).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    let _ = fatal.send(format!(
                        "{}: the store could not be reopened after a write failure: {err}",
                        store.location()
                    ));
                }
                Err(err) => tracing::error!(error = %err, "store recovery task failed"),
            }
        }
    })
    .await;
}
