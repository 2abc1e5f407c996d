//! Per-client budgets: a fixed window per key counting attempts, one implementation for
//! every limiter (failed logins per username and per client address under
//! `auth.login_attempts`, registrations per client address under `auth.register_limit`).
//!
//! Memory is bounded whatever a client sends: a key is a fixed-size digest
//! ([`LimitKey`]), never the username or address itself, so a 16 KiB made-up username costs
//! 16 bytes; and at most `capacity` keys are held. When a new key would pass the cap,
//! expired windows go first, then the oldest open windows, down to `capacity` less a
//! sixteenth, so each O(n) clean-up pays for many inserts. Open windows dropped that way
//! are counted (`claimd_rate_limit_evictions_total{limiter}`): a rising count means the
//! cap is too small for the traffic, or someone is flooding the limiter to make it forget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};

use crate::config::LoginAttempts;

/// A limiter key: the first 16 bytes of SHA-256 over a kind byte and the key's text.
/// 128 bits leave no practical collision to aim for; the text is never kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LimitKey([u8; 16]);

impl LimitKey {
    fn of(kind: u8, text: &[u8]) -> LimitKey {
        let digest = Sha256::new()
            .chain_update([kind])
            .chain_update(text)
            .finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        LimitKey(key)
    }

    /// The key of a username (as typed when it is not a valid username).
    pub fn username(name: &str) -> LimitKey {
        LimitKey::of(b'u', name.as_bytes())
    }

    /// The key of an email address (its case-insensitive key), whether or not an account
    /// has it.
    pub fn email(key: &crate::mail::EmailKey) -> LimitKey {
        LimitKey::of(b'e', key.as_str().as_bytes())
    }

    /// The key of a client address. An IPv6 client is charged by its /64, the block one
    /// subscriber usually holds: counting each of its 2^64 addresses apart would let one
    /// client walk around any budget. An IPv4-mapped IPv6 address counts as the IPv4 one.
    pub fn address(addr: IpAddr) -> LimitKey {
        match addr.to_canonical() {
            IpAddr::V4(v4) => LimitKey::of(b'4', &v4.octets()),
            IpAddr::V6(v6) => LimitKey::of(b'6', &v6.octets()[..8]),
        }
    }
}

struct Window {
    started: Instant,
    count: u32,
}

/// Counts attempts per key within a fixed window, in bounded memory.
pub struct RateLimiter {
    budget: LoginAttempts,
    capacity: usize,
    windows: Mutex<HashMap<LimitKey, Window>>,
    evictions: Counter,
}

impl RateLimiter {
    /// A limiter allowing `budget.max` attempts per `budget.window` for each key, tracking
    /// at most `capacity` keys; open windows dropped to honour the cap count on `evictions`.
    pub fn new(budget: LoginAttempts, capacity: usize, evictions: Counter) -> RateLimiter {
        RateLimiter {
            budget,
            capacity: capacity.max(1),
            windows: Mutex::new(HashMap::new()),
            evictions,
        }
    }

