//! `POST /auth/refresh-token` as an RFC 6749 token endpoint: form-encoded refresh
//! (§6) and `client_credentials` (§4.4) grants, client authentication by
//! `client_secret_basic` or `client_secret_post`, §5.1 answers and §5.2 errors (`error` and
//! `error_description` as extension members of the problem), JSON still working, and the
//! discovery document advertising exactly that. A service's token is introspectable and
//! revocable like any other, and dies with its service.
//!
//! One test drives the endpoint with Python's Authlib, a standard OAuth client library
//! (`tests/oauth_client/authlib_client.py`); it is `#[ignore = "needs authlib"]`, run by
//! `.ci/run`, which installs Authlib first.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_no_store, assert_problem, header_str, inactive, jwt_claims, jwt_header, refresh_parts,
    require, run_to_exit, spawn_app_on_issuer, spawn_app_with_admin, token_response, Caller,
    Service, TestApp, Tokens, ADMIN, ADMIN_PASSWORD, PASSWORD,
};

const PYTHON_TIMEOUT: Duration = Duration::from_secs(90);

fn token_request(app: &TestApp) -> RequestBuilder {
    app.client.post(app.url("/auth/refresh-token"))
}

async fn form(app: &TestApp, params: &[(&str, &str)]) -> Response {
    token_request(app)
        .form(params)
        .send()
        .await
        .expect("request sent")
}

/// Asserts a token-endpoint error: the problem with `status` and `code`, carrying §5.2's
/// `error` (equal to `code`) and a non-empty `error_description`. Returns the headers.
async fn assert_oauth_error(resp: Response, status: u16, code: &str) -> reqwest::header::HeaderMap {
    let (headers, body) = assert_problem(resp, status, code).await;
    assert_eq!(body["error"], json!(code), "§5.2 error member: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "§5.2 error_description: {body}"
    );
    headers
}

async fn service(app: &TestApp, admin: &Tokens, name: &str) -> Service {
    app.create_service_ok(&admin.access_token, name).await
}

async fn client_credentials_basic(app: &TestApp, service: &Service) -> Response {
    token_request(app)
        .basic_auth(&service.client_id, Some(&service.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request sent")
}

/// Asserts a §5.1 client_credentials answer and returns its body.
async fn client_token(resp: Response) -> Value {
    assert_no_store(resp.headers(), "a token answer");
    let status = resp.status();
    let body: Value = resp.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], json!("Bearer"), "{body}");
    assert!(body["access_token"].as_str().is_some(), "{body}");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "{body}");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token: {body}"
    );
    assert!(body.get("session_id").is_none(), "no session: {body}");
    body
}

