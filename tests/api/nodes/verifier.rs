//! claimd-verify (the library services link to verify tokens themselves) against a
//! running claimd: what claimd revokes or changes is refused by the verifier within a
//! bound, with claimd's codes, without a request to claimd per verification; past its
//! staleness bound it fails closed; it catches up after claimd restarts. The last test
//! runs the crate's example service as a separate process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use claimd_verify::{VerifiedClaims, Verifier, VerifierConfig, VerifierConfigBuilder, VerifyError};
use serde_json::{json, Value};

use crate::helpers::{
    claimd_command, header_str, json_response, metric_sum, parse_listening_port,
    refreshed_response, spawn_app_with_admin, workdir, ClaimdProcess, Service, TestApp, Tokens,
    ADMIN, ADMIN_PASSWORD,
};

/// claimd's heartbeat in these tests, and the verifier's staleness bound.
const HEARTBEAT: Duration = Duration::from_millis(200);
const MAX_STALENESS: Duration = Duration::from_secs(1);

async fn claimd_with_service() -> (TestApp, Tokens, Service) {
    let (app, admin) = spawn_app_with_admin(|s| s.events.heartbeat = HEARTBEAT).await;
    let service = app.create_service_ok(&admin.access_token, "verifier").await;
    (app, admin, service)
}

fn config(app: &TestApp, service: &Service) -> VerifierConfigBuilder {
    VerifierConfig::builder(
        &app.address,
        service.client_id.clone(),
        service.client_secret.clone(),
    )
    .max_staleness(MAX_STALENESS)
}

async fn start(app: &TestApp, service: &Service) -> Verifier {
    Verifier::start(config(app, service).build().expect("a valid configuration"))
        .await
        .expect("the verifier starts")
}

/// Verifies `token` until the verdict is `code` (`"ok"` for accepted), within `limit`.
async fn until(verifier: &Verifier, token: &str, code: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let verdict = verifier.verify(token).await;
        let got = verdict.as_ref().map_or_else(VerifyError::code, |_| "ok");
        if got == code {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "not {code} within {limit:?}: still {verdict:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn accepted(verifier: &Verifier, token: &str) -> VerifiedClaims {
    verifier
        .verify(token)
        .await
        .unwrap_or_else(|err| panic!("accepted, got {}: {err}", err.code()))
}

/// Requests to claimd's own verification routes, which a local verifier never makes.
async fn verification_requests(app: &TestApp) -> f64 {
    let text = app.metrics_text().await;
    ["/verify", "/oauth/introspect"]
        .iter()
        .map(|route| metric_sum(&text, "claimd_http_requests_total", &[("route", route)]))
        .sum()
}

#[tokio::test]
async fn a_token_is_accepted_and_refused_within_a_second_of_logout() {
    let (app, _admin, service) = claimd_with_service().await;
    let verifier = start(&app, &service).await;
    let (user, tokens) = app.signed_up("alice").await;

    let claims = accepted(&verifier, &tokens.access_token).await;
    assert_eq!(json!(claims.sub), user["id"], "{user}");
    assert_eq!(claims.plan, tokens.claims()["plan"].as_str().unwrap());

    assert_eq!(app.logout(&tokens.access_token).await.status(), 204);
    let took = until(
        &verifier,
        &tokens.access_token,
        "token_revoked",
        Duration::from_secs(1),
    )
    .await;
    eprintln!("logout enforced by the verifier after {took:?}");
    assert_eq!(
        verification_requests(&app).await,
        0.0,
        "the verifier never asks claimd per token"
    );
}

/// The verifier takes the longest token life from claimd's answer, not its own setting:
/// claimd issues hour-long tokens here, and a verifier left at its 15-minute default
/// still accepts them (and refuses what is longer, tests/api/tokens/key_import.rs).
#[tokio::test]
async fn it_accepts_the_token_lifetime_claimd_announces() {
    let (app, admin) = spawn_app_with_admin(|s| {
        s.events.heartbeat = HEARTBEAT;
        s.tokens.access_ttl = Duration::from_secs(3600);
    })
    .await;
    let service = app.create_service_ok(&admin.access_token, "verifier").await;
    let verifier = start(&app, &service).await;
    let (_, tokens) = app.signed_up("alice").await;
    let claims = tokens.claims();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );

    accepted(&verifier, &tokens.access_token).await;
}

