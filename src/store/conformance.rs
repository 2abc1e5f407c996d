//! The contract's conformance suite: each test written once against [`Store`], run on a
//! temporary sled store (`on_sled`) and on a database of its own in the PostgreSQL test
//! cluster (`on_postgres`, `#[ignore = "needs PostgreSQL"]`: `.ci/run` runs it with
//! `--include-ignored`). What one backend does and the other does not is a failure here,
//! whatever the HTTP suite happens to reach.

use std::sync::Arc;

use serde_json::Map;

use super::{
    AccountChange, Change, ChangesAfter, ClaimsChange, InvitationRecord, InvitationStatus,
    InvitationWriteError, KeyRecord, Revocation, Rotation, ServiceRecord, SessionRecord, Store,
    TenantChange, TenantRecord, TenantWriteError, UserRecord, UserWriteError,
};
use super::{DeliveryOutcome, LinkEffect, MailFailure, MailWriteError, QueuedMail};
use crate::domain::{SessionId, TenantId, TokenId, UserId, Username};
use crate::mail::{EmailAddress, EmailKey, LinkPurpose};

/// Declares each test once, as an `async fn` taking the store, and runs it on both.
macro_rules! conformance {
    ($(
        $(#[$meta:meta])*
        async fn $name:ident($store:ident: Arc<Store>) $body:block
    )*) => {
        $(
            $(#[$meta])*
            async fn $name($store: Arc<Store>) $body
        )*

        mod on_sled {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    let store = crate::store::Store::open(dir.path(), 4).expect("sled opens");
                    let store = std::sync::Arc::new(store);
                    super::$name(std::sync::Arc::clone(&store)).await;
                    store.close();
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod on_postgres {
            use crate::store::postgres::testing::TestDatabase;

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL"]
                async fn $name() {
                    let db = TestDatabase::require().await;
                    let store =
                        crate::store::Store::open_postgres(&db.url, 4, crate::clock::Clock::system())
                            .await
                            .expect("the database opens");
                    let store = std::sync::Arc::new(store);
                    super::$name(std::sync::Arc::clone(&store)).await;
                    store.leave().await;
                    store.close();
                    db.drop_now().await;
                }
            )*
        }
    };
}

const NOW: u64 = 1_800_000_000;

fn user(name: &str, tenant: Option<TenantId>) -> UserRecord {
    UserRecord {
        username: name.into(),
        password_hash: "$argon2id$not-a-hash".into(),
        tenant,
        roles: vec!["reader".into()],
        plan: "free".into(),
        attrs: Map::new(),
        claims_version: 1,
        not_before: 0,
        disabled: false,
        created_at: NOW,
        updated_at: NOW,
        email: None,
        email_verified: false,
    }
}

/// `name`, with the address `email`.
fn user_with_email(name: &str, email: &str) -> UserRecord {
    UserRecord {
        email: Some(EmailAddress::parse(email).expect("an address")),
        ..user(name, None)
    }
}

/// A mail of `purpose` for `user` at `email`, issued at `at`, its link living 1,800 s.
fn mail(user: UserId, purpose: LinkPurpose, email: &str, at: u64) -> QueuedMail {
    let to = EmailAddress::parse(email).expect("an address");
    QueuedMail::new(user, purpose, to, at, 1_800)
}

fn email_key(email: &str) -> EmailKey {
    EmailAddress::parse(email)
        .expect("an address")
        .key()
        .clone()
}

fn tenant(max_accounts: Option<u64>) -> TenantRecord {
    TenantRecord {
        name: "Acme".into(),
        plan: "team".into(),
        max_accounts,
        attrs: Map::new(),
        version: 1,
        members: 0,
        created_at: NOW,
        updated_at: NOW,
    }
}

fn session(user: UserId) -> SessionRecord {
    SessionRecord {
        user,
        session_key: [3; 32],
        generation: 1,
        created_at: NOW,
        expires_at: NOW + 86_400,
        last_used: NOW,
        rotated_at_ms: NOW * 1000,
        revoked: false,
        current_access_token: "access-1".into(),
        current_access_expires: NOW + 900,
    }
}

/// Every change published so far, once the writes before are durable.
async fn logged(store: &Store) -> Vec<Change> {
    store.wait_durable().await.expect("durable");
    match store.changes_after(0, 1000).await.expect("the log reads") {
        ChangesAfter::Records { records, .. } => {
            records.into_iter().map(|record| record.change).collect()
        }
        other => panic!("the log answered {other:?}"),
    }
}

/// A tenant with `max_accounts`, created and durable.
async fn new_tenant(store: &Store, max_accounts: Option<u64>) -> TenantId {
    let id = TenantId::generate();
    store
        .create_tenant(id, &tenant(max_accounts))
        .await
        .expect("tenant created");
    id
}

/// An invitation into `tenant` whose code digest is `[code; 32]`.
async fn invite(
    store: &Store,
    tenant: TenantId,
    code: u8,
) -> Result<InvitationRecord, InvitationWriteError> {
    let invitation = InvitationRecord::new([code; 32], NOW, NOW + 3600);
    store.create_invitation(tenant, &invitation, NOW).await?;
    Ok(invitation)
}

conformance! {
    /// A new user is readable by id and by name, in memory for verification, and logged
    /// with its whole stamp in the same write.
    async fn a_new_user_is_stored_stamped_and_logged(store: Arc<Store>) {
        let id = UserId::generate();
        store.create_user(id, &user("ada", None), None, NOW).await.expect("created");
        let name = Username::parse("ada").expect("a username");
        assert_eq!(store.user_id_by_name(&name).await.expect("read"), Some(id));
        assert_eq!(store.user(id).await.expect("read"), Some(user("ada", None)));
        let logged = logged(&store).await;
        assert_eq!(logged, vec![user("ada", None).account_change(id)]);
        let stamp = store.user_stamp(id).expect("memory").expect("stamped");
        assert_eq!((stamp.claims_version, stamp.disabled), (1, false));
    }

    /// One name, one account, whichever write comes second.
    async fn a_username_is_taken_once(store: Arc<Store>) {
        store.create_user(UserId::generate(), &user("ada", None), None, NOW).await.expect("first");
        let second = store.create_user(UserId::generate(), &user("ada", None), None, NOW).await;
        assert!(matches!(second, Err(UserWriteError::UsernameTaken)), "{second:?}");
    }

    /// A change to what tokens carry bumps `uv` and logs once; the same values again
    /// change nothing and log nothing.
    async fn a_claim_change_bumps_uv_and_logs_it_once(store: Arc<Store>) {
        let id = UserId::generate();
        store.create_user(id, &user("ada", None), None, NOW).await.expect("created");
        let upgrade = ClaimsChange { plan: Some("pro".into()), ..ClaimsChange::default() };
        let changed = store.change_user_claims(id, &upgrade, NOW + 1).await.expect("changed");
        assert_eq!((changed.plan.as_str(), changed.claims_version), ("pro", 2));
        let again = store.change_user_claims(id, &upgrade, NOW + 2).await.expect("same");
        assert_eq!(again.claims_version, 2);
        let logged = logged(&store).await;
        assert_eq!(logged.len(), 2, "{logged:?}");
        assert_eq!(logged[1], changed.change(id));
        assert_eq!(store.user_stamp(id).expect("memory").expect("stamped").claims_version, 2);
    }

    /// Members plus pending invitations never pass `max_accounts`, whichever write asks.
    async fn a_tenant_seat_is_held_by_members_and_pending_invitations(store: Arc<Store>) {
        let acme = new_tenant(&store, Some(2)).await;
        store.create_user(UserId::generate(), &user("ada", Some(acme)), None, NOW).await
            .expect("first member");
        invite(&store, acme, 1).await.expect("the second seat, held by an invitation");
        let full = store.create_user(UserId::generate(), &user("bob", Some(acme)), None, NOW).await;
        assert!(matches!(full, Err(UserWriteError::TenantFull)), "{full:?}");
        let another = invite(&store, acme, 2).await;
        assert!(matches!(another, Err(InvitationWriteError::TenantFull)), "{another:?}");
        assert_eq!(store.pending_invitations(acme, NOW).await.expect("read"), 1);
        assert_eq!(store.tenant(acme).await.expect("read").expect("there").members, 1);
    }

    /// A code admits one account, into its own tenant only, and its seat becomes the
    /// member's.
    async fn an_invitation_admits_one_account(store: Arc<Store>) {
        let acme = new_tenant(&store, Some(1)).await;
        let other = new_tenant(&store, None).await;
        let invitation = invite(&store, acme, 7).await.expect("invited");
        assert_eq!(store.invitation_tenant(&[7; 32], NOW).await.expect("read"), Some(acme));
        let elsewhere = store
            .create_user(UserId::generate(), &user("eve", Some(other)), Some(&[7; 32]), NOW)
            .await;
        assert!(matches!(elsewhere, Err(UserWriteError::InvitationInvalid)), "{elsewhere:?}");
        let ada = UserId::generate();
        store.create_user(ada, &user("ada", Some(acme)), Some(&[7; 32]), NOW).await
            .expect("admitted on the invitation's own seat");
        let twice = store
            .create_user(UserId::generate(), &user("bob", Some(acme)), Some(&[7; 32]), NOW)
            .await;
        assert!(matches!(twice, Err(UserWriteError::InvitationInvalid)), "{twice:?}");
        assert_eq!(store.invitation_tenant(&[7; 32], NOW).await.expect("read"), None);
        let listed = store.invitations(acme).await.expect("read").expect("a tenant");
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id, listed[0].used_by), (invitation.id, Some(ada)));
        assert_eq!(listed[0].status(NOW), InvitationStatus::Used);
        assert_eq!(store.tenant(acme).await.expect("read").expect("there").members, 1);
    }

    /// Revoking frees the seat and the code at once; revoking again changes nothing;
    /// an unknown invitation is `NotFound`.
    async fn revoking_an_invitation_frees_its_seat(store: Arc<Store>) {
        let acme = new_tenant(&store, Some(1)).await;
        let invitation = invite(&store, acme, 4).await.expect("invited");
        store.revoke_invitation(acme, invitation.id, NOW + 1).await.expect("revoked");
        store.revoke_invitation(acme, invitation.id, NOW + 2).await.expect("again");
        assert_eq!(store.invitation_tenant(&[4; 32], NOW + 2).await.expect("read"), None);
        invite(&store, acme, 5).await.expect("the seat is free again");
        let unknown = store
            .revoke_invitation(acme, crate::domain::InvitationId::generate(), NOW)
            .await;
        assert!(matches!(unknown, Err(InvitationWriteError::NotFound)), "{unknown:?}");
    }

    /// A move between tenants counts the user out of one and into the other, refuses a
    /// full one, and logs the whole stamp.
    async fn a_move_between_tenants_moves_the_seat(store: Arc<Store>) {
        let (from, to, full) = (
            new_tenant(&store, None).await,
            new_tenant(&store, Some(5)).await,
            new_tenant(&store, Some(0)).await,
        );
        let id = UserId::generate();
        store.create_user(id, &user("ada", Some(from)), None, NOW).await.expect("created");
        let refused = ClaimsChange { tenant: Some(Some(full)), ..ClaimsChange::default() };
        let outcome = store.change_user_claims(id, &refused, NOW).await;
        assert!(matches!(outcome, Err(UserWriteError::TenantFull)), "{outcome:?}");
        let moved = ClaimsChange { tenant: Some(Some(to)), ..ClaimsChange::default() };
        let after = store.change_user_claims(id, &moved, NOW + 1).await.expect("moved");
        assert_eq!(store.tenant(from).await.expect("read").expect("there").members, 0);
        assert_eq!(store.tenant(to).await.expect("read").expect("there").members, 1);
        let logged = logged(&store).await;
        assert_eq!(logged.last(), Some(&after.account_change(id)));
        assert_eq!(store.user_stamp(id).expect("memory").expect("stamped").tenant, Some(to));
    }

    /// A tenant change bumps `tv` for verification; a tenant with members is not deleted,
    /// an empty one is, with its invitations' codes.
    async fn a_tenant_changes_with_its_version_and_leaves_only_empty(store: Arc<Store>) {
        let acme = new_tenant(&store, None).await;
        let rename = TenantChange { name: Some("Acme 2".into()), ..TenantChange::default() };
        let changed = store.change_tenant(acme, &rename, NOW + 1).await.expect("changed");
        assert_eq!((changed.name.as_str(), changed.version), ("Acme 2", 2));
        store.wait_durable().await.expect("durable");
        assert_eq!(store.tenant_version(acme).expect("memory"), Some(2));
        let id = UserId::generate();
        store.create_user(id, &user("ada", Some(acme)), None, NOW).await.expect("member");
        let refused = store.delete_tenant(acme).await;
        assert!(matches!(refused, Err(TenantWriteError::NotEmpty)), "{refused:?}");
        store.delete_user(id).await.expect("deleted");
        invite(&store, acme, 9).await.expect("invited");
        store.delete_tenant(acme).await.expect("an empty tenant leaves");
        assert_eq!(store.tenant(acme).await.expect("read"), None);
        assert_eq!(store.invitation_tenant(&[9; 32], NOW).await.expect("read"), None);
        let gone = store.delete_tenant(acme).await;
        assert!(matches!(gone, Err(TenantWriteError::NotFound)), "{gone:?}");
        assert!(logged(&store).await.contains(&Change::TenantDeleted { tenant: acme }));
    }

    /// Deleting a user frees its name and its seat and logs it.
    async fn deleting_a_user_frees_its_name_and_seat(store: Arc<Store>) {
        let acme = new_tenant(&store, Some(1)).await;
        let id = UserId::generate();
        store.create_user(id, &user("ada", Some(acme)), None, NOW).await.expect("created");
        store.delete_user(id).await.expect("deleted");
        let again = store.delete_user(id).await;
        assert!(matches!(again, Err(UserWriteError::NotFound)), "{again:?}");
        store.create_user(UserId::generate(), &user("ada", Some(acme)), None, NOW).await
            .expect("the name and the seat are free");
        assert!(logged(&store).await.contains(&Change::UserDeleted { user: id }));
        assert_eq!(store.user_stamp(id).expect("memory"), None);
    }

    /// A session rotates only from the generation it is at; renewing keeps the generation.
    async fn a_session_rotates_only_from_its_generation(store: Arc<Store>) {
        let owner = UserId::generate();
        store.create_user(owner, &user("ada", None), None, NOW).await.expect("created");
        let sid = SessionId::generate();
        store.insert_session(sid, &session(owner)).await.expect("stored");
        let rotation = Rotation {
            from_generation: 1,
            access_token: "access-2".into(),
            access_expires: NOW + 960,
            at: NOW + 60,
            at_ms: (NOW + 60) * 1000,
        };
        let rotated = store.rotate_session(sid, &rotation).await.expect("written").expect("there");
        assert_eq!((rotated.generation, rotated.current_access_token.as_str()), (2, "access-2"));
        let lost = store.rotate_session(sid, &rotation).await.expect("written");
        assert_eq!(lost, None, "a second rotation from generation 1 changes nothing");
        let stale = store.renew_session_access(sid, 1, ("access-x", NOW + 990), None).await;
        assert_eq!(stale.expect("written"), None, "generation 1 has moved on");
        assert_eq!(store.session(sid).await.expect("read"), Some(rotated.clone()));
        let renewed = store
            .renew_session_access(sid, 2, ("access-3", NOW + 990), Some(NOW + 90))
            .await
            .expect("written")
            .expect("there");
        assert_eq!((renewed.generation, renewed.last_used), (2, NOW + 90));
        let (read, owner_record) =
            store.session_and_user(sid).await.expect("read").expect("there");
        assert_eq!(read, renewed);
        assert_eq!(owner_record.map(|user| user.username), Some("ada".to_string()));
        store.acknowledge_generations(vec![(sid, 2)]).await.expect("acknowledged");
        assert_eq!(store.acknowledged_generation(sid).await.expect("read"), Some(2));
        assert_eq!(store.user_session_ids(owner).await.expect("read"), vec![sid]);
        store.remove_session(sid, &renewed).await.expect("removed");
        assert_eq!(store.session(sid).await.expect("read"), None);
    }

    /// Ending sessions marks them, denies their access tokens in memory, sets the user's
    /// `not_before` in the same write, and logs both.
    async fn revoking_sessions_ends_them_everywhere_at_once(store: Arc<Store>) {
        let owner = UserId::generate();
        store.create_user(owner, &user("ada", None), None, NOW).await.expect("created");
        let sid = SessionId::generate();
        store.insert_session(sid, &session(owner)).await.expect("stored");
        let mut revocations = [Revocation {
            sid,
            session: session(owner),
            deny: NOW..=NOW + 900,
        }];
        let after = store
            .revoke_sessions(owner, &mut revocations, NOW + 5, AccountChange::RefuseEarlierTokens)
            .await
            .expect("revoked")
            .expect("the user");
        assert_eq!(after.not_before, NOW + 5);
        store.wait_durable().await.expect("durable");
        assert!(store.session(sid).await.expect("read").expect("kept").revoked);
        assert!(store.token_is_revoked(TokenId::generate(), sid, NOW + 900).expect("memory"));
        let logged = logged(&store).await;
        assert!(logged.contains(&after.change(owner)), "{logged:?}");
        assert!(
            logged.iter().any(|change| matches!(change, Change::SessionRevoked { sid: s, .. } if *s == sid)),
            "{logged:?}"
        );
    }

    /// A denied token is refused from memory until its `exp`, logged once.
    async fn a_denied_token_is_refused_from_memory(store: Arc<Store>) {
        let jti = TokenId::generate();
        assert!(store.deny_token(jti, NOW + 300).await.expect("denied"));
        assert!(!store.deny_token(jti, NOW + 300).await.expect("again"), "not new");
        store.wait_durable().await.expect("durable");
        assert!(store.token_is_revoked(jti, SessionId::generate(), NOW + 300).expect("memory"));
        assert!(!store.token_is_revoked(TokenId::generate(), SessionId::generate(), NOW + 300)
            .expect("memory"));
        let logged = logged(&store).await;
        assert_eq!(logged, vec![Change::TokenRevoked { jti, exp: NOW + 300 }]);
    }

    /// Keys and service credentials round-trip, and a key change is logged.
    async fn keys_and_services_round_trip(store: Arc<Store>) {
        let key = KeyRecord {
            alg: "EdDSA".into(),
            private_key: "-----BEGIN PRIVATE KEY-----".into(),
            created_at: NOW,
            signs_from: NOW,
            retired_at: None,
        };
        store.put_signing_key("k1", &key).await.expect("stored");
        assert_eq!(store.signing_keys().await.expect("read"), vec![("k1".to_string(), key)]);
        store.remove_signing_key("k1").await.expect("removed");
        assert!(store.signing_keys().await.expect("read").is_empty());
        assert!(logged(&store).await.contains(&Change::KeysChanged));
        let service = ServiceRecord { name: "billing".into(), secret_digest: [5; 32], created_at: NOW };
        store.put_service("svc", &service).await.expect("stored");
        assert_eq!(store.service("svc").await.expect("read"), Some(service.clone()));
        assert_eq!(store.list_services().await.expect("read"), vec![("svc".to_string(), service)]);
        assert!(store.delete_service("svc").await.expect("deleted"));
        assert!(!store.delete_service("svc").await.expect("again"));
    }

    /// A reader resuming past what was published is told it reads another history.
    async fn a_reader_ahead_of_the_log_is_sent_to_a_snapshot(store: Arc<Store>) {
        let through = store.published_through();
        let ahead = store.changes_after(through + 1_000, 10).await.expect("read");
        assert!(matches!(ahead, ChangesAfter::Ahead { .. }), "{ahead:?}");
    }

    /// The eviction horizon only moves forward.
    async fn the_eviction_horizon_never_moves_back(store: Arc<Store>) {
        store.advance_eviction_horizon(NOW).await.expect("advanced");
        store.advance_eviction_horizon(NOW - 100).await.expect("not back");
        assert_eq!(store.eviction_horizon().await.expect("read"), Some(NOW));
    }

    /// A change to a user or tenant that is not there is `NotFound`, and writes nothing.
    async fn a_change_to_what_is_not_there_is_not_found(store: Arc<Store>) {
        let change = ClaimsChange { plan: Some("pro".into()), ..ClaimsChange::default() };
        let user = store.change_user_claims(UserId::generate(), &change, NOW).await;
        assert!(matches!(user, Err(UserWriteError::NotFound)), "{user:?}");
        let tenant = store
            .change_tenant(TenantId::generate(), &TenantChange::default(), NOW)
            .await;
        assert!(matches!(tenant, Err(TenantWriteError::NotFound)), "{tenant:?}");
        assert!(logged(&store).await.is_empty());
    }

    /// The newest acknowledged generation is kept (an older one does not replace it), a
    /// rotation leaves it alone, and it goes with its session.
    async fn acknowledgements_keep_the_newest_and_go_with_the_session(store: Arc<Store>) {
        let sid = SessionId::generate();
        let record = session(UserId::generate());
        store.insert_session(sid, &record).await.expect("stored");
        assert_eq!(store.acknowledged_generation(sid).await.expect("read"), None);
        store.acknowledge_generations(vec![(sid, 3), (sid, 2)]).await.expect("acknowledged");
        assert_eq!(store.acknowledged_generation(sid).await.expect("read"), Some(3));
        let rotation = Rotation {
            from_generation: 1,
            access_token: "access-2".into(),
            access_expires: NOW + 960,
            at: NOW + 60,
            at_ms: (NOW + 60) * 1000,
        };
        store.rotate_session(sid, &rotation).await.expect("written").expect("rotated");
        assert_eq!(store.acknowledged_generation(sid).await.expect("read"), Some(3));
        store.remove_session(sid, &record).await.expect("removed");
        assert_eq!(store.acknowledged_generation(sid).await.expect("read"), None);
    }

    /// A user's sessions are found by the user, and only theirs.
    async fn a_users_sessions_are_found_by_user(store: Arc<Store>) {
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let mut alices = vec![SessionId::generate(), SessionId::generate()];
        for sid in &alices {
            store.insert_session(*sid, &session(alice)).await.expect("stored");
        }
        let bobs = SessionId::generate();
        store.insert_session(bobs, &session(bob)).await.expect("stored");
        alices.sort_by_key(|sid| *sid.as_bytes());
        let mut found = store.user_session_ids(alice).await.expect("read");
        found.sort_by_key(|sid| *sid.as_bytes());
        assert_eq!(found, alices);
        assert_eq!(store.user_session_ids(bob).await.expect("read"), vec![bobs]);
        store.remove_session(alices[0], &session(alice)).await.expect("removed");
        assert_eq!(store.user_session_ids(alice).await.expect("read"), vec![alices[1]]);
        assert_eq!(store.sessions_held(), 2, "counted in and out");
    }

    /// An eviction pass removes sessions at or past their end and ended invitations past
    /// the retention (their codes with them), and leaves the rest.
    async fn eviction_removes_what_has_ended_and_leaves_the_rest(store: Arc<Store>) {
        let user = UserId::generate();
        let mut sids = Vec::new();
        for expires_at in [NOW + 500, NOW + 1_000, NOW + 1_001] {
            let sid = SessionId::generate();
            let record = SessionRecord { expires_at, ..session(user) };
            store.insert_session(sid, &record).await.expect("stored");
            sids.push(sid);
        }
        let acme = new_tenant(&store, None).await;
        let ended = InvitationRecord::new([1; 32], NOW, NOW + 100);
        store.create_invitation(acme, &ended, NOW).await.expect("invited");
        let live = InvitationRecord::new([2; 32], NOW, NOW + 10_000_000);
        store.create_invitation(acme, &live, NOW).await.expect("invited");

        let report = store.evict_expired(NOW + 1_000, 0).await.expect("a pass");
        assert_eq!((report.sessions_removed, report.invitations_removed), (2, 0));
        assert_eq!(store.session(sids[1]).await.expect("read"), None);
        assert!(store.session(sids[2]).await.expect("read").is_some());
        assert_eq!(store.user_session_ids(user).await.expect("read"), vec![sids[2]]);

        let past_retention = NOW + 100 + super::model::ENDED_RETENTION_SECS;
        let report = store.evict_expired(past_retention, 0).await.expect("a pass");
        assert_eq!(report.invitations_removed, 1);
        let left = store.invitations(acme).await.expect("read").expect("a tenant");
        assert_eq!(left.iter().map(|i| i.id).collect::<Vec<_>>(), vec![live.id]);
        assert_eq!(store.invitation_tenant(&[1; 32], NOW).await.expect("read"), None);
        assert_eq!(store.invitation_tenant(&[2; 32], NOW).await.expect("read"), Some(acme));
    }

    /// An address is unique whatever its case, follows its user through a change, and
    /// leaves with the user.
    async fn an_address_is_unique_case_insensitively_and_moves_with_its_user(store: Arc<Store>) {
        let ada = UserId::generate();
        store.create_user(ada, &user_with_email("ada", "Ada@Example.org"), None, NOW).await
            .expect("created");
        assert_eq!(store.user_id_by_email(&email_key("ada@example.ORG")).await.expect("read"),
            Some(ada));
        let taken = store.create_user(UserId::generate(),
            &user_with_email("bob", "ADA@example.org"), None, NOW).await;
        assert!(matches!(taken, Err(UserWriteError::EmailTaken)), "{taken:?}");
        assert!(store.user_id_by_name(&Username::parse("bob").expect("a name")).await
            .expect("read").is_none(), "a refused user leaves nothing behind");

        let bob = UserId::generate();
        store.create_user(bob, &user("bob", None), None, NOW).await.expect("created");
        let to_ada = ClaimsChange {
            email: Some(Some(EmailAddress::parse("ada@example.org").expect("an address"))),
            ..ClaimsChange::default()
        };
        let refused = store.change_user_claims(bob, &to_ada, NOW + 1).await;
        assert!(matches!(refused, Err(UserWriteError::EmailTaken)), "{refused:?}");

        let moved = ClaimsChange {
            email: Some(Some(EmailAddress::parse("ada@new.example").expect("an address"))),
            ..ClaimsChange::default()
        };
        let changed = store.change_user_claims(ada, &moved, NOW + 2).await.expect("moved");
        assert_eq!((changed.claims_version, changed.email_verified), (2, false));
        assert_eq!(store.user_id_by_email(&email_key("ada@example.org")).await.expect("read"),
            None);
        store.change_user_claims(bob, &to_ada, NOW + 3).await.expect("now free");
        store.delete_user(bob).await.expect("deleted");
        assert_eq!(store.user_id_by_email(&email_key("ada@example.org")).await.expect("read"),
            None);
    }

    /// A queued mail is claimed by one sender at a time, retried after a failure, and
    /// leaves the queue's count once sent.
    async fn a_queued_mail_is_claimed_once_and_recorded(store: Arc<Store>) {
        let ada = UserId::generate();
        store.create_user(ada, &user_with_email("ada", "ada@example.org"), None, NOW).await
            .expect("created");
        let queued = mail(ada, LinkPurpose::VerifyEmail, "ada@example.org", NOW);
        store.queue_mail(&queued, NOW).await.expect("queued");
        store.wait_durable_unlogged().await.expect("durable");
        assert_eq!(store.mail_queue_depth().await.expect("read"), 1);

        let claimed = store.claim_due_mails(NOW, 60, 10).await.expect("claimed");
        assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), vec![queued.id]);
        assert!(store.claim_due_mails(NOW + 59, 60, 10).await.expect("read").is_empty(),
            "a claimed mail is not claimed again within its lease");

        let failed = DeliveryOutcome::Failed { failure: MailFailure::Transient, jitter: 0 };
        let after = store.record_delivery(queued.id, failed, NOW + 1).await.expect("recorded")
            .expect("still there");
        let retry_at = after.next_attempt_at().expect("queued again");
        assert!(retry_at > NOW + 1, "{after:?}");
        assert!(store.claim_due_mails(retry_at - 1, 60, 10).await.expect("read").is_empty());
        let again = store.claim_due_mails(retry_at, 60, 10).await.expect("claimed");
        assert_eq!(again.len(), 1);

        store.record_delivery(queued.id, DeliveryOutcome::Sent, retry_at).await
            .expect("recorded");
        assert_eq!(store.mail_queue_depth().await.expect("read"), 0);
        let sent = store.queued_mail(queued.id).await.expect("read").expect("kept until expiry");
        assert_eq!(sent.next_attempt_at(), None);
        assert!(store.claim_due_mails(NOW + 10_000, 60, 10).await.expect("read").is_empty());
    }

    /// A link is redeemed once, only as the newest of its purpose, before it expires, and
    /// only for the address it was mailed to; verifying bumps `uv` and logs it.
    async fn a_mail_link_is_redeemed_once_for_its_address(store: Arc<Store>) {
        let ada = UserId::generate();
        store.create_user(ada, &user_with_email("ada", "ada@example.org"), None, NOW).await
            .expect("created");
        let first = mail(ada, LinkPurpose::VerifyEmail, "ada@example.org", NOW);
        let second = mail(ada, LinkPurpose::VerifyEmail, "ada@example.org", NOW + 1);
        store.queue_mail(&first, NOW).await.expect("queued");
        store.queue_mail(&second, NOW + 1).await.expect("queued");
        assert_eq!(store.mail_queue_depth().await.expect("read"), 1, "the first is superseded");
        let prove = LinkEffect::ProveAddress;

        let superseded = store.redeem_mail_link(first.id, LinkPurpose::VerifyEmail, &prove, NOW + 2).await;
        assert!(matches!(superseded, Err(MailWriteError::LinkInvalid(_))), "{superseded:?}");
        let other_purpose = store.redeem_mail_link(second.id, LinkPurpose::Magic, &prove, NOW + 2).await;
        assert!(matches!(other_purpose, Err(MailWriteError::LinkInvalid(_))), "{other_purpose:?}");

        let (id, verified) = store.redeem_mail_link(second.id, LinkPurpose::VerifyEmail, &prove, NOW + 3)
            .await.expect("redeemed");
        assert_eq!((id, verified.email_verified, verified.claims_version), (ada, true, 2));
        assert_eq!(logged(&store).await.last(), Some(&verified.change(ada)));
        assert_eq!(store.user_stamp(ada).expect("memory").expect("stamped").claims_version, 2);
        let reused = store.redeem_mail_link(second.id, LinkPurpose::VerifyEmail, &prove, NOW + 4).await;
        assert!(matches!(reused, Err(MailWriteError::LinkInvalid(_))), "{reused:?}");

        let reset = mail(ada, LinkPurpose::ResetPassword, "ada@example.org", NOW + 5);
        store.queue_mail(&reset, NOW + 5).await.expect("queued");
        let expired = store.redeem_mail_link(reset.id, LinkPurpose::ResetPassword,
            &LinkEffect::NewPassword("$argon2id$new".into()), reset.expires_at).await;
        assert!(matches!(expired, Err(MailWriteError::LinkInvalid(_))), "{expired:?}");

        let magic = mail(ada, LinkPurpose::Magic, "ada@example.org", NOW + 6);
        store.queue_mail(&magic, NOW + 6).await.expect("queued");
        let moved = ClaimsChange {
            email: Some(Some(EmailAddress::parse("ada@new.example").expect("an address"))),
            ..ClaimsChange::default()
        };
        store.change_user_claims(ada, &moved, NOW + 7).await.expect("moved");
        let old_address = store.redeem_mail_link(magic.id, LinkPurpose::Magic, &prove, NOW + 8).await;
        assert!(matches!(old_address, Err(MailWriteError::LinkInvalid(_))), "{old_address:?}");
        let unknown = store.redeem_mail_link(crate::domain::MailId::generate(),
            LinkPurpose::Magic, &prove, NOW + 8).await;
        assert!(matches!(unknown, Err(MailWriteError::LinkInvalid(_))), "{unknown:?}");
    }

    /// A reset sets the password and `not_before` with the address proved, in one write.
    async fn a_reset_link_sets_the_password_and_refuses_older_tokens(store: Arc<Store>) {
        let ada = UserId::generate();
        store.create_user(ada, &user_with_email("ada", "ada@example.org"), None, NOW).await
            .expect("created");
        let reset = mail(ada, LinkPurpose::ResetPassword, "ada@example.org", NOW);
        store.queue_mail(&reset, NOW).await.expect("queued");
        let effect = LinkEffect::NewPassword("$argon2id$new".into());
        let (_, after) = store.redeem_mail_link(reset.id, LinkPurpose::ResetPassword, &effect, NOW + 9)
            .await.expect("redeemed");
        assert_eq!(after.password_hash, "$argon2id$new");
        assert_eq!((after.not_before, after.email_verified, after.claims_version), (NOW + 9, true, 2));
        assert_eq!(store.user(ada).await.expect("read"), Some(after.clone()));
        store.wait_durable().await.expect("durable");
        let stamp = store.user_stamp(ada).expect("memory").expect("stamped");
        assert_eq!(stamp.not_before, NOW + 9);
    }

    /// Mail for a user that is gone is refused; a deleted user's mails leave with it.
    async fn mail_leaves_with_its_user(store: Arc<Store>) {
        let gone = mail(UserId::generate(), LinkPurpose::Magic, "x@example.org", NOW);
        let refused = store.queue_mail(&gone, NOW).await;
        assert!(matches!(refused, Err(MailWriteError::UserGone)), "{refused:?}");
        let ada = UserId::generate();
        store.create_user(ada, &user_with_email("ada", "ada@example.org"), None, NOW).await
            .expect("created");
        let queued = mail(ada, LinkPurpose::Magic, "ada@example.org", NOW);
        store.queue_mail(&queued, NOW).await.expect("queued");
        store.delete_user(ada).await.expect("deleted");
        assert_eq!(store.queued_mail(queued.id).await.expect("read"), None);
        assert_eq!(store.mail_queue_depth().await.expect("read"), 0);
    }

    /// Eviction drops mails whose link expired, sent or not, and keeps the rest.
    async fn eviction_drops_mail_past_its_link(store: Arc<Store>) {
        let ada = UserId::generate();
        store.create_user(ada, &user_with_email("ada", "ada@example.org"), None, NOW).await
            .expect("created");
        let early = mail(ada, LinkPurpose::Magic, "ada@example.org", NOW);
        let late = mail(ada, LinkPurpose::VerifyEmail, "ada@example.org", NOW + 1_000);
        store.queue_mail(&early, NOW).await.expect("queued");
        store.queue_mail(&late, NOW + 1_000).await.expect("queued");
        let report = store.evict_expired(early.expires_at, 0).await.expect("a pass");
        assert_eq!(report.mails_removed, 1);
        assert_eq!(store.queued_mail(early.id).await.expect("read"), None);
        assert!(store.queued_mail(late.id).await.expect("read").is_some());
        let prove = LinkEffect::ProveAddress;
        store.redeem_mail_link(late.id, LinkPurpose::VerifyEmail, &prove, NOW + 1_001).await
            .expect("the live link still redeems");
    }
}
