//! `cargo bench --bench nodes`: claimd on sled and on PostgreSQL side by side (issue 13).
//! It starts the real `claimd` binary (built by cargo in the bench profile) on loopback:
//! one node on sled, and two nodes on one fresh PostgreSQL database on the cluster
//! `CLAIMD_TEST_POSTGRES_URL` names (`.ci/postgres` starts one; without it the PostgreSQL
//! half is skipped, loudly, and with `CI` set the run fails). It measures `verify`,
//! `refresh`, `change` and `login` with the load test's flows on sled, on one PostgreSQL
//! node, and on both PostgreSQL nodes behind one load generator (each connection sends
//! its requests to the two nodes in turn), then cross-node staleness (a write answered by
//! node A until node B refuses the token it concerns). It prints one table, the issue's
//! targets with whether each is met (never asserted), and the staleness figures. Wrong
//! answers make the run exit non-zero. `--help` lists the options.
//!
//! # Layout
//!
//! - `options`: the command line.
//! - `database`: the run's own database on the cluster, and its durability settings.
//! - `spread`: the load generator over one node or several.
//! - `staleness`: node A's answer to node B's refusal.
//! - `report`: the tables.
//! - From the load test (`load/`): the HTTP client, the flows and their driver types,
//!   the set-up through the API, and the `claimd` child process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::disallowed_methods,
    reason = "a benchmark's harness stops at the first surprise and measures real time"
)]

#[path = "load/driver.rs"]
#[allow(dead_code)]
mod driver;
#[path = "load/fixture.rs"]
#[allow(dead_code)]
mod fixture;
#[path = "load/flows.rs"]
#[allow(dead_code)]
mod flows;
#[path = "load/http.rs"]
#[allow(dead_code)]
mod http;
#[path = "load/server.rs"]
#[allow(dead_code)]
mod server;

#[path = "nodes/database.rs"]
mod database;
#[path = "nodes/options.rs"]
mod options;
#[path = "nodes/report.rs"]
mod report;
#[path = "nodes/spread.rs"]
mod spread;
#[path = "nodes/staleness.rs"]
mod staleness;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use database::Database;
use flows::{Account, Change, Login, Refresh, Session, Verify};
use options::Options;
use report::{Report, Row};
use server::Claimd;
use spread::Spread;

/// Longest a single request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Every node's `tokens.issuer`: the address clients would reach the nodes at through a
/// load balancer (a node left to itself names its own port, and the other refuses its
/// tokens as from a wrong issuer).
const ISSUER: &str = "http://127.0.0.1:8000";

/// The scenarios, in the order they run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Verify,
    Refresh,
    Change,
    Login,
}

impl Scenario {
    const ALL: [Scenario; 4] = [
        Scenario::Verify,
        Scenario::Refresh,
        Scenario::Change,
        Scenario::Login,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Verify => "verify",
            Scenario::Refresh => "refresh",
            Scenario::Change => "change",
            Scenario::Login => "login",
        }
    }
}

/// The users and chains set up on one store (one sled node, or the PostgreSQL
/// database both of its nodes share).
struct Fixture {
    accounts: Arc<Vec<Account>>,
    tokens: Arc<Vec<String>>,
    refresh: Vec<Refresh>,
    change: Vec<Change>,
}

impl Fixture {
    /// Registers `users` users with a session each, plus `connections` sessions for the
    /// refresh chains and `connections` users of their own for the change chains.
    async fn set_up(addr: SocketAddr, users: usize, connections: usize) -> Result<Fixture, String> {
        let created = fixture::new_users(addr, "user", 0, users).await?;
        let (accounts, sessions): (Vec<Account>, Vec<Session>) = created.into_iter().unzip();
        let chain_accounts = (0..connections)
            .map(|n| accounts[n % accounts.len()].clone())
            .collect();
        let refresh = fixture::sessions(addr, chain_accounts)
            .await?
            .into_iter()
            .map(|session| Refresh { session })
            .collect();
        let change = fixture::new_users(addr, "change", 0, connections)
            .await?
            .into_iter()
            .map(|(_, session)| Change {
                access: session.access,
            })
            .collect();
        Ok(Fixture {
            accounts: Arc::new(accounts),
            tokens: Arc::new(sessions.into_iter().map(|s| s.access).collect()),
            refresh,
            change,
        })
    }

