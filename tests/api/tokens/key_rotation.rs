//! Signing-key rotation in stages: `POST /admin/keys/rotate`, `claimd keys rotate` and
//! `keys.rotate_every` add a key that is in the JWKS `keys.publish_ahead` before it signs (at
//! once with `now`), so a verifier's cached JWKS always knows the `kid` of a new token. Old
//! keys verify until their last token expires and then leave the JWKS; refresh tokens do not
//! depend on signing keys; HS256 secrets never appear in the JWKS.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use claimd::config::SigningAlgorithm;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, assert_token_error, claimd_command, init_store, jwks_kids, jwt_kid, now_unix,
    run_to_exit, spawn_app_with_admin, spawn_app_with_admin_on_clock, tamper_signature,
    token_response, workdir, ClaimdProcess, TestApp, PASSWORD,
};

fn kid_set(jwks: &Value) -> BTreeSet<String> {
    jwks_kids(jwks).into_iter().collect()
}

fn set(kids: &[&str]) -> BTreeSet<String> {
    kids.iter().map(|k| k.to_string()).collect()
}

fn kid_of(key: &Value) -> String {
    key["kid"].as_str().expect("key.kid").to_string()
}

/// Verifies `token` against `jwks` (a document fetched earlier: a verifier's cache).
fn verify_with(jwks: &Value, token: &str, alg: Algorithm) -> Value {
    let set: JwkSet = serde_json::from_value(jwks.clone()).expect("JWKS parses as a key set");
    let kid = jwt_kid(token);
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("the JWKS holds kid {kid}: {jwks}"));
    let key = DecodingKey::from_jwk(jwk).expect("JWK is a usable key");
    let mut validation = Validation::new(alg);
    validation.set_audience(&["claimd"]);
    validation.leeway = 0;
    decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("token verifies with the JWKS key {kid}: {e}"))
        .claims
}

async fn assert_me_ok(app: &TestApp, token: &str, what: &str) {
    let resp = app.me(token).await;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{what}: {text}");
}

#[tokio::test]
async fn rotation_publishes_the_key_first_and_signs_after_publish_ahead() {
    let (app, admin) = spawn_app_with_admin_on_clock(|s| {
        s.keys.publish_ahead = Duration::from_secs(2);
    })
    .await;
    let old_kid = jwt_kid(&admin.access_token);
    assert_eq!(kid_set(&app.jwks_ok().await), set(&[&old_kid]));
    let before = app.now();

    let key = app.rotate_keys_ok(&admin.access_token, false).await;

    let new_kid = kid_of(&key);
    assert_ne!(new_kid, old_kid);
    assert_eq!(key["alg"], json!("EdDSA"));
    let signs_from = key["signs_from"].as_u64().unwrap();
    assert!(
        signs_from + 1 >= before + 2 && signs_from <= app.now() + 3,
        "signs_from is publish_ahead (2s) from now: {key}, now {before}"
    );
    let cached = app.jwks_ok().await;
    assert_eq!(
        kid_set(&cached),
        set(&[&old_kid, &new_kid]),
        "the new key is published at once"
    );
    let (_, early) = app.signed_up("alice").await;
    assert_eq!(
        jwt_kid(&early.access_token),
        old_kid,
        "during publish_ahead the old key still signs"
    );

    app.advance_until_past(signs_from, 1000);

    let late = app.login_ok("alice", PASSWORD).await;
    assert_eq!(
        jwt_kid(&late.access_token),
        new_kid,
        "after publish_ahead the new key signs"
    );
    // A verifier that cached the JWKS right after the rotation knows the new kid.
    let claims = verify_with(&cached, &late.access_token, Algorithm::EdDSA);
    assert_eq!(claims["sid"], json!(late.session_id));
    assert_me_ok(&app, &early.access_token, "old-key token after the switch").await;
    assert_me_ok(&app, &late.access_token, "new-key token").await;
    assert_me_ok(&app, &admin.access_token, "pre-rotation token").await;
}

#[tokio::test]
async fn rotation_now_signs_with_the_new_key_at_once() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let (_, before) = app.signed_up("alice").await;
    let old_kid = jwt_kid(&before.access_token);

    let key = app.rotate_keys_ok(&admin.access_token, true).await;

    let new_kid = kid_of(&key);
    assert_ne!(new_kid, old_kid);
    assert!(
        key["signs_from"].as_u64().unwrap() <= now_unix() + 1,
        "with now it signs from now: {key}"
    );
    let after = app.login_ok("alice", PASSWORD).await;
    assert_eq!(jwt_kid(&after.access_token), new_kid);
    let jwks = app.jwks_ok().await;
    assert_eq!(kid_set(&jwks), set(&[&old_kid, &new_kid]));
    verify_with(&jwks, &before.access_token, Algorithm::EdDSA);
    verify_with(&jwks, &after.access_token, Algorithm::EdDSA);
    assert_me_ok(&app, &before.access_token, "old-key token").await;
    assert_me_ok(&app, &after.access_token, "new-key token").await;
    // The old key is a verifying key now, not a signing one: tampering still fails.
    let tampered = tamper_signature(&before.access_token);
    assert_token_error(app.me(&tampered).await, "token_invalid").await;
}

