//! `POST /auth/refresh-token`: rotation, the concurrent-refresh grace, reuse detection that
//! revokes the family, forged MACs that revoke nothing, and the access-token re-mint that
//! never outlives the session.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    assert_problem, assert_problem_any, assert_token_error, forge_mac, jwt_claims, refresh_parts,
    spawn_app, spawn_app_on_clock, token_response, PASSWORD,
};

#[tokio::test]
async fn refresh_rotates_the_pair_in_the_same_session() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let rotated = token_response(app.refresh(login.refresh()).await).await;

    assert_eq!(rotated.session_id, login.session_id);
    let (sid, generation, _) = refresh_parts(rotated.refresh());
    assert_eq!(sid, login.session_id);
    assert_eq!(generation, 2);
    assert_ne!(rotated.refresh(), login.refresh());
    assert_ne!(rotated.access_token, login.access_token);
    let claims = rotated.claims();
    assert_eq!(claims["sid"], json!(login.session_id));
    assert_eq!(claims["sub"], login.claims()["sub"]);
    assert_ne!(claims["jti"], login.claims()["jti"]);
    assert_eq!(rotated.expires_in, 900);
}

#[tokio::test]
async fn rotated_access_token_is_accepted() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let rotated = token_response(app.refresh(login.refresh()).await).await;

    assert_eq!(app.me(&rotated.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn each_rotation_increments_the_generation() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let second = token_response(app.refresh(login.refresh()).await).await;
    let third = token_response(app.refresh(second.refresh()).await).await;
    let fourth = token_response(app.refresh(third.refresh()).await).await;

    assert_eq!(refresh_parts(fourth.refresh()).1, 4);
    assert_eq!(fourth.session_id, login.session_id);
}

#[tokio::test]
async fn replay_within_grace_answers_the_same_pair() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let first = token_response(app.refresh(login.refresh()).await).await;

    let replay = token_response(app.refresh(login.refresh()).await).await;

    assert_eq!(replay.refresh(), first.refresh(), "same refresh token");
    assert_eq!(replay.access_token, first.access_token, "same access token");
    assert_eq!(replay.session_id, first.session_id);
    // The race is not a logout: the session carries on.
    assert_eq!(app.me(&first.access_token).await.status(), StatusCode::OK);
    let next = token_response(app.refresh(first.refresh()).await).await;
    assert_eq!(refresh_parts(next.refresh()).1, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_with_one_token_all_get_the_same_pair() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let tasks: Vec<_> = (0..5)
        .map(|_| {
            app.post_json_task(
                "/auth/refresh-token",
                json!({"refresh_token": login.refresh()}),
            )
        })
        .collect();

    let mut pairs = Vec::new();
    for task in tasks {
        pairs.push(token_response(task.await.expect("request task")).await);
    }
    for pair in &pairs {
        assert_eq!(
            pair.refresh(),
            pairs[0].refresh(),
            "one rotation, one answer"
        );
        assert_eq!(pair.access_token, pairs[0].access_token);
    }
    assert_eq!(refresh_parts(pairs[0].refresh()).1, 2);
    assert_eq!(
        app.me(&pairs[0].access_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn replay_after_grace_is_reuse_and_revokes_the_session() {
    let app = spawn_app_on_clock(|s| s.tokens.refresh_reuse_grace = Duration::from_secs(1)).await;
    let (_, login) = app.signed_up("alice").await;
    let second = token_response(app.refresh(login.refresh()).await).await;
    // Past the grace, and past the moment the answer is recorded as acknowledged (on the
    // server's clock: this process knows it at once, the store a second later).
    app.advance(Duration::from_millis(1500));

    let replay = app.refresh(login.refresh()).await;

    assert_problem(replay, 400, "invalid_grant").await;
    let current = app.refresh(second.refresh()).await;
    assert_problem(current, 400, "invalid_grant").await;
    assert_token_error(app.me(&second.access_token).await, "token_revoked").await;
    assert_token_error(app.me(&login.access_token).await, "token_revoked").await;
}

#[tokio::test]
async fn with_no_grace_a_replay_in_the_rotations_own_millisecond_is_reuse() {
    // The manual clock stands still: the replay comes 0 ms after the rotation.
    let app = spawn_app_on_clock(|s| s.tokens.refresh_reuse_grace = Duration::ZERO).await;
    let (_, login) = app.signed_up("alice").await;
    let second = token_response(app.refresh(login.refresh()).await).await;

    let replay = app.refresh(login.refresh()).await;

    assert_problem(replay, 400, "invalid_grant").await;
    assert_token_error(app.me(&second.access_token).await, "token_revoked").await;
}

#[tokio::test]
async fn replay_two_generations_behind_is_reuse_and_revokes_the_session() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let second = token_response(app.refresh(login.refresh()).await).await;
    let third = token_response(app.refresh(second.refresh()).await).await;

    let replay = app.refresh(login.refresh()).await;

    assert_problem(replay, 400, "invalid_grant").await;
    assert_problem(app.refresh(third.refresh()).await, 400, "invalid_grant").await;
    assert_token_error(app.me(&third.access_token).await, "token_revoked").await;
}

#[tokio::test]
async fn reuse_revokes_only_that_session() {
    let app = spawn_app().await;
    let (_, victim) = app.signed_up("alice").await;
    let other = app.login_ok("alice", PASSWORD).await;
    let second = token_response(app.refresh(victim.refresh()).await).await;
    token_response(app.refresh(second.refresh()).await).await;

    assert_problem(app.refresh(victim.refresh()).await, 400, "invalid_grant").await;

    assert_eq!(app.me(&other.access_token).await.status(), StatusCode::OK);
    token_response(app.refresh(other.refresh()).await).await;
}

#[tokio::test]
async fn forged_mac_is_invalid_grant_and_revokes_nothing() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let genuine = login.refresh().to_string();

    let forged = app.refresh(&forge_mac(&genuine)).await;

    assert_problem(forged, 400, "invalid_grant").await;
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
    let rotated = token_response(app.refresh(&genuine).await).await;
    assert_eq!(refresh_parts(rotated.refresh()).1, 2);
}

#[tokio::test]
async fn old_generation_with_forged_mac_revokes_nothing() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let second = token_response(app.refresh(login.refresh()).await).await;
    let third = token_response(app.refresh(second.refresh()).await).await;
    let forged = forge_mac(login.refresh());

    // A forged token for an old generation must not count as reuse.
    assert_problem(app.refresh(&forged).await, 400, "invalid_grant").await;

    assert_eq!(app.me(&third.access_token).await.status(), StatusCode::OK);
    token_response(app.refresh(third.refresh()).await).await;
}

#[tokio::test]
async fn mac_of_one_generation_does_not_sign_another() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let (sid, _, mac) = refresh_parts(login.refresh());

    for generation in ["2", "0", "5"] {
        let forged = app.refresh(&format!("{sid}.{generation}.{mac}")).await;
        assert_problem(forged, 400, "invalid_grant").await;
    }
    token_response(app.refresh(login.refresh()).await).await;
}

