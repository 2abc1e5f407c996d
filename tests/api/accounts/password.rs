//! `POST /me/password`: a new token response for the caller, the old password dead, every
//! other session revoked; a wrong current password changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_problem, assert_token_error, spawn_app, token_response, PASSWORD};

const NEW_PASSWORD: &str = "a brand new passphrase";

#[tokio::test]
async fn change_password_answers_a_working_token_response() {
    let app = spawn_app().await;
    let (user, login) = app.signed_up("alice").await;

    let resp = app
        .change_password(&login.access_token, PASSWORD, NEW_PASSWORD)
        .await;

    let tokens = token_response(resp).await;
    assert!(tokens.refresh_token.is_some(), "{}", tokens.body);
    assert_eq!(tokens.claims()["sub"], user["id"]);
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
    token_response(app.refresh(tokens.refresh()).await).await;
}

#[tokio::test]
async fn after_change_only_the_new_password_logs_in() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .change_password(&login.access_token, PASSWORD, NEW_PASSWORD)
        .await;
    token_response(resp).await;

    assert_problem(
        app.login("alice", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    app.login_ok("alice", NEW_PASSWORD).await;
}

#[tokio::test]
async fn change_password_revokes_every_other_session() {
    let app = spawn_app().await;
    let (_, current) = app.signed_up("alice").await;
    let other = app.login_ok("alice", PASSWORD).await;

    let resp = app
        .change_password(&current.access_token, PASSWORD, NEW_PASSWORD)
        .await;
    let fresh = token_response(resp).await;

    assert_token_error(app.me(&other.access_token).await, "token_revoked").await;
    assert_problem(app.refresh(other.refresh()).await, 400, "invalid_grant").await;
    assert_eq!(app.me(&fresh.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_current_password_is_invalid_credentials_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, current) = app.signed_up("alice").await;
    let other = app.login_ok("alice", PASSWORD).await;

    let resp = app
        .change_password(&current.access_token, "not the password", NEW_PASSWORD)
        .await;

    assert_problem(resp, 401, "invalid_credentials").await;
    app.login_ok("alice", PASSWORD).await;
    assert_problem(
        app.login("alice", NEW_PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(app.me(&other.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&current.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn too_short_new_password_is_invalid_request_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .change_password(&login.access_token, PASSWORD, "short")
        .await;

    assert_problem(resp, 400, "invalid_request").await;
    app.login_ok("alice", PASSWORD).await;
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn too_long_new_password_is_invalid_request() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .change_password(&login.access_token, PASSWORD, &"p".repeat(1025))
        .await;

    assert_problem(resp, 400, "invalid_request").await;
    app.login_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn change_password_without_a_token_is_token_missing() {
    let app = spawn_app().await;
    app.register_ok("alice", PASSWORD).await;

    let resp = app
        .client
        .post(app.url("/me/password"))
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();

    assert_token_error(resp, "token_missing").await;
    app.login_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn change_password_with_a_revoked_token_is_token_revoked() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let resp = app
        .change_password(&login.access_token, PASSWORD, NEW_PASSWORD)
        .await;

    assert_token_error(resp, "token_revoked").await;
    app.login_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn change_password_with_missing_fields_is_invalid_request() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    for body in [
        json!({"current_password": PASSWORD}),
        json!({"new_password": NEW_PASSWORD}),
        json!({}),
    ] {
        let resp = app
            .client
            .post(app.url("/me/password"))
            .bearer_auth(&login.access_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(resp, 400, "invalid_request").await;
    }
    app.login_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn change_password_by_get_is_405() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .request(Method::GET, "/me/password", Some(&login.access_token))
        .await;

    assert_problem(resp, 405, "method_not_allowed").await;
}

/// A password change to a common password is refused like a registration with one, and
/// the old password and every session stay as they were.
#[tokio::test]
async fn changing_to_a_common_password_is_password_too_weak() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .change_password(&login.access_token, PASSWORD, "iloveyou1")
        .await;

    assert_problem(resp, 400, "password_too_weak").await;
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
    assert_eq!(
        app.login("alice", PASSWORD).await.status(),
        StatusCode::OK,
        "the old password still works"
    );
}
