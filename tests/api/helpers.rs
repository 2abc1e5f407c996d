//! Test harness: `spawn_app` runs the real `Application` in-process on `127.0.0.1:0` with its
//! own temporary data directory; `ClaimdProcess` runs the real binary for the tests that need
//! a process to kill. `TestApp` has one method per endpoint, and the `assert_*` helpers check
//! the problem+json shape from API.md so each test states only the status and `code` it
//! expects.
//!
//! Every network wait is bounded (the HTTP client has a timeout, child processes are polled
//! against a deadline) and every child process is killed when its guard drops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use claimd::clock::{Clock, ManualClock};
use claimd::config::Settings;
use claimd::startup::Application;
use claimd::telemetry::LogOutput;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Map, Value};
use tempfile::TempDir;

/// A password that satisfies the 8..=1024 character rule.
pub const PASSWORD: &str = "correct horse battery staple";

/// How long any single HTTP request may take before the test fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the binary may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `TEST_LOG` asks for the servers' logs.
pub fn test_log() -> bool {
    std::env::var_os("TEST_LOG").is_some_and(|value| !value.is_empty() && value != "0")
}

/// With `TEST_LOG` set, installs (once for this test binary) a tracing subscriber that
/// writes the in-process servers' logs through libtest's writer: shown with a failing
/// test's output, or live with `--nocapture`. `RUST_LOG` filters it (default `info`), with
/// the server's own caps on dependencies.
/// Without `TEST_LOG` nothing is installed and the servers log nowhere.
pub fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if !test_log() {
        return;
    }
    ONCE.call_once(|| claimd::telemetry::init_tracing_to("info", LogOutput::Test));
}

/// A running claimd (in-process or a child process) and a client aimed at it.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    /// Kept alive for the in-process server's lifetime; `None` when the caller owns the dir.
    pub data_dir: Option<TempDir>,
    /// The clock the in-process server reads when the test moves it
    /// ([`spawn_app_on_clock`]); `None` on the system clock.
    pub clock: Option<ManualClock>,
    /// The demo's URL with its key, as claimd prints it, for an in-process server with
    /// `demo.enabled`.
    pub demo_url: Option<String>,
}

/// Starts claimd in-process with the defaults of DESIGN.md's configuration table.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts claimd in-process after `tweak` has adjusted the settings (short TTLs, small
/// limits, another algorithm...). Bind address, workers and data dir are set before `tweak`
/// runs, so it may override them too.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    init_test_log();
    let dir = tempfile::tempdir().expect("create temp dir");
    let mut settings = test_settings(&dir.path().join("data"));
    tweak(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let port = app.port();
    let demo_url = app.demo_url().map(str::to_string);
    tokio::spawn(app.run_until_stopped());
    TestApp {
        demo_url,
        ..TestApp::new(port, Some(dir))
    }
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

    // ---- accounts and sessions ----

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

    pub async fn change_password(&self, access_token: &str, current: &str, new: &str) -> Response {
        self.client
            .post(self.url("/me/password"))
            .bearer_auth(access_token)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
            .await
            .expect("request sent")
    }

    // ---- operations ----

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

    pub async fn metrics(&self) -> Response {
        self.request(Method::GET, "/metrics", None).await
    }

    /// The Prometheus text, asserting a 200.
    pub async fn metrics_text(&self) -> String {
        let resp = self.metrics().await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.expect("metrics text")
    }
}

// ---- token responses ----

/// A parsed token response (RFC 6749 §5.1 shape plus `session_id`).
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    /// Absent when a refresh was made with an access token.
    pub refresh_token: Option<String>,
    pub refresh_expires_in: Option<u64>,
    pub session_id: String,
    pub body: Value,
}

impl Tokens {
    pub fn refresh(&self) -> &str {
        self.refresh_token
            .as_deref()
            .expect("token response carries a refresh_token")
    }

    pub fn claims(&self) -> Value {
        jwt_claims(&self.access_token)
    }
}

/// Asserts a 200 token response with `Cache-Control: no-store` and parses it.
pub async fn token_response(resp: Response) -> Tokens {
    let status = resp.status();
    let cache_control = header_str(resp.headers(), CACHE_CONTROL.as_str());
    let body: Value = resp.json().await.expect("token response is json");
    assert_eq!(
        status,
        StatusCode::OK,
        "expected a token response, got {body}"
    );
    assert!(
        cache_control
            .as_deref()
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-store")),
        "token response needs Cache-Control: no-store, got {cache_control:?}"
    );
    parse_tokens(body)
}

