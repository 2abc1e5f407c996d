//! The wall clock is not to be trusted on small machines: a run with the clock a day ahead,
//! then a restart with the right time, must leave claimd serving (the deny list once kept a
//! persisted "dropped up to here" mark that refused every token for a day after it).
//!
//! The clock is moved for the claimd process alone with libfaketime (Debian's `faketime`,
//! installed by `.ci/run`): the test is `#[ignore = "needs libfaketime"]`, run by
//! `cargo test -- --include-ignored`, where a missing libfaketime fails it.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{
    assert_problem, assert_token_error, claimd_command, require, workdir, ClaimdProcess,
};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

fn start(workdir: &Path, data: &Path, offset: Option<&str>) -> ClaimdProcess {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .env("CLAIMD__EVICTION__INTERVAL", "200ms");
    if let Some(offset) = offset {
        cmd.env("LD_PRELOAD", LIBFAKETIME).env("FAKETIME", offset);
    }
    ClaimdProcess::start(cmd)
}

#[tokio::test]
#[ignore = "needs libfaketime"]
async fn a_run_with_the_clock_a_day_ahead_does_not_revoke_tokens_after_it() {
    require(
        "libfaketime (Debian package faketime)",
        Path::new(LIBFAKETIME).exists(),
    );
    let (dir, data) = workdir();
    let ahead = start(dir.path(), &data, Some("+1d"));
    let app = ahead.app();
    let (_, alice) = app.signed_up("alice").await;
    assert_eq!(app.logout(&alice.access_token).await.status(), 204);
    // Let eviction passes run on the day-ahead clock.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (status, _, stderr) = ahead.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean stop\n{stderr}");

    let server = start(dir.path(), &data, None);
    let app = server.app();
    let (_, bob) = app.signed_up("bob").await;

    let me = app.me(&bob.access_token).await;
    assert_eq!(me.status(), StatusCode::OK, "a fresh token verifies");
    let resp = app.refresh(bob.refresh()).await;
    assert_eq!(resp.status(), StatusCode::OK, "and its session refreshes");
}

/// Issue 19: a start with the clock a day and 25 minutes ahead (a board booting with a wrong
/// RTC before NTP steps it back) once evicted every deny entry at its first pass, and the
/// logged-out token verified again when the clock was right. Eviction now works from the
/// horizon the last run reached plus real time, so the entry is still there.
#[tokio::test]
#[ignore = "needs libfaketime"]
async fn a_start_with_the_clock_ahead_revives_no_revoked_token() {
    require(
        "libfaketime (Debian package faketime)",
        Path::new(LIBFAKETIME).exists(),
    );
    let (dir, data) = workdir();
    let right = start(dir.path(), &data, None);
    let app = right.app();
    let (_, alice) = app.signed_up("alice").await;
    assert_eq!(app.logout(&alice.access_token).await.status(), 204);
    let (_, bob) = app.signed_up("bob").await;
    assert_eq!(app.logout_all(&bob.access_token).await.status(), 204);
    // Passes run every 200 ms: the horizon is on disk before the stop.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _, stderr) = right.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean stop\n{stderr}");

    let ahead = start(dir.path(), &data, Some("+87900"));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, _, stderr) = ahead.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean stop\n{stderr}");

    let right_again = start(dir.path(), &data, None);
    let app = right_again.app();
    for revoked in [&alice, &bob] {
        assert_token_error(app.me(&revoked.access_token).await, "token_revoked").await;
        let resp = app.refresh(revoked.refresh()).await;
        assert_problem(resp, 400, "invalid_grant").await;
    }
}
