//! [`TestApp`]: a running claimd, in-process or a child process, and an HTTP client aimed
//! at it, with the generic requests (any method and path, JSON, raw bodies, concurrent
//! sends) that the per-endpoint calls in `calls` are made of.

use std::time::Duration;

use claimd::clock::ManualClock;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Response};
use serde_json::Value;
use tempfile::TempDir;

/// How long any single HTTP request may take before the test fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A running claimd (in-process or a child process) and a client aimed at it.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    /// Kept alive for the in-process server's lifetime; `None` when the caller owns the dir.
    pub data_dir: Option<TempDir>,
    /// The clock the in-process server reads when the test moves it
    /// ([`spawn_app_on_clock`](super::spawn_app_on_clock)); `None` on the system clock.
    pub clock: Option<ManualClock>,
    /// The demo's URL with its key, as claimd prints it, for an in-process server with
    /// `demo.enabled`.
    pub demo_url: Option<String>,
}

impl TestApp {
    /// A client for a server already listening on `port` (e.g. a child process).
    pub fn new(port: u16, data_dir: Option<TempDir>) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("build http client");
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client,
            data_dir,
            clock: None,
            demo_url: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Any request, optionally with a bearer token; the escape hatch for odd methods/paths.
    pub async fn request(&self, method: Method, path: &str, bearer: Option<&str>) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request sent")
    }

    /// `path` with a raw `Authorization` header value (for garbage headers).
    pub async fn get_with_authorization(&self, path: &str, value: HeaderValue) -> Response {
        self.client
            .get(self.url(path))
            .header(AUTHORIZATION, value)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// A request with a JSON body and an optional bearer token.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path)).json(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request sent")
    }

    /// Starts a request with a JSON body and an optional bearer token on its own task, for
    /// concurrent requests.
    pub fn send_json_task(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Value,
    ) -> tokio::task::JoinHandle<Response> {
        let mut req = self.client.request(method, self.url(path)).json(&body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        tokio::spawn(async move { req.send().await.expect("request sent") })
    }

    /// Starts a JSON POST on its own task, for concurrent requests.
    pub fn post_json_task(&self, path: &str, body: Value) -> tokio::task::JoinHandle<Response> {
        let client = self.client.clone();
        let url = self.url(path);
        tokio::spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("request sent")
        })
    }

    /// POST with an arbitrary body and content type (malformed JSON, oversized bodies...).
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
    ) -> Response {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        req.send().await.expect("request sent")
    }
}
