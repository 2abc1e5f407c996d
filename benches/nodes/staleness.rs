//! Cross-node staleness: a write acknowledged by node A, and how long node B goes on
//! accepting the token that write made stale or revoked. One client, one write at a
//! time: the token is first seen accepted on B, the write is sent to A, and from the
//! moment A's answer is read B is asked `GET /verify` with the old token back to back
//! until it refuses (`token_stale` after a claim change, `token_revoked` after a
//! revocation). The time from A's answer to B's first refusal is recorded; its
//! resolution is one `GET /verify` round trip on loopback.
//!
//! Claim changes also give the other direction: the token A's answer carries is, for a
//! moment, newer than B's memory of the user (B refuses it as `token_invalid`, a claims
//! version "from the future"); the time until B first accepts it is recorded too.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::time::{timeout, Instant};

use crate::http::{write_request, Conn, Response};
use crate::server::CHANGE_PLANS;
use crate::spread::{problem_code, refused_as_from_the_future};

/// The verdict on a token whose claims version the node has not applied yet.
const FUTURE: &str = "token_invalid (claims version from the future)";

/// Longest B may take to refuse (or accept) before the write counts as a failure.
const WAIT: Duration = Duration::from_secs(5);
/// Longest one request may take.
const REQUEST: Duration = Duration::from_secs(10);

/// One kind of write's figures, in microseconds.
#[derive(Default)]
pub struct Series {
    /// From A's answer to B's first refusal of the old token.
    pub refused_after: Vec<u64>,
    /// From A's answer to B's first acceptance of the token it minted (claim changes).
    pub accepted_after: Vec<u64>,
}

/// Both kinds.
pub struct Staleness {
    pub claim_changes: Series,
    pub revocations: Series,
}

/// A keep-alive connection to one node, opened again when the server closes it.
struct Node {
    addr: SocketAddr,
    conn: Option<Conn>,
}

impl Node {
    fn new(addr: SocketAddr) -> Node {
        Node { addr, conn: None }
    }

    async fn send(&mut self, request: &[u8]) -> Result<Response, String> {
        let attempt = async {
            let mut conn = match self.conn.take() {
                Some(conn) => conn,
                None => Conn::connect(self.addr)
                    .await
                    .map_err(|err| format!("connect {}: {err}", self.addr))?,
            };
            let response = conn.exchange(request).await?;
            if !response.close {
                self.conn = Some(conn);
            }
            Ok(response)
        };
        timeout(REQUEST, attempt)
            .await
            .map_err(|_| format!("no answer from {} within {REQUEST:?}", self.addr))?
    }

    /// `GET /verify` with `token`: `Ok(None)` if accepted, else the refusal's code
    /// ([`FUTURE`] for a claims version this node has not applied yet).
    async fn verify(&mut self, token: &str) -> Result<Option<String>, String> {
        let mut request = Vec::new();
        let auth = format!("Bearer {token}");
        write_request(
            &mut request,
            "GET",
            "/verify",
            &[("Authorization", &auth)],
            None,
        );
        let response = self.send(&request).await?;
        match response.status {
            401 if refused_as_from_the_future(&response) => Ok(Some(FUTURE.into())),
            200 => Ok(None),
            401 => Ok(Some(problem_code(&response).unwrap_or_default())),
            status => Err(format!(
                "GET /verify answered {status}: {}",
                response.snippet()
            )),
        }
    }

    /// Asks `GET /verify` until `done` says the verdict is the awaited one; the instant of
    /// that answer. Any verdict `allowed` refuses, and running out of time, fail.
    async fn until(
        &mut self,
        token: &str,
        done: impl Fn(&Option<String>) -> bool,
        allowed: impl Fn(&Option<String>) -> bool,
    ) -> Result<Instant, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let verdict = self.verify(token).await?;
            let at = Instant::now();
            if done(&verdict) {
                return Ok(at);
            }
            if !allowed(&verdict) {
                return Err(format!("unexpected verdict {verdict:?}"));
            }
            if at > deadline {
                return Err(format!("still {verdict:?} after {WAIT:?}"));
            }
        }
    }
}

fn micros(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_micros()).unwrap_or(u64::MAX)
}

