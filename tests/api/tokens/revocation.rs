//! `POST /oauth/revoke` (RFC 7009): form-encoded, 200 whatever the token was. The token's
//! holder needs no credential; a service credential or an admin may revoke too, but a wrong
//! credential is `401 invalid_client` and revokes nothing. An access token goes on the deny
//! list (its session lives on); a refresh token ends its whole session, access tokens
//! included. A forged refresh token revokes nobody.

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    assert_invalid_client, assert_problem, assert_token_error, forge_mac, inactive, spawn_app,
    spawn_app_with_admin, tamper_signature, token_response, Caller, TestApp, Tokens, PASSWORD,
};

/// Asserts every access token of `session` is `token_revoked` and its refresh token is
/// `invalid_grant`.
async fn assert_session_ended(app: &TestApp, access_tokens: &[&str], refresh: &str) {
    for token in access_tokens {
        assert_token_error(app.me(token).await, "token_revoked").await;
        assert_token_error(app.verify(Some(token)).await, "token_revoked").await;
    }
    assert_problem(app.refresh(refresh).await, 400, "invalid_grant").await;
}

async fn assert_works(app: &TestApp, session: &Tokens) {
    assert_eq!(app.me(&session.access_token).await.status(), StatusCode::OK);
}

// ---- access tokens ----

#[tokio::test]
async fn holder_revokes_its_access_token_without_a_credential() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;
    assert_works(&app, &alice).await;

    app.revoke_ok(Caller::Anonymous, &alice.access_token).await;

    assert_token_error(app.me(&alice.access_token).await, "token_revoked").await;
    assert_token_error(app.verify(Some(&alice.access_token)).await, "token_revoked").await;
}

#[tokio::test]
async fn revoked_access_token_introspects_inactive() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let service = app.create_service_ok(&admin.access_token, "api").await;
    let (_, alice) = app.signed_up("alice").await;

    app.revoke_ok(Caller::Anonymous, &alice.access_token).await;

    let body = app
        .introspect_ok(service.caller(), &alice.access_token)
        .await;
    assert_eq!(body, inactive());
}

#[tokio::test]
async fn revoking_an_access_token_leaves_its_session_alive() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;
    let sibling = token_response(app.refresh_with_access(&alice.access_token).await).await;

    app.revoke_ok(Caller::Anonymous, &alice.access_token).await;

    assert_token_error(app.me(&alice.access_token).await, "token_revoked").await;
    assert_works(&app, &sibling).await;
    let rotated = token_response(app.refresh(alice.refresh()).await).await;
    assert_works(&app, &rotated).await;
}

#[tokio::test]
async fn revoking_an_access_token_twice_is_still_200() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;

    app.revoke_ok(Caller::Anonymous, &alice.access_token).await;
    app.revoke_ok(Caller::Anonymous, &alice.access_token).await;

    assert_token_error(app.me(&alice.access_token).await, "token_revoked").await;
}

#[tokio::test]
async fn revoking_one_users_token_leaves_other_users_alone() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;
    let (_, bob) = app.signed_up("bob").await;
    let alice_again = app.login_ok("alice", PASSWORD).await;

    app.revoke_ok(Caller::Anonymous, &alice.access_token).await;

    assert_works(&app, &bob).await;
    assert_works(&app, &alice_again).await;
}

// ---- refresh tokens ----

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;
    let sibling = token_response(app.refresh_with_access(&alice.access_token).await).await;
    let other = app.login_ok("alice", PASSWORD).await;

    app.revoke_ok(Caller::Anonymous, alice.refresh()).await;

    assert_session_ended(
        &app,
        &[&alice.access_token, &sibling.access_token],
        alice.refresh(),
    )
    .await;
    assert_works(&app, &other).await;
    token_response(app.refresh(other.refresh()).await).await;
}

#[tokio::test]
async fn revoked_session_introspects_inactive() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let service = app.create_service_ok(&admin.access_token, "api").await;
    let (_, alice) = app.signed_up("alice").await;

    app.revoke_ok(Caller::Anonymous, alice.refresh()).await;

    assert_eq!(
        app.introspect_ok(service.caller(), alice.refresh()).await,
        inactive()
    );
    assert_eq!(
        app.introspect_ok(service.caller(), &alice.access_token)
            .await,
        inactive()
    );
}

