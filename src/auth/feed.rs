//! The change feed's flows (`GET /events`, `GET /events/snapshot`): the store's change
//! log as events named for what a verifier must do, and the snapshot a verifier starts
//! from.
//!
//! Event types follow the OpenID Shared Signals events where one fits: CAEP's
//! `session-revoked` and `token-claims-change`, RISC's `account-purged`; the rest are
//! claimd's own (`token-revoked`, `tenant-deleted`, `keys-changed`).
//!
//! The snapshot is the retained log folded into current state: every record still kept
//! concerns tokens that may still verify, and every change that can still matter to a
//! token is still kept (records live for the longest access-token life plus leeway). So a
//! verifier that applies the snapshot and then the stream after `continues_from` answers
//! every token as claimd does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::core::Core;
use super::AuthError;
use crate::store::{Change, ChangeRecord, ChangesAfter};

/// Records read from the store per page of the stream.
pub const PAGE: usize = 512;

/// One event of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// The change-log id: strictly increasing, `Last-Event-ID` resumes after it.
    pub id: u64,
    /// The SSE event type.
    pub event: &'static str,
    /// The event's JSON data.
    pub data: Value,
}

/// A page of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    pub events: Vec<FeedEvent>,
    /// The highest published id when the page was read; once every event up to it has
    /// been read, the reader has seen the log through it.
    pub through: u64,
}

/// The state a verifier starts from.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Snapshot {
    /// The stream continues after this id (`Last-Event-ID`).
    pub continues_from: u64,
    /// Users whose claims version, `not_before` or standing moved within the window.
    pub users: Vec<Value>,
    /// Users deleted within the window: none of their tokens verifies.
    pub deleted_users: Vec<String>,
    /// Tenants whose version moved within the window.
    pub tenants: Vec<Value>,
    pub deleted_tenants: Vec<String>,
    /// Sessions whose access tokens are refused, up to `exp`.
    pub revoked_sessions: Vec<Value>,
    /// Single access tokens refused, up to `exp`.
    pub revoked_tokens: Vec<Value>,
}

/// The feed over the store's change log.
pub struct Feed {
    core: Arc<Core>,
}

impl Feed {
    pub(crate) fn new(core: Arc<Core>) -> Feed {
        Feed { core }
    }

    /// The longest access-token life this server accepts, in seconds before leeway: the
    /// longest `tokens.access_ttl` the store has ever issued with. A verifier following
    /// the feed refuses longer lives as claimd does and holds version changes that long.
    pub fn token_lifetime(&self) -> u64 {
        self.core
            .store
            .longest_access_ttl()
            .max(self.core.settings.tokens.access_ttl.as_secs())
    }

    /// Events after `after`, at most [`PAGE`].
    ///
    /// # Errors
    /// `EventsGone` when some of them were evicted (start again from a snapshot); storage
    /// failures.
    pub async fn after(&self, after: u64) -> Result<FeedPage, AuthError> {
        match self.core.store.changes_after(after, PAGE).await? {
            ChangesAfter::Records { records, through } => Ok(FeedPage {
                events: records.iter().filter_map(event).collect(),
                through,
            }),
            ChangesAfter::Gone { evicted_through } => Err(AuthError::EventsGone {
                reason: format!("events up to {evicted_through} were evicted"),
            }),
            ChangesAfter::Ahead { through } => Err(AuthError::EventsGone {
                reason: format!(
                    "event {after} was never published by this server, whose log ends at {through} (restored from a backup?)"
                ),
            }),
        }
    }

    /// Wakes when more events are published.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.core.store.watch_published()
    }

    /// The highest published id.
    pub fn published_through(&self) -> u64 {
        self.core.store.published_through()
    }

    /// The retained log folded into the state a verifier needs.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn snapshot(&self) -> Result<Snapshot, AuthError> {
        // Eviction may move the start while the log is read: read again from the new one.
        for _ in 0..3 {
            match self.fold().await? {
                Some(snapshot) => return Ok(snapshot),
                None => continue,
            }
        }
        Err(AuthError::Unavailable(
            "the change log moved on while it was read",
        ))
    }

    async fn fold(&self) -> Result<Option<Snapshot>, AuthError> {
        let store = &self.core.store;
        let mut after = store.changes_evicted_through().await?;
        let mut state = Folded::default();
        loop {
            match store.changes_after(after, PAGE).await? {
                ChangesAfter::Gone { .. } | ChangesAfter::Ahead { .. } => return Ok(None),
                ChangesAfter::Records { records, through } => {
                    let Some(last) = records.last().map(|record| record.id) else {
                        return Ok(Some(state.into_snapshot(through.max(after))));
                    };
                    for record in &records {
                        state.apply(record);
                    }
                    after = last;
                    if after >= through {
                        return Ok(Some(state.into_snapshot(through)));
                    }
                }
            }
        }
    }
}

