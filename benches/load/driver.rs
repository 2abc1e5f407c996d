//! The load generator: N keep-alive connections, each driven by its own [`Flow`] (what to
//! send next, and whether an answer is right). A run is a warm-up, then a measured window
//! of fixed length; the requests that *complete* inside the window count towards
//! throughput and latency, so long queued requests (login at high concurrency) that
//! straddle its edges bias neither. Every answer, warm-up included, is checked. Every loop ends: no request starts
//! after the window, and each one is bounded by a timeout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::{timeout, Instant};

use crate::http::{Conn, Response};

/// What one connection sends, and how it checks the answers.
pub trait Flow: Send + 'static {
    /// Writes the next request into `out` (empty on entry) and names its operation.
    fn next(&mut self, rng: &mut Rng, out: &mut Vec<u8>) -> &'static str;
    /// Checks the answer to the request `next` just wrote, and takes what the flow
    /// carries on with (a rotated refresh token, a refreshed access token).
    ///
    /// # Errors
    /// A description of what was wrong, counted as an error.
    fn check(&mut self, op: &'static str, response: &Response) -> Result<(), String>;
}

/// A small xorshift generator: the choices a flow makes need no more than this.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// When and where a run happens.
#[derive(Clone, Copy)]
pub struct Plan {
    pub addr: SocketAddr,
    pub warmup: Duration,
    pub duration: Duration,
    /// Longest a single request may take before it counts as an error.
    pub request_timeout: Duration,
}

/// What a run measured.
pub struct Outcome {
    /// Requests completed inside the measured window.
    pub measured: u64,
    pub window: Duration,
    /// Latency of the measured requests, in microseconds.
    pub latency: Histogram<u64>,
    /// Wrong answers, failed connections and timeouts, warm-up included.
    pub errors: u64,
    /// Answers checked, warm-up included.
    pub checked: u64,
    /// A few error descriptions, for the report.
    pub error_samples: Vec<String>,
    /// Latency of the measured requests by operation (for `mixed`), in microseconds.
    pub by_op: BTreeMap<&'static str, Histogram<u64>>,
}

impl Outcome {
    fn empty(window: Duration) -> Outcome {
        Outcome {
            measured: 0,
            window,
            latency: new_histogram(),
            errors: 0,
            checked: 0,
            error_samples: Vec::new(),
            by_op: BTreeMap::new(),
        }
    }

    pub fn requests_per_second(&self) -> f64 {
        self.measured as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// A latency quantile in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    fn merge(&mut self, other: Outcome) {
        self.measured += other.measured;
        // Both histograms auto-resize, so adding cannot fail on range.
        let _ = self.latency.add(&other.latency);
        self.errors += other.errors;
        self.checked += other.checked;
        for sample in other.error_samples {
            if self.error_samples.len() < 5 {
                self.error_samples.push(sample);
            }
        }
        for (op, latency) in other.by_op {
            let _ = self
                .by_op
                .entry(op)
                .or_insert_with(new_histogram)
                .add(&latency);
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    let mut histogram = Histogram::new(3).expect("3 significant figures is valid");
    histogram.auto(true);
    histogram
}

fn note(outcome: &mut Outcome, message: String) {
    outcome.errors += 1;
    if outcome.error_samples.len() < 5 {
        outcome.error_samples.push(message);
    }
}

/// Runs one flow per connection for the plan's warm-up and window; gives the flows back
/// (so chains carry on at the next concurrency) with the merged outcome.
pub async fn run<F: Flow>(plan: Plan, flows: Vec<F>) -> (Outcome, Vec<F>) {
    let measure_from = Instant::now() + plan.warmup;
    let until = measure_from + plan.duration;
    let tasks: Vec<_> = flows
        .into_iter()
        .enumerate()
        .map(|(n, flow)| tokio::spawn(connection(plan, flow, n as u64, measure_from, until)))
        .collect();
    let mut total = Outcome::empty(plan.duration);
    let mut flows = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok((outcome, flow)) => {
                total.merge(outcome);
                flows.push(flow);
            }
            Err(err) => {
                total.errors += 1;
                total
                    .error_samples
                    .push(format!("connection task failed: {err}"));
            }
        }
    }
    (total, flows)
}

async fn connection<F: Flow>(
    plan: Plan,
    mut flow: F,
    seed: u64,
    measure_from: Instant,
    until: Instant,
) -> (Outcome, F) {
    let mut outcome = Outcome::empty(plan.duration);
    let mut rng = Rng::new(seed + 1);
    let mut request = Vec::with_capacity(2048);
    let mut conn: Option<Conn> = None;
    while Instant::now() < until {
        let mut current = match conn.take() {
            Some(current) => current,
            None => match timeout(plan.request_timeout, Conn::connect(plan.addr)).await {
                Ok(Ok(fresh)) => fresh,
                Ok(Err(err)) => {
                    note(&mut outcome, format!("connect: {err}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(_) => {
                    note(&mut outcome, "connect timed out".into());
                    continue;
                }
            },
        };
        request.clear();
        let op = flow.next(&mut rng, &mut request);
        let started = Instant::now();
        let answer = timeout(plan.request_timeout, current.exchange(&request)).await;
        let finished = Instant::now();
        outcome.checked += 1;
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                note(&mut outcome, format!("{op}: {err}"));
                continue;
            }
            Err(_) => {
                note(
                    &mut outcome,
                    format!("{op}: no answer within {:?}", plan.request_timeout),
                );
                continue;
            }
        };
        let verdict = flow.check(op, &response);
        if !response.close {
            conn = Some(current);
        }
        if let Err(err) = verdict {
            note(&mut outcome, format!("{op}: {err}"));
            continue;
        }
        if finished >= measure_from && finished <= until {
            let micros = u64::try_from(finished.duration_since(started).as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
            let _ = outcome.latency.record(micros);
            outcome.measured += 1;
            let _ = outcome
                .by_op
                .entry(op)
                .or_insert_with(new_histogram)
                .record(micros);
        }
    }
    (outcome, flow)
}