pub fn parse_tokens(body: Value) -> Tokens {
    let str_field = |name: &str| {
        body[name]
            .as_str()
            .unwrap_or_else(|| panic!("token response field {name:?} is a string: {body}"))
            .to_string()
    };
    let access_token = str_field("access_token");
    let token_type = str_field("token_type");
    let session_id = str_field("session_id");
    let expires_in = body["expires_in"]
        .as_u64()
        .unwrap_or_else(|| panic!("expires_in is an unsigned integer: {body}"));
    let refresh_token = match &body["refresh_token"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => panic!("refresh_token is a string or absent, got {other}"),
    };
    let refresh_expires_in = body["refresh_expires_in"].as_u64();
    assert_eq!(token_type, "Bearer", "token_type");
    Tokens {
        access_token,
        token_type,
        expires_in,
        refresh_token,
        refresh_expires_in,
        session_id,
        body,
    }
}

/// Splits a refresh token `<sid>.<generation>.<mac>` into its parts.
pub fn refresh_parts(token: &str) -> (String, u64, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "refresh token has three dot-separated parts: {token}"
    );
    let generation = parts[1]
        .parse()
        .unwrap_or_else(|_| panic!("generation is a number: {token}"));
    assert!(!parts[2].is_empty(), "refresh token mac is empty: {token}");
    (parts[0].to_string(), generation, parts[2].to_string())
}

/// The refresh token with the first character of its MAC changed (to another character that
/// is valid in both hex and base64url): a well-formed token whose MAC is wrong.
pub fn forge_mac(token: &str) -> String {
    let (sid, generation, mac) = refresh_parts(token);
    let mut chars: Vec<char> = mac.chars().collect();
    chars[0] = if chars[0] == '0' { '1' } else { '0' };
    format!(
        "{sid}.{generation}.{}",
        chars.into_iter().collect::<String>()
    )
}

// ---- JWT inspection ----

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(segment: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap_or_else(|e| panic!("segment {segment:?} is base64url: {e}"))
}

fn jwt_segment(token: &str, index: usize) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS has three segments: {token}");
    serde_json::from_slice(&b64url_decode(parts[index])).expect("JWT segment is JSON")
}

/// The decoded JOSE header of a JWT (no verification).
pub fn jwt_header(token: &str) -> Value {
    jwt_segment(token, 0)
}

/// The decoded claims of a JWT (no verification).
pub fn jwt_claims(token: &str) -> Value {
    jwt_segment(token, 1)
}

/// Unix seconds on the system clock.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

// ---- a server on a manual clock ----

/// Starts claimd in-process as [`spawn_app_with`] does, on a [`ManualClock`] that stands
/// still until the test moves it with [`TestApp::advance`]. Background tasks still tick in
/// real time; each tick reads the manual clock.
///
/// The clock starts at the system's time in whole seconds. Everything the server judges by
/// time reads it, access-token `exp` included (`tokens::access` checks it against the
/// clock, not jsonwebtoken's system time), so a test may move it as far as it likes.
pub async fn spawn_app_on_clock(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let manual = ManualClock::starting_at(now_unix());
    let dir = tempfile::tempdir().expect("create temp dir");
    let mut settings = test_settings(&dir.path().join("data"));
    tweak(&mut settings);
    let listener = std::net::TcpListener::bind(&settings.server.bind).expect("bind the listener");
    let app = Application::build_with_listener(settings, listener, manual.clock())
        .await
        .expect("application builds");
    let port = app.port();
    let demo_url = app.demo_url().map(str::to_string);
    tokio::spawn(app.run_until_stopped());
    TestApp {
        clock: Some(manual),
        demo_url,
        ..TestApp::new(port, Some(dir))
    }
}

/// [`spawn_app_with_admin`] on a manual clock, as [`spawn_app_on_clock`].
pub async fn spawn_app_with_admin_on_clock(tweak: impl FnOnce(&mut Settings)) -> (TestApp, Tokens) {
    let app = spawn_app_on_clock(|s| {
        s.bootstrap.admin_username = Some(ADMIN.to_string());
        s.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
        tweak(s);
    })
    .await;
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    (app, admin)
}

impl TestApp {
    fn manual_clock(&self) -> &ManualClock {
        self.clock
            .as_ref()
            .expect("a server started on a manual clock (spawn_app_on_clock)")
    }

    /// Lets `by` pass on the server's manual clock: wall-clock and monotonic time both move.
    pub fn advance(&self, by: Duration) {
        self.manual_clock().advance(by);
    }

    /// Sets the server's manual wall clock to `unix_secs`, forward or back, as NTP or an
    /// operator does: monotonic time does not move.
    pub fn set_clock(&self, unix_secs: u64) {
        self.manual_clock().set(unix_secs);
    }

