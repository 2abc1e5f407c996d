//! Claim changes by the user: `PATCH /me` answers a re-minted access token for the same
//! session (refresh-on-change) without rotating the refresh token, and every other token of
//! the user turns stale — not revoked — so its holder re-mints with `/auth/refresh-token`.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    allow_plans, assert_no_secret_fields, assert_problem, assert_token_error, header_str,
    json_response, jwt_claims, refresh_parts, refreshed_response, spawn_app, spawn_app_on_clock,
    spawn_app_with, token_response, TestApp, PASSWORD, TEST_PLANS,
};

async fn me_body(app: &TestApp, access_token: &str) -> Value {
    json_response(app.me(access_token).await, 200).await
}

#[tokio::test]
async fn patch_me_answers_the_user_and_a_token_with_the_new_plan() {
    let app = spawn_app().await;
    let (user, login) = app.signed_up("alice").await;
    let old = login.claims();

    let resp = app
        .patch_me(&login.access_token, &json!({"plan": "premium"}))
        .await;

    let (body, token) = refreshed_response(resp).await;
    assert_no_secret_fields(&body);
    assert_eq!(body["user"]["id"], user["id"]);
    assert_eq!(body["user"]["plan"], json!("premium"));
    assert_eq!(body["user"]["claims_version"], json!(2), "{body}");
    let claims = jwt_claims(&token);
    assert_eq!(claims["plan"], json!("premium"));
    assert_eq!(claims["uv"], json!(2));
    assert_eq!(claims["uv"], body["user"]["claims_version"]);
    assert_eq!(claims["sid"], json!(login.session_id), "same session");
    assert_eq!(claims["sub"], old["sub"]);
    assert_eq!(claims["roles"], old["roles"]);
    assert_eq!(claims["tv"], old["tv"]);
    assert_ne!(claims["jti"], old["jti"]);
}

#[tokio::test]
async fn after_patch_me_the_old_token_is_stale_and_the_new_one_works() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .patch_me(&login.access_token, &json!({"plan": "premium"}))
        .await;
    let (_, token) = refreshed_response(resp).await;

    assert_token_error(app.me(&login.access_token).await, "token_stale").await;
    let body = me_body(&app, &token).await;
    assert_eq!(body["user"]["plan"], json!("premium"));
    assert_eq!(body["claims"]["plan"], json!("premium"));
}

#[tokio::test]
async fn patch_me_does_not_rotate_the_refresh_token() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let resp = app
        .patch_me(&login.access_token, &json!({"plan": "premium"}))
        .await;
    refreshed_response(resp).await;

    let rotated = token_response(app.refresh(login.refresh()).await).await;

    assert_eq!(rotated.session_id, login.session_id);
    assert_eq!(refresh_parts(rotated.refresh()).1, 2, "first rotation");
    let claims = rotated.claims();
    assert_eq!(claims["plan"], json!("premium"));
    assert_eq!(claims["uv"], json!(2));
    assert_eq!(app.me(&rotated.access_token).await.status(), StatusCode::OK);
    token_response(app.refresh(rotated.refresh()).await).await;
}

#[tokio::test]
async fn patch_me_with_the_current_value_bumps_nothing() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .patch_me(&login.access_token, &json!({"plan": "free"}))
        .await;

    let body = json_response(resp, 200).await;
    assert_eq!(body["user"]["plan"], json!("free"));
    assert_eq!(
        body["user"]["claims_version"],
        json!(1),
        "no change, no bump"
    );
    if let Some(token) = body["token"]["access_token"].as_str() {
        assert_eq!(jwt_claims(token)["uv"], json!(1));
    }
    assert_eq!(
        app.me(&login.access_token).await.status(),
        StatusCode::OK,
        "nothing changed, so the token is not stale"
    );
}

