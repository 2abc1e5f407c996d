//! `GET /events` (the change feed as Server-Sent Events) and `GET /events/snapshot`, for
//! services that verify tokens themselves. Both take a service credential (HTTP Basic)
//! or an admin's Bearer token.
//!
//! A stream without `Last-Event-ID` starts with a `snapshot` event (the state to start
//! from; its id is where the stream continues); with one, it resumes right after it, or
//! answers 410 `events_gone` when records after it were evicted. Each change is one event
//! whose `id` is its change-log id. When nothing happens a `heartbeat` event says how far
//! the log has been read (`through`), so a verifier can tell a quiet feed from a dead one.
//! The stream ends when the server stops, and when its reader loses the right to read it:
//! the credential is checked again before each batch of events and at every heartbeat, so
//! a deleted service, a disabled or demoted admin, or an admin token past its `exp` is sent
//! nothing more than one heartbeat later (`events.heartbeat`).

use std::collections::VecDeque;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use secrecy::ExposeSecret as _;

use super::error::ApiError;
use super::oauth::{client, Client};
use super::{resource, AppState};
use crate::auth::{AuthError, FeedEvent};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/events").route(web::get().to(events)))
        .service(resource("/events/snapshot").route(web::get().to(snapshot)));
}

/// Where to resume, for clients that cannot set `Last-Event-ID` on their first request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resume {
    last_event_id: Option<String>,
}

/// How long a client waits before reconnecting (SSE `retry`), in milliseconds.
const RETRY_MS: u64 = 1000;

async fn snapshot(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    reader(&req, &state).await?;
    let snapshot = state.auth.feed.snapshot().await?;
    Ok(HttpResponse::Ok()
        .insert_header(token_lifetime(&state))
        .json(snapshot))
}

/// `Claimd-Token-Lifetime`: the longest `exp - iat` (in seconds, before leeway) of an
/// access token claimd accepts, the longest `tokens.access_ttl` it has ever issued with.
/// A verifier refuses longer lives as claimd does, and holds a version change that long;
/// sent at every stream open, so a reconnect after a restart with a new setting learns it.
fn token_lifetime(state: &AppState) -> (&'static str, String) {
    (
        TOKEN_LIFETIME_HEADER,
        state.auth.feed.token_lifetime().to_string(),
    )
}

/// The header [`token_lifetime`] fills.
const TOKEN_LIFETIME_HEADER: &str = "claimd-token-lifetime";

