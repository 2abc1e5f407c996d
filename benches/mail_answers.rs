//! `cargo bench --bench mail_answers`: whether the answer to "mail a link to this address"
//! (`POST /auth/password/forgot`, `POST /auth/magic-link`) tells a known address from an
//! unknown one by its timing (issue 21). The real `claimd` binary runs on loopback with
//! the `outbox` transport (so the sender really writes each mail while the run goes on);
//! one client asks, one request at a time, for a known address, an unknown one and a
//! second unknown one (the control) in a shuffled order, `--rounds` triples (default 300;
//! `--quick` 40), alternating the two purposes. claimd does the same store round trips and a durable flush for both, and
//! answers neither before its 200 ms floor.
//!
//! Printed, side by side from the one run: each kind's latency quantiles, the ratio and
//! difference of the medians, and the two-sample Kolmogorov–Smirnov distance between known
//! and unknown with its 5 % critical value (a distance below it: no difference this many
//! samples can tell); the same for unknown against the control, whose requests take the
//! very same path, to show what the harness and the machine alone make of two samples.
//! Not judged: the machines are shared and noisy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::disallowed_methods,
    clippy::cast_precision_loss,
    reason = "a benchmark's harness stops at the first surprise and measures real time"
)]

#[path = "load/server.rs"]
#[allow(dead_code)]
mod server;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::seq::SliceRandom as _;
use serde_json::json;
use server::Claimd;

const PASSWORD: &str = "mail answers bench passphrase";
/// Accounts with an address: the known requests cycle through them.
const KNOWN_ACCOUNTS: usize = 20;

/// Known and unknown addresses, side by side.
#[derive(Parser)]
#[command(
    name = "mail_answers",
    override_usage = "cargo bench --bench mail_answers -- [OPTIONS]",
    disable_version_flag = true
)]
struct Options {
    /// Triples of requests: a known address, an unknown one, a control (default 300; --quick 40)
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Known,
    Unknown,
    /// Another unknown address: the same path as `Unknown`.
    Control,
}

/// Latencies in microseconds, sorted.
struct Sample(Vec<u64>);

impl Sample {
    fn new(mut micros: Vec<u64>) -> Sample {
        micros.sort_unstable();
        Sample(micros)
    }

    fn quantile(&self, q: f64) -> f64 {
        let index = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        self.0[index] as f64 / 1000.0
    }

    fn mean(&self) -> f64 {
        self.0.iter().sum::<u64>() as f64 / self.0.len() as f64 / 1000.0
    }

    /// The share of the sample at or below `micros`.
    fn cdf(&self, micros: u64) -> f64 {
        self.0.partition_point(|m| *m <= micros) as f64 / self.0.len() as f64
    }

    fn print(&self, what: &str) {
        println!(
            "  {what:<18} n={:<4} min {:>7.2}  p50 {:>7.2}  p90 {:>7.2}  p99 {:>7.2}  max {:>7.2}  mean {:>7.2} (ms)",
            self.0.len(),
            self.quantile(0.0),
            self.quantile(0.5),
            self.quantile(0.9),
            self.quantile(0.99),
            self.quantile(1.0),
            self.mean(),
        );
    }
}

/// The two-sample Kolmogorov–Smirnov distance: the largest gap between the two empirical
/// distribution functions.
fn ks_distance(a: &Sample, b: &Sample) -> f64 {
    a.0.iter()
        .chain(&b.0)
        .map(|m| (a.cdf(*m) - b.cdf(*m)).abs())
        .fold(0.0, f64::max)
}

/// The distance two samples of these sizes stay under, 95 % of the time, when they come
/// from one distribution.
fn ks_critical_5pct(n: usize, m: usize) -> f64 {
    let (n, m) = (n as f64, m as f64);
    1.358 * ((n + m) / (n * m)).sqrt()
}

