//! What a node keeps in memory of a store it shares with other nodes (DESIGN.md "One
//! change log"): the user stamps and tenant versions verification reads on every request,
//! and the live deny entries, filled from the database at start and then kept current by
//! applying the change log in id order, whichever node wrote each record.
//!
//! The replica knows how far it has applied ([`Replica::through`]); whether that is far
//! enough to answer from is the backend's call (its listener knows when it has lost the
//! log). Applying is idempotent and order-safe for what can arrive twice: versions only
//! grow, deny entries keep the latest `exp`.
//!
//! Deny entries are keyed by kind and id; an entry refuses every token of that id whose
//! `exp` is at or before the entry's (a session's entry carries the latest `exp` any of
//! its tokens can have). Entries leave once no token they refuse can still verify:
//! `exp + leeway` in the past.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use super::mirror::{Mirror, UserStamp};
use super::{Change, ChangeRecord, DenyKind};

/// The in-memory state of a shared store, fed by its change log.
pub(crate) struct Replica {
    mirror: Mirror,
    deny: RwLock<HashMap<(u8, [u8; 16]), u64>>,
    through: AtomicU64,
    /// Bumped by every `KeysChanged`: the key ring must be read again.
    keys: tokio::sync::watch::Sender<u64>,
}

impl Default for Replica {
    fn default() -> Self {
        Replica {
            mirror: Mirror::default(),
            deny: RwLock::default(),
            through: AtomicU64::new(0),
            keys: tokio::sync::watch::channel(0).0,
        }
    }
}

fn kind_key(kind: DenyKind) -> u8 {
    match kind {
        DenyKind::Token => 0,
        DenyKind::Session => 1,
    }
}

impl Replica {
    /// Fills in a user, as read from the database at start.
    pub(crate) fn load_user(&self, id: [u8; 16], stamp: UserStamp) {
        self.mirror.set_user(id, stamp);
    }

    /// Fills in a tenant's version, as read from the database at start.
    pub(crate) fn load_tenant(&self, id: [u8; 16], version: u64) {
        self.mirror.set_tenant_version(id, version);
    }

    /// Adds a deny entry (at start, or from the log).
    pub(crate) fn deny(&self, kind: DenyKind, id: [u8; 16], exp: u64) {
        let mut deny = self.deny.write().unwrap_or_else(PoisonError::into_inner);
        let entry = deny.entry((kind_key(kind), id)).or_insert(exp);
        *entry = (*entry).max(exp);
    }

    /// Notes that the state loaded at start is the log up to `id`.
    pub(crate) fn loaded_through(&self, id: u64) {
        self.through.fetch_max(id, Ordering::AcqRel);
    }

    /// The highest change-log id applied.
    pub(crate) fn through(&self) -> u64 {
        self.through.load(Ordering::Acquire)
    }

    /// Applies one record; records at or below [`Replica::through`] were applied already
    /// and are skipped.
    pub(crate) fn apply(&self, record: &ChangeRecord) {
        if record.id <= self.through() {
            return;
        }
        match &record.change {
            Change::Account {
                user,
                username,
                tenant,
                claims_version,
                not_before,
                disabled,
            } => {
                let newer = self
                    .mirror
                    .user(user.as_bytes())
                    .is_none_or(|known| known.claims_version <= *claims_version);
                if newer {
                    self.mirror.set_user(
                        *user.as_bytes(),
                        UserStamp {
                            username: username.as_str().into(),
                            claims_version: *claims_version,
                            not_before: *not_before,
                            disabled: *disabled,
                            tenant: *tenant,
                        },
                    );
                }
            }
            Change::User {
                user,
                claims_version,
                not_before,
                disabled,
            } => {
                if let Some(mut stamp) = self.mirror.user(user.as_bytes()) {
                    if stamp.claims_version <= *claims_version {
                        stamp.claims_version = *claims_version;
                        stamp.not_before = *not_before;
                        stamp.disabled = *disabled;
                        self.mirror.set_user(*user.as_bytes(), stamp);
                    }
                }
            }
            Change::UserDeleted { user } => self.mirror.remove_user(user.as_bytes()),
            Change::Tenant { tenant, version } => {
                self.mirror.set_tenant_version(*tenant.as_bytes(), *version);
            }
            Change::TenantDeleted { tenant } => self.mirror.remove_tenant(tenant.as_bytes()),
            Change::SessionRevoked { sid, exp } => {
                self.deny(DenyKind::Session, *sid.as_bytes(), *exp);
            }
            Change::TokenRevoked { jti, exp } => self.deny(DenyKind::Token, *jti.as_bytes(), *exp),
            Change::KeysChanged => {
                self.keys.send_modify(|generation| *generation += 1);
            }
            Change::CredentialChanged { .. } => {}
        }
        self.through.fetch_max(record.id, Ordering::AcqRel);
    }

    /// A user's stamp.
    pub(crate) fn user_stamp(&self, id: &[u8; 16]) -> Option<UserStamp> {
        self.mirror.user(id)
    }

    /// A tenant's version.
    pub(crate) fn tenant_version(&self, id: &[u8; 16]) -> Option<u64> {
        self.mirror.tenant_version(id)
    }

