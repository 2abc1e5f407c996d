//! `/admin/tenants` and registration into a tenant: the tenant shape, `tv` bumped by every
//! change so all members' tokens turn stale at once, `max_accounts` enforced at registration
//! even under concurrency, and deletion only of an empty tenant.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, assert_token_error, json_response, now_unix, spawn_app_with_admin,
    token_response, TestApp, Tokens, PASSWORD, UNKNOWN_ID,
};

async fn admin_app() -> (TestApp, Tokens) {
    spawn_app_with_admin(|_| {}).await
}

fn tenant_id(tenant: &Value) -> String {
    tenant["id"]
        .as_str()
        .unwrap_or_else(|| panic!("tenant id is a string: {tenant}"))
        .to_string()
}

/// Registers `username` into `tenant` by the admin (asserting 201) and logs in.
async fn member(app: &TestApp, admin: &Tokens, username: &str, tenant: &str) -> (Value, Tokens) {
    let resp = app
        .register_in_tenant(&admin.access_token, username, PASSWORD, tenant)
        .await;
    let body = json_response(resp, 201).await;
    let login = app.login_ok(username, PASSWORD).await;
    (body["user"].clone(), login)
}

// ---- POST /admin/tenants ----

#[tokio::test]
async fn create_tenant_answers_201_with_defaults() {
    let (app, admin) = admin_app().await;

    let resp = app
        .create_tenant(&admin.access_token, &json!({"name": "Acme"}))
        .await;

    let body = json_response(resp, 201).await;
    let tenant = &body["tenant"];
    assert!(!tenant_id(tenant).is_empty());
    assert_eq!(tenant["name"], json!("Acme"));
    assert_eq!(tenant["plan"], json!("free"));
    assert_eq!(tenant["max_accounts"], Value::Null);
    assert_eq!(tenant["attrs"], json!({}));
    assert_eq!(tenant["version"], json!(1));
    assert_eq!(tenant["members"], json!(0));
    let now = now_unix();
    for field in ["created_at", "updated_at"] {
        let ts = tenant[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} is unix seconds: {body}"));
        assert!(ts + 60 >= now && ts <= now + 60, "{field} = {ts}");
    }
}

#[tokio::test]
async fn create_tenant_takes_plan_limit_and_attrs() {
    let (app, admin) = admin_app().await;

    let tenant = app
        .create_tenant_ok(
            &admin.access_token,
            &json!({"name": "Globex", "plan": "enterprise", "max_accounts": 5,
                    "attrs": {"region": "eu"}}),
        )
        .await;

    assert_eq!(tenant["name"], json!("Globex"));
    assert_eq!(tenant["plan"], json!("enterprise"));
    assert_eq!(tenant["max_accounts"], json!(5));
    assert_eq!(tenant["attrs"], json!({"region": "eu"}));
    assert_eq!(tenant["version"], json!(1));
    let fetched = app
        .get_tenant_ok(&admin.access_token, &tenant_id(&tenant))
        .await;
    assert_eq!(fetched, tenant);
}

#[tokio::test]
async fn two_tenants_get_different_ids() {
    let (app, admin) = admin_app().await;

    let a = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "A"}))
        .await;
    let b = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "A"}))
        .await;

    assert_ne!(a["id"], b["id"]);
}

#[tokio::test]
async fn create_tenant_without_a_name_is_invalid_request() {
    let (app, admin) = admin_app().await;

    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": 5}),
        json!({"plan": "pro"}),
        json!({"name": "Acme", "plan": "has space"}),
        json!({"name": "Acme", "max_accounts": -1}),
        json!({"name": "Acme", "max_accounts": "ten"}),
        json!({"name": "Acme", "attrs": []}),
        json!({"name": "Acme", "foo": 1}),
    ] {
        let resp = app.create_tenant(&admin.access_token, &body).await;
        assert_problem(resp, 400, "invalid_request").await;
    }

    let body = json_response(app.list_tenants(&admin.access_token).await, 200).await;
    assert_eq!(body["tenants"], json!([]), "nothing was created: {body}");
}

