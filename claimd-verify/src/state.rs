//! What the verifier holds from claimd's change feed, and the verdict it gives from it:
//! the deny list (tokens, sessions), the users and tenants whose versions moved, and when
//! claimd was last heard. Pure: no I/O, every time passed in, so it is tested alone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use claimd_token::{judge, Currency, Knowledge, Standing, TenantStanding, UserFacts, UserStanding};

use crate::error::VerifyError;
use crate::VerifiedClaims;

/// A user's standing as the feed last told it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserState {
    uv: u64,
    not_before: u64,
    disabled: bool,
    deleted: bool,
    /// When it changed (Unix seconds): held until every token it concerned has expired.
    at: u64,
}

/// A tenant's version as the feed last told it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TenantState {
    tv: u64,
    deleted: bool,
    at: u64,
}

/// The state built from the snapshot and the events after it: the low-level part
/// [`crate::Verifier`] drives, public for tools that feed it themselves (and the
/// memory benchmark).
#[derive(Debug, Default)]
pub struct FeedState {
    /// Revoked tokens: `jti` → the `exp` they were revoked up to.
    tokens: HashMap<String, u64>,
    /// Revoked sessions: `sid` → the `exp` their tokens were revoked up to.
    sessions: HashMap<String, u64>,
    users: HashMap<String, UserState>,
    tenants: HashMap<String, TenantState>,
    /// The id of the last event applied (`Last-Event-ID` on reconnect).
    pub(crate) through: u64,
    /// When claimd was last heard (any event, heartbeat or snapshot).
    last_heard: Option<Instant>,
}

/// What an event asks of the feed's follower besides the state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followup {
    None,
    /// `keys-changed`: fetch the JWKS again.
    RefetchKeys,
}

#[derive(Deserialize)]
struct Snapshot {
    continues_from: u64,
    #[serde(default)]
    users: Vec<Value>,
    #[serde(default)]
    deleted_users: Vec<String>,
    #[serde(default)]
    tenants: Vec<Value>,
    #[serde(default)]
    deleted_tenants: Vec<String>,
    #[serde(default)]
    revoked_sessions: Vec<Value>,
    #[serde(default)]
    revoked_tokens: Vec<Value>,
}

fn text<'v>(data: &'v Value, name: &str) -> Option<&'v str> {
    data.get(name).and_then(Value::as_str)
}

fn number(data: &Value, name: &str) -> u64 {
    data.get(name).and_then(Value::as_u64).unwrap_or_default()
}

impl FeedState {
    /// Replaces everything with a snapshot (`GET /events/snapshot`, or the stream's
    /// `snapshot` event); `unix` stands in for the change time of deleted users and
    /// tenants, which the snapshot lists without one.
    ///
    /// # Errors
    /// The snapshot does not have claimd's shape.
    pub fn load_snapshot(
        &mut self,
        data: &Value,
        now: Instant,
        unix: u64,
    ) -> Result<(), serde_json::Error> {
        let snapshot = Snapshot::deserialize(data)?;
        let mut fresh = FeedState {
            through: snapshot.continues_from,
            last_heard: Some(now),
            ..FeedState::default()
        };
        for user in &snapshot.users {
            fresh.user_changed(user);
        }
        for sub in snapshot.deleted_users {
            fresh.user_deleted(sub, unix);
        }
        for tenant in &snapshot.tenants {
            fresh.tenant_changed(tenant);
        }
        for id in snapshot.deleted_tenants {
            fresh.tenant_deleted(id, unix);
        }
        for session in &snapshot.revoked_sessions {
            deny(&mut fresh.sessions, session, "sid");
        }
        for token in &snapshot.revoked_tokens {
            deny(&mut fresh.tokens, token, "jti");
        }
        *self = fresh;
        Ok(())
    }

    /// Applies one event of the stream (heartbeats included).
    pub fn apply(&mut self, id: Option<u64>, event: &str, data: &Value, now: Instant) -> Followup {
        self.last_heard = Some(now);
        if let Some(id) = id {
            self.through = self.through.max(id);
        }
        let at = number(data, "at");
        match event {
            "token-claims-change" if data.get("sub").is_some() => self.user_changed(data),
            "token-claims-change" => self.tenant_changed(data),
            "account-purged" => {
                if let Some(sub) = text(data, "sub") {
                    self.user_deleted(sub.to_string(), at);
                }
            }
            "tenant-deleted" => {
                if let Some(tenant) = text(data, "tenant") {
                    self.tenant_deleted(tenant.to_string(), at);
                }
            }
            "session-revoked" => deny(&mut self.sessions, data, "sid"),
            "token-revoked" => deny(&mut self.tokens, data, "jti"),
            "keys-changed" => return Followup::RefetchKeys,
            // `heartbeat`, and event types a newer claimd may add.
            _ => {}
        }
        Followup::None
    }