    /// Runs one scenario; refresh and change chains carry on to the next run.
    async fn run(
        &mut self,
        scenario: Scenario,
        spread: &Spread,
        connections: usize,
    ) -> spread::Measured {
        match scenario {
            Scenario::Verify => {
                let flows = (0..connections)
                    .map(|n| Verify {
                        tokens: Arc::clone(&self.tokens),
                        next: n * self.tokens.len() / connections,
                    })
                    .collect();
                spread::run(spread, flows).await.0
            }
            Scenario::Refresh => {
                let flows = std::mem::take(&mut self.refresh);
                let (measured, flows) = spread::run(spread, flows).await;
                self.refresh = flows;
                measured
            }
            Scenario::Change => {
                let flows = std::mem::take(&mut self.change);
                let (measured, flows) = spread::run(spread, flows).await;
                self.change = flows;
                measured
            }
            Scenario::Login => {
                let flows = (0..connections)
                    .map(|n| Login {
                        accounts: Arc::clone(&self.accounts),
                        next: n * self.accounts.len() / connections,
                    })
                    .collect();
                spread::run(spread, flows).await.0
            }
        }
    }
}

/// One place load is sent to: its label, its nodes, and which fixture it uses.
struct Target {
    label: &'static str,
    nodes: Vec<SocketAddr>,
    /// Index into the run's fixtures.
    fixture: usize,
}

/// Sends `GET /healthz` until it answers 200 (bounded: 60 s).
async fn healthy(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut request = Vec::new();
    http::write_request(&mut request, "GET", "/healthz", &[], None);
    let mut last = String::new();
    while Instant::now() < deadline {
        let attempt = async {
            let mut conn = http::Conn::connect(addr)
                .await
                .map_err(|err| format!("connect: {err}"))?;
            conn.exchange(&request).await
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(response)) if response.status == 200 => return Ok(()),
            Ok(Ok(response)) => last = format!("status {}", response.status),
            Ok(Err(err)) => last = err,
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!(
        "{addr} never answered GET /healthz with 200: {last}"
    ))
}

/// Starts a node and waits until it answers.
async fn start_node(
    dir: &Path,
    workers: usize,
    settings: &[(&str, &str)],
    label: &str,
) -> Result<Claimd, String> {
    let node = Claimd::start_with(dir, workers, false, settings)
        .map_err(|err| format!("{label}: {err}"))?;
    healthy(node.addr)
        .await
        .map_err(|err| format!("{label}: {err}:\n{}", node.log_tail()))?;
    Ok(node)
}

fn temp_dir(prefix: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|err| format!("temp dir: {err}"))
}

/// The cluster's URL, `Ok(None)` (said loudly) when there is none, an error when there
/// is none and `CI` is set.
fn cluster_url() -> Result<Option<String>, String> {
    match std::env::var(database::URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Ok(Some(url)),
        _ if std::env::var_os("CI").is_some() => Err(format!(
            "{} is not set, and CI is: start a cluster with .ci/postgres",
            database::URL_VARIABLE
        )),
        _ => Ok(None),
    }
}

