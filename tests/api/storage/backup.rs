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

/// Restores `backup` with `claimd restore` into `restored` under `workdir` and starts a
/// server on it.
fn start_restored(workdir: &Path, backup: &[u8]) -> ClaimdProcess {
    let file = write_file(workdir, "claimd.backup", backup);
    let restored = workdir.join("restored");
    assert_cli_ok(
        &cli(workdir, &restored, &["restore", file.to_str().unwrap()]),
        "restore",
    );
    start(workdir, &restored)
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write backup file");
    path
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

/// What `GET /events/snapshot` says the stream continues from.
async fn feed_position(app: &TestApp, admin: &str) -> u64 {
    let resp = app
        .client
        .get(app.url("/events/snapshot"))
        .bearer_auth(admin)
        .send()
        .await
        .expect("snapshot request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.expect("snapshot body");
    body["continues_from"].as_u64().expect("continues_from")
}

/// `GET /events` resuming after `last_event_id`.
async fn resume_feed(app: &TestApp, admin: &str, last_event_id: u64) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/events"))
        .bearer_auth(admin)
        .header("accept", "text/event-stream")
        .header("last-event-id", last_event_id.to_string())
        .send()
        .await
        .expect("GET /events")
}

/// The first event id a stream carries, read within a few seconds.
async fn first_event_id(mut stream: reqwest::Response) -> u64 {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(line) = text.lines().find_map(|line| line.strip_prefix("id:")) {
            return line.trim().parse().expect("a numeric event id");
        }
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("an event within 5 s")
            .expect("the stream reads")
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Tests of the embedded store's own files (the data directory, its lock, a backup file):
/// nothing to test on PostgreSQL, so `.ci/run`'s PostgreSQL pass skips `::sled_files::`.
mod sled_files {
    use super::*;

    #[tokio::test]
    async fn a_backup_taken_while_serving_restores_what_was_acknowledged() {
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
        let server = start_restored(dir.path(), &backup);
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
    async fn the_command_line_backs_up_a_stopped_server_and_restore_refuses_a_used_directory() {
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

    /// Issue 19 §3: a restored log numbered on from the backup's last id, so once the restored
    /// store had written as many records as the backup missed, a verifier's `Last-Event-ID`
    /// from the lost history was valid again and it silently skipped what lay between. Ids
    /// now never repeat: the verifier gets 410 however much is written, while one whose id
    /// the backup holds goes on without a gap.
    #[tokio::test]
    async fn after_a_restore_a_feed_id_from_the_lost_history_answers_410() {
        let (dir, data) = workdir();
        let server = start(dir.path(), &data);
        let app = server.app();
        let admin = app.login_ok("root", ADMIN_PASSWORD).await;
        let (_, alice) = app.signed_up("alice").await;
        let before_backup = feed_position(&app, &admin.access_token).await;
        let backup = admin_backup(&app, &admin.access_token).await;
        // The history the restore takes back: ten sessions revoked.
        for lost in 0..10 {
            let (_, user) = app.signed_up(&format!("lost{lost}")).await;
            assert_eq!(app.logout(&user.access_token).await.status(), 204);
        }
        let lost_position = feed_position(&app, &admin.access_token).await;
        assert!(lost_position > before_backup);
        stop(server);

        let server = start_restored(dir.path(), &backup);
        let app = server.app();
        let admin = app.login_ok("root", ADMIN_PASSWORD).await;
        // More records than the backup missed.
        for later in 0..20 {
            let (_, user) = app.signed_up(&format!("later{later}")).await;
            assert_eq!(app.logout(&user.access_token).await.status(), 204);
        }
        assert_eq!(app.logout(&alice.access_token).await.status(), 204);

        let lost = resume_feed(&app, &admin.access_token, lost_position).await;
        // The status first: a stream opened by mistake would never end.
        assert_eq!(
            lost.status(),
            StatusCode::GONE,
            "a Last-Event-ID from the lost history resumed a stream"
        );
        let (_, body) = assert_problem(lost, 410, "events_gone").await;
        assert!(body["detail"].as_str().unwrap().contains("snapshot"));
        let kept = resume_feed(&app, &admin.access_token, before_backup).await;
        assert_eq!(
            kept.status(),
            StatusCode::OK,
            "an id the backup holds resumes"
        );
        let next = first_event_id(kept).await;
        assert!(next > before_backup);
        assert!(
            next > lost_position,
            "no id of the lost history is used again"
        );
    }
}