    fn user_changed(&mut self, data: &Value) {
        let Some(sub) = text(data, "sub") else { return };
        self.users.insert(
            sub.to_string(),
            UserState {
                uv: number(data, "uv"),
                not_before: number(data, "not_before"),
                disabled: data
                    .get("disabled")
                    .and_then(Value::as_bool)
                    .unwrap_or_default(),
                deleted: false,
                at: number(data, "at"),
            },
        );
    }

    fn user_deleted(&mut self, sub: String, at: u64) {
        self.users.insert(
            sub,
            UserState {
                uv: 0,
                not_before: 0,
                disabled: true,
                deleted: true,
                at,
            },
        );
    }

    fn tenant_changed(&mut self, data: &Value) {
        let Some(tenant) = text(data, "tenant") else {
            return;
        };
        self.tenants.insert(
            tenant.to_string(),
            TenantState {
                tv: number(data, "tv"),
                deleted: false,
                at: number(data, "at"),
            },
        );
    }

    fn tenant_deleted(&mut self, id: String, at: u64) {
        self.tenants.insert(
            id,
            TenantState {
                tv: 0,
                deleted: true,
                at,
            },
        );
    }

    /// Whether claimd was heard within `max_staleness` of `now`.
    pub fn is_fresh(&self, now: Instant, max_staleness: Duration) -> bool {
        self.last_heard
            .is_some_and(|heard| now.saturating_duration_since(heard) <= max_staleness)
    }

    /// Steps 3 and 4 of claimd's verification (claimd-token's `judge`, as claimd runs it)
    /// for a token whose signature and times passed: the deny list (`jti`, then `sid`),
    /// then the user, then the tenant.
    ///
    /// # Errors
    /// `Revoked` or `Stale`, as claimd answers.
    pub fn check(&self, claims: &VerifiedClaims) -> Result<(), VerifyError> {
        let denied = |list: &HashMap<String, u64>, id: &str| {
            list.get(id).is_some_and(|&exp| claims.exp <= exp)
        };
        let user = match self.users.get(&claims.sub) {
            None => UserStanding::Unheard,
            Some(user) if user.deleted => UserStanding::Gone,
            Some(user) => UserStanding::Known(UserFacts {
                claims_version: user.uv,
                not_before: user.not_before,
                disabled: user.disabled,
            }),
        };
        let tenant = match claims.tid.as_deref().and_then(|tid| self.tenants.get(tid)) {
            None => TenantStanding::Unheard,
            Some(tenant) if tenant.deleted => TenantStanding::Gone,
            Some(tenant) => TenantStanding::Known(tenant.tv),
        };
        let standing = Standing {
            denied: denied(&self.tokens, &claims.jti) || denied(&self.sessions, &claims.sid),
            user,
            tenant,
        };
        // What is not held changed longer ago than any live token's life; what is ahead
        // of what is held was minted after a change not yet heard of (`Following`).
        match judge(claims, &standing, Knowledge::Following)? {
            Currency::Current => Ok(()),
            Currency::Stale => Err(VerifyError::Stale),
        }
    }

    /// Drops what can no longer matter at `unix`: deny entries past `exp + leeway`,
    /// version changes older than the longest token life plus leeway.
    pub fn prune(&mut self, unix: u64, leeway: u64, token_lifetime: u64) {
        self.tokens
            .retain(|_, exp| exp.saturating_add(leeway) >= unix);
        self.sessions
            .retain(|_, exp| exp.saturating_add(leeway) >= unix);
        let horizon = token_lifetime.saturating_add(leeway);
        self.users
            .retain(|_, user| user.at.saturating_add(horizon) >= unix);
        self.tenants
            .retain(|_, tenant| tenant.at.saturating_add(horizon) >= unix);
    }