#[tokio::test]
async fn patch_me_bumps_the_version_once_per_change() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let (_, second) = refreshed_response(
        app.patch_me(&login.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    let (body, third) =
        refreshed_response(app.patch_me(&second, &json!({"plan": "gold"})).await).await;

    assert_eq!(body["user"]["claims_version"], json!(3));
    assert_eq!(jwt_claims(&third)["uv"], json!(3));
    assert_eq!(jwt_claims(&third)["plan"], json!("gold"));
    assert_token_error(app.me(&second).await, "token_stale").await;
    assert_eq!(app.me(&third).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn patch_me_accepts_every_allowed_plan_character_up_to_64() {
    let long = "p".repeat(64);
    let app = spawn_app_with(|s| {
        s.claims.self_service = allow_plans(&["x", "Pro_2.0:eu-west", long.as_str()]);
    })
    .await;
    let (_, login) = app.signed_up("alice").await;
    let mut token = login.access_token.clone();

    for plan in [
        "x".to_string(),
        "Pro_2.0:eu-west".to_string(),
        "p".repeat(64),
    ] {
        let resp = app.patch_me(&token, &json!({ "plan": plan })).await;
        let (body, fresh) = refreshed_response(resp).await;
        assert_eq!(body["user"]["plan"], json!(plan));
        assert_eq!(jwt_claims(&fresh)["plan"], json!(plan));
        token = fresh;
    }
}

#[tokio::test]
async fn patch_me_of_a_field_outside_self_service_is_forbidden() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    for body in [
        json!({"roles": ["admin"]}),
        json!({"attrs": {"team": "red"}}),
        json!({"plan": "premium", "roles": ["admin"]}),
    ] {
        let resp = app.patch_me(&login.access_token, &body).await;
        assert_problem(resp, 403, "forbidden").await;
    }

    let me = me_body(&app, &login.access_token).await;
    assert_eq!(me["user"]["roles"], json!([]));
    assert_eq!(
        me["user"]["plan"],
        json!("free"),
        "nothing was half-applied"
    );
    assert_eq!(me["user"]["claims_version"], json!(1));
}

#[tokio::test]
async fn patch_me_with_empty_self_service_forbids_the_plan_too() {
    let app = spawn_app_with(|s| s.claims.self_service.clear()).await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .patch_me(&login.access_token, &json!({"plan": "premium"}))
        .await;

    assert_problem(resp, 403, "forbidden").await;
    assert_eq!(
        me_body(&app, &login.access_token).await["user"]["plan"],
        json!("free")
    );
}

#[tokio::test]
async fn patch_me_of_a_field_that_is_not_a_user_claim_is_invalid_request() {
    let app = spawn_app_with(|s| {
        open_roles_and_attrs(s);
    })
    .await;
    let (_, login) = app.signed_up("alice").await;

    for body in [
        json!({"username": "mallory"}),
        json!({"foo": 1}),
        json!({"claims_version": 99}),
        json!({"disabled": true}),
        json!({"tenant": null}),
        json!({"password": "a brand new passphrase"}),
        json!({"plan": "premium", "id": "x"}),
    ] {
        let resp = app.patch_me(&login.access_token, &body).await;
        assert_problem(resp, 400, "invalid_request").await;
    }

    let me = me_body(&app, &login.access_token).await;
    assert_eq!(me["user"]["username"], json!("alice"));
    assert_eq!(me["user"]["plan"], json!("free"));
    assert_eq!(me["user"]["disabled"], json!(false));
    assert_eq!(me["user"]["claims_version"], json!(1));
    app.login_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn patch_me_with_a_bad_value_is_invalid_request() {
    let app = spawn_app_with(|s| {
        open_roles_and_attrs(s);
    })
    .await;
    let (_, login) = app.signed_up("alice").await;
    let big_attrs = json!({"blob": "x".repeat(4200)});
    let too_many_roles: Vec<String> = (0..33).map(|i| format!("role{i}")).collect();

    for body in [
        json!({}),
        json!({"plan": 5}),
        json!({"plan": null}),
        json!({"plan": ""}),
        json!({"plan": "has space"}),
        json!({"plan": "p".repeat(65)}),
        json!({"plan": "caf\u{e9}"}),
        json!({"plan": ["premium"]}),
        json!({"roles": "admin"}),
        json!({"roles": [1]}),
        json!({"roles": ["bad role"]}),
        json!({"roles": too_many_roles}),
        json!({"attrs": []}),
        json!({"attrs": "team=red"}),
        big_attrs,
    ] {
        let resp = app.patch_me(&login.access_token, &body).await;
        let (_, problem) = assert_problem(resp, 400, "invalid_request").await;
        assert!(problem["detail"].is_string(), "{body}: {problem}");
    }

    let me = me_body(&app, &login.access_token).await;
    assert_eq!(me["user"]["claims_version"], json!(1));
    assert_eq!(me["user"]["plan"], json!("free"));
}

#[tokio::test]
async fn patch_me_with_a_non_object_body_is_invalid_request() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    for raw in ["[]", "null", "\"premium\"", "{\"plan\": "] {
        let resp = app
            .client
            .patch(app.url("/me"))
            .bearer_auth(&login.access_token)
            .header(CONTENT_TYPE, "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_problem(resp, 400, "invalid_request").await;
    }
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn patch_me_without_json_content_type_is_a_problem_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .client
        .patch(app.url("/me"))
        .bearer_auth(&login.access_token)
        .header(CONTENT_TYPE, "text/plain")
        .body(r#"{"plan":"premium"}"#)
        .send()
        .await
        .unwrap();

    let status = resp.status().as_u16();
    assert!(status == 400 || status == 415, "status {status}");
    let content_type = header_str(resp.headers(), "content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    assert_eq!(
        me_body(&app, &login.access_token).await["user"]["plan"],
        json!("free")
    );
}

#[tokio::test]
async fn patch_me_of_roles_and_attrs_when_self_service_allows_them() {
    let app = spawn_app_with(|s| {
        open_roles_and_attrs(s);
    })
    .await;
    let (_, login) = app.signed_up("alice").await;
    assert!(
        login.claims().get("attrs").is_none(),
        "attrs omitted when empty: {}",
        login.claims()
    );

    let resp = app
        .patch_me(
            &login.access_token,
            &json!({"roles": ["beta", "reader"], "attrs": {"team": "red", "seats": 3}}),
        )
        .await;

    let (body, token) = refreshed_response(resp).await;
    assert_eq!(body["user"]["roles"], json!(["beta", "reader"]));
    assert_eq!(body["user"]["attrs"], json!({"team": "red", "seats": 3}));
    assert_eq!(
        body["user"]["claims_version"],
        json!(2),
        "one change, one bump"
    );
    let claims = jwt_claims(&token);
    assert_eq!(claims["roles"], json!(["beta", "reader"]));
    assert_eq!(claims["attrs"], json!({"team": "red", "seats": 3}));
    assert_eq!(claims["plan"], json!("free"));
    assert_eq!(claims["uv"], json!(2));
}

#[tokio::test]
async fn patch_me_without_a_token_is_token_missing() {
    let app = spawn_app().await;

    let resp = app
        .client
        .patch(app.url("/me"))
        .json(&json!({"plan": "premium"}))
        .send()
        .await
        .unwrap();

    assert_token_error(resp, "token_missing").await;
}

#[tokio::test]
async fn patch_me_with_a_revoked_token_is_token_revoked() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let other = app.login_ok("alice", PASSWORD).await;
    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let resp = app
        .patch_me(&login.access_token, &json!({"plan": "premium"}))
        .await;

    assert_token_error(resp, "token_revoked").await;
    assert_eq!(
        me_body(&app, &other.access_token).await["user"]["plan"],
        json!("free")
    );
}

#[tokio::test]
async fn patch_me_with_a_stale_token_is_accepted() {
    let app = spawn_app().await;
    let (_, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;
    refreshed_response(
        app.patch_me(&first.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    let resp = app
        .patch_me(&second.access_token, &json!({"plan": "gold"}))
        .await;

    let (body, token) = refreshed_response(resp).await;
    assert_eq!(body["user"]["plan"], json!("gold"));
    assert_eq!(body["user"]["claims_version"], json!(3));
    let claims = jwt_claims(&token);
    assert_eq!(claims["sid"], json!(second.session_id));
    assert_eq!(claims["uv"], json!(3));
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn patch_me_leaves_other_users_tokens_alone() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_up("alice").await;
    let (_, bob) = app.signed_up("bob").await;

    refreshed_response(
        app.patch_me(&alice.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    let me = me_body(&app, &bob.access_token).await;
    assert_eq!(me["user"]["plan"], json!("free"));
}

// ---- the user's other sessions ----

#[tokio::test]
async fn another_session_goes_stale_after_patch_me() {
    let app = spawn_app().await;
    let (_, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;

    refreshed_response(
        app.patch_me(&first.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    assert_token_error(app.me(&second.access_token).await, "token_stale").await;
    // Stale is not revoked: the session itself is alive.
    token_response(app.refresh(second.refresh()).await).await;
}

#[tokio::test]
async fn stale_token_remints_current_claims_for_its_session() {
    // A short session, so the cap on the re-minted token's life is visible.
    let app = spawn_app_with(|s| s.tokens.refresh_ttl = Duration::from_secs(3600)).await;
    let (_, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;
    let session_end = second.claims()["iat"].as_u64().unwrap() + 3600;
    refreshed_response(
        app.patch_me(&first.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    let remint = token_response(app.refresh_with_access(&second.access_token).await).await;

    assert!(
        remint.refresh_token.is_none(),
        "a re-mint has no refresh token: {}",
        remint.body
    );
    assert_eq!(remint.session_id, second.session_id);
    let claims = remint.claims();
    assert_eq!(claims["sid"], json!(second.session_id));
    assert_eq!(claims["plan"], json!("premium"));
    assert_eq!(claims["uv"], json!(2));
    assert!(
        claims["exp"].as_u64().unwrap() <= session_end + 1,
        "exp {} outlives the session ending near {session_end}",
        claims["exp"]
    );
    let me = me_body(&app, &remint.access_token).await;
    assert_eq!(me["claims"]["plan"], json!("premium"));
    assert_token_error(app.me(&second.access_token).await, "token_stale").await;
}

#[tokio::test]
async fn stale_remint_never_outlives_a_short_session() {
    // Access tokens would live longer than the session: the re-mint must be capped.
    let app = spawn_app_on_clock(|s| {
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

    let remint = token_response(app.refresh_with_access(&second.access_token).await).await;

    let exp = remint.claims()["exp"].as_u64().unwrap();
    assert!(
        exp <= login_iat + 60 + 1,
        "exp {exp} outlives the session, which ends near {}",
        login_iat + 60
    );
}

#[tokio::test]
async fn stale_sessions_refresh_token_gives_current_claims() {
    let app = spawn_app().await;
    let (_, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;
    refreshed_response(
        app.patch_me(&first.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    let rotated = token_response(app.refresh(second.refresh()).await).await;

    assert_eq!(rotated.session_id, second.session_id);
    assert_eq!(rotated.claims()["plan"], json!("premium"));
    assert_eq!(rotated.claims()["uv"], json!(2));
    assert_eq!(app.me(&rotated.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn revoked_token_cannot_remint_with_bearer_refresh() {
    let app = spawn_app().await;
    let (_, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;
    refreshed_response(
        app.patch_me(&first.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;
    assert_eq!(
        app.logout(&second.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let resp = app.refresh_with_access(&second.access_token).await;

    assert_token_error(resp, "token_revoked").await;
}

/// Self-service of all three fields, with the values these tests use.
fn open_roles_and_attrs(s: &mut claimd::config::Settings) {
    s.claims.self_service = allow_plans(&TEST_PLANS);
    s.claims
        .self_service
        .insert("roles".into(), vec!["beta".into(), "reader".into()]);
    s.claims
        .self_service
        .insert("attrs".into(), vec!["team".into(), "seats".into()]);
}

#[tokio::test]
async fn patch_me_of_a_value_outside_the_allowlist_is_invalid_request_naming_the_field() {
    let app = spawn_app_with(open_roles_and_attrs).await;
    let (_, login) = app.signed_up("alice").await;

    for (body, field) in [
        (json!({"plan": "platinum"}), "plan"),
        (json!({"plan": "premium", "roles": ["admin"]}), "roles"),
        (json!({"roles": ["beta", "admin"]}), "roles"),
        (
            json!({"attrs": {"team": "red", "billing": "none"}}),
            "attrs",
        ),
    ] {
        let resp = app.patch_me(&login.access_token, &body).await;
        let (_, problem) = assert_problem(resp, 400, "invalid_request").await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with(field), "{body}: {detail}");
    }

    let me = me_body(&app, &login.access_token).await;
    assert_eq!(
        me["user"]["plan"],
        json!("free"),
        "nothing was half-applied"
    );
    assert_eq!(me["user"]["roles"], json!([]));
    assert_eq!(me["user"]["claims_version"], json!(1));
}

#[tokio::test]
async fn self_service_opens_nothing_by_default() {
    assert!(claimd::config::Settings::default()
        .claims
        .self_service
        .is_empty());
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let settings = claimd::config::Settings::load(Some(&shipped)).expect("config.toml loads");
    assert!(
        settings.claims.self_service.is_empty(),
        "config.toml opens no field"
    );

    let app = spawn_app_with(|s| {
        *s = claimd::config::Settings {
            server: s.server.clone(),
            storage: s.storage.clone(),
            ..Default::default()
        }
    })
    .await;
    let (_, login) = app.signed_up("alice").await;
    let resp = app
        .patch_me(&login.access_token, &json!({"plan": "premium"}))
        .await;
    assert_problem(resp, 403, "forbidden").await;
}
