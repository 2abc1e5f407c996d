//! Service credentials: `POST/GET/DELETE /admin/services` and `claimd service add NAME`. The
//! secret is shown once (never listed again), the credential authenticates introspection by
//! HTTP Basic until it is deleted, and only admins manage credentials.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_invalid_client, assert_no_secret_fields, assert_problem, assert_token_error,
    claimd_command, init_store, json_response, now_unix, run_to_exit, run_to_exit_with_stdin,
    workdir, Caller, ClaimdProcess, Exit, TestApp, Tokens,
};

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

async fn admin_app() -> (TestApp, Tokens) {
    crate::helpers::spawn_app_with_admin(|_| {}).await
}

/// The `services` array of `GET /admin/services`, asserting a 200.
async fn listed(app: &TestApp, bearer: &str) -> Vec<Value> {
    let body = json_response(app.list_services(bearer).await, 200).await;
    body["services"]
        .as_array()
        .unwrap_or_else(|| panic!("services is an array: {body}"))
        .clone()
}

#[tokio::test]
async fn create_service_answers_201_with_id_secret_and_name() {
    let (app, admin) = admin_app().await;

    let service = app.create_service_ok(&admin.access_token, "billing").await;

    assert_ne!(service.client_id, service.client_secret);
    assert!(
        service.client_secret.len() >= 32,
        "a secret of at least 256 bits' worth of text: {:?}",
        service.client_secret.len()
    );
    let body = app
        .introspect_ok(service.caller(), &admin.access_token)
        .await;
    assert_eq!(body["active"], json!(true), "the credential works: {body}");
}

#[tokio::test]
async fn two_services_get_different_credentials() {
    let (app, admin) = admin_app().await;

    let first = app.create_service_ok(&admin.access_token, "billing").await;
    let second = app.create_service_ok(&admin.access_token, "billing").await;

    assert_ne!(first.client_id, second.client_id);
    assert_ne!(first.client_secret, second.client_secret);
    // Each secret belongs to its own id only.
    let crossed = app
        .introspect(
            Caller::Basic(&first.client_id, &second.client_secret),
            &admin.access_token,
        )
        .await;
    assert_invalid_client(crossed).await;
}

#[tokio::test]
async fn list_services_shows_ids_names_and_times_never_a_secret() {
    let (app, admin) = admin_app().await;
    let billing = app.create_service_ok(&admin.access_token, "billing").await;
    let search = app.create_service_ok(&admin.access_token, "search").await;

    let resp = app.list_services(&admin.access_token).await;
    let text = resp.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).expect("json");

    for secret in [&billing.client_secret, &search.client_secret] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is listed: {text}"
        );
    }
    assert_no_secret_fields(&body);
    let services = body["services"].as_array().expect("services array");
    assert_eq!(services.len(), 2, "{body}");
    let now = now_unix();
    for (service, expected) in [(&billing, "billing"), (&search, "search")] {
        let entry = services
            .iter()
            .find(|s| s["client_id"] == json!(service.client_id))
            .unwrap_or_else(|| panic!("{expected} is listed: {body}"));
        assert_eq!(entry["name"], json!(expected));
        let created = entry["created_at"]
            .as_u64()
            .unwrap_or_else(|| panic!("created_at is unix seconds: {entry}"));
        assert!(
            created + 60 >= now && created <= now + 60,
            "created_at {created}"
        );
    }
}

#[tokio::test]
async fn deleted_service_is_gone_and_can_no_longer_authenticate() {
    let (app, admin) = admin_app().await;
    let billing = app.create_service_ok(&admin.access_token, "billing").await;
    let search = app.create_service_ok(&admin.access_token, "search").await;

    let resp = app
        .delete_service(&admin.access_token, &billing.client_id)
        .await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let services = listed(&app, &admin.access_token).await;
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(services[0]["client_id"], json!(search.client_id));
    assert_invalid_client(app.introspect(billing.caller(), &admin.access_token).await).await;
    assert_invalid_client(app.revoke(billing.caller(), &admin.access_token).await).await;
    let body = app
        .introspect_ok(search.caller(), &admin.access_token)
        .await;
    assert_eq!(body["active"], json!(true), "the other service still works");
    assert_eq!(
        app.me(&admin.access_token).await.status(),
        StatusCode::OK,
        "a refused revocation revoked nothing"
    );
}

