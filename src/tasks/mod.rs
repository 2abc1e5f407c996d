//! Background tasks started with the server and stopped before the store closes:
//! deny-list and session eviction, signing-key rotation, and recovery of the store after
//! write failures.

pub mod eviction;
pub mod key_sync;
#[cfg(feature = "smtp")]
pub mod mail_sender;
pub mod recovery;
pub mod rotation;

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Runs `job` every `period` until `shutdown` turns true; a job that overruns its period
/// delays the next one rather than bunching them up.
pub(crate) async fn every<F, Fut>(period: Duration, mut shutdown: watch::Receiver<bool>, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        job().await;
    }
}
