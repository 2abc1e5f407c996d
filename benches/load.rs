//! `cargo bench --bench load`: the HTTP load test of issue 5. It starts the real `claimd`
//! binary (built by cargo in the bench profile) on loopback with a temporary data dir, and
//! a bare actix-web server in this process with the same worker count as the baseline;
//! drives both with the load generator here; checks every answer; and reports requests/s
//! (also as a ratio to the baseline at the same concurrency), latency quantiles, errors and
//! the server's RSS, then the footprint figures. Results are printed as Markdown and
//! written to `target/claimd-bench/` (`results.md`, `results.json`, `results.svg`). Any
//! wrong answer makes the run exit non-zero. `--help` lists the options.
//!
//! # Layout
//!
//! - `options`: the command line.
//! - `http`: the hand-written HTTP/1.1 keep-alive client.
//! - `driver`: connections, warm-up, measured window, latency histograms.
//! - `flows`: each scenario's requests and the answers it accepts.
//! - `fixture`: users, sessions and the service credential, made through the API.
//! - `scenarios`: the scenarios and the state they share on one server.
//! - `server`: the claimd child process, the baseline server, `/proc` and `du` figures.
//! - `footprint`: the argon2 bound, start-up with a large deny list, churn.
//! - `report` and `chart`: Markdown, JSON and SVG.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::disallowed_methods,
    reason = "a benchmark's harness stops at the first surprise and measures real time"
)]

#[path = "load/chart.rs"]
mod chart;
#[path = "load/driver.rs"]
mod driver;
#[path = "load/fixture.rs"]
mod fixture;
#[path = "load/flows.rs"]
mod flows;
#[path = "load/footprint.rs"]
mod footprint;
#[path = "load/http.rs"]
mod http;
#[path = "load/options.rs"]
mod options;
#[path = "load/report.rs"]
mod report;
#[path = "load/scenarios.rs"]
mod scenarios;
#[path = "load/server.rs"]
mod server;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use driver::{Outcome, Plan};
use options::Options;
use report::{Footprint, Report, Row, VerifyWithDenyList};
use scenarios::{Bench, Scenario};
use server::{Baseline, Claimd};