#[tokio::test]
async fn every_key_of_a_live_token_stays_published() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let (_, first) = app.signed_up("alice").await;
    let mut tokens = vec![first.access_token.clone()];
    for _ in 0..3 {
        app.rotate_keys_ok(&admin.access_token, true).await;
        tokens.push(app.login_ok("alice", PASSWORD).await.access_token);
    }

    let jwks = app.jwks_ok().await;

    let kids: BTreeSet<String> = tokens.iter().map(|t| jwt_kid(t)).collect();
    assert_eq!(kids.len(), 4, "each rotation signed with a new key");
    assert!(
        kids.is_subset(&kid_set(&jwks)),
        "every live token's kid is published: {kids:?} vs {jwks}"
    );
    for (i, token) in tokens.iter().enumerate() {
        verify_with(&jwks, token, Algorithm::EdDSA);
        assert_me_ok(&app, token, &format!("token {i}")).await;
    }
}

#[tokio::test]
async fn rotation_body_is_optional_and_defaults_to_publish_ahead() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let old_kid = jwt_kid(&admin.access_token);

    for body in [None, Some(json!({}))] {
        let resp = app.rotate_keys(&admin.access_token, body.as_ref()).await;
        let status = resp.status();
        let body_text = resp.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "rotate with {body:?}: {body_text}");
        let answer: Value = serde_json::from_str(&body_text).expect("json");
        let signs_from = answer["key"]["signs_from"].as_u64().expect("signs_from");
        assert!(
            signs_from + 5 >= now_unix() + 300,
            "default publish_ahead is 5m: {answer}"
        );
    }

    let jwks = app.jwks_ok().await;
    assert_eq!(jwks_kids(&jwks).len(), 3, "two new keys published: {jwks}");
    let (_, alice) = app.signed_up("alice").await;
    assert_eq!(
        jwt_kid(&alice.access_token),
        old_kid,
        "nothing signs with a key before its time"
    );
}

#[tokio::test]
async fn old_key_leaves_the_jwks_after_its_last_token_expires() {
    let (app, _) = spawn_app_with_admin_on_clock(|s| {
        s.tokens.access_ttl = Duration::from_secs(2);
        s.tokens.leeway = Duration::from_secs(0);
    })
    .await;
    let (_, alice) = app.signed_up("alice").await;
    let admin = app
        .login_ok(crate::helpers::ADMIN, crate::helpers::ADMIN_PASSWORD)
        .await;
    let old_kid = jwt_kid(&admin.access_token);
    let last_exp = admin.claims()["exp"]
        .as_u64()
        .unwrap()
        .max(alice.claims()["exp"].as_u64().unwrap());

    let key = app.rotate_keys_ok(&admin.access_token, true).await;

    let new_kid = kid_of(&key);
    assert_eq!(
        kid_set(&app.jwks_ok().await),
        set(&[&old_kid, &new_kid]),
        "while old-key tokens live, the old key stays"
    );
    app.advance_until_past(last_exp, 1000);
    let deadline = Instant::now() + Duration::from_secs(5);
    let jwks = loop {
        let jwks = app.jwks_ok().await;
        if kid_set(&jwks) == set(&[&new_kid]) || Instant::now() >= deadline {
            break jwks;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        kid_set(&jwks),
        set(&[&new_kid]),
        "the retired key left the JWKS after its last token's exp ({last_exp}), now {}",
        app.now()
    );
    // The session is untouched by the key's retirement.
    let rotated = token_response(app.refresh(alice.refresh()).await).await;
    assert_eq!(jwt_kid(&rotated.access_token), new_kid);
    assert_me_ok(&app, &rotated.access_token, "token after retirement").await;
}

#[tokio::test]
async fn refresh_tokens_keep_working_across_rotation() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;
    let old_kid = jwt_kid(&alice.access_token);

    let new_kid = kid_of(&app.rotate_keys_ok(&admin.access_token, true).await);

    let rotated = token_response(app.refresh(alice.refresh()).await).await;
    assert_eq!(rotated.session_id, alice.session_id, "same session");
    assert_eq!(jwt_kid(&rotated.access_token), new_kid);
    let reminted = token_response(app.refresh_with_access(&alice.access_token).await).await;
    assert_eq!(jwt_kid(&reminted.access_token), new_kid);
    assert_me_ok(&app, &rotated.access_token, "refreshed token").await;
    assert_me_ok(&app, &alice.access_token, "old-key token").await;
    assert_ne!(old_kid, new_kid);
    token_response(app.refresh(rotated.refresh()).await).await;
}