#[tokio::test]
async fn revoking_a_rotated_pairs_refresh_token_ends_the_session() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;
    let rotated = token_response(app.refresh(alice.refresh()).await).await;

    app.revoke_ok(Caller::Anonymous, rotated.refresh()).await;

    assert_session_ended(
        &app,
        &[&alice.access_token, &rotated.access_token],
        rotated.refresh(),
    )
    .await;
}

#[tokio::test]
async fn a_forged_refresh_token_revokes_nobody() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;

    app.revoke_ok(Caller::Anonymous, &forge_mac(alice.refresh()))
        .await;

    assert_works(&app, &alice).await;
    token_response(app.refresh(alice.refresh()).await).await;
}

#[tokio::test]
async fn a_tampered_access_token_revokes_nobody() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;
    let forged = tamper_signature(&alice.access_token);

    app.revoke_ok(Caller::Anonymous, &forged).await;

    assert_works(&app, &alice).await;
}

// ---- hints and garbage ----

#[tokio::test]
async fn a_wrong_hint_still_revokes() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;
    let (_, bob) = app.signed_up("bob").await;

    let resp = app
        .revoke_hinted(Caller::Anonymous, &alice.access_token, "refresh_token")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app
        .revoke_hinted(Caller::Anonymous, bob.refresh(), "access_token")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    assert_token_error(app.me(&alice.access_token).await, "token_revoked").await;
    assert_session_ended(&app, &[&bob.access_token], bob.refresh()).await;
}

#[tokio::test]
async fn invalid_tokens_and_unknown_hints_are_200() {
    let app = spawn_app().await;

    for token in ["garbage", "not.a.jwt", "a.b.c.d", "0190.1.abcdef"] {
        app.revoke_ok(Caller::Anonymous, token).await;
    }
    let resp = app
        .revoke_hinted(Caller::Anonymous, "garbage", "no_such_hint")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

// ---- who may revoke ----

#[tokio::test]
async fn a_service_credential_may_revoke() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let service = app.create_service_ok(&admin.access_token, "api").await;
    let (_, alice) = app.signed_up("alice").await;
    let (_, bob) = app.signed_up("bob").await;

    app.revoke_ok(service.caller(), &alice.access_token).await;
    app.revoke_ok(service.caller(), bob.refresh()).await;

    assert_token_error(app.me(&alice.access_token).await, "token_revoked").await;
    assert_session_ended(&app, &[&bob.access_token], bob.refresh()).await;
}

#[tokio::test]
async fn an_admin_bearer_may_revoke() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;

    app.revoke_ok(Caller::Bearer(&admin.access_token), alice.refresh())
        .await;

    assert_session_ended(&app, &[&alice.access_token], alice.refresh()).await;
    assert_eq!(
        app.me(&admin.access_token).await.status(),
        StatusCode::OK,
        "the admin revoked alice's session, not its own"
    );
}

#[tokio::test]
async fn a_wrong_credential_is_invalid_client_and_revokes_nothing() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let service = app.create_service_ok(&admin.access_token, "api").await;
    let (_, alice) = app.signed_up("alice").await;

    let resp = app
        .revoke(
            Caller::Basic(&service.client_id, "not-the-secret"),
            &alice.access_token,
        )
        .await;
    assert_invalid_client(resp).await;
    let resp = app
        .revoke(Caller::Basic("no-such-client", "whatever"), alice.refresh())
        .await;
    assert_invalid_client(resp).await;

    assert_works(&app, &alice).await;
    token_response(app.refresh(alice.refresh()).await).await;
}

#[tokio::test]
async fn json_body_is_415_and_revokes_nothing() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;

    let resp = app
        .client
        .post(app.url("/oauth/revoke"))
        .header(CONTENT_TYPE, "application/json")
        .body(json!({"token": alice.access_token}).to_string())
        .send()
        .await
        .expect("request sent");

    assert_problem(resp, 415, "unsupported_media_type").await;
    assert_works(&app, &alice).await;
}