    /// `Err(retry_after)` when any of `keys` has used its budget.
    pub fn check(&self, keys: &[LimitKey], now: Instant) -> Result<(), Duration> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(window) = windows.get(key) {
                let elapsed = now.saturating_duration_since(window.started);
                if elapsed < self.budget.window && window.count >= self.budget.max {
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

    /// Counts one attempt against each of `keys`.
    pub fn record(&self, keys: &[LimitKey], now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            if !windows.contains_key(key) && windows.len() >= self.capacity {
                self.make_room(&mut windows, now);
            }
            let window = windows.entry(*key).or_insert(Window {
                started: now,
                count: 0,
            });
            if now.saturating_duration_since(window.started) >= self.budget.window {
                *window = Window {
                    started: now,
                    count: 0,
                };
            }
            window.count = window.count.saturating_add(1);
        }
    }

    /// Forgets a key (a successful login clears its username's failures).
    pub fn clear(&self, key: LimitKey) {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Drops expired windows, then the oldest open ones, down to `capacity - capacity/16`.
    fn make_room(&self, windows: &mut HashMap<LimitKey, Window>, now: Instant) {
        let span = self.budget.window;
        windows.retain(|_, w| now.saturating_duration_since(w.started) < span);
        let target = self.capacity - self.capacity / 16;
        let target = if target >= self.capacity {
            self.capacity - 1
        } else {
            target
        };
        if windows.len() <= target {
            return;
        }
        let excess = windows.len() - target;
        let mut ages: Vec<(Instant, LimitKey)> =
            windows.iter().map(|(key, w)| (w.started, *key)).collect();
        ages.select_nth_unstable_by_key(excess - 1, |(started, _)| *started);
        for (_, key) in &ages[..excess] {
            windows.remove(key);
        }
        self.evictions
            .inc_by(u64::try_from(excess).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "these tests wait and measure in real time"
)]
mod tests {
    use super::*;

    fn limiter(capacity: usize) -> (RateLimiter, Counter) {
        let evictions = Counter::default();
        let limiter = RateLimiter::new(
            LoginAttempts {
                max: 3,
                window: Duration::from_secs(60),
            },
            capacity,
            evictions.clone(),
        );
        (limiter, evictions)
    }

    #[test]
    fn refuses_after_the_budget_until_the_window_ends() {
        let (limiter, _) = limiter(10);
        let a = LimitKey::username("a");
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(&[a], start).is_ok());
            limiter.record(&[a], start);
        }
        let wait = limiter
            .check(&[a], start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(limiter.check(&[LimitKey::username("b")], start).is_ok());
        assert!(limiter.check(&[a], start + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn memory_stays_bounded_and_evictions_are_counted() {
        let (limiter, evictions) = limiter(100);
        let start = Instant::now();
        for n in 0..1000 {
            limiter.record(&[LimitKey::username(&format!("{n}"))], start);
        }
        assert!(limiter.tracked() <= 100);
        assert!(evictions.get() >= 900);
    }

    #[test]
    fn expired_windows_leave_before_open_ones_and_are_not_evictions() {
        let (limiter, evictions) = limiter(16);
        let start = Instant::now();
        for n in 0..16 {
            limiter.record(&[LimitKey::username(&format!("{n}"))], start);
        }
        let later = start + Duration::from_secs(61);
        limiter.record(&[LimitKey::username("new")], later);
        assert_eq!(limiter.tracked(), 1);
        assert_eq!(evictions.get(), 0);
    }

    #[test]
    fn the_oldest_open_windows_are_evicted_first() {
        let (limiter, _) = limiter(16);
        let start = Instant::now();
        let old = LimitKey::username("old");
        for _ in 0..3 {
            limiter.record(&[old], start);
        }
        for n in 0..16 {
            let at = start + Duration::from_secs(1);
            limiter.record(&[LimitKey::username(&format!("{n}"))], at);
        }
        assert!(
            limiter.check(&[old], start).is_ok(),
            "the oldest went first"
        );
    }

    #[test]
    fn success_clears_a_key() {
        let (limiter, _) = limiter(10);
        let a = LimitKey::username("a");
        let now = Instant::now();
        for _ in 0..3 {
            limiter.record(&[a], now);
        }
        limiter.clear(a);
        assert!(limiter.check(&[a], now).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_charged_by_its_slash_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other_in_block: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let next_block: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(LimitKey::address(one), LimitKey::address(other_in_block));
        assert_ne!(LimitKey::address(one), LimitKey::address(next_block));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(LimitKey::address(v4), LimitKey::address(mapped));
    }

    #[test]
    fn a_long_username_costs_a_fixed_size_key() {
        let long = "x".repeat(17 * 1024);
        assert_eq!(
            std::mem::size_of_val(&LimitKey::username(&long)),
            16,
            "the key never holds the text"
        );
    }
}
