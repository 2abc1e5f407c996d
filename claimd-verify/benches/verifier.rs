//! What the verifier costs and how fast it enforces, against a real claimd in-process:
//!
//! - enforcement latency: from `POST /auth/logout` answered by claimd to the verifier
//!   refusing the token (`token_revoked`), over a number of logouts: p50, p90, max;
//! - local verifications per second (`Verifier::verify`, one task), the work a
//!   `GET /hello` through the extractor adds to an empty handler;
//! - memory held per 100,000 deny entries (the process's resident set before and after
//!   applying that many `token-revoked` events to a `FeedState`).
//!
//! `cargo bench -p claimd-verify --bench verifier` (`-- --quick`: fewer rounds).

use std::time::{Duration, Instant};

use claimd::config::Settings;
use claimd::startup::Application;
use claimd_verify::{FeedState, Verifier, VerifierConfig};
use serde_json::{json, Value};

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
    let claimd = Claimd::start().await;
    let admin = claimd.login(ADMIN, ADMIN_PASSWORD).await;
    let service = claimd
        .post("/admin/services", Some(&admin), &json!({"name": "bench"}))
        .await;
    let mut config = VerifierConfig::new(
        claimd.base.clone(),
        service["client_id"].as_str().expect("client_id"),
        service["client_secret"].as_str().expect("client_secret"),
    );
    config.max_staleness = Duration::from_secs(2);
    let verifier = Verifier::start(config).await.expect("verifier starts");

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
        loop {
            if verifier.verify(&token).await.is_err() {
                break;
            }
            assert!(
                answered.elapsed() < Duration::from_secs(5),
                "never enforced"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        latencies.push(answered.elapsed());
    }
    latencies.sort();
    println!(
        "enforcement latency (logout answered -> token_revoked), {} logouts: p50 {:?}, p90 {:?}, max {:?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies[latencies.len() - 1]
    );

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
