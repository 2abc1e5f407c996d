//! `GET /verify`, forward-auth for reverse proxies: the token from `Authorization: Bearer` or
//! the `access_token` cookie; a 200 whose `X-Auth-*` headers come only from the verified token
//! (never echoed from the request, the username percent-encoded), or the 401 problem for a
//! stale, revoked, expired, missing or invalid token. With `on_stale = "reissue"` a stale
//! token passes with its current claims and `X-Refreshed-Token`.

use std::time::Duration;

use claimd::config::OnStale;
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_no_store, assert_token_error, header_str, json_response, jwt_claims, refreshed_response,
    spawn_app, spawn_app_on_clock, spawn_app_with, spawn_app_with_admin, tamper_signature, Caller,
    Tokens, PASSWORD, REFRESHED_TOKEN,
};

const IDENTITY_HEADERS: [&str; 5] = [
    "x-auth-user",
    "x-auth-username",
    "x-auth-tenant",
    "x-auth-roles",
    "x-auth-plan",
];

/// Asserts a 200 with `Cache-Control: no-store`; returns the headers.
async fn assert_passes(resp: Response) -> HeaderMap {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "/verify lets it pass; body: {text}");
    assert_no_store(&headers, "a /verify answer");
    headers
}

/// Asserts the 401 problem with `code` and that no identity header leaked into it.
async fn assert_refused(resp: Response, code: &str) {
    for name in IDENTITY_HEADERS {
        assert!(
            resp.headers().get(name).is_none(),
            "a refusal carries no {name}: {:?}",
            resp.headers()
        );
    }
    assert_token_error(resp, code).await;
}

/// `x-auth-roles` for a user without roles: empty or absent, never anything else.
fn assert_no_roles(headers: &HeaderMap) {
    let roles = header_str(headers, "x-auth-roles");
    assert!(
        roles.as_deref().is_none_or(str::is_empty),
        "no roles: x-auth-roles empty or absent, got {roles:?}"
    );
}

fn sub(tokens: &Tokens) -> String {
    tokens.claims()["sub"]
        .as_str()
        .expect("sub is a string")
        .to_string()
}

#[tokio::test]
async fn bearer_token_passes_with_identity_headers() {
    let app = spawn_app().await;
    let (user, login) = app.signed_up("alice").await;

    let headers = assert_passes(app.verify(Some(&login.access_token)).await).await;

    assert_eq!(header_str(&headers, "x-auth-user"), Some(sub(&login)));
    assert_eq!(
        header_str(&headers, "x-auth-user"),
        user["id"].as_str().map(String::from)
    );
    assert_eq!(
        header_str(&headers, "x-auth-username").as_deref(),
        Some("alice")
    );
    assert_eq!(header_str(&headers, "x-auth-plan").as_deref(), Some("free"));
    assert_eq!(
        header_str(&headers, "x-auth-tenant"),
        None,
        "no tenant, no x-auth-tenant"
    );
    assert_no_roles(&headers);
}

#[tokio::test]
async fn access_token_cookie_passes_like_a_bearer_token() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let cookie = format!("theme=dark; access_token={}; lang=en", login.access_token);

    let headers = assert_passes(app.verify_with(Method::GET, &[("cookie", &cookie)]).await).await;

    assert_eq!(header_str(&headers, "x-auth-user"), Some(sub(&login)));
    assert_eq!(
        header_str(&headers, "x-auth-username").as_deref(),
        Some("alice")
    );
}

#[tokio::test]
async fn revoked_token_in_the_cookie_is_refused() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );
    let cookie = format!("access_token={}", login.access_token);

    let resp = app.verify_with(Method::GET, &[("cookie", &cookie)]).await;

    assert_refused(resp, "token_revoked").await;
}