    /// Moves the server's manual clock on to `unix_secs + extra_ms` (not back if it is
    /// already past), e.g. just past a token's `exp`.
    pub fn advance_until_past(&self, unix_secs: u64, extra_ms: u64) {
        let target_ms = unix_secs * 1000 + extra_ms;
        let now_ms = self.manual_clock().clock().now_ms();
        self.advance(Duration::from_millis(target_ms.saturating_sub(now_ms)));
    }

    /// Unix seconds on the server's clock: the manual one if it runs on one.
    pub fn now(&self) -> u64 {
        self.clock.as_ref().map_or_else(now_unix, ManualClock::now)
    }
}

// ---- problem+json assertions ----

pub fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Asserts an RFC 9457 problem with `status` and `code`; returns the headers and body.
pub async fn assert_problem(resp: Response, status: u16, code: &str) -> (HeaderMap, Value) {
    let (headers, body) = problem_parts(resp, status).await;
    assert_eq!(body["code"], json!(code), "problem code; body: {body}");
    (headers, body)
}

/// Asserts a problem with `status` whose `code` is one of `codes`.
pub async fn assert_problem_any(resp: Response, status: u16, codes: &[&str]) -> (HeaderMap, Value) {
    let (headers, body) = problem_parts(resp, status).await;
    let code = body["code"].as_str().unwrap_or_default();
    assert!(
        codes.contains(&code),
        "problem code {code:?} not in {codes:?}; body: {body}"
    );
    (headers, body)
}

/// The OAuth endpoints, whose errors are `application/json` (RFC 6749 §5.2: OAuth client
/// libraries check the media type); every other error is `application/problem+json`.
pub const OAUTH_ENDPOINTS: [&str; 3] =
    ["/auth/refresh-token", "/oauth/introspect", "/oauth/revoke"];

async fn problem_parts(resp: Response, status: u16) -> (HeaderMap, Value) {
    let actual = resp.status().as_u16();
    let headers = resp.headers().clone();
    let media = if OAUTH_ENDPOINTS.contains(&resp.url().path()) {
        "application/json"
    } else {
        "application/problem+json"
    };
    let text = resp.text().await.expect("response body");
    assert_eq!(actual, status, "status; body: {text}");
    let content_type = header_str(&headers, CONTENT_TYPE.as_str()).unwrap_or_default();
    assert!(
        content_type.starts_with(media),
        "problem content type {media}, got {content_type:?}; body: {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("problem body is json ({e}): {text}"));
    for field in ["type", "title", "code", "detail"] {
        assert!(
            body[field].is_string(),
            "problem field {field:?} is a string: {body}"
        );
    }
    assert_eq!(
        body["status"],
        json!(status),
        "problem status field: {body}"
    );
    (headers, body)
}

/// Asserts a 401 token problem with `code` and an RFC 6750 `WWW-Authenticate` header.
pub async fn assert_token_error(resp: Response, code: &str) -> Value {
    assert_token_error_any(resp, &[code]).await
}

/// Like [`assert_token_error`], accepting any of `codes`.
pub async fn assert_token_error_any(resp: Response, codes: &[&str]) -> Value {
    let (headers, body) = assert_problem_any(resp, 401, codes).await;
    let challenge = header_str(&headers, "www-authenticate")
        .unwrap_or_else(|| panic!("401 without WWW-Authenticate; body: {body}"));
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate is a Bearer challenge, got {challenge:?}"
    );
    if body["code"] != json!("token_missing") {
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "WWW-Authenticate names error=\"invalid_token\", got {challenge:?}"
        );
    }
    body
}

/// Walks a JSON value and fails if any key smells of a password or its hash.
pub fn assert_no_secret_fields(value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let k = key.to_ascii_lowercase();
                assert!(
                    !(k.contains("pass") || k.contains("hash") || k.contains("secret")),
                    "field {key:?} must not be exposed: {value}"
                );
                assert_no_secret_fields(inner);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_secret_fields),
        _ => {}
    }
}

// ---- Prometheus text ----

/// Parses `key="value",...` (with `\"` and `\\` escapes) into pairs.
fn parse_labels(labels: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = labels.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => break,
                other => value.push(other),
            }
        }
        out.push((key.trim().to_string(), value));
    }
    out
}

/// Every sample of metric `name`: its labels and value.
pub fn metric_samples(text: &str, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || !line.starts_with(name) {
            continue;
        }
        let rest = &line[name.len()..];
        let (labels, value_part) = if let Some(inner) = rest.strip_prefix('{') {
            let Some(end) = inner.rfind('}') else {
                continue;
            };
            (parse_labels(&inner[..end]), &inner[end + 1..])
        } else if rest.starts_with(' ') {
            (Vec::new(), rest)
        } else {
            continue;
        };
        let Some(value) = value_part.split_whitespace().next() else {
            continue;
        };
        if let Ok(v) = value.parse::<f64>() {
            samples.push((labels, v));
        }
    }
    samples
}

