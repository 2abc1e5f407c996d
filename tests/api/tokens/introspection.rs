//! `POST /oauth/introspect` (RFC 7662): form-encoded, authenticated by a service credential
//! (HTTP Basic) or an admin's bearer token. An active access token is described by its
//! claims; a current refresh token by its session; anything inactive — expired, revoked,
//! forged, garbage, stale (unless `on_stale = "reissue"`), a dead session's or an old
//! generation's refresh token — by exactly `{"active":false}`.

use std::time::Duration;

use claimd::config::OnStale;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_invalid_client, assert_problem, inactive, json_response, refreshed_response,
    spawn_app_with_admin, spawn_app_with_admin_on_clock, tamper_signature, token_response, Caller,
    Service, TestApp, Tokens, PASSWORD,
};

/// An app with an admin and a service credential.
async fn app_with_service(
    tweak: impl FnOnce(&mut claimd::config::Settings),
) -> (TestApp, Tokens, Service) {
    let (app, admin) = spawn_app_with_admin(tweak).await;
    let service = app
        .create_service_ok(&admin.access_token, "resource-server")
        .await;
    (app, admin, service)
}

/// Asserts the introspection of an access token `token` describes it, field by field.
fn assert_describes_access_token(body: &Value, token: &Tokens, username: &str) {
    let claims = token.claims();
    assert_eq!(body["active"], json!(true), "{body}");
    assert_eq!(body["token_type"], json!("access_token"), "{body}");
    assert_eq!(body["username"], json!(username), "{body}");
    for claim in [
        "iss", "sub", "aud", "exp", "iat", "jti", "sid", "roles", "plan", "uv", "tv",
    ] {
        assert!(
            !claims[claim].is_null(),
            "the token carries {claim}: {claims}"
        );
        assert_eq!(body[claim], claims[claim], "{claim}: {body}");
    }
    assert_eq!(body["sid"], json!(token.session_id), "{body}");
}

fn with_content_type(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: String,
) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(path))
        .header(CONTENT_TYPE, content_type)
        .body(body)
}

// ---- active answers ----

#[tokio::test]
async fn active_access_token_is_described_by_its_claims() {
    let (app, _, service) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;

    let body = app
        .introspect_ok(service.caller(), &alice.access_token)
        .await;

    assert_describes_access_token(&body, &alice, "alice");
    assert_eq!(body["iss"], json!("http://127.0.0.1:8080"));
    assert_eq!(body["aud"], json!("claimd"));
    assert_eq!(body["roles"], json!([]));
    assert_eq!(body["plan"], json!("free"));
    assert!(body.get("tid").is_none(), "no tenant, no tid: {body}");
    assert!(
        body.get("attrs").is_none(),
        "empty attrs are omitted: {body}"
    );
}

#[tokio::test]
async fn tenant_and_attrs_appear_when_present() {
    let (app, admin, service) = app_with_service(|_| {}).await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let tenant_id = tenant["id"].as_str().unwrap().to_string();
    let user = json_response(
        app.register_in_tenant(&admin.access_token, "alice", PASSWORD, &tenant_id)
            .await,
        201,
    )
    .await["user"]
        .clone();
    app.admin_patch_user_ok(
        &admin.access_token,
        user["id"].as_str().unwrap(),
        &json!({"attrs": {"region": "eu", "seats": 3}, "roles": ["editor"]}),
    )
    .await;
    let alice = app.login_ok("alice", PASSWORD).await;

    let body = app
        .introspect_ok(service.caller(), &alice.access_token)
        .await;

    assert_describes_access_token(&body, &alice, "alice");
    assert_eq!(body["tid"], json!(tenant_id), "{body}");
    assert_eq!(body["attrs"], json!({"region": "eu", "seats": 3}), "{body}");
    assert_eq!(body["roles"], json!(["editor"]), "{body}");
    assert_eq!(body["uv"], alice.claims()["uv"]);
    assert_eq!(body["tv"], alice.claims()["tv"]);
}

#[tokio::test]
async fn admin_bearer_may_introspect() {
    let (app, admin, _) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;

    let body = app
        .introspect_ok(Caller::Bearer(&admin.access_token), &alice.access_token)
        .await;

    assert_describes_access_token(&body, &alice, "alice");
}

#[tokio::test]
async fn current_refresh_token_is_described_by_its_session() {
    let (app, _, service) = app_with_service(|s| {
        s.tokens.refresh_ttl = Duration::from_secs(3600);
    })
    .await;
    let (user, alice) = app.signed_up("alice").await;

    let body = app.introspect_ok(service.caller(), alice.refresh()).await;

    assert_eq!(body["active"], json!(true), "{body}");
    assert_eq!(body["token_type"], json!("refresh_token"), "{body}");
    assert_eq!(body["sub"], user["id"], "{body}");
    assert_eq!(body["sid"], json!(alice.session_id), "{body}");
    let iat = body["iat"]
        .as_u64()
        .unwrap_or_else(|| panic!("iat: {body}"));
    let exp = body["exp"]
        .as_u64()
        .unwrap_or_else(|| panic!("exp: {body}"));
    let login_iat = alice.claims()["iat"].as_u64().unwrap();
    assert!(
        iat.abs_diff(login_iat) <= 2,
        "iat is the session's start: {body}"
    );
    assert!(
        exp.abs_diff(iat + 3600) <= 2,
        "exp is the session's end (refresh_ttl 1h): {body}"
    );
    // Introspection is a read: the refresh token still rotates afterwards.
    token_response(app.refresh(alice.refresh()).await).await;
}