#[tokio::test]
async fn deleting_an_unknown_service_is_404() {
    let (app, admin) = admin_app().await;
    let billing = app.create_service_ok(&admin.access_token, "billing").await;
    assert_eq!(
        app.delete_service(&admin.access_token, &billing.client_id)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    let again = app
        .delete_service(&admin.access_token, &billing.client_id)
        .await;
    assert_problem(again, 404, "not_found").await;
    let unknown = app
        .delete_service(&admin.access_token, "no-such-client")
        .await;
    assert_problem(unknown, 404, "not_found").await;
}

#[tokio::test]
async fn create_service_without_a_name_is_invalid_request() {
    let (app, admin) = admin_app().await;

    let resp = app
        .send_json(
            Method::POST,
            "/admin/services",
            Some(&admin.access_token),
            &json!({}),
        )
        .await;

    assert_problem(resp, 400, "invalid_request").await;
    assert!(listed(&app, &admin.access_token).await.is_empty());
}

#[tokio::test]
async fn only_admins_manage_services() {
    let (app, admin) = admin_app().await;
    let billing = app.create_service_ok(&admin.access_token, "billing").await;
    let (_, alice) = app.signed_up("alice").await;
    let token = &alice.access_token;

    assert_problem(app.create_service(token, "mine").await, 403, "forbidden").await;
    assert_problem(app.list_services(token).await, 403, "forbidden").await;
    assert_problem(
        app.delete_service(token, &billing.client_id).await,
        403,
        "forbidden",
    )
    .await;
    let resp = app.request(Method::GET, "/admin/services", None).await;
    assert_token_error(resp, "token_missing").await;
    assert_eq!(
        listed(&app, &admin.access_token).await.len(),
        1,
        "nothing was created or deleted"
    );
}

#[tokio::test]
async fn a_service_credential_is_not_an_admin_token() {
    let (app, admin) = admin_app().await;
    let billing = app.create_service_ok(&admin.access_token, "billing").await;

    let resp = app
        .client
        .get(app.url("/admin/services"))
        .basic_auth(&billing.client_id, Some(&billing.client_secret))
        .send()
        .await
        .expect("request sent");

    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

// ---- claimd service add ----

fn client_line<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("stdout has a `{key}: ...` line: {stdout}"))
}

#[tokio::test]
async fn cli_service_add_prints_a_credential_that_authenticates() {
    let (dir, data) = workdir();
    init_store(&data);
    let admin_exit = run_to_exit_with_stdin(
        {
            let mut cmd = claimd_command(dir.path());
            cmd.env("CLAIMD__STORAGE__PATH", &data).args([
                "user",
                "add",
                "--admin",
                "--username",
                "root",
            ]);
            cmd
        },
        "the admin's own passphrase\n",
        EXIT_TIMEOUT,
    );
    assert!(
        admin_exit.status.is_some_and(|s| s.success()),
        "user add: {admin_exit:?}"
    );
    let mut cmd = claimd_command(dir.path());
    cmd.env("CLAIMD__STORAGE__PATH", &data)
        .args(["service", "add", "billing"]);

    let exit = run_to_exit(cmd, EXIT_TIMEOUT);

    assert!(
        exit.status.is_some_and(|s| s.success()),
        "service add: {exit:?}"
    );
    let client_id = client_line(&exit.stdout, "client_id").to_string();
    let client_secret = client_line(&exit.stdout, "client_secret").to_string();
    assert!(
        !client_id.is_empty() && !client_secret.is_empty(),
        "{exit:?}"
    );
    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    let admin = app.login_ok("root", "the admin's own passphrase").await;
    let body = app
        .introspect_ok(
            Caller::Basic(&client_id, &client_secret),
            &admin.access_token,
        )
        .await;
    assert_eq!(body["active"], json!(true), "{body}");
    assert_eq!(body["username"], json!("root"), "{body}");
    let services = listed(&app, &admin.access_token).await;
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(services[0]["client_id"], json!(client_id));
    assert_eq!(services[0]["name"], json!("billing"));
    let wrong = app
        .introspect(
            Caller::Basic(&client_id, "not-the-secret"),
            &admin.access_token,
        )
        .await;
    assert_invalid_client(wrong).await;
}

/// Tests of the embedded store's own files (the data directory, its lock, a backup file):
/// nothing to test on PostgreSQL, so `.ci/run`'s PostgreSQL pass skips `::sled_files::`.
mod sled_files {
    use super::*;

    #[tokio::test]
    async fn cli_service_add_refuses_a_data_dir_the_server_holds() {
        let (dir, data) = workdir();
        init_store(&data);
        let server = ClaimdProcess::start_on(dir.path(), &data);
        let mut cmd = claimd_command(dir.path());
        cmd.env("CLAIMD__STORAGE__PATH", &data)
            .args(["service", "add", "billing"]);

        let exit: Exit = run_to_exit(cmd, EXIT_TIMEOUT);

        let status = exit
            .status
            .unwrap_or_else(|| panic!("service add still running: {exit:?}"));
        assert!(
            !status.success(),
            "service add beside a running server: {exit:?}"
        );
        assert!(!exit.stdout.contains("client_secret"), "{exit:?}");
        assert_eq!(
            server.app().healthz().await.status(),
            StatusCode::OK,
            "the server is unharmed"
        );
    }
}
