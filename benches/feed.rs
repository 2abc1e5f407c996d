//! `cargo bench --bench feed`: how soon a change reaches a reader of the change feed
//! (`GET /events`, issue 12). The real `claimd` binary runs on loopback; one client holds
//! the feed open as a verifier would, another makes changes one at a time and notes when
//! each is acknowledged, and the time from that acknowledgement to the change's event on
//! the feed is recorded: a claim change (`PATCH /me` → `token-claims-change`) and a token
//! revocation (`POST /oauth/revoke` → `token-revoked`), `--changes` of each (default 1000;
//! `--quick` 100).
//!
//! claimd publishes an event once its write is durable, which is also when it answers, so
//! an event can reach the feed's reader a little before the writer reads its answer: those
//! show as negative times, and the run counts them. What a verifier built on the feed adds
//! on top (its own parsing and bookkeeping) is measured with the verifier.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::disallowed_methods,
    reason = "a benchmark's harness stops at the first surprise and measures real time"
)]

#[path = "load/server.rs"]
#[allow(dead_code)]
mod server;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use server::{Claimd, ADMIN_PASSWORD, ADMIN_USERNAME, CHANGE_PLANS};
use tokio::sync::mpsc;

const PASSWORD: &str = "feed bench passphrase";

/// How soon a change reaches a reader of the change feed.
#[derive(Parser)]
#[command(
    name = "feed",
    override_usage = "cargo bench --bench feed -- [OPTIONS]",
    disable_version_flag = true
)]
struct Options {
    /// Changes of each kind (default 1000; --quick 100)
    #[arg(long, value_name = "N")]
    changes: Option<usize>,
    /// A short run
    #[arg(long)]
    quick: bool,
    /// Passed by `cargo bench`: accepted, ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// A positional filter: there is nothing to filter by name.
    #[arg(hide = true)]
    filter: Vec<String>,
}

/// An event as the reader saw it, with when.
struct Seen {
    event: String,
    data: Value,
    at: Instant,
}

/// Reads the feed and hands each event on, stamped with its arrival.
async fn read_feed(mut response: reqwest::Response, events: mpsc::UnboundedSender<Seen>) {
    let mut buffer = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let at = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = None;
            let mut data = Value::Null;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    event = Some(value.to_string());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(value).unwrap_or(Value::Null);
                }
            }
            if let Some(event) = event {
                if events.send(Seen { event, data, at }).is_err() {
                    return;
                }
            }
        }
    }
}

/// Signed microseconds from `ack` to `event`.
fn micros_between(ack: Instant, event: Instant) -> i64 {
    if event >= ack {
        i64::try_from(event.duration_since(ack).as_micros()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from(ack.duration_since(event).as_micros()).unwrap_or(i64::MAX)
    }
}

/// Waits for the first event of `kind` whose data satisfies `matches`.
async fn wait_for(
    events: &mut mpsc::UnboundedReceiver<Seen>,
    kind: &str,
    matches: impl Fn(&Value) -> bool,
) -> Result<Instant, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| format!("no {kind} event within 10 s"))?
            .ok_or("the feed closed")?;
        if seen.event == kind && matches(&seen.data) {
            return Ok(seen.at);
        }
    }
}

fn report(what: &str, mut micros: Vec<i64>) {
    micros.sort_unstable();
    let early = micros.iter().filter(|m| **m < 0).count();
    let at = |q: f64| {
        let index = ((micros.len() as f64 - 1.0) * q).round() as usize;
        micros[index] as f64 / 1000.0
    };
    println!(
        "  {what:<38} n={:<5} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (seen before the ack: {early})",
        micros.len(),
        at(0.50),
        at(0.99),
        at(1.0),
    );
}

async fn run(changes: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).map_err(|err| err.to_string())?;
    let server = Claimd::start_with(&data, 2, true, &[])?;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value, bearer: Option<&str>| {
        let mut request = client.post(format!("{base}{path}")).json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let json_of = |response: reqwest::Response| async move {
        let status = response.status();
        let body: Value = response.json().await.map_err(|err| err.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    };
    let login = |username: &'static str, password: &'static str| {
        post(
            "/auth/login",
            json!({"username": username, "password": password}),
            None,
        )
    };
    let admin = json_of(
        login(ADMIN_USERNAME, ADMIN_PASSWORD)
            .await
            .map_err(|e| e.to_string())?,
    )
    .await?;
    let admin_token = admin["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    json_of(
        post(
            "/auth/register",
            json!({"username": "feeder", "password": PASSWORD}),
            None,
        )
        .await
        .map_err(|e| e.to_string())?,
    )
    .await?;
    let user = json_of(login("feeder", PASSWORD).await.map_err(|e| e.to_string())?).await?;
    let mut access = user["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let feed = client
        .get(format!("{base}/events"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .map_err(|err| err.to_string())?;
    if !feed.status().is_success() {
        return Err(format!("GET /events answered {}", feed.status()));
    }
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_feed(feed, events_tx));
    wait_for(&mut events, "snapshot", |_| true).await?;

    let mut claim_changes = Vec::with_capacity(changes);
    for n in 0..changes {
        let plan = CHANGE_PLANS[n % CHANGE_PLANS.len()];
        let response = client
            .patch(format!("{base}/me"))
            .bearer_auth(&access)
            .json(&json!({ "plan": plan }))
            .send()
            .await
            .map_err(|err| err.to_string())?;
        let ack = Instant::now();
        let body = json_of(response).await?;
        access = body["token"]["access_token"]
            .as_str()
            .ok_or("PATCH /me answered no token")?
            .to_string();
        let uv = body["user"]["claims_version"].as_u64().unwrap_or_default();
        let seen = wait_for(&mut events, "token-claims-change", |data| {
            data["uv"] == json!(uv)
        })
        .await?;
        claim_changes.push(micros_between(ack, seen));
    }

    let mut revocations = Vec::with_capacity(changes);
    for _ in 0..changes {
        let issued = json_of(
            post("/auth/refresh-token", json!({}), Some(&access))
                .await
                .map_err(|e| e.to_string())?,
        )
        .await?;
        let token = issued["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let jti = token_id(&token)?;
        let response = client
            .post(format!("{base}/oauth/revoke"))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .map_err(|err| err.to_string())?;
        let ack = Instant::now();
        if response.status().as_u16() != 200 {
            return Err(format!("revoke answered {}", response.status()));
        }
        let seen = wait_for(&mut events, "token-revoked", |data| {
            data["jti"] == json!(jti)
        })
        .await?;
        revocations.push(micros_between(ack, seen));
    }
    reader.abort();

    println!(
        "feed: from a write's acknowledgement to its event on GET /events (loopback, sequential)"
    );
    report("claim change (PATCH /me)", claim_changes);
    report("token revocation (POST /oauth/revoke)", revocations);
    drop(server);
    Ok(())
}

/// The `jti` of an access token (its payload, unverified: the bench made it).
fn token_id(token: &str) -> Result<String, String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|err| err.to_string())?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|err| err.to_string())?;
    claims["jti"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no jti".to_string())
}

fn main() -> ExitCode {
    let options = Options::parse();
    let changes = options
        .changes
        .unwrap_or(if options.quick { 100 } else { 1000 });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("feed: no runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(changes)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("feed: {err}");
            ExitCode::FAILURE
        }
    }
}
