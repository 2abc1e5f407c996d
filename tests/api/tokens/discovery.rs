//! `GET /.well-known/openid-configuration`: metadata built from `tokens.issuer`, so a standard
//! JWT library pointed at the issuer finds the JWKS by itself. Proven with an independent
//! implementation in another language: `tests/support/verify_with_pyjwt.py` (Python's PyJWT
//! and its JWKS client) verifies claimd's tokens before and after a key rotation, for EdDSA,
//! ES256 and RS256, and refuses a tampered one.
//!
//! The PyJWT tests are `#[ignore = "needs python3 with PyJWT"]`, run by
//! `cargo test -- --include-ignored` (`.ci/run` installs PyJWT first), where a missing
//! PyJWT fails them.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use claimd::config::SigningAlgorithm;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    header_str, jwks_kids, jwt_claims, jwt_kid, require, run_to_exit, spawn_app_on_issuer,
    spawn_app_with, tamper_signature, Exit, TestApp, Tokens, ADMIN, ADMIN_PASSWORD, PASSWORD,
};

const PYTHON_TIMEOUT: Duration = Duration::from_secs(60);

async fn metadata(app: &TestApp) -> Value {
    let resp = app.openid_configuration().await;
    let status = resp.status();
    let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
    let text = resp.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "openid-configuration: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "json content type, got {content_type:?}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("metadata is json ({e}): {text}"))
}

/// Every algorithm listed under a `*_signing_alg_values_supported` key.
fn advertised_algs(metadata: &Value) -> Vec<String> {
    metadata
        .as_object()
        .expect("metadata object")
        .iter()
        .filter(|(k, _)| k.ends_with("signing_alg_values_supported"))
        .flat_map(|(_, v)| v.as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn metadata_names_the_issuer_and_every_endpoint() {
    let app = spawn_app_on_issuer(|_| {}).await;
    let issuer = app.address.clone();

    let meta = metadata(&app).await;

    assert_eq!(meta["issuer"], json!(issuer), "{meta}");
    assert_eq!(
        meta["jwks_uri"],
        json!(format!("{issuer}/.well-known/jwks.json")),
        "{meta}"
    );
    assert_eq!(
        meta["revocation_endpoint"],
        json!(format!("{issuer}/oauth/revoke")),
        "{meta}"
    );
    assert_eq!(
        meta["introspection_endpoint"],
        json!(format!("{issuer}/oauth/introspect")),
        "{meta}"
    );
    let token_endpoint = meta["token_endpoint"]
        .as_str()
        .unwrap_or_else(|| panic!("token_endpoint is a string: {meta}"));
    assert!(
        token_endpoint.starts_with(&format!("{issuer}/")),
        "token_endpoint is on the issuer: {meta}"
    );
    let algs = advertised_algs(&meta);
    assert!(
        algs.contains(&"EdDSA".to_string()),
        "EdDSA advertised: {meta}"
    );
    assert!(
        !algs.iter().any(|a| a.eq_ignore_ascii_case("none")),
        "none is never advertised: {meta}"
    );
}

#[tokio::test]
async fn metadata_urls_lead_to_the_live_endpoints() {
    let app = spawn_app_on_issuer(|_| {}).await;
    let meta = metadata(&app).await;

    let jwks_uri = meta["jwks_uri"].as_str().expect("jwks_uri");
    let resp = app.client.get(jwks_uri).send().await.expect("GET jwks_uri");
    assert_eq!(resp.status(), StatusCode::OK);
    let jwks: Value = resp.json().await.expect("jwks json");
    assert_eq!(jwks, app.jwks_ok().await);
    assert_eq!(jwks_kids(&jwks).len(), 1);

    let (_, alice) = app.signed_up("alice").await;
    assert_eq!(
        alice.claims()["iss"],
        meta["issuer"],
        "tokens carry the issuer"
    );
    let introspect = meta["introspection_endpoint"].as_str().expect("url");
    let resp = app
        .client
        .post(introspect)
        .form(&[("token", alice.access_token.as_str())])
        .send()
        .await
        .expect("POST introspection_endpoint");
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "the introspection endpoint is there and wants a credential"
    );
    let revoke = meta["revocation_endpoint"].as_str().expect("url");
    let resp = app
        .client
        .post(revoke)
        .form(&[("token", alice.access_token.as_str())])
        .send()
        .await
        .expect("POST revocation_endpoint");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        app.me(&alice.access_token).await.status(),
        StatusCode::UNAUTHORIZED,
        "the revocation endpoint revoked"
    );
}

/// With `tokens.issuer` unset, the issuer is the address claimd really listens on (port 0
/// resolved), not a default that goes wrong the moment `server.bind` changes.
#[tokio::test]
async fn an_unset_issuer_is_the_address_claimd_listens_on() {
    let app = spawn_app_with(|s| s.tokens.issuer = String::new()).await;
    let (_, tokens) = app.signed_up("carol").await;

    let meta = metadata(&app).await;

    assert_eq!(meta["issuer"], json!(app.address), "{meta}");
    assert_eq!(
        meta["jwks_uri"],
        json!(format!("{}/.well-known/jwks.json", app.address))
    );
    assert_eq!(jwt_claims(&tokens.access_token)["iss"], json!(app.address));
    assert_eq!(app.me(&tokens.access_token).await.status(), 200);
}

