//! The verified-token cache (DESIGN.md verification steps 1–2 only): a presented token
//! whose header, signature and registered claims were checked once is not checked again
//! until it expires. Keyed by the SHA-256 of the whole token, so only the very same bytes
//! can hit an entry. Bounded in entries; an entry is dropped at its token's `exp` (plus
//! leeway). Never consulted for the deny list or claim versions: those run every time.
//! claimd and `claimd-verify` keep one each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use crate::claims::AccessClaims;

const SHARDS: usize = 16;

/// A bounded map from token digest to its verified claims.
pub struct VerifiedTokenCache {
    shards: Vec<Mutex<HashMap<[u8; 32], Arc<AccessClaims>>>>,
    per_shard: usize,
    leeway: u64,
}

impl VerifiedTokenCache {
    /// A cache of at most `capacity` entries, rounded up to a multiple of its 16 shards (0
    /// turns it off). `leeway` is added to `exp`.
    pub fn new(capacity: usize, leeway: u64) -> VerifiedTokenCache {
        VerifiedTokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            leeway,
        }
    }

    fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn shard(&self, digest: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], Arc<AccessClaims>>> {
        &self.shards[usize::from(digest[0]) % SHARDS]
    }

    /// The cached claims of `token`, if it was verified before and has not expired.
    pub fn get(&self, token: &str, now: u64) -> Option<Arc<AccessClaims>> {
        if self.per_shard == 0 {
            return None;
        }
        let digest = Self::digest(token);
        let mut shard = self
            .shard(&digest)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match shard.get(&digest) {
            Some(claims) if claims.exp.saturating_add(self.leeway) >= now => {
                Some(Arc::clone(claims))
            }
            Some(_) => {
                shard.remove(&digest);
                None
            }
            None => None,
        }
    }

    /// Remembers the claims of a token that just passed verification.
    pub fn insert(&self, token: &str, claims: Arc<AccessClaims>, now: u64) {
        if self.per_shard == 0 {
            return;
        }
        let digest = Self::digest(token);
        let mut shard = self
            .shard(&digest)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= self.per_shard && !shard.contains_key(&digest) {
            let leeway = self.leeway;
            shard.retain(|_, cached| cached.exp.saturating_add(leeway) >= now);
            // None has expired: the shard starts again empty. Evicting one entry would
            // scan the whole shard again at the next insert; emptying it makes the scans
            // one per `per_shard` inserts (a burst of distinct tokens then costs one
            // signature check each, as without a cache).
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(digest, claims);
    }

    /// Forgets everything (the key set changed: a key that left verifies nothing more).
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Arc<AccessClaims> {
        Arc::new(AccessClaims {
            exp,
            ..AccessClaims::default()
        })
    }

    #[test]
    fn only_the_same_token_hits() {
        let cache = VerifiedTokenCache::new(100, 0);
        cache.insert("a.b.c", claims(100), 10);
        assert!(cache.get("a.b.c", 10).is_some());
        assert!(cache.get("a.b.d", 10).is_none());
        assert!(cache.get("a.b.c ", 10).is_none());
    }

    #[test]
    fn entries_leave_at_exp_plus_leeway() {
        let cache = VerifiedTokenCache::new(100, 5);
        cache.insert("t", claims(100), 10);
        assert!(cache.get("t", 105).is_some());
        assert!(cache.get("t", 106).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn stays_within_its_bound() {
        let cache = VerifiedTokenCache::new(64, 0);
        for n in 0..10_000 {
            cache.insert(&format!("token-{n}"), claims(1_000), 10);
        }
        assert!(cache.len() <= 64);
    }

    #[test]
    fn clear_forgets_everything() {
        let cache = VerifiedTokenCache::new(100, 0);
        cache.insert("t", claims(100), 10);
        cache.clear();
        assert!(cache.get("t", 10).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn capacity_zero_turns_it_off() {
        let cache = VerifiedTokenCache::new(0, 0);
        cache.insert("t", claims(100), 10);
        assert!(cache.get("t", 10).is_none());
    }
}
