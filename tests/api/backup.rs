//! Backup and restore with the real binary: `POST /admin/backup` while the server serves,
//! `claimd backup FILE` while it is stopped, and `claimd restore FILE` into an empty
//! directory. What was acknowledged before the backup is in the restored store (users,
//! sessions and their refresh tokens, the signing keys), tokens revoked before it stay
//! revoked, and what came after it is not there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{
    assert_problem, assert_token_error, claimd_command, run_to_exit, token_response, workdir,
    ClaimdProcess, Exit, TestApp, PASSWORD,
};

const ADMIN_PASSWORD: &str = "the admin passphrase";
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

fn start(workdir: &Path, data: &Path) -> ClaimdProcess {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .env("CLAIMD__BOOTSTRAP__ADMIN_USERNAME", "root")
        .env("CLAIMD__BOOTSTRAP__ADMIN_PASSWORD", ADMIN_PASSWORD);
    ClaimdProcess::start(cmd)
}

fn stop(server: ClaimdProcess) {
    let (status, _, stderr) = server.terminate(EXIT_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "clean stop\n{stderr}");
}

fn cli(workdir: &Path, data: &Path, args: &[&str]) -> Exit {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data).args(args);
    run_to_exit(cmd, EXIT_TIMEOUT)
}

fn assert_cli_ok(exit: &Exit, what: &str) {
    assert!(
        exit.status.is_some_and(|s| s.success()),
        "{what} failed: {exit:?}"
    );
}

/// Asserts a refused command: non-zero, one line on stderr mentioning `mention`.
fn assert_cli_refused(exit: &Exit, mention: &str) {
    assert!(
        exit.status.is_some_and(|s| !s.success()),
        "expected a failure: {exit:?}"
    );
    let lines: Vec<&str> = exit.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {exit:?}");
    assert!(
        lines[0].to_lowercase().contains(mention),
        "stderr mentions {mention:?}: {}",
        lines[0]
    );
}

async fn admin_backup(app: &TestApp, admin: &str) -> Vec<u8> {
    let resp = app
        .client
        .post(app.url("/admin/backup"))
        .bearer_auth(admin)
        .send()
        .await
        .expect("backup request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    resp.bytes().await.expect("backup body").to_vec()
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write backup file");
    path
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_what_was_acknowledged() {
    if crate::backend::sled_only("the backup file") {
        return;
    }
    let (dir, data) = workdir();
    let server = start(dir.path(), &data);
    let app = server.app();
    let admin = app.login_ok("root", ADMIN_PASSWORD).await;
    let (_, alice) = app.signed_up("alice").await;
    let (_, bob) = app.signed_up("bob").await;
    assert_eq!(app.logout(&bob.access_token).await.status(), 204);
    let jwks = app.jwks_ok().await;

    let backup = admin_backup(&app, &admin.access_token).await;
    app.signed_up("carol").await;
    stop(server);
    let file = write_file(dir.path(), "claimd.backup", &backup);

    let restored = dir.path().join("restored");
    assert_cli_ok(
        &cli(dir.path(), &restored, &["restore", file.to_str().unwrap()]),
        "restore",
    );
    let server = start(dir.path(), &restored);
    let app = server.app();

    assert_eq!(app.jwks_ok().await, jwks, "the same signing keys");
    let me = app.me(&alice.access_token).await;
    assert_eq!(me.status(), StatusCode::OK, "alice's access token verifies");
    let resp = app.refresh(alice.refresh()).await;
    assert_eq!(resp.status(), StatusCode::OK, "alice's session refreshes");
    token_response(resp).await;
    assert_token_error(app.me(&bob.access_token).await, "token_revoked").await;
    assert_problem(app.refresh(bob.refresh()).await, 400, "invalid_grant").await;
    let carol = app.login("carol", PASSWORD).await;
    assert_problem(carol, 401, "invalid_credentials").await;
    app.login_ok("root", ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn backup_needs_an_admin() {
    let (dir, data) = workdir();
    let server = start(dir.path(), &data);
    let app = server.app();
    let (_, alice) = app.signed_up("alice").await;

    let resp = app
        .client
        .post(app.url("/admin/backup"))
        .bearer_auth(&alice.access_token)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 403, "forbidden").await;
    let resp = app
        .client
        .post(app.url("/admin/backup"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 401, "token_missing").await;
}

#[tokio::test]
async fn the_command_line_backs_up_a_stopped_server_and_restore_refuses_a_used_directory() {
    if crate::backend::sled_only("the backup file") {
        return;
    }
    let (dir, data) = workdir();
    let server = start(dir.path(), &data);
    server.app().signed_up("alice").await;
    let file = dir.path().join("offline.backup");

    let in_use = cli(dir.path(), &data, &["backup", file.to_str().unwrap()]);
    assert_cli_refused(&in_use, "in use");
    stop(server);

    assert_cli_ok(
        &cli(dir.path(), &data, &["backup", file.to_str().unwrap()]),
        "backup",
    );
    let refused = cli(dir.path(), &data, &["restore", file.to_str().unwrap()]);
    assert_cli_refused(&refused, "not empty");

    let mut damaged = std::fs::read(&file).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    let damaged = write_file(dir.path(), "damaged.backup", &damaged);
    let elsewhere = dir.path().join("elsewhere");
    let refused = cli(
        dir.path(),
        &elsewhere,
        &["restore", damaged.to_str().unwrap()],
    );
    assert_cli_refused(&refused, "damaged");
    assert!(!elsewhere.exists(), "a refused restore leaves nothing");

    let restored = dir.path().join("restored");
    assert_cli_ok(
        &cli(dir.path(), &restored, &["restore", file.to_str().unwrap()]),
        "restore",
    );
    let server = start(dir.path(), &restored);
    server.app().login_ok("alice", PASSWORD).await;
}