#[tokio::test]
async fn mac_of_one_session_does_not_sign_another() {
    let app = spawn_app().await;
    let (_, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;
    let (_, _, mac) = refresh_parts(first.refresh());

    let forged = app.refresh(&format!("{}.1.{mac}", second.session_id)).await;

    assert_problem(forged, 400, "invalid_grant").await;
    token_response(app.refresh(second.refresh()).await).await;
}

#[tokio::test]
async fn garbage_refresh_tokens_are_invalid_grant() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let (sid, _, mac) = refresh_parts(login.refresh());
    let garbage = [
        "abc".to_string(),
        "a.b.c".to_string(),
        "..".to_string(),
        "....".to_string(),
        format!("{sid}.1"),
        format!("{sid}.1."),
        format!("{sid}..{mac}"),
        format!("{sid}.-1.{mac}"),
        format!("{sid}.99999999999999999999999999.{mac}"),
        format!("{sid}.1.{mac}.extra"),
        format!("not-a-session-id.1.{mac}"),
        format!("{}.1.{mac}", "00000000-0000-7000-8000-000000000000"),
        "x".repeat(4000),
        login.access_token.clone(),
    ];

    for token in &garbage {
        let resp = app.refresh(token).await;
        assert_problem(resp, 400, "invalid_grant").await;
    }
    // None of it touched the real session.
    token_response(app.refresh(login.refresh()).await).await;
}

#[tokio::test]
async fn expired_session_is_invalid_grant() {
    // refresh_ttl may not be shorter than access_ttl (a validated setting).
    let app = spawn_app_on_clock(|s| {
        s.tokens.access_ttl = Duration::from_secs(1);
        s.tokens.refresh_ttl = Duration::from_secs(2);
    })
    .await;
    let (_, login) = app.signed_up("alice").await;
    let iat = login.claims()["iat"].as_u64().unwrap();
    app.advance_until_past(iat + 2, 1200);

    let resp = app.refresh(login.refresh()).await;

    assert_problem(resp, 400, "invalid_grant").await;
}

