//! The command line: `cargo bench --bench load -- [options]`. Arguments cargo or
//! criterion-minded tooling add (`--bench`, a positional filter, libtest flags) are
//! ignored; an unknown option is refused with the usage text.

use std::time::Duration;

use crate::scenarios::Scenario;

pub const USAGE: &str = "\
usage: cargo bench --bench load -- [options]
  --scenario NAME     run this scenario (repeatable; default: all of them)
                      verify, introspect, refresh, change, login, mixed,
                      verify-under-login-flood
  --concurrency N     connections (repeatable; default: 1, 32, 128)
  --duration SECS     measured window of each run (default 10; --quick: 2.5)
  --warmup SECS       warm-up before each window (default 2; --quick: 0.75)
  --workers N         server workers, claimd's and the baseline's (default: cores)
  --users N           users registered for verify/introspect/login (default 200)
  --quick             every scenario at concurrency 1 and 32, short windows, and the
                      footprint figures at small sizes (100,000 deny entries, 20 s churn)
  --footprint         measure the footprint figures (default: on)
  --no-footprint      skip them
  --deny-entries N    entries for the start-up figure (default 1,000,000; --quick 100,000)
  --churn SECS        length of the churn run (default 300; --quick 20)
  -h, --help          this text";

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

/// What the command line asked for.
pub enum Parsed {
    Run(Options),
    Help,
}

fn seconds(text: &str, option: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 3600.0 => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "{option}: expected seconds in (0, 3600], got {text:?}"
        )),
    }
}

fn number<T: std::str::FromStr>(text: &str, option: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{option}: expected a number, got {text:?}"))
}

/// Parses the arguments after the program name.
///
/// # Errors
/// An unknown option or a bad value.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut scenarios = Vec::new();
    let mut concurrency = Vec::new();
    let (mut duration, mut warmup, mut workers, mut users) = (None, None, None, 200usize);
    let (mut quick, mut footprint, mut deny_entries, mut churn) = (false, None, None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--scenario" => {
                let text = value()?;
                for part in text.split(',') {
                    let scenario = Scenario::parse(part.trim())
                        .ok_or_else(|| format!("--scenario: no scenario named {part:?}"))?;
                    if !scenarios.contains(&scenario) {
                        scenarios.push(scenario);
                    }
                }
            }
            "--concurrency" => {
                for part in value()?.split(',') {
                    let n: usize = number(part.trim(), "--concurrency")?;
                    if n == 0 || n > 4096 {
                        return Err(format!("--concurrency: expected 1 to 4096, got {n}"));
                    }
                    if !concurrency.contains(&n) {
                        concurrency.push(n);
                    }
                }
            }
            "--duration" => duration = Some(seconds(&value()?, "--duration")?),
            "--warmup" => warmup = Some(seconds(&value()?, "--warmup")?),
            "--workers" => workers = Some(number::<usize>(&value()?, "--workers")?.max(1)),
            "--users" => users = number::<usize>(&value()?, "--users")?.max(1),
            "--quick" => quick = true,
            "--footprint" => footprint = Some(true),
            "--no-footprint" => footprint = Some(false),
            "--deny-entries" => deny_entries = Some(number(&value()?, "--deny-entries")?),
            "--churn" => churn = Some(number::<u64>(&value()?, "--churn")?.max(4)),
            // What cargo bench and libtest-minded tools pass along.
            "--bench" | "--test" | "--nocapture" | "--exact" | "--quiet" | "-q" | "--noplot" => {}
            other if other.starts_with('-') => {
                return Err(format!("unknown option {other}"));
            }
            _ => {} // a positional filter: there is nothing to filter by name
        }
    }
    if scenarios.is_empty() {
        scenarios = Scenario::ALL.to_vec();
    }
    if concurrency.is_empty() {
        concurrency = if quick { vec![1, 32] } else { vec![1, 32, 128] };
    }
    Ok(Parsed::Run(Options {
        scenarios,
        concurrency,
        duration: duration.unwrap_or(Duration::from_secs_f64(if quick { 2.5 } else { 10.0 })),
        warmup: warmup.unwrap_or(Duration::from_secs_f64(if quick { 0.75 } else { 2.0 })),
        workers,
        users,
        quick,
        footprint: footprint.unwrap_or(true),
        deny_entries: deny_entries.unwrap_or(if quick { 100_000 } else { 1_000_000 }),
        churn_seconds: churn.unwrap_or(if quick { 20 } else { 300 }),
    }))
}