    /// Whether an entry of `kind` refuses a token of `id` that expires at `exp`.
    pub(crate) fn is_denied(&self, kind: DenyKind, id: &[u8; 16], exp: u64) -> bool {
        self.deny
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(kind_key(kind), *id))
            .is_some_and(|until| exp <= *until)
    }

    /// Whether the token `jti` or its session `sid` is refused at `exp`.
    pub(crate) fn is_revoked(&self, jti: &[u8; 16], sid: &[u8; 16], exp: u64) -> bool {
        self.is_denied(DenyKind::Token, jti, exp) || self.is_denied(DenyKind::Session, sid, exp)
    }

    /// Drops the deny entries no token can meet any more (`exp + leeway < now`); how many.
    pub(crate) fn evict(&self, now: u64, leeway: u64) -> u64 {
        let mut deny = self.deny.write().unwrap_or_else(PoisonError::into_inner);
        let before = deny.len();
        deny.retain(|_, exp| exp.saturating_add(leeway) >= now);
        (before - deny.len()) as u64
    }

    /// Live deny entries held.
    pub(crate) fn deny_entries(&self) -> i64 {
        i64::try_from(
            self.deny
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
        )
        .unwrap_or(i64::MAX)
    }

    /// Wakes when another node changed the key set.
    pub(crate) fn watch_keys(&self) -> tokio::sync::watch::Receiver<u64> {
        self.keys.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SessionId, TenantId, TokenId, UserId};

    fn record(id: u64, change: Change) -> ChangeRecord {
        ChangeRecord { id, at: 0, change }
    }

    fn account(user: UserId, version: u64, tenant: Option<TenantId>) -> Change {
        Change::Account {
            user,
            username: "alice".into(),
            tenant,
            claims_version: version,
            not_before: 0,
            disabled: false,
        }
    }

    #[test]
    fn a_new_account_then_a_claims_change_give_the_latest_stamp() {
        let replica = Replica::default();
        let user = UserId::generate();
        let tenant = TenantId::generate();
        replica.apply(&record(1, account(user, 1, Some(tenant))));
        replica.apply(&record(
            2,
            Change::User {
                user,
                claims_version: 2,
                not_before: 50,
                disabled: true,
            },
        ));

        let stamp = replica.user_stamp(user.as_bytes()).unwrap();
        assert_eq!(stamp.claims_version, 2);
        assert_eq!(stamp.not_before, 50);
        assert!(stamp.disabled);
        assert_eq!(stamp.tenant, Some(tenant));
        assert_eq!(&*stamp.username, "alice");
        assert_eq!(replica.through(), 2);
    }

    #[test]
    fn records_already_applied_or_loaded_are_skipped() {
        let replica = Replica::default();
        let user = UserId::generate();
        replica.load_user(
            *user.as_bytes(),
            UserStamp {
                username: "alice".into(),
                claims_version: 5,
                not_before: 0,
                disabled: false,
                tenant: None,
            },
        );
        replica.loaded_through(10);

        // Record 9 was part of what was loaded: applying it again must not go back.
        replica.apply(&record(9, account(user, 3, None)));

        assert_eq!(
            replica.user_stamp(user.as_bytes()).unwrap().claims_version,
            5
        );
        assert_eq!(replica.through(), 10);
    }

    #[test]
    fn a_deleted_user_or_tenant_is_forgotten() {
        let replica = Replica::default();
        let user = UserId::generate();
        let tenant = TenantId::generate();
        replica.apply(&record(1, account(user, 1, None)));
        replica.apply(&record(2, Change::Tenant { tenant, version: 3 }));
        replica.apply(&record(3, Change::UserDeleted { user }));
        replica.apply(&record(4, Change::TenantDeleted { tenant }));

        assert!(replica.user_stamp(user.as_bytes()).is_none());
        assert!(replica.tenant_version(tenant.as_bytes()).is_none());
    }

    #[test]
    fn tenant_versions_only_grow() {
        let replica = Replica::default();
        let tenant = TenantId::generate();
        replica.load_tenant(*tenant.as_bytes(), 4);
        replica.apply(&record(1, Change::Tenant { tenant, version: 3 }));
        assert_eq!(replica.tenant_version(tenant.as_bytes()), Some(4));
    }

    #[test]
    fn a_revoked_session_refuses_its_tokens_up_to_its_exp_and_no_other() {
        let replica = Replica::default();
        let sid = SessionId::generate();
        let jti = TokenId::generate();
        replica.apply(&record(1, Change::SessionRevoked { sid, exp: 1_000 }));

        assert!(replica.is_revoked(jti.as_bytes(), sid.as_bytes(), 1_000));
        assert!(replica.is_revoked(jti.as_bytes(), sid.as_bytes(), 900));
        assert!(!replica.is_revoked(jti.as_bytes(), SessionId::generate().as_bytes(), 900));
        // A token and a session never share an entry.
        assert!(!replica.is_revoked(sid.as_bytes(), jti.as_bytes(), 900));
    }

    #[test]
    fn a_revoked_token_is_refused_and_its_entry_leaves_after_exp_and_leeway() {
        let replica = Replica::default();
        let jti = TokenId::generate();
        let sid = SessionId::generate();
        replica.apply(&record(1, Change::TokenRevoked { jti, exp: 1_000 }));
        assert!(replica.is_revoked(jti.as_bytes(), sid.as_bytes(), 1_000));
        assert_eq!(replica.deny_entries(), 1);

        assert_eq!(replica.evict(1_030, 30), 0, "still inside the leeway");
        assert_eq!(replica.evict(1_031, 30), 1);

        assert_eq!(replica.deny_entries(), 0);
        assert!(!replica.is_revoked(jti.as_bytes(), sid.as_bytes(), 1_000));
    }

    #[test]
    fn a_key_change_wakes_whoever_watches_the_key_ring() {
        let replica = Replica::default();
        let keys = replica.watch_keys();
        assert!(!keys.has_changed().unwrap());

        replica.apply(&record(1, Change::KeysChanged));

        assert!(keys.has_changed().unwrap());
    }
}
