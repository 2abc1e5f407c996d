//! The store's contract: every operation the flows call, declared once, with what each
//! backend owes its caller, and the [`Store`] method that hands it to whichever backend
//! runs. [`contract!`] declares the trait both backends implement ([`Contract`]: sled's
//! lanes in `sled::backend`, PostgreSQL's node in `postgres::backend`) and generates the
//! dispatch, so adding an operation is one declaration here and one implementation per
//! backend, and no backend can skip a step the dispatch takes for it.
//!
//! What every operation owes, on either backend:
//!
//! - **Atomic with its log.** A write that changes how a token is answered appends its
//!   change-log record in the same transaction as the write itself: both or neither.
//! - **Decided by the model.** A write reads its records, lets `model` decide, and writes
//!   what it says; the rules are never written inside a backend.
//! - **Durable before acknowledged.** A write's caller answers only after
//!   [`Store::wait_durable`] (or [`Store::wait_durable_unlogged`] for writes that log
//!   nothing); until then its outcome is unknown.
//! - **Memory after commit.** What verification reads from memory (the mirror, the
//!   replica, the deny list) changes only after the write commits, never before.
//! - **Bounded in time.** A `bounded` operation on PostgreSQL answers within the
//!   database's silence limit or fails `Database` (the dispatch below applies it, to every
//!   one); on sled it runs on the store's own threads, and a stalled disk shows on
//!   `/readyz` instead of holding the server. `memory` operations answer from memory
//!   without waiting; `waits` operations wait as long as their own rules say.
//! - **A capability a backend lacks is a typed answer**: `None` or an error that says
//!   so, never a zero that looks real.

use std::time::Duration;

use super::{
    AccountChange, ChangesAfter, ClaimsChange, DeliveryOutcome, DenyKind, EvictionReport,
    HealthCounts, InvitationRecord, InvitationWriteError, KeyRecord, LinkEffect, MailWriteError,
    QueuedMail, Revocation, Rotation, ServiceRecord, SessionRecord, Store, StoreError,
    TenantChange, TenantRecord, TenantWriteError, UserRecord, UserStamp, UserWriteError,
};
use crate::domain::{InvitationId, MailId, SessionId, TenantId, TokenId, UserId, Username};
use crate::mail::{EmailKey, LinkPurpose};

