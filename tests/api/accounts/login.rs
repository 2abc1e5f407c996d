//! `POST /auth/login`: the token response, the access token's header and claims, the refresh
//! token's form, and failures that do not tell unknown users from wrong passwords.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, jwt_header, now_unix, refresh_parts, spawn_app, spawn_app_with, token_response,
    PASSWORD,
};

#[tokio::test]
async fn login_returns_a_token_response() {
    let app = spawn_app().await;
    app.register_ok("alice", PASSWORD).await;

    let tokens = token_response(app.login("alice", PASSWORD).await).await;

    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 900, "default access_ttl is 15m");
    assert_eq!(
        tokens.refresh_expires_in,
        Some(30 * 86400),
        "default refresh_ttl is 30d"
    );
    assert!(!tokens.session_id.is_empty());
    assert!(!tokens.access_token.is_empty());
    assert!(tokens.refresh_token.is_some());
}

#[tokio::test]
async fn refresh_token_is_sid_generation_mac_starting_at_generation_one() {
    let app = spawn_app().await;
    app.register_ok("alice", PASSWORD).await;

    let tokens = app.login_ok("alice", PASSWORD).await;

    let (sid, generation, mac) = refresh_parts(tokens.refresh());
    assert_eq!(sid, tokens.session_id);
    assert_eq!(generation, 1);
    assert!(
        mac.len() >= 16,
        "mac looks too short to carry 256 bits: {mac:?}"
    );
}

#[tokio::test]
async fn access_token_header_is_eddsa_at_jwt_with_a_kid() {
    let app = spawn_app().await;
    app.register_ok("alice", PASSWORD).await;

    let tokens = app.login_ok("alice", PASSWORD).await;

    let header = jwt_header(&tokens.access_token);
    assert_eq!(header["alg"], json!("EdDSA"));
    assert_eq!(header["typ"], json!("at+jwt"));
    assert!(
        header["kid"].as_str().is_some_and(|k| !k.is_empty()),
        "{header}"
    );
}

#[tokio::test]
async fn access_token_carries_the_documented_claims() {
    let app = spawn_app().await;
    let user = app.register_ok("alice", PASSWORD).await;
    let before = now_unix();

    let tokens = app.login_ok("alice", PASSWORD).await;

    let claims = tokens.claims();
    assert_eq!(claims["iss"], json!("http://127.0.0.1:8080"));
    assert!(
        claims["aud"] == json!("claimd") || claims["aud"] == json!(["claimd"]),
        "aud: {claims}"
    );
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["sid"], json!(tokens.session_id));
    assert!(
        claims["jti"].as_str().is_some_and(|j| !j.is_empty()),
        "{claims}"
    );
    assert_eq!(claims["roles"], json!([]));
    assert_eq!(claims["plan"], json!("free"));
    assert_eq!(claims["uv"], json!(1));
    assert!(claims["tv"].is_u64(), "tv is a version number: {claims}");
    assert!(
        claims.get("tid").is_none(),
        "no tid without a tenant: {claims}"
    );
    assert!(
        claims.get("attrs").is_none(),
        "attrs omitted when empty: {claims}"
    );
    let iat = claims["iat"].as_u64().expect("iat");
    let exp = claims["exp"].as_u64().expect("exp");
    assert!(
        iat + 5 >= before && iat <= now_unix() + 5,
        "iat {iat} vs now {before}"
    );
    assert_eq!(exp - iat, 900, "exp = iat + access_ttl");
}

#[tokio::test]
async fn access_ttl_setting_drives_exp_and_expires_in() {
    let app = spawn_app_with(|s| s.tokens.access_ttl = Duration::from_secs(120)).await;
    app.register_ok("alice", PASSWORD).await;

    let tokens = app.login_ok("alice", PASSWORD).await;

    assert_eq!(tokens.expires_in, 120);
    let claims = tokens.claims();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        120
    );
}

#[tokio::test]
async fn issuer_and_audience_settings_are_stamped_into_tokens() {
    let app = spawn_app_with(|s| {
        s.tokens.issuer = "https://auth.example.test".into();
        s.tokens.audience = "shop".into();
    })
    .await;
    app.register_ok("alice", PASSWORD).await;

    let claims = app.login_ok("alice", PASSWORD).await.claims();

    assert_eq!(claims["iss"], json!("https://auth.example.test"));
    assert!(
        claims["aud"] == json!("shop") || claims["aud"] == json!(["shop"]),
        "aud: {claims}"
    );
}

#[tokio::test]
async fn each_login_opens_a_new_session() {
    let app = spawn_app().await;
    app.register_ok("alice", PASSWORD).await;

    let first = app.login_ok("alice", PASSWORD).await;
    let second = app.login_ok("alice", PASSWORD).await;

    assert_ne!(first.session_id, second.session_id);
    assert_ne!(first.claims()["jti"], second.claims()["jti"]);
    assert_ne!(first.refresh(), second.refresh());
}

#[tokio::test]
async fn wrong_password_is_401_invalid_credentials() {
    let app = spawn_app().await;
    app.register_ok("alice", PASSWORD).await;

    let resp = app.login("alice", "not the password").await;

    assert_problem(resp, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn unknown_user_is_401_invalid_credentials() {
    let app = spawn_app().await;

    let resp = app.login("nobody", PASSWORD).await;

    assert_problem(resp, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn unknown_user_and_wrong_password_answer_identically() {
    let app = spawn_app().await;
    app.register_ok("alice", PASSWORD).await;

    let wrong = app.login("alice", "not the password").await;
    let unknown = app.login("nobody", "not the password").await;

    assert_eq!(wrong.status(), unknown.status());
    let wrong_ct = wrong.headers().get("content-type").cloned();
    let unknown_ct = unknown.headers().get("content-type").cloned();
    assert_eq!(wrong_ct, unknown_ct);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(
        wrong, unknown,
        "bodies must not reveal whether the user exists"
    );
    let text = wrong.to_string();
    assert!(
        !text.contains("alice") && !text.contains("nobody"),
        "{text}"
    );
}

#[tokio::test]
async fn password_is_case_sensitive() {
    let app = spawn_app().await;
    app.register_ok("alice", "Violet-Tractor-Sings").await;

    let resp = app.login("alice", "violet-tractor-sings").await;

    assert_problem(resp, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn failed_login_issues_nothing() {
    let app = spawn_app().await;
    app.register_ok("alice", PASSWORD).await;

    let resp = app.login("alice", "not the password").await;
    let status = resp.status();
    let text = resp.text().await.unwrap();

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        !text.contains("access_token") && !text.contains("refresh_token"),
        "{text}"
    );
}
