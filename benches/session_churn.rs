//! `cargo bench --bench session_churn`: the disk under a steady login/logout churn (issue
//! 9). Clients log in and out of the real `claimd` binary for `--seconds` (default 720;
//! `--quick` 30) while the data directory's size and the `claimd_sessions` gauge are
//! sampled every `--every` seconds (default 30; `--quick` 5). Before revoked sessions
//! left the store, every login left a record until the session's 30-day expiry (~4.5 KB a
//! login, never reclaimed); the series shows whether the directory levels off.
//!
//! Logins cost an argon2id hash each, so the rate is what the two cores allow. Each logout
//! also puts its session on the deny list until its last access token is past `exp` plus
//! the largest leeway (5 minutes), so the directory holds `--access-ttl` (default 1m)
//! plus about six minutes of logouts: the run must be longer than that to level off.

#[path = "load/server.rs"]
#[allow(dead_code)]
mod server;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use server::{disk_usage, Claimd};

const PASSWORD: &str = "churn passphrase";
const CLIENTS: usize = 4;

/// The disk under a steady login/logout churn.
#[derive(Parser)]
#[command(
    name = "session_churn",
    override_usage = "cargo bench --bench session_churn -- [OPTIONS]",
    disable_version_flag = true
)]
struct Options {
    /// Length of the run in seconds, at least 4 (default 720; --quick 30)
    #[arg(long, value_name = "SECS")]
    seconds: Option<u64>,
    /// Seconds between samples (default 30; --quick 5)
    #[arg(long, value_name = "SECS")]
    every: Option<u64>,
    /// Access-token lifetime in seconds
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    access_ttl: u64,
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

async fn churn(
    base: String,
    name: String,
    until: Instant,
    cycles: Arc<AtomicU64>,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|err| err.to_string())?;
    while Instant::now() < until {
        let login = client
            .post(format!("{base}/auth/login"))
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .map_err(|err| err.to_string())?;
        if login.status().as_u16() != 200 {
            return Err(format!("login answered {}", login.status()));
        }
        let body: serde_json::Value = login.json().await.map_err(|err| err.to_string())?;
        let access = body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let logout = client
            .post(format!("{base}/auth/logout"))
            .bearer_auth(&access)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        if logout.status().as_u16() != 204 {
            return Err(format!("logout answered {}", logout.status()));
        }
        cycles.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

async fn sessions_gauge(base: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|line| line.starts_with("claimd_sessions "))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
}

async fn run(seconds: u64, every: u64, access_ttl: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).map_err(|err| err.to_string())?;
    let server = Claimd::start_with(
        &data,
        2,
        false,
        &[
            ("CLAIMD__TOKENS__ACCESS_TTL", access_ttl),
            ("CLAIMD__EVICTION__INTERVAL", "10s"),
        ],
    )?;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    for n in 0..CLIENTS {
        let resp = client
            .post(format!("{base}/auth/register"))
            .json(&json!({"username": format!("churn{n}"), "password": PASSWORD}))
            .send()
            .await
            .map_err(|err| err.to_string())?;
        if resp.status().as_u16() != 201 {
            return Err(format!("register answered {}", resp.status()));
        }
    }
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let cycles = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|n| {
            tokio::spawn(churn(
                base.clone(),
                format!("churn{n}"),
                until,
                Arc::clone(&cycles),
            ))
        })
        .collect();
    let mut series = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(every)).await;
        let mib = disk_usage(&data) as f64 / (1024.0 * 1024.0);
        let held = sessions_gauge(&base).await.unwrap_or(-1.0);
        println!(
            "t={:>4.0}s  logins+logouts {:>6}  data dir {:>6.1} MiB  claimd_sessions {:>4}",
            started.elapsed().as_secs_f64(),
            cycles.load(Ordering::Relaxed),
            mib,
            held
        );
        series.push(mib);
    }
    for task in tasks {
        task.await.map_err(|err| err.to_string())??;
    }
    let total = cycles.load(Ordering::Relaxed);
    let half = series.len() / 2;
    let first_half = series[..half.max(1)].iter().cloned().fold(0.0, f64::max);
    let second_half = series[half..].iter().cloned().fold(0.0, f64::max);
    println!(
        "session churn: {total} logins and logouts in {seconds} s ({:.1}/s); data dir max {:.1} MiB in the first half, {:.1} MiB in the second ({:.2}x)",
        total as f64 / seconds as f64,
        first_half,
        second_half,
        if first_half > 0.0 { second_half / first_half } else { 0.0 }
    );
    Ok(())
}

fn main() -> ExitCode {
    // `--help` and refused arguments end here (clap prints them; exit 0 and 2).
    let options = Options::parse();
    let quick = options.quick;
    let seconds = options
        .seconds
        .unwrap_or(if quick { 30 } else { 720 })
        .max(4);
    let every = options.every.unwrap_or(if quick { 5 } else { 30 }).max(1);
    let access_ttl = format!("{}s", options.access_ttl.max(1));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("session_churn: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(seconds, every, &access_ttl)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("session_churn: {err}");
            ExitCode::FAILURE
        }
    }
}
