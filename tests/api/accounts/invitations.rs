//! Tenant membership is granted, never taken (issue 9, item 6): registration into a tenant
//! needs an admin's token or a single-use invitation an admin created. Invitations hold a
//! seat of `max_accounts` while outstanding, admit exactly one account even under racing
//! registrations, and are refused once used, revoked or expired; admins list them (never
//! their codes) and revoke them.

use std::time::Duration;

use reqwest::header::CACHE_CONTROL;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, assert_token_error, claimd_command, header_str, json_response, now_unix,
    spawn_app_with_admin, spawn_app_with_admin_on_clock, workdir, ClaimdProcess, TestApp, Tokens,
    ADMIN, ADMIN_PASSWORD, PASSWORD, UNKNOWN_ID,
};
use claimd::config::Registration;

async fn admin_app() -> (TestApp, Tokens) {
    spawn_app_with_admin(|_| {}).await
}

/// Creates a tenant (`max_accounts` when given) and returns its id.
async fn tenant(app: &TestApp, admin: &Tokens, max_accounts: Option<u64>) -> String {
    let body = match max_accounts {
        Some(max) => json!({"name": "Acme", "max_accounts": max}),
        None => json!({"name": "Acme"}),
    };
    let tenant = app.create_tenant_ok(&admin.access_token, &body).await;
    tenant["id"].as_str().expect("tenant id").to_string()
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is a string: {value}"))
}

async fn members(app: &TestApp, admin: &Tokens, tenant: &str) -> Value {
    app.get_tenant_ok(&admin.access_token, tenant).await["members"].clone()
}

async fn invitations(app: &TestApp, admin: &Tokens, tenant: &str) -> Vec<Value> {
    let resp = app.list_invitations(&admin.access_token, tenant).await;
    json_response(resp, 200).await["invitations"]
        .as_array()
        .expect("invitations is an array")
        .clone()
}

