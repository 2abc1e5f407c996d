//! What the verifier costs and how fast it enforces, against a real claimd in-process:
//!
//! - enforcement latency: from a change answered by claimd to the verifier refusing the
//!   token it concerns: a revocation (`POST /oauth/revoke` → `token_revoked`) and a claim
//!   change (`PATCH /me` → the old token `token_stale`), 1000 of each (`--quick`: 50),
//!   and a few logouts (each costs a login's argon2 hash): p50, p99, max;
//! - local verifications per second (`Verifier::verify`, one task), the work a
//!   `GET /hello` through the extractor adds to an empty handler;
//! - memory held per 100,000 deny entries (the process's resident set before and after
//!   applying that many `token-revoked` events to a `FeedState`);
//! - `GET /hello` through the [`VerifiedToken`] extractor against the same handler with
//!   no verification at all (a bare actix-web endpoint), one after the other in this run,
//!   on one actix worker each with the load from this process on loopback: the ratio is
//!   what the library costs a service.
//!
//! `cargo bench -p claimd-verify --bench verifier` (`-- --quick`: fewer rounds).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::disallowed_methods,
    reason = "a benchmark's harness stops at the first surprise and measures real time"
)]

use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use claimd::config::Settings;
use claimd::startup::Application;
use claimd_verify::{FeedState, VerifiedToken, Verifier, VerifierConfig};
use serde_json::{json, Value};

/// Clients driving each `/hello` server at once.
const HELLO_CLIENTS: usize = 16;

const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "the admin's own passphrase";
const PASSWORD: &str = "correct horse battery staple";

struct Claimd {
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Claimd {
    async fn start() -> Claimd {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::default();
        settings.server.bind = "127.0.0.1:0".to_string();
        settings.storage.path = dir.path().join("data");
        settings.events.heartbeat = Duration::from_millis(200);
        settings.claims.self_service.insert(
            "plan".to_string(),
            vec!["free".to_string(), "pro".to_string()],
        );
        settings.bootstrap.admin_username = Some(ADMIN.to_string());
        settings.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
        settings.auth.register_limit = claimd::config::LoginAttempts {
            max: 100_000,
            window: Duration::from_secs(1),
        };
        let app = Application::build(settings).await.expect("claimd builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        Claimd {
            base,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn post(&self, path: &str, bearer: Option<&str>, body: &Value) -> Value {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let body = json!({"username": username, "password": password});
        let tokens = self.post("/auth/login", None, &body).await;
        tokens["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }
}

/// The example service's answer, from a verified token.
async fn hello(token: VerifiedToken) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "sub": token.sub,
        "roles": token.roles,
        "plan": token.plan,
        "tenant": token.tid,
    }))
}

/// The same answer with nothing verified: the framework's own cost.
async fn bare_hello() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "sub": "01a23353-7ed6-73ba-96f2-77ded80da8c4",
        "roles": [],
        "plan": "free",
        "tenant": null,
    }))
}