#[tokio::test]
async fn a_claim_change_makes_the_old_token_stale_and_the_new_one_current() {
    let (app, _admin, service) = claimd_with_service().await;
    let verifier = start(&app, &service).await;
    let (_, tokens) = app.signed_up("bob").await;
    accepted(&verifier, &tokens.access_token).await;

    let resp = app
        .patch_me(&tokens.access_token, &json!({"plan": "premium"}))
        .await;
    let (_, refreshed) = refreshed_response(resp).await;
    until(
        &verifier,
        &tokens.access_token,
        "token_stale",
        Duration::from_secs(2),
    )
    .await;
    let claims = accepted(&verifier, &refreshed).await;
    assert_eq!(claims.plan, "premium");
}

#[tokio::test]
async fn a_tenant_change_makes_its_members_tokens_stale() {
    let (app, admin, service) = claimd_with_service().await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "Initech"}))
        .await;
    let tenant_id = tenant["id"].as_str().expect("tenant id").to_string();
    let resp = app
        .register_in_tenant(
            &admin.access_token,
            "carol",
            "carol's passphrase!",
            &tenant_id,
        )
        .await;
    assert!(
        resp.status().is_success(),
        "register in tenant: {}",
        resp.status()
    );
    let member = app.login_ok("carol", "carol's passphrase!").await;
    let (_, outsider) = app.signed_up("dave").await;
    let verifier = start(&app, &service).await;
    assert_eq!(
        accepted(&verifier, &member.access_token)
            .await
            .tid
            .as_deref(),
        Some(tenant_id.as_str())
    );

    let resp = app
        .patch_tenant(&admin.access_token, &tenant_id, &json!({"plan": "gold"}))
        .await;
    json_response(resp, 200).await;
    until(
        &verifier,
        &member.access_token,
        "token_stale",
        Duration::from_secs(2),
    )
    .await;
    accepted(&verifier, &outsider.access_token).await;
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_without_a_restart() {
    let (app, admin, service) = claimd_with_service().await;
    let verifier = start(&app, &service).await;
    let (_, before) = app.signed_up("erin").await;
    let key = app.rotate_keys_ok(&admin.access_token, true).await;
    let after = app.login_ok("erin", crate::helpers::PASSWORD).await;
    assert_eq!(
        crate::helpers::jwt_kid(&after.access_token),
        key["kid"].as_str().unwrap(),
        "the new token is signed by the new key"
    );
    until(&verifier, &after.access_token, "ok", Duration::from_secs(3)).await;
    accepted(&verifier, &before.access_token).await;
}