async fn assert_no_account(app: &TestApp, username: &str) {
    assert_problem(
        app.login(username, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

// ---- registration naming a tenant ----

#[tokio::test]
async fn open_registration_naming_a_tenant_is_forbidden_and_creates_no_user() {
    let (app, admin) = admin_app().await;
    let id = tenant(&app, &admin, None).await;
    let (_, outsider) = app.signed_up("mallory").await;

    let anonymous = app
        .post_json(
            "/auth/register",
            &json!({"username": "eve", "password": PASSWORD, "tenant": id}),
        )
        .await;
    let by_a_user = app
        .send_json(
            Method::POST,
            "/auth/register",
            Some(&outsider.access_token),
            &json!({"username": "trudy", "password": PASSWORD, "tenant": id}),
        )
        .await;

    assert_problem(anonymous, 403, "forbidden").await;
    assert_problem(by_a_user, 403, "forbidden").await;
    assert_no_account(&app, "eve").await;
    assert_no_account(&app, "trudy").await;
    assert_eq!(members(&app, &admin, &id).await, json!(0));
    // An admin still places accounts in a tenant directly.
    let resp = app
        .register_in_tenant(&admin.access_token, "alice", PASSWORD, &id)
        .await;
    assert_eq!(json_response(resp, 201).await["user"]["tenant"], json!(id));
}

// ---- redeeming an invitation ----

#[tokio::test]
async fn an_invitation_admits_one_account_into_its_tenant() {
    let (app, admin) = admin_app().await;
    let id = tenant(&app, &admin, None).await;

    let resp = app.create_invitation(&admin.access_token, &id, None).await;
    let cache_control = header_str(resp.headers(), CACHE_CONTROL.as_str()).unwrap_or_default();
    let invitation = json_response(resp, 201).await["invitation"].clone();
    assert!(cache_control.contains("no-store"), "{cache_control:?}");
    assert_eq!(invitation["tenant"], json!(id));
    let code = text(&invitation, "code").to_string();
    assert!(code.len() >= 43, "a 256-bit code: {code}");
    let expires_at = invitation["expires_at"].as_u64().expect("expires_at");
    let week = 7 * 24 * 3600;
    assert!(expires_at.abs_diff(now_unix() + week) < 60, "{invitation}");

    let resp = app.register_with_invitation("alice", PASSWORD, &code).await;

    let user = json_response(resp, 201).await["user"].clone();
    assert_eq!(user["tenant"], json!(id));
    let login = app.login_ok("alice", PASSWORD).await;
    assert_eq!(login.claims()["tid"], json!(id));
    assert_eq!(members(&app, &admin, &id).await, json!(1));

    let again = app.register_with_invitation("bob", PASSWORD, &code).await;

    assert_problem(again, 403, "invitation_invalid").await;
    assert_no_account(&app, "bob").await;
    assert_eq!(members(&app, &admin, &id).await, json!(1));
    let listed = invitations(&app, &admin, &id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], json!("used"));
    assert_eq!(listed[0]["used_by"], user["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_with_one_code_admit_exactly_one() {
    let (app, admin) = admin_app().await;
    let id = tenant(&app, &admin, None).await;
    let invitation = app
        .create_invitation_ok(&admin.access_token, &id, None)
        .await;
    let code = text(&invitation, "code");

    let tasks: Vec<_> = (0..10)
        .map(|i| {
            app.post_json_task(
                "/auth/register",
                json!({"username": format!("racer{i}"), "password": PASSWORD, "invitation": code}),
            )
        })
        .collect();
    let mut created = 0;
    let mut refused = 0;
    for task in tasks {
        let resp = task.await.expect("request task");
        if resp.status() == StatusCode::CREATED {
            created += 1;
        } else {
            assert_problem(resp, 403, "invitation_invalid").await;
            refused += 1;
        }
    }

    assert_eq!((created, refused), (1, 9));
    assert_eq!(members(&app, &admin, &id).await, json!(1));
}

#[tokio::test]
async fn an_expired_invitation_is_refused_and_frees_its_seat() {
    let (app, admin) = spawn_app_with_admin_on_clock(|_| {}).await;
    let id = tenant(&app, &admin, Some(1)).await;
    let invitation = app
        .create_invitation_ok(&admin.access_token, &id, Some(&json!({"expires_in": 1})))
        .await;
    assert_problem(
        app.create_invitation(&admin.access_token, &id, None).await,
        409,
        "tenant_full",
    )
    .await;

    app.advance(Duration::from_millis(2100));
    let resp = app
        .register_with_invitation("alice", PASSWORD, text(&invitation, "code"))
        .await;

    assert_problem(resp, 403, "invitation_invalid").await;
    assert_no_account(&app, "alice").await;
    assert_eq!(
        invitations(&app, &admin, &id).await[0]["state"],
        json!("expired")
    );
    // Its seat is free again.
    app.create_invitation_ok(&admin.access_token, &id, None)
        .await;
}

#[tokio::test]
async fn a_revoked_invitation_is_refused() {
    let (app, admin) = admin_app().await;
    let id = tenant(&app, &admin, None).await;
    let invitation = app
        .create_invitation_ok(&admin.access_token, &id, None)
        .await;

    let resp = app
        .revoke_invitation(&admin.access_token, &id, text(&invitation, "id"))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = app
        .register_with_invitation("alice", PASSWORD, text(&invitation, "code"))
        .await;

    assert_problem(resp, 403, "invitation_invalid").await;
    assert_no_account(&app, "alice").await;
    assert_eq!(
        invitations(&app, &admin, &id).await[0]["state"],
        json!("revoked")
    );
    assert_problem(
        app.revoke_invitation(&admin.access_token, &id, UNKNOWN_ID)
            .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_or_malformed_code_is_refused_alike() {
    let (app, admin) = admin_app().await;
    let id = tenant(&app, &admin, None).await;
    let invitation = app
        .create_invitation_ok(&admin.access_token, &id, None)
        .await;
    let code = text(&invitation, "code");
    let mut wrong = code.to_string();
    wrong.replace_range(..1, if code.starts_with('A') { "B" } else { "A" });

    for guess in [wrong.as_str(), "", "not-a-code"] {
        let resp = app.register_with_invitation("alice", PASSWORD, guess).await;
        assert_problem(resp, 403, "invitation_invalid").await;
    }
    let both = app
        .post_json(
            "/auth/register",
            &json!({"username": "alice", "password": PASSWORD, "invitation": code, "tenant": id}),
        )
        .await;
    assert_problem(both, 400, "invalid_request").await;
    assert_no_account(&app, "alice").await;
    // The right code is untouched by the failures.
    let resp = app.register_with_invitation("alice", PASSWORD, code).await;
    json_response(resp, 201).await;
}

// ---- seats ----

#[tokio::test]
async fn invitations_count_against_max_accounts() {
    let (app, admin) = admin_app().await;
    let id = tenant(&app, &admin, Some(2)).await;
    let resp = app
        .register_in_tenant(&admin.access_token, "alice", PASSWORD, &id)
        .await;
    json_response(resp, 201).await;

    let first = app
        .create_invitation_ok(&admin.access_token, &id, None)
        .await;
    assert_problem(
        app.create_invitation(&admin.access_token, &id, None).await,
        409,
        "tenant_full",
    )
    .await;
    // The outstanding invitation's seat is not the admin's to give away either.
    assert_problem(
        app.register_in_tenant(&admin.access_token, "bob", PASSWORD, &id)
            .await,
        409,
        "tenant_full",
    )
    .await;
    let (dave, _) = app.signed_up("dave").await;
    assert_problem(
        app.admin_patch_user(
            &admin.access_token,
            text(&dave, "id"),
            &json!({"tenant": id}),
        )
        .await,
        409,
        "tenant_full",
    )
    .await;

    let resp = app
        .revoke_invitation(&admin.access_token, &id, text(&first, "id"))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let second = app
        .create_invitation_ok(&admin.access_token, &id, None)
        .await;
    let resp = app
        .register_with_invitation("carol", PASSWORD, text(&second, "code"))
        .await;
    json_response(resp, 201).await;

    assert_eq!(members(&app, &admin, &id).await, json!(2));
    assert_problem(
        app.create_invitation(&admin.access_token, &id, None).await,
        409,
        "tenant_full",
    )
    .await;
}

// ---- listing and administration ----

#[tokio::test]
async fn the_list_shows_every_invitation_but_never_a_code() {
    let (app, admin) = admin_app().await;
    let id = tenant(&app, &admin, None).await;
    let first = app
        .create_invitation_ok(&admin.access_token, &id, Some(&json!({"expires_in": 3600})))
        .await;
    let second = app
        .create_invitation_ok(&admin.access_token, &id, None)
        .await;

    let resp = app.list_invitations(&admin.access_token, &id).await;

    let text_body = resp.text().await.expect("body");
    for created in [&first, &second] {
        assert!(
            !text_body.contains(text(created, "code")),
            "a code leaked into the list: {text_body}"
        );
    }
    let body: Value = serde_json::from_str(&text_body).expect("json");
    let listed = body["invitations"].as_array().expect("array");
    assert_eq!(listed.len(), 2);
    for (entry, created) in listed.iter().zip([&first, &second]) {
        assert_eq!(entry["id"], created["id"]);
        assert_eq!(entry["expires_at"], created["expires_at"]);
        assert_eq!(entry["tenant"], json!(id));
        assert_eq!(entry["state"], json!("pending"));
        assert!(entry["created_at"].as_u64().is_some(), "{entry}");
        assert!(entry.get("code").is_none(), "{entry}");
    }
}

#[tokio::test]
async fn only_an_admin_manages_invitations() {
    let (app, admin) = admin_app().await;
    let id = tenant(&app, &admin, None).await;
    let invitation = app
        .create_invitation_ok(&admin.access_token, &id, None)
        .await;
    let (_, user) = app.signed_up("mallory").await;
    let member_path = format!(
        "/admin/tenants/{id}/invitations/{}",
        text(&invitation, "id")
    );

    assert_problem(
        app.create_invitation(&user.access_token, &id, None).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.list_invitations(&user.access_token, &id).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.request(Method::DELETE, &member_path, Some(&user.access_token))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_token_error(
        app.request(
            Method::POST,
            &format!("/admin/tenants/{id}/invitations"),
            None,
        )
        .await,
        "token_missing",
    )
    .await;
    assert_eq!(invitations(&app, &admin, &id).await.len(), 1);
    assert_eq!(
        invitations(&app, &admin, &id).await[0]["state"],
        json!("pending")
    );
}

#[tokio::test]
async fn unknown_tenants_and_bad_lifetimes_are_refused() {
    let (app, admin) = admin_app().await;
    let id = tenant(&app, &admin, None).await;

    for tenant in [UNKNOWN_ID, "nope"] {
        assert_problem(
            app.create_invitation(&admin.access_token, tenant, None)
                .await,
            404,
            "not_found",
        )
        .await;
        assert_problem(
            app.list_invitations(&admin.access_token, tenant).await,
            404,
            "not_found",
        )
        .await;
    }
    for expires_in in [json!(0), json!(31 * 24 * 3600), json!("7d"), json!(-1)] {
        let resp = app
            .create_invitation(
                &admin.access_token,
                &id,
                Some(&json!({ "expires_in": expires_in })),
            )
            .await;
        assert_problem(resp, 400, "invalid_request").await;
    }
    assert!(invitations(&app, &admin, &id).await.is_empty());
}

#[tokio::test]
async fn deleting_a_tenant_voids_its_invitations() {
    let (app, admin) = admin_app().await;
    let id = tenant(&app, &admin, None).await;
    let invitation = app
        .create_invitation_ok(&admin.access_token, &id, None)
        .await;

    let resp = app.delete_tenant(&admin.access_token, &id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = app
        .register_with_invitation("alice", PASSWORD, text(&invitation, "code"))
        .await;

    assert_problem(resp, 403, "invitation_invalid").await;
    assert_no_account(&app, "alice").await;
}

#[tokio::test]
async fn an_invitation_admits_when_registration_is_by_admin_only() {
    let (app, admin) = spawn_app_with_admin(|s| s.auth.registration = Registration::Admin).await;
    let id = tenant(&app, &admin, None).await;
    let invitation = app
        .create_invitation_ok(&admin.access_token, &id, None)
        .await;

    assert_token_error(app.register("eve", PASSWORD).await, "token_missing").await;
    let resp = app
        .register_with_invitation("alice", PASSWORD, text(&invitation, "code"))
        .await;

    assert_eq!(json_response(resp, 201).await["user"]["tenant"], json!(id));
}

/// The real binary, with a bootstrap admin, on `data`, logging at `info`.
fn claimd_with_admin(workdir: &std::path::Path, data: &std::path::Path) -> ClaimdProcess {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .env("CLAIMD__BOOTSTRAP__ADMIN_USERNAME", ADMIN)
        .env("CLAIMD__BOOTSTRAP__ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "debug");
    ClaimdProcess::start(cmd)
}

#[tokio::test]
async fn invitations_survive_kill9_and_codes_never_reach_the_log() {
    let (dir, data) = workdir();
    let server = claimd_with_admin(dir.path(), &data);
    let app = server.app();
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    let id = tenant(&app, &admin, Some(2)).await;
    let used = app
        .create_invitation_ok(&admin.access_token, &id, None)
        .await;
    let pending = app
        .create_invitation_ok(&admin.access_token, &id, None)
        .await;
    let resp = app
        .register_with_invitation("alice", PASSWORD, text(&used, "code"))
        .await;
    json_response(resp, 201).await;
    let resp = app.register_with_invitation("bob", PASSWORD, "guess").await;
    assert_problem(resp, 403, "invitation_invalid").await;
    let logs = format!("{}{}", server.stdout(), server.stderr());

    server.kill9();
    let restarted = claimd_with_admin(dir.path(), &data);
    let app = restarted.app();
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;

    for created in [&used, &pending] {
        assert!(
            !logs.contains(text(created, "code")),
            "an invitation code reached the log"
        );
    }
    assert!(
        logs.contains("invitation created"),
        "the log says what happened"
    );
    let resp = app
        .register_with_invitation("carol", PASSWORD, text(&used, "code"))
        .await;
    assert_problem(resp, 403, "invitation_invalid").await;
    // The pending invitation still holds the last seat.
    assert_problem(
        app.create_invitation(&admin.access_token, &id, None).await,
        409,
        "tenant_full",
    )
    .await;
    let resp = app
        .register_with_invitation("dave", PASSWORD, text(&pending, "code"))
        .await;
    json_response(resp, 201).await;
    assert_eq!(members(&app, &admin, &id).await, json!(2));
}
