//! `claimd user add --admin`: the first admin from the command line, with the password read
//! from the first line of stdin (never a terminal here). It writes to the store directly, so it
//! must refuse — with one clear line — a data directory a running server holds, a username
//! already taken and a password that breaks the rules.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    assert_problem, claimd_command, json_response, run_to_exit_with_stdin, workdir, ClaimdProcess,
    Exit, PASSWORD,
};

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
const ADMIN_PASSWORD: &str = "an operator's passphrase";

/// `claimd user add --admin --username NAME` on `data` (through `CLAIMD__STORAGE__PATH`).
fn user_add_command(workdir: &Path, data: &Path, username: &str) -> Command {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .args(["user", "add", "--admin", "--username", username]);
    cmd
}

fn user_add(workdir: &Path, data: &Path, username: &str, stdin: &str) -> Exit {
    run_to_exit_with_stdin(
        user_add_command(workdir, data, username),
        stdin,
        EXIT_TIMEOUT,
    )
}

fn assert_success(exit: &Exit) {
    let status = exit
        .status
        .unwrap_or_else(|| panic!("still running after {EXIT_TIMEOUT:?}: {exit:?}"));
    assert!(status.success(), "user add failed: {exit:?}");
}

/// Non-zero exit, not from a signal, no panic; returns stderr in lower case.
fn assert_failed(exit: &Exit) -> String {
    let status = exit
        .status
        .unwrap_or_else(|| panic!("still running after {EXIT_TIMEOUT:?}: {exit:?}"));
    assert!(!status.success(), "user add succeeded: {exit:?}");
    assert!(status.code().is_some(), "died from a signal: {exit:?}");
    assert!(
        !exit.stderr.contains("panicked") && !exit.stdout.contains("panicked"),
        "panicked: {exit:?}"
    );
    exit.stderr.to_lowercase()
}

/// [`assert_failed`] with exactly one non-empty line on stderr; returns it.
fn assert_one_line_failure(exit: &Exit) -> String {
    assert_failed(exit);
    let lines: Vec<&str> = exit
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {exit:?}");
    lines[0].to_lowercase()
}

#[tokio::test]
async fn user_add_admin_creates_an_admin_who_can_log_in() {
    let (dir, data) = workdir();

    let exit = user_add(dir.path(), &data, "root", &format!("{ADMIN_PASSWORD}\n"));

    assert_success(&exit);
    assert!(
        exit.stdout.contains("root"),
        "stdout mentions the user: {exit:?}"
    );
    assert!(
        !exit.stdout.contains(ADMIN_PASSWORD) && !exit.stderr.contains(ADMIN_PASSWORD),
        "the password is never echoed: {exit:?}"
    );
    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    let login = app.login_ok("root", ADMIN_PASSWORD).await;
    assert_eq!(login.claims()["roles"], json!(["admin"]));
    json_response(app.admin_list_users(&login.access_token, "").await, 200).await;
}

#[tokio::test]
async fn user_add_reads_only_the_first_line_of_stdin() {
    let (dir, data) = workdir();

    let exit = user_add(
        dir.path(),
        &data,
        "root",
        &format!("{ADMIN_PASSWORD}\nsomething else entirely\n"),
    );

    assert_success(&exit);
    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    app.login_ok("root", ADMIN_PASSWORD).await;
    assert_problem(
        app.login(
            "root",
            &format!("{ADMIN_PASSWORD}\nsomething else entirely"),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn user_add_honours_a_config_file() {
    let (dir, data) = workdir();
    let config = dir.path().join("claimd-admin.toml");
    std::fs::write(
        &config,
        format!("[storage]\npath = {:?}\n", data.to_str().unwrap()),
    )
    .unwrap();
    let mut cmd = claimd_command(dir.path());
    cmd.arg("--config")
        .arg(&config)
        .args(["user", "add", "--admin", "--username", "root"]);

    let exit = run_to_exit_with_stdin(cmd, &format!("{ADMIN_PASSWORD}\n"), EXIT_TIMEOUT);

    assert_success(&exit);
    assert!(
        data.is_dir(),
        "storage.path from the file was used: {exit:?}"
    );
    let mut serve = claimd_command(dir.path());
    serve.arg("--config").arg(&config);
    let server = ClaimdProcess::start(serve);
    let login = server.app().login_ok("root", ADMIN_PASSWORD).await;
    assert_eq!(login.claims()["roles"], json!(["admin"]));
}

#[tokio::test]
async fn user_add_while_the_server_runs_is_refused_as_in_use() {
    let (dir, data) = workdir();
    let server = ClaimdProcess::start_on(dir.path(), &data);

    let exit = user_add(dir.path(), &data, "root", &format!("{ADMIN_PASSWORD}\n"));

    let line = assert_one_line_failure(&exit);
    assert!(
        line.contains("in use"),
        "stderr says the store is in use: {line}"
    );
    // The running server is unharmed and has no such user.
    let app = server.app();
    assert_eq!(app.healthz().await.status(), StatusCode::OK);
    assert_problem(
        app.login("root", ADMIN_PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn user_add_of_a_taken_username_is_refused() {
    let (dir, data) = workdir();
    assert_success(&user_add(
        dir.path(),
        &data,
        "root",
        &format!("{ADMIN_PASSWORD}\n"),
    ));

    let exit = user_add(dir.path(), &data, "root", &format!("{PASSWORD}\n"));

    let line = assert_failed(&exit);
    assert!(
        line.contains("taken"),
        "stderr says the name is taken: {line}"
    );
    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    app.login_ok("root", ADMIN_PASSWORD).await;
    assert_problem(
        app.login("root", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn user_add_of_a_name_taken_by_a_registered_user_is_refused() {
    let (dir, data) = workdir();
    {
        let server = ClaimdProcess::start_on(dir.path(), &data);
        server.app().register_ok("root", PASSWORD).await;
        let (status, _, stderr) = server.terminate(Duration::from_secs(20));
        assert!(status.is_some_and(|s| s.success()), "{stderr}");
    }

    let exit = user_add(dir.path(), &data, "Root", &format!("{ADMIN_PASSWORD}\n"));

    let line = assert_failed(&exit);
    assert!(line.contains("taken"), "{line}");
    let server = ClaimdProcess::start_on(dir.path(), &data);
    let login = server.app().login_ok("root", PASSWORD).await;
    assert_eq!(login.claims()["roles"], json!([]), "not promoted");
}

#[tokio::test]
async fn user_add_with_a_short_password_is_refused() {
    let (dir, data) = workdir();

    let exit = user_add(dir.path(), &data, "root", "short\n");

    assert_failed(&exit);
    let server = ClaimdProcess::start_on(dir.path(), &data);
    // The name is still free.
    server.app().register_ok("root", PASSWORD).await;
}

#[tokio::test]
async fn user_add_with_nothing_on_stdin_is_refused() {
    let (dir, data) = workdir();

    let exit = user_add(dir.path(), &data, "root", "");

    assert_failed(&exit);
    let server = ClaimdProcess::start_on(dir.path(), &data);
    server.app().register_ok("root", PASSWORD).await;
}
