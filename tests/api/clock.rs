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

use crate::helpers::{claimd_command, require, workdir, ClaimdProcess};

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