/// The log folded: the latest state per user and tenant, the revocations.
#[derive(Default)]
struct Folded {
    users: BTreeMap<String, Value>,
    deleted_users: BTreeSet<String>,
    tenants: BTreeMap<String, Value>,
    deleted_tenants: BTreeSet<String>,
    sessions: BTreeMap<String, u64>,
    tokens: BTreeMap<String, u64>,
}

impl Folded {
    fn apply(&mut self, record: &ChangeRecord) {
        match &record.change {
            Change::User { user, .. } => {
                let sub = user.to_string();
                self.deleted_users.remove(&sub);
                if let Some(event) = event(record) {
                    self.users.insert(sub, event.data);
                }
            }
            Change::UserDeleted { user } => {
                let sub = user.to_string();
                self.users.remove(&sub);
                self.deleted_users.insert(sub);
            }
            Change::Tenant { tenant, .. } => {
                if let Some(event) = event(record) {
                    self.tenants.insert(tenant.to_string(), event.data);
                }
            }
            Change::TenantDeleted { tenant } => {
                let id = tenant.to_string();
                self.tenants.remove(&id);
                self.deleted_tenants.insert(id);
            }
            Change::SessionRevoked { sid, exp } => {
                let entry = self.sessions.entry(sid.to_string()).or_insert(*exp);
                *entry = (*entry).max(*exp);
            }
            Change::TokenRevoked { jti, exp } => {
                let entry = self.tokens.entry(jti.to_string()).or_insert(*exp);
                *entry = (*entry).max(*exp);
            }
            Change::KeysChanged | Change::Account { .. } | Change::CredentialChanged { .. } => {}
        }
    }

    fn into_snapshot(self, continues_from: u64) -> Snapshot {
        Snapshot {
            continues_from,
            users: self.users.into_values().collect(),
            deleted_users: self.deleted_users.into_iter().collect(),
            tenants: self.tenants.into_values().collect(),
            deleted_tenants: self.deleted_tenants.into_iter().collect(),
            revoked_sessions: self
                .sessions
                .into_iter()
                .map(|(sid, exp)| json!({"sid": sid, "exp": exp}))
                .collect(),
            revoked_tokens: self
                .tokens
                .into_iter()
                .map(|(jti, exp)| json!({"jti": jti, "exp": exp}))
                .collect(),
        }
    }
}

/// A record as the event a verifier acts on; `None` for what no verifier needs.
fn event(record: &ChangeRecord) -> Option<FeedEvent> {
    let at = record.at;
    let (event, data) = match &record.change {
        Change::User {
            user,
            claims_version,
            not_before,
            disabled,
        } => (
            "token-claims-change",
            json!({
                "sub": user.to_string(),
                "uv": claims_version,
                "not_before": not_before,
                "disabled": disabled,
                "at": at,
            }),
        ),
        Change::UserDeleted { user } => {
            ("account-purged", json!({"sub": user.to_string(), "at": at}))
        }
        Change::Tenant { tenant, version } => (
            "token-claims-change",
            json!({"tenant": tenant.to_string(), "tv": version, "at": at}),
        ),
        Change::TenantDeleted { tenant } => (
            "tenant-deleted",
            json!({"tenant": tenant.to_string(), "at": at}),
        ),
        Change::SessionRevoked { sid, exp } => (
            "session-revoked",
            json!({"sid": sid.to_string(), "exp": exp, "at": at}),
        ),
        Change::TokenRevoked { jti, exp } => (
            "token-revoked",
            json!({"jti": jti.to_string(), "exp": exp, "at": at}),
        ),
        Change::KeysChanged => ("keys-changed", json!({"at": at})),
        Change::CredentialChanged { user, credential } => (
            "credential-change",
            json!({
                "sub": user.to_string(),
                "credential_type": credential.caep_type(),
                "change_type": "update",
                "at": at,
            }),
        ),
        Change::Account { .. } => return None,
    };
    Some(FeedEvent {
        id: record.id,
        event,
        data,
    })
}
