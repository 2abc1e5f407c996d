//! The embedded backend under the store's contract: each operation of [`SledStore`] run on
//! the store's own threads (writes on one [`Lane`], reads on another), never on the
//! caller's, so a stalled disk holds the requests that need it and not the server; the
//! arguments a call borrows are copied onto the thread that makes it.

use std::sync::Arc;
use std::time::Duration;

use super::SledStore;
use crate::domain::{InvitationId, SessionId, TenantId, TokenId, UserId, Username};
use crate::store::blocking::{self, Answering, Lane};
use crate::store::contract::Contract;
use crate::store::{
    first_failure, unavailable, AccountChange, ChangesAfter, ClaimsChange, DenyKind,
    EvictionReport, HealthCounts, InvitationRecord, InvitationWriteError, KeyRecord, Revocation,
    Rotation, ServiceRecord, SessionRecord, StoreError, TenantChange, TenantRecord,
    TenantWriteError, UserRecord, UserStamp, UserWriteError,
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

    async fn eviction_horizon(&self) -> Result<Option<u64>, StoreError> {
        self.read(super::eviction_horizon).await
    }

    async fn advance_eviction_horizon(&self, at: u64) -> Result<(), StoreError> {
        self.write(move |store| super::advance_eviction_horizon(store, at))
            .await
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

    async fn note_access_ttl(&self, ttl: u64) -> Result<u64, StoreError> {
        self.write(move |store| store.note_access_ttl(ttl)).await
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

    async fn deny_token(&self, jti: TokenId, exp: u64) -> Result<bool, StoreError> {
        self.write(move |store| store.deny_token(jti, exp)).await
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

    async fn changes_after(&self, after: u64, limit: usize) -> Result<ChangesAfter, StoreError> {
        self.read(move |store| store.changes_after(after, limit))
            .await
    }

    async fn changes_evicted_through(&self) -> Result<u64, StoreError> {
        self.read(SledStore::changes_evicted_through).await
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

    async fn create_user(
        &self,
        id: UserId,
        user: &UserRecord,
        invitation: Option<&[u8; 32]>,
        now: u64,
    ) -> Result<(), UserWriteError> {
        let (user, invitation) = (user.clone(), invitation.copied());
        self.write(move |store| store.create_user(id, &user, invitation.as_ref(), now))
            .await
    }

    async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.read(move |store| store.user(id)).await
    }

    async fn user_id_by_name(&self, name: &Username) -> Result<Option<UserId>, StoreError> {
        let name = name.clone();
        self.read(move |store| store.user_id_by_name(&name)).await
    }

    async fn change_user_claims(
        &self,
        id: UserId,
        change: &ClaimsChange,
        now: u64,
    ) -> Result<UserRecord, UserWriteError> {
        let change = change.clone();
        self.write(move |store| store.change_user_claims(id, &change, now))
            .await
    }

    async fn delete_user(&self, id: UserId) -> Result<UserRecord, UserWriteError> {
        self.write(move |store| store.delete_user(id)).await
    }

    async fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, UserRecord)>, StoreError> {
        self.read(move |store| store.list_users(after, limit)).await
    }

    async fn insert_session(
        &self,
        sid: SessionId,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        let session = session.clone();
        self.write(move |store| store.insert_session(sid, &session))
            .await
    }

    async fn session_and_user(
        &self,
        sid: SessionId,
    ) -> Result<Option<(SessionRecord, Option<UserRecord>)>, StoreError> {
        self.read(move |store| {
            let Some(session) = store.session(sid)? else {
                return Ok(None);
            };
            let user = store.user(session.user_id())?;
            Ok(Some((session, user)))
        })
        .await
    }

    async fn session(&self, sid: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.read(move |store| store.session(sid)).await
    }

    async fn rotate_session(
        &self,
        sid: SessionId,
        rotation: &Rotation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let rotation = rotation.clone();
        self.write(move |store| store.rotate_session(sid, &rotation))
            .await
    }

    async fn renew_session_access(
        &self,
        sid: SessionId,
        generation: u64,
        access: (&str, u64),
        used: Option<u64>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let (token, exp) = (access.0.to_string(), access.1);
        self.write(move |store| store.renew_session_access(sid, generation, (&token, exp), used))
            .await
    }

    async fn user_session_ids(&self, user: UserId) -> Result<Vec<SessionId>, StoreError> {
        self.read(move |store| store.user_session_ids(user)).await
    }

    async fn remove_session(
        &self,
        sid: SessionId,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        let session = session.clone();
        self.write(move |store| store.remove_session(sid, &session))
            .await
    }

    async fn acknowledge_generations(
        &self,
        acknowledged: Vec<(SessionId, u64)>,
    ) -> Result<(), StoreError> {
        self.write(move |store| {
            first_failure(
                acknowledged
                    .into_iter()
                    .map(|(sid, generation)| store.acknowledge_generation(sid, generation))
                    .collect(),
            )
        })
        .await
    }

    async fn acknowledged_generation(&self, sid: SessionId) -> Result<Option<u64>, StoreError> {
        self.read(move |store| store.acknowledged_generation(sid))
            .await
    }

    async fn tenant(&self, id: TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.read(move |store| store.tenant(id)).await
    }

    async fn list_tenants(&self) -> Result<Vec<(TenantId, TenantRecord)>, StoreError> {
        self.read(SledStore::list_tenants).await
    }

    async fn create_tenant(&self, id: TenantId, tenant: &TenantRecord) -> Result<(), StoreError> {
        let tenant = tenant.clone();
        self.write(move |store| store.create_tenant(id, &tenant))
            .await
    }

    async fn change_tenant(
        &self,
        id: TenantId,
        change: &TenantChange,
        now: u64,
    ) -> Result<TenantRecord, TenantWriteError> {
        let change = change.clone();
        self.write(move |store| store.change_tenant(id, &change, now))
            .await
    }

    async fn delete_tenant(&self, id: TenantId) -> Result<(), TenantWriteError> {
        self.write(move |store| store.delete_tenant(id)).await
    }

    async fn create_invitation(
        &self,
        tenant: TenantId,
        invitation: &InvitationRecord,
        now: u64,
    ) -> Result<(), InvitationWriteError> {
        let invitation = invitation.clone();
        self.write(move |store| store.create_invitation(tenant, &invitation, now))
            .await
    }

    async fn invitations(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Vec<InvitationRecord>>, StoreError> {
        self.read(move |store| store.invitations(tenant)).await
    }

    async fn invitation_tenant(
        &self,
        code_digest: &[u8; 32],
        now: u64,
    ) -> Result<Option<TenantId>, StoreError> {
        let code_digest = *code_digest;
        self.read(move |store| store.invitation_tenant(&code_digest, now))
            .await
    }

    async fn pending_invitations(&self, tenant: TenantId, now: u64) -> Result<u64, StoreError> {
        self.read(move |store| store.pending_invitations(tenant, now))
            .await
    }

    async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: InvitationId,
        now: u64,
    ) -> Result<(), InvitationWriteError> {
        self.write(move |store| store.revoke_invitation(tenant, id, now))
            .await
    }

    async fn signing_keys(&self) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        self.read(SledStore::signing_keys).await
    }

    async fn put_signing_key(&self, kid: &str, key: &KeyRecord) -> Result<(), StoreError> {
        let (kid, key) = (kid.to_string(), key.clone());
        self.write(move |store| store.put_signing_key(&kid, &key))
            .await
    }

    async fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        let kid = kid.to_string();
        self.write(move |store| store.remove_signing_key(&kid))
            .await
    }

    async fn put_service(
        &self,
        client_id: &str,
        service: &ServiceRecord,
    ) -> Result<(), StoreError> {
        let (client_id, service) = (client_id.to_string(), service.clone());
        self.write(move |store| store.put_service(&client_id, &service))
            .await
    }

    async fn service(&self, client_id: &str) -> Result<Option<ServiceRecord>, StoreError> {
        let client_id = client_id.to_string();
        self.read(move |store| store.service(&client_id)).await
    }

    async fn list_services(&self) -> Result<Vec<(String, ServiceRecord)>, StoreError> {
        self.read(SledStore::list_services).await
    }

    async fn delete_service(&self, client_id: &str) -> Result<bool, StoreError> {
        let client_id = client_id.to_string();
        self.write(move |store| store.delete_service(&client_id))
            .await
    }
}