#[tokio::test]
async fn tenant_routes_are_for_admins_only() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let id = tenant_id(&tenant);
    let (_, alice) = app.signed_up("alice").await;
    let token = alice.access_token.as_str();

    let resp = app.create_tenant(token, &json!({"name": "Mine"})).await;
    assert_problem(resp, 403, "forbidden").await;
    assert_problem(app.get_tenant(token, &id).await, 403, "forbidden").await;
    assert_problem(app.list_tenants(token).await, 403, "forbidden").await;
    let resp = app.patch_tenant(token, &id, &json!({"plan": "pro"})).await;
    assert_problem(resp, 403, "forbidden").await;
    assert_problem(app.delete_tenant(token, &id).await, 403, "forbidden").await;

    for (method, path) in [
        (Method::POST, "/admin/tenants".to_string()),
        (Method::GET, "/admin/tenants".to_string()),
        (Method::GET, format!("/admin/tenants/{id}")),
        (Method::DELETE, format!("/admin/tenants/{id}")),
    ] {
        assert_token_error(app.request(method, &path, None).await, "token_missing").await;
    }

    let unchanged = app.get_tenant_ok(&admin.access_token, &id).await;
    assert_eq!(unchanged, tenant);
}

// ---- GET ----

#[tokio::test]
async fn list_tenants_answers_every_tenant() {
    let (app, admin) = admin_app().await;
    let a = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "A"}))
        .await;
    let b = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "B"}))
        .await;

    let body = json_response(app.list_tenants(&admin.access_token).await, 200).await;

    let tenants = body["tenants"].as_array().expect("tenants array");
    assert_eq!(tenants.len(), 2, "{body}");
    let ids: Vec<&Value> = tenants.iter().map(|t| &t["id"]).collect();
    assert!(ids.contains(&&a["id"]) && ids.contains(&&b["id"]), "{body}");
}

#[tokio::test]
async fn get_tenant_of_an_unknown_or_malformed_id_is_not_found() {
    let (app, admin) = admin_app().await;

    for id in [UNKNOWN_ID, "nope"] {
        assert_problem(
            app.get_tenant(&admin.access_token, id).await,
            404,
            "not_found",
        )
        .await;
    }
}

// ---- registration into a tenant ----

#[tokio::test]
async fn register_into_a_tenant_stamps_tid_and_tv() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let id = tenant_id(&tenant);

    let (user, login) = member(&app, &admin, "alice", &id).await;

    assert_eq!(user["tenant"], json!(id));
    let claims = login.claims();
    assert_eq!(claims["tid"], json!(id));
    assert_eq!(claims["tv"], json!(1));
    let me = json_response(app.me(&login.access_token).await, 200).await;
    assert_eq!(me["user"]["tenant"], json!(id));
    let fetched = app.get_tenant_ok(&admin.access_token, &id).await;
    assert_eq!(fetched["members"], json!(1));
}

