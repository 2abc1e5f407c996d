//! Rate limiting: failed logins (`auth.login_attempts`) per username and per client
//! address, registrations (`auth.register_limit`) per client address, both with
//! `Retry-After` and `X-Forwarded-For` believed only from `server.trusted_proxies`; and the
//! limiters' memory bounded (`auth.rate_limit_entries`, evictions in `/metrics`).

use std::net::IpAddr;
use std::time::Duration;

use claimd::config::{LoginAttempts, Settings};
use reqwest::Response;

use serde_json::json;

use crate::helpers::{
    assert_problem, spawn_app_on_clock, spawn_app_with, spawn_app_with_admin, TestApp, PASSWORD,
};

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
    let app = spawn_app_on_clock(|s| {
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

    app.advance(Duration::from_millis(3100));

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

fn three_registrations_per_hour(s: &mut Settings) {
    s.auth.register_limit = LoginAttempts {
        max: 3,
        window: Duration::from_secs(3600),
    };
}

async fn register_forwarded_for(app: &TestApp, username: &str, xff: &str) -> Response {
    app.client
        .post(app.url("/auth/register"))
        .header("X-Forwarded-For", xff)
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .expect("request sent")
}

/// Asserts a 429 within the hour and returns its `detail`.
async fn fourth_detail(resp: Response) -> String {
    let (headers, body) = assert_problem(resp, 429, "too_many_attempts").await;
    let secs: u64 = crate::helpers::header_str(&headers, "retry-after")
        .and_then(|value| value.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=3600).contains(&secs), "Retry-After {secs}");
    body["detail"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn fourth_registration_from_one_address_is_429() {
    let app = spawn_app_with(three_registrations_per_hour).await;
    for n in 0..3 {
        app.register_ok(&format!("user{n}"), PASSWORD).await;
    }

    let fourth = app.register("user3", PASSWORD).await;

    let detail = fourth_detail(fourth).await;
    assert!(
        detail.contains("registrations") && detail.contains("auth.register_limit"),
        "the refusal names the registration limit, not failed logins: {detail}"
    );
    assert!(detail.contains("3 per 1h"), "and what it allows: {detail}");
    assert_problem(
        app.login("user3", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn a_taken_username_counts_and_a_malformed_request_does_not() {
    let app = spawn_app_with(three_registrations_per_hour).await;
    app.register_ok("alice", PASSWORD).await;
    for _ in 0..5 {
        assert_problem(app.register("", PASSWORD).await, 400, "invalid_request").await;
    }
    for _ in 0..2 {
        assert_problem(app.register("alice", PASSWORD).await, 409, "username_taken").await;
    }

    assert_limited(app.register("bob", PASSWORD).await, 3600).await;
}

#[tokio::test]
async fn registration_limit_honours_trusted_proxies_like_login() {
    let app = spawn_app_with(|s| {
        three_registrations_per_hour(s);
        s.server.trusted_proxies = vec!["127.0.0.1".parse::<IpAddr>().unwrap()];
    })
    .await;
    for n in 0..3 {
        let resp = register_forwarded_for(&app, &format!("a{n}"), "203.0.113.1").await;
        assert_eq!(resp.status(), 201);
    }
    assert_limited(
        register_forwarded_for(&app, "a3", "203.0.113.1").await,
        3600,
    )
    .await;

    let other = register_forwarded_for(&app, "b0", "203.0.113.2").await;
    assert_eq!(other.status(), 201, "another client has its own budget");
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_escape_the_registration_limit() {
    let app = spawn_app_with(three_registrations_per_hour).await;
    for n in 0..3 {
        let resp = register_forwarded_for(&app, &format!("a{n}"), &format!("203.0.113.{n}")).await;
        assert_eq!(resp.status(), 201);
    }
    assert_limited(
        register_forwarded_for(&app, "a3", "203.0.113.99").await,
        3600,
    )
    .await;
}

#[tokio::test]
async fn an_admin_registering_is_not_limited() {
    let (app, admin) = spawn_app_with_admin(three_registrations_per_hour).await;
    for n in 0..3 {
        app.register_ok(&format!("user{n}"), PASSWORD).await;
    }
    assert_limited(app.register("user3", PASSWORD).await, 3600).await;

    for n in 3..6 {
        let resp = app
            .register_as(&admin.access_token, &format!("user{n}"), PASSWORD)
            .await;
        assert_eq!(resp.status(), 201, "an admin's Bearer is not limited");
    }
}

#[tokio::test]
async fn a_disabled_account_is_answered_like_a_wrong_password_and_counted() {
    let (app, admin) = spawn_app_with_admin(three_per_minute).await;
    let alice = app.register_ok("alice", PASSWORD).await;
    let id = alice["id"].as_str().unwrap().to_string();
    app.admin_patch_user_ok(&admin.access_token, &id, &json!({"disabled": true}))
        .await;

    for _ in 0..3 {
        let (_, problem) = assert_problem(
            app.login("alice", PASSWORD).await,
            401,
            "invalid_credentials",
        )
        .await;
        assert!(
            !problem.to_string().contains("disabled"),
            "nothing tells a disabled account apart: {problem}"
        );
    }

    assert_limited(app.login("alice", PASSWORD).await, WINDOW_SECS).await;
}

/// `claimd_rate_limit_evictions_total{limiter="..."}` from `/metrics`, 0 when absent.
async fn evictions(app: &TestApp, limiter: &str) -> u64 {
    let text = app.metrics_text().await;
    let prefix = format!("claimd_rate_limit_evictions_total{{limiter=\"{limiter}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().expect("a count"))
}

#[tokio::test]
async fn the_login_limiter_stays_bounded_under_made_up_usernames_and_counts_evictions() {
    let app = spawn_app_with(|s| {
        three_per_minute(s);
        s.auth.rate_limit_entries = 16;
        s.server.trusted_proxies = vec!["127.0.0.1".parse::<IpAddr>().unwrap()];
    })
    .await;
    assert_eq!(evictions(&app, "login").await, 0);

    // 40 made-up usernames of 8 KiB each, from 40 addresses: 80 keys for 16 places.
    for n in 0..40 {
        let name = format!("{n:04}{}", "x".repeat(8 * 1024));
        let resp = app
            .login_forwarded_for(&name, "not the password", &format!("198.51.100.{n}"))
            .await;
        assert_problem(resp, 401, "invalid_credentials").await;
    }

    assert!(
        evictions(&app, "login").await >= 80 - 16,
        "{}",
        app.metrics_text().await
    );
    // The limiter still works for a key seen now.
    for _ in 0..3 {
        fail_login(&app, "alice").await;
    }
    assert_limited(app.login("alice", "not the password").await, WINDOW_SECS).await;
}

#[tokio::test]
async fn the_register_limiter_stays_bounded_and_counts_evictions() {
    let app = spawn_app_with(|s| {
        three_registrations_per_hour(s);
        s.auth.rate_limit_entries = 16;
        s.server.trusted_proxies = vec!["127.0.0.1".parse::<IpAddr>().unwrap()];
    })
    .await;

    for n in 0..24 {
        let resp =
            register_forwarded_for(&app, &format!("user{n}"), &format!("198.51.100.{n}")).await;
        assert_eq!(resp.status(), 201);
    }

    assert!(evictions(&app, "register").await >= 24 - 16);
}

/// The demo registers a new user at every click, from this machine: with the demo on,
/// registrations from loopback are not limited; from elsewhere they still are.
#[tokio::test]
async fn the_demo_on_loopback_is_not_held_by_the_registration_limit() {
    let app = spawn_app_with(|s| {
        three_registrations_per_hour(s);
        s.demo.enabled = true;
    })
    .await;
    for n in 0..6 {
        app.register_ok(&format!("demo{n}"), PASSWORD).await;
    }
}

/// A refused password is the caller's mistake, like a malformed request: it does not
/// spend the address's registrations.
#[tokio::test]
async fn a_refused_password_does_not_count_against_the_registration_limit() {
    let app = spawn_app_with(three_registrations_per_hour).await;
    for n in 0..5 {
        let resp = app.register(&format!("weak{n}"), "password1").await;
        assert_problem(resp, 400, "password_too_weak").await;
    }
    for n in 0..3 {
        app.register_ok(&format!("user{n}"), PASSWORD).await;
    }
}
