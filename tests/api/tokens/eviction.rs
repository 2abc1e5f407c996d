//! Deny-list eviction: a logout adds deny entries, they leave once the tokens they deny have
//! expired, and eviction never brings a revoked token or session back.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{
    assert_problem, assert_token_error_any, metric_sum, spawn_app_on_clock, TestApp,
};

/// A server on a manual clock with 2 s access tokens, no leeway, and an eviction pass every
/// 100 ms of real time (the least allowed): what a pass evicts depends only on how far the
/// test moves the clock.
async fn short_lived_app_on_clock() -> TestApp {
    spawn_app_on_clock(|s| {
        s.tokens.access_ttl = Duration::from_secs(2);
        s.tokens.leeway = Duration::from_secs(0);
        s.eviction.interval = Duration::from_millis(100);
    })
    .await
}

/// How much time the tests let pass for a logout's deny entries to become due: well past
/// the last `exp` a token of the session could have been given.
const EXPIRY_WAIT: Duration = Duration::from_secs(10);

/// Polls `/metrics` (bounded) until `done` holds; returns the last text.
async fn poll_metrics(app: &TestApp, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = app.metrics_text().await;
        if done(&text) || Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn logout_adds_deny_entries_that_are_evicted_after_expiry() {
    let app = short_lived_app_on_clock().await;
    let (_, login) = app.signed_up("alice").await;
    let before = app.metrics_text().await;
    let evictions_before = metric_sum(&before, "claimd_evictions_total", &[]);

    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let after_logout = app.metrics_text().await;
    let entries = metric_sum(&after_logout, "claimd_deny_entries", &[]);
    assert!(entries > 0.0, "deny entries after logout: {entries}");

    app.advance(EXPIRY_WAIT);
    // The gauge is read from the store at scrape time; the counter moves when the pass
    // that dropped the entries has returned: a scrape may come between the two.
    let text = poll_metrics(&app, Duration::from_secs(10), |t| {
        metric_sum(t, "claimd_deny_entries", &[]) == 0.0
            && metric_sum(t, "claimd_evictions_total", &[]) > evictions_before
    })
    .await;
    assert_eq!(
        metric_sum(&text, "claimd_deny_entries", &[]),
        0.0,
        "deny list did not drain within 10s"
    );
    let evictions = metric_sum(&text, "claimd_evictions_total", &[]);
    assert!(
        evictions > evictions_before,
        "evictions counter did not move: {evictions_before} -> {evictions}"
    );
}

#[tokio::test]
async fn evicted_entries_do_not_bring_revoked_tokens_back() {
    let app = short_lived_app_on_clock().await;
    let (_, login) = app.signed_up("alice").await;
    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );
    app.advance(EXPIRY_WAIT);

    poll_metrics(&app, Duration::from_secs(10), |t| {
        metric_sum(t, "claimd_deny_entries", &[]) == 0.0
            && metric_sum(t, "claimd_evictions_total", &[]) > 0.0
    })
    .await;

    // The access token is past exp now; whatever the reason, it must not pass.
    let resp = app.me(&login.access_token).await;
    assert_token_error_any(resp, &["token_expired", "token_revoked"]).await;
    // The session stays revoked even though its deny entry is gone.
    assert_problem(app.refresh(login.refresh()).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn unrevoked_sessions_survive_eviction_runs() {
    let app = short_lived_app_on_clock().await;
    let (_, revoked) = app.signed_up("alice").await;
    let (_, kept) = app.signed_up("bob").await;
    assert_eq!(
        app.logout(&revoked.access_token).await.status(),
        StatusCode::NO_CONTENT
    );
    app.advance(EXPIRY_WAIT);

    poll_metrics(&app, Duration::from_secs(10), |t| {
        metric_sum(t, "claimd_evictions_total", &[]) > 0.0
    })
    .await;

    let rotated = app.refresh(kept.refresh()).await;
    assert_eq!(rotated.status(), StatusCode::OK);
}

#[tokio::test]
async fn revoked_token_is_refused_at_every_moment_until_it_expires() {
    let app = short_lived_app_on_clock().await;
    let (_, login) = app.signed_up("alice").await;
    let exp = login.claims()["exp"].as_u64().unwrap();
    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    // Probe across the boundary second where the deny entry is evicted and `exp` is reached,
    // 100 ms of the server's clock at a time. A 10 ms pause between probes lets an eviction
    // pass (every 100 ms of real time) run about once a second of the server's clock, as
    // often as on the system clock with a 1 s interval.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let now = app.now();
        let resp = app.me(&login.access_token).await;
        assert_ne!(
            resp.status(),
            StatusCode::OK,
            "revoked token accepted again at unix {now} (exp {exp})"
        );
        let body = assert_token_error_any(resp, &["token_revoked", "token_expired"]).await;
        if body["code"] == "token_expired" && now > exp + 1 {
            break;
        }
        assert!(Instant::now() < deadline, "token never reported expired");
        app.advance(Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
