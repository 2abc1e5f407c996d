//! Forward-auth through a real nginx: the configuration docs/verification.md prints (taken
//! from that page, so it cannot drift; `examples/nginx/claimd.conf` is held to it), with its
//! three addresses moved to free loopback ports and its `/tmp` paths into a temporary
//! directory, in front of a tiny upstream that echoes the `X-Auth-*` headers it receives.
//! A valid token reaches the upstream with the identity claimd vouched for (a client's own
//! `X-Auth-*` replaced); a missing, invalid, revoked or stale token is refused with claimd's
//! own 401 problem+json (its `code`, one Bearer challenge) and the upstream never sees the
//! request; claimd's public endpoints (`/auth/*`, `/me`, discovery) answer through nginx.
//!
//! They need nginx: `#[ignore = "needs nginx"]`, run by `cargo test -- --include-ignored`
//! (`.ci/run` installs nginx first), where a missing nginx fails them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use claimd::config::OnStale;
use reqwest::{Response, StatusCode};
use serde_json::{json, Map, Value};
use tempfile::TempDir;

use crate::helpers::{
    header_str, json_response, jwt_claims, refreshed_response, require, spawn_app, spawn_app_with,
    spawn_app_with_admin, token_response, TestApp, Tokens, PASSWORD, REFRESHED_TOKEN,
};

const NGINX_START_TIMEOUT: Duration = Duration::from_secs(15);

// ---- the upstream application ----

