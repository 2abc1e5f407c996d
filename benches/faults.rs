//! `cargo bench --bench faults`: the crash-and-fault soak of issue 9. The real `claimd`
//! binary serves concurrent clients while it is killed with SIGKILL over and over, and once
//! its disk fills up under load and is freed again. Every answer a client was given is
//! written down; after each restart the whole history is checked against the store:
//!
//! - each client's last acknowledged refresh token still refreshes (nobody is logged out,
//!   whatever happened to the attempts answered 5xx or never answered);
//! - every access token whose logout was acknowledged stays revoked;
//! - every acknowledged registration is still there.
//!
//! A refresh answered 503, or cut off by the kill, has an unknown outcome: the client keeps
//! the token it holds and retries, as a real client would. The run prints cycles,
//! acknowledged operations, what was lost (must be 0), start-up times and the disk-full
//! episode's figures, and exits non-zero if anything was lost or an answer was wrong.
//!
//! The disk-full episode needs root (a 64 MiB tmpfs is mounted for the data dir); without
//! it the kill cycles still run on an ordinary temporary directory and the episode is
//! skipped with a loud note.
//!
//! Options (`--help` lists them): `--cycles N` (default 30; `--quick` 4), `--seconds S`
//! of load per cycle (default 3; `--quick` 1.5), `--clients N` (default 8), `--quick`.

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

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use server::Claimd;

const PASSWORD: &str = "soak test passphrase";
/// How long a single request may take before the client gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The crash-and-fault soak: kill -9 cycles and a disk-full episode under load.
#[derive(Parser)]
#[command(
    name = "faults",
    override_usage = "cargo bench --bench faults -- [OPTIONS]",
    disable_version_flag = true
)]
struct Options {
    /// Kill -9 cycles (default 30; --quick 4)
    #[arg(long, value_name = "N")]
    cycles: Option<usize>,
    /// Seconds of load per cycle, up to 600 (default 3; --quick 1.5)
    #[arg(long, value_name = "S", value_parser = seconds)]
    seconds: Option<f64>,
    /// Concurrent clients, 1 to 64
    #[arg(long, value_name = "N", default_value_t = 8)]
    clients: usize,
    /// A short run for CI
    #[arg(long)]
    quick: bool,
    /// Passed by `cargo bench`: accepted, ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// A positional filter: there is nothing to filter by name.
    #[arg(hide = true)]
    filter: Vec<String>,
}

impl Options {
    fn cycles(&self) -> usize {
        self.cycles.unwrap_or(if self.quick { 4 } else { 30 })
    }

    fn seconds(&self) -> f64 {
        self.seconds.unwrap_or(if self.quick { 1.5 } else { 3.0 })
    }

    fn clients(&self) -> usize {
        self.clients.clamp(1, 64)
    }
}

fn seconds(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|secs| *secs > 0.0 && *secs <= 600.0)
        .ok_or_else(|| format!("expected seconds in (0, 600], got {text:?}"))
}

/// What one client was told and still holds.
#[derive(Default)]
struct History {
    /// The refresh token of the last 200 answer.
    refresh_token: String,
    /// Access tokens whose logout was answered 204.
    logged_out: Vec<String>,
    acknowledged: u64,
    unknown_outcomes: u64,
}

/// The whole run's figures.
#[derive(Default)]
struct Tally {
    acknowledged: u64,
    unknown_outcomes: u64,
    storage_unavailable: u64,
    wrong_answers: Vec<String>,
    lost: Vec<String>,
    startups: Vec<Duration>,
}

/// A 64 MiB tmpfs for the data dir, unmounted when dropped.
struct SmallDisk {
    mount: PathBuf,
}

impl SmallDisk {
    fn mount(under: &Path) -> Option<SmallDisk> {
        let mount = under.join("disk");
        std::fs::create_dir_all(&mount).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(&mount)
            .status()
            .is_ok_and(|status| status.success());
        ok.then_some(SmallDisk { mount })
    }

