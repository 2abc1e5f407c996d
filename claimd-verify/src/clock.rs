//! The verifier's clocks: a monotonic one for staleness, a wall clock (Unix seconds) for
//! token times. Injectable, so tests can move time.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where the verifier reads the time.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time, for how long ago claimd was last heard.
    fn now(&self) -> Instant;
    /// Unix seconds, for `exp`, `iat` and pruning.
    fn unix(&self) -> u64;
}

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "the library's own clock: its system source"
    )]
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "the library's own clock: its system source"
    )]
    fn unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or_default()
    }
}