#[tokio::test]
async fn a_verifier_started_after_a_revocation_refuses_the_token_from_its_first_request() {
    let (app, _admin, service) = claimd_with_service().await;
    let (_, tokens) = app.signed_up("frank").await;
    assert_eq!(app.logout(&tokens.access_token).await.status(), 204);

    let verifier = start(&app, &service).await;
    let first = verifier.verify(&tokens.access_token).await;
    assert_eq!(first.map(|_| ()), Err(VerifyError::Revoked));
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused_as_claimd_refuses_them() {
    let (app, _admin, service) = claimd_with_service().await;
    let verifier = start(&app, &service).await;
    let (_, tokens) = app.signed_up("gina").await;
    let forged = crate::helpers::tamper_signature(&tokens.access_token);
    for token in [forged.as_str(), "not.a.token", "garbage"] {
        let local = verifier.verify(token).await.expect_err("refused");
        let remote = json_response_any(app.me(token).await).await;
        assert_eq!(json!(local.code()), remote["code"], "{token}: {remote}");
    }
}

async fn json_response_any(resp: reqwest::Response) -> Value {
    resp.json().await.expect("a JSON body")
}

#[tokio::test]
async fn with_the_introspect_fallback_a_silent_feed_means_asking_claimd() {
    // claimd's slowest heartbeat: past max_staleness the feed says nothing at all.
    let (app, admin) = spawn_app_with_admin(|s| s.events.heartbeat = Duration::from_secs(60)).await;
    let service = app.create_service_ok(&admin.access_token, "verifier").await;
    let (_, tokens) = app.signed_up("hana").await;
    let config = config(&app, &service)
        .fallback(claimd_verify::Fallback::Introspect)
        .build()
        .expect("a valid configuration");
    let verifier = Verifier::start(config).await.expect("the verifier starts");
    accepted(&verifier, &tokens.access_token).await;
    assert_eq!(
        verification_requests(&app).await,
        0.0,
        "fresh: answered locally"
    );

    tokio::time::sleep(MAX_STALENESS + Duration::from_millis(300)).await;
    assert!(!verifier.is_fresh());
    accepted(&verifier, &tokens.access_token).await;
    assert_eq!(
        verification_requests(&app).await,
        1.0,
        "stale: one introspection"
    );
    let forged = crate::helpers::tamper_signature(&tokens.access_token);
    assert_eq!(
        verifier.verify(&forged).await.map(|_| ()),
        Err(VerifyError::Invalid("bad signature")),
        "the signature is still checked locally"
    );
    assert_eq!(verification_requests(&app).await, 1.0);
}

/// The verifier's clock on an in-process claimd's manual one: token times follow the
/// server's, staleness the real monotonic clock.
struct ServerClock(claimd::clock::ManualClock);

impl claimd_verify::Clock for ServerClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn unix(&self) -> u64 {
        self.0.now()
    }
}