/// Serves `/hello` (verified when `verifier` is given) on one worker; its address and a
/// handle to stop it.
fn serve_hello(
    verifier: Option<web::Data<Verifier>>,
) -> std::io::Result<(std::net::SocketAddr, actix_web::dev::ServerHandle)> {
    let server = HttpServer::new(move || {
        let app = App::new();
        match &verifier {
            Some(verifier) => app
                .app_data(verifier.clone())
                .route("/hello", web::get().to(hello)),
            None => app.route("/hello", web::get().to(bare_hello)),
        }
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")?;
    let addr = server.addrs()[0];
    let running = server.run();
    let handle = running.handle();
    tokio::spawn(running);
    Ok((addr, handle))
}

/// `GET /hello` answered 200 per second at `addr` over `window`, from [`HELLO_CLIENTS`]
/// clients each sending `token`.
async fn hello_rate(addr: std::net::SocketAddr, token: &str, window: Duration) -> f64 {
    let url = format!("http://{addr}/hello");
    let http = reqwest::Client::new();
    let started = Instant::now();
    let deadline = started + window;
    let clients: Vec<_> = (0..HELLO_CLIENTS)
        .map(|_| {
            let (http, url, token) = (http.clone(), url.clone(), token.to_string());
            tokio::spawn(async move {
                let mut ok = 0u64;
                while Instant::now() < deadline {
                    let response = http.get(&url).bearer_auth(&token).send().await;
                    match response {
                        Ok(response) if response.status().is_success() => {
                            let _ = response.bytes().await;
                            ok += 1;
                        }
                        Ok(response) => panic!("/hello answered {}", response.status()),
                        Err(err) => panic!("/hello: {err}"),
                    }
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for client in clients {
        total += client.await.expect("client task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Asks the verifier about `token` until it refuses it with `code` (at most 5 s).
async fn until_refused(verifier: &Verifier, token: &str, code: &str) {
    let started = Instant::now();
    loop {
        match verifier.verify(token).await {
            Err(err) if err.code() == code => return,
            Err(err) => panic!("refused as {} instead of {code}", err.code()),
            Ok(_) => {
                assert!(started.elapsed() < Duration::from_secs(5), "never enforced");
                tokio::task::yield_now().await;
            }
        }
    }
}

fn report_latency(what: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "enforcement latency ({what}), n={}: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Resident set size in bytes (Linux), 0 elsewhere.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let rounds = if quick { 5 } else { 30 };
    let changes = if quick { 50 } else { 1000 };
    let claimd = Claimd::start().await;
    let admin = claimd.login(ADMIN, ADMIN_PASSWORD).await;
    let service = claimd
        .post("/admin/services", Some(&admin), &json!({"name": "bench"}))
        .await;
    let config = VerifierConfig::builder(
        &claimd.base,
        service["client_id"].as_str().expect("client_id"),
        service["client_secret"].as_str().expect("client_secret"),
    )
    .max_staleness(Duration::from_secs(2))
    .build()
    .expect("a valid configuration");
    let verifier = web::Data::new(Verifier::start(config).await.expect("verifier starts"));

    // Enforcement latency.
    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let name = format!("user{round}");
        claimd
            .post(
                "/auth/register",
                None,
                &json!({"username": name, "password": PASSWORD}),
            )
            .await;
        let token = claimd.login(&name, PASSWORD).await;
        verifier
            .verify(&token)
            .await
            .expect("accepted before logout");
        claimd.post("/auth/logout", Some(&token), &json!({})).await;
        let answered = Instant::now();
        until_refused(&verifier, &token, "token_revoked").await;
        latencies.push(answered.elapsed());
    }
    report_latency("logout answered -> token_revoked", latencies);

    // Revocations and claim changes, on one session: no argon2 per round.
    claimd
        .post(
            "/auth/register",
            None,
            &json!({"username": "changer", "password": PASSWORD}),
        )
        .await;
    let mut access = claimd.login("changer", PASSWORD).await;
    let mut revocations = Vec::with_capacity(changes);
    for _ in 0..changes {
        let minted = claimd
            .post("/auth/refresh-token", Some(&access), &json!({}))
            .await;
        let token = minted["access_token"]
            .as_str()
            .expect("a token")
            .to_string();
        verifier
            .verify(&token)
            .await
            .expect("accepted before revocation");
        let revoked = claimd
            .http
            .post(format!("{}/oauth/revoke", claimd.base))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .expect("revoke sent");
        let answered = Instant::now();
        assert!(revoked.status().is_success());
        until_refused(&verifier, &token, "token_revoked").await;
        revocations.push(answered.elapsed());
    }
    report_latency("POST /oauth/revoke answered -> token_revoked", revocations);
    let mut claim_changes = Vec::with_capacity(changes);
    for round in 0..changes {
        verifier
            .verify(&access)
            .await
            .expect("current before the change");
        let plan = if round % 2 == 0 { "pro" } else { "free" };
        let answer = claimd
            .http
            .patch(format!("{}/me", claimd.base))
            .bearer_auth(&access)
            .json(&json!({ "plan": plan }))
            .send()
            .await
            .expect("PATCH /me sent");
        let answered = Instant::now();
        assert!(
            answer.status().is_success(),
            "PATCH /me: {}",
            answer.status()
        );
        let body: Value = answer.json().await.expect("PATCH /me body");
        until_refused(&verifier, &access, "token_stale").await;
        claim_changes.push(answered.elapsed());
        access = body["token"]["access_token"]
            .as_str()
            .expect("the new token")
            .to_string();
    }
    report_latency("PATCH /me answered -> old token_stale", claim_changes);

    // Local verifications per second.
    claimd
        .post(
            "/auth/register",
            None,
            &json!({"username": "steady", "password": PASSWORD}),
        )
        .await;
    let token = claimd.login("steady", PASSWORD).await;
    let window = if quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(3)
    };
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < window {
        verifier.verify(&token).await.expect("accepted");
        count += 1;
    }
    let per_second = count as f64 / start.elapsed().as_secs_f64();
    println!(
        "verify(): {per_second:.0} verifications/s on one task ({:.1} µs each)",
        1e6 / per_second
    );

    // /hello through the extractor against a bare endpoint, side by side.
    let (bare_addr, bare_server) = serve_hello(None).expect("bare server");
    let (hello_addr, hello_server) = serve_hello(Some(verifier.clone())).expect("protected server");
    let hello_window = if quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    // Warm both up, then measure bare, protected, bare again: the ratio is against their
    // mean, so a drift of the machine during the run shows less.
    hello_rate(bare_addr, &token, Duration::from_millis(300)).await;
    hello_rate(hello_addr, &token, Duration::from_millis(300)).await;
    let bare_before = hello_rate(bare_addr, &token, hello_window).await;
    let protected = hello_rate(hello_addr, &token, hello_window).await;
    let bare_after = hello_rate(bare_addr, &token, hello_window).await;
    let bare = (bare_before + bare_after) / 2.0;
    println!(
        "GET /hello, {HELLO_CLIENTS} clients, one worker each: bare actix-web {bare:.0} req/s \
         ({bare_before:.0} before, {bare_after:.0} after), through VerifiedToken {protected:.0} req/s: {:.2}x",
        protected / bare
    );
    bare_server.stop(true).await;
    hello_server.stop(true).await;

    // Memory per 100,000 deny entries.
    let mut state = FeedState::default();
    let before = rss_bytes();
    let now = Instant::now();
    for id in 0..100_000u64 {
        let jti = format!(
            "{:032x}",
            u128::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        state.apply(
            Some(id + 1),
            "token-revoked",
            &json!({"jti": jti, "exp": 4_000_000_000u64, "at": 1}),
            now,
        );
    }
    let after = rss_bytes();
    println!(
        "memory: {} deny entries held, resident set grew by {:.1} MiB ({} bytes per entry)",
        state.len(),
        (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0),
        after.saturating_sub(before) / 100_000
    );
}
