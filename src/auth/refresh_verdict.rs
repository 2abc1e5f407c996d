//! What a presented refresh token is (DESIGN.md "Refresh tokens"): one pure decision over
//! the token, its session, the session's user and the policy, made before anything is
//! written. `Sessions::refresh` reads what it needs, asks [`classify`], and runs the one
//! short step the verdict names; every row of DESIGN's table is a unit test here.
//!
//! | presented                                   | verdict      |
//! | ------------------------------------------- | ------------ |
//! | MAC invalid, or a generation never issued   | `Forged`     |
//! | session revoked, expired or idle too long;  | `Refused`    |
//! | its user gone or disabled                   |              |
//! | the current generation                      | `Rotate`     |
//! | the previous one, inside the grace window   | `Race`       |
//! | the previous one, its successor unanswered  | `Retry`      |
//! | the previous one, its successor answered;   | `Reuse`      |
//! | any older one                               |              |

use crate::store::{SessionRecord, UserRecord};

/// The settings a refresh is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefreshPolicy {
    /// `tokens.refresh_reuse_grace`, in milliseconds: 0 is no window at all.
    pub grace_ms: u64,
    /// `tokens.refresh_idle_ttl`, in seconds, if set.
    pub idle_secs: Option<u64>,
}

/// What the presented token says of itself, once its MAC has been checked against the
/// session's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Presented {
    pub generation: u64,
    pub mac_valid: bool,
}

/// When the refresh is judged: unix seconds (expiry, idleness) and the steady clock in
/// milliseconds (the grace window, on a clock that never runs back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moment {
    pub now: u64,
    pub steady_ms: u64,
}

/// The previous generation's standing, past the grace window: whether the answer that
/// carried its successor left. Read only when the verdict depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Successor {
    /// Not asked: the verdict does not depend on it.
    NotAsked,
    /// The newest acknowledged generation of the session, if any.
    Acknowledged(Option<u64>),
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The current generation: rotate to the next and answer the new pair.
    Rotate,
    /// The previous generation inside the grace window (two tabs at once): answer the
    /// pair already issued for the current one.
    Race,
    /// The previous generation past the grace window whose successor's answer never left
    /// (a 503, a crash): the client's retry gets that successor.
    Retry,
    /// A generation whose successor was handed out: the token was copied; revoke the
    /// whole session.
    Reuse,
    /// The session or its account cannot refresh; nothing is written.
    Refused(&'static str),
    /// Not a token this session issued; nothing is written.
    Forged,
    /// The previous generation past the grace window, judged without knowing whether its
    /// successor was answered: ask again with [`Successor::Acknowledged`].
    AskSuccessor,
}