/// A TCP relay to claimd that the test can cut: while cut, connections are refused and
/// open ones dropped, as if claimd were unreachable.
struct Relay {
    port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(to: u16) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let open = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::<tokio::task::AbortHandle>::new()));
        let (accept_open, accept_connections) = (open.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_open.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accept_connections.lock().unwrap().push(task.abort_handle());
            }
        });
        Relay {
            port,
            open,
            connections,
        }
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn away_longer_than_the_log_it_starts_again_from_a_snapshot() {
    let (app, admin) = crate::helpers::spawn_app_with_admin_on_clock(|s| {
        s.events.heartbeat = HEARTBEAT;
        s.eviction.interval = Duration::from_millis(100);
    })
    .await;
    let service = app.create_service_ok(&admin.access_token, "verifier").await;
    let (_, alice) = app.signed_up("alice").await;
    let relay = Relay::start(app.port).await;
    let config = VerifierConfig::builder(
        format!("http://127.0.0.1:{}", relay.port),
        service.client_id.clone(),
        service.client_secret.clone(),
    )
    .max_staleness(MAX_STALENESS)
    .clock(std::sync::Arc::new(ServerClock(
        app.clock.clone().expect("manual clock"),
    )))
    .build()
    .expect("a valid configuration");
    let verifier = Verifier::start(config).await.expect("the verifier starts");
    accepted(&verifier, &alice.access_token).await;
    let through = verifier.through();

    relay.cut();
    // A change the verifier misses, then evicted: resuming after `through` is 410.
    app.patch_me(&alice.access_token, &json!({"plan": "premium"}))
        .await;
    app.advance(Duration::from_secs(3600));
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .client
        .get(app.url("/events"))
        .header("last-event-id", through.to_string())
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("GET /events")
        .status()
        != 410
    {
        assert!(Instant::now() < deadline, "the change was never evicted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A revocation made while it was away, that a token still alive needs.
    let (_, bob) = app.signed_up("bob").await;
    assert_eq!(app.logout(&bob.access_token).await.status(), 204);
    until(
        &verifier,
        &bob.access_token,
        "verifier_unavailable",
        Duration::from_secs(3),
    )
    .await;

    relay.restore();
    until(
        &verifier,
        &bob.access_token,
        "token_revoked",
        Duration::from_secs(5),
    )
    .await;
    assert!(verifier.through() > through);
    let (_, carol) = app.signed_up("carol").await;
    accepted(&verifier, &carol.access_token).await;
}

/// A claimd child on `data`, with a bootstrap admin and a fast heartbeat, on `port` (0:
/// any).
fn claimd_process(workdir: &std::path::Path, data: &std::path::Path, port: u16) -> ClaimdProcess {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .env("CLAIMD__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("CLAIMD__EVENTS__HEARTBEAT", "200ms")
        .env("CLAIMD__BOOTSTRAP__ADMIN_USERNAME", ADMIN)
        .env("CLAIMD__BOOTSTRAP__ADMIN_PASSWORD", ADMIN_PASSWORD);
    ClaimdProcess::start(cmd)
}

#[tokio::test]
async fn past_its_staleness_bound_it_fails_closed_and_catches_up_after_a_restart() {
    let (dir, data) = workdir();
    let claimd = claimd_process(dir.path(), &data, 0);
    let port = claimd.port;
    let app = claimd.app();
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    let service = app.create_service_ok(&admin.access_token, "verifier").await;
    let (_, alice) = app.signed_up("alice").await;
    let (_, bob) = app.signed_up("bob").await;
    let verifier = start(&app, &service).await;
    accepted(&verifier, &alice.access_token).await;

    claimd.kill9();
    // What it holds is trusted for max_staleness after the last heartbeat...
    accepted(&verifier, &alice.access_token).await;
    // ...then nothing is accepted.
    let took = until(
        &verifier,
        &alice.access_token,
        "verifier_unavailable",
        MAX_STALENESS + Duration::from_secs(1),
    )
    .await;
    // The last heartbeat came at most one interval before the kill (more on a loaded
    // machine): half the bound leaves room for that without letting an early refusal by.
    assert!(
        took >= MAX_STALENESS / 2,
        "failed closed too early: {took:?}"
    );
    assert!(!verifier.is_fresh());

    let claimd = claimd_process(dir.path(), &data, port);
    let app = claimd.app();
    // A revocation made before the verifier is back on the feed.
    assert_eq!(app.logout(&bob.access_token).await.status(), 204);
    until(&verifier, &alice.access_token, "ok", Duration::from_secs(5)).await;
    until(
        &verifier,
        &bob.access_token,
        "token_revoked",
        Duration::from_secs(2),
    )
    .await;
    assert!(verifier.is_fresh());
    drop(claimd);
}

// ---- the example service, as a separate process ----

/// `target/<profile>/examples/protected_service`, built once for all tests.
fn example_binary() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.as_ref() {
        return path.clone();
    }
    // This test binary is target/<profile>/deps/api-…: the example goes beside deps/.
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf();
    let path = profile_dir.join("examples").join("protected_service");
    // `cargo test` at the root builds the workspace's examples before running tests; a
    // focused run (`--test api`) does not, so build it when missing or older than its
    // sources. Building here may compile dependencies for another feature set: slow once.
    if !is_newer_than_sources(&path) {
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--quiet",
            "-p",
            "claimd-verify",
            "--example",
            "protected_service",
        ]);
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            cargo.arg("--release");
        }
        // The target dir is the one this binary was built in.
        cargo.env(
            "CARGO_TARGET_DIR",
            profile_dir.parent().expect("target dir"),
        );
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "cargo build --example protected_service");
    }
    assert!(path.exists(), "{} was built", path.display());
    *built = Some(path.clone());
    path
}

