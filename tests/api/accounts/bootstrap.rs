//! `bootstrap.admin_username` / `bootstrap.admin_password`: the first admin, created on the
//! first start when the name is free — and only then. A later start with other values (a
//! changed environment, a leaked old secret) neither resets the password nor promotes an
//! account someone else registered under that name.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, claimd_command, json_response, spawn_app_with, workdir, ClaimdProcess, PASSWORD,
};

const FIRST_PASSWORD: &str = "the first admin passphrase";
const SECOND_PASSWORD: &str = "a different admin passphrase";

fn start_with_bootstrap(
    workdir: &Path,
    data: &Path,
    username: &str,
    password: &str,
) -> ClaimdProcess {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .env("CLAIMD__BOOTSTRAP__ADMIN_USERNAME", username)
        .env("CLAIMD__BOOTSTRAP__ADMIN_PASSWORD", password);
    ClaimdProcess::start(cmd)
}

fn stop(server: ClaimdProcess) {
    let (status, _, stderr) = server.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean stop: {status:?}\n{stderr}"
    );
}

#[tokio::test]
async fn bootstrap_settings_create_an_admin_in_process() {
    let app = spawn_app_with(|s| {
        s.bootstrap.admin_username = Some("root".to_string());
        s.bootstrap.admin_password = Some(FIRST_PASSWORD.into());
    })
    .await;

    let login = app.login_ok("root", FIRST_PASSWORD).await;

    assert_eq!(login.claims()["roles"], json!(["admin"]));
    let me = json_response(app.me(&login.access_token).await, 200).await;
    assert_eq!(me["user"]["roles"], json!(["admin"]));
    let dup = app.register("root", PASSWORD).await;
    assert_problem(dup, 409, "username_taken").await;
}

#[tokio::test]
async fn without_bootstrap_settings_there_is_no_admin() {
    let app = spawn_app_with(|_| {}).await;
    let (_, login) = app.signed_up("alice").await;

    assert_eq!(login.claims()["roles"], json!([]));
    let resp = app.admin_list_users(&login.access_token, "").await;
    assert_problem(resp, 403, "forbidden").await;
}

#[tokio::test]
async fn bootstrap_environment_creates_the_admin_once() {
    let (dir, data) = workdir();
    let server = start_with_bootstrap(dir.path(), &data, "root", FIRST_PASSWORD);
    let login = server.app().login_ok("root", FIRST_PASSWORD).await;
    assert_eq!(login.claims()["roles"], json!(["admin"]));
    stop(server);

    let restarted = start_with_bootstrap(dir.path(), &data, "root", SECOND_PASSWORD);
    let app = restarted.app();

    let login = app.login_ok("root", FIRST_PASSWORD).await;
    assert_problem(
        app.login("root", SECOND_PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let body = json_response(app.admin_list_users(&login.access_token, "").await, 200).await;
    let names: Vec<&Value> = body["users"]
        .as_array()
        .expect("users array")
        .iter()
        .map(|u| &u["username"])
        .collect();
    assert_eq!(names, vec![&json!("root")], "one admin, once: {body}");
}

#[tokio::test]
async fn bootstrap_never_promotes_an_existing_account() {
    let (dir, data) = workdir();
    let server = ClaimdProcess::start_on(dir.path(), &data);
    server.app().register_ok("root", PASSWORD).await;
    stop(server);

    let restarted = start_with_bootstrap(dir.path(), &data, "root", FIRST_PASSWORD);
    let app = restarted.app();

    let login = app.login_ok("root", PASSWORD).await;
    assert_eq!(login.claims()["roles"], json!([]), "not promoted");
    assert_problem(
        app.login("root", FIRST_PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}