/// A one-thread HTTP/1.x server on a free loopback port that answers every request with
/// 200 and `{"method","target","headers":{lowercase name: [values]}}`, counting requests.
struct Upstream {
    port: u16,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let hits = Arc::clone(&hits);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        answer(stream, &hits);
                    }
                }
            })
        };
        Upstream {
            port,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ =
            TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request, counts it in `hits` (before answering, so a client that has the
/// answer sees the count) and answers it. A connection that sends nothing is not counted.
fn answer(stream: TcpStream, hits: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers: Map<String, Value> = Map::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_string();
            if name == "content-length" {
                content_length = value.parse().unwrap_or(0);
            }
            headers
                .entry(name)
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .unwrap()
                .push(json!(value));
        }
    }
    let mut body = vec![0u8; content_length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    let reply = json!({"method": method, "target": target, "headers": headers}).to_string();
    hits.fetch_add(1, Ordering::SeqCst);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    let _ = stream.flush();
}

// ---- nginx ----

fn nginx_binary() -> Option<PathBuf> {
    let standard = PathBuf::from("/usr/sbin/nginx");
    if standard.is_file() {
        return Some(standard);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nginx"))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

/// The forward-auth ```nginx block of docs/verification.md (the one with `auth_request`; the
/// load balancer in docs/several-nodes.md only balances), which `examples/nginx/claimd.conf`
/// must equal.
fn readme_config() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme =
        std::fs::read_to_string(root.join("docs/verification.md")).expect("docs/verification.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match current.as_mut() {
            None if line == "```nginx" => current = Some(String::new()),
            None => {}
            Some(_) if line == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks.retain(|block| block.contains("auth_request"));
    assert_eq!(
        blocks.len(),
        1,
        "docs/verification.md prints one forward-auth ```nginx block"
    );
    let block = blocks.remove(0);
    let example = std::fs::read_to_string(root.join("examples/nginx/claimd.conf"))
        .expect("examples/nginx/claimd.conf is shipped");
    assert_eq!(
        example, block,
        "examples/nginx/claimd.conf is the configuration docs/verification.md prints"
    );
    block
}

/// The documented configuration with its addresses and its `/tmp` paths replaced; fails if any of
/// them is gone from it.
fn example_config(prefix: &Path, nginx_port: u16, claimd_port: u16, upstream_port: u16) -> String {
    let text = readme_config();
    let mut out = text.clone();
    for (from, to) in [
        ("127.0.0.1:8000", nginx_port),
        ("127.0.0.1:8080", claimd_port),
        ("127.0.0.1:9000", upstream_port),
    ] {
        assert!(
            text.contains(from),
            "docs/verification.md's nginx configuration names {from} (the documented address)"
        );
        out = out.replace(from, &format!("127.0.0.1:{to}"));
    }
    assert!(
        text.contains("/tmp/claimd-nginx"),
        "its paths are under /tmp"
    );
    out.replace(
        "/tmp/claimd-nginx",
        &prefix.join("claimd-nginx").to_string_lossy(),
    )
}

/// A running nginx master with the example configuration; stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    prefix: TempDir,
}

impl Nginx {
    fn start(binary: &Path, claimd_port: u16, upstream_port: u16) -> Nginx {
        let prefix = tempfile::tempdir().expect("nginx prefix");
        let port = free_port();
        let conf = prefix.path().join("claimd.conf");
        let config = example_config(prefix.path(), port, claimd_port, upstream_port);
        std::fs::write(&conf, config).expect("write nginx.conf");
        // Running as root, nginx's workers drop to `nobody`: let them into the directory
        // that stands for /tmp (nginx makes the temp directories in it itself).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(prefix.path(), std::fs::Permissions::from_mode(0o755));
        }
        let log = std::fs::File::create(prefix.path().join("nginx.log")).expect("nginx log");
        // The command the documented configuration gives, from a directory it does not use.
        let child = Command::new(binary)
            .current_dir(prefix.path())
            .arg("-c")
            .arg(&conf)
            .args(["-e", "stderr", "-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx {
            child,
            port,
            prefix,
        };
        nginx.wait_listening();
        nginx
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.prefix.path().join("nginx.log")).unwrap_or_default()
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + NGINX_START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited at start ({status}):\n{}", self.log());
            }
            let addr = ([127, 0, 0, 1], self.port).into();
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {} within {NGINX_START_TIMEOUT:?}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // TERM lets the master stop its workers; KILL only if it will not go.
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// nginx in front of the upstream, asking `app` about every request.
struct Front {
    upstream: Upstream,
    nginx: Nginx,
    client: reqwest::Client,
}

impl Front {
    /// nginx in front of `app`; fails the test when nginx is not installed.
    fn start(app: &TestApp) -> Front {
        let binary = nginx_binary();
        require("nginx", binary.is_some());
        let upstream = Upstream::start();
        let nginx = Nginx::start(&binary.expect("nginx found"), app.port, upstream.port);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build http client");
        Front {
            upstream,
            nginx,
            client,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.nginx.port)
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = self.client.get(self.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.expect("request through nginx")
    }

    async fn get_bearer(&self, path: &str, token: &str, extra: &[(&str, &str)]) -> Response {
        let bearer = format!("Bearer {token}");
        let mut headers = vec![("authorization", bearer.as_str())];
        headers.extend_from_slice(extra);
        self.get(path, &headers).await
    }

    /// Asserts the request reached the upstream (200, one more hit); returns what the
    /// upstream saw.
    async fn assert_reached(&self, resp: Response, hits_before: usize) -> Value {
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert_eq!(
            status,
            StatusCode::OK,
            "nginx let it through; body: {text}\nnginx log:\n{}",
            self.nginx.log()
        );
        assert_eq!(self.upstream.hits(), hits_before + 1, "the upstream saw it");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("upstream json ({e}): {text}"))
    }

    /// Asserts the request was refused with claimd's own answer, not nginx's page: 401,
    /// `application/problem+json` with `code`, one Bearer challenge; the upstream saw nothing.
    async fn assert_refused(&self, resp: Response, hits_before: usize, code: &str) {
        let status = resp.status();
        let challenges: Vec<String> = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .collect();
        let content_type = header_str(resp.headers(), "content-type");
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{code}: refused with 401; body: {text}\nnginx log:\n{}",
            self.nginx.log()
        );
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{code}: claimd's problem reaches the client, not nginx's HTML; body: {text}"
        );
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{code}: a JSON problem ({e}): {text}"));
        assert_eq!(body["code"], json!(code), "{body}");
        assert_eq!(body["status"], json!(401), "{body}");
        assert!(
            challenges.len() == 1 && challenges[0].starts_with("Bearer"),
            "{code}: claimd's Bearer challenge passes through nginx once, got {challenges:?}"
        );
        assert_eq!(
            self.upstream.hits(),
            hits_before,
            "{code}: the upstream never sees a refused request"
        );
    }
}

