//! The command line: `cargo bench --bench load -- [options]`, parsed by clap. Arguments
//! cargo or libtest-minded tooling add (`--bench`, a positional filter, `--nocapture`...)
//! are accepted and ignored; an unknown option is refused with the usage text (exit 2).

use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::Parser;

use crate::scenarios::Scenario;

/// The HTTP load test: the real claimd against a bare actix-web baseline.
#[derive(Parser, Debug)]
#[command(
    name = "load",
    override_usage = "cargo bench --bench load -- [OPTIONS]",
    disable_version_flag = true
)]
struct Args {
    /// Run this scenario (repeatable or comma-separated; default: all of them): verify,
    /// introspect, refresh, change, login, mixed, verify-under-login-flood
    #[arg(long = "scenario", value_name = "NAME", value_delimiter = ',', value_parser = scenario)]
    scenarios: Vec<Scenario>,
    /// Connections (repeatable or comma-separated; default: 1, 32, 128; --quick: 1, 32)
    #[arg(
        long,
        value_name = "N",
        value_delimiter = ',',
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=4096)
    )]
    concurrency: Vec<usize>,
    /// Measured window of each run, in seconds (default 10; --quick 2.5)
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    duration: Option<Duration>,
    /// Warm-up before each window, in seconds (default 2; --quick 0.75)
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    warmup: Option<Duration>,
    /// Server workers, claimd's and the baseline's (default: cores)
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Users registered for verify/introspect/login
    #[arg(long, value_name = "N", default_value_t = 200)]
    users: usize,
    /// Every scenario at concurrency 1 and 32, short windows, and the footprint figures
    /// at small sizes (100,000 deny entries, 20 s churn)
    #[arg(long)]
    quick: bool,
    /// Measure the footprint figures (the default)
    #[arg(long, overrides_with = "no_footprint")]
    footprint: bool,
    /// Skip the footprint figures
    #[arg(long, overrides_with = "footprint")]
    no_footprint: bool,
    /// Entries for the start-up figure (default 1,000,000; --quick 100,000)
    #[arg(long, value_name = "N")]
    deny_entries: Option<u64>,
    /// Length of the churn run, in seconds (default 300; --quick 20)
    #[arg(long, value_name = "SECS")]
    churn: Option<u64>,
    /// What cargo bench and libtest-minded tools pass along: accepted, ignored.
    #[arg(long, hide = true)]
    bench: bool,
    #[arg(long, hide = true)]
    test: bool,
    #[arg(long, hide = true)]
    nocapture: bool,
    #[arg(long, hide = true)]
    exact: bool,
    #[arg(long, short = 'q', hide = true)]
    quiet: bool,
    #[arg(long, hide = true)]
    noplot: bool,
    /// A positional filter: there is nothing to filter by name.
    #[arg(hide = true)]
    filter: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub scenarios: Vec<Scenario>,
    pub concurrency: Vec<usize>,
    pub duration: Duration,
    pub warmup: Duration,
    pub workers: Option<usize>,
    pub users: usize,
    pub quick: bool,
    pub footprint: bool,
    pub deny_entries: u64,
    pub churn_seconds: u64,
}

fn scenario(text: &str) -> Result<Scenario, String> {
    Scenario::parse(text.trim()).ok_or_else(|| format!("no scenario named {text:?}"))
}

fn seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 3600.0 => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("expected seconds in (0, 3600], got {text:?}")),
    }
}

/// Keeps the first of each value, in order.
fn distinct<T: PartialEq>(values: Vec<T>) -> Vec<T> {
    let mut kept = Vec::with_capacity(values.len());
    for value in values {
        if !kept.contains(&value) {
            kept.push(value);
        }
    }
    kept
}

/// Parses the arguments after the program name.
///
/// # Errors
/// An unknown option or a bad value; `--help`, as clap's error of that kind (its `exit`
/// prints the help and exits 0).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, clap::Error> {
    let program = std::iter::once("load".to_string());
    let args = Args::try_parse_from(program.chain(args))?;
    let quick = args.quick;
    let mut scenarios = distinct(args.scenarios);
    if scenarios.is_empty() {
        scenarios = Scenario::ALL.to_vec();
    }
    let mut concurrency = distinct(args.concurrency);
    if concurrency.is_empty() {
        concurrency = if quick { vec![1, 32] } else { vec![1, 32, 128] };
    }
    Ok(Options {
        scenarios,
        concurrency,
        duration: args
            .duration
            .unwrap_or(Duration::from_secs_f64(if quick { 2.5 } else { 10.0 })),
        warmup: args
            .warmup
            .unwrap_or(Duration::from_secs_f64(if quick { 0.75 } else { 2.0 })),
        workers: args.workers.map(|n| n.max(1)),
        users: args.users.max(1),
        quick,
        footprint: !args.no_footprint,
        deny_entries: args
            .deny_entries
            .unwrap_or(if quick { 100_000 } else { 1_000_000 }),
        churn_seconds: args.churn.unwrap_or(if quick { 20 } else { 300 }).max(4),
    })
}
