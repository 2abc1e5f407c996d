//! Following claimd's `GET /events`: reading Server-Sent Events off a response, and the
//! background task that keeps the verifier's state current. It resumes with
//! `Last-Event-ID` after a drop, reconnects with exponential backoff and jitter (capped),
//! starts again from a snapshot on 410 `events_gone`, refetches the JWKS on
//! `keys-changed`, and prunes what can no longer matter.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::state::Followup;
use crate::verifier::Inner;

/// The first reconnection delay, doubled on each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often what is held is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(5);
/// Events larger than this (a snapshot is one event) end the stream.
const MAX_EVENT_BYTES: usize = 64 * 1024 * 1024;

/// One Server-Sent Event.
#[derive(Debug, PartialEq)]
pub(crate) struct SseEvent {
    pub(crate) id: Option<u64>,
    pub(crate) event: String,
    pub(crate) data: String,
}

/// Why the stream could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// 410 `events_gone`: what comes after the id asked for was evicted.
    Gone,
    Failed(String),
}

/// Events read off one open stream.
pub(crate) struct EventReader {
    response: Response,
    buffer: String,
}

impl EventReader {
    pub(crate) fn new(response: Response) -> EventReader {
        EventReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, waiting at most `limit` for more bytes. `None` when the stream
    /// ended, failed or stayed silent that long.
    pub(crate) async fn next(&mut self, limit: Duration) -> Option<SseEvent> {
        loop {
            if let Some(event) = take_event(&mut self.buffer) {
                return Some(event);
            }
            if self.buffer.len() > MAX_EVENT_BYTES {
                return None;
            }
            match tokio::time::timeout(limit, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return None,
            }
        }
    }
}

/// Takes the first complete event (ended by a blank line) off `buffer`. Comments and
/// blocks without an `event` or `data` (e.g. a lone `retry:`) are skipped.
fn take_event(buffer: &mut String) -> Option<SseEvent> {
    loop {
        let normalized_end = buffer.find("\n\n")?;
        let block: String = buffer.drain(..normalized_end + 2).collect();
        let mut event = SseEvent {
            id: None,
            event: String::new(),
            data: String::new(),
        };
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => event.id = value.trim().parse().ok(),
                "event" => event.event = value.to_string(),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
        if !event.event.is_empty() || !event.data.is_empty() {
            if event.event.is_empty() {
                event.event = "message".to_string();
            }
            return Some(event);
        }
    }
}

/// Opens `GET /events`, resuming after `resume` when given (else the stream starts with
/// a snapshot).
pub(crate) async fn open(inner: &Inner, resume: Option<u64>) -> Result<EventReader, OpenError> {
    let mut request = inner
        .http
        .get(inner.config.url("/events"))
        .basic_auth(&inner.config.client_id, Some(inner.config.client_secret()))
        .header("accept", "text/event-stream");
    if let Some(id) = resume {
        request = request.header("last-event-id", id.to_string());
    }
    let response = tokio::time::timeout(
        inner.config.max_staleness.max(Duration::from_secs(1)),
        request.send(),
    )
    .await
    .map_err(|_| OpenError::Failed("no answer from GET /events".into()))?
    .map_err(|err| OpenError::Failed(format!("GET /events: {err}")))?;
    match response.status() {
        StatusCode::OK => {
            learn_token_lifetime(inner, &response);
            Ok(EventReader::new(response))
        }
        StatusCode::GONE => Err(OpenError::Gone),
        status => Err(OpenError::Failed(format!("GET /events answered {status}"))),
    }
}

/// Takes the longest token life claimd accepts from its answer (absent from a claimd
/// older than the header: the configured `token_lifetime` stays).
fn learn_token_lifetime(inner: &Inner, response: &reqwest::Response) {
    let announced = response
        .headers()
        .get(TOKEN_LIFETIME_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if let Some(seconds) = announced {
        inner.learn_token_lifetime(seconds);
    }
}

/// The header claimd names its longest accepted token life in (seconds).
const TOKEN_LIFETIME_HEADER: &str = "claimd-token-lifetime";

/// Applies one event; `true` when it was a snapshot.
pub(crate) async fn apply(inner: &Inner, event: &SseEvent) -> Result<bool, String> {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let now = inner.config.clock.now();
    if event.event == "snapshot" {
        let mut state = inner
            .state
            .write()
            .map_err(|_| "state lock poisoned".to_string())?;
        state
            .load_snapshot(&data, now, inner.config.clock.unix())
            .map_err(|err| format!("snapshot: {err}"))?;
        tracing::debug!(
            through = state.through,
            held = state.len(),
            "snapshot loaded"
        );
        return Ok(true);
    }
    let followup = {
        let mut state = inner
            .state
            .write()
            .map_err(|_| "state lock poisoned".to_string())?;
        state.apply(event.id, &event.event, &data, now)
    };
    if followup == Followup::RefetchKeys {
        if let Err(err) = inner.refetch_keys().await {
            tracing::warn!(error = %err, "keys-changed: the JWKS could not be fetched");
        }
    }
    Ok(false)
}

/// The background task: follows the stream until the verifier is dropped.
#[allow(
    clippy::disallowed_methods,
    reason = "pruning paces itself in real time"
)]
pub(crate) async fn follow(inner: Arc<Inner>, mut reader: Option<EventReader>) {
    let mut backoff = FIRST_BACKOFF;
    let mut resume = Some(current_through(&inner));
    let mut last_prune = Instant::now();
    loop {
        let mut open_reader = match reader.take() {
            Some(open_reader) => open_reader,
            None => match open(&inner, resume).await {
                Ok(open_reader) => open_reader,
                Err(OpenError::Gone) => {
                    tracing::info!("the change feed moved past us (410): starting from a snapshot");
                    resume = None;
                    continue;
                }
                Err(OpenError::Failed(err)) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "change feed unreachable");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        while let Some(event) = open_reader.next(inner.config.max_staleness).await {
            backoff = FIRST_BACKOFF;
            match apply(&inner, &event).await {
                Ok(snapshot) => {
                    resume = Some(current_through(&inner));
                    // Starting again from a snapshot (after 410): a `keys-changed` may
                    // have been among what was missed.
                    if snapshot {
                        if let Err(err) = inner.refetch_keys().await {
                            tracing::warn!(error = %err, "the JWKS could not be fetched");
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "change feed: an event could not be applied");
                    break;
                }
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                inner.prune();
                last_prune = Instant::now();
            }
        }
        tracing::info!(retry_in = ?backoff, "change feed closed or silent: reconnecting");
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn current_through(inner: &Inner) -> u64 {
    inner
        .state
        .read()
        .map(|state| state.through)
        .unwrap_or_default()
}

/// `delay` scaled by a factor in [0.5, 1.0), so many services restarted together do not
/// reconnect in step.
#[allow(
    clippy::disallowed_methods,
    reason = "the wall clock's low bits as jitter noise, not as time"
)]
fn jittered(delay: Duration) -> Duration {
    let noise = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.subsec_nanos())
        .unwrap_or_default();
    let factor = 0.5 + f64::from(noise % 1_000) / 2_000.0;
    delay.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines() {
        let mut buffer = String::from(
            "retry: 1000\n\nid: 41\nevent: snapshot\ndata: {\"a\":1}\n\nid: 42\nevent: tok",
        );
        assert_eq!(
            take_event(&mut buffer),
            Some(SseEvent {
                id: Some(41),
                event: "snapshot".into(),
                data: "{\"a\":1}".into()
            })
        );
        assert_eq!(
            take_event(&mut buffer),
            None,
            "the next event is incomplete"
        );
        buffer.push_str("en-revoked\ndata: {}\n\n");
        let event = take_event(&mut buffer).unwrap();
        assert_eq!(
            (event.id, event.event.as_str()),
            (Some(42), "token-revoked")
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn backoff_jitter_stays_below_the_delay() {
        for _ in 0..100 {
            let delay = jittered(MAX_BACKOFF);
            assert!(delay >= MAX_BACKOFF / 2 && delay < MAX_BACKOFF, "{delay:?}");
        }
    }
}
