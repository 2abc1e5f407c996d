//! PostgreSQL under the store's contract: a node ([`PgNode`]) answers what verification
//! reads from its replica and sends everything else to the database ([`PgStore`]). The
//! silence limit every `bounded` operation owes is applied by the contract's dispatch, not
//! here.

use std::time::Duration;

use super::node::PgNode;
use super::PgStore;
use crate::domain::{InvitationId, MailId, SessionId, TenantId, TokenId, UserId, Username};
use crate::mail::{EmailKey, LinkPurpose};
use crate::store::contract::Contract;
use crate::store::{
    first_failure, AccountChange, ChangesAfter, ClaimsChange, DeliveryOutcome, DenyKind,
    EvictionReport, HealthCounts, InvitationRecord, InvitationWriteError, KeyRecord, LinkEffect,
    MailWriteError, QueuedMail, Revocation, Rotation, ServiceRecord, SessionRecord, StoreError,
    TenantChange, TenantRecord, TenantWriteError, UserRecord, UserStamp, UserWriteError,
};

impl Contract for PgNode {
    async fn wait_durable(&self) -> Result<(), StoreError> {
        PgNode::wait_durable(self).await
    }

    async fn wait_durable_unlogged(&self) -> Result<(), StoreError> {
        // The commit was durable when it answered, and no peer has anything to apply.
        Ok(())
    }

    fn writes_stalled(&self) -> Option<Duration> {
        None
    }

    fn peer_wait(&self) -> (Duration, u64) {
        PgNode::peer_wait(self)
    }

    fn is_writable(&self) -> bool {
        self.is_current()
    }

    fn health(&self) -> HealthCounts {
        HealthCounts {
            writable: self.is_current(),
            write_failures: 0,
            recoveries: 0,
        }
    }

    fn note_write_failure(&self, _err: &StoreError) {}

    async fn probe(&self) {}

    fn try_recover(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    fn damage(&self) -> Option<String> {
        PgNode::damage(self)
    }

    fn flush_now(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn leave(&self) {
        PgNode::leave(self).await;
    }

    fn close(&self) {
        PgNode::close(self);
    }

    fn size_on_disk(&self) -> Option<u64> {
        None
    }

    async fn evict_expired(&self, now: u64, leeway: u64) -> Result<EvictionReport, StoreError> {
        PgNode::evict_expired(self, now, leeway).await
    }

    async fn eviction_horizon(&self) -> Result<Option<u64>, StoreError> {
        self.store().eviction_horizon().await
    }

    async fn advance_eviction_horizon(&self, at: u64) -> Result<(), StoreError> {
        self.store().advance_eviction_horizon(at).await
    }

    fn user_stamp(&self, id: UserId) -> Result<Option<UserStamp>, StoreError> {
        PgNode::user_stamp(self, id)
    }

    fn tenant_version(&self, id: TenantId) -> Result<Option<u64>, StoreError> {
        PgNode::tenant_version(self, id)
    }

    fn token_is_revoked(&self, jti: TokenId, sid: SessionId, exp: u64) -> Result<bool, StoreError> {
        PgNode::token_is_revoked(self, jti, sid, exp)
    }

    fn is_denied(&self, kind: DenyKind, id: &[u8; 16], exp: u64) -> Result<bool, StoreError> {
        PgNode::is_denied(self, kind, id, exp)
    }

    async fn note_access_ttl(&self, ttl: u64) -> Result<u64, StoreError> {
        PgNode::note_access_ttl(self, ttl).await
    }

    fn longest_access_ttl(&self) -> u64 {
        PgNode::longest_access_ttl(self)
    }

    fn deny_entries(&self) -> i64 {
        PgNode::deny_entries(self)
    }

    fn sessions_held(&self) -> i64 {
        PgNode::sessions_held(self)
    }

    async fn deny_token(&self, jti: TokenId, exp: u64) -> Result<bool, StoreError> {
        self.store().deny_token(jti, exp).await
    }

    async fn revoke_sessions(
        &self,
        user: UserId,
        revocations: &mut [Revocation],
        now: u64,
        change: AccountChange<'_>,
    ) -> Result<Option<UserRecord>, UserWriteError> {
        self.store()
            .revoke_sessions(user, revocations, now, change)
            .await
    }

    async fn changes_after(&self, after: u64, limit: usize) -> Result<ChangesAfter, StoreError> {
        self.store().changes_after(after, limit).await
    }

    async fn changes_evicted_through(&self) -> Result<u64, StoreError> {
        self.store().changes_evicted_through().await
    }

    fn published_through(&self) -> u64 {
        PgNode::published_through(self)
    }

    fn watch_published(&self) -> tokio::sync::watch::Receiver<u64> {
        PgNode::watch_published(self)
    }

    fn watch_keys(&self) -> tokio::sync::watch::Receiver<u64> {
        PgNode::watch_keys(self)
    }

    async fn create_user(
        &self,
        id: UserId,
        user: &UserRecord,
        invitation: Option<&[u8; 32]>,
        now: u64,
    ) -> Result<(), UserWriteError> {
        self.store().create_user(id, user, invitation, now).await
    }

    async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.store().user(id).await
    }

    async fn user_id_by_name(&self, name: &Username) -> Result<Option<UserId>, StoreError> {
        self.store().user_id_by_name(name).await
    }

    async fn user_id_by_email(&self, key: &EmailKey) -> Result<Option<UserId>, StoreError> {
        self.store().user_id_by_email(key).await
    }

    async fn queue_mail(&self, mail: &QueuedMail, now: u64) -> Result<(), MailWriteError> {
        self.store().queue_mail(mail, now).await
    }

    async fn claim_due_mails(
        &self,
        now: u64,
        lease: u64,
        limit: usize,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        self.store().claim_due_mails(now, lease, limit).await
    }

    async fn record_delivery(
        &self,
        id: MailId,
        outcome: DeliveryOutcome,
        now: u64,
    ) -> Result<Option<QueuedMail>, StoreError> {
        self.store().record_delivery(id, outcome, now).await
    }

    async fn queued_mail(&self, id: MailId) -> Result<Option<QueuedMail>, StoreError> {
        self.store().queued_mail(id).await
    }

    async fn mail_queue_depth(&self) -> Result<u64, StoreError> {
        self.store().mail_queue_depth().await
    }

    async fn redeem_mail_link(
        &self,
        id: MailId,
        purpose: LinkPurpose,
        effect: &LinkEffect,
        now: u64,
    ) -> Result<(UserId, UserRecord), MailWriteError> {
        self.store()
            .redeem_mail_link(id, purpose, effect, now)
            .await
    }

    async fn change_user_claims(
        &self,
        id: UserId,
        change: &ClaimsChange,
        now: u64,
    ) -> Result<UserRecord, UserWriteError> {
        self.store().change_user_claims(id, change, now).await
    }

    async fn delete_user(&self, id: UserId) -> Result<UserRecord, UserWriteError> {
        self.store().delete_user(id).await
    }

    async fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, UserRecord)>, StoreError> {
        self.store().list_users(after, limit).await
    }

