//! Accounts and sessions: registration (open, by an admin, into a tenant, with an
//! invitation), login, refresh, logout, and `/me` with its password.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{token_response, TestApp, Tokens};

/// A password that satisfies the 8..=1024 character rule.
pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    pub async fn register(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/auth/register",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    /// Registers and returns the `user` object of the 201 answer.
    pub async fn register_ok(&self, username: &str, password: &str) -> Value {
        let resp = self.register(username, password).await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("register answers json");
        assert_eq!(status, StatusCode::CREATED, "register {username:?}: {body}");
        body["user"].clone()
    }

    /// `POST /auth/register` with a bearer token (registration by an admin).
    pub async fn register_as(&self, bearer: &str, username: &str, password: &str) -> Response {
        self.send_json(
            Method::POST,
            "/auth/register",
            Some(bearer),
            &json!({"username": username, "password": password}),
        )
        .await
    }

    /// `POST /auth/register` into a tenant by an admin (`bearer`): only an admin places an
    /// account in a tenant directly; anyone else needs an invitation.
    pub async fn register_in_tenant(
        &self,
        bearer: &str,
        username: &str,
        password: &str,
        tenant: &str,
    ) -> Response {
        self.send_json(
            Method::POST,
            "/auth/register",
            Some(bearer),
            &json!({"username": username, "password": password, "tenant": tenant}),
        )
        .await
    }

    /// `POST /auth/register` with an invitation code, and no token.
    pub async fn register_with_invitation(
        &self,
        username: &str,
        password: &str,
        code: &str,
    ) -> Response {
        self.post_json(
            "/auth/register",
            &json!({"username": username, "password": password, "invitation": code}),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/auth/login",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    /// Logs in with an `X-Forwarded-For` header.
    pub async fn login_forwarded_for(&self, username: &str, password: &str, xff: &str) -> Response {
        self.client
            .post(self.url("/auth/login"))
            .header("X-Forwarded-For", xff)
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn login_ok(&self, username: &str, password: &str) -> Tokens {
        token_response(self.login(username, password).await).await
    }

    /// Registers `username` with [`PASSWORD`] and logs in: the usual arrange step.
    pub async fn signed_up(&self, username: &str) -> (Value, Tokens) {
        let user = self.register_ok(username, PASSWORD).await;
        let tokens = self.login_ok(username, PASSWORD).await;
        (user, tokens)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/auth/refresh-token",
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// `POST /auth/refresh-token` with no body and the access token as bearer.
    pub async fn refresh_with_access(&self, access_token: &str) -> Response {
        self.request(Method::POST, "/auth/refresh-token", Some(access_token))
            .await
    }

    pub async fn logout(&self, access_token: &str) -> Response {
        self.request(Method::POST, "/auth/logout", Some(access_token))
            .await
    }

    pub async fn logout_all(&self, access_token: &str) -> Response {
        self.request(Method::POST, "/auth/logout-all", Some(access_token))
            .await
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.request(Method::GET, "/me", Some(access_token)).await
    }

    pub async fn patch_me(&self, access_token: &str, body: &Value) -> Response {
        self.send_json(Method::PATCH, "/me", Some(access_token), body)
            .await
    }

    pub async fn change_password(&self, access_token: &str, current: &str, new: &str) -> Response {
        self.client
            .post(self.url("/me/password"))
            .bearer_auth(access_token)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
            .await
            .expect("request sent")
    }
}