/// The sum of the samples of `name` whose labels include every pair of `want`.
pub fn metric_sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    metric_samples(text, name)
        .into_iter()
        .filter(|(labels, _)| {
            want.iter()
                .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, v)| v)
        .sum()
}

// ---- the real binary ----

/// A `claimd` command running in `workdir` (so no stray `config.toml` is read), with any
/// inherited `CLAIMD__*` variables removed and port 0.
pub fn claimd_command(workdir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claimd"));
    cmd.current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("CLAIMD__") {
            cmd.env_remove(key);
        }
    }
    cmd.env("CLAIMD__SERVER__BIND", "127.0.0.1:0");
    // Port 0 gives every restart a new port: one fixed issuer keeps a store's tokens valid
    // across restarts (an unset issuer is derived from the port: discovery's tests).
    cmd.env("CLAIMD__TOKENS__ISSUER", TEST_ISSUER);
    // Tests register many users from 127.0.0.1; the registration limit has its own tests.
    cmd.env("CLAIMD__AUTH__REGISTER_LIMIT", "100000/1s");
    if crate::backend::on_postgres() {
        // The store of this working directory, whichever restart of it this is.
        cmd.env("CLAIMD__STORAGE__BACKEND", "postgres")
            .env(
                "CLAIMD__STORAGE__POSTGRES_URL",
                crate::backend::postgres_url_for(&workdir.join("data")),
            )
            .env("CLAIMD__STORAGE__POSTGRES_POOL", "4");
    }
    cmd
}

/// The issuer of test servers, in-process or child: fixed, since each restart on port 0
/// gets a new port (and an unset issuer follows the port).
pub const TEST_ISSUER: &str = "http://127.0.0.1:8080";

/// The plans tests move users between with `PATCH /me`.
pub const TEST_PLANS: [&str; 6] = ["free", "premium", "gold", "pro", "enterprise", "x"];

/// The base every in-process test server starts from: DESIGN.md's defaults, except that
/// users may set their plan to one of [`TEST_PLANS`] (the shipped default opens no
/// self-service field: `claim_changes::self_service_opens_nothing_by_default` holds it to that) and
/// registrations from 127.0.0.1 are not limited (`rate_limit` tests set the limit they
/// check).
pub fn test_settings(data: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".to_string();
    settings.server.workers = Some(2);
    settings.storage.path = data.to_path_buf();
    if crate::backend::on_postgres() {
        settings.storage.backend = claimd::config::StorageBackend::Postgres;
        settings.storage.postgres_url = Some(crate::backend::postgres_url_for(data).into());
        // Hundreds of servers share one cluster in a run.
        settings.storage.postgres_pool = 4;
    }
    settings.tokens.issuer = TEST_ISSUER.to_string();
    settings.claims.self_service = allow_plans(&TEST_PLANS);
    settings.auth.register_limit = claimd::config::LoginAttempts {
        max: 100_000,
        window: Duration::from_secs(1),
    };
    settings
}

/// A `claims.self_service` table that lets users choose among `plans` only.
pub fn allow_plans(plans: &[&str]) -> std::collections::BTreeMap<String, Vec<String>> {
    std::collections::BTreeMap::from([(
        "plan".to_string(),
        plans.iter().map(|p| (*p).to_string()).collect(),
    )])
}

/// Everything a child wrote, collected by reader threads so its pipes never fill up.
#[derive(Clone, Default)]
struct Output {
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Output {
    fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }
    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Reads a child's stream line by line into `sink` (and to `lines`). With `TEST_LOG` set,
/// each line is also printed, prefixed with the child's pid, through libtest's capture
/// (the reader thread inherits the test's), like the in-process servers' logs.
fn pump(
    stream: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
    pid: u32,
) -> JoinHandle<()> {
    let echo = test_log();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if echo {
                        print!("[claimd {pid}] {line}");
                    }
                    if let Ok(mut all) = sink.lock() {
                        all.push_str(&line);
                    }
                    if let Some(tx) = &lines {
                        let _ = tx.send(line.clone());
                    }
                }
            }
        }
    })
}

/// A running claimd child process; killed (SIGKILL) when dropped.
pub struct ClaimdProcess {
    child: Child,
    output: Output,
    readers: Vec<JoinHandle<()>>,
    pub port: u16,
}