#[tokio::test]
async fn a_form_refresh_grant_rotates_the_pair() {
    let (app, _) = spawn_app_with_admin(|_| {}).await;
    let (_, login) = app.signed_up("alice").await;

    let resp = form(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", login.refresh()),
            // What Authlib sends for a public client that names no client id.
            ("client_id", "None"),
        ],
    )
    .await;

    let tokens = token_response(resp).await;
    let (sid, generation, _) = refresh_parts(tokens.refresh());
    assert_eq!(sid, refresh_parts(login.refresh()).0);
    assert_eq!(generation, 2);
    assert!(tokens.expires_in > 0);
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn json_refresh_keeps_working_and_its_errors_carry_the_oauth_members() {
    let (app, _) = spawn_app_with_admin(|_| {}).await;
    let (_, login) = app.signed_up("alice").await;

    let tokens = token_response(app.refresh(login.refresh()).await).await;
    assert_eq!(refresh_parts(tokens.refresh()).1, 2);

    let resp = app.refresh("not-a-refresh-token").await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    let resp = token_request(&app)
        .header(CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_oauth_error(resp, 400, "invalid_request").await;
    let resp = token_request(&app)
        .header(CONTENT_TYPE, "text/plain")
        .body("refresh_token=x")
        .send()
        .await
        .expect("sent");
    let (_, body) = assert_problem(resp, 415, "unsupported_media_type").await;
    assert_eq!(body["error"], json!("invalid_request"), "{body}");
}

#[tokio::test]
async fn an_unknown_grant_type_is_unsupported_grant_type() {
    let (app, _) = spawn_app_with_admin(|_| {}).await;

    for grant in [
        "password",
        "authorization_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let resp = form(
            &app,
            &[
                ("grant_type", grant),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
        assert_oauth_error(resp, 400, "unsupported_grant_type").await;
    }
}

#[tokio::test]
async fn malformed_form_requests_are_invalid_request() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let (_, login) = app.signed_up("alice").await;
    let svc = service(&app, &admin, "billing").await;

    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("refresh_token", login.refresh())],
        vec![("grant_type", "refresh_token")],
        vec![
            ("grant_type", "refresh_token"),
            ("grant_type", "client_credentials"),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_secret", &svc.client_secret),
        ],
    ];
    for params in cases {
        let resp = form(&app, &params).await;
        assert_oauth_error(resp, 400, "invalid_request").await;
    }
    // Two client authentication methods at once (RFC 6749 §2.3).
    let resp = token_request(&app)
        .basic_auth(&svc.client_id, Some(&svc.client_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", svc.client_id.as_str()),
            ("client_secret", svc.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("sent");
    assert_oauth_error(resp, 400, "invalid_request").await;
    // Nothing was spent.
    token_response(app.refresh(login.refresh()).await).await;
}

#[tokio::test]
async fn a_scope_is_invalid_scope() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let svc = service(&app, &admin, "billing").await;

    let resp = token_request(&app)
        .basic_auth(&svc.client_id, Some(&svc.client_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await
        .expect("sent");

    assert_oauth_error(resp, 400, "invalid_scope").await;
}

#[tokio::test]
async fn a_spent_or_forged_refresh_token_is_invalid_grant() {
    let (app, _) = spawn_app_with_admin(|s| s.tokens.refresh_reuse_grace = Duration::ZERO).await;
    let (_, login) = app.signed_up("alice").await;
    let refresh = |token: &str| {
        let token = token.to_string();
        let app = &app;
        async move {
            form(
                app,
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
        }
    };

    token_response(refresh(login.refresh()).await).await;

    assert_oauth_error(refresh(login.refresh()).await, 400, "invalid_grant").await;
    let forged = crate::helpers::forge_mac(login.refresh());
    assert_oauth_error(refresh(&forged).await, 400, "invalid_grant").await;
    assert_oauth_error(refresh("garbage").await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let svc = service(&app, &admin, "billing").await;

    // Basic: 401 with the Basic challenge (RFC 6749 §5.2).
    let resp = token_request(&app)
        .basic_auth(&svc.client_id, Some("not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("sent");
    let headers = assert_oauth_error(resp, 401, "invalid_client").await;
    assert_eq!(
        header_str(&headers, WWW_AUTHENTICATE.as_str()).as_deref(),
        Some(r#"Basic realm="claimd""#)
    );

    let resp = token_request(&app)
        .basic_auth("svc_unknown", Some(&svc.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("sent");
    assert_oauth_error(resp, 401, "invalid_client").await;

    // client_secret_post, and no credentials at all.
    let wrong = form(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &svc.client_id),
            ("client_secret", "not-the-secret"),
        ],
    )
    .await;
    assert_oauth_error(wrong, 401, "invalid_client").await;
    let none = form(&app, &[("grant_type", "client_credentials")]).await;
    assert_oauth_error(none, 401, "invalid_client").await;

    // A refresh grant needs no credentials, but presented ones must be right.
    let (_, login) = app.signed_up("alice").await;
    let resp = token_request(&app)
        .basic_auth(&svc.client_id, Some("not-the-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", login.refresh()),
        ])
        .send()
        .await
        .expect("sent");
    assert_oauth_error(resp, 401, "invalid_client").await;
}

#[tokio::test]
async fn client_credentials_by_basic_or_post_mint_a_token_for_the_service() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let svc = service(&app, &admin, "billing").await;

    let by_basic = client_token(client_credentials_basic(&app, &svc).await).await;
    let by_post = client_token(
        form(
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &svc.client_id),
                ("client_secret", &svc.client_secret),
            ],
        )
        .await,
    )
    .await;

    for body in [by_basic, by_post] {
        let token = body["access_token"].as_str().expect("access_token");
        let claims = jwt_claims(token);
        assert_eq!(claims["sub"], json!(svc.client_id), "{claims}");
        assert_eq!(claims["client_id"], json!(svc.client_id), "{claims}");
        assert_eq!(claims["aud"], json!("claimd"), "{claims}");
        assert_eq!(claims["iss"], jwt_claims(&admin.access_token)["iss"]);
        assert!(claims.get("sid").is_none(), "no session: {claims}");
        assert!(claims.get("roles").is_none(), "no user claims: {claims}");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            body["expires_in"].as_u64().unwrap()
        );
        assert_eq!(jwt_header(token)["typ"], json!("at+jwt"));
        // It stands for a service: a user's routes refuse it.
        let resp = app.me(token).await;
        crate::helpers::assert_token_error(resp, "token_invalid").await;
    }
}

#[tokio::test]
async fn a_service_token_is_introspectable_and_revocable() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let svc = service(&app, &admin, "billing").await;
    let other = service(&app, &admin, "search").await;
    let body = client_token(client_credentials_basic(&app, &svc).await).await;
    let token = body["access_token"].as_str().expect("access_token");

    let answer = app.introspect_ok(other.caller(), token).await;
    assert_eq!(answer["active"], json!(true), "{answer}");
    assert_eq!(answer["sub"], json!(svc.client_id), "{answer}");
    assert_eq!(answer["client_id"], json!(svc.client_id), "{answer}");
    assert_eq!(answer["token_type"], json!("access_token"), "{answer}");
    assert_eq!(answer["jti"], jwt_claims(token)["jti"], "{answer}");
    let by_admin = app
        .introspect_ok(Caller::Bearer(&admin.access_token), token)
        .await;
    assert_eq!(by_admin["active"], json!(true));

    // Its holder revokes it (RFC 7009): the deny list answers from now on.
    app.revoke_ok(Caller::Anonymous, token).await;

    assert_eq!(app.introspect_ok(other.caller(), token).await, inactive());
    let fresh = client_token(client_credentials_basic(&app, &svc).await).await;
    let fresh = fresh["access_token"].as_str().expect("access_token");
    assert_eq!(
        app.introspect_ok(other.caller(), fresh).await["active"],
        json!(true),
        "only the revoked token is denied"
    );
}

#[tokio::test]
async fn a_deleted_service_gets_no_new_token_and_its_tokens_die() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let svc = service(&app, &admin, "billing").await;
    let body = client_token(client_credentials_basic(&app, &svc).await).await;
    let token = body["access_token"].as_str().expect("access_token");

    let resp = app
        .delete_service(&admin.access_token, &svc.client_id)
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    assert_oauth_error(
        client_credentials_basic(&app, &svc).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(
        app.introspect_ok(Caller::Bearer(&admin.access_token), token)
            .await,
        inactive()
    );
}

#[tokio::test]
async fn discovery_advertises_exactly_the_grants_and_client_auth_methods() {
    let app = spawn_app_on_issuer(|_| {}).await;

    let meta: Value = app
        .openid_configuration()
        .await
        .json()
        .await
        .expect("metadata json");

    assert_eq!(
        meta["grant_types_supported"],
        json!(["refresh_token", "client_credentials"]),
        "{meta}"
    );
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"]),
        "{meta}"
    );
    assert_eq!(
        meta["token_endpoint"],
        json!(format!("{}/auth/refresh-token", app.address))
    );
}

/// RFC 6749 §5.2 says `application/json`, and OAuth client libraries check it: the
/// token endpoint, introspection and revocation answer every error that way, with the
/// problem members and §5.2's `error` beside them.
#[tokio::test]
async fn oauth_endpoint_errors_are_application_json() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let svc = service(&app, &admin, "billing").await;

    let cases = [
        (
            "/auth/refresh-token",
            app.client
                .post(app.url("/auth/refresh-token"))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", "nope")]),
            400,
            "invalid_grant",
        ),
        (
            "/oauth/introspect",
            app.client
                .post(app.url("/oauth/introspect"))
                .basic_auth(&svc.client_id, Some("not-the-secret"))
                .form(&[("token", "x")]),
            401,
            "invalid_client",
        ),
        (
            "/oauth/revoke",
            app.client
                .post(app.url("/oauth/revoke"))
                .basic_auth(&svc.client_id, Some("not-the-secret"))
                .form(&[("token", "x")]),
            401,
            "invalid_client",
        ),
        (
            "/oauth/introspect",
            app.client
                .post(app.url("/oauth/introspect"))
                .basic_auth(&svc.client_id, Some(&svc.client_secret))
                .header(CONTENT_TYPE, "text/plain")
                .body("token=x"),
            415,
            "unsupported_media_type",
        ),
    ];
    for (path, request, status, code) in cases {
        let resp = request.send().await.expect("sent");
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
        assert_eq!(content_type, "application/json", "{path} {code}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["status"], json!(status), "{path}: {body}");
        assert_eq!(body["code"], json!(code), "{path}: {body}");
        let error = if code == "unsupported_media_type" {
            "invalid_request"
        } else {
            code
        };
        assert_eq!(body["error"], json!(error), "{path}: {body}");
    }
    // Everywhere else a problem stays a problem.
    let resp = app.me("garbage").await;
    let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
    assert_eq!(content_type, "application/problem+json");
}

// ---- a standard OAuth client: Python's Authlib ----

fn script() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/oauth_client/authlib_client.py"
    ))
}

