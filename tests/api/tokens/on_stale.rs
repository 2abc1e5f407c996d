//! `tokens.on_stale`: with `reject` (the default) a stale token is `401 token_stale`; with
//! `reissue` verification itself refreshes it — the request succeeds with the current claims
//! and the answer carries a re-minted token in `X-Refreshed-Token`, never longer-lived than
//! its session. Revoked stays revoked either way.

use std::time::Duration;

use claimd::config::OnStale;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    assert_token_error, header_str, json_response, jwt_claims, refreshed_response, spawn_app,
    spawn_app_on_clock, spawn_app_with, spawn_app_with_admin, TestApp, Tokens, PASSWORD,
    REFRESHED_TOKEN,
};

async fn reissuing_app(refresh_ttl: Duration) -> TestApp {
    spawn_app_with(|s| {
        s.tokens.on_stale = OnStale::Reissue;
        s.tokens.refresh_ttl = refresh_ttl;
    })
    .await
}

/// Two sessions of alice; the first changes the plan, so the second's token is stale.
async fn stale_second_session(app: &TestApp) -> Tokens {
    let (_, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;
    refreshed_response(
        app.patch_me(&first.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;
    second
}

#[tokio::test]
async fn reissue_answers_a_stale_token_with_current_claims_and_a_new_token() {
    let app = reissuing_app(Duration::from_secs(3600)).await;
    let stale = stale_second_session(&app).await;
    let session_end = stale.claims()["iat"].as_u64().unwrap() + 3600;

    let resp = app.me(&stale.access_token).await;

    let refreshed = header_str(resp.headers(), REFRESHED_TOKEN);
    let body = json_response(resp, 200).await;
    assert_eq!(body["user"]["plan"], json!("premium"));
    assert_eq!(body["user"]["claims_version"], json!(2));
    assert_eq!(
        body["claims"]["plan"],
        json!("premium"),
        "current claims: {body}"
    );
    assert_eq!(body["claims"]["uv"], json!(2), "current claims: {body}");
    let token = refreshed.expect("a stale token is answered with X-Refreshed-Token");
    assert_ne!(token, stale.access_token);
    let claims = jwt_claims(&token);
    assert_eq!(claims["sid"], json!(stale.session_id), "same session");
    assert_eq!(claims["sub"], stale.claims()["sub"]);
    assert_eq!(claims["plan"], json!("premium"));
    assert_eq!(claims["uv"], json!(2));
    assert!(
        claims["exp"].as_u64().unwrap() <= session_end + 1,
        "exp {} outlives the session ending near {session_end}",
        claims["exp"]
    );
}

#[tokio::test]
async fn reissued_token_passes_without_another_refresh() {
    let app = reissuing_app(Duration::from_secs(3600)).await;
    let stale = stale_second_session(&app).await;
    let resp = app.me(&stale.access_token).await;
    let token = header_str(resp.headers(), REFRESHED_TOKEN).expect("X-Refreshed-Token");
    assert_eq!(resp.status(), StatusCode::OK);

    let again = app.me(&token).await;

    assert!(
        header_str(again.headers(), REFRESHED_TOKEN).is_none(),
        "a current token needs no refresh"
    );
    let body = json_response(again, 200).await;
    assert_eq!(body["claims"]["plan"], json!("premium"));
}

#[tokio::test]
async fn reissue_never_outlives_a_short_session() {
    let app = spawn_app_on_clock(|s| {
        s.tokens.on_stale = OnStale::Reissue;
        s.tokens.access_ttl = Duration::from_secs(60);
        s.tokens.refresh_ttl = Duration::from_secs(60);
    })
    .await;
    let (_, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;
    let login_iat = second.claims()["iat"].as_u64().unwrap();
    // Two seconds on, an uncapped exp would be at least login_iat + 62.
    app.advance_until_past(login_iat + 2, 100);
    refreshed_response(
        app.patch_me(&first.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    let resp = app.me(&second.access_token).await;

    assert_eq!(resp.status(), StatusCode::OK);
    let token = header_str(resp.headers(), REFRESHED_TOKEN).expect("X-Refreshed-Token");
    let exp = jwt_claims(&token)["exp"].as_u64().unwrap();
    assert!(
        exp <= login_iat + 60 + 1,
        "exp {exp} outlives the session, which ends near {}",
        login_iat + 60
    );
}

#[tokio::test]
async fn reissue_leaves_a_current_token_alone() {
    let app = reissuing_app(Duration::from_secs(3600)).await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app.me(&login.access_token).await;

    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header_str(resp.headers(), REFRESHED_TOKEN).is_none());
}

#[tokio::test]
async fn reissue_does_not_revive_a_revoked_token() {
    let app = reissuing_app(Duration::from_secs(3600)).await;
    let stale = stale_second_session(&app).await;
    assert_eq!(
        app.logout(&stale.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let resp = app.me(&stale.access_token).await;

    assert!(header_str(resp.headers(), REFRESHED_TOKEN).is_none());
    assert_token_error(resp, "token_revoked").await;
}

#[tokio::test]
async fn reissue_does_not_revive_a_disabled_users_token() {
    let (app, admin) = spawn_app_with_admin(|s| s.tokens.on_stale = OnStale::Reissue).await;
    let (alice, login) = app.signed_up("alice").await;
    app.admin_patch_user_ok(
        &admin.access_token,
        alice["id"].as_str().unwrap(),
        &json!({"disabled": true}),
    )
    .await;

    let resp = app.me(&login.access_token).await;

    assert!(header_str(resp.headers(), REFRESHED_TOKEN).is_none());
    assert_token_error(resp, "token_revoked").await;
}

#[tokio::test]
async fn reissue_follows_a_tenant_change() {
    let (app, admin) = spawn_app_with_admin(|s| s.tokens.on_stale = OnStale::Reissue).await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let tenant_id = tenant["id"].as_str().unwrap();
    let resp = app
        .register_in_tenant(&admin.access_token, "alice", PASSWORD, tenant_id)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let login = app.login_ok("alice", PASSWORD).await;
    let resp = app
        .patch_tenant(
            &admin.access_token,
            tenant_id,
            &json!({"plan": "enterprise"}),
        )
        .await;
    json_response(resp, 200).await;

    let resp = app.me(&login.access_token).await;

    assert_eq!(resp.status(), StatusCode::OK);
    let token = header_str(resp.headers(), REFRESHED_TOKEN).expect("X-Refreshed-Token");
    let claims = jwt_claims(&token);
    assert_eq!(claims["tid"], json!(tenant_id));
    assert_eq!(claims["tv"], json!(2));
    assert_eq!(claims["sid"], json!(login.session_id));
}

#[tokio::test]
async fn reject_is_the_default_and_answers_token_stale_without_a_new_token() {
    let app = spawn_app().await;
    let stale = stale_second_session(&app).await;

    let resp = app.me(&stale.access_token).await;

    assert!(
        header_str(resp.headers(), REFRESHED_TOKEN).is_none(),
        "reject mints nothing"
    );
    assert_token_error(resp, "token_stale").await;
}

#[tokio::test]
async fn current_token_gets_no_refreshed_header_by_default() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app.me(&login.access_token).await;

    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header_str(resp.headers(), REFRESHED_TOKEN).is_none());
}