    async fn insert_session(
        &self,
        sid: SessionId,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        PgNode::insert_session(self, sid, session).await
    }

    async fn session_and_user(
        &self,
        sid: SessionId,
    ) -> Result<Option<(SessionRecord, Option<UserRecord>)>, StoreError> {
        let store: &PgStore = self.store();
        let Some(session) = store.session(sid).await? else {
            return Ok(None);
        };
        let user = store.user(session.user_id()).await?;
        Ok(Some((session, user)))
    }

    async fn session(&self, sid: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.store().session(sid).await
    }

    async fn rotate_session(
        &self,
        sid: SessionId,
        rotation: &Rotation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.store().rotate_session(sid, rotation).await
    }

    async fn renew_session_access(
        &self,
        sid: SessionId,
        generation: u64,
        access: (&str, u64),
        used: Option<u64>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.store()
            .renew_session_access(sid, generation, access, used)
            .await
    }

    async fn user_session_ids(&self, user: UserId) -> Result<Vec<SessionId>, StoreError> {
        self.store().user_session_ids(user).await
    }

    async fn remove_session(
        &self,
        sid: SessionId,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        PgNode::remove_session(self, sid, session).await
    }

    async fn acknowledge_generations(
        &self,
        acknowledged: Vec<(SessionId, u64)>,
    ) -> Result<(), StoreError> {
        let mut written = Vec::with_capacity(acknowledged.len());
        for (sid, generation) in acknowledged {
            written.push(self.store().acknowledge_generation(sid, generation).await);
        }
        first_failure(written)
    }

    async fn acknowledged_generation(&self, sid: SessionId) -> Result<Option<u64>, StoreError> {
        self.store().acknowledged_generation(sid).await
    }

    async fn tenant(&self, id: TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.store().tenant(id).await
    }

    async fn list_tenants(&self) -> Result<Vec<(TenantId, TenantRecord)>, StoreError> {
        self.store().list_tenants().await
    }

    async fn create_tenant(&self, id: TenantId, tenant: &TenantRecord) -> Result<(), StoreError> {
        self.store().create_tenant(id, tenant).await
    }

    async fn change_tenant(
        &self,
        id: TenantId,
        change: &TenantChange,
        now: u64,
    ) -> Result<TenantRecord, TenantWriteError> {
        self.store().change_tenant(id, change, now).await
    }

    async fn delete_tenant(&self, id: TenantId) -> Result<(), TenantWriteError> {
        self.store().delete_tenant(id).await
    }

    async fn create_invitation(
        &self,
        tenant: TenantId,
        invitation: &InvitationRecord,
        now: u64,
    ) -> Result<(), InvitationWriteError> {
        self.store()
            .create_invitation(tenant, invitation, now)
            .await
    }

    async fn invitations(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Vec<InvitationRecord>>, StoreError> {
        self.store().invitations(tenant).await
    }

    async fn invitation_tenant(
        &self,
        code_digest: &[u8; 32],
        now: u64,
    ) -> Result<Option<TenantId>, StoreError> {
        self.store().invitation_tenant(code_digest, now).await
    }

    async fn pending_invitations(&self, tenant: TenantId, now: u64) -> Result<u64, StoreError> {
        self.store().pending_invitations(tenant, now).await
    }

    async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: InvitationId,
        now: u64,
    ) -> Result<(), InvitationWriteError> {
        self.store().revoke_invitation(tenant, id, now).await
    }

    async fn signing_keys(&self) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        self.store().signing_keys().await
    }

    async fn put_signing_key(&self, kid: &str, key: &KeyRecord) -> Result<(), StoreError> {
        self.store().put_signing_key(kid, key).await
    }

    async fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        self.store().remove_signing_key(kid).await
    }

    async fn put_service(
        &self,
        client_id: &str,
        service: &ServiceRecord,
    ) -> Result<(), StoreError> {
        self.store().put_service(client_id, service).await
    }

    async fn service(&self, client_id: &str) -> Result<Option<ServiceRecord>, StoreError> {
        self.store().service(client_id).await
    }

    async fn list_services(&self) -> Result<Vec<(String, ServiceRecord)>, StoreError> {
        self.store().list_services().await
    }

    async fn delete_service(&self, client_id: &str) -> Result<bool, StoreError> {
        self.store().delete_service(client_id).await
    }
}