    fn fill_leaving(&self, leave: u64) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = std::fs::File::create(self.mount.join("filler"))?;
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        while let Ok(n) = file.write(&chunk) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        file.set_len(written.saturating_sub(leave))
    }

    fn free(&self) -> std::io::Result<()> {
        std::fs::remove_file(self.mount.join("filler"))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn url(server: &Claimd, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}

async fn post(
    client: &reqwest::Client,
    url: String,
    body: Option<Value>,
    bearer: Option<&str>,
) -> Result<(u16, Value), String> {
    let mut request = client.post(url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let resp = request.send().await.map_err(|err| err.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// `POST /auth/refresh-token` with `token`.
async fn refresh(
    client: &reqwest::Client,
    base: &str,
    token: String,
) -> Result<(u16, Value), String> {
    let body = json!({ "refresh_token": token });
    post(
        client,
        format!("{base}/auth/refresh-token"),
        Some(body),
        None,
    )
    .await
}

fn refresh_token_of(body: &Value) -> Option<String> {
    body["refresh_token"].as_str().map(str::to_string)
}

/// One client's load until `until`: refreshes its session in a loop, and now and then logs
/// a second session in and out. Answers are checked and written into `history`.
async fn client_load(
    client: reqwest::Client,
    base: String,
    name: String,
    history: Arc<Mutex<History>>,
    tally: Arc<Mutex<Tally>>,
    until: Instant,
) {
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        let token = history
            .lock()
            .map(|h| h.refresh_token.clone())
            .unwrap_or_default();
        match refresh(&client, &base, token).await {
            Ok((200, body)) => {
                if let (Some(next), Ok(mut history)) = (refresh_token_of(&body), history.lock()) {
                    history.refresh_token = next;
                    history.acknowledged += 1;
                }
            }
            Ok((503, body)) if body["code"] == "storage_unavailable" => {
                if let Ok(mut tally) = tally.lock() {
                    tally.storage_unavailable += 1;
                }
                if let Ok(mut history) = history.lock() {
                    history.unknown_outcomes += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok((status, body)) => {
                if let Ok(mut tally) = tally.lock() {
                    tally
                        .wrong_answers
                        .push(format!("{name}: refresh answered {status} {body}"));
                }
                return;
            }
            // Cut off by the kill: unknown outcome, retried after the restart.
            Err(_) => {
                if let Ok(mut history) = history.lock() {
                    history.unknown_outcomes += 1;
                }
                return;
            }
        }
        if round.is_multiple_of(25) {
            let login = post(
                &client,
                format!("{base}/auth/login"),
                Some(json!({ "username": name, "password": PASSWORD })),
                None,
            )
            .await;
            if let Ok((200, body)) = login {
                let access = body["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let logout =
                    post(&client, format!("{base}/auth/logout"), None, Some(&access)).await;
                if let (Ok((204, _)), Ok(mut history)) = (logout, history.lock()) {
                    history.logged_out.push(access);
                    history.acknowledged += 1;
                }
            }
        }
    }
}

/// Checks every client's history against the restarted server; what fails is lost.
async fn check_history(
    client: &reqwest::Client,
    base: &str,
    histories: &[(String, Arc<Mutex<History>>)],
    tally: &mut Tally,
) {
    for (name, history) in histories {
        let (token, logged_out) = match history.lock() {
            Ok(h) => (h.refresh_token.clone(), h.logged_out.clone()),
            Err(_) => continue,
        };
        match refresh(client, base, token).await {
            Ok((200, body)) => {
                if let (Some(next), Ok(mut history)) = (refresh_token_of(&body), history.lock()) {
                    history.refresh_token = next;
                }
            }
            other => tally.lost.push(format!(
                "{name}: the last acknowledged refresh token was refused: {other:?}"
            )),
        }
        for access in logged_out.iter().rev().take(3) {
            let me = client
                .get(format!("{base}/me"))
                .bearer_auth(access)
                .send()
                .await;
            let status = me.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
            if status != 401 {
                tally.lost.push(format!(
                    "{name}: an acknowledged logout's token answered {status}"
                ));
            }
        }
        let taken = post(
            client,
            format!("{base}/auth/register"),
            Some(json!({ "username": name, "password": PASSWORD })),
            None,
        )
        .await;
        if !matches!(taken, Ok((409, _))) {
            tally.lost.push(format!(
                "{name}: the acknowledged registration is gone: {taken:?}"
            ));
        }
    }
}

fn start(dir: &Path, tally: &mut Tally) -> Result<Claimd, String> {
    let server = Claimd::start(dir, 2, false)?;
    tally.startups.push(server.started_in);
    Ok(server)
}

async fn run(options: &Options) -> Result<Tally, String> {
    let scratch = tempfile::tempdir().map_err(|err| err.to_string())?;
    let disk = SmallDisk::mount(scratch.path());
    if disk.is_none() {
        eprintln!("!!! faults: cannot mount a tmpfs (not root?): the disk-full episode is SKIPPED");
    }
    let data = match &disk {
        Some(disk) => disk.mount.join("data"),
        None => scratch.path().join("data"),
    };
    std::fs::create_dir_all(&data).map_err(|err| err.to_string())?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|err| err.to_string())?;
    let mut tally = Tally::default();

    let mut server = start(&data, &mut tally)?;
    let base = url(&server, "");
    let mut histories = Vec::new();
    for n in 0..options.clients() {
        let name = format!("soak{n}");
        let (status, body) = post(
            &client,
            format!("{base}/auth/register"),
            Some(json!({"username": name, "password": PASSWORD})),
            None,
        )
        .await?;
        if status != 201 {
            return Err(format!("register {name}: {status} {body}"));
        }
        let (status, body) = post(
            &client,
            format!("{base}/auth/login"),
            Some(json!({"username": name, "password": PASSWORD})),
            None,
        )
        .await?;
        let token = refresh_token_of(&body).ok_or(format!("login {name}: {status} {body}"))?;
        histories.push((
            name,
            Arc::new(Mutex::new(History {
                refresh_token: token,
                acknowledged: 2,
                ..History::default()
            })),
        ));
    }

    let episode_at = options.cycles() / 2;
    let mut episode = None;
    for cycle in 0..options.cycles() {
        let base = url(&server, "");
        let shared = Arc::new(Mutex::new(Tally::default()));
        let until = Instant::now() + Duration::from_secs_f64(options.seconds());
        let mut tasks = Vec::new();
        for (name, history) in &histories {
            tasks.push(tokio::spawn(client_load(
                client.clone(),
                base.clone(),
                name.clone(),
                Arc::clone(history),
                Arc::clone(&shared),
                until + Duration::from_secs(60),
            )));
        }
        if cycle == episode_at {
            if let Some(disk) = &disk {
                tokio::time::sleep(Duration::from_secs_f64(options.seconds() / 2.0)).await;
                disk.fill_leaving(200 * 1024)
                    .map_err(|err| err.to_string())?;
                let filled = Instant::now();
                tokio::time::sleep(Duration::from_secs_f64(options.seconds())).await;
                disk.free().map_err(|err| err.to_string())?;
                let freed = Instant::now();
                let recovered = wait_ready(&client, &base, Duration::from_secs(30)).await;
                episode = Some((freed - filled, recovered));
            }
        }
        // Kill at a moment that differs from cycle to cycle.
        let jitter = (cycle as f64 * 0.37).fract() * options.seconds();
        tokio::time::sleep(Duration::from_secs_f64(
            options.seconds() / 2.0 + jitter / 2.0,
        ))
        .await;
        drop(server);
        for task in tasks {
            let _ = task.await;
        }
        if let Ok(mut shared) = shared.lock() {
            tally.storage_unavailable += shared.storage_unavailable;
            tally.wrong_answers.append(&mut shared.wrong_answers);
        }
        server = start(&data, &mut tally)?;
        let base = url(&server, "");
        check_history(&client, &base, &histories, &mut tally).await;
    }
    for (_, history) in &histories {
        if let Ok(history) = history.lock() {
            tally.acknowledged += history.acknowledged;
            tally.unknown_outcomes += history.unknown_outcomes;
        }
    }
    drop(server);
    if let Some((full_for, recovered)) = episode {
        println!(
            "disk-full episode: disk full for {:.1} s; {} writes answered 503 storage_unavailable; \
             writes resumed {} after the space came back",
            full_for.as_secs_f64(),
            tally.storage_unavailable,
            match recovered {
                Some(after) => format!("{:.2} s", after.as_secs_f64()),
                None => "NOT within 30 s".to_string(),
            }
        );
        if recovered.is_none() {
            tally
                .lost
                .push("writes did not resume within 30 s of the disk freeing".into());
        }
    }
    Ok(tally)
}

/// Polls `/readyz` until it answers 200; how long that took.
async fn wait_ready(client: &reqwest::Client, base: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(resp) = client.get(format!("{base}/readyz")).send().await {
            if resp.status().as_u16() == 200 {
                return Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn main() -> ExitCode {
    // `--help` and refused arguments end here (clap prints them; exit 0 and 2).
    let options = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("faults: {err}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let tally = match runtime.block_on(run(&options)) {
        Ok(tally) => tally,
        Err(err) => {
            eprintln!("faults: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut startups = tally.startups.clone();
    startups.sort();
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    println!(
        "faults: {} kill -9 cycles of {:.1} s with {} clients in {:.0} s",
        options.cycles(),
        options.seconds(),
        options.clients(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "acknowledged operations: {}; unknown outcomes (5xx or cut off, retried): {}",
        tally.acknowledged, tally.unknown_outcomes
    );
    println!(
        "start-up to listening: min {:.0} ms, median {:.0} ms, max {:.0} ms ({} starts)",
        ms(startups.first()),
        ms(startups.get(startups.len() / 2)),
        ms(startups.last()),
        startups.len()
    );
    println!("lost: {}", tally.lost.len());
    for lost in tally.lost.iter().take(10) {
        println!("  LOST {lost}");
    }
    for wrong in tally.wrong_answers.iter().take(10) {
        println!("  WRONG {wrong}");
    }
    if tally.lost.is_empty() && tally.wrong_answers.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