fn json_field(response: &Response, pointer: &str) -> Result<String, String> {
    if response.status != 200 {
        return Err(format!(
            "status {}: {}",
            response.status,
            response.snippet()
        ));
    }
    response
        .json()?
        .pointer(pointer)
        .and_then(|value| value.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("answer without {pointer}"))
}

/// Times up to `writes` claim changes and then up to `writes` revocations, each kind
/// within `budget`, with `access` a current access token of a user no one else changes.
///
/// # Errors
/// A wrong answer, or B not refusing (or accepting) within [`WAIT`].
pub async fn measure(
    a: SocketAddr,
    b: SocketAddr,
    mut access: String,
    writes: usize,
    budget: Duration,
) -> Result<Staleness, String> {
    let mut on_a = Node::new(a);
    let mut on_b = Node::new(b);
    let accepted = |verdict: &Option<String>| verdict.is_none();
    // The user was just made on A: B knows it once it has applied that (until then the
    // token names no user B holds, and is refused as revoked).
    on_b.until(&access, accepted, |verdict| {
        matches!(verdict.as_deref(), Some("token_revoked" | FUTURE))
    })
    .await
    .map_err(|err| format!("the first token on B: {err}"))?;
    let mut claim_changes = Series::default();
    let until = Instant::now() + budget;
    for n in 0..writes {
        if Instant::now() >= until {
            break;
        }
        let body = json!({ "plan": CHANGE_PLANS[n % CHANGE_PLANS.len()] }).to_string();
        let mut request = Vec::new();
        let auth = format!("Bearer {access}");
        write_request(
            &mut request,
            "PATCH",
            "/me",
            &[("Authorization", &auth)],
            Some(("application/json", body.as_bytes())),
        );
        let response = on_a.send(&request).await?;
        let answered = Instant::now();
        let fresh = json_field(&response, "/token/access_token")
            .map_err(|err| format!("PATCH /me on A: {err}"))?;
        let refused = on_b
            .until(
                &access,
                |verdict| verdict.as_deref() == Some("token_stale"),
                accepted,
            )
            .await
            .map_err(|err| format!("the old token on B after a claim change: {err}"))?;
        claim_changes.refused_after.push(micros(answered, refused));
        let taken = on_b
            .until(&fresh, accepted, |verdict| {
                verdict.as_deref() == Some(FUTURE)
            })
            .await
            .map_err(|err| format!("A's new token on B: {err}"))?;
        claim_changes.accepted_after.push(micros(answered, taken));
        access = fresh;
    }

    let mut revocations = Series::default();
    let until = Instant::now() + budget;
    for _ in 0..writes {
        if Instant::now() >= until {
            break;
        }
        // A second access token of the same session (a re-mint: nothing is logged).
        let mut request = Vec::new();
        let auth = format!("Bearer {access}");
        write_request(
            &mut request,
            "POST",
            "/auth/refresh-token",
            &[("Authorization", &auth)],
            Some(("application/json", b"{}")),
        );
        let response = on_a.send(&request).await?;
        let token = json_field(&response, "/access_token")
            .map_err(|err| format!("POST /auth/refresh-token on A: {err}"))?;
        on_b.until(&token, accepted, |_| false)
            .await
            .map_err(|err| format!("a re-minted token on B: {err}"))?;
        let mut request = Vec::new();
        let form = format!("token={token}");
        write_request(
            &mut request,
            "POST",
            "/oauth/revoke",
            &[],
            Some(("application/x-www-form-urlencoded", form.as_bytes())),
        );
        let response = on_a.send(&request).await?;
        let answered = Instant::now();
        if response.status != 200 {
            return Err(format!(
                "POST /oauth/revoke on A answered {}: {}",
                response.status,
                response.snippet()
            ));
        }
        let refused = on_b
            .until(
                &token,
                |verdict| verdict.as_deref() == Some("token_revoked"),
                accepted,
            )
            .await
            .map_err(|err| format!("a revoked token on B: {err}"))?;
        revocations.refused_after.push(micros(answered, refused));
    }
    Ok(Staleness {
        claim_changes,
        revocations,
    })
}