#[tokio::test]
async fn garbage_in_the_cookie_is_token_invalid() {
    let app = spawn_app().await;

    let resp = app
        .verify_with(Method::GET, &[("cookie", "access_token=not.a.jwt")])
        .await;

    assert_refused(resp, "token_invalid").await;
}

#[tokio::test]
async fn verify_answers_any_method() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let bearer = format!("Bearer {}", login.access_token);

    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        let resp = app
            .verify_with(method.clone(), &[("authorization", &bearer)])
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{method} /verify");
        assert_eq!(
            header_str(resp.headers(), "x-auth-user"),
            Some(sub(&login)),
            "{method} /verify"
        );
    }
    let resp = app.verify_with(Method::POST, &[]).await;
    assert_refused(resp, "token_missing").await;
}

#[tokio::test]
async fn username_is_percent_encoded_utf8_of_the_canonical_name() {
    let app = spawn_app().await;
    app.register_ok("José", PASSWORD).await;
    let login = app.login_ok("josé", PASSWORD).await;

    let headers = assert_passes(app.verify(Some(&login.access_token)).await).await;

    assert_eq!(
        header_str(&headers, "x-auth-username").as_deref(),
        Some("jos%C3%A9")
    );
}

#[tokio::test]
async fn tenant_and_roles_are_forwarded() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let tenant_id = tenant["id"].as_str().expect("tenant id").to_string();
    let resp = app
        .register_in_tenant(&admin.access_token, "alice", PASSWORD, &tenant_id)
        .await;
    let user = json_response(resp, 201).await["user"].clone();
    let id = user["id"].as_str().expect("user id");
    app.admin_patch_user_ok(
        &admin.access_token,
        id,
        &json!({"roles": ["editor", "billing"], "plan": "pro"}),
    )
    .await;
    let login = app.login_ok("alice", PASSWORD).await;

    let headers = assert_passes(app.verify(Some(&login.access_token)).await).await;

    assert_eq!(header_str(&headers, "x-auth-user").as_deref(), Some(id));
    assert_eq!(
        header_str(&headers, "x-auth-tenant").as_deref(),
        Some(tenant_id.as_str())
    );
    assert_eq!(
        header_str(&headers, "x-auth-roles").as_deref(),
        Some("editor,billing")
    );
    assert_eq!(header_str(&headers, "x-auth-plan").as_deref(), Some("pro"));
    assert_eq!(login.claims()["tid"], json!(tenant_id));
}

#[tokio::test]
async fn client_sent_identity_headers_are_never_echoed() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let bearer = format!("Bearer {}", login.access_token);

    let resp = app
        .verify_with(
            Method::GET,
            &[
                ("authorization", &bearer),
                ("x-auth-user", "evil"),
                ("x-auth-username", "root"),
                ("x-auth-tenant", "evil-corp"),
                ("x-auth-roles", "admin"),
                ("x-auth-plan", "enterprise"),
            ],
        )
        .await;

    let headers = assert_passes(resp).await;
    for name in IDENTITY_HEADERS {
        let all: Vec<_> = headers.get_all(name).iter().collect();
        assert!(all.len() <= 1, "{name} appears once at most: {all:?}");
    }
    assert_eq!(header_str(&headers, "x-auth-user"), Some(sub(&login)));
    assert_eq!(
        header_str(&headers, "x-auth-username").as_deref(),
        Some("alice")
    );
    assert_eq!(header_str(&headers, "x-auth-tenant"), None);
    assert_no_roles(&headers);
    assert_eq!(header_str(&headers, "x-auth-plan").as_deref(), Some("free"));
}

#[tokio::test]
async fn client_sent_identity_headers_without_a_token_are_not_echoed() {
    let app = spawn_app().await;

    let resp = app
        .verify_with(Method::GET, &[("x-auth-user", "evil")])
        .await;

    assert_refused(resp, "token_missing").await;
}

#[tokio::test]
async fn missing_token_is_token_missing() {
    let app = spawn_app().await;

    assert_refused(app.verify(None).await, "token_missing").await;
}