#[tokio::test]
async fn register_into_an_unknown_tenant_is_invalid_request() {
    let (app, admin) = admin_app().await;

    for tenant in [UNKNOWN_ID, "nope", ""] {
        let resp = app
            .register_in_tenant(&admin.access_token, "alice", PASSWORD, tenant)
            .await;
        assert_problem(resp, 400, "invalid_request").await;
    }
    assert_problem(
        app.login("alice", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn register_into_a_full_tenant_is_tenant_full() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(
            &admin.access_token,
            &json!({"name": "Small", "max_accounts": 2}),
        )
        .await;
    let id = tenant_id(&tenant);
    member(&app, &admin, "alice", &id).await;
    member(&app, &admin, "bob", &id).await;

    let resp = app
        .register_in_tenant(&admin.access_token, "carol", PASSWORD, &id)
        .await;

    assert_problem(resp, 409, "tenant_full").await;
    assert_problem(
        app.login("carol", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let fetched = app.get_tenant_ok(&admin.access_token, &id).await;
    assert_eq!(fetched["members"], json!(2));
    // Without a tenant the same username is fine.
    app.register_ok("carol", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_never_overfill_a_tenant() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(
            &admin.access_token,
            &json!({"name": "Race", "max_accounts": 5}),
        )
        .await;
    let id = tenant_id(&tenant);

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            app.send_json_task(
                Method::POST,
                "/auth/register",
                Some(&admin.access_token),
                json!({"username": format!("racer{i:02}"), "password": PASSWORD, "tenant": id}),
            )
        })
        .collect();
    let mut created = 0;
    let mut full = 0;
    for task in tasks {
        let resp = task.await.expect("request task");
        if resp.status() == StatusCode::CREATED {
            created += 1;
        } else {
            assert_problem(resp, 409, "tenant_full").await;
            full += 1;
        }
    }

    assert_eq!((created, full), (5, 15));
    let fetched = app.get_tenant_ok(&admin.access_token, &id).await;
    assert_eq!(fetched["members"], json!(5));
}

// ---- PATCH /admin/tenants/{id} ----

#[tokio::test]
async fn patch_tenant_bumps_the_version_and_makes_every_member_stale() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let id = tenant_id(&tenant);
    let (_, alice) = member(&app, &admin, "alice", &id).await;
    let (_, bob) = member(&app, &admin, "bob", &id).await;

    let resp = app
        .patch_tenant(
            &admin.access_token,
            &id,
            &json!({"name": "Acme Corp", "plan": "enterprise"}),
        )
        .await;

    let body = json_response(resp, 200).await;
    let patched = &body["tenant"];
    assert_eq!(patched["id"], json!(id));
    assert_eq!(patched["name"], json!("Acme Corp"));
    assert_eq!(patched["plan"], json!("enterprise"));
    assert_eq!(patched["version"], json!(2));
    assert_eq!(patched["members"], json!(2));
    for login in [&alice, &bob] {
        assert_token_error(app.me(&login.access_token).await, "token_stale").await;
    }
    let remint = token_response(app.refresh_with_access(&alice.access_token).await).await;
    assert_eq!(remint.claims()["tid"], json!(id));
    assert_eq!(remint.claims()["tv"], json!(2));
    assert_eq!(app.me(&remint.access_token).await.status(), StatusCode::OK);
    let rotated = token_response(app.refresh(bob.refresh()).await).await;
    assert_eq!(rotated.claims()["tv"], json!(2));
    assert_eq!(app.me(&rotated.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn patch_tenant_leaves_non_members_alone() {
    let (app, admin) = admin_app().await;
    let acme = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let globex = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Globex"}))
        .await;
    member(&app, &admin, "alice", &tenant_id(&acme)).await;
    let (_, bob) = member(&app, &admin, "bob", &tenant_id(&globex)).await;
    let (_, carol) = app.signed_up("carol").await;

    let resp = app
        .patch_tenant(
            &admin.access_token,
            &tenant_id(&acme),
            &json!({"attrs": {"tier": 3}}),
        )
        .await;
    json_response(resp, 200).await;

    assert_eq!(app.me(&bob.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&carol.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&admin.access_token).await.status(), StatusCode::OK);
    let untouched = app
        .get_tenant_ok(&admin.access_token, &tenant_id(&globex))
        .await;
    assert_eq!(untouched["version"], json!(1));
}

#[tokio::test]
async fn each_tenant_change_bumps_the_version() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let id = tenant_id(&tenant);

    for (i, body) in [
        json!({"plan": "pro"}),
        json!({"max_accounts": 10}),
        json!({"attrs": {"k": "v"}}),
        json!({"name": "Acme 2"}),
    ]
    .into_iter()
    .enumerate()
    {
        let resp = app.patch_tenant(&admin.access_token, &id, &body).await;
        let patched = json_response(resp, 200).await["tenant"].clone();
        assert_eq!(patched["version"], json!(i as u64 + 2), "{body}: {patched}");
    }

    let fetched = app.get_tenant_ok(&admin.access_token, &id).await;
    assert_eq!(fetched["plan"], json!("pro"));
    assert_eq!(fetched["max_accounts"], json!(10));
    assert_eq!(fetched["attrs"], json!({"k": "v"}));
    assert_eq!(fetched["name"], json!("Acme 2"));
    assert_eq!(fetched["version"], json!(5));
}

#[tokio::test]
async fn new_members_login_carries_the_current_version() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let id = tenant_id(&tenant);
    let resp = app
        .patch_tenant(&admin.access_token, &id, &json!({"plan": "pro"}))
        .await;
    json_response(resp, 200).await;

    let (_, login) = member(&app, &admin, "alice", &id).await;

    assert_eq!(login.claims()["tv"], json!(2));
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn patch_tenant_with_bad_fields_is_invalid_request_and_bumps_nothing() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let id = tenant_id(&tenant);
    let (_, alice) = member(&app, &admin, "alice", &id).await;

    for body in [
        json!({"name": ""}),
        json!({"version": 9}),
        json!({"members": 0}),
        json!({"id": "x"}),
        json!({"foo": 1}),
        json!({"plan": 7}),
        json!({"attrs": "x"}),
    ] {
        let resp = app.patch_tenant(&admin.access_token, &id, &body).await;
        assert_problem(resp, 400, "invalid_request").await;
    }

    let fetched = app.get_tenant_ok(&admin.access_token, &id).await;
    assert_eq!(fetched["version"], json!(1));
    assert_eq!(fetched["name"], json!("Acme"));
    assert_eq!(app.me(&alice.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn patch_of_an_unknown_tenant_is_not_found() {
    let (app, admin) = admin_app().await;

    let resp = app
        .patch_tenant(&admin.access_token, UNKNOWN_ID, &json!({"plan": "pro"}))
        .await;

    assert_problem(resp, 404, "not_found").await;
}

#[tokio::test]
async fn raising_max_accounts_opens_the_tenant_again() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(
            &admin.access_token,
            &json!({"name": "Small", "max_accounts": 1}),
        )
        .await;
    let id = tenant_id(&tenant);
    member(&app, &admin, "alice", &id).await;
    let resp = app
        .register_in_tenant(&admin.access_token, "bob", PASSWORD, &id)
        .await;
    assert_problem(resp, 409, "tenant_full").await;

    let resp = app
        .patch_tenant(&admin.access_token, &id, &json!({"max_accounts": 2}))
        .await;
    json_response(resp, 200).await;

    member(&app, &admin, "bob", &id).await;
}

// ---- DELETE /admin/tenants/{id} ----

#[tokio::test]
async fn delete_empty_tenant_is_204_and_it_is_gone() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let id = tenant_id(&tenant);

    let resp = app.delete_tenant(&admin.access_token, &id).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.text().await.unwrap().is_empty(), "204 has no body");
    assert_problem(
        app.get_tenant(&admin.access_token, &id).await,
        404,
        "not_found",
    )
    .await;
    let resp = app
        .register_in_tenant(&admin.access_token, "alice", PASSWORD, &id)
        .await;
    assert_problem(resp, 400, "invalid_request").await;
    let body = json_response(app.list_tenants(&admin.access_token).await, 200).await;
    assert_eq!(body["tenants"], json!([]));
}

#[tokio::test]
async fn delete_tenant_with_members_is_tenant_not_empty() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let id = tenant_id(&tenant);
    let (_, alice) = member(&app, &admin, "alice", &id).await;

    let resp = app.delete_tenant(&admin.access_token, &id).await;

    assert_problem(resp, 409, "tenant_not_empty").await;
    let fetched = app.get_tenant_ok(&admin.access_token, &id).await;
    assert_eq!(fetched["members"], json!(1));
    assert_eq!(fetched["version"], json!(1));
    assert_eq!(app.me(&alice.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn tenant_can_be_deleted_once_its_last_member_is_deleted() {
    let (app, admin) = admin_app().await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let id = tenant_id(&tenant);
    let (alice, _) = member(&app, &admin, "alice", &id).await;
    let resp = app
        .admin_delete_user(&admin.access_token, alice["id"].as_str().unwrap())
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    let resp = app.delete_tenant(&admin.access_token, &id).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn delete_of_an_unknown_tenant_is_not_found() {
    let (app, admin) = admin_app().await;

    let resp = app.delete_tenant(&admin.access_token, UNKNOWN_ID).await;

    assert_problem(resp, 404, "not_found").await;
}