    /// The id of the last event applied.
    pub fn through(&self) -> u64 {
        self.through
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries are held (deny entries, users, tenants).
    pub fn len(&self) -> usize {
        self.tokens.len() + self.sessions.len() + self.users.len() + self.tenants.len()
    }
}

/// Records a revocation `{id_field, "exp"}`, keeping the later `exp`.
fn deny(list: &mut HashMap<String, u64>, data: &Value, id_field: &str) {
    let Some(id) = text(data, id_field) else {
        return;
    };
    let exp = number(data, "exp");
    let entry = list.entry(id.to_string()).or_insert(exp);
    *entry = (*entry).max(exp);
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "the state is judged at real instants"
)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(sub: &str, tid: Option<&str>) -> VerifiedClaims {
        let mut claims = VerifiedClaims::default();
        claims.iss = "http://claimd".into();
        claims.sub = sub.into();
        claims.aud = "claimd".into();
        claims.exp = 1_000;
        claims.iat = 100;
        claims.jti = "j1".into();
        claims.sid = "s1".into();
        claims.tid = tid.map(str::to_string);
        claims.roles = vec!["user".into()];
        claims.plan = "free".into();
        claims.uv = 2;
        claims.tv = 3;
        claims
    }

    fn state() -> FeedState {
        let mut state = FeedState::default();
        state
            .load_snapshot(&json!({"continues_from": 7}), Instant::now(), 0)
            .unwrap();
        state
    }

    #[test]
    fn an_empty_state_accepts() {
        assert_eq!(state().check(&claims("u1", Some("t1"))), Ok(()));
        assert_eq!(state().through, 7);
    }

    #[test]
    fn revocations_refuse_tokens_up_to_their_exp() {
        let mut state = state();
        let now = Instant::now();
        state.apply(
            Some(8),
            "token-revoked",
            &json!({"jti":"j1","exp":1_000,"at":5}),
            now,
        );
        assert_eq!(state.check(&claims("u1", None)), Err(VerifyError::Revoked));
        assert_eq!(state.through, 8);

        let mut state = super::FeedState::default();
        state.apply(
            Some(9),
            "session-revoked",
            &json!({"sid":"s1","exp":999,"at":5}),
            now,
        );
        // A token of the session expiring after the revocation's bound is not covered.
        assert_eq!(state.check(&claims("u1", None)), Ok(()));
        state.apply(
            Some(10),
            "session-revoked",
            &json!({"sid":"s1","exp":1_000,"at":6}),
            now,
        );
        assert_eq!(state.check(&claims("u1", None)), Err(VerifyError::Revoked));
    }

    #[test]
    fn user_changes_give_claimds_verdicts() {
        let now = Instant::now();
        let user = |uv, not_before, disabled| {
            let mut state = FeedState::default();
            state.apply(
                Some(1),
                "token-claims-change",
                &json!({"sub":"u1","uv":uv,"not_before":not_before,"disabled":disabled,"at":50}),
                now,
            );
            state.check(&claims("u1", None))
        };
        assert_eq!(user(2, 0, false), Ok(()));
        assert_eq!(user(3, 0, false), Err(VerifyError::Stale));
        // Ahead of what is held: minted after a change not heard of yet.
        assert_eq!(user(1, 0, false), Ok(()));
        assert_eq!(user(2, 101, false), Err(VerifyError::Revoked));
        assert_eq!(user(2, 100, false), Ok(()));
        assert_eq!(user(2, 0, true), Err(VerifyError::Revoked));
        // Another user's change does not touch this one.
        let mut state = FeedState::default();
        state.apply(
            Some(1),
            "token-claims-change",
            &json!({"sub":"u2","uv":9,"at":1}),
            now,
        );
        assert_eq!(state.check(&claims("u1", None)), Ok(()));
        state.apply(Some(2), "account-purged", &json!({"sub":"u1","at":60}), now);
        assert_eq!(state.check(&claims("u1", None)), Err(VerifyError::Revoked));
    }

