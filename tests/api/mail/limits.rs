//! `auth.mail_limit`: mail requests are charged to the client's address and to the address
//! (account) asked for; past either budget, 429 `too_many_attempts` with `Retry-After`,
//! the same for an address no account has.

use std::net::IpAddr;

use crate::helpers::{assert_problem, header_str};

use super::support::{accepted, app_with_mail};

fn two_per_hour(s: &mut claimd::config::Settings) {
    s.auth.mail_limit = claimd::config::LoginAttempts {
        max: 2,
        window: std::time::Duration::from_secs(3600),
    };
    s.server.trusted_proxies = vec!["127.0.0.1".parse::<IpAddr>().expect("an address")];
}

#[tokio::test]
#[ignore = "needs aiosmtpd"]
async fn one_client_asking_for_many_addresses_is_limited() {
    let (app, _sink) = app_with_mail(two_per_hour).await;
    accepted(
        app.forgot_password_from("a@example.org", "203.0.113.7")
            .await,
    )
    .await;
    accepted(
        app.forgot_password_from("b@example.org", "203.0.113.7")
            .await,
    )
    .await;
    let limited = app
        .forgot_password_from("c@example.org", "203.0.113.7")
        .await;
    assert!(header_str(limited.headers(), "retry-after").is_some());
    assert_problem(limited, 429, "too_many_attempts").await;
    accepted(
        app.forgot_password_from("c@example.org", "203.0.113.8")
            .await,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs aiosmtpd"]
async fn one_account_asked_for_from_many_clients_is_limited() {
    let (app, sink) = app_with_mail(two_per_hour).await;
    app.signed_up_with_email("ada", "ada@example.org").await;
    accepted(
        app.forgot_password_from("ada@example.org", "198.51.100.1")
            .await,
    )
    .await;
    accepted(
        app.forgot_password_from("ADA@example.org", "198.51.100.2")
            .await,
    )
    .await;
    let limited = app
        .forgot_password_from("ada@example.org", "198.51.100.3")
        .await;
    assert_problem(limited, 429, "too_many_attempts").await;
    // The magic link shares the account's budget.
    let magic = app
        .client
        .post(app.url("/auth/magic-link"))
        .header("X-Forwarded-For", "198.51.100.4")
        .json(&serde_json::json!({"email": "ada@example.org"}))
        .send()
        .await
        .unwrap();
    assert_problem(magic, 429, "too_many_attempts").await;
    assert_eq!(sink.wait_for(2, super::support::PROMPTLY).await.len(), 2);
}