#[tokio::test]
async fn only_admins_rotate_keys() {
    let (app, _) = spawn_app_with_admin(|_| {}).await;
    let (_, alice) = app.signed_up("alice").await;
    let before = app.jwks_ok().await;

    let resp = app
        .rotate_keys(&alice.access_token, Some(&json!({"now": true})))
        .await;
    assert_problem(resp, 403, "forbidden").await;
    let resp = app.request(Method::POST, "/admin/keys/rotate", None).await;
    assert_token_error(resp, "token_missing").await;

    assert_eq!(app.jwks_ok().await, before, "no key was added");
    let again = app.login_ok("alice", PASSWORD).await;
    assert_eq!(jwt_kid(&again.access_token), jwt_kid(&alice.access_token));
}

#[tokio::test]
async fn hs256_rotation_keeps_the_secret_out_of_the_jwks() {
    let (app, admin) = spawn_app_with_admin(|s| s.tokens.algorithm = SigningAlgorithm::HS256).await;
    let (_, before) = app.signed_up("alice").await;
    assert_eq!(app.jwks_ok().await, json!({"keys": []}));

    let key = app.rotate_keys_ok(&admin.access_token, true).await;

    assert_eq!(key["alg"], json!("HS256"));
    assert_eq!(app.jwks_ok().await, json!({"keys": []}));
    let after = app.login_ok("alice", PASSWORD).await;
    assert_eq!(jwt_kid(&after.access_token), kid_of(&key));
    assert_ne!(jwt_kid(&after.access_token), jwt_kid(&before.access_token));
    assert_me_ok(&app, &before.access_token, "old-secret token").await;
    assert_me_ok(&app, &after.access_token, "new-secret token").await;
}

#[tokio::test]
async fn es256_and_rs256_rotations_publish_verifiable_keys() {
    for (alg, jose) in [
        (SigningAlgorithm::ES256, Algorithm::ES256),
        (SigningAlgorithm::RS256, Algorithm::RS256),
    ] {
        let (app, admin) = spawn_app_with_admin(|s| s.tokens.algorithm = alg).await;
        let (_, before) = app.signed_up("alice").await;

        let key = app.rotate_keys_ok(&admin.access_token, true).await;

        assert_eq!(key["alg"], json!(alg.as_str()));
        let after = app.login_ok("alice", PASSWORD).await;
        assert_eq!(jwt_kid(&after.access_token), kid_of(&key), "{alg:?}");
        let jwks = app.jwks_ok().await;
        assert_eq!(jwks_kids(&jwks).len(), 2, "{alg:?}: {jwks}");
        verify_with(&jwks, &before.access_token, jose);
        verify_with(&jwks, &after.access_token, jose);
        assert_me_ok(&app, &before.access_token, "old-key token").await;
    }
}

#[tokio::test]
async fn rotate_every_rotates_on_its_own() {
    let (app, admin) = spawn_app_with_admin(|s| {
        s.keys.rotate_every = Some(Duration::from_secs(2));
        s.keys.publish_ahead = Duration::from_secs(0);
    })
    .await;
    let first_kid = jwt_kid(&admin.access_token);

    let deadline = Instant::now() + Duration::from_secs(12);
    let mut token = admin.access_token.clone();
    let newer = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token = token_response(app.refresh_with_access(&token).await)
            .await
            .access_token;
        if jwt_kid(&token) != first_kid {
            break token;
        }
        assert!(
            Instant::now() < deadline,
            "no automatic rotation within 12s with rotate_every = 2s"
        );
    };

    let jwks = app.jwks_ok().await;
    assert!(
        kid_set(&jwks).contains(&jwt_kid(&newer)),
        "the rotated key is published: {jwks}"
    );
    verify_with(&jwks, &newer, Algorithm::EdDSA);
    assert_me_ok(&app, &admin.access_token, "first-key token").await;
    assert_me_ok(&app, &newer, "rotated-key token").await;
}

// ---- claimd keys rotate ----

