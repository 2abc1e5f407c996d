//! `cargo bench --bench session_churn`: the store under a steady login/logout churn
//! (issues 9 and 13). Clients log in and out of the real `claimd` binary for `--seconds`
//! (default 720; `--quick` 30), sampling every `--every` seconds (default 30; `--quick` 5).
//!
//! - `--backend sled` (the default): the data directory's size and the `claimd_sessions`
//!   gauge. Before revoked sessions left the store, every login left a record until the
//!   session's 30-day expiry (~4.5 KB a login, never reclaimed).
//! - `--backend postgres`: a fresh database on the cluster `CLAIMD_TEST_POSTGRES_URL` names
//!   (`.ci/postgres` starts one; without it the run is skipped, loudly, and with `CI` set
//!   it fails), dropped at the end. Each sample reads the rows, `pg_total_relation_size`
//!   and dead row versions of `deny`, `sessions` and `changes`, the `claimd_sessions`
//!   gauge, what the eviction counters moved by, and the time of a `SELECT count(*)` over
//!   each eviction delete's own predicate (claimd exports no eviction duration).
//!
//! Each series ends with whether it levelled off, printed, never asserted: over the
//! samples taken once the series could be full, the second half's maximum against 1.1 ×
//! the first half's. Logins cost an argon2id hash each, so the rate is what the two cores
//! allow. Each logout puts its session on the deny list until its last access token is
//! past `exp` plus the largest leeway (5 minutes), so the deny list holds `--access-ttl`
//! (default 1m) plus about five minutes of logouts: the run must be longer than that, by
//! a few samples, for that series to be judged.
//!
//! # Layout
//!
//! - `tables` (session_churn/): the PostgreSQL tables' figures and eviction lookups.
//! - From the nodes bench: the run's own database. From the load test: the child process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::disallowed_methods,
    reason = "a benchmark's harness stops at the first surprise and measures real time"
)]

#[path = "nodes/database.rs"]
#[allow(dead_code)]
mod database;
#[path = "load/server.rs"]
#[allow(dead_code)]
mod server;
#[path = "session_churn/tables.rs"]
mod tables;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::json;
use server::{disk_usage, Claimd};
use tables::{Table, Tables, TABLES};

const PASSWORD: &str = "churn passphrase";
const CLIENTS: usize = 4;
/// `eviction.interval` for the run, in seconds.
const EVICTION_INTERVAL: u64 = 10;

/// Where claimd keeps its state.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sled,
    Postgres,
}

/// The store under a steady login/logout churn.
#[derive(Parser)]
#[command(
    name = "session_churn",
    override_usage = "cargo bench --bench session_churn -- [OPTIONS]",
    disable_version_flag = true
)]
struct Options {
    /// The store claimd runs on (postgres: a fresh database on CLAIMD_TEST_POSTGRES_URL)
    #[arg(long, value_enum, default_value_t = Backend::Sled)]
    backend: Backend,
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

/// The run's shape.
struct Plan {
    seconds: u64,
    every: u64,
    access_ttl: u64,
}

impl Plan {
    /// Seconds from the start until the deny list, the longest-kept series, can be full:
    /// a logout's entry stays until its access token's `exp` plus 5 minutes, then waits
    /// up to one eviction interval (one more for the pass to land in a sample).
    fn deny_fill(&self) -> u64 {
        self.access_ttl + 300 + 2 * EVICTION_INTERVAL
    }

