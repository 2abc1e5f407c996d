//! The OAuth endpoints other services call: `/oauth/introspect` and `/oauth/revoke`,
//! form-encoded, as a [`Caller`]: anonymous (the token's holder), a service credential by
//! HTTP Basic, or an admin's bearer token.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_no_store, json_response, TestApp};

/// How a caller of `/oauth/introspect` or `/oauth/revoke` authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// No `Authorization` header (the token's holder).
    Anonymous,
    /// HTTP Basic with a service credential `(client_id, client_secret)`.
    Basic(&'a str, &'a str),
    /// `Authorization: Bearer` (an admin's access token).
    Bearer(&'a str),
}

/// A service credential as `POST /admin/services` or `claimd service add` hand it out.
#[derive(Debug, Clone)]
pub struct Service {
    pub client_id: String,
    pub client_secret: String,
    pub name: String,
}

impl Service {
    pub fn caller(&self) -> Caller<'_> {
        Caller::Basic(&self.client_id, &self.client_secret)
    }
}

/// `{"active":false}`: the whole answer of `/oauth/introspect` for anything inactive.
pub fn inactive() -> Value {
    json!({"active": false})
}

impl TestApp {
    /// A form-encoded POST (`application/x-www-form-urlencoded`) as `caller`.
    pub async fn post_form(
        &self,
        path: &str,
        caller: Caller<'_>,
        form: &[(&str, &str)],
    ) -> Response {
        let mut req = self.client.post(self.url(path)).form(form);
        req = match caller {
            Caller::Anonymous => req,
            Caller::Basic(id, secret) => req.basic_auth(id, Some(secret)),
            Caller::Bearer(token) => req.bearer_auth(token),
        };
        req.send().await.expect("request sent")
    }

    /// `POST /oauth/introspect` with `token=...`.
    pub async fn introspect(&self, caller: Caller<'_>, token: &str) -> Response {
        self.post_form("/oauth/introspect", caller, &[("token", token)])
            .await
    }

    /// `POST /oauth/introspect` with `token=...&token_type_hint=...`.
    pub async fn introspect_hinted(&self, caller: Caller<'_>, token: &str, hint: &str) -> Response {
        self.post_form(
            "/oauth/introspect",
            caller,
            &[("token", token), ("token_type_hint", hint)],
        )
        .await
    }

    /// `POST /oauth/introspect` asserting a 200 JSON answer with `Cache-Control: no-store`;
    /// returns the body.
    pub async fn introspect_ok(&self, caller: Caller<'_>, token: &str) -> Value {
        let resp = self.introspect(caller, token).await;
        assert_no_store(resp.headers(), "an introspection answer");
        json_response(resp, 200).await
    }

    /// `POST /oauth/revoke` with `token=...`.
    pub async fn revoke(&self, caller: Caller<'_>, token: &str) -> Response {
        self.post_form("/oauth/revoke", caller, &[("token", token)])
            .await
    }

    /// `POST /oauth/revoke` with `token=...&token_type_hint=...`.
    pub async fn revoke_hinted(&self, caller: Caller<'_>, token: &str, hint: &str) -> Response {
        self.post_form(
            "/oauth/revoke",
            caller,
            &[("token", token), ("token_type_hint", hint)],
        )
        .await
    }

    /// `POST /oauth/revoke` asserting a 200.
    pub async fn revoke_ok(&self, caller: Caller<'_>, token: &str) {
        let resp = self.revoke(caller, token).await;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "revoke answers 200; body: {text}");
    }
}
