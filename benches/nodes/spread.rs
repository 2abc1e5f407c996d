//! The load generator for one node or several behind it: the load test's flows
//! (`load/flows.rs`), each on its own connection to every node, sending its requests to
//! the nodes in turn (connection `n` starts at node `n mod nodes`), as a round-robin load
//! balancer would. A run is a warm-up, then a measured window; only requests completing
//! inside the window count, every answer is checked.
//!
//! One kind of refusal is counted apart from errors when asked (`change` over several
//! nodes): a token minted by one node's answer, refused a moment later by another node as
//! `token_invalid` ("claims version from the future") because that node has not yet applied the change the token carries (its
//! claims version is "from the future" there). It is a figure of the cluster, not a broken
//! answer, and the report names it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::{timeout, Instant};

use crate::driver::{Flow, Outcome, Rng};
use crate::http::{Conn, Response};

/// Where and for how long.
#[derive(Clone)]
pub struct Spread {
    pub nodes: Vec<SocketAddr>,
    pub warmup: Duration,
    pub duration: Duration,
    pub request_timeout: Duration,
    /// Count `token_invalid` from a node other than the one that answered last as lag.
    pub tolerate_lag: bool,
}

/// What a run measured.
pub struct Measured {
    pub outcome: Outcome,
    /// Refusals of a token another node had just minted (see the module doc), warm-up
    /// included.
    pub lagged: u64,
    /// Successful answers, warm-up included.
    pub answered: u64,
}

fn histogram() -> Histogram<u64> {
    // Fails only for more than 5 significant figures, as the load test's driver says.
    let mut histogram = Histogram::new(3).expect("3 significant figures is valid");
    histogram.auto(true);
    histogram
}

fn empty(window: Duration) -> Outcome {
    Outcome {
        measured: 0,
        window,
        latency: histogram(),
        errors: 0,
        checked: 0,
        error_samples: Vec::new(),
        by_op: BTreeMap::new(),
    }
}

fn note(outcome: &mut Outcome, message: String) {
    outcome.errors += 1;
    if outcome.error_samples.len() < 5 {
        outcome.error_samples.push(message);
    }
}

/// The `code` of a problem+json answer.
pub fn problem_code(response: &Response) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()?
        .get("code")?
        .as_str()
        .map(str::to_string)
}

/// The `detail` claimd gives a token whose claims version is newer than the node's
/// memory of the user (src/auth/verification.rs): the node has not applied that change.
const FROM_THE_FUTURE: &str = "claims version from the future";

/// Whether the answer refuses a token only because this node has not yet applied the
/// change another node's answer carried.
pub fn refused_as_from_the_future(response: &Response) -> bool {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&response.body) else {
        return false;
    };
    response.status == 401
        && body.get("code").and_then(|v| v.as_str()) == Some("token_invalid")
        && body.get("detail").and_then(|v| v.as_str()) == Some(FROM_THE_FUTURE)
}

/// Runs one flow per connection; gives the flows back (chains carry on) with the
/// merged outcome.
pub async fn run<F: Flow>(spread: &Spread, flows: Vec<F>) -> (Measured, Vec<F>) {
    let measure_from = Instant::now() + spread.warmup;
    let until = measure_from + spread.duration;
    let tasks: Vec<_> = flows
        .into_iter()
        .enumerate()
        .map(|(n, flow)| {
            let spread = spread.clone();
            tokio::spawn(async move { connection(spread, flow, n, measure_from, until).await })
        })
        .collect();
    let mut total = Measured {
        outcome: empty(spread.duration),
        lagged: 0,
        answered: 0,
    };
    let mut flows = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok((measured, flow)) => {
                let outcome = measured.outcome;
                total.outcome.measured += outcome.measured;
                let _ = total.outcome.latency.add(&outcome.latency);
                total.outcome.errors += outcome.errors;
                total.outcome.checked += outcome.checked;
                for sample in outcome.error_samples {
                    if total.outcome.error_samples.len() < 5 {
                        total.outcome.error_samples.push(sample);
                    }
                }
                total.lagged += measured.lagged;
                total.answered += measured.answered;
                flows.push(flow);
            }
            Err(err) => note(&mut total.outcome, format!("connection task failed: {err}")),
        }
    }
    (total, flows)
}

async fn connection<F: Flow>(
    spread: Spread,
    mut flow: F,
    n: usize,
    measure_from: Instant,
    until: Instant,
) -> (Measured, F) {
    let nodes = spread.nodes.len().max(1);
    let mut measured = Measured {
        outcome: empty(spread.duration),
        lagged: 0,
        answered: 0,
    };
    let outcome = &mut measured.outcome;
    let mut rng = Rng::new(n as u64 + 1);
    let mut request = Vec::with_capacity(2048);
    let mut conns: Vec<Option<Conn>> = (0..nodes).map(|_| None).collect();
    let mut node = n % nodes;
    let mut last_ok = None;
    while Instant::now() < until {
        let this = node;
        node = (node + 1) % nodes;
        let addr = spread.nodes[this];
        let mut current = match conns[this].take() {
            Some(current) => current,
            None => match timeout(spread.request_timeout, Conn::connect(addr)).await {
                Ok(Ok(fresh)) => fresh,
                Ok(Err(err)) => {
                    note(outcome, format!("connect {addr}: {err}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(_) => {
                    note(outcome, format!("connect {addr} timed out"));
                    continue;
                }
            },
        };
        request.clear();
        let op = flow.next(&mut rng, &mut request);
        let started = Instant::now();
        let answer = timeout(spread.request_timeout, current.exchange(&request)).await;
        let finished = Instant::now();
        outcome.checked += 1;
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                note(outcome, format!("{op}: {err}"));
                continue;
            }
            Err(_) => {
                note(
                    outcome,
                    format!("{op}: no answer within {:?}", spread.request_timeout),
                );
                continue;
            }
        };
        let verdict = flow.check(op, &response);
        if !response.close {
            conns[this] = Some(current);
        }
        if let Err(err) = verdict {
            let lag = spread.tolerate_lag
                && nodes > 1
                && last_ok.is_some_and(|ok| ok != this)
                && refused_as_from_the_future(&response);
            if lag {
                measured.lagged += 1;
            } else {
                note(outcome, format!("{op} on node {}: {err}", this + 1));
            }
            continue;
        }
        last_ok = Some(this);
        measured.answered += 1;
        if finished >= measure_from && finished <= until {
            let micros = u64::try_from(finished.duration_since(started).as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
            let _ = outcome.latency.record(micros);
            outcome.measured += 1;
        }
    }
    (measured, flow)
}