impl ClaimdProcess {
    /// Starts the binary with `cmd` and waits (bounded) for its `listening on` line.
    pub fn start(mut cmd: Command) -> ClaimdProcess {
        let mut child = cmd.spawn().expect("spawn claimd binary");
        let pid = child.id();
        let output = Output::default();
        let (tx, rx) = mpsc::channel();
        let readers = vec![
            pump(
                child.stdout.take().expect("stdout piped"),
                output.stdout.clone(),
                Some(tx),
                pid,
            ),
            pump(
                child.stderr.take().expect("stderr piped"),
                output.stderr.clone(),
                None,
                pid,
            ),
        ];
        let mut process = ClaimdProcess {
            child,
            output,
            readers,
            port: 0,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(port) = parse_listening_port(&line) {
                        process.port = port;
                        return process;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(200));
                    panic!(
                        "claimd closed stdout before listening; status {:?}\nstdout:\n{}\nstderr:\n{}",
                        process.child.try_wait(),
                        process.output.stdout(),
                        process.output.stderr()
                    );
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "claimd did not print `listening on` within {STARTUP_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                    process.output.stdout(),
                    process.output.stderr()
                );
            }
        }
    }

    /// Starts the binary on `data` (`CLAIMD__STORAGE__PATH`), running in `workdir`.
    pub fn start_on(workdir: &Path, data: &Path) -> ClaimdProcess {
        let mut cmd = claimd_command(workdir);
        cmd.env("CLAIMD__STORAGE__PATH", data);
        ClaimdProcess::start(cmd)
    }

    pub fn app(&self) -> TestApp {
        TestApp::new(self.port, None)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process has written to stdout so far.
    pub fn stdout(&self) -> String {
        self.output.stdout()
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.output.stderr()
    }

    /// SIGKILL, then reap the child: a crash, with no chance to flush.
    pub fn kill9(mut self) {
        self.child.kill().expect("send SIGKILL");
        wait_bounded(&mut self.child, Duration::from_secs(10)).expect("killed child exits");
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> (Option<ExitStatus>, String, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let exit = wait_bounded(&mut self.child, timeout);
        if exit.is_some() {
            for reader in std::mem::take(&mut self.readers) {
                let _ = reader.join();
            }
        }
        (exit, self.output.stdout(), self.output.stderr())
    }
}

impl Drop for ClaimdProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = wait_bounded(&mut self.child, Duration::from_secs(10));
        }
    }
}

/// The port from a line containing `listening on http://HOST:PORT`.
pub fn parse_listening_port(line: &str) -> Option<u16> {
    let start = line.find("listening on http://")? + "listening on http://".len();
    let addr: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    let port: String = addr
        .rsplit(':')
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    port.parse().ok()
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => return None,
        }
    }
}