fn require_authlib() {
    let ok = Command::new("python3")
        .args(["-c", "import authlib, requests"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require("python3 with Authlib and requests", ok);
}

#[tokio::test]
#[ignore = "needs authlib"]
async fn authlib_refreshes_fetches_client_credentials_and_reads_the_errors() {
    require_authlib();
    let app = spawn_app_on_issuer(|s| {
        s.bootstrap.admin_username = Some(ADMIN.to_string());
        s.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
    })
    .await;
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    let svc = service(&app, &admin, "authlib").await;
    let (_, login) = app.signed_up("alice").await;

    let mut cmd = Command::new("python3");
    cmd.arg(script())
        .args([
            app.address.as_str(),
            login.refresh(),
            svc.client_id.as_str(),
            svc.client_secret.as_str(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY");
    let exit = tokio::task::spawn_blocking(move || run_to_exit(cmd, PYTHON_TIMEOUT))
        .await
        .expect("python3 runs");

    assert_eq!(
        exit.status.and_then(|s| s.code()),
        Some(0),
        "the Authlib script succeeds: {exit:?}"
    );
    // The script prints the rotated refresh token and the service's access token: claimd
    // agrees with what Authlib took from the answers.
    let mut lines = exit.stdout.lines();
    let rotated = lines.next().expect("rotated refresh token line");
    let service_token = lines.next().expect("service token line");
    assert_eq!(refresh_parts(rotated).1, 2, "{exit:?}");
    token_response(app.refresh(rotated).await).await;
    let answer = app
        .introspect_ok(Caller::Bearer(&admin.access_token), service_token)
        .await;
    assert_eq!(answer["client_id"], json!(svc.client_id), "{answer}");
}