    /// The same for the change log: kept for the access-token life plus the leeway.
    fn changes_fill(&self) -> u64 {
        self.access_ttl + tables::LEEWAY_SECONDS + 2 * EVICTION_INTERVAL
    }
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

/// `/metrics` as text (empty if it cannot be read: the sample then shows -1).
async fn metrics_text(base: &str) -> String {
    match reqwest::get(format!("{base}/metrics")).await {
        Ok(resp) => resp.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// An unlabelled metric's value, -1 when absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(name))
        .find(|rest| rest.starts_with(' '))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(-1.0)
}

/// When each sample was taken (seconds from the start) and the logins and logouts done by
/// then.
#[derive(Default)]
struct Timeline {
    times: Vec<u64>,
    cycles: Vec<u64>,
}

impl Timeline {
    fn push(&mut self, at: u64, cycles: u64) {
        self.times.push(at);
        self.cycles.push(cycles);
    }

    /// Logins and logouts a second between samples `first` and `last`.
    fn rate(&self, first: usize, last: usize) -> Option<f64> {
        let seconds = self.times[last].checked_sub(self.times[first])?;
        let done = self.cycles[last].checked_sub(self.cycles[first])?;
        (seconds > 0).then(|| done as f64 / seconds as f64)
    }

    /// Whether a series levelled off: over the samples at or after `fill` seconds, the
    /// second half's maximum is at most 1.1 × the first half's, times how much faster the
    /// churn ran in the second half if it did (what a table holds at steady state is the
    /// rate times the time each row stays, and the rate follows the machine's other load).
    fn verdict(&self, series: &[f64], fill: u64) -> String {
        let start = self.times.partition_point(|at| *at < fill);
        let settled = &series[start.min(series.len())..];
        if settled.len() < 2 {
            return format!(
                "too short to judge (full after ~{fill} s; {} sample(s) past it)",
                settled.len()
            );
        }
        let half = settled.len() / 2;
        let max = |values: &[f64]| values.iter().cloned().fold(f64::MIN, f64::max);
        let (first, second) = (max(&settled[..half]), max(&settled[half..]));
        let ratio = if first > 0.0 { second / first } else { 0.0 };
        let last = start + settled.len() - 1;
        let churn = match (
            self.rate(start, start + half - 1),
            self.rate(start + half - 1, last),
        ) {
            (Some(before), Some(after)) if before > 0.0 => after / before,
            _ => 1.0,
        };
        let word = if second <= 1.1 * churn.max(1.0) * first || (first <= 0.0 && second <= 0.0) {
            "levelled off"
        } else {
            "STILL GROWING"
        };
        format!(
            "{word}: after {fill} s, max {first:.0} in the first half, {second:.0} in the second ({ratio:.2}x; churn rate {churn:.2}x; {} samples)",
            settled.len()
        )
    }
}

/// Registers the churning users and runs their clients until `until`.
async fn start_churn(
    base: &str,
    until: Instant,
    cycles: &Arc<AtomicU64>,
) -> Result<Vec<tokio::task::JoinHandle<Result<(), String>>>, String> {
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
    Ok((0..CLIENTS)
        .map(|n| {
            tokio::spawn(churn(
                base.to_string(),
                format!("churn{n}"),
                until,
                Arc::clone(cycles),
            ))
        })
        .collect())
}

/// Starts claimd with its data (and working directory) in `data`, `extra` set last.
fn start_claimd(data: &Path, plan: &Plan, extra: &[(&str, &str)]) -> Result<Claimd, String> {
    let access_ttl = format!("{}s", plan.access_ttl);
    let interval = format!("{EVICTION_INTERVAL}s");
    let leeway = format!("{}s", tables::LEEWAY_SECONDS);
    let mut settings = vec![
        ("CLAIMD__TOKENS__ACCESS_TTL", access_ttl.as_str()),
        ("CLAIMD__TOKENS__LEEWAY", leeway.as_str()),
        ("CLAIMD__EVICTION__INTERVAL", interval.as_str()),
    ];
    settings.extend_from_slice(extra);
    Claimd::start_with(data, 2, false, &settings)
}

async fn run_sled(plan: &Plan) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).map_err(|err| err.to_string())?;
    let server = start_claimd(&data, plan, &[])?;
    let base = format!("http://{}", server.addr);
    let started = Instant::now();
    let until = started + Duration::from_secs(plan.seconds);
    let cycles = Arc::new(AtomicU64::new(0));
    let tasks = start_churn(&base, until, &cycles).await?;
    let (mut timeline, mut series) = (Timeline::default(), Vec::new());
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(plan.every)).await;
        let mib = disk_usage(&data) as f64 / (1024.0 * 1024.0);
        let held = metric(&metrics_text(&base).await, "claimd_sessions");
        let (at, done) = (started.elapsed().as_secs(), cycles.load(Ordering::Relaxed));
        println!(
            "t={at:>4}s  logins+logouts {done:>6}  data dir {mib:>6.1} MiB  claimd_sessions {held:>4}"
        );
        timeline.push(at, done);
        series.push(mib);
    }
    for task in tasks {
        task.await.map_err(|err| err.to_string())??;
    }
    let total = cycles.load(Ordering::Relaxed);
    let kib: Vec<f64> = series.iter().map(|mib| mib * 1024.0).collect();
    println!(
        "session churn on sled: {total} logins and logouts in {} s ({:.1}/s)",
        plan.seconds,
        total as f64 / plan.seconds as f64,
    );
    println!(
        "  data dir (KiB): {}",
        timeline.verdict(&kib, plan.deny_fill())
    );
    Ok(())
}

/// One PostgreSQL sample.
struct Sample {
    at: u64,
    cycles: u64,
    tables: [Table; 3],
}