#[tokio::test]
async fn metadata_follows_the_configured_issuer_and_algorithm() {
    let app = spawn_app_with(|s| {
        s.tokens.issuer = "https://auth.example.com".to_string();
        s.tokens.algorithm = SigningAlgorithm::ES256;
    })
    .await;

    let meta = metadata(&app).await;

    assert_eq!(meta["issuer"], json!("https://auth.example.com"));
    assert_eq!(
        meta["jwks_uri"],
        json!("https://auth.example.com/.well-known/jwks.json")
    );
    let algs = advertised_algs(&meta);
    assert!(algs.contains(&"ES256".to_string()), "{meta}");
    assert!(
        !algs.contains(&"EdDSA".to_string()),
        "only the configured alg: {meta}"
    );
    let (_, alice) = app.signed_up("alice").await;
    assert_eq!(alice.claims()["iss"], json!("https://auth.example.com"));
}

// ---- an independent verifier: PyJWT ----

fn script() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/verify_with_pyjwt.py"
    ))
}

/// Fails the test unless python3 with PyJWT (and its crypto backend) is here.
fn require_pyjwt() {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import jwt, cryptography; from jwt import PyJWKClient",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require("python3 with PyJWT and cryptography", ok);
}

/// Runs the PyJWT script (off the async runtime, bounded).
async fn pyjwt(issuer: &str, token: &str, audience: &str) -> Exit {
    let mut cmd = Command::new("python3");
    cmd.arg(script())
        .args([issuer, token, audience])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY");
    tokio::task::spawn_blocking(move || run_to_exit(cmd, PYTHON_TIMEOUT))
        .await
        .expect("python3 runs")
}

/// Asserts PyJWT verified `tokens`' access token and printed its `sub`.
async fn assert_pyjwt_verifies(app: &TestApp, tokens: &Tokens, what: &str) {
    let exit = pyjwt(&app.address, &tokens.access_token, "claimd").await;
    assert_eq!(
        exit.status.and_then(|s| s.code()),
        Some(0),
        "PyJWT verifies {what}: {exit:?}"
    );
    assert_eq!(
        exit.stdout.trim(),
        tokens.claims()["sub"].as_str().unwrap(),
        "{what}"
    );
}

/// Asserts PyJWT refused the token itself (exit 1), not the discovery (exit 2).
async fn assert_pyjwt_refuses(app: &TestApp, token: &str, audience: &str, what: &str) {
    let exit = pyjwt(&app.address, token, audience).await;
    assert_eq!(
        exit.status.and_then(|s| s.code()),
        Some(1),
        "PyJWT refuses {what}: {exit:?}"
    );
}

#[tokio::test]
#[ignore = "needs python3 with PyJWT"]
async fn pyjwt_verifies_tokens_before_and_after_a_rotation() {
    require_pyjwt();
    let app = spawn_app_on_issuer(|s| {
        s.bootstrap.admin_username = Some(ADMIN.to_string());
        s.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
    })
    .await;
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    let (_, before) = app.signed_up("alice").await;
    assert_pyjwt_verifies(&app, &before, "a token before rotation").await;

    let resp = app
        .rotate_keys(&admin.access_token, Some(&json!({"now": true})))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    let after = app.login_ok("alice", PASSWORD).await;
    assert_ne!(
        jwt_kid(&after.access_token),
        jwt_kid(&before.access_token),
        "the new token carries the new kid"
    );
    assert_pyjwt_verifies(&app, &after, "a new-key token with a fresh client").await;
    assert_pyjwt_verifies(&app, &before, "the old-key token after rotation").await;
    assert_pyjwt_refuses(
        &app,
        &tamper_signature(&after.access_token),
        "claimd",
        "a tampered token",
    )
    .await;
    assert_pyjwt_refuses(
        &app,
        &after.access_token,
        "another-service",
        "a wrong audience",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs python3 with PyJWT"]
async fn pyjwt_verifies_es256_and_rs256_tokens() {
    require_pyjwt();
    for alg in [SigningAlgorithm::ES256, SigningAlgorithm::RS256] {
        let app = spawn_app_on_issuer(|s| s.tokens.algorithm = alg).await;
        let (_, alice) = app.signed_up("alice").await;
        let header = crate::helpers::jwt_header(&alice.access_token);
        assert_eq!(header["alg"], json!(alg.as_str()));

        assert_pyjwt_verifies(&app, &alice, alg.as_str()).await;
        assert_pyjwt_refuses(
            &app,
            &tamper_signature(&alice.access_token),
            "claimd",
            &format!("a tampered {} token", alg.as_str()),
        )
        .await;
    }
}

/// Discovery says only what is served (no response types, no ID-token algorithms: there
/// is no authorization endpoint and no ID token yet) and publishes the audience claimd
/// puts in `aud`, which a verifier must check.
#[tokio::test]
async fn metadata_advertises_only_what_is_served_and_names_the_audience() {
    let app = spawn_app_with(|s| s.tokens.audience = "orders-api".to_string()).await;

    let meta = metadata(&app).await;

    assert_eq!(meta["audience"], json!("orders-api"), "{meta}");
    for absent in [
        "response_types_supported",
        "id_token_signing_alg_values_supported",
        "authorization_endpoint",
        "userinfo_endpoint",
    ] {
        assert!(meta.get(absent).is_none(), "{absent} is not served: {meta}");
    }
    let (_, alice) = app.signed_up("alice").await;
    assert_eq!(alice.claims()["aud"], meta["audience"]);
}