#[tokio::test]
async fn refresh_with_access_token_remints_for_the_same_session() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let old = login.claims();

    let remint = token_response(app.refresh_with_access(&login.access_token).await).await;

    assert_eq!(remint.session_id, login.session_id);
    assert!(
        remint.refresh_token.is_none(),
        "no refresh token: {}",
        remint.body
    );
    let claims = remint.claims();
    assert_eq!(claims["sid"], json!(login.session_id));
    assert_eq!(claims["sub"], old["sub"]);
    assert_ne!(claims["jti"], old["jti"]);
    assert!(claims["iat"].as_u64() >= old["iat"].as_u64());
    let session_expiry = old["iat"].as_u64().unwrap() + 30 * 86400;
    assert!(claims["exp"].as_u64().unwrap() <= session_expiry + 1);
    assert_eq!(app.me(&remint.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_with_access_token_never_outlives_the_session() {
    // Equal lives: any re-mint after the login second would outlive the session uncapped.
    let app = spawn_app_on_clock(|s| {
        s.tokens.access_ttl = Duration::from_secs(60);
        s.tokens.refresh_ttl = Duration::from_secs(60);
    })
    .await;
    let (_, login) = app.signed_up("alice").await;
    let login_iat = login.claims()["iat"].as_u64().unwrap();
    // Two seconds on, an uncapped exp would be at least login_iat + 62.
    app.advance_until_past(login_iat + 2, 100);

    let remint = token_response(app.refresh_with_access(&login.access_token).await).await;

    let claims = remint.claims();
    let exp = claims["exp"].as_u64().unwrap();
    let iat = claims["iat"].as_u64().unwrap();
    assert!(
        exp <= login_iat + 60 + 1,
        "exp {exp} outlives the session, which ends near {}",
        login_iat + 60
    );
    assert!(
        remint.expires_in <= exp - iat + 1,
        "expires_in {} must match the capped exp",
        remint.expires_in
    );
}

#[tokio::test]
async fn refresh_with_access_token_does_not_rotate_the_refresh_token() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    token_response(app.refresh_with_access(&login.access_token).await).await;

    let rotated = token_response(app.refresh(login.refresh()).await).await;
    assert_eq!(refresh_parts(rotated.refresh()).1, 2);
}

#[tokio::test]
async fn refresh_with_revoked_access_token_is_token_revoked() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let resp = app.refresh_with_access(&login.access_token).await;

    assert_token_error(resp, "token_revoked").await;
}

#[tokio::test]
async fn refresh_with_expired_access_token_is_token_expired() {
    let app = spawn_app_on_clock(|s| {
        s.tokens.access_ttl = Duration::from_secs(1);
        s.tokens.leeway = Duration::from_secs(0);
    })
    .await;
    let (_, login) = app.signed_up("alice").await;
    app.advance_until_past(login.claims()["exp"].as_u64().unwrap(), 1100);

    let resp = app.refresh_with_access(&login.access_token).await;

    assert_token_error(resp, "token_expired").await;
}

#[tokio::test]
async fn refresh_with_neither_token_is_refused() {
    let app = spawn_app().await;

    let resp = app
        .request(reqwest::Method::POST, "/auth/refresh-token", None)
        .await;

    // Either "you sent nothing" reading is fine; a token must not come back.
    let status = resp.status().as_u16();
    if status == 401 {
        assert_token_error(resp, "token_missing").await;
    } else {
        assert_problem_any(resp, 400, &["invalid_request", "invalid_grant"]).await;
    }
}

#[tokio::test]
async fn rotated_tokens_carry_the_same_user_claims() {
    let app = spawn_app().await;
    let (user, login) = app.signed_up("alice").await;

    let rotated = token_response(app.refresh(login.refresh()).await).await;

    let claims = jwt_claims(&rotated.access_token);
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["roles"], json!([]));
    assert_eq!(claims["plan"], json!("free"));
    assert_eq!(claims["uv"], json!(1));
}

/// One refresh token, one spelling: the generation with a leading zero, the session id in
/// upper case or without dashes, are refused without spending or ending anything.
#[tokio::test]
async fn only_the_spelling_claimd_issued_is_accepted() {
    let app = crate::helpers::spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let (sid, generation, mac) = crate::helpers::refresh_parts(login.refresh());
    for other in [
        format!("{sid}.0{generation}.{mac}"),
        format!("{}.{generation}.{mac}", sid.to_uppercase()),
        format!("{}.{generation}.{mac}", sid.replace('-', "")),
    ] {
        crate::helpers::assert_problem(app.refresh(&other).await, 400, "invalid_grant").await;
    }
    let resp = app.refresh(login.refresh()).await;
    assert_eq!(
        resp.status(),
        reqwest::StatusCode::OK,
        "the issued spelling still rotates: nothing was spent or ended"
    );
}