fn keys_rotate(dir: &Path, data: &Path, now: bool) {
    let mut cmd = claimd_command(dir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .args(["keys", "rotate"]);
    if now {
        cmd.arg("--now");
    }
    let exit = run_to_exit(cmd, Duration::from_secs(60));
    assert!(
        exit.status.is_some_and(|s| s.success()),
        "keys rotate: {exit:?}"
    );
}

/// Starts the binary on a fresh store, registers alice, stops it; returns alice's token and
/// the first key's kid.
async fn first_run(dir: &Path, data: &Path) -> String {
    let server = ClaimdProcess::start_on(dir, data);
    let app = server.app();
    let (_, alice) = app.signed_up("alice").await;
    let (status, out, err) = server.terminate(Duration::from_secs(20));
    assert!(status.is_some(), "claimd stops on SIGTERM: {out}\n{err}");
    alice.access_token
}

#[tokio::test]
async fn cli_keys_rotate_publishes_a_second_key_that_signs_later() {
    let (dir, data) = workdir();
    init_store(&data);
    let old_token = first_run(dir.path(), &data).await;
    let old_kid = jwt_kid(&old_token);

    keys_rotate(dir.path(), &data, false);

    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    let jwks = app.jwks_ok().await;
    assert_eq!(jwks_kids(&jwks).len(), 2, "{jwks}");
    assert!(kid_set(&jwks).contains(&old_kid), "{jwks}");
    let login = app.login_ok("alice", PASSWORD).await;
    assert_eq!(
        jwt_kid(&login.access_token),
        old_kid,
        "without --now the new key waits publish_ahead (5m)"
    );
    assert_me_ok(&app, &old_token, "token from before the rotation").await;
}

#[tokio::test]
async fn cli_keys_rotate_now_signs_at_once() {
    let (dir, data) = workdir();
    init_store(&data);
    let old_token = first_run(dir.path(), &data).await;
    let old_kid = jwt_kid(&old_token);

    keys_rotate(dir.path(), &data, true);

    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    let jwks = app.jwks_ok().await;
    assert_eq!(jwks_kids(&jwks).len(), 2, "{jwks}");
    let login = app.login_ok("alice", PASSWORD).await;
    let new_kid = jwt_kid(&login.access_token);
    assert_ne!(new_kid, old_kid, "--now signs with the new key at once");
    assert_eq!(kid_set(&jwks), set(&[&old_kid, &new_kid]));
    verify_with(&jwks, &login.access_token, Algorithm::EdDSA);
    verify_with(&jwks, &old_token, Algorithm::EdDSA);
    assert_me_ok(&app, &old_token, "token from before the rotation").await;
}

/// The `max-age` of the JWKS answer's `Cache-Control`.
async fn jwks_max_age(app: &TestApp) -> u64 {
    let resp = app.jwks().await;
    let cache_control = crate::helpers::header_str(resp.headers(), "cache-control")
        .expect("the JWKS carries Cache-Control");
    cache_control
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("Cache-Control has max-age: {cache_control:?}"))
}

/// A verifier honouring the JWKS's `max-age` refetches it before a published key starts
/// signing: `max-age` never exceeds `keys.publish_ahead` (when that is not 0s, i.e. "switch
/// at once" by choice).
#[tokio::test]
async fn jwks_max_age_never_outlasts_publish_ahead() {
    for (publish_ahead, what) in [(300, "default 5m"), (60, "1m"), (2, "2s")] {
        let app = crate::helpers::spawn_app_with(|s| {
            s.keys.publish_ahead = Duration::from_secs(publish_ahead);
        })
        .await;

        let max_age = jwks_max_age(&app).await;

        assert!(
            max_age <= publish_ahead,
            "publish_ahead {what}: a JWKS cached for max-age={max_age}s can miss a key that \
             starts signing {publish_ahead}s after it is published"
        );
    }
}

#[tokio::test]
async fn rotation_with_a_malformed_body_is_invalid_request() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let before = app.jwks_ok().await;

    let resp = app
        .rotate_keys(&admin.access_token, Some(&json!({"now": "yes"})))
        .await;

    assert_problem(resp, 400, "invalid_request").await;
    assert_eq!(app.jwks_ok().await, before, "no key was added");
}

/// Tests of the embedded store's own files (the data directory, its lock, a backup file):
/// nothing to test on PostgreSQL, so `.ci/run`'s PostgreSQL pass skips `::sled_files::`.
mod sled_files {
    use super::*;

    #[tokio::test]
    async fn cli_keys_rotate_refuses_a_data_dir_the_server_holds() {
        let (dir, data) = workdir();
        init_store(&data);
        let server = ClaimdProcess::start_on(dir.path(), &data);
        let before = server.app().jwks_ok().await;
        let mut cmd = claimd_command(dir.path());
        cmd.env("CLAIMD__STORAGE__PATH", &data)
            .args(["keys", "rotate", "--now"]);

        let exit = run_to_exit(cmd, Duration::from_secs(60));

        let status = exit
            .status
            .unwrap_or_else(|| panic!("keys rotate still running: {exit:?}"));
        assert!(
            !status.success(),
            "keys rotate beside a running server: {exit:?}"
        );
        assert_eq!(server.app().jwks_ok().await, before);
    }
}
