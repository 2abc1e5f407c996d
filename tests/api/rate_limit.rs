//! Login rate limiting (`auth.login_attempts`): per username and per client address, with
//! `Retry-After`, and `X-Forwarded-For` believed only from `server.trusted_proxies`.

use std::net::IpAddr;
use std::time::Duration;

use claimd::config::{LoginAttempts, Settings};
use reqwest::Response;

use crate::helpers::{assert_problem, spawn_app_with, TestApp, PASSWORD};

const WINDOW_SECS: u64 = 60;

fn three_per_minute(s: &mut Settings) {
    s.auth.login_attempts = LoginAttempts {
        max: 3,
        window: Duration::from_secs(WINDOW_SECS),
    };
}

/// Asserts a 429 `too_many_attempts` whose `Retry-After` is whole seconds within the window.
async fn assert_limited(resp: Response, window_secs: u64) {
    let (headers, _) = assert_problem(resp, 429, "too_many_attempts").await;
    let retry_after = headers
        .get("retry-after")
        .expect("429 carries Retry-After")
        .to_str()
        .unwrap()
        .to_string();
    let secs: u64 = retry_after
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is integer seconds, got {retry_after:?}"));
    assert!(
        (1..=window_secs).contains(&secs),
        "Retry-After {secs} outside 1..={window_secs}"
    );
}

async fn fail_login(app: &TestApp, username: &str) {
    let resp = app.login(username, "not the password").await;
    assert_problem(resp, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn fourth_failed_login_for_an_existing_user_is_429() {
    let app = spawn_app_with(three_per_minute).await;
    app.register_ok("alice", PASSWORD).await;
    for _ in 0..3 {
        fail_login(&app, "alice").await;
    }

    let fourth = app.login("alice", "not the password").await;

    assert_limited(fourth, WINDOW_SECS).await;
}

#[tokio::test]
async fn fourth_failed_login_for_an_unknown_user_is_429() {
    let app = spawn_app_with(three_per_minute).await;
    for _ in 0..3 {
        fail_login(&app, "nobody").await;
    }

    let fourth = app.login("nobody", "not the password").await;

    assert_limited(fourth, WINDOW_SECS).await;
}

#[tokio::test]
async fn correct_password_is_also_refused_while_limited() {
    let app = spawn_app_with(three_per_minute).await;
    app.register_ok("alice", PASSWORD).await;
    for _ in 0..3 {
        fail_login(&app, "alice").await;
    }

    let resp = app.login("alice", PASSWORD).await;

    assert_limited(resp, WINDOW_SECS).await;
}

#[tokio::test]
async fn limit_applies_to_any_case_of_the_username() {
    let app = spawn_app_with(three_per_minute).await;
    app.register_ok("alice", PASSWORD).await;
    for name in ["alice", "ALICE", "Alice"] {
        fail_login(&app, name).await;
    }

    let fourth = app.login("ａｌｉｃｅ", "not the password").await;

    assert_limited(fourth, WINDOW_SECS).await;
}

#[tokio::test]
async fn one_client_address_trying_many_usernames_is_429() {
    let app = spawn_app_with(three_per_minute).await;
    for name in ["user1", "user2", "user3"] {
        fail_login(&app, name).await;
    }

    let fourth = app.login("user4", "not the password").await;

    assert_limited(fourth, WINDOW_SECS).await;
}

#[tokio::test]
async fn successful_logins_within_the_limit_still_work() {
    let app = spawn_app_with(three_per_minute).await;
    app.register_ok("alice", PASSWORD).await;
    for _ in 0..2 {
        fail_login(&app, "alice").await;
    }

    app.login_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn limit_lifts_after_the_window() {
    let app = spawn_app_with(|s| {
        s.auth.login_attempts = LoginAttempts {
            max: 3,
            window: Duration::from_secs(2),
        };
    })
    .await;
    app.register_ok("alice", PASSWORD).await;
    for _ in 0..3 {
        fail_login(&app, "alice").await;
    }
    assert_limited(app.login("alice", "not the password").await, 2).await;

    tokio::time::sleep(Duration::from_millis(3100)).await;

    app.login_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app_with(three_per_minute).await;
    for (i, name) in ["user1", "user2", "user3"].into_iter().enumerate() {
        let resp = app
            .login_forwarded_for(name, "not the password", &format!("10.0.0.{}", i + 1))
            .await;
        assert_problem(resp, 401, "invalid_credentials").await;
    }

    let fourth = app
        .login_forwarded_for("user4", "not the password", "10.0.0.4")
        .await;

    assert_limited(fourth, WINDOW_SECS).await;
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_counts_clients_apart() {
    let app = spawn_app_with(|s| {
        three_per_minute(s);
        s.server.trusted_proxies = vec!["127.0.0.1".parse::<IpAddr>().unwrap()];
    })
    .await;
    for name in ["user1", "user2", "user3"] {
        let resp = app
            .login_forwarded_for(name, "not the password", "10.0.0.1")
            .await;
        assert_problem(resp, 401, "invalid_credentials").await;
    }

    let other_client = app
        .login_forwarded_for("user4", "not the password", "10.0.0.2")
        .await;
    assert_problem(other_client, 401, "invalid_credentials").await;

    let same_client = app
        .login_forwarded_for("user5", "not the password", "10.0.0.1")
        .await;
    assert_limited(same_client, WINDOW_SECS).await;
}