/// Declares the contract's operations: the trait [`Contract`] with one method per
/// operation, and [`Store`]'s method of the same name dispatching to the backend.
///
/// Each operation is `memory` (synchronous, answered from memory), `bounded` (async; on
/// PostgreSQL held to the database's silence limit by the dispatch) or `waits` (async, as
/// long as its own rule says: durability, a probe, leaving the cluster).
macro_rules! contract {
    ($(
        $(#[$meta:meta])*
        $kind:ident fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
    )*) => {
        /// One method per operation of the store, implemented by each backend; see the
        /// module's documentation for what every one owes.
        pub(crate) trait Contract {
            $( contract!(@declare $kind $name ($($arg: $ty),*) -> $ret); )*
        }

        impl Store {
            $( contract!(@dispatch $(#[$meta])* $kind $name ($($arg: $ty),*) -> $ret); )*
        }
    };

    (@declare memory $name:ident ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        fn $name(&self, $($arg: $ty),*) -> $ret;
    };
    (@declare $kind:ident $name:ident ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        fn $name(&self, $($arg: $ty),*) -> impl std::future::Future<Output = $ret> + Send;
    };

    (@dispatch $(#[$meta:meta])* memory $name:ident ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$meta])*
        pub fn $name(&self, $($arg: $ty),*) -> $ret {
            match &self.backend {
                super::Backend::Sled(sled) => Contract::$name(sled, $($arg),*),
                #[cfg(feature = "postgres")]
                super::Backend::Postgres(node) => Contract::$name(&**node, $($arg),*),
            }
        }
    };
    (@dispatch $(#[$meta:meta])* bounded $name:ident ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$meta])*
        pub async fn $name(&self, $($arg: $ty),*) -> $ret {
            match &self.backend {
                super::Backend::Sled(sled) => Contract::$name(sled, $($arg),*).await,
                #[cfg(feature = "postgres")]
                super::Backend::Postgres(node) => {
                    node.store().bounded(Contract::$name(&**node, $($arg),*)).await
                }
            }
        }
    };
    (@dispatch $(#[$meta:meta])* waits $name:ident ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$meta])*
        pub async fn $name(&self, $($arg: $ty),*) -> $ret {
            match &self.backend {
                super::Backend::Sled(sled) => Contract::$name(sled, $($arg),*).await,
                #[cfg(feature = "postgres")]
                super::Backend::Postgres(node) => Contract::$name(&**node, $($arg),*).await,
            }
        }
    };
}

contract! {
    // ---- health and durability ----

    /// Waits until every write made before this call is durable (on PostgreSQL: applied
    /// by this node's replica and by every live peer).
    ///
    /// # Errors
    /// The write must not be acknowledged: its outcome is unknown.
    waits fn wait_durable(&self) -> Result<(), StoreError>;

    /// [`Store::wait_durable`] for a caller that wrote nothing to the change log since
    /// its last full wait (a login's new session, a rotation, an acknowledgement). On
    /// PostgreSQL its commit already was, and no peer has anything to apply, so it waits
    /// for no one: a node whose peers are slow still rotates at once (issue 19 §9).
    ///
    /// # Errors
    /// As [`Store::wait_durable`].
    waits fn wait_durable_unlogged(&self) -> Result<(), StoreError>;

    /// How long the embedded store's writes have been waiting on the disk with none
    /// finishing, once that is longer than [`super::blocking::STALLED_AFTER`]: the disk
    /// has stalled. `None` on PostgreSQL, whose silence `bounded` answers.
    memory fn writes_stalled(&self) -> Option<Duration>;

    /// How long write answers have waited, in all, for other nodes to apply them, and how
    /// many did: always nothing on sled.
    memory fn peer_wait(&self) -> (Duration, u64);

    /// Whether writes are being made durable (on PostgreSQL: this node follows the log).
    memory fn is_writable(&self) -> bool;

    /// Write failures and recoveries so far, for `/metrics`.
    memory fn health(&self) -> HealthCounts;

    /// Notes a failed write seen outside the backend's own durability path.
    memory fn note_write_failure(&self, err: &StoreError) -> ();

    /// Asks the backend whether it can still write (every second, `tasks::recovery`).
    waits fn probe(&self) -> ();

    /// Ends a write-failure episode if the backend takes writes again. Blocking.
    ///
    /// # Errors
    /// The store cannot recover in place: the process should exit for its supervisor.
    memory fn try_recover(&self) -> Result<bool, StoreError>;

    /// Damage found after open that the server must stop on.
    memory fn damage(&self) -> Option<String>;

    /// Makes every write so far durable, synchronously (the command line).
    ///
    /// # Errors
    /// The flush failed.
    memory fn flush_now(&self) -> Result<(), StoreError>;

    /// Before closing at a graceful stop: on PostgreSQL, gives up this node's lease, so no
    /// write on another node waits for it to run out.
    waits fn leave(&self) -> ();

    /// Lets go of the backend after a last flush. Blocking (sled flushes).
    memory fn close(&self) -> ();

    /// Bytes the store occupies on this machine's disk; `None` where that is not this
    /// node's to know (PostgreSQL's database sits elsewhere).
    memory fn size_on_disk(&self) -> Option<u64>;

    // ---- eviction ----

    /// Removes what can no longer matter: expired sessions, deny entries and invitations,
    /// and change-log records older than any live token.
    ///
    /// # Errors
    /// Storage failures; what was removed before the failure stays removed.
    bounded fn evict_expired(&self, now: u64, leeway: u64) -> Result<EvictionReport, StoreError>;

    /// The latest time an eviction pass worked from on this store (every node's, on
    /// PostgreSQL), if one ever ran: `tasks::eviction` never works from a later time than
    /// this plus the real time elapsed since it read it.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn eviction_horizon(&self) -> Result<Option<u64>, StoreError>;

    /// Records that an eviction pass worked from `at`; the horizon never moves back.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn advance_eviction_horizon(&self, at: u64) -> Result<(), StoreError>;

    // ---- verification, from memory ----

    /// What verification needs of a user.
    ///
    /// # Errors
    /// The store cannot vouch for what it holds.
    memory fn user_stamp(&self, id: UserId) -> Result<Option<UserStamp>, StoreError>;

    /// A tenant's claims version.
    ///
    /// # Errors
    /// The store cannot vouch for what it holds.
    memory fn tenant_version(&self, id: TenantId) -> Result<Option<u64>, StoreError>;

    /// Whether an access token (its `jti`) or its session (`sid`) is denied at `exp`.
    ///
    /// # Errors
    /// The store cannot vouch for what it holds.
    memory fn token_is_revoked(
        &self,
        jti: TokenId,
        sid: SessionId,
        exp: u64,
    ) -> Result<bool, StoreError>;

    /// Whether one deny entry covers `exp`.
    ///
    /// # Errors
    /// The store cannot vouch for what it holds.
    memory fn is_denied(&self, kind: DenyKind, id: &[u8; 16], exp: u64) -> Result<bool, StoreError>;

    /// Notes the access-token life in force; the longest one noted, which decides how
    /// long the change log is kept.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn note_access_ttl(&self, ttl: u64) -> Result<u64, StoreError>;

    /// The longest access-token life ever noted.
    memory fn longest_access_ttl(&self) -> u64;

    /// Live deny entries, for `/metrics`.
    memory fn deny_entries(&self) -> i64;

    /// Session records held, for `/metrics`.
    memory fn sessions_held(&self) -> i64;

    // ---- revocation ----

    /// Denies one access token until its `exp` and logs it; whether it was new.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn deny_token(&self, jti: TokenId, exp: u64) -> Result<bool, StoreError>;

    /// Ends `revocations` of `user` and applies `change` to the user in one write, all
    /// or nothing; `revocations` come back as written (their deny ranges widened by any
    /// wait). The user as it is after, `None` if it is gone.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn revoke_sessions(
        &self,
        user: UserId,
        revocations: &mut [Revocation],
        now: u64,
        change: AccountChange<'_>,
    ) -> Result<Option<UserRecord>, UserWriteError>;

    // ---- the change log ----

    /// Published change-log records after `after`, at most `limit`.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn changes_after(&self, after: u64, limit: usize) -> Result<ChangesAfter, StoreError>;

    /// The highest change-log id evicted.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn changes_evicted_through(&self) -> Result<u64, StoreError>;

    /// The highest published change-log id.
    memory fn published_through(&self) -> u64;

    /// Wakes on each newly published change-log id.
    memory fn watch_published(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Wakes when another node changed the key set; closed on sled, which has no other
    /// node.
    memory fn watch_keys(&self) -> tokio::sync::watch::Receiver<u64>;

    // ---- users ----

    /// Creates a user (spending an invitation when one is named) and logs it.
    ///
    /// # Errors
    /// The username is taken, the invitation spent, `max_accounts` reached, or storage.
    bounded fn create_user(
        &self,
        id: UserId,
        user: &UserRecord,
        invitation: Option<&[u8; 32]>,
        now: u64,
    ) -> Result<(), UserWriteError>;

    /// Reads a user.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;

    /// Finds a user by name.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn user_id_by_name(&self, name: &Username) -> Result<Option<UserId>, StoreError>;

    /// Changes a user's claims, bumping their version, and logs it.
    ///
    /// # Errors
    /// The user is gone, or storage.
    bounded fn change_user_claims(
        &self,
        id: UserId,
        change: &ClaimsChange,
        now: u64,
    ) -> Result<UserRecord, UserWriteError>;

    /// Deletes a user and logs it.
    ///
    /// # Errors
    /// The user is gone, or storage.
    bounded fn delete_user(&self, id: UserId) -> Result<UserRecord, UserWriteError>;

    /// A page of users in id order, after `after`.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, UserRecord)>, StoreError>;

    /// Finds a user by the key of its address.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn user_id_by_email(&self, key: &EmailKey) -> Result<Option<UserId>, StoreError>;

    // ---- the mail queue and mail links ----

    /// Queues `mail` and issues its link in its user's links, in one write
    /// ([`super::MailLinks::issue`] deciding): the live link of the same purpose is
    /// superseded and its mail, if still queued, is not sent. Logs nothing (no token's
    /// answer changes): durable after [`Store::wait_durable_unlogged`].
    ///
    /// # Errors
    /// `UserGone`, or storage.
    bounded fn queue_mail(&self, mail: &QueuedMail, now: u64) -> Result<(), MailWriteError>;

    /// Claims up to `limit` mails due at `now` for `lease` seconds, oldest due first
    /// ([`QueuedMail::claim`]): no other sender, on any node, takes them meanwhile; one
    /// whose sender died is due again when the lease ends.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn claim_due_mails(
        &self,
        now: u64,
        lease: u64,
        limit: usize,
    ) -> Result<Vec<QueuedMail>, StoreError>;

    /// Records a delivery attempt ([`QueuedMail::record`] deciding); the mail after, `None`
    /// if it has left the queue.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn record_delivery(
        &self,
        id: MailId,
        outcome: DeliveryOutcome,
        now: u64,
    ) -> Result<Option<QueuedMail>, StoreError>;

    /// Reads a mail of the queue (sent or not, until its link expires).
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn queued_mail(&self, id: MailId) -> Result<Option<QueuedMail>, StoreError>;

    /// Mails waiting to be sent, for `/metrics`.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn mail_queue_depth(&self) -> Result<u64, StoreError>;

    /// Redeems mail `id`'s link for `purpose` at `now` and applies `effect` to its user, in
    /// one write with its change-log record ([`super::MailLinks::redeem`] and
    /// [`UserRecord::redeem_link`] deciding): the user's id and record after. A refused
    /// link changes nothing.
    ///
    /// # Errors
    /// `LinkInvalid` (used, superseded, expired, unknown, another purpose or address, a
    /// disabled account), `UserGone`, or storage.
    bounded fn redeem_mail_link(
        &self,
        id: MailId,
        purpose: LinkPurpose,
        effect: &LinkEffect,
        now: u64,
    ) -> Result<(UserId, UserRecord), MailWriteError>;

    // ---- sessions ----

    /// Stores a new session.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn insert_session(
        &self,
        sid: SessionId,
        session: &SessionRecord,
    ) -> Result<(), StoreError>;

    /// Reads a session and the user it belongs to, in one call (a refresh needs both):
    /// `None` without the session, the user `None` if it is gone.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn session_and_user(
        &self,
        sid: SessionId,
    ) -> Result<Option<(SessionRecord, Option<UserRecord>)>, StoreError>;

    /// Reads a session.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn session(&self, sid: SessionId) -> Result<Option<SessionRecord>, StoreError>;

    /// Rotates a session if it is still at `rotation.from_generation` (one compare-and-set,
    /// [`SessionRecord::rotate`] deciding): the rotated session, `None` when it is gone,
    /// ended or already moved on.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn rotate_session(
        &self,
        sid: SessionId,
        rotation: &Rotation,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Replaces the access token kept for `generation` (a refresh with current claims,
    /// [`SessionRecord::renew_access`] deciding): the changed session, `None` when it is
    /// gone, ended or has moved on.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn renew_session_access(
        &self,
        sid: SessionId,
        generation: u64,
        access: (&str, u64),
        used: Option<u64>,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Every session id of a user.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn user_session_ids(&self, user: UserId) -> Result<Vec<SessionId>, StoreError>;

    /// Removes a session and its index entries.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn remove_session(
        &self,
        sid: SessionId,
        session: &SessionRecord,
    ) -> Result<(), StoreError>;

    /// Records that the answers carrying these generations are leaving, all at once;
    /// every one is tried, the first failure is returned.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn acknowledge_generations(
        &self,
        acknowledged: Vec<(SessionId, u64)>,
    ) -> Result<(), StoreError>;

    /// The newest acknowledged generation of a session.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn acknowledged_generation(&self, sid: SessionId) -> Result<Option<u64>, StoreError>;

    // ---- tenants ----

    /// Reads a tenant.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn tenant(&self, id: TenantId) -> Result<Option<TenantRecord>, StoreError>;

    /// Every tenant.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn list_tenants(&self) -> Result<Vec<(TenantId, TenantRecord)>, StoreError>;

    /// Creates a tenant and logs its version.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn create_tenant(&self, id: TenantId, tenant: &TenantRecord) -> Result<(), StoreError>;

    /// Changes a tenant, bumping its version, and logs it.
    ///
    /// # Errors
    /// The tenant is gone, or storage.
    bounded fn change_tenant(
        &self,
        id: TenantId,
        change: &TenantChange,
        now: u64,
    ) -> Result<TenantRecord, TenantWriteError>;

    /// Deletes a tenant and logs it.
    ///
    /// # Errors
    /// The tenant is gone or has members, or storage.
    bounded fn delete_tenant(&self, id: TenantId) -> Result<(), TenantWriteError>;

    // ---- invitations ----

    /// Stores an invitation into `tenant` if a seat is free.
    ///
    /// # Errors
    /// The tenant is gone or full, its book is full, or storage.
    bounded fn create_invitation(
        &self,
        tenant: TenantId,
        invitation: &InvitationRecord,
        now: u64,
    ) -> Result<(), InvitationWriteError>;

    /// A tenant's invitations (`None`: no such tenant).
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn invitations(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Vec<InvitationRecord>>, StoreError>;

    /// The tenant a pending invitation code admits to.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn invitation_tenant(
        &self,
        code_digest: &[u8; 32],
        now: u64,
    ) -> Result<Option<TenantId>, StoreError>;

    /// How many invitations of a tenant are still pending.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn pending_invitations(&self, tenant: TenantId, now: u64) -> Result<u64, StoreError>;

    /// Voids an invitation.
    ///
    /// # Errors
    /// Unknown, or storage.
    bounded fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: InvitationId,
        now: u64,
    ) -> Result<(), InvitationWriteError>;

    // ---- keys and services ----

    /// Every signing key, by kid.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn signing_keys(&self) -> Result<Vec<(String, KeyRecord)>, StoreError>;

    /// Stores a signing key (publishing, signing or retiring it) and logs the change.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn put_signing_key(&self, kid: &str, key: &KeyRecord) -> Result<(), StoreError>;

    /// Removes a signing key and logs the change.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError>;

    /// Stores a service credential.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn put_service(
        &self,
        client_id: &str,
        service: &ServiceRecord,
    ) -> Result<(), StoreError>;

    /// Reads a service credential.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn service(&self, client_id: &str) -> Result<Option<ServiceRecord>, StoreError>;

    /// Every service credential.
    ///
    /// # Errors
    /// Storage failures and damaged records.
    bounded fn list_services(&self) -> Result<Vec<(String, ServiceRecord)>, StoreError>;

    /// Deletes a service credential; whether it existed.
    ///
    /// # Errors
    /// Storage failures.
    bounded fn delete_service(&self, client_id: &str) -> Result<bool, StoreError>;
}
