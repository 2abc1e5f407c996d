//! The command line: `cargo bench --bench nodes -- [options]`, parsed by clap. What cargo
//! bench passes along (`--bench`, a positional filter) is accepted and ignored.

use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Parser, ValueEnum};

/// Which backends a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backends {
    Sled,
    Postgres,
    Both,
}

impl Backends {
    pub fn sled(self) -> bool {
        matches!(self, Backends::Sled | Backends::Both)
    }

    pub fn postgres(self) -> bool {
        matches!(self, Backends::Postgres | Backends::Both)
    }
}

/// claimd on sled and on PostgreSQL (one node and two), side by side.
#[derive(Parser, Debug)]
#[command(
    name = "nodes",
    override_usage = "cargo bench --bench nodes -- [OPTIONS]",
    disable_version_flag = true
)]
struct Args {
    /// Which backends to measure
    #[arg(long, value_enum, default_value_t = Backends::Both)]
    backend: Backends,
    /// Connections of every load run (default 32)
    #[arg(
        long,
        value_name = "N",
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024)
    )]
    concurrency: Option<usize>,
    /// Measured window of each run, in seconds (default 10; --quick 1.5)
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    duration: Option<Duration>,
    /// Warm-up before each window, in seconds (default 2; --quick 0.5)
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    warmup: Option<Duration>,
    /// Writes of each kind timed from node A's answer to node B's refusal (default 1000;
    /// --quick: as many as fit in 8 s, at most 1000)
    #[arg(long, value_name = "N")]
    writes: Option<usize>,
    /// Users registered for verify and login (default 100; --quick 40)
    #[arg(long, value_name = "N")]
    users: Option<usize>,
    /// Short windows and a time-bounded staleness run: the whole run in about a minute
    #[arg(long)]
    quick: bool,
    /// Passed by `cargo bench`: accepted, ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// A positional filter: there is nothing to filter by name.
    #[arg(hide = true)]
    filter: Vec<String>,
}

/// The run's settings, defaults applied.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backends,
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub writes: usize,
    /// How long the staleness run may take for each kind of write.
    pub staleness_budget: Duration,
    pub users: usize,
}

fn seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 600.0 => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("expected seconds in (0, 600], got {text:?}")),
    }
}

/// Parses the arguments after the program name.
///
/// # Errors
/// An unknown option or a bad value; `--help`, as clap's error of that kind.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, clap::Error> {
    let program = std::iter::once("nodes".to_string());
    let args = Args::try_parse_from(program.chain(args))?;
    let quick = args.quick;
    Ok(Options {
        backend: args.backend,
        concurrency: args.concurrency.unwrap_or(32),
        duration: args
            .duration
            .unwrap_or(Duration::from_secs_f64(if quick { 1.5 } else { 10.0 })),
        warmup: args
            .warmup
            .unwrap_or(Duration::from_secs_f64(if quick { 0.5 } else { 2.0 })),
        writes: args.writes.unwrap_or(1000).max(1),
        staleness_budget: Duration::from_secs(if quick { 4 } else { 120 }),
        users: args.users.unwrap_or(if quick { 40 } else { 100 }).max(1),
    })
}
