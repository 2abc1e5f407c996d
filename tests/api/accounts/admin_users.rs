//! `/admin/users`: paging through users, one user with its live sessions, claim changes by
//! an admin (the target's tokens turn stale; `disabled` revokes them), deletion and
//! revocation. Every route is for the `admin` role only.

use std::collections::HashSet;

use claimd::config::Registration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_no_secret_fields, assert_problem, assert_token_error, header_str, json_response,
    jwt_claims, refreshed_response, spawn_app_with_admin, token_response, TestApp, Tokens, ADMIN,
    PASSWORD, REFRESHED_TOKEN, UNKNOWN_ID,
};

fn id_of(user: &Value) -> String {
    user["id"]
        .as_str()
        .unwrap_or_else(|| panic!("user id is a string: {user}"))
        .to_string()
}

async fn admin_app() -> (TestApp, Tokens) {
    spawn_app_with_admin(|_| {}).await
}

/// The user ids of every page of `GET /admin/users?limit=...`, following `next`; checks
/// that `next` is the last id of each page but the last, and null on the last.
async fn walk_pages(app: &TestApp, bearer: &str, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut query = format!("?limit={limit}");
    for _ in 0..100 {
        let body = json_response(app.admin_list_users(bearer, &query).await, 200).await;
        let users = body["users"]
            .as_array()
            .unwrap_or_else(|| panic!("users is an array: {body}"));
        assert!(users.len() <= limit, "page over the limit: {body}");
        let ids: Vec<String> = users.iter().map(id_of).collect();
        match &body["next"] {
            Value::Null => {
                pages.push(ids);
                return pages;
            }
            Value::String(next) => {
                assert_eq!(
                    Some(next),
                    ids.last(),
                    "next is the id of the page's last user: {body}"
                );
                query = format!("?limit={limit}&after={next}");
                pages.push(ids);
            }
            other => panic!("next is a string or null, got {other}: {body}"),
        }
    }
    panic!("paging did not end after 100 pages")
}

/// Registers `names` in order and returns their ids.
async fn register_all(app: &TestApp, names: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for name in names {
        ids.push(id_of(&app.register_ok(name, PASSWORD).await));
    }
    ids
}

fn names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("user{i:02}")).collect()
}

// ---- access ----

#[tokio::test]
async fn bootstrap_admin_token_carries_the_admin_role() {
    let (_, admin) = admin_app().await;

    assert_eq!(admin.claims()["roles"], json!(["admin"]));
}