async fn run(options: &Options, command: String) -> Result<Report, String> {
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let workers = cores;
    let connections = options.concurrency;
    let mut report = Report {
        command,
        cores,
        workers,
        rows: Vec::new(),
        durability: None,
        staleness: None,
        skipped: Vec::new(),
        seconds: 0.0,
    };
    let mut targets = Vec::new();
    let mut fixtures = Vec::new();
    // Held to the end: dropping a node kills it, dropping a dir removes it.
    let mut held: Vec<(Claimd, tempfile::TempDir)> = Vec::new();

    if options.backend.sled() {
        let dir = temp_dir("claimd-nodes-sled-")?;
        let settings = [("CLAIMD__TOKENS__ISSUER", ISSUER)];
        let node = start_node(dir.path(), workers, &settings, "sled node").await?;
        let at = Instant::now();
        fixtures.push(Fixture::set_up(node.addr, options.users, connections).await?);
        eprintln!(
            "nodes: sled: {} users set up in {:.1} s",
            options.users,
            at.elapsed().as_secs_f64()
        );
        targets.push(Target {
            label: "sled",
            nodes: vec![node.addr],
            fixture: fixtures.len() - 1,
        });
        held.push((node, dir));
    }

    let mut database = None;
    let mut pair = None;
    if options.backend.postgres() {
        match cluster_url()? {
            None => {
                let why = format!(
                    "the PostgreSQL half: {} is not set (eval \"$(.ci/postgres start)\" starts a cluster)",
                    database::URL_VARIABLE
                );
                eprintln!("\nnodes: SKIPPED {why}\n");
                report.skipped.push(why);
            }
            Some(cluster) => {
                let db = Database::create(&cluster).await?;
                let durability = db.durability().await?;
                eprintln!(
                    "nodes: database {} (synchronous_commit = {}, fsync = {})",
                    db.name(),
                    durability.0,
                    durability.1
                );
                report.durability = Some(durability);
                let settings = [
                    ("CLAIMD__TOKENS__ISSUER", ISSUER),
                    ("CLAIMD__STORAGE__BACKEND", "postgres"),
                    ("CLAIMD__STORAGE__POSTGRES_URL", db.url.as_str()),
                ];
                let dir_a = temp_dir("claimd-nodes-pg-a-")?;
                let a = start_node(dir_a.path(), workers, &settings, "postgres node A").await?;
                let dir_b = temp_dir("claimd-nodes-pg-b-")?;
                let b = start_node(dir_b.path(), workers, &settings, "postgres node B").await?;
                let at = Instant::now();
                fixtures.push(Fixture::set_up(a.addr, options.users, connections).await?);
                eprintln!(
                    "nodes: postgres: {} users set up through node A in {:.1} s",
                    options.users,
                    at.elapsed().as_secs_f64()
                );
                let fixture = fixtures.len() - 1;
                targets.push(Target {
                    label: "postgres ×1",
                    nodes: vec![a.addr],
                    fixture,
                });
                targets.push(Target {
                    label: "postgres ×2",
                    nodes: vec![a.addr, b.addr],
                    fixture,
                });
                pair = Some((a.addr, b.addr));
                held.push((a, dir_a));
                held.push((b, dir_b));
                database = Some(db);
            }
        }
    }

    let outcome = measure(options, &targets, &mut fixtures, &mut report, pair).await;
    for (node, _) in &mut held {
        if !node.alive() {
            eprintln!("nodes: a node exited during the run:\n{}", node.log_tail());
        }
    }
    drop(held);
    if let Some(db) = database {
        db.drop_now().await;
    }
    outcome?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Every scenario on every target (the targets of one scenario back to back, so the
/// ratios compare neighbouring runs on a shared machine), then the staleness run.
async fn measure(
    options: &Options,
    targets: &[Target],
    fixtures: &mut [Fixture],
    report: &mut Report,
    pair: Option<(SocketAddr, SocketAddr)>,
) -> Result<(), String> {
    let connections = options.concurrency;
    for scenario in Scenario::ALL {
        for target in targets {
            let spread = Spread {
                nodes: target.nodes.clone(),
                warmup: options.warmup,
                duration: options.duration,
                request_timeout: REQUEST_TIMEOUT,
                tolerate_lag: scenario == Scenario::Change,
            };
            let measured = fixtures[target.fixture]
                .run(scenario, &spread, connections)
                .await;
            let outcome = &measured.outcome;
            let row = Row {
                target: target.label,
                scenario: scenario.name(),
                concurrency: connections,
                requests_per_second: outcome.requests_per_second(),
                p50_ms: outcome.quantile_ms(0.50),
                p99_ms: outcome.quantile_ms(0.99),
                errors: outcome.errors,
                lagged: measured.lagged,
                answered: measured.answered,
                first_error: outcome.error_samples.first().cloned(),
            };
            eprintln!(
                "  {:<12} {:<8} c={:<3} {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}  lagged {}{}",
                row.target,
                row.scenario,
                row.concurrency,
                row.requests_per_second,
                row.p50_ms,
                row.p99_ms,
                row.errors,
                row.lagged,
                row.first_error
                    .as_ref()
                    .map_or_else(String::new, |e| format!("  (first: {e})"))
            );
            report.rows.push(row);
        }
    }
    if let Some((a, b)) = pair {
        let created = fixture::new_users(a, "stale", 0, 1).await?;
        let access = created
            .into_iter()
            .next()
            .map(|(_, session)| session.access)
            .ok_or("no user for the staleness run")?;
        eprintln!(
            "nodes: cross-node staleness, up to {} writes of each kind ({} s at most each)",
            options.writes,
            options.staleness_budget.as_secs()
        );
        report.staleness =
            Some(staleness::measure(a, b, access, options.writes, options.staleness_budget).await?);
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = options::parse(args.clone()).unwrap_or_else(|err| err.exit());
    let shown: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|arg| *arg != "--bench")
        .collect();
    let command = if shown.is_empty() {
        "cargo bench --bench nodes".to_string()
    } else {
        format!("cargo bench --bench nodes -- {}", shown.join(" "))
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("nodes: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(run(&options, command)) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("nodes: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("\n{}", report.markdown());
    let errors: u64 = report.rows.iter().map(|row| row.errors).sum();
    if errors > 0 {
        eprintln!("nodes: {errors} wrong answers or failed requests (see the errors column)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
