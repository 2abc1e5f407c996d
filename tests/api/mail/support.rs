//! What the mail tests share: a claimd that mails through an [`SmtpSink`], accounts with
//! addresses, the calls of API.md's "Mail" table, and reading the change feed for one
//! event.

use std::time::Duration;

use claimd::config::{MailTransportKind, Settings, SmtpUrl};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    link_token, spawn_app_with, spawn_app_with_admin, ReceivedMail, SmtpSink, TestApp, Tokens,
    PASSWORD,
};

/// How long a test waits for a mail claimd should send at once.
pub const PROMPTLY: Duration = Duration::from_secs(15);

/// Settings that mail through `sink`.
pub fn mail_through(sink: &SmtpSink, settings: &mut Settings) {
    settings.mail.transport = MailTransportKind::Smtp;
    settings.mail.smtp_url = Some(SmtpUrl::parse(&sink.url()).expect("a loopback smtp URL"));
}

/// A claimd mailing through a fresh sink.
pub async fn app_with_mail(tweak: impl FnOnce(&mut Settings)) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start();
    let app = spawn_app_with(|s| {
        mail_through(&sink, s);
        tweak(s);
    })
    .await;
    (app, sink)
}

/// As [`app_with_mail`], with the bootstrap admin logged in.
pub async fn app_with_mail_and_admin(
    tweak: impl FnOnce(&mut Settings),
) -> (TestApp, Tokens, SmtpSink) {
    let sink = SmtpSink::start();
    let (app, admin) = spawn_app_with_admin(|s| {
        mail_through(&sink, s);
        tweak(s);
    })
    .await;
    (app, admin, sink)
}

/// The single link token of `purpose` in the mail, after checking what every mail of
/// claimd carries.
pub fn token_in(mail: &ReceivedMail, purpose: &str, to: &str) -> String {
    assert_eq!(mail.to, vec![to.to_string()], "{}", mail.subject);
    assert_eq!(mail.header("Auto-Submitted"), Some("auto-generated"));
    assert!(
        mail.html.contains(&format!("/account/{purpose}#token=")),
        "{}",
        mail.html
    );
    link_token(mail, purpose)
}

impl TestApp {
    /// Registers `username` with `email` and logs in.
    pub async fn signed_up_with_email(&self, username: &str, email: &str) -> (Value, Tokens) {
        let resp = self
            .post_json(
                "/auth/register",
                &json!({"username": username, "password": PASSWORD, "email": email}),
            )
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("register answers json");
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let tokens = self.login_ok(username, PASSWORD).await;
        (body["user"].clone(), tokens)
    }

    pub async fn request_verification(&self, access_token: &str) -> Response {
        self.request(Method::POST, "/auth/email/verification", Some(access_token))
            .await
    }

    pub async fn verify_email(&self, token: &str) -> Response {
        self.post_json("/auth/email/verify", &json!({ "token": token }))
            .await
    }

    pub async fn forgot_password(&self, email: &str) -> Response {
        self.post_json("/auth/password/forgot", &json!({ "email": email }))
            .await
    }

    pub async fn forgot_password_from(&self, email: &str, client: &str) -> Response {
        self.client
            .post(self.url("/auth/password/forgot"))
            .header("X-Forwarded-For", client)
            .json(&json!({ "email": email }))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn reset_password(&self, token: &str, new_password: &str) -> Response {
        self.post_json(
            "/auth/password/reset",
            &json!({ "token": token, "new_password": new_password }),
        )
        .await
    }

    pub async fn request_magic_link(&self, email: &str) -> Response {
        self.post_json("/auth/magic-link", &json!({ "email": email }))
            .await
    }

    pub async fn redeem_magic_link(&self, token: &str) -> Response {
        self.post_json("/auth/magic-link/redeem", &json!({ "token": token }))
            .await
    }

    pub async fn admin_password_reset(&self, bearer: &str, user_id: &str) -> Response {
        self.request(
            Method::POST,
            &format!("/admin/users/{user_id}/password-reset"),
            Some(bearer),
        )
        .await
    }
}

/// Asserts a 202 and returns its body.
pub async fn accepted(resp: Response) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.expect("a json body");
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body
}

/// Reads `GET /events` from the start as `bearer` until an event named `name` arrives
/// (within 10 s); its data.
pub async fn feed_event(app: &TestApp, bearer: &str, name: &str) -> Value {
    let mut response = reqwest::Client::new()
        .get(app.url("/events"))
        .bearer_auth(bearer)
        .header("accept", "text/event-stream")
        .header("last-event-id", "0")
        .send()
        .await
        .expect("GET /events");
    assert_eq!(response.status(), StatusCode::OK);
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let event = block
                .lines()
                .find_map(|line| line.strip_prefix("event:"))
                .map(str::trim);
            let data = block
                .lines()
                .find_map(|line| line.strip_prefix("data:"))
                .map(str::trim);
            if let (Some(event), Some(data)) = (event, data) {
                if event == name {
                    return serde_json::from_str(data).expect("event data is json");
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {name} event within 10 s; read: {buffer}"))
            .expect("the stream reads")
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
}
