//! A session ([`SessionRecord`], one refresh-token family) and the rules of its
//! compare-and-set writes: a rotation from generation N ([`SessionRecord::rotate`]) and a
//! new access token for the generation it is at ([`SessionRecord::renew_access`]), judged
//! the same on both backends; and a session to end ([`Revocation`]).

use std::ops::RangeInclusive;

use crate::domain::{SessionId, UserId};

/// A refresh-token family as the store hands it out (its on-disk shapes are in
/// `disk::session`).
///
/// One record verifies every generation ever issued: the refresh token's MAC is computed
/// from `session_key` and the generation, so no per-token rows exist.
#[derive(Clone, PartialEq)]
pub struct SessionRecord {
    pub user: UserId,
    /// 32 random bytes; the refresh-token MAC key. Never leaves the store.
    pub session_key: [u8; 32],
    /// The generation of the newest refresh token issued.
    pub generation: u64,
    pub created_at: u64,
    /// Absolute end of the session (`tokens.refresh_ttl` after login).
    pub expires_at: u64,
    pub last_used: u64,
    /// When `generation` was issued, in unix milliseconds: the start of the reuse-grace
    /// window (seconds would stretch a 1 s grace to almost 2 s).
    pub rotated_at_ms: u64,
    pub revoked: bool,
    /// The access token issued with `generation`, answered again to a refresh that
    /// lost the concurrent-refresh race, so both tabs end up with the same pair.
    pub current_access_token: String,
    /// That access token's `exp`.
    pub current_access_expires: u64,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("user", &self.user)
            .field("generation", &self.generation)
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

impl SessionRecord {
    /// The owning user.
    pub fn user_id(&self) -> UserId {
        self.user
    }
}

/// A refresh's rotation of its session, as the refresh saw it.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The generation presented: the session rotates only if it is still at it.
    pub from_generation: u64,
    /// The access token issued with the next generation, and its `exp`.
    pub access_token: String,
    pub access_expires: u64,
    /// When: unix seconds (`last_used`) and milliseconds (the reuse-grace window).
    pub at: u64,
    pub at_ms: u64,
}

impl SessionRecord {
    /// Moves this session one generation on, as `rotation` saw it, if it is live and still
    /// at the generation presented; whether it did (a session already moved on, or ended,
    /// is left as it is: the refresh lost a race or presented an old token).
    pub fn rotate(&mut self, rotation: &Rotation) -> bool {
        if self.revoked || self.generation != rotation.from_generation {
            return false;
        }
        self.generation += 1;
        self.rotated_at_ms = rotation.at_ms;
        self.last_used = rotation.at;
        self.current_access_token.clone_from(&rotation.access_token);
        self.current_access_expires = rotation.access_expires;
        true
    }

    /// Keeps a new access token (`access`: the token and its `exp`) for the generation
    /// this session is at, if it is live and still at `generation`, noting when it was
    /// `used`; whether it did.
    pub fn renew_access(
        &mut self,
        generation: u64,
        access: (&str, u64),
        used: Option<u64>,
    ) -> bool {
        if self.revoked || self.generation != generation {
            return false;
        }
        let (token, expires) = access;
        self.current_access_token = token.to_string();
        self.current_access_expires = expires;
        if let Some(at) = used {
            self.last_used = at;
        }
        true
    }
}

/// One session to end: its record as read under its lock, and the `exp`s its deny entry
/// must cover.
#[derive(Clone)]
pub struct Revocation {
    pub sid: SessionId,
    pub session: SessionRecord,
    pub deny: RangeInclusive<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::fixtures;

    /// A live session at `generation` (the fixtures' otherwise).
    fn session(generation: u64) -> SessionRecord {
        SessionRecord {
            generation,
            ..fixtures::session(UserId::generate())
        }
    }

    fn rotation(from_generation: u64) -> Rotation {
        Rotation {
            from_generation,
            access_token: "new".into(),
            access_expires: 900,
            at: 600,
            at_ms: 600_250,
        }
    }

    #[test]
    fn a_rotation_from_the_current_generation_moves_it_on() {
        let mut live = session(3);
        assert!(live.rotate(&rotation(3)));
        assert_eq!(live.generation, 4);
        assert_eq!((live.last_used, live.rotated_at_ms), (600, 600_250));
        assert_eq!(
            (
                live.current_access_token.as_str(),
                live.current_access_expires
            ),
            ("new", 900)
        );
    }

    #[test]
    fn a_rotation_from_another_generation_or_of_an_ended_session_changes_nothing() {
        let before = session(4);
        let mut moved_on = before.clone();
        assert!(!moved_on.rotate(&rotation(3)));
        assert_eq!(moved_on, before);
        let mut ended = SessionRecord {
            revoked: true,
            ..session(3)
        };
        assert!(!ended.rotate(&rotation(3)));
        assert_eq!(ended.generation, 3);
    }

    #[test]
    fn renewing_keeps_the_generation_and_notes_use_only_when_told() {
        let mut live = session(3);
        assert!(live.renew_access(3, ("fresh", 700), None));
        assert_eq!((live.generation, live.last_used), (3, 100));
        assert_eq!(live.current_access_token, "fresh");
        assert!(live.renew_access(3, ("fresher", 800), Some(650)));
        assert_eq!(live.last_used, 650);
        assert!(!live.renew_access(2, ("stale", 900), None));
        assert_eq!(live.current_access_token, "fresher");
    }
}
