//! What operators, proxies and verifiers call: health and readiness, the JWKS and the
//! discovery document, `/metrics`, and forward-auth's `/verify`.

use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use crate::helpers::TestApp;

impl TestApp {
    pub async fn healthz(&self) -> Response {
        self.request(Method::GET, "/healthz", None).await
    }

    pub async fn readyz(&self) -> Response {
        self.request(Method::GET, "/readyz", None).await
    }

    pub async fn jwks(&self) -> Response {
        self.request(Method::GET, "/.well-known/jwks.json", None)
            .await
    }

    /// The JWKS document, asserting a 200.
    pub async fn jwks_ok(&self) -> Value {
        let resp = self.jwks().await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.expect("jwks is json")
    }

    pub async fn openid_configuration(&self) -> Response {
        self.request(Method::GET, "/.well-known/openid-configuration", None)
            .await
    }

    pub async fn metrics(&self) -> Response {
        self.request(Method::GET, "/metrics", None).await
    }

    /// The Prometheus text, asserting a 200.
    pub async fn metrics_text(&self) -> String {
        let resp = self.metrics().await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.expect("metrics text")
    }

    /// `GET /verify` with an optional bearer token.
    pub async fn verify(&self, bearer: Option<&str>) -> Response {
        self.request(Method::GET, "/verify", bearer).await
    }

    /// `/verify` by `method` with extra raw headers (cookies, client-sent `X-Auth-*`).
    pub async fn verify_with(&self, method: Method, headers: &[(&str, &str)]) -> Response {
        let mut req = self.client.request(method, self.url("/verify"));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.expect("request sent")
    }
}