#[tokio::test]
async fn admin_user_routes_refuse_a_non_admin() {
    let (app, admin) = admin_app().await;
    let (alice, login) = app.signed_up("alice").await;
    let admin_id = admin.claims()["sub"].as_str().unwrap().to_string();
    let token = login.access_token.as_str();

    assert_problem(app.admin_list_users(token, "").await, 403, "forbidden").await;
    assert_problem(app.admin_get_user(token, &admin_id).await, 403, "forbidden").await;
    let resp = app
        .admin_patch_user(token, &id_of(&alice), &json!({"roles": ["admin"]}))
        .await;
    assert_problem(resp, 403, "forbidden").await;
    let resp = app.admin_delete_user(token, &admin_id).await;
    assert_problem(resp, 403, "forbidden").await;
    let resp = app.admin_revoke_user(token, &admin_id).await;
    assert_problem(resp, 403, "forbidden").await;

    // Nothing happened: alice is no admin, the admin is untouched.
    assert_eq!(jwt_claims(token)["roles"], json!([]));
    assert_eq!(app.me(token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&admin.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_user_routes_without_a_token_are_token_missing() {
    let (app, admin) = admin_app().await;
    let admin_id = admin.claims()["sub"].as_str().unwrap().to_string();

    for (method, path) in [
        (Method::GET, "/admin/users".to_string()),
        (Method::GET, format!("/admin/users/{admin_id}")),
        (Method::DELETE, format!("/admin/users/{admin_id}")),
        (Method::POST, format!("/admin/users/{admin_id}/revoke")),
    ] {
        let resp = app.request(method, &path, None).await;
        assert_token_error(resp, "token_missing").await;
    }
    let resp = app
        .client
        .patch(app.url(&format!("/admin/users/{admin_id}")))
        .json(&json!({"plan": "gold"}))
        .send()
        .await
        .unwrap();
    assert_token_error(resp, "token_missing").await;
}

#[tokio::test]
async fn stale_admin_token_is_token_stale_on_admin_routes() {
    let (app, admin) = admin_app().await;
    let admin_id = admin.claims()["sub"].as_str().unwrap().to_string();
    let resp = app
        .admin_patch_user(&admin.access_token, &admin_id, &json!({"plan": "gold"}))
        .await;
    let (_, fresh) = refreshed_response(resp).await;

    let resp = app.admin_list_users(&admin.access_token, "").await;

    assert_token_error(resp, "token_stale").await;
    json_response(app.admin_list_users(&fresh, "").await, 200).await;
}

#[tokio::test]
async fn user_promoted_to_admin_gets_in_after_a_refresh() {
    let (app, admin) = admin_app().await;
    let (alice, login) = app.signed_up("alice").await;

    let user = app
        .admin_patch_user_ok(
            &admin.access_token,
            &id_of(&alice),
            &json!({"roles": ["admin"]}),
        )
        .await;
    assert_eq!(user["roles"], json!(["admin"]));

    assert_token_error(
        app.admin_list_users(&login.access_token, "").await,
        "token_stale",
    )
    .await;
    let remint = token_response(app.refresh_with_access(&login.access_token).await).await;
    assert_eq!(remint.claims()["roles"], json!(["admin"]));
    json_response(app.admin_list_users(&remint.access_token, "").await, 200).await;
}

// ---- GET /admin/users ----

#[tokio::test]
async fn list_users_answers_every_user_in_creation_order() {
    let (app, admin) = admin_app().await;
    let admin_id = admin.claims()["sub"].as_str().unwrap().to_string();
    let ids = register_all(&app, &["carol".into(), "alice".into(), "bob".into()]).await;

    let body = json_response(app.admin_list_users(&admin.access_token, "").await, 200).await;

    let users = body["users"].as_array().expect("users array");
    let listed: Vec<String> = users.iter().map(id_of).collect();
    let mut expected = vec![admin_id];
    expected.extend(ids);
    assert_eq!(listed, expected, "{body}");
    assert_eq!(body["next"], Value::Null, "one page only: {body}");
    assert_eq!(users[0]["username"], json!(ADMIN));
    assert_eq!(users[1]["username"], json!("carol"));
    for field in ["roles", "plan", "claims_version", "disabled", "created_at"] {
        assert!(!users[1][field].is_null(), "user has {field}: {body}");
    }
    assert_no_secret_fields(&body);
    let text = body.to_string();
    assert!(
        !text.contains("$argon2") && !text.contains(PASSWORD),
        "{text}"
    );
}

#[tokio::test]
async fn list_users_pages_visit_every_user_exactly_once() {
    let (app, admin) = admin_app().await;
    let admin_id = admin.claims()["sub"].as_str().unwrap().to_string();
    let mut expected = vec![admin_id];
    expected.extend(register_all(&app, &names(7)).await);

    // 8 users: pages of 3, 3 and 2.
    let pages = walk_pages(&app, &admin.access_token, 3).await;

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![3, 3, 2]);
    let all: Vec<String> = pages.concat();
    assert_eq!(all, expected, "every user once, in creation order");
}

#[tokio::test]
async fn list_users_last_full_page_has_no_next() {
    let (app, admin) = admin_app().await;
    let admin_id = admin.claims()["sub"].as_str().unwrap().to_string();
    let mut expected = vec![admin_id];
    expected.extend(register_all(&app, &names(7)).await);

    // 8 users in pages of 4: the second page is full and also the last.
    let pages = walk_pages(&app, &admin.access_token, 4).await;

    assert_eq!(pages.len(), 2, "no empty third page: {pages:?}");
    assert_eq!(pages.concat(), expected);
}

#[tokio::test]
async fn list_users_limit_one_walks_one_by_one() {
    let (app, admin) = admin_app().await;
    let admin_id = admin.claims()["sub"].as_str().unwrap().to_string();
    let mut expected = vec![admin_id];
    expected.extend(register_all(&app, &names(2)).await);

    let pages = walk_pages(&app, &admin.access_token, 1).await;

    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_users_default_limit_is_50() {
    let (app, admin) = admin_app().await;
    let tasks: Vec<_> = names(50)
        .into_iter()
        .map(|name| {
            app.post_json_task(
                "/auth/register",
                json!({"username": name, "password": PASSWORD}),
            )
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().status(), StatusCode::CREATED);
    }

    let first = json_response(app.admin_list_users(&admin.access_token, "").await, 200).await;

    let users = first["users"].as_array().expect("users array");
    assert_eq!(users.len(), 50, "51 users, default page of 50");
    let next = first["next"].as_str().expect("more to come: next is set");
    assert_eq!(next, users[49]["id"].as_str().unwrap());
    let rest = json_response(
        app.admin_list_users(&admin.access_token, &format!("?after={next}"))
            .await,
        200,
    )
    .await;
    assert_eq!(rest["users"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);
    let mut seen: HashSet<Value> = users.iter().map(|u| u["id"].clone()).collect();
    assert!(seen.insert(rest["users"][0]["id"].clone()), "no repeats");
    assert_eq!(seen.len(), 51);
}

#[tokio::test]
async fn list_users_limit_outside_1_to_500_is_invalid_request() {
    let (app, admin) = admin_app().await;

    for query in ["?limit=0", "?limit=501", "?limit=-1", "?limit=abc"] {
        let resp = app.admin_list_users(&admin.access_token, query).await;
        assert_problem(resp, 400, "invalid_request").await;
    }
    for query in ["?limit=1", "?limit=500"] {
        json_response(app.admin_list_users(&admin.access_token, query).await, 200).await;
    }
}

#[tokio::test]
async fn list_users_after_the_last_user_is_an_empty_last_page() {
    let (app, admin) = admin_app().await;
    let ids = register_all(&app, &names(2)).await;

    let body = json_response(
        app.admin_list_users(&admin.access_token, &format!("?after={}", ids[1]))
            .await,
        200,
    )
    .await;

    assert_eq!(body["users"], json!([]));
    assert_eq!(body["next"], Value::Null);
}

// ---- GET /admin/users/{id} ----

#[tokio::test]
async fn get_user_answers_the_user_and_its_live_sessions_only() {
    let (app, admin) = admin_app().await;
    let (alice, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;
    let third = app.login_ok("alice", PASSWORD).await;
    assert_eq!(
        app.logout(&second.access_token).await.status(),
        StatusCode::NO_CONTENT
    );
    token_response(app.refresh(third.refresh()).await).await;

    let body = json_response(
        app.admin_get_user(&admin.access_token, &id_of(&alice))
            .await,
        200,
    )
    .await;

    assert_eq!(body["user"]["id"], alice["id"]);
    assert_eq!(body["user"]["username"], json!("alice"));
    assert_no_secret_fields(&body);
    let sessions = body["sessions"].as_array().expect("sessions array");
    let ids: HashSet<&str> = sessions
        .iter()
        .map(|s| s["id"].as_str().expect("session id"))
        .collect();
    let expected: HashSet<&str> = [first.session_id.as_str(), third.session_id.as_str()].into();
    assert_eq!(ids, expected, "live sessions only: {body}");
    for session in sessions {
        for field in ["created_at", "expires_at", "last_used", "generation"] {
            assert!(
                session[field].is_u64(),
                "session.{field} is a number: {body}"
            );
        }
        assert!(session["expires_at"].as_u64() > session["created_at"].as_u64());
        let generation = session["generation"].as_u64().unwrap();
        if session["id"] == json!(third.session_id) {
            assert_eq!(generation, 2, "rotated once: {body}");
        } else {
            assert_eq!(generation, 1, "never rotated: {body}");
        }
    }
}

#[tokio::test]
async fn get_user_of_an_unknown_or_malformed_id_is_not_found() {
    let (app, admin) = admin_app().await;

    for id in [UNKNOWN_ID, "nope", "12345"] {
        let resp = app.admin_get_user(&admin.access_token, id).await;
        assert_problem(resp, 404, "not_found").await;
    }
}

// ---- PATCH /admin/users/{id} ----

#[tokio::test]
async fn admin_patch_changes_the_plan_and_makes_the_users_tokens_stale() {
    let (app, admin) = admin_app().await;
    let (alice, login) = app.signed_up("alice").await;

    let resp = app
        .admin_patch_user(&admin.access_token, &id_of(&alice), &json!({"plan": "pro"}))
        .await;

    assert!(
        header_str(resp.headers(), REFRESHED_TOKEN).is_none(),
        "the admin's own claims did not change"
    );
    let body = json_response(resp, 200).await;
    assert_eq!(body["user"]["id"], alice["id"]);
    assert_eq!(body["user"]["plan"], json!("pro"));
    assert_eq!(body["user"]["claims_version"], json!(2));
    assert!(
        body.get("token").is_none_or(Value::is_null),
        "no token for someone else's change: {body}"
    );
    assert_token_error(app.me(&login.access_token).await, "token_stale").await;
    let rotated = token_response(app.refresh(login.refresh()).await).await;
    assert_eq!(rotated.claims()["plan"], json!("pro"));
    assert_eq!(rotated.claims()["uv"], json!(2));
    // The admin's own token is untouched.
    assert_eq!(app.me(&admin.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_patch_of_attrs_and_roles_reaches_the_next_token() {
    let (app, admin) = admin_app().await;
    let (alice, login) = app.signed_up("alice").await;

    let user = app
        .admin_patch_user_ok(
            &admin.access_token,
            &id_of(&alice),
            &json!({"roles": ["editor"], "attrs": {"org": "acme", "seats": 10}}),
        )
        .await;

    assert_eq!(user["roles"], json!(["editor"]));
    assert_eq!(user["attrs"], json!({"org": "acme", "seats": 10}));
    assert_eq!(user["claims_version"], json!(2));
    let remint = token_response(app.refresh_with_access(&login.access_token).await).await;
    let claims = remint.claims();
    assert_eq!(claims["roles"], json!(["editor"]));
    assert_eq!(claims["attrs"], json!({"org": "acme", "seats": 10}));
    assert_eq!(claims["uv"], json!(2));
}

#[tokio::test]
async fn admin_patch_with_the_current_value_bumps_nothing() {
    let (app, admin) = admin_app().await;
    let (alice, login) = app.signed_up("alice").await;

    let user = app
        .admin_patch_user_ok(
            &admin.access_token,
            &id_of(&alice),
            &json!({"plan": "free", "roles": []}),
        )
        .await;

    assert_eq!(user["claims_version"], json!(1));
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_patch_of_itself_answers_a_refreshed_token() {
    let (app, admin) = admin_app().await;
    let admin_id = admin.claims()["sub"].as_str().unwrap().to_string();

    let resp = app
        .admin_patch_user(
            &admin.access_token,
            &admin_id,
            &json!({"plan": "gold", "attrs": {"desk": 7}}),
        )
        .await;

    let (body, token) = refreshed_response(resp).await;
    assert_eq!(body["user"]["id"], json!(admin_id));
    assert_eq!(body["user"]["plan"], json!("gold"));
    let claims = jwt_claims(&token);
    assert_eq!(claims["sid"], json!(admin.session_id));
    assert_eq!(claims["plan"], json!("gold"));
    assert_eq!(claims["attrs"], json!({"desk": 7}));
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(claims["uv"], body["user"]["claims_version"]);
    assert_token_error(app.me(&admin.access_token).await, "token_stale").await;
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
    // Refresh-on-change does not rotate the refresh token.
    let rotated = token_response(app.refresh(admin.refresh()).await).await;
    assert_eq!(rotated.claims()["plan"], json!("gold"));
}

#[tokio::test]
async fn admin_patch_disabled_revokes_at_once_and_blocks_login() {
    let (app, admin) = admin_app().await;
    let (alice, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;

    let user = app
        .admin_patch_user_ok(
            &admin.access_token,
            &id_of(&alice),
            &json!({"disabled": true}),
        )
        .await;

    assert_eq!(user["disabled"], json!(true));
    for session in [&first, &second] {
        assert_token_error(app.me(&session.access_token).await, "token_revoked").await;
        assert_token_error(
            app.refresh_with_access(&session.access_token).await,
            "token_revoked",
        )
        .await;
        assert_problem(app.refresh(session.refresh()).await, 400, "invalid_grant").await;
    }
    // Answered like a wrong password: a distinct answer would confirm the password.
    let (_, right) = assert_problem(
        app.login("alice", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let (_, wrong) = assert_problem(
        app.login("alice", "not the password").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        right, wrong,
        "the same body for the right and a wrong password"
    );
}

#[tokio::test]
async fn admin_patch_enabled_again_lets_the_user_log_in() {
    let (app, admin) = admin_app().await;
    let (alice, old) = app.signed_up("alice").await;
    let id = id_of(&alice);
    app.admin_patch_user_ok(&admin.access_token, &id, &json!({"disabled": true}))
        .await;

    let user = app
        .admin_patch_user_ok(&admin.access_token, &id, &json!({"disabled": false}))
        .await;

    assert_eq!(user["disabled"], json!(false));
    let login = app.login_ok("alice", PASSWORD).await;
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
    // Enabling does not bring back what disabling revoked.
    assert_token_error(app.me(&old.access_token).await, "token_revoked").await;
    assert_problem(app.refresh(old.refresh()).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn admin_patch_moves_a_user_into_and_out_of_a_tenant() {
    let (app, admin) = admin_app().await;
    let (alice, login) = app.signed_up("alice").await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let tenant_id = tenant["id"].as_str().unwrap().to_string();

    let user = app
        .admin_patch_user_ok(
            &admin.access_token,
            &id_of(&alice),
            &json!({ "tenant": tenant_id }),
        )
        .await;

    assert_eq!(user["tenant"], json!(tenant_id));
    assert_token_error(app.me(&login.access_token).await, "token_stale").await;
    let inside = token_response(app.refresh(login.refresh()).await).await;
    assert_eq!(inside.claims()["tid"], json!(tenant_id));
    assert_eq!(inside.claims()["tv"], tenant["version"]);
    let members = app.get_tenant_ok(&admin.access_token, &tenant_id).await["members"].clone();
    assert_eq!(members, json!(1));

    let user = app
        .admin_patch_user_ok(
            &admin.access_token,
            &id_of(&alice),
            &json!({"tenant": null}),
        )
        .await;

    assert!(user.get("tenant").is_none_or(Value::is_null), "{user}");
    let outside = token_response(app.refresh(inside.refresh()).await).await;
    assert!(
        outside.claims().get("tid").is_none(),
        "no tid without a tenant: {}",
        outside.claims()
    );
    let members = app.get_tenant_ok(&admin.access_token, &tenant_id).await["members"].clone();
    assert_eq!(members, json!(0));
    let resp = app.delete_tenant(&admin.access_token, &tenant_id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn admin_patch_into_an_unknown_tenant_is_invalid_request() {
    let (app, admin) = admin_app().await;
    let (alice, login) = app.signed_up("alice").await;

    for tenant in [UNKNOWN_ID, "not-a-tenant-id"] {
        let resp = app
            .admin_patch_user(
                &admin.access_token,
                &id_of(&alice),
                &json!({ "tenant": tenant }),
            )
            .await;
        assert_problem(resp, 400, "invalid_request").await;
    }
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_patch_into_a_full_tenant_is_tenant_full() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(
            &admin.access_token,
            &json!({"name": "Tiny", "max_accounts": 1}),
        )
        .await;
    let tenant_id = tenant["id"].as_str().unwrap();
    let resp = app
        .register_in_tenant(&admin.access_token, "member", PASSWORD, tenant_id)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (alice, login) = app.signed_up("alice").await;

    let resp = app
        .admin_patch_user(
            &admin.access_token,
            &id_of(&alice),
            &json!({ "tenant": tenant_id }),
        )
        .await;

    assert_problem(resp, 409, "tenant_full").await;
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
    let members = app.get_tenant_ok(&admin.access_token, tenant_id).await["members"].clone();
    assert_eq!(members, json!(1));
}

#[tokio::test]
async fn admin_patch_of_other_fields_is_invalid_request() {
    let (app, admin) = admin_app().await;
    let (alice, login) = app.signed_up("alice").await;
    let id = id_of(&alice);

    for body in [
        json!({"username": "mallory"}),
        json!({"password": "a brand new passphrase"}),
        json!({"claims_version": 1}),
        json!({"foo": "bar"}),
        json!({"plan": "gold", "id": "x"}),
        json!({"plan": "has space"}),
        json!({"plan": ""}),
        json!({"roles": "admin"}),
        json!({"attrs": []}),
        json!({"disabled": "yes"}),
        json!({"tenant": 5}),
    ] {
        let resp = app.admin_patch_user(&admin.access_token, &id, &body).await;
        assert_problem(resp, 400, "invalid_request").await;
    }

    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
    let body = json_response(app.admin_get_user(&admin.access_token, &id).await, 200).await;
    assert_eq!(body["user"]["username"], json!("alice"));
    assert_eq!(body["user"]["plan"], json!("free"));
    assert_eq!(body["user"]["claims_version"], json!(1));
}

#[tokio::test]
async fn admin_patch_of_an_unknown_user_is_not_found() {
    let (app, admin) = admin_app().await;

    let resp = app
        .admin_patch_user(&admin.access_token, UNKNOWN_ID, &json!({"plan": "gold"}))
        .await;

    assert_problem(resp, 404, "not_found").await;
}

// ---- DELETE /admin/users/{id} ----

#[tokio::test]
async fn delete_user_revokes_everything_and_frees_the_username() {
    let (app, admin) = admin_app().await;
    let (alice, login) = app.signed_up("alice").await;
    let id = id_of(&alice);

    let resp = app.admin_delete_user(&admin.access_token, &id).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.text().await.unwrap().is_empty(), "204 has no body");
    assert_token_error(app.me(&login.access_token).await, "token_revoked").await;
    assert_problem(app.refresh(login.refresh()).await, 400, "invalid_grant").await;
    assert_problem(
        app.login("alice", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.admin_get_user(&admin.access_token, &id).await,
        404,
        "not_found",
    )
    .await;

    let again = app.register_ok("alice", PASSWORD).await;
    assert_ne!(again["id"], alice["id"], "a new account, not the old one");
    let new_login = app.login_ok("alice", PASSWORD).await;
    assert_eq!(
        app.me(&new_login.access_token).await.status(),
        StatusCode::OK
    );
    assert_token_error(app.me(&login.access_token).await, "token_revoked").await;
}

#[tokio::test]
async fn deleted_user_leaves_the_list() {
    let (app, admin) = admin_app().await;
    let ids = register_all(&app, &names(3)).await;

    let resp = app.admin_delete_user(&admin.access_token, &ids[1]).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    let body = json_response(app.admin_list_users(&admin.access_token, "").await, 200).await;
    let listed: Vec<String> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert!(
        listed.contains(&ids[0]) && listed.contains(&ids[2]),
        "{body}"
    );
    assert!(!listed.contains(&ids[1]), "{body}");
}

#[tokio::test]
async fn delete_of_an_unknown_user_is_not_found() {
    let (app, admin) = admin_app().await;

    let resp = app.admin_delete_user(&admin.access_token, UNKNOWN_ID).await;

    assert_problem(resp, 404, "not_found").await;
}

// ---- POST /admin/users/{id}/revoke ----

#[tokio::test]
async fn revoke_user_ends_every_session_but_not_the_account() {
    let (app, admin) = admin_app().await;
    let (alice, first) = app.signed_up("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;
    let id = id_of(&alice);

    let resp = app.admin_revoke_user(&admin.access_token, &id).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for session in [&first, &second] {
        assert_token_error(app.me(&session.access_token).await, "token_revoked").await;
        assert_problem(app.refresh(session.refresh()).await, 400, "invalid_grant").await;
    }
    let body = json_response(app.admin_get_user(&admin.access_token, &id).await, 200).await;
    assert_eq!(body["sessions"], json!([]), "{body}");
    let again = app.login_ok("alice", PASSWORD).await;
    assert_eq!(app.me(&again.access_token).await.status(), StatusCode::OK);
    token_response(app.refresh(again.refresh()).await).await;
}

#[tokio::test]
async fn revoke_user_leaves_other_users_alone() {
    let (app, admin) = admin_app().await;
    let (alice, _) = app.signed_up("alice").await;
    let (_, bob) = app.signed_up("bob").await;

    let resp = app
        .admin_revoke_user(&admin.access_token, &id_of(&alice))
        .await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(&bob.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&admin.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn revoke_of_an_unknown_user_is_not_found() {
    let (app, admin) = admin_app().await;

    let resp = app.admin_revoke_user(&admin.access_token, UNKNOWN_ID).await;

    assert_problem(resp, 404, "not_found").await;
}

// ---- registration by an admin ----

#[tokio::test]
async fn admin_only_registration_needs_an_admin_token() {
    let (app, admin) = spawn_app_with_admin(|s| s.auth.registration = Registration::Admin).await;

    assert_token_error(app.register("alice", PASSWORD).await, "token_missing").await;
    let resp = app
        .register_as(&admin.access_token, "alice", PASSWORD)
        .await;
    let body = json_response(resp, 201).await;
    assert_eq!(body["user"]["username"], json!("alice"));
    let alice = app.login_ok("alice", PASSWORD).await;
    let resp = app.register_as(&alice.access_token, "bob", PASSWORD).await;
    assert_problem(resp, 403, "forbidden").await;
    assert_problem(app.login("bob", PASSWORD).await, 401, "invalid_credentials").await;
}
