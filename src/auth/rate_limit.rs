//! Failed-login budgets per username and per client address (`auth.login_attempts`):
//! a fixed window per key counting failures. Memory is bounded: past `capacity` keys,
//! expired windows are dropped first and then the oldest, so a flood of made-up usernames
//! costs a bounded map, not unbounded growth.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::LoginAttempts;

/// Most keys tracked at once (~100 bytes each).
pub const DEFAULT_CAPACITY: usize = 100_000;

struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failed logins per key.
pub struct LoginLimiter {
    budget: LoginAttempts,
    capacity: usize,
    windows: Mutex<HashMap<String, Window>>,
}

impl LoginLimiter {
    /// A limiter allowing `budget.max` failures per `budget.window` for each key.
    pub fn new(budget: LoginAttempts, capacity: usize) -> LoginLimiter {
        LoginLimiter {
            budget,
            capacity: capacity.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when any of `keys` has used its budget.
    pub fn check(&self, keys: &[&str], now: Instant) -> Result<(), Duration> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(window) = windows.get(*key) {
                let elapsed = now.saturating_duration_since(window.started);
                if elapsed < self.budget.window && window.failures >= self.budget.max {
                    wait = wait.max(self.budget.window - elapsed);
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Counts one failure against each of `keys`.
    pub fn record_failure(&self, keys: &[&str], now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            if !windows.contains_key(*key) && windows.len() >= self.capacity {
                self.make_room(&mut windows, now);
            }
            let window = windows.entry((*key).to_string()).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.saturating_duration_since(window.started) >= self.budget.window {
                *window = Window {
                    started: now,
                    failures: 0,
                };
            }
            window.failures = window.failures.saturating_add(1);
        }
    }

    /// Forgets a key (a successful login clears its username's failures).
    pub fn clear(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn make_room(&self, windows: &mut HashMap<String, Window>, now: Instant) {
        let window = self.budget.window;
        windows.retain(|_, w| now.saturating_duration_since(w.started) < window);
        if windows.len() >= self.capacity {
            let oldest = windows
                .iter()
                .min_by_key(|(_, w)| w.started)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                windows.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(capacity: usize) -> LoginLimiter {
        LoginLimiter::new(
            LoginAttempts {
                max: 3,
                window: Duration::from_secs(60),
            },
            capacity,
        )
    }

    #[test]
    fn refuses_after_the_budget_until_the_window_ends() {
        let limiter = limiter(10);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(&["u:a"], start).is_ok());
            limiter.record_failure(&["u:a"], start);
        }
        let wait = limiter
            .check(&["u:a"], start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(limiter.check(&["u:b"], start).is_ok());
        assert!(limiter
            .check(&["u:a"], start + Duration::from_secs(60))
            .is_ok());
    }

    #[test]
    fn memory_stays_bounded() {
        let limiter = limiter(100);
        let start = Instant::now();
        for n in 0..1000 {
            limiter.record_failure(&[&format!("u:{n}")], start);
        }
        assert!(limiter.tracked() <= 100);
    }

    #[test]
    fn success_clears_a_key() {
        let limiter = limiter(10);
        let now = Instant::now();
        for _ in 0..3 {
            limiter.record_failure(&["u:a"], now);
        }
        limiter.clear("u:a");
        assert!(limiter.check(&["u:a"], now).is_ok());
    }
}