/// Longest a single request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--help` and refused arguments end here (clap prints them; exit 0 and 2).
    let options = options::parse(args.clone()).unwrap_or_else(|err| err.exit());
    let shown: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|arg| *arg != "--bench")
        .collect();
    let command = format!("cargo bench --bench load -- {}", shown.join(" "));
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("load: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let mut report = match runtime.block_on(run(&options, cores, command)) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("load: {err}");
            return ExitCode::FAILURE;
        }
    };
    report.total_seconds = started.elapsed().as_secs_f64();
    println!("\n{}", report.markdown());
    match report.write(&report::target_dir().join("claimd-bench")) {
        Ok(files) => {
            for file in files {
                println!("wrote {}", file.display());
            }
        }
        Err(err) => {
            eprintln!("load: {err}");
            return ExitCode::FAILURE;
        }
    }
    if report.errors > 0 {
        eprintln!(
            "load: {} wrong answers or failed requests (see the errors column)",
            report.errors
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Sends `GET path` until one answers 200 (bounded: 30 s).
///
/// # Errors
/// No 200 in time.
pub(crate) async fn first_answer(addr: SocketAddr, path: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut request = Vec::new();
    http::write_request(&mut request, "GET", path, &[], None);
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
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(format!("GET {path} never answered 200: {last}"))
}

fn baseline_flows(connections: usize) -> Vec<flows::Baseline> {
    (0..connections).map(|_| flows::Baseline).collect()
}

fn row(scenario: &str, concurrency: usize, outcome: &Outcome, baseline: Option<f64>) -> Row {
    let rps = outcome.requests_per_second();
    Row {
        scenario: scenario.into(),
        concurrency,
        requests_per_second: rps,
        ratio_to_baseline: baseline.filter(|b| *b > 0.0).map(|b| rps / b),
        baseline_requests_per_second: None,
        p50_ms: outcome.quantile_ms(0.50),
        p99_ms: outcome.quantile_ms(0.99),
        p999_ms: outcome.quantile_ms(0.999),
        requests: outcome.measured,
        errors: outcome.errors,
        error_samples: outcome.error_samples.clone(),
        server_rss_bytes: None,
        server_peak_rss_bytes: None,
        p99_without_flood_ms: None,
        notes: Vec::new(),
    }
}

fn progress(row: &Row) {
    eprintln!(
        "  {:<26} c={:<4} {:>9.0} req/s  p50 {:.2} ms  p99 {:.2} ms  errors {}{}",
        row.scenario,
        row.concurrency,
        row.requests_per_second,
        row.p50_ms,
        row.p99_ms,
        row.errors,
        row.error_samples
            .first()
            .map_or_else(String::new, |e| format!("  (first: {e})"))
    );
}

async fn run(options: &Options, cores: usize, command: String) -> Result<Report, String> {
    let workers = options.workers.unwrap_or(cores);
    let mut footprint = Footprint {
        binary_bytes: std::fs::metadata(env!("CARGO_BIN_EXE_claimd"))
            .map(|m| m.len())
            .ok(),
        edge_binary_bytes: footprint::edge_binary_bytes(),
        ..Footprint::default()
    };
    if footprint.edge_binary_bytes.is_none() {
        footprint.notes.push(format!(
            "the sled-only binary was not measured: build it first with `{}`",
            footprint::EDGE_BUILD
        ));
    }
    let argon2 = tokio::task::spawn_blocking(move || footprint::argon2_bound(cores))
        .await
        .map_err(|err| format!("argon2 task: {err}"))??;
    eprintln!(
        "load: {cores} cores, {workers} workers; one argon2id hash {:.1} ms",
        argon2.hash_ms
    );

    let data = tempfile::Builder::new()
        .prefix("claimd-bench-")
        .tempdir()
        .map_err(|err| format!("temp dir: {err}"))?;
    footprint.idle_rss_bytes = footprint::idle_rss(workers).await?;
    let mut claimd = Claimd::start(data.path(), workers, true)?;
    first_answer(claimd.addr, "/healthz").await?;
    footprint.empty_startup_ms = Some(claimd.started_in.as_secs_f64() * 1000.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    footprint.idle_rss_bootstrap_bytes = claimd.rss_bytes();
    let baseline = Baseline::start(workers)?;

    let set_up = Instant::now();
    let mut bench = Bench::set_up(claimd.addr, options.users).await?;
    eprintln!(
        "load: registered {} users with a session each in {:.1} s",
        options.users,
        set_up.elapsed().as_secs_f64()
    );
    let plan = |addr| Plan {
        addr,
        warmup: options.warmup,
        duration: options.duration,
        request_timeout: REQUEST_TIMEOUT,
    };

    let mut rows = Vec::new();
    for &connections in &options.concurrency {
        let (outcome, _) = driver::run(plan(baseline.addr), baseline_flows(connections)).await;
        let row = row("baseline (bare actix-web)", connections, &outcome, None);
        progress(&row);
        rows.push(row);
    }
    // The ratio's denominator is a short baseline run just before each row: the machine
    // is shared, and a baseline from minutes earlier may have seen other load.
    let paired = Plan {
        addr: baseline.addr,
        warmup: Duration::from_millis(250),
        duration: options.duration.min(Duration::from_millis(1500)),
        request_timeout: REQUEST_TIMEOUT,
    };
    for &scenario in &options.scenarios {
        for &connections in &options.concurrency {
            let (base, _) = driver::run(paired, baseline_flows(connections)).await;
            // Measured again just before, in the same conditions.
            let bound = if scenario == Scenario::Login {
                tokio::task::spawn_blocking(move || footprint::argon2_bound(cores))
                    .await
                    .map_err(|err| format!("argon2 task: {err}"))??
            } else {
                argon2
            };
            // The peak is of the load itself, not of the logins that set up its sessions.
            bench.ensure_chains(scenario, connections).await?;
            // The hashing threads give their work areas back as their queue empties.
            tokio::time::sleep(Duration::from_millis(200)).await;
            claimd.reset_peak_rss();
            let measured = bench.run(scenario, connections, plan(claimd.addr)).await?;
            let peak_rss = claimd.peak_rss_bytes();
            let base_rps = base.requests_per_second();
            let mut row = row(
                scenario.name(),
                connections,
                &measured.outcome,
                Some(base_rps),
            );
            row.baseline_requests_per_second = Some(base_rps);
            row.errors += base.errors;
            row.error_samples.extend(base.error_samples);
            row.server_rss_bytes = claimd.rss_bytes();
            row.server_peak_rss_bytes = peak_rss;
            row.notes = measured.notes;
            row.p99_without_flood_ms = measured.flood_p99.map(|(without, _)| without);
            if let (Scenario::Login, Some(logins)) = (scenario, measured.logins_per_second) {
                row.notes.push(format!(
                    "{:.2}× the argon2 bound ({:.1} login/s: one hash {:.1} ms just before; \
                     {:.1} hashes/s on {cores} threads in-process)",
                    logins / bound.logins_per_second,
                    bound.logins_per_second,
                    bound.hash_ms,
                    bound.parallel_per_second
                ));
            }
            progress(&row);
            for note in &row.notes {
                eprintln!("      {note}");
            }
            rows.push(row);
            if !claimd.alive() {
                return Err(format!(
                    "claimd exited during {}:\n{}",
                    scenario.name(),
                    claimd.log_tail()
                ));
            }
        }
    }
    drop(baseline);
    drop(claimd);
    drop(data);

    if options.footprint {
        measure_footprint(options, workers, cores, &mut footprint).await?;
    }
    let errors = rows.iter().map(|r| r.errors).sum();
    Ok(Report {
        command,
        cores,
        workers,
        quick: options.quick,
        warmup_seconds: options.warmup.as_secs_f64(),
        duration_seconds: options.duration.as_secs_f64(),
        argon2: Some(argon2),
        rows,
        footprint,
        total_seconds: 0.0,
        errors,
    })
}

async fn measure_footprint(
    options: &Options,
    workers: usize,
    cores: usize,
    footprint: &mut Footprint,
) -> Result<(), String> {
    eprintln!(
        "load: filling a store with {} deny entries",
        options.deny_entries
    );
    let (large, filled) = footprint::large_deny_list(options.deny_entries, workers, cores).await?;
    eprintln!(
        "load: start-up with {} deny entries: {:.0} ms",
        large.entries, large.startup_ms
    );
    let compared = verify_with_deny_list(options, workers, filled.path(), large.entries).await?;
    eprintln!(
        "load: verify with {} deny entries {:.0} req/s vs empty {:.0} req/s = {:.2}x",
        compared.entries,
        compared.filled_requests_per_second,
        compared.empty_requests_per_second,
        compared.ratio
    );
    footprint.verify_with_deny_list = Some(compared);
    drop(filled);
    if options.deny_entries < 1_000_000 {
        footprint.notes.push(format!(
            "the deny-list start-up figure used {} entries (not 1,000,000){}",
            options.deny_entries,
            if options.quick { ": --quick" } else { "" }
        ));
    }
    footprint.large_deny_list = Some(large);
    let seconds = options.churn_seconds;
    let sample_every = if seconds <= 30 { 2 } else { 10 };
    eprintln!("load: churning the deny list for {seconds} s");
    let churn =
        tokio::task::spawn_blocking(move || footprint::churn(seconds, 5000, 5, sample_every))
            .await
            .map_err(|err| format!("churn task: {err}"))??;
    footprint.churn = Some(churn);
    Ok(())
}

/// `verify` at concurrency 32 on the filled store and on an empty one, both servers up
/// and set up like the main run's, measured alternately twice (the machine is shared:
/// alternating spreads whatever else runs over both); the best of each is compared.
async fn verify_with_deny_list(
    options: &Options,
    workers: usize,
    filled: &std::path::Path,
    entries: u64,
) -> Result<VerifyWithDenyList, String> {
    const CONNECTIONS: usize = 32;
    let empty = tempfile::Builder::new()
        .prefix("claimd-bench-empty-")
        .tempdir()
        .map_err(|err| format!("temp dir: {err}"))?;
    let mut servers = Vec::new();
    for dir in [empty.path(), filled] {
        let claimd = Claimd::start(dir, workers, true)?;
        first_answer(claimd.addr, "/healthz").await?;
        let bench = Bench::set_up(claimd.addr, options.users).await?;
        servers.push((claimd, bench));
    }
    let mut best = [(0.0f64, 0.0f64); 2];
    for _round in 0..2 {
        for (slot, (claimd, bench)) in servers.iter_mut().enumerate() {
            let plan = Plan {
                addr: claimd.addr,
                warmup: options.warmup,
                duration: options.duration,
                request_timeout: REQUEST_TIMEOUT,
            };
            let measured = bench.run(Scenario::Verify, CONNECTIONS, plan).await?;
            if measured.outcome.errors > 0 {
                return Err(format!(
                    "verify against the deny list: {} wrong answers (first: {})",
                    measured.outcome.errors,
                    measured
                        .outcome
                        .error_samples
                        .first()
                        .cloned()
                        .unwrap_or_default()
                ));
            }
            let rps = measured.outcome.requests_per_second();
            if rps > best[slot].0 {
                best[slot] = (rps, measured.outcome.quantile_ms(0.99));
            }
        }
    }
    drop(servers);
    let [(empty_rps, empty_p99), (filled_rps, filled_p99)] = best;
    Ok(VerifyWithDenyList {
        entries,
        concurrency: CONNECTIONS,
        empty_requests_per_second: empty_rps,
        filled_requests_per_second: filled_rps,
        empty_p99_ms: empty_p99,
        filled_p99_ms: filled_p99,
        ratio: if empty_rps > 0.0 {
            filled_rps / empty_rps
        } else {
            0.0
        },
    })
}