async fn churn_postgres(plan: &Plan, url: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
    let server = start_claimd(
        dir.path(),
        plan,
        &[
            ("CLAIMD__STORAGE__BACKEND", "postgres"),
            ("CLAIMD__STORAGE__POSTGRES_URL", url),
        ],
    )?;
    let tables = Tables::connect(url).await?;
    let base = format!("http://{}", server.addr);
    let started = Instant::now();
    let until = started + Duration::from_secs(plan.seconds);
    let cycles = Arc::new(AtomicU64::new(0));
    let tasks = start_churn(&base, until, &cycles).await?;
    let mut samples = Vec::new();
    let (mut deny_evicted, mut sessions_evicted) = (0.0, 0.0);
    println!(
        "{:>5} {:>7} | {:>21} {:>8} | {:>21} {:>8} | {:>21} {:>8} | {:>5} {:>13}",
        "t(s)",
        "cycles",
        "deny rows/KiB/dead",
        "ms(n)",
        "sessions rows/KiB/dead",
        "ms(n)",
        "changes rows/KiB/dead",
        "ms(n)",
        "gauge",
        "evicted d/s"
    );
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(plan.every)).await;
        let text = metrics_text(&base).await;
        let sampled = tables.sample().await?;
        let at = started.elapsed().as_secs();
        let (deny_total, sessions_total) = (
            metric(&text, "claimd_evictions_total"),
            metric(&text, "claimd_sessions_evicted_total"),
        );
        let done = cycles.load(Ordering::Relaxed);
        let mut line = format!("{at:>5} {done:>7}");
        for table in &sampled {
            line.push_str(&format!(
                " | {:>7} {:>7} {:>5} {:>8}",
                table.rows,
                table.bytes / 1024,
                table.dead,
                format!(
                    "{:.1}({})",
                    table.lookup.as_secs_f64() * 1000.0,
                    table.expired
                ),
            ));
        }
        line.push_str(&format!(
            " | {:>5} {:>6}/{:<6}",
            metric(&text, "claimd_sessions"),
            deny_total - deny_evicted,
            sessions_total - sessions_evicted
        ));
        println!("{line}");
        (deny_evicted, sessions_evicted) = (deny_total, sessions_total);
        samples.push(Sample {
            at,
            cycles: done,
            tables: sampled,
        });
    }
    for task in tasks {
        task.await.map_err(|err| err.to_string())??;
    }
    let total = cycles.load(Ordering::Relaxed);
    println!(
        "session churn on postgres: {total} logins and logouts in {} s ({:.1}/s); evicted {deny_evicted} deny entries, {sessions_evicted} sessions",
        plan.seconds,
        total as f64 / plan.seconds as f64,
    );
    let mut timeline = Timeline::default();
    for sample in &samples {
        timeline.push(sample.at, sample.cycles);
    }
    for (index, name) in TABLES.iter().enumerate() {
        let fill = match *name {
            "deny" => plan.deny_fill(),
            "changes" => plan.changes_fill(),
            _ => 2 * EVICTION_INTERVAL,
        };
        let rows: Vec<f64> = samples
            .iter()
            .map(|sample| sample.tables[index].rows as f64)
            .collect();
        let kib: Vec<f64> = samples
            .iter()
            .map(|sample| sample.tables[index].bytes as f64 / 1024.0)
            .collect();
        let slowest = samples
            .iter()
            .map(|sample| sample.tables[index].lookup)
            .max()
            .unwrap_or_default();
        println!("  {name} rows: {}", timeline.verdict(&rows, fill));
        println!("  {name} KiB:  {}", timeline.verdict(&kib, fill));
        println!(
            "  {name} eviction lookup: slowest {:.2} ms",
            slowest.as_secs_f64() * 1000.0
        );
    }
    for (name, plan) in tables.plans().await? {
        println!("  plan of the {name} eviction lookup:");
        for line in plan.lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

/// Runs the chosen backend until it ends or the process is asked to stop. `Ok(false)`:
/// skipped (postgres without a cluster, outside CI).
async fn run(backend: Backend, plan: &Plan) -> Result<bool, String> {
    let cluster = match (backend, std::env::var(database::URL_VARIABLE)) {
        (Backend::Sled, _) => return until_stopped(run_sled(plan)).await.map(|()| true),
        (Backend::Postgres, Ok(cluster)) => cluster,
        (Backend::Postgres, Err(_)) if std::env::var_os("CI").is_some() => {
            return Err(format!(
                "{} is not set and CI is: no PostgreSQL cluster to run on",
                database::URL_VARIABLE
            ))
        }
        (Backend::Postgres, Err(_)) => return Ok(false),
    };
    let database = database::Database::create(&cluster).await?;
    println!("database {} (dropped at the end)", database.name());
    // The database outlives the churn's future, so a signal still drops it.
    let outcome = until_stopped(async {
        let (synchronous_commit, fsync) = database.durability().await?;
        println!("  synchronous_commit {synchronous_commit}, fsync {fsync}");
        churn_postgres(plan, &database.url).await
    })
    .await;
    database.drop_now().await;
    outcome.map(|()| true)
}

/// `work`, unless SIGINT or SIGTERM comes first: `work` is then dropped (which kills
/// claimd) and the answer is an error.
async fn until_stopped(
    work: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::select! {
        outcome = work => outcome,
        () = stopped() => Err("stopped by a signal".to_string()),
    }
}

/// Resolves when the process is asked to stop (SIGINT, SIGTERM).
async fn stopped() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

fn main() -> ExitCode {
    // `--help` and refused arguments end here (clap prints them; exit 0 and 2).
    let options = Options::parse();
    let quick = options.quick;
    let plan = Plan {
        seconds: options
            .seconds
            .unwrap_or(if quick { 30 } else { 720 })
            .max(4),
        every: options.every.unwrap_or(if quick { 5 } else { 30 }).max(1),
        access_ttl: options.access_ttl.max(1),
    };
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
    let outcome = runtime.block_on(run(options.backend, &plan));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "session_churn: SKIPPED the postgres backend: {} is not set (eval \"$(.ci/postgres start)\" first)",
                database::URL_VARIABLE
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("session_churn: {err}");
            ExitCode::FAILURE
        }
    }
}
