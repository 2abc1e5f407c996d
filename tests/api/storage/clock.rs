//! The wall clock is not to be trusted on small machines: a run with the clock a day ahead,
//! then a restart with the right time, must leave claimd serving (the deny list once kept a
//! persisted "dropped up to here" mark that refused every token for a day after it), and no
//! clock step, forward or back, may make a revoked token verify or a replayed refresh token
//! pass for a race.
//!
//! Within one run the clock is a manual one moved by the test. Across restarts it is moved
//! for the claimd process alone with libfaketime (Debian's `faketime`, installed by
//! `.ci/run`): those tests are `#[ignore = "needs libfaketime"]`, run by
//! `cargo test -- --include-ignored`, where a missing libfaketime fails them.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{
    assert_problem, assert_token_error, claimd_command, require, spawn_app_on_clock,
    token_response, workdir, ClaimdProcess,
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

/// Issue 19 §6: a session's deny entry starts at the earliest `exp` still accepted when it
/// is written; its older tokens were dead then. A clock set back further than the largest
/// leeway made them verify again. The session's record now answers for them.
#[tokio::test]
async fn a_clock_set_back_revives_no_older_token_of_a_revoked_session() {
    let app = spawn_app_on_clock(|s| s.tokens.access_ttl = Duration::from_secs(600)).await;
    let start = app.now();
    let (_, first) = app.signed_up("alice").await;
    let (_, bystander) = app.signed_up("bob").await;
    app.advance(Duration::from_secs(700));
    let second = token_response(app.refresh(first.refresh()).await).await;
    app.advance(Duration::from_secs(400));
    // Revoked at start + 1,100: the entry covers `exp` from start + 800 on, and `first`
    // expired at start + 600.
    assert_eq!(app.logout(&second.access_token).await.status(), 204);

    app.set_clock(start + 100);

    assert_token_error(app.me(&first.access_token).await, "token_revoked").await;
    assert_token_error(app.me(&second.access_token).await, "token_revoked").await;
    let me = app.me(&bystander.access_token).await;
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "a live session's token still verifies"
    );
}

/// Issue 19 §7: a rotation stamped while the clock was an hour ahead looked "just now"
/// once the clock was set right (`now - rotated_at` saturated to 0), so a replay of the
/// previous token was a race inside the grace, answered, for an hour. The grace is now
/// judged on a clock that does not run back.
#[tokio::test]
async fn a_rotation_while_the_clock_was_ahead_keeps_its_reuse_detection() {
    let app = spawn_app_on_clock(|s| s.tokens.refresh_reuse_grace = Duration::from_secs(10)).await;
    let start = app.now();
    let (_, login) = app.signed_up("alice").await;
    app.set_clock(start + 3_600);
    let second = token_response(app.refresh(login.refresh()).await).await;
    app.set_clock(start);
    app.advance(Duration::from_secs(11));

    let replay = app.refresh(login.refresh()).await;

    assert_problem(replay, 400, "invalid_grant").await;
    let current = app.refresh(second.refresh()).await;
    assert_problem(current, 400, "invalid_grant").await;
}

/// §6 across a restart: the revocation was made by a run with the clock ahead, and the next
/// run starts on the right time (set back, as far as the store can tell).
#[tokio::test]
#[ignore = "needs libfaketime"]
async fn a_restart_on_a_clock_set_back_revives_no_older_token_of_a_revoked_session() {
    require(
        "libfaketime (Debian package faketime)",
        Path::new(LIBFAKETIME).exists(),
    );
    let (dir, data) = workdir();
    let short_lived = |offset| {
        let mut cmd = claimd_command(dir.path());
        cmd.env("CLAIMD__STORAGE__PATH", &data)
            .env("CLAIMD__TOKENS__ACCESS_TTL", "600s");
        if let Some(offset) = offset {
            cmd.env("LD_PRELOAD", LIBFAKETIME).env("FAKETIME", offset);
        }
        ClaimdProcess::start(cmd)
    };
    let now = short_lived(None);
    let (_, first) = now.app().signed_up("alice").await;
    now.kill9();

    // Twenty minutes on: `first` is long expired when its session is ended.
    let later = short_lived(Some("+1200"));
    let second = token_response(later.app().refresh(first.refresh()).await).await;
    assert_eq!(later.app().logout(&second.access_token).await.status(), 204);
    later.kill9();

    let set_back = short_lived(None);
    let app = set_back.app();
    assert_token_error(app.me(&first.access_token).await, "token_revoked").await;
    assert_problem(app.refresh(second.refresh()).await, 400, "invalid_grant").await;
}

/// §7 across a restart: rotated by a run an hour ahead, replayed on a run with the right
/// time. The rotation's stamp is an hour in the future, an hour from any race.
#[tokio::test]
#[ignore = "needs libfaketime"]
async fn a_rotation_stamped_by_a_run_ahead_keeps_its_reuse_detection_after_a_restart() {
    require(
        "libfaketime (Debian package faketime)",
        Path::new(LIBFAKETIME).exists(),
    );
    let (dir, data) = workdir();
    let now = start(dir.path(), &data, None);
    let (_, login) = now.app().signed_up("alice").await;
    now.kill9();

    let ahead = start(dir.path(), &data, Some("+3600"));
    let second = token_response(ahead.app().refresh(login.refresh()).await).await;
    // The acknowledgement reaches the store a second after the answer (a crash before
    // that loses it, by design: the replay would count once as a retry).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, _, stderr) = ahead.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean stop\n{stderr}");

    let right = start(dir.path(), &data, None);
    let app = right.app();
    assert_problem(app.refresh(login.refresh()).await, 400, "invalid_grant").await;
    assert_problem(app.refresh(second.refresh()).await, 400, "invalid_grant").await;
}