/// The two samples' medians side by side, and whether their distributions differ.
fn compare(what: &str, a: &Sample, b: &Sample) {
    let distance = ks_distance(a, b);
    let critical = ks_critical_5pct(a.0.len(), b.0.len());
    println!(
        "  {what:<18} median ratio {:.4} (difference {:+.3} ms); Kolmogorov–Smirnov \
         distance {distance:.3}, 5 % critical value {critical:.3}: {}",
        a.quantile(0.5) / b.quantile(0.5),
        a.quantile(0.5) - b.quantile(0.5),
        if distance < critical {
            "no difference this run can tell"
        } else {
            "they differ"
        },
    );
}

async fn run(rounds: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).map_err(|err| err.to_string())?;
    let server = Claimd::start_with(
        &data,
        2,
        false,
        &[
            ("CLAIMD__MAIL__TRANSPORT", "outbox"),
            // Every request from one client, many to one address: no limit may answer.
            ("CLAIMD__AUTH__MAIL_LIMIT", "1000000/1s"),
        ],
    )?;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    for n in 0..KNOWN_ACCOUNTS {
        let response = client
            .post(format!("{base}/auth/register"))
            .json(
                &json!({"username": format!("known{n}"), "password": PASSWORD,
                          "email": format!("known{n}@example.org")}),
            )
            .send()
            .await
            .map_err(|err| err.to_string())?;
        if response.status().as_u16() != 201 {
            return Err(format!("register answered {}", response.status()));
        }
    }

    let mut order: Vec<Kind> = (0..rounds)
        .flat_map(|_| [Kind::Known, Kind::Unknown, Kind::Control])
        .collect();
    order.shuffle(&mut rand::thread_rng());
    let (mut known, mut unknown, mut control) = (Vec::new(), Vec::new(), Vec::new());
    let mut bodies = std::collections::BTreeSet::new();
    for (n, kind) in order.into_iter().enumerate() {
        let email = match kind {
            Kind::Known => format!("known{}@example.org", n % KNOWN_ACCOUNTS),
            Kind::Unknown | Kind::Control => format!("nobody{n}@example.org"),
        };
        let path = if n % 2 == 0 {
            "/auth/password/forgot"
        } else {
            "/auth/magic-link"
        };
        let started = Instant::now();
        let response = client
            .post(format!("{base}{path}"))
            .json(&json!({ "email": email }))
            .send()
            .await
            .map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|err| err.to_string())?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if status != 202 {
            return Err(format!("{path} answered {status}: {body}"));
        }
        bodies.insert(body);
        match kind {
            Kind::Known => known.push(micros),
            Kind::Unknown => unknown.push(micros),
            Kind::Control => control.push(micros),
        }
    }
    // The mails for the known addresses were really written meanwhile: count the outbox
    // once it has stopped growing for a second (or after 30 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let outbox = data.join("outbox");
    let count = || std::fs::read_dir(&outbox).map_or(0, Iterator::count);
    let mut written = count();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = count();
        if now == written || Instant::now() > deadline {
            break;
        }
        written = now;
    }

    let (known, unknown, control) = (
        Sample::new(known),
        Sample::new(unknown),
        Sample::new(control),
    );
    println!(
        "mail_answers: POST /auth/password/forgot and /auth/magic-link, known vs unknown \
         address, shuffled, sequential, loopback, sled, outbox transport"
    );
    known.print("known address");
    unknown.print("unknown address");
    control.print("control (unknown)");
    compare("known / unknown", &known, &unknown);
    compare("control / unknown", &control, &unknown);
    println!(
        "  answer bodies seen: {} distinct; mails the sender wrote to the outbox meanwhile: {written}",
        bodies.len()
    );
    drop(server);
    Ok(())
}

fn main() -> ExitCode {
    let options = Options::parse();
    let rounds = options
        .rounds
        .unwrap_or(if options.quick { 40 } else { 300 });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mail_answers: no runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(rounds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mail_answers: {err}");
            ExitCode::FAILURE
        }
    }
}