/// How a run of the binary that should not get far ended.
#[derive(Debug)]
pub struct Exit {
    /// `None` when it was still running at the deadline (it has been killed since).
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` until it exits or `timeout` passes (then kills it).
pub fn run_to_exit(mut cmd: Command, timeout: Duration) -> Exit {
    let child = cmd.spawn().expect("spawn claimd binary");
    collect_exit(child, timeout)
}

/// Like [`run_to_exit`], writing `stdin` to the child's standard input (a pipe, so never a
/// terminal) and then closing it.
pub fn run_to_exit_with_stdin(mut cmd: Command, stdin: &str, timeout: Duration) -> Exit {
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn claimd binary");
    let mut pipe = child.stdin.take().expect("stdin piped");
    let input = stdin.as_bytes().to_vec();
    // A writer thread, so a child that never reads cannot block the test on a full pipe.
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = pipe.write_all(&input);
    });
    collect_exit(child, timeout)
}

fn collect_exit(mut child: Child, timeout: Duration) -> Exit {
    let pid = child.id();
    let output = Output::default();
    let readers = [
        pump(
            child.stdout.take().expect("stdout piped"),
            output.stdout.clone(),
            None,
            pid,
        ),
        pump(
            child.stderr.take().expect("stderr piped"),
            output.stderr.clone(),
            None,
            pid,
        ),
    ];
    let status = wait_bounded(&mut child, timeout);
    let reaped = status.is_some() || {
        let _ = child.kill();
        wait_bounded(&mut child, Duration::from_secs(10)).is_some()
    };
    if reaped {
        // The pipes are at EOF once the child is gone: collect everything it wrote.
        for reader in readers {
            let _ = reader.join();
        }
    }
    Exit {
        status,
        stdout: output.stdout(),
        stderr: output.stderr(),
    }
}

/// A fresh working directory (no `config.toml`) and a data path inside it.
/// Creates an empty claimd store at `data`, as a first server start would: command-line
/// operations (`user add`, `keys rotate`, ...) refuse to create one.
pub fn init_store(data: &Path) {
    let store = claimd::store::Store::open(data, 16).expect("create a store");
    store.close();
}

pub fn workdir() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let data = dir.path().join("data");
    (dir, data)
}

/// Builds a JSON object from pairs, for hand-made JWT headers.
pub fn object(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

// ---- claim changes and administration ----

/// The bootstrap admin of [`spawn_app_with_admin`].
pub const ADMIN: &str = "root";
pub const ADMIN_PASSWORD: &str = "the admin's own passphrase";

/// Starts claimd in-process with a bootstrap admin ([`ADMIN`], [`ADMIN_PASSWORD`]) and
/// returns the app and the admin's login.
pub async fn spawn_app_with_admin(tweak: impl FnOnce(&mut Settings)) -> (TestApp, Tokens) {
    let app = spawn_app_with(|s| {
        s.bootstrap.admin_username = Some(ADMIN.to_string());
        s.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
        tweak(s);
    })
    .await;
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    (app, admin)
}

/// Asserts `status` and a JSON body (`Content-Type: application/json`); returns the body.
pub async fn json_response(resp: Response, status: u16) -> Value {
    let actual = resp.status().as_u16();
    let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
    let text = resp.text().await.expect("response body");
    assert_eq!(actual, status, "status; body: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "json content type, got {content_type:?}; body: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is json ({e}): {text}"))
}

/// A claim-change answer (`PATCH /me`, an admin changing itself): 200, `Cache-Control:
/// no-store`, a `token` object of the token-response shape and an `X-Refreshed-Token` header
/// equal to its `access_token`. Returns the body and the new access token.
pub async fn refreshed_response(resp: Response) -> (Value, String) {
    let cache_control = header_str(resp.headers(), CACHE_CONTROL.as_str());
    let refreshed = header_str(resp.headers(), REFRESHED_TOKEN);
    let body = json_response(resp, 200).await;
    assert!(
        cache_control
            .as_deref()
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-store")),
        "a response carrying a token needs Cache-Control: no-store, got {cache_control:?}"
    );
    let token = &body["token"];
    let access_token = token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("token.access_token is a string: {body}"))
        .to_string();
    assert_eq!(token["token_type"], json!("Bearer"), "token_type: {body}");
    assert!(
        token["expires_in"].as_u64().is_some_and(|n| n > 0),
        "token.expires_in is a positive integer: {body}"
    );
    assert!(
        token.get("refresh_token").is_none_or(Value::is_null),
        "a claim change does not rotate the refresh token: {body}"
    );
    assert_eq!(
        refreshed.as_deref(),
        Some(access_token.as_str()),
        "X-Refreshed-Token equals token.access_token"
    );
    (body, access_token)
}

/// The header that carries a token minted because claims changed.
pub const REFRESHED_TOKEN: &str = "x-refreshed-token";

/// A user id that no user has (well-formed, never issued).
pub const UNKNOWN_ID: &str = "01890000-0000-7000-8000-000000000000";

impl TestApp {
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

