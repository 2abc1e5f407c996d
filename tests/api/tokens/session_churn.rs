//! Sessions do not pile up: a revoked session leaves the store at the next eviction pass
//! (its tokens are refused by the deny list, its refresh tokens as unknown), a steady
//! login/logout churn keeps the `claimd_sessions` gauge flat, and a user's live sessions
//! are capped (`auth.max_sessions_per_user`), the least recently used one revoked.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{
    assert_problem, assert_token_error, metric_sum, spawn_app_on_clock, spawn_app_with, TestApp,
    Tokens, PASSWORD,
};

async fn app_with(tweak: impl FnOnce(&mut claimd::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.eviction.interval = Duration::from_millis(200);
        tweak(s);
    })
    .await
}

/// The `claimd_sessions` gauge once it reaches `want`, or its last value after 10 s.
async fn sessions_gauge_reaches(app: &TestApp, want: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held = metric_sum(&app.metrics_text().await, "claimd_sessions", &[]);
        if held == want || Instant::now() >= deadline {
            return held;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_logged_out_session_leaves_the_store_and_stays_refused() {
    let app = app_with(|_| {}).await;
    let (_, login) = app.signed_up("alice").await;
    assert_eq!(sessions_gauge_reaches(&app, 1.0).await, 1.0);

    let resp = app.logout(&login.access_token).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    assert_eq!(sessions_gauge_reaches(&app, 0.0).await, 0.0);
    assert_token_error(app.me(&login.access_token).await, "token_revoked").await;
    assert_problem(app.refresh(login.refresh()).await, 400, "invalid_grant").await;
    let resp = app.refresh_with_access(&login.access_token).await;
    assert_token_error(resp, "token_revoked").await;
}

#[tokio::test]
async fn login_logout_churn_leaves_no_sessions_behind() {
    let app = app_with(|_| {}).await;
    app.register_ok("alice", PASSWORD).await;
    let keeper = app.login_ok("alice", PASSWORD).await;

    for _ in 0..30 {
        let session = app.login_ok("alice", PASSWORD).await;
        let resp = app.logout(&session.access_token).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    }

    assert_eq!(
        sessions_gauge_reaches(&app, 1.0).await,
        1.0,
        "only the live session is held after 30 logins and logouts"
    );
    let resp = app.refresh(keeper.refresh()).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the live session still refreshes"
    );
}

#[tokio::test]
async fn a_login_past_the_cap_revokes_the_least_recently_used_session() {
    let app = spawn_app_on_clock(|s| {
        s.eviction.interval = Duration::from_millis(200);
        s.auth.max_sessions_per_user = 3;
    })
    .await;
    app.register_ok("alice", PASSWORD).await;
    let first = app.login_ok("alice", PASSWORD).await;
    let second = app.login_ok("alice", PASSWORD).await;
    let third = app.login_ok("alice", PASSWORD).await;
    // Last use is kept in seconds: let a second pass, then use the first session.
    app.advance(Duration::from_millis(1_100));
    let resp = app.refresh(first.refresh()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let first = crate::helpers::token_response(resp).await;

    let fourth = app.login_ok("alice", PASSWORD).await;

    assert_token_error(app.me(&second.access_token).await, "token_revoked").await;
    assert_problem(app.refresh(second.refresh()).await, 400, "invalid_grant").await;
    for (name, session) in [("first", &first), ("third", &third), ("fourth", &fourth)] {
        assert_session_works(&app, name, session).await;
    }
    assert_eq!(sessions_gauge_reaches(&app, 3.0).await, 3.0);
}

async fn assert_session_works(app: &TestApp, name: &str, session: &Tokens) {
    let me = app.me(&session.access_token).await;
    assert_eq!(me.status(), StatusCode::OK, "{name} session's access token");
    let resp = app.refresh(session.refresh()).await;
    assert_eq!(resp.status(), StatusCode::OK, "{name} session refreshes");
}