#[tokio::test]
async fn a_wrong_hint_still_finds_the_token() {
    let (app, _, service) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;

    let resp = app
        .introspect_hinted(service.caller(), &alice.access_token, "refresh_token")
        .await;
    let body = json_response(resp, 200).await;
    assert_describes_access_token(&body, &alice, "alice");

    let resp = app
        .introspect_hinted(service.caller(), alice.refresh(), "access_token")
        .await;
    let body = json_response(resp, 200).await;
    assert_eq!(body["active"], json!(true), "{body}");
    assert_eq!(body["token_type"], json!("refresh_token"), "{body}");

    let resp = app
        .introspect_hinted(service.caller(), &alice.access_token, "no_such_hint")
        .await;
    let body = json_response(resp, 200).await;
    assert_eq!(
        body["active"],
        json!(true),
        "an unknown hint is ignored: {body}"
    );
}

#[tokio::test]
async fn reissue_makes_a_stale_token_active_with_the_current_claims() {
    let (app, _, service) = app_with_service(|s| s.tokens.on_stale = OnStale::Reissue).await;
    let (_, alice) = app.signed_up("alice").await;
    let other = app.login_ok("alice", PASSWORD).await;
    refreshed_response(
        app.patch_me(&alice.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    let body = app
        .introspect_ok(service.caller(), &other.access_token)
        .await;

    assert_eq!(body["active"], json!(true), "{body}");
    assert_eq!(body["plan"], json!("premium"), "the current plan: {body}");
    let old_uv = other.claims()["uv"].as_u64().unwrap();
    assert_eq!(body["uv"], json!(old_uv + 1), "the current uv: {body}");
    assert_eq!(body["sid"], json!(other.session_id), "{body}");
    assert_eq!(body["jti"], other.claims()["jti"], "{body}");
}

// ---- inactive answers ----

#[tokio::test]
async fn garbage_and_forged_tokens_are_exactly_inactive() {
    let (app, _, service) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;
    let forged = tamper_signature(&alice.access_token);
    let forged_refresh = crate::helpers::forge_mac(alice.refresh());

    for token in [
        "garbage",
        "not.a.jwt",
        forged.as_str(),
        forged_refresh.as_str(),
    ] {
        let body = app.introspect_ok(service.caller(), token).await;
        assert_eq!(body, inactive(), "token {token:?}");
    }
}

#[tokio::test]
async fn expired_access_token_is_exactly_inactive() {
    let (app, admin) = spawn_app_with_admin_on_clock(|s| {
        s.tokens.access_ttl = Duration::from_secs(1);
        s.tokens.leeway = Duration::from_secs(0);
    })
    .await;
    let service = app
        .create_service_ok(&admin.access_token, "resource-server")
        .await;
    let (_, alice) = app.signed_up("alice").await;
    let exp = alice.claims()["exp"].as_u64().unwrap();

    app.advance_until_past(exp, 1100);

    let body = app
        .introspect_ok(service.caller(), &alice.access_token)
        .await;
    assert_eq!(body, inactive());
}

#[tokio::test]
async fn revoked_access_token_is_exactly_inactive() {
    let (app, _, service) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;
    assert_eq!(
        app.introspect_ok(service.caller(), &alice.access_token)
            .await["active"],
        json!(true)
    );

    assert_eq!(
        app.logout(&alice.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let body = app
        .introspect_ok(service.caller(), &alice.access_token)
        .await;
    assert_eq!(body, inactive());
}

#[tokio::test]
async fn disabled_users_token_is_exactly_inactive() {
    let (app, admin, service) = app_with_service(|_| {}).await;
    let (user, alice) = app.signed_up("alice").await;

    app.admin_patch_user_ok(
        &admin.access_token,
        user["id"].as_str().unwrap(),
        &json!({"disabled": true}),
    )
    .await;

    let body = app
        .introspect_ok(service.caller(), &alice.access_token)
        .await;
    assert_eq!(body, inactive());
    let body = app.introspect_ok(service.caller(), alice.refresh()).await;
    assert_eq!(body, inactive(), "a disabled user's refresh token");
}

#[tokio::test]
async fn stale_access_token_is_exactly_inactive_with_reject() {
    let (app, _, service) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;

    let (_, fresh) = refreshed_response(
        app.patch_me(&alice.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    let body = app
        .introspect_ok(service.caller(), &alice.access_token)
        .await;
    assert_eq!(body, inactive(), "the stale token");
    let body = app.introspect_ok(service.caller(), &fresh).await;
    assert_eq!(body["active"], json!(true), "the fresh token: {body}");
    assert_eq!(body["plan"], json!("premium"), "{body}");
}

#[tokio::test]
async fn refresh_token_of_a_revoked_session_is_exactly_inactive() {
    let (app, _, service) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;
    assert_eq!(
        app.logout(&alice.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let body = app.introspect_ok(service.caller(), alice.refresh()).await;

    assert_eq!(body, inactive());
}

#[tokio::test]
async fn old_refresh_generation_is_exactly_inactive() {
    let (app, _, service) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;
    let rotated = token_response(app.refresh(alice.refresh()).await).await;

    let body = app.introspect_ok(service.caller(), alice.refresh()).await;
    assert_eq!(body, inactive(), "the previous generation");

    let body = app.introspect_ok(service.caller(), rotated.refresh()).await;
    assert_eq!(
        body["active"],
        json!(true),
        "the current generation: {body}"
    );
    assert_eq!(body["token_type"], json!("refresh_token"), "{body}");
    // Introspecting the old generation is not a reuse: the session lives on.
    token_response(app.refresh(rotated.refresh()).await).await;
}

// ---- who may ask, and how ----

#[tokio::test]
async fn no_credential_is_invalid_client() {
    let (app, _, _) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;

    let resp = app.introspect(Caller::Anonymous, &alice.access_token).await;

    assert_invalid_client(resp).await;
}

#[tokio::test]
async fn a_wrong_secret_or_unknown_client_is_invalid_client() {
    let (app, _, service) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;

    let wrong_secret = app
        .introspect(
            Caller::Basic(&service.client_id, "not-the-secret"),
            &alice.access_token,
        )
        .await;
    assert_invalid_client(wrong_secret).await;
    let unknown = app
        .introspect(
            Caller::Basic("no-such-client", &service.client_secret),
            &alice.access_token,
        )
        .await;
    assert_invalid_client(unknown).await;
    let empty = app
        .introspect(Caller::Basic("", ""), &alice.access_token)
        .await;
    assert_invalid_client(empty).await;
}

async fn introspect_with_authorization(
    app: &TestApp,
    value: &str,
    token: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/introspect"))
        .header("authorization", value)
        .form(&[("token", token)])
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn malformed_basic_credentials_are_invalid_client() {
    let (app, _, _) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;

    // Not base64; base64 of "foo" (no colon).
    for value in ["Basic !!!not-base64!!!", "Basic Zm9v"] {
        let resp = introspect_with_authorization(&app, value, &alice.access_token).await;
        assert_invalid_client(resp).await;
    }
}

/// RFC 6749 §5.2: a client that tried to authenticate and failed is `invalid_client`, with
/// a challenge of the scheme this endpoint takes — not a Bearer token error.
#[tokio::test]
async fn bare_basic_and_unknown_schemes_are_invalid_client() {
    let (app, _, _) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;

    for value in ["Basic", "Digest username=\"svc\""] {
        let resp = introspect_with_authorization(&app, value, &alice.access_token).await;
        assert_invalid_client(resp).await;
    }
}

#[tokio::test]
async fn deleted_credential_is_invalid_client() {
    let (app, admin, service) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;
    assert_eq!(
        app.delete_service(&admin.access_token, &service.client_id)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    let resp = app.introspect(service.caller(), &alice.access_token).await;

    assert_invalid_client(resp).await;
}

#[tokio::test]
async fn a_non_admin_bearer_may_not_introspect() {
    let (app, _, _) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;
    let (_, bob) = app.signed_up("bob").await;

    let resp = app
        .introspect(Caller::Bearer(&bob.access_token), &alice.access_token)
        .await;

    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status == 401 || status == 403,
        "a user's token is no introspection credential: {status} {text}"
    );
    assert!(!text.contains("\"active\""), "nothing is told: {text}");
}

#[tokio::test]
async fn json_body_is_415() {
    let (app, _, service) = app_with_service(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;

    let resp = with_content_type(
        &app,
        "/oauth/introspect",
        "application/json",
        json!({"token": alice.access_token}).to_string(),
    )
    .basic_auth(&service.client_id, Some(&service.client_secret))
    .send()
    .await
    .expect("request sent");

    assert_problem(resp, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn missing_token_parameter_is_invalid_request() {
    let (app, _, service) = app_with_service(|_| {}).await;

    let resp = app
        .post_form(
            "/oauth/introspect",
            service.caller(),
            &[("token_type_hint", "access_token")],
        )
        .await;

    assert_problem(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn introspect_by_get_is_405() {
    let (app, _, service) = app_with_service(|_| {}).await;

    let resp = app
        .client
        .get(app.url("/oauth/introspect"))
        .basic_auth(&service.client_id, Some(&service.client_secret))
        .send()
        .await
        .expect("request sent");

    assert_problem(resp, 405, "method_not_allowed").await;
}