    #[test]
    fn tenant_changes_make_members_stale() {
        let now = Instant::now();
        let mut state = FeedState::default();
        state.apply(
            Some(1),
            "token-claims-change",
            &json!({"tenant":"t1","tv":3,"at":1}),
            now,
        );
        assert_eq!(state.check(&claims("u1", Some("t1"))), Ok(()));
        state.apply(
            Some(2),
            "token-claims-change",
            &json!({"tenant":"t1","tv":4,"at":2}),
            now,
        );
        assert_eq!(
            state.check(&claims("u1", Some("t1"))),
            Err(VerifyError::Stale)
        );
        assert_eq!(state.check(&claims("u1", Some("t2"))), Ok(()));
        assert_eq!(state.check(&claims("u1", None)), Ok(()));
        state.apply(
            Some(3),
            "tenant-deleted",
            &json!({"tenant":"t2","at":3}),
            now,
        );
        assert_eq!(
            state.check(&claims("u1", Some("t2"))),
            Err(VerifyError::Stale)
        );
    }

    #[test]
    fn a_snapshot_replaces_what_was_held() {
        let now = Instant::now();
        let mut state = FeedState::default();
        state.apply(
            Some(1),
            "token-revoked",
            &json!({"jti":"j1","exp":1_000,"at":1}),
            now,
        );
        state
            .load_snapshot(
                &json!({
                    "continues_from": 40,
                    "users": [{"sub":"u1","uv":5,"not_before":0,"disabled":false,"at":9}],
                    "deleted_users": ["u9"],
                    "tenants": [{"tenant":"t1","tv":8,"at":9}],
                    "deleted_tenants": [],
                    "revoked_sessions": [{"sid":"s2","exp":1_000}],
                    "revoked_tokens": [],
                }),
                now,
                10,
            )
            .unwrap();
        assert_eq!(state.through, 40);
        assert_eq!(state.check(&claims("u1", None)), Err(VerifyError::Stale));
        assert_eq!(state.check(&claims("u9", None)), Err(VerifyError::Revoked));
        let mut other = claims("u2", Some("t1"));
        assert_eq!(state.check(&other), Err(VerifyError::Stale));
        other.tid = None;
        other.sid = "s2".into();
        assert_eq!(state.check(&other), Err(VerifyError::Revoked));
        other.sid = "s1".into();
        // The revocation held before the snapshot is not in it: gone.
        assert_eq!(state.check(&other), Ok(()));
        assert!(state.load_snapshot(&json!({"users": 1}), now, 0).is_err());
    }

    #[test]
    fn prune_drops_only_what_no_live_token_needs() {
        let now = Instant::now();
        let mut state = FeedState::default();
        state.apply(
            Some(1),
            "token-revoked",
            &json!({"jti":"j1","exp":1_000,"at":1}),
            now,
        );
        state.apply(
            Some(2),
            "session-revoked",
            &json!({"sid":"s1","exp":1_200,"at":1}),
            now,
        );
        state.apply(
            Some(3),
            "token-claims-change",
            &json!({"sub":"u1","uv":3,"at":500}),
            now,
        );
        state.apply(
            Some(4),
            "token-claims-change",
            &json!({"tenant":"t1","tv":4,"at":600}),
            now,
        );
        assert_eq!(state.len(), 4);
        // leeway 30, token life 900: deny entries live to exp + 30, versions to at + 930.
        state.prune(1_030, 30, 900);
        assert_eq!(state.len(), 4);
        state.prune(1_031, 30, 900);
        assert_eq!(state.len(), 3);
        state.prune(1_230, 30, 900);
        assert_eq!(state.len(), 3);
        state.prune(1_231, 30, 900);
        assert_eq!(state.len(), 2, "the session's entry is past exp + leeway");
        state.prune(1_430, 30, 900);
        assert_eq!(state.len(), 2);
        state.prune(1_431, 30, 900);
        assert_eq!(
            state.len(),
            1,
            "the user's change is older than a token's life"
        );
        state.prune(1_531, 30, 900);
        assert_eq!(state.len(), 0);
        assert_eq!(state.through, 4);
    }

    #[test]
    fn staleness_follows_the_last_thing_heard() {
        let start = Instant::now();
        let max = Duration::from_secs(5);
        let mut state = FeedState::default();
        assert!(!state.is_fresh(start, max), "nothing heard yet");
        state.apply(None, "heartbeat", &json!({"through":0,"time":1}), start);
        assert!(state.is_fresh(start + Duration::from_secs(5), max));
        assert!(!state.is_fresh(start + Duration::from_millis(5_001), max));
        let later = start + Duration::from_secs(6);
        assert_eq!(
            state.apply(Some(2), "keys-changed", &json!({"at":1}), later),
            Followup::RefetchKeys
        );
        assert!(state.is_fresh(later + Duration::from_secs(5), max));
    }
}
