//! The embedded backend under the store's contract: each operation of [`SledStore`] run on
//! the store's own threads (writes on one [`Lane`], reads on another), never on the
//! caller's, so a stalled disk holds the requests that need it and not the server; the
//! arguments a call borrows are copied onto the thread that makes it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::SledStore;
use crate::domain::{InvitationId, MailId, SessionId, TenantId, TokenId, UserId, Username};
use crate::mail::{EmailKey, LinkPurpose};
use crate::store::blocking::{self, Answering, Lane};
use crate::store::contract::Contract;
use crate::store::{
    first_failure, unavailable, AccountChange, ChangesAfter, ClaimsChange, DeliveryOutcome,
    DenyKind, EvictionReport, HealthCounts, InvitationRecord, InvitationWriteError, KeyRecord,
    LinkEffect, MailWriteError, QueuedMail, Revocation, Rotation, ServiceRecord, SessionRecord,
    StoreError, TenantChange, TenantRecord, TenantWriteError, UserRecord, UserStamp,
    UserWriteError,
};

/// A sled store with the threads its calls run on.
pub struct SledBackend {
    store: Arc<SledStore>,
    writes: Lane,
    reads: Lane,
}

impl SledBackend {
    /// `store`, its calls to run on lanes of its own (started at the first call).
    pub fn new(store: SledStore) -> SledBackend {
        SledBackend {
            store: Arc::new(store),
            writes: Lane::new("claimd-store-write"),
            reads: Lane::new("claimd-store-read"),
        }
    }

    /// The store itself, for what only it can do (its backup, its data directory).
    pub fn store(&self) -> &SledStore {
        &self.store
    }

