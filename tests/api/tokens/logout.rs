//! `POST /auth/logout` and `/auth/logout-all`: revocation takes effect on the very next
//! request, for access and refresh tokens alike, and reaches exactly the sessions it names.
//! The caller proves which session it holds with an access token of it (even one that has
//! expired, if it is genuine and unrevoked) or with one of its refresh tokens.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    assert_problem, assert_token_error, forge_mac, spawn_app, spawn_app_on_clock, token_response,
    PASSWORD,
};

#[tokio::test]
async fn logout_is_204_and_revokes_the_access_token_at_once() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app.logout(&login.access_token).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.text().await.unwrap().is_empty(), "204 has no body");
    assert_token_error(app.me(&login.access_token).await, "token_revoked").await;
}

#[tokio::test]
async fn logout_revokes_the_session_refresh_token() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_problem(app.refresh(login.refresh()).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn logout_revokes_every_access_token_of_the_session() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let remint = token_response(app.refresh_with_access(&login.access_token).await).await;
    let rotated = token_response(app.refresh(login.refresh()).await).await;

    assert_eq!(
        app.logout(&remint.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_token_error(app.me(&login.access_token).await, "token_revoked").await;
    assert_token_error(app.me(&rotated.access_token).await, "token_revoked").await;
    assert_problem(app.refresh(rotated.refresh()).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn logout_leaves_other_sessions_alone() {
    let app = spawn_app().await;
    let (_, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;

    assert_eq!(
        app.logout(&first.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_eq!(app.me(&second.access_token).await.status(), StatusCode::OK);
    token_response(app.refresh(second.refresh()).await).await;
}

#[tokio::test]
async fn second_logout_with_the_same_token_is_token_revoked() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let again = app.logout(&login.access_token).await;

    assert_token_error(again, "token_revoked").await;
}

#[tokio::test]
async fn logout_without_a_token_is_token_missing() {
    let app = spawn_app().await;

    let resp = app.request(Method::POST, "/auth/logout", None).await;

    assert_token_error(resp, "token_missing").await;
}

#[tokio::test]
async fn logout_with_a_garbage_token_is_token_invalid() {
    let app = spawn_app().await;

    let resp = app.logout("not.a.jwt").await;

    assert_token_error(resp, "token_invalid").await;
}

#[tokio::test]
async fn user_can_log_in_again_after_logout() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let again = app.login_ok("alice", PASSWORD).await;

    assert_ne!(again.session_id, login.session_id);
    assert_eq!(app.me(&again.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_all_revokes_every_session_of_the_user() {
    let app = spawn_app().await;
    let (_, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;

    let resp = app.logout_all(&first.access_token).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for session in [&first, &second] {
        assert_token_error(app.me(&session.access_token).await, "token_revoked").await;
        assert_problem(app.refresh(session.refresh()).await, 400, "invalid_grant").await;
    }
}

#[tokio::test]
async fn logout_all_leaves_other_users_alone() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;
    let (_, bob) = app.signed_up("bob").await;

    assert_eq!(
        app.logout_all(&alice.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_eq!(app.me(&bob.access_token).await.status(), StatusCode::OK);
    token_response(app.refresh(bob.refresh()).await).await;
}

#[tokio::test]
async fn login_after_logout_all_works_at_once() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    assert_eq!(
        app.logout_all(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let again = app.login_ok("alice", PASSWORD).await;

    assert_eq!(app.me(&again.access_token).await.status(), StatusCode::OK);
    token_response(app.refresh(again.refresh()).await).await;
}

#[tokio::test]
async fn logout_all_without_a_token_is_token_missing() {
    let app = spawn_app().await;

    let resp = app.request(Method::POST, "/auth/logout-all", None).await;

    assert_token_error(resp, "token_missing").await;
}

#[tokio::test]
async fn logout_by_get_is_405() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .request(Method::GET, "/auth/logout", Some(&login.access_token))
        .await;

    assert_problem(resp, 405, "method_not_allowed").await;
    // And it did not log anyone out.
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_with_an_expired_access_token_ends_its_session() {
    let app = spawn_app_on_clock(|_| {}).await;
    let (_, login) = app.signed_up("alice").await;
    app.advance(Duration::from_secs(3600));
    assert_token_error(app.me(&login.access_token).await, "token_expired").await;

    let resp = app.logout(&login.access_token).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_problem(app.refresh(login.refresh()).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn logout_all_with_an_expired_access_token_ends_every_session() {
    let app = spawn_app_on_clock(|_| {}).await;
    let (_, first) = app.signed_up("alice").await;
    let second = token_response(app.login("alice", PASSWORD).await).await;
    app.advance(Duration::from_secs(3600));

    let resp = app.logout_all(&first.access_token).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_problem(app.refresh(first.refresh()).await, 400, "invalid_grant").await;
    assert_problem(app.refresh(second.refresh()).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn an_expired_token_whose_session_was_revoked_proves_nothing() {
    let app = spawn_app_on_clock(|_| {}).await;
    let (_, login) = app.signed_up("alice").await;
    let other = token_response(app.login("alice", PASSWORD).await).await;
    app.advance(Duration::from_secs(2));
    assert_eq!(
        app.logout_all(&other.access_token).await.status(),
        StatusCode::NO_CONTENT
    );
    app.advance(Duration::from_secs(1200));

    // Issued before the user's not_before: refused as revoked, as it would be if valid.
    assert_token_error(app.logout(&login.access_token).await, "token_revoked").await;
}

#[tokio::test]
async fn logout_with_the_refresh_token_in_the_body_ends_its_session() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .post_json("/auth/logout", &json!({ "refresh_token": login.refresh() }))
        .await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_problem(app.refresh(login.refresh()).await, 400, "invalid_grant").await;
    assert_token_error(app.me(&login.access_token).await, "token_revoked").await;
}

#[tokio::test]
async fn a_forged_refresh_token_ends_nothing() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .post_json(
            "/auth/logout",
            &json!({ "refresh_token": forge_mac(login.refresh()) }),
        )
        .await;

    assert_problem(resp, 400, "invalid_grant").await;
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(login.refresh()).await.status(),
        StatusCode::OK,
        "the real session lives on"
    );
}

#[tokio::test]
async fn a_garbage_bearer_falls_back_to_the_refresh_token_it_came_with() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth("not.a.token")
        .json(&json!({ "refresh_token": login.refresh() }))
        .send()
        .await
        .expect("sent");

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_problem(app.refresh(login.refresh()).await, 400, "invalid_grant").await;
}
