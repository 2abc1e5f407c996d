//! Storage faults with the real binary on a real small filesystem: a tmpfs filled to the
//! brim. While writes fail, writes answer 503
//! `storage_unavailable` with `Retry-After`, `/readyz` answers 503 and verification goes on;
//! once the disk takes writes again the same process recovers by itself; and the holder of
//! the last refresh token claimd acknowledged is never logged out, across the episode and
//! a kill -9 after it, while a real replay is still caught.
//!
//! Mounting needs root: the tests are `#[ignore = "needs root"]`, run by
//! `cargo test -- --include-ignored` (CI runs as root), where a failed mount fails them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{
    assert_problem, claimd_command, header_str, metric_sum, require, token_response, ClaimdProcess,
    TestApp, Tokens,
};

/// A tmpfs of a fixed size mounted on a fresh directory; unmounted when dropped.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mib` MiB; fails the test when it cannot (not root, no `mount`).
    fn mount(mib: u64) -> SmallDisk {
        let dir = tempfile::tempdir().expect("create temp dir");
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).expect("create mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&mount)
            .status()
            .is_ok_and(|status| status.success());
        require("root (mount -t tmpfs) for a small real filesystem", mounted);
        SmallDisk { mount, _dir: dir }
    }

    fn path(&self) -> &Path {
        &self.mount
    }

    /// Fills the disk with a filler file, then gives `leave` bytes back.
    fn fill_leaving(&self, leave: u64) {
        let path = self.mount.join("filler");
        let mut file = std::fs::File::create(&path).expect("create filler");
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(_) => break,
            }
        }
        let _ = file.flush();
        file.set_len(written.saturating_sub(leave))
            .expect("shrink filler");
        file.sync_all().ok();
    }

    /// Takes the filler away.
    fn free(&self) {
        std::fs::remove_file(self.mount.join("filler")).expect("remove filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// The binary on `data` with a short reuse grace, so that a replay can be told from the
/// concurrent-refresh race within the test.
fn start(workdir: &Path, data: &Path) -> ClaimdProcess {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .env("CLAIMD__TOKENS__REFRESH_REUSE_GRACE", "1s");
    ClaimdProcess::start(cmd)
}

/// Asserts a write refused for a storage fault, in API.md's shape.
async fn assert_storage_unavailable(resp: reqwest::Response) {
    let retry_after = header_str(resp.headers(), "retry-after");
    let (_, body) = assert_problem(resp, 503, "storage_unavailable").await;
    assert!(
        retry_after.is_some_and(|value| value.parse::<u64>().is_ok_and(|secs| secs > 0)),
        "a 503 storage_unavailable carries Retry-After in seconds: {body}"
    );
}

/// Refreshes with `tokens` until `attempts` in a row fail, keeping the last acknowledged
/// pair: a 200 replaces it, anything else is checked to be a storage fault and retried
/// with the same token, as a client that was not told the outcome would.
async fn refresh_until_writes_fail(app: &TestApp, mut tokens: Tokens) -> (Tokens, usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut acknowledged = 0;
    let mut failures_in_a_row = 0;
    while failures_in_a_row < 5 {
        assert!(
            Instant::now() < deadline,
            "writes never failed on the full disk ({acknowledged} refreshes answered)"
        );
        let resp = app.refresh(tokens.refresh()).await;
        if resp.status() == StatusCode::OK {
            tokens = token_response(resp).await;
            acknowledged += 1;
            failures_in_a_row = 0;
        } else {
            assert_storage_unavailable(resp).await;
            failures_in_a_row += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (tokens, acknowledged)
}

/// Retries a refresh with the same token until it answers 200 (within 30 s, the bound the
/// issue sets for recovery); every answer before that must be a storage fault.
async fn refresh_once_writes_resume(app: &TestApp, tokens: &Tokens) -> Tokens {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = app.refresh(tokens.refresh()).await;
        if resp.status() == StatusCode::OK {
            return token_response(resp).await;
        }
        assert_storage_unavailable(resp).await;
        assert!(
            Instant::now() < deadline,
            "writes did not resume within 30 s of the disk taking writes again"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn assert_reads_go_on_while_writes_fail(app: &TestApp, tokens: &Tokens) {
    let ready = app.readyz().await;
    assert_eq!(ready.status(), 503, "/readyz while writes fail");
    let verified = app.verify(Some(&tokens.access_token)).await;
    assert_eq!(verified.status(), 200, "/verify goes on while writes fail");
    let me = app.me(&tokens.access_token).await;
    assert_eq!(me.status(), 200, "/me goes on while writes fail");
    let metrics = app.metrics_text().await;
    assert_eq!(metric_sum(&metrics, "claimd_store_writable", &[]), 0.0);
    assert!(metric_sum(&metrics, "claimd_store_write_failures_total", &[]) >= 1.0);
}

#[tokio::test]
#[ignore = "needs root"]
async fn a_full_disk_is_an_outage_of_writes_and_loses_nothing_acknowledged() {
    let disk = SmallDisk::mount(64);
    let workdir = tempfile::tempdir().expect("workdir");
    let data = disk.path().join("data");
    let server = start(workdir.path(), &data);
    let app = server.app();
    let (_, login) = app.signed_up("alice").await;

    disk.fill_leaving(200 * 1024);
    let (last_acknowledged, answered) = refresh_until_writes_fail(&app, login).await;
    eprintln!("{answered} refreshes answered before writes failed");
    assert_reads_go_on_while_writes_fail(&app, &last_acknowledged).await;
    let logged = server_failure_lines(&server);
    assert_eq!(logged, 1, "the failure is logged once for the episode");
    let register = app
        .post_json(
            "/auth/register",
            &serde_json::json!({"username": "bob", "password": crate::helpers::PASSWORD}),
        )
        .await;
    assert_storage_unavailable(register).await;
    for _ in 0..5 {
        assert_storage_unavailable(app.refresh(last_acknowledged.refresh()).await).await;
    }
    assert_eq!(server_failure_lines(&server), 1, "logged once per episode");

    disk.free();
    let after_recovery = refresh_once_writes_resume(&app, &last_acknowledged).await;
    assert_eq!(app.readyz().await.status(), 200, "/readyz after recovery");
    let metrics = app.metrics_text().await;
    assert_eq!(metric_sum(&metrics, "claimd_store_writable", &[]), 1.0);
    assert!(metric_sum(&metrics, "claimd_store_recoveries_total", &[]) >= 1.0);

    server.kill9();
    let restarted = start(workdir.path(), &data);
    let app = restarted.app();
    let resp = app.refresh(after_recovery.refresh()).await;
    assert_eq!(
        resp.status(),
        200,
        "the last acknowledged refresh token works after a crash ({answered} refreshes answered before the disk filled)"
    );
    let newest = token_response(resp).await;

    // A real replay: `after_recovery` was answered and then superseded by an answered
    // rotation; past the grace window, presenting it again ends the family.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_problem(
        app.refresh(after_recovery.refresh()).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_problem(app.refresh(newest.refresh()).await, 400, "invalid_grant").await;
}

/// How many "store writes are failing" lines the server has logged so far.
fn server_failure_lines(server: &ClaimdProcess) -> usize {
    server
        .stderr()
        .lines()
        .chain(server.stdout().lines())
        .filter(|line| line.contains("store writes are failing"))
        .count()
}