/// The values the upstream received for header `name`.
fn seen(echo: &Value, name: &str) -> Value {
    echo["headers"].get(name).cloned().unwrap_or(Value::Null)
}

fn sub(tokens: &Tokens) -> String {
    tokens.claims()["sub"].as_str().expect("sub").to_string()
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn valid_token_reaches_the_upstream_with_the_identity_headers() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let front = Front::start(&app);
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Acme"}))
        .await;
    let tenant_id = tenant["id"].as_str().expect("tenant id").to_string();
    let user = json_response(
        app.register_in_tenant(&admin.access_token, "José", PASSWORD, &tenant_id)
            .await,
        201,
    )
    .await["user"]
        .clone();
    let id = user["id"].as_str().expect("user id").to_string();
    app.admin_patch_user_ok(
        &admin.access_token,
        &id,
        &json!({"roles": ["editor", "billing"], "plan": "pro"}),
    )
    .await;
    let login = app.login_ok("josé", PASSWORD).await;

    let resp = front
        .get_bearer(
            "/orders/42?expand=items",
            &login.access_token,
            &[
                ("x-auth-user", "evil"),
                ("x-auth-username", "root"),
                ("x-auth-tenant", "evil-corp"),
                ("x-auth-roles", "admin"),
                ("x-auth-plan", "enterprise"),
            ],
        )
        .await;

    let echo = front.assert_reached(resp, 0).await;
    assert_eq!(echo["method"], json!("GET"));
    assert_eq!(echo["target"], json!("/orders/42?expand=items"));
    assert_eq!(seen(&echo, "x-auth-user"), json!([id]), "{echo}");
    assert_eq!(
        seen(&echo, "x-auth-username"),
        json!(["jos%C3%A9"]),
        "{echo}"
    );
    assert_eq!(seen(&echo, "x-auth-tenant"), json!([tenant_id]), "{echo}");
    assert_eq!(
        seen(&echo, "x-auth-roles"),
        json!(["editor,billing"]),
        "{echo}"
    );
    assert_eq!(seen(&echo, "x-auth-plan"), json!(["pro"]), "{echo}");
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn client_identity_headers_never_reach_the_upstream() {
    let app = spawn_app().await;
    let front = Front::start(&app);
    let (_, login) = app.signed_up("alice").await;

    let resp = front
        .get_bearer(
            "/",
            &login.access_token,
            &[
                ("x-auth-user", "evil"),
                ("x-auth-tenant", "evil-corp"),
                ("x-auth-roles", "admin"),
            ],
        )
        .await;

    let echo = front.assert_reached(resp, 0).await;
    assert_eq!(seen(&echo, "x-auth-user"), json!([sub(&login)]), "{echo}");
    assert_eq!(seen(&echo, "x-auth-username"), json!(["alice"]), "{echo}");
    assert_eq!(seen(&echo, "x-auth-plan"), json!(["free"]), "{echo}");
    assert_eq!(
        seen(&echo, "x-auth-tenant"),
        Value::Null,
        "no tenant: the client's x-auth-tenant is dropped, not passed on: {echo}"
    );
    let roles = seen(&echo, "x-auth-roles");
    assert!(
        roles.is_null() || roles == json!([""]),
        "no roles: the client's x-auth-roles is dropped, got {roles}"
    );
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn token_in_the_access_token_cookie_reaches_the_upstream() {
    let app = spawn_app().await;
    let front = Front::start(&app);
    let (_, login) = app.signed_up("alice").await;
    let cookie = format!("access_token={}", login.access_token);

    let resp = front.get("/dashboard", &[("cookie", &cookie)]).await;

    let echo = front.assert_reached(resp, 0).await;
    assert_eq!(seen(&echo, "x-auth-user"), json!([sub(&login)]), "{echo}");
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn missing_and_garbage_tokens_are_refused_before_the_upstream() {
    let app = spawn_app().await;
    let front = Front::start(&app);

    let resp = front.get("/", &[("x-auth-user", "evil")]).await;
    front.assert_refused(resp, 0, "token_missing").await;
    let resp = front.get_bearer("/", "not.a.jwt", &[]).await;
    front.assert_refused(resp, 0, "token_invalid").await;
    let resp = front
        .get("/", &[("cookie", "access_token=not.a.jwt")])
        .await;
    front.assert_refused(resp, 0, "token_invalid").await;
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn revoked_token_is_refused_before_the_upstream() {
    let app = spawn_app().await;
    let front = Front::start(&app);
    let (_, login) = app.signed_up("alice").await;
    let resp = front.get_bearer("/", &login.access_token, &[]).await;
    front.assert_reached(resp, 0).await;

    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let resp = front.get_bearer("/", &login.access_token, &[]).await;
    front.assert_refused(resp, 1, "token_revoked").await;
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn stale_token_is_refused_before_the_upstream() {
    let app = spawn_app().await;
    let front = Front::start(&app);
    let (_, login) = app.signed_up("alice").await;
    let resp = front.get_bearer("/", &login.access_token, &[]).await;
    front.assert_reached(resp, 0).await;

    let (_, fresh) = refreshed_response(
        app.patch_me(&login.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    let resp = front.get_bearer("/", &login.access_token, &[]).await;
    front.assert_refused(resp, 1, "token_stale").await;
    let resp = front.get_bearer("/", &fresh, &[]).await;
    let echo = front.assert_reached(resp, 1).await;
    assert_eq!(seen(&echo, "x-auth-plan"), json!(["premium"]), "{echo}");
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn reissue_hands_the_client_its_new_token_through_nginx() {
    let app = spawn_app_with(|s| s.tokens.on_stale = OnStale::Reissue).await;
    let front = Front::start(&app);
    let (_, login) = app.signed_up("alice").await;
    let other = app.login_ok("alice", PASSWORD).await;
    refreshed_response(
        app.patch_me(&login.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    let resp = front.get_bearer("/", &other.access_token, &[]).await;

    let refreshed = header_str(resp.headers(), REFRESHED_TOKEN);
    let echo = front.assert_reached(resp, 0).await;
    assert_eq!(seen(&echo, "x-auth-plan"), json!(["premium"]), "{echo}");
    let token = refreshed.expect("nginx passes X-Refreshed-Token to the client");
    assert_eq!(jwt_claims(&token)["plan"], json!("premium"));
    assert_eq!(jwt_claims(&token)["sid"], json!(other.session_id));
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn claimds_public_endpoints_answer_through_nginx() {
    let app = spawn_app().await;
    let front = Front::start(&app);

    let registered = front
        .client
        .post(front.url("/auth/register"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .expect("register through nginx");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let login = front
        .client
        .post(front.url("/auth/login"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .expect("log in through nginx");
    let tokens = token_response(login).await;
    let me = front
        .client
        .get(front.url("/me"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .expect("/me through nginx");
    let me = json_response(me, 200).await;
    assert_eq!(me["user"]["username"], json!("alice"), "{me}");
    let discovery = front
        .client
        .get(front.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery through nginx");
    assert_eq!(discovery.status(), StatusCode::OK);

    // The token from /auth/login opens the application behind nginx.
    let resp = front.get_bearer("/orders", &tokens.access_token, &[]).await;
    front.assert_reached(resp, 0).await;
    // /auth/*, /me and discovery went to claimd, never to the application, and the admin
    // endpoints are not exposed: they fall to the protected application location.
    let resp = front
        .get_bearer("/admin/users", &tokens.access_token, &[])
        .await;
    let echo = front.assert_reached(resp, 1).await;
    assert_eq!(echo["target"], json!("/admin/users"), "{echo}");
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn a_refused_post_gets_claimds_problem_and_its_body_stays_out() {
    let app = spawn_app().await;
    let front = Front::start(&app);

    let resp = front
        .client
        .post(front.url("/orders"))
        .bearer_auth("not.a.jwt")
        .json(&json!({"item": 42}))
        .send()
        .await
        .expect("post through nginx");
    front.assert_refused(resp, 0, "token_invalid").await;
}