async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Resume>,
) -> Result<HttpResponse, ApiError> {
    let reader = reader(&req, &state).await?;
    let resume = match req.headers().get("last-event-id") {
        Some(value) => Some(value.to_str().unwrap_or_default().to_string()),
        None => query.into_inner().last_event_id,
    };
    let mut pending = VecDeque::new();
    pending.push_back(Bytes::from(format!("retry: {RETRY_MS}\n\n")));
    let last = match resume {
        Some(text) => {
            let after = text.trim().parse::<u64>().map_err(|_| {
                ApiError::invalid_request("Last-Event-ID: expected an event id (a number)")
            })?;
            // Refuse now, with a status, rather than in the middle of a stream; the page
            // read for that is the stream's first.
            let page = state.auth.feed.after(after).await?;
            pending.extend(page.events.iter().map(event_frame));
            page.events.last().map_or(after, |event| event.id)
        }
        None => {
            let snapshot = state.auth.feed.snapshot().await?;
            let id = snapshot.continues_from;
            let data = serde_json::to_string(&snapshot)
                .map_err(|err| AuthError::Internal(format!("snapshot: {err}")))?;
            pending.push_back(frame(Some(id), "snapshot", &data));
            id
        }
    };
    let stream = Stream {
        state: state.clone(),
        reader,
        last,
        through: last,
        pending,
        published: state.auth.feed.watch(),
        stopping: state.stopping.clone(),
        heartbeat: state.auth.settings().events.heartbeat,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header(token_lifetime(&state))
        // nginx buffers proxied answers unless told not to.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures_util::stream::unfold(stream, Stream::next)))
}

/// Who reads the feed: a service (HTTP Basic) or an admin (Bearer), as `oauth::client`
/// authenticated it. Only they may, and only while they still may: an open stream asks
/// again ([`still_allowed`]).
async fn reader(req: &HttpRequest, state: &AppState) -> Result<Client, ApiError> {
    let reader = client(req, state).await?;
    if reader.is_trusted() {
        Ok(reader)
    } else {
        Err(AuthError::InvalidClient.into())
    }
}

/// Whether `reader` may still read: the service still exists with this secret; the
/// admin's token is before its `exp`, unrevoked, current and still an admin's. A store
/// that cannot say is a no: the reader reconnects and is asked properly.
async fn still_allowed(reader: &Client, state: &AppState) -> bool {
    match reader {
        Client::Service(credentials) => state
            .auth
            .introspection
            .authenticate_service(
                &credentials.client_id,
                credentials.client_secret.expose_secret(),
            )
            .await
            .is_ok(),
        Client::Admin { token, exp } => {
            state.auth.clock().now() < *exp
                && state
                    .auth
                    .admin
                    .require_admin(token.expose_secret())
                    .await
                    .is_ok()
        }
        Client::Anonymous => false,
    }
}

/// One open stream.
struct Stream {
    state: web::Data<AppState>,
    reader: Client,
    /// The id of the last event sent.
    last: u64,
    /// How far the log has been read.
    through: u64,
    pending: VecDeque<Bytes>,
    published: tokio::sync::watch::Receiver<u64>,
    stopping: tokio::sync::watch::Receiver<bool>,
    heartbeat: Duration,
}

impl Stream {
    async fn next(mut self) -> Option<(Result<Bytes, actix_web::Error>, Stream)> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some((Ok(bytes), self));
            }
            if *self.stopping.borrow() {
                return None;
            }
            // Seen before reading, so a record published meanwhile wakes the wait below.
            self.published.borrow_and_update();
            let page = match self.state.auth.feed.after(self.last).await {
                Ok(page) => page,
                Err(err) => {
                    // Evicted past this reader, or the store failed: end the stream; the
                    // reconnect gets the answer as a status.
                    tracing::debug!(error = %err, last = self.last, "change feed stream ends");
                    return None;
                }
            };
            if !page.events.is_empty() {
                if !still_allowed(&self.reader, &self.state).await {
                    tracing::info!("change feed stream ends: its reader may no longer read it");
                    return None;
                }
                for event in &page.events {
                    self.pending.push_back(event_frame(event));
                }
                self.last = page.events.last().map_or(self.last, |event| event.id);
                self.through = self.through.max(self.last);
                continue;
            }
            self.through = self.through.max(page.through);
            tokio::select! {
                changed = self.published.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.stopping.changed() => return None,
                () = tokio::time::sleep(self.heartbeat) => {
                    if !still_allowed(&self.reader, &self.state).await {
                        tracing::info!("change feed stream ends: its reader may no longer read it");
                        return None;
                    }
                    let data = json!({
                        "through": self.through,
                        "time": self.state.auth.clock().now(),
                    });
                    self.pending.push_back(frame(None, "heartbeat", &data.to_string()));
                }
            }
        }
    }
}

fn event_frame(event: &FeedEvent) -> Bytes {
    frame(Some(event.id), event.event, &event.data.to_string())
}

/// One SSE event. `data` is one line of JSON.
fn frame(id: Option<u64>, event: &str, data: &str) -> Bytes {
    let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    Bytes::from(format!("{id}event: {event}\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_id_event_and_one_data_line() {
        assert_eq!(
            frame(Some(7), "session-revoked", r#"{"sid":"x"}"#),
            Bytes::from("id: 7\nevent: session-revoked\ndata: {\"sid\":\"x\"}\n\n")
        );
        assert_eq!(
            frame(None, "heartbeat", "{}"),
            Bytes::from("event: heartbeat\ndata: {}\n\n")
        );
    }
}