    pub async fn patch_me(&self, access_token: &str, body: &Value) -> Response {
        self.send_json(Method::PATCH, "/me", Some(access_token), body)
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

    // admin: users

    /// `GET /admin/users` with `query` (e.g. `"?limit=3"`, or `""`).
    pub async fn admin_list_users(&self, bearer: &str, query: &str) -> Response {
        self.request(Method::GET, &format!("/admin/users{query}"), Some(bearer))
            .await
    }

    pub async fn admin_get_user(&self, bearer: &str, id: &str) -> Response {
        self.request(Method::GET, &format!("/admin/users/{id}"), Some(bearer))
            .await
    }

    pub async fn admin_patch_user(&self, bearer: &str, id: &str, body: &Value) -> Response {
        self.send_json(
            Method::PATCH,
            &format!("/admin/users/{id}"),
            Some(bearer),
            body,
        )
        .await
    }

    /// `PATCH /admin/users/{id}` asserting a 200; returns the `user` object.
    pub async fn admin_patch_user_ok(&self, bearer: &str, id: &str, body: &Value) -> Value {
        let resp = self.admin_patch_user(bearer, id, body).await;
        json_response(resp, 200).await["user"].clone()
    }

    pub async fn admin_delete_user(&self, bearer: &str, id: &str) -> Response {
        self.request(Method::DELETE, &format!("/admin/users/{id}"), Some(bearer))
            .await
    }

    pub async fn admin_revoke_user(&self, bearer: &str, id: &str) -> Response {
        self.request(
            Method::POST,
            &format!("/admin/users/{id}/revoke"),
            Some(bearer),
        )
        .await
    }

    // admin: tenants

    pub async fn create_tenant(&self, bearer: &str, body: &Value) -> Response {
        self.send_json(Method::POST, "/admin/tenants", Some(bearer), body)
            .await
    }

    /// `POST /admin/tenants` asserting a 201; returns the `tenant` object.
    pub async fn create_tenant_ok(&self, bearer: &str, body: &Value) -> Value {
        let resp = self.create_tenant(bearer, body).await;
        json_response(resp, 201).await["tenant"].clone()
    }

    pub async fn get_tenant(&self, bearer: &str, id: &str) -> Response {
        self.request(Method::GET, &format!("/admin/tenants/{id}"), Some(bearer))
            .await
    }

    /// `GET /admin/tenants/{id}` asserting a 200; returns the `tenant` object.
    pub async fn get_tenant_ok(&self, bearer: &str, id: &str) -> Value {
        json_response(self.get_tenant(bearer, id).await, 200).await["tenant"].clone()
    }

    // admin: invitations

    /// `POST /admin/tenants/{tenant}/invitations`, with `body` or with none.
    pub async fn create_invitation(
        &self,
        bearer: &str,
        tenant: &str,
        body: Option<&Value>,
    ) -> Response {
        let path = format!("/admin/tenants/{tenant}/invitations");
        match body {
            Some(body) => {
                self.send_json(Method::POST, &path, Some(bearer), body)
                    .await
            }
            None => self.request(Method::POST, &path, Some(bearer)).await,
        }
    }

    /// `POST /admin/tenants/{tenant}/invitations` asserting a 201; returns the `invitation`
    /// object (with its `code`).
    pub async fn create_invitation_ok(
        &self,
        bearer: &str,
        tenant: &str,
        body: Option<&Value>,
    ) -> Value {
        let resp = self.create_invitation(bearer, tenant, body).await;
        json_response(resp, 201).await["invitation"].clone()
    }

    pub async fn list_invitations(&self, bearer: &str, tenant: &str) -> Response {
        self.request(
            Method::GET,
            &format!("/admin/tenants/{tenant}/invitations"),
            Some(bearer),
        )
        .await
    }

    pub async fn revoke_invitation(&self, bearer: &str, tenant: &str, id: &str) -> Response {
        self.request(
            Method::DELETE,
            &format!("/admin/tenants/{tenant}/invitations/{id}"),
            Some(bearer),
        )
        .await
    }

    pub async fn list_tenants(&self, bearer: &str) -> Response {
        self.request(Method::GET, "/admin/tenants", Some(bearer))
            .await
    }

    pub async fn patch_tenant(&self, bearer: &str, id: &str, body: &Value) -> Response {
        self.send_json(
            Method::PATCH,
            &format!("/admin/tenants/{id}"),
            Some(bearer),
            body,
        )
        .await
    }

    pub async fn delete_tenant(&self, bearer: &str, id: &str) -> Response {
        self.request(
            Method::DELETE,
            &format!("/admin/tenants/{id}"),
            Some(bearer),
        )
        .await
    }
}

// ---- verification for other services ----

/// Starts claimd in-process on a listener bound before the settings are made, with
/// `tokens.issuer` set to the server's real URL (`http://127.0.0.1:PORT`), so discovery
/// documents and JWKS clients that follow `jwks_uri` reach this very server.
pub async fn spawn_app_on_issuer(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    init_test_log();
    let dir = tempfile::tempdir().expect("create temp dir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("listener address").port();
    let mut settings = test_settings(&dir.path().join("data"));
    settings.server.bind = format!("127.0.0.1:{port}");
    settings.tokens.issuer = format!("http://127.0.0.1:{port}");
    tweak(&mut settings);
    let app = Application::build_with_listener(settings, listener, Clock::system())
        .await
        .expect("application builds");
    assert_eq!(app.port(), port, "serves on the listener it was given");
    let demo_url = app.demo_url().map(str::to_string);
    tokio::spawn(app.run_until_stopped());
    TestApp {
        demo_url,
        ..TestApp::new(port, Some(dir))
    }
}

/// `{"active":false}`: the whole answer of `/oauth/introspect` for anything inactive.
pub fn inactive() -> Value {
    json!({"active": false})
}

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

/// The `kid`s of a JWKS document, in order.
pub fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("JWKS has a keys array: {jwks}"))
        .iter()
        .map(|k| {
            k["kid"]
                .as_str()
                .unwrap_or_else(|| panic!("every JWK has a kid: {jwks}"))
                .to_string()
        })
        .collect()
}