    /// Runs a write on the write lane's threads.
    fn write<T, E>(
        &self,
        write: impl FnOnce(&SledStore) -> Result<T, E> + Send + 'static,
    ) -> Answering<'_, T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        self.writes.run(move || write(&store), unavailable)
    }

    /// Runs a read on the read lane's threads.
    fn read<T>(
        &self,
        read: impl FnOnce(&SledStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Answering<'_, T, StoreError>
    where
        T: Send + 'static,
    {
        let store = Arc::clone(&self.store);
        self.reads.run(move || read(&store), unavailable)
    }
}

impl Contract for SledBackend {
    async fn wait_durable(&self) -> Result<(), StoreError> {
        let _waiting = self.writes.watch.begin();
        self.store.wait_durable().await
    }

    async fn wait_durable_unlogged(&self) -> Result<(), StoreError> {
        self.wait_durable().await
    }

    fn writes_stalled(&self) -> Option<Duration> {
        self.writes.watch.stalled(blocking::STALLED_AFTER)
    }

    fn peer_wait(&self) -> (Duration, u64) {
        (Duration::ZERO, 0)
    }

    fn is_writable(&self) -> bool {
        self.store.is_writable()
    }

    fn health(&self) -> HealthCounts {
        self.store.health()
    }

    fn note_write_failure(&self, err: &StoreError) {
        self.store.note_write_failure(err);
    }

    async fn probe(&self) {
        self.store.probe().await;
    }

    fn try_recover(&self) -> Result<bool, StoreError> {
        self.store.try_recover()
    }

    fn damage(&self) -> Option<String> {
        self.store.damage()
    }

    fn flush_now(&self) -> Result<(), StoreError> {
        self.store.flush_now()
    }

    async fn leave(&self) {}

    fn close(&self) {
        self.store.close();
    }

    fn size_on_disk(&self) -> Option<u64> {
        Some(self.store.size_on_disk())
    }

    async fn evict_expired(&self, now: u64, leeway: u64) -> Result<EvictionReport, StoreError> {
        // A pass scans whole trees: the blocking pool, not a lane a request waits on.
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || super::evict_expired(&store, now, leeway))
            .await
            .map_err(|err| StoreError::Unavailable(format!("the eviction pass failed: {err}")))?
    }

    fn eviction_horizon(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        self.read(super::eviction_horizon)
    }

    fn advance_eviction_horizon(
        &self,
        at: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.write(move |store| super::advance_eviction_horizon(store, at))
    }

    fn user_stamp(&self, id: UserId) -> Result<Option<UserStamp>, StoreError> {
        self.store.user_stamp(id)
    }

    fn tenant_version(&self, id: TenantId) -> Result<Option<u64>, StoreError> {
        self.store.tenant_version(id)
    }

    fn token_is_revoked(&self, jti: TokenId, sid: SessionId, exp: u64) -> Result<bool, StoreError> {
        self.store.token_is_revoked(jti, sid, exp)
    }

    fn is_denied(&self, kind: DenyKind, id: &[u8; 16], exp: u64) -> Result<bool, StoreError> {
        self.store.is_denied(kind, id, exp)
    }

    fn note_access_ttl(&self, ttl: u64) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.write(move |store| store.note_access_ttl(ttl))
    }

    fn longest_access_ttl(&self) -> u64 {
        self.store.longest_access_ttl()
    }

    fn deny_entries(&self) -> i64 {
        self.store.deny_entries()
    }

    fn sessions_held(&self) -> i64 {
        self.store.sessions_held()
    }

    fn deny_token(
        &self,
        jti: TokenId,
        exp: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.write(move |store| store.deny_token(jti, exp))
    }

    async fn revoke_sessions(
        &self,
        user: UserId,
        revocations: &mut [Revocation],
        now: u64,
        change: AccountChange<'_>,
    ) -> Result<Option<UserRecord>, UserWriteError> {
        let mut owned = revocations.to_vec();
        let change = change.to_owned_change();
        let (outcome, written) = self
            .write(move |store| {
                let outcome = store.revoke_sessions(user, &mut owned, now, change.as_change());
                Ok::<_, UserWriteError>((outcome, owned))
            })
            .await?;
        // The ranges as written (widened by any wait) and the records as marked.
        revocations.clone_from_slice(&written);
        outcome
    }

    fn changes_after(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<ChangesAfter, StoreError>> + Send {
        self.read(move |store| store.changes_after(after, limit))
    }

    fn changes_evicted_through(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.read(SledStore::changes_evicted_through)
    }

    fn published_through(&self) -> u64 {
        self.store.published_through()
    }

    fn watch_published(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.watch_published()
    }

    fn watch_keys(&self) -> tokio::sync::watch::Receiver<u64> {
        tokio::sync::watch::channel(0).1
    }

    fn create_user(
        &self,
        id: UserId,
        user: &UserRecord,
        invitation: Option<&[u8; 32]>,
        now: u64,
    ) -> impl Future<Output = Result<(), UserWriteError>> + Send {
        let (user, invitation) = (user.clone(), invitation.copied());
        self.write(move |store| store.create_user(id, &user, invitation.as_ref(), now))
    }

    fn user(
        &self,
        id: UserId,
    ) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send {
        self.read(move |store| store.user(id))
    }

    fn user_id_by_name(
        &self,
        name: &Username,
    ) -> impl Future<Output = Result<Option<UserId>, StoreError>> + Send {
        let name = name.clone();
        self.read(move |store| store.user_id_by_name(&name))
    }

    fn user_id_by_email(
        &self,
        key: &EmailKey,
    ) -> impl Future<Output = Result<Option<UserId>, StoreError>> + Send {
        let key = key.clone();
        self.read(move |store| store.user_id_by_email(&key))
    }

    fn queue_mail(
        &self,
        mail: &QueuedMail,
        now: u64,
    ) -> impl Future<Output = Result<(), MailWriteError>> + Send {
        let mail = mail.clone();
        self.write(move |store| store.queue_mail(&mail, now))
    }

    fn claim_due_mails(
        &self,
        now: u64,
        lease: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<QueuedMail>, StoreError>> + Send {
        self.write(move |store| store.claim_due_mails(now, lease, limit))
    }

    fn record_delivery(
        &self,
        id: MailId,
        outcome: DeliveryOutcome,
        now: u64,
    ) -> impl Future<Output = Result<Option<QueuedMail>, StoreError>> + Send {
        self.write(move |store| store.record_delivery(id, outcome, now))
    }

    fn queued_mail(
        &self,
        id: MailId,
    ) -> impl Future<Output = Result<Option<QueuedMail>, StoreError>> + Send {
        self.read(move |store| store.queued_mail(id))
    }

    fn mail_queue_depth(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.read(SledStore::mail_queue_depth)
    }

    fn redeem_mail_link(
        &self,
        id: MailId,
        purpose: LinkPurpose,
        effect: &LinkEffect,
        now: u64,
    ) -> impl Future<Output = Result<(UserId, UserRecord), MailWriteError>> + Send {
        let effect = effect.clone();
        self.write(move |store| store.redeem_mail_link(id, purpose, &effect, now))
    }

    fn change_user_claims(
        &self,
        id: UserId,
        change: &ClaimsChange,
        now: u64,
    ) -> impl Future<Output = Result<UserRecord, UserWriteError>> + Send {
        let change = change.clone();
        self.write(move |store| store.change_user_claims(id, &change, now))
    }

    fn delete_user(
        &self,
        id: UserId,
    ) -> impl Future<Output = Result<UserRecord, UserWriteError>> + Send {
        self.write(move |store| store.delete_user(id))
    }

    fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(UserId, UserRecord)>, StoreError>> + Send {
        self.read(move |store| store.list_users(after, limit))
    }

    fn insert_session(
        &self,
        sid: SessionId,
        session: &SessionRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let session = session.clone();
        self.write(move |store| store.insert_session(sid, &session))
    }

    fn session_and_user(
        &self,
        sid: SessionId,
    ) -> impl Future<Output = Result<Option<(SessionRecord, Option<UserRecord>)>, StoreError>> + Send
    {
        self.read(move |store| {
            let Some(session) = store.session(sid)? else {
                return Ok(None);
            };
            let user = store.user(session.user_id())?;
            Ok(Some((session, user)))
        })
    }

    fn session(
        &self,
        sid: SessionId,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send {
        self.read(move |store| store.session(sid))
    }

    fn rotate_session(
        &self,
        sid: SessionId,
        rotation: &Rotation,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send {
        let rotation = rotation.clone();
        self.write(move |store| store.rotate_session(sid, &rotation))
    }

    fn renew_session_access(
        &self,
        sid: SessionId,
        generation: u64,
        access: (&str, u64),
        used: Option<u64>,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send {
        let (token, exp) = (access.0.to_string(), access.1);
        self.write(move |store| store.renew_session_access(sid, generation, (&token, exp), used))
    }

    fn user_session_ids(
        &self,
        user: UserId,
    ) -> impl Future<Output = Result<Vec<SessionId>, StoreError>> + Send {
        self.read(move |store| store.user_session_ids(user))
    }

    fn remove_session(
        &self,
        sid: SessionId,
        session: &SessionRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let session = session.clone();
        self.write(move |store| store.remove_session(sid, &session))
    }

    fn acknowledge_generations(
        &self,
        acknowledged: Vec<(SessionId, u64)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.write(move |store| {
            first_failure(
                acknowledged
                    .into_iter()
                    .map(|(sid, generation)| store.acknowledge_generation(sid, generation))
                    .collect(),
            )
        })
    }

    fn acknowledged_generation(
        &self,
        sid: SessionId,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        self.read(move |store| store.acknowledged_generation(sid))
    }

    fn tenant(
        &self,
        id: TenantId,
    ) -> impl Future<Output = Result<Option<TenantRecord>, StoreError>> + Send {
        self.read(move |store| store.tenant(id))
    }

    fn list_tenants(
        &self,
    ) -> impl Future<Output = Result<Vec<(TenantId, TenantRecord)>, StoreError>> + Send {
        self.read(SledStore::list_tenants)
    }

    fn create_tenant(
        &self,
        id: TenantId,
        tenant: &TenantRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let tenant = tenant.clone();
        self.write(move |store| store.create_tenant(id, &tenant))
    }

    fn change_tenant(
        &self,
        id: TenantId,
        change: &TenantChange,
        now: u64,
    ) -> impl Future<Output = Result<TenantRecord, TenantWriteError>> + Send {
        let change = change.clone();
        self.write(move |store| store.change_tenant(id, &change, now))
    }

    fn delete_tenant(
        &self,
        id: TenantId,
    ) -> impl Future<Output = Result<(), TenantWriteError>> + Send {
        self.write(move |store| store.delete_tenant(id))
    }

    fn create_invitation(
        &self,
        tenant: TenantId,
        invitation: &InvitationRecord,
        now: u64,
    ) -> impl Future<Output = Result<(), InvitationWriteError>> + Send {
        let invitation = invitation.clone();
        self.write(move |store| store.create_invitation(tenant, &invitation, now))
    }

    fn invitations(
        &self,
        tenant: TenantId,
    ) -> impl Future<Output = Result<Option<Vec<InvitationRecord>>, StoreError>> + Send {
        self.read(move |store| store.invitations(tenant))
    }

    fn invitation_tenant(
        &self,
        code_digest: &[u8; 32],
        now: u64,
    ) -> impl Future<Output = Result<Option<TenantId>, StoreError>> + Send {
        let code_digest = *code_digest;
        self.read(move |store| store.invitation_tenant(&code_digest, now))
    }

    fn pending_invitations(
        &self,
        tenant: TenantId,
        now: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.read(move |store| store.pending_invitations(tenant, now))
    }

    fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: InvitationId,
        now: u64,
    ) -> impl Future<Output = Result<(), InvitationWriteError>> + Send {
        self.write(move |store| store.revoke_invitation(tenant, id, now))
    }

    fn signing_keys(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, KeyRecord)>, StoreError>> + Send {
        self.read(SledStore::signing_keys)
    }

    fn put_signing_key(
        &self,
        kid: &str,
        key: &KeyRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let (kid, key) = (kid.to_string(), key.clone());
        self.write(move |store| store.put_signing_key(&kid, &key))
    }

    fn remove_signing_key(&self, kid: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        let kid = kid.to_string();
        self.write(move |store| store.remove_signing_key(&kid))
    }

    fn put_service(
        &self,
        client_id: &str,
        service: &ServiceRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let (client_id, service) = (client_id.to_string(), service.clone());
        self.write(move |store| store.put_service(&client_id, &service))
    }

    fn service(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<ServiceRecord>, StoreError>> + Send {
        let client_id = client_id.to_string();
        self.read(move |store| store.service(&client_id))
    }

    fn list_services(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, ServiceRecord)>, StoreError>> + Send {
        self.read(SledStore::list_services)
    }

    async fn delete_service(&self, client_id: &str) -> Result<bool, StoreError> {
        let client_id = client_id.to_string();
        self.write(move |store| store.delete_service(&client_id))
            .await
    }
}
