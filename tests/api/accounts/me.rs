//! `GET /me`: the caller's user record and the claims of the token it presented.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_no_secret_fields, assert_token_error, spawn_app, PASSWORD};

#[tokio::test]
async fn me_returns_the_user_and_the_token_claims() {
    let app = spawn_app().await;
    let (user, login) = app.signed_up("alice").await;

    let resp = app.me(&login.access_token).await;

    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["id"], user["id"]);
    assert_eq!(body["user"]["username"], json!("alice"));
    assert_eq!(body["user"]["plan"], json!("free"));
    assert_eq!(body["user"]["roles"], json!([]));
    assert_eq!(body["user"]["claims_version"], json!(1));
    assert_eq!(body["user"]["disabled"], json!(false));
    let token_claims = login.claims();
    let claims = &body["claims"];
    for name in [
        "sub", "sid", "jti", "iat", "exp", "roles", "plan", "uv", "tv", "iss",
    ] {
        assert_eq!(claims[name], token_claims[name], "claim {name}: {body}");
    }
}

#[tokio::test]
async fn me_never_exposes_the_password_hash() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let text = app.me(&login.access_token).await.text().await.unwrap();

    assert!(
        !text.contains("$argon2") && !text.contains(PASSWORD),
        "{text}"
    );
    assert_no_secret_fields(&serde_json::from_str(&text).unwrap());
}

#[tokio::test]
async fn me_answers_for_the_token_holder_only() {
    let app = spawn_app().await;
    let (alice, alice_login) = app.signed_up("alice").await;
    let (bob, bob_login) = app.signed_up("bob").await;

    let as_alice: Value = app
        .me(&alice_login.access_token)
        .await
        .json()
        .await
        .unwrap();
    let as_bob: Value = app.me(&bob_login.access_token).await.json().await.unwrap();

    assert_eq!(as_alice["user"]["id"], alice["id"]);
    assert_eq!(as_bob["user"]["id"], bob["id"]);
}

#[tokio::test]
async fn me_without_a_token_is_token_missing() {
    let app = spawn_app().await;

    let resp = app.request(Method::GET, "/me", None).await;

    assert_token_error(resp, "token_missing").await;
}

#[tokio::test]
async fn me_with_a_refresh_token_as_bearer_is_token_invalid() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app.me(login.refresh()).await;

    assert_token_error(resp, "token_invalid").await;
}