#[tokio::test]
async fn garbage_token_is_token_invalid() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let tampered = tamper_signature(&login.access_token);

    assert_refused(app.verify(Some("not.a.jwt")).await, "token_invalid").await;
    assert_refused(app.verify(Some(&tampered)).await, "token_invalid").await;
}

#[tokio::test]
async fn revoked_token_is_token_revoked() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    assert_passes(app.verify(Some(&login.access_token)).await).await;

    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_refused(app.verify(Some(&login.access_token)).await, "token_revoked").await;
}

#[tokio::test]
async fn token_revoked_through_oauth_revoke_is_token_revoked() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    assert_passes(app.verify(Some(&login.access_token)).await).await;

    app.revoke_ok(Caller::Anonymous, &login.access_token).await;

    assert_refused(app.verify(Some(&login.access_token)).await, "token_revoked").await;
}

#[tokio::test]
async fn disabled_user_is_token_revoked() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let (user, login) = app.signed_up("alice").await;
    assert_passes(app.verify(Some(&login.access_token)).await).await;

    app.admin_patch_user_ok(
        &admin.access_token,
        user["id"].as_str().unwrap(),
        &json!({"disabled": true}),
    )
    .await;

    assert_refused(app.verify(Some(&login.access_token)).await, "token_revoked").await;
}

#[tokio::test]
async fn stale_token_is_token_stale() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    assert_passes(app.verify(Some(&login.access_token)).await).await;

    let (_, fresh) = refreshed_response(
        app.patch_me(&login.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    assert_refused(app.verify(Some(&login.access_token)).await, "token_stale").await;
    let headers = assert_passes(app.verify(Some(&fresh)).await).await;
    assert_eq!(
        header_str(&headers, "x-auth-plan").as_deref(),
        Some("premium")
    );
}

#[tokio::test]
async fn expired_token_is_token_expired() {
    let app = spawn_app_on_clock(|s| {
        s.tokens.access_ttl = Duration::from_secs(1);
        s.tokens.leeway = Duration::from_secs(0);
    })
    .await;
    let (_, login) = app.signed_up("alice").await;
    let exp = login.claims()["exp"].as_u64().unwrap();

    app.advance_until_past(exp, 1100);

    assert_refused(app.verify(Some(&login.access_token)).await, "token_expired").await;
}

#[tokio::test]
async fn reissue_lets_a_stale_token_pass_with_current_claims_and_a_new_token() {
    let app = spawn_app_with(|s| s.tokens.on_stale = OnStale::Reissue).await;
    let (_, login) = app.signed_up("alice").await;
    let other = app.login_ok("alice", PASSWORD).await;
    refreshed_response(
        app.patch_me(&login.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    let headers = assert_passes(app.verify(Some(&other.access_token)).await).await;

    assert_eq!(header_str(&headers, "x-auth-user"), Some(sub(&other)));
    assert_eq!(
        header_str(&headers, "x-auth-plan").as_deref(),
        Some("premium"),
        "the current plan, not the stale token's"
    );
    let token =
        header_str(&headers, REFRESHED_TOKEN).expect("a stale token passes with X-Refreshed-Token");
    let claims: Value = jwt_claims(&token);
    assert_eq!(claims["plan"], json!("premium"));
    assert_eq!(claims["sid"], json!(other.session_id), "same session");
    let again = assert_passes(app.verify(Some(&token)).await).await;
    assert_eq!(
        header_str(&again, REFRESHED_TOKEN),
        None,
        "a current token needs no reissue"
    );
}

#[tokio::test]
async fn reissue_still_refuses_a_revoked_token() {
    let app = spawn_app_with(|s| s.tokens.on_stale = OnStale::Reissue).await;
    let (_, login) = app.signed_up("alice").await;
    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_refused(app.verify(Some(&login.access_token)).await, "token_revoked").await;
}