/// The `kid` of a JWT's header.
pub fn jwt_kid(token: &str) -> String {
    jwt_header(token)["kid"]
        .as_str()
        .unwrap_or_else(|| panic!("token header has a kid: {token}"))
        .to_string()
}

/// Fails the test, naming what is missing, unless `available`. Tests that need something
/// the Rust toolchain does not bring (nginx, PyJWT, libfaketime, root for a tmpfs) are
/// `#[ignore = "needs …"]`: a plain `cargo test` reports them as ignored, and
/// `cargo test -- --include-ignored` (what `.ci/run` runs, after installing the tools)
/// runs them, where a missing tool is a failure, never a silent pass.
pub fn require(what: &str, available: bool) {
    assert!(
        available,
        "{what} is needed by this test (run by `--include-ignored`) and is not available; \
         `.ci/run` shows how to install it"
    );
}

/// Asserts `Cache-Control` contains `no-store`.
pub fn assert_no_store(headers: &HeaderMap, what: &str) {
    let cache_control = header_str(headers, CACHE_CONTROL.as_str());
    assert!(
        cache_control
            .as_deref()
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-store")),
        "{what} needs Cache-Control: no-store, got {cache_control:?}"
    );
}

/// Asserts a `401 invalid_client` problem with `WWW-Authenticate: Basic realm="claimd"`.
pub async fn assert_invalid_client(resp: Response) {
    let (headers, body) = assert_problem(resp, 401, "invalid_client").await;
    let challenge = header_str(&headers, "www-authenticate")
        .unwrap_or_else(|| panic!("invalid_client without WWW-Authenticate; body: {body}"));
    assert_eq!(
        challenge, r#"Basic realm="claimd""#,
        "invalid_client challenge"
    );
}

impl TestApp {
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

    // admin: services

    pub async fn create_service(&self, bearer: &str, name: &str) -> Response {
        self.send_json(
            Method::POST,
            "/admin/services",
            Some(bearer),
            &json!({"name": name}),
        )
        .await
    }

    /// `POST /admin/services` asserting a 201 of the documented shape.
    pub async fn create_service_ok(&self, bearer: &str, name: &str) -> Service {
        let body = json_response(self.create_service(bearer, name).await, 201).await;
        let field = |key: &str| {
            body[key]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| panic!("service {key:?} is a non-empty string: {body}"))
                .to_string()
        };
        let service = Service {
            client_id: field("client_id"),
            client_secret: field("client_secret"),
            name: field("name"),
        };
        assert_eq!(service.name, name, "the service keeps its name: {body}");
        service
    }

    pub async fn list_services(&self, bearer: &str) -> Response {
        self.request(Method::GET, "/admin/services", Some(bearer))
            .await
    }

    pub async fn delete_service(&self, bearer: &str, client_id: &str) -> Response {
        self.request(
            Method::DELETE,
            &format!("/admin/services/{client_id}"),
            Some(bearer),
        )
        .await
    }

    // admin: keys

    /// `POST /admin/keys/rotate` with an optional JSON body.
    pub async fn rotate_keys(&self, bearer: &str, body: Option<&Value>) -> Response {
        match body {
            Some(body) => {
                self.send_json(Method::POST, "/admin/keys/rotate", Some(bearer), body)
                    .await
            }
            None => {
                self.request(Method::POST, "/admin/keys/rotate", Some(bearer))
                    .await
            }
        }
    }

    /// `POST /admin/keys/rotate {"now": now}` asserting a 200; returns the `key` object
    /// (`kid`, `alg`, `signs_from`).
    pub async fn rotate_keys_ok(&self, bearer: &str, now: bool) -> Value {
        let resp = self.rotate_keys(bearer, Some(&json!({"now": now}))).await;
        let body = json_response(resp, 200).await;
        let key = body["key"].clone();
        assert!(
            key["kid"].as_str().is_some_and(|k| !k.is_empty()),
            "key.kid is a non-empty string: {body}"
        );
        assert!(key["alg"].is_string(), "key.alg is a string: {body}");
        assert!(
            key["signs_from"].is_u64(),
            "key.signs_from is unix seconds: {body}"
        );
        key
    }

    pub async fn openid_configuration(&self) -> Response {
        self.request(Method::GET, "/.well-known/openid-configuration", None)
            .await
    }
}

/// The token with the first character of its signature changed (every bit of that character
/// is significant): same header and claims, a signature that does not verify.
pub fn tamper_signature(token: &str) -> String {
    let sig = token.rfind('.').expect("a JWS has a signature segment") + 1;
    let mut tampered = token.to_string();
    let flipped = if &token[sig..=sig] == "A" { "B" } else { "A" };
    tampered.replace_range(sig..=sig, flipped);
    tampered
}