/// Whether `binary` exists and is newer than every file of the claimd-verify crate.
fn is_newer_than_sources(binary: &std::path::Path) -> bool {
    fn newest(dir: &std::path::Path) -> std::time::SystemTime {
        let mut latest = std::time::UNIX_EPOCH;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let modified = if path.is_dir() {
                newest(&path)
            } else {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH)
            };
            latest = latest.max(modified);
        }
        latest
    }
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("claimd-verify");
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return false;
    };
    built >= newest(&crate_dir)
}

/// The example service as a child; killed when dropped.
struct ExampleService {
    child: Child,
    url: String,
}

impl Drop for ExampleService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_example(claimd: &TestApp, service: &Service) -> ExampleService {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(example_binary())
        .args(["--claimd", &claimd.address])
        .args(["--client-id", &service.client_id])
        .env("CLAIMD_VERIFY_CLIENT_SECRET", &service.client_secret)
        .args(["--bind", "127.0.0.1:0", "--max-staleness", "1s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Its log only with TEST_LOG, as claimd's own.
        .stderr(if crate::helpers::test_log() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("spawn the example service");
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = parse_listening_port(&line) {
                let _ = tx.send(port);
            }
        }
    });
    let mut service = ExampleService {
        child,
        url: String::new(),
    };
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the example prints `listening on`");
    service.url = format!("http://127.0.0.1:{port}/hello");
    service
}

async fn hello(service: &ExampleService, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(&service.url)
        .timeout(Duration::from_secs(10));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("GET /hello")
}

#[tokio::test]
async fn the_example_service_answers_as_claimd_and_fails_closed_without_it() {
    let (dir, data) = workdir();
    let claimd = claimd_process(dir.path(), &data, 0);
    let app = claimd.app();
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    let service = app.create_service_ok(&admin.access_token, "example").await;
    let (user, tokens) = app.signed_up("alice").await;
    let example = start_example(&app, &service);

    let body = json_response(hello(&example, Some(&tokens.access_token)).await, 200).await;
    assert_eq!(body["sub"], user["id"]);
    assert_eq!(body["plan"], tokens.claims()["plan"]);
    assert_eq!(body["roles"], tokens.claims()["roles"]);
    assert_eq!(body["tenant"], Value::Null);

    let missing = hello(&example, None).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(
        header_str(missing.headers(), "www-authenticate").as_deref(),
        Some("Bearer")
    );

    assert_eq!(app.logout(&tokens.access_token).await.status(), 204);
    let start = Instant::now();
    let (headers, problem) = loop {
        let resp = hello(&example, Some(&tokens.access_token)).await;
        if resp.status() == 401 {
            let headers = resp.headers().clone();
            break (headers, resp.json::<Value>().await.expect("problem body"));
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "still {}",
            resp.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // claimd's own answer to the same token, for comparison.
    let theirs = app.me(&tokens.access_token).await;
    let their_challenge = header_str(theirs.headers(), "www-authenticate");
    let their_problem: Value = theirs.json().await.expect("claimd's problem");
    assert_eq!(problem, their_problem, "the same problem body as claimd's");
    assert_eq!(problem["code"], json!("token_revoked"));
    assert_eq!(header_str(&headers, "www-authenticate"), their_challenge);
    assert_eq!(verification_requests(&app).await, 0.0);

    let (_, bob) = app.signed_up("bob").await;
    json_response(hello(&example, Some(&bob.access_token)).await, 200).await;
    claimd.kill9();
    let start = Instant::now();
    let problem = loop {
        let resp = hello(&example, Some(&bob.access_token)).await;
        if resp.status() == 503 {
            break resp.json::<Value>().await.expect("problem body");
        }
        assert_eq!(resp.status(), 200);
        assert!(start.elapsed() < Duration::from_secs(3), "never 503");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(problem["code"], json!("verifier_unavailable"));
    assert_eq!(problem["status"], json!(503));
}