/// Judges a presented refresh token against its session and user (`None`: the user is
/// gone) at `moment`, under `policy`. With [`Successor::NotAsked`] it may answer
/// [`Verdict::AskSuccessor`]; with the acknowledgement read it never does.
pub(crate) fn classify(
    presented: Presented,
    session: &SessionRecord,
    user: Option<&UserRecord>,
    moment: Moment,
    policy: RefreshPolicy,
    successor: Successor,
) -> Verdict {
    if !presented.mac_valid {
        return Verdict::Forged;
    }
    if session.revoked {
        return Verdict::Refused("session revoked");
    }
    if moment.now >= session.expires_at {
        return Verdict::Refused("session expired");
    }
    if policy
        .idle_secs
        .is_some_and(|idle| moment.now.saturating_sub(session.last_used) > idle)
    {
        return Verdict::Refused("session idle too long");
    }
    if user.is_none_or(|user| user.disabled) {
        return Verdict::Refused("account unavailable");
    }
    let current = session.generation;
    if presented.generation == current {
        return Verdict::Rotate;
    }
    if presented.generation > current {
        // A valid MAC on a generation never issued: only the key's holder could make it.
        return Verdict::Forged;
    }
    if presented.generation + 1 < current {
        return Verdict::Reuse;
    }
    // The previous generation. As a distance on the steady clock: a stamp in the future
    // (another node's clock, or one set back since a restart) is as far from a race as it
    // is from now, and a zero grace is no window at all, not one millisecond wide.
    let since_rotation_ms = moment.steady_ms.abs_diff(session.rotated_at_ms);
    if policy.grace_ms > 0 && since_rotation_ms <= policy.grace_ms {
        return Verdict::Race;
    }
    match successor {
        Successor::NotAsked => Verdict::AskSuccessor,
        Successor::Acknowledged(acknowledged) => {
            if acknowledged.is_none_or(|acknowledged| acknowledged < current) {
                Verdict::Retry
            } else {
                Verdict::Reuse
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;
    use crate::store::model::fixtures;

    const POLICY: RefreshPolicy = RefreshPolicy {
        grace_ms: 10_000,
        idle_secs: None,
    };

    /// A session at generation 5, rotated at steady 1,000,000 ms, live until 10,000.
    fn session() -> SessionRecord {
        SessionRecord {
            generation: 5,
            rotated_at_ms: 1_000_000,
            last_used: 1_000,
            ..fixtures::session(UserId::generate())
        }
    }

    fn user() -> UserRecord {
        fixtures::user("ada", None)
    }

    fn at(now: u64, steady_ms: u64) -> Moment {
        Moment { now, steady_ms }
    }

    fn judge(generation: u64, moment: Moment, successor: Successor) -> Verdict {
        let presented = Presented {
            generation,
            mac_valid: true,
        };
        classify(
            presented,
            &session(),
            Some(&user()),
            moment,
            POLICY,
            successor,
        )
    }

    #[test]
    fn the_current_generation_rotates() {
        assert_eq!(
            judge(5, at(1_001, 1_001_000), Successor::NotAsked),
            Verdict::Rotate
        );
    }

    #[test]
    fn the_previous_generation_inside_the_grace_is_the_race() {
        let inside = at(1_005, 1_010_000);
        assert_eq!(judge(4, inside, Successor::NotAsked), Verdict::Race);
        // The steady clock behind the stamp (another node's, or set back): a distance.
        assert_eq!(
            judge(4, at(1_005, 995_000), Successor::NotAsked),
            Verdict::Race
        );
    }

    #[test]
    fn the_previous_generation_past_the_grace_asks_whether_its_successor_left() {
        let past = at(1_020, 1_010_001);
        assert_eq!(judge(4, past, Successor::NotAsked), Verdict::AskSuccessor);
    }

    #[test]
    fn the_previous_generation_whose_successor_never_left_is_a_retry() {
        let past = at(1_020, 1_020_000);
        assert_eq!(
            judge(4, past, Successor::Acknowledged(None)),
            Verdict::Retry
        );
        assert_eq!(
            judge(4, past, Successor::Acknowledged(Some(4))),
            Verdict::Retry
        );
    }

    #[test]
    fn the_previous_generation_whose_successor_left_is_reuse() {
        let past = at(1_020, 1_020_000);
        assert_eq!(
            judge(4, past, Successor::Acknowledged(Some(5))),
            Verdict::Reuse
        );
    }

    #[test]
    fn an_older_generation_is_reuse_even_inside_the_grace() {
        assert_eq!(
            judge(3, at(1_001, 1_000_500), Successor::NotAsked),
            Verdict::Reuse
        );
        assert_eq!(
            judge(1, at(1_001, 1_000_500), Successor::NotAsked),
            Verdict::Reuse
        );
    }

    #[test]
    fn a_zero_grace_is_no_window_at_all() {
        let presented = Presented {
            generation: 4,
            mac_valid: true,
        };
        let policy = RefreshPolicy {
            grace_ms: 0,
            ..POLICY
        };
        let same_moment = at(1_000, 1_000_000);
        let verdict = classify(
            presented,
            &session(),
            Some(&user()),
            same_moment,
            policy,
            Successor::NotAsked,
        );
        assert_eq!(verdict, Verdict::AskSuccessor);
    }

    #[test]
    fn an_invalid_mac_or_a_generation_never_issued_is_forged() {
        let forged = Presented {
            generation: 5,
            mac_valid: false,
        };
        let verdict = classify(
            forged,
            &session(),
            Some(&user()),
            at(1_001, 0),
            POLICY,
            Successor::NotAsked,
        );
        assert_eq!(verdict, Verdict::Forged);
        assert_eq!(
            judge(6, at(1_001, 1_001_000), Successor::NotAsked),
            Verdict::Forged
        );
    }

    #[test]
    fn a_forged_token_is_forged_even_for_an_ended_session() {
        let ended = SessionRecord {
            revoked: true,
            ..session()
        };
        let forged = Presented {
            generation: 5,
            mac_valid: false,
        };
        let verdict = classify(
            forged,
            &ended,
            Some(&user()),
            at(1_001, 0),
            POLICY,
            Successor::NotAsked,
        );
        assert_eq!(verdict, Verdict::Forged);
    }

    #[test]
    fn a_revoked_expired_or_idle_session_is_refused() {
        let presented = Presented {
            generation: 5,
            mac_valid: true,
        };
        let revoked = SessionRecord {
            revoked: true,
            ..session()
        };
        let moment = at(1_001, 1_001_000);
        let verdict = classify(
            presented,
            &revoked,
            Some(&user()),
            moment,
            POLICY,
            Successor::NotAsked,
        );
        assert_eq!(verdict, Verdict::Refused("session revoked"));
        let expired = at(10_000, 1_001_000);
        let verdict = classify(
            presented,
            &session(),
            Some(&user()),
            expired,
            POLICY,
            Successor::NotAsked,
        );
        assert_eq!(verdict, Verdict::Refused("session expired"));
        let idle = RefreshPolicy {
            idle_secs: Some(60),
            ..POLICY
        };
        let verdict = classify(
            presented,
            &session(),
            Some(&user()),
            at(1_061, 0),
            idle,
            Successor::NotAsked,
        );
        assert_eq!(verdict, Verdict::Refused("session idle too long"));
        let verdict = classify(
            presented,
            &session(),
            Some(&user()),
            at(1_060, 0),
            idle,
            Successor::NotAsked,
        );
        assert_eq!(
            verdict,
            Verdict::Rotate,
            "exactly the idle time is not too long"
        );
    }

    #[test]
    fn a_gone_or_disabled_account_is_refused() {
        let presented = Presented {
            generation: 5,
            mac_valid: true,
        };
        let moment = at(1_001, 1_001_000);
        let verdict = classify(
            presented,
            &session(),
            None,
            moment,
            POLICY,
            Successor::NotAsked,
        );
        assert_eq!(verdict, Verdict::Refused("account unavailable"));
        let disabled = UserRecord {
            disabled: true,
            ..user()
        };
        let verdict = classify(
            presented,
            &session(),
            Some(&disabled),
            moment,
            POLICY,
            Successor::NotAsked,
        );
        assert_eq!(verdict, Verdict::Refused("account unavailable"));
    }
}
