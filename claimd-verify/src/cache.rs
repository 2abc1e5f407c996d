//! The verified-token cache, as claimd keeps its own: a token that passed the header,
//! signature and registered-claim checks once is remembered until its `exp` (plus leeway),
//! keyed by the SHA-256 of the whole token, so no other token can hit its entry. The
//! signature check is most of what verification costs; the deny list and the versions are
//! still checked on every call, so a revocation is never hidden by a hit.
//!
//! Bounded: when full, entries past their `exp` go first; if none has expired, everything
//! goes (a burst of distinct tokens then costs one signature check each, as without a
//! cache).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

use crate::check::VerifiedClaims;

pub(crate) struct VerifiedCache {
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], VerifiedClaims>>,
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens (0: no cache).
    pub(crate) fn new(capacity: usize) -> VerifiedCache {
        VerifiedCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The claims of `token` if it passed before and is not past `exp + leeway` at `now`.
    pub(crate) fn get(&self, token: &str, now: u64, leeway: u64) -> Option<VerifiedClaims> {
        if self.capacity == 0 {
            return None;
        }
        let key = Self::key(token);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(&key) {
            Some(claims) if claims.exp.saturating_add(leeway) >= now => Some(claims.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers a token that passed the checks at `now`.
    pub(crate) fn insert(&self, token: &str, claims: &VerifiedClaims, now: u64, leeway: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.retain(|_, held| held.exp.saturating_add(leeway) >= now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(Self::key(token), claims.clone());
    }

    /// Forgets everything (the key set changed).
    pub(crate) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> VerifiedClaims {
        serde_json::from_value(serde_json::json!({
            "iss": "http://127.0.0.1:8080", "sub": "u", "aud": "claimd", "exp": exp,
            "iat": 1, "jti": "j", "sid": "s", "roles": [], "plan": "free", "uv": 1, "tv": 0
        }))
        .unwrap()
    }

    #[test]
    fn a_hit_lasts_until_exp_plus_leeway() {
        let cache = VerifiedCache::new(10);
        cache.insert("token", &claims(100), 50, 30);
        assert_eq!(cache.get("token", 130, 30), Some(claims(100)));
        assert_eq!(cache.get("token", 131, 30), None);
        assert_eq!(cache.len(), 0, "an expired entry leaves on its miss");
        assert_eq!(cache.get("other", 50, 30), None);
    }

    #[test]
    fn a_full_cache_drops_the_expired_first_then_everything() {
        let cache = VerifiedCache::new(2);
        cache.insert("old", &claims(10), 0, 0);
        cache.insert("live", &claims(1_000), 0, 0);
        cache.insert("new", &claims(1_000), 500, 0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("live", 500, 0).is_some());
        cache.insert("newer", &claims(1_000), 500, 0);
        assert_eq!(cache.len(), 1, "nothing had expired: all went");
        assert!(cache.get("newer", 500, 0).is_some());
    }

    #[test]
    fn no_capacity_no_cache() {
        let cache = VerifiedCache::new(0);
        cache.insert("token", &claims(100), 0, 0);
        assert_eq!(cache.get("token", 0, 0), None);
    }
}
